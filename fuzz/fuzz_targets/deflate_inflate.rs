//! The receiving side of permessage-deflate (RFC 7692): a server's
//! `Decoder` running `Inflate::per_message`, fed a client's byte stream
//! built from the input, in a chunking derived from the input, under small
//! limits. Checked against a reference model written below.
//!
//! The stream is a sequence of messages, each one of
//! - (a) a real payload compressed by `flate2` as a conforming client does
//!   (§7.2.1: raw DEFLATE, a sync flush, its `00 00 ff ff` tail removed),
//!   with a window of 9–15 bits and a level of 0–9;
//! - (b) arbitrary bytes claimed to be compressed;
//! - (c) a payload sent uncompressed;
//!
//! text (its payload made valid UTF-8, or left as it is) or binary,
//! repeated to make it large (a compressed payload then inflates to
//! hundreds of times its size), split into fragments of arbitrary sizes
//! with Ping and Pong frames between them, the RSV bits of any frame —
//! first, continuation or control — changed at will, the last FIN dropped
//! or the first opcode made a continuation at will, and the whole stream
//! masked (as a client sends) and cut short at will.
//!
//! The model says what must happen, frame by frame, in stream order:
//! - from a frame's first byte, before any other rule: RSV2 or RSV3 is
//!   `ReservedBits` and RSV1 on a continuation or control frame
//!   `MisplacedExtensionBits` (both 1002; §6: only the first frame of a
//!   message says it is compressed);
//! - the rules of RFC 6455 (frame order, `max_frame`, `max_fragments`; for
//!   a message without RSV1, `max_message` on the declared lengths and
//!   UTF-8 as the bytes come), as the `message_assembler` target's model
//!   has them;
//! - a message with RSV1 on its first frame (§6.1) is what its payload so
//!   far inflates to (§7.2.2: with `00 00 ff ff` appended at its end,
//!   unless a final block ended it), according to a reference inflation of
//!   the whole payload at once (`flate2`, no bounded pieces): after every
//!   frame of it, the decoder must have failed exactly when that inflation
//!   fails — with 1007 for a stream that does not inflate (or has bytes
//!   after its final block), `MessageTooLarge` (1009) for more than
//!   `max_message` inflated bytes, `InvalidUtf8` (1007) for text whose
//!   inflated bytes cannot be UTF-8 — and with one of the errors that
//!   apply when several do (which one the decoder sees first depends on
//!   where its 16 KiB output pieces fall); otherwise the message is
//!   exactly that inflation, and for (a) exactly the payload compressed.
//!
//! Checked on every input:
//! - no panic;
//! - the events are exactly the model's, the error (if any) one the model
//!   allows after them, so no message is ever more than `max_message`;
//! - an error is final: later calls return it again and no event follows;
//! - without an error, only an incomplete header is left unconsumed;
//! - through a counting wrapper around the extension: each piece handed to
//!   the assembler is at most `MAX_OUTPUT_PIECE` bytes, the pieces of one
//!   message add up to at most `max_message + MAX_OUTPUT_PIECE` (the
//!   bytes a decompression bomb can cost), the extension stops at the
//!   first error the assembler returns and returns it, and the bytes the
//!   assembler accepted are the message delivered.

#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use libfuzzer_sys::fuzz_target;
use wschat::ws::deflate::inflate::Inflate;
use wschat::ws::deflate::pool::Pools;
use wschat::ws::extension::{Extension, MAX_OUTPUT_PIECE, Sink};
use wschat::ws::frame::{MAX_HEADER_LEN, OpCode, RSV1, RSV2, RSV3, encode_frame_rsv};
use wschat::ws::{CloseCode, Decoder, Event, Limits, Message, ProtocolError, Role};

/// §7.2.1: what a sync flush ends with, removed by the sender.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// A stream that does not inflate.
const CORRUPT: ProtocolError = ProtocolError::Extension(CloseCode::INVALID_PAYLOAD);

