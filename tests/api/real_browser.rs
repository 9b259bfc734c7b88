//! A real browser (API.md "Tokens, cookies and sessions" and "Browsers"): headless Chromium,
//! driven through chromedriver, signs up, logs in, reads `/me`, refreshes and logs out with
//! `fetch(..., {credentials: "include"})` from a page of an allowed origin, and holds the cookies
//! the contract says, none of them readable by script; a page on a foreign origin submits a login
//! form (login CSRF) and is refused.
//!
//! It needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them it
//! fails and says what is missing: it never skips.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::rt::time::{sleep, timeout};
use fantoccini::cookies::Cookie;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, both, spawn_with, unique_email};

both!(a_browser_signs_in_from_an_allowed_origin_and_a_foreign_login_form_is_refused);

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const INSTALL: &str = "the real-browser test needs Debian's chromium and chromium-driver \
    (`apt-get install -y chromium chromium-driver`; .ci/run installs them when missing)";
/// The whole scenario, browser start included (a few seconds when all is well).
const DEADLINE: Duration = Duration::from_secs(60);
/// The session cookies, and the device cookie that outlives them.
const AUTHD_COOKIES: [&str; 3] = ["access_token", "refresh_token", "device_token"];

/// The page both origins serve: a login form (its action set by the test) and `callAuthd`, one
/// call to authd as a front end makes it, answering the status, the body and what the page's own
/// script can read of the cookies.
const PAGE: &str = r#"<!doctype html>
<html>
<head><meta charset="utf-8"><title>authd browser test</title></head>
<body>
<form name="login" method="post">
  <input name="username"> <input name="password" type="password">
  <button type="submit">Log in</button>
</form>
<script>
window.callAuthd = async (url, method, kind, body) => {
  const init = {method, credentials: "include", headers: {}};
  if (kind === "json") {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  } else if (kind === "form") {
    init.body = new URLSearchParams(body);
  }
  try {
    const response = await fetch(url, init);
    return {status: response.status, body: await response.text(), cookies: document.cookie};
  } catch (error) {
    return {error: String(error), cookies: document.cookie};
  }
};
</script>
</body>
</html>
"#;

async fn a_browser_signs_in_from_an_allowed_origin_and_a_foreign_login_form_is_refused(
    backend: Backend,
) {
    timeout(DEADLINE, scenario(backend))
        .await
        .unwrap_or_else(|_| panic!("the real-browser test did not finish within {DEADLINE:?}"));
}

async fn scenario(backend: Backend) {
    // One page server, two origins and two sites: 127.0.0.1 is allowed, localhost is foreign
    // (authd itself is at 127.0.0.1 on another port: same site, other origin).
    let pages = PageServer::start();
    let allowed = format!("http://127.0.0.1:{}", pages.port);
    let foreign = format!("http://localhost:{}", pages.port);
    let app = spawn_with(backend, |settings| {
        settings.cookie_secure = false;
        settings.allowed_origins = allowed.parse().unwrap();
    })
    .await;
    let driver = Chromedriver::start().await;
    let browser = driver.browser().await;
    let tab = Tab {
        browser: &browser,
        app: &app,
    };

    let email = unique_email();
    signs_in_and_out_from_an_allowed_origin(&tab, &allowed, &email).await;
    a_foreign_login_form_is_refused(&tab, &foreign, &email).await;
    the_same_form_on_the_allowed_origin_logs_in(&tab, &allowed, &email).await;

    // Quits Chromium; on a failure above, dropping `driver` ends chromedriver and Chromium.
    browser.close().await.expect("close the browser session");
}

