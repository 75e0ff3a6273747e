//! Decompression bombs: what a compressed message inflates to (RFC 7692
//! §7.2.2) is what `--max-message` limits, the limit a server must protect
//! itself with (RFC 6455 §10.4). A message that would inflate to a
//! gigabyte is failed with 1009 (RFC 6455 §7.4.1: too big to process) the
//! moment what it inflates to passes the limit, costs the server no more
//! than that limit while it is inflated, and leaves nothing behind.
//!
//! The real `wschat` binary, so that its RSS is the process's own
//! (`/proc/PID/status`: VmRSS now, VmHWM the peak since it started):
//! - one frame of about 1 MiB, RSV1 set (§6.1), that inflates to 1 GiB,
//!   sent 20 times on fresh connections (each negotiating deflate as a
//!   browser offers it) to a server with the chat's default 64 KiB
//!   messages and `--max-frame` 2 MiB, so that the bomb fits one frame:
//!   1009 every time; neither the RSS after each round nor the peak over
//!   all of them is more than 8 MiB above the RSS before; and a client that
//!   negotiated deflate too keeps chatting with compressed messages (§7.2)
//!   throughout: its round trips never fail, and at least one completes
//!   after every bomb;
//! - the same gigabyte under the default limits (64 KiB frames and
//!   messages), where it has to come as a fragmented message (§6.1: RSV1
//!   on the first frame only): 1009 after its first frame.
//!
//! DEFLATE shrinks at most about 1032 to 1, so a gigabyte takes about a
//! megabyte on the wire (here 1,043,655 bytes): hence the 2 MiB frames.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{Value, json};

use crate::support::*;

/// What a bomb inflates to.
const INFLATED: u64 = 1 << 30;
/// The first server's `--max-frame`: room for the bomb in one frame. Its
/// `--max-message` is the chat's default, 64 KiB.
const FRAME_LIMIT: usize = 2 << 20;
const RSS_MARGIN_KIB: u64 = 8 * 1024;
const ROUNDS: usize = 20;
const RSV1: u8 = 0x40;
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Raw DEFLATE (window 15, best compression) of `total` bytes of `byte`,
/// sync-flushed, its tail taken off (§7.2.1).
fn deflate_repeated(byte: u8, total: u64) -> Vec<u8> {
    let mut c = Compress::new_with_window_bits(Compression::best(), false, 15);
    let chunk = vec![byte; 1 << 20];
    let mut out = Vec::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        feed(&mut c, &chunk[..n], &mut out, FlushCompress::None);
        left -= n as u64;
    }
    feed(&mut c, &[], &mut out, FlushCompress::Sync);
    assert_eq!(
        out[out.len() - 4..],
        TAIL,
        "a sync flush ends with 00 00 ff ff"
    );
    out.truncate(out.len() - 4);
    out
}

/// Raw DEFLATE of `data` on its own, as a permessage-deflate payload.
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new_with_window_bits(Compression::best(), false, 15);
    let mut out = Vec::new();
    feed(&mut c, data, &mut out, FlushCompress::Sync);
    assert_eq!(out[out.len() - 4..], TAIL);
    out.truncate(out.len() - 4);
    out
}

/// All of `input` through `c`, and (for a sync flush) all its output.
fn feed(c: &mut Compress, mut input: &[u8], out: &mut Vec<u8>, flush: FlushCompress) {
    for _ in 0..1_000_000 {
        out.reserve(64 * 1024);
        let spare = out.capacity() - out.len();
        let before = c.total_in();
        let written = out.len();
        c.compress_vec(input, out, flush).expect("compress");
        input = &input[(c.total_in() - before) as usize..];
        let filled = out.len() - written == spare;
        if input.is_empty() && !filled {
            return;
        }
    }
    panic!("compression made no progress");
}

/// Inflate a permessage-deflate payload (§7.2.2: the tail put back).
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut d = Decompress::new_with_window_bits(false, 15);
    let mut input = [payload, &TAIL[..]].concat();
    let mut out = Vec::new();
    let mut rest = &mut input[..];
    for _ in 0..100_000 {
        out.reserve(64 * 1024);
        let before = d.total_in();
        d.decompress_vec(rest, &mut out, FlushDecompress::Sync)
            .expect("the server's compressed message inflates");
        rest = &mut rest[(d.total_in() - before) as usize..];
        if rest.is_empty() && out.len() < out.capacity() {
            return out;
        }
    }
    panic!("inflating made no progress");
}

/// The one-frame bomb, made once for every test that needs it.
fn bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| deflate_repeated(b'a', INFLATED))
}

