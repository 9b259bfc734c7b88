//! The one place that builds the fred client.

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use authd_application::PortError;
use fred::clients::{Pool, WithOptions};
use fred::prelude::{
    Builder, ClientLike, Config, EventInterface, Options, PerformanceConfig, ReconnectPolicy,
    TcpConfig,
};
use fred::types::config::UnresponsiveConfig;
use tokio::sync::broadcast::error::RecvError;

use crate::errors::port_error;

/// Connections in the pool by default. fred multiplexes many concurrent commands on each
/// connection, so a few are enough to spread the parsing over cores.
const POOL_SIZE: usize = 4;

/// Reconnection back-off: 50 ms doubling to at most 2 s, forever (0 = no limit), so the service
/// recovers by itself however long Redis was gone.
const RECONNECT_MIN_MS: u32 = 50;
const RECONNECT_MAX_MS: u32 = 2_000;

/// How to reach Redis. Built by the binary from its settings.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://[user:password@]host[:port][/db]` or
    /// `redis-cluster://[user:password@]host:port[?node=host:port...]`, or `rediss://` for TLS
    /// (native-tls over the system's OpenSSL, verifying against the system's CA certificates).
    pub url: String,
    /// Prefix of every key (see the crate docs for the scheme).
    pub prefix: String,
    /// Longest wait for one command (or one pipeline) before it fails as unavailable.
    /// Default 500 ms.
    pub command_timeout: Duration,
    /// Longest wait for a TCP connection and its handshake; also the longest [`connect`] waits
    /// for the first connection before returning anyway. Default 2 s.
    pub connect_timeout: Duration,
    /// Connections of the pool (at least one). Default 4. Each connection's I/O task runs on
    /// the runtime that called [`connect`] or [`open`]: a pool made for one single-threaded
    /// runtime needs only one.
    pub connections: usize,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            prefix: "authd".to_owned(),
            command_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(2),
            connections: POOL_SIZE,
        }
    }
}

// The URL may carry a password: it never reaches a log.
impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redacted(&self.url))
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("connections", &self.connections)
            .finish()
    }
}

/// The URL without its credentials.
fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => "<not a URL>".to_owned(),
    }
}

/// Builds the client and starts connecting, without waiting for Redis to be up.
///
/// Returns as soon as every connection is up, or the first attempt failed, or
/// `connect_timeout` passed, whichever comes first: the server can start while Redis is down,
/// every call then fails fast with `PortError::Unavailable`, and the pool keeps reconnecting in
/// the background (exponential back-off capped at 2 s) until Redis is back. Fails only on a
/// configuration error (a bad URL). Call [`disconnect`] at shutdown.
pub async fn connect(settings: &RedisSettings) -> anyhow::Result<Pool> {
    let pool = build(settings)?;
    let target = redacted(&settings.url);
    match open(&pool, settings).await {
        Opened::Connected => tracing::info!(redis = %target, "connected to Redis"),
        Opened::Refused(error) => tracing::warn!(
            redis = %target,
            error = %error,
            "Redis is unreachable; starting anyway and reconnecting in the background"
        ),
        Opened::TimedOut => tracing::warn!(
            redis = %target,
            "Redis did not answer in time; starting anyway and reconnecting in the background"
        ),
    }
    Ok(pool)
}

/// How [`open`] left a client: it keeps reconnecting in the background unless connected.
#[derive(Debug)]
pub enum Opened {
    /// Every connection is up.
    Connected,
    /// The first attempt failed, for this reason.
    Refused(String),
    /// Nothing answered within `connect_timeout`.
    TimedOut,
}

