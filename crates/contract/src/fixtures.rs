//! What the store contracts share: a fixed clock, and stored users, roles, sessions and link
//! tokens.

use std::time::Duration;

use authd_application::ports::{IssuedLink, LinkRequest, Rotation, TokenDigest, UserQuery};
use authd_domain::{
    DisplayName, Email, EmailKind, EmailRateLimit, LinkPurpose, PasswordHash, Role,
    RoleDescription, RoleId, RoleName, RoleSlug, Session, SessionId, SessionLifetime, TokenId,
    User, UserId,
};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use crate::Store;

/// A fixed clock: the store ports take the time as a parameter and read no clock of their own.
pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 12, 0, 0).unwrap()
}

/// `t0` plus `minutes`.
pub(crate) fn at(minutes: i64) -> DateTime<Utc> {
    t0() + TimeDelta::minutes(minutes)
}

/// When the contracts look into the outbox: after every other time they use.
pub(crate) fn later() -> DateTime<Utc> {
    at(1_000_000)
}

/// A digest made from `label` (at most 32 bytes): distinct labels make distinct digests.
pub(crate) fn digest(label: &str) -> TokenDigest {
    let mut bytes = [0u8; 32];
    bytes[..label.len()].copy_from_slice(label.as_bytes());
    TokenDigest(bytes)
}

/// The sealed token of the link made from `label`.
pub(crate) fn sealed(label: &str) -> String {
    format!("sealed-{label}")
}

/// A link of `purpose` made from `label` (see [`digest`] and [`sealed`]), expiring at
/// `expires_at`.
pub(crate) fn link(purpose: LinkPurpose, label: &str, expires_at: DateTime<Utc>) -> IssuedLink {
    IssuedLink {
        purpose,
        digest: digest(label),
        sealed: sealed(label),
        expires_at,
    }
}

/// A reset link made from `label`, expiring at `t0 + 1 h`.
pub(crate) fn reset_link(label: &str) -> IssuedLink {
    link(LinkPurpose::ResetPassword, label, at(60))
}

/// A verification link made from `label`, expiring at `t0 + 1 day`.
pub(crate) fn verify_link(label: &str) -> IssuedLink {
    link(LinkPurpose::VerifyEmail, label, at(24 * 60))
}

/// The email limit of the API: one per minute, five per hour.
pub(crate) fn limit() -> EmailRateLimit {
    EmailRateLimit::default()
}

/// A limit that never refuses.
pub(crate) fn no_limit() -> EmailRateLimit {
    EmailRateLimit::new(Duration::ZERO, usize::MAX, Duration::from_secs(1))
}

/// An email as the contracts compare it: kind, recipient, sealed token.
pub(crate) type Queued = (EmailKind, String, Option<String>);

/// A link email to `to` carrying the token of `label`.
pub(crate) fn link_email(kind: EmailKind, to: &str, label: &str) -> Queued {
    (kind, to.to_owned(), Some(sealed(label)))
}

/// The password-changed notice to `to`.
pub(crate) fn notice(to: &str) -> Queued {
    (EmailKind::PasswordChanged, to.to_owned(), None)
}

/// The hash every stored user starts with.
pub(crate) fn old_hash() -> PasswordHash {
    PasswordHash::new("$argon2id$old")
}

pub(crate) fn email(raw: &str) -> Email {
    Email::parse(raw).unwrap()
}

pub(crate) fn slug(raw: &str) -> RoleSlug {
    RoleSlug::parse(raw).unwrap()
}

/// A (non-blank) display name.
pub(crate) fn display_name(raw: &str) -> DisplayName {
    DisplayName::parse(raw).unwrap().unwrap()
}

pub(crate) fn role_name(raw: &str) -> RoleName {
    RoleName::parse(raw).unwrap()
}

/// A (non-blank) role description.
pub(crate) fn description(raw: &str) -> RoleDescription {
    RoleDescription::parse(raw).unwrap().unwrap()
}

/// A role (not stored) created and last changed at `at`.
pub(crate) fn new_role(slug_text: &str, at: DateTime<Utc>) -> Role {
    Role {
        id: RoleId::generate(),
        slug: slug(slug_text),
        name: role_name(&format!("The {slug_text}")),
        description: Some(description(&format!("What {slug_text} may do"))),
        created_at: at,
        updated_at: at,
    }
}

/// A session of `user` (not stored) created at `t0 + created`, expiring at `t0 + expires`.
pub(crate) fn new_session(user: &User, created: TimeDelta, expires: TimeDelta) -> Session {
    Session {
        id: SessionId::generate(),
        user_id: user.id,
        created_at: t0() + created,
        last_used_at: t0() + created,
        expires_at: t0() + expires,
        user_agent: Some("test-agent/1.0".into()),
        ip: Some("192.0.2.7".into()),
        revoked_at: None,
    }
}

