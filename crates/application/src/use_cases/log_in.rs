use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use domain::{Email, Password, Session, SessionId, User};

use crate::ports::{
    AuthCache, Clock, LoginThrottle, PasswordCheck, PasswordHasher, SessionRepository,
    ThrottleVerdict, TokenIssuer, UserRepository,
};
use crate::revocation::remaining;
use crate::tokens::{TokenPair, mint_pair};
use crate::{AuthSettings, PortError};

/// The longest user agent kept with a session.
const MAX_USER_AGENT_LEN: usize = 512;

/// A login attempt (the OAuth2 password form) and where it came from.
#[derive(Debug, Clone)]
pub struct LoginRequest {
    /// The `username` field: an email.
    pub username: String,
    /// The `password` field.
    pub password: String,
    /// The client's IP, for the throttle and the session.
    pub ip: Option<IpAddr>,
    /// The client's `User-Agent`, kept with the session.
    pub user_agent: Option<String>,
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// Who logged in.
    pub user: User,
    /// The session it opened.
    pub session: Session,
    /// The tokens to hand out.
    pub tokens: TokenPair,
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Too many failures for the account or the IP; nothing was checked.
    #[error("too many failed logins")]
    Throttled {
        /// When to try again.
        retry_after: Duration,
    },
    /// Unknown email or wrong password: deliberately indistinguishable.
    #[error("bad credentials")]
    BadCredentials,
    /// Right password, but the account is deactivated.
    #[error("account is inactive")]
    Inactive,
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Logs a user in and opens a session.
///
/// Enumeration-safe: an unknown email is checked against a dummy hash, so it costs what a
/// wrong password costs, and both give the same error. The throttle is asked first, and a
/// throttled attempt checks nothing.
pub struct LogIn {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub cache: Arc<dyn AuthCache>,
    pub throttle: Arc<dyn LoginThrottle>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub issuer: Arc<dyn TokenIssuer>,
    pub clock: Arc<dyn Clock>,
    pub settings: AuthSettings,
}

impl LogIn {
    /// Checks the credentials and opens a session.
    pub async fn execute(&self, request: LoginRequest) -> Result<LoggedIn, LoginError> {
        let email = Email::parse(&request.username).ok();
        let account = account_key(&request.username, email.as_ref());
        if let ThrottleVerdict::Deny { retry_after } =
            self.throttle.check(&account, request.ip).await?
        {
            return Err(LoginError::Throttled { retry_after });
        }

        let password = Password::normalize(&request.password);
        let found = match &email {
            Some(email) => self.users.find_credentials(email).await?,
            None => None,
        };
        let (user, hash) = found.unzip();
        let check = self.hasher.verify(&password, hash).await?;
        let (user, needs_rehash) = match (user, check) {
            (Some(user), PasswordCheck::Match { needs_rehash }) => (user, needs_rehash),
            _ => {
                self.throttle.record_failure(&account, request.ip).await?;
                return Err(LoginError::BadCredentials);
            }
        };
        self.throttle.record_success(&account).await?;
        if !user.is_active {
            return Err(LoginError::Inactive);
        }
        if needs_rehash {
            self.rehash(&user, &password).await;
        }

        let (session, tokens) = self.open_session(&user, &request).await?;
        Ok(LoggedIn {
            user,
            session,
            tokens,
        })
    }

    async fn open_session(
        &self,
        user: &User,
        request: &LoginRequest,
    ) -> Result<(Session, TokenPair), PortError> {
        let now = self.clock.now();
        let lifetime = self.settings.lifetime;
        let id = SessionId::generate();
        let expires_at = lifetime.refresh_expiry(now, lifetime.absolute_end(now));
        let minted = mint_pair(
            self.issuer.as_ref(),
            user,
            id,
            now,
            self.settings.access_ttl,
            expires_at,
        )?;
        let session = Session {
            id,
            user_id: user.id,
            created_at: now,
            last_used_at: now,
            expires_at: minted.pair.refresh_expires_at,
            user_agent: request
                .user_agent
                .as_deref()
                .map(|agent| agent.chars().take(MAX_USER_AGENT_LEN).collect()),
            ip: request.ip.map(|ip| ip.to_string()),
            revoked_at: None,
        };
        self.sessions.create(&session, minted.refresh_jti).await?;
        // Saves the first authenticated request a store read; the store has the truth anyway.
        if let Err(error) = self
            .cache
            .mark_live(id, remaining(session.expires_at, now))
            .await
        {
            tracing::warn!(%error, "could not cache the new session");
        }
        Ok((session, minted.pair))
    }

    /// Stores a hash with the current parameters. A failure costs nothing but another re-hash
    /// next time, so it is logged, not returned.
    async fn rehash(&self, user: &User, password: &Password) {
        let result = async {
            let hash = self.hasher.hash(password).await?;
            self.users
                .update_password_hash(user.id, &hash, self.clock.now())
                .await
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, user_id = %user.id, "could not re-hash the password");
        }
    }
}

