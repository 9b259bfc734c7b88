use actix_web::HttpResponseBuilder;
use actix_web::cookie::time::Duration;
use actix_web::cookie::{Cookie, SameSite};
use authd_application::TokenPair;

pub(crate) const ACCESS_COOKIE: &str = "access_token";
pub(crate) const REFRESH_COOKIE: &str = "refresh_token";
pub(crate) const DEVICE_COOKIE: &str = "device_token";
/// The device cookie only travels to the login form, the one place it is read.
const DEVICE_PATH: &str = "/api/access/login";
/// The refresh cookie only travels to the endpoints that use it.
const REFRESH_PATH: &str = "/api/access";

/// Cookie attributes.
#[derive(Debug, Clone, Copy)]
pub struct CookieSettings {
    /// Add `Secure` (off only for plain-http development).
    pub secure: bool,
}

impl CookieSettings {
    /// Sets both cookies; `Max-Age` is each token's lifetime at issue (the configured lifetime,
    /// or less when the session ends sooner).
    pub(crate) fn set_pair(&self, response: &mut HttpResponseBuilder, pair: &TokenPair) {
        let access_age = (pair.access_expires_at - pair.issued_at)
            .num_seconds()
            .max(0);
        let refresh_age = (pair.refresh_expires_at - pair.issued_at)
            .num_seconds()
            .max(0);
        response.cookie(self.access(pair.access_token.clone(), access_age));
        response.cookie(self.refresh(pair.refresh_token.clone(), refresh_age));
    }

    /// Sets the device cookie: a year, `SameSite=Strict`, sent to the login form only. It is
    /// never cleared by a logout: it says the device was used, not that it is signed in.
    pub(crate) fn set_device(&self, response: &mut HttpResponseBuilder, token: &str) {
        response.cookie(
            Cookie::build(DEVICE_COOKIE, token.to_owned())
                .http_only(true)
                .same_site(SameSite::Strict)
                .path(DEVICE_PATH)
                .max_age(Duration::seconds(
                    authd_application::DeviceClaims::LIFETIME.num_seconds(),
                ))
                .secure(self.secure)
                .finish(),
        );
    }

    /// Clears both cookies: empty, `Max-Age=0`, same path.
    pub(crate) fn clear(&self, response: &mut HttpResponseBuilder) {
        response.cookie(self.access(String::new(), 0));
        response.cookie(self.refresh(String::new(), 0));
    }

    fn access(&self, value: String, max_age: i64) -> Cookie<'static> {
        Cookie::build(ACCESS_COOKIE, value)
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .max_age(Duration::seconds(max_age))
            .secure(self.secure)
            .finish()
    }

    fn refresh(&self, value: String, max_age: i64) -> Cookie<'static> {
        Cookie::build(REFRESH_COOKIE, value)
            .http_only(true)
            .same_site(SameSite::Strict)
            .path(REFRESH_PATH)
            .max_age(Duration::seconds(max_age))
            .secure(self.secure)
            .finish()
    }
}