/// The lifetimes the rotations here use: refresh tokens live 7 days, sessions 30.
pub(crate) fn lifetime() -> SessionLifetime {
    SessionLifetime::new(TimeDelta::days(7), TimeDelta::days(30))
}

/// An exchange of `presented` in `session` (by its user) at `now`, with a fresh successor and
/// sealed ids.
pub(crate) fn rotation(session: &Session, presented: TokenId, now: DateTime<Utc>) -> Rotation {
    Rotation {
        session_id: session.id,
        user_id: session.user_id,
        presented,
        successor: TokenId::generate(),
        lifetime: lifetime(),
        sealed_successor: format!("sealed-{}", TokenId::generate()),
        now,
    }
}

/// Page `page` of `per_page` users, without filters.
pub(crate) fn page(page: u32, per_page: u32) -> UserQuery {
    UserQuery {
        page,
        per_page,
        q: None,
        role: None,
        is_active: None,
    }
}

/// The first page of 100 users whose email or name contains `q`.
pub(crate) fn search(q: &str) -> UserQuery {
    UserQuery {
        q: Some(q.into()),
        ..page(1, 100)
    }
}

pub(crate) fn ids(users: &[User]) -> Vec<UserId> {
    users.iter().map(|user| user.id).collect()
}

pub(crate) fn session_ids(sessions: &[Session]) -> Vec<SessionId> {
    sessions.iter().map(|session| session.id).collect()
}

pub(crate) fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

/// What [`Store::mixed_sessions`] made.
pub(crate) struct MixedSessions {
    pub live_a: Session,
    pub live_b: Session,
    pub expired: Session,
    pub others: Session,
}

