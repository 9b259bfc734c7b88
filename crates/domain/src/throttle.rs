use std::time::Duration;

/// The per-account login back-off: after `max_failures` consecutive failures, each further
/// failure locks the account for a growing time (1 s, doubling, capped at 15 minutes).
///
/// ```
/// use std::time::Duration;
/// use domain::LoginBackoff;
///
/// let backoff = LoginBackoff::new(5);
/// assert_eq!(backoff.lock_after(4), None);
/// assert_eq!(backoff.lock_after(5), Some(Duration::from_secs(1)));
/// assert_eq!(backoff.lock_after(7), Some(Duration::from_secs(4)));
/// assert_eq!(backoff.lock_after(40), Some(Duration::from_secs(900)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginBackoff {
    max_failures: u32,
}

impl LoginBackoff {
    /// The first lock.
    pub const BASE: Duration = Duration::from_secs(1);
    /// The longest lock.
    pub const CAP: Duration = Duration::from_secs(15 * 60);

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
        let lock = Self::BASE * 2u32.pow(beyond.min(10));
        Some(lock.min(Self::CAP))
    }
}
