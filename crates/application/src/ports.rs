//! The ports: what the flows need from the outside world. Each method's doc says which error an
//! adapter returns in which case; any other failure is a [`PortError`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use authd_domain::{
    DisplayName, Email, EmailId, EmailKind, EmailRateLimit, LinkPurpose, LinkToken, Password,
    PasswordHash, Role, RoleDescription, RoleId, RoleName, RoleSlug, RotationState, Session,
    SessionId, SessionLifetime, TokenId, User, UserId,
};
use chrono::{DateTime, SubsecRound, Utc};

use crate::PortError;
use crate::tokens::{AccessClaims, AccessProfile, DeviceClaims, PairIds, RefreshClaims};

#[cfg(any(test, feature = "mocks"))]
use mockall::automock;

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// Another user has the same lowercase email (the store's unique constraint decides).
    #[error("a user with this email already exists")]
    EmailTaken,
    /// Any other failure.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Which users a listing returns: one page of the matches, ordered by `created_at` then `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    /// The page, from 1.
    pub page: u32,
    /// Users per page, 1 to 100.
    pub per_page: u32,
    /// A case-insensitive substring of the email or the name (matched literally: `%` and `_`
    /// are not wildcards).
    pub q: Option<String>,
    /// Only users holding the role with this slug (an unknown slug matches nobody).
    pub role: Option<RoleSlug>,
    /// Only active (or only inactive) users.
    pub is_active: Option<bool>,
}

/// One page of users and the number of all matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    /// The page's users.
    pub items: Vec<User>,
    /// How many users match, over all pages.
    pub total: u64,
}

/// The fields of a user an update sets; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserChanges {
    /// A new email (unique on its lowercase form).
    pub email: Option<Email>,
    /// A new name; `Some(None)` clears it.
    pub name: Option<Option<DisplayName>>,
    /// A new role.
    pub role: Option<RoleId>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
    /// Promote or demote.
    pub is_superuser: Option<bool>,
    /// Mark the email verified or not.
    pub is_verified: Option<bool>,
    /// A new password hash.
    pub password_hash: Option<PasswordHash>,
}

/// What a login checks a password against: the user, its hash, and the version of its
/// credentials, which every password change, password set, deactivation and revoke-all bumps.
/// A session is opened only while the version is the one the password was checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user.
    pub user: User,
    /// Its password hash.
    pub hash: PasswordHash,
    /// The version of its credentials.
    pub version: i64,
}

