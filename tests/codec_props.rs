//! Properties of the codec, checked with proptest on generated inputs:
//! header write/parse round trips, whole message streams decoded under any
//! chunking (both directions), the fast mask against its definition, and
//! the incremental UTF-8 validator against `std::str::from_utf8`.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use wschat::ws::close::CloseFrame;
use wschat::ws::frame::{FrameHeader, MAX_HEADER_LEN, OpCode, close_payload, encode_frame};
use wschat::ws::mask::{apply_mask, apply_mask_reference};
use wschat::ws::utf8::Utf8Validator;
use wschat::ws::{CloseCode, Decoder, Event, Limits, Message, ProtocolError, Role};

const OPCODES: [OpCode; 6] = [
    OpCode::Continuation,
    OpCode::Text,
    OpCode::Binary,
    OpCode::Close,
    OpCode::Ping,
    OpCode::Pong,
];

// ---------------------------------------------------------------------------
// (a) FrameHeader: write, then parse.

fn payload_len() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..=130,
        prop::sample::select(vec![
            125u64,
            126,
            127,
            65_535,
            65_536,
            (1 << 63) - 1,
            1 << 63
        ]),
        126u64..=70_000,
        any::<u64>(),
    ]
}

fn header() -> impl Strategy<Value = FrameHeader> {
    (
        any::<bool>(),
        prop_oneof![4 => Just(0u8), 1 => 0u8..8],
        prop::sample::select(OPCODES.to_vec()),
        any::<Option<[u8; 4]>>(),
        payload_len(),
    )
        .prop_map(|(fin, rsv, opcode, mask, payload_len)| FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len,
        })
}

