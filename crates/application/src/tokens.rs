//! What tokens carry: the claims the token ports sign and check, and the pair a login or a
//! refresh returns. `ports.rs` uses these types; this module uses no port (`minting.rs` signs a
//! pair through one).

use std::fmt;

use authd_domain::{SessionId, TokenId, User, UserId};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

/// The claims of an access token beyond `iss`, `aud` and `typ`, which the codec adds and checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// `sub`
    pub user_id: UserId,
    /// `sid`
    pub session_id: SessionId,
    /// `jti`
    pub token_id: TokenId,
    /// `iat`
    pub issued_at: DateTime<Utc>,
    /// `exp`
    pub expires_at: DateTime<Utc>,
    /// `email`
    pub email: String,
    /// `role`: the role slug at issue time.
    pub role: String,
    /// `su`: superuser at issue time.
    pub is_superuser: bool,
}

/// The user's fields an access token carries (`email`, `role`, `su`), as they were when it
/// was signed. A rotation stores them with the session, so that a repeat inside the grace
/// window signs the very same access token even when the user changed in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessProfile {
    /// `email`
    pub email: String,
    /// `role`: the role's slug.
    pub role: String,
    /// `su`
    pub is_superuser: bool,
}

impl From<&User> for AccessProfile {
    fn from(user: &User) -> Self {
        Self {
            email: user.email.as_str().to_owned(),
            role: user.role.slug.as_str().to_owned(),
            is_superuser: user.is_superuser,
        }
    }
}

/// The claims of a refresh token beyond `iss`, `aud` and `typ`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshClaims {
    /// `sub`
    pub user_id: UserId,
    /// `sid`
    pub session_id: SessionId,
    /// `jti`
    pub token_id: TokenId,
    /// `iat`
    pub issued_at: DateTime<Utc>,
    /// `exp`
    pub expires_at: DateTime<Utc>,
}

/// The claims of a device token beyond `iss`, `aud` and `typ`: proof that a device signed in to
/// an account before (the `device_token` cookie). `Debug` is safe: no secret is here, the
/// token's strength is its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceClaims {
    /// `sub`: the user who signed in.
    pub user_id: UserId,
    /// `acct`: the account's throttle key (its normalised email) at sign-in, which the cookie
    /// is bound to.
    pub account: String,
    /// `jti`: the device's id, which its own failures count against.
    pub device_id: TokenId,
    /// `iat`
    pub issued_at: DateTime<Utc>,
    /// `exp`
    pub expires_at: DateTime<Utc>,
}

impl DeviceClaims {
    /// How long a device cookie lives: a year, as the contract's `Max-Age=31536000`.
    pub const LIFETIME: TimeDelta = TimeDelta::seconds(31_536_000);
}

/// The identity of a token pair, fixed before it is signed: the `jti` of each token and their
/// common issue time. A rotation stores its successor's sealed, so that a repeat inside the
/// grace window signs the very same pair again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairIds {
    /// The access token's `jti`.
    pub access: TokenId,
    /// The refresh token's `jti`.
    pub refresh: TokenId,
    /// When both are issued, in whole seconds (as JWT times are).
    pub issued_at: DateTime<Utc>,
}

impl PairIds {
    /// Fresh ids for a pair issued at `now`, truncated to whole seconds.
    pub fn generate(now: DateTime<Utc>) -> Self {
        Self {
            access: TokenId::generate(),
            refresh: TokenId::generate(),
            issued_at: now.trunc_subsecs(0),
        }
    }
}

/// An access and a refresh token issued together. `Debug` hides the tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenPair {
    /// When both were issued (whole seconds).
    pub issued_at: DateTime<Utc>,
    /// The signed access token.
    pub access_token: String,
    /// Its expiry.
    pub access_expires_at: DateTime<Utc>,
    /// The signed refresh token.
    pub refresh_token: String,
    /// Its expiry.
    pub refresh_expires_at: DateTime<Utc>,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("issued_at", &self.issued_at)
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use crate::use_cases::fixtures::{now, pair};
    use chrono::TimeDelta;

    #[test]
    fn a_token_pairs_debug_shows_the_times_and_hides_the_tokens() {
        let shown = format!("{:?}", pair("secret"));
        assert_eq!(
            shown,
            format!(
                "TokenPair {{ issued_at: {:?}, access_expires_at: {:?}, refresh_expires_at: {:?}, .. }}",
                now(),
                now() + TimeDelta::minutes(15),
                now() + TimeDelta::days(7),
            )
        );
        assert!(!shown.contains("secret"));
    }
}
