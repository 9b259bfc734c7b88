use crate::helpers::{Backend, Body, Browser, base64url_encode, both, spawn_app};
use crate::login::decode_claims;

both!(
    me_answers_with_the_cookie_or_the_bearer_header,
    bearer_header_wins_over_the_cookie_and_other_schemes_are_ignored,
    missing_or_bad_tokens_are_401_with_www_authenticate,
    forged_tokens_are_refused,
);

async fn me_answers_with_the_cookie_or_the_bearer_header(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, email) = app.logged_in().await;
    let by_cookie = browser.me().await;
    assert_eq!(by_cookie.status, 200);
    assert_eq!(by_cookie.json()["email"], email.as_str());
    let token = browser.cookie("access_token").unwrap();
    let by_bearer = Browser::me_with_bearer(&app.base, &token).await;
    assert_eq!(by_bearer.status, 200);
    assert_eq!(by_bearer.json(), by_cookie.json());
}

async fn bearer_header_wins_over_the_cookie_and_other_schemes_are_ignored(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, _) = app.logged_in().await;
    let bad_bearer = browser
        .send(
            "GET",
            "/api/access/me",
            &[("authorization", "Bearer junk")],
            Body::Empty,
        )
        .await;
    bad_bearer.problem(401);
    let basic = browser
        .send(
            "GET",
            "/api/access/me",
            &[("authorization", "Basic dXNlcjpwYXNz")],
            Body::Empty,
        )
        .await;
    assert_eq!(basic.status, 200);
}

async fn missing_or_bad_tokens_are_401_with_www_authenticate(backend: Backend) {
    let app = spawn_app(backend).await;
    let anonymous = app.browser().me().await;
    anonymous.problem(401);
    assert_eq!(
        anonymous.header("www-authenticate").as_deref(),
        Some("Bearer")
    );
    let (browser, _) = app.logged_in().await;
    // A refresh token is not an access token.
    let refresh = browser.cookie("refresh_token").unwrap();
    Browser::me_with_bearer(&app.base, &refresh)
        .await
        .problem(401);
}

async fn forged_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, _) = app.logged_in().await;
    let token = browser.cookie("access_token").unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    // alg none, same claims and header type, no signature.
    let header = base64url_encode(br#"{"alg":"none","typ":"at+jwt"}"#);
    let unsigned = format!("{header}.{}.", parts[1]);
    Browser::me_with_bearer(&app.base, &unsigned)
        .await
        .problem(401);
    // Claims changed (superuser), signature kept.
    let mut claims = decode_claims(&token);
    claims["su"] = serde_json::Value::Bool(true);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        base64url_encode(claims.to_string().as_bytes()),
        parts[2]
    );
    Browser::me_with_bearer(&app.base, &tampered)
        .await
        .problem(401);
    // A token from another server's key: unknown kid.
    let stranger = spawn_app(Backend::Memory).await;
    let (other, _) = stranger.logged_in().await;
    Browser::me_with_bearer(&app.base, &other.cookie("access_token").unwrap())
        .await
        .problem(401);
}
