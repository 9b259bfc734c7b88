use std::sync::Arc;

use application::use_cases::{
    Authenticate, ChangePassword, ListSessions, LogIn, LogOut, LogOutEverywhere, Refresh,
    RevokeSession, SignUp,
};

use crate::{CookieSettings, TrustedProxies};

/// The use cases the handlers call.
pub struct UseCases {
    pub sign_up: SignUp,
    pub log_in: LogIn,
    pub refresh: Refresh,
    pub log_out: LogOut,
    pub log_out_everywhere: LogOutEverywhere,
    pub change_password: ChangePassword,
    pub authenticate: Authenticate,
    pub list_sessions: ListSessions,
    pub revoke_session: RevokeSession,
}

/// Transport settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Cookie attributes and lifetimes.
    pub cookies: CookieSettings,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
}

/// Everything a handler needs, shared by the workers.
#[derive(Clone)]
pub struct AppState {
    pub use_cases: Arc<UseCases>,
    pub settings: Arc<HttpSettings>,
}
