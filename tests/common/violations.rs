//! Every protocol violation a client can commit after a valid handshake
//! (RFC 6455 §5.1–§5.6, §7.4, §8.1, §10.4), as one table: a name, the bytes
//! the client sends, the close code the server must answer with (1002,
//! 1007 or 1009), a fragment of the Close reason, and the `ProtocolError`
//! the sans-IO decoder reports.
//!
//! Included with `#[path]` by `tests/codec_rules.rs` (the `Decoder`, fed
//! each row whole, split in two at every byte boundary, and byte by byte), by
//! `tests/interop/` (the library's server with the echo `App`) and by
//! `tests/attacks/` (the `wschat` binary), so the three run the same rows.
//! Each of them needs `mod support;` at its root: the bytes are built with
//! `tests/support/wire.rs`, masked with RFC 6455 §5.7's key.
//!
//! The size rows are relative to [`LIMITS`], which every receiver of the
//! table is given: `max_frame` is larger than `max_message`, so that one
//! frame can break either limit alone.
#![allow(dead_code)]

use wschat::ws::{Limits, ProtocolError};

use crate::support::{
    BINARY, CLOSE, CONT, MASK, PING, PONG, TEXT, client_frame, close_payload, encode, header_bytes,
};

use ProtocolError::*;

/// The limits every receiver of the table is configured with.
pub const LIMITS: Limits = Limits {
    max_frame: 1000,
    max_message: 500,
    max_fragments: 3,
};

/// [`LIMITS`] as `wschat` flags.
pub fn server_args() -> Vec<String> {
    [
        ("--max-frame", LIMITS.max_frame),
        ("--max-message", LIMITS.max_message),
        ("--max-fragments", LIMITS.max_fragments),
    ]
    .iter()
    .flat_map(|(flag, n)| [flag.to_string(), n.to_string()])
    .collect()
}

/// One row.
#[derive(Clone, Debug)]
pub struct Violation {
    pub name: String,
    /// What the client sends after the handshake. The violation is
    /// complete within these bytes; nothing after them is needed.
    pub bytes: Vec<u8>,
    /// The close code the server answers with.
    pub code: u16,
    /// A part of the Close frame's reason.
    pub reason: String,
    /// What `Decoder::decode` returns.
    pub error: ProtocolError,
    /// Whole messages the bytes hold before the violation (an echo server
    /// answers each before its Close).
    pub messages: usize,
}

fn row(
    name: impl Into<String>,
    bytes: Vec<u8>,
    code: u16,
    reason: impl Into<String>,
    error: ProtocolError,
) -> Violation {
    Violation {
        name: name.into(),
        bytes,
        code,
        reason: reason.into(),
        error,
        messages: 0,
    }
}

fn invalid_utf8(name: &str, bytes: Vec<u8>) -> Violation {
    row(name, bytes, 1007, "invalid UTF-8", InvalidUtf8)
}

fn opcode_name(op: u8) -> &'static str {
    match op {
        PING => "ping",
        PONG => "pong",
        CLOSE => "close",
        TEXT => "text",
        _ => "binary",
    }
}

/// The whole table.
pub fn violations() -> Vec<Violation> {
    let mut rows = Vec::new();
    header_rules(&mut rows);
    fragmentation_rules(&mut rows);
    utf8_rules(&mut rows);
    close_rules(&mut rows);
    limit_rules(&mut rows);
    rows
}

/// The row called `name`; panics if there is none.
pub fn violation(name: &str) -> Violation {
    violations()
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no violation called {name:?}"))
}

