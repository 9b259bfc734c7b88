//! `/api/users`: superusers administer accounts.

use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use authd_application::use_cases::StoreFieldErrors;
use authd_domain::{EmailKind, PasswordError, UserId};

use crate::dto::{SessionDto, UserDto, UserPageDto};
use crate::errors::{FieldError, NO_SUCH_ROLE};
use crate::extract::{Superuser, json_object};
use crate::requests::{self, Body, FieldErrors, NewUserBody, PatchLeftovers, UserPatchBody};
use crate::{ApiError, AppState, metrics, problem};

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

#[utoipa::path(
    get, path = "/api/users", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(
        ("page" = Option<u64>, Query, description = "From 1; default 1", minimum = 1, maximum = 4294967295.0),
        requests::PerPageParam,
        ("q" = Option<String>, Query, description = "Case-insensitive substring of email or name",
            pattern = "^[^\\u0000]*$"),
        ("role" = Option<String>, Query, description = "Role slug; one that is no role's matches nobody",
            pattern = "^[^\\u0000]*$"),
        ("is_active" = Option<bool>, Query),
    ),
    responses((status = 200, description = "One page of users", body = UserPageDto), problem::ListUsers)
)]
pub(crate) async fn list(
    state: State,
    request: HttpRequest,
    Superuser(principal): Superuser,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::default();
    let command = requests::list_users(request.query_string(), &mut errors);
    let command = errors.finish(command)?;
    let (page, per_page) = (command.page.get(), command.per_page.get());
    let users = state
        .use_cases
        .list_users
        .execute(&principal, command)
        .await?;
    Ok(HttpResponse::Ok().json(UserPageDto {
        items: users.items.iter().map(UserDto::from).collect(),
        page,
        per_page,
        total: users.total,
    }))
}

/// The 422 of a parse that failed, completed with what the use case's rules found (asked by
/// the caller): the body's role when it names no role, its password when it is the email the
/// account keeps. One answer lists every bad field, as the contract says, in the body's
/// declared `order`.
fn invalid(mut errors: FieldErrors, found: StoreFieldErrors, order: &[&str]) -> ApiError {
    if found.unknown_role {
        errors.insert_in_order(FieldError::new("role", NO_SUCH_ROLE), order);
    }
    if found.password_is_email {
        errors.insert_in_order(
            FieldError::new("password", PasswordError::SameAsEmail),
            order,
        );
    }
    ApiError::Validation(errors.into_vec())
}

#[utoipa::path(
    post, path = "/api/users", tag = "admin", request_body = NewUserBody,
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 201, description = "The new user", body = UserDto), problem::CreateUser)
)]
pub(crate) async fn create(
    state: State,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let Superuser(principal) = Superuser::extract(&request).await?;
    let mut errors = FieldErrors::default();
    let body = json_object(&request, payload, &mut errors).await?;
    let policy = &state.settings.password_policy;
    let parsed = match &body {
        Some(object) => requests::create_user(Body::new(object, &mut errors), policy),
        None => Err(None),
    };
    let use_case = &state.use_cases.create_user;
    let role = match parsed {
        Ok(command) if errors.is_empty() => {
            let user = use_case.execute(&principal, command).await?;
            tracing::info!(admin_id = %principal.user.id, user_id = %user.id, "user created by an admin");
            return Ok(HttpResponse::Created().json(UserDto::from(&user)));
        }
        Ok(command) => command.role,
        Err(role) => role,
    };
    let found = StoreFieldErrors {
        unknown_role: match &role {
            Some(slug) => !use_case.role_exists(slug).await?,
            None => false,
        },
        password_is_email: false,
    };
    Err(invalid(errors, found, requests::USER_FIELDS))
}

#[utoipa::path(
    get, path = "/api/users/{id}", tag = "admin", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "The user", body = UserDto), problem::AdminReadById)
)]
pub(crate) async fn get(
    state: State,
    Superuser(principal): Superuser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&path)?;
    let user = state.use_cases.get_user.execute(&principal, id).await?;
    Ok(HttpResponse::Ok().json(UserDto::from(&user)))
}

/// The `{id}` of a path, or a 422 naming it.
fn user_id(raw: &str) -> Result<UserId, ApiError> {
    let mut errors = FieldErrors::default();
    let id = requests::path_id(raw, "id", &mut errors);
    errors.finish(id).map(UserId::from_uuid)
}

/// Authenticates before reading the body, so the answer's order is fixed: 401, 403, then one
/// 422 for the path id and every bad body field.
#[utoipa::path(
    patch, path = "/api/users/{id}", tag = "admin", params(("id" = uuid::Uuid, Path)),
    request_body = UserPatchBody, security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "The user", body = UserDto), problem::UpdateUser)
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
    let policy = &state.settings.password_policy;
    let parsed = match &body {
        Some(object) => requests::update_user(Body::new(object, &mut errors), policy),
        None => Err(PatchLeftovers::default()),
    };
    let use_case = &state.use_cases.update_user;
    let id = id.map(UserId::from_uuid);
    let left = match (id, parsed) {
        (Some(id), Ok(command)) if errors.is_empty() => {
            let sets_password = command.password.is_some();
            let user = use_case.execute(&principal, id, command).await?;
            if sets_password {
                metrics::emails_queued(EmailKind::PasswordChanged);
            }
            tracing::info!(admin_id = %principal.user.id, user_id = %user.id, "user changed by an admin");
            return Ok(HttpResponse::Ok().json(UserDto::from(&user)));
        }
        (_, Ok(command)) => PatchLeftovers {
            changes_email: command.email.is_some(),
            role: command.role,
            password: command.password,
        },
        (_, Err(left)) => left,
    };
    // The parse failed: a 422 whether or not the user exists (the password is checked against
    // its email only when it does).
    let found = use_case
        .store_errors(
            id,
            left.role.as_ref(),
            left.password.as_ref(),
            left.changes_email,
        )
        .await?;
    Err(invalid(errors, found, requests::PATCH_FIELDS))
}

#[utoipa::path(
    delete, path = "/api/users/{id}", tag = "admin", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204, description = "Deleted, sessions revoked"), problem::AdminUserWrite)
)]
pub(crate) async fn delete(
    state: State,
    Superuser(principal): Superuser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&path)?;
    state.use_cases.delete_user.execute(&principal, id).await?;
    tracing::info!(admin_id = %principal.user.id, user_id = %id, "user deleted by an admin");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get, path = "/api/users/{id}/sessions", tag = "admin", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The live sessions of the user", body = [SessionDto]),
        problem::AdminReadById,
    )
)]
pub(crate) async fn sessions(
    state: State,
    Superuser(principal): Superuser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&path)?;
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

#[utoipa::path(
    delete, path = "/api/users/{id}/sessions", tag = "admin", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204, description = "Every session revoked"), problem::AdminUserWrite)
)]
pub(crate) async fn revoke_sessions(
    state: State,
    Superuser(principal): Superuser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&path)?;
    state
        .use_cases
        .revoke_user_sessions
        .execute(&principal, id)
        .await?;
    metrics::sessions_revoked("admin");
    tracing::info!(
        admin_id = %principal.user.id,
        user_id = %id,
        "every session of a user revoked by an admin"
    );
    Ok(HttpResponse::NoContent().finish())
}
