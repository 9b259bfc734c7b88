use std::fmt;

use chrono::{DateTime, Utc};

use crate::{RoleDescription, RoleId, RoleName};

/// Why a string is not a [`RoleSlug`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("slug must be 2 to 63 characters of a-z, 0-9 and '-', starting with a letter or digit")]
pub struct RoleSlugError;

/// A role's permanent, URL-safe name: [`RoleSlug::PATTERN`]. Applications read it from
/// the `role` claim, so it never changes once the role exists.
///
/// ```
/// use authd_domain::RoleSlug;
///
/// assert_eq!(RoleSlug::parse("application-access").unwrap().as_str(), "application-access");
/// assert!(RoleSlug::parse("Admins").is_err());
/// assert!(RoleSlug::parse("-x").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(into = "String", try_from = "String"))]
pub struct RoleSlug(String);

impl From<RoleSlug> for String {
    fn from(slug: RoleSlug) -> Self {
        slug.0
    }
}

impl TryFrom<String> for RoleSlug {
    type Error = RoleSlugError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl RoleSlug {
    /// What [`Self::parse`] accepts, as a regular expression (ECMA-262 and Rust `regex` alike):
    /// 2 to 63 characters of `a-z`, `0-9` and `-`, the first not a `-`. The parser is the rule;
    /// this is how the OpenAPI document says it (keep the two in step).
    pub const PATTERN: &'static str = "^[a-z0-9][a-z0-9-]{1,62}$";

    /// Checks the slug's form.
    pub fn parse(raw: &str) -> Result<Self, RoleSlugError> {
        let bytes = raw.as_bytes();
        let valid = (2..=63).contains(&bytes.len())
            && matches!(bytes[0], b'a'..=b'z' | b'0'..=b'9')
            && bytes[1..]
                .iter()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(RoleSlugError)
        }
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A role: a label every user holds exactly one of.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Role {
    /// Its id.
    pub id: RoleId,
    /// Its permanent slug.
    pub slug: RoleSlug,
    /// Human-readable name.
    pub name: RoleName,
    /// Optional longer description.
    pub description: Option<RoleDescription>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Role {
    /// The short form a [`User`](crate::User) carries.
    pub fn to_ref(&self) -> RoleRef {
        RoleRef {
            id: self.id,
            slug: self.slug.clone(),
            name: self.name.clone(),
        }
    }
}

/// The part of a [`Role`] shown with a user and put in its tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RoleRef {
    /// The role's id.
    pub id: RoleId,
    /// The role's slug (the `role` claim).
    pub slug: RoleSlug,
    /// The role's name.
    pub name: RoleName,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_rules() {
        for good in ["ab", "a1", "0-x", &"a".repeat(63)] {
            assert!(RoleSlug::parse(good).is_ok(), "{good:?} was refused");
        }
        for bad in ["", "a", "-ab", "Ab", "a_b", "a b", "é1", &"a".repeat(64)] {
            assert_eq!(
                RoleSlug::parse(bad),
                Err(RoleSlugError),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn a_slug_displays_and_converts_to_itself() {
        let slug = RoleSlug::parse("application-access").unwrap();
        assert_eq!(slug.to_string(), "application-access");
        assert_eq!(String::from(slug), "application-access");
    }
}

/// Why a role's name or description is refused ([`RoleName`](crate::RoleName),
/// [`RoleDescription`](crate::RoleDescription)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoleTextError {
    /// The name is blank.
    #[error("name must not be empty")]
    EmptyName,
    /// The name is longer than [`RoleName::MAX_LEN`](crate::RoleName::MAX_LEN) characters.
    #[error("name must be at most {0} characters")]
    NameTooLong(usize),
    /// The description is longer than
    /// [`RoleDescription::MAX_LEN`](crate::RoleDescription::MAX_LEN) characters.
    #[error("description must be at most {0} characters")]
    DescriptionTooLong(usize),
    /// The description is blank where one must be present: a `String` (a deserialized one,
    /// say) turned into a [`RoleDescription`](crate::RoleDescription) with [`TryFrom`], since
    /// no description is `None` around it, not a blank one.
    #[error("description must not be empty")]
    EmptyDescription,
}

impl Role {
    /// The longest role name, in characters ([`RoleName::MAX_LEN`]).
    pub const MAX_NAME_LEN: usize = RoleName::MAX_LEN;
    /// The longest description, in characters ([`RoleDescription::MAX_LEN`]).
    pub const MAX_DESCRIPTION_LEN: usize = RoleDescription::MAX_LEN;
}
