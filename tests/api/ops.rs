use std::time::Duration;

use authd::Secret;
use serde_json::{Value, json};

use crate::helpers::{Backend, Body, Browser, both, redis_url, spawn_app, start, test_settings};
use crate::proxy::Proxy;

both!(
    health_and_ready_answer_while_everything_is_up,
    an_access_token_verifies_with_nothing_but_the_jwks,
);

async fn health_and_ready_answer_while_everything_is_up(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let health = browser.send("GET", "/health", &[], Body::Empty).await;
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"status": "ok"}))
    );
    let ready = browser.send("GET", "/ready", &[], Body::Empty).await;
    assert_eq!(ready.status, 200);
    assert_eq!(
        ready.json(),
        json!({"status": "ok", "checks": {"database": "ok", "cache": "ok"}})
    );
}

/// An independent JWT library (jsonwebtoken), given only the JWKS document, accepts the token.
async fn an_access_token_verifies_with_nothing_but_the_jwks(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, email) = app.logged_in().await;
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(
        &app.browser()
            .send("GET", "/.well-known/jwks.json", &[], Body::Empty)
            .await
            .body,
    )
    .unwrap();
    let token = browser.cookie("access_token").unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    let kid = header.kid.expect("a kid in the header");
    let jwk = jwks.find(&kid).expect("the token's key is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&["authd"]);
    validation.set_issuer(&["authd"]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(&token, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["email"], email.as_str());
    assert_eq!(claims["typ"], "access");
}

#[actix_web::test]
async fn ready_names_each_unreachable_dependency_and_recovers() {
    let (mut settings, database) = test_settings(Backend::Real).await;
    let database_proxy = Proxy::start("127.0.0.1:5432".into()).await;
    let url = database.as_ref().unwrap().url.replacen(
        "127.0.0.1:5432",
        &format!("127.0.0.1:{}", database_proxy.port),
        1,
    );
    settings.database_url = Some(Secret::new(url));
    let cache_proxy = Proxy::start(
        redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned(),
    )
    .await;
    settings.redis_url = Some(Secret::new(format!(
        "redis://127.0.0.1:{}",
        cache_proxy.port
    )));
    let app = start(settings, database).await;
    let browser = app.browser();
    let ready = || browser.send("GET", "/ready", &[], Body::Empty);

    for (proxy, down, up) in [
        (&cache_proxy, "cache", "database"),
        (&database_proxy, "database", "cache"),
    ] {
        proxy.cut();
        let response = ready().await;
        let problem = response.problem(503);
        assert_eq!(problem["checks"][down], "unavailable", "{problem}");
        assert_eq!(problem["checks"][up], "ok", "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains(down));
        // Liveness is not readiness: the process still answers.
        assert_eq!(
            browser
                .send("GET", "/health", &[], Body::Empty)
                .await
                .status,
            200
        );
        proxy.restore();
        let mut status = 0;
        for _ in 0..50 {
            status = ready().await.status;
            if status == 200 {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(status, 200, "not ready again after the {down} came back");
    }
}

#[actix_web::test]
async fn a_verify_only_key_keeps_its_tokens_valid_after_rotation() {
    let (settings, database) = test_settings(Backend::Real).await;
    let old_key = settings.jwt_key_files[0].clone();
    let before = start(settings.clone(), database.clone()).await;
    let (browser, _) = before.logged_in().await;
    let token = browser.cookie("access_token").unwrap();

    // A new key signs; the old one only verifies.
    let new_key = old_key.with_file_name(format!("{}.jwk", uuid::Uuid::now_v7().simple()));
    std::fs::write(
        &new_key,
        infra_crypto::generate_key(infra_crypto::Algorithm::EdDSA).unwrap(),
    )
    .unwrap();
    let mut rotated = settings.clone();
    rotated.jwt_key_files = vec![new_key.clone(), old_key.clone()];
    let after = start(rotated, database.clone()).await;
    assert_eq!(
        Browser::me_with_bearer(&after.base, &token).await.status,
        200
    );
    let jwks = after
        .browser()
        .send("GET", "/.well-known/jwks.json", &[], Body::Empty)
        .await
        .json();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let (fresh, _) = after.logged_in().await;
    let fresh_token = fresh.cookie("access_token").unwrap();
    assert_ne!(
        jsonwebtoken::decode_header(&fresh_token).unwrap().kid,
        jsonwebtoken::decode_header(&token).unwrap().kid
    );

    // Once the old key is removed, its tokens stop working.
    let mut retired = settings;
    retired.jwt_key_files = vec![new_key];
    let last = start(retired, database).await;
    Browser::me_with_bearer(&last.base, &token)
        .await
        .problem(401);
    assert_eq!(
        Browser::me_with_bearer(&last.base, &fresh_token)
            .await
            .status,
        200
    );
}
