//! Malformed and abusive HTTP: padded and blank headers, thousands of
//! headers, a 20 MB header trickled in, every way to spoil an upgrade, and
//! the origin policy.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

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
    let head_text = read_head(&mut stream, Instant::now() + WAIT)
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
