//! The nodes of `Forwarded` (RFC 7239 §6): who a proxy received a request
//! from.
//!
//! ```text
//! node      = nodename [ ":" node-port ]
//! nodename  = IPv4address / "[" IPv6address "]" / "unknown" / obfnode
//! obfnode   = "_" 1*( ALPHA / DIGIT / "." / "_" / "-" )
//! node-port = port / obfport          ; port = 1*5DIGIT
//! obfport   = "_" 1*( ALPHA / DIGIT / "." / "_" / "-" )
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Malformed;
use super::element::malformed;

/// A node (§6): who sent a request to a proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// An IP address (§6.1), with the port when the proxy gave a number
    /// (an obfuscated port, §6.3, is none).
    Ip { ip: IpAddr, port: Option<u16> },
    /// `unknown` (§6.2): the proxy does not know, or will not say.
    Unknown,
    /// An obfuscated identifier (§6.3), such as `_hidden`: the proxy hides
    /// the address behind a name of its own, kept for tracing.
    Obfuscated(String),
}

/// A node (§6), as the unquoted value of `for`.
pub fn parse_node(s: &str) -> Result<Node, Malformed> {
    let (name, port) = match s.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest
                .split_once(']')
                .ok_or(malformed("an IPv6 address without its closing `]`"))?;
            let ip = v6
                .parse::<Ipv6Addr>()
                .map_err(|_| malformed("not an IPv6 address between `[]`"))?;
            let port = match after {
                "" => None,
                after => Some(
                    after
                        .strip_prefix(':')
                        .ok_or(malformed("expected `:` and a port after `]`"))?,
                ),
            };
            (
                Node::Ip {
                    ip: IpAddr::V6(ip),
                    port: None,
                },
                port,
            )
        }
        None => {
            let (name, port) = match s.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (s, None),
            };
            let node = if name.eq_ignore_ascii_case("unknown") {
                Node::Unknown
            } else if is_obfuscated(name) {
                Node::Obfuscated(name.to_owned())
            } else {
                let ip = name.parse::<Ipv4Addr>().map_err(|_| {
                    malformed("a node is not an IPv4 address, a bracketed IPv6 address, `unknown` or `_obfuscated`")
                })?;
                Node::Ip {
                    ip: IpAddr::V4(ip),
                    port: None,
                }
            };
            (node, port)
        }
    };
    let port = match port {
        None => None,
        Some(p) if is_obfuscated(p) => None,
        Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => Some(
            p.parse::<u16>()
                .map_err(|_| malformed("a port over 65535"))?,
        ),
        Some(_) => return Err(malformed("a port is neither digits nor `_obfuscated`")),
    };
    Ok(match name {
        Node::Ip { ip, .. } => Node::Ip { ip, port },
        other => other,
    })
}

/// `obfnode` and `obfport` (§6.3): `_` and at least one of ALPHA, DIGIT,
/// `.`, `_`, `-`.
fn is_obfuscated(s: &str) -> bool {
    s.strip_prefix('_').is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(ip: &str, port: Option<u16>) -> Node {
        Node::Ip {
            ip: ip.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn nodes() {
        let node = |s: &str| parse_node(s);
        assert_eq!(node("192.0.2.1"), Ok(ip("192.0.2.1", None)));
        assert_eq!(node("192.0.2.1:80"), Ok(ip("192.0.2.1", Some(80))));
        assert_eq!(node("192.0.2.1:_p1"), Ok(ip("192.0.2.1", None)));
        assert_eq!(node("[::1]"), Ok(ip("::1", None)));
        assert_eq!(node("[::1]:65535"), Ok(ip("::1", Some(65535))));
        assert_eq!(node("UNKNOWN"), Ok(Node::Unknown));
        assert_eq!(node("unknown:4711"), Ok(Node::Unknown));
        assert_eq!(node("_a.b-c_1"), Ok(Node::Obfuscated("_a.b-c_1".into())));
        for bad in [
            "",
            "_",
            "_a b",
            "2001:db8::1",
            "[2001:db8::1",
            "[2001:db8::1]4711",
            "[192.0.2.1]",
            "[::1]:",
            "192.0.2.1:",
            "192.0.2.1:65536",
            "192.0.2.1:123456",
            "192.0.2.1:-1",
            "192.0.2.1:_",
            "192.0.2",
            "192.0.2.256",
            "example.org",
            "[fe80::1%25eth0]",
        ] {
            assert!(node(bad).is_err(), "{bad:?}");
        }
    }
}
