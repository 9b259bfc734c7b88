//! The `AuthCache` contract: marks and profiles, their no-overwrite rules, and their TTLs as
//! far as a reader can see them (an entry is there, then it is not).
//!
//! Not here: what a cache does while its server is down (only Redis has an outage), and how
//! Redis names and expires its keys; those are the Redis adapter's own tests.

use std::time::Duration;

use authd_application::ports::{AuthCache, CachedAuth, SessionMark};
use authd_domain::{
    DisplayName, Email, RoleId, RoleName, RoleRef, RoleSlug, SessionId, User, UserId,
};
use chrono::DateTime;
use tokio::time::sleep;

/// The TTLs a cache under test is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheTtls {
    /// The cap of a `Live` mark.
    pub max_session: Duration,
    /// How long a profile lasts.
    pub user: Duration,
    /// How long an invalidation lasts.
    pub tombstone: Duration,
}

/// Short enough for a test to outlive them, long enough that an entry just written is still
/// there when it is read back.
pub const TTLS: CacheTtls = CacheTtls {
    max_session: Duration::from_secs(1),
    user: Duration::from_secs(2),
    tombstone: Duration::from_secs(1),
};

/// Slack past a TTL before an entry is expected gone.
const PAST: Duration = Duration::from_millis(300);

/// A user with every field set apart from its default.
fn user() -> User {
    User {
        id: UserId::generate(),
        email: Email::parse("Ada.Lovelace@Example.com").unwrap(),
        name: DisplayName::parse("Ada « Countess » Lovelace").unwrap(),
        is_active: true,
        is_superuser: true,
        is_verified: false,
        is_primary_admin: true,
        role: RoleRef {
            id: RoleId::generate(),
            slug: RoleSlug::parse("application-access").unwrap(),
            name: RoleName::parse("Application access").unwrap(),
        },
        created_at: DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap(),
        updated_at: DateTime::from_timestamp(1_700_000_500, 1_000).unwrap(),
    }
}

async fn mark(cache: &dyn AuthCache, session: SessionId) -> SessionMark {
    cache
        .lookup(session, UserId::generate())
        .await
        .unwrap()
        .session
}

async fn profile(cache: &dyn AuthCache, user: UserId) -> Option<User> {
    cache
        .lookup(SessionId::generate(), user)
        .await
        .unwrap()
        .user
}

/// Nothing cached: `Unknown` and no user.
pub async fn cache_lookup_of_nothing_is_a_miss(cache: &dyn AuthCache) {
    assert_eq!(
        cache
            .lookup(SessionId::generate(), UserId::generate())
            .await
            .unwrap(),
        CachedAuth {
            session: SessionMark::Unknown,
            user: None
        }
    );
}

/// One lookup returns the session's mark and the user's profile, each by its own key, the
/// profile with every field as it was put.
pub async fn cache_lookup_returns_the_mark_and_the_user(cache: &dyn AuthCache) {
    let user = user();
    let live = SessionId::generate();
    let revoked = SessionId::generate();

    cache.put_user(&user).await.unwrap();
    cache
        .mark_live(live, Duration::from_secs(60))
        .await
        .unwrap();
    cache
        .mark_revoked(&[(revoked, Duration::from_secs(60))])
        .await
        .unwrap();

    let cached = cache.lookup(live, user.id).await.unwrap();
    assert_eq!(
        cached,
        CachedAuth {
            session: SessionMark::Live,
            user: Some(user.clone())
        }
    );
    let profile = cached.user.unwrap();
    assert_eq!(profile.email.as_str(), "Ada.Lovelace@Example.com");
    assert_eq!(profile.role, user.role);
    assert_eq!(
        cache.lookup(revoked, user.id).await.unwrap(),
        CachedAuth {
            session: SessionMark::Revoked,
            user: Some(user.clone())
        }
    );
    assert_eq!(
        cache.lookup(SessionId::generate(), user.id).await.unwrap(),
        CachedAuth {
            session: SessionMark::Unknown,
            user: Some(user.clone())
        }
    );
    assert_eq!(
        cache.lookup(live, UserId::generate()).await.unwrap(),
        CachedAuth {
            session: SessionMark::Live,
            user: None
        }
    );
}

