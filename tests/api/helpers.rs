//! `spawn_app`, a cookie-keeping client, and the `both!` macro.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::header::HeaderMap;
use actix_web::web::Bytes;
use authd::{Application, Secret, Settings};
use authd_postgres::testing::{TestDatabase, fresh_database};
use serde_json::Value;

/// Runs a scenario `async fn name(backend: Backend)` once per backend, as two tests.
macro_rules! both {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[actix_web::test]
                async fn memory() {
                    super::$name($crate::helpers::Backend::Memory).await;
                }

                #[actix_web::test]
                async fn postgres_redis() {
                    super::$name($crate::helpers::Backend::Real).await;
                }
            }
        )+
    };
}
pub(crate) use both;

/// Which adapters the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// In-memory store, cache and throttle.
    Memory,
    /// Postgres (a fresh database) and Redis (a fresh key prefix).
    Real,
}

pub const PASSWORD: &str = "correct horse battery";

/// A running server and what it was built from.
pub struct TestApp {
    pub base: String,
    pub settings: Settings,
    handle: ServerHandle,
    pub metrics_port: Option<u16>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub database: Option<Arc<TestDatabase>>,
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The test Redis server's "host:port", from `redis_url()`.
pub fn redis_address() -> String {
    redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned()
}

/// Retries `attempt` until it answers `status`, for up to 10 s (a pool or client reconnecting);
/// `what` names the wait in the failure.
pub async fn eventually(what: &str, status: u16, mut attempt: impl AsyncFnMut() -> u16) {
    let mut last = 0;
    for _ in 0..50 {
        last = attempt().await;
        if last == status {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what}: still {last}, never {status}");
}

/// Settings of a test server: cheap Argon2 (the cost does not change behaviour), secure
/// cookies as in production, a short shutdown.
pub async fn test_settings(backend: Backend) -> (Settings, Option<Arc<TestDatabase>>) {
    let mut settings = Settings::defaults().expect("defaults");
    settings.workers = 1;
    settings.argon2 = authd_crypto::Argon2Settings {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    settings.shutdown_timeout = Duration::from_secs(1);
    settings.jwt_key_files = vec![key_file()];
    let database = match backend {
        Backend::Memory => None,
        Backend::Real => {
            let database = Arc::new(fresh_database().await.expect("test database"));
            settings.database_url = Some(Secret::new(database.url.clone()));
            settings.redis_url = Some(Secret::new(redis_url()));
            settings.redis_prefix = format!("authd-e2e-{}", uuid::Uuid::now_v7().simple());
            Some(database)
        }
    };
    (settings, database)
}

/// A fresh EdDSA key file shared by the instances of one test.
fn key_file() -> PathBuf {
    let dir = std::env::temp_dir().join("authd-e2e-keys");
    std::fs::create_dir_all(&dir).expect("key dir");
    let path = dir.join(format!("{}.jwk", uuid::Uuid::now_v7().simple()));
    std::fs::write(
        &path,
        authd_crypto::generate_key(authd_crypto::Algorithm::EdDSA).expect("key"),
    )
    .expect("write key");
    path
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_with(backend, |_| {}).await
}

pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let (mut settings, database) = test_settings(backend).await;
    configure(&mut settings);
    start(settings, database).await
}

/// Starts a server from these settings, on a thread and runtime of its own (as in production,
/// and so that stopping it never waits on the test's own runtime).
pub async fn start(settings: Settings, database: Option<Arc<TestDatabase>>) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (ready, handle) = tokio::sync::oneshot::channel();
    let server_settings = settings.clone();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let application = Application::build_on(server_settings, listener)
                .await
                .expect("server builds");
            let _ = ready.send((application.handle(), application.metrics_port()));
            let _ = application.run_until_stopped().await;
        });
    });
    let (handle, metrics_port) = handle.await.expect("server started");
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        settings,
        handle,
        metrics_port,
        thread: Some(thread),
        database,
    }
}

