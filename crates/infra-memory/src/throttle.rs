use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use application::PortError;
use application::ports::{LoginThrottle, ThrottleVerdict};
use async_trait::async_trait;
use domain::LoginBackoff;

/// The login throttle of one process: the same rules as the shared Redis throttle, for
/// development mode and as its fallback while Redis is down.
#[derive(Debug)]
pub struct InMemoryLoginThrottle {
    backoff: LoginBackoff,
    ip_limit: u32,
    ip_window: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<String, Account>,
    ips: HashMap<IpAddr, Window>,
}

#[derive(Debug)]
struct Account {
    failures: u32,
    locked_until: Option<Instant>,
    last_failure: Instant,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Counters untouched for this long are dropped: past the longest lock, they decide nothing.
const IDLE: Duration = Duration::from_secs(24 * 60 * 60);

impl InMemoryLoginThrottle {
    /// Back-off per account after `backoff.max_failures()`; at most `ip_limit` failures per IP
    /// per `ip_window`.
    pub fn new(backoff: LoginBackoff, ip_limit: u32, ip_window: Duration) -> Self {
        Self {
            backoff,
            ip_limit,
            ip_window,
            state: Mutex::new(State::default()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State, Instant) -> T) -> T {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if state.accounts.len() + state.ips.len() > 10_000 {
            let window = self.ip_window;
            state
                .accounts
                .retain(|_, account| now.duration_since(account.last_failure) < IDLE);
            state
                .ips
                .retain(|_, ip| now.duration_since(ip.started) < window);
        }
        f(&mut state, now)
    }
}

#[async_trait]
impl LoginThrottle for InMemoryLoginThrottle {
    async fn check(&self, account: &str, ip: Option<IpAddr>) -> Result<ThrottleVerdict, PortError> {
        Ok(self.with(|state, now| {
            let account_wait = state
                .accounts
                .get(account)
                .and_then(|account| account.locked_until)
                .and_then(|until| until.checked_duration_since(now));
            let ip_wait = ip
                .and_then(|ip| state.ips.get(&ip))
                .filter(|window| window.failures >= self.ip_limit)
                .and_then(|window| (window.started + self.ip_window).checked_duration_since(now));
            match account_wait.max(ip_wait) {
                Some(wait) if !wait.is_zero() => ThrottleVerdict::Deny {
                    retry_after: whole_seconds(wait),
                },
                _ => ThrottleVerdict::Allow,
            }
        }))
    }

    async fn record_failure(&self, account: &str, ip: Option<IpAddr>) -> Result<(), PortError> {
        self.with(|state, now| {
            let entry = state.accounts.entry(account.to_owned()).or_insert(Account {
                failures: 0,
                locked_until: None,
                last_failure: now,
            });
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
            if let Some(lock) = self.backoff.lock_after(entry.failures) {
                entry.locked_until = Some(now + lock);
            }
            if let Some(ip) = ip {
                let window = state.ips.entry(ip).or_insert(Window {
                    started: now,
                    failures: 0,
                });
                if now.duration_since(window.started) >= self.ip_window {
                    *window = Window {
                        started: now,
                        failures: 0,
                    };
                }
                window.failures = window.failures.saturating_add(1);
            }
        });
        Ok(())
    }

    async fn record_success(&self, account: &str) -> Result<(), PortError> {
        self.with(|state, _| state.accounts.remove(account));
        Ok(())
    }
}

/// `Retry-After` is whole seconds, rounded up, at least one.
fn whole_seconds(wait: Duration) -> Duration {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Duration::from_secs(seconds.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(ip_limit: u32) -> InMemoryLoginThrottle {
        InMemoryLoginThrottle::new(LoginBackoff::new(5), ip_limit, Duration::from_secs(300))
    }

    #[tokio::test]
    async fn locks_the_account_after_five_failures_and_resets_on_success() {
        let throttle = throttle(100);
        for _ in 0..4 {
            throttle
                .record_failure("ada@example.com", None)
                .await
                .unwrap();
        }
        assert_eq!(
            throttle.check("ada@example.com", None).await.unwrap(),
            ThrottleVerdict::Allow
        );
        throttle
            .record_failure("ada@example.com", None)
            .await
            .unwrap();
        assert_eq!(
            throttle.check("ada@example.com", None).await.unwrap(),
            ThrottleVerdict::Deny {
                retry_after: Duration::from_secs(1)
            }
        );
        assert_eq!(
            throttle.check("bob@example.com", None).await.unwrap(),
            ThrottleVerdict::Allow
        );
        throttle.record_success("ada@example.com").await.unwrap();
        assert_eq!(
            throttle.check("ada@example.com", None).await.unwrap(),
            ThrottleVerdict::Allow
        );
    }

    #[tokio::test]
    async fn each_further_failure_doubles_the_lock() {
        let throttle = throttle(100);
        for _ in 0..7 {
            throttle
                .record_failure("ada@example.com", None)
                .await
                .unwrap();
        }
        assert_eq!(
            throttle.check("ada@example.com", None).await.unwrap(),
            ThrottleVerdict::Deny {
                retry_after: Duration::from_secs(4)
            }
        );
    }

    #[tokio::test]
    async fn caps_failures_per_ip_across_accounts() {
        let throttle = throttle(3);
        let ip: IpAddr = "198.51.100.4".parse().unwrap();
        for n in 0..3 {
            throttle
                .record_failure(&format!("user{n}@example.com"), Some(ip))
                .await
                .unwrap();
        }
        let verdict = throttle
            .check("someone-else@example.com", Some(ip))
            .await
            .unwrap();
        assert!(
            matches!(verdict, ThrottleVerdict::Deny { retry_after } if retry_after.as_secs() >= 299)
        );
        let other: IpAddr = "198.51.100.5".parse().unwrap();
        assert_eq!(
            throttle
                .check("someone-else@example.com", Some(other))
                .await
                .unwrap(),
            ThrottleVerdict::Allow
        );
    }
}
