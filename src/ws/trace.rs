//! Frame tracing: with `RUST_LOG=wschat::ws=trace`, one log line for every
//! frame a connection receives or sends, naming the header fields of
//! RFC 6455 §5.2 and the first payload bytes — a way to watch the protocol
//! happen while a browser chats.
//!
//! ```text
//! 127.0.0.1:50312 in  FIN=1 RSV=000 opcode=0x1 Text MASK=1 len=7 "hi, bob"
//! 127.0.0.1:50312 out FIN=1 RSV=000 opcode=0x8 Close MASK=0 len=2 code 1000
//! ```
//!
//! Nothing here runs unless the level is enabled: [`enabled`] is one atomic
//! load, checked before any formatting.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::frame::{FrameHeader, OpCode, Role};
use super::mask::apply_mask;

/// The log target of frame lines (under `wschat::ws`, so that
/// `RUST_LOG=wschat::ws=trace` turns them on).
pub const TARGET: &str = "wschat::ws::frame";

/// Payload bytes shown per frame.
const SHOWN: usize = 64;

/// Is frame tracing on?
pub fn enabled() -> bool {
    log::log_enabled!(target: TARGET, log::Level::Trace)
}

/// Which way a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

/// Log one frame: its header, and the start of its payload, unmasked.
pub fn frame(direction: Direction, peer: Option<SocketAddr>, header: &FrameHeader, first: &[u8]) {
    if enabled() {
        log::trace!(target: TARGET, "{}", describe(direction, peer, header, first));
    }
}

/// Log every whole frame in `bytes`, encoded as `sender` sends them (a
/// buffer may hold several frames: a hub batch).
pub fn frames_out(peer: Option<SocketAddr>, sender: Role, bytes: &[u8]) {
    if !enabled() {
        return;
    }
    let receiver = match sender {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    };
    let mut rest = bytes;
    while let Ok(Some((header, n))) = FrameHeader::parse(rest, receiver) {
        let len = usize::try_from(header.payload_len).unwrap_or(usize::MAX);
        let payload = &rest[n..];
        let mut first = payload[..payload.len().min(len).min(SHOWN)].to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut first, key, 0);
        }
        frame(Direction::Out, peer, &header, &first);
        let Some(next) = rest.get(n.saturating_add(len)..) else {
            break;
        };
        rest = next;
    }
}

/// The log line for one frame.
pub fn describe(
    direction: Direction,
    peer: Option<SocketAddr>,
    header: &FrameHeader,
    first: &[u8],
) -> String {
    let mut line = String::with_capacity(96);
    match peer {
        Some(peer) => {
            let _ = write!(line, "{peer} ");
        }
        None => line.push_str("- "),
    }
    line.push_str(match direction {
        Direction::In => "in ",
        Direction::Out => "out",
    });
    let _ = write!(
        line,
        " FIN={} RSV={:03b} opcode={:#x} {:?} MASK={} len={}",
        u8::from(header.fin),
        header.rsv,
        header.opcode as u8,
        header.opcode,
        u8::from(header.mask.is_some()),
        header.payload_len
    );
    let shown = &first[..first.len().min(SHOWN)];
    let more = if (shown.len() as u64) < header.payload_len {
        "…"
    } else {
        ""
    };
    match header.opcode {
        OpCode::Close if shown.len() >= 2 => {
            let code = u16::from_be_bytes([shown[0], shown[1]]);
            let _ = write!(line, " code {code}");
            if shown.len() > 2 {
                let _ = write!(line, " {:?}{more}", String::from_utf8_lossy(&shown[2..]));
            }
        }
        _ if shown.is_empty() => {}
        // Text may be cut inside a character here: shown lossily.
        OpCode::Text | OpCode::Continuation => {
            let _ = write!(line, " {:?}{more}", String::from_utf8_lossy(shown));
        }
        OpCode::Ping | OpCode::Pong if std::str::from_utf8(shown).is_ok() => {
            let _ = write!(line, " {:?}{more}", String::from_utf8_lossy(shown));
        }
        _ => {
            line.push(' ');
            for b in shown {
                let _ = write!(line, "{b:02x}");
            }
            line.push_str(more);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(opcode: OpCode, len: u64, masked: bool) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: masked.then_some([1, 2, 3, 4]),
            payload_len: len,
        }
    }

    #[test]
    fn lines_name_every_header_field() {
        let peer: SocketAddr = "127.0.0.1:50312".parse().unwrap();
        assert_eq!(
            describe(
                Direction::In,
                Some(peer),
                &header(OpCode::Text, 7, true),
                b"hi, bob"
            ),
            r#"127.0.0.1:50312 in  FIN=1 RSV=000 opcode=0x1 Text MASK=1 len=7 "hi, bob""#
        );
        assert_eq!(
            describe(
                Direction::Out,
                Some(peer),
                &header(OpCode::Close, 2, false),
                &[0x03, 0xe8]
            ),
            "127.0.0.1:50312 out FIN=1 RSV=000 opcode=0x8 Close MASK=0 len=2 code 1000"
        );
        assert_eq!(
            describe(
                Direction::Out,
                None,
                &header(OpCode::Binary, 1000, false),
                &[0xff, 0x00]
            ),
            "- out FIN=1 RSV=000 opcode=0x2 Binary MASK=0 len=1000 ff00…"
        );
    }

    #[test]
    fn long_payloads_are_cut() {
        let text = "x".repeat(100);
        let line = describe(
            Direction::In,
            None,
            &header(OpCode::Text, 100, true),
            text.as_bytes(),
        );
        assert!(
            line.ends_with(&format!("\"{}\"…", "x".repeat(SHOWN))),
            "{line}"
        );
    }
}
