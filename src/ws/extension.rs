//! The extension seam: where a negotiated per-message extension plugs into
//! the codec.
//!
//! Received bytes go through the codec as a pipeline, as in
//! python-hyper/wsproto:
//!
//! ```text
//! frame header     FrameHeader::parse: FIN, RSV, opcode, length, key   frame.rs
//!   → payload      unmasked chunks, as they arrive                      mask.rs
//!   → Extension    if negotiated, and the message's first frame's RSV
//!                  bits say so: chunks in, bounded pieces out           this file
//!   → assembler    Decoder: UTF-8, limits, fragments                    message.rs
//! ```
//!
//! With no extension negotiated the third stage is absent: every RSV bit is
//! [`ProtocolError::ReservedBits`] (1002), as soon as the first byte of a
//! frame is in, and payload chunks go straight to the assembler.
//!
//! With one, the [`Decoder`] checks each frame's first byte against the
//! bits the extension owns ([`Extension::rsv_bits`]): a bit it does not own
//! is `ReservedBits`; an owned bit on a control or continuation frame is
//! [`ProtocolError::MisplacedExtensionBits`] (1002; a per-message
//! extension's bits belong on a message's first frame only, RFC 7692 §6).
//! On the first frame of a data message the extension says from the RSV
//! bits whether this message is transformed ([`Extension::start_message`]);
//! if it is, every payload chunk of the message, in order, goes through
//! [`Extension::decode`], and the message's end through
//! [`Extension::finish`]. The extension hands its output to a [`Sink`] in
//! bounded pieces, and the sink is the assembler: the size limit
//! (`max_message`, 1009 the moment the transformed bytes pass it) and the
//! UTF-8 check (1007, incrementally) apply to the transformed bytes, and a
//! sink error stops the extension at once — so an inflating extension never
//! produces more than the limit plus one piece. Sending, a whole message's
//! payload goes through the extension's [`Encoder`], which says which RSV
//! bits its first frame carries ([`encode_message`]); a broadcast asks it
//! once per [`Encoder::shared_key`], not once per receiver.
//!
//! The extension is negotiated in the opening handshake (§9.1): the client
//! offers it in `Sec-WebSocket-Extensions`
//! ([`Upgrade::extensions`](super::handshake::Upgrade::extensions)), the
//! application's [`App::check_upgrade`](crate::server::App::check_upgrade)
//! accepts it by returning a [`Negotiated`], the 101 names it
//! ([`accept_response`](super::handshake::accept_response)), and the
//! connection's decoder runs it ([`conn::start`](super::conn::start)).
//!
//! permessage-deflate (RFC 7692, `deflate/`) is the one implemented: its
//! DEFLATE contexts live in shared pools, taken for a message and given
//! back at its end, not kept by each connection.
//!
//! **A trait, not an enum.** The decoder holds an
//! `Option<Box<dyn Extension>>`: `None` costs a few predictable branches
//! per frame (about 20 instructions of the 800 a 16-byte text frame takes)
//! and nothing per byte, and with an extension the call through the vtable
//! is once per payload chunk, nothing next to inflating it. A trait
//! keeps each extension (and its dependencies, zlib) in its own module
//! instead of one `match` in the codec for every extension, and lets the
//! tests plug in extensions of their own (the tests' `Flip` inverts the
//! high bit of each byte, to show which bytes the assembler sees). An enum
//! would buy static dispatch where it does not matter, and close the set.
//!
//! RFC 6455 §5.8 (extensibility), §9 (extensions, §9.1 negotiation);
//! RFC 7692 (permessage-deflate).

use std::fmt;

use super::close::ProtocolError;
use super::frame::{OpCode, encode_frame, encode_frame_rsv};
use super::handshake::ExtensionOffer;
#[cfg(doc)]
use super::message::Decoder;

/// Where an extension puts a received message's transformed bytes: the
/// message assembler. It returns the assembler's error (too large, bad
/// UTF-8), which the extension must return at once, unchanged.
pub type Sink<'a> = dyn FnMut(&[u8]) -> Result<(), ProtocolError> + 'a;

