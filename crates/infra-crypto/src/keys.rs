use std::fmt;
use std::str::FromStr;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{JwsSigner, JwsVerifier};

use crate::signers::{DalekEd25519Signer, Es256Signer, HmacSha256Signer, Prepared, Primitive};

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
        let ((signer, verifier), public, secret) = match algorithm {
            Algorithm::EdDSA => {
                check_shape(&jwk, "OKP", Some("Ed25519"))?;
                let d = decoded(&jwk, "d")?;
                let key = DalekEd25519Signer::new(kid.clone(), &d, &decoded(&jwk, "x")?)?;
                (both(key), Some(jwk.to_public_key()?), d)
            }
            Algorithm::ES256 => {
                check_shape(&jwk, "EC", Some("P-256"))?;
                let d = decoded(&jwk, "d")?;
                let (x, y) = (decoded(&jwk, "x")?, decoded(&jwk, "y")?);
                let key = Es256Signer::new(kid.clone(), &d, &x, &y)?;
                (both(key), Some(jwk.to_public_key()?), d)
            }
            Algorithm::HS256 => {
                check_shape(&jwk, "oct", None)?;
                let k = decoded(&jwk, "k")?;
                (both(HmacSha256Signer::new(kid.clone(), &k)?), None, k)
            }
        };
        // josekit's public form keeps only the key material and `use`; a JWKS entry also needs
        // the `kid` tokens name and the `alg` it is pinned to.
        let public = public.map(|mut public: Jwk| {
            public.set_key_id(kid.clone());
            public.set_algorithm(algorithm.name());
            public
        });
        let secret = Some(KeySecret(secret));
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

/// A prepared key as the JWS signer and verifier josekit takes.
fn both<P: Primitive>(key: Prepared<P>) -> (Box<dyn JwsSigner>, Box<dyn JwsVerifier>) {
    (Box::new(key.clone()), Box::new(key))
}

/// What josekit's `signer_from_jwk` and `verifier_from_jwk` checked before the signers here
/// replaced them: the key type (and curve) of the algorithm, a `use` of "sig" if given, and
/// `key_ops`, if given, allowing both "sign" and "verify".
fn check_shape(jwk: &Jwk, kty: &str, crv: Option<&str>) -> anyhow::Result<()> {
    if jwk.key_type() != kty {
        bail!("the key's \"kty\" is {:?}, not {kty:?}", jwk.key_type());
    }
    if crv.is_some() && jwk.curve() != crv {
        bail!("the key's \"crv\" is {:?}, not {crv:?}", jwk.curve());
    }
    if let Some(key_use) = jwk.key_use().filter(|key_use| *key_use != "sig") {
        bail!("the key's \"use\" is {key_use:?}, not \"sig\"");
    }
    for operation in ["sign", "verify"] {
        if !jwk.is_for_key_operation(operation) {
            bail!("the key's \"key_ops\" do not allow {operation:?}");
        }
    }
    Ok(())
}