// --- the input ---------------------------------------------------------------
//
// setup    6 bytes: s0 = max_message (bits 0-2), max_frame (3-5), cut the
//          stream short (6-7 both set); s1 = max_fragments (0-1), largest
//          chunk (2-4); s2 s3 = the chunking's seed; s4 s5 = how many bytes
//          to cut off the end (modulo the stream's length + 1).
// message  h0 = source (bits 0-1: 0 and 1 (a), 2 (b), 3 (c)), text (2),
//          text left as it is rather than made valid (3), window 9 + (4-6)
//          % 7, fragment sizes counted in 64-byte units (7); h1 = level %
//          10, the payload repeated REPEATS[h1 / 10 % 8] times (at most
//          MAX_BASE bytes); h2 = payload length; h3 = fragments 1 + (0-2),
//          no FIN on the last (3), first opcode a continuation (4), the
//          whole repeated COPIES[5-7] times (for (a), its compressed form:
//          sync-flushed streams end on a byte boundary and refer only to
//          themselves, so their concatenation inflates to the payloads'
//          — a large message costs one small compression); then h2 payload
//          bytes; then per fragment: its size (all but the last, which
//          takes the rest), a control byte c (bits 0-1: 2 a Ping after it,
//          3 a Pong; 2-4 that frame's length; 5: an RSV byte r follows,
//          its bits 0-2 flipped in the fragment's RSV, its bits 3-5 the
//          control frame's RSV).
//
// Missing bytes read as 0.

const MESSAGES: [usize; 8] = [0, 1, 10, 100, 1000, 4000, 16384, 40000];
const FRAMES: [usize; 8] = [0, 1, 16, 125, 1000, 8000, 65535, 1 << 20];
const FRAGMENTS: [usize; 4] = [1, 2, 5, 64];
const CHUNKS: [usize; 8] = [1, 2, 3, 7, 16, 64, 1024, 1 << 20];
const REPEATS: [usize; 8] = [1, 1, 1, 2, 3, 7, 16, 64];
/// The most one message's payload is before it is copied (compressing is
/// the slow part, with small windows most of all).
const MAX_BASE: usize = 2048;
const COPIES: [usize; 8] = [1, 1, 1, 2, 3, 10, 50, 400];
/// Bytes on the wire in all of one input's messages, at most (give or
/// take a copy).
const MAX_WIRE: usize = 1 << 16;
const MAX_MESSAGES: usize = 12;

struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Deflated,
    Claimed,
    Plain,
}

/// One message as the client meant it.
#[derive(Debug)]
struct Plan {
    source: Source,
    /// The payload is `base` `copies` times (before compression for
    /// `Deflated`).
    base: Vec<u8>,
    copies: usize,
}

/// One frame of the stream.
#[derive(Debug)]
struct Frame {
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    payload: Vec<u8>,
    /// The message it carries part of (`None` for a control frame).
    plan: Option<usize>,
    /// Where it starts in the stream, and its header's length.
    start: usize,
    header_len: usize,
}

struct Scenario {
    limits: Limits,
    chunk_seed: u32,
    max_chunk: usize,
    plans: Vec<Plan>,
    frames: Vec<Frame>,
    stream: Vec<u8>,
}

thread_local! {
    /// Compressors by (window, level), and the reference decompressor,
    /// reset before each use: making them anew for every input is most of
    /// what an input would cost.
    static COMPRESSORS: RefCell<HashMap<(u8, u32), Compress>> = RefCell::default();
    static DECOMPRESSOR: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// Raw DEFLATE of `payload` with a fresh (or reset) compressor and a sync
/// flush (§7.2.1), its tail still on.
fn deflate(payload: &[u8], window: u8, level: u32) -> Vec<u8> {
    COMPRESSORS.with_borrow_mut(|all| {
        let c = all.entry((window, level)).or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(level), false, window)
        });
        c.reset();
        deflate_with(c, payload)
    })
}

