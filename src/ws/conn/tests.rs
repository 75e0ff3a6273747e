//! The connection layer over real loopback sockets: the wire-order rule,
//! the writer started on demand, and the closing handshake's edge cases.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use super::closing::CloseKind;
use super::*;
use crate::ws::close::CloseCode;
use crate::ws::frame::{OpCode, Role, close_payload};
use crate::ws::message::Message;

fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (server, client)
}

fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    let len = match head[1] {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).unwrap();
            usize::from(u16::from_be_bytes(b))
        }
        n => usize::from(n),
    };
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).unwrap();
    (head[0], payload)
}

fn pong(payload: &[u8]) -> Outgoing {
    Outgoing::Owned(encode(Role::Server, OpCode::Pong, payload))
}

/// The rest of a frame a sender started goes out before control frames
/// that were queued while it waited; a Pong first would be read as part
/// of the frame's payload.
#[test]
fn a_partly_sent_frame_is_finished_before_queued_control_frames() {
    let (server, mut client) = pair();
    let (_reader, sender) = start(server, &[], Config::new(Role::Server), None).unwrap();
    let frame = encode(Role::Server, OpCode::Binary, &[7; 300]);
    {
        // Stand in for a sender whose send the socket took only in part,
        // while a Pong is queued behind it.
        let mut wire = sender.link.wire();
        (&*sender.stream).write_all(&frame[..100]).unwrap();
        wire.partial = Some(Outgoing::Owned(frame.clone()).advance(100));
        sender.queue_control(pong(b"p"), true).unwrap();
        sender.wake_writer().unwrap();
    }
    assert_eq!(read_frame(&mut client), (0x82, vec![7; 300]));
    assert_eq!(read_frame(&mut client), (0x8A, b"p".to_vec()));
}

/// Data does not skip ahead of a queued control frame, nor of a
/// partly sent frame.
#[test]
fn data_waits_behind_a_pending_pong() {
    let (server, mut client) = pair();
    let (_reader, sender) = start(server, &[], Config::new(Role::Server), None).unwrap();
    let text = |t: &[u8]| Outgoing::Owned(encode(Role::Server, OpCode::Text, t));
    {
        // Holding the wire keeps the writer from sending the Pong yet;
        // the decision is the one a sender makes once it holds it.
        let mut wire = sender.link.wire();
        sender.queue_control(pong(b"p"), true).unwrap();
        let queued = sender.write_locked(&mut wire, text(b"after")).unwrap();
        sender
            .data
            .try_send(queued.expect("sent ahead of the Pong"))
            .unwrap();
    }
    assert_eq!(read_frame(&mut client), (0x8A, b"p".to_vec()));
    assert_eq!(read_frame(&mut client), (0x81, b"after".to_vec()));
    {
        let mut wire = sender.link.wire();
        wire.partial = Some(text(b"partial"));
        let queued = sender.write_locked(&mut wire, text(b"later")).unwrap();
        assert!(queued.is_some(), "sent ahead of a partial frame");
        sender.data.try_send(queued.unwrap()).unwrap();
        sender.wake_writer().unwrap();
    }
    assert_eq!(read_frame(&mut client), (0x81, b"partial".to_vec()));
    assert_eq!(read_frame(&mut client), (0x81, b"later".to_vec()));
    {
        let mut wire = sender.link.wire();
        assert!(
            sender
                .write_locked(&mut wire, text(b"idle"))
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(read_frame(&mut client), (0x81, b"idle".to_vec()));
}

/// With the writer idle and nothing queued, the frame goes out from the
/// sending thread itself.
#[test]
fn an_idle_connection_is_written_directly() {
    let (server, mut client) = pair();
    let (_reader, sender) = start(server, &[], Config::new(Role::Server), None).unwrap();
    let frame = encode(Role::Server, OpCode::Text, b"now");
    assert!(matches!(sender.write_now(Outgoing::Owned(frame)), Ok(None)));
    assert_eq!(read_frame(&mut client), (0x81, b"now".to_vec()));
}

/// A connection whose peer keeps up never starts its writer thread:
/// data and pings alike go out from the sending thread.
#[test]
fn a_connection_that_keeps_up_has_no_writer_thread() {
    let (server, mut client) = pair();
    let (_reader, sender) = start(server, &[], Config::new(Role::Server), None).unwrap();
    for i in 0..100u8 {
        sender.send_message(&Message::Binary(vec![i; 100])).unwrap();
        assert_eq!(read_frame(&mut client), (0x82, vec![i; 100]));
    }
    sender.ping(b"still there?").unwrap();
    assert_eq!(read_frame(&mut client), (0x89, b"still there?".to_vec()));
    assert!(!sender.writer.is_started());
}

/// What the socket does not take starts the writer, which sends it all,
/// in order, once the peer reads again.
#[test]
fn a_peer_that_falls_behind_gets_a_writer() {
    const FRAMES: usize = 128; // 8 MiB: more than loopback buffers hold
    let (server, mut client) = pair();
    let (_reader, sender) = start(server, &[], Config::new(Role::Server), None).unwrap();
    let late_reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        (0..FRAMES)
            .map(|_| read_frame_64k(&mut client))
            .collect::<Vec<_>>()
    });
    for i in 0..FRAMES {
        let payload = [(i as u32).to_be_bytes().as_slice(), &[0; 65532]].concat();
        sender.send_message(&Message::Binary(payload)).unwrap();
    }
    assert!(sender.writer.is_started());
    let got = late_reader.join().unwrap();
    for (i, (head, payload)) in got.into_iter().enumerate() {
        assert_eq!(head, 0x82);
        assert_eq!(payload.len(), 65536);
        assert_eq!(
            payload[..4],
            (i as u32).to_be_bytes(),
            "frame {i} out of order"
        );
    }
}

