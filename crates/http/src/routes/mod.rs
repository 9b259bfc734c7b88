mod access;
mod ops;
mod roles;
mod users;

pub(crate) use ops::metrics_response;

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::ApiError;

pub(crate) fn configure(config: &mut web::ServiceConfig) {
    access::configure(config);
    ops::configure(config);
    roles::configure(config);
    users::configure(config);
}

/// Unknown paths are a 404, known paths with another method a 405, both in problem+json.
pub(crate) async fn not_found(request: HttpRequest) -> HttpResponse {
    let known_path = request.match_pattern().is_some()
        || access::PATHS
            .iter()
            .chain(ops::PATHS)
            .chain(roles::PATHS)
            .chain(users::PATHS)
            .any(|path| matches_path(path, request.path()));
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
