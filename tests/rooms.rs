//! Rooms, sessions, DMs and typing end to end: the real `wschat` binary on
//! a free loopback port, driven by independent `tungstenite` clients.
//!
//! Where a test shows that something did *not* arrive, the sender of the
//! thing that did not arrive is followed by a marker message in the same
//! place; the hub handles events in order, so reading up to the marker
//! covers everything before it, without sleeping.

use serde_json::{Value, json};
use tungstenite::Message;

mod support;
use support::room_client::{Client, TIMEOUT, hello_rooms, of_type, presence_ids};
use support::{Server, scratch};

#[test]
fn rooms_are_isolated_with_ids_of_their_own() {
    let server = Server::start(&["--rate", "0"]);
    let mut alice = Client::hello(
        &server,
        hello_rooms("alice", json!({"lobby": null, "rust": null})),
    );
    assert_eq!(alice.welcome["rooms"], json!(["lobby", "rust"]));
    let mut bob = Client::named(&server, "bob");
    assert_eq!(bob.welcome["rooms"], json!(["lobby"]));

    let r1 = alice.say("rust", "rust one");
    let l1 = alice.say("lobby", "lobby one");
    let r2 = alice.say("rust", "rust two");
    assert_eq!(r1["room"], "rust");
    assert_eq!(
        r2["id"].as_u64().unwrap(),
        r1["id"].as_u64().unwrap() + 1,
        "a lobby message between them does not use a rust id"
    );
    let seen = bob.until_text("lobby", "lobby one");
    assert!(
        seen.iter().all(|v| v["room"] != "rust"),
        "bob is not in rust: {seen:?}"
    );
    let seen = bob.say_all("lobby", "marker");
    assert!(seen.iter().all(|v| v["text"] != "rust two"), "{seen:?}");
    assert_eq!(l1["room"], "lobby");

    // A say without a room goes to the home room.
    alice.send(&json!({"type": "say", "text": "no room given"}));
    let got = bob.until_text("lobby", "no room given");
    assert_eq!(got.last().unwrap()["from"]["name"], "alice");
}

