use std::sync::Arc;

use authd_domain::{AdminAction, Email, Password, RoleSlug, User, UserId, check_admin_action};

use crate::ports::{
    AuthCache, Clock, CreateUserError, PasswordHasher, RoleRepository, SessionRepository,
    UserChanges, UserPage, UserQuery, UserRepository,
};
use crate::revocation::Revoker;
use crate::use_cases::admin::{AdminError, require_superuser};
use crate::use_cases::sign_up::{check_account, normalize_name};
use crate::use_cases::{Principal, SessionView};
use crate::{AuthSettings, FieldError, PortError};

/// The most users a page may hold.
const MAX_PER_PAGE: u32 = 100;

/// A listing request as the client sent it.
#[derive(Debug, Clone)]
pub struct ListUsersRequest {
    /// The page, from 1.
    pub page: u32,
    /// Users per page, 1 to 100 (`MAX_PER_PAGE`).
    pub per_page: u32,
    /// Substring of email or name.
    pub q: Option<String>,
    /// Role slug.
    pub role: Option<String>,
    /// Active or not.
    pub is_active: Option<bool>,
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
        request: ListUsersRequest,
    ) -> Result<UserPage, AdminError> {
        require_superuser(principal)?;
        let mut errors = Vec::new();
        if request.page == 0 {
            errors.push(FieldError::new("page", "must be at least 1"));
        }
        if !(1..=MAX_PER_PAGE).contains(&request.per_page) {
            errors.push(FieldError::new(
                "per_page",
                format!("must be between 1 and {MAX_PER_PAGE}"),
            ));
        }
        if !errors.is_empty() {
            return Err(AdminError::Invalid(errors));
        }
        // A slug that cannot exist matches nobody, as an unknown one does.
        let role = match request.role.as_deref().map(RoleSlug::parse) {
            Some(Err(_)) => {
                return Ok(UserPage {
                    items: Vec::new(),
                    total: 0,
                });
            }
            Some(Ok(slug)) => Some(slug),
            None => None,
        };
        let query = UserQuery {
            page: request.page,
            per_page: request.per_page,
            q: request.q.filter(|q| !q.is_empty()),
            role,
            is_active: request.is_active,
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
    pub async fn execute(&self, principal: &Principal, id: UserId) -> Result<User, AdminError> {
        require_superuser(principal)?;
        self.users
            .find_by_id(id)
            .await?
            .ok_or(AdminError::NotFound("user"))
    }
}

/// A user an administrator creates.
#[derive(Debug, Clone, Default)]
pub struct NewUserRequest {
    pub email: String,
    pub password: String,
    pub name: Option<String>,
    /// Role slug; the default role when absent.
    pub role: Option<String>,
    pub is_active: Option<bool>,
    pub is_superuser: Option<bool>,
    pub is_verified: Option<bool>,
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
    /// Creates the user.
    pub async fn execute(
        &self,
        principal: &Principal,
        request: NewUserRequest,
    ) -> Result<User, AdminError> {
        require_superuser(principal)?;
        let (email, password, name, role) = self.validate(&request).await?;
        let hash = self.hasher.hash(&password).await?;
        let mut user = User::register(email, name, role, self.clock.now());
        user.is_active = request.is_active.unwrap_or(true);
        user.is_superuser = request.is_superuser.unwrap_or(false);
        user.is_verified = request.is_verified.unwrap_or(false);
        self.users
            .create(&user, &hash)
            .await
            .map_err(email_conflict)?;
        Ok(user)
    }

    /// The field errors `execute` would report, for a transport that adds its own.
    pub async fn field_errors(&self, request: &NewUserRequest) -> Vec<FieldError> {
        invalid_fields(self.validate(request).await.err())
    }

    /// The checks of a signup, then the role; all errors at once.
    async fn validate(
        &self,
        request: &NewUserRequest,
    ) -> Result<(Email, Password, Option<String>, authd_domain::RoleRef), AdminError> {
        let account = check_account(
            &self.settings.password_policy,
            &request.email,
            &request.password,
            request.name.as_deref(),
        );
        let slug = request
            .role
            .clone()
            .unwrap_or_else(|| self.settings.default_role.to_string());
        let role = find_role(self.roles.as_ref(), &slug).await?;
        match (account, role) {
            (Ok((email, password, name)), Ok(role)) => Ok((email, password, name, role)),
            (account, role) => {
                let mut errors = account.err().unwrap_or_default();
                errors.extend(role.err());
                Err(AdminError::Invalid(errors))
            }
        }
    }
}

/// The field errors of a validation outcome (none for success or any other failure).
fn invalid_fields(error: Option<AdminError>) -> Vec<FieldError> {
    match error {
        Some(AdminError::Invalid(errors)) => errors,
        _ => Vec::new(),
    }
}

/// What an administrator may change on a user.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub email: Option<String>,
    /// `Some(None)` clears the name.
    pub name: Option<Option<String>>,
    pub role: Option<String>,
    pub is_active: Option<bool>,
    pub is_superuser: Option<bool>,
    pub is_verified: Option<bool>,
    pub password: Option<String>,
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
        patch: UserPatch,
    ) -> Result<User, AdminError> {
        require_superuser(principal)?;
        let action = AdminAction::Change {
            deactivates: patch.is_active == Some(false),
            demotes: patch.is_superuser == Some(false),
        };
        let target = allowed_target(self.users.as_ref(), principal, id, action).await?;

        let changes = self.validate(&target, patch).await?;
        let changes = match changes.1 {
            Some(password) => UserChanges {
                password_hash: Some(self.hasher.hash(&password).await?),
                ..changes.0
            },
            None => changes.0,
        };
        let revoke = changes.is_active == Some(false) || changes.password_hash.is_some();

        let now = self.clock.now();
        let revoker = Revoker::new(&self.sessions, &self.cache);
        // Invalidate before the change (a cache that cannot be reached fails it here, changing
        // nothing), and again after, in case a reader cached the old profile in between.
        self.cache.forget_user(id).await?;
        if revoke {
            revoker.forget_live(id, now).await?;
        }
        let (user, revoked) = self
            .users
            .update(id, &changes, revoke, now)
            .await
            .map_err(email_conflict)?
            .ok_or(AdminError::NotFound("user"))?;
        revoker.remember(&revoked, now).await;
        if let Err(error) = self.cache.forget_user(id).await {
            tracing::warn!(%error, "could not invalidate the cached user again");
        }
        Ok(user)
    }

    /// The field errors `execute` would report for this user, for a transport that adds its own.
    pub async fn field_errors(&self, id: UserId, patch: UserPatch) -> Vec<FieldError> {
        match self.users.find_by_id(id).await {
            Ok(Some(target)) => invalid_fields(self.validate(&target, patch).await.err()),
            _ => Vec::new(),
        }
    }

    /// Every field of the patch checked; all errors at once.
    async fn validate(
        &self,
        target: &User,
        patch: UserPatch,
    ) -> Result<(UserChanges, Option<Password>), AdminError> {
        let email = patch.email.as_deref().map(Email::parse).transpose();
        let name = patch
            .name
            .map(|name| normalize_name(name.as_deref()))
            .transpose();
        let role = match &patch.role {
            Some(slug) => find_role(self.roles.as_ref(), slug).await?.map(Some),
            None => Ok(None),
        };
        // The policy compares against the email the account will have.
        let new_email = email
            .as_ref()
            .ok()
            .and_then(Option::as_ref)
            .unwrap_or(&target.email);
        let password = patch
            .password
            .as_deref()
            .map(|password| {
                self.settings
                    .password_policy
                    .check(password, Some(new_email))
            })
            .transpose();
        match (email, name, role, password) {
            (Ok(email), Ok(name), Ok(role), Ok(password)) => Ok((
                UserChanges {
                    email,
                    name,
                    role: role.map(|role| role.id),
                    is_active: patch.is_active,
                    is_superuser: patch.is_superuser,
                    is_verified: patch.is_verified,
                    password_hash: None,
                },
                password,
            )),
            (email, name, role, password) => {
                let errors = [
                    email.err().map(|e| FieldError::new("email", e)),
                    name.err(),
                    role.err(),
                    password.err().map(|e| FieldError::new("password", e)),
                ];
                Err(AdminError::Invalid(errors.into_iter().flatten().collect()))
            }
        }
    }
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
    pub async fn execute(&self, principal: &Principal, id: UserId) -> Result<(), AdminError> {
        require_superuser(principal)?;
        allowed_target(self.users.as_ref(), principal, id, AdminAction::Delete).await?;
        let now = self.clock.now();
        let revoker = Revoker::new(&self.sessions, &self.cache);
        self.cache.forget_user(id).await?;
        revoker.forget_live(id, now).await?;
        let revoked = self
            .users
            .delete(id, now)
            .await?
            .ok_or(AdminError::NotFound("user"))?;
        revoker.remember(&revoked, now).await;
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
    ) -> Result<Vec<SessionView>, AdminError> {
        require_superuser(principal)?;
        self.users
            .find_by_id(id)
            .await?
            .ok_or(AdminError::NotFound("user"))?;
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
    pub async fn execute(&self, principal: &Principal, id: UserId) -> Result<(), AdminError> {
        require_superuser(principal)?;
        allowed_target(
            self.users.as_ref(),
            principal,
            id,
            AdminAction::RevokeSessions,
        )
        .await?;
        let revoker = Revoker::new(&self.sessions, &self.cache);
        revoker.revoke_all(id, self.clock.now()).await?;
        Ok(())
    }
}

