//! Message assembly: the sans-IO decoder that turns received bytes into
//! messages and control frames (RFC 6455 §5.4–§5.6).
//!
//! The decoder is fed whatever the socket produced, in pieces of any size.
//! It unmasks and checks payload bytes as soon as they arrive — a frame's
//! text is UTF-8-checked before the frame is complete (§8.1 asks for the
//! failure "as soon as" it is seen) — and reports at most one [`Event`] per
//! call. Buffers grow with the bytes actually received, never from a length
//! the peer merely declared, and never past the configured [`Limits`].

use super::close::{CloseFrame, ProtocolError, parse_close_payload};
use super::frame::{FrameHeader, OpCode, Role};
use super::mask::apply_mask;
use super::trace;
use super::utf8::Utf8Validator;

/// Size limits on what a peer may send (§10.4: "implementations SHOULD
/// impose a limit on frame sizes and the total message size").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest single frame payload, in bytes.
    pub max_frame: usize,
    /// Largest assembled message, in bytes.
    pub max_message: usize,
    /// Most frames one message may be split into. A message is at least
    /// one frame, so 0 has the same effect as 1.
    pub max_fragments: usize,
}

impl Limits {
    /// For a chat server: messages are short, so a peer can pin little memory.
    pub const CHAT: Limits = Limits {
        max_frame: 64 * 1024,
        max_message: 64 * 1024,
        max_fragments: 1024,
    };

    /// For conformance and echo: the Autobahn 9.x cases send 16 MiB messages
    /// and messages of 65,536 fragments and more (9.3.1 sends 4 MiB in
    /// 64-byte fragments); the cap still bounds the per-frame overhead.
    pub const LARGE: Limits = Limits {
        max_frame: 16 * 1024 * 1024,
        max_message: 16 * 1024 * 1024,
        max_fragments: 131_072,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::CHAT
    }
}

/// A complete data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
}

/// What one call to [`Decoder::decode`] may produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Message(Message),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The peer's Close frame; `None` when it carried no status code.
    Close(Option<CloseFrame>),
}

/// A data message whose fragments are still arriving.
#[derive(Debug)]
enum Partial {
    Text { text: String, utf8: Utf8Validator },
    Binary(Vec<u8>),
}

impl Partial {
    fn len(&self) -> usize {
        match self {
            Partial::Text { text, utf8 } => text.len() + utf8.pending(),
            Partial::Binary(bytes) => bytes.len(),
        }
    }
}

#[derive(Debug)]
struct InFrame {
    header: FrameHeader,
    received: u64,
}

/// The receiving half of the protocol, for one connection.
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    limits: Limits,
    frame: Option<InFrame>,
    message: Option<Partial>,
    fragments: usize,
    control: Vec<u8>,
    /// The first error, once there is one: it is reported again by every
    /// later call (see [`Decoder::decode`]).
    failed: Option<ProtocolError>,
    /// Whose frames these are, when each frame is to be logged ([`trace`]).
    trace: Option<std::net::SocketAddr>,
}

impl Decoder {
    /// A decoder for frames received by `role`.
    pub fn new(role: Role, limits: Limits) -> Decoder {
        Decoder {
            role,
            limits,
            frame: None,
            message: None,
            fragments: 0,
            control: Vec::new(),
            failed: None,
            trace: None,
        }
    }

    /// Log every frame this decoder reads as coming from `peer` (at trace
    /// level, see [`trace`]).
    pub fn trace_as(&mut self, peer: Option<std::net::SocketAddr>) {
        self.trace = peer;
    }

