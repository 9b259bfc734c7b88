//! The problem answers of the OpenAPI document: the `Problem` schema (RFC 9457) and, per
//! route, the set of problem statuses it can send, declared once here so that the route
//! annotations stay short (`responses((status = 200, ...), problems::SignUp)`).
//!
//! Statuses every route of a kind can send are listed for all of them: the Origin check makes
//! every unsafe route (POST, PATCH, DELETE) able to send 403, and every route that reads a
//! store can send 503 when it is down (or, for the ones that hash, when the hasher is busy).

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, Type, response::Response};

/// An RFC 9457 problem: every error answer.
#[derive(Serialize, ToSchema)]
#[schema(as = Problem)]
pub(crate) struct ProblemSchema {
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    kind: String,
    #[schema(example = "Conflict")]
    title: String,
    #[schema(example = 409)]
    status: u16,
    #[schema(example = "A user with this email already exists")]
    detail: String,
    /// One entry per bad field (422 only).
    errors: Option<Vec<FieldErrorSchema>>,
}

/// One invalid field of a 422.
#[derive(Serialize, ToSchema)]
#[schema(as = FieldError)]
pub(crate) struct FieldErrorSchema {
    field: String,
    message: String,
}

/// One problem response: `application/problem+json`, with the headers its status carries.
fn problem(status: u16, description: &str) -> RefOr<Response> {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build();
    let mut response = ResponseBuilder::new()
        .description(description)
        .content("application/problem+json", content);
    let header = |description: &str| {
        HeaderBuilder::new()
            .schema(utoipa::openapi::ObjectBuilder::new().schema_type(Type::String))
            .description(Some(description))
            .build()
    };
    match status {
        401 => response = response.header("WWW-Authenticate", header("`Bearer`")),
        429 => response = response.header("Retry-After", header("Seconds to wait, at least 1")),
        _ => {}
    }
    RefOr::T(response.build())
}

// The descriptions the routes share.
const NOT_JSON: &str = "The body is not valid JSON";
const TOO_LARGE: &str = "The body is larger than the limit (64 KiB by default)";
const NOT_JSON_TYPE: &str = "The body is not `application/json` (or has no `Content-Type`)";
const UNAUTHENTICATED: &str = "Missing or invalid access token";
const CROSS_SITE: &str = "A cross-site request (the Origin check)";
const NOT_SUPERUSER: &str = "Not a superuser, or a cross-site request (the Origin check)";
const NOT_SUPERUSER_READ: &str = "Not a superuser";
const UNAVAILABLE: &str = "A dependency (database, cache) is unavailable";
const UNAVAILABLE_OR_BUSY: &str =
    "A dependency is unavailable, or the password hasher is busy (`Retry-After: 1`)";
const NOT_A_UUID: &str = "The path id is not a UUID";

/// Declares one `IntoResponses` type per route: its problem statuses and what each means.
macro_rules! problems {
    ($($(#[$doc:meta])* $name:ident { $($status:literal => $description:expr),* $(,)? })*) => {$(
        $(#[$doc])*
        pub(crate) struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                [$(($status, $description)),*]
                    .into_iter()
                    .map(|(status, description)| (status.to_string(), problem(status, description)))
                    .collect()
            }
        }
    )*};
}

