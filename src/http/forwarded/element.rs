//! The grammar of `Forwarded` (RFC 7239 §4), its elements and their
//! parameters (§5); the nodes in `for` are in [`super::node`]:
//!
//! ```text
//! Forwarded         = 1#forwarded-element
//! forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
//! forwarded-pair    = token "=" value
//! value             = token / quoted-string
//! ```
//!
//! A node with `:` or `[]` is not a token, so it must be quoted (§4:
//! `for="[2001:db8:cafe::17]:4711"`). Whitespace may surround `,` (the
//! list rule, RFC 7230 §7) and, leniently, `;`, but not `=`.

use super::node::{Node, parse_node};
use super::{Malformed, ascii};
use crate::http::token::{Cursor, is_tchar};

pub(super) const HEADER: &str = "Forwarded";

pub(super) fn malformed(why: &'static str) -> Malformed {
    Malformed {
        header: HEADER,
        why,
    }
}

/// One element of `Forwarded`: what one proxy says about the request it
/// received. Of the parameters (§5) only those the server uses are kept;
/// `by` (§5.1) and extensions (§5.5) are checked for syntax only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    /// `for` (§5.2): the node the proxy received the request from.
    pub r#for: Option<Node>,
    /// `host` (§5.3): the `Host` header the proxy received, as sent.
    pub host: Option<String>,
    /// `proto` (§5.4): the protocol of the request the proxy received.
    pub proto: Option<String>,
}

/// Parse every `Forwarded` line of a request, in order (§7.1: they make one
/// list). Empty list elements are skipped (RFC 7230 §7); an element without
/// any pair (`;`) is kept, as a hop that names nobody. A parameter may
/// appear once per element (§4).
pub fn parse_forwarded<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<Element>, Malformed> {
    let mut elements = Vec::new();
    for value in values {
        let mut p = Cursor::new(ascii(value, HEADER)?.as_bytes());
        loop {
            p.skip_whitespace();
            match p.peek() {
                None => break,
                Some(b',') => {
                    p.bump();
                    continue;
                }
                Some(_) => {}
            }
            elements.push(element(&mut p)?);
            p.skip_whitespace();
            match p.peek() {
                None => break,
                Some(b',') => p.bump(),
                Some(_) => return Err(malformed("expected `,` or `;` after a value")),
            }
        }
    }
    if elements.is_empty() {
        return Err(malformed("no element in it"));
    }
    Ok(elements)
}

