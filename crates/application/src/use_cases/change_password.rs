use std::sync::Arc;
use std::time::Duration;

use authd_domain::Password;

use crate::commands;
use crate::ports::{
    AuthCache, Clock, LoginThrottle, PasswordCheck, PasswordHasher, SessionRepository, ThrottleKey,
    ThrottleVerdict, UserRepository,
};
use crate::revocation::Revocation;
use crate::use_cases::Principal;
use crate::{AuthSettings, PortError};

/// Why a password change failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    /// The account is in login back-off (or the IP at its cap): nothing was checked.
    #[error("too many failed attempts")]
    Throttled {
        /// When to try again.
        retry_after: Duration,
    },
    /// The current password is wrong (counted as a failed login).
    #[error("current password is wrong")]
    WrongPassword,
    /// The credentials changed between the check of the current password and the new hash
    /// (a completed reset, a revoke-all, another change): nothing was changed, and the
    /// caller's session was revoked by that other change.
    #[error("the password was changed meanwhile")]
    CredentialsChanged,
    /// A dependency failed; the old password still works.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Changes the caller's password and ends every session of theirs, the current one included.
/// The new hash and the revocations are one transaction: a failure leaves the old password
/// and the sessions as they were. The hash is slow to make, so the change is a
/// compare-and-set on the credentials version read with the hash the current password was
/// checked against: a reset completed meanwhile is never overwritten.
///
/// Checking the current password is a login as far as the throttle goes (same counter, same
/// back-off), so a stolen access token is no unthrottled password oracle.
pub struct ChangePassword {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub cache: Arc<dyn AuthCache>,
    pub throttle: Arc<dyn LoginThrottle>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub clock: Arc<dyn Clock>,
    pub settings: AuthSettings,
}

impl ChangePassword {
    /// Changes the principal's password. The command's new password was checked against the
    /// policy and the principal's email where it was parsed.
    pub async fn execute(
        &self,
        principal: &Principal,
        change: commands::ChangePassword,
    ) -> Result<(), ChangePasswordError> {
        let user = &principal.user;

        // The device cookie only travels to the login form: this check counts against the
        // account.
        let account = ThrottleKey::Account(user.email.normalized().to_owned());
        if let ThrottleVerdict::Deny { retry_after } =
            self.throttle.admit(&account, change.ip).await?
        {
            return Err(ChangePasswordError::Throttled { retry_after });
        }
        let version = match self
            .check_current(principal, &change.current_password)
            .await
        {
            Ok(Some(version)) => {
                // Best effort, as after a login: a count left higher is only stricter.
                if let Err(error) = self.throttle.succeeded(&account, change.ip).await {
                    tracing::warn!(%error, "could not reset the login throttle after a success");
                }
                version
            }
            Ok(None) => return Err(ChangePasswordError::WrongPassword),
            Err(error) => {
                if let Err(withdrawn) = self.throttle.withdraw(&account, change.ip).await {
                    tracing::warn!(error = %withdrawn, "could not withdraw a password check");
                }
                return Err(error.into());
            }
        };
        let hash = self.hasher.hash(change.new_password.password()).await?;

        let now = self.clock.now();
        let revoked = Revocation::new(&*self.sessions, &*self.cache)
            .revoke_all_by(user.id, now, || {
                self.users.replace_password(user.id, version, &hash, now)
            })
            .await?;
        if revoked.is_none() {
            // Nothing changed here. Whatever moved the version revoked every session of the
            // user in the same step, this one included: the caller is signed out either way.
            return Err(ChangePasswordError::CredentialsChanged);
        }
        if let Err(error) = self.cache.forget_user(user.id).await {
            tracing::warn!(%error, "could not invalidate the cached user");
        }
        Ok(())
    }

