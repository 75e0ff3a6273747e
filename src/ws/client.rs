//! A blocking WebSocket client (RFC 6455 §4.1), on the same connection
//! layer as the server. Used by the Autobahn client driver, the tests and
//! the load generator.

use std::fmt;
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::conn::{self, Config, Reader, Sender};
use super::deflate::{self, BadParams};
use super::frame::Role;
use super::handshake::{self, ClientHandshakeError};
use super::mask::MaskSource;
use crate::http::{self, HeadError, HeadLimits, HttpError};

/// Why [`connect`] failed.
#[derive(Debug)]
pub enum ConnectError {
    /// Only `ws://host[:port][/path]` URLs are understood.
    BadUrl(String),
    Io(io::Error),
    /// The server did not send a complete head in time.
    Timeout,
    Handshake(ClientHandshakeError),
    /// The head of the server's answer is too large.
    Http(HttpError),
    /// The server accepted permessage-deflate with parameters this client
    /// cannot accept (RFC 7692 §5.1: the client fails the connection).
    Extension(BadParams),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::BadUrl(url) => write!(f, "not a ws:// URL: {url}"),
            ConnectError::Io(e) => write!(f, "{e}"),
            ConnectError::Timeout => f.write_str("handshake timed out"),
            ConnectError::Handshake(e) => write!(f, "{e}"),
            ConnectError::Http(e) => write!(f, "{e}"),
            ConnectError::Extension(e) => {
                write!(f, "unacceptable permessage-deflate response: {e:?}")
            }
        }
    }
}

impl std::error::Error for ConnectError {}

impl From<io::Error> for ConnectError {
    fn from(e: io::Error) -> Self {
        ConnectError::Io(e)
    }
}

/// `ws://host:port/path` → (`host:port`, `/path`).
pub fn split_url(url: &str) -> Result<(String, String), ConnectError> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| ConnectError::BadUrl(url.to_owned()))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    if authority.is_empty() {
        return Err(ConnectError::BadUrl(url.to_owned()));
    }
    let authority = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path))
}

/// Open a client connection to a `ws://` URL: connect, handshake, and
/// return the two halves (the writer thread starts when first needed). It
/// offers no extension.
pub fn connect(
    url: &str,
    config: Config,
    timeout: Duration,
) -> Result<(Reader, Sender), ConnectError> {
    connect_offering(url, config, timeout, None)
}

/// [`connect`], offering permessage-deflate when `deflate` is given
/// (RFC 7692 §5): messages at least that long are sent compressed, and the
/// connection uses whatever a conforming server answers (see
/// [`deflate::client_in_use`]). A server that answers with parameters the
/// client cannot accept fails the connection (§5.1).
pub fn connect_offering(
    url: &str,
    mut config: Config,
    timeout: Duration,
    deflate: Option<usize>,
) -> Result<(Reader, Sender), ConnectError> {
    let (authority, path) = split_url(url)?;
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| ConnectError::BadUrl(url.to_owned()))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    let deadline = Instant::now() + timeout;
    let offer = deflate.map(|_| deflate::client_offer());
    let request =
        handshake::client_request_offering(&authority, &path, offer, &mut MaskSource::new());
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(&request.bytes)?;
    let (head, leftover) =
        http::read_head(&mut stream, &HeadLimits::default(), deadline).map_err(|e| match e {
            HeadError::Http(e) => ConnectError::Http(e),
            HeadError::Timeout => ConnectError::Timeout,
            HeadError::Eof => ConnectError::Io(io::ErrorKind::UnexpectedEof.into()),
            HeadError::Io(e) => ConnectError::Io(e),
        })?;
    let accepted = request
        .check_response(&head)
        .map_err(ConnectError::Handshake)?;
    let extension = match (accepted, deflate) {
        (Some(response), Some(threshold)) => {
            Some(deflate::client_in_use(&response, threshold).map_err(ConnectError::Extension)?)
        }
        _ => None,
    };
    stream.set_read_timeout(None)?;
    config.role = Role::Client;
    Ok(conn::start(stream, &leftover, config, extension)?)
}
