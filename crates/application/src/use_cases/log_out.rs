use std::sync::Arc;

use crate::PortError;
use crate::ports::{AuthCache, Clock, SessionRepository, TokenVerifier};
use crate::revocation::Revocation;
use crate::use_cases::Principal;

/// Why a logout failed.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    /// Neither token names a live session.
    #[error("no live session to log out of")]
    NoSession,
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Ends the caller's session, named by the access token or, when that is missing or unusable
/// (expired, say), by the refresh token.
pub struct LogOut {
    pub verifier: Arc<dyn TokenVerifier>,
    pub sessions: Arc<dyn SessionRepository>,
    pub cache: Arc<dyn AuthCache>,
    pub clock: Arc<dyn Clock>,
}

impl LogOut {
    /// Revokes the session the tokens name.
    pub async fn execute(
        &self,
        access_token: Option<&str>,
        refresh_token: Option<&str>,
    ) -> Result<(), LogoutError> {
        let now = self.clock.now();
        let revocation = Revocation::new(&*self.sessions, &*self.cache);
        let by_access = access_token.and_then(|token| self.verifier.verify_access(token, now).ok());
        if let Some(claims) = by_access
            && revocation.revoke(claims.session_id, now).await?.is_some()
        {
            return Ok(());
        }
        // Only now, so that the refresh token's signature is checked only when the access
        // token was missing, unusable (expired, say) or named a session no longer live.
        let by_refresh =
            refresh_token.and_then(|token| self.verifier.verify_refresh(token, now).ok());
        if let Some(claims) = by_refresh
            && revocation.revoke(claims.session_id, now).await?.is_some()
        {
            return Ok(());
        }
        Err(LogoutError::NoSession)
    }
}

/// Ends every session of the caller ("log out everywhere").
pub struct LogOutEverywhere {
    pub sessions: Arc<dyn SessionRepository>,
    pub cache: Arc<dyn AuthCache>,
    pub clock: Arc<dyn Clock>,
}

