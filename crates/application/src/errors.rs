//! Errors shared by the ports and the use cases.

use std::fmt;

/// A backing service a flow depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// The user, role and session store (Postgres).
    Database,
    /// The revocation list, auth cache and throttle counters (Redis).
    Cache,
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Database => "database",
            Self::Cache => "cache",
        })
    }
}

/// How a port call can fail when the failure is not part of the port's own contract.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The dependency cannot be reached now (timeout, refused, pool exhausted): the caller
    /// answers "try again later" and changes nothing.
    #[error("the {0} is unavailable")]
    Unavailable(Dependency),
    /// Too much work is queued (the password hasher's queue is full): the caller answers "busy,
    /// try again in a second" and changes nothing.
    #[error("the server is busy")]
    Busy,
    /// Anything else: a bug or corrupt data. Logged, never shown.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_are_named_in_messages() {
        assert_eq!(Dependency::Database.to_string(), "database");
        assert_eq!(Dependency::Cache.to_string(), "cache");
        assert_eq!(
            PortError::Unavailable(Dependency::Database).to_string(),
            "the database is unavailable"
        );
        assert_eq!(
            PortError::Unavailable(Dependency::Cache).to_string(),
            "the cache is unavailable"
        );
    }
}
