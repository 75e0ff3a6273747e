//! Every rule of the receiving codec (RFC 6455 §5, §7.4, §8.1, §10.4)
//! through the public API only. Every violation of the shared table
//! (`tests/common/violations.rs`, which the socket tests run too) must give
//! its `ProtocolError` and close code however its bytes are split; the
//! tests after it check what the table cannot say: when an error is
//! reported, and what is accepted at the edges of each rule.

use wschat::ws::close::{CloseFrame, parse_close_payload};
use wschat::ws::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use wschat::ws::mask::apply_mask;
use wschat::ws::{CloseCode, Decoder, Event, Limits, Message, ProtocolError, Role};

// A per-thread allocation counter (tests/common/counting_alloc.rs), so that
// one test can assert that a large *declared* length allocates nothing in
// proportion to it.
#[path = "common/counting_alloc.rs"]
mod counting_alloc;
mod support;
#[path = "common/violations.rs"]
mod violations;

use counting_alloc::peak_allocation;
use support::{BINARY, CLOSE, CONT, MASK, PING, PONG, TEXT, client_frame, hex, server_frame};
use violations::{LIMITS, violation, violations};

// ---------------------------------------------------------------------------
// Helpers.

fn server_decoder() -> Decoder {
    Decoder::new(Role::Server, Limits::CHAT)
}

/// Drives a decoder the way `conn::Reader` does: bytes are appended to a
/// buffer, the decoder is called until it uses nothing more, and whatever
/// it did not use is kept for the next piece.
struct Driver {
    decoder: Decoder,
    buf: Vec<u8>,
    events: Vec<Event>,
}

impl Driver {
    fn new(decoder: Decoder) -> Driver {
        Driver {
            decoder,
            buf: Vec::new(),
            events: Vec::new(),
        }
    }

    fn feed(&mut self, piece: &[u8]) -> Result<(), ProtocolError> {
        self.buf.extend_from_slice(piece);
        let mut start = 0;
        while start < self.buf.len() {
            let (used, event) = self.decoder.decode(&mut self.buf[start..])?;
            assert!(start + used <= self.buf.len(), "used more than given");
            start += used;
            match event {
                Some(event) => self.events.push(event),
                None if used == 0 => break,
                None => {}
            }
        }
        self.buf.drain(..start);
        Ok(())
    }
}

/// Feed `stream` in the given pieces; the events so far, and the first
/// error if there was one.
fn run<'a>(
    decoder: Decoder,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Event>, Result<(), ProtocolError>) {
    let mut driver = Driver::new(decoder);
    let result = pieces.into_iter().try_for_each(|piece| driver.feed(piece));
    if result.is_ok() {
        assert!(driver.buf.is_empty(), "bytes left over: {:x?}", driver.buf);
    }
    (driver.events, result)
}

/// Feed `stream` in the given pieces; the events, or the first error.
fn decode_pieces<'a>(
    decoder: Decoder,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<Event>, ProtocolError> {
    let (events, result) = run(decoder, pieces);
    result.map(|()| events)
}

fn decode_all(decoder: Decoder, stream: &[u8]) -> Result<Vec<Event>, ProtocolError> {
    decode_pieces(decoder, [stream])
}

/// Feed `stream` to a decoder for `role` and expect `error`, answered with
/// `code`, whether it comes whole, split in two at any byte boundary
/// (streams of up to 4 KiB) or byte by byte. Returns the events before the
/// error.
fn expect_error(
    role: Role,
    limits: Limits,
    stream: &[u8],
    error: ProtocolError,
    code: u16,
) -> Vec<Event> {
    let decoder = || Decoder::new(role, limits);
    let (events, got) = run(decoder(), [stream]);
    assert_eq!(got, Err(error), "stream {}", hex(stream));
    assert_eq!(error.close_code(), CloseCode(code));
    // The error does not depend on how the bytes are split either.
    if stream.len() <= 4096 {
        for cut in 0..=stream.len() {
            let (a, b) = stream.split_at(cut);
            let split = decode_pieces(decoder(), [a, b]);
            assert_eq!(split, Err(error), "split at {cut}: {}", hex(stream));
        }
    }
    let bytewise = decode_pieces(decoder(), stream.chunks(1));
    assert_eq!(bytewise, Err(error), "bytewise {}", hex(stream));
    events
}

