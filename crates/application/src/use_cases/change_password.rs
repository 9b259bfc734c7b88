use std::sync::Arc;

use domain::Password;

use crate::ports::{
    AuthCache, Clock, PasswordCheck, PasswordHasher, SessionRepository, UserRepository,
};
use crate::revocation::Revoker;
use crate::use_cases::Principal;
use crate::{AuthSettings, FieldError, PortError};

/// The body of a password change.
#[derive(Debug, Clone)]
pub struct PasswordChange {
    /// What the user believes the password is now.
    pub current_password: String,
    /// What it should become.
    pub new_password: String,
}

/// Why a password change failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    /// The new password breaks the policy (checked first).
    #[error("invalid password change")]
    Invalid(Vec<FieldError>),
    /// The current password is wrong.
    #[error("current password is wrong")]
    WrongPassword,
    /// A dependency failed; the old password still works.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Changes the caller's password and ends every session of theirs, the current one included.
/// The new hash and the revocations are one transaction: a failure leaves the old password
/// and the sessions as they were.
pub struct ChangePassword {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub cache: Arc<dyn AuthCache>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub clock: Arc<dyn Clock>,
    pub settings: AuthSettings,
}

impl ChangePassword {
    /// Changes the principal's password.
    pub async fn execute(
        &self,
        principal: &Principal,
        change: PasswordChange,
    ) -> Result<(), ChangePasswordError> {
        let user = &principal.user;
        let new_password = self
            .settings
            .password_policy
            .check(&change.new_password, Some(&user.email))
            .map_err(|error| {
                ChangePasswordError::Invalid(vec![FieldError::new("new_password", error)])
            })?;

        let stored = self.users.password_hash(user.id).await?;
        let current = Password::normalize(&change.current_password);
        if self.hasher.verify(&current, stored).await? == PasswordCheck::Mismatch {
            return Err(ChangePasswordError::WrongPassword);
        }
        let hash = self.hasher.hash(&new_password).await?;

        let now = self.clock.now();
        let revoker = Revoker::new(&self.sessions, &self.cache);
        revoker.forget_live(user.id, now).await?;
        let revoked = self.users.replace_password(user.id, &hash, now).await?;
        revoker.remember(&revoked, now).await;
        if let Err(error) = self.cache.forget_user(user.id).await {
            tracing::warn!(%error, "could not invalidate the cached user");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dependency;
    use crate::ports::{
        MockAuthCache, MockPasswordHasher, MockSessionRepository, MockUserRepository,
    };
    use crate::use_cases::fixtures::*;
    use domain::{PasswordHash, SessionId};

    struct Mocks {
        users: MockUserRepository,
        sessions: MockSessionRepository,
        cache: MockAuthCache,
        hasher: MockPasswordHasher,
    }

    impl Mocks {
        fn verifying(check: PasswordCheck) -> Self {
            let mut mocks = Self {
                users: MockUserRepository::new(),
                sessions: MockSessionRepository::new(),
                cache: MockAuthCache::new(),
                hasher: MockPasswordHasher::new(),
            };
            mocks
                .users
                .expect_password_hash()
                .returning(|_| Ok(Some(PasswordHash::new("$argon2id$old"))));
            mocks
                .hasher
                .expect_verify()
                .returning(move |_, _| Ok(check));
            mocks
        }

        fn build(self) -> ChangePassword {
            ChangePassword {
                users: Arc::new(self.users),
                sessions: Arc::new(self.sessions),
                cache: Arc::new(self.cache),
                hasher: Arc::new(self.hasher),
                clock: fixed_clock(),
                settings: settings(),
            }
        }
    }

    fn principal() -> Principal {
        Principal {
            user: user(),
            session_id: SessionId::generate(),
        }
    }

    fn change(new_password: &str) -> PasswordChange {
        PasswordChange {
            current_password: "old password".into(),
            new_password: new_password.into(),
        }
    }

    #[tokio::test]
    async fn replaces_the_hash_and_revokes_every_session() {
        let principal = principal();
        let session = live_session(&principal.user);
        let mut mocks = Mocks::verifying(PasswordCheck::Match {
            needs_rehash: false,
        });
        mocks
            .hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("$argon2id$new")));
        let live = vec![session.clone()];
        mocks
            .sessions
            .expect_list_live()
            .returning(move |_, _| Ok(live.clone()));
        mocks
            .cache
            .expect_forget_sessions()
            .times(1)
            .returning(|_| Ok(()));
        let revoked = vec![session];
        mocks
            .users
            .expect_replace_password()
            .withf(|_, hash, _| hash.as_str() == "$argon2id$new")
            .times(1)
            .returning(move |_, _, _| Ok(revoked.clone()));
        mocks
            .cache
            .expect_mark_revoked()
            .times(1)
            .returning(|_| Ok(()));
        mocks
            .cache
            .expect_forget_user()
            .times(1)
            .returning(|_| Ok(()));
        assert!(
            mocks
                .build()
                .execute(&principal, change("a new passphrase"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn policy_is_checked_before_the_current_password() {
        let mut mocks = Mocks::verifying(PasswordCheck::Mismatch);
        mocks.users = MockUserRepository::new();
        mocks.hasher = MockPasswordHasher::new();
        let error = mocks
            .build()
            .execute(&principal(), change("short"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ChangePasswordError::Invalid(errors) if errors[0].field == "new_password")
        );
    }

    #[tokio::test]
    async fn wrong_current_password_changes_nothing() {
        let mut mocks = Mocks::verifying(PasswordCheck::Mismatch);
        mocks.users.expect_replace_password().never();
        mocks.hasher.expect_hash().never();
        let error = mocks
            .build()
            .execute(&principal(), change("a new passphrase"))
            .await
            .unwrap_err();
        assert!(matches!(error, ChangePasswordError::WrongPassword));
    }

    #[tokio::test]
    async fn store_failure_is_a_port_error() {
        let mut mocks = Mocks::verifying(PasswordCheck::Match {
            needs_rehash: false,
        });
        mocks
            .hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("$argon2id$new")));
        mocks
            .sessions
            .expect_list_live()
            .returning(|_, _| Ok(vec![]));
        mocks
            .users
            .expect_replace_password()
            .returning(|_, _, _| Err(PortError::Unavailable(Dependency::Database)));
        mocks.cache.expect_mark_revoked().never();
        let error = mocks
            .build()
            .execute(&principal(), change("a new passphrase"))
            .await
            .unwrap_err();
        assert!(matches!(error, ChangePasswordError::Port(_)));
    }
}
