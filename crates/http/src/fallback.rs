//! The answer when no route matches: a 404, or a 405 whose `Allow` lists the methods the
//! path answers (read from the OpenAPI document, the one list of operations).

use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::ApiError;
use crate::routes::registered_paths;

/// Unknown paths are a 404, known paths with another method a 405 whose `Allow` lists the
/// methods the path answers, both in problem+json.
pub(crate) async fn not_found(request: HttpRequest) -> HttpResponse {
    let path = request.path();
    // A literal template before one with parameters.
    let template = registered_paths()
        .find(|template| *template == path)
        .or_else(|| registered_paths().find(|template| matches_path(template, path)));
    let error = match template {
        Some(template) => {
            ApiError::MethodNotAllowed(crate::openapi::path_methods(template).to_vec())
        }
        None => ApiError::NotFound(format!("no route for {path}")),
    };
    error.error_response()
}

/// Whether `path` fits a route template whose `{…}` segments match anything.
fn matches_path(template: &str, path: &str) -> bool {
    let (template, path): (Vec<_>, Vec<_>) =
        (template.split('/').collect(), path.split('/').collect());
    template.len() == path.len()
        && template
            .iter()
            .zip(&path)
            .all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}

#[cfg(test)]
mod tests {
    use actix_web::App;
    use actix_web::http::{Method, StatusCode, header};
    use actix_web::test as actix_test;
    use actix_web::web;

    use super::*;
    use crate::routes::configure;

    #[test]
    fn every_registered_path_answers_some_method() {
        for path in registered_paths() {
            assert!(
                !crate::openapi::path_methods(path).is_empty(),
                "{path} has no documented method"
            );
        }
    }

    /// The routes answer without state when the method is wrong: 405 comes before any handler.
    #[actix_web::test]
    async fn a_wrong_method_is_405_with_the_methods_of_the_path() {
        let app = actix_test::init_service(
            App::new()
                .configure(configure)
                .default_service(web::to(not_found)),
        )
        .await;
        for (method, path, allow) in [
            (Method::PUT, "/api/access/me", Some("GET")),
            (Method::GET, "/api/access/login", Some("POST")),
            (
                Method::GET,
                "/api/access/password-reset/confirm",
                Some("POST"),
            ),
            (Method::PUT, "/api/access/verify-email/resend", Some("POST")),
            (Method::POST, "/api/users/abc", Some("GET, PATCH, DELETE")),
            (Method::PUT, "/api/users", Some("GET, POST")),
            (
                Method::OPTIONS,
                "/api/users/abc/sessions",
                Some("GET, DELETE"),
            ),
            (Method::PATCH, "/.well-known/jwks.json", Some("GET")),
            (Method::GET, "/api/access/nothing", None),
            (Method::GET, "/api/users/abc/def", None),
        ] {
            let request = actix_test::TestRequest::default()
                .method(method.clone())
                .uri(path)
                .to_request();
            let response = actix_test::call_service(&app, request).await;
            let expected = if allow.is_some() {
                StatusCode::METHOD_NOT_ALLOWED
            } else {
                StatusCode::NOT_FOUND
            };
            assert_eq!(response.status(), expected, "{method} {path}");
            assert_eq!(
                response
                    .headers()
                    .get(header::ALLOW)
                    .map(|value| value.to_str().unwrap()),
                allow,
                "{method} {path}"
            );
            assert_eq!(
                response.headers().get(header::CONTENT_TYPE).unwrap(),
                "application/problem+json"
            );
        }
    }
}
