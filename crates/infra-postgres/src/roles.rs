//! Roles.

use application::PortError;
use application::ports::RoleRepository;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::{Role, RoleId, RoleRef, RoleSlug};
use uuid::Uuid;

use crate::errors::{DbError, corrupt};
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
            name: row.name,
            description: row.description,
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
            name: row.name,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = roles)]
struct NewRole<'a> {
    id: Uuid,
    slug: &'a str,
    name: &'a str,
    created_at: DateTime<Utc>,
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

    async fn ensure(
        &self,
        slug: &RoleSlug,
        name: &str,
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
                name,
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