/// Users and their password hashes.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Inserts `user` with its hash, atomically: `EmailTaken` when the lowercase email exists.
    /// With `verification` (a signup), also stores that token and queues the verification
    /// email to the user's address, in the same transaction.
    async fn create<'a>(
        &self,
        user: &User,
        password_hash: &PasswordHash,
        verification: Option<&'a IssuedLink>,
    ) -> Result<(), CreateUserError>;

    /// The user with this id, `None` when there is none.
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, PortError>;

    /// The user whose normalised email matches, with its hash and credentials version (for
    /// login).
    async fn find_credentials(&self, email: &Email) -> Result<Option<Credentials>, PortError>;

    /// The user's current hash, `None` when the user does not exist.
    async fn password_hash(&self, id: UserId) -> Result<Option<PasswordHash>, PortError>;

    /// Replaces the hash alone (a re-hash with new parameters on login), as a compare-and-set:
    /// only while the stored hash is still `old`, so a password changed meanwhile is never
    /// overwritten. Returns whether it replaced it.
    async fn update_password_hash(
        &self,
        id: UserId,
        old: &PasswordHash,
        new: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<bool, PortError>;

    /// One page of the users matching `query`, and how many match in all.
    async fn list(&self, query: &UserQuery) -> Result<UserPage, PortError>;

    /// Applies `changes` and sets `updated_at`; when `revoke_sessions`, also bumps the user's
    /// credentials version and revokes every live session of the user, in the same
    /// transaction. In that transaction too:
    ///
    /// - a new email whose normalised form differs from the old one spends every unspent link
    ///   token of the user (verification and reset alike: they were sent to the old address)
    ///   and marks the address unverified, unless `changes` sets `is_verified` itself; a new
    ///   email with the same normalised form (another case) spends nothing and keeps the mark;
    /// - a deactivation (`is_active` set to `false`) spends every unspent link token of the
    ///   user, so a later reactivation revives no link sent before;
    /// - a new password hash spends the user's reset tokens and queues the password-changed
    ///   notice to the user's address (as stored after the change).
    ///
    /// Returns the user as stored and the sessions revoked, `None` when there is no such user,
    /// `EmailTaken` when the new email belongs to another user (nothing changed).
    async fn update(
        &self,
        id: UserId,
        changes: &UserChanges,
        revoke_sessions: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<(User, Vec<Session>)>, CreateUserError>;

    /// Deletes the user and its sessions, returning the sessions that were live at `now`
    /// (`None` when there is no such user). Its email can then be used again.
    async fn delete(
        &self,
        id: UserId,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<Session>>, PortError>;

    /// Creates `admin` (marked `is_primary_admin`) unless a primary admin already exists,
    /// safely when several instances start at once: at most one primary admin ever exists (the
    /// store enforces it). Returns whether this call created it; `EmailTaken` when another,
    /// non-primary user has the email. An existing primary admin is never modified.
    async fn create_primary_admin(
        &self,
        admin: &User,
        password_hash: &PasswordHash,
    ) -> Result<bool, CreateUserError>;

    /// Replaces the hash, bumps the credentials version, revokes every live session of the
    /// user, spends its reset tokens and queues the password-changed notice, in one
    /// transaction, so a failure leaves the old password and the sessions as they were.
    ///
    /// A compare-and-set on the credentials version: it applies only while the user's version
    /// is still `expected_version` (the one read with the hash the current password was checked
    /// against), so a password change whose check raced a completed reset, a revoke-all or
    /// another change never overwrites it. Returns the sessions it revoked; `None`, changing
    /// nothing, when the version moved or there is no such user.
    async fn replace_password(
        &self,
        id: UserId,
        expected_version: i64,
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<Session>>, PortError>;
}

/// Why a role could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateRoleError {
    /// Another role has this slug (the store's unique constraint decides).
    #[error("a role with this slug already exists")]
    SlugTaken,
    /// Any other failure.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// What deleting a role did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleDeletion {
    /// The role is gone.
    Deleted,
    /// There was no such role.
    NotFound,
    /// Users still hold it: nothing was deleted (the store's foreign key decides).
    InUse,
}

/// The fields of a role an update sets; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleChanges {
    /// A new name.
    pub name: Option<RoleName>,
    /// A new description; `Some(None)` clears it.
    pub description: Option<Option<RoleDescription>>,
}

/// Roles.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait RoleRepository: Send + Sync {
    /// The role with this slug, `None` when there is none.
    async fn find_by_slug(&self, slug: &RoleSlug) -> Result<Option<Role>, PortError>;

    /// Every role, ordered by `created_at` then `id`.
    async fn list(&self) -> Result<Vec<Role>, PortError>;

    /// The role with this id, `None` when there is none.
    async fn find(&self, id: RoleId) -> Result<Option<Role>, PortError>;

    /// Inserts `role`: `SlugTaken` when its slug exists.
    async fn create(&self, role: &Role) -> Result<(), CreateRoleError>;

    /// Applies `changes` and sets `updated_at`, returning the role as stored (`None` when
    /// there is no such role).
    async fn update(
        &self,
        id: RoleId,
        changes: &RoleChanges,
        now: DateTime<Utc>,
    ) -> Result<Option<Role>, PortError>;

    /// Deletes the role unless users hold it.
    async fn delete(&self, id: RoleId) -> Result<RoleDeletion, PortError>;

    /// Creates the role when no role has this slug (safe when several instances race), and
    /// returns the stored one either way.
    async fn ensure(
        &self,
        slug: &RoleSlug,
        name: &RoleName,
        now: DateTime<Utc>,
    ) -> Result<Role, PortError>;
}

