//! The worked examples of `docs/reading-guide.md`, checked against the code.
//!
//! The guide is read (at compile time, so a change to it rebuilds this
//! test) and its marked parts are taken out of it:
//!
//! - fenced blocks whose info string names them, ```` ```hex <name> ````,
//!   ```` ```http <name> ````, ```` ```text <name> ````: the bytes of a frame
//!   (hex pairs, `#` starts a comment), an HTTP head (one line per header
//!   line), a computation, a trace line;
//! - tables preceded by `<!-- table: <name> -->`: the columns are found by
//!   their header, so a column may move but not be renamed.
//!
//! The bytes are decoded with the public API — `FrameHeader::parse`,
//! `apply_mask`, `Decoder::decode`, `handshake::accept_key` — and every value
//! a table states is compared with what the code decoded, and with the bytes
//! at the offsets the table gives. A table row the test does not know, or a
//! missing one, fails too: the guide cannot drift from the code.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};

use wschat::http::{HeadLimits, HeadScanner, Request};
use wschat::ws::frame::{FrameHeader, OpCode, encode_frame};
use wschat::ws::handshake;
use wschat::ws::mask::apply_mask;
use wschat::ws::trace::{self, Direction};
use wschat::ws::{CloseCode, CloseFrame, Decoder, Event, Limits, Message, ProtocolError, Role};

const GUIDE: &str = include_str!("../docs/reading-guide.md");

// ---------------------------------------------------------------------------
// Reading the guide.

/// The named blocks and tables of the guide.
struct Guide {
    blocks: BTreeMap<String, String>,
    tables: BTreeMap<String, Table>,
}

/// A table: its header cells, and its rows keyed by those headers.
struct Table {
    name: String,
    rows: Vec<BTreeMap<String, String>>,
}

impl Table {
    /// The cell of `row` under the header `column`.
    fn cell<'a>(&self, row: &'a BTreeMap<String, String>, column: &str) -> &'a str {
        row.get(column).unwrap_or_else(|| {
            panic!(
                "table {}: no column {column:?} (columns: {:?})",
                self.name,
                row.keys().collect::<Vec<_>>()
            )
        })
    }

    /// The value a cell states: the text of its first `code span`, or the
    /// whole cell when it has none.
    fn value<'a>(&self, row: &'a BTreeMap<String, String>, column: &str) -> &'a str {
        let cell = self.cell(row, column);
        let mut spans = cell.split('`');
        match (spans.next(), spans.next()) {
            (Some(_), Some(inner)) => inner,
            _ => cell,
        }
    }
}

fn guide() -> Guide {
    let mut blocks = BTreeMap::new();
    let mut tables = BTreeMap::new();
    let mut lines = GUIDE.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            let mut body = String::new();
            for line in lines.by_ref() {
                if line.trim_start().starts_with("```") {
                    break;
                }
                body.push_str(line);
                body.push('\n');
            }
            if let Some(name) = info.split_whitespace().nth(1) {
                let again = blocks.insert(name.to_owned(), body);
                assert!(again.is_none(), "two blocks named {name}");
            }
        } else if let Some(name) = line
            .trim()
            .strip_prefix("<!-- table:")
            .and_then(|rest| rest.strip_suffix("-->"))
        {
            let name = name.trim().to_owned();
            while lines.next_if(|l| l.trim().is_empty()).is_some() {}
            let mut raw = Vec::new();
            while let Some(row) = lines.next_if(|l| l.trim_start().starts_with('|')) {
                raw.push(cells(row));
            }
            assert!(raw.len() > 2, "table {name}: a header, a rule and rows");
            let header = raw.remove(0);
            let rule = raw.remove(0);
            assert!(
                rule.iter().all(|c| c.chars().all(|ch| "-: ".contains(ch))),
                "table {name}: the second line must be the |---| rule"
            );
            let rows = raw
                .into_iter()
                .map(|row| {
                    assert_eq!(row.len(), header.len(), "table {name}: row {row:?}");
                    header.iter().cloned().zip(row).collect()
                })
                .collect();
            let table = Table {
                name: name.clone(),
                rows,
            };
            assert!(
                tables.insert(name.clone(), table).is_none(),
                "two tables {name}"
            );
        }
    }
    Guide { blocks, tables }
}

