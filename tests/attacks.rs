//! Attacks on a real `wschat` process over loopback: malformed and abusive
//! HTTP, malformed and abusive WebSocket frames, resource exhaustion
//! (slowloris, floods, slow readers, churn).
//!
//! Every test ends by checking that the server is still alive, that its
//! thread count came back and its RSS stayed bounded (read from
//! `/proc/PID/status`), and that a normal client can still join and chat.
//! Every test prints what it sent and what it got (`--nocapture`).

mod support;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

fn hex(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > 16 { " …" } else { "" };
    format!("[{}{more}] ({} bytes)", shown.join(" "), bytes.len())
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ------------------------------------------------------------------- HTTP

/// Send a request head (and body), expect `want`, and expect the server to
/// close the connection after answering.
fn expect_status(addr: SocketAddr, what: &str, request: &[u8], want: u16) -> Response {
    let r = http(addr, request);
    println!("{what}: sent {} bytes → {}", request.len(), r.summary());
    assert_eq!(r.status, want, "{what}: {}", r.summary());
    if want != 101 {
        assert!(r.closed, "{what}: the server kept the connection open");
    }
    r
}

#[test]
fn http_header_abuse() {
    let server = Server::start(&[]);
    let base = server.sample();
    let addr = server.addr;
    println!("server {addr}, start: {base:?}");

    // Header values full of spaces and tabs around the tokens: valid.
    let spaced = lines(&[
        "GET / HTTP/1.1",
        &format!("Host: \t {addr} \t "),
        "Upgrade: \t  websocket \t\t ",
        "Connection:    keep-alive ,\t Upgrade   ",
        &format!("Sec-WebSocket-Key:\t\t {KEY} \t "),
        "Sec-WebSocket-Version:   13   ",
        &format!("X-Pad: {}x{}", " \t".repeat(3000), " ".repeat(500)),
    ]);
    let ws = Ws::handshake(addr, &head(&spaced))
        .unwrap_or_else(|r| panic!("whitespace-padded upgrade refused: {}", r.summary()));
    println!("values padded with 7 KB of spaces/tabs → 101 Switching Protocols");
    ws.close();

    // Whitespace instead of a value: refused.
    let mut blank_key = upgrade_lines(addr);
    blank_key[4] = "Sec-WebSocket-Key: \t   \t ".into();
    expect_status(
        addr,
        "Sec-WebSocket-Key of only whitespace",
        &head(&blank_key),
        400,
    );
    let mut blank_upgrade = upgrade_lines(addr);
    blank_upgrade[2] = "Upgrade:  \t  ".into();
    expect_status(
        addr,
        "Upgrade of only whitespace",
        &head(&blank_upgrade),
        400,
    );
    let mut space_name = upgrade_lines(addr);
    space_name[2] = "Upgrade : websocket".into();
    expect_status(addr, "space before the colon", &head(&space_name), 400);

    // 2,000 headers (they fit in 8 KiB, so the header-count cap decides).
    let mut many = upgrade_lines(addr);
    many.extend((0..2000).map(|_| "a:".to_string()));
    let r = expect_status(addr, "2,000 headers", &head(&many), 431);
    assert!(r.body.contains("too many headers"), "{}", r.body);

    // A 20 MB header, trickled in 1 KiB writes: 431 once 8 KiB are in.
    let mut stream = tcp(addr);
    let writer = stream.try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let trickle = {
        let (stop, written) = (Arc::clone(&stop), Arc::clone(&written));
        std::thread::spawn(move || {
            let mut writer = writer;
            let start = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nX-Big: ");
            let chunk = [b'a'; 1024];
            let mut sent = 0usize;
            let mut first = true;
            while sent < 20 << 20 && !stop.load(Ordering::Acquire) {
                let bytes: &[u8] = if first { start.as_bytes() } else { &chunk };
                first = false;
                match writer.write_all(bytes) {
                    Ok(()) => sent += bytes.len(),
                    Err(e) => return (sent, Some(e.to_string())),
                }
                written.store(sent, Ordering::Release);
                std::thread::sleep(Duration::from_millis(1));
            }
            (sent, None)
        })
    };
    let started = Instant::now();
    let head_text = read_response_head(&mut stream, Instant::now() + WAIT)
        .map(|(h, _)| h)
        .unwrap_or_else(|e| panic!("no answer to the 20 MB header: {e:?}"));
    let at_answer = written.load(Ordering::Acquire);
    stop.store(true, Ordering::Release);
    let (total, error) = trickle.join().unwrap();
    println!(
        "20 MB header in 1 KiB writes: answered after {:?} with {:?} when {at_answer} bytes were written; \
         stopped writing at {total} bytes (write error: {error:?})",
        started.elapsed(),
        head_text.lines().next().unwrap_or("")
    );
    assert!(head_text.starts_with("HTTP/1.1 431"), "{head_text}");
    assert!(
        at_answer <= 64 * 1024,
        "answered only after {at_answer} bytes"
    );
    assert!(total < 1 << 20, "{total} bytes written before we noticed");
    drop(stream);

    server.check_healthy(base, "http_header_abuse");
}

#[test]
fn http_bad_upgrades() {
    let server = Server::start(&[]);
    let base = server.sample();
    let addr = server.addr;
    let valid = upgrade_lines(addr);
    let without = |prefix: &str| -> Vec<String> {
        valid
            .iter()
            .filter(|l| !l.starts_with(prefix))
            .cloned()
            .collect()
    };
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v = valid.clone();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let replace = |prefix: &str, line: &str| -> Vec<String> {
        valid
            .iter()
            .map(|l| {
                if l.starts_with(prefix) {
                    line.to_string()
                } else {
                    l.clone()
                }
            })
            .collect()
    };
    let with_body = |lines: Vec<String>, body: &str| {
        let mut bytes = head(&lines);
        bytes.extend_from_slice(body.as_bytes());
        bytes
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("missing Upgrade", head(&without("Upgrade")), 400),
        (
            "duplicated Upgrade",
            head(&with(&["Upgrade: websocket"])),
            400,
        ),
        (
            "missing Sec-WebSocket-Key",
            head(&without("Sec-WebSocket-Key")),
            400,
        ),
        (
            "duplicated Sec-WebSocket-Key",
            head(&with(&[&format!("Sec-WebSocket-Key: {KEY}")])),
            400,
        ),
        (
            "key of 15 bytes",
            head(&replace(
                "Sec-WebSocket-Key",
                "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA",
            )),
            400,
        ),
        (
            "key of 17 bytes",
            head(&replace(
                "Sec-WebSocket-Key",
                "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=",
            )),
            400,
        ),
        (
            "key not base64",
            head(&replace(
                "Sec-WebSocket-Key",
                "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==",
            )),
            400,
        ),
        (
            "HTTP/1.0 upgrade",
            head(&replace("GET", "GET / HTTP/1.0")),
            400,
        ),
        (
            "POST upgrade",
            head(&replace("GET", "POST / HTTP/1.1")),
            405,
        ),
        ("PUT upgrade", head(&replace("GET", "PUT / HTTP/1.1")), 405),
        (
            "DELETE upgrade",
            head(&replace("GET", "DELETE / HTTP/1.1")),
            405,
        ),
        (
            "Content-Length: 5 and Transfer-Encoding: chunked",
            with_body(
                with(&["Content-Length: 5", "Transfer-Encoding: chunked"]),
                "0\r\n\r\n",
            ),
            400,
        ),
        (
            "a body on the upgrade",
            with_body(with(&["Content-Length: 5"]), "hello"),
            400,
        ),
        (
            "Transfer-Encoding: chunked",
            with_body(with(&["Transfer-Encoding: chunked"]), "0\r\n\r\n"),
            400,
        ),
        (
            "version 8",
            head(&replace(
                "Sec-WebSocket-Version",
                "Sec-WebSocket-Version: 8",
            )),
            426,
        ),
        (
            "missing version",
            head(&without("Sec-WebSocket-Version")),
            426,
        ),
        ("missing Host", head(&without("Host")), 400),
        (
            "Connection without upgrade",
            head(&replace("Connection", "Connection: keep-alive")),
            400,
        ),
    ];
    for (what, request, want) in &cases {
        let r = expect_status(addr, what, request, *want);
        if *want == 405 {
            assert_eq!(r.header("Allow"), Some("GET, HEAD"), "{what}");
        }
        if *want == 426 {
            assert_eq!(r.header("Sec-WebSocket-Version"), Some("13"), "{what}");
        }
    }
    // `Content-Length: 0` is no body: accepted.
    let ws = Ws::handshake(addr, &head(&with(&["Content-Length: 0"])))
        .unwrap_or_else(|r| panic!("Content-Length: 0 refused: {}", r.summary()));
    println!("Content-Length: 0 → 101");
    ws.close();
    server.check_healthy(base, "http_bad_upgrades");
}

#[test]
fn http_origin_policy() {
    let server = Server::start(&[]);
    let base = server.sample();
    let addr = server.addr;
    let with_origin = |origin: &str| {
        let mut lines = upgrade_lines(addr);
        lines.push(format!("Origin: {origin}"));
        head(&lines)
    };
    let r = expect_status(
        addr,
        "Origin: http://evil.example",
        &with_origin("http://evil.example"),
        403,
    );
    assert!(r.body.contains("origin"), "{}", r.body);
    // The README's first try: the page from http://127.0.0.1:PORT/, a
    // socket to ws://localhost:PORT. The answer names the refused origin and
    // the flag that allows it, and the log says so at the default level.
    let localhost = format!("http://localhost:{}", addr.port());
    let r = expect_status(
        addr,
        "Origin: http://localhost:PORT",
        &with_origin(&localhost),
        403,
    );
    assert!(
        r.body.contains(&format!("a page from {localhost} may not"))
            && r.body.contains(&format!("--allow-origin {localhost}"))
            && r.body.contains(&format!("http://{addr}/")),
        "{}",
        r.body
    );
    let logged = format!("refused GET / (origin {localhost}): 403 Forbidden: a page from");
    let deadline = std::time::Instant::now() + WAIT;
    while !server.log().contains(&logged) {
        assert!(
            std::time::Instant::now() < deadline,
            "no info line {logged:?} in the log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    expect_status(
        addr,
        "Origin: https://chat.example.org (not listed)",
        &with_origin("https://chat.example.org"),
        403,
    );
    for origin in [
        "null",
        &format!("http://{addr}"),
        &format!("http://{addr}/"),
    ] {
        let ws = Ws::handshake(addr, &with_origin(origin))
            .unwrap_or_else(|r| panic!("Origin: {origin} refused: {}", r.summary()));
        println!("Origin: {origin} → 101");
        ws.close();
    }
    server.check_healthy(base, "http_origin_policy");

    let listed = Server::start(&["--allow-origin", "https://chat.example.org"]);
    let addr = listed.addr;
    let with_origin = |origin: &str| {
        let mut lines = upgrade_lines(addr);
        lines.push(format!("Origin: {origin}"));
        head(&lines)
    };
    let ws = Ws::handshake(addr, &with_origin("https://chat.example.org"))
        .unwrap_or_else(|r| panic!("listed origin refused: {}", r.summary()));
    println!("--allow-origin https://chat.example.org: Origin: https://chat.example.org → 101");
    ws.close();
    expect_status(
        addr,
        "--allow-origin https://chat.example.org: Origin: http://evil.example",
        &with_origin("http://evil.example"),
        403,
    );
}

// ----------------------------------------------------------------- frames

/// On a fresh connection, send `bytes`; expect a Close with `want` whose
/// reason contains `reason_has`, then the TCP connection closed.
fn expect_failure(addr: SocketAddr, what: &str, bytes: &[u8], want: u16, reason_has: &str) {
    let mut ws = Ws::connect(addr);
    let sent = ws.send_raw(bytes);
    let (code, reason, skipped) = ws.expect_close(WAIT);
    let eof = ws.expect_eof(Duration::from_secs(3));
    println!(
        "{what}: sent {} {}→ Close {code} {reason:?} ({skipped} frames before it), TCP closed {eof:.1?} later",
        hex(bytes),
        if sent.is_err() { "(write failed) " } else { "" }
    );
    assert_eq!(code, want, "{what}: close reason {reason:?}");
    assert!(reason.contains(reason_has), "{what}: reason {reason:?}");
}

/// A masked header with the given second-byte length field and extended
/// length bytes, then a masking key.
fn header_bytes(b0: u8, len7: u8, extended: &[u8]) -> Vec<u8> {
    let mut v = vec![b0, 0x80 | len7];
    v.extend_from_slice(extended);
    v.extend_from_slice(&mask_key());
    v
}

#[test]
fn frame_length_attacks() {
    let server = Server::start(&[]);
    let base = server.sample();
    let addr = server.addr;
    let top_bit = header_bytes(0x82, 127, &(1u64 << 63).to_be_bytes());
    expect_failure(
        addr,
        "64-bit length with the top bit set",
        &top_bit,
        1002,
        "top bit",
    );
    let max = header_bytes(0x82, 127, &u64::MAX.to_be_bytes());
    expect_failure(addr, "length u64::MAX", &max, 1002, "top bit");
    let near = header_bytes(0x82, 127, &(u64::MAX >> 1).to_be_bytes());
    expect_failure(addr, "length 2^63-1", &near, 1009, "too large");
    let near = header_bytes(0x81, 127, &(u64::MAX >> 1).to_be_bytes());
    expect_failure(
        addr,
        "text frame of length 2^63-1",
        &near,
        1009,
        "too large",
    );
    for len in [0u16, 1, 125] {
        let bytes = header_bytes(0x82, 126, &len.to_be_bytes());
        expect_failure(
            addr,
            &format!("126-form length {len}"),
            &bytes,
            1002,
            "minimally",
        );
    }
    for len in [0u64, 125, 126, 65535] {
        let bytes = header_bytes(0x82, 127, &len.to_be_bytes());
        expect_failure(
            addr,
            &format!("127-form length {len}"),
            &bytes,
            1002,
            "minimally",
        );
    }
    // One byte over --max-message (64 KiB by default), declared only.
    let over = header_bytes(0x82, 127, &(64u64 * 1024 + 1).to_be_bytes());
    expect_failure(addr, "declared 64 KiB + 1", &over, 1009, "too large");
    server.check_healthy(base, "frame_length_attacks");
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

    // With the default limits the same header is refused outright.
    let small = Server::start(&[]);
    expect_failure(
        small.addr,
        "16 MiB header, default limits",
        &header,
        1009,
        "too large",
    );
    server.check_healthy_with(base, 0, 8 * 1024, "declared_16_mib_frames_allocate_nothing");
}

#[test]
fn frame_rule_breaks() {
    let server = Server::start(&[]);
    let base = server.sample();
    let addr = server.addr;
    expect_failure(
        addr,
        "unmasked text frame",
        &[0x81, 0x02, b'h', b'i'],
        1002,
        "not masked",
    );
    for (rsv, name) in [(0x40, "RSV1"), (0x20, "RSV2"), (0x10, "RSV3")] {
        let bytes = raw_frame(0x80 | rsv | TEXT, b"hi");
        expect_failure(addr, &format!("{name} set"), &bytes, 1002, "reserved bits");
    }
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        let bytes = raw_frame(0x80 | op, b"");
        expect_failure(
            addr,
            &format!("opcode {op:#x}"),
            &bytes,
            1002,
            "reserved opcode",
        );
    }
    for (op, name) in [(PING, "ping"), (PONG, "pong"), (CLOSE, "close")] {
        let mut payload = close_payload(1000, &[b'x'; 124]);
        payload.truncate(126);
        let bytes = raw_frame(0x80 | op, &payload);
        expect_failure(
            addr,
            &format!("{name} of 126 bytes"),
            &bytes,
            1002,
            "longer than 125",
        );
    }
    let bytes = raw_frame(PING, b"part");
    expect_failure(addr, "ping without FIN", &bytes, 1002, "fragmented control");
    let bytes = raw_frame(0x80 | CLOSE, &[0x03]);
    expect_failure(addr, "close payload of 1 byte", &bytes, 1002, "one byte");
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535] {
        let bytes = raw_frame(0x80 | CLOSE, &close_payload(code, b"x"));
        let what = format!("close code {code}");
        expect_failure(
            addr,
            &what,
            &bytes,
            1002,
            &format!("close code {code} not allowed"),
        );
    }
    let bytes = raw_frame(0x80 | CLOSE, &close_payload(1000, b"bad \xff\xfe reason"));
    expect_failure(addr, "close reason not UTF-8", &bytes, 1007, "UTF-8");
    // Invalid UTF-8 whose bad byte is in a later fragment.
    let mut bytes = frame(false, TEXT, b"caf\xce");
    bytes.extend(frame(true, CONT, b"\x41 oops"));
    expect_failure(
        addr,
        "UTF-8 broken across 2 fragments",
        &bytes,
        1007,
        "UTF-8",
    );
    let mut bytes = frame(false, TEXT, b"\xf0\x9f");
    bytes.extend(frame(false, CONT, b"\x98"));
    bytes.extend(frame(true, CONT, b"("));
    expect_failure(
        addr,
        "4-byte sequence cut short across 3 fragments",
        &bytes,
        1007,
        "UTF-8",
    );
    // Truncated at the end of the message.
    let bytes = frame(true, TEXT, b"ends in \xc3");
    expect_failure(addr, "text ending mid-character", &bytes, 1007, "UTF-8");
    // New data frame inside a fragmented message.
    let mut bytes = frame(false, TEXT, b"one");
    bytes.extend(frame(true, TEXT, b"two"));
    expect_failure(
        addr,
        "text frame inside a fragmented message",
        &bytes,
        1002,
        "fragmented",
    );

    // The control case: valid UTF-8 split inside a character, with a ping
    // between the fragments, is a normal message.
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
    server.check_healthy(base, "frame_rule_breaks");
}

