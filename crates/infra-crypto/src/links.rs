use anyhow::{anyhow, bail};
use authd_application::PortError;
use authd_application::ports::{LinkTokens, TokenDigest};
use authd_domain::LinkToken;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use sha2::{Digest, Sha256};

use crate::KeyRing;
use crate::jwt::{seal_with, unseal_with};

/// HKDF's `info`: what the derived key is for, so it never equals a key derived from the same
/// material for anything else.
const OUTBOX_INFO: &[u8] = b"authd outbox link token v1 (A256GCM)";

/// [`LinkTokens`] from the OS CSPRNG, digested with SHA-256, and sealed for the outbox as a
/// compact JWE (`dir`, A256GCM) under a key derived from the server's signing key.
///
/// The outbox row must carry the token until the email goes out, but a database dump must not
/// open the links it holds: the key comes from the signing key's private material, which is
/// never stored with the data. Every key of the ring with private material opens (the first
/// seals), so an email queued before a key rotation still goes out while the old key is listed.
/// Its `Debug` output shows no key.
pub struct SealedLinkTokens {
    /// The outbox keys, the sealing one first.
    keys: Vec<[u8; 32]>,
}

impl std::fmt::Debug for SealedLinkTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedLinkTokens")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl SealedLinkTokens {
    /// Tokens sealed with a key derived from the ring's signing key, opened with that of any
    /// key of the ring. Fails when the signing key has no private material.
    pub fn new(ring: &KeyRing) -> anyhow::Result<Self> {
        if ring.signing().secret().is_none() {
            bail!(
                "the signing key {:?} has no private material",
                ring.signing().kid()
            );
        }
        let keys = ring
            .keys()
            .iter()
            .filter_map(|key| key.secret())
            .map(|secret| outbox_key(secret.expose()))
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }
}

/// The key that seals link tokens for the outbox: HKDF-SHA256 (RFC 5869) of a signing key's
/// private material, without salt (the material is a uniformly random key already), with
/// [`OUTBOX_INFO`] as info.
fn outbox_key(material: &[u8]) -> anyhow::Result<[u8; 32]> {
    let mut key = [0; 32];
    Hkdf::<Sha256>::new(None, material)
        .expand(OUTBOX_INFO, &mut key)
        .map_err(|error| anyhow!("deriving the outbox key: {error}"))?;
    Ok(key)
}

fn sha256(token: &LinkToken) -> TokenDigest {
    TokenDigest(Sha256::digest(token.expose().as_bytes()).into())
}

impl LinkTokens for SealedLinkTokens {
    fn issue(&self) -> Result<(LinkToken, TokenDigest, String), PortError> {
        let mut random = [0; 32];
        getrandom::fill(&mut random).map_err(|error| {
            PortError::Unexpected(anyhow!("the OS random generator failed: {error}"))
        })?;
        let token = LinkToken::parse(&URL_SAFE_NO_PAD.encode(random)).ok_or_else(|| {
            PortError::Unexpected(anyhow!("32 bytes in base64 are not a link token"))
        })?;
        let sealing = self
            .keys
            .first()
            .ok_or_else(|| PortError::Unexpected(anyhow!("no outbox key")))?;
        let sealed = seal_with(sealing, token.expose().as_bytes())
            .map_err(|error| PortError::Unexpected(error.context("sealing a link token")))?;
        let digest = sha256(&token);
        Ok((token, digest, sealed))
    }

    fn digest(&self, token: &LinkToken) -> TokenDigest {
        sha256(token)
    }

