//! The operator contract of `../shared/SETTINGS.md`: every setting, its environment variable,
//! its default. Parsed once by clap ([`Args`], with `--config FILE` values as defaults), then
//! checked into typed [`Settings`]; nothing else reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use authd_crypto::Algorithm;
use clap::{Args as ClapArgs, FromArgMatches};

/// A secret string: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Every setting, as operators spell it.
#[derive(Debug, Clone, ClapArgs)]
pub struct Args {
    /// Address and port of the HTTP server.
    #[arg(
        long,
        env = "AUTHD_LISTEN",
        default_value = "127.0.0.1:8000",
        global = true
    )]
    pub listen: String,
    /// HTTP worker threads [default: number of cores].
    #[arg(long, env = "AUTHD_WORKERS", global = true)]
    pub workers: Option<usize>,
    /// Postgres URL; unset means the in-memory store (data lost on exit).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// Redis URL (redis://, rediss://, redis-cluster://); unset means the in-process cache.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, global = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key.
    #[arg(
        long,
        env = "AUTHD_REDIS_PREFIX",
        default_value = "authd",
        global = true
    )]
    pub redis_prefix: String,
    /// Postgres pool size.
    #[arg(long, env = "AUTHD_DB_POOL_SIZE", default_value_t = 16, global = true)]
    pub db_pool_size: usize,
    /// Postgres statement (and lock) timeout in milliseconds; a request that hits it gets 503.
    #[arg(
        long,
        env = "AUTHD_DB_STATEMENT_TIMEOUT_MS",
        default_value_t = 2_000,
        global = true
    )]
    pub db_statement_timeout_ms: u64,
    /// Signing algorithm: EdDSA, ES256 or HS256.
    #[arg(
        long,
        env = "AUTHD_JWT_ALGORITHM",
        default_value = "EdDSA",
        global = true
    )]
    pub jwt_algorithm: String,
    /// Comma-separated key files; the first signs, the rest only verify. Unset: a key
    /// generated for this process.
    #[arg(
        long,
        env = "AUTHD_JWT_KEY_FILES",
        value_delimiter = ',',
        global = true
    )]
    pub jwt_key_files: Vec<PathBuf>,
    /// `iss` of issued tokens.
    #[arg(long, env = "AUTHD_ISSUER", default_value = "authd", global = true)]
    pub issuer: String,
    /// `aud` of issued tokens.
    #[arg(long, env = "AUTHD_AUDIENCE", default_value = "authd", global = true)]
    pub audience: String,
    /// Access token lifetime in seconds.
    #[arg(
        long,
        env = "AUTHD_ACCESS_TTL_SECONDS",
        default_value_t = 900,
        global = true
    )]
    pub access_ttl_seconds: u64,
    /// Refresh token lifetime in seconds.
    #[arg(
        long,
        env = "AUTHD_REFRESH_TTL_SECONDS",
        default_value_t = 604_800,
        global = true
    )]
    pub refresh_ttl_seconds: u64,
    /// Refresh reuse grace window in seconds; 0 disables it.
    #[arg(
        long,
        env = "AUTHD_REFRESH_GRACE_SECONDS",
        default_value_t = 10,
        global = true
    )]
    pub refresh_grace_seconds: u64,
    /// Absolute session lifetime from login, in seconds.
    #[arg(
        long,
        env = "AUTHD_SESSION_MAX_SECONDS",
        default_value_t = 2_592_000,
        global = true
    )]
    pub session_max_seconds: u64,
    /// Add `Secure` to cookies (false only for plain-http development).
    #[arg(long, env = "AUTHD_COOKIE_SECURE", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub cookie_secure: bool,
    /// Primary admin's email, created at start when missing.
    #[arg(long, env = "AUTHD_ADMIN_EMAIL", global = true)]
    pub admin_email: Option<String>,
    /// The primary admin's initial password (never overwrites an existing admin's).
    #[arg(
        long,
        env = "AUTHD_ADMIN_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub admin_password: Option<String>,
    /// Slug of the role given at signup.
    #[arg(
        long,
        env = "AUTHD_DEFAULT_ROLE",
        default_value = "application-access",
        global = true
    )]
    pub default_role: String,
    /// Comma-separated CIDRs whose X-Forwarded-For is believed.
    #[arg(long, env = "AUTHD_TRUSTED_PROXIES", default_value = "", global = true)]
    pub trusted_proxies: String,
    /// The server's origin as browsers see it (`https://auth.example.com`); unset means the
    /// request's Host.
    #[arg(long, env = "AUTHD_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Comma-separated origins whose browser requests are allowed and get CORS answers.
    #[arg(long, env = "AUTHD_ALLOWED_ORIGINS", default_value = "", global = true)]
    pub allowed_origins: String,
    /// Argon2id memory cost in KiB.
    #[arg(
        long,
        env = "AUTHD_ARGON2_MEMORY_KIB",
        default_value_t = 19_456,
        global = true
    )]
    pub argon2_memory_kib: u32,
    /// Argon2id time cost.
    #[arg(
        long,
        env = "AUTHD_ARGON2_ITERATIONS",
        default_value_t = 2,
        global = true
    )]
    pub argon2_iterations: u32,
    /// Argon2id lanes.
    #[arg(
        long,
        env = "AUTHD_ARGON2_PARALLELISM",
        default_value_t = 1,
        global = true
    )]
    pub argon2_parallelism: u32,
    /// Minimum password length (never below 8).
    #[arg(
        long,
        env = "AUTHD_PASSWORD_MIN_LENGTH",
        default_value_t = 8,
        global = true
    )]
    pub password_min_length: usize,
    /// Consecutive failures per account before back-off.
    #[arg(
        long,
        env = "AUTHD_LOGIN_MAX_FAILURES",
        default_value_t = 5,
        global = true
    )]
    pub login_max_failures: u32,
    /// Failed logins per client IP per 5 minutes before refusing that IP.
    #[arg(
        long,
        env = "AUTHD_LOGIN_IP_MAX_FAILURES",
        default_value_t = 100,
        global = true
    )]
    pub login_ip_max_failures: u32,
    /// Password hashes that may wait for a hashing thread; beyond it, 503 (Retry-After: 1).
    #[arg(
        long,
        env = "AUTHD_HASH_QUEUE_MAX",
        default_value_t = 256,
        global = true
    )]
    pub hash_queue_max: usize,
    /// Request body limit in bytes.
    #[arg(
        long,
        env = "AUTHD_BODY_LIMIT_BYTES",
        default_value_t = 65_536,
        global = true
    )]
    pub body_limit_bytes: usize,
    /// Separate address for /metrics; unset serves it on the main listener.
    #[arg(long, env = "AUTHD_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<String>,
    /// Log format: text or json.
    #[arg(
        long,
        env = "AUTHD_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// Log one successful GET or HEAD request in this many (1 logs every request); other
    /// methods and every answer of 400 or more are always logged.
    #[arg(
        long,
        env = "AUTHD_ACCESS_LOG_SAMPLE",
        default_value_t = 1,
        global = true
    )]
    pub access_log_sample: u32,
    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(
        long,
        env = "AUTHD_SHUTDOWN_TIMEOUT_SECONDS",
        default_value_t = 30,
        global = true
    )]
    pub shutdown_timeout_seconds: u64,
    /// `smtp://[user:pass@]host[:port]` (STARTTLS when offered) or `smtps://...` (TLS); unset
    /// means emails go to the log.
    #[arg(long, env = "AUTHD_SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<String>,
    /// `From` of every email.
    #[arg(
        long,
        env = "AUTHD_EMAIL_FROM",
        default_value = "authd <no-reply@localhost>",
        global = true
    )]
    pub email_from: String,
    /// Link template of verification emails; `{token}` is replaced.
    #[arg(
        long,
        env = "AUTHD_VERIFY_LINK",
        default_value = "http://127.0.0.1:8000/verify-email?token={token}",
        global = true
    )]
    pub verify_link: String,
    /// Link template of reset emails; `{token}` is replaced.
    #[arg(
        long,
        env = "AUTHD_RESET_LINK",
        default_value = "http://127.0.0.1:8000/reset-password?token={token}",
        global = true
    )]
    pub reset_link: String,
    /// Reset token lifetime in seconds.
    #[arg(
        long,
        env = "AUTHD_RESET_TTL_SECONDS",
        default_value_t = 3_600,
        global = true
    )]
    pub reset_ttl_seconds: u64,
    /// Verification token lifetime in seconds.
    #[arg(
        long,
        env = "AUTHD_VERIFY_TTL_SECONDS",
        default_value_t = 86_400,
        global = true
    )]
    pub verify_ttl_seconds: u64,
    /// Refuse logins of unverified accounts (403).
    #[arg(long, env = "AUTHD_REQUIRE_VERIFIED_EMAIL", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub require_verified_email: bool,
    /// Folder of templates that replace the built-in ones.
    #[arg(long, env = "AUTHD_EMAIL_TEMPLATES_DIR", global = true)]
    pub email_templates_dir: Option<PathBuf>,
    /// SMTP connect and command timeout in milliseconds (a whole send gets twice this).
    #[arg(
        long,
        env = "AUTHD_SMTP_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub smtp_timeout_ms: u64,
    /// Wait after the first failed delivery of an email, in milliseconds; it doubles per
    /// attempt, up to an hour.
    #[arg(
        long,
        env = "AUTHD_EMAIL_RETRY_BASE_MS",
        default_value_t = 30_000,
        global = true
    )]
    pub email_retry_base_ms: u64,
    /// Delivery attempts per email before it is given up (dead).
    #[arg(
        long,
        env = "AUTHD_EMAIL_MAX_ATTEMPTS",
        default_value_t = 12,
        global = true
    )]
    pub email_max_attempts: u32,
    /// How often each instance looks for emails to deliver, in milliseconds.
    #[arg(
        long,
        env = "AUTHD_OUTBOX_POLL_MS",
        default_value_t = 1_000,
        global = true
    )]
    pub outbox_poll_ms: u64,
}

