use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use authd_application::PortError;
use authd_application::ports::{
    CreateRoleError, CreateUserError, Credentials, RoleChanges, RoleDeletion, RoleRepository,
    Rotation, SessionRecord, SessionRepository, UserChanges, UserPage, UserQuery, UserRepository,
};
use authd_domain::{
    Email, PasswordHash, Role, RoleId, RoleSlug, RotationState, Session, SessionId, TokenId, User,
    UserId,
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
            found.map(|c| (c.user.id, c.hash, c.version)),
            Some((user.id, PasswordHash::new("h1"), 0))
        );
    }

    #[tokio::test]
    async fn rotation_is_a_compare_and_set() {
        let (store, user) = store_with_user().await;
        let now = Utc::now();
        let session = session(&user, now);
        let first = TokenId::generate();
        assert!(
            SessionRepository::create(&store, &session, first, 0)
                .await
                .unwrap()
        );
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
        assert!(
            SessionRepository::create(&store, &live, TokenId::generate(), 0)
                .await
                .unwrap()
        );
        assert!(
            SessionRepository::create(&store, &dead, TokenId::generate(), 0)
                .await
                .unwrap()
        );
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

    /// Stores `session` as it is (revoked or expired ones too), whatever its user's state.
    fn put(store: &InMemoryStore, session: &Session) {
        let record = SessionRecord {
            session: session.clone(),
            rotation: RotationState {
                current: TokenId::generate(),
                previous: None,
                rotated_at: None,
            },
            sealed_successor: None,
        };
        store.data().sessions.insert(session.id, record);
    }

    #[tokio::test]
    async fn a_purge_deletes_expired_and_long_revoked_sessions_only() {
        let (store, user) = store_with_user().await;
        let now = Utc::now();
        let grace = std::time::Duration::from_secs(960);
        let live = session(&user, now);
        let mut expired = session(&user, now);
        expired.expires_at = now;
        let mut long_revoked = session(&user, now);
        long_revoked.revoked_at = Some(now - TimeDelta::seconds(961));
        let mut recently_revoked = session(&user, now);
        recently_revoked.revoked_at = Some(now - TimeDelta::seconds(959));
        for session in [&live, &expired, &long_revoked, &recently_revoked] {
            put(&store, session);
        }

        assert_eq!(store.purge_ended(now, grace, 500).await.unwrap(), 2);

        let kept = |id| SessionRepository::find(&store, id);
        assert!(kept(live.id).await.unwrap().is_some());
        assert!(kept(recently_revoked.id).await.unwrap().is_some());
        assert!(kept(expired.id).await.unwrap().is_none());
        assert!(kept(long_revoked.id).await.unwrap().is_none());
        assert_eq!(store.purge_ended(now, grace, 500).await.unwrap(), 0);
    }

    /// Stores a live session of `user` rotated at `at`, with a sealed pair.
    fn rotated_at(store: &InMemoryStore, user: &User, at: DateTime<Utc>) -> SessionId {
        let session = session(user, at);
        let record = SessionRecord {
            session: session.clone(),
            rotation: RotationState {
                current: TokenId::generate(),
                previous: Some(TokenId::generate()),
                rotated_at: Some(at),
            },
            sealed_successor: Some("sealed".into()),
        };
        store.data().sessions.insert(session.id, record);
        session.id
    }

    async fn sealed(store: &InMemoryStore, id: SessionId) -> Option<String> {
        SessionRepository::find(store, id)
            .await
            .unwrap()
            .unwrap()
            .sealed_successor
    }

    #[tokio::test]
    async fn sealed_pairs_are_cleared_past_the_window_a_batch_at_a_time() {
        let (store, user) = store_with_user().await;
        let now = Utc::now();
        let cutoff = now - TimeDelta::seconds(10);
        let old: Vec<SessionId> = (0..3)
            .map(|_| rotated_at(&store, &user, cutoff - TimeDelta::seconds(1)))
            .collect();
        let recent = rotated_at(&store, &user, cutoff);
        assert_eq!(store.clear_sealed_successors(cutoff, 2).await.unwrap(), 2);
        assert_eq!(store.clear_sealed_successors(cutoff, 2).await.unwrap(), 1);
        assert_eq!(store.clear_sealed_successors(cutoff, 2).await.unwrap(), 0);
        for id in old {
            assert_eq!(sealed(&store, id).await, None);
        }
        // Rotated at the cutoff: still inside its window.
        assert_eq!(sealed(&store, recent).await.as_deref(), Some("sealed"));
    }

    #[tokio::test]
    async fn revocation_clears_the_sealed_pair() {
        let (store, user) = store_with_user().await;
        let now = Utc::now();
        let (one, all) = (
            rotated_at(&store, &user, now),
            rotated_at(&store, &user, now),
        );
        store.revoke(one, now).await.unwrap();
        assert_eq!(sealed(&store, one).await, None);
        assert_eq!(sealed(&store, all).await.as_deref(), Some("sealed"));
        store.revoke_all(user.id, now).await.unwrap();
        assert_eq!(sealed(&store, all).await, None);
    }

    #[tokio::test]
    async fn a_purge_deletes_at_most_a_batch() {
        let (store, user) = store_with_user().await;
        let now = Utc::now();
        for _ in 0..5 {
            let mut expired = session(&user, now);
            expired.expires_at = now - TimeDelta::seconds(1);
            put(&store, &expired);
        }
        let live = session(&user, now);
        put(&store, &live);
        let grace = std::time::Duration::from_secs(960);
        let mut batches = Vec::new();
        for _ in 0..4 {
            batches.push(store.purge_ended(now, grace, 2).await.unwrap());
        }
        assert_eq!(batches, [2, 2, 1, 0]);
        assert_eq!(
            store.list_live(user.id, now).await.unwrap(),
            vec![live.clone()]
        );
    }

    #[tokio::test]
    async fn every_credentials_change_bumps_the_version_and_refuses_older_logins() {
        let (store, user) = store_with_user().await;
        let now = Utc::now();
        let version = |store: &InMemoryStore| store.data().version(user.id);
        assert_eq!(version(&store), 0);
        store
            .replace_password(user.id, &PasswordHash::new("h2"), now)
            .await
            .unwrap();
        assert_eq!(version(&store), 1);
        store.revoke_all(user.id, now).await.unwrap();
        assert_eq!(version(&store), 2);
        let rename = UserChanges {
            name: Some(None),
            ..UserChanges::default()
        };
        UserRepository::update(&store, user.id, &rename, false, now)
            .await
            .unwrap();
        assert_eq!(version(&store), 2);
        let deactivate = UserChanges {
            is_active: Some(false),
            ..UserChanges::default()
        };
        let old = session(&user, now);
        assert!(
            !SessionRepository::create(&store, &old, TokenId::generate(), 1)
                .await
                .unwrap()
        );
        assert!(
            SessionRepository::find(&store, old.id)
                .await
                .unwrap()
                .is_none()
        );
        let current = session(&user, now);
        assert!(
            SessionRepository::create(&store, &current, TokenId::generate(), 2)
                .await
                .unwrap()
        );
        let (_, revoked) = UserRepository::update(&store, user.id, &deactivate, true, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            revoked.iter().map(|s| s.id).collect::<Vec<_>>(),
            [current.id]
        );
        assert_eq!(version(&store), 3);
        // Inactive: no session even at the current version.
        assert!(
            !SessionRepository::create(&store, &session(&user, now), TokenId::generate(), 3)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_rehash_is_a_compare_and_set_on_the_old_hash() {
        let (store, user) = store_with_user().await;
        let now = Utc::now();
        let stale = store
            .update_password_hash(
                user.id,
                &PasswordHash::new("stale"),
                &PasswordHash::new("rehash"),
                now,
            )
            .await
            .unwrap();
        assert!(!stale);
        assert_eq!(
            store.password_hash(user.id).await.unwrap(),
            Some(PasswordHash::new("h1"))
        );
        let current = store
            .update_password_hash(
                user.id,
                &PasswordHash::new("h1"),
                &PasswordHash::new("rehash"),
                now,
            )
            .await
            .unwrap();
        assert!(current);
        assert_eq!(
            store.password_hash(user.id).await.unwrap(),
            Some(PasswordHash::new("rehash"))
        );
    }

    #[tokio::test]
    async fn emails_are_found_and_searched_by_their_nfc_form() {
        let store = InMemoryStore::new();
        let now = Utc::now();
        let role = store
            .ensure(&RoleSlug::parse("members").unwrap(), "Members", now)
            .await
            .unwrap();
        let user = User::register(
            Email::parse("\u{c9}lodie@example.fr").unwrap(),
            None,
            role.to_ref(),
            now,
        );
        UserRepository::create(&store, &user, &PasswordHash::new("h"))
            .await
            .unwrap();
        let decomposed = Email::parse("E\u{301}lodie@example.fr").unwrap();
        let found = store.find_credentials(&decomposed).await.unwrap().unwrap();
        assert_eq!(found.user.id, user.id);
        let page = UserRepository::list(
            &store,
            &UserQuery {
                page: 1,
                per_page: 20,
                q: Some("E\u{301}LO".into()),
                role: None,
                is_active: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(page.total, 1);
    }
}
