//! # In-memory adapters
//!
//! An implementation of every authd port that needs no external service: the store (users,
//! roles, sessions, link tokens, the outbox), the auth cache, the login throttle, and the
//! system clock. `authd` runs on them when no `DATABASE_URL` / `REDIS_URL` is configured
//! (development mode: data is lost on exit). They pass the same port contract suite as the
//! Postgres and Redis adapters (`authd-contract`), and the end-to-end suite runs the same
//! scenarios on both.
//!
//! Depends on the application ports and the domain only.

mod cache;
mod clock;
mod probe;
mod store;
mod throttle;

use std::sync::Arc;

use authd_application::ports::{CachePorts, StorePorts};
use authd_domain::{IpCap, LoginBackoff};

pub use cache::InMemoryAuthCache;
pub use clock::SystemClock;
pub use probe::InMemoryProbe;
pub use store::InMemoryStore;
pub use throttle::InMemoryLoginThrottle;

/// The store's ports in memory: one [`InMemoryStore`] for users, roles, sessions, link tokens
/// and the outbox (so its multi-row operations are atomic), which always answers.
pub fn store_ports() -> StorePorts {
    let store = Arc::new(InMemoryStore::new());
    StorePorts {
        users: store.clone(),
        roles: store.clone(),
        sessions: store.clone(),
        links: store.clone(),
        outbox: store,
        probe: Arc::new(InMemoryProbe),
    }
}

/// The cache's ports in memory, for this process alone: an [`InMemoryAuthCache`] with its
/// default lifetimes and an [`InMemoryLoginThrottle`] with these rules.
pub fn cache_ports(backoff: LoginBackoff, ip_cap: IpCap) -> CachePorts {
    CachePorts {
        auth: Arc::new(InMemoryAuthCache::default()),
        throttle: Arc::new(InMemoryLoginThrottle::new(
            backoff,
            ip_cap,
            InMemoryLoginThrottle::DEFAULT_CAPACITY,
        )),
        probe: Arc::new(InMemoryProbe),
    }
}
