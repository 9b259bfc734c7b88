//! Property-based fuzzing of the token codec: whatever text arrives as a token, sealed pair or
//! refresh token, the answer is a `TokenRejected` or `None`, never a panic, and a real token
//! with any one character changed, dropped or added never verifies.
//!
//! `PROPTEST_CASES=N` runs every property with N cases instead of the ones below.

// clippy.toml allows these inside test functions only; the fixtures here are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::LazyLock;

use authd_application::ports::{TokenIssuer, TokenRejected, TokenVerifier};
use authd_application::{AccessClaims, DeviceClaims, PairIds, RefreshClaims};
use authd_crypto::{Algorithm, JoseTokenCodec, KeyRing, SigningKey, TokenSettings, generate_key};
use authd_domain::{SessionId, TokenId, UserId};
use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

/// `cases` cases unless `PROPTEST_CASES` says otherwise; no regression files in the tree.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time")
}

/// One codec per algorithm, each with a key of its own, built once.
static CODECS: LazyLock<Vec<JoseTokenCodec>> = LazyLock::new(|| {
    [Algorithm::EdDSA, Algorithm::ES256, Algorithm::HS256]
        .into_iter()
        .map(|algorithm| {
            let jwk = generate_key(algorithm).expect("a key");
            let key = SigningKey::from_jwk_bytes(jwk.as_bytes()).expect("a loadable key");
            let settings = TokenSettings {
                issuer: "authd".into(),
                audience: "authd".into(),
                leeway: TimeDelta::seconds(60),
            };
            JoseTokenCodec::new(KeyRing::new(vec![key]).expect("a ring"), settings)
        })
        .collect()
});

/// The three kinds of token each codec signs, valid at `now()`.
struct Tokens {
    access: String,
    refresh: String,
    device: String,
}

static TOKENS: LazyLock<Vec<Tokens>> = LazyLock::new(|| {
    let (user, session, token) = (
        UserId::generate(),
        SessionId::generate(),
        TokenId::generate(),
    );
    let expires_at = now() + TimeDelta::minutes(15);
    CODECS
        .iter()
        .map(|codec| Tokens {
            access: codec
                .sign_access(&AccessClaims {
                    user_id: user,
                    session_id: session,
                    token_id: token,
                    issued_at: now(),
                    expires_at,
                    email: "ada@example.com".into(),
                    role: "application-access".into(),
                    is_superuser: false,
                })
                .expect("signed"),
            refresh: codec
                .sign_refresh(&RefreshClaims {
                    user_id: user,
                    session_id: session,
                    token_id: token,
                    issued_at: now(),
                    expires_at,
                })
                .expect("signed"),
            device: codec
                .sign_device(&DeviceClaims {
                    user_id: user,
                    account: "ada@example.com".into(),
                    device_id: token,
                    issued_at: now(),
                    expires_at,
                })
                .expect("signed"),
        })
        .collect()
});

/// Every verifier of every codec refuses `token`, each with a `TokenRejected`.
fn refused_everywhere(token: &str) -> Result<(), TestCaseError> {
    for (index, codec) in CODECS.iter().enumerate() {
        let verdicts: [(&str, Result<(), TokenRejected>); 3] = [
            ("access", codec.verify_access(token, now()).map(drop)),
            ("refresh", codec.verify_refresh(token, now()).map(drop)),
            ("device", codec.verify_device(token, now()).map(drop)),
        ];
        for (kind, verdict) in verdicts {
            prop_assert!(
                verdict.is_err(),
                "codec {} verified {:?} as a {} token",
                index,
                token,
                kind
            );
        }
    }
    Ok(())
}

/// base64url text, with or without padding, and a few characters outside the alphabet.
fn base64ish(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            10 => prop::sample::select(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                    .chars()
                    .collect::<Vec<_>>()
            ),
            1 => prop::sample::select(vec!['=', '+', '/', '.', ' ', '\0', 'é']),
        ],
        0..max,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// base64url (no padding) of `bytes`, written here so the test does not lean on the codec's.
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// JSON values with the header and claim names the codec reads, holding values of any type.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
        prop::sample::select(vec![
            "EdDSA",
            "ES256",
            "HS256",
            "none",
            "RS256",
            "at+jwt",
            "refresh+jwt",
            "device+jwt",
            "JWT",
            "access",
            "refresh",
            "device",
            "authd",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "alg", "kid", "typ", "crit", "b64", "jku", "iss", "aud", "sub", "sid", "jti",
                    "iat", "exp", "nbf", "email", "role", "su", "acct", "x",
                ])
                .prop_map(str::to_owned),
                inner,
                0..8,
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// One edit of a token: a character replaced, removed, or inserted.
#[derive(Debug, Clone)]
enum Edit {
    Replace(prop::sample::Index, char),
    Remove(prop::sample::Index),
    Insert(prop::sample::Index, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    let char = prop_oneof![
        4 => prop::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
                .chars()
                .collect::<Vec<_>>()
        ),
        1 => any::<char>(),
    ];
    prop_oneof![
        6 => (any::<prop::sample::Index>(), char.clone()).prop_map(|(i, c)| Edit::Replace(i, c)),
        1 => any::<prop::sample::Index>().prop_map(Edit::Remove),
        1 => (any::<prop::sample::Index>(), char).prop_map(|(i, c)| Edit::Insert(i, c)),
    ]
}

