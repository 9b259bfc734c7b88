//! "Account recovery and email verification" of the contract, end to end: every email goes
//! through the outbox to a real SMTP server (tests/api/smtp.rs) and is read back decoded.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use authd::settings::Args;
use authd::{Application, Secret, Settings};
use authd_domain::{DeliveryRetry, LinkTemplate};
use clap::{Args as _, FromArgMatches as _};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, Body, Browser, PASSWORD, Response, TestApp, both, metrics_text, spawn_app, spawn_with,
    test_settings, unique_email,
};
use crate::roles::{ADMIN_EMAIL, ADMIN_PASSWORD};
use crate::smtp::{Delivered, SmtpSink};

both!(
    the_verification_email_verifies_the_address_once,
    recovery_bodies_are_validated,
    a_verification_email_is_resent_at_most_once_a_minute,
    a_reset_link_sets_a_new_password_and_ends_every_session,
    reset_requests_answer_alike_for_every_address,
    reset_links_go_at_most_once_a_minute_and_the_newest_spends_the_older,
    an_expired_reset_link_is_refused,
    of_ten_concurrent_confirms_of_one_link_exactly_one_wins,
    a_password_change_spends_the_reset_links_and_sends_a_notice,
    the_new_password_must_meet_the_policy_and_a_refusal_keeps_the_link,
    an_email_is_retried_until_the_smtp_server_takes_it,
    a_refused_signup_sends_nothing,
    operator_templates_replace_the_built_in_ones,
    a_broken_operator_template_stops_the_start_naming_the_file,
    with_verification_required_an_unverified_login_is_forbidden,
    deliveries_are_counted_in_the_metrics,
    an_email_change_by_an_admin_ends_the_links_sent_before,
);

const VERIFY_LINK: &str = "http://app.test/verify?token={token}";
const RESET_LINK: &str = "http://app.test/reset?token={token}";
const FROM: &str = "authd tests <no-reply@authd.test>";
const NEW_PASSWORD: &str = "a brand new passphrase";
/// The longest an email may take to arrive; it takes about one outbox poll (50 ms).
const ARRIVAL: Duration = Duration::from_secs(10);
/// How long to wait before asserting that nothing more arrived: many outbox polls.
const SETTLE: Duration = Duration::from_millis(500);

/// A server that sends its emails to `sink`, polling the outbox every 50 ms and retrying a
/// failed delivery after 200 ms (doubling, at most 1 s).
async fn spawn_mailing(
    backend: Backend,
    sink: &SmtpSink,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    spawn_with(backend, |settings| {
        settings.email.smtp_url = Some(Secret::new(sink.url()));
        settings.email.from = FROM.into();
        settings.email.verify_link = LinkTemplate::parse(VERIFY_LINK).unwrap();
        settings.email.reset_link = LinkTemplate::parse(RESET_LINK).unwrap();
        settings.email.poll = Duration::from_millis(50);
        settings.email.retry =
            DeliveryRetry::new(Duration::from_millis(200), Duration::from_secs(1), 10);
        settings.email.smtp_timeout = Duration::from_secs(2);
        configure(settings);
    })
    .await
}

fn is_verification(message: &Delivered) -> bool {
    message.has_link(VERIFY_LINK)
}

fn is_reset(message: &Delivered) -> bool {
    message.has_link(RESET_LINK)
}

/// The password-changed notice: the one email without a link.
fn is_notice(message: &Delivered) -> bool {
    !message.has_link(VERIFY_LINK) && !message.has_link(RESET_LINK)
}

async fn post(browser: &Browser, path: &str, body: Value) -> Response {
    browser.send("POST", path, &[], Body::Json(body)).await
}

async fn verify(browser: &Browser, token: &str) -> Response {
    post(browser, "/api/access/verify-email", json!({"token": token})).await
}

async fn resend(browser: &Browser) -> Response {
    browser
        .send("POST", "/api/access/verify-email/resend", &[], Body::Empty)
        .await
}