/// One element: pairs separated by `;`, any of them empty. Stops
/// before a `,` or the end.
fn element(p: &mut Cursor<'_>) -> Result<Element, Malformed> {
    let mut element = Element::default();
    let mut seen: Vec<String> = Vec::new();
    loop {
        p.skip_whitespace();
        if p.peek().is_some_and(is_tchar) {
            let name = p.token().to_ascii_lowercase();
            if p.peek() != Some(b'=') {
                return Err(malformed("a parameter without `=` and a value"));
            }
            p.bump();
            let value = match p.peek() {
                Some(b'"') => p
                    .quoted()
                    .ok_or(malformed("a quoted value without its closing quote"))?,
                _ => p.token(),
            };
            if value.is_empty() {
                return Err(malformed("a parameter with an empty value"));
            }
            if seen.contains(&name) {
                return Err(malformed("a parameter twice in one element"));
            }
            match name.as_str() {
                "for" => element.r#for = Some(parse_node(&value)?),
                "by" => {}
                "host" => element.host = Some(value),
                "proto" => element.proto = Some(value),
                _ => {} // an extension (§5.5)
            }
            seen.push(name);
            p.skip_whitespace();
        }
        if p.peek() == Some(b';') {
            p.bump();
        } else {
            return Ok(element);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Result<Vec<Element>, Malformed> {
        parse_forwarded(lines.iter().map(|l| l.as_bytes()))
    }

    fn ip(ip: &str, port: Option<u16>) -> Node {
        Node::Ip {
            ip: ip.parse().unwrap(),
            port,
        }
    }

    fn for_only(node: Node) -> Element {
        Element {
            r#for: Some(node),
            ..Element::default()
        }
    }

    #[test]
    fn the_rfcs_examples() {
        // §4.
        assert_eq!(
            parse(&[r#"for="_gazonk""#]),
            Ok(vec![for_only(Node::Obfuscated("_gazonk".into()))])
        );
        assert_eq!(
            parse(&[r#"For="[2001:db8:cafe::17]:4711""#]),
            Ok(vec![for_only(ip("2001:db8:cafe::17", Some(4711)))])
        );
        assert_eq!(
            parse(&["for=192.0.2.60;proto=http;by=203.0.113.43"]),
            Ok(vec![Element {
                r#for: Some(ip("192.0.2.60", None)),
                host: None,
                proto: Some("http".into()),
            }])
        );
        assert_eq!(
            parse(&["for=192.0.2.43, for=198.51.100.17"]),
            Ok(vec![
                for_only(ip("192.0.2.43", None)),
                for_only(ip("198.51.100.17", None))
            ])
        );
        // §6.3, §7.1.
        assert_eq!(
            parse(&["for=_hidden, for=_SEVKISEK"]),
            Ok(vec![
                for_only(Node::Obfuscated("_hidden".into())),
                for_only(Node::Obfuscated("_SEVKISEK".into()))
            ])
        );
        let one_line = parse(&[r#"for=192.0.2.43,for="[2001:db8:cafe::17]",for=unknown"#]);
        assert_eq!(
            one_line,
            parse(&[r#"for=192.0.2.43, for="[2001:db8:cafe::17]", for=unknown"#])
        );
        assert_eq!(
            one_line,
            parse(&[
                "for=192.0.2.43",
                r#"for="[2001:db8:cafe::17]", for=unknown"#
            ])
        );
        assert_eq!(
            one_line.unwrap(),
            vec![
                for_only(ip("192.0.2.43", None)),
                for_only(ip("2001:db8:cafe::17", None)),
                for_only(Node::Unknown),
            ]
        );
    }

    #[test]
    fn host_and_proto_are_kept_as_sent() {
        assert_eq!(
            parse(&[r#"for="192.0.2.1:4711";proto=https;host="chat.example.org:8443""#]),
            Ok(vec![Element {
                r#for: Some(ip("192.0.2.1", Some(4711))),
                host: Some("chat.example.org:8443".into()),
                proto: Some("https".into()),
            }])
        );
    }

    #[test]
    fn whitespace_empty_elements_and_empty_pairs() {
        assert_eq!(
            parse(&[" , for=192.0.2.1 ;; proto=https , , for=_x ,"]),
            Ok(vec![
                Element {
                    r#for: Some(ip("192.0.2.1", None)),
                    proto: Some("https".into()),
                    host: None,
                },
                for_only(Node::Obfuscated("_x".into())),
            ])
        );
        // A hop that says nothing is still a hop.
        assert_eq!(
            parse(&["for=192.0.2.1, ;"]),
            Ok(vec![for_only(ip("192.0.2.1", None)), Element::default()])
        );
    }

    #[test]
    fn quoted_values_are_unescaped() {
        assert_eq!(
            parse(&[r#"for="\_x";host="a\"b""#]),
            Ok(vec![Element {
                r#for: Some(Node::Obfuscated("_x".into())),
                host: Some("a\"b".into()),
                proto: None,
            }])
        );
    }

    #[test]
    fn extensions_and_by_are_checked_for_syntax_only() {
        assert_eq!(
            parse(&[r#"for=192.0.2.1;by="[2001:db8::1]:80";ext="any thing, really""#]),
            Ok(vec![for_only(ip("192.0.2.1", None))])
        );
    }

    #[test]
    fn what_the_grammar_refuses() {
        for bad in [
            "",
            " , ",
            "for",
            "for=",
            "for=\"\"",
            "for = 192.0.2.1",
            "for=192.0.2.1 proto=http",
            "for=192.0.2.1;for=192.0.2.2",
            "FOR=192.0.2.1;for=192.0.2.2",
            "for=192.0.2.1;proto=http;proto=https",
            "for=[2001:db8::1]",
            "for=\"192.0.2.1",
            "for=\"192.0.2.1\\",
            "for=\"192.0.2.1\"x",
            "=x",
            "for=192.0.2.1;=x",
            "for=example.org",
            "\"for\"=192.0.2.1",
            "for=192.0.2.1,,\u{7f}",
            "for=\"é\"",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad:?}");
        }
    }
}
