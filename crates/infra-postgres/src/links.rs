//! One-time link tokens (address verification, password reset), stored as their digest only,
//! and the changes they make.
//!
//! Every transaction here that touches both a user and its tokens locks the user's row first,
//! as the password changes and updates in `users.rs` do (they lock or UPDATE the user before
//! spending the tokens): one order everywhere, so two of them never wait on each other in a
//! cycle.

use async_trait::async_trait;
use authd_application::PortError;
use authd_application::ports::{IssuedLink, LinkRequest, LinkTokenRepository, TokenDigest};
use authd_domain::{Email, EmailRateLimit, LinkPurpose, PasswordHash, Session, User, UserId};
use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::errors::DbError;
use crate::outbox::{bindable, queue};
use crate::pool::{PgPool, execute_batch};
use crate::roles::RoleRefRow;
use crate::schema::{link_tokens, roles, users};
use crate::users::{UserRow, find_with_role, set_password};

#[derive(Insertable)]
#[diesel(table_name = link_tokens)]
struct NewLinkToken<'a> {
    digest: &'a [u8],
    user_id: Uuid,
    purpose: &'static str,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// Stores `link` as a token of `purpose` for `user` and queues the email that carries it to
/// `recipient`, inside the caller's transaction. Only the digest goes into `link_tokens`; the
/// token itself travels sealed in the outbox row.
pub(crate) async fn issue(
    conn: &mut AsyncPgConnection,
    user: UserId,
    purpose: LinkPurpose,
    recipient: &str,
    link: &IssuedLink,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(link_tokens::table)
        .values(NewLinkToken {
            digest: &link.digest.0,
            user_id: user.as_uuid(),
            purpose: purpose.as_str(),
            created_at: now,
            expires_at: link.expires_at,
        })
        .execute(conn)
        .await?;
    queue(conn, purpose.email(), recipient, Some(&link.sealed), now).await
}

/// Spends every unspent reset token of `user`, inside the caller's transaction (which holds
/// the user's row): a new reset request, a password change and a completed reset all leave no
/// older reset link working.
pub(crate) async fn spend_reset_tokens(
    conn: &mut AsyncPgConnection,
    user: UserId,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        link_tokens::table
            .filter(link_tokens::user_id.eq(user.as_uuid()))
            .filter(link_tokens::purpose.eq(LinkPurpose::ResetPassword.as_str()))
            .filter(link_tokens::spent_at.is_null()),
    )
    .set(link_tokens::spent_at.eq(now))
    .execute(conn)
    .await
}

/// Spends every unspent link token of `user`, of both purposes, inside the caller's
/// transaction (which holds the user's row): a new address makes the links sent to the old one
/// worthless, and a deactivation leaves none for a reactivation to revive.
pub(crate) async fn spend_all_tokens(
    conn: &mut AsyncPgConnection,
    user: UserId,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        link_tokens::table
            .filter(link_tokens::user_id.eq(user.as_uuid()))
            .filter(link_tokens::spent_at.is_null()),
    )
    .set(link_tokens::spent_at.eq(now))
    .execute(conn)
    .await
}

/// When the tokens of `purpose` that still count against `limit` at `now` were made (older
/// ones are left unread: the limit ignores them).
async fn sent_times(
    conn: &mut AsyncPgConnection,
    user: UserId,
    purpose: LinkPurpose,
    limit: &EmailRateLimit,
    now: DateTime<Utc>,
) -> QueryResult<Vec<DateTime<Utc>>> {
    let window_start = TimeDelta::from_std(limit.window())
        .ok()
        .and_then(|window| now.checked_sub_signed(window))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    link_tokens::table
        .filter(link_tokens::user_id.eq(user.as_uuid()))
        .filter(link_tokens::purpose.eq(purpose.as_str()))
        .filter(link_tokens::created_at.gt(bindable(window_start)))
        .select(link_tokens::created_at)
        .load(conn)
        .await
}

/// What both requests do once the account is found, locked and eligible: unless `limit`
/// refuses, spend the older tokens (reset only), store `link` and queue its email.
async fn request(
    conn: &mut AsyncPgConnection,
    user: UserId,
    recipient: &str,
    purpose: LinkPurpose,
    link: &IssuedLink,
    limit: &EmailRateLimit,
    now: DateTime<Utc>,
) -> QueryResult<LinkRequest> {
    let sent = sent_times(conn, user, purpose, limit, now).await?;
    if let Err(retry_after) = limit.check(&sent, now) {
        return Ok(LinkRequest::Limited { retry_after });
    }
    if purpose == LinkPurpose::ResetPassword {
        spend_reset_tokens(conn, user, now).await?;
    }
    issue(conn, user, purpose, recipient, link, now).await?;
    Ok(LinkRequest::Queued)
}

