//! Revocation, as one operation: every flow that ends sessions goes through [`Revocation`], so
//! none can forget a step or take them out of order.

use std::future::Future;
use std::time::Duration;

use authd_domain::{Session, SessionId, User, UserId};
use chrono::{DateTime, Utc};

use crate::PortError;
use crate::ports::{AuthCache, SessionRepository};

/// Revokes one session, or every live session of a user, completely:
///
/// 1. drop the sessions' cached marks (if the cache is down, fail before anything changed);
/// 2. revoke in the store: the decision;
/// 3. mark the revoked sessions in the cache, best effort: when it fails, the next request finds
///    no mark and asks the store, which says revoked.
///
/// Built on the spot from the use case's ports: `Revocation::new(&*self.sessions, &*self.cache)`.
pub(crate) struct Revocation<'a> {
    sessions: &'a dyn SessionRepository,
    cache: &'a dyn AuthCache,
}

/// What a store operation that revokes returns, and so which sessions step 3 marks revoked.
pub(crate) trait Revoked {
    /// The sessions the operation revoked.
    fn revoked(&self) -> &[Session];
}

/// `SessionRepository::revoke_all`.
impl Revoked for Vec<Session> {
    fn revoked(&self) -> &[Session] {
        self
    }
}

/// `UserRepository::delete`, `UserRepository::replace_password`: `None` when there was no
/// such user (or, for a password, its credentials version moved).
impl Revoked for Option<Vec<Session>> {
    fn revoked(&self) -> &[Session] {
        self.as_deref().unwrap_or_default()
    }
}

/// `UserRepository::update`: `None` when there was no such user.
impl Revoked for Option<(User, Vec<Session>)> {
    fn revoked(&self) -> &[Session] {
        self.as_ref().map_or(&[], |(_, revoked)| revoked)
    }
}

impl<'a> Revocation<'a> {
    /// The revocation over these ports.
    pub fn new(sessions: &'a dyn SessionRepository, cache: &'a dyn AuthCache) -> Self {
        Self { sessions, cache }
    }

