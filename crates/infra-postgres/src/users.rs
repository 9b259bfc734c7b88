//! Users, read with their role.

use application::PortError;
use application::ports::{CreateUserError, UserRepository};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, RunQueryDsl};
use domain::{Email, PasswordHash, RoleRef, Session, User, UserId};
use uuid::Uuid;

use crate::errors::{DbError, corrupt};
use crate::pool::PgPool;
use crate::roles::RoleRefRow;
use crate::schema::{roles, users};
use crate::sessions::{SessionRow, revoke_all_of};

/// The constraint that decides an email is taken (see the initial migration).
const EMAIL_UNIQUE: &str = "users_email_normalized_key";

#[derive(Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
struct UserRow {
    id: Uuid,
    email: String,
    name: Option<String>,
    is_active: bool,
    is_superuser: bool,
    is_verified: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl UserRow {
    fn into_user(self, role: RoleRefRow) -> Result<User, PortError> {
        Ok(User {
            id: UserId::from_uuid(self.id),
            email: Email::parse(&self.email).map_err(|error| corrupt("user email", error))?,
            name: self.name,
            is_active: self.is_active,
            is_superuser: self.is_superuser,
            is_verified: self.is_verified,
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
    role_id: Uuid,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
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
    async fn create(
        &self,
        user: &User,
        password_hash: &PasswordHash,
    ) -> Result<(), CreateUserError> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(DbError::from_pool)
            .map_err(PortError::from)?;
        // No read-before-write: the unique constraint decides, so two sign-ups racing for one
        // email cannot both succeed, and the loser's single INSERT leaves nothing behind.
        let inserted = diesel::insert_into(users::table)
            .values(NewUser {
                id: user.id.as_uuid(),
                email: user.email.as_str(),
                email_normalized: user.email.normalized(),
                name: user.name.as_deref(),
                password_hash: password_hash.as_str(),
                is_active: user.is_active,
                is_superuser: user.is_superuser,
                is_verified: user.is_verified,
                role_id: user.role.id.as_uuid(),
                created_at: user.created_at,
                updated_at: user.updated_at,
            })
            .execute(&mut conn)
            .await;
        match inserted.map_err(|error| DbError::from_query(error, &mut conn)) {
            Ok(_) => Ok(()),
            Err(error) if error.violates_unique(EMAIL_UNIQUE) => Err(CreateUserError::EmailTaken),
            Err(error) => Err(PortError::from(error).into()),
        }
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let row = users::table
            .inner_join(roles::table)
            .filter(users::id.eq(id.as_uuid()))
            .select((UserRow::as_select(), RoleRefRow::as_select()))
            .first::<(UserRow, RoleRefRow)>(&mut conn)
            .await
            .optional()
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        row.map(|(user, role)| user.into_user(role)).transpose()
    }

    async fn find_credentials(
        &self,
        email: &Email,
    ) -> Result<Option<(User, PasswordHash)>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let row = users::table
            .inner_join(roles::table)
            .filter(users::email_normalized.eq(email.normalized()))
            .select((
                UserRow::as_select(),
                RoleRefRow::as_select(),
                users::password_hash,
            ))
            .first::<(UserRow, RoleRefRow, String)>(&mut conn)
            .await
            .optional()
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        row.map(|(user, role, hash)| Ok((user.into_user(role)?, PasswordHash::new(hash))))
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
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        diesel::update(users::table.find(id.as_uuid()))
            .set((
                users::password_hash.eq(hash.as_str()),
                users::updated_at.eq(now),
            ))
            .execute(&mut conn)
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(())
    }

    async fn replace_password(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        // One transaction: a failure between the two statements must not leave a new password
        // with the old sessions still live (or the reverse).
        let revoked = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                diesel::update(users::table.find(id.as_uuid()))
                    .set((
                        users::password_hash.eq(hash.as_str()),
                        users::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .await?;
                revoke_all_of(id, now).get_results::<SessionRow>(conn).await
            })
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(revoked.into_iter().map(Session::from).collect())
    }
}
