use crate::helpers::{Backend, Browser, both, spawn_app};

both!(
    logout_revokes_the_session_on_the_next_request,
    logout_with_only_the_refresh_cookie_works,
    logout_without_a_live_session_is_401_and_clears_cookies,
    logout_all_revokes_every_session,
);

async fn logout_revokes_the_session_on_the_next_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, _) = app.logged_in().await;
    let (access, refresh) = browser.tokens();
    let response = browser.logout().await;
    assert_eq!(response.status, 204);
    response.assert_clears_session_cookies();
    Browser::me_with_bearer(&app.base, &access)
        .await
        .problem(401);
    let replay = app.browser();
    replay.set_cookie("refresh_token", &refresh);
    replay.refresh().await.problem(401);
}

async fn logout_with_only_the_refresh_cookie_works(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, _) = app.logged_in().await;
    let access = browser.cookie("access_token").unwrap();
    browser.forget_cookie("access_token");
    let response = browser.logout().await;
    assert_eq!(response.status, 204);
    response.assert_clears_session_cookies();
    Browser::me_with_bearer(&app.base, &access)
        .await
        .problem(401);
}

async fn logout_without_a_live_session_is_401_and_clears_cookies(backend: Backend) {
    let app = spawn_app(backend).await;
    let anonymous = app.browser().logout().await;
    anonymous.problem(401);
    anonymous.assert_clears_session_cookies();
    let (browser, _) = app.logged_in().await;
    let (access, refresh) = browser.tokens();
    assert_eq!(browser.logout().await.status, 204);
    let again = app.browser();
    again.set_cookie("access_token", &access);
    again.set_cookie("refresh_token", &refresh);
    let refused = again.logout().await;
    refused.problem(401);
    refused.assert_clears_session_cookies();
}

async fn logout_all_revokes_every_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let (first, email) = app.logged_in().await;
    let second = app.browser();
    assert_eq!(
        second.login(&email, crate::helpers::PASSWORD).await.status,
        204
    );
    let response = first
        .send(
            "POST",
            "/api/access/logout-all",
            &[],
            crate::helpers::Body::Empty,
        )
        .await;
    assert_eq!(response.status, 204);
    response.assert_clears_session_cookies();
    second.me().await.problem(401);
    second.refresh().await.problem(401);
    let anonymous = app
        .browser()
        .send(
            "POST",
            "/api/access/logout-all",
            &[],
            crate::helpers::Body::Empty,
        )
        .await;
    anonymous.problem(401);
}
