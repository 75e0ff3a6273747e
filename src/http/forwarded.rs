//! What the proxies in front of us say about a request: which client it
//! came from, and which origin that client used. From `Forwarded`
//! (RFC 7239) when the request has one, else from the de facto headers
//! that came before it (§7.4): `X-Forwarded-For`, `X-Forwarded-Proto` and
//! `X-Forwarded-Host`.
//!
//! Pure functions over a parsed [`Request`]. Whether to believe any of it
//! is the caller's decision: any client can send these headers (§8.1), so
//! they mean something only when the peer is a proxy we trust, and only in
//! the part of the chain that trusted proxies wrote. Each proxy appends the
//! node it received the request from, so [`forwarded`] walks the chain from
//! the right — the hop nearest us — past the nodes the caller trusts, and
//! takes the first one that is not trusted: the client. What lies to its
//! left was written by the client or by proxies nobody vouches for.
//!
//! The grammar of `Forwarded` is in [`element`] (§4, §5) and [`node`] (§6).

mod element;
mod node;

use std::fmt;
use std::net::IpAddr;

use super::Request;
pub use element::Element;
pub use node::Node;

/// What the forwarding headers of a request say, once walked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// The client: the right-most node of the chain that is not itself
    /// trusted (the left-most when every node is). `None` when the request
    /// names no chain at all; [`Node::Unknown`] or [`Node::Obfuscated`] when
    /// a trusted proxy hid it (§6.2, §6.3) — or left its `for` out.
    pub client: Option<Node>,
    /// The origin the client addressed, `https://chat.example.org`
    /// (RFC 6454 §6.1 serialization, without a default port), from the
    /// same trusted hop's `proto` and `host` (§5.3, §5.4), or from
    /// `X-Forwarded-Proto` and `X-Forwarded-Host`.
    pub origin: Option<String>,
}

/// A forwarding header that does not follow its grammar. The caller then
/// ignores the forwarding headers of the request altogether.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed {
    pub header: &'static str,
    pub why: &'static str,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed {}: {}", self.header, self.why)
    }
}

impl std::error::Error for Malformed {}

/// Read the forwarding headers of a request whose peer is trusted, walking
/// the chain past every node for which `trusted` is true.
///
/// With a `Forwarded` header, it alone is read, so that two headers never
/// give two answers: every line, in order (§7.1), each element one
/// hop; the hop that names the client also gives the origin, when it has
/// both `proto` and `host`. Without one, the chain is `X-Forwarded-For` and
/// the origin is the right-most values of `X-Forwarded-Proto` and
/// `X-Forwarded-Host` (written by the proxy nearest us).
pub fn forwarded(
    request: &Request,
    trusted: impl Fn(IpAddr) -> bool,
) -> Result<Forwarded, Malformed> {
    if request.all("forwarded").next().is_some() {
        let elements = element::parse_forwarded(request.all("forwarded"))?;
        let Some(hop) = walk(&elements, |e| e.r#for.as_ref(), &trusted) else {
            return Ok(Forwarded::default());
        };
        let element = &elements[hop];
        let origin = match (&element.proto, &element.host) {
            (Some(proto), Some(host)) => Some(origin(proto, host, "Forwarded")?),
            _ => None,
        };
        return Ok(Forwarded {
            client: Some(element.r#for.clone().unwrap_or(Node::Unknown)),
            origin,
        });
    }
    let chain = parse_x_forwarded_for(request.all("x-forwarded-for"))?;
    let client = walk(&chain, |node| Some(node), &trusted).map(|i| chain[i].clone());
    let proto = right_most(request.all("x-forwarded-proto"), "X-Forwarded-Proto")?;
    let host = right_most(request.all("x-forwarded-host"), "X-Forwarded-Host")?;
    let origin = match (proto, host) {
        (Some(proto), Some(host)) => Some(origin(proto, host, "X-Forwarded-Proto/Host")?),
        _ => None,
    };
    Ok(Forwarded { client, origin })
}

/// The index of the client in `chain` (left-most: the first proxy's
/// report): from the right, past every node that is a trusted address; the
/// left-most node when every one is. A hop without a node (an element
/// without `for`) stops the walk: whoever sent it is not known.
fn walk<T>(
    chain: &[T],
    node: impl Fn(&T) -> Option<&Node>,
    trusted: impl Fn(IpAddr) -> bool,
) -> Option<usize> {
    let mut i = chain.len().checked_sub(1)?;
    loop {
        match node(&chain[i]) {
            Some(Node::Ip { ip, .. }) if i > 0 && trusted(*ip) => i -= 1,
            _ => return Some(i),
        }
    }
}

/// `X-Forwarded-For`: comma-separated addresses, the client's first, every
/// line in order. Taken as its proxies write it: an IPv4 or IPv6 address,
/// either with a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`), a bracketed
/// IPv6 address, or `unknown`. Empty elements are skipped, but a header
/// must name at least one node.
fn parse_x_forwarded_for<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<Node>, Malformed> {
    const HEADER: &str = "X-Forwarded-For";
    let mut chain = Vec::new();
    let mut present = false;
    for value in values {
        present = true;
        for item in ascii(value, HEADER)?.split(',') {
            let item = item.trim_matches([' ', '\t']);
            if item.is_empty() {
                continue;
            }
            chain.push(x_forwarded_node(item).ok_or(Malformed {
                header: HEADER,
                why: "an element is not an IP address",
            })?);
        }
    }
    if present && chain.is_empty() {
        return Err(Malformed {
            header: HEADER,
            why: "no address in it",
        });
    }
    Ok(chain)
}

fn x_forwarded_node(item: &str) -> Option<Node> {
    if item.eq_ignore_ascii_case("unknown") {
        return Some(Node::Unknown);
    }
    if let Ok(ip) = item.parse::<IpAddr>() {
        return Some(Node::Ip { ip, port: None });
    }
    if let Ok(addr) = item.parse::<std::net::SocketAddr>() {
        return Some(Node::Ip {
            ip: addr.ip(),
            port: Some(addr.port()),
        });
    }
    let v6 = item.strip_prefix('[')?.strip_suffix(']')?;
    Some(Node::Ip {
        ip: IpAddr::V6(v6.parse().ok()?),
        port: None,
    })
}

/// The right-most element of a comma-separated header, every line in
/// order; `None` without the header.
fn right_most<'a>(
    values: impl Iterator<Item = &'a [u8]>,
    header: &'static str,
) -> Result<Option<&'a str>, Malformed> {
    let mut last = None;
    let mut present = false;
    for value in values {
        present = true;
        let value = ascii(value, header)?;
        if let Some(item) = value
            .split(',')
            .map(|v| v.trim_matches([' ', '\t']))
            .rfind(|v| !v.is_empty())
        {
            last = Some(item);
        }
    }
    if present && last.is_none() {
        return Err(Malformed {
            header,
            why: "it is empty",
        });
    }
    Ok(last)
}

