//! Browsers (API.md "Browsers"): cross-site writes refused before anything else, CORS for the
//! allowed origins only; and "A 405 carries Allow" on every registered path.

use std::collections::BTreeSet;

use serde_json::json;

use crate::helpers::{
    Backend, Body, Browser, PASSWORD, Response, TestApp, both, spawn_app, spawn_with, unique_email,
};

both!(
    foreign_and_null_origins_cannot_write,
    cross_site_fetches_without_origin_cannot_write,
    the_refusal_comes_before_routing_authentication_and_the_body,
    refused_writes_change_nothing,
    own_and_allowed_origins_and_plain_clients_write,
    the_public_url_is_the_only_own_origin_when_set,
    reads_from_any_origin_are_not_refused,
    a_preflight_from_an_allowed_origin_gets_204_and_the_cors_headers,
    other_origins_get_no_cors_header,
    answers_to_an_allowed_origin_carry_the_cors_headers_errors_included,
    without_allowed_origins_cors_adds_nothing,
    every_registered_path_answers_a_wrong_method_with_405_and_its_allow,
);

const ALLOWED: &str = "https://app.example.com";
const FOREIGN: &str = "https://evil.example.net";

async fn spawn_allowing(backend: Backend) -> TestApp {
    spawn_with(backend, |settings| {
        settings.allowed_origins = format!("{ALLOWED}, http://localhost:5173").parse().unwrap();
    })
    .await
}

fn port(app: &TestApp) -> u16 {
    app.base.rsplit(':').next().unwrap().parse().unwrap()
}

fn some_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// One request of every unsafe method, on routes with and without authentication and bodies
/// (and one method no route answers).
fn writes() -> Vec<(&'static str, String, Body<'static>)> {
    let signup = json!({"email": unique_email(), "password": PASSWORD});
    vec![
        ("POST", "/api/access/signup".into(), Body::Json(signup)),
        (
            "POST",
            "/api/access/login".into(),
            Body::Form(&[("username", "someone@example.com"), ("password", PASSWORD)]),
        ),
        ("POST", "/api/access/refresh".into(), Body::Empty),
        ("POST", "/api/access/logout".into(), Body::Empty),
        ("POST", "/api/access/logout-all".into(), Body::Empty),
        (
            "PATCH",
            "/api/access/password".into(),
            Body::Json(json!({"current_password": PASSWORD, "new_password": "another passphrase"})),
        ),
        (
            "DELETE",
            format!("/api/access/sessions/{}", some_id()),
            Body::Empty,
        ),
        (
            "POST",
            "/api/roles".into(),
            Body::Json(json!({"slug": "editors", "name": "Editors"})),
        ),
        (
            "PATCH",
            format!("/api/users/{}", some_id()),
            Body::Json(json!({"name": "x"})),
        ),
        ("DELETE", format!("/api/users/{}", some_id()), Body::Empty),
        ("PUT", "/api/access/me".into(), Body::Empty),
    ]
}

/// A `403` problem saying the cross-site request was refused, stamped like every answer.
fn assert_refused(response: &Response, what: &str) {
    assert_eq!(
        response.status,
        403,
        "{what}: {}",
        String::from_utf8_lossy(&response.body)
    );
    let problem = response.problem(403);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.to_lowercase().contains("cross-site request refused"),
        "{what}: {detail}"
    );
    assert!(response.header("x-request-id").is_some(), "{what}");
    assert!(
        response.header("access-control-allow-origin").is_none(),
        "{what}"
    );
}

fn assert_not_refused(response: &Response, what: &str) {
    let refused = response.status == 403
        && response.json()["detail"]
            .as_str()
            .is_some_and(|detail| detail.to_lowercase().contains("cross-site"));
    assert!(
        !refused,
        "{what} was refused: {}",
        String::from_utf8_lossy(&response.body)
    );
}

async fn foreign_and_null_origins_cannot_write(backend: Backend) {
    let app = spawn_allowing(backend).await;
    let (browser, _) = app.logged_in().await;
    for origin in [
        FOREIGN,
        "null",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://sub.app.example.com",
        "not an origin",
        // A page on another port of the same host is another origin.
        format!("http://localhost:{}", port(&app) + 1).as_str(),
    ] {
        for (method, path, body) in writes() {
            let response = browser
                .send(method, &path, &[("origin", origin)], body)
                .await;
            assert_refused(&response, &format!("{method} {path} from {origin}"));
        }
    }
    // Still logged in: nothing was revoked on the way.
    assert_eq!(browser.me().await.status, 200);
}

