use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use authd_application::ports::{
    CreateRoleError, CreateUserError, Credentials, IssuedLink, LinkRequest, LinkTokenRepository,
    Outbox, OutboxEmail, OutboxStats, RoleChanges, RoleDeletion, RoleRepository, Rotated, Rotation,
    SessionRecord, SessionRepository, TokenDigest, UserChanges, UserPage, UserQuery,
    UserRepository,
};
use authd_application::{AccessProfile, PortError};
use authd_domain::{
    Email, EmailId, EmailKind, EmailRateLimit, LinkPurpose, PasswordHash, Role, RoleId, RoleName,
    RoleSlug, RotationState, Session, SessionId, TokenId, User, UserId,
};
use chrono::{DateTime, Utc};

/// Users, roles, sessions, link tokens and the outbox in one map behind one lock, so that
/// every multi-row operation (a password change with its revocations and its notice, a
/// rotation, a reset) is as atomic as its Postgres transaction.
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
    /// Link tokens by digest (the table's primary key).
    links: HashMap<TokenDigest, LinkRow>,
    /// Queued emails, kept until the purge deletes them once sent or dead.
    outbox: HashMap<EmailId, OutboxRow>,
}

/// A link token as stored: its digest is the key.
#[derive(Debug, Clone)]
struct LinkRow {
    user: UserId,
    purpose: LinkPurpose,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    spent_at: Option<DateTime<Utc>>,
}

impl LinkRow {
    /// Whether it still works at `now`.
    fn usable(&self, now: DateTime<Utc>) -> bool {
        self.spent_at.is_none() && self.expires_at > now
    }
}

/// An outbox row: what a claim hands out, and the delivery state. The last error the
/// Postgres row keeps is for an operator reading the table; no port reads it, so memory keeps
/// none.
#[derive(Debug, Clone)]
struct OutboxRow {
    email: OutboxEmail,
    next_attempt_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    dead_at: Option<DateTime<Utc>>,
}

impl OutboxRow {
    fn pending(&self) -> bool {
        self.sent_at.is_none() && self.dead_at.is_none()
    }
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

