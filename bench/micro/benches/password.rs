//! Argon2id at the production default cost (19 MiB, t=2, p=1), through the hasher's own
//! thread, as login and signup pay it.

// A setup failure must abort the benchmark, not be measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use authd_application::ports::{PasswordCheck, PasswordHasher};
use authd_crypto::{Argon2Hasher, Argon2Settings};
use authd_domain::Password;
use criterion::{Criterion, criterion_group, criterion_main};

fn password(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let hasher = Argon2Hasher::new(Argon2Settings::default(), 1).expect("an Argon2 hasher");
    let password = Password::normalize("correct horse battery staple");
    let hash = runtime.block_on(hasher.hash(&password)).unwrap();

    let mut group = c.benchmark_group("password");
    // Each hash takes tens of milliseconds: the default 100 samples would take minutes.
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("argon2_default/hash", |b| {
        b.iter(|| runtime.block_on(hasher.hash(black_box(&password))).unwrap());
    });
    group.bench_function("argon2_default/verify_match", |b| {
        b.iter(|| {
            let check = runtime
                .block_on(hasher.verify(black_box(&password), Some(hash.clone())))
                .unwrap();
            assert!(matches!(check, PasswordCheck::Match { .. }));
        });
    });
    group.finish();
}

criterion_group!(benches, password);
criterion_main!(benches);
