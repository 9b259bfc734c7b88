//! Requests parsed into commands: each endpoint's path, query and body become one command of
//! `authd_application::commands`, in one pass that reports every bad field at once (path,
//! then query, then body fields in the order the body schema declares them). An absent field,
//! an explicit `null` and a bad value are told apart. The rules themselves live in the domain's
//! value objects (`Email::parse`, `NewPassword::parse`, `RoleSlug::parse`, ...); this module
//! only finds the fields and says which one is wrong.
//!
//! The `*Body` types are the OpenAPI schemas of the bodies: their formats, patterns and lengths
//! say what the parsers enforce.

use std::net::IpAddr;

use authd_application::commands::{self, Patch, RoleFilter};
use authd_domain::{
    DisplayName, Email, NewPassword, Page, PasswordPolicy, PerPage, RoleDescription, RoleName,
    RoleSlug,
};
use serde_json::{Map, Value};

use crate::errors::{FieldError, NO_SUCH_ROLE};

/// What `Email::parse` accepts, as an ECMA-262 pattern for the document: surrounding Unicode
/// whitespace, then one `@` between a local part of 1 to 64 characters and a dotted domain
/// without empty labels, neither holding whitespace, control characters or `<>,;`.
/// The characters Rust's `char::is_whitespace` (and so `str::trim`) counts as whitespace.
macro_rules! ws {
    () => {
        "\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
    };
}

const EMAIL_PATTERN: &str = concat!(
    "^[",
    ws!(),
    "]*",
    "[^@<>,;",
    ws!(),
    "\\u0000-\\u001f\\u007f-\\u009f]{1,64}",
    "@[^@<>,;.",
    ws!(),
    "\\u0000-\\u001f\\u007f-\\u009f]+",
    "(\\.[^@<>,;.",
    ws!(),
    "\\u0000-\\u001f\\u007f-\\u009f]+)+",
    "[",
    ws!(),
    "]*$",
);

/// What a new password may be, as far as a pattern can say: no U+0000, and something that is
/// not whitespace.
const PASSWORD_PATTERN: &str = concat!("^[^\\u0000]*[^\\u0000", ws!(), "][^\\u0000]*$");

/// What a text field may hold: anything but U+0000 (the store cannot hold one).
const NO_NUL_PATTERN: &str = "^[^\\u0000]*$";

/// The schema of a new password under `policy`: its minimum to
/// [`PasswordPolicy::MAX_LENGTH`] characters, [`PASSWORD_PATTERN`], and in words what neither
/// can say. The derived schemas use the default policy; the served document says the
/// configured one (`crate::openapi::served`).
pub(crate) fn password_schema_for(policy: &PasswordPolicy) -> utoipa::openapi::Object {
    let (min, max) = (policy.min_length(), PasswordPolicy::MAX_LENGTH);
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(min))
        .max_length(Some(max))
        .pattern(Some(PASSWORD_PATTERN))
        .description(Some(format!(
            "{min} to {max} characters (code points, after NFKC normalisation), not only \
             whitespace, not the account's email."
        )))
        .build()
}

/// Whether `schema` is a new password's (as [`password_schema_for`] builds it).
pub(crate) fn is_password_schema(schema: &utoipa::openapi::Object) -> bool {
    schema.pattern.as_deref() == Some(PASSWORD_PATTERN)
}

/// [`password_schema_for`] the default policy.
fn password_schema() -> utoipa::openapi::Object {
    password_schema_for(&PasswordPolicy::default())
}

/// The schema of an email field: [`EMAIL_PATTERN`], and what it cannot say in words.
fn email_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .max_length(Some(Email::MAX_LEN))
        .pattern(Some(EMAIL_PATTERN))
        .description(Some(format!(
            "At most {} characters as sent; trimmed of surrounding whitespace; unique on its NFC \
             lowercase form.",
            Email::MAX_LEN
        )))
        .build()
}

/// A trimmed string without U+0000 of `min` to `max` characters, `null` allowed when
/// `nullable`; `then` says what its absent, `null` or blank values mean.
fn text_schema(min: usize, max: usize, nullable: bool, then: &str) -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    let schema_type = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    let range = match min {
        0 => format!("at most {max}"),
        min => format!("{min} to {max}"),
    };
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(schema_type)
        .min_length((min > 0).then_some(min))
        .max_length(Some(max))
        .pattern(Some(NO_NUL_PATTERN))
        .description(Some(format!("Trimmed, {range} characters{then}")))
        .build()
}

/// A display name: at most [`DisplayName::MAX_LEN`] characters; `null` or blank is none.
fn display_name_schema() -> utoipa::openapi::Object {
    text_schema(0, DisplayName::MAX_LEN, true, "; blank or `null`: no name.")
}

