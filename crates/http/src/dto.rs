//! Request and response bodies: the JSON shapes of API.md.

use application::use_cases::SessionView;
use chrono::{DateTime, Utc};
use domain::User;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use application::FieldError;
use application::use_cases::SignUpRequest;
use serde_json::{Map, Value};

use crate::AppState;
use crate::extract::{Field, Kind, Schema};

#[derive(Serialize)]
pub(crate) struct RoleRefDto {
    id: Uuid,
    slug: String,
    name: String,
}

/// `User` of API.md.
#[derive(Serialize)]
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
#[derive(Serialize)]
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

#[derive(Deserialize)]
pub(crate) struct SignUpBody {
    pub email: String,
    pub password: String,
    pub name: Option<String>,
}

impl Schema for SignUpBody {
    fn semantic_errors(object: &Map<String, Value>, state: &AppState) -> Vec<FieldError> {
        let text = |name: &str| object.get(name).and_then(Value::as_str).map(str::to_owned);
        let request = SignUpRequest {
            email: text("email").unwrap_or_default(),
            password: text("password").unwrap_or_default(),
            name: text("name"),
        };
        state.use_cases.sign_up.field_errors(&request)
    }

    const FIELDS: &'static [Field] = &[
        Field {
            name: "email",
            kind: Kind::String,
            required: true,
        },
        Field {
            name: "password",
            kind: Kind::String,
            required: true,
        },
        Field {
            name: "name",
            kind: Kind::String,
            required: false,
        },
    ];
}

#[derive(Deserialize)]
pub(crate) struct PasswordChangeBody {
    pub current_password: String,
    pub new_password: String,
}

impl Schema for PasswordChangeBody {
    const FIELDS: &'static [Field] = &[
        Field {
            name: "current_password",
            kind: Kind::String,
            required: true,
        },
        Field {
            name: "new_password",
            kind: Kind::String,
            required: true,
        },
    ];
}
