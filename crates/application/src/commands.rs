//! The commands the use cases take: each endpoint's input, parsed once at the edge into domain
//! value objects. A use case that holds a command knows its fields are well formed; what it
//! still checks needs the store (a taken email, an unknown role) and comes back as a typed
//! error of that use case.
//!
//! Several commands are named like the use case that runs them (`commands::SignUp` is run by
//! `use_cases::SignUp`); the module path tells them apart.

use std::net::IpAddr;

use authd_domain::{
    DisplayName, Email, NewPassword, Page, PerPage, RoleDescription, RoleName, RoleSlug,
};

/// A field of a partial update: left as it is, cleared (an explicit `null`, or a blank text
/// where blank means none), or set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    /// Absent: unchanged.
    #[default]
    Keep,
    /// Cleared.
    Clear,
    /// Set to this value.
    Set(T),
}

impl<T> Patch<T> {
    /// A given text's value: `None` (a blank that means none) clears.
    pub fn from_given(value: Option<T>) -> Self {
        value.map_or(Self::Clear, Self::Set)
    }

    /// The change as the store takes it: `None` unchanged, `Some(None)` cleared.
    pub fn into_change(self) -> Option<Option<T>> {
        match self {
            Self::Keep => None,
            Self::Clear => Some(None),
            Self::Set(value) => Some(Some(value)),
        }
    }
}

/// `POST /api/access/signup`.
#[derive(Debug, Clone)]
pub struct SignUp {
    /// The new account's email.
    pub email: Email,
    /// Its password, checked against the policy and the email.
    pub password: NewPassword,
    /// An optional display name.
    pub name: Option<DisplayName>,
}

/// `PATCH /api/access/password`.
#[derive(Debug, Clone)]
pub struct ChangePassword {
    /// What the user believes the password is now (checked like a login password).
    pub current_password: String,
    /// What it should become, checked against the policy and the caller's email.
    pub new_password: NewPassword,
    /// The client's IP, for the login throttle.
    pub ip: Option<IpAddr>,
}

/// The `role=` filter of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleFilter {
    /// Users holding the role with this slug (none when there is no such role).
    Slug(RoleSlug),
    /// A text that cannot be a slug: it matches nobody, as an unknown slug does.
    Unmatchable,
}

/// `GET /api/users`.
#[derive(Debug, Clone, Default)]
pub struct ListUsers {
    /// The page, from 1.
    pub page: Page,
    /// Users per page.
    pub per_page: PerPage,
    /// A case-insensitive substring of the email or the name; `None` or empty: everyone.
    pub q: Option<String>,
    /// Only users holding this role.
    pub role: Option<RoleFilter>,
    /// Only active (or only inactive) users.
    pub is_active: Option<bool>,
}

/// `POST /api/users`.
#[derive(Debug, Clone)]
pub struct CreateUser {
    /// The account's email.
    pub email: Email,
    /// Its password, checked against the policy and the email.
    pub password: NewPassword,
    /// An optional display name.
    pub name: Option<DisplayName>,
    /// The role's slug; the default role when `None`. An unknown one is the use case's
    /// `UnknownRole`.
    pub role: Option<RoleSlug>,
    /// Active unless `Some(false)`.
    pub is_active: Option<bool>,
    /// A superuser when `Some(true)`.
    pub is_superuser: Option<bool>,
    /// Email verified when `Some(true)`.
    pub is_verified: Option<bool>,
}

/// `PATCH /api/users/{id}`: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateUser {
    /// A new email.
    pub email: Option<Email>,
    /// The display name: kept, cleared or set.
    pub name: Patch<DisplayName>,
    /// A new role, by slug (an unknown one is the use case's `UnknownRole`).
    pub role: Option<RoleSlug>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
    /// Promote or demote.
    pub is_superuser: Option<bool>,
    /// Mark the email verified or not.
    pub is_verified: Option<bool>,
    /// A new password, checked against the policy and the patch's email when it has one; the
    /// use case checks it against the stored email otherwise.
    pub password: Option<NewPassword>,
}

/// `POST /api/roles`.
#[derive(Debug, Clone)]
pub struct CreateRole {
    /// Its permanent slug.
    pub slug: RoleSlug,
    /// Its name.
    pub name: RoleName,
    /// An optional description.
    pub description: Option<RoleDescription>,
}

/// `PATCH /api/roles/{id}`.
#[derive(Debug, Clone, Default)]
pub struct UpdateRole {
    /// A new name; `None` leaves it.
    pub name: Option<RoleName>,
    /// The description: kept, cleared or set.
    pub description: Patch<RoleDescription>,
}

/// `POST /api/access/password-reset`.
#[derive(Debug, Clone)]
pub struct RequestPasswordReset {
    /// The address to send the link to, if an active account has it.
    pub email: Email,
    /// The client's IP (the per-network limit).
    pub ip: Option<IpAddr>,
}

/// `POST /api/access/password-reset/confirm`. Its `Debug` output is redacted.
#[derive(Clone)]
pub struct ConfirmPasswordReset {
    /// The token from the link, as given: one that cannot be authd's is simply invalid.
    pub token: String,
    /// The new password, checked against the policy; the use case checks it against the
    /// account's email once the token names the account.
    pub new_password: NewPassword,
}

/// `POST /api/access/verify-email`. Its `Debug` output is redacted.
#[derive(Clone)]
pub struct VerifyEmail {
    /// The token from the link, as given.
    pub token: String,
}

// A token in a log line would be a working link for whoever reads the log.
impl std::fmt::Debug for ConfirmPasswordReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfirmPasswordReset { token: ***, new_password: *** }")
    }
}

impl std::fmt::Debug for VerifyEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyEmail { token: *** }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authd_domain::PasswordPolicy;

    #[test]
    fn commands_holding_a_token_do_not_show_it() {
        let token = "q".repeat(43);
        let confirm = ConfirmPasswordReset {
            token: token.clone(),
            new_password: NewPassword::parse("a new passphrase", &PasswordPolicy::default(), None)
                .unwrap(),
        };
        let verify = VerifyEmail {
            token: token.clone(),
        };
        for shown in [format!("{confirm:?}"), format!("{verify:?}")] {
            assert!(!shown.contains(&token), "{shown}");
            assert!(!shown.contains("passphrase"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
    }
}
