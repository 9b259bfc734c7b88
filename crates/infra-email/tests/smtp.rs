//! Delivery to a real SMTP server: Debian's aiosmtpd, started by the test and writing what it
//! receives to a maildir, plus the two ways a server can fail to answer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use authd_application::ports::{EmailTemplates, Mailer};
use authd_domain::EmailKind;
use authd_email::{MinijinjaTemplates, SmtpMailer};

const PYTHON: &str = "/usr/bin/python3";
const FROM: &str = "authd <no-reply@localhost>";
const TO: &str = "user@example.com";
/// As long as a real link: a 43-character token makes the line longer than 76 characters.
const LINK: &str =
    "https://auth.example.com/reset-password?token=qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq";

/// A port nothing listens on (it was free a moment ago).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An aiosmtpd server on a free port of 127.0.0.1, delivering to a fresh maildir. Killed, and
/// its maildir removed, on drop.
struct Aiosmtpd {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Aiosmtpd {
    /// Starts the server and waits, up to 10 s, until it accepts connections.
    fn start() -> Self {
        let port = free_port();
        let maildir =
            std::env::temp_dir().join(format!("authd-email-maildir-{}-{port}", std::process::id()));
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l", &listen])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {PYTHON} -m aiosmtpd: {err}"));
        let mut server = Self {
            child,
            port,
            maildir,
        };
        server.wait_until_listening(Duration::from_secs(10));
        server
    }

    fn wait_until_listening(&mut self, within: Duration) {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("aiosmtpd exited ({status}) before accepting connections on {address}");
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd accepted no connection on {address} within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The one email delivered, waiting for it up to `within`; its line ends made `\n`.
    fn delivered(&self, within: Duration) -> String {
        let new = self.maildir.join("new");
        let deadline = Instant::now() + within;
        loop {
            let files: Vec<PathBuf> = std::fs::read_dir(&new)
                .map(|entries| entries.map(|entry| entry.unwrap().path()).collect())
                .unwrap_or_default();
            match files.as_slice() {
                [file] => return std::fs::read_to_string(file).unwrap().replace("\r\n", "\n"),
                [] => assert!(
                    Instant::now() < deadline,
                    "nothing delivered to {} within {within:?}",
                    new.display()
                ),
                _ => panic!("{} emails delivered, expected one: {files:?}", files.len()),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

/// The headers and the body of a MIME entity.
fn split_entity(entity: &str) -> (&str, &str) {
    entity
        .split_once("\n\n")
        .unwrap_or_else(|| panic!("no blank line after the headers of:\n{entity}"))
}

/// The parts of the multipart entity `raw` whose headers name `boundary="..."`.
fn parts(raw: &str) -> Vec<(String, String)> {
    let (headers, body) = split_entity(raw);
    let boundary = headers
        .split("boundary=")
        .nth(1)
        .and_then(|rest| rest.trim_start_matches('"').split(['"', '\n', ';']).next())
        .unwrap_or_else(|| panic!("no boundary in:\n{headers}"));
    body.split(&format!("--{boundary}"))
        .skip(1)
        .filter(|part| !part.starts_with("--"))
        .map(|part| {
            let (headers, body) = split_entity(part.trim_start_matches('\n'));
            let body = if headers
                .to_ascii_lowercase()
                .contains("content-transfer-encoding: quoted-printable")
            {
                decode_quoted_printable(body)
            } else {
                assert!(
                    !headers.to_ascii_lowercase().contains("base64"),
                    "unexpected base64 part:\n{headers}"
                );
                body.to_owned()
            };
            (headers.to_owned(), body)
        })
        .collect()
}

/// Quoted-printable decoded (RFC 2045 §6.7), line ends already `\n`.
fn decode_quoted_printable(encoded: &str) -> String {
    let joined = encoded.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).unwrap()
}

#[tokio::test]
async fn an_email_is_delivered_with_both_parts() {
    let server = Aiosmtpd::start();
    let url = format!("smtp://127.0.0.1:{}", server.port);
    let mailer = SmtpMailer::new(&url, FROM, Duration::from_secs(5)).unwrap();
    let message = MinijinjaTemplates::load(None)
        .unwrap()
        .render(EmailKind::ResetPassword, TO, Some(LINK))
        .unwrap();

    mailer.send(&message).await.unwrap();

    let raw = server.delivered(Duration::from_secs(5));
    let (headers, _) = split_entity(&raw);
    let header_lines: Vec<&str> = headers.lines().collect();
    for expected in [
        format!("To: {TO}"),
        format!("From: {FROM}"),
        "Subject: Reset your password".to_owned(),
    ] {
        assert!(
            header_lines.contains(&expected.as_str()),
            "{expected}:\n{headers}"
        );
    }
    assert!(headers.contains("multipart/alternative"), "{headers}");

    let parts = parts(&raw);
    assert_eq!(parts.len(), 2, "{raw}");
    let (text_headers, text) = &parts[0];
    assert!(text_headers.contains("text/plain"), "{text_headers}");
    assert!(text.lines().any(|line| line == LINK), "{text}");
    assert!(
        text.contains("Someone asked to reset the password"),
        "{text}"
    );
    let (html_headers, html) = &parts[1];
    assert!(html_headers.contains("text/html"), "{html_headers}");
    assert!(html.contains(&format!("<a href=\"{LINK}\"")), "{html}");
    assert!(html.contains("Choose a new password"), "{html}");
}

/// aiosmtpd offers no STARTTLS here: with credentials in the URL, nothing is sent (the
/// credentials would go in clear), while the same server takes the email without them.
#[tokio::test]
async fn credentials_are_never_sent_without_tls() {
    let server = Aiosmtpd::start();
    let url = format!("smtp://mailer:secret@127.0.0.1:{}", server.port);
    let mailer = SmtpMailer::new(&url, FROM, Duration::from_secs(5)).unwrap();
    let message = MinijinjaTemplates::load(None)
        .unwrap()
        .render(EmailKind::PasswordChanged, TO, None)
        .unwrap();

    let err = mailer.send(&message).await.unwrap_err();
    // Refused for want of TLS, not for any other reason (this server offers no AUTH either).
    assert!(err.0.contains("STARTTLS"), "{err}");
    assert!(!err.0.contains("secret"), "{err}");

    let plain = SmtpMailer::new(
        &format!("smtp://127.0.0.1:{}", server.port),
        FROM,
        Duration::from_secs(5),
    )
    .unwrap();
    plain.send(&message).await.unwrap();
    assert!(
        server
            .delivered(Duration::from_secs(5))
            .contains("Subject:")
    );
}

#[tokio::test]
async fn a_port_nobody_listens_on_is_an_error_within_the_timeout() {
    let url = format!("smtp://127.0.0.1:{}", free_port());
    let mailer = SmtpMailer::new(&url, FROM, Duration::from_secs(1)).unwrap();
    let message = MinijinjaTemplates::load(None)
        .unwrap()
        .render(EmailKind::PasswordChanged, TO, None)
        .unwrap();

    let started = Instant::now();
    let err = mailer.send(&message).await.unwrap_err();

    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(err.0.contains(&url), "{err}");
}

#[tokio::test]
async fn a_server_that_never_speaks_is_an_error_within_twice_the_timeout() {
    // The kernel completes the handshake into the backlog; nobody ever answers.
    let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let url = format!("smtp://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let mailer = SmtpMailer::new(&url, FROM, Duration::from_secs(1)).unwrap();
    let message = MinijinjaTemplates::load(None)
        .unwrap()
        .render(EmailKind::VerifyEmail, TO, Some(LINK))
        .unwrap();

    let started = Instant::now();
    let err = mailer.send(&message).await.unwrap_err();
    let elapsed = started.elapsed();

    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}: {err}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}: {err}");
    assert!(err.0.contains(&url), "{err}");
    drop(silent);
}
