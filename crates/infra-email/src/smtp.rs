//! Delivery over SMTP, with lettre.

use std::error::Error as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, bail};
use async_trait::async_trait;
use authd_application::ports::{EmailMessage, MailError, Mailer};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use percent_encoding::percent_decode_str;
use url::{Host, Url};

/// The setting that holds the server's URL, named in errors.
const URL_SETTING: &str = "AUTHD_SMTP_URL";
/// The setting that holds the sender, named in errors.
const FROM_SETTING: &str = "AUTHD_EMAIL_FROM";

/// Sends emails to an SMTP server, one connection per email.
///
/// - `smtp://[user:pass@]host[:port]` (port 25 by default): STARTTLS when the server offers
///   it, plain otherwise; with a user, STARTTLS is required (credentials never travel in
///   clear).
/// - `smtps://[user:pass@]host[:port]` (port 465 by default): TLS from the first byte.
///
/// The certificate is checked against the system's roots and the host name. The transport,
/// with its TLS set-up, is built on the first send, not at start: loading the system's root
/// certificates costs an instance about 2.2 MB of memory, which one that sends no email need
/// not hold (a TLS set-up that fails, which OpenSSL does not, fails that send). The timeout is
/// given to lettre, whose async transport (0.11) applies it to the TCP connect only, so every
/// send is also cut off after twice the timeout: a server that accepts and then stalls (or
/// answers too slowly) cannot hold a send longer than that.
#[derive(Debug, Clone)]
pub struct SmtpMailer {
    server: Server,
    transport: Arc<OnceLock<AsyncSmtpTransport<Tokio1Executor>>>,
    from: Mailbox,
    deadline: Duration,
    url_for_log: String,
}

impl SmtpMailer {
    /// A mailer to the server at `url`, sending as `from` (a mailbox such as
    /// `authd <no-reply@example.com>`). Nothing is connected yet. Fails, naming the setting,
    /// on a URL of another scheme, without a host or with options, on a `from` that is not a
    /// mailbox, or on a zero `timeout`.
    pub fn new(url: &str, from: &str, timeout: Duration) -> anyhow::Result<Self> {
        // The URL itself never goes into an error: it may hold a password.
        let parsed =
            Url::parse(url).map_err(|err| anyhow!("{URL_SETTING}: not a valid URL ({err})"))?;
        let (implicit_tls, default_port) = match parsed.scheme() {
            "smtp" => (false, 25),
            "smtps" => (true, 465),
            other => bail!("{URL_SETTING}: the scheme must be smtp:// or smtps://, not {other}://"),
        };
        let host = match parsed.host() {
            Some(Host::Domain(domain)) if !domain.is_empty() => domain.to_owned(),
            Some(Host::Ipv4(address)) => address.to_string(),
            Some(Host::Ipv6(address)) => address.to_string(),
            _ => bail!("{URL_SETTING}: the URL has no host"),
        };
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
            bail!("{URL_SETTING}: only smtp[s]://[user:password@]host[:port] is supported");
        }
        if parsed.fragment().is_some() {
            bail!("{URL_SETTING}: the URL has a #fragment");
        }
        let port = parsed.port().unwrap_or(default_port);
        let user = decode(parsed.username(), "user")?;
        let password = parsed
            .password()
            .map(|password| decode(password, "password"))
            .transpose()?;
        let credentials = match (user.is_empty(), password) {
            (false, password) => Some(Credentials::new(user, password.unwrap_or_default())),
            (true, None) => None,
            (true, Some(_)) => bail!("{URL_SETTING}: a password without a user"),
        };
        let from: Mailbox = from.parse().map_err(|err| {
            anyhow!(
                "{FROM_SETTING}: not a valid mailbox such as `authd <no-reply@example.com>` \
                 ({err})"
            )
        })?;
        if timeout.is_zero() {
            bail!("the SMTP timeout must be more than zero");
        }

