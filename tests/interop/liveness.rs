//! Liveness: a silent client is pinged, then dropped; a client that answers
//! the pings stays.

use std::io;
use std::time::{Duration, Instant};

use tungstenite::Message as TsMessage;

use wschat::ws::Role;

use crate::IO_TIMEOUT;
use crate::support::{InProcessServer, PING, Ws, large_config};
use crate::ts::{describe, ts_close_cleanly, ts_connect, ts_text};

fn liveness_server() -> InProcessServer {
    let mut config = large_config(Role::Server);
    config.ping_interval = Some(Duration::from_millis(200));
    config.pong_timeout = Duration::from_millis(300);
    InProcessServer::echo_with(config)
}

#[test]
fn d_silent_client_is_pinged_then_dropped() {
    let server = liveness_server();
    let mut raw = Ws::connect(server.addr);
    let start = Instant::now();
    let ping = raw.read_server_frame(IO_TIMEOUT);
    assert_eq!(
        (ping.fin, ping.opcode, &ping.payload[..]),
        (true, PING, &b""[..]),
        "expected an empty Ping"
    );
    let pinged = start.elapsed();
    assert!(
        pinged >= Duration::from_millis(150),
        "pinged after {pinged:?}"
    );
    // We never answer: the server gives up and closes TCP.
    raw.expect_fin(IO_TIMEOUT);
    let dropped = start.elapsed();
    assert!(
        dropped >= Duration::from_millis(400) && dropped < Duration::from_secs(5),
        "dropped after {dropped:?}"
    );
    drop(raw);
    server.wait_idle();
}

#[test]
fn d_responsive_client_stays_connected() {
    let server = liveness_server();
    let mut ws = ts_connect(server.addr);
    // Short reads so that tungstenite's automatic Pong (sent on the next
    // call to read) goes out promptly.
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        match ws.read() {
            Ok(TsMessage::Ping(payload)) => {
                assert!(payload.is_empty());
                pings += 1;
            }
            Ok(other) => panic!("unexpected {}", describe(&other)),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("connection lost after {:?}: {e}", start.elapsed()),
        }
    }
    assert!(pings >= 3, "only {pings} pings in 1.5 s");
    ws.get_mut().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    ws.send(TsMessage::text("still here")).unwrap();
    assert_eq!(ts_text(&mut ws), "still here");
    ts_close_cleanly(&mut ws);
    drop(ws);
    server.wait_idle();
}
