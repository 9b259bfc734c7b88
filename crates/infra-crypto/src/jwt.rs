use anyhow::anyhow;
use application::PortError;
use application::ports::{TokenIssuer, TokenRejected, TokenVerifier};
use application::{AccessClaims, RefreshClaims, TokenPair};
use chrono::{DateTime, TimeDelta, Utc};
use domain::{SessionId, TokenId, UserId};
use josekit::jwe::{Dir, JweHeader};
use josekit::jws::{JwsHeader, JwsVerifier};
use josekit::jwt::{self, JwtPayload};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::KeyRing;

/// What every token carries besides its own claims.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `iss` of issued tokens, required on verified ones.
    pub issuer: String,
    /// `aud` of issued tokens, required on verified ones.
    pub audience: String,
    /// Clock difference tolerated on `exp` and `iat` between instances (at most 60 s).
    pub leeway: TimeDelta,
}

/// Signs and verifies authd's JWTs with josekit, checking every claim explicitly: josekit's own
/// validator passes a token that lacks `exp` or `aud`, so nothing is left to it.
#[derive(Debug)]
pub struct JoseTokenCodec {
    keys: KeyRing,
    settings: TokenSettings,
}

const ACCESS: &str = "access";
const REFRESH: &str = "refresh";

impl JoseTokenCodec {
    /// A codec signing with the ring's first key.
    pub fn new(keys: KeyRing, settings: TokenSettings) -> Self {
        Self { keys, settings }
    }

    /// The keys, for publishing the public ones.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    fn sign(&self, mut payload: JwtPayload, typ: &str) -> Result<String, PortError> {
        let key = self.keys.signing();
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        header.set_key_id(key.kid());
        payload.set_issuer(&self.settings.issuer);
        payload.set_audience(vec![self.settings.audience.clone()]);
        set(&mut payload, "typ", Value::from(typ))?;
        jwt::encode_with_signer(&payload, &header, key.signer())
            .map_err(|error| PortError::Unexpected(anyhow!(error).context("signing a token")))
    }

    /// Signature, pinned algorithm, known `kid`, then every registered claim.
    fn verify(&self, token: &str, typ: &str, now: DateTime<Utc>) -> Result<Checked, TokenRejected> {
        let (payload, _) = jwt::decode_with_verifier_selector(token, |header| {
            let key = header.key_id().and_then(|kid| self.keys.find(kid));
            Ok(key
                .filter(|key| header.algorithm() == Some(key.algorithm().name()))
                .map(|key| key.verifier() as &dyn JwsVerifier))
        })
        .map_err(|error| reject(format!("undecodable or badly signed: {error}")))?;

        let claims = payload.claims_set();
        let string = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| reject(format!("missing claim {name}")))
        };
        if string("typ")? != typ {
            return Err(reject("wrong typ"));
        }
        if string("iss")? != self.settings.issuer {
            return Err(reject("wrong iss"));
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => *aud == self.settings.audience,
            Some(Value::Array(auds)) => auds
                .iter()
                .any(|aud| aud.as_str() == Some(&self.settings.audience)),
            _ => false,
        };
        if !audience_ok {
            return Err(reject("wrong or missing aud"));
        }
        let time = |name: &str| {
            claims
                .get(name)
                .and_then(|value| {
                    value
                        .as_i64()
                        .or_else(|| value.as_f64().map(|f| f.floor() as i64))
                })
                .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
                .ok_or_else(|| reject(format!("missing claim {name}")))
        };
        let (issued_at, expires_at) = (time("iat")?, time("exp")?);
        if now > expires_at + self.settings.leeway {
            return Err(reject("expired"));
        }
        if issued_at > now + self.settings.leeway {
            return Err(reject("issued in the future"));
        }
        let uuid = |name: &str| {
            string(name)?
                .parse::<uuid::Uuid>()
                .map_err(|_| reject(format!("claim {name} is not a UUID")))
        };
        Ok(Checked {
            user_id: UserId::from_uuid(uuid("sub")?),
            session_id: SessionId::from_uuid(uuid("sid")?),
            token_id: TokenId::from_uuid(uuid("jti")?),
            issued_at,
            expires_at,
            payload,
        })
    }
}

/// The claims common to both token types, checked.
struct Checked {
    user_id: UserId,
    session_id: SessionId,
    token_id: TokenId,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    payload: JwtPayload,
}

fn reject(reason: impl Into<String>) -> TokenRejected {
    TokenRejected(reason.into())
}

