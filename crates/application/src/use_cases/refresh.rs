use std::sync::Arc;

use authd_domain::RefreshVerdict;
use chrono::{DateTime, Utc};

use crate::minting::mint_pair;
use crate::ports::{
    AuthCache, Clock, Rotation, SessionRecord, SessionRepository, TokenIssuer, TokenVerifier,
    UserRepository,
};
use crate::revocation::Revocation;
use crate::tokens::{AccessProfile, PairIds, RefreshClaims, TokenPair};
use crate::{AuthSettings, PortError};

/// Why a refresh failed. All but `Port` are a 401 to the client.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Not a valid refresh token.
    #[error("invalid refresh token: {0}")]
    Invalid(String),
    /// The session is revoked or expired, or its user inactive.
    #[error("session is not live")]
    Revoked,
    /// An exchanged token was presented after the grace window: the session was revoked.
    #[error("refresh token reused; session revoked")]
    Reused,
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Exchanges a refresh token for a successor pair.
///
/// The exchange is one compare-and-set on the session row, which also reads the user, so the
/// common case costs one round trip to the store. Of several concurrent refreshes with one
/// token exactly one rotates; it stores the successor pair's ids sealed with the token it
/// replaced. The others, and any repeat inside the grace window, unseal them and sign the same
/// pair again. After the window the old token is theft and the session ends.
pub struct Refresh {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub cache: Arc<dyn AuthCache>,
    pub issuer: Arc<dyn TokenIssuer>,
    pub verifier: Arc<dyn TokenVerifier>,
    pub clock: Arc<dyn Clock>,
    pub settings: AuthSettings,
}

impl Refresh {
    /// Exchanges `refresh_token`.
    pub async fn execute(&self, refresh_token: &str) -> Result<TokenPair, RefreshError> {
        let now = self.clock.now();
        let claims = self
            .verifier
            .verify_refresh(refresh_token, now)
            .map_err(|rejected| RefreshError::Invalid(rejected.0))?;

        // Most tokens presented are current: rotate at once, and judge only when that fails.
        let successor = PairIds::generate(now);
        let rotation = Rotation {
            session_id: claims.session_id,
            user_id: claims.user_id,
            presented: claims.token_id,
            successor: successor.refresh,
            lifetime: self.settings.lifetime,
            sealed_successor: self
                .issuer
                .seal(&successor, refresh_token, claims.session_id)?,
            now,
        };
        if let Some(rotated) = self.sessions.rotate(&rotation).await? {
            let profile = AccessProfile::from(&rotated.user);
            return Ok(self.mint(&profile, &claims, &successor, rotated.expires_at)?);
        }

        let record = self
            .sessions
            .find(claims.session_id)
            .await?
            .filter(|record| record.session.user_id == claims.user_id)
            .ok_or(RefreshError::Revoked)?;
        let verdict = record.session.judge_refresh(
            &record.rotation,
            claims.token_id,
            now,
            self.settings.refresh_grace,
        );
        match verdict {
            // Current yet not rotated: the session's user is inactive or gone.
            RefreshVerdict::Rotate | RefreshVerdict::Dead => Err(RefreshError::Revoked),
            RefreshVerdict::Replay => self.repeat(&record, &claims, refresh_token, now).await,
            RefreshVerdict::Reuse => self.end_reused(&claims, now).await,
        }
    }

