//! permessage-deflate (RFC 7692) against an independent implementation:
//! Python's `websockets` (Debian's `python3-websockets`, run by Debian's
//! `/usr/bin/python3`), whose DEFLATE is Python's zlib, driven by
//! `deflate_peer.py` beside this file. Nothing of wschat's is on the other
//! side of the wire, so a mistake made the same way on both sides (in the
//! parameters, RSV1, the sync flush's tail) cannot hide.
//!
//! Our echo server (as `wschat echo` runs it: 16 MiB messages, deflate on,
//! threshold 256) with a `websockets` client:
//! - the 101 names `permessage-deflate; server_no_context_takeover;
//!   client_no_context_takeover` (§7.1.1.1, §7.1.1.2: a server may add
//!   both), and `websockets` agrees them (§5.1);
//! - text, binary and fragmented compressed messages (RSV1 on the first
//!   frame only, §6.1), messages in a row and pipelined, round-trip; the
//!   echo of a compressible message comes back compressed, as the frames
//!   `websockets` received show (RSV1, bytes on the wire), one below the
//!   threshold and an incompressible one come back plain (§6: a sender
//!   may leave any message uncompressed);
//! - 16 MiB compressed messages, text and binary, round-trip intact, and 16
//!   MiB + 1 inflated is closed with 1009 (the limit is on the inflated
//!   size, §7.2.2);
//! - `server_max_window_bits` 9, 12 and 15 are echoed (§7.1.2.1) and
//!   honoured: the longest back-reference in each compressed echo, measured
//!   by the script's own DEFLATE decoder, is within the window; 8 is
//!   declined, and of two offers the first acceptable one wins (§5.1).
//!
//! Our client (`ws::client::connect_offering`) with a `websockets` echo
//! server, many messages of several KiB in a row, each check from what the
//! server saw of every frame:
//! - with context takeover on the server's side (`websockets`' default,
//!   §7.1.1.1): the server's later messages refer back into earlier ones,
//!   so they are a fraction of the first's size, and our client, which
//!   keeps its decompressor for the connection, inflates them right;
//! - with `server_no_context_takeover`: each is compressed on its own;
//! - with `client_max_window_bits=10` (§7.1.2.2): our client's messages
//!   refer back no further than 1,024 bytes.
//!
//! Without `websockets` these tests fail, saying how to install it
//! (`scripts/test` installs it). Every wait is bounded and the Python
//! process is killed by its PID when a test ends, also on failure.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

use wschat::ws::client::connect_offering;
use wschat::ws::{CloseCode, Message, Role};

use crate::support::{InProcessServer, large_config};
use crate::{IO_TIMEOUT, next};

/// Debian's Python, for which `python3-websockets` is installed (a Python
/// earlier on `PATH` may not have it).
const PYTHON: &str = "/usr/bin/python3";
/// Our side's threshold, as the binary's default.
const THRESHOLD: usize = wschat::ws::deflate::DEFAULT_THRESHOLD;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/deflate_peer.py")
}

fn python() -> Command {
    let mut cmd = Command::new(PYTHON);
    cmd.env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    cmd
}

/// Fails the test, saying how to install it, when `websockets` is missing.
fn require_websockets() {
    let out = python()
        .args(["-c", "import websockets; print(websockets.__version__)"])
        .output();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{PYTHON} cannot import websockets, the independent permessage-deflate peer \
             of these tests: install it with `apt-get install -y python3-websockets` \
             (scripts/test does so when run as root)\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "cannot run {PYTHON} ({e}): install python3 and python3-websockets \
             (`apt-get install -y python3-websockets`)"
        ),
    }
}

/// A running `deflate_peer.py`: its stdout line by line, its stderr kept;
/// killed by its PID when dropped.
struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    seen: Vec<String>,
}

impl Peer {
    fn start(args: &[&str]) -> Peer {
        require_websockets();
        let mut child = python()
            .arg(script())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {PYTHON}: {e}"));
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut pipe = child.stderr.take().expect("stderr piped");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Peer {
            child,
            lines,
            stderr,
            seen: Vec::new(),
        }
    }

