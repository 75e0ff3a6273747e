//! The opening handshake (RFC 6455 §4): an HTTP/1.1 Upgrade, parsed with
//! `httparse`.
//!
//! The server side checks a request head (read and parsed by [`crate::http`])
//! against every requirement of §4.2.1, and answers either `101` or an
//! [`HttpError`] that knows its status line. The client side (§4.1) builds a
//! request with a fresh random key and checks the server's answer.
//!
//! Extensions (§9.1): the offers in `Sec-WebSocket-Extensions` are parsed
//! into [`Upgrade::extensions`] ([`parse_extensions`]); the application
//! accepts at most one, and the 101 names it ([`accept_response`]). A
//! client may offer one ([`client_request_offering`]) and fails the
//! connection if the 101 names any other ([`ClientRequest::check_response`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};
use std::fmt;

use super::mask::MaskSource;
use crate::http::trim;
pub use crate::http::{HeadLimits, HeadScanner, HttpError, Request};

/// §1.3: the GUID appended to the key before hashing.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (§4.2.2 step 5.4).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// What the server learns from a valid upgrade request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgrade {
    pub path: String,
    pub host: String,
    pub origin: Option<String>,
    pub accept: String,
    /// The extensions offered, in the client's order of preference, from
    /// every `Sec-WebSocket-Extensions` header (§9.1); empty without one.
    pub extensions: Vec<ExtensionOffer>,
}

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
    let mut p = Cursor {
        bytes: value,
        pos: 0,
    };
    let mut named = false;
    loop {
        p.skip_whitespace();
        match p.peek() {
            None => break,
            Some(b',') => {
                p.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let mut offer = ExtensionOffer {
            name: p.token()?,
            params: Vec::new(),
        };
        loop {
            p.skip_whitespace();
            match p.peek() {
                None => break,
                Some(b',') => {
                    p.pos += 1;
                    break;
                }
                Some(b';') => {
                    p.pos += 1;
                    p.skip_whitespace();
                    let name = p.token()?;
                    p.skip_whitespace();
                    let value = if p.peek() == Some(b'=') {
                        p.pos += 1;
                        p.skip_whitespace();
                        Some(if p.peek() == Some(b'"') {
                            p.quoted_token()?
                        } else {
                            p.token()?
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

/// RFC 7230's `tchar`: what a token is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A position in a header value being parsed.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Result<String, BadExtensions> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        match &self.bytes[start..self.pos] {
            [] => Err(BadExtensions),
            token => Ok(String::from_utf8_lossy(token).into_owned()),
        }
    }

    /// A quoted-string (at its opening quote) whose unescaped value is a
    /// token.
    fn quoted_token(&mut self) -> Result<String, BadExtensions> {
        self.pos += 1;
        let mut value = String::new();
        loop {
            let b = match self.peek().ok_or(BadExtensions)? {
                b'"' => break,
                b'\\' => {
                    self.pos += 1;
                    self.peek().ok_or(BadExtensions)?
                }
                b => b,
            };
            if !is_tchar(b) {
                return Err(BadExtensions);
            }
            value.push(char::from(b));
            self.pos += 1;
        }
        self.pos += 1;
        if value.is_empty() {
            return Err(BadExtensions);
        }
        Ok(value)
    }
}

/// Check a request against §4.2.1 and compute the accept value.
pub fn check_upgrade(req: &Request) -> Result<Upgrade, HttpError> {
    if req.method != "GET" {
        return Err(HttpError::MethodNotAllowed);
    }
    if req.version < 1 {
        return Err(HttpError::BadRequest("WebSocket needs HTTP/1.1"));
    }
    let host = req
        .single("host", "duplicated Host header")?
        .ok_or(HttpError::BadRequest("missing Host header"))?;
    let upgrade = req
        .single("upgrade", "duplicated Upgrade header")?
        .ok_or(HttpError::BadRequest("missing Upgrade header"))?;
    if !has_token(upgrade, "websocket") {
        return Err(HttpError::BadRequest("Upgrade header must be websocket"));
    }
    if !req.all("connection").any(|v| has_token(v, "upgrade")) {
        return Err(HttpError::BadRequest(
            "Connection header must include upgrade",
        ));
    }
    if req.all("transfer-encoding").next().is_some()
        || req.all("content-length").any(|v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                != Some(0)
        })
    {
        return Err(HttpError::BadRequest(
            "upgrade request must not have a body",
        ));
    }
    match req.single(
        "sec-websocket-version",
        "duplicated Sec-WebSocket-Version header",
    )? {
        Some(b"13") => {}
        Some(_) => {
            return Err(HttpError::UpgradeRequired(
                "only WebSocket version 13 is supported",
            ));
        }
        None => {
            return Err(HttpError::UpgradeRequired(
                "missing Sec-WebSocket-Version header",
            ));
        }
    }
    let key = req
        .single("sec-websocket-key", "duplicated Sec-WebSocket-Key header")?
        .ok_or(HttpError::BadRequest("missing Sec-WebSocket-Key header"))?;
    match BASE64.decode(key) {
        Ok(nonce) if nonce.len() == 16 => {}
        _ => {
            return Err(HttpError::BadRequest(
                "Sec-WebSocket-Key must be base64 of 16 bytes",
            ));
        }
    }
    let origin = match req.single("origin", "duplicated Origin header")? {
        Some(v) => Some(
            String::from_utf8(v.to_vec())
                .map_err(|_| HttpError::BadRequest("Origin is not text"))?,
        ),
        None => None,
    };
    let mut extensions = Vec::new();
    for value in req.all("sec-websocket-extensions") {
        parse_extensions(value, &mut extensions)
            .map_err(|_| HttpError::BadRequest("malformed Sec-WebSocket-Extensions header"))?;
    }
    Ok(Upgrade {
        path: req.path.clone(),
        host: String::from_utf8_lossy(host).into_owned(),
        origin,
        accept: accept_key(key),
        extensions,
    })
}

/// The `101 Switching Protocols` answer (§4.2.2 step 5). It names the
/// negotiated `extension`, if any, with its response parameters, in
/// `Sec-WebSocket-Extensions` (§4.2.2 step 5, item 6; §9.1), and no subprotocol:
/// we implement none, so we accept none.
pub fn accept_response(upgrade: &Upgrade, extension: Option<&ExtensionOffer>) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        upgrade.accept
    );
    if let Some(extension) = extension {
        response.push_str(&format!("Sec-WebSocket-Extensions: {extension}\r\n"));
    }
    response.push_str("\r\n");
    response.into_bytes()
}

/// Is `token` one of the comma-separated tokens of `value` (ASCII
/// case-insensitive, §4.2.1 items 3 and 4)?
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
}

/// Why a client handshake failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientHandshakeError {
    /// The server answered with a status other than 101.
    Status(u16),
    Malformed,
    /// §4.1: `Upgrade`/`Connection` missing or wrong in the 101 answer.
    NotUpgraded,
    /// §4.1: `Sec-WebSocket-Accept` does not match our key.
    BadAccept,
    /// §4.1: the server claims an extension or subprotocol we did not offer.
    Unrequested(&'static str),
}

impl fmt::Display for ClientHandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientHandshakeError::Status(s) => write!(f, "server answered HTTP {s}, not 101"),
            ClientHandshakeError::Malformed => f.write_str("malformed handshake response"),
            ClientHandshakeError::NotUpgraded => {
                f.write_str("response does not upgrade to websocket")
            }
            ClientHandshakeError::BadAccept => {
                f.write_str("Sec-WebSocket-Accept does not match the key")
            }
            ClientHandshakeError::Unrequested(what) => {
                write!(f, "server chose a {what} we did not offer")
            }
        }
    }
}

