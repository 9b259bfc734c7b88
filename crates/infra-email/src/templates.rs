//! The email templates, rendered with minijinja.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use authd_application::PortError;
use authd_application::ports::{EmailMessage, EmailTemplates};
use authd_domain::EmailKind;
use minijinja::{
    AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior, Value, context,
    escape_formatter,
};

/// The recipient the templates are tried with at load.
const SAMPLE_EMAIL: &str = "user@example.com";
/// The link the templates are tried with at load.
const SAMPLE_LINK: &str = "https://example.com/link?token=TOKEN";

/// The built-in template named `name` (`<kind>.subject.txt`, `<kind>.txt`, `<kind>.html`).
fn built_in(name: &str) -> Option<&'static str> {
    Some(match name {
        "verify_email.subject.txt" => include_str!("../templates/verify_email.subject.txt"),
        "verify_email.txt" => include_str!("../templates/verify_email.txt"),
        "verify_email.html" => include_str!("../templates/verify_email.html"),
        "reset_password.subject.txt" => include_str!("../templates/reset_password.subject.txt"),
        "reset_password.txt" => include_str!("../templates/reset_password.txt"),
        "reset_password.html" => include_str!("../templates/reset_password.html"),
        "password_changed.subject.txt" => {
            include_str!("../templates/password_changed.subject.txt")
        }
        "password_changed.txt" => include_str!("../templates/password_changed.txt"),
        "password_changed.html" => include_str!("../templates/password_changed.html"),
        _ => return None,
    })
}

/// The three templates of an email.
#[derive(Debug, Clone, Copy)]
enum Part {
    Subject,
    Text,
    Html,
}

impl Part {
    const ALL: [Self; 3] = [Self::Subject, Self::Text, Self::Html];

    /// The template's file name for `kind`. The extension also picks the escaping: HTML for
    /// `.html`, none for `.txt`.
    fn file_name(self, kind: EmailKind) -> String {
        let suffix = match self {
            Self::Subject => "subject.txt",
            Self::Text => "txt",
            Self::Html => "html",
        };
        format!("{}.{suffix}", kind.as_str())
    }
}

/// Where a template came from, to name it in errors.
#[derive(Debug, Clone)]
enum Origin {
    BuiltIn(String),
    Operator(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BuiltIn(name) => write!(f, "built-in email template {name}"),
            Self::Operator(path) => write!(f, "email template {}", path.display()),
        }
    }
}

/// The email templates: three minijinja templates per [`EmailKind`], `<kind>.subject.txt`,
/// `<kind>.txt` and `<kind>.html`, given the variables `email` (the recipient) and, for the
/// kinds with a link, `link`. Using any other variable is an error.
///
/// The subject is trimmed and made one line (line breaks and other control characters become
/// spaces). The HTML part is autoescaped; the text part is not escaped.
#[derive(Debug)]
pub struct MinijinjaTemplates {
    env: Environment<'static>,
    origins: BTreeMap<String, Origin>,
}

