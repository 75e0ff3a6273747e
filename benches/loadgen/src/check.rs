//! `--check FILE`: did a benchmark run measure what it set out to?
//!
//! `scripts/bench --check` (and through it the test command) runs every
//! scenario briefly and then asks this: every scenario has a result for every
//! server, and wschat — the server under test — lost, repeated and reordered
//! nothing, refused no connection and closed none. Speed is never judged here:
//! machines are shared, and figures are for the table. The peers are judged
//! only on having been driven: the Node server loses messages under the paced
//! and scale loads by design (it has no backpressure), and that is a result.

use std::fs;
use std::path::Path;
use std::process::ExitCode;

use serde_json::{Map, Value};

/// The server whose correctness the check asserts.
const UNDER_TEST: &str = "wschat";

pub fn run(path: &Path, scenarios: &[String], servers: &[String]) -> ExitCode {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadgen: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let problems = problems(&text, scenarios, servers);
    if problems.is_empty() {
        eprintln!(
            "check: every scenario ({}) ran for every server ({}); {UNDER_TEST} lost, repeated and reordered nothing",
            scenarios.join(" "),
            servers.join(" ")
        );
        return ExitCode::SUCCESS;
    }
    for p in &problems {
        eprintln!("check: {p}");
    }
    ExitCode::FAILURE
}

/// Everything wrong with the runs in `text` (JSON lines from `--json`), in
/// the order found; empty when the run is complete and wschat's is clean.
pub fn problems(text: &str, scenarios: &[String], servers: &[String]) -> Vec<String> {
    let runs: Vec<Map<String, Value>> = text
        .lines()
        .filter_map(|line| match serde_json::from_str(line) {
            Ok(Value::Object(run)) => Some(run),
            _ => None,
        })
        .collect();
    let mut problems = Vec::new();
    for scenario in scenarios {
        for server in servers {
            let mine: Vec<&Map<String, Value>> = runs
                .iter()
                .filter(|r| label(r, "scenario") == scenario && label(r, "server") == server)
                .collect();
            if mine.is_empty() {
                problems.push(format!("{scenario} / {server}: no result"));
            }
            for run in mine {
                let round = label(run, "round");
                let what = format!("{scenario} / {server} round {round}");
                for p in judge(run, server == UNDER_TEST) {
                    problems.push(format!("{what}: {p}"));
                }
            }
        }
    }
    problems
}

fn label<'a>(run: &'a Map<String, Value>, key: &str) -> &'a str {
    run.get(key).and_then(Value::as_str).unwrap_or("?")
}

fn num(run: &Map<String, Value>, key: &str) -> Option<f64> {
    run.get(key).and_then(Value::as_f64)
}