/// Spends the token of `purpose` with this digest as a compare-and-set, inside the caller's
/// transaction, and returns its user; `None` (nothing written) when the token is unknown,
/// spent or expired at `now`, or its user inactive.
///
/// The user's row is locked before the token is touched (see the module's doc), and the
/// compare-and-set is a conditional UPDATE: of two concurrent calls the second waits on the
/// user's lock, then matches nothing because `spent_at` is set.
async fn spend(
    conn: &mut AsyncPgConnection,
    purpose: LinkPurpose,
    digest: &TokenDigest,
    now: DateTime<Utc>,
) -> QueryResult<Option<UserId>> {
    let token = link_tokens::table
        .find(&digest.0[..])
        .filter(link_tokens::purpose.eq(purpose.as_str()));
    let Some(user) = token
        .select(link_tokens::user_id)
        .first::<Uuid>(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    let active = users::table
        .find(user)
        .select(users::is_active)
        .for_update()
        .first::<bool>(conn)
        .await
        .optional()?;
    if active != Some(true) {
        return Ok(None);
    }
    let spent = diesel::update(
        token
            .filter(link_tokens::spent_at.is_null())
            .filter(link_tokens::expires_at.gt(now)),
    )
    .set(link_tokens::spent_at.eq(now))
    .execute(conn)
    .await?;
    Ok((spent == 1).then(|| UserId::from_uuid(user)))
}

/// [`LinkTokenRepository`] on the `link_tokens` table, queueing into `outbox`.
#[derive(Clone)]
pub struct PgLinkTokenRepository {
    pool: PgPool,
}

impl PgLinkTokenRepository {
    /// An adapter drawing connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl LinkTokenRepository for PgLinkTokenRepository {
    async fn request_reset(
        &self,
        email: &Email,
        link: &IssuedLink,
        limit: &EmailRateLimit,
        now: DateTime<Utc>,
    ) -> Result<LinkRequest, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        // The account's row lock serialises its requests: the limit is read and the token
        // written by one request at a time, so concurrent requests cannot all pass the limit.
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            let account = users::table
                .filter(users::email_normalized.eq(email.normalized()))
                .select((users::id, users::email, users::is_active))
                .for_update()
                .first::<(Uuid, String, bool)>(conn)
                .await
                .optional()?;
            let Some((id, address, true)) = account else {
                return Ok(LinkRequest::NoAccount);
            };
            let id = UserId::from_uuid(id);
            request(
                conn,
                id,
                &address,
                LinkPurpose::ResetPassword,
                link,
                limit,
                now,
            )
            .await
        })
        .await
        .map_err(|error| DbError::from_query(error, &mut conn).into())
    }

    async fn request_verification(
        &self,
        user: UserId,
        link: &IssuedLink,
        limit: &EmailRateLimit,
        now: DateTime<Utc>,
    ) -> Result<LinkRequest, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        // Locked for the same reason as a reset request.
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            let account = users::table
                .find(user.as_uuid())
                .select((users::email, users::is_active, users::is_verified))
                .for_update()
                .first::<(String, bool, bool)>(conn)
                .await
                .optional()?;
            match account {
                None | Some((_, false, _)) => Ok(LinkRequest::NoAccount),
                Some((_, true, true)) => Ok(LinkRequest::AlreadyVerified),
                Some((address, true, false)) => {
                    request(
                        conn,
                        user,
                        &address,
                        LinkPurpose::VerifyEmail,
                        link,
                        limit,
                        now,
                    )
                    .await
                }
            }
        })
        .await
        .map_err(|error| DbError::from_query(error, &mut conn).into())
    }

    async fn holder(
        &self,
        purpose: LinkPurpose,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let row = link_tokens::table
            .inner_join(users::table.inner_join(roles::table))
            .filter(link_tokens::digest.eq(&digest.0[..]))
            .filter(link_tokens::purpose.eq(purpose.as_str()))
            .filter(link_tokens::spent_at.is_null())
            .filter(link_tokens::expires_at.gt(now))
            .filter(users::is_active)
            .select((UserRow::as_select(), RoleRefRow::as_select()))
            .first::<(UserRow, RoleRefRow)>(&mut conn)
            .await
            .optional()
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        row.map(|(user, role)| user.into_user(role)).transpose()
    }

    async fn reset_password(
        &self,
        digest: &TokenDigest,
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<Option<(User, Vec<Session>)>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let reset = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                let Some(user) = spend(conn, LinkPurpose::ResetPassword, digest, now).await? else {
                    return Ok(None);
                };
                // The very steps of a password change (`replace_password`), plus the address
                // marked verified: the link reached it.
                let Some(revoked) = set_password(conn, user, None, hash, true, now).await? else {
                    return Ok(None);
                };
                let stored = find_with_role(conn, user).await?;
                Ok(stored.map(|(user, role)| (user, role, revoked)))
            })
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        let Some((user, role, revoked)) = reset else {
            return Ok(None);
        };
        Ok(Some((
            user.into_user(role)?,
            revoked.into_iter().map(Session::from).collect(),
        )))
    }

    async fn verify_email(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            let Some(user) = spend(conn, LinkPurpose::VerifyEmail, digest, now).await? else {
                return Ok(None);
            };
            diesel::update(users::table.find(user.as_uuid()))
                .set((users::is_verified.eq(true), users::updated_at.eq(now)))
                .execute(conn)
                .await?;
            Ok(Some(user))
        })
        .await
        .map_err(|error| DbError::from_query(error, &mut conn).into())
    }

    async fn purge(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, PortError> {
        execute_batch(&self.pool, purge_of(before, batch)).await
    }
}

/// One statement deleting at most `batch` tokens expired and created before `before`, the
/// shape of the session purge: concurrent purges lock disjoint rows and skip the others'
/// instead of waiting. A token still inside the email limit's window is kept even once
/// expired, since the limit counts it.
fn purge_of(
    before: DateTime<Utc>,
    batch: u32,
) -> impl diesel_async::methods::ExecuteDsl<AsyncPgConnection>
+ diesel::query_builder::QueryFragment<diesel::pg::Pg> {
    let before = bindable(before);
    let old = diesel::alias!(link_tokens as old);
    let digests = old
        .select(old.field(link_tokens::digest))
        .filter(old.field(link_tokens::expires_at).lt(before))
        .filter(old.field(link_tokens::created_at).lt(before))
        .limit(i64::from(batch))
        .for_update()
        .skip_locked();
    diesel::delete(link_tokens::table.filter(link_tokens::digest.eq_any(digests)))
}