async fn cross_site_fetches_without_origin_cannot_write(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    for (method, path, body) in writes() {
        let response = browser
            .send(method, &path, &[("sec-fetch-site", "cross-site")], body)
            .await;
        assert_refused(&response, &format!("{method} {path} cross-site"));
    }
    for site in ["same-origin", "same-site", "none"] {
        let response = browser
            .send(
                "POST",
                "/api/access/signup",
                &[("sec-fetch-site", site)],
                Body::Json(json!({"email": unique_email(), "password": PASSWORD})),
            )
            .await;
        assert_eq!(response.status, 201, "Sec-Fetch-Site: {site}");
    }
}

async fn the_refusal_comes_before_routing_authentication_and_the_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let foreign = [("origin", FOREIGN)];
    // Authentication: no credentials, yet 403, not 401.
    let response = browser
        .send("POST", "/api/access/logout-all", &foreign, Body::Empty)
        .await;
    assert_refused(&response, "logout-all without credentials");
    // Routing: no such path, yet 403, not 404.
    let response = browser
        .send("POST", "/api/nowhere", &foreign, Body::Empty)
        .await;
    assert_refused(&response, "an unknown path");
    // The body: over the limit (by declared length), not JSON, the wrong type: never read.
    for (content_type, bytes) in [
        ("application/json", vec![b' '; 1 << 20]),
        ("application/json", b"{not json".to_vec()),
        ("text/plain", b"hello".to_vec()),
    ] {
        let response = browser
            .send(
                "POST",
                "/api/access/signup",
                &foreign,
                Body::Raw(content_type, bytes),
            )
            .await;
        assert_refused(&response, content_type);
    }
    // The refusal is a problem like any other answer under /api/.
    assert_eq!(
        response.header("cache-control").as_deref(),
        Some("no-store")
    );
}

async fn refused_writes_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let email = unique_email();
    let foreign = [("origin", FOREIGN)];
    let signup = browser
        .send(
            "POST",
            "/api/access/signup",
            &foreign,
            Body::Json(json!({"email": email, "password": PASSWORD})),
        )
        .await;
    assert_refused(&signup, "signup");
    // No user was created: the same email signs up (no 409) ...
    assert_eq!(browser.signup(&email, PASSWORD).await.status, 201);
    // ... and a login from a foreign page sets no cookie and opens no session.
    let login = browser
        .send(
            "POST",
            "/api/access/login",
            &[("origin", "null")],
            Body::Form(&[("username", &email), ("password", PASSWORD)]),
        )
        .await;
    assert_refused(&login, "login");
    assert!(
        login.headers.get("set-cookie").is_none(),
        "{:?}",
        login.headers
    );
    assert_eq!(browser.me().await.status, 401);

    assert_eq!(browser.login(&email, PASSWORD).await.status, 204);
    for (method, path, body) in [
        ("POST", "/api/access/logout", Body::Empty),
        ("POST", "/api/access/logout-all", Body::Empty),
        (
            "PATCH",
            "/api/access/password",
            Body::Json(json!({"current_password": PASSWORD, "new_password": "another passphrase"})),
        ),
    ] {
        let response = browser.send(method, path, &foreign, body).await;
        assert_refused(&response, path);
        assert!(response.headers.get("set-cookie").is_none(), "{path}");
    }
    let sessions = browser.sessions().await;
    assert_eq!(sessions.status, 200);
    let sid = sessions.json()[0]["id"].as_str().unwrap().to_owned();
    let revoke = browser
        .send(
            "DELETE",
            &format!("/api/access/sessions/{sid}"),
            &[("sec-fetch-site", "cross-site")],
            Body::Empty,
        )
        .await;
    assert_refused(&revoke, "revoke");
    // The session, the password and the cookies are as they were.
    assert_eq!(browser.me().await.status, 200);
    assert_eq!(browser.refresh().await.status, 204);
    assert_eq!(app.browser().login(&email, PASSWORD).await.status, 204);
}

