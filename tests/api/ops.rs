use authd_domain::{
    DisplayName, Email, PasswordPolicy, PerPage, RoleDescription, RoleName, RoleSlug,
};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, Body, Browser, both, eventually, metrics_text, spawn_app, spawn_with, start,
    test_settings,
};
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
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    // The refresh token too, typed in its header.
    let refresh = browser.cookie("refresh_token").unwrap();
    let header = jsonwebtoken::decode_header(&refresh).unwrap();
    assert_eq!(header.typ.as_deref(), Some("refresh+jwt"));
    let claims = jsonwebtoken::decode::<Value>(&refresh, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["typ"], "refresh");
}

#[actix_web::test]
async fn ready_names_each_unreachable_dependency_and_recovers() {
    let (mut settings, database) = test_settings(Backend::Real).await;
    let database_proxy = Proxy::for_database(&mut settings, database.as_ref().unwrap()).await;
    let cache_proxy = Proxy::for_redis(&mut settings).await;
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
        eventually(
            &format!("ready again after the {down} came back"),
            200,
            async || ready().await.status,
        )
        .await;
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
        authd_crypto::generate_key(authd_crypto::Algorithm::EdDSA).unwrap(),
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

/// The value of one sample line of the Prometheus text, 0 when absent.
// The metrics counters are checked in tests/metrics, a binary of their own.

#[actix_web::test]
async fn metrics_can_have_a_listener_of_their_own() {
    let app = crate::helpers::spawn_with(Backend::Memory, |settings| {
        settings.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    app.browser()
        .send("GET", "/metrics", &[], Body::Empty)
        .await
        .problem(404);
    let port = app.metrics_port.expect("a metrics listener");
    let metrics = Browser::new(&format!("http://127.0.0.1:{port}"));
    assert!(metrics_text(&metrics).await.contains("authd_"));
}

/// The document lists exactly what the server serves: every documented operation reaches a
/// handler, and every method the server answers on a registered path is documented.
#[actix_web::test]
async fn the_openapi_document_matches_the_served_routes() {
    let app = spawn_app(Backend::Memory).await;
    let browser = app.browser();
    let response = browser.send("GET", "/openapi.json", &[], Body::Empty).await;
    assert_eq!(response.status, 200);
    let document = response.json();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(
        (
            schemes["cookie"]["in"].as_str(),
            schemes["cookie"]["name"].as_str()
        ),
        (Some("cookie"), Some("access_token"))
    );
    let paths = document["paths"].as_object().unwrap();
    let concrete = |template: &str| {
        template
            .replace("{sid}", &uuid::Uuid::now_v7().to_string())
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
    };
    let routed = |response: &crate::helpers::Response| {
        let no_route = response.status == 404
            && response.json()["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("No route"));
        !no_route && response.status != 405
    };

    let registered: Vec<&str> = authd_http::registered_paths().collect();
    for path in paths.keys() {
        assert!(
            registered.contains(&path.as_str()),
            "{path} is documented but not registered"
        );
    }
    for path in &registered {
        let documented = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is served but not documented"));
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let response = browser
                .send(method, &concrete(path), &[], Body::Empty)
                .await;
            let in_document = documented.get(method.to_lowercase()).is_some();
            assert_eq!(
                routed(&response),
                in_document,
                "{method} {path}: served {}, documented {in_document}",
                routed(&response)
            );
            if in_document {
                let operation = &documented[method.to_lowercase()];
                assert!(
                    operation["responses"]
                        .as_object()
                        .is_some_and(|r| !r.is_empty()),
                    "{method} {path} has no responses"
                );
            }
        }
    }
    // Error answers are documented as problem+json.
    let conflict = &paths["/api/access/signup"]["post"]["responses"]["409"]["content"]["application/problem+json"];
    assert!(conflict.is_object(), "409 of signup is not problem+json");

    // Every status a route can send is listed: the Origin check's 403 on every unsafe route,
    // a 422 for every path id, 503 wherever a store is read, 400/413/415/422 for every body.
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            let lists = |status: &str| responses.contains_key(status);
            let what = format!("{method} {path}");
            if ["post", "patch", "delete"].contains(&method.as_str()) {
                assert!(lists("403"), "{what}: no 403");
            }
            if path.contains('{') {
                assert!(lists("422"), "{what}: no 422");
            }
            if path.starts_with("/api/") {
                assert!(lists("503"), "{what}: no 503");
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(lists(status), "{what}: no {status}");
                }
            }
        }
    }
}

