//! Human-readable text: a user's display name, a role's name and its description. Each is
//! trimmed of surrounding whitespace and bounded in characters (code points).

use std::fmt;

use crate::RoleTextError;

/// Why a string is not a [`DisplayName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DisplayNameError {
    /// Blank where a name must be present: a `String` (a deserialized one, say) turned into a
    /// [`DisplayName`] with [`TryFrom`], since no name is `None` around it, not a blank name.
    #[error("name must not be empty")]
    Empty,
    /// Longer than [`DisplayName::MAX_LEN`] characters once trimmed.
    #[error("name must be at most {max} characters")]
    TooLong {
        /// The longest name accepted.
        max: usize,
    },
}

/// A user's display name: trimmed, 1 to [`DisplayName::MAX_LEN`] characters. A blank name is
/// no name.
///
/// ```
/// use authd_domain::DisplayName;
///
/// assert_eq!(DisplayName::parse("  Ada ").unwrap().unwrap().as_str(), "Ada");
/// assert_eq!(DisplayName::parse(" \t ").unwrap(), None);
/// assert!(DisplayName::parse(&"x".repeat(101)).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(into = "String", try_from = "String"))]
pub struct DisplayName(String);

impl DisplayName {
    /// The longest display name, in characters.
    pub const MAX_LEN: usize = 100;

    /// Trims `raw`: `None` when nothing is left, an error when it is too long.
    pub fn parse(raw: &str) -> Result<Option<Self>, DisplayNameError> {
        let name = raw.trim();
        if name.is_empty() {
            return Ok(None);
        }
        if name.chars().count() > Self::MAX_LEN {
            return Err(DisplayNameError::TooLong { max: Self::MAX_LEN });
        }
        Ok(Some(Self(name.to_owned())))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, as a plain `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for DisplayName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<DisplayName> for String {
    fn from(name: DisplayName) -> Self {
        name.0
    }
}

/// Through [`DisplayName::parse`], except that a blank string is an error
/// ([`DisplayNameError::Empty`]) rather than no name.
impl TryFrom<String> for DisplayName {
    type Error = DisplayNameError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)?.ok_or(DisplayNameError::Empty)
    }
}

/// A role's name: trimmed, 1 to [`RoleName::MAX_LEN`] characters.
///
/// ```
/// use authd_domain::{RoleName, RoleTextError};
///
/// assert_eq!(RoleName::parse(" Editors ").unwrap().as_str(), "Editors");
/// assert_eq!(RoleName::parse("   "), Err(RoleTextError::EmptyName));
/// assert_eq!(RoleName::parse(&"x".repeat(101)), Err(RoleTextError::NameTooLong(100)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(into = "String", try_from = "String"))]
pub struct RoleName(String);

impl RoleName {
    /// The longest role name, in characters.
    pub const MAX_LEN: usize = 100;

    /// Trims `raw` and checks that something, and not too much, is left.
    pub fn parse(raw: &str) -> Result<Self, RoleTextError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(RoleTextError::EmptyName);
        }
        if name.chars().count() > Self::MAX_LEN {
            return Err(RoleTextError::NameTooLong(Self::MAX_LEN));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, as a plain `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RoleName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<RoleName> for String {
    fn from(name: RoleName) -> Self {
        name.0
    }
}

/// Through [`RoleName::parse`].
impl TryFrom<String> for RoleName {
    type Error = RoleTextError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

/// A role's description: trimmed, at most [`RoleDescription::MAX_LEN`] characters. A blank
/// description is none.
///
/// ```
/// use authd_domain::{RoleDescription, RoleTextError};
///
/// assert_eq!(RoleDescription::parse(" Edits ").unwrap().unwrap().as_str(), "Edits");
/// assert_eq!(RoleDescription::parse(""), Ok(None));
/// assert_eq!(
///     RoleDescription::parse(&"x".repeat(1001)),
///     Err(RoleTextError::DescriptionTooLong(1000))
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(into = "String", try_from = "String"))]
pub struct RoleDescription(String);

impl RoleDescription {
    /// The longest description, in characters.
    pub const MAX_LEN: usize = 1000;

    /// Trims `raw`: `None` when nothing is left, an error when it is too long.
    pub fn parse(raw: &str) -> Result<Option<Self>, RoleTextError> {
        let description = raw.trim();
        if description.is_empty() {
            return Ok(None);
        }
        if description.chars().count() > Self::MAX_LEN {
            return Err(RoleTextError::DescriptionTooLong(Self::MAX_LEN));
        }
        Ok(Some(Self(description.to_owned())))
    }