/// A header value as text: visible ASCII, spaces and tabs only.
fn ascii<'a>(value: &'a [u8], header: &'static str) -> Result<&'a str, Malformed> {
    if value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        // Only ASCII, so this cannot fail.
        std::str::from_utf8(value).map_err(|_| Malformed {
            header,
            why: "not text",
        })
    } else {
        Err(Malformed {
            header,
            why: "a character outside visible ASCII",
        })
    }
}

/// The origin a proxy's client used (RFC 6454 §6.1): `proto` (§5.4, a URI
/// scheme) and `host` (§5.3, the `Host` the client sent: `uri-host
/// [":" port]`), lower-cased, without the scheme's default port. A page
/// is served over `http` or `https`; a proxy that names the WebSocket's
/// own scheme (`ws`, `wss`) means the same.
fn origin(proto: &str, host: &str, header: &'static str) -> Result<String, Malformed> {
    let scheme = match proto.to_ascii_lowercase().as_str() {
        "http" | "ws" => "http",
        "https" | "wss" => "https",
        _ => {
            return Err(Malformed {
                header,
                why: "the protocol is not http or https",
            });
        }
    };
    let bad_host = Malformed {
        header,
        why: "the host is not a host name or address with an optional port",
    };
    let host = host.to_ascii_lowercase();
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']').ok_or(bad_host)?;
            v6.parse::<std::net::Ipv6Addr>().map_err(|_| bad_host)?;
            match after {
                "" => (&host[..v6.len() + 2], None),
                after => (
                    &host[..v6.len() + 2],
                    Some(after.strip_prefix(':').ok_or(bad_host)?),
                ),
            }
        }
        None => match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host.as_str(), None),
        },
    };
    let name_ok = name.starts_with('[')
        || (!name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
    let port = match port {
        None => None,
        Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| bad_host)?)
        }
        Some(_) => return Err(bad_host),
    };
    if !name_ok {
        return Err(bad_host);
    }
    let default = if scheme == "https" { 443 } else { 80 };
    Ok(match port {
        Some(port) if port != default => format!("{scheme}://{name}:{port}"),
        _ => format!("{scheme}://{name}"),
    })
}

#[cfg(test)]
mod tests;
