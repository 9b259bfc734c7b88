use std::sync::Arc;

use anyhow::Context as _;
use authd_domain::{Email, RoleName, User};

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
        // A slug's words always make a name (2 to 63 characters, the first a letter or digit).
        let name = RoleName::parse(&role_name(slug.as_str()))
            .with_context(|| format!("no role name from the default role {slug}"))
            .map_err(PortError::from)?;
        let role = self.roles.ensure(slug, &name, self.clock.now()).await?;
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
        // At every start but the first, this primary admin exists: say so without hashing the
        // seed (a full Argon2 hash), as `create_primary_admin` would. Anything else (no such
        // user, or an ordinary one holding the email) goes to `create_primary_admin`: only it
        // knows whether another primary admin exists, which decides the outcome.
        let found = self.users.find_credentials(&email).await?;
        if found.is_some_and(|credentials| credentials.user.is_primary_admin) {
            return Ok(AdminOutcome::AlreadyExists);
        }
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
    use crate::ports::{Credentials, MockPasswordHasher, MockRoleRepository, MockUserRepository};
    use crate::use_cases::fixtures::*;
    use authd_domain::{PasswordHash, Role};

    const PASSWORD: &str = "a long admin password";

    fn bootstrap(users: MockUserRepository, hasher: MockPasswordHasher) -> Bootstrap {
        let mut roles = MockRoleRepository::new();
        roles
            .expect_ensure()
            .withf(|slug, name, _| {
                slug.as_str() == "application-access" && name.as_str() == "Application access"
            })
            .times(1)
            .returning(|slug, name, _| {
                Ok(Role {
                    name: name.clone(),
                    ..role(slug.as_str())
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

    fn seed(email: &str, password: &str) -> AdminSeed {
        AdminSeed {
            email: email.into(),
            password: password.into(),
        }
    }

    /// A user repository where `stored` holds the seed's email (`None`: nobody does).
    fn users_finding(stored: Option<User>) -> MockUserRepository {
        let mut users = MockUserRepository::new();
        users
            .expect_find_credentials()
            .withf(|email| email.as_str() == "root@example.com")
            .times(1)
            .returning(move |_| {
                Ok(stored.clone().map(|user| Credentials {
                    user,
                    hash: PasswordHash::new("$argon2id$stored"),
                    version: 0,
                }))
            });
        users
    }

    fn stored_user(is_primary_admin: bool) -> User {
        let email = Email::parse("Root@Example.com").unwrap();
        if is_primary_admin {
            User::primary_admin(email, role_ref(), now())
        } else {
            User::register(email, None, role_ref(), now())
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
        let mut users = users_finding(None);
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
        let outcome = bootstrap(users, hashing(PASSWORD, "$argon2id$admin"))
            .execute(Some(&seed("root@example.com", PASSWORD)))
            .await
            .unwrap();
        assert_eq!(outcome, AdminOutcome::Created);
    }

    #[tokio::test]
    async fn an_existing_primary_admin_with_the_email_costs_no_hash() {
        let mut users = users_finding(Some(stored_user(true)));
        users.expect_create_primary_admin().never();
        let mut hasher = MockPasswordHasher::new();
        hasher.expect_hash().never();
        let outcome = bootstrap(users, hasher)
            .execute(Some(&seed("root@example.com", PASSWORD)))
            .await
            .unwrap();
        assert_eq!(outcome, AdminOutcome::AlreadyExists);
    }

    #[tokio::test]
    async fn an_existing_admin_or_a_taken_email_is_reported_not_overwritten() {
        // Who holds the seed's email, what the store says, what the bootstrap reports.
        for (holder, stored, expected) in [
            // Another primary admin exists; the email is free or an ordinary user's.
            (None, Ok(false), AdminOutcome::AlreadyExists),
            (
                Some(stored_user(false)),
                Ok(false),
                AdminOutcome::AlreadyExists,
            ),
            // No primary admin exists, and an ordinary user has the email.
            (Some(stored_user(false)), Err(()), AdminOutcome::EmailTaken),
        ] {
            let mut users = users_finding(holder);
            users
                .expect_create_primary_admin()
                .withf(|admin, hash| admin.is_primary_admin && hash.as_str() == "$argon2id$admin")
                .times(1)
                .returning(move |_, _| stored.map_err(|()| CreateUserError::EmailTaken));
            let outcome = bootstrap(users, hashing(PASSWORD, "$argon2id$admin"))
                .execute(Some(&seed("root@example.com", PASSWORD)))
                .await
                .unwrap();
            assert_eq!(outcome, expected);
        }
    }

    #[tokio::test]
    async fn a_store_outage_is_a_port_error() {
        let mut users = MockUserRepository::new();
        users
            .expect_find_credentials()
            .returning(|_| Err(PortError::Unavailable(crate::Dependency::Database)));
        let mut hasher = MockPasswordHasher::new();
        hasher.expect_hash().never();
        let error = bootstrap(users, hasher)
            .execute(Some(&seed("root@example.com", PASSWORD)))
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            BootstrapError::Port(PortError::Unavailable(crate::Dependency::Database))
        ));
    }

    #[tokio::test]
    async fn unusable_credentials_name_their_setting() {
        let error = bootstrap(MockUserRepository::new(), MockPasswordHasher::new())
            .execute(Some(&seed("not an email", PASSWORD)))
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

    #[test]
    fn the_seeds_debug_shows_the_email_and_hides_the_password() {
        let shown = format!("{:?}", seed("root@example.com", PASSWORD));
        assert_eq!(shown, r#"AdminSeed { email: "root@example.com", .. }"#);
        assert!(!shown.contains(PASSWORD));
    }
}