fn text(s: &str) -> Event {
    Event::Message(Message::Text(s.to_owned()))
}

fn binary(b: &[u8]) -> Event {
    Event::Message(Message::Binary(b.to_vec()))
}

fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}

// ---------------------------------------------------------------------------
// The table: §5.2 header rules, §5.4 fragmentation, §5.5.1 and §7.4 close
// payloads (1002); §5.6 and §8.1 UTF-8 (1007); §10.4 limits (1009).

#[test]
fn every_violation_gives_its_error_and_code_however_it_is_split() {
    let rows = violations();
    for v in &rows {
        println!("{}: {}", v.name, hex(&v.bytes));
        let events = expect_error(Role::Server, LIMITS, &v.bytes, v.error, v.code);
        assert_eq!(events.len(), v.messages, "{}: {events:?}", v.name);
        // The reason the socket tests look for is the error's own text.
        let reason = v.error.to_string();
        assert!(reason.contains(&v.reason), "{}: {reason:?}", v.name);
        let same_name = rows.iter().filter(|w| w.name == v.name).count();
        assert_eq!(same_name, 1, "two rows called {:?}", v.name);
    }
    println!("{} violations", rows.len());
}

#[test]
fn reserved_bits_are_reported_from_the_first_byte_alone() {
    let rows: Vec<_> = violations()
        .into_iter()
        .filter(|v| v.error == ProtocolError::ReservedBits)
        .collect();
    assert_eq!(rows.len(), 4);
    for v in rows {
        let mut d = server_decoder();
        let mut first = [v.bytes[0]];
        assert_eq!(d.decode(&mut first), Err(ProtocolError::ReservedBits));
    }
}

#[test]
fn frame_over_max_frame_is_reported_from_the_header_alone() {
    for name in [
        "text frame of max_frame + 1 bytes",
        "binary frame of max_frame + 1 bytes",
    ] {
        let v = violation(name);
        let header_len = v.bytes.len() - (LIMITS.max_frame + 1);
        let mut d = Decoder::new(Role::Server, LIMITS);
        let mut head = v.bytes[..header_len].to_vec();
        assert_eq!(d.decode(&mut head), Err(ProtocolError::FrameTooLarge));
    }
}

/// A Close payload the table refuses is refused by the payload parser on
/// its own too.
#[test]
fn refused_close_payloads_are_refused_by_the_parser() {
    let mut parsed = 0;
    for v in violations() {
        let Some((frame, used)) = support::parse_frame(&v.bytes) else {
            continue;
        };
        let whole = frame.fin && used == v.bytes.len();
        if frame.opcode != CLOSE || !whole || frame.payload.len() > 125 {
            continue;
        }
        assert_eq!(
            parse_close_payload(&frame.payload),
            Err(v.error),
            "{}",
            v.name
        );
        parsed += 1;
    }
    // The 24 forbidden codes, the 1-byte payload, the 4 bad reasons.
    assert_eq!(parsed, 29);
}

#[test]
fn masked_server_frame_is_1002() {
    let frame = client_frame(true, TEXT, b"hello");
    expect_error(
        Role::Client,
        Limits::CHAT,
        &frame,
        ProtocolError::MaskedServerFrame,
        1002,
    );
}

