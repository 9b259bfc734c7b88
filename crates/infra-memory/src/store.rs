use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use authd_application::PortError;
use authd_application::ports::{
    CreateRoleError, CreateUserError, Credentials, RoleChanges, RoleDeletion, RoleRepository,
    Rotation, SessionRecord, SessionRepository, UserChanges, UserPage, UserQuery, UserRepository,
};
use authd_domain::{
    Email, PasswordHash, Role, RoleId, RoleName, RoleSlug, RotationState, Session, SessionId,
    TokenId, User, UserId,
};
use chrono::{DateTime, Utc};

/// Users, roles and sessions in one map behind one lock, so that every multi-row operation
/// (a password change with its revocations, a rotation) is as atomic as its Postgres
/// transaction.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    data: Mutex<Data>,
}

#[derive(Debug, Default)]
struct Data {
    roles: HashMap<RoleId, Role>,
    users: HashMap<UserId, (User, PasswordHash)>,
    sessions: HashMap<SessionId, SessionRecord>,
    /// Credentials versions; a user missing here is at version 0.
    versions: HashMap<UserId, i64>,
}

impl Data {
    fn version(&self, user: UserId) -> i64 {
        self.versions.get(&user).copied().unwrap_or(0)
    }

    /// Bumps the user's credentials version and revokes its live sessions: what a password
    /// change, a deactivation or a revoke-all does, in one step under the lock.
    fn end_credentials(&mut self, user: UserId, now: DateTime<Utc>) -> Vec<Session> {
        *self.versions.entry(user).or_insert(0) += 1;
        self.revoke_where(now, |session| session.user_id == user)
    }

    /// Whether a user other than `except` has `email`.
    fn email_taken(&self, email: &Email, except: Option<UserId>) -> bool {
        self.users
            .values()
            .any(|(user, _)| Some(user.id) != except && &user.email == email)
    }

    /// The store's foreign key: a user holds a role that exists.
    fn check_role(&self, role: RoleId) -> Result<(), PortError> {
        if self.roles.contains_key(&role) {
            Ok(())
        } else {
            Err(PortError::Unexpected(anyhow::anyhow!("no role {role}")))
        }
    }

    /// Whether the one primary admin exists (the store allows no second one).
    fn primary_admin_exists(&self) -> bool {
        self.users.values().any(|(user, _)| user.is_primary_admin)
    }

    /// `user`'s live sessions, newest first.
    fn live_sessions(&self, user: UserId, now: DateTime<Utc>) -> Vec<Session> {
        let mut live: Vec<Session> = self
            .sessions
            .values()
            .filter(|record| record.session.user_id == user && record.session.is_live(now))
            .map(|record| record.session.clone())
            .collect();
        live.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        live
    }

    /// The user with its role as the role is now (a rename shows at once, as with a join).
    fn user(&self, stored: &User) -> User {
        let mut user = stored.clone();
        if let Some(role) = self.roles.get(&user.role.id) {
            user.role = role.to_ref();
        }
        user
    }

