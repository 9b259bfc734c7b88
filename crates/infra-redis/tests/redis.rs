//! The Redis adapters against a real Redis (`TEST_REDIS_URL`, default `redis://127.0.0.1:6379`).
//! Each test works under its own key prefix and deletes its keys at the end.

// clippy.toml allows these inside test functions only; the helpers here are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use authd_application::ports::{
    AuthCache, CachedAuth, LoginThrottle, SessionMark, ThrottleKey, ThrottleVerdict,
};
use authd_application::{Dependency, PortError};
use authd_domain::{
    DisplayName, Email, IpCap, LoginBackoff, RoleId, RoleName, RoleRef, RoleSlug, SessionId,
    TokenId, User, UserId,
};
use authd_redis::{RedisAuthCache, RedisClient, RedisLoginThrottle, RedisSettings, connect, ping};
use chrono::DateTime;
use fred::prelude::{Expiration, KeysInterface};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Helpers

fn settings(prefix: &str) -> RedisSettings {
    RedisSettings {
        url: std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        prefix: prefix.to_owned(),
        ..RedisSettings::default()
    }
}

/// A fresh prefix and a client connected to the test Redis.
async fn redis() -> (RedisClient, String) {
    let prefix = format!("authd-test-{}", Uuid::now_v7());
    let client = connect(&settings(&prefix)).await.unwrap();
    ping(&client)
        .await
        .expect("the test Redis must be reachable (set TEST_REDIS_URL)");
    (client, prefix)
}

/// Every key under the prefix.
async fn keys(client: &RedisClient, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let (next, page): (String, Vec<String>) = client
            .next()
            .scan_page(cursor, format!("{prefix}:*"), Some(100), None)
            .await
            .unwrap();
        found.extend(page);
        if next == "0" {
            return found;
        }
        cursor = next;
    }
}

/// Best effort: every key has a TTL anyway.
async fn cleanup(client: &RedisClient, prefix: &str) {
    for key in keys(client, prefix).await {
        let _: Result<i64, _> = client.del(key).await;
    }
}

fn cache(client: &RedisClient, prefix: &str) -> RedisAuthCache {
    RedisAuthCache::with_defaults(client.clone(), prefix)
}

fn user() -> User {
    User {
        id: UserId::generate(),
        email: Email::parse("Ada.Lovelace@Example.com").unwrap(),
        name: DisplayName::parse("Ada « Countess » Lovelace").unwrap(),
        is_active: true,
        is_superuser: true,
        is_verified: false,
        is_primary_admin: false,
        role: RoleRef {
            id: RoleId::generate(),
            slug: RoleSlug::parse("application-access").unwrap(),
            name: RoleName::parse("Application access").unwrap(),
        },
        created_at: DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap(),
        updated_at: DateTime::from_timestamp(1_700_000_500, 1_000).unwrap(),
    }
}

fn throttle(client: &RedisClient, prefix: &str, ip_limit: u32) -> RedisLoginThrottle {
    RedisLoginThrottle::new(
        client.clone(),
        prefix,
        LoginBackoff::new(5),
        IpCap::new(ip_limit, Duration::from_secs(300)),
    )
}

fn acct(email: &str) -> ThrottleKey {
    ThrottleKey::Account(email.to_owned())
}

fn deny(seconds: u64) -> ThrottleVerdict {
    ThrottleVerdict::Deny {
        retry_after: Duration::from_secs(seconds),
    }
}

const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

// ---------------------------------------------------------------------------------------------
// Connection

#[tokio::test]
async fn ping_answers_when_redis_is_up() {
    let (client, prefix) = redis().await;
    ping(&client).await.unwrap();
    cleanup(&client, &prefix).await;
}

// ---------------------------------------------------------------------------------------------
// Auth cache

#[tokio::test]
async fn mark_live_is_capped_by_the_max_session_ttl() {
    let (client, prefix) = redis().await;
    let cache = RedisAuthCache::new(
        client.clone(),
        prefix.as_str(),
        Duration::from_secs(10),
        Duration::from_secs(300),
        Duration::from_secs(5),
    );
    let session = SessionId::generate();
    cache
        .mark_live(session, Duration::from_secs(3600))
        .await
        .unwrap();

    let ttl: i64 = client
        .pttl(format!("{prefix}:session:{session}"))
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 10_000, "pttl {ttl}");
    cleanup(&client, &prefix).await;
}

