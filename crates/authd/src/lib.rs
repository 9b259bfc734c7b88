//! # authd
//!
//! The binary's library half: typed [`Settings`] and the wiring of adapters into use cases
//! into the HTTP server ([`Application`]). `main.rs` is only the command line. The end-to-end
//! suite builds an [`Application`] the same way `authd serve` does.

pub mod cli;
pub mod logging;
mod outbox;
mod periodic;
mod purge;
pub mod settings;
mod workers;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpServer;
use actix_web::dev::Server;
use anyhow::Context;
use authd_application::AuthSettings;
use authd_application::ports::{CachePorts, MailPorts, Mailer, Ports, StorePorts};
use authd_application::use_cases::{
    AdminOutcome, AdminSeed, Authenticate, Bootstrap, ChangePassword, CheckReadiness,
    ConfirmPasswordReset, CreateRole, CreateUser, DeleteRole, DeleteUser, DeliverEmails,
    DeliverySettings, GetUser, ListRoles, ListSessions, ListUserSessions, ListUsers, LogIn, LogOut,
    LogOutEverywhere, PurgeSessions, Refresh, RequestPasswordReset, ResendVerification,
    RevokeSession, RevokeUserSessions, SignUp, UpdateRole, UpdateUser, VerifyEmail,
};
use authd_crypto::{
    Argon2Hasher, CachingVerifier, JoseTokenCodec, KeyRing, SigningKey, TokenSettings,
};
use authd_domain::{IpCap, LoginBackoff, PasswordPolicy, SessionLifetime};
use authd_memory::SystemClock;
use chrono::TimeDelta;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use settings::{Secret, Settings};

/// The per-IP failed-login window of API.md.
const IP_WINDOW: Duration = Duration::from_secs(5 * 60);

/// A built server, bound to its port, not yet running.
pub struct Application {
    server: Server,
    port: u16,
    /// The `/metrics` listener, when `AUTHD_METRICS_LISTEN` gives it its own address.
    metrics_server: Option<Server>,
    metrics_port: Option<u16>,
    /// Closed once the server has stopped.
    pool: Option<authd_postgres::PgPool>,
    redis: Option<authd_redis::RedisClient>,
    /// Run while the server does.
    purge: PurgeSessions,
    deliver: DeliverEmails,
    outbox_poll: Duration,
}

/// Access tokens whose signature check is remembered until they expire (about 1 KB each):
/// the signature is the costliest step of an authenticated request. Revocation is still
/// checked on every request.
const VERIFIED_TOKENS_REMEMBERED: usize = 10_000;

