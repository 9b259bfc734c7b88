//! Sessions and their refresh-token rotation state.

use application::PortError;
use application::ports::{Rotation, SessionRecord, SessionRepository};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::{RotationState, Session, SessionId, TokenId, UserId};
use uuid::Uuid;

use crate::errors::DbError;
use crate::pool::PgPool;
use crate::schema::sessions;

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
    async fn create(&self, session: &Session, refresh_jti: TokenId) -> Result<(), PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        diesel::insert_into(sessions::table)
            .values(NewSession {
                id: session.id.as_uuid(),
                user_id: session.user_id.as_uuid(),
                created_at: session.created_at,
                last_used_at: session.last_used_at,
                expires_at: session.expires_at,
                user_agent: session.user_agent.as_deref(),
                ip: session.ip.as_deref(),
                revoked_at: session.revoked_at,
                current_refresh_jti: refresh_jti.as_uuid(),
            })
            .execute(&mut conn)
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(())
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

    async fn rotate(&self, rotation: &Rotation) -> Result<bool, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        // One conditional UPDATE is the compare-and-set: when two exchanges of the same token
        // race, the second waits on the row lock, Postgres re-checks its WHERE against the
        // committed row, and it matches nothing because the current jti has moved on.
        let changed = diesel::update(
            sessions::table
                .find(rotation.session_id.as_uuid())
                .filter(sessions::current_refresh_jti.eq(rotation.presented.as_uuid()))
                .filter(live_at(rotation.now)),
        )
        .set((
            sessions::current_refresh_jti.eq(rotation.successor.as_uuid()),
            sessions::previous_refresh_jti.eq(rotation.presented.as_uuid()),
            sessions::rotated_at.eq(rotation.now),
            sessions::last_used_at.eq(rotation.now),
            sessions::expires_at.eq(rotation.successor_expires_at),
            sessions::sealed_successor.eq(&rotation.sealed_successor),
        ))
        .execute(&mut conn)
        .await
        .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(changed == 1)
    }

    async fn revoke(
        &self,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let row = diesel::update(sessions::table.find(id.as_uuid()).filter(live_at(now)))
            .set(sessions::revoked_at.eq(now))
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
        let rows = revoke_all_of(user, now)
            .get_results(&mut conn)
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(rows.into_iter().map(Session::from).collect())
    }
}

/// Revokes the user's live sessions, returning them: shared with the password change, which
/// runs it inside its transaction.
pub(crate) fn revoke_all_of(
    user: UserId,
    now: DateTime<Utc>,
) -> impl diesel_async::methods::LoadQuery<'static, diesel_async::AsyncPgConnection, SessionRow> {
    diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user.as_uuid()))
            .filter(live_at(now)),
    )
    .set(sessions::revoked_at.eq(now))
    .returning(SessionRow::as_returning())
}
