//! permessage-deflate through the real decoder: what is compressed comes
//! back intact however the bytes are split, and every rule of RFC 7692 §6
//! and §7.2.2 closes with its code.

use std::sync::Arc;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

use super::compress::{Deflater, SYNC_TAIL, deflate_into};
use super::inflate::Inflate;
use super::pool::Pools;
use super::*;
use crate::ws::extension::{Encoder, Extension};
use crate::ws::frame::{OpCode, RSV1, encode_frame_rsv};
use crate::ws::{Decoder, Event, Limits, Message, ProtocolError, Role};

const KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

/// Raw DEFLATE of `payload` with a sync flush, tail removed, with a fresh
/// compressor of `window` bits: what a conforming peer sends.
fn deflated(payload: &[u8], window: u8) -> Vec<u8> {
    let mut c = Compress::new_with_window_bits(Compression::default(), false, window);
    let mut out = Vec::with_capacity(payload.len() + 64);
    loop {
        out.reserve(64 + payload.len() / 2);
        let consumed = usize::try_from(c.total_in()).unwrap();
        c.compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync)
            .unwrap();
        if usize::try_from(c.total_in()).unwrap() == payload.len() && out.ends_with(&SYNC_TAIL) {
            break;
        }
    }
    out.truncate(out.len() - 4);
    out
}

/// A client's frames of one compressed message: `pieces` frames (masked),
/// RSV1 on the first only.
fn client_frames(opcode: OpCode, compressed: &[u8], pieces: usize) -> Vec<u8> {
    let size = compressed.len().div_ceil(pieces.max(1)).max(1);
    let chunks: Vec<&[u8]> = if compressed.is_empty() {
        vec![&[]]
    } else {
        compressed.chunks(size).collect()
    };
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let (op, rsv) = if i == 0 {
            (opcode, RSV1)
        } else {
            (OpCode::Continuation, 0)
        };
        encode_frame_rsv(&mut out, i + 1 == chunks.len(), rsv, op, chunk, Some(KEY));
    }
    out
}

fn server_decoder(limits: Limits, pools: &Arc<Pools>) -> Decoder {
    Decoder::with_extension(
        Role::Server,
        limits,
        Some(Box::new(Inflate::per_message(Arc::clone(pools))) as Box<dyn Extension>),
    )
}

