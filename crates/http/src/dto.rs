//! Request and response bodies: the JSON shapes of API.md.

use authd_application::use_cases::SessionView;
use authd_domain::User;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use actix_web::HttpRequest;
use authd_application::FieldError;
use authd_application::use_cases::{
    CreateRole, NewRole, NewUserRequest, RoleUpdate, SignUpRequest, UpdateRole, UserPatch,
};
use serde_json::{Map, Value};

use crate::AppState;
use crate::extract::{Field, Kind, Schema};

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
            name: user.name.clone(),
            is_active: user.is_active,
            is_superuser: user.is_superuser,
            is_verified: user.is_verified,
            role: RoleRefDto {
                id: user.role.id.as_uuid(),
                slug: user.role.slug.to_string(),
                name: user.role.name.clone(),
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

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct SignUpBody {
    pub email: String,
    pub password: String,
    pub name: Option<String>,
}

impl Schema for SignUpBody {
    async fn semantic_errors(
        object: &Map<String, Value>,
        state: &AppState,
        _: &HttpRequest,
    ) -> Vec<FieldError> {
        let request = SignUpRequest {
            email: text(object, "email").unwrap_or_default(),
            password: text(object, "password").unwrap_or_default(),
            name: text(object, "name"),
        };
        state.use_cases.sign_up.field_errors(&request)
    }

    const FIELDS: &'static [Field] = &[
        Field::required("email", Kind::String),
        Field::required("password", Kind::String),
        // `null` is no name.
        Field::nullable("name", Kind::String),
    ];
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct PasswordChangeBody {
    pub current_password: String,
    pub new_password: String,
}

impl Schema for PasswordChangeBody {
    const FIELDS: &'static [Field] = &[
        Field::required("current_password", Kind::String),
        Field::required("new_password", Kind::String),
    ];
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
            name: role.name.clone(),
            description: role.description.clone(),
            created_at: role.created_at,
            updated_at: role.updated_at,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct NewRoleBody {
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
}

impl Schema for NewRoleBody {
    async fn semantic_errors(
        object: &Map<String, Value>,
        _: &AppState,
        _: &HttpRequest,
    ) -> Vec<FieldError> {
        CreateRole::field_errors(&NewRole {
            slug: text(object, "slug").unwrap_or_default(),
            name: text(object, "name").unwrap_or_default(),
            description: text(object, "description"),
        })
    }

    const FIELDS: &'static [Field] = &[
        Field::required("slug", Kind::String),
        Field::required("name", Kind::String),
        // `null` is no description.
        Field::nullable("description", Kind::String),
    ];
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct RoleUpdateBody {
    /// Absent: unchanged; `null` is refused.
    #[schema(nullable = false)]
    pub name: Option<String>,
    /// Absent: unchanged; `null`: cleared.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

impl Schema for RoleUpdateBody {
    async fn semantic_errors(
        object: &Map<String, Value>,
        _: &AppState,
        _: &HttpRequest,
    ) -> Vec<FieldError> {
        UpdateRole::field_errors(&RoleUpdate {
            name: text(object, "name"),
            description: object
                .get("description")
                .map(|value| value.as_str().map(str::to_owned)),
        })
    }

    const FIELDS: &'static [Field] = &[
        Field::optional("name", Kind::String),
        // `null` clears it.
        Field::nullable("description", Kind::String),
    ];
}

/// A field that is present, even as `null` (absent fields take the `default`, `None`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct NewUserBody {
    pub email: String,
    pub password: String,
    pub name: Option<String>,
    /// A role slug; absent: the default role.
    #[schema(nullable = false)]
    pub role: Option<String>,
    #[schema(nullable = false)]
    pub is_active: Option<bool>,
    #[schema(nullable = false)]
    pub is_superuser: Option<bool>,
    #[schema(nullable = false)]
    pub is_verified: Option<bool>,
}

impl Schema for NewUserBody {
    async fn semantic_errors(
        object: &Map<String, Value>,
        state: &AppState,
        _: &HttpRequest,
    ) -> Vec<FieldError> {
        let request = NewUserRequest {
            email: text(object, "email").unwrap_or_default(),
            password: text(object, "password").unwrap_or_default(),
            name: text(object, "name"),
            role: text(object, "role"),
            ..NewUserRequest::default()
        };
        state.use_cases.create_user.field_errors(&request).await
    }

    const FIELDS: &'static [Field] = &[
        Field::required("email", Kind::String),
        Field::required("password", Kind::String),
        // `null` is no name.
        Field::nullable("name", Kind::String),
        Field::optional("role", Kind::String),
        Field::optional("is_active", Kind::Bool),
        Field::optional("is_superuser", Kind::Bool),
        Field::optional("is_verified", Kind::Bool),
    ];
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct UserPatchBody {
    #[schema(nullable = false)]
    pub email: Option<String>,
    /// Absent: unchanged; `null`: cleared.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[schema(nullable = false)]
    pub role: Option<String>,
    #[schema(nullable = false)]
    pub is_active: Option<bool>,
    #[schema(nullable = false)]
    pub is_superuser: Option<bool>,
    #[schema(nullable = false)]
    pub is_verified: Option<bool>,
    #[schema(nullable = false)]
    pub password: Option<String>,
}

impl Schema for UserPatchBody {
    async fn semantic_errors(
        object: &Map<String, Value>,
        state: &AppState,
        request: &HttpRequest,
    ) -> Vec<FieldError> {
        let Some(id) = request
            .match_info()
            .get("id")
            .and_then(|id| id.parse().ok())
        else {
            return target_free_patch_errors(object, state).await;
        };
        let patch = UserPatch {
            email: text(object, "email"),
            name: object
                .get("name")
                .map(|value| value.as_str().map(str::to_owned)),
            role: text(object, "role"),
            password: text(object, "password"),
            ..UserPatch::default()
        };
        state
            .use_cases
            .update_user
            .field_errors(authd_domain::UserId::from_uuid(id), patch)
            .await
    }

    const FIELDS: &'static [Field] = &[
        Field::optional("email", Kind::String),
        // `null` clears it.
        Field::nullable("name", Kind::String),
        Field::optional("role", Kind::String),
        Field::optional("is_active", Kind::Bool),
        Field::optional("is_superuser", Kind::Bool),
        Field::optional("is_verified", Kind::Bool),
        Field::optional("password", Kind::String),
    ];
}

/// The errors of a user patch whose path id is not a UUID, so that they are answered together
/// with the path's: with no target to compare against, the patch's strings are checked as an
/// admin-created account's would be (email, password against the patch's own email, name,
/// role), and only the errors of fields the patch sets are kept.
async fn target_free_patch_errors(
    object: &Map<String, Value>,
    state: &AppState,
) -> Vec<FieldError> {
    let request = NewUserRequest {
        email: text(object, "email").unwrap_or_default(),
        password: text(object, "password").unwrap_or_default(),
        name: text(object, "name"),
        role: text(object, "role"),
        ..NewUserRequest::default()
    };
    state
        .use_cases
        .create_user
        .field_errors(&request)
        .await
        .into_iter()
        .filter(|error| text(object, error.field).is_some())
        .collect()
}

/// `{items, page, per_page, total}`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UserPageDto {
    pub items: Vec<UserDto>,
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
}

/// A string field of a JSON object, if it is one.
fn text(object: &Map<String, Value>, name: &str) -> Option<String> {
    object.get(name).and_then(Value::as_str).map(str::to_owned)
}