async fn request_reset(browser: &Browser, email: &str) -> Response {
    post(
        browser,
        "/api/access/password-reset",
        json!({"email": email}),
    )
    .await
}

async fn confirm(browser: &Browser, token: &str, new_password: &str) -> Response {
    let body = json!({"token": token, "new_password": new_password});
    post(browser, "/api/access/password-reset/confirm", body).await
}

/// Asserts an empty answer with this status.
fn assert_empty(response: &Response, status: u16) {
    assert_eq!(
        response.status,
        status,
        "body: {}",
        String::from_utf8_lossy(&response.body)
    );
    assert!(response.body.is_empty(), "{:?}", response.body);
}

/// Signs up `email`, asks for a reset link and returns its token.
async fn reset_token(app: &TestApp, sink: &SmtpSink, email: &str) -> String {
    assert_eq!(app.browser().signup(email, PASSWORD).await.status, 201);
    assert_empty(&request_reset(&app.browser(), email).await, 202);
    sink.wait_for(email, is_reset, ARRIVAL)
        .await
        .link_token(RESET_LINK)
}

/// Pretends every link token of the database was issued 61 s ago, past the one-a-minute
/// limit (Postgres only: the memory store's clock cannot be moved from outside).
async fn age_link_tokens(app: &TestApp) {
    let database = app.database.as_ref().expect("the Postgres backend");
    database
        .execute("UPDATE link_tokens SET created_at = created_at - interval '61 seconds'")
        .await
        .unwrap();
}

async fn the_verification_email_verifies_the_address_once(backend: Backend) {
    let sink = SmtpSink::start();
    let app = spawn_mailing(backend, &sink, |_| {}).await;
    let browser = app.browser();
    // The address as typed, which is where the email goes.
    let email = format!("Ada.{}@Example.COM", uuid::Uuid::now_v7().simple());
    assert_eq!(browser.signup(&email, PASSWORD).await.status, 201);

    let delivered = sink.wait_for(&email, is_verification, ARRIVAL).await;
    assert_eq!(delivered.to, email);
    assert_eq!(delivered.envelope_to, email);
    assert_eq!(delivered.from, FROM);
    assert_eq!(delivered.subject, "Confirm your email address");
    assert_eq!(delivered.content_type, "multipart/alternative");
    let token = delivered.link_token(VERIFY_LINK);
    assert_eq!(token.len(), 43, "{token}");
    let html = delivered.html.as_deref().expect("an HTML part");
    assert!(html.contains(&token), "no link in the HTML part:\n{html}");

    assert_eq!(browser.login(&email, PASSWORD).await.status, 204);
    assert_eq!(browser.me().await.json()["is_verified"], false);
    // The link is enough: whoever opens it needs no session.
    assert_empty(&verify(&app.browser(), &token).await, 204);
    assert_eq!(browser.me().await.json()["is_verified"], true);
    verify(&app.browser(), &token).await.problem(400);
    assert_eq!(sink.count_to(&email), 1);
}

async fn recovery_bodies_are_validated(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let unknown = "a".repeat(43);
    for token in [
        "short",
        &"*".repeat(43),
        &format!("{unknown}a"),
        &unknown,
        "",
    ] {
        verify(&browser, token).await.problem(400);
        confirm(&browser, token, NEW_PASSWORD).await.problem(400);
    }
    for body in [
        json!({}),
        json!({"token": null}),
        json!({"token": "a\u{0}b"}),
        json!({"token": 42}),
        json!({"token": ["x"]}),
    ] {
        let refused = post(&browser, "/api/access/verify-email", body.clone()).await;
        assert_eq!(refused.invalid_fields(), ["token"], "{body}");
        let mut with_password = body.as_object().unwrap().clone();
        with_password.insert("new_password".into(), json!(NEW_PASSWORD));
        let refused = post(
            &browser,
            "/api/access/password-reset/confirm",
            Value::Object(with_password),
        )
        .await;
        assert_eq!(refused.invalid_fields(), ["token"], "{body}");
    }
    let refused = post(&browser, "/api/access/password-reset/confirm", json!({})).await;
    assert_eq!(refused.invalid_fields(), ["token", "new_password"]);
    for email in [json!("not an email"), json!(null), json!(7)] {
        let refused = post(
            &browser,
            "/api/access/password-reset",
            json!({"email": email}),
        )
        .await;
        assert_eq!(refused.invalid_fields(), ["email"], "{email}");
    }
}

