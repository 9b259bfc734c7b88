//! Junk at the edge (API.md, "Hostile traffic" and "Conventions"): U+0000 anywhere a string
//! travels, explicit `null`s, every bad parameter in one 422, and `Cache-Control: no-store`
//! under `/api/`.

use serde_json::{Value, json};

use crate::helpers::{Backend, Body, Browser, PASSWORD, Response, both, spawn_app, unique_email};
use crate::roles::spawn_with_admin;

both!(
    a_nul_in_any_json_string_field_is_422_naming_it,
    a_nul_in_a_query_or_path_parameter_is_422_naming_it,
    a_nul_in_the_login_form_is_a_wrong_credential,
    every_bad_parameter_and_field_is_reported_in_one_answer,
    an_explicit_null_is_refused_where_it_means_nothing,
    every_answer_under_api_is_not_stored,
);

const NUL: &str = "must not contain U+0000";
const NULL: &str = "must not be null";

/// The `(field, message)` pairs of a 422.
fn errors(response: &Response) -> Vec<(String, String)> {
    response.problem(422)["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Asserts a 422 naming exactly `field`, for `message`.
fn refused(response: &Response, field: &str, message: &str, what: &str) {
    assert!(response.status < 500, "{what}: {}", response.status);
    assert_eq!(
        errors(response),
        [(field.to_owned(), message.to_owned())],
        "{what}"
    );
}

/// `base` with `field` set to `value`.
fn with(base: &Value, field: &str, value: Value) -> Value {
    let mut body = base.clone();
    body[field] = value;
    body
}

async fn send_json(browser: &Browser, method: &str, path: &str, body: Value) -> Response {
    browser.send(method, path, &[], Body::Json(body)).await
}

/// Three places a NUL can sit in a string.
fn nul_variants(text: &str) -> [String; 3] {
    [
        format!("\u{0}{text}"),
        format!("{}\u{0}{}", &text[..1], &text[1..]),
        format!("{text}\u{0}"),
    ]
}

async fn total_users(admin: &Browser) -> u64 {
    let page = admin
        .send("GET", "/api/users", &[], Body::Empty)
        .await
        .json();
    page["total"].as_u64().unwrap()
}

async fn a_nul_in_any_json_string_field_is_422_naming_it(backend: Backend) {
    let (app, admin) = spawn_with_admin(backend).await;
    let users_before = total_users(&admin).await;

    // Signup: email, password, name.
    let stranger = app.browser();
    let signup = json!({"email": unique_email(), "password": PASSWORD, "name": "Ada Lovelace"});
    for field in ["email", "password", "name"] {
        for bad in nul_variants(signup[field].as_str().unwrap()) {
            let response = send_json(
                &stranger,
                "POST",
                "/api/access/signup",
                with(&signup, field, json!(bad)),
            )
            .await;
            refused(&response, field, NUL, &format!("signup {field} {bad:?}"));
        }
    }

    // Password change: current_password, new_password.
    let (member, member_email) = app.logged_in().await;
    let change = json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"});
    for field in ["current_password", "new_password"] {
        for bad in nul_variants(change[field].as_str().unwrap()) {
            let response = send_json(
                &member,
                "PATCH",
                "/api/access/password",
                with(&change, field, json!(bad)),
            )
            .await;
            refused(&response, field, NUL, &format!("password {field} {bad:?}"));
        }
    }
    // Nothing changed, and the session still lives.
    assert_eq!(member.me().await.status, 200);

    // Admin create: every string field.
    let create = json!({"email": unique_email(), "password": PASSWORD, "name": "Made", "role": "application-access"});
    for field in ["email", "password", "name", "role"] {
        for bad in nul_variants(create[field].as_str().unwrap()) {
            let response = send_json(
                &admin,
                "POST",
                "/api/users",
                with(&create, field, json!(bad)),
            )
            .await;
            refused(&response, field, NUL, &format!("create {field} {bad:?}"));
        }
    }

    // Admin patch: every string field, on an existing user.
    let member_id = member.me().await.json()["id"].as_str().unwrap().to_owned();
    let patch = json!({"email": unique_email(), "name": "Renamed", "role": "application-access", "password": "another passphrase"});
    for field in ["email", "name", "role", "password"] {
        for bad in nul_variants(patch[field].as_str().unwrap()) {
            let response = send_json(
                &admin,
                "PATCH",
                &format!("/api/users/{member_id}"),
                json!({field: bad}),
            )
            .await;
            refused(&response, field, NUL, &format!("patch {field} {bad:?}"));
        }
    }
    let unchanged = admin
        .send("GET", &format!("/api/users/{member_id}"), &[], Body::Empty)
        .await
        .json();
    assert_eq!(unchanged["email"], member_email.as_str());
    assert_eq!(member.me().await.status, 200, "no password was set");

    // Role create: slug, name, description.
    let role = json!({"slug": "editors", "name": "Editors", "description": "They edit"});
    for field in ["slug", "name", "description"] {
        for bad in nul_variants(role[field].as_str().unwrap()) {
            let response =
                send_json(&admin, "POST", "/api/roles", with(&role, field, json!(bad))).await;
            refused(&response, field, NUL, &format!("role {field} {bad:?}"));
        }
    }

    // Role patch: name, description.
    let created = send_json(&admin, "POST", "/api/roles", role.clone()).await;
    assert_eq!(created.status, 201);
    let role_id = created.json()["id"].as_str().unwrap().to_owned();
    for field in ["name", "description"] {
        for bad in nul_variants(role[field].as_str().unwrap()) {
            let response = send_json(
                &admin,
                "PATCH",
                &format!("/api/roles/{role_id}"),
                json!({field: bad}),
            )
            .await;
            refused(
                &response,
                field,
                NUL,
                &format!("role patch {field} {bad:?}"),
            );
        }
    }
    let roles = admin
        .send("GET", "/api/roles", &[], Body::Empty)
        .await
        .json();
    let editors = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["slug"] == "editors")
        .unwrap();
    assert_eq!(
        (&editors["name"], &editors["description"]),
        (&json!("Editors"), &json!("They edit"))
    );

    // Several at once: each named, in declared order, with the use case's own errors.
    let response = send_json(
        &admin,
        "POST",
        "/api/users",
        json!({"email": "a\u{0}@example.com", "password": "short", "name": "x\u{0}", "role": "no-such-role"}),
    )
    .await;
    assert_eq!(
        response.invalid_fields(),
        ["email", "password", "name", "role"]
    );
    // A field no schema declares is ignored, NUL or not.
    let extra = with(&signup, "nickname", json!("a\u{0}b"));
    assert_eq!(
        send_json(&stranger, "POST", "/api/access/signup", extra)
            .await
            .status,
        201
    );
    // Nothing else was created.
    assert_eq!(total_users(&admin).await, users_before + 2);
}

async fn a_nul_in_a_query_or_path_parameter_is_422_naming_it(backend: Backend) {
    let (app, admin) = spawn_with_admin(backend).await;
    for (query, fields) in [
        ("?q=a%00b", vec!["q"]),
        ("?q=%00", vec!["q"]),
        ("?role=application-access%00", vec!["role"]),
        ("?role=%00&q=ada%00&page=0", vec!["page", "q", "role"]),
    ] {
        let response = admin
            .send("GET", &format!("/api/users{query}"), &[], Body::Empty)
            .await;
        assert_eq!(response.invalid_fields(), fields, "{query}");
    }
    let message = errors(
        &admin
            .send("GET", "/api/users?q=%00", &[], Body::Empty)
            .await,
    );
    assert_eq!(message, [("q".to_owned(), NUL.to_owned())]);

    let id = uuid::Uuid::now_v7().to_string();
    let bad_ids = [
        "%00".to_owned(),
        format!("{}%00", &id[..35]),
        format!("{id}%00"),
    ];
    for bad in &bad_ids {
        for (method, path, body) in [
            ("GET", format!("/api/users/{bad}"), Body::Empty),
            (
                "PATCH",
                format!("/api/users/{bad}"),
                Body::Json(json!({"name": "X"})),
            ),
            ("DELETE", format!("/api/users/{bad}"), Body::Empty),
            ("GET", format!("/api/users/{bad}/sessions"), Body::Empty),
            ("DELETE", format!("/api/users/{bad}/sessions"), Body::Empty),
            (
                "PATCH",
                format!("/api/roles/{bad}"),
                Body::Json(json!({"name": "X"})),
            ),
            ("DELETE", format!("/api/roles/{bad}"), Body::Empty),
        ] {
            let response = admin.send(method, &path, &[], body).await;
            assert_eq!(response.invalid_fields(), ["id"], "{method} {path}");
        }
        let (member, _) = app.logged_in().await;
        let response = member
            .send(
                "DELETE",
                &format!("/api/access/sessions/{bad}"),
                &[],
                Body::Empty,
            )
            .await;
        assert_eq!(response.invalid_fields(), ["sid"], "session {bad}");
        assert_eq!(member.me().await.status, 200);
    }
}

async fn a_nul_in_the_login_form_is_a_wrong_credential(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, email) = app.logged_in().await;
    let with_nul = format!("{}\u{0}{}", &email[..4], &email[4..]);
    let password_with_nul = format!("{PASSWORD}\u{0}");
    let browser = app.browser();
    for (username, password) in [
        ("a\u{0}b@example.com", PASSWORD),
        (with_nul.as_str(), PASSWORD),
        (email.as_str(), password_with_nul.as_str()),
        (email.as_str(), "\u{0}"),
    ] {
        let response = browser.login(username, password).await;
        let body = response.problem(401);
        assert_eq!(
            body["detail"], "Incorrect email or password",
            "{username:?}"
        );
        assert!(browser.cookie("access_token").is_none());
    }
    // The raw form as a client would send it.
    let raw = browser
        .send(
            "POST",
            "/api/access/login",
            &[],
            Body::Raw(
                "application/x-www-form-urlencoded",
                b"username=a%00b@example.com&password=x%00y".to_vec(),
            ),
        )
        .await;
    raw.problem(401);
    // Four failures on the account are under its back-off: the owner still gets in.
    assert_eq!(browser.login(&email, PASSWORD).await.status, 204);
}

