//! What a soak run adds to the default mode: the server's threads, RSS and
//! CPU time sampled from /proc over the whole run (`--samples`), and the
//! pass/fail verdict (`--verdict`).
//!
//! `scripts/lab/soak` runs the load generator with paced senders, churn
//! loops beside them (`--churners`), `--threads-back` and both of these.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::check;
use crate::sys::Proc;
use crate::worker::{Shared, phase_name};

/// The highest readings over a run's samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peaks {
    pub threads: Option<u64>,
    pub rss: Option<u64>,
    pub rows: u64,
}

impl Peaks {
    fn add(&mut self, threads: Option<u64>, rss: Option<u64>) {
        self.threads = self.threads.max(threads);
        self.rss = self.rss.max(rss);
        self.rows += 1;
    }
}

/// A thread that writes one CSV row about the server every `every`, from
/// `start` until `finish` (which writes a last one): seconds since the load
/// generator started, its phase, the server's threads, RSS (KiB) and CPU
/// time (s, user + system). A reading that failed (the server gone) is an
/// empty field.
pub struct Sampler {
    stop: mpsc::Sender<()>,
    handle: thread::JoinHandle<Peaks>,
}

pub const HEADER: &str = "t_s,phase,threads,rss_kib,cpu_s";

impl Sampler {
    pub fn start(
        server: Proc,
        every: Duration,
        path: &Path,
        shared: Arc<Shared>,
    ) -> io::Result<Sampler> {
        let mut file = File::create(path)?;
        writeln!(file, "{HEADER}")?;
        let (stop, stopped) = mpsc::channel();
        let handle = thread::Builder::new()
            .name("loadgen-sampler".into())
            .spawn(move || {
                let mut peaks = Peaks::default();
                let mut sample = |peaks: &mut Peaks| {
                    let (threads, rss) = (server.threads(), server.rss_bytes());
                    let line = row(
                        shared.now_ns(),
                        phase_name(shared.phase()),
                        threads,
                        rss,
                        server.cpu_seconds(),
                    );
                    // A full disk loses rows, not the run.
                    let _ = writeln!(file, "{line}");
                    peaks.add(threads, rss);
                };
                loop {
                    sample(&mut peaks);
                    match stopped.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) => {}
                        // One last row after the stop: the state at the end.
                        Ok(()) => {
                            sample(&mut peaks);
                            return peaks;
                        }
                        Err(RecvTimeoutError::Disconnected) => return peaks,
                    }
                }
            })?;
        Ok(Sampler { stop, handle })
    }

    pub fn finish(self) -> Peaks {
        let _ = self.stop.send(());
        self.handle.join().unwrap_or_default()
    }
}

fn row(
    now_ns: u64,
    phase: &str,
    threads: Option<u64>,
    rss: Option<u64>,
    cpu: Option<f64>,
) -> String {
    let field = |v: Option<String>| v.unwrap_or_default();
    format!(
        "{:.1},{phase},{},{},{}",
        now_ns as f64 / 1e9,
        field(threads.map(|t| t.to_string())),
        field(rss.map(|b| (b / 1024).to_string())),
        field(cpu.map(|c| format!("{c:.2}"))),
    )
}

fn num(run: &Map<String, Value>, key: &str) -> Option<f64> {
    run.get(key).and_then(Value::as_f64)
}

