//! The wire format, written by hand and independently of `src/ws/`: frame
//! bytes (any first byte, masked or not), server frames parsed back, and
//! the opening handshake's request and response lines. Every test that
//! puts WebSocket bytes on a socket or into the decoder builds them here.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

/// The example key of RFC 6455 §1.3 and the accept value the RFC gives for
/// it.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The masking key of the examples of RFC 6455 §5.7: frames masked with it
/// are the same bytes every run.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

pub const CONT: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// A fresh masking key (unpredictability does not matter to these tests).
pub fn mask_key() -> [u8; 4] {
    static NEXT: AtomicU32 = AtomicU32::new(0x9E37_79B9);
    let n = NEXT.fetch_add(0x6D2B_79F5, Ordering::Relaxed);
    let n = (n ^ (n >> 15)).wrapping_mul(0x2C1B_3C6D);
    (n ^ (n >> 12)).to_be_bytes()
}

/// One frame: `first_byte` as given (FIN, RSV, opcode), the minimal length
/// encoding, and the payload masked with `mask` when there is one.
pub fn encode(first_byte: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![first_byte];
    let len = payload.len();
    match len {
        0..=125 => out.push(mask_bit | len as u8),
        126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// FIN and opcode as a first byte.
pub fn first_byte(fin: bool, opcode: u8) -> u8 {
    if fin { 0x80 | opcode } else { opcode }
}

/// A client frame: `first_byte` as given, masked with a fresh key.
pub fn raw_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    encode(first_byte, payload, Some(mask_key()))
}

/// A well-formed client frame, masked with a fresh key.
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(first_byte(fin, opcode), payload)
}

/// A well-formed client frame masked with [`MASK`]: the same bytes every
/// time, for tables and byte-exact checks.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    encode(first_byte(fin, opcode), payload, Some(MASK))
}

/// A frame as a server sends it: unmasked.
pub fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    encode(first_byte(fin, opcode), payload, None)
}

/// A masked header with the given 7-bit length field and extended length
/// bytes taken as they are (so any length, minimal or not, top bit or not),
/// then [`MASK`]; no payload.
pub fn header_bytes(first_byte: u8, len7: u8, extended: &[u8]) -> Vec<u8> {
    let mut v = vec![first_byte, 0x80 | len7];
    v.extend_from_slice(extended);
    v.extend_from_slice(&MASK);
    v
}

pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// The first bytes of `bytes` in hex, and its length, for test output.
pub fn hex(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > 16 { " …" } else { "" };
    format!("[{}{more}] ({} bytes)", shown.join(" "), bytes.len())
}

/// A frame as it came off the wire.
#[derive(Clone, Debug)]
pub struct Frame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    /// (code, reason) of a Close frame; 1005 when it has no code.
    pub fn close(&self) -> (u16, String) {
        if self.payload.len() < 2 {
            return (1005, String::new());
        }
        (
            u16::from_be_bytes([self.payload[0], self.payload[1]]),
            String::from_utf8_lossy(&self.payload[2..]).into_owned(),
        )
    }

    /// The code of a Close frame that must have one.
    pub fn close_code(&self) -> u16 {
        assert_eq!(self.opcode, CLOSE, "not a close frame: {self:?}");
        assert!(self.payload.len() >= 2, "close frame without a code");
        self.close().0
    }
}

/// Parse one frame at the start of `buf`, unmasking it if it is masked.
pub fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    let b0 = *buf.first()?;
    let b1 = *buf.get(1)?;
    let masked = b1 & 0x80 != 0;
    let (len, mut pos) = match b1 & 0x7F {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as u64,
            4,
        ),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let key = if masked {
        let k: [u8; 4] = buf.get(pos..pos + 4)?.try_into().ok()?;
        pos += 4;
        Some(k)
    } else {
        None
    };
    let end = pos.checked_add(usize::try_from(len).ok()?)?;
    let mut payload = buf.get(pos..end)?.to_vec();
    if let Some(k) = key {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= k[i % 4];
        }
    }
    Some((
        Frame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 7,
            opcode: b0 & 0x0F,
            masked,
            payload,
        },
        end,
    ))
}

// ------------------------------------------------------------- handshake

/// The header lines of a valid upgrade request, to be edited by a test.
pub fn upgrade_lines(addr: SocketAddr) -> Vec<String> {
    vec![
        "GET / HTTP/1.1".into(),
        format!("Host: {addr}"),
        "Upgrade: websocket".into(),
        "Connection: Upgrade".into(),
        format!("Sec-WebSocket-Key: {KEY}"),
        "Sec-WebSocket-Version: 13".into(),
    ]
}

/// Lines → a request head (CRLF line ends, blank line at the end).
pub fn head(lines: &[String]) -> Vec<u8> {
    let mut out = lines.join("\r\n");
    out.push_str("\r\n\r\n");
    out.into_bytes()
}

/// A valid upgrade request for `addr`.
pub fn upgrade_request(addr: SocketAddr) -> Vec<u8> {
    head(&upgrade_lines(addr))
}

/// A server's 101 answer carrying `accept`.
pub fn switching_protocols(accept: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
}

/// The value of a header in a request or response head (the first line is
/// skipped), case-insensitively.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
