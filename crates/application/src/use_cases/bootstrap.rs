use std::sync::Arc;

use domain::{Email, User};

use crate::ports::{Clock, CreateUserError, PasswordHasher, RoleRepository, UserRepository};
use crate::{AuthSettings, PortError};

/// The configured primary admin: used only when no primary admin exists yet.
#[derive(Clone)]
pub struct AdminSeed {
    /// Its email.
    pub email: String,
    /// Its initial password (never written over an existing admin's).
    pub password: String,
}

impl std::fmt::Debug for AdminSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSeed")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// What the start-up bootstrap did about the primary admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOutcome {
    /// No admin credentials are configured.
    NotConfigured,
    /// The primary admin was created now.
    Created,
    /// A primary admin already existed; nothing was changed.
    AlreadyExists,
    /// Another (non-primary) user has the configured email: no admin was created.
    EmailTaken,
}

/// Why the bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The configured admin email or password is unusable.
    #[error("{setting}: {reason}")]
    InvalidAdmin {
        /// The setting at fault.
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Start-up: creates the default role when missing, and the primary admin when none exists.
/// Idempotent, and safe when several instances start at once: the store lets one role per slug
/// and one primary admin exist.
pub struct Bootstrap {
    pub users: Arc<dyn UserRepository>,
    pub roles: Arc<dyn RoleRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub clock: Arc<dyn Clock>,
    pub settings: AuthSettings,
}

impl Bootstrap {
    /// Runs the bootstrap.
    pub async fn execute(&self, admin: Option<&AdminSeed>) -> Result<AdminOutcome, BootstrapError> {
        let slug = &self.settings.default_role;
        let role = self
            .roles
            .ensure(slug, &role_name(slug.as_str()), self.clock.now())
            .await?;
        let Some(seed) = admin else {
            return Ok(AdminOutcome::NotConfigured);
        };
        let email = Email::parse(&seed.email).map_err(|error| BootstrapError::InvalidAdmin {
            setting: "AUTHD_ADMIN_EMAIL",
            reason: error.to_string(),
        })?;
        let password = self
            .settings
            .password_policy
            .check(&seed.password, Some(&email))
            .map_err(|error| BootstrapError::InvalidAdmin {
                setting: "AUTHD_ADMIN_PASSWORD",
                reason: error.to_string(),
            })?;
        let hash = self.hasher.hash(&password).await?;
        let admin = User::primary_admin(email, role.to_ref(), self.clock.now());
        match self.users.create_primary_admin(&admin, &hash).await {
            Ok(true) => Ok(AdminOutcome::Created),
            Ok(false) => Ok(AdminOutcome::AlreadyExists),
            Err(CreateUserError::EmailTaken) => Ok(AdminOutcome::EmailTaken),
            Err(CreateUserError::Port(error)) => Err(error.into()),
        }
    }
}

/// "application-access" -> "Application access".
fn role_name(slug: &str) -> String {
    let words = slug.replace('-', " ");
    let mut chars = words.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockPasswordHasher, MockRoleRepository, MockUserRepository};
    use crate::use_cases::fixtures::*;
    use domain::{PasswordHash, Role};

    fn bootstrap(users: MockUserRepository, hasher: MockPasswordHasher) -> Bootstrap {
        let mut roles = MockRoleRepository::new();
        roles
            .expect_ensure()
            .withf(|slug, name, _| {
                slug.as_str() == "application-access" && name == "Application access"
            })
            .times(1)
            .returning(|slug, name, now| {
                Ok(Role {
                    id: role_ref().id,
                    slug: slug.clone(),
                    name: name.into(),
                    description: None,
                    created_at: now,
                    updated_at: now,
                })
            });
        Bootstrap {
            users: Arc::new(users),
            roles: Arc::new(roles),
            hasher: Arc::new(hasher),
            clock: fixed_clock(),
            settings: settings(),
        }
    }

    fn hashing() -> MockPasswordHasher {
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("$argon2id$admin")));
        hasher
    }

    fn seed(email: &str, password: &str) -> AdminSeed {
        AdminSeed {
            email: email.into(),
            password: password.into(),
        }
    }

    #[tokio::test]
    async fn without_credentials_only_the_default_role_is_ensured() {
        let outcome = bootstrap(MockUserRepository::new(), MockPasswordHasher::new())
            .execute(None)
            .await
            .unwrap();
        assert_eq!(outcome, AdminOutcome::NotConfigured);
    }

    #[tokio::test]
    async fn creates_the_primary_admin_as_an_active_verified_superuser() {
        let mut users = MockUserRepository::new();
        users
            .expect_create_primary_admin()
            .withf(|admin, hash| {
                admin.is_primary_admin
                    && admin.is_superuser
                    && admin.is_active
                    && admin.is_verified
                    && admin.email.as_str() == "root@example.com"
                    && hash.as_str() == "$argon2id$admin"
            })
            .times(1)
            .returning(|_, _| Ok(true));
        let outcome = bootstrap(users, hashing())
            .execute(Some(&seed("root@example.com", "a long admin password")))
            .await
            .unwrap();
        assert_eq!(outcome, AdminOutcome::Created);
    }

    #[tokio::test]
    async fn an_existing_admin_or_a_taken_email_is_reported_not_overwritten() {
        for (stored, expected) in [
            (Ok(false), AdminOutcome::AlreadyExists),
            (Err(()), AdminOutcome::EmailTaken),
        ] {
            let mut users = MockUserRepository::new();
            users
                .expect_create_primary_admin()
                .returning(move |_, _| stored.map_err(|()| CreateUserError::EmailTaken));
            let outcome = bootstrap(users, hashing())
                .execute(Some(&seed("root@example.com", "a long admin password")))
                .await
                .unwrap();
            assert_eq!(outcome, expected);
        }
    }

    #[tokio::test]
    async fn unusable_credentials_name_their_setting() {
        let error = bootstrap(MockUserRepository::new(), MockPasswordHasher::new())
            .execute(Some(&seed("not an email", "a long admin password")))
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            BootstrapError::InvalidAdmin {
                setting: "AUTHD_ADMIN_EMAIL",
                ..
            }
        ));
        let error = bootstrap(MockUserRepository::new(), MockPasswordHasher::new())
            .execute(Some(&seed("root@example.com", "short")))
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            BootstrapError::InvalidAdmin {
                setting: "AUTHD_ADMIN_PASSWORD",
                ..
            }
        ));
    }
}