#[test]
fn text_not_utf8_fails_before_the_frame_is_complete() {
    // A frame that declares 100 bytes, of which only the first 4 arrive; the
    // fourth (0xF4 0x90: above U+10FFFF) is already impossible.
    let mut payload = b"ab\xf4\x90".to_vec();
    payload.resize(100, b'z');
    for (role, frame) in [
        (Role::Server, client_frame(true, TEXT, &payload)),
        (Role::Client, server_frame(true, TEXT, &payload)),
    ] {
        let header_len = frame.len() - payload.len();
        let mut partial = frame[..header_len + 4].to_vec();
        let mut d = Decoder::new(role, Limits::CHAT);
        assert_eq!(d.decode(&mut partial), Err(ProtocolError::InvalidUtf8));
        assert_eq!(ProtocolError::InvalidUtf8.close_code(), CloseCode(1007));
        // And byte by byte: the error comes with the 0x90, not later.
        let mut d = Decoder::new(role, Limits::CHAT);
        let mut head = frame[..header_len].to_vec();
        assert_eq!(d.decode(&mut head), Ok((header_len, None)));
        for i in 0..3 {
            let mut byte = [frame[header_len + i]];
            assert_eq!(d.decode(&mut byte), Ok((1, None)), "byte {i}");
        }
        let mut byte = [frame[header_len + 3]];
        assert_eq!(d.decode(&mut byte), Err(ProtocolError::InvalidUtf8));
    }
}

// ---------------------------------------------------------------------------
// Accepted at the edges of the rules.

#[test]
fn control_frame_of_125_bytes_is_accepted() {
    let frame = client_frame(true, PING, &[7; 125]);
    assert_eq!(
        decode_all(server_decoder(), &frame),
        Ok(vec![Event::Ping(vec![7; 125])])
    );
}

#[test]
fn a_character_completed_in_a_later_fragment_is_accepted() {
    let stream = cat(&[
        client_frame(false, TEXT, b"\xf0\x9f"),
        client_frame(false, CONT, b"\x98"),
        client_frame(true, CONT, b"\x80"),
    ]);
    assert_eq!(decode_all(server_decoder(), &stream), Ok(vec![text("😀")]));
}

#[test]
fn allowed_close_codes_are_delivered() {
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
        4000, 4999,
    ] {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice("ciao ☃".as_bytes());
        let frame = client_frame(true, CLOSE, &payload);
        assert_eq!(
            decode_all(server_decoder(), &frame),
            Ok(vec![Event::Close(Some(CloseFrame {
                code: CloseCode(code),
                reason: "ciao ☃".to_owned(),
            }))])
        );
    }
    // An empty Close has no code.
    let frame = client_frame(true, CLOSE, b"");
    assert_eq!(
        decode_all(server_decoder(), &frame),
        Ok(vec![Event::Close(None)])
    );
}

fn small_limits() -> Limits {
    Limits {
        max_frame: 100,
        max_message: 150,
        max_fragments: 3,
    }
}

#[test]
fn frame_of_max_frame_is_accepted() {
    let frame = client_frame(true, BINARY, &[b'a'; 100]);
    assert_eq!(
        decode_all(Decoder::new(Role::Server, small_limits()), &frame),
        Ok(vec![binary(&[b'a'; 100])])
    );
}

#[test]
fn message_of_max_message_is_accepted() {
    // One frame within max_frame, exactly at max_message.
    let limits = Limits {
        max_frame: 1000,
        max_message: 150,
        max_fragments: 10,
    };
    let frame = client_frame(true, BINARY, &[1; 150]);
    assert_eq!(
        decode_all(Decoder::new(Role::Server, limits), &frame),
        Ok(vec![binary(&[1; 150])])
    );
    // 100 + 50 in two fragments.
    for op in [TEXT, BINARY] {
        let stream = cat(&[
            client_frame(false, op, &[b'a'; 100]),
            client_frame(true, CONT, &[b'b'; 50]),
        ]);
        assert_eq!(
            decode_all(Decoder::new(Role::Server, small_limits()), &stream)
                .unwrap()
                .len(),
            1
        );
    }
}

#[test]
fn max_fragments_are_accepted_and_counted_per_message() {
    let limits = small_limits();
    let frames = [
        client_frame(false, TEXT, b"1"),
        client_frame(false, CONT, b"2"),
        client_frame(true, CONT, b"3"),
    ];
    assert_eq!(
        decode_all(Decoder::new(Role::Server, limits), &cat(&frames)),
        Ok(vec![text("123")])
    );
    // The count starts again with each message.
    let again = cat(&[cat(&frames), cat(&frames)]);
    assert_eq!(
        decode_all(Decoder::new(Role::Server, limits), &again),
        Ok(vec![text("123"), text("123")])
    );
}

// ---------------------------------------------------------------------------
// What is accepted.