async fn a_verification_email_is_resent_at_most_once_a_minute(backend: Backend) {
    let sink = SmtpSink::start();
    let app = spawn_mailing(backend, &sink, |_| {}).await;
    resend(&app.browser()).await.problem(401);

    let (browser, email) = app.logged_in().await;
    let first = sink
        .wait_for(&email, is_verification, ARRIVAL)
        .await
        .link_token(VERIFY_LINK);
    // The signup email went less than a minute ago.
    let limited = resend(&browser).await;
    limited.problem(429);
    let retry_after: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");

    let token = if backend == Backend::Real {
        age_link_tokens(&app).await;
        assert_empty(&resend(&browser).await, 202);
        let second = sink
            .wait_for(
                &email,
                |message| is_verification(message) && message.link_token(VERIFY_LINK) != first,
                ARRIVAL,
            )
            .await;
        second.link_token(VERIFY_LINK)
    } else {
        first
    };
    assert_empty(&verify(&app.browser(), &token).await, 204);
    let sent = sink.count(&email, is_verification);

    // Verified: accepted, and nothing is sent.
    assert_empty(&resend(&browser).await, 202);
    actix_web::rt::time::sleep(SETTLE).await;
    assert_eq!(sink.count(&email, is_verification), sent);
}

async fn a_reset_link_sets_a_new_password_and_ends_every_session(backend: Backend) {
    let sink = SmtpSink::start();
    let app = spawn_mailing(backend, &sink, |_| {}).await;
    let (browser, email) = app.logged_in().await;
    let attacker = app.browser();
    for _ in 0..5 {
        attacker.login(&email, "wrong password").await.problem(401);
    }
    attacker.login(&email, PASSWORD).await.problem(429);

    assert_empty(&request_reset(&app.browser(), &email).await, 202);
    let delivered = sink.wait_for(&email, is_reset, ARRIVAL).await;
    assert_eq!(delivered.from, FROM);
    assert_eq!(delivered.subject, "Reset your password");
    assert_eq!(delivered.content_type, "multipart/alternative");
    let token = delivered.link_token(RESET_LINK);
    assert!(delivered.html.as_deref().unwrap().contains(&token));

    assert_empty(&confirm(&app.browser(), &token, NEW_PASSWORD).await, 204);
    browser.me().await.problem(401);
    browser.refresh().await.problem(401);
    let fresh = app.browser();
    // The back-off is cleared: the new password works at once, the old one is only wrong.
    assert_eq!(fresh.login(&email, NEW_PASSWORD).await.status, 204);
    app.browser().login(&email, PASSWORD).await.problem(401);
    // The link reached the address: it is verified.
    assert_eq!(fresh.me().await.json()["is_verified"], true);
    let notice = sink.wait_for(&email, is_notice, ARRIVAL).await;
    assert_eq!(notice.subject, "Your password was changed");
    confirm(&app.browser(), &token, "yet another passphrase")
        .await
        .problem(400);
}

/// The headers of an answer but those that differ between any two answers.
fn stable_headers(response: &Response) -> BTreeMap<String, Vec<String>> {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &response.headers {
        if ["x-request-id", "date"].contains(&name.as_str()) {
            continue;
        }
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(value.to_str().unwrap().to_owned());
    }
    headers
}

