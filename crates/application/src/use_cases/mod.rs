//! One use case per flow. Each holds the ports it needs and reads top to bottom.

mod authenticate;
mod change_password;
mod log_in;
mod log_out;
mod refresh;
mod sessions;
mod sign_up;

#[cfg(test)]
mod fixtures;

pub use authenticate::{AuthError, Authenticate, Principal};
pub use change_password::{ChangePassword, ChangePasswordError, PasswordChange};
pub use log_in::{LogIn, LoggedIn, LoginError, LoginRequest};
pub use log_out::{LogOut, LogOutEverywhere, LogoutError};
pub use refresh::{Refresh, RefreshError};
pub use sessions::{ListSessions, RevokeSession, RevokeSessionError, SessionView};
pub use sign_up::{SignUp, SignUpError, SignUpRequest};