    /// Checks `current` against the stored hash and returns, on a match, the credentials
    /// version read with that hash; `None` for a mismatch. One longer than any login may be is
    /// a mismatch without hashing. The credentials are found by the principal's email, as a
    /// login finds them: when they are another user's (the address moved meanwhile) or
    /// nobody's, the check runs against the dummy hash and is a mismatch.
    async fn check_current(
        &self,
        principal: &Principal,
        current: &str,
    ) -> Result<Option<i64>, PortError> {
        let Some(current) = Password::for_login(current) else {
            return Ok(None);
        };
        let (stored, version) = self
            .users
            .find_credentials(&principal.user.email)
            .await?
            .filter(|credentials| credentials.user.id == principal.user.id)
            .map(|credentials| (credentials.hash, credentials.version))
            .unzip();
        match self.hasher.verify(&current, stored).await? {
            PasswordCheck::Match { .. } => Ok(version),
            PasswordCheck::Mismatch => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dependency;
    use crate::ports::{
        Credentials, MockAuthCache, MockLoginThrottle, MockPasswordHasher, MockSessionRepository,
        MockUserRepository,
    };
    use crate::use_cases::fixtures::*;
    use authd_domain::{NewPassword, PasswordHash, SessionId};
    use mockall::predicate::eq;

    struct Mocks {
        users: MockUserRepository,
        sessions: MockSessionRepository,
        cache: MockAuthCache,
        throttle: MockLoginThrottle,
        hasher: MockPasswordHasher,
    }

    const IP: &str = "198.51.100.2";

    fn ip() -> Option<std::net::IpAddr> {
        Some(IP.parse().unwrap())
    }

    /// The principal's credentials version when the current password is checked.
    const VERSION: i64 = 7;

    impl Mocks {
        /// Admits the check (as a login of the principal's account from `IP`), finds the
        /// principal's credentials at [`VERSION`] and answers the check with `check`; a match
        /// is reported to the throttle as a success.
        fn verifying(principal: &Principal, check: PasswordCheck) -> Self {
            let mut mocks = Self::bare();
            mocks
                .throttle
                .expect_admit()
                .with(eq(ThrottleKey::Account("ada@example.com".into())), eq(ip()))
                .times(1)
                .returning(|_, _| Ok(ThrottleVerdict::Allow));
            if check != PasswordCheck::Mismatch {
                mocks
                    .throttle
                    .expect_succeeded()
                    .with(eq(ThrottleKey::Account("ada@example.com".into())), eq(ip()))
                    .times(1)
                    .returning(|_, _| Ok(()));
            }
            let credentials = Credentials {
                user: principal.user.clone(),
                hash: PasswordHash::new("$argon2id$old"),
                version: VERSION,
            };
            mocks
                .users
                .expect_find_credentials()
                .with(eq(principal.user.email.clone()))
                .returning(move |_| Ok(Some(credentials.clone())));
            mocks
                .hasher
                .expect_verify()
                .withf(|_, hash| hash.as_ref().map(PasswordHash::as_str) == Some("$argon2id$old"))
                .returning(move |_, _| Ok(check));
            mocks
        }

        /// No expectations at all.
        fn bare() -> Self {
            Self {
                users: MockUserRepository::new(),
                sessions: MockSessionRepository::new(),
                cache: MockAuthCache::new(),
                throttle: MockLoginThrottle::new(),
                hasher: MockPasswordHasher::new(),
            }
        }

        fn build(self) -> ChangePassword {
            ChangePassword {
                users: Arc::new(self.users),
                sessions: Arc::new(self.sessions),
                cache: Arc::new(self.cache),
                throttle: Arc::new(self.throttle),
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

    fn change(new_password: &str) -> commands::ChangePassword {
        let email = user().email;
        let policy = settings().password_policy;
        commands::ChangePassword {
            current_password: "old password".into(),
            new_password: NewPassword::parse(new_password, &policy, Some(&email)).unwrap(),
            ip: ip(),
        }
    }

    #[tokio::test]
    async fn replaces_the_hash_and_revokes_every_session() {
        let principal = principal();
        let session = live_session(&principal.user);
        let mut mocks = Mocks::verifying(
            &principal,
            PasswordCheck::Match {
                needs_rehash: false,
            },
        );
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
        let user_id = principal.user.id;
        mocks
            .users
            .expect_replace_password()
            .withf(move |id, version, hash, _| {
                *id == user_id && *version == VERSION && hash.as_str() == "$argon2id$new"
            })
            .times(1)
            .returning(move |_, _, _, _| Ok(Some(revoked.clone())));
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
    async fn in_back_off_nothing_is_checked() {
        let mut mocks = Mocks::bare();
        mocks.throttle.expect_admit().returning(|_, _| {
            Ok(ThrottleVerdict::Deny {
                retry_after: Duration::from_secs(8),
            })
        });
        mocks.hasher.expect_verify().never();
        let error = mocks
            .build()
            .execute(&principal(), change("a new passphrase"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ChangePasswordError::Throttled { retry_after } if retry_after.as_secs() == 8)
        );
    }

    #[tokio::test]
    async fn an_overlong_current_password_is_wrong_without_hashing() {
        let mut mocks = Mocks::verifying(&principal(), PasswordCheck::Mismatch);
        mocks.users = MockUserRepository::new();
        mocks.hasher = MockPasswordHasher::new();
        let error = mocks
            .build()
            .execute(
                &principal(),
                commands::ChangePassword {
                    current_password: "x".repeat(1025),
                    ..change("a new passphrase")
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(error, ChangePasswordError::WrongPassword));
    }

    #[tokio::test]
    async fn a_busy_hasher_withdraws_the_check() {
        let principal = principal();
        let mut mocks = Mocks::verifying(&principal, PasswordCheck::Mismatch);
        mocks.hasher = MockPasswordHasher::new();
        mocks
            .hasher
            .expect_verify()
            .returning(|_, _| Err(PortError::Busy));
        mocks
            .throttle
            .expect_withdraw()
            .with(eq(ThrottleKey::Account("ada@example.com".into())), eq(ip()))
            .times(1)
            .returning(|_, _| Ok(()));
        let error = mocks
            .build()
            .execute(&principal, change("a new passphrase"))
            .await
            .unwrap_err();
        assert!(matches!(error, ChangePasswordError::Port(PortError::Busy)));
    }

    #[tokio::test]
    async fn wrong_current_password_changes_nothing_and_stays_counted() {
        let principal = principal();
        let mut mocks = Mocks::verifying(&principal, PasswordCheck::Mismatch);
        mocks.users.expect_replace_password().never();
        mocks.hasher.expect_hash().never();
        mocks.throttle.expect_withdraw().never();
        let error = mocks
            .build()
            .execute(&principal, change("a new passphrase"))
            .await
            .unwrap_err();
        assert!(matches!(error, ChangePasswordError::WrongPassword));
    }

    #[tokio::test]
    async fn store_failure_is_a_port_error() {
        let principal = principal();
        let mut mocks = Mocks::verifying(
            &principal,
            PasswordCheck::Match {
                needs_rehash: false,
            },
        );
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
            .returning(|_, _, _, _| Err(PortError::Unavailable(Dependency::Database)));
        mocks.cache.expect_mark_revoked().never();
        let error = mocks
            .build()
            .execute(&principal, change("a new passphrase"))
            .await
            .unwrap_err();
        assert!(matches!(error, ChangePasswordError::Port(_)));
    }

    #[tokio::test]
    async fn credentials_changed_meanwhile_change_nothing() {
        let principal = principal();
        let mut mocks = Mocks::verifying(
            &principal,
            PasswordCheck::Match {
                needs_rehash: false,
            },
        );
        mocks
            .hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("$argon2id$new")));
        mocks
            .sessions
            .expect_list_live()
            .returning(|_, _| Ok(vec![]));
        // A reset completed while the new hash was made: the version moved past `VERSION`.
        mocks
            .users
            .expect_replace_password()
            .withf(|_, version, _, _| *version == VERSION)
            .times(1)
            .returning(|_, _, _, _| Ok(None));
        mocks.cache.expect_mark_revoked().never();
        mocks.cache.expect_forget_user().never();
        let error = mocks
            .build()
            .execute(&principal, change("a new passphrase"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ChangePasswordError::CredentialsChanged),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn credentials_of_another_user_under_the_email_are_a_mismatch() {
        let principal = principal();
        let mut mocks = Mocks::bare();
        mocks
            .throttle
            .expect_admit()
            .returning(|_, _| Ok(ThrottleVerdict::Allow));
        // The principal's address now belongs to someone else (the admin moved it).
        let stranger = Credentials {
            user: user(),
            hash: PasswordHash::new("$argon2id$theirs"),
            version: 3,
        };
        mocks
            .users
            .expect_find_credentials()
            .returning(move |_| Ok(Some(stranger.clone())));
        mocks
            .hasher
            .expect_verify()
            .withf(|_, hash| hash.is_none())
            .times(1)
            .returning(|_, _| Ok(PasswordCheck::Mismatch));
        mocks.users.expect_replace_password().never();
        mocks.hasher.expect_hash().never();
        let error = mocks
            .build()
            .execute(&principal, change("a new passphrase"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ChangePasswordError::WrongPassword),
            "{error:?}"
        );
    }
}
