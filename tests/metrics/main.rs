//! The metrics counters, in a test binary of their own: the Prometheus recorder is
//! process-wide, so in the end-to-end binary every other test's traffic moves the same
//! counters, and a counter that never moved would go unnoticed. Here nothing else runs, and
//! each delta must be exact.

// Test helpers outside #[test] functions: clippy.toml's test allowances do not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The end-to-end binary's helpers, of which this one uses a few.
#[allow(dead_code, unused_macros, unused_imports)]
#[path = "../api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../api/proxy.rs"]
mod proxy;

use helpers::{Backend, metrics_text, spawn_app};

/// The value of `series` (name and labels exactly) in `text`, 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// Held by each test for its whole run: tests running at once would count each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One test, the backends in turn: two tests would run at once and count each other.
#[actix_web::test]
async fn metrics_move_with_logins_refreshes_and_revocations() {
    let _alone = ONE_AT_A_TIME.lock().await;
    for backend in [Backend::Memory, Backend::Real] {
        let app = spawn_app(backend).await;
        let scraper = app.browser();
        let before = metrics_text(&scraper).await;
        let (browser, email) = app.logged_in().await;
        browser.login(&email, "wrong password").await;
        assert_eq!(browser.refresh().await.status, 204);
        assert_eq!(browser.logout().await.status, 204);
        let after = metrics_text(&scraper).await;
        for series in [
            "authd_logins_total{outcome=\"success\"}",
            "authd_logins_total{outcome=\"failure\"}",
            "authd_refreshes_total{outcome=\"success\"}",
            "authd_session_revocations_total{reason=\"logout\"}",
            "authd_http_requests_total{route=\"/api/access/refresh\",method=\"POST\",status=\"204\"}",
        ] {
            let moved = sample(&after, series) - sample(&before, series);
            assert_eq!(moved, 1.0, "{series} on {backend:?}");
        }
        assert!(after.contains(
            "authd_http_request_duration_seconds_bucket{route=\"/api/access/login\",method=\"POST\",le=\""
        ));
        if backend == Backend::Real {
            assert!(
                after.contains("authd_db_pool_size "),
                "no pool gauges in {after}"
            );
            assert!(
                after.contains("authd_db_pool_in_use ") && after.contains("authd_db_pool_waiting ")
            );
        }
    }
}

/// The periodic purge counts the sessions it deletes.
#[actix_web::test]
async fn the_session_purge_counts_the_sessions_it_deletes() {
    const SERIES: &str = "authd_sessions_purged_total";
    let _alone = ONE_AT_A_TIME.lock().await;
    let app = spawn_app(Backend::Real).await;
    let (browser, _email) = app.logged_in().await;
    app.database
        .as_ref()
        .unwrap()
        .execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
        .await
        .unwrap();
    let scraper = app.browser();
    let before = sample(&metrics_text(&scraper).await, SERIES);

    // An instance purges as it starts (then every minute).
    let _sibling = app.sibling().await;
    let mut purged = 0.0;
    for _ in 0..50 {
        purged = sample(&metrics_text(&scraper).await, SERIES) - before;
        if purged >= 1.0 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(purged, 1.0);
    // The session is gone, which reads as ended.
    browser.refresh().await.problem(401);
}
