//! Our server with a tungstenite client: data messages of every size and
//! shape come back as they were sent, and Pings are answered.

use tungstenite::Message as TsMessage;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode as TsOpCode};

use crate::support::InProcessServer;
use crate::ts::{
    describe, ts_binary, ts_close, ts_close_cleanly, ts_connect, ts_expect_closed, ts_text,
};
use crate::{BIG, big_binary, big_text};

#[test]
fn a_text_and_binary_echo() {
    let server = InProcessServer::echo();
    let mut ws = ts_connect(server.addr);

    ws.send(TsMessage::text("hello, wörld ✓ 𝄞")).unwrap();
    assert_eq!(ts_text(&mut ws), "hello, wörld ✓ 𝄞");
    ws.send(TsMessage::binary(vec![0u8, 1, 2, 0x80, 0xff]))
        .unwrap();
    assert_eq!(ts_binary(&mut ws), [0u8, 1, 2, 0x80, 0xff]);

    // Empty messages are messages too.
    ws.send(TsMessage::text("")).unwrap();
    assert_eq!(ts_text(&mut ws), "");
    ws.send(TsMessage::binary(Vec::new())).unwrap();
    assert_eq!(ts_binary(&mut ws), Vec::<u8>::new());

    // Pipelined messages of assorted sizes (each length encoding of §5.2)
    // come back complete and in order.
    let sizes = [1usize, 125, 126, 127, 65_535, 65_536, 100_000];
    for (i, &n) in sizes.iter().enumerate() {
        ws.write(TsMessage::binary(vec![i as u8; n])).unwrap();
        ws.write(TsMessage::text("é".repeat(n / 2))).unwrap();
    }
    ws.flush().unwrap();
    for (i, &n) in sizes.iter().enumerate() {
        assert_eq!(ts_binary(&mut ws), vec![i as u8; n]);
        assert_eq!(ts_text(&mut ws), "é".repeat(n / 2));
    }

    ts_close_cleanly(&mut ws);
    drop(ws);
    server.wait_idle();
}

#[test]
fn a_fragmented_messages_echo() {
    let server = InProcessServer::echo();
    let mut ws = ts_connect(server.addr);

    // A text message in three fragments with a Ping between them (§5.4:
    // control frames may be injected in the middle of a message), split
    // inside a multi-byte character: "€" is e2 82 ac.
    let frames = [
        Frame::message(b"frag \xe2".to_vec(), TsOpCode::Data(Data::Text), false),
        Frame::ping(b"mid".to_vec()),
        Frame::message(b"\x82".to_vec(), TsOpCode::Data(Data::Continue), false),
        Frame::message(b"\xac ok".to_vec(), TsOpCode::Data(Data::Continue), true),
    ];
    for frame in frames {
        ws.write(TsMessage::Frame(frame)).unwrap();
    }
    ws.flush().unwrap();
    // The Pong is sent as soon as the Ping is read, before the message ends.
    match ws.read().unwrap() {
        TsMessage::Pong(payload) => assert_eq!(&payload[..], b"mid"),
        other => panic!("expected the pong first, got {}", describe(&other)),
    }
    assert_eq!(ts_text(&mut ws), "frag € ok");

    // A binary message whose first and last fragments are empty.
    let frames = [
        Frame::message(Vec::new(), TsOpCode::Data(Data::Binary), false),
        Frame::message(vec![1u8; 3000], TsOpCode::Data(Data::Continue), false),
        Frame::message(vec![2u8; 70_000], TsOpCode::Data(Data::Continue), false),
        Frame::message(Vec::new(), TsOpCode::Data(Data::Continue), true),
    ];
    for frame in frames {
        ws.write(TsMessage::Frame(frame)).unwrap();
    }
    ws.flush().unwrap();
    let mut expected = vec![1u8; 3000];
    expected.extend(vec![2u8; 70_000]);
    assert_eq!(ts_binary(&mut ws), expected);

    ts_close_cleanly(&mut ws);
    drop(ws);
    server.wait_idle();
}

#[test]
fn a_16_mib_messages_echo_intact() {
    let server = InProcessServer::echo();
    let mut ws = ts_connect(server.addr);

    let binary = big_binary();
    ws.send(TsMessage::binary(binary.clone())).unwrap();
    let echoed = ts_binary(&mut ws);
    assert!(echoed == binary, "16 MiB binary came back altered");

    let text = big_text();
    ws.send(TsMessage::text(text.clone())).unwrap();
    let echoed = ts_text(&mut ws);
    assert!(echoed == text, "16 MiB text came back altered");

    // The same 16 MiB, fragmented in 1 MiB pieces.
    let pieces: Vec<&[u8]> = binary.chunks(1 << 20).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let op = if i == 0 { Data::Binary } else { Data::Continue };
        let fin = i + 1 == pieces.len();
        ws.write(TsMessage::Frame(Frame::message(
            piece.to_vec(),
            TsOpCode::Data(op),
            fin,
        )))
        .unwrap();
    }
    ws.flush().unwrap();
    assert!(ts_binary(&mut ws) == binary, "fragmented 16 MiB altered");

    ts_close_cleanly(&mut ws);
    drop(ws);
    server.wait_idle();
}

#[test]
fn a_message_one_byte_over_the_large_limit_is_1009() {
    let server = InProcessServer::echo();
    let mut ws = ts_connect(server.addr);
    ws.send(TsMessage::binary(vec![7u8; BIG + 1])).unwrap();
    assert_eq!(ts_close(&mut ws).0, 1009);
    ts_expect_closed(&mut ws);
    drop(ws);
    server.wait_idle();
}

#[test]
fn a_ping_gets_a_pong_with_the_same_payload() {
    let server = InProcessServer::echo();
    let mut ws = ts_connect(server.addr);
    let longest: Vec<u8> = (0..125).collect();
    for payload in [b"abc".to_vec(), Vec::new(), longest] {
        ws.send(TsMessage::Ping(payload.clone().into())).unwrap();
        match ws.read().unwrap() {
            TsMessage::Pong(pong) => assert_eq!(pong.to_vec(), payload),
            other => panic!("expected a pong, got {}", describe(&other)),
        }
    }
    // And the connection still carries data.
    ws.send(TsMessage::text("after pings")).unwrap();
    assert_eq!(ts_text(&mut ws), "after pings");
    ts_close_cleanly(&mut ws);
    drop(ws);
    server.wait_idle();
}