    /// The pair the last rotation issued, signed again from its ids, the session's expiry and
    /// the user's fields as that rotation signed them: the same two tokens, byte for byte.
    async fn repeat(
        &self,
        record: &SessionRecord,
        claims: &RefreshClaims,
        refresh_token: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, RefreshError> {
        // Cleared by the purge of an instance whose clock runs ahead: too late.
        let sealed = record
            .sealed_successor
            .as_deref()
            .ok_or(RefreshError::Revoked)?;
        // The exchanged `jti` in another string than the one exchanged (an ES256 signature with
        // its `s` negated verifies too): not its holder's repeat.
        let Some(successor) = self.issuer.unseal(sealed, refresh_token, claims.session_id) else {
            return self.end_reused(claims, now).await;
        };
        let user = self
            .users
            .find_by_id(claims.user_id)
            .await?
            .filter(|user| user.is_active)
            .ok_or(RefreshError::Revoked)?;
        // A rotation stored before authd kept the profile: the user as stored now is the best
        // guess, and the same one while the user is unchanged.
        let profile = record
            .signed_profile
            .clone()
            .unwrap_or_else(|| AccessProfile::from(&user));
        Ok(self.mint(&profile, claims, &successor, record.session.expires_at)?)
    }

    /// Theft: the whole session ends.
    async fn end_reused(
        &self,
        claims: &RefreshClaims,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, RefreshError> {
        tracing::warn!(
            user_id = %claims.user_id,
            session_id = %claims.session_id,
            "refresh token reuse detected; revoking the session"
        );
        Revocation::new(&*self.sessions, &*self.cache)
            .revoke(claims.session_id, now)
            .await?;
        Err(RefreshError::Reused)
    }

    fn mint(
        &self,
        profile: &AccessProfile,
        claims: &RefreshClaims,
        successor: &PairIds,
        expires_at: DateTime<Utc>,
    ) -> Result<TokenPair, PortError> {
        mint_pair(
            self.issuer.as_ref(),
            claims.user_id,
            profile,
            claims.session_id,
            successor,
            self.settings.access_ttl,
            expires_at,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::Dependency;
    use crate::ports::{
        MockAuthCache, MockSessionRepository, MockTokenIssuer, MockTokenVerifier,
        MockUserRepository, Rotated, TokenRejected,
    };
    use crate::use_cases::fixtures::*;
    use authd_domain::{Email, RotationState, Session, SessionId, TokenId, User, UserId};
    use chrono::TimeDelta;
    use mockall::Sequence;

    struct Mocks {
        users: MockUserRepository,
        sessions: MockSessionRepository,
        cache: MockAuthCache,
        issuer: MockTokenIssuer,
        verifier: MockTokenVerifier,
    }

    impl Mocks {
        /// A verifier that accepts the token as `jti` of `session`, and an issuer that seals
        /// any ids as "sealed". Nothing else is expected yet.
        fn presenting(jti: TokenId, session: &Session) -> Self {
            let mut mocks = Self {
                users: MockUserRepository::new(),
                sessions: MockSessionRepository::new(),
                cache: MockAuthCache::new(),
                issuer: MockTokenIssuer::new(),
                verifier: MockTokenVerifier::new(),
            };
            let claims = refresh_claims(session, jti);
            mocks
                .verifier
                .expect_verify_refresh()
                .withf(|token, at| token == "refresh-old" && *at == now())
                .returning(move |_, _| Ok(claims.clone()));
            mocks
                .issuer
                .expect_seal()
                .returning(|_, _, _| Ok("sealed".into()));
            mocks
        }

        /// The rotation fails, and the store then holds `record`.
        fn not_rotating(mut self, record: SessionRecord) -> Self {
            self.sessions
                .expect_rotate()
                .times(1)
                .returning(|_| Ok(None));
            self.sessions
                .expect_find()
                .times(1)
                .returning(move |_| Ok(Some(record.clone())));
            self
        }

        /// Reuse: `session` is revoked now, once, between the cache's forgetting it and its
        /// revoked mark (the cache mark goes first, then the store decides).
        fn ending_the_session(mut self, session: Session) -> Self {
            let mut order = Sequence::new();
            self.cache
                .expect_forget_sessions()
                .times(1)
                .in_sequence(&mut order)
                .returning(|_| Ok(()));
            let session_id = session.id;
            self.sessions
                .expect_revoke()
                .withf(move |id, at| *id == session_id && *at == now())
                .times(1)
                .in_sequence(&mut order)
                .returning(move |_, _| Ok(Some(session.clone())));
            self.cache
                .expect_mark_revoked()
                .times(1)
                .in_sequence(&mut order)
                .returning(|_| Ok(()));
            self
        }

        /// An issuer that signs `ids`' tokens as "access-<access jti>" and
        /// "refresh-<refresh jti>", checking the claims `user`, its `profile` and the expiries
        /// give them.
        fn signing(
            mut self,
            user: UserId,
            profile: AccessProfile,
            refresh_expires_at: DateTime<Utc>,
        ) -> Self {
            let access_expires_at = (now() + settings().access_ttl).min(refresh_expires_at);
            self.issuer
                .expect_sign_access()
                .withf(move |claims| {
                    claims.user_id == user
                        && claims.email == profile.email
                        && claims.role == profile.role
                        && claims.is_superuser == profile.is_superuser
                        && claims.issued_at == now()
                        && claims.expires_at == access_expires_at
                })
                .times(1)
                .returning(|claims| Ok(format!("access-{}", claims.token_id)));
            self.issuer
                .expect_sign_refresh()
                .withf(move |claims| {
                    claims.user_id == user
                        && claims.issued_at == now()
                        && claims.expires_at == refresh_expires_at
                })
                .times(1)
                .returning(|claims| Ok(format!("refresh-{}", claims.token_id)));
            self
        }

        fn build(self) -> Refresh {
            Refresh {
                users: Arc::new(self.users),
                sessions: Arc::new(self.sessions),
                cache: Arc::new(self.cache),
                issuer: Arc::new(self.issuer),
                verifier: Arc::new(self.verifier),
                clock: fixed_clock(),
                settings: settings(),
            }
        }
    }

    /// The access token's fields of the fixtures' [`user`], spelled out.
    fn ada() -> AccessProfile {
        AccessProfile {
            email: "ada@example.com".into(),
            role: "application-access".into(),
            is_superuser: false,
        }
    }

    /// `session` after an exchange of `previous` for `current`, `ago` before now, its
    /// successor's ids sealed as "sealed" and signed for [`ada`].
    fn rotated(
        session: Session,
        current: TokenId,
        previous: TokenId,
        ago: TimeDelta,
    ) -> SessionRecord {
        SessionRecord {
            session,
            rotation: RotationState {
                current,
                previous: Some(previous),
                rotated_at: Some(now() - ago),
            },
            sealed_successor: Some("sealed".into()),
            signed_profile: Some(ada()),
        }
    }

    #[tokio::test]
    async fn a_current_token_rotates_in_one_step_and_the_pair_is_minted_for_the_user_it_read() {
        let user = user();
        let session = live_session(&user);
        let (presented, session_id) = (TokenId::generate(), session.id);
        let expires_at = now() + TimeDelta::days(7);
        let mut mocks = Mocks::presenting(presented, &session);
        // This test's issuer records the ids it seals.
        mocks.issuer = MockTokenIssuer::new();
        mocks = mocks.signing(user.id, ada(), expires_at);
        let sealed_ids = Arc::new(Mutex::new(None));
        let seen = Arc::clone(&sealed_ids);
        mocks
            .issuer
            .expect_seal()
            .withf(move |_, token, session| token == "refresh-old" && *session == session_id)
            .times(1)
            .returning(move |ids, _, _| {
                *seen.lock().unwrap() = Some(*ids);
                Ok("sealed".into())
            });
        let seen = Arc::clone(&sealed_ids);
        let user_id = user.id;
        let stored = user.clone();
        mocks
            .sessions
            .expect_rotate()
            .withf(move |rotation| {
                let ids: PairIds = seen.lock().unwrap().unwrap();
                rotation.session_id == session_id
                    && rotation.user_id == user_id
                    && rotation.presented == presented
                    && rotation.successor == ids.refresh
                    && ids.issued_at == now()
                    && ids.access != ids.refresh
                    && rotation.lifetime == settings().lifetime
                    && rotation.sealed_successor == "sealed"
                    && rotation.now == now()
            })
            .times(1)
            .returning(move |_| {
                Ok(Some(Rotated {
                    expires_at,
                    user: stored.clone(),
                }))
            });
        mocks.sessions.expect_find().never();
        mocks.users.expect_find_by_id().never();
        let pair = mocks.build().execute("refresh-old").await.unwrap();
        let ids = sealed_ids.lock().unwrap().unwrap();
        assert_eq!(pair.access_token, format!("access-{}", ids.access));
        assert_eq!(pair.refresh_token, format!("refresh-{}", ids.refresh));
        assert_eq!(pair.issued_at, now());
        assert_eq!(pair.refresh_expires_at, expires_at);
        assert_eq!(pair.access_expires_at, now() + TimeDelta::minutes(15));
    }

    #[test]
    fn the_successor_lives_a_refresh_ttl_but_never_past_the_session_in_whole_seconds() {
        let rotation = |now: DateTime<Utc>| Rotation {
            session_id: SessionId::generate(),
            user_id: UserId::generate(),
            presented: TokenId::generate(),
            successor: TokenId::generate(),
            lifetime: settings().lifetime,
            sealed_successor: String::new(),
            now,
        };
        let late = now() + TimeDelta::milliseconds(700);
        assert_eq!(
            rotation(late).successor_expiry(now() - TimeDelta::days(1)),
            now() + TimeDelta::days(7)
        );
        let created = now() - TimeDelta::days(29) + TimeDelta::milliseconds(400);
        assert_eq!(
            rotation(now()).successor_expiry(created),
            now() + TimeDelta::days(1)
        );
    }

    /// The fixtures' [`user`] after a change of email and a promotion.
    fn changed_since() -> User {
        let mut changed = user();
        changed.email = Email::parse("ada@new.example").unwrap();
        changed.is_superuser = true;
        changed
    }

    /// The repeat's tokens are the rotation's, byte for byte: its ids, and the user's fields
    /// the rotation signed, not those the user has since.
    #[tokio::test]
    async fn a_repeat_inside_the_window_signs_the_sealed_ids_and_the_signed_profile_again() {
        let changed = changed_since();
        let record = rotated(
            live_session(&changed),
            TokenId::generate(),
            TokenId::generate(),
            TimeDelta::seconds(3),
        );
        repeating(record, changed, ada()).await;
    }

    /// A rotation stored without the profile (before authd kept it, or by an older authd): the
    /// repeat signs for the user as stored now.
    #[tokio::test]
    async fn a_repeat_of_a_rotation_without_a_profile_signs_for_the_user_as_stored() {
        let changed = changed_since();
        let record = SessionRecord {
            signed_profile: None,
            ..rotated(
                live_session(&changed),
                TokenId::generate(),
                TokenId::generate(),
                TimeDelta::seconds(3),
            )
        };
        let now_stored = AccessProfile {
            email: "ada@new.example".into(),
            role: "application-access".into(),
            is_superuser: true,
        };
        repeating(record, changed, now_stored).await;
    }

    /// A repeat of `record`'s previous token while the store holds `stored` as its user: the
    /// ids sealed with the token come back, signed for `expected` (the issuer mock checks).
    async fn repeating(record: SessionRecord, stored: User, expected: AccessProfile) {
        let old = record.rotation.previous.unwrap();
        let current = record.rotation.current;
        let (session_id, expires_at) = (record.session.id, record.session.expires_at);
        let mut mocks = Mocks::presenting(old, &record.session)
            .not_rotating(record)
            .signing(stored.id, expected, expires_at);
        let ids = PairIds {
            access: TokenId::generate(),
            refresh: current,
            issued_at: now(),
        };
        mocks
            .issuer
            .expect_unseal()
            .withf(move |sealed, token, session| {
                sealed == "sealed" && token == "refresh-old" && *session == session_id
            })
            .times(1)
            .returning(move |_, _, _| Some(ids));
        let user_id = stored.id;
        mocks
            .users
            .expect_find_by_id()
            .withf(move |id| *id == user_id)
            .times(1)
            .returning(move |_| Ok(Some(stored.clone())));
        let pair = mocks.build().execute("refresh-old").await.unwrap();
        assert_eq!(pair.access_token, format!("access-{}", ids.access));
        assert_eq!(pair.refresh_token, format!("refresh-{current}"));
        assert_eq!(pair.refresh_expires_at, expires_at);
    }

    #[tokio::test]
    async fn a_repeat_is_refused_when_its_ids_are_gone_or_its_user_is_inactive() {
        let mut user = user();
        let old = TokenId::generate();
        let record = rotated(
            live_session(&user),
            TokenId::generate(),
            old,
            TimeDelta::zero(),
        );
        let cleared = SessionRecord {
            sealed_successor: None,
            ..record.clone()
        };
        let mut mocks = Mocks::presenting(old, &record.session).not_rotating(cleared);
        mocks.issuer.expect_unseal().never();
        mocks.sessions.expect_revoke().never();
        let error = mocks.build().execute("refresh-old").await.unwrap_err();
        assert!(matches!(error, RefreshError::Revoked), "{error:?}");

        user.is_active = false;
        let mut mocks = Mocks::presenting(old, &record.session).not_rotating(record);
        let ids = PairIds::generate(now());
        mocks
            .issuer
            .expect_unseal()
            .returning(move |_, _, _| Some(ids));
        mocks
            .users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(user.clone())));
        mocks.sessions.expect_revoke().never();
        let error = mocks.build().execute("refresh-old").await.unwrap_err();
        assert!(matches!(error, RefreshError::Revoked), "{error:?}");
    }

    /// Another string with the exchanged `jti` (a malleated signature) does not open the ids
    /// sealed with the exchanged token: theft, and the session ends.
    #[tokio::test]
    async fn a_repeat_whose_ids_do_not_open_with_it_is_reuse() {
        let user = user();
        let old = TokenId::generate();
        let record = rotated(
            live_session(&user),
            TokenId::generate(),
            old,
            TimeDelta::zero(),
        );
        let (session_id, revoked) = (record.session.id, record.session.clone());
        let mut mocks = Mocks::presenting(old, &record.session)
            .not_rotating(record)
            .ending_the_session(revoked);
        mocks
            .issuer
            .expect_unseal()
            .withf(move |sealed, token, session| {
                sealed == "sealed" && token == "refresh-old" && *session == session_id
            })
            .times(1)
            .returning(|_, _, _| None);
        mocks.users.expect_find_by_id().never();
        let error = mocks.build().execute("refresh-old").await.unwrap_err();
        assert!(matches!(error, RefreshError::Reused), "{error:?}");
    }

    #[tokio::test]
    async fn a_repeat_after_the_window_revokes_the_session() {
        let user = user();
        let old = TokenId::generate();
        let record = rotated(
            live_session(&user),
            TokenId::generate(),
            old,
            TimeDelta::seconds(11),
        );
        let revoked = record.session.clone();
        let mocks = Mocks::presenting(old, &record.session)
            .not_rotating(record)
            .ending_the_session(revoked);
        let error = mocks.build().execute("refresh-old").await.unwrap_err();
        assert!(matches!(error, RefreshError::Reused), "{error:?}");
    }

    #[tokio::test]
    async fn an_invalid_token_is_refused_without_a_store_call() {
        let mut mocks = Mocks::presenting(TokenId::generate(), &live_session(&user()));
        mocks.verifier = MockTokenVerifier::new();
        mocks
            .verifier
            .expect_verify_refresh()
            .returning(|_, _| Err(TokenRejected("expired".into())));
        mocks.sessions.expect_rotate().never();
        mocks.sessions.expect_find().never();
        let error = mocks.build().execute("junk").await.unwrap_err();
        assert!(matches!(error, RefreshError::Invalid(reason) if reason == "expired"));
    }

    #[tokio::test]
    async fn a_token_that_did_not_rotate_is_refused_without_revoking_anything() {
        let user = user();
        let mut revoked = live_session(&user);
        revoked.revoked_at = Some(now());
        let mut of_another_user = live_session(&user);
        of_another_user.user_id = UserId::generate();
        // Still current (its user is inactive, so the store did not rotate), revoked, or
        // another user's: each is refused, and nothing is revoked or signed.
        for session in [live_session(&user), revoked, of_another_user] {
            let record = record(session);
            let current = record.rotation.current;
            let claims_session = Session {
                user_id: user.id,
                ..record.session.clone()
            };
            let mut mocks = Mocks::presenting(current, &claims_session).not_rotating(record);
            mocks.sessions.expect_revoke().never();
            mocks.users.expect_find_by_id().never();
            let error = mocks.build().execute("refresh-old").await.unwrap_err();
            assert!(matches!(error, RefreshError::Revoked), "{error:?}");
        }

        let mut mocks = Mocks::presenting(TokenId::generate(), &live_session(&user));
        mocks.sessions.expect_rotate().returning(|_| Ok(None));
        mocks.sessions.expect_find().returning(|_| Ok(None));
        let error = mocks.build().execute("refresh-old").await.unwrap_err();
        assert!(matches!(error, RefreshError::Revoked), "{error:?}");
    }

    #[tokio::test]
    async fn a_store_outage_is_a_port_error() {
        let session = live_session(&user());
        let mut mocks = Mocks::presenting(TokenId::generate(), &session);
        mocks
            .sessions
            .expect_rotate()
            .returning(|_| Err(PortError::Unavailable(Dependency::Database)));
        let error = mocks.build().execute("refresh-old").await.unwrap_err();
        assert!(matches!(
            error,
            RefreshError::Port(PortError::Unavailable(Dependency::Database))
        ));

        let mut mocks = Mocks::presenting(TokenId::generate(), &session);
        mocks.sessions.expect_rotate().returning(|_| Ok(None));
        mocks
            .sessions
            .expect_find()
            .returning(|_| Err(PortError::Unavailable(Dependency::Database)));
        let error = mocks.build().execute("refresh-old").await.unwrap_err();
        assert!(matches!(
            error,
            RefreshError::Port(PortError::Unavailable(Dependency::Database))
        ));
    }
}
