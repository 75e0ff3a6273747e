//! The closing handshake (RFC 6455 §7) with our server: started by the
//! client, by the server, never answered, and both at once during a large
//! send.

use std::thread;
use std::time::{Duration, Instant};

use tungstenite::Message as TsMessage;

use wschat::ws::{CloseCode, Message, Role};

use crate::support::{
    BINARY, CLOSE, InProcessServer, TEXT, Ws, client_frame, expect_fin, large_config,
};
use crate::ts::{ts_close, ts_close_frame, ts_connect, ts_expect_closed, ts_text};
use crate::{IO_TIMEOUT, big_binary, fn_app};

#[test]
fn a_close_initiated_by_the_client() {
    let server = InProcessServer::echo();
    let mut ws = ts_connect(server.addr);
    ws.send(TsMessage::text("before close")).unwrap();
    assert_eq!(ts_text(&mut ws), "before close");

    ws.close(Some(ts_close_frame(1000, "done"))).unwrap();
    // Our echo carries the same code (§5.5.1).
    assert_eq!(ts_close(&mut ws).0, 1000);
    // Then the server closes TCP first (§7.1.1): tungstenite, as a client,
    // only reports the end when it reads EOF, and so does the raw socket.
    ts_expect_closed(&mut ws);
    expect_fin(ws.get_mut());
    drop(ws);

    // The same with a raw client, with a code from the private range and
    // with an empty Close (echoed empty).
    let mut raw = Ws::connect(server.addr);
    raw.send_raw(&client_frame(true, CLOSE, b"\x0f\xa0private"))
        .unwrap();
    assert_eq!(raw.read_server_frame(IO_TIMEOUT).close_code(), 4000);
    raw.expect_fin(IO_TIMEOUT);
    // Closing our side lets the server's reader, which reads until our FIN
    // (so that unread input cannot turn its close into a reset), finish.
    drop(raw);

    let mut raw = Ws::connect(server.addr);
    raw.send_raw(&client_frame(true, CLOSE, b"")).unwrap();
    let echo = raw.read_server_frame(IO_TIMEOUT);
    assert_eq!((echo.opcode, echo.payload.len()), (CLOSE, 0));
    raw.expect_fin(IO_TIMEOUT);
    drop(raw);
    server.wait_idle();
}

#[test]
fn a_close_initiated_by_the_server() {
    // Echo the first message, then close with flush: the echo goes out
    // before the Close, and the reader waits for the client's answer.
    let (app, ended) = fn_app(|reader, sender| {
        let first = match reader.next_message() {
            Ok(message) => message,
            Err(closed) => return closed,
        };
        sender.send_message(&first).unwrap();
        sender.close(CloseCode::NORMAL, "bye", true);
        loop {
            if let Err(closed) = reader.next_message() {
                return closed;
            }
        }
    });
    let server = InProcessServer::start(large_config(Role::Server), app);
    let mut ws = ts_connect(server.addr);
    ws.send(TsMessage::text("hello")).unwrap();
    assert_eq!(ts_text(&mut ws), "hello");
    assert_eq!(ts_close(&mut ws), (1000, "bye".to_owned()));
    // tungstenite answers the Close on its next read; the server then
    // closes TCP and tungstenite reports a clean end.
    ts_expect_closed(&mut ws);
    expect_fin(ws.get_mut());
    drop(ws);

    let closed = ended.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(closed.code, CloseCode::NORMAL);
    assert!(!closed.by_peer, "{closed:?}");
    server.wait_idle();
}

#[test]
fn a_server_close_that_is_never_answered_ends_after_the_close_timeout() {
    let (app, ended) = fn_app(|reader, sender| {
        sender.close(CloseCode::GOING_AWAY, "shutting down", true);
        loop {
            if let Err(closed) = reader.next_message() {
                return closed;
            }
        }
    });
    let mut config = large_config(Role::Server);
    config.close_timeout = Duration::from_millis(500);
    let server = InProcessServer::start(config, app);
    let mut raw = Ws::connect(server.addr);
    let close = raw.read_server_frame(IO_TIMEOUT);
    assert_eq!(close.close_code(), 1001);
    assert_eq!(&close.payload[2..], b"shutting down");
    // We never answer: the server stops waiting and closes TCP.
    let start = Instant::now();
    raw.expect_fin(IO_TIMEOUT);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "EOF after {took:?}");
    drop(raw);
    ended.recv_timeout(IO_TIMEOUT).unwrap();
    server.wait_idle();
}

#[test]
fn a_simultaneous_close_during_a_large_send() {
    // On "go" the server queues two 16 MiB messages and then its Close. The
    // client sends its own Close without waiting for the server's, so the
    // two Closes cross (§7.1.3) while the server is still writing:
    // - "early": the client's Close comes right behind "go", before the
    //   server's writer has taken its Close from the queue;
    // - "late": the client reads the first message and only then sends its
    //   Close, while the server is writing the second message and its Close
    //   in one batch.
    // Neither side answers the other's Close with a second one, as both
    // have sent one. The client must get all the data, the server's Close,
    // and then the end of TCP, promptly.
    let (app, ended) = fn_app(|reader, sender| {
        match reader.next_message() {
            Ok(Message::Text(go)) if go == "go" => {}
            Ok(other) => panic!("unexpected {other:?}"),
            Err(closed) => return closed,
        }
        let big = Message::Binary(big_binary());
        sender.send_message(&big).unwrap();
        sender.send_message(&big).unwrap();
        sender.close(CloseCode::NORMAL, "bye", true);
        loop {
            if let Err(closed) = reader.next_message() {
                return closed;
            }
        }
    });
    let server = InProcessServer::start(large_config(Role::Server), app);
    let big = big_binary();
    for (round, early) in [(0, true), (1, false), (2, true), (3, false)] {
        let mut raw = Ws::connect(server.addr);
        let close = client_frame(true, CLOSE, b"\x03\xe9going");
        raw.send_raw(&client_frame(true, TEXT, b"go")).unwrap();
        if early {
            raw.send_raw(&close).unwrap();
        }
        // Let the server's writer block on a full socket buffer.
        thread::sleep(Duration::from_millis(200));
        for message in 0..2 {
            let data = raw.read_server_frame(IO_TIMEOUT);
            assert_eq!(data.opcode, BINARY, "round {round}, message {message}");
            assert!(
                data.fin && data.payload == big,
                "round {round}: data altered"
            );
            if !early && message == 0 {
                raw.send_raw(&close).unwrap();
                thread::sleep(Duration::from_millis(200));
            }
        }
        let start = Instant::now();
        let close = raw.read_server_frame(IO_TIMEOUT);
        assert_eq!(close.close_code(), 1000, "round {round}");
        raw.expect_fin(IO_TIMEOUT);
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "round {round}: EOF after {took:?}"
        );
        drop(raw);
        let closed = ended.recv_timeout(IO_TIMEOUT).unwrap();
        assert_eq!(closed.code, CloseCode(1001), "round {round}");
        server.wait_idle();
    }
}