/// §5.1, §5.2, §5.5: what the header alone breaks. 1002.
fn header_rules(rows: &mut Vec<Violation>) {
    rows.push(row(
        "unmasked text frame",
        vec![0x81, 0x02, b'h', b'i'],
        1002,
        "not masked",
        UnmaskedClientFrame,
    ));
    for (bits, name) in [
        (0x40, "RSV1"),
        (0x20, "RSV2"),
        (0x10, "RSV3"),
        (0x70, "RSV1-3"),
    ] {
        let bytes = encode(0x80 | bits | TEXT, b"hi", Some(MASK));
        rows.push(row(
            format!("{name} set"),
            bytes,
            1002,
            "reserved bits",
            ReservedBits,
        ));
    }
    for op in [0x3u8, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        let name = format!("reserved opcode {op:#x}");
        let bytes = client_frame(true, op, b"x");
        rows.push(row(&name, bytes, 1002, &name, ReservedOpcode(op)));
    }
    for op in [PING, PONG, CLOSE] {
        for len in [126usize, 127, 200, 70_000] {
            let mut payload = vec![b'a'; len];
            if op == CLOSE {
                payload[..2].copy_from_slice(&1000u16.to_be_bytes());
            }
            rows.push(row(
                format!("{} of {len} bytes", opcode_name(op)),
                client_frame(true, op, &payload),
                1002,
                "longer than 125",
                ControlFrameTooLong,
            ));
        }
    }
    for (op, payload) in [(PING, &b""[..]), (PING, b"part"), (PONG, b""), (CLOSE, b"")] {
        rows.push(row(
            format!("{} without FIN, {} bytes", opcode_name(op), payload.len()),
            client_frame(false, op, payload),
            1002,
            "fragmented control",
            FragmentedControlFrame,
        ));
    }
    for len in [1u64 << 63, 0xFF << 56, u64::MAX] {
        rows.push(row(
            format!("64-bit length {len:#x}"),
            header_bytes(0x82, 127, &len.to_be_bytes()),
            1002,
            "top bit",
            LengthTopBitSet,
        ));
    }
    // Lengths that fit a shorter form: the header alone, and with its
    // payload.
    for (form, len7, lens) in [
        ("16-bit", 126, &[0u64, 1, 5, 125][..]),
        ("64-bit", 127, &[0, 125, 126, 65_535]),
    ] {
        for &len in lens {
            let extended = match len7 {
                126 => (len as u16).to_be_bytes().to_vec(),
                _ => len.to_be_bytes().to_vec(),
            };
            let header = header_bytes(0x82, len7, &extended);
            let mut whole = header.clone();
            whole.resize(header.len() + len as usize, 0);
            for (what, bytes) in [("header only", header), ("with its payload", whole)] {
                rows.push(row(
                    format!("{form} length {len}, {what}"),
                    bytes,
                    1002,
                    "minimally",
                    NonMinimalLength,
                ));
            }
        }
    }
}

/// §5.4: the order of frames, checked before any size. 1002.
fn fragmentation_rules(rows: &mut Vec<Violation>) {
    let orphan = "continuation frame without a message";
    for fin in [true, false] {
        rows.push(row(
            format!("continuation first, FIN {fin}"),
            client_frame(fin, CONT, b"orphan"),
            1002,
            orphan,
            UnexpectedContinuation,
        ));
    }
    rows.push(row(
        "10,000 continuation frames with no message started",
        client_frame(false, CONT, b"zz").repeat(10_000),
        1002,
        orphan,
        UnexpectedContinuation,
    ));
    let mut after = row(
        "continuation after a complete message",
        [
            client_frame(true, TEXT, b"done"),
            client_frame(true, CONT, b"more"),
        ]
        .concat(),
        1002,
        orphan,
        UnexpectedContinuation,
    );
    after.messages = 1;
    rows.push(after);
    for first in [TEXT, BINARY] {
        for second in [TEXT, BINARY] {
            for fin in [true, false] {
                rows.push(row(
                    format!(
                        "{} frame (FIN {fin}) inside a fragmented {} message",
                        opcode_name(second),
                        opcode_name(first)
                    ),
                    [
                        client_frame(false, first, b"part"),
                        client_frame(fin, second, b"new"),
                    ]
                    .concat(),
                    1002,
                    "new data frame inside a fragmented message",
                    ExpectedContinuation,
                ));
            }
        }
    }
    // Out of order and over the limits: the order decides.
    let big = vec![0; LIMITS.max_frame + 1];
    rows.push(row(
        "continuation first, over max_frame",
        client_frame(true, CONT, &big),
        1002,
        orphan,
        UnexpectedContinuation,
    ));
    rows.push(row(
        "binary frame over max_frame inside a fragmented text message",
        [
            client_frame(false, TEXT, b"x"),
            client_frame(true, BINARY, &big),
        ]
        .concat(),
        1002,
        "new data frame inside a fragmented message",
        ExpectedContinuation,
    ));
    rows.push(row(
        "continuation first, declaring 2^63 - 1 bytes",
        header_bytes(0x80 | CONT, 127, &(u64::MAX >> 1).to_be_bytes()),
        1002,
        orphan,
        UnexpectedContinuation,
    ));
}