    fn open(&self, sealed: &str) -> Option<LinkToken> {
        let plaintext = self.keys.iter().find_map(|key| unseal_with(key, sealed))?;
        LinkToken::parse(std::str::from_utf8(&plaintext).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::{Algorithm, SigningKey, generate_key};

    fn key(algorithm: Algorithm) -> SigningKey {
        SigningKey::from_jwk_bytes(generate_key(algorithm).unwrap().as_bytes()).unwrap()
    }

    fn tokens(keys: Vec<SigningKey>) -> SealedLinkTokens {
        SealedLinkTokens::new(&KeyRing::new(keys).unwrap()).unwrap()
    }

    #[test]
    fn tokens_are_43_characters_and_never_repeat() {
        let links = tokens(vec![key(Algorithm::EdDSA)]);
        let mut seen = HashSet::new();
        for _ in 0..1_000 {
            let (token, _, _) = links.issue().unwrap();
            assert_eq!(token.expose().len(), LinkToken::LEN);
            assert!(seen.insert(token.expose().to_owned()), "a token repeated");
        }
    }

    #[test]
    fn the_digest_is_the_sha256_of_the_token() {
        let links = tokens(vec![key(Algorithm::EdDSA)]);
        let token = LinkToken::parse(&"a".repeat(LinkToken::LEN)).unwrap();
        // `printf 'a%.0s' $(seq 43) | sha256sum`, computed apart from the code under test.
        let hex = "66d34fba71f8f450f7e45598853e53bfc23bbd129027cbb131a2f4ffd7878cd0";
        let expected: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(links.digest(&token).0.as_slice(), expected);
        let direct: [u8; 32] = Sha256::digest("a".repeat(43).as_bytes()).into();
        assert_eq!(links.digest(&token), TokenDigest(direct));
        let (issued, digest, _) = links.issue().unwrap();
        assert_eq!(digest, links.digest(&issued));
    }

    #[test]
    fn what_is_sealed_opens_to_the_token_and_does_not_contain_it() {
        for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::HS256] {
            let links = tokens(vec![key(algorithm)]);
            let (token, _, sealed) = links.issue().unwrap();
            assert!(!sealed.contains(token.expose()));
            assert_eq!(sealed.split('.').count(), 5, "a compact JWE");
            assert_eq!(links.open(&sealed), Some(token));
        }
    }

    #[test]
    fn garbage_and_another_rings_seals_open_to_nothing() {
        let links = tokens(vec![key(Algorithm::EdDSA)]);
        let other = tokens(vec![key(Algorithm::EdDSA)]);
        let (_, _, sealed) = other.issue().unwrap();
        assert_eq!(links.open(&sealed), None);
        assert_eq!(links.open(""), None);
        assert_eq!(links.open("not.a.jwe.at.all"), None);
        // One flipped character of the ciphertext fails the tag.
        let (_, _, mine) = links.issue().unwrap();
        let mut parts: Vec<String> = mine.split('.').map(str::to_owned).collect();
        let flipped = if parts[3].starts_with('A') { "B" } else { "A" };
        parts[3].replace_range(0..1, flipped);
        assert_eq!(links.open(&parts.join(".")), None);
    }

    #[test]
    fn after_a_rotation_the_old_keys_seals_still_open() {
        let old_jwk = generate_key(Algorithm::EdDSA).unwrap();
        let old_key = || SigningKey::from_jwk_bytes(old_jwk.as_bytes()).unwrap();
        let before = tokens(vec![old_key()]);
        let (token, _, sealed) = before.issue().unwrap();

        let after = tokens(vec![key(Algorithm::ES256), old_key()]);
        assert_eq!(after.open(&sealed), Some(token));
        // New seals use the new signing key: a ring without it cannot open them.
        let (_, _, new_sealed) = after.issue().unwrap();
        assert_eq!(before.open(&new_sealed), None);
        // Once the old key leaves the ring, so do its seals.
        let retired = tokens(vec![key(Algorithm::ES256)]);
        assert_eq!(retired.open(&sealed), None);
    }

    #[test]
    fn the_outbox_key_is_not_the_key_material_and_differs_per_key() {
        let material = [7u8; 32];
        let derived = outbox_key(&material).unwrap();
        assert_ne!(derived, material);
        assert_ne!(derived, outbox_key(&[8u8; 32]).unwrap());
        assert_eq!(derived, outbox_key(&material).unwrap());
        assert_eq!(
            format!("{:?}", tokens(vec![key(Algorithm::HS256)])),
            "SealedLinkTokens { keys: 1 }"
        );
    }
}
