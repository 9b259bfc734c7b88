//! # In-memory adapters
//!
//! An implementation of every authd port that needs no external service: the store (users,
//! roles, sessions), the auth cache, the login throttle, and the system clock. `authd` runs on
//! them when no `DATABASE_URL` / `REDIS_URL` is configured (development mode: data is lost on
//! exit), and the Redis throttle uses [`InMemoryLoginThrottle`] as its per-instance fallback
//! while Redis is down. They follow the same contracts as the Postgres and Redis adapters, so the
//! end-to-end suite runs the same scenarios on both.
//!
//! Depends on the application ports and the domain only.

mod cache;
mod clock;
mod probe;
mod store;
mod throttle;

pub use cache::InMemoryAuthCache;
pub use clock::SystemClock;
pub use probe::InMemoryProbe;
pub use store::InMemoryStore;
pub use throttle::InMemoryLoginThrottle;
