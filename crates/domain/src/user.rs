use chrono::{DateTime, Utc};

use crate::{DisplayName, Email, RoleRef, UserId};

/// An account. Its password hash is kept apart (see the application's `UserRepository`), so a
/// `User` can be cached, logged or shown without carrying a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct User {
    /// Its id (the `sub` claim).
    pub id: UserId,
    /// Its email, unique on the lowercase form.
    pub email: Email,
    /// Optional display name.
    pub name: Option<DisplayName>,
    /// An inactive user cannot log in and its tokens stop working.
    pub is_active: bool,
    /// Superusers administer users and roles.
    pub is_superuser: bool,
    /// Whether the email was verified (set by administrators).
    pub is_verified: bool,
    /// The one primary admin: a marked account (not an email match), protected from other
    /// superusers and from locking itself out.
    pub is_primary_admin: bool,
    /// The one role the user holds.
    pub role: RoleRef,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When the account last changed.
    pub updated_at: DateTime<Utc>,
}

impl User {
    /// A new self-registered account: active, not a superuser, email not verified, not the
    /// primary admin.
    ///
    /// ```
    /// use chrono::Utc;
    /// use authd_domain::{Email, RoleId, RoleName, RoleRef, RoleSlug, User};
    ///
    /// let role = RoleRef {
    ///     id: RoleId::generate(),
    ///     slug: RoleSlug::parse("application-access").unwrap(),
    ///     name: RoleName::parse("Application access").unwrap(),
    /// };
    /// let user = User::register(Email::parse("ada@example.com").unwrap(), None, role, Utc::now());
    /// assert!(user.is_active && !user.is_superuser && !user.is_verified);
    /// ```
    pub fn register(
        email: Email,
        name: Option<DisplayName>,
        role: RoleRef,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: UserId::generate(),
            email,
            name,
            is_active: true,
            is_superuser: false,
            is_verified: false,
            is_primary_admin: false,
            role,
            created_at: now,
            updated_at: now,
        }
    }

    /// The primary admin, as created at start-up: an active, verified superuser.
    pub fn primary_admin(email: Email, role: RoleRef, now: DateTime<Utc>) -> Self {
        Self {
            is_superuser: true,
            is_verified: true,
            is_primary_admin: true,
            ..Self::register(email, None, role, now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RoleId, RoleName, RoleSlug};

    fn role() -> RoleRef {
        RoleRef {
            id: RoleId::generate(),
            slug: RoleSlug::parse("application-access").unwrap(),
            name: RoleName::parse("Application access").unwrap(),
        }
    }

    #[test]
    fn the_primary_admin_is_an_active_verified_superuser() {
        let email = Email::parse("root@example.com").unwrap();
        let admin = User::primary_admin(email, role(), Utc::now());
        assert!(admin.is_primary_admin);
        assert!(admin.is_superuser);
        assert!(admin.is_verified);
        assert!(admin.is_active);
    }
}
