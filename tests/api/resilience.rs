//! Postgres is the truth, Redis the fast path; outages are 503s that heal by themselves; several
//! instances agree. These need the real services, so they run on Postgres + Redis only.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::helpers::{
    Backend, Body, Browser, PASSWORD, eventually, spawn_with, start, test_settings, unique_email,
};
use crate::proxy::Proxy;

#[actix_web::test]
async fn flushing_redis_never_revives_a_revoked_session_or_a_used_refresh_token() {
    let app = spawn_with(Backend::Real, |settings| {
        settings.refresh_grace = Duration::from_secs(1)
    })
    .await;
    let (browser, email) = app.logged_in().await;
    let used_refresh = browser.cookie("refresh_token").unwrap();
    assert_eq!(browser.refresh().await.status, 204);
    let other = app.browser();
    assert_eq!(other.login(&email, PASSWORD).await.status, 204);
    let revoked_access = other.cookie("access_token").unwrap();
    assert_eq!(
        Browser::me_with_bearer(&app.base, &revoked_access)
            .await
            .status,
        200
    );
    assert_eq!(other.logout().await.status, 204);
    actix_web::rt::time::sleep(Duration::from_millis(1100)).await;

    app.flush_redis().await;

    Browser::me_with_bearer(&app.base, &revoked_access)
        .await
        .problem(401);
    // The used token is past its grace window: reuse, which also ends its session.
    let thief = app.browser();
    thief.set_cookie("refresh_token", &used_refresh);
    thief.refresh().await.problem(401);
    browser.me().await.problem(401);
}

#[actix_web::test]
async fn instances_sharing_postgres_and_redis_agree_on_rotation_revocation_and_throttling() {
    let first = spawn_with(Backend::Real, |_| {}).await;
    let second = first.sibling().await;
    let (browser, email) = first.logged_in().await;
    let token = browser.cookie("refresh_token").unwrap();
    let tabs: Vec<Browser> = (0..6)
        .map(|i| {
            if i % 2 == 0 {
                first.browser()
            } else {
                second.browser()
            }
        })
        .collect();
    for tab in &tabs {
        tab.set_cookie("refresh_token", &token);
    }
    let responses = join_all(tabs.iter().map(|tab| tab.refresh())).await;
    assert!(
        responses.iter().all(|r| r.status == 204),
        "{:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let pairs: Vec<_> = tabs.iter().map(|t| t.tokens()).collect();
    assert!(
        pairs.windows(2).all(|w| w[0] == w[1]),
        "instances minted different pairs"
    );

    // Revoked on one instance, refused by the other on the very next request.
    let access = pairs[0].0.clone();
    assert_eq!(
        Browser::me_with_bearer(&second.base, &access).await.status,
        200
    );
    let on_first = first.browser();
    on_first.set_cookie("access_token", &access);
    assert_eq!(on_first.logout().await.status, 204);
    Browser::me_with_bearer(&second.base, &access)
        .await
        .problem(401);

    // Failures counted on one instance lock the account on the other.
    for _ in 0..5 {
        first
            .browser()
            .login(&email, "wrong password")
            .await
            .problem(401);
    }
    second.browser().login(&email, PASSWORD).await.problem(429);
}

#[actix_web::test]
async fn a_database_outage_is_a_503_naming_it_and_the_server_recovers() {
    let (mut settings, database) = test_settings(Backend::Real).await;
    let database = database.unwrap();
    let proxy = Proxy::for_database(&mut settings, &database).await;
    let app = start(settings, Some(database)).await;
    let (browser, email) = app.logged_in().await;

    proxy.cut();
    let signup = app.browser().signup(&unique_email(), PASSWORD).await;
    let problem = signup.problem(503);
    assert!(
        problem["detail"].as_str().unwrap().contains("database"),
        "{problem}"
    );
    app.browser().login(&email, PASSWORD).await.problem(503);
    browser.refresh().await.problem(503);

    proxy.restore();
    eventually("a signup after the database came back", 201, async || {
        app.browser().signup(&unique_email(), PASSWORD).await.status
    })
    .await;
    // Nothing was revoked because of the outage.
    assert_eq!(browser.refresh().await.status, 204);
    assert_eq!(browser.me().await.status, 200);
}

#[actix_web::test]
async fn a_redis_outage_falls_back_to_postgres_or_answers_503_and_the_server_recovers() {
    let (mut settings, database) = test_settings(Backend::Real).await;
    let proxy = Proxy::for_redis(&mut settings).await;
    let app = start(settings, database).await;
    let (browser, email) = app.logged_in().await;

    proxy.cut();
    // Reads fall back to Postgres, the truth.
    assert_eq!(browser.me().await.status, 200);
    // A revocation needs the cache to drop its mark first: 503, and nothing revoked.
    let logout = browser.logout().await;
    let problem = logout.problem(503);
    assert!(
        problem["detail"].as_str().unwrap().contains("cache"),
        "{problem}"
    );
    // The throttle's counters are in Redis: a login cannot be admitted, so it fails closed.
    let login = app.browser().login(&email, PASSWORD).await;
    let problem = login.problem(503);
    assert!(
        problem["detail"].as_str().unwrap().contains("cache"),
        "{problem}"
    );
    assert!(login.set_cookie("access_token").is_none());

    proxy.restore();
    assert_eq!(browser.me().await.status, 200);
    eventually("a logout after Redis came back", 204, async || {
        browser.logout().await.status
    })
    .await;
    browser.me().await.problem(401);
    assert_eq!(app.browser().login(&email, PASSWORD).await.status, 204);
}

#[actix_web::test]
async fn a_statement_blocked_by_a_row_lock_is_a_503_naming_the_database_then_heals() {
    let timeout = Duration::from_millis(300);
    let app = spawn_with(Backend::Real, |settings| {
        settings.db_statement_timeout = timeout;
    })
    .await;
    let (browser, _email) = app.logged_in().await;
    let change = || {
        let body = serde_json::json!({
            "current_password": PASSWORD,
            "new_password": "a brand new passphrase",
        });
        browser.send("PATCH", "/api/access/password", &[], Body::Json(body))
    };
    let prober = app.browser();
    let ready = || prober.send("GET", "/ready", &[], Body::Empty);
    assert_eq!(ready().await.status, 200);

    // Another client holds every user row: the password change must update its user's row.
    let database = app.database.as_ref().unwrap();
    let lock = database
        .hold_transaction("SELECT id FROM users FOR UPDATE")
        .await
        .unwrap();
    let started = Instant::now();
    let response = change().await;
    let waited = started.elapsed();
    let problem = response.problem(503);
    assert!(
        problem["detail"].as_str().unwrap().contains("database"),
        "{problem}"
    );
    assert!(waited < timeout * 10, "answered after {waited:?}");
    // Readiness says so while timeouts happen.
    let not_ready = ready().await;
    assert_eq!(
        not_ready.problem(503)["checks"]["database"],
        "unavailable",
        "{:?}",
        not_ready.json()
    );
    // The change was rolled back whole: the session still works.
    assert_eq!(browser.me().await.status, 200);

    lock.release().await.unwrap();
    eventually("ready after the lock was released", 200, async || {
        ready().await.status
    })
    .await;
    let changed = change().await;
    assert_eq!(
        changed.status,
        204,
        "{}",
        String::from_utf8_lossy(&changed.body)
    );
}
