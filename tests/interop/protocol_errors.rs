//! Every protocol violation of `tests/common/violations.rs` committed
//! against our server, and what tungstenite sees of the same failures.

use std::io::Write;

use tungstenite::Message as TsMessage;

use wschat::ws::{Limits, Role};

use crate::IO_TIMEOUT;
use crate::support::{
    BINARY, CONT, InProcessServer, TEXT, Ws, client_frame, config_with, expect_failure,
    server_frame,
};
use crate::ts::{ts_close, ts_connect, ts_expect_closed};
use crate::violations::{LIMITS, violations};

/// The echo server with the table's limits fails the connection for each
/// row (§7.1.7): a Close with the row's code and reason, then the end of
/// TCP; the whole messages before the violation are echoed first.
#[test]
fn every_violation_fails_the_connection() {
    let server = InProcessServer::echo_with(config_with(Role::Server, LIMITS));
    let rows = violations();
    for v in &rows {
        let echoed = expect_failure(server.addr, &v.name, &v.bytes, v.code, &v.reason);
        assert_eq!(echoed, v.messages, "{}: echoes before the Close", v.name);
    }
    println!("{} violations", rows.len());
    server.wait_idle();
}

/// An unmasked frame from a tungstenite client gets 1002 and a clean end
/// of TCP.
#[test]
fn a_tungstenite_client_sees_1002_for_an_unmasked_frame() {
    let server = InProcessServer::echo();
    let mut ws = ts_connect(server.addr);
    ws.get_mut()
        .write_all(&server_frame(true, TEXT, b"unmasked"))
        .unwrap();
    assert_eq!(ts_close(&mut ws).0, 1002);
    ts_expect_closed(&mut ws);
    drop(ws);
    server.wait_idle();
}

/// Exactly at the limits is accepted; beyond them tungstenite gets 1009.
#[test]
fn at_the_limits_is_accepted_and_tungstenite_gets_1009_beyond() {
    let limits = Limits {
        max_frame: 1000,
        max_message: 2500,
        max_fragments: 4,
    };
    let server = InProcessServer::echo_with(config_with(Role::Server, limits));

    let mut raw = Ws::connect(server.addr);
    raw.send_raw(&client_frame(true, BINARY, &[9; 1000]))
        .unwrap();
    assert_eq!(raw.read_server_frame(IO_TIMEOUT).payload, [9; 1000]);
    let mut bytes = Vec::new();
    for (i, n) in [1000, 1000, 400, 100].into_iter().enumerate() {
        let op = if i == 0 { BINARY } else { CONT };
        bytes.extend(client_frame(i == 3, op, &vec![i as u8; n]));
    }
    raw.send_raw(&bytes).unwrap();
    assert_eq!(raw.read_server_frame(IO_TIMEOUT).payload.len(), 2500);
    drop(raw);

    let mut ws = ts_connect(server.addr);
    ws.send(TsMessage::binary(vec![0u8; 5000])).unwrap();
    assert_eq!(ts_close(&mut ws).0, 1009);
    ts_expect_closed(&mut ws);
    drop(ws);
    server.wait_idle();
}
