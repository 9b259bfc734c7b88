use std::sync::Arc;

use anyhow::anyhow;
use authd_domain::{Email, Password, PasswordPolicy, User};

use crate::ports::{Clock, CreateUserError, PasswordHasher, RoleRepository, UserRepository};
use crate::{AuthSettings, FieldError, PortError};

/// What a visitor submits to sign up.
#[derive(Debug, Clone)]
pub struct SignUpRequest {
    /// Their email.
    pub email: String,
    /// Their chosen password.
    pub password: String,
    /// An optional display name.
    pub name: Option<String>,
}

/// Why a signup failed.
#[derive(Debug, thiserror::Error)]
pub enum SignUpError {
    /// One entry per bad field.
    #[error("invalid signup")]
    Invalid(Vec<FieldError>),
    /// The email is taken.
    #[error("a user with this email already exists")]
    EmailTaken,
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// The longest display name accepted, in characters.
pub const MAX_NAME_LEN: usize = 100;

/// Creates an account with the default role. The store's unique constraint on the lowercase
/// email decides races, and the user row is written in one statement, so a taken email leaves
/// nothing behind.
pub struct SignUp {
    pub users: Arc<dyn UserRepository>,
    pub roles: Arc<dyn RoleRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub clock: Arc<dyn Clock>,
    pub settings: AuthSettings,
}

impl SignUp {
    /// Signs a visitor up.
    pub async fn execute(&self, request: SignUpRequest) -> Result<User, SignUpError> {
        let (email, password, name) = self.validate(&request).map_err(SignUpError::Invalid)?;
        let role = self
            .roles
            .find_by_slug(&self.settings.default_role)
            .await?
            .ok_or_else(|| anyhow!("the default role {} is missing", self.settings.default_role))
            .map_err(PortError::from)?;
        let hash = self.hasher.hash(&password).await?;
        let user = User::register(email, name, role.to_ref(), self.clock.now());
        self.users
            .create(&user, &hash)
            .await
            .map_err(|error| match error {
                CreateUserError::EmailTaken => SignUpError::EmailTaken,
                CreateUserError::Port(error) => SignUpError::Port(error),
            })?;
        Ok(user)
    }

    /// Every field error of `request`, empty when it is valid: the same checks `execute` makes,
    /// for a transport that must report them together with its own (type) errors.
    pub fn field_errors(&self, request: &SignUpRequest) -> Vec<FieldError> {
        self.validate(request).err().unwrap_or_default()
    }