async fn every_bad_parameter_and_field_is_reported_in_one_answer(backend: Backend) {
    let (app, admin) = spawn_with_admin(backend).await;
    let listing = admin
        .send(
            "GET",
            "/api/users?page=0&per_page=x&is_active=maybe",
            &[],
            Body::Empty,
        )
        .await;
    assert_eq!(listing.invalid_fields(), ["page", "per_page", "is_active"]);
    let listing = admin
        .send("GET", "/api/users?per_page=0&page=-1", &[], Body::Empty)
        .await;
    assert_eq!(listing.invalid_fields(), ["page", "per_page"]);

    // The path and the body together, path first, body fields in declared order.
    for (body, fields) in [
        (json!({"email": "not an email"}), vec!["id", "email"]),
        (json!({"role": "no-such-role"}), vec!["id", "role"]),
        (json!({"password": "short"}), vec!["id", "password"]),
        (
            json!({"password": "short", "is_active": "yes", "email": "nope", "name": null}),
            vec!["id", "email", "is_active", "password"],
        ),
        (
            json!({"email": null, "is_superuser": 1}),
            vec!["id", "email", "is_superuser"],
        ),
        (json!({"name": "Fine"}), vec!["id"]),
        (json!([]), vec!["id", "body"]),
    ] {
        let response = send_json(&admin, "PATCH", "/api/users/not-a-uuid", body.clone()).await;
        assert_eq!(response.invalid_fields(), fields, "{body}");
    }
    for (body, fields) in [
        (json!({"name": null}), vec!["id", "name"]),
        (json!({"name": ""}), vec!["id", "name"]),
        (
            json!({"description": 3, "name": "a\u{0}"}),
            vec!["id", "name", "description"],
        ),
        (json!({"description": null}), vec!["id"]),
    ] {
        let response = send_json(&admin, "PATCH", "/api/roles/not-a-uuid", body.clone()).await;
        assert_eq!(response.invalid_fields(), fields, "{body}");
    }
    // A body that is not JSON at all is still a 400, path or no path.
    let not_json = admin
        .send(
            "PATCH",
            "/api/users/not-a-uuid",
            &[],
            Body::Raw("application/json", b"{".to_vec()),
        )
        .await;
    not_json.problem(400);

    // Authentication comes first: 401, then 403, before any 422.
    let bad = json!({"email": "nope", "is_active": "yes"});
    let stranger = app.browser();
    send_json(&stranger, "PATCH", "/api/users/not-a-uuid", bad.clone())
        .await
        .problem(401);
    send_json(
        &stranger,
        "PATCH",
        "/api/roles/not-a-uuid",
        json!({"name": null}),
    )
    .await
    .problem(401);
    let (member, _) = app.logged_in().await;
    send_json(&member, "PATCH", "/api/users/not-a-uuid", bad)
        .await
        .problem(403);
    send_json(
        &member,
        "PATCH",
        "/api/roles/not-a-uuid",
        json!({"name": null}),
    )
    .await
    .problem(403);
    member
        .send("GET", "/api/users?page=0&q=%00", &[], Body::Empty)
        .await
        .problem(403);
}