impl Application {
    /// Connects (or falls back to memory), migrates, loads keys, bootstraps the default role
    /// and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("AUTHD_LISTEN: cannot bind {}", settings.listen))?;
        Self::build_on(settings, listener).await
    }

    /// As [`build`](Self::build), on a listener bound by the caller (tests bind port 0).
    pub async fn build_on(settings: Settings, listener: TcpListener) -> anyhow::Result<Self> {
        let registry = workers::PoolRegistry::default();
        let (store, pool) = store(&settings, &registry).await?;
        let (cache, redis) = cache(&settings).await?;
        let connections = worker_connections(&settings, &registry);
        let leeway = TimeDelta::seconds(60);
        let ring = keys(&settings)?;
        let link_tokens = Arc::new(
            authd_crypto::SealedLinkTokens::new(&ring).context("the key that seals link tokens")?,
        );
        let codec = Arc::new(JoseTokenCodec::new(
            ring,
            TokenSettings {
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone(),
                leeway,
            },
        ));
        let jwks = codec.keys().jwks();
        let hasher = Argon2Hasher::new(settings.argon2, cores())
            .context(
                "AUTHD_ARGON2_MEMORY_KIB / AUTHD_ARGON2_ITERATIONS / AUTHD_ARGON2_PARALLELISM",
            )?
            .with_queue_max(settings.hash_queue_max);
        let ports = Ports {
            store,
            cache,
            hasher: Arc::new(hasher),
            issuer: codec.clone(),
            verifier: Arc::new(CachingVerifier::new(
                codec,
                leeway,
                VERIFIED_TOKENS_REMEMBERED,
            )),
            link_tokens,
            mail: mail_ports(&settings)?,
            clock: Arc::new(SystemClock),
        };

        let auth = auth_settings(&settings)?;
        let deliver = DeliverEmails::new(
            &ports,
            DeliverySettings {
                verify_link: settings.email.verify_link.clone(),
                reset_link: settings.email.reset_link.clone(),
                retry: settings.email.retry,
                // A send gives up after twice the SMTP timeout; the lease outlasts it, so no
                // other instance claims an email while it is being sent.
                lease: settings
                    .email
                    .smtp_timeout
                    .saturating_mul(2)
                    .saturating_add(Duration::from_secs(30)),
                batch: outbox::BATCH,
                retention: outbox::RETENTION,
            },
        );
        let purge = PurgeSessions::new(
            &ports,
            // No access token of a session revoked this long ago passes the verifier any more.
            settings.access_ttl + leeway.to_std().unwrap_or_default(),
            settings.refresh_grace,
            purge::PURGE_BATCH,
        );
        bootstrap(&settings, &ports, &auth).await?;
        let render = metrics_renderer(registry)?;
        let (metrics_server, metrics_port) = match settings.metrics_listen {
            Some(address) => {
                let metrics_listener = TcpListener::bind(address)
                    .with_context(|| format!("AUTHD_METRICS_LISTEN: cannot bind {address}"))?;
                let metrics_port = metrics_listener.local_addr()?.port();
                let render = render.clone();
                let server = HttpServer::new(move || authd_http::metrics_app(render.clone()))
                    .workers(1)
                    .disable_signals()
                    .listen(metrics_listener)?
                    .run();
                tracing::info!(port = metrics_port, "metrics listening");
                (Some(server), Some(metrics_port))
            }
            None => (None, None),
        };
        let http_settings = Arc::new(authd_http::HttpSettings {
            cookies: authd_http::CookieSettings {
                secure: settings.cookie_secure,
            },
            trusted_proxies: settings.trusted_proxies.clone(),
            body_limit: settings.body_limit,
            jwks,
            metrics: metrics_server.is_none().then_some(render),
            browsers: authd_http::BrowserPolicy {
                public_url: settings.public_url.clone(),
                allowed_origins: settings.allowed_origins.clone(),
            },
            password_policy: auth.password_policy,
            access_log_sample: settings.access_log_sample,
        });

        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            // On the worker's own thread: see `workers`.
            let worker = connections.for_this_worker(&ports);
            let state = authd_http::AppState {
                use_cases: Arc::new(use_cases(&worker.ports, &auth)),
                settings: http_settings.clone(),
            };
            let redis = worker.redis;
            authd_http::app(state).data_factory(move || {
                let redis = redis.clone();
                async move {
                    workers::open(redis).await;
                    Ok::<_, std::convert::Infallible>(workers::Opened)
                }
            })
        })
        .workers(settings.workers)
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        // `main` turns SIGTERM and Ctrl-C into a graceful stop; a library must not grab
        // the process's signals (the test suite runs many servers in one process).
        .disable_signals()
        .listen(listener)?
        .run();
        tracing::info!(port, workers = settings.workers, "authd listening");
        Ok(Self {
            server,
            port,
            metrics_server,
            metrics_port,
            pool,
            redis,
            purge,
            deliver,
            outbox_poll: settings.email.poll,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate metrics listener, if there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped through [`handle`](Self::handle).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics_server.map(|server| {
            let handle = server.handle();
            actix_web::rt::spawn(server);
            handle
        });
        let purge = purge::spawn(self.purge, purge::PURGE_EVERY);
        let outbox = outbox::spawn(self.deliver, self.outbox_poll);
        let served = self.server.await;
        purge.abort();
        for task in outbox {
            task.abort();
        }
        if let Some(metrics) = metrics {
            metrics.stop(true).await;
        }
        // In-flight requests are done: release the connections.
        if let Some(pool) = &self.pool {
            pool.close();
        }
        if let Some(redis) = &self.redis {
            authd_redis::disconnect(redis).await;
        }
        served
    }

    /// Serves until SIGTERM or Ctrl-C, then stops gracefully: no new connections, in-flight
    /// requests finish within the shutdown timeout.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        // Registered before announcing readiness, so no early SIGTERM kills the process.
        let stop = shutdown_signal()?;
        let handle = self.server.handle();
        actix_web::rt::spawn(async move {
            stop.await;
            tracing::info!("shutdown requested; finishing in-flight requests");
            handle.stop(true).await;
        });
        tracing::info!(
            port = self.port,
            "authd ready; SIGTERM or Ctrl-C stops it gracefully"
        );
        self.run_until_stopped().await
    }
}

