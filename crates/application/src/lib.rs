//! # authd application layer
//!
//! The auth flows as use cases over ports. A use case is a struct holding the ports it needs as
//! `Arc<dyn Port>`; its `execute` reads top to bottom like the flow it implements. Ports are the
//! traits in [`ports`]: everything a test cannot run for real (storage, cache, clock, hashing,
//! token codec). Adapters live in the `infra-*` crates; this crate must not depend on them,
//! nor on any database, cache, HTTP or JWT library.
//!
//! With the `mocks` feature, every port has a mockall mock (`ports::MockUserRepository`, ...).

pub mod commands;
pub mod config;
pub mod errors;
mod minting;
pub mod ports;
mod revocation;
mod tokens;
pub mod use_cases;

pub use config::AuthSettings;
pub use errors::{Dependency, PortError};
pub use tokens::{AccessClaims, AccessProfile, DeviceClaims, PairIds, RefreshClaims, TokenPair};