impl MinijinjaTemplates {
    /// The built-in templates, each replaced by the file of the same name in `dir` when there
    /// is one (other files there are ignored).
    ///
    /// Every template is then rendered once with sample values; the first that does not parse
    /// or render (an unknown variable, say) fails the load with an error naming its file, as
    /// does a link email whose text part lacks the link. Fails too when `dir` cannot be read.
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(dir) = dir {
            match std::fs::metadata(dir) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => bail!("email templates folder {}: not a folder", dir.display()),
                Err(err) => bail!("email templates folder {}: {err}", dir.display()),
            }
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_formatter(formatter);
        let mut origins = BTreeMap::new();
        for kind in EmailKind::ALL {
            for part in Part::ALL {
                let name = part.file_name(kind);
                let (source, origin) = match read_override(dir, &name)? {
                    Some((source, path)) => {
                        tracing::info!(path = %path.display(), "email template overridden");
                        (source, Origin::Operator(path))
                    }
                    None => {
                        let source = built_in(&name)
                            .ok_or_else(|| anyhow!("built-in email template {name} is missing"))?;
                        (source.to_owned(), Origin::BuiltIn(name.clone()))
                    }
                };
                env.add_template_owned(name.clone(), source)
                    .map_err(|err| anyhow!("{origin}: {err}"))?;
                origins.insert(name, origin);
            }
        }
        let templates = Self { env, origins };
        templates.check()?;
        Ok(templates)
    }

    /// Renders every email with sample values.
    fn check(&self) -> anyhow::Result<()> {
        for kind in EmailKind::ALL {
            let link = kind.has_link().then_some(SAMPLE_LINK);
            let message = self.message(kind, SAMPLE_EMAIL, link)?;
            if link.is_some() && !message.text.contains(SAMPLE_LINK) {
                bail!(
                    "{}: the text of a link email must contain {{{{ link }}}}",
                    self.origin(&Part::Text.file_name(kind))
                );
            }
        }
        Ok(())
    }

    /// Where the template `name` came from.
    fn origin(&self, name: &str) -> String {
        self.origins
            .get(name)
            .map_or_else(|| format!("email template {name}"), Origin::to_string)
    }

    /// The email of `kind` to `email`, with `link` in the context when given.
    fn message(
        &self,
        kind: EmailKind,
        email: &str,
        link: Option<&str>,
    ) -> anyhow::Result<EmailMessage> {
        let subject = one_line(&self.part(kind, Part::Subject, email, link)?);
        if subject.is_empty() {
            bail!(
                "{}: the subject is empty",
                self.origin(&Part::Subject.file_name(kind))
            );
        }
        Ok(EmailMessage {
            to: email.to_owned(),
            subject,
            text: self.part(kind, Part::Text, email, link)?,
            html: self.part(kind, Part::Html, email, link)?,
        })
    }

    /// One template rendered.
    fn part(
        &self,
        kind: EmailKind,
        part: Part,
        email: &str,
        link: Option<&str>,
    ) -> anyhow::Result<String> {
        let name = part.file_name(kind);
        let rendered = match link {
            Some(link) => self
                .env
                .get_template(&name)
                .and_then(|template| template.render(context! { email, link })),
            None => self
                .env
                .get_template(&name)
                .and_then(|template| template.render(context! { email })),
        };
        rendered.map_err(|err| {
            let hint = match (err.kind(), link.is_some()) {
                (ErrorKind::UndefinedError, true) => " (the variables are email and link)",
                (ErrorKind::UndefinedError, false) => " (the only variable is email)",
                _ => "",
            };
            anyhow!("{}: {err}{hint}", self.origin(&name))
        })
    }
}

impl EmailTemplates for MinijinjaTemplates {
    fn render(
        &self,
        kind: EmailKind,
        to: &str,
        link: Option<&str>,
    ) -> Result<EmailMessage, PortError> {
        let link = match (kind.has_link(), link) {
            (true, Some(link)) => Some(link),
            (true, None) => {
                return Err(PortError::Unexpected(anyhow!(
                    "the {kind} email needs a link"
                )));
            }
            (false, _) => None,
        };
        self.message(kind, to, link).map_err(PortError::Unexpected)
    }
}

/// The operator's file `name` in `dir` and its path, `None` when there is none.
fn read_override(dir: Option<&Path>, name: &str) -> anyhow::Result<Option<(String, PathBuf)>> {
    let Some(dir) = dir else {
        return Ok(None);
    };
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(source) => Ok(Some((source, path))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => bail!("email template {}: {err}", path.display()),
    }
}