fn deflate_with(c: &mut Compress, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() / 2 + 64);
    loop {
        let consumed = c.total_in() as usize;
        c.compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync)
            .expect("compressing");
        // Room left over: the flush is complete.
        if c.total_in() as usize == payload.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    assert!(out.ends_with(&TAIL), "a sync flush ends with 00 00 ff ff");
    out
}

fn build(data: &[u8]) -> Option<Scenario> {
    if data.len() < 6 {
        return None;
    }
    let mut input = Bytes(data);
    let s: Vec<u8> = (0..6).map(|_| input.byte()).collect();
    let limits = Limits {
        max_message: MESSAGES[usize::from(s[0] & 7)],
        max_frame: FRAMES[usize::from(s[0] >> 3) & 7],
        max_fragments: FRAGMENTS[usize::from(s[1] & 3)],
    };
    let truncate = s[0] >> 6 == 3;
    let max_chunk = CHUNKS[usize::from(s[1] >> 2) & 7];
    let chunk_seed = u32::from(s[2]) << 8 | u32::from(s[3]) | 1;
    let cut_off = usize::from(u16::from_be_bytes([s[4], s[5]]));

    let mut plans = Vec::new();
    let mut frames = Vec::new();
    let mut stream = Vec::new();
    let mut budget = MAX_WIRE;
    let mut push = |frames: &mut Vec<Frame>,
                    fin: bool,
                    rsv: u8,
                    opcode: OpCode,
                    payload: Vec<u8>,
                    plan: Option<usize>| {
        let start = stream.len();
        let key = [0x37, 0xfa, 0x21, 0x3d ^ frames.len() as u8];
        encode_frame_rsv(&mut stream, fin, rsv, opcode, &payload, Some(key));
        let header_len = stream.len() - start - payload.len();
        frames.push(Frame {
            fin,
            rsv,
            opcode,
            payload,
            plan,
            start,
            header_len,
        });
    };

    while !input.0.is_empty() && plans.len() < MAX_MESSAGES {
        let [h0, h1, h2, h3] = [input.byte(), input.byte(), input.byte(), input.byte()];
        let source = match h0 & 3 {
            0 | 1 => Source::Deflated,
            2 => Source::Claimed,
            _ => Source::Plain,
        };
        let text = h0 & 4 != 0;
        let window = 9 + (h0 >> 4 & 7) % 7;
        let unit = if h0 & 0x80 != 0 { 64 } else { 1 };
        let level = u32::from(h1 % 10);
        let base = input.take(usize::from(h2));
        let mut payload = base.repeat(REPEATS[usize::from(h1 / 10) % 8]);
        payload.truncate(MAX_BASE);
        if text && h0 & 8 == 0 {
            payload = String::from_utf8_lossy(&payload).into_owned().into_bytes();
        }
        let once = match source {
            Source::Deflated => deflate(&payload, window, level),
            Source::Claimed | Source::Plain => payload.clone(),
        };
        let copies = COPIES[usize::from(h3 >> 5)].min((budget / once.len().max(1)).max(1));
        budget = budget.saturating_sub(once.len() * copies);
        let mut wire = once.repeat(copies);
        if source == Source::Deflated {
            // The sender removes the last tail only (§7.2.1).
            wire.truncate(wire.len() - TAIL.len());
        }
        let index = plans.len();
        plans.push(Plan {
            source,
            base: payload,
            copies,
        });

        let fragments = 1 + usize::from(h3 & 7);
        let mut rest = &wire[..];
        for i in 0..fragments {
            let last = i + 1 == fragments;
            let size = if last {
                rest.len()
            } else {
                (usize::from(input.byte()) * unit).min(rest.len())
            };
            let (piece, after) = rest.split_at(size);
            rest = after;
            let c = input.byte();
            let (flip, control_rsv) = if c & 0x20 != 0 {
                let r = input.byte();
                (r & 7, r >> 3 & 7)
            } else {
                (0, 0)
            };
            let opcode = match (i, h3 & 0x10 != 0) {
                (0, false) if text => OpCode::Text,
                (0, false) => OpCode::Binary,
                _ => OpCode::Continuation,
            };
            // §6.1: RSV1 on the first frame of a message said compressed.
            let claimed = source != Source::Plain && i == 0;
            let rsv = (if claimed { RSV1 } else { 0 }) ^ flip;
            let fin = last && h3 & 8 == 0;
            push(&mut frames, fin, rsv, opcode, piece.to_vec(), Some(index));
            let ping = match c & 3 {
                2 => Some(OpCode::Ping),
                3 => Some(OpCode::Pong),
                _ => None,
            };
            if let Some(op) = ping {
                let body = vec![c; usize::from(c >> 2 & 7)];
                push(&mut frames, true, control_rsv, op, body, None);
            }
        }
    }
    if truncate {
        stream.truncate(stream.len() - cut_off % (stream.len() + 1));
    }
    Some(Scenario {
        limits,
        chunk_seed,
        max_chunk,
        plans,
        frames,
        stream,
    })
}