problems! {
    /// `POST /api/access/signup`.
    SignUp {
        400 => NOT_JSON, 403 => CROSS_SITE, 409 => "The email is taken", 413 => TOO_LARGE,
        415 => NOT_JSON_TYPE, 422 => "Invalid or missing email, password or name",
        503 => UNAVAILABLE_OR_BUSY,
    }
    /// `POST /api/access/login`.
    LogIn {
        400 => "The body is not a valid form",
        401 => "Bad credentials (the same answer for an unknown email and a wrong password)",
        403 => "An inactive account or an unverified email (only after a correct password), \
                or a cross-site request",
        413 => TOO_LARGE, 415 => "The body is not `application/x-www-form-urlencoded`",
        422 => "A missing field", 429 => "Throttled: the account's back-off or the IP's cap",
        503 => UNAVAILABLE_OR_BUSY,
    }
    /// `POST /api/access/refresh`.
    Refresh {
        401 => "Missing, invalid, revoked or reused refresh token (the cookies are cleared)",
        403 => CROSS_SITE, 503 => UNAVAILABLE,
    }
    /// `POST /api/access/logout`.
    LogOut {
        401 => "Neither token names a live session (the cookies are cleared)",
        403 => CROSS_SITE, 503 => UNAVAILABLE,
    }
    /// `PATCH /api/access/password`.
    ChangePassword {
        400 => "The body is not valid JSON, or the current password is wrong",
        401 => UNAUTHENTICATED, 403 => CROSS_SITE, 413 => TOO_LARGE, 415 => NOT_JSON_TYPE,
        422 => "An invalid body, or a new password the policy refuses (checked first)",
        429 => "The account is in login back-off", 503 => UNAVAILABLE_OR_BUSY,
    }
    /// `POST /api/access/password-reset`.
    RequestPasswordReset {
        400 => NOT_JSON, 403 => CROSS_SITE, 413 => TOO_LARGE, 415 => NOT_JSON_TYPE,
        422 => "A missing or invalid email",
        429 => "The client's network is at its cap (the one failed logins count against)",
        503 => UNAVAILABLE,
    }
    /// `POST /api/access/password-reset/confirm`.
    ConfirmPasswordReset {
        400 => "The body is not valid JSON, or the token is invalid, spent or expired",
        403 => CROSS_SITE, 413 => TOO_LARGE, 415 => NOT_JSON_TYPE,
        422 => "A missing token, or a new password the policy refuses (every bad field is named)",
        503 => UNAVAILABLE_OR_BUSY,
    }
    /// `POST /api/access/verify-email`.
    VerifyEmail {
        400 => "The body is not valid JSON, or the token is invalid, spent or expired",
        403 => CROSS_SITE, 413 => TOO_LARGE, 415 => NOT_JSON_TYPE,
        422 => "A missing token (or not a string, or holding U+0000)",
        503 => UNAVAILABLE,
    }
    /// `POST /api/access/verify-email/resend`.
    ResendVerification {
        401 => UNAUTHENTICATED, 403 => CROSS_SITE,
        429 => "A verification email went out too recently, or too many this hour",
        503 => UNAVAILABLE,
    }
    /// An authenticated read of one's own account.
    OwnRead { 401 => UNAUTHENTICATED, 503 => UNAVAILABLE }
    /// An authenticated write without a body on one's own account.
    OwnWrite { 401 => UNAUTHENTICATED, 403 => CROSS_SITE, 503 => UNAVAILABLE }
    /// `DELETE /api/access/sessions/{sid}`.
    RevokeSession {
        401 => UNAUTHENTICATED, 403 => CROSS_SITE, 404 => "Not a live session of the caller",
        422 => "`sid` is not a UUID", 503 => UNAVAILABLE,
    }
    /// An admin read without parameters.
    AdminRead { 401 => UNAUTHENTICATED, 403 => NOT_SUPERUSER_READ, 503 => UNAVAILABLE }
    /// `GET /api/users`.
    ListUsers {
        401 => UNAUTHENTICATED, 403 => NOT_SUPERUSER_READ,
        422 => "A bad query parameter (every one is named)", 503 => UNAVAILABLE,
    }
    /// An admin read of one thing by id.
    AdminReadById {
        401 => UNAUTHENTICATED, 403 => NOT_SUPERUSER_READ, 404 => "No such user",
        422 => NOT_A_UUID, 503 => UNAVAILABLE,
    }
    /// `POST /api/users`.
    CreateUser {
        400 => NOT_JSON, 401 => UNAUTHENTICATED, 403 => NOT_SUPERUSER,
        409 => "The email is taken", 413 => TOO_LARGE, 415 => NOT_JSON_TYPE,
        422 => "Invalid fields (every one is named), an unknown role included",
        503 => UNAVAILABLE_OR_BUSY,
    }
    /// `PATCH /api/users/{id}`.
    UpdateUser {
        400 => NOT_JSON, 401 => UNAUTHENTICATED,
        403 => "Not a superuser, a protection (the primary admin, locking oneself out), or a \
                cross-site request",
        404 => "No such user", 409 => "The email is taken", 413 => TOO_LARGE,
        415 => NOT_JSON_TYPE,
        422 => "The path id or body fields (every one is named), an unknown role included",
        503 => UNAVAILABLE_OR_BUSY,
    }
    /// `DELETE /api/users/{id}` and `DELETE /api/users/{id}/sessions`.
    AdminUserWrite {
        401 => UNAUTHENTICATED,
        403 => "Not a superuser, a protection (the primary admin, deleting oneself), or a \
                cross-site request",
        404 => "No such user", 422 => NOT_A_UUID, 503 => UNAVAILABLE,
    }
    /// `POST /api/roles`.
    CreateRole {
        400 => NOT_JSON, 401 => UNAUTHENTICATED, 403 => NOT_SUPERUSER,
        409 => "The slug is taken", 413 => TOO_LARGE, 415 => NOT_JSON_TYPE,
        422 => "Invalid fields (every one is named)", 503 => UNAVAILABLE,
    }
    /// `PATCH /api/roles/{id}`.
    UpdateRole {
        400 => NOT_JSON, 401 => UNAUTHENTICATED, 403 => NOT_SUPERUSER, 404 => "No such role",
        413 => TOO_LARGE, 415 => NOT_JSON_TYPE,
        422 => "The path id or body fields (every one is named)", 503 => UNAVAILABLE,
    }
    /// `DELETE /api/roles/{id}`.
    DeleteRole {
        401 => UNAUTHENTICATED, 403 => NOT_SUPERUSER, 404 => "No such role",
        409 => "Users hold the role, or it is the default role", 422 => NOT_A_UUID,
        503 => UNAVAILABLE,
    }
    /// `GET /ready`.
    Ready { 503 => "Not ready: `checks` names what failed" }
}
