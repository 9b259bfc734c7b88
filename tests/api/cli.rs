//! The `authd` binary itself: commands, configuration errors, graceful shutdown.

use std::process::{Command, Stdio};
use std::time::Duration;

fn authd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_authd"));
    // Only what a test sets: no DATABASE_URL or REDIS_URL leaking in from the environment.
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("authd-cli-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn help_documents_every_setting_of_the_operator_contract() {
    let output = authd().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for variable in [
        "AUTHD_LISTEN",
        "AUTHD_WORKERS",
        "DATABASE_URL",
        "REDIS_URL",
        "AUTHD_REDIS_PREFIX",
        "AUTHD_DB_POOL_SIZE",
        "AUTHD_DB_STATEMENT_TIMEOUT_MS",
        "AUTHD_HASH_QUEUE_MAX",
        "AUTHD_JWT_ALGORITHM",
        "AUTHD_JWT_KEY_FILES",
        "AUTHD_ISSUER",
        "AUTHD_AUDIENCE",
        "AUTHD_ACCESS_TTL_SECONDS",
        "AUTHD_REFRESH_TTL_SECONDS",
        "AUTHD_REFRESH_GRACE_SECONDS",
        "AUTHD_SESSION_MAX_SECONDS",
        "AUTHD_COOKIE_SECURE",
        "AUTHD_ADMIN_EMAIL",
        "AUTHD_ADMIN_PASSWORD",
        "AUTHD_DEFAULT_ROLE",
        "AUTHD_TRUSTED_PROXIES",
        "AUTHD_PUBLIC_URL",
        "AUTHD_ALLOWED_ORIGINS",
        "AUTHD_ARGON2_MEMORY_KIB",
        "AUTHD_ARGON2_ITERATIONS",
        "AUTHD_ARGON2_PARALLELISM",
        "AUTHD_PASSWORD_MIN_LENGTH",
        "AUTHD_LOGIN_MAX_FAILURES",
        "AUTHD_BODY_LIMIT_BYTES",
        "AUTHD_METRICS_LISTEN",
        "AUTHD_LOG_FORMAT",
        "AUTHD_ACCESS_LOG_SAMPLE",
    ] {
        assert!(help.contains(variable), "{variable} is missing from --help");
    }
    let serve_help = authd().args(["serve", "--help"]).output().unwrap();
    assert!(
        String::from_utf8(serve_help.stdout)
            .unwrap()
            .contains("AUTHD_JWT_KEY_FILES")
    );
}

/// The settings a `--help` text names: `AUTHD_*`, `DATABASE_URL` and `REDIS_URL`.
fn settings_named_in(help: &str) -> std::collections::BTreeSet<String> {
    help.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .filter(|word| word.starts_with("AUTHD_") || ["DATABASE_URL", "REDIS_URL"].contains(word))
        .map(str::to_owned)
        .collect()
}

