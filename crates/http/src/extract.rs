//! Request extractors that answer in problem+json: bodies (size, content type, syntax, every
//! bad field at once) and the caller's identity.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut, Data};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use application::FieldError;
use application::use_cases::Principal;
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::cookies::{ACCESS_COOKIE, REFRESH_COOKIE};
use crate::{ApiError, AppState};

/// The JSON type of a body field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    Bool,
}

/// One field of a body: its name, type, and whether it must be present (and not null).
pub(crate) struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

/// The fields of a JSON body, checked before deserializing so that every bad field is
/// reported, not just the first serde trips on.
pub(crate) trait Schema {
    const FIELDS: &'static [Field];

    /// The use case's own field errors for the well-typed fields, so that a body with both
    /// kinds of mistakes gets them all in one answer.
    async fn semantic_errors(
        _object: &Map<String, Value>,
        _state: &AppState,
        _request: &HttpRequest,
    ) -> Vec<FieldError> {
        Vec::new()
    }
}

/// A JSON body of type `T`, at most the body limit, with `Content-Type: application/json`.
pub(crate) struct JsonBody<T>(pub T);

impl<T: Schema + DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let request = request.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let body = read_body(&request, &mut payload).await?;
            let state = request
                .app_data::<Data<AppState>>()
                .cloned()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state missing")))?;
            if body.is_empty() {
                // No body at all: every required field is missing.
                return parse_object(Map::new(), &state, &request).await;
            }
            require_content_type(&request, is_json, "application/json")?;
            let value: Value = serde_json::from_slice(&body).map_err(|error| {
                ApiError::BadRequest(format!("the body is not valid JSON: {error}"))
            })?;
            match value {
                Value::Object(object) => parse_object(object, &state, &request).await,
                _ => Err(ApiError::invalid("body", "expected a JSON object")),
            }
        })
    }
}

async fn parse_object<T: Schema + DeserializeOwned>(
    object: Map<String, Value>,
    state: &AppState,
    request: &HttpRequest,
) -> Result<JsonBody<T>, ApiError> {
    let type_errors: Vec<FieldError> = T::FIELDS
        .iter()
        .filter_map(|field| match (object.get(field.name), field.kind) {
            (None | Some(Value::Null), _) if field.required => {
                Some(FieldError::new(field.name, "this field is required"))
            }
            (None | Some(Value::Null), _)
            | (Some(Value::String(_)), Kind::String)
            | (Some(Value::Bool(_)), Kind::Bool) => None,
            (Some(_), Kind::String) => Some(FieldError::new(field.name, "must be a string")),
            (Some(_), Kind::Bool) => Some(FieldError::new(field.name, "must be a boolean")),
        })
        .collect();
    if !type_errors.is_empty() {
        let semantic = T::semantic_errors(&object, state, request)
            .await
            .into_iter()
            .filter(|error| type_errors.iter().all(|typed| typed.field != error.field));
        let mut errors: Vec<FieldError> = type_errors.iter().cloned().chain(semantic).collect();
        // In the order the fields are declared, as the use case reports them.
        errors.sort_by_key(|error| T::FIELDS.iter().position(|field| field.name == error.field));
        return Err(ApiError::Validation(errors));
    }
    serde_json::from_value(Value::Object(object))
        .map(JsonBody)
        .map_err(|error| ApiError::invalid("body", error))
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
pub(crate) struct LoggedUser(pub domain::UserId);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            let state = request
                .app_data::<Data<AppState>>()
                .cloned()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state missing")))?;
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

/// The caller, then the JSON body: authentication is decided before the body is read, so a
/// request that is both unauthenticated and malformed gets its 401 first, whatever the timing.
pub(crate) async fn caller_then_json<Caller, T>(
    request: &HttpRequest,
    payload: actix_web::web::Payload,
) -> Result<(Caller, T), ApiError>
where
    Caller: FromRequest<Error = ApiError>,
    T: Schema + DeserializeOwned + 'static,
{
    let caller = Caller::from_request(request, &mut Payload::None).await?;
    let JsonBody(body) = JsonBody::<T>::from_request(request, &mut payload.into_inner()).await?;
    Ok((caller, body))
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
            application::use_cases::require_superuser(&principal)?;
            Ok(Self(principal))
        })
    }
}

/// Parses a path id, answering 422 naming the parameter when it is not a UUID.
pub(crate) fn path_id(raw: &str, parameter: &'static str) -> Result<uuid::Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid(parameter, "must be a UUID"))
}
