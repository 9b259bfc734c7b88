//! # Postgres adapters
//!
//! Implements the application's storage ports on Postgres, the source of truth for users,
//! roles, sessions, link tokens and the email outbox: [`PgUserRepository`],
//! [`PgRoleRepository`], [`PgSessionRepository`], [`PgLinkTokenRepository`] and [`PgOutbox`],
//! all drawing from one [`PgPool`] built by [`connect`]. The schema's migrations are embedded
//! and applied by [`run_migrations`].
//!
//! The outbox is transactional: an email is a row written in the transaction of the change
//! that promises it (a signup's token, a reset request, a password change), so it goes out
//! exactly when that change commits. Link tokens are stored as their SHA-256 only, and spent
//! with a conditional UPDATE, so of two concurrent uses of one token exactly one wins.
//! Delivery claims due rows with `FOR UPDATE SKIP LOCKED` and a lease, so several instances
//! deliver at once without sending a row twice within its lease.
//!
//! Built on diesel's typed query builder with diesel-async over tokio-postgres (no libpq).
//! Driver errors are translated here, once: an unreachable database becomes
//! `PortError::Unavailable(Dependency::Database)`, a taken email `CreateUserError::EmailTaken`,
//! a taken role slug `CreateRoleError::SlugTaken`, a role still held `RoleDeletion::InUse`,
//! anything else `PortError::Unexpected`. No diesel type appears in the ports' results. The
//! database's constraints decide those cases (never a read-then-write), including "at most one
//! primary admin", which a partial unique index enforces.
//!
//! Depends on the application ports and the domain; nothing depends on this crate but the
//! binary that wires it (and tests). With the `testing` feature, the `testing` module makes a fresh
//! migrated database per test.

mod errors;
mod links;
mod migrations;
mod outbox;
mod pool;
mod roles;
mod schema;
mod sessions;
mod users;

#[cfg(feature = "testing")]
pub mod testing;

pub use links::PgLinkTokenRepository;
pub use migrations::run_migrations;
pub use outbox::PgOutbox;
pub use pool::{PgManager, PgPool, PgProbe, PoolSettings, WeakPgPool, connect, ping};
pub use roles::PgRoleRepository;
pub use sessions::PgSessionRepository;
pub use users::PgUserRepository;

use std::sync::Arc;

use authd_application::ports::StorePorts;

/// The store's ports on Postgres, all drawing from `pool`.
pub fn store_ports(pool: &PgPool) -> StorePorts {
    StorePorts {
        users: Arc::new(PgUserRepository::new(pool.clone())),
        roles: Arc::new(PgRoleRepository::new(pool.clone())),
        sessions: Arc::new(PgSessionRepository::new(pool.clone())),
        links: Arc::new(PgLinkTokenRepository::new(pool.clone())),
        outbox: Arc::new(PgOutbox::new(pool.clone())),
        probe: Arc::new(PgProbe::new(pool.clone())),
    }
}
