use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use authd_application::use_cases::{
    AuthError, ChangePasswordError, ConfirmResetError, CreateRoleError, CreateUserError,
    DeleteRoleError, DeleteUserError, GetUserError, ListRolesError, ListUsersError, LoginError,
    LogoutError, NotSuperuser, RefreshError, ResendError, ResetRequestError, RevokeSessionError,
    SignUpError, UpdateRoleError, UpdateUserError, VerifyEmailError,
};
use authd_application::{Dependency, PortError};
use authd_domain::{PasswordError, Protection};
use serde::Serialize;

/// One invalid request field (a path or query parameter, or a body field), reported with all
/// the others in one 422.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name in the request.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A field error from any displayable reason.
    pub fn new(field: &'static str, message: impl std::fmt::Display) -> Self {
        Self {
            field,
            message: message.to_string(),
        }
    }
}

/// Every error the API answers with, rendered once as RFC 9457 `application/problem+json`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: a body that is not valid JSON or a form, a wrong current password, or a link token
    /// that is invalid, spent or expired.
    #[error("{0}")]
    BadRequest(String),
    /// 401, with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 405, with `Allow` listing the methods the path answers (RFC 9110 §15.5.6).
    #[error("method not allowed; this path answers {}", allow_value(.0))]
    MethodNotAllowed(Vec<Method>),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 413.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422, one entry per bad field.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 429, with `Retry-After`.
    #[error("too many attempts")]
    TooManyRequests(Duration),
    /// 503: a dependency is down; the detail names it.
    #[error("the {0} is unavailable")]
    Unavailable(Dependency),
    /// 503 with `Retry-After: 1`: too much work is queued (password hashing).
    #[error("the server is busy; try again in a second")]
    Busy,
    /// 500: logged in full, said nothing about.
    #[error(transparent)]
    Internal(anyhow::Error),
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<ProblemField<'a>>>,
}

#[derive(Serialize)]
struct ProblemField<'a> {
    field: &'a str,
    message: &'a str,
}

impl ApiError {
    /// A 422 for one field.
    pub fn invalid(field: &'static str, message: impl std::fmt::Display) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// The error response, plus whatever `extra` adds (cleared cookies, say).
    pub fn response_with(&self, extra: impl FnOnce(&mut HttpResponseBuilder)) -> HttpResponse {
        let status = self.status_code();
        let detail = match self {
            Self::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error");
                "An unexpected error occurred".to_owned()
            }
            Self::Unavailable(dependency) => {
                tracing::warn!(%dependency, "dependency unavailable");
                format!("The {dependency} is unavailable; try again shortly")
            }
            Self::Validation(_) => "The request is invalid".to_owned(),
            other => capitalize(&other.to_string()),
        };
        let errors = match self {
            Self::Validation(fields) => Some(
                fields
                    .iter()
                    .map(|error| ProblemField {
                        field: error.field,
                        message: &error.message,
                    })
                    .collect(),
            ),
            _ => None,
        };
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            errors,
        };
        let mut response = HttpResponse::build(status);
        response.content_type("application/problem+json");
        match self {
            Self::Unauthorized(_) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            Self::TooManyRequests(wait) => {
                response.insert_header((header::RETRY_AFTER, wait.as_secs().max(1)));
            }
            Self::Busy => {
                response.insert_header((header::RETRY_AFTER, 1));
            }
            Self::MethodNotAllowed(methods) => {
                response.insert_header((header::ALLOW, allow_value(methods)));
            }
            _ => {}
        }
        extra(&mut response);
        response.json(problem)
    }
}

/// The value of `Allow`: the methods, comma-separated (empty when there are none).
fn allow_value(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.response_with(|_| {})
    }
}

const NOT_AUTHENTICATED: &str = "not authenticated";

impl From<PortError> for ApiError {
    fn from(error: PortError) -> Self {
        match error {
            PortError::Unavailable(dependency) => Self::Unavailable(dependency),
            PortError::Busy => Self::Busy,
            PortError::Unexpected(error) => Self::Internal(error),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Unauthenticated(reason) => {
                tracing::info!(%reason, "request not authenticated");
                Self::Unauthorized(NOT_AUTHENTICATED.into())
            }
            AuthError::Port(error) => error.into(),
        }
    }
}

