use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use authd_domain::{Email, Password, PasswordHash, Session, SessionId, TokenId, User};

use crate::DeviceClaims;
use crate::minting::mint_pair;
use crate::ports::{
    AuthCache, Clock, Credentials, LoginThrottle, PasswordCheck, PasswordHasher, SessionRepository,
    ThrottleKey, ThrottleVerdict, TokenIssuer, TokenVerifier, UserRepository,
};
use crate::revocation::remaining;
use crate::tokens::{AccessProfile, PairIds, TokenPair};
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
    /// The `device_token` cookie, if the client sent one.
    pub device_token: Option<String>,
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
    /// A fresh device token for this account (the `device_token` cookie).
    pub device_token: String,
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
    /// Right password, active account, but its address is not verified and the settings
    /// require it (only ever after a correct password, so it reveals nothing to a guesser).
    #[error("email address not verified")]
    Unverified,
    /// Right password, but the credentials changed (a password change, a deactivation, a
    /// revoke-all) while it was being checked: no session was opened, as if it had been
    /// revoked at once.
    #[error("credentials changed during login")]
    CredentialsChanged,
    /// A dependency failed or the hasher was busy; the attempt was not counted.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Logs a user in and opens a session.
///
/// The throttle admits the attempt first, counting it as a failure before anything is
/// checked, so concurrent guesses cannot outrun the back-off; a success resets the count and
/// an attempt that decided nothing (busy hasher, failed dependency) is withdrawn. An attempt
/// that presents a valid device token of the account counts against that device instead of
/// the account (OWASP "device cookies"), so a stranger's guesses cannot lock the owner out of
/// a device the owner has used; every successful login hands out a fresh device token.
/// Enumeration-safe: an unknown email is checked against a dummy hash, so it costs what a
/// wrong password costs, and both give the same error.
pub struct LogIn {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub cache: Arc<dyn AuthCache>,
    pub throttle: Arc<dyn LoginThrottle>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub issuer: Arc<dyn TokenIssuer>,
    pub verifier: Arc<dyn TokenVerifier>,
    pub clock: Arc<dyn Clock>,
    pub settings: AuthSettings,
}

impl LogIn {
    /// Checks the credentials and opens a session.
    pub async fn execute(&self, request: LoginRequest) -> Result<LoggedIn, LoginError> {
        let email = Email::parse(&request.username).ok();
        let account = account_key(&request.username, email.as_ref());
        let key = self.throttle_key(account.clone(), request.device_token.as_deref());
        if let ThrottleVerdict::Deny { retry_after } = self.throttle.admit(&key, request.ip).await?
        {
            return Err(LoginError::Throttled { retry_after });
        }

        let credentials = match self.check_password(email.as_ref(), &request.password).await {
            Ok(credentials) => credentials,
            Err(LoginError::Port(error)) => {
                if let Err(withdrawn) = self.throttle.withdraw(&key, request.ip).await {
                    tracing::warn!(error = %withdrawn, "could not withdraw a login attempt");
                }
                return Err(error.into());
            }
            Err(failed) => return Err(failed),
        };
        // Best effort: a reset that cannot be written leaves the count higher, which is only
        // stricter; the password was right.
        if let Err(error) = self.throttle.succeeded(&key, request.ip).await {
            tracing::warn!(%error, "could not reset the login throttle after a success");
        }
        let (
            Credentials {
                user,
                hash,
                version,
            },
            needs_rehash,
        ) = credentials;
        if !user.is_active {
            return Err(LoginError::Inactive);
        }
        if self.settings.require_verified_email && !user.is_verified {
            return Err(LoginError::Unverified);
        }
        if needs_rehash {
            self.rehash(&user, &hash, &request.password).await;
        }

        let (session, tokens) = self.open_session(&user, version, &request).await?;
        let device_token = self.issuer.sign_device(&DeviceClaims {
            user_id: user.id,
            account,
            device_id: TokenId::generate(),
            issued_at: tokens.issued_at,
            expires_at: tokens.issued_at + DeviceClaims::LIFETIME,
        })?;
        Ok(LoggedIn {
            user,
            session,
            tokens,
            device_token,
        })
    }

    /// What the attempt counts against: the device, when the client presents a valid device
    /// token bound to this account; the account otherwise (no token, a forged or expired one,
    /// or another account's).
    fn throttle_key(&self, account: String, device_token: Option<&str>) -> ThrottleKey {
        let device = device_token
            .and_then(|token| self.verifier.verify_device(token, self.clock.now()).ok())
            .filter(|device| device.account == account);
        match device {
            Some(device) => ThrottleKey::Device(device.device_id),
            None => ThrottleKey::Account(account),
        }
    }