#[test]
fn join_leave_left_rooms_and_resume_per_room() {
    let server = Server::start(&["--rate", "0", "--session-grace", "0"]);
    let mut alice = Client::hello(
        &server,
        hello_rooms("alice", json!({"lobby": null, "rust": null})),
    );
    let m1 = alice.say("rust", "first");
    alice.say("rust", "second");
    let mut bob = Client::named(&server, "bob");

    bob.send(&json!({"type": "join", "room": "Rust", "resume": m1["id"]}));
    let joined = bob.next_of("joined");
    assert_eq!(joined["room"], "rust");
    let history: Vec<&str> = joined["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["second"], "history after the resume point only");
    assert_eq!(presence_ids(&joined["users"]), [alice.id(), bob.id()]);
    let join = alice
        .until(|v| v["type"] == "join" && v["room"] == "rust")
        .pop()
        .unwrap();
    assert_eq!(
        (join["room"].as_str(), join["user"]["name"].as_str()),
        (Some("rust"), Some("bob"))
    );

    bob.send(&json!({"type": "rooms"}));
    let rooms = bob.next_of("rooms");
    let rust = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room"] == "rust")
        .unwrap_or_else(|| panic!("{rooms}"));
    assert_eq!(rust["users"], 2);

    bob.send(&json!({"type": "leave", "room": "rust"}));
    assert_eq!(bob.next_of("left")["room"], "rust");
    let leave = alice.next_of("leave");
    assert_eq!(
        (leave["room"].as_str(), leave["user"]["id"].as_u64()),
        (Some("rust"), Some(bob.id()))
    );
    bob.send(&json!({"type": "say", "room": "rust", "text": "hi", "nonce": "x"}));
    let error = bob.expect_error("not_in_room", "lobby");
    assert_eq!(error["nonce"], "x");
}

#[test]
fn the_upgrade_url_names_the_home_room() {
    let server = Server::start(&["--rate", "0"]);
    let mut watcher = Client::hello(
        &server,
        hello_rooms("watcher", json!({"go": null, "lobby": null})),
    );
    // A plain-text client: no hello, only text.
    let mut plain = Client::connect(&server, "/?room=go", None);
    assert_eq!(plain.welcome["rooms"], json!(["go"]));
    plain.ws.send(Message::text("hello from websocat")).unwrap();
    let got = watcher.until(|v| v["text"] == "hello from websocat");
    assert_eq!(got.last().unwrap()["room"], "go");

    let ws_path = Client::connect(
        &server,
        "/ws?room=Go",
        Some(json!({"type": "hello", "name": "w"})),
    );
    assert_eq!(ws_path.welcome["rooms"], json!(["go"]));
    // The old form's welcome carries the home room's presence and history.
    assert!(
        ws_path.welcome["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["text"] == "hello from websocat")
    );

    let mut bad = Client::connect(&server, "/?room=no%20way", None);
    assert_eq!(bad.welcome["rooms"], json!(["lobby"]));
    bad.expect_error("bad_room", "lobby");
}

#[test]
fn every_new_error_code_leaves_the_connection_open() {
    let server = Server::start(&["--rate", "0", "--rooms-per-connection", "2"]);
    let _alice = Client::named(&server, "alice");
    let mut bob = Client::named(&server, "bob");

    bob.send(&json!({"type": "join", "room": "Not A Room"}));
    bob.expect_error("bad_room", "lobby");
    bob.send(&json!({"type": "say", "room": "elsewhere", "text": "hi"}));
    bob.expect_error("not_in_room", "lobby");
    bob.send(&json!({"type": "leave", "room": "elsewhere"}));
    bob.expect_error("not_in_room", "lobby");
    bob.send(&json!({"type": "join", "room": "two"}));
    bob.next_of("joined");
    bob.send(&json!({"type": "join", "room": "three"}));
    bob.expect_error("too_many_rooms", "lobby");
    bob.send(&json!({"type": "rename", "name": "ALICE"}));
    bob.expect_error("name_taken", "lobby");
    bob.send(&json!({"type": "dm", "to": "nobody", "text": "hi", "nonce": "d1"}));
    let error = bob.expect_error("user_offline", "lobby");
    assert_eq!(error["nonce"], "d1");

    // A hello naming more rooms than the cap joins the first ones.
    let mut many = Client::hello(
        &server,
        hello_rooms("many", json!({"a": null, "b": null, "c": null})),
    );
    assert_eq!(many.welcome["rooms"].as_array().unwrap().len(), 2);
    let room = many.welcome["rooms"][0].as_str().unwrap().to_owned();
    many.expect_error("too_many_rooms", &room);
}

#[test]
fn names_are_unique_case_insensitively() {
    let server = Server::start(&["--rate", "0"]);
    let alice = Client::named(&server, "Alice");
    let mut other = Client::named(&server, "aLiCe");
    assert_ne!(
        other.welcome["you"]["name"], "aLiCe",
        "joins as a guest instead"
    );
    other.expect_error("name_taken", "lobby");
    other.send(&json!({"type": "rename", "name": "ALICE "}));
    other.expect_error("name_taken", "lobby");
    other.send(&json!({"type": "rename", "name": "carol"}));
    let renamed = other.next_of("rename");
    assert_eq!(renamed["user"]["name"], "carol");
    assert_eq!(alice.welcome["you"]["name"], "Alice");
}

#[test]
fn a_resume_inside_the_grace_is_invisible_and_replays_what_was_missed() {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wschat"));
    cmd.env("RUST_LOG", "debug");
    let server = Server::spawn(cmd, &["--rate", "0", "--session-grace", "60"]).unwrap();
    let mut alice = Client::hello(
        &server,
        hello_rooms("alice", json!({"lobby": null, "rust": null})),
    );
    let token = alice.token();
    let id = alice.id();
    let mut bob = Client::hello(
        &server,
        hello_rooms("bob", json!({"lobby": null, "rust": null})),
    );
    let seen = alice.say("rust", "before");
    bob.until_text("rust", "before");
    let last_rust = seen["id"].as_u64().unwrap();
    alice.close();
    assert!(
        server.wait_log("(\"alice\"): last connection", TIMEOUT),
        "alice's session did not enter its grace"
    );

    bob.say("rust", "missed");
    bob.send(&json!({"type": "dm", "to": "Alice", "text": "psst", "nonce": "d"}));
    let own = bob.next_of("dm");
    assert_eq!(
        (own["text"].as_str(), own["to"]["name"].as_str()),
        (Some("psst"), Some("alice"))
    );

    let mut alice = Client::hello(
        &server,
        json!({"type": "hello", "session": token, "rooms": {"rust": last_rust, "lobby": null}}),
    );
    assert_eq!(alice.id(), id);
    assert_eq!(alice.welcome["you"]["name"], "alice");
    assert_eq!(alice.token(), token);
    let history = &alice.joined("rust")["history"];
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history[0]["text"], "missed");
    let dm = alice.next_of("dm");
    assert_eq!(dm["text"], "psst");

    let seen = bob.say_all("lobby", "marker");
    assert!(
        of_type(&seen, "join").is_empty() && of_type(&seen, "leave").is_empty(),
        "bob saw alice come and go: {seen:?}"
    );
    assert!(
        !server.log().contains(&token),
        "the session token is never logged"
    );

    // Without `rooms`, a resume restores the session's rooms from where it was.
    alice.close();
    // Its second grace: the log has the line twice.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while server
        .log()
        .matches("(\"alice\"): last connection #")
        .count()
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "no second grace");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    bob.say("rust", "missed again");
    let alice = Client::hello(&server, json!({"type": "hello", "session": token}));
    assert_eq!(alice.welcome["rooms"], json!(["lobby", "rust"]));
    let texts: Vec<&Value> = alice.joined("rust")["history"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(texts.last().unwrap()["text"], "missed again");
}

#[test]
fn after_the_grace_the_user_leaves_and_the_name_is_free() {
    let server = Server::start(&["--rate", "0", "--session-grace", "1"]);
    let alice = Client::named(&server, "alice");
    let alice_id = alice.id();
    let token = alice.token();
    let mut bob = Client::named(&server, "bob");
    alice.close();
    let leave = bob.next_of("leave");
    assert_eq!(leave["user"]["id"].as_u64(), Some(alice_id));
    bob.send(&json!({"type": "dm", "to": "alice", "text": "too late"}));
    bob.expect_error("user_offline", "lobby");

    let mut new_alice = Client::hello(
        &server,
        json!({"type": "hello", "name": "alice", "session": token}),
    );
    assert_eq!(new_alice.welcome["you"]["name"], "alice");
    assert_ne!(new_alice.id(), alice_id, "a new session");
    assert_ne!(new_alice.token(), token);
    bob.send(&json!({"type": "dm", "to": "alice", "text": "hello again"}));
    let seen = new_alice.until(|v| v["type"] == "dm");
    assert!(seen.iter().all(|v| v["text"] != "too late"));
    assert_eq!(seen.last().unwrap()["text"], "hello again");
}

#[test]
fn two_connections_of_one_session_are_one_user() {
    let server = Server::start(&["--rate", "0", "--session-grace", "60"]);
    let mut tab1 = Client::named(&server, "alice");
    let mut bob = Client::named(&server, "bob");
    tab1.next_of("join");
    let mut tab2 = Client::hello(&server, json!({"type": "hello", "session": tab1.token()}));
    assert_eq!(tab2.id(), tab1.id());
    assert_eq!(
        presence_ids(&tab2.joined("lobby")["users"]),
        [tab1.id(), bob.id()],
        "alice once in the presence list"
    );
    let carol = Client::named(&server, "carol");
    assert_eq!(presence_ids(&carol.joined("lobby")["users"]).len(), 3);

    bob.send(&json!({"type": "dm", "to": "alice", "text": "to both tabs"}));
    for tab in [&mut tab1, &mut tab2] {
        assert_eq!(tab.next_of("dm")["text"], "to both tabs");
    }
    tab2.say("lobby", "from tab two");
    tab1.until_text("lobby", "from tab two");

    let alice = tab1.id();
    tab1.close();
    let seen = bob.say_all("lobby", "marker");
    assert!(
        seen.iter()
            .all(|v| !(v["type"] == "join" || v["type"] == "leave") || v["user"]["id"] != alice),
        "one tab coming and going is not the user: {seen:?}"
    );
}

#[test]
fn dms_reach_only_the_two_and_never_the_history_file() {
    let file = scratch("dm-history.jsonl");
    let file_arg = file.to_str().unwrap();
    let server = Server::start(&["--rate", "0", "--history-file", file_arg]);
    let mut alice = Client::named(&server, "alice");
    let mut bob = Client::named(&server, "bob");
    let mut carol = Client::named(&server, "carol");
    alice.send(&json!({"type": "dm", "to": "BOB", "text": "secret words", "nonce": "c2"}));
    for who in [&mut alice, &mut bob] {
        let dm = who.next_of("dm");
        assert_eq!(dm["text"], "secret words");
        assert_eq!(dm["from"]["name"], "alice");
        assert_eq!(dm["to"]["name"], "bob");
        assert!(dm["id"].as_u64().is_some() && dm["ts"].as_u64().is_some());
    }
    alice.say("lobby", "marker");
    let seen = carol.until_text("lobby", "marker");
    assert!(of_type(&seen, "dm").is_empty(), "{seen:?}");
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(stored.contains("marker"));
    assert!(!stored.contains("secret words"), "{stored}");
}

#[test]
fn typing_is_throttled_and_never_stored() {
    let file = scratch("typing-history.jsonl");
    let file_arg = file.to_str().unwrap();
    let server = Server::start(&["--rate", "0", "--history-file", file_arg]);
    let mut alice = Client::hello(
        &server,
        hello_rooms("alice", json!({"lobby": null, "rust": null})),
    );
    let mut bob = Client::hello(
        &server,
        hello_rooms("bob", json!({"lobby": null, "rust": null})),
    );
    for _ in 0..5 {
        alice.send(&json!({"type": "typing", "room": "rust"}));
    }
    alice.send(&json!({"type": "typing", "to": "bob"}));
    alice.say("rust", "marker");
    let seen = bob.until_text("rust", "marker");
    let typing = of_type(&seen, "typing");
    let in_rust: Vec<_> = typing.iter().filter(|t| t["room"] == "rust").collect();
    assert_eq!(in_rust.len(), 1, "one notice per 2 s: {seen:?}");
    assert_eq!(in_rust[0]["user"]["name"], "alice");
    let in_dm: Vec<_> = typing.iter().filter(|t| t["to"]["name"] == "bob").collect();
    assert_eq!(in_dm.len(), 1, "{seen:?}");
    alice.send(&json!({"type": "typing", "room": "elsewhere"}));
    alice.expect_error("not_in_room", "rust");

    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(!stored.contains("typing"), "{stored}");
    let carol = Client::hello(&server, hello_rooms("carol", json!({"rust": null})));
    let history = carol.joined("rust")["history"].as_array().unwrap();
    assert!(history.iter().all(|m| m["type"] == "message"));
}

#[test]
fn an_old_history_file_loads_into_the_lobby_and_rooms_reload_apart() {
    let file = scratch("old-history.jsonl");
    let old = [
        r#"{"type":"message","id":1,"ts":1,"from":{"id":1,"name":"a"},"text":"from before rooms"}"#,
        r#"{"type":"message","id":2,"ts":2,"from":{"id":1,"name":"a"},"text":"also old"}"#,
        "not json at all",
    ];
    std::fs::write(&file, old.join("\n") + "\n").unwrap();
    let file_arg = file.to_str().unwrap();
    {
        let server = Server::start(&["--rate", "0", "--history-file", file_arg]);
        let mut alice = Client::hello(
            &server,
            hello_rooms("alice", json!({"lobby": null, "rust": null})),
        );
        let history = alice.joined("lobby")["history"].as_array().unwrap().clone();
        let texts: Vec<&str> = history
            .iter()
            .map(|m| m["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["from before rooms", "also old"]);
        assert!(history.iter().all(|m| m["room"] == "lobby"));
        assert_eq!(alice.say("lobby", "new")["id"], 3);
        alice.say("rust", "in rust");
    }
    let server = Server::start(&["--history-file", file_arg]);
    let alice = Client::hello(
        &server,
        hello_rooms("alice", json!({"lobby": 2, "rust": null})),
    );
    let lobby: Vec<&str> = alice.joined("lobby")["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(lobby, ["new"]);
    let rust = alice.joined("rust")["history"].as_array().unwrap();
    assert_eq!(rust.len(), 1);
    assert_eq!(rust[0]["text"], "in rust");
}

#[test]
fn max_rooms_caps_the_rooms_in_memory_and_ids_never_go_back() {
    let server = Server::start(&["--rate", "0", "--max-rooms", "2"]);
    let mut alice = Client::named(&server, "alice");
    alice.send(&json!({"type": "join", "room": "a"}));
    alice.next_of("joined");
    alice.send(&json!({"type": "join", "room": "b"}));
    let error = alice.expect_error("too_many_rooms", "lobby");
    assert!(
        error["message"].as_str().unwrap().contains("server"),
        "{error}"
    );

    // A room nobody is in makes way for a new one, and its ids go on above.
    let old = alice.say("a", "in a")["id"].as_u64().unwrap();
    alice.send(&json!({"type": "leave", "room": "a"}));
    alice.next_of("left");
    alice.send(&json!({"type": "join", "room": "b"}));
    alice.next_of("joined");
    alice.send(&json!({"type": "leave", "room": "b"}));
    alice.next_of("left");
    alice.send(&json!({"type": "join", "room": "a"}));
    let joined = alice.next_of("joined");
    assert!(
        joined["history"].as_array().unwrap().is_empty(),
        "a was dropped from memory: {joined}"
    );
    let new = alice.say("a", "in a again")["id"].as_u64().unwrap();
    assert!(
        new > old,
        "a made again does not give id {new} twice (was {old})"
    );
}
