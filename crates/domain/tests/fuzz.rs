//! Property-based fuzzing of the domain's parsers: arbitrary strings (and bytes read as text)
//! never panic, every refusal is the parser's own error, and what is accepted keeps the
//! invariants the type promises.
//!
//! `PROPTEST_CASES=N` runs every property with N cases instead of the ones below.

// clippy.toml allows these inside test functions only; the fixtures here are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use authd_domain::{
    ClientNetwork, DisplayName, DisplayNameError, Email, EmailError, NewPassword, Page, PageError,
    Password, PasswordError, PasswordPolicy, PerPage, PerPageError, RoleDescription, RoleName,
    RoleSlug, RoleSlugError, RoleTextError, email_search_form,
};
use proptest::prelude::*;

/// `cases` cases unless `PROPTEST_CASES` says otherwise; no regression files in the tree.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text the parsers find hardest: any code point, whitespace and controls of every kind,
/// combining marks and the characters NFKC grows most, around the separators they split on.
fn odd_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>().prop_map(String::from),
        prop::sample::select(vec![
            "@",
            ".",
            "..",
            "-",
            " ",
            "\t",
            "\n",
            "\r",
            "\0",
            "\u{a0}",
            "\u{2003}",
            "\u{3000}",
            "\u{feff}",
            "\u{200b}",
            "\u{301}",
            "\u{fdfa}",
            "\u{fb01}",
            "\u{1f600}",
            "İ",
            "ß",
            "é",
            "<",
            ">",
            ",",
            ";",
            "\"",
            "\\",
            "a",
            "Z",
            "0",
        ])
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..80).prop_map(|pieces| pieces.concat())
}

/// Arbitrary bytes read as text the way a transport does (invalid UTF-8 replaced).
fn lossy_bytes() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 0..300)
        .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), odd_text(), lossy_bytes()]
}

/// Addresses the structural check must accept.
fn plausible_email() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,20}){1,4}"
}

