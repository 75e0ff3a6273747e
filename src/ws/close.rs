//! Close codes (RFC 6455 §7.4) and the protocol errors that raise them.
//!
//! Every rule of the wire format that a peer can break is one variant of
//! [`ProtocolError`], and each variant knows the close code the RFC asks for,
//! so "fail the WebSocket connection" (§7.1.7) is always one lookup away.

use std::fmt;

/// A status code carried in a Close frame (§5.5.1, §7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: server going down, or browser navigating away.
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the framing rules of §5.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type this endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: reserved; means "the close frame had no code". Never on the wire.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: reserved; means "closed without a close frame". Never on the wire.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: payload inconsistent with its type, e.g. text that is not UTF-8 (§8.1).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a policy was violated (chat: too slow, flooding).
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1011: an unexpected condition on the server.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// May this code appear in a Close frame on the wire (§7.4.1, §7.4.2)?
    ///
    /// 0–999 are unused; 1004, 1005, 1006 and 1015 are reserved for local
    /// reporting; 1016–2999 are reserved for future RFCs and extensions, so a
    /// peer may not send them yet. 1012–1014 were registered with IANA after
    /// the RFC (service restart, try again later, bad gateway) and are allowed.
    /// 3000–3999 are for libraries and frameworks, 4000–4999 for applications.
    pub const fn is_allowed_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A received or sent Close frame's payload: a code and a UTF-8 reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    pub code: CloseCode,
    pub reason: String,
}

/// A breach of RFC 6455 by the peer. Each one fails the connection with the
/// close code given by [`ProtocolError::close_code`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// §5.2: RSV1–3 must be 0 unless a negotiated extension defines them
    /// (with none negotiated, every set bit is this).
    ReservedBits,
    /// §5.2, RFC 7692 §6: a negotiated per-message extension's RSV bit on a
    /// control frame or a continuation frame; it may be set only on the
    /// first frame of a data message.
    MisplacedExtensionBits,
    /// §5.2: opcodes 0x3–0x7 and 0xB–0xF are reserved.
    ReservedOpcode(u8),
    /// §5.1: a client must mask every frame it sends.
    UnmaskedClientFrame,
    /// §5.1: a server must not mask any frame it sends.
    MaskedServerFrame,
    /// §5.2: the payload length must use the minimal number of bytes.
    NonMinimalLength,
    /// §5.2: the most significant bit of a 64-bit length must be 0.
    LengthTopBitSet,
    /// §5.5: control frames carry at most 125 bytes of payload.
    ControlFrameTooLong,
    /// §5.5: control frames must not be fragmented.
    FragmentedControlFrame,
    /// §5.4: a continuation frame with no message in progress.
    UnexpectedContinuation,
    /// §5.4: a new text or binary frame while a fragmented message is in progress.
    ExpectedContinuation,
    /// §5.6, §8.1: a text message or close reason that is not valid UTF-8.
    InvalidUtf8,
    /// §5.5.1: a close payload of one byte (a code is two bytes).
    CloseTooShort,
    /// §7.4: a close code that may not be sent on the wire.
    InvalidCloseCode(u16),
    /// §10.4: a single frame larger than the configured limit.
    FrameTooLarge,
    /// §10.4: a message larger than the configured limit.
    MessageTooLarge,
    /// §10.4: a message split into more fragments than the configured limit.
    TooManyFragments,
    /// §5.8, §9: the negotiated extension refused a message's payload (for
    /// permessage-deflate: data that does not inflate), with the close code
    /// it names (§7.4.1; one not allowed on the wire is sent as 1002). An
    /// extension's output still goes through the message assembler, so too
    /// large a message is [`ProtocolError::MessageTooLarge`] and bad UTF-8
    /// [`ProtocolError::InvalidUtf8`], as without one.
    ///
    /// A code and no text: every step of the decoder returns a
    /// `Result<_, ProtocolError>`, and at 4 bytes it is returned in a
    /// register (a `&'static str` reason would make it 24, and every small
    /// frame slower).
    Extension(CloseCode),
}