#[test]
fn control_frames_between_fragments_are_delivered() {
    let stream = cat(&[
        client_frame(false, TEXT, "Hel".as_bytes()),
        client_frame(true, PING, b"are you there"),
        client_frame(false, CONT, "lo, wö".as_bytes()),
        client_frame(true, PONG, b""),
        client_frame(true, CONT, "rld".as_bytes()),
    ]);
    assert_eq!(
        decode_all(server_decoder(), &stream),
        Ok(vec![
            Event::Ping(b"are you there".to_vec()),
            Event::Pong(Vec::new()),
            text("Hello, wörld"),
        ])
    );
    // A ping in the middle of a character split between fragments.
    let stream = cat(&[
        client_frame(false, TEXT, b"\xe2"),
        client_frame(true, PING, b"p"),
        client_frame(true, CONT, b"\x82\xac"),
    ]);
    assert_eq!(
        decode_all(server_decoder(), &stream),
        Ok(vec![Event::Ping(b"p".to_vec()), text("€")])
    );
}

#[test]
fn empty_messages_are_delivered() {
    let stream = cat(&[
        client_frame(true, TEXT, b""),
        client_frame(true, BINARY, b""),
        client_frame(false, TEXT, b""),
        client_frame(false, CONT, b""),
        client_frame(true, CONT, b""),
        client_frame(true, PING, b""),
    ]);
    assert_eq!(
        decode_all(server_decoder(), &stream),
        Ok(vec![
            text(""),
            binary(b""),
            text(""),
            Event::Ping(Vec::new())
        ])
    );
}

#[test]
fn incomplete_header_consumes_nothing() {
    // Headers of every length form: 7-bit, 16-bit, 64-bit; masked and not.
    let cases = [
        (Role::Server, client_frame(true, BINARY, &[0; 5])),
        (Role::Server, client_frame(true, BINARY, &[0; 300])),
        (Role::Server, client_frame(true, BINARY, &[0; 70_000])),
        (Role::Client, server_frame(true, BINARY, &[0; 5])),
        (Role::Client, server_frame(true, BINARY, &[0; 300])),
        (Role::Client, server_frame(true, BINARY, &[0; 70_000])),
    ];
    for (role, frame) in cases {
        let (_, header_len) = FrameHeader::parse(&frame, role).unwrap().unwrap();
        for cut in 0..header_len {
            let mut d = Decoder::new(role, Limits::LARGE);
            let mut piece = frame[..cut].to_vec();
            assert_eq!(d.decode(&mut piece), Ok((0, None)), "cut {cut}");
            assert!(!d.is_mid_message(), "cut {cut}");
            assert_eq!(piece, frame[..cut], "bytes changed at cut {cut}");
        }
        let mut d = Decoder::new(role, Limits::LARGE);
        let mut piece = frame[..header_len].to_vec();
        assert_eq!(d.decode(&mut piece), Ok((header_len, None)));
        assert!(d.is_mid_message());
    }
}

#[test]
fn nothing_is_allocated_from_a_declared_length() {
    const DECLARED: u64 = 16 * 1024 * 1024;
    // The counter does see allocations.
    let (_, peak) = peak_allocation(|| Vec::<u8>::with_capacity(1 << 20));
    assert!(peak >= 1 << 20, "counter saw only {peak} bytes");
    for opcode in [OpCode::Binary, OpCode::Text] {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: Some(MASK),
            payload_len: DECLARED,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        assert_eq!(header.write(&mut head), 14);
        let mut decoder = Decoder::new(Role::Server, Limits::LARGE);
        let (results, peak) = peak_allocation(|| {
            let header_result = decoder.decode(&mut head);
            // Masked as a client would, so that it unmasks to valid text.
            let mut payload = *b"0123456789";
            apply_mask(&mut payload, MASK, 0);
            let payload_result = decoder.decode(&mut payload);
            (header_result, payload_result)
        });
        assert_eq!(results, (Ok((14, None)), Ok((10, None))), "{opcode:?}");
        assert!(
            peak < 64 * 1024,
            "{opcode:?}: a 16 MiB declaration allocated {peak} bytes"
        );
        assert!(decoder.is_mid_message());
    }
    // A fragmented message that declares a lot in each fragment: still only
    // what arrived is held.
    let mut decoder = Decoder::new(Role::Server, Limits::LARGE);
    let (_, peak) = peak_allocation(|| {
        let mut first = client_frame(false, BINARY, &[1; 1000]);
        assert_eq!(
            decoder.decode(&mut first),
            Ok((first.len(), None)),
            "first fragment"
        );
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Continuation,
            mask: Some(MASK),
            payload_len: DECLARED - 1000,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = header.write(&mut head);
        assert_eq!(decoder.decode(&mut head[..n]), Ok((n, None)));
    });
    assert!(peak < 64 * 1024, "allocated {peak} bytes");
}

