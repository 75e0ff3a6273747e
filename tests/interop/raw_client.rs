//! Our server with a raw client, for what tungstenite would not send or
//! would not let us see.

use std::thread;
use std::time::Duration;

use crate::IO_TIMEOUT;
use crate::support::{BINARY, CLOSE, InProcessServer, PING, PONG, Ws, client_frame};

/// An 8 MiB echo to a client that is not reading stalls half-way in the
/// socket (started by the reader's thread, finished by the writer); the
/// Pongs for Pings sent meanwhile come after it, whole, in order.
#[test]
fn pongs_wait_for_a_stalled_big_frame() {
    let server = InProcessServer::echo();
    let mut raw = Ws::connect(server.addr);
    let payload: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    raw.send_raw(&client_frame(true, BINARY, &payload)).unwrap();
    // Not reading yet: the echo fills both socket buffers and stalls half-way.
    thread::sleep(Duration::from_millis(200));
    for i in 0..3u8 {
        raw.send_raw(&client_frame(true, PING, &[b'p', i])).unwrap();
    }
    thread::sleep(Duration::from_millis(200));
    let echo = raw.read_server_frame(IO_TIMEOUT);
    assert_eq!((echo.fin, echo.opcode), (true, BINARY));
    assert!(echo.payload == payload, "the echo came back altered");
    for i in 0..3u8 {
        let pong = raw.read_server_frame(IO_TIMEOUT);
        assert_eq!((pong.opcode, pong.payload), (PONG, vec![b'p', i]));
    }
    raw.send_raw(&client_frame(true, CLOSE, &1000u16.to_be_bytes()))
        .unwrap();
    assert_eq!(raw.read_server_frame(IO_TIMEOUT).close_code(), 1000);
    raw.expect_fin(IO_TIMEOUT);
    drop(raw);
    server.wait_idle();
}

/// Binary messages are not checked for UTF-8.
#[test]
fn binary_messages_are_not_utf8_checked() {
    let server = InProcessServer::echo();
    let mut raw = Ws::connect(server.addr);
    raw.send_raw(&client_frame(true, BINARY, b"\xff\xfe"))
        .unwrap();
    let echo = raw.read_server_frame(IO_TIMEOUT);
    assert_eq!((echo.opcode, &echo.payload[..]), (BINARY, &b"\xff\xfe"[..]));
    drop(raw);
    server.wait_idle();
}
