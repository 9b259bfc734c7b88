//! `/api/users`: superusers administer accounts.

use actix_web::{HttpRequest, HttpResponse, web};
use authd_application::FieldError;
use authd_application::use_cases::{ListUsersRequest, NewUserRequest, UserPatch};
use authd_domain::UserId;

use crate::dto::{NewUserBody, SessionDto, UserDto, UserPageDto, UserPatchBody};
use crate::extract::{NUL_MESSAGE, Superuser, caller_path_then_json, caller_then_json, path_id};
use crate::openapi::ProblemSchema;
use crate::{ApiError, AppState};

pub(crate) const PATHS: &[&str] = &["/api/users", "/api/users/{id}", "/api/users/{id}/sessions"];

pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/api/users")
            .route("", web::get().to(list))
            .route("", web::post().to(create))
            .route("/{id}", web::get().to(get))
            .route("/{id}", web::patch().to(update))
            .route("/{id}", web::delete().to(delete))
            .route("/{id}/sessions", web::get().to(sessions))
            .route("/{id}/sessions", web::delete().to(revoke_sessions)),
    );
}

type State = web::Data<AppState>;

#[utoipa::path(get, path = "/api/users", tag = "admin", params(("page" = Option<u32>, Query, description = "From 1; default 1", minimum = 1), ("per_page" = Option<u32>, Query, description = "1 to 100; default 20", minimum = 1, maximum = 100), ("q" = Option<String>, Query, description = "Case-insensitive substring of email or name"), ("role" = Option<String>, Query, description = "Role slug"), ("is_active" = Option<bool>, Query)), responses((status = 200, description = "One page of users", body = UserPageDto), (status = 422, description = "Bad query", body = ProblemSchema, content_type = "application/problem+json"), (status = 401, description = "Not authenticated", body = ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not a superuser", body = ProblemSchema, content_type = "application/problem+json")), security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn list(
    state: State,
    request: HttpRequest,
    Superuser(principal): Superuser,
) -> Result<HttpResponse, ApiError> {
    let query = list_query(request.query_string())?;
    let (page, per_page) = (query.page, query.per_page);
    let users = state
        .use_cases
        .list_users
        .execute(&principal, query)
        .await?;
    Ok(HttpResponse::Ok().json(UserPageDto {
        items: users.items.iter().map(UserDto::from).collect(),
        page,
        per_page,
        total: users.total,
    }))
}

/// The most users a page may hold (API.md: `per_page` 1 to 100).
const MAX_PER_PAGE: u32 = 100;

/// `page`, `per_page`, `q`, `role`, `is_active`; every bad one is reported, in that order:
/// numbers that are not whole or out of range, strings holding U+0000, a flag that is not one.
fn list_query(raw: &str) -> Result<ListUsersRequest, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|_| ApiError::invalid("query", "not a valid query string"))?;
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let mut errors = Vec::new();
    let mut number = |name: &'static str, default: u32, max: u32, range: &str| match get(name)
        .map(str::parse::<u32>)
    {
        None => default,
        Some(Ok(value)) if (1..=max).contains(&value) => value,
        Some(Ok(_)) => {
            errors.push(FieldError::new(name, range));
            default
        }
        Some(Err(_)) => {
            errors.push(FieldError::new(name, "must be a whole number"));
            default
        }
    };
    let page = number("page", 1, u32::MAX, "must be at least 1");
    let per_page = number(
        "per_page",
        20,
        MAX_PER_PAGE,
        &format!("must be between 1 and {MAX_PER_PAGE}"),
    );
    let mut text = |name: &'static str| match get(name) {
        Some(value) if value.contains('\0') => {
            errors.push(FieldError::new(name, NUL_MESSAGE));
            None
        }
        value => value.map(str::to_owned),
    };
    let (q, role) = (text("q"), text("role"));
    let is_active = match get("is_active") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            errors.push(FieldError::new("is_active", "must be true or false"));
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(ListUsersRequest {
        page,
        per_page,
        q,
        role,
        is_active,
    })
}