/// Where emails go and what they say.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// The SMTP server; `None`: the log.
    pub smtp_url: Option<Secret>,
    pub from: String,
    pub verify_link: authd_domain::LinkTemplate,
    pub reset_link: authd_domain::LinkTemplate,
    pub reset_ttl: Duration,
    pub verify_ttl: Duration,
    pub require_verified: bool,
    pub templates_dir: Option<PathBuf>,
    pub smtp_timeout: Duration,
    pub retry: authd_domain::DeliveryRetry,
    pub poll: Duration,
}

/// The checked settings the server is built from.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub workers: usize,
    pub database_url: Option<Secret>,
    pub redis_url: Option<Secret>,
    pub redis_prefix: String,
    pub db_pool_size: usize,
    pub db_statement_timeout: Duration,
    pub jwt_algorithm: Algorithm,
    pub jwt_key_files: Vec<PathBuf>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub refresh_grace: Duration,
    pub session_max: Duration,
    pub cookie_secure: bool,
    pub default_role: authd_domain::RoleSlug,
    pub trusted_proxies: authd_http::TrustedProxies,
    pub public_url: Option<authd_http::Origin>,
    pub allowed_origins: authd_http::AllowedOrigins,
    pub argon2: authd_crypto::Argon2Settings,
    pub password_min_length: usize,
    pub login_max_failures: u32,
    pub login_ip_max_failures: u32,
    pub hash_queue_max: usize,
    pub body_limit: usize,
    pub log_format: LogFormat,
    pub access_log_sample: std::num::NonZeroU32,
    pub shutdown_timeout: Duration,
    pub admin_email: Option<String>,
    pub admin_password: Option<Secret>,
    pub metrics_listen: Option<SocketAddr>,
    pub email: EmailSettings,
}

