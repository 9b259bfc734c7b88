//! `/api/access`: the user's own account.

use actix_web::ResponseError;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use authd_application::use_cases::{
    LoginError, LoginRequest, PasswordChange, RefreshError, SignUpRequest,
};
use authd_domain::SessionId;

use crate::cookies::DEVICE_COOKIE;
use crate::dto::{PasswordChangeBody, SessionDto, SignUpBody, UserDto};
use crate::extract::{
    Authenticated, JsonBody, PasswordForm, access_token, caller_then_json, path_id, refresh_token,
};
use crate::metrics;
use crate::openapi::{LoginFormSchema, ProblemSchema};
use crate::{ApiError, AppState};

pub(crate) const PATHS: &[&str] = &[
    "/api/access/signup",
    "/api/access/login",
    "/api/access/refresh",
    "/api/access/logout",
    "/api/access/password",
    "/api/access/me",
    "/api/access/sessions",
    "/api/access/sessions/{sid}",
    "/api/access/logout-all",
];

pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/api/access")
            .route("/signup", web::post().to(sign_up))
            .route("/login", web::post().to(log_in))
            .route("/refresh", web::post().to(refresh))
            .route("/logout", web::post().to(log_out))
            .route("/password", web::patch().to(change_password))
            .route("/me", web::get().to(me))
            .route("/sessions", web::get().to(list_sessions))
            .route("/sessions/{sid}", web::delete().to(revoke_session))
            .route("/logout-all", web::post().to(log_out_everywhere)),
    );
}

type State = web::Data<AppState>;

#[utoipa::path(post, path = "/api/access/signup", tag = "access", request_body = SignUpBody, responses((status = 201, description = "The new user", body = UserDto), (status = 409, description = "Email taken", body = ProblemSchema, content_type = "application/problem+json"), (status = 422, description = "Invalid email, password or name", body = ProblemSchema, content_type = "application/problem+json"), (status = 400, description = "Not JSON", body = ProblemSchema, content_type = "application/problem+json"), (status = 413, description = "Body too large", body = ProblemSchema, content_type = "application/problem+json"), (status = 415, description = "Not application/json", body = ProblemSchema, content_type = "application/problem+json")))]
pub(crate) async fn sign_up(
    state: State,
    JsonBody(body): JsonBody<SignUpBody>,
) -> Result<HttpResponse, ApiError> {
    let request = SignUpRequest {
        email: body.email,
        password: body.password,
        name: body.name,
    };
    let user = state.use_cases.sign_up.execute(request).await?;
    tracing::info!(user_id = %user.id, "user signed up");
    Ok(HttpResponse::Created().json(UserDto::from(&user)))
}

#[utoipa::path(post, path = "/api/access/login", tag = "access", request_body(content = LoginFormSchema, content_type = "application/x-www-form-urlencoded"), responses((status = 204, description = "Logged in; sets the access_token and refresh_token cookies"), (status = 401, description = "Bad credentials", body = ProblemSchema, content_type = "application/problem+json"), (status = 403, description = "Inactive account", body = ProblemSchema, content_type = "application/problem+json"), (status = 415, description = "Not a form", body = ProblemSchema, content_type = "application/problem+json"), (status = 422, description = "Missing field", body = ProblemSchema, content_type = "application/problem+json"), (status = 429, description = "Throttled; see Retry-After", body = ProblemSchema, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable, or the server is busy (see Retry-After)", body = ProblemSchema, content_type = "application/problem+json")))]
pub(crate) async fn log_in(
    state: State,
    request: HttpRequest,
    form: PasswordForm,
) -> Result<HttpResponse, ApiError> {
    let ip = state.settings.trusted_proxies.client_ip(&request);
    let user_agent = request
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let device_token = request
        .cookie(DEVICE_COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .filter(|value| !value.is_empty());
    let attempt = LoginRequest {
        username: form.username,
        password: form.password,
        ip,
        user_agent,
        device_token,
    };
    let logged_in = state
        .use_cases
        .log_in
        .execute(attempt)
        .await
        .inspect_err(|error| {
            metrics::login(match error {
                LoginError::Throttled { .. } => "throttled",
                LoginError::BadCredentials => "failure",
                LoginError::Inactive => "inactive",
                LoginError::CredentialsChanged => "credentials_changed",
                LoginError::Port(_) => "error",
            });
            tracing::info!(reason = %error, client_ip = ?ip, "login failed");
        })?;
    metrics::login("success");
    tracing::info!(user_id = %logged_in.user.id, session_id = %logged_in.session.id, client_ip = ?ip, "login succeeded");
    let mut response = HttpResponse::NoContent();
    state
        .settings
        .cookies
        .set_pair(&mut response, &logged_in.tokens);
    state
        .settings
        .cookies
        .set_device(&mut response, &logged_in.device_token);
    Ok(response.finish())
}

#[utoipa::path(post, path = "/api/access/refresh", tag = "access", responses((status = 204, description = "Rotated; sets both new cookies"), (status = 401, description = "Missing, invalid, revoked or reused refresh token", body = ProblemSchema, content_type = "application/problem+json")))]
pub(crate) async fn refresh(state: State, request: HttpRequest) -> HttpResponse {
    let Some(token) = refresh_token(&request) else {
        return clearing_when_unauthorized(
            &state,
            ApiError::Unauthorized("no refresh token".into()),
        );
    };
    match state.use_cases.refresh.execute(&token).await {
        Ok(pair) => {
            metrics::refresh("success");
            let mut response = HttpResponse::NoContent();
            state.settings.cookies.set_pair(&mut response, &pair);
            response.finish()
        }
        Err(error) => {
            metrics::refresh(if matches!(error, RefreshError::Port(_)) {
                "error"
            } else {
                "failure"
            });
            if matches!(error, RefreshError::Reused) {
                metrics::refresh_reuse_detected();
                metrics::sessions_revoked("reuse");
            }
            clearing_when_unauthorized(&state, ApiError::from(error))
        }
    }
}

#[utoipa::path(post, path = "/api/access/logout", tag = "access", responses((status = 204, description = "Session revoked; cookies cleared"), (status = 401, description = "No live session named", body = ProblemSchema, content_type = "application/problem+json")), security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn log_out(state: State, request: HttpRequest) -> HttpResponse {
    let access = access_token(&request);
    let refresh = refresh_token(&request);
    match state
        .use_cases
        .log_out
        .execute(access.as_deref(), refresh.as_deref())
        .await
    {
        Ok(()) => {
            metrics::sessions_revoked("logout");
            cleared(&state, HttpResponse::NoContent())
        }
        Err(error) => clearing_when_unauthorized(&state, ApiError::from(error)),
    }
}

