//! The transactional outbox: emails queued by the changes that promise them, and their
//! delivery.

use std::time::Duration;

use async_trait::async_trait;
use authd_application::PortError;
use authd_application::ports::{Outbox, OutboxEmail, OutboxStats};
use authd_domain::{EmailId, EmailKind};
use chrono::{DateTime, TimeDelta, Utc};
use diesel::dsl::{count_star, min};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::errors::{DbError, corrupt};
use crate::pool::{PgPool, execute_batch};
use crate::schema::outbox;

/// The longest `last_error` kept, in characters: a mail server's whole transcript is no use
/// in a row read by operators.
const MAX_ERROR_CHARS: usize = 1000;

#[derive(Insertable)]
#[diesel(table_name = outbox)]
struct NewEmail<'a> {
    id: Uuid,
    kind: &'static str,
    recipient: &'a str,
    sealed_token: Option<&'a str>,
    created_at: DateTime<Utc>,
    next_attempt_at: DateTime<Utc>,
    attempts: i32,
}

/// Queues an email inside the caller's transaction, due at once: it goes out exactly when the
/// change that promises it commits. `sealed_token` is the link's token as sealed for the
/// outbox, `None` for an email without a link.
pub(crate) async fn queue(
    conn: &mut AsyncPgConnection,
    kind: EmailKind,
    recipient: &str,
    sealed_token: Option<&str>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(outbox::table)
        .values(NewEmail {
            id: EmailId::generate().as_uuid(),
            kind: kind.as_str(),
            recipient,
            sealed_token,
            created_at: now,
            next_attempt_at: now,
            attempts: 0,
        })
        .execute(conn)
        .await?;
    Ok(())
}

/// `at`, or the first instant of year 1 when it is earlier: Postgres cannot bind a time
/// before 4713 BC (chrono's minimum is long before), and no stored row is that old, so a
/// cut-off before year 1 selects what the earlier one would.
pub(crate) fn bindable(at: DateTime<Utc>) -> DateTime<Utc> {
    let earliest =
        DateTime::<Utc>::from_timestamp(-62_135_596_800, 0).unwrap_or(DateTime::<Utc>::MIN_UTC);
    at.max(earliest)
}

/// A claimed row, with when it was due (for the order of the answer: `RETURNING` keeps none,
/// so it is sorted again as [`CLAIM`] picked).
#[derive(QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    recipient: String,
    #[diesel(sql_type = Nullable<Text>)]
    sealed_token: Option<String>,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    due_at: DateTime<Utc>,
}

impl ClaimedRow {
    fn into_email(self) -> Result<OutboxEmail, PortError> {
        Ok(OutboxEmail {
            id: EmailId::from_uuid(self.id),
            kind: EmailKind::parse(&self.kind).ok_or_else(|| corrupt("outbox kind", &self.kind))?,
            recipient: self.recipient,
            sealed_token: self.sealed_token,
            attempts: u32::try_from(self.attempts)
                .map_err(|error| corrupt("outbox attempts", error))?,
            created_at: self.created_at,
        })
    }
}

/// One statement claims the due rows: the CTE locks at most `$2` of them, reset and
/// password-changed emails before verification ones (`false` sorts first), then oldest due
/// first, skipping the rows another instance's claim holds (so concurrent claims get disjoint
/// rows without waiting), and the UPDATE counts the attempt and moves them past the lease. A
/// row a concurrent claim changed and committed is re-checked against the `WHERE` before it is
/// locked, so a row is never claimed twice within its lease. The CTE's `WHERE` is the one of
/// the partial index `outbox_pending_idx`; the due rows it finds are sorted for the order.
const CLAIM: &str = "WITH due AS ( \
     SELECT id, next_attempt_at FROM outbox \
     WHERE sent_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $1 \
     ORDER BY kind = 'verify_email', next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
     UPDATE outbox SET attempts = outbox.attempts + 1, next_attempt_at = $3 \
     FROM due WHERE outbox.id = due.id \
     RETURNING outbox.id, outbox.kind, outbox.recipient, outbox.sealed_token, \
     outbox.attempts, outbox.created_at, due.next_attempt_at AS due_at";