/// The throttle's key for an attempt: the email's identity form, whether or not such a user
/// exists (so unknown emails are throttled alike). `email` is the username parsed, `None`
/// when it is no email: such a username is bounded to the longest email, so a 64 KiB form
/// field cannot become a 64 KiB counter key.
fn account_key(username: &str, email: Option<&Email>) -> String {
    email.map_or_else(
        || {
            username
                .trim()
                .to_lowercase()
                .chars()
                .take(Email::MAX_LEN)
                .collect()
        },
        |email| email.normalized().to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dependency;
    use crate::ports::{
        MockAuthCache, MockLoginThrottle, MockPasswordHasher, MockSessionRepository,
        MockTokenIssuer, MockUserRepository,
    };
    use crate::use_cases::fixtures::*;
    use chrono::TimeDelta;
    use domain::PasswordHash;
    use mockall::predicate::eq;

    struct Mocks {
        users: MockUserRepository,
        sessions: MockSessionRepository,
        cache: MockAuthCache,
        throttle: MockLoginThrottle,
        hasher: MockPasswordHasher,
        issuer: MockTokenIssuer,
    }

    impl Mocks {
        /// A throttle that allows, a known user whose password is `check`.
        fn with(user: Option<User>, check: PasswordCheck) -> Self {
            let mut mocks = Self {
                users: MockUserRepository::new(),
                sessions: MockSessionRepository::new(),
                cache: MockAuthCache::new(),
                throttle: MockLoginThrottle::new(),
                hasher: MockPasswordHasher::new(),
                issuer: MockTokenIssuer::new(),
            };
            mocks
                .throttle
                .expect_check()
                .returning(|_, _| Ok(ThrottleVerdict::Allow));
            mocks.users.expect_find_credentials().returning(move |_| {
                Ok(user
                    .clone()
                    .map(|user| (user, PasswordHash::new("$argon2id$stored"))))
            });
            mocks
                .hasher
                .expect_verify()
                .returning(move |_, _| Ok(check));
            mocks
        }

        fn issuing(mut self) -> Self {
            self.issuer
                .expect_sign_access()
                .returning(|_| Ok("access".into()));
            self.issuer
                .expect_sign_refresh()
                .returning(|_| Ok("refresh".into()));
            self.sessions
                .expect_create()
                .times(1)
                .returning(|_, _| Ok(()));
            self.cache.expect_mark_live().returning(|_, _| Ok(()));
            self.throttle
                .expect_record_success()
                .times(1)
                .returning(|_| Ok(()));
            self
        }

        fn build(self) -> LogIn {
            LogIn {
                users: Arc::new(self.users),
                sessions: Arc::new(self.sessions),
                cache: Arc::new(self.cache),
                throttle: Arc::new(self.throttle),
                hasher: Arc::new(self.hasher),
                issuer: Arc::new(self.issuer),
                clock: fixed_clock(),
                settings: settings(),
            }
        }
    }

    fn request(username: &str) -> LoginRequest {
        LoginRequest {
            username: username.into(),
            password: "correct horse".into(),
            ip: Some("203.0.113.7".parse().unwrap()),
            user_agent: Some("curl/8".into()),
        }
    }

    #[tokio::test]
    async fn right_password_opens_a_session_with_both_tokens() {
        let user = user();
        let mocks = Mocks::with(
            Some(user.clone()),
            PasswordCheck::Match {
                needs_rehash: false,
            },
        )
        .issuing();
        let logged_in = mocks
            .build()
            .execute(request("ADA@example.com"))
            .await
            .unwrap();
        assert_eq!(logged_in.user, user);
        assert_eq!(logged_in.tokens.access_token, "access");
        assert_eq!(logged_in.tokens.refresh_token, "refresh");
        assert_eq!(
            logged_in.tokens.access_expires_at,
            now() + TimeDelta::minutes(15)
        );
        assert_eq!(logged_in.session.expires_at, now() + TimeDelta::days(7));
        assert_eq!(logged_in.session.ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(logged_in.session.user_agent.as_deref(), Some("curl/8"));
    }

    #[tokio::test]
    async fn wrong_password_and_unknown_email_fail_alike_and_count() {
        for user in [Some(user()), None] {
            let mut mocks = Mocks::with(user, PasswordCheck::Mismatch);
            mocks
                .throttle
                .expect_record_failure()
                .with(
                    eq("ada@example.com"),
                    eq(Some("203.0.113.7".parse().unwrap())),
                )
                .times(1)
                .returning(|_, _| Ok(()));
            let error = mocks
                .build()
                .execute(request("Ada@Example.com"))
                .await
                .unwrap_err();
            assert!(matches!(error, LoginError::BadCredentials));
        }
    }

    #[tokio::test]
    async fn unknown_email_is_verified_against_the_dummy_hash() {
        let mut mocks = Mocks::with(None, PasswordCheck::Mismatch);
        mocks.hasher = MockPasswordHasher::new();
        mocks
            .hasher
            .expect_verify()
            .withf(|_, hash| hash.is_none())
            .times(1)
            .returning(|_, _| Ok(PasswordCheck::Mismatch));
        mocks
            .throttle
            .expect_record_failure()
            .returning(|_, _| Ok(()));
        assert!(
            mocks
                .build()
                .execute(request("nobody@example.com"))
                .await
                .is_err()
        );
    }

    #[test]
    fn throttle_keys_are_the_email_identity_and_bounded() {
        let key = |username: &str| account_key(username, Email::parse(username).ok().as_ref());
        assert_eq!(key("  Ada@Example.COM "), "ada@example.com");
        assert_eq!(key("Not An Email"), "not an email");
        assert_eq!(key(&"x".repeat(70_000)).chars().count(), Email::MAX_LEN);
    }

    #[tokio::test]
    async fn throttled_attempt_checks_nothing() {
        let mut mocks = Mocks::with(
            Some(user()),
            PasswordCheck::Match {
                needs_rehash: false,
            },
        );
        mocks.throttle = MockLoginThrottle::new();
        mocks.throttle.expect_check().returning(|_, _| {
            Ok(ThrottleVerdict::Deny {
                retry_after: Duration::from_secs(4),
            })
        });
        mocks.users = MockUserRepository::new();
        mocks.hasher = MockPasswordHasher::new();
        let error = mocks
            .build()
            .execute(request("ada@example.com"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, LoginError::Throttled { retry_after } if retry_after.as_secs() == 4)
        );
    }

    #[tokio::test]
    async fn inactive_user_is_refused_only_after_the_right_password() {
        let mut inactive = user();
        inactive.is_active = false;
        let mut mocks = Mocks::with(
            Some(inactive),
            PasswordCheck::Match {
                needs_rehash: false,
            },
        );
        mocks.throttle.expect_record_success().returning(|_| Ok(()));
        mocks.sessions.expect_create().never();
        let error = mocks
            .build()
            .execute(request("ada@example.com"))
            .await
            .unwrap_err();
        assert!(matches!(error, LoginError::Inactive));
    }

    #[tokio::test]
    async fn stale_parameters_are_rehashed() {
        let mut mocks =
            Mocks::with(Some(user()), PasswordCheck::Match { needs_rehash: true }).issuing();
        mocks
            .hasher
            .expect_hash()
            .times(1)
            .returning(|_| Ok(PasswordHash::new("$argon2id$new")));
        mocks
            .users
            .expect_update_password_hash()
            .withf(|_, hash, _| hash.as_str() == "$argon2id$new")
            .times(1)
            .returning(|_, _, _| Ok(()));
        assert!(
            mocks
                .build()
                .execute(request("ada@example.com"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn failed_rehash_does_not_fail_the_login() {
        let mut mocks =
            Mocks::with(Some(user()), PasswordCheck::Match { needs_rehash: true }).issuing();
        mocks
            .hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("$argon2id$new")));
        mocks
            .users
            .expect_update_password_hash()
            .returning(|_, _, _| Err(PortError::Unavailable(Dependency::Database)));
        assert!(
            mocks
                .build()
                .execute(request("ada@example.com"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn store_outage_is_a_port_error() {
        let mut mocks = Mocks::with(None, PasswordCheck::Mismatch);
        mocks.users = MockUserRepository::new();
        mocks
            .users
            .expect_find_credentials()
            .returning(|_| Err(PortError::Unavailable(Dependency::Database)));
        let error = mocks
            .build()
            .execute(request("ada@example.com"))
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            LoginError::Port(PortError::Unavailable(Dependency::Database))
        ));
    }

    #[tokio::test]
    async fn a_session_that_cannot_be_stored_is_a_port_error() {
        let mut mocks = Mocks::with(
            Some(user()),
            PasswordCheck::Match {
                needs_rehash: false,
            },
        );
        mocks.throttle.expect_record_success().returning(|_| Ok(()));
        mocks
            .issuer
            .expect_sign_access()
            .returning(|_| Ok("access".into()));
        mocks
            .issuer
            .expect_sign_refresh()
            .returning(|_| Ok("refresh".into()));
        mocks
            .sessions
            .expect_create()
            .returning(|_, _| Err(PortError::Unavailable(Dependency::Database)));
        let error = mocks
            .build()
            .execute(request("ada@example.com"))
            .await
            .unwrap_err();
        assert!(matches!(error, LoginError::Port(_)));
    }
}
