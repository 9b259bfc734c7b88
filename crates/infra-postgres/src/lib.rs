//! # Postgres adapters
//!
//! Implements the application's storage ports on Postgres, the source of truth for users,
//! roles and sessions: [`PgUserRepository`], [`PgRoleRepository`] and [`PgSessionRepository`],
//! all drawing from one [`PgPool`] built by [`connect`]. The schema's migrations are embedded
//! and applied by [`run_migrations`].
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
mod migrations;
mod pool;
mod roles;
mod schema;
mod sessions;
mod users;

#[cfg(feature = "testing")]
pub mod testing;

pub use migrations::run_migrations;
pub use pool::{PgManager, PgPool, PgProbe, PoolSettings, connect, ping};
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
        probe: Arc::new(PgProbe::new(pool.clone())),
    }
}
