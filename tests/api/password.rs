use serde_json::json;

use crate::helpers::{Backend, Body, Browser, PASSWORD, both, spawn_app};

both!(
    a_password_change_revokes_every_session_and_swaps_the_password,
    a_password_change_checks_the_policy_then_the_current_password,
    a_password_change_needs_authentication,
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