    /// Sets the user's password hash as a password change does, in one step under the lock:
    /// bumps the credentials version, revokes the live sessions, spends the reset tokens and
    /// queues the notice. With `expected_version`, only while the user's credentials are still
    /// at that version. `None`, changing nothing, when there is no such user or the version
    /// moved. The replacement and the reset share it, so both revoke alike.
    fn set_password(
        &mut self,
        id: UserId,
        expected_version: Option<i64>,
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Option<Vec<Session>> {
        if expected_version.is_some_and(|expected| expected != self.version(id)) {
            return None;
        }
        let (user, stored) = self.users.get_mut(&id)?;
        *stored = hash.clone();
        user.updated_at = now;
        let revoked = self.end_credentials(id, now);
        self.password_changed(id, now);
        Some(revoked)
    }

    /// What follows any new password: the user's reset tokens stop working, and the notice
    /// goes to its address as it is now.
    fn password_changed(&mut self, id: UserId, now: DateTime<Utc>) {
        let Some(recipient) = self.users.get(&id).map(|(user, _)| user.email.clone()) else {
            return;
        };
        self.spend_resets(id, now);
        self.queue(EmailKind::PasswordChanged, &recipient, None, now);
    }

    /// Spends the user's unspent reset tokens.
    fn spend_resets(&mut self, user: UserId, now: DateTime<Utc>) {
        self.spend_tokens(user, now, |purpose| purpose == LinkPurpose::ResetPassword);
    }

    /// Spends the user's unspent tokens whose purpose `pick` chooses.
    fn spend_tokens(
        &mut self,
        user: UserId,
        now: DateTime<Utc>,
        pick: impl Fn(LinkPurpose) -> bool,
    ) {
        for row in self.links.values_mut() {
            if row.user == user && pick(row.purpose) && row.spent_at.is_none() {
                row.spent_at = Some(now);
            }
        }
    }

    /// When the user's tokens of `purpose` were created (spent or not), for the email limit.
    fn sent_times(&self, user: UserId, purpose: LinkPurpose) -> Vec<DateTime<Utc>> {
        self.links
            .values()
            .filter(|row| row.user == user && row.purpose == purpose)
            .map(|row| row.created_at)
            .collect()
    }

    /// The primary key's check, made before anything is written so a failure changes nothing.
    fn check_new_link(&self, link: &IssuedLink) -> Result<(), PortError> {
        if self.links.contains_key(&link.digest) {
            Err(PortError::Unexpected(anyhow::anyhow!(
                "a link token with this digest exists"
            )))
        } else {
            Ok(())
        }
    }

    /// Stores `link` for `user` as a token of `purpose` and queues the email that carries it.
    /// The caller has checked it with [`check_new_link`](Self::check_new_link).
    fn store_link(
        &mut self,
        user: &User,
        purpose: LinkPurpose,
        link: &IssuedLink,
        now: DateTime<Utc>,
    ) {
        self.links.insert(
            link.digest,
            LinkRow {
                user: user.id,
                purpose,
                created_at: now,
                expires_at: link.expires_at,
                spent_at: None,
            },
        );
        self.queue(purpose.email(), &user.email, Some(link.sealed.clone()), now);
    }

    /// Queues an email to `recipient`'s address as stored, due at once.
    fn queue(
        &mut self,
        kind: EmailKind,
        recipient: &Email,
        sealed_token: Option<String>,
        now: DateTime<Utc>,
    ) {
        let id = EmailId::generate();
        let email = OutboxEmail {
            id,
            kind,
            recipient: recipient.as_str().to_owned(),
            sealed_token,
            attempts: 0,
            created_at: now,
        };
        self.outbox.insert(
            id,
            OutboxRow {
                email,
                next_attempt_at: now,
                sent_at: None,
                dead_at: None,
            },
        );
    }

    /// Spends the usable token of `purpose` with this digest whose user is active, as one
    /// compare-and-set; returns its user.
    fn spend(
        &mut self,
        purpose: LinkPurpose,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Option<UserId> {
        let user = self
            .links
            .get(digest)
            .filter(|row| row.purpose == purpose && row.usable(now))
            .map(|row| row.user)?;
        // An inactive user's token stays unspent, as the rolled-back transaction leaves it.
        self.users.get(&user).filter(|(user, _)| user.is_active)?;
        if let Some(row) = self.links.get_mut(digest) {
            row.spent_at = Some(now);
        }
        Some(user)
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
                record.signed_profile = None;
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
    async fn create<'a>(
        &self,
        user: &User,
        password_hash: &PasswordHash,
        verification: Option<&'a IssuedLink>,
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
        if let Some(link) = verification {
            data.check_new_link(link)?;
        }
        data.users
            .insert(user.id, (user.clone(), password_hash.clone()));
        if let Some(link) = verification {
            // The signup's time: the token and its email are created with the user.
            data.store_link(user, LinkPurpose::VerifyEmail, link, user.created_at);
        }
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
        // `Email` compares normalised forms: another case of the same address is no move.
        let moved = changes
            .email
            .as_ref()
            .is_some_and(|email| *email != user.email);
        if let Some(email) = &changes.email {
            user.email = email.clone();
        }
        if moved {
            // The old address's verification does not carry over, unless the change says so.
            user.is_verified = false;
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
        if moved || changes.is_active == Some(false) {
            // The links went to the old address, or were sent before the deactivation: none
            // works after it.
            data.spend_tokens(id, now, |_| true);
        }
        let revoked = if revoke_sessions {
            data.end_credentials(id, now)
        } else {
            Vec::new()
        };
        if changes.password_hash.is_some() {
            data.password_changed(id, now);
        }
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
        // The foreign key cascades to its link tokens; its queued emails stay.
        data.links.retain(|_, row| row.user != id);
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
        expected_version: i64,
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<Session>>, PortError> {
        Ok(self
            .data()
            .set_password(id, Some(expected_version), hash, now))
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
            signed_profile: None,
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

    async fn rotate(&self, rotation: &Rotation) -> Result<Option<Rotated>, PortError> {
        let mut data = self.data();
        let user = match data.sessions.get(&rotation.session_id) {
            Some(record) if record.session.user_id == rotation.user_id => data
                .users
                .get(&rotation.user_id)
                .map(|(user, _)| data.user(user))
                .filter(|user| user.is_active),
            _ => None,
        };
        let (Some(user), Some(record)) = (user, data.sessions.get_mut(&rotation.session_id)) else {
            return Ok(None);
        };
        if !record.session.is_live(rotation.now) || record.rotation.current != rotation.presented {
            return Ok(None);
        }
        let expires_at = rotation.successor_expiry(record.session.created_at);
        record.rotation = RotationState {
            current: rotation.successor,
            previous: Some(rotation.presented),
            rotated_at: Some(rotation.now),
        };
        record.session.last_used_at = rotation.now;
        record.session.expires_at = expires_at;
        record.sealed_successor = Some(rotation.sealed_successor.clone());
        record.signed_profile = Some(AccessProfile::from(&user));
        Ok(Some(Rotated { expires_at, user }))
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
                record.signed_profile = None;
                cleared += 1;
            }
        }
        Ok(cleared)
    }
}

#[async_trait]
impl LinkTokenRepository for InMemoryStore {
    async fn request_reset(
        &self,
        email: &Email,
        link: &IssuedLink,
        limit: &EmailRateLimit,
        now: DateTime<Utc>,
    ) -> Result<LinkRequest, PortError> {
        let mut data = self.data();
        let Some(user) = data
            .users
            .values()
            .map(|(user, _)| user)
            .find(|user| &user.email == email && user.is_active)
            .cloned()
        else {
            return Ok(LinkRequest::NoAccount);
        };
        let sent = data.sent_times(user.id, LinkPurpose::ResetPassword);
        if let Err(retry_after) = limit.check(&sent, now) {
            return Ok(LinkRequest::Limited { retry_after });
        }
        data.check_new_link(link)?;
        data.spend_resets(user.id, now);
        data.store_link(&user, LinkPurpose::ResetPassword, link, now);
        Ok(LinkRequest::Queued)
    }

    async fn request_verification(
        &self,
        user: UserId,
        link: &IssuedLink,
        limit: &EmailRateLimit,
        now: DateTime<Utc>,
    ) -> Result<LinkRequest, PortError> {
        let mut data = self.data();
        let Some(user) = data
            .users
            .get(&user)
            .map(|(user, _)| user)
            .filter(|user| user.is_active)
            .cloned()
        else {
            return Ok(LinkRequest::NoAccount);
        };
        if user.is_verified {
            return Ok(LinkRequest::AlreadyVerified);
        }
        let sent = data.sent_times(user.id, LinkPurpose::VerifyEmail);
        if let Err(retry_after) = limit.check(&sent, now) {
            return Ok(LinkRequest::Limited { retry_after });
        }
        data.check_new_link(link)?;
        data.store_link(&user, LinkPurpose::VerifyEmail, link, now);
        Ok(LinkRequest::Queued)
    }

    async fn holder(
        &self,
        purpose: LinkPurpose,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, PortError> {
        let data = self.data();
        Ok(data
            .links
            .get(digest)
            .filter(|row| row.purpose == purpose && row.usable(now))
            .and_then(|row| data.users.get(&row.user))
            .map(|(user, _)| user)
            .filter(|user| user.is_active)
            .map(|user| data.user(user)))
    }

    async fn reset_password(
        &self,
        digest: &TokenDigest,
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<Option<(User, Vec<Session>)>, PortError> {
        let mut data = self.data();
        let Some(id) = data.spend(LinkPurpose::ResetPassword, digest, now) else {
            return Ok(None);
        };
        if let Some((user, _)) = data.users.get_mut(&id) {
            // The link reached the address: it is the user's.
            user.is_verified = true;
        }
        let Some(revoked) = data.set_password(id, None, hash, now) else {
            return Ok(None);
        };
        Ok(data
            .users
            .get(&id)
            .map(|(user, _)| (data.user(user), revoked)))
    }

    async fn verify_email(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, PortError> {
        let mut data = self.data();
        let Some(id) = data.spend(LinkPurpose::VerifyEmail, digest, now) else {
            return Ok(None);
        };
        if let Some((user, _)) = data.users.get_mut(&id) {
            user.is_verified = true;
            user.updated_at = now;
        }
        Ok(Some(id))
    }

    async fn purge(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, PortError> {
        let mut data = self.data();
        let doomed: Vec<TokenDigest> = data
            .links
            .iter()
            .filter(|(_, row)| row.expires_at < before && row.created_at < before)
            .map(|(digest, _)| *digest)
            .take(batch as usize)
            .collect();
        for digest in &doomed {
            data.links.remove(digest);
        }
        Ok(doomed.len() as u64)
    }
}

#[async_trait]
impl Outbox for InMemoryStore {
    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        batch: u32,
    ) -> Result<Vec<OutboxEmail>, PortError> {
        // A lease too long to add holds the email for good, as an unbounded timestamp would.
        let until = chrono::TimeDelta::from_std(lease)
            .ok()
            .and_then(|lease| now.checked_add_signed(lease))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut data = self.data();
        // Verification emails last (`false` sorts first), then the oldest due first.
        let mut due: Vec<(bool, DateTime<Utc>, EmailId)> = data
            .outbox
            .values()
            .filter(|row| row.pending() && row.next_attempt_at <= now)
            .map(|row| {
                let last = row.email.kind == EmailKind::VerifyEmail;
                (last, row.next_attempt_at, row.email.id)
            })
            .collect();
        due.sort_unstable();
        let mut claimed = Vec::new();
        for (_, _, id) in due.into_iter().take(batch as usize) {
            if let Some(row) = data.outbox.get_mut(&id) {
                row.email.attempts = row.email.attempts.saturating_add(1);
                row.next_attempt_at = until;
                claimed.push(row.email.clone());
            }
        }
        Ok(claimed)
    }

    async fn sent(&self, id: EmailId, now: DateTime<Utc>) -> Result<(), PortError> {
        if let Some(row) = self.data().outbox.get_mut(&id) {
            row.sent_at = Some(now);
            row.email.sealed_token = None;
        }
        Ok(())
    }

    async fn failed(
        &self,
        id: EmailId,
        _error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), PortError> {
        if let Some(row) = self.data().outbox.get_mut(&id) {
            match retry_at {
                Some(at) => row.next_attempt_at = at,
                None => {
                    row.dead_at = Some(now);
                    row.email.sealed_token = None;
                }
            }
        }
        Ok(())
    }

    async fn stats(&self) -> Result<OutboxStats, PortError> {
        let data = self.data();
        let pending = data.outbox.values().filter(|row| row.pending());
        Ok(
            pending.fold(OutboxStats::default(), |stats, row| OutboxStats {
                depth: stats.depth + 1,
                oldest: Some(stats.oldest.map_or(row.email.created_at, |oldest| {
                    oldest.min(row.email.created_at)
                })),
            }),
        )
    }

    async fn purge(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, PortError> {
        let mut data = self.data();
        let done = |at: Option<DateTime<Utc>>| at.is_some_and(|at| at < before);
        let doomed: Vec<EmailId> = data
            .outbox
            .values()
            .filter(|row| done(row.sent_at) || done(row.dead_at))
            .map(|row| row.email.id)
            .take(batch as usize)
            .collect();
        for id in &doomed {
            data.outbox.remove(id);
        }
        Ok(doomed.len() as u64)
    }
}

// The store's behaviour is the port contract suite's (`crates/contract`, run on this store and
// on Postgres); here only what the suite cannot force on one lock: a race on one token.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_twenty_concurrent_resets_with_one_token_exactly_one_wins() {
        let store = Arc::new(InMemoryStore::new());
        let now = Utc::now();
        let slug = RoleSlug::parse("member").unwrap();
        let role = store
            .ensure(&slug, &RoleName::parse("Member").unwrap(), now)
            .await
            .unwrap();
        let user = User {
            id: UserId::generate(),
            email: Email::parse("Ada@Example.com").unwrap(),
            name: None,
            is_active: true,
            is_superuser: false,
            is_verified: false,
            is_primary_admin: false,
            role: role.to_ref(),
            created_at: now,
            updated_at: now,
        };
        UserRepository::create(&*store, &user, &PasswordHash::new("old"), None)
            .await
            .unwrap();
        let link = IssuedLink {
            purpose: LinkPurpose::ResetPassword,
            digest: TokenDigest([7; 32]),
            sealed: "sealed".to_owned(),
            expires_at: now + chrono::TimeDelta::hours(1),
        };
        let limit = EmailRateLimit::default();
        let requested = store.request_reset(&user.email, &link, &limit, now).await;
        assert_eq!(requested.unwrap(), LinkRequest::Queued);

        let resets: Vec<_> = (0..20)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    let hash = PasswordHash::new(format!("new-{n}"));
                    store.reset_password(&link.digest, &hash, now).await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for reset in resets {
            if let Some((user, _)) = reset.await.unwrap().unwrap() {
                winners.push(user);
            }
        }
        assert_eq!(winners.len(), 1);
        assert!(winners[0].is_verified);
        let data = store.data();
        assert_eq!(data.version(user.id), 1);
        let mut kinds: Vec<EmailKind> = data.outbox.values().map(|row| row.email.kind).collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [EmailKind::ResetPassword, EmailKind::PasswordChanged]
        );
    }
}
