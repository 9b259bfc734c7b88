//! Operations: liveness, readiness, and the published signing keys.

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::AppState;
use crate::problem;

pub(crate) const PATHS: &[&str] = &[
    "/health",
    "/ready",
    "/.well-known/jwks.json",
    "/metrics",
    "/openapi.json",
];

pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready))
        .route("/.well-known/jwks.json", web::get().to(jwks))
        .route("/metrics", web::get().to(metrics))
        .route("/openapi.json", web::get().to(openapi));
}

#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
pub(crate) async fn openapi(
    document: web::Data<Document>,
) -> Result<HttpResponse, crate::ApiError> {
    let body = match document.json.get() {
        Some(body) => body.clone(),
        None => {
            let json =
                serde_json::to_vec(&crate::openapi::served(&document.policy)).map_err(|error| {
                    crate::ApiError::Internal(
                        anyhow::Error::new(error).context("serialising the OpenAPI document"),
                    )
                })?;
            document.json.get_or_init(|| json.into()).clone()
        }
    };
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body))
}

/// The OpenAPI document this handler serves, saying the app's password policy: given by
/// [`crate::app`] (it is built from the routes, so the routes do not build it), and serialised
/// on the first request, so an idle worker holds neither the document nor its JSON.
pub(crate) struct Document {
    policy: authd_domain::PasswordPolicy,
    json: std::sync::OnceLock<web::Bytes>,
}

impl Document {
    pub(crate) fn new(policy: authd_domain::PasswordPolicy) -> Self {
        Self {
            policy,
            json: std::sync::OnceLock::new(),
        }
    }
}

/// Prometheus text, when this listener serves it (`AUTHD_METRICS_LISTEN` unset).
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 404, description = "Served on AUTHD_METRICS_LISTEN instead"),
    )
)]
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match &state.settings.metrics {
        Some(render) => metrics_response(render),
        None => crate::ApiError::NotFound("metrics are served on AUTHD_METRICS_LISTEN".into())
            .response_with(|_| {}),
    }
}

pub(crate) fn metrics_response(render: &crate::RenderMetrics) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(render())
}

/// The process answers: nothing else is checked (that is `/ready`).
#[utoipa::path(
    get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process runs", content_type = "application/json"))
)]
pub(crate) async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(r#"{"status":"ok"}"#)
}

/// Postgres and Redis each answer within their short timeouts: `200`, else a `503` problem
/// naming what failed in `checks`.
#[utoipa::path(
    get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Postgres and Redis answer", content_type = "application/json"),
        problem::Ready,
    )
)]
pub(crate) async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let readiness = state.use_cases.check_readiness.execute().await;
    let word = |up: bool| if up { "ok" } else { "unavailable" };
    let checks = json!({"database": word(readiness.database), "cache": word(readiness.cache)});
    if readiness.is_ready() {
        return HttpResponse::Ok().json(json!({"status": "ok", "checks": checks}));
    }
    let failed: Vec<&str> = [("database", readiness.database), ("cache", readiness.cache)]
        .into_iter()
        .filter(|(_, up)| !up)
        .map(|(name, _)| name)
        .collect();
    let status = StatusCode::SERVICE_UNAVAILABLE;
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .json(json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Service Unavailable"),
            "status": status.as_u16(),
            "detail": format!("Not ready: the {} is unavailable", failed.join(" and the ")),
            "checks": checks,
        }))
}

/// The public keys that verify access tokens, signing and verify-only alike.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "operations",
    responses((status = 200, description = "The keys that verify access tokens", content_type = "application/json"))
)]
pub(crate) async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(&state.settings.jwks)
}