/// The Prometheus recorder is process-wide: installed once, shared by every server of the
/// process (the test suite runs many). Servers built at the same time wait for the first.
fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Result<PrometheusHandle, String>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| install_metrics_recorder().map_err(|error| format!("{error:#}")))
        .clone()
        .map_err(|error| anyhow::anyhow!(error))
}

fn install_metrics_recorder() -> anyhow::Result<PrometheusHandle> {
    const LATENCY_BUCKETS: &[f64] = &[
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ];
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("authd_http_request_duration_seconds".into()),
            LATENCY_BUCKETS,
        )?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|_| anyhow::anyhow!("a metrics recorder not made by authd is installed"))?;
    // Histogram samples are buffered until upkeep folds them into the buckets; without a
    // scraper they would pile up at 8 bytes per request. A thread of its own does it.
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        })?;
    Ok(handle)
}

/// Renders `/metrics`, reading the pool gauges (every pool of the server, summed) at scrape
/// time.
fn metrics_renderer(pools: workers::PoolRegistry) -> anyhow::Result<authd_http::RenderMetrics> {
    let handle = metrics_handle()?;
    Ok(Arc::new(move || {
        if let Some(status) = pools.status() {
            metrics::gauge!("authd_db_pool_size").set(status.size as f64);
            metrics::gauge!("authd_db_pool_max_size").set(status.max_size as f64);
            metrics::gauge!("authd_db_pool_in_use").set(status.in_use as f64);
            metrics::gauge!("authd_db_pool_waiting").set(status.waiting as f64);
        }
        // Rendering folds the buffered histogram samples in itself.
        handle.render()
    }))
}

/// Resolves on SIGTERM or Ctrl-C; SIGTERM is listened for from the moment this returns.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// The email templates (a broken operator template stops the start, naming the file) and the
/// mailer: SMTP when `AUTHD_SMTP_URL` is set, the log otherwise.
fn mail_ports(settings: &Settings) -> anyhow::Result<MailPorts> {
    let email = &settings.email;
    let templates = authd_email::MinijinjaTemplates::load(email.templates_dir.as_deref())
        .context("AUTHD_EMAIL_TEMPLATES_DIR")?;
    let mailer: Arc<dyn Mailer> = match &email.smtp_url {
        Some(url) => {
            let smtp = authd_email::SmtpMailer::new(url.expose(), &email.from, email.smtp_timeout)?;
            tracing::info!(smtp = %smtp.url_for_log(), "emails are sent over SMTP");
            Arc::new(smtp)
        }
        None => {
            tracing::warn!(
                "AUTHD_SMTP_URL is not set: emails are NOT sent but written to the log (development mode)"
            );
            Arc::new(authd_email::LogMailer)
        }
    };
    Ok(MailPorts {
        templates: Arc::new(templates),
        mailer,
    })
}