/// A session as stored, with its rotation state and the sealed successor pair of its last
/// rotation (see [`TokenIssuer::seal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session.
    pub session: Session,
    /// Its refresh-token rotation state.
    pub rotation: RotationState,
    /// The pair issued by the last rotation, sealed with the refresh token it replaced; cleared
    /// once the grace window is over (by the purge) or the session is revoked.
    pub sealed_successor: Option<String>,
    /// The user's fields the last rotation signed into its access token, stored and cleared
    /// with `sealed_successor`. `None` too for a rotation stored without them: before authd
    /// kept them, or by an older authd during a rolling deploy.
    pub signed_profile: Option<AccessProfile>,
}

/// One rotation: exchange `presented` for `successor`, only if `presented` is still current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The session.
    pub session_id: SessionId,
    /// The user the presented token names: a session of another user does not rotate.
    pub user_id: UserId,
    /// The refresh token being exchanged.
    pub presented: TokenId,
    /// The successor refresh token.
    pub successor: TokenId,
    /// The lifetimes that set the session's new `expires_at` ([`Rotation::successor_expiry`]).
    pub lifetime: SessionLifetime,
    /// The successor pair's ids, sealed for the grace window ([`TokenIssuer::seal`]).
    pub sealed_successor: String,
    /// When the exchange happens (`last_used_at`, `rotated_at`).
    pub now: DateTime<Utc>,
}

impl Rotation {
    /// The session's new `expires_at`, for a session created at `created_at`: a refresh
    /// token's lifetime from now, never past the session's absolute end, in whole seconds (as
    /// the successor's `exp` claim).
    pub fn successor_expiry(&self, created_at: DateTime<Utc>) -> DateTime<Utc> {
        let end = self.lifetime.absolute_end(created_at);
        self.lifetime.refresh_expiry(self.now, end).trunc_subsecs(0)
    }
}

/// A rotation that took place: the session's new expiry and its user as stored now, read by the
/// same atomic step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The session's new `expires_at` ([`Rotation::successor_expiry`]).
    pub expires_at: DateTime<Utc>,
    /// The session's user (active, or the rotation would not have happened).
    pub user: User,
}

/// Sessions and their rotation state: the source of truth.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// Stores a new session whose first refresh token is `refresh_jti`, in one atomic step
    /// with the check that its user is active and its credentials are still at
    /// `credentials_version` (see [`Credentials`]). Returns `false`, storing nothing, when they
    /// changed (or the user is gone or inactive); a change that commits after the session is
    /// stored revokes it, so no interleaving leaves a live session behind.
    async fn create(
        &self,
        session: &Session,
        refresh_jti: TokenId,
        credentials_version: i64,
    ) -> Result<bool, PortError>;

    /// The session with this id, live or not, `None` when there is none.
    async fn find(&self, id: SessionId) -> Result<Option<SessionRecord>, PortError>;

    /// The user's live sessions at `now`, newest first.
    async fn list_live(&self, user: UserId, now: DateTime<Utc>) -> Result<Vec<Session>, PortError>;

    /// Exchanges the refresh token as one atomic compare-and-set, in one round trip to the
    /// store: applies `rotation` only when the session is live at `rotation.now`, belongs to
    /// `rotation.user_id`, has `rotation.presented` as its current token, and its user is
    /// active; stores the user's [`AccessProfile`] as read by the same step as the record's
    /// `signed_profile`; then returns the session's new expiry and its user. Otherwise it
    /// changes nothing and returns `None`: a concurrent exchange won, the session ended, or its
    /// user is inactive or gone ([`find`](Self::find) tells which).
    async fn rotate(&self, rotation: &Rotation) -> Result<Option<Rotated>, PortError>;

    /// Revokes the session, returning it when it was live at `now` (`None` otherwise). Its
    /// sealed successor pair and signed profile are cleared with it.
    async fn revoke(&self, id: SessionId, now: DateTime<Utc>)
    -> Result<Option<Session>, PortError>;

    /// Bumps the user's credentials version and revokes every live session of the user, in one
    /// transaction, returning those it revoked (their sealed successor pairs and signed
    /// profiles cleared).
    async fn revoke_all(&self, user: UserId, now: DateTime<Utc>)
    -> Result<Vec<Session>, PortError>;

    /// Deletes at most `batch` ended sessions and returns how many it deleted: those expired at
    /// `now` (`expires_at <= now`) and those revoked more than `revoked_grace` before `now`.
    /// Live sessions and recently revoked ones are kept. Safe to run from several instances at
    /// once: concurrent calls delete disjoint rows without waiting on each other, and a row is
    /// deleted once. A session that is gone reads as revoked everywhere, so deleting it changes
    /// no answer.
    async fn purge_ended(
        &self,
        now: DateTime<Utc>,
        revoked_grace: Duration,
        batch: u32,
    ) -> Result<u64, PortError>;

    /// Clears the sealed successor pair (and its signed profile) of at most `batch` sessions
    /// rotated before `rotated_before` (the grace window is over for them: no refresh unseals
    /// it again), and returns how many it cleared. Concurrent calls clear disjoint rows without
    /// waiting on each other, and skip a session a request is writing.
    async fn clear_sealed_successors(
        &self,
        rotated_before: DateTime<Utc>,
        batch: u32,
    ) -> Result<u64, PortError>;
}