    /// Revokes one session; `None` when it was not live.
    pub async fn revoke(
        &self,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, PortError> {
        self.cache.forget_sessions(&[id]).await?;
        let revoked = self.sessions.revoke(id, now).await?;
        self.mark_revoked(revoked.as_slice(), now).await;
        Ok(revoked)
    }

    /// Revokes every live session of `user` (and bumps its credentials version, so no login
    /// checked before opens one after).
    pub async fn revoke_all(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, PortError> {
        self.revoke_all_by(user, now, || self.sessions.revoke_all(user, now))
            .await
    }

    /// Revokes every live session of `user` by `decide`: a store operation that changes the
    /// user and revokes its live sessions in one transaction (`UserRepository::replace_password`,
    /// `update` with `revoke_sessions`, `delete`). Runs it as step 2, between dropping the marks
    /// and marking what it revoked, and returns what it returned.
    pub async fn revoke_all_by<T, E, Fut>(
        &self,
        user: UserId,
        now: DateTime<Utc>,
        decide: impl FnOnce() -> Fut,
    ) -> Result<T, E>
    where
        T: Revoked,
        E: From<PortError>,
        Fut: Future<Output = Result<T, E>>,
    {
        self.forget_live(user, now).await?;
        let outcome = decide().await?;
        self.mark_revoked(outcome.revoked(), now).await;
        Ok(outcome)
    }

    /// Step 1 for every live session of `user`.
    async fn forget_live(&self, user: UserId, now: DateTime<Utc>) -> Result<(), PortError> {
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

    /// Step 3, best effort.
    async fn mark_revoked(&self, revoked: &[Session], now: DateTime<Utc>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dependency;
    use crate::ports::{MockAuthCache, MockSessionRepository, MockUserRepository, UserRepository};
    use crate::use_cases::fixtures::{live_session, now, user};
    use authd_domain::PasswordHash;
    use mockall::Sequence;
    use mockall::predicate::eq;

    fn cache_down() -> PortError {
        PortError::Unavailable(Dependency::Cache)
    }

    #[tokio::test]
    async fn one_session_is_forgotten_then_revoked_then_marked() {
        let session = live_session(&user());
        let id = session.id;
        let mut order = Sequence::new();
        let mut cache = MockAuthCache::new();
        let mut sessions = MockSessionRepository::new();
        cache
            .expect_forget_sessions()
            .withf(move |forgotten| forgotten == [id])
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        let revoked = session.clone();
        sessions
            .expect_revoke()
            .with(eq(id), eq(now()))
            .times(1)
            .in_sequence(&mut order)
            .returning(move |_, _| Ok(Some(revoked.clone())));
        // The mark lives as long as the session would have: `expires_at - now`, six days.
        let ttl = Duration::from_secs(6 * 24 * 60 * 60);
        assert_eq!(session.expires_at - now(), chrono::TimeDelta::days(6));
        cache
            .expect_mark_revoked()
            .withf(move |marks| marks == [(id, ttl)])
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        let revoked = Revocation::new(&sessions, &cache)
            .revoke(id, now())
            .await
            .unwrap();
        assert_eq!(revoked, Some(session));
    }

    #[tokio::test]
    async fn a_session_that_was_not_live_is_not_marked() {
        let mut cache = MockAuthCache::new();
        cache.expect_forget_sessions().returning(|_| Ok(()));
        cache.expect_mark_revoked().never();
        let mut sessions = MockSessionRepository::new();
        sessions.expect_revoke().returning(|_, _| Ok(None));
        let revoked = Revocation::new(&sessions, &cache)
            .revoke(live_session(&user()).id, now())
            .await
            .unwrap();
        assert_eq!(revoked, None);
    }

    #[tokio::test]
    async fn all_sessions_are_forgotten_then_revoked_by_the_store_operation_then_marked() {
        let user = user();
        let (one, two) = (live_session(&user), live_session(&user));
        let ids = [one.id, two.id];
        let mut order = Sequence::new();
        let mut sessions = MockSessionRepository::new();
        let mut cache = MockAuthCache::new();
        let mut users = MockUserRepository::new();
        let live = vec![one.clone(), two.clone()];
        sessions
            .expect_list_live()
            .with(eq(user.id), eq(now()))
            .times(1)
            .in_sequence(&mut order)
            .returning(move |_, _| Ok(live.clone()));
        cache
            .expect_forget_sessions()
            .withf(move |forgotten| forgotten == ids)
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        let revoked = vec![one, two];
        users
            .expect_replace_password()
            .times(1)
            .in_sequence(&mut order)
            .returning(move |_, _, _, _| Ok(Some(revoked.clone())));
        cache
            .expect_mark_revoked()
            .withf(move |marks| marks.iter().map(|(id, _)| *id).eq(ids))
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        let hash = PasswordHash::new("$argon2id$new");
        let revoked = Revocation::new(&sessions, &cache)
            .revoke_all_by(user.id, now(), || {
                users.replace_password(user.id, 0, &hash, now())
            })
            .await
            .unwrap();
        assert_eq!(revoked.map(|revoked| revoked.len()), Some(2));
    }

    #[tokio::test]
    async fn a_cache_outage_fails_before_the_store_changes() {
        let user = user();
        let session = live_session(&user);
        let mut cache = MockAuthCache::new();
        cache
            .expect_forget_sessions()
            .returning(|_| Err(cache_down()));
        cache.expect_mark_revoked().never();
        let mut sessions = MockSessionRepository::new();
        let live = vec![session.clone()];
        sessions
            .expect_list_live()
            .returning(move |_, _| Ok(live.clone()));
        sessions.expect_revoke().never();
        sessions.expect_revoke_all().never();
        let revocation = Revocation::new(&sessions, &cache);

        let one = revocation.revoke(session.id, now()).await;
        assert!(matches!(
            one,
            Err(PortError::Unavailable(Dependency::Cache))
        ));
        let all = revocation.revoke_all(user.id, now()).await;
        assert!(matches!(
            all,
            Err(PortError::Unavailable(Dependency::Cache))
        ));
        let mut decided = false;
        let by = revocation
            .revoke_all_by(user.id, now(), || {
                decided = true;
                async { Ok::<_, PortError>(Vec::new()) }
            })
            .await;
        assert!(matches!(by, Err(PortError::Unavailable(Dependency::Cache))));
        assert!(!decided, "the store operation must not run");
    }

    #[tokio::test]
    async fn marking_is_best_effort_and_no_live_session_needs_no_forgetting() {
        let user = user();
        let session = live_session(&user);
        let mut sessions = MockSessionRepository::new();
        sessions.expect_list_live().returning(|_, _| Ok(Vec::new()));
        let revoked = vec![session.clone()];
        sessions
            .expect_revoke_all()
            .with(eq(user.id), eq(now()))
            .times(1)
            .returning(move |_, _| Ok(revoked.clone()));
        let mut cache = MockAuthCache::new();
        cache.expect_forget_sessions().never();
        cache
            .expect_mark_revoked()
            .times(1)
            .returning(|_| Err(cache_down()));
        let revoked = Revocation::new(&sessions, &cache)
            .revoke_all(user.id, now())
            .await
            .unwrap();
        assert_eq!(revoked, vec![session]);
    }

    #[test]
    fn the_time_left_is_counted_in_seconds_and_is_never_below_one() {
        let at = |seconds: i64| now() + chrono::TimeDelta::seconds(seconds);
        let millis = |ms: i64| now() + chrono::TimeDelta::milliseconds(ms);
        assert_eq!(remaining(at(90), now()), Duration::from_secs(90));
        assert_eq!(
            remaining(millis(2_500), now()),
            Duration::from_millis(2_500)
        );
        assert_eq!(remaining(at(1), now()), Duration::from_secs(1));
        // Less than a second left, none, or past: one second, so the mark is still stored.
        assert_eq!(remaining(millis(500), now()), Duration::from_secs(1));
        assert_eq!(remaining(now(), now()), Duration::from_secs(1));
        assert_eq!(remaining(at(-60), now()), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn every_revoked_session_is_marked_for_the_rest_of_its_own_life() {
        let user = user();
        let mut soon = live_session(&user);
        soon.expires_at = now() + chrono::TimeDelta::seconds(90);
        let later = live_session(&user);
        let expected = [
            (soon.id, Duration::from_secs(90)),
            (later.id, Duration::from_secs(6 * 24 * 60 * 60)),
        ];
        let mut sessions = MockSessionRepository::new();
        sessions.expect_list_live().returning(|_, _| Ok(Vec::new()));
        let revoked = vec![soon, later];
        sessions
            .expect_revoke_all()
            .times(1)
            .returning(move |_, _| Ok(revoked.clone()));
        let mut cache = MockAuthCache::new();
        cache
            .expect_mark_revoked()
            .withf(move |marks| marks == expected)
            .times(1)
            .returning(|_| Ok(()));
        let revoked = Revocation::new(&sessions, &cache)
            .revoke_all(user.id, now())
            .await
            .unwrap();
        assert_eq!(revoked.len(), 2);
    }
}
