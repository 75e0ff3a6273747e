//! The message `Decoder` fed arbitrary bytes in a chunking derived from the
//! input, as either role, under small limits.
//!
//! Checked on every input:
//! - no panic;
//! - the events and the error are exactly those of a simple whole-buffer
//!   reference model of §5.4–§5.6, §7.4 and §10.4 written below (the header
//!   rules of §5.2 are `FrameHeader::parse`'s, fuzzed by `frame_decoder`,
//!   except the RSV bits: with no extension negotiated, any set bit fails
//!   the stream from the frame's first byte, before any other rule), so in
//!   particular they do not depend on the chunking;
//! - an error is final: every later call returns it again, so no event is
//!   ever produced after it;
//! - every text message is valid UTF-8, every message is within
//!   `max_message`, every control payload within 125 bytes;
//! - the bytes the decoder holds on to (measured with a counting allocator)
//!   never exceed `max_message` plus a control frame's worth, whatever
//!   lengths the frames declare.

#![no_main]

use std::cell::Cell;

use libfuzzer_sys::fuzz_target;
use wschat::ws::close::CloseFrame;
use wschat::ws::frame::{FrameHeader, MAX_CONTROL_PAYLOAD, OpCode};
use wschat::ws::mask::apply_mask_reference;
use wschat::ws::{CloseCode, Decoder, Event, Limits, Message, ProtocolError, Role};

// The counting allocator and the input format are shared with the tests
// (tests/common/), so the replayed corpus and the target agree.
#[path = "../../tests/common/assembler_input.rs"]
mod assembler_input;
#[path = "../../tests/common/counting_alloc.rs"]
#[allow(dead_code)]
mod counting_alloc;
use counting_alloc::{LIVE, PEAK};

// --- reference model ---------------------------------------------------------

/// The outcome of decoding a whole stream: events up to the first error,
/// the error if any, and (without an error) how many bytes at the end are
/// an incomplete header that a decoder must leave unconsumed.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Event>,
    error: Option<ProtocolError>,
    left_over: usize,
}

fn close_code_allowed(code: u16) -> bool {
    // §7.4.1, §7.4.2, and the IANA registry's 1012–1014.
    (1000..=1003).contains(&code) || (1007..=1014).contains(&code) || (3000..=4999).contains(&code)
}

fn model(stream: &[u8], role: Role, limits: Limits) -> Outcome {
    let mut events = Vec::new();
    // (is_text, bytes so far, fragments)
    let mut message: Option<(bool, Vec<u8>, usize)> = None;
    let mut pos = 0;
    let fail = |events, error| Outcome {
        events,
        error: Some(error),
        left_over: 0,
    };
    loop {
        // §5.2: no extension is negotiated, so every RSV bit is refused,
        // as soon as the first byte is in.
        if stream.get(pos).is_some_and(|b0| b0 & 0x70 != 0) {
            return fail(events, ProtocolError::ReservedBits);
        }
        let (header, n) = match FrameHeader::parse(&stream[pos..], role) {
            Err(e) => return fail(events, e),
            Ok(None) => {
                return Outcome {
                    events,
                    error: None,
                    left_over: stream.len() - pos,
                };
            }
            Ok(Some(parsed)) => parsed,
        };
        pos += n;
        let control = header.opcode.is_control();
        if !control {
            // Frame order (§5.4) before sizes: a frame that may not come
            // here is 1002 whatever length it declares.
            match (header.opcode, &message) {
                (OpCode::Continuation, None) => {
                    return fail(events, ProtocolError::UnexpectedContinuation);
                }
                (OpCode::Continuation, Some(_)) | (_, None) => {}
                (_, Some(_)) => return fail(events, ProtocolError::ExpectedContinuation),
            }
            if header.payload_len > limits.max_frame as u64 {
                return fail(events, ProtocolError::FrameTooLarge);
            }
            match (header.opcode, &mut message) {
                (OpCode::Continuation, Some((_, _, fragments))) => {
                    *fragments += 1;
                    if *fragments > limits.max_fragments {
                        return fail(events, ProtocolError::TooManyFragments);
                    }
                }
                (op, _) => message = Some((op == OpCode::Text, Vec::new(), 1)),
            }
            let so_far = message.as_ref().map_or(0, |m| m.1.len()) as u64;
            if so_far + header.payload_len > limits.max_message as u64 {
                return fail(events, ProtocolError::MessageTooLarge);
            }
        }
        let available = (stream.len() - pos).min(header.payload_len as usize);
        let mut payload = stream[pos..pos + available].to_vec();
        pos += available;
        if let Some(key) = header.mask {
            apply_mask_reference(&mut payload, key, 0);
        }
        let complete = available as u64 == header.payload_len;
        if !control {
            let (is_text, bytes, _) = message.as_mut().unwrap();
            bytes.extend_from_slice(&payload);
            // §8.1: fail as soon as the bytes cannot be the start of UTF-8.
            let impossible =
                *is_text && std::str::from_utf8(bytes).is_err_and(|e| e.error_len().is_some());
            if impossible {
                return fail(events, ProtocolError::InvalidUtf8);
            }
        }
        if !complete {
            return Outcome {
                events,
                error: None,
                left_over: 0,
            };
        }
        match header.opcode {
            OpCode::Ping => events.push(Event::Ping(payload)),
            OpCode::Pong => events.push(Event::Pong(payload)),
            OpCode::Close => match payload.as_slice() {
                [] => events.push(Event::Close(None)),
                [_] => return fail(events, ProtocolError::CloseTooShort),
                [hi, lo, reason @ ..] => {
                    let code = u16::from_be_bytes([*hi, *lo]);
                    if !close_code_allowed(code) {
                        return fail(events, ProtocolError::InvalidCloseCode(code));
                    }
                    let Ok(reason) = std::str::from_utf8(reason) else {
                        return fail(events, ProtocolError::InvalidUtf8);
                    };
                    events.push(Event::Close(Some(CloseFrame {
                        code: CloseCode(code),
                        reason: reason.to_owned(),
                    })));
                }
            },
            _ if header.fin => {
                let (is_text, bytes, _) = message.take().unwrap();
                if is_text {
                    match String::from_utf8(bytes) {
                        Ok(text) => events.push(Event::Message(Message::Text(text))),
                        Err(_) => return fail(events, ProtocolError::InvalidUtf8),
                    }
                } else {
                    events.push(Event::Message(Message::Binary(bytes)));
                }
            }
            _ => {}
        }
    }
}