#[tokio::test]
async fn mark_revoked_overwrites_live_marks_with_the_given_ttls() {
    let (client, prefix) = redis().await;
    let cache = cache(&client, &prefix);
    let short = SessionId::generate();
    let long = SessionId::generate();
    cache
        .mark_live(short, Duration::from_secs(60))
        .await
        .unwrap();

    cache
        .mark_revoked(&[
            (short, Duration::from_secs(30)),
            (long, Duration::from_secs(3_600)),
        ])
        .await
        .unwrap();
    cache.mark_revoked(&[]).await.unwrap();

    for (session, asked_ms) in [(short, 30_000), (long, 3_600_000)] {
        let cached = cache.lookup(session, UserId::generate()).await.unwrap();
        assert_eq!(cached.session, SessionMark::Revoked);
        let ttl: i64 = client
            .pttl(format!("{prefix}:session:{session}"))
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= asked_ms, "pttl {ttl}, asked {asked_ms}");
    }
    cleanup(&client, &prefix).await;
}

#[tokio::test]
async fn an_unreadable_profile_or_mark_is_a_miss() {
    let (client, prefix) = redis().await;
    let cache = cache(&client, &prefix);
    let user = UserId::generate();
    let session = SessionId::generate();
    let _: () = client
        .set(
            format!("{prefix}:user:{user}"),
            "{\"id\": \"not a user\"}",
            Some(Expiration::EX(60)),
            None,
            false,
        )
        .await
        .unwrap();
    let _: () = client
        .set(
            format!("{prefix}:session:{session}"),
            "maybe",
            Some(Expiration::EX(60)),
            None,
            false,
        )
        .await
        .unwrap();

    assert_eq!(
        cache.lookup(session, user).await.unwrap(),
        CachedAuth {
            session: SessionMark::Unknown,
            user: None
        }
    );
    cleanup(&client, &prefix).await;
}

#[tokio::test]
async fn every_key_written_has_a_ttl() {
    let (client, prefix) = redis().await;
    let cache = cache(&client, &prefix);
    let throttle = throttle(&client, &prefix, 100);
    let user = user();
    cache.put_user(&user).await.unwrap();
    cache
        .mark_live(SessionId::generate(), Duration::from_secs(60))
        .await
        .unwrap();
    cache
        .mark_revoked(&[(SessionId::generate(), Duration::from_secs(60))])
        .await
        .unwrap();
    cache.forget_user(UserId::generate()).await.unwrap();
    for _ in 0..6 {
        throttle
            .admit(&acct("ada@example.com"), Some(IP))
            .await
            .unwrap();
    }

    let keys = keys(&client, &prefix).await;
    assert_eq!(keys.len(), 6, "{keys:?}");
    for key in keys {
        let ttl: i64 = client.pttl(key.as_str()).await.unwrap();
        assert!(ttl > 0, "{key} has pttl {ttl}");
    }
    cleanup(&client, &prefix).await;
}

// ---------------------------------------------------------------------------------------------
// Login throttle

#[tokio::test]
async fn a_device_counts_apart_from_its_account() {
    let (client, prefix) = redis().await;
    let throttle = throttle(&client, &prefix, 100);
    let account = acct("ada@example.com");
    let device = ThrottleKey::Device(TokenId::generate());
    for _ in 0..5 {
        throttle.admit(&account, None).await.unwrap();
    }
    assert_eq!(throttle.admit(&account, None).await.unwrap(), deny(1));
    for _ in 0..5 {
        assert_eq!(
            throttle.admit(&device, None).await.unwrap(),
            ThrottleVerdict::Allow
        );
    }
    assert_eq!(throttle.admit(&device, None).await.unwrap(), deny(1));
    throttle.succeeded(&device, None).await.unwrap();
    assert_eq!(
        throttle.admit(&device, None).await.unwrap(),
        ThrottleVerdict::Allow
    );
    // The device's success did not reset the account.
    assert_eq!(throttle.admit(&account, None).await.unwrap(), deny(1));
    assert!(
        keys(&client, &prefix)
            .await
            .iter()
            .any(|key| key.contains(":throttle:device:")),
    );
    cleanup(&client, &prefix).await;
}

#[tokio::test]
async fn without_an_ip_the_ip_rule_is_skipped() {
    let (client, prefix) = redis().await;
    let throttle = throttle(&client, &prefix, 3);

    for account in [
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "d@example.com",
    ] {
        throttle.admit(&acct(account), None).await.unwrap();
    }
    assert_eq!(
        throttle.admit(&acct("e@example.com"), None).await.unwrap(),
        ThrottleVerdict::Allow
    );
    // Nothing was counted against any network.
    assert!(
        keys(&client, &prefix)
            .await
            .iter()
            .all(|key| !key.contains(":throttle:net:")),
    );
    cleanup(&client, &prefix).await;
}

