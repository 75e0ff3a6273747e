//! Our client with a raw server, for what tungstenite would not do: frames
//! in the same write as the 101, a masked server frame, bad answers to the
//! handshake.

use std::net::{SocketAddr, TcpListener};
use std::thread::{self, JoinHandle};

use wschat::ws::client::{self, ConnectError};
use wschat::ws::handshake::ClientHandshakeError;
use wschat::ws::{CloseCode, Config, Message, Role};

use crate::support::{
    ACCEPT, BINARY, CLOSE, MASK, TEXT, Ws, accept_one, close_payload, encode, header, server_frame,
    switching_protocols,
};
use crate::{IO_TIMEOUT, join, next, our_connect};

/// A raw server for one connection, on its own thread: runs `f` on the
/// accepted socket, before its request head is read.
fn raw_server<T: Send + 'static>(
    f: impl FnOnce(Ws) -> T + Send + 'static,
) -> (SocketAddr, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = thread::spawn(move || f(Ws::accepted(accept_one(&listener, IO_TIMEOUT))));
    (addr, thread)
}

/// Read the request head and answer it with a 101 whose accept value
/// tungstenite computed from the request's key.
fn accept(ws: &mut Ws) -> Vec<u8> {
    let head = ws.read_request_head();
    let key = header(&head, "sec-websocket-key").expect("no key");
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    switching_protocols(&accept).into_bytes()
}

#[test]
fn b_client_reads_frames_that_arrive_with_the_101() {
    // The 101 and the first frames in one write: the client must keep the
    // bytes it read past the head.
    let (addr, server) = raw_server(|mut ws| {
        let mut out = accept(&mut ws);
        out.extend(server_frame(true, TEXT, b"welcome"));
        out.extend(server_frame(true, BINARY, &[5; 300]));
        out.extend(server_frame(true, CLOSE, &close_payload(1000, b"later")));
        ws.send_raw(&out).unwrap();
        // Our client echoes the Close, masked, then waits for us to close.
        let echo = ws.read_client_frame(IO_TIMEOUT);
        assert_eq!(echo.close_code(), 1000);
    });
    let (mut reader, _sender) = our_connect(addr);
    assert_eq!(next(&mut reader), Ok(Message::Text("welcome".into())));
    assert_eq!(next(&mut reader), Ok(Message::Binary(vec![5; 300])));
    let closed = next(&mut reader).unwrap_err();
    assert_eq!((closed.code, closed.by_peer), (CloseCode::NORMAL, true));
    assert_eq!(closed.reason, "later");
    join(server);
}

#[test]
fn b_client_fails_on_a_masked_server_frame() {
    let (addr, server) = raw_server(|mut ws| {
        let answer = accept(&mut ws);
        ws.send_raw(&answer).unwrap();
        // §5.1: a server must not mask.
        ws.send_raw(&encode(0x81, b"masked", Some(MASK))).unwrap();
        let code = ws.read_client_frame(IO_TIMEOUT).close_code();
        // The client has failed the connection: it sends nothing more.
        ws.expect_fin(IO_TIMEOUT);
        code
    });
    let (mut reader, _sender) = our_connect(addr);
    let closed = next(&mut reader).unwrap_err();
    assert_eq!(
        (closed.code, closed.by_peer),
        (CloseCode::PROTOCOL_ERROR, false)
    );
    assert_eq!(join(server), 1002);
}

/// Connect our client to a raw server that answers the request head with
/// `answer`; the error it gives.
fn refused_by(answer: String) -> ConnectError {
    let (addr, server) = raw_server(move |mut ws| {
        ws.read_request_head();
        ws.send_raw(answer.as_bytes()).unwrap();
    });
    let err = client::connect(
        &format!("ws://{addr}/"),
        Config::new(Role::Client),
        IO_TIMEOUT,
    )
    .err()
    .expect("connected despite a bad answer");
    join(server);
    err
}

#[test]
fn b_client_rejects_bad_handshake_answers() {
    // An answer that is not 101.
    let err = refused_by(
        "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"
            .to_owned(),
    );
    assert!(
        matches!(
            err,
            ConnectError::Handshake(ClientHandshakeError::Status(426))
        ),
        "{err:?}"
    );
    // A 101 with the wrong accept value (§4.1): the RFC's, for its sample
    // key, which our client never sends.
    let err = refused_by(switching_protocols(ACCEPT));
    assert!(
        matches!(
            err,
            ConnectError::Handshake(ClientHandshakeError::BadAccept)
        ),
        "{err:?}"
    );
}
