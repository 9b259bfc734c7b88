//! The signature primitives behind josekit's [`JwsSigner`] and [`JwsVerifier`] traits, each key
//! prepared once when it is loaded. josekit's own implementations set up a new OpenSSL context
//! (and look the algorithm up) on every call, and compare HMACs with a plain `!=`.
//!
//! One [`Primitive`] per algorithm; [`Prepared`] implements both traits for each, and the key ring
//! boxes a clone of it as signer and as verifier. None prints its secret.

use std::fmt;

use anyhow::{anyhow, bail};
use hmac::{KeyInit as _, Mac as _};
use josekit::JoseError;
use josekit::jws::{ES256, EdDSA, HS256, JwsAlgorithm, JwsSigner, JwsVerifier};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::pkey::Public;
use openssl::sha::sha256;

/// A rejected signature (or one that could not be made), as josekit reports it.
fn invalid(error: impl Into<anyhow::Error>) -> JoseError {
    JoseError::InvalidSignature(error.into())
}

/// One algorithm's signature primitive on a key prepared once. [`Prepared`] gives it josekit's
/// two traits, its `kid` and a `Debug` that hides the key.
pub(crate) trait Primitive: Clone + Send + Sync + 'static {
    /// The name its `Debug` output shows.
    const NAME: &'static str;
    /// The byte length of its signatures.
    const SIGNATURE_LEN: usize;
    /// The JOSE algorithm it implements.
    fn algorithm() -> &'static dyn JwsAlgorithm;
    /// The signature of `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JoseError>;
    /// Whether `signature` is this key's over `message`.
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), JoseError>;
}

/// A prepared key with its `kid`: the JWS signer and verifier the key ring boxes.
#[derive(Clone)]
pub(crate) struct Prepared<P> {
    kid: String,
    key: P,
}

impl<P: Primitive> fmt::Debug for Prepared<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(P::NAME)
            .field("kid", &self.kid)
            .field("key", &"***")
            .finish()
    }
}

impl<P: Primitive> JwsSigner for Prepared<P> {
    fn algorithm(&self) -> &dyn JwsAlgorithm {
        P::algorithm()
    }

    fn key_id(&self) -> Option<&str> {
        Some(&self.kid)
    }

    fn signature_len(&self) -> usize {
        P::SIGNATURE_LEN
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JoseError> {
        self.key.sign(message)
    }

    fn box_clone(&self) -> Box<dyn JwsSigner> {
        Box::new(self.clone())
    }
}

impl<P: Primitive> JwsVerifier for Prepared<P> {
    fn algorithm(&self) -> &dyn JwsAlgorithm {
        P::algorithm()
    }

    fn key_id(&self) -> Option<&str> {
        Some(&self.kid)
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), JoseError> {
        self.key.verify(message, signature)
    }

    fn box_clone(&self) -> Box<dyn JwsVerifier> {
        Box::new(self.clone())
    }
}

/// EdDSA over Ed25519 with `ed25519-dalek`, verifying with `verify_strict` (which also refuses
/// small-order points, never part of a signature this key made).
pub(crate) type DalekEd25519Signer = Prepared<ed25519_dalek::SigningKey>;

impl DalekEd25519Signer {
    /// The key of a JWK's private `d`, which must be the secret of its public `x`.
    pub(crate) fn new(kid: String, d: &[u8], x: &[u8]) -> anyhow::Result<Self> {
        let secret: &[u8; 32] = d
            .try_into()
            .map_err(|_| anyhow!("an Ed25519 \"d\" has 32 bytes, not {}", d.len()))?;
        let key = ed25519_dalek::SigningKey::from_bytes(secret);
        if key.verifying_key().as_bytes().as_slice() != x {
            bail!("the key's \"x\" is not the public key of its \"d\"");
        }
        Ok(Self { kid, key })
    }
}

impl Primitive for ed25519_dalek::SigningKey {
    const NAME: &'static str = "DalekEd25519Signer";
    const SIGNATURE_LEN: usize = ed25519_dalek::SIGNATURE_LENGTH;