async fn own_and_allowed_origins_and_plain_clients_write(backend: Backend) {
    let app = spawn_allowing(backend).await;
    let port = port(&app);
    let own_http = app.base.clone();
    // Without AUTHD_PUBLIC_URL the Host decides, whatever the scheme (TLS may end in front).
    let own_https = format!("https://127.0.0.1:{port}");
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("origin", own_http.as_str())],
        vec![("origin", own_https.as_str())],
        vec![("origin", ALLOWED)],
        vec![("origin", "https://APP.example.com:443")],
        vec![("origin", "http://localhost:5173")],
        vec![("origin", ALLOWED), ("sec-fetch-site", "cross-site")],
        vec![
            ("origin", own_http.as_str()),
            ("sec-fetch-site", "same-origin"),
        ],
        vec![("sec-fetch-site", "same-origin")],
        vec![("sec-fetch-site", "none")],
    ];
    for headers in cases {
        let browser = app.browser();
        let email = unique_email();
        let signup = browser
            .send(
                "POST",
                "/api/access/signup",
                &headers,
                Body::Json(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(signup.status, 201, "signup with {headers:?}");
        let login = browser
            .send(
                "POST",
                "/api/access/login",
                &headers,
                Body::Form(&[("username", &email), ("password", PASSWORD)]),
            )
            .await;
        assert_eq!(login.status, 204, "login with {headers:?}");
        assert!(browser.cookie("access_token").is_some());
        for (method, path, status) in [
            ("POST", "/api/access/refresh", 204),
            ("PUT", "/api/access/me", 405),
            ("POST", "/api/access/logout", 204),
        ] {
            let response = browser.send(method, path, &headers, Body::Empty).await;
            assert_eq!(response.status, status, "{method} {path} with {headers:?}");
        }
        assert_eq!(
            browser.me().await.status,
            401,
            "logged out with {headers:?}"
        );
    }
    // Another host or port of the same machine is not the server's own origin.
    for origin in [
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        "http://127.0.0.1".to_owned(),
    ] {
        let response = app
            .browser()
            .send(
                "POST",
                "/api/access/refresh",
                &[("origin", &origin)],
                Body::Empty,
            )
            .await;
        assert_refused(&response, &origin);
    }
}

async fn the_public_url_is_the_only_own_origin_when_set(backend: Backend) {
    let app = spawn_with(backend, |settings| {
        settings.public_url = Some("https://auth.example.com".parse().unwrap());
        settings.allowed_origins = ALLOWED.parse().unwrap();
    })
    .await;
    for (origin, passes) in [
        ("https://auth.example.com", true),
        ("https://Auth.Example.com:443", true),
        (ALLOWED, true),
        ("http://auth.example.com", false),
        ("https://auth.example.com:8443", false),
        // The request's Host no longer makes an origin the server's own.
        (app.base.as_str(), false),
        (format!("https://127.0.0.1:{}", port(&app)).as_str(), false),
    ] {
        let response = app
            .browser()
            .send(
                "POST",
                "/api/access/signup",
                &[("origin", origin)],
                Body::Json(json!({"email": unique_email(), "password": PASSWORD})),
            )
            .await;
        if passes {
            assert_eq!(response.status, 201, "{origin}");
        } else {
            assert_refused(&response, origin);
        }
    }
    // Plain clients are still untouched.
    assert_eq!(
        app.browser().signup(&unique_email(), PASSWORD).await.status,
        201
    );
}

async fn reads_from_any_origin_are_not_refused(backend: Backend) {
    let app = spawn_allowing(backend).await;
    let (browser, _) = app.logged_in().await;
    for headers in [
        &[("origin", FOREIGN)][..],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
    ] {
        let me = browser
            .send("GET", "/api/access/me", headers, Body::Empty)
            .await;
        assert_eq!(me.status, 200, "{headers:?}");
        assert_not_refused(&me, "GET /me");
        assert!(me.header("access-control-allow-origin").is_none());
        let health = browser.send("GET", "/health", headers, Body::Empty).await;
        assert_eq!(health.status, 200, "{headers:?}");
        let head = browser.send("HEAD", "/health", headers, Body::Empty).await;
        assert_ne!(head.status, 403, "{headers:?}");
        let options = browser
            .send("OPTIONS", "/api/access/login", headers, Body::Empty)
            .await;
        assert_eq!(options.status, 405, "{headers:?}");
    }
}

/// The comma-separated names of a header, lowercased.
fn listed(response: &Response, name: &str) -> BTreeSet<String> {
    response
        .header(name)
        .unwrap_or_default()
        .split(',')
        .map(|item| item.trim().to_lowercase())
        .filter(|item| !item.is_empty())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| item.to_lowercase()).collect()
}

fn cors_headers(response: &Response) -> Vec<String> {
    response
        .headers
        .keys()
        .map(|name| name.as_str().to_owned())
        .filter(|name| name.starts_with("access-control-"))
        .collect()
}

