//! Starting and stopping the binary as a newcomer does: host names in
//! `--addr`, a busy port, a Ctrl-C right after start-up, what each log
//! level shows, `--version`, and a mistyped `--trust-proxy`.

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_wschat");

/// Run the binary to its end (bounded: it is killed after 20 s).
fn run_to_end(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wschat");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Start the binary listening on `addr`, and read its first line (the
/// address line) from its stdout.
fn start_and_read_line(addr: &str, stderr: Stdio) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["--addr", addr])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn wschat");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

#[test]
fn a_host_name_is_accepted_and_resolved() {
    let (mut child, line) = start_and_read_line("localhost:0", Stdio::null());
    println!("{}", line.trim());
    let port: u16 = line
        .split("http://localhost:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no http://localhost:PORT/ in {line:?}"));
    // localhost resolves to 127.0.0.1 first: the chat works there.
    let mut alice = ChatClient::join(([127, 0, 0, 1], port).into(), "alice");
    alice.round_trip("hello from localhost");
    alice.close();
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_busy_port_says_which_address_and_what_to_do() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run_to_end(&["--addr", &addr]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{}", stderr.trim());
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("cannot listen on {addr}"))
            && stderr.contains("in use")
            && stderr.contains("--addr 127.0.0.1:0"),
        "{stderr}"
    );
    // The same through a host name names both.
    let port = taken.local_addr().unwrap().port();
    let out = run_to_end(&["--addr", &format!("localhost:{port}")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot listen on localhost:{port} (127.0.0.1:{port})"
        )),
        "{stderr}"
    );
    // A malformed address is a usage error (exit 2) with the expected form.
    let out = run_to_end(&["--addr", "localhost"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("expected HOST:PORT"), "{stderr}");
}

#[test]
fn ctrl_c_right_after_the_address_line_stops_cleanly() {
    // The handler is installed before the line is printed, so a SIGINT sent
    // the moment the line is read is handled, never the default (death by
    // signal). Several times, since the window is short.
    for round in 0..5 {
        let (mut child, line) = start_and_read_line("127.0.0.1:0", Stdio::piped());
        assert!(line.contains("http://127.0.0.1:"), "{line:?}");
        let sent = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "round {round}: still running");
            std::thread::sleep(Duration::from_millis(10));
        };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            status.code(),
            Some(0),
            "round {round}: {status:?}\n{stderr}"
        );
        assert!(stderr.contains("shutting down"), "round {round}: {stderr}");
    }
}

fn server_with_log(level: &str) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.env("RUST_LOG", level);
    Server::spawn(cmd, &[]).unwrap_or_else(|e| panic!("RUST_LOG={level}: {e}"))
}

#[test]
fn debug_shows_handshakes_and_both_sides_of_each_close() {
    let server = server_with_log("debug");
    let mut alice = ChatClient::join(server.addr, "alice");
    alice.round_trip("hi");
    alice.close();
    let want = [
        "WebSocket upgrade GET / (origin none) -> 101 Switching Protocols".to_owned(),
        // The client closed with 1000 and got 1000 back.
        r#"1000 "bye", by the peer (received 1000, sent 1000)"#.to_owned(),
    ];
    for needle in &want {
        assert!(
            server.wait_log(needle, WAIT),
            "no {needle:?} in:\n{}",
            tail(&server.log())
        );
    }
    // A plain request is logged with its status.
    let r = http(
        server.addr,
        b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(r.status, 404);
    assert!(server.wait_log("GET /nothing-here -> HTTP/1.1 404 Not Found", WAIT));
    // No double spaces in the connection's line.
    let line = server
        .log()
        .lines()
        .find(|l| l.contains("closed after"))
        .map(str::to_owned)
        .expect("a 'closed after' line");
    let message = line.split("] ").nth(1).unwrap_or(&line);
    assert!(!message.contains("  "), "{line}");
}

#[test]
fn trace_on_wschat_ws_shows_every_frame_in_and_out() {
    let server = server_with_log("info,wschat::ws=trace");
    let mut alice = ChatClient::join(server.addr, "alice");
    alice.round_trip("watch me");
    alice.close();
    for needle in [
        // The client's masked text frame, and the server's broadcast of it.
        r#" in  FIN=1 RSV=000 opcode=0x1 Text MASK=1 len="#,
        r#"watch me"#,
        r#" out FIN=1 RSV=000 opcode=0x1 Text MASK=0 len="#,
        // The closing handshake, both ways.
        r#" in  FIN=1 RSV=000 opcode=0x8 Close MASK=1 len=5 code 1000 "bye""#,
        " out FIN=1 RSV=000 opcode=0x8 Close MASK=0 len=2 code 1000",
    ] {
        assert!(
            server.wait_log(needle, WAIT),
            "no {needle:?} in:\n{}",
            tail(&server.log())
        );
    }
    let frames = server.log().lines().filter(|l| l.contains("FIN=")).count();
    println!("{frames} frame lines");
}

#[test]
fn version_prints_the_crate_version() {
    let out = run_to_end(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("wschat {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_bad_trust_proxy_range_is_refused_with_what_was_expected() {
    for (bad, says) in [
        ("localhost", "is not an IP address"),
        ("10.0.0.1/8", "the range it names is 10.0.0.0/8"),
        ("10.0.0.0/33", "bad prefix length"),
    ] {
        let out = run_to_end(&["--addr", "127.0.0.1:0", "--trust-proxy", bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!(
            "--trust-proxy {bad}: {}",
            stderr.lines().next().unwrap_or("")
        );
        assert!(!out.status.success(), "{bad}: started");
        assert!(stderr.contains("--trust-proxy"), "{bad}: {stderr}");
        assert!(stderr.contains(says), "{bad}: {stderr}");
    }
}