#[tokio::test]
async fn reset_requests_count_under_the_network_key_logins_use() {
    let (client, prefix) = redis().await;
    let throttle = throttle(&client, &prefix, 3);
    let key = format!("{prefix}:throttle:net:203.0.113.7");

    throttle
        .admit(&acct("a@example.com"), Some(IP))
        .await
        .unwrap();
    assert_eq!(
        throttle.admit_network(IP).await.unwrap(),
        ThrottleVerdict::Allow
    );
    assert_eq!(client.get::<i64, _>(key.as_str()).await.unwrap(), 2);
    assert_eq!(
        keys(&client, &prefix)
            .await
            .iter()
            .filter(|k| k.contains(":throttle:net:"))
            .count(),
        1
    );
    assert_eq!(
        throttle.admit_network(IP).await.unwrap(),
        ThrottleVerdict::Allow
    );
    // The cap is full: both kinds of request are refused, and nothing more is counted.
    assert_eq!(throttle.admit_network(IP).await.unwrap(), deny(300));
    assert_eq!(
        throttle
            .admit(&acct("b@example.com"), Some(IP))
            .await
            .unwrap(),
        deny(300)
    );
    assert_eq!(client.get::<i64, _>(key.as_str()).await.unwrap(), 3);
    let ttl: i64 = client.pttl(key.as_str()).await.unwrap();
    assert!(ttl > 0 && ttl <= 300_000, "pttl {ttl}");
    cleanup(&client, &prefix).await;
}

#[tokio::test]
async fn instances_sharing_a_prefix_share_the_counters() {
    let (client, prefix) = redis().await;
    // A second instance: its own client, the same prefix.
    let other_client = connect(&settings(&prefix)).await.unwrap();
    let first = throttle(&client, &prefix, 5);
    let second = throttle(&other_client, &prefix, 5);
    let account = &acct("ada@example.com");

    for instance in [&first, &second, &first, &second, &first] {
        assert_eq!(
            instance.admit(account, Some(IP)).await.unwrap(),
            ThrottleVerdict::Allow
        );
    }
    assert_eq!(second.admit(account, None).await.unwrap(), deny(1));
    assert!(matches!(
        second
            .admit(&acct("bob@example.com"), Some(IP))
            .await
            .unwrap(),
        ThrottleVerdict::Deny { .. }
    ));

    second.succeeded(account, None).await.unwrap();
    assert_eq!(
        first.admit(account, None).await.unwrap(),
        ThrottleVerdict::Allow
    );
    cleanup(&client, &prefix).await;
}

// ---------------------------------------------------------------------------------------------
// Outage: nothing listens on port 1.

async fn unreachable() -> RedisClient {
    let settings = RedisSettings {
        url: "redis://127.0.0.1:1".to_owned(),
        prefix: format!("authd-test-{}", Uuid::now_v7()),
        ..RedisSettings::default()
    };
    tokio::time::timeout(Duration::from_secs(10), connect(&settings))
        .await
        .expect("connect must return while Redis is down")
        .expect("an unreachable Redis is not a configuration error")
}

fn is_cache_unavailable<T: std::fmt::Debug>(result: Result<T, PortError>) -> bool {
    matches!(result, Err(PortError::Unavailable(Dependency::Cache)))
}

#[tokio::test]
async fn while_redis_is_down_the_cache_answers_unavailable() {
    let client = unreachable().await;
    let cache = RedisAuthCache::with_defaults(client.clone(), "authd-test-down");
    let within = |future| tokio::time::timeout(Duration::from_secs(5), future);

    let lookup = within(cache.lookup(SessionId::generate(), UserId::generate()))
        .await
        .expect("lookup must return while Redis is down");
    assert!(is_cache_unavailable(lookup));
    assert!(is_cache_unavailable(
        cache
            .mark_live(SessionId::generate(), Duration::from_secs(60))
            .await
    ));
    assert!(is_cache_unavailable(
        cache.forget_sessions(&[SessionId::generate()]).await
    ));
    assert!(is_cache_unavailable(
        cache.forget_user(UserId::generate()).await
    ));
    assert!(is_cache_unavailable(ping(&client).await));
}

#[tokio::test]
async fn while_redis_is_down_the_throttle_answers_unavailable() {
    let client = unreachable().await;
    let throttle = throttle(&client, "authd-test-down", 100);
    let account = acct("ada@example.com");
    assert!(is_cache_unavailable(
        throttle.admit(&account, Some(IP)).await
    ));
    assert!(is_cache_unavailable(
        throttle.withdraw(&account, Some(IP)).await
    ));
    assert!(is_cache_unavailable(
        throttle.succeeded(&account, Some(IP)).await
    ));
    assert!(is_cache_unavailable(throttle.admit_network(IP).await));
}