/// The user `id`, when it exists and the protections let `principal` do `action` to it.
async fn allowed_target(
    users: &dyn UserRepository,
    principal: &Principal,
    id: UserId,
    action: AdminAction,
) -> Result<User, AdminError> {
    let target = users
        .find_by_id(id)
        .await?
        .ok_or(AdminError::NotFound("user"))?;
    check_admin_action(&principal.user, &target, action)?;
    Ok(target)
}

/// The role with this slug, or the field error that names it.
async fn find_role(
    roles: &dyn RoleRepository,
    slug: &str,
) -> Result<Result<authd_domain::RoleRef, FieldError>, PortError> {
    let Ok(slug) = RoleSlug::parse(slug) else {
        return Ok(Err(FieldError::new("role", "no such role")));
    };
    Ok(roles
        .find_by_slug(&slug)
        .await?
        .map(|role| role.to_ref())
        .ok_or_else(|| FieldError::new("role", "no such role")))
}

fn email_conflict(error: CreateUserError) -> AdminError {
    match error {
        CreateUserError::EmailTaken => {
            AdminError::Conflict("a user with this email already exists".into())
        }
        CreateUserError::Port(error) => error.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dependency;
    use crate::ports::{
        MockAuthCache, MockPasswordHasher, MockRoleRepository, MockSessionRepository,
        MockUserRepository,
    };
    use crate::use_cases::fixtures::*;
    use authd_domain::{PasswordHash, SessionId};
    use mockall::Sequence;

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
        .execute(
            &caller,
            ListUsersRequest {
                page: 1,
                per_page: 20,
                q: None,
                role: None,
                is_active: None,
            },
        )
        .await;
        assert!(matches!(list, Err(AdminError::Forbidden(_))));
        assert!(matches!(
            GetUser { users }.execute(&caller, UserId::generate()).await,
            Err(AdminError::Forbidden(_))
        ));
    }

    #[tokio::test]
    async fn listing_bounds_its_pages_and_passes_the_filters() {
        let list = ListUsers {
            users: Arc::new(MockUserRepository::new()),
        };
        let bad = ListUsersRequest {
            page: 0,
            per_page: 101,
            q: None,
            role: None,
            is_active: None,
        };
        let Err(AdminError::Invalid(errors)) = list.execute(&superuser(), bad).await else {
            panic!("expected Invalid")
        };
        assert_eq!(
            errors.iter().map(|e| e.field).collect::<Vec<_>>(),
            ["page", "per_page"]
        );

        let impossible = ListUsersRequest {
            page: 1,
            per_page: 20,
            q: None,
            role: Some("Not A Slug".into()),
            is_active: None,
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
        let request = ListUsersRequest {
            page: 2,
            per_page: 5,
            q: Some("ada".into()),
            role: Some("editors".into()),
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
    async fn creating_checks_every_field_and_the_role() {
        let create = CreateUser {
            users: Arc::new(MockUserRepository::new()),
            roles: Arc::new(roles_knowing("application-access")),
            hasher: Arc::new(MockPasswordHasher::new()),
            clock: fixed_clock(),
            settings: settings(),
        };
        let request = NewUserRequest {
            email: "bad".into(),
            password: "short".into(),
            role: Some("ghosts".into()),
            ..Default::default()
        };
        let Err(AdminError::Invalid(errors)) = create.execute(&superuser(), request).await else {
            panic!("expected Invalid")
        };
        assert_eq!(
            errors.iter().map(|e| e.field).collect::<Vec<_>>(),
            ["email", "password", "role"]
        );
    }

    #[tokio::test]
    async fn creating_sets_the_flags_and_maps_a_taken_email() {
        let mut users = MockUserRepository::new();
        users
            .expect_create()
            .withf(|user, hash| {
                user.is_superuser
                    && !user.is_active
                    && user.is_verified
                    && !user.is_primary_admin
                    && hash.as_str() == "$argon2id$x"
            })
            .times(1)
            .returning(|_, _| Ok(()));
        let mut create = CreateUser {
            users: Arc::new(users),
            roles: Arc::new(roles_knowing("application-access")),
            hasher: Arc::new(hashing("a long password", "$argon2id$x")),
            clock: fixed_clock(),
            settings: settings(),
        };
        let request = NewUserRequest {
            email: "new@example.com".into(),
            password: "a long password".into(),
            is_active: Some(false),
            is_superuser: Some(true),
            is_verified: Some(true),
            ..Default::default()
        };
        assert!(create.execute(&superuser(), request.clone()).await.is_ok());

        let mut users = MockUserRepository::new();
        users
            .expect_create()
            .returning(|_, _| Err(CreateUserError::EmailTaken));
        create.users = Arc::new(users);
        assert!(matches!(
            create.execute(&superuser(), request).await,
            Err(AdminError::Conflict(_))
        ));
    }

    #[tokio::test]
    async fn the_primary_admin_is_protected_from_other_superusers() {
        let mut primary = member();
        primary.is_primary_admin = true;
        primary.is_superuser = true;
        let patch = UserPatch {
            name: Some(Some("Renamed".into())),
            ..Default::default()
        };
        let users = users_holding(&primary);
        let result = update_use_case(users, MockSessionRepository::new(), MockAuthCache::new())
            .execute(&superuser(), primary.id, patch)
            .await;
        assert!(
            matches!(result, Err(AdminError::Forbidden(detail)) if detail.contains("primary admin"))
        );
    }

    #[tokio::test]
    async fn superusers_may_not_deactivate_or_demote_themselves() {
        let me = superuser();
        for patch in [
            UserPatch {
                is_active: Some(false),
                ..Default::default()
            },
            UserPatch {
                is_superuser: Some(false),
                ..Default::default()
            },
        ] {
            let users = users_holding(&me.user);
            let result = update_use_case(users, MockSessionRepository::new(), MockAuthCache::new())
                .execute(&me, me.user.id, patch)
                .await;
            assert!(matches!(result, Err(AdminError::Forbidden(_))));
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
        let patch = UserPatch {
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
        let mut users = users_holding(&target);
        let mut sessions = MockSessionRepository::new();
        sessions
            .expect_list_live()
            .withf(move |user, _| *user == id)
            .returning(|_, _| Ok(vec![]));
        let stored = target.clone();
        users
            .expect_update()
            .withf(move |user, changes, revoke, _| {
                *user == id
                    && *revoke
                    && changes.password_hash.as_ref().map(PasswordHash::as_str)
                        == Some("$argon2id$new")
            })
            .times(1)
            .returning(move |_, _, _, _| Ok(Some((stored.clone(), vec![]))));
        let patch = UserPatch {
            password: Some("a new long password".into()),
            ..Default::default()
        };
        assert!(
            update_use_case(users, sessions, relaxed_cache())
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
                    && changes.name == Some(Some("Ada L.".into()))
                    && changes.role.is_some()
            })
            .times(1)
            .returning(move |_, _, _, _| Ok(Some((stored.clone(), vec![]))));
        let patch = UserPatch {
            name: Some(Some(" Ada L. ".into())),
            role: Some("editors".into()),
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
        let patch = UserPatch {
            email: Some("bad".into()),
            role: Some("ghosts".into()),
            password: Some("short".into()),
            ..Default::default()
        };
        let result = update_use_case(
            users_holding(&target),
            MockSessionRepository::new(),
            MockAuthCache::new(),
        )
        .execute(&superuser(), target.id, patch)
        .await;
        let Err(AdminError::Invalid(errors)) = result else {
            panic!("expected Invalid")
        };
        assert_eq!(
            errors.iter().map(|e| e.field).collect::<Vec<_>>(),
            ["email", "role", "password"]
        );

        let ghost = UserId::generate();
        let mut users = MockUserRepository::new();
        users
            .expect_find_by_id()
            .withf(move |id| *id == ghost)
            .returning(|_| Ok(None));
        let missing = update_use_case(users, MockSessionRepository::new(), MockAuthCache::new())
            .execute(&superuser(), ghost, UserPatch::default())
            .await;
        assert!(matches!(missing, Err(AdminError::NotFound("user"))));

        let mut users = users_holding(&target);
        let id = target.id;
        users
            .expect_update()
            .withf(move |user, _, _, _| *user == id)
            .returning(|_, _, _, _| Err(CreateUserError::EmailTaken));
        let taken = update_use_case(users, MockSessionRepository::new(), relaxed_cache())
            .execute(
                &superuser(),
                target.id,
                UserPatch {
                    email: Some("taken@example.com".into()),
                    ..Default::default()
                },
            )
            .await;
        assert!(matches!(taken, Err(AdminError::Conflict(_))));

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
                UserPatch {
                    is_verified: Some(true),
                    ..Default::default()
                },
            )
            .await;
        assert!(matches!(
            down,
            Err(AdminError::Port(PortError::Unavailable(Dependency::Cache)))
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
            Err(AdminError::Forbidden(_))
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
            Err(AdminError::Forbidden(_))
        ));

        let mut sessions = MockSessionRepository::new();
        sessions
            .expect_list_live()
            .withf(move |user, _| *user == id)
            .returning(|_, _| Ok(vec![]));
        sessions
            .expect_revoke_all()
            .withf(move |user, _| *user == id)
            .times(1)
            .returning(|_, _| Ok(vec![]));
        let revoke = RevokeUserSessions {
            users: Arc::new(users_holding(&target)),
            sessions: Arc::new(sessions),
            cache: Arc::new(relaxed_cache()),
            clock: fixed_clock(),
        };
        assert!(revoke.execute(&superuser(), target.id).await.is_ok());
    }
}
