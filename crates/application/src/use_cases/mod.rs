//! One use case per flow. Each holds the ports it needs and reads top to bottom.

mod admin;
mod authenticate;
mod bootstrap;
mod change_password;
mod constructors;
mod deliver;
mod log_in;
mod log_out;
mod readiness;
mod recovery;
mod refresh;
mod roles;
mod sessions;
mod sign_up;
mod users;

#[cfg(test)]
pub(crate) mod fixtures;

pub use admin::{NotSuperuser, require_superuser};
pub use authenticate::{AuthError, Authenticate, Principal};
pub use bootstrap::{AdminOutcome, AdminSeed, Bootstrap, BootstrapError};
pub use change_password::{ChangePassword, ChangePasswordError};
pub use deliver::{DeliverEmails, DeliveryReport, DeliverySettings};
pub use log_in::{LogIn, LoggedIn, LoginError, LoginRequest};
pub use log_out::{LogOut, LogOutEverywhere, LogoutError};
pub use readiness::{CheckReadiness, Readiness};
pub use recovery::{
    ConfirmPasswordReset, ConfirmResetError, RequestPasswordReset, ResendError, ResendVerification,
    ResetRequestError, VerifyEmail, VerifyEmailError,
};
pub use refresh::{Refresh, RefreshError};
pub use roles::{
    CreateRole, CreateRoleError, DeleteRole, DeleteRoleError, ListRoles, ListRolesError,
    UpdateRole, UpdateRoleError,
};
pub use sessions::{
    ListSessions, PurgeError, PurgeSessions, RevokeSession, RevokeSessionError, SessionView,
};
pub use sign_up::{SignUp, SignUpError};
pub use users::{
    CreateUser, CreateUserError, DeleteUser, DeleteUserError, GetUser, GetUserError,
    ListUserSessions, ListUsers, ListUsersError, RevokeUserSessions, StoreFieldErrors, UpdateUser,
    UpdateUserError,
};