    /// The user's credentials when `password` is theirs. A password longer than any policy
    /// allows is refused without hashing; an unknown email costs a dummy hash.
    async fn check_password(
        &self,
        email: Option<&Email>,
        password: &str,
    ) -> Result<(Credentials, bool), LoginError> {
        let password = Password::for_login(password).ok_or(LoginError::BadCredentials)?;
        let found = match email {
            Some(email) => self.users.find_credentials(email).await?,
            None => None,
        };
        let stored = found.as_ref().map(|credentials| credentials.hash.clone());
        match (found, self.hasher.verify(&password, stored).await?) {
            (Some(credentials), PasswordCheck::Match { needs_rehash }) => {
                Ok((credentials, needs_rehash))
            }
            _ => Err(LoginError::BadCredentials),
        }
    }

    async fn open_session(
        &self,
        user: &User,
        credentials_version: i64,
        request: &LoginRequest,
    ) -> Result<(Session, TokenPair), LoginError> {
        let now = self.clock.now();
        let lifetime = self.settings.lifetime;
        let id = SessionId::generate();
        let expires_at = lifetime.refresh_expiry(now, lifetime.absolute_end(now));
        let ids = PairIds::generate(now);
        let pair = mint_pair(
            self.issuer.as_ref(),
            user.id,
            &AccessProfile::from(user),
            id,
            &ids,
            self.settings.access_ttl,
            expires_at,
        )?;
        let session = Session {
            id,
            user_id: user.id,
            created_at: now,
            last_used_at: now,
            expires_at: pair.refresh_expires_at,
            user_agent: request
                .user_agent
                .as_deref()
                .map(|agent| agent.chars().take(MAX_USER_AGENT_LEN).collect()),
            ip: request.ip.map(|ip| ip.to_string()),
            revoked_at: None,
        };
        if !self
            .sessions
            .create(&session, ids.refresh, credentials_version)
            .await?
        {
            return Err(LoginError::CredentialsChanged);
        }
        // Saves the first authenticated request a store read; the store has the truth anyway.
        if let Err(error) = self
            .cache
            .mark_live(id, remaining(session.expires_at, now))
            .await
        {
            tracing::warn!(%error, "could not cache the new session");
        }
        Ok((session, pair))
    }

