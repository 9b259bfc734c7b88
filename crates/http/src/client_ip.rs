use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The proxy networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trust these networks.
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's IP: the socket peer, unless the peer is a trusted proxy, in which case the
    /// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its
    /// left are written by the client and can be forged). The walk from the right stops at the
    /// first entry that is no address (`unknown`, garbage): what stands left of it cannot be
    /// told apart from what the client wrote, so the last trusted hop reached is the client.
    /// IPv4-mapped IPv6 addresses (a dual-stack listener's IPv4 peers) are their IPv4 address.
    pub fn client_ip(&self, request: &HttpRequest) -> Option<IpAddr> {
        let peer = request.peer_addr()?.ip().to_canonical();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let entries: Vec<&str> = request
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        let mut client = peer;
        for entry in entries.into_iter().rev() {
            let Some(ip) = forwarded_address(entry) else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        Some(client)
    }
}

/// One `X-Forwarded-For` entry as an address: a bare IPv4 or IPv6 address, with or without a
/// port (`192.0.2.1:4711`, `[2001:db8::1]:4711`) or brackets, canonical (IPv4-mapped IPv6 is
/// IPv4); `None` for anything else.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = IpAddr::from_str(entry)
        .ok()
        .or_else(|| SocketAddr::from_str(entry).ok().map(|socket| socket.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| IpAddr::from_str(inner).ok())
        })?;
    Some(ip.to_canonical())
}

impl FromStr for TrustedProxies {
    type Err = ipnet::AddrParseError;

    /// A comma-separated list of CIDRs (a bare address means just that host).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|error| entry.parse::<IpAddr>().map(IpNet::from).map_err(|_| error))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn request(peer: &str, forwarded: Option<&str>) -> HttpRequest {
        let mut request = TestRequest::default().peer_addr(format!("{peer}:4000").parse().unwrap());
        if let Some(forwarded) = forwarded {
            request = request.insert_header(("x-forwarded-for", forwarded));
        }
        request.to_http_request()
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let ip = proxies.client_ip(&request("203.0.113.9", Some("198.51.100.1")));
        assert_eq!(ip, Some("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn trusted_peers_pass_the_rightmost_untrusted_entry() {
        let proxies: TrustedProxies = "10.0.0.0/8, 192.0.2.1".parse().unwrap();
        let ip = proxies.client_ip(&request(
            "10.1.2.3",
            Some("1.1.1.1, 198.51.100.1, 192.0.2.1"),
        ));
        assert_eq!(ip, Some("198.51.100.1".parse().unwrap()));
        let ip = proxies.client_ip(&request("10.1.2.3", None));
        assert_eq!(ip, Some("10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn mapped_peers_and_entries_are_their_ipv4_address() {
        let proxies: TrustedProxies = "127.0.0.1".parse().unwrap();
        let ip = proxies.client_ip(&request("[::ffff:127.0.0.1]", Some("::ffff:198.51.100.7")));
        assert_eq!(ip, Some("198.51.100.7".parse().unwrap()));
    }

    #[test]
    fn ports_and_brackets_are_read_and_garbage_stops_the_walk() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let ip = proxies.client_ip(&request("10.1.2.3", Some("6.6.6.6, 203.0.113.5:4711")));
        assert_eq!(ip, Some("203.0.113.5".parse().unwrap()));
        let ip = proxies.client_ip(&request("10.1.2.3", Some("6.6.6.6, [2001:db8::5]:4711")));
        assert_eq!(ip, Some("2001:db8::5".parse().unwrap()));
        let ip = proxies.client_ip(&request("10.1.2.3", Some("6.6.6.6, [2001:db8::6]")));
        assert_eq!(ip, Some("2001:db8::6".parse().unwrap()));
        // An entry that is no address: nothing left of it is believed.
        let ip = proxies.client_ip(&request("10.1.2.3", Some("6.6.6.6, unknown")));
        assert_eq!(ip, Some("10.1.2.3".parse().unwrap()));
        let ip = proxies.client_ip(&request("10.1.2.3", Some("6.6.6.6, unknown, 10.9.9.9")));
        assert_eq!(ip, Some("10.9.9.9".parse().unwrap()));
    }

    #[test]
    fn bad_networks_are_refused() {
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("not-an-ip".parse::<TrustedProxies>().is_err());
        assert!("".parse::<TrustedProxies>().is_ok());
    }
}