/// What the cache knows of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMark {
    /// Recently confirmed live in the store.
    Live,
    /// Revoked (kept until the session would have expired).
    Revoked,
    /// Not cached: ask the store.
    Unknown,
}

/// Everything an authenticated request needs from the cache, in one round trip.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedAuth {
    /// The session's state.
    pub session: SessionMark,
    /// The user's cached profile, if any.
    pub user: Option<User>,
}

/// The fast path in front of the store: the session revocation list and the per-user auth
/// cache. The store stays authoritative: an entry that is missing means "ask the store", so
/// losing the cache never makes a revoked session live again.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait AuthCache: Send + Sync {
    /// The session's mark and the user's profile together.
    async fn lookup(&self, session: SessionId, user: UserId) -> Result<CachedAuth, PortError>;

    /// Remembers a live session for at most `ttl`, unless a mark is already there (so a slow
    /// reader never overwrites a revocation).
    async fn mark_live(&self, session: SessionId, ttl: Duration) -> Result<(), PortError>;

    /// Drops the marks of sessions about to be revoked (done before the store changes, so no
    /// stale `Live` mark outlives a revocation).
    async fn forget_sessions(&self, sessions: &[SessionId]) -> Result<(), PortError>;

    /// Marks sessions revoked, each for its remaining life.
    async fn mark_revoked(&self, sessions: &[(SessionId, Duration)]) -> Result<(), PortError>;

    /// Caches a user's profile, unless the entry was just invalidated.
    async fn put_user(&self, user: &User) -> Result<(), PortError>;

    /// Invalidates a user's profile so the next request reads the store.
    async fn forget_user(&self, user: UserId) -> Result<(), PortError>;
}

/// The throttle's answer to a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleVerdict {
    /// Go on and check the password.
    Allow,
    /// Refuse without checking; try again after this long.
    Deny {
        /// Time until the next attempt is allowed.
        retry_after: Duration,
    },
}

/// Whose failures a login attempt counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ThrottleKey {
    /// An account: its normalised email (or the bounded username when it is no email), whether
    /// or not such a user exists.
    Account(String),
    /// A device cookie of the account (OWASP "device cookies"): the attempt comes from a device
    /// the owner signed in on, so it is not held back by the account's back-off but counts
    /// against this device alone, with the same thresholds.
    Device(TokenId),
}