    /// Stores a hash with the current parameters, only over the hash the password was checked
    /// against (a password changed meanwhile stays). A failure costs nothing but another
    /// re-hash next time, so it is logged, not returned.
    async fn rehash(&self, user: &User, old: &PasswordHash, raw: &str) {
        let Some(password) = Password::for_login(raw) else {
            return;
        };
        let result = async {
            let new = self.hasher.hash(&password).await?;
            self.users
                .update_password_hash(user.id, old, &new, self.clock.now())
                .await
        }
        .await;
        match result {
            Ok(true) => {}
            Ok(false) => tracing::info!(user_id = %user.id, "password changed during re-hash"),
            Err(error) => tracing::warn!(%error, user_id = %user.id, "could not re-hash"),
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
        MockTokenIssuer, MockTokenVerifier, MockUserRepository,
    };
    use crate::use_cases::fixtures::*;
    use chrono::TimeDelta;
    use mockall::predicate::eq;

    const IP: &str = "203.0.113.7";

    fn ip() -> Option<IpAddr> {
        Some(IP.parse().unwrap())
    }

    struct Mocks {
        users: MockUserRepository,
        sessions: MockSessionRepository,
        cache: MockAuthCache,
        throttle: MockLoginThrottle,
        hasher: MockPasswordHasher,
        issuer: MockTokenIssuer,
        verifier: MockTokenVerifier,
    }

    impl Mocks {
        /// A throttle that admits Ada's account from `IP`, a known user (at credentials
        /// version 3) whose password is `check`.
        fn with(user: Option<User>, check: PasswordCheck) -> Self {
            let mut mocks = Self::bare(user, check);
            mocks
                .throttle
                .expect_admit()
                .with(eq(ada()), eq(ip()))
                .times(1)
                .returning(|_, _| Ok(ThrottleVerdict::Allow));
            mocks
        }

        /// [`with`](Self::with) without the admission.
        fn bare(user: Option<User>, check: PasswordCheck) -> Self {
            let mut mocks = Self {
                users: MockUserRepository::new(),
                sessions: MockSessionRepository::new(),
                cache: MockAuthCache::new(),
                throttle: MockLoginThrottle::new(),
                hasher: MockPasswordHasher::new(),
                issuer: MockTokenIssuer::new(),
                verifier: MockTokenVerifier::new(),
            };
            mocks.users.expect_find_credentials().returning(move |_| {
                Ok(user.clone().map(|user| Credentials {
                    user,
                    hash: PasswordHash::new("$argon2id$stored"),
                    version: 3,
                }))
            });
            mocks
                .hasher
                .expect_verify()
                .withf(|password, _| password.expose() == "correct horse")
                .returning(move |_, _| Ok(check));
            mocks
        }

        fn succeeding(mut self) -> Self {
            self.throttle
                .expect_succeeded()
                .with(eq(ada()), eq(ip()))
                .times(1)
                .returning(|_, _| Ok(()));
            self
        }

        fn signing(mut self) -> Self {
            self.issuer
                .expect_sign_access()
                .returning(|_| Ok("access".into()));
            self.issuer
                .expect_sign_refresh()
                .returning(|_| Ok("refresh".into()));
            self.issuer
                .expect_sign_device()
                .returning(|_| Ok("device".into()));
            self
        }

        fn issuing(self) -> Self {
            let mut mocks = self.signing();
            mocks
                .sessions
                .expect_create()
                .withf(|_, _, version| *version == 3)
                .times(1)
                .returning(|_, _, _| Ok(true));
            mocks.cache.expect_mark_live().returning(|_, _| Ok(()));
            mocks.succeeding()
        }

        fn build(self) -> LogIn {
            LogIn {
                users: Arc::new(self.users),
                sessions: Arc::new(self.sessions),
                cache: Arc::new(self.cache),
                throttle: Arc::new(self.throttle),
                hasher: Arc::new(self.hasher),
                issuer: Arc::new(self.issuer),
                verifier: Arc::new(self.verifier),
                clock: fixed_clock(),
                settings: settings(),
            }
        }
    }

    fn request(username: &str) -> LoginRequest {
        LoginRequest {
            username: username.into(),
            password: "correct horse".into(),
            ip: ip(),
            user_agent: Some("curl/8".into()),
            device_token: None,
        }
    }

    fn ada() -> ThrottleKey {
        ThrottleKey::Account("ada@example.com".into())
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
        assert_eq!(logged_in.session.ip.as_deref(), Some(IP));
        assert_eq!(logged_in.session.user_agent.as_deref(), Some("curl/8"));
        assert_eq!(logged_in.device_token, "device");
    }

    #[tokio::test]
    async fn wrong_password_and_unknown_email_fail_alike_and_stay_counted() {
        for user in [Some(user()), None] {
            let mut mocks = Mocks::with(user, PasswordCheck::Mismatch);
            // The admission counted the failure: nothing is given back or reset.
            mocks.throttle.expect_succeeded().never();
            mocks.throttle.expect_withdraw().never();
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
        assert!(
            mocks
                .build()
                .execute(request("ada@example.com"))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn an_overlong_password_fails_at_once_without_hashing_and_stays_counted() {
        for password in ["x".repeat(100_000), "\u{FDFA}".repeat(300)] {
            let mut mocks = Mocks::with(Some(user()), PasswordCheck::Mismatch);
            mocks.hasher = MockPasswordHasher::new();
            mocks.hasher.expect_verify().never();
            mocks.hasher.expect_hash().never();
            mocks.users = MockUserRepository::new();
            mocks.users.expect_find_credentials().never();
            mocks.throttle.expect_withdraw().never();
            let error = mocks
                .build()
                .execute(LoginRequest {
                    password,
                    ..request("ada@example.com")
                })
                .await
                .unwrap_err();
            assert!(matches!(error, LoginError::BadCredentials));
        }
    }

    #[tokio::test]
    async fn a_busy_hasher_is_a_port_error_and_the_attempt_is_withdrawn() {
        let mut mocks = Mocks::with(Some(user()), PasswordCheck::Mismatch);
        mocks.hasher = MockPasswordHasher::new();
        mocks
            .hasher
            .expect_verify()
            .returning(|_, _| Err(PortError::Busy));
        mocks
            .throttle
            .expect_withdraw()
            .with(eq(ada()), eq(ip()))
            .times(1)
            .returning(|_, _| Ok(()));
        let error = mocks
            .build()
            .execute(request("ada@example.com"))
            .await
            .unwrap_err();
        assert!(matches!(error, LoginError::Port(PortError::Busy)));
    }

    #[test]
    fn throttle_keys_are_the_email_identity_and_bounded() {
        let key = |username: &str| account_key(username, Email::parse(username).ok().as_ref());
        assert_eq!(key("  Ada@Example.COM "), "ada@example.com");
        assert_eq!(key("E\u{301}lodie@example.fr"), "\u{e9}lodie@example.fr");
        assert_eq!(key("Not An Email"), "not an email");
        assert_eq!(key(&"x".repeat(70_000)).chars().count(), Email::MAX_LEN);
    }

    #[tokio::test]
    async fn throttled_attempt_checks_nothing() {
        let mut mocks = Mocks::bare(
            Some(user()),
            PasswordCheck::Match {
                needs_rehash: false,
            },
        );
        mocks.throttle.expect_admit().returning(|_, _| {
            Ok(ThrottleVerdict::Deny {
                retry_after: Duration::from_secs(4),
            })
        });
        mocks.throttle.expect_withdraw().never();
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
        )
        .succeeding();
        mocks.sessions.expect_create().never();
        let error = mocks
            .build()
            .execute(request("ada@example.com"))
            .await
            .unwrap_err();
        assert!(matches!(error, LoginError::Inactive));
    }

    /// The use case built from `mocks`, with `AUTHD_REQUIRE_VERIFIED_EMAIL` set to `required`.
    fn requiring_verification(mocks: Mocks, required: bool) -> LogIn {
        let mut log_in = mocks.build();
        log_in.settings.require_verified_email = required;
        log_in
    }

    fn with_flags(active: bool, verified: bool) -> User {
        let mut user = user();
        user.is_active = active;
        user.is_verified = verified;
        user
    }

    /// Mocks in which no session is opened and nothing is signed.
    fn opening_nothing(mut mocks: Mocks) -> Mocks {
        mocks.sessions.expect_create().never();
        mocks.cache.expect_mark_live().never();
        mocks.issuer.expect_sign_access().never();
        mocks.issuer.expect_sign_refresh().never();
        mocks.issuer.expect_sign_device().never();
        mocks
    }

    #[tokio::test]
    async fn an_unverified_address_is_refused_after_the_right_password_when_required() {
        let mocks = Mocks::with(
            Some(with_flags(true, false)),
            PasswordCheck::Match {
                needs_rehash: false,
            },
        )
        .succeeding();
        let error = requiring_verification(opening_nothing(mocks), true)
            .execute(request("ada@example.com"))
            .await
            .unwrap_err();
        assert!(matches!(error, LoginError::Unverified));
    }

    #[tokio::test]
    async fn a_verified_address_logs_in_when_required_and_any_does_when_not() {
        for (required, verified) in [(true, true), (false, false), (false, true)] {
            let user = with_flags(true, verified);
            let mocks = Mocks::with(
                Some(user.clone()),
                PasswordCheck::Match {
                    needs_rehash: false,
                },
            )
            .issuing();
            let logged_in = requiring_verification(mocks, required)
                .execute(request("ada@example.com"))
                .await
                .unwrap();
            assert_eq!(logged_in.user, user);
        }
    }

    #[tokio::test]
    async fn an_inactive_unverified_account_is_inactive_first() {
        let mocks = Mocks::with(
            Some(with_flags(false, false)),
            PasswordCheck::Match {
                needs_rehash: false,
            },
        )
        .succeeding();
        let error = requiring_verification(opening_nothing(mocks), true)
            .execute(request("ada@example.com"))
            .await
            .unwrap_err();
        assert!(matches!(error, LoginError::Inactive));
    }

    #[tokio::test]
    async fn a_wrong_password_on_an_unverified_account_reveals_nothing() {
        let mut mocks = Mocks::with(Some(with_flags(true, false)), PasswordCheck::Mismatch);
        mocks.throttle.expect_succeeded().never();
        mocks.throttle.expect_withdraw().never();
        let error = requiring_verification(opening_nothing(mocks), true)
            .execute(request("ada@example.com"))
            .await
            .unwrap_err();
        assert!(matches!(error, LoginError::BadCredentials));
    }

    #[tokio::test]
    async fn credentials_changed_meanwhile_open_no_session() {
        let mut mocks = Mocks::with(
            Some(user()),
            PasswordCheck::Match {
                needs_rehash: false,
            },
        )
        .succeeding()
        .signing();
        mocks
            .sessions
            .expect_create()
            .times(1)
            .returning(|_, _, _| Ok(false));
        mocks.cache.expect_mark_live().never();
        let error = mocks
            .build()
            .execute(request("ada@example.com"))
            .await
            .unwrap_err();
        assert!(matches!(error, LoginError::CredentialsChanged));
    }

    #[tokio::test]
    async fn stale_parameters_are_rehashed_over_the_checked_hash_only() {
        let ada = user();
        let ada_id = ada.id;
        let mut mocks =
            Mocks::with(Some(ada), PasswordCheck::Match { needs_rehash: true }).issuing();
        mocks
            .hasher
            .expect_hash()
            .withf(|password| password.expose() == "correct horse")
            .times(1)
            .returning(|_| Ok(PasswordHash::new("$argon2id$new")));
        mocks
            .users
            .expect_update_password_hash()
            .withf(move |id, old, new, at| {
                *id == ada_id
                    && old.as_str() == "$argon2id$stored"
                    && new.as_str() == "$argon2id$new"
                    && *at == now()
            })
            .times(1)
            .returning(|_, _, _, _| Ok(false));
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
            .returning(|_, _, _, _| Err(PortError::Unavailable(Dependency::Database)));
        assert!(
            mocks
                .build()
                .execute(request("ada@example.com"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn store_outage_is_a_port_error_and_the_attempt_is_withdrawn() {
        let mut mocks = Mocks::with(None, PasswordCheck::Mismatch);
        mocks.users = MockUserRepository::new();
        mocks
            .users
            .expect_find_credentials()
            .returning(|_| Err(PortError::Unavailable(Dependency::Database)));
        mocks
            .throttle
            .expect_withdraw()
            .times(1)
            .returning(|_, _| Ok(()));
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
        )
        .succeeding()
        .signing();
        mocks
            .sessions
            .expect_create()
            .returning(|_, _, _| Err(PortError::Unavailable(Dependency::Database)));
        let error = mocks
            .build()
            .execute(request("ada@example.com"))
            .await
            .unwrap_err();
        assert!(matches!(error, LoginError::Port(_)));
    }

    /// A verifier that knows one device token, `valid`, bound to `account`.
    fn knowing_device(mocks: &mut Mocks, account: &'static str, device: TokenId) {
        mocks
            .verifier
            .expect_verify_device()
            .returning(move |token, _| match token {
                "valid" => Ok(DeviceClaims {
                    user_id: user().id,
                    account: account.into(),
                    device_id: device,
                    issued_at: now(),
                    expires_at: now() + DeviceClaims::LIFETIME,
                }),
                _ => Err(crate::ports::TokenRejected("forged".into())),
            });
    }

    #[tokio::test]
    async fn a_device_token_of_the_account_counts_against_the_device() {
        let device = TokenId::generate();
        let mut mocks = Mocks::bare(Some(user()), PasswordCheck::Mismatch);
        knowing_device(&mut mocks, "ada@example.com", device);
        mocks
            .throttle
            .expect_admit()
            .with(eq(ThrottleKey::Device(device)), eq(ip()))
            .times(1)
            .returning(|_, _| Ok(ThrottleVerdict::Allow));
        let error = mocks
            .build()
            .execute(LoginRequest {
                device_token: Some("valid".into()),
                ..request("Ada@example.com")
            })
            .await
            .unwrap_err();
        assert!(matches!(error, LoginError::BadCredentials));
    }

    #[tokio::test]
    async fn another_accounts_or_a_forged_device_token_counts_as_none() {
        for (bound_to, token) in [("bob@example.com", "valid"), ("ada@example.com", "forged")] {
            let mut mocks = Mocks::with(Some(user()), PasswordCheck::Mismatch);
            knowing_device(&mut mocks, bound_to, TokenId::generate());
            let error = mocks
                .build()
                .execute(LoginRequest {
                    device_token: Some(token.into()),
                    ..request("ada@example.com")
                })
                .await
                .unwrap_err();
            assert!(matches!(error, LoginError::BadCredentials));
        }
    }

    #[tokio::test]
    async fn a_success_hands_out_a_device_token_bound_to_the_account() {
        let ada = user();
        let ada_id = ada.id;
        let mut mocks = Mocks::with(
            Some(ada),
            PasswordCheck::Match {
                needs_rehash: false,
            },
        );
        mocks
            .issuer
            .expect_sign_device()
            .times(1)
            .returning(move |claims| {
                assert_eq!(claims.user_id, ada_id);
                assert_eq!(claims.account, "ada@example.com");
                assert_eq!(claims.expires_at - claims.issued_at, DeviceClaims::LIFETIME);
                Ok("fresh device".into())
            });
        let logged_in = mocks
            .issuing()
            .build()
            .execute(request("ADA@example.com"))
            .await
            .unwrap();
        assert_eq!(logged_in.device_token, "fresh device");
    }
}
