//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and
//! the DTOs' schemas. A test checks that it lists exactly the routes the server registers.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use actix_web::http::Method;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::problem::{FieldErrorSchema, ProblemSchema};
use crate::routes::{access, ops, roles, users};
use crate::{dto, requests};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "authd",
        description = "Email and password authentication with rotating JWT sessions."
    ),
    paths(
        access::sign_up, access::log_in, access::refresh, access::log_out, access::change_password,
        access::me, access::list_sessions, access::revoke_session, access::log_out_everywhere,
        access::request_password_reset, access::confirm_password_reset, access::verify_email,
        access::resend_verification,
        roles::list, roles::create, roles::update, roles::delete,
        users::list, users::create, users::get, users::update, users::delete, users::sessions,
        users::revoke_sessions,
        ops::health, ops::ready, ops::metrics, ops::jwks, ops::openapi,
    ),
    components(schemas(
        ProblemSchema, FieldErrorSchema, requests::LoginFormSchema, dto::UserDto, dto::RoleRefDto,
        dto::SessionDto, dto::RoleDto, dto::UserPageDto, requests::SignUpBody,
        requests::PasswordChangeBody, requests::NewRoleBody, requests::RoleUpdateBody,
        requests::NewUserBody, requests::UserPatchBody, requests::PasswordResetBody,
        requests::PasswordResetConfirmBody, requests::VerifyEmailBody,
    )),
    modifiers(&Security, &OptionalPatchBodies),
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

/// The patches take an empty body as `{}` (nothing to change), so their body is optional; it
/// stays an object when sent (`null` is no patch).
struct OptionalPatchBodies;

impl Modify for OptionalPatchBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for path in ["/api/users/{id}", "/api/roles/{id}"] {
            let body = openapi
                .paths
                .paths
                .get_mut(path)
                .and_then(|item| item.patch.as_mut())
                .and_then(|operation| operation.request_body.as_mut());
            if let Some(body) = body {
                body.required = Some(utoipa::openapi::Required::False);
            }
        }
    }
}

/// The document as served by an app whose new passwords follow `policy`: the generated one, its
/// new-password schemas saying the configured minimum length (`AUTHD_PASSWORD_MIN_LENGTH`).
/// Built anew on each call and kept by no one: its tree takes more memory than its JSON, and
/// more than the rest of an idle worker.
pub(crate) fn served(policy: &authd_domain::PasswordPolicy) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{RefOr, schema::Schema};
    let mut document = ApiDoc::openapi();
    let schemas = document
        .components
        .iter_mut()
        .flat_map(|components| components.schemas.values_mut());
    for schema in schemas {
        let RefOr::T(Schema::Object(object)) = schema else {
            continue;
        };
        for property in object.properties.values_mut() {
            if let RefOr::T(Schema::Object(property)) = property
                && requests::is_password_schema(property)
            {
                *property = requests::password_schema_for(policy);
            }
        }
    }
    document
}

/// The methods a path template answers, as the document lists them (read once): the `Allow` of
/// a 405. The document is the one list of operations; a test checks, both ways, that it names
/// exactly the methods the server routes.
pub(crate) fn path_methods(template: &str) -> &'static [Method] {
    static METHODS: LazyLock<BTreeMap<String, Vec<Method>>> = LazyLock::new(|| {
        ApiDoc::openapi()
            .paths
            .paths
            .iter()
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
                (path.clone(), methods)
            })
            .collect()
    });
    METHODS.get(template).map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::{RefOr, schema::Schema};

    use super::*;

    fn statuses(path: &str) -> Vec<String> {
        let document = ApiDoc::openapi();
        let operation = document.paths.paths[path].post.as_ref().unwrap();
        operation.responses.responses.keys().cloned().collect()
    }

    #[test]
    fn the_recovery_routes_declare_every_status_they_send() {
        for (path, expected) in [
            (
                "/api/access/password-reset",
                &["202", "400", "403", "413", "415", "422", "429", "503"][..],
            ),
            (
                "/api/access/password-reset/confirm",
                &["204", "400", "403", "413", "415", "422", "503"],
            ),
            (
                "/api/access/verify-email",
                &["204", "400", "403", "413", "415", "422", "503"],
            ),
            (
                "/api/access/verify-email/resend",
                &["202", "401", "403", "429", "503"],
            ),
        ] {
            assert_eq!(statuses(path), expected, "{path}");
        }
    }

    #[test]
    fn a_reset_confirmation_says_the_configured_password_minimum() {
        let served = served(&authd_domain::PasswordPolicy::new(12));
        let schemas = &served.components.as_ref().unwrap().schemas;
        let RefOr::T(Schema::Object(body)) = &schemas["PasswordResetConfirmBody"] else {
            panic!("not an object")
        };
        let RefOr::T(Schema::Object(password)) = &body.properties["new_password"] else {
            panic!("not an object")
        };
        assert_eq!(password.min_length, Some(12));
        let RefOr::T(Schema::Object(token)) = &body.properties["token"] else {
            panic!("not an object")
        };
        assert_eq!(token.pattern.as_deref(), Some("^[^\\u0000]*$"));
        assert_eq!(body.required, ["token", "new_password"]);
    }
}
