//! Which address a request came from, for what is limited per client (failed dashboard sign-ins).
//! Behind a reverse proxy every connection comes from the proxy, so one client's failures would
//! lock everybody out; the proxy names the client in `X-Forwarded-For`. That header is believed
//! only from the proxies `tollgate_settings.trusted_proxies` lists: anybody else could write any
//! address into it and never be limited.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client's address: `peer` itself unless it is a trusted proxy; then the nearest address in
/// `X-Forwarded-For` (read right to left: each proxy appends whom it heard from) that is not a
/// trusted proxy. An entry that is not an address stops the walk at the last trusted hop, so a
/// malformed header cannot hide the client behind a made-up one.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => nearest = ip,
            Ok(ip) => return ip,
            Err(_) => return nearest,
        }
    }
    nearest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        // A direct client cannot claim an address.
        assert_eq!(
            client_ip(ip("203.0.113.9"), &xff(&["198.51.100.1"]), &trusted),
            ip("203.0.113.9")
        );
        // Nothing trusted: the header is never read.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &xff(&["198.51.100.1"]), &[]),
            ip("127.0.0.1")
        );
        // Through one proxy.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &xff(&["198.51.100.1"]), &trusted),
            ip("198.51.100.1")
        );
        // Through two (a load balancer in 10/8, then the local one); what the client wrote itself
        // (the leftmost entry) is not believed.
        let chain = xff(&["6.6.6.6, 198.51.100.1, 10.1.2.3"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &chain, &trusted), ip("198.51.100.1"));
        // The same chain as separate header lines.
        let lines = xff(&["6.6.6.6", "198.51.100.1", "10.1.2.3"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &lines, &trusted), ip("198.51.100.1"));
        // Garbage stops at the last trusted hop; a missing header leaves the proxy.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &xff(&["nonsense, 10.1.2.3"]), &trusted),
            ip("10.1.2.3")
        );
        assert_eq!(client_ip(ip("127.0.0.1"), &HeaderMap::new(), &trusted), ip("127.0.0.1"));
        // IPv6.
        let v6: Vec<IpNet> = vec!["::1/128".parse().unwrap()];
        assert_eq!(client_ip(ip("::1"), &xff(&["2001:db8::7"]), &v6), ip("2001:db8::7"));
    }
}