#[utoipa::path(post, path = "/api/users", tag = "admin", request_body = NewUserBody, responses((status = 201, description = "The new user", body = UserDto), (status = 409, description = "Email taken", body = ProblemSchema, content_type = "application/problem+json"), (status = 422, description = "Invalid fields", body = ProblemSchema, content_type = "application/problem+json"), (status = 401, description = "Not authenticated", body = ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not a superuser", body = ProblemSchema, content_type = "application/problem+json")), security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn create(
    state: State,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (Superuser(principal), body) =
        caller_then_json::<Superuser, NewUserBody>(&request, payload).await?;
    let new = NewUserRequest {
        email: body.email,
        password: body.password,
        name: body.name,
        role: body.role,
        is_active: body.is_active,
        is_superuser: body.is_superuser,
        is_verified: body.is_verified,
    };
    let user = state.use_cases.create_user.execute(&principal, new).await?;
    tracing::info!(admin_id = %principal.user.id, user_id = %user.id, "user created by an admin");
    Ok(HttpResponse::Created().json(UserDto::from(&user)))
}

#[utoipa::path(get, path = "/api/users/{id}", tag = "admin", params(("id" = uuid::Uuid, Path)), responses((status = 200, description = "The user", body = UserDto), (status = 404, description = "No such user", body = ProblemSchema, content_type = "application/problem+json"), (status = 422, description = "Not a UUID", body = ProblemSchema, content_type = "application/problem+json"), (status = 401, description = "Not authenticated", body = ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not a superuser", body = ProblemSchema, content_type = "application/problem+json")), security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn get(
    state: State,
    Superuser(principal): Superuser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = UserId::from_uuid(path_id(&path, "id")?);
    let user = state.use_cases.get_user.execute(&principal, id).await?;
    Ok(HttpResponse::Ok().json(UserDto::from(&user)))
}

#[utoipa::path(patch, path = "/api/users/{id}", tag = "admin", params(("id" = uuid::Uuid, Path)), request_body = UserPatchBody, responses((status = 200, description = "The user", body = UserDto), (status = 404, description = "No such user", body = ProblemSchema, content_type = "application/problem+json"), (status = 409, description = "Email taken", body = ProblemSchema, content_type = "application/problem+json"), (status = 422, description = "Invalid fields", body = ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not a superuser, or a protection", body = ProblemSchema, content_type = "application/problem+json"), (status = 401, description = "Not authenticated", body = ProblemSchema, content_type = "application/problem+json")), security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn update(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (Superuser(principal), id, body) = caller_path_then_json::<Superuser, _, UserPatchBody>(
        &request,
        path_id(&path, "id"),
        payload,
    )
    .await?;
    let id = UserId::from_uuid(id);
    let patch = UserPatch {
        email: body.email,
        name: body.name,
        role: body.role,
        is_active: body.is_active,
        is_superuser: body.is_superuser,
        is_verified: body.is_verified,
        password: body.password,
    };
    let user = state
        .use_cases
        .update_user
        .execute(&principal, id, patch)
        .await?;
    tracing::info!(admin_id = %principal.user.id, user_id = %user.id, "user changed by an admin");
    Ok(HttpResponse::Ok().json(UserDto::from(&user)))
}

#[utoipa::path(delete, path = "/api/users/{id}", tag = "admin", params(("id" = uuid::Uuid, Path)), responses((status = 204, description = "Deleted, sessions revoked"), (status = 404, description = "No such user", body = ProblemSchema, content_type = "application/problem+json"), (status = 422, description = "Not a UUID", body = ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not a superuser, or a protection", body = ProblemSchema, content_type = "application/problem+json"), (status = 401, description = "Not authenticated", body = ProblemSchema, content_type = "application/problem+json")), security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn delete(
    state: State,
    Superuser(principal): Superuser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = UserId::from_uuid(path_id(&path, "id")?);
    state.use_cases.delete_user.execute(&principal, id).await?;
    tracing::info!(admin_id = %principal.user.id, user_id = %id, "user deleted by an admin");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/users/{id}/sessions", tag = "admin", params(("id" = uuid::Uuid, Path)), responses((status = 200, description = "The live sessions of the user", body = [SessionDto]), (status = 404, description = "No such user", body = ProblemSchema, content_type = "application/problem+json"), (status = 422, description = "Not a UUID", body = ProblemSchema, content_type = "application/problem+json"), (status = 401, description = "Not authenticated", body = ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not a superuser", body = ProblemSchema, content_type = "application/problem+json")), security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn sessions(
    state: State,
    Superuser(principal): Superuser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = UserId::from_uuid(path_id(&path, "id")?);
    let sessions = state
        .use_cases
        .list_user_sessions
        .execute(&principal, id)
        .await?;
    Ok(HttpResponse::Ok().json(
        sessions
            .into_iter()
            .map(SessionDto::from)
            .collect::<Vec<_>>(),
    ))
}