async fn reset_requests_answer_alike_for_every_address(backend: Backend) {
    let sink = SmtpSink::start();
    let app = spawn_mailing(backend, &sink, |settings| {
        settings.admin_email = Some(ADMIN_EMAIL.into());
        settings.admin_password = Some(Secret::new(ADMIN_PASSWORD));
    })
    .await;
    let admin = app.browser();
    assert_eq!(admin.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 204);
    // Accounts an admin creates get no verification email: the addresses start with none.
    let create = async |email: &str| {
        let body = json!({"email": email, "password": PASSWORD});
        let created = post(&admin, "/api/users", body).await;
        assert_eq!(created.status, 201);
        created.json()["id"].as_str().unwrap().to_owned()
    };
    let known = unique_email();
    create(&known).await;
    let inactive = unique_email();
    let id = create(&inactive).await;
    let deactivated = admin
        .send(
            "PATCH",
            &format!("/api/users/{id}"),
            &[],
            Body::Json(json!({"is_active": false})),
        )
        .await;
    assert_eq!(deactivated.status, 200);
    let unknown = unique_email();

    let client = app.browser();
    let mut answers = Vec::new();
    for email in [&unknown, &inactive, &known] {
        let answer = request_reset(&client, email).await;
        assert_empty(&answer, 202);
        answers.push(answer);
    }
    let expected = stable_headers(&answers[2]);
    for (answer, email) in answers.iter().zip([&unknown, &inactive]) {
        assert_eq!(stable_headers(answer), expected, "for {email}");
        assert_eq!(answer.body, answers[2].body);
    }

    sink.wait_for(&known, is_reset, ARRIVAL).await;
    actix_web::rt::time::sleep(SETTLE).await;
    assert_eq!(sink.count_to(&unknown), 0);
    assert_eq!(sink.count_to(&inactive), 0);
    assert_eq!(sink.count_to(&known), 1);
}

async fn reset_links_go_at_most_once_a_minute_and_the_newest_spends_the_older(backend: Backend) {
    let sink = SmtpSink::start();
    let app = spawn_mailing(backend, &sink, |_| {}).await;
    let email = unique_email();
    assert_eq!(app.browser().signup(&email, PASSWORD).await.status, 201);
    let client = app.browser();
    assert_empty(&request_reset(&client, &email).await, 202);
    assert_empty(&request_reset(&client, &email).await, 202);
    let first = sink
        .wait_for(&email, is_reset, ARRIVAL)
        .await
        .link_token(RESET_LINK);
    actix_web::rt::time::sleep(SETTLE).await;
    assert_eq!(sink.count(&email, is_reset), 1);

    if backend == Backend::Real {
        age_link_tokens(&app).await;
        assert_empty(&request_reset(&client, &email).await, 202);
        let second = sink
            .wait_for(
                &email,
                |message| is_reset(message) && message.link_token(RESET_LINK) != first,
                ARRIVAL,
            )
            .await
            .link_token(RESET_LINK);
        confirm(&client, &first, NEW_PASSWORD).await.problem(400);
        assert_empty(&confirm(&client, &second, NEW_PASSWORD).await, 204);
    }
}

async fn an_expired_reset_link_is_refused(backend: Backend) {
    let sink = SmtpSink::start();
    let app = spawn_mailing(backend, &sink, |settings| {
        settings.email.reset_ttl = Duration::from_secs(1);
    })
    .await;
    let email = unique_email();
    let token = reset_token(&app, &sink, &email).await;
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    confirm(&app.browser(), &token, NEW_PASSWORD)
        .await
        .problem(400);
    assert_eq!(app.browser().login(&email, PASSWORD).await.status, 204);
}

