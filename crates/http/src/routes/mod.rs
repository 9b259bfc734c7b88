pub(crate) mod access;
pub(crate) mod ops;
pub(crate) mod roles;
pub(crate) mod users;

pub(crate) use ops::metrics_response;

use actix_web::web;

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