/// §5.6, §8.1, §5.5.1: text and close reasons must be UTF-8. 1007.
fn utf8_rules(rows: &mut Vec<Violation>) {
    for (what, text) in [
        ("0xFF", &b"\xff"[..]),
        ("overlong NUL", b"abc\xc0\x80"),
        ("surrogate", b"\xed\xa0\x80"),
        ("above U+10FFFF", b"\xf4\x90\x80\x80"),
        ("Latin-1", b"caf\xe9 au lait"),
        (
            "surrogate after valid Greek",
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
        ),
        ("0xFF after a 2-byte character", b"ok \xce\xba\xff"),
        // A message that ends in the middle of a character.
        ("ends inside a 2-byte character", b"ends in \xc3"),
        ("ends inside a 3-byte character", b"a\xe2\x82"),
        ("only the start of a 3-byte character", b"\xe2\x82"),
    ] {
        rows.push(invalid_utf8(
            &format!("text frame: {what}"),
            client_frame(true, TEXT, text),
        ));
    }
    for (what, fragments) in [
        (
            "'€' cut, then '(' in the last fragment",
            vec![&b"price: \xe2\x82"[..], b"("],
        ),
        (
            "0xCE, then 'A' in the last fragment",
            vec![&b"\xce"[..], b"\x41"],
        ),
        (
            "'caf' 0xCE, then 'A oops'",
            vec![&b"caf\xce"[..], b"\x41 oops"],
        ),
        (
            "a 4-byte character cut short across 3 fragments",
            vec![&b"\xf0\x9f"[..], b"\x98", b"("],
        ),
        (
            "a 4-byte character unfinished at the end",
            vec![&b"\xf0\x9f"[..], b"\x98"],
        ),
    ] {
        let last = fragments.len() - 1;
        let bytes: Vec<u8> = fragments
            .iter()
            .enumerate()
            .flat_map(|(i, f)| client_frame(i == last, if i == 0 { TEXT } else { CONT }, f))
            .collect();
        rows.push(invalid_utf8(&format!("fragmented text: {what}"), bytes));
    }
    // The error comes with the bad byte, before the rest arrives.
    rows.push(invalid_utf8(
        "invalid middle fragment, no last fragment",
        [
            client_frame(false, TEXT, b"fine "),
            client_frame(false, CONT, b"\xf8\x88\x80\x80\x80"),
        ]
        .concat(),
    ));
    let mut payload = b"ab\xf4\x90".to_vec();
    payload.resize(100, b'z');
    let mut partial = client_frame(true, TEXT, &payload);
    partial.truncate(partial.len() - 96);
    rows.push(invalid_utf8(
        "text frame of 100 bytes, cut after 4 of them (the 4th is invalid)",
        partial,
    ));
    let mut partial = [
        client_frame(false, TEXT, b"ok"),
        client_frame(true, CONT, &[b'x', 0xff, b'y', b'z']),
    ]
    .concat();
    partial.truncate(partial.len() - 2);
    rows.push(invalid_utf8(
        "continuation cut after its invalid byte",
        partial,
    ));
    for reason in [
        &b"bye \xff"[..],
        b"\xe2\x82",
        b"\xff",
        b"bad \xff\xfe reason",
    ] {
        rows.push(invalid_utf8(
            &format!("close reason {reason:x?}"),
            client_frame(true, CLOSE, &close_payload(1000, reason)),
        ));
    }
}

/// §5.5.1, §7.4: Close payloads. 1002.
fn close_rules(rows: &mut Vec<Violation>) {
    rows.push(row(
        "close payload of 1 byte",
        client_frame(true, CLOSE, &[0x03]),
        1002,
        "one byte",
        CloseTooShort,
    ));
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let reason = format!("close code {code} not allowed");
        for with in [&b""[..], b"x"] {
            rows.push(row(
                format!(
                    "close code {code}, reason {:?}",
                    String::from_utf8_lossy(with)
                ),
                client_frame(true, CLOSE, &close_payload(code, with)),
                1002,
                &reason,
                InvalidCloseCode(code),
            ));
        }
    }
}

