//! Our client with a tungstenite echo server: messages of every shape both
//! ways, and the closing handshake started from either side.

use std::thread;
use std::time::{Duration, Instant};

use wschat::ws::{CloseCode, Closed, Message};

use crate::ts::ts_echo_server;
use crate::{big_binary, big_text, join, next, our_connect};

#[test]
fn b_client_messages_roundtrip() {
    let (addr, server) = ts_echo_server();
    let (mut reader, sender) = our_connect(addr);

    let messages = [
        Message::Text("hello, wörld ✓ 𝄞".into()),
        Message::Binary(vec![0, 1, 2, 0x80, 0xff]),
        Message::Text(String::new()),
        Message::Binary(Vec::new()),
        Message::Binary(vec![3; 65_536]),
    ];
    for message in &messages {
        sender.send_message(message).unwrap();
        assert_eq!(next(&mut reader).as_ref(), Ok(message));
    }

    // A Ping is answered by tungstenite; our reader reports nothing for the
    // Pong, and the connection goes on.
    sender.ping(b"x").unwrap();
    sender
        .send_message(&Message::Text("after ping".into()))
        .unwrap();
    assert_eq!(next(&mut reader), Ok(Message::Text("after ping".into())));

    // A fragmented message with a Ping among its frames: reassembled, and
    // the Ping answered with its payload.
    sender.send_message(&Message::Text("frag".into())).unwrap();
    assert_eq!(next(&mut reader), Ok(Message::Text("fragmented".into())));

    // Pipelined, in order.
    for i in 0..100u32 {
        sender
            .send_message(&Message::Binary(i.to_be_bytes().to_vec()))
            .unwrap();
    }
    for i in 0..100u32 {
        assert_eq!(
            next(&mut reader),
            Ok(Message::Binary(i.to_be_bytes().to_vec()))
        );
    }

    // 16 MiB each way, binary and text.
    let binary = Message::Binary(big_binary());
    sender.send_message(&binary).unwrap();
    assert!(
        next(&mut reader).as_ref() == Ok(&binary),
        "16 MiB binary altered"
    );
    let text = Message::Text(big_text());
    sender.send_message(&text).unwrap();
    assert!(
        next(&mut reader).as_ref() == Ok(&text),
        "16 MiB text altered"
    );

    sender.close(CloseCode::NORMAL, "done", true);
    let closed = next(&mut reader).unwrap_err();
    assert_eq!(closed.code, CloseCode::NORMAL);

    let log = join(server);
    assert_eq!(log.end, Ok(()));
    assert_eq!(log.pings, [b"x".to_vec()]);
    assert_eq!(log.pongs, [b"in between".to_vec()]);
    assert_eq!(log.messages.len(), messages.len() + 2 + 100 + 2);
}

#[test]
fn b_close_initiated_by_our_client() {
    let (addr, server) = ts_echo_server();
    let (mut reader, sender) = our_connect(addr);

    // With flush, data queued before the Close is sent before it.
    sender.send_message(&Message::Text("last".into())).unwrap();
    sender.close(CloseCode::NORMAL, "done", true);
    // Messages that arrive after our Close are discarded (§5.5.1): the echo
    // of "last" may or may not be reported before the end.
    let closed = loop {
        match next(&mut reader) {
            Ok(Message::Text(text)) => assert_eq!(text, "last"),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(closed) => break closed,
        }
    };
    assert_eq!(closed.code, CloseCode::NORMAL);
    assert!(!closed.by_peer, "{closed:?}");
    // Every later call says the same.
    assert_eq!(reader.next_message(), Err(closed));
    // The connection is over even though `reader` is still alive: sending
    // fails, well before the close timeout (5 s) would free the writer.
    let deadline = Instant::now() + Duration::from_secs(2);
    while sender.send_message(&Message::Text("late".into())).is_ok() {
        assert!(
            Instant::now() < deadline,
            "sending still accepted after the close"
        );
        thread::sleep(Duration::from_millis(5));
    }

    let log = join(server);
    assert_eq!(log.messages, [(true, b"last".to_vec())]);
    assert_eq!(log.closes, [Some((1000, "done".to_owned()))]);
    assert_eq!(log.end, Ok(()));
}

#[test]
fn b_close_initiated_by_the_tungstenite_server() {
    let (addr, server) = ts_echo_server();
    let (mut reader, sender) = our_connect(addr);
    sender
        .send_message(&Message::Text("close:4001:server bye".into()))
        .unwrap();
    let closed = next(&mut reader).unwrap_err();
    assert_eq!(
        closed,
        Closed {
            code: CloseCode(4001),
            reason: "server bye".into(),
            by_peer: true,
            sent: Some(CloseCode(4001)),
            received: Some(CloseCode(4001)),
        }
    );
    let log = join(server);
    // tungstenite got our echo with the same code (§5.5.1) and ended
    // normally: it saw the closing handshake complete.
    assert_eq!(log.closes.len(), 1);
    assert_eq!(log.closes[0].as_ref().map(|c| c.0), Some(4001));
    assert_eq!(log.end, Ok(()));
}