/// minijinja's formatter, except that HTML escaping leaves `/` alone: links stay verbatim in
/// `href` and in the text (minijinja writes `&#x2f;`, valid but needless inside quotes).
fn formatter(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    match value.as_str() {
        Some(text) if state.auto_escape() == AutoEscape::Html && !value.is_safe() => {
            Ok(out.write_str(&escape_html(text))?)
        }
        _ => escape_formatter(out, state, value),
    }
}

/// `text` with the five characters that matter in HTML text and quoted attributes escaped.
fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#x27;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `text` on one line: control characters (CR and LF among them, so no header can be
/// smuggled in) become spaces, runs of whitespace one space, and the ends are trimmed.
fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    const LINK: &str = "https://auth.example.com/verify?token=abc&x=1";

    /// A fresh empty folder under the temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "authd-email-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        fn write(&self, name: &str, content: &str) {
            std::fs::write(self.0.join(name), content).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn every_built_in_file_exists() {
        for kind in EmailKind::ALL {
            for part in Part::ALL {
                let name = part.file_name(kind);
                assert!(built_in(&name).is_some(), "{name}");
            }
        }
    }

    #[test]
    fn built_ins_render_every_kind() {
        let templates = MinijinjaTemplates::load(None).unwrap();
        let to = "a<b>&\"c\"@example.com";
        for kind in EmailKind::ALL {
            let link = kind.has_link().then_some(LINK);
            let message = templates.render(kind, to, link).unwrap();
            assert_eq!(message.to, to);
            assert!(!message.subject.is_empty(), "{kind}");
            assert!(!message.subject.contains(['\r', '\n']), "{kind}");
            assert!(message.text.contains(to), "{kind}: the text is not escaped");
            assert!(!message.html.contains("a<b>"), "{kind}: {}", message.html);
            assert!(
                message.html.contains("a&lt;b&gt;&amp;"),
                "{kind}: {}",
                message.html
            );
            if kind.has_link() {
                assert!(
                    message.text.lines().any(|line| line.trim() == LINK),
                    "{kind}: the link on its own line in {}",
                    message.text
                );
                assert!(message.html.contains("<a href=\""), "{kind}");
                assert!(
                    message
                        .html
                        .contains("<a href=\"https://auth.example.com/verify?token=abc&amp;x=1\""),
                    "{kind}: {}",
                    message.html
                );
            } else {
                assert!(!message.text.contains("http"), "{kind}");
            }
        }
    }

    #[test]
    fn the_default_subjects() {
        let templates = MinijinjaTemplates::load(None).unwrap();
        let subject = |kind| {
            templates
                .render(kind, "u@example.com", Some(LINK))
                .unwrap()
                .subject
        };
        assert_eq!(
            subject(EmailKind::VerifyEmail),
            "Confirm your email address"
        );
        assert_eq!(subject(EmailKind::ResetPassword), "Reset your password");
        assert_eq!(
            subject(EmailKind::PasswordChanged),
            "Your password was changed"
        );
    }

    #[test]
    fn a_link_email_without_a_link_is_an_error() {
        let templates = MinijinjaTemplates::load(None).unwrap();
        let err = templates
            .render(EmailKind::ResetPassword, "u@example.com", None)
            .unwrap_err();
        assert!(err.to_string().contains("link"), "{err}");
    }

    #[test]
    fn an_operator_file_replaces_its_built_in_only() {
        let dir = TempDir::new();
        dir.write("reset_password.txt", "Reset {{ email }}:\n{{ link }}\n");
        dir.write("unrelated.txt", "{{ broken");
        let templates = MinijinjaTemplates::load(Some(&dir.0)).unwrap();
        let reset = templates
            .render(EmailKind::ResetPassword, "u@example.com", Some(LINK))
            .unwrap();
        assert_eq!(reset.text, format!("Reset u@example.com:\n{LINK}"));
        assert_eq!(reset.subject, "Reset your password");
        assert!(reset.html.contains("Choose a new password"));
        let verify = templates
            .render(EmailKind::VerifyEmail, "u@example.com", Some(LINK))
            .unwrap();
        assert!(verify.text.contains("Please confirm that u@example.com"));
    }

    #[test]
    fn a_broken_operator_file_fails_the_load_naming_it() {
        let dir = TempDir::new();
        dir.write("reset_password.html", "<a href=\"{{ link \">x</a>");
        let err = MinijinjaTemplates::load(Some(&dir.0))
            .unwrap_err()
            .to_string();
        let path = dir.0.join("reset_password.html");
        assert!(
            err.starts_with(&format!("email template {}: ", path.display())),
            "{err}"
        );
        assert!(err.contains("syntax error"), "{err}");
    }

    #[test]
    fn an_unknown_variable_fails_the_load() {
        let dir = TempDir::new();
        dir.write("verify_email.subject.txt", "Welcome {{ emial }}");
        let err = MinijinjaTemplates::load(Some(&dir.0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("verify_email.subject.txt"), "{err}");
        assert!(err.contains("undefined"), "{err}");
        assert!(err.contains("the variables are email and link"), "{err}");
    }

    #[test]
    fn the_link_in_an_email_without_one_fails_the_load() {
        let dir = TempDir::new();
        dir.write("password_changed.html", "<a href=\"{{ link }}\">reset</a>");
        let err = MinijinjaTemplates::load(Some(&dir.0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("password_changed.html"), "{err}");
        assert!(err.contains("the only variable is email"), "{err}");
    }

    #[test]
    fn a_link_email_whose_text_lacks_the_link_fails_the_load() {
        let dir = TempDir::new();
        dir.write("verify_email.txt", "Hello {{ email }}, click the button.");
        let err = MinijinjaTemplates::load(Some(&dir.0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("verify_email.txt"), "{err}");
        assert!(err.contains("{{ link }}"), "{err}");
    }

    #[test]
    fn a_missing_folder_fails_the_load_naming_it() {
        let dir = TempDir::new();
        let missing = dir.0.join("nope");
        let err = MinijinjaTemplates::load(Some(&missing))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }

    #[test]
    fn the_subject_is_one_trimmed_line() {
        let dir = TempDir::new();
        dir.write(
            "password_changed.subject.txt",
            "\n  Changed\r\nBcc: evil@example.com\t{{ email }}  \n\n",
        );
        let templates = MinijinjaTemplates::load(Some(&dir.0)).unwrap();
        let message = templates
            .render(EmailKind::PasswordChanged, "u@example.com", None)
            .unwrap();
        assert_eq!(
            message.subject,
            "Changed Bcc: evil@example.com u@example.com"
        );
    }

    #[test]
    fn an_empty_subject_fails_the_load() {
        let dir = TempDir::new();
        dir.write("verify_email.subject.txt", " \n ");
        let err = MinijinjaTemplates::load(Some(&dir.0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("verify_email.subject.txt"), "{err}");
    }

    #[test]
    fn html_escaping_covers_text_and_attributes_but_not_slashes() {
        assert_eq!(
            escape_html("<a href=\"/x?a=1&b='2'\">"),
            "&lt;a href=&quot;/x?a=1&amp;b=&#x27;2&#x27;&quot;&gt;"
        );
        let dir = TempDir::new();
        dir.write(
            "password_changed.html",
            "{{ email }} {{ email|safe }} {{ 1 }} {% if true %}<b>{% endif %}",
        );
        let templates = MinijinjaTemplates::load(Some(&dir.0)).unwrap();
        let html = templates
            .render(EmailKind::PasswordChanged, "<i>@x/y", None)
            .unwrap()
            .html;
        assert_eq!(html, "&lt;i&gt;@x/y <i>@x/y 1 <b>");
    }

    #[test]
    fn one_line_strips_control_characters() {
        assert_eq!(one_line(" a\r\nb\u{0}c \u{7f} "), "a b c");
        assert_eq!(one_line("plain"), "plain");
    }
}
