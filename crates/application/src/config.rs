//! The knobs the flows read, set once by the binary.

use authd_domain::{EmailRateLimit, PasswordPolicy, RoleSlug, SessionLifetime};
use chrono::TimeDelta;

/// Token and session lifetimes, the rotation grace window and the password policy.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Lifetime of an access token.
    pub access_ttl: TimeDelta,
    /// Refresh-token lifetime and absolute session lifetime.
    pub lifetime: SessionLifetime,
    /// How long after a rotation the exchanged refresh token still yields the same pair.
    pub refresh_grace: TimeDelta,
    /// Rules for new passwords.
    pub password_policy: PasswordPolicy,
    /// The role given at signup.
    pub default_role: RoleSlug,
    /// Refuse logins of accounts whose address is not verified.
    pub require_verified_email: bool,
    /// Lifetime of a password-reset token.
    pub reset_ttl: TimeDelta,
    /// Lifetime of an address-verification token.
    pub verify_ttl: TimeDelta,
    /// How often an account may be sent a link email of one purpose.
    pub email_limit: EmailRateLimit,
}