async fn preflight(
    browser: &Browser,
    path: &str,
    origin: &str,
    method: &str,
    headers: &str,
) -> Response {
    let mut sent = vec![
        ("origin", origin),
        ("access-control-request-method", method),
    ];
    if !headers.is_empty() {
        sent.push(("access-control-request-headers", headers));
    }
    browser.send("OPTIONS", path, &sent, Body::Empty).await
}

async fn a_preflight_from_an_allowed_origin_gets_204_and_the_cors_headers(backend: Backend) {
    let app = spawn_allowing(backend).await;
    let browser = app.browser();
    for (path, method, headers) in [
        ("/api/access/login", "POST", "content-type"),
        ("/api/access/me", "GET", "authorization, x-request-id"),
        (
            "/api/access/password",
            "PATCH",
            "Content-Type, Authorization",
        ),
        (format!("/api/users/{}", some_id()).as_str(), "DELETE", ""),
    ] {
        let response = preflight(&browser, path, ALLOWED, method, headers).await;
        let what = format!("preflight {method} {path}");
        assert_eq!(response.status, 204, "{what}: {:?}", response.body);
        assert!(response.body.is_empty(), "{what}");
        assert_eq!(
            response.header("access-control-allow-origin").as_deref(),
            Some(ALLOWED),
            "{what}"
        );
        assert_eq!(
            response
                .header("access-control-allow-credentials")
                .as_deref(),
            Some("true"),
            "{what}"
        );
        assert_eq!(
            listed(&response, "access-control-allow-methods"),
            set(&["GET", "POST", "PATCH", "DELETE"]),
            "{what}"
        );
        assert_eq!(
            listed(&response, "access-control-allow-headers"),
            set(&["Content-Type", "Authorization", "X-Request-Id"]),
            "{what}"
        );
        assert!(listed(&response, "vary").contains("origin"), "{what}");
    }
    // A second allowed origin is echoed as itself.
    let response = preflight(
        &browser,
        "/api/access/login",
        "http://localhost:5173",
        "POST",
        "",
    )
    .await;
    assert_eq!(response.status, 204);
    assert_eq!(
        response.header("access-control-allow-origin").as_deref(),
        Some("http://localhost:5173")
    );
    // What the lists do not allow is refused as a problem, without CORS headers.
    for (method, headers) in [("PUT", ""), ("POST", "x-custom")] {
        let response = preflight(&browser, "/api/access/login", ALLOWED, method, headers).await;
        response.problem(400);
        assert!(
            cors_headers(&response).is_empty(),
            "{method} {headers}: {:?}",
            cors_headers(&response)
        );
    }
}

async fn other_origins_get_no_cors_header(backend: Backend) {
    let app = spawn_allowing(backend).await;
    let (browser, _) = app.logged_in().await;
    for origin in [FOREIGN, "null", "http://app.example.com"] {
        // A preflight is an OPTIONS like any other: no route answers it.
        let response = preflight(
            &browser,
            "/api/access/login",
            origin,
            "POST",
            "content-type",
        )
        .await;
        let problem = response.problem(405);
        assert!(problem["detail"].is_string());
        assert_eq!(
            response.header("allow").as_deref(),
            Some("POST"),
            "{origin}"
        );
        assert!(
            cors_headers(&response).is_empty(),
            "{origin}: {:?}",
            response.headers
        );
        for (method, path, status) in [
            ("GET", "/api/access/me", 200),
            ("GET", "/health", 200),
            ("GET", "/api/nowhere", 404),
            ("POST", "/api/access/logout", 403),
        ] {
            let response = browser
                .send(method, path, &[("origin", origin)], Body::Empty)
                .await;
            assert_eq!(response.status, status, "{method} {path} from {origin}");
            assert!(
                cors_headers(&response).is_empty(),
                "{method} {path} from {origin}: {:?}",
                response.headers
            );
        }
    }
    // Nor do clients that send no Origin.
    let response = browser.me().await;
    assert_eq!(response.status, 200);
    assert!(cors_headers(&response).is_empty(), "{:?}", response.headers);
}

/// The CORS headers of an actual answer to the allowed origin.
fn assert_cors_for_allowed(response: &Response, what: &str) {
    assert_eq!(
        response.header("access-control-allow-origin").as_deref(),
        Some(ALLOWED),
        "{what}"
    );
    assert_eq!(
        response
            .header("access-control-allow-credentials")
            .as_deref(),
        Some("true"),
        "{what}"
    );
    assert!(listed(response, "vary").contains("origin"), "{what}");
}

