//! Driver errors, translated once: what the callers can act on (the database is unreachable, a
//! unique constraint was hit) is told apart here, and no diesel or deadpool type goes further.

use authd_application::ports::{CreateRoleError, CreateUserError};
use authd_application::{Dependency, PortError};
use diesel::result::{DatabaseErrorKind, Error as QueryError};
use diesel_async::pooled_connection::PoolableConnection;
use diesel_async::pooled_connection::deadpool::PoolError;
use diesel_async::{AsyncConnection, AsyncPgConnection, TransactionManager};

use crate::pool::{PooledConnection, record_timeout};

/// The constraint that decides an email is taken (see the initial migration).
pub(crate) const EMAIL_UNIQUE: &str = "users_email_normalized_key";
/// The partial unique index that lets at most one primary admin exist.
pub(crate) const ONE_PRIMARY_ADMIN: &str = "users_one_primary_admin";
/// The constraint that decides a role slug is taken.
pub(crate) const SLUG_UNIQUE: &str = "roles_slug_key";
/// The foreign key (`ON DELETE RESTRICT`) that keeps a role while users hold it.
pub(crate) const USER_ROLE: &str = "users_role_id_fkey";

/// A failed database call, classified.
#[derive(Debug)]
pub(crate) enum DbError {
    /// No usable connection: refused, timed out, pool exhausted, or the connection died
    /// mid-query. The cause is logged where this is built, since `PortError` does not carry it.
    Unavailable,
    /// The database answered with an error (a constraint, a bug, corrupt data).
    Query(QueryError),
}

impl DbError {
    /// Every way of not getting a connection means the database cannot be used right now. A
    /// bad URL or bad credentials also land here: the pool cannot tell them from an outage, and
    /// the operator sees the cause in the log.
    pub(crate) fn from_pool(error: PoolError) -> Self {
        tracing::warn!(%error, "no Postgres connection");
        Self::Unavailable
    }

    /// Classifies a query error; `conn` is the connection it ran on, so that an error caused by
    /// the connection dying (a server shutdown reported with its own SQLSTATE, for instance)
    /// counts as unavailability rather than as a failed query.
    ///
    /// A statement cancelled by its statement or lock timeout also counts as unavailability
    /// (the database is too slow or too contended to answer in time), and a pooled `conn`
    /// makes its pool remember it for the readiness probe. The connection itself stays usable:
    /// the cancelled statement (or its whole transaction, rolled back by diesel-async) is gone.
    pub(crate) fn from_query(error: QueryError, conn: &mut impl QueryConnection) -> Self {
        let connection_lost = matches!(
            error,
            QueryError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _
            ) | QueryError::BrokenTransactionManager
        ) || conn.connection().is_broken();
        if is_connection_ending(&error) {
            // The server said it is closing the connection, possibly before the driver saw
            // the socket close: mark it broken now, so the pool discards it instead of lending
            // it again.
            <AsyncPgConnection as AsyncConnection>::TransactionManager::transaction_manager_status_mut(
                conn.connection(),
            )
            .set_in_error();
        }
        if connection_lost || is_connection_ending(&error) {
            tracing::warn!(%error, "Postgres connection lost");
            Self::Unavailable
        } else if is_cancelled(&error) {
            tracing::warn!(%error, "Postgres statement cancelled by its timeout");
            conn.statement_cancelled();
            Self::Unavailable
        } else {
            Self::Query(error)
        }
    }

    /// Whether this is a unique violation of the named constraint.
    pub(crate) fn violates_unique(&self, constraint: &str) -> bool {
        matches!(
            self,
            Self::Query(QueryError::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
                if info.constraint_name() == Some(constraint)
        )
    }

    /// Whether this is a foreign-key violation of the named constraint (a row still refers to
    /// the one being deleted, or a new row refers to one that does not exist).
    pub(crate) fn violates_foreign_key(&self, constraint: &str) -> bool {
        matches!(
            self,
            Self::Query(QueryError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info))
                if info.constraint_name() == Some(constraint)
        )
    }
}

/// What a query ran on: a connection lent by the pool, or the bare connection a transaction's
/// closure gets (the pooled call that ends the transaction sees the same error again).
pub(crate) trait QueryConnection {
    /// The connection itself.
    fn connection(&mut self) -> &mut AsyncPgConnection;

    /// A statement on it was cancelled by its statement or lock timeout.
    fn statement_cancelled(&self) {}
}

impl QueryConnection for AsyncPgConnection {
    fn connection(&mut self) -> &mut AsyncPgConnection {
        self
    }
}

impl QueryConnection for &mut AsyncPgConnection {
    fn connection(&mut self) -> &mut AsyncPgConnection {
        self
    }
}

