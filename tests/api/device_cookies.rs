//! Device cookies (OWASP): an account's owner is never locked out by a stranger's guesses on a
//! device the owner has used.

use crate::helpers::{Backend, Browser, PASSWORD, both, spawn_app, unique_email};

both!(
    every_login_sets_the_device_cookie_exactly,
    the_owners_device_is_not_held_back_by_the_accounts_back_off,
    a_devices_own_failures_count_against_it_alone,
    another_accounts_or_a_forged_device_cookie_counts_as_none,
);

/// Five wrong guesses from a fresh client: the account is in back-off.
async fn lock_out(app: &crate::helpers::TestApp, email: &str) {
    let stranger = app.browser();
    for _ in 0..5 {
        stranger.login(email, "a wrong guess").await.problem(401);
    }
    stranger.login(email, PASSWORD).await.problem(429);
}

/// A signed-up user who logged in once on `device` (which keeps its device cookie).
async fn owner(app: &crate::helpers::TestApp) -> (Browser, String) {
    let device = app.browser();
    let email = unique_email();
    assert_eq!(device.signup(&email, PASSWORD).await.status, 201);
    assert_eq!(device.login(&email, PASSWORD).await.status, 204);
    assert!(device.cookie("device_token").is_some());
    (device, email)
}

async fn every_login_sets_the_device_cookie_exactly(backend: Backend) {
    let app = spawn_app(backend).await;
    let (device, email) = owner(&app).await;
    let first = device.cookie("device_token").unwrap();
    let response = device.login(&email, PASSWORD).await;
    let cookie = response.set_cookie("device_token").expect("device cookie");
    let mut attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
    attributes.sort_unstable();
    assert_eq!(
        attributes,
        [
            "HttpOnly",
            "Max-Age=31536000",
            "Path=/api/access/login",
            "SameSite=Strict",
            "Secure"
        ]
    );
    // A fresh one at each login; a logout leaves it.
    assert_ne!(device.cookie("device_token").unwrap(), first);
    let logout = device.logout().await;
    assert!(logout.set_cookie("device_token").is_none());
}

async fn the_owners_device_is_not_held_back_by_the_accounts_back_off(backend: Backend) {
    let app = spawn_app(backend).await;
    let (device, email) = owner(&app).await;
    device.logout().await;
    lock_out(&app, &email).await;
    assert_eq!(device.login(&email, PASSWORD).await.status, 204);
    assert_eq!(device.me().await.status, 200);
    // The owner's success did not lift the stranger's back-off.
    app.browser().login(&email, PASSWORD).await.problem(429);
}

async fn a_devices_own_failures_count_against_it_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let (device, email) = owner(&app).await;
    for _ in 0..5 {
        device.login(&email, "a wrong guess").await.problem(401);
    }
    let refused = device.login(&email, PASSWORD).await;
    refused.problem(429);
    assert!(refused.header("retry-after").is_some());
    // The account itself was not touched: another device of the owner signs in.
    assert_eq!(app.browser().login(&email, PASSWORD).await.status, 204);
}

async fn another_accounts_or_a_forged_device_cookie_counts_as_none(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ada, ada_email) = owner(&app).await;
    let (bob, _) = owner(&app).await;
    lock_out(&app, &ada_email).await;

    let borrowed = app.browser();
    borrowed.set_cookie("device_token", &bob.cookie("device_token").unwrap());
    borrowed.login(&ada_email, PASSWORD).await.problem(429);

    let forged = app.browser();
    let mut token = ada.cookie("device_token").unwrap();
    token.push('x');
    forged.set_cookie("device_token", &token);
    forged.login(&ada_email, PASSWORD).await.problem(429);

    assert_eq!(ada.login(&ada_email, PASSWORD).await.status, 204);
}
