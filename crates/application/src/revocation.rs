//! Revoking sessions in the store and the cache, in the order that keeps them consistent.

use std::sync::Arc;
use std::time::Duration;

use authd_domain::{Session, SessionId, UserId};
use chrono::{DateTime, Utc};

use crate::PortError;
use crate::ports::{AuthCache, SessionRepository};

/// Revocation is: drop the cached `Live` marks first (if the cache is down, fail before
/// anything changed), then revoke in the store (the decision), then mark the sessions revoked
/// in the cache. The last step is only a speed-up: when it fails, the next request finds no
/// mark and asks the store, which says revoked.
#[derive(Clone)]
pub(crate) struct Revoker {
    sessions: Arc<dyn SessionRepository>,
    cache: Arc<dyn AuthCache>,
}

impl Revoker {
    pub fn new(sessions: &Arc<dyn SessionRepository>, cache: &Arc<dyn AuthCache>) -> Self {
        Self {
            sessions: sessions.clone(),
            cache: cache.clone(),
        }
    }

    /// Revokes one session; `None` when it was not live.
    pub async fn revoke(
        &self,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, PortError> {
        self.cache.forget_sessions(&[id]).await?;
        let revoked = self.sessions.revoke(id, now).await?;
        if let Some(session) = &revoked {
            self.remember(std::slice::from_ref(session), now).await;
        }
        Ok(revoked)
    }

    /// Revokes every live session of the user.
    pub async fn revoke_all(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, PortError> {
        self.forget_live(user, now).await?;
        let revoked = self.sessions.revoke_all(user, now).await?;
        self.remember(&revoked, now).await;
        Ok(revoked)
    }

    /// First half of a revocation done by another port's transaction.
    pub async fn forget_live(&self, user: UserId, now: DateTime<Utc>) -> Result<(), PortError> {
        let live: Vec<SessionId> = self
            .sessions
            .list_live(user, now)
            .await?
            .iter()
            .map(|session| session.id)
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        self.cache.forget_sessions(&live).await
    }

    /// Second half: marks what the store revoked, best effort.
    pub async fn remember(&self, revoked: &[Session], now: DateTime<Utc>) {
        if revoked.is_empty() {
            return;
        }
        let marks: Vec<(SessionId, Duration)> = revoked
            .iter()
            .map(|session| (session.id, remaining(session.expires_at, now)))
            .collect();
        if let Err(error) = self.cache.mark_revoked(&marks).await {
            tracing::warn!(%error, "could not mark revoked sessions in the cache; the store decides");
        }
    }
}

/// Time left until `until`, at least one second (a zero TTL would not be stored at all).
pub(crate) fn remaining(until: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (until - now)
        .to_std()
        .unwrap_or_default()
        .max(Duration::from_secs(1))
}