#[utoipa::path(delete, path = "/api/users/{id}/sessions", tag = "admin", params(("id" = uuid::Uuid, Path)), responses((status = 204, description = "Every session revoked"), (status = 404, description = "No such user", body = ProblemSchema, content_type = "application/problem+json"), (status = 422, description = "Not a UUID", body = ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not a superuser, or the primary admin", body = ProblemSchema, content_type = "application/problem+json"), (status = 401, description = "Not authenticated", body = ProblemSchema, content_type = "application/problem+json")), security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn revoke_sessions(
    state: State,
    Superuser(principal): Superuser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = UserId::from_uuid(path_id(&path, "id")?);
    state
        .use_cases
        .revoke_user_sessions
        .execute(&principal, id)
        .await?;
    crate::metrics::sessions_revoked("admin");
    tracing::info!(admin_id = %principal.user.id, user_id = %id, "every session of a user revoked by an admin");
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_query_has_defaults_and_reports_every_bad_parameter() {
        let defaults = list_query("").unwrap();
        assert_eq!(
            (defaults.page, defaults.per_page, defaults.is_active),
            (1, 20, None)
        );
        let full = list_query("page=2&per_page=5&q=ada%20l&role=editors&is_active=false").unwrap();
        assert_eq!(
            (
                full.page,
                full.per_page,
                full.q.as_deref(),
                full.role.as_deref(),
                full.is_active
            ),
            (2, 5, Some("ada l"), Some("editors"), Some(false))
        );
        let Err(ApiError::Validation(errors)) = list_query("page=x&per_page=-1&is_active=yes")
        else {
            panic!("expected 422")
        };
        assert_eq!(
            errors.iter().map(|e| e.field).collect::<Vec<_>>(),
            ["page", "per_page", "is_active"]
        );
    }

    fn bad_fields(query: &str) -> Vec<&'static str> {
        match list_query(query) {
            Err(ApiError::Validation(errors)) => errors.iter().map(|e| e.field).collect(),
            Err(other) => panic!("{query}: expected 422, got {other:?}"),
            Ok(_) => panic!("{query}: expected 422, got a query"),
        }
    }

    #[test]
    fn ranges_are_checked_at_the_edge_with_the_other_parameters() {
        assert_eq!(
            bad_fields("page=0&per_page=x&is_active=maybe"),
            ["page", "per_page", "is_active"]
        );
        assert_eq!(bad_fields("per_page=0&page=x"), ["page", "per_page"]);
        assert_eq!(bad_fields("per_page=101"), ["per_page"]);
        let edges = list_query("page=1&per_page=1").unwrap();
        assert_eq!((edges.page, edges.per_page), (1, 1));
        assert_eq!(list_query("per_page=100").unwrap().per_page, 100);
    }

    #[test]
    fn a_nul_in_a_string_parameter_is_refused_naming_it() {
        assert_eq!(bad_fields("q=a%00b"), ["q"]);
        assert_eq!(bad_fields("role=%00"), ["role"]);
        assert_eq!(
            bad_fields("is_active=no&role=x%00&q=%00&per_page=500&page=0"),
            ["page", "per_page", "q", "role", "is_active"]
        );
        let Err(ApiError::Validation(errors)) = list_query("q=%00") else {
            panic!("expected 422")
        };
        assert_eq!(errors[0].message, NUL_MESSAGE);
        // Other characters, control ones included, are searched for as given.
        assert_eq!(list_query("q=a%01b").unwrap().q.as_deref(), Some("a\u{1}b"));
    }
}
