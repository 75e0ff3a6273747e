//! Several nodes sharing rooms through a real Redis (`--redis`): the real
//! `wschat` binary, two or three times, on free loopback ports, one
//! `redis-server` (see `support::redis`), and independent `tungstenite`
//! clients spread over the nodes.
//!
//! Every wait is bounded; Redis and every node are stopped by PID at the
//! end of each test, whatever happens.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;
use support::metrics::{metrics_addr, scrape, value, wait_for};
use support::redis::Redis;
use support::room_client::{Client, hello_rooms};
use support::{Server, http};

fn node(redis: &Redis, extra: &[&str]) -> Server {
    node_at(&redis.url(), extra)
}

/// A node on the Redis at `url`.
fn node_at(url: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--redis", url, "--rate", "0"];
    if !extra.contains(&"--session-grace") {
        args.extend(["--session-grace", "0"]);
    }
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    wait_ready(&server, Duration::from_secs(10));
    server
}

/// `/healthz`: its status and body.
fn health(server: &Server) -> (u16, String) {
    let r = http(server.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    (r.status, r.body)
}

fn wait_ready(server: &Server, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = health(server);
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "node not ready: {status} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn messages(seen: &[Value], room: &str) -> Vec<(u64, String)> {
    seen.iter()
        .filter(|v| v["type"] == "message" && v["room"] == room)
        .map(|v| {
            (
                v["id"].as_u64().unwrap(),
                v["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn ids_consecutive(ids: &[u64]) -> bool {
    ids.windows(2).all(|w| w[1] == w[0] + 1)
}

/// Say `text` in the lobby until it is stored: a node may learn that Redis
/// restarted only when its next write fails, and that one is answered
/// `unavailable` (never reported as sent).
fn say_stored(client: &mut Client, text: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    for attempt in 0.. {
        let nonce = format!("stored-{attempt}");
        client.send(&json!({"type": "say", "text": text, "nonce": nonce}));
        let answer = client.until(|v| {
            (v["type"] == "message" || v["type"] == "error") && v["nonce"] == nonce.as_str()
        });
        let answer = answer.last().unwrap();
        if answer["type"] == "message" {
            return answer.clone();
        }
        assert_eq!(answer["code"], "unavailable", "{answer}");
        assert!(Instant::now() < deadline, "never stored: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    }
    unreachable!()
}

#[test]
fn messages_cross_nodes_in_every_room_with_ids_per_room() {
    let redis = Redis::start("cross");
    let (n1, n2) = (node(&redis, &[]), node(&redis, &[]));
    let rooms = json!({"lobby": null, "rust": null});
    let mut alice = Client::hello(&n1, hello_rooms("alice", rooms.clone()));
    let mut bob = Client::hello(&n2, hello_rooms("bob", rooms));
    let a1 = alice.say("rust", "rust from n1");
    let mut bob_saw = bob.say_all("lobby", "lobby from n2");
    let b1 = bob_saw
        .iter()
        .find(|v| v["text"] == "lobby from n2")
        .unwrap()
        .clone();
    let mut alice_saw = alice.say_all("rust", "again from n1");
    let a2 = alice_saw.last().unwrap().clone();
    assert_eq!(
        a2["id"].as_u64().unwrap(),
        a1["id"].as_u64().unwrap() + 1,
        "ids per room"
    );
    bob_saw.extend(bob.until_text("rust", "again from n1"));
    let rust = messages(&bob_saw, "rust");
    assert_eq!(
        rust.iter().map(|m| m.1.as_str()).collect::<Vec<_>>(),
        ["rust from n1", "again from n1"]
    );
    if !alice_saw.iter().any(|v| v["text"] == "lobby from n2") {
        alice_saw.extend(alice.until_text("lobby", "lobby from n2"));
    }
    let seen = alice_saw;
    assert_eq!(messages(&seen, "lobby")[0].0, b1["id"].as_u64().unwrap());
    // Nothing said in one room shows in another.
    assert!(messages(&seen, "lobby").iter().all(|m| !m.1.contains("n1")));
}

#[test]
fn every_node_delivers_the_same_order_under_concurrent_senders() {
    let redis = Redis::start("order");
    let nodes: Vec<Server> = (0..3).map(|_| node(&redis, &[])).collect();
    const EACH: usize = 60;
    let mut watchers: Vec<Client> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Client::named(n, &format!("watcher{i}")))
        .collect();
    let senders: Vec<_> = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| (0..2).map(move |j| (i, j, n)))
        .map(|(i, j, n)| {
            let mut client = Client::named(n, &format!("sender{i}-{j}"));
            std::thread::spawn(move || {
                for k in 0..EACH {
                    client.send(&json!({"type": "say", "text": format!("{i}-{j}-{k}"), "nonce": format!("{k}")}));
                }
                // Its own last message back means all of its are stored.
                let last = format!("{i}-{j}-{}", EACH - 1);
                client.until(|v| v["type"] == "message" && v["text"] == last.as_str());
            })
        })
        .collect();
    for s in senders {
        if s.join().is_err() {
            for (i, n) in nodes.iter().enumerate() {
                eprintln!("--- node {i} log:\n{}", n.log());
            }
            panic!("a sender failed");
        }
    }
    let total = 6 * EACH;
    let sequences: Vec<Vec<(u64, String)>> = watchers
        .iter_mut()
        .map(|w| {
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            while got.len() < total {
                assert!(
                    Instant::now() < deadline,
                    "only {} of {total} arrived",
                    got.len()
                );
                let v = w.next();
                if v["type"] == "message" {
                    got.push((
                        v["id"].as_u64().unwrap(),
                        v["text"].as_str().unwrap().to_owned(),
                    ));
                }
            }
            got
        })
        .collect();
    let ids: Vec<u64> = sequences[0].iter().map(|m| m.0).collect();
    assert!(
        ids_consecutive(&ids),
        "ids with a gap or out of order: {ids:?}"
    );
    for (i, s) in sequences.iter().enumerate().skip(1) {
        assert_eq!(s, &sequences[0], "node {i} delivered another order");
    }
    // Each sender's own messages kept their order.
    let mut next: HashMap<String, usize> = HashMap::new();
    for (_, text) in &sequences[0] {
        let (who, k) = text.rsplit_once('-').unwrap();
        let expected = next.entry(who.to_owned()).or_default();
        assert_eq!(k.parse::<usize>().unwrap(), *expected, "{text}");
        *expected += 1;
    }
}

#[test]
fn a_client_resumes_on_another_node_with_no_gap_and_no_duplicate() {
    let redis = Redis::start("resume");
    let (n1, n2) = (node(&redis, &[]), node(&redis, &[]));
    let mut alice = Client::named(&n1, "alice");
    let mut bob = Client::named(&n2, "bob");
    let seen = alice.say("lobby", "before");
    let last = seen["id"].as_u64().unwrap();
    alice.close();
    for k in 0..5 {
        bob.say("lobby", &format!("missed {k}"));
    }
    // Back on the other node, from the last id seen.
    let mut alice = Client::hello(&n2, hello_rooms("alice", json!({"lobby": last})));
    let joined = alice.joined("lobby").clone();
    let history: Vec<String> = joined["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        history,
        (0..5).map(|k| format!("missed {k}")).collect::<Vec<_>>()
    );
    assert_ne!(joined["reset"], true);
    bob.say("lobby", "live");
    let seen = alice.until_text("lobby", "live");
    assert_eq!(messages(&seen, "lobby").len(), 1, "nothing twice: {seen:?}");
}

#[test]
fn redis_going_away_gives_unavailable_and_unready_then_the_node_carries_on() {
    let mut redis = Redis::start("away");
    let n1 = node(&redis, &["--metrics-addr", "127.0.0.1:0"]);
    let n2 = node(&redis, &[]);
    let metrics = metrics_addr(&n1);
    let bus = |name: &str| value(&scrape(metrics), name);
    let mut alice = Client::named(&n1, "alice");
    let mut bob = Client::named(&n2, "bob");
    let first = alice.say("lobby", "stored")["id"].as_u64().unwrap();
    bob.until_text("lobby", "stored");
    assert_eq!(bus("wschat_bus_link_up{link=\"writer\"}"), 1.0);
    assert_eq!(bus("wschat_bus_link_up{link=\"subscriber\"}"), 1.0);
    assert_eq!(bus("wschat_bus_messages_stored_total"), 1.0);
    assert!(bus("wschat_bus_round_trips_total") >= 1.0);
    assert_eq!(bus("wschat_bus_messages_refused_total"), 0.0);

    redis.kill9();
    let deadline = Instant::now() + Duration::from_secs(10);
    let why = loop {
        let (status, body) = health(&n1);
        if status == 503 {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "healthz still {status} with redis gone"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(why.contains("redis") && why.contains(": down for"), "{why}");
    alice.send(&json!({"type": "say", "text": "while down", "nonce": "d1"}));
    let error = alice.next_of("error");
    assert_eq!(error["code"], "unavailable", "{error}");
    assert_eq!(error["nonce"], "d1");
    assert_eq!(bus("wschat_bus_messages_refused_total"), 1.0);
    assert_eq!(bus("wschat_bus_link_up{link=\"writer\"}"), 0.0);

    // Back with its data: the same room goes on from the next id.
    redis.restart(true);
    wait_ready(&n1, Duration::from_secs(15));
    wait_ready(&n2, Duration::from_secs(15));
    let after = say_stored(&mut alice, "back")["id"].as_u64().unwrap();
    assert_eq!(
        after,
        first + 1,
        "nothing acknowledged was lost, nothing invented"
    );
    let seen = bob.until_text("lobby", "back");
    assert!(messages(&seen, "lobby").iter().all(|m| m.1 != "while down"));

    // Back without its data: a new epoch, above every old id; live clients
    // are told, and a resume from an old id gets the recent history with
    // `reset`.
    redis.restart(false);
    let fresh = say_stored(&mut alice, "new epoch")["id"].as_u64().unwrap();
    assert!(fresh > after, "{fresh} after {after}");
    let seen = bob.until_text("lobby", "new epoch");
    assert!(
        seen.iter()
            .any(|v| v["type"] == "reset" && v["room"] == "lobby"),
        "{seen:?}"
    );
    let samples = wait_for(metrics, "wschat_bus_room_resets_total", |n| n >= 1.0);
    assert_eq!(value(&samples, "wschat_bus_link_up{link=\"writer\"}"), 1.0);
    let carol = Client::hello(&n2, hello_rooms("carol", json!({"lobby": after})));
    let joined = carol.joined("lobby");
    assert_eq!(joined["reset"], true, "{joined}");
    assert_eq!(joined["history"][0]["text"], "new epoch");
}

/// Wait until `client` has `name` in `room`'s presence: in its `joined`,
/// or by a `join` heard since.
fn until_present(client: &mut Client, room: &str, name: &str) {
    let listed = client.joined.iter().any(|j| {
        j["room"] == room
            && j["users"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["name"] == name)
    });
    if !listed {
        client.until(|v| v["type"] == "join" && v["room"] == room && v["user"]["name"] == name);
    }
}

#[test]
fn presence_names_dms_typing_and_renames_span_the_nodes() {
    let redis = Redis::start("presence");
    let (n1, n2) = (node(&redis, &[]), node(&redis, &[]));
    let mut alice = Client::named(&n1, "alice");
    let mut bob = Client::named(&n2, "bob");
    until_present(&mut bob, "lobby", "alice");
    until_present(&mut alice, "lobby", "bob");
    assert_ne!(alice.id(), bob.id(), "user ids are the nodes' own");

    // Names are unique across the nodes, compared case-insensitively.
    let mut carol = Client::named(&n2, "ALICE");
    let error = carol.next_of("error");
    assert_eq!(error["code"], "name_taken", "{error}");
    assert_ne!(carol.welcome["you"]["name"], "ALICE");

    // A DM reaches the two, on their nodes, and nobody else.
    alice.send(&json!({"type": "dm", "to": "Bob", "text": "psst", "nonce": "dm1"}));
    let dm = bob.next_of("dm");
    assert_eq!(
        (dm["text"].as_str(), dm["from"]["name"].as_str()),
        (Some("psst"), Some("alice"))
    );
    let echo = alice.next_of("dm");
    assert_eq!(echo["nonce"], "dm1");
    let seen = carol.say_all("lobby", "marker");
    assert!(seen.iter().all(|v| v["type"] != "dm"), "{seen:?}");

    // Typing, and a rename, are seen on the other node.
    bob.send(&json!({"type": "typing", "room": "lobby"}));
    let typing = alice.next_of("typing");
    assert_eq!(typing["user"]["name"], "bob");
    alice.send(&json!({"type": "rename", "name": "alicia"}));
    let rename = bob.until(|v| v["type"] == "rename").pop().unwrap();
    assert_eq!(
        (rename["old"].as_str(), rename["user"]["name"].as_str()),
        (Some("alice"), Some("alicia"))
    );
    // The old name is free again, on every node.
    let dave = Client::named(&n2, "alice");
    assert_eq!(dave.welcome["you"]["name"], "alice");

    // A DM to a name nobody holds on any node.
    bob.send(&json!({"type": "dm", "to": "nobody", "text": "?", "nonce": "dm2"}));
    let error = bob.next_of("error");
    assert_eq!(
        (error["code"].as_str(), error["nonce"].as_str()),
        (Some("user_offline"), Some("dm2"))
    );
}

#[test]
fn a_session_resumed_on_another_node_inside_the_grace_is_invisible_and_gets_what_it_missed() {
    let redis = Redis::start("grace");
    let grace = ["--session-grace", "30"];
    let (n1, n2) = (node(&redis, &grace), node(&redis, &grace));
    let mut alice = Client::named(&n1, "alice");
    let mut bob = Client::named(&n2, "bob");
    until_present(&mut bob, "lobby", "alice");
    until_present(&mut alice, "lobby", "bob");
    let (token, id) = (alice.token(), alice.id());
    let last = alice.say("lobby", "before")["id"].as_u64().unwrap();
    bob.until_text("lobby", "before");
    alice.close();
    // Let n1 see the close and put the session in its grace.
    std::thread::sleep(Duration::from_millis(300));
    bob.say("lobby", "missed");
    bob.send(&json!({"type": "dm", "to": "alice", "text": "held for you", "nonce": "h1"}));
    bob.next_of("dm");

    let mut alice = Client::hello(
        &n2,
        json!({"type": "hello", "session": token, "rooms": {"lobby": last}}),
    );
    assert_eq!(alice.id(), id, "the same user");
    assert_eq!(alice.welcome["you"]["name"], "alice");
    let history = &alice.joined("lobby")["history"];
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history[0]["text"], "missed");
    let held = alice.next_of("dm");
    assert_eq!(held["text"], "held for you");
    // Nobody saw alice leave or come back.
    let seen = bob.say_all("lobby", "marker");
    let about_alice: Vec<&Value> = seen
        .iter()
        .filter(|v| (v["type"] == "join" || v["type"] == "leave") && v["user"]["id"] == id)
        .collect();
    assert!(about_alice.is_empty(), "{about_alice:?}");
    // And she is present once.
    let carol = Client::named(&n1, "carol");
    let users: Vec<&Value> = carol.joined("lobby")["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["id"] == id)
        .collect();
    assert_eq!(users.len(), 1, "{users:?}");
}

#[test]
fn users_of_a_killed_node_leave_within_the_timeout_and_their_names_free() {
    let redis = Redis::start("kill");
    let timeout = ["--node-timeout", "3"];
    let mut n1 = node(&redis, &timeout);
    let n2 = node(&redis, &timeout);
    let alice = Client::named(&n1, "alice");
    let mut bob = Client::named(&n2, "bob");
    until_present(&mut bob, "lobby", "alice");
    let id = alice.id();
    let killed = Instant::now();
    n1.kill9();
    bob.until(|v| v["type"] == "leave" && v["user"]["id"] == id);
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(8), "alice left after {took:?}");
    let again = Client::named(&n2, "alice");
    assert_eq!(again.welcome["you"]["name"], "alice");
    drop(alice);
}

#[test]
fn a_node_restarted_after_kill_9_clears_what_its_previous_life_left() {
    let redis = Redis::start("restart");
    let named = ["--node", "n1", "--node-timeout", "60"];
    let mut n1 = node(&redis, &named);
    let n2 = node(&redis, &["--node-timeout", "60"]);
    let alice = Client::named(&n1, "alice");
    let mut bob = Client::named(&n2, "bob");
    until_present(&mut bob, "lobby", "alice");
    let id = alice.id();
    n1.kill9();
    let restarted = Instant::now();
    let n1 = node(&redis, &named);
    // Well before the 60 s timeout: the new n1 says it holds nobody.
    bob.until(|v| v["type"] == "leave" && v["user"]["id"] == id);
    assert!(restarted.elapsed() < Duration::from_secs(10));
    let mut carol = Client::named(&n1, "carol");
    until_present(&mut carol, "lobby", "bob");
    drop(alice);
}

#[test]
fn a_node_that_loses_its_subscription_catches_up_from_the_streams() {
    let redis = Redis::start("catchup");
    let n1 = node(&redis, &[]);
    let n2 = node(&redis, &["--metrics-addr", "127.0.0.1:0"]);
    let metrics = metrics_addr(&n2);
    let mut watcher = Client::named(&n2, "watcher");
    let mut sender = Client::named(&n1, "sender");
    const COUNT: usize = 200;
    let talk = std::thread::spawn(move || {
        for k in 0..COUNT {
            sender.send(&json!({"type": "say", "text": format!("m{k}"), "nonce": format!("{k}")}));
            std::thread::sleep(Duration::from_millis(2));
        }
        let last = format!("m{}", COUNT - 1);
        sender.until(|v| v["type"] == "message" && v["text"] == last.as_str());
    });
    // Twice while the messages flow, Redis drops every subscriber (as it
    // does to one whose output buffer is over its limit). Each kill waits
    // until both nodes have subscribed again, so the second one finds
    // subscribers however slowly the first reconnect went.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(120));
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis
            .cli(&["CLIENT", "LIST", "TYPE", "pubsub"])
            .lines()
            .count()
            < 2
        {
            assert!(Instant::now() < deadline, "the subscribers never came back");
            std::thread::sleep(Duration::from_millis(10));
        }
        let killed = redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        assert!(killed.parse::<u32>().unwrap_or(0) >= 1, "killed: {killed}");
    }
    talk.join().expect("the sender failed");
    assert!(
        n2.wait_log("subscriber lost", Duration::from_secs(5)),
        "{}",
        n2.log()
    );
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < COUNT {
        assert!(Instant::now() < deadline, "only {} of {COUNT}", got.len());
        let v = watcher.next();
        if v["type"] == "message" {
            got.push((
                v["id"].as_u64().unwrap(),
                v["text"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let ids: Vec<u64> = got.iter().map(|m| m.0).collect();
    assert!(ids_consecutive(&ids), "a gap or a repeat: {ids:?}");
    let texts: Vec<String> = got.into_iter().map(|m| m.1).collect();
    assert_eq!(
        texts,
        (0..COUNT).map(|k| format!("m{k}")).collect::<Vec<_>>()
    );
    // Nothing more after the last one: no repeat came late.
    let seen = watcher.say_all("lobby", "the end");
    assert_eq!(messages(&seen, "lobby").len(), 1, "{seen:?}");
    let log = n2.log();
    assert!(
        log.contains("missed message(s) read from its stream"),
        "{log}"
    );
    // The metric counts at least what the log says was read back (and
    // also the recent history a node reads when it first hears of a room).
    let logged: f64 = log
        .lines()
        .filter(|l| l.contains("missed message(s) read from its stream"))
        .filter_map(|l| l.split(": ").nth(2)?.split(' ').next()?.parse::<f64>().ok())
        .sum();
    let read_back = value(&scrape(metrics), "wschat_bus_messages_read_back_total");
    assert!(
        read_back >= 1.0 && read_back >= logged,
        "{read_back} read back, {logged} logged"
    );
}

#[test]
fn nothing_acknowledged_is_lost_and_nothing_invented_while_redis_restarts_under_traffic() {
    let mut redis = Redis::start("traffic");
    let (n1, n2) = (node(&redis, &[]), node(&redis, &[]));
    let mut watcher = Client::named(&n2, "watcher");
    let mut sender = Client::named(&n1, "sender");
    const COUNT: usize = 800;
    let talk = std::thread::spawn(move || {
        let (mut acked, mut refused) = (Vec::new(), Vec::new());
        let answer = |v: &Value, acked: &mut Vec<usize>, refused: &mut Vec<usize>| {
            let nonce = v["nonce"].as_str().and_then(|n| n.parse::<usize>().ok());
            match (v["type"].as_str(), nonce) {
                (Some("message"), Some(k)) if v["from"]["name"] == "sender" => acked.push(k),
                (Some("error"), Some(k)) => {
                    assert_eq!(v["code"], "unavailable", "{v}");
                    refused.push(k);
                }
                _ => {}
            }
        };
        for k in 0..COUNT {
            sender.send(&json!({"type": "say", "text": format!("m{k}"), "nonce": format!("{k}")}));
            std::thread::sleep(Duration::from_millis(5));
        }
        // Every say is answered: stored (its message) or refused.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(0..COUNT).all(|k| acked.contains(&k) || refused.contains(&k)) {
            assert!(Instant::now() < deadline, "unanswered says");
            let v = sender.next();
            answer(&v, &mut acked, &mut refused);
        }
        (acked, refused)
    });
    std::thread::sleep(Duration::from_millis(600));
    redis.kill9();
    std::thread::sleep(Duration::from_millis(800));
    redis.restart(true);
    let (acked, refused) = talk.join().expect("the sender failed");
    assert!(
        !refused.is_empty(),
        "redis was down for 0.8 s and nothing was refused"
    );
    assert!(
        acked.iter().max() > refused.iter().max(),
        "nothing stored after redis came back"
    );
    wait_ready(&n2, Duration::from_secs(15));
    // The watcher's marker goes through Redis after everything the sender
    // had stored: reading up to it covers them all.
    let seen = loop {
        let seen = watcher.say_all("lobby", "marker");
        if seen.last().is_some_and(|v| v["type"] == "message") {
            break seen;
        }
    };
    let got = messages(&seen, "lobby");
    let ids: Vec<u64> = got.iter().map(|m| m.0).collect();
    assert!(ids_consecutive(&ids), "a gap or a repeat: {ids:?}");
    let delivered: Vec<usize> = got
        .iter()
        .filter_map(|m| m.1.strip_prefix('m').and_then(|k| k.parse().ok()))
        .collect();
    for k in &acked {
        assert!(
            delivered.contains(k),
            "m{k} was acknowledged but never delivered"
        );
    }
    for k in &delivered {
        assert!(
            acked.contains(k) || refused.contains(k),
            "m{k} delivered but never said"
        );
    }
    println!(
        "{} stored, {} refused while redis was away, {} delivered",
        acked.len(),
        refused.len(),
        delivered.len()
    );
}

#[test]
fn users_of_a_killed_node_keep_their_names_for_the_grace_and_resume_elsewhere() {
    let redis = Redis::start("orphans");
    let flags = ["--node-timeout", "3", "--session-grace", "30"];
    let mut n1 = node(&redis, &flags);
    let n2 = node(&redis, &flags);
    let mut alice = Client::named(&n1, "alice");
    let mut bob = Client::named(&n2, "bob");
    until_present(&mut bob, "lobby", "alice");
    until_present(&mut alice, "lobby", "bob");
    let (token, id) = (alice.token(), alice.id());
    let last = alice.say("lobby", "before the crash")["id"]
        .as_u64()
        .unwrap();
    n1.kill9();
    bob.until(|v| v["type"] == "leave" && v["user"]["id"] == id);
    // Her name is still hers: the grace did not end with her node.
    let mut carol = Client::named(&n2, "alice");
    assert_eq!(carol.next_of("error")["code"], "name_taken");
    bob.say("lobby", "while she was away");
    // She comes back through the other node with her token.
    let alice = Client::hello(
        &n2,
        json!({"type": "hello", "session": token, "rooms": {"lobby": last}}),
    );
    assert_eq!(
        (alice.id(), alice.welcome["you"]["name"].as_str()),
        (id, Some("alice"))
    );
    let history = &alice.joined("lobby")["history"];
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history[0]["text"], "while she was away");
    drop(alice);
}

#[test]
fn a_name_claimed_on_two_nodes_at_once_ends_with_one_of_them() {
    let redis = Redis::start("race");
    let (n1, n2) = (node(&redis, &[]), node(&redis, &[]));
    for round in 0..5 {
        let name = format!("zed{round}");
        let claims: Vec<_> = [n1.addr, n2.addr]
            .into_iter()
            .map(|addr| {
                let name = name.clone();
                std::thread::spawn(move || {
                    let mut ws = support::Ws::connect(addr);
                    ws.send_text(&json!({"type": "hello", "name": name}).to_string())
                        .unwrap();
                    ws
                })
            })
            .collect();
        let mut sockets: Vec<support::Ws> = claims.into_iter().map(|c| c.join().unwrap()).collect();
        // Each ends up either with the name, or told name_taken under
        // another; read until each knows which (its welcome, then a
        // name_taken error if it lost, at the welcome or after it).
        let mut holders = 0;
        for ws in &mut sockets {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut mine = None;
            let mut refused = false;
            let mut id = None;
            // A winner hears nothing more about its name: the other node's
            // claim reached it after its own. Read for a moment past the
            // welcome to see a late name_taken or rename.
            let quiet = Instant::now() + Duration::from_millis(800);
            loop {
                let left = if mine.is_some() { quiet } else { deadline };
                match ws.recv_json(left.saturating_duration_since(Instant::now())) {
                    Ok(v) if v["type"] == "welcome" => {
                        id = v["you"]["id"].as_u64();
                        mine = v["you"]["name"].as_str().map(str::to_owned);
                    }
                    Ok(v) if v["type"] == "error" && v["code"] == "name_taken" => refused = true,
                    Ok(v) if v["type"] == "rename" && v["user"]["id"].as_u64() == id => {
                        mine = v["user"]["name"].as_str().map(str::to_owned);
                    }
                    Ok(_) => {}
                    Err(_) if mine.is_some() => break,
                    Err(e) => panic!("no welcome: {e:?}"),
                }
            }
            if mine.as_deref() == Some(name.as_str()) {
                assert!(!refused, "kept {name} and was told it was taken");
                holders += 1;
            } else {
                assert!(refused, "lost {name} without being told: now {mine:?}");
            }
        }
        assert_eq!(holders, 1, "{name}: {holders} holders");
    }
    let settled_on_the_bus: usize = [&n1, &n2]
        .iter()
        .map(|n| n.log().matches("was claimed first on another node").count())
        .sum();
    println!(
        "5 names claimed on two nodes at once: {settled_on_the_bus} settled by the bus's order, the rest at the welcome"
    );
}

#[test]
fn a_redis_with_a_password_is_reached_with_it_and_the_password_is_never_shown() {
    let redis = Redis::start_with("auth", &["--requirepass", "s3cret-pw"]);
    let url = format!("redis://:s3cret-pw@127.0.0.1:{}", redis.port);
    let (n1, n2) = (node_at(&url, &[]), node_at(&url, &[]));
    let mut alice = Client::hello(&n1, hello_rooms("alice", json!({"lobby": null})));
    let mut bob = Client::hello(&n2, hello_rooms("bob", json!({"lobby": null})));
    alice.say("lobby", "through a locked redis");
    bob.until_text("lobby", "through a locked redis");

    // The wrong password: the node serves, says why it is not ready, and
    // refuses to report a say as sent.
    let wrong = format!("redis://:wrong-pw@127.0.0.1:{}", redis.port);
    let n3 = Server::start(&["--redis", &wrong, "--rate", "0"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        let (status, body) = health(&n3);
        if (status == 503 && body.contains("redis")) || Instant::now() > deadline {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("WRONGPASS") || body.to_lowercase().contains("auth"),
        "the reason names the refusal: {body}"
    );
    let mut carol = Client::hello(&n3, hello_rooms("carol", json!({"lobby": null})));
    carol.send(&json!({"type": "say", "room": "lobby", "text": "lost?", "nonce": "k1"}));
    let answer = carol.until(|v| v["nonce"] == "k1");
    assert_eq!(answer.last().unwrap()["code"], "unavailable");
    assert!(
        !bob.say_all("lobby", "after it")
            .iter()
            .any(|v| v["text"] == "lost?"),
        "nothing unsaid appears"
    );

    // Neither password shows in a log or a health answer.
    for (server, password) in [(&n1, "s3cret-pw"), (&n2, "s3cret-pw"), (&n3, "wrong-pw")] {
        assert!(server.log().contains("redis://"), "the log names the redis");
        assert!(!server.log().contains(password), "a password in the log");
        assert!(
            !health(server).1.contains(password),
            "a password in /healthz"
        );
    }
}
