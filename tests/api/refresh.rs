use std::time::Duration;

use futures_util::future::join_all;

use serde_json::json;

use crate::helpers::{
    Backend, Body, Browser, TestApp, base64url_decode, base64url_encode, both, spawn_app,
    spawn_with,
};
use crate::login::decode_claims;
use crate::roles::spawn_with_admin;

both!(
    refresh_rotates_the_pair,
    a_repeat_inside_the_grace_window_gets_the_same_pair,
    a_repeat_after_the_user_changed_still_gets_the_same_pair,
    concurrent_refreshes_with_one_token_all_get_the_same_pair,
    concurrent_refreshes_racing_a_demotion_all_get_the_same_pair,
    concurrent_es256_refreshes_get_the_very_same_pair,
    concurrent_hs256_refreshes_get_the_very_same_pair,
    an_es256_token_with_its_s_negated_is_reuse,
    a_repeat_after_the_window_revokes_the_session,
    a_token_two_exchanges_old_is_reuse,
    missing_invalid_or_wrong_type_refresh_tokens_are_401,
);

async fn refresh_rotates_the_pair(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, _) = app.logged_in().await;
    let (old_access, old_refresh) = browser.tokens();
    let response = browser.refresh().await;
    assert_eq!(response.status, 204);
    assert!(
        response
            .set_cookie("access_token")
            .unwrap()
            .contains("Max-Age=900")
    );
    assert!(
        response
            .set_cookie("refresh_token")
            .unwrap()
            .contains("Path=/api/access")
    );
    let (new_access, new_refresh) = browser.tokens();
    assert_ne!(new_access, old_access);
    assert_ne!(new_refresh, old_refresh);
    assert_eq!(browser.me().await.status, 200);
    // Same session: still one.
    assert_eq!(browser.sessions().await.json().as_array().unwrap().len(), 1);
}

async fn a_repeat_inside_the_grace_window_gets_the_same_pair(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, _) = app.logged_in().await;
    let old_refresh = browser.cookie("refresh_token").unwrap();
    assert_eq!(browser.refresh().await.status, 204);
    let first = browser.tokens();
    // Another tab still holds the old refresh token.
    let second = repeated(&app, &old_refresh).await;
    assert_eq!(first, second);
    // And the session lives on with the successor.
    assert_eq!(browser.refresh().await.status, 204);
    assert_eq!(browser.me().await.status, 200);
}

/// The repeat signs what the rotation signed: a promotion and a new role between the two do
/// not change the repeated access token; the next rotation carries them.
async fn a_repeat_after_the_user_changed_still_gets_the_same_pair(backend: Backend) {
    let (app, admin) = spawn_with_admin(backend).await;
    let editors = json!({"slug": "editors", "name": "Editors"});
    let created = admin
        .send("POST", "/api/roles", &[], Body::Json(editors))
        .await;
    assert_eq!(created.status, 201);
    let (browser, _) = app.logged_in().await;
    let id = browser.me().await.json()["id"].as_str().unwrap().to_owned();
    let old_refresh = browser.cookie("refresh_token").unwrap();
    assert_eq!(browser.refresh().await.status, 204);
    let first = browser.tokens();

    patch_user(
        &admin,
        &id,
        json!({"role": "editors", "is_superuser": true}),
    )
    .await;
    let second = repeated(&app, &old_refresh).await;
    assert_eq!(first, second);
    let claims = decode_claims(&second.0);
    assert_eq!(
        (&claims["role"], &claims["su"]),
        (&json!("application-access"), &json!(false))
    );

    assert_eq!(browser.refresh().await.status, 204);
    let claims = decode_claims(&browser.cookie("access_token").unwrap());
    assert_eq!(
        (&claims["role"], &claims["su"]),
        (&json!("editors"), &json!(true))
    );
}

async fn concurrent_refreshes_with_one_token_all_get_the_same_pair(backend: Backend) {
    concurrent_refreshes_from_a_login(spawn_app(backend).await).await;
}

// The repeats re-sign the successor: each algorithm must sign one message one way (ECDSA
// draws a fresh nonce per signature unless it is RFC 6979's).
async fn concurrent_es256_refreshes_get_the_very_same_pair(backend: Backend) {
    concurrent_refreshes_from_a_login(signing_with(backend, authd_crypto::Algorithm::ES256).await)
        .await;
}

async fn concurrent_hs256_refreshes_get_the_very_same_pair(backend: Backend) {
    concurrent_refreshes_from_a_login(signing_with(backend, authd_crypto::Algorithm::HS256).await)
        .await;
}

/// The exchanged token with its ECDSA `s` negated verifies too (a token signed before signing
/// was deterministic may have either `s`, so the verifier accepts both), but it is not the
/// string the successor's ids were sealed with: inside the grace window it is no repeat but
/// reuse, and the session ends.
async fn an_es256_token_with_its_s_negated_is_reuse(backend: Backend) {
    let app = signing_with(backend, authd_crypto::Algorithm::ES256).await;
    let (browser, _) = app.logged_in().await;
    let exchanged = browser.cookie("refresh_token").unwrap();
    assert_eq!(browser.refresh().await.status, 204);
    let twin = app.browser();
    twin.set_cookie("refresh_token", &with_s_negated(&exchanged));
    let reuse = twin.refresh().await;
    reuse.problem(401);
    reuse.assert_clears_session_cookies();
    browser.me().await.problem(401);
}