/// [`Outbox`] on the `outbox` table.
#[derive(Clone)]
pub struct PgOutbox {
    pool: PgPool,
}

impl PgOutbox {
    /// An adapter drawing connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl Outbox for PgOutbox {
    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        batch: u32,
    ) -> Result<Vec<OutboxEmail>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        // A lease too long to add keeps the rows until the end of time rather than failing
        // every claim.
        let until = TimeDelta::from_std(lease)
            .ok()
            .and_then(|lease| now.checked_add_signed(lease))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut rows = diesel::sql_query(CLAIM)
            .bind::<Timestamptz, _>(now)
            .bind::<BigInt, _>(i64::from(batch))
            .bind::<Timestamptz, _>(until)
            .load::<ClaimedRow>(&mut conn)
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        rows.sort_by_key(|row| {
            (
                row.kind == EmailKind::VerifyEmail.as_str(),
                row.due_at,
                row.id,
            )
        });
        rows.into_iter().map(ClaimedRow::into_email).collect()
    }

    async fn sent(&self, id: EmailId, now: DateTime<Utc>) -> Result<(), PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        diesel::update(outbox::table.find(id.as_uuid()))
            .set((
                outbox::sent_at.eq(now),
                outbox::sealed_token.eq(None::<String>),
            ))
            .execute(&mut conn)
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(())
    }

    async fn failed(
        &self,
        id: EmailId,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        // Postgres text cannot hold NUL, and the error comes from a remote server.
        let last_error: String = error
            .chars()
            .filter(|c| *c != '\0')
            .take(MAX_ERROR_CHARS)
            .collect();
        let row = outbox::table.find(id.as_uuid());
        let updated = match retry_at {
            Some(at) => {
                diesel::update(row)
                    .set((
                        outbox::next_attempt_at.eq(at),
                        outbox::last_error.eq(&last_error),
                    ))
                    .execute(&mut conn)
                    .await
            }
            None => {
                diesel::update(row)
                    .set((
                        outbox::dead_at.eq(now),
                        outbox::sealed_token.eq(None::<String>),
                        outbox::last_error.eq(&last_error),
                    ))
                    .execute(&mut conn)
                    .await
            }
        };
        updated.map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(())
    }

    async fn stats(&self) -> Result<OutboxStats, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let (depth, oldest) = outbox::table
            .filter(outbox::sent_at.is_null())
            .filter(outbox::dead_at.is_null())
            .select((count_star(), min(outbox::created_at)))
            .get_result::<(i64, Option<DateTime<Utc>>)>(&mut conn)
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(OutboxStats {
            depth: u64::try_from(depth).map_err(|error| corrupt("outbox depth", error))?,
            oldest,
        })
    }

    async fn purge(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, PortError> {
        execute_batch(&self.pool, purge_of(before, batch)).await
    }
}

/// One statement deleting at most `batch` rows sent or dead before `before`, the shape of the
/// session purge: concurrent purges lock disjoint rows and skip the others' (and a row being
/// marked) instead of waiting. The two partial indexes on `sent_at` and `dead_at` serve it.
fn purge_of(
    before: DateTime<Utc>,
    batch: u32,
) -> impl diesel_async::methods::ExecuteDsl<AsyncPgConnection>
+ diesel::query_builder::QueryFragment<diesel::pg::Pg> {
    let before = bindable(before);
    let done = diesel::alias!(outbox as done);
    let ids = done
        .select(done.field(outbox::id))
        // Both are NULL while the row waits, and NULL is never before anything.
        .filter(
            done.field(outbox::sent_at)
                .assume_not_null()
                .lt(before)
                .or(done.field(outbox::dead_at).assume_not_null().lt(before)),
        )
        .limit(i64::from(batch))
        .for_update()
        .skip_locked();
    diesel::delete(outbox::table.filter(outbox::id.eq_any(ids)))
}