/// `mark_live` writes only where no mark is: it never replaces a revocation, nor extends a
/// `Live` mark already there; once the mark is forgotten it writes again.
pub async fn cache_mark_live_never_overrides_a_mark(cache: &dyn AuthCache) {
    let revoked = SessionId::generate();
    cache
        .mark_revoked(&[(revoked, Duration::from_secs(60))])
        .await
        .unwrap();
    cache
        .mark_live(revoked, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(mark(cache, revoked).await, SessionMark::Revoked);
    cache.forget_sessions(&[revoked]).await.unwrap();
    cache
        .mark_live(revoked, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(mark(cache, revoked).await, SessionMark::Live);

    let short = SessionId::generate();
    cache
        .mark_live(short, Duration::from_millis(300))
        .await
        .unwrap();
    cache
        .mark_live(short, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(mark(cache, short).await, SessionMark::Live);
    sleep(Duration::from_millis(300) + PAST).await;
    assert_eq!(
        mark(cache, short).await,
        SessionMark::Unknown,
        "the second mark_live did not extend the first"
    );
}

/// A `Live` mark lasts the TTL asked, at most the cap; a zero TTL writes nothing.
pub async fn cache_live_marks_last_at_most_the_cap(cache: &dyn AuthCache) {
    let capped = SessionId::generate();
    let short = SessionId::generate();
    let zero = SessionId::generate();
    cache
        .mark_live(capped, Duration::from_secs(3600))
        .await
        .unwrap();
    cache
        .mark_live(short, Duration::from_millis(200))
        .await
        .unwrap();
    cache.mark_live(zero, Duration::ZERO).await.unwrap();
    assert_eq!(mark(cache, zero).await, SessionMark::Unknown);
    assert_eq!(mark(cache, capped).await, SessionMark::Live);

    sleep(Duration::from_millis(200) + PAST).await;
    assert_eq!(mark(cache, short).await, SessionMark::Unknown);
    assert_eq!(mark(cache, capped).await, SessionMark::Live);
    sleep(TTLS.max_session - Duration::from_millis(200)).await;
    assert_eq!(
        mark(cache, capped).await,
        SessionMark::Unknown,
        "capped at {:?}",
        TTLS.max_session
    );
    // Nothing was left behind to block a later mark.
    cache
        .mark_live(zero, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(mark(cache, zero).await, SessionMark::Live);
}

/// Forgetting sessions drops their marks, live or revoked, and only theirs.
pub async fn cache_forget_sessions_drops_the_marks(cache: &dyn AuthCache) {
    let live = SessionId::generate();
    let revoked = SessionId::generate();
    let kept = SessionId::generate();
    let kept_revoked = SessionId::generate();
    for session in [live, kept] {
        cache
            .mark_live(session, Duration::from_secs(60))
            .await
            .unwrap();
    }
    cache
        .mark_revoked(&[
            (revoked, Duration::from_secs(60)),
            (kept_revoked, Duration::from_secs(60)),
        ])
        .await
        .unwrap();

    cache
        .forget_sessions(&[live, revoked, SessionId::generate()])
        .await
        .unwrap();
    cache.forget_sessions(&[]).await.unwrap();

    assert_eq!(mark(cache, live).await, SessionMark::Unknown);
    assert_eq!(mark(cache, revoked).await, SessionMark::Unknown);
    assert_eq!(mark(cache, kept).await, SessionMark::Live);
    assert_eq!(mark(cache, kept_revoked).await, SessionMark::Revoked);
}

/// `mark_revoked` replaces a `Live` mark, and each mark lasts its own TTL, beyond the cap of
/// `Live` marks.
pub async fn cache_mark_revoked_overrides_and_lasts_its_ttl(cache: &dyn AuthCache) {
    let short = SessionId::generate();
    let long = SessionId::generate();
    cache
        .mark_live(short, Duration::from_secs(60))
        .await
        .unwrap();

    cache
        .mark_revoked(&[
            (short, Duration::from_millis(300)),
            (long, Duration::from_secs(60)),
        ])
        .await
        .unwrap();
    cache.mark_revoked(&[]).await.unwrap();

    assert_eq!(mark(cache, short).await, SessionMark::Revoked);
    assert_eq!(mark(cache, long).await, SessionMark::Revoked);
    sleep(Duration::from_millis(300) + PAST).await;
    assert_eq!(mark(cache, short).await, SessionMark::Unknown);
    sleep(TTLS.max_session).await;
    assert_eq!(
        mark(cache, long).await,
        SessionMark::Revoked,
        "a revocation is not capped like a live mark"
    );
    // Revoked again, it is revoked again.
    cache
        .mark_revoked(&[(short, Duration::from_secs(60))])
        .await
        .unwrap();
    assert_eq!(mark(cache, short).await, SessionMark::Revoked);
}

/// `put_user` writes only where no entry is: a profile already cached stays as it was.
pub async fn cache_put_user_never_overrides_an_entry(cache: &dyn AuthCache) {
    let user = user();
    let other = self::user();
    cache.put_user(&user).await.unwrap();
    let renamed = User {
        name: DisplayName::parse("Countess").unwrap(),
        ..user.clone()
    };

    cache.put_user(&renamed).await.unwrap();
    cache.put_user(&other).await.unwrap();

    assert_eq!(profile(cache, user.id).await, Some(user));
    assert_eq!(profile(cache, other.id).await, Some(other));
}

/// `forget_user` drops the profile and, for the tombstone's TTL, keeps `put_user` from
/// caching it again (a reader that loaded it before the change would cache a stale one); then
/// the next `put_user` caches it. Other users are untouched.
pub async fn cache_forget_user_leaves_a_tombstone_for_its_ttl(cache: &dyn AuthCache) {
    let user = user();
    let bystander = self::user();
    let never_cached = self::user();
    cache.put_user(&user).await.unwrap();
    cache.put_user(&bystander).await.unwrap();

    cache.forget_user(user.id).await.unwrap();
    cache.forget_user(never_cached.id).await.unwrap();
    assert_eq!(profile(cache, user.id).await, None);
    cache.put_user(&user).await.unwrap();
    cache.put_user(&never_cached).await.unwrap();
    assert_eq!(profile(cache, user.id).await, None);
    assert_eq!(profile(cache, never_cached.id).await, None);
    assert_eq!(profile(cache, bystander.id).await, Some(bystander));

    sleep(TTLS.tombstone + PAST).await;
    assert_eq!(
        profile(cache, user.id).await,
        None,
        "the tombstone goes, and nothing was cached under it"
    );
    cache.put_user(&user).await.unwrap();
    cache.put_user(&never_cached).await.unwrap();
    assert_eq!(profile(cache, user.id).await, Some(user));
    assert_eq!(profile(cache, never_cached.id).await, Some(never_cached));
}

/// A profile lasts the user TTL.
pub async fn cache_profiles_expire(cache: &dyn AuthCache) {
    let user = user();
    cache.put_user(&user).await.unwrap();
    sleep(TTLS.user / 2).await;
    assert_eq!(profile(cache, user.id).await, Some(user.clone()));
    sleep(TTLS.user / 2 + PAST).await;
    assert_eq!(profile(cache, user.id).await, None);
    cache.put_user(&user).await.unwrap();
    assert_eq!(profile(cache, user.id).await, Some(user));
}