/// Login throttle counters, shared by every instance: per-account back-off and per-network
/// cap (see `authd_domain::LoginBackoff`, `authd_domain::IpCap` and `authd_domain::ClientNetwork`).
///
/// Attempts are counted at admission, before the password is checked, so a rule holds for
/// thirty concurrent attempts as it does for one: of any number of concurrent attempts on one
/// account, at most as many are admitted as the account has failures left.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait LoginThrottle: Send + Sync {
    /// Admits or refuses an attempt counted against `key` from `ip`, atomically: refused while
    /// `key` is in back-off or the IP's network is at its cap (nothing is counted then);
    /// otherwise counted as a failure of both before the caller checks anything.
    async fn admit(
        &self,
        key: &ThrottleKey,
        ip: Option<IpAddr>,
    ) -> Result<ThrottleVerdict, PortError>;

    /// The admitted attempt was right: the failures of `key` reset, and the network's count of
    /// this attempt is given back (the cap counts failures).
    async fn succeeded(&self, key: &ThrottleKey, ip: Option<IpAddr>) -> Result<(), PortError>;

    /// Admits or refuses a request counted against the network of `ip` alone (a password-reset
    /// request), atomically: refused while the network is at its cap; otherwise counted, like a
    /// failed login, and never given back.
    async fn admit_network(&self, ip: IpAddr) -> Result<ThrottleVerdict, PortError>;

    /// The admitted attempt decided nothing (the hasher was busy, a dependency failed): its
    /// count is given back to `key` and the network.
    async fn withdraw(&self, key: &ThrottleKey, ip: Option<IpAddr>) -> Result<(), PortError>;
}

/// The result of checking a password against a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// Wrong password (or no such user).
    Mismatch,
    /// Right password; `needs_rehash` when the hash used other parameters than the current ones.
    Match {
        /// Whether to store a fresh hash.
        needs_rehash: bool,
    },
}

/// Password hashing, run off the async workers.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// A new hash of the password with the current parameters.
    async fn hash(&self, password: &Password) -> Result<PasswordHash, PortError>;

    /// Checks the password against `hash`, or, when `hash` is `None` (no such user), against a
    /// dummy hash at the same cost so the answer takes about the same time.
    async fn verify(
        &self,
        password: &Password,
        hash: Option<PasswordHash>,
    ) -> Result<PasswordCheck, PortError>;
}

/// Why a token was refused. The reason is for logs, never for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token rejected: {0}")]
pub struct TokenRejected(pub String);

/// Signs tokens, and seals a successor pair so that only the holder of the refresh token it
/// replaced can read it back during the grace window.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait TokenIssuer: Send + Sync {
    /// A signed access token.
    fn sign_access(&self, claims: &AccessClaims) -> Result<String, PortError>;
    /// A signed refresh token.
    fn sign_refresh(&self, claims: &RefreshClaims) -> Result<String, PortError>;
    /// A signed device token (the `device_token` cookie's value).
    fn sign_device(&self, claims: &DeviceClaims) -> Result<String, PortError>;
    /// Encrypts `successor`, the ids of the pair that succeeds `refresh_token` in `session`,
    /// with a key derived from that token and salted with the session: nothing stored with the
    /// session (a database dump) derives the key, only the token's holder.
    fn seal(
        &self,
        successor: &PairIds,
        refresh_token: &str,
        session: SessionId,
    ) -> Result<String, PortError>;
    /// Decrypts what [`seal`](Self::seal) made with the same `refresh_token` and `session`;
    /// `None` for anything else.
    fn unseal(&self, sealed: &str, refresh_token: &str, session: SessionId) -> Option<PairIds>;
}

/// Verifies tokens: signature, pinned algorithm, known `kid`, and every required claim.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait TokenVerifier: Send + Sync {
    /// The claims of a valid access token at `now`.
    fn verify_access(&self, token: &str, now: DateTime<Utc>)
    -> Result<AccessClaims, TokenRejected>;
    /// The claims of a valid refresh token at `now`.
    fn verify_refresh(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<RefreshClaims, TokenRejected>;
    /// The claims of a valid device token at `now`.
    fn verify_device(&self, token: &str, now: DateTime<Utc>)
    -> Result<DeviceClaims, TokenRejected>;
}

/// Whether a dependency answers, for the readiness check.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait Probe: Send + Sync {
    /// `Ok` when the dependency answers a trivial request within the adapter's own (short)
    /// timeout; `Unavailable` otherwise.
    async fn ping(&self) -> Result<(), PortError>;
}