impl Store<'_> {
    /// The `members` role, made on first use (every user of the fixtures holds it).
    pub(crate) async fn members(&self) -> Role {
        self.roles
            .ensure(&slug("members"), &role_name("Members"), t0())
            .await
            .unwrap()
    }

    /// A stored role.
    pub(crate) async fn role(&self, slug_text: &str, at: DateTime<Utc>) -> Role {
        let role = new_role(slug_text, at);
        self.roles.create(&role).await.unwrap();
        role
    }

    /// A stored, active member named Ada, created at `t0`, with [`old_hash`].
    pub(crate) async fn user(&self, address: &str) -> User {
        let role = self.members().await;
        let user = User::register(
            email(address),
            Some(display_name("Ada")),
            role.to_ref(),
            t0(),
        );
        self.users.create(&user, &old_hash(), None).await.unwrap();
        user
    }

    /// A stored user named `name`, holding `role`, created at `t0 + created`.
    pub(crate) async fn member(
        &self,
        address: &str,
        name: Option<&str>,
        role: &Role,
        created: TimeDelta,
        is_active: bool,
    ) -> User {
        let user = User {
            is_active,
            ..User::register(
                email(address),
                name.map(display_name),
                role.to_ref(),
                t0() + created,
            )
        };
        self.users.create(&user, &old_hash(), None).await.unwrap();
        user
    }

    /// A stored, active member created at `t0` with [`old_hash`] by a signup: with the
    /// verification link made from `label`.
    pub(crate) async fn signup(&self, address: &str, label: &str) -> User {
        let role = self.members().await;
        let user = User::register(email(address), None, role.to_ref(), t0());
        self.users
            .create(&user, &old_hash(), Some(&verify_link(label)))
            .await
            .unwrap();
        user
    }

    /// A reset link made from `label` requested for `user` at `now`, queued.
    pub(crate) async fn reset_requested(
        &self,
        user: &User,
        label: &str,
        now: DateTime<Utc>,
    ) -> IssuedLink {
        let link = reset_link(label);
        let requested = self
            .links
            .request_reset(&user.email, &link, &limit(), now)
            .await
            .unwrap();
        assert_eq!(requested, LinkRequest::Queued, "{label}");
        link
    }

    /// The id of the active user holding the unspent, unexpired token of `link` at `now`.
    pub(crate) async fn holder(&self, link: &IssuedLink, now: DateTime<Utc>) -> Option<UserId> {
        self.links
            .holder(link.purpose, &link.digest, now)
            .await
            .unwrap()
            .map(|user| user.id)
    }

    /// Every email waiting in the outbox, sorted. Read by a claim at [`later`] without a
    /// lease, so they stay due for the next look (only their attempts count up); the outbox
    /// contracts, which care about due times, claim by themselves instead.
    pub(crate) async fn waiting(&self) -> Vec<Queued> {
        let claimed = self
            .outbox
            .claim(later(), Duration::ZERO, 1000)
            .await
            .unwrap();
        sorted(
            claimed
                .into_iter()
                .map(|email| (email.kind, email.recipient, email.sealed_token))
                .collect(),
        )
    }

    /// How many emails wait in the outbox.
    pub(crate) async fn depth(&self) -> u64 {
        self.outbox.stats().await.unwrap().depth
    }

    /// A primary admin (not stored) holding `members`.
    pub(crate) async fn admin(&self, address: &str) -> User {
        let role = self.members().await;
        User::primary_admin(email(address), role.to_ref(), t0())
    }

    /// The ids of one page of users matching `query`, and the total.
    pub(crate) async fn listed(&self, query: UserQuery) -> (Vec<UserId>, u64) {
        let page = self.users.list(&query).await.unwrap();
        (ids(&page.items), page.total)
    }

    /// The sessions the revoking operations are tried on: two live ones of `user` (created at
    /// `t0` and a second later, ending in a day), one of `user` already expired, and a live
    /// one of `other`.
    pub(crate) async fn mixed_sessions(&self, user: &User, other: &User) -> MixedSessions {
        let (live_a, _) = self
            .session(user, TimeDelta::zero(), TimeDelta::days(1))
            .await;
        let (live_b, _) = self
            .session(user, TimeDelta::seconds(1), TimeDelta::days(1))
            .await;
        let (expired, _) = self
            .session(user, -TimeDelta::days(2), -TimeDelta::days(1))
            .await;
        let (others, _) = self
            .session(other, TimeDelta::zero(), TimeDelta::days(1))
            .await;
        MixedSessions {
            live_a,
            live_b,
            expired,
            others,
        }
    }

    /// A stored session of `user` created at `t0 + created`, expiring at `t0 + expires`,
    /// opened at the user's current credentials version; and its first refresh token.
    pub(crate) async fn session(
        &self,
        user: &User,
        created: TimeDelta,
        expires: TimeDelta,
    ) -> (Session, TokenId) {
        let session = new_session(user, created, expires);
        let jti = TokenId::generate();
        let version = self.version(user).await;
        assert!(self.sessions.create(&session, jti, version).await.unwrap());
        (session, jti)
    }

    /// A session of `user` revoked at `revoked_at`.
    pub(crate) async fn revoked_session(&self, user: &User, revoked_at: DateTime<Utc>) -> Session {
        let (session, _) = self
            .session(user, -TimeDelta::hours(1), TimeDelta::days(1))
            .await;
        let revoked = self.sessions.revoke(session.id, revoked_at).await.unwrap();
        assert_eq!(revoked.map(|s| s.revoked_at), Some(Some(revoked_at)));
        session
    }

    /// A live session of `user` whose first refresh token was exchanged at `rotated`, so it
    /// holds a sealed successor pair.
    pub(crate) async fn rotated_session(&self, user: &User, rotated: DateTime<Utc>) -> SessionId {
        let (session, jti) = self
            .session(user, -TimeDelta::hours(1), TimeDelta::days(1))
            .await;
        assert!(
            self.sessions
                .rotate(&rotation(&session, jti, rotated))
                .await
                .unwrap()
                .is_some()
        );
        session.id
    }

    /// The session's sealed successor pair, as stored; the profile it was signed for is there
    /// exactly when the pair is.
    pub(crate) async fn sealed(&self, session: SessionId) -> Option<String> {
        let record = self.sessions.find(session).await.unwrap().unwrap();
        assert_eq!(
            record.signed_profile.is_some(),
            record.sealed_successor.is_some(),
            "{record:?}"
        );
        record.sealed_successor
    }

    /// The ids of the user's live sessions at `t0`, newest first.
    pub(crate) async fn live_ids(&self, user: &User) -> Vec<SessionId> {
        session_ids(&self.sessions.list_live(user.id, t0()).await.unwrap())
    }

    /// The user's credentials version, as a login reads it.
    pub(crate) async fn version(&self, user: &User) -> i64 {
        self.users
            .find_credentials(&user.email)
            .await
            .unwrap()
            .unwrap()
            .version
    }

    /// Whether a session of `user` opened against credentials `version` is stored.
    pub(crate) async fn open(&self, user: &User, version: i64) -> (Session, bool) {
        let session = new_session(user, TimeDelta::zero(), TimeDelta::days(1));
        let stored = self
            .sessions
            .create(&session, TokenId::generate(), version)
            .await
            .unwrap();
        (session, stored)
    }
}
