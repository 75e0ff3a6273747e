//! The chat server end to end: the real `wschat` binary on a free loopback
//! port, driven by independent `tungstenite` clients and raw sockets.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

const TIMEOUT: Duration = Duration::from_secs(10);

mod support;
use support::Server;

fn url(server: &Server) -> String {
    format!("ws://{}/ws", server.addr)
}

/// SIGTERM, then the exit status (bounded wait).
fn terminate(server: &mut Server) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &server.pid.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = server.exited() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

type Ws = WebSocket<TcpStream>;

fn connect(url: &str) -> Ws {
    let addr = url.trim_start_matches("ws://").split('/').next().unwrap();
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    tungstenite::client(url, stream).expect("handshake").0
}

/// Connect and say hello; returns the socket and the welcome.
fn join(server: &Server, name: &str, resume: Option<u64>) -> (Ws, Value) {
    let mut ws = connect(&url(server));
    let mut hello = json!({"type": "hello", "name": name});
    if let Some(id) = resume {
        hello["resume"] = json!(id);
    }
    send(&mut ws, &hello);
    let welcome = next_of(&mut ws, "welcome");
    (ws, welcome)
}

fn send(ws: &mut Ws, value: &Value) {
    ws.send(Message::text(value.to_string())).unwrap();
}

fn say(ws: &mut Ws, text: &str, nonce: &str) {
    send(ws, &json!({"type": "say", "text": text, "nonce": nonce}));
}

/// The next JSON message of any type.
fn next(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("read") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// The next message of type `kind`, skipping others (presence, etc.).
fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let v = next(ws);
        if v["type"] == kind {
            return v;
        }
    }
}

fn ids(messages: &[Value]) -> Vec<u64> {
    messages.iter().map(|m| m["id"].as_u64().unwrap()).collect()
}

fn close_frame(ws: &mut Ws) -> Option<CloseFrame> {
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => return frame,
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    }
}

