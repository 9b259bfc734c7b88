use std::sync::Arc;
use std::time::Duration;

use authd_domain::{Session, SessionId};

use crate::PortError;
use crate::ports::{AuthCache, Clock, SessionRepository};
use crate::revocation::Revocation;
use crate::use_cases::Principal;

/// A session as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    /// The session.
    pub session: Session,
    /// Whether the request was made with this session's token.
    pub current: bool,
}

/// Lists the caller's live sessions.
pub struct ListSessions {
    pub sessions: Arc<dyn SessionRepository>,
    pub clock: Arc<dyn Clock>,
}

impl ListSessions {
    /// The principal's live sessions, newest first, the current one flagged.
    pub async fn execute(&self, principal: &Principal) -> Result<Vec<SessionView>, PortError> {
        let sessions = self
            .sessions
            .list_live(principal.user.id, self.clock.now())
            .await?;
        Ok(sessions
            .into_iter()
            .map(|session| SessionView {
                current: session.id == principal.session_id,
                session,
            })
            .collect())
    }
}

/// Why a session could not be revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeSessionError {
    /// Not one of the caller's live sessions (someone else's looks the same: no probing).
    #[error("no such session")]
    NotFound,
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Revokes one of the caller's sessions (the current one too).
pub struct RevokeSession {
    pub sessions: Arc<dyn SessionRepository>,
    pub cache: Arc<dyn AuthCache>,
    pub clock: Arc<dyn Clock>,
}

impl RevokeSession {
    /// Revokes `id` if it is the principal's live session.
    pub async fn execute(
        &self,
        principal: &Principal,
        id: SessionId,
    ) -> Result<(), RevokeSessionError> {
        let now = self.clock.now();
        let owned_and_live = self.sessions.find(id).await?.is_some_and(|record| {
            record.session.user_id == principal.user.id && record.session.is_live(now)
        });
        if !owned_and_live {
            return Err(RevokeSessionError::NotFound);
        }
        let revocation = Revocation::new(&*self.sessions, &*self.cache);
        match revocation.revoke(id, now).await? {
            Some(_) => Ok(()),
            None => Err(RevokeSessionError::NotFound),
        }
    }
}

/// Deletes ended sessions, a batch at a time: the periodic clean-up that keeps the session
/// table from growing forever. It also clears the sealed successor pairs whose grace window is
/// over, so the store keeps no ciphertext of a token longer than it can be asked for. Several
/// instances may run it at once (the store hands each batch disjoint rows).
pub struct PurgeSessions {
    pub sessions: Arc<dyn SessionRepository>,
    pub clock: Arc<dyn Clock>,
    /// How long a revoked session is kept: the access-token lifetime plus the verifier's
    /// leeway, so no token of it is still checked against it (a missing session reads as
    /// revoked anyway; keeping it a while keeps it visible to whoever looks).
    pub revoked_grace: Duration,
    /// The refresh grace window ([`AuthSettings::refresh_grace`](crate::AuthSettings)): a
    /// sealed successor pair is kept this long after its rotation, no longer.
    pub refresh_grace: Duration,
    /// Most sessions deleted (or cleared) per statement (at least 1).
    pub batch: u32,
}

/// A purge that failed after deleting `purged` sessions.
#[derive(Debug, thiserror::Error)]
#[error("purging ended sessions failed after {purged} were deleted")]
pub struct PurgeError {
    /// Sessions deleted before the failure.
    pub purged: u64,
    /// The failure.
    #[source]
    pub error: PortError,
}

impl PurgeSessions {
    /// Deletes batches of sessions ended at the clock's `now` until a batch comes back short
    /// (nothing more to delete), then clears, batch after batch in the same way, the sealed
    /// successor pairs of sessions rotated more than the grace window before `now`. Returns how
    /// many sessions it deleted.
    pub async fn execute(&self) -> Result<u64, PurgeError> {
        let now = self.clock.now();
        let batch = self.batch.max(1);
        let mut purged = 0;
        loop {
            let deleted = self
                .sessions
                .purge_ended(now, self.revoked_grace, batch)
                .await
                .map_err(|error| PurgeError { purged, error })?;
            purged += deleted;
            if deleted < u64::from(batch) {
                break;
            }
        }
        // Rotated before this, a session is past its window (`Session::judge_refresh` replays
        // only while `now <= rotated_at + grace`). A window too large to subtract never ends.
        let Some(rotated_before) = chrono::TimeDelta::from_std(self.refresh_grace)
            .ok()
            .and_then(|grace| now.checked_sub_signed(grace))
        else {
            return Ok(purged);
        };
        let mut cleared = 0;
        loop {
            let done = self
                .sessions
                .clear_sealed_successors(rotated_before, batch)
                .await
                .map_err(|error| PurgeError { purged, error })?;
            cleared += done;
            if done < u64::from(batch) {
                break;
            }
        }
        tracing::debug!(
            cleared,
            "cleared sealed successor pairs past the grace window"
        );
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockAuthCache, MockSessionRepository};
    use crate::use_cases::fixtures::*;

