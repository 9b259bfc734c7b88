use std::sync::Arc;

use authd_application::use_cases::{
    Authenticate, ChangePassword, CheckReadiness, ConfirmPasswordReset, CreateRole, CreateUser,
    DeleteRole, DeleteUser, GetUser, ListRoles, ListSessions, ListUserSessions, ListUsers, LogIn,
    LogOut, LogOutEverywhere, Refresh, RequestPasswordReset, ResendVerification, RevokeSession,
    RevokeUserSessions, SignUp, UpdateRole, UpdateUser, VerifyEmail,
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
    pub request_password_reset: RequestPasswordReset,
    pub confirm_password_reset: ConfirmPasswordReset,
    pub verify_email: VerifyEmail,
    pub resend_verification: ResendVerification,
    pub authenticate: Authenticate,
    pub list_sessions: ListSessions,
    pub revoke_session: RevokeSession,
    pub list_roles: ListRoles,
    pub create_role: CreateRole,
    pub update_role: UpdateRole,
    pub delete_role: DeleteRole,
    pub list_users: ListUsers,
    pub get_user: GetUser,
    pub create_user: CreateUser,
    pub update_user: UpdateUser,
    pub delete_user: DeleteUser,
    pub list_user_sessions: ListUserSessions,
    pub revoke_user_sessions: RevokeUserSessions,
    pub check_readiness: CheckReadiness,
}

/// Transport settings.
#[derive(Clone)]
pub struct HttpSettings {
    /// Cookie attributes and lifetimes.
    pub cookies: CookieSettings,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// The JWKS document served at `/.well-known/jwks.json`.
    pub jwks: serde_json::Value,
    /// Serves `/metrics` on this listener when set (unset: a separate listener has it).
    pub metrics: Option<crate::RenderMetrics>,
    /// The server's own origin and the allowed ones: the Origin check and CORS.
    pub browsers: crate::BrowserPolicy,
    /// One successful `GET`/`HEAD` in this many gets its access-log line; every other request
    /// always does.
    pub access_log_sample: std::num::NonZeroU32,
    /// The rules for new passwords: configuration the edge parses passwords with (the same
    /// as the use cases' `AuthSettings::password_policy`).
    pub password_policy: authd_domain::PasswordPolicy,
}

/// Everything a handler needs, shared by the workers.
#[derive(Clone)]
pub struct AppState {
    pub use_cases: Arc<UseCases>,
    pub settings: Arc<HttpSettings>,
}
