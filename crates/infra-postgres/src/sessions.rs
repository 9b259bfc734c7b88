//! Sessions and their refresh-token rotation state.

use async_trait::async_trait;
use authd_application::ports::{Rotated, Rotation, SessionRecord, SessionRepository};
use authd_application::{AccessProfile, PortError};
use authd_domain::{RotationState, Session, SessionId, TokenId, UserId};
use chrono::{DateTime, SubsecRound, Utc};
use diesel::pg::Pg;
use diesel::pg::data_types::PgInterval;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Bool, Interval, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::errors::DbError;
use crate::pool::{PgPool, execute_batch};
use crate::roles::RoleRefRow;
use crate::schema::{sessions, users};
use crate::users::UserRow;

/// The columns of a [`Session`].
#[derive(Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub(crate) struct SessionRow {
    id: Uuid,
    user_id: Uuid,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    user_agent: Option<String>,
    ip: Option<String>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Self {
            id: SessionId::from_uuid(row.id),
            user_id: UserId::from_uuid(row.user_id),
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            user_agent: row.user_agent,
            ip: row.ip,
            revoked_at: row.revoked_at,
        }
    }
}

/// The rotation columns, read with a [`SessionRow`].
#[derive(Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
struct RotationRow {
    current_refresh_jti: Uuid,
    previous_refresh_jti: Option<Uuid>,
    rotated_at: Option<DateTime<Utc>>,
    sealed_successor: Option<String>,
    signed_for: Option<Uuid>,
    signed_email: Option<String>,
    signed_role: Option<String>,
    signed_superuser: Option<bool>,
}

impl RotationRow {
    /// The profile the last rotation signed, when it stored one: one stored for the refresh
    /// token that is current now (an older authd's rotation moves the token on without
    /// storing one). A check constraint keeps the columns null or set together.
    fn signed_profile(&self) -> Option<AccessProfile> {
        if self.signed_for != Some(self.current_refresh_jti) {
            return None;
        }
        Some(AccessProfile {
            email: self.signed_email.clone()?,
            role: self.signed_role.clone()?,
            is_superuser: self.signed_superuser?,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = sessions)]
struct NewSession<'a> {
    id: Uuid,
    user_id: Uuid,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    user_agent: Option<&'a str>,
    ip: Option<&'a str>,
    revoked_at: Option<DateTime<Utc>>,
    current_refresh_jti: Uuid,
}

/// The SQL twin of `Session::is_live(now)`. Every revocation and rotation goes through this
/// filter, so only live sessions are revoked (and reported as revoked).
pub(crate) fn live_at(
    now: DateTime<Utc>,
) -> diesel::dsl::And<
    diesel::dsl::IsNull<sessions::revoked_at>,
    diesel::dsl::Gt<sessions::expires_at, DateTime<Utc>>,
> {
    sessions::revoked_at
        .is_null()
        .and(sessions::expires_at.gt(now))
}

/// [`SessionRepository`] on the `sessions` table.
#[derive(Clone)]
pub struct PgSessionRepository {
    pool: PgPool,
}

impl PgSessionRepository {
    /// An adapter drawing connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl SessionRepository for PgSessionRepository {
    async fn create(
        &self,
        session: &Session,
        refresh_jti: TokenId,
        credentials_version: i64,
    ) -> Result<bool, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        // One statement: the session is inserted only from the user's row as it is now, read
        // `FOR SHARE` so that a credentials change in flight is waited for and then seen (see
        // `end_credentials`).
        let inserted = diesel::sql_query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, \
             user_agent, ip, revoked_at, current_refresh_jti) \
             SELECT $1, users.id, $2, $3, $4, $5, $6, NULL, $7 FROM users \
             WHERE users.id = $8 AND users.is_active AND users.credentials_version = $9 \
             FOR SHARE",
        )
        .bind::<SqlUuid, _>(session.id.as_uuid())
        .bind::<Timestamptz, _>(session.created_at)
        .bind::<Timestamptz, _>(session.last_used_at)
        .bind::<Timestamptz, _>(session.expires_at)
        .bind::<Nullable<Text>, _>(session.user_agent.as_deref())
        .bind::<Nullable<Text>, _>(session.ip.as_deref())
        .bind::<SqlUuid, _>(refresh_jti.as_uuid())
        .bind::<SqlUuid, _>(session.user_id.as_uuid())
        .bind::<BigInt, _>(credentials_version)
        .execute(&mut conn)
        .await
        .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(inserted == 1)
    }

    async fn find(&self, id: SessionId) -> Result<Option<SessionRecord>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let row = sessions::table
            .find(id.as_uuid())
            .select((SessionRow::as_select(), RotationRow::as_select()))
            .first::<(SessionRow, RotationRow)>(&mut conn)
            .await
            .optional()
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(row.map(|(session, rotation)| SessionRecord {
            signed_profile: rotation.signed_profile(),
            session: session.into(),
            rotation: RotationState {
                current: TokenId::from_uuid(rotation.current_refresh_jti),
                previous: rotation.previous_refresh_jti.map(TokenId::from_uuid),
                rotated_at: rotation.rotated_at,
            },
            sealed_successor: rotation.sealed_successor,
        }))
    }

    async fn list_live(&self, user: UserId, now: DateTime<Utc>) -> Result<Vec<Session>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let rows = sessions::table
            .filter(sessions::user_id.eq(user.as_uuid()))
            .filter(live_at(now))
            .order((sessions::created_at.desc(), sessions::id.desc()))
            .select(SessionRow::as_select())
            .load(&mut conn)
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(rows.into_iter().map(Session::from).collect())
    }

    async fn rotate(&self, rotation: &Rotation) -> Result<Option<Rotated>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let lifetime = rotation.lifetime;
        let statement = RotateStatement {
            session: rotation.session_id.as_uuid(),
            user: rotation.user_id.as_uuid(),
            presented: rotation.presented.as_uuid(),
            successor: rotation.successor.as_uuid(),
            sealed_successor: &rotation.sealed_successor,
            now: rotation.now,
            refresh_expiry: (rotation.now + lifetime.refresh_ttl()).trunc_subsecs(0),
            max_age: PgInterval::from_microseconds(
                lifetime.max_age().num_microseconds().unwrap_or(i64::MAX),
            ),
        };
        let row = statement
            .get_result::<(UserRow, RoleRefRow, DateTime<Utc>)>(&mut conn)
            .await
            .optional()
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        row.map(|(user, role, expires_at)| {
            Ok(Rotated {
                expires_at,
                user: user.into_user(role)?,
            })
        })
        .transpose()
    }

    async fn revoke(
        &self,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let row = diesel::update(sessions::table.find(id.as_uuid()).filter(live_at(now)))
            .set(revoked_at(now))
            .returning(SessionRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(row.map(Session::from))
    }

    async fn revoke_all(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let rows = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                end_credentials(conn, user, now).await
            })
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(rows.into_iter().map(Session::from).collect())
    }

    async fn purge_ended(
        &self,
        now: DateTime<Utc>,
        revoked_grace: std::time::Duration,
        batch: u32,
    ) -> Result<u64, PortError> {
        execute_batch(&self.pool, purge_ended_of(now, revoked_grace, batch)).await
    }

    async fn clear_sealed_successors(
        &self,
        rotated_before: DateTime<Utc>,
        batch: u32,
    ) -> Result<u64, PortError> {
        execute_batch(&self.pool, clear_sealed_of(rotated_before, batch)).await
    }
}