/// Everything that fails a soak run (its `--json` object), in order; empty
/// when it passed. The criteria:
/// - every steady client connected, stayed connected (none closed by the
///   server) and got every message of every sender once and in order
///   (lost = out of order = duplicates = 0), with no error, and something
///   was sent;
/// - with churn loops: at least one cycle, and every cycle completed (no
///   error, none still under way at the end);
/// - with `--threads-back`: the server is still running and its thread
///   count came back to what it was before the first connect.
pub fn verdict(run: &Map<String, Value>) -> Vec<String> {
    let mut out = check::judge(run, true);
    if num(run, "sent").unwrap_or(0.0) < 1.0 {
        out.push("nothing was sent".to_owned());
    }
    if num(run, "churners").unwrap_or(0.0) > 0.0 {
        if num(run, "churn_cycles").unwrap_or(0.0) < 1.0 {
            out.push("no churn cycle completed".to_owned());
        }
        for (key, what) in [
            ("churn_errors", "churn cycles failed"),
            (
                "churn_unfinished",
                "churn cycles were still under way at the end",
            ),
        ] {
            match num(run, key) {
                Some(0.0) => {}
                Some(v) => out.push(format!("{v} {what} ({key})")),
                None => out.push(format!("{key} missing")),
            }
        }
    }
    if run.contains_key("server_threads_after") {
        if run.get("server_alive").and_then(Value::as_bool) != Some(true) {
            out.push("the server is gone".to_owned());
        }
        let before = run.get("server_threads_before").and_then(Value::as_u64);
        let after = run.get("server_threads_after").and_then(Value::as_u64);
        match (before, after) {
            (Some(b), Some(a)) if a <= b => {}
            (Some(b), Some(a)) => out.push(format!(
                "the server's threads did not come back: {a} after, {b} before"
            )),
            _ => out.push("the server's thread count could not be read".to_owned()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(json: &str) -> Map<String, Value> {
        match serde_json::from_str(json) {
            Ok(Value::Object(m)) => m,
            other => panic!("not an object: {other:?}"),
        }
    }

    const CLEAN: &str = r#"{"mode":"load","clients":500,"connected":500,"sent":140,"delivered":70000,
        "connect_failed":0,"lost":0,"out_of_order":0,"duplicates":0,"closed_by_peer":0,"errors":[],
        "churners":4,"churn_cycles":28,"churn_errors":0,"churn_unfinished":0,
        "server_threads_before":5,"server_threads_after":5,"server_alive":true}"#;

    fn with(key: &str, value: &str) -> Map<String, Value> {
        let mut r = run(CLEAN);
        r.insert(key.into(), serde_json::from_str(value).unwrap());
        r
    }

    #[test]
    fn a_clean_soak_passes() {
        assert_eq!(verdict(&run(CLEAN)), Vec::<String>::new());
    }

    #[test]
    fn steady_clients_must_get_everything_once_and_in_order() {
        for key in [
            "lost",
            "out_of_order",
            "duplicates",
            "closed_by_peer",
            "connect_failed",
        ] {
            let found = verdict(&with(key, "3"));
            assert_eq!(found, vec![format!("{key} = 3")], "{key}");
        }
        assert_eq!(
            verdict(&with("connected", "499")),
            vec!["499 of 500 connections opened"]
        );
        assert_eq!(
            verdict(&with("errors", r#"["churn loop: EOF from server"]"#)),
            vec!["errors: churn loop: EOF from server"]
        );
        let nothing = {
            let mut r = with("sent", "0");
            r.insert("delivered".into(), 0.into());
            r
        };
        assert_eq!(
            verdict(&nothing),
            vec!["nothing delivered", "nothing was sent"]
        );
    }

    #[test]
    fn every_churn_cycle_must_complete() {
        assert_eq!(
            verdict(&with("churn_cycles", "0")),
            vec!["no churn cycle completed"]
        );
        assert_eq!(
            verdict(&with("churn_errors", "2")),
            vec!["2 churn cycles failed (churn_errors)"]
        );
        assert_eq!(
            verdict(&with("churn_unfinished", "1")),
            vec!["1 churn cycles were still under way at the end (churn_unfinished)"]
        );
        let mut no_churn = run(CLEAN);
        for key in [
            "churners",
            "churn_cycles",
            "churn_errors",
            "churn_unfinished",
        ] {
            no_churn.remove(key);
        }
        assert_eq!(verdict(&no_churn), Vec::<String>::new());
    }

    #[test]
    fn the_server_must_live_and_its_threads_come_back() {
        assert_eq!(
            verdict(&with("server_threads_after", "7")),
            vec!["the server's threads did not come back: 7 after, 5 before"]
        );
        assert_eq!(
            verdict(&with("server_threads_after", "4")),
            Vec::<String>::new()
        );
        let mut gone = with("server_threads_after", "null");
        gone.insert("server_alive".into(), false.into());
        assert_eq!(
            verdict(&gone),
            vec![
                "the server is gone",
                "the server's thread count could not be read"
            ]
        );
        // Without --threads-back there is nothing to judge about threads.
        let mut unchecked = run(CLEAN);
        unchecked.remove("server_threads_after");
        unchecked.remove("server_alive");
        assert_eq!(verdict(&unchecked), Vec::<String>::new());
    }

    #[test]
    fn sample_rows_leave_failed_readings_empty() {
        assert_eq!(
            row(
                12_345_000_000,
                "send",
                Some(505),
                Some(40 << 20),
                Some(3.256)
            ),
            "12.3,send,505,40960,3.26"
        );
        assert_eq!(row(0, "after", None, None, None), "0.0,after,,,");
        assert_eq!(
            HEADER.split(',').count(),
            row(0, "x", None, None, None).split(',').count()
        );
    }

    #[test]
    fn peaks_keep_the_highest_reading() {
        let mut p = Peaks::default();
        p.add(Some(5), Some(100));
        p.add(Some(505), None);
        p.add(None, Some(90));
        assert_eq!(
            p,
            Peaks {
                threads: Some(505),
                rss: Some(100),
                rows: 3
            }
        );
    }
}