/// Every use case the routes call, on `ports`.
fn use_cases(ports: &Ports, auth: &AuthSettings) -> authd_http::UseCases {
    authd_http::UseCases {
        sign_up: SignUp::new(ports, auth),
        log_in: LogIn::new(ports, auth),
        refresh: Refresh::new(ports, auth),
        log_out: LogOut::new(ports),
        log_out_everywhere: LogOutEverywhere::new(ports),
        change_password: ChangePassword::new(ports, auth),
        authenticate: Authenticate::new(ports),
        list_sessions: ListSessions::new(ports),
        revoke_session: RevokeSession::new(ports),
        list_users: ListUsers::new(ports),
        get_user: GetUser::new(ports),
        create_user: CreateUser::new(ports, auth),
        update_user: UpdateUser::new(ports, auth),
        delete_user: DeleteUser::new(ports),
        list_user_sessions: ListUserSessions::new(ports),
        check_readiness: CheckReadiness::new(ports),
        revoke_user_sessions: RevokeUserSessions::new(ports),
        list_roles: ListRoles::new(ports),
        create_role: CreateRole::new(ports),
        update_role: UpdateRole::new(ports),
        delete_role: DeleteRole::new(ports, auth),
        request_password_reset: RequestPasswordReset::new(ports, auth),
        confirm_password_reset: ConfirmPasswordReset::new(ports),
        verify_email: VerifyEmail::new(ports),
        resend_verification: ResendVerification::new(ports, auth),
    }
}

/// The store's ports for start-up and the background jobs: Postgres (migrated first) when
/// `DATABASE_URL` is set, memory otherwise. The Postgres pool comes back too, to be closed at
/// shutdown; it is registered for the gauges.
async fn store(
    settings: &Settings,
    registry: &workers::PoolRegistry,
) -> anyhow::Result<(StorePorts, Option<authd_postgres::PgPool>)> {
    let Some(url) = &settings.database_url else {
        tracing::warn!(
            "DATABASE_URL is not set: users and sessions live IN MEMORY and are LOST when authd exits"
        );
        return Ok((authd_memory::store_ports(), None));
    };
    let applied = authd_postgres::run_migrations(url.expose())
        .await
        .context("DATABASE_URL: cannot run the migrations")?;
    if !applied.is_empty() {
        tracing::info!(?applied, "applied database migrations");
    }
    let pool = authd_postgres::connect(
        url.expose(),
        pool_settings(settings, workers::BACKGROUND_DB_CONNECTIONS),
    )
    .context("DATABASE_URL")?;
    registry.add(&pool);
    Ok((authd_postgres::store_ports(&pool), Some(pool)))
}

fn pool_settings(settings: &Settings, max_size: usize) -> authd_postgres::PoolSettings {
    authd_postgres::PoolSettings {
        max_size,
        statement_timeout: settings.db_statement_timeout,
        ..authd_postgres::PoolSettings::default()
    }
}

/// What each HTTP worker opens for itself (see `workers`): Postgres and Redis, where set.
fn worker_connections(
    settings: &Settings,
    registry: &workers::PoolRegistry,
) -> workers::WorkerConnections {
    workers::WorkerConnections {
        postgres: settings.database_url.as_ref().map(|url| workers::Postgres {
            url: url.expose().to_owned(),
            pool: pool_settings(
                settings,
                workers::per_worker(settings.db_pool_size, settings.workers),
            ),
            registry: registry.clone(),
        }),
        redis: settings.redis_url.as_ref().map(|url| {
            let (backoff, ip_cap) = throttle_rules(settings);
            workers::Redis {
                settings: redis_settings(settings, url),
                backoff,
                ip_cap,
            }
        }),
    }
}

/// One connection per client: each client is driven by one thread (a worker's, or the main
/// one's for start-up and the background jobs).
fn redis_settings(settings: &Settings, url: &Secret) -> authd_redis::RedisSettings {
    authd_redis::RedisSettings {
        url: url.expose().to_owned(),
        prefix: settings.redis_prefix.clone(),
        connections: 1,
        ..authd_redis::RedisSettings::default()
    }
}

/// The login throttle's rules, from the settings.
fn throttle_rules(settings: &Settings) -> (LoginBackoff, IpCap) {
    (
        LoginBackoff::new(settings.login_max_failures),
        IpCap::new(settings.login_ip_max_failures, IP_WINDOW),
    )
}