    /// The next line of stdout before `deadline`; `None` once it is closed.
    fn line(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                println!("python: {line}");
                self.seen.push(line.clone());
                Some(line)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "{}: no output within its time; so far:\n{}",
                self.describe(),
                self.seen.join("\n")
            ),
        }
    }

    /// Every line until stdout closes, then the exit status: success.
    fn finish(mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        while self.line(deadline).is_some() {}
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: did not exit after closing stdout",
                self.describe()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "{} exited with {status}:\n{}",
            self.describe(),
            self.seen.join("\n")
        );
        std::mem::take(&mut self.seen)
    }

    fn describe(&self) -> String {
        format!(
            "deflate_peer.py (pid {}; stderr: {})",
            self.child.id(),
            String::from_utf8_lossy(&self.stderr.lock().unwrap()).trim()
        )
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Child::kill is SIGKILL to this child's PID only.
        let _ = self.child.kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

// ------------------------------------------------------------ our server

/// Run one group of the script's client checks against our echo server
/// (`wschat echo`'s limits, deflate on with the default threshold): it
/// must exit 0, having printed `expected` PASS lines and no FAIL.
fn python_client(check: &str, expected: usize, timeout: Duration) {
    let server = InProcessServer::start(
        wschat::echo::ws_config(),
        Arc::new(wschat::echo::Echo::new(Some(THRESHOLD))),
    );
    let url = format!("ws://{}/", server.addr);
    let lines = Peer::start(&["client", &url, check]).finish(timeout);
    let passes = lines.iter().filter(|l| l.starts_with("PASS ")).count();
    assert!(!lines.iter().any(|l| l.starts_with("FAIL")), "{lines:#?}");
    assert_eq!(passes, expected, "PASS lines: {lines:#?}");
    server.wait_idle();
}

#[test]
fn a_websockets_client_negotiates_and_exchanges_compressed_messages() {
    python_client("messages", 9, Duration::from_secs(120));
}

#[test]
fn a_websockets_client_round_trips_16_mib_compressed_and_is_stopped_past_it() {
    python_client("big", 3, Duration::from_secs(240));
}

#[test]
fn a_websockets_client_gets_the_server_window_it_asked_for() {
    python_client("windows", 5, Duration::from_secs(120));
}

// ------------------------------------------------------------ our client

/// A little xorshift, so that the messages are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `n` letters of a 16-letter alphabet: 4 bits each, so compressible
    /// by Huffman coding alone, with no repeats worth a back-reference.
    fn letters(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'a' + (self.next() % 16) as u8))
            .collect()
    }
}

/// What the Python echo server saw of our client's connection.
struct Seen {
    offer: Value,
    response: Value,
    /// (RSV1, compressed bytes, longest back-reference) of each message in.
    received: Vec<(bool, u64, Option<u64>)>,
    /// (RSV1, bytes on the wire) of each message out.
    sent: Vec<(bool, u64)>,
    close_code: Value,
}

/// Start the script's echo server with `args`, connect our client offering
/// deflate, exchange `messages` (each must come back as it was), close
/// with 1000, and report what the server saw.
fn with_python_server(args: &[&str], messages: &[Message]) -> Seen {
    let mut all = vec!["server"];
    all.extend_from_slice(args);
    let mut peer = Peer::start(&all);
    let deadline = Instant::now() + Duration::from_secs(20);
    let port: u16 = loop {
        let line = peer
            .line(deadline)
            .unwrap_or_else(|| panic!("{} ended before its port line", peer.describe()));
        if let Some(port) = line.strip_prefix("PORT ") {
            break port.parse().expect("a port number");
        }
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (mut reader, sender) = connect_offering(
        &format!("ws://{addr}/"),
        large_config(Role::Client),
        IO_TIMEOUT,
        Some(THRESHOLD),
    )
    .unwrap_or_else(|e| panic!("our client with the websockets server: {e}"));
    for (i, message) in messages.iter().enumerate() {
        sender.send_message(message).unwrap();
        let echo = next(&mut reader).unwrap_or_else(|c| panic!("message {i}: closed {c:?}"));
        assert!(echo == *message, "message {i} came back altered");
    }
    sender.close(CloseCode::NORMAL, "done", true);
    let closed = next(&mut reader).unwrap_err();
    assert_eq!(closed.code, CloseCode::NORMAL, "{closed:?}");
    let lines = peer.finish(Duration::from_secs(60));
    let events: Vec<Value> = lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let of = |kind: &'static str| events.iter().filter(move |e| e["event"] == kind);
    let open = of("open").next().expect("an open event");
    Seen {
        offer: open["offer"].clone(),
        response: open["response"].clone(),
        received: of("in")
            .map(|e| {
                (
                    e["rsv1"] == true,
                    e["wire"].as_u64().unwrap(),
                    e["longest"].as_u64(),
                )
            })
            .collect(),
        sent: of("out")
            .map(|e| (e["rsv1"] == true, e["wire"].as_u64().unwrap()))
            .collect(),
        close_code: of("closed").next().expect("a closed event")["code"].clone(),
    }
}

/// Several KiB each, much alike from one to the next (what context
/// takeover gains on), not much alike within one; every fifth binary.
fn alike_messages(n: usize) -> Vec<Message> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let doc = rng.letters(6000);
    (0..n)
        .map(|i| {
            let text = format!("message {i:03}: {doc} {}", rng.letters(40));
            if i % 5 == 4 {
                Message::Binary(text.into_bytes())
            } else {
                Message::Text(text)
            }
        })
        .collect()
}

