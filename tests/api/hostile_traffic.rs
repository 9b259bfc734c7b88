//! "Hostile traffic" of the contract: throttles counted at admission under concurrency, the
//! current password as a login, bounded work, and logins racing credential changes.

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{Backend, Body, Browser, PASSWORD, Response, both, spawn_with, unique_email};
use crate::roles::{ADMIN_EMAIL, ADMIN_PASSWORD};

both!(
    of_thirty_concurrent_wrong_passwords_exactly_five_are_checked,
    the_ip_cap_counts_at_admission_per_network,
    a_wrong_current_password_is_a_failed_login,
    an_overlong_password_is_refused_at_once_and_counted,
    a_full_hash_queue_is_503_and_not_counted,
    no_login_racing_a_password_change_keeps_a_session,
    no_login_racing_an_admin_password_set_or_deactivation_keeps_a_session,
);

/// How many answers had each status.
fn count(responses: &[Response], status: u16) -> usize {
    responses.iter().filter(|r| r.status == status).count()
}

fn retry_after(response: &Response) -> u64 {
    response
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds")
}

async fn of_thirty_concurrent_wrong_passwords_exactly_five_are_checked(backend: Backend) {
    let app = spawn_with(backend, |_| {}).await;
    let owner = app.browser();
    let email = unique_email();
    owner.signup(&email, PASSWORD).await;

    let attackers: Vec<Browser> = (0..30).map(|_| app.browser()).collect();
    let answers = join_all(
        attackers
            .iter()
            .map(|attacker| attacker.login(&email, "wrong password")),
    )
    .await;
    assert_eq!(count(&answers, 401), 5, "{:?}", statuses(&answers));
    assert_eq!(count(&answers, 429), 25, "{:?}", statuses(&answers));
    for refused in answers.iter().filter(|r| r.status == 429) {
        refused.problem(429);
        assert!(retry_after(refused) >= 1);
    }
    // The account is in back-off: even the right password is refused unchecked.
    owner.login(&email, PASSWORD).await.problem(429);
}

fn statuses(responses: &[Response]) -> Vec<u16> {
    responses.iter().map(|r| r.status).collect()
}

async fn the_ip_cap_counts_at_admission_per_network(backend: Backend) {
    let app = spawn_with(backend, |settings| {
        settings.login_ip_max_failures = 10;
        settings.trusted_proxies = "127.0.0.1/32".parse().unwrap();
    })
    .await;
    let browser = app.browser();
    let from = |ip: String, email: String| {
        let browser = &browser;
        async move {
            browser
                .send(
                    "POST",
                    "/api/access/login",
                    &[("x-forwarded-for", ip.as_str())],
                    Body::Form(&[("username", &email), ("password", "wrong password")]),
                )
                .await
        }
    };
    // Thirty addresses of one IPv6 /64, thirty accounts, all at once: one counter.
    let answers =
        join_all((0..30).map(|n| from(format!("2001:db8:7:8:{n:x}::1"), unique_email()))).await;
    assert_eq!(count(&answers, 401), 10, "{:?}", statuses(&answers));
    assert_eq!(count(&answers, 429), 20, "{:?}", statuses(&answers));
    // The next /64 is another network.
    assert_eq!(
        from("2001:db8:7:9::1".into(), unique_email()).await.status,
        401
    );

    // An IPv4 address and its IPv4-mapped IPv6 form are one client.
    for _ in 0..10 {
        assert_eq!(from("192.0.2.9".into(), unique_email()).await.status, 401);
    }
    let mapped = from("::ffff:192.0.2.9".into(), unique_email()).await;
    mapped.problem(429);
    assert!(retry_after(&mapped) > 200);
}

async fn change_password(browser: &Browser, current: &str, new: &str) -> Response {
    browser
        .send(
            "PATCH",
            "/api/access/password",
            &[],
            Body::Json(json!({"current_password": current, "new_password": new})),
        )
        .await
}

async fn a_wrong_current_password_is_a_failed_login(backend: Backend) {
    let app = spawn_with(backend, |_| {}).await;
    let (browser, email) = app.logged_in().await;
    // Four wrong guesses through the password change, one through the login form: the same
    // counter.
    for _ in 0..4 {
        change_password(&browser, "a wrong guess", "a new passphrase")
            .await
            .problem(400);
    }
    app.browser()
        .login(&email, "a wrong guess")
        .await
        .problem(401);
    let refused = change_password(&browser, PASSWORD, "a new passphrase").await;
    refused.problem(429);
    assert!(retry_after(&refused) >= 1);
    // Nothing was checked: the password is unchanged, and the session still works.
    assert_eq!(browser.me().await.status, 200);
    app.browser().login(&email, PASSWORD).await.problem(429);
}

