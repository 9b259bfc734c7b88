//! The port contract suite against the in-memory adapters: the store, the auth cache and the
//! login throttle, each fresh per test.

use authd_application::ports::{AuthCache, LoginThrottle};
use authd_contract::{Store, cache, throttle};
use authd_memory::{InMemoryAuthCache, InMemoryLoginThrottle, InMemoryStore};

async fn with_store(test: impl AsyncFnOnce(Store<'_>)) {
    let store = InMemoryStore::new();
    test(Store {
        users: &store,
        roles: &store,
        sessions: &store,
        links: &store,
        outbox: &store,
    })
    .await;
}

async fn with_cache(test: impl AsyncFnOnce(&dyn AuthCache)) {
    let ttls = cache::TTLS;
    let cache = InMemoryAuthCache::new(ttls.max_session, ttls.user, ttls.tombstone);
    test(&cache).await;
}

async fn with_throttle(test: impl AsyncFnOnce(&dyn LoginThrottle)) {
    let throttle = InMemoryLoginThrottle::new(
        throttle::backoff(),
        throttle::ip_cap(),
        InMemoryLoginThrottle::DEFAULT_CAPACITY,
    );
    test(&throttle).await;
}

authd_contract::store_suite!(with_store);
authd_contract::cache_suite!(with_cache);
authd_contract::throttle_suite!(with_throttle);