// --- reference model ---------------------------------------------------------

/// What a compressed payload inflates to, all at once.
struct Reference<'a> {
    /// The output, up to the first error; at most `cap` bytes.
    output: &'a [u8],
    /// The stream does not inflate, or has bytes after its final block.
    corrupt: bool,
}

/// Inflate `compressed` in one call with a fresh raw-DEFLATE decompressor
/// of the largest window (§7.2.2), then, if the message is complete (`end`)
/// and no final block has ended the stream, the tail. At most `cap` bytes
/// of output (into `output`, emptied first): past that, only "more than
/// `cap`" matters.
fn reference<'a>(
    compressed: &[u8],
    end: bool,
    cap: usize,
    output: &'a mut Vec<u8>,
) -> Reference<'a> {
    output.clear();
    output.reserve_exact(cap);
    let corrupt = DECOMPRESSOR.with_borrow_mut(|d| {
        let d = d.get_or_insert_with(|| Decompress::new_with_window_bits(false, 15));
        d.reset(false);
        inflate_all(d, compressed, end, output)
    });
    Reference {
        output: &output[..],
        corrupt,
    }
}

/// Is it corrupt?
fn inflate_all(d: &mut Decompress, compressed: &[u8], end: bool, output: &mut Vec<u8>) -> bool {
    match d.decompress_vec(compressed, output, FlushDecompress::None) {
        Err(_) => return true,
        Ok(Status::StreamEnd) => return (d.total_in() as usize) < compressed.len(),
        Ok(_) if output.len() == output.capacity() => return false,
        Ok(_) => assert_eq!(d.total_in() as usize, compressed.len()),
    }
    if !end {
        return false;
    }
    let before = d.total_in();
    match d.decompress_vec(&TAIL, output, FlushDecompress::Sync) {
        Err(_) => true,
        Ok(Status::StreamEnd) => d.total_in() - before < TAIL.len() as u64,
        Ok(_) => false,
    }
}

/// The errors a decoder may fail with, having read a compressed message's
/// payload so far (`end`: all of it) that inflates to `r`: empty when it
/// must not fail. Several can apply: which comes first depends on where
/// the inflater's bounded output pieces fall.
fn verdict(r: &Reference, text: bool, end: bool, max: usize) -> Vec<ProtocolError> {
    let mut errors = Vec::new();
    if r.corrupt {
        errors.push(CORRUPT);
    }
    if r.output.len() > max {
        errors.push(ProtocolError::MessageTooLarge);
    }
    if text {
        // Only bytes within the limit reach the UTF-8 check.
        let checked = &r.output[..r.output.len().min(max)];
        let impossible = std::str::from_utf8(checked).is_err_and(|e| e.error_len().is_some());
        let unfinished = end && errors.is_empty() && std::str::from_utf8(r.output).is_err();
        if impossible || unfinished {
            errors.push(ProtocolError::InvalidUtf8);
        }
    }
    errors
}

