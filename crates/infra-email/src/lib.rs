//! # Email adapters
//!
//! The adapters of the two email ports of `authd_application::ports`:
//!
//! - [`EmailTemplates`](authd_application::ports::EmailTemplates) by [`MinijinjaTemplates`]:
//!   turns an [`EmailKind`](authd_domain::EmailKind), a recipient and a link into a
//!   subject, a plain-text part and an HTML part. The built-in templates are compiled in; an
//!   operator may replace any of them with files of the same name in a folder. Every template
//!   is parsed and rendered once with sample values at startup, so a broken one stops `authd`
//!   from starting rather than an email from leaving.
//! - [`Mailer`](authd_application::ports::Mailer) by [`SmtpMailer`] (delivery over SMTP with
//!   STARTTLS or implicit TLS, within a hard timeout) and by [`LogMailer`] (development mode:
//!   the email is written to the log instead of sent).
//!
//! The outbox worker of the application drives them; this crate knows nothing of retries.

mod log;
mod smtp;
mod templates;

pub use log::LogMailer;
pub use smtp::SmtpMailer;
pub use templates::MinijinjaTemplates;