impl QueryConnection for PooledConnection {
    fn connection(&mut self) -> &mut AsyncPgConnection {
        self
    }

    fn statement_cancelled(&self) {
        record_timeout(self);
    }
}

/// The server's messages for a statement it cancelled: SQLSTATE 57014 `query_canceled`
/// (`statement_timeout`, or an operator's `pg_cancel_backend`) and 55P03
/// `lock_not_available` (`lock_timeout`).
///
/// diesel-async turns every SQLSTATE it does not know into `DatabaseErrorKind::Unknown` and
/// keeps only the message, so these are recognised by their text. That relies on the server
/// writing its messages in English (`lc_messages` of `C`, `POSIX` or `en_*`, the default of
/// the official images; it can only be changed by a superuser). Under another language a
/// timeout is still bounded, but it is reported as an unexpected error (500) instead of the
/// database being unavailable (503). The README says so too.
const CANCELLED_MESSAGES: [&str; 3] = [
    "canceling statement due to statement timeout",
    "canceling statement due to lock timeout",
    "canceling statement due to user request",
];

/// The beginnings of the server's messages when it ends the connection itself (SQLSTATE class
/// 57P: an operator's `pg_terminate_backend`, a shutdown, a crash of another backend, an idle
/// timeout) or refuses it while starting or stopping. The error can arrive before the driver
/// has seen the socket close, so the connection is not yet marked broken; recognised by their
/// text, for the reason given at [`CANCELLED_MESSAGES`].
const CONNECTION_ENDING_MESSAGES: [&str; 2] = ["terminating connection", "the database system is"];

/// Whether the server is ending or refusing the connection (see
/// [`CONNECTION_ENDING_MESSAGES`]).
fn is_connection_ending(error: &QueryError) -> bool {
    matches!(
        error,
        QueryError::DatabaseError(DatabaseErrorKind::Unknown, info)
            if CONNECTION_ENDING_MESSAGES
                .iter()
                .any(|start| info.message().starts_with(start))
    )
}

/// Whether Postgres cancelled the statement (see [`CANCELLED_MESSAGES`]).
fn is_cancelled(error: &QueryError) -> bool {
    matches!(
        error,
        QueryError::DatabaseError(DatabaseErrorKind::Unknown, info)
            if CANCELLED_MESSAGES.contains(&info.message())
    )
}

impl From<DbError> for PortError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable => Self::Unavailable(Dependency::Database),
            DbError::Query(error) => {
                Self::Unexpected(anyhow::Error::new(error).context("Postgres query failed"))
            }
        }
    }
}

impl From<DbError> for CreateUserError {
    fn from(error: DbError) -> Self {
        if error.violates_unique(EMAIL_UNIQUE) {
            Self::EmailTaken
        } else {
            Self::Port(error.into())
        }
    }
}

impl From<DbError> for CreateRoleError {
    fn from(error: DbError) -> Self {
        if error.violates_unique(SLUG_UNIQUE) {
            Self::SlugTaken
        } else {
            Self::Port(error.into())
        }
    }
}

/// Stored data that does not make a valid domain value (a hand-edited row, say).
pub(crate) fn corrupt(what: &str, error: impl std::fmt::Display) -> PortError {
    PortError::Unexpected(anyhow::anyhow!("corrupt {what} in Postgres: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(message: &str) -> QueryError {
        QueryError::DatabaseError(DatabaseErrorKind::Unknown, Box::new(message.to_owned()))
    }

    #[test]
    fn statements_cancelled_by_a_timeout_are_recognised_by_the_servers_message() {
        for message in CANCELLED_MESSAGES {
            assert!(is_cancelled(&unknown(message)), "{message}");
        }
        assert!(!is_cancelled(&unknown("division by zero")));
        assert!(!is_cancelled(&unknown("")));
        assert!(!is_cancelled(&QueryError::DatabaseError(
            DatabaseErrorKind::SerializationFailure,
            Box::new("canceling statement due to statement timeout".to_owned()),
        )));
        assert!(!is_cancelled(&QueryError::NotFound));
    }

    #[test]
    fn a_server_ending_the_connection_is_recognised_by_its_message() {
        for message in [
            "terminating connection due to administrator command",
            "terminating connection because of crash of another server process",
            "the database system is shutting down",
        ] {
            assert!(is_connection_ending(&unknown(message)), "{message}");
        }
        assert!(!is_connection_ending(&unknown("division by zero")));
        assert!(!is_connection_ending(&unknown(
            "canceling statement due to user request"
        )));
        assert!(!is_connection_ending(&QueryError::NotFound));
    }
}
