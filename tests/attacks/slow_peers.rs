//! Slow peers: 500 slowloris connections against the head timeout, and a
//! chat client that stops reading while others must get everything.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

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
fn slow_reader_is_closed_and_others_get_everything() {
    // No session grace: the slow client leaves the moment it is closed.
    let server = Server::start(&[
        "--queue",
        "64",
        "--rate",
        "0",
        "--write-timeout",
        "60",
        "--session-grace",
        "0",
    ]);
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