impl Settings {
    /// The documented defaults, as if no variable and no flag were set: what a test starts from.
    pub fn defaults() -> anyhow::Result<Self> {
        let command = Args::augment_args(clap::Command::new("authd")).mut_args(|arg| arg.env(None));
        let matches = command.try_get_matches_from(["authd"])?;
        Self::try_from(Args::from_arg_matches(&matches)?)
    }
}

impl TryFrom<Args> for Settings {
    type Error = anyhow::Error;

    /// Checks every value; the error names the setting.
    fn try_from(args: Args) -> anyhow::Result<Self> {
        let positive = |name: &str, value: u64| {
            if value == 0 {
                bail!("{name} must be greater than 0");
            }
            Ok(Duration::from_secs(value))
        };
        if args.password_min_length > authd_domain::PasswordPolicy::MAX_LENGTH {
            bail!(
                "AUTHD_PASSWORD_MIN_LENGTH must be at most {}",
                authd_domain::PasswordPolicy::MAX_LENGTH
            );
        }
        if args.db_pool_size == 0 {
            bail!("AUTHD_DB_POOL_SIZE must be greater than 0");
        }
        // 0 would mean "no timeout" to Postgres; above i32::MAX ms it refuses the value.
        if args.db_statement_timeout_ms == 0 || args.db_statement_timeout_ms > i32::MAX as u64 {
            bail!(
                "AUTHD_DB_STATEMENT_TIMEOUT_MS must be between 1 and {}",
                i32::MAX
            );
        }
        // 0 would refuse every hash, the admin's bootstrap included.
        if args.hash_queue_max == 0 {
            bail!("AUTHD_HASH_QUEUE_MAX must be greater than 0");
        }
        if args.body_limit_bytes == 0 {
            bail!("AUTHD_BODY_LIMIT_BYTES must be greater than 0");
        }
        if args.login_max_failures == 0 || args.login_ip_max_failures == 0 {
            bail!(
                "AUTHD_LOGIN_MAX_FAILURES and AUTHD_LOGIN_IP_MAX_FAILURES must be greater than 0"
            );
        }
        let link = |name: &str, raw: &str| {
            authd_domain::LinkTemplate::parse(raw)
                .map_err(|_| anyhow::anyhow!("{name} {raw:?} must contain {{token}}"))
        };
        // Bounded above so that a typo (a value in µs, say) is an error at start, not an email
        // that waits for years.
        let millis = |name: &str, value: u64| {
            const HOUR_MS: u64 = 60 * 60 * 1000;
            if value == 0 || value > HOUR_MS {
                bail!("{name} must be between 1 and {HOUR_MS}");
            }
            Ok(Duration::from_millis(value))
        };
        let email = EmailSettings {
            smtp_url: args.smtp_url.filter(|url| !url.is_empty()).map(Secret::new),
            from: args.email_from,
            verify_link: link("AUTHD_VERIFY_LINK", &args.verify_link)?,
            reset_link: link("AUTHD_RESET_LINK", &args.reset_link)?,
            reset_ttl: positive("AUTHD_RESET_TTL_SECONDS", args.reset_ttl_seconds)?,
            verify_ttl: positive("AUTHD_VERIFY_TTL_SECONDS", args.verify_ttl_seconds)?,
            require_verified: args.require_verified_email,
            templates_dir: args
                .email_templates_dir
                .filter(|dir| !dir.as_os_str().is_empty()),
            smtp_timeout: millis("AUTHD_SMTP_TIMEOUT_MS", args.smtp_timeout_ms)?,
            retry: authd_domain::DeliveryRetry::new(
                millis("AUTHD_EMAIL_RETRY_BASE_MS", args.email_retry_base_ms)?,
                Duration::from_secs(60 * 60),
                match args.email_max_attempts {
                    0 => bail!("AUTHD_EMAIL_MAX_ATTEMPTS must be greater than 0"),
                    attempts => attempts,
                },
            ),
            poll: millis("AUTHD_OUTBOX_POLL_MS", args.outbox_poll_ms)?,
        };
        let settings = Self {
            listen: args.listen.parse().with_context(|| {
                format!("AUTHD_LISTEN {:?} is not an address:port", args.listen)
            })?,
            workers: match args.workers {
                Some(0) => bail!("AUTHD_WORKERS must be greater than 0"),
                Some(workers) => workers,
                None => std::thread::available_parallelism().map_or(1, usize::from),
            },
            database_url: args
                .database_url
                .filter(|url| !url.is_empty())
                .map(Secret::new),
            redis_url: args
                .redis_url
                .filter(|url| !url.is_empty())
                .map(Secret::new),
            redis_prefix: args.redis_prefix,
            db_pool_size: args.db_pool_size,
            db_statement_timeout: Duration::from_millis(args.db_statement_timeout_ms),
            jwt_algorithm: args.jwt_algorithm.parse().context("AUTHD_JWT_ALGORITHM")?,
            jwt_key_files: args.jwt_key_files,
            issuer: args.issuer,
            audience: args.audience,
            access_ttl: positive("AUTHD_ACCESS_TTL_SECONDS", args.access_ttl_seconds)?,
            refresh_ttl: positive("AUTHD_REFRESH_TTL_SECONDS", args.refresh_ttl_seconds)?,
            refresh_grace: Duration::from_secs(args.refresh_grace_seconds),
            session_max: positive("AUTHD_SESSION_MAX_SECONDS", args.session_max_seconds)?,
            cookie_secure: args.cookie_secure,
            default_role: authd_domain::RoleSlug::parse(&args.default_role)
                .with_context(|| format!("AUTHD_DEFAULT_ROLE {:?}", args.default_role))?,
            trusted_proxies: args
                .trusted_proxies
                .parse()
                .with_context(|| format!("AUTHD_TRUSTED_PROXIES {:?}", args.trusted_proxies))?,
            public_url: args
                .public_url
                .filter(|url| !url.is_empty())
                .map(|url| url.parse().context("AUTHD_PUBLIC_URL"))
                .transpose()?,
            allowed_origins: args
                .allowed_origins
                .parse()
                .context("AUTHD_ALLOWED_ORIGINS")?,
            argon2: authd_crypto::Argon2Settings {
                memory_kib: args.argon2_memory_kib,
                iterations: args.argon2_iterations,
                parallelism: args.argon2_parallelism,
            },
            password_min_length: args.password_min_length,
            login_max_failures: args.login_max_failures,
            login_ip_max_failures: args.login_ip_max_failures,
            hash_queue_max: args.hash_queue_max,
            body_limit: args.body_limit_bytes,
            log_format: args.log_format,
            access_log_sample: std::num::NonZeroU32::new(args.access_log_sample)
                .context("AUTHD_ACCESS_LOG_SAMPLE must be greater than 0")?,
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout_seconds),
            admin_email: args.admin_email,
            admin_password: args.admin_password.map(Secret::new),
            metrics_listen: args
                .metrics_listen
                .filter(|listen| !listen.is_empty())
                .map(|listen| {
                    listen.parse().with_context(|| {
                        format!("AUTHD_METRICS_LISTEN {listen:?} is not an address:port")
                    })
                })
                .transpose()?,
            email,
        };
        Ok(settings)
    }
}
