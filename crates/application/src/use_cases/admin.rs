//! What every admin operation shares: the superuser gate.

use crate::use_cases::Principal;

/// The caller is not a superuser (as read on this request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the caller is not a superuser")]
pub struct NotSuperuser;

/// Admin rights come from the live `is_superuser` flag of the principal (read from the cache
/// or the store on this request), never from the token's `su` claim: a demoted superuser
/// loses access at once.
pub fn require_superuser(principal: &Principal) -> Result<(), NotSuperuser> {
    if principal.user.is_superuser {
        Ok(())
    } else {
        Err(NotSuperuser)
    }
}

/// Implements `From<NotSuperuser>` for admin error enums with a `NotSuperuser` variant.
macro_rules! not_superuser {
    ($($error:ty),* $(,)?) => {$(
        impl From<$crate::use_cases::admin::NotSuperuser> for $error {
            fn from(_: $crate::use_cases::admin::NotSuperuser) -> Self {
                Self::NotSuperuser
            }
        }
    )*};
}
pub(crate) use not_superuser;