/// What parsing a written header must give, rule by rule in the order the
/// bytes arrive (§5.2, §5.5, §5.1). The RSV bits are reported, not checked:
/// the decoder checks them against the negotiated extension (below).
fn expected_parse(h: &FrameHeader, role: Role) -> Result<FrameHeader, ProtocolError> {
    if h.opcode.is_control() && !h.fin {
        return Err(ProtocolError::FragmentedControlFrame);
    }
    match (role, h.mask.is_some()) {
        (Role::Server, false) => return Err(ProtocolError::UnmaskedClientFrame),
        (Role::Client, true) => return Err(ProtocolError::MaskedServerFrame),
        _ => {}
    }
    if h.opcode.is_control() && h.payload_len > 125 {
        return Err(ProtocolError::ControlFrameTooLong);
    }
    if h.payload_len >> 63 != 0 {
        return Err(ProtocolError::LengthTopBitSet);
    }
    Ok(*h)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn header_write_then_parse_round_trips(h in header()) {
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = h.write(&mut out);
        let len_bytes = match h.payload_len { 0..=125 => 0, 126..=65_535 => 2, _ => 8 };
        prop_assert_eq!(n, 2 + len_bytes + if h.mask.is_some() { 4 } else { 0 });
        for role in [Role::Server, Role::Client] {
            let parsed = FrameHeader::parse(&out[..n], role);
            match expected_parse(&h, role) {
                Ok(header) => {
                    prop_assert_eq!(parsed, Ok(Some((header, n))));
                    // Every proper prefix is incomplete and uses nothing.
                    for cut in 0..n {
                        prop_assert_eq!(FrameHeader::parse(&out[..cut], role), Ok(None));
                    }
                }
                Err(e) => {
                    prop_assert_eq!(parsed, Err(e));
                    prop_assert_eq!(e.close_code(), CloseCode::PROTOCOL_ERROR);
                }
            }
            // With no extension negotiated, a decoder refuses any RSV bit
            // from the first byte alone, before any other rule.
            if h.rsv != 0 {
                let mut decoder = Decoder::new(role, Limits::CHAT);
                let e = decoder.decode(&mut out[..1].to_vec()).unwrap_err();
                prop_assert_eq!(e, ProtocolError::ReservedBits);
                prop_assert_eq!(e.close_code(), CloseCode::PROTOCOL_ERROR);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// (b), (c) Message streams under any chunking.

#[derive(Clone, Debug)]
enum Control {
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

/// One data message, how to fragment it, and the control frames to put
/// around and between its fragments.
#[derive(Clone, Debug)]
struct Plan {
    message: Message,
    /// Fragment boundaries as byte positions (duplicates give empty
    /// fragments; positions may fall inside a UTF-8 character).
    cuts: Vec<Index>,
    /// Control frames, each before fragment number `gap` (reduced modulo
    /// the number of fragments + 1; the last gap is after the message).
    controls: Vec<(Index, Control)>,
    key: [u8; 4],
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        any::<String>().prop_map(Message::Text),
        // Wide characters, so that fragment cuts often split one.
        vec(prop::char::range('\u{80}', '\u{10FFFF}'), 0..40)
            .prop_map(|chars| Message::Text(chars.into_iter().collect())),
        vec(any::<u8>(), 0..400).prop_map(Message::Binary),
    ]
}

fn control() -> impl Strategy<Value = Control> {
    prop_oneof![
        vec(any::<u8>(), 0..=125).prop_map(Control::Ping),
        vec(any::<u8>(), 0..=125).prop_map(Control::Pong),
    ]
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        message(),
        vec(any::<Index>(), 0..8),
        vec((any::<Index>(), control()), 0..4),
        any::<[u8; 4]>(),
    )
        .prop_map(|(message, cuts, controls, key)| Plan {
            message,
            cuts,
            controls,
            key,
        })
}

fn close() -> impl Strategy<Value = Option<(u16, String)>> {
    let code = prop_oneof![1000u16..=1003, 1007u16..=1014, 3000u16..=4999];
    proptest::option::of((code, any::<String>()))
}

/// Encode `plans` (and a final Close) as `sender` would, and list the events
/// the receiver must report, in order.
fn encode_stream(
    plans: &[Plan],
    close: &Option<(u16, String)>,
    sender: Role,
) -> (Vec<u8>, Vec<Event>) {
    let mut stream = Vec::new();
    let mut events = Vec::new();
    let frame = |stream: &mut Vec<u8>, fin, op, payload: &[u8], key: [u8; 4]| {
        let mask = (sender == Role::Client).then_some(key);
        encode_frame(stream, fin, op, payload, mask);
    };
    for plan in plans {
        let (bytes, opcode) = match &plan.message {
            Message::Text(text) => (text.as_bytes(), OpCode::Text),
            Message::Binary(bytes) => (bytes.as_slice(), OpCode::Binary),
        };
        let mut cuts: Vec<usize> = plan.cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut bounds = vec![0];
        bounds.extend(cuts);
        bounds.push(bytes.len());
        let fragments = bounds.len() - 1;
        let mut controls: Vec<(usize, &Control)> = plan
            .controls
            .iter()
            .map(|(i, c)| (i.index(fragments + 1), c))
            .collect();
        controls.sort_by_key(|(gap, _)| *gap);
        let emit_controls = |stream: &mut Vec<u8>, events: &mut Vec<Event>, gap: usize| {
            for (_, control) in controls.iter().filter(|(g, _)| *g == gap) {
                let key = plan.key.map(|b| b.rotate_left(3));
                match control {
                    Control::Ping(p) => {
                        frame(stream, true, OpCode::Ping, p, key);
                        events.push(Event::Ping(p.clone()));
                    }
                    Control::Pong(p) => {
                        frame(stream, true, OpCode::Pong, p, key);
                        events.push(Event::Pong(p.clone()));
                    }
                }
            }
        };
        for i in 0..fragments {
            emit_controls(&mut stream, &mut events, i);
            let op = if i == 0 { opcode } else { OpCode::Continuation };
            let key = plan.key.map(|b| b.wrapping_add(i as u8));
            frame(
                &mut stream,
                i + 1 == fragments,
                op,
                &bytes[bounds[i]..bounds[i + 1]],
                key,
            );
        }
        events.push(Event::Message(plan.message.clone()));
        emit_controls(&mut stream, &mut events, fragments);
    }
    if let Some((code, reason)) = close {
        let payload = close_payload(*code, reason);
        frame(&mut stream, true, OpCode::Close, &payload, [9, 8, 7, 6]);
        events.push(Event::Close(Some(CloseFrame {
            code: CloseCode(*code),
            reason: String::from_utf8(payload[2..].to_vec()).unwrap(),
        })));
    }
    (stream, events)
}

/// Feed `stream` to a decoder in pieces of the given sizes (cycled), the way
/// `conn::Reader` does, and collect the events.
fn decode_chunked(role: Role, stream: &[u8], sizes: &[usize]) -> Result<Vec<Event>, ProtocolError> {
    let mut decoder = Decoder::new(role, Limits::CHAT);
    let mut buf: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    let mut fed = 0;
    for &size in sizes.iter().cycle() {
        if fed == stream.len() {
            break;
        }
        let n = size.min(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
        let mut start = 0;
        while start < buf.len() {
            let (used, event) = decoder.decode(&mut buf[start..])?;
            start += used;
            match event {
                Some(event) => events.push(event),
                None if used == 0 => break,
                None => {}
            }
        }
        buf.drain(..start);
    }
    assert!(buf.is_empty(), "left over: {buf:x?}");
    assert!(!decoder.is_mid_message());
    Ok(events)
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        vec(1usize..8, 1..16),
        vec(1usize..300, 1..16),
        Just(vec![1]),
        Just(vec![usize::MAX]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn client_to_server_streams_decode_under_any_chunking(
        plans in vec(plan(), 0..6),
        close in close(),
        sizes in chunk_sizes(),
    ) {
        let (stream, expected) = encode_stream(&plans, &close, Role::Client);
        prop_assert_eq!(decode_chunked(Role::Server, &stream, &sizes), Ok(expected));
    }

    #[test]
    fn server_to_client_streams_decode_under_any_chunking(
        plans in vec(plan(), 0..6),
        close in close(),
        sizes in chunk_sizes(),
    ) {
        let (stream, expected) = encode_stream(&plans, &close, Role::Server);
        prop_assert_eq!(decode_chunked(Role::Client, &stream, &sizes), Ok(expected));
    }

    #[test]
    fn a_stream_for_the_other_role_is_refused(
        plans in vec(plan(), 1..3),
        sizes in chunk_sizes(),
    ) {
        // A client's (masked) frames sent to a client, and a server's
        // (unmasked) frames sent to a server, fail at the first frame.
        let (stream, _) = encode_stream(&plans, &None, Role::Client);
        prop_assert_eq!(
            decode_chunked(Role::Client, &stream, &sizes),
            Err(ProtocolError::MaskedServerFrame)
        );
        let (stream, _) = encode_stream(&plans, &None, Role::Server);
        prop_assert_eq!(
            decode_chunked(Role::Server, &stream, &sizes),
            Err(ProtocolError::UnmaskedClientFrame)
        );
    }
}

// ---------------------------------------------------------------------------
// (d) The fast mask equals the byte-at-a-time definition.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn apply_mask_equals_reference(
        data in vec(any::<u8>(), 0..300),
        key in any::<[u8; 4]>(),
        offset in 0usize..1 << 20,
        start in any::<Index>(),
    ) {
        // Start anywhere in the buffer, so every alignment is covered.
        let start = start.index(data.len() + 1);
        let mut fast = data.clone();
        let mut slow = data.clone();
        apply_mask(&mut fast[start..], key, offset);
        apply_mask_reference(&mut slow[start..], key, offset);
        prop_assert_eq!(&fast, &slow);
        // Masking twice is the identity.
        apply_mask(&mut fast[start..], key, offset);
        prop_assert_eq!(fast, data);
    }

    #[test]
    fn masking_in_pieces_equals_masking_at_once(
        data in vec(any::<u8>(), 0..300),
        key in any::<[u8; 4]>(),
        cuts in vec(any::<Index>(), 0..6),
    ) {
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        cuts.push(0);
        cuts.push(data.len());
        cuts.sort_unstable();
        let mut pieces = data;
        for w in cuts.windows(2) {
            apply_mask(&mut pieces[w[0]..w[1]], key, w[0]);
        }
        prop_assert_eq!(pieces, whole);
    }
}

// ---------------------------------------------------------------------------
// (e) The UTF-8 validator agrees with std under any chunking.

/// Byte strings that are often valid UTF-8, often almost valid.
fn utf8ish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..64),
        any::<String>().prop_map(String::into_bytes),
        // Valid text with one byte changed, dropped or inserted.
        (any::<String>(), any::<Index>(), any::<u8>(), 0..3u8).prop_map(|(s, i, b, how)| {
            let mut bytes = s.into_bytes();
            let at = i.index(bytes.len() + 1);
            match how {
                0 if at < bytes.len() => bytes[at] = b,
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, b),
            }
            bytes
        }),
        // Bytes from the edges of the UTF-8 ranges.
        vec(
            prop::sample::select(vec![
                0x00u8, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                0xE0, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF,
            ]),
            0..16
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10000))]

    #[test]
    fn utf8_validator_agrees_with_std(bytes in utf8ish(), cuts in vec(any::<Index>(), 0..6)) {
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        cuts.push(0);
        cuts.push(bytes.len());
        cuts.sort_unstable();
        // The first byte after which no continuation can make the prefix
        // valid: the validator must fail in the piece that holds it.
        let first_bad = (0..bytes.len()).find(|&k| {
            matches!(std::str::from_utf8(&bytes[..=k]), Err(e) if e.error_len().is_some())
        });
        let mut validator = Utf8Validator::new();
        let mut out = String::new();
        let mut failed_at = None;
        for w in cuts.windows(2) {
            if validator.feed(&bytes[w[0]..w[1]], |s| out.push_str(s)).is_err() {
                failed_at = Some(w[1]);
                break;
            }
            // Only whole characters are passed on, and never too early.
            prop_assert!(bytes.starts_with(out.as_bytes()));
            prop_assert_eq!(out.len() + validator.pending(), w[1]);
        }
        match (std::str::from_utf8(&bytes), first_bad) {
            (Ok(text), _) => {
                prop_assert_eq!(failed_at, None);
                prop_assert!(validator.is_complete());
                prop_assert_eq!(out, text);
            }
            (Err(_), Some(k)) => {
                // Failed in the piece that holds byte k.
                let end = failed_at.expect("invalid UTF-8 accepted");
                let piece = cuts.windows(2).find(|w| w[0] <= k && k < w[1]).unwrap();
                prop_assert_eq!(end, piece[1]);
            }
            (Err(_), None) => {
                // A valid prefix cut short: no error, but not complete.
                prop_assert_eq!(failed_at, None);
                prop_assert!(!validator.is_complete());
            }
        }
    }
}
