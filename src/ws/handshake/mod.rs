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
//!
//! The offers' grammar is in [`offer`]; the client side in [`client`].
//! RFC 6455 §4, §9.1.

mod client;
mod offer;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};

use crate::http::{HttpError, Request, trim};

pub use client::{
    ClientHandshakeError, ClientRequest, check_response, client_request, client_request_offering,
};
pub use offer::{BadExtensions, ExtensionOffer, parse_extensions};

/// §1.3: the GUID appended to the key before hashing.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (§4.2.2 step 5.4).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

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
///
/// Written into one buffer of its final size: every block a reader thread
/// frees stays in its allocator's thread cache for the connection's life.
pub fn accept_response(upgrade: &Upgrade, extension: Option<&ExtensionOffer>) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut response = String::with_capacity(256);
    let _ = write!(
        response,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        upgrade.accept
    );
    if let Some(extension) = extension {
        let _ = write!(response, "Sec-WebSocket-Extensions: {extension}\r\n");
    }
    response.push_str("\r\n");
    response.into_bytes()
}

/// Is `token` one of the comma-separated tokens of `value` (ASCII
/// case-insensitive, §4.2.1 items 3 and 4)?
pub(super) fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token.as_bytes()))
}
