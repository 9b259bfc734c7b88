use std::fmt;

use unicode_normalization::UnicodeNormalization;

use crate::Email;

/// Why a password is refused by the [`PasswordPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Fewer code points than the policy's minimum.
    #[error("password must be at least {min} characters")]
    TooShort {
        /// The policy's minimum length.
        min: usize,
    },
    /// More than [`PasswordPolicy::MAX_LENGTH`] code points.
    #[error("password must be at most {max} characters")]
    TooLong {
        /// The maximum length.
        max: usize,
    },
    /// Nothing but whitespace.
    #[error("password must not be only whitespace")]
    Blank,
    /// The same as the account's email, compared case-insensitively.
    #[error("password must not be the email address")]
    SameAsEmail,
}

/// A plaintext password, NFKC-normalized so that the same characters typed on different
/// keyboards hash alike. Its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Normalizes a password without judging it: what a login compares against the stored
    /// hash (a policy may have tightened since the password was set).
    pub fn normalize(raw: &str) -> Self {
        Self(raw.nfkc().collect())
    }

    /// The longest password a login checks, in UTF-8 bytes, before and after normalization:
    /// no policy allows more, and hashing megabytes on request would be free work for an
    /// attacker.
    pub const MAX_LOGIN_BYTES: usize = 1024;

    /// Normalizes a password presented at login, or `None` when it is longer than
    /// [`Self::MAX_LOGIN_BYTES`] as given or once normalized (NFKC can grow a string many
    /// times; the growth is cut off as soon as it passes the limit).
    ///
    /// ```
    /// use authd_domain::Password;
    /// assert!(Password::for_login("correct horse").is_some());
    /// assert!(Password::for_login(&"a".repeat(1025)).is_none());
    /// // U+FDFA is 3 bytes and becomes 33 under NFKC.
    /// assert!(Password::for_login(&"\u{FDFA}".repeat(40)).is_none());
    /// ```
    pub fn for_login(raw: &str) -> Option<Self> {
        if raw.len() > Self::MAX_LOGIN_BYTES {
            return None;
        }
        let mut normalized = String::with_capacity(raw.len());
        for c in raw.nfkc() {
            normalized.push(c);
            if normalized.len() > Self::MAX_LOGIN_BYTES {
                return None;
            }
        }
        Some(Self(normalized))
    }

    /// The normalized characters, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A stored password hash in PHC string format (`$argon2id$v=19$m=...`). Its `Debug` output
/// is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string produced by a hasher or read from storage.
    pub fn new(phc: impl Into<String>) -> Self {
        Self(phc.into())
    }

    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

/// The rules a new password must meet: between the minimum (8 by default, never lower) and
/// 128 code points after NFKC normalization, not only whitespace, and not the account's email.
///
/// ```
/// use authd_domain::{Email, PasswordError, PasswordPolicy};
///
/// let policy = PasswordPolicy::new(10);
/// let email = Email::parse("ada@example.com").unwrap();
/// assert_eq!(policy.check("12345678", None), Err(PasswordError::TooShort { min: 10 }));
/// assert_eq!(policy.check("ADA@example.com", Some(&email)), Err(PasswordError::SameAsEmail));
/// assert_eq!(policy.check("a long passphrase", Some(&email)).unwrap().expose(), "a long passphrase");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    min_length: usize,
}

impl PasswordPolicy {
    /// The lowest minimum length a policy can have.
    pub const MIN_LENGTH: usize = 8;
    /// The longest password accepted: Argon2 cost does not depend on it, but a bound keeps
    /// requests small.
    pub const MAX_LENGTH: usize = 128;

    /// A policy with the given minimum length, raised to [`Self::MIN_LENGTH`] and capped at
    /// [`Self::MAX_LENGTH`].
    pub fn new(min_length: usize) -> Self {
        Self {
            min_length: min_length.clamp(Self::MIN_LENGTH, Self::MAX_LENGTH),
        }
    }

    /// The minimum length in code points.
    pub fn min_length(&self) -> usize {
        self.min_length
    }

    /// Normalizes `raw` and checks it against the policy, returning the password to hash.
    pub fn check(&self, raw: &str, email: Option<&Email>) -> Result<Password, PasswordError> {
        let password = Password::normalize(raw);
        let length = password.0.chars().count();
        if length < self.min_length {
            return Err(PasswordError::TooShort {
                min: self.min_length,
            });
        }
        if length > Self::MAX_LENGTH {
            return Err(PasswordError::TooLong {
                max: Self::MAX_LENGTH,
            });
        }
        if password.0.chars().all(char::is_whitespace) {
            return Err(PasswordError::Blank);
        }
        if email.is_some_and(|email| is_email(&password, email)) {
            return Err(PasswordError::SameAsEmail);
        }
        Ok(password)
    }
}

/// Whether `password` is `email`, compared case-insensitively (the policy's last rule).
fn is_email(password: &Password, email: &Email) -> bool {
    password.0.to_lowercase() == email.normalized()
}