// --- driving the decoder -----------------------------------------------------

/// A small deterministic generator for chunk sizes.
struct Chunks {
    state: u32,
    max: usize,
}

impl Chunks {
    fn next(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        1 + self.state as usize % self.max
    }
}

fn check_event(event: &Event, limits: &Limits) {
    match event {
        Event::Message(Message::Text(text)) => {
            assert!(std::str::from_utf8(text.as_bytes()).is_ok());
            assert!(text.len() <= limits.max_message);
        }
        Event::Message(Message::Binary(bytes)) => assert!(bytes.len() <= limits.max_message),
        Event::Ping(p) | Event::Pong(p) => assert!(p.len() <= MAX_CONTROL_PAYLOAD),
        Event::Close(Some(frame)) => {
            assert!(frame.reason.len() <= MAX_CONTROL_PAYLOAD - 2);
            assert!(close_code_allowed(frame.code.0));
        }
        Event::Close(None) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((setup, stream)) = assembler_input::split(data) else {
        return;
    };
    let (role, limits) = (setup.role, setup.limits);
    let mut chunks = Chunks {
        state: setup.chunk_seed,
        max: setup.max_chunk,
    };

    let expected = model(stream, role, limits);

    // Everything the harness needs is allocated before the baseline, so
    // that what is live above it during a call is the decoder's.
    let mut buf: Vec<u8> = Vec::with_capacity(stream.len() + 16);
    let mut events_seen = 0;
    let mut error = None;
    let mut fed = 0;
    let mut decoder = Decoder::new(role, limits);
    let base = LIVE.with(Cell::get);
    let bound = limits.max_message + 512;

    'feed: while fed < stream.len() {
        let n = chunks.next().min(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
        let mut start = 0;
        while start < buf.len() {
            PEAK.with(|p| p.set(LIVE.with(Cell::get)));
            let result = decoder.decode(&mut buf[start..]);
            let peak = PEAK.with(Cell::get).saturating_sub(base);
            assert!(
                peak <= bound,
                "decoder peaked at {peak} bytes, bound {bound}"
            );
            match result {
                Err(e) => {
                    error = Some(e);
                    break 'feed;
                }
                Ok((used, event)) => {
                    assert!(start + used <= buf.len());
                    start += used;
                    match event {
                        Some(event) => {
                            check_event(&event, &limits);
                            assert_eq!(
                                Some(&event),
                                expected.events.get(events_seen),
                                "event {events_seen} differs from the model"
                            );
                            events_seen += 1;
                        }
                        None if used == 0 => break,
                        None => {}
                    }
                }
            }
            let held = LIVE.with(Cell::get).saturating_sub(base);
            assert!(held <= bound, "decoder holds {held} bytes, bound {bound}");
        }
        buf.drain(..start);
    }

    assert_eq!(events_seen, expected.events.len(), "{expected:?}");
    assert_eq!(error, expected.error);
    if let Some(error) = error {
        // An error is final: the decoder says so again, whatever follows,
        // and never produces an event after it.
        let mut rest = buf.clone();
        rest.extend_from_slice(&stream[fed..]);
        rest.extend_from_slice(b"\x81\x80\0\0\0\0\x81\0");
        for _ in 0..3 {
            match decoder.decode(&mut rest) {
                Err(again) => assert_eq!(again, error),
                Ok(ok) => panic!("{ok:?} after {error:?}"),
            }
        }
        assert_eq!(decoder.decode(&mut []), Err(error));
    } else {
        assert_eq!(buf.len(), expected.left_over);
        assert!(buf.len() < wschat::ws::frame::MAX_HEADER_LEN);
    }
});