async fn an_explicit_null_is_refused_where_it_means_nothing(backend: Backend) {
    let (app, admin) = spawn_with_admin(backend).await;

    // Role patch: `name: null` is refused, `description: null` clears.
    let created = send_json(
        &admin,
        "POST",
        "/api/roles",
        json!({"slug": "editors", "name": "Editors", "description": "They edit"}),
    )
    .await;
    assert_eq!(created.status, 201);
    let role_path = format!("/api/roles/{}", created.json()["id"].as_str().unwrap());
    let response = send_json(&admin, "PATCH", &role_path, json!({"name": null})).await;
    refused(&response, "name", NULL, "role name null");
    let cleared = send_json(&admin, "PATCH", &role_path, json!({"description": null})).await;
    assert_eq!(cleared.status, 200);
    assert_eq!(cleared.json()["name"], "Editors");
    assert!(cleared.json()["description"].is_null());

    // Role create: null is no description; a null name is not an absent one.
    let no_description = send_json(
        &admin,
        "POST",
        "/api/roles",
        json!({"slug": "viewers", "name": "Viewers", "description": null}),
    )
    .await;
    assert_eq!(no_description.status, 201);
    assert!(no_description.json()["description"].is_null());
    let response = send_json(&admin, "POST", "/api/roles", json!({"slug": null})).await;
    assert_eq!(
        errors(&response),
        [
            ("slug".to_owned(), NULL.to_owned()),
            ("name".to_owned(), "this field is required".to_owned())
        ]
    );

    // User patch: only `name` may be null (it clears the name).
    let (member, _) = app.logged_in().await;
    let user_path = format!(
        "/api/users/{}",
        member.me().await.json()["id"].as_str().unwrap()
    );
    let fields = [
        "email",
        "role",
        "is_active",
        "is_superuser",
        "is_verified",
        "password",
    ];
    for field in fields {
        let response = send_json(&admin, "PATCH", &user_path, json!({field: null})).await;
        refused(&response, field, NULL, &format!("patch {field} null"));
    }
    let all: serde_json::Map<String, Value> = fields
        .iter()
        .map(|f| ((*f).to_owned(), Value::Null))
        .collect();
    let response = send_json(&admin, "PATCH", &user_path, Value::Object(all)).await;
    assert_eq!(response.invalid_fields(), fields);
    let named = send_json(&admin, "PATCH", &user_path, json!({"name": "Ada"})).await;
    assert_eq!(named.json()["name"], "Ada");
    let unnamed = send_json(&admin, "PATCH", &user_path, json!({"name": null})).await;
    assert_eq!(unnamed.status, 200);
    assert!(unnamed.json()["name"].is_null());
    assert_eq!(member.me().await.status, 200, "still active, same password");

    // Admin create: `name: null` is no name; null flags and roles are refused.
    let email = unique_email();
    let base = json!({"email": email, "password": PASSWORD});
    for field in ["role", "is_active", "is_superuser", "is_verified"] {
        let response = send_json(
            &admin,
            "POST",
            "/api/users",
            with(&base, field, Value::Null),
        )
        .await;
        refused(&response, field, NULL, &format!("create {field} null"));
    }
    let response = send_json(
        &admin,
        "POST",
        "/api/users",
        json!({"email": null, "password": null}),
    )
    .await;
    assert_eq!(
        errors(&response),
        [
            ("email".to_owned(), NULL.to_owned()),
            ("password".to_owned(), NULL.to_owned())
        ]
    );
    let made = send_json(
        &admin,
        "POST",
        "/api/users",
        with(&base, "name", Value::Null),
    )
    .await;
    assert_eq!(made.status, 201);
    assert!(made.json()["name"].is_null());

    // Signup: `name: null` is no name; null email or password is refused.
    let browser = app.browser();
    let signup = json!({"email": unique_email(), "password": PASSWORD});
    let response = send_json(
        &browser,
        "POST",
        "/api/access/signup",
        with(&signup, "email", Value::Null),
    )
    .await;
    refused(&response, "email", NULL, "signup email null");
    let response = send_json(
        &browser,
        "POST",
        "/api/access/signup",
        with(&signup, "password", Value::Null),
    )
    .await;
    refused(&response, "password", NULL, "signup password null");
    let signed_up = send_json(
        &browser,
        "POST",
        "/api/access/signup",
        with(&signup, "name", Value::Null),
    )
    .await;
    assert_eq!(signed_up.status, 201);
    assert!(signed_up.json()["name"].is_null());

    // Password change: neither may be null.
    let response = send_json(
        &member,
        "PATCH",
        "/api/access/password",
        json!({"current_password": null, "new_password": null}),
    )
    .await;
    assert_eq!(
        errors(&response),
        [
            ("current_password".to_owned(), NULL.to_owned()),
            ("new_password".to_owned(), NULL.to_owned())
        ]
    );
}

