//! loadgen: an end-to-end WebSocket load generator for wschat and its
//! benchmark peers. See benches/README.md.
//!
//! The client side of the protocol is wschat's own sans-IO codec (handshake,
//! frame encoding with masks from its `MaskSource`, `Decoder` in the client
//! role); the sockets are mio (epoll), so 10,000 connections cost one event
//! loop per `--threads`, not a thread each.
//!
//! Modes:
//! - default: open `--clients` connections, then `--senders` of them send
//!   `--rate` messages per second each (0: one in flight per sender, the
//!   next as soon as its own comes back) for `--duration` seconds; every
//!   client counts what it receives. Then a drain of at most `--drain` s.
//! - `--idle`: only open the connections, report the time to open them and
//!   the server's RSS per connection, hold them `--hold` s, close.
//! - `--churn`: `--clients` loops, each: connect, send one message, wait for
//!   it to come back, close; report connections per second.
//! - soak (the default mode with `--churners`, `--samples`, `--threads-back`
//!   and `--verdict`, as `scripts/lab/soak` runs it): paced senders and churn
//!   loops at the same time, the server's threads and RSS sampled from /proc
//!   over the whole run, and a pass/fail verdict (see `soak.rs`).
//! - `--table FILE`: read the `--json` lines of many runs and print the
//!   comparison table (medians across rounds, ratios against wschat).
//! - `--check FILE --scenarios … --servers …`: fail unless every scenario
//!   has a result for every server and wschat's are clean (see `check.rs`).
#![forbid(unsafe_code)]

mod check;
mod conn;
mod redisinfo;
mod soak;
mod sys;
mod table;
mod worker;

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use clap::Parser;
use serde_json::{Map, Value, json};

use conn::{Stats, Text};
use soak::Sampler;
use sys::Proc;
use worker::{AFTER, DRAIN, Plan, SEND, SETTLE, STOP, Shared, Target};

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    about = "WebSocket load generator (see benches/README.md)"
)]
struct Args {
    /// Server to load: ws://127.0.0.1:PORT/PATH (loopback only). Give it
    /// several times to spread the clients over several servers (the nodes
    /// of a cluster): they alternate, and with `--rooms` every room has
    /// members on every server (see `worker::target_of`).
    #[arg(long)]
    url: Vec<String>,
    /// Connections to open (churn: concurrent connect/send/close loops).
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// How many of the clients send.
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Spread the clients over this many rooms (default mode; 0: none).
    /// Client `i` names room `room-<i % rooms>` in its upgrade URL
    /// (`?room=`), so the first `rooms` clients are in a room each; a
    /// message should reach every client of its sender's room (the sender
    /// included) and no other.
    #[arg(long, default_value_t = 0)]
    rooms: usize,
    /// Messages per second per sender; 0 = as fast as possible with one
    /// message in flight per sender.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Payload size in bytes (the marker `L<id>:<seq>:<ns>:`, then `--text`).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// What follows the marker: `padding` ('x' repeated) or `chat` (JSON-like
    /// chat lines, different in every message, as compressible as real chat).
    #[arg(long, value_enum, default_value_t = Text::Padding)]
    text: Text,
    /// Offer permessage-deflate (RFC 7692) on every connection, and use it
    /// when the server accepts.
    #[arg(long)]
    deflate: bool,
    /// Length of the send phase (churn: of the whole run), seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Longest wait after the send phase for messages still on their way.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
    /// Only open the connections, measure, hold, close.
    #[arg(long)]
    idle: bool,
    /// Idle mode: how long to hold the connections open.
    #[arg(long, default_value_t = 2.0)]
    hold: f64,
    /// Connect, send one message, wait for its echo, close; repeatedly.
    #[arg(long)]
    churn: bool,
    /// Default mode: also run this many churn loops (as `--churn` does)
    /// during the send phase, beside the senders, in a thread of their own.
    #[arg(long, default_value_t = 0)]
    churners: usize,
    /// Churn: a loop starts a cycle at most once per this many seconds
    /// (0: the next one as soon as the last is done).
    #[arg(long, default_value_t = 0.0)]
    churn_period: f64,
    /// Churn: a cycle (connect, handshake, echo) not done after this many
    /// seconds fails.
    #[arg(long, default_value_t = 5.0)]
    churn_timeout: f64,
    /// With --server-pid: write the server's threads, RSS and CPU time to
    /// this CSV file every --sample-every seconds, from start to end.
    #[arg(long, value_name = "FILE")]
    samples: Option<PathBuf>,
    /// Seconds between two --samples rows.
    #[arg(long, default_value_t = 5.0)]
    sample_every: f64,
    /// With --server-pid: once every connection is closed, wait up to this
    /// many seconds for the server's thread count to come back to what it
    /// was before the first connect, then 2 s more, and report its threads
    /// and RSS (0: do not wait).
    #[arg(long, default_value_t = 0.0)]
    threads_back: f64,
    /// Default mode: judge the run as a soak (every client connected and got
    /// every message once and in order, no client closed, no error, every
    /// churn cycle completed, the server's threads back) and exit 1 unless
    /// it passed.
    #[arg(long)]
    verdict: bool,
    /// The server's PID, for its CPU time and RSS from /proc. Give it
    /// several times (a cluster's nodes and its Redis) to count them
    /// together: CPU, RSS, threads and context switches are summed, and
    /// each one's CPU is reported too (`server_cpu_s_each`).
    #[arg(long)]
    server_pid: Vec<u32>,
    /// A cluster's Redis (HOST:PORT, loopback): read `INFO stats
    /// commandstats` before the send phase and after the drain, and report
    /// its commands and reads per message sent (see `redisinfo.rs`).
    #[arg(long, value_name = "HOST:PORT")]
    redis: Option<String>,
    /// Event-loop threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Handshakes in progress at once (kept under the server's listen backlog).
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Give up waiting for all connections after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    connect_timeout: f64,
    /// A connection whose TCP connect and handshake take longer fails.
    #[arg(long, default_value_t = 10.0)]
    handshake_timeout: f64,
    /// Shortest wait after all connected before sending: wschat greets a
    /// client that sends no `hello` after 0.5 s, and that welcome, and the
    /// presence frames it causes, should not overlap the measurement.
    #[arg(long, default_value_t = 1.0)]
    settle_min: f64,
    /// Longest wait, after all connected, for the server to go quiet (no
    /// frame for 300 ms).
    #[arg(long, default_value_t = 10.0)]
    settle_max: f64,
    /// Rate 0: send the next message anyway after this long without the echo.
    #[arg(long, default_value_t = 1.0)]
    stall_timeout: f64,
    /// Also print the results as one JSON line.
    #[arg(long)]
    json: bool,
    /// KEY=VALUE copied into the JSON line (scenario, server, round, flags…).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Print the comparison table from a file of JSON lines, and exit.
    #[arg(long, value_name = "FILE")]
    table: Option<PathBuf>,
    /// Check a file of JSON lines (see `--scenarios`, `--servers`), and exit.
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
    /// With `--check`: the scenarios that must have results.
    #[arg(long, num_args = 1.., value_name = "NAME")]
    scenarios: Vec<String>,
    /// With `--check`: the servers that must have a result in every scenario.
    #[arg(long, num_args = 1.., value_name = "NAME")]
    servers: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = &args.table {
        return table::print(path);
    }
    if let Some(path) = &args.check {
        if args.scenarios.is_empty() || args.servers.is_empty() {
            eprintln!("loadgen: --check needs --scenarios and --servers");
            return ExitCode::from(2);
        }
        return check::run(path, &args.scenarios, &args.servers);
    }
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A `ws://` URL's server, which must be on this machine.
fn target(url: &str) -> Result<Target, String> {
    let (authority, path) = wschat::ws::client::split_url(url).map_err(|e| e.to_string())?;
    let addr = loopback(&authority)?;
    Ok(Target {
        addr,
        host: authority,
        path,
    })
}

fn loopback(authority: &str) -> Result<std::net::SocketAddr, String> {
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address; loadgen only loads this machine"
        ));
    }
    Ok(addr)
}

