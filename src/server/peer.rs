//! Who is on the other end of a connection: its TCP peer, and — when that
//! peer is a proxy we trust (`--trust-proxy`) — the client the proxy
//! forwarded the request for, and the origin that client used.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::cidr::Cidr;
use crate::http::Request;
use crate::http::forwarded::{self, Node};

/// The other end of a connection, as the caps, the logs and the [`App`]
/// see it.
///
/// [`App`]: super::App
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    socket: SocketAddr,
    /// Only when `socket` is a trusted proxy: the client it named
    /// (RFC 7239 §5.2), or the node that stands for a hidden one.
    client: Option<Node>,
    /// Only when `socket` is a trusted proxy: the origin its client used.
    public_origin: Option<String>,
}

impl Peer {
    /// A peer that is the client itself.
    pub fn direct(socket: SocketAddr) -> Peer {
        Peer {
            socket,
            client: None,
            public_origin: None,
        }
    }

    /// The peer of a request whose TCP peer `socket` is a trusted proxy:
    /// the client its forwarding headers name, walked past the `trusted`
    /// ranges ([`forwarded::forwarded`]). Malformed headers are ignored
    /// (logged at debug): the proxy itself is then the client.
    pub fn forwarded(socket: SocketAddr, request: &Request, trusted: &[Cidr]) -> Peer {
        match forwarded::forwarded(request, |ip| trusted.iter().any(|c| c.contains(ip))) {
            Ok(forwarded) => {
                let peer = Peer {
                    socket,
                    client: forwarded.client,
                    public_origin: forwarded.origin,
                };
                if matches!(peer.client, Some(Node::Unknown | Node::Obfuscated(_))) {
                    log::debug!(
                        "{peer}: the trusted proxy does not name the client; counted as the proxy"
                    );
                }
                peer
            }
            Err(e) => {
                log::debug!(
                    "{socket}: ignoring the forwarding headers of a trusted proxy ({e}); \
                     counted as the proxy"
                );
                Peer::direct(socket)
            }
        }
    }

    /// The TCP peer: the client, or the trusted proxy it came through.
    pub fn socket(&self) -> SocketAddr {
        self.socket
    }

    /// The client's address: what the per-IP cap counts. When a trusted
    /// proxy names no client by address, the proxy's own.
    pub fn ip(&self) -> IpAddr {
        match self.client {
            Some(Node::Ip { ip, .. }) => ip,
            _ => self.socket.ip(),
        }
    }

    /// The origin a trusted proxy says its client used
    /// (`https://chat.example.org`), which the page it served has.
    pub fn public_origin(&self) -> Option<&str> {
        self.public_origin.as_deref()
    }
}

/// `192.0.2.7:50312` for a direct peer; `203.0.113.7 via 127.0.0.1:50312`
/// (with the client's port when the proxy gave one, `unknown` or the
/// obfuscated name for a hidden client) behind a trusted proxy.
impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.client {
            None => write!(f, "{}", self.socket),
            Some(Node::Ip {
                ip,
                port: Some(port),
            }) => {
                write!(f, "{} via {}", SocketAddr::new(*ip, *port), self.socket)
            }
            Some(Node::Ip { ip, port: None }) => write!(f, "{ip} via {}", self.socket),
            Some(Node::Unknown) => write!(f, "unknown via {}", self.socket),
            Some(Node::Obfuscated(name)) => write!(f, "{name} via {}", self.socket),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: "/".into(),
            version: 1,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    fn proxy() -> SocketAddr {
        "127.0.0.1:50312".parse().unwrap()
    }

    fn trusted() -> Vec<Cidr> {
        vec!["127.0.0.1".parse().unwrap()]
    }

    #[test]
    fn a_direct_peer_is_its_socket() {
        let peer = Peer::direct("192.0.2.7:4711".parse().unwrap());
        assert_eq!(peer.to_string(), "192.0.2.7:4711");
        assert_eq!(peer.ip(), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(peer.public_origin(), None);
    }

    #[test]
    fn a_forwarded_client_is_shown_via_its_proxy() {
        let peer = Peer::forwarded(
            proxy(),
            &request(&[
                ("X-Forwarded-For", "10.0.0.1"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "chat.example.org"),
            ]),
            &trusted(),
        );
        assert_eq!(peer.to_string(), "10.0.0.1 via 127.0.0.1:50312");
        assert_eq!(peer.ip(), "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(peer.public_origin(), Some("https://chat.example.org"));
        let peer = Peer::forwarded(
            proxy(),
            &request(&[("Forwarded", r#"for="[2001:db8::1]:4711""#)]),
            &trusted(),
        );
        assert_eq!(peer.to_string(), "[2001:db8::1]:4711 via 127.0.0.1:50312");
    }

    #[test]
    fn without_a_named_client_the_proxy_is_counted() {
        for (headers, shown) in [
            (vec![], "127.0.0.1:50312"),
            (
                vec![("X-Forwarded-For", "not an address")],
                "127.0.0.1:50312",
            ),
            (
                vec![("X-Forwarded-For", "unknown")],
                "unknown via 127.0.0.1:50312",
            ),
            (
                vec![("Forwarded", "for=_hidden")],
                "_hidden via 127.0.0.1:50312",
            ),
        ] {
            let peer = Peer::forwarded(proxy(), &request(&headers), &trusted());
            assert_eq!(peer.to_string(), shown, "{headers:?}");
            assert_eq!(peer.ip(), proxy().ip(), "{headers:?}");
        }
    }
}
