//! The opening handshake (RFC 6455 §4): an HTTP/1.1 Upgrade, parsed with
//! `httparse`.
//!
//! The server side reads a request head with a size cap and a header-count
//! cap, checks every requirement of §4.2.1, and answers either `101` or an
//! [`HttpError`] that knows its status line. The client side (§4.1) builds a
//! request with a fresh random key and checks the server's answer.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};
use std::fmt;

use super::mask::MaskSource;

/// §1.3: the GUID appended to the key before hashing.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (§4.2.2 step 5.4).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// Caps on a request head. Without them a peer can make us buffer and parse
/// without end (slowloris, header floods).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Largest request head in bytes, request line and headers together.
    pub max_head: usize,
    /// Most header lines.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_head: 8 * 1024,
            max_headers: 64,
        }
    }
}

/// A request the server refuses, with the status that says why. The reason
/// is sent as a one-line body so that a person with `curl` sees it too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// 400: malformed, or not a valid WebSocket upgrade.
    BadRequest(&'static str),
    /// 403: an `Origin` the server does not accept (§4.2.2, §10.2); the
    /// reason names the origin and how to allow it.
    Forbidden(String),
    /// 404: no such file.
    NotFound,
    /// 405: a method other than GET (or HEAD for files).
    MethodNotAllowed,
    /// 408: the head did not arrive in time.
    RequestTimeout,
    /// 426: a `Sec-WebSocket-Version` other than 13 (§4.2.2).
    UpgradeRequired(&'static str),
    /// 431: too many or too large headers.
    HeadersTooLarge(&'static str),
    /// 503: too many connections.
    ServiceUnavailable(&'static str),
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::Forbidden(_) => 403,
            HttpError::NotFound => 404,
            HttpError::MethodNotAllowed => 405,
            HttpError::RequestTimeout => 408,
            HttpError::UpgradeRequired(_) => 426,
            HttpError::HeadersTooLarge(_) => 431,
            HttpError::ServiceUnavailable(_) => 503,
        }
    }

    pub fn reason_phrase(&self) -> &'static str {
        match self {
            HttpError::BadRequest(_) => "Bad Request",
            HttpError::Forbidden(_) => "Forbidden",
            HttpError::NotFound => "Not Found",
            HttpError::MethodNotAllowed => "Method Not Allowed",
            HttpError::RequestTimeout => "Request Timeout",
            HttpError::UpgradeRequired(_) => "Upgrade Required",
            HttpError::HeadersTooLarge(_) => "Request Header Fields Too Large",
            HttpError::ServiceUnavailable(_) => "Service Unavailable",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            HttpError::Forbidden(why) => why,
            HttpError::BadRequest(why)
            | HttpError::UpgradeRequired(why)
            | HttpError::HeadersTooLarge(why)
            | HttpError::ServiceUnavailable(why) => why,
            HttpError::NotFound => "no such file",
            HttpError::MethodNotAllowed => "only GET and HEAD are allowed",
            HttpError::RequestTimeout => "request head not received in time",
        }
    }

    /// The whole response. The connection is closed after it.
    pub fn response(&self) -> Vec<u8> {
        let body = format!("{}\n", self.detail());
        let extra = match self {
            HttpError::UpgradeRequired(_) => "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n",
            HttpError::MethodNotAllowed => "Allow: GET, HEAD\r\n",
            _ => "",
        };
        format!(
            "HTTP/1.1 {} {}\r\n{extra}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.status(),
            self.reason_phrase(),
            body.len()
        )
        .into_bytes()
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status(),
            self.reason_phrase(),
            self.detail()
        )
    }
}

impl std::error::Error for HttpError {}

/// Finds the end of a request head in bytes that arrive in pieces.
///
/// Each byte is looked at once, however the head is split, so a head that
/// trickles in a byte at a time costs linear work, not quadratic.
#[derive(Debug, Default)]
pub struct HeadScanner {
    scanned: usize,
}

