use std::fmt;
use std::str::FromStr;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{ES256, EdDSA, HS256, JwsSigner, JwsVerifier};

/// A signing algorithm authd supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Ed25519 signatures (the default).
    EdDSA,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// HMAC with SHA-256: one shared secret, nothing to publish.
    HS256,
}

impl Algorithm {
    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::HS256 => "HS256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "EdDSA" => Ok(Self::EdDSA),
            "ES256" => Ok(Self::ES256),
            "HS256" => Ok(Self::HS256),
            other => bail!("unsupported algorithm {other:?} (expected EdDSA, ES256 or HS256)"),
        }
    }
}

/// One key: its id, its pinned algorithm, and what it can do.
#[derive(Debug)]
pub struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    signer: Box<dyn JwsSigner>,
    verifier: Box<dyn JwsVerifier>,
    public: Option<Jwk>,
    secret: Option<KeySecret>,
}

/// A key's private material (`d` of an EdDSA or ES256 key, `k` of an HS256 secret), for keys
/// derived from it; its `Debug` output is redacted.
pub(crate) struct KeySecret(Vec<u8>);

impl KeySecret {
    /// The decoded bytes.
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySecret(***)")
    }
}

impl SigningKey {
    /// Reads a private JWK (as written by [`generate_key`]); it must name its `kid` and `alg`.
    pub fn from_jwk_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        let jwk = Jwk::from_bytes(bytes).context("not a JSON Web Key")?;
        let kid = jwk
            .key_id()
            .filter(|kid| !kid.is_empty())
            .ok_or_else(|| anyhow!("the key has no \"kid\""))?
            .to_owned();
        let algorithm: Algorithm = jwk
            .algorithm()
            .ok_or_else(|| anyhow!("the key has no \"alg\""))?
            .parse()?;
        let (signer, verifier, public): (Box<dyn JwsSigner>, Box<dyn JwsVerifier>, _) =
            match algorithm {
                Algorithm::EdDSA => (
                    Box::new(EdDSA.signer_from_jwk(&jwk)?),
                    Box::new(EdDSA.verifier_from_jwk(&jwk)?),
                    Some(jwk.to_public_key()?),
                ),
                Algorithm::ES256 => (
                    Box::new(ES256.signer_from_jwk(&jwk)?),
                    Box::new(ES256.verifier_from_jwk(&jwk)?),
                    Some(jwk.to_public_key()?),
                ),
                Algorithm::HS256 => (
                    Box::new(HS256.signer_from_jwk(&jwk)?),
                    Box::new(HS256.verifier_from_jwk(&jwk)?),
                    None,
                ),
            };
        // josekit's public form keeps only the key material and `use`; a JWKS entry also needs
        // the `kid` tokens name and the `alg` it is pinned to.
        let public = public.map(|mut public: Jwk| {
            public.set_key_id(kid.clone());
            public.set_algorithm(algorithm.name());
            public
        });
        let secret_parameter = match algorithm {
            Algorithm::EdDSA | Algorithm::ES256 => "d",
            Algorithm::HS256 => "k",
        };
        let secret = jwk
            .parameter(secret_parameter)
            .and_then(serde_json::Value::as_str)
            .and_then(|encoded| URL_SAFE_NO_PAD.decode(encoded).ok())
            .filter(|bytes| !bytes.is_empty())
            .map(KeySecret);
        Ok(Self {
            kid,
            algorithm,
            signer,
            verifier,
            public,
            secret,
        })
    }

    /// Its `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Its pinned algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Its public JWK, for a JWKS document (`None` for HS256).
    pub fn public_jwk(&self) -> Option<&Jwk> {
        self.public.as_ref()
    }

    pub(crate) fn signer(&self) -> &dyn JwsSigner {
        self.signer.as_ref()
    }

    pub(crate) fn verifier(&self) -> &dyn JwsVerifier {
        self.verifier.as_ref()
    }

    /// Its private material, `None` for a key without any.
    pub(crate) fn secret(&self) -> Option<&KeySecret> {
        self.secret.as_ref()
    }
}

/// The keys in use: the first signs, all verify (the others are being rotated out).
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
}

impl KeyRing {
    /// A ring whose first key signs. Fails when empty or when two keys share a `kid`.
    pub fn new(keys: Vec<SigningKey>) -> anyhow::Result<Self> {
        if keys.is_empty() {
            bail!("no signing key");
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|other| other.kid == key.kid) {
                bail!("two keys share the kid {:?}", key.kid);
            }
        }
        Ok(Self { keys })
    }

    /// A ring of one fresh key, for a process started without key files.
    pub fn ephemeral(algorithm: Algorithm) -> anyhow::Result<Self> {
        let jwk = generate_key(algorithm)?;
        Self::new(vec![SigningKey::from_jwk_bytes(jwk.as_bytes())?])
    }

    /// The key that signs.
    pub fn signing(&self) -> &SigningKey {
        &self.keys[0]
    }

    /// The key with this `kid`.
    pub fn find(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|key| key.kid == kid)
    }

    /// Every key.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// The JWKS document of the public keys, signing and verify-only alike (`{"keys": []}`
    /// for HS256, whose secret is never published).
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .filter_map(SigningKey::public_jwk)
            .map(|jwk| serde_json::Value::Object(jwk.as_ref().clone()))
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

