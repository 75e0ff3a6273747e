//! The frame header (RFC 6455 §5.2): parsing and writing.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! | Masking-key (continued)       |          Payload Data         |
//! +-------------------------------- - - - - - - - - - - - - - - - +
//! :                     Payload Data continued ...                :
//! + - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - +
//! |                     Payload Data continued ...                |
//! +---------------------------------------------------------------+
//! ```
//!
//! A header is 2 to 14 bytes. Parsing is a pure function of a byte slice: it
//! either returns a header and how many bytes it used, or says that more
//! bytes are needed and uses none, or names the rule the bytes break.
//!
//! The RSV bits are the one field whose rule the header cannot check alone:
//! they mean what a negotiated extension says (§5.2, §5.8), so `parse`
//! reports them and the [`Decoder`](super::message::Decoder) checks them
//! against its [`Extension`](super::extension::Extension), from the first
//! byte.

use super::close::ProtocolError;
use super::mask::apply_mask;

/// The longest possible header: 2 + 8 (64-bit length) + 4 (masking key).
pub const MAX_HEADER_LEN: usize = 14;

/// Control frames carry at most this much payload (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// RSV1 in [`FrameHeader::rsv`]'s layout (the bits of byte 0 shifted down
/// by 4). RFC 7692 gives it to permessage-deflate.
pub const RSV1: u8 = 0b100;
/// RSV2 in [`FrameHeader::rsv`]'s layout.
pub const RSV2: u8 = 0b010;
/// RSV3 in [`FrameHeader::rsv`]'s layout.
pub const RSV3: u8 = 0b001;

/// §5.2 opcodes; §11.8 reserves the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl OpCode {
    pub fn from_bits(bits: u8) -> Result<OpCode, ProtocolError> {
        Ok(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// Control frames have the high bit of the opcode set (§5.5).
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// Which end of the connection we are; it decides the masking rule (§5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1, RSV2, RSV3 as the low three bits.
    pub rsv: u8,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

impl FrameHeader {
    /// Parse the header at the start of `buf`, as received by `role`.
    ///
    /// `Ok(None)`: the header is not complete yet; nothing is consumed.
    /// `Ok(Some((header, n)))`: the payload starts at `buf[n]`.
    ///
    /// Checks every rule that the header alone can break, in the order the
    /// bytes arrive, so that a bad first byte is reported before the rest of
    /// the header is in. The RSV bits are reported in `rsv`, not checked:
    /// what they may be depends on the negotiated extension, which the
    /// caller knows (the [`Decoder`](super::message::Decoder) checks them,
    /// from the first byte and ahead of every other rule; with no extension
    /// any set bit is [`ProtocolError::ReservedBits`]).
    #[inline]
    pub fn parse(buf: &[u8], role: Role) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0x7;
        let opcode = OpCode::from_bits(b0 & 0x0F)?;
        if opcode.is_control() && !fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        let Some(&b1) = buf.get(1) else {
            return Ok(None);
        };
        let masked = b1 & 0x80 != 0;
        match (role, masked) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedClientFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedServerFrame),
            _ => {}
        }
        let len7 = b1 & 0x7F;
        if opcode.is_control() && usize::from(len7) > MAX_CONTROL_PAYLOAD {
            return Err(ProtocolError::ControlFrameTooLong);
        }
        let (payload_len, mut pos) = match len7 {
            126 => {
                let Some(bytes) = buf.get(2..4) else {
                    return Ok(None);
                };
                let len = u16::from_be_bytes([bytes[0], bytes[1]]);
                if len < 126 {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (u64::from(len), 4)
            }
            127 => {
                let Some(bytes) = buf.get(2..10) else {
                    return Ok(None);
                };
                let mut be = [0; 8];
                be.copy_from_slice(bytes);
                let len = u64::from_be_bytes(be);
                if len >> 63 != 0 {
                    return Err(ProtocolError::LengthTopBitSet);
                }
                if len <= u64::from(u16::MAX) {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (len, 10)
            }
            short => (u64::from(short), 2),
        };
        let mask = if masked {
            let Some(bytes) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            pos += 4;
            Some([bytes[0], bytes[1], bytes[2], bytes[3]])
        } else {
            None
        };
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, pos)))
    }

    /// Write the header into `out`, using the shortest length encoding.
    /// Returns the number of bytes written.
    pub fn write(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x7) << 4) | self.opcode as u8;
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut pos = match self.payload_len {
            len @ 0..=125 => {
                out[1] = mask_bit | len as u8;
                2
            }
            len @ 126..=0xFFFF => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[pos..pos + 4].copy_from_slice(&key);
            pos += 4;
        }
        pos
    }
}

