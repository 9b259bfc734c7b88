use serde_json::json;

use crate::helpers::{Backend, Body, PASSWORD, both, spawn_app, spawn_with, unique_email};

both!(
    login_sets_both_cookies_exactly,
    wrong_password_and_unknown_email_get_the_same_answer,
    login_refuses_non_forms_and_missing_fields,
    repeated_failures_are_throttled_even_with_the_right_password,
    failed_logins_are_capped_per_client_ip,
    cookies_have_no_secure_flag_when_configured_off,
);

async fn login_sets_both_cookies_exactly(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let email = unique_email();
    browser.signup(&email, PASSWORD).await;
    let response = browser.login(&email.to_uppercase(), PASSWORD).await;
    assert_eq!(response.status, 204);
    assert!(response.body.is_empty());
    let access = response.set_cookie("access_token").expect("access cookie");
    let refresh = response
        .set_cookie("refresh_token")
        .expect("refresh cookie");
    let attributes = |line: &str| {
        let mut parts: Vec<String> = line.split("; ").skip(1).map(str::to_owned).collect();
        parts.sort();
        parts
    };
    assert_eq!(
        attributes(&access),
        [
            "HttpOnly",
            "Max-Age=900",
            "Path=/",
            "SameSite=Lax",
            "Secure"
        ]
    );
    assert_eq!(
        attributes(&refresh),
        [
            "HttpOnly",
            "Max-Age=604800",
            "Path=/api/access",
            "SameSite=Strict",
            "Secure"
        ]
    );
    // The access token carries the contract's claims.
    let token = browser.cookie("access_token").unwrap();
    let claims = decode_claims(&token);
    for claim in [
        "iss", "aud", "sub", "sid", "jti", "iat", "exp", "typ", "email", "role", "su",
    ] {
        assert!(
            claims.get(claim).is_some(),
            "missing claim {claim}: {claims}"
        );
    }
    assert_eq!(claims["typ"], "access");
    assert_eq!(claims["role"], "application-access");
    assert_eq!(claims["su"], false);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    let refresh_claims = decode_claims(&browser.cookie("refresh_token").unwrap());
    assert_eq!(refresh_claims["typ"], "refresh");
    assert_eq!(refresh_claims["sid"], claims["sid"]);
}

/// The payload of a JWT, unverified (the test only reads what the server put there).
pub fn decode_claims(token: &str) -> serde_json::Value {
    jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(token)
        .expect("a JWT")
        .claims
}

async fn wrong_password_and_unknown_email_get_the_same_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let email = unique_email();
    browser.signup(&email, PASSWORD).await;
    let wrong = browser.login(&email, "wrong password").await;
    let unknown = browser.login(&unique_email(), "wrong password").await;
    assert_eq!(wrong.problem(401), unknown.problem(401));
    assert_eq!(wrong.header("www-authenticate").as_deref(), Some("Bearer"));
    assert!(wrong.set_cookie("access_token").is_none());
}

async fn login_refuses_non_forms_and_missing_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let json = browser
        .send(
            "POST",
            "/api/access/login",
            &[],
            Body::Json(json!({"username": "a@b.co", "password": PASSWORD})),
        )
        .await;
    json.problem(415);
    let missing = browser
        .send(
            "POST",
            "/api/access/login",
            &[],
            Body::Form(&[("username", "a@b.co")]),
        )
        .await;
    assert_eq!(missing.invalid_fields(), ["password"]);
    let empty = browser
        .send("POST", "/api/access/login", &[], Body::Empty)
        .await;
    assert_eq!(empty.invalid_fields(), ["username", "password"]);
}

async fn repeated_failures_are_throttled_even_with_the_right_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let email = unique_email();
    browser.signup(&email, PASSWORD).await;
    for _ in 0..5 {
        browser.login(&email, "wrong password").await.problem(401);
    }
    let throttled = browser.login(&email, PASSWORD).await;
    throttled.problem(429);
    let retry_after: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    // The lock is per account: another account from the same client is unaffected.
    let other = unique_email();
    browser.signup(&other, PASSWORD).await;
    assert_eq!(browser.login(&other, PASSWORD).await.status, 204);
    // After the 1 s lock, the right password works and resets the count.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(browser.login(&email, PASSWORD).await.status, 204);
    assert_eq!(browser.login(&email, "wrong password").await.status, 401);
    // Not reset, that failure would be the 6th in a row and lock the account for 2 s: a 429.
    assert_eq!(browser.login(&email, PASSWORD).await.status, 204);
}

async fn failed_logins_are_capped_per_client_ip(backend: Backend) {
    let app = spawn_with(backend, |settings| settings.login_ip_max_failures = 3).await;
    let browser = app.browser();
    for _ in 0..3 {
        browser
            .login(&unique_email(), "wrong password")
            .await
            .problem(401);
    }
    let email = unique_email();
    browser.signup(&email, PASSWORD).await;
    let capped = browser.login(&email, PASSWORD).await;
    capped.problem(429);
    assert!(
        capped
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 200
    );
}

async fn cookies_have_no_secure_flag_when_configured_off(backend: Backend) {
    let app = spawn_with(backend, |settings| settings.cookie_secure = false).await;
    let browser = app.browser();
    let email = unique_email();
    browser.signup(&email, PASSWORD).await;
    let response = browser.login(&email, PASSWORD).await;
    assert!(
        !response
            .set_cookie("access_token")
            .unwrap()
            .contains("Secure")
    );
    assert!(
        !response
            .set_cookie("refresh_token")
            .unwrap()
            .contains("Secure")
    );
}

/// Deactivation has no endpoint yet (the admin API comes later), so the test flips the flag in
/// the database: Postgres backend only.
#[actix_web::test]
async fn an_inactive_account_is_403_but_only_after_the_right_password() {
    let app = crate::helpers::spawn_app(Backend::Real).await;
    let browser = app.browser();
    let email = unique_email();
    browser.signup(&email, PASSWORD).await;
    let database = app.database.as_ref().unwrap();
    let changed = database
        .execute(&format!(
            "UPDATE users SET is_active = false WHERE email = '{email}'"
        ))
        .await
        .unwrap();
    assert_eq!(changed, 1);
    browser.login(&email, "wrong password").await.problem(401);
    let inactive = browser.login(&email, PASSWORD).await;
    assert_eq!(inactive.problem(403)["detail"], "This account is inactive");
    assert!(inactive.set_cookie("access_token").is_none());
}