impl std::error::Error for ClientHandshakeError {}

/// A client's opening request and the accept value it expects back.
#[derive(Clone, Debug)]
pub struct ClientRequest {
    pub bytes: Vec<u8>,
    pub expected_accept: String,
    /// The extension the request offers, if any.
    pub offered: Option<ExtensionOffer>,
}

impl ClientRequest {
    /// Check the server's complete response head against §4.1's list, and
    /// return the extension the 101 accepted, with its parameters: `None`,
    /// or the one offered. A 101 naming any other extension, or more than
    /// one, fails the connection (§4.1: "MUST _Fail the WebSocket
    /// Connection_").
    pub fn check_response(
        &self,
        head: &[u8],
    ) -> Result<Option<ExtensionOffer>, ClientHandshakeError> {
        check(head, &self.expected_accept, self.offered.as_ref())
    }
}

/// Build the request of §4.1 for `host` (with port) and `path`, with a key
/// of 16 unpredictable bytes. It offers no extension.
pub fn client_request(host: &str, path: &str, randomness: &mut MaskSource) -> ClientRequest {
    client_request_offering(host, path, None, randomness)
}

/// [`client_request`], offering the extension `offer` (§4.1, §9.1).
pub fn client_request_offering(
    host: &str,
    path: &str,
    offer: Option<ExtensionOffer>,
    randomness: &mut MaskSource,
) -> ClientRequest {
    let mut nonce = [0u8; 16];
    randomness.fill(&mut nonce);
    let key = BASE64.encode(nonce);
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(offer) = &offer {
        request.push_str(&format!("Sec-WebSocket-Extensions: {offer}\r\n"));
    }
    request.push_str("\r\n");
    ClientRequest {
        bytes: request.into_bytes(),
        expected_accept: accept_key(key.as_bytes()),
        offered: offer,
    }
}

