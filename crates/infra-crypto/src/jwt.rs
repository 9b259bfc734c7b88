use anyhow::anyhow;
use authd_application::PortError;
use authd_application::ports::{TokenIssuer, TokenRejected, TokenVerifier};
use authd_application::{AccessClaims, DeviceClaims, PairIds, RefreshClaims};
use authd_domain::{SessionId, TokenId, UserId};
use chrono::{DateTime, TimeDelta, Utc};
use hkdf::Hkdf;
use josekit::jwe::{Dir, JweHeader};
use josekit::jws::{JwsHeader, JwsVerifier};
use josekit::jwt::{self, JwtPayload};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

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
const DEVICE: &str = "device";

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
        header.set_token_type(header_type(typ));
        header.set_key_id(key.kid());
        payload.set_issuer(&self.settings.issuer);
        payload.set_audience(vec![self.settings.audience.clone()]);
        set(&mut payload, "typ", Value::from(typ))?;
        jwt::encode_with_signer(&payload, &header, key.signer())
            .map_err(|error| PortError::Unexpected(anyhow!(error).context("signing a token")))
    }

    /// Signature, pinned algorithm, known `kid`, the header's `typ`, then every registered
    /// claim.
    fn verify(&self, token: &str, typ: &str, now: DateTime<Utc>) -> Result<Checked, TokenRejected> {
        let (payload, header) = jwt::decode_with_verifier_selector(token, |header| {
            let key = header.key_id().and_then(|kid| self.keys.find(kid));
            Ok(key
                .filter(|key| header.algorithm() == Some(key.algorithm().name()))
                .map(|key| key.verifier() as &dyn JwsVerifier))
        })
        .map_err(|error| reject(format!("undecodable or badly signed: {error}")))?;
        if !header_type_matches(header.token_type(), &header_type(typ)) {
            return Err(reject("wrong or missing typ header"));
        }

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
        let session_id = match claims.get("sid") {
            Some(_) => Some(SessionId::from_uuid(uuid("sid")?)),
            None => None,
        };
        Ok(Checked {
            user_id: UserId::from_uuid(uuid("sub")?),
            session_id,
            token_id: TokenId::from_uuid(uuid("jti")?),
            issued_at,
            expires_at,
            payload,
        })
    }
}

/// The claims common to every token type, checked (`sid` only where present: device tokens
/// have none).
struct Checked {
    user_id: UserId,
    session_id: Option<SessionId>,
    token_id: TokenId,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    payload: JwtPayload,
}

/// The JOSE header `typ` of a token whose `typ` claim is `claim` (explicit typing, RFC 8725
/// §3.11): `at+jwt` for access tokens (RFC 9068), `<claim>+jwt` for every other kind
/// (`refresh+jwt`). A token of one kind can then never pass for another, whatever its claims.
fn header_type(claim: &str) -> String {
    if claim == ACCESS {
        "at+jwt".to_owned()
    } else {
        format!("{claim}+jwt")
    }
}

