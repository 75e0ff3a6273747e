//! `--metrics-addr`: the binary serves `GET /metrics` on a port of its own,
//! and the counters move as the chat does — messages, deliveries, bytes,
//! open connections up and down, a slow client's 1008, refusals by reason,
//! permessage-deflate. Every wait is a bounded poll of the scrape.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::metrics::{get, metrics_addr, scrape, value, wait_for};
use support::*;
use wschat::ws::{Config, Message, Role};

/// The running server and where its metrics are.
fn start(args: &[&str]) -> (Server, SocketAddr) {
    let mut all = vec!["--metrics-addr", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let server = Server::start(&all);
    let addr = metrics_addr(&server);
    (server, addr)
}

fn closes(code: &str, side: &str) -> String {
    format!("wschat_websocket_closes_total{{code=\"{code}\",side=\"{side}\"}}")
}

fn refused(reason: &str) -> String {
    format!("wschat_connections_refused_total{{reason=\"{reason}\"}}")
}

#[test]
fn only_get_metrics_is_served_and_the_flag_is_off_by_default() {
    let (_server, addr) = start(&[]);
    assert_eq!(get(addr, "/").0, 404);
    assert_eq!(get(addr, "/metrics/x").0, 404);
    assert_eq!(get(addr, "/metrics?x=1").0, 200);
    let plain = Server::start(&[]);
    assert_eq!(
        plain.stdout_line("metrics on", Duration::from_millis(500)),
        None
    );
}

#[test]
fn chatting_moves_messages_deliveries_bytes_and_the_open_gauge() {
    // No grace: a user leaves its rooms with its last connection.
    let (server, metrics) = start(&["--session-grace", "0"]);
    let before = scrape(metrics);
    assert_eq!(value(&before, "wschat_connections_open"), 0.0);
    let mut alice = ChatClient::join(server.addr, "alice");
    let mut bob = ChatClient::join(server.addr, "bob");
    for i in 0..3 {
        alice.round_trip(&format!("hello {i}"));
    }
    for i in 0..3 {
        let text = format!("hello {i}");
        bob.wait_for(WAIT, "alice's message", |v| v["text"] == text.as_str());
    }
    // Three messages to two members, and bob's join to alice. The hub
    // counts a batch's deliveries once it has handed them all out, which
    // may be just after the clients have them.
    let during = wait_for(metrics, "wschat_messages_delivered_total", |n| n >= 7.0);
    assert_eq!(value(&during, "wschat_connections_open"), 2.0);
    assert_eq!(value(&during, "wschat_websockets_opened_total"), 2.0);
    assert_eq!(value(&during, "wschat_connections_accepted_total"), 2.0);
    assert_eq!(value(&during, "wschat_messages_received_total"), 3.0);
    assert!(value(&during, "wschat_bytes_in_total") > 0.0);
    assert!(value(&during, "wschat_bytes_out_total") > 0.0);
    assert!(value(&during, "wschat_history_writes_total") >= 1.0);
    assert_eq!(value(&during, "wschat_history_failures_total"), 0.0);
    // One node alone has no bus, and shows none (the cluster tests scrape
    // a node's: tests/cluster.rs).
    assert!(
        !during.keys().any(|k| k.starts_with("wschat_bus_")),
        "{during:?}"
    );
    // Two joins and three messages, each message in a batch of its own
    // (each round trip waits for the one before).
    assert!(value(&during, "wschat_hub_batch_events_sum") >= 5.0);
    assert!(value(&during, "wschat_hub_batch_events_count") >= 3.0);
    assert_eq!(
        value(&during, "wschat_hub_batch_events_count"),
        value(&during, "wschat_hub_batch_events_bucket{le=\"+Inf\"}")
    );
    assert!(value(&during, "wschat_hub_batch_wait_seconds_count") >= 3.0);
    assert_eq!(value(&during, "wschat_room_members{room=\"lobby\"}"), 2.0);
    assert_eq!(
        value(&during, "wschat_room_messages_total{room=\"lobby\"}"),
        3.0
    );
    alice.close();
    bob.close();
    let after = wait_for(metrics, &closes("1000", "peer"), |n| n >= 2.0);
    assert_eq!(value(&after, &closes("1000", "server")), 0.0);
    wait_for(metrics, "wschat_connections_open", |n| n == 0.0);
    wait_for(metrics, "wschat_room_members{room=\"lobby\"}", |n| n == 0.0);
}

#[test]
fn a_client_that_stops_reading_is_counted_as_slow_and_under_1008() {
    let (server, metrics) = start(&["--queue", "32", "--rate", "0", "--max-text", "20000"]);
    let mut sender = ChatClient::join(server.addr, "sender");
    let mut slow = ChatClient::join(server.addr, "slow");
    let text = "y".repeat(16_000);
    let mut closed = false;
    for i in 0..400 {
        sender.say(&text, &format!("{i}"));
        // Drain our own copies so that we are not the slow one.
        sender.wait_for(WAIT, "own message", |v| v["type"] == "message");
        if i % 20 == 19 && value(&scrape(metrics), "wschat_slow_clients_closed_total") >= 1.0 {
            closed = true;
            break;
        }
    }
    assert!(closed, "the slow client was never closed");
    // Now it reads: what was buffered, then the 1008, which it echoes.
    let (code, reason, _) = slow.ws.expect_close(Duration::from_secs(10));
    assert_eq!((code, reason.as_str()), (1008, "too slow"));
    let _ = slow.ws.send(true, CLOSE, &close_payload(1008, b""));
    let after = wait_for(metrics, &closes("1008", "server"), |n| n >= 1.0);
    assert_eq!(value(&after, &closes("1008", "peer")), 0.0);
    assert_eq!(value(&after, "wschat_slow_clients_closed_total"), 1.0);
}

#[test]
fn a_connection_over_the_per_ip_cap_is_counted_under_caps_per_ip() {
    let (server, metrics) = start(&["--max-per-ip", "1"]);
    let first = ChatClient::join(server.addr, "first");
    let refusal = http(server.addr, &upgrade_request(server.addr));
    assert_eq!(refusal.status, 503, "{}", refusal.summary());
    let samples = wait_for(metrics, &refused("caps_per_ip"), |n| n >= 1.0);
    assert_eq!(value(&samples, &refused("caps_per_ip")), 1.0);
    assert_eq!(value(&samples, &refused("caps_total")), 0.0);
    assert_eq!(value(&samples, "wschat_connections_accepted_total"), 2.0);
    drop(first);
}

#[test]
fn refusals_are_counted_by_reason() {
    let (server, metrics) = start(&["--head-timeout", "1"]);
    let mut lines = upgrade_lines(server.addr);
    lines.push("Origin: http://evil.example".into());
    assert_eq!(http(server.addr, &head(&lines)).status, 403);
    let mut lines = upgrade_lines(server.addr);
    lines[0] = "GET /nope HTTP/1.1".into();
    assert_eq!(http(server.addr, &head(&lines)).status, 404);
    let lines: Vec<String> = upgrade_lines(server.addr)
        .into_iter()
        .filter(|l| !l.starts_with("Sec-WebSocket-Key"))
        .collect();
    assert_eq!(http(server.addr, &head(&lines)).status, 400);
    // Slowloris: a connection that sends nothing is answered 408.
    let mut silent = tcp(server.addr);
    assert_eq!(read_response(&mut silent).status, 408);
    let samples = wait_for(metrics, &refused("slowloris"), |n| n >= 1.0);
    for reason in ["origin", "not_found", "bad_handshake", "slowloris"] {
        assert_eq!(value(&samples, &refused(reason)), 1.0, "{reason}");
    }
    assert_eq!(value(&samples, &refused("caps_per_ip")), 0.0);
    assert_eq!(value(&samples, "wschat_websockets_opened_total"), 0.0);
}

#[test]
fn a_client_that_negotiates_deflate_moves_the_deflate_counters() {
    let (server, metrics) = start(&[]);
    let before = scrape(metrics);
    assert_eq!(value(&before, "wschat_deflate_messages_out_total"), 0.0);
    let url = format!("ws://{}/", server.addr);
    let (mut reader, sender) =
        wschat::ws::client::connect_offering(&url, Config::new(Role::Client), WAIT, Some(64))
            .expect("connect offering deflate");
    let text = "compress me, compress me again; ".repeat(64);
    let say = serde_json::json!({"type": "say", "text": text, "nonce": "z"}).to_string();
    sender
        .send_message(&Message::Text(say))
        .expect("send a compressible message");
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no echo of the message");
        match reader.next_message_timeout(Duration::from_millis(200)) {
            Ok(Some(Message::Text(json))) if json.contains("\"nonce\":\"z\"") => break,
            Ok(_) => {}
            Err(closed) => panic!("closed: {closed}"),
        }
    }
    let after = scrape(metrics);
    let out_before = value(&after, "wschat_deflate_bytes_out_before_total");
    let out_after = value(&after, "wschat_deflate_bytes_out_after_total");
    assert!(value(&after, "wschat_deflate_messages_out_total") >= 1.0);
    assert!(
        out_after > 0.0 && out_after < out_before,
        "{out_after} vs {out_before}"
    );
    let in_before = value(&after, "wschat_deflate_bytes_in_before_total");
    let in_after = value(&after, "wschat_deflate_bytes_in_after_total");
    assert_eq!(value(&after, "wschat_deflate_messages_in_total"), 1.0);
    assert!(
        in_before > 0.0 && in_after > in_before,
        "{in_after} vs {in_before}"
    );
    sender.close(wschat::ws::CloseCode::NORMAL, "", true);
}

