//! Account recovery and address verification: the one-time tokens sent in links, the emails
//! that carry them, and how often an account may be sent one.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// What a link token lets its holder do, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum LinkPurpose {
    /// Prove the account's address is real: `is_verified` becomes true.
    VerifyEmail,
    /// Set a new password without knowing the old one.
    ResetPassword,
}

impl LinkPurpose {
    /// The stable name stored with a token (`verify_email`, `reset_password`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }

    /// The purpose named by [`as_str`](Self::as_str).
    pub fn parse(name: &str) -> Option<Self> {
        [Self::VerifyEmail, Self::ResetPassword]
            .into_iter()
            .find(|purpose| purpose.as_str() == name)
    }

    /// The email that carries a token of this purpose.
    pub fn email(self) -> EmailKind {
        match self {
            Self::VerifyEmail => EmailKind::VerifyEmail,
            Self::ResetPassword => EmailKind::ResetPassword,
        }
    }
}

/// The emails authd sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum EmailKind {
    /// A link that verifies the address (at signup and on request).
    VerifyEmail,
    /// A link that resets the password.
    ResetPassword,
    /// A notice that the password was changed or reset (no link).
    PasswordChanged,
}

impl EmailKind {
    /// Every kind, in a stable order.
    pub const ALL: [Self; 3] = [
        Self::VerifyEmail,
        Self::ResetPassword,
        Self::PasswordChanged,
    ];

    /// The stable name stored in the outbox and used for templates and metrics
    /// (`verify_email`, `reset_password`, `password_changed`).
    ///
    /// ```
    /// use authd_domain::EmailKind;
    ///
    /// for kind in EmailKind::ALL {
    ///     assert_eq!(EmailKind::parse(kind.as_str()), Some(kind));
    /// }
    /// assert_eq!(EmailKind::parse("newsletter"), None);
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::PasswordChanged => "password_changed",
        }
    }

    /// The kind named by [`as_str`](Self::as_str).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Whether the email carries a link with a token.
    pub fn has_link(self) -> bool {
        !matches!(self, Self::PasswordChanged)
    }
}

impl fmt::Display for EmailKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token as a client presents it from a link: 256 random bits in URL-safe base64 without
/// padding, so exactly [`LinkToken::LEN`] characters of `A-Z a-z 0-9 - _`. Anything else
/// cannot be a token authd issued. Its `Debug` output is redacted.
///
/// ```
/// use authd_domain::LinkToken;
///
/// let raw = "q".repeat(LinkToken::LEN);
/// assert_eq!(LinkToken::parse(&raw).unwrap().expose(), raw);
/// assert!(LinkToken::parse("short").is_none());
/// assert!(LinkToken::parse(&"+".repeat(LinkToken::LEN)).is_none());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct LinkToken(String);

impl LinkToken {
    /// The length of a token: 32 bytes in unpadded base64.
    pub const LEN: usize = 43;

    /// The token, when `raw` has the form of one.
    pub fn parse(raw: &str) -> Option<Self> {
        let well_formed = raw.len() == Self::LEN
            && raw
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        well_formed.then(|| Self(raw.to_owned()))
    }

    /// The token itself, to hash or to put in a link.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkToken(***)")
    }
}

/// How often an account may be sent a link email of one purpose: at most one per
/// [`min_interval`](Self::min_interval) and [`per_window`](Self::per_window) per
/// [`window`](Self::window) (API.md: one per 60 s and five per hour).
///
/// ```
/// use authd_domain::EmailRateLimit;
/// use chrono::{TimeDelta, Utc};
/// use std::time::Duration;
///
/// let limit = EmailRateLimit::default();
/// let now = Utc::now();
/// assert_eq!(limit.check(&[], now), Ok(()));
/// assert_eq!(
///     limit.check(&[now - TimeDelta::seconds(20)], now),
///     Err(Duration::from_secs(40))
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmailRateLimit {
    min_interval: Duration,
    per_window: usize,
    window: Duration,
}

impl EmailRateLimit {
    /// At most one email per `min_interval` and `per_window` per `window`.
    pub fn new(min_interval: Duration, per_window: usize, window: Duration) -> Self {
        Self {
            min_interval,
            per_window,
            window,
        }
    }

    /// The shortest time between two emails.
    pub fn min_interval(&self) -> Duration {
        self.min_interval
    }

    /// How many emails fit in one [`window`](Self::window).
    pub fn per_window(&self) -> usize {
        self.per_window
    }

