//! Browsers: cross-site writes refused before anything else is looked at (the Origin check),
//! and CORS answered for `AUTHD_ALLOWED_ORIGINS` only (through `actix-cors`).

use std::fmt;
use std::rc::Rc;
use std::str::FromStr;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{Error, ResponseError};
use futures_util::future::LocalBoxFuture;

use crate::{ApiError, AppState};

/// A web origin, the scheme, host and port a browser puts in `Origin`. Two origins are equal
/// when all three are, a scheme's default port written out or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(url::Origin);

/// Why a string is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an origin (scheme://host[:port], http or https, no path): {1}")]
pub struct OriginError(String, &'static str);

impl FromStr for Origin {
    type Err = OriginError;

    /// `http` or `https`, a host, an optional port; nothing else but an optional trailing `/`
    /// (no user info, path, query or fragment).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |why| OriginError(s.to_owned(), why);
        // The URL parser forgives a lot (missing slashes, backslashes, spaces, tabs): the raw
        // text is checked first, so only what a browser would send is taken.
        let (scheme, rest) = s.split_once("://").ok_or_else(|| invalid("no scheme"))?;
        if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
            return Err(invalid("the scheme must be http or https"));
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err(invalid("no host"));
        }
        if let Some(bad) = authority.chars().find(|c| {
            matches!(c, '/' | '?' | '#' | '@' | '\\') || c.is_whitespace() || c.is_control()
        }) {
            return Err(invalid(match bad {
                '/' => "a path is not part of an origin",
                '?' => "a query is not part of an origin",
                '#' => "a fragment is not part of an origin",
                '@' => "user info is not part of an origin",
                _ => "a character that has no place in a host",
            }));
        }
        let url = url::Url::parse(s).map_err(|_| invalid("not a valid host and port"))?;
        match url.origin() {
            origin @ url::Origin::Tuple(..) => Ok(Self(origin)),
            url::Origin::Opaque(_) => Err(invalid("not a valid host and port")),
        }
    }
}

impl fmt::Display for Origin {
    /// As browsers write it: `https://auth.example.com`, the default port left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.ascii_serialization())
    }
}

impl Origin {
    /// Whether this origin names the host and port of a `Host` header, whatever its scheme:
    /// `Host` carries no scheme. A `Host` without a port stands for the origin's default port.
    fn is_at(&self, host: &str) -> bool {
        let url::Origin::Tuple(scheme, origin_host, origin_port) = &self.0 else {
            return false;
        };
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        let Ok(name) = url::Host::parse(name) else {
            return false;
        };
        let default_port = match scheme.as_str() {
            "https" => 443,
            _ => 80,
        };
        name == *origin_host && port.unwrap_or(default_port) == *origin_port
    }
}

/// `host[:port]` of a `Host` header; an IPv6 address is bracketed.
fn split_host(value: &str) -> Option<(&str, Option<u16>)> {
    let split_at = if value.starts_with('[') {
        value.find(']')? + 1
    } else {
        value.find(':').unwrap_or(value.len())
    };
    let (name, rest) = value.split_at(split_at);
    if rest.is_empty() {
        return Some((name, None));
    }
    let port = rest.strip_prefix(':')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((name, Some(port.parse().ok()?)))
}

/// `AUTHD_ALLOWED_ORIGINS`: the origins whose browser requests are allowed and get CORS answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<Origin>);

impl AllowedOrigins {
    /// Whether no origin is allowed (then CORS is not answered at all).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn contains(&self, origin: &Origin) -> bool {
        self.0.contains(origin)
    }

    /// Whether an `Origin` header names one of these origins.
    fn allow(&self, header: &HeaderValue) -> bool {
        parse_header(header).is_some_and(|origin| self.contains(&origin))
    }
}

impl FromStr for AllowedOrigins {
    type Err = OriginError;

