//! Frames: every protocol violation of `tests/common/violations.rs`
//! against the binary, a valid message split inside a character, declared
//! lengths that must cost nothing, and a flood of one-byte fragments.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::support::*;
use crate::violations::{server_args, violations};

/// The binary started with the table's limits fails the connection for
/// each row (§7.1.7): a Close with the row's code and reason, then the end
/// of TCP; and it is none the worse for it.
#[test]
fn every_violation_fails_the_connection() {
    let args = server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    let base = server.sample();
    let rows = violations();
    for v in &rows {
        expect_failure(server.addr, &v.name, &v.bytes, v.code, &v.reason);
    }
    println!("{} violations", rows.len());
    server.check_healthy(base, "every_violation_fails_the_connection");
}

/// The control case of the UTF-8 rows: valid UTF-8 split inside a
/// character, with a ping between the fragments, is a normal message.
#[test]
fn a_character_split_between_fragments_with_a_ping_between() {
    let server = Server::start(&[]);
    let base = server.sample();
    let addr = server.addr;
    let mut client = ChatClient::join(addr, "splitter");
    let mut bytes = frame(false, TEXT, b"caf\xc3");
    bytes.extend(frame(true, PING, b"between"));
    bytes.extend(frame(true, CONT, b"\xa9 au lait"));
    client.ws.send_raw(&bytes).unwrap();
    let pong = client.ws.read_frame(WAIT).unwrap();
    let msg = client.wait_for(WAIT, "the split message", |v| v["type"] == "message");
    println!(
        "valid 'café au lait' split inside 'é' with a ping between → {:?} and {}",
        (pong.opcode, pong.text()),
        msg
    );
    assert_eq!((pong.opcode, pong.text().as_str()), (PONG, "between"));
    assert_eq!(msg["text"], "café au lait");
    client.close();
    server.check_healthy(
        base,
        "a_character_split_between_fragments_with_a_ping_between",
    );
}

#[test]
fn declared_16_mib_frames_allocate_nothing() {
    // Large enough limits that a 16 MiB frame is allowed, so only lazy
    // allocation protects the server; short liveness so it gives up soon.
    let server = Server::start(&[
        "--max-message",
        "33554432",
        "--ping-interval",
        "1",
        "--pong-timeout",
        "1",
    ]);
    let base = server.sample();
    let addr = server.addr;
    const N: usize = 20;
    let header = header_bytes(0x82, 127, &(16u64 << 20).to_be_bytes());
    let mut conns: Vec<Ws> = (0..N).map(|_| Ws::connect(addr)).collect();
    let sent_at = Instant::now();
    for ws in &mut conns {
        ws.send_raw(&header).unwrap();
    }
    println!(
        "{N} connections each sent a 14-byte header {} declaring 16 MiB, then nothing",
        hex(&header)
    );
    std::thread::sleep(Duration::from_millis(1200));
    let during = server.sample();
    println!(
        "1.2 s later: threads {} (start {}), RSS {} KiB (start {} KiB; {} MiB would be {N} × 16 MiB)",
        during.threads,
        base.threads,
        during.rss_kib,
        base.rss_kib,
        N * 16
    );
    assert!(
        during.rss_kib < base.rss_kib + 16 * 1024,
        "RSS grew by {} KiB: the declared length was allocated",
        during.rss_kib - base.rss_kib
    );
    // Each one is pinged after 1 s of silence and dropped 1 s later.
    for (i, ws) in conns.iter_mut().enumerate() {
        let mut pinged = false;
        let mut frames = Vec::new();
        let ended = loop {
            match ws.read_frame(Duration::from_secs(8).saturating_sub(sent_at.elapsed())) {
                Ok(f) => {
                    pinged |= f.opcode == PING;
                    frames.push(f.opcode);
                }
                Err(End::Eof | End::Reset(_)) => break sent_at.elapsed(),
                Err(e) => panic!("connection {i} not dropped within 8 s: {e:?}"),
            }
        };
        if i == 0 {
            println!(
                "connection 0 got opcodes {frames:?}, then TCP closed {ended:.1?} after the header"
            );
        }
        assert!(pinged, "connection {i} was not pinged");
        assert!(
            ended >= Duration::from_millis(1500),
            "dropped too early: {ended:?}"
        );
    }
    drop(conns);

    // With the default limits the same header is refused outright, and so
    // is one that declares one byte over --max-message (64 KiB by default).
    let small = Server::start(&[]);
    expect_failure(
        small.addr,
        "16 MiB header, default limits",
        &header,
        1009,
        "too large",
    );
    let over = header_bytes(0x82, 127, &(64u64 * 1024 + 1).to_be_bytes());
    expect_failure(
        small.addr,
        "declared 64 KiB + 1, default limits",
        &over,
        1009,
        "too large",
    );
    server.check_healthy_with(base, 0, 8 * 1024, "declared_16_mib_frames_allocate_nothing");
}

#[test]
fn hundred_thousand_one_byte_fragments() {
    let server = Server::start(&[]);
    let base = server.sample();
    let mut ws = Ws::connect(server.addr);
    let mut bytes = frame(false, TEXT, b"a");
    for _ in 1..99_999 {
        bytes.extend(frame(false, CONT, b"a"));
    }
    bytes.extend(frame(true, CONT, b"a"));
    let total = bytes.len();
    let mut writer = ws.writer();
    // (No FIN after the flood: see `close_frame_survives_the_peer_fin`.)
    let write = std::thread::spawn(move || writer.write_all(&bytes).map_err(|e| e.to_string()));
    let (code, reason, _) = ws.expect_close(WAIT);
    let eof = ws.expect_eof(Duration::from_secs(3));
    let peak = server.sample();
    let written = write.join().unwrap();
    println!(
        "100,000 one-byte fragments ({total} bytes; write: {written:?}) → Close {code} {reason:?}, \
         EOF {eof:.1?} later; RSS {} KiB (start {})",
        peak.rss_kib, base.rss_kib
    );
    assert_eq!(code, 1009);
    assert!(reason.contains("too many fragments"), "{reason}");
    drop(ws);
    // Exactly at the limit (1,024 fragments) is fine.
    let mut client = ChatClient::join(server.addr, "fragmenter");
    let mut bytes = frame(false, TEXT, b"x");
    for _ in 1..1023 {
        bytes.extend(frame(false, CONT, b"y"));
    }
    bytes.extend(frame(true, CONT, b"z"));
    client.ws.send_raw(&bytes).unwrap();
    let msg = client.wait_for(WAIT, "the 1,024-fragment message", |v| {
        v["type"] == "message"
    });
    println!(
        "1,024 fragments → a message of {} characters",
        msg["text"].as_str().unwrap().len()
    );
    assert_eq!(msg["text"].as_str().unwrap().len(), 1024);
    client.close();
    server.check_healthy_with(base, 0, 16 * 1024, "hundred_thousand_one_byte_fragments");
}