impl TestApp {
    /// Another instance sharing this one's database, Redis prefix and keys.
    pub async fn sibling(&self) -> TestApp {
        start(self.settings.clone(), self.database.clone()).await
    }

    /// A client with an empty cookie jar.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    /// A client already signed up and logged in as a fresh user.
    pub async fn logged_in(&self) -> (Browser, String) {
        let browser = self.browser();
        let email = unique_email();
        assert_eq!(browser.signup(&email, PASSWORD).await.status, 201);
        assert_eq!(browser.login(&email, PASSWORD).await.status, 204);
        (browser, email)
    }

    /// Deletes this server's Redis keys (as a flush or a restart without persistence would).
    pub async fn flush_redis(&self) {
        let pattern = format!("{}:*", self.settings.redis_prefix);
        let script = "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do n = n + redis.call('DEL', k) end return n";
        let deleted = redis_command(&["EVAL", script, "0", &pattern]).await;
        assert!(
            deleted.starts_with(':'),
            "unexpected Redis answer {deleted}"
        );
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // No runtime may start inside the test's own: stop the server from a plain thread.
        let _ =
            std::thread::spawn(move || actix_web::rt::System::new().block_on(handle.stop(false)))
                .join();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One Redis command over a plain connection (RESP), answered as its raw first line.
pub async fn redis_command(parts: &[&str]) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut stream = tokio::net::TcpStream::connect(redis_address())
        .await
        .expect("redis");
    let mut command = format!("*{}\r\n", parts.len());
    for part in parts {
        command.push_str(&format!("${}\r\n{part}\r\n", part.len()));
    }
    stream.write_all(command.as_bytes()).await.expect("write");
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .await
        .expect("read");
    line.trim_end().to_owned()
}

pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::now_v7().simple())
}