#[test]
fn welcome_presence_join_rename_leave() {
    // No grace: a closed connection's user leaves at once.
    let server = Server::start(&["--session-grace", "0"]);
    let (mut alice, welcome) = join(&server, "alice", None);
    assert_eq!(welcome["you"]["name"], "alice");
    assert_eq!(welcome["users"].as_array().unwrap().len(), 1);
    assert_eq!(welcome["limits"]["max_text"], 4000);

    let (mut bob, welcome) = join(&server, "  bob ", None);
    let names: Vec<&str> = welcome["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let bob_id = welcome["you"]["id"].as_u64().unwrap();
    let joined = next_of(&mut alice, "join");
    assert_eq!(joined["user"], json!({"id": bob_id, "name": "bob"}));

    send(&mut bob, &json!({"type": "rename", "name": "robert"}));
    for ws in [&mut alice, &mut bob] {
        let renamed = next_of(ws, "rename");
        assert_eq!(renamed["user"]["name"], "robert");
        assert_eq!(renamed["old"], "bob");
    }

    bob.close(None).unwrap();
    let left = next_of(&mut alice, "leave");
    assert_eq!(left["user"], json!({"id": bob_id, "name": "robert"}));
}

#[test]
fn a_client_without_hello_joins_as_a_guest() {
    let server = Server::start(&[]);
    let mut ws = connect(&url(&server));
    let welcome = next_of(&mut ws, "welcome");
    let id = welcome["you"]["id"].as_u64().unwrap();
    assert_eq!(welcome["you"]["name"], format!("guest-{id}"));
}

#[test]
fn every_client_sees_every_message_in_the_same_order() {
    let server = Server::start(&["--rate", "0"]);
    let mut clients: Vec<Ws> = (0..3)
        .map(|i| join(&server, &format!("u{i}"), None).0)
        .collect();
    const EACH: usize = 50;
    for round in 0..EACH {
        for (i, ws) in clients.iter_mut().enumerate() {
            say(ws, &format!("{i}:{round}"), &format!("n{i}-{round}"));
        }
    }
    let mut seen = Vec::new();
    for ws in clients.iter_mut() {
        let messages: Vec<Value> = (0..3 * EACH).map(|_| next_of(ws, "message")).collect();
        seen.push(messages);
    }
    let first = ids(&seen[0]);
    assert!(
        first.windows(2).all(|w| w[1] == w[0] + 1),
        "ids increase by one: {first:?}"
    );
    for other in &seen[1..] {
        assert_eq!(ids(other), first);
        assert_eq!(
            other.iter().map(|m| m["text"].clone()).collect::<Vec<_>>(),
            seen[0]
                .iter()
                .map(|m| m["text"].clone())
                .collect::<Vec<_>>()
        );
    }
    // Each sender's own messages keep their order and carry their nonce.
    for i in 0..3 {
        let own: Vec<&Value> = seen[0]
            .iter()
            .filter(|m| m["text"].as_str().unwrap().starts_with(&format!("{i}:")))
            .collect();
        assert_eq!(own.len(), EACH);
        for (round, m) in own.iter().enumerate() {
            assert_eq!(m["nonce"], format!("n{i}-{round}"));
        }
    }
}

#[test]
fn history_on_join_and_resume_without_gap_or_duplicate() {
    let server = Server::start(&["--history", "50", "--rate", "0"]);
    let (mut alice, _) = join(&server, "alice", None);
    for i in 0..5 {
        say(&mut alice, &format!("early {i}"), &format!("e{i}"));
    }
    let early: Vec<Value> = (0..5).map(|_| next_of(&mut alice, "message")).collect();

    let (mut bob, welcome) = join(&server, "bob", None);
    let history = welcome["history"].as_array().unwrap();
    assert_eq!(ids(history), ids(&early));
    assert_eq!(history[0]["text"], "early 0");

    // Bob drops; Alice keeps talking; Bob comes back with the last id he saw.
    let last_seen = ids(&early)[4];
    bob.close(None).unwrap();
    drop(bob);
    for i in 0..7 {
        say(&mut alice, &format!("while away {i}"), &format!("w{i}"));
    }
    let missed: Vec<Value> = (0..7).map(|_| next_of(&mut alice, "message")).collect();
    let (mut bob, welcome) = join(&server, "bob", Some(last_seen));
    assert_eq!(ids(welcome["history"].as_array().unwrap()), ids(&missed));
    say(&mut alice, "after", "a");
    let after = next_of(&mut bob, "message");
    assert_eq!(after["id"].as_u64().unwrap(), ids(&missed)[6] + 1);
}

#[test]
fn plain_text_clients_and_bad_requests() {
    let server = Server::start(&[]);
    let (mut alice, _) = join(&server, "alice", None);
    alice.send(Message::text("  just text  ")).unwrap();
    let m = next_of(&mut alice, "message");
    assert_eq!(m["text"], "just text");
    assert!(m.get("nonce").is_none());
    // Text that only looks like JSON is a message too.
    for text in ["{curly} braces at the start", r#"{"type":"say","text":"#] {
        alice.send(Message::text(text)).unwrap();
        assert_eq!(next_of(&mut alice, "message")["text"], text);
    }

    for (bad, code) in [
        (r#"{"type":"shout"}"#, "unknown_type"),
        (r#"{"type":"say","text":"   ","nonce":"x1"}"#, "empty_text"),
        (r#"{"type":"rename","name":""}"#, "bad_name"),
    ] {
        alice.send(Message::text(bad)).unwrap();
        let error = next_of(&mut alice, "error");
        assert_eq!(error["code"], code, "{bad}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    let long = "x".repeat(4001);
    say(&mut alice, &long, "long");
    let error = next_of(&mut alice, "error");
    assert_eq!(
        (error["code"].as_str(), error["nonce"].as_str()),
        (Some("text_too_long"), Some("long"))
    );
    // The connection lives on.
    say(&mut alice, "still here", "s");
    assert_eq!(next_of(&mut alice, "message")["text"], "still here");
}

#[test]
fn a_client_that_stops_reading_is_closed_with_1008_and_others_get_everything() {
    let server = Server::start(&["--queue", "32", "--rate", "0", "--max-text", "20000"]);
    let (mut sender, _) = join(&server, "sender", None);
    let (mut watcher, _) = join(&server, "watcher", None);
    let (slow, _) = join(&server, "slow", None);
    // The slow client never reads. Big messages fill its queue and socket buffers quickly.
    let text = "y".repeat(16_000);
    const COUNT: usize = 400;
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        while got.len() < COUNT {
            let m = next(&mut watcher);
            if m["type"] == "message" {
                got.push(m["id"].as_u64().unwrap());
            }
        }
        got
    });
    for i in 0..COUNT {
        say(&mut sender, &text, &format!("{i}"));
        // Drain our own copies so that we are not the slow one.
        next_of(&mut sender, "message");
    }
    let got = reader.join().unwrap();
    assert_eq!(got.len(), COUNT);
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1));
    // Now the slow client reads: everything that was buffered, then 1008.
    let mut slow = slow;
    let frame = close_frame(&mut slow).expect("a close frame");
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(frame.reason.as_str(), "too slow");
}

/// A raw HTTP exchange: the status line, the headers and the body.
fn http(port: u16, request: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, response[split..].to_vec())
}

fn get(port: u16, path: &str) -> (u16, String, Vec<u8>) {
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wschat-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn static_files_and_traversal() {
    let base = temp_dir("www");
    let www = base.join("www");
    std::fs::create_dir_all(www.join("sub")).unwrap();
    std::fs::write(www.join("index.html"), "<!doctype html><title>hi</title>").unwrap();
    std::fs::write(www.join("sub/app.css"), "body{}").unwrap();
    std::fs::write(base.join("secret.txt"), "do not serve").unwrap();
    std::os::unix::fs::symlink(base.join("secret.txt"), www.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("/etc", www.join("etc")).unwrap();
    let server = Server::start(&["--www", www.to_str().unwrap()]);
    let port = server.addr.port();

    let (status, head, body) = get(port, "/");
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains(&format!("Content-Length: {}", body.len())));
    assert_eq!(body, b"<!doctype html><title>hi</title>");
    let (status, head, _) = get(port, "/sub/app.css");
    assert_eq!(status, 200);
    assert!(head.contains("text/css"));
    let (status, head, body) = http(port, "HEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    assert!(head.contains("Content-Length: 32"));
    assert!(body.is_empty());
    assert_eq!(get(port, "/healthz").2, b"ok\n");
    assert_eq!(get(port, "/nope.html").0, 404);
    assert_eq!(
        http(
            port,
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        )
        .0,
        405
    );
    assert_eq!(
        http(port, "DELETE /index.html HTTP/1.1\r\nHost: x\r\n\r\n").0,
        405
    );

    for path in [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/sub%2f..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "/sub\\..\\..\\secret.txt",
        "/index.html%00.css",
        "/link.txt",
        "/etc/passwd",
        "//etc/passwd",
        "/.hidden",
    ] {
        let (status, _, body) = get(port, path);
        assert!(status == 400 || status == 404, "{path}: {status}");
        assert!(
            !String::from_utf8_lossy(&body).contains("do not serve"),
            "{path}"
        );
        assert!(!String::from_utf8_lossy(&body).contains("root:"), "{path}");
    }
    // An absolute URI in the request line is not a file path.
    let (status, _, body) = http(port, "GET /etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 404);
    assert!(!String::from_utf8_lossy(&body).contains("root:"));
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn upgrade_on_root_and_ws_only() {
    let server = Server::start(&[]);
    for path in ["/", "/ws", "/ws?x=1"] {
        let mut ws = connect(&format!("ws://127.0.0.1:{}{path}", server.addr.port()));
        next_of(&mut ws, "welcome");
    }
    let addr = format!("127.0.0.1:{}", server.addr.port());
    let stream = TcpStream::connect(&addr).unwrap();
    let err = tungstenite::client(format!("ws://{addr}/elsewhere"), stream).unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
}

#[test]
fn over_the_connection_cap_gets_503() {
    let server = Server::start(&["--max-connections", "3"]);
    let held: Vec<Ws> = (0..3).map(|_| connect(&url(&server))).collect();
    let (status, _, body) = get(server.addr.port(), "/healthz");
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("too many connections"));
    drop(held);
    // Slots come back once those connections are gone.
    let deadline = Instant::now() + TIMEOUT;
    while get(server.addr.port(), "/healthz").0 != 200 {
        assert!(Instant::now() < deadline, "slots were not released");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn history_file_survives_kill_9_and_restart() {
    let dir = temp_dir("history");
    let file = dir.join("history.jsonl");
    let file_arg = file.to_str().unwrap();
    let mut server = Server::start(&["--history-file", file_arg, "--rate", "0"]);
    let (mut alice, _) = join(&server, "alice", None);
    let (mut bob, _) = join(&server, "bob", None);
    let mut received = Vec::new();
    for i in 0..20 {
        say(&mut alice, &format!("m{i}"), &format!("{i}"));
        received.push(next_of(&mut bob, "message"));
    }
    server.kill9();
    assert_lines_are_messages(&file, &ids(&received));

    let server = Server::start(&["--history-file", file_arg]);
    let (mut carol, welcome) = join(&server, "carol", None);
    assert_eq!(ids(welcome["history"].as_array().unwrap()), ids(&received));
    say(&mut carol, "after restart", "r");
    let next_msg = next_of(&mut carol, "message");
    assert_eq!(next_msg["id"].as_u64().unwrap(), ids(&received)[19] + 1);
    let _ = std::fs::remove_dir_all(&dir);
}

fn assert_lines_are_messages(file: &Path, expected: &[u64]) {
    let text = std::fs::read_to_string(file).unwrap();
    let got: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn sigterm_closes_every_client_with_1001_and_exits_0() {
    let dir = temp_dir("sigterm");
    let file = dir.join("h.jsonl");
    let mut server = Server::start(&["--history-file", file.to_str().unwrap()]);
    let (mut alice, _) = join(&server, "alice", None);
    let (mut bob, _) = join(&server, "bob", None);
    say(&mut alice, "last words", "l");
    next_of(&mut bob, "message");
    let closer = std::thread::spawn(move || {
        let frames: Vec<Option<CloseFrame>> = [&mut alice, &mut bob]
            .into_iter()
            .map(close_frame)
            .collect();
        frames
    });
    std::thread::sleep(Duration::from_millis(100));
    let status = terminate(&mut server);
    assert!(status.success(), "{status:?}");
    for frame in closer.join().unwrap() {
        assert_eq!(u16::from(frame.expect("close frame").code), 1001);
    }
    assert_lines_are_messages(&file, &[1]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_thousand_connections_come_and_go_without_leaking_threads() {
    let server = Server::start(&["--max-per-ip", "0"]);
    // Warm up: the first connection starts nothing that stays, but let the
    // process settle before counting.
    drop(join(&server, "warmup", None));
    std::thread::sleep(Duration::from_millis(300));
    let before = server.threads();
    for batch in 0..20 {
        let mut open: Vec<Ws> = (0..50).map(|_| connect(&url(&server))).collect();
        for ws in open.iter_mut() {
            ws.close(None).unwrap();
        }
        for ws in open.iter_mut() {
            while ws.read().is_ok() {}
        }
        let _ = batch;
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let now = server.threads();
        if now <= before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "threads: {before} before, {now} after 1,000 connections"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (mut ws, _) = join(&server, "after", None);
    say(&mut ws, "still fine", "f");
    assert_eq!(next_of(&mut ws, "message")["text"], "still fine");
}

/// A connection's writer thread starts only once something waits for it
/// (`src/ws/conn.rs`): clients that keep up cost the server one thread each,
/// their reader.
#[test]
fn clients_that_keep_up_cost_one_thread_each() {
    const N: usize = 40;
    let server = Server::start(&["--max-per-ip", "0", "--rate", "0"]);
    let before = server.threads();
    let mut clients: Vec<Ws> = (0..N)
        .map(|i| join(&server, &format!("c{i}"), None).0)
        .collect();
    for (i, ws) in clients.iter_mut().enumerate() {
        say(ws, &format!("hello from {i}"), "n");
    }
    for ws in clients.iter_mut() {
        let texts: Vec<Value> = (0..N)
            .map(|_| next_of(ws, "message")["text"].clone())
            .collect();
        assert_eq!(texts.len(), N);
    }
    let during = server.threads();
    println!("{N} chatting clients: server threads {before} → {during}");
    assert_eq!(during, before + N, "one thread per client that keeps up");
}