/// The most an extension hands to a [`Sink`] in one call. The limit is
/// checked before each piece is kept, so an extension that produces its
/// output in pieces of this size (inflating into a buffer of this size,
/// say) never holds, nor makes the decoder hold, more than the limit plus
/// one piece, whatever the peer compressed.
pub const MAX_OUTPUT_PIECE: usize = 16 * 1024;

/// A per-message extension (§5.8, §9): it owns some RSV bits, may
/// transform each data message's payload, and is negotiated in the opening
/// handshake. One value per connection and direction of use: the
/// [`Decoder`] owns the one it receives with.
///
/// RFC 6455 §5.8, §9; RFC 7692 §5–§6 (permessage-deflate).
pub trait Extension: Send + fmt::Debug {
    /// The RSV bits this extension gives a meaning to, in
    /// [`FrameHeader::rsv`](super::frame::FrameHeader::rsv)'s layout
    /// ([`RSV1`](super::frame::RSV1) for permessage-deflate). Any other bit
    /// is refused before the extension sees the frame; an owned bit is
    /// allowed on the first frame of a data message only.
    fn rsv_bits(&self) -> u8;

    /// Receiving: the first frame of a data message (`Text` or `Binary`)
    /// has arrived with `rsv` (only owned bits can be set). Is this message
    /// transformed? If so, its payload goes through [`Extension::decode`]
    /// and [`Extension::finish`]; if not, straight to the assembler.
    fn start_message(&mut self, opcode: OpCode, rsv: u8) -> Result<bool, ProtocolError>;