/// The detail of a 409 for a taken email (API.md's example).
const EMAIL_TAKEN: &str = "a user with this email already exists";
/// The message of a body's role that names no role.
pub(crate) const NO_SUCH_ROLE: &str = "no such role";

impl From<SignUpError> for ApiError {
    fn from(error: SignUpError) -> Self {
        match error {
            SignUpError::EmailTaken => Self::Conflict(EMAIL_TAKEN.into()),
            SignUpError::Port(error) => error.into(),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::Throttled { retry_after } => Self::TooManyRequests(retry_after),
            LoginError::BadCredentials => Self::Unauthorized("incorrect email or password".into()),
            LoginError::Inactive => Self::Forbidden("this account is inactive".into()),
            LoginError::Unverified => Self::Forbidden("Email address not verified".into()),
            LoginError::CredentialsChanged => {
                Self::Unauthorized("the credentials changed during sign-in; sign in again".into())
            }
            LoginError::Port(error) => error.into(),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(error: RefreshError) -> Self {
        match error {
            RefreshError::Port(error) => error.into(),
            other => {
                tracing::info!(reason = %other, "refresh refused");
                Self::Unauthorized("invalid or expired refresh token".into())
            }
        }
    }
}

impl From<LogoutError> for ApiError {
    fn from(error: LogoutError) -> Self {
        match error {
            LogoutError::NoSession => Self::Unauthorized(NOT_AUTHENTICATED.into()),
            LogoutError::Port(error) => error.into(),
        }
    }
}

impl From<ChangePasswordError> for ApiError {
    fn from(error: ChangePasswordError) -> Self {
        match error {
            ChangePasswordError::WrongPassword => {
                Self::BadRequest("the current password is incorrect".into())
            }
            ChangePasswordError::Throttled { retry_after } => Self::TooManyRequests(retry_after),
            // Whatever changed the credentials meanwhile (a reset, a revoke-all) revoked the
            // caller's session too: it is no longer authenticated.
            ChangePasswordError::CredentialsChanged => {
                Self::Unauthorized("the password was changed meanwhile; sign in again".into())
            }
            ChangePasswordError::Port(error) => error.into(),
        }
    }
}

/// The detail of a 400 for a link token that is unknown, spent or expired: which of them is
/// not said.
const INVALID_LINK_TOKEN: &str = "invalid or expired token";

impl From<ResetRequestError> for ApiError {
    fn from(error: ResetRequestError) -> Self {
        match error {
            ResetRequestError::Throttled { retry_after } => Self::TooManyRequests(retry_after),
            ResetRequestError::Port(error) => error.into(),
        }
    }
}

impl From<ConfirmResetError> for ApiError {
    fn from(error: ConfirmResetError) -> Self {
        match error {
            ConfirmResetError::InvalidToken => Self::BadRequest(INVALID_LINK_TOKEN.into()),
            ConfirmResetError::PasswordIsEmail => {
                Self::invalid("new_password", PasswordError::SameAsEmail)
            }
            ConfirmResetError::Port(error) => error.into(),
        }
    }
}

impl From<VerifyEmailError> for ApiError {
    fn from(error: VerifyEmailError) -> Self {
        match error {
            VerifyEmailError::InvalidToken => Self::BadRequest(INVALID_LINK_TOKEN.into()),
            VerifyEmailError::Port(error) => error.into(),
        }
    }
}

impl From<ResendError> for ApiError {
    fn from(error: ResendError) -> Self {
        match error {
            ResendError::Throttled { retry_after } => Self::TooManyRequests(retry_after),
            ResendError::Port(error) => error.into(),
        }
    }
}

impl From<NotSuperuser> for ApiError {
    fn from(_: NotSuperuser) -> Self {
        Self::Forbidden("superuser rights are required".into())
    }
}

impl From<Protection> for ApiError {
    fn from(protection: Protection) -> Self {
        Self::Forbidden(
            match protection {
                Protection::PrimaryAdminProtected => {
                    "only the primary admin may change the primary admin"
                }
                Protection::CannotDeactivateSelf => "you may not deactivate your own account",
                Protection::CannotDemoteSelf => "you may not demote your own account",
                Protection::CannotDeleteSelf => "you may not delete your own account",
                // The domain may add protections; until the edge words one, it is refused
                // all the same.
                _ => "this action is not allowed",
            }
            .into(),
        )
    }
}

fn no_such(what: &str) -> ApiError {
    ApiError::NotFound(format!("no such {what}"))
}

impl From<ListRolesError> for ApiError {
    fn from(error: ListRolesError) -> Self {
        match error {
            ListRolesError::NotSuperuser => NotSuperuser.into(),
            ListRolesError::Port(error) => error.into(),
        }
    }
}

impl From<CreateRoleError> for ApiError {
    fn from(error: CreateRoleError) -> Self {
        match error {
            CreateRoleError::NotSuperuser => NotSuperuser.into(),
            CreateRoleError::SlugTaken => {
                Self::Conflict("a role with this slug already exists".into())
            }
            CreateRoleError::Port(error) => error.into(),
        }
    }
}

impl From<UpdateRoleError> for ApiError {
    fn from(error: UpdateRoleError) -> Self {
        match error {
            UpdateRoleError::NotSuperuser => NotSuperuser.into(),
            UpdateRoleError::NotFound => no_such("role"),
            UpdateRoleError::Port(error) => error.into(),
        }
    }
}

impl From<DeleteRoleError> for ApiError {
    fn from(error: DeleteRoleError) -> Self {
        match error {
            DeleteRoleError::NotSuperuser => NotSuperuser.into(),
            DeleteRoleError::NotFound => no_such("role"),
            DeleteRoleError::DefaultRoleProtected => {
                Self::Conflict("the default role cannot be deleted: signups are given it".into())
            }
            DeleteRoleError::RoleInUse => {
                Self::Conflict("users still hold this role: give them another one first".into())
            }
            DeleteRoleError::Port(error) => error.into(),
        }
    }
}

impl From<ListUsersError> for ApiError {
    fn from(error: ListUsersError) -> Self {
        match error {
            ListUsersError::NotSuperuser => NotSuperuser.into(),
            ListUsersError::Port(error) => error.into(),
        }
    }
}

impl From<GetUserError> for ApiError {
    fn from(error: GetUserError) -> Self {
        match error {
            GetUserError::NotSuperuser => NotSuperuser.into(),
            GetUserError::NotFound => no_such("user"),
            GetUserError::Port(error) => error.into(),
        }
    }
}

impl From<CreateUserError> for ApiError {
    fn from(error: CreateUserError) -> Self {
        match error {
            CreateUserError::NotSuperuser => NotSuperuser.into(),
            CreateUserError::UnknownRole => Self::invalid("role", NO_SUCH_ROLE),
            CreateUserError::EmailTaken => Self::Conflict(EMAIL_TAKEN.into()),
            CreateUserError::Port(error) => error.into(),
        }
    }
}

impl From<UpdateUserError> for ApiError {
    fn from(error: UpdateUserError) -> Self {
        match error {
            UpdateUserError::NotSuperuser => NotSuperuser.into(),
            UpdateUserError::NotFound => no_such("user"),
            UpdateUserError::Protected(protection) => protection.into(),
            UpdateUserError::UnknownRole => Self::invalid("role", NO_SUCH_ROLE),
            UpdateUserError::PasswordIsEmail => {
                Self::invalid("password", PasswordError::SameAsEmail)
            }
            UpdateUserError::EmailTaken => Self::Conflict(EMAIL_TAKEN.into()),
            UpdateUserError::Port(error) => error.into(),
        }
    }
}

impl From<DeleteUserError> for ApiError {
    fn from(error: DeleteUserError) -> Self {
        match error {
            DeleteUserError::NotSuperuser => NotSuperuser.into(),
            DeleteUserError::NotFound => no_such("user"),
            DeleteUserError::Protected(protection) => protection.into(),
            DeleteUserError::Port(error) => error.into(),
        }
    }
}

impl From<RevokeSessionError> for ApiError {
    fn from(error: RevokeSessionError) -> Self {
        match error {
            RevokeSessionError::NotFound => Self::NotFound("no such session".into()),
            RevokeSessionError::Port(error) => error.into(),
        }
    }
}