/// Append one whole frame to `out`: header, then the payload, masked with
/// `mask` when one is given (a client's frames, §5.3). Its RSV bits are 0;
/// [`encode_frame_rsv`] sets them.
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    encode(out, fin, 0, opcode, payload, mask);
}

/// [`encode_frame`] with RSV bits (`rsv`, in [`FrameHeader::rsv`]'s layout:
/// [`RSV1`] and so on), for the first frame of a message a negotiated
/// extension transformed (§5.8;
/// [`extension::encode_message`](super::extension::encode_message)).
pub fn encode_frame_rsv(
    out: &mut Vec<u8>,
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    encode(out, fin, rsv, opcode, payload, mask);
}

/// The body of both: inlined into each, so that [`encode_frame`], with its
/// constant 0, is the code it was before RSV bits could be written.
#[inline(always)]
fn encode(
    out: &mut Vec<u8>,
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let header = FrameHeader {
        fin,
        rsv: rsv & 0x7,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    };
    let mut head = [0; MAX_HEADER_LEN];
    let n = header.write(&mut head);
    out.reserve(n + payload.len());
    out.extend_from_slice(&head[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

/// The payload of a Close frame: the code in network order, then the reason
/// cut to fit the 125-byte limit at a character boundary (§5.5.1).
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8], role: Role) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        FrameHeader::parse(bytes, role)
    }

    #[test]
    fn rfc_examples() {
        // §5.7: a single-frame unmasked text message "Hello".
        let (h, n) = parse(&[0x81, 0x05, 0x48, 0x65], Role::Client)
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.mask, h.payload_len, n),
            (true, OpCode::Text, None, 5, 2)
        );
        // §5.7: the masked version.
        let (h, n) = parse(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f], Role::Server)
            .unwrap()
            .unwrap();
        assert_eq!((h.mask, n), (Some([0x37, 0xfa, 0x21, 0x3d]), 6));
        // §5.7: 256 bytes binary in a single unmasked frame.
        let (h, n) = parse(&[0x82, 0x7E, 0x01, 0x00], Role::Client)
            .unwrap()
            .unwrap();
        assert_eq!((h.opcode, h.payload_len, n), (OpCode::Binary, 256, 4));
        // §5.7: 64 KiB binary.
        let (h, n) = parse(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0], Role::Client)
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn incomplete_header_consumes_nothing() {
        let mut full = Vec::new();
        encode_frame(
            &mut full,
            true,
            OpCode::Binary,
            &[7; 70000],
            Some([1, 2, 3, 4]),
        );
        for cut in 0..14 {
            assert_eq!(parse(&full[..cut], Role::Server), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse(&full[..14], Role::Server).unwrap().unwrap().1, 14);
    }

    #[test]
    fn reserved_bits_are_reported_and_without_an_extension_are_1002() {
        for rsv in [0x40, 0x20, 0x10] {
            // `parse` reports them …
            let (h, _) = parse(&[0x81 | rsv, 0x00], Role::Client).unwrap().unwrap();
            assert_eq!(h.rsv, rsv >> 4);
            // … and the decoder, with no extension negotiated, refuses
            // them from the first byte alone.
            let mut decoder = crate::ws::Decoder::new(Role::Client, Default::default());
            let err = decoder.decode(&mut [0x81 | rsv]).unwrap_err();
            assert_eq!(err, ProtocolError::ReservedBits);
            assert_eq!(err.close_code().0, 1002);
        }
    }

    #[test]
    fn rsv_bits_are_written() {
        for rsv in 0..8 {
            let mut out = Vec::new();
            encode_frame_rsv(&mut out, true, rsv, OpCode::Text, b"hi", Some([1, 2, 3, 4]));
            assert_eq!(out[0], 0x81 | (rsv << 4));
            let (h, n) = parse(&out, Role::Server).unwrap().unwrap();
            assert_eq!((h.rsv, n + 2), (rsv, out.len()));
        }
        let (mut plain, mut zero) = (Vec::new(), Vec::new());
        encode_frame(&mut plain, false, OpCode::Binary, b"abc", None);
        encode_frame_rsv(&mut zero, false, 0, OpCode::Binary, b"abc", None);
        assert_eq!(plain, zero);
    }

    #[test]
    fn reserved_opcodes_are_1002() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            let err = parse(&[0x80 | op, 0x80], Role::Server).unwrap_err();
            assert_eq!(err, ProtocolError::ReservedOpcode(op));
            assert_eq!(err.close_code().0, 1002);
        }
    }

    #[test]
    fn unmasked_client_frame_is_1002() {
        let err = parse(&[0x81, 0x05], Role::Server).unwrap_err();
        assert_eq!(err, ProtocolError::UnmaskedClientFrame);
        assert_eq!(err.close_code().0, 1002);
    }

    #[test]
    fn masked_server_frame_is_1002() {
        let err = parse(&[0x81, 0x85], Role::Client).unwrap_err();
        assert_eq!(err, ProtocolError::MaskedServerFrame);
        assert_eq!(err.close_code().0, 1002);
    }

    #[test]
    fn control_frame_over_125_bytes_is_1002() {
        let err = parse(&[0x89, 0xFE, 0x00, 0x7E], Role::Server).unwrap_err();
        assert_eq!(err, ProtocolError::ControlFrameTooLong);
        assert_eq!(err.close_code().0, 1002);
    }

    #[test]
    fn fragmented_control_frame_is_1002() {
        let err = parse(&[0x09, 0x80], Role::Server).unwrap_err();
        assert_eq!(err, ProtocolError::FragmentedControlFrame);
        assert_eq!(err.close_code().0, 1002);
    }

    #[test]
    fn length_top_bit_is_1002() {
        let mut bytes = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse(&bytes, Role::Server),
            Err(ProtocolError::LengthTopBitSet)
        );
        bytes[2] = 0xFF;
        assert_eq!(
            parse(&bytes, Role::Server).unwrap_err().close_code().0,
            1002
        );
    }

    #[test]
    fn non_minimal_lengths_are_1002() {
        assert_eq!(
            parse(&[0x82, 0xFE, 0x00, 0x7D], Role::Server),
            Err(ProtocolError::NonMinimalLength)
        );
        assert_eq!(
            parse(&[0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF], Role::Server),
            Err(ProtocolError::NonMinimalLength)
        );
    }

    #[test]
    fn write_then_parse_at_every_length_boundary() {
        for len in [0u64, 1, 125, 126, 127, 65535, 65536, 1 << 32, (1 << 63) - 1] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let header = FrameHeader {
                    fin: true,
                    rsv: 0,
                    opcode: OpCode::Binary,
                    mask,
                    payload_len: len,
                };
                let mut out = [0; MAX_HEADER_LEN];
                let n = header.write(&mut out);
                let role = if mask.is_some() {
                    Role::Server
                } else {
                    Role::Client
                };
                assert_eq!(parse(&out[..n], role), Ok(Some((header, n))));
            }
        }
    }

    #[test]
    fn close_payload_is_cut_at_a_character_boundary() {
        let payload = close_payload(1000, &"é".repeat(100));
        assert!(payload.len() <= 125);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }
}