/// The message in progress, as the model sees it.
struct InMessage {
    text: bool,
    compressed: bool,
    /// The payload so far, as received (compressed or not).
    received: Vec<u8>,
    /// For a compressed one: what `received` inflates to.
    inflated: Vec<u8>,
    fragments: usize,
    plan: usize,
    /// Frames of another message's plan joined it.
    mixed: bool,
}

#[derive(Debug)]
struct Outcome {
    events: Vec<Event>,
    /// Per event: was it a compressed message?
    compressed: Vec<bool>,
    /// The errors allowed after the events; empty: none.
    errors: Vec<ProtocolError>,
    left_over: usize,
}

fn model(scenario: &Scenario) -> Outcome {
    let limits = scenario.limits;
    let stream_len = scenario.stream.len();
    let cap = limits.max_message + 2 * MAX_OUTPUT_PIECE;
    let mut out = Outcome {
        events: Vec::new(),
        compressed: Vec::new(),
        errors: Vec::new(),
        left_over: 0,
    };
    let fail = |mut out: Outcome, errors: Vec<ProtocolError>| {
        out.errors = errors;
        out
    };
    let mut message: Option<InMessage> = None;
    let mut scratch = Vec::new();
    for frame in &scenario.frames {
        let mut pos = frame.start;
        if pos >= stream_len {
            break;
        }
        // The RSV bits, from the first byte alone (§5.2; RFC 7692 §6).
        if frame.rsv & (RSV2 | RSV3) != 0 {
            return fail(out, vec![ProtocolError::ReservedBits]);
        }
        if frame.rsv & RSV1 != 0
            && (frame.opcode == OpCode::Continuation || frame.opcode.is_control())
        {
            return fail(out, vec![ProtocolError::MisplacedExtensionBits]);
        }
        if stream_len - pos < frame.header_len {
            out.left_over = stream_len - pos;
            return out;
        }
        pos += frame.header_len;
        let len = frame.payload.len();
        let control = frame.opcode.is_control();
        if !control {
            match (frame.opcode, &message) {
                (OpCode::Continuation, None) => {
                    return fail(out, vec![ProtocolError::UnexpectedContinuation]);
                }
                (OpCode::Continuation, Some(_)) | (_, None) => {}
                (_, Some(_)) => return fail(out, vec![ProtocolError::ExpectedContinuation]),
            }
            if len > limits.max_frame {
                return fail(out, vec![ProtocolError::FrameTooLarge]);
            }
            let plan = frame.plan.expect("a data frame belongs to a message");
            match &mut message {
                Some(m) => {
                    m.fragments += 1;
                    m.mixed |= m.plan != plan;
                    if m.fragments > limits.max_fragments {
                        return fail(out, vec![ProtocolError::TooManyFragments]);
                    }
                }
                None => {
                    message = Some(InMessage {
                        text: frame.opcode == OpCode::Text,
                        compressed: frame.rsv & RSV1 != 0,
                        received: Vec::new(),
                        inflated: Vec::new(),
                        fragments: 1,
                        plan,
                        mixed: false,
                    })
                }
            }
            let m = message.as_ref().unwrap();
            // Uncompressed, the declared length counts (RFC 6455 §10.4).
            if !m.compressed && m.received.len() + len > limits.max_message {
                return fail(out, vec![ProtocolError::MessageTooLarge]);
            }
        }
        let available = (stream_len - pos).min(len);
        let part = &frame.payload[..available];
        let complete = available == len;
        if let Some(m) = message.as_mut().filter(|_| !control) {
            m.received.extend_from_slice(part);
            if m.compressed {
                let end = complete && frame.fin;
                let r = reference(&m.received, end, cap, &mut scratch);
                let errors = verdict(&r, m.text, end, limits.max_message);
                if !errors.is_empty() {
                    return fail(out, errors);
                }
                m.inflated.clear();
                m.inflated.extend_from_slice(r.output);
            } else if m.text
                && std::str::from_utf8(&m.received).is_err_and(|e| e.error_len().is_some())
            {
                return fail(out, vec![ProtocolError::InvalidUtf8]);
            }
        }
        if !complete {
            return out;
        }
        let event = match frame.opcode {
            OpCode::Ping => Event::Ping(frame.payload.clone()),
            OpCode::Pong => Event::Pong(frame.payload.clone()),
            _ if frame.fin => {
                let m = message.take().unwrap();
                let bytes = if m.compressed {
                    let plan = &scenario.plans[m.plan];
                    if plan.source == Source::Deflated && !m.mixed {
                        // (a): the payload compressed comes back, exactly.
                        let n = plan.base.len();
                        assert_eq!(m.inflated.len(), n * plan.copies, "the reference is wrong");
                        assert!(
                            n == 0 || m.inflated.chunks(n).all(|c| c == plan.base),
                            "the reference inflation is wrong"
                        );
                    }
                    m.inflated
                } else {
                    m.received
                };
                let message = if m.text {
                    match String::from_utf8(bytes) {
                        Ok(text) => Message::Text(text),
                        Err(_) => return fail(out, vec![ProtocolError::InvalidUtf8]),
                    }
                } else {
                    Message::Binary(bytes)
                };
                out.compressed.push(m.compressed);
                out.events.push(Event::Message(message));
                continue;
            }
            _ => continue,
        };
        out.compressed.push(false);
        out.events.push(event);
    }
    out
}