/// The request schemas say what the parser enforces: formats, patterns and lengths.
#[actix_web::test]
async fn the_request_schemas_carry_the_parsers_limits() {
    let app = spawn_app(Backend::Memory).await;
    let document = app
        .browser()
        .send("GET", "/openapi.json", &[], Body::Empty)
        .await
        .json();
    let schemas = &document["components"]["schemas"];
    let (min_password, max_password) = (PasswordPolicy::MIN_LENGTH, PasswordPolicy::MAX_LENGTH);
    for schema in ["SignUpBody", "NewUserBody", "UserPatchBody"] {
        let properties = &schemas[schema]["properties"];
        // Not `format: email`, which is stricter than the contract's structural check: a
        // pattern of exactly what `Email::parse` accepts.
        assert!(properties["email"].get("format").is_none(), "{schema}");
        assert!(
            properties["email"]["pattern"]
                .as_str()
                .is_some_and(|pattern| pattern.contains("{1,64}@")),
            "{schema}"
        );
        assert_eq!(properties["email"]["maxLength"], Email::MAX_LEN, "{schema}");
        assert!(properties["password"]["pattern"].is_string(), "{schema}");
        assert_eq!(
            properties["password"]["minLength"], min_password,
            "{schema}"
        );
        assert_eq!(
            properties["password"]["maxLength"], max_password,
            "{schema}"
        );
        assert_eq!(
            properties["name"]["maxLength"],
            DisplayName::MAX_LEN,
            "{schema}"
        );
        assert_eq!(
            properties["name"]["type"],
            json!(["string", "null"]),
            "{schema}"
        );
    }
    let new_password = &schemas["PasswordChangeBody"]["properties"]["new_password"];
    assert_eq!(
        (&new_password["minLength"], &new_password["maxLength"]),
        (&json!(min_password), &json!(max_password))
    );
    for (schema, field) in [
        ("NewRoleBody", "slug"),
        ("NewUserBody", "role"),
        ("UserPatchBody", "role"),
    ] {
        let slug = &schemas[schema]["properties"][field];
        assert_eq!(slug["pattern"], RoleSlug::PATTERN, "{schema}.{field}");
        assert_eq!(slug["type"], "string", "{schema}.{field}");
    }
    for schema in ["NewRoleBody", "RoleUpdateBody"] {
        let properties = &schemas[schema]["properties"];
        assert_eq!(
            (
                &properties["name"]["minLength"],
                &properties["name"]["maxLength"]
            ),
            (&json!(1), &json!(RoleName::MAX_LEN)),
            "{schema}"
        );
        assert_eq!(properties["name"]["type"], "string", "{schema}");
        assert_eq!(
            properties["description"]["maxLength"],
            RoleDescription::MAX_LEN,
            "{schema}"
        );
    }
    let parameters = document["paths"]["/api/users"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let parameter = |name: &str| parameters.iter().find(|p| p["name"] == name).unwrap();
    assert_eq!(
        (
            &parameter("per_page")["schema"]["minimum"],
            &parameter("per_page")["schema"]["maximum"]
        ),
        (&json!(1), &json!(PerPage::MAX))
    );
    assert_eq!(parameter("per_page")["required"], false);
    assert_eq!(parameter("page")["schema"]["minimum"], 1);
    let names: Vec<_> = parameters.iter().map(|p| p["name"].clone()).collect();
    assert_eq!(
        names,
        json!(["page", "per_page", "q", "role", "is_active"])
            .as_array()
            .unwrap()
            .clone()
    );
    let id = &document["paths"]["/api/users/{id}"]["get"]["parameters"][0]["schema"];
    assert_eq!(id["format"], "uuid");
}

/// With `AUTHD_PASSWORD_MIN_LENGTH` raised, the document says the raised minimum.
#[actix_web::test]
async fn the_document_says_the_configured_password_minimum() {
    let app = spawn_with(Backend::Memory, |settings| {
        settings.password_min_length = 12
    })
    .await;
    let document = app
        .browser()
        .send("GET", "/openapi.json", &[], Body::Empty)
        .await
        .json();
    let schemas = &document["components"]["schemas"];
    for (schema, field) in [
        ("SignUpBody", "password"),
        ("NewUserBody", "password"),
        ("UserPatchBody", "password"),
        ("PasswordChangeBody", "new_password"),
    ] {
        let password = &schemas[schema]["properties"][field];
        assert_eq!(
            (&password["minLength"], &password["maxLength"]),
            (&json!(12), &json!(PasswordPolicy::MAX_LENGTH)),
            "{schema}.{field}"
        );
        assert!(
            password["description"]
                .as_str()
                .is_some_and(|text| text.starts_with("12 to ")),
            "{schema}.{field}"
        );
    }
}
