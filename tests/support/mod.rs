//! Shared helpers for `tests/attacks.rs`, `tests/faults.rs` and `tests/chat.rs`:
//!
//! - [`Server`]: the real `wschat` binary on port 0, with its thread count,
//!   RSS and CPU time read from `/proc/PID/`, its log captured, and a kill
//!   by PID when dropped;
//! - [`Ws`]: a raw WebSocket client over a `TcpStream`, which can send any
//!   bytes at all (that is the point) and reads server frames by hand;
//! - [`ChatClient`]: the chat protocol on top of [`Ws`].
//!
//! Every socket has read and write timeouts, and every wait has a deadline,
//! so no test can hang.
#![allow(dead_code)]

use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Default bound on a single wait (a read, a handshake).
pub const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------- process

/// A `wschat` process listening on 127.0.0.1 at a port of its choosing.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
    log: Arc<Mutex<Vec<u8>>>,
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

// ------------------------------------------------------------------- HTTP

/// A TCP connection with read and write timeouts.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    let _ = stream.set_nodelay(true);
    stream
}

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The header lines of a valid upgrade request, to be edited by a test.
pub fn upgrade_lines(addr: SocketAddr) -> Vec<String> {
    vec![
        "GET / HTTP/1.1".into(),
        format!("Host: {addr}"),
        "Upgrade: websocket".into(),
        "Connection: Upgrade".into(),
        format!("Sec-WebSocket-Key: {KEY}"),
        "Sec-WebSocket-Version: 13".into(),
    ]
}

/// Lines → a request head (CRLF line ends, blank line at the end).
pub fn head(lines: &[String]) -> Vec<u8> {
    let mut out = lines.join("\r\n");
    out.push_str("\r\n\r\n");
    out.into_bytes()
}

/// What the server answered to a request.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
    /// The server closed the connection after answering (seen EOF/reset).
    pub closed: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn summary(&self) -> String {
        let first = self.head.lines().next().unwrap_or("");
        format!("{first} | {}", self.body.trim())
    }
}

/// Read a response head (up to the blank line) before `deadline`; returns
/// the head and whatever came after it.
pub fn read_response_head(
    stream: &mut TcpStream,
    deadline: Instant,
) -> Result<(String, Vec<u8>), End> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        let n = read_some(stream, &mut chunk, deadline)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Send `request`, read the answer. For anything but 101 the body is read
/// and the server is expected to close the connection (bounded wait).
pub fn http(addr: SocketAddr, request: &[u8]) -> Response {
    let mut stream = tcp(addr);
    let _ = stream.write_all(request);
    read_response(&mut stream)
}

pub fn read_response(stream: &mut TcpStream) -> Response {
    let deadline = Instant::now() + WAIT;
    let (head, mut rest) = match read_response_head(stream, deadline) {
        Ok(ok) => ok,
        Err(e) => panic!("no response head: {e:?}"),
    };
    let status = status_of(&head);
    if status == 101 {
        return Response {
            status,
            head,
            body: String::new(),
            closed: false,
        };
    }
    let mut chunk = [0u8; 4096];
    let closed = loop {
        match read_some(stream, &mut chunk, deadline) {
            Ok(n) => rest.extend_from_slice(&chunk[..n]),
            Err(End::Eof | End::Reset(_)) => break true,
            Err(_) => break false,
        }
    };
    Response {
        status,
        head,
        body: String::from_utf8_lossy(&rest).into_owned(),
        closed,
    }
}

/// How reading ended.
#[derive(Debug)]
pub enum End {
    Eof,
    Timeout,
    /// Any other I/O error (ECONNRESET, mostly).
    Reset(io::Error),
    /// A Close frame (code, reason); only from the chat-level readers.
    Closed(u16, String),
}

fn read_some(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Result<usize, End> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(End::Timeout);
        }
        stream.set_read_timeout(Some(left)).map_err(End::Reset)?;
        match stream.read(buf) {
            Ok(0) => return Err(End::Eof),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(End::Timeout);
            }
            Err(e) => return Err(End::Reset(e)),
        }
    }
}

// -------------------------------------------------------------- WebSocket

pub const CONT: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// A fresh masking key (unpredictability does not matter to these tests).
pub fn mask_key() -> [u8; 4] {
    static NEXT: AtomicU32 = AtomicU32::new(0x9E37_79B9);
    let n = NEXT.fetch_add(0x6D2B_79F5, Ordering::Relaxed);
    let n = (n ^ (n >> 15)).wrapping_mul(0x2C1B_3C6D);
    (n ^ (n >> 12)).to_be_bytes()
}

/// A client frame: `first_byte` as given (FIN, RSV, opcode), masked, with
/// the minimal length encoding.
pub fn raw_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    let len = payload.len();
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    let key = mask_key();
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// A well-formed masked client frame.
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(if fin { 0x80 } else { 0 } | opcode, payload)
}

pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// A frame as the server sent it.
#[derive(Clone, Debug)]
pub struct Frame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    /// (code, reason) of a Close frame; 1005 when it has no code.
    pub fn close(&self) -> (u16, String) {
        if self.payload.len() < 2 {
            return (1005, String::new());
        }
        (
            u16::from_be_bytes([self.payload[0], self.payload[1]]),
            String::from_utf8_lossy(&self.payload[2..]).into_owned(),
        )
    }
}

/// Parse one frame at the start of `buf` (server frames are unmasked, but
/// a masked one is parsed too so that the test can complain about it).
pub fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    let b0 = *buf.first()?;
    let b1 = *buf.get(1)?;
    let masked = b1 & 0x80 != 0;
    let (len, mut pos) = match b1 & 0x7F {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as u64,
            4,
        ),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let key = if masked {
        let k: [u8; 4] = buf.get(pos..pos + 4)?.try_into().ok()?;
        pos += 4;
        Some(k)
    } else {
        None
    };
    let end = pos.checked_add(usize::try_from(len).ok()?)?;
    let mut payload = buf.get(pos..end)?.to_vec();
    if let Some(k) = key {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= k[i % 4];
        }
    }
    Some((
        Frame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 7,
            opcode: b0 & 0x0F,
            masked,
            payload,
        },
        end,
    ))
}

/// A raw WebSocket client connection.
pub struct Ws {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// Where unread bytes start in `buf`.
    pos: usize,
}

impl Ws {
    /// Connect and complete a valid handshake; panics otherwise.
    pub fn connect(addr: SocketAddr) -> Ws {
        let request = head(&upgrade_lines(addr));
        match Ws::handshake(addr, &request) {
            Ok(ws) => ws,
            Err(r) => panic!("handshake refused: {}", r.summary()),
        }
    }

    /// Send `request` (and anything appended to it); a 101 gives a [`Ws`].
    pub fn handshake(addr: SocketAddr, request: &[u8]) -> Result<Ws, Response> {
        let mut stream = tcp(addr);
        stream.write_all(request).expect("write request");
        Ws::after_request(stream)
    }

    pub fn after_request(mut stream: TcpStream) -> Result<Ws, Response> {
        let deadline = Instant::now() + WAIT;
        let (head_text, rest) = match read_response_head(&mut stream, deadline) {
            Ok(ok) => ok,
            Err(e) => panic!("no handshake response: {e:?}"),
        };
        if status_of(&head_text) != 101 {
            let mut response = read_response_rest(stream, head_text, rest);
            response.status = status_of(&response.head);
            return Err(response);
        }
        assert!(
            head_text.contains(ACCEPT) || !head_text.contains("Sec-WebSocket-Accept"),
            "unexpected accept: {head_text}"
        );
        Ok(Ws {
            stream,
            buf: rest,
            pos: 0,
        })
    }

    /// A second handle on the socket (for a writer thread).
    pub fn writer(&self) -> TcpStream {
        self.stream.try_clone().expect("clone socket")
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.stream.write_all(&frame(fin, opcode, payload))
    }