    fn algorithm() -> &'static dyn JwsAlgorithm {
        &EdDSA
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JoseError> {
        Ok(ed25519_dalek::Signer::sign(self, message)
            .to_bytes()
            .to_vec())
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), JoseError> {
        let signature = ed25519_dalek::Signature::from_slice(signature).map_err(invalid)?;
        self.verify_strict(message, &signature).map_err(invalid)
    }
}

/// HS256 with the `hmac` crate: the secret is keyed once, each call starts from a clone of that
/// state, and verification compares in constant time.
pub(crate) type HmacSha256Signer = Prepared<hmac::Hmac<sha2::Sha256>>;

/// The length of an HS256 tag, and the least length of its secret (as josekit requires).
const HMAC_LEN: usize = 32;

impl HmacSha256Signer {
    /// The key of a JWK's `k`, of at least 32 bytes.
    pub(crate) fn new(kid: String, k: &[u8]) -> anyhow::Result<Self> {
        if k.len() < HMAC_LEN {
            bail!(
                "an HS256 secret has at least {} bytes, not {}",
                HMAC_LEN,
                k.len()
            );
        }
        Ok(Self {
            kid,
            key: hmac::Hmac::new_from_slice(k)?,
        })
    }
}

impl Primitive for hmac::Hmac<sha2::Sha256> {
    const NAME: &'static str = "HmacSha256Signer";
    const SIGNATURE_LEN: usize = HMAC_LEN;

    fn algorithm() -> &'static dyn JwsAlgorithm {
        &HS256
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JoseError> {
        let mut mac = self.clone();
        mac.update(message);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), JoseError> {
        let mut mac = self.clone();
        mac.update(message);
        mac.verify_slice(signature).map_err(invalid)
    }
}

/// ES256. It signs with RFC 6979's deterministic nonces and a low `s` (the `p256` crate), so one
/// message always gets one signature: a refresh repeated inside the grace window gets the very
/// same two tokens, as API.md says. It verifies with OpenSSL's ECDSA on an EC key built once
/// (josekit's goes through a new EVP context per call), and accepts either `s`, because tokens
/// signed before signing was deterministic have random ones: a token with its `s` negated
/// still verifies (refresh counts such a twin as reuse). Once the longest session life has
/// passed since every instance signs low-`s`, verifying could refuse a high `s`.
/// Signatures are JOSE's `r || s`, 32 bytes each.
pub(crate) type Es256Signer = Prepared<Es256Key>;

/// An ES256 key, ready for each of its two uses.
#[derive(Clone)]
pub(crate) struct Es256Key {
    signing: p256::ecdsa::SigningKey,
    /// The public point only: the secret is the signing key's.
    verifying: EcKey<Public>,
}

/// Half an ES256 signature: the byte length of `r`, of `s`, and of a P-256 coordinate.
const ES256_HALF: usize = 32;

impl Es256Signer {
    /// The key of a JWK's private `d` and public point (`x`, `y`), which must match.
    pub(crate) fn new(kid: String, d: &[u8], x: &[u8], y: &[u8]) -> anyhow::Result<Self> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let (x, y, d) = (
            BigNum::from_slice(x)?,
            BigNum::from_slice(y)?,
            BigNum::from_slice(d)?,
        );
        let public = EcKey::from_public_key_affine_coordinates(&group, &x, &y)
            .map_err(|error| anyhow!("the key's \"x\" and \"y\" are not a P-256 point: {error}"))?;
        let key = EcKey::from_private_components(&group, &d, public.public_key())?;
        // OpenSSL checks that `d` is in range and that `d`·G is the public point.
        key.check_key().map_err(|error| {
            anyhow!("the key's \"x\" and \"y\" are not the public key of its \"d\": {error}")
        })?;
        let signing = p256::ecdsa::SigningKey::from_slice(&d.to_vec_padded(ES256_HALF as i32)?)
            .map_err(|error| anyhow!("the key's \"d\" is not a P-256 scalar: {error}"))?;
        Ok(Self {
            kid,
            key: Es256Key {
                signing,
                verifying: public,
            },
        })
    }
}

