//! A real SMTP server for the email scenarios: Debian's aiosmtpd, started by the test on a free
//! port and writing every email it accepts to a maildir, read back with a MIME parser.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use mail_parser::{MessageParser, MimeHeaders};

/// Debian's interpreter, which has `python3-aiosmtpd` (a pyenv one on `PATH` may not).
const PYTHON: &str = "/usr/bin/python3";
/// How long aiosmtpd may take to accept connections: the suite keeps two cores busy.
const START_WITHIN: Duration = Duration::from_secs(10);

/// One email as the SMTP server received it, decoded.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The first `To` address.
    pub to: String,
    /// The envelope recipients (`RCPT TO`), as aiosmtpd recorded them.
    pub envelope_to: String,
    /// `From` as `name <address>`, or the bare address without a name.
    pub from: String,
    pub subject: String,
    /// The decoded `text/plain` part.
    pub text: Option<String>,
    /// The decoded `text/html` part.
    pub html: Option<String>,
    /// The top-level type, such as `multipart/alternative`.
    pub content_type: String,
}

impl Delivered {
    /// The token of the link in the text part: the text after `token=` up to whitespace.
    /// Asserts that the link is built from `template` (`...{token}`).
    pub fn link_token(&self, template: &str) -> String {
        let prefix = template
            .split(authd_domain::LinkTemplate::PLACEHOLDER)
            .next()
            .unwrap_or_default();
        let text = self
            .text
            .as_deref()
            .unwrap_or_else(|| panic!("no text part in {self:#?}"));
        let link = text
            .split_whitespace()
            .find(|word| word.contains("token="))
            .unwrap_or_else(|| panic!("no link with token= in the text part:\n{text}"));
        assert!(
            link.starts_with(prefix),
            "the link {link:?} is not built from {template:?}"
        );
        let (_, token) = link.split_once("token=").unwrap();
        token.to_owned()
    }

    /// Whether this email carries a link built from `template`.
    pub fn has_link(&self, template: &str) -> bool {
        let prefix = template
            .split(authd_domain::LinkTemplate::PLACEHOLDER)
            .next()
            .unwrap_or_default();
        self.text
            .as_deref()
            .is_some_and(|text| text.split_whitespace().any(|word| word.starts_with(prefix)))
    }
}

/// A free port of 127.0.0.1 (nothing listened on it a moment ago).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether an SMTP server answers on `address` with its `220` greeting (a connection alone
/// could be another test's server on a port just released).
fn greets(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut greeting = [0; 4];
    stream.read_exact(&mut greeting).is_ok() && greeting.starts_with(b"220")
}

/// An aiosmtpd server delivering to a maildir of its own. Killed, and its files removed, on
/// drop.
pub struct SmtpSink {
    child: Option<Child>,
    port: u16,
    /// Holds the maildir and aiosmtpd's log.
    dir: PathBuf,
}