/// Bumps the user's credentials version, then revokes its live sessions, returning them: what
/// a password change, a deactivation and a revoke-all do, inside the caller's transaction.
///
/// The bump comes first: it takes the user's row lock, which a login's session insert waits
/// for (it reads the version `FOR SHARE`), so a login either commits its session before this
/// runs (and the revocation below sees and revokes it) or re-reads the bumped version after
/// this commits (and inserts nothing).
pub(crate) async fn end_credentials(
    conn: &mut AsyncPgConnection,
    user: UserId,
    now: DateTime<Utc>,
) -> QueryResult<Vec<SessionRow>> {
    diesel::update(users::table.find(user.as_uuid()))
        .set(users::credentials_version.eq(users::credentials_version + 1))
        .execute(conn)
        .await?;
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user.as_uuid()))
            .filter(live_at(now)),
    )
    .set(revoked_at(now))
    .returning(SessionRow::as_returning())
    .get_results(conn)
    .await
}

/// What every revocation writes: `revoked_at`, and no sealed successor pair (a revoked
/// session never replays one, so no ciphertext of a token is kept for it).
fn revoked_at(
    now: DateTime<Utc>,
) -> (
    diesel::dsl::Eq<sessions::revoked_at, DateTime<Utc>>,
    NoSuccessor,
) {
    (sessions::revoked_at.eq(now), no_successor())
}

type NoSuccessor = (
    diesel::dsl::Eq<sessions::sealed_successor, Option<String>>,
    diesel::dsl::Eq<sessions::signed_for, Option<Uuid>>,
    diesel::dsl::Eq<sessions::signed_email, Option<String>>,
    diesel::dsl::Eq<sessions::signed_role, Option<String>>,
    diesel::dsl::Eq<sessions::signed_superuser, Option<bool>>,
);

/// Clears the sealed successor pair and the profile it was signed for, together.
fn no_successor() -> NoSuccessor {
    (
        sessions::sealed_successor.eq(None::<String>),
        sessions::signed_for.eq(None::<Uuid>),
        sessions::signed_email.eq(None::<String>),
        sessions::signed_role.eq(None::<String>),
        sessions::signed_superuser.eq(None::<bool>),
    )
}