        let user_for_log = match parsed.username() {
            "" => String::new(),
            user => format!("{user}@"),
        };
        let host_for_log = parsed.host_str().unwrap_or_default();
        Ok(Self {
            server: Server {
                host,
                port,
                implicit_tls,
                credentials,
                timeout,
            },
            transport: Arc::default(),
            from,
            deadline: timeout.saturating_mul(2),
            url_for_log: format!("{}://{user_for_log}{host_for_log}:{port}", parsed.scheme()),
        })
    }

    /// The server's URL, without the password (with the port, even a default one).
    pub fn url_for_log(&self) -> String {
        self.url_for_log.clone()
    }

    /// The transport, built on the first call.
    fn transport(&self) -> Result<&AsyncSmtpTransport<Tokio1Executor>, MailError> {
        if let Some(transport) = self.transport.get() {
            return Ok(transport);
        }
        let built = self.server.transport().map_err(|err| {
            MailError(format!(
                "SMTP {}: cannot set up TLS: {}",
                self.url_for_log,
                reason(&err)
            ))
        })?;
        Ok(self.transport.get_or_init(|| built))
    }

    /// `message` as a MIME email from the configured sender.
    fn email(&self, message: &EmailMessage) -> Result<Message, MailError> {
        let to: Address = message.to.parse().map_err(|err| {
            MailError(format!("invalid recipient address {:?}: {err}", message.to))
        })?;
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(message.subject.replace(['\r', '\n'], " "))
            .multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                message.html.clone(),
            ))
            .map_err(|err| MailError(format!("cannot build the email: {err}")))
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), MailError> {
        let email = self.email(message)?;
        let transport = self.transport()?;
        match tokio::time::timeout(self.deadline, transport.send(email)).await {
            Ok(Ok(_response)) => Ok(()),
            Ok(Err(err)) => Err(MailError(format!(
                "SMTP {}: {}",
                self.url_for_log,
                reason(&err)
            ))),
            Err(_elapsed) => Err(MailError(format!(
                "SMTP {}: no answer within {} ms",
                self.url_for_log,
                self.deadline.as_millis()
            ))),
        }
    }
}

/// The server a [`SmtpMailer`] sends to, as its URL says.
#[derive(Debug, Clone)]
struct Server {
    host: String,
    port: u16,
    implicit_tls: bool,
    credentials: Option<Credentials>,
    timeout: Duration,
}

impl Server {
    fn transport(
        &self,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
        let tls_parameters = TlsParameters::new(self.host.clone())?;
        // lettre sends AUTH whether or not STARTTLS happened, so with credentials an on-path
        // attacker who strips the STARTTLS offer would read them (and every link in clear):
        // credentials require TLS.
        let tls = if self.implicit_tls {
            Tls::Wrapper(tls_parameters)
        } else if self.credentials.is_some() {
            Tls::Required(tls_parameters)
        } else {
            Tls::Opportunistic(tls_parameters)
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(self.timeout));
        if let Some(credentials) = &self.credentials {
            builder = builder.credentials(credentials.clone());
        }
        Ok(builder.build())
    }
}

/// `raw`, percent-decoded, as the URL's `what`.
fn decode(raw: &str, what: &str) -> anyhow::Result<String> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| anyhow!("{URL_SETTING}: the {what} is not UTF-8 once percent-decoded"))
}

