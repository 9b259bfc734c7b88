use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// Why a string is not an [`Email`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmailError {
    /// Nothing but whitespace was given.
    #[error("email must not be empty")]
    Empty,
    /// Longer than the 254 characters an address can have.
    #[error("email must be at most 254 characters")]
    TooLong,
    /// Not of the form `local@domain`.
    #[error("email must look like name@example.com")]
    Malformed,
}

/// An email address: the user's identity.
///
/// Surrounding Unicode whitespace is trimmed; the address keeps the case it was given in, but
/// two addresses are the same identity when their NFC-normalised Unicode lowercase forms match
/// ([`Email::normalized`]), which is what uniqueness, login and throttling are keyed on: a
/// precomposed `é` and an `e` followed by a combining accent are the same letter.
///
/// ```
/// use authd_domain::Email;
///
/// let a = Email::parse("Ada@Example.com").unwrap();
/// let b = Email::parse("ada@EXAMPLE.com\u{2003}").unwrap();
/// assert_eq!(a, b);
/// assert!(Email::parse("not an email").is_err());
/// ```
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(into = "String", try_from = "String"))]
pub struct Email {
    given: String,
    normalized: String,
}

impl Email {
    /// The longest address accepted (RFC 5321 path limit minus the brackets), as sent,
    /// surrounding whitespace included.
    pub const MAX_LEN: usize = 254;

    /// Validates and trims an address.
    ///
    /// The check is deliberately structural (one `@`, a non-empty local part, a dotted domain
    /// without empty labels, no whitespace or control characters): deliverability is not
    /// something a parser can decide.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let given = raw.trim();
        if given.is_empty() {
            return Err(EmailError::Empty);
        }
        // Counted as sent, surrounding whitespace included: one limit a client (and an OpenAPI
        // `maxLength`) can check without knowing what trimming removes.
        if raw.chars().count() > Self::MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = given.rsplit_once('@').ok_or(EmailError::Malformed)?;
        let well_formed = !local.is_empty()
            && local.chars().count() <= 64
            && !local.contains('@')
            && domain.contains('.')
            && domain.split('.').all(|label| !label.is_empty())
            && !given
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'));
        if !well_formed {
            return Err(EmailError::Malformed);
        }
        Ok(Self {
            given: given.to_owned(),
            normalized: identity(given),
        })
    }

    /// The address as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.given
    }

    /// The NFC-normalised Unicode lowercase form: the identity two addresses are compared on.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

/// NFC, lowercased, NFC again (lowercasing can leave a sequence that composes differently).
fn identity(text: &str) -> String {
    // ASCII is its own NFC, and its Unicode lowercase is its ASCII lowercase. Most addresses
    // are ASCII, and every cached user's address is parsed again on every request.
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    unicode_identity(text)
}

fn unicode_identity(text: &str) -> String {
    text.nfc()
        .collect::<String>()
        .to_lowercase()
        .nfc()
        .collect()
}

/// The form a search text is compared in against [`Email::normalized`] (a substring of an
/// address): the same normalisation, without the parsing.
///
/// ```
/// assert_eq!(authd_domain::email_search_form("E\u{301}LODIE"), "\u{e9}lodie");
/// ```
pub fn email_search_form(text: &str) -> String {
    identity(text)
}

impl From<Email> for String {
    fn from(email: Email) -> Self {
        email.given
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.normalized == other.normalized
    }
}

impl Eq for Email {}

impl std::hash::Hash for Email {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.normalized.hash(state);
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_unicode_whitespace_and_keeps_case() {
        let email = Email::parse("\u{00A0} Zoë@Example.org\t").unwrap();
        assert_eq!(email.as_str(), "Zoë@Example.org");
        assert_eq!(email.normalized(), "zoë@example.org");
    }

