//! One use case per flow. Each holds the ports it needs and reads top to bottom.

mod admin;
mod authenticate;
mod bootstrap;
mod change_password;
mod log_in;
mod log_out;
mod readiness;
mod refresh;
mod roles;
mod sessions;
mod sign_up;
mod users;

#[cfg(test)]
mod fixtures;

pub use admin::{AdminError, require_superuser};
pub use authenticate::{AuthError, Authenticate, Principal};
pub use bootstrap::{AdminOutcome, AdminSeed, Bootstrap, BootstrapError};
pub use change_password::{ChangePassword, ChangePasswordError, PasswordChange};
pub use log_in::{LogIn, LoggedIn, LoginError, LoginRequest};
pub use log_out::{LogOut, LogOutEverywhere, LogoutError};
pub use readiness::{CheckReadiness, Readiness};
pub use refresh::{Refresh, RefreshError};
pub use roles::{CreateRole, DeleteRole, ListRoles, NewRole, RoleUpdate, UpdateRole};
pub use sessions::{
    ListSessions, PurgeError, PurgeSessions, RevokeSession, RevokeSessionError, SessionView,
};
pub use sign_up::{SignUp, SignUpError, SignUpRequest};
pub use users::{
    CreateUser, DeleteUser, GetUser, ListUserSessions, ListUsers, ListUsersRequest, NewUserRequest,
    RevokeUserSessions, UpdateUser, UserPatch,
};
