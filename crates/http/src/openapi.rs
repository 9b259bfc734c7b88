//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and
//! the DTOs' schemas. A test checks that it lists exactly the routes the server registers.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use actix_web::http::Method;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::dto;
use crate::routes::{access, ops, roles, users};

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

/// The OAuth2 password form of `POST /api/access/login`.
#[derive(Serialize, ToSchema)]
#[schema(as = LoginForm)]
pub(crate) struct LoginFormSchema {
    /// The email.
    username: String,
    password: String,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "authd", description = "Email and password authentication with rotating JWT sessions."),
    paths(
        access::sign_up, access::log_in, access::refresh, access::log_out, access::change_password,
        access::me, access::list_sessions, access::revoke_session, access::log_out_everywhere,
        roles::list, roles::create, roles::update, roles::delete,
        users::list, users::create, users::get, users::update, users::delete, users::sessions,
        users::revoke_sessions,
        ops::health, ops::ready, ops::metrics, ops::jwks, ops::openapi,
    ),
    components(schemas(
        ProblemSchema, FieldErrorSchema, LoginFormSchema, dto::UserDto, dto::RoleRefDto, dto::SessionDto,
        dto::RoleDto, dto::UserPageDto, dto::SignUpBody, dto::PasswordChangeBody, dto::NewRoleBody,
        dto::RoleUpdateBody, dto::NewUserBody, dto::UserPatchBody,
    )),
    modifiers(&Security),
    tags(
        (name = "access", description = "The user's own account"),
        (name = "admin", description = "Superusers only"),
        (name = "operations", description = "Health, readiness, metrics, keys"),
    )
)]
pub(crate) struct ApiDoc;

/// The access token, as a Bearer header or as the `access_token` cookie.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("access_token"))),
        );
    }
}

/// The document, as served at `/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The methods a path template answers, as the document lists them (read once): the `Allow` of
/// a 405. The document is the one list of operations; a test checks, both ways, that it names
/// exactly the methods the server routes.
pub(crate) fn path_methods(template: &str) -> &'static [Method] {
    static METHODS: LazyLock<BTreeMap<String, Vec<Method>>> = LazyLock::new(|| {
        document()
            .paths
            .paths
            .into_iter()
            .map(|(path, item)| {
                let methods = [
                    (Method::GET, item.get.is_some()),
                    (Method::HEAD, item.head.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::PUT, item.put.is_some()),
                    (Method::PATCH, item.patch.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                    (Method::OPTIONS, item.options.is_some()),
                    (Method::TRACE, item.trace.is_some()),
                ]
                .into_iter()
                .filter_map(|(method, documented)| documented.then_some(method))
                .collect();
                (path, methods)
            })
            .collect()
    });
    METHODS.get(template).map_or(&[], Vec::as_slice)
}