async fn answers_to_an_allowed_origin_carry_the_cors_headers_errors_included(backend: Backend) {
    let app = spawn_allowing(backend).await;
    let browser = app.browser();
    let origin = [("origin", ALLOWED)];
    let email = unique_email();
    let body = || Body::Json(json!({"email": email, "password": PASSWORD}));
    let created = browser
        .send("POST", "/api/access/signup", &origin, body())
        .await;
    assert_eq!(created.status, 201);
    assert_cors_for_allowed(&created, "201");
    let taken = browser
        .send("POST", "/api/access/signup", &origin, body())
        .await;
    taken.problem(409);
    assert_cors_for_allowed(&taken, "409");
    let unauthenticated = browser
        .send("GET", "/api/access/me", &origin, Body::Empty)
        .await;
    unauthenticated.problem(401);
    assert_cors_for_allowed(&unauthenticated, "401");
    let login = browser
        .send(
            "POST",
            "/api/access/login",
            &origin,
            Body::Form(&[("username", &email), ("password", PASSWORD)]),
        )
        .await;
    assert_eq!(login.status, 204);
    assert_cors_for_allowed(&login, "login");
    assert!(login.set_cookie("access_token").is_some());
    let me = browser
        .send("GET", "/api/access/me", &origin, Body::Empty)
        .await;
    assert_eq!(me.status, 200);
    assert_cors_for_allowed(&me, "me");
    // A page may read the request id and Retry-After.
    assert_eq!(
        listed(&me, "access-control-expose-headers"),
        set(&["X-Request-Id", "Retry-After"])
    );
    let wrong_method = browser
        .send("PUT", "/api/access/me", &origin, Body::Empty)
        .await;
    wrong_method.problem(405);
    assert_cors_for_allowed(&wrong_method, "405");
    let unknown = browser
        .send("GET", "/api/nowhere", &origin, Body::Empty)
        .await;
    unknown.problem(404);
    assert_cors_for_allowed(&unknown, "404");
}

async fn without_allowed_origins_cors_adds_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, _) = app.logged_in().await;
    let response = preflight(
        &browser,
        "/api/access/login",
        ALLOWED,
        "POST",
        "content-type",
    )
    .await;
    response.problem(405);
    assert!(cors_headers(&response).is_empty(), "{:?}", response.headers);
    for origin in [ALLOWED, FOREIGN, app.base.as_str()] {
        let response = browser
            .send("GET", "/api/access/me", &[("origin", origin)], Body::Empty)
            .await;
        assert_eq!(response.status, 200);
        assert!(cors_headers(&response).is_empty(), "{:?}", response.headers);
        assert!(!listed(&response, "vary").contains("origin"), "{origin}");
    }
}

/// RFC 9110: a 405 lists in `Allow` exactly the methods the path answers. For every registered
/// path (the server's own table), every method is tried; those that are not 405 are the ones
/// the path answers, and each 405 must list exactly them.
async fn every_registered_path_answers_a_wrong_method_with_405_and_its_allow(backend: Backend) {
    let app = spawn_allowing(backend).await;
    let browser = app.browser();
    let methods = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
    ];
    let paths: Vec<&str> = authd_http::registered_paths().collect();
    assert!(paths.len() > 10, "{paths:?}");
    for template in paths {
        let path = template
            .replace("{sid}", &some_id())
            .replace("{id}", &some_id());
        let mut answers = Vec::new();
        for method in methods {
            let response = browser.send(method, &path, &[], Body::Empty).await;
            answers.push((method, response));
        }
        let answered: BTreeSet<String> = answers
            .iter()
            .filter(|(_, response)| response.status != 405)
            .map(|(method, _)| method.to_string())
            .collect();
        assert!(!answered.is_empty(), "{template} answers nothing");
        assert!(
            answered.len() < methods.len(),
            "{template} answers every method"
        );
        for (method, response) in &answers {
            if response.status != 405 {
                continue;
            }
            let allow = response
                .header("allow")
                .unwrap_or_else(|| panic!("{method} {template}: a 405 without Allow"));
            let allowed: BTreeSet<String> = allow
                .split(',')
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty())
                .collect();
            assert_eq!(allowed, answered, "{method} {template}: Allow: {allow}");
            if *method != "HEAD" {
                response.problem(405);
            }
        }
    }
}
