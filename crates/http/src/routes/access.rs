//! `/api/access`: the user's own account.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use authd_application::commands;
use authd_application::ports::LinkRequest;
use authd_application::use_cases::{LoginError, LoginRequest, RefreshError};
use authd_domain::{EmailKind, SessionId};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::cookies::DEVICE_COOKIE;
use crate::dto::{SessionDto, UserDto};
use crate::extract::{Authenticated, PasswordForm, access_token, json_object, refresh_token};
use crate::requests::{
    self, Body, FieldErrors, LoginFormSchema, PasswordChangeBody, PasswordResetBody,
    PasswordResetConfirmBody, SignUpBody, VerifyEmailBody,
};
use crate::{ApiError, AppState, UseCases, metrics, problem};

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
    "/api/access/password-reset",
    "/api/access/password-reset/confirm",
    "/api/access/verify-email",
    "/api/access/verify-email/resend",
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
            .route("/logout-all", web::post().to(log_out_everywhere))
            .route("/password-reset", web::post().to(request_password_reset))
            .route(
                "/password-reset/confirm",
                web::post().to(confirm_password_reset),
            )
            .route("/verify-email", web::post().to(verify_email))
            .route("/verify-email/resend", web::post().to(resend_verification)),
    );
}

type State = web::Data<AppState>;

#[utoipa::path(
    post, path = "/api/access/signup", tag = "access", request_body = SignUpBody,
    responses((status = 201, description = "The new user", body = UserDto), problem::SignUp)
)]
pub(crate) async fn sign_up(
    state: State,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::default();
    let body = json_object(&request, payload, &mut errors).await?;
    let policy = &state.settings.password_policy;
    let command = body
        .as_ref()
        .and_then(|object| requests::sign_up(Body::new(object, &mut errors), policy));
    let command = errors.finish(command)?;
    let user = state.use_cases.sign_up.execute(command).await?;
    metrics::emails_queued(EmailKind::VerifyEmail);
    tracing::info!(user_id = %user.id, "user signed up; verification email queued");
    Ok(HttpResponse::Created().json(UserDto::from(&user)))
}

#[utoipa::path(
    post, path = "/api/access/login", tag = "access",
    request_body(content = LoginFormSchema, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 204, description = "Logged in; sets the access_token, refresh_token and device_token cookies"),
        problem::LogIn,
    )
)]
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
                LoginError::Unverified => "unverified",
                LoginError::CredentialsChanged => "credentials_changed",
                LoginError::Port(_) => "error",
            });
            tracing::info!(reason = %error, client_ip = ?ip, "login failed");
        })?;
    metrics::login("success");
    tracing::info!(
        user_id = %logged_in.user.id,
        session_id = %logged_in.session.id,
        client_ip = ?ip,
        "login succeeded"
    );
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

#[utoipa::path(
    post, path = "/api/access/refresh", tag = "access",
    responses((status = 204, description = "Rotated; sets both new cookies"), problem::Refresh)
)]
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

#[utoipa::path(
    post, path = "/api/access/logout", tag = "access", security(("bearer" = []), ("cookie" = [])),
    responses((status = 204, description = "Session revoked; cookies cleared"), problem::LogOut)
)]
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
#[utoipa::path(
    patch, path = "/api/access/password", tag = "access", request_body = PasswordChangeBody,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Changed; every session revoked; cookies cleared"),
        problem::ChangePassword,
    )
)]
pub(crate) async fn change_password(
    state: State,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let Authenticated(principal) = Authenticated::extract(&request).await?;
    let mut errors = FieldErrors::default();
    let body = json_object(&request, payload, &mut errors).await?;
    let (policy, email) = (&state.settings.password_policy, &principal.user.email);
    let parsed = body.as_ref().and_then(|object| {
        requests::change_password(Body::new(object, &mut errors), policy, email)
    });
    let (current_password, new_password) = errors.finish(parsed)?;
    let change = commands::ChangePassword {
        current_password,
        new_password,
        ip: state.settings.trusted_proxies.client_ip(&request),
    };
    state
        .use_cases
        .change_password
        .execute(&principal, change)
        .await?;
    metrics::sessions_revoked("password");
    metrics::emails_queued(EmailKind::PasswordChanged);
    tracing::info!(user_id = %principal.user.id, "password changed; every session revoked");
    Ok(cleared(&state, HttpResponse::NoContent()))
}