/// The cache's ports: Redis when `REDIS_URL` is set, memory (this process alone) otherwise.
/// The Redis client comes back too, to be closed at shutdown.
async fn cache(
    settings: &Settings,
) -> anyhow::Result<(CachePorts, Option<authd_redis::RedisClient>)> {
    let (backoff, ip_cap) = throttle_rules(settings);
    let Some(url) = &settings.redis_url else {
        if settings.database_url.is_some() {
            tracing::warn!(
                "REDIS_URL is not set: the auth cache and login throttle are per process; run a single instance"
            );
        }
        return Ok((authd_memory::cache_ports(backoff, ip_cap), None));
    };
    let client = authd_redis::connect(&redis_settings(settings, url)).await?;
    let ports = authd_redis::cache_ports(&client, &settings.redis_prefix, backoff, ip_cap);
    Ok((ports, Some(client)))
}

fn keys(settings: &Settings) -> anyhow::Result<KeyRing> {
    if settings.jwt_key_files.is_empty() {
        tracing::warn!(
            algorithm = %settings.jwt_algorithm,
            "AUTHD_JWT_KEY_FILES is not set: signing with a key generated for this process; tokens die with it and other instances cannot verify them"
        );
        return KeyRing::ephemeral(settings.jwt_algorithm);
    }
    let keys = settings
        .jwt_key_files
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path)
                .with_context(|| format!("AUTHD_JWT_KEY_FILES: cannot read {}", path.display()))?;
            SigningKey::from_jwk_bytes(&bytes).with_context(|| {
                format!(
                    "AUTHD_JWT_KEY_FILES: {} is not a usable key",
                    path.display()
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ring = KeyRing::new(keys).context("AUTHD_JWT_KEY_FILES")?;
    if ring.signing().algorithm() != settings.jwt_algorithm {
        anyhow::bail!(
            "AUTHD_JWT_ALGORITHM is {} but the signing key (the first of AUTHD_JWT_KEY_FILES) is {}",
            settings.jwt_algorithm,
            ring.signing().algorithm()
        );
    }
    Ok(ring)
}

fn auth_settings(settings: &Settings) -> anyhow::Result<AuthSettings> {
    let delta = |duration: Duration| {
        TimeDelta::from_std(duration).context("a duration setting is too large")
    };
    Ok(AuthSettings {
        access_ttl: delta(settings.access_ttl)?,
        lifetime: SessionLifetime::new(delta(settings.refresh_ttl)?, delta(settings.session_max)?),
        refresh_grace: delta(settings.refresh_grace)?,
        password_policy: PasswordPolicy::new(settings.password_min_length),
        default_role: settings.default_role.clone(),
        require_verified_email: settings.email.require_verified,
        reset_ttl: delta(settings.email.reset_ttl)?,
        verify_ttl: delta(settings.email.verify_ttl)?,
        email_limit: authd_domain::EmailRateLimit::default(),
    })
}

/// The default role and the primary admin. The server says once what it did about the admin.
async fn bootstrap(settings: &Settings, ports: &Ports, auth: &AuthSettings) -> anyhow::Result<()> {
    let seed = match (&settings.admin_email, &settings.admin_password) {
        (Some(email), Some(password)) => Some(AdminSeed {
            email: email.clone(),
            password: password.expose().to_owned(),
        }),
        (None, None) => None,
        _ => anyhow::bail!("AUTHD_ADMIN_EMAIL and AUTHD_ADMIN_PASSWORD must be set together"),
    };
    let bootstrap = Bootstrap::new(ports, auth);
    match bootstrap
        .execute(seed.as_ref())
        .await
        .context("start-up bootstrap")?
    {
        AdminOutcome::NotConfigured => tracing::info!(
            "AUTHD_ADMIN_EMAIL/AUTHD_ADMIN_PASSWORD are not set: no primary admin is created"
        ),
        AdminOutcome::Created => tracing::info!("created the primary admin"),
        AdminOutcome::AlreadyExists => tracing::info!("the primary admin exists; left unchanged"),
        AdminOutcome::EmailTaken => tracing::warn!(
            "AUTHD_ADMIN_EMAIL belongs to an existing user who is not the primary admin: no primary admin was created"
        ),
    }
    Ok(())
}

/// Argon2 hashes run at most this many at a time: one per core keeps memory bounded and leaves
/// the async workers free.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
