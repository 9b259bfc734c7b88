//! The mailer of development mode: emails go to the log.

use async_trait::async_trait;
use authd_application::ports::{EmailMessage, MailError, Mailer};

/// Writes every email, whole, to the log (`info` level) instead of sending it, and reports
/// success. For development without an SMTP server: the links can be copied from the log.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        tracing::info!(
            to = %message.to,
            subject = %message.subject,
            text = %message.text,
            html = %message.html,
            "email not sent (development mode: no SMTP server configured)"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn logging_an_email_succeeds() {
        let message = EmailMessage {
            to: "user@example.com".to_owned(),
            subject: "Hello".to_owned(),
            text: "text".to_owned(),
            html: "<p>html</p>".to_owned(),
        };
        assert_eq!(LogMailer.send(&message).await, Ok(()));
    }
}
