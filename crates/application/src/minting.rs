//! The minting of a token pair, shared by login and refresh.

use authd_domain::{SessionId, TokenId, User};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

use crate::PortError;
use crate::ports::TokenIssuer;
use crate::tokens::{AccessClaims, RefreshClaims, TokenPair};

/// A freshly signed pair and the `jti` of its refresh token.
pub(crate) struct Minted {
    pub pair: TokenPair,
    pub refresh_jti: TokenId,
}

/// Signs a pair for `user` in `session`. JWT times are whole seconds, so `now` is truncated;
/// the access token never outlives the refresh token (nor, so, the session).
pub(crate) fn mint_pair(
    issuer: &dyn TokenIssuer,
    user: &User,
    session: SessionId,
    now: DateTime<Utc>,
    access_ttl: TimeDelta,
    refresh_expires_at: DateTime<Utc>,
) -> Result<Minted, PortError> {
    let now = now.trunc_subsecs(0);
    let refresh_expires_at = refresh_expires_at.trunc_subsecs(0);
    let access_expires_at = (now + access_ttl).min(refresh_expires_at);
    let access = AccessClaims {
        user_id: user.id,
        session_id: session,
        token_id: TokenId::generate(),
        issued_at: now,
        expires_at: access_expires_at,
        email: user.email.as_str().to_owned(),
        role: user.role.slug.as_str().to_owned(),
        is_superuser: user.is_superuser,
    };
    let refresh = RefreshClaims {
        user_id: user.id,
        session_id: session,
        token_id: TokenId::generate(),
        issued_at: now,
        expires_at: refresh_expires_at,
    };
    Ok(Minted {
        pair: TokenPair {
            issued_at: now,
            access_token: issuer.sign_access(&access)?,
            access_expires_at,
            refresh_token: issuer.sign_refresh(&refresh)?,
            refresh_expires_at,
        },
        refresh_jti: refresh.token_id,
    })
}