    /// Comma-separated origins; blanks around them and empty entries are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

fn parse_header(header: &HeaderValue) -> Option<Origin> {
    header.to_str().ok()?.parse().ok()
}

/// Which browser requests are the server's own or allowed.
#[derive(Debug, Clone, Default)]
pub struct BrowserPolicy {
    /// `AUTHD_PUBLIC_URL`: the server's own origin; unset, the request's `Host` decides.
    pub public_url: Option<Origin>,
    /// `AUTHD_ALLOWED_ORIGINS`.
    pub allowed_origins: AllowedOrigins,
}

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// `Origin` is neither the server's own nor allowed (`null` and junk included).
    ForeignOrigin,
    /// No `Origin`, but the browser says the request comes from another site.
    CrossSite,
}

impl BrowserPolicy {
    /// Whether a request is a cross-site write to refuse: an unsafe method (anything but the
    /// safe methods of RFC 9110) with an `Origin` that is neither the server's own nor allowed,
    /// or without `Origin` but with `Sec-Fetch-Site: cross-site`. `host` is the request's
    /// `Host` (its authority).
    fn refusal(&self, method: &Method, headers: &HeaderMap, host: Option<&str>) -> Option<Refusal> {
        if matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) {
            return None;
        }
        let mut origins = headers.get_all(header::ORIGIN);
        let (Some(origin), None) = (origins.next(), origins.next()) else {
            let cross_site = headers
                .get_all("sec-fetch-site")
                .any(|value| value.as_bytes().eq_ignore_ascii_case(b"cross-site"));
            // Two `Origin` headers are as foreign as a wrong one.
            return if headers.contains_key(header::ORIGIN) {
                Some(Refusal::ForeignOrigin)
            } else {
                cross_site.then_some(Refusal::CrossSite)
            };
        };
        let Some(origin) = parse_header(origin) else {
            return Some(Refusal::ForeignOrigin);
        };
        let own = match &self.public_url {
            Some(public) => *public == origin,
            None => host.is_some_and(|host| origin.is_at(host)),
        };
        (!own && !self.allowed_origins.contains(&origin)).then_some(Refusal::ForeignOrigin)
    }
}

/// The Origin check: a cross-site write gets `403` before routing, authentication or any read
/// of the body. Only the request id, the log line and `Cache-Control` wrap it, so the refusal
/// is answered like every other response.
pub(crate) async fn refuse_cross_site<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str())
        });
    let refusal = match request.app_data::<Data<AppState>>() {
        Some(state) => state
            .settings
            .browsers
            .refusal(request.method(), request.headers(), host),
        None => BrowserPolicy::default().refusal(request.method(), request.headers(), host),
    };
    let Some(refusal) = refusal else {
        return Ok(next.call(request).await?.map_into_left_body());
    };
    let (reason, detail) = match refusal {
        Refusal::ForeignOrigin => (
            "origin",
            "cross-site request refused: the origin is not allowed",
        ),
        Refusal::CrossSite => ("sec-fetch-site", "cross-site request refused"),
    };
    tracing::info!(
        reason,
        method = %request.method(),
        path = request.path(),
        "cross-site request refused"
    );
    let response = ApiError::Forbidden(detail.into()).error_response();
    Ok(request.into_response(response).map_into_right_body())
}

/// The methods a preflight may ask for: every method a route answers.
const CORS_METHODS: [&str; 4] = ["GET", "POST", "PATCH", "DELETE"];
/// The request headers a preflight may ask for.
const CORS_HEADERS: [&str; 3] = ["Content-Type", "Authorization", "X-Request-Id"];
/// The response headers a page may read besides the safelisted ones.
const CORS_EXPOSED: [&str; 2] = ["X-Request-Id", "Retry-After"];
/// How long a browser may keep a preflight's answer, in seconds.
const CORS_MAX_AGE: usize = 600;

