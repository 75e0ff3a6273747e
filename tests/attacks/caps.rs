//! The connection caps: per address, in all, and what a refused
//! connection costs.

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

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