impl ProtocolError {
    /// The §7.4.1 status code this breach is answered with.
    pub fn close_code(self) -> CloseCode {
        use ProtocolError::*;
        match self {
            InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            Extension(code) if code.is_allowed_on_wire() => code,
            Extension(_) => CloseCode::PROTOCOL_ERROR,
            FrameTooLarge | MessageTooLarge | TooManyFragments => CloseCode::TOO_BIG,
            ReservedBits
            | MisplacedExtensionBits
            | ReservedOpcode(_)
            | UnmaskedClientFrame
            | MaskedServerFrame
            | NonMinimalLength
            | LengthTopBitSet
            | ControlFrameTooLong
            | FragmentedControlFrame
            | UnexpectedContinuation
            | ExpectedContinuation
            | CloseTooShort
            | InvalidCloseCode(_) => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// The Close frame this error is answered with; the reason is short
    /// enough for a control frame (≤ 123 bytes).
    pub fn close_frame(self) -> CloseFrame {
        CloseFrame {
            code: self.close_code(),
            reason: self.to_string(),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ProtocolError::*;
        match self {
            ReservedBits => f.write_str("reserved bits set without an extension"),
            MisplacedExtensionBits => {
                f.write_str("extension bits on a continuation or control frame")
            }
            ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            UnmaskedClientFrame => f.write_str("client frame not masked"),
            MaskedServerFrame => f.write_str("server frame masked"),
            NonMinimalLength => f.write_str("payload length not minimally encoded"),
            LengthTopBitSet => f.write_str("64-bit payload length has its top bit set"),
            ControlFrameTooLong => f.write_str("control frame longer than 125 bytes"),
            FragmentedControlFrame => f.write_str("fragmented control frame"),
            UnexpectedContinuation => f.write_str("continuation frame without a message"),
            ExpectedContinuation => f.write_str("new data frame inside a fragmented message"),
            InvalidUtf8 => f.write_str("invalid UTF-8"),
            CloseTooShort => f.write_str("close payload of one byte"),
            InvalidCloseCode(code) => write!(f, "close code {code} not allowed"),
            FrameTooLarge => f.write_str("frame too large"),
            MessageTooLarge => f.write_str("message too large"),
            TooManyFragments => f.write_str("too many fragments"),
            Extension(_) => f.write_str("payload refused by the negotiated extension"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Parse a received Close payload (§5.5.1): empty, or a 2-byte code then a
/// UTF-8 reason. `None` means the peer sent no code (reported as 1005).
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::CloseTooShort),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_allowed_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Some(CloseFrame {
                code,
                reason: reason.to_owned(),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_allowed_on_the_wire() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(code).is_allowed_on_wire(), "{code}");
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(code).is_allowed_on_wire(), "{code}");
        }
    }

    #[test]
    fn empty_close_payload_has_no_code() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
    }

    #[test]
    fn one_byte_close_payload_is_1002() {
        let err = parse_close_payload(&[0x03]).unwrap_err();
        assert_eq!(err, ProtocolError::CloseTooShort);
        assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn forbidden_close_code_is_1002() {
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535] {
            let err = parse_close_payload(&code.to_be_bytes()).unwrap_err();
            assert_eq!(err, ProtocolError::InvalidCloseCode(code));
            assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
        }
    }

    #[test]
    fn close_reason_not_utf8_is_1007() {
        let err = parse_close_payload(&[0x03, 0xe8, 0xff, 0xfe]).unwrap_err();
        assert_eq!(err, ProtocolError::InvalidUtf8);
        assert_eq!(err.close_code(), CloseCode::INVALID_PAYLOAD);
    }

    #[test]
    fn close_with_code_and_reason() {
        let frame = parse_close_payload(b"\x03\xe8bye").unwrap().unwrap();
        assert_eq!(frame.code, CloseCode::NORMAL);
        assert_eq!(frame.reason, "bye");
    }

    #[test]
    fn an_extension_error_carries_its_code() {
        let err = ProtocolError::Extension(CloseCode::INVALID_PAYLOAD);
        assert_eq!(err.close_code(), CloseCode::INVALID_PAYLOAD);
        assert!(err.close_frame().reason.contains("extension"));
        // A code that may not be sent is never sent.
        let err = ProtocolError::Extension(CloseCode::ABNORMAL);
        assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
        assert_eq!(
            ProtocolError::MisplacedExtensionBits.close_code(),
            CloseCode::PROTOCOL_ERROR
        );
    }

    /// Every decoding step returns it: it must stay small enough for a
    /// register.
    #[test]
    fn a_protocol_error_is_four_bytes() {
        assert!(std::mem::size_of::<ProtocolError>() <= 4);
        assert!(std::mem::size_of::<Result<(), ProtocolError>>() <= 4);
    }

    #[test]
    fn every_reason_fits_a_control_frame() {
        let err = ProtocolError::ReservedOpcode(0xff);
        assert!(err.close_frame().reason.len() <= 123);
    }
}
