//! Every rule of the receiving codec (RFC 6455 §5, §7.4, §8.1, §10.4), one
//! test per rule, through the public API only. Each failure test asserts
//! both the `ProtocolError` variant and the close code it is answered with.

use wschat::ws::close::{CloseFrame, parse_close_payload};
use wschat::ws::frame::{FrameHeader, MAX_HEADER_LEN, OpCode, encode_frame};
use wschat::ws::mask::apply_mask;
use wschat::ws::{CloseCode, Decoder, Event, Limits, Message, ProtocolError, Role};

// A per-thread allocation counter (tests/shared/counting_alloc.rs), so that
// one test can assert that a large *declared* length allocates nothing in
// proportion to it.
#[path = "shared/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::peak_allocation;

// ---------------------------------------------------------------------------
// Helpers.

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A frame as a client sends it (masked).
fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, opcode, payload, Some(KEY));
    out
}

/// A frame as a server sends it (unmasked).
fn server_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, opcode, payload, None);
    out
}

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

/// Feed `stream` in the given pieces; the events, or the first error.
fn decode_pieces<'a>(
    decoder: Decoder,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<Event>, ProtocolError> {
    let mut driver = Driver::new(decoder);
    for piece in pieces {
        driver.feed(piece)?;
    }
    assert!(driver.buf.is_empty(), "bytes left over: {:x?}", driver.buf);
    Ok(driver.events)
}

fn decode_all(decoder: Decoder, stream: &[u8]) -> Result<Vec<Event>, ProtocolError> {
    decode_pieces(decoder, [stream])
}

/// Feed `stream` to a server decoder and expect `error` with `code`.
fn expect_error(role: Role, limits: Limits, stream: &[u8], error: ProtocolError, code: u16) {
    let got = decode_all(Decoder::new(role, limits), stream);
    assert_eq!(got, Err(error), "stream {stream:x?}");
    assert_eq!(error.close_code(), CloseCode(code));
    // The error does not depend on how the bytes are split either.
    let bytewise = decode_pieces(Decoder::new(role, limits), stream.chunks(1));
    assert_eq!(bytewise, Err(error), "bytewise {stream:x?}");
}

fn expect_server_error(stream: &[u8], error: ProtocolError, code: u16) {
    expect_error(Role::Server, Limits::CHAT, stream, error, code);
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
// §5.2 header rules: 1002.

#[test]
fn rsv_bits_set_without_extension_is_1002() {
    for rsv in [0x40u8, 0x20, 0x10, 0x70] {
        let mut frame = client_frame(true, OpCode::Text, b"hi");
        frame[0] |= rsv;
        expect_server_error(&frame, ProtocolError::ReservedBits, 1002);
        // Reported from the first byte alone.
        let mut d = server_decoder();
        assert_eq!(d.decode(&mut frame[..1]), Err(ProtocolError::ReservedBits));
    }
}

#[test]
fn reserved_opcodes_are_1002() {
    for op in [0x3u8, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        let mut frame = client_frame(true, OpCode::Binary, b"x");
        frame[0] = 0x80 | op;
        expect_server_error(&frame, ProtocolError::ReservedOpcode(op), 1002);
    }
}

#[test]
fn unmasked_client_frame_is_1002() {
    let frame = server_frame(true, OpCode::Text, b"hello");
    expect_server_error(&frame, ProtocolError::UnmaskedClientFrame, 1002);
}

#[test]
fn masked_server_frame_is_1002() {
    let frame = client_frame(true, OpCode::Text, b"hello");
    expect_error(
        Role::Client,
        Limits::CHAT,
        &frame,
        ProtocolError::MaskedServerFrame,
        1002,
    );
}

#[test]
fn control_frame_over_125_bytes_is_1002() {
    for op in [OpCode::Ping, OpCode::Pong, OpCode::Close] {
        for len in [126usize, 127, 200, 70_000] {
            let mut payload = vec![b'a'; len];
            if op == OpCode::Close {
                payload[..2].copy_from_slice(&1000u16.to_be_bytes());
            }
            let frame = client_frame(true, op, &payload);
            expect_server_error(&frame, ProtocolError::ControlFrameTooLong, 1002);
        }
    }
    // 125 is still allowed.
    let frame = client_frame(true, OpCode::Ping, &[7; 125]);
    assert_eq!(
        decode_all(server_decoder(), &frame),
        Ok(vec![Event::Ping(vec![7; 125])])
    );
}

#[test]
fn fragmented_control_frame_is_1002() {
    for op in [OpCode::Ping, OpCode::Pong, OpCode::Close] {
        let frame = client_frame(false, op, b"");
        expect_server_error(&frame, ProtocolError::FragmentedControlFrame, 1002);
    }
}

#[test]
fn sixty_four_bit_length_with_top_bit_set_is_1002() {
    for top in [0x80u8, 0xFF] {
        let mut frame = vec![0x82, 0xFF, top, 0, 0, 0, 0, 0, 0, 0];
        frame.extend_from_slice(&KEY);
        expect_server_error(&frame, ProtocolError::LengthTopBitSet, 1002);
    }
}

#[test]
fn non_minimal_lengths_are_1002() {
    // 16-bit form for lengths that fit in 7 bits.
    for len in [0u16, 1, 125] {
        let mut frame = vec![0x82, 0xFE];
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&KEY);
        frame.extend(std::iter::repeat_n(0, usize::from(len)));
        expect_server_error(&frame, ProtocolError::NonMinimalLength, 1002);
    }
    // 64-bit form for lengths that fit in 16 bits (or 7).
    for len in [0u64, 125, 126, 65_535] {
        let mut frame = vec![0x82, 0xFF];
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&KEY);
        frame.extend(std::iter::repeat_n(0, len as usize));
        expect_server_error(&frame, ProtocolError::NonMinimalLength, 1002);
    }
}