async fn every_answer_under_api_is_not_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, email) = app.logged_in().await;
    let stranger = app.browser();
    let no_store = |response: &Response, what: &str| {
        assert_eq!(
            response.header("cache-control").as_deref(),
            Some("no-store"),
            "{what} ({})",
            response.status
        );
    };

    let me = browser.me().await;
    assert_eq!(me.status, 200);
    no_store(&me, "a success");
    let login = app.browser().login(&email, PASSWORD).await;
    assert_eq!(login.status, 204);
    no_store(&login, "a login");
    let unauthenticated = stranger.me().await;
    unauthenticated.problem(401);
    no_store(&unauthenticated, "a 401");
    let unknown = stranger.send("GET", "/api/nowhere", &[], Body::Empty).await;
    unknown.problem(404);
    no_store(&unknown, "a 404 under /api/");
    let wrong_method = stranger
        .send("PUT", "/api/access/me", &[], Body::Empty)
        .await;
    wrong_method.problem(405);
    no_store(&wrong_method, "a 405");
    let invalid = send_json(&stranger, "POST", "/api/access/signup", json!({})).await;
    invalid.problem(422);
    no_store(&invalid, "a 422");
    let too_large = stranger
        .send(
            "POST",
            "/api/access/signup",
            &[],
            Body::Raw("application/json", vec![b' '; 65 * 1024]),
        )
        .await;
    too_large.problem(413);
    no_store(&too_large, "a 413");
    let not_json = stranger
        .send(
            "POST",
            "/api/access/signup",
            &[],
            Body::Raw("text/plain", b"hello".to_vec()),
        )
        .await;
    not_json.problem(415);
    no_store(&not_json, "a 415");
    // Wrong passwords until the account's back-off answers 429.
    let mut throttled = None;
    for _ in 0..10 {
        let response = stranger.login(&email, "a wrong password").await;
        no_store(&response, "a failed login");
        if response.status == 429 {
            throttled = Some(response);
            break;
        }
    }
    no_store(&throttled.expect("a 429"), "a 429");

    for path in [
        "/health",
        "/ready",
        "/openapi.json",
        "/.well-known/jwks.json",
        "/metrics",
        "/nowhere",
    ] {
        let response = stranger.send("GET", path, &[], Body::Empty).await;
        assert!(response.status < 500 || path == "/ready", "{path}");
        assert_eq!(response.header("cache-control"), None, "{path}");
    }
}