/// What is wrong with one run. Every server must have been driven (its
/// connections opened, or churn cycles done); the server under test must
/// also be clean.
pub(crate) fn judge(run: &Map<String, Value>, under_test: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mode = label(run, "mode");
    let clients = num(run, "clients").unwrap_or(0.0);
    match mode {
        "churn" => {
            if num(run, "churn_cycles").unwrap_or(0.0) < 1.0 {
                out.push("no churn cycle completed".to_owned());
            }
        }
        "load" | "idle" => {
            let connected = num(run, "connected").unwrap_or(0.0);
            if connected < 1.0 {
                out.push("no connection opened".to_owned());
            } else if under_test && connected < clients {
                out.push(format!("{connected} of {clients} connections opened"));
            }
        }
        other => out.push(format!("unknown mode {other:?}")),
    }
    if mode == "load" && num(run, "delivered").unwrap_or(0.0) < 1.0 {
        out.push("nothing delivered".to_owned());
    }
    if !under_test {
        return out;
    }
    if let Some(errors) = run.get("errors").and_then(Value::as_array)
        && !errors.is_empty()
    {
        let errors: Vec<&str> = errors.iter().filter_map(Value::as_str).collect();
        out.push(format!("errors: {}", errors.join("; ")));
    }
    let must_be_zero: &[&str] = match mode {
        "load" => &[
            "connect_failed",
            "lost",
            "out_of_order",
            "duplicates",
            "closed_by_peer",
        ],
        "idle" => &["connect_failed"],
        _ => &["churn_errors"],
    };
    for key in must_be_zero {
        match num(run, key) {
            Some(0.0) => {}
            Some(v) => out.push(format!("{key} = {v}")),
            None => out.push(format!("{key} missing")),
        }
    }
    // Only runs with rooms count messages that reached another room.
    if mode == "load" && num(run, "rooms").is_some() {
        match num(run, "wrong_room") {
            Some(0.0) => {}
            Some(v) => out.push(format!("wrong_room = {v}")),
            None => out.push("wrong_room missing".to_owned()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    const CLEAN_LOAD: &str = r#"{"scenario":"fanout","server":"wschat","round":"1","mode":"load","clients":100,"connected":100,"delivered":5000,"connect_failed":0,"lost":0,"out_of_order":0,"duplicates":0,"closed_by_peer":0,"errors":[]}"#;
    const CLEAN_CHURN: &str = r#"{"scenario":"churn","server":"wschat","round":"1","mode":"churn","clients":10,"churn_cycles":300,"churn_errors":0,"errors":[]}"#;
    const LOSSY_PEER: &str = r#"{"scenario":"fanout","server":"node","round":"1","mode":"load","clients":100,"connected":100,"delivered":10,"connect_failed":0,"lost":4990,"out_of_order":0,"duplicates":0,"closed_by_peer":3,"errors":["connect: refused"]}"#;

    fn lines(runs: &[&str]) -> String {
        runs.join("\n")
    }

    #[test]
    fn a_complete_clean_run_passes_and_peers_may_lose_messages() {
        let text = lines(&[CLEAN_LOAD, LOSSY_PEER, CLEAN_CHURN]);
        let churn_node = CLEAN_CHURN.replace(r#""server":"wschat""#, r#""server":"node""#);
        let text = format!("{text}\n{churn_node}\nnot json\n");
        assert_eq!(
            problems(&text, &list("fanout churn"), &list("wschat node")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_missing_server_or_scenario_fails() {
        let text = lines(&[CLEAN_LOAD]);
        assert_eq!(
            problems(&text, &list("fanout churn"), &list("wschat node")),
            vec![
                "fanout / node: no result",
                "churn / wschat: no result",
                "churn / node: no result"
            ]
        );
    }

    #[test]
    fn wschat_losing_reordering_or_failing_anything_fails() {
        for (key, bad) in [
            ("lost", r#""lost":1"#),
            ("out_of_order", r#""out_of_order":2"#),
            ("duplicates", r#""duplicates":1"#),
            ("closed_by_peer", r#""closed_by_peer":1"#),
            ("connect_failed", r#""connect_failed":1"#),
        ] {
            let run = CLEAN_LOAD.replace(&format!(r#""{key}":0"#), bad);
            let found = problems(&run, &list("fanout"), &list("wschat"));
            assert_eq!(found.len(), 1, "{key}: {found:?}");
            assert!(
                found[0].starts_with("fanout / wschat round 1: "),
                "{found:?}"
            );
            assert!(found[0].contains(key), "{key}: {found:?}");
        }
        let errors = CLEAN_LOAD.replace(r#""errors":[]"#, r#""errors":["send: reset"]"#);
        assert_eq!(
            problems(&errors, &list("fanout"), &list("wschat")),
            vec!["fanout / wschat round 1: errors: send: reset"]
        );
        let partial = CLEAN_LOAD.replace(r#""connected":100"#, r#""connected":99"#);
        assert_eq!(
            problems(&partial, &list("fanout"), &list("wschat")),
            vec!["fanout / wschat round 1: 99 of 100 connections opened"]
        );
        let churn = CLEAN_CHURN.replace(r#""churn_errors":0"#, r#""churn_errors":4"#);
        assert_eq!(
            problems(&churn, &list("churn"), &list("wschat")),
            vec!["churn / wschat round 1: churn_errors = 4"]
        );
    }

    #[test]
    fn with_rooms_a_message_in_another_room_fails_wschat() {
        let rooms = CLEAN_LOAD
            .replace(r#""scenario":"fanout""#, r#""scenario":"rooms""#)
            .replace(
                r#""errors":[]"#,
                r#""errors":[],"rooms":100,"wrong_room":0"#,
            );
        assert_eq!(
            problems(&rooms, &list("rooms"), &list("wschat")),
            Vec::<String>::new()
        );
        let leak = rooms.replace(r#""wrong_room":0"#, r#""wrong_room":3"#);
        assert_eq!(
            problems(&leak, &list("rooms"), &list("wschat")),
            vec!["rooms / wschat round 1: wrong_room = 3"]
        );
        let peer = leak.replace(r#""server":"wschat""#, r#""server":"tokio""#);
        assert_eq!(
            problems(&peer, &list("rooms"), &list("tokio")),
            Vec::<String>::new()
        );
        let missing = rooms.replace(r#","wrong_room":0"#, "");
        assert_eq!(
            problems(&missing, &list("rooms"), &list("wschat")),
            vec!["rooms / wschat round 1: wrong_room missing"]
        );
    }

    #[test]
    fn a_run_that_drove_nothing_fails_for_any_server() {
        let idle = LOSSY_PEER
            .replace(r#""connected":100"#, r#""connected":0"#)
            .replace(r#""delivered":10"#, r#""delivered":0"#);
        assert_eq!(
            problems(&idle, &list("fanout"), &list("node")),
            vec![
                "fanout / node round 1: no connection opened",
                "fanout / node round 1: nothing delivered"
            ]
        );
        let stuck = CLEAN_CHURN
            .replace(r#""server":"wschat""#, r#""server":"tokio""#)
            .replace(r#""churn_cycles":300"#, r#""churn_cycles":0"#);
        assert_eq!(
            problems(&stuck, &list("churn"), &list("tokio")),
            vec!["churn / tokio round 1: no churn cycle completed"]
        );
    }

    #[test]
    fn a_missing_counter_for_wschat_is_a_problem_not_a_pass() {
        let run = CLEAN_LOAD.replace(r#""lost":0,"#, "");
        assert_eq!(
            problems(&run, &list("fanout"), &list("wschat")),
            vec!["fanout / wschat round 1: lost missing"]
        );
    }
}
