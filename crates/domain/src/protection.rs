use crate::User;

/// What a superuser is about to do to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminAction {
    /// Change fields; says whether the change deactivates or demotes the user.
    Change {
        /// Sets `is_active` to false.
        deactivates: bool,
        /// Sets `is_superuser` to false.
        demotes: bool,
    },
    /// Delete the account.
    Delete,
    /// Revoke every session of the account.
    RevokeSessions,
}

/// Why a superuser may not do an [`AdminAction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Protection {
    /// Only the primary admin may change, delete or log out the primary admin.
    #[error("only the primary admin may change the primary admin")]
    PrimaryAdminProtected,
    /// Nobody may deactivate themselves (the last way in could go).
    #[error("a superuser may not deactivate itself")]
    CannotDeactivateSelf,
    /// Nobody may demote themselves (clear their own `is_superuser`).
    #[error("a superuser may not demote itself")]
    CannotDemoteSelf,
    /// Nobody may delete themselves.
    #[error("a superuser may not delete itself")]
    CannotDeleteSelf,
}

/// The protections of the admin API: only the primary admin may act on the primary admin,
/// and no superuser (the primary admin included) may deactivate, demote or delete itself.
///
/// ```
/// use chrono::Utc;
/// use authd_domain::{AdminAction, Email, Protection, RoleId, RoleName, RoleRef, RoleSlug, User, check_admin_action};
///
/// let role = RoleRef { id: RoleId::generate(), slug: RoleSlug::parse("staff").unwrap(), name: RoleName::parse("Staff").unwrap() };
/// let primary = User::primary_admin(Email::parse("root@example.com").unwrap(), role.clone(), Utc::now());
/// let mut other = User::register(Email::parse("ops@example.com").unwrap(), None, role, Utc::now());
/// other.is_superuser = true;
///
/// assert_eq!(check_admin_action(&other, &primary, AdminAction::Delete), Err(Protection::PrimaryAdminProtected));
/// assert_eq!(check_admin_action(&primary, &primary, AdminAction::Delete), Err(Protection::CannotDeleteSelf));
/// assert_eq!(check_admin_action(&primary, &other, AdminAction::Delete), Ok(()));
/// ```
pub fn check_admin_action(
    actor: &User,
    target: &User,
    action: AdminAction,
) -> Result<(), Protection> {
    let oneself = actor.id == target.id;
    if target.is_primary_admin && !oneself {
        return Err(Protection::PrimaryAdminProtected);
    }
    if !oneself {
        return Ok(());
    }
    match action {
        AdminAction::Change {
            deactivates: true, ..
        } => Err(Protection::CannotDeactivateSelf),
        AdminAction::Change { demotes: true, .. } => Err(Protection::CannotDemoteSelf),
        AdminAction::Delete => Err(Protection::CannotDeleteSelf),
        AdminAction::Change { .. } | AdminAction::RevokeSessions => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Email, RoleId, RoleName, RoleRef, RoleSlug};
    use chrono::Utc;

    fn user(email: &str, superuser: bool) -> User {
        let role = RoleRef {
            id: RoleId::generate(),
            slug: RoleSlug::parse("staff").unwrap(),
            name: RoleName::parse("Staff").unwrap(),
        };
        let mut user = User::register(Email::parse(email).unwrap(), None, role, Utc::now());
        user.is_superuser = superuser;
        user
    }

    fn change(deactivates: bool, demotes: bool) -> AdminAction {
        AdminAction::Change {
            deactivates,
            demotes,
        }
    }

    #[test]
    fn the_primary_admin_is_off_limits_to_other_superusers() {
        let mut primary = user("root@example.com", true);
        primary.is_primary_admin = true;
        let other = user("ops@example.com", true);
        for action in [
            change(false, false),
            change(true, false),
            AdminAction::Delete,
            AdminAction::RevokeSessions,
        ] {
            assert_eq!(
                check_admin_action(&other, &primary, action),
                Err(Protection::PrimaryAdminProtected),
                "{action:?}"
            );
        }
        // It may change itself, and log itself out, but not lock itself out.
        assert_eq!(
            check_admin_action(&primary, &primary, change(false, false)),
            Ok(())
        );
        assert_eq!(
            check_admin_action(&primary, &primary, AdminAction::RevokeSessions),
            Ok(())
        );
        for (action, protection) in [
            (change(true, false), Protection::CannotDeactivateSelf),
            (change(true, true), Protection::CannotDeactivateSelf),
            (change(false, true), Protection::CannotDemoteSelf),
            (AdminAction::Delete, Protection::CannotDeleteSelf),
        ] {
            assert_eq!(
                check_admin_action(&primary, &primary, action),
                Err(protection),
                "{action:?}"
            );
        }
    }

    #[test]
    fn no_superuser_may_lock_itself_out_but_may_act_on_others() {
        let (me, other) = (user("me@example.com", true), user("you@example.com", true));
        for (action, protection) in [
            (change(true, false), Protection::CannotDeactivateSelf),
            (change(false, true), Protection::CannotDemoteSelf),
            (AdminAction::Delete, Protection::CannotDeleteSelf),
        ] {
            assert_eq!(check_admin_action(&me, &me, action), Err(protection));
            assert_eq!(check_admin_action(&me, &other, action), Ok(()));
        }
        assert_eq!(check_admin_action(&me, &me, change(false, false)), Ok(()));
    }
}
