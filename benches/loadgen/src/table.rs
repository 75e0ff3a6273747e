//! `--table FILE`: the comparison table from the JSON lines of many runs.
//!
//! Rows are grouped by the `scenario` and `server` labels; each cell is the
//! median across rounds. Under each scenario, `wschat/<peer>` rows give the
//! ratio of wschat's median to the peer's, column by column.
//!
//! Scenarios named `cluster-<base>` (wschat on two nodes and Redis) get a
//! table of their own: the cluster's row, wschat's single-node row of
//! `<base>` from the same file, and `cluster/single` ratios, then a line
//! per scenario with the goals it is read against.

use std::fs;
use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

struct Column {
    title: &'static str,
    key: &'static str,
    fmt: fn(f64) -> String,
    /// Does wschat ÷ peer mean anything for this column?
    ratio: bool,
}

fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn ms(us: f64) -> String {
    if us >= 100_000.0 {
        format!("{:.0}", us / 1e3)
    } else if us >= 10_000.0 {
        format!("{:.1}", us / 1e3)
    } else {
        format!("{:.3}", us / 1e3)
    }
}

fn count(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn lost_percent(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v < 0.0001 {
        "<0.01%".into()
    } else {
        format!("{:.2}%", v * 100.0)
    }
}

fn fixed3(v: f64) -> String {
    format!("{v:.3}")
}

fn fixed2(v: f64) -> String {
    format!("{v:.2}")
}

fn kib(v: f64) -> String {
    format!("{:.1}", v / 1024.0)
}

fn percent(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

const COLUMNS: &[Column] = &[
    Column {
        title: "msg/s",
        key: "deliveries_per_s",
        fmt: rate,
        ratio: true,
    },
    Column {
        title: "p50 ms",
        key: "latency_p50_us",
        fmt: ms,
        ratio: true,
    },
    Column {
        title: "p99 ms",
        key: "latency_p99_us",
        fmt: ms,
        ratio: true,
    },
    Column {
        title: "p99.9 ms",
        key: "latency_p999_us",
        fmt: ms,
        ratio: true,
    },
    Column {
        title: "lost",
        key: "lost",
        fmt: count,
        ratio: false,
    },
    Column {
        title: "lost %",
        key: "lost_frac",
        fmt: lost_percent,
        ratio: false,
    },
    Column {
        title: "CPU µs/msg",
        key: "server_cpu_us_per_delivery",
        fmt: fixed2,
        ratio: true,
    },
    Column {
        title: "sys",
        key: "server_cpu_sys_frac",
        fmt: percent,
        ratio: false,
    },
    Column {
        title: "cs/msg",
        key: "server_cswitches_per_delivery",
        fmt: fixed3,
        ratio: true,
    },
    Column {
        title: "wire B/msg",
        key: "wire_bytes_per_delivery",
        fmt: count,
        ratio: true,
    },
    Column {
        title: "RSS/conn KiB",
        key: "server_rss_per_conn",
        fmt: kib,
        ratio: true,
    },
    Column {
        title: "open all s",
        key: "open_all_s",
        fmt: fixed2,
        ratio: true,
    },
    Column {
        title: "hs p50 ms",
        key: "handshake_p50_us",
        fmt: ms,
        ratio: true,
    },
    Column {
        title: "hs p99 ms",
        key: "handshake_p99_us",
        fmt: ms,
        ratio: true,
    },
    Column {
        title: "conn/s",
        key: "churn_conn_per_s",
        fmt: rate,
        ratio: true,
    },
    Column {
        title: "CPU µs/conn",
        key: "server_cpu_us_per_conn",
        fmt: fixed2,
        ratio: true,
    },
    Column {
        title: "settle s",
        key: "settle_s",
        fmt: fixed2,
        ratio: true,
    },
    Column {
        title: "redis cmd/msg",
        key: "redis_commands_per_msg",
        fmt: fixed3,
        ratio: false,
    },
    Column {
        title: "sent/msg",
        key: "redis_sent_per_msg",
        fmt: fixed3,
        ratio: false,
    },
    Column {
        title: "evalsha/msg",
        key: "redis_evalsha_per_msg",
        fmt: fixed3,
        ratio: false,
    },
    Column {
        title: "reads/msg",
        key: "redis_reads_per_msg",
        fmt: fixed3,
        ratio: false,
    },
    Column {
        title: "load",
        key: "loadavg",
        fmt: fixed2,
        ratio: false,
    },
    Column {
        title: "gen CPU",
        key: "loadgen_cpu_frac",
        fmt: percent,
        ratio: false,
    },
];

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

#[derive(Clone)]
struct Group {
    scenario: String,
    server: String,
    runs: Vec<serde_json::Map<String, Value>>,
}

impl Group {
    fn median(&self, key: &str) -> Option<f64> {
        median(
            self.runs
                .iter()
                .filter_map(|r| r.get(key).and_then(Value::as_f64))
                .collect(),
        )
    }
}

/// One table: a row per (scenario, server) with the medians, then the
/// `ours`/peer ratio rows; only the columns that some row has.
fn print_table(groups: &[&Group], keys: &[&str], ours: &str) {
    let columns: Vec<&Column> = keys
        .iter()
        .filter_map(|k| COLUMNS.iter().find(|c| c.key == *k))
        .filter(|c| groups.iter().any(|g| g.median(c.key).is_some()))
        .collect();
    let mut scenarios: Vec<&str> = Vec::new();
    for g in groups {
        if !scenarios.contains(&g.scenario.as_str()) {
            scenarios.push(&g.scenario);
        }
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec![
        "scenario".to_owned(),
        "server".to_owned(),
        "runs".to_owned(),
    ];
    header.extend(columns.iter().map(|c| c.title.to_owned()));
    rows.push(header);
    let mut separators = Vec::new();
    for scenario in scenarios {
        separators.push(rows.len());
        let in_scenario: Vec<&Group> = groups
            .iter()
            .copied()
            .filter(|g| g.scenario == scenario)
            .collect();
        for g in &in_scenario {
            let mut row = vec![
                g.scenario.clone(),
                g.server.clone(),
                g.runs.len().to_string(),
            ];
            for c in &columns {
                row.push(g.median(c.key).map_or("-".into(), c.fmt));
            }
            rows.push(row);
        }
        let Some(mine) = in_scenario.iter().find(|g| g.server == ours) else {
            continue;
        };
        for peer in in_scenario.iter().filter(|g| g.server != ours) {
            let mut row = vec![
                String::new(),
                format!("{ours}/{}", peer.server),
                String::new(),
            ];
            for c in &columns {
                row.push(match (mine.median(c.key), peer.median(c.key)) {
                    _ if !c.ratio => String::new(),
                    (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
                    _ => "-".into(),
                });
            }
            rows.push(row);
        }
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let rule: String = widths
        .iter()
        .map(|w| "-".repeat(*w))
        .collect::<Vec<_>>()
        .join("-+-");
    for (i, row) in rows.iter().enumerate() {
        if separators.contains(&i) {
            println!("{rule}");
        }
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(j, (cell, w))| {
                if j < 2 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        println!("{}", cells.join(" | ").trim_end());
    }
    println!("{rule}");
}

const TRAFFIC: &[&str] = &[
    "deliveries_per_s",
    "latency_p50_us",
    "latency_p99_us",
    "latency_p999_us",
    "lost",
    "lost_frac",
    "server_cpu_us_per_delivery",
    "server_cpu_sys_frac",
    "server_cswitches_per_delivery",
    "wire_bytes_per_delivery",
    "server_rss_per_conn",
    "settle_s",
    "loadavg",
    "loadgen_cpu_frac",
];

const CLUSTER: &[&str] = &[
    "deliveries_per_s",
    "latency_p50_us",
    "latency_p99_us",
    "latency_p999_us",
    "lost",
    "server_cpu_us_per_delivery",
    "server_cpu_sys_frac",
    "server_cswitches_per_delivery",
    "redis_commands_per_msg",
    "redis_sent_per_msg",
    "redis_evalsha_per_msg",
    "redis_reads_per_msg",
    "loadavg",
    "loadgen_cpu_frac",
];

/// The single-node scenario a cluster scenario is compared with.
fn cluster_base(scenario: &str) -> Option<&str> {
    scenario.strip_prefix("cluster-")
}

/// The cluster table's groups: for each `cluster-<base>` scenario, the
/// cluster's runs as server `cluster`, and wschat's runs of `<base>` as
/// server `single`, both under the cluster scenario's name.
fn cluster_groups(groups: &[Group]) -> Vec<Group> {
    let mut out = Vec::new();
    for g in groups {
        let Some(base) = cluster_base(&g.scenario) else {
            continue;
        };
        if g.server != "wschat" {
            continue;
        }
        out.push(Group {
            scenario: g.scenario.clone(),
            server: "cluster".into(),
            runs: g.runs.clone(),
        });
        if let Some(single) = groups
            .iter()
            .find(|s| s.scenario == base && s.server == "wschat")
        {
            out.push(Group {
                scenario: g.scenario.clone(),
                server: "single".into(),
                runs: single.runs.clone(),
            });
        }
    }
    out
}

/// The goals of issue 15 for one cluster scenario (reported, never
/// asserted): nothing lost, the commands the nodes sent per message
/// (≤ 0.2 in fanout: round trips per hub batch, not per message), p99
/// within 2× the single node's.
fn cluster_goals(cluster: &[Group]) -> Vec<String> {
    let mut lines = Vec::new();
    for g in cluster.iter().filter(|g| g.server == "cluster") {
        let single = cluster
            .iter()
            .find(|s| s.scenario == g.scenario && s.server == "single");
        let ratio = |key: &str| match (g.median(key), single.and_then(|s| s.median(key))) {
            (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
            _ => "-".into(),
        };
        let lost: f64 = g
            .runs
            .iter()
            .filter_map(|r| r.get("lost").and_then(Value::as_f64))
            .sum();
        let sent = g
            .median("redis_sent_per_msg")
            .map_or("-".into(), |v| format!("{v:.3}"));
        let run = g
            .median("redis_commands_per_msg")
            .map_or("-".into(), |v| format!("{v:.3}"));
        let fanout = if g.scenario == "cluster-fanout" {
            " (goal <= 0.2)"
        } else {
            ""
        };
        lines.push(format!(
            "{} goals: lost {} over {} runs (goal 0); redis commands sent by the nodes per message {sent}{fanout}, run by redis {run} (scripts' own included); \
             p99 cluster/single {} (goal <= 2); deliveries/s cluster/single {}",
            g.scenario,
            count(lost),
            g.runs.len(),
            ratio("latency_p99_us"),
            ratio("deliveries_per_s"),
        ));
    }
    lines
}

const CONNECTIONS: &[&str] = &[
    "server_rss_per_conn",
    "open_all_s",
    "handshake_p50_us",
    "handshake_p99_us",
    "churn_conn_per_s",
    "server_cpu_us_per_conn",
    "settle_s",
    "loadavg",
    "loadgen_cpu_frac",
];

pub fn print(path: &Path) -> ExitCode {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadgen: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let mut groups: Vec<Group> = Vec::new();
    for line in text.lines() {
        let Ok(Value::Object(run)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let label = |k: &str| run.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
        let (scenario, server) = (label("scenario"), label("server"));
        match groups
            .iter_mut()
            .find(|g| g.scenario == scenario && g.server == server)
        {
            Some(g) => g.runs.push(run),
            None => groups.push(Group {
                scenario,
                server,
                runs: vec![run],
            }),
        }
    }
    if groups.is_empty() {
        eprintln!("loadgen: no results in {}", path.display());
        return ExitCode::FAILURE;
    }
    let mut scenarios: Vec<String> = Vec::new();
    for g in &groups {
        if !scenarios.contains(&g.scenario) {
            scenarios.push(g.scenario.clone());
        }
    }

    let is_load = |g: &Group| {
        g.runs
            .iter()
            .any(|r| r.get("mode").and_then(Value::as_str) == Some("load"))
    };
    let traffic: Vec<&Group> = groups
        .iter()
        .filter(|g| is_load(g) && cluster_base(&g.scenario).is_none())
        .collect();
    let connections: Vec<&Group> = groups.iter().filter(|g| !is_load(g)).collect();
    let cluster = cluster_groups(&groups);
    if !traffic.is_empty() {
        println!("Traffic");
        print_table(&traffic, TRAFFIC, "wschat");
    }
    if !cluster.is_empty() {
        println!("Cluster (wschat on 2 nodes + Redis, against wschat alone in the same scenario)");
        let refs: Vec<&Group> = cluster.iter().collect();
        print_table(&refs, CLUSTER, "cluster");
    }
    if !connections.is_empty() {
        println!("Connections");
        print_table(&connections, CONNECTIONS, "wschat");
    }
    println!(
        "Medians across runs. msg/s: deliveries per second over all receivers; latency: send → receipt; \
         lost: expected (sent × clients; rooms: × the clients of the sender's room) − received after the drain; CPU µs/msg: server user+system time per delivery; \
         sys: the part of that CPU time spent in the kernel; \
         cs/msg: server context switches (all threads) per delivery, about the wake-ups a delivery costs; \
         wire B/msg: bytes a client read from the server per delivery (frames, headers, compression); \
         CPU µs/conn: the same per churn cycle (connect, one message, close); RSS/conn: server RSS growth while opening the connections, per connection; \
         settle: time after the last handshake until the server stopped sending (welcome, presence); \
         load: the machine's 1-minute load average when the run started (2 cores); \
         gen CPU: the load generator's own CPU during the send phase (100% = one core)."
    );
    if !cluster.is_empty() {
        println!(
            "Cluster: CPU µs/msg is both nodes' and Redis's CPU together, per delivery; redis cmd/msg: \
             commands Redis ran per message sent (INFO commandstats), those inside the Lua script (XADD per message, \
             HGET, HINCRBY, PUBLISH per room run) included; sent/msg: the commands the nodes sent (EVALSHA per room run, \
             notes, heartbeats); evalsha/msg: room runs per message; reads/msg: Redis's client socket reads \
             (total_reads_processed), about the round trips. cluster/single: the cluster's median ÷ wschat alone's."
        );
    }
    println!(
        "Ratios: wschat's median ÷ the peer's. Above 1 is better for msg/s and conn/s; below 1 is better for \
         latency, CPU, RSS and times."
    );

    for scenario in &scenarios {
        let flags: Vec<String> = groups
            .iter()
            .filter(|g| &g.scenario == scenario && g.server == "wschat")
            .flat_map(|g| g.runs.iter())
            .filter_map(|r| r.get("flags").and_then(Value::as_str).map(str::to_owned))
            .collect();
        if let Some(f) = flags.first() {
            println!("wschat flags raised in {scenario}: {f}");
        }
    }

    // Scale against paced: the same traffic, ten times the connections.
    let p99 = |scenario: &str, server: &str| {
        groups
            .iter()
            .find(|g| g.scenario == scenario && g.server == server)
            .and_then(|g| g.median("latency_p99_us"))
    };
    let mut servers: Vec<&str> = Vec::new();
    for g in &groups {
        if !servers.contains(&g.server.as_str()) {
            servers.push(&g.server);
        }
    }
    for server in servers {
        if let (Some(paced), Some(scale)) = (p99("paced", server), p99("scale", server)) {
            println!(
                "{server}: scale p99 {} ms vs paced p99 {} ms ({:.1}x)",
                ms(scale),
                ms(paced),
                scale / paced
            );
        }
    }

    // Rooms: the goals it is read against (reported, never asserted).
    let rooms = |server: &str| {
        groups
            .iter()
            .find(|g| g.scenario == "rooms" && g.server == server)
    };
    if let (Some(ours), Some(tokio)) = (rooms("wschat"), rooms("tokio")) {
        let ratio = |key: &str| match (ours.median(key), tokio.median(key)) {
            (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
            _ => "-".into(),
        };
        let lost: f64 = ours
            .runs
            .iter()
            .filter_map(|r| r.get("lost").and_then(Value::as_f64))
            .sum();
        println!(
            "rooms goals: wschat/tokio deliveries/s {} (goal >= 1), p99 {} (goal <= 1); wschat lost {} over {} runs (goal 0)",
            ratio("deliveries_per_s"),
            ratio("latency_p99_us"),
            count(lost),
            ours.runs.len()
        );
    }

    for line in cluster_goals(&cluster) {
        println!("{line}");
    }

    let mut noted = false;
    for g in &groups {
        for run in &g.runs {
            for key in ["notes", "errors"] {
                if let Some(Value::Array(items)) = run.get(key) {
                    for item in items {
                        if !noted {
                            println!("Notes and errors:");
                            noted = true;
                        }
                        println!(
                            "  {} / {} round {}: {}",
                            g.scenario,
                            g.server,
                            run.get("round").and_then(Value::as_str).unwrap_or("?"),
                            item.as_str().unwrap_or("")
                        );
                    }
                }
            }
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_no_rounds() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![7.0]), Some(7.0));
        assert_eq!(median(vec![]), None);
    }

    fn run(json: &str) -> serde_json::Map<String, Value> {
        match serde_json::from_str(json).unwrap() {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn cluster_rows_beside_the_single_node_of_their_base() {
        let group = |scenario: &str, server: &str, p99: f64, lost: f64| Group {
            scenario: scenario.into(),
            server: server.into(),
            runs: vec![run(&format!(
                r#"{{"latency_p99_us": {p99}, "lost": {lost}, "deliveries_per_s": 1000, "redis_sent_per_msg": 0.1}}"#
            ))],
        };
        let groups = vec![
            group("paced", "wschat", 10.0, 0.0),
            group("paced", "tokio", 50.0, 0.0),
            group("cluster-paced", "wschat", 25.0, 0.0),
            group("cluster-fanout", "wschat", 5.0, 3.0),
        ];
        let cluster = cluster_groups(&groups);
        let names: Vec<(&str, &str)> = cluster
            .iter()
            .map(|g| (g.scenario.as_str(), g.server.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("cluster-paced", "cluster"),
                ("cluster-paced", "single"),
                ("cluster-fanout", "cluster"),
            ]
        );
        let goals = cluster_goals(&cluster);
        assert!(goals[0].contains("p99 cluster/single 2.50"), "{}", goals[0]);
        assert!(goals[0].contains("lost 0 over 1 runs"), "{}", goals[0]);
        // No single-node fanout row: no ratio, and the fanout goal named.
        assert!(goals[1].contains("p99 cluster/single -"), "{}", goals[1]);
        assert!(goals[1].contains("0.100 (goal <= 0.2)"), "{}", goals[1]);
        assert!(goals[1].contains("lost 3 over"), "{}", goals[1]);
    }
}
