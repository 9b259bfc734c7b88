//! `/api/roles`: superusers manage the roles users hold.

use actix_web::{HttpRequest, HttpResponse, web};
use authd_application::use_cases::{NewRole, RoleUpdate};
use authd_domain::RoleId;

use crate::dto::{NewRoleBody, RoleDto, RoleUpdateBody};
use crate::extract::{Superuser, caller_path_then_json, caller_then_json, path_id};
use crate::openapi::ProblemSchema;
use crate::{ApiError, AppState};

pub(crate) const PATHS: &[&str] = &["/api/roles", "/api/roles/{id}"];

pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/api/roles")
            .route("", web::get().to(list))
            .route("", web::post().to(create))
            .route("/{id}", web::patch().to(update))
            .route("/{id}", web::delete().to(delete)),
    );
}

type State = web::Data<AppState>;

#[utoipa::path(get, path = "/api/roles", tag = "admin", responses((status = 200, description = "Every role", body = [RoleDto]), (status = 401, description = "Not authenticated", body = ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not a superuser", body = ProblemSchema, content_type = "application/problem+json")), security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn list(
    state: State,
    Superuser(principal): Superuser,
) -> Result<HttpResponse, ApiError> {
    let roles = state.use_cases.list_roles.execute(&principal).await?;
    Ok(HttpResponse::Ok().json(roles.iter().map(RoleDto::from).collect::<Vec<_>>()))
}

#[utoipa::path(post, path = "/api/roles", tag = "admin", request_body = NewRoleBody, responses((status = 201, description = "The new role", body = RoleDto), (status = 409, description = "Slug taken", body = ProblemSchema, content_type = "application/problem+json"), (status = 422, description = "Invalid fields", body = ProblemSchema, content_type = "application/problem+json"), (status = 401, description = "Not authenticated", body = ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not a superuser", body = ProblemSchema, content_type = "application/problem+json")), security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn create(
    state: State,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (Superuser(principal), body) =
        caller_then_json::<Superuser, NewRoleBody>(&request, payload).await?;
    let new = NewRole {
        slug: body.slug,
        name: body.name,
        description: body.description,
    };
    let role = state.use_cases.create_role.execute(&principal, new).await?;
    tracing::info!(user_id = %principal.user.id, role = %role.slug, "role created");
    Ok(HttpResponse::Created().json(RoleDto::from(&role)))
}

#[utoipa::path(patch, path = "/api/roles/{id}", tag = "admin", params(("id" = uuid::Uuid, Path)), request_body = RoleUpdateBody, responses((status = 200, description = "The role", body = RoleDto), (status = 404, description = "No such role", body = ProblemSchema, content_type = "application/problem+json"), (status = 422, description = "Invalid fields", body = ProblemSchema, content_type = "application/problem+json"), (status = 401, description = "Not authenticated", body = ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not a superuser", body = ProblemSchema, content_type = "application/problem+json")), security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn update(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (Superuser(principal), id, body) = caller_path_then_json::<Superuser, _, RoleUpdateBody>(
        &request,
        path_id(&path, "id"),
        payload,
    )
    .await?;
    let id = RoleId::from_uuid(id);
    let update = RoleUpdate {
        name: body.name,
        description: body.description,
    };
    let role = state
        .use_cases
        .update_role
        .execute(&principal, id, update)
        .await?;
    tracing::info!(user_id = %principal.user.id, role = %role.slug, "role updated");
    Ok(HttpResponse::Ok().json(RoleDto::from(&role)))
}

#[utoipa::path(delete, path = "/api/roles/{id}", tag = "admin", params(("id" = uuid::Uuid, Path)), responses((status = 204, description = "Deleted"), (status = 404, description = "No such role", body = ProblemSchema, content_type = "application/problem+json"), (status = 422, description = "Not a UUID", body = ProblemSchema, content_type = "application/problem+json"), (status = 409, description = "Held by users, or the default role", body = ProblemSchema, content_type = "application/problem+json"), (status = 401, description = "Not authenticated", body = ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Not a superuser", body = ProblemSchema, content_type = "application/problem+json")), security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn delete(
    state: State,
    Superuser(principal): Superuser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = RoleId::from_uuid(path_id(&path, "id")?);
    state.use_cases.delete_role.execute(&principal, id).await?;
    tracing::info!(user_id = %principal.user.id, role_id = %id, "role deleted");
    Ok(HttpResponse::NoContent().finish())
}