/// One statement deleting at most `batch` ended sessions (see
/// [`SessionRepository::purge_ended`]): `DELETE FROM sessions WHERE id IN (SELECT id FROM
/// sessions WHERE expires_at <= $now OR revoked_at < $cutoff LIMIT $batch FOR UPDATE SKIP
/// LOCKED)`. Instances purging together each lock their own rows and skip the others' (and
/// rows a request is updating) instead of waiting; a row is deleted once. The two indexes of
/// the `session_purge_indexes` migration serve the `WHERE`.
fn purge_ended_of(
    now: DateTime<Utc>,
    revoked_grace: std::time::Duration,
    batch: u32,
) -> impl diesel_async::methods::ExecuteDsl<AsyncPgConnection>
+ diesel::query_builder::QueryFragment<diesel::pg::Pg> {
    // A grace too large to subtract keeps every revoked session; so does one reaching before
    // year 1, which no revocation is and which Postgres cannot bind (timestamptz ends in
    // 4713 BC, chrono's minimum long before: binding it failed every purge).
    let earliest =
        DateTime::<Utc>::from_timestamp(-62_135_596_800, 0).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let cutoff = chrono::TimeDelta::from_std(revoked_grace)
        .ok()
        .and_then(|grace| now.checked_sub_signed(grace))
        .map_or(earliest, |cutoff| cutoff.max(earliest));
    // The subquery reads the same table: diesel needs it aliased.
    let ended = diesel::alias!(sessions as ended);
    let ids = ended
        .select(ended.field(sessions::id))
        // `revoked_at < $cutoff` is false for live rows (NULL): no need to say `IS NOT NULL`.
        .filter(
            ended.field(sessions::expires_at).le(now).or(ended
                .field(sessions::revoked_at)
                .assume_not_null()
                .lt(cutoff)),
        )
        .limit(i64::from(batch))
        .for_update()
        .skip_locked();
    diesel::delete(sessions::table.filter(sessions::id.eq_any(ids)))
}

/// One statement clearing the sealed successor pair (and its signed profile) of at most `batch`
/// sessions rotated before `rotated_before` (see
/// [`SessionRepository::clear_sealed_successors`]): `UPDATE sessions SET sealed_successor =
/// NULL, signed_… = NULL WHERE id IN (SELECT id … LIMIT $batch FOR UPDATE SKIP LOCKED) AND
/// rotated_at < $before`, the same shape as [`purge_ended_of`]. A rotation racing it either
/// holds the row (skipped) or committed first (its new `rotated_at` fails the condition, which
/// the outer `WHERE` checks again on the row it updates). The partial index of the
/// `sealed_successor_index` migration holds only the rows that have a pair.
fn clear_sealed_of(
    rotated_before: DateTime<Utc>,
    batch: u32,
) -> impl diesel_async::methods::ExecuteDsl<AsyncPgConnection>
+ diesel::query_builder::QueryFragment<diesel::pg::Pg> {
    let sealed = diesel::alias!(sessions as sealed);
    let ids = sealed
        .select(sealed.field(sessions::id))
        .filter(sealed.field(sessions::sealed_successor).is_not_null())
        .filter(
            sealed
                .field(sessions::rotated_at)
                .assume_not_null()
                .lt(rotated_before),
        )
        .limit(i64::from(batch))
        .for_update()
        .skip_locked();
    diesel::update(
        sessions::table
            .filter(sessions::id.eq_any(ids))
            .filter(sessions::rotated_at.assume_not_null().lt(rotated_before)),
    )
    .set(no_successor())
}

/// The exchange of a refresh token as one statement: the compare-and-set on the session row
/// (`current_refresh_jti` is the presented token, the session live and the token's user's),
/// joined with the user and its role, so that the same round trip checks the user is active and
/// returns what the successor pair is signed with, and keeps the signed fields in the row for a
/// repeat inside the grace window. When two exchanges of one token race, the
/// second waits on the row lock, Postgres re-checks its `WHERE` against the committed row, and it
/// matches nothing because the current token has moved on.
///
/// The new `expires_at` is `Rotation::successor_expiry` in SQL: the refresh lifetime from now
/// (`refresh_expiry`, whole seconds already) or the session's absolute end, whichever is first,
/// truncated to the second. diesel's DSL has no `UPDATE … FROM`; this fragment has a static
/// query id, so its prepared statement is cached like the DSL's (`sql_query` is prepared anew
/// on every call: a second round trip).
struct RotateStatement<'a> {
    session: Uuid,
    user: Uuid,
    presented: Uuid,
    successor: Uuid,
    sealed_successor: &'a str,
    now: DateTime<Utc>,
    refresh_expiry: DateTime<Utc>,
    max_age: PgInterval,
}

