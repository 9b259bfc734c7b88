//! Request extractors that answer in problem+json: bodies (size, content type, syntax, every
//! bad field at once) and the caller's identity.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut, Data};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use authd_application::FieldError;
use authd_application::use_cases::Principal;
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

/// One field of a body: its name, its type, whether it must be present, and whether an explicit
/// `null` means something (clearing it, or "none"). A `null` anywhere else is an error of its
/// own, distinct from an absent field.
pub(crate) struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub nullable: bool,
}

impl Field {
    /// A field that must be present and not `null`.
    pub const fn required(name: &'static str, kind: Kind) -> Self {
        Self {
            name,
            kind,
            required: true,
            nullable: false,
        }
    }

    /// A field that may be absent, but not `null`.
    pub const fn optional(name: &'static str, kind: Kind) -> Self {
        Self {
            name,
            kind,
            required: false,
            nullable: false,
        }
    }

    /// A field that may be absent or `null`, the two meaning what the endpoint says.
    pub const fn nullable(name: &'static str, kind: Kind) -> Self {
        Self {
            name,
            kind,
            required: false,
            nullable: true,
        }
    }

    /// What is wrong with this field's value in a body, if anything. A string holding U+0000
    /// is refused here, before any use case or store sees it: Postgres cannot hold one.
    fn shape_error(&self, value: Option<&Value>) -> Option<&'static str> {
        match (value, self.kind) {
            (None, _) => self.required.then_some("this field is required"),
            (Some(Value::Null), _) => (!self.nullable).then_some("must not be null"),
            (Some(Value::String(text)), Kind::String) => text.contains('\0').then_some(NUL_MESSAGE),
            (Some(Value::Bool(_)), Kind::Bool) => None,
            (Some(_), Kind::String) => Some("must be a string"),
            (Some(_), Kind::Bool) => Some("must be a boolean"),
        }
    }
}

/// The message for a string holding U+0000, in a body, a query or a path.
pub(crate) const NUL_MESSAGE: &str = "must not contain U+0000";

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
            read_json(&request, &mut payload, Vec::new())
                .await
                .map(JsonBody)
        })
    }
}

/// Reads and parses a JSON body. `earlier` holds the request's errors found before the body
/// (a bad path parameter): when there are any, the answer is a 422 listing them first, then
/// every bad field of the body. A body that cannot be read as JSON at all (400, 413, 415) is
/// answered as such.
async fn read_json<T: Schema + DeserializeOwned>(
    request: &HttpRequest,
    payload: &mut Payload,
    earlier: Vec<FieldError>,
) -> Result<T, ApiError> {
    let body = read_body(request, payload).await?;
    let state = request
        .app_data::<Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state missing")))?;
    if body.is_empty() {
        // No body at all: every required field is missing.
        return parse_object(Map::new(), &state, request, earlier).await;
    }
    require_content_type(request, is_json, "application/json")?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("the body is not valid JSON: {error}")))?;
    match value {
        Value::Object(object) => parse_object(object, &state, request, earlier).await,
        _ => {
            let mut errors = earlier;
            errors.push(FieldError::new("body", "expected a JSON object"));
            Err(ApiError::Validation(errors))
        }
    }
}

/// Checks every declared field's shape (present, not `null`, of its type, no U+0000), then
/// lets the use case check the well-shaped ones, so that one 422 lists every bad field in
/// declared order, after `earlier`. Fields the schema does not declare are ignored.
async fn parse_object<T: Schema + DeserializeOwned>(
    mut object: Map<String, Value>,
    state: &AppState,
    request: &HttpRequest,
    earlier: Vec<FieldError>,
) -> Result<T, ApiError> {
    let shape_errors: Vec<FieldError> = T::FIELDS
        .iter()
        .filter_map(|field| {
            field
                .shape_error(object.get(field.name))
                .map(|message| FieldError::new(field.name, message))
        })
        .collect();
    if shape_errors.is_empty() && earlier.is_empty() {
        return serde_json::from_value(Value::Object(object))
            .map_err(|error| ApiError::invalid("body", error));
    }
    // The use case sees only the well-shaped fields: a misshapen value (a U+0000 above all)
    // never reaches it, nor the store behind it.
    for error in &shape_errors {
        object.remove(error.field);
    }
    let semantic = T::semantic_errors(&object, state, request)
        .await
        .into_iter()
        .filter(|error| shape_errors.iter().all(|shape| shape.field != error.field));
    let mut body_errors: Vec<FieldError> = shape_errors.iter().cloned().chain(semantic).collect();
    // In the order the fields are declared, as the use case reports them.
    body_errors.sort_by_key(|error| T::FIELDS.iter().position(|field| field.name == error.field));
    let mut errors = earlier;
    errors.extend(body_errors);
    Err(ApiError::Validation(errors))
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
    let body = read_json::<T>(request, &mut payload.into_inner(), Vec::new()).await?;
    Ok((caller, body))
}

