//! The opening handshake (RFC 6455 §4): an HTTP/1.1 Upgrade, parsed with
//! `httparse`.
//!
//! The server side checks a request head (read and parsed by [`crate::http`])
//! against every requirement of §4.2.1, and answers either `101` or an
//! [`HttpError`] that knows its status line. The client side (§4.1) builds a
//! request with a fresh random key and checks the server's answer.

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
