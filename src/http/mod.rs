//! The plain HTTP/1.1 the server speaks before a WebSocket exists: reading
//! a request head within limits ([`head`]), parsing it ([`request`]),
//! refusing it with the right status ([`HttpError`]), answering it with a
//! file from `www/` or the health check ([`files`]), and reading what the
//! proxies in front of us say about it ([`forwarded`], RFC 7239).
//!
//! The WebSocket upgrade itself (RFC 6455 §4) is checked in
//! [`crate::ws::handshake`], on a [`Request`] read here.

pub mod error;
pub mod files;
pub mod forwarded;
pub mod head;
pub mod request;
pub mod token;

pub use error::HttpError;
pub use files::StaticFiles;
pub use head::{HeadError, HeadLimits, HeadScanner, read_head};
pub use request::{Request, trim};

/// A complete response; for HEAD, the same headers without the body.
pub fn response(
    status: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// The path of the health check, answered by every mode of the server.
pub const HEALTH_PATH: &str = "/healthz";

/// The answer to a `GET` (or `HEAD`) of [`HEALTH_PATH`].
pub fn health(head_only: bool) -> Vec<u8> {
    response(200, "OK", "text/plain; charset=utf-8", b"ok\n", head_only)
}

/// The answer to [`HEALTH_PATH`] when the server cannot do its work (in a
/// cluster: a link to Redis is not up), so that a load balancer sends new
/// clients elsewhere; the body says why.
pub fn unready(why: &str, head_only: bool) -> Vec<u8> {
    response(
        503,
        "Service Unavailable",
        "text/plain; charset=utf-8",
        format!("unready: {why}\n").as_bytes(),
        head_only,
    )
}
