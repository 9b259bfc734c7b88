//! The minting of a token pair, shared by login and refresh.

use authd_domain::{SessionId, UserId};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

use crate::PortError;
use crate::ports::TokenIssuer;
use crate::tokens::{AccessClaims, AccessProfile, PairIds, RefreshClaims, TokenPair};

/// Signs the pair `ids` names for `user`, whose access token carries `profile`, in `session`.
/// The refresh token expires at `refresh_expires_at` (in whole seconds, as JWT times are); the
/// access token `access_ttl` after issue, but never after the refresh token (nor, so, the
/// session). The same arguments give the same claims, so a repeat inside the grace window
/// signs the same pair again.
pub(crate) fn mint_pair(
    issuer: &dyn TokenIssuer,
    user: UserId,
    profile: &AccessProfile,
    session: SessionId,
    ids: &PairIds,
    access_ttl: TimeDelta,
    refresh_expires_at: DateTime<Utc>,
) -> Result<TokenPair, PortError> {
    let now = ids.issued_at;
    let refresh_expires_at = refresh_expires_at.trunc_subsecs(0);
    let access_expires_at = (now + access_ttl).min(refresh_expires_at);
    let access = AccessClaims {
        user_id: user,
        session_id: session,
        token_id: ids.access,
        issued_at: now,
        expires_at: access_expires_at,
        email: profile.email.clone(),
        role: profile.role.clone(),
        is_superuser: profile.is_superuser,
    };
    let refresh = RefreshClaims {
        user_id: user,
        session_id: session,
        token_id: ids.refresh,
        issued_at: now,
        expires_at: refresh_expires_at,
    };
    Ok(TokenPair {
        issued_at: now,
        access_token: issuer.sign_access(&access)?,
        access_expires_at,
        refresh_token: issuer.sign_refresh(&refresh)?,
        refresh_expires_at,
    })
}