impl LogOutEverywhere {
    /// Revokes all the principal's sessions.
    pub async fn execute(&self, principal: &Principal) -> Result<(), PortError> {
        Revocation::new(&*self.sessions, &*self.cache)
            .revoke_all(principal.user.id, self.clock.now())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dependency;
    use crate::ports::{MockAuthCache, MockSessionRepository, MockTokenVerifier, TokenRejected};
    use crate::use_cases::fixtures::*;
    use authd_domain::{Session, SessionId, TokenId};
    use mockall::predicate::eq;

    fn log_out(
        verifier: MockTokenVerifier,
        sessions: MockSessionRepository,
        cache: MockAuthCache,
    ) -> LogOut {
        LogOut {
            verifier: Arc::new(verifier),
            sessions: Arc::new(sessions),
            cache: Arc::new(cache),
            clock: fixed_clock(),
        }
    }

    fn relaxed_cache() -> MockAuthCache {
        let mut cache = MockAuthCache::new();
        cache.expect_forget_sessions().returning(|_| Ok(()));
        cache.expect_mark_revoked().returning(|_| Ok(()));
        cache
    }

    /// A session store expecting exactly these revocations, each answering whether the
    /// session was live.
    fn revoking(expected: Vec<(Session, bool)>) -> MockSessionRepository {
        let mut sessions = MockSessionRepository::new();
        for (session, live) in expected {
            sessions
                .expect_revoke()
                .with(eq(session.id), eq(now()))
                .times(1)
                .returning(move |_, _| Ok(live.then(|| session.clone())));
        }
        sessions
    }

    #[tokio::test]
    async fn access_token_names_the_session_and_the_refresh_token_is_not_verified() {
        let user = user();
        let session = live_session(&user);
        let claims = access_claims(&user, session.id);
        let mut verifier = MockTokenVerifier::new();
        verifier
            .expect_verify_access()
            .with(eq("a"), eq(now()))
            .times(1)
            .returning(move |_, _| Ok(claims.clone()));
        verifier.expect_verify_refresh().times(0);
        assert!(
            log_out(verifier, revoking(vec![(session, true)]), relaxed_cache())
                .execute(Some("a"), Some("r"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn unusable_access_token_falls_back_to_the_refresh_token() {
        let user = user();
        let session = live_session(&user);
        let claims = refresh_claims(&session, TokenId::generate());
        let mut verifier = MockTokenVerifier::new();
        verifier
            .expect_verify_access()
            .times(1)
            .returning(|_, _| Err(TokenRejected("expired".into())));
        verifier
            .expect_verify_refresh()
            .with(eq("r"), eq(now()))
            .times(1)
            .returning(move |_, _| Ok(claims.clone()));
        assert!(
            log_out(verifier, revoking(vec![(session, true)]), relaxed_cache())
                .execute(Some("a"), Some("r"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn access_token_of_a_session_no_longer_live_falls_back_to_the_refresh_token() {
        let user = user();
        let (gone, live) = (live_session(&user), live_session(&user));
        let access = access_claims(&user, gone.id);
        let refresh = refresh_claims(&live, TokenId::generate());
        let mut verifier = MockTokenVerifier::new();
        verifier
            .expect_verify_access()
            .times(1)
            .returning(move |_, _| Ok(access.clone()));
        verifier
            .expect_verify_refresh()
            .times(1)
            .returning(move |_, _| Ok(refresh.clone()));
        let sessions = revoking(vec![(gone, false), (live, true)]);
        assert!(
            log_out(verifier, sessions, relaxed_cache())
                .execute(Some("a"), Some("r"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn refresh_token_alone_names_the_session() {
        let user = user();
        let session = live_session(&user);
        let claims = refresh_claims(&session, TokenId::generate());
        let mut verifier = MockTokenVerifier::new();
        verifier.expect_verify_access().times(0);
        verifier
            .expect_verify_refresh()
            .times(1)
            .returning(move |_, _| Ok(claims.clone()));
        assert!(
            log_out(verifier, revoking(vec![(session, true)]), relaxed_cache())
                .execute(None, Some("r"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn no_live_session_is_an_error() {
        let user = user();
        let claims = access_claims(&user, SessionId::generate());
        let mut verifier = MockTokenVerifier::new();
        verifier
            .expect_verify_access()
            .returning(move |_, _| Ok(claims.clone()));
        let mut sessions = MockSessionRepository::new();
        sessions.expect_revoke().returning(|_, _| Ok(None));
        let error = log_out(verifier, sessions, relaxed_cache())
            .execute(Some("a"), None)
            .await
            .unwrap_err();
        assert!(matches!(error, LogoutError::NoSession));

        // Both tokens verify, neither session is live any more.
        let (first, second) = (live_session(&user), live_session(&user));
        let access = access_claims(&user, first.id);
        let refresh = refresh_claims(&second, TokenId::generate());
        let mut verifier = MockTokenVerifier::new();
        verifier
            .expect_verify_access()
            .times(1)
            .returning(move |_, _| Ok(access.clone()));
        verifier
            .expect_verify_refresh()
            .times(1)
            .returning(move |_, _| Ok(refresh.clone()));
        let sessions = revoking(vec![(first, false), (second, false)]);
        let error = log_out(verifier, sessions, relaxed_cache())
            .execute(Some("a"), Some("r"))
            .await
            .unwrap_err();
        assert!(matches!(error, LogoutError::NoSession));

        // Both tokens unusable.
        let mut verifier = MockTokenVerifier::new();
        verifier
            .expect_verify_access()
            .times(1)
            .returning(|_, _| Err(TokenRejected("expired".into())));
        verifier
            .expect_verify_refresh()
            .times(1)
            .returning(|_, _| Err(TokenRejected("expired".into())));
        let error = log_out(verifier, MockSessionRepository::new(), MockAuthCache::new())
            .execute(Some("a"), Some("r"))
            .await
            .unwrap_err();
        assert!(matches!(error, LogoutError::NoSession));

        let error = log_out(
            MockTokenVerifier::new(),
            MockSessionRepository::new(),
            MockAuthCache::new(),
        )
        .execute(None, None)
        .await
        .unwrap_err();
        assert!(matches!(error, LogoutError::NoSession));
    }

    #[tokio::test]
    async fn cache_outage_fails_before_the_store_changes() {
        let user = user();
        let claims = access_claims(&user, SessionId::generate());
        let mut verifier = MockTokenVerifier::new();
        verifier
            .expect_verify_access()
            .returning(move |_, _| Ok(claims.clone()));
        let mut sessions = MockSessionRepository::new();
        sessions.expect_revoke().never();
        let mut cache = MockAuthCache::new();
        cache
            .expect_forget_sessions()
            .returning(|_| Err(PortError::Unavailable(Dependency::Cache)));
        let error = log_out(verifier, sessions, cache)
            .execute(Some("a"), None)
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            LogoutError::Port(PortError::Unavailable(Dependency::Cache))
        ));
    }

    #[tokio::test]
    async fn everywhere_revokes_every_live_session() {
        let user = user();
        let (one, two) = (live_session(&user), live_session(&user));
        let ids = vec![one.id, two.id];
        let mut sessions = MockSessionRepository::new();
        let live = vec![one.clone(), two.clone()];
        sessions
            .expect_list_live()
            .returning(move |_, _| Ok(live.clone()));
        let revoked = vec![one, two];
        sessions
            .expect_revoke_all()
            .with(eq(user.id), eq(now()))
            .times(1)
            .returning(move |_, _| Ok(revoked.clone()));
        let mut cache = MockAuthCache::new();
        cache
            .expect_forget_sessions()
            .withf(move |forgotten| forgotten == ids.as_slice())
            .times(1)
            .returning(|_| Ok(()));
        cache
            .expect_mark_revoked()
            .withf(|marks| marks.len() == 2)
            .times(1)
            .returning(|_| Ok(()));
        let use_case = LogOutEverywhere {
            sessions: Arc::new(sessions),
            cache: Arc::new(cache),
            clock: fixed_clock(),
        };
        let principal = Principal {
            user: user.clone(),
            session_id: SessionId::generate(),
        };
        assert!(use_case.execute(&principal).await.is_ok());
    }
}