impl QueryId for RotateStatement<'_> {
    type QueryId = RotateStatement<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for RotateStatement<'_> {
    type SqlType = (
        (
            SqlUuid,
            Text,
            Nullable<Text>,
            Bool,
            Bool,
            Bool,
            Bool,
            Timestamptz,
            Timestamptz,
        ),
        (SqlUuid, Text, Text),
        Timestamptz,
    );
}

impl QueryFragment<Pg> for RotateStatement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("UPDATE sessions SET current_refresh_jti = ");
        out.push_bind_param::<SqlUuid, _>(&self.successor)?;
        out.push_sql(", previous_refresh_jti = sessions.current_refresh_jti, rotated_at = ");
        out.push_bind_param::<Timestamptz, _>(&self.now)?;
        out.push_sql(", last_used_at = ");
        out.push_bind_param::<Timestamptz, _>(&self.now)?;
        out.push_sql(", expires_at = LEAST(");
        out.push_bind_param::<Timestamptz, _>(&self.refresh_expiry)?;
        out.push_sql(", date_trunc('second', sessions.created_at + ");
        out.push_bind_param::<Interval, _>(&self.max_age)?;
        out.push_sql(")), sealed_successor = ");
        out.push_bind_param::<Text, _>(self.sealed_successor)?;
        out.push_sql(", signed_for = ");
        out.push_bind_param::<SqlUuid, _>(&self.successor)?;
        out.push_sql(
            ", signed_email = users.email, signed_role = roles.slug, \
             signed_superuser = users.is_superuser \
             FROM users JOIN roles ON roles.id = users.role_id \
             WHERE users.id = sessions.user_id AND users.is_active AND sessions.id = ",
        );
        out.push_bind_param::<SqlUuid, _>(&self.session)?;
        out.push_sql(" AND sessions.user_id = ");
        out.push_bind_param::<SqlUuid, _>(&self.user)?;
        out.push_sql(" AND sessions.current_refresh_jti = ");
        out.push_bind_param::<SqlUuid, _>(&self.presented)?;
        out.push_sql(" AND sessions.revoked_at IS NULL AND sessions.expires_at > ");
        out.push_bind_param::<Timestamptz, _>(&self.now)?;
        out.push_sql(
            " RETURNING users.id, users.email, users.name, users.is_active, users.is_superuser, \
             users.is_verified, users.is_primary_admin, users.created_at, users.updated_at, \
             roles.id, roles.slug, roles.name, sessions.expires_at",
        );
        Ok(())
    }
}

#[cfg(test)]
mod purge_tests {
    use super::*;

    /// The statement the migration's indexes were chosen for (its plan is a BitmapOr of both).
    #[test]
    fn the_purge_is_one_delete_of_a_limited_skip_locked_selection() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let query = purge_ended_of(now, std::time::Duration::from_secs(960), 500);
        let sql = diesel::debug_query::<diesel::pg::Pg, _>(&query).to_string();
        assert_eq!(
            sql,
            "DELETE FROM \"sessions\" WHERE (\"sessions\".\"id\" = ANY(SELECT \"ended\".\"id\" \
             FROM \"sessions\" AS \"ended\" WHERE ((\"ended\".\"expires_at\" <= $1) OR \
             (\"ended\".\"revoked_at\" < $2)) LIMIT $3 FOR UPDATE SKIP LOCKED)) \
             -- binds: [1970-01-01T00:00:00Z, 1969-12-31T23:44:00Z, 500]"
        );
    }

    /// The statement the partial index of the `sealed_successor_index` migration serves.
    #[test]
    fn clearing_is_one_update_of_a_limited_skip_locked_selection() {
        let before = DateTime::<Utc>::UNIX_EPOCH;
        let query = clear_sealed_of(before, 500);
        let sql = diesel::debug_query::<diesel::pg::Pg, _>(&query).to_string();
        assert_eq!(
            sql,
            "UPDATE \"sessions\" SET \"sealed_successor\" = $1, \"signed_for\" = $2, \
             \"signed_email\" = $3, \"signed_role\" = $4, \"signed_superuser\" = $5 WHERE \
             ((\"sessions\".\"id\" = ANY(SELECT \"sealed\".\"id\" FROM \"sessions\" AS \
             \"sealed\" WHERE ((\"sealed\".\"sealed_successor\" IS NOT NULL) AND \
             (\"sealed\".\"rotated_at\" < $6)) LIMIT $7 FOR UPDATE SKIP LOCKED)) AND \
             (\"sessions\".\"rotated_at\" < $8)) \
             -- binds: [None, None, None, None, None, 1970-01-01T00:00:00Z, 500, \
             1970-01-01T00:00:00Z]"
        );
    }
}