impl SmtpSink {
    /// Starts a server on a free port and waits until it greets; panics when it cannot (an
    /// email scenario without its server would prove nothing).
    pub fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("authd-e2e-smtp-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut sink = Self {
            child: None,
            port: 0,
            dir,
        };
        // Another test's server may take the port between its release and aiosmtpd's bind:
        // aiosmtpd then exits, and another free port is tried.
        let mut failures = Vec::new();
        for _ in 0..3 {
            sink.port = free_port();
            match sink.spawn() {
                Ok(()) => return sink,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("aiosmtpd did not start: {failures:#?}");
    }

    /// `smtp://127.0.0.1:<port>`, for `settings.email.smtp_url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    fn maildir(&self) -> PathBuf {
        self.dir.join("maildir")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("aiosmtpd.log")).unwrap_or_default()
    }

    /// Starts aiosmtpd on `self.port` and waits until it greets; `Err` when it exited first.
    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("aiosmtpd.log"))
            .unwrap();
        let listen = format!("127.0.0.1:{}", self.port);
        let child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l", &listen])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(self.maildir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start {PYTHON} -m aiosmtpd (is python3-aiosmtpd installed?): {error}"
                )
            });
        self.child = Some(child);
        let address = self.address();
        let deadline = Instant::now() + START_WITHIN;
        loop {
            let child = self.child.as_mut().unwrap();
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Err(format!(
                    "aiosmtpd exited ({status}) before greeting on {address}:\n{}",
                    self.log()
                ));
            }
            if greets(address) {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not greet on {address} within {START_WITHIN:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server: connections to its port are refused until [`restart`](Self::restart).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert!(
            TcpStream::connect_timeout(&self.address(), Duration::from_millis(200)).is_err(),
            "{} still accepts connections after the SMTP server was killed",
            self.address()
        );
    }

    /// Starts the server again, on the same port and maildir.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(failure) = self.spawn() {
            panic!("aiosmtpd did not start again: {failure}");
        }
    }

    /// Every email received so far, oldest first.
    pub fn messages(&self) -> Vec<Delivered> {
        let Ok(entries) = std::fs::read_dir(self.maildir().join("new")) else {
            return Vec::new();
        };
        let mut files: Vec<(SystemTime, PathBuf)> = entries
            .map(|entry| {
                let entry = entry.unwrap();
                (entry.metadata().unwrap().modified().unwrap(), entry.path())
            })
            .collect();
        files.sort();
        files.iter().map(|(_, path)| parse(path)).collect()
    }

    /// How many emails were sent to `address` (the `To` header, exactly).
    pub fn count_to(&self, address: &str) -> usize {
        self.count(address, |_| true)
    }

    /// How many emails to `address` match `predicate`.
    pub fn count(&self, address: &str, predicate: impl Fn(&Delivered) -> bool) -> usize {
        self.messages()
            .iter()
            .filter(|message| message.to == address && predicate(message))
            .count()
    }

    /// The first email to `address` that matches `predicate`, waiting up to `timeout` for it;
    /// panics with what did arrive.
    pub async fn wait_for(
        &self,
        address: &str,
        predicate: impl Fn(&Delivered) -> bool,
        timeout: Duration,
    ) -> Delivered {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if let Some(found) = messages
                .iter()
                .find(|message| message.to == address && predicate(message))
            {
                return found.clone();
            }
            if Instant::now() >= deadline {
                let received: Vec<(&str, &str)> = messages
                    .iter()
                    .map(|message| (message.to.as_str(), message.subject.as_str()))
                    .collect();
                panic!(
                    "no matching email to {address} within {timeout:?}; received (to, subject): \
                     {received:#?}\naiosmtpd log:\n{}",
                    self.log()
                );
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One maildir file, decoded.
fn parse(path: &Path) -> Delivered {
    let raw = std::fs::read(path).unwrap();
    let message = MessageParser::default()
        .parse(&raw)
        .unwrap_or_else(|| panic!("{} is not an email", path.display()));
    let first = |address: Option<&mail_parser::Address<'_>>| {
        address.and_then(|address| address.first()).map(|addr| {
            let mailbox = addr.address().unwrap_or_default().to_owned();
            (addr.name().map(str::to_owned), mailbox)
        })
    };
    let to = first(message.to()).map(|(_, address)| address);
    let from = first(message.from()).map(|(name, address)| match name {
        Some(name) => format!("{name} <{address}>"),
        None => address,
    });
    let part_of_type = |subtype: &str| {
        message
            .parts
            .iter()
            .find(|part| {
                part.content_type().is_some_and(|kind| {
                    kind.ctype().eq_ignore_ascii_case("text")
                        && kind
                            .subtype()
                            .is_some_and(|sub| sub.eq_ignore_ascii_case(subtype))
                })
            })
            .and_then(|part| part.text_contents())
            .map(str::to_owned)
    };
    let content_type = message
        .content_type()
        .map(|kind| {
            format!("{}/{}", kind.ctype(), kind.subtype().unwrap_or_default()).to_ascii_lowercase()
        })
        .unwrap_or_default();
    let envelope_to = message
        .header_raw("X-RcptTo")
        .unwrap_or_default()
        .trim()
        .to_owned();
    Delivered {
        to: to.unwrap_or_default(),
        envelope_to,
        from: from.unwrap_or_default(),
        subject: message.subject().unwrap_or_default().to_owned(),
        text: part_of_type("plain"),
        html: part_of_type("html"),
        content_type,
    }
}