#[test]
fn close_frame_survives_the_peer_fin() {
    let server = Server::start(&["--max-per-ip", "0"]);
    let base = server.sample();
    let cases: [(&str, Vec<u8>, u16); 2] = [
        (
            "a frame with RSV1 set",
            raw_frame(0x80 | 0x40 | TEXT, b""),
            1002,
        ),
        (
            "a Close 1000",
            frame(true, CLOSE, &close_payload(1000, b"")),
            1000,
        ),
    ];
    for (what, bytes, want) in cases {
        let mut missing = 0;
        for _ in 0..100 {
            let mut request = head(&upgrade_lines(server.addr));
            request.extend_from_slice(&bytes);
            let mut ws = Ws::handshake(server.addr, &request).unwrap();
            ws.stream.shutdown(Shutdown::Write).unwrap();
            match ws.read_frame(WAIT) {
                Ok(f) if f.opcode == CLOSE => assert_eq!(f.close().0, want, "{what}"),
                Ok(f) => panic!("{what}: opcode {:#x} instead of a Close", f.opcode),
                Err(_) => missing += 1,
            }
        }
        println!("handshake + {what} + FIN, 100 times: {missing} got no Close frame back");
        assert_eq!(
            missing, 0,
            "{what}: no Close frame in {missing} of 100 runs"
        );
    }
    server.check_healthy(base, "close_frame_survives_the_peer_fin");
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

#[test]
fn continuation_storm() {
    let server = Server::start(&[]);
    let base = server.sample();
    let mut bytes = Vec::new();
    for _ in 0..10_000 {
        bytes.extend(frame(false, CONT, b"zz"));
    }
    expect_failure(
        server.addr,
        "10,000 continuation frames with no message started",
        &bytes,
        1002,
        "continuation frame without a message",
    );
    // A finished message, then a continuation: also no message in progress.
    let mut bytes = frame(true, TEXT, b"done");
    bytes.extend(frame(true, CONT, b"more"));
    expect_failure(
        server.addr,
        "continuation after a complete message",
        &bytes,
        1002,
        "continuation",
    );
    server.check_healthy(base, "continuation_storm");
}

/// Many 125-byte pings, back to back, as one buffer that wraps at a frame
/// boundary.
fn ping_burst(count: usize) -> (Vec<u8>, usize) {
    let one = frame(true, PING, &[b'p'; 125]);
    let size = one.len();
    (one.repeat(count), size)
}

#[test]
fn ping_flood_without_reading_pongs() {
    let server = Server::start(&[]);
    let base = server.sample();
    let mut ws = Ws::connect(server.addr);
    ws.stream
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (burst, frame_size) = ping_burst(512);
    let start = Instant::now();
    let (mut pos, mut sent, mut stalls) = (0usize, 0usize, 0usize);
    let mut peak = base;
    let mut last_sample = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        match ws.stream.write(&burst[pos..]) {
            Ok(n) => {
                sent += n;
                pos = (pos + n) % burst.len();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                stalls += 1;
            }
            Err(e) => panic!("write failed after {sent} bytes: {e}"),
        }
        if last_sample.elapsed() > Duration::from_millis(100) {
            let s = server.sample();
            peak.rss_kib = peak.rss_kib.max(s.rss_kib);
            peak.threads = peak.threads.max(s.threads);
            last_sample = Instant::now();
        }
    }
    println!(
        "pinged for 2 s without reading: {} pings ({sent} bytes) accepted, {stalls} stalled \
         writes of 100 ms (backpressure); peak RSS {} KiB (start {}), threads {}",
        sent / frame_size,
        peak.rss_kib,
        base.rss_kib,
        peak.threads
    );
    assert!(
        stalls > 0,
        "the server read {sent} bytes of pings without ever pushing back"
    );
    assert!(
        peak.rss_kib < base.rss_kib + 32 * 1024,
        "RSS grew to {} KiB while we did not read pongs",
        peak.rss_kib
    );
    drop(ws); // unread pongs: the kernel resets the connection
    server.check_healthy(base, "ping_flood_without_reading_pongs");
}

