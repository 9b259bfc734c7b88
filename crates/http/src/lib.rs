//! # authd HTTP transport
//!
//! The actix-web face of authd: routes, extractors, request and response DTOs, and the one place
//! where errors become `application/problem+json` ([`ApiError`]). Handlers translate HTTP into
//! use-case calls and back; no auth logic lives here. Depends on the application and domain
//! crates only, never on an adapter.

mod browsers;
mod client_ip;
mod cookies;
mod dto;
mod errors;
mod extract;
mod fallback;
mod metrics;
mod middleware;
mod openapi;
mod problem;
mod requests;
mod routes;
mod state;

pub use browsers::{AllowedOrigins, BrowserPolicy, Origin, OriginError};
pub use client_ip::TrustedProxies;
pub use cookies::CookieSettings;
pub use errors::{ApiError, FieldError};
pub use metrics::RenderMetrics;
pub use routes::registered_paths;
pub use state::{AppState, HttpSettings, UseCases};

use actix_web::web;

/// Registers every route, the JSON 404/405 answers and the middleware on an actix `App`.
///
/// From the outside in: the request id, the log line and `Cache-Control` (they only stamp and
/// record, so every answer has them), then the Origin check (a cross-site write is refused
/// before anything acts on the request: routing, authentication, the body), then CORS (so an
/// allowed origin's answers carry its headers, errors included), then the routes.
pub fn app(
    state: AppState,
) -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let allowed_origins = state.settings.browsers.allowed_origins.clone();
    let document = routes::ops::Document::new(state.settings.password_policy);
    actix_web::App::new()
        .app_data(web::Data::new(state))
        .app_data(web::Data::new(document))
        .configure(routes::configure)
        .default_service(web::to(fallback::not_found))
        .wrap(browsers::Cors::new(allowed_origins))
        .wrap(actix_web::middleware::from_fn(browsers::refuse_cross_site))
        .wrap(actix_web::middleware::from_fn(middleware::no_store))
        .wrap(actix_web::middleware::from_fn(middleware::log_request))
        .wrap(actix_web::middleware::from_fn(middleware::request_id))
}

/// An app serving only `/metrics`, for a separate (private) listener.
pub fn metrics_app(
    render: RenderMetrics,
) -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    actix_web::App::new().route(
        "/metrics",
        web::get().to(move || {
            let render = render.clone();
            async move { routes::metrics_response(&render) }
        }),
    )
}