fn set(payload: &mut JwtPayload, name: &str, value: Value) -> Result<(), PortError> {
    payload
        .set_claim(name, Some(value))
        .map_err(|error| PortError::Unexpected(anyhow!(error)))
}

fn base_payload(
    user: UserId,
    session: SessionId,
    token: TokenId,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<JwtPayload, PortError> {
    let mut payload = JwtPayload::new();
    payload.set_subject(user.to_string());
    payload.set_jwt_id(token.to_string());
    // Whole seconds as integers: josekit's own setters write floats, which some verifiers refuse.
    set(&mut payload, "iat", Value::from(issued_at.timestamp()))?;
    set(&mut payload, "exp", Value::from(expires_at.timestamp()))?;
    set(&mut payload, "sid", Value::from(session.to_string()))?;
    Ok(payload)
}

impl TokenIssuer for JoseTokenCodec {
    fn sign_access(&self, claims: &AccessClaims) -> Result<String, PortError> {
        let mut payload = base_payload(
            claims.user_id,
            claims.session_id,
            claims.token_id,
            claims.issued_at,
            claims.expires_at,
        )?;
        set(&mut payload, "email", Value::from(claims.email.clone()))?;
        set(&mut payload, "role", Value::from(claims.role.clone()))?;
        set(&mut payload, "su", Value::from(claims.is_superuser))?;
        self.sign(payload, ACCESS)
    }

    fn sign_refresh(&self, claims: &RefreshClaims) -> Result<String, PortError> {
        let payload = base_payload(
            claims.user_id,
            claims.session_id,
            claims.token_id,
            claims.issued_at,
            claims.expires_at,
        )?;
        self.sign(payload, REFRESH)
    }

    /// A compact JWE (`dir`, A256GCM) keyed by SHA-256 of the refresh token: the stored pair is
    /// useless to anyone reading the database without that token.
    fn seal(&self, pair: &TokenPair, refresh_token: &str) -> Result<String, PortError> {
        let sealed = SealedPair {
            issued_at: pair.issued_at.timestamp(),
            access_token: pair.access_token.clone(),
            access_expires_at: pair.access_expires_at.timestamp(),
            refresh_token: pair.refresh_token.clone(),
            refresh_expires_at: pair.refresh_expires_at.timestamp(),
        };
        let plaintext =
            serde_json::to_vec(&sealed).map_err(|error| PortError::Unexpected(error.into()))?;
        let encrypter = Dir
            .encrypter_from_bytes(openssl::sha::sha256(refresh_token.as_bytes()))
            .map_err(|error| PortError::Unexpected(anyhow!(error)))?;
        let mut header = JweHeader::new();
        header.set_content_encryption("A256GCM");
        josekit::jwe::serialize_compact(&plaintext, &header, &encrypter)
            .map_err(|error| PortError::Unexpected(anyhow!(error).context("sealing a token pair")))
    }

    fn unseal(&self, sealed: &str, refresh_token: &str) -> Option<TokenPair> {
        let decrypter = Dir
            .decrypter_from_bytes(openssl::sha::sha256(refresh_token.as_bytes()))
            .ok()?;
        let (plaintext, _) = josekit::jwe::deserialize_compact(sealed, &decrypter).ok()?;
        let pair: SealedPair = serde_json::from_slice(&plaintext).ok()?;
        Some(TokenPair {
            issued_at: DateTime::from_timestamp(pair.issued_at, 0)?,
            access_token: pair.access_token,
            access_expires_at: DateTime::from_timestamp(pair.access_expires_at, 0)?,
            refresh_token: pair.refresh_token,
            refresh_expires_at: DateTime::from_timestamp(pair.refresh_expires_at, 0)?,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct SealedPair {
    issued_at: i64,
    access_token: String,
    access_expires_at: i64,
    refresh_token: String,
    refresh_expires_at: i64,
}

impl TokenVerifier for JoseTokenCodec {
    fn verify_access(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, TokenRejected> {
        let checked = self.verify(token, ACCESS, now)?;
        let claims = checked.payload.claims_set();
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| reject(format!("missing claim {name}")))
        };
        Ok(AccessClaims {
            email: text("email")?,
            role: text("role")?,
            is_superuser: claims
                .get("su")
                .and_then(Value::as_bool)
                .ok_or_else(|| reject("missing claim su"))?,
            user_id: checked.user_id,
            session_id: checked.session_id,
            token_id: checked.token_id,
            issued_at: checked.issued_at,
            expires_at: checked.expires_at,
        })
    }

    fn verify_refresh(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<RefreshClaims, TokenRejected> {
        let checked = self.verify(token, REFRESH, now)?;
        Ok(RefreshClaims {
            user_id: checked.user_id,
            session_id: checked.session_id,
            token_id: checked.token_id,
            issued_at: checked.issued_at,
            expires_at: checked.expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, SigningKey, generate_key};

    fn key(algorithm: Algorithm) -> SigningKey {
        SigningKey::from_jwk_bytes(generate_key(algorithm).unwrap().as_bytes()).unwrap()
    }

    fn settings() -> TokenSettings {
        TokenSettings {
            issuer: "authd".into(),
            audience: "authd".into(),
            leeway: TimeDelta::seconds(60),
        }
    }

    fn codec(keys: Vec<SigningKey>) -> JoseTokenCodec {
        JoseTokenCodec::new(KeyRing::new(keys).unwrap(), settings())
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn access(expires_in: TimeDelta) -> AccessClaims {
        AccessClaims {
            user_id: UserId::generate(),
            session_id: SessionId::generate(),
            token_id: TokenId::generate(),
            issued_at: now(),
            expires_at: now() + expires_in,
            email: "ada@example.com".into(),
            role: "application-access".into(),
            is_superuser: true,
        }
    }

    /// Signs an arbitrary payload with the codec's signing key, to forge malformed tokens.
    fn forge(codec: &JoseTokenCodec, claims: serde_json::Value) -> String {
        let key = codec.keys().signing();
        let mut header = JwsHeader::new();
        header.set_key_id(key.kid());
        let payload = JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
        jwt::encode_with_signer(&payload, &header, key.signer()).unwrap()
    }

    fn valid_claims(claims: &AccessClaims) -> serde_json::Value {
        serde_json::json!({
            "iss": "authd", "aud": "authd", "typ": "access",
            "sub": claims.user_id.to_string(), "sid": claims.session_id.to_string(),
            "jti": claims.token_id.to_string(), "iat": now().timestamp(),
            "exp": (now() + TimeDelta::minutes(15)).timestamp(),
            "email": "ada@example.com", "role": "application-access", "su": false,
        })
    }

    #[test]
    fn access_tokens_round_trip_with_every_algorithm() {
        for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::HS256] {
            let codec = codec(vec![key(algorithm)]);
            let claims = access(TimeDelta::minutes(15));
            let token = codec.sign_access(&claims).unwrap();
            assert_eq!(
                codec.verify_access(&token, now()).unwrap(),
                claims,
                "{algorithm}"
            );
            let header = jwt::decode_header(&token).unwrap();
            assert_eq!(header.claim("alg"), Some(&Value::from(algorithm.name())));
            assert_eq!(
                header.claim("kid"),
                Some(&Value::from(codec.keys().signing().kid()))
            );
        }
    }

    #[test]
    fn a_token_of_the_other_type_is_refused() {
        let codec = codec(vec![key(Algorithm::EdDSA)]);
        let claims = access(TimeDelta::minutes(15));
        let token = codec.sign_access(&claims).unwrap();
        assert!(codec.verify_refresh(&token, now()).is_err());
        let refresh = RefreshClaims {
            user_id: claims.user_id,
            session_id: claims.session_id,
            token_id: claims.token_id,
            issued_at: claims.issued_at,
            expires_at: claims.expires_at,
        };
        let token = codec.sign_refresh(&refresh).unwrap();
        assert_eq!(codec.verify_refresh(&token, now()).unwrap(), refresh);
        assert!(codec.verify_access(&token, now()).is_err());
    }

    #[test]
    fn expiry_has_sixty_seconds_of_leeway_and_no_more() {
        let codec = codec(vec![key(Algorithm::EdDSA)]);
        let token = codec.sign_access(&access(TimeDelta::minutes(1))).unwrap();
        let expiry = now() + TimeDelta::minutes(1);
        assert!(
            codec
                .verify_access(&token, expiry + TimeDelta::seconds(60))
                .is_ok()
        );
        assert!(
            codec
                .verify_access(&token, expiry + TimeDelta::seconds(61))
                .is_err()
        );
        // Issued "in the future" by a fast clock: tolerated up to the leeway.
        assert!(
            codec
                .verify_access(&token, now() - TimeDelta::seconds(60))
                .is_ok()
        );
        assert!(
            codec
                .verify_access(&token, now() - TimeDelta::seconds(61))
                .is_err()
        );
    }

    #[test]
    fn wrong_issuer_or_audience_is_refused() {
        let jwk = generate_key(Algorithm::EdDSA).unwrap();
        let load =
            || KeyRing::new(vec![SigningKey::from_jwk_bytes(jwk.as_bytes()).unwrap()]).unwrap();
        let signer = JoseTokenCodec::new(load(), settings());
        let token = signer.sign_access(&access(TimeDelta::minutes(15))).unwrap();
        assert!(
            JoseTokenCodec::new(load(), settings())
                .verify_access(&token, now())
                .is_ok()
        );
        for (issuer, audience) in [("other", "authd"), ("authd", "other")] {
            let expectations = TokenSettings {
                issuer: issuer.into(),
                audience: audience.into(),
                leeway: TimeDelta::seconds(60),
            };
            let verifier = JoseTokenCodec::new(load(), expectations);
            assert!(
                verifier.verify_access(&token, now()).is_err(),
                "{issuer}/{audience}"
            );
        }
    }

    #[test]
    fn every_required_claim_is_required() {
        let codec = codec(vec![key(Algorithm::EdDSA)]);
        let claims = access(TimeDelta::minutes(15));
        assert!(
            codec
                .verify_access(&forge(&codec, valid_claims(&claims)), now())
                .is_ok()
        );
        for missing in [
            "iss", "aud", "typ", "sub", "sid", "jti", "iat", "exp", "email", "role", "su",
        ] {
            let mut body = valid_claims(&claims);
            body.as_object_mut().unwrap().remove(missing);
            assert!(
                codec.verify_access(&forge(&codec, body), now()).is_err(),
                "accepted without {missing}"
            );
        }
    }

    #[test]
    fn unsigned_unknown_kid_and_wrong_algorithm_are_refused() {
        let codec = codec(vec![key(Algorithm::EdDSA)]);
        let claims = valid_claims(&access(TimeDelta::minutes(15)));
        let payload = JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();

        let mut header = JwsHeader::new();
        header.set_key_id(codec.keys().signing().kid());
        let unsecured = jwt::encode_unsecured(&payload, &header).unwrap();
        assert!(
            codec.verify_access(&unsecured, now()).is_err(),
            "alg none accepted"
        );

        let stranger = key(Algorithm::EdDSA);
        let mut header = JwsHeader::new();
        header.set_key_id(stranger.kid());
        let unknown = jwt::encode_with_signer(&payload, &header, stranger.signer()).unwrap();
        assert!(
            codec.verify_access(&unknown, now()).is_err(),
            "unknown kid accepted"
        );

        // An HS256 token claiming the EdDSA key's kid: the kid pins the algorithm.
        let hmac = key(Algorithm::HS256);
        let mut header = JwsHeader::new();
        header.set_key_id(codec.keys().signing().kid());
        let confused = jwt::encode_with_signer(&payload, &header, hmac.signer()).unwrap();
        assert!(
            codec.verify_access(&confused, now()).is_err(),
            "algorithm confusion accepted"
        );

        let token = codec.sign_access(&access(TimeDelta::minutes(15))).unwrap();
        let mut tampered = token.clone();
        tampered.replace_range(tampered.len() - 4.., "AAAA");
        assert!(
            codec.verify_access(&tampered, now()).is_err(),
            "bad signature accepted"
        );
    }

    #[test]
    fn verify_only_keys_keep_verifying_after_rotation() {
        let old = generate_key(Algorithm::EdDSA).unwrap();
        let load = || SigningKey::from_jwk_bytes(old.as_bytes()).unwrap();
        let before = codec(vec![load()]);
        let token = before.sign_access(&access(TimeDelta::minutes(15))).unwrap();
        let after = codec(vec![key(Algorithm::ES256), load()]);
        assert!(after.verify_access(&token, now()).is_ok());
        let fresh = after.sign_access(&access(TimeDelta::minutes(15))).unwrap();
        assert!(before.verify_access(&fresh, now()).is_err());
    }

    #[test]
    fn a_sealed_pair_opens_only_with_the_token_it_was_sealed_with() {
        let codec = codec(vec![key(Algorithm::EdDSA)]);
        let pair = TokenPair {
            issued_at: now(),
            access_token: "a.b.c".into(),
            access_expires_at: now(),
            refresh_token: "d.e.f".into(),
            refresh_expires_at: now() + TimeDelta::days(7),
        };
        let sealed = codec.seal(&pair, "old-refresh").unwrap();
        assert!(!sealed.contains("a.b.c"));
        assert_eq!(codec.unseal(&sealed, "old-refresh"), Some(pair));
        assert_eq!(codec.unseal(&sealed, "another-token"), None);
        assert_eq!(codec.unseal("garbage", "old-refresh"), None);
    }
}
