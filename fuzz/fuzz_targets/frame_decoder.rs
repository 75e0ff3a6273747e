//! `FrameHeader::parse` on arbitrary bytes, as both roles: it must never
//! panic, and what it says must be consistent — a parsed header re-encodes
//! to exactly the bytes it came from (the encoding is canonical once
//! non-minimal lengths are refused), every shorter prefix is "incomplete",
//! an error is final (more bytes never change it), and every error is a
//! 1002. The RSV bits are reported as they are, never refused (what they
//! may be is the negotiated extension's, checked by the `Decoder`; see
//! `message_assembler`). Then the other direction: a header built from the
//! input is written with `encode_frame_rsv` and parsed back unchanged,
//! payload included.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::ws::frame::{
    FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode, encode_frame_rsv,
};
use wschat::ws::{CloseCode, Role};

const OPCODES: [OpCode; 6] = [
    OpCode::Continuation,
    OpCode::Text,
    OpCode::Binary,
    OpCode::Close,
    OpCode::Ping,
    OpCode::Pong,
];

fn check_parse(data: &[u8], role: Role) {
    match FrameHeader::parse(data, role) {
        Ok(Some((header, n))) => {
            assert!((2..=MAX_HEADER_LEN).contains(&n) && n <= data.len());
            assert_eq!(header.rsv, (data[0] >> 4) & 0x7);
            assert_eq!(header.mask.is_some(), role == Role::Server);
            assert!(header.payload_len >> 63 == 0);
            if header.opcode.is_control() {
                assert!(header.fin);
                assert!(header.payload_len <= MAX_CONTROL_PAYLOAD as u64);
            }
            let mut out = [0u8; MAX_HEADER_LEN];
            let written = header.write(&mut out);
            assert_eq!(&out[..written], &data[..n], "not canonical");
            for cut in 0..n {
                assert_eq!(FrameHeader::parse(&data[..cut], role), Ok(None));
            }
            // Bytes after the header do not change it.
            let mut longer = data[..n].to_vec();
            longer.extend_from_slice(&[0xFF; 4]);
            assert_eq!(FrameHeader::parse(&longer, role), Ok(Some((header, n))));
        }
        Ok(None) => {
            assert!(data.len() < MAX_HEADER_LEN);
        }
        Err(error) => {
            assert_eq!(error.close_code(), CloseCode::PROTOCOL_ERROR);
            // Errors are reported as soon as the bytes show them: more bytes
            // never turn an error into something else.
            for fill in [0x00, 0xFF] {
                let mut longer = data.to_vec();
                longer.extend_from_slice(&[fill; MAX_HEADER_LEN]);
                assert_eq!(FrameHeader::parse(&longer, role), Err(error));
            }
        }
    }
}

/// Build a header from the input, encode it with a payload, parse it back.
fn check_encode(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let fin = flags & 1 != 0;
    let opcode = OPCODES[usize::from(flags >> 1) % OPCODES.len()];
    let masked = flags & 0x10 != 0;
    let rsv = (flags >> 5) & 0x7;
    let (key, payload) = if rest.len() >= 4 {
        let (k, p) = rest.split_at(4);
        ([k[0], k[1], k[2], k[3]], p)
    } else {
        ([0x11, 0x22, 0x33, 0x44], rest)
    };
    let mask = masked.then_some(key);
    let role = if masked { Role::Server } else { Role::Client };
    let mut out = Vec::new();
    encode_frame_rsv(&mut out, fin, rsv, opcode, payload, mask);
    let parsed = FrameHeader::parse(&out, role);
    if opcode.is_control() && (!fin || payload.len() > MAX_CONTROL_PAYLOAD) {
        assert!(parsed.is_err(), "{parsed:?}");
        return;
    }
    let (header, n) = parsed.unwrap().unwrap();
    assert_eq!(
        header,
        FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        }
    );
    assert_eq!(out.len(), n + payload.len());
    let body = &mut out[n..];
    if let Some(key) = mask {
        wschat::ws::mask::apply_mask_reference(body, key, 0);
    }
    assert_eq!(body, payload);

    // Arbitrary lengths, including the 64-bit form, without a payload.
    if rest.len() >= 8 {
        let mut be = [0u8; 8];
        be.copy_from_slice(&rest[..8]);
        let payload_len = u64::from_be_bytes(be) >> (flags & 0x3F).min(63);
        let header = FrameHeader {
            fin: fin || opcode.is_control(),
            rsv,
            opcode,
            mask,
            payload_len: if opcode.is_control() {
                payload_len % 126
            } else {
                payload_len & (u64::MAX >> 1)
            },
        };
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = header.write(&mut out);
        assert_eq!(FrameHeader::parse(&out[..n], role), Ok(Some((header, n))));
    }
}

fuzz_target!(|data: &[u8]| {
    check_parse(data, Role::Server);
    check_parse(data, Role::Client);
    check_encode(data);
});
