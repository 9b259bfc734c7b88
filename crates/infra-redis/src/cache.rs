//! The session revocation marks and the user profile cache.

use std::time::Duration;

use async_trait::async_trait;
use authd_application::PortError;
use authd_application::ports::{AuthCache, CachedAuth, SessionMark};
use authd_domain::{
    DisplayName, Email, RoleId, RoleName, RoleRef, RoleSlug, SessionId, User, UserId,
};
use chrono::{DateTime, Utc};
use fred::clients::Pool;
use fred::prelude::{ClientLike, Expiration, KeysInterface, SetOptions};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::client::{fail_fast, options};
use crate::errors::port_error;

const LIVE: &str = "1";
const REVOKED: &str = "0";
const TOMBSTONE: &str = "-";

/// [`AuthCache`] on Redis. See the crate docs for the keys and their TTLs.
#[derive(Clone)]
pub struct RedisAuthCache {
    client: Pool,
    prefix: String,
    max_session_ttl: Duration,
    user_ttl: Duration,
    tombstone_ttl: Duration,
}

impl RedisAuthCache {
    /// Default cap of a `Live` mark: a session revoked behind the cache's back (by hand in the
    /// database, say) is honoured at most this long.
    pub const DEFAULT_MAX_SESSION_TTL: Duration = Duration::from_secs(300);
    /// Default lifetime of a cached profile.
    pub const DEFAULT_USER_TTL: Duration = Duration::from_secs(300);
    /// Default lifetime of an invalidation: long enough for a reader that loaded the old profile
    /// before the change to have given up writing it back.
    pub const DEFAULT_TOMBSTONE_TTL: Duration = Duration::from_secs(5);

    /// `Live` marks last at most `max_session_ttl`, profiles `user_ttl`, invalidations
    /// `tombstone_ttl`; every key starts with `prefix`.
    pub fn new(
        client: Pool,
        prefix: impl Into<String>,
        max_session_ttl: Duration,
        user_ttl: Duration,
        tombstone_ttl: Duration,
    ) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            max_session_ttl,
            user_ttl,
            tombstone_ttl,
        }
    }

    /// The cache with the default TTLs (300 s, 300 s, 5 s).
    pub fn with_defaults(client: Pool, prefix: impl Into<String>) -> Self {
        Self::new(
            client,
            prefix,
            Self::DEFAULT_MAX_SESSION_TTL,
            Self::DEFAULT_USER_TTL,
            Self::DEFAULT_TOMBSTONE_TTL,
        )
    }

    fn session_key(&self, session: SessionId) -> String {
        format!("{}:session:{session}", self.prefix)
    }

    fn user_key(&self, user: UserId) -> String {
        format!("{}:user:{user}", self.prefix)
    }
}

/// `PX` wants whole milliseconds, at least one (Redis refuses a zero TTL).
fn px(ttl: Duration) -> Option<Expiration> {
    let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    (millis > 0).then_some(Expiration::PX(millis))
}

#[async_trait]
impl AuthCache for RedisAuthCache {
    async fn lookup(&self, session: SessionId, user: UserId) -> Result<CachedAuth, PortError> {
        let pipeline = self
            .client
            .next_connected()
            .pipeline()
            .with_options(&options());
        let _: () = pipeline
            .get(self.session_key(session))
            .await
            .map_err(port_error)?;
        let _: () = pipeline
            .get(self.user_key(user))
            .await
            .map_err(port_error)?;
        let (mark, profile): (Option<String>, Option<String>) =
            pipeline.all().await.map_err(port_error)?;
        let session = match mark.as_deref() {
            Some(LIVE) => SessionMark::Live,
            Some(REVOKED) => SessionMark::Revoked,
            None => SessionMark::Unknown,
            Some(other) => {
                tracing::warn!(%session, mark = other, "unknown session mark in Redis; asking the store");
                SessionMark::Unknown
            }
        };
        let user = match profile.as_deref() {
            None | Some(TOMBSTONE) => None,
            Some(json) => decode_user(user, json),
        };
        Ok(CachedAuth { session, user })
    }