async fn of_ten_concurrent_confirms_of_one_link_exactly_one_wins(backend: Backend) {
    let sink = SmtpSink::start();
    let app = spawn_mailing(backend, &sink, |_| {}).await;
    let email = unique_email();
    let token = reset_token(&app, &sink, &email).await;
    let passwords: Vec<String> = (0..10).map(|n| format!("new passphrase {n}")).collect();
    let clients: Vec<Browser> = passwords.iter().map(|_| app.browser()).collect();
    let answers = join_all(
        clients
            .iter()
            .zip(&passwords)
            .map(|(client, password)| confirm(client, &token, password)),
    )
    .await;
    let statuses: Vec<u16> = answers.iter().map(|answer| answer.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 204).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        9,
        "{statuses:?}"
    );
    for refused in answers.iter().filter(|answer| answer.status == 400) {
        refused.problem(400);
    }
    let winner = statuses.iter().position(|s| *s == 204).unwrap();
    assert_eq!(
        app.browser().login(&email, &passwords[winner]).await.status,
        204
    );
    // One reset, one notice.
    sink.wait_for(&email, is_notice, ARRIVAL).await;
    actix_web::rt::time::sleep(SETTLE).await;
    assert_eq!(sink.count(&email, is_notice), 1);
}

async fn a_password_change_spends_the_reset_links_and_sends_a_notice(backend: Backend) {
    let sink = SmtpSink::start();
    let app = spawn_mailing(backend, &sink, |_| {}).await;
    let (browser, email) = app.logged_in().await;
    assert_empty(&request_reset(&app.browser(), &email).await, 202);
    let token = sink
        .wait_for(&email, is_reset, ARRIVAL)
        .await
        .link_token(RESET_LINK);
    let body = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    let changed = browser
        .send("PATCH", "/api/access/password", &[], Body::Json(body))
        .await;
    assert_eq!(changed.status, 204);
    confirm(&app.browser(), &token, "yet another passphrase")
        .await
        .problem(400);
    let notice = sink.wait_for(&email, is_notice, ARRIVAL).await;
    assert_eq!(notice.from, FROM);
    assert!(
        notice.text.as_deref().unwrap().contains(&email),
        "{notice:#?}"
    );
    assert_eq!(app.browser().login(&email, NEW_PASSWORD).await.status, 204);
}

async fn the_new_password_must_meet_the_policy_and_a_refusal_keeps_the_link(backend: Backend) {
    let sink = SmtpSink::start();
    let app = spawn_mailing(backend, &sink, |_| {}).await;
    let email = unique_email();
    let token = reset_token(&app, &sink, &email).await;
    let client = app.browser();
    let short = confirm(&client, &token, "short").await;
    assert_eq!(short.invalid_fields(), ["new_password"]);
    let same_as_email = confirm(&client, &token, &email).await;
    assert_eq!(same_as_email.invalid_fields(), ["new_password"]);
    assert_empty(&confirm(&client, &token, NEW_PASSWORD).await, 204);
    assert_eq!(app.browser().login(&email, NEW_PASSWORD).await.status, 204);
}

/// The value of `series` (name and labels exactly) in the Prometheus text, 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

async fn an_email_is_retried_until_the_smtp_server_takes_it(backend: Backend) {
    const FAILED: &str = "authd_emails_failed_total{kind=\"verify_email\"}";
    let mut sink = SmtpSink::start();
    let app = spawn_mailing(backend, &sink, |_| {}).await;
    let scraper = app.browser();
    let failed_before = sample(&metrics_text(&scraper).await, FAILED);
    sink.stop();

    let email = unique_email();
    // The request does not wait for SMTP: the email is only queued.
    assert_eq!(app.browser().signup(&email, PASSWORD).await.status, 201);
    let deadline = Instant::now() + ARRIVAL;
    loop {
        // The metrics are the whole process's; the stored error is this server's own.
        let failed = match &app.database {
            Some(database) => !database
                .texts("SELECT last_error AS value FROM outbox WHERE last_error IS NOT NULL")
                .await
                .unwrap()
                .is_empty(),
            None => sample(&metrics_text(&scraper).await, FAILED) > failed_before,
        };
        if failed {
            break;
        }
        assert!(Instant::now() < deadline, "no delivery failed");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sink.count_to(&email), 0);

    sink.restart();
    sink.wait_for(&email, is_verification, ARRIVAL).await;
    actix_web::rt::time::sleep(SETTLE).await;
    assert_eq!(sink.count_to(&email), 1);
}