impl Primitive for Es256Key {
    const NAME: &'static str = "Es256Signer";
    const SIGNATURE_LEN: usize = 2 * ES256_HALF;

    fn algorithm() -> &'static dyn JwsAlgorithm {
        &ES256
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JoseError> {
        use p256::ecdsa::signature::Signer as _;
        let signature: p256::ecdsa::Signature = self.signing.try_sign(message).map_err(invalid)?;
        let low = signature.normalize_s().unwrap_or(signature);
        Ok(low.to_bytes().to_vec())
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), JoseError> {
        if signature.len() != 2 * ES256_HALF {
            return Err(invalid(anyhow!(
                "an ES256 signature has {} bytes, not {}",
                2 * ES256_HALF,
                signature.len()
            )));
        }
        let (r, s) = signature.split_at(ES256_HALF);
        let signature = EcdsaSig::from_private_components(
            BigNum::from_slice(r).map_err(invalid)?,
            BigNum::from_slice(s).map_err(invalid)?,
        )
        .map_err(invalid)?;
        if signature
            .verify(&sha256(message), &self.verifying)
            .map_err(invalid)?
        {
            return Ok(());
        }
        // OpenSSL may leave the reason (`r` or `s` out of range) on this thread's error queue,
        // where a later OpenSSL call on the thread (a TLS read, say) could take it as its own.
        drop(ErrorStack::get());
        Err(invalid(anyhow!("the signature does not match")))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use josekit::jwk::Jwk;

    use super::*;
    use crate::{Algorithm, generate_key};

    const MESSAGE: &[u8] = b"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZGEifQ";

    fn generated(algorithm: Algorithm) -> Jwk {
        Jwk::from_bytes(generate_key(algorithm).unwrap().as_bytes()).unwrap()
    }

    fn parameter(jwk: &Jwk, name: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD
            .decode(jwk.parameter(name).unwrap().as_str().unwrap())
            .unwrap()
    }

    fn kid(jwk: &Jwk) -> String {
        jwk.key_id().unwrap().to_owned()
    }

    fn ed25519(jwk: &Jwk) -> DalekEd25519Signer {
        DalekEd25519Signer::new(kid(jwk), &parameter(jwk, "d"), &parameter(jwk, "x")).unwrap()
    }

    fn hs256(jwk: &Jwk) -> HmacSha256Signer {
        HmacSha256Signer::new(kid(jwk), &parameter(jwk, "k")).unwrap()
    }

    fn es256(jwk: &Jwk) -> Es256Signer {
        Es256Signer::new(
            kid(jwk),
            &parameter(jwk, "d"),
            &parameter(jwk, "x"),
            &parameter(jwk, "y"),
        )
        .unwrap()
    }

    fn is_invalid_signature(result: Result<(), JoseError>) -> bool {
        matches!(result, Err(JoseError::InvalidSignature(_)))
    }

    /// Ours and josekit's accept each other's signatures, and ours names its algorithm, its kid
    /// and its signature length as josekit's does.
    fn assert_interoperates<T: JwsSigner + JwsVerifier>(
        ours: &T,
        theirs: (&dyn JwsSigner, &dyn JwsVerifier),
        kid: &str,
    ) {
        let (their_signer, their_verifier) = theirs;
        let name = their_signer.algorithm().name();
        assert_eq!(JwsSigner::algorithm(ours).name(), name);
        assert_eq!(JwsVerifier::algorithm(ours).name(), name);
        assert_eq!(JwsSigner::key_id(ours), Some(kid));
        assert_eq!(JwsVerifier::key_id(ours), Some(kid));
        assert_eq!(their_signer.key_id(), Some(kid));
        assert_eq!(ours.signature_len(), their_signer.signature_len());
        for message in [MESSAGE, b"", &[0x5a; 1000]] {
            let signature = ours.sign(message).unwrap();
            assert_eq!(signature.len(), ours.signature_len());
            their_verifier.verify(message, &signature).unwrap();
            JwsVerifier::verify(ours, message, &signature).unwrap();
            let theirs = their_signer.sign(message).unwrap();
            JwsVerifier::verify(ours, message, &theirs).unwrap();
            let signer = JwsSigner::box_clone(ours);
            let verifier = JwsVerifier::box_clone(ours);
            verifier
                .verify(message, &signer.sign(message).unwrap())
                .unwrap();
            assert_eq!(verifier.key_id(), Some(kid));
        }
    }

    /// Every tampered form of a good signature over [`MESSAGE`] is refused.
    fn assert_rejects_tampering(verifier: &dyn JwsVerifier, signature: &[u8]) {
        verifier.verify(MESSAGE, signature).unwrap();
        for index in [0, signature.len() / 2, signature.len() - 1] {
            for bit in [0x01, 0x80] {
                let mut flipped = signature.to_vec();
                flipped[index] ^= bit;
                assert!(is_invalid_signature(verifier.verify(MESSAGE, &flipped)));
            }
        }
        let mut longer = signature.to_vec();
        longer.push(0);
        let mut zero_led = vec![0];
        zero_led.extend_from_slice(&signature[..signature.len() - 1]);
        for wrong in [
            &signature[..signature.len() - 1],
            &signature[1..],
            &longer,
            &zero_led,
            &[],
            &vec![0; signature.len()],
        ] {
            assert!(is_invalid_signature(verifier.verify(MESSAGE, wrong)));
        }
        assert!(is_invalid_signature(verifier.verify(b"another", signature)));
    }

    #[test]
    fn ed25519_signs_byte_for_byte_as_josekit_and_each_verifies_the_other() {
        let jwk = generated(Algorithm::EdDSA);
        let ours = ed25519(&jwk);
        let (signer, verifier) = (
            EdDSA.signer_from_jwk(&jwk).unwrap(),
            EdDSA.verifier_from_jwk(&jwk).unwrap(),
        );
        assert_interoperates(&ours, (&signer, &verifier), &kid(&jwk));
        for message in [MESSAGE, b""] {
            assert_eq!(ours.sign(message).unwrap(), signer.sign(message).unwrap());
        }
        assert_eq!(ours.signature_len(), 64);
    }

    #[test]
    fn ed25519_refuses_tampered_signatures_and_other_keys() {
        let jwk = generated(Algorithm::EdDSA);
        let ours = ed25519(&jwk);
        let signature = ours.sign(MESSAGE).unwrap();
        assert_rejects_tampering(&ours, &signature);
        let other = generated(Algorithm::EdDSA);
        assert!(is_invalid_signature(JwsVerifier::verify(
            &ed25519(&other),
            MESSAGE,
            &signature
        )));
        // The other way round too: josekit's verifier of another key refuses ours.
        let stranger = EdDSA.verifier_from_jwk(&other).unwrap();
        assert!(stranger.verify(MESSAGE, &signature).is_err());
    }

    #[test]
    fn ed25519_keys_whose_x_is_not_their_d_fail_to_load() {
        let (jwk, other) = (generated(Algorithm::EdDSA), generated(Algorithm::EdDSA));
        let error =
            DalekEd25519Signer::new(kid(&jwk), &parameter(&jwk, "d"), &parameter(&other, "x"))
                .unwrap_err();
        assert!(error.to_string().contains("\"x\""), "{error}");
        let short = &parameter(&jwk, "d")[1..];
        let error = DalekEd25519Signer::new(kid(&jwk), short, &parameter(&jwk, "x")).unwrap_err();
        assert!(error.to_string().contains("31"), "{error}");
        let mut truncated_x = parameter(&jwk, "x");
        truncated_x.pop();
        assert!(DalekEd25519Signer::new(kid(&jwk), &parameter(&jwk, "d"), &truncated_x).is_err());
    }

    #[test]
    fn hs256_signs_byte_for_byte_as_josekit_and_each_verifies_the_other() {
        let jwk = generated(Algorithm::HS256);
        let ours = hs256(&jwk);
        let (signer, verifier) = (
            HS256.signer_from_jwk(&jwk).unwrap(),
            HS256.verifier_from_jwk(&jwk).unwrap(),
        );
        assert_interoperates(&ours, (&signer, &verifier), &kid(&jwk));
        for message in [MESSAGE, b""] {
            assert_eq!(ours.sign(message).unwrap(), signer.sign(message).unwrap());
        }
        assert_eq!(ours.signature_len(), 32);
    }

    #[test]
    fn hs256_refuses_tampered_signatures_and_other_secrets() {
        let ours = hs256(&generated(Algorithm::HS256));
        let signature = ours.sign(MESSAGE).unwrap();
        assert_rejects_tampering(&ours, &signature);
        let other = hs256(&generated(Algorithm::HS256));
        assert!(is_invalid_signature(JwsVerifier::verify(
            &other, MESSAGE, &signature
        )));
    }

    #[test]
    fn hs256_secrets_have_at_least_32_bytes() {
        let error = HmacSha256Signer::new("k".to_owned(), &[7; 31]).unwrap_err();
        assert!(error.to_string().contains("31"), "{error}");
        assert!(HmacSha256Signer::new("k".to_owned(), &[]).is_err());
        // Longer secrets are fine, and still sign as josekit does.
        let mut jwk = Jwk::new("oct");
        jwk.set_key_id("k");
        jwk.set_parameter("k", Some(URL_SAFE_NO_PAD.encode([7; 64]).into()))
            .unwrap();
        let ours = HmacSha256Signer::new("k".to_owned(), &[7; 64]).unwrap();
        assert_eq!(
            ours.sign(MESSAGE).unwrap(),
            HS256.signer_from_jwk(&jwk).unwrap().sign(MESSAGE).unwrap()
        );
    }

    #[test]
    fn es256_and_josekit_verify_each_other() {
        let jwk = generated(Algorithm::ES256);
        let ours = es256(&jwk);
        let (signer, verifier) = (
            ES256.signer_from_jwk(&jwk).unwrap(),
            ES256.verifier_from_jwk(&jwk).unwrap(),
        );
        assert_interoperates(&ours, (&signer, &verifier), &kid(&jwk));
        assert_eq!(ours.signature_len(), 64);
    }

    /// P-256's group order `n`, big-endian.
    const P256_ORDER: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];

