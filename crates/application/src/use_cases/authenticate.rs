use std::sync::Arc;

use authd_domain::{SessionId, User};

use crate::PortError;
use crate::ports::{
    AuthCache, CachedAuth, Clock, SessionMark, SessionRepository, TokenVerifier, UserRepository,
};
use crate::revocation::remaining;

/// Who is calling: the live user behind a valid access token, and the session it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The user as it is now (cache or store), not as the token remembers it.
    pub user: User,
    /// The session of the access token.
    pub session_id: SessionId,
}

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Bad, expired or revoked token, or an inactive or deleted user. The reason is for logs.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// The store could not be asked.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Checks an access token on every protected request: one signature check and, in the common
/// case, one cache round trip (session mark and user profile together). A cache miss asks the
/// store and fills the cache; a cache outage falls back to the store, which is authoritative.
/// This is also the "get profile" flow: the principal carries the live profile.
pub struct Authenticate {
    pub verifier: Arc<dyn TokenVerifier>,
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub cache: Arc<dyn AuthCache>,
    pub clock: Arc<dyn Clock>,
}

impl Authenticate {
    /// The principal behind `access_token`.
    pub async fn execute(&self, access_token: &str) -> Result<Principal, AuthError> {
        let now = self.clock.now();
        let claims = self
            .verifier
            .verify_access(access_token, now)
            .map_err(|rejected| AuthError::Unauthenticated(rejected.0))?;
        let (sid, uid) = (claims.session_id, claims.user_id);

        let (cached, cache_up) = match self.cache.lookup(sid, uid).await {
            Ok(cached) => (cached, true),
            Err(error) => {
                tracing::warn!(%error, "auth cache lookup failed; asking the store");
                let unknown = CachedAuth {
                    session: SessionMark::Unknown,
                    user: None,
                };
                (unknown, false)
            }
        };

        match cached.session {
            SessionMark::Live => {}
            SessionMark::Revoked => return Err(unauthenticated("session revoked")),
            SessionMark::Unknown => {
                let session = self.sessions.find(sid).await?.map(|record| record.session);
                let live = session.filter(|s| s.user_id == uid && s.is_live(now));
                let Some(session) = live else {
                    return Err(unauthenticated("session not live"));
                };
                if cache_up {
                    let ttl = remaining(session.expires_at, now);
                    if let Err(error) = self.cache.mark_live(sid, ttl).await {
                        tracing::warn!(%error, "could not cache the session mark");
                    }
                }
            }
        }

        let user = match cached.user {
            Some(user) => user,
            None => {
                let user = self
                    .users
                    .find_by_id(uid)
                    .await?
                    .ok_or_else(|| unauthenticated("user no longer exists"))?;
                if cache_up {
                    if let Err(error) = self.cache.put_user(&user).await {
                        tracing::warn!(%error, "could not cache the user");
                    }
                }
                user
            }
        };
        if !user.is_active {
            return Err(unauthenticated("user is inactive"));
        }
        Ok(Principal {
            user,
            session_id: sid,
        })
    }
}