/// Signup (JSON, so a preflight), login (a form body), `/me`, refresh, logout, all cross-origin
/// with credentials: each answer readable by the page proves the CORS headers too.
async fn signs_in_and_out_from_an_allowed_origin(tab: &Tab<'_>, allowed: &str, email: &str) {
    let page = format!("{allowed}/");
    tab.goto(&page).await;

    let signup = json!({"email": email, "password": PASSWORD});
    let answer = tab
        .call("POST", "/api/access/signup", Payload::Json(signup))
        .await;
    assert_eq!(answer.status, 201, "signup: {}", answer.body);
    let credentials = json!({"username": email, "password": PASSWORD});
    let answer = tab
        .call("POST", "/api/access/login", Payload::Form(credentials))
        .await;
    assert_eq!(answer.status, 204, "login: {}", answer.body);
    let me = tab.call("GET", "/api/access/me", Payload::None).await;
    assert_eq!(me.status, 200, "/me: {}", me.body);
    let user: Value = serde_json::from_str(&me.body).expect("/me is JSON");
    assert_eq!(user["email"], email, "{user}");

    let logged_in = tab.authd_cookies().await;
    assert_session_cookies(&logged_in, tab.app);
    assert_device_cookie(&logged_in);

    tab.goto(&page).await;
    let answer = tab.call("POST", "/api/access/refresh", Payload::None).await;
    assert_eq!(answer.status, 204, "refresh: {}", answer.body);
    let refreshed = tab.authd_cookies().await;
    assert_session_cookies(&refreshed, tab.app);
    for name in ["access_token", "refresh_token"] {
        assert_ne!(
            refreshed[name].value(),
            logged_in[name].value(),
            "{name} was not rotated"
        );
    }

    tab.goto(&page).await;
    let answer = tab.call("POST", "/api/access/logout", Payload::None).await;
    assert_eq!(answer.status, 204, "logout: {}", answer.body);
    let answer = tab.call("GET", "/api/access/me", Payload::None).await;
    assert_eq!(answer.status, 401, "/me after logout: {}", answer.body);

    let logged_out = tab.authd_cookies().await;
    assert_no_session_cookie(&logged_out, "after the logout");
    // The device cookie says the device was used, not that it is signed in: logout keeps it.
    assert_device_cookie(&logged_out);
}

/// Login CSRF: a foreign page cannot read authd, and its login form is refused (403) before
/// any session is opened, so the browser is not signed in as the form's account.
async fn a_foreign_login_form_is_refused(tab: &Tab<'_>, foreign: &str, email: &str) {
    tab.goto(&format!("{foreign}/")).await;
    let read = tab.try_call("GET", "/health", Payload::None).await;
    assert!(
        read["error"].is_string(),
        "CORS let a foreign origin read authd: {read}"
    );

    tab.submit_login_form(email).await;
    let login_url = format!("{}/api/access/login", tab.app.base);
    let answered = within(async || {
        let url = tab.browser.current_url().await.expect("current url");
        url.as_str().starts_with(&login_url).then_some(())
    })
    .await;
    if answered.is_none() {
        // A 204 leaves the page where it is: the form was let through.
        let cookies = tab.authd_cookies().await;
        panic!(
            "the foreign login form was not refused: no answer page within 10 s; \
             authd's cookies now: {:?}",
            cookies.keys().collect::<Vec<_>>()
        );
    }
    let text = tab.body_text().await;
    let refusal: Value = text
        .find('{')
        .zip(text.rfind('}'))
        .and_then(|(start, end)| serde_json::from_str(&text[start..=end]).ok())
        .unwrap_or_else(|| panic!("the refusal is not problem+json: {text}"));
    assert_eq!(refusal["status"], 403, "{refusal}");

    let cookies = tab.authd_cookies().await;
    assert_no_session_cookie(&cookies, "after the foreign form");
    tab.goto(&format!("{}/api/access/me", tab.app.base)).await;
    let text = tab.body_text().await;
    assert!(text.contains("401"), "/me after the foreign form: {text}");
}

/// The control: the very form that was refused on the foreign page logs in from the allowed one
/// (`204`: the page stays, the cookies arrive).
async fn the_same_form_on_the_allowed_origin_logs_in(tab: &Tab<'_>, allowed: &str, email: &str) {
    tab.goto(&format!("{allowed}/")).await;
    tab.submit_login_form(email).await;
    let opened = within(async || {
        let me = tab.try_call("GET", "/api/access/me", Payload::None).await;
        (me["status"] == 200).then_some(())
    })
    .await;
    assert!(
        opened.is_some(),
        "the login form on the allowed origin opened no session within 10 s"
    );
    let cookies = tab.authd_cookies().await;
    assert_session_cookies(&cookies, tab.app);
}

/// The browser, and the authd it talks to.
struct Tab<'a> {
    browser: &'a Client,
    app: &'a TestApp,
}

