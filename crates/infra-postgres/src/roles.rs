//! Roles.

use async_trait::async_trait;
use authd_application::PortError;
use authd_application::ports::{CreateRoleError, RoleChanges, RoleDeletion, RoleRepository};
use authd_domain::{Role, RoleDescription, RoleId, RoleName, RoleRef, RoleSlug};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::errors::{DbError, USER_ROLE, corrupt};
use crate::pool::PgPool;
use crate::schema::roles;

#[derive(Queryable, Selectable)]
#[diesel(table_name = roles, check_for_backend(diesel::pg::Pg))]
struct RoleRow {
    id: Uuid,
    slug: String,
    name: String,
    description: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<RoleRow> for Role {
    type Error = PortError;

    fn try_from(row: RoleRow) -> Result<Self, PortError> {
        Ok(Self {
            id: RoleId::from_uuid(row.id),
            slug: RoleSlug::parse(&row.slug).map_err(|error| corrupt("role slug", error))?,
            name: RoleName::try_from(row.name).map_err(|error| corrupt("role name", error))?,
            // A stored description is never blank (no description is NULL).
            description: row
                .description
                .map(RoleDescription::try_from)
                .transpose()
                .map_err(|error| corrupt("role description", error))?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// The part of a role read with a user.
#[derive(Queryable, Selectable)]
#[diesel(table_name = roles, check_for_backend(diesel::pg::Pg))]
pub(crate) struct RoleRefRow {
    id: Uuid,
    slug: String,
    name: String,
}

impl TryFrom<RoleRefRow> for RoleRef {
    type Error = PortError;

    fn try_from(row: RoleRefRow) -> Result<Self, PortError> {
        Ok(Self {
            id: RoleId::from_uuid(row.id),
            slug: RoleSlug::parse(&row.slug).map_err(|error| corrupt("role slug", error))?,
            name: RoleName::try_from(row.name).map_err(|error| corrupt("role name", error))?,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = roles)]
struct NewRole<'a> {
    id: Uuid,
    slug: &'a str,
    name: &'a str,
    description: Option<&'a str>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// An update: `None` leaves a column as it is, and `description: Some(None)` sets it to NULL.
/// `updated_at` is always set, so the changeset is never empty.
#[derive(AsChangeset)]
#[diesel(table_name = roles)]
struct RoleChangeset<'a> {
    name: Option<&'a str>,
    description: Option<Option<&'a str>>,
    updated_at: DateTime<Utc>,
}

/// [`RoleRepository`] on the `roles` table.
#[derive(Clone)]
pub struct PgRoleRepository {
    pool: PgPool,
}

impl PgRoleRepository {
    /// An adapter drawing connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl RoleRepository for PgRoleRepository {
    async fn find_by_slug(&self, slug: &RoleSlug) -> Result<Option<Role>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let row = roles::table
            .filter(roles::slug.eq(slug.as_str()))
            .select(RoleRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        row.map(Role::try_from).transpose()
    }

    async fn list(&self) -> Result<Vec<Role>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let rows = roles::table
            .order((roles::created_at.asc(), roles::id.asc()))
            .select(RoleRow::as_select())
            .load(&mut conn)
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        rows.into_iter().map(Role::try_from).collect()
    }

    async fn find(&self, id: RoleId) -> Result<Option<Role>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let row = roles::table
            .find(id.as_uuid())
            .select(RoleRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        row.map(Role::try_from).transpose()
    }

    async fn create(&self, role: &Role) -> Result<(), CreateRoleError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        // The unique slug decides (a taken one becomes `SlugTaken` in the conversion from
        // `DbError`): two creations racing for one slug cannot both succeed.
        diesel::insert_into(roles::table)
            .values(NewRole {
                id: role.id.as_uuid(),
                slug: role.slug.as_str(),
                name: role.name.as_str(),
                description: role.description.as_ref().map(RoleDescription::as_str),
                created_at: role.created_at,
                updated_at: role.updated_at,
            })
            .execute(&mut conn)
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        Ok(())
    }

    async fn update(
        &self,
        id: RoleId,
        changes: &RoleChanges,
        now: DateTime<Utc>,
    ) -> Result<Option<Role>, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        let row = diesel::update(roles::table.find(id.as_uuid()))
            .set(RoleChangeset {
                name: changes.name.as_ref().map(RoleName::as_str),
                description: changes
                    .description
                    .as_ref()
                    .map(|description| description.as_ref().map(RoleDescription::as_str)),
                updated_at: now,
            })
            .returning(RoleRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        row.map(Role::try_from).transpose()
    }

    async fn delete(&self, id: RoleId) -> Result<RoleDeletion, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        // No count of holders first: the foreign key decides, so a user given the role while
        // it is being deleted cannot end up holding a deleted role.
        let deleted = diesel::delete(roles::table.find(id.as_uuid()))
            .execute(&mut conn)
            .await;
        match deleted.map_err(|error| DbError::from_query(error, &mut conn)) {
            Ok(0) => Ok(RoleDeletion::NotFound),
            Ok(_) => Ok(RoleDeletion::Deleted),
            Err(error) if error.violates_foreign_key(USER_ROLE) => Ok(RoleDeletion::InUse),
            Err(error) => Err(error.into()),
        }
    }

    async fn ensure(
        &self,
        slug: &RoleSlug,
        name: &RoleName,
        now: DateTime<Utc>,
    ) -> Result<Role, PortError> {
        let mut conn = self.pool.get().await.map_err(DbError::from_pool)?;
        // Instances starting together may all insert: the unique slug lets one win, and an
        // insert that meets a concurrent one waits for it to commit, so the read below sees
        // the winner's row whoever won.
        diesel::insert_into(roles::table)
            .values(NewRole {
                id: RoleId::generate().as_uuid(),
                slug: slug.as_str(),
                name: name.as_str(),
                description: None,
                created_at: now,
                updated_at: now,
            })
            .on_conflict(roles::slug)
            .do_nothing()
            .execute(&mut conn)
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        let row = roles::table
            .filter(roles::slug.eq(slug.as_str()))
            .select(RoleRow::as_select())
            .first(&mut conn)
            .await
            .map_err(|error| DbError::from_query(error, &mut conn))?;
        Role::try_from(row)
    }
}
