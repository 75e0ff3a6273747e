//! Message assembly: the sans-IO decoder that turns received bytes into
//! messages and control frames (RFC 6455 §5.4–§5.6).
//!
//! The decoder is fed whatever the socket produced, in pieces of any size.
//! It unmasks and checks payload bytes as soon as they arrive — a frame's
//! text is UTF-8-checked before the frame is complete (§8.1 asks for the
//! failure "as soon as" it is seen) — and reports at most one [`Event`] per
//! call. Buffers grow with the bytes actually received, never from a length
//! the peer merely declared, and never past the configured [`Limits`].
//!
//! A negotiated per-message extension ([`Extension`], §5.8, §9) sits between
//! the unmasked payload and the assembly: it owns some RSV bits (checked
//! here, from each frame's first byte), and a message whose first frame says
//! so goes through it, so the UTF-8 check and `max_message` see the bytes it
//! produces. With none, the RSV bits must be 0 and nothing else changes. The
//! pipeline is drawn in [`extension`](super::extension).

use super::close::{CloseFrame, ProtocolError, parse_close_payload};
use super::extension::Extension;
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
    /// The negotiated extension, if any.
    extension: Option<Box<dyn Extension>>,
    /// The RSV bits it owns (0 without one), in [`FrameHeader::rsv`]'s layout.
    owned_rsv: u8,
    /// The message in progress goes through the extension.
    transformed: bool,
}

impl Decoder {
    /// A decoder for frames received by `role`, with no extension: every
    /// RSV bit is [`ProtocolError::ReservedBits`].
    pub fn new(role: Role, limits: Limits) -> Decoder {
        Decoder::with_extension(role, limits, None)
    }