fn unauthenticated(reason: &str) -> AuthError {
    AuthError::Unauthenticated(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dependency;
    use crate::ports::{
        MockAuthCache, MockSessionRepository, MockTokenVerifier, MockUserRepository, TokenRejected,
    };
    use crate::use_cases::fixtures::*;

    struct Mocks {
        verifier: MockTokenVerifier,
        users: MockUserRepository,
        sessions: MockSessionRepository,
        cache: MockAuthCache,
    }

    impl Mocks {
        fn new() -> Self {
            Self {
                verifier: MockTokenVerifier::new(),
                users: MockUserRepository::new(),
                sessions: MockSessionRepository::new(),
                cache: MockAuthCache::new(),
            }
        }

        fn accepting(user: &User, sid: SessionId) -> Self {
            let mut mocks = Self::new();
            let claims = access_claims(user, sid);
            mocks
                .verifier
                .expect_verify_access()
                .returning(move |_, _| Ok(claims.clone()));
            mocks
        }

        fn build(self) -> Authenticate {
            Authenticate {
                verifier: Arc::new(self.verifier),
                users: Arc::new(self.users),
                sessions: Arc::new(self.sessions),
                cache: Arc::new(self.cache),
                clock: fixed_clock(),
            }
        }
    }

    #[tokio::test]
    async fn cached_session_and_user_need_no_store() {
        let user = user();
        let sid = SessionId::generate();
        let mut mocks = Mocks::accepting(&user, sid);
        let cached = user.clone();
        mocks.cache.expect_lookup().returning(move |_, _| {
            Ok(CachedAuth {
                session: SessionMark::Live,
                user: Some(cached.clone()),
            })
        });
        // No expectations on the repositories: any call would panic the mock.
        let principal = mocks.build().execute("token").await.unwrap();
        assert_eq!(
            principal,
            Principal {
                user,
                session_id: sid
            }
        );
    }

    #[tokio::test]
    async fn invalid_token_is_unauthenticated() {
        let mut mocks = Mocks::new();
        mocks
            .verifier
            .expect_verify_access()
            .returning(|_, _| Err(TokenRejected("bad signature".into())));
        let error = mocks.build().execute("token").await.unwrap_err();
        assert!(matches!(error, AuthError::Unauthenticated(reason) if reason == "bad signature"));
    }

    #[tokio::test]
    async fn revoked_mark_is_unauthenticated() {
        let user = user();
        let mut mocks = Mocks::accepting(&user, SessionId::generate());
        mocks.cache.expect_lookup().returning(|_, _| {
            Ok(CachedAuth {
                session: SessionMark::Revoked,
                user: None,
            })
        });
        let error = mocks.build().execute("token").await.unwrap_err();
        assert!(matches!(error, AuthError::Unauthenticated(_)));
    }

    #[tokio::test]
    async fn cache_miss_reads_the_store_and_fills_the_cache() {
        let user = user();
        let session = live_session(&user);
        let mut mocks = Mocks::accepting(&user, session.id);
        mocks.cache.expect_lookup().returning(|_, _| Ok(unknown()));
        let record = record(session.clone());
        mocks
            .sessions
            .expect_find()
            .returning(move |_| Ok(Some(record.clone())));
        let stored = user.clone();
        mocks
            .users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(stored.clone())));
        mocks
            .cache
            .expect_mark_live()
            .times(1)
            .returning(|_, _| Ok(()));
        mocks.cache.expect_put_user().times(1).returning(|_| Ok(()));
        let principal = mocks.build().execute("token").await.unwrap();
        assert_eq!(principal.user, user);
    }

    #[tokio::test]
    async fn cache_outage_falls_back_to_the_store_without_writing_to_the_cache() {
        let user = user();
        let session = live_session(&user);
        let mut mocks = Mocks::accepting(&user, session.id);
        mocks
            .cache
            .expect_lookup()
            .returning(|_, _| Err(PortError::Unavailable(Dependency::Cache)));
        let record = record(session.clone());
        mocks
            .sessions
            .expect_find()
            .returning(move |_| Ok(Some(record.clone())));
        let stored = user.clone();
        mocks
            .users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(stored.clone())));
        mocks.cache.expect_mark_live().never();
        mocks.cache.expect_put_user().never();
        assert!(mocks.build().execute("token").await.is_ok());
    }

    #[tokio::test]
    async fn revoked_session_in_the_store_is_unauthenticated() {
        let user = user();
        let mut session = live_session(&user);
        session.revoked_at = Some(now());
        let mut mocks = Mocks::accepting(&user, session.id);
        mocks.cache.expect_lookup().returning(|_, _| Ok(unknown()));
        let record = record(session);
        mocks
            .sessions
            .expect_find()
            .returning(move |_| Ok(Some(record.clone())));
        let error = mocks.build().execute("token").await.unwrap_err();
        assert!(matches!(error, AuthError::Unauthenticated(_)));
    }

    #[tokio::test]
    async fn store_outage_is_a_port_error_not_a_401() {
        let user = user();
        let mut mocks = Mocks::accepting(&user, SessionId::generate());
        mocks.cache.expect_lookup().returning(|_, _| Ok(unknown()));
        mocks
            .sessions
            .expect_find()
            .returning(|_| Err(PortError::Unavailable(Dependency::Database)));
        let error = mocks.build().execute("token").await.unwrap_err();
        assert!(matches!(
            error,
            AuthError::Port(PortError::Unavailable(Dependency::Database))
        ));
    }

    #[tokio::test]
    async fn inactive_or_deleted_user_is_unauthenticated() {
        let mut inactive = user();
        inactive.is_active = false;
        for stored in [Some(inactive.clone()), None] {
            let mut mocks = Mocks::accepting(&inactive, SessionId::generate());
            mocks.cache.expect_lookup().returning(|_, _| {
                Ok(CachedAuth {
                    session: SessionMark::Live,
                    user: None,
                })
            });
            mocks
                .users
                .expect_find_by_id()
                .returning(move |_| Ok(stored.clone()));
            mocks.cache.expect_put_user().returning(|_| Ok(()));
            let error = mocks.build().execute("token").await.unwrap_err();
            assert!(matches!(error, AuthError::Unauthenticated(_)));
        }
    }

    fn unknown() -> CachedAuth {
        CachedAuth {
            session: SessionMark::Unknown,
            user: None,
        }
    }
}
