//! # Redis adapters
//!
//! authd's fast path on Redis (through [fred]): the session revocation marks and the user
//! profile cache ([`RedisAuthCache`], an [`AuthCache`](authd_application::ports::AuthCache)), and the
//! login throttle counters shared by every instance ([`RedisLoginThrottle`], a
//! [`LoginThrottle`](authd_application::ports::LoginThrottle)). [`connect`] builds the client.
//!
//! Postgres stays the source of truth: every key here may vanish (restart without persistence,
//! flush, failover) and a missing key only ever means "ask the store". Depends on the application
//! ports and the domain; nothing above this crate sees a fred type except the client handle that
//! `authd` passes in.
//!
//! ## Key scheme
//!
//! Every key starts with the configured prefix (`AUTHD_REDIS_PREFIX`, default `authd`), so several
//! deployments can share one Redis. Every key has a TTL.
//!
//! | key | value | TTL |
//! | --- | --- | --- |
//! | `{prefix}:session:{sid}` | `1` live, `0` revoked | live: min(asked, `max_session_ttl`); revoked: the session's remaining life |
//! | `{prefix}:user:{uid}` | the user as JSON, or `-` (tombstone: just invalidated) | `user_ttl`; tombstone `tombstone_ttl` |
//! | `{prefix}:throttle:account:{account}` | hash: `f` attempts counted since the last success (normalised email), `u` end of the back-off lock (server ms) | one day, renewed on each attempt |
//! | `{prefix}:throttle:net:{network}` | login attempts and password-reset requests from the network (an IPv4 address, or an IPv6 `/64`) in the current window | the window, from its first attempt |
//!
//! Writes that must not undo a newer decision use `NX`: a `Live` mark never replaces a revoked
//! one, and a profile never replaces a tombstone. Keys that belong together (a session and its
//! user, an account and its IP) hash to different cluster slots, so multi-key reads and writes are
//! pipelines of single-key commands rather than `MGET`/`DEL k1 k2`: one round trip on a single
//! server, and still correct on Redis Cluster. The throttle decides each counter in one Lua
//! script (check, count, answer), reading the time from the server's `TIME`.
//!
//! ## Outages
//!
//! The client fails fast: while Redis is unreachable every call returns
//! [`PortError::Unavailable`](authd_application::PortError::Unavailable) at once (no queueing), and the
//! client reconnects in the background by itself. The throttle answers unavailable too, so
//! logins answer `503` for the outage: its counters are what decides, and counters that
//! started from zero on each instance would unlock every locked account.

mod cache;
mod client;
mod errors;
mod throttle;

pub use cache::RedisAuthCache;
pub use client::{Opened, RedisProbe, RedisSettings, build, connect, disconnect, open, ping};
pub use throttle::RedisLoginThrottle;

/// The client handle every adapter here takes: a small pool of multiplexed connections, cheap to
/// clone. Its command timeout applies to every command; the fail-fast behaviour (no queueing
/// while disconnected) is a per-command option that this crate's adapters and [`ping`] set, so
/// prefer them to raw commands on the pool.
pub use fred::clients::Pool as RedisClient;

use std::sync::Arc;

use authd_application::ports::CachePorts;
use authd_domain::{IpCap, LoginBackoff};

/// The cache's ports on Redis, shared by every instance: the auth cache with its default
/// lifetimes and the login throttle with these rules, all under the key `prefix`.
pub fn cache_ports(
    client: &RedisClient,
    prefix: &str,
    backoff: LoginBackoff,
    ip_cap: IpCap,
) -> CachePorts {
    CachePorts {
        auth: Arc::new(RedisAuthCache::with_defaults(client.clone(), prefix)),
        throttle: Arc::new(RedisLoginThrottle::new(
            client.clone(),
            prefix,
            backoff,
            ip_cap,
        )),
        probe: Arc::new(RedisProbe::new(client.clone())),
    }
}
