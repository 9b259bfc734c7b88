//! Shared test data for the use-case tests.

use std::sync::Arc;

use authd_domain::{
    DisplayName, Email, EmailRateLimit, LinkToken, PasswordHash, PasswordPolicy, Role, RoleId,
    RoleName, RoleRef, RoleSlug, RotationState, Session, SessionId, SessionLifetime, TokenId, User,
};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use crate::AuthSettings;
use crate::ports::{MockClock, MockLinkTokens, MockPasswordHasher, SessionRecord, TokenDigest};
use crate::tokens::{AccessClaims, RefreshClaims, TokenPair};
use crate::use_cases::Principal;

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

pub fn fixed_clock() -> Arc<MockClock> {
    let mut clock = MockClock::new();
    clock.expect_now().returning(now);
    Arc::new(clock)
}

pub fn settings() -> AuthSettings {
    AuthSettings {
        access_ttl: TimeDelta::minutes(15),
        lifetime: SessionLifetime::new(TimeDelta::days(7), TimeDelta::days(30)),
        refresh_grace: TimeDelta::seconds(10),
        password_policy: PasswordPolicy::default(),
        default_role: RoleSlug::parse("application-access").unwrap(),
        require_verified_email: false,
        reset_ttl: TimeDelta::hours(1),
        verify_ttl: TimeDelta::hours(24),
        email_limit: EmailRateLimit::default(),
    }
}

pub fn role_ref() -> RoleRef {
    RoleRef {
        id: RoleId::generate(),
        slug: RoleSlug::parse("application-access").unwrap(),
        name: RoleName::parse("Application access").unwrap(),
    }
}

/// A role with this slug, its name the slug in capitals.
pub fn role(slug: &str) -> Role {
    Role {
        id: RoleId::generate(),
        slug: RoleSlug::parse(slug).unwrap(),
        name: RoleName::parse(&slug.to_uppercase()).unwrap(),
        description: None,
        created_at: now(),
        updated_at: now(),
    }
}

pub fn user() -> User {
    User::register(
        Email::parse("ada@example.com").unwrap(),
        DisplayName::parse("Ada").unwrap(),
        role_ref(),
        now(),
    )
}

/// [`user`] as a superuser, on a session of its own.
pub fn superuser() -> Principal {
    let mut user = user();
    user.is_superuser = true;
    Principal {
        user,
        session_id: SessionId::generate(),
    }
}

/// A hasher that turns `password`, and no other, into `hash` (any number of times).
pub fn hashing(password: &'static str, hash: &'static str) -> MockPasswordHasher {
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_hash()
        .withf(move |given| given.expose() == password)
        .returning(move |_| Ok(PasswordHash::new(hash)));
    hasher
}

pub fn live_session(user: &User) -> Session {
    Session {
        id: SessionId::generate(),
        user_id: user.id,
        created_at: now() - TimeDelta::hours(1),
        last_used_at: now() - TimeDelta::hours(1),
        expires_at: now() + TimeDelta::days(6),
        user_agent: Some("test".into()),
        ip: Some("127.0.0.1".into()),
        revoked_at: None,
    }
}

pub fn record(session: Session) -> SessionRecord {
    SessionRecord {
        session,
        rotation: RotationState {
            current: TokenId::generate(),
            previous: None,
            rotated_at: None,
        },
        sealed_successor: None,
        signed_profile: None,
    }
}

pub fn access_claims(user: &User, sid: SessionId) -> AccessClaims {
    AccessClaims {
        user_id: user.id,
        session_id: sid,
        token_id: TokenId::generate(),
        issued_at: now(),
        expires_at: now() + TimeDelta::minutes(15),
        email: user.email.to_string(),
        role: user.role.slug.to_string(),
        is_superuser: user.is_superuser,
    }
}

pub fn refresh_claims(session: &Session, jti: TokenId) -> RefreshClaims {
    RefreshClaims {
        user_id: session.user_id,
        session_id: session.id,
        token_id: jti,
        issued_at: now() - TimeDelta::minutes(20),
        expires_at: now() + TimeDelta::days(6),
    }
}

pub fn pair(tag: &str) -> TokenPair {
    TokenPair {
        issued_at: now(),
        access_token: format!("access-{tag}"),
        access_expires_at: now() + TimeDelta::minutes(15),
        refresh_token: format!("refresh-{tag}"),
        refresh_expires_at: now() + TimeDelta::days(7),
    }
}

/// A well-formed link token: `c` repeated.
pub fn link_token(c: char) -> LinkToken {
    LinkToken::parse(&c.to_string().repeat(LinkToken::LEN)).unwrap()
}

/// Link tokens that issue one token (exactly once), digested to `[digest; 32]` and sealed as
/// `sealed`.
pub fn issuing_link(digest: u8, sealed: &'static str) -> MockLinkTokens {
    let mut tokens = MockLinkTokens::new();
    tokens.expect_issue().times(1).returning(move || {
        Ok((
            link_token('i'),
            TokenDigest([digest; 32]),
            sealed.to_owned(),
        ))
    });
    tokens
}
