//! Account recovery and address verification: the link emails and what their tokens do.

use std::sync::Arc;
use std::time::Duration;

use authd_domain::{LinkPurpose, LinkToken, User};

use crate::commands;
use crate::ports::{
    AuthCache, Clock, IssuedLink, LinkRequest, LinkTokenRepository, LinkTokens, LoginThrottle,
    PasswordHasher, SessionRepository, ThrottleKey, ThrottleVerdict,
};
use crate::revocation::Revocation;
use crate::use_cases::Principal;
use crate::{AuthSettings, PortError};

/// Issues a token of `purpose` for the link email: random, digested, sealed, expiring after
/// the purpose's lifetime.
pub(crate) fn issue_link(
    tokens: &dyn LinkTokens,
    purpose: LinkPurpose,
    settings: &AuthSettings,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<IssuedLink, PortError> {
    let (_, digest, sealed) = tokens.issue()?;
    let ttl = match purpose {
        LinkPurpose::ResetPassword => settings.reset_ttl,
        _ => settings.verify_ttl,
    };
    Ok(IssuedLink {
        purpose,
        digest,
        sealed,
        expires_at: now
            .checked_add_signed(ttl)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
    })
}

/// Why a password-reset request was refused. Every other outcome (unknown, inactive or limited
/// account) looks the same to the client.
#[derive(Debug, thiserror::Error)]
pub enum ResetRequestError {
    /// The client's network is at its cap of attempts.
    #[error("too many requests")]
    Throttled {
        /// When to try again.
        retry_after: Duration,
    },
    /// The cache that keeps the counters failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Sends a password-reset link to an address, if an active account has it.
///
/// The request is answered in two steps so that the answer tells nothing: [`admit`] (the only
/// step that can refuse, and it refuses by network, never by account) runs on the request
/// path, [`execute`] (look-up, limit, token, outbox) after the answer is sent, so known,
/// unknown, inactive and limited addresses get the same bytes in the same time.
///
/// [`admit`]: Self::admit
/// [`execute`]: Self::execute
pub struct RequestPasswordReset {
    pub throttle: Arc<dyn LoginThrottle>,
    pub links: Arc<dyn LinkTokenRepository>,
    pub tokens: Arc<dyn LinkTokens>,
    pub clock: Arc<dyn Clock>,
    pub settings: AuthSettings,
}

impl RequestPasswordReset {
    /// Counts the request against the client's network (the cap that failed logins count
    /// against too): a network that sprays reset requests is as hostile as one that sprays
    /// passwords.
    pub async fn admit(
        &self,
        request: &commands::RequestPasswordReset,
    ) -> Result<(), ResetRequestError> {
        let Some(ip) = request.ip else {
            return Ok(());
        };
        match self.throttle.admit_network(ip).await? {
            ThrottleVerdict::Allow => Ok(()),
            ThrottleVerdict::Deny { retry_after } => {
                Err(ResetRequestError::Throttled { retry_after })
            }
        }
    }

    /// Stores a reset token and queues its email, unless the address has no active account
    /// or its limit is reached; says which (for logs and metrics, never for the client).
    pub async fn execute(
        &self,
        request: &commands::RequestPasswordReset,
    ) -> Result<LinkRequest, PortError> {
        let now = self.clock.now();
        let link = issue_link(
            &*self.tokens,
            LinkPurpose::ResetPassword,
            &self.settings,
            now,
        )?;
        self.links
            .request_reset(&request.email, &link, &self.settings.email_limit, now)
            .await
    }
}

/// Why a reset could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmResetError {
    /// The token is unknown, spent or expired (or its account inactive): nothing changed.
    #[error("invalid or expired token")]
    InvalidToken,
    /// The new password is the account's email (the policy's last rule, checked once the
    /// token names the account): nothing changed, the token still works.
    #[error("the password must not be the email")]
    PasswordIsEmail,
    /// A dependency failed: nothing changed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Sets a new password with a reset token. In one transaction the token is spent (of two
/// concurrent confirms exactly one wins), the password set, the address marked verified (the
/// link reached it), every session revoked and the other reset tokens spent, and the notice
/// queued. The account's login back-off is then cleared: the owner proved control of the
/// address.
pub struct ConfirmPasswordReset {
    pub links: Arc<dyn LinkTokenRepository>,
    pub tokens: Arc<dyn LinkTokens>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub sessions: Arc<dyn SessionRepository>,
    pub cache: Arc<dyn AuthCache>,
    pub throttle: Arc<dyn LoginThrottle>,
    pub clock: Arc<dyn Clock>,
}

impl ConfirmPasswordReset {
    /// Completes the reset.
    pub async fn execute(
        &self,
        confirm: commands::ConfirmPasswordReset,
    ) -> Result<(), ConfirmResetError> {
        let token = LinkToken::parse(&confirm.token).ok_or(ConfirmResetError::InvalidToken)?;
        let digest = self.tokens.digest(&token);
        let now = self.clock.now();
        let holder = self
            .links
            .holder(LinkPurpose::ResetPassword, &digest, now)
            .await?
            .ok_or(ConfirmResetError::InvalidToken)?;
        if confirm.new_password.is_email(&holder.email) {
            return Err(ConfirmResetError::PasswordIsEmail);
        }
        let hash = self.hasher.hash(confirm.new_password.password()).await?;

        let now = self.clock.now();
        let reset = Revocation::new(&*self.sessions, &*self.cache)
            .revoke_all_by(holder.id, now, || {
                self.links.reset_password(&digest, &hash, now)
            })
            .await?;
        let Some((user, _)) = reset else {
            // Spent by a concurrent confirm, or expired, between the look-up and now.
            return Err(ConfirmResetError::InvalidToken);
        };
        self.after_reset(&user).await;
        Ok(())
    }

    /// Best effort, after the commit: a stale profile or a back-off left in place is only
    /// stricter, and expires on its own.
    async fn after_reset(&self, user: &User) {
        if let Err(error) = self.cache.forget_user(user.id).await {
            tracing::warn!(%error, "could not invalidate the cached user after a reset");
        }
        let account = ThrottleKey::Account(user.email.normalized().to_owned());
        if let Err(error) = self.throttle.succeeded(&account, None).await {
            tracing::warn!(%error, "could not clear the login back-off after a reset");
        }
    }
}

/// Why an address could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum VerifyEmailError {
    /// The token is unknown, spent or expired (or its account inactive): nothing changed.
    #[error("invalid or expired token")]
    InvalidToken,
    /// A dependency failed: nothing changed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Marks an address verified with the token of its verification email.
pub struct VerifyEmail {
    pub links: Arc<dyn LinkTokenRepository>,
    pub tokens: Arc<dyn LinkTokens>,
    pub cache: Arc<dyn AuthCache>,
    pub clock: Arc<dyn Clock>,
}

impl VerifyEmail {
    /// Spends the token and sets `is_verified`.
    pub async fn execute(&self, verify: commands::VerifyEmail) -> Result<(), VerifyEmailError> {
        let token = LinkToken::parse(&verify.token).ok_or(VerifyEmailError::InvalidToken)?;
        let digest = self.tokens.digest(&token);
        let user = self
            .links
            .verify_email(&digest, self.clock.now())
            .await?
            .ok_or(VerifyEmailError::InvalidToken)?;
        if let Err(error) = self.cache.forget_user(user).await {
            tracing::warn!(%error, "could not invalidate the cached user after a verification");
        }
        Ok(())
    }
}

/// Why a verification email was not sent again.
#[derive(Debug, thiserror::Error)]
pub enum ResendError {
    /// One went out too recently (or too many this hour).
    #[error("a verification email was sent recently")]
    Throttled {
        /// When the next one may go.
        retry_after: Duration,
    },
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Sends the caller a new verification link, unless the address is verified already (then it
/// does nothing, and says nothing different).
pub struct ResendVerification {
    pub links: Arc<dyn LinkTokenRepository>,
    pub tokens: Arc<dyn LinkTokens>,
    pub clock: Arc<dyn Clock>,
    pub settings: AuthSettings,
}

impl ResendVerification {
    /// Queues the email, or says why not.
    pub async fn execute(&self, principal: &Principal) -> Result<LinkRequest, ResendError> {
        if principal.user.is_verified {
            return Ok(LinkRequest::AlreadyVerified);
        }
        let now = self.clock.now();
        let link = issue_link(&*self.tokens, LinkPurpose::VerifyEmail, &self.settings, now)?;
        match self
            .links
            .request_verification(principal.user.id, &link, &self.settings.email_limit, now)
            .await?
        {
            LinkRequest::Limited { retry_after } => Err(ResendError::Throttled { retry_after }),
            done => Ok(done),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::Dependency;
    use crate::ports::{
        MockAuthCache, MockLinkTokenRepository, MockLinkTokens, MockLoginThrottle,
        MockPasswordHasher, MockSessionRepository, TokenDigest,
    };
    use crate::use_cases::fixtures::*;
    use authd_domain::{Email, EmailRateLimit, NewPassword, PasswordHash, SessionId};
    use mockall::Sequence;
    use mockall::predicate::eq;

    /// The digest the mocked [`LinkTokens`] computes of [`token`].
    const DIGEST: TokenDigest = TokenDigest([9; 32]);

    /// The digest and the sealed token of a freshly issued link (see [`issuing_link`]).
    const ISSUED: u8 = 7;
    const SEALED: &str = "sealed-link";

    /// Settings whose email limit is no default, to see it passed on.
    fn link_settings() -> AuthSettings {
        AuthSettings {
            email_limit: EmailRateLimit::new(Duration::from_secs(30), 3, Duration::from_secs(1800)),
            ..settings()
        }
    }

    /// The link the use cases should store for `purpose`: the issued token, expiring after
    /// the purpose's lifetime.
    fn issued(purpose: LinkPurpose) -> IssuedLink {
        let ttl = match purpose {
            LinkPurpose::ResetPassword => settings().reset_ttl,
            _ => settings().verify_ttl,
        };
        IssuedLink {
            purpose,
            digest: TokenDigest([ISSUED; 32]),
            sealed: SEALED.to_owned(),
            expires_at: now() + ttl,
        }
    }

    /// The token from the link, as the client sends it.
    fn token() -> String {
        link_token('t').expose().to_owned()
    }

    /// Link tokens that digest [`token`] (and nothing else) into [`DIGEST`].
    fn digesting() -> MockLinkTokens {
        let mut tokens = MockLinkTokens::new();
        tokens
            .expect_digest()
            .withf(|given| given.expose() == token())
            .times(1)
            .return_const(DIGEST);
        tokens
    }

    fn ip() -> IpAddr {
        "198.51.100.9".parse().unwrap()
    }

    fn reset_request(ip: Option<IpAddr>) -> commands::RequestPasswordReset {
        commands::RequestPasswordReset {
            email: Email::parse("Ada@Example.com").unwrap(),
            ip,
        }
    }

    fn request_reset(
        throttle: MockLoginThrottle,
        links: MockLinkTokenRepository,
        tokens: MockLinkTokens,
    ) -> RequestPasswordReset {
        RequestPasswordReset {
            throttle: Arc::new(throttle),
            links: Arc::new(links),
            tokens: Arc::new(tokens),
            clock: fixed_clock(),
            settings: link_settings(),
        }
    }

    #[tokio::test]
    async fn a_request_without_an_ip_is_admitted_without_counting() {
        let mut throttle = MockLoginThrottle::new();
        throttle.expect_admit_network().never();
        let use_case = request_reset(
            throttle,
            MockLinkTokenRepository::new(),
            MockLinkTokens::new(),
        );
        assert!(use_case.admit(&reset_request(None)).await.is_ok());
    }

    #[tokio::test]
    async fn a_request_counts_against_its_network() {
        let mut throttle = MockLoginThrottle::new();
        throttle
            .expect_admit_network()
            .with(eq(ip()))
            .times(1)
            .returning(|_| Ok(ThrottleVerdict::Allow));
        let use_case = request_reset(
            throttle,
            MockLinkTokenRepository::new(),
            MockLinkTokens::new(),
        );
        assert!(use_case.admit(&reset_request(Some(ip()))).await.is_ok());
    }

    #[tokio::test]
    async fn a_network_at_its_cap_is_throttled() {
        let mut throttle = MockLoginThrottle::new();
        throttle
            .expect_admit_network()
            .with(eq(ip()))
            .times(1)
            .returning(|_| {
                Ok(ThrottleVerdict::Deny {
                    retry_after: Duration::from_secs(42),
                })
            });
        let use_case = request_reset(
            throttle,
            MockLinkTokenRepository::new(),
            MockLinkTokens::new(),
        );
        let error = use_case
            .admit(&reset_request(Some(ip())))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ResetRequestError::Throttled { retry_after } if retry_after == Duration::from_secs(42))
        );
    }

    #[tokio::test]
    async fn a_throttle_outage_is_a_port_error() {
        let mut throttle = MockLoginThrottle::new();
        throttle
            .expect_admit_network()
            .returning(|_| Err(PortError::Unavailable(Dependency::Cache)));
        let use_case = request_reset(
            throttle,
            MockLinkTokenRepository::new(),
            MockLinkTokens::new(),
        );
        let error = use_case
            .admit(&reset_request(Some(ip())))
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            ResetRequestError::Port(PortError::Unavailable(Dependency::Cache))
        ));
    }

    #[tokio::test]
    async fn a_request_stores_a_reset_link_under_the_limit_and_says_what_happened() {
        for outcome in [
            LinkRequest::Queued,
            LinkRequest::NoAccount,
            LinkRequest::Limited {
                retry_after: Duration::from_secs(17),
            },
        ] {
            let mut links = MockLinkTokenRepository::new();
            links
                .expect_request_reset()
                .withf(|email, link, limit, at| {
                    email.as_str() == "Ada@Example.com"
                        && *link == issued(LinkPurpose::ResetPassword)
                        && *limit == link_settings().email_limit
                        && *at == now()
                })
                .times(1)
                .returning(move |_, _, _, _| Ok(outcome));
            // `execute` runs after the answer: it counts nothing.
            let mut throttle = MockLoginThrottle::new();
            throttle.expect_admit_network().never();
            let use_case = request_reset(throttle, links, issuing_link(ISSUED, SEALED));
            let done = use_case.execute(&reset_request(Some(ip()))).await.unwrap();
            assert_eq!(done, outcome);
        }
    }

    #[tokio::test]
    async fn a_token_that_cannot_be_issued_stores_nothing() {
        let mut tokens = MockLinkTokens::new();
        tokens
            .expect_issue()
            .times(1)
            .returning(|| Err(PortError::Unexpected(anyhow::anyhow!("no randomness"))));
        let mut links = MockLinkTokenRepository::new();
        links.expect_request_reset().never();
        let use_case = request_reset(MockLoginThrottle::new(), links, tokens);
        assert!(use_case.execute(&reset_request(None)).await.is_err());
    }

    /// The ports of [`ConfirmPasswordReset`]; no expectations unless a helper sets some.
    struct Mocks {
        links: MockLinkTokenRepository,
        tokens: MockLinkTokens,
        hasher: MockPasswordHasher,
        sessions: MockSessionRepository,
        cache: MockAuthCache,
        throttle: MockLoginThrottle,
    }

    impl Mocks {
        fn bare() -> Self {
            Self {
                links: MockLinkTokenRepository::new(),
                tokens: MockLinkTokens::new(),
                hasher: MockPasswordHasher::new(),
                sessions: MockSessionRepository::new(),
                cache: MockAuthCache::new(),
                throttle: MockLoginThrottle::new(),
            }
        }

        /// [`token`] digests into [`DIGEST`], which names a reset token of `holder`.
        fn held_by(holder: Option<User>) -> Self {
            let mut mocks = Self::bare();
            mocks.tokens = digesting();
            mocks
                .links
                .expect_holder()
                .with(eq(LinkPurpose::ResetPassword), eq(DIGEST), eq(now()))
                .times(1)
                .returning(move |_, _, _| Ok(holder.clone()));
            mocks
        }

        /// Nothing is hashed, no session touched and nothing reset.
        fn changing_nothing(mut self) -> Self {
            self.hasher.expect_hash().never();
            self.sessions.expect_list_live().never();
            self.links.expect_reset_password().never();
            self.cache.expect_forget_user().never();
            self.throttle.expect_succeeded().never();
            self
        }

        fn confirm(self) -> ConfirmPasswordReset {
            ConfirmPasswordReset {
                links: Arc::new(self.links),
                tokens: Arc::new(self.tokens),
                hasher: Arc::new(self.hasher),
                sessions: Arc::new(self.sessions),
                cache: Arc::new(self.cache),
                throttle: Arc::new(self.throttle),
                clock: fixed_clock(),
            }
        }

        fn verify(self) -> VerifyEmail {
            VerifyEmail {
                links: Arc::new(self.links),
                tokens: Arc::new(self.tokens),
                cache: Arc::new(self.cache),
                clock: fixed_clock(),
            }
        }
    }

    /// A confirm with [`token`] and `password`, parsed as the edge parses it: against the
    /// policy alone (the account is not known yet).
    fn confirmation(password: &str) -> commands::ConfirmPasswordReset {
        commands::ConfirmPasswordReset {
            token: token(),
            new_password: NewPassword::parse(password, &settings().password_policy, None).unwrap(),
        }
    }

    #[tokio::test]
    async fn a_malformed_reset_token_is_invalid_without_asking_anyone() {
        for malformed in ["", "short", &format!("{}=", token()), &"+".repeat(43)] {
            let mocks = Mocks::bare();
            let error = mocks
                .confirm()
                .execute(commands::ConfirmPasswordReset {
                    token: malformed.to_owned(),
                    ..confirmation("a new passphrase")
                })
                .await
                .unwrap_err();
            assert!(matches!(error, ConfirmResetError::InvalidToken));
        }
    }

    #[tokio::test]
    async fn an_unknown_spent_or_expired_reset_token_changes_nothing() {
        let error = Mocks::held_by(None)
            .changing_nothing()
            .confirm()
            .execute(confirmation("a new passphrase"))
            .await
            .unwrap_err();
        assert!(matches!(error, ConfirmResetError::InvalidToken));
    }

    #[tokio::test]
    async fn the_holders_email_is_no_new_password() {
        let error = Mocks::held_by(Some(user()))
            .changing_nothing()
            .confirm()
            .execute(confirmation("ADA@example.com"))
            .await
            .unwrap_err();
        assert!(matches!(error, ConfirmResetError::PasswordIsEmail));
    }

    #[tokio::test]
    async fn a_reset_forgets_the_live_sessions_then_resets_then_marks_them_and_clears_the_back_off()
    {
        let holder = user();
        let mut stored = holder.clone();
        // As typed at signup: the throttle key is its normalised form.
        stored.email = Email::parse("Ada@Example.COM").unwrap();
        stored.is_verified = true;
        let (one, two) = (live_session(&holder), live_session(&holder));
        let ids = [one.id, two.id];
        let mut mocks = Mocks::held_by(Some(holder.clone()));
        let mut order = Sequence::new();
        mocks
            .hasher
            .expect_hash()
            .withf(|password| password.expose() == "a new passphrase")
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(PasswordHash::new("$argon2id$new")));
        let live = vec![one.clone(), two.clone()];
        mocks
            .sessions
            .expect_list_live()
            .with(eq(holder.id), eq(now()))
            .times(1)
            .in_sequence(&mut order)
            .returning(move |_, _| Ok(live.clone()));
        mocks
            .cache
            .expect_forget_sessions()
            .withf(move |forgotten| forgotten == ids)
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        let reset = Some((stored.clone(), vec![one, two]));
        mocks
            .links
            .expect_reset_password()
            .withf(|digest, hash, at| {
                *digest == DIGEST && hash.as_str() == "$argon2id$new" && *at == now()
            })
            .times(1)
            .in_sequence(&mut order)
            .returning(move |_, _, _| Ok(reset.clone()));
        mocks
            .cache
            .expect_mark_revoked()
            .withf(move |marks| marks.iter().map(|(id, _)| *id).eq(ids))
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        mocks
            .cache
            .expect_forget_user()
            .with(eq(holder.id))
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        mocks
            .throttle
            .expect_succeeded()
            .with(eq(ThrottleKey::Account("ada@example.com".into())), eq(None))
            .times(1)
            .in_sequence(&mut order)
            .returning(|_, _| Ok(()));
        assert!(
            mocks
                .confirm()
                .execute(confirmation("a new passphrase"))
                .await
                .is_ok()
        );
    }

    /// [`Mocks::held_by`] Ada, hashing the new password, with no live session.
    fn resetting(reset: Option<(User, Vec<authd_domain::Session>)>) -> Mocks {
        let mut mocks = Mocks::held_by(Some(user()));
        mocks.hasher = hashing("a new passphrase", "$argon2id$new");
        mocks
            .sessions
            .expect_list_live()
            .returning(|_, _| Ok(Vec::new()));
        mocks
            .links
            .expect_reset_password()
            .times(1)
            .returning(move |_, _, _| Ok(reset.clone()));
        mocks
    }

    #[tokio::test]
    async fn a_reset_that_lost_a_race_is_an_invalid_token() {
        let mut mocks = resetting(None);
        mocks.cache.expect_mark_revoked().never();
        mocks.cache.expect_forget_user().never();
        mocks.throttle.expect_succeeded().never();
        let error = mocks
            .confirm()
            .execute(confirmation("a new passphrase"))
            .await
            .unwrap_err();
        assert!(matches!(error, ConfirmResetError::InvalidToken));
    }

    #[tokio::test]
    async fn a_reset_stands_when_the_clean_up_after_it_fails() {
        let mut mocks = resetting(Some((user(), Vec::new())));
        mocks
            .cache
            .expect_forget_user()
            .times(1)
            .returning(|_| Err(PortError::Unavailable(Dependency::Cache)));
        mocks
            .throttle
            .expect_succeeded()
            .times(1)
            .returning(|_, _| Err(PortError::Unavailable(Dependency::Cache)));
        assert!(
            mocks
                .confirm()
                .execute(confirmation("a new passphrase"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_busy_hasher_resets_nothing() {
        let mut mocks = Mocks::held_by(Some(user()));
        mocks
            .hasher
            .expect_hash()
            .times(1)
            .returning(|_| Err(PortError::Busy));
        mocks.sessions.expect_list_live().never();
        mocks.links.expect_reset_password().never();
        let error = mocks
            .confirm()
            .execute(confirmation("a new passphrase"))
            .await
            .unwrap_err();
        assert!(matches!(error, ConfirmResetError::Port(PortError::Busy)));
    }

    #[tokio::test]
    async fn a_malformed_verification_token_is_invalid_without_asking_anyone() {
        let error = Mocks::bare()
            .verify()
            .execute(commands::VerifyEmail {
                token: "not-a-token".into(),
            })
            .await
            .unwrap_err();
        assert!(matches!(error, VerifyEmailError::InvalidToken));
    }

    fn verifying(outcome: Option<authd_domain::UserId>) -> Mocks {
        let mut mocks = Mocks::bare();
        mocks.tokens = digesting();
        mocks
            .links
            .expect_verify_email()
            .with(eq(DIGEST), eq(now()))
            .times(1)
            .returning(move |_, _| Ok(outcome));
        mocks
    }

    #[tokio::test]
    async fn an_unknown_spent_or_expired_verification_token_is_invalid() {
        let mut mocks = verifying(None);
        mocks.cache.expect_forget_user().never();
        let error = mocks
            .verify()
            .execute(commands::VerifyEmail { token: token() })
            .await
            .unwrap_err();
        assert!(matches!(error, VerifyEmailError::InvalidToken));
    }

    #[tokio::test]
    async fn a_verification_invalidates_the_cached_user() {
        let id = user().id;
        let mut mocks = verifying(Some(id));
        mocks
            .cache
            .expect_forget_user()
            .with(eq(id))
            .times(1)
            .returning(|_| Ok(()));
        assert!(
            mocks
                .verify()
                .execute(commands::VerifyEmail { token: token() })
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_verification_stands_when_the_cache_is_down() {
        let mut mocks = verifying(Some(user().id));
        mocks
            .cache
            .expect_forget_user()
            .times(1)
            .returning(|_| Err(PortError::Unavailable(Dependency::Cache)));
        assert!(
            mocks
                .verify()
                .execute(commands::VerifyEmail { token: token() })
                .await
                .is_ok()
        );
    }

    fn principal(verified: bool) -> Principal {
        let mut user = user();
        user.is_verified = verified;
        Principal {
            user,
            session_id: SessionId::generate(),
        }
    }

    fn resend(links: MockLinkTokenRepository, tokens: MockLinkTokens) -> ResendVerification {
        ResendVerification {
            links: Arc::new(links),
            tokens: Arc::new(tokens),
            clock: fixed_clock(),
            settings: link_settings(),
        }
    }

    #[tokio::test]
    async fn a_verified_caller_is_sent_nothing() {
        let mut links = MockLinkTokenRepository::new();
        links.expect_request_verification().never();
        let mut tokens = MockLinkTokens::new();
        tokens.expect_issue().never();
        let done = resend(links, tokens)
            .execute(&principal(true))
            .await
            .unwrap();
        assert_eq!(done, LinkRequest::AlreadyVerified);
    }

    /// A store that takes the caller's verification link under the settings' limit and
    /// answers `outcome`.
    fn requesting_verification(
        id: authd_domain::UserId,
        outcome: LinkRequest,
    ) -> ResendVerification {
        let mut links = MockLinkTokenRepository::new();
        links
            .expect_request_verification()
            .withf(move |user, link, limit, at| {
                *user == id
                    && *link == issued(LinkPurpose::VerifyEmail)
                    && *limit == link_settings().email_limit
                    && *at == now()
            })
            .times(1)
            .returning(move |_, _, _, _| Ok(outcome));
        resend(links, issuing_link(ISSUED, SEALED))
    }

    #[tokio::test]
    async fn an_unverified_caller_is_sent_a_verification_link() {
        let caller = principal(false);
        for outcome in [
            LinkRequest::Queued,
            LinkRequest::AlreadyVerified,
            LinkRequest::NoAccount,
        ] {
            let done = requesting_verification(caller.user.id, outcome)
                .execute(&caller)
                .await
                .unwrap();
            assert_eq!(done, outcome);
        }
    }

    #[tokio::test]
    async fn a_caller_over_the_limit_is_throttled() {
        let caller = principal(false);
        let limited = LinkRequest::Limited {
            retry_after: Duration::from_secs(25),
        };
        let error = requesting_verification(caller.user.id, limited)
            .execute(&caller)
            .await
            .unwrap_err();
        assert!(
            matches!(error, ResendError::Throttled { retry_after } if retry_after == Duration::from_secs(25))
        );
    }
}
