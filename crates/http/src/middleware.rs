//! Request id, the one log line per request, and `Cache-Control` under `/api/`.

use std::cell::Cell;
use std::num::NonZeroU32;
use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{CACHE_CONTROL, HeaderName, HeaderValue};
use actix_web::middleware::Next;

use actix_web::web::Data;
use tracing::Instrument;

use crate::AppState;
use crate::extract::LoggedUser;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id: the client's own when it is 1 to 128 visible ASCII characters, else a
/// fresh UUID. Echoed on every response.
#[derive(Clone)]
pub(crate) struct RequestId(pub HeaderValue);

pub(crate) async fn request_id(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .filter(|value| {
            let bytes = value.as_bytes();
            (1..=128).contains(&bytes.len()) && bytes.iter().all(|b| (0x21..=0x7e).contains(b))
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
        });
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.call(request).await?;
    response.headers_mut().insert(REQUEST_ID, id);
    Ok(response)
}

/// `Cache-Control: no-store` on every answer under `/api/`, errors included: nothing personal
/// is kept by a browser or a shared cache. Other paths (health, metrics, keys, the document)
/// are left as their handlers answer them.
pub(crate) async fn no_store(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let under_api = is_under_api(request.path());
    let mut response = next.call(request).await?;
    if under_api {
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

fn is_under_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

pub(crate) async fn log_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "(unmatched)".to_owned());
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone());
    let request_id = request_id
        .as_ref()
        .and_then(|id| id.to_str().ok())
        .unwrap_or("-");
    let state = request.app_data::<Data<AppState>>();
    let client_ip = state
        .and_then(|state| state.settings.trusted_proxies.client_ip(request.request()))
        .map(|ip| ip.to_string());
    let sample = state.map_or(NonZeroU32::MIN, |state| state.settings.access_log_sample);
    // Every event of the request (failed logins, reuse detections, revocations, admin
    // changes) carries its request id and client IP through this span.
    let span = tracing::info_span!(
        "request",
        request_id,
        client_ip = client_ip.as_deref().unwrap_or("-"),
    );
    let response = next.call(request).instrument(span).await?;
    let latency = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    crate::metrics::request(&route, method.as_str(), status, latency);
    let read = method == Method::GET || method == Method::HEAD;
    if read && status < 400 && !SUCCESSFUL_READS.with(|reads| reads.logs_next(sample)) {
        return Ok(response);
    }
    let user_id = response
        .request()
        .extensions()
        .get::<LoggedUser>()
        .map(|user| user.0.to_string());
    // Outside the span, with its fields written out: a JSON line inside a span carries the
    // span's fields twice, re-read from text, which cost more than the rest of the line.
    tracing::info!(
        request_id,
        client_ip = client_ip.as_deref().unwrap_or("-"),
        %method,
        route,
        status,
        latency_ms = latency * 1000.0,
        user_id = user_id.as_deref().unwrap_or("-"),
        "request"
    );
    Ok(response)
}

thread_local! {
    /// This worker's draws for the access log's sampling: per thread, so no worker waits on
    /// another, and seeded at random, so no client can tell which of its reads get a line.
    static SUCCESSFUL_READS: Sampler = Sampler::new(random_seed());
}

fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::thread::current().id())
}

/// Picks about one event in `n`, at random (xorshift64*: cheap, and unpredictable enough that
/// a client cannot line its reads up with the unlogged ones).
struct Sampler {
    state: Cell<u64>,
}

impl Sampler {
    fn new(seed: u64) -> Self {
        // xorshift never leaves 0.
        Self {
            state: Cell::new(seed | 1),
        }
    }

    /// Draws for one event; whether it is picked.
    fn logs_next(&self, one_in: NonZeroU32) -> bool {
        if one_in == NonZeroU32::MIN {
            return true;
        }
        let mut x = self.state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % u64::from(one_in.get()) == 0
    }
}

#[cfg(test)]
mod sampler_tests {
    use std::num::NonZeroU32;

    use super::Sampler;

    #[test]
    fn a_sampler_picks_about_one_in_n_and_not_in_a_pattern() {
        let three = NonZeroU32::new(3).unwrap();
        let sampler = Sampler::new(42);
        let picks: Vec<bool> = (0..30_000).map(|_| sampler.logs_next(three)).collect();
        let picked = picks.iter().filter(|&&picked| picked).count();
        assert!((9_700..10_300).contains(&picked), "{picked} of 30000");
        // Not every third: the gaps between picks vary.
        let positions: Vec<usize> = (0..picks.len()).filter(|&at| picks[at]).collect();
        let gaps: std::collections::BTreeSet<usize> =
            positions.windows(2).map(|pair| pair[1] - pair[0]).collect();
        assert!(gaps.len() > 5, "gaps {gaps:?}");
        // Two seeds draw differently, and each thread's seed is drawn at random.
        let other = Sampler::new(7);
        let others: Vec<bool> = (0..64).map(|_| other.logs_next(three)).collect();
        assert_ne!(others, picks[..64]);
        assert_ne!(super::random_seed(), super::random_seed());
        let every = Sampler::new(1);
        assert!(
            (0..100).all(|_| every.logs_next(NonZeroU32::MIN)),
            "one in one is all"
        );
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use actix_web::{App, HttpResponse, test, web};

    use super::*;

    #[actix_web::test]
    async fn answers_under_api_are_not_stored_and_others_are_left_alone() {
        let app = test::init_service(
            App::new()
                .route("/api/ok", web::get().to(HttpResponse::Ok))
                .route("/api/gone", web::get().to(HttpResponse::NotFound))
                .route("/apiary", web::get().to(HttpResponse::Ok))
                .route("/health", web::get().to(HttpResponse::Ok))
                .default_service(web::to(HttpResponse::NotFound))
                .wrap(actix_web::middleware::from_fn(no_store)),
        )
        .await;
        for (path, status, expected) in [
            ("/api/ok", StatusCode::OK, Some("no-store")),
            ("/api/gone", StatusCode::NOT_FOUND, Some("no-store")),
            ("/api/nowhere", StatusCode::NOT_FOUND, Some("no-store")),
            ("/api", StatusCode::NOT_FOUND, Some("no-store")),
            ("/apiary", StatusCode::OK, None),
            ("/health", StatusCode::OK, None),
            ("/nowhere", StatusCode::NOT_FOUND, None),
        ] {
            let response =
                test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
            assert_eq!(response.status(), status, "{path}");
            assert_eq!(
                response
                    .headers()
                    .get(CACHE_CONTROL)
                    .and_then(|value| value.to_str().ok()),
                expected,
                "{path}"
            );
        }
    }
}