    /// The window the count is taken over.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Whether one more email may go at `now`, given when the earlier ones went (`sent`, in any
    /// order; times older than the window may be included and are ignored). `Err` holds how
    /// long until the next one may go.
    pub fn check(&self, sent: &[DateTime<Utc>], now: DateTime<Utc>) -> Result<(), Duration> {
        let age = |at: &DateTime<Utc>| (now - *at).to_std().unwrap_or_default();
        let recent: Vec<Duration> = sent
            .iter()
            .map(age)
            .filter(|age| *age < self.window)
            .collect();
        let by_interval = recent
            .iter()
            .min()
            .filter(|youngest| **youngest < self.min_interval)
            .map(|youngest| self.min_interval - *youngest);
        let by_window = (recent.len() >= self.per_window)
            .then(|| recent.iter().max())
            .flatten()
            .map(|oldest| self.window - *oldest);
        match by_interval.into_iter().chain(by_window).max() {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }
}

impl Default for EmailRateLimit {
    fn default() -> Self {
        Self::new(Duration::from_secs(60), 5, Duration::from_secs(60 * 60))
    }
}

/// Why a link template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the link must contain {{token}}")]
pub struct LinkTemplateError;

/// Where a link email points: a URL with `{token}` where the token goes
/// (`AUTHD_VERIFY_LINK`, `AUTHD_RESET_LINK`).
///
/// ```
/// use authd_domain::{LinkTemplate, LinkToken};
///
/// let template = LinkTemplate::parse("https://app.example/reset?token={token}").unwrap();
/// let token = LinkToken::parse(&"a".repeat(LinkToken::LEN)).unwrap();
/// assert_eq!(template.link(&token), format!("https://app.example/reset?token={}", "a".repeat(43)));
/// assert!(LinkTemplate::parse("https://app.example/reset").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTemplate(String);

impl LinkTemplate {
    /// The placeholder the token replaces.
    pub const PLACEHOLDER: &'static str = "{token}";

    /// A template, when it has the placeholder.
    pub fn parse(raw: &str) -> Result<Self, LinkTemplateError> {
        if raw.contains(Self::PLACEHOLDER) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(LinkTemplateError)
        }
    }

    /// The link for `token` (a token is URL-safe, so it needs no escaping).
    pub fn link(&self, token: &LinkToken) -> String {
        self.0.replace(Self::PLACEHOLDER, token.expose())
    }

    /// The template as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// When a failed email delivery is tried again: after `base`, doubling per attempt, at most
/// `cap`; after `max_attempts` attempts the email is dead (given up, logged).
///
/// ```
/// use authd_domain::DeliveryRetry;
/// use std::time::Duration;
///
/// let retry = DeliveryRetry::new(Duration::from_secs(30), Duration::from_secs(3600), 4);
/// assert_eq!(retry.after(1), Some(Duration::from_secs(30)));
/// assert_eq!(retry.after(3), Some(Duration::from_secs(120)));
/// assert_eq!(retry.after(4), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryRetry {
    base: Duration,
    cap: Duration,
    max_attempts: u32,
}

impl DeliveryRetry {
    /// Retries after `base`, doubling up to `cap`, for at most `max_attempts` attempts in all
    /// (at least 1).
    pub fn new(base: Duration, cap: Duration, max_attempts: u32) -> Self {
        Self {
            base,
            cap,
            max_attempts: max_attempts.max(1),
        }
    }

    /// How many attempts an email gets.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// How long to wait after the `attempts`-th attempt failed; `None` when that was the last.
    pub fn after(&self, attempts: u32) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let doublings = attempts.saturating_sub(1).min(31);
        let wait = self.base.saturating_mul(1 << doublings);
        Some(wait.min(self.cap))
    }
}