/// Feed `wire` in pieces cut at `cuts`, collecting events until the
/// first error.
fn feed(d: &mut Decoder, wire: &[u8], cuts: &[usize]) -> (Vec<Event>, Option<ProtocolError>) {
    let mut events = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut bounds = cuts.to_vec();
    bounds.push(wire.len());
    let mut from = 0;
    for to in bounds {
        buf.extend_from_slice(&wire[from..to]);
        from = to;
        loop {
            match d.decode(&mut buf) {
                Ok((used, event)) => {
                    buf.drain(..used);
                    match event {
                        Some(event) => events.push(event),
                        None => break,
                    }
                }
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

fn text(s: &str) -> Event {
    Event::Message(Message::Text(s.to_owned()))
}

#[test]
fn a_compressed_message_inflates_intact_split_at_every_byte() {
    let pools = Arc::new(Pools::default());
    let message = "héllo wörld, hello world, hello world! ".repeat(8);
    let wire = client_frames(OpCode::Text, &deflated(message.as_bytes(), 15), 3);
    for cut in 0..=wire.len() {
        let mut d = server_decoder(Limits::CHAT, &pools);
        let (events, error) = feed(&mut d, &wire, &[cut]);
        assert_eq!(
            (events, error),
            (vec![text(&message)], None),
            "cut at {cut}"
        );
    }
    // Every decompressor went back to the pool: an idle connection holds none.
    assert_eq!(pools.idle().0, 1);
}

#[test]
fn every_window_size_round_trips_through_the_pools() {
    let pools = Arc::new(Pools::default());
    // Repeats 200 bytes apart: a 9-bit window reaches them (zlib matches
    // up to the window less 262 bytes back).
    let chunk: Vec<u8> = (0..200u32).map(|i| (i * 7 % 251) as u8).collect();
    let payload = chunk.repeat(20);
    for window in 9..=15u8 {
        let deflater = Deflater {
            pools: Arc::clone(&pools),
            window,
            threshold: 1,
        };
        // Twice: the second compressor is a reset one from the pool, and
        // must keep its window size.
        for _ in 0..2 {
            let mut out = Vec::new();
            assert_eq!(
                deflater.encode(OpCode::Binary, &payload, &mut out),
                Some(RSV1)
            );
            assert!(
                out.len() < payload.len() / 2,
                "window {window}: {} bytes",
                out.len()
            );
            // A decompressor with exactly that window reads it (it would
            // fail on a distance beyond its window).
            out.extend_from_slice(&SYNC_TAIL);
            let mut d = Decompress::new_with_window_bits(false, window.max(9));
            let mut back = Vec::with_capacity(payload.len() + 16);
            d.decompress_vec(&out, &mut back, FlushDecompress::Sync)
                .unwrap();
            assert_eq!(back, payload, "window {window}");
        }
    }
}

#[test]
fn small_and_incompressible_messages_go_as_they_are() {
    let deflater = Deflater {
        pools: Arc::default(),
        window: 15,
        threshold: 100,
    };
    let mut out = vec![7];
    assert_eq!(deflater.encode(OpCode::Text, &[b'a'; 99], &mut out), None);
    let mut noise = vec![0u8; 4096];
    crate::ws::mask::MaskSource::new().fill(&mut noise);
    assert_eq!(deflater.encode(OpCode::Binary, &noise, &mut out), None);
    assert_eq!(out, [7], "out is left as it was");
    assert_eq!(
        deflater.encode(OpCode::Text, &[b'a'; 100], &mut out),
        Some(RSV1)
    );
    assert!(out.len() < 20);
    // Exactly at the edge: compressed output may never exceed the payload.
    let mut c = Compress::new_with_window_bits(Compression::default(), false, 15);
    let mut edge = Vec::new();
    assert!(!deflate_into(&mut c, b"ab", &mut edge));
    assert!(edge.is_empty());
}

#[test]
fn rsv1_on_a_continuation_or_control_frame_is_1002() {
    let pools = Arc::new(Pools::default());
    let compressed = deflated(b"hello hello hello", 15);
    let mut wire = Vec::new();
    encode_frame_rsv(
        &mut wire,
        false,
        RSV1,
        OpCode::Text,
        &compressed[..3],
        Some(KEY),
    );
    encode_frame_rsv(
        &mut wire,
        true,
        RSV1,
        OpCode::Continuation,
        &compressed[3..],
        Some(KEY),
    );
    let mut ping = Vec::new();
    encode_frame_rsv(&mut ping, true, RSV1, OpCode::Ping, b"", Some(KEY));
    for wire in [wire, ping] {
        for cut in 0..=wire.len() {
            let (_, error) = feed(&mut server_decoder(Limits::CHAT, &pools), &wire, &[cut]);
            let error = error.expect("refused");
            assert_eq!(error, ProtocolError::MisplacedExtensionBits);
            assert_eq!(error.close_code().0, 1002);
        }
    }
    // Without the extension negotiated, RSV1 is 1002 from the first byte.
    let wire = client_frames(OpCode::Text, &compressed, 1);
    let (_, error) = feed(&mut Decoder::new(Role::Server, Limits::CHAT), &wire, &[1]);
    assert_eq!(error.unwrap().close_code().0, 1002);
}

#[test]
fn a_stream_that_cannot_be_inflated_is_1007() {
    let pools = Arc::new(Pools::default());
    // 0xff: a block of the reserved type 3; trailing bytes after a final block.
    let mut after_final = deflated(b"hello", 15);
    let mut c = Compress::new_with_window_bits(Compression::default(), false, 15);
    after_final.clear();
    after_final.reserve(64);
    c.compress_vec(b"hello", &mut after_final, FlushCompress::Finish)
        .unwrap();
    after_final.extend_from_slice(b"\x00\x00\xff\xffmore");
    for bad in [vec![0xff, 0xff, 0xff], after_final] {
        let wire = client_frames(OpCode::Binary, &bad, 2);
        for cut in 0..=wire.len() {
            let (events, error) = feed(&mut server_decoder(Limits::CHAT, &pools), &wire, &[cut]);
            assert!(events.is_empty());
            assert_eq!(error.map(|e| e.close_code().0), Some(1007), "cut at {cut}");
        }
    }
}

#[test]
fn a_final_block_alone_ends_the_message_cleanly() {
    let pools = Arc::new(Pools::default());
    let mut c = Compress::new_with_window_bits(Compression::default(), false, 15);
    let mut finished = Vec::with_capacity(64);
    c.compress_vec(b"final", &mut finished, FlushCompress::Finish)
        .unwrap();
    let mut wire = client_frames(OpCode::Text, &finished, 1);
    wire.extend(client_frames(OpCode::Text, &deflated(b"next one", 15), 1));
    let (events, error) = feed(&mut server_decoder(Limits::CHAT, &pools), &wire, &[]);
    assert_eq!(
        (events, error),
        (vec![text("final"), text("next one")], None)
    );
}

#[test]
fn the_limit_is_on_the_inflated_size_and_a_bomb_stops_at_it() {
    let pools = Arc::new(Pools::default());
    let limits = Limits {
        max_message: 64 * 1024,
        ..Limits::CHAT
    };
    // 64 MiB of zeros deflate to about 64 KiB: far under the frame limit.
    let zeros = vec![0u8; 64 * 1024 * 1024];
    let bomb = deflated(&zeros, 15);
    assert!(bomb.len() < limits.max_frame, "{} bytes", bomb.len());
    let wire = client_frames(OpCode::Binary, &bomb, 1);
    let (events, error) = feed(&mut server_decoder(limits, &pools), &wire, &[]);
    assert!(events.is_empty());
    assert_eq!(error, Some(ProtocolError::MessageTooLarge));
    assert_eq!(ProtocolError::MessageTooLarge.close_code().0, 1009);
    // Exactly the limit passes.
    let wire = client_frames(OpCode::Binary, &deflated(&zeros[..64 * 1024], 15), 4);
    let (events, error) = feed(&mut server_decoder(limits, &pools), &wire, &[]);
    assert_eq!(error, None);
    assert_eq!(
        events,
        [Event::Message(Message::Binary(vec![0; 64 * 1024]))]
    );
}

#[test]
fn utf8_is_checked_on_the_inflated_bytes() {
    let pools = Arc::new(Pools::default());
    // A character cut by the 16 KiB inflate pieces is still one character.
    let mut valid = "a".repeat(16 * 1024 - 1);
    valid.push_str("€ and more");
    let wire = client_frames(OpCode::Text, &deflated(valid.as_bytes(), 15), 2);
    let (events, error) = feed(&mut server_decoder(Limits::CHAT, &pools), &wire, &[]);
    assert_eq!((events, error), (vec![text(&valid)], None));
    // Invalid after inflating (the wire bytes themselves say nothing).
    let mut invalid = b"ok so far ".repeat(50);
    invalid.extend_from_slice(&[0xc3, 0x28]);
    let wire = client_frames(OpCode::Text, &deflated(&invalid, 15), 2);
    for cut in (0..=wire.len()).step_by(7) {
        let (events, error) = feed(&mut server_decoder(Limits::CHAT, &pools), &wire, &[cut]);
        assert!(events.is_empty());
        assert_eq!(error, Some(ProtocolError::InvalidUtf8), "cut at {cut}");
        assert_eq!(ProtocolError::InvalidUtf8.close_code().0, 1007);
    }
}

#[test]
fn uncompressed_messages_pass_beside_compressed_ones() {
    let pools = Arc::new(Pools::default());
    let mut wire = client_frames(OpCode::Text, &deflated(b"squeezed squeezed", 15), 1);
    encode_frame_rsv(&mut wire, true, 0, OpCode::Text, b"plain", Some(KEY));
    encode_frame_rsv(&mut wire, true, 0, OpCode::Ping, b"p", Some(KEY));
    wire.extend(client_frames(OpCode::Text, &deflated(b"", 15), 1));
    let (events, error) = feed(&mut server_decoder(Limits::CHAT, &pools), &wire, &[5, 9]);
    assert_eq!(error, None);
    assert_eq!(
        events,
        [
            text("squeezed squeezed"),
            text("plain"),
            Event::Ping(b"p".to_vec()),
            text("")
        ]
    );
}

#[test]
fn a_client_keeps_its_context_when_the_server_keeps_its_own() {
    // A server with context takeover: one compressor for both messages, the
    // second referring back into the first.
    let mut c = Compress::new_with_window_bits(Compression::default(), false, 15);
    let mut frames = Vec::new();
    for message in [
        &b"the same words again and again"[..],
        b"the same words again and again",
    ] {
        let mut out = Vec::with_capacity(256);
        c.compress_vec(message, &mut out, FlushCompress::Sync)
            .unwrap();
        out.truncate(out.len() - 4);
        encode_frame_rsv(&mut frames, true, RSV1, OpCode::Text, &out, None);
    }
    let response = handshake_response("permessage-deflate");
    let in_use = client_in_use(&response, 1).unwrap();
    let mut d = Decoder::with_extension(Role::Client, Limits::CHAT, Some(in_use.receive));
    let (events, error) = feed(&mut d, &frames, &[]);
    let words = "the same words again and again";
    assert_eq!((events, error), (vec![text(words), text(words)], None));
    // Told the server compresses each message on its own, a client
    // inflates each afresh: the back reference is then an error.
    let response = handshake_response("permessage-deflate; server_no_context_takeover");
    let in_use = client_in_use(&response, 1).unwrap();
    let mut d = Decoder::with_extension(Role::Client, Limits::CHAT, Some(in_use.receive));
    let (events, error) = feed(&mut d, &frames, &[]);
    assert_eq!(events, [text(words)]);
    assert_eq!(error.map(|e| e.close_code().0), Some(1007));
}

#[test]
fn a_client_sends_uncompressed_when_its_window_would_be_8() {
    let in_use = client_in_use(
        &handshake_response("permessage-deflate; client_max_window_bits=8"),
        1,
    )
    .unwrap();
    assert!(in_use.send.is_none());
    let in_use = client_in_use(
        &handshake_response("permessage-deflate; client_max_window_bits=9"),
        1,
    )
    .unwrap();
    assert_eq!(in_use.send.unwrap().shared_key(), Some(9));
    assert!(client_in_use(&handshake_response("permessage-deflate; x=1"), 1).is_err());
}

#[test]
fn a_server_negotiates_and_compresses_what_it_sends() {
    let deflate = Deflate::new(16);
    let offers = [handshake_response(
        "permessage-deflate; client_max_window_bits",
    )];
    let negotiated = deflate.negotiate(&offers).unwrap();
    assert_eq!(
        negotiated.response.to_string(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    let send = negotiated.in_use.send.unwrap();
    let mut out = Vec::new();
    let message = "a chat message, a chat message, a chat message";
    assert_eq!(
        send.encode(OpCode::Text, message.as_bytes(), &mut out),
        Some(RSV1)
    );
    let mut frames = Vec::new();
    encode_frame_rsv(&mut frames, true, RSV1, OpCode::Text, &out, None);
    let in_use = client_in_use(&negotiated.response, 1).unwrap();
    let mut d = Decoder::with_extension(Role::Client, Limits::CHAT, Some(in_use.receive));
    assert_eq!(feed(&mut d, &frames, &[]), (vec![text(message)], None));
    assert!(
        deflate
            .negotiate(&[handshake_response(
                "permessage-deflate; server_max_window_bits=8"
            )])
            .is_none()
    );
    assert_eq!(deflate.idle_contexts(), (0, 1));
}

fn handshake_response(header: &str) -> crate::ws::handshake::ExtensionOffer {
    let mut out = Vec::new();
    crate::ws::handshake::parse_extensions(header.as_bytes(), &mut out).unwrap();
    out.remove(0)
}
