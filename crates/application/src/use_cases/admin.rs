//! What every admin operation shares: the superuser gate and the error type.

use authd_domain::Protection;

use crate::use_cases::Principal;
use crate::{FieldError, PortError};

/// Why an admin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The caller may not do this; the detail says why.
    #[error("{0}")]
    Forbidden(String),
    /// The named thing does not exist.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The change conflicts with what is stored; the detail says how.
    #[error("{0}")]
    Conflict(String),
    /// One entry per bad field.
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// A protection that refuses an admin action is a `Forbidden` that says which one.
impl From<Protection> for AdminError {
    fn from(protection: Protection) -> Self {
        Self::Forbidden(protection.to_string())
    }
}

/// Admin rights come from the live `is_superuser` flag of the principal (read from the cache
/// or the store on this request), never from the token's `su` claim: a demoted superuser
/// loses access at once.
pub fn require_superuser(principal: &Principal) -> Result<(), AdminError> {
    if principal.user.is_superuser {
        Ok(())
    } else {
        Err(AdminError::Forbidden(
            "superuser rights are required".into(),
        ))
    }
}