/// CORS for `AUTHD_ALLOWED_ORIGINS`, by `actix-cors`. A request whose `Origin` is allowed goes
/// through `actix-cors` (a preflight is answered `204` there, an actual response gets the origin
/// and credentials headers); every other request passes as if CORS did not exist, without a
/// CORS header (a preflight from another origin is an `OPTIONS` like any other: `405`). With
/// allowed origins, every response says `Vary: Origin`; with none, nothing is added.
pub(crate) struct Cors {
    allowed: AllowedOrigins,
}

impl Cors {
    pub(crate) fn new(allowed: AllowedOrigins) -> Self {
        Self { allowed }
    }

    fn actix_cors(&self) -> actix_cors::Cors {
        let allowed = self.allowed.clone();
        actix_cors::Cors::default()
            .allowed_origin_fn(move |origin, _| allowed.allow(origin))
            .allowed_methods(CORS_METHODS)
            .allowed_headers(CORS_HEADERS)
            .expose_headers(CORS_EXPOSED)
            .supports_credentials()
            .max_age(CORS_MAX_AGE)
            // `Vary` is ours: on every response, and just `Origin`.
            .disable_vary_header()
    }
}

impl<S, B> Transform<S, ServiceRequest> for Cors
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<EitherBody<B>, B>>;
    type Error = Error;
    type InitError = ();
    type Transform = CorsMiddleware<S>;
    type Future = LocalBoxFuture<'static, Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let service = Rc::new(service);
        let cors = (!self.allowed.is_empty())
            .then(|| self.actix_cors().new_transform(Shared(Rc::clone(&service))));
        let allowed = self.allowed.clone();
        // actix-cors writes its lists in hash order; these are written in the order above.
        let lists = [
            (header::ACCESS_CONTROL_ALLOW_METHODS, &CORS_METHODS[..]),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, &CORS_HEADERS),
            (header::ACCESS_CONTROL_EXPOSE_HEADERS, &CORS_EXPOSED),
        ]
        .map(|(name, items)| (name, HeaderValue::from_str(&items.join(", "))));
        Box::pin(async move {
            let cors = match cors {
                Some(cors) => Some(cors.await?),
                None => None,
            };
            let mut ordered = Vec::with_capacity(lists.len());
            for (name, value) in lists {
                ordered.push((name, value.map_err(|_| ())?));
            }
            Ok(CorsMiddleware {
                service,
                cors,
                allowed,
                lists: Rc::new(ordered),
            })
        })
    }
}

/// The service behind [`Cors`], reached through `actix-cors` or directly.
struct Shared<S>(Rc<S>);

impl<S: Service<ServiceRequest>> Service<ServiceRequest> for Shared<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &self,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(context)
    }

    fn call(&self, request: ServiceRequest) -> Self::Future {
        self.0.call(request)
    }
}

/// [`Cors`] at work: `actix-cors` for the allowed origins, the service itself for the rest.
pub(crate) struct CorsMiddleware<S> {
    service: Rc<S>,
    cors: Option<actix_cors::CorsMiddleware<Shared<S>>>,
    allowed: AllowedOrigins,
    /// The list headers, each in a fixed order.
    lists: Rc<Vec<(header::HeaderName, HeaderValue)>>,
}

