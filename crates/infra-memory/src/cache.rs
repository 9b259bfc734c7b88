use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use authd_application::PortError;
use authd_application::ports::{AuthCache, CachedAuth, SessionMark};
use authd_domain::{SessionId, User, UserId};

/// The auth cache in a map: the same marks, TTLs and no-overwrite rules as the Redis cache.
#[derive(Debug)]
pub struct InMemoryAuthCache {
    entries: Mutex<Entries>,
    max_session_ttl: Duration,
    user_ttl: Duration,
    tombstone_ttl: Duration,
}

#[derive(Debug, Default)]
struct Entries {
    sessions: HashMap<SessionId, (bool, Instant)>,
    users: HashMap<UserId, (Option<User>, Instant)>,
    /// The size at which expired entries are next swept out.
    sweep_at: usize,
}

/// The smallest size that triggers a sweep.
const SWEEP_FLOOR: usize = 10_000;

/// Whether an entry kept until `until` is still there at `now` (Redis's TTL: gone at `until`).
fn unexpired(until: Instant, now: Instant) -> bool {
    until > now
}

impl InMemoryAuthCache {
    /// Live marks last at most `max_session_ttl`, users `user_ttl`, invalidations
    /// `tombstone_ttl`.
    pub fn new(max_session_ttl: Duration, user_ttl: Duration, tombstone_ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            max_session_ttl,
            user_ttl,
            tombstone_ttl,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Entries, Instant) -> T) -> T {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        // Expired entries are swept when the maps have doubled since the last sweep, so they
        // stay bounded by twice what is live and a sweep costs O(1) per call on average (a
        // sweep on every call past a fixed size made each call scan everything).
        let size = entries.sessions.len() + entries.users.len();
        if size > entries.sweep_at.max(SWEEP_FLOOR) {
            entries
                .sessions
                .retain(|_, (_, until)| unexpired(*until, now));
            entries.users.retain(|_, (_, until)| unexpired(*until, now));
            entries.sweep_at = 2 * (entries.sessions.len() + entries.users.len());
        }
        f(&mut entries, now)
    }
}

impl Default for InMemoryAuthCache {
    fn default() -> Self {
        Self::new(
            Duration::from_secs(300),
            Duration::from_secs(300),
            Duration::from_secs(5),
        )
    }
}

#[async_trait]
impl AuthCache for InMemoryAuthCache {
    async fn lookup(&self, session: SessionId, user: UserId) -> Result<CachedAuth, PortError> {
        Ok(self.with(|entries, now| {
            let session = match entries.sessions.get(&session) {
                Some((true, until)) if unexpired(*until, now) => SessionMark::Live,
                Some((false, until)) if unexpired(*until, now) => SessionMark::Revoked,
                _ => SessionMark::Unknown,
            };
            let user = match entries.users.get(&user) {
                Some((user, until)) if unexpired(*until, now) => user.clone(),
                _ => None,
            };
            CachedAuth { session, user }
        }))
    }

    async fn mark_live(&self, session: SessionId, ttl: Duration) -> Result<(), PortError> {
        let ttl = ttl.min(self.max_session_ttl);
        self.with(|entries, now| {
            let taken = entries
                .sessions
                .get(&session)
                .is_some_and(|(_, until)| unexpired(*until, now));
            if !taken {
                entries.sessions.insert(session, (true, now + ttl));
            }
        });
        Ok(())
    }

    async fn forget_sessions(&self, sessions: &[SessionId]) -> Result<(), PortError> {
        self.with(|entries, _| {
            for session in sessions {
                entries.sessions.remove(session);
            }
        });
        Ok(())
    }

    async fn mark_revoked(&self, sessions: &[(SessionId, Duration)]) -> Result<(), PortError> {
        self.with(|entries, now| {
            for (session, ttl) in sessions {
                entries.sessions.insert(*session, (false, now + *ttl));
            }
        });
        Ok(())
    }

