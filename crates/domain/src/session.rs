use chrono::{DateTime, TimeDelta, Utc};

use crate::{SessionId, TokenId, UserId};

/// One login: the tokens issued by it and by its refreshes share its id (`sid`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
/// use authd_domain::SessionLifetime;
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

    /// How long each refresh token lives.
    pub fn refresh_ttl(&self) -> TimeDelta {
        self.refresh_ttl
    }

    /// How long a session lives at most, from login.
    pub fn max_age(&self) -> TimeDelta {
        self.max_age
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
    fn a_lifetime_gives_back_its_two_durations() {
        let lifetime = SessionLifetime::new(TimeDelta::days(7), TimeDelta::days(30));
        assert_eq!(lifetime.refresh_ttl(), TimeDelta::days(7));
        assert_eq!(lifetime.max_age(), TimeDelta::days(30));
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

/// Where a session stands in its refresh-token rotation: the one refresh token that may be
/// exchanged now, and the one exchanged last (still honoured during the grace window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationState {
    /// The `jti` of the newest refresh token: the only one that may be exchanged.
    pub current: TokenId,
    /// The `jti` of the refresh token exchanged last, if any.
    pub previous: Option<TokenId>,
    /// When that exchange happened.
    pub rotated_at: Option<DateTime<Utc>>,
}

/// What presenting a refresh token to a session amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshVerdict {
    /// The session's newest refresh token: exchange it for a successor pair.
    Rotate,
    /// The token exchanged last, presented again inside the grace window (another tab, a lost
    /// response): answer with the same successor pair.
    Replay,
    /// An older token, or the last one after the window: treat as theft and end the session.
    Reuse,
    /// The session is revoked or expired.
    Dead,
}

impl Session {
    /// Judges a refresh token `presented` to this session at `now`.
    ///
    /// ```
    /// use chrono::{TimeDelta, Utc};
    /// use authd_domain::{RefreshVerdict, RotationState, Session, SessionId, TokenId, UserId};
    ///
    /// let now = Utc::now();
    /// let session = Session {
    ///     id: SessionId::generate(), user_id: UserId::generate(), created_at: now,
    ///     last_used_at: now, expires_at: now + TimeDelta::days(7),
    ///     user_agent: None, ip: None, revoked_at: None,
    /// };
    /// let (old, new) = (TokenId::generate(), TokenId::generate());
    /// let state = RotationState { current: new, previous: Some(old), rotated_at: Some(now) };
    /// let grace = TimeDelta::seconds(10);
    /// assert_eq!(session.judge_refresh(&state, new, now, grace), RefreshVerdict::Rotate);
    /// assert_eq!(session.judge_refresh(&state, old, now, grace), RefreshVerdict::Replay);
    /// let later = now + TimeDelta::seconds(11);
    /// assert_eq!(session.judge_refresh(&state, old, later, grace), RefreshVerdict::Reuse);
    /// ```
    pub fn judge_refresh(
        &self,
        state: &RotationState,
        presented: TokenId,
        now: DateTime<Utc>,
        grace: TimeDelta,
    ) -> RefreshVerdict {
        if !self.is_live(now) {
            return RefreshVerdict::Dead;
        }
        if presented == state.current {
            return RefreshVerdict::Rotate;
        }
        let in_grace = state.previous == Some(presented)
            && state
                .rotated_at
                .is_some_and(|at| grace > TimeDelta::zero() && now <= at + grace);
        if in_grace {
            RefreshVerdict::Replay
        } else {
            RefreshVerdict::Reuse
        }
    }
}

#[cfg(test)]
mod rotation_tests {
    use super::*;

    fn live_session(now: DateTime<Utc>) -> Session {
        Session {
            id: SessionId::generate(),
            user_id: UserId::generate(),
            created_at: now,
            last_used_at: now,
            expires_at: now + TimeDelta::days(1),
            user_agent: None,
            ip: None,
            revoked_at: None,
        }
    }

    #[test]
    fn a_token_two_exchanges_old_is_reuse_even_inside_the_window() {
        let now = Utc::now();
        let state = RotationState {
            current: TokenId::generate(),
            previous: Some(TokenId::generate()),
            rotated_at: Some(now),
        };
        let older = TokenId::generate();
        let verdict = live_session(now).judge_refresh(&state, older, now, TimeDelta::seconds(10));
        assert_eq!(verdict, RefreshVerdict::Reuse);
    }

    #[test]
    fn a_zero_window_disables_replay() {
        let now = Utc::now();
        let old = TokenId::generate();
        let state = RotationState {
            current: TokenId::generate(),
            previous: Some(old),
            rotated_at: Some(now),
        };
        let verdict = live_session(now).judge_refresh(&state, old, now, TimeDelta::zero());
        assert_eq!(verdict, RefreshVerdict::Reuse);
    }

    #[test]
    fn a_revoked_session_is_dead_whatever_the_token() {
        let now = Utc::now();
        let mut session = live_session(now);
        session.revoked_at = Some(now);
        let current = TokenId::generate();
        let state = RotationState {
            current,
            previous: None,
            rotated_at: None,
        };
        let verdict = session.judge_refresh(&state, current, now, TimeDelta::seconds(10));
        assert_eq!(verdict, RefreshVerdict::Dead);
    }
}