/// What came back.
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }

    /// The `Set-Cookie` line for `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .filter_map(|value| value.to_str().ok())
            .find(|line| line.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// Asserts a problem+json answer with this status, returning the body.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json")
        );
        let body = self.json();
        assert_eq!(body["status"], status);
        assert_eq!(body["type"], "about:blank");
        assert!(
            body["title"].is_string() && body["detail"].is_string(),
            "{body}"
        );
        body
    }

    /// Asserts that both session cookies are cleared as the server clears them: an empty value,
    /// `Max-Age=0`, and the path each was set on (`/` for the access cookie, `/api/access` for
    /// the refresh cookie), so the browser drops the very cookies it holds.
    pub fn assert_clears_session_cookies(&self) {
        for (name, path) in [
            ("access_token", "Path=/"),
            ("refresh_token", "Path=/api/access"),
        ] {
            let line = self
                .set_cookie(name)
                .unwrap_or_else(|| panic!("no Set-Cookie for {name}"));
            let mut parts = line.split("; ");
            assert_eq!(parts.next(), Some(format!("{name}=").as_str()), "{line}");
            let attributes: Vec<&str> = parts.collect();
            for expected in ["Max-Age=0", path] {
                assert!(
                    attributes.contains(&expected),
                    "{name} is not cleared: {line}"
                );
            }
        }
    }

    /// The fields named by a 422.
    pub fn invalid_fields(&self) -> Vec<String> {
        let body = self.problem(422);
        body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A client that keeps cookies like a browser (by name; every route is under their paths).
pub struct Browser {
    client: awc::Client,
    base: String,
    jar: RefCell<BTreeMap<String, String>>,
}

#[derive(Clone)]
pub enum Body<'a> {
    Empty,
    Json(Value),
    Form(&'a [(&'a str, &'a str)]),
    Raw(&'a str, Vec<u8>),
}

impl Browser {
    pub fn new(base: &str) -> Self {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
        Self {
            client,
            base: base.to_owned(),
            jar: RefCell::new(BTreeMap::new()),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.borrow().get(name).cloned()
    }

    /// The session's two tokens as the jar holds them: (access, refresh).
    pub fn tokens(&self) -> (String, String) {
        (
            self.cookie("access_token").unwrap(),
            self.cookie("refresh_token").unwrap(),
        )
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar
            .borrow_mut()
            .insert(name.to_owned(), value.to_owned());
    }

    pub fn forget_cookie(&self, name: &str) {
        self.jar.borrow_mut().remove(name);
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Response {
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        let cookies: Vec<String> = self
            .jar
            .borrow()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !cookies.is_empty() {
            request = request.insert_header(("cookie", cookies.join("; ")));
        }
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        let sent = match body {
            Body::Empty => request.send().await,
            Body::Json(value) => request.send_json(&value).await,
            Body::Form(fields) => request.send_form(&fields).await,
            Body::Raw(content_type, bytes) => {
                if !content_type.is_empty() {
                    request = request.insert_header(("content-type", content_type));
                }
                request.send_body(bytes).await
            }
        };
        let mut response = sent.expect("request sent");
        let body = response.body().limit(1 << 20).await.expect("body");
        let response = Response {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body,
        };
        self.keep_cookies(&response);
        response
    }

    fn keep_cookies(&self, response: &Response) {
        for line in response
            .headers
            .get_all("set-cookie")
            .filter_map(|v| v.to_str().ok())
        {
            let first = line.split(';').next().unwrap_or_default();
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            if value.is_empty() || line.contains("Max-Age=0") {
                self.jar.borrow_mut().remove(name);
            } else {
                self.jar
                    .borrow_mut()
                    .insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub async fn signup(&self, email: &str, password: &str) -> Response {
        let body = serde_json::json!({"email": email, "password": password});
        self.send("POST", "/api/access/signup", &[], Body::Json(body))
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.send(
            "POST",
            "/api/access/login",
            &[],
            Body::Form(&[("username", email), ("password", password)]),
        )
        .await
    }

    pub async fn me(&self) -> Response {
        self.send("GET", "/api/access/me", &[], Body::Empty).await
    }

    pub async fn refresh(&self) -> Response {
        self.send("POST", "/api/access/refresh", &[], Body::Empty)
            .await
    }

    pub async fn logout(&self) -> Response {
        self.send("POST", "/api/access/logout", &[], Body::Empty)
            .await
    }

    pub async fn sessions(&self) -> Response {
        self.send("GET", "/api/access/sessions", &[], Body::Empty)
            .await
    }

    /// `GET /me` with this access token as a Bearer header and no cookies.
    pub async fn me_with_bearer(base: &str, token: &str) -> Response {
        let bare = Browser::new(base);
        bare.send(
            "GET",
            "/api/access/me",
            &[("authorization", &format!("Bearer {token}"))],
            Body::Empty,
        )
        .await
    }
}

/// Asserts that every route (method, path, body) is for superusers only: 403 to `member`, a
/// logged-in user who is none, and 401 to `stranger`, a client without credentials.
pub async fn assert_superuser_only(
    member: &Browser,
    stranger: &Browser,
    routes: &[(&str, &str, Body<'_>)],
) {
    for (method, path, body) in routes {
        let refused = member.send(method, path, &[], body.clone()).await;
        assert_eq!(refused.status, 403, "{method} {path} as a member");
        refused.problem(403);
        let refused = stranger.send(method, path, &[], body.clone()).await;
        assert_eq!(refused.status, 401, "{method} {path} without credentials");
        refused.problem(401);
    }
}

/// `GET /metrics` on `browser`'s server: the Prometheus text.
pub async fn metrics_text(browser: &Browser) -> String {
    let response = browser.send("GET", "/metrics", &[], Body::Empty).await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    String::from_utf8(response.body.to_vec()).unwrap()
}

/// Unpadded base64url (JOSE's encoding) decoded; `None` on a character outside its alphabet.
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let (mut bits, mut count, mut out) = (0u32, 0, Vec::new());
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

/// `bytes` in unpadded base64url.
pub fn base64url_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}
