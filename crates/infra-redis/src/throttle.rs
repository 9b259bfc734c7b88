//! The login throttle, with counters shared by every instance.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use application::PortError;
use application::ports::{LoginThrottle, ThrottleVerdict};
use async_trait::async_trait;
use domain::LoginBackoff;
use fred::clients::Pool;
use fred::prelude::{ClientLike, Expiration, KeysInterface, SetOptions};
use fred::types::ExpireOptions;

use crate::client::{fail_fast, options};
use crate::errors::port_error;

/// Abandoned failure counters go away after this long without a failure.
const FAILURES_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// [`LoginThrottle`] on Redis: per-account back-off and a per-IP cap, as the HTTP contract
/// describes them. See the crate docs for the keys.
///
/// The IP rule is a fixed window that opens at the IP's first failure and lasts `ip_window`
/// (the key's own TTL, so no clock is read here). Like any fixed window it can let up to twice
/// `ip_limit` failures through in a short span straddling the end of one window and the start of
/// the next; for a cap meant to blunt credential stuffing, not to count exactly, that is enough.
///
/// When a Redis call fails the same call goes to `fallback` (the per-instance throttle), so
/// throttling never switches off during an outage; counts made there stay there, and Redis
/// takes over again as soon as it answers.
pub struct RedisLoginThrottle {
    client: Pool,
    prefix: String,
    backoff: LoginBackoff,
    ip_limit: u64,
    ip_window: Duration,
    fallback: Arc<dyn LoginThrottle>,
    /// Whether the last Redis call failed: the outage is logged once as a warning when it
    /// starts and once when it ends, not on every login.
    degraded: AtomicBool,
}

impl RedisLoginThrottle {
    /// Default consecutive failures per account before the back-off starts.
    pub const DEFAULT_MAX_FAILURES: u32 = 5;
    /// Default failed logins per IP and window.
    pub const DEFAULT_IP_LIMIT: u32 = 100;
    /// Default IP window.
    pub const DEFAULT_IP_WINDOW: Duration = Duration::from_secs(300);

    /// Back-off per account after `backoff.max_failures()` consecutive failures; at most
    /// `ip_limit` (at least 1) failures per IP per `ip_window`; `fallback` answers while Redis
    /// cannot. Every key starts with `prefix`.
    pub fn new(
        client: Pool,
        prefix: impl Into<String>,
        backoff: LoginBackoff,
        ip_limit: u32,
        ip_window: Duration,
        fallback: Arc<dyn LoginThrottle>,
    ) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            backoff,
            ip_limit: u64::from(ip_limit.max(1)),
            // A zero window would be a `PEXPIRE 0`, deleting the counter it just made.
            ip_window: ip_window.max(Duration::from_millis(1)),
            fallback,
            degraded: AtomicBool::new(false),
        }
    }

    /// The throttle with the default rules: 5 failures, 100 per IP per 5 minutes.
    pub fn with_defaults(
        client: Pool,
        prefix: impl Into<String>,
        fallback: Arc<dyn LoginThrottle>,
    ) -> Self {
        Self::new(
            client,
            prefix,
            LoginBackoff::new(Self::DEFAULT_MAX_FAILURES),
            Self::DEFAULT_IP_LIMIT,
            Self::DEFAULT_IP_WINDOW,
            fallback,
        )
    }

    fn failures_key(&self, account: &str) -> String {
        format!("{}:throttle:fails:{account}", self.prefix)
    }

    fn lock_key(&self, account: &str) -> String {
        format!("{}:throttle:lock:{account}", self.prefix)
    }

    fn ip_key(&self, ip: IpAddr) -> String {
        format!("{}:throttle:ip:{ip}", self.prefix)
    }

    async fn check_redis(
        &self,
        account: &str,
        ip: Option<IpAddr>,
    ) -> Result<ThrottleVerdict, PortError> {
        let lock_key = self.lock_key(account);
        let (lock_ms, ip_window) = match ip {
            None => {
                let lock_ms: i64 = fail_fast(&self.client)
                    .pttl(lock_key)
                    .await
                    .map_err(port_error)?;
                (lock_ms, None)
            }
            Some(ip) => {
                let ip_key = self.ip_key(ip);
                let pipeline = self
                    .client
                    .next_connected()
                    .pipeline()
                    .with_options(&options());
                let _: () = pipeline.pttl(lock_key).await.map_err(port_error)?;
                let _: () = pipeline.get(ip_key.as_str()).await.map_err(port_error)?;
                let _: () = pipeline.pttl(ip_key.as_str()).await.map_err(port_error)?;
                let (lock_ms, failures, window_ms): (i64, Option<u64>, i64) =
                    pipeline.all().await.map_err(port_error)?;
                (lock_ms, Some((failures.unwrap_or(0), window_ms)))
            }
        };

        let account_wait = positive_millis(lock_ms);
        let ip_wait = ip_window
            .filter(|(failures, _)| *failures >= self.ip_limit)
            .and_then(|(_, window_ms)| match window_ms {
                // No TTL: cannot happen with this writer, but a counter without one must not
                // block the IP forever nor let it through; assume a window just began.
                -1 => Some(self.ip_window),
                ms => positive_millis(ms),
            });
        Ok(match account_wait.max(ip_wait) {
            Some(wait) => ThrottleVerdict::Deny {
                retry_after: whole_seconds(wait),
            },
            None => ThrottleVerdict::Allow,
        })
    }

    async fn record_failure_redis(
        &self,
        account: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), PortError> {
        let pipeline = self
            .client
            .next_connected()
            .pipeline()
            .with_options(&options());
        let failures_key = self.failures_key(account);
        let _: () = pipeline
            .incr(failures_key.as_str())
            .await
            .map_err(port_error)?;
        let _: () = pipeline
            .pexpire(failures_key.as_str(), millis(FAILURES_TTL), None)
            .await
            .map_err(port_error)?;
        if let Some(ip) = ip {
            let ip_key = self.ip_key(ip);
            let _: () = pipeline.incr(ip_key.as_str()).await.map_err(port_error)?;
            // NX: the window starts at the first failure and is not pushed back by later ones;
            // a counter the INCR just (re)created gets its TTL here, so none is left without.
            let _: () = pipeline
                .pexpire(
                    ip_key.as_str(),
                    millis(self.ip_window),
                    Some(ExpireOptions::NX),
                )
                .await
                .map_err(port_error)?;
        }
        let replies: Vec<i64> = pipeline.all().await.map_err(port_error)?;
        let failures = replies
            .first()
            .map_or(0, |n| u32::try_from(*n).unwrap_or(u32::MAX));

        if let Some(lock) = self.backoff.lock_after(failures) {
            // SET NX + PEXPIRE GT: the lock ends at the later of its current end and
            // now + `lock`, so two failures racing cannot shorten it.
            let lock_key = self.lock_key(account);
            let pipeline = self
                .client
                .next_connected()
                .pipeline()
                .with_options(&options());
            let _: () = pipeline
                .set(
                    lock_key.as_str(),
                    "1",
                    Some(Expiration::PX(millis(lock))),
                    Some(SetOptions::NX),
                    false,
                )
                .await
                .map_err(port_error)?;
            let _: () = pipeline
                .pexpire(lock_key.as_str(), millis(lock), Some(ExpireOptions::GT))
                .await
                .map_err(port_error)?;
            let _: (Option<String>, i64) = pipeline.all().await.map_err(port_error)?;
        }
        Ok(())
    }

    async fn record_success_redis(&self, account: &str) -> Result<(), PortError> {
        let pipeline = self
            .client
            .next_connected()
            .pipeline()
            .with_options(&options());
        let _: () = pipeline
            .del(self.failures_key(account))
            .await
            .map_err(port_error)?;
        let _: () = pipeline
            .del(self.lock_key(account))
            .await
            .map_err(port_error)?;
        let _: Vec<i64> = pipeline.all().await.map_err(port_error)?;
        Ok(())
    }

    fn redis_answered(&self) {
        if self.degraded.load(Ordering::Relaxed) && self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis answers again; the login throttle uses the shared counters");
        }
    }

    fn redis_failed(&self, call: &'static str, error: &PortError) {
        if self.degraded.swap(true, Ordering::Relaxed) {
            tracing::debug!(call, %error, "login throttle on the per-instance fallback");
        } else {
            tracing::warn!(
                call,
                error = ?error,
                "Redis failed; the login throttle falls back to per-instance counters"
            );
        }
    }
}

