//! fred errors, translated once into the ports' error.

use authd_application::{Dependency, PortError};
use fred::error::{Error, ErrorKind};

/// Server replies that mean "not now" rather than "wrong": a replica being promoted, a dataset
/// still loading, a script hogging the server.
const TRANSIENT_REPLIES: [&str; 7] = [
    "LOADING",
    "BUSY",
    "TRYAGAIN",
    "MASTERDOWN",
    "READONLY",
    "CLUSTERDOWN",
    "NOREPLICAS",
];

/// Whether Redis could not be reached or could not answer now (the caller answers "try again
/// later"), as opposed to a bug or corrupt data.
fn is_unavailable(error: &Error) -> bool {
    match error.kind() {
        ErrorKind::IO
        | ErrorKind::Timeout
        | ErrorKind::Canceled
        | ErrorKind::Backpressure
        | ErrorKind::Routing
        | ErrorKind::Cluster
        | ErrorKind::Sentinel => true,
        // fred reports a client that is not (or no longer) running as an unknown error.
        ErrorKind::Unknown => {
            let details = error.details();
            TRANSIENT_REPLIES
                .iter()
                .any(|prefix| details.starts_with(prefix))
                || details.contains("not initialized")
                || details.contains("Failed to send command")
        }
        _ => false,
    }
}

/// `Unavailable(Cache)` when Redis cannot be reached or timed out; `Unexpected` otherwise.
pub(crate) fn port_error(error: Error) -> PortError {
    let unavailable = is_unavailable(&error);
    let kind = if unavailable {
        "unavailable"
    } else {
        "unexpected"
    };
    metrics::counter!("authd_redis_errors_total", "kind" => kind).increment(1);
    if unavailable {
        // The port error carries no detail; this is where the reason is kept.
        tracing::debug!(error = ?error, "Redis unavailable");
        PortError::Unavailable(Dependency::Cache)
    } else {
        PortError::Unexpected(anyhow::Error::new(error).context("Redis command failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable(kind: ErrorKind, details: &'static str) -> bool {
        matches!(
            port_error(Error::new(kind, details)),
            PortError::Unavailable(Dependency::Cache)
        )
    }

    #[test]
    fn connection_trouble_is_unavailable() {
        assert!(unavailable(ErrorKind::IO, "connection refused"));
        assert!(unavailable(ErrorKind::Timeout, "Request timed out."));
        assert!(unavailable(
            ErrorKind::Canceled,
            "Connection closed unexpectedly."
        ));
        assert!(unavailable(
            ErrorKind::Unknown,
            "LOADING Redis is loading the dataset in memory"
        ));
        assert!(unavailable(
            ErrorKind::Unknown,
            "Client is not initialized."
        ));
    }

    #[test]
    fn anything_else_is_unexpected() {
        assert!(!unavailable(
            ErrorKind::Parse,
            "Could not convert to string."
        ));
        assert!(!unavailable(
            ErrorKind::InvalidArgument,
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        ));
        assert!(!unavailable(ErrorKind::Unknown, "ERR syntax error"));
    }
}
