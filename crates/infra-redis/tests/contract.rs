//! The cache and throttle contract suites against the Redis adapters (`TEST_REDIS_URL`,
//! default `redis://127.0.0.1:6379`). Each test works under its own key prefix and deletes its
//! keys at the end (every key has a TTL anyway, should a test fail first).

// clippy allows these in test functions only; the fixtures here are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use authd_application::ports::{AuthCache, LoginThrottle};
use authd_contract::{cache, throttle};
use authd_redis::{
    RedisAuthCache, RedisClient, RedisLoginThrottle, RedisSettings, connect, disconnect, ping,
};
use fred::prelude::KeysInterface;
use uuid::Uuid;

/// A fresh prefix and a client connected to the test Redis.
async fn redis() -> (RedisClient, String) {
    let prefix = format!("authd-contract-{}", Uuid::now_v7());
    let settings = RedisSettings {
        url: std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        prefix: prefix.clone(),
        ..RedisSettings::default()
    };
    let client = connect(&settings).await.unwrap();
    ping(&client)
        .await
        .expect("the test Redis must be reachable (set TEST_REDIS_URL)");
    (client, prefix)
}

/// Deletes every key under the prefix, then closes the client.
async fn cleanup(client: &RedisClient, prefix: &str) {
    let mut cursor = "0".to_owned();
    loop {
        let (next, keys): (String, Vec<String>) = client
            .next()
            .scan_page(cursor, format!("{prefix}:*"), Some(100), None)
            .await
            .unwrap();
        for key in keys {
            let _: Result<i64, _> = client.del(key).await;
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    disconnect(client).await;
}

async fn with_cache(test: impl AsyncFnOnce(&dyn AuthCache)) {
    let (client, prefix) = redis().await;
    let ttls = cache::TTLS;
    let cache = RedisAuthCache::new(
        client.clone(),
        prefix.as_str(),
        ttls.max_session,
        ttls.user,
        ttls.tombstone,
    );
    test(&cache).await;
    cleanup(&client, &prefix).await;
}

async fn with_throttle(test: impl AsyncFnOnce(&dyn LoginThrottle)) {
    let (client, prefix) = redis().await;
    let throttle = RedisLoginThrottle::new(
        client.clone(),
        prefix.as_str(),
        throttle::backoff(),
        throttle::ip_cap(),
    );
    test(&throttle).await;
    cleanup(&client, &prefix).await;
}

authd_contract::cache_suite!(with_cache);
authd_contract::throttle_suite!(with_throttle);