// ---------------------------------------------------------------------------
// §5.4 fragmentation rules: 1002.

#[test]
fn continuation_with_nothing_to_continue_is_1002() {
    for fin in [true, false] {
        let frame = client_frame(fin, OpCode::Continuation, b"orphan");
        expect_server_error(&frame, ProtocolError::UnexpectedContinuation, 1002);
    }
    // Also right after a complete message.
    let stream = cat(&[
        client_frame(true, OpCode::Text, b"done"),
        client_frame(true, OpCode::Continuation, b"more"),
    ]);
    expect_server_error(&stream, ProtocolError::UnexpectedContinuation, 1002);
}

#[test]
fn new_data_frame_inside_fragmented_message_is_1002() {
    for first in [OpCode::Text, OpCode::Binary] {
        for second in [OpCode::Text, OpCode::Binary] {
            for fin in [true, false] {
                let stream = cat(&[
                    client_frame(false, first, b"part"),
                    client_frame(fin, second, b"new"),
                ]);
                expect_server_error(&stream, ProtocolError::ExpectedContinuation, 1002);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// §5.6, §8.1 UTF-8: 1007.

#[test]
fn text_not_utf8_in_a_single_frame_is_1007() {
    for bad in [
        &b"\xff"[..],
        b"abc\xc0\x80",      // overlong
        b"\xed\xa0\x80",     // surrogate
        b"\xf4\x90\x80\x80", // above U+10FFFF
        b"caf\xe9 au lait",  // Latin-1
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
    ] {
        let frame = client_frame(true, OpCode::Text, bad);
        expect_server_error(&frame, ProtocolError::InvalidUtf8, 1007);
    }
}

#[test]
fn text_not_utf8_split_across_fragments_is_1007() {
    // "€" is E2 82 AC. The first fragment ends inside it, the second goes on
    // with a byte that cannot continue it.
    let stream = cat(&[
        client_frame(false, OpCode::Text, b"price: \xe2\x82"),
        client_frame(true, OpCode::Continuation, b"("),
    ]);
    expect_server_error(&stream, ProtocolError::InvalidUtf8, 1007);
    // A valid first fragment, an invalid middle one: the error comes with
    // the middle fragment, before the last one is sent at all.
    let stream = cat(&[
        client_frame(false, OpCode::Text, b"fine "),
        client_frame(false, OpCode::Continuation, b"\xf8\x88\x80\x80\x80"),
    ]);
    expect_server_error(&stream, ProtocolError::InvalidUtf8, 1007);
}

#[test]
fn text_not_utf8_fails_before_the_frame_is_complete() {
    // A frame that declares 100 bytes, of which only the first 4 arrive; the
    // fourth (0xF4 0x90: above U+10FFFF) is already impossible.
    let mut payload = b"ab\xf4\x90".to_vec();
    payload.resize(100, b'z');
    for (role, frame) in [
        (Role::Server, client_frame(true, OpCode::Text, &payload)),
        (Role::Client, server_frame(true, OpCode::Text, &payload)),
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
    // Same inside a continuation frame of a fragmented message.
    let stream = cat(&[
        client_frame(false, OpCode::Text, b"ok"),
        client_frame(true, OpCode::Continuation, &[b'x', 0xff, b'y', b'z']),
    ]);
    let cut = stream.len() - 2;
    assert_eq!(
        decode_all(server_decoder(), &stream[..cut]),
        Err(ProtocolError::InvalidUtf8)
    );
}

#[test]
fn truncated_utf8_at_message_end_is_1007() {
    // A single frame that stops inside a character.
    let frame = client_frame(true, OpCode::Text, b"a\xe2\x82");
    expect_server_error(&frame, ProtocolError::InvalidUtf8, 1007);
    // A fragmented message whose last fragment stops inside one.
    let stream = cat(&[
        client_frame(false, OpCode::Text, b"\xf0\x9f"),
        client_frame(true, OpCode::Continuation, b"\x98"),
    ]);
    expect_server_error(&stream, ProtocolError::InvalidUtf8, 1007);
    // But the same character completed in a later fragment is fine.
    let stream = cat(&[
        client_frame(false, OpCode::Text, b"\xf0\x9f"),
        client_frame(false, OpCode::Continuation, b"\x98"),
        client_frame(true, OpCode::Continuation, b"\x80"),
    ]);
    assert_eq!(decode_all(server_decoder(), &stream), Ok(vec![text("😀")]));
}

#[test]
fn close_reason_not_utf8_is_1007() {
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye \xff");
    let frame = client_frame(true, OpCode::Close, &payload);
    expect_server_error(&frame, ProtocolError::InvalidUtf8, 1007);
    // A reason cut inside a character is invalid too.
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"\xe2\x82");
    let frame = client_frame(true, OpCode::Close, &payload);
    expect_server_error(&frame, ProtocolError::InvalidUtf8, 1007);
}

// ---------------------------------------------------------------------------
// §5.5.1, §7.4 close payloads: 1002.

#[test]
fn close_payload_of_one_byte_is_1002() {
    let frame = client_frame(true, OpCode::Close, &[0x03]);
    expect_server_error(&frame, ProtocolError::CloseTooShort, 1002);
}

#[test]
fn forbidden_close_codes_are_1002() {
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let frame = client_frame(true, OpCode::Close, &code.to_be_bytes());
        expect_server_error(&frame, ProtocolError::InvalidCloseCode(code), 1002);
        assert_eq!(
            parse_close_payload(&code.to_be_bytes()),
            Err(ProtocolError::InvalidCloseCode(code))
        );
    }
}

#[test]
fn allowed_close_codes_are_delivered() {
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
        4000, 4999,
    ] {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice("ciao ☃".as_bytes());
        let frame = client_frame(true, OpCode::Close, &payload);
        assert_eq!(
            decode_all(server_decoder(), &frame),
            Ok(vec![Event::Close(Some(CloseFrame {
                code: CloseCode(code),
                reason: "ciao ☃".to_owned(),
            }))])
        );
    }
    // An empty Close has no code.
    let frame = client_frame(true, OpCode::Close, b"");
    assert_eq!(
        decode_all(server_decoder(), &frame),
        Ok(vec![Event::Close(None)])
    );
}

// ---------------------------------------------------------------------------
// §10.4 limits: 1009.

fn small_limits() -> Limits {
    Limits {
        max_frame: 100,
        max_message: 150,
        max_fragments: 3,
    }
}

#[test]
fn frame_over_max_frame_is_1009() {
    let limits = small_limits();
    for op in [OpCode::Text, OpCode::Binary] {
        let frame = client_frame(true, op, &[b'a'; 101]);
        expect_error(
            Role::Server,
            limits,
            &frame,
            ProtocolError::FrameTooLarge,
            1009,
        );
        // Reported from the header alone, before any payload arrives.
        let header_len = frame.len() - 101;
        let mut d = Decoder::new(Role::Server, limits);
        let mut head = frame[..header_len].to_vec();
        assert_eq!(d.decode(&mut head), Err(ProtocolError::FrameTooLarge));
    }
    // Exactly at the limit is fine.
    let frame = client_frame(true, OpCode::Binary, &[b'a'; 100]);
    assert_eq!(
        decode_all(Decoder::new(Role::Server, limits), &frame),
        Ok(vec![binary(&[b'a'; 100])])
    );
    // A continuation frame is a frame too.
    let stream = cat(&[
        client_frame(false, OpCode::Binary, b"x"),
        client_frame(true, OpCode::Continuation, &[0; 101]),
    ]);
    expect_error(
        Role::Server,
        limits,
        &stream,
        ProtocolError::FrameTooLarge,
        1009,
    );
}

/// A frame that breaks the order of frames (§5.4) is a protocol error
/// (1002) even when it also declares more than the limits allow: the order
/// is checked first, from the header alone.
#[test]
fn out_of_order_frame_is_1002_whatever_its_size() {
    let limits = small_limits();
    let orphan = client_frame(true, OpCode::Continuation, &[0; 101]);
    expect_error(
        Role::Server,
        limits,
        &orphan,
        ProtocolError::UnexpectedContinuation,
        1002,
    );
    let interleaved = cat(&[
        client_frame(false, OpCode::Text, b"x"),
        client_frame(true, OpCode::Binary, &[0; 101]),
    ]);
    expect_error(
        Role::Server,
        limits,
        &interleaved,
        ProtocolError::ExpectedContinuation,
        1002,
    );
    // A header claiming nearly 2^63 bytes, with no payload at all.
    let mut huge = vec![0x80, 0xFF];
    huge.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
    huge.extend_from_slice(&[1, 2, 3, 4]);
    let mut d = Decoder::new(Role::Server, limits);
    assert_eq!(
        d.decode(&mut huge),
        Err(ProtocolError::UnexpectedContinuation)
    );
}

#[test]
fn message_over_max_message_is_1009() {
    // One frame within max_frame but over max_message.
    let limits = Limits {
        max_frame: 1000,
        max_message: 150,
        max_fragments: 10,
    };
    let frame = client_frame(true, OpCode::Binary, &[1; 151]);
    expect_error(
        Role::Server,
        limits,
        &frame,
        ProtocolError::MessageTooLarge,
        1009,
    );
    let frame = client_frame(true, OpCode::Binary, &[1; 150]);
    assert_eq!(
        decode_all(Decoder::new(Role::Server, limits), &frame),
        Ok(vec![binary(&[1; 150])])
    );
}

#[test]
fn message_over_max_message_across_fragments_is_1009() {
    let limits = small_limits();
    for op in [OpCode::Text, OpCode::Binary] {
        let stream = cat(&[
            client_frame(false, op, &[b'a'; 100]),
            client_frame(true, OpCode::Continuation, &[b'b'; 51]),
        ]);
        expect_error(
            Role::Server,
            limits,
            &stream,
            ProtocolError::MessageTooLarge,
            1009,
        );
        // 100 + 50 is exactly the limit.
        let stream = cat(&[
            client_frame(false, op, &[b'a'; 100]),
            client_frame(true, OpCode::Continuation, &[b'b'; 50]),
        ]);
        assert_eq!(
            decode_all(Decoder::new(Role::Server, limits), &stream)
                .unwrap()
                .len(),
            1
        );
    }
    // A text message counts the bytes of a character held back unfinished.
    let stream = cat(&[
        client_frame(false, OpCode::Text, &[b'a'; 98]),
        client_frame(false, OpCode::Continuation, b"\xe2\x82"),
        client_frame(true, OpCode::Continuation, &[b'b'; 51]),
    ]);
    expect_error(
        Role::Server,
        limits,
        &stream,
        ProtocolError::MessageTooLarge,
        1009,
    );
}

#[test]
fn too_many_fragments_is_1009() {
    let limits = small_limits();
    let mut frames = vec![client_frame(false, OpCode::Text, b"1")];
    frames.push(client_frame(false, OpCode::Continuation, b"2"));
    frames.push(client_frame(false, OpCode::Continuation, b"3"));
    // Four frames: one too many.
    let mut four = frames.clone();
    four.push(client_frame(true, OpCode::Continuation, b""));
    expect_error(
        Role::Server,
        limits,
        &cat(&four),
        ProtocolError::TooManyFragments,
        1009,
    );
    frames.pop();
    frames.push(client_frame(true, OpCode::Continuation, b"3"));
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
        client_frame(false, OpCode::Text, "Hel".as_bytes()),
        client_frame(true, OpCode::Ping, b"are you there"),
        client_frame(false, OpCode::Continuation, "lo, wö".as_bytes()),
        client_frame(true, OpCode::Pong, b""),
        client_frame(true, OpCode::Continuation, "rld".as_bytes()),
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
        client_frame(false, OpCode::Text, b"\xe2"),
        client_frame(true, OpCode::Ping, b"p"),
        client_frame(true, OpCode::Continuation, b"\x82\xac"),
    ]);
    assert_eq!(
        decode_all(server_decoder(), &stream),
        Ok(vec![Event::Ping(b"p".to_vec()), text("€")])
    );
}