/// Authenticates before reading the body, so the answer's order is fixed: 401, then 422 (body
/// and policy), then 400 (wrong current password).
#[utoipa::path(patch, path = "/api/access/password", tag = "access", request_body = PasswordChangeBody, responses((status = 204, description = "Changed; every session revoked; cookies cleared"), (status = 422, description = "Invalid body or policy", body = ProblemSchema, content_type = "application/problem+json"), (status = 400, description = "Wrong current password", body = ProblemSchema, content_type = "application/problem+json"), (status = 401, description = "Not authenticated", body = ProblemSchema, content_type = "application/problem+json"), (status = 429, description = "The account is in login back-off; see Retry-After", body = ProblemSchema, content_type = "application/problem+json")), security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn change_password(
    state: State,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (Authenticated(principal), body) =
        caller_then_json::<Authenticated, PasswordChangeBody>(&request, payload).await?;
    let change = PasswordChange {
        current_password: body.current_password,
        new_password: body.new_password,
        ip: state.settings.trusted_proxies.client_ip(&request),
    };
    state
        .use_cases
        .change_password
        .execute(&principal, change)
        .await?;
    metrics::sessions_revoked("password");
    tracing::info!(user_id = %principal.user.id, "password changed; every session revoked");
    Ok(cleared(&state, HttpResponse::NoContent()))
}

#[utoipa::path(get, path = "/api/access/me", tag = "access", responses((status = 200, description = "The caller", body = UserDto), (status = 401, description = "Not authenticated", body = ProblemSchema, content_type = "application/problem+json")), security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn me(Authenticated(principal): Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(UserDto::from(&principal.user))
}

#[utoipa::path(get, path = "/api/access/sessions", tag = "access", responses((status = 200, description = "The live sessions of the caller", body = [SessionDto]), (status = 401, description = "Not authenticated", body = ProblemSchema, content_type = "application/problem+json")), security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn list_sessions(
    state: State,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let sessions = state.use_cases.list_sessions.execute(&principal).await?;
    let body: Vec<SessionDto> = sessions.into_iter().map(SessionDto::from).collect();
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(delete, path = "/api/access/sessions/{sid}", tag = "access", params(("sid" = uuid::Uuid, Path, description = "Session id")), responses((status = 204, description = "Revoked"), (status = 404, description = "Not a live session of the caller", body = ProblemSchema, content_type = "application/problem+json"), (status = 422, description = "Not a UUID", body = ProblemSchema, content_type = "application/problem+json"), (status = 401, description = "Not authenticated", body = ProblemSchema, content_type = "application/problem+json")), security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn revoke_session(
    state: State,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = SessionId::from_uuid(path_id(&path, "sid")?);
    state
        .use_cases
        .revoke_session
        .execute(&principal, id)
        .await?;
    metrics::sessions_revoked("session");
    tracing::info!(user_id = %principal.user.id, session_id = %id, "session revoked by its owner");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/access/logout-all", tag = "access", responses((status = 204, description = "Every session revoked; cookies cleared"), (status = 401, description = "Not authenticated", body = ProblemSchema, content_type = "application/problem+json")), security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn log_out_everywhere(
    state: State,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    state
        .use_cases
        .log_out_everywhere
        .execute(&principal)
        .await?;
    metrics::sessions_revoked("logout_all");
    tracing::info!(user_id = %principal.user.id, "logged out everywhere");
    Ok(cleared(&state, HttpResponse::NoContent()))
}

fn cleared(state: &AppState, mut response: actix_web::HttpResponseBuilder) -> HttpResponse {
    state.settings.cookies.clear(&mut response);
    response.finish()
}

/// The error answer; a 401 also drops both cookies, which are no use to the browser any more.
fn clearing_when_unauthorized(state: &AppState, error: ApiError) -> HttpResponse {
    let clear = error.status_code() == StatusCode::UNAUTHORIZED;
    error.response_with(|response| {
        if clear {
            state.settings.cookies.clear(response);
        }
    })
}
