//! Users, read with their role.

use async_trait::async_trait;
use authd_application::PortError;
use authd_application::ports::{
    CreateUserError, Credentials, IssuedLink, UserChanges, UserPage, UserQuery, UserRepository,
};
use authd_domain::{
    DisplayName, Email, EmailKind, LinkPurpose, PasswordHash, RoleRef, Session, User, UserId,
};
use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::Bool;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::errors::{DbError, EMAIL_UNIQUE, ONE_PRIMARY_ADMIN, corrupt};
use crate::links::{issue, spend_all_tokens, spend_reset_tokens};
use crate::outbox::queue;
use crate::pool::PgPool;
use crate::roles::RoleRefRow;
use crate::schema::{roles, sessions, users};
use crate::sessions::{SessionRow, end_credentials, live_at};

/// The columns of a [`User`], read with its role's [`RoleRefRow`].
#[derive(Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub(crate) struct UserRow {
    id: Uuid,
    email: String,
    name: Option<String>,
    is_active: bool,
    is_superuser: bool,
    is_verified: bool,
    is_primary_admin: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl UserRow {
    pub(crate) fn into_user(self, role: RoleRefRow) -> Result<User, PortError> {
        Ok(User {
            id: UserId::from_uuid(self.id),
            email: Email::parse(&self.email).map_err(|error| corrupt("user email", error))?,
            // A stored name is never blank (no name is NULL): one that does not make a
            // `DisplayName` is as corrupt as an unparsable email.
            name: self
                .name
                .map(DisplayName::try_from)
                .transpose()
                .map_err(|error| corrupt("user name", error))?,
            is_active: self.is_active,
            is_superuser: self.is_superuser,
            is_verified: self.is_verified,
            is_primary_admin: self.is_primary_admin,
            role: RoleRef::try_from(role)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUser<'a> {
    id: Uuid,
    email: &'a str,
    email_normalized: &'a str,
    name: Option<&'a str>,
    password_hash: &'a str,
    is_active: bool,
    is_superuser: bool,
    is_verified: bool,
    is_primary_admin: bool,
    role_id: Uuid,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl<'a> NewUser<'a> {
    fn of(user: &'a User, password_hash: &'a PasswordHash) -> Self {
        Self {
            id: user.id.as_uuid(),
            email: user.email.as_str(),
            email_normalized: user.email.normalized(),
            name: user.name.as_ref().map(DisplayName::as_str),
            password_hash: password_hash.as_str(),
            is_active: user.is_active,
            is_superuser: user.is_superuser,
            is_verified: user.is_verified,
            is_primary_admin: user.is_primary_admin,
            role_id: user.role.id.as_uuid(),
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// An update: `None` leaves a column as it is, and `name: Some(None)` sets it to NULL.
/// `updated_at` is always set, so the changeset is never empty. `is_primary_admin` is not
/// here: an update never moves the mark.
#[derive(AsChangeset)]
#[diesel(table_name = users)]
struct UserChangeset<'a> {
    email: Option<&'a str>,
    email_normalized: Option<&'a str>,
    name: Option<Option<&'a str>>,
    role_id: Option<Uuid>,
    is_active: Option<bool>,
    is_superuser: Option<bool>,
    is_verified: Option<bool>,
    password_hash: Option<&'a str>,
    updated_at: DateTime<Utc>,
}

impl<'a> UserChangeset<'a> {
    /// The changeset of `changes`; `moved` says the email changes to another normalised form,
    /// which unmarks the address verified unless `changes` sets the mark itself.
    fn of(changes: &'a UserChanges, moved: bool, now: DateTime<Utc>) -> Self {
        Self {
            email: changes.email.as_ref().map(Email::as_str),
            email_normalized: changes.email.as_ref().map(Email::normalized),
            name: changes
                .name
                .as_ref()
                .map(|name| name.as_ref().map(DisplayName::as_str)),
            role_id: changes.role.map(|role| role.as_uuid()),
            is_active: changes.is_active,
            is_superuser: changes.is_superuser,
            is_verified: changes.is_verified.or(moved.then_some(false)),
            password_hash: changes.password_hash.as_ref().map(PasswordHash::as_str),
            updated_at: now,
        }
    }
}

/// A password set: the hash and the time, and for a reset the address marked verified too
/// (`None` leaves the mark as it is).
#[derive(AsChangeset)]
#[diesel(table_name = users)]
struct PasswordSet<'a> {
    password_hash: &'a str,
    is_verified: Option<bool>,
    updated_at: DateTime<Utc>,
}

/// What every new password brings with it besides the hash, inside the caller's transaction
/// (which has already written the user's row): the user's reset tokens are spent, so no
/// older reset link undoes the change, and the notice goes to `recipient`, the address as
/// stored.
async fn password_changed(
    conn: &mut AsyncPgConnection,
    id: UserId,
    recipient: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    spend_reset_tokens(conn, id, now).await?;
    queue(conn, EmailKind::PasswordChanged, recipient, None, now).await
}

/// A password change, inside the caller's transaction: sets the hash (and, when
/// `mark_verified`, the address verified: a reset link reached it), ends the credentials
/// (version bumped, every live session revoked) and does what [`password_changed`] does.
/// With `expected_version`, only while the user's credentials are still at that version.
/// Returns the sessions it revoked; `None`, writing nothing, when there is no such user or the
/// version moved. `replace_password` and a completed reset share it, so both end sessions
/// alike.
pub(crate) async fn set_password(
    conn: &mut AsyncPgConnection,
    id: UserId,
    expected_version: Option<i64>,
    hash: &PasswordHash,
    mark_verified: bool,
    now: DateTime<Utc>,
) -> QueryResult<Option<Vec<SessionRow>>> {
    let set = PasswordSet {
        password_hash: hash.as_str(),
        is_verified: mark_verified.then_some(true),
        updated_at: now,
    };
    // In the UPDATE's own `WHERE`: it takes the row lock, so a concurrent reset or change that
    // holds it commits first, and the condition is checked again on the row it left (whose
    // bumped version then matches nothing).
    let version_matches: Box<dyn BoxableExpression<users::table, Pg, SqlType = Bool>> =
        match expected_version {
            Some(version) => Box::new(users::credentials_version.eq(version)),
            None => Box::new(true.into_sql::<Bool>()),
        };
    let user = users::table.find(id.as_uuid()).filter(version_matches);
    let Some(address) = diesel::update(user)
        .set(set)
        .returning(users::email)
        .get_result::<String>(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    let revoked = end_credentials(conn, id, now).await?;
    password_changed(conn, id, &address, now).await?;
    Ok(Some(revoked))
}

/// What every read of users selects from: each user with its role.
type UsersWithRole = diesel::dsl::InnerJoin<users::table, roles::table>;

/// The users (with their role) that match a listing's filters, unordered and unpaged: the one
/// definition both the page and its count are built from.
fn matching(query: &UserQuery) -> diesel::dsl::IntoBoxed<'_, UsersWithRole, Pg> {
    let mut matches = users::table.inner_join(roles::table).into_boxed();
    if let Some(q) = &query.q {
        // Bound as a parameter and escaped, so `%` and `_` in `q` match themselves. Emails are
        // matched on their normalised form (the identity), names case-insensitively.
        let email_pattern = format!("%{}%", escape_like(&authd_domain::email_search_form(q)));
        let name_pattern = format!("%{}%", escape_like(q));
        matches = matches.filter(
            users::email_normalized
                .like(email_pattern)
                .escape('\\')
                .or(users::name.ilike(name_pattern).escape('\\')),
        );
    }
    if let Some(role) = &query.role {
        matches = matches.filter(roles::slug.eq(role.as_str()));
    }
    if let Some(is_active) = query.is_active {
        matches = matches.filter(users::is_active.eq(is_active));
    }
    matches
}

/// `raw` as a literal inside a `LIKE` pattern whose escape character is `\`.
fn escape_like(raw: &str) -> String {
    let mut escaped = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The user with this id and its role, `None` when there is none.
pub(crate) async fn find_with_role(
    conn: &mut AsyncPgConnection,
    id: UserId,
) -> QueryResult<Option<(UserRow, RoleRefRow)>> {
    users::table
        .inner_join(roles::table)
        .filter(users::id.eq(id.as_uuid()))
        .select((UserRow::as_select(), RoleRefRow::as_select()))
        .first::<(UserRow, RoleRefRow)>(conn)
        .await
        .optional()
}

/// Whether the primary admin exists.
async fn primary_admin_exists(conn: &mut AsyncPgConnection) -> Result<bool, PortError> {
    diesel::select(diesel::dsl::exists(
        users::table.filter(users::is_primary_admin),
    ))
    .get_result(conn)
    .await
    .map_err(|error| DbError::from_query(error, conn).into())
}

/// [`UserRepository`] on the `users` table, joined with `roles`.
#[derive(Clone)]
pub struct PgUserRepository {
    pool: PgPool,
}

impl PgUserRepository {
    /// An adapter drawing connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl UserRepository for PgUserRepository {
    async fn create<'a>(
        &self,
        user: &User,
        password_hash: &PasswordHash,
        verification: Option<&'a IssuedLink>,
    ) -> Result<(), CreateUserError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        // No read-before-write: the unique constraint decides, so two sign-ups racing for one
        // email cannot both succeed, and the loser's INSERT (and its transaction, with the
        // token and the email) leaves nothing behind. A taken email becomes `EmailTaken` in
        // the conversion from `DbError`.
        let row = NewUser::of(user, password_hash);
        let created = match verification {
            None => {
                diesel::insert_into(users::table)
                    .values(row)
                    .execute(&mut conn)
                    .await
            }
            Some(link) => {
                conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                    let inserted = diesel::insert_into(users::table)
                        .values(row)
                        .execute(conn)
                        .await?;
                    let address = user.email.as_str();
                    let purpose = LinkPurpose::VerifyEmail;
                    issue(conn, user.id, purpose, address, link, user.created_at).await?;
                    Ok(inserted)
                })
                .await
            }
        };
        created.map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(())
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let row = find_with_role(&mut conn, id)
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        row.map(|(user, role)| user.into_user(role)).transpose()
    }

    async fn find_credentials(&self, email: &Email) -> Result<Option<Credentials>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let row = users::table
            .inner_join(roles::table)
            .filter(users::email_normalized.eq(email.normalized()))
            .select((
                UserRow::as_select(),
                RoleRefRow::as_select(),
                users::password_hash,
                users::credentials_version,
            ))
            .first::<(UserRow, RoleRefRow, String, i64)>(&mut conn)
            .await
            .optional()
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        row.map(|(user, role, hash, version)| {
            Ok(Credentials {
                user: user.into_user(role)?,
                hash: PasswordHash::new(hash),
                version,
            })
        })
        .transpose()
    }

    async fn password_hash(&self, id: UserId) -> Result<Option<PasswordHash>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let hash = users::table
            .find(id.as_uuid())
            .select(users::password_hash)
            .first::<String>(&mut conn)
            .await
            .optional()
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(hash.map(PasswordHash::new))
    }

    async fn update_password_hash(
        &self,
        id: UserId,
        old: &PasswordHash,
        new: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let replaced = diesel::update(
            users::table
                .find(id.as_uuid())
                .filter(users::password_hash.eq(old.as_str())),
        )
        .set((
            users::password_hash.eq(new.as_str()),
            users::updated_at.eq(now),
        ))
        .execute(&mut conn)
        .await
        .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(replaced == 1)
    }

    async fn list(&self, query: &UserQuery) -> Result<UserPage, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let per_page = i64::from(query.per_page);
        let offset = i64::from(query.page.saturating_sub(1)).saturating_mul(per_page);
        // One snapshot for both statements, so `total` counts the very rows the page was cut
        // from, even while users are being created or deleted.
        let listed = conn
            .build_transaction()
            .read_only()
            .repeatable_read()
            .run::<_, diesel::result::Error, _>(async |conn| {
                let rows = matching(query)
                    .select((UserRow::as_select(), RoleRefRow::as_select()))
                    .order((users::created_at.asc(), users::id.asc()))
                    .limit(per_page)
                    .offset(offset)
                    .load::<(UserRow, RoleRefRow)>(conn)
                    .await?;
                // A page that is not full and not past the end (or the first page) is the
                // last one: the total follows from it, and the count can be skipped.
                let total = match i64::try_from(rows.len()) {
                    Ok(len) if len < per_page && (len > 0 || offset == 0) => {
                        offset.saturating_add(len)
                    }
                    _ => matching(query).count().get_result::<i64>(conn).await?,
                };
                Ok((rows, total))
            })
            .await;
        let (rows, total) = listed.map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(UserPage {
            items: rows
                .into_iter()
                .map(|(user, role)| user.into_user(role))
                .collect::<Result<_, _>>()?,
            total: u64::try_from(total).map_err(|error| corrupt("user count", error))?,
        })
    }

    async fn update(
        &self,
        id: UserId,
        changes: &UserChanges,
        revoke_sessions: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<(User, Vec<Session>)>, CreateUserError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        // One transaction: a taken email (the unique constraint decides, and becomes
        // `EmailTaken` in the conversion from `DbError`) or any other failure leaves the user,
        // its sessions and its tokens as they were. An unknown role is a foreign-key
        // violation, reported as unexpected: the caller checks roles first.
        let updated = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                // The old address, read under the row lock (taken first, as everywhere the
                // user and its tokens change together), so it is the one this update replaces.
                let Some(old_address) = users::table
                    .find(id.as_uuid())
                    .select(users::email_normalized)
                    .for_update()
                    .first::<String>(conn)
                    .await
                    .optional()?
                else {
                    return Ok(None);
                };
                let moved = changes
                    .email
                    .as_ref()
                    .is_some_and(|email| email.normalized() != old_address);
                diesel::update(users::table.find(id.as_uuid()))
                    .set(UserChangeset::of(changes, moved, now))
                    .execute(conn)
                    .await?;
                if moved || changes.is_active == Some(false) {
                    spend_all_tokens(conn, id, now).await?;
                }
                let revoked = if revoke_sessions {
                    end_credentials(conn, id, now).await?
                } else {
                    Vec::new()
                };
                let stored = find_with_role(conn, id).await?;
                if let (Some((user, _)), Some(_)) = (&stored, &changes.password_hash) {
                    // To the address as it is now: the one this update may just have set.
                    password_changed(conn, id, &user.email, now).await?;
                }
                Ok(stored.map(|(user, role)| (user, role, revoked)))
            })
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        let Some((user, role, revoked)) = updated else {
            return Ok(None);
        };
        Ok(Some((
            user.into_user(role)?,
            revoked.into_iter().map(Session::from).collect(),
        )))
    }

    async fn delete(
        &self,
        id: UserId,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<Session>>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let deleted = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                // Locking the row first keeps the read below complete: a login racing with the
                // delete checks its session's foreign key with a share lock on this row, so it
                // waits, then fails on the deleted user, instead of adding a live session that
                // the cascade would remove unreported.
                let locked = users::table
                    .find(id.as_uuid())
                    .select(users::id)
                    .for_update()
                    .first::<Uuid>(conn)
                    .await
                    .optional()?;
                if locked.is_none() {
                    return Ok(None);
                }
                let live = sessions::table
                    .filter(sessions::user_id.eq(id.as_uuid()))
                    .filter(live_at(now))
                    .select(SessionRow::as_select())
                    .load::<SessionRow>(conn)
                    .await?;
                // The sessions go with the user (`ON DELETE CASCADE`).
                diesel::delete(users::table.find(id.as_uuid()))
                    .execute(conn)
                    .await?;
                Ok(Some(live))
            })
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(deleted.map(|live| live.into_iter().map(Session::from).collect()))
    }

    async fn create_primary_admin(
        &self,
        admin: &User,
        password_hash: &PasswordHash,
    ) -> Result<bool, CreateUserError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        // Every start-up asks, and once the admin exists this read is all it costs (no failed
        // INSERT in the server's log at each start).
        if primary_admin_exists(&mut conn).await? {
            return Ok(false);
        }
        // The mark is what the unique index keys on, so it is set whatever the caller passed.
        let row = NewUser {
            is_primary_admin: true,
            ..NewUser::of(admin, password_hash)
        };
        let inserted = diesel::insert_into(users::table)
            .values(row)
            .execute(&mut conn)
            .await;
        match inserted.map_err(|error| DbError::from_query(error, &mut conn)) {
            Ok(_) => Ok(true),
            // Another instance created it between the read and this insert.
            Err(error) if error.violates_unique(ONE_PRIMARY_ADMIN) => Ok(false),
            // Postgres checks the email constraint before the primary-admin index (older
            // first), so a concurrent winner with the same email is reported here: the email
            // is taken by the primary admin, which is no error.
            Err(error) if error.violates_unique(EMAIL_UNIQUE) => {
                if primary_admin_exists(&mut conn).await? {
                    Ok(false)
                } else {
                    Err(CreateUserError::EmailTaken)
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn replace_password(
        &self,
        id: UserId,
        expected_version: i64,
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<Session>>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        // One transaction: a failure between the statements must not leave a new password
        // with the old sessions still live, an old reset link working, or no notice queued
        // (or the reverse).
        let revoked = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                set_password(conn, id, Some(expected_version), hash, false, now).await
            })
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(revoked.map(|revoked| revoked.into_iter().map(Session::from).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_and_the_escape_are_escaped() {
        assert_eq!(escape_like("ada"), "ada");
        assert_eq!(escape_like("100%_a\\b"), "100\\%\\_a\\\\b");
        assert_eq!(escape_like("zoë"), "zoë");
        assert_eq!(escape_like(""), "");
    }
}