/// What a page's fetch sends.
enum Payload {
    None,
    Json(Value),
    /// `URLSearchParams` of this object's fields.
    Form(Value),
}

/// What the page's fetch got back.
struct Answer {
    status: u16,
    body: String,
}

impl Tab<'_> {
    async fn goto(&self, url: &str) {
        self.browser
            .goto(url)
            .await
            .unwrap_or_else(|error| panic!("open {url}: {error}"));
    }

    async fn body_text(&self) -> String {
        let body = self
            .browser
            .find(Locator::Css("body"))
            .await
            .expect("a body");
        body.text().await.expect("its text")
    }

    /// `callAuthd` on the current page: the fetch must go through, and the page's script must
    /// see none of authd's cookies (they are all HttpOnly).
    async fn call(&self, method: &str, path: &str, payload: Payload) -> Answer {
        let answer = self.try_call(method, path, payload).await;
        assert!(
            answer["error"].is_null(),
            "{method} {path} failed in the browser: {answer}"
        );
        assert_script_sees_no_cookie(answer["cookies"].as_str().unwrap_or_default());
        Answer {
            status: u16::try_from(answer["status"].as_u64().expect("status")).expect("status"),
            body: answer["body"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// `callAuthd` on the current page, answered as the page saw it: `{status, body, cookies}`
    /// or `{error, cookies}`.
    async fn try_call(&self, method: &str, path: &str, payload: Payload) -> Value {
        let script = "const [url, method, kind, body, done] = arguments; \
                      window.callAuthd(url, method, kind, body).then(done);";
        let url = format!("{}{path}", self.app.base);
        let (kind, body) = match payload {
            Payload::None => ("none", Value::Null),
            Payload::Json(body) => ("json", body),
            Payload::Form(body) => ("form", body),
        };
        self.browser
            .execute_async(script, vec![json!(url), json!(method), json!(kind), body])
            .await
            .unwrap_or_else(|error| panic!("{method} {path} from the page: {error}"))
    }

    /// Fills the page's login form with the account's credentials and submits it to authd.
    async fn submit_login_form(&self, email: &str) {
        let action = format!("{}/api/access/login", self.app.base);
        self.browser
            .execute(
                "document.forms.login.action = arguments[0];",
                vec![json!(action)],
            )
            .await
            .expect("set the form's action");
        for (field, value) in [("username", email), ("password", PASSWORD)] {
            let input = format!("input[name={field}]");
            let input = self
                .browser
                .find(Locator::Css(&input))
                .await
                .expect("a field");
            input.send_keys(value).await.expect("type into the form");
        }
        let submit = self.browser.find(Locator::Css("button[type=submit]")).await;
        submit
            .expect("the submit button")
            .click()
            .await
            .expect("submit the form");
    }

    /// authd's cookies in the browser, read through WebDriver (which sees HttpOnly cookies) on
    /// an authd page whose path all their `Path`s cover; that page's script must see none.
    async fn authd_cookies(&self) -> BTreeMap<String, Cookie<'static>> {
        self.goto(&format!("{}/api/access/login", self.app.base))
            .await;
        let seen = self
            .browser
            .execute("return document.cookie;", vec![])
            .await
            .expect("document.cookie");
        assert_script_sees_no_cookie(seen.as_str().unwrap_or_default());
        self.browser
            .get_all_cookies()
            .await
            .expect("the browser's cookies")
            .into_iter()
            .map(|cookie| (cookie.name().to_owned(), cookie))
            .collect()
    }
}

fn assert_no_session_cookie(cookies: &BTreeMap<String, Cookie<'static>>, when: &str) {
    for name in ["access_token", "refresh_token"] {
        assert!(
            !cookies.contains_key(name),
            "{name} in the browser {when}: {:?}",
            cookies.get(name)
        );
    }
}

fn assert_script_sees_no_cookie(document_cookie: &str) {
    for name in AUTHD_COOKIES {
        assert!(
            !document_cookie.contains(name),
            "script can read {name}: document.cookie = {document_cookie:?}"
        );
    }
}

/// Both session cookies, with the contract's attributes: HttpOnly, not `Secure` (plain HTTP
/// here), `SameSite` and `Path` as specified, and living their tokens' lifetimes.
fn assert_session_cookies(cookies: &BTreeMap<String, Cookie<'static>>, app: &TestApp) {
    let expected = [
        ("access_token", "Lax", "/", app.settings.access_ttl),
        (
            "refresh_token",
            "Strict",
            "/api/access",
            app.settings.refresh_ttl,
        ),
    ];
    for (name, same_site, path, lifetime) in expected {
        let cookie = cookies
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in the browser: {cookies:?}"));
        assert_attributes(cookie, same_site, path, lifetime);
    }
}

fn assert_device_cookie(cookies: &BTreeMap<String, Cookie<'static>>) {
    let cookie = cookies
        .get("device_token")
        .unwrap_or_else(|| panic!("no device_token in the browser: {cookies:?}"));
    let year = Duration::from_secs(31_536_000);
    assert_attributes(cookie, "Strict", "/api/access/login", year);
}

fn assert_attributes(cookie: &Cookie<'static>, same_site: &str, path: &str, lifetime: Duration) {
    assert_eq!(cookie.http_only(), Some(true), "{cookie}");
    assert_ne!(cookie.secure(), Some(true), "{cookie}");
    assert_eq!(
        cookie.same_site().map(|s| s.to_string()).as_deref(),
        Some(same_site),
        "{cookie}"
    );
    assert_eq!(cookie.path(), Some(path), "{cookie}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let expected = i64::try_from(now + lifetime.as_secs()).expect("time");
    let expires = cookie
        .expires_datetime()
        .unwrap_or_else(|| panic!("{cookie} is a session cookie"))
        .unix_timestamp();
    assert!(
        (expires - expected).abs() <= 120,
        "{cookie} expires at {expires}, not about {expected}"
    );
}

/// Asks `probe` every 100 ms until it answers, for at most 10 s.
async fn within<T>(mut probe: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    for _ in 0..100 {
        if let Some(found) = probe().await {
            return Some(found);
        }
        sleep(Duration::from_millis(100)).await;
    }
    None
}

/// chromedriver on a free 127.0.0.1 port, in a process group of its own with the Chromium it
/// starts: dropping it kills the group and removes the browser's profile.
struct Chromedriver {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Chromedriver {
    async fn start() -> Self {
        for (path, package) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing (Debian package {package}): {INSTALL}"
            );
        }
        let dir =
            std::env::temp_dir().join(format!("authd-browser-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("a directory for the browser");
        let log = File::create(dir.join("chromedriver.log")).expect("chromedriver's log");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {CHROMEDRIVER}: {error}; {INSTALL}"));
        let mut driver = Self { child, port, dir };
        for _ in 0..100 {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!(
                    "{CHROMEDRIVER} exited ({status}) before listening; {INSTALL}. Its log:\n{}",
                    driver.log()
                );
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return driver;
            }
            sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{CHROMEDRIVER} did not listen on port {port} within 10 s. Its log:\n{}",
            driver.log()
        );
    }

    /// A WebDriver session on a fresh headless Chromium.
    async fn browser(&self) -> Client {
        let profile = self.dir.join("profile");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
            "timeouts": {"script": 10_000, "pageLoad": 10_000, "implicit": 0},
        });
        let capabilities = capabilities.as_object().cloned().expect("an object");
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "chromedriver could not start Chromium ({CHROMIUM}): {error}; {INSTALL}. \
                     chromedriver's log:\n{}",
                    self.log()
                )
            })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("chromedriver.log")).unwrap_or_default()
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium processes it started.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Serves `PAGE` at `/` (404 elsewhere) over plain HTTP/1.1 from 127.0.0.1, one thread per
/// connection: `http://127.0.0.1:{port}` and `http://localhost:{port}` are two origins of it.
struct PageServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PageServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the page server");
        let port = listener.local_addr().expect("its address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    std::thread::spawn(move || serve_page(stream));
                }
            }
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_page(mut stream: TcpStream) {
    // A browser may open a connection it never uses.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buffer = [0; 4096];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
        if request.len() > 65_536 {
            return;
        }
    }
    let request = String::from_utf8_lossy(&request);
    let path = request.split(' ').nth(1).unwrap_or_default();
    let (status, body) = if path == "/" {
        ("200 OK", PAGE)
    } else {
        ("404 Not Found", "")
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}
