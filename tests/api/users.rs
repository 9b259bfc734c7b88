use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, Body, Browser, PASSWORD, TestApp, assert_superuser_only, both, unique_email,
};
use crate::login::decode_claims;
use crate::roles::{ADMIN_EMAIL, spawn_with_admin};

both!(
    users_are_listed_a_page_at_a_time_with_filters,
    listing_parameters_are_validated,
    admins_create_read_and_delete_users,
    admin_changes_apply_on_the_users_next_request,
    the_primary_admin_and_self_lockout_are_protected,
    a_users_sessions_are_listed_and_revoked_by_an_admin,
    admin_endpoints_refuse_members_and_strangers,
    concurrent_creates_of_one_email_make_one_user,
    a_bad_patch_lists_the_stored_rules_in_one_answer,
);

async fn create(admin: &Browser, body: Value) -> crate::helpers::Response {
    admin
        .send("POST", "/api/users", &[], Body::Json(body))
        .await
}

async fn create_member(admin: &Browser, email: &str) -> String {
    let response = create(admin, json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(
        response.status,
        201,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()["id"].as_str().unwrap().to_owned()
}

async fn list(admin: &Browser, query: &str) -> Value {
    let response = admin
        .send("GET", &format!("/api/users{query}"), &[], Body::Empty)
        .await;
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()
}

fn emails(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect()
}

async fn users_are_listed_a_page_at_a_time_with_filters(backend: Backend) {
    let (_app, admin) = spawn_with_admin(backend).await;
    admin
        .send(
            "POST",
            "/api/roles",
            &[],
            Body::Json(json!({"slug": "editors", "name": "Editors"})),
        )
        .await;
    let mut made = Vec::new();
    for i in 0..5 {
        let email = format!("person{i}-{}@Example.com", uuid::Uuid::now_v7().simple());
        let role = if i % 2 == 0 {
            "editors"
        } else {
            "application-access"
        };
        let body = json!({"email": email, "password": PASSWORD, "name": format!("Person {i}"), "role": role, "is_active": i != 4});
        assert_eq!(create(&admin, body).await.status, 201);
        made.push(email);
    }
    let all = list(&admin, "").await;
    assert_eq!(
        (
            all["page"].clone(),
            all["per_page"].clone(),
            all["total"].clone()
        ),
        (json!(1), json!(20), json!(6))
    );
    let mut expected = vec![ADMIN_EMAIL.to_owned()];
    expected.extend(made.iter().cloned());
    assert_eq!(emails(&all), expected, "ordered by creation");

    let page2 = list(&admin, "?page=2&per_page=2").await;
    assert_eq!(emails(&page2), expected[2..4]);
    assert_eq!(page2["total"], 6);
    let past = list(&admin, "?page=9&per_page=2").await;
    assert!(emails(&past).is_empty());
    assert_eq!(past["total"], 6);

    assert_eq!(
        emails(&list(&admin, "?q=PERSON%203").await),
        [made[3].clone()]
    );
    assert_eq!(list(&admin, "?q=example.COM").await["total"], 6);
    assert_eq!(
        emails(&list(&admin, "?role=editors").await),
        [made[0].clone(), made[2].clone(), made[4].clone()]
    );
    assert_eq!(
        emails(&list(&admin, "?role=editors&is_active=true").await),
        [made[0].clone(), made[2].clone()]
    );
    assert_eq!(
        emails(&list(&admin, "?is_active=false").await),
        [made[4].clone()]
    );
    assert_eq!(list(&admin, "?role=nobody-has-this").await["total"], 0);
    assert_eq!(list(&admin, "?q=%25").await["total"], 0, "% is literal");
}

async fn listing_parameters_are_validated(backend: Backend) {
    let (_app, admin) = spawn_with_admin(backend).await;
    for (query, fields) in [
        ("?page=0", vec!["page"]),
        ("?per_page=101", vec!["per_page"]),
        ("?per_page=0&page=x", vec!["page", "per_page"]),
        (
            "?is_active=maybe&per_page=abc",
            vec!["per_page", "is_active"],
        ),
    ] {
        let response = admin
            .send("GET", &format!("/api/users{query}"), &[], Body::Empty)
            .await;
        assert_eq!(response.invalid_fields(), fields, "{query}");
    }
    assert_eq!(list(&admin, "?per_page=100").await["per_page"], 100);
}

async fn admins_create_read_and_delete_users(backend: Backend) {
    let (app, admin) = spawn_with_admin(backend).await;
    let email = unique_email();
    let body = json!({"email": email, "password": PASSWORD, "name": "Made", "is_superuser": true, "is_verified": true});
    let created = create(&admin, body).await;
    assert_eq!(created.status, 201);
    let user = created.json();
    assert_eq!(
        (
            user["is_superuser"].clone(),
            user["is_verified"].clone(),
            user["is_active"].clone()
        ),
        (json!(true), json!(true), json!(true))
    );
    assert_eq!(user["role"]["slug"], "application-access");
    let id = user["id"].as_str().unwrap().to_owned();

    create(
        &admin,
        json!({"email": email.to_uppercase(), "password": PASSWORD}),
    )
    .await
    .problem(409);
    let invalid = create(
        &admin,
        json!({"email": "nope", "password": "short", "role": "ghosts", "is_active": "yes"}),
    )
    .await;
    assert_eq!(
        invalid.invalid_fields(),
        ["email", "password", "role", "is_active"]
    );

    let fetched = admin
        .send("GET", &format!("/api/users/{id}"), &[], Body::Empty)
        .await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.json(), user);
    admin
        .send(
            "GET",
            &format!("/api/users/{}", uuid::Uuid::now_v7()),
            &[],
            Body::Empty,
        )
        .await
        .problem(404);
    assert_eq!(
        admin
            .send("GET", "/api/users/42", &[], Body::Empty)
            .await
            .invalid_fields(),
        ["id"]
    );

    // The new user logs in; deleting them ends that session at once and frees the email.
    let them = app.browser();
    assert_eq!(them.login(&email, PASSWORD).await.status, 204);
    assert_eq!(
        admin
            .send("DELETE", &format!("/api/users/{id}"), &[], Body::Empty)
            .await
            .status,
        204
    );
    them.me().await.problem(401);
    admin
        .send("DELETE", &format!("/api/users/{id}"), &[], Body::Empty)
        .await
        .problem(404);
    assert_eq!(app.browser().signup(&email, PASSWORD).await.status, 201);
}

/// A patch with a bad field also lists what only the store can tell (an unknown role, a
/// password equal to the email the user keeps): one 422, in declared order. A malformed patch
/// is 422 even for a missing user; a well-formed one is 404.
async fn a_bad_patch_lists_the_stored_rules_in_one_answer(backend: Backend) {
    let (_app, admin) = spawn_with_admin(backend).await;
    let email = unique_email();
    let id = create_member(&admin, &email).await;
    let patch = async |id: &str, body: Value| {
        admin
            .send("PATCH", &format!("/api/users/{id}"), &[], Body::Json(body))
            .await
    };
    assert_eq!(
        patch(&id, json!({"is_active": "no", "password": email}))
            .await
            .invalid_fields(),
        ["is_active", "password"]
    );
    assert_eq!(
        patch(&id, json!({"role": "ghosts", "email": "x"}))
            .await
            .invalid_fields(),
        ["email", "role"]
    );
    // Each alone, on a well-formed patch: the use case's own answer.
    assert_eq!(
        patch(&id, json!({"password": email}))
            .await
            .invalid_fields(),
        ["password"]
    );
    let missing = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        patch(&missing, json!({"is_active": "no", "password": email}))
            .await
            .invalid_fields(),
        ["is_active"]
    );
    patch(&missing, json!({"name": "Nobody"}))
        .await
        .problem(404);
    // Nothing was changed by the refused patches.
    let user = admin
        .send("GET", &format!("/api/users/{id}"), &[], Body::Empty)
        .await
        .json();
    assert_eq!(
        (user["is_active"].clone(), user["email"].clone()),
        (json!(true), json!(email))
    );
}