/// Whether a header `typ` names `expected`. It is a media type (RFC 7515 §4.1.9): compared
/// case-insensitively, with the `application/` prefix optional (RFC 9068 §4 accepts both
/// `at+jwt` and `application/at+jwt`). A missing `typ`, or the generic `JWT` of tokens issued
/// before explicit typing, matches nothing.
fn header_type_matches(found: Option<&str>, expected: &str) -> bool {
    let Some(found) = found else {
        return false;
    };
    let found = match found.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &found[12..],
        _ => found,
    };
    found.eq_ignore_ascii_case(expected)
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

    /// Signed like the other tokens (so every instance holding the keys verifies it, and a
    /// key retired from `AUTHD_JWT_KEY_FILES` retires its device tokens too), without `sid`.
    fn sign_device(&self, claims: &DeviceClaims) -> Result<String, PortError> {
        let mut payload = JwtPayload::new();
        payload.set_subject(claims.user_id.to_string());
        payload.set_jwt_id(claims.device_id.to_string());
        set(
            &mut payload,
            "iat",
            Value::from(claims.issued_at.timestamp()),
        )?;
        set(
            &mut payload,
            "exp",
            Value::from(claims.expires_at.timestamp()),
        )?;
        set(&mut payload, "acct", Value::from(claims.account.clone()))?;
        self.sign(payload, DEVICE)
    }

    /// A compact JWE (`dir`, A256GCM) under a key derived with HKDF-SHA256 from `refresh_token`,
    /// salted with `session` (see `sealing_key`): the stored ids are useless to anyone reading
    /// the database without the refresh token they succeed.
    fn seal(
        &self,
        successor: &PairIds,
        refresh_token: &str,
        session: SessionId,
    ) -> Result<String, PortError> {
        let sealed = SealedIds {
            access_jti: successor.access.as_uuid(),
            refresh_jti: successor.refresh.as_uuid(),
            issued_at: successor.issued_at.timestamp(),
        };
        let plaintext =
            serde_json::to_vec(&sealed).map_err(|error| PortError::Unexpected(error.into()))?;
        let key = sealing_key(refresh_token, session)
            .map_err(|error| PortError::Unexpected(anyhow!("deriving the sealing key: {error}")))?;
        seal_with(&key, &plaintext)
            .map_err(|error| PortError::Unexpected(error.context("sealing a successor's ids")))
    }

    fn unseal(&self, sealed: &str, refresh_token: &str, session: SessionId) -> Option<PairIds> {
        let plaintext = unseal_with(&sealing_key(refresh_token, session).ok()?, sealed)?;
        let ids: SealedIds = serde_json::from_slice(&plaintext).ok()?;
        Some(PairIds {
            access: TokenId::from_uuid(ids.access_jti),
            refresh: TokenId::from_uuid(ids.refresh_jti),
            issued_at: DateTime::from_timestamp(ids.issued_at, 0)?,
        })
    }
}

/// HKDF's `info`: what the derived key is for, so no other use of the same token and salt
/// (there is none today) could ever yield the same key.
const SEALING_INFO: &[u8] =
    b"authd/v1 successor pair sealed for the refresh grace window (A256GCM)";

/// The key that seals a session's successor pair: HKDF-SHA256 (RFC 5869) with the refresh
/// token the pair replaced as input keying material, the session's id as salt and
/// [`SEALING_INFO`] as info.
///
/// The token is the secret: it is signed with the server's private key and never stored, so
/// nothing in a database dump derives this key. The salt need not be secret (RFC 5869 §3.1);
/// the session id is unique per session and already in the row, so it costs no column, and it
/// binds the ciphertext to its session: moved to another row, it opens for nobody.
fn sealing_key(refresh_token: &str, session: SessionId) -> Result<[u8; 32], hkdf::InvalidLength> {
    let mut key = [0; 32];
    let hkdf = Hkdf::<Sha256>::new(Some(session.as_uuid().as_bytes()), refresh_token.as_bytes());
    // Only a length over 255 × 32 bytes fails.
    hkdf.expand(SEALING_INFO, &mut key)?;
    Ok(key)
}

/// `plaintext` as a compact JWE (`dir`, A256GCM) under `key`.
pub(crate) fn seal_with(key: &[u8; 32], plaintext: &[u8]) -> anyhow::Result<String> {
    let encrypter = Dir.encrypter_from_bytes(key)?;
    let mut header = JweHeader::new();
    header.set_content_encryption("A256GCM");
    Ok(josekit::jwe::serialize_compact(
        plaintext, &header, &encrypter,
    )?)
}

/// The plaintext of what [`seal_with`] made under `key`; `None` for anything else (another
/// key, a tampered or malformed JWE).
pub(crate) fn unseal_with(key: &[u8; 32], sealed: &str) -> Option<Vec<u8>> {
    let decrypter = Dir.decrypter_from_bytes(key).ok()?;
    let (plaintext, _) = josekit::jwe::deserialize_compact(sealed, &decrypter).ok()?;
    Some(plaintext)
}