/// A base64url parameter the key must have, decoded (josekit's parser has checked the
/// encoding of those it knows).
fn decoded(jwk: &Jwk, name: &str) -> anyhow::Result<Vec<u8>> {
    let encoded = jwk
        .parameter(name)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| anyhow!("the key has no {name:?}"))?;
    URL_SAFE_NO_PAD
        .decode(encoded)
        .with_context(|| format!("the key's {name:?} is not base64url"))
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

    /// A generated key of `algorithm`, edited, then loaded; the error's text on failure.
    fn load_edited(
        algorithm: Algorithm,
        edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
    ) -> Result<SigningKey, String> {
        let mut jwk: serde_json::Value =
            serde_json::from_str(&generate_key(algorithm).unwrap()).unwrap();
        edit(jwk.as_object_mut().unwrap());
        SigningKey::from_jwk_bytes(jwk.to_string().as_bytes()).map_err(|error| format!("{error:#}"))
    }

    fn assert_refused(result: Result<SigningKey, String>, naming: &str) {
        match result {
            Ok(key) => panic!("{key:?} loaded"),
            Err(error) => assert!(error.contains(naming), "{error:?} does not name {naming}"),
        }
    }

    #[test]
    fn keys_must_be_for_signing_and_verifying() {
        for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::HS256] {
            assert_refused(
                load_edited(algorithm, |jwk| {
                    jwk.insert("use".into(), "enc".into());
                }),
                "\"use\" is \"enc\"",
            );
            assert_refused(
                load_edited(algorithm, |jwk| {
                    jwk.insert("key_ops".into(), serde_json::json!(["sign"]));
                }),
                "do not allow \"verify\"",
            );
            assert_refused(
                load_edited(algorithm, |jwk| {
                    jwk.insert("key_ops".into(), serde_json::json!(["verify"]));
                }),
                "do not allow \"sign\"",
            );
            assert!(
                load_edited(algorithm, |jwk| {
                    jwk.insert("key_ops".into(), serde_json::json!(["verify", "sign"]));
                    jwk.remove("use");
                })
                .is_ok()
            );
        }
    }

    #[test]
    fn keys_must_have_the_type_and_curve_of_their_algorithm() {
        let relabelled = |from, to: Algorithm| {
            load_edited(from, |jwk| {
                jwk.insert("alg".into(), to.name().into());
            })
        };
        assert_refused(
            relabelled(Algorithm::ES256, Algorithm::EdDSA),
            "\"kty\" is \"EC\"",
        );
        assert_refused(
            relabelled(Algorithm::EdDSA, Algorithm::ES256),
            "\"kty\" is \"OKP\"",
        );
        assert_refused(
            relabelled(Algorithm::EdDSA, Algorithm::HS256),
            "\"kty\" is \"OKP\"",
        );
        assert_refused(
            relabelled(Algorithm::HS256, Algorithm::EdDSA),
            "\"kty\" is \"oct\"",
        );
        let other_curve = |jwk: Jwk, algorithm: Algorithm| {
            let mut jwk = jwk;
            jwk.set_key_id("k1");
            jwk.set_algorithm(algorithm.name());
            SigningKey::from_jwk_bytes(jwk.to_string().as_bytes())
                .map_err(|error| error.to_string())
        };
        assert_refused(
            other_curve(
                Jwk::generate_ed_key(EdCurve::Ed448).unwrap(),
                Algorithm::EdDSA,
            ),
            "\"crv\" is Some(\"Ed448\")",
        );
        assert_refused(
            other_curve(
                Jwk::generate_ec_key(EcCurve::P384).unwrap(),
                Algorithm::ES256,
            ),
            "\"crv\" is Some(\"P-384\")",
        );
    }

    #[test]
    fn keys_must_carry_their_parameters() {
        for (algorithm, parameter) in [
            (Algorithm::EdDSA, "d"),
            (Algorithm::EdDSA, "x"),
            (Algorithm::ES256, "d"),
            (Algorithm::ES256, "x"),
            (Algorithm::ES256, "y"),
            (Algorithm::HS256, "k"),
        ] {
            assert_refused(
                load_edited(algorithm, |jwk| {
                    jwk.remove(parameter);
                }),
                &format!("the key has no \"{parameter}\""),
            );
            // josekit's parser already refuses one that is not base64url.
            assert!(
                load_edited(algorithm, |jwk| {
                    jwk.insert(parameter.into(), "not base64!".into());
                })
                .is_err()
            );
        }
    }

    #[test]
    fn keys_whose_public_part_is_not_their_private_part_are_refused() {
        let other: serde_json::Value =
            serde_json::from_str(&generate_key(Algorithm::EdDSA).unwrap()).unwrap();
        assert_refused(
            load_edited(Algorithm::EdDSA, |jwk| {
                jwk.insert("x".into(), other["x"].clone());
            }),
            "\"x\" is not the public key of its \"d\"",
        );
        let other: serde_json::Value =
            serde_json::from_str(&generate_key(Algorithm::ES256).unwrap()).unwrap();
        assert_refused(
            load_edited(Algorithm::ES256, |jwk| {
                jwk.insert("x".into(), other["x"].clone());
                jwk.insert("y".into(), other["y"].clone());
            }),
            "are not the public key of its \"d\"",
        );
        assert_refused(
            load_edited(Algorithm::HS256, |jwk| {
                jwk.insert("k".into(), URL_SAFE_NO_PAD.encode([1; 31]).into());
            }),
            "at least 32 bytes, not 31",
        );
    }

    #[test]
    fn loaded_keys_sign_what_their_verifier_accepts() {
        for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::HS256] {
            let key =
                SigningKey::from_jwk_bytes(generate_key(algorithm).unwrap().as_bytes()).unwrap();
            for part in [key.signer().algorithm(), key.verifier().algorithm()] {
                assert_eq!(part.name(), algorithm.name());
            }
            assert_eq!(key.signer().key_id(), Some(key.kid()));
            assert_eq!(key.verifier().key_id(), Some(key.kid()));
            let signature = key.signer().sign(b"message").unwrap();
            key.verifier().verify(b"message", &signature).unwrap();
            assert!(key.verifier().verify(b"massage", &signature).is_err());
        }
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