/// Each process's CPU seconds, in `--server-pid` order.
fn each_cpu(server: &Proc) -> Vec<Option<f64>> {
    server.members().iter().map(Proc::cpu_seconds).collect()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// Ok(false): the run took place, and `--verdict` failed it.
fn run(args: &Args) -> Result<bool, String> {
    if args.url.is_empty() {
        return Err("--url is required".into());
    }
    let targets = args
        .url
        .iter()
        .map(|url| target(url))
        .collect::<Result<Vec<_>, _>>()?;
    let redis = args.redis.as_deref().map(loopback).transpose()?;
    if args.clients == 0 || args.threads == 0 {
        return Err("--clients and --threads must be at least 1".into());
    }
    if (args.idle || args.churn) && args.rooms > 0 {
        return Err("--rooms is for the default mode".into());
    }
    if (args.idle || args.churn) && (args.churners > 0 || args.verdict) {
        return Err("--churners and --verdict are for the default mode".into());
    }
    if args.server_pid.is_empty() && (args.samples.is_some() || args.threads_back > 0.0) {
        return Err("--samples and --threads-back need --server-pid".into());
    }
    let senders = if args.idle || args.churn {
        0
    } else {
        args.senders.min(args.clients)
    };
    let ticks = sys::clock_ticks();
    let server = (!args.server_pid.is_empty()).then(|| {
        Proc::group(
            args.server_pid.iter().map(|p| p.to_string()).collect(),
            ticks,
        )
    });
    let me = Proc::new("self", ticks);
    let server_rss = || server.as_ref().and_then(Proc::rss_bytes);
    let server_cpu = || server.as_ref().and_then(Proc::cpu_seconds);

    let rss_before = server_rss();
    let threads_before = server.as_ref().and_then(Proc::threads);
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| {
        l.split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
    });
    let shared = Arc::new(Shared::with_rooms(args.rooms));
    let sampler = match (&args.samples, &server) {
        (Some(path), Some(server)) => Some(
            Sampler::start(
                server.clone(),
                secs(args.sample_every.max(0.1)),
                path,
                Arc::clone(&shared),
            )
            .map_err(|e| format!("{}: {e}", path.display()))?,
        ),
        _ => None,
    };
    let threads = args.threads.min(args.clients);
    let per_worker = args.connect_concurrency.div_ceil(threads).max(1);
    let workers: Vec<_> = (0..threads)
        .map(|w| {
            let plan = Plan {
                targets: targets.clone(),
                indices: (w..args.clients).step_by(threads).collect(),
                senders,
                rooms: args.rooms,
                id_base: 0,
                rate: args.rate,
                size: args.size,
                text: args.text,
                deflate: args.deflate,
                concurrency: per_worker,
                stall_timeout: secs(args.stall_timeout),
                handshake_timeout: secs(args.handshake_timeout),
                churn: args.churn,
                churn_period: secs(args.churn_period),
                churn_timeout: secs(args.churn_timeout),
            };
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("loadgen-{w}"))
                .spawn(move || worker::run(plan, shared))
                .expect("spawn worker")
        })
        .collect();
    // Churn loops beside the steady clients: their own thread and their own
    // counters (their connections are not steady clients), started and
    // stopped with the send phase.
    let churn_shared = Arc::new(Shared::new());
    let churn_workers: Vec<_> = if args.churners > 0 {
        let plan = Plan {
            targets: targets.clone(),
            indices: (0..args.churners).collect(),
            senders: 0,
            rooms: 0,
            id_base: senders,
            rate: 0.0,
            size: args.size,
            text: args.text,
            deflate: args.deflate,
            concurrency: args.churners,
            stall_timeout: secs(args.stall_timeout),
            handshake_timeout: secs(args.handshake_timeout),
            churn: true,
            churn_period: secs(args.churn_period),
            churn_timeout: secs(args.churn_timeout),
        };
        let shared = Arc::clone(&churn_shared);
        vec![
            thread::Builder::new()
                .name("loadgen-churn".into())
                .spawn(move || worker::run(plan, shared))
                .expect("spawn churn worker"),
        ]
    } else {
        Vec::new()
    };
    let set_phase = |phase| {
        shared.set_phase(phase);
        churn_shared.set_phase(phase);
    };

    let mut out = Map::new();
    for label in &args.labels {
        let (k, v) = label.split_once('=').unwrap_or((label, ""));
        out.insert(k.to_owned(), json!(v));
    }
    let mode = if args.idle {
        "idle"
    } else if args.churn {
        "churn"
    } else {
        "load"
    };
    out.insert("mode".into(), json!(mode));
    out.insert("clients".into(), json!(args.clients));
    if targets.len() > 1 {
        out.insert("nodes".into(), json!(targets.len()));
    }
    out.insert("senders".into(), json!(senders));
    if args.rooms > 0 {
        out.insert("rooms".into(), json!(args.rooms));
    }
    out.insert("rate".into(), json!(args.rate));
    out.insert("size".into(), json!(args.size));
    out.insert("threads".into(), json!(threads));
    out.insert("loadavg".into(), json!(loadavg));

    let cpu_start = me.cpu_seconds();
    let mut notes: Vec<String> = Vec::new();

    if args.churn {
        let cpu0 = server_cpu();
        let me0 = me.cpu_seconds();
        let t0 = shared.now_ns();
        shared.set_phase(SEND);
        thread::sleep(secs(args.duration));
        let cycles = shared
            .churn_cycles
            .load(std::sync::atomic::Ordering::Relaxed);
        let elapsed = (shared.now_ns() - t0) as f64 / 1e9;
        shared.set_phase(DRAIN);
        thread::sleep(secs(args.drain.min(1.5)));
        let cpu1 = server_cpu();
        let me1 = me.cpu_seconds();
        shared.set_phase(STOP);
        let stats = join(workers);
        out.insert("duration_s".into(), json!(elapsed));
        out.insert("churn_cycles".into(), json!(cycles));
        out.insert("churn_conn_per_s".into(), json!(cycles as f64 / elapsed));
        out.insert("churn_errors".into(), json!(stats.churn_errors));
        cycle_results(&mut out, &stats);
        out.insert(
            "handshake_p50_us".into(),
            us(stats.handshake.value_at_quantile(0.5)),
        );
        out.insert(
            "handshake_p99_us".into(),
            us(stats.handshake.value_at_quantile(0.99)),
        );
        if let (Some(a), Some(b)) = (cpu0, cpu1) {
            out.insert("server_cpu_s".into(), json!(b - a));
            if cycles > 0 {
                out.insert(
                    "server_cpu_us_per_conn".into(),
                    json!((b - a) * 1e6 / cycles as f64),
                );
            }
        }
        if let (Some(a), Some(b)) = (me0, me1) {
            out.insert("loadgen_cpu_s".into(), json!(b - a));
            out.insert("loadgen_cpu_frac".into(), json!((b - a) / elapsed));
        }
        out.insert("server_rss_end".into(), json!(server_rss()));
        after(
            args,
            &mut out,
            &shared,
            server.as_ref(),
            threads_before,
            sampler,
        );
        finish(args, out, &stats, notes);
        return Ok(true);
    }

    // Connect phase.
    let t_connect = shared.now_ns();
    let deadline = t_connect + (args.connect_timeout * 1e9) as u64;
    loop {
        let connected = shared.connected.load(std::sync::atomic::Ordering::Relaxed);
        let failed = shared.failed.load(std::sync::atomic::Ordering::Relaxed);
        if connected + failed >= args.clients as u64 {
            break;
        }
        if shared.now_ns() > deadline {
            notes.push(format!(
                "connect timeout: {connected} of {} connected after {} s",
                args.clients, args.connect_timeout
            ));
            break;
        }
        thread::sleep(Duration::from_millis(2));
    }
    let t_all_open = shared.now_ns();
    let rss_open = server_rss();

    // Settle: wait at least --settle-min, then until no frame arrived for
    // 300 ms (welcome and presence traffic).
    shared.set_phase(SETTLE);
    let settle_min = shared.now_ns() + (args.settle_min * 1e9) as u64;
    let settle_deadline = shared.now_ns() + (args.settle_max.max(args.settle_min) * 1e9) as u64;
    let mut last_frames = u64::MAX;
    let mut quiet_since = shared.now_ns();
    loop {
        let now = shared.now_ns();
        let frames = shared.frames.load(std::sync::atomic::Ordering::Relaxed);
        if frames != last_frames {
            last_frames = frames;
            quiet_since = now;
        } else if now - quiet_since >= 300_000_000 && now >= settle_min {
            break;
        }
        if now > settle_deadline {
            notes.push(format!(
                "server still sending after {} s of settle",
                args.settle_max
            ));
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let settle_s = (shared.now_ns() - t_all_open) as f64 / 1e9;
    let connected = shared.connected.load(std::sync::atomic::Ordering::Relaxed);
    let rss_connected = server_rss();
    let threads_connected = server.as_ref().and_then(Proc::threads);
    out.insert("connected".into(), json!(connected));
    out.insert("settle_s".into(), json!(settle_s));
    out.insert("server_rss_before".into(), json!(rss_before));
    out.insert("server_rss_open".into(), json!(rss_open));
    out.insert("server_rss_connected".into(), json!(rss_connected));
    out.insert("server_threads".into(), json!(threads_connected));
    // Per connection: growth from before connecting to the moment the last
    // handshake completed (end of the connect phase), and to after the settle.
    for (key, rss) in [
        ("server_rss_per_conn", rss_open),
        ("server_rss_per_conn_settled", rss_connected),
    ] {
        if let (Some(a), Some(b)) = (rss_before, rss)
            && connected > 0
        {
            out.insert(key.into(), json!((b as f64 - a as f64) / connected as f64));
        }
    }

    if args.idle {
        thread::sleep(secs(args.hold));
        out.insert("server_rss_end".into(), json!(server_rss()));
        shared.set_phase(STOP);
        let stats = join(workers);
        connect_results(&mut out, &stats, t_connect, t_all_open);
        after(
            args,
            &mut out,
            &shared,
            server.as_ref(),
            threads_before,
            sampler,
        );
        finish(args, out, &stats, notes);
        return Ok(true);
    }

    // Send phase, then drain.
    let cs0 = server.as_ref().and_then(Proc::context_switches);
    let split0 = server.as_ref().and_then(Proc::cpu_split);
    let redis0 = redis.map(redisinfo::snapshot).transpose()?;
    let each0 = server.as_ref().map(each_cpu);
    let cpu0 = server_cpu();
    let me0 = me.cpu_seconds();
    let t_send = shared.now_ns();
    set_phase(SEND);
    thread::sleep(secs(args.duration));
    set_phase(DRAIN);
    let t_send_end = shared.now_ns();
    let drain_deadline = t_send_end + (args.drain * 1e9) as u64;
    // Let the workers publish their last sends before comparing.
    thread::sleep(Duration::from_millis(20));
    loop {
        let sent = shared.sent.load(std::sync::atomic::Ordering::Relaxed);
        let delivered = shared.delivered.load(std::sync::atomic::Ordering::Relaxed);
        let expected = if args.rooms > 0 {
            shared.expected.load(std::sync::atomic::Ordering::Relaxed)
        } else {
            sent * connected
        };
        // Churn cycles under way are let finish too (they were started in
        // the send phase), within the same deadline.
        let churning = churn_shared
            .churn_active
            .load(std::sync::atomic::Ordering::Relaxed);
        if (delivered >= expected && churning == 0) || shared.now_ns() > drain_deadline {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let t_end = shared.now_ns();
    let cpu1 = server_cpu();
    let each1 = server.as_ref().map(each_cpu);
    let redis1 = redis.map(redisinfo::snapshot).transpose()?;
    let split1 = server.as_ref().and_then(Proc::cpu_split);
    let me1 = me.cpu_seconds();
    let rss_end = server_rss();
    let cs1 = server.as_ref().and_then(Proc::context_switches);
    set_phase(STOP);
    let mut stats = join(workers);
    if !churn_workers.is_empty() {
        let churn = join(churn_workers);
        churn_results(&mut out, &churn, args);
        for e in &churn.errors {
            stats.error(format!("churn loop: {e}"));
        }
    }
    connect_results(&mut out, &stats, t_connect, t_all_open);

    // Every message should reach every client (with rooms: every client of
    // its sender's room), the sender included: wschat and both peers send a
    // message back to its sender too.
    let expected = if args.rooms > 0 {
        stats.expected
    } else {
        stats.sent * connected
    };
    let lost = expected.saturating_sub(stats.delivered);
    let active_s = (stats.last_delivery_ns.max(t_send_end) - t_send) as f64 / 1e9;
    out.insert(
        "duration_s".into(),
        json!((t_send_end - t_send) as f64 / 1e9),
    );
    out.insert("drain_s".into(), json!((t_end - t_send_end) as f64 / 1e9));
    out.insert("sent".into(), json!(stats.sent));
    out.insert("expected".into(), json!(expected));
    out.insert("delivered".into(), json!(stats.delivered));
    out.insert("lost".into(), json!(lost));
    out.insert(
        "lost_frac".into(),
        json!(if expected > 0 {
            lost as f64 / expected as f64
        } else {
            0.0
        }),
    );
    if args.rooms > 0 {
        out.insert("wrong_room".into(), json!(stats.wrong_room));
    }
    out.insert("out_of_order".into(), json!(stats.out_of_order));
    out.insert("duplicates".into(), json!(stats.duplicates));
    out.insert("stalls".into(), json!(stats.stalls));
    out.insert("send_skipped".into(), json!(stats.send_skipped));
    out.insert("closed_by_peer".into(), json!(stats.closed_by_peer));
    out.insert(
        "deliveries_per_s".into(),
        json!(stats.delivered as f64 / active_s),
    );
    out.insert("sent_per_s".into(), json!(stats.sent as f64 / active_s));
    out.insert("deflate_accepted".into(), json!(stats.deflate_accepted));
    out.insert("wire_in_bytes".into(), json!(stats.wire_in));
    if stats.delivered > 0 {
        out.insert(
            "wire_bytes_per_delivery".into(),
            json!(stats.wire_in as f64 / stats.delivered as f64),
        );
    }
    // No latency at all when nothing arrived (not a latency of zero).
    let lat = &stats.latency;
    if !lat.is_empty() {
        for (key, q) in [
            ("latency_p50_us", 0.5),
            ("latency_p90_us", 0.9),
            ("latency_p99_us", 0.99),
            ("latency_p999_us", 0.999),
        ] {
            out.insert(key.into(), us(lat.value_at_quantile(q)));
        }
        out.insert("latency_max_us".into(), us(lat.max()));
    }
    if args.rate > 0.0 {
        out.insert(
            "send_lag_p99_us".into(),
            us(stats.send_lag.value_at_quantile(0.99)),
        );
    }
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        out.insert("server_cpu_s".into(), json!(b - a));
        if stats.delivered > 0 {
            out.insert(
                "server_cpu_us_per_delivery".into(),
                json!((b - a) * 1e6 / stats.delivered as f64),
            );
        }
        out.insert(
            "server_cpu_frac".into(),
            json!((b - a) / ((t_end - t_send) as f64 / 1e9)),
        );
    }
    out.insert("server_rss_end".into(), json!(rss_end));
    if let (Some(a), Some(b)) = (&each0, &each1)
        && a.len() > 1
    {
        let each: Vec<Value> = a
            .iter()
            .zip(b)
            .map(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => json!(b - a),
                _ => Value::Null,
            })
            .collect();
        out.insert("server_cpu_s_each".into(), json!(each));
    }
    if let (Some(a), Some(b)) = (&redis0, &redis1) {
        redisinfo::report(&mut out, a, b, stats.sent);
    }
    if let (Some((u0, s0)), Some((u1, s1))) = (split0, split1)
        && (u1 - u0) + (s1 - s0) > 0.0
    {
        out.insert(
            "server_cpu_sys_frac".into(),
            json!((s1 - s0) / ((u1 - u0) + (s1 - s0))),
        );
    }
    if let (Some(a), Some(b)) = (cs0, cs1)
        && stats.delivered > 0
    {
        out.insert("server_cswitches".into(), json!(b.saturating_sub(a)));
        out.insert(
            "server_cswitches_per_delivery".into(),
            json!(b.saturating_sub(a) as f64 / stats.delivered as f64),
        );
    }
    if let (Some(a), Some(b)) = (me0, me1) {
        out.insert("loadgen_cpu_s".into(), json!(b - a));
        out.insert(
            "loadgen_cpu_frac".into(),
            json!((b - a) / ((t_end - t_send) as f64 / 1e9)),
        );
    }
    if let (Some(a), Some(b)) = (cpu_start, me.cpu_seconds()) {
        out.insert("loadgen_cpu_total_s".into(), json!(b - a));
    }
    after(
        args,
        &mut out,
        &shared,
        server.as_ref(),
        threads_before,
        sampler,
    );
    let passed = if args.verdict {
        let failures = soak::verdict(&out);
        out.insert("passed".into(), json!(failures.is_empty()));
        out.insert("failures".into(), json!(failures));
        failures.is_empty()
    } else {
        true
    };
    finish(args, out, &stats, notes);
    Ok(passed)
}

fn churn_results(out: &mut Map<String, Value>, churn: &Stats, args: &Args) {
    out.insert("churners".into(), json!(args.churners));
    out.insert("churn_period_s".into(), json!(args.churn_period));
    out.insert("churn_cycles".into(), json!(churn.churn_cycles));
    out.insert("churn_errors".into(), json!(churn.churn_errors));
    out.insert("churn_unfinished".into(), json!(churn.churn_unfinished));
    if !churn.cycle.is_empty() {
        cycle_results(out, churn);
    }
}

/// How long a churn cycle (connect, one message, close) took: p50, p99, max.
fn cycle_results(out: &mut Map<String, Value>, stats: &Stats) {
    out.insert(
        "churn_cycle_p50_us".into(),
        us(stats.cycle.value_at_quantile(0.5)),
    );
    out.insert(
        "churn_cycle_p99_us".into(),
        us(stats.cycle.value_at_quantile(0.99)),
    );
    out.insert("churn_cycle_max_us".into(), us(stats.cycle.max()));
}

/// Once every connection is closed: the server's threads and RSS before,
/// at the peak (from the samples) and after (`--threads-back`), and the end
/// of the samples file.
fn after(
    args: &Args,
    out: &mut Map<String, Value>,
    shared: &Shared,
    server: Option<&Proc>,
    threads_before: Option<u64>,
    sampler: Option<Sampler>,
) {
    shared.set_phase(AFTER);
    let Some(server) = server else { return };
    out.insert("server_threads_before".into(), json!(threads_before));
    if args.threads_back > 0.0 {
        let t0 = shared.now_ns();
        let deadline = t0 + (args.threads_back * 1e9) as u64;
        let mut threads = server.threads();
        while let (Some(now), Some(before)) = (threads, threads_before) {
            if now <= before || shared.now_ns() > deadline {
                break;
            }
            thread::sleep(Duration::from_millis(100));
            threads = server.threads();
        }
        out.insert(
            "server_threads_back_s".into(),
            json!((shared.now_ns() - t0) as f64 / 1e9),
        );
        // Threads gone, memory freed: give the allocator a moment.
        thread::sleep(Duration::from_secs(2));
        out.insert("server_threads_after".into(), json!(server.threads()));
        out.insert("server_rss_after".into(), json!(server.rss_bytes()));
        out.insert("server_alive".into(), json!(server.alive()));
    }
    if let Some(sampler) = sampler {
        let peaks = sampler.finish();
        // A sample every few seconds can miss the peak; the readings taken
        // when everyone was connected count too.
        let peak = |key: &str, sampled: Option<u64>| {
            let seen = out.get(key).and_then(Value::as_u64);
            sampled.max(seen)
        };
        let threads_peak = peak("server_threads", peaks.threads);
        let rss_peak = peak("server_rss_connected", peaks.rss)
            .max(out.get("server_rss_open").and_then(Value::as_u64))
            .max(out.get("server_rss_end").and_then(Value::as_u64));
        out.insert("server_threads_peak".into(), json!(threads_peak));
        out.insert("server_rss_peak".into(), json!(rss_peak));
        out.insert("samples".into(), json!(peaks.rows));
    }
}

fn join(workers: Vec<thread::JoinHandle<Stats>>) -> Stats {
    let mut total = Stats::new();
    for w in workers {
        match w.join() {
            Ok(stats) => total.merge(&stats),
            Err(_) => total.error("a worker thread panicked".into()),
        }
    }
    total
}

fn us(ns: u64) -> Value {
    json!((ns as f64 / 1e3 * 10.0).round() / 10.0)
}

fn connect_results(out: &mut Map<String, Value>, stats: &Stats, t_connect: u64, t_all_open: u64) {
    let last = if stats.last_connected_ns > 0 {
        stats.last_connected_ns
    } else {
        t_all_open
    };
    out.insert(
        "open_all_s".into(),
        json!(last.saturating_sub(t_connect) as f64 / 1e9),
    );
    out.insert("connect_failed".into(), json!(stats.connect_failed));
    out.insert("other_frames".into(), json!(stats.other_frames));
    let hs = &stats.handshake;
    out.insert("handshake_p50_us".into(), us(hs.value_at_quantile(0.5)));
    out.insert("handshake_p99_us".into(), us(hs.value_at_quantile(0.99)));
    out.insert("handshake_max_us".into(), us(hs.max()));
}

fn finish(args: &Args, mut out: Map<String, Value>, stats: &Stats, notes: Vec<String>) {
    let mut notes = notes;
    if stats.connect_failed > 0 {
        notes.push(format!(
            "{} connections failed to open",
            stats.connect_failed
        ));
    }
    if let Some(frac) = out.get("loadgen_cpu_frac").and_then(Value::as_f64)
        && frac > 0.9 * args.threads.max(1) as f64
    {
        notes.push(format!(
            "loadgen used {:.0}% CPU: it may be the bottleneck",
            frac * 100.0
        ));
    }
    out.insert("errors".into(), json!(stats.errors));
    out.insert("notes".into(), json!(notes));
    print_human(&out);
    if args.json {
        println!("{}", Value::Object(out));
    }
}

fn num(out: &Map<String, Value>, key: &str) -> Option<f64> {
    out.get(key).and_then(Value::as_f64)
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |us| format!("{:.3} ms", us / 1e3))
}

