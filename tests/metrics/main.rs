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
#[allow(dead_code)]
#[path = "../api/smtp.rs"]
mod smtp;

use std::time::{Duration, Instant};

use helpers::{Backend, Body, PASSWORD, metrics_text, spawn_app, spawn_with, unique_email};
use serde_json::json;
use smtp::SmtpSink;

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

const VERIFY_LINK: &str = "http://app.test/verify?token={token}";
const RESET_LINK: &str = "http://app.test/reset?token={token}";
const ARRIVAL: Duration = Duration::from_secs(10);

/// Waits until `series` has moved by at least `delta` since `before`.
async fn wait_for_delta(scraper: &helpers::Browser, before: &str, series: &str, delta: f64) {
    let deadline = Instant::now() + ARRIVAL;
    loop {
        let moved = sample(&metrics_text(scraper).await, series) - sample(before, series);
        if moved >= delta {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} moved by {moved}, not {delta}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every email is counted by kind once when queued and once per delivery attempt: sent,
/// failed (tried again) or dead (given up).
#[actix_web::test]
async fn emails_are_counted_by_kind_when_queued_sent_failed_and_given_up() {
    let _alone = ONE_AT_A_TIME.lock().await;
    for backend in [Backend::Memory, Backend::Real] {
        let mut sink = SmtpSink::start();
        let app = spawn_with(backend, |settings| {
            settings.email.smtp_url = Some(authd::Secret::new(sink.url()));
            settings.email.verify_link = authd_domain::LinkTemplate::parse(VERIFY_LINK).unwrap();
            settings.email.reset_link = authd_domain::LinkTemplate::parse(RESET_LINK).unwrap();
            settings.email.poll = Duration::from_millis(50);
            // Two attempts: a failure, then the email is given up.
            settings.email.retry = authd_domain::DeliveryRetry::new(
                Duration::from_millis(200),
                Duration::from_secs(1),
                2,
            );
        })
        .await;
        let scraper = app.browser();
        let before = metrics_text(&scraper).await;

        let (browser, email) = app.logged_in().await;
        sink.wait_for(&email, |m| m.has_link(VERIFY_LINK), ARRIVAL)
            .await;
        let reset = json!({"email": email});
        let requested = browser
            .send("POST", "/api/access/password-reset", &[], Body::Json(reset))
            .await;
        assert_eq!(requested.status, 202);
        let token = sink
            .wait_for(&email, |m| m.has_link(RESET_LINK), ARRIVAL)
            .await
            .link_token(RESET_LINK);
        let confirm = json!({"token": token, "new_password": "a brand new passphrase"});
        let confirmed = browser
            .send(
                "POST",
                "/api/access/password-reset/confirm",
                &[],
                Body::Json(confirm),
            )
            .await;
        assert_eq!(confirmed.status, 204);
        assert_eq!(
            browser.login(&email, "a brand new passphrase").await.status,
            204
        );
        let change =
            json!({"current_password": "a brand new passphrase", "new_password": PASSWORD});
        let changed = browser
            .send("PATCH", "/api/access/password", &[], Body::Json(change))
            .await;
        assert_eq!(changed.status, 204);
        let sent = "authd_emails_sent_total{kind=\"password_changed\"}";
        wait_for_delta(&scraper, &before, sent, 2.0).await;

        sink.stop();
        let undeliverable = unique_email();
        assert_eq!(
            app.browser().signup(&undeliverable, PASSWORD).await.status,
            201
        );
        let dead = "authd_emails_dead_total{kind=\"verify_email\"}";
        wait_for_delta(&scraper, &before, dead, 1.0).await;
        // Nothing is left to move the counters: the deltas are final.
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        let after = metrics_text(&scraper).await;
        for (series, expected) in [
            ("authd_emails_queued_total{kind=\"verify_email\"}", 2.0),
            ("authd_emails_queued_total{kind=\"reset_password\"}", 1.0),
            ("authd_emails_queued_total{kind=\"password_changed\"}", 2.0),
            ("authd_emails_sent_total{kind=\"verify_email\"}", 1.0),
            ("authd_emails_sent_total{kind=\"reset_password\"}", 1.0),
            ("authd_emails_sent_total{kind=\"password_changed\"}", 2.0),
            ("authd_emails_failed_total{kind=\"verify_email\"}", 1.0),
            ("authd_emails_dead_total{kind=\"verify_email\"}", 1.0),
            ("authd_emails_failed_total{kind=\"password_changed\"}", 0.0),
            ("authd_emails_dead_total{kind=\"reset_password\"}", 0.0),
        ] {
            let moved = sample(&after, series) - sample(&before, series);
            assert_eq!(moved, expected, "{series} on {backend:?}");
        }
        // The given-up email no longer waits.
        assert_eq!(sample(&after, "authd_outbox_depth"), 0.0, "{after}");
        assert_eq!(sink.count_to(&undeliverable), 0);
    }
}
