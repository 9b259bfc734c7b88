use authd_application::ports::Clock;
use chrono::{DateTime, SubsecRound, Utc};

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Microseconds: what Postgres stores, so a time read back equals the time written.
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}