/// A new private key as a JWK JSON document with a fresh `kid`, its `alg` and `use: sig`.
pub fn generate_key(algorithm: Algorithm) -> anyhow::Result<String> {
    let mut jwk = match algorithm {
        Algorithm::EdDSA => Jwk::generate_ed_key(EdCurve::Ed25519)?,
        Algorithm::ES256 => Jwk::generate_ec_key(EcCurve::P256)?,
        // 32 bytes: the HMAC-SHA-256 block-size-appropriate secret length.
        Algorithm::HS256 => Jwk::generate_oct_key(32)?,
    };
    jwk.set_key_id(uuid::Uuid::now_v7().simple().to_string());
    jwk.set_algorithm(algorithm.name());
    jwk.set_key_use("sig");
    Ok(jwk.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_with_their_kid_and_algorithm() {
        for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::HS256] {
            let key =
                SigningKey::from_jwk_bytes(generate_key(algorithm).unwrap().as_bytes()).unwrap();
            assert_eq!(key.algorithm(), algorithm);
            assert_eq!(key.kid().len(), 32);
            assert_eq!(key.public_jwk().is_some(), algorithm != Algorithm::HS256);
            if let Some(public) = key.public_jwk() {
                assert!(
                    public.parameter("d").is_none(),
                    "the public JWK leaks the private part"
                );
                assert_eq!(public.key_id(), Some(key.kid()));
                assert_eq!(public.algorithm(), Some(algorithm.name()));
            }
        }
    }

    #[test]
    fn private_material_is_kept_for_derived_keys_and_never_printed() {
        for (algorithm, parameter) in [
            (Algorithm::EdDSA, "d"),
            (Algorithm::ES256, "d"),
            (Algorithm::HS256, "k"),
        ] {
            let jwk = generate_key(algorithm).unwrap();
            let encoded = Jwk::from_bytes(jwk.as_bytes())
                .unwrap()
                .parameter(parameter)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned();
            let key = SigningKey::from_jwk_bytes(jwk.as_bytes()).unwrap();
            let secret = key.secret().unwrap();
            assert_eq!(secret.expose(), URL_SAFE_NO_PAD.decode(&encoded).unwrap());
            assert_eq!(secret.expose().len(), 32);
            assert!(!format!("{key:?}").contains(&encoded));
            assert_eq!(format!("{secret:?}"), "KeySecret(***)");
            assert!(format!("{key:?}").contains("secret: Some(KeySecret(***))"));
        }
    }

    #[test]
    fn algorithms_display_as_their_jose_names_and_parse_back() {
        for (algorithm, name) in [
            (Algorithm::EdDSA, "EdDSA"),
            (Algorithm::ES256, "ES256"),
            (Algorithm::HS256, "HS256"),
        ] {
            assert_eq!(algorithm.to_string(), name);
            assert_eq!(algorithm.name(), name);
            assert_eq!(name.parse::<Algorithm>().unwrap(), algorithm);
        }
        assert!("eddsa".parse::<Algorithm>().is_err());
        assert!("RS256".parse::<Algorithm>().is_err());
    }

    #[test]
    fn keys_without_kid_or_alg_are_refused() {
        let mut jwk = Jwk::generate_ed_key(EdCurve::Ed25519).unwrap();
        assert!(SigningKey::from_jwk_bytes(jwk.to_string().as_bytes()).is_err());
        jwk.set_key_id("k1");
        assert!(SigningKey::from_jwk_bytes(jwk.to_string().as_bytes()).is_err());
        jwk.set_algorithm("EdDSA");
        assert!(SigningKey::from_jwk_bytes(jwk.to_string().as_bytes()).is_ok());
        assert!(SigningKey::from_jwk_bytes(b"not json").is_err());
    }

    #[test]
    fn the_jwks_lists_every_public_key_and_no_secret() {
        let load = |algorithm| {
            SigningKey::from_jwk_bytes(generate_key(algorithm).unwrap().as_bytes()).unwrap()
        };
        let ring = KeyRing::new(vec![
            load(Algorithm::EdDSA),
            load(Algorithm::ES256),
            load(Algorithm::HS256),
        ])
        .unwrap();
        let jwks = ring.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0]["kid"], ring.keys()[0].kid());
        assert_eq!(keys[1]["alg"], "ES256");
        assert!(
            keys.iter()
                .all(|key| key.get("d").is_none() && key.get("k").is_none())
        );
    }

    #[test]
    fn duplicate_kids_are_refused() {
        let jwk = generate_key(Algorithm::EdDSA).unwrap();
        let keys = vec![
            SigningKey::from_jwk_bytes(jwk.as_bytes()).unwrap(),
            SigningKey::from_jwk_bytes(jwk.as_bytes()).unwrap(),
        ];
        assert!(KeyRing::new(keys).is_err());
        assert!(KeyRing::new(vec![]).is_err());
    }
}