    /// A decoder for frames received by `role`, running the `extension`
    /// negotiated in the handshake, if any (see [`super::extension`]).
    pub fn with_extension(
        role: Role,
        limits: Limits,
        extension: Option<Box<dyn Extension>>,
    ) -> Decoder {
        Decoder {
            role,
            limits,
            frame: None,
            message: None,
            fragments: 0,
            control: Vec::new(),
            failed: None,
            trace: None,
            owned_rsv: extension.as_ref().map_or(0, |e| e.rsv_bits() & 0x7),
            extension,
            transformed: false,
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
                // `parse` reports the RSV bits; what they may be is the
                // extension's, checked here ahead of every other rule,
                // from the first byte alone. (After `parse` rather than
                // before it: a header with no bit set then costs one test,
                // measurably less than a check ahead of the call.)
                None => match FrameHeader::parse(&input[pos..], self.role) {
                    Ok(Some((header, n))) => {
                        if header.rsv != 0 {
                            self.check_rsv(input[pos])?;
                        }
                        self.start_frame(&header)?;
                        pos += n;
                        self.frame.insert(InFrame {
                            header,
                            received: 0,
                        })
                    }
                    Ok(None) => {
                        if let Some(&b0) = input.get(pos)
                            && b0 & 0x70 != 0
                        {
                            self.check_rsv(b0)?;
                        }
                        return Ok((pos, None));
                    }
                    // Refused for a later field: the RSV bits come first.
                    Err(error) => {
                        self.check_rsv(input[pos])?;
                        return Err(error);
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

    /// The RSV bits of a frame's first byte `b0` (§5.2): only the
    /// negotiated extension's may be set, and only on the first frame of a
    /// data message (a per-message extension's bits, RFC 7692 §6). Ahead
    /// of every other rule, as they come first on the wire.
    #[cold]
    #[inline(never)]
    fn check_rsv(&self, b0: u8) -> Result<(), ProtocolError> {
        let rsv = (b0 >> 4) & 0x7;
        if rsv == 0 {
            return Ok(());
        }
        if rsv & !self.owned_rsv != 0 {
            return Err(ProtocolError::ReservedBits);
        }
        let opcode = b0 & 0x0F;
        if opcode == OpCode::Continuation as u8 || opcode & 0x8 != 0 {
            return Err(ProtocolError::MisplacedExtensionBits);
        }
        Ok(())
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
                self.transformed = self.start_message(header)?;
                self.message = Some(Partial::Text {
                    text: String::new(),
                    utf8: Utf8Validator::new(),
                });
            }
            _ => {
                self.fragments = 1;
                self.transformed = self.start_message(header)?;
                self.message = Some(Partial::Binary(Vec::new()));
            }
        }
        // A transformed message's limit is on what the extension makes of
        // it, checked as its output arrives (`transformed_payload`).
        let so_far = self.message.as_ref().map_or(0, Partial::len) as u64;
        if so_far + header.payload_len > self.limits.max_message as u64 && !self.transformed {
            return Err(ProtocolError::MessageTooLarge);
        }
        Ok(())
    }

    /// Does the data message this first frame starts go through the
    /// extension?
    #[inline]
    fn start_message(&mut self, header: &FrameHeader) -> Result<bool, ProtocolError> {
        match &mut self.extension {
            None => Ok(false),
            Some(extension) => extension.start_message(header.opcode, header.rsv),
        }
    }

    fn payload(&mut self, opcode: OpCode, chunk: &[u8]) -> Result<(), ProtocolError> {
        if opcode.is_control() {
            self.control.extend_from_slice(chunk);
            return Ok(());
        }
        if self.transformed {
            return self.transformed_payload(chunk);
        }
        append::<false>(&mut self.message, self.limits.max_message, chunk)
    }

    /// Payload of a transformed message: through the extension, whose
    /// output is checked against `max_message` piece by piece before it is
    /// kept (1009 the moment it passes), then assembled as any payload.
    #[inline(never)]
    fn transformed_payload(&mut self, chunk: &[u8]) -> Result<(), ProtocolError> {
        let max = self.limits.max_message;
        let message = &mut self.message;
        let extension = self
            .extension
            .as_deref_mut()
            .expect("only with an extension");
        extension.decode(chunk, &mut |piece| append::<true>(message, max, piece))
    }

    /// The end of a transformed message: what the extension still holds.
    #[inline(never)]
    fn finish_transformed(&mut self) -> Result<(), ProtocolError> {
        self.transformed = false;
        let max = self.limits.max_message;
        let message = &mut self.message;
        let extension = self
            .extension
            .as_deref_mut()
            .expect("only with an extension");
        extension.finish(&mut |piece| append::<true>(message, max, piece))
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
        if self.transformed {
            self.finish_transformed()?;
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

/// Append a data payload chunk to the message in progress: UTF-8 checked
/// as it comes for text (§8.1), the buffer grown within `max`.
///
/// `LIMITED`: an extension's output, whose size no header declared; a
/// piece that would take the message past `max` is refused before it is
/// kept (§10.4). The two uses are two instances, each with its own call
/// of the UTF-8 validator: sharing one call site would change how the
/// compiler inlines the hot one (no extension), measurably.
#[inline(always)]
fn append<const LIMITED: bool>(
    message: &mut Option<Partial>,
    max: usize,
    chunk: &[u8],
) -> Result<(), ProtocolError> {
    if LIMITED {
        debug_assert!(chunk.len() <= super::extension::MAX_OUTPUT_PIECE);
        let so_far = message.as_ref().map_or(0, Partial::len);
        if so_far + chunk.len() > max {
            return Err(ProtocolError::MessageTooLarge);
        }
    }
    match message {
        Some(Partial::Text { text, utf8 }) => {
            if let Some(room) = bounded_growth(text.len(), text.capacity(), chunk.len(), max) {
                text.reserve_exact(room);
            }
            utf8.feed(chunk, |valid| text.push_str(valid))
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Some(Partial::Binary(bytes)) => {
            if let Some(room) = bounded_growth(bytes.len(), bytes.capacity(), chunk.len(), max) {
                bytes.reserve_exact(room);
            }
            bytes.extend_from_slice(chunk);
        }
        None => {}
    }
    Ok(())
}

/// How much to reserve before appending `extra` bytes to a buffer of `len`
/// bytes and `capacity`: doubling, as a `Vec` would, but never beyond `max`,
/// so a message at the limit does not hold twice the limit in capacity.
fn bounded_growth(len: usize, capacity: usize, extra: usize, max: usize) -> Option<usize> {
    let needed = len + extra;
    (needed > capacity).then(|| needed.max(capacity * 2).max(64).min(max.max(needed)) - len)
}
