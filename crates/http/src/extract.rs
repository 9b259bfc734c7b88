//! Reading requests, answering in problem+json: bodies (size, content type, JSON syntax; the
//! fields are `requests`' to parse) and the caller's identity. Nothing here calls a use case
//! except `Authenticate`, nor the store.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut, Data};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use authd_application::use_cases::Principal;
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde_json::{Map, Value};

use crate::cookies::{ACCESS_COOKIE, REFRESH_COOKIE};
use crate::errors::FieldError;
use crate::requests::FieldErrors;
use crate::{ApiError, AppState};

/// The application state of a request.
fn app_state(request: &HttpRequest) -> Result<Data<AppState>, ApiError> {
    request
        .app_data::<Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state missing")))
}

/// Reads a JSON object body, at most the body limit, with `Content-Type: application/json`
/// (none needed for an empty body, which is an empty object: every required field is then
/// missing). A body that cannot be read as JSON at all is a 400, 413 or 415; valid JSON that is
/// not an object is a field error named `body`, recorded after the path's and the query's, and
/// `None`.
pub(crate) async fn json_object(
    request: &HttpRequest,
    payload: actix_web::web::Payload,
    errors: &mut FieldErrors,
) -> Result<Option<Map<String, Value>>, ApiError> {
    let body = read_body(request, &mut payload.into_inner()).await?;
    if body.is_empty() {
        return Ok(Some(Map::new()));
    }
    require_content_type(request, is_json, "application/json")?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("the body is not valid JSON: {error}")))?;
    match value {
        Value::Object(object) => Ok(Some(object)),
        _ => {
            errors.push("body", "expected a JSON object");
            Ok(None)
        }
    }
}

/// The OAuth2 password form: `username` and `password`, url-encoded.
pub(crate) struct PasswordForm {
    pub username: String,
    pub password: String,
}

impl FromRequest for PasswordForm {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let request = request.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let body = read_body(&request, &mut payload).await?;
            if !body.is_empty() {
                require_content_type(&request, is_form, "application/x-www-form-urlencoded")?;
            }
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&body).map_err(|error| {
                    ApiError::BadRequest(format!("the body is not a valid form: {error}"))
                })?;
            let take = |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.clone())
            };
            match (take("username"), take("password")) {
                (Some(username), Some(password)) => Ok(Self { username, password }),
                (username, password) => Err(ApiError::Validation(
                    [
                        ("username", username.is_none()),
                        ("password", password.is_none()),
                    ]
                    .into_iter()
                    .filter(|(_, missing)| *missing)
                    .map(|(field, _)| FieldError::new(field, "this field is required"))
                    .collect(),
                )),
            }
        })
    }
}

/// Reads the body, refusing more than the limit by declared length or by bytes read.
async fn read_body(request: &HttpRequest, payload: &mut Payload) -> Result<Bytes, ApiError> {
    let limit = request
        .app_data::<Data<AppState>>()
        .map_or(64 * 1024, |state| state.settings.body_limit);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|error| ApiError::BadRequest(format!("could not read the body: {error}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn require_content_type(
    request: &HttpRequest,
    accepts: fn(&str) -> bool,
    expected: &str,
) -> Result<(), ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match content_type {
        Some(content_type) if accepts(&content_type) => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "expected Content-Type: {expected}"
        ))),
    }
}

fn is_json(content_type: &str) -> bool {
    content_type == "application/json"
        || (content_type.starts_with("application/") && content_type.ends_with("+json"))
}

fn is_form(content_type: &str) -> bool {
    content_type == "application/x-www-form-urlencoded"
}

/// The access token of a request: `Authorization: Bearer` when that header is present (other
/// schemes are ignored), else the `access_token` cookie.
pub(crate) fn access_token(request: &HttpRequest) -> Option<String> {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    bearer.or_else(|| {
        request
            .cookie(ACCESS_COOKIE)
            .map(|cookie| cookie.value().to_owned())
            .filter(|value| !value.is_empty())
    })
}

/// The `refresh_token` cookie, when present and not empty.
pub(crate) fn refresh_token(request: &HttpRequest) -> Option<String> {
    request
        .cookie(REFRESH_COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .filter(|value| !value.is_empty())
}

/// The authenticated caller. A missing or invalid token is a 401.
pub(crate) struct Authenticated(pub Principal);

/// The user id of an authenticated request, for the request log.
#[derive(Clone, Copy)]
pub(crate) struct LoggedUser(pub authd_domain::UserId);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            let state = app_state(&request)?;
            let token = access_token(&request)
                .ok_or_else(|| ApiError::Unauthorized("not authenticated".into()))?;
            let principal = state.use_cases.authenticate.execute(&token).await?;
            request
                .extensions_mut()
                .insert(LoggedUser(principal.user.id));
            Ok(Self(principal))
        })
    }
}

/// An authenticated caller who is a superuser (live flag): 401, then 403.
pub(crate) struct Superuser(pub Principal);

impl FromRequest for Superuser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let authenticated = Authenticated::from_request(request, payload);
        Box::pin(async move {
            let Authenticated(principal) = authenticated.await?;
            authd_application::use_cases::require_superuser(&principal)?;
            Ok(Self(principal))
        })
    }
}
