use std::sync::Arc;

use authd_domain::RefreshVerdict;

use crate::minting::mint_pair;
use crate::ports::{
    AuthCache, Clock, Rotation, SessionRepository, TokenIssuer, TokenVerifier, UserRepository,
};
use crate::revocation::Revocation;
use crate::tokens::TokenPair;
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
/// The exchange is a compare-and-set on the session row, so of several concurrent refreshes
/// with one token exactly one mints the successor pair. It stores that pair sealed with the
/// token it replaced; the others, and any repeat inside the grace window, unseal and return
/// the same pair. After the window the old token is theft and the session ends.
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

        // A lost compare-and-set means another request rotated first: judge once more
        // against what it wrote (it will be a replay inside the window).
        for _ in 0..2 {
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
                RefreshVerdict::Dead => return Err(RefreshError::Revoked),
                RefreshVerdict::Replay => {
                    return record
                        .sealed_successor
                        .and_then(|sealed| {
                            self.issuer
                                .unseal(&sealed, refresh_token, claims.session_id)
                        })
                        .ok_or(RefreshError::Revoked);
                }
                RefreshVerdict::Reuse => {
                    tracing::warn!(
                        user_id = %claims.user_id,
                        session_id = %claims.session_id,
                        "refresh token reuse detected; revoking the session"
                    );
                    Revocation::new(&*self.sessions, &*self.cache)
                        .revoke(claims.session_id, now)
                        .await?;
                    return Err(RefreshError::Reused);
                }
                RefreshVerdict::Rotate => {
                    let user = self
                        .users
                        .find_by_id(claims.user_id)
                        .await?
                        .filter(|user| user.is_active)
                        .ok_or(RefreshError::Revoked)?;
                    let lifetime = self.settings.lifetime;
                    let end = lifetime.absolute_end(record.session.created_at);
                    let minted = mint_pair(
                        self.issuer.as_ref(),
                        &user,
                        claims.session_id,
                        now,
                        self.settings.access_ttl,
                        lifetime.refresh_expiry(now, end),
                    )?;
                    let rotation = Rotation {
                        session_id: claims.session_id,
                        presented: claims.token_id,
                        successor: minted.refresh_jti,
                        successor_expires_at: minted.pair.refresh_expires_at,
                        sealed_successor: self.issuer.seal(
                            &minted.pair,
                            refresh_token,
                            claims.session_id,
                        )?,
                        now,
                    };
                    if self.sessions.rotate(&rotation).await? {
                        return Ok(minted.pair);
                    }
                }
            }
        }
        Err(RefreshError::Revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dependency;
    use crate::ports::{
        MockAuthCache, MockSessionRepository, MockTokenIssuer, MockTokenVerifier,
        MockUserRepository, SessionRecord, TokenRejected,
    };
    use crate::use_cases::fixtures::*;
    use authd_domain::{RotationState, TokenId, User};
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
        /// A verifier that accepts the token as `jti` of the record's session, and a store
        /// that returns `record` on every read.
        fn presenting(jti: TokenId, record: SessionRecord) -> Self {
            let mut mocks = Self {
                users: MockUserRepository::new(),
                sessions: MockSessionRepository::new(),
                cache: MockAuthCache::new(),
                issuer: MockTokenIssuer::new(),
                verifier: MockTokenVerifier::new(),
            };
            let claims = refresh_claims(&record.session, jti);
            mocks
                .verifier
                .expect_verify_refresh()
                .returning(move |_, _| Ok(claims.clone()));
            mocks
                .sessions
                .expect_find()
                .returning(move |_| Ok(Some(record.clone())));
            mocks
        }

        fn minting(mut self, user: &User) -> Self {
            let user = user.clone();
            self.users
                .expect_find_by_id()
                .returning(move |_| Ok(Some(user.clone())));
            self.issuer
                .expect_sign_access()
                .returning(|_| Ok("access-new".into()));
            self.issuer
                .expect_sign_refresh()
                .returning(|_| Ok("refresh-new".into()));
            self.issuer
                .expect_seal()
                .returning(|_, _, _| Ok("sealed".into()));
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

    fn rotated(
        session: authd_domain::Session,
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
        }
    }

    #[tokio::test]
    async fn current_token_is_exchanged_for_a_new_pair() {
        let user = user();
        let record = record(live_session(&user));
        let current = record.rotation.current;
        let session_id = record.session.id;
        let mut mocks = Mocks::presenting(current, record).minting(&user);
        mocks
            .sessions
            .expect_rotate()
            .withf(move |rotation| {
                rotation.session_id == session_id
                    && rotation.presented == current
                    && rotation.sealed_successor == "sealed"
                    && rotation.successor_expires_at == now() + TimeDelta::days(7)
            })
            .times(1)
            .returning(|_| Ok(true));
        let pair = mocks.build().execute("refresh-old").await.unwrap();
        assert_eq!(pair.access_token, "access-new");
        assert_eq!(pair.refresh_token, "refresh-new");
    }

    #[tokio::test]
    async fn successor_never_outlives_the_session() {
        let user = user();
        let mut session = live_session(&user);
        session.created_at = now() - TimeDelta::days(29);
        let record = record(session);
        let current = record.rotation.current;
        let mut mocks = Mocks::presenting(current, record).minting(&user);
        mocks.sessions.expect_rotate().returning(|_| Ok(true));
        let pair = mocks.build().execute("refresh-old").await.unwrap();
        assert_eq!(pair.refresh_expires_at, now() + TimeDelta::days(1));
        assert!(pair.access_expires_at <= pair.refresh_expires_at);
    }

    #[tokio::test]
    async fn repeat_inside_the_window_returns_the_sealed_pair() {
        let user = user();
        let old = TokenId::generate();
        let record = rotated(
            live_session(&user),
            TokenId::generate(),
            old,
            TimeDelta::seconds(3),
        );
        let session_id = record.session.id;
        let mut mocks = Mocks::presenting(old, record);
        mocks
            .issuer
            .expect_unseal()
            .withf(move |sealed, token, session| {
                sealed == "sealed" && token == "refresh-old" && *session == session_id
            })
            .returning(|_, _, _| Some(pair("successor")));
        mocks.sessions.expect_rotate().never();
        let pair = mocks.build().execute("refresh-old").await.unwrap();
        assert_eq!(pair.refresh_token, "refresh-successor");
    }

    #[tokio::test]
    async fn losing_a_concurrent_exchange_returns_the_winners_pair() {
        let user = user();
        let session = live_session(&user);
        let presented = TokenId::generate();
        let before = SessionRecord {
            session: session.clone(),
            rotation: RotationState {
                current: presented,
                previous: None,
                rotated_at: None,
            },
            sealed_successor: None,
        };
        let after = rotated(session, TokenId::generate(), presented, TimeDelta::zero());
        let mut mocks = Mocks::presenting(presented, before.clone()).minting(&user);
        mocks.sessions = MockSessionRepository::new();
        let mut reads = Sequence::new();
        mocks
            .sessions
            .expect_find()
            .times(1)
            .in_sequence(&mut reads)
            .returning(move |_| Ok(Some(before.clone())));
        mocks
            .sessions
            .expect_rotate()
            .times(1)
            .in_sequence(&mut reads)
            .returning(|_| Ok(false));
        mocks
            .sessions
            .expect_find()
            .times(1)
            .in_sequence(&mut reads)
            .returning(move |_| Ok(Some(after.clone())));
        mocks
            .issuer
            .expect_unseal()
            .returning(|_, _, _| Some(pair("winner")));
        let pair = mocks.build().execute("refresh-old").await.unwrap();
        assert_eq!(pair.access_token, "access-winner");
    }

    #[tokio::test]
    async fn repeat_after_the_window_revokes_the_session() {
        let user = user();
        let old = TokenId::generate();
        let record = rotated(
            live_session(&user),
            TokenId::generate(),
            old,
            TimeDelta::seconds(11),
        );
        let session_id = record.session.id;
        let revoked = record.session.clone();
        let mut mocks = Mocks::presenting(old, record);
        // Order matters: the cache mark goes first, then the store decides.
        let mut order = Sequence::new();
        mocks
            .cache
            .expect_forget_sessions()
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        mocks
            .sessions
            .expect_revoke()
            .withf(move |id, _| *id == session_id)
            .times(1)
            .in_sequence(&mut order)
            .returning(move |_, _| Ok(Some(revoked.clone())));
        mocks
            .cache
            .expect_mark_revoked()
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        let error = mocks.build().execute("refresh-old").await.unwrap_err();
        assert!(matches!(error, RefreshError::Reused));
    }

    #[tokio::test]
    async fn invalid_token_is_refused_without_a_store_read() {
        let mut mocks = Mocks::presenting(TokenId::generate(), record(live_session(&user())));
        mocks.verifier = MockTokenVerifier::new();
        mocks
            .verifier
            .expect_verify_refresh()
            .returning(|_, _| Err(TokenRejected("expired".into())));
        mocks.sessions = MockSessionRepository::new();
        let error = mocks.build().execute("junk").await.unwrap_err();
        assert!(matches!(error, RefreshError::Invalid(_)));
    }

    #[tokio::test]
    async fn revoked_or_missing_session_is_refused() {
        let user = user();
        let mut session = live_session(&user);
        session.revoked_at = Some(now());
        let record = record(session);
        let current = record.rotation.current;
        let error = Mocks::presenting(current, record)
            .build()
            .execute("t")
            .await
            .unwrap_err();
        assert!(matches!(error, RefreshError::Revoked));

        let mut mocks = Mocks::presenting(current, self::record(live_session(&user)));
        mocks.sessions = MockSessionRepository::new();
        mocks.sessions.expect_find().returning(|_| Ok(None));
        let error = mocks.build().execute("t").await.unwrap_err();
        assert!(matches!(error, RefreshError::Revoked));
    }

    #[tokio::test]
    async fn inactive_user_cannot_refresh() {
        let mut user = user();
        user.is_active = false;
        let record = record(live_session(&user));
        let current = record.rotation.current;
        let mut mocks = Mocks::presenting(current, record).minting(&user);
        mocks.sessions.expect_rotate().never();
        let error = mocks.build().execute("t").await.unwrap_err();
        assert!(matches!(error, RefreshError::Revoked));
    }

    #[tokio::test]
    async fn store_outage_is_a_port_error() {
        let user = user();
        let record = record(live_session(&user));
        let current = record.rotation.current;
        let mut mocks = Mocks::presenting(current, record).minting(&user);
        mocks
            .sessions
            .expect_rotate()
            .returning(|_| Err(PortError::Unavailable(Dependency::Database)));
        let error = mocks.build().execute("t").await.unwrap_err();
        assert!(matches!(
            error,
            RefreshError::Port(PortError::Unavailable(Dependency::Database))
        ));
    }
}