    async fn mark_live(&self, session: SessionId, ttl: Duration) -> Result<(), PortError> {
        let Some(expire) = px(ttl.min(self.max_session_ttl)) else {
            return Ok(());
        };
        // NX: a revocation mark already there wins over this (possibly stale) reader.
        let _: Option<String> = fail_fast(&self.client)
            .set(
                self.session_key(session),
                LIVE,
                Some(expire),
                Some(SetOptions::NX),
                false,
            )
            .await
            .map_err(port_error)?;
        Ok(())
    }

    async fn forget_sessions(&self, sessions: &[SessionId]) -> Result<(), PortError> {
        if sessions.is_empty() {
            return Ok(());
        }
        let pipeline = self
            .client
            .next_connected()
            .pipeline()
            .with_options(&options());
        for session in sessions {
            let _: () = pipeline
                .del(self.session_key(*session))
                .await
                .map_err(port_error)?;
        }
        let _: Vec<i64> = pipeline.all().await.map_err(port_error)?;
        Ok(())
    }

    async fn mark_revoked(&self, sessions: &[(SessionId, Duration)]) -> Result<(), PortError> {
        let marks: Vec<(String, Expiration)> = sessions
            .iter()
            .filter_map(|(session, ttl)| Some((self.session_key(*session), px(*ttl)?)))
            .collect();
        if marks.is_empty() {
            return Ok(());
        }
        let pipeline = self
            .client
            .next_connected()
            .pipeline()
            .with_options(&options());
        for (key, expire) in marks {
            let _: () = pipeline
                .set(key, REVOKED, Some(expire), None, false)
                .await
                .map_err(port_error)?;
        }
        let _: Vec<String> = pipeline.all().await.map_err(port_error)?;
        Ok(())
    }

    async fn put_user(&self, user: &User) -> Result<(), PortError> {
        let Some(expire) = px(self.user_ttl) else {
            return Ok(());
        };
        let json = serde_json::to_string(&CachedUser::from(user))
            .map_err(|error| PortError::Unexpected(error.into()))?;
        // NX: a tombstone (the user just changed) must not be replaced by what may be the old
        // profile, read before the change.
        let _: Option<String> = fail_fast(&self.client)
            .set(
                self.user_key(user.id),
                json,
                Some(expire),
                Some(SetOptions::NX),
                false,
            )
            .await
            .map_err(port_error)?;
        Ok(())
    }

    async fn forget_user(&self, user: UserId) -> Result<(), PortError> {
        let key = self.user_key(user);
        let fast = fail_fast(&self.client);
        match px(self.tombstone_ttl) {
            Some(expire) => {
                let _: Option<String> = fast
                    .set(key, TOMBSTONE, Some(expire), None, false)
                    .await
                    .map_err(port_error)?;
            }
            // No tombstone wanted: dropping the entry is the next best invalidation.
            None => {
                let _: i64 = fast.del(key).await.map_err(port_error)?;
            }
        }
        Ok(())
    }
}

