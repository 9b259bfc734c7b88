pub(crate) mod access;
pub(crate) mod ops;
pub(crate) mod roles;
pub(crate) mod users;

pub(crate) use ops::metrics_response;

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::ApiError;

pub(crate) fn configure(config: &mut web::ServiceConfig) {
    access::configure(config);
    ops::configure(config);
    roles::configure(config);
    users::configure(config);
}

/// Every path template the server registers (the 405 logic and the OpenAPI test use it).
pub fn registered_paths() -> impl Iterator<Item = &'static str> {
    access::PATHS
        .iter()
        .chain(ops::PATHS)
        .chain(roles::PATHS)
        .chain(users::PATHS)
        .copied()
}

/// Unknown paths are a 404, known paths with another method a 405, both in problem+json.
pub(crate) async fn not_found(request: HttpRequest) -> HttpResponse {
    let known_path = request.match_pattern().is_some()
        || registered_paths().any(|path| matches_path(path, request.path()));
    let error = if known_path {
        ApiError::MethodNotAllowed
    } else {
        ApiError::NotFound(format!("no route for {}", request.path()))
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
