//! Faults: the server killed with SIGKILL mid-traffic, a torn history file,
//! `--fsync`, a history file that cannot be written, and a panic in one
//! connection's thread.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// Every line of a history file, parsed; panics on a line that is not a
/// JSON object with an id.
fn read_history(path: &Path) -> Vec<(u64, Value)> {
    let text = std::fs::read_to_string(path).expect("read history file");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "history file does not end with a newline"
    );
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("line {} is not JSON ({e}): {line:?}", i + 1));
            (v["id"].as_u64().expect("id"), v)
        })
        .collect()
}

fn assert_strictly_increasing(ids: &[u64], what: &str) {
    for w in ids.windows(2) {
        assert!(w[0] < w[1], "{what}: id {} then {}", w[0], w[1]);
    }
}

/// A client that sends as fast as a window of `window` unanswered messages
/// allows (on one thread) and records everything it receives (on another).
struct Blaster {
    writer: std::thread::JoinHandle<usize>,
    reader: std::thread::JoinHandle<Vec<(u64, String)>>,
    acked: Arc<Mutex<Vec<String>>>,
}

fn blast(addr: SocketAddr, name: &str, window: usize, stop: &Arc<AtomicBool>) -> Blaster {
    let mut client = ChatClient::join(addr, name);
    let mut out = client.ws.writer();
    let own = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let prefix = format!("{name}-");
    let reader = {
        let (own, acked, prefix) = (Arc::clone(&own), Arc::clone(&acked), prefix.clone());
        std::thread::spawn(move || {
            let mut got = Vec::new();
            // Ends when the server goes away (or is quiet for 5 s); 60 s at most.
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline
                && let Ok(v) = client.recv(WAIT)
            {
                if v["type"] != "message" {
                    continue;
                }
                let text = v["text"].as_str().unwrap_or("").to_owned();
                if v["nonce"].as_str().is_some_and(|n| n.starts_with(&prefix)) {
                    acked
                        .lock()
                        .unwrap()
                        .push(v["nonce"].as_str().unwrap().to_owned());
                    own.fetch_add(1, Ordering::Release);
                }
                got.push((v["id"].as_u64().unwrap(), text));
            }
            got
        })
    };
    let writer = {
        let stop = Arc::clone(stop);
        std::thread::spawn(move || {
            let mut sent = 0usize;
            while !stop.load(Ordering::Acquire) {
                if sent - own.load(Ordering::Acquire) >= window {
                    std::thread::sleep(Duration::from_micros(100));
                    continue;
                }
                let nonce = format!("{prefix}{sent}");
                if out
                    .write_all(&say_frame(&format!("message {nonce}"), &nonce))
                    .is_err()
                {
                    break;
                }
                sent += 1;
            }
            sent
        })
    };
    Blaster {
        writer,
        reader,
        acked,
    }
}

