//! `--redis HOST:PORT`: what a cluster's Redis did over the measured
//! interval, from `INFO stats commandstats` read before the send phase and
//! after the drain (a tiny RESP exchange over its own connection; loopback
//! only).
//!
//! What is counted:
//! - `commandstats` counts every command Redis executed, **including the
//!   ones a Lua script ran** (`redis.call` inside `EVALSHA`): wschat's
//!   numbering script runs `HGET`, `HINCRBY`, one `XADD` per message and one
//!   `PUBLISH` per room run (plus `TIME` and `HSET` when it starts a room),
//!   so this total is at least 1 per message by construction.
//! - `total_commands_processed` counts the same (scripts' commands too), so
//!   it cannot tell them apart. The commands the nodes *sent* are therefore
//!   the total less what the script ran: `XADD`, `HINCRBY`, `HGET`, `TIME`
//!   (none of which a node sends itself), as many `HSET`s as `TIME`s, and one
//!   `PUBLISH` per `EVALSHA`. What is left is the `EVALSHA`s and the nodes'
//!   own commands (notes: `PUBLISH`, `HSET`, `HDEL`, `PEXPIRE`; the
//!   subscriber's `PING`s and catch-up reads).
//! - `total_reads_processed` counts the reads Redis made from client
//!   sockets: a pipeline that arrives at once is one read, so this is about
//!   the round trips the nodes made (at least one per round trip; a large
//!   pipeline can take more than one read).
//!
//! Our own `INFO` is left out of every figure.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{Map, Value, json};

/// Counters read from one `INFO`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// `cmdstat_<name>` → calls.
    pub calls: BTreeMap<String, u64>,
    pub reads: u64,
}

pub fn snapshot(addr: SocketAddr) -> Result<Snapshot, String> {
    let timeout = Duration::from_secs(2);
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("redis {addr}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).ok();
    stream.set_write_timeout(Some(timeout)).ok();
    stream
        .write_all(b"*3\r\n$4\r\nINFO\r\n$5\r\nstats\r\n$12\r\ncommandstats\r\n")
        .map_err(|e| format!("redis {addr}: {e}"))?;
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    reader
        .read_line(&mut head)
        .map_err(|e| format!("redis {addr}: {e}"))?;
    let len: usize = head
        .strip_prefix('$')
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("redis {addr}: unexpected answer to INFO: {}", head.trim()))?;
    let mut body = vec![0; len];
    reader
        .read_exact(&mut body)
        .map_err(|e| format!("redis {addr}: {e}"))?;
    Ok(parse(&String::from_utf8_lossy(&body)))
}

pub fn parse(info: &str) -> Snapshot {
    let mut snap = Snapshot::default();
    for line in info.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("cmdstat_") {
            let Some((name, fields)) = rest.split_once(':') else {
                continue;
            };
            let calls = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))
                .and_then(|n| n.parse().ok());
            if let Some(calls) = calls {
                snap.calls.insert(name.to_owned(), calls);
            }
        } else if let Some(n) = line.strip_prefix("total_reads_processed:") {
            snap.reads = n.parse().unwrap_or(0);
        }
    }
    snap
}

/// What happened between two snapshots, per message sent, into `out`.
pub fn report(out: &mut Map<String, Value>, before: &Snapshot, after: &Snapshot, sent: u64) {
    let mut delta: BTreeMap<String, u64> = BTreeMap::new();
    for (name, &calls) in &after.calls {
        // Our own INFO is not the cluster's work.
        if name == "info" {
            continue;
        }
        let d = calls.saturating_sub(before.calls.get(name).copied().unwrap_or(0));
        if d > 0 {
            delta.insert(name.clone(), d);
        }
    }
    let of = |name: &str| delta.get(name).copied().unwrap_or(0);
    let total: u64 = delta.values().sum();
    let time = of("time");
    let in_script = of("xadd")
        + of("hincrby")
        + of("hget")
        + time
        + of("hset").min(time)
        + of("publish").min(of("evalsha"));
    let sent_by_nodes = total.saturating_sub(in_script);
    // The second INFO's own read is counted in `after`.
    let reads = after.reads.saturating_sub(before.reads).saturating_sub(1);
    out.insert("redis_commands".into(), json!(total));
    out.insert("redis_commands_sent".into(), json!(sent_by_nodes));
    out.insert("redis_evalsha".into(), json!(of("evalsha")));
    out.insert("redis_reads".into(), json!(reads));
    out.insert("redis_calls".into(), json!(delta));
    if sent > 0 {
        let per = |n: u64| json!(n as f64 / sent as f64);
        out.insert("redis_commands_per_msg".into(), per(total));
        out.insert("redis_sent_per_msg".into(), per(sent_by_nodes));
        out.insert("redis_evalsha_per_msg".into(), per(of("evalsha")));
        out.insert("redis_xadd_per_msg".into(), per(of("xadd")));
        out.insert("redis_publish_per_msg".into(), per(of("publish")));
        out.insert("redis_reads_per_msg".into(), per(reads));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "# Stats\r\ntotal_commands_processed:10\r\ntotal_reads_processed:7\r\n\
        # Commandstats\r\ncmdstat_info:calls=1,usec=5,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_ping:calls=2,usec=1,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\n";
    // 10 messages in 2 room runs, one of them starting its room; a
    // heartbeat (PEXPIRE + PUBLISH) and a PING.
    const AFTER: &str = "# Stats\r\ntotal_reads_processed:12\r\n# Commandstats\r\n\
        cmdstat_info:calls=2,usec=5,usec_per_call=5.00\r\n\
        cmdstat_ping:calls=3,usec=1\r\n\
        cmdstat_evalsha:calls=2,usec=100\r\n\
        cmdstat_hget:calls=2\r\ncmdstat_hincrby:calls=2\r\ncmdstat_time:calls=1\r\n\
        cmdstat_hset:calls=1\r\ncmdstat_xadd:calls=10\r\ncmdstat_publish:calls=3\r\n\
        cmdstat_pexpire:calls=1\r\n";

    #[test]
    fn parses_info() {
        let s = parse(BEFORE);
        assert_eq!(s.reads, 7);
        assert_eq!(s.calls.get("info"), Some(&1));
        assert_eq!(s.calls.get("ping"), Some(&2));
    }

    #[test]
    fn separates_what_the_script_ran() {
        let mut out = Map::new();
        report(&mut out, &parse(BEFORE), &parse(AFTER), 10);
        let n = |k: &str| out.get(k).and_then(Value::as_f64).unwrap();
        // 2 evalsha + 2 hget + 2 hincrby + 1 time + 1 hset + 10 xadd + 3
        // publish + 1 pexpire + 1 ping = 23, info left out.
        assert_eq!(n("redis_commands"), 23.0);
        // Sent: 2 evalsha, 1 publish, 1 pexpire, 1 ping.
        assert_eq!(n("redis_commands_sent"), 5.0);
        assert_eq!(n("redis_sent_per_msg"), 0.5);
        assert_eq!(n("redis_evalsha_per_msg"), 0.2);
        assert_eq!(n("redis_xadd_per_msg"), 1.0);
        // 5 reads, less our second INFO's.
        assert_eq!(n("redis_reads"), 4.0);
    }
}
