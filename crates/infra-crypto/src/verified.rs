//! A bounded memory of access tokens that already passed verification.
//!
//! A signature check costs tens of microseconds (EdDSA verify is ~65 µs with josekit), more
//! than everything else an authenticated request does. A client presents the same access
//! token on every request for its whole life, so the verdict is remembered, keyed by the
//! whole token, until the token's `exp` (plus the codec's leeway). Only the verdict is
//! remembered: revocation is still checked on every request by the use case, and refresh
//! tokens, used once each, are never cached. Rejections are not cached either, so forged
//! tokens cannot fill the memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use authd_application::ports::{TokenRejected, TokenVerifier};
use authd_application::{AccessClaims, DeviceClaims, RefreshClaims};
use chrono::{DateTime, TimeDelta, Utc};

/// Decorates a [`TokenVerifier`] with a bounded cache of verified access tokens.
pub struct CachingVerifier {
    inner: Arc<dyn TokenVerifier>,
    leeway: TimeDelta,
    capacity: usize,
    verified: Mutex<HashMap<Box<str>, AccessClaims>>,
}

impl CachingVerifier {
    /// Remembers up to `capacity` tokens verified by `inner`, each until `exp + leeway`
    /// (`leeway` must be the one `inner` applies to `exp`).
    pub fn new(inner: Arc<dyn TokenVerifier>, leeway: TimeDelta, capacity: usize) -> Self {
        Self {
            inner,
            leeway,
            capacity,
            verified: Mutex::new(HashMap::with_capacity(capacity.min(1024))),
        }
    }

    fn remembered(&self, token: &str, now: DateTime<Utc>) -> Option<AccessClaims> {
        let verified = self.verified.lock().ok()?;
        let claims = verified.get(token)?;
        (now <= claims.expires_at + self.leeway).then(|| claims.clone())
    }

    fn remember(&self, token: &str, claims: &AccessClaims, now: DateTime<Utc>) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut verified) = self.verified.lock() else {
            return;
        };
        if verified.len() >= self.capacity {
            // Full: drop what expired; unless that freed at least half, start over. Either
            // way at least `capacity / 2` insertions pass before the next scan.
            let leeway = self.leeway;
            verified.retain(|_, claims| now <= claims.expires_at + leeway);
            if verified.len() > self.capacity / 2 {
                verified.clear();
            }
        }
        verified.insert(token.into(), claims.clone());
    }
}

