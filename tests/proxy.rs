//! Behind a reverse proxy (`--trust-proxy`): the real `wschat` binary on a
//! loopback port, and raw sockets that play the proxy, sending the
//! forwarding headers a proxy sends. Only a trusted peer's headers count:
//! its clients get their own per-IP allowance, their own lines in the log,
//! and the page's public origin; anyone else's headers change nothing.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;
use support::{Response, Server, WAIT, Ws, head, tail, timed, upgrade_lines};

/// An upgrade request to `addr` with `extra` header lines.
fn request(addr: SocketAddr, extra: &[&str]) -> Vec<u8> {
    let mut lines = upgrade_lines(addr);
    lines.extend(extra.iter().map(|l| l.to_string()));
    head(&lines)
}

/// Upgrade from 127.0.0.1 with `extra` header lines.
fn upgrade(addr: SocketAddr, extra: &[&str]) -> Result<Ws, Response> {
    Ws::handshake(addr, &request(addr, extra))
}

/// Upgrade from the loopback address `from` (127.0.0.x) with `extra`.
fn upgrade_from(from: &str, addr: SocketAddr, extra: &[&str]) -> Result<Ws, Response> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    socket.connect_timeout(&addr.into(), WAIT).unwrap();
    let mut stream = timed(TcpStream::from(socket), WAIT);
    stream.write_all(&request(addr, extra)).unwrap();
    Ws::after_request(stream)
}

fn must_upgrade(result: Result<Ws, Response>, what: &str) -> Ws {
    result.unwrap_or_else(|r| panic!("{what}: refused: {}", r.summary()))
}

fn must_refuse(result: Result<Ws, Response>, what: &str) -> Response {
    match result {
        Ok(_) => panic!("{what}: upgraded, but should have been refused"),
        Err(r) => r,
    }
}

/// Say hello as `name` and wait for the welcome.
fn join(ws: &mut Ws, name: &str) -> Value {
    ws.send_text(&json!({"type": "hello", "name": name}).to_string())
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match ws.recv_json(deadline.saturating_duration_since(Instant::now())) {
            Ok(v) if v["type"] == "welcome" => return v,
            Ok(_) => {}
            Err(e) => panic!("{name}: no welcome: {e:?}"),
        }
    }
}

/// Retry an upgrade (bounded) while it is refused with 503: a closed
/// connection's slot is released when its thread ends, a moment later.
fn upgrade_once_freed(what: &str, attempt: impl Fn() -> Result<Ws, Response>) -> Ws {
    let deadline = Instant::now() + WAIT;
    loop {
        match attempt() {
            Ok(ws) => return ws,
            Err(r) if r.status == 503 && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(r) => panic!("{what}: {}", r.summary()),
        }
    }
}

fn wait_log(server: &Server, needle: &str) {
    assert!(
        server.wait_log(needle, WAIT),
        "the log has no {needle:?}:\n{}",
        tail(&server.log())
    );
}

#[test]
fn each_forwarded_client_has_its_own_per_ip_allowance() {
    let server = Server::start(&["--trust-proxy", "127.0.0.1", "--max-per-ip", "1"]);
    let addr = server.addr;
    let mut first = must_upgrade(upgrade(addr, &["X-Forwarded-For: 10.0.0.1"]), "10.0.0.1");
    let second = must_upgrade(upgrade(addr, &["X-Forwarded-For: 10.0.0.2"]), "10.0.0.2");
    println!("through the trusted proxy 127.0.0.1: 10.0.0.1 → 101, 10.0.0.2 → 101");
    let r = must_refuse(
        upgrade(addr, &["X-Forwarded-For: 10.0.0.1"]),
        "a second 10.0.0.1",
    );
    println!("a second 10.0.0.1 → {}", r.summary());
    assert_eq!(r.status, 503);
    assert!(r.body.contains("from your address"), "{}", r.body);
    // The refusal names the client and the proxy it came through.
    wait_log(&server, "10.0.0.1 via 127.0.0.1:");
    wait_log(
        &server,
        "refused GET / (origin none): 503 Service Unavailable",
    );
    // So do the chat's lines about the connection.
    join(&mut first, "alice");
    first.close();
    wait_log(&server, "closed after");
    let log = server.log();
    let closed = log
        .lines()
        .find(|l| l.contains("closed after"))
        .unwrap_or_else(|| panic!("no closed line:\n{}", tail(&log)));
    println!("log: {closed}");
    assert!(closed.contains("10.0.0.1 via 127.0.0.1:"), "{closed}");
    // Its slot is released under the client's address: 10.0.0.1 is let in again.
    let again = upgrade_once_freed("10.0.0.1 again", || {
        upgrade(addr, &["X-Forwarded-For: 10.0.0.1"])
    });
    println!("after 10.0.0.1 closed, 10.0.0.1 again → 101");
    // A plain page request counts too, under its client's address.
    let r = support::http(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.2\r\n\r\n",
    );
    assert_eq!(r.status, 503, "{}", r.summary());
    let r = support::http(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.3\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.summary());
    again.close();
    second.close();
}