    /// Checks every field and reports all that are wrong.
    fn validate(
        &self,
        request: &SignUpRequest,
    ) -> Result<(Email, Password, Option<String>), Vec<FieldError>> {
        check_account(
            &self.settings.password_policy,
            &request.email,
            &request.password,
            request.name.as_deref(),
        )
    }
}

/// Checks what every new account needs: the email, the password (against the policy and the
/// email) and the display name. Reports every bad field, in that order.
pub(crate) fn check_account(
    policy: &PasswordPolicy,
    email: &str,
    password: &str,
    name: Option<&str>,
) -> Result<(Email, Password, Option<String>), Vec<FieldError>> {
    let email = Email::parse(email);
    let password = policy.check(password, email.as_ref().ok());
    let name = normalize_name(name);
    match (email, password, name) {
        (Ok(email), Ok(password), Ok(name)) => Ok((email, password, name)),
        (email, password, name) => Err([
            email.err().map(|e| FieldError::new("email", e)),
            password.err().map(|e| FieldError::new("password", e)),
            name.err(),
        ]
        .into_iter()
        .flatten()
        .collect()),
    }
}

/// Trims a display name; a blank one is no name.
pub(crate) fn normalize_name(name: Option<&str>) -> Result<Option<String>, FieldError> {
    let Some(name) = name.map(str::trim).filter(|name| !name.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > MAX_NAME_LEN {
        return Err(FieldError::new(
            "name",
            format!("name must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    Ok(Some(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dependency;
    use crate::ports::{MockPasswordHasher, MockRoleRepository, MockUserRepository};
    use crate::use_cases::fixtures::*;

    fn request(email: &str, password: &str) -> SignUpRequest {
        SignUpRequest {
            email: email.into(),
            password: password.into(),
            name: Some("  Ada ".into()),
        }
    }

    fn sign_up(users: MockUserRepository, hasher: MockPasswordHasher) -> SignUp {
        let mut roles = MockRoleRepository::new();
        roles
            .expect_find_by_slug()
            .returning(|_| Ok(Some(role("application-access"))));
        SignUp {
            users: Arc::new(users),
            roles: Arc::new(roles),
            hasher: Arc::new(hasher),
            clock: fixed_clock(),
            settings: settings(),
        }
    }

    #[tokio::test]
    async fn creates_an_active_user_with_the_default_role() {
        let mut users = MockUserRepository::new();
        users
            .expect_create()
            .withf(|user, hash| {
                user.email.as_str() == "Ada@Example.com" && hash.as_str() == "$argon2id$stub"
            })
            .times(1)
            .returning(|_, _| Ok(()));
        let user = sign_up(users, hashing("correct horse", "$argon2id$stub"))
            .execute(request(" Ada@Example.com ", "correct horse"))
            .await
            .unwrap();
        assert_eq!(user.role.slug.as_str(), "application-access");
        assert_eq!(user.name.as_deref(), Some("Ada"));
        assert!(user.is_active && !user.is_superuser && !user.is_verified);
        assert_eq!(user.created_at, now());
    }

    #[tokio::test]
    async fn reports_every_invalid_field_and_hashes_nothing() {
        let mut hasher = MockPasswordHasher::new();
        hasher.expect_hash().never();
        let mut request = request("not-an-email", "short");
        request.name = Some("x".repeat(101));
        let error = sign_up(MockUserRepository::new(), hasher)
            .execute(request)
            .await
            .unwrap_err();
        let SignUpError::Invalid(errors) = error else {
            panic!("expected Invalid, got {error:?}")
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["email", "password", "name"]);
    }

    #[tokio::test]
    async fn password_equal_to_the_email_is_refused() {
        let error = sign_up(MockUserRepository::new(), MockPasswordHasher::new())
            .execute(request("ada@example.com", "ADA@example.com"))
            .await
            .unwrap_err();
        assert!(matches!(error, SignUpError::Invalid(errors) if errors[0].field == "password"));
    }

    #[tokio::test]
    async fn taken_email_is_a_conflict() {
        let mut users = MockUserRepository::new();
        users
            .expect_create()
            .returning(|_, _| Err(CreateUserError::EmailTaken));
        let error = sign_up(users, hashing("correct horse", "$argon2id$stub"))
            .execute(request("ada@example.com", "correct horse"))
            .await
            .unwrap_err();
        assert!(matches!(error, SignUpError::EmailTaken));
    }

    #[tokio::test]
    async fn store_outage_is_a_port_error() {
        let mut users = MockUserRepository::new();
        users.expect_create().returning(|_, _| {
            Err(CreateUserError::Port(PortError::Unavailable(
                Dependency::Database,
            )))
        });
        let error = sign_up(users, hashing("correct horse", "$argon2id$stub"))
            .execute(request("ada@example.com", "correct horse"))
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            SignUpError::Port(PortError::Unavailable(Dependency::Database))
        ));
    }

    #[tokio::test]
    async fn missing_default_role_is_unexpected() {
        let mut roles = MockRoleRepository::new();
        roles.expect_find_by_slug().returning(|_| Ok(None));
        let sign_up = SignUp {
            users: Arc::new(MockUserRepository::new()),
            roles: Arc::new(roles),
            hasher: Arc::new(MockPasswordHasher::new()),
            clock: fixed_clock(),
            settings: settings(),
        };
        let error = sign_up
            .execute(request("ada@example.com", "correct horse"))
            .await
            .unwrap_err();
        assert!(matches!(error, SignUpError::Port(PortError::Unexpected(_))));
    }
}