/// A display name changed: as [`display_name_schema`], `null` or blank clearing it.
fn display_name_patch_schema() -> utoipa::openapi::Object {
    text_schema(0, DisplayName::MAX_LEN, true, ". `null` or blank: cleared.")
}

/// A role's name: 1 to [`RoleName::MAX_LEN`] characters; never `null`.
fn role_name_schema() -> utoipa::openapi::Object {
    text_schema(1, RoleName::MAX_LEN, false, ".")
}

/// A role's name changed: as [`role_name_schema`].
fn role_name_patch_schema() -> utoipa::openapi::Object {
    text_schema(
        1,
        RoleName::MAX_LEN,
        false,
        ". Absent: unchanged; `null` is refused.",
    )
}

/// A role's description: at most [`RoleDescription::MAX_LEN`] characters; `null` or blank is
/// none.
fn role_description_schema() -> utoipa::openapi::Object {
    text_schema(
        0,
        RoleDescription::MAX_LEN,
        true,
        "; blank or `null`: none.",
    )
}

/// A role's description changed: as [`role_description_schema`], `null` or blank clearing it.
fn role_description_patch_schema() -> utoipa::openapi::Object {
    text_schema(
        0,
        RoleDescription::MAX_LEN,
        true,
        ". Absent: unchanged; `null` or blank: cleared.",
    )
}

/// A role slug, [`RoleSlug::PATTERN`], never `null`, described by `description`.
fn slug_schema(description: &str) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(RoleSlug::PATTERN))
        .description(Some(description))
        .build()
}

/// A new role's slug.
fn new_role_slug_schema() -> utoipa::openapi::Object {
    slug_schema("Permanent.")
}

/// The role of a user an admin creates.
fn new_user_role_schema() -> utoipa::openapi::Object {
    slug_schema("A role slug; absent: the default role. An unknown slug is a 422.")
}

/// The role of a user an admin changes.
fn user_patch_role_schema() -> utoipa::openapi::Object {
    slug_schema("A role slug; an unknown one is a 422.")
}

/// The `per_page` query parameter: 1 to [`PerPage::MAX`], default [`PerPage::DEFAULT`].
pub(crate) fn per_page_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
            utoipa::openapi::schema::KnownFormat::Int32,
        )))
        .minimum(Some(1))
        .maximum(Some(PerPage::MAX))
        .description(Some(format!(
            "1 to {}; default {}",
            PerPage::MAX,
            PerPage::DEFAULT
        )))
        .build()
}

/// The `per_page` query parameter of a listing, its bounds the domain's ([`PerPage`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // A parameter of the document: never built, only described.
pub(crate) struct PerPageParam {
    /// The page size (its bounds and default are in its schema).
    #[param(schema_with = per_page_schema)]
    per_page: Option<u32>,
}

/// The message for a string holding U+0000, in a body, a query or a path: the store cannot
/// hold one.
pub(crate) const NUL_MESSAGE: &str = "must not contain U+0000";
const REQUIRED: &str = "this field is required";
const NOT_NULL: &str = "must not be null";

/// The bad fields found so far, in the order they were met.
#[derive(Debug, Default)]
pub(crate) struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// Records that `field` is wrong.
    pub fn push(&mut self, field: &'static str, message: impl std::fmt::Display) {
        self.0.push(FieldError::new(field, message));
    }

    /// `result`'s value, or `None` with its error recorded against `field`.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &'static str,
        result: Result<T, E>,
    ) -> Option<T> {
        result.map_err(|error| self.push(field, error)).ok()
    }

    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The errors, once every field was read.
    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }

    /// The command, when nothing was wrong; else a 422 listing every bad field.
    pub fn finish<T>(self, parsed: Option<T>) -> Result<T, crate::ApiError> {
        match parsed {
            Some(parsed) if self.is_empty() => Ok(parsed),
            None if self.is_empty() => Err(crate::ApiError::Internal(anyhow::anyhow!(
                "a request was refused without a field error"
            ))),
            _ => Err(crate::ApiError::Validation(self.0)),
        }
    }

    /// Puts an error found later (by a use case's rule) where the field's declared place is.
    pub fn insert_in_order(&mut self, error: FieldError, order: &[&str]) {
        let rank = |field: &str| order.iter().position(|name| *name == field);
        let at = self
            .0
            .iter()
            .position(|other| rank(other.field) > rank(error.field))
            .unwrap_or(self.0.len());
        self.0.insert(at, error);
    }
}

/// A body field as given: absent, an explicit `null`, or a value.
pub(crate) enum Given<T> {
    Absent,
    Null,
    Value(T),
}

/// The fields of a JSON object body, read one by one. Each reader records what is wrong with
/// the field's shape (absent when required, `null` where it means nothing, of another type,
/// holding U+0000) and answers `None` then.
pub(crate) struct Body<'a, 'e> {
    object: &'a Map<String, Value>,
    errors: &'e mut FieldErrors,
}