#[utoipa::path(
    get, path = "/api/access/me", tag = "access", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "The caller", body = UserDto), problem::OwnRead)
)]
pub(crate) async fn me(Authenticated(principal): Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(UserDto::from(&principal.user))
}

#[utoipa::path(
    get, path = "/api/access/sessions", tag = "access", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The live sessions of the caller", body = [SessionDto]),
        problem::OwnRead,
    )
)]
pub(crate) async fn list_sessions(
    state: State,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let sessions = state.use_cases.list_sessions.execute(&principal).await?;
    let body: Vec<SessionDto> = sessions.into_iter().map(SessionDto::from).collect();
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    delete, path = "/api/access/sessions/{sid}", tag = "access",
    params(("sid" = uuid::Uuid, Path, description = "Session id")),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204, description = "Revoked"), problem::RevokeSession)
)]
pub(crate) async fn revoke_session(
    state: State,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::default();
    let id = requests::path_id(&path, "sid", &mut errors);
    let id = SessionId::from_uuid(errors.finish(id)?);
    state
        .use_cases
        .revoke_session
        .execute(&principal, id)
        .await?;
    metrics::sessions_revoked("session");
    tracing::info!(user_id = %principal.user.id, session_id = %id, "session revoked by its owner");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, path = "/api/access/logout-all", tag = "access", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Every session revoked; cookies cleared"),
        problem::OwnWrite,
    )
)]
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

/// Password-reset requests worked on at once, by the whole process. Beyond that a request is
/// answered `503` with `Retry-After: 1`, as for a full hash queue, before anything is counted or
/// looked up (so the answer says nothing about the address): a flood of them (every one
/// admitted by the per-network cap, from many networks) cannot pile up tasks, nor take more than
/// a few of the store's connections from logins.
const RESET_REQUESTS_IN_PROGRESS: usize = 8;
static RESET_REQUESTS: Semaphore = Semaphore::const_new(RESET_REQUESTS_IN_PROGRESS);

/// The answer is `202` with no body, whatever the address: the work that depends on it (the
/// look-up, the account's limit, the token, the outbox) runs after the answer, so neither the
/// bytes nor the time tell whether an account exists. Only the per-network cap can refuse, and
/// it does not look at the address.
#[utoipa::path(
    post, path = "/api/access/password-reset", tag = "access", request_body = PasswordResetBody,
    responses(
        (status = 202, description = "Accepted: the same empty answer for every address; a link \
            is sent when an active account has it and its email limit allows"),
        problem::RequestPasswordReset,
    )
)]
pub(crate) async fn request_password_reset(
    state: State,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::default();
    let body = json_object(&request, payload, &mut errors).await?;
    let ip = state.settings.trusted_proxies.client_ip(&request);
    let command = body
        .as_ref()
        .and_then(|object| requests::request_password_reset(Body::new(object, &mut errors), ip));
    let command = errors.finish(command)?;
    let Ok(permit) = RESET_REQUESTS.try_acquire() else {
        metrics::password_reset_busy();
        tracing::warn!("too many password-reset requests in progress; answered busy");
        return Err(ApiError::Busy);
    };
    state
        .use_cases
        .request_password_reset
        .admit(&command)
        .await?;
    reset_after_answering(Arc::clone(&state.use_cases), command, permit);
    Ok(HttpResponse::Accepted().finish())
}