    #[tokio::test]
    async fn lists_live_sessions_flagging_the_current_one() {
        let user = user();
        let (current, other) = (live_session(&user), live_session(&user));
        let mut sessions = MockSessionRepository::new();
        let live = vec![current.clone(), other.clone()];
        sessions
            .expect_list_live()
            .returning(move |_, _| Ok(live.clone()));
        let use_case = ListSessions {
            sessions: Arc::new(sessions),
            clock: fixed_clock(),
        };
        let principal = Principal {
            user,
            session_id: current.id,
        };
        let views = use_case.execute(&principal).await.unwrap();
        assert_eq!(
            views,
            vec![
                SessionView {
                    session: current,
                    current: true
                },
                SessionView {
                    session: other,
                    current: false
                },
            ]
        );
    }

    fn revoke_session(sessions: MockSessionRepository) -> RevokeSession {
        let mut cache = MockAuthCache::new();
        cache.expect_forget_sessions().returning(|_| Ok(()));
        cache.expect_mark_revoked().returning(|_| Ok(()));
        RevokeSession {
            sessions: Arc::new(sessions),
            cache: Arc::new(cache),
            clock: fixed_clock(),
        }
    }

    #[tokio::test]
    async fn revokes_an_owned_live_session() {
        let user = user();
        let session = live_session(&user);
        let mut sessions = MockSessionRepository::new();
        let found = record(session.clone());
        sessions
            .expect_find()
            .returning(move |_| Ok(Some(found.clone())));
        let revoked = session.clone();
        sessions
            .expect_revoke()
            .times(1)
            .returning(move |_, _| Ok(Some(revoked.clone())));
        let principal = Principal {
            user,
            session_id: session.id,
        };
        assert!(
            revoke_session(sessions)
                .execute(&principal, session.id)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn someone_elses_missing_or_dead_session_is_not_found() {
        let owner = user();
        let caller = Principal {
            user: super::super::fixtures::user(),
            session_id: SessionId::generate(),
        };
        let mut dead = live_session(&caller.user);
        dead.revoked_at = Some(now());
        for found in [Some(record(live_session(&owner))), Some(record(dead)), None] {
            let mut sessions = MockSessionRepository::new();
            sessions.expect_find().returning(move |_| Ok(found.clone()));
            sessions.expect_revoke().never();
            let error = revoke_session(sessions)
                .execute(&caller, SessionId::generate())
                .await
                .unwrap_err();
            assert!(matches!(error, RevokeSessionError::NotFound));
        }
    }

    fn purge(sessions: MockSessionRepository, batch: u32) -> PurgeSessions {
        PurgeSessions {
            sessions: Arc::new(sessions),
            clock: fixed_clock(),
            revoked_grace: Duration::from_secs(960),
            refresh_grace: Duration::from_secs(10),
            batch,
        }
    }

    /// The `cleared` counts of the events logged while it is the thread's subscriber.
    #[derive(Clone, Default)]
    struct ClearedLog(Arc<std::sync::Mutex<Vec<u64>>>);

    impl ClearedLog {
        fn counts(&self) -> Vec<u64> {
            self.0.lock().unwrap().clone()
        }
    }

    impl tracing::Subscriber for ClearedLog {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }

        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }

        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

        fn event(&self, event: &tracing::Event<'_>) {
            struct Cleared(Option<u64>);
            impl tracing::field::Visit for Cleared {
                fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                    if field.name() == "cleared" {
                        self.0 = Some(value);
                    }
                }

                fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
            }
            let mut cleared = Cleared(None);
            event.record(&mut cleared);
            if let Some(count) = cleared.0 {
                self.0.lock().unwrap().push(count);
            }
        }

        fn enter(&self, _: &tracing::span::Id) {}

