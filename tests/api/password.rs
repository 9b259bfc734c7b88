use serde_json::json;

use crate::helpers::{Backend, Body, Browser, PASSWORD, both, spawn_app, unique_email};
use crate::roles::spawn_with_admin;

both!(
    a_password_change_revokes_every_session_and_swaps_the_password,
    a_password_change_checks_the_policy_then_the_current_password,
    a_password_change_needs_authentication,
    a_password_change_follows_an_address_the_admin_changed,
);

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn change(browser: &Browser, current: &str, new: &str) -> crate::helpers::Response {
    let body = json!({"current_password": current, "new_password": new});
    browser
        .send("PATCH", "/api/access/password", &[], Body::Json(body))
        .await
}

async fn a_password_change_revokes_every_session_and_swaps_the_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, email) = app.logged_in().await;
    let other_device = app.browser();
    assert_eq!(other_device.login(&email, PASSWORD).await.status, 204);
    let access = browser.cookie("access_token").unwrap();
    let response = change(&browser, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(response.status, 204);
    response.assert_clears_session_cookies();
    Browser::me_with_bearer(&app.base, &access)
        .await
        .problem(401);
    other_device.me().await.problem(401);
    other_device.refresh().await.problem(401);
    let fresh = app.browser();
    fresh.login(&email, PASSWORD).await.problem(401);
    assert_eq!(fresh.login(&email, NEW_PASSWORD).await.status, 204);
}

async fn a_password_change_checks_the_policy_then_the_current_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, email) = app.logged_in().await;
    // Policy first, even with a wrong current password.
    let short = change(&browser, "wrong password", "short").await;
    assert_eq!(short.invalid_fields(), ["new_password"]);
    let same_as_email = change(&browser, PASSWORD, &email).await;
    assert_eq!(same_as_email.invalid_fields(), ["new_password"]);
    let missing = browser
        .send("PATCH", "/api/access/password", &[], Body::Json(json!({})))
        .await;
    assert_eq!(
        missing.invalid_fields(),
        ["current_password", "new_password"]
    );
    let wrong = change(&browser, "wrong password", NEW_PASSWORD).await;
    wrong.problem(400);
    // Nothing changed: the session lives and the old password still works.
    assert_eq!(browser.me().await.status, 200);
    assert_eq!(app.browser().login(&email, PASSWORD).await.status, 204);
}

async fn a_password_change_needs_authentication(backend: Backend) {
    let app = spawn_app(backend).await;
    change(&app.browser(), PASSWORD, NEW_PASSWORD)
        .await
        .problem(401);
}

/// The current password is checked against the credentials of the caller's address as it is
/// now: after an admin moved it, a change still finds them, and the new password works at the
/// new address.
async fn a_password_change_follows_an_address_the_admin_changed(backend: Backend) {
    let (app, admin) = spawn_with_admin(backend).await;
    let (browser, _) = app.logged_in().await;
    let id = browser.me().await.json()["id"].as_str().unwrap().to_owned();
    let new_email = unique_email();
    let moved = admin
        .send(
            "PATCH",
            &format!("/api/users/{id}"),
            &[],
            Body::Json(json!({"email": new_email})),
        )
        .await;
    assert_eq!(moved.status, 200);

    let response = change(&browser, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(response.status, 204);
    let fresh = app.browser();
    fresh.login(&new_email, PASSWORD).await.problem(401);
    assert_eq!(fresh.login(&new_email, NEW_PASSWORD).await.status, 204);
}