    async fn put_user(&self, user: &User) -> Result<(), PortError> {
        let ttl = self.user_ttl;
        self.with(|entries, now| {
            let taken = entries
                .users
                .get(&user.id)
                .is_some_and(|(_, until)| unexpired(*until, now));
            if !taken {
                entries
                    .users
                    .insert(user.id, (Some(user.clone()), now + ttl));
            }
        });
        Ok(())
    }

    async fn forget_user(&self, user: UserId) -> Result<(), PortError> {
        let ttl = self.tombstone_ttl;
        self.with(|entries, now| {
            entries.users.insert(user, (None, now + ttl));
        });
        Ok(())
    }
}

// The cache's rules (marks, no-overwrite, TTLs as a reader sees them) are the port contract
// suite's, in `crates/contract`; here only what is this adapter's own: the sweep.
#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn expired_entries_are_swept_once_the_maps_have_grown() {
        let cache = InMemoryAuthCache::new(
            Duration::from_millis(20),
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        let size = |cache: &InMemoryAuthCache| cache.with(|entries, _| entries.sessions.len());
        for _ in 0..SWEEP_FLOOR {
            let sid = SessionId::generate();
            cache.mark_live(sid, Duration::from_secs(60)).await.unwrap();
        }
        assert_eq!(size(&cache), SWEEP_FLOOR, "no sweep below the floor");
        tokio::time::sleep(Duration::from_millis(40)).await;
        let live = SessionId::generate();
        cache
            .mark_live(live, Duration::from_secs(60))
            .await
            .unwrap();
        cache
            .mark_live(SessionId::generate(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            size(&cache),
            2,
            "the expired marks are gone, the live ones stay"
        );
        let uid = UserId::generate();
        assert_eq!(
            cache.lookup(live, uid).await.unwrap().session,
            SessionMark::Live
        );
    }

    #[tokio::test]
    async fn past_the_floor_a_sweep_waits_until_the_maps_have_doubled() {
        let cache = InMemoryAuthCache::default();
        let size = |cache: &InMemoryAuthCache| cache.with(|entries, _| entries.sessions.len());
        let (long, short) = (Duration::from_secs(60), Duration::from_millis(20));
        for _ in 0..=SWEEP_FLOOR {
            cache.mark_live(SessionId::generate(), long).await.unwrap();
        }
        // This call sweeps (nothing has expired) and sets the next sweep at twice the size.
        cache.mark_live(SessionId::generate(), long).await.unwrap();
        for _ in 0..5 {
            cache.mark_live(SessionId::generate(), short).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        cache.mark_live(SessionId::generate(), long).await.unwrap();
        assert_eq!(
            size(&cache),
            SWEEP_FLOOR + 8,
            "the expired marks wait for the next sweep instead of costing a scan per call"
        );
    }

    #[tokio::test]
    async fn expired_users_are_swept_and_live_users_count_towards_the_next_sweep() {
        use authd_domain::{Email, RoleId, RoleName, RoleRef, RoleSlug};
        let cache = InMemoryAuthCache::new(
            Duration::from_secs(60),
            Duration::from_secs(60),
            Duration::from_millis(20),
        );
        let users = |cache: &InMemoryAuthCache| cache.with(|entries, _| entries.users.len());
        for _ in 0..SWEEP_FLOOR {
            cache.forget_user(UserId::generate()).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        let role = RoleRef {
            id: RoleId::generate(),
            slug: RoleSlug::parse("application-access").unwrap(),
            name: RoleName::parse("Application access").unwrap(),
        };
        let email = Email::parse("ada@example.com").unwrap();
        let live = User::register(email, None, role, chrono::Utc::now());
        cache.put_user(&live).await.unwrap();
        // This call sweeps: the expired tombstones go, the live profile stays, and with no
        // sessions at all the next sweep is set from the users alone.
        cache.forget_sessions(&[]).await.unwrap();
        assert_eq!(users(&cache), 1);
        let found = cache.lookup(SessionId::generate(), live.id).await.unwrap();
        assert_eq!(found.user.map(|user| user.id), Some(live.id));
        assert_eq!(cache.with(|entries, _| entries.sweep_at), 2);
    }
}