/// The caller, then a path parameter and the JSON body, as [`caller_then_json`]; a bad path
/// parameter (already parsed into `path`) and every bad body field are answered together in
/// one 422, the path first.
pub(crate) async fn caller_path_then_json<Caller, P, T>(
    request: &HttpRequest,
    path: Result<P, ApiError>,
    payload: actix_web::web::Payload,
) -> Result<(Caller, P, T), ApiError>
where
    Caller: FromRequest<Error = ApiError>,
    T: Schema + DeserializeOwned + 'static,
{
    let caller = Caller::from_request(request, &mut Payload::None).await?;
    let path = match path {
        Ok(value) => Ok(value),
        Err(ApiError::Validation(errors)) => Err(errors),
        Err(other) => return Err(other),
    };
    let earlier = path.as_ref().err().cloned().unwrap_or_default();
    // With path errors, this is always an error listing them and the body's.
    let body = read_json::<T>(request, &mut payload.into_inner(), earlier).await?;
    let path = path.map_err(ApiError::Validation)?;
    Ok((caller, path, body))
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

/// Parses a path id, answering 422 naming the parameter when it is not a UUID.
pub(crate) fn path_id(raw: &str, parameter: &'static str) -> Result<uuid::Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid(parameter, "must be a UUID"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn absent_null_mistyped_and_nul_are_told_apart() {
        let required = Field::required("email", Kind::String);
        let optional = Field::optional("role", Kind::String);
        let nullable = Field::nullable("name", Kind::String);
        let flag = Field::optional("is_active", Kind::Bool);
        let cases = [
            (&required, None, Some("this field is required")),
            (&required, Some(json!(null)), Some("must not be null")),
            (&required, Some(json!("a@b.c")), None),
            (&optional, None, None),
            (&optional, Some(json!(null)), Some("must not be null")),
            (&optional, Some(json!(3)), Some("must be a string")),
            (&nullable, None, None),
            (&nullable, Some(json!(null)), None),
            (&nullable, Some(json!(false)), Some("must be a string")),
            (&flag, Some(json!(null)), Some("must not be null")),
            (&flag, Some(json!("true")), Some("must be a boolean")),
            (&flag, Some(json!(true)), None),
        ];
        for (field, value, expected) in cases {
            assert_eq!(
                field.shape_error(value.as_ref()),
                expected,
                "{} = {value:?}",
                field.name
            );
        }
    }

    #[test]
    fn a_string_holding_u0000_is_refused_wherever_it_is() {
        for text in ["\0", "a\0", "\0b", "a\u{0}b", "x@example.com\0"] {
            for field in [
                Field::required("email", Kind::String),
                Field::optional("role", Kind::String),
                Field::nullable("name", Kind::String),
            ] {
                assert_eq!(
                    field.shape_error(Some(&json!(text))),
                    Some(NUL_MESSAGE),
                    "{text:?}"
                );
            }
        }
        // Other control characters are the use case's to judge.
        let field = Field::required("name", Kind::String);
        assert_eq!(field.shape_error(Some(&json!("a\u{1}b"))), None);
    }

    #[test]
    fn a_path_id_that_is_not_a_uuid_names_its_parameter() {
        for raw in ["nope", "\0", "0190a1b2-0000-7000-8000-00000000000\0"] {
            let Err(ApiError::Validation(errors)) = path_id(raw, "sid") else {
                panic!("{raw:?} parsed")
            };
            assert_eq!(errors.iter().map(|e| e.field).collect::<Vec<_>>(), ["sid"]);
        }
    }
}