impl Default for DeliveryRetry {
    /// 30 s, doubling, at most an hour between attempts, 12 attempts: about seven hours of
    /// trying before an email is given up.
    fn default() -> Self {
        Self::new(Duration::from_secs(30), Duration::from_secs(60 * 60), 12)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn delivery_back_off_doubles_up_to_its_cap_then_gives_up() {
        let retry = DeliveryRetry::default();
        let waits: Vec<u64> = (1..=12)
            .map(|attempt| retry.after(attempt).map_or(0, |wait| wait.as_secs()))
            .collect();
        assert_eq!(
            waits,
            [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600, 3600, 0]
        );
        assert_eq!(
            DeliveryRetry::new(Duration::from_secs(1), Duration::MAX, 0).after(1),
            None
        );
        assert_eq!(
            DeliveryRetry::new(Duration::from_secs(1), Duration::MAX, 40).after(39),
            Some(Duration::from_secs(1 << 31))
        );
    }

    #[test]
    fn link_templates_need_the_placeholder_and_replace_every_one() {
        assert_eq!(
            LinkTemplate::parse("https://x/{tok}"),
            Err(LinkTemplateError)
        );
        let token = LinkToken::parse(&"b".repeat(LinkToken::LEN)).unwrap();
        let both = LinkTemplate::parse("{token}/{token}").unwrap();
        assert_eq!(both.link(&token), format!("{0}/{0}", "b".repeat(43)));
    }

    fn ago(now: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
        now - TimeDelta::seconds(seconds)
    }

    #[test]
    fn one_email_per_minute_exactly() {
        let limit = EmailRateLimit::default();
        let now = Utc::now();
        assert_eq!(
            limit.check(&[ago(now, 59)], now),
            Err(Duration::from_secs(1))
        );
        assert_eq!(limit.check(&[ago(now, 60)], now), Ok(()));
        assert_eq!(
            limit.check(&[ago(now, 600), ago(now, 0)], now),
            Err(Duration::from_secs(60))
        );
    }

    #[test]
    fn five_emails_per_hour_then_wait_for_the_oldest_to_leave_the_window() {
        let limit = EmailRateLimit::default();
        let now = Utc::now();
        let four = [
            ago(now, 3000),
            ago(now, 2000),
            ago(now, 1000),
            ago(now, 100),
        ];
        assert_eq!(limit.check(&four, now), Ok(()));
        let five = [four.as_slice(), &[ago(now, 90)]].concat();
        assert_eq!(limit.check(&five, now), Err(Duration::from_secs(600)));
        // An email exactly one hour old has left the window.
        let five_one_old = [
            ago(now, 3600),
            ago(now, 2000),
            ago(now, 1000),
            ago(now, 100),
            ago(now, 90),
        ];
        assert_eq!(limit.check(&five_one_old, now), Ok(()));
    }

    #[test]
    fn link_tokens_have_one_exact_form() {
        let good = format!("{}-_", "aZ9".repeat(13) + "xy");
        assert_eq!(good.len(), LinkToken::LEN);
        assert!(LinkToken::parse(&good).is_some());
        assert!(LinkToken::parse(&good[1..]).is_none());
        assert!(LinkToken::parse(&format!("{good}a")).is_none());
        assert!(LinkToken::parse(&format!("{}=", &good[1..])).is_none());
        assert!(LinkToken::parse(&format!("{}é", &good[2..])).is_none());
        assert_eq!(
            format!("{:?}", LinkToken::parse(&good).unwrap()),
            "LinkToken(***)"
        );
    }

    #[test]
    fn a_link_token_debug_hides_the_token() {
        let raw = "s".repeat(LinkToken::LEN);
        let debug = format!("{:?}", LinkToken::parse(&raw).unwrap());
        assert!(!debug.contains(&raw), "{debug}");
        assert_eq!(debug, "LinkToken(***)");
    }

    #[test]
    fn email_kinds_display_their_stable_names() {
        assert_eq!(EmailKind::VerifyEmail.to_string(), "verify_email");
        assert_eq!(EmailKind::ResetPassword.to_string(), "reset_password");
        assert_eq!(EmailKind::PasswordChanged.to_string(), "password_changed");
    }

    #[test]
    fn the_default_rate_limit_is_one_a_minute_and_five_an_hour() {
        let limit = EmailRateLimit::default();
        assert_eq!(limit.min_interval(), Duration::from_secs(60));
        assert_eq!(limit.per_window(), 5);
        assert_eq!(limit.window(), Duration::from_secs(3600));
    }

    #[test]
    fn a_link_template_reads_back_as_given() {
        let raw = "https://app.example/verify?token={token}";
        assert_eq!(LinkTemplate::parse(raw).unwrap().as_str(), raw);
    }

    #[test]
    fn delivery_attempts_default_to_twelve_and_are_at_least_one() {
        assert_eq!(DeliveryRetry::default().max_attempts(), 12);
        assert_eq!(
            DeliveryRetry::new(Duration::from_secs(1), Duration::MAX, 0).max_attempts(),
            1
        );
    }

    #[test]
    fn purposes_and_kinds_round_trip_their_names() {
        for purpose in [LinkPurpose::VerifyEmail, LinkPurpose::ResetPassword] {
            assert_eq!(LinkPurpose::parse(purpose.as_str()), Some(purpose));
            assert_eq!(purpose.email().as_str(), purpose.as_str());
            assert!(purpose.email().has_link());
        }
        assert!(!EmailKind::PasswordChanged.has_link());
        assert_eq!(LinkPurpose::parse("password_changed"), None);
    }
}