fn mib(v: Option<f64>) -> String {
    v.map_or("-".into(), |b| format!("{:.1} MiB", b / (1024.0 * 1024.0)))
}

fn print_human(out: &Map<String, Value>) {
    let n = |k: &str| num(out, k);
    let s = |k: &str| out.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let mode = s("mode");
    let who = [s("scenario"), s("server")]
        .iter()
        .filter(|x| !x.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(" / ");
    if !who.is_empty() {
        println!("== {who}");
    }
    if mode == "churn" {
        println!(
            "churn: {} loops for {:.1} s: {} cycles = {:.0} connections/s, {} errors",
            n("clients").unwrap_or(0.0),
            n("duration_s").unwrap_or(0.0),
            n("churn_cycles").unwrap_or(0.0),
            n("churn_conn_per_s").unwrap_or(0.0),
            n("churn_errors").unwrap_or(0.0)
        );
        println!(
            "cycle (connect+handshake+echo): p50 {}, p99 {}, max {}; handshake p50 {}, p99 {}",
            ms(n("churn_cycle_p50_us")),
            ms(n("churn_cycle_p99_us")),
            ms(n("churn_cycle_max_us")),
            ms(n("handshake_p50_us")),
            ms(n("handshake_p99_us"))
        );
    } else {
        println!(
            "connect: {} of {} open in {:.3} s ({} failed); handshake p50 {}, p99 {}, max {}; settle {:.2} s; {} frames without a marker (welcome, presence)",
            n("connected").unwrap_or(0.0),
            n("clients").unwrap_or(0.0),
            n("open_all_s").unwrap_or(0.0),
            n("connect_failed").unwrap_or(0.0),
            ms(n("handshake_p50_us")),
            ms(n("handshake_p99_us")),
            ms(n("handshake_max_us")),
            n("settle_s").unwrap_or(0.0),
            n("other_frames").unwrap_or(0.0)
        );
        println!(
            "server RSS: before {}, all open {} ({} B/conn), after settle {} ({} B/conn), threads {}",
            mib(n("server_rss_before")),
            mib(n("server_rss_open")),
            n("server_rss_per_conn").map_or("-".into(), |b| format!("{b:.0}")),
            mib(n("server_rss_connected")),
            n("server_rss_per_conn_settled").map_or("-".into(), |b| format!("{b:.0}")),
            n("server_threads").map_or("-".into(), |t| format!("{t}"))
        );
    }
    if mode == "load" {
        let rate = n("rate").unwrap_or(0.0);
        println!(
            "send: {} senders, {}, {} B, {:.1} s (+{:.2} s drain)",
            n("senders").unwrap_or(0.0),
            if rate > 0.0 {
                format!("{rate} msg/s each")
            } else {
                "as fast as possible, 1 in flight each".into()
            },
            n("size").unwrap_or(0.0),
            n("duration_s").unwrap_or(0.0),
            n("drain_s").unwrap_or(0.0)
        );
        if let Some(rooms) = n("rooms") {
            println!(
                "rooms: {rooms} (a sender's message is expected by its room's clients only); {} deliveries to a client of another room",
                n("wrong_room").unwrap_or(0.0)
            );
        }
        println!(
            "delivered {} of {} expected ({} sent): lost {} ({:.3}%), out of order {}, duplicates {}, stalls {}, skipped {}, closed by server {}",
            n("delivered").unwrap_or(0.0),
            n("expected").unwrap_or(0.0),
            n("sent").unwrap_or(0.0),
            n("lost").unwrap_or(0.0),
            n("lost_frac").unwrap_or(0.0) * 100.0,
            n("out_of_order").unwrap_or(0.0),
            n("duplicates").unwrap_or(0.0),
            n("stalls").unwrap_or(0.0),
            n("send_skipped").unwrap_or(0.0),
            n("closed_by_peer").unwrap_or(0.0)
        );
        println!(
            "throughput: {:.0} deliveries/s ({:.0} messages/s sent); wire {:.0} B/delivery; permessage-deflate accepted on {} connections",
            n("deliveries_per_s").unwrap_or(0.0),
            n("sent_per_s").unwrap_or(0.0),
            n("wire_bytes_per_delivery").unwrap_or(0.0),
            n("deflate_accepted").unwrap_or(0.0)
        );
        println!(
            "latency: p50 {}, p90 {}, p99 {}, p99.9 {}, max {}{}",
            ms(n("latency_p50_us")),
            ms(n("latency_p90_us")),
            ms(n("latency_p99_us")),
            ms(n("latency_p999_us")),
            ms(n("latency_max_us")),
            n("send_lag_p99_us")
                .map(|l| format!(" (send lag p99 {})", ms(Some(l))))
                .unwrap_or_default()
        );
        println!(
            "server CPU: {} s = {} µs/delivery ({:.0}% of a core, {:.0}% of it in the kernel); {} context switches/delivery; RSS end {}",
            n("server_cpu_s").map_or("-".into(), |c| format!("{c:.2}")),
            n("server_cpu_us_per_delivery").map_or("-".into(), |c| format!("{c:.2}")),
            n("server_cpu_frac").unwrap_or(0.0) * 100.0,
            n("server_cpu_sys_frac").unwrap_or(0.0) * 100.0,
            n("server_cswitches_per_delivery").map_or("-".into(), |c| format!("{c:.3}")),
            mib(n("server_rss_end"))
        );
    }
    if let Some(Value::Array(each)) = out.get("server_cpu_s_each") {
        let each: Vec<String> = each
            .iter()
            .map(|c| c.as_f64().map_or("-".into(), |c| format!("{c:.2}")))
            .collect();
        println!("server CPU of each PID (s): {}", each.join(", "));
    }
    if let Some(total) = n("redis_commands_per_msg") {
        println!(
            "redis per message sent: {total:.3} commands run (those inside scripts too), {:.3} sent by the nodes, {:.3} EVALSHA, {:.3} XADD, {:.3} PUBLISH; {:.3} client reads (about the round trips)",
            n("redis_sent_per_msg").unwrap_or(0.0),
            n("redis_evalsha_per_msg").unwrap_or(0.0),
            n("redis_xadd_per_msg").unwrap_or(0.0),
            n("redis_publish_per_msg").unwrap_or(0.0),
            n("redis_reads_per_msg").unwrap_or(0.0)
        );
    }
    if mode == "load"
        && let Some(churners) = n("churners")
    {
        println!(
            "churn beside them: {churners} loops, a cycle every {} s each: {} cycles done, {} failed, {} cut short at the end; cycle p50 {}, p99 {}, max {}",
            n("churn_period_s").unwrap_or(0.0),
            n("churn_cycles").unwrap_or(0.0),
            n("churn_errors").unwrap_or(0.0),
            n("churn_unfinished").unwrap_or(0.0),
            ms(n("churn_cycle_p50_us")),
            ms(n("churn_cycle_p99_us")),
            ms(n("churn_cycle_max_us"))
        );
    }
    if out.contains_key("server_threads_peak") || out.contains_key("server_threads_after") {
        let count = |k: &str| n(k).map_or("-".into(), |t| format!("{t}"));
        println!(
            "server over the run: threads {} before, {} at the peak, {} after{}; RSS {} before, {} at the peak, {} after{}",
            count("server_threads_before"),
            count("server_threads_peak"),
            count("server_threads_after"),
            n("server_threads_back_s")
                .map(|s| format!(" (waited {s:.1} s)"))
                .unwrap_or_default(),
            mib(n("server_rss_before")),
            mib(n("server_rss_peak")),
            mib(n("server_rss_after")),
            n("samples")
                .map(|r| format!(" ({r} samples)"))
                .unwrap_or_default()
        );
    }
    if mode != "idle" {
        println!(
            "loadgen CPU: {} s ({:.0}% of a core)",
            n("loadgen_cpu_s").map_or("-".into(), |c| format!("{c:.2}")),
            n("loadgen_cpu_frac").unwrap_or(0.0) * 100.0
        );
    }
    for key in ["errors", "notes"] {
        if let Some(Value::Array(items)) = out.get(key) {
            for item in items {
                println!("{key}: {}", item.as_str().unwrap_or(""));
            }
        }
    }
    match out.get("passed").and_then(Value::as_bool) {
        Some(true) => println!("verdict: PASSED"),
        Some(false) => {
            if let Some(Value::Array(items)) = out.get("failures") {
                for item in items {
                    println!("verdict: FAILED: {}", item.as_str().unwrap_or(""));
                }
            }
        }
        None => {}
    }
}