    #[test]
    fn composed_and_decomposed_accents_are_one_identity() {
        let composed = Email::parse("\u{c9}lodie@example.fr").unwrap();
        let decomposed = Email::parse("E\u{301}lodie@example.fr").unwrap();
        assert_eq!(composed, decomposed);
        assert_eq!(decomposed.normalized(), "\u{e9}lodie@example.fr");
        assert_eq!(decomposed.as_str(), "E\u{301}lodie@example.fr");
        use std::hash::{BuildHasher, RandomState};
        let state = RandomState::new();
        assert_eq!(state.hash_one(&composed), state.hash_one(&decomposed));
        assert_ne!(composed, Email::parse("elodie@example.fr").unwrap());
    }

    proptest::proptest! {
        #[test]
        fn the_ascii_shortcut_gives_the_full_normalisation(text in "[ -~]{0,40}") {
            proptest::prop_assert_eq!(identity(&text), unicode_identity(&text));
        }
    }

    #[test]
    fn ascii_addresses_compare_lowercased() {
        let email = Email::parse("Ada.Lovelace@Example.ORG").unwrap();
        assert_eq!(email.normalized(), "ada.lovelace@example.org");
    }

    #[test]
    fn compares_on_unicode_lowercase() {
        assert_eq!(
            Email::parse("ÉLODIE@example.fr").unwrap(),
            Email::parse("élodie@EXAMPLE.fr").unwrap()
        );
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "   ",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@b..c",
            "a b@c.d",
            "a@.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(Email::parse(" ").unwrap_err(), EmailError::Empty);
    }

    #[test]
    fn rejects_angle_brackets_commas_and_semicolons() {
        for c in ['<', '>', ',', ';'] {
            assert_eq!(
                Email::parse(&format!("a{c}b@example.com")).unwrap_err(),
                EmailError::Malformed,
                "{c:?} was accepted"
            );
        }
    }

    #[test]
    fn rejects_control_characters() {
        assert_eq!(
            Email::parse("a\u{7}b@example.com").unwrap_err(),
            EmailError::Malformed
        );
    }

    #[test]
    fn display_and_string_are_the_address_as_given() {
        let email = Email::parse(" Ada@Example.com ").unwrap();
        assert_eq!(email.to_string(), "Ada@Example.com");
        assert_eq!(String::from(email), "Ada@Example.com");
    }

    #[test]
    fn case_variants_are_one_entry_in_a_hash_set() {
        let set: std::collections::HashSet<Email> = ["Ada@Example.com", "ada@example.COM"]
            .into_iter()
            .map(|raw| Email::parse(raw).unwrap())
            .collect();
        assert_eq!(set.len(), 1);
        assert!(set.contains(&Email::parse("ADA@EXAMPLE.COM").unwrap()));
        assert!(!set.contains(&Email::parse("bob@example.com").unwrap()));
    }

    #[test]
    fn different_identities_hash_differently() {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        // A fixed-key hasher: the result is the same on every run.
        let state = BuildHasherDefault::<DefaultHasher>::default();
        let ada = Email::parse("ada@example.com").unwrap();
        let bob = Email::parse("bob@example.com").unwrap();
        assert_ne!(state.hash_one(&ada), state.hash_one(&bob));
    }

    #[test]
    fn the_length_limit_counts_what_was_sent() {
        let at_limit = format!("a@{}.com", "b".repeat(Email::MAX_LEN - 6));
        assert_eq!(at_limit.chars().count(), Email::MAX_LEN);
        assert!(Email::parse(&at_limit).is_ok());
        assert_eq!(
            Email::parse(&format!(" {at_limit}")).unwrap_err(),
            EmailError::TooLong
        );
    }

    #[test]
    fn rejects_overlong_addresses() {
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long).unwrap_err(), EmailError::TooLong);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializing_goes_through_the_parser() {
        let email: Email = serde_json::from_str("\" Ada@Example.com \"").unwrap();
        assert_eq!(email.as_str(), "Ada@Example.com");
        assert_eq!(
            serde_json::to_string(&email).unwrap(),
            "\"Ada@Example.com\""
        );
        assert!(serde_json::from_str::<Email>("\"not an email\"").is_err());
    }
}