    #[test]
    fn es256_signs_one_message_one_way_with_a_low_s() {
        let jwk = generated(Algorithm::ES256);
        let ours = es256(&jwk);
        let theirs = ES256.verifier_from_jwk(&jwk).unwrap();
        let order = BigNum::from_slice(&P256_ORDER).unwrap();
        let mut half = BigNum::new().unwrap();
        half.rshift1(&order).unwrap();
        for round in 0u32..64 {
            let message = round.to_be_bytes();
            let signature = ours.sign(&message).unwrap();
            // RFC 6979: the nonce comes from the key and the message, so the signature too.
            assert_eq!(ours.sign(&message).unwrap(), signature);
            let s = BigNum::from_slice(&signature[ES256_HALF..]).unwrap();
            assert!(s <= half, "round {round}: a high s");
            // Its twin with `n - s` is as valid to OpenSSL (and to tokens signed before
            // signing was deterministic), so it still verifies; ours never makes it.
            let mut twin_s = BigNum::new().unwrap();
            twin_s.checked_sub(&order, &s).unwrap();
            let mut twin = signature[..ES256_HALF].to_vec();
            twin.extend(twin_s.to_vec_padded(ES256_HALF as i32).unwrap());
            JwsVerifier::verify(&ours, &message, &twin).unwrap();
            theirs.verify(&message, &signature).unwrap();
        }
        // Another message, another nonce: `r` differs, not only `s`.
        let (one, two) = (ours.sign(b"one").unwrap(), ours.sign(b"two").unwrap());
        assert_ne!(one[..ES256_HALF], two[..ES256_HALF]);
    }