fn len(message: &Message) -> u64 {
    match message {
        Message::Text(t) => t.len() as u64,
        Message::Binary(b) => b.len() as u64,
    }
}

/// Our client's side of every message was compressed on its own: smaller
/// than the message, RSV1 set.
fn assert_sent_compressed(seen: &Seen, messages: &[Message]) {
    assert_eq!(seen.received.len(), messages.len());
    for (i, ((rsv1, wire, _), m)) in seen.received.iter().zip(messages).enumerate() {
        assert!(
            *rsv1 && *wire < len(m),
            "our message {i}: RSV1 {rsv1}, {wire} bytes for {}",
            len(m)
        );
    }
}

#[test]
fn our_client_inflates_a_server_that_keeps_its_context() {
    let messages = alike_messages(60);
    let seen = with_python_server(&[], &messages);
    assert_eq!(seen.offer, "permessage-deflate; client_max_window_bits");
    let response = seen.response.as_str().unwrap_or("");
    assert!(
        response.starts_with("permessage-deflate") && !response.contains("no_context_takeover"),
        "response {response:?}"
    );
    assert_sent_compressed(&seen, &messages);
    // The server's later messages refer back into earlier ones: a fraction
    // of the first's size. Each came back intact, so our client kept its
    // decompressor (and its window) from one message to the next.
    let sizes: Vec<u64> = seen.sent.iter().map(|(_, w)| *w).collect();
    assert!(seen.sent.iter().all(|(rsv1, _)| *rsv1), "{:?}", seen.sent);
    assert_eq!(sizes.len(), messages.len());
    let later_max = sizes[1..].iter().max().unwrap();
    println!(
        "{} messages of {} bytes: the server sent the first as {} bytes, the later ones as at most {later_max}",
        messages.len(),
        len(&messages[0]),
        sizes[0]
    );
    assert!(
        later_max * 4 < sizes[0],
        "context takeover not in use: {sizes:?}"
    );
    assert_eq!(seen.close_code, 1000);
}

#[test]
fn our_client_with_server_no_context_takeover() {
    let messages = alike_messages(60);
    let seen = with_python_server(&["--server-no-context-takeover"], &messages);
    assert_eq!(seen.offer, "permessage-deflate; client_max_window_bits");
    let response = seen.response.as_str().unwrap_or("");
    assert!(
        response.starts_with("permessage-deflate")
            && response.contains("server_no_context_takeover"),
        "response {response:?}"
    );
    assert_sent_compressed(&seen, &messages);
    // Each compressed on its own: every one about as large as the first.
    let sizes: Vec<u64> = seen.sent.iter().map(|(_, w)| *w).collect();
    assert!(seen.sent.iter().all(|(rsv1, _)| *rsv1), "{:?}", seen.sent);
    let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
    println!(
        "{} messages of {} bytes, each compressed on its own: {min}-{max} bytes",
        messages.len(),
        len(&messages[0])
    );
    assert!(min * 10 > max * 9, "{sizes:?}");
    assert_eq!(seen.close_code, 1000);
}

#[test]
fn our_client_honours_client_max_window_bits() {
    // Repeats 3,000 bytes apart: a 15-bit window would refer back to them.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let messages: Vec<Message> = (0..12)
        .map(|i| Message::Text(format!("{i:02} {}", rng.letters(3000).repeat(3))))
        .collect();
    let seen = with_python_server(&["--client-max-window-bits", "10"], &messages);
    let response = seen.response.as_str().unwrap_or("");
    assert!(
        response.contains("client_max_window_bits=10"),
        "response {response:?}"
    );
    assert_sent_compressed(&seen, &messages);
    let longest: Vec<u64> = seen
        .received
        .iter()
        .map(|(_, _, l)| l.expect("measured"))
        .collect();
    println!("longest back-reference in each of our messages: {longest:?}");
    assert!(longest.iter().all(|&l| l <= 1024), "{longest:?}");
    assert_eq!(seen.close_code, 1000);
}