/// The user as cached: the domain has no serde, and this format is this crate's business.
#[derive(Debug, Serialize, Deserialize)]
struct CachedUser {
    id: Uuid,
    email: String,
    name: Option<String>,
    is_active: bool,
    is_superuser: bool,
    is_verified: bool,
    // Entries cached before the field existed read as "not primary" until they expire.
    #[serde(default)]
    is_primary_admin: bool,
    role: CachedRole,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedRole {
    id: Uuid,
    slug: String,
    name: String,
}

impl From<&User> for CachedUser {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.as_uuid(),
            email: user.email.as_str().to_owned(),
            name: user.name.clone().map(String::from),
            is_active: user.is_active,
            is_superuser: user.is_superuser,
            is_verified: user.is_verified,
            is_primary_admin: user.is_primary_admin,
            role: CachedRole {
                id: user.role.id.as_uuid(),
                slug: user.role.slug.as_str().to_owned(),
                name: user.role.name.as_str().to_owned(),
            },
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

impl CachedUser {
    fn into_user(self) -> Result<User, String> {
        Ok(User {
            id: UserId::from_uuid(self.id),
            email: Email::parse(&self.email).map_err(|error| format!("email: {error}"))?,
            // Never blank: no name is cached as `null`.
            name: self
                .name
                .map(DisplayName::try_from)
                .transpose()
                .map_err(|error| format!("name: {error}"))?,
            is_active: self.is_active,
            is_superuser: self.is_superuser,
            is_verified: self.is_verified,
            is_primary_admin: self.is_primary_admin,
            role: RoleRef {
                id: RoleId::from_uuid(self.role.id),
                slug: RoleSlug::parse(&self.role.slug)
                    .map_err(|error| format!("role slug: {error}"))?,
                name: RoleName::try_from(self.role.name)
                    .map_err(|error| format!("role name: {error}"))?,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A profile that does not decode (an older format, a foreign writer) is a miss: the store
/// answers and the entry expires on its own.
fn decode_user(expected: UserId, json: &str) -> Option<User> {
    let decoded = serde_json::from_str::<CachedUser>(json)
        .map_err(|error| error.to_string())
        .and_then(CachedUser::into_user);
    match decoded {
        Ok(user) if user.id == expected => Some(user),
        Ok(user) => {
            tracing::warn!(%expected, found = %user.id, "cached profile under the wrong key; ignored");
            None
        }
        Err(reason) => {
            tracing::warn!(user = %expected, %reason, "cached profile does not decode; ignored");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            id: UserId::generate(),
            email: Email::parse("Ada@Example.com").unwrap(),
            name: DisplayName::parse("Ada").unwrap(),
            is_active: true,
            is_superuser: false,
            is_verified: true,
            is_primary_admin: true,
            role: RoleRef {
                id: RoleId::generate(),
                slug: RoleSlug::parse("application-access").unwrap(),
                name: RoleName::parse("Application access").unwrap(),
            },
            created_at: DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap(),
            updated_at: DateTime::from_timestamp(1_700_000_100, 0).unwrap(),
        }
    }

    #[test]
    fn a_user_round_trips_through_json() {
        let user = user();
        let json = serde_json::to_string(&CachedUser::from(&user)).unwrap();
        assert_eq!(decode_user(user.id, &json), Some(user));
    }

    #[test]
    fn an_undecodable_profile_is_a_miss() {
        let user = user();
        assert_eq!(decode_user(user.id, "{not json"), None);
        let mut json: serde_json::Value = serde_json::to_value(CachedUser::from(&user)).unwrap();
        json["role"]["slug"] = "Not A Slug!".into();
        assert_eq!(decode_user(user.id, &json.to_string()), None);
        for (field, bad) in [
            ("/name", "  "),
            ("/name", &*"x".repeat(101)),
            ("/role/name", ""),
        ] {
            let mut json = serde_json::to_value(CachedUser::from(&user)).unwrap();
            *json.pointer_mut(field).unwrap() = bad.into();
            assert_eq!(
                decode_user(user.id, &json.to_string()),
                None,
                "{field}: {bad:?}"
            );
        }
        assert_eq!(
            decode_user(
                UserId::generate(),
                &serde_json::to_string(&CachedUser::from(&user)).unwrap()
            ),
            None
        );
    }

    #[test]
    fn zero_ttls_are_not_sent() {
        assert_eq!(px(Duration::ZERO), None);
        assert_eq!(px(Duration::from_micros(999)), None);
        assert_eq!(px(Duration::from_secs(2)), Some(Expiration::PX(2000)));
    }
}