    #[test]
    fn es256_pads_short_r_and_s_to_32_bytes() {
        // About one signature in 256 has an `r` (or `s`) with a leading zero byte; OpenSSL's
        // minimal encoding drops it, JOSE's fixed width must not.
        let jwk = generated(Algorithm::ES256);
        let ours = es256(&jwk);
        let verifier = ES256.verifier_from_jwk(&jwk).unwrap();
        let (mut short_r, mut short_s) = (false, false);
        for round in 0u32..4000 {
            let message = round.to_be_bytes();
            let signature = ours.sign(&message).unwrap();
            assert_eq!(signature.len(), 64);
            short_r |= signature[0] == 0;
            short_s |= signature[32] == 0;
            if signature[0] == 0 || signature[32] == 0 {
                verifier.verify(&message, &signature).unwrap();
                JwsVerifier::verify(&ours, &message, &signature).unwrap();
            }
            if short_r && short_s {
                break;
            }
        }
        assert!(
            short_r && short_s,
            "no short r or no short s in 4000 signatures"
        );
    }

    #[test]
    fn es256_refuses_tampered_signatures_and_other_keys() {
        let jwk = generated(Algorithm::ES256);
        let ours = es256(&jwk);
        let signature = ours.sign(MESSAGE).unwrap();
        assert_rejects_tampering(&ours, &signature);
        let other = es256(&generated(Algorithm::ES256));
        assert!(is_invalid_signature(JwsVerifier::verify(
            &other, MESSAGE, &signature
        )));
        // `r` and `s` of zero, or of all ones (beyond the group order), are refused.
        for byte in [0x00, 0xff] {
            assert!(is_invalid_signature(JwsVerifier::verify(
                &ours,
                MESSAGE,
                &[byte; 64]
            )));
        }
    }

