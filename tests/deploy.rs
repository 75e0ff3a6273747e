//! `deploy/wschat.service`: systemd accepts it, and its command line starts
//! the real binary. (`deploy/nginx.conf` runs in the browser tests,
//! `tests/e2e/proxy.test.mjs`.)

use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
use support::{ChatClient, Server, http, scratch};

const UNIT: &str = include_str!("../deploy/wschat.service");
const INSTALLED_BIN: &str = "/usr/local/bin/wschat";

/// The unit's `ExecStart=` line, split into words (it has no quotes, so
/// that this split is the one systemd makes).
fn exec_start() -> Vec<String> {
    let line = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart= line");
    assert!(
        !line.contains(['"', '\'', '\\', '$', '%']),
        "ExecStart= uses quoting or specifiers; split it as systemd does: {line}"
    );
    line.split_whitespace().map(str::to_owned).collect()
}

fn find_in_path(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|p| p.is_file())
    })
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Some(analyze) = find_in_path("systemd-analyze") else {
        println!("skipped: systemd-analyze is not installed (Debian: apt-get install systemd)");
        return;
    };
    // verify checks that ExecStart's program exists: this copy runs the
    // binary under test instead of the installed one.
    let words = exec_start();
    assert_eq!(words[0], INSTALLED_BIN);
    let unit = UNIT.replace(
        &format!("ExecStart={INSTALLED_BIN} "),
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_wschat")),
    );
    assert_ne!(unit, UNIT);
    let dir = scratch("unit");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wschat.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("systemd-analyze verify: {}, {said:?}", out.status);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{said}"
    );
    // Warnings (an unknown or misspelt setting) do not fail verify; any
    // line about our unit does here.
    let about_ours: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("wschat.service"))
        .collect();
    assert!(about_ours.is_empty(), "systemd-analyze: {about_ours:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_units_command_line_starts_the_server() {
    let words = exec_start();
    let state = scratch("state");
    std::fs::create_dir_all(&state).unwrap();
    let www = Path::new(env!("CARGO_MANIFEST_DIR")).join("www");
    // The same flags, but a free port (Server adds --addr 127.0.0.1:0), and
    // the checkout's page and a scratch state directory for the installed ones.
    let mut args = Vec::new();
    let mut rest = words[1..].iter();
    while let Some(word) = rest.next() {
        match word.as_str() {
            "--addr" => {
                assert_eq!(rest.next().map(String::as_str), Some("127.0.0.1:8080"));
            }
            "--www" => {
                assert_eq!(
                    rest.next().map(String::as_str),
                    Some("/usr/local/share/wschat/www")
                );
                args.push(word.clone());
                args.push(www.display().to_string());
            }
            w => args.push(w.replace("/var/lib/wschat", &state.display().to_string())),
        }
    }
    assert!(
        words.iter().any(|w| w == "--trust-proxy"),
        "the unit trusts its proxy: {words:?}"
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&args);
    let page = http(
        server.addr,
        format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes(),
    );
    assert_eq!(page.status, 200, "{}", page.summary());
    assert!(page.body.contains("<html"), "not the page");
    let mut alice = ChatClient::join(server.addr, "alice");
    alice.round_trip("kept in the state directory");
    alice.close();
    let history = std::fs::read_to_string(state.join("history.jsonl")).expect("history file");
    assert!(history.contains("kept in the state directory"), "{history}");
    drop(server);
    let _ = std::fs::remove_dir_all(&state);
}
