//! Driver errors, translated once: what the callers can act on (the database is unreachable, a
//! unique constraint was hit) is told apart here, and no diesel or deadpool type goes further.

use application::ports::{CreateRoleError, CreateUserError};
use application::{Dependency, PortError};
use diesel::result::{DatabaseErrorKind, Error as QueryError};
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::PoolableConnection;
use diesel_async::pooled_connection::deadpool::PoolError;

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
    pub(crate) fn from_query(error: QueryError, conn: &mut AsyncPgConnection) -> Self {
        let connection_lost = matches!(
            error,
            QueryError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _
            ) | QueryError::BrokenTransactionManager
        ) || conn.is_broken();
        if connection_lost {
            tracing::warn!(%error, "Postgres connection lost");
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