        fn exit(&self, _: &tracing::span::Id) {}
    }

    /// Runs `purge` with a [`ClearedLog`] as the thread's subscriber: its result, and the
    /// `cleared` counts it logged. Every purge test runs this way: a purge logging with no
    /// subscriber could register the log's callsite as disabled while a test records.
    async fn run(purge: PurgeSessions) -> (Result<u64, PurgeError>, Vec<u64>) {
        let log = ClearedLog::default();
        let _default = tracing::subscriber::set_default(log.clone());
        let result = purge.execute().await;
        (result, log.counts())
    }

    /// Sessions that have no sealed successor pair to clear: asked once, it clears none (and a
    /// second question fails the test instead of looping forever).
    fn nothing_sealed(sessions: &mut MockSessionRepository) {
        sessions
            .expect_clear_sealed_successors()
            .times(1)
            .returning(|_, _| Ok(0));
    }

    #[tokio::test]
    async fn a_purge_runs_batches_until_one_comes_back_short() {
        let mut sessions = MockSessionRepository::new();
        let mut sequence = mockall::Sequence::new();
        for deleted in [3, 3, 1] {
            sessions
                .expect_purge_ended()
                .withf(|at, grace, batch| {
                    *at == now() && *grace == Duration::from_secs(960) && *batch == 3
                })
                .times(1)
                .in_sequence(&mut sequence)
                .returning(move |_, _, _| Ok(deleted));
        }
        nothing_sealed(&mut sessions);
        let (purged, cleared) = run(purge(sessions, 3)).await;
        assert_eq!(purged.unwrap(), 7);
        assert_eq!(cleared, [0]);
    }

    #[tokio::test]
    async fn a_purge_with_nothing_to_delete_asks_once() {
        let mut sessions = MockSessionRepository::new();
        sessions
            .expect_purge_ended()
            .times(1)
            .returning(|_, _, _| Ok(0));
        sessions
            .expect_clear_sealed_successors()
            .times(1)
            .returning(|_, _| Ok(0));
        let (purged, cleared) = run(purge(sessions, 500)).await;
        assert_eq!(purged.unwrap(), 0);
        assert_eq!(cleared, [0]);
    }

    #[tokio::test]
    async fn a_zero_batch_still_deletes_one_at_a_time() {
        let mut sessions = MockSessionRepository::new();
        sessions
            .expect_purge_ended()
            .withf(|_, _, batch| *batch == 1)
            .times(1)
            .returning(|_, _, _| Ok(0));
        sessions
            .expect_clear_sealed_successors()
            .withf(|_, batch| *batch == 1)
            .times(1)
            .returning(|_, _| Ok(0));
        let (purged, cleared) = run(purge(sessions, 0)).await;
        assert_eq!(purged.unwrap(), 0);
        assert_eq!(cleared, [0]);
    }

    #[tokio::test]
    async fn a_failed_batch_reports_what_was_deleted_before() {
        let mut sessions = MockSessionRepository::new();
        let mut sequence = mockall::Sequence::new();
        sessions
            .expect_purge_ended()
            .times(1)
            .in_sequence(&mut sequence)
            .returning(|_, _, _| Ok(2));
        sessions
            .expect_purge_ended()
            .times(1)
            .in_sequence(&mut sequence)
            .returning(|_, _, _| Err(PortError::Unavailable(crate::Dependency::Database)));
        sessions.expect_clear_sealed_successors().never();
        let (purged, cleared) = run(purge(sessions, 2)).await;
        assert!(cleared.is_empty());
        let error = purged.unwrap_err();
        assert_eq!(error.purged, 2);
        assert!(matches!(
            error.error,
            PortError::Unavailable(crate::Dependency::Database)
        ));
    }

    #[tokio::test]
    async fn a_purge_clears_sealed_pairs_past_the_grace_window_batch_after_batch() {
        let mut sessions = MockSessionRepository::new();
        sessions
            .expect_purge_ended()
            .times(1)
            .returning(|_, _, _| Ok(1));
        let mut sequence = mockall::Sequence::new();
        for cleared in [3, 3, 0] {
            sessions
                .expect_clear_sealed_successors()
                .withf(|before, batch| {
                    *before == now() - chrono::TimeDelta::seconds(10) && *batch == 3
                })
                .times(1)
                .in_sequence(&mut sequence)
                .returning(move |_, _| Ok(cleared));
        }
        // The count is of deleted sessions; clearing deletes none.
        let (purged, cleared) = run(purge(sessions, 3)).await;
        assert_eq!(purged.unwrap(), 1);
        assert_eq!(cleared, [6]);
    }

    #[tokio::test]
    async fn a_failed_clearing_reports_the_sessions_deleted_before() {
        let mut sessions = MockSessionRepository::new();
        sessions
            .expect_purge_ended()
            .times(1)
            .returning(|_, _, _| Ok(2));
        sessions
            .expect_clear_sealed_successors()
            .times(1)
            .returning(|_, _| Err(PortError::Unavailable(crate::Dependency::Database)));
        let (purged, cleared) = run(purge(sessions, 500)).await;
        assert!(cleared.is_empty());
        let error = purged.unwrap_err();
        assert_eq!(error.purged, 2);
    }

    #[tokio::test]
    async fn a_purge_logs_how_many_sealed_pairs_it_cleared() {
        let mut sessions = MockSessionRepository::new();
        sessions
            .expect_purge_ended()
            .times(1)
            .returning(|_, _, _| Ok(0));
        let mut sequence = mockall::Sequence::new();
        for cleared in [2, 2, 1] {
            sessions
                .expect_clear_sealed_successors()
                .times(1)
                .in_sequence(&mut sequence)
                .returning(move |_, _| Ok(cleared));
        }
        let (purged, cleared) = run(purge(sessions, 2)).await;
        assert_eq!(purged.unwrap(), 0);
        assert_eq!(cleared, [5]);
    }
}