impl<S, B> Service<ServiceRequest> for CorsMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<EitherBody<B>, B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Error>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let Some(cors) = &self.cors else {
            let call = self.service.call(request);
            return Box::pin(async move { Ok(call.await?.map_into_right_body()) });
        };
        let allowed = request
            .headers()
            .get(header::ORIGIN)
            .is_some_and(|origin| self.allowed.allow(origin));
        if !allowed {
            let call = self.service.call(request);
            return Box::pin(async move {
                let mut response = call.await?;
                vary_on_origin(response.headers_mut());
                Ok(response.map_into_right_body())
            });
        }
        let preflight = request.method() == Method::OPTIONS
            && request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        let call = cors.call(request);
        let lists = Rc::clone(&self.lists);
        Box::pin(async move {
            let mut response = call.await?;
            if let Some(refused) = response
                .response()
                .error()
                .and_then(|error| error.as_error::<actix_cors::CorsError>())
            {
                // actix-cors answers a refused preflight in plain text: ours is problem+json.
                let error = ApiError::BadRequest(format!("CORS preflight refused: {refused}"));
                let (request, _) = response.into_parts();
                let mut response = ServiceResponse::new(request, error.error_response());
                vary_on_origin(response.headers_mut());
                return Ok(response.map_into_right_body().map_into_left_body());
            }
            let headers = response.headers_mut();
            for (name, value) in lists.iter() {
                if headers.contains_key(name) {
                    headers.insert(name.clone(), value.clone());
                }
            }
            vary_on_origin(headers);
            if preflight && response.status() == StatusCode::OK {
                *response.response_mut().status_mut() = StatusCode::NO_CONTENT;
            }
            Ok(response.map_into_left_body())
        })
    }
}