#[test]
fn ping_flood_reading_pongs() {
    let server = Server::start(&[]);
    let base = server.sample();
    let mut ws = Ws::connect(server.addr);
    let mut writer = ws.writer();
    let sent = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let pinger = {
        let (sent, done) = (Arc::clone(&sent), Arc::clone(&done));
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut n = 0usize;
            while start.elapsed() < Duration::from_secs(2) {
                let mut batch = Vec::new();
                for _ in 0..64 {
                    let payload = format!("ping #{n:08} {}", "x".repeat(n % 100));
                    batch.extend(frame(true, PING, payload.as_bytes()));
                    n += 1;
                }
                if let Err(e) = writer.write_all(&batch) {
                    panic!("write failed after {n} pings: {e}");
                }
                sent.store(n, Ordering::Release);
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut received = 0usize;
    let mut texts = 0usize;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(done.load(Ordering::Acquire) && received == sent.load(Ordering::Acquire)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = ws
            .read_frame(left)
            .unwrap_or_else(|e| panic!("after {received} pongs: {e:?}"));
        match f.opcode {
            PONG => {
                let want = format!("ping #{received:08} {}", "x".repeat(received % 100));
                assert_eq!(f.text(), want, "pong {received} has the wrong payload");
                received += 1;
            }
            TEXT => texts += 1,
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
    pinger.join().unwrap();
    println!(
        "pinged for 2 s while reading: {received} pings sent, {received} pongs back in order \
         with the same payloads (+{texts} chat frames)"
    );
    assert!(received > 1000, "only {received} pings in 2 s");
    ws.close();
    server.check_healthy(base, "ping_flood_reading_pongs");
}

#[test]
fn partial_header_during_hello_wait_is_still_pinged() {
    let server = Server::start(&["--ping-interval", "1", "--pong-timeout", "1"]);
    let base = server.sample();
    let mut request = head(&upgrade_lines(server.addr));
    request.push(0x81); // the first byte of a text frame's header
    let mut ws = Ws::handshake(server.addr, &request).unwrap();
    println!("sent the handshake followed by one byte (0x81), then nothing");
    let cpu = server.cpu_ticks();
    let result = ws.wait_eof(Duration::from_secs(6));
    println!(
        "after 6 s: {result:?} (Ok = dropped); server CPU {} ticks meanwhile",
        server.cpu_ticks() - cpu
    );
    assert!(
        result.is_ok(),
        "a silent client with a partial header is never pinged or dropped"
    );
    drop(ws);
    server.check_healthy(base, "partial_header_during_hello_wait_is_still_pinged");
}

// -------------------------------------------------------------- slowloris

#[test]
fn slowloris_500_connections() {
    let server = Server::start(&["--head-timeout", "3", "--max-per-ip", "0"]);
    let base = server.sample();
    let addr = server.addr;
    let mut chatter = ChatClient::join(addr, "chatter");
    let before: Vec<Duration> = (0..10).map(|_| chatter.round_trip("before")).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let during = Arc::new(Mutex::new(Vec::new()));
    let chat = {
        let (stop, during) = (Arc::clone(&stop), Arc::clone(&during));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                let rtt = chatter.round_trip("during the attack");
                during.lock().unwrap().push(rtt);
                std::thread::sleep(Duration::from_millis(100));
            }
            chatter.close();
        })
    };

    struct Slow {
        stream: TcpStream,
        opened: Duration,
        sent: usize,
        answer: Vec<u8>,
        ended: Option<(Duration, &'static str)>,
    }
    const N: usize = 500;
    let request = head(&upgrade_lines(addr));
    let start = Instant::now();
    let mut slow: Vec<Slow> = (0..N)
        .map(|_| {
            let stream = tcp(addr);
            stream.set_nonblocking(true).unwrap();
            Slow {
                stream,
                opened: start.elapsed(),
                sent: 0,
                answer: Vec::new(),
                ended: None,
            }
        })
        .collect();
    println!(
        "opened {N} connections in {:?}; each sends its head one byte per second",
        start.elapsed()
    );
    let mut peak_threads = 0;
    let mut next_byte = Instant::now();
    let mut buf = [0u8; 1024];
    while start.elapsed() < Duration::from_secs(8) && slow.iter().any(|s| s.ended.is_none()) {
        let send_now = Instant::now() >= next_byte;
        if send_now {
            next_byte += Duration::from_secs(1);
        }
        for s in slow.iter_mut().filter(|s| s.ended.is_none()) {
            loop {
                match s.stream.read(&mut buf) {
                    Ok(0) => {
                        s.ended = Some((start.elapsed(), "EOF"));
                        break;
                    }
                    Ok(n) => s.answer.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        s.ended = Some((start.elapsed(), "reset"));
                        break;
                    }
                }
            }
            if s.ended.is_none() && s.answer.windows(4).any(|w| w == b"\r\n\r\n") {
                s.ended = Some((start.elapsed(), "answer"));
            }
            if s.ended.is_none() && send_now && s.sent < request.len() {
                if s.stream.write(&request[s.sent..s.sent + 1]).is_ok() {
                    s.sent += 1;
                } else {
                    s.ended = Some((start.elapsed(), "write failed"));
                }
            }
        }
        peak_threads = peak_threads.max(server.threads());
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Release);
    chat.join()
        .expect("the normal client failed during the attack");

    let got_408 = slow
        .iter()
        .filter(|s| s.answer.starts_with(b"HTTP/1.1 408"))
        .count();
    let other_answers: Vec<String> = slow
        .iter()
        .filter(|s| !s.answer.is_empty() && !s.answer.starts_with(b"HTTP/1.1 408"))
        .map(|s| {
            String::from_utf8_lossy(&s.answer)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    let open = slow.iter().filter(|s| s.ended.is_none()).count();
    // How long each lasted from its connect (a connect may wait for room in
    // the listen queue).
    let times: Vec<Duration> = slow
        .iter()
        .filter_map(|s| s.ended.map(|e| e.0.saturating_sub(s.opened)))
        .collect();
    let (first, last) = (
        times.iter().min().copied().unwrap_or_default(),
        times.iter().max().copied().unwrap_or_default(),
    );
    let during = during.lock().unwrap().clone();
    let stats = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        (
            v.len(),
            v.get(v.len() / 2).copied().unwrap_or_default(),
            v.last().copied().unwrap_or_default(),
        )
    };
    println!(
        "slow connections: {got_408} got 408, {} closed without an answer, {open} still open; \
         lasted between {first:.2?} and {last:.2?} from their connect; each had sent ≤ {} bytes; peak threads {peak_threads}",
        N - got_408 - open - other_answers.len(),
        slow.iter().map(|s| s.sent).max().unwrap_or(0)
    );
    println!(
        "normal client round trips (count, median, max): before {:?}, during {:?}",
        stats(&before),
        stats(&during)
    );
    assert!(
        other_answers.is_empty(),
        "unexpected answers: {other_answers:?}"
    );
    assert_eq!(open, 0, "{open} slow connections outlived the head timeout");
    assert!(got_408 > 0, "no slow connection got a 408");
    assert!(
        first >= Duration::from_millis(2500),
        "one was dropped after only {first:?}"
    );
    assert!(last <= Duration::from_millis(4500), "one lasted {last:?}");
    assert!(
        !during.is_empty(),
        "the normal client made no round trip during the attack"
    );
    drop(slow);
    server.check_healthy(base, "slowloris_500_connections");
}

#[test]
fn per_ip_cap_refuses_the_65th() {
    let server = Server::start(&[]); // --max-per-ip 64 by default
    let base = server.sample();
    let addr = server.addr;
    let mut held: Vec<Ws> = (0..64).map(|_| Ws::connect(addr)).collect();
    println!(
        "64 WebSocket connections open from 127.0.0.1; threads {}",
        server.threads()
    );
    let r = http(addr, &head(&upgrade_lines(addr)));
    println!("65th connection → {}", r.summary());
    assert_eq!(r.status, 503);
    assert!(r.body.contains("from your address"), "{}", r.body);
    // A plain page request is refused too: the cap is on connections.
    let r = http(
        addr,
        format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    );
    println!("65th connection, plain GET → {}", r.summary());
    assert_eq!(r.status, 503);
    // Freeing one slot lets the next one in.
    held.pop().unwrap().close();
    let deadline = Instant::now() + WAIT;
    let again = loop {
        match Ws::handshake(addr, &head(&upgrade_lines(addr))) {
            Ok(ws) => break ws,
            Err(r) if Instant::now() < deadline => {
                assert_eq!(r.status, 503);
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(r) => panic!("slot not released: {}", r.summary()),
        }
    };
    println!("after one of the 64 closed, a new connection → 101");
    again.close();
    for ws in held {
        drop(ws);
    }
    server.check_healthy(base, "per_ip_cap_refuses_the_65th");
}

#[test]
fn max_connections_cap_refuses_with_503() {
    let server = Server::start(&["--max-connections", "10", "--max-per-ip", "0"]);
    let base = server.sample();
    let addr = server.addr;
    let held: Vec<Ws> = (0..10).map(|_| Ws::connect(addr)).collect();
    let r = http(addr, &head(&upgrade_lines(addr)));
    println!("--max-connections 10, 10 open: 11th → {}", r.summary());
    assert_eq!(r.status, 503);
    assert!(r.body.contains("too many connections"), "{}", r.body);
    for ws in held {
        ws.close();
    }
    server.check_healthy(base, "max_connections_cap_refuses_with_503");
}

#[test]
fn connections_over_the_cap_cost_no_thread() {
    let server = Server::start(&[]); // --max-per-ip 64
    let base = server.sample();
    let addr = server.addr;
    let held: Vec<Ws> = (0..64).map(|_| Ws::connect(addr)).collect();
    let with_held = server.wait_threads_at_most(base.threads + 128, WAIT);
    // 1,000 more, opened as fast as possible and left open, saying nothing.
    const N: usize = 1000;
    let start = Instant::now();
    let peak = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop, pid) = (Arc::clone(&peak), Arc::clone(&stop), server.pid);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let threads = status
                    .lines()
                    .find_map(|l| l.strip_prefix("Threads:"))
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                peak.fetch_max(threads, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let mut over: Vec<TcpStream> = (0..N).map(|_| tcp(addr)).collect();
    let opened = start.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Release);
    sampler.join().unwrap();
    let mut refused = 0;
    for s in &mut over {
        let r = read_response(s);
        if r.status == 503 {
            refused += 1;
        }
    }
    let peak = peak.load(Ordering::Relaxed);
    println!(
        "64 held ({with_held} threads), then {N} more connections opened in {opened:.2?} and left \
         silent: {refused} got 503; peak threads {peak}"
    );
    assert_eq!(refused, N);
    assert!(
        peak <= with_held + 32,
        "refused connections cost threads: peak {peak} with {with_held} before the flood"
    );
    drop(over);
    drop(held);
    server.check_healthy(base, "connections_over_the_cap_cost_no_thread");
}

// ----------------------------------------------------- slow and odd peers

#[test]
fn slow_reader_is_closed_and_others_get_everything() {
    let server = Server::start(&["--queue", "64", "--rate", "0", "--write-timeout", "60"]);
    let base = server.sample();
    let addr = server.addr;
    let mut slow = ChatClient::join(addr, "slow");
    let observer = ChatClient::join(addr, "observer");
    let sender = ChatClient::join(addr, "sender");
    let slow_id = slow.id;
    let sender_id = sender.id;
    println!("slow #{slow_id} stops reading; sender #{sender_id} sends 4 KB messages");

    // Readers: the observer and the sender's own reader record the order
    // of the sender's messages.
    let seen_by_observer = Arc::new(AtomicUsize::new(0));
    let seen_by_sender = Arc::new(AtomicUsize::new(0));
    let slow_gone = Arc::new(AtomicBool::new(false));
    let reader =
        |mut client: ChatClient, counter: Arc<AtomicUsize>, gone: Option<Arc<AtomicBool>>| {
            std::thread::spawn(move || {
                let mut order = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let v = match client.recv(left.min(Duration::from_secs(30))) {
                        Ok(v) => v,
                        Err(e) => panic!("{}: {e:?} after {} messages", client.name, order.len()),
                    };
                    if v["type"] == "leave"
                        && v["user"]["id"] == slow_id
                        && let Some(g) = &gone
                    {
                        g.store(true, Ordering::Release);
                    }
                    if v["type"] == "message" && v["from"]["id"] == sender_id {
                        let nonce = v["nonce"].as_str().unwrap().to_owned();
                        if nonce == "end" {
                            return (client, order);
                        }
                        order.push(nonce[1..].parse::<usize>().unwrap());
                        counter.store(order.len(), Ordering::Release);
                    }
                }
            })
        };
    let mut sender_out = sender.ws.writer();
    let observer_thread = reader(
        observer,
        Arc::clone(&seen_by_observer),
        Some(Arc::clone(&slow_gone)),
    );
    let sender_thread = reader(sender, Arc::clone(&seen_by_sender), None);

    let filler = "x".repeat(3990);
    let start = Instant::now();
    let mut sent = 0usize;
    let mut gone_at = None;
    while sent < 10_000 && start.elapsed() < Duration::from_secs(30) {
        if gone_at.is_none() && slow_gone.load(Ordering::Acquire) {
            gone_at = Some(sent);
        }
        if gone_at.is_some_and(|g| sent >= g + 50) {
            break;
        }
        let acked = seen_by_observer
            .load(Ordering::Acquire)
            .min(seen_by_sender.load(Ordering::Acquire));
        if sent - acked >= 32 {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        sender_out
            .write_all(&say_frame(
                &format!("{sent:06} {filler}"),
                &format!("s{sent}"),
            ))
            .unwrap();
        sent += 1;
    }
    sender_out.write_all(&say_frame("end", "end")).unwrap();
    let (observer, by_observer) = observer_thread.join().unwrap();
    let (sender, by_sender) = sender_thread.join().unwrap();
    println!(
        "sent {sent} messages ({} MB) in {:.1?}; the hub closed slow after {gone_at:?}; \
         observer got {}, sender got {} back",
        sent * 4 / 1000,
        start.elapsed(),
        by_observer.len(),
        by_sender.len()
    );
    assert!(gone_at.is_some(), "the slow client was never closed");
    let all: Vec<usize> = (0..sent).collect();
    assert_eq!(
        by_observer, all,
        "the observer missed or reordered messages"
    );
    assert_eq!(
        by_sender, all,
        "the sender missed or reordered its own messages"
    );

    // Now the slow client reads: what was buffered, then Close 1008.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (code, reason) = loop {
        assert!(
            Instant::now() < deadline,
            "slow client: no Close within 30 s"
        );
        let f = slow
            .ws
            .read_frame(WAIT)
            .unwrap_or_else(|e| panic!("slow client: {e:?} after {} messages", got.len()));
        match f.opcode {
            TEXT => {
                let v: Value = serde_json::from_slice(&f.payload).unwrap();
                if v["type"] == "message" {
                    got.push(v["nonce"].as_str().unwrap()[1..].parse::<usize>().unwrap());
                }
            }
            CLOSE => break f.close(),
            _ => {}
        }
    };
    let _ = slow.ws.send(true, CLOSE, &close_payload(code, b""));
    let eof = slow.ws.expect_eof(WAIT);
    println!(
        "slow client finally read {} messages (0..{}), then Close {code} {reason:?}, EOF {eof:.1?} later",
        got.len(),
        got.len()
    );
    assert_eq!(code, 1008);
    assert_eq!(reason, "too slow");
    assert_eq!(
        got,
        (0..got.len()).collect::<Vec<_>>(),
        "slow client got a non-prefix"
    );
    assert!(got.len() < sent);
    observer.close();
    sender.close();
    drop(slow);
    server.check_healthy(base, "slow_reader_is_closed_and_others_get_everything");
}

#[test]
fn half_close_and_reset_peers_are_cleaned_up() {
    let server = Server::start(&[]);
    let base = server.sample();
    let addr = server.addr;
    let mut watcher = ChatClient::join(addr, "watcher");
    let with_watcher = server.wait_threads_at_most(base.threads + 2, WAIT);

    // Half-close right after joining: we send FIN, the server ends too.
    let mut half = ChatClient::join(addr, "half");
    half.ws.stream.shutdown(Shutdown::Write).unwrap();
    let eof = half.ws.expect_eof(WAIT);
    let left = watcher.wait_for(WAIT, "leave of half", |v| {
        v["type"] == "leave" && v["user"]["id"] == half.id
    });
    println!("joined then shutdown(Write) → server closed TCP after {eof:.2?}; watcher got {left}");
    drop(half);

    // Half a frame, then a reset (unread data in our buffer makes close send RST).
    let mut reset = ChatClient::join(addr, "reset");
    watcher.say("something for reset to leave unread", "unread");
    std::thread::sleep(Duration::from_millis(100));
    let mut partial = raw_frame(0x80 | TEXT, &[b'r'; 100]);
    partial.truncate(60);
    reset.ws.send_raw(&partial).unwrap();
    let reset_id = reset.id;
    drop(reset);
    let left = watcher.wait_for(WAIT, "leave of reset", |v| {
        v["type"] == "leave" && v["user"]["id"] == reset_id
    });
    println!(
        "sent 60 of a 106-byte frame, then closed with unread data (RST) → watcher got {left}"
    );

    // Half a frame, then FIN.
    let mut fin = ChatClient::join(addr, "fin");
    fin.ws.send_raw(&partial).unwrap();
    fin.ws.stream.shutdown(Shutdown::Write).unwrap();
    let eof = fin.ws.expect_eof(WAIT);
    println!("sent 60 of a 106-byte frame, then FIN → server closed TCP after {eof:.2?}");
    drop(fin);

    // Half a request head, then FIN; then half a head and RST.
    let mut s = tcp(addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpg").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let r = s.read_to_end(&mut rest);
    println!(
        "half a request head then FIN → read {:?} bytes, {:?}",
        rest.len(),
        r.map(|_| "EOF")
    );
    let mut s = tcp(addr);
    s.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    drop(s);

    let threads = server.wait_threads_at_most(with_watcher, Duration::from_secs(10));
    println!("threads with only the watcher left: {threads} (was {with_watcher})");
    assert!(threads <= with_watcher);
    watcher.close();
    server.check_healthy(base, "half_close_and_reset_peers_are_cleaned_up");
}

#[test]
fn flood_is_rate_limited_then_closed() {
    let server = Server::start(&[]); // --rate 20 --burst 40
    let base = server.sample();
    let addr = server.addr;
    let mut bystander = ChatClient::join(addr, "bystander");
    let mut flooder = ChatClient::join(addr, "flooder");
    let flooder_id = flooder.id;
    let mut burst = Vec::new();
    for i in 0..200 {
        burst.extend(say_frame(&format!("flood {i}"), &format!("f{i}")));
    }
    let _ = flooder.ws.send_raw(&burst);
    let (mut echoed, mut limited, mut other) = (Vec::new(), 0, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(10);
    let close = loop {
        match flooder.recv(deadline.saturating_duration_since(Instant::now())) {
            Ok(v) if v["type"] == "message" => echoed.push(v["id"].as_u64().unwrap()),
            Ok(v) if v["type"] == "error" && v["code"] == "rate_limited" => {
                assert!(v["nonce"].as_str().unwrap().starts_with('f'), "{v}");
                limited += 1;
            }
            Ok(v) => other.push(v),
            Err(End::Closed(code, reason)) => break (code, reason),
            Err(e) => panic!("flooder: {e:?} before a Close"),
        }
    };
    let end = flooder.ws.wait_eof(WAIT);
    println!(
        "200 says in one write → {} of them broadcast back, {limited} rate_limited errors, \
         then Close {} {:?}; TCP closed: {end:?}; other frames {other:?}",
        echoed.len(),
        close.0,
        close.1
    );
    assert_eq!(close, (1008, "rate limit".to_string()));
    assert!(limited >= 30, "only {limited} rate_limited errors");
    assert!(end.is_ok(), "TCP not closed after the Close");
    // The bystander saw the allowed messages, then the flooder leave.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = bystander
            .recv(deadline.saturating_duration_since(Instant::now()))
            .expect("bystander");
        if v["type"] == "message" && v["from"]["id"] == flooder_id {
            seen.push(v["id"].as_u64().unwrap());
        }
        if v["type"] == "leave" && v["user"]["id"] == flooder_id {
            break;
        }
    }
    println!(
        "bystander received {} of the flood, then the flooder's leave (the flooder itself got \
         {} of them back before its Close: the rest were still in the hub)",
        seen.len(),
        echoed.len()
    );
    assert!(echoed.iter().all(|id| seen.contains(id)));
    assert!(
        (35..=60).contains(&seen.len()),
        "{} messages of the flood broadcast",
        seen.len()
    );
    assert!(seen.len() + limited <= 200);
    let rtt = bystander.round_trip("unaffected");
    println!("bystander round trip after the flood: {rtt:.2?}");
    drop(flooder);
    bystander.close();
    server.check_healthy(base, "flood_is_rate_limited_then_closed");
}

#[test]
fn thousand_connections_come_and_go() {
    let server = Server::start(&["--max-per-ip", "0"]);
    let base = server.sample();
    let addr = server.addr;
    let start = Instant::now();
    let peak = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let peak = Arc::clone(&peak);
            std::thread::spawn(move || {
                let mut kinds = [0usize; 3];
                for i in 0..250 {
                    let kind = (w + i) % 3;
                    kinds[kind] += 1;
                    match kind {
                        // The whole closing handshake.
                        0 => {
                            let mut ws = Ws::connect(addr);
                            ws.send(true, CLOSE, &close_payload(1000, b"")).unwrap();
                            let (code, _, _) = ws.expect_close(WAIT);
                            assert_eq!(code, 1000);
                            ws.expect_eof(WAIT);
                        }
                        // Handshake, then gone without a Close.
                        1 => drop(Ws::connect(addr)),
                        // Half a request head, then gone.
                        _ => {
                            let mut s = tcp(addr);
                            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: ");
                        }
                    }
                    peak.fetch_max(i, Ordering::Relaxed);
                }
                kinds
            })
        })
        .collect();
    let mut kinds = [0usize; 3];
    let mut peak_threads = 0;
    while workers.iter().any(|w| !w.is_finished()) && start.elapsed() < Duration::from_secs(60) {
        peak_threads = peak_threads.max(server.threads());
        std::thread::sleep(Duration::from_millis(20));
    }
    for w in workers {
        let k = w.join().unwrap();
        for i in 0..3 {
            kinds[i] += k[i];
        }
    }
    println!(
        "1,000 connections in {:.1?} ({} closing handshakes, {} dropped after the upgrade, {} dropped \
         mid-head); peak threads {peak_threads} (start {})",
        start.elapsed(),
        kinds[0],
        kinds[1],
        kinds[2],
        base.threads
    );
    let back = Instant::now();
    let threads = server.wait_threads_at_most(base.threads, Duration::from_secs(10));
    println!("threads back to {threads} after {:.1?}", back.elapsed());
    assert_eq!(
        threads, base.threads,
        "threads did not come back to the start"
    );
    server.check_healthy(base, "thousand_connections_come_and_go");
}