/// `token` (an ES256 JWS) with the `s` of its signature replaced by `n - s`, `n` being the
/// order of P-256: the other valid signature of the same message.
fn with_s_negated(token: &str) -> String {
    const P256_ORDER: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut signature = base64url_decode(signature).unwrap();
    assert_eq!(signature.len(), 64);
    let mut borrow = 0;
    for (byte, n) in signature[32..].iter_mut().zip(P256_ORDER).rev() {
        let difference = i16::from(n) - i16::from(*byte) - borrow;
        borrow = i16::from(difference < 0);
        *byte = u8::try_from(difference + 256 * borrow).unwrap();
    }
    let twin = format!("{signed}.{}", base64url_encode(&signature));
    assert_ne!(twin, token);
    twin
}

async fn concurrent_refreshes_from_a_login(app: TestApp) {
    let (browser, _) = app.logged_in().await;
    concurrent_refreshes_get_one_pair(&app, &browser, 6, std::future::ready(())).await;
}

/// A server that signs with a key of `algorithm`, made for it.
async fn signing_with(backend: Backend, algorithm: authd_crypto::Algorithm) -> TestApp {
    spawn_with(backend, |settings| {
        settings.jwt_algorithm = algorithm;
        settings.jwt_key_files.clear();
    })
    .await
}

/// `tabs` browsers refresh with one token at once, while `alongside` runs: every one gets the
/// very same new pair, which it returns.
async fn concurrent_refreshes_get_one_pair(
    app: &TestApp,
    browser: &Browser,
    tabs: usize,
    alongside: impl Future<Output = ()>,
) -> (String, String) {
    let token = browser.cookie("refresh_token").unwrap();
    let tabs: Vec<Browser> = (0..tabs).map(|_| app.browser()).collect();
    for tab in &tabs {
        tab.set_cookie("refresh_token", &token);
    }
    let (responses, ()) =
        futures_util::join!(join_all(tabs.iter().map(Browser::refresh)), alongside);
    assert!(responses.iter().all(|response| response.status == 204));
    let pairs: Vec<(String, String)> = tabs.iter().map(Browser::tokens).collect();
    assert!(
        pairs.windows(2).all(|w| w[0] == w[1]),
        "tabs got different pairs"
    );
    assert_ne!(pairs[0].1, token);
    pairs[0].clone()
}

/// Thirty tabs refresh with one token while an admin demotes the user: one rotates, the others
/// repeat it, and all get the very same pair, on whichever side of the demotion the rotation
/// fell. A repeat once the demotion has surely committed still gets that pair; the next
/// rotation carries the demotion.
async fn concurrent_refreshes_racing_a_demotion_all_get_the_same_pair(backend: Backend) {
    let (app, admin) = spawn_with_admin(backend).await;
    let (browser, _) = app.logged_in().await;
    let id = browser.me().await.json()["id"].as_str().unwrap().to_owned();
    patch_user(&admin, &id, json!({"is_superuser": true})).await;

    let demotion = patch_user(&admin, &id, json!({"is_superuser": false}));
    let pair = concurrent_refreshes_get_one_pair(&app, &browser, 30, demotion).await;
    // The browser still holds the token the tabs exchanged.
    assert_eq!(browser.refresh().await.status, 204);
    let late = browser.tokens();
    assert_eq!(late, pair);

    assert_eq!(browser.refresh().await.status, 204);
    let claims = decode_claims(&browser.cookie("access_token").unwrap());
    assert_eq!(claims["su"], false);
}

/// An admin's change to the user `id`, which must succeed.
async fn patch_user(admin: &Browser, id: &str, changes: serde_json::Value) {
    let path = format!("/api/users/{id}");
    let response = admin.send("PATCH", &path, &[], Body::Json(changes)).await;
    assert_eq!(response.status, 200);
}

/// The pair another tab gets by presenting `refresh_token`, which must succeed.
async fn repeated(app: &TestApp, refresh_token: &str) -> (String, String) {
    let tab = app.browser();
    tab.set_cookie("refresh_token", refresh_token);
    assert_eq!(tab.refresh().await.status, 204);
    tab.tokens()
}

async fn a_repeat_after_the_window_revokes_the_session(backend: Backend) {
    let app = spawn_with(backend, |settings| {
        settings.refresh_grace = Duration::from_secs(1)
    })
    .await;
    let (browser, _) = app.logged_in().await;
    let stolen = browser.cookie("refresh_token").unwrap();
    assert_eq!(browser.refresh().await.status, 204);
    actix_web::rt::time::sleep(Duration::from_millis(2100)).await;
    let thief = app.browser();
    thief.set_cookie("refresh_token", &stolen);
    let reuse = thief.refresh().await;
    reuse.problem(401);
    reuse.assert_clears_session_cookies();
    // The whole session is gone: the legitimate holder's tokens stop working at once.
    browser.me().await.problem(401);
    browser.refresh().await.problem(401);
}

async fn a_token_two_exchanges_old_is_reuse(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, _) = app.logged_in().await;
    let oldest = browser.cookie("refresh_token").unwrap();
    assert_eq!(browser.refresh().await.status, 204);
    assert_eq!(browser.refresh().await.status, 204);
    let thief = app.browser();
    thief.set_cookie("refresh_token", &oldest);
    thief.refresh().await.problem(401);
    browser.me().await.problem(401);
}

async fn missing_invalid_or_wrong_type_refresh_tokens_are_401(backend: Backend) {
    let app = spawn_app(backend).await;
    app.browser().refresh().await.problem(401);
    let junk = app.browser();
    junk.set_cookie("refresh_token", "not.a.token");
    junk.refresh().await.problem(401);
    let (browser, _) = app.logged_in().await;
    let access = browser.cookie("access_token").unwrap();
    let confused = app.browser();
    confused.set_cookie("refresh_token", &access);
    confused.refresh().await.problem(401);
    // A body and a content type are ignored.
    let with_body = browser
        .send(
            "POST",
            "/api/access/refresh",
            &[],
            Body::Raw("text/plain", b"hello".to_vec()),
        )
        .await;
    assert_eq!(with_body.status, 204);
}
