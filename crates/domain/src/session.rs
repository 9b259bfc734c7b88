use chrono::{DateTime, TimeDelta, Utc};

use crate::{SessionId, UserId};

/// One login: the tokens issued by it and by its refreshes share its id (`sid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// Whose session it is.
    pub user_id: UserId,
    /// When the login happened.
    pub created_at: DateTime<Utc>,
    /// The last login or refresh.
    pub last_used_at: DateTime<Utc>,
    /// The expiry of its current refresh token.
    pub expires_at: DateTime<Utc>,
    /// The client's `User-Agent` at login.
    pub user_agent: Option<String>,
    /// The client's IP at login.
    pub ip: Option<String>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Session {
    /// A session is live until it is revoked or its current refresh token expires.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// How long sessions and their refresh tokens live.
///
/// Each refresh token lives `refresh_ttl` from its own issue, but never past the session's
/// absolute end (`max_age` after login):
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use domain::SessionLifetime;
///
/// let lifetime = SessionLifetime::new(TimeDelta::days(7), TimeDelta::days(30));
/// let login = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
/// let end = lifetime.absolute_end(login);
/// assert_eq!(lifetime.refresh_expiry(login, end), login + TimeDelta::days(7));
/// let late = login + TimeDelta::days(28);
/// assert_eq!(lifetime.refresh_expiry(late, end), end);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLifetime {
    refresh_ttl: TimeDelta,
    max_age: TimeDelta,
}

impl SessionLifetime {
    /// Refresh tokens live `refresh_ttl`; sessions at most `max_age` from login.
    pub fn new(refresh_ttl: TimeDelta, max_age: TimeDelta) -> Self {
        Self {
            refresh_ttl,
            max_age,
        }
    }

    /// When a session opened at `login` must end, refreshes or not.
    pub fn absolute_end(&self, login: DateTime<Utc>) -> DateTime<Utc> {
        login + self.max_age
    }

    /// The expiry of a refresh token issued at `issued_at` in a session ending at `end`.
    pub fn refresh_expiry(&self, issued_at: DateTime<Utc>, end: DateTime<Utc>) -> DateTime<Utc> {
        (issued_at + self.refresh_ttl).min(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(expires_in: TimeDelta, revoked: bool) -> (Session, DateTime<Utc>) {
        let now = Utc::now();
        let session = Session {
            id: SessionId::generate(),
            user_id: UserId::generate(),
            created_at: now,
            last_used_at: now,
            expires_at: now + expires_in,
            user_agent: None,
            ip: None,
            revoked_at: revoked.then_some(now),
        };
        (session, now)
    }

    #[test]
    fn live_until_revoked_or_expired() {
        let (live, now) = session(TimeDelta::minutes(1), false);
        assert!(live.is_live(now));
        let (revoked, now) = session(TimeDelta::minutes(1), true);
        assert!(!revoked.is_live(now));
        let (expired, now) = session(TimeDelta::zero(), false);
        assert!(!expired.is_live(now));
    }
}
