use crate::helpers::{Backend, Body, PASSWORD, both, spawn_app};

both!(
    sessions_lists_live_sessions_and_flags_the_current_one,
    revoking_a_session_ends_it_on_the_next_request,
    someone_elses_or_a_malformed_session_id_is_refused,
);

async fn sessions_lists_live_sessions_and_flags_the_current_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, email) = app.logged_in().await;
    let phone = app.browser();
    phone
        .send(
            "POST",
            "/api/access/login",
            &[("user-agent", "phone/1.0")],
            Body::Form(&[("username", &email), ("password", PASSWORD)]),
        )
        .await;
    let response = browser.sessions().await;
    assert_eq!(response.status, 200);
    let sessions = response.json();
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<bool> = sessions
        .iter()
        .map(|s| s["current"].as_bool().unwrap())
        .collect();
    assert_eq!(current.iter().filter(|c| **c).count(), 1);
    let phone_session = sessions
        .iter()
        .find(|s| s["user_agent"] == "phone/1.0")
        .expect("phone session");
    assert_eq!(phone_session["current"], false);
    assert_eq!(phone_session["ip"], "127.0.0.1");
    for field in ["id", "created_at", "last_used_at", "expires_at"] {
        assert!(phone_session[field].is_string(), "{field} missing");
    }
    app.browser().sessions().await.problem(401);
}

async fn revoking_a_session_ends_it_on_the_next_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let (browser, email) = app.logged_in().await;
    let phone = app.browser();
    phone.login(&email, PASSWORD).await;
    assert_eq!(phone.me().await.status, 200);
    let sessions = browser.sessions().await.json();
    let other = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = browser
        .send(
            "DELETE",
            &format!("/api/access/sessions/{other}"),
            &[],
            Body::Empty,
        )
        .await;
    assert_eq!(response.status, 204);
    phone.me().await.problem(401);
    assert_eq!(browser.me().await.status, 200);
    // Again: no longer a live session.
    browser
        .send(
            "DELETE",
            &format!("/api/access/sessions/{other}"),
            &[],
            Body::Empty,
        )
        .await
        .problem(404);
    // The current one can go too.
    let current = browser.sessions().await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        browser
            .send(
                "DELETE",
                &format!("/api/access/sessions/{current}"),
                &[],
                Body::Empty
            )
            .await
            .status,
        204
    );
    browser.me().await.problem(401);
}

async fn someone_elses_or_a_malformed_session_id_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, _) = app.logged_in().await;
    let (bob, _) = app.logged_in().await;
    let bobs = bob.sessions().await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    alice
        .send(
            "DELETE",
            &format!("/api/access/sessions/{bobs}"),
            &[],
            Body::Empty,
        )
        .await
        .problem(404);
    assert_eq!(bob.me().await.status, 200);
    let malformed = alice
        .send(
            "DELETE",
            "/api/access/sessions/not-a-uuid",
            &[],
            Body::Empty,
        )
        .await;
    assert_eq!(malformed.invalid_fields(), ["sid"]);
}

/// The client IP of a session: `X-Forwarded-For` only from a trusted proxy.
#[actix_web::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    for (trusted, expected) in [
        ("10.0.0.0/8, 127.0.0.1", "203.0.113.50"),
        ("10.0.0.0/8", "127.0.0.1"),
    ] {
        let app = crate::helpers::spawn_with(Backend::Memory, |settings| {
            settings.trusted_proxies = trusted.parse().unwrap();
        })
        .await;
        let browser = app.browser();
        let email = crate::helpers::unique_email();
        browser.signup(&email, PASSWORD).await;
        let form = [("username", email.as_str()), ("password", PASSWORD)];
        let forwarded = [("x-forwarded-for", "198.51.100.1, 203.0.113.50")];
        assert_eq!(
            browser
                .send("POST", "/api/access/login", &forwarded, Body::Form(&form))
                .await
                .status,
            204
        );
        let sessions = browser.sessions().await.json();
        assert_eq!(sessions[0]["ip"], expected, "trusting {trusted}");
    }
}