    /// Consume bytes from the front of `input` and report what they complete.
    ///
    /// Returns how many bytes were used and the event, if any, that they
    /// finished. Bytes of an incomplete header are left unused: the caller
    /// keeps them and calls again with more appended. Payload bytes are
    /// unmasked in place, which is why `input` is mutable. After an error the
    /// connection must be failed with the error's close code (§7.1.7); the
    /// decoder is not to be used again.
    ///
    /// Errors are sticky: once `decode` has failed, every later call returns
    /// the same error and consumes nothing. The state at the failure is
    /// half-updated (a message started but refused by a limit, a frame whose
    /// invalid bytes were already counted as received), and §7.1.7 says no
    /// further data is to be processed, so nothing built from it may come
    /// out as an event.
    pub fn decode(&mut self, input: &mut [u8]) -> Result<(usize, Option<Event>), ProtocolError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let result = self.decode_frames(input);
        if let Err(error) = result {
            self.failed = Some(error);
        }
        result
    }

    fn decode_frames(&mut self, input: &mut [u8]) -> Result<(usize, Option<Event>), ProtocolError> {
        let mut pos = 0;
        loop {
            let frame = match &mut self.frame {
                Some(frame) => frame,
                None => match FrameHeader::parse(&input[pos..], self.role)? {
                    None => return Ok((pos, None)),
                    Some((header, n)) => {
                        self.start_frame(&header)?;
                        pos += n;
                        self.frame.insert(InFrame {
                            header,
                            received: 0,
                        })
                    }
                },
            };
            let header = frame.header;
            let remaining = header.payload_len - frame.received;
            let take = usize::try_from(remaining)
                .unwrap_or(usize::MAX)
                .min(input.len() - pos);
            let chunk = &mut input[pos..pos + take];
            if let Some(key) = header.mask {
                apply_mask(chunk, key, (frame.received % 4) as usize);
            }
            if frame.received == 0 && self.trace.is_some() {
                trace::frame(trace::Direction::In, self.trace, &header, chunk);
            }
            frame.received += take as u64;
            let done = frame.received == header.payload_len;
            pos += take;
            self.payload(header.opcode, chunk)?;
            if !done {
                return Ok((pos, None));
            }
            self.frame = None;
            if let Some(event) = self.finish_frame(&header)? {
                return Ok((pos, Some(event)));
            }
        }
    }

    /// True between the frames of a fragmented message, or inside a frame:
    /// a connection that ends here ends in the middle of something.
    pub fn is_mid_message(&self) -> bool {
        self.frame.is_some() || self.message.is_some()
    }

    /// The rules that depend on what came before (§5.4) and the size limits.
    fn start_frame(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
        if header.opcode.is_control() {
            self.control.clear();
            return Ok(());
        }
        // The order of frames first: a frame that may not come here at all
        // is a protocol error (1002) whatever size it declares.
        match (header.opcode, &self.message) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Continuation, Some(_)) | (_, None) => {}
            (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
        }
        if header.payload_len > self.limits.max_frame as u64 {
            return Err(ProtocolError::FrameTooLarge);
        }
        match header.opcode {
            OpCode::Continuation => {
                self.fragments += 1;
                if self.fragments > self.limits.max_fragments {
                    return Err(ProtocolError::TooManyFragments);
                }
            }
            OpCode::Text => {
                self.fragments = 1;
                self.message = Some(Partial::Text {
                    text: String::new(),
                    utf8: Utf8Validator::new(),
                });
            }
            _ => {
                self.fragments = 1;
                self.message = Some(Partial::Binary(Vec::new()));
            }
        }
        let so_far = self.message.as_ref().map_or(0, Partial::len) as u64;
        if so_far + header.payload_len > self.limits.max_message as u64 {
            return Err(ProtocolError::MessageTooLarge);
        }
        Ok(())
    }

    fn payload(&mut self, opcode: OpCode, chunk: &[u8]) -> Result<(), ProtocolError> {
        if opcode.is_control() {
            self.control.extend_from_slice(chunk);
            return Ok(());
        }
        let max = self.limits.max_message;
        match &mut self.message {
            Some(Partial::Text { text, utf8 }) => {
                if let Some(room) = bounded_growth(text.len(), text.capacity(), chunk.len(), max) {
                    text.reserve_exact(room);
                }
                utf8.feed(chunk, |valid| text.push_str(valid))
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            Some(Partial::Binary(bytes)) => {
                if let Some(room) = bounded_growth(bytes.len(), bytes.capacity(), chunk.len(), max)
                {
                    bytes.reserve_exact(room);
                }
                bytes.extend_from_slice(chunk);
            }
            None => {}
        }
        Ok(())
    }

    fn finish_frame(&mut self, header: &FrameHeader) -> Result<Option<Event>, ProtocolError> {
        match header.opcode {
            OpCode::Ping => return Ok(Some(Event::Ping(std::mem::take(&mut self.control)))),
            OpCode::Pong => return Ok(Some(Event::Pong(std::mem::take(&mut self.control)))),
            OpCode::Close => return Ok(Some(Event::Close(parse_close_payload(&self.control)?))),
            _ => {}
        }
        if !header.fin {
            return Ok(None);
        }
        match self.message.take() {
            Some(Partial::Text { text, utf8 }) => {
                if !utf8.is_complete() {
                    return Err(ProtocolError::InvalidUtf8);
                }
                Ok(Some(Event::Message(Message::Text(text))))
            }
            Some(Partial::Binary(bytes)) => Ok(Some(Event::Message(Message::Binary(bytes)))),
            None => Ok(None),
        }
    }
}

/// How much to reserve before appending `extra` bytes to a buffer of `len`
/// bytes and `capacity`: doubling, as a `Vec` would, but never beyond `max`,
/// so a message at the limit does not hold twice the limit in capacity.
fn bounded_growth(len: usize, capacity: usize, extra: usize, max: usize) -> Option<usize> {
    let needed = len + extra;
    (needed > capacity).then(|| needed.max(capacity * 2).max(64).min(max.max(needed)) - len)
}