const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits";
const AGREED: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// A WebSocket connection that negotiated permessage-deflate, as a browser
/// offers it; panics unless the 101 agrees it as wschat does (§7.1.1).
fn connect_deflate(addr: SocketAddr) -> Ws {
    let mut lines = upgrade_lines(addr);
    lines.push(OFFER.into());
    let mut stream = tcp(addr);
    stream.write_all(&head(&lines)).unwrap();
    let (head, rest) = read_head(&mut stream, Instant::now() + WAIT).expect("a 101");
    assert_eq!(status_of(&head), 101, "{head}");
    assert_eq!(
        header(&head, "Sec-WebSocket-Extensions"),
        Some(AGREED),
        "{head}"
    );
    assert!(rest.is_empty(), "bytes after the 101");
    Ws::accepted(stream)
}

/// A chat client over a deflate connection: says compressed, reads
/// inflated.
struct DeflateChatter {
    ws: Ws,
    nonce: u64,
    /// Messages received compressed (RSV1) so far.
    compressed_in: usize,
}

impl DeflateChatter {
    fn join(addr: SocketAddr, name: &str) -> DeflateChatter {
        let mut ws = connect_deflate(addr);
        ws.send_text(&json!({"type": "hello", "name": name}).to_string())
            .unwrap();
        let mut chatter = DeflateChatter {
            ws,
            nonce: 0,
            compressed_in: 0,
        };
        chatter.wait_for(|v| v["type"] == "welcome");
        chatter
    }

    fn recv(&mut self, deadline: Instant) -> Value {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let f = self
                .ws
                .read_frame(left)
                .unwrap_or_else(|e| panic!("chatter: {e:?}"));
            assert!(!f.masked, "the server masked a frame");
            match f.opcode {
                TEXT => {
                    assert!(f.fin, "the server fragments nothing here");
                    let payload = match f.rsv {
                        0 => f.payload,
                        4 => {
                            self.compressed_in += 1;
                            inflate(&f.payload)
                        }
                        rsv => panic!("RSV bits {rsv:03b}"),
                    };
                    return serde_json::from_slice(&payload).expect("JSON");
                }
                PING => self.ws.send(true, PONG, &f.payload).unwrap(),
                CLOSE => panic!("chatter closed: {:?}", f.close()),
                _ => {}
            }
        }
    }

    fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.recv(deadline);
            if pred(&v) {
                return v;
            }
        }
    }

    /// Say a compressible line of about 1,500 characters, compressed, and
    /// wait for its broadcast.
    fn round_trip(&mut self) {
        self.nonce += 1;
        let nonce = format!("n{}", self.nonce);
        let text = format!(
            "{} round trip {}",
            "all well here; ".repeat(100),
            self.nonce
        );
        let say = json!({"type": "say", "text": text, "nonce": nonce}).to_string();
        self.ws
            .send_raw(&raw_frame(0x80 | RSV1 | TEXT, &deflate(say.as_bytes())))
            .unwrap();
        let got = self.wait_for(|v| v["type"] == "message" && v["nonce"] == nonce.as_str());
        assert_eq!(got["text"], text.as_str());
    }
}

/// Send one bomb (its frames, ready to write) on a fresh deflate
/// connection: the server must answer with Close 1009 and end TCP.
fn detonate(addr: SocketAddr, frames: &[u8]) -> (u16, String) {
    let mut ws = connect_deflate(addr);
    // The server stops reading the message long before its end; it keeps
    // reading (and discarding) until our FIN, so the write completes.
    let sent = ws.send_raw(frames);
    let (code, reason, skipped) = ws.expect_close(WAIT);
    assert_eq!(skipped, 0, "frames before the Close");
    let _ = ws.send(true, CLOSE, &close_payload(code, b""));
    assert!(ws.wait_eof(WAIT).is_ok(), "TCP not closed after the 1009");
    if let Err(e) = sent {
        println!("(the write of the bomb ended with {e})");
    }
    (code, reason)
}