#[test]
fn a_client_in_two_busy_rooms_is_handed_one_send_per_batch() {
    let (server, metrics) = start(&["--session-grace", "0", "--rate", "0"]);
    let hello = |name: &str| serde_json::json!({"type": "hello", "name": name, "rooms": {"lobby": null, "rust": null}});
    let mut watcher = ChatClient::join_with(server.addr, hello("watcher"));
    let mut sender = ChatClient::join_with(server.addr, hello("sender"));
    // The sender's join reached the watcher in both rooms, and the hub has
    // counted that batch: nothing else is pending.
    watcher.wait_for(WAIT, "the sender's join", |v| v["type"] == "join");
    let before = wait_for(metrics, "wschat_messages_delivered_total", |n| n >= 2.0);
    const COUNT: usize = 400;
    let mut burst = Vec::new();
    for k in 0..COUNT {
        let room = if k % 2 == 0 { "lobby" } else { "rust" };
        let say = serde_json::json!({"type": "say", "room": room, "text": format!("m{k}")});
        burst.extend(frame(true, TEXT, say.to_string().as_bytes()));
    }
    sender.ws.send_raw(&burst).unwrap();
    for client in [&mut watcher, &mut sender] {
        let mut got = 0;
        while got < COUNT {
            let v = client.recv(WAIT).expect("a message");
            if v["type"] == "message" {
                got += 1;
            }
        }
    }
    let target = value(&before, "wschat_messages_delivered_total") + 2.0 * COUNT as f64;
    let after = wait_for(metrics, "wschat_messages_delivered_total", |n| n >= target);
    let delta = |series: &str| value(&after, series) - value(&before, series);
    let (sends, batches) = (
        delta("wschat_batch_sends_total"),
        delta("wschat_hub_batch_events_count"),
    );
    println!(
        "{COUNT} messages in two rooms: {batches} hub batches, {sends} sends to the 2 clients"
    );
    // The burst came in batches of several messages, in both rooms...
    assert!(
        batches < (COUNT as f64) * 0.75,
        "{batches} batches: no batching to test"
    );
    // ...and each client was handed each batch once, not once per room.
    assert!(
        sends <= 2.0 * batches,
        "{sends} sends for {batches} batches"
    );
}