async fn admin_changes_apply_on_the_users_next_request(backend: Backend) {
    let (app, admin) = spawn_with_admin(backend).await;
    admin
        .send(
            "POST",
            "/api/roles",
            &[],
            Body::Json(json!({"slug": "editors", "name": "Editors"})),
        )
        .await;
    let (member, email) = app.logged_in().await;
    let id = member.me().await.json()["id"].as_str().unwrap().to_owned();
    let patch = |body: Value| {
        let admin = &admin;
        let id = id.clone();
        async move {
            admin
                .send("PATCH", &format!("/api/users/{id}"), &[], Body::Json(body))
                .await
        }
    };

    // Role and name: the profile shows them at once; the next token carries the new role.
    let changed = patch(json!({"role": "editors", "name": "  Renamed "})).await;
    assert_eq!(changed.status, 200);
    assert_eq!(
        (
            changed.json()["role"]["slug"].as_str(),
            changed.json()["name"].as_str()
        ),
        (Some("editors"), Some("Renamed"))
    );
    assert_eq!(member.me().await.json()["role"]["slug"], "editors");
    assert_eq!(member.refresh().await.status, 204);
    assert_eq!(
        decode_claims(&member.cookie("access_token").unwrap())["role"],
        "editors"
    );
    assert!(patch(json!({"name": null})).await.json()["name"].is_null());

    // Promotion grants admin rights at once; demotion takes them away at once, same token.
    member
        .send("GET", "/api/roles", &[], Body::Empty)
        .await
        .problem(403);
    assert_eq!(patch(json!({"is_superuser": true})).await.status, 200);
    assert_eq!(
        member
            .send("GET", "/api/roles", &[], Body::Empty)
            .await
            .status,
        200
    );
    assert_eq!(patch(json!({"is_superuser": false})).await.status, 200);
    member
        .send("GET", "/api/roles", &[], Body::Empty)
        .await
        .problem(403);

    // Email change: the new one logs in, the old one no longer does.
    let new_email = unique_email();
    assert_eq!(patch(json!({"email": new_email})).await.status, 200);
    app.browser().login(&email, PASSWORD).await.problem(401);
    assert_eq!(app.browser().login(&new_email, PASSWORD).await.status, 204);
    patch(json!({"email": ADMIN_EMAIL})).await.problem(409);
    assert_eq!(
        patch(json!({"role": "ghosts", "is_verified": "yes"}))
            .await
            .invalid_fields(),
        ["role", "is_verified"]
    );

    // A password set by an admin ends every session; the new password works.
    assert_eq!(member.me().await.status, 200);
    assert_eq!(
        patch(json!({"password": "set by the admin"})).await.status,
        200
    );
    member.me().await.problem(401);
    let again = app.browser();
    assert_eq!(
        again.login(&new_email, "set by the admin").await.status,
        204
    );

    // Deactivation ends the sessions too, and the account cannot log in.
    assert_eq!(patch(json!({"is_active": false})).await.status, 200);
    again.me().await.problem(401);
    app.browser()
        .login(&new_email, "set by the admin")
        .await
        .problem(403);
    admin
        .send(
            "PATCH",
            &format!("/api/users/{}", uuid::Uuid::now_v7()),
            &[],
            Body::Json(json!({})),
        )
        .await
        .problem(404);
}

