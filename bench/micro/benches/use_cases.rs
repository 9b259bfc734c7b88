//! The main use cases end to end on the in-memory adapters, with EdDSA tokens: what a request
//! costs authd once HTTP is taken away.
//!
//! Passwords are hashed with a cheap Argon2 (1 MiB, t=1): these benchmarks measure the use
//! case around the hash, not Argon2 itself (`password.rs` measures that at the real cost).

// A setup failure must abort the benchmark, not be measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authd_application::AuthSettings;
use authd_application::commands;
use authd_application::ports::{Clock, MailPorts, PasswordHasher, Ports};
use authd_application::use_cases::{
    Authenticate, Bootstrap, ListSessions, LogIn, LogOut, LoginRequest, Refresh, SignUp,
};
use authd_crypto::{
    Algorithm, Argon2Hasher, Argon2Settings, CachingVerifier, JoseTokenCodec, KeyRing,
    SealedLinkTokens, TokenSettings,
};
use authd_domain::{
    DisplayName, Email, EmailRateLimit, IpCap, LoginBackoff, NewPassword, PasswordPolicy, RoleSlug,
    SessionLifetime,
};
use authd_email::{LogMailer, MinijinjaTemplates};
use authd_memory::SystemClock;
use chrono::TimeDelta;
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

const EMAIL: &str = "ada.lovelace@example.com";
const PASSWORD: &str = "correct horse battery staple";
const LEEWAY: TimeDelta = TimeDelta::seconds(60);

/// Runs per fresh world in the benchmarks that add users or sessions: the in-memory store
/// scans users (signup's email check) and sessions (revocation), so letting thousands pile up
/// would make the numbers depend on how many iterations criterion happens to pick.
const RUNS_PER_WORLD: u64 = 100;

/// What every world shares: building these is costly (keys, hasher threads), using them is not.
struct Shared {
    codec: Arc<JoseTokenCodec>,
    link_tokens: Arc<SealedLinkTokens>,
    mail: MailPorts,
    hasher: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
    settings: AuthSettings,
}

impl Shared {
    fn new() -> Self {
        let cheap = Argon2Settings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        let ring = KeyRing::ephemeral(Algorithm::EdDSA).expect("an EdDSA key");
        Self {
            link_tokens: Arc::new(SealedLinkTokens::new(&ring).expect("a link-token sealer")),
            mail: MailPorts {
                templates: Arc::new(
                    MinijinjaTemplates::load(None).expect("the built-in templates"),
                ),
                mailer: Arc::new(LogMailer),
            },
            codec: Arc::new(JoseTokenCodec::new(
                ring,
                TokenSettings {
                    issuer: "authd".to_owned(),
                    audience: "authd".to_owned(),
                    leeway: LEEWAY,
                },
            )),
            hasher: Arc::new(Argon2Hasher::new(cheap, 1).expect("an Argon2 hasher")),
            clock: Arc::new(SystemClock),
            settings: AuthSettings {
                access_ttl: TimeDelta::minutes(15),
                lifetime: SessionLifetime::new(TimeDelta::days(7), TimeDelta::days(30)),
                refresh_grace: TimeDelta::seconds(10),
                password_policy: PasswordPolicy::default(),
                default_role: RoleSlug::parse("application-access").expect("a role slug"),
                require_verified_email: false,
                reset_ttl: TimeDelta::hours(1),
                verify_ttl: TimeDelta::hours(24),
                email_limit: EmailRateLimit::default(),
            },
        }
    }
}

/// Fresh in-memory adapters holding the default role and one user ([`EMAIL`]), wired like
/// `authd serve` wires them.
struct World {
    sign_up: SignUp,
    log_in: LogIn,
    refresh: Refresh,
    log_out: LogOut,
    /// Checks every signature.
    authenticate: Authenticate,
    /// Remembers verified access tokens, as authd does.
    authenticate_cached: Authenticate,
    list_sessions: ListSessions,
}

impl World {
    fn new(shared: &Shared, runtime: &Runtime) -> Self {
        let ports = Ports {
            store: authd_memory::store_ports(),
            cache: authd_memory::cache_ports(
                LoginBackoff::new(5),
                IpCap::new(100, Duration::from_secs(5 * 60)),
            ),
            hasher: shared.hasher.clone(),
            issuer: shared.codec.clone(),
            verifier: Arc::new(CachingVerifier::new(shared.codec.clone(), LEEWAY, 10_000)),
            link_tokens: shared.link_tokens.clone(),
            mail: shared.mail.clone(),
            clock: shared.clock.clone(),
        };
        let uncached = Ports {
            verifier: shared.codec.clone(),
            ..ports.clone()
        };
        let settings = &shared.settings;
        let world = Self {
            sign_up: SignUp::new(&ports, settings),
            log_in: LogIn::new(&ports, settings),
            refresh: Refresh::new(&ports, settings),
            log_out: LogOut::new(&ports),
            authenticate: Authenticate::new(&uncached),
            authenticate_cached: Authenticate::new(&ports),
            list_sessions: ListSessions::new(&ports),
        };
        let bootstrap = Bootstrap::new(&ports, settings);
        runtime
            .block_on(bootstrap.execute(None))
            .expect("the default role");
        runtime
            .block_on(world.sign_up.execute(sign_up_request(EMAIL)))
            .expect("the benchmark user");
        world
    }
}

