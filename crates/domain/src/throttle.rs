//! The login throttle's arithmetic: back-off steps, the per-IP window, and what a client's
//! network is. Adapters keep the counters (in memory, in Redis); the numbers and the
//! decisions are made here, once.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

/// The per-account login back-off: after `max_failures` consecutive failures, each further
/// attempt inside a growing lock (1 s, doubling, capped at 15 minutes) is refused.
///
/// Attempts are counted when they are admitted, before the password is checked, so of any
/// number of concurrent attempts at most [`max_failures`](Self::max_failures) minus the
/// failures so far are checked.
///
/// ```
/// use std::time::Duration;
/// use authd_domain::{Admission, LoginBackoff};
///
/// let backoff = LoginBackoff::new(5);
/// assert_eq!(backoff.lock_after(4), None);
/// assert_eq!(backoff.lock_after(5), Some(Duration::from_secs(1)));
/// assert_eq!(backoff.lock_after(7), Some(Duration::from_secs(4)));
/// assert_eq!(backoff.lock_after(40), Some(Duration::from_secs(900)));
///
/// // The fifth attempt is admitted and locks the account for a second.
/// assert_eq!(
///     backoff.admit(4, None),
///     Admission::Admit { failures: 5, lock: Some(Duration::from_secs(1)) }
/// );
/// // While the lock lasts, nothing is admitted.
/// assert_eq!(
///     backoff.admit(5, Some(Duration::from_millis(300))),
///     Admission::Refuse { retry_after: Duration::from_secs(1) }
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginBackoff {
    max_failures: u32,
}

/// What the throttle says to one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Check the password; the attempt is already counted as a failure.
    Admit {
        /// The consecutive failures counting this attempt.
        failures: u32,
        /// How long the account is locked from now on, if this attempt reached the back-off.
        lock: Option<Duration>,
    },
    /// Do not check anything; the client may try again after this long (whole seconds).
    Refuse {
        /// The `Retry-After`.
        retry_after: Duration,
    },
}

impl LoginBackoff {
    /// The first lock.
    pub const BASE: Duration = Duration::from_secs(1);
    /// The longest lock.
    pub const CAP: Duration = Duration::from_secs(15 * 60);
    /// How many distinct lock lengths there are (1 s, 2 s, ... up to the cap): the back-off
    /// table an adapter that cannot call [`lock_after`](Self::lock_after) (a Redis script) is
    /// handed by [`steps`](Self::steps).
    pub const STEPS: u32 = 11;

    /// Back-off starting at the `max_failures`-th consecutive failure (at least 1).
    pub fn new(max_failures: u32) -> Self {
        Self {
            max_failures: max_failures.max(1),
        }
    }

    /// Failures tolerated before the first lock.
    pub fn max_failures(&self) -> u32 {
        self.max_failures
    }

    /// How long the account is locked after its `consecutive_failures`-th failure in a row.
    pub fn lock_after(&self, consecutive_failures: u32) -> Option<Duration> {
        let beyond = consecutive_failures.checked_sub(self.max_failures)?;
        // 2^10 s already exceeds the cap; clamping the exponent avoids overflow.
        let lock = Self::BASE * 2u32.pow(beyond.min(Self::STEPS - 1));
        Some(lock.min(Self::CAP))
    }

    /// The lock after the `max_failures`-th failure, the one after, and so on: the last step
    /// holds for every failure beyond.
    ///
    /// ```
    /// use std::time::Duration;
    /// let steps = authd_domain::LoginBackoff::new(5).steps();
    /// assert_eq!(steps.first(), Some(&Duration::from_secs(1)));
    /// assert_eq!(steps.last(), Some(&Duration::from_secs(900)));
    /// ```
    pub fn steps(&self) -> Vec<Duration> {
        (0..Self::STEPS)
            .filter_map(|beyond| self.lock_after(self.max_failures.saturating_add(beyond)))
            .collect()
    }

    /// Decides an attempt on an account that has `failures` consecutive failures and whose
    /// lock, if any, ends in `locked_for`: refused while locked, otherwise admitted and
    /// counted, locking the account when the count reaches the back-off.
    pub fn admit(&self, failures: u32, locked_for: Option<Duration>) -> Admission {
        if let Some(wait) = locked_for.filter(|wait| !wait.is_zero()) {
            return Admission::Refuse {
                retry_after: retry_after(wait),
            };
        }
        let failures = failures.saturating_add(1);
        Admission::Admit {
            failures,
            lock: self.lock_after(failures),
        }
    }
}

/// The per-client cap: at most `limit` failed logins per `window` from one network, the
/// window opening at the first failure.
///
/// ```
/// use std::time::Duration;
/// use authd_domain::{Admission, IpCap};
///
/// let cap = IpCap::new(2, Duration::from_secs(300));
/// assert!(matches!(cap.admit(1, Some(Duration::from_secs(10))), Admission::Admit { failures: 2, .. }));
/// assert_eq!(
///     cap.admit(2, Some(Duration::from_millis(9_500))),
///     Admission::Refuse { retry_after: Duration::from_secs(10) }
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpCap {
    limit: u32,
    window: Duration,
}

