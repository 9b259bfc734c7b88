//! `/api/roles`: superusers manage the roles users hold.

use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use authd_domain::RoleId;

use crate::dto::RoleDto;
use crate::extract::{Superuser, json_object};
use crate::requests::{self, Body, FieldErrors, NewRoleBody, RoleUpdateBody};
use crate::{ApiError, AppState, problem};

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

#[utoipa::path(
    get, path = "/api/roles", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "Every role", body = [RoleDto]), problem::AdminRead)
)]
pub(crate) async fn list(
    state: State,
    Superuser(principal): Superuser,
) -> Result<HttpResponse, ApiError> {
    let roles = state.use_cases.list_roles.execute(&principal).await?;
    Ok(HttpResponse::Ok().json(roles.iter().map(RoleDto::from).collect::<Vec<_>>()))
}

/// Authenticates before reading the body: 401, 403, then 422.
#[utoipa::path(
    post, path = "/api/roles", tag = "admin", request_body = NewRoleBody,
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 201, description = "The new role", body = RoleDto), problem::CreateRole)
)]
pub(crate) async fn create(
    state: State,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let Superuser(principal) = Superuser::extract(&request).await?;
    let mut errors = FieldErrors::default();
    let body = json_object(&request, payload, &mut errors).await?;
    let command = body
        .as_ref()
        .and_then(|object| requests::create_role(Body::new(object, &mut errors)));
    let command = errors.finish(command)?;
    let role = state
        .use_cases
        .create_role
        .execute(&principal, command)
        .await?;
    tracing::info!(user_id = %principal.user.id, role = %role.slug, "role created");
    Ok(HttpResponse::Created().json(RoleDto::from(&role)))
}

/// Authenticates before reading the body: 401, 403, then one 422 for the path id and every
/// bad body field.
#[utoipa::path(
    patch, path = "/api/roles/{id}", tag = "admin", params(("id" = uuid::Uuid, Path)),
    request_body = RoleUpdateBody, security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "The role", body = RoleDto), problem::UpdateRole)
)]
pub(crate) async fn update(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let Superuser(principal) = Superuser::extract(&request).await?;
    let mut errors = FieldErrors::default();
    let id = requests::path_id(&path, "id", &mut errors);
    let body = json_object(&request, payload, &mut errors).await?;
    let command = body
        .as_ref()
        .and_then(|object| requests::update_role(Body::new(object, &mut errors)));
    let (id, command) = errors.finish(id.zip(command))?;
    let role = state
        .use_cases
        .update_role
        .execute(&principal, RoleId::from_uuid(id), command)
        .await?;
    tracing::info!(user_id = %principal.user.id, role = %role.slug, "role updated");
    Ok(HttpResponse::Ok().json(RoleDto::from(&role)))
}

#[utoipa::path(
    delete, path = "/api/roles/{id}", tag = "admin", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204, description = "Deleted"), problem::DeleteRole)
)]
pub(crate) async fn delete(
    state: State,
    Superuser(principal): Superuser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::default();
    let id = requests::path_id(&path, "id", &mut errors);
    let id = RoleId::from_uuid(errors.finish(id)?);
    state.use_cases.delete_role.execute(&principal, id).await?;
    tracing::info!(user_id = %principal.user.id, role_id = %id, "role deleted");
    Ok(HttpResponse::NoContent().finish())
}
