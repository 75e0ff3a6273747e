//! Inputs that once broke the codec, found by the fuzz targets in fuzz/,
//! kept so that the bugs stay fixed.
//!
//! `tests/corpus/<target>/*.bin` are the fuzz inputs themselves, in the
//! format of that target (see fuzz/fuzz_targets/<target>.rs); the tests
//! below replay each one through the public API and check the property the
//! target checks. A new crash is added by dropping its file in the folder.

use std::path::{Path, PathBuf};

use wschat::ws::frame::{OpCode, encode_frame};
use wschat::ws::{Decoder, Event, Limits, Message, ProtocolError, Role};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "bin"))
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    files
}

// ---------------------------------------------------------------------------
// message_assembler: the decoder kept going after an error.
//
// Found by the `message_assembler` fuzz target in its first minute. After a
// `ProtocolError`, the decoder's state was left half-updated, and a caller
// that called `decode` again got answers built from it:
// - a text frame refused by `max_message` had already started a message,
//   so the next data frame was judged as "expected a continuation";
// - a Close frame with a 1-byte payload was fully consumed, so the next
//   call decoded the following frame as if nothing had happened;
// - a text frame whose invalid UTF-8 byte had been counted as received came
//   out, on the next call, as a complete (and silently truncated) message.
// §7.1.7 says that once the connection is to be failed, no further data is
// processed. Fixed in src/ws/message.rs: errors are sticky, every later call
// returns the first error again.

// The `message_assembler` target's input format (role, limits, chunking
// from the first three bytes), shared with it. The replay below chunks the
// stream its own ways, so the chunking fields go unused here.
#[path = "common/assembler_input.rs"]
#[allow(dead_code)]
mod assembler_input;

/// A well-formed empty text message as `role`'s peer sends it.
fn valid_frame_for(role: Role) -> Vec<u8> {
    let mut out = Vec::new();
    let mask = (role == Role::Server).then_some([1, 2, 3, 4]);
    encode_frame(&mut out, true, OpCode::Text, b"", mask);
    out
}

/// Feed `stream` in pieces of `chunk` bytes until the decoder fails;
/// returns the error and the bytes it had not consumed yet.
fn run_to_error(decoder: &mut Decoder, stream: &[u8], chunk: usize) -> (ProtocolError, Vec<u8>) {
    let mut buf = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        let mut start = 0;
        while start < buf.len() {
            match decoder.decode(&mut buf[start..]) {
                Err(error) => return (error, buf[start..].to_vec()),
                Ok((used, event)) => {
                    start += used;
                    if used == 0 && event.is_none() {
                        break;
                    }
                }
            }
        }
        buf.drain(..start);
    }
    panic!("no error in {stream:x?}");
}

fn assert_error_is_final(
    decoder: &mut Decoder,
    error: ProtocolError,
    mut rest: Vec<u8>,
    role: Role,
) {
    rest.extend_from_slice(&valid_frame_for(role));
    for _ in 0..3 {
        assert_eq!(decoder.decode(&mut rest), Err(error), "after {error:?}");
    }
    assert_eq!(decoder.decode(&mut []), Err(error), "after {error:?}");
    let mut fresh = valid_frame_for(role);
    assert_eq!(decoder.decode(&mut fresh), Err(error), "after {error:?}");
}

#[test]
fn fuzz_corpus_message_assembler_errors_are_final() {
    for (path, input) in corpus("message_assembler") {
        let (setup, stream) = assembler_input::split(&input).expect("3 control bytes");
        let (role, limits) = (setup.role, setup.limits);
        for chunk in [1, 2, 3, stream.len().max(1)] {
            let mut decoder = Decoder::new(role, limits);
            let (error, rest) = run_to_error(&mut decoder, stream, chunk);
            assert_error_is_final(&mut decoder, error, rest, role);
            // A fresh decoder given the same bytes fails the same way.
            let (again, _) = run_to_error(&mut Decoder::new(role, limits), stream, chunk);
            assert_eq!(again, error, "{}", path.display());
        }
    }
}

#[test]
fn message_refused_by_a_limit_does_not_linger() {
    // error_not_final_message_too_large.bin, spelled out: a client decoder
    // with max_message 0 refuses a 3-byte text frame; the refused message
    // must not make the next frame look like a bad continuation.
    let limits = Limits {
        max_frame: 7,
        max_message: 0,
        max_fragments: 1,
    };
    let mut decoder = Decoder::new(Role::Client, limits);
    assert_eq!(
        decoder.decode(&mut [0x01, 0x03]),
        Err(ProtocolError::MessageTooLarge)
    );
    let mut next = valid_frame_for(Role::Client);
    assert_eq!(
        decoder.decode(&mut next),
        Err(ProtocolError::MessageTooLarge),
        "was ExpectedContinuation"
    );
}

#[test]
fn invalid_text_never_comes_out_as_a_message() {
    // A whole masked text frame "a", 0xFF, "b": the error comes with the
    // frame, which is then fully counted as received. Asked again, the
    // decoder used to finish the frame and hand out Text("").
    let mut frame = Vec::new();
    encode_frame(
        &mut frame,
        true,
        OpCode::Text,
        b"a\xffb",
        Some([9, 9, 9, 9]),
    );
    let mut decoder = Decoder::new(Role::Server, Limits::CHAT);
    assert_eq!(decoder.decode(&mut frame), Err(ProtocolError::InvalidUtf8));
    let again = decoder.decode(&mut []);
    assert!(
        !matches!(again, Ok((_, Some(Event::Message(Message::Text(_)))))),
        "invalid text delivered: {again:?}"
    );
    assert_eq!(again, Err(ProtocolError::InvalidUtf8));
}

#[test]
fn bad_close_does_not_let_the_next_frame_through() {
    // error_not_final_close_too_short.bin, spelled out: a Close with a
    // 1-byte payload, then an ordinary message.
    let mut stream = Vec::new();
    encode_frame(
        &mut stream,
        true,
        OpCode::Close,
        &[0x03],
        Some([5, 6, 7, 8]),
    );
    let close_len = stream.len();
    encode_frame(&mut stream, true, OpCode::Text, b"hi", Some([5, 6, 7, 8]));
    let mut decoder = Decoder::new(Role::Server, Limits::CHAT);
    assert_eq!(
        decoder.decode(&mut stream[..close_len]),
        Err(ProtocolError::CloseTooShort)
    );
    assert_eq!(
        decoder.decode(&mut stream[close_len..]),
        Err(ProtocolError::CloseTooShort),
        "the message after a failed Close was decoded"
    );
}