impl IpCap {
    /// At most `limit` (at least 1) failures per `window` (at least 1 ms).
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window: window.max(Duration::from_millis(1)),
        }
    }

    /// Failures allowed per window.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The window's length.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Decides an attempt from a network that has `failures` in a window ending in
    /// `window_left` (`None` when no window is open, which resets the count).
    pub fn admit(&self, failures: u32, window_left: Option<Duration>) -> Admission {
        let open = window_left.filter(|left| !left.is_zero());
        let failures = if open.is_some() { failures } else { 0 };
        match open {
            Some(left) if failures >= self.limit => Admission::Refuse {
                retry_after: retry_after(left),
            },
            _ => Admission::Admit {
                failures: failures.saturating_add(1),
                lock: None,
            },
        }
    }
}

/// A `Retry-After`: whole seconds, rounded up, at least one.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(authd_domain::retry_after(Duration::from_millis(1)), Duration::from_secs(1));
/// assert_eq!(authd_domain::retry_after(Duration::from_millis(1001)), Duration::from_secs(2));
/// ```
pub fn retry_after(wait: Duration) -> Duration {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Duration::from_secs(seconds.max(1))
}

/// The network a client's address counts for: an IPv4 address itself (also when it arrives
/// IPv4-mapped, `::ffff:a.b.c.d`), an IPv6 address's /64, which is what one subscriber
/// typically holds, so hopping addresses inside it gains nothing.
///
/// ```
/// use authd_domain::ClientNetwork;
///
/// let a = ClientNetwork::of("2001:db8:1:2:aaaa::1".parse().unwrap());
/// let b = ClientNetwork::of("2001:db8:1:2:bbbb::9".parse().unwrap());
/// assert_eq!(a, b);
/// assert_eq!(a.to_string(), "2001:db8:1:2::/64");
/// assert_eq!(ClientNetwork::of("::ffff:192.0.2.7".parse().unwrap()).to_string(), "192.0.2.7");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientNetwork(IpAddr);

impl ClientNetwork {
    /// The network `ip` counts for.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !u128::from(u64::MAX);
                    Self(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

impl fmt::Display for ClientNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_start_at_max_failures_and_double_up_to_the_cap() {
        let backoff = LoginBackoff::new(3);
        assert_eq!(backoff.max_failures(), 3);
        assert_eq!(backoff.lock_after(2), None);
        let locks: Vec<u64> = (3..16)
            .map(|n| backoff.lock_after(n).unwrap().as_secs())
            .collect();
        assert_eq!(
            locks,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]
        );
        assert_eq!(backoff.lock_after(u32::MAX), Some(LoginBackoff::CAP));
        assert_eq!(LoginBackoff::new(0).max_failures(), 1);
    }

    #[test]
    fn the_steps_are_the_locks_from_the_first_to_the_cap() {
        let steps: Vec<u64> = LoginBackoff::new(5)
            .steps()
            .iter()
            .map(Duration::as_secs)
            .collect();
        assert_eq!(steps, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900]);
    }

    #[test]
    fn admission_counts_the_attempt_and_locks_at_the_threshold() {
        let backoff = LoginBackoff::new(5);
        assert_eq!(
            backoff.admit(0, None),
            Admission::Admit {
                failures: 1,
                lock: None
            }
        );
        assert_eq!(
            backoff.admit(3, Some(Duration::ZERO)),
            Admission::Admit {
                failures: 4,
                lock: None
            }
        );
        assert_eq!(
            backoff.admit(6, None),
            Admission::Admit {
                failures: 7,
                lock: Some(Duration::from_secs(4))
            }
        );
        assert_eq!(
            backoff.admit(1, Some(Duration::from_millis(2_001))),
            Admission::Refuse {
                retry_after: Duration::from_secs(3)
            }
        );
    }

    #[test]
    fn the_ip_cap_refuses_at_the_limit_until_the_window_ends() {
        let cap = IpCap::new(3, Duration::from_secs(60));
        assert_eq!((cap.limit(), cap.window()), (3, Duration::from_secs(60)));
        let left = Some(Duration::from_secs(30));
        assert_eq!(
            cap.admit(2, left),
            Admission::Admit {
                failures: 3,
                lock: None
            }
        );
        assert_eq!(
            cap.admit(3, left),
            Admission::Refuse {
                retry_after: Duration::from_secs(30)
            }
        );
        // A closed window starts again from zero.
        assert_eq!(
            cap.admit(99, None),
            Admission::Admit {
                failures: 1,
                lock: None
            }
        );
        assert_eq!(
            cap.admit(99, Some(Duration::ZERO)),
            Admission::Admit {
                failures: 1,
                lock: None
            }
        );
        assert_eq!(IpCap::new(0, Duration::ZERO).limit(), 1);
        assert_eq!(
            IpCap::new(0, Duration::ZERO).window(),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(retry_after(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(retry_after(Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(
            retry_after(Duration::from_nanos(2_000_000_001)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn networks_group_ipv6_by_64_and_unmap_ipv4() {
        let net = |s: &str| ClientNetwork::of(s.parse().unwrap());
        assert_eq!(net("203.0.113.9"), net("::ffff:203.0.113.9"));
        assert_ne!(net("203.0.113.9"), net("203.0.113.10"));
        assert_eq!(net("2001:db8::1"), net("2001:db8::ffff:ffff:ffff:ffff"));
        assert_ne!(net("2001:db8::1"), net("2001:db8:0:1::1"));
        assert_eq!(net("2001:db8::1").to_string(), "2001:db8::/64");
        assert_eq!(net("::1").to_string(), "::/64");
    }
}