#[derive(Serialize, Deserialize)]
struct SealedIds {
    access_jti: uuid::Uuid,
    refresh_jti: uuid::Uuid,
    issued_at: i64,
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
            session_id: checked.session_id()?,
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
            session_id: checked.session_id()?,
            token_id: checked.token_id,
            issued_at: checked.issued_at,
            expires_at: checked.expires_at,
        })
    }

    fn verify_device(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<DeviceClaims, TokenRejected> {
        let checked = self.verify(token, DEVICE, now)?;
        let account = checked
            .payload
            .claim("acct")
            .and_then(Value::as_str)
            .ok_or_else(|| reject("missing claim acct"))?
            .to_owned();
        Ok(DeviceClaims {
            user_id: checked.user_id,
            account,
            device_id: checked.token_id,
            issued_at: checked.issued_at,
            expires_at: checked.expires_at,
        })
    }
}

impl Checked {
    /// `sid`, which access and refresh tokens must carry.
    fn session_id(&self) -> Result<SessionId, TokenRejected> {
        self.session_id.ok_or_else(|| reject("missing claim sid"))
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
        // The header type the codec gives tokens with this `typ` claim.
        if let Some(typ) = claims["typ"].as_str() {
            header.set_token_type(header_type(typ));
        }
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

    fn sample_ids() -> PairIds {
        PairIds::generate(now())
    }

    #[test]
    fn sealed_ids_open_only_with_the_token_and_session_they_were_sealed_with() {
        let codec = codec(vec![key(Algorithm::EdDSA)]);
        let ids = sample_ids();
        let session = SessionId::generate();
        let sealed = codec.seal(&ids, "old-refresh", session).unwrap();
        for id in [ids.access.to_string(), ids.refresh.to_string()] {
            assert!(!sealed.contains(&id));
        }
        assert_eq!(codec.unseal(&sealed, "old-refresh", session), Some(ids));
        assert_eq!(codec.unseal(&sealed, "another-token", session), None);
        assert_eq!(
            codec.unseal(&sealed, "old-refresh", SessionId::generate()),
            None,
            "moved to another session, it opened"
        );
        assert_eq!(codec.unseal("garbage", "old-refresh", session), None);
    }

    /// Whether the compact JWE opens with this key.
    fn opens_with(sealed: &str, key: &[u8]) -> bool {
        let decrypter = Dir.decrypter_from_bytes(key).unwrap();
        josekit::jwe::deserialize_compact(sealed, &decrypter).is_ok()
    }

    /// HMAC-SHA256 of the concatenated `data`, from the `hmac` crate HKDF itself builds on.
    fn hmac_sha256(key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        use hkdf::hmac::{KeyInit, Mac};
        let mut mac = hkdf::hmac::Hmac::<Sha256>::new_from_slice(key).unwrap();
        for part in data {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn the_sealing_key_is_hkdf_sha256_of_the_token_salted_with_the_session() {
        use sha2::Digest;
        let codec = codec(vec![key(Algorithm::EdDSA)]);
        let session = SessionId::generate();
        let sealed = codec.seal(&sample_ids(), "old-refresh", session).unwrap();
        let key = sealing_key("old-refresh", session).unwrap();
        let (_, header) =
            josekit::jwe::deserialize_compact(&sealed, &Dir.decrypter_from_bytes(key).unwrap())
                .unwrap();
        assert_eq!(header.algorithm(), Some("dir"));
        assert_eq!(header.content_encryption(), Some("A256GCM"));
        // RFC 5869 by hand: PRK = HMAC(salt, IKM), then one block OKM = HMAC(PRK, info | 0x01).
        let salt = session.as_uuid();
        let prk = hmac_sha256(salt.as_bytes(), &[b"old-refresh"]);
        assert_eq!(hmac_sha256(&prk, &[SEALING_INFO, &[1]]), key);
        // The old scheme's key, and keys made of what the session's row holds, open nothing.
        let without_token =
            hmac_sha256(&hmac_sha256(salt.as_bytes(), &[b""]), &[SEALING_INFO, &[1]]);
        for (name, key) in [
            (
                "SHA-256 of the token",
                Sha256::digest(b"old-refresh").to_vec(),
            ),
            ("SHA-256 of nothing", Sha256::digest(b"").to_vec()),
            (
                "SHA-256 of the session id",
                Sha256::digest(session.to_string()).to_vec(),
            ),
            ("HKDF without the token", without_token),
        ] {
            assert!(!opens_with(&sealed, &key), "{name} opened it");
        }
    }

    /// Re-signs `token`'s claims with the codec's key under the header `typ` given (none for
    /// `None`).
    fn with_header_type(codec: &JoseTokenCodec, token: &str, typ: Option<&str>) -> String {
        let key = codec.keys().signing();
        let mut header = JwsHeader::new();
        header.set_key_id(key.kid());
        if let Some(typ) = typ {
            header.set_token_type(typ);
        }
        let payload = jwt::decode_with_verifier(token, key.verifier()).unwrap().0;
        jwt::encode_with_signer(&payload, &header, key.signer()).unwrap()
    }

    fn refresh_of(claims: &AccessClaims) -> RefreshClaims {
        RefreshClaims {
            user_id: claims.user_id,
            session_id: claims.session_id,
            token_id: claims.token_id,
            issued_at: claims.issued_at,
            expires_at: claims.expires_at,
        }
    }

    #[test]
    fn tokens_carry_their_type_in_the_header() {
        let codec = codec(vec![key(Algorithm::EdDSA)]);
        let claims = access(TimeDelta::minutes(15));
        let access = codec.sign_access(&claims).unwrap();
        let refresh = codec.sign_refresh(&refresh_of(&claims)).unwrap();
        let typ = |token: &str| jwt::decode_header(token).unwrap().claim("typ").cloned();
        assert_eq!(typ(&access), Some(Value::from("at+jwt")));
        assert_eq!(typ(&refresh), Some(Value::from("refresh+jwt")));
    }

    #[test]
    fn an_access_token_needs_the_at_jwt_header_type() {
        let codec = codec(vec![key(Algorithm::EdDSA)]);
        let token = codec.sign_access(&access(TimeDelta::minutes(15))).unwrap();
        for accepted in [
            "at+jwt",
            "application/at+jwt",
            "AT+JWT",
            "Application/At+JWT",
        ] {
            let token = with_header_type(&codec, &token, Some(accepted));
            assert!(codec.verify_access(&token, now()).is_ok(), "{accepted}");
        }
        // Missing, the generic type of tokens issued before, the other token's, near misses.
        for refused in [
            None,
            Some("JWT"),
            Some("jwt"),
            Some("refresh+jwt"),
            Some("application/refresh+jwt"),
            Some("at+jwt "),
            Some("application/jwt"),
            Some("text/at+jwt"),
            // Twelve characters before the type, like `application/`, but not it.
            Some("vnd.example/at+jwt"),
            Some("applicationsat+jwt"),
            Some(""),
        ] {
            let token = with_header_type(&codec, &token, refused);
            let rejected = codec.verify_access(&token, now()).unwrap_err();
            assert!(rejected.0.contains("typ header"), "{refused:?}: {rejected}");
        }
    }

    #[test]
    fn a_refresh_token_needs_the_refresh_jwt_header_type() {
        let codec = codec(vec![key(Algorithm::EdDSA)]);
        let claims = refresh_of(&access(TimeDelta::minutes(15)));
        let token = codec.sign_refresh(&claims).unwrap();
        for accepted in ["refresh+jwt", "application/refresh+jwt", "Refresh+JWT"] {
            let token = with_header_type(&codec, &token, Some(accepted));
            assert_eq!(
                codec.verify_refresh(&token, now()).unwrap(),
                claims,
                "{accepted}"
            );
        }
        for refused in [
            None,
            Some("JWT"),
            Some("at+jwt"),
            Some("application/at+jwt"),
        ] {
            let token = with_header_type(&codec, &token, refused);
            let rejected = codec.verify_refresh(&token, now()).unwrap_err();
            assert!(rejected.0.contains("typ header"), "{refused:?}: {rejected}");
        }
    }

    #[test]
    fn the_header_type_and_the_typ_claim_must_agree() {
        let codec = codec(vec![key(Algorithm::EdDSA)]);
        let claims = access(TimeDelta::minutes(15));
        // An access token relabelled as a refresh token, and the reverse: neither passes as
        // either (the claim refuses one use, the header the other).
        let access = codec.sign_access(&claims).unwrap();
        let relabelled = with_header_type(&codec, &access, Some("refresh+jwt"));
        assert!(codec.verify_refresh(&relabelled, now()).is_err());
        assert!(codec.verify_access(&relabelled, now()).is_err());
        let refresh = codec.sign_refresh(&refresh_of(&claims)).unwrap();
        let relabelled = with_header_type(&codec, &refresh, Some("at+jwt"));
        assert!(codec.verify_access(&relabelled, now()).is_err());
        assert!(codec.verify_refresh(&relabelled, now()).is_err());
    }

    fn device() -> DeviceClaims {
        DeviceClaims {
            user_id: UserId::generate(),
            account: "ada@example.com".into(),
            device_id: TokenId::generate(),
            issued_at: now(),
            expires_at: now() + DeviceClaims::LIFETIME,
        }
    }

    #[test]
    fn device_tokens_round_trip_and_are_no_other_token() {
        let codec = codec(vec![key(Algorithm::EdDSA)]);
        let claims = device();
        let token = codec.sign_device(&claims).unwrap();
        assert_eq!(codec.verify_device(&token, now()).unwrap(), claims);
        // A device token opens no session, and no session token is a device token.
        assert!(codec.verify_access(&token, now()).is_err());
        assert!(codec.verify_refresh(&token, now()).is_err());
        let access = codec.sign_access(&access(TimeDelta::minutes(15))).unwrap();
        assert!(codec.verify_device(&access, now()).is_err());
        // Expired a year on, past the leeway; another key's token is refused.
        let later = now() + DeviceClaims::LIFETIME + TimeDelta::seconds(61);
        assert!(codec.verify_device(&token, later).is_err());
        let stranger = super::tests::codec(vec![key(Algorithm::EdDSA)]);
        assert!(stranger.verify_device(&token, now()).is_err());
    }

    #[test]
    fn a_device_token_without_its_account_is_refused() {
        let codec = codec(vec![key(Algorithm::EdDSA)]);
        let claims = device();
        let forged = forge(
            &codec,
            serde_json::json!({
                "iss": "authd", "aud": ["authd"], "typ": "device",
                "sub": claims.user_id.to_string(), "jti": claims.device_id.to_string(),
                "iat": now().timestamp(), "exp": claims.expires_at.timestamp(),
            }),
        );
        let rejected = codec.verify_device(&forged, now()).unwrap_err();
        assert_eq!(rejected.0, "missing claim acct");
    }

    #[test]
    fn session_tokens_need_their_sid() {
        let codec = codec(vec![key(Algorithm::EdDSA)]);
        let claims = access(TimeDelta::minutes(15));
        let mut without_sid = valid_claims(&claims);
        without_sid.as_object_mut().unwrap().remove("sid");
        let forged = forge(&codec, without_sid);
        assert_eq!(
            codec.verify_access(&forged, now()).unwrap_err().0,
            "missing claim sid"
        );
    }
}
