use futures_util::stream;

use crate::helpers::{Backend, Body, both, spawn_app};

both!(
    every_response_carries_a_request_id,
    unknown_routes_and_methods_are_problems,
    bodies_over_the_limit_are_413_by_declared_length_or_by_bytes_read,
);

async fn every_response_carries_a_request_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    let generated = browser
        .me()
        .await
        .header("x-request-id")
        .expect("request id");
    assert!(generated.parse::<uuid::Uuid>().is_ok());
    let echoed = browser
        .send(
            "GET",
            "/api/access/me",
            &[("x-request-id", "client-chosen.id_1")],
            Body::Empty,
        )
        .await;
    assert_eq!(
        echoed.header("x-request-id").as_deref(),
        Some("client-chosen.id_1")
    );
    let too_long = "x".repeat(129);
    let replaced = browser
        .send(
            "GET",
            "/api/access/me",
            &[("x-request-id", &too_long)],
            Body::Empty,
        )
        .await;
    assert_ne!(
        replaced.header("x-request-id").as_deref(),
        Some(too_long.as_str())
    );
    // Replaced by a fresh one, not dropped.
    let fresh = replaced.header("x-request-id").expect("a request id");
    assert!(fresh.parse::<uuid::Uuid>().is_ok(), "{fresh}");
}

async fn unknown_routes_and_methods_are_problems(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = app.browser();
    browser
        .send("GET", "/api/nothing-here", &[], Body::Empty)
        .await
        .problem(404);
    browser
        .send("GET", "/api/access/login", &[], Body::Empty)
        .await
        .problem(405);
    browser
        .send("PUT", "/api/access/sessions/abc", &[], Body::Empty)
        .await
        .problem(405);
}

async fn bodies_over_the_limit_are_413_by_declared_length_or_by_bytes_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let big = vec![b'a'; 65 * 1024];
    let declared = app
        .browser()
        .send(
            "POST",
            "/api/access/signup",
            &[],
            Body::Raw("application/json", big.clone()),
        )
        .await;
    declared.problem(413);
    // Chunked, no Content-Length: refused once the bytes read pass the limit.
    let chunks = big
        .chunks(8 * 1024)
        .map(|chunk| Ok::<_, std::io::Error>(actix_web::web::Bytes::copy_from_slice(chunk)))
        .collect::<Vec<_>>();
    let mut response = awc::Client::new()
        .post(format!("{}/api/access/signup", app.base))
        .insert_header(("content-type", "application/json"))
        .send_stream(stream::iter(chunks))
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 413);
    let body = response.body().await.unwrap();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["status"], 413);
}
