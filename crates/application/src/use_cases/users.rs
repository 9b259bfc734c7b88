use std::sync::Arc;

use authd_domain::{
    AdminAction, NewPassword, Protection, RoleRef, RoleSlug, User, UserId, check_admin_action,
};

use crate::commands::{self, RoleFilter};
use crate::ports::{
    self, AuthCache, Clock, PasswordHasher, RoleRepository, SessionRepository, UserChanges,
    UserPage, UserQuery, UserRepository,
};
use crate::revocation::Revocation;
use crate::use_cases::admin::{not_superuser, require_superuser};
use crate::use_cases::{Principal, SessionView};
use crate::{AuthSettings, PortError};

/// Why listing users failed.
#[derive(Debug, thiserror::Error)]
pub enum ListUsersError {
    /// The caller is not a superuser.
    #[error("the caller is not a superuser")]
    NotSuperuser,
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why reading a user (or its sessions) failed.
#[derive(Debug, thiserror::Error)]
pub enum GetUserError {
    /// The caller is not a superuser.
    #[error("the caller is not a superuser")]
    NotSuperuser,
    /// There is no such user.
    #[error("no such user")]
    NotFound,
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why creating a user failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// The caller is not a superuser.
    #[error("the caller is not a superuser")]
    NotSuperuser,
    /// No role has the command's slug.
    #[error("no role has this slug")]
    UnknownRole,
    /// Another user has the email.
    #[error("the email is taken")]
    EmailTaken,
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why changing a user failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateUserError {
    /// The caller is not a superuser.
    #[error("the caller is not a superuser")]
    NotSuperuser,
    /// There is no such user.
    #[error("no such user")]
    NotFound,
    /// A protection forbids the change (the primary admin, or locking oneself out).
    #[error(transparent)]
    Protected(Protection),
    /// No role has the patch's slug.
    #[error("no role has this slug")]
    UnknownRole,
    /// The new password is the email the account keeps (the patch does not change it).
    #[error("the new password is the account's email")]
    PasswordIsEmail,
    /// Another user has the new email.
    #[error("the email is taken")]
    EmailTaken,
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why deleting a user, or revoking its sessions, failed.
#[derive(Debug, thiserror::Error)]
pub enum DeleteUserError {
    /// The caller is not a superuser.
    #[error("the caller is not a superuser")]
    NotSuperuser,
    /// There is no such user.
    #[error("no such user")]
    NotFound,
    /// A protection forbids it (the primary admin, or deleting oneself).
    #[error(transparent)]
    Protected(Protection),
    /// A dependency failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

not_superuser!(
    ListUsersError,
    GetUserError,
    CreateUserError,
    UpdateUserError,
    DeleteUserError
);

impl From<Protection> for UpdateUserError {
    fn from(protection: Protection) -> Self {
        Self::Protected(protection)
    }
}

impl From<Protection> for DeleteUserError {
    fn from(protection: Protection) -> Self {
        Self::Protected(protection)
    }
}

/// Lists users, a page at a time.
pub struct ListUsers {
    pub users: Arc<dyn UserRepository>,
}

impl ListUsers {
    /// One page of the matching users and their total.
    pub async fn execute(
        &self,
        principal: &Principal,
        command: commands::ListUsers,
    ) -> Result<UserPage, ListUsersError> {
        require_superuser(principal)?;
        let role = match command.role {
            // A slug that cannot exist matches nobody, as an unknown one does.
            Some(RoleFilter::Unmatchable) => {
                return Ok(UserPage {
                    items: Vec::new(),
                    total: 0,
                });
            }
            Some(RoleFilter::Slug(slug)) => Some(slug),
            None => None,
        };
        let query = UserQuery {
            page: command.page.get(),
            per_page: command.per_page.get(),
            q: command.q.filter(|q| !q.is_empty()),
            role,
            is_active: command.is_active,
        };
        Ok(self.users.list(&query).await?)
    }
}

/// Reads one user.
pub struct GetUser {
    pub users: Arc<dyn UserRepository>,
}

impl GetUser {
    /// The user with this id.
    pub async fn execute(&self, principal: &Principal, id: UserId) -> Result<User, GetUserError> {
        require_superuser(principal)?;
        self.users
            .find_by_id(id)
            .await?
            .ok_or(GetUserError::NotFound)
    }
}

/// Creates a user with any flags (never a second primary admin).
pub struct CreateUser {
    pub users: Arc<dyn UserRepository>,
    pub roles: Arc<dyn RoleRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub clock: Arc<dyn Clock>,
    pub settings: AuthSettings,
}

impl CreateUser {
    /// Creates the user, with the command's role or the default one.
    pub async fn execute(
        &self,
        principal: &Principal,
        command: commands::CreateUser,
    ) -> Result<User, CreateUserError> {
        require_superuser(principal)?;
        let slug = command
            .role
            .unwrap_or_else(|| self.settings.default_role.clone());
        let role = find_role(self.roles.as_ref(), &slug)
            .await?
            .ok_or(CreateUserError::UnknownRole)?;
        let hash = self.hasher.hash(command.password.password()).await?;
        let mut user = User::register(command.email, command.name, role, self.clock.now());
        user.is_active = command.is_active.unwrap_or(true);
        user.is_superuser = command.is_superuser.unwrap_or(false);
        user.is_verified = command.is_verified.unwrap_or(false);
        self.users
            .create(&user, &hash, None)
            .await
            .map_err(|error| match error {
                ports::CreateUserError::EmailTaken => CreateUserError::EmailTaken,
                ports::CreateUserError::Port(error) => error.into(),
            })?;
        Ok(user)
    }

    /// Whether a role has this slug: the rule behind [`CreateUserError::UnknownRole`], for an
    /// edge whose parse of the command already failed and that answers every bad field at
    /// once.
    pub async fn role_exists(&self, slug: &RoleSlug) -> Result<bool, PortError> {
        role_exists(self.roles.as_ref(), slug).await
    }
}

/// Changes a user. Deactivation and a new password revoke the user's sessions; every change
/// invalidates the cached profile, so role, superuser and activity changes apply to the
/// user's very next request.
pub struct UpdateUser {
    pub users: Arc<dyn UserRepository>,
    pub roles: Arc<dyn RoleRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub cache: Arc<dyn AuthCache>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub clock: Arc<dyn Clock>,
    pub settings: AuthSettings,
}

impl UpdateUser {
    /// Applies the patch.
    pub async fn execute(
        &self,
        principal: &Principal,
        id: UserId,
        command: commands::UpdateUser,
    ) -> Result<User, UpdateUserError> {
        require_superuser(principal)?;
        let action = AdminAction::Change {
            deactivates: command.is_active == Some(false),
            demotes: command.is_superuser == Some(false),
        };
        let target = self
            .users
            .find_by_id(id)
            .await?
            .ok_or(UpdateUserError::NotFound)?;
        check_admin_action(&principal.user, &target, action)?;
        let role = match &command.role {
            Some(slug) => Some(
                find_role(self.roles.as_ref(), slug)
                    .await?
                    .ok_or(UpdateUserError::UnknownRole)?,
            ),
            None => None,
        };
        // The edge checked the password against the patch's email; the one kept is here.
        if command.email.is_none()
            && command
                .password
                .as_ref()
                .is_some_and(|password| password.is_email(&target.email))
        {
            return Err(UpdateUserError::PasswordIsEmail);
        }
        let password_hash = match &command.password {
            Some(password) => Some(self.hasher.hash(password.password()).await?),
            None => None,
        };
        let changes = UserChanges {
            email: command.email,
            name: command.name.into_change(),
            role: role.map(|role| role.id),
            is_active: command.is_active,
            is_superuser: command.is_superuser,
            is_verified: command.is_verified,
            password_hash,
        };
        let revoke = changes.is_active == Some(false) || changes.password_hash.is_some();

        let now = self.clock.now();
        // Invalidate before the change (a cache that cannot be reached fails it here, changing
        // nothing), and again after, in case a reader cached the old profile in between.
        self.cache.forget_user(id).await?;
        let update = || self.users.update(id, &changes, revoke, now);
        let updated = if revoke {
            Revocation::new(&*self.sessions, &*self.cache)
                .revoke_all_by(id, now, update)
                .await
        } else {
            update().await
        };
        let (user, _revoked) = updated
            .map_err(|error| match error {
                ports::CreateUserError::EmailTaken => UpdateUserError::EmailTaken,
                ports::CreateUserError::Port(error) => error.into(),
            })?
            .ok_or(UpdateUserError::NotFound)?;
        if let Err(error) = self.cache.forget_user(id).await {
            tracing::warn!(%error, "could not invalidate the cached user again");
        }
        Ok(user)
    }

    /// The rules behind [`UpdateUserError::UnknownRole`] and
    /// [`UpdateUserError::PasswordIsEmail`], for an edge whose parse of the patch already failed
    /// and that answers every bad field at once: whether `role` names no role, and whether
    /// `password` is the email the user keeps (when `changes_email` is false). The second needs
    /// the user: with no `id` (a bad path id) or no such user it is not checked, the parse's
    /// 422 coming first. [`Self::execute`] checks both again on a valid patch.
    pub async fn store_errors(
        &self,
        id: Option<UserId>,
        role: Option<&RoleSlug>,
        password: Option<&NewPassword>,
        changes_email: bool,
    ) -> Result<StoreFieldErrors, PortError> {
        let unknown_role = match role {
            Some(slug) => !role_exists(self.roles.as_ref(), slug).await?,
            None => false,
        };
        let password_is_email = match (id, password) {
            (Some(id), Some(password)) if !changes_email => self
                .users
                .find_by_id(id)
                .await?
                .is_some_and(|target| password.is_email(&target.email)),
            _ => false,
        };
        Ok(StoreFieldErrors {
            unknown_role,
            password_is_email,
        })
    }
}

/// What [`UpdateUser::store_errors`] found wrong with a patch whose parse failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreFieldErrors {
    /// No role has the patch's slug.
    pub unknown_role: bool,
    /// The new password is the email the account keeps.
    pub password_is_email: bool,
}

/// Deletes a user and its sessions.
pub struct DeleteUser {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub cache: Arc<dyn AuthCache>,
    pub clock: Arc<dyn Clock>,
}

impl DeleteUser {
    /// Deletes the user.
    pub async fn execute(&self, principal: &Principal, id: UserId) -> Result<(), DeleteUserError> {
        require_superuser(principal)?;
        let target = self
            .users
            .find_by_id(id)
            .await?
            .ok_or(DeleteUserError::NotFound)?;
        check_admin_action(&principal.user, &target, AdminAction::Delete)?;
        let now = self.clock.now();
        self.cache.forget_user(id).await?;
        Revocation::new(&*self.sessions, &*self.cache)
            .revoke_all_by(id, now, || self.users.delete(id, now))
            .await?
            .ok_or(DeleteUserError::NotFound)?;
        Ok(())
    }
}

/// Lists a user's live sessions (`current` is always false).
pub struct ListUserSessions {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub clock: Arc<dyn Clock>,
}

impl ListUserSessions {
    /// The user's live sessions, newest first.
    pub async fn execute(
        &self,
        principal: &Principal,
        id: UserId,
    ) -> Result<Vec<SessionView>, GetUserError> {
        require_superuser(principal)?;
        self.users
            .find_by_id(id)
            .await?
            .ok_or(GetUserError::NotFound)?;
        let sessions = self.sessions.list_live(id, self.clock.now()).await?;
        Ok(sessions
            .into_iter()
            .map(|session| SessionView {
                session,
                current: false,
            })
            .collect())
    }
}

/// Revokes every session of a user.
pub struct RevokeUserSessions {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub cache: Arc<dyn AuthCache>,
    pub clock: Arc<dyn Clock>,
}

impl RevokeUserSessions {
    /// Revokes them all.
    pub async fn execute(&self, principal: &Principal, id: UserId) -> Result<(), DeleteUserError> {
        require_superuser(principal)?;
        let target = self
            .users
            .find_by_id(id)
            .await?
            .ok_or(DeleteUserError::NotFound)?;
        check_admin_action(&principal.user, &target, AdminAction::RevokeSessions)?;
        Revocation::new(&*self.sessions, &*self.cache)
            .revoke_all(id, self.clock.now())
            .await?;
        Ok(())
    }
}

/// Whether a role has this slug: the one rule behind both `UnknownRole` errors, for edges
/// whose parse already failed.
async fn role_exists(roles: &dyn RoleRepository, slug: &RoleSlug) -> Result<bool, PortError> {
    Ok(find_role(roles, slug).await?.is_some())
}

/// The role with this slug, `None` when there is none.
async fn find_role(
    roles: &dyn RoleRepository,
    slug: &RoleSlug,
) -> Result<Option<RoleRef>, PortError> {
    Ok(roles.find_by_slug(slug).await?.map(|role| role.to_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dependency;
    use crate::commands::Patch;
    use crate::ports::{
        MockAuthCache, MockPasswordHasher, MockRoleRepository, MockSessionRepository,
        MockUserRepository,
    };
    use crate::use_cases::fixtures::*;
    use authd_domain::{DisplayName, Email, NewPassword, Page, PasswordHash, PerPage, SessionId};
    use mockall::Sequence;

    fn new_password(raw: &str) -> NewPassword {
        NewPassword::parse(raw, &settings().password_policy, None).unwrap()
    }

    fn new_user(email: &str, password: &str) -> commands::CreateUser {
        let email = Email::parse(email).unwrap();
        let password = NewPassword::parse(password, &settings().password_policy, Some(&email));
        commands::CreateUser {
            email,
            password: password.unwrap(),
            name: None,
            role: None,
            is_active: None,
            is_superuser: None,
            is_verified: None,
        }
    }

    fn member() -> User {
        let mut member = user();
        member.id = UserId::generate();
        member
    }

    fn roles_knowing(slug: &'static str) -> MockRoleRepository {
        let mut roles = MockRoleRepository::new();
        roles
            .expect_find_by_slug()
            .returning(move |wanted| Ok((wanted.as_str() == slug).then(|| role(slug))));
        roles
    }

    fn relaxed_cache() -> MockAuthCache {
        let mut cache = MockAuthCache::new();
        cache.expect_forget_user().returning(|_| Ok(()));
        cache.expect_forget_sessions().returning(|_| Ok(()));
        cache.expect_mark_revoked().returning(|_| Ok(()));
        cache
    }

    fn update_use_case(
        users: MockUserRepository,
        sessions: MockSessionRepository,
        cache: MockAuthCache,
    ) -> UpdateUser {
        UpdateUser {
            users: Arc::new(users),
            roles: Arc::new(roles_knowing("editors")),
            sessions: Arc::new(sessions),
            cache: Arc::new(cache),
            hasher: Arc::new(hashing("a new long password", "$argon2id$new")),
            clock: fixed_clock(),
            settings: settings(),
        }
    }

    /// A user repository that finds `target` by its id (and nothing else).
    fn users_holding(target: &User) -> MockUserRepository {
        let mut users = MockUserRepository::new();
        let (id, found) = (target.id, target.clone());
        users
            .expect_find_by_id()
            .withf(move |wanted| *wanted == id)
            .returning(move |_| Ok(Some(found.clone())));
        users
    }

    #[tokio::test]
    async fn non_superusers_are_forbidden_before_any_store_call() {
        let caller = Principal {
            user: user(),
            session_id: SessionId::generate(),
        };
        let users: Arc<dyn UserRepository> = Arc::new(MockUserRepository::new());
        let list = ListUsers {
            users: users.clone(),
        }
        .execute(&caller, commands::ListUsers::default())
        .await;
        assert!(matches!(list, Err(ListUsersError::NotSuperuser)));
        assert!(matches!(
            GetUser { users }.execute(&caller, UserId::generate()).await,
            Err(GetUserError::NotSuperuser)
        ));
    }

    #[tokio::test]
    async fn listing_passes_the_filters_and_an_impossible_role_matches_nobody() {
        let list = ListUsers {
            users: Arc::new(MockUserRepository::new()),
        };
        let impossible = commands::ListUsers {
            role: Some(RoleFilter::Unmatchable),
            ..Default::default()
        };
        assert_eq!(
            list.execute(&superuser(), impossible).await.unwrap(),
            UserPage {
                items: vec![],
                total: 0
            }
        );

        let mut users = MockUserRepository::new();
        users
            .expect_list()
            .withf(|query| {
                query.page == 2
                    && query.per_page == 5
                    && query.q.as_deref() == Some("ada")
                    && query.role.as_ref().map(RoleSlug::as_str) == Some("editors")
                    && query.is_active == Some(false)
            })
            .returning(|_| {
                Ok(UserPage {
                    items: vec![user()],
                    total: 6,
                })
            });
        let request = commands::ListUsers {
            page: Page::new(2).unwrap(),
            per_page: PerPage::new(5).unwrap(),
            q: Some("ada".into()),
            role: Some(RoleFilter::Slug(RoleSlug::parse("editors").unwrap())),
            is_active: Some(false),
        };
        let page = ListUsers {
            users: Arc::new(users),
        }
        .execute(&superuser(), request)
        .await
        .unwrap();
        assert_eq!(page.total, 6);
    }

    #[tokio::test]
    async fn creating_refuses_an_unknown_role() {
        let create = CreateUser {
            users: Arc::new(MockUserRepository::new()),
            roles: Arc::new(roles_knowing("application-access")),
            hasher: Arc::new(MockPasswordHasher::new()),
            clock: fixed_clock(),
            settings: settings(),
        };
        let mut request = new_user("new@example.com", "a long password");
        request.role = Some(RoleSlug::parse("ghosts").unwrap());
        assert!(matches!(
            create.execute(&superuser(), request).await,
            Err(CreateUserError::UnknownRole)
        ));
        assert!(
            create
                .role_exists(&RoleSlug::parse("application-access").unwrap())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn creating_sets_the_flags_and_maps_a_taken_email() {
        let mut users = MockUserRepository::new();
        users
            .expect_create()
            .withf(|user, hash, verification| {
                user.is_superuser
                    && !user.is_active
                    && user.is_verified
                    && !user.is_primary_admin
                    && hash.as_str() == "$argon2id$x"
                    // An admin-made account gets no verification email.
                    && verification.is_none()
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        let mut create = CreateUser {
            users: Arc::new(users),
            roles: Arc::new(roles_knowing("application-access")),
            hasher: Arc::new(hashing("a long password", "$argon2id$x")),
            clock: fixed_clock(),
            settings: settings(),
        };
        let request = commands::CreateUser {
            is_active: Some(false),
            is_superuser: Some(true),
            is_verified: Some(true),
            ..new_user("new@example.com", "a long password")
        };
        assert!(create.execute(&superuser(), request.clone()).await.is_ok());

        let mut users = MockUserRepository::new();
        users
            .expect_create()
            .returning(|_, _, _| Err(ports::CreateUserError::EmailTaken));
        create.users = Arc::new(users);
        assert!(matches!(
            create.execute(&superuser(), request).await,
            Err(CreateUserError::EmailTaken)
        ));
    }

    #[tokio::test]
    async fn the_primary_admin_is_protected_from_other_superusers() {
        let mut primary = member();
        primary.is_primary_admin = true;
        primary.is_superuser = true;
        let patch = commands::UpdateUser {
            name: Patch::Set(DisplayName::parse("Renamed").unwrap().unwrap()),
            ..Default::default()
        };
        let users = users_holding(&primary);
        let result = update_use_case(users, MockSessionRepository::new(), MockAuthCache::new())
            .execute(&superuser(), primary.id, patch)
            .await;
        assert!(matches!(
            result,
            Err(UpdateUserError::Protected(
                Protection::PrimaryAdminProtected
            ))
        ));
    }

    #[tokio::test]
    async fn superusers_may_not_deactivate_or_demote_themselves() {
        let me = superuser();
        for (patch, protection) in [
            (
                commands::UpdateUser {
                    is_active: Some(false),
                    ..Default::default()
                },
                Protection::CannotDeactivateSelf,
            ),
            (
                commands::UpdateUser {
                    is_superuser: Some(false),
                    ..Default::default()
                },
                Protection::CannotDemoteSelf,
            ),
        ] {
            let users = users_holding(&me.user);
            let result = update_use_case(users, MockSessionRepository::new(), MockAuthCache::new())
                .execute(&me, me.user.id, patch)
                .await;
            assert!(matches!(result, Err(UpdateUserError::Protected(p)) if p == protection));
        }
    }

    #[tokio::test]
    async fn deactivation_revokes_sessions_in_the_update_and_invalidates_the_cache_first() {
        let target = member();
        let session = live_session(&target);
        let mut users = users_holding(&target);
        let mut sessions = MockSessionRepository::new();
        let live = vec![session.clone()];
        let id = target.id;
        sessions
            .expect_list_live()
            .withf(move |user, _| *user == id)
            .returning(move |_, _| Ok(live.clone()));
        let mut cache = MockAuthCache::new();
        let mut order = Sequence::new();
        cache
            .expect_forget_user()
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        cache
            .expect_forget_sessions()
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        let updated = (target.clone(), vec![session]);
        users
            .expect_update()
            .withf(move |user, changes, revoke, _| {
                *user == id && *revoke && changes.is_active == Some(false)
            })
            .times(1)
            .in_sequence(&mut order)
            .returning(move |_, _, _, _| Ok(Some(updated.clone())));
        cache
            .expect_mark_revoked()
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        cache
            .expect_forget_user()
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        let patch = commands::UpdateUser {
            is_active: Some(false),
            ..Default::default()
        };
        assert!(
            update_use_case(users, sessions, cache)
                .execute(&superuser(), target.id, patch)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_set_password_is_hashed_and_revokes_while_a_rename_does_not() {
        let target = member();
        let id = target.id;
        let session = live_session(&target);
        let sid = session.id;
        let mut users = users_holding(&target);
        let mut sessions = MockSessionRepository::new();
        let live = vec![session.clone()];
        sessions
            .expect_list_live()
            .withf(move |user, _| *user == id)
            .returning(move |_, _| Ok(live.clone()));
        // The live sessions' marks go before the store replaces the password and revokes them,
        // and the revoked ones are marked after.
        let mut cache = MockAuthCache::new();
        let mut order = Sequence::new();
        cache
            .expect_forget_user()
            .withf(move |user| *user == id)
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        cache
            .expect_forget_sessions()
            .withf(move |forgotten| forgotten == [sid])
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        let updated = (target.clone(), vec![session]);
        users
            .expect_update()
            .withf(move |user, changes, revoke, _| {
                *user == id
                    && *revoke
                    && changes.password_hash.as_ref().map(PasswordHash::as_str)
                        == Some("$argon2id$new")
            })
            .times(1)
            .in_sequence(&mut order)
            .returning(move |_, _, _, _| Ok(Some(updated.clone())));
        cache
            .expect_mark_revoked()
            .withf(move |marks| marks.len() == 1 && marks[0].0 == sid)
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        cache
            .expect_forget_user()
            .withf(move |user| *user == id)
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        let patch = commands::UpdateUser {
            password: Some(new_password("a new long password")),
            ..Default::default()
        };
        assert!(
            update_use_case(users, sessions, cache)
                .execute(&superuser(), target.id, patch)
                .await
                .is_ok()
        );

        let mut users = users_holding(&target);
        let stored = target.clone();
        users
            .expect_update()
            .withf(move |user, changes, revoke, _| {
                *user == id
                    && !*revoke
                    && changes.name == Some(DisplayName::parse("Ada L.").unwrap())
                    && changes.role.is_some()
            })
            .times(1)
            .returning(move |_, _, _, _| Ok(Some((stored.clone(), vec![]))));
        let patch = commands::UpdateUser {
            name: Patch::from_given(DisplayName::parse(" Ada L. ").unwrap()),
            role: Some(RoleSlug::parse("editors").unwrap()),
            ..Default::default()
        };
        assert!(
            update_use_case(users, MockSessionRepository::new(), relaxed_cache())
                .execute(&superuser(), target.id, patch)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn updates_report_bad_fields_missing_users_taken_emails_and_a_down_cache() {
        let target = member();
        let patch = commands::UpdateUser {
            role: Some(RoleSlug::parse("ghosts").unwrap()),
            ..Default::default()
        };
        let result = update_use_case(
            users_holding(&target),
            MockSessionRepository::new(),
            MockAuthCache::new(),
        )
        .execute(&superuser(), target.id, patch)
        .await;
        assert!(matches!(result, Err(UpdateUserError::UnknownRole)));

        // The password is checked against the email the account keeps, before any hashing.
        let patch = commands::UpdateUser {
            password: Some(new_password("ADA@example.com")),
            ..Default::default()
        };
        let result = update_use_case(
            users_holding(&target),
            MockSessionRepository::new(),
            MockAuthCache::new(),
        )
        .execute(&superuser(), target.id, patch)
        .await;
        assert!(matches!(result, Err(UpdateUserError::PasswordIsEmail)));
        // ... and not when the patch gives the account another email.
        let patch = commands::UpdateUser {
            email: Some(authd_domain::Email::parse("new@example.com").unwrap()),
            password: Some(new_password("ADA@example.com")),
            ..Default::default()
        };
        let mut users = users_holding(&target);
        users
            .expect_update()
            .returning(|_, _, _, _| Ok(Some((user(), vec![]))));
        let mut sessions = MockSessionRepository::new();
        sessions.expect_list_live().returning(|_, _| Ok(vec![]));
        let mut use_case = update_use_case(users, sessions, relaxed_cache());
        use_case.hasher = Arc::new(hashing("ADA@example.com", "$argon2id$new"));
        assert!(
            use_case
                .execute(&superuser(), target.id, patch)
                .await
                .is_ok()
        );

        let ghost = UserId::generate();
        let mut users = MockUserRepository::new();
        users
            .expect_find_by_id()
            .withf(move |id| *id == ghost)
            .returning(|_| Ok(None));
        let missing = update_use_case(users, MockSessionRepository::new(), MockAuthCache::new())
            .execute(&superuser(), ghost, commands::UpdateUser::default())
            .await;
        assert!(matches!(missing, Err(UpdateUserError::NotFound)));

        let mut users = users_holding(&target);
        let id = target.id;
        users
            .expect_update()
            .withf(move |user, _, _, _| *user == id)
            .returning(|_, _, _, _| Err(ports::CreateUserError::EmailTaken));
        let taken = update_use_case(users, MockSessionRepository::new(), relaxed_cache())
            .execute(
                &superuser(),
                target.id,
                commands::UpdateUser {
                    email: Some(authd_domain::Email::parse("taken@example.com").unwrap()),
                    ..Default::default()
                },
            )
            .await;
        assert!(matches!(taken, Err(UpdateUserError::EmailTaken)));

        let mut users = users_holding(&target);
        users.expect_update().never();
        let mut cache = MockAuthCache::new();
        cache
            .expect_forget_user()
            .returning(|_| Err(PortError::Unavailable(Dependency::Cache)));
        let down = update_use_case(users, MockSessionRepository::new(), cache)
            .execute(
                &superuser(),
                target.id,
                commands::UpdateUser {
                    is_verified: Some(true),
                    ..Default::default()
                },
            )
            .await;
        assert!(matches!(
            down,
            Err(UpdateUserError::Port(PortError::Unavailable(
                Dependency::Cache
            )))
        ));
    }

    #[tokio::test]
    async fn deleting_protects_oneself_and_revokes_the_sessions() {
        let me = superuser();
        let delete_self = DeleteUser {
            users: Arc::new(users_holding(&me.user)),
            sessions: Arc::new(MockSessionRepository::new()),
            cache: Arc::new(MockAuthCache::new()),
            clock: fixed_clock(),
        };
        assert!(matches!(
            delete_self.execute(&me, me.user.id).await,
            Err(DeleteUserError::Protected(Protection::CannotDeleteSelf))
        ));

        let target = member();
        let id = target.id;
        let session = live_session(&target);
        let sid = session.id;
        let mut users = users_holding(&target);
        let mut sessions = MockSessionRepository::new();
        let mut cache = MockAuthCache::new();
        // The cache forgets the user and its live sessions before the store deletes them.
        let mut order = Sequence::new();
        cache
            .expect_forget_user()
            .withf(move |user| *user == id)
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        let live = vec![session.clone()];
        sessions
            .expect_list_live()
            .withf(move |user, _| *user == id)
            .times(1)
            .in_sequence(&mut order)
            .returning(move |_, _| Ok(live.clone()));
        cache
            .expect_forget_sessions()
            .withf(move |forgotten| forgotten == [sid])
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        let revoked = vec![session];
        users
            .expect_delete()
            .withf(move |user, _| *user == id)
            .times(1)
            .in_sequence(&mut order)
            .returning(move |_, _| Ok(Some(revoked.clone())));
        cache
            .expect_mark_revoked()
            .withf(move |marks| marks.len() == 1 && marks[0].0 == sid)
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        let delete = DeleteUser {
            users: Arc::new(users),
            sessions: Arc::new(sessions),
            cache: Arc::new(cache),
            clock: fixed_clock(),
        };
        assert!(delete.execute(&me, target.id).await.is_ok());
    }

    #[tokio::test]
    async fn a_users_sessions_are_listed_and_revoked_except_the_primary_admins_by_others() {
        let target = member();
        let id = target.id;
        let mut sessions = MockSessionRepository::new();
        let live = vec![live_session(&target)];
        sessions
            .expect_list_live()
            .withf(move |user, _| *user == id)
            .returning(move |_, _| Ok(live.clone()));
        let list = ListUserSessions {
            users: Arc::new(users_holding(&target)),
            sessions: Arc::new(sessions),
            clock: fixed_clock(),
        };
        let views = list.execute(&superuser(), target.id).await.unwrap();
        assert!(views.len() == 1 && !views[0].current);

        let mut primary = member();
        primary.is_primary_admin = true;
        let revoke = RevokeUserSessions {
            users: Arc::new(users_holding(&primary)),
            sessions: Arc::new(MockSessionRepository::new()),
            cache: Arc::new(MockAuthCache::new()),
            clock: fixed_clock(),
        };
        assert!(matches!(
            revoke.execute(&superuser(), primary.id).await,
            Err(DeleteUserError::Protected(
                Protection::PrimaryAdminProtected
            ))
        ));

        // Forget the live sessions' marks, revoke them in the store, then mark them revoked.
        let session = live_session(&target);
        let sid = session.id;
        let mut sessions = MockSessionRepository::new();
        let mut cache = MockAuthCache::new();
        let mut order = Sequence::new();
        let live = vec![session.clone()];
        sessions
            .expect_list_live()
            .withf(move |user, _| *user == id)
            .times(1)
            .in_sequence(&mut order)
            .returning(move |_, _| Ok(live.clone()));
        cache
            .expect_forget_sessions()
            .withf(move |forgotten| forgotten == [sid])
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        let revoked = vec![session];
        sessions
            .expect_revoke_all()
            .withf(move |user, _| *user == id)
            .times(1)
            .in_sequence(&mut order)
            .returning(move |_, _| Ok(revoked.clone()));
        cache
            .expect_mark_revoked()
            .withf(move |marks| marks.len() == 1 && marks[0].0 == sid)
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        let revoke = RevokeUserSessions {
            users: Arc::new(users_holding(&target)),
            sessions: Arc::new(sessions),
            cache: Arc::new(cache),
            clock: fixed_clock(),
        };
        assert!(revoke.execute(&superuser(), target.id).await.is_ok());
    }

    /// A role repository asked exactly once, for `slug`, that knows only `known`.
    fn roles_asked_once_for(slug: &'static str, known: &'static str) -> MockRoleRepository {
        let mut roles = MockRoleRepository::new();
        roles
            .expect_find_by_slug()
            .withf(move |wanted| wanted.as_str() == slug)
            .times(1)
            .returning(move |wanted| Ok((wanted.as_str() == known).then(|| role(known))));
        roles
    }

    #[tokio::test]
    async fn whether_a_role_exists_is_the_stores_answer_for_that_slug() {
        for (slug, exists) in [("editors", true), ("ghosts", false)] {
            let create = CreateUser {
                users: Arc::new(MockUserRepository::new()),
                roles: Arc::new(roles_asked_once_for(slug, "editors")),
                hasher: Arc::new(MockPasswordHasher::new()),
                clock: fixed_clock(),
                settings: settings(),
            };
            let found = create
                .role_exists(&RoleSlug::parse(slug).unwrap())
                .await
                .unwrap();
            assert_eq!(found, exists, "{slug}");
        }
    }

    /// [`UpdateUser`] over `users` and `roles`, which `store_errors` is all that may ask.
    fn checking_fields(users: MockUserRepository, roles: MockRoleRepository) -> UpdateUser {
        let mut use_case =
            update_use_case(users, MockSessionRepository::new(), MockAuthCache::new());
        use_case.roles = Arc::new(roles);
        use_case.hasher = Arc::new(MockPasswordHasher::new());
        use_case
    }

    #[tokio::test]
    async fn a_failed_patch_reports_an_unknown_role_and_only_an_unknown_one() {
        let unknown = RoleSlug::parse("ghosts").unwrap();
        let errors = checking_fields(
            MockUserRepository::new(),
            roles_asked_once_for("ghosts", "editors"),
        )
        .store_errors(None, Some(&unknown), None, false)
        .await
        .unwrap();
        assert_eq!(
            errors,
            StoreFieldErrors {
                unknown_role: true,
                password_is_email: false
            }
        );

        let known = RoleSlug::parse("editors").unwrap();
        let errors = checking_fields(
            MockUserRepository::new(),
            roles_asked_once_for("editors", "editors"),
        )
        .store_errors(None, Some(&known), None, false)
        .await
        .unwrap();
        assert_eq!(errors, StoreFieldErrors::default());

        // No role in the patch: the store is not asked.
        let mut roles = MockRoleRepository::new();
        roles.expect_find_by_slug().never();
        let errors = checking_fields(MockUserRepository::new(), roles)
            .store_errors(None, None, None, false)
            .await
            .unwrap();
        assert_eq!(errors, StoreFieldErrors::default());
    }

    #[tokio::test]
    async fn a_password_is_checked_against_the_kept_email_only_when_the_patch_keeps_it() {
        let target = member();
        let is_email = new_password("ADA@example.com");
        let other = new_password("a new long password");
        let no_roles = || {
            let mut roles = MockRoleRepository::new();
            roles.expect_find_by_slug().never();
            roles
        };
        /// A repository asked once for `target`'s id.
        fn asked_once(target: &User) -> MockUserRepository {
            let mut users = MockUserRepository::new();
            let (id, found) = (target.id, target.clone());
            users
                .expect_find_by_id()
                .withf(move |wanted| *wanted == id)
                .times(1)
                .returning(move |_| Ok(Some(found.clone())));
            users
        }

        // The patch keeps the email: the user is read, and a password that is its email is one.
        let errors = checking_fields(asked_once(&target), no_roles())
            .store_errors(Some(target.id), None, Some(&is_email), false)
            .await
            .unwrap();
        assert_eq!(
            errors,
            StoreFieldErrors {
                unknown_role: false,
                password_is_email: true
            }
        );
        let errors = checking_fields(asked_once(&target), no_roles())
            .store_errors(Some(target.id), None, Some(&other), false)
            .await
            .unwrap();
        assert_eq!(errors, StoreFieldErrors::default());

        // The patch changes the email, or has no path id or no password: the user is not read.
        for (id, password, changes_email) in [
            (Some(target.id), Some(&is_email), true),
            (None, Some(&is_email), false),
            (Some(target.id), None, false),
        ] {
            let mut users = MockUserRepository::new();
            users.expect_find_by_id().never();
            let errors = checking_fields(users, no_roles())
                .store_errors(id, None, password, changes_email)
                .await
                .unwrap();
            assert_eq!(errors, StoreFieldErrors::default());
        }

        // No such user: nothing to compare with.
        let mut users = MockUserRepository::new();
        users.expect_find_by_id().times(1).returning(|_| Ok(None));
        let errors = checking_fields(users, no_roles())
            .store_errors(Some(target.id), None, Some(&is_email), false)
            .await
            .unwrap();
        assert_eq!(errors, StoreFieldErrors::default());
    }
}