    /// The description.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The description, as a plain `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for RoleDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RoleDescription {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<RoleDescription> for String {
    fn from(description: RoleDescription) -> Self {
        description.0
    }
}

/// Through [`RoleDescription::parse`], except that a blank string is an error
/// ([`RoleTextError::EmptyDescription`]) rather than no description.
impl TryFrom<String> for RoleDescription {
    type Error = RoleTextError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)?.ok_or(RoleTextError::EmptyDescription)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_count_characters_after_trimming() {
        let name = format!("  {}  ", "é".repeat(DisplayName::MAX_LEN));
        assert_eq!(
            DisplayName::parse(&name)
                .unwrap()
                .unwrap()
                .as_str()
                .chars()
                .count(),
            100
        );
        assert_eq!(
            DisplayName::parse(&"é".repeat(101)),
            Err(DisplayNameError::TooLong { max: 100 })
        );
        assert!(RoleName::parse(&"é".repeat(100)).is_ok());
        assert!(RoleDescription::parse(&"é".repeat(1000)).unwrap().is_some());
    }

    #[test]
    fn role_names_stop_at_the_limit() {
        assert!(RoleName::parse(&"x".repeat(RoleName::MAX_LEN)).is_ok());
        assert_eq!(
            RoleName::parse(&"x".repeat(RoleName::MAX_LEN + 1)),
            Err(RoleTextError::NameTooLong(RoleName::MAX_LEN))
        );
    }

    #[test]
    fn role_descriptions_stop_at_the_limit() {
        assert!(
            RoleDescription::parse(&"x".repeat(RoleDescription::MAX_LEN))
                .unwrap()
                .is_some()
        );
        assert_eq!(
            RoleDescription::parse(&"x".repeat(RoleDescription::MAX_LEN + 1)),
            Err(RoleTextError::DescriptionTooLong(RoleDescription::MAX_LEN))
        );
    }

    #[test]
    fn a_display_name_reads_back_as_the_trimmed_text() {
        let name = DisplayName::parse(" Ada ").unwrap().unwrap();
        assert_eq!(name.to_string(), "Ada");
        assert_eq!(name.as_ref(), "Ada");
        assert_eq!(name.into_string(), "Ada");
    }

    #[test]
    fn a_role_name_reads_back_as_the_trimmed_text() {
        let name = RoleName::parse(" Editors ").unwrap();
        assert_eq!(name.to_string(), "Editors");
        assert_eq!(name.as_ref(), "Editors");
        assert_eq!(name.clone().into_string(), "Editors");
        assert_eq!(String::from(name), "Editors");
    }

    #[test]
    fn a_role_description_reads_back_as_the_trimmed_text() {
        let description = RoleDescription::parse(" Edits ").unwrap().unwrap();
        assert_eq!(description.to_string(), "Edits");
        assert_eq!(description.as_ref(), "Edits");
        assert_eq!(description.into_string(), "Edits");
    }

    #[test]
    fn blank_is_no_name_and_no_description_but_no_role_name() {
        assert_eq!(DisplayName::parse("\u{3000} "), Ok(None));
        assert_eq!(RoleDescription::parse("\n"), Ok(None));
        assert_eq!(RoleName::parse(""), Err(RoleTextError::EmptyName));
    }

    #[test]
    fn try_from_a_string_parses_and_refuses_blanks() {
        assert_eq!(
            DisplayName::try_from(" Ada ".to_owned()).map(String::from),
            Ok("Ada".to_owned())
        );
        assert_eq!(
            DisplayName::try_from(" ".to_owned()),
            Err(DisplayNameError::Empty)
        );
        assert_eq!(
            RoleName::try_from("\t".to_owned()),
            Err(RoleTextError::EmptyName)
        );
        assert_eq!(
            RoleDescription::try_from(String::new()),
            Err(RoleTextError::EmptyDescription)
        );
        assert_eq!(
            RoleDescription::try_from(" Edits ".to_owned()).map(String::from),
            Ok("Edits".to_owned())
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializing_goes_through_the_parser() {
        let name: DisplayName = serde_json::from_str("\" Ada \"").unwrap();
        assert_eq!(name.as_str(), "Ada");
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"Ada\"");
        assert!(serde_json::from_str::<DisplayName>("\"  \"").is_err());
        assert!(serde_json::from_str::<DisplayName>(&format!("\"{}\"", "x".repeat(101))).is_err());
        // No name is `null`, as with an `Option<String>`.
        let none: Option<DisplayName> = serde_json::from_str("null").unwrap();
        assert_eq!(none, None);
        assert_eq!(serde_json::to_string(&none).unwrap(), "null");

        let role: RoleName = serde_json::from_str("\" Editors\"").unwrap();
        assert_eq!(role.as_str(), "Editors");
        assert_eq!(serde_json::to_string(&role).unwrap(), "\"Editors\"");
        assert!(serde_json::from_str::<RoleName>("\"\"").is_err());

        let description: RoleDescription = serde_json::from_str("\"Edits \"").unwrap();
        assert_eq!(description.as_str(), "Edits");
        assert_eq!(serde_json::to_string(&description).unwrap(), "\"Edits\"");
        assert!(serde_json::from_str::<RoleDescription>("\" \"").is_err());
        assert!(
            serde_json::from_str::<RoleDescription>(&format!("\"{}\"", "x".repeat(1001))).is_err()
        );
    }
}