#[test]
fn kill_9_loses_nothing_anyone_received() {
    let file = scratch("kill9.jsonl");
    let path = file.to_str().unwrap();
    let args = [
        "--history-file",
        path,
        "--rate",
        "0",
        "--history",
        "1000000",
    ];
    let mut server = Server::start(&args);
    let stop = Arc::new(AtomicBool::new(false));
    let blasters: Vec<Blaster> = (0..4)
        .map(|i| blast(server.addr, &format!("c{i}"), 64, &stop))
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let killed_at = Instant::now();
    let status = server.kill9();
    stop.store(true, Ordering::Release);
    let mut sent = 0;
    let mut received: BTreeMap<u64, String> = BTreeMap::new();
    let mut per_client = Vec::new();
    for b in blasters {
        sent += b.writer.join().unwrap();
        let got = b.reader.join().unwrap();
        per_client.push(got.len());
        for (id, text) in got {
            if let Some(old) = received.insert(id, text.clone()) {
                assert_eq!(old, text, "two clients got different texts for id {id}");
            }
        }
    }
    println!(
        "4 clients sent {sent} messages for 1.5 s; SIGKILL ({status:?}); clients had received \
         {per_client:?} messages, {} distinct ids (max {:?}); readers ended {:.1?} after the kill",
        received.len(),
        received.keys().last(),
        killed_at.elapsed()
    );
    assert!(received.len() > 100, "too little traffic to mean anything");

    // Restart on the same file: the welcome has the whole history.
    let server = Server::start(&args);
    let mut reader = ChatClient::join(server.addr, "after-crash");
    let history: Vec<(u64, String)> = reader.welcome["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let ids: Vec<u64> = history.iter().map(|(id, _)| *id).collect();
    assert_strictly_increasing(&ids, "welcome history");
    let stored: BTreeMap<u64, String> = history.into_iter().collect();
    let missing: Vec<&u64> = received
        .keys()
        .filter(|id| !stored.contains_key(id))
        .collect();
    let changed = received
        .iter()
        .filter(|(id, text)| stored.get(id).is_some_and(|t| t != *text))
        .count();
    println!(
        "after restart: welcome history has {} messages (ids {:?}..{:?}); of {} received before \
         the kill, {} missing, {changed} different",
        stored.len(),
        ids.first(),
        ids.last(),
        received.len(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "received but lost: {:?}",
        &missing[..missing.len().min(10)]
    );
    assert_eq!(changed, 0);
    // The file itself: valid JSON lines, ids strictly increasing.
    let lines = read_history(&file);
    let file_ids: Vec<u64> = lines.iter().map(|(id, _)| *id).collect();
    assert_strictly_increasing(&file_ids, "history file");
    assert_eq!(file_ids, ids, "file and welcome history differ");
    // New messages continue after the last stored id.
    let last = *ids.last().unwrap();
    reader.say("first after the crash", "n1");
    let msg = reader.wait_for(WAIT, "own message", |v| v["nonce"] == "n1");
    println!(
        "first message after the restart got id {} (last stored {last})",
        msg["id"]
    );
    assert_eq!(msg["id"].as_u64(), Some(last + 1));
    reader.close();
    drop(server);

    // A torn half line at the end (as a crash mid-write leaves it).
    let torn = br#"{"type":"message","id":999999,"ts":17641332"#;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(torn)
        .unwrap();
    let server = Server::start(&args);
    assert!(
        server.wait_log("incomplete", WAIT),
        "no warning about the torn line; log:\n{}",
        tail(&server.log())
    );
    let warning = server
        .log()
        .lines()
        .find(|l| l.contains("incomplete"))
        .unwrap()
        .to_owned();
    println!(
        "appended {} torn bytes; restart logged: {warning}",
        torn.len()
    );
    let mut client = ChatClient::join(server.addr, "after-torn");
    client.say("after the torn line", "n2");
    let msg = client.wait_for(WAIT, "own message", |v| v["nonce"] == "n2");
    assert_eq!(msg["id"].as_u64(), Some(last + 2));
    client.close();
    let lines = read_history(&file);
    let ids: Vec<u64> = lines.iter().map(|(id, _)| *id).collect();
    assert_strictly_increasing(&ids, "history file after the torn line");
    assert_eq!(ids.last(), Some(&(last + 2)));
    println!(
        "after the torn restart: file has {} valid JSON lines, last id {}",
        lines.len(),
        last + 2
    );
    drop(server);
    let _ = std::fs::remove_file(&file);
}

/// 4 senders for 3 s, --rate 0; returns messages acknowledged per second.
fn fsync_run(fsync: bool) -> f64 {
    let file = scratch(if fsync {
        "fsync.jsonl"
    } else {
        "nofsync.jsonl"
    });
    let path = file.to_str().unwrap().to_owned();
    let mut args = vec!["--history-file", &path, "--rate", "0"];
    if fsync {
        args.push("--fsync");
    }
    let mut server = Server::start(&args);
    let stop = Arc::new(AtomicBool::new(false));
    let blasters: Vec<Blaster> = (0..4)
        .map(|i| blast(server.addr, &format!("s{i}"), 32, &stop))
        .collect();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let counted: usize = blasters.iter().map(|b| b.acked.lock().unwrap().len()).sum();
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Release);
    // Let the last ones come back, then crash the server.
    std::thread::sleep(Duration::from_millis(300));
    server.kill9();
    let mut acked = Vec::new();
    for b in blasters {
        b.writer.join().unwrap();
        b.reader.join().unwrap();
        acked.extend(b.acked.lock().unwrap().iter().cloned());
    }
    let lines = read_history(&file);
    let nonces: std::collections::HashSet<&str> = lines
        .iter()
        .filter_map(|(_, v)| v["nonce"].as_str())
        .collect();
    let missing = acked
        .iter()
        .filter(|n| !nonces.contains(n.as_str()))
        .count();
    let rate = counted as f64 / elapsed.as_secs_f64();
    println!(
        "{}: {counted} messages acknowledged in {elapsed:.1?} = {rate:.0} msg/s; after SIGKILL the \
         file has {} lines; {} acknowledged in total, {missing} of them missing",
        if fsync { "--fsync" } else { "no fsync" },
        lines.len(),
        acked.len()
    );
    assert_eq!(missing, 0, "acknowledged messages missing from the file");
    let _ = std::fs::remove_file(&file);
    rate
}

#[test]
fn fsync_acknowledged_messages_are_stored() {
    let without = fsync_run(false);
    let with = fsync_run(true);
    println!(
        "throughput, 4 senders, --rate 0, 3 s: without --fsync {without:.0} msg/s, with --fsync \
         {with:.0} msg/s ({:.1}x)",
        without / with.max(1.0)
    );
}

/// A tiny tmpfs, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = scratch("tmpfs");
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Fill the file system under `dir` with a filler file.
fn fill(dir: &Path) -> u64 {
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = [0u8; 4096];
    let mut written = 0u64;
    while let Ok(n) = f.write(&block) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    let _ = f.sync_all();
    written
}

#[test]
fn full_disk_reports_storage_failed_and_broadcasts_nothing() {
    let fs = match Tmpfs::mount("64k") {
        Ok(fs) => fs,
        Err(e) => {
            println!("SKIPPED: cannot mount a tmpfs ({e}); run as root to test a full disk");
            return;
        }
    };
    let file = fs.dir.join("history.jsonl");
    let server = Server::start(&["--history-file", file.to_str().unwrap(), "--rate", "0"]);
    let mut a = ChatClient::join(server.addr, "alice");
    let mut b = ChatClient::join(server.addr, "bob");
    a.say("before the disk fills", "before");
    let first = a.wait_for(WAIT, "own message", |v| v["nonce"] == "before");
    b.wait_for(WAIT, "alice's message", |v| v["nonce"] == "before");
    let filler = fill(&fs.dir);
    println!(
        "tmpfs of 64k at {}: filled with {filler} bytes",
        fs.dir.display()
    );

    // Send until the file system refuses (the file's last page may still
    // have room for a few lines).
    let mut stored = vec![first["id"].as_u64().unwrap()];
    let mut failure = None;
    for i in 0..200 {
        let nonce = format!("n{i}");
        a.say(&format!("message {i} {}", "x".repeat(100)), &nonce);
        let v = a.wait_for(WAIT, "answer", |v| v["nonce"] == nonce.as_str());
        if v["type"] == "error" {
            failure = Some((nonce, v));
            break;
        }
        stored.push(v["id"].as_u64().unwrap());
    }
    let (nonce, error) =
        failure.expect("no storage_failed error after 200 messages on a full disk");
    println!(
        "{} more message(s) stored, then say {nonce:?} → {error}",
        stored.len() - 1
    );
    assert_eq!(error["code"], "storage_failed");
    assert!(server.wait_log("history file: cannot store", WAIT));
    let why = server
        .log()
        .lines()
        .find(|l| l.contains("history file: cannot store"))
        .unwrap()
        .to_owned();
    println!("server log: {why}");
    assert!(why.contains("No space left"), "{why}");
    // Bob gets every stored message and nothing for the failed one.
    let mut bob_got = vec![stored[0]];
    let deadline = Instant::now() + Duration::from_millis(700);
    while let Ok(v) = b.recv(deadline.saturating_duration_since(Instant::now())) {
        assert_ne!(
            v["nonce"],
            nonce.as_str(),
            "the failed message was broadcast: {v}"
        );
        if v["type"] == "message" {
            bob_got.push(v["id"].as_u64().unwrap());
        }
    }
    assert_eq!(
        bob_got, stored,
        "bob's messages differ from the stored ones"
    );
    // Space again: the next message gets the next id (the failed one used none).
    std::fs::remove_file(fs.dir.join("filler")).unwrap();
    a.say("the disk has room again", "again");
    let v = a.wait_for(WAIT, "own message", |v| v["nonce"] == "again");
    println!("after freeing space: {v}");
    assert_eq!(v["type"], "message");
    assert_eq!(v["id"].as_u64(), Some(stored.last().unwrap() + 1));
    b.wait_for(WAIT, "the message after", |v| v["nonce"] == "again");
    let lines = read_history(&file);
    let ids: Vec<u64> = lines.iter().map(|(id, _)| *id).collect();
    let mut want = stored.clone();
    want.push(stored.last().unwrap() + 1);
    assert_eq!(
        ids, want,
        "the file holds other messages than were broadcast"
    );
    println!("history file: {} valid lines, ids {:?}", lines.len(), ids);
    a.close();
    b.close();
    drop(server); // before the tmpfs is unmounted
}

#[test]
fn dev_full_as_history_file() {
    // A virtual-memory cap, so the bug cannot eat the machine's memory.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 2000000; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_wschat"));
    let started = Instant::now();
    match Server::spawn(cmd, &["--history-file", "/dev/full", "--rate", "0"]) {
        Ok(server) => {
            println!(
                "--history-file /dev/full: started in {:.1?}",
                started.elapsed()
            );
            let mut a = ChatClient::join(server.addr, "alice");
            let mut b = ChatClient::join(server.addr, "bob");
            a.say("into /dev/full", "full");
            let v = a.wait_for(WAIT, "answer", |v| v["nonce"] == "full");
            println!("say → {v}");
            assert_eq!(v["type"], "error");
            assert_eq!(v["code"], "storage_failed");
            if let Ok(v) = b.recv(Duration::from_millis(500)) {
                assert_ne!(v["nonce"], "full", "broadcast although not stored");
            }
        }
        Err(log) => {
            let summary: Vec<&str> = log
                .lines()
                .filter(|l| !l.starts_with(' ') && !l.trim().is_empty())
                .take(4)
                .collect();
            println!(
                "--history-file /dev/full: did not start ({:.1?}): {}",
                started.elapsed(),
                summary.join(" | ")
            );
            assert!(
                log.contains("cannot start") && !log.contains("memory allocation"),
                "neither a working server nor a clean refusal"
            );
        }
    }
}

#[test]
fn a_panicking_connection_does_not_take_the_server_down() {
    use clap::Parser;
    use tungstenite::Message;

    // No session grace: the panicked connection's user leaves at once.
    let cli =
        wschat::cli::Cli::parse_from(["wschat", "--addr", "127.0.0.1:0", "--session-grace", "0"]);
    let args = cli.serve;
    let mut chat = wschat::run::chat_config(&args);
    chat.panic_on = Some("boom".into());
    let running = wschat::run::start(&args, chat).expect("start");
    let addr = running.addr;

    type Client = tungstenite::WebSocket<TcpStream>;
    let connect = |name: &str| -> (Client, u64) {
        let stream = TcpStream::connect_timeout(&addr, WAIT).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        let (mut ws, _) = tungstenite::client::client(format!("ws://{addr}/"), stream)
            .unwrap_or_else(|e| panic!("handshake: {e}"));
        ws.send(Message::text(
            json!({"type": "hello", "name": name}).to_string(),
        ))
        .unwrap();
        let v = next_json(&mut ws, |v| v["type"] == "welcome");
        (ws, v["you"]["id"].as_u64().unwrap())
    };
    fn next_json(
        ws: &mut tungstenite::WebSocket<TcpStream>,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            match ws.read() {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if pred(&v) {
                        return v;
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        panic!("timed out");
    }

    let (mut a, a_id) = connect("alice");
    let (mut b, _) = connect("bob");
    next_json(&mut a, |v| v["type"] == "join");
    assert_eq!(running.open_connections(), 2);
    a.send(Message::text("boom")).unwrap();
    println!("alice (#{a_id}) sent \"boom\" (the panic hook)");
    let end = loop {
        match a.read() {
            Ok(m) if m.is_close() => break format!("Close {m:?}"),
            Ok(_) => {}
            Err(e) => break format!("error {e}"),
        }
    };
    let leave = next_json(&mut b, |v| v["type"] == "leave");
    println!("alice's connection ended ({end}); bob got {leave}");
    assert_eq!(leave["user"]["id"].as_u64(), Some(a_id));
    b.send(Message::text(
        json!({"type": "say", "text": "still here?", "nonce": "b1"}).to_string(),
    ))
    .unwrap();
    let msg = next_json(&mut b, |v| v["type"] == "message");
    assert_eq!(msg["nonce"], "b1");
    let (mut c, _) = connect("carol");
    c.send(Message::text("carol says hi")).unwrap();
    let seen_by_b = next_json(&mut b, |v| v["type"] == "message");
    let seen_by_c = next_json(&mut c, |v| v["type"] == "message");
    println!(
        "after the panic bob chats ({}), carol joins and chats ({} / {})",
        msg["text"], seen_by_b["text"], seen_by_c["text"]
    );
    assert_eq!(seen_by_b["text"], "carol says hi");
    assert_eq!(seen_by_c["text"], "carol says hi");
    let deadline = Instant::now() + WAIT;
    while running.open_connections() != 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        running.open_connections(),
        2,
        "the panicked connection's slot was not released"
    );
    running.shutdown();
    for (name, ws) in [("bob", &mut b), ("carol", &mut c)] {
        let end = loop {
            match ws.read() {
                Ok(Message::Close(frame)) => break frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(e) => panic!("{name}: {e} instead of a Close"),
            }
        };
        println!("shutdown: {name} got Close {end:?}");
        assert_eq!(end, Some(1001));
    }
}
