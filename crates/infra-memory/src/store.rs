use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use application::PortError;
use application::ports::{
    CreateRoleError, CreateUserError, RoleChanges, RoleDeletion, RoleRepository, Rotation,
    SessionRecord, SessionRepository, UserChanges, UserPage, UserQuery, UserRepository,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{
    Email, PasswordHash, Role, RoleId, RoleSlug, RotationState, Session, SessionId, TokenId, User,
    UserId,
};

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
}

impl Data {
    /// Whether a user other than `except` has `email`.
    fn email_taken(&self, email: &Email, except: Option<UserId>) -> bool {
        self.users
            .values()
            .any(|(user, _)| Some(user.id) != except && &user.email == email)
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
        data.users
            .insert(user.id, (user.clone(), password_hash.clone()));
        Ok(())
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, PortError> {
        let data = self.data();
        Ok(data.users.get(&id).map(|(user, _)| data.user(user)))
    }

    async fn find_credentials(
        &self,
        email: &Email,
    ) -> Result<Option<(User, PasswordHash)>, PortError> {
        let data = self.data();
        Ok(data
            .users
            .values()
            .find(|(user, _)| &user.email == email)
            .map(|(user, hash)| (data.user(user), hash.clone())))
    }

    async fn password_hash(&self, id: UserId) -> Result<Option<PasswordHash>, PortError> {
        Ok(self.data().users.get(&id).map(|(_, hash)| hash.clone()))
    }

    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        if let Some((user, stored)) = self.data().users.get_mut(&id) {
            *stored = hash.clone();
            user.updated_at = now;
        }
        Ok(())
    }

    async fn list(&self, query: &UserQuery) -> Result<UserPage, PortError> {
        let data = self.data();
        let needle = query.q.as_deref().map(str::to_lowercase);
        let mut matches: Vec<User> = data
            .users
            .values()
            .map(|(user, _)| data.user(user))
            .filter(|user| {
                let text = needle.as_deref().is_none_or(|needle| {
                    user.email.normalized().contains(needle)
                        || user
                            .name
                            .as_deref()
                            .is_some_and(|name| name.to_lowercase().contains(needle))
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
        let role = changes
            .role
            .and_then(|role| data.roles.get(&role))
            .map(Role::to_ref);
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
            data.revoke_where(now, |session| session.user_id == id)
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
        if data.users.values().any(|(user, _)| user.is_primary_admin) {
            return Ok(false);
        }
        if data.email_taken(&admin.email, None) {
            return Err(CreateUserError::EmailTaken);
        }
        data.users
            .insert(admin.id, (admin.clone(), password_hash.clone()));
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
        Ok(data.revoke_where(now, |session| session.user_id == id))
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
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Role, PortError> {
        let mut data = self.data();
        if let Some(role) = data.roles.values().find(|role| &role.slug == slug) {
            return Ok(role.clone());
        }
        let role = Role {
            id: RoleId::generate(),
            slug: slug.clone(),
            name: name.to_owned(),
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
    async fn create(&self, session: &Session, refresh_jti: TokenId) -> Result<(), PortError> {
        let record = SessionRecord {
            session: session.clone(),
            rotation: RotationState {
                current: refresh_jti,
                previous: None,
                rotated_at: None,
            },
            sealed_successor: None,
        };
        self.data().sessions.insert(session.id, record);
        Ok(())
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
        Ok(self
            .data()
            .revoke_where(now, |session| session.user_id == user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    async fn store_with_user() -> (InMemoryStore, User) {
        let store = InMemoryStore::new();
        let now = Utc::now();
        let role = store
            .ensure(&RoleSlug::parse("members").unwrap(), "Members", now)
            .await
            .unwrap();
        let user = User::register(
            Email::parse("Ada@example.com").unwrap(),
            None,
            role.to_ref(),
            now,
        );
        UserRepository::create(&store, &user, &PasswordHash::new("h1"))
            .await
            .unwrap();
        (store, user)
    }

    fn session(user: &User, now: DateTime<Utc>) -> Session {
        Session {
            id: SessionId::generate(),
            user_id: user.id,
            created_at: now,
            last_used_at: now,
            expires_at: now + TimeDelta::days(1),
            user_agent: None,
            ip: None,
            revoked_at: None,
        }
    }

    #[tokio::test]
    async fn emails_are_unique_case_insensitively() {
        let (store, user) = store_with_user().await;
        let twin = User::register(
            Email::parse("ADA@EXAMPLE.COM").unwrap(),
            None,
            user.role.clone(),
            Utc::now(),
        );
        let result = UserRepository::create(&store, &twin, &PasswordHash::new("h2")).await;
        assert!(matches!(result, Err(CreateUserError::EmailTaken)));
        let found = store
            .find_credentials(&Email::parse("ada@EXAMPLE.com").unwrap())
            .await
            .unwrap();
        assert_eq!(
            found.map(|(u, h)| (u.id, h)),
            Some((user.id, PasswordHash::new("h1")))
        );
    }

    #[tokio::test]
    async fn rotation_is_a_compare_and_set() {
        let (store, user) = store_with_user().await;
        let now = Utc::now();
        let session = session(&user, now);
        let first = TokenId::generate();
        SessionRepository::create(&store, &session, first)
            .await
            .unwrap();
        let rotation = Rotation {
            session_id: session.id,
            presented: first,
            successor: TokenId::generate(),
            successor_expires_at: now + TimeDelta::days(2),
            sealed_successor: "sealed".into(),
            now,
        };
        assert!(store.rotate(&rotation).await.unwrap());
        assert!(!store.rotate(&rotation).await.unwrap());
        let record = SessionRepository::find(&store, session.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.rotation.previous, Some(first));
        assert_eq!(record.session.expires_at, now + TimeDelta::days(2));
    }

    #[tokio::test]
    async fn password_replacement_revokes_only_live_sessions_of_the_user() {
        let (store, user) = store_with_user().await;
        let now = Utc::now();
        let live = session(&user, now);
        let mut dead = session(&user, now);
        dead.expires_at = now - TimeDelta::seconds(1);
        SessionRepository::create(&store, &live, TokenId::generate())
            .await
            .unwrap();
        SessionRepository::create(&store, &dead, TokenId::generate())
            .await
            .unwrap();
        let revoked = store
            .replace_password(user.id, &PasswordHash::new("h2"), now)
            .await
            .unwrap();
        assert_eq!(
            revoked.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![live.id]
        );
        assert_eq!(
            store.password_hash(user.id).await.unwrap(),
            Some(PasswordHash::new("h2"))
        );
        assert!(store.list_live(user.id, now).await.unwrap().is_empty());
        assert_eq!(store.revoke(live.id, now).await.unwrap(), None);
    }
}