// --- the counting wrapper ----------------------------------------------------

#[derive(Debug, Default)]
struct Counts {
    /// A compressed message is in progress.
    active: bool,
    /// Bytes handed to the assembler in this message, and those it kept.
    handed: usize,
    accepted: usize,
    /// `accepted` of every message whose `finish` succeeded, in order.
    finished: Vec<usize>,
}

/// `Inflate`, with every piece it hands the assembler counted and checked.
#[derive(Debug)]
struct Counting {
    inner: Inflate,
    counts: Arc<Mutex<Counts>>,
    max_message: usize,
}

impl Counting {
    fn through(
        &mut self,
        sink: &mut Sink<'_>,
        call: impl FnOnce(&mut Inflate, &mut Sink<'_>) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        let bound = self.max_message + MAX_OUTPUT_PIECE;
        let counts = &self.counts;
        assert!(
            counts.lock().unwrap().active,
            "payload outside a compressed message"
        );
        let mut refused = None;
        let result = call(&mut self.inner, &mut |piece: &[u8]| {
            assert!(
                refused.is_none(),
                "went on after the assembler refused a piece"
            );
            assert!(
                piece.len() <= MAX_OUTPUT_PIECE,
                "a piece of {} bytes",
                piece.len()
            );
            let mut c = counts.lock().unwrap();
            c.handed += piece.len();
            assert!(
                c.handed <= bound,
                "{} bytes handed on, bound {bound}",
                c.handed
            );
            let result = sink(piece);
            match result {
                Ok(()) => c.accepted += piece.len(),
                Err(e) => refused = Some(e),
            }
            result
        });
        if let Some(e) = refused {
            assert_eq!(
                result,
                Err(e),
                "the assembler's error is returned unchanged"
            );
        }
        result
    }
}

impl Extension for Counting {
    fn rsv_bits(&self) -> u8 {
        self.inner.rsv_bits()
    }

    fn start_message(&mut self, opcode: OpCode, rsv: u8) -> Result<bool, ProtocolError> {
        let result = self.inner.start_message(opcode, rsv);
        assert_eq!(result, Ok(rsv & RSV1 != 0));
        if result == Ok(true) {
            let mut c = self.counts.lock().unwrap();
            c.active = true;
            c.handed = 0;
            c.accepted = 0;
        }
        result
    }

    fn decode(&mut self, input: &[u8], sink: &mut Sink<'_>) -> Result<(), ProtocolError> {
        self.through(sink, |inner, sink| inner.decode(input, sink))
    }