/// §10.4: the limits, from the header where it can tell. 1009.
fn limit_rules(rows: &mut Vec<Violation>) {
    let (frame, message) = (LIMITS.max_frame, LIMITS.max_message);
    for op in [TEXT, BINARY] {
        rows.push(row(
            format!("{} frame of max_frame + 1 bytes", opcode_name(op)),
            client_frame(true, op, &vec![b'a'; frame + 1]),
            1009,
            "frame too large",
            FrameTooLarge,
        ));
    }
    rows.push(row(
        "continuation frame of max_frame + 1 bytes",
        [
            client_frame(false, BINARY, b"x"),
            client_frame(true, CONT, &vec![0; frame + 1]),
        ]
        .concat(),
        1009,
        "frame too large",
        FrameTooLarge,
    ));
    // Declared, never sent.
    for (what, first, len) in [
        ("max_frame + 1", 0x82, frame as u64 + 1),
        ("16 MiB", 0x82, 16 << 20),
        ("2^40", 0x82, 1 << 40),
        ("2^63 - 1", 0x82, u64::MAX >> 1),
        ("2^63 - 1 (text)", 0x81, u64::MAX >> 1),
    ] {
        let bytes = match u16::try_from(len) {
            Ok(short) => header_bytes(first, 126, &short.to_be_bytes()),
            Err(_) => header_bytes(first, 127, &len.to_be_bytes()),
        };
        rows.push(row(
            format!("header declaring {what} bytes"),
            bytes,
            1009,
            "frame too large",
            FrameTooLarge,
        ));
    }
    rows.push(row(
        "one frame of max_message + 1 bytes (within max_frame)",
        client_frame(true, BINARY, &vec![1; message + 1]),
        1009,
        "message too large",
        MessageTooLarge,
    ));
    for op in [TEXT, BINARY] {
        rows.push(row(
            format!(
                "{} message of max_message + 1 in 2 fragments",
                opcode_name(op)
            ),
            [
                client_frame(false, op, &vec![b'a'; message - 50]),
                client_frame(true, CONT, &[b'b'; 51]),
            ]
            .concat(),
            1009,
            "message too large",
            MessageTooLarge,
        ));
    }
    rows.push(row(
        "text message of max_message + 1 in 3 fragments",
        [
            client_frame(false, TEXT, &[b'a'; 200]),
            client_frame(false, CONT, &[b'a'; 200]),
            client_frame(true, CONT, &vec![b'a'; message - 399]),
        ]
        .concat(),
        1009,
        "message too large",
        MessageTooLarge,
    ));
    // The bytes of a character held back unfinished count: without them
    // the message would fit, and break UTF-8 instead.
    rows.push(row(
        "max_message + 1 counting 2 bytes of an unfinished character",
        [
            client_frame(false, TEXT, &vec![b'a'; message - 52]),
            client_frame(false, CONT, b"\xe2\x82"),
            client_frame(true, CONT, &[b'b'; 51]),
        ]
        .concat(),
        1009,
        "message too large",
        MessageTooLarge,
    ));
    let fragments = LIMITS.max_fragments;
    let mut text = client_frame(false, TEXT, b"1");
    for i in 1..fragments {
        text.extend(client_frame(false, CONT, format!("{}", i + 1).as_bytes()));
    }
    text.extend(client_frame(true, CONT, b""));
    rows.push(row(
        "text message of max_fragments + 1 fragments",
        text,
        1009,
        "too many fragments",
        TooManyFragments,
    ));
    let mut binary = client_frame(false, BINARY, b"1");
    for _ in 0..fragments {
        binary.extend(client_frame(false, CONT, b"2"));
    }
    binary.extend(client_frame(true, CONT, b"3"));
    rows.push(row(
        "binary message of max_fragments + 2 fragments",
        binary,
        1009,
        "too many fragments",
        TooManyFragments,
    ));
}
