//! Odd peers: a violation or Close followed at once by a FIN, a partial
//! header left hanging, half-closes and resets mid-frame and mid-head.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use crate::support::*;
use crate::violations::violation;

#[test]
fn close_frame_survives_the_peer_fin() {
    let server = Server::start(&["--max-per-ip", "0"]);
    let base = server.sample();
    let cases: [(&str, Vec<u8>, u16); 2] = [
        ("a frame with RSV1 set", violation("RSV1 set").bytes, 1002),
        (
            "a Close 1000",
            frame(true, CLOSE, &close_payload(1000, b"")),
            1000,
        ),
    ];
    for (what, bytes, want) in cases {
        let mut missing = 0;
        for _ in 0..100 {
            let mut request = upgrade_request(server.addr);
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
fn partial_header_during_hello_wait_is_still_pinged() {
    let server = Server::start(&["--ping-interval", "1", "--pong-timeout", "1"]);
    let base = server.sample();
    let mut request = upgrade_request(server.addr);
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

#[test]
fn half_close_and_reset_peers_are_cleaned_up() {
    // No session grace: a user leaves with its last connection.
    let server = Server::start(&["--session-grace", "0"]);
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