/// Any setting may hold a secret (a password, a URL with credentials): `--help` names every
/// variable and prints no value taken from the environment or from a `--config` file, for the
/// command and for each subcommand.
#[test]
fn help_prints_no_value_from_the_environment_or_the_config_file() {
    let plain = String::from_utf8(authd().arg("--help").output().unwrap().stdout).unwrap();
    let variables = settings_named_in(&plain);
    assert!(variables.len() > 20, "{variables:?}");
    // URLs with credentials, as operators write them; every other setting a marked value.
    let mut env: Vec<(String, String)> = variables
        .iter()
        // AUTHD_CONFIG names the file read below; the file run covers its values.
        .filter(|name| *name != "AUTHD_CONFIG")
        .map(|name| (name.clone(), format!("env-secret-of-{name}")))
        .collect();
    for (name, url) in [
        (
            "DATABASE_URL",
            "postgres://authd:env-db-password@db.internal:5432/authd",
        ),
        (
            "REDIS_URL",
            "redis://default:env-redis-password@cache.internal:6379",
        ),
        (
            "AUTHD_SMTP_URL",
            "smtp://mailer:env-smtp-password@mail.internal:587",
        ),
    ] {
        env.retain(|(set, _)| set != name);
        env.push((name.to_owned(), url.to_owned()));
    }
    let dir = temp_dir();
    let file = dir.join("authd.toml");
    let mut config = String::from(
        "DATABASE_URL = \"postgres://authd:file-db-password@db.internal/authd\"\n\
         REDIS_URL = \"rediss://default:file-redis-password@cache.internal\"\n\
         AUTHD_ADMIN_PASSWORD = \"file-admin-password\"\n\
         AUTHD_ADMIN_EMAIL = \"file-admin@example.com\"\n",
    );
    if variables.contains("AUTHD_SMTP_URL") {
        config.push_str("AUTHD_SMTP_URL = \"smtp://mailer:file-smtp-password@mail.internal\"\n");
    }
    std::fs::write(&file, &config).unwrap();
    let secrets: Vec<&str> = env
        .iter()
        .map(|(_, value)| value.as_str())
        .chain([
            "env-db-password",
            "env-redis-password",
            "env-smtp-password",
            "file-db-password",
            "file-redis-password",
            "file-smtp-password",
            "file-admin-password",
            "file-admin@example.com",
        ])
        .collect();

    for command in [
        &["--help"][..],
        &["-h"],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["keys", "generate", "--help"],
    ] {
        let by_env = authd()
            .args(command)
            .envs(env.iter().map(|(name, value)| (name, value)))
            .output()
            .unwrap();
        let by_file = authd()
            .args(command)
            .arg("--config")
            .arg(&file)
            .output()
            .unwrap();
        for output in [by_env, by_file] {
            assert!(output.status.success(), "{command:?}: {output:?}");
            let help = String::from_utf8(output.stdout).unwrap();
            assert!(help.contains("DATABASE_URL"), "{command:?}: {help}");
            for secret in &secrets {
                assert!(
                    !help.contains(secret),
                    "{command:?} printed {secret}:\n{help}"
                );
            }
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_bad_setting_exits_2_with_one_line_naming_it() {
    for (variable, value) in [
        ("AUTHD_ACCESS_TTL_SECONDS", "abc"),
        ("AUTHD_LISTEN", "nowhere"),
        ("AUTHD_JWT_ALGORITHM", "RS256"),
        ("AUTHD_DB_STATEMENT_TIMEOUT_MS", "0"),
        ("AUTHD_HASH_QUEUE_MAX", "0"),
        ("AUTHD_PUBLIC_URL", "https://auth.example.com/login"),
        ("AUTHD_PUBLIC_URL", "auth.example.com"),
        (
            "AUTHD_ALLOWED_ORIGINS",
            "https://app.example.com,ftp://files.example.com",
        ),
        ("AUTHD_ALLOWED_ORIGINS", "https://user@app.example.com"),
    ] {
        let output = authd()
            .arg("migrate")
            .env(variable, value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{variable}={value}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(variable),
            "{variable} not named in {stderr:?}"
        );
    }
}

#[test]
fn keys_generate_writes_a_usable_key_and_never_overwrites() {
    let dir = temp_dir();
    let out = dir.join("signing.jwk");
    let status = authd()
        .args(["keys", "generate", "--algorithm", "ES256", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let key = authd_crypto::SigningKey::from_jwk_bytes(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(key.algorithm(), authd_crypto::Algorithm::ES256);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let before = std::fs::read(&out).unwrap();
    let again = authd()
        .args(["keys", "generate", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        std::fs::read(&out).unwrap() == before,
        "the second run changed the key file"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[actix_web::test]
async fn migrate_applies_the_migrations_once() {
    let database = authd_postgres::testing::empty_database().await.unwrap();
    let first = authd()
        .arg("migrate")
        .env("DATABASE_URL", &database.url)
        .output()
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let applied = String::from_utf8(first.stdout).unwrap();
    assert!(
        applied.starts_with("applied ") && !applied.starts_with("applied 0"),
        "{applied}"
    );
    let second = authd()
        .arg("migrate")
        .env("DATABASE_URL", &database.url)
        .output()
        .unwrap();
    assert!(
        String::from_utf8(second.stdout)
            .unwrap()
            .starts_with("applied 0 migration")
    );
}

#[test]
fn sigterm_stops_the_server_gracefully_with_status_0() {
    let mut server = Process::start(&[
        ("AUTHD_ARGON2_MEMORY_KIB", "1024".into()),
        ("AUTHD_ARGON2_ITERATIONS", "1".into()),
    ]);
    assert_eq!(server.terminate().code(), Some(0));
}

/// Every variable the deploy files set is one authd reads (a typo there would be ignored
/// silently by the container, so it is caught here).
#[test]
fn the_deploy_files_set_only_variables_authd_knows() {
    let help = String::from_utf8(authd().arg("--help").output().unwrap().stdout).unwrap();
    // Read by the log filter rather than by a flag.
    let outside_help = ["RUST_LOG"];
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let mut files = vec![
        deploy.join("Dockerfile"),
        deploy.join("compose.yaml"),
        deploy.join("authd.env.example"),
    ];
    files.extend(
        std::fs::read_dir(deploy.join("k8s"))
            .unwrap()
            .map(|entry| entry.unwrap().path()),
    );
    let mut seen = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for word in
            text.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        {
            let is_setting = word.starts_with("AUTHD_")
                || ["DATABASE_URL", "REDIS_URL", "RUST_LOG"].contains(&word);
            if is_setting {
                seen += 1;
                assert!(
                    help.contains(word) || outside_help.contains(&word),
                    "{} sets {word}, which authd does not read",
                    file.display()
                );
            }
        }
    }
    assert!(
        seen > 20,
        "the deploy files set only {seen} settings: were they found?"
    );
}

/// A server process of the real binary, its port, and every log line it has written so far.
struct Process {
    child: std::process::Child,
    base: String,
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Process {
    fn start(envs: &[(&str, String)]) -> Self {
        let mut command = authd();
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("AUTHD_LOG_FORMAT", "json");
        for (name, value) in envs {
            command.env(name, value);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let collected = logs.clone();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(stderr).map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) {
                    if event["message"] == "authd ready; SIGTERM or Ctrl-C stops it gracefully" {
                        let _ = port_tx.send(event["port"].as_u64().unwrap());
                    }
                }
                collected.lock().unwrap().push(line);
            }
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server never became ready");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            logs,
        }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still running after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[actix_web::test]
async fn sigterm_lets_an_in_flight_request_finish() {
    // A slow hash makes the login last long enough to be in flight at the signal.
    let mut server = Process::start(&[
        ("AUTHD_ARGON2_ITERATIONS", "60".into()),
        ("AUTHD_COOKIE_SECURE", "false".into()),
    ]);
    let browser = crate::helpers::Browser::new(&server.base);
    let email = crate::helpers::unique_email();
    let hashing = std::time::Instant::now();
    assert_eq!(
        browser
            .signup(&email, crate::helpers::PASSWORD)
            .await
            .status,
        201
    );
    // A login costs what the signup's hash cost: it must outlast the 100 ms before the signal,
    // or this test would prove nothing.
    let hash_cost = hashing.elapsed();
    assert!(
        hash_cost > Duration::from_millis(300),
        "hashing took only {hash_cost:?}: raise the cost"
    );
    let login = actix_web::rt::spawn(async move {
        let status = browser.login(&email, crate::helpers::PASSWORD).await.status;
        (status, std::time::Instant::now())
    });
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    // Signalled and awaited on a thread of its own, so this runtime keeps driving the login and
    // its answer is timed when it arrives.
    let (server, signalled, status) = actix_web::rt::task::spawn_blocking(move || {
        let signalled = std::time::Instant::now();
        let status = server.terminate();
        (server, signalled, status)
    })
    .await
    .unwrap();
    let (login_status, answered) = login.await.unwrap();
    assert_eq!(login_status, 204, "the in-flight login was cut off");
    assert_eq!(status.code(), Some(0));
    assert!(
        answered > signalled,
        "the login was answered before the signal: it was not in flight"
    );
    let logs = server.logs.lock().unwrap().join("\n");
    assert!(logs.contains("shutdown requested"), "{logs}");
}

/// `url` with credentials in it, and its password: the one it has, or `password` added (with
/// the user `default` when it names none, as Redis's default user).
fn with_credentials(url: &str, password: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let authority = rest.split('/').next().unwrap();
    match authority.split_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            let existing = userinfo.split_once(':').unwrap().1;
            (url.to_owned(), existing.to_owned())
        }
        Some((user, host)) => (
            format!(
                "{scheme}://{user}:{password}@{host}{}",
                &rest[authority.len()..]
            ),
            password.to_owned(),
        ),
        None => (
            format!("{scheme}://default:{password}@{rest}"),
            password.to_owned(),
        ),
    }
}

/// A start that fails on an unreachable database or a bad Redis URL says so without the
/// credentials in the URL, even at debug level.
#[test]
fn a_failed_start_prints_no_credential() {
    let database_url = "postgres://authd:unreachable-db-password@127.0.0.1:1/authd";
    let redis_url = "redis://default:bad-redis-password@127.0.0.1:notaport";
    for (command, variable, url, password) in [
        (
            "migrate",
            "DATABASE_URL",
            database_url,
            "unreachable-db-password",
        ),
        (
            "serve",
            "DATABASE_URL",
            database_url,
            "unreachable-db-password",
        ),
        ("serve", "REDIS_URL", redis_url, "bad-redis-password"),
    ] {
        let output = authd()
            .args([command, "--listen", "127.0.0.1:0"])
            .env(variable, url)
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        assert!(
            !output.status.success(),
            "{command} with {variable} started"
        );
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            printed.contains(variable),
            "{variable} not named: {printed}"
        );
        assert!(
            !printed.contains(password),
            "{command} printed the password of {variable}: {printed}"
        );
    }
}

/// Drives every access and admin flow on Postgres + Redis with debug logging, then looks for
/// each secret it used in everything the server logged.
#[actix_web::test]
async fn no_secret_reaches_the_logs() {
    use crate::helpers::{Body, Browser};
    let database = authd_postgres::testing::fresh_database().await.unwrap();
    let dir = temp_dir();
    let key_file = dir.join("signing.jwk");
    let key = authd_crypto::generate_key(authd_crypto::Algorithm::EdDSA).unwrap();
    std::fs::write(&key_file, &key).unwrap();
    let private_part = serde_json::from_str::<serde_json::Value>(&key).unwrap()["d"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin_password = "admin secret passphrase 1";
    // Credentials in both URLs (the local Postgres trusts, and Redis's default user takes any
    // password), as in production.
    let (database_url, database_password) = with_credentials(&database.url, "db-url-password-6");
    let (redis_url, redis_password) =
        with_credentials(&crate::helpers::redis_url(), "redis-url-password-7");
    let mut server = Process::start(&[
        ("DATABASE_URL", database_url.clone()),
        ("REDIS_URL", redis_url.clone()),
        (
            "AUTHD_REDIS_PREFIX",
            format!("authd-logs-{}", uuid::Uuid::now_v7().simple()),
        ),
        ("AUTHD_JWT_KEY_FILES", key_file.display().to_string()),
        ("AUTHD_ADMIN_EMAIL", "root@example.com".into()),
        ("AUTHD_ADMIN_PASSWORD", admin_password.into()),
        ("AUTHD_COOKIE_SECURE", "false".into()),
        ("RUST_LOG", "debug".into()),
    ]);
    let user_password = "user secret passphrase 2";
    let new_password = "user secret passphrase 3";
    let email = crate::helpers::unique_email();
    let browser = Browser::new(&server.base);
    let mut secrets = vec![
        admin_password.to_owned(),
        user_password.to_owned(),
        new_password.to_owned(),
        private_part,
        database_url,
        database_password,
        redis_url,
        redis_password,
    ];

    assert_eq!(browser.signup(&email, user_password).await.status, 201);
    browser.login(&email, "wrong secret passphrase 4").await;
    secrets.push("wrong secret passphrase 4".into());
    assert_eq!(browser.login(&email, user_password).await.status, 204);
    secrets.extend([
        browser.cookie("access_token").unwrap(),
        browser.cookie("refresh_token").unwrap(),
    ]);
    assert_eq!(browser.refresh().await.status, 204);
    secrets.extend([
        browser.cookie("access_token").unwrap(),
        browser.cookie("refresh_token").unwrap(),
    ]);
    assert_eq!(browser.me().await.status, 200);
    let change =
        serde_json::json!({"current_password": user_password, "new_password": new_password});
    assert_eq!(
        browser
            .send("PATCH", "/api/access/password", &[], Body::Json(change))
            .await
            .status,
        204
    );

    let admin = Browser::new(&server.base);
    assert_eq!(
        admin.login("root@example.com", admin_password).await.status,
        204
    );
    secrets.push(admin.cookie("access_token").unwrap());
    let created = serde_json::json!({"email": crate::helpers::unique_email(), "password": "made secret passphrase 5"});
    secrets.push("made secret passphrase 5".into());
    assert_eq!(
        admin
            .send("POST", "/api/users", &[], Body::Json(created))
            .await
            .status,
        201
    );
    assert_eq!(admin.logout().await.status, 204);

    assert_eq!(server.terminate().code(), Some(0));
    let logs = server.logs.lock().unwrap().join("\n");
    assert!(
        logs.contains("login succeeded") && logs.contains("\"status\":204"),
        "the logs were not captured"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret reached the logs: {secret}"
        );
    }
    assert!(
        !logs.contains("$argon2id$"),
        "a password hash reached the logs"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[actix_web::test]
async fn the_access_log_samples_successful_reads_and_keeps_every_other_line() {
    use crate::helpers::{Body, Browser};
    let mut server = Process::start(&[("AUTHD_ACCESS_LOG_SAMPLE", "3".into())]);
    let browser = Browser::new(&server.base);
    for _ in 0..600 {
        assert_eq!(
            browser
                .send("GET", "/health", &[], Body::Empty)
                .await
                .status,
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(browser.me().await.status, 401);
    }
    let reset = browser
        .send(
            "POST",
            "/api/access/password-reset",
            &[],
            Body::Json(serde_json::json!({"email": "nobody@example.com"})),
        )
        .await;
    assert_eq!(reset.status, 202);
    assert_eq!(server.terminate().code(), Some(0));

    let logs = server.logs.lock().unwrap().clone();
    let access_lines = |route: &str| {
        logs.iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["message"] == "request" && event["route"] == route)
            .count()
    };
    // About 200 of the 600, at random: outside 150..=250 about once in 10^5 runs.
    let reads = access_lines("/health");
    assert!((150..=250).contains(&reads), "{reads} lines of 600 reads");
    assert_eq!(access_lines("/api/access/me"), 2, "every error");
    assert_eq!(access_lines("/api/access/password-reset"), 1, "every write");
}