    fn revoke_where(
        &mut self,
        now: DateTime<Utc>,
        pick: impl Fn(&Session) -> bool,
    ) -> Vec<Session> {
        let mut revoked: Vec<Session> = self
            .sessions
            .values_mut()
            .filter(|record| pick(&record.session) && record.session.is_live(now))
            .map(|record| {
                record.session.revoked_at = Some(now);
                // A revoked session never replays its pair: keep no ciphertext of a token.
                record.sealed_successor = None;
                record.session.clone()
            })
            .collect();
        revoked.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        revoked
    }
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl UserRepository for InMemoryStore {
    async fn create(
        &self,
        user: &User,
        password_hash: &PasswordHash,
    ) -> Result<(), CreateUserError> {
        let mut data = self.data();
        if data.email_taken(&user.email, None) {
            return Err(CreateUserError::EmailTaken);
        }
        data.check_role(user.role.id)?;
        if user.is_primary_admin && data.primary_admin_exists() {
            let error = anyhow::anyhow!("a primary admin already exists");
            return Err(PortError::Unexpected(error).into());
        }
        data.users
            .insert(user.id, (user.clone(), password_hash.clone()));
        Ok(())
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, PortError> {
        let data = self.data();
        Ok(data.users.get(&id).map(|(user, _)| data.user(user)))
    }

    async fn find_credentials(&self, email: &Email) -> Result<Option<Credentials>, PortError> {
        let data = self.data();
        Ok(data
            .users
            .values()
            .find(|(user, _)| &user.email == email)
            .map(|(user, hash)| Credentials {
                user: data.user(user),
                hash: hash.clone(),
                version: data.version(user.id),
            }))
    }

    async fn password_hash(&self, id: UserId) -> Result<Option<PasswordHash>, PortError> {
        Ok(self.data().users.get(&id).map(|(_, hash)| hash.clone()))
    }

    async fn update_password_hash(
        &self,
        id: UserId,
        old: &PasswordHash,
        new: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        match self.data().users.get_mut(&id) {
            Some((user, stored)) if stored == old => {
                *stored = new.clone();
                user.updated_at = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list(&self, query: &UserQuery) -> Result<UserPage, PortError> {
        let data = self.data();
        let needle = query.q.as_deref().map(str::to_lowercase);
        let email_needle = query.q.as_deref().map(authd_domain::email_search_form);
        let mut matches: Vec<User> = data
            .users
            .values()
            .map(|(user, _)| data.user(user))
            .filter(|user| {
                let text = needle.as_deref().is_none_or(|needle| {
                    email_needle
                        .as_deref()
                        .is_some_and(|email| user.email.normalized().contains(email))
                        || user
                            .name
                            .as_ref()
                            .is_some_and(|name| name.as_str().to_lowercase().contains(needle))
                });
                let role = query
                    .role
                    .as_ref()
                    .is_none_or(|slug| &user.role.slug == slug);
                let active = query
                    .is_active
                    .is_none_or(|active| user.is_active == active);
                text && role && active
            })
            .collect();
        matches.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        let total = matches.len() as u64;
        let skip = (query.page.saturating_sub(1) as usize).saturating_mul(query.per_page as usize);
        let items = matches
            .into_iter()
            .skip(skip)
            .take(query.per_page as usize)
            .collect();
        Ok(UserPage { items, total })
    }

    async fn update(
        &self,
        id: UserId,
        changes: &UserChanges,
        revoke_sessions: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<(User, Vec<Session>)>, CreateUserError> {
        let mut data = self.data();
        if !data.users.contains_key(&id) {
            return Ok(None);
        }
        if let Some(email) = &changes.email {
            if data.email_taken(email, Some(id)) {
                return Err(CreateUserError::EmailTaken);
            }
        }
        let role = match changes.role {
            Some(role) => {
                data.check_role(role)?;
                data.roles.get(&role).map(Role::to_ref)
            }
            None => None,
        };
        let Some((user, hash)) = data.users.get_mut(&id) else {
            return Ok(None);
        };
        if let Some(email) = &changes.email {
            user.email = email.clone();
        }
        if let Some(name) = &changes.name {
            user.name = name.clone();
        }
        if let Some(role) = role {
            user.role = role;
        }
        if let Some(active) = changes.is_active {
            user.is_active = active;
        }
        if let Some(superuser) = changes.is_superuser {
            user.is_superuser = superuser;
        }
        if let Some(verified) = changes.is_verified {
            user.is_verified = verified;
        }
        if let Some(new_hash) = &changes.password_hash {
            *hash = new_hash.clone();
        }
        user.updated_at = now;
        let user = user.clone();
        let revoked = if revoke_sessions {
            data.end_credentials(id, now)
        } else {
            Vec::new()
        };
        Ok(Some((data.user(&user), revoked)))
    }

    async fn delete(
        &self,
        id: UserId,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<Session>>, PortError> {
        let mut data = self.data();
        if data.users.remove(&id).is_none() {
            return Ok(None);
        }
        data.versions.remove(&id);
        let live = data.live_sessions(id, now);
        data.sessions
            .retain(|_, record| record.session.user_id != id);
        Ok(Some(live))
    }

    async fn create_primary_admin(
        &self,
        admin: &User,
        password_hash: &PasswordHash,
    ) -> Result<bool, CreateUserError> {
        let mut data = self.data();
        if data.primary_admin_exists() {
            return Ok(false);
        }
        if data.email_taken(&admin.email, None) {
            return Err(CreateUserError::EmailTaken);
        }
        data.check_role(admin.role.id)?;
        let admin = User {
            is_primary_admin: true,
            ..admin.clone()
        };
        data.users.insert(admin.id, (admin, password_hash.clone()));
        Ok(true)
    }

    async fn replace_password(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, PortError> {
        let mut data = self.data();
        let Some((user, stored)) = data.users.get_mut(&id) else {
            return Ok(Vec::new());
        };
        *stored = hash.clone();
        user.updated_at = now;
        Ok(data.end_credentials(id, now))
    }
}

#[async_trait]
impl RoleRepository for InMemoryStore {
    async fn find_by_slug(&self, slug: &RoleSlug) -> Result<Option<Role>, PortError> {
        Ok(self
            .data()
            .roles
            .values()
            .find(|role| &role.slug == slug)
            .cloned())
    }

    async fn list(&self) -> Result<Vec<Role>, PortError> {
        let mut roles: Vec<Role> = self.data().roles.values().cloned().collect();
        roles.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(roles)
    }

    async fn find(&self, id: RoleId) -> Result<Option<Role>, PortError> {
        Ok(self.data().roles.get(&id).cloned())
    }

    async fn create(&self, role: &Role) -> Result<(), CreateRoleError> {
        let mut data = self.data();
        if data
            .roles
            .values()
            .any(|existing| existing.slug == role.slug)
        {
            return Err(CreateRoleError::SlugTaken);
        }
        data.roles.insert(role.id, role.clone());
        Ok(())
    }

    async fn update(
        &self,
        id: RoleId,
        changes: &RoleChanges,
        now: DateTime<Utc>,
    ) -> Result<Option<Role>, PortError> {
        let mut data = self.data();
        let Some(role) = data.roles.get_mut(&id) else {
            return Ok(None);
        };
        if let Some(name) = &changes.name {
            role.name = name.clone();
        }
        if let Some(description) = &changes.description {
            role.description = description.clone();
        }
        role.updated_at = now;
        Ok(Some(role.clone()))
    }

    async fn delete(&self, id: RoleId) -> Result<RoleDeletion, PortError> {
        let mut data = self.data();
        if !data.roles.contains_key(&id) {
            return Ok(RoleDeletion::NotFound);
        }
        if data.users.values().any(|(user, _)| user.role.id == id) {
            return Ok(RoleDeletion::InUse);
        }
        data.roles.remove(&id);
        Ok(RoleDeletion::Deleted)
    }

    async fn ensure(
        &self,
        slug: &RoleSlug,
        name: &RoleName,
        now: DateTime<Utc>,
    ) -> Result<Role, PortError> {
        let mut data = self.data();
        if let Some(role) = data.roles.values().find(|role| &role.slug == slug) {
            return Ok(role.clone());
        }
        let role = Role {
            id: RoleId::generate(),
            slug: slug.clone(),
            name: name.clone(),
            description: None,
            created_at: now,
            updated_at: now,
        };
        data.roles.insert(role.id, role.clone());
        Ok(role)
    }
}

#[async_trait]
impl SessionRepository for InMemoryStore {
    async fn create(
        &self,
        session: &Session,
        refresh_jti: TokenId,
        credentials_version: i64,
    ) -> Result<bool, PortError> {
        let mut data = self.data();
        let current = data
            .users
            .get(&session.user_id)
            .is_some_and(|(user, _)| user.is_active)
            && data.version(session.user_id) == credentials_version;
        if !current {
            return Ok(false);
        }
        let record = SessionRecord {
            session: session.clone(),
            rotation: RotationState {
                current: refresh_jti,
                previous: None,
                rotated_at: None,
            },
            sealed_successor: None,
        };
        data.sessions.insert(session.id, record);
        Ok(true)
    }

    async fn find(&self, id: SessionId) -> Result<Option<SessionRecord>, PortError> {
        Ok(self.data().sessions.get(&id).cloned())
    }

    async fn list_live(&self, user: UserId, now: DateTime<Utc>) -> Result<Vec<Session>, PortError> {
        Ok(self.data().live_sessions(user, now))
    }

    async fn rotate(&self, rotation: &Rotation) -> Result<bool, PortError> {
        let mut data = self.data();
        let Some(record) = data.sessions.get_mut(&rotation.session_id) else {
            return Ok(false);
        };
        if !record.session.is_live(rotation.now) || record.rotation.current != rotation.presented {
            return Ok(false);
        }
        record.rotation = RotationState {
            current: rotation.successor,
            previous: Some(rotation.presented),
            rotated_at: Some(rotation.now),
        };
        record.session.last_used_at = rotation.now;
        record.session.expires_at = rotation.successor_expires_at;
        record.sealed_successor = Some(rotation.sealed_successor.clone());
        Ok(true)
    }

    async fn revoke(
        &self,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, PortError> {
        Ok(self
            .data()
            .revoke_where(now, |session| session.id == id)
            .pop())
    }

    async fn revoke_all(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, PortError> {
        Ok(self.data().end_credentials(user, now))
    }

    async fn purge_ended(
        &self,
        now: DateTime<Utc>,
        revoked_grace: std::time::Duration,
        batch: u32,
    ) -> Result<u64, PortError> {
        // A grace too large to subtract keeps every revoked session.
        let cutoff = chrono::TimeDelta::from_std(revoked_grace)
            .ok()
            .and_then(|grace| now.checked_sub_signed(grace));
        let ended = |session: &Session| {
            session.expires_at <= now
                || session
                    .revoked_at
                    .zip(cutoff)
                    .is_some_and(|(revoked_at, cutoff)| revoked_at < cutoff)
        };
        let mut data = self.data();
        let doomed: Vec<SessionId> = data
            .sessions
            .values()
            .filter(|record| ended(&record.session))
            .map(|record| record.session.id)
            .take(batch as usize)
            .collect();
        for id in &doomed {
            data.sessions.remove(id);
        }
        Ok(doomed.len() as u64)
    }

    async fn clear_sealed_successors(
        &self,
        rotated_before: DateTime<Utc>,
        batch: u32,
    ) -> Result<u64, PortError> {
        let mut data = self.data();
        let mut cleared = 0;
        for record in data.sessions.values_mut() {
            if cleared == u64::from(batch) {
                break;
            }
            let past_window = record
                .rotation
                .rotated_at
                .is_some_and(|at| at < rotated_before);
            if past_window && record.sealed_successor.take().is_some() {
                cleared += 1;
            }
        }
        Ok(cleared)
    }
}

// The store's behaviour is the port contract suite's (`crates/contract`, run on this store and
// on Postgres): it has nothing of its own to test.
