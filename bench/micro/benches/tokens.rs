//! The token codec per algorithm: signing, verifying, sealing a successor pair's ids, and a
//! verification the `CachingVerifier` answers from memory.

// A setup failure must abort the benchmark, not be measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use authd_application::ports::{TokenIssuer, TokenVerifier};
use authd_application::{AccessClaims, PairIds, RefreshClaims};
use authd_crypto::{Algorithm, CachingVerifier, JoseTokenCodec, KeyRing, TokenSettings};
use authd_domain::{SessionId, TokenId, UserId};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use criterion::{Criterion, criterion_group, criterion_main};

const LEEWAY: TimeDelta = TimeDelta::seconds(60);

fn codec(algorithm: Algorithm) -> JoseTokenCodec {
    JoseTokenCodec::new(
        KeyRing::ephemeral(algorithm).expect("a key ring"),
        TokenSettings {
            issuer: "authd".to_owned(),
            audience: "authd".to_owned(),
            leeway: LEEWAY,
        },
    )
}

/// Claims shaped like the ones login mints (JWT times are whole seconds).
fn claims(now: DateTime<Utc>) -> (AccessClaims, RefreshClaims) {
    let (user_id, session_id) = (UserId::generate(), SessionId::generate());
    let access = AccessClaims {
        user_id,
        session_id,
        token_id: TokenId::generate(),
        issued_at: now,
        expires_at: now + TimeDelta::minutes(15),
        email: "ada.lovelace@example.com".to_owned(),
        role: "application-access".to_owned(),
        is_superuser: false,
    };
    let refresh = RefreshClaims {
        user_id,
        session_id,
        token_id: TokenId::generate(),
        issued_at: now,
        expires_at: now + TimeDelta::days(7),
    };
    (access, refresh)
}

fn tokens(c: &mut Criterion) {
    for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::HS256] {
        let codec = Arc::new(codec(algorithm));
        let now = Utc::now().trunc_subsecs(0);
        let (access, refresh) = claims(now);
        let access_token = codec.sign_access(&access).unwrap();
        let refresh_token = codec.sign_refresh(&refresh).unwrap();
        let ids = PairIds {
            access: access.token_id,
            refresh: refresh.token_id,
            issued_at: now,
        };
        // Sealed with the refresh token the pair replaced, as a rotation does.
        let presented = codec.sign_refresh(&claims(now).1).unwrap();
        let session = refresh.session_id;
        let sealed = codec.seal(&ids, &presented, session).unwrap();
        assert_eq!(codec.unseal(&sealed, &presented, session), Some(ids));
        let caching = CachingVerifier::new(codec.clone(), LEEWAY, 10_000);

        let mut group = c.benchmark_group(format!("tokens/{algorithm}"));
        group.bench_function("sign_access", |b| {
            b.iter(|| codec.sign_access(black_box(&access)).unwrap());
        });
        group.bench_function("sign_refresh", |b| {
            b.iter(|| codec.sign_refresh(black_box(&refresh)).unwrap());
        });
        group.bench_function("verify_access", |b| {
            b.iter(|| codec.verify_access(black_box(&access_token), now).unwrap());
        });
        group.bench_function("verify_refresh", |b| {
            b.iter(|| {
                codec
                    .verify_refresh(black_box(&refresh_token), now)
                    .unwrap()
            });
        });
        group.bench_function("seal", |b| {
            b.iter(|| {
                codec
                    .seal(black_box(&ids), black_box(&presented), session)
                    .unwrap()
            });
        });
        group.bench_function("unseal", |b| {
            b.iter(|| {
                codec
                    .unseal(black_box(&sealed), black_box(&presented), session)
                    .unwrap()
            });
        });
        group.bench_function("verify_access_cached_hit", |b| {
            b.iter(|| {
                caching
                    .verify_access(black_box(&access_token), now)
                    .unwrap()
            });
        });
        group.finish();
    }
}

criterion_group!(benches, tokens);
criterion_main!(benches);