    #[test]
    fn es256_keys_whose_point_is_not_their_d_fail_to_load() {
        let (jwk, other) = (generated(Algorithm::ES256), generated(Algorithm::ES256));
        let load = |d: &Jwk, x: &Jwk, y: &Jwk| {
            Es256Signer::new(
                kid(&jwk),
                &parameter(d, "d"),
                &parameter(x, "x"),
                &parameter(y, "y"),
            )
        };
        let error = load(&jwk, &other, &other).unwrap_err();
        assert!(error.to_string().contains("not the public key"), "{error}");
        let error = load(&jwk, &jwk, &other).unwrap_err();
        assert!(error.to_string().contains("not a P-256 point"), "{error}");
    }

    #[test]
    fn debug_output_names_the_kid_and_hides_the_key() {
        let (ed, hs, es) = (
            generated(Algorithm::EdDSA),
            generated(Algorithm::HS256),
            generated(Algorithm::ES256),
        );
        assert_eq!(
            format!("{:?}", ed25519(&ed)),
            format!("DalekEd25519Signer {{ kid: {:?}, key: \"***\" }}", kid(&ed))
        );
        assert_eq!(
            format!("{:?}", hs256(&hs)),
            format!("HmacSha256Signer {{ kid: {:?}, key: \"***\" }}", kid(&hs))
        );
        assert_eq!(
            format!("{:?}", es256(&es)),
            format!("Es256Signer {{ kid: {:?}, key: \"***\" }}", kid(&es))
        );
    }
}
