//! The client's side of the opening handshake (RFC 6455 §4.1): a request
//! with a fresh random key, and the checks a client makes of the answer.
//!
//! RFC 6455 §4.1, §9.1.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{ExtensionOffer, accept_key, has_token, parse_extensions};
use crate::http::trim;
use crate::ws::mask::MaskSource;

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