// ---------------------------------------------------------------------------------------------
// Recovery: a TCP proxy in front of the test Redis stands for Redis going away and coming back.

/// The test Redis URL split around its `host:port`: (`scheme://[credentials@]`, `host:port`,
/// `/db?query`).
fn split_test_url() -> (String, String, String) {
    let url = settings("unused").url;
    let (scheme, rest) = url.split_once("://").unwrap();
    let (credentials, rest) = match rest.rsplit_once('@') {
        Some((credentials, rest)) => (format!("{credentials}@"), rest),
        None => (String::new(), rest),
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(end);
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:6379")
    };
    (format!("{scheme}://{credentials}"), host, tail.to_owned())
}

/// Forwards 127.0.0.1:`port` to `target` until aborted; aborting drops every connection. While
/// `stalled` is set, bytes are held instead of forwarded: a peer that stopped answering without
/// closing anything.
async fn proxy(port: u16, target: String, stalled: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((inbound, _)) = listener.accept().await {
            let target = target.clone();
            let stalled = stalled.clone();
            connections.spawn(async move {
                if let Ok(outbound) = tokio::net::TcpStream::connect(target).await {
                    let (client_read, client_write) = inbound.into_split();
                    let (server_read, server_write) = outbound.into_split();
                    tokio::join!(
                        pump(client_read, server_write, stalled.clone()),
                        pump(server_read, client_write, stalled),
                    );
                }
            });
        }
    })
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        while stalled.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// Polls `probe` every 50 ms for up to 10 s.
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn the_client_starts_without_redis_and_recovers_by_itself() {
    let (head, target, tail) = split_test_url();
    // A free port, with nothing listening on it yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let prefix = format!("authd-test-{}", Uuid::now_v7());
    let settings = RedisSettings {
        url: format!("{head}127.0.0.1:{port}{tail}"),
        prefix: prefix.clone(),
        ..RedisSettings::default()
    };
    let client = tokio::time::timeout(Duration::from_secs(10), connect(&settings))
        .await
        .unwrap()
        .unwrap();
    let cache = RedisAuthCache::with_defaults(client.clone(), prefix.as_str());
    let session = SessionId::generate();
    let user = UserId::generate();
    assert!(is_cache_unavailable(cache.lookup(session, user).await));

    // Redis "comes up".
    let running = proxy(port, target.clone(), Arc::default()).await;
    eventually("the client reconnects", || async {
        ping(&client).await.is_ok()
    })
    .await;
    cache
        .mark_live(session, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        cache.lookup(session, user).await.unwrap().session,
        SessionMark::Live
    );

    // Redis "goes away" mid-run: calls fail as unavailable, they do not hang.
    running.abort();
    let _ = running.await;
    eventually("calls fail while Redis is gone", || async {
        is_cache_unavailable(cache.lookup(session, user).await)
    })
    .await;

    // And back again: the same client picks up where it was.
    let running = proxy(port, target, Arc::default()).await;
    eventually("the client reconnects again", || async {
        matches!(
            cache.lookup(session, user).await,
            Ok(CachedAuth {
                session: SessionMark::Live,
                ..
            })
        )
    })
    .await;

    cleanup(&client, &prefix).await;
    running.abort();
}

#[tokio::test]
async fn a_redis_that_stops_answering_times_out_and_the_client_recovers() {
    let (head, target, tail) = split_test_url();
    let stalled = Arc::new(AtomicBool::new(false));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let running = proxy(port, target, stalled.clone()).await;
    let prefix = format!("authd-test-{}", Uuid::now_v7());
    let settings = RedisSettings {
        url: format!("{head}127.0.0.1:{port}{tail}"),
        prefix: prefix.clone(),
        ..RedisSettings::default()
    };
    let client = connect(&settings).await.unwrap();
    let cache = RedisAuthCache::with_defaults(client.clone(), prefix.as_str());
    let session = SessionId::generate();
    let user = UserId::generate();
    cache
        .mark_live(session, Duration::from_secs(60))
        .await
        .unwrap();

    // No reset, no close: only the command timeout can end the wait.
    stalled.store(true, Ordering::Relaxed);
    let lookup = tokio::time::timeout(Duration::from_secs(5), cache.lookup(session, user))
        .await
        .expect("a lookup must not hang on a silent Redis");
    assert!(is_cache_unavailable(lookup));

    stalled.store(false, Ordering::Relaxed);
    eventually("the client answers again", || async {
        matches!(
            cache.lookup(session, user).await,
            Ok(CachedAuth {
                session: SessionMark::Live,
                ..
            })
        )
    })
    .await;

    cleanup(&client, &prefix).await;
    running.abort();
}