/// The time, as a port so tests can set it.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// One adapter of every port: what the use cases are built from (`LogIn::new(&ports, ..)`).
/// The store and the cache each come from one backend; the rest is the same on every backend.
#[derive(Clone)]
pub struct Ports {
    /// The source of truth.
    pub store: StorePorts,
    /// The fast path in front of it, and the login throttle.
    pub cache: CachePorts,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Token signing and sealing.
    pub issuer: Arc<dyn TokenIssuer>,
    /// Token verification.
    pub verifier: Arc<dyn TokenVerifier>,
    /// Link tokens: random, digested, sealed.
    pub link_tokens: Arc<dyn LinkTokens>,
    /// Rendering and sending emails.
    pub mail: MailPorts,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

/// How emails are written and sent.
#[derive(Clone)]
pub struct MailPorts {
    /// The templates.
    pub templates: Arc<dyn EmailTemplates>,
    /// SMTP, or the log.
    pub mailer: Arc<dyn Mailer>,
}

/// The store's ports, all served by one backend (Postgres, or memory).
#[derive(Clone)]
pub struct StorePorts {
    /// Users and their password hashes.
    pub users: Arc<dyn UserRepository>,
    /// Roles.
    pub roles: Arc<dyn RoleRepository>,
    /// Sessions and their rotation state.
    pub sessions: Arc<dyn SessionRepository>,
    /// Link tokens and the changes they make.
    pub links: Arc<dyn LinkTokenRepository>,
    /// The emails those changes queued.
    pub outbox: Arc<dyn Outbox>,
    /// Whether the store answers.
    pub probe: Arc<dyn Probe>,
}

/// The cache's ports, all served by one backend (Redis, or memory).
#[derive(Clone)]
pub struct CachePorts {
    /// Session marks and user profiles.
    pub auth: Arc<dyn AuthCache>,
    /// Login throttle counters.
    pub throttle: Arc<dyn LoginThrottle>,
    /// Whether the cache answers.
    pub probe: Arc<dyn Probe>,
}

/// The SHA-256 of a link token: all the store keeps of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest(pub [u8; 32]);

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

/// A link token as issued: its digest for the store, and the token itself sealed for the
/// outbox row that carries it (see [`LinkTokens`]). The token in clear goes nowhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedLink {
    /// What the token is for.
    pub purpose: LinkPurpose,
    /// The SHA-256 of the token.
    pub digest: TokenDigest,
    /// The token, encrypted with the server's key.
    pub sealed: String,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
}

/// What a request for a link email did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRequest {
    /// The token is stored and its email queued.
    Queued,
    /// The account had as many emails of this purpose as the limit allows: nothing changed.
    Limited {
        /// When the next one may go.
        retry_after: Duration,
    },
    /// No active account has this email (or the user is gone): nothing changed.
    NoAccount,
    /// The address is verified already: nothing changed.
    AlreadyVerified,
}

