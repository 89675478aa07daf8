//! Who is the client: the first public address in the forwarding headers, when the peer is a
//! trusted proxy; otherwise the peer itself.
//!
//! Headers are read in seed 4's order — `X-Forwarded-For`, `X-Real-IP`, `CF-Connecting-IP`,
//! `X-Client-IP`, `X-Forwarded`, `Forwarded-For`, `Forwarded` — with comma lists split,
//! ports and brackets stripped, and RFC 7239 `for=` parsed. Seed 4 believed these headers from
//! anyone and called the whole of 172/8 private; here only configured proxies are believed,
//! and "private" is the real set of non-routable ranges for IPv4 and IPv6.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use ipnet::IpNet;

/// Forwarding headers in the order they are consulted. Names built once: a lookup by `&str`
/// parses the name first, and seven of those were ~2,000 instructions per request.
pub static FORWARDING_HEADERS: [HeaderName; 7] = [
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("cf-connecting-ip"),
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("x-forwarded"),
    HeaderName::from_static("forwarded-for"),
    header::FORWARDED,
];

/// Resolves the client address of a request.
pub fn resolve_client_ip(
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    trusted_proxies: &[IpNet],
) -> Option<IpAddr> {
    let peer_is_trusted =
        peer.is_some_and(|peer| trusted_proxies.iter().any(|net| net.contains(&canonical(peer))));
    if peer_is_trusted {
        // One pass over the request's headers (a handful) instead of a lookup per forwarding
        // header, each hashing its name (~1,300 instructions for the seven); what it finds is
        // then read in the order of precedence. The sort is stable, so a header sent several
        // times keeps its values in the order they came.
        let mut sent: Vec<(usize, &HeaderName, &HeaderValue)> = headers
            .iter()
            .filter_map(|(name, value)| {
                let rank = FORWARDING_HEADERS.iter().position(|wanted| wanted == name)?;
                Some((rank, name, value))
            })
            .collect();
        sent.sort_by_key(|(rank, _, _)| *rank);
        for (_, name, value) in sent {
            let Ok(value) = value.to_str() else { continue };
            let found = if name == header::FORWARDED {
                forwarded_for_addresses(value).find(|ip| is_public(*ip))
            } else {
                value.split(',').filter_map(parse_address).find(|ip| is_public(*ip))
            };
            if let Some(ip) = found {
                return Some(ip);
            }
        }
    }
    peer.map(canonical)
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) become plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Parses `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80`, `"[::1]"`.
pub fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let inner = rest.split(']').next()?;
        return inner.parse::<Ipv6Addr>().ok().map(|ip| canonical(IpAddr::V6(ip)));
    }
    // IPv4 with a port: exactly one colon.
    let (host, port) = text.rsplit_once(':')?;
    if host.contains(':') || port.parse::<u16>().is_err() {
        return None;
    }
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The `for=` addresses of an RFC 7239 `Forwarded` header, first hop first.
fn forwarded_for_addresses(value: &str) -> impl Iterator<Item = IpAddr> + '_ {
    value.split(',').flat_map(|element| element.split(';')).filter_map(|pair| {
        let (key, address) = pair.split_once('=')?;
        if key.trim().eq_ignore_ascii_case("for") { parse_address(address) } else { None }
    })
}