#[test]
fn empty_messages_are_delivered() {
    let stream = cat(&[
        client_frame(true, OpCode::Text, b""),
        client_frame(true, OpCode::Binary, b""),
        client_frame(false, OpCode::Text, b""),
        client_frame(false, OpCode::Continuation, b""),
        client_frame(true, OpCode::Continuation, b""),
        client_frame(true, OpCode::Ping, b""),
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
        (Role::Server, client_frame(true, OpCode::Binary, &[0; 5])),
        (Role::Server, client_frame(true, OpCode::Binary, &[0; 300])),
        (
            Role::Server,
            client_frame(true, OpCode::Binary, &[0; 70_000]),
        ),
        (Role::Client, server_frame(true, OpCode::Binary, &[0; 5])),
        (Role::Client, server_frame(true, OpCode::Binary, &[0; 300])),
        (
            Role::Client,
            server_frame(true, OpCode::Binary, &[0; 70_000]),
        ),
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
            mask: Some(KEY),
            payload_len: DECLARED,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        assert_eq!(header.write(&mut head), 14);
        let mut decoder = Decoder::new(Role::Server, Limits::LARGE);
        let (results, peak) = peak_allocation(|| {
            let header_result = decoder.decode(&mut head);
            // Masked as a client would, so that it unmasks to valid text.
            let mut payload = *b"0123456789";
            apply_mask(&mut payload, KEY, 0);
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
        let mut first = client_frame(false, OpCode::Binary, &[1; 1000]);
        assert_eq!(
            decoder.decode(&mut first),
            Ok((first.len(), None)),
            "first fragment"
        );
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Continuation,
            mask: Some(KEY),
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
        frame(false, OpCode::Text, "Grüße, ".as_bytes()),
        frame(true, OpCode::Ping, b"ping!"),
        // Splits the two bytes of "ö" between fragments.
        frame(false, OpCode::Continuation, b"w\xc3"),
        frame(true, OpCode::Pong, b""),
        frame(true, OpCode::Continuation, b"\xb6rld \xf0\x9f\x98\x80"),
        frame(true, OpCode::Binary, &big),
        frame(true, OpCode::Text, b""),
        frame(true, OpCode::Close, &close),
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
    let mut frame = client_frame(true, OpCode::Binary, b"Hello");
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