/// The first half of [`connect`]: the client, not connected yet. Fails only on a bad URL.
pub fn build(settings: &RedisSettings) -> anyhow::Result<Pool> {
    let mut config = Config::from_url(&settings.url).with_context(|| {
        format!(
            "REDIS_URL is not a valid Redis URL: {}",
            redacted(&settings.url)
        )
    })?;
    // `false` puts the first connection under the reconnect policy too, instead of giving up
    // on the first refusal (which would leave a client that never connects).
    config.fail_fast = false;

    let mut builder = Builder::from_config(config);
    let unresponsive = (settings.command_timeout * 4).max(Duration::from_secs(2));
    builder
        .set_performance_config(PerformanceConfig {
            default_command_timeout: settings.command_timeout,
            ..PerformanceConfig::default()
        })
        .with_connection_config(|connection| {
            connection.connection_timeout = settings.connect_timeout;
            connection.internal_command_timeout = settings.connect_timeout;
            connection.tcp = TcpConfig {
                nodelay: Some(true),
                ..TcpConfig::default()
            };
            // A peer that vanished without a reset (a partition) would otherwise keep the
            // connection "up" while every command times out.
            connection.unresponsive = UnresponsiveConfig {
                max_timeout: Some(unresponsive),
                interval: unresponsive / 4,
            };
        })
        .set_policy(ReconnectPolicy::new_exponential(
            0,
            RECONNECT_MIN_MS,
            RECONNECT_MAX_MS,
            2,
        ));
    let pool = builder
        .build_pool(settings.connections.max(1))
        .context("could not build the Redis client")?;
    Ok(pool)
}

/// The second half of [`connect`], which logs what this returns: starts the connections
/// of `pool` (from [`build`] with these settings) on the current runtime, whose thread then
/// does all their I/O, and waits as [`connect`] does.
pub async fn open(pool: &Pool, settings: &RedisSettings) -> Opened {
    // Subscribed before connecting, so the first failure cannot be missed.
    let mut errors = pool.clients().first().map(EventInterface::error_rx);
    // The routing tasks run detached for the life of the pool; the handle is not needed.
    drop(pool.connect());
    let all_connected = async {
        while !pool.clients().iter().all(ClientLike::is_connected) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let first_error = async {
        if let Some(errors) = errors.as_mut() {
            loop {
                match errors.recv().await {
                    Ok((error, _)) => return error.to_string(),
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        }
        std::future::pending().await
    };
    let outcome = tokio::time::timeout(settings.connect_timeout, async {
        tokio::select! {
            () = all_connected => Opened::Connected,
            error = first_error => Opened::Refused(error),
        }
    })
    .await;
    outcome.unwrap_or(Opened::TimedOut)
}

/// One `PING`: `Ok` when Redis answers, `Unavailable(Cache)` when it cannot be reached (for the
/// readiness check).
pub async fn ping(client: &Pool) -> Result<(), PortError> {
    fail_fast(client)
        .ping::<String>(None)
        .await
        .map(drop)
        .map_err(port_error)
}

/// Per-command options: fail at once while disconnected rather than queue until reconnected.
pub(crate) fn options() -> Options {
    Options {
        fail_fast: true,
        ..Options::default()
    }
}

/// The pool with [`options`] applied to every command sent through it.
pub(crate) fn fail_fast(client: &Pool) -> WithOptions<Pool> {
    client.with_options(&options())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_debug_output() {
        let settings = RedisSettings {
            url: "redis://user:s3cret@cache.internal:6379/2".to_owned(),
            ..RedisSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("cache.internal:6379/2"), "{shown}");
    }

    #[tokio::test]
    async fn tls_urls_are_accepted_and_use_tls() {
        let url = "rediss://127.0.0.1:1";
        assert!(Config::from_url(url).unwrap().uses_tls());
        let settings = RedisSettings {
            url: url.to_owned(),
            ..RedisSettings::default()
        };
        // Nothing listens there: the client still starts and keeps trying in the background.
        assert!(connect(&settings).await.is_ok());
    }

    #[tokio::test]
    async fn a_bad_url_is_a_configuration_error() {
        let settings = RedisSettings {
            url: "not a url".to_owned(),
            ..RedisSettings::default()
        };
        assert!(connect(&settings).await.is_err());
    }
}

/// [`authd_application::ports::Probe`] of Redis: [`ping`], failing fast while disconnected and
/// bounded by the command timeout otherwise.
#[derive(Clone)]
pub struct RedisProbe {
    client: Pool,
}

impl RedisProbe {
    /// A probe on `client`.
    pub fn new(client: Pool) -> Self {
        Self { client }
    }
}

#[async_trait::async_trait]
impl authd_application::ports::Probe for RedisProbe {
    async fn ping(&self) -> Result<(), PortError> {
        ping(&self.client).await
    }
}

/// Closes every connection of the pool and stops its reconnection (at shutdown).
pub async fn disconnect(client: &Pool) {
    if let Err(error) = fred::interfaces::ClientLike::quit(client).await {
        tracing::debug!(%error, "Redis quit failed; the connections close with the process");
    }
}
