//! Floods and churn: pings without reading the pongs and while reading
//! them, chat messages past the rate limit, and a thousand connections
//! that come and go.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

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
fn flood_is_rate_limited_then_closed() {
    // --rate 20 --burst 40; no session grace: the flooder leaves at once.
    let server = Server::start(&["--session-grace", "0"]);
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
