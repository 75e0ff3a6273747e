//! [`Server`]: the real `wschat` binary on port 0, with its thread count,
//! RSS and CPU time read from `/proc/PID/`, its log captured, and a kill by
//! PID when dropped.

use std::io::{self, BufRead, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::chat::ChatClient;

/// A `wschat` process listening on 127.0.0.1 at a port of its choosing.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
    log: Arc<Mutex<Vec<u8>>>,
    /// The stdout lines after the address line.
    stdout: Mutex<mpsc::Receiver<String>>,
}

/// Thread count and resident memory of the server at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub threads: usize,
    pub rss_kib: u64,
}

const LOG_CAP: usize = 8 << 20;

impl Server {
    /// Start `wschat --addr 127.0.0.1:0 ARGS...`; panics if it does not.
    pub fn start(args: &[&str]) -> Server {
        Server::try_start(args).unwrap_or_else(|e| panic!("wschat {args:?} did not start: {e}"))
    }

    pub fn try_start(args: &[&str]) -> Result<Server, String> {
        Server::spawn(Command::new(env!("CARGO_BIN_EXE_wschat")), args)
    }

    /// Start `cmd` (the binary, or a shell that execs it) with `--addr
    /// 127.0.0.1:0 ARGS...`, and wait up to 10 s for the line with its
    /// address. `Err` carries the exit status and log if it never came.
    pub fn spawn(mut cmd: Command, args: &[&str]) -> Result<Server, String> {
        cmd.arg("--addr")
            .arg("127.0.0.1:0")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if std::env::var_os("RUST_LOG").is_none() && !cmd.get_envs().any(|(k, _)| k == "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
        let pid = child.id();
        let log = Arc::new(Mutex::new(Vec::new()));
        // Drain both pipes for the whole life of the process: a full pipe
        // would block the server's logging.
        let mut stderr = child.stderr.take().expect("stderr piped");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut log = sink.lock().unwrap();
                if log.len() < LOG_CAP {
                    log.extend_from_slice(&buf[..n]);
                }
            }
        });
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let log_text =
            |log: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    if let Some(addr) = parse_addr(&line) {
                        let server = Server {
                            child,
                            addr,
                            pid,
                            log,
                            stdout: Mutex::new(rx),
                        };
                        server.settle();
                        return Ok(server);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        std::thread::sleep(Duration::from_millis(100));
                        return Err(format!("exited with {status}; log:\n{}", log_text(&log)));
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(format!(
                            "no address line within 10 s; log:\n{}",
                            log_text(&log)
                        ));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = wait_exit(&mut child, Duration::from_secs(5));
                    std::thread::sleep(Duration::from_millis(100));
                    return Err(format!(
                        "stdout closed, exit {status:?}; log:\n{}",
                        log_text(&log)
                    ));
                }
            }
        }
    }

    /// The signal-handler thread starts just after the address line: wait
    /// until the thread count is steady, so that samples compare.
    fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut last = self.threads();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.threads();
            if now == last && now >= 4 {
                return;
            }
            last = now;
        }
    }

    /// Everything the server logged so far (stderr).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// The next line on stdout after the address line that contains
    /// `needle`, waiting for it up to `timeout`.
    pub fn stdout_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let lines = self.stdout.lock().unwrap();
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Wait (bounded) until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn status_field(&self, name: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    }

    pub fn threads(&self) -> usize {
        self.status_field("Threads:").unwrap_or(0) as usize
    }

    pub fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS:").unwrap_or(0)
    }

    /// User + system CPU time in clock ticks (1/100 s).
    pub fn cpu_ticks(&self) -> u64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return 0;
        };
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        field(11).unwrap_or(0) + field(12).unwrap_or(0)
    }

    /// Alive, and not a zombie.
    pub fn is_alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .map(|s| {
                s.lines()
                    .find(|l| l.starts_with("State:"))
                    .is_some_and(|l| !l.contains('Z') && !l.contains('X'))
            })
            .unwrap_or(false)
    }

    pub fn sample(&self) -> Sample {
        Sample {
            threads: self.threads(),
            rss_kib: self.rss_kib(),
        }
    }

    /// Poll (bounded) until the thread count is at most `max`; returns the
    /// last count seen.
    pub fn wait_threads_at_most(&self, max: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.threads();
            if n <= max || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL (`Child::kill` is `kill -9` on Unix), and reap.
    pub fn kill9(&mut self) -> Option<ExitStatus> {
        let _ = self.child.kill();
        wait_exit(&mut self.child, Duration::from_secs(5))
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The end of every attack: the process is alive, its threads come back
    /// to `base` (+ `extra` still expected), RSS stayed within 48 MiB of
    /// `base`, and a new client can join and chat.
    pub fn check_healthy(&self, base: Sample, what: &str) {
        self.check_healthy_with(base, 0, 48 * 1024, what);
    }

    pub fn check_healthy_with(&self, base: Sample, extra: usize, rss_margin_kib: u64, what: &str) {
        assert!(
            self.is_alive(),
            "{what}: the server died; log:\n{}",
            tail(&self.log())
        );
        let threads = self.wait_threads_at_most(base.threads + extra, Duration::from_secs(15));
        let rss = self.rss_kib();
        println!(
            "[{what}] after: threads {threads} (start {} + {extra} expected), RSS {} KiB (start {} KiB)",
            base.threads, rss, base.rss_kib
        );
        assert!(
            threads <= base.threads + extra,
            "{what}: thread count did not come back: {threads} > {} + {extra}",
            base.threads
        );
        assert!(
            rss <= base.rss_kib + rss_margin_kib,
            "{what}: RSS grew from {} KiB to {rss} KiB (margin {rss_margin_kib} KiB)",
            base.rss_kib
        );
        let mut checker = ChatClient::join(self.addr, "health-check");
        let rtt = checker.round_trip("is anyone there?");
        println!("[{what}] a normal client still joins and chats (round trip {rtt:.2?})");
        checker.close();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = wait_exit(&mut self.child, Duration::from_secs(5));
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `wschat: chat server on http://127.0.0.1:PORT/ ...` → the address.
fn parse_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("http://")? + 7..];
    rest[..rest.find('/')?].parse().ok()
}

/// The last lines of a log, for assertion messages.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A file path under cargo's scratch directory for integration tests,
/// removed first.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}
