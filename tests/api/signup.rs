use serde_json::json;

use crate::helpers::{Backend, Body, PASSWORD, both, spawn_app, spawn_with, unique_email};

both!(
    signup_returns_the_user_with_the_default_role,
    signup_with_a_taken_email_is_a_conflict_and_writes_nothing,
    signup_reports_every_invalid_field,
    signup_enforces_the_password_policy,
    signup_refuses_bad_bodies,
);

async fn signup_returns_the_user_with_the_default_role(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let body = json!({"email": "  Ada@Example.com ", "password": PASSWORD, "name": "Ada"});
    let response = browser
        .send("POST", "/api/access/signup", &[], Body::Json(body))
        .await;
    assert_eq!(response.status, 201);
    let user = response.json();
    assert_eq!(user["email"], "Ada@Example.com");
    assert_eq!(user["name"], "Ada");
    assert_eq!(
        (
            user["is_active"].clone(),
            user["is_superuser"].clone(),
            user["is_verified"].clone()
        ),
        (json!(true), json!(false), json!(false))
    );
    assert_eq!(user["role"]["slug"], "application-access");
    assert!(
        user["role"]["id"]
            .as_str()
            .unwrap()
            .parse::<uuid::Uuid>()
            .is_ok()
    );
    let id: uuid::Uuid = user["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    let keys: Vec<&String> = user.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 9, "unexpected fields: {keys:?}");
    assert!(!String::from_utf8_lossy(&response.body).contains("argon2"));
    assert!(
        response.set_cookie("access_token").is_none(),
        "signup does not log in"
    );
}

async fn signup_with_a_taken_email_is_a_conflict_and_writes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let email = unique_email();
    assert_eq!(browser.signup(&email, PASSWORD).await.status, 201);
    let conflict = browser
        .signup(&email.to_uppercase(), "another password")
        .await;
    let body = conflict.problem(409);
    assert_eq!(body["detail"], "A user with this email already exists");
    // The first account is untouched: its password works, the second one's does not.
    assert_eq!(browser.login(&email, "another password").await.status, 401);
    assert_eq!(browser.login(&email, PASSWORD).await.status, 204);
}

async fn signup_reports_every_invalid_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let missing = browser
        .send("POST", "/api/access/signup", &[], Body::Json(json!({})))
        .await;
    assert_eq!(missing.invalid_fields(), ["email", "password"]);
    let wrong_types = browser
        .send(
            "POST",
            "/api/access/signup",
            &[],
            Body::Json(json!({"email": "not-an-email", "password": 12345678, "name": false})),
        )
        .await;
    assert_eq!(wrong_types.invalid_fields(), ["email", "password", "name"]);
    let semantic = browser
        .send(
            "POST",
            "/api/access/signup",
            &[],
            Body::Json(json!({"email": "nope", "password": "short"})),
        )
        .await;
    assert_eq!(semantic.invalid_fields(), ["email", "password"]);
}

async fn signup_enforces_the_password_policy(backend: Backend) {
    let app = spawn_with(backend, |settings| settings.password_min_length = 10).await;
    let browser = app.browser();
    let email = unique_email();
    let too_long = "x".repeat(129);
    for bad in [
        "nine char",
        "          ",
        too_long.as_str(),
        email.to_uppercase().as_str(),
    ] {
        let response = browser.signup(&email, bad).await;
        assert_eq!(
            response.invalid_fields(),
            ["password"],
            "{bad:?} was accepted"
        );
    }
    // Ten code points of multi-byte characters are ten characters.
    assert_eq!(browser.signup(&email, "éééééééééé").await.status, 201);
}

async fn signup_refuses_bad_bodies(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let path = "/api/access/signup";
    let not_json = browser
        .send(
            "POST",
            path,
            &[],
            Body::Raw("application/json", b"{\"email\":".to_vec()),
        )
        .await;
    not_json.problem(400);
    let wrong_type = browser
        .send("POST", path, &[], Body::Raw("text/plain", b"{}".to_vec()))
        .await;
    wrong_type.problem(415);
    let no_type = browser
        .send("POST", path, &[], Body::Raw("", b"{}".to_vec()))
        .await;
    no_type.problem(415);
    let big = format!("{{\"email\":\"{}\"}}", "a".repeat(70_000));
    let too_large = browser
        .send(
            "POST",
            path,
            &[],
            Body::Raw("application/json", big.into_bytes()),
        )
        .await;
    too_large.problem(413);
    let not_object = browser
        .send("POST", path, &[], Body::Json(json!([1, 2])))
        .await;
    assert_eq!(not_object.invalid_fields(), ["body"]);
}