/// Read until the server ends TCP; what came after the last frame.
fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    rest
}

/// A peer that closes first is answered from the reader's own thread:
/// the echo, then the server ends TCP (§7.1.1), and no writer thread
/// is started for that one frame.
#[test]
fn a_close_from_the_peer_is_answered_without_a_writer_thread() {
    let (server, mut client) = pair();
    let (mut reader, sender) = start(server, &[], Config::new(Role::Server), None).unwrap();
    let reading = std::thread::spawn(move || reader.next_message());
    client
        .write_all(&encode(
            Role::Client,
            OpCode::Close,
            &close_payload(1000, "bye"),
        ))
        .unwrap();
    assert_eq!(read_frame(&mut client), (0x88, close_payload(1000, "")));
    assert_eq!(read_to_eof(&mut client), b"");
    drop(client);
    let closed = reading.join().unwrap().unwrap_err();
    assert_eq!((closed.code, closed.by_peer), (CloseCode::NORMAL, true));
    assert!(!sender.writer.is_started());
    assert_eq!(
        sender.try_send(Outgoing::Owned(encode(Role::Server, OpCode::Text, b"late"))),
        Err(TrySend::Disconnected),
        "nothing may follow our Close"
    );
    sender.close(CloseCode::NORMAL, "", true);
    assert!(!sender.writer.is_started());
}

/// A protocol error is answered the same way: 1002, then TCP ends.
#[test]
fn a_protocol_error_is_answered_without_a_writer_thread() {
    let (server, mut client) = pair();
    let (mut reader, sender) = start(server, &[], Config::new(Role::Server), None).unwrap();
    let reading = std::thread::spawn(move || reader.next_message());
    // An unmasked frame from a client (§5.1).
    client.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
    let (head, payload) = read_frame(&mut client);
    assert_eq!((head, &payload[..2]), (0x88, &1002u16.to_be_bytes()[..]));
    assert_eq!(read_to_eof(&mut client), b"");
    drop(client);
    let closed = reading.join().unwrap().unwrap_err();
    assert_eq!(
        (closed.code, closed.by_peer),
        (CloseCode::PROTOCOL_ERROR, false)
    );
    assert!(!sender.writer.is_started());
}

/// With data still queued for a peer that fell behind, the reply waits
/// its turn behind it (the writer sends it): nothing queued is lost.
#[test]
fn a_close_from_a_peer_that_fell_behind_follows_what_was_queued() {
    const FRAMES: usize = 128; // 8 MiB: more than loopback buffers hold
    let (server, mut client) = pair();
    let (mut reader, sender) = start(server, &[], Config::new(Role::Server), None).unwrap();
    for i in 0..FRAMES {
        let payload = [(i as u32).to_be_bytes().as_slice(), &[0; 65532]].concat();
        sender.send_message(&Message::Binary(payload)).unwrap();
    }
    assert!(sender.data.queued() > 0, "frames wait in the queue");
    let reading = std::thread::spawn(move || reader.next_message());
    client
        .write_all(&encode(
            Role::Client,
            OpCode::Close,
            &close_payload(1000, ""),
        ))
        .unwrap();
    for i in 0..FRAMES {
        let (head, payload) = read_frame_64k(&mut client);
        assert_eq!((head, &payload[..4]), (0x82, &(i as u32).to_be_bytes()[..]));
    }
    assert_eq!(read_frame(&mut client), (0x88, close_payload(1000, "")));
    assert_eq!(read_to_eof(&mut client), b"");
    drop(client);
    assert!(reading.join().unwrap().unwrap_err().by_peer);
}

/// When the socket took only part of a Close the reader wrote, the
/// writer sends the rest and nothing after it — not data queued
/// meanwhile — then ends TCP.
#[test]
fn the_rest_of_a_partly_written_close_is_the_last_thing_sent() {
    let (server, mut client) = pair();
    let (_reader, sender) = start(server, &[], Config::new(Role::Server), None).unwrap();
    let close = encode(Role::Server, OpCode::Close, &close_payload(1000, "done"));
    {
        // Stand in for `close_now` after a partial send, with a frame a
        // sender queued while the reader held the wire.
        let mut wire = sender.link.wire();
        (&*sender.stream).write_all(&close[..3]).unwrap();
        sender.link.handshake.send(&close_payload(1000, "done"));
        wire.partial = Some(Outgoing::Owned(close.clone()).advance(3));
        let late = Outgoing::Owned(encode(Role::Server, OpCode::Text, b"late"));
        sender.data.try_send(late).unwrap();
        sender.writer.start();
        wire.then_end = Some(CloseKind::Reply);
        sender.wake_writer().unwrap();
    }
    assert_eq!(read_frame(&mut client), (0x88, close_payload(1000, "done")));
    assert_eq!(read_to_eof(&mut client), b"", "nothing after our Close");
}

fn read_frame_64k(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 10];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(head[1], 127, "a 64-bit length");
    let len = u64::from_be_bytes(head[2..].try_into().unwrap()) as usize;
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).unwrap();
    (head[0], payload)
}