async fn a_refused_signup_sends_nothing(backend: Backend) {
    let sink = SmtpSink::start();
    let app = spawn_mailing(backend, &sink, |_| {}).await;
    let browser = app.browser();
    let email = unique_email();
    assert_eq!(browser.signup(&email, PASSWORD).await.status, 201);
    browser.signup(&email, PASSWORD).await.problem(409);
    let shouted = email.to_uppercase();
    browser.signup(&shouted, PASSWORD).await.problem(409);
    sink.wait_for(&email, is_verification, ARRIVAL).await;
    actix_web::rt::time::sleep(SETTLE).await;
    assert_eq!(sink.count_to(&email), 1);
    assert_eq!(sink.count_to(&shouted), 0);
}

/// A fresh folder of operator templates holding `files`.
fn templates_dir(files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "authd-e2e-templates-{}",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

async fn operator_templates_replace_the_built_in_ones(backend: Backend) {
    let dir = templates_dir(&[("verify_email.subject.txt", "Welcome {{ email }}")]);
    let sink = SmtpSink::start();
    let app = spawn_mailing(backend, &sink, |settings| {
        settings.email.templates_dir = Some(dir.clone());
    })
    .await;
    let email = unique_email();
    assert_eq!(app.browser().signup(&email, PASSWORD).await.status, 201);
    let delivered = sink.wait_for(&email, is_verification, ARRIVAL).await;
    assert_eq!(delivered.subject, format!("Welcome {email}"));
    // The parts the folder does not have stay built in.
    assert_eq!(delivered.link_token(VERIFY_LINK).len(), 43);
    assert!(delivered.html.is_some());
    std::fs::remove_dir_all(dir).unwrap();
}

async fn a_broken_operator_template_stops_the_start_naming_the_file(backend: Backend) {
    let dir = templates_dir(&[("verify_email.txt", "Open {{ link ")]);
    let (mut settings, _database) = test_settings(backend).await;
    settings.email.templates_dir = Some(dir.clone());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let Err(error) = Application::build_on(settings, listener).await else {
        panic!("a server started with a broken template");
    };
    let error = format!("{error:#}");
    let file = dir.join("verify_email.txt");
    assert!(
        error.contains(&file.display().to_string()),
        "{file:?} not named in {error:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_link_setting_without_the_placeholder_is_refused_naming_it() {
    for (flag, variable) in [
        ("--reset-link", "AUTHD_RESET_LINK"),
        ("--verify-link", "AUTHD_VERIFY_LINK"),
    ] {
        let command = Args::augment_args(clap::Command::new("authd")).mut_args(|arg| arg.env(None));
        let matches = command
            .try_get_matches_from(["authd", flag, "http://app.test/reset?token="])
            .unwrap();
        let args = Args::from_arg_matches(&matches).unwrap();
        let error = Settings::try_from(args).expect_err("accepted a link without {token}");
        assert!(
            error.to_string().contains(variable),
            "{variable} not named in {error:#}"
        );
    }
}

async fn with_verification_required_an_unverified_login_is_forbidden(backend: Backend) {
    let sink = SmtpSink::start();
    let app = spawn_mailing(backend, &sink, |settings| {
        settings.email.require_verified = true;
    })
    .await;
    let browser = app.browser();
    let email = unique_email();
    assert_eq!(browser.signup(&email, PASSWORD).await.status, 201);

    let refused = browser.login(&email, PASSWORD).await;
    assert_eq!(refused.problem(403)["detail"], "Email address not verified");
    for name in ["access_token", "refresh_token"] {
        let set = refused.set_cookie(name);
        assert!(
            set.as_deref()
                .is_none_or(|line| line.starts_with(&format!("{name}=;"))),
            "{set:?}"
        );
        assert!(browser.cookie(name).is_none());
    }
    browser.login(&email, "wrong password").await.problem(401);

    let token = sink
        .wait_for(&email, is_verification, ARRIVAL)
        .await
        .link_token(VERIFY_LINK);
    assert_empty(&verify(&browser, &token).await, 204);
    assert_eq!(browser.login(&email, PASSWORD).await.status, 204);
    assert_eq!(browser.me().await.json()["is_verified"], true);
}

async fn deliveries_are_counted_in_the_metrics(backend: Backend) {
    let sink = SmtpSink::start();
    let app = spawn_mailing(backend, &sink, |_| {}).await;
    let email = unique_email();
    assert_eq!(app.browser().signup(&email, PASSWORD).await.status, 201);
    sink.wait_for(&email, is_verification, ARRIVAL).await;
    let scraper = app.browser();
    let deadline = Instant::now() + ARRIVAL;
    loop {
        // Counted once the SMTP server has answered, a moment after the file is written.
        let text = metrics_text(&scraper).await;
        let counted = sample(&text, "authd_emails_queued_total{kind=\"verify_email\"}") >= 1.0
            && sample(&text, "authd_emails_sent_total{kind=\"verify_email\"}") >= 1.0
            && text
                .lines()
                .any(|line| line.starts_with("authd_outbox_depth "));
        if counted {
            break;
        }
        assert!(Instant::now() < deadline, "not counted:\n{text}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An admin's change of a user's address leaves no link sent to the old one working (the
/// verification link and the reset link alike), and the new address unverified.
async fn an_email_change_by_an_admin_ends_the_links_sent_before(backend: Backend) {
    let sink = SmtpSink::start();
    let app = spawn_mailing(backend, &sink, |settings| {
        settings.admin_email = Some(ADMIN_EMAIL.into());
        settings.admin_password = Some(Secret::new(ADMIN_PASSWORD));
    })
    .await;
    let admin = app.browser();
    assert_eq!(admin.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 204);
    let email = unique_email();
    let signed_up = app.browser().signup(&email, PASSWORD).await;
    assert_eq!(signed_up.status, 201);
    let id = signed_up.json()["id"].as_str().unwrap().to_owned();
    let verification = sink
        .wait_for(&email, is_verification, ARRIVAL)
        .await
        .link_token(VERIFY_LINK);
    assert_empty(&request_reset(&app.browser(), &email).await, 202);
    let reset = sink
        .wait_for(&email, is_reset, ARRIVAL)
        .await
        .link_token(RESET_LINK);
    let patch = async |body: Value| {
        admin
            .send("PATCH", &format!("/api/users/{id}"), &[], Body::Json(body))
            .await
    };
    // Verified by the admin. That the mark spends no link is the contract suite's check (its
    // `verified_with_links` marks, then `links_work` uses both links), not this test's.
    let marked = patch(json!({"is_verified": true})).await;
    assert_eq!(marked.status, 200);
    assert_eq!(marked.json()["is_verified"], true);

    let new_email = unique_email();
    let moved = patch(json!({"email": new_email})).await;
    assert_eq!(moved.status, 200);
    assert_eq!(moved.json()["email"], new_email.as_str());
    assert_eq!(moved.json()["is_verified"], false);

    verify(&app.browser(), &verification).await.problem(400);
    confirm(&app.browser(), &reset, NEW_PASSWORD)
        .await
        .problem(400);
    let user = admin
        .send("GET", &format!("/api/users/{id}"), &[], Body::Empty)
        .await;
    assert_eq!(user.status, 200);
    assert_eq!(user.json()["is_verified"], false);
    assert_eq!(user.json()["email"], new_email.as_str());
    // The password is the one it was: the reset link changed nothing.
    assert_eq!(app.browser().login(&new_email, PASSWORD).await.status, 204);
}
