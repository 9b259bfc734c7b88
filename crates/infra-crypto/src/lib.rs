//! # Crypto adapters
//!
//! The token codec ([`JoseTokenCodec`], JWTs with josekit: EdDSA by default, ES256 or HS256)
//! and the password hasher ([`Argon2Hasher`], Argon2id on a few threads of its own). Both
//! implement application ports; nothing here knows about HTTP or storage.
//!
//! Keys are JWK files ([`generate_key`] writes one): one format for the three algorithms, and
//! each key carries its `kid` and its `alg`, so the algorithm is pinned per key.
//!
//! [`SealedLinkTokens`] makes the one-time tokens of link emails (address verification,
//! password reset): random, digested for the store, sealed for the outbox under a key derived
//! from the signing key.
//!
//! [`CachingVerifier`] remembers access tokens that passed, until they expire, so the
//! signature of a token is checked once, not on each of its requests.

mod jwt;
mod keys;
mod links;
mod password;
mod signers;
mod verified;

pub use jwt::{JoseTokenCodec, TokenSettings};
pub use keys::{Algorithm, KeyRing, SigningKey, generate_key};
pub use links::SealedLinkTokens;
pub use password::{Argon2Hasher, Argon2Settings};
pub use verified::CachingVerifier;