/// The cells of one table line, trimmed.
fn cells(line: &str) -> Vec<String> {
    let line = line.trim();
    let inner = line.strip_prefix('|').unwrap_or(line);
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    inner.split('|').map(|c| c.trim().to_owned()).collect()
}

impl Guide {
    fn block(&self, name: &str) -> &str {
        self.blocks
            .get(name)
            .unwrap_or_else(|| panic!("the guide has no block named {name}"))
    }

    fn table(&self, name: &str) -> &Table {
        self.tables
            .get(name)
            .unwrap_or_else(|| panic!("the guide has no table named {name}"))
    }

    /// The bytes of a ```` ```hex ```` block.
    fn hex(&self, name: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        for line in self.block(name).lines() {
            let data = line.split('#').next().unwrap_or_default();
            for pair in data.split_whitespace() {
                assert_eq!(pair.len(), 2, "block {name}: {pair:?} is not one byte");
                let byte = u8::from_str_radix(pair, 16)
                    .unwrap_or_else(|_| panic!("block {name}: {pair:?} is not hex"));
                bytes.push(byte);
            }
        }
        assert!(!bytes.is_empty(), "block {name} holds no bytes");
        bytes
    }

    /// An ```` ```http ```` block as it goes on the wire: every line ended
    /// with CR LF, and an empty line after the last.
    fn http(&self, name: &str) -> Vec<u8> {
        let mut head = String::new();
        for line in self.block(name).lines() {
            assert!(!line.trim().is_empty(), "block {name}: an empty line");
            head.push_str(line);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

// ---------------------------------------------------------------------------
// Formatting values the way the guide writes them.

/// `37 fa 21 3d`.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `Byte` cell: `—` for none, `2` for one byte, `2–5` (or `2-5`) for
/// several.
fn byte_range(cell: &str) -> Option<RangeInclusive<usize>> {
    if cell == "—" || cell == "-" {
        return None;
    }
    let number = |s: &str| {
        s.trim()
            .parse::<usize>()
            .unwrap_or_else(|_| panic!("Byte cell {cell:?} is not an offset"))
    };
    Some(match cell.split_once(['–', '-']) {
        Some((first, last)) => number(first)..=number(last),
        None => number(cell)..=number(cell),
    })
}

// ---------------------------------------------------------------------------
// Checking a frame table.

/// One frame of the guide, decoded by the code.
struct Decoded {
    wire: Vec<u8>,
    header: FrameHeader,
    header_len: usize,
    /// The payload after unmasking (as sent, for an unmasked frame).
    payload: Vec<u8>,
    /// What `Decoder::decode` reported.
    event: Event,
}

impl Decoded {
    /// Parse `wire` as received by `role`, and decode it with a fresh
    /// decoder: it must be exactly one frame that yields one event.
    fn new(wire: Vec<u8>, role: Role) -> Decoded {
        let (header, header_len) = FrameHeader::parse(&wire, role)
            .expect("the guide's frame breaks no rule")
            .expect("the guide's frame has a whole header");
        for cut in 0..header_len {
            assert_eq!(
                FrameHeader::parse(&wire[..cut], role),
                Ok(None),
                "an incomplete header ({cut} bytes) consumes nothing"
            );
        }
        assert_eq!(
            (wire.len() - header_len) as u64,
            header.payload_len,
            "the block holds exactly one frame"
        );
        let mut payload = wire[header_len..].to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        let mut input = wire.clone();
        let (used, event) = Decoder::new(role, Limits::default())
            .decode(&mut input)
            .expect("the decoder accepts the guide's frame");
        assert_eq!(used, wire.len(), "the decoder uses every byte");
        let event = event.expect("one whole frame is one event");

        // And these are the bytes wschat itself sends for that payload.
        let mut encoded = Vec::new();
        encode_frame(
            &mut encoded,
            header.fin,
            header.opcode,
            &payload,
            header.mask,
        );
        assert_eq!(
            hex(&encoded),
            hex(&wire),
            "encode_frame gives the same bytes"
        );

        Decoded {
            wire,
            header,
            header_len,
            payload,
            event,
        }
    }

    fn payload_range(&self) -> RangeInclusive<usize> {
        self.header_len..=self.wire.len() - 1
    }

    /// The text of a text message.
    fn text(&self) -> &str {
        match &self.event {
            Event::Message(Message::Text(text)) => text,
            other => panic!("not a text message: {other:?}"),
        }
    }

    /// The code and reason of a Close with a body.
    fn close(&self) -> &CloseFrame {
        match &self.event {
            Event::Close(Some(frame)) => frame,
            other => panic!("not a Close with a status code: {other:?}"),
        }
    }

    /// Bit `bit` (7 = most significant) of wire byte `byte`, as `0` or `1`.
    fn bit(&self, byte: usize, bit: u32) -> String {
        ((self.wire[byte] >> bit) & 1).to_string()
    }

    /// Check one row of the frame's table: its value against the decoded
    /// frame, and its byte offsets against the wire.
    fn check(&self, field: &str, bytes: Option<RangeInclusive<usize>>, value: &str) {
        let h = &self.header;
        let at = |range: &RangeInclusive<usize>| &self.wire[range.clone()];
        let expect_bytes = |want: Option<RangeInclusive<usize>>| {
            assert_eq!(bytes, want, "{field}: the Byte column");
        };
        match field {
            "FIN" => {
                expect_bytes(Some(0..=0));
                assert_eq!(value, u8::from(h.fin).to_string(), "{field}: decoded");
                assert_eq!(value, self.bit(0, 7), "{field}: on the wire");
            }
            "RSV1" | "RSV2" | "RSV3" => {
                expect_bytes(Some(0..=0));
                let n = u32::from(field.as_bytes()[3] - b'0'); // RSV1 is bit 6
                assert_eq!(value, ((h.rsv >> (3 - n)) & 1).to_string(), "{field}");
                assert_eq!(value, self.bit(0, 7 - n), "{field}: on the wire");
            }
            "Opcode" => {
                expect_bytes(Some(0..=0));
                assert_eq!(value, format!("{:#x}", h.opcode as u8), "{field}");
                assert_eq!(value, format!("{:#x}", self.wire[0] & 0x0F), "{field}");
            }
            "MASK" => {
                expect_bytes(Some(1..=1));
                assert_eq!(value, u8::from(h.mask.is_some()).to_string(), "{field}");
                assert_eq!(value, self.bit(1, 7), "{field}: on the wire");
            }
            "Payload length" => {
                expect_bytes(Some(1..=1));
                let len7 = self.wire[1] & 0x7F;
                assert!(len7 < 126, "the guide's frames use the 7-bit length");
                assert_eq!(value, h.payload_len.to_string(), "{field}");
                assert_eq!(value, len7.to_string(), "{field}: on the wire");
            }
            "Masking key" => match h.mask {
                Some(key) => {
                    let range = self.header_len - 4..=self.header_len - 1;
                    expect_bytes(Some(range.clone()));
                    assert_eq!(value, hex(&key), "{field}");
                    assert_eq!(value, hex(at(&range)), "{field}: on the wire");
                }
                None => {
                    expect_bytes(None);
                    assert_eq!(value, "none", "{field}");
                }
            },
            "Header length" => {
                expect_bytes(Some(0..=self.header_len - 1));
                assert_eq!(value, self.header_len.to_string(), "{field}");
            }
            "Payload on the wire" => {
                expect_bytes(Some(self.payload_range()));
                assert_eq!(value, hex(at(&self.payload_range())), "{field}");
            }
            "Payload after unmasking" => {
                expect_bytes(Some(self.payload_range()));
                assert_eq!(value, hex(&self.payload), "{field}");
            }
            "Text" => {
                expect_bytes(Some(self.payload_range()));
                assert_eq!(value, format!("{:?}", self.text()), "{field}");
                assert_eq!(self.text().as_bytes(), self.payload, "{field}");
            }
            "Status code bytes" | "Status code" => {
                let range = self.header_len..=self.header_len + 1;
                expect_bytes(Some(range.clone()));
                let code = self.close().code;
                if field == "Status code" {
                    assert_eq!(value, code.0.to_string(), "{field}");
                } else {
                    assert_eq!(value, hex(&code.0.to_be_bytes()), "{field}");
                    assert_eq!(value, hex(at(&range)), "{field}: on the wire");
                }
            }
            "Reason bytes" | "Reason" => {
                let range = self.header_len + 2..=self.wire.len() - 1;
                expect_bytes(Some(range.clone()));
                let reason = &self.close().reason;
                assert_eq!(hex(reason.as_bytes()), hex(&self.payload[2..]), "{field}");
                if field == "Reason" {
                    assert_eq!(value, format!("{reason:?}"), "{field}");
                } else {
                    assert_eq!(value, hex(at(&range)), "{field}: on the wire");
                }
            }
            other => panic!("the test does not know the field {other:?}"),
        }
    }

    /// Check every row of `table`, which must have exactly `fields`, in
    /// that order.
    fn check_table(&self, table: &Table, fields: &[&str]) {
        let named: Vec<&str> = table
            .rows
            .iter()
            .map(|row| table.cell(row, "Field"))
            .collect();
        assert_eq!(named, fields, "table {}: its rows", table.name);
        for row in &table.rows {
            let field = table.cell(row, "Field");
            let rfc = table.cell(row, "RFC");
            assert!(rfc.contains('§'), "{field}: no RFC section ({rfc:?})");
            self.check(
                field,
                byte_range(table.cell(row, "Byte")),
                table.value(row, "Value"),
            );
        }
    }
}

/// The message part of a trace line: `<peer> <direction> <fields>`.
fn check_trace(line: &str, direction: Direction, frame: &Decoded) {
    let line = line.trim();
    let peer: SocketAddr = line
        .split(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a trace line starts with the peer's address");
    let logged = trace::describe(direction, Some(peer), &frame.header, &frame.payload);
    assert_eq!(line, logged);
}

// ---------------------------------------------------------------------------
// The worked examples.

const FRAME_FIELDS: [&str; 11] = [
    "FIN",
    "RSV1",
    "RSV2",
    "RSV3",
    "Opcode",
    "MASK",
    "Payload length",
    "Masking key",
    "Header length",
    "Payload on the wire",
    "Payload after unmasking",
];

#[test]
fn client_text_frame() {
    let guide = guide();
    let frame = Decoded::new(guide.hex("client-text-frame"), Role::Server);

    let mut fields = FRAME_FIELDS.to_vec();
    fields.push("Text");
    frame.check_table(guide.table("client-text-frame"), &fields);

    // The guide's prose: a text frame, masked, giving a text message.
    assert_eq!(frame.header.opcode, OpCode::Text);
    assert!(frame.header.mask.is_some());
    assert!(matches!(frame.event, Event::Message(Message::Text(_))));

    // The guide's claim: a client's decoder refuses a masked frame.
    assert_eq!(
        FrameHeader::parse(&frame.wire, Role::Client),
        Err(ProtocolError::MaskedServerFrame)
    );
    assert_eq!(ProtocolError::MaskedServerFrame.close_code().0, 1002);

    check_trace(
        guide.block("trace-client-text-frame"),
        Direction::In,
        &frame,
    );
}

#[test]
fn client_text_unmasking_byte_by_byte() {
    let guide = guide();
    let frame = Decoded::new(guide.hex("client-text-frame"), Role::Server);
    let key = frame.header.mask.expect("a client frame is masked");
    let table = guide.table("client-text-unmasking");
    assert_eq!(
        table.rows.len(),
        frame.payload.len(),
        "one row per payload byte"
    );
    let byte = |row, column| {
        u8::from_str_radix(table.value(row, column), 16)
            .unwrap_or_else(|_| panic!("{column}: not a hex byte"))
    };
    for (i, row) in table.rows.iter().enumerate() {
        let masked = frame.wire[frame.header_len + i];
        // The reference: apply_mask on this one byte, at its offset.
        let mut one = [masked];
        apply_mask(&mut one, key, i);
        assert_eq!(table.value(row, "i"), i.to_string());
        assert_eq!(table.value(row, "j = i mod 4"), (i % 4).to_string());
        assert_eq!(byte(row, "Masked"), masked, "row {i}");
        assert_eq!(byte(row, "Key byte j"), key[i % 4], "row {i}");
        assert_eq!(byte(row, "Unmasked"), masked ^ key[i % 4], "row {i}");
        assert_eq!(byte(row, "Unmasked"), one[0], "row {i}");
        assert_eq!(byte(row, "Unmasked"), frame.payload[i], "row {i}");
        assert_eq!(
            table.value(row, "Character"),
            char::from(frame.payload[i]).to_string(),
            "row {i}"
        );
    }
}

#[test]
fn server_close_frame() {
    let guide = guide();
    let frame = Decoded::new(guide.hex("server-close-frame"), Role::Client);

    let mut fields = FRAME_FIELDS.to_vec();
    fields.extend(["Status code bytes", "Status code", "Reason bytes", "Reason"]);
    frame.check_table(guide.table("server-close-frame"), &fields);

    // The guide's prose: an unmasked Close, 1001 "going away".
    assert_eq!(frame.header.opcode, OpCode::Close);
    assert_eq!(frame.header.mask, None);
    assert_eq!(frame.close().code, CloseCode::GOING_AWAY);
    assert_eq!(frame.close().code, CloseCode(1001));

    // The guide's claim: a server's decoder refuses an unmasked frame.
    assert_eq!(
        FrameHeader::parse(&frame.wire, Role::Server),
        Err(ProtocolError::UnmaskedClientFrame)
    );
    assert_eq!(ProtocolError::UnmaskedClientFrame.close_code().0, 1002);

    check_trace(
        guide.block("trace-server-close-frame"),
        Direction::Out,
        &frame,
    );
}

#[test]
fn opening_handshake() {
    let guide = guide();
    let limits = HeadLimits::default();

    // The request: a whole head, a valid upgrade.
    let request = guide.http("handshake-request");
    assert_eq!(
        HeadScanner::default().find_end(&request, &limits),
        Ok(Some(request.len())),
        "the request block is exactly one head"
    );
    let parsed = Request::parse(&request, &limits).expect("the request parses");
    let upgrade = handshake::check_upgrade(&parsed).expect("the request is a valid upgrade");

    // The response: exactly the bytes the server sends.
    let response = guide.http("handshake-response");
    assert_eq!(
        String::from_utf8_lossy(&handshake::accept_response(&upgrade, None)),
        String::from_utf8_lossy(&response)
    );

    // The computation, step by step.
    let steps: Vec<&str> = guide
        .block("accept-computation")
        .lines()
        .map(|line| {
            let (_label, value) = line
                .trim()
                .split_once("  ")
                .unwrap_or_else(|| panic!("{line:?}: a label, two spaces, a value"));
            value.trim()
        })
        .collect();
    let [key, guid, joined, digest, accept] = steps[..] else {
        panic!("five steps: key, GUID, key + GUID, SHA-1, base64; got {steps:?}");
    };
    assert_eq!(
        Some(key),
        parsed.text("sec-websocket-key"),
        "the request's key"
    );
    assert_eq!(guid, handshake::GUID);
    assert_eq!(joined, format!("{key}{guid}"));
    let sha1 = Sha1::digest(joined.as_bytes());
    assert_eq!(digest, hex(&sha1));
    assert_eq!(accept, BASE64.encode(sha1));
    assert_eq!(accept, handshake::accept_key(key.as_bytes()));
    assert_eq!(accept, upgrade.accept);

    // The RFC's own values (§1.3), so the example is the RFC's.
    assert_eq!(key, "dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    // And the client side accepts the answer (§4.1).
    assert_eq!(handshake::check_response(&response, accept), Ok(()));
}