    pub fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.send(true, TEXT, text.as_bytes())
    }

    /// The next frame, whatever it is.
    pub fn read_frame(&mut self, timeout: Duration) -> Result<Frame, End> {
        let deadline = Instant::now() + timeout;
        let mut chunk = Vec::new();
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf[self.pos..]) {
                self.pos += used;
                if self.pos == self.buf.len() {
                    self.buf.clear();
                    self.pos = 0;
                }
                return Ok(frame);
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            if chunk.is_empty() {
                chunk = vec![0u8; 64 * 1024];
            }
            let n = read_some(&mut self.stream, &mut chunk, deadline)?;
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Skip data and ping frames until a Close; returns its code and
    /// reason, and how many frames were skipped. Panics on EOF or timeout.
    pub fn expect_close(&mut self, timeout: Duration) -> (u16, String, usize) {
        let deadline = Instant::now() + timeout;
        let mut skipped = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame(left) {
                Ok(f) if f.opcode == CLOSE => {
                    assert!(!f.masked, "the server masked a frame");
                    let (code, reason) = f.close();
                    return (code, reason, skipped);
                }
                Ok(_) => skipped += 1,
                Err(e) => panic!("expected a Close frame, got {e:?} after {skipped} frames"),
            }
        }
    }

    /// Read and discard until the server ends TCP (EOF or reset); returns
    /// how long it took. Panics if it does not happen within `timeout`.
    pub fn expect_eof(&mut self, timeout: Duration) -> Duration {
        match self.wait_eof(timeout) {
            Ok(t) => t,
            Err(frames) => panic!(
                "the server did not close TCP within {timeout:?} ({frames} frames read meanwhile)"
            ),
        }
    }

    /// Like [`Ws::expect_eof`], but `Err(frames read)` on timeout.
    pub fn wait_eof(&mut self, timeout: Duration) -> Result<Duration, usize> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut frames = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame(left) {
                Ok(_) => frames += 1,
                Err(End::Eof | End::Reset(_)) => return Ok(start.elapsed()),
                Err(End::Timeout) => return Err(frames),
                Err(End::Closed(..)) => unreachable!(),
            }
        }
    }

    /// The next text frame as JSON, answering pings on the way; a Close
    /// frame ends with `End::Closed`.
    pub fn recv_json(&mut self, timeout: Duration) -> Result<Value, End> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let f = self.read_frame(left)?;
            match f.opcode {
                TEXT => {
                    return Ok(serde_json::from_slice(&f.payload)
                        .unwrap_or_else(|e| panic!("server sent bad JSON ({e}): {}", f.text())));
                }
                PING => {
                    let _ = self.send(true, PONG, &f.payload);
                }
                CLOSE => {
                    let (code, reason) = f.close();
                    return Err(End::Closed(code, reason));
                }
                _ => {}
            }
        }
    }

    /// The closing handshake from our side, bounded; ignores failures.
    pub fn close(mut self) {
        let _ = self.send(true, CLOSE, &close_payload(1000, b"bye"));
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame(left) {
                Ok(f) if f.opcode == CLOSE => break,
                Ok(_) => {}
                Err(_) => return,
            }
        }
        let _ = self.wait_eof(WAIT);
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

fn read_response_rest(mut stream: TcpStream, head: String, mut rest: Vec<u8>) -> Response {
    let deadline = Instant::now() + WAIT;
    let mut chunk = [0u8; 4096];
    let closed = loop {
        match read_some(&mut stream, &mut chunk, deadline) {
            Ok(n) => rest.extend_from_slice(&chunk[..n]),
            Err(End::Eof | End::Reset(_)) => break true,
            Err(_) => break false,
        }
    };
    Response {
        status: 0,
        head,
        body: String::from_utf8_lossy(&rest).into_owned(),
        closed,
    }
}

// ------------------------------------------------------------------- chat

/// A chat participant.
pub struct ChatClient {
    pub ws: Ws,
    pub id: u64,
    pub name: String,
    pub welcome: Value,
    nonce: u64,
}

impl ChatClient {
    /// Connect, say hello with `name`, and wait for the welcome.
    pub fn join(addr: SocketAddr, name: &str) -> ChatClient {
        ChatClient::join_with(addr, json!({"type": "hello", "name": name}))
    }

    pub fn join_with(addr: SocketAddr, hello: Value) -> ChatClient {
        let mut ws = Ws::connect(addr);
        ws.send_text(&hello.to_string()).expect("send hello");
        let deadline = Instant::now() + WAIT;
        let welcome = loop {
            match ws.recv_json(deadline.saturating_duration_since(Instant::now())) {
                Ok(v) if v["type"] == "welcome" => break v,
                Ok(_) => {}
                Err(e) => panic!("no welcome: {e:?}"),
            }
        };
        ChatClient {
            id: welcome["you"]["id"].as_u64().expect("welcome.you.id"),
            name: welcome["you"]["name"].as_str().unwrap_or("").to_owned(),
            ws,
            welcome,
            nonce: 0,
        }
    }

    pub fn say(&mut self, text: &str, nonce: &str) {
        let msg = json!({"type": "say", "text": text, "nonce": nonce}).to_string();
        self.ws.send_text(&msg).expect("send say");
    }

    pub fn recv(&mut self, timeout: Duration) -> Result<Value, End> {
        self.ws.recv_json(timeout)
    }

    /// Skip messages until one matches; panics on timeout or close.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => {}
                Err(e) => panic!("{}: waiting for {what}: {e:?}", self.name),
            }
        }
    }

    /// Say something and wait for it to come back.
    pub fn round_trip(&mut self, text: &str) -> Duration {
        self.nonce += 1;
        let nonce = format!("{}-{}", self.name, self.nonce);
        let start = Instant::now();
        self.say(text, &nonce);
        self.wait_for(WAIT, "own message back", |v| {
            v["type"] == "message" && v["nonce"] == nonce.as_str()
        });
        start.elapsed()
    }

    pub fn close(self) {
        self.ws.close();
    }
}

/// A `say` frame, ready to write.
pub fn say_frame(text: &str, nonce: &str) -> Vec<u8> {
    frame(
        true,
        TEXT,
        json!({"type": "say", "text": text, "nonce": nonce})
            .to_string()
            .as_bytes(),
    )
}