/// A password that meets a [`PasswordPolicy`]: what a signup, a password change and an admin's
/// password set hash. The policy's rules live in [`PasswordPolicy::check`]; this type is the
/// proof that it passed. Its `Debug` output is redacted.
///
/// The policy compares the password with the account's email. When the email is not known
/// where the password is parsed (an admin setting the password of a stored user),
/// [`NewPassword::is_email`] finishes the check once it is.
///
/// ```
/// use authd_domain::{Email, NewPassword, PasswordError, PasswordPolicy};
///
/// let policy = PasswordPolicy::default();
/// let email = Email::parse("ada@example.com").unwrap();
/// let password = NewPassword::parse("ADA@example.com", &policy, None).unwrap();
/// assert!(password.is_email(&email));
/// assert_eq!(
///     NewPassword::parse("ADA@example.com", &policy, Some(&email)),
///     Err(PasswordError::SameAsEmail)
/// );
/// assert_eq!(NewPassword::parse("short", &policy, None), Err(PasswordError::TooShort { min: 8 }));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(Password);

impl NewPassword {
    /// Normalizes `raw` and checks it against `policy` and, when known, the account's email.
    pub fn parse(
        raw: &str,
        policy: &PasswordPolicy,
        email: Option<&Email>,
    ) -> Result<Self, PasswordError> {
        policy.check(raw, email).map(Self)
    }

    /// Whether the policy would refuse this password for an account with `email`.
    pub fn is_email(&self, email: &Email) -> bool {
        is_email(&self.0, email)
    }

    /// The normalized password, for hashing.
    pub fn password(&self) -> &Password {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self::new(Self::MIN_LENGTH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_passwords_are_bounded_at_exactly_1024_bytes_before_and_after_nfkc() {
        let at_limit = "a".repeat(Password::MAX_LOGIN_BYTES);
        assert_eq!(Password::for_login(&at_limit).unwrap().expose(), at_limit);
        assert!(Password::for_login(&format!("{at_limit}a")).is_none());
        // 341 × U+FDFA is 1023 bytes as given and 11,253 once normalized.
        assert!(Password::for_login(&"\u{FDFA}".repeat(341)).is_none());
        // U+FB01 (ﬁ, 3 bytes) becomes "fi" (2 bytes): 1026 bytes given is refused even though
        // it would shrink.
        assert!(Password::for_login(&"\u{FB01}".repeat(342)).is_none());
        assert_eq!(Password::for_login("\u{FB01}").unwrap().expose(), "fi");
    }

    #[test]
    fn lengths_count_code_points_after_nfkc() {
        let policy = PasswordPolicy::default();
        // Eight multi-byte characters pass; "ﬁ" (one code point) becomes "fi" (two) under NFKC.
        assert!(policy.check("éééééééé", None).is_ok());
        assert_eq!(
            policy.check("ﬁﬁﬁ", None).unwrap_err(),
            PasswordError::TooShort { min: 8 }
        );
        assert_eq!(policy.check("ﬁﬁﬁﬁ", None).unwrap().expose(), "fifififi");
    }

    #[test]
    fn enforces_both_bounds() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.check("1234567", None).unwrap_err(),
            PasswordError::TooShort { min: 8 }
        );
        assert!(policy.check(&"x".repeat(128), None).is_ok());
        assert_eq!(
            policy.check(&"x".repeat(129), None).unwrap_err(),
            PasswordError::TooLong { max: 128 }
        );
    }

    #[test]
    fn refuses_whitespace_only_and_the_email() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.check(" \u{3000}\t      ", None).unwrap_err(),
            PasswordError::Blank
        );
        let email = Email::parse("Someone@Example.com").unwrap();
        assert_eq!(
            policy
                .check("someone@example.COM", Some(&email))
                .unwrap_err(),
            PasswordError::SameAsEmail
        );
    }

    #[test]
    fn minimum_never_drops_below_eight() {
        assert_eq!(PasswordPolicy::new(4).min_length(), 8);
        assert_eq!(PasswordPolicy::new(12).min_length(), 12);
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        assert_eq!(
            format!("{:?}", Password::normalize("hunter22")),
            "Password(***)"
        );
        assert_eq!(
            format!("{:?}", PasswordHash::new("$argon2id$x")),
            "PasswordHash(***)"
        );
    }

    #[test]
    fn a_password_hash_reads_back_as_the_phc_string() {
        let phc = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
        assert_eq!(PasswordHash::new(phc).as_str(), phc);
    }

    #[test]
    fn a_password_hash_debug_hides_the_phc_string() {
        let debug = format!("{:?}", PasswordHash::new("$argon2id$secret"));
        assert!(!debug.contains("secret"), "{debug}");
        assert_eq!(debug, "PasswordHash(***)");
    }

    #[test]
    fn a_new_password_debug_hides_the_password() {
        let password = NewPassword::parse("hunter2hunter2", &PasswordPolicy::default(), None);
        let debug = format!("{:?}", password.unwrap());
        assert!(!debug.contains("hunter2"), "{debug}");
        assert_eq!(debug, "NewPassword(***)");
    }

    #[test]
    fn a_new_password_other_than_the_email_is_not_the_email() {
        let email = Email::parse("ada@example.com").unwrap();
        let password =
            NewPassword::parse("correct horse", &PasswordPolicy::default(), Some(&email)).unwrap();
        assert!(!password.is_email(&email));
    }
}