async fn the_primary_admin_and_self_lockout_are_protected(backend: Backend) {
    let (app, primary) = spawn_with_admin(backend).await;
    let primary_id = primary.me().await.json()["id"].as_str().unwrap().to_owned();
    let other_email = unique_email();
    let other_id = create_member(&primary, &other_email).await;
    primary
        .send(
            "PATCH",
            &format!("/api/users/{other_id}"),
            &[],
            Body::Json(json!({"is_superuser": true})),
        )
        .await;
    let other = app.browser();
    other.login(&other_email, PASSWORD).await;

    let at_primary = format!("/api/users/{primary_id}");
    for (method, path, body) in [
        (
            "PATCH",
            at_primary.clone(),
            Body::Json(json!({"name": "Hijacked"})),
        ),
        (
            "PATCH",
            at_primary.clone(),
            Body::Json(json!({"is_active": false})),
        ),
        ("DELETE", at_primary.clone(), Body::Empty),
        ("DELETE", format!("{at_primary}/sessions"), Body::Empty),
    ] {
        let refused = other.send(method, &path, &[], body).await;
        assert!(
            refused.problem(403)["detail"]
                .as_str()
                .unwrap()
                .contains("primary admin"),
            "{method} {path}"
        );
    }
    // Neither the primary admin nor any superuser may lock themselves out.
    for (who, path) in [
        (&primary, at_primary.clone()),
        (&other, format!("/api/users/{other_id}")),
    ] {
        for body in [json!({"is_active": false}), json!({"is_superuser": false})] {
            who.send("PATCH", &path, &[], Body::Json(body))
                .await
                .problem(403);
        }
        who.send("DELETE", &path, &[], Body::Empty)
            .await
            .problem(403);
    }
    // The primary admin may change itself otherwise, and stays primary under a new email.
    let renamed = primary
        .send(
            "PATCH",
            &at_primary,
            &[],
            Body::Json(json!({"email": "boss@example.com"})),
        )
        .await;
    assert_eq!(renamed.status, 200);
    other
        .send(
            "PATCH",
            &at_primary,
            &[],
            Body::Json(json!({"name": "Still protected"})),
        )
        .await
        .problem(403);
    // And it may act on other superusers.
    assert_eq!(
        primary
            .send(
                "PATCH",
                &format!("/api/users/{other_id}"),
                &[],
                Body::Json(json!({"is_superuser": false}))
            )
            .await
            .status,
        200
    );
    assert_eq!(
        primary
            .send("GET", &at_primary, &[], Body::Empty)
            .await
            .json()["is_superuser"],
        true
    );
}