/// Adds `Origin` to `Vary`, keeping what is there.
fn vary_on_origin(headers: &mut HeaderMap) {
    let listed = headers
        .get_all(header::VARY)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|name| {
            let name = name.trim();
            name.eq_ignore_ascii_case("origin") || name == "*"
        });
    if !listed {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::{self as actix_test, TestRequest};
    use actix_web::{App, HttpResponse, web};

    use super::*;

    fn origin(text: &str) -> Origin {
        text.parse().unwrap()
    }

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for good in [
            "https://auth.example.com",
            "https://auth.example.com/",
            "http://127.0.0.1:8000",
            "HTTPS://Auth.Example.COM:8443",
            "http://[::1]:3000",
            "https://bücher.example",
        ] {
            assert!(good.parse::<Origin>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "null",
            "auth.example.com",
            "ftp://auth.example.com",
            "https://",
            "https:auth.example.com",
            "https:/auth.example.com",
            "https://auth.example.com/app",
            "https://auth.example.com//",
            "https://auth.example.com?x=1",
            "https://auth.example.com/?",
            "https://auth.example.com#top",
            "https://user:pass@auth.example.com",
            "https://user@auth.example.com",
            "https://auth.example.com:99999",
            "https://auth.example.com:x",
            "https://auth example.com",
            " https://auth.example.com",
            "https://auth.example.com\\",
            "https://exa%mple.com",
        ] {
            assert!(bad.parse::<Origin>().is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn origins_compare_normalised() {
        assert_eq!(
            origin("https://Auth.Example.com:443/"),
            origin("https://auth.example.com")
        );
        assert_eq!(
            origin("http://example.com:80"),
            origin("http://example.com")
        );
        assert_eq!(
            origin("https://bücher.example"),
            origin("https://xn--bcher-kva.example")
        );
        assert_ne!(
            origin("http://auth.example.com"),
            origin("https://auth.example.com")
        );
        assert_ne!(
            origin("https://auth.example.com:8443"),
            origin("https://auth.example.com")
        );
        assert_eq!(
            origin("HTTPS://Auth.Example.com:443/").to_string(),
            "https://auth.example.com"
        );
    }

    #[test]
    fn allowed_origins_are_a_comma_separated_list() {
        let allowed: AllowedOrigins = " https://a.example , http://b.example:3000,,"
            .parse()
            .unwrap();
        assert!(allowed.contains(&origin("https://a.example:443")));
        assert!(allowed.contains(&origin("http://b.example:3000")));
        assert!(!allowed.contains(&origin("http://a.example")));
        assert!("".parse::<AllowedOrigins>().unwrap().is_empty());
        let error = "https://a.example,https://b.example/path"
            .parse::<AllowedOrigins>()
            .unwrap_err();
        assert!(error.to_string().contains("b.example/path"), "{error}");
    }

    #[test]
    fn an_origin_is_at_a_host_whatever_its_scheme() {
        for (origin_text, host, at) in [
            ("http://127.0.0.1:8000", "127.0.0.1:8000", true),
            ("https://127.0.0.1:8000", "127.0.0.1:8000", true),
            ("http://127.0.0.1:8001", "127.0.0.1:8000", false),
            ("http://localhost:8000", "127.0.0.1:8000", false),
            ("https://auth.example.com", "auth.example.com", true),
            ("http://auth.example.com", "Auth.Example.com", true),
            ("https://auth.example.com", "auth.example.com:443", true),
            ("http://auth.example.com", "auth.example.com:80", true),
            ("https://auth.example.com", "auth.example.com:80", false),
            ("https://auth.example.com:8443", "auth.example.com", false),
            (
                "https://auth.example.com",
                "auth.example.com.evil.example",
                false,
            ),
            ("http://[::1]:8000", "[::1]:8000", true),
            ("http://[::1]:8000", "[::1]", false),
            ("https://auth.example.com", "auth.example.com:", false),
            ("https://auth.example.com", "auth.example.com:+443", false),
            ("https://auth.example.com", "", false),
        ] {
            assert_eq!(
                origin(origin_text).is_at(host),
                at,
                "{origin_text} at {host:?}"
            );
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                header::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    #[test]
    fn cross_site_writes_are_refused_and_the_rest_passes() {
        let by_host = BrowserPolicy {
            public_url: None,
            allowed_origins: "https://app.example".parse().unwrap(),
        };
        let by_url = BrowserPolicy {
            public_url: Some(origin("https://auth.example")),
            allowed_origins: by_host.allowed_origins.clone(),
        };
        let host = Some("auth.example");
        let foreign = Some(Refusal::ForeignOrigin);
        let cross = Some(Refusal::CrossSite);
        for (policy, method, pairs, expected) in [
            (
                &by_host,
                Method::POST,
                &[("origin", "https://evil.example")][..],
                foreign,
            ),
            (&by_host, Method::PUT, &[("origin", "null")], foreign),
            (&by_host, Method::PATCH, &[("origin", "junk")], foreign),
            (
                &by_host,
                Method::DELETE,
                &[("origin", "https://app.example")],
                None,
            ),
            (
                &by_host,
                Method::POST,
                &[("origin", "https://auth.example")],
                None,
            ),
            (
                &by_host,
                Method::POST,
                &[("origin", "http://auth.example")],
                None,
            ),
            (
                &by_host,
                Method::POST,
                &[("origin", "https://auth.example:8443")],
                foreign,
            ),
            (
                &by_url,
                Method::POST,
                &[("origin", "https://auth.example")],
                None,
            ),
            (
                &by_url,
                Method::POST,
                &[("origin", "http://auth.example")],
                foreign,
            ),
            (
                &by_url,
                Method::POST,
                &[("origin", "https://app.example")],
                None,
            ),
            (
                &by_host,
                Method::POST,
                &[
                    ("origin", "https://app.example"),
                    ("origin", "https://evil.example"),
                ],
                foreign,
            ),
            (
                &by_host,
                Method::POST,
                &[("sec-fetch-site", "cross-site")],
                cross,
            ),
            (
                &by_host,
                Method::DELETE,
                &[("sec-fetch-site", "Cross-Site")],
                cross,
            ),
            (
                &by_host,
                Method::POST,
                &[("sec-fetch-site", "same-origin")],
                None,
            ),
            (
                &by_host,
                Method::POST,
                &[("sec-fetch-site", "same-site")],
                None,
            ),
            (&by_host, Method::POST, &[("sec-fetch-site", "none")], None),
            (
                &by_host,
                Method::POST,
                &[
                    ("origin", "https://app.example"),
                    ("sec-fetch-site", "cross-site"),
                ],
                None,
            ),
            (&by_host, Method::POST, &[], None),
            (
                &by_host,
                Method::GET,
                &[("origin", "https://evil.example")],
                None,
            ),
            (&by_host, Method::OPTIONS, &[("origin", "null")], None),
            (
                &by_host,
                Method::HEAD,
                &[("sec-fetch-site", "cross-site")],
                None,
            ),
            (
                &by_host,
                Method::from_bytes(b"PROPFIND").unwrap(),
                &[("origin", "https://evil.example")],
                foreign,
            ),
        ] {
            assert_eq!(
                policy.refusal(&method, &headers(pairs), host),
                expected,
                "{method} {pairs:?} with public URL {:?}",
                policy.public_url
            );
        }
        // Without a `Host`, only the public URL and the allowed origins are the server's.
        assert_eq!(
            by_host.refusal(
                &Method::POST,
                &headers(&[("origin", "https://auth.example")]),
                None
            ),
            foreign
        );
    }

    #[actix_web::test]
    async fn cors_answers_allowed_origins_only() {
        let app = actix_test::init_service(
            App::new()
                .route("/ok", web::get().to(HttpResponse::Ok))
                .route("/ok", web::post().to(HttpResponse::Ok))
                .default_service(web::to(HttpResponse::MethodNotAllowed))
                .wrap(Cors::new("https://app.example".parse().unwrap())),
        )
        .await;
        let preflight = |origin: &'static str| {
            TestRequest::default()
                .method(Method::OPTIONS)
                .uri("/ok")
                .insert_header((header::ORIGIN, origin))
                .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "POST"))
                .insert_header((header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type"))
                .to_request()
        };
        let get = |name: &str, response: &ServiceResponse<_>| {
            response
                .headers()
                .get(name)
                .map(|value| value.to_str().unwrap().to_owned())
        };

        let response = actix_test::call_service(&app, preflight("https://app.example")).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        for (name, value) in [
            ("access-control-allow-origin", "https://app.example"),
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-methods", "GET, POST, PATCH, DELETE"),
            (
                "access-control-allow-headers",
                "Content-Type, Authorization, X-Request-Id",
            ),
            ("access-control-max-age", "600"),
            ("vary", "Origin"),
        ] {
            assert_eq!(get(name, &response).as_deref(), Some(value), "{name}");
        }

        let response = actix_test::call_service(&app, preflight("https://evil.example")).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(
            response
                .headers()
                .keys()
                .all(|name| !name.as_str().starts_with("access-control-")),
            "{:?}",
            response.headers()
        );

        let refused = TestRequest::default()
            .method(Method::OPTIONS)
            .uri("/ok")
            .insert_header((header::ORIGIN, "https://app.example"))
            .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "PUT"))
            .to_request();
        let response = actix_test::call_service(&app, refused).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            get("content-type", &response).as_deref(),
            Some("application/problem+json")
        );
        assert_eq!(get("access-control-allow-origin", &response), None);

        for (origin, cors) in [
            (Some("https://app.example"), true),
            (Some("https://evil.example"), false),
            (None, false),
        ] {
            let mut request = TestRequest::get().uri("/ok");
            if let Some(origin) = origin {
                request = request.insert_header((header::ORIGIN, origin));
            }
            let response = actix_test::call_service(&app, request.to_request()).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(get("vary", &response).as_deref(), Some("Origin"));
            assert_eq!(
                get("access-control-allow-origin", &response).as_deref(),
                origin.filter(|_| cors),
                "{origin:?}"
            );
            assert_eq!(
                get("access-control-allow-credentials", &response).is_some(),
                cors,
                "{origin:?}"
            );
        }
    }

    #[actix_web::test]
    async fn without_allowed_origins_cors_adds_nothing() {
        let app = actix_test::init_service(
            App::new()
                .route("/ok", web::get().to(HttpResponse::Ok))
                .wrap(Cors::new(AllowedOrigins::default())),
        )
        .await;
        let request = TestRequest::get()
            .uri("/ok")
            .insert_header((header::ORIGIN, "https://app.example"))
            .to_request();
        let response = actix_test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().is_empty(), "{:?}", response.headers());
    }
}
