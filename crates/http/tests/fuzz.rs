//! Property-based fuzzing of the header parsers the transport exports: `Origin` and the
//! allowed-origins list (browsers), the trusted-proxy list and the `X-Forwarded-For` walk
//! (client addresses). Arbitrary text never panics, and what is accepted keeps its promises.
//! The extractors that are not exported (bodies, forms, bearer and cookie tokens) are fuzzed
//! through the running server, in `tests/api/fuzz.rs`.
//!
//! `PROPTEST_CASES=N` runs every property with N cases instead of the ones below.

// clippy.toml allows these inside test functions only; the fixtures here are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use actix_web::http::header::HeaderValue;
use actix_web::test::TestRequest;
use authd_http::{AllowedOrigins, Origin, TrustedProxies};
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

/// Pieces of URLs and addresses, glued in any order.
fn url_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>().prop_map(String::from),
        prop::sample::select(vec![
            "http",
            "https",
            "HTTP",
            "ftp",
            "javascript",
            "null",
            "://",
            ":",
            "/",
            "//",
            "\\",
            "?",
            "#",
            "@",
            "[",
            "]",
            "::1",
            "::ffff:",
            "127.0.0.1",
            "0x7f.1",
            "%2e",
            "%00",
            "%",
            ".",
            "..",
            "xn--",
            "xn--n3h",
            "☃",
            "ＡＢＣ",
            "\u{ad}",
            "\u{200b}",
            "example.com",
            "localhost",
            "65535",
            "65536",
            "99999999999",
            "0",
            " ",
            "\t",
            "\0",
            "\r\n",
        ])
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
}

/// Origins a browser could send: an http(s) scheme in any case, a DNS name or an address, an
/// optional port.
fn browser_origin() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        "[a-z][a-z0-9]{0,10}(\\.[a-z][a-z0-9]{0,10}){0,3}",
        any::<u32>().prop_map(|ip| Ipv4Addr::from(ip).to_string()),
        any::<u128>().prop_map(|ip| format!("[{}]", std::net::Ipv6Addr::from(ip))),
    ];
    (
        prop::sample::select(vec!["http", "https", "HTTP", "Https"]),
        host,
        prop::option::of(any::<u16>()),
        any::<bool>(),
    )
        .prop_map(|(scheme, host, port, slash)| {
            let port = port.map(|port| format!(":{port}")).unwrap_or_default();
            let slash = if slash { "/" } else { "" };
            format!("{scheme}://{host}{port}{slash}")
        })
}

/// Bytes a header value may hold (visible ASCII, space, tab and obs-text), so that the
/// request can be built at all.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            8 => 0x20u8..0x7f,
            1 => Just(b'\t'),
            1 => 0x80u8..=0xff,
            2 => Just(b','),
        ],
        0..120,
    )
}

/// One `X-Forwarded-For` entry: an address, with a port or brackets, or junk.
fn forwarded_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u32>().prop_map(|ip| Ipv4Addr::from(ip).to_string()),
        any::<u32>().prop_map(|ip| format!("10.0.{}.{}", ip % 256, (ip >> 8) % 256)),
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, port)| format!("{}:{port}", Ipv4Addr::from(ip))),
        any::<u128>().prop_map(|ip| std::net::Ipv6Addr::from(ip).to_string()),
        (any::<u128>(), any::<u16>())
            .prop_map(|(ip, port)| format!("[{}]:{port}", std::net::Ipv6Addr::from(ip))),
        any::<u32>().prop_map(|ip| format!("::ffff:{}", Ipv4Addr::from(ip))),
        Just("unknown".to_owned()),
        Just(String::new()),
        "[ -~]{0,20}",
    ]
    .prop_flat_map(|entry| ("[ \t]{0,2}", Just(entry), "[ \t]{0,2}"))
    .prop_map(|(before, entry, after)| format!("{before}{entry}{after}"))
}

