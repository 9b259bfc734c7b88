use serde_json::json;

use crate::helpers::{
    Backend, Body, Browser, PASSWORD, TestApp, assert_superuser_only, both, spawn_with, start,
    test_settings, unique_email,
};

both!(
    superusers_list_create_update_and_delete_roles,
    role_bodies_and_ids_are_validated,
    the_default_role_cannot_be_deleted,
    only_superusers_may_manage_roles,
    the_primary_admin_is_created_once_and_never_overwritten,
);

pub const ADMIN_EMAIL: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "the admin's own passphrase";

/// A server with a primary admin configured, and a browser logged in as that admin.
pub async fn spawn_with_admin(backend: Backend) -> (TestApp, Browser) {
    let app = spawn_with(backend, |settings| {
        settings.admin_email = Some(ADMIN_EMAIL.into());
        settings.admin_password = Some(authd::Secret::new(ADMIN_PASSWORD));
    })
    .await;
    let admin = app.browser();
    assert_eq!(admin.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 204);
    (app, admin)
}

async fn superusers_list_create_update_and_delete_roles(backend: Backend) {
    let (_app, admin) = spawn_with_admin(backend).await;
    let listed = admin.send("GET", "/api/roles", &[], Body::Empty).await;
    assert_eq!(listed.status, 200);
    let slugs: Vec<String> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["slug"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(slugs, ["application-access"]);

    let body = json!({"slug": "editors", "name": " Editors ", "description": "Edit things"});
    let created = admin
        .send("POST", "/api/roles", &[], Body::Json(body))
        .await;
    assert_eq!(created.status, 201);
    let role = created.json();
    assert_eq!(
        (
            role["slug"].as_str(),
            role["name"].as_str(),
            role["description"].as_str()
        ),
        (Some("editors"), Some("Editors"), Some("Edit things"))
    );
    for field in ["id", "created_at", "updated_at"] {
        assert!(role[field].is_string(), "{field} missing");
    }
    let id = role["id"].as_str().unwrap().to_owned();
    let duplicate = admin
        .send(
            "POST",
            "/api/roles",
            &[],
            Body::Json(json!({"slug": "editors", "name": "Again"})),
        )
        .await;
    duplicate.problem(409);

    let renamed = admin
        .send(
            "PATCH",
            &format!("/api/roles/{id}"),
            &[],
            Body::Json(json!({"name": "Writers"})),
        )
        .await;
    assert_eq!(renamed.status, 200);
    assert_eq!(
        (
            renamed.json()["name"].as_str(),
            renamed.json()["description"].as_str()
        ),
        (Some("Writers"), Some("Edit things"))
    );
    let cleared = admin
        .send(
            "PATCH",
            &format!("/api/roles/{id}"),
            &[],
            Body::Json(json!({"description": null})),
        )
        .await;
    assert_eq!(cleared.status, 200);
    assert!(cleared.json()["description"].is_null());
    assert_eq!(cleared.json()["slug"], "editors");

    assert_eq!(
        admin
            .send("DELETE", &format!("/api/roles/{id}"), &[], Body::Empty)
            .await
            .status,
        204
    );
    admin
        .send("DELETE", &format!("/api/roles/{id}"), &[], Body::Empty)
        .await
        .problem(404);
    admin
        .send(
            "PATCH",
            &format!("/api/roles/{id}"),
            &[],
            Body::Json(json!({"name": "Ghost"})),
        )
        .await
        .problem(404);
    assert_eq!(
        admin
            .send("GET", "/api/roles", &[], Body::Empty)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn role_bodies_and_ids_are_validated(backend: Backend) {
    let (_app, admin) = spawn_with_admin(backend).await;
    let bad = admin
        .send(
            "POST",
            "/api/roles",
            &[],
            Body::Json(json!({"slug": "Not A Slug", "name": ""})),
        )
        .await;
    assert_eq!(bad.invalid_fields(), ["slug", "name"]);
    let missing = admin
        .send("POST", "/api/roles", &[], Body::Json(json!({})))
        .await;
    assert_eq!(missing.invalid_fields(), ["slug", "name"]);
    let wrong_type = admin
        .send(
            "POST",
            "/api/roles",
            &[],
            Body::Json(json!({"slug": "ok-slug", "name": 3})),
        )
        .await;
    assert_eq!(wrong_type.invalid_fields(), ["name"]);
    let not_a_uuid = admin
        .send(
            "PATCH",
            "/api/roles/nope",
            &[],
            Body::Json(json!({"name": "X"})),
        )
        .await;
    assert_eq!(not_a_uuid.invalid_fields(), ["id"]);
    admin
        .send("DELETE", "/api/roles/nope", &[], Body::Empty)
        .await
        .problem(422);
}

async fn the_default_role_cannot_be_deleted(backend: Backend) {
    let (_app, admin) = spawn_with_admin(backend).await;
    let roles = admin
        .send("GET", "/api/roles", &[], Body::Empty)
        .await
        .json();
    let id = roles[0]["id"].as_str().unwrap().to_owned();
    let refused = admin
        .send("DELETE", &format!("/api/roles/{id}"), &[], Body::Empty)
        .await;
    assert!(
        refused.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("default role")
    );
}

async fn only_superusers_may_manage_roles(backend: Backend) {
    let (app, admin) = spawn_with_admin(backend).await;
    let (member, _) = app.logged_in().await;
    // A real role, so a refusal cannot be a 404 in disguise.
    let created = admin
        .send(
            "POST",
            "/api/roles",
            &[],
            Body::Json(json!({"slug": "editors", "name": "Editors"})),
        )
        .await;
    assert_eq!(created.status, 201);
    let role = format!("/api/roles/{}", created.json()["id"].as_str().unwrap());
    assert_superuser_only(
        &member,
        &app.browser(),
        &[
            ("GET", "/api/roles", Body::Empty),
            (
                "POST",
                "/api/roles",
                Body::Json(json!({"slug": "mine", "name": "Mine"})),
            ),
            ("PATCH", &role, Body::Json(json!({"name": "Mine"}))),
            ("DELETE", &role, Body::Empty),
        ],
    )
    .await;
    // Authentication is decided before the body is read.
    app.browser()
        .send(
            "POST",
            "/api/roles",
            &[],
            Body::Raw("application/json", b"{".to_vec()),
        )
        .await
        .problem(401);
    // Nothing the refused requests asked for happened.
    let roles = admin
        .send("GET", "/api/roles", &[], Body::Empty)
        .await
        .json();
    let names: Vec<&str> = roles
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{roles}");
    assert!(names.contains(&"Editors"), "{roles}");
}

async fn the_primary_admin_is_created_once_and_never_overwritten(backend: Backend) {
    let (app, admin) = spawn_with_admin(backend).await;
    let me = admin.me().await.json();
    assert_eq!(
        (
            me["is_superuser"].clone(),
            me["is_active"].clone(),
            me["is_verified"].clone()
        ),
        (json!(true), json!(true), json!(true))
    );
    if backend == Backend::Real {
        // A restart with another configured password leaves the admin's own one in place.
        let mut settings = app.settings.clone();
        settings.admin_password = Some(authd::Secret::new("a different configured password"));
        let restarted = start(settings, app.database.clone()).await;
        assert_eq!(
            restarted
                .browser()
                .login(ADMIN_EMAIL, ADMIN_PASSWORD)
                .await
                .status,
            204
        );
        restarted
            .browser()
            .login(ADMIN_EMAIL, "a different configured password")
            .await
            .problem(401);
    }
}

/// Flipping a user's role needs the users API (not built yet): the test writes it in SQL.
#[actix_web::test]
async fn a_role_users_hold_cannot_be_deleted() {
    let (app, admin) = spawn_with_admin(Backend::Real).await;
    let created = admin
        .send(
            "POST",
            "/api/roles",
            &[],
            Body::Json(json!({"slug": "editors", "name": "Editors"})),
        )
        .await;
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let email = unique_email();
    app.browser().signup(&email, PASSWORD).await;
    let moved = app
        .database
        .as_ref()
        .unwrap()
        .execute(&format!(
            "UPDATE users SET role_id = '{id}' WHERE email = '{email}'"
        ))
        .await
        .unwrap();
    assert_eq!(moved, 1);
    let refused = admin
        .send("DELETE", &format!("/api/roles/{id}"), &[], Body::Empty)
        .await;
    assert!(
        refused.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("still hold this role")
    );
    assert_eq!(
        admin
            .send("GET", "/api/roles", &[], Body::Empty)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[actix_web::test]
async fn two_servers_starting_at_once_create_one_admin_and_one_default_role() {
    // An empty database, not even migrated: both instances migrate, then bootstrap, at once.
    let (mut settings, _) = test_settings(Backend::Real).await;
    let database = std::sync::Arc::new(authd_postgres::testing::empty_database().await.unwrap());
    settings.database_url = Some(authd::Secret::new(database.url.clone()));
    settings.admin_email = Some(ADMIN_EMAIL.into());
    settings.admin_password = Some(authd::Secret::new(ADMIN_PASSWORD));
    let (first, second) = futures_util::join!(
        start(settings.clone(), Some(database.clone())),
        start(settings, Some(database.clone()))
    );
    let admins = database
        .execute("SELECT id FROM users WHERE is_primary_admin")
        .await
        .unwrap();
    let default_roles = database
        .execute("SELECT id FROM roles WHERE slug = 'application-access'")
        .await
        .unwrap();
    assert_eq!((admins, default_roles), (1, 1));
    for app in [&first, &second] {
        assert_eq!(
            app.browser()
                .login(ADMIN_EMAIL, ADMIN_PASSWORD)
                .await
                .status,
            204
        );
    }
}