#[async_trait]
impl LoginThrottle for RedisLoginThrottle {
    async fn check(&self, account: &str, ip: Option<IpAddr>) -> Result<ThrottleVerdict, PortError> {
        match self.check_redis(account, ip).await {
            Ok(verdict) => {
                self.redis_answered();
                Ok(verdict)
            }
            Err(error) => {
                self.redis_failed("check", &error);
                self.fallback.check(account, ip).await
            }
        }
    }

    async fn record_failure(&self, account: &str, ip: Option<IpAddr>) -> Result<(), PortError> {
        match self.record_failure_redis(account, ip).await {
            Ok(()) => {
                self.redis_answered();
                Ok(())
            }
            Err(error) => {
                self.redis_failed("record_failure", &error);
                self.fallback.record_failure(account, ip).await
            }
        }
    }

    async fn record_success(&self, account: &str) -> Result<(), PortError> {
        // The fallback is reset every time (it is in memory, so cheap): failures it counted
        // during an earlier outage must not lock the account in the next one.
        let fallback = self.fallback.record_success(account).await;
        match self.record_success_redis(account).await {
            Ok(()) => {
                self.redis_answered();
                if let Err(error) = fallback {
                    tracing::warn!(%error, "could not reset the fallback throttle");
                }
                Ok(())
            }
            Err(error) => {
                self.redis_failed("record_success", &error);
                fallback
            }
        }
    }
}

/// A duration in whole milliseconds, at least one, as `PX`/`PEXPIRE` want it.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

/// A `PTTL` reply as a wait: `None` for a missing key (-2), no TTL (-1) or nothing left.
fn positive_millis(ms: i64) -> Option<Duration> {
    u64::try_from(ms)
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

/// `Retry-After` is whole seconds, rounded up, at least one.
fn whole_seconds(wait: Duration) -> Duration {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Duration::from_secs(seconds.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(
            whole_seconds(Duration::from_millis(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            whole_seconds(Duration::from_millis(1000)),
            Duration::from_secs(1)
        );
        assert_eq!(
            whole_seconds(Duration::from_millis(1001)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn pttl_replies_become_waits() {
        assert_eq!(positive_millis(-2), None);
        assert_eq!(positive_millis(-1), None);
        assert_eq!(positive_millis(0), None);
        assert_eq!(positive_millis(1500), Some(Duration::from_millis(1500)));
    }
}