async fn a_users_sessions_are_listed_and_revoked_by_an_admin(backend: Backend) {
    let (app, admin) = spawn_with_admin(backend).await;
    let (member, email) = app.logged_in().await;
    let phone = app.browser();
    phone.login(&email, PASSWORD).await;
    let id = member.me().await.json()["id"].as_str().unwrap().to_owned();
    let sessions = admin
        .send(
            "GET",
            &format!("/api/users/{id}/sessions"),
            &[],
            Body::Empty,
        )
        .await;
    assert_eq!(sessions.status, 200);
    let sessions = sessions.json();
    assert_eq!(sessions.as_array().unwrap().len(), 2);
    assert!(
        sessions
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["current"] == false)
    );
    assert_eq!(
        admin
            .send(
                "DELETE",
                &format!("/api/users/{id}/sessions"),
                &[],
                Body::Empty
            )
            .await
            .status,
        204
    );
    member.me().await.problem(401);
    phone.refresh().await.problem(401);
    let missing = uuid::Uuid::now_v7();
    admin
        .send(
            "GET",
            &format!("/api/users/{missing}/sessions"),
            &[],
            Body::Empty,
        )
        .await
        .problem(404);
    admin
        .send(
            "DELETE",
            &format!("/api/users/{missing}/sessions"),
            &[],
            Body::Empty,
        )
        .await
        .problem(404);
    // The primary admin may log itself out everywhere.
    let admin_id = admin.me().await.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        admin
            .send(
                "DELETE",
                &format!("/api/users/{admin_id}/sessions"),
                &[],
                Body::Empty
            )
            .await
            .status,
        204
    );
    admin.me().await.problem(401);
}

async fn admin_endpoints_refuse_members_and_strangers(backend: Backend) {
    let (app, admin) = spawn_with_admin(backend).await;
    let (member, _) = app.logged_in().await;
    let admin_id = admin.me().await.json()["id"].as_str().unwrap().to_owned();
    let user = format!("/api/users/{admin_id}");
    let sessions = format!("/api/users/{admin_id}/sessions");
    assert_superuser_only(
        &member,
        &app.browser(),
        &[
            ("GET", "/api/users", Body::Empty),
            ("POST", "/api/users", Body::Json(json!({}))),
            ("GET", &user, Body::Empty),
            ("PATCH", &user, Body::Json(json!({}))),
            ("DELETE", &user, Body::Empty),
            ("GET", &sessions, Body::Empty),
            ("DELETE", &sessions, Body::Empty),
        ],
    )
    .await;
}

async fn concurrent_creates_of_one_email_make_one_user(backend: Backend) {
    let (app, admin) = spawn_with_admin(backend).await;
    let email = unique_email();
    let admins: Vec<Browser> = (0..6).map(|_| share_login(&app, &admin)).collect();
    let responses = join_all(
        admins
            .iter()
            .map(|a| create(a, json!({"email": email, "password": PASSWORD}))),
    )
    .await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(list(&admin, &format!("?q={email}")).await["total"], 1);
}

/// Another client holding the same admin session.
fn share_login(app: &TestApp, admin: &Browser) -> Browser {
    let browser = app.browser();
    browser.set_cookie("access_token", &admin.cookie("access_token").unwrap());
    browser
}