fn trusted() -> TrustedProxies {
    "10.0.0.0/8, 192.0.2.1, 2001:db8::/32"
        .parse()
        .expect("a valid list")
}

proptest! {
    #![proptest_config(config(256))]

    /// Any text is an origin or an `OriginError`. An origin accepted prints as
    /// `http(s)://host[:port]` and parses back to itself.
    #[test]
    fn origin_parsing_takes_any_text(raw in prop_oneof![any::<String>(), url_soup(), browser_origin()]) {
        if let Ok(origin) = raw.parse::<Origin>() {
            let printed = origin.to_string();
            prop_assert!(
                printed.starts_with("http://") || printed.starts_with("https://"),
                "{:?} printed as {:?}", raw, printed
            );
            let again = printed.parse::<Origin>();
            prop_assert_eq!(again.as_ref(), Ok(&origin));
            // Nothing after the authority but the optional slash.
            let (_, authority) = raw.split_once("://").expect("a scheme");
            let authority = authority.strip_suffix('/').unwrap_or(authority);
            prop_assert!(!authority.contains(['/', '?', '#', '@', '\\']));
        }
    }

    /// What a browser sends in `Origin` is an origin.
    #[test]
    fn browser_origins_are_accepted(raw in browser_origin()) {
        let parsed = raw.parse::<Origin>();
        prop_assert!(parsed.is_ok(), "{:?}: {:?}", raw, parsed);
    }

    /// A list of origins is accepted exactly when each of its non-blank entries is an origin.
    #[test]
    fn allowed_origins_take_any_list(
        entries in prop::collection::vec(prop_oneof![browser_origin(), url_soup()], 0..5),
    ) {
        let list = entries.join(",");
        let each_ok = list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .all(|entry| entry.parse::<Origin>().is_ok());
        prop_assert_eq!(list.parse::<AllowedOrigins>().is_ok(), each_ok, "{:?}", list);
    }

    /// Any text is a list of networks or an error, never a panic.
    #[test]
    fn trusted_proxy_lists_take_any_text(raw in prop_oneof![any::<String>(), url_soup(),
        "([0-9a-f:.]{1,20}(/[0-9]{1,3})?,? ?){0,4}"]) {
        let _ = raw.parse::<TrustedProxies>();
    }

    /// Whatever `X-Forwarded-For` says (any header bytes, any number of headers), the client
    /// address is the peer when the peer is not a trusted proxy, and otherwise the peer or an
    /// address one of the entries names.
    #[test]
    fn forwarded_for_never_fails_and_names_a_real_entry(
        peer_trusted in any::<bool>(),
        peer in any::<u32>(),
        entries in prop::collection::vec(forwarded_entry(), 0..6),
        junk in prop::collection::vec(header_bytes(), 0..2),
    ) {
        let peer: IpAddr = if peer_trusted {
            Ipv4Addr::new(10, (peer >> 16) as u8, (peer >> 8) as u8, peer as u8).into()
        } else {
            Ipv4Addr::new(203, 0, 113, peer as u8).into()
        };
        let mut request = TestRequest::default().peer_addr(SocketAddr::new(peer, 4000));
        let joined = entries.join(",");
        if let Ok(value) = HeaderValue::from_str(&joined) {
            request = request.append_header(("x-forwarded-for", value));
        }
        for bytes in &junk {
            if let Ok(value) = HeaderValue::from_bytes(bytes) {
                request = request.append_header(("x-forwarded-for", value));
            }
        }
        let request = request.to_http_request();
        let client = trusted().client_ip(&request);
        prop_assert!(client.is_some());
        let client = client.expect("checked");
        if !peer_trusted {
            prop_assert_eq!(client, peer);
        } else if client != peer {
            let text = client.to_string();
            let named = request
                .headers()
                .get_all("x-forwarded-for")
                .filter_map(|value| value.to_str().ok())
                .any(|value| value.contains(&text) || value.contains(&format!("::ffff:{text}")));
            prop_assert!(named, "{} is in no entry", client);
        }
    }
}
