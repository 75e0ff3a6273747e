//! Interoperability over real loopback sockets, against an independent
//! implementation of RFC 6455 (`tungstenite`, blocking) and against raw
//! bytes written by hand (`tests/support/`).
//!
//! - our server (`InProcessServer` with the echo `App`, or a test `App`)
//!   with a tungstenite client ([`tungstenite_client`]), with a raw client
//!   for what tungstenite refuses to send ([`raw_client`]), through the
//!   closing handshake ([`closing`]) and through every protocol violation
//!   of `tests/common/violations.rs` ([`protocol_errors`]);
//! - our client (`ws::client::connect`) with a tungstenite server
//!   ([`tungstenite_server`]), and with a raw server for what tungstenite
//!   would not do ([`raw_server`]);
//! - the opening handshake's refusals, read raw off the socket
//!   ([`handshake`]);
//! - liveness: pings to a silent peer, and a peer that answers them
//!   ([`liveness`]);
//! - the extension seam: an `App` that accepts a test extension, named in
//!   the 101 and run by the decoder ([`extension`]);
//! - permessage-deflate (RFC 7692) both ways against Python's `websockets`,
//!   run as a child process by `/usr/bin/python3` ([`deflate`]).
//!
//! Every socket has a read and write timeout, every accept has a deadline,
//! and every thread a test starts is joined, so a failing test fails instead
//! of hanging. Only 127.0.0.1 is used.

#[path = "../support/mod.rs"]
mod support;
#[path = "../common/violations.rs"]
mod violations;

mod closing;
mod deflate;
mod extension;
mod handshake;
mod liveness;
mod protocol_errors;
mod raw_client;
mod raw_server;
mod ts;
mod tungstenite_client;
mod tungstenite_server;

use std::net::SocketAddr;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use wschat::http::{HttpError, Request};
use wschat::server::{App, Peer};
use wschat::ws::client;
use wschat::ws::extension::Negotiated;
use wschat::ws::handshake::Upgrade;
use wschat::ws::{Closed, Message, Reader, Role, Sender};

use support::large_config;

/// Bound on every blocking socket operation in these tests.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest message `Limits::LARGE` admits.
const BIG: usize = 16 * 1024 * 1024;

/// A 16 MiB string of mixed 1-, 2-, 3- and 4-byte characters, so that
/// characters straddle every read-buffer boundary.
fn big_text() -> String {
    let mut text = String::with_capacity(BIG);
    let pattern = "a é ✓ 𝄞 ";
    while text.len() + pattern.len() <= BIG {
        text.push_str(pattern);
    }
    while text.len() < BIG {
        text.push('x');
    }
    text
}

fn big_binary() -> Vec<u8> {
    (0..BIG).map(|i| (i * 31 % 251) as u8).collect()
}

/// A server `App` that runs `f` on each WebSocket and reports how the
/// connection ended, as our reader saw it.
struct FnApp<F> {
    f: F,
    ended: mpsc::Sender<Closed>,
}

impl<F> App for FnApp<F>
where
    F: Fn(&mut Reader, &Sender) -> Closed + Send + Sync + 'static,
{
    fn http(&self, _request: &Request) -> Result<Vec<u8>, HttpError> {
        Err(HttpError::NotFound)
    }

    fn check_upgrade(
        &self,
        _upgrade: &Upgrade,
        _peer: &Peer,
    ) -> Result<Option<Negotiated>, HttpError> {
        Ok(None)
    }

    fn websocket(&self, mut reader: Reader, sender: Sender, _peer: Peer, _path: String) {
        let closed = (self.f)(&mut reader, &sender);
        let _ = self.ended.send(closed);
    }
}

fn fn_app<F>(f: F) -> (Arc<dyn App>, mpsc::Receiver<Closed>)
where
    F: Fn(&mut Reader, &Sender) -> Closed + Send + Sync + 'static,
{
    let (ended, rx) = mpsc::channel();
    (Arc::new(FnApp { f, ended }), rx)
}

/// Our client, connected to `addr` with large limits.
fn our_connect(addr: SocketAddr) -> (Reader, Sender) {
    client::connect(
        &format!("ws://{addr}/"),
        large_config(Role::Client),
        IO_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// The next message, within `IO_TIMEOUT`.
fn next(reader: &mut Reader) -> Result<Message, Closed> {
    match reader.next_message_timeout(IO_TIMEOUT) {
        Ok(Some(message)) => Ok(message),
        Ok(None) => panic!("no message within {IO_TIMEOUT:?}"),
        Err(closed) => Err(closed),
    }
}

fn join<T>(thread: JoinHandle<T>) -> T {
    thread.join().expect("peer thread panicked")
}