impl TokenVerifier for CachingVerifier {
    fn verify_access(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, TokenRejected> {
        if let Some(claims) = self.remembered(token, now) {
            return Ok(claims);
        }
        let claims = self.inner.verify_access(token, now)?;
        self.remember(token, &claims, now);
        Ok(claims)
    }

    fn verify_refresh(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<RefreshClaims, TokenRejected> {
        self.inner.verify_refresh(token, now)
    }

    /// Not remembered: a device token is checked once per login, behind an Argon2 hash.
    fn verify_device(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<DeviceClaims, TokenRejected> {
        self.inner.verify_device(token, now)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use authd_domain::{SessionId, TokenId, UserId};

    use super::*;

    /// Accepts any token as valid until `expires_at`, counting the checks it makes.
    struct Counting {
        checks: AtomicUsize,
        expires_at: DateTime<Utc>,
    }

    impl TokenVerifier for Counting {
        fn verify_access(
            &self,
            token: &str,
            now: DateTime<Utc>,
        ) -> Result<AccessClaims, TokenRejected> {
            self.checks.fetch_add(1, Ordering::SeqCst);
            // "short…" tokens live one minute, "mid…" ones two, the others fifteen.
            let expires_at = if token.starts_with("short") {
                self.expires_at - TimeDelta::minutes(14)
            } else if token.starts_with("mid") {
                self.expires_at - TimeDelta::minutes(13)
            } else {
                self.expires_at
            };
            if token.starts_with("bad") || now > expires_at + TimeDelta::seconds(60) {
                return Err(TokenRejected("no".to_owned()));
            }
            Ok(AccessClaims {
                user_id: UserId::generate(),
                session_id: SessionId::generate(),
                token_id: TokenId::generate(),
                issued_at: self.expires_at - TimeDelta::minutes(15),
                expires_at,
                email: token.to_owned(),
                role: "member".to_owned(),
                is_superuser: false,
            })
        }

        fn verify_refresh(
            &self,
            _token: &str,
            _now: DateTime<Utc>,
        ) -> Result<RefreshClaims, TokenRejected> {
            self.checks.fetch_add(1, Ordering::SeqCst);
            Err(TokenRejected("refresh".to_owned()))
        }

        fn verify_device(
            &self,
            _token: &str,
            _now: DateTime<Utc>,
        ) -> Result<DeviceClaims, TokenRejected> {
            self.checks.fetch_add(1, Ordering::SeqCst);
            Err(TokenRejected("device".to_owned()))
        }
    }

    fn verifier(capacity: usize) -> (Arc<Counting>, CachingVerifier, DateTime<Utc>) {
        let now = Utc::now();
        let inner = Arc::new(Counting {
            checks: AtomicUsize::new(0),
            expires_at: now + TimeDelta::minutes(15),
        });
        let caching = CachingVerifier::new(inner.clone(), TimeDelta::seconds(60), capacity);
        (inner, caching, now)
    }

    fn checks(inner: &Counting) -> usize {
        inner.checks.load(Ordering::SeqCst)
    }

    #[test]
    fn device_tokens_go_to_the_codec_every_time() {
        let (inner, caching, now) = verifier(10);
        for _ in 0..2 {
            assert_eq!(
                caching.verify_device("device", now).unwrap_err().0,
                "device"
            );
        }
        assert_eq!(checks(&inner), 2);
    }

    #[test]
    fn a_verified_token_is_checked_once_and_gets_the_same_claims() {
        let (inner, caching, now) = verifier(10);
        let first = caching.verify_access("token-a", now).unwrap();
        let again = caching.verify_access("token-a", now).unwrap();
        assert_eq!(first, again);
        assert_eq!(checks(&inner), 1);
        caching.verify_access("token-b", now).unwrap();
        assert_eq!(checks(&inner), 2);
    }

    #[test]
    fn a_remembered_token_still_expires_after_the_leeway() {
        let (inner, caching, now) = verifier(10);
        let claims = caching.verify_access("token", now).unwrap();
        let last_valid = claims.expires_at + TimeDelta::seconds(60);
        assert!(caching.verify_access("token", last_valid).is_ok());
        assert_eq!(checks(&inner), 1);
        let late = last_valid + TimeDelta::seconds(1);
        assert!(caching.verify_access("token", late).is_err());
        assert_eq!(
            checks(&inner),
            2,
            "an expired entry goes back to the verifier"
        );
    }

    #[test]
    fn rejections_and_refresh_tokens_are_never_remembered() {
        let (inner, caching, now) = verifier(10);
        assert!(caching.verify_access("bad-token", now).is_err());
        assert!(caching.verify_access("bad-token", now).is_err());
        assert!(caching.verify_refresh("refresh", now).is_err());
        assert!(caching.verify_refresh("refresh", now).is_err());
        assert_eq!(checks(&inner), 4);
    }

    #[test]
    fn the_memory_never_holds_more_than_its_capacity() {
        let (inner, caching, now) = verifier(3);
        for token in ["a", "b", "c", "d"] {
            caching.verify_access(token, now).unwrap();
        }
        assert!(caching.verified.lock().unwrap().len() <= 3);
        caching.verify_access("d", now).unwrap();
        assert_eq!(
            checks(&inner),
            4,
            "the newest token is remembered after a reset"
        );
        let (inner, disabled, now) = verifier(0);
        disabled.verify_access("a", now).unwrap();
        disabled.verify_access("a", now).unwrap();
        assert_eq!(checks(&inner), 2, "capacity 0 remembers nothing");
    }

    #[test]
    fn a_full_memory_drops_expired_tokens_and_keeps_live_ones() {
        let (inner, caching, now) = verifier(4);
        for token in ["short-a", "short-b", "long-a", "long-b"] {
            caching.verify_access(token, now).unwrap();
        }
        // The short tokens are past exp + leeway, the long ones still valid.
        let later = now + TimeDelta::minutes(3);
        caching.verify_access("long-c", later).unwrap();
        assert_eq!(caching.verified.lock().unwrap().len(), 3);
        caching.verify_access("long-a", later).unwrap();
        assert_eq!(checks(&inner), 5, "long-a was kept through the sweep");
    }

    #[test]
    fn a_sweep_keeps_a_token_past_its_exp_but_within_the_leeway() {
        let (inner, caching, now) = verifier(4);
        for token in ["short-a", "short-b", "mid", "long"] {
            caching.verify_access(token, now).unwrap();
        }
        // Half a minute past mid's exp: the short tokens are past exp + leeway and go, mid is
        // still within the leeway and stays, so the sweep frees half and clears nothing.
        let later = now + TimeDelta::minutes(2) + TimeDelta::seconds(30);
        caching.verify_access("long-new", later).unwrap();
        assert_eq!(caching.verified.lock().unwrap().len(), 3);
        let mid = caching.verify_access("mid", later).unwrap();
        assert!(later > mid.expires_at);
        assert_eq!(checks(&inner), 5, "mid was kept through the sweep");
    }
}