/// Runs the reset request off the request path, in the request's span, holding one of the
/// [`RESET_REQUESTS_IN_PROGRESS`] permits until it is done. Its outcome goes to the log and the metrics,
/// never to the client; the address is not logged.
fn reset_after_answering(
    use_cases: Arc<UseCases>,
    command: commands::RequestPasswordReset,
    permit: tokio::sync::SemaphorePermit<'static>,
) {
    let work = async move {
        let _permit = permit;
        match use_cases.request_password_reset.execute(&command).await {
            Ok(outcome) => {
                if outcome == LinkRequest::Queued {
                    metrics::emails_queued(EmailKind::ResetPassword);
                }
                let outcome = match outcome {
                    LinkRequest::Queued => "queued",
                    LinkRequest::NoAccount => "no_account",
                    LinkRequest::Limited { .. } => "limited",
                    LinkRequest::AlreadyVerified => "already_verified",
                };
                tracing::info!(outcome, "password reset requested");
            }
            Err(error) => tracing::warn!(%error, "a password-reset request failed"),
        }
    };
    actix_web::rt::spawn(work.instrument(tracing::Span::current()));
}

/// Reads the whole body before the token is looked at, so the answer's order is fixed: 422
/// (body and policy), then 400 (the token), then 422 again for a password that is the
/// account's email (only the token names the account).
#[utoipa::path(
    post, path = "/api/access/password-reset/confirm", tag = "access",
    request_body = PasswordResetConfirmBody,
    responses(
        (status = 204, description = "Password set; every session revoked; email marked verified; \
            the account's login back-off cleared"),
        problem::ConfirmPasswordReset,
    )
)]
pub(crate) async fn confirm_password_reset(
    state: State,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::default();
    let body = json_object(&request, payload, &mut errors).await?;
    let policy = &state.settings.password_policy;
    let command = body.as_ref().and_then(|object| {
        requests::confirm_password_reset(Body::new(object, &mut errors), policy)
    });
    let command = errors.finish(command)?;
    state
        .use_cases
        .confirm_password_reset
        .execute(command)
        .await?;
    metrics::sessions_revoked("password_reset");
    metrics::emails_queued(EmailKind::PasswordChanged);
    tracing::info!("password reset with a link; every session of the account revoked");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, path = "/api/access/verify-email", tag = "access", request_body = VerifyEmailBody,
    responses((status = 204, description = "The address is verified"), problem::VerifyEmail)
)]
pub(crate) async fn verify_email(
    state: State,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::default();
    let body = json_object(&request, payload, &mut errors).await?;
    let command = body
        .as_ref()
        .and_then(|object| requests::verify_email(Body::new(object, &mut errors)));
    let command = errors.finish(command)?;
    state.use_cases.verify_email.execute(command).await?;
    tracing::info!("email address verified with a link");
    Ok(HttpResponse::NoContent().finish())
}

/// Takes no body: whatever is sent is ignored, as for `logout-all`.
#[utoipa::path(
    post, path = "/api/access/verify-email/resend", tag = "access",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 202, description = "A new verification link is queued, or the address is \
            verified already and nothing is sent"),
        problem::ResendVerification,
    )
)]
pub(crate) async fn resend_verification(
    state: State,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let outcome = state
        .use_cases
        .resend_verification
        .execute(&principal)
        .await?;
    let user_id = principal.user.id;
    match outcome {
        LinkRequest::Queued => {
            metrics::emails_queued(EmailKind::VerifyEmail);
            tracing::info!(%user_id, "verification email queued again");
        }
        LinkRequest::AlreadyVerified => {
            tracing::info!(%user_id, "verification email not sent: already verified");
        }
        // No account: deactivated or deleted since its access token was checked; the caller,
        // whose token is about to stop working, gets the ordinary answer. (A limit comes back
        // as an error, a 429.)
        LinkRequest::NoAccount | LinkRequest::Limited { .. } => {
            tracing::info!(%user_id, ?outcome, "verification email not sent");
        }
    }
    Ok(HttpResponse::Accepted().finish())
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