/// One-time link tokens (address verification, password reset) and the changes they make. Each
/// method is one transaction, and queues its email in the outbox in that transaction, so an
/// email goes out exactly when its change commits. Requests for one account are serialised, so
/// the email limit holds under concurrent requests.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait LinkTokenRepository: Send + Sync {
    /// For the active account with this (normalised) email, unless `limit` refuses another
    /// reset email at `now`: spends the account's older reset tokens, stores `link`, and queues
    /// the reset email to the account's address.
    async fn request_reset(
        &self,
        email: &Email,
        link: &IssuedLink,
        limit: &EmailRateLimit,
        now: DateTime<Utc>,
    ) -> Result<LinkRequest, PortError>;

    /// For this active, unverified user, unless `limit` refuses another verification email at
    /// `now`: stores `link` and queues the verification email to the user's address.
    async fn request_verification(
        &self,
        user: UserId,
        link: &IssuedLink,
        limit: &EmailRateLimit,
        now: DateTime<Utc>,
    ) -> Result<LinkRequest, PortError>;

    /// The active user whose unspent, unexpired token of `purpose` has this digest, without
    /// spending it (`None` otherwise).
    async fn holder(
        &self,
        purpose: LinkPurpose,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, PortError>;

    /// Spends the reset token with this digest as a compare-and-set (of concurrent calls with
    /// one token exactly one gets `Some`) and, in the same transaction: sets the password hash,
    /// marks the email verified, bumps the credentials version, revokes every live session,
    /// spends the account's other reset tokens and queues the password-changed notice. Returns
    /// the user as stored and the sessions it revoked; `None` (nothing changed) when the token
    /// is unknown, spent, expired, or its user inactive.
    async fn reset_password(
        &self,
        digest: &TokenDigest,
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<Option<(User, Vec<Session>)>, PortError>;

    /// Spends the verification token with this digest as a compare-and-set and marks its user
    /// verified, in one transaction. Returns the user, `None` (nothing changed) when the token
    /// is unknown, spent, expired, or its user inactive.
    async fn verify_email(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, PortError>;

    /// Deletes at most `batch` tokens that expired before `before` and were created before it
    /// (the email limit no longer counts them); returns how many.
    async fn purge(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, PortError>;
}

/// An email waiting in the outbox, as claimed for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEmail {
    /// Its id.
    pub id: EmailId,
    /// Which email.
    pub kind: EmailKind,
    /// The address it goes to (the account's address when it was queued).
    pub recipient: String,
    /// The link's token, sealed ([`LinkTokens::open`]); `None` for an email without a link.
    pub sealed_token: Option<String>,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

/// How full the outbox is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxStats {
    /// Emails neither sent nor dead.
    pub depth: u64,
    /// When the oldest of them was queued.
    pub oldest: Option<DateTime<Utc>>,
}

/// The delivery side of the transactional outbox (emails are queued by the store operations
/// that promise them). Every instance delivers; a claim keeps an email from the others for a
/// lease, so a crash between claim and send makes it due again once the lease is over: it is
/// sent at most twice, never zero times.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Claims at most `batch` due emails, counting an attempt for each and making them due
    /// again at `now + lease`. Reset and password-changed emails come before verification
    /// ones, then the oldest due first, so a flood of sign-ups cannot hold a reset link back
    /// past its expiry. Concurrent calls claim disjoint emails without waiting on each other.
    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        batch: u32,
    ) -> Result<Vec<OutboxEmail>, PortError>;

    /// The email went out: it is done, and its sealed token forgotten.
    async fn sent(&self, id: EmailId, now: DateTime<Utc>) -> Result<(), PortError>;

    /// The attempt failed with `error`: due again at `retry_at`, or dead (given up, its sealed
    /// token forgotten) when `None`.
    async fn failed(
        &self,
        id: EmailId,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), PortError>;

    /// Depth and age of what waits.
    async fn stats(&self) -> Result<OutboxStats, PortError>;

    /// Deletes at most `batch` emails sent or dead before `before`; returns how many.
    async fn purge(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, PortError>;
}

/// Link tokens: made from the OS CSPRNG, digested for the store, sealed for the outbox.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait LinkTokens: Send + Sync {
    /// A fresh token (256 random bits), its digest, and the token sealed with the server's key.
    fn issue(&self) -> Result<(LinkToken, TokenDigest, String), PortError>;
    /// The SHA-256 of `token`.
    fn digest(&self, token: &LinkToken) -> TokenDigest;
    /// The token sealed by [`issue`](Self::issue); `None` for anything else (or a key that is
    /// gone).
    fn open(&self, sealed: &str) -> Option<LinkToken>;
}

/// An email ready to send: multipart text and HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailMessage {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

/// The email templates (built in, or the operator's).
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait EmailTemplates: Send + Sync {
    /// The email of `kind` to `to`, with `link` for the kinds that carry one.
    // The named lifetime is for mockall, which cannot mock an elided one inside `Option`.
    #[allow(clippy::needless_lifetimes)]
    fn render<'a>(
        &self,
        kind: EmailKind,
        to: &str,
        link: Option<&'a str>,
    ) -> Result<EmailMessage, PortError>;
}

/// Why an email was not sent. The reason is for logs and the outbox row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MailError(pub String);

/// Sends an email (SMTP, or the log in development).
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `message`, within the adapter's own timeouts.
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError>;
}

#[cfg(test)]
mod tests {
    use super::TokenDigest;

    #[test]
    fn a_digests_debug_hides_its_bytes() {
        let shown = format!("{:?}", TokenDigest([0xab; 32]));
        assert_eq!(shown, "TokenDigest(..)");
        assert!(!shown.contains("171") && !shown.contains("ab"));
    }
}
