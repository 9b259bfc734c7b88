//! The SMTP server authd delivers to during a run (`AUTHD_SMTP_URL`): it takes every email,
//! and hands the token of a password-reset email to the client waiting for its recipient.
//! `recovery` reads its tokens from here, as a user reads them from their inbox. Other emails
//! (the sign-ups' verification emails) are taken and dropped.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// What precedes the token in a reset email's link (`AUTHD_RESET_LINK`'s default path).
const RESET_LINK: &str = "reset-password?token=";

/// Reset requests authd works on at once (`RESET_REQUESTS_IN_PROGRESS` in its HTTP crate): it
/// answers more `503`. Its work ends before the email is sent, so clients that hold a permit
/// from their request until their email arrives never exceed it.
const RESETS_AT_ONCE: usize = 8;

/// The clients waiting for a reset email, by recipient.
pub struct Mailbox {
    waiting: Mutex<HashMap<String, oneshot::Sender<String>>>,
    /// Held from a reset request until its email arrives.
    pub resets: tokio::sync::Semaphore,
    /// How long the emails took to arrive after their requests were answered: every wait.
    waits: Mutex<Vec<Duration>>,
}

impl Default for Mailbox {
    fn default() -> Self {
        Self {
            waiting: Mutex::default(),
            resets: tokio::sync::Semaphore::new(RESETS_AT_ONCE),
            waits: Mutex::default(),
        }
    }
}

impl Mailbox {
    /// The token of the next reset email to `address`, once it arrives.
    pub fn expect(&self, address: &str) -> oneshot::Receiver<String> {
        let (sender, receiver) = oneshot::channel();
        self.lock().insert(address.to_ascii_lowercase(), sender);
        receiver
    }

    /// Records one email's wait.
    pub fn waited(&self, wait: Duration) {
        self.waits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(wait);
    }

    /// The median and the longest wait so far, and how many there were.
    pub fn waits(&self) -> Option<(Duration, Duration, usize)> {
        let mut waits = self
            .waits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        waits.sort_unstable();
        Some((*waits.get(waits.len() / 2)?, *waits.last()?, waits.len()))
    }

    fn deliver(&self, recipient: &str, token: String) {
        if let Some(waiting) = self.lock().remove(&recipient.to_ascii_lowercase()) {
            let _ = waiting.send(token);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<String>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Listens on `address` and serves every connection until the process ends.
pub async fn start(address: &str) -> io::Result<Arc<Mailbox>> {
    let listener = TcpListener::bind(address).await?;
    let mailbox = Arc::new(Mailbox::default());
    let serving = mailbox.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(session(stream, serving.clone()));
        }
    });
    Ok(mailbox)
}

/// One SMTP session: the few commands a client such as lettre sends, without extensions.
async fn session(stream: TcpStream, mailbox: Arc<Mailbox>) -> io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader);
    writer.write_all(b"220 loadgen ESMTP\r\n").await?;
    let mut recipients = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 loadgen\r\n",
            "MAIL" => {
                recipients.clear();
                b"250 OK\r\n"
            }
            "RCPT" => {
                recipients.push(address_of(&line));
                b"250 OK\r\n"
            }
            "DATA" => {
                writer.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let message = read_data(&mut lines).await?;
                if let Some(token) = reset_token(&message) {
                    for recipient in recipients.drain(..) {
                        mailbox.deliver(&recipient, token.clone());
                    }
                }
                b"250 OK\r\n"
            }
            "RSET" | "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                writer.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 not implemented\r\n",
        };
        writer.write_all(reply).await?;
    }
}

/// The message up to the line holding a single dot.
async fn read_data(lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> io::Result<Vec<u8>> {
    let mut message = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(message);
        }
        // Dot-stuffing: a line that starts with a dot was sent with one more.
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        message.extend_from_slice(unstuffed);
    }
}

/// `RCPT TO:<ada@example.com>` → `ada@example.com`.
fn address_of(line: &str) -> String {
    let start = line.find('<').map_or(0, |at| at + 1);
    let end = line.rfind('>').unwrap_or(line.len());
    line.get(start..end).unwrap_or_default().trim().to_owned()
}

/// The token of a reset email's link, decoded from whatever transfer encoding it came in.
fn reset_token(message: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::default().parse(message)?;
    let text = parsed.body_text(0)?;
    let after = &text[text.find(RESET_LINK)? + RESET_LINK.len()..];
    let token: String = after
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '%'))
        .collect();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_of_a_reset_link_is_read_through_quoted_printable() {
        let message = b"From: a@b.c\r\nTo: ada@example.com\r\nSubject: Reset\r\n\
            MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\r\n\
            Open http://127.0.0.1:8000/reset-password?token=3DAbC-12_x.y=\r\nz9 to reset.\r\n";
        assert_eq!(reset_token(message).as_deref(), Some("AbC-12_x.yz9"));
        let verification = b"Subject: Verify\r\n\r\nOpen http://h/verify-email?token=abc\r\n";
        assert_eq!(reset_token(verification), None);
    }

    #[test]
    fn recipients_are_read_from_their_angle_brackets() {
        assert_eq!(
            address_of("RCPT TO:<Ada@Example.com>\r\n"),
            "Ada@Example.com"
        );
    }

    #[tokio::test]
    async fn a_waiting_client_gets_the_token_of_its_email_only() {
        let mailbox = Mailbox::default();
        let ada = mailbox.expect("ada@example.com");
        let bob = mailbox.expect("bob@example.com");
        mailbox.deliver("ADA@example.com", "t1".to_owned());
        assert_eq!(ada.await.unwrap(), "t1");
        drop(mailbox);
        assert!(bob.await.is_err(), "bob got ada's token");
    }
}