fn hwm_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid)).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line["VmHWM:".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_gigabyte_bomb_is_closed_with_1009_and_costs_nothing_while_others_chat() {
    let frame_limit = FRAME_LIMIT.to_string();
    let server = Server::start(&["--max-frame", &frame_limit, "--rate", "0"]);
    let addr = server.addr;
    let bomb = bomb();
    assert!(bomb.len() <= FRAME_LIMIT, "the bomb must fit one frame");
    let frame = raw_frame(0x80 | RSV1 | TEXT, bomb);

    // A client that chats with compressed messages throughout, on its own
    // thread, until told to stop.
    let mut chatter = DeflateChatter::join(addr, "chatter");
    chatter.round_trip();
    // One bomb before the baseline: the first connection with deflate
    // takes the server's first DEFLATE contexts, which its pools keep.
    assert_eq!(detonate(addr, &frame).0, 1009);
    std::thread::sleep(Duration::from_millis(300));
    let base = server.sample();
    let hwm_before = hwm_kib(&server);
    let stop = Arc::new(AtomicBool::new(false));
    let trips = Arc::new(AtomicUsize::new(0));
    let chatting = {
        let (stop, trips) = (Arc::clone(&stop), Arc::clone(&trips));
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                chatter.round_trip();
                trips.fetch_add(1, Ordering::Relaxed);
            }
            chatter
        })
    };

    println!(
        "bomb: {} bytes in one frame (RSV1, text), inflating to {} MiB of 'a'; \
         server --max-frame {FRAME_LIMIT} (messages: 64 KiB); before: RSS {} KiB, peak so far {hwm_before} KiB, {} threads",
        frame.len(),
        INFLATED >> 20,
        base.rss_kib,
        base.threads
    );
    let mut rss = Vec::new();
    for round in 0..ROUNDS {
        let before = trips.load(Ordering::Relaxed);
        let (code, reason) = detonate(addr, &frame);
        assert_eq!(code, 1009, "round {round}: {reason}");
        rss.push(server.rss_kib());
        // The chatter's round trips go on across every bomb.
        let deadline = Instant::now() + WAIT;
        while trips.load(Ordering::Relaxed) == before && !chatting.is_finished() {
            assert!(
                Instant::now() < deadline,
                "round {round}: the chatter is stuck"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
    let hwm_after = hwm_kib(&server);
    stop.store(true, Ordering::Relaxed);
    let chatter = chatting.join().expect("the chatter failed");
    let trips = trips.load(Ordering::Relaxed);
    println!(
        "{ROUNDS} bombs, each closed with 1009; RSS after each (KiB): {rss:?}; \
         peak {hwm_after} KiB; the chatter made {trips} compressed round trips meanwhile \
         ({} answers came compressed)",
        chatter.compressed_in
    );
    let worst = *rss.iter().max().unwrap();
    assert!(
        worst <= base.rss_kib + RSS_MARGIN_KIB,
        "RSS grew from {} KiB to {worst} KiB",
        base.rss_kib
    );
    assert!(
        hwm_after <= hwm_before.max(base.rss_kib + RSS_MARGIN_KIB),
        "peak RSS {hwm_after} KiB (before: {} KiB, peak {hwm_before} KiB)",
        base.rss_kib
    );
    assert!(trips >= ROUNDS, "{trips} round trips during {ROUNDS} bombs");
    assert!(
        chatter.compressed_in >= trips,
        "the broadcasts to the chatter were not compressed"
    );
    chatter.ws.close();
    server.check_healthy_with(base, 0, RSS_MARGIN_KIB, "gigabyte bombs");
}

#[test]
fn a_gigabyte_bomb_in_fragments_under_the_default_limits() {
    let server = Server::start(&[]);
    let addr = server.addr;
    let bomb = bomb();
    // 64 KiB frames (the default --max-frame is the 64 KiB --max-message),
    // RSV1 on the first only.
    let pieces: Vec<&[u8]> = bomb.chunks(60 * 1024).collect();
    let mut frames = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let fin = if i + 1 == pieces.len() { 0x80 } else { 0 };
        let (rsv, opcode) = if i == 0 { (RSV1, TEXT) } else { (0, CONT) };
        frames.extend(raw_frame(fin | rsv | opcode, piece));
    }
    assert_eq!(detonate(addr, &frames).0, 1009);
    std::thread::sleep(Duration::from_millis(300));
    let base = server.sample();
    let hwm_before = hwm_kib(&server);
    for round in 0..5 {
        let (code, reason) = detonate(addr, &frames);
        assert_eq!(code, 1009, "round {round}: {reason}");
    }
    let hwm_after = hwm_kib(&server);
    println!(
        "{} frames of at most 60 KiB ({} bytes in all) inflating to {} MiB: 1009 each of 6 times; \
         RSS {} KiB before, {} KiB after; peak {hwm_before} → {hwm_after} KiB",
        pieces.len(),
        frames.len(),
        INFLATED >> 20,
        base.rss_kib,
        server.rss_kib()
    );
    assert!(hwm_after <= hwm_before.max(base.rss_kib + RSS_MARGIN_KIB));
    server.check_healthy_with(base, 0, RSS_MARGIN_KIB, "fragmented bombs");
}
