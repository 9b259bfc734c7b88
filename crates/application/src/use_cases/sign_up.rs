use std::sync::Arc;

use anyhow::anyhow;
use authd_domain::{LinkPurpose, User};

use crate::commands;
use crate::ports::{
    Clock, CreateUserError, LinkTokens, PasswordHasher, RoleRepository, UserRepository,
};
use crate::use_cases::recovery::issue_link;
use crate::{AuthSettings, PortError};

/// Why a signup failed.
#[derive(Debug, thiserror::Error)]
pub enum SignUpError {
    /// The email is taken.
    #[error("the email is taken")]
    EmailTaken,
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Creates an account with the default role, and sends its address a verification link. The
/// store's unique constraint on the lowercase email decides races, and the user, its
/// verification token and the email are written in one transaction, so a taken email leaves
/// nothing behind and sends nothing.
pub struct SignUp {
    pub users: Arc<dyn UserRepository>,
    pub roles: Arc<dyn RoleRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub tokens: Arc<dyn LinkTokens>,
    pub clock: Arc<dyn Clock>,
    pub settings: AuthSettings,
}

impl SignUp {
    /// Signs a visitor up.
    pub async fn execute(&self, command: commands::SignUp) -> Result<User, SignUpError> {
        let role = self
            .roles
            .find_by_slug(&self.settings.default_role)
            .await?
            .ok_or_else(|| anyhow!("the default role {} is missing", self.settings.default_role))
            .map_err(PortError::from)?;
        let hash = self.hasher.hash(command.password.password()).await?;
        let now = self.clock.now();
        let user = User::register(command.email, command.name, role.to_ref(), now);
        let verification =
            issue_link(&*self.tokens, LinkPurpose::VerifyEmail, &self.settings, now)?;
        self.users
            .create(&user, &hash, Some(&verification))
            .await
            .map_err(|error| match error {
                CreateUserError::EmailTaken => SignUpError::EmailTaken,
                CreateUserError::Port(error) => SignUpError::Port(error),
            })?;
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dependency;
    use crate::ports::{
        IssuedLink, MockLinkTokens, MockPasswordHasher, MockRoleRepository, MockUserRepository,
        TokenDigest,
    };
    use crate::use_cases::fixtures::*;
    use authd_domain::{DisplayName, Email, NewPassword};

    fn request(email: &str, password: &str) -> commands::SignUp {
        let email = Email::parse(email).unwrap();
        let password = NewPassword::parse(password, &settings().password_policy, Some(&email));
        commands::SignUp {
            email,
            password: password.unwrap(),
            name: DisplayName::parse("  Ada ").unwrap(),
        }
    }

    fn sign_up(users: MockUserRepository, hasher: MockPasswordHasher) -> SignUp {
        sign_up_with(users, hasher, issuing_link(7, "sealed-verify"))
    }

    fn sign_up_with(
        users: MockUserRepository,
        hasher: MockPasswordHasher,
        tokens: MockLinkTokens,
    ) -> SignUp {
        let mut roles = MockRoleRepository::new();
        roles
            .expect_find_by_slug()
            .returning(|_| Ok(Some(role("application-access"))));
        SignUp {
            users: Arc::new(users),
            roles: Arc::new(roles),
            hasher: Arc::new(hasher),
            tokens: Arc::new(tokens),
            clock: fixed_clock(),
            settings: settings(),
        }
    }

    #[tokio::test]
    async fn creates_an_active_user_with_the_default_role() {
        let mut users = MockUserRepository::new();
        users
            .expect_create()
            .withf(|user, hash, _| {
                user.email.as_str() == "Ada@Example.com" && hash.as_str() == "$argon2id$stub"
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        let user = sign_up(users, hashing("correct horse", "$argon2id$stub"))
            .execute(request(" Ada@Example.com ", "correct horse"))
            .await
            .unwrap();
        assert_eq!(user.role.slug.as_str(), "application-access");
        assert_eq!(user.name.as_ref().map(DisplayName::as_str), Some("Ada"));
        assert!(user.is_active && !user.is_superuser && !user.is_verified);
        assert_eq!(user.created_at, now());
    }

    #[tokio::test]
    async fn the_user_is_stored_with_a_verification_link_of_the_verify_lifetime() {
        let expected = IssuedLink {
            purpose: LinkPurpose::VerifyEmail,
            digest: TokenDigest([7; 32]),
            sealed: "sealed-verify".to_owned(),
            expires_at: now() + settings().verify_ttl,
        };
        let mut users = MockUserRepository::new();
        users
            .expect_create()
            .withf(move |user, _, verification| {
                user.email.as_str() == "ada@example.com" && verification == &Some(&expected)
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        assert!(
            sign_up(users, hashing("correct horse", "$argon2id$stub"))
                .execute(request("ada@example.com", "correct horse"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_token_that_cannot_be_issued_creates_nobody() {
        let mut tokens = MockLinkTokens::new();
        tokens
            .expect_issue()
            .times(1)
            .returning(|| Err(PortError::Unexpected(anyhow!("no randomness"))));
        let mut users = MockUserRepository::new();
        users.expect_create().never();
        let error = sign_up_with(users, hashing("correct horse", "$argon2id$stub"), tokens)
            .execute(request("ada@example.com", "correct horse"))
            .await
            .unwrap_err();
        assert!(matches!(error, SignUpError::Port(PortError::Unexpected(_))));
    }

    #[tokio::test]
    async fn taken_email_is_a_conflict() {
        let mut users = MockUserRepository::new();
        users
            .expect_create()
            .returning(|_, _, _| Err(CreateUserError::EmailTaken));
        let error = sign_up(users, hashing("correct horse", "$argon2id$stub"))
            .execute(request("ada@example.com", "correct horse"))
            .await
            .unwrap_err();
        assert!(matches!(error, SignUpError::EmailTaken));
    }

    #[tokio::test]
    async fn store_outage_is_a_port_error() {
        let mut users = MockUserRepository::new();
        users.expect_create().returning(|_, _, _| {
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
            tokens: Arc::new(MockLinkTokens::new()),
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