impl<'a, 'e> Body<'a, 'e> {
    pub fn new(object: &'a Map<String, Value>, errors: &'e mut FieldErrors) -> Self {
        Self { object, errors }
    }

    /// A string field, in any of its three states.
    fn given(&mut self, name: &'static str) -> Option<Given<&'a str>> {
        match self.object.get(name) {
            None => Some(Given::Absent),
            Some(Value::Null) => Some(Given::Null),
            Some(Value::String(text)) if text.contains('\0') => {
                self.errors.push(name, NUL_MESSAGE);
                None
            }
            Some(Value::String(text)) => Some(Given::Value(text)),
            Some(_) => {
                self.errors.push(name, "must be a string");
                None
            }
        }
    }

    /// A string that must be present and not `null`.
    pub fn required(&mut self, name: &'static str) -> Option<&'a str> {
        match self.given(name)? {
            Given::Absent => self.errors.push(name, REQUIRED),
            Given::Null => self.errors.push(name, NOT_NULL),
            Given::Value(text) => return Some(text),
        }
        None
    }

    /// A string that may be absent, but not `null`.
    pub fn optional(&mut self, name: &'static str) -> Option<Option<&'a str>> {
        match self.given(name)? {
            Given::Absent => Some(None),
            Given::Null => {
                self.errors.push(name, NOT_NULL);
                None
            }
            Given::Value(text) => Some(Some(text)),
        }
    }

    /// A string that may be absent or `null`, the two meaning what the endpoint says.
    pub fn nullable(&mut self, name: &'static str) -> Option<Given<&'a str>> {
        self.given(name)
    }

    /// A boolean that may be absent, but not `null`.
    pub fn flag(&mut self, name: &'static str) -> Option<Option<bool>> {
        match self.object.get(name) {
            None => Some(None),
            Some(Value::Bool(flag)) => Some(Some(*flag)),
            Some(Value::Null) => {
                self.errors.push(name, NOT_NULL);
                None
            }
            Some(_) => {
                self.errors.push(name, "must be a boolean");
                None
            }
        }
    }

    /// `result`'s value, or `None` with its error recorded against `name`.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        name: &'static str,
        result: Result<T, E>,
    ) -> Option<T> {
        self.errors.check(name, result)
    }
}

/// The OAuth2 password form of `POST /api/access/login` (parsed by `extract::PasswordForm`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // A schema of the document: never built, only described.
#[schema(as = LoginForm)]
pub(crate) struct LoginFormSchema {
    /// The email.
    username: String,
    password: String,
}

/// A path id: a UUID, or an error naming the parameter.
pub(crate) fn path_id(
    raw: &str,
    parameter: &'static str,
    errors: &mut FieldErrors,
) -> Option<uuid::Uuid> {
    errors.check(
        parameter,
        raw.parse::<uuid::Uuid>().map_err(|_| "must be a UUID"),
    )
}

/// A role slug given in a body: one that cannot be a slug names no role either.
fn role_slug(raw: &str) -> Result<RoleSlug, &'static str> {
    RoleSlug::parse(raw).map_err(|_| NO_SUCH_ROLE)
}

/// `{email, password, name?}` of `POST /api/access/signup`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // A schema of the document: never built, only described.
pub(crate) struct SignUpBody {
    /// Trimmed of surrounding whitespace; unique on its NFC lowercase form.
    #[schema(schema_with = email_schema)]
    email: String,
    /// The password policy's minimum to [`PasswordPolicy::MAX_LENGTH`] characters (code points,
    /// after NFKC),
    /// not only whitespace, not the email.
    #[schema(schema_with = password_schema)]
    password: String,
    /// Trimmed, at most [`DisplayName::MAX_LEN`] characters; blank or `null`: no name.
    #[schema(schema_with = display_name_schema)]
    name: Option<String>,
}

/// Parses a signup body.
pub(crate) fn sign_up(mut body: Body<'_, '_>, policy: &PasswordPolicy) -> Option<commands::SignUp> {
    let email = body
        .required("email")
        .and_then(|raw| body.check("email", Email::parse(raw)));
    let password = body
        .required("password")
        .and_then(|raw| body.check("password", NewPassword::parse(raw, policy, email.as_ref())));
    let name = optional_name(&mut body);
    Some(commands::SignUp {
        email: email?,
        password: password?,
        name: name?,
    })
}

/// A display name where absent, `null` and blank all mean none.
fn optional_name(body: &mut Body<'_, '_>) -> Option<Option<DisplayName>> {
    match body.nullable("name")? {
        Given::Absent | Given::Null => Some(None),
        Given::Value(raw) => body.check("name", DisplayName::parse(raw)),
    }
}

/// `{current_password, new_password}` of `PATCH /api/access/password`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // A schema of the document: never built, only described.
pub(crate) struct PasswordChangeBody {
    /// The password now (checked like a login password).
    #[schema(pattern = "^[^\\u0000]*$")]
    current_password: String,
    /// The password policy's minimum to [`PasswordPolicy::MAX_LENGTH`] characters (code points,
    /// after NFKC),
    /// not only whitespace, not the caller's email.
    #[schema(schema_with = password_schema)]
    new_password: String,
}

/// Parses a password change of the account with `email`; the IP is the caller's to add.
pub(crate) fn change_password(
    mut body: Body<'_, '_>,
    policy: &PasswordPolicy,
    email: &Email,
) -> Option<(String, NewPassword)> {
    let current = body.required("current_password");
    let new = body
        .required("new_password")
        .and_then(|raw| body.check("new_password", NewPassword::parse(raw, policy, Some(email))));
    Some((current?.to_owned(), new?))
}

/// `{email}` of `POST /api/access/password-reset`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // A schema of the document: never built, only described.
pub(crate) struct PasswordResetBody {
    /// Where the link goes, if an active account has this address (the answer does not say).
    #[schema(schema_with = email_schema)]
    email: String,
}

/// Parses a password-reset request from the client at `ip`.
pub(crate) fn request_password_reset(
    mut body: Body<'_, '_>,
    ip: Option<IpAddr>,
) -> Option<commands::RequestPasswordReset> {
    let email = body
        .required("email")
        .and_then(|raw| body.check("email", Email::parse(raw)));
    Some(commands::RequestPasswordReset { email: email?, ip })
}

/// `{token, new_password}` of `POST /api/access/password-reset/confirm`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // A schema of the document: never built, only described.
pub(crate) struct PasswordResetConfirmBody {
    /// The token of the reset link. One that is not authd's, spent or expired is a 400.
    #[schema(pattern = "^[^\\u0000]*$")]
    token: String,
    /// The password policy's minimum to [`PasswordPolicy::MAX_LENGTH`] characters (code points,
    /// after NFKC),
    /// not only whitespace, not the account's email.
    #[schema(schema_with = password_schema)]
    new_password: String,
}

/// Parses a reset confirmation. The token is only read: whether it is one of authd's is the
/// use case's to say (a 400, like a spent one), and the new password is checked against the
/// account's email once the token names the account.
pub(crate) fn confirm_password_reset(
    mut body: Body<'_, '_>,
    policy: &PasswordPolicy,
) -> Option<commands::ConfirmPasswordReset> {
    let token = body.required("token");
    let new_password = body
        .required("new_password")
        .and_then(|raw| body.check("new_password", NewPassword::parse(raw, policy, None)));
    Some(commands::ConfirmPasswordReset {
        token: token?.to_owned(),
        new_password: new_password?,
    })
}

/// `{token}` of `POST /api/access/verify-email`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // A schema of the document: never built, only described.
pub(crate) struct VerifyEmailBody {
    /// The token of the verification link. One that is not authd's, spent or expired is a 400.
    #[schema(pattern = "^[^\\u0000]*$")]
    token: String,
}

/// Parses an address verification; the token is the use case's to judge, as in
/// [`confirm_password_reset`].
pub(crate) fn verify_email(mut body: Body<'_, '_>) -> Option<commands::VerifyEmail> {
    let token = body.required("token");
    Some(commands::VerifyEmail {
        token: token?.to_owned(),
    })
}

/// `{slug, name, description?}` of `POST /api/roles`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // A schema of the document: never built, only described.
pub(crate) struct NewRoleBody {
    /// Permanent.
    #[schema(schema_with = new_role_slug_schema)]
    slug: String,
    /// Trimmed, 1 to [`RoleName::MAX_LEN`] characters.
    #[schema(schema_with = role_name_schema)]
    name: String,
    /// Trimmed, at most [`RoleDescription::MAX_LEN`] characters; blank or `null`: none.
    #[schema(schema_with = role_description_schema)]
    description: Option<String>,
}

/// Parses a new role.
pub(crate) fn create_role(mut body: Body<'_, '_>) -> Option<commands::CreateRole> {
    let slug = body
        .required("slug")
        .and_then(|raw| body.check("slug", RoleSlug::parse(raw)));
    let name = body
        .required("name")
        .and_then(|raw| body.check("name", RoleName::parse(raw)));
    let description = match body.nullable("description") {
        Some(Given::Absent | Given::Null) => Some(None),
        Some(Given::Value(raw)) => body.check("description", RoleDescription::parse(raw)),
        None => None,
    };
    Some(commands::CreateRole {
        slug: slug?,
        name: name?,
        description: description?,
    })
}

/// `{name?, description?}` of `PATCH /api/roles/{id}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // A schema of the document: never built, only described.
pub(crate) struct RoleUpdateBody {
    /// Trimmed, 1 to [`RoleName::MAX_LEN`] characters. Absent: unchanged; `null` is refused.
    #[schema(schema_with = role_name_patch_schema)]
    name: Option<String>,
    /// Trimmed, at most [`RoleDescription::MAX_LEN`] characters. Absent: unchanged; `null` or blank: cleared.
    #[schema(schema_with = role_description_patch_schema)]
    description: Option<String>,
}

/// Parses a role update.
pub(crate) fn update_role(mut body: Body<'_, '_>) -> Option<commands::UpdateRole> {
    let name = match body.optional("name") {
        Some(Some(raw)) => body.check("name", RoleName::parse(raw)).map(Some),
        Some(None) => Some(None),
        None => None,
    };
    let description = match body.nullable("description") {
        Some(Given::Absent) => Some(Patch::Keep),
        Some(Given::Null) => Some(Patch::Clear),
        Some(Given::Value(raw)) => body
            .check("description", RoleDescription::parse(raw))
            .map(Patch::from_given),
        None => None,
    };
    Some(commands::UpdateRole {
        name: name?,
        description: description?,
    })
}

/// `{email, password, name?, role?, is_active?, is_superuser?, is_verified?}` of
/// `POST /api/users`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // A schema of the document: never built, only described.
pub(crate) struct NewUserBody {
    /// Trimmed of surrounding whitespace; unique on its NFC lowercase form.
    #[schema(schema_with = email_schema)]
    email: String,
    /// The password policy's minimum to [`PasswordPolicy::MAX_LENGTH`] characters (code points,
    /// after NFKC),
    /// not only whitespace, not the email.
    #[schema(schema_with = password_schema)]
    password: String,
    /// Trimmed, at most [`DisplayName::MAX_LEN`] characters; blank or `null`: no name.
    #[schema(schema_with = display_name_schema)]
    name: Option<String>,
    /// A role slug; absent: the default role. An unknown slug is a 422.
    #[schema(schema_with = new_user_role_schema)]
    role: Option<String>,
    /// Absent: true.
    #[schema(nullable = false)]
    is_active: Option<bool>,
    /// Absent: false.
    #[schema(nullable = false)]
    is_superuser: Option<bool>,
    /// Absent: false.
    #[schema(nullable = false)]
    is_verified: Option<bool>,
}

/// The declared order of the fields of an admin's user body, after the path id.
pub(crate) const USER_FIELDS: &[&str] = &[
    "id",
    "email",
    "password",
    "name",
    "role",
    "is_active",
    "is_superuser",
    "is_verified",
];

/// Parses a user an admin creates. On failure, also the role slug it names (well formed),
/// so that the caller can tell whether it exists too.
pub(crate) fn create_user(
    mut body: Body<'_, '_>,
    policy: &PasswordPolicy,
) -> Result<commands::CreateUser, Option<RoleSlug>> {
    let email = body
        .required("email")
        .and_then(|raw| body.check("email", Email::parse(raw)));
    let password = body
        .required("password")
        .and_then(|raw| body.check("password", NewPassword::parse(raw, policy, email.as_ref())));
    let name = optional_name(&mut body);
    let role = optional_role(&mut body);
    let is_active = body.flag("is_active");
    let is_superuser = body.flag("is_superuser");
    let is_verified = body.flag("is_verified");
    let command = || {
        Some(commands::CreateUser {
            email: email.clone()?,
            password: password.clone()?,
            name: name.clone()?,
            role: role.clone()?,
            is_active: is_active?,
            is_superuser: is_superuser?,
            is_verified: is_verified?,
        })
    };
    command().ok_or_else(|| role.flatten())
}

/// A role slug that may be absent, but not `null`.
fn optional_role(body: &mut Body<'_, '_>) -> Option<Option<RoleSlug>> {
    match body.optional("role")? {
        Some(raw) => body.check("role", role_slug(raw)).map(Some),
        None => Some(None),
    }
}

/// `PATCH /api/users/{id}`: any of its fields; absent ones are unchanged.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // A schema of the document: never built, only described.
pub(crate) struct UserPatchBody {
    /// Trimmed of surrounding whitespace; unique on its NFC lowercase form.
    #[schema(schema_with = email_schema)]
    email: Option<String>,
    /// Trimmed, at most [`DisplayName::MAX_LEN`] characters. `null` or blank: cleared.
    #[schema(schema_with = display_name_patch_schema)]
    name: Option<String>,
    /// A role slug; an unknown one is a 422.
    #[schema(schema_with = user_patch_role_schema)]
    role: Option<String>,
    /// false revokes every session of the user.
    #[schema(nullable = false)]
    is_active: Option<bool>,
    #[schema(nullable = false)]
    is_superuser: Option<bool>,
    #[schema(nullable = false)]
    is_verified: Option<bool>,
    /// The password policy's minimum to [`PasswordPolicy::MAX_LENGTH`] characters (code points,
    /// after NFKC),
    /// not only whitespace, not the account's email. Revokes every session of the user.
    #[schema(schema_with = password_schema)]
    password: Option<String>,
}

/// The declared order of the fields of a user patch, after the path id.
pub(crate) const PATCH_FIELDS: &[&str] = &[
    "id",
    "email",
    "name",
    "role",
    "is_active",
    "is_superuser",
    "is_verified",
    "password",
];

/// What a user patch whose parse failed still tells the use case's own checks: the role slug
/// and the password it gives (each when well formed), and whether it changes the email.
#[derive(Default)]
pub(crate) struct PatchLeftovers {
    pub role: Option<RoleSlug>,
    pub password: Option<NewPassword>,
    pub changes_email: bool,
}

/// Parses a user patch. On failure, also what [`PatchLeftovers`] keeps, as [`create_user`]
/// keeps the role.
pub(crate) fn update_user(
    mut body: Body<'_, '_>,
    policy: &PasswordPolicy,
) -> Result<commands::UpdateUser, PatchLeftovers> {
    let email = match body.optional("email") {
        Some(Some(raw)) => body.check("email", Email::parse(raw)).map(Some),
        Some(None) => Some(None),
        None => None,
    };
    let name = match body.nullable("name") {
        Some(Given::Absent) => Some(Patch::Keep),
        Some(Given::Null) => Some(Patch::Clear),
        Some(Given::Value(raw)) => body
            .check("name", DisplayName::parse(raw))
            .map(Patch::from_given),
        None => None,
    };
    let role = optional_role(&mut body);
    let is_active = body.flag("is_active");
    let is_superuser = body.flag("is_superuser");
    let is_verified = body.flag("is_verified");
    // Against the patch's email here; against the stored one by the use case otherwise.
    let new_email = email.clone().flatten();
    let password = match body.optional("password") {
        Some(Some(raw)) => body
            .check(
                "password",
                NewPassword::parse(raw, policy, new_email.as_ref()),
            )
            .map(Some),
        Some(None) => Some(None),
        None => None,
    };
    let command = || {
        Some(commands::UpdateUser {
            email: email.clone()?,
            name: name.clone()?,
            role: role.clone()?,
            is_active: is_active?,
            is_superuser: is_superuser?,
            is_verified: is_verified?,
            password: password.clone()?,
        })
    };
    command().ok_or_else(|| PatchLeftovers {
        role: role.flatten(),
        password: password.flatten(),
        // A bad email is one the patch changes too: the stored one is not kept.
        changes_email: !matches!(email, Some(None)),
    })
}

/// The query of `GET /api/users`: `page`, `per_page`, `q`, `role`, `is_active`; every bad one is
/// reported, in that order: numbers that are not whole or out of range, strings holding U+0000,
/// a flag that is not one. An unparseable query string is a 422 naming `query`.
pub(crate) fn list_users(raw: &str, errors: &mut FieldErrors) -> Option<commands::ListUsers> {
    let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(raw) else {
        errors.push("query", "not a valid query string");
        return None;
    };
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    // A whole number, then its range: each parameter's error in its own place.
    let number = |name: &'static str, errors: &mut FieldErrors| match get(name).map(str::parse) {
        None => Some(None),
        Some(Ok(value)) => Some(Some(value)),
        Some(Err(_)) => {
            errors.push(name, "must be a whole number");
            None
        }
    };
    let page = number("page", errors).and_then(|page| match page {
        Some(page) => errors.check("page", Page::new(page)),
        None => Some(Page::default()),
    });
    let per_page = number("per_page", errors).and_then(|size| match size {
        Some(size) => errors.check("per_page", PerPage::new(size)),
        None => Some(PerPage::default()),
    });
    let mut text = |name: &'static str| match get(name) {
        Some(value) if value.contains('\0') => {
            errors.push(name, NUL_MESSAGE);
            None
        }
        value => Some(value.map(str::to_owned)),
    };
    let (q, role) = (text("q"), text("role"));
    let is_active = match get("is_active") {
        None => Some(None),
        Some("true") => Some(Some(true)),
        Some("false") => Some(Some(false)),
        Some(_) => {
            errors.push("is_active", "must be true or false");
            None
        }
    };
    let role = role?.map(|role| match RoleSlug::parse(&role) {
        Ok(slug) => RoleFilter::Slug(slug),
        Err(_) => RoleFilter::Unmatchable,
    });
    Some(commands::ListUsers {
        page: page?,
        per_page: per_page?,
        q: q?,
        role,
        is_active: is_active?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(errors: FieldErrors) -> Vec<&'static str> {
        errors.into_vec().iter().map(|e| e.field).collect()
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(object) => object,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn absent_null_mistyped_and_nul_are_told_apart() {
        let body = object(json!({"a": null, "b": 3, "c": "x\u{0}", "d": "ok", "e": "true"}));
        let mut errors = FieldErrors::default();
        let mut reader = Body::new(&body, &mut errors);
        assert!(reader.required("missing").is_none());
        assert!(reader.required("a").is_none());
        assert!(reader.optional("b").is_none());
        assert!(matches!(reader.nullable("a"), Some(Given::Null)));
        assert!(matches!(reader.nullable("zz"), Some(Given::Absent)));
        assert!(reader.nullable("c").is_none());
        assert_eq!(reader.optional("d"), Some(Some("ok")));
        assert!(reader.flag("e").is_none());
        assert_eq!(reader.flag("zz"), Some(None));
        let messages: Vec<_> = errors.into_vec().into_iter().map(|e| e.message).collect();
        assert_eq!(
            messages,
            [
                REQUIRED,
                NOT_NULL,
                "must be a string",
                NUL_MESSAGE,
                "must be a boolean"
            ]
        );
    }

    #[test]
    fn a_signup_reports_every_bad_field_in_order() {
        let policy = PasswordPolicy::default();
        let body = object(json!({"email": "nope", "password": "short", "name": "x".repeat(101)}));
        let mut errors = FieldErrors::default();
        assert!(sign_up(Body::new(&body, &mut errors), &policy).is_none());
        assert_eq!(fields(errors), ["email", "password", "name"]);
        let body = object(json!({"email": " Ada@Example.com ", "password": "ada@example.COM"}));
        let mut errors = FieldErrors::default();
        assert!(sign_up(Body::new(&body, &mut errors), &policy).is_none());
        assert_eq!(fields(errors), ["password"]);
        let body =
            object(json!({"email": "ada@example.com", "password": "long enough", "name": " "}));
        let mut errors = FieldErrors::default();
        let command = sign_up(Body::new(&body, &mut errors), &policy).unwrap();
        assert!(command.name.is_none() && errors.is_empty());
    }

    #[test]
    fn a_reset_request_needs_an_email_and_keeps_the_ip() {
        let ip = Some(IpAddr::from([192, 0, 2, 7]));
        let parse = |value: Value| {
            let body = object(value);
            let mut errors = FieldErrors::default();
            let parsed = request_password_reset(Body::new(&body, &mut errors), ip);
            (parsed, errors.into_vec())
        };
        for bad in [
            json!({}),
            json!({"email": null}),
            json!({"email": 7}),
            json!({"email": "nope"}),
            json!({"email": "ada\u{0}@example.com"}),
        ] {
            let (parsed, errors) = parse(bad.clone());
            assert!(parsed.is_none(), "{bad}");
            assert_eq!(
                errors.iter().map(|e| e.field).collect::<Vec<_>>(),
                ["email"],
                "{bad}"
            );
        }
        let (_, errors) = parse(json!({"email": "x\u{0}"}));
        assert_eq!(errors[0].message, NUL_MESSAGE);
        let (parsed, errors) = parse(json!({"email": " Ada@Example.com ", "extra": 1}));
        let command = parsed.unwrap();
        assert!(errors.is_empty());
        assert_eq!(
            (command.email.as_str(), command.ip),
            ("Ada@Example.com", ip)
        );
    }

    #[test]
    fn a_reset_confirmation_reports_both_fields_and_leaves_the_token_to_the_use_case() {
        let policy = PasswordPolicy::default();
        let parse = |value: Value| {
            let body = object(value);
            let mut errors = FieldErrors::default();
            let parsed = confirm_password_reset(Body::new(&body, &mut errors), &policy);
            (parsed, fields(errors))
        };
        let (parsed, bad) = parse(json!({}));
        assert!(parsed.is_none());
        assert_eq!(bad, ["token", "new_password"]);
        let (parsed, bad) = parse(json!({"token": 3, "new_password": "short"}));
        assert!(parsed.is_none());
        assert_eq!(bad, ["token", "new_password"]);
        let (parsed, bad) = parse(json!({"token": "t\u{0}", "new_password": "long enough\u{0}"}));
        assert!(parsed.is_none());
        assert_eq!(bad, ["token", "new_password"]);
        let (parsed, bad) = parse(json!({"token": null, "new_password": "a long password"}));
        assert!(parsed.is_none());
        assert_eq!(bad, ["token"]);
        // Not a token authd could have issued, but well formed as a body: the use case's 400.
        let (parsed, bad) = parse(json!({"token": "", "new_password": "a long password"}));
        assert!(bad.is_empty());
        let command = parsed.unwrap();
        assert_eq!(command.token, "");
        let (parsed, _) =
            parse(json!({"token": "not base64 !", "new_password": "a long password"}));
        assert_eq!(parsed.unwrap().token, "not base64 !");
    }

    #[test]
    fn an_email_verification_needs_a_string_token_of_any_form() {
        let parse = |value: Value| {
            let body = object(value);
            let mut errors = FieldErrors::default();
            let parsed = verify_email(Body::new(&body, &mut errors));
            (parsed, errors.into_vec())
        };
        for (bad, message) in [
            (json!({}), REQUIRED),
            (json!({"token": null}), NOT_NULL),
            (json!({"token": ["x"]}), "must be a string"),
            (json!({"token": "abc\u{0}"}), NUL_MESSAGE),
        ] {
            let (parsed, errors) = parse(bad.clone());
            assert!(parsed.is_none(), "{bad}");
            assert_eq!(errors, [FieldError::new("token", message)], "{bad}");
        }
        for token in ["", "short", "x".repeat(500).as_str()] {
            let (parsed, errors) = parse(json!({ "token": token }));
            assert!(errors.is_empty());
            assert_eq!(parsed.unwrap().token, token);
        }
    }

    #[test]
    fn a_user_patch_keeps_absent_null_and_blank_apart() {
        let policy = PasswordPolicy::default();
        let parse = |value: Value| {
            let body = object(value);
            let mut errors = FieldErrors::default();
            let parsed = update_user(Body::new(&body, &mut errors), &policy);
            (parsed, fields(errors))
        };
        let (Ok(kept), _) = parse(json!({})) else {
            panic!()
        };
        assert_eq!(kept.name, Patch::Keep);
        let (Ok(cleared), _) = parse(json!({"name": null})) else {
            panic!()
        };
        assert_eq!(cleared.name, Patch::Clear);
        let (Ok(blank), _) = parse(json!({"name": "  "})) else {
            panic!()
        };
        assert_eq!(blank.name, Patch::Clear);
        let (Err(left), bad) = parse(json!({"role": "ghosts", "email": null, "is_active": "no"}))
        else {
            panic!()
        };
        assert_eq!(left.role.unwrap().as_str(), "ghosts");
        assert!(left.changes_email && left.password.is_none());
        assert_eq!(bad, ["email", "is_active"]);
        let (Err(left), bad) = parse(json!({"is_active": "no", "password": "a long password"}))
        else {
            panic!()
        };
        assert!(left.password.is_some() && !left.changes_email && left.role.is_none());
        assert_eq!(bad, ["is_active"]);
        // Against the patch's own email.
        let (_, bad) = parse(json!({"email": "a@b.co", "password": "A@B.CO"}));
        assert_eq!(bad, ["password"]);
    }

    #[test]
    fn a_later_error_takes_its_declared_place() {
        let mut errors = FieldErrors::default();
        errors.push("id", "must be a UUID");
        errors.push("email", "bad");
        errors.push("is_active", "bad");
        errors.insert_in_order(FieldError::new("role", NO_SUCH_ROLE), PATCH_FIELDS);
        assert_eq!(fields(errors), ["id", "email", "role", "is_active"]);
    }

    fn bad_query(query: &str) -> Vec<&'static str> {
        let mut errors = FieldErrors::default();
        assert!(list_users(query, &mut errors).is_none(), "{query}");
        fields(errors)
    }

    #[test]
    fn the_listing_query_has_defaults_and_reports_every_bad_parameter() {
        let mut errors = FieldErrors::default();
        let defaults = list_users("", &mut errors).unwrap();
        assert_eq!((defaults.page.get(), defaults.per_page.get()), (1, 20));
        let full = list_users(
            "page=2&per_page=5&q=ada%20l&role=editors&is_active=false",
            &mut errors,
        )
        .unwrap();
        assert_eq!(
            (
                full.page.get(),
                full.per_page.get(),
                full.q.as_deref(),
                full.is_active
            ),
            (2, 5, Some("ada l"), Some(false))
        );
        assert_eq!(
            list_users("role=Not%20A%20Slug", &mut errors).unwrap().role,
            Some(RoleFilter::Unmatchable)
        );
        assert!(errors.is_empty());
        assert_eq!(
            bad_query("page=x&per_page=-1&is_active=yes"),
            ["page", "per_page", "is_active"]
        );
        assert_eq!(bad_query("per_page=0&page=x"), ["page", "per_page"]);
        assert_eq!(bad_query("per_page=101"), ["per_page"]);
        assert_eq!(
            bad_query("is_active=no&role=x%00&q=%00&per_page=500&page=0"),
            ["page", "per_page", "q", "role", "is_active"]
        );
    }

    #[test]
    fn a_path_id_that_is_not_a_uuid_names_its_parameter() {
        for raw in ["nope", "\0", "0190a1b2-0000-7000-8000-00000000000\0"] {
            let mut errors = FieldErrors::default();
            assert!(path_id(raw, "sid", &mut errors).is_none());
            assert_eq!(fields(errors), ["sid"]);
        }
    }
}