async fn an_overlong_password_is_refused_at_once_and_counted(backend: Backend) {
    let app = spawn_with(backend, |_| {}).await;
    let owner = app.browser();
    let email = unique_email();
    owner.signup(&email, PASSWORD).await;
    // Within the body limit, past the 1024 bytes a login checks; one that only NFKC makes too
    // long (U+FDFA is 3 bytes and 33 once normalised).
    let long = "x".repeat(40_000);
    let growing = "\u{FDFA}".repeat(100);
    for password in [&long, &growing, &long, &growing, &long] {
        owner.login(&email, password).await.problem(401);
    }
    owner.login(&email, PASSWORD).await.problem(429);
}

async fn a_full_hash_queue_is_503_and_not_counted(backend: Backend) {
    // Hashes slow enough that a burst finds both threads busy and the one queue place taken.
    let app = spawn_with(backend, |settings| {
        settings.argon2 = authd_crypto::Argon2Settings {
            memory_kib: 64 * 1024,
            iterations: 4,
            parallelism: 1,
        };
        settings.hash_queue_max = 1;
    })
    .await;
    // Twelve accounts at once (so no account back-off applies): a hashing thread per core,
    // one waiting, the rest refused.
    let emails: Vec<String> = (0..12).map(|_| unique_email()).collect();
    let clients: Vec<Browser> = emails.iter().map(|_| app.browser()).collect();
    let answers = join_all(
        clients
            .iter()
            .zip(&emails)
            .map(|(client, email)| client.login(email, "wrong password")),
    )
    .await;
    assert_eq!(
        count(&answers, 401) + count(&answers, 503),
        12,
        "{:?}",
        statuses(&answers)
    );
    let (busy, busy_email) = answers
        .iter()
        .zip(&emails)
        .find(|(answer, _)| answer.status == 503)
        .unwrap_or_else(|| panic!("no attempt found the queue full: {:?}", statuses(&answers)));
    let problem = busy.problem(503);
    assert!(
        problem["detail"].as_str().unwrap().contains("busy"),
        "{problem}"
    );
    assert_eq!(busy.header("retry-after").as_deref(), Some("1"));
    // The refused attempt was not counted: its account still has all five failures left.
    let attacker = app.browser();
    for _ in 0..5 {
        attacker
            .login(busy_email, "wrong password")
            .await
            .problem(401);
    }
    attacker
        .login(busy_email, "wrong password")
        .await
        .problem(429);
}

/// Rounds of a login with the current password racing a change that ends every session; after
/// each, the login either failed or its session is dead.
async fn assert_no_session_survives(
    rounds: usize,
    login: &Browser,
    email: &str,
    password_of_round: impl Fn(usize) -> String,
    change: impl AsyncFn(usize) -> u16,
) {
    for round in 0..rounds {
        login.forget_cookie("access_token");
        login.forget_cookie("refresh_token");
        let password = password_of_round(round);
        let (logged_in, changed) =
            futures_util::join!(login.login(email, &password), change(round));
        assert!(
            matches!(changed, 200 | 204),
            "round {round}: the change answered {changed}"
        );
        assert!(
            matches!(logged_in.status, 204 | 401 | 403),
            "round {round}: {}",
            logged_in.status
        );
        if logged_in.status == 204 {
            assert_eq!(login.me().await.status, 401, "round {round}");
            assert_eq!(login.refresh().await.status, 401, "round {round}");
        }
    }
}

fn passphrase(round: usize) -> String {
    format!("passphrase number {round}")
}

async fn no_login_racing_a_password_change_keeps_a_session(backend: Backend) {
    let app = spawn_with(backend, |settings| settings.login_max_failures = 1_000).await;
    let owner = app.browser();
    let email = unique_email();
    owner.signup(&email, &passphrase(0)).await;
    let racer = app.browser();
    assert_no_session_survives(20, &racer, &email, passphrase, async |round| {
        assert_eq!(owner.login(&email, &passphrase(round)).await.status, 204);
        change_password(&owner, &passphrase(round), &passphrase(round + 1))
            .await
            .status
    })
    .await;
}

async fn no_login_racing_an_admin_password_set_or_deactivation_keeps_a_session(backend: Backend) {
    let app = spawn_with(backend, |settings| {
        settings.admin_email = Some(ADMIN_EMAIL.into());
        settings.admin_password = Some(authd::Secret::new(ADMIN_PASSWORD));
        settings.login_max_failures = 1_000;
    })
    .await;
    let admin = app.browser();
    assert_eq!(admin.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 204);
    let email = unique_email();
    let created = admin
        .send(
            "POST",
            "/api/users",
            &[],
            Body::Json(json!({"email": email, "password": passphrase(0)})),
        )
        .await;
    assert_eq!(created.status, 201);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let path = format!("/api/users/{id}");
    let racer = app.browser();
    // Even rounds set a new password; odd rounds deactivate, then the next round reactivates.
    assert_no_session_survives(
        20,
        &racer,
        &email,
        |round| passphrase(round + round % 2),
        async |round| {
            let body = if round % 2 == 0 {
                json!({"password": passphrase(round + 2), "is_active": true})
            } else {
                json!({"is_active": false})
            };
            admin
                .send("PATCH", &path, &[], Body::Json(body))
                .await
                .status
        },
    )
    .await;
}
