//! Response bodies: the JSON shapes of API.md. (Request bodies are parsed in `requests`.)

use authd_application::use_cases::SessionView;
use authd_domain::User;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RoleRefDto {
    id: Uuid,
    slug: String,
    name: String,
}

/// `User` of API.md.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UserDto {
    id: Uuid,
    email: String,
    name: Option<String>,
    is_active: bool,
    is_superuser: bool,
    is_verified: bool,
    role: RoleRefDto,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<&User> for UserDto {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.as_uuid(),
            email: user.email.to_string(),
            name: user.name.as_ref().map(|name| name.as_str().to_owned()),
            is_active: user.is_active,
            is_superuser: user.is_superuser,
            is_verified: user.is_verified,
            role: RoleRefDto {
                id: user.role.id.as_uuid(),
                slug: user.role.slug.to_string(),
                name: user.role.name.as_str().to_owned(),
            },
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// `Session` of API.md.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SessionDto {
    id: Uuid,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    user_agent: Option<String>,
    ip: Option<String>,
    current: bool,
}

impl From<SessionView> for SessionDto {
    fn from(view: SessionView) -> Self {
        let session = view.session;
        Self {
            id: session.id.as_uuid(),
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            expires_at: session.expires_at,
            user_agent: session.user_agent,
            ip: session.ip,
            current: view.current,
        }
    }
}

/// `Role` of API.md.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RoleDto {
    id: Uuid,
    slug: String,
    name: String,
    description: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<&authd_domain::Role> for RoleDto {
    fn from(role: &authd_domain::Role) -> Self {
        Self {
            id: role.id.as_uuid(),
            slug: role.slug.to_string(),
            name: role.name.as_str().to_owned(),
            description: role
                .description
                .as_ref()
                .map(|description| description.as_str().to_owned()),
            created_at: role.created_at,
            updated_at: role.updated_at,
        }
    }
}

/// `{items, page, per_page, total}`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UserPageDto {
    pub items: Vec<UserDto>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}
