//! The grammar of `Sec-WebSocket-Extensions` (RFC 6455 §9.1): a list of
//! extensions, each a token with `;`-separated parameters, a parameter's
//! value a token or a quoted string. What the parameters mean is each
//! extension's business (RFC 7692 §7 for permessage-deflate).
//!
//! RFC 6455 §9.1; RFC 7230 §3.2.6 (token, quoted-string).

use std::fmt;

use crate::http::token::{Cursor, is_tchar};

/// One element of a `Sec-WebSocket-Extensions` header (§9.1): an extension
/// token and its parameters. In a request it is an offer; in a 101, the
/// extension the server accepted, with the parameters it accepted it with.
///
/// Names are kept as sent; tokens are compared ASCII case-insensitively
/// ([`ExtensionOffer::is`]). A parameter's value, quoted or not on the
/// wire, is a token once unquoted (§9.1), so it is written back bare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionOffer {
    pub name: String,
    /// Each `name` or `name=value`, in order; duplicates are kept (what they
    /// mean is the extension's to say: RFC 7692 declines such an offer).
    pub params: Vec<(String, Option<String>)>,
}

impl ExtensionOffer {
    /// An offer of `name` without parameters.
    pub fn new(name: &str) -> ExtensionOffer {
        ExtensionOffer {
            name: name.to_owned(),
            params: Vec::new(),
        }
    }

    /// Add a parameter (`value` must be a token: §9.1).
    pub fn param(mut self, name: &str, value: Option<&str>) -> ExtensionOffer {
        self.params
            .push((name.to_owned(), value.map(str::to_owned)));
        self
    }

    /// Is this the extension called `name`?
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// As it is written in a header: `name; p1; p2=v`.
impl fmt::Display for ExtensionOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for (name, value) in &self.params {
            write!(f, "; {name}")?;
            if let Some(value) = value {
                write!(f, "={value}")?;
            }
        }
        Ok(())
    }
}

/// A `Sec-WebSocket-Extensions` value that does not follow §9.1's grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadExtensions;

/// Parse one `Sec-WebSocket-Extensions` value (§9.1), appending its
/// extensions to `out`:
///
/// ```text
/// extension-list  = 1#extension
/// extension       = extension-token *( ";" extension-param )
/// extension-param = token [ "=" ( token | quoted-string ) ]
///     ; a quoted-string's value, unescaped, must be a token
/// ```
///
/// Whitespace may surround every separator and empty list elements are
/// skipped (the `#` rule, RFC 7230 §7), but a value must name at least one
/// extension. On an error `out` may hold part of the value's extensions.
pub fn parse_extensions(value: &[u8], out: &mut Vec<ExtensionOffer>) -> Result<(), BadExtensions> {
    let mut p = Cursor::new(value);
    let mut named = false;
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
        let mut offer = ExtensionOffer {
            name: token(&mut p)?,
            params: Vec::new(),
        };
        loop {
            p.skip_whitespace();
            match p.peek() {
                None => break,
                Some(b',') => {
                    p.bump();
                    break;
                }
                Some(b';') => {
                    p.bump();
                    p.skip_whitespace();
                    let name = token(&mut p)?;
                    p.skip_whitespace();
                    let value = if p.peek() == Some(b'=') {
                        p.bump();
                        p.skip_whitespace();
                        Some(if p.peek() == Some(b'"') {
                            quoted_token(&mut p)?
                        } else {
                            token(&mut p)?
                        })
                    } else {
                        None
                    };
                    offer.params.push((name, value));
                }
                Some(_) => return Err(BadExtensions),
            }
        }
        out.push(offer);
        named = true;
    }
    if named { Ok(()) } else { Err(BadExtensions) }
}

/// A token, which must not be empty.
fn token(p: &mut Cursor<'_>) -> Result<String, BadExtensions> {
    let token = p.token();
    if token.is_empty() {
        return Err(BadExtensions);
    }
    Ok(token)
}

/// A quoted-string (at its opening quote) whose unescaped value is a
/// token (§9.1).
fn quoted_token(p: &mut Cursor<'_>) -> Result<String, BadExtensions> {
    match p.quoted() {
        Some(value) if !value.is_empty() && value.bytes().all(is_tchar) => Ok(value),
        _ => Err(BadExtensions),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<Vec<ExtensionOffer>, BadExtensions> {
        let mut out = Vec::new();
        parse_extensions(value.as_bytes(), &mut out).map(|()| out)
    }

    fn offer(name: &str, params: &[(&str, Option<&str>)]) -> ExtensionOffer {
        params
            .iter()
            .fold(ExtensionOffer::new(name), |o, (n, v)| o.param(n, *v))
    }

    #[test]
    fn a_browsers_offer() {
        assert_eq!(
            parse("permessage-deflate; client_max_window_bits"),
            Ok(vec![offer(
                "permessage-deflate",
                &[("client_max_window_bits", None)]
            )])
        );
    }

    #[test]
    fn several_offers_with_parameters_and_whitespace() {
        // RFC 7692 §5's offers, spread out.
        let value = "permessage-deflate;client_max_window_bits=10 , \t permessage-deflate ;  \
                     server_max_window_bits = \"12\"; server_no_context_takeover,x-webkit-deflate-frame";
        assert_eq!(
            parse(value),
            Ok(vec![
                offer(
                    "permessage-deflate",
                    &[("client_max_window_bits", Some("10"))]
                ),
                offer(
                    "permessage-deflate",
                    &[
                        ("server_max_window_bits", Some("12")),
                        ("server_no_context_takeover", None)
                    ]
                ),
                offer("x-webkit-deflate-frame", &[]),
            ])
        );
    }

    #[test]
    fn quoted_values_are_unescaped_and_must_be_tokens() {
        assert_eq!(
            parse(r#"e; a="1\0"; b=x"#),
            Ok(vec![offer("e", &[("a", Some("10")), ("b", Some("x"))])])
        );
        for bad in [
            r#"e; a="""#,
            r#"e; a="1 0""#,
            r#"e; a="1,0""#,
            r#"e; a="10"#,
            r#"e; a="10\"#,
            r#"e; a="10"x"#,
        ] {
            assert_eq!(parse(bad), Err(BadExtensions), "{bad}");
        }
    }

    #[test]
    fn empty_elements_are_skipped_but_one_extension_is_needed() {
        assert_eq!(
            parse(" , a ,, b, "),
            Ok(vec![offer("a", &[]), offer("b", &[])])
        );
        for bad in ["", " ", ",", " , ,"] {
            assert_eq!(parse(bad), Err(BadExtensions), "{bad:?}");
        }
    }

    #[test]
    fn what_the_grammar_refuses() {
        for bad in [
            "a b",
            "a;",
            "a; ",
            ";a",
            "a;=1",
            "a; b=",
            "a; b==1",
            "a; b=1 2",
            "a/b",
            "a; b=(1)",
            "a; b=\"x\";",
            "\"a\"",
            "é",
        ] {
            assert_eq!(parse(bad), Err(BadExtensions), "{bad:?}");
        }
    }

    #[test]
    fn an_offer_writes_back_as_it_parses() {
        let o = offer(
            "permessage-deflate",
            &[
                ("server_no_context_takeover", None),
                ("client_max_window_bits", Some("9")),
            ],
        );
        let written = o.to_string();
        assert_eq!(
            written,
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=9"
        );
        assert_eq!(parse(&written), Ok(vec![o]));
        assert!(offer("PerMessage-Deflate", &[]).is("permessage-deflate"));
    }
}