/// The document says which body fields may be `null`, as the parser enforces it.
#[actix_web::test]
async fn the_document_says_which_fields_may_be_null() {
    let app = spawn_app(Backend::Memory).await;
    let document = app
        .browser()
        .send("GET", "/openapi.json", &[], Body::Empty)
        .await
        .json();
    let schemas = &document["components"]["schemas"];
    let nullable = |schema: &str, field: &str| {
        let property = &schemas[schema]["properties"][field];
        assert!(property.is_object(), "{schema}.{field}: {property}");
        let types = &property["type"];
        types.as_array().is_some_and(|t| t.contains(&json!("null")))
            || property["oneOf"]
                .as_array()
                .is_some_and(|t| t.iter().any(|v| v["type"] == "null"))
    };
    for (schema, field, expected) in [
        ("SignUpBody", "name", true),
        ("NewUserBody", "name", true),
        ("NewUserBody", "role", false),
        ("NewUserBody", "is_active", false),
        ("NewRoleBody", "description", true),
        ("RoleUpdateBody", "name", false),
        ("RoleUpdateBody", "description", true),
        ("UserPatchBody", "name", true),
        ("UserPatchBody", "email", false),
        ("UserPatchBody", "role", false),
        ("UserPatchBody", "is_active", false),
        ("UserPatchBody", "is_superuser", false),
        ("UserPatchBody", "is_verified", false),
        ("UserPatchBody", "password", false),
    ] {
        assert_eq!(nullable(schema, field), expected, "{schema}.{field}");
    }
}