#[test]
fn without_trust_a_forged_x_forwarded_for_is_ignored() {
    let server = Server::start(&["--max-per-ip", "1"]);
    let addr = server.addr;
    let mut first = must_upgrade(upgrade(addr, &["X-Forwarded-For: 10.0.0.1"]), "first");
    let r = must_refuse(
        upgrade(addr, &["X-Forwarded-For: 10.0.0.2"]),
        "a forged 10.0.0.2",
    );
    println!(
        "no --trust-proxy: 10.0.0.1 → 101; a forged 10.0.0.2 → {}",
        r.summary()
    );
    assert_eq!(r.status, 503, "both count as 127.0.0.1");
    join(&mut first, "mallory");
    first.close();
    wait_log(&server, "closed after");
    let log = server.log();
    assert!(
        !log.contains("10.0.0."),
        "a forged address in the log:\n{log}"
    );
    assert!(log.contains("127.0.0.1:"), "{log}");
}

#[test]
fn only_peers_in_a_trusted_range_are_believed() {
    let server = Server::start(&["--trust-proxy", "127.0.0.2", "--max-per-ip", "1"]);
    let addr = server.addr;
    let held = must_upgrade(upgrade(addr, &["X-Forwarded-For: 10.0.0.1"]), "first");
    let r = must_refuse(
        upgrade(addr, &["X-Forwarded-For: 10.0.0.2"]),
        "127.0.0.1, not trusted",
    );
    println!(
        "--trust-proxy 127.0.0.2; from 127.0.0.1, XFF 10.0.0.2 → {}",
        r.summary()
    );
    assert_eq!(r.status, 503);
    let proxied = must_upgrade(
        upgrade_from("127.0.0.2", addr, &["X-Forwarded-For: 10.0.0.2"]),
        "from 127.0.0.2, trusted",
    );
    println!("from 127.0.0.2, XFF 10.0.0.2 → 101");
    held.close();
    proxied.close();
}

#[test]
fn malformed_forwarding_headers_count_as_the_proxy() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wschat"));
    cmd.env("RUST_LOG", "debug");
    let server = Server::spawn(cmd, &["--trust-proxy", "127.0.0.1", "--max-per-ip", "1"])
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = server.addr;
    let held = must_upgrade(
        upgrade(addr, &["X-Forwarded-For: 10.0.0.1, not-an-address"]),
        "malformed",
    );
    let r = must_refuse(
        upgrade(addr, &["Forwarded: for=[10.0.0.2]"]),
        "malformed again",
    );
    assert_eq!(r.status, 503, "both count as the proxy, 127.0.0.1");
    wait_log(
        &server,
        "ignoring the forwarding headers of a trusted proxy (malformed X-Forwarded-For",
    );
    wait_log(
        &server,
        "ignoring the forwarding headers of a trusted proxy (malformed Forwarded",
    );
    held.close();
}

#[test]
fn a_trusted_proxy_vouches_for_its_public_origin() {
    let server = Server::start(&[
        "--trust-proxy",
        "127.0.0.1",
        "--allow-origin",
        "https://other.example",
    ]);
    let addr = server.addr;
    let public = [
        "X-Forwarded-For: 10.0.0.1",
        "X-Forwarded-Proto: https",
        "X-Forwarded-Host: chat.example.org",
    ];
    let with = |origin: &str| {
        let mut lines = public.to_vec();
        let origin = format!("Origin: {origin}");
        lines.push(&origin);
        upgrade(addr, &lines)
    };
    must_upgrade(with("https://chat.example.org"), "the public origin").close();
    must_upgrade(with("https://other.example"), "--allow-origin").close();
    let r = must_refuse(with("http://chat.example.org"), "the public host over http");
    assert_eq!(r.status, 403);
    let r = must_refuse(with("https://evil.example"), "another site");
    println!("a page from https://evil.example → {}", r.summary());
    assert_eq!(r.status, 403);
    assert!(
        r.body
            .contains("may not open a WebSocket to https://chat.example.org/"),
        "{}",
        r.body
    );
    wait_log(&server, "10.0.0.1 via 127.0.0.1:");
    // Forwarded says the same with proto= and host=.
    must_upgrade(
        upgrade(
            addr,
            &[
                r#"Forwarded: for=10.0.0.1;proto=https;host="chat.example.org:8443""#,
                "Origin: https://chat.example.org:8443",
            ],
        ),
        "Forwarded",
    )
    .close();

    // From a server that trusts nobody, the same headers prove nothing.
    let untrusting = Server::start(&[]);
    let mut lines = public.to_vec();
    lines.push("Origin: https://chat.example.org");
    let r = must_refuse(upgrade(untrusting.addr, &lines), "untrusted");
    println!("no --trust-proxy: the same request → {}", r.summary());
    assert_eq!(r.status, 403);
}