/// The signup command the edge would parse from `{email, PASSWORD, "Ada Lovelace"}`.
fn sign_up_request(email: &str) -> commands::SignUp {
    let email = Email::parse(email).expect("a valid email");
    let password = NewPassword::parse(PASSWORD, &PasswordPolicy::default(), Some(&email));
    commands::SignUp {
        email,
        password: password.expect("a valid password"),
        name: DisplayName::parse("Ada Lovelace").expect("a valid name"),
    }
}

fn login_request() -> LoginRequest {
    LoginRequest {
        username: EMAIL.to_owned(),
        password: PASSWORD.to_owned(),
        ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        user_agent: Some("microbench".to_owned()),
        device_token: None,
    }
}

/// Times `iters` runs of `run`, each on an input `prepare` made untimed, in a fresh world every
/// [`RUNS_PER_WORLD`] runs.
fn time_in_fresh_worlds<I, O>(
    iters: u64,
    fresh: impl Fn() -> World,
    mut prepare: impl FnMut(&World) -> I,
    mut run: impl FnMut(&World, I) -> O,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let runs = left.min(RUNS_PER_WORLD);
        left -= runs;
        let world = fresh();
        let inputs: Vec<I> = (0..runs).map(|_| prepare(&world)).collect();
        let start = Instant::now();
        for input in inputs {
            black_box(run(&world, input));
        }
        total += start.elapsed();
    }
    total
}

fn use_cases(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let shared = Shared::new();
    let fresh = || World::new(&shared, &runtime);
    let log_in = |world: &World| {
        runtime
            .block_on(world.log_in.execute(login_request()))
            .unwrap()
    };

    let mut group = c.benchmark_group("use_cases");

    // The common request: a known token whose session mark and user the auth cache holds
    // (the first iteration fills it).
    let world = fresh();
    let access = log_in(&world).tokens.access_token;
    group.bench_function("authenticate/uncached_verifier", |b| {
        b.iter(|| {
            runtime
                .block_on(world.authenticate.execute(&access))
                .unwrap()
        });
    });
    group.bench_function("authenticate/caching_verifier_hit", |b| {
        b.iter(|| {
            runtime
                .block_on(world.authenticate_cached.execute(&access))
                .unwrap()
        });
    });

    // Each exchange presents the token the previous one returned, as a client does.
    let world = fresh();
    let mut refresh_token = log_in(&world).tokens.refresh_token;
    group.bench_function("refresh", |b| {
        b.iter(|| {
            let pair = runtime
                .block_on(world.refresh.execute(&refresh_token))
                .unwrap();
            refresh_token = pair.refresh_token;
        });
    });

    group.bench_function("log_in", |b| {
        b.iter_custom(|iters| {
            time_in_fresh_worlds(
                iters,
                fresh,
                |_| login_request(),
                |world, request| runtime.block_on(world.log_in.execute(request)).unwrap(),
            )
        });
    });

    let mut signups = 0_u64;
    group.bench_function("sign_up", |b| {
        b.iter_custom(|iters| {
            time_in_fresh_worlds(
                iters,
                fresh,
                |_| {
                    signups += 1;
                    sign_up_request(&format!("user{signups}@example.com"))
                },
                |world, request| runtime.block_on(world.sign_up.execute(request)).unwrap(),
            )
        });
    });

    // Three live sessions, listed by the one of them making the request.
    let world = fresh();
    for _ in 0..2 {
        log_in(&world);
    }
    let access = log_in(&world).tokens.access_token;
    let principal = runtime
        .block_on(world.authenticate.execute(&access))
        .unwrap();
    let listed = runtime
        .block_on(world.list_sessions.execute(&principal))
        .unwrap();
    assert_eq!(listed.len(), 3);
    group.bench_function("list_sessions", |b| {
        b.iter(|| {
            runtime
                .block_on(world.list_sessions.execute(&principal))
                .unwrap()
        });
    });

    // Both tokens, as the logout route passes them; the login is made untimed beforehand.
    group.bench_function("log_out", |b| {
        b.iter_custom(|iters| {
            time_in_fresh_worlds(
                iters,
                fresh,
                |world| log_in(world).tokens,
                |world, tokens| {
                    runtime
                        .block_on(
                            world
                                .log_out
                                .execute(Some(&tokens.access_token), Some(&tokens.refresh_token)),
                        )
                        .unwrap()
                },
            )
        });
    });

    group.finish();
}

criterion_group!(benches, use_cases);
criterion_main!(benches);
