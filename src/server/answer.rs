//! A request's answer, up to the 101: the head read within its limits and
//! time, the client named (by a trusted proxy's forwarding headers) and
//! counted under its address, a plain HTTP request answered through the
//! [`App`], an upgrade checked (RFC 6455 §4.2.1) and accepted (§4.2.2) or
//! refused with its status.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{App, Peer, ServerConfig, Slot};
use crate::http::{self, HeadError, HttpError, Request};
use crate::ws::extension::{InUse, Negotiated};
use crate::ws::handshake;

/// An upgraded connection.
pub(super) struct Upgraded {
    pub stream: TcpStream,
    /// The bytes read past the request head.
    pub leftover: Vec<u8>,
    /// The extension negotiated for it.
    pub extension: Option<InUse>,
    /// Who it is, as the request head said.
    pub peer: Peer,
    /// The request target of the upgrade: the path and its query.
    pub path: String,
}

/// Read the request from `socket` and answer it: a plain HTTP response or
/// a refusal (then `None`), or `101 Switching Protocols`, returning the
/// [`Upgraded`] connection. A trusted proxy's connection is counted under
/// its client's address in `slot` here, once the head names the client,
/// and refused with 503 if that address has its fill.
///
/// Not inlined: its frame (head, parsed request, SHA-1 of the key) is gone
/// before the connection starts, so it does not add to the deepest point of
/// the reader's stack, whose pages stay resident for the connection's life.
#[inline(never)]
pub(super) fn answer_request(
    mut stream: TcpStream,
    socket: SocketAddr,
    config: &ServerConfig,
    app: &dyn App,
    slot: &mut Slot,
) -> Option<Upgraded> {
    let deadline = Instant::now() + config.head_timeout;
    let direct = Peer::direct(socket);
    let (head, leftover) = match http::read_head(&mut stream, &config.head, deadline) {
        Ok(head) => head,
        Err(HeadError::Http(e)) => return refuse(&mut stream, &direct, None, &e),
        Err(HeadError::Timeout) => {
            return refuse(&mut stream, &direct, None, &HttpError::RequestTimeout);
        }
        Err(HeadError::Eof | HeadError::Io(_)) => return None,
    };
    let request = match Request::parse(&head, &config.head) {
        Ok(request) => request,
        Err(e) => return refuse(&mut stream, &direct, None, &e),
    };
    drop(head);
    let peer = if config.trusts(socket.ip()) {
        let peer = Peer::forwarded(socket, &request, &config.trusted_proxies);
        if let Err(e) = slot.count_ip(peer.ip(), config) {
            return refuse(&mut stream, &peer, Some(&request), &e);
        }
        peer
    } else {
        direct
    };
    if !request.wants_websocket() {
        let response = app.http(&request).unwrap_or_else(|e| e.response());
        if log::log_enabled!(log::Level::Debug) {
            let status = response.split(|&b| b == b'\r').next().unwrap_or_default();
            log::debug!(
                "{peer}: {} {} -> {}",
                request.method,
                request.path,
                String::from_utf8_lossy(status)
            );
        }
        let _ = stream.set_write_timeout(Some(config.head_timeout));
        let _ = stream.write_all(&response);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        drain_briefly(&mut stream);
        return None;
    }
    let (upgrade, negotiated) = match handshake::check_upgrade(&request)
        .and_then(|u| app.check_upgrade(&u, &peer).map(|n| (u, n)))
    {
        Ok(accepted) => accepted,
        Err(e) => return refuse(&mut stream, &peer, Some(&request), &e),
    };
    debug_assert!(
        negotiated.as_ref().is_none_or(|n| upgrade
            .extensions
            .iter()
            .any(|offer| offer.is(&n.response.name))),
        "the App accepted an extension the client did not offer"
    );
    let (response, extension) = match negotiated {
        Some(Negotiated { response, in_use }) => (Some(response), Some(in_use)),
        None => (None, None),
    };
    log::debug!(
        "{peer}: WebSocket upgrade {} {} (origin {}) -> 101 Switching Protocols",
        request.method,
        request.path,
        upgrade.origin.as_deref().unwrap_or("none")
    );
    let _ = stream.set_write_timeout(Some(config.head_timeout));
    if stream
        .write_all(&handshake::accept_response(&upgrade, response.as_ref()))
        .is_err()
    {
        return None;
    }
    let _ = stream.set_read_timeout(None);
    crate::metrics::get().upgraded();
    Some(Upgraded {
        stream,
        leftover,
        extension,
        peer,
        path: upgrade.path,
    })
}

/// Answer with `error`'s status, and log why at `info`; the connection ends
/// here. `request` is the parsed head, when it got that far.
fn refuse<T>(
    stream: &mut TcpStream,
    peer: &Peer,
    request: Option<&Request>,
    error: &HttpError,
) -> Option<T> {
    crate::metrics::get().refused(error);
    match request {
        Some(request) => log::info!(
            "{peer}: refused {} {} (origin {}): {error}",
            request.method,
            request.path,
            request.text("origin").unwrap_or("none")
        ),
        None => log::info!("{peer}: refused: {error}"),
    }
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = stream.write_all(&error.response());
    let _ = stream.shutdown(std::net::Shutdown::Write);
    drain_briefly(stream);
    None
}

/// Read what the client still sends for a moment before closing, so that
/// unread input does not turn our close into a reset that destroys the
/// response before the client reads it.
pub(super) fn drain_briefly(stream: &mut TcpStream) {
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut scratch = [0u8; 1024];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}