    fn finish(&mut self, sink: &mut Sink<'_>) -> Result<(), ProtocolError> {
        let result = self.through(sink, |inner, sink| inner.finish(sink));
        let mut c = self.counts.lock().unwrap();
        if result.is_ok() {
            let accepted = c.accepted;
            c.finished.push(accepted);
        }
        c.active = false;
        result
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
        Event::Message(Message::Text(text)) => assert!(text.len() <= limits.max_message),
        Event::Message(Message::Binary(bytes)) => assert!(bytes.len() <= limits.max_message),
        Event::Ping(p) | Event::Pong(p) => assert!(p.len() <= 7),
        Event::Close(_) => panic!("no Close frame was sent"),
    }
}

fn message_len(event: &Event) -> usize {
    match event {
        Event::Message(Message::Text(text)) => text.len(),
        Event::Message(Message::Binary(bytes)) => bytes.len(),
        _ => unreachable!("not a message"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(scenario) = build(data) else {
        return;
    };
    let limits = scenario.limits;
    let stream = &scenario.stream[..];
    let expected = model(&scenario);

    let counts = Arc::new(Mutex::new(Counts::default()));
    let pools = Arc::new(Pools::default());
    let extension = Counting {
        inner: Inflate::per_message(Arc::clone(&pools)),
        counts: Arc::clone(&counts),
        max_message: limits.max_message,
    };
    let mut decoder = Decoder::with_extension(Role::Server, limits, Some(Box::new(extension)));
    let mut chunks = Chunks {
        state: scenario.chunk_seed,
        max: scenario.max_chunk,
    };

    let mut buf: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    let mut error = None;
    let mut fed = 0;
    'feed: while fed < stream.len() {
        let n = chunks.next().min(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
        let mut start = 0;
        while start < buf.len() {
            match decoder.decode(&mut buf[start..]) {
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
                            let i = events.len();
                            assert_eq!(
                                Some(&event),
                                expected.events.get(i),
                                "event {i} differs from the model"
                            );
                            events.push(event);
                        }
                        None if used == 0 => break,
                        None => {}
                    }
                }
            }
        }
        buf.drain(..start);
    }

    assert_eq!(events.len(), expected.events.len(), "{expected:?}");
    match error {
        Some(e) => assert!(
            expected.errors.contains(&e),
            "failed with {e:?}, the model allows {:?}",
            expected.errors
        ),
        None => assert!(
            expected.errors.is_empty(),
            "no error, the model wants {:?}",
            expected.errors
        ),
    }
    if let Some(error) = error {
        // An error is final, whatever follows.
        let mut rest = buf.clone();
        rest.extend_from_slice(&stream[fed..]);
        rest.extend_from_slice(b"\x81\x80\0\0\0\0\x89\x80\0\0\0\0");
        for _ in 0..3 {
            match decoder.decode(&mut rest) {
                Err(again) => assert_eq!(again, error),
                Ok(ok) => panic!("{ok:?} after {error:?}"),
            }
        }
        assert_eq!(decoder.decode(&mut []), Err(error));
    } else {
        assert_eq!(buf.len(), expected.left_over);
        assert!(buf.len() < MAX_HEADER_LEN);
    }

    // What the assembler accepted of each compressed message is the
    // message delivered (the last one to finish may still have failed the
    // final UTF-8 check).
    let delivered: Vec<usize> = events
        .iter()
        .zip(&expected.compressed)
        .filter(|&(_, &compressed)| compressed)
        .map(|(event, _)| message_len(event))
        .collect();
    let counts = counts.lock().unwrap();
    assert!(
        (delivered.len()..=delivered.len() + 1).contains(&counts.finished.len()),
        "finished {:?}, delivered {delivered:?}",
        counts.finished
    );
    assert_eq!(counts.finished[..delivered.len()], delivered[..]);
    // A decompressor goes back to the pool after each message, and one
    // connection never holds more than one.
    assert!(pools.idle().0 <= 1);
});