/// A stream of several frames, with the events it must produce.
fn mixed_stream(role_of_sender: Role) -> (Vec<u8>, Vec<Event>) {
    let frame = |fin, op, payload: &[u8]| match role_of_sender {
        Role::Client => client_frame(fin, op, payload),
        Role::Server => server_frame(fin, op, payload),
    };
    let big: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    let stream = cat(&[
        frame(false, TEXT, "Grüße, ".as_bytes()),
        frame(true, PING, b"ping!"),
        // Splits the two bytes of "ö" between fragments.
        frame(false, CONT, b"w\xc3"),
        frame(true, PONG, b""),
        frame(true, CONT, b"\xb6rld \xf0\x9f\x98\x80"),
        frame(true, BINARY, &big),
        frame(true, TEXT, b""),
        frame(true, CLOSE, &close),
    ]);
    let events = vec![
        Event::Ping(b"ping!".to_vec()),
        Event::Pong(Vec::new()),
        text("Grüße, wörld 😀"),
        binary(&big),
        text(""),
        Event::Close(Some(CloseFrame {
            code: CloseCode::NORMAL,
            reason: "bye".to_owned(),
        })),
    ];
    (stream, events)
}

#[test]
fn every_split_point_gives_the_same_events() {
    for (sender, receiver) in [(Role::Client, Role::Server), (Role::Server, Role::Client)] {
        let (stream, expected) = mixed_stream(sender);
        let decoder = || Decoder::new(receiver, Limits::CHAT);
        assert_eq!(decode_all(decoder(), &stream), Ok(expected.clone()));
        // Two pieces, split at every position.
        for cut in 0..=stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(
                decode_pieces(decoder(), [a, b]),
                Ok(expected.clone()),
                "{receiver:?} split at {cut}"
            );
        }
        // Byte by byte.
        assert_eq!(
            decode_pieces(decoder(), stream.chunks(1)),
            Ok(expected.clone()),
            "{receiver:?} bytewise"
        );
        // Three pieces, at a spread of cut pairs.
        for i in (0..=stream.len()).step_by(3) {
            for j in (i..=stream.len()).step_by(5) {
                let pieces = [&stream[..i], &stream[i..j], &stream[j..]];
                assert_eq!(
                    decode_pieces(decoder(), pieces),
                    Ok(expected.clone()),
                    "{receiver:?} split at {i} and {j}"
                );
            }
        }
    }
}

#[test]
fn at_most_one_event_per_call_and_the_rest_is_left() {
    let (mut stream, expected) = mixed_stream(Role::Client);
    let mut decoder = server_decoder();
    let mut pos = 0;
    let mut events = Vec::new();
    while pos < stream.len() {
        let (used, event) = decoder.decode(&mut stream[pos..]).unwrap();
        assert!(used > 0 || event.is_some(), "no progress at {pos}");
        pos += used;
        events.extend(event);
    }
    assert_eq!(events, expected);
}

#[test]
fn payload_is_unmasked_in_place() {
    let mut frame = client_frame(true, BINARY, b"Hello");
    // §5.7: "Hello" masked with 37 fa 21 3d.
    assert_eq!(
        frame[..11],
        [
            0x82, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
        ]
    );
    let mut decoder = server_decoder();
    assert_eq!(decoder.decode(&mut frame), Ok((11, Some(binary(b"Hello")))));
    assert_eq!(&frame[6..], b"Hello");
}