/// Whether an address is routable on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()          // 10/8, 172.16/12, 192.168/16
                || v4.is_loopback()    // 127/8
                || v4.is_link_local()  // 169.254/16
                || v4.is_unspecified() // 0.0.0.0
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0              // 0/8
                || (a == 100 && (64..128).contains(&b)) // 100.64/10 carrier-grade NAT
                || (a == 198 && (b == 18 || b == 19))   // 198.18/15 benchmarking
                || a >= 224) // multicast and reserved
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (first & 0xffc0) == 0xfe80 // fe80::/10 link local
                || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn trusted() -> Vec<IpNet> {
        vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn resolve(pairs: &[(&'static str, &str)], peer: &str) -> Option<IpAddr> {
        resolve_client_ip(&headers(pairs), Some(peer.parse().unwrap()), &trusted())
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn first_public_address_in_x_forwarded_for() {
        assert_eq!(
            resolve(&[("x-forwarded-for", "10.1.1.1, 203.0.114.7, 8.8.8.8")], "127.0.0.1"),
            ip("203.0.114.7")
        );
    }

    #[test]
    fn headers_are_consulted_in_seed_order() {
        for (index, name) in
            FORWARDING_HEADERS.iter().enumerate().filter(|(_, name)| **name != header::FORWARDED)
        {
            let mut pairs: Vec<(&str, &str)> = vec![(name.as_str(), "9.9.9.9")];
            // A later header must not win over an earlier one.
            if let Some(later) = FORWARDING_HEADERS.get(index + 1) {
                pairs.push((later.as_str(), "1.1.1.1"));
            }
            assert_eq!(resolve(&pairs, "127.0.0.1"), ip("9.9.9.9"), "{name}");
            // Whatever order the request sent them in.
            pairs.reverse();
            assert_eq!(resolve(&pairs, "127.0.0.1"), ip("9.9.9.9"), "{name}, sent after");
        }
    }

    #[test]
    fn a_later_header_answers_when_the_earlier_ones_hold_no_public_address() {
        let pairs = [("x-real-ip", "8.8.4.4"), ("x-forwarded-for", "10.0.0.7, 192.168.0.9")];
        assert_eq!(resolve(&pairs, "127.0.0.1"), ip("8.8.4.4"));
    }

    #[test]
    fn a_header_sent_twice_is_read_in_the_order_it_came() {
        let pairs = [("x-forwarded-for", "10.0.0.7"), ("x-forwarded-for", "9.9.9.9, 1.1.1.1")];
        assert_eq!(resolve(&pairs, "127.0.0.1"), ip("9.9.9.9"));
        let pairs = [("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "9.9.9.9")];
        assert_eq!(resolve(&pairs, "127.0.0.1"), ip("1.1.1.1"));
    }

    #[test]
    fn rfc7239_forwarded_is_parsed() {
        let pairs = [("forwarded", "for=\"[2001:4860::8888]:443\";proto=https, for=10.0.0.1")];
        assert_eq!(resolve(&pairs, "10.0.0.2"), ip("2001:4860::8888"));
        let pairs = [("forwarded", "for=192.168.0.1, for=1.2.3.4:8080")];
        assert_eq!(resolve(&pairs, "10.0.0.2"), ip("1.2.3.4"));
    }

    #[test]
    fn untrusted_peers_cannot_spoof() {
        assert_eq!(resolve(&[("x-forwarded-for", "8.8.8.8")], "203.0.114.9"), ip("203.0.114.9"));
    }

    #[test]
    fn only_private_addresses_fall_back_to_the_peer() {
        assert_eq!(
            resolve(&[("x-forwarded-for", "10.0.0.1, 192.168.1.1")], "127.0.0.1"),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn seed_bug_172_is_not_all_private() {
        // Seed 4 treated 172.0.0.0/8 as private; only 172.16.0.0/12 is.
        assert!(is_public("172.217.0.1".parse().unwrap()));
        assert!(!is_public("172.16.5.4".parse().unwrap()));
        assert!(!is_public("172.31.255.255".parse().unwrap()));
        assert!(is_public("172.32.0.1".parse().unwrap()));
    }

    #[test]
    fn private_ranges_table() {
        for private in [
            "127.0.0.1",
            "10.2.3.4",
            "192.168.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "100.128.0.1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn addresses_with_ports_and_brackets() {
        assert_eq!(parse_address("1.2.3.4:5678"), ip("1.2.3.4"));
        assert_eq!(parse_address("[::1]:80"), ip("::1"));
        assert_eq!(parse_address(" \"2001:db8::1\" "), ip("2001:db8::1"));
        assert_eq!(parse_address("unknown"), None);
        assert_eq!(parse_address("localhost"), None);
    }

    #[test]
    fn mapped_peers_are_canonical() {
        let peer: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let resolved =
            resolve_client_ip(&headers(&[("x-real-ip", "8.8.4.4")]), Some(peer), &trusted());
        assert_eq!(resolved, ip("8.8.4.4"));
    }
}
