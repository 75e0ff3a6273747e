//! The opening handshake's refusals (RFC 6455 §4.2), read raw off the
//! socket, and plain HTTP passed to the `App`.

use std::net::SocketAddr;

use crate::support::{InProcessServer, KEY, Response, http, upgrade_request};

/// Send `request` and read the whole answer, up to the server's end of TCP
/// (a FIN: the server closes the connection after its answer).
fn exchange(addr: SocketAddr, request: &str) -> Response {
    let answer = http(addr, request.as_bytes());
    assert!(
        answer.eof,
        "the server did not close the connection after its answer: {answer:?}"
    );
    answer
}

#[test]
fn c_handshake_refusals() {
    let server = InProcessServer::echo();
    let addr = server.addr;
    let good = String::from_utf8(upgrade_request(addr)).unwrap();

    // §4.2.2: another version gets 426 and the version we speak.
    let answer = exchange(addr, &good.replace("Version: 13", "Version: 8"));
    assert!(
        answer.status_line().starts_with("HTTP/1.1 426 "),
        "{answer:?}"
    );
    assert_eq!(answer.header("sec-websocket-version"), Some("13"));

    let answer = exchange(
        addr,
        &good.replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), ""),
    );
    assert!(
        answer.status_line().starts_with("HTTP/1.1 400 "),
        "{answer:?}"
    );

    let answer = exchange(addr, &good.replace(KEY, "c2hvcnQ="));
    assert!(
        answer.status_line().starts_with("HTTP/1.1 400 "),
        "{answer:?}"
    );

    let answer = exchange(addr, &good.replace("GET ", "POST "));
    assert!(
        answer.status_line().starts_with("HTTP/1.1 405 "),
        "{answer:?}"
    );

    let answer = exchange(
        addr,
        &good.replace("Connection: Upgrade", "Connection: close"),
    );
    assert!(
        answer.status_line().starts_with("HTTP/1.1 400 "),
        "{answer:?}"
    );

    let answer = exchange(addr, &good.replace("HTTP/1.1", "HTTP/1.0"));
    assert!(
        answer.status_line().starts_with("HTTP/1.1 400 "),
        "{answer:?}"
    );

    let huge = good.replace(
        "\r\n\r\n",
        &format!("\r\nX-Filler: {}\r\n\r\n", "y".repeat(9000)),
    );
    let answer = exchange(addr, &huge);
    assert!(
        answer.status_line().starts_with("HTTP/1.1 431 "),
        "{answer:?}"
    );

    // Plain HTTP goes to the App.
    let answer = exchange(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        answer.status_line().starts_with("HTTP/1.1 200 "),
        "{answer:?}"
    );
    assert!(answer.body == "ok\n", "{answer:?}");
    let answer = exchange(addr, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        answer.status_line().starts_with("HTTP/1.1 404 "),
        "{answer:?}"
    );

    // None of them became a WebSocket, and each connection was closed.
    server.wait_idle();
}