/// `token` (ASCII) with `edit` applied, or `None` when the edit changes nothing.
fn apply(token: &str, edit: &Edit) -> Option<String> {
    let mut chars: Vec<char> = token.chars().collect();
    match edit {
        Edit::Replace(index, c) => {
            let at = index.index(chars.len());
            if chars[at] == *c {
                return None;
            }
            chars[at] = *c;
        }
        Edit::Remove(index) => {
            chars.remove(index.index(chars.len()));
        }
        Edit::Insert(index, c) => {
            chars.insert(index.index(chars.len() + 1), *c);
        }
    }
    Some(chars.into_iter().collect())
}

proptest! {
    #![proptest_config(config(256))]

    /// Any text at all is refused by every verifier.
    #[test]
    fn arbitrary_text_is_never_a_token(raw in prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..400)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        (base64ish(60), base64ish(200), base64ish(100), 2usize..6)
            .prop_map(|(a, b, c, dots)| {
                [a, b, c].join(".") + &".".repeat(dots.saturating_sub(2).min(3))
            }),
    ]) {
        refused_everywhere(&raw)?;
    }

    /// Compact JWS built from arbitrary headers, claims and signature bytes (an algorithm of
    /// `none`, the real `kid`, the right `typ`...) never verify: only the key signs.
    #[test]
    fn forged_structures_are_refused(
        header in json_value(),
        claims in json_value(),
        signature in prop::collection::vec(any::<u8>(), 0..80),
        real_kid in any::<bool>(),
    ) {
        let mut header = header;
        if let (true, Some(object)) = (real_kid, header.as_object_mut()) {
            let kid = CODECS[0].keys().signing().kid().to_owned();
            object.insert("kid".into(), kid.into());
        }
        let token = format!(
            "{}.{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes()),
            b64url(&signature),
        );
        refused_everywhere(&token)?;
    }

    /// A real token of each kind and algorithm with one character replaced, dropped or added
    /// verifies as nothing.
    #[test]
    fn a_token_with_one_character_changed_never_verifies(
        codec in 0..CODECS.len(),
        kind in 0..3usize,
        edit in edit(),
    ) {
        let tokens = &TOKENS[codec];
        let token = [&tokens.access, &tokens.refresh, &tokens.device][kind];
        if let Some(changed) = apply(token, &edit) {
            refused_everywhere(&changed)?;
        }
    }
}

/// Every character position of every real token, replaced by a few others of the alphabet:
/// the exhaustive companion of the single-edit property, for the last character of each
/// segment above all (its low bits are padding in base64url, which a lenient decoder ignores).
#[test]
fn every_position_of_a_token_matters() {
    for (codec, tokens) in CODECS.iter().zip(TOKENS.iter()) {
        for (kind, token) in [&tokens.access, &tokens.refresh, &tokens.device]
            .into_iter()
            .enumerate()
        {
            let verifies = |candidate: &str| match kind {
                0 => codec.verify_access(candidate, now()).is_ok(),
                1 => codec.verify_refresh(candidate, now()).is_ok(),
                _ => codec.verify_device(candidate, now()).is_ok(),
            };
            assert!(verifies(token), "the real token does not verify");
            for (at, original) in token.char_indices() {
                for replacement in ['A', 'B', 'f', '_', '.'] {
                    if replacement == original {
                        continue;
                    }
                    let mut changed = token.to_string();
                    changed.replace_range(at..=at, &replacement.to_string());
                    assert!(
                        !verifies(&changed),
                        "position {at} ({original:?} -> {replacement:?}) still verifies: {changed}"
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// `unseal` answers `None` to anything that is not what `seal` made with the same refresh
    /// token and session.
    #[test]
    fn unseal_opens_nothing_but_its_own_pairs(
        sealed in prop_oneof![
            any::<String>(),
            (base64ish(40), base64ish(10), base64ish(30), base64ish(200), base64ish(30))
                .prop_map(|parts| {
                    [parts.0, parts.1, parts.2, parts.3, parts.4].join(".")
                }),
            json_value().prop_map(|header| {
                format!("{}..AAAAAAAAAAAAAAAA.{}.AAAAAAAAAAAAAAAAAAAAAA",
                    b64url(header.to_string().as_bytes()), b64url(b"{}"))
            }),
        ],
        refresh_token in prop_oneof![any::<String>(), ".{0,9000}"],
        session in any::<u128>(),
    ) {
        let session = SessionId::from_uuid(uuid::Uuid::from_u128(session));
        for codec in CODECS.iter() {
            prop_assert_eq!(codec.unseal(&sealed, &refresh_token, session), None);
        }
    }

    /// Real sealed ids with one character changed do not open, even with the right
    /// refresh token and session.
    #[test]
    fn a_sealed_pair_with_one_character_changed_does_not_open(edit in edit()) {
        let codec = &CODECS[0];
        let session = SessionId::from_uuid(uuid::Uuid::from_u128(7));
        let ids = PairIds {
            access: TokenId::from_uuid(uuid::Uuid::from_u128(8)),
            refresh: TokenId::from_uuid(uuid::Uuid::from_u128(9)),
            issued_at: now(),
        };
        let sealed = codec.seal(&ids, "the old refresh token", session).expect("sealed");
        let opened = codec.unseal(&sealed, "the old refresh token", session);
        prop_assert_eq!(opened, Some(ids));
        if let Some(changed) = apply(&sealed, &edit) {
            prop_assert_eq!(codec.unseal(&changed, "the old refresh token", session), None);
        }
    }
}