/// `err` and its sources, each once.
fn reason(err: &lettre::transport::smtp::Error) -> String {
    let mut reason = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !reason.contains(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = cause.source();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    const FROM: &str = "authd <no-reply@localhost>";
    const TIMEOUT: Duration = Duration::from_secs(5);

    fn error(url: &str, from: &str) -> String {
        SmtpMailer::new(url, from, TIMEOUT).unwrap_err().to_string()
    }

    #[test]
    fn other_schemes_are_rejected() {
        let err = error("http://x", FROM);
        assert!(err.starts_with("AUTHD_SMTP_URL: "), "{err}");
        assert!(err.contains("http://"), "{err}");
        assert!(error("not a url", FROM).starts_with("AUTHD_SMTP_URL: "));
    }

    #[test]
    fn a_url_without_a_host_is_rejected() {
        for url in ["smtp://", "smtp:", "smtps:///", "smtp://user:pw@"] {
            let err = error(url, FROM);
            assert!(err.starts_with("AUTHD_SMTP_URL: "), "{url}: {err}");
        }
    }

    #[test]
    fn options_are_rejected_rather_than_ignored() {
        for url in ["smtp://h?tls=required", "smtp://h/ehlo", "smtp://h#x"] {
            let err = error(url, FROM);
            assert!(err.starts_with("AUTHD_SMTP_URL: "), "{url}: {err}");
        }
    }

    #[test]
    fn a_password_never_shows_in_errors() {
        let err = error("smtp://user:s3cret@h?x=1", FROM);
        assert!(!err.contains("s3cret"), "{err}");
        let err = error("smtp://:s3cret@h", FROM);
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn a_bad_from_is_rejected() {
        for from in ["", "no-reply", "authd <no-reply>", "a@b@c", "authd <x@y"] {
            let err = error("smtp://h", from);
            assert!(err.starts_with("AUTHD_EMAIL_FROM: "), "{from}: {err}");
        }
    }

    #[test]
    fn a_zero_timeout_is_rejected() {
        assert!(SmtpMailer::new("smtp://h", FROM, Duration::ZERO).is_err());
    }

    #[test]
    fn good_urls_are_accepted() {
        let mailer = SmtpMailer::new("smtp://user:p%40ss@127.0.0.1:2525", FROM, TIMEOUT).unwrap();
        assert_eq!(mailer.url_for_log(), "smtp://user@127.0.0.1:2525");
        let mailer = SmtpMailer::new("smtps://h", FROM, TIMEOUT).unwrap();
        assert_eq!(mailer.url_for_log(), "smtps://h:465");
        let mailer = SmtpMailer::new("smtp://mail.example.com/", FROM, TIMEOUT).unwrap();
        assert_eq!(mailer.url_for_log(), "smtp://mail.example.com:25");
        let mailer = SmtpMailer::new("smtp://[::1]:587", "no-reply@example.com", TIMEOUT).unwrap();
        assert_eq!(mailer.url_for_log(), "smtp://[::1]:587");
    }

    #[test]
    fn the_logged_url_hides_the_password() {
        let mailer =
            SmtpMailer::new("smtps://us%20er:hunter2@mail.example.com", FROM, TIMEOUT).unwrap();
        let logged = mailer.url_for_log();
        assert!(!logged.contains("hunter2"), "{logged}");
        assert_eq!(logged, "smtps://us%20er@mail.example.com:465");
        let debug = format!("{mailer:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn the_user_and_password_are_percent_decoded() {
        assert_eq!(decode("p%40ss", "password").unwrap(), "p@ss");
        assert_eq!(decode("plain", "user").unwrap(), "plain");
        assert!(decode("%ff", "user").is_err());
    }

    #[test]
    fn a_bad_recipient_is_a_mail_error() {
        let mailer = SmtpMailer::new("smtp://127.0.0.1:1", FROM, TIMEOUT).unwrap();
        let message = EmailMessage {
            to: "not an address".to_owned(),
            subject: "s".to_owned(),
            text: "t".to_owned(),
            html: "h".to_owned(),
        };
        let err = mailer.email(&message).unwrap_err();
        assert!(err.0.contains("recipient"), "{err}");
    }

    #[test]
    fn the_email_is_multipart_alternative() {
        let mailer = SmtpMailer::new("smtp://h", FROM, TIMEOUT).unwrap();
        let message = EmailMessage {
            to: "user@example.com".to_owned(),
            subject: "Hi\r\nBcc: evil@example.com".to_owned(),
            text: "the text".to_owned(),
            html: "<p>the html</p>".to_owned(),
        };
        let formatted = String::from_utf8(mailer.email(&message).unwrap().formatted()).unwrap();
        assert!(
            formatted.contains("From: authd <no-reply@localhost>\r\n"),
            "{formatted}"
        );
        assert!(
            formatted.contains("To: user@example.com\r\n"),
            "{formatted}"
        );
        assert!(
            formatted.contains("Subject: Hi  Bcc: evil@example.com\r\n"),
            "{formatted}"
        );
        assert!(!formatted.contains("\r\nBcc:"), "{formatted}");
        assert!(formatted.contains("multipart/alternative"), "{formatted}");
        assert!(formatted.contains("text/plain"), "{formatted}");
        assert!(formatted.contains("text/html"), "{formatted}");
    }
}
