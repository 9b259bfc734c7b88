//! Token types in the JOSE header (RFC 8725 §3.11, RFC 9068): an access token carries
//! `typ: at+jwt`, a refresh token `typ: refresh+jwt`, and a token whose header type does not
//! match its use is refused with 401, even when the server's own key signed it.

use josekit::jws::{EdDSA, JwsHeader};
use josekit::jwt::{self, JwtPayload};

use crate::helpers::{Backend, Browser, TestApp, both, spawn_app};
use crate::login::decode_claims;

both!(
    tokens_carry_their_type_in_the_header,
    an_access_token_under_another_header_type_is_401,
    a_refresh_token_under_another_header_type_is_401,
);

/// `token`'s claims re-signed with the server's own key (read from its key file) under the
/// header `typ` given, or none.
fn resigned(app: &TestApp, token: &str, typ: Option<&str>) -> String {
    let jwk = josekit::jwk::Jwk::from_bytes(std::fs::read(&app.settings.jwt_key_files[0]).unwrap())
        .unwrap();
    let signer = EdDSA.signer_from_jwk(&jwk).unwrap();
    let mut header = JwsHeader::new();
    header.set_key_id(jwk.key_id().unwrap());
    if let Some(typ) = typ {
        header.set_token_type(typ);
    }
    let claims = decode_claims(token);
    let payload = JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
    jwt::encode_with_signer(&payload, &header, &signer).unwrap()
}

/// The header `typ`, read by an independent JWT library.
fn header_type(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).unwrap().typ
}

async fn tokens_carry_their_type_in_the_header(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, _) = app.logged_in().await;
    for _ in 0..2 {
        let access = browser.cookie("access_token").unwrap();
        let refresh = browser.cookie("refresh_token").unwrap();
        assert_eq!(header_type(&access).as_deref(), Some("at+jwt"));
        assert_eq!(header_type(&refresh).as_deref(), Some("refresh+jwt"));
        // The claim stays as the contract names it.
        assert_eq!(decode_claims(&access)["typ"], "access");
        assert_eq!(decode_claims(&refresh)["typ"], "refresh");
        // And the same after a rotation.
        assert_eq!(browser.refresh().await.status, 204);
    }
}

async fn an_access_token_under_another_header_type_is_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, _) = app.logged_in().await;
    let token = browser.cookie("access_token").unwrap();
    // The re-signing is sound: under its own header type the token passes.
    let own = resigned(&app, &token, Some("at+jwt"));
    assert_eq!(Browser::me_with_bearer(&app.base, &own).await.status, 200);
    // The refresh token's type, the generic one of tokens issued before the upgrade, none.
    for typ in [Some("refresh+jwt"), Some("JWT"), None] {
        let relabelled = resigned(&app, &token, typ);
        let by_bearer = Browser::me_with_bearer(&app.base, &relabelled).await;
        by_bearer.problem(401);
        assert_eq!(
            by_bearer.header("www-authenticate").as_deref(),
            Some("Bearer")
        );
        let by_cookie = app.browser();
        by_cookie.set_cookie("access_token", &relabelled);
        by_cookie.me().await.problem(401);
    }
    // A refresh token relabelled as an access token: its claim still says what it is.
    let refresh = browser.cookie("refresh_token").unwrap();
    let relabelled = resigned(&app, &refresh, Some("at+jwt"));
    Browser::me_with_bearer(&app.base, &relabelled)
        .await
        .problem(401);
    assert_eq!(browser.me().await.status, 200);
}

async fn a_refresh_token_under_another_header_type_is_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, _) = app.logged_in().await;
    let token = browser.cookie("refresh_token").unwrap();
    for typ in [Some("at+jwt"), Some("JWT"), None] {
        let tab = app.browser();
        tab.set_cookie("refresh_token", &resigned(&app, &token, typ));
        tab.refresh().await.problem(401);
    }
    // An access token relabelled as a refresh token: refused by its claim.
    let access = browser.cookie("access_token").unwrap();
    let confused = app.browser();
    confused.set_cookie(
        "refresh_token",
        &resigned(&app, &access, Some("refresh+jwt")),
    );
    confused.refresh().await.problem(401);
    // Refused for the header alone, before the store was asked: the same claims under their
    // own header type still rotate (no reuse was seen), and the session lives on.
    let tab = app.browser();
    tab.set_cookie(
        "refresh_token",
        &resigned(&app, &token, Some("refresh+jwt")),
    );
    assert_eq!(tab.refresh().await.status, 204);
    assert_eq!(tab.me().await.status, 200);
    assert_eq!(browser.me().await.status, 200);
}
