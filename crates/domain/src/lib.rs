//! # authd domain
//!
//! The entities, value objects and rules of authd, free of I/O and of any framework: no async,
//! no database, cache, HTTP or JWT types. Other teams embed this crate to parse emails, apply the
//! password policy or read a [`User`] the same way authd does.
//!
//! Entity fields are public where their type already guarantees validity: text fields are
//! value objects ([`Email`], [`DisplayName`], [`RoleSlug`], [`RoleName`], [`RoleDescription`]),
//! so an invalid name cannot be represented.
//!
//! ```
//! use authd_domain::{Email, PasswordPolicy};
//!
//! let email = Email::parse("  Ada@Example.COM ").unwrap();
//! assert_eq!(email.as_str(), "Ada@Example.COM");
//! assert_eq!(email.normalized(), "ada@example.com");
//!
//! let policy = PasswordPolicy::default();
//! assert!(policy.check("correct horse battery", Some(&email)).is_ok());
//! assert!(policy.check("short", None).is_err());
//! ```
#![deny(missing_docs)]

mod email;
mod ids;
mod names;
mod paging;
mod password;
mod protection;
mod recovery;
mod role;
mod session;
mod throttle;
mod user;

pub use email::{Email, EmailError, email_search_form};
pub use ids::{EmailId, RoleId, SessionId, TokenId, UserId};
pub use names::{DisplayName, DisplayNameError, RoleDescription, RoleName};
pub use paging::{Page, PageError, PerPage, PerPageError};
pub use password::{NewPassword, Password, PasswordError, PasswordHash, PasswordPolicy};
pub use protection::{AdminAction, Protection, check_admin_action};
pub use recovery::{
    DeliveryRetry, EmailKind, EmailRateLimit, LinkPurpose, LinkTemplate, LinkTemplateError,
    LinkToken,
};
pub use role::{Role, RoleRef, RoleSlug, RoleSlugError, RoleTextError};
pub use session::{RefreshVerdict, RotationState, Session, SessionLifetime};
pub use throttle::{Admission, ClientNetwork, IpCap, LoginBackoff, retry_after};
pub use user::User;