/// Check a complete response head against §4.1's list, for a request that
/// offered no extension: a 101 naming one fails the connection.
pub fn check_response(head: &[u8], expected_accept: &str) -> Result<(), ClientHandshakeError> {
    check(head, expected_accept, None).map(|_| ())
}

/// §4.1's checks of a response head; returns the accepted extension.
fn check(
    head: &[u8],
    expected_accept: &str,
    offered: Option<&ExtensionOffer>,
) -> Result<Option<ExtensionOffer>, ClientHandshakeError> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut slots);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(ClientHandshakeError::Malformed),
    }
    match resp.code {
        Some(101) => {}
        Some(other) => return Err(ClientHandshakeError::Status(other)),
        None => return Err(ClientHandshakeError::Malformed),
    }
    let values = |name: &str| {
        resp.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| trim(h.value))
            .collect::<Vec<_>>()
    };
    if !values("upgrade").iter().any(|v| has_token(v, "websocket"))
        || !values("connection").iter().any(|v| has_token(v, "upgrade"))
    {
        return Err(ClientHandshakeError::NotUpgraded);
    }
    if values("sec-websocket-accept") != [expected_accept.as_bytes()] {
        return Err(ClientHandshakeError::BadAccept);
    }
    // At most one such header in a response (§11.3.2), naming one
    // extension, the one offered.
    let accepted = match (values("sec-websocket-extensions").as_slice(), offered) {
        ([], _) => None,
        ([value], Some(offered)) => {
            let mut named = Vec::new();
            parse_extensions(value, &mut named).map_err(|_| ClientHandshakeError::Malformed)?;
            match named.pop() {
                Some(one) if named.is_empty() && one.is(&offered.name) => Some(one),
                _ => return Err(ClientHandshakeError::Unrequested("extension")),
            }
        }
        _ => return Err(ClientHandshakeError::Unrequested("extension")),
    };
    if !values("sec-websocket-protocol").is_empty() {
        return Err(ClientHandshakeError::Unrequested("subprotocol"));
    }
    Ok(accepted)
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