impl HeadScanner {
    /// Given everything received so far (`buf` only ever grows at the end),
    /// returns the head's length once the blank line that ends it is in.
    pub fn find_end(
        &mut self,
        buf: &[u8],
        limits: &HeadLimits,
    ) -> Result<Option<usize>, HttpError> {
        // A shorter buffer than last time breaks the contract; rescan it.
        let from = self.scanned.min(buf.len()).saturating_sub(3);
        let end = buf[from..]
            .windows(2)
            .position(|w| w == b"\n\n")
            .map(|i| from + i + 2)
            .into_iter()
            .chain(
                buf[from..]
                    .windows(3)
                    .position(|w| w == b"\n\r\n")
                    .map(|i| from + i + 3),
            )
            .min();
        self.scanned = buf.len();
        match end {
            Some(end) if end <= limits.max_head => Ok(Some(end)),
            Some(_) => Err(HttpError::HeadersTooLarge("request head too large")),
            None if buf.len() >= limits.max_head => {
                Err(HttpError::HeadersTooLarge("request head too large"))
            }
            None => Ok(None),
        }
    }
}

/// A parsed request head. Header names are lower-cased; values are raw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Request {
    /// Parse a complete head (as delimited by [`HeadScanner`]).
    pub fn parse(head: &[u8], limits: &HeadLimits) -> Result<Request, HttpError> {
        let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut req = httparse::Request::new(&mut slots);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(HttpError::BadRequest("incomplete request head"));
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HttpError::HeadersTooLarge("too many headers"));
            }
            Err(httparse::Error::Version) => {
                return Err(HttpError::BadRequest("unsupported HTTP version"));
            }
            Err(_) => return Err(HttpError::BadRequest("malformed request head")),
        }
        let headers = req
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), trim(h.value).to_vec()))
            .collect();
        Ok(Request {
            method: req.method.unwrap_or_default().to_owned(),
            path: req.path.unwrap_or_default().to_owned(),
            version: req.version.unwrap_or(0),
            headers,
        })
    }

    /// The value of a header that must appear at most once; `Err` when it
    /// appears twice (a smuggling shape: two parsers may pick different ones).
    pub fn single(&self, name: &str, duplicated: &'static str) -> Result<Option<&[u8]>, HttpError> {
        let mut values = self.all(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(HttpError::BadRequest(duplicated));
        }
        Ok(first)
    }

    /// Every value of a header, in order.
    pub fn all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let name = name.to_owned();
        self.headers
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of a header as text, if it is ASCII.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.all(name)
            .next()
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Does this request ask for a WebSocket at all? Anything that carries
    /// an `Upgrade` header or a `Sec-WebSocket-Key` is judged as one, so
    /// a broken handshake gets a WebSocket answer rather than a file.
    pub fn wants_websocket(&self) -> bool {
        self.all("upgrade").next().is_some() || self.all("sec-websocket-key").next().is_some()
    }
}

/// What the server learns from a valid upgrade request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgrade {
    pub path: String,
    pub host: String,
    pub origin: Option<String>,
    pub accept: String,
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
    Ok(Upgrade {
        path: req.path.clone(),
        host: String::from_utf8_lossy(host).into_owned(),
        origin,
        accept: accept_key(key),
    })
}

/// The `101 Switching Protocols` answer (§4.2.2 step 5). It names no
/// extension and no subprotocol: we implement none, so we accept none.
pub fn accept_response(upgrade: &Upgrade) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        upgrade.accept
    )
    .into_bytes()
}

/// Is `token` one of the comma-separated tokens of `value` (ASCII
/// case-insensitive, §4.2.1 items 3 and 4)?
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
}

fn trim(value: &[u8]) -> &[u8] {
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ws(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
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
}

/// Build the request of §4.1 for `host` (with port) and `path`, with a key
/// of 16 unpredictable bytes.
pub fn client_request(host: &str, path: &str, randomness: &mut MaskSource) -> ClientRequest {
    let mut nonce = [0u8; 16];
    randomness.fill(&mut nonce);
    let key = BASE64.encode(nonce);
    let bytes = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes();
    ClientRequest {
        bytes,
        expected_accept: accept_key(key.as_bytes()),
    }
}

/// Check a complete response head against §4.1's list.
pub fn check_response(head: &[u8], expected_accept: &str) -> Result<(), ClientHandshakeError> {
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
    if !values("sec-websocket-extensions").is_empty() {
        return Err(ClientHandshakeError::Unrequested("extension"));
    }
    if !values("sec-websocket-protocol").is_empty() {
        return Err(ClientHandshakeError::Unrequested("subprotocol"));
    }
    Ok(())
}