/// The slug rule, written independently of the parser: `^[a-z0-9][a-z0-9-]{1,62}$`.
fn is_slug(raw: &str) -> bool {
    let mut chars = raw.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    first_ok
        && (2..=63).contains(&raw.len())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

proptest! {
    #![proptest_config(config(256))]

    /// Any text: an `Email` or one of its three errors; an accepted address is trimmed, within
    /// the limits, `local@dotted.domain` without whitespace or controls, and reads back as itself.
    #[test]
    fn email_parse_accepts_only_well_formed_addresses(raw in text()) {
        match Email::parse(&raw) {
            Ok(email) => {
                let given = email.as_str();
                prop_assert_eq!(given, raw.trim());
                prop_assert!(!given.is_empty() && given.chars().count() <= Email::MAX_LEN);
                let (local, domain) = given.rsplit_once('@').expect("an accepted address has @");
                prop_assert!(!local.is_empty() && !local.contains('@'));
                prop_assert!(domain.split('.').count() >= 2);
                prop_assert!(domain.split('.').all(|label| !label.is_empty()));
                prop_assert!(!given.chars().any(|c| c.is_whitespace() || c.is_control()));
                let again = Email::parse(given);
                prop_assert_eq!(again.as_ref(), Ok(&email));
                prop_assert_eq!(email.normalized(), email_search_form(given));
            }
            Err(EmailError::Empty) => prop_assert!(raw.trim().is_empty()),
            Err(EmailError::TooLong) => {
                prop_assert!(raw.trim().chars().count() > Email::MAX_LEN);
            }
            Err(EmailError::Malformed) => {}
            Err(other) => prop_assert!(false, "an error this test does not know: {other:?}"),
        }
    }

    /// Well-formed addresses, with any surrounding whitespace, are accepted and compare equal
    /// to their lowercase form.
    #[test]
    fn email_parse_accepts_plausible_addresses(
        address in plausible_email(),
        before in "[ \t\u{a0}\u{2003}]{0,3}",
        after in "[ \t\u{a0}\u{2003}]{0,3}",
    ) {
        let padded = format!("{before}{address}{after}");
        let email = Email::parse(&padded);
        prop_assert!(email.is_ok(), "{:?} refused: {:?}", padded, email);
        let email = email.expect("checked");
        prop_assert_eq!(email.as_str(), address.as_str());
        prop_assert_eq!(Email::parse(&address.to_uppercase()), Ok(email));
    }

    /// `email_search_form` takes any text.
    #[test]
    fn email_search_form_takes_any_text(raw in text()) {
        let form = email_search_form(&raw);
        prop_assert_eq!(email_search_form(&form), form);
    }

    /// The login bound: `None` exactly when the text is over the limit as given or once
    /// normalised; what is returned is never over it.
    #[test]
    fn login_passwords_are_bounded(raw in prop_oneof![
        text(),
        // Near the limit, with the characters NFKC grows 11 times or shrinks.
        (prop::sample::select(vec!["a", "é", "\u{fdfa}", "\u{fb01}", "\u{3300}", "\u{1f600}"]),
            0usize..1100)
            .prop_map(|(piece, count)| piece.repeat(count)),
    ]) {
        let expected = raw.len() <= Password::MAX_LOGIN_BYTES
            && nfkc_len(&raw) <= Password::MAX_LOGIN_BYTES;
        match Password::for_login(&raw) {
            Some(password) => {
                prop_assert!(expected, "{} bytes accepted", raw.len());
                prop_assert!(password.expose().len() <= Password::MAX_LOGIN_BYTES);
                prop_assert_eq!(password, Password::normalize(&raw));
            }
            None => prop_assert!(!expected, "{} bytes refused", raw.len()),
        }
    }

    /// The password policy takes any text and any configured minimum; what it accepts is within
    /// the bounds, not blank and not the email.
    #[test]
    fn the_password_policy_judges_any_text(
        raw in prop_oneof![text(), ".{0,140}"],
        min in any::<usize>(),
        email in prop::option::of(plausible_email()),
    ) {
        let policy = PasswordPolicy::new(min);
        prop_assert!((PasswordPolicy::MIN_LENGTH..=PasswordPolicy::MAX_LENGTH)
            .contains(&policy.min_length()));
        let email = email.map(|email| Email::parse(&email).expect("plausible"));
        let checked = policy.check(&raw, email.as_ref());
        let parsed = NewPassword::parse(&raw, &policy, email.as_ref());
        prop_assert_eq!(parsed.as_ref().map(NewPassword::password).ok(), checked.as_ref().ok());
        if let (Ok(parsed), Some(email)) = (&parsed, &email) {
            prop_assert!(!parsed.is_email(email));
        }
        match checked {
            Ok(password) => {
                let length = password.expose().chars().count();
                prop_assert!((policy.min_length()..=PasswordPolicy::MAX_LENGTH).contains(&length));
                prop_assert!(!password.expose().chars().all(char::is_whitespace));
                prop_assert_eq!(password, Password::normalize(&raw));
            }
            Err(PasswordError::TooShort { min }) => prop_assert_eq!(min, policy.min_length()),
            Err(PasswordError::TooLong { max }) => prop_assert_eq!(max, PasswordPolicy::MAX_LENGTH),
            Err(PasswordError::Blank | PasswordError::SameAsEmail) => {}
            Err(other) => prop_assert!(false, "an error this test does not know: {other:?}"),
        }
    }

    /// A slug is accepted exactly when it matches the documented pattern.
    #[test]
    fn slugs_match_the_pattern_exactly(raw in prop_oneof![
        text(),
        "[a-z0-9-]{0,70}",
        "[a-z0-9][a-z0-9-]{1,62}",
        "[a-zA-Z0-9_ .é-]{0,66}",
    ]) {
        match RoleSlug::parse(&raw) {
            Ok(slug) => {
                prop_assert!(is_slug(&raw), "{:?} accepted", raw);
                prop_assert_eq!(slug.as_str(), raw.as_str());
            }
            Err(RoleSlugError) => prop_assert!(!is_slug(&raw), "{:?} refused", raw),
        }
    }

    /// Display names, role names and descriptions: trimmed, bounded in characters, a blank
    /// one none (or refused, for a role's name), never a panic.
    #[test]
    fn names_are_trimmed_and_bounded(
        raw in prop_oneof![text(), "[ a-zé\u{301}\u{3000}]{95,105}", ".{990,1010}"],
    ) {
        let trimmed = raw.trim();
        let length = trimmed.chars().count();
        match DisplayName::parse(&raw) {
            Ok(Some(name)) => {
                prop_assert_eq!(name.as_str(), trimmed);
                prop_assert!((1..=DisplayName::MAX_LEN).contains(&length));
            }
            Ok(None) => prop_assert!(trimmed.is_empty()),
            Err(DisplayNameError::TooLong { max }) => {
                prop_assert!(max == DisplayName::MAX_LEN && length > max);
            }
            Err(other) => prop_assert!(false, "an error this test does not know: {other:?}"),
        }
        match RoleName::parse(&raw) {
            Ok(name) => {
                prop_assert_eq!(name.as_str(), trimmed);
                prop_assert!((1..=RoleName::MAX_LEN).contains(&length));
            }
            Err(RoleTextError::EmptyName) => prop_assert!(trimmed.is_empty()),
            Err(RoleTextError::NameTooLong(max)) => {
                prop_assert!(max == RoleName::MAX_LEN && length > max);
            }
            Err(other) => prop_assert!(false, "a name got {:?}", other),
        }
        match RoleDescription::parse(&raw) {
            Ok(Some(description)) => {
                prop_assert_eq!(description.as_str(), trimmed);
                prop_assert!(length <= RoleDescription::MAX_LEN);
            }
            Ok(None) => prop_assert!(trimmed.is_empty()),
            Err(RoleTextError::DescriptionTooLong(max)) => {
                prop_assert!(max == RoleDescription::MAX_LEN && length > max);
            }
            Err(other) => prop_assert!(false, "a description got {:?}", other),
        }
    }

    /// Any number is a page or a `PageError`; a page size is 1 to `PerPage::MAX`.
    #[test]
    fn page_numbers_and_sizes_are_bounded(number in any::<u32>()) {
        prop_assert_eq!(Page::new(number).map(Page::get), if number == 0 { Err(PageError) } else { Ok(number) });
        let size = PerPage::new(number).map(PerPage::get);
        if (1..=PerPage::MAX).contains(&number) {
            prop_assert_eq!(size, Ok(number));
        } else {
            prop_assert_eq!(size, Err(PerPageError));
        }
    }

    /// Any address has a network; IPv6 addresses in one /64 share it, and an IPv4-mapped
    /// address counts as its IPv4 address.
    #[test]
    fn client_networks_group_ipv6_by_64_and_unmap_ipv4(
        v4 in any::<u32>(),
        prefix in any::<u64>(),
        a in any::<u64>(),
        b in any::<u64>(),
    ) {
        let v4 = Ipv4Addr::from(v4);
        let mapped = IpAddr::V6(v4.to_ipv6_mapped());
        prop_assert_eq!(ClientNetwork::of(mapped), ClientNetwork::of(IpAddr::V4(v4)));
        prop_assert_eq!(ClientNetwork::of(IpAddr::V4(v4)).to_string(), v4.to_string());
        let host = |suffix: u64| {
            IpAddr::V6(Ipv6Addr::from((u128::from(prefix) << 64) | u128::from(suffix)))
        };
        if host(a).to_canonical() == host(a) && host(b).to_canonical() == host(b) {
            prop_assert_eq!(ClientNetwork::of(host(a)), ClientNetwork::of(host(b)));
            prop_assert!(ClientNetwork::of(host(a)).to_string().ends_with("/64"));
        }
    }
}

/// The length in bytes of a string once NFKC-normalised, straight from the normalisation crate.
fn nfkc_len(raw: &str) -> usize {
    use unicode_normalization::UnicodeNormalization;
    raw.nfkc().map(char::len_utf8).sum()
}