    /// Receiving: the next unmasked payload bytes of a transformed message,
    /// in order, cut anywhere (across frames and reads). Hand the output to
    /// `sink` as it is produced, at most [`MAX_OUTPUT_PIECE`] bytes a call,
    /// and stop at the first error the sink returns, returning it. The
    /// extension's own errors are [`ProtocolError::Extension`].
    fn decode(&mut self, input: &[u8], sink: &mut Sink<'_>) -> Result<(), ProtocolError>;

    /// Receiving: the transformed message's last frame (FIN) has ended;
    /// hand the rest of the output to `sink` and be ready for the next
    /// message.
    fn finish(&mut self, sink: &mut Sink<'_>) -> Result<(), ProtocolError>;
}

/// The sending side of a per-message extension: shared by every thread
/// that sends on the connection (its [`Sender`](super::Sender) clones),
/// and, through [`Encoder::shared_key`], by every receiver of a broadcast
/// that can be sent the same bytes.
///
/// RFC 6455 §5.8, §9; RFC 7692 §7.2.1 (permessage-deflate's).
pub trait Encoder: Send + Sync + fmt::Debug {
    /// A whole data message's payload. Either write the payload to send
    /// into `out` and return the RSV bits its first frame carries, or
    /// return `None` (leaving `out` as it was) to send `payload` as it is,
    /// RSV 0 (a message too small to be worth compressing). Cannot fail: a
    /// failure here is ours, not the peer's, and is no [`ProtocolError`].
    fn encode(&self, opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) -> Option<u8>;

    /// Encoders of one server that return the same key encode every
    /// message to the same bytes (they keep no state between messages), so
    /// one encoding of a broadcast serves all their receivers; `None` when
    /// the encoding depends on the connection. Keys are below [`SHARED_KEYS`].
    fn shared_key(&self) -> Option<usize>;
}

/// The bound on [`Encoder::shared_key`].
pub const SHARED_KEYS: usize = 16;

/// A negotiated extension at work on one connection: the receiving half the
/// decoder runs, and the sending half (`None` when this side sends nothing
/// transformed, e.g. a window it cannot honour).
#[derive(Debug)]
pub struct InUse {
    pub receive: Box<dyn Extension>,
    pub send: Option<std::sync::Arc<dyn Encoder>>,
}

/// What an application's
/// [`App::check_upgrade`](crate::server::App::check_upgrade) returns to
/// accept an offered extension.
#[derive(Debug)]
pub struct Negotiated {
    /// The extension and its parameters as the 101 names them in
    /// `Sec-WebSocket-Extensions` (§9.1). Its name must be one the client
    /// offered (§9.1: the server may only accept an offer).
    pub response: ExtensionOffer,
    /// The connection's instance.
    pub in_use: InUse,
}

/// Append one whole data message as one frame: through `extension` when
/// there is one, with the RSV bits it says, else as [`encode_frame`] does.
pub fn encode_message(
    extension: Option<&dyn Encoder>,
    out: &mut Vec<u8>,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    if let Some(extension) = extension {
        let mut transformed = Vec::new();
        if let Some(rsv) = extension.encode(opcode, payload, &mut transformed) {
            encode_frame_rsv(out, true, rsv, opcode, &transformed, mask);
            return;
        }
    }
    encode_frame(out, true, opcode, payload, mask);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::ws::frame::{FrameHeader, RSV1, RSV2, RSV3};
    use crate::ws::{CloseCode, Decoder, Event, Limits, Message, Role};

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A test-only extension that owns RSV1. A message whose first frame
    /// has RSV1 is "flipped": the high bit of every byte is inverted, so
    /// ASCII on the wire is invalid UTF-8 after it and the reverse — the
    /// assembler's verdict shows which bytes it saw. `repeat` writes each
    /// output byte that many times (0: only every other byte, to shrink),
    /// `piece` is the most it hands over at once, `tail` what `finish`
    /// appends; a 0x00 byte on the wire is the extension's own error.
    #[derive(Debug)]
    struct Flip {
        repeat: usize,
        piece: usize,
        tail: &'static [u8],
        /// Wire bytes seen in the current message (for `repeat == 0`).
        seen: usize,
        /// Every output byte it ever produced.
        produced: Arc<AtomicUsize>,
    }

    const BAD_INPUT: ProtocolError = ProtocolError::Extension(CloseCode::INVALID_PAYLOAD);

    fn flip() -> Flip {
        Flip {
            repeat: 1,
            piece: 3,
            tail: b"",
            seen: 0,
            produced: Arc::new(AtomicUsize::new(0)),
        }
    }

    impl Extension for Flip {
        fn rsv_bits(&self) -> u8 {
            RSV1
        }

        fn start_message(&mut self, _opcode: OpCode, rsv: u8) -> Result<bool, ProtocolError> {
            self.seen = 0;
            Ok(rsv & RSV1 != 0)
        }

        fn decode(&mut self, input: &[u8], sink: &mut Sink<'_>) -> Result<(), ProtocolError> {
            let mut piece = Vec::with_capacity(self.piece);
            for &b in input {
                if b == 0 {
                    return Err(BAD_INPUT);
                }
                self.seen += 1;
                let times = match self.repeat {
                    0 => usize::from(self.seen % 2 == 1),
                    n => n,
                };
                for _ in 0..times {
                    piece.push(b ^ 0x80);
                    if piece.len() == self.piece {
                        self.produced.fetch_add(piece.len(), Ordering::Relaxed);
                        sink(&piece)?;
                        piece.clear();
                    }
                }
            }
            self.produced.fetch_add(piece.len(), Ordering::Relaxed);
            sink(&piece)
        }

        fn finish(&mut self, sink: &mut Sink<'_>) -> Result<(), ProtocolError> {
            sink(self.tail)
        }
    }

    impl Encoder for Flip {
        fn encode(&self, _opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) -> Option<u8> {
            if payload.len() < 2 {
                return None;
            }
            out.extend(payload.iter().map(|b| b ^ 0x80));
            Some(RSV1)
        }

        fn shared_key(&self) -> Option<usize> {
            Some(0)
        }
    }

    fn flipped(bytes: &[u8]) -> Vec<u8> {
        bytes.iter().map(|b| b ^ 0x80).collect()
    }

    /// A client frame (masked) with these RSV bits.
    fn frame(fin: bool, rsv: u8, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame_rsv(&mut out, fin, rsv, opcode, payload, Some(KEY));
        out
    }

    fn decoder(extension: Option<Flip>, limits: Limits) -> Decoder {
        Decoder::with_extension(
            Role::Server,
            limits,
            extension.map(|e| Box::new(e) as Box<dyn Extension>),
        )
    }

    /// Every event of `stream`, fed in one piece, then the error if any.
    fn decode_all(mut d: Decoder, stream: &[u8]) -> (Vec<Event>, Option<ProtocolError>) {
        let mut buf = stream.to_vec();
        let mut pos = 0;
        let mut events = Vec::new();
        loop {
            match d.decode(&mut buf[pos..]) {
                Ok((used, event)) => {
                    pos += used;
                    match event {
                        Some(event) => events.push(event),
                        None => return (events, None),
                    }
                }
                Err(e) => return (events, Some(e)),
            }
        }
    }

    fn text(s: &str) -> Event {
        Event::Message(Message::Text(s.to_owned()))
    }

    #[test]
    fn rsv1_on_a_first_frame_is_accepted_when_negotiated_and_transformed() {
        // "Hello" flipped is not UTF-8 on the wire; the assembler sees it
        // after the extension, as "Hello".
        let wire = frame(true, RSV1, OpCode::Text, &flipped(b"Hello"));
        assert!(std::str::from_utf8(&flipped(b"Hello")).is_err());
        let (events, error) = decode_all(decoder(Some(flip()), Limits::CHAT), &wire);
        assert_eq!((events, error), (vec![text("Hello")], None));
        // Binary too.
        let wire = frame(true, RSV1, OpCode::Binary, &[0x01, 0x82]);
        let (events, _) = decode_all(decoder(Some(flip()), Limits::CHAT), &wire);
        assert_eq!(events, [Event::Message(Message::Binary(vec![0x81, 0x02]))]);
    }

    #[test]
    fn without_the_bit_a_message_passes_the_extension_by() {
        let wire = frame(true, 0, OpCode::Text, b"Hello");
        let (events, error) = decode_all(decoder(Some(flip()), Limits::CHAT), &wire);
        assert_eq!((events, error), (vec![text("Hello")], None));
    }

    #[test]
    fn a_fragmented_message_goes_through_whole_and_control_frames_do_not() {
        let mut wire = frame(false, RSV1, OpCode::Text, &flipped(b"Hel"));
        wire.extend(frame(true, 0, OpCode::Ping, b"ping"));
        wire.extend(frame(false, 0, OpCode::Continuation, &flipped(b"lo, ")));
        wire.extend(frame(
            true,
            0,
            OpCode::Continuation,
            &flipped(b"w\xc3\xb6rld"),
        ));
        let ext = Flip {
            tail: b"!",
            ..flip()
        };
        let (events, error) = decode_all(decoder(Some(ext), Limits::CHAT), &wire);
        assert_eq!(error, None);
        assert_eq!(
            events,
            [Event::Ping(b"ping".to_vec()), text("Hello, wörld!")]
        );
        // Byte by byte, the same.
        let mut d = decoder(
            Some(Flip {
                tail: b"!",
                ..flip()
            }),
            Limits::CHAT,
        );
        let mut buf = Vec::new();
        let mut events = Vec::new();
        for &b in &wire {
            buf.push(b);
            let (used, event) = d.decode(&mut buf).unwrap();
            buf.drain(..used);
            events.extend(event);
        }
        assert_eq!(
            events,
            [Event::Ping(b"ping".to_vec()), text("Hello, wörld!")]
        );
    }

    #[test]
    fn rsv1_without_an_extension_is_1002_from_the_first_byte() {
        for d in [
            Decoder::new(Role::Server, Limits::CHAT),
            decoder(None, Limits::CHAT),
        ] {
            let wire = frame(true, RSV1, OpCode::Text, b"hi");
            let (_, error) = decode_all(d, &wire[..1]);
            assert_eq!(error, Some(ProtocolError::ReservedBits));
            assert_eq!(error.unwrap().close_code(), CloseCode::PROTOCOL_ERROR);
        }
    }

    #[test]
    fn bits_the_extension_does_not_own_are_1002_from_the_first_byte() {
        for rsv in [RSV2, RSV3, RSV1 | RSV2, RSV1 | RSV3] {
            for opcode in [OpCode::Text, OpCode::Continuation, OpCode::Ping] {
                let wire = frame(true, rsv, opcode, b"hi");
                let (_, error) = decode_all(decoder(Some(flip()), Limits::CHAT), &wire[..1]);
                assert_eq!(
                    error,
                    Some(ProtocolError::ReservedBits),
                    "{rsv:#b} {opcode:?}"
                );
            }
        }
    }

    #[test]
    fn rsv1_on_a_continuation_or_control_frame_is_1002_from_the_first_byte() {
        let start = frame(false, RSV1, OpCode::Text, &flipped(b"a"));
        for (opcode, payload) in [
            (OpCode::Continuation, &b"b"[..]),
            (OpCode::Ping, b""),
            (OpCode::Pong, b"x"),
            (OpCode::Close, b"\x03\xe8"),
        ] {
            let bad = frame(true, RSV1, opcode, payload);
            // After a first frame (a continuation is expected), and alone.
            for before in [&start[..], &[]] {
                let mut wire = before.to_vec();
                wire.push(bad[0]);
                let (_, error) = decode_all(decoder(Some(flip()), Limits::CHAT), &wire);
                assert_eq!(
                    error,
                    Some(ProtocolError::MisplacedExtensionBits),
                    "{opcode:?}"
                );
                assert_eq!(error.unwrap().close_code(), CloseCode::PROTOCOL_ERROR);
            }
        }
    }

    #[test]
    fn utf8_is_checked_on_the_transformed_bytes_as_they_come() {
        // ASCII on the wire, 0xE1 0xE2 … after the extension: 1007, before
        // the frame is complete ("abc" flipped cannot be UTF-8 once the
        // second byte is out).
        let wire = frame(true, RSV1, OpCode::Text, b"abcdefgh");
        let (events, error) = decode_all(decoder(Some(flip()), Limits::CHAT), &wire[..6 + 4]);
        assert_eq!((events, error), (vec![], Some(ProtocolError::InvalidUtf8)));
        assert_eq!(error.unwrap().close_code(), CloseCode::INVALID_PAYLOAD);
        // An unfinished character at the end, after `finish`: 1007 too.
        let wire = frame(true, RSV1, OpCode::Text, &flipped(b"ok\xc3"));
        let (_, error) = decode_all(decoder(Some(flip()), Limits::CHAT), &wire);
        assert_eq!(error, Some(ProtocolError::InvalidUtf8));
        // `finish` may complete it.
        let ext = Flip {
            tail: b"\xa9",
            ..flip()
        };
        let (events, error) = decode_all(decoder(Some(ext), Limits::CHAT), &wire);
        assert_eq!((events, error), (vec![text("oké")], None));
    }

    #[test]
    fn the_limit_is_on_the_transformed_bytes() {
        let limits = Limits {
            max_frame: 100,
            max_message: 10,
            max_fragments: 10,
        };
        // Doubling: 5 wire bytes are 10, at the limit; 6 are 12, over it.
        let double = || Flip {
            repeat: 2,
            ..flip()
        };
        let wire = frame(true, RSV1, OpCode::Binary, &[0x80 | b'a'; 5]);
        let (events, error) = decode_all(decoder(Some(double()), limits), &wire);
        assert_eq!(
            (events, error),
            (vec![Event::Message(Message::Binary(vec![b'a'; 10]))], None)
        );
        let wire = frame(true, RSV1, OpCode::Binary, &[0x80 | b'a'; 6]);
        let (_, error) = decode_all(decoder(Some(double()), limits), &wire);
        assert_eq!(error, Some(ProtocolError::MessageTooLarge));
        assert_eq!(error.unwrap().close_code(), CloseCode::TOO_BIG);
        // Halving: 20 wire bytes, over max_message, are 10 after it — and
        // that is what counts for a transformed message.
        let halve = Flip {
            repeat: 0,
            ..flip()
        };
        let wire = frame(true, RSV1, OpCode::Text, &flipped(&[b'z'; 20]));
        let (events, error) = decode_all(decoder(Some(halve), limits), &wire);
        assert_eq!((events, error), (vec![text("zzzzzzzzzz")], None));
        // An untransformed message keeps today's check on the declared
        // length, from the header alone.
        let wire = frame(true, 0, OpCode::Text, &[b'z'; 11]);
        let (_, error) = decode_all(decoder(Some(flip()), limits), &wire[..6]);
        assert_eq!(error, Some(ProtocolError::MessageTooLarge));
        // max_frame still applies to the frame on the wire.
        let wire = frame(true, RSV1, OpCode::Text, &[b'z'; 101]);
        let (_, error) = decode_all(decoder(Some(flip()), limits), &wire[..8]);
        assert_eq!(error, Some(ProtocolError::FrameTooLarge));
    }

    #[test]
    fn an_expanding_extension_is_stopped_the_moment_it_passes_the_limit() {
        // Each wire byte is 1000 output bytes, handed over 100 at a time:
        // one 64-byte frame would be 64,000 bytes, and the limit is 1,000.
        let produced = Arc::new(AtomicUsize::new(0));
        let bomb = Flip {
            repeat: 1000,
            piece: 100,
            produced: Arc::clone(&produced),
            ..flip()
        };
        let limits = Limits {
            max_frame: 1 << 20,
            max_message: 1000,
            max_fragments: 10,
        };
        let wire = frame(true, RSV1, OpCode::Binary, &[0x80 | b'x'; 64]);
        let (_, error) = decode_all(decoder(Some(bomb), limits), &wire);
        assert_eq!(error, Some(ProtocolError::MessageTooLarge));
        // It made the piece that passed the limit, and no more.
        assert_eq!(produced.load(Ordering::Relaxed), 1000 + 100);
    }

    #[test]
    fn an_extension_error_fails_with_its_own_code_and_is_sticky() {
        let mut d = decoder(Some(flip()), Limits::CHAT);
        let mut wire = frame(true, RSV1, OpCode::Text, &[b'a' ^ 0x80, 0x00]);
        assert_eq!(d.decode(&mut wire), Err(BAD_INPUT));
        assert_eq!(BAD_INPUT.close_code(), CloseCode::INVALID_PAYLOAD);
        assert_eq!(
            d.decode(&mut frame(true, 0, OpCode::Ping, b"")),
            Err(BAD_INPUT)
        );
    }

    #[test]
    fn messages_follow_one_another_each_with_its_own_bit() {
        let mut wire = frame(true, RSV1, OpCode::Text, &flipped(b"one"));
        wire.extend(frame(true, 0, OpCode::Text, b"two"));
        wire.extend(frame(false, RSV1, OpCode::Binary, &flipped(b"thr")));
        wire.extend(frame(true, 0, OpCode::Continuation, &flipped(b"ee")));
        let (events, error) = decode_all(decoder(Some(flip()), Limits::CHAT), &wire);
        assert_eq!(error, None);
        assert_eq!(
            events,
            [
                text("one"),
                text("two"),
                Event::Message(Message::Binary(b"three".to_vec()))
            ]
        );
    }

    #[test]
    fn encode_message_sets_the_bits_the_extension_names() {
        let ext = flip();
        let mut out = Vec::new();
        encode_message(Some(&ext), &mut out, OpCode::Text, b"Hello", Some(KEY));
        let (header, n) = FrameHeader::parse(&out, Role::Server).unwrap().unwrap();
        assert_eq!((header.rsv, header.payload_len, n), (RSV1, 5, 6));
        let (events, _) = decode_all(decoder(Some(flip()), Limits::CHAT), &out);
        assert_eq!(events, [text("Hello")]);
        // The extension declines: sent as it is, RSV 0.
        let mut out = Vec::new();
        encode_message(Some(&ext), &mut out, OpCode::Text, b"H", None);
        let mut plain = Vec::new();
        encode_frame(&mut plain, true, OpCode::Text, b"H", None);
        assert_eq!(out, plain);
        // No extension: encode_frame.
        let mut out = Vec::new();
        encode_message(None, &mut out, OpCode::Text, b"H", None);
        assert_eq!(out, plain);
    }
}
