//! One client connection as a non-blocking state machine: TCP connect, the
//! opening handshake, then frames, all with wschat's sans-IO codec.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use wschat::http::{HeadLimits, HeadScanner};
use wschat::ws::deflate;
use wschat::ws::extension::{Encoder, encode_message};
use wschat::ws::frame::{close_payload, encode_frame};
use wschat::ws::handshake;
use wschat::ws::handshake::ExtensionOffer;
use wschat::ws::mask::MaskSource;
use wschat::ws::{Decoder, Event, Limits, Message, OpCode, Role};

/// Histograms hold nanoseconds, from 1 ns to 100 s, to 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// Everything one worker counts. Workers' stats are merged at the end.
#[derive(Clone, Debug)]
pub struct Stats {
    pub handshake: Histogram<u64>,
    pub latency: Histogram<u64>,
    /// How late a paced send went out against its schedule.
    pub send_lag: Histogram<u64>,
    /// Churn: connect + handshake + one message echoed back.
    pub cycle: Histogram<u64>,
    pub sent: u64,
    /// With rooms: the deliveries the messages sent should make, each
    /// message counted once per client of its sender's room (the sender too).
    pub expected: u64,
    pub delivered: u64,
    /// With rooms: messages that reached a client of another room (not
    /// counted as deliveries).
    pub wrong_room: u64,
    pub out_of_order: u64,
    pub duplicates: u64,
    /// Frames with a payload marker from no known sender (or a stale churn one).
    pub unknown: u64,
    /// Frames without a payload marker (welcome, join, leave, …).
    pub other_frames: u64,
    /// Rate 0: a sender's own message did not come back in time; it sent the next one.
    pub stalls: u64,
    /// Paced: the sender's socket had too much unsent data; this send was skipped.
    pub send_skipped: u64,
    pub connect_failed: u64,
    /// Connections the server closed (or reset) before the end.
    pub closed_by_peer: u64,
    pub churn_cycles: u64,
    pub churn_errors: u64,
    /// Churn: cycles still under way when the run stopped (neither done nor
    /// failed: the drain ended first).
    pub churn_unfinished: u64,
    pub last_connected_ns: u64,
    pub last_delivery_ns: u64,
    /// Connections whose server accepted permessage-deflate.
    pub deflate_accepted: u64,
    /// Bytes read from the servers while deliveries were counted: the
    /// wire's cost of them, frame headers and compression included.
    pub wire_in: u64,
    pub errors: Vec<String>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            handshake: histogram(),
            latency: histogram(),
            send_lag: histogram(),
            cycle: histogram(),
            sent: 0,
            expected: 0,
            delivered: 0,
            wrong_room: 0,
            out_of_order: 0,
            duplicates: 0,
            unknown: 0,
            other_frames: 0,
            stalls: 0,
            send_skipped: 0,
            connect_failed: 0,
            closed_by_peer: 0,
            churn_cycles: 0,
            churn_errors: 0,
            churn_unfinished: 0,
            last_connected_ns: 0,
            last_delivery_ns: 0,
            deflate_accepted: 0,
            wire_in: 0,
            errors: Vec::new(),
        }
    }

    pub fn error(&mut self, what: String) {
        if self.errors.len() < 5 {
            self.errors.push(what);
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        self.handshake.add(&other.handshake).ok();
        self.latency.add(&other.latency).ok();
        self.send_lag.add(&other.send_lag).ok();
        self.cycle.add(&other.cycle).ok();
        self.sent += other.sent;
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.wrong_room += other.wrong_room;
        self.out_of_order += other.out_of_order;
        self.duplicates += other.duplicates;
        self.unknown += other.unknown;
        self.other_frames += other.other_frames;
        self.stalls += other.stalls;
        self.send_skipped += other.send_skipped;
        self.connect_failed += other.connect_failed;
        self.closed_by_peer += other.closed_by_peer;
        self.churn_cycles += other.churn_cycles;
        self.churn_errors += other.churn_errors;
        self.churn_unfinished += other.churn_unfinished;
        self.last_connected_ns = self.last_connected_ns.max(other.last_connected_ns);
        self.last_delivery_ns = self.last_delivery_ns.max(other.last_delivery_ns);
        self.deflate_accepted += other.deflate_accepted;
        self.wire_in += other.wire_in;
        for e in &other.errors {
            self.error(e.clone());
        }
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

/// Where a delivery falls in its sender's sequence, as one receiver sees it.
///
/// Every sender numbers its messages 0, 1, 2, …, and a chat server must
/// deliver each to every client once and in its sender's order. A gap is not
/// an error here: what never arrives shows up as `expected − delivered`.
#[derive(Debug, PartialEq, Eq)]
pub enum Order {
    /// After everything seen so far from this sender (possibly past a gap).
    Next,
    /// The same number as the last one seen from this sender.
    Duplicate,
    /// Older than the last one seen: it was overtaken (or is an old duplicate).
    Late,
}

/// One receiving connection's view of every sender's sequence.
#[derive(Debug, Default)]
pub struct SeqTracker {
    /// Per sender: one more than the highest number seen (0: none yet).
    next: Vec<u64>,
}

impl SeqTracker {
    /// `sender` must be below `senders` (callers drop unknown markers first).
    pub fn record(&mut self, senders: usize, sender: u32, seq: u64) -> Order {
        if self.next.len() < senders {
            self.next.resize(senders, 0);
        }
        let next = &mut self.next[sender as usize];
        if seq + 1 > *next {
            *next = seq + 1;
            Order::Next
        } else if seq + 1 == *next {
            Order::Duplicate
        } else {
            Order::Late
        }
    }
}

/// What a worker passes to a connection's handlers.
pub struct Ctx<'a> {
    pub stats: &'a mut Stats,
    /// What a message's text is made of.
    pub text: Text,
    pub keys: &'a mut MaskSource,
    pub base: std::time::Instant,
    /// Sender ids are `0..senders`; markers with other ids are not counted.
    pub senders: usize,
    /// Rooms the clients are spread over (0: none, everyone in one); sender
    /// `id` is in room `id % rooms`.
    pub rooms: usize,
    /// Count deliveries only while this is set (send and drain phases).
    pub counting: bool,
    /// Data frames received, marker or not (to see when the server is quiet).
    pub frames: u64,
}

impl Ctx<'_> {
    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Connecting,
    Handshaking,
    Open,
    /// We sent a Close; waiting for the server to close TCP.
    Closing,
}

/// What an event reported ready on a connection.
#[derive(Clone, Copy, Debug)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
    /// The peer's FIN (or an error) was already there when the event fired.
    pub read_closed: bool,
}

/// What a handler call changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Nothing,
    /// The handshake completed.
    Connected,
    /// Connect or handshake failed.
    Failed(String),
    /// The connection is over (EOF, reset, protocol error after opening).
    Closed(String),
}

/// A connection that sends messages.
#[derive(Debug)]
pub struct SenderState {
    pub id: u32,
    pub next_seq: u64,
    /// Rate 0 (and churn): the message whose echo we wait for, and when it went out.
    pub in_flight: Option<(u64, u64)>,
    /// Paced: when the next message is due.
    pub next_due_ns: u64,
    /// Own messages that came back on this connection.
    pub echoed: u64,
    /// With rooms: how many clients each of its messages should reach (its
    /// room's connected clients, itself included), set when sending starts.
    pub audience: u64,
}

pub struct Conn {
    stream: TcpStream,
    pub state: State,
    pub started_ns: u64,
    decoder: Decoder,
    scanner: HeadScanner,
    head: Vec<u8>,
    expected_accept: String,
    /// The permessage-deflate offer made, if any (`--deflate`).
    offered: Option<ExtensionOffer>,
    /// permessage-deflate's sending half, once the server accepted it.
    encoder: Option<Arc<dyn Encoder>>,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    order: SeqTracker,
    pub sender: Option<SenderState>,
    /// With rooms: the room this client joined (named in its upgrade URL).
    pub room: Option<u32>,
    request: Vec<u8>,
    /// The last read stopped at its budget, not at `WouldBlock`: with
    /// edge-triggered readiness no new event will come for the bytes still
    /// waiting, so the worker must come back on its own.
    pub unread: bool,
    /// An event said the peer has closed its side: read to EOF from now on,
    /// even past a short read (see `on_event`).
    peer_closed: bool,
}

/// Bytes one connection may read per turn, so that a server streaming large
/// frames to one client cannot starve the others' receipt times.
const READ_BUDGET: usize = 256 * 1024;

impl Conn {
    /// Start a non-blocking connect; the handshake follows when it completes.
    pub fn connect(
        addr: SocketAddr,
        host: &str,
        path: &str,
        keys: &mut MaskSource,
        now_ns: u64,
        deflate: bool,
    ) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        let offer = deflate.then(deflate::client_offer);
        let request = handshake::client_request_offering(host, path, offer, keys);
        Ok(Conn {
            stream,
            state: State::Connecting,
            started_ns: now_ns,
            decoder: Decoder::new(Role::Client, Limits::LARGE),
            scanner: HeadScanner::default(),
            head: Vec::new(),
            expected_accept: request.expected_accept,
            offered: request.offered,
            encoder: None,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            order: SeqTracker::default(),
            sender: None,
            room: None,
            request: request.bytes,
            unread: false,
            peer_closed: false,
        })
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Bytes queued but not yet written.
    pub fn unsent(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Handle a readiness event.
    pub fn on_event(&mut self, ready: Ready, scratch: &mut [u8], ctx: &mut Ctx) -> Outcome {
        if self.state == State::Connecting {
            if !ready.writable && !ready.readable {
                return Outcome::Nothing;
            }
            match self.stream.take_error() {
                Ok(Some(e)) | Err(e) => return Outcome::Failed(format!("connect: {e}")),
                Ok(None) => {}
            }
            match self.stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Outcome::Nothing,
                Err(e) => return Outcome::Failed(format!("connect: {e}")),
            }
            self.stream.set_nodelay(true).ok();
            self.state = State::Handshaking;
            let request = std::mem::take(&mut self.request);
            self.out.extend_from_slice(&request);
        }
        if let Err(e) = self.flush() {
            return self.io_failed(format!("write: {e}"));
        }
        let mut outcome = Outcome::Nothing;
        self.unread = false;
        self.peer_closed |= ready.read_closed;
        if ready.readable {
            let mut budget = READ_BUDGET;
            loop {
                if budget == 0 {
                    self.unread = true;
                    break;
                }
                match self.stream.read(scratch) {
                    Ok(0) => {
                        return match self.state {
                            State::Handshaking => {
                                Outcome::Failed("EOF during handshake".to_owned())
                            }
                            State::Closing => Outcome::Closed(String::new()),
                            _ => Outcome::Closed("EOF from server".to_owned()),
                        };
                    }
                    Ok(n) => {
                        budget = budget.saturating_sub(n);
                        if ctx.counting {
                            ctx.stats.wire_in += n as u64;
                        }
                        match self.on_bytes(&mut scratch[..n], ctx) {
                            Ok(Outcome::Nothing) => {}
                            Ok(o) => outcome = o,
                            Err(e) => return self.io_failed(e),
                        }
                        // A short read emptied the socket (epoll(7), "Q9"):
                        // bytes or a FIN arriving from now on fire a new
                        // edge, so the read that would say EAGAIN — one
                        // syscall per event — is skipped. A FIN that came
                        // before the event fired no new edge: read to EOF.
                        if n < scratch.len() && !self.peer_closed {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return self.io_failed(format!("read: {e}")),
                }
            }
        }
        // Handling may have queued a pong or a close.
        if let Err(e) = self.flush() {
            return self.io_failed(format!("write: {e}"));
        }
        outcome
    }

    fn io_failed(&self, why: String) -> Outcome {
        match self.state {
            State::Connecting | State::Handshaking => Outcome::Failed(why),
            State::Closing => Outcome::Closed(String::new()),
            State::Open => Outcome::Closed(why),
        }
    }

    fn on_bytes(&mut self, data: &mut [u8], ctx: &mut Ctx) -> Result<Outcome, String> {
        match self.state {
            State::Connecting => Err("bytes before connect".to_owned()),
            State::Handshaking => {
                self.head.extend_from_slice(data);
                let end = self
                    .scanner
                    .find_end(&self.head, &HeadLimits::default())
                    .map_err(|e| format!("handshake: {e}"))?;
                let Some(end) = end else {
                    return Ok(Outcome::Nothing);
                };
                let request = handshake::ClientRequest {
                    bytes: Vec::new(),
                    expected_accept: std::mem::take(&mut self.expected_accept),
                    offered: self.offered.take(),
                };
                let accepted = request
                    .check_response(&self.head[..end])
                    .map_err(|e| format!("handshake: {e}"))?;
                if let Some(response) = accepted {
                    // Messages of any size go compressed when that is smaller:
                    // the bench's payloads are chosen to be worth it or not.
                    let in_use = deflate::client_in_use(&response, 1)
                        .map_err(|e| format!("handshake: permessage-deflate: {e:?}"))?;
                    self.decoder =
                        Decoder::with_extension(Role::Client, Limits::LARGE, Some(in_use.receive));
                    self.encoder = in_use.send;
                    ctx.stats.deflate_accepted += 1;
                }
                let mut rest = self.head.split_off(end);
                self.head = Vec::new();
                self.state = State::Open;
                let now = ctx.now_ns();
                ctx.stats
                    .handshake
                    .saturating_record(now.saturating_sub(self.started_ns).max(1));
                ctx.stats.last_connected_ns = ctx.stats.last_connected_ns.max(now);
                if !rest.is_empty() {
                    let used = self.decode(&mut rest, ctx)?;
                    self.inbuf.extend_from_slice(&rest[used..]);
                }
                Ok(Outcome::Connected)
            }
            State::Open | State::Closing => {
                if self.inbuf.is_empty() {
                    let used = self.decode(data, ctx)?;
                    self.inbuf.extend_from_slice(&data[used..]);
                } else {
                    let mut buf = std::mem::take(&mut self.inbuf);
                    buf.extend_from_slice(data);
                    let used = self.decode(&mut buf, ctx)?;
                    buf.drain(..used);
                    self.inbuf = buf;
                }
                Ok(Outcome::Nothing)
            }
        }
    }

    /// Decode whole frames from `buf`; returns how many bytes were used (the
    /// rest is an incomplete header, kept for the next read).
    fn decode(&mut self, buf: &mut [u8], ctx: &mut Ctx) -> Result<usize, String> {
        let mut pos = 0;
        let mut now = None;
        while pos < buf.len() {
            let (used, event) = self
                .decoder
                .decode(&mut buf[pos..])
                .map_err(|e| format!("protocol error from server: {e:?}"))?;
            pos += used;
            let Some(event) = event else { break };
            match event {
                Event::Message(Message::Text(text)) => {
                    let now = *now.get_or_insert_with(|| ctx.now_ns());
                    self.on_payload(text.as_bytes(), now, ctx);
                }
                Event::Message(Message::Binary(bytes)) => {
                    let now = *now.get_or_insert_with(|| ctx.now_ns());
                    self.on_payload(&bytes, now, ctx);
                }
                Event::Ping(payload) => self.queue_frame(OpCode::Pong, &payload, ctx.keys),
                Event::Pong(_) => {}
                Event::Close(_) => {
                    if self.state == State::Open {
                        // The server closes first: answer, then wait for its EOF.
                        self.queue_frame(OpCode::Close, &close_payload(1000, ""), ctx.keys);
                        self.state = State::Closing;
                        ctx.stats.closed_by_peer += 1;
                    }
                }
            }
        }
        Ok(pos)
    }

    fn on_payload(&mut self, payload: &[u8], now: u64, ctx: &mut Ctx) {
        ctx.frames += 1;
        let Some((sender, seq, sent_ns)) = find_marker(payload) else {
            ctx.stats.other_frames += 1;
            return;
        };
        if let Some(me) = &mut self.sender
            && me.id == sender
            && me.in_flight.is_some_and(|(s, _)| s == seq)
        {
            me.in_flight = None;
            me.echoed += 1;
        }
        if !ctx.counting || sender as usize >= ctx.senders {
            ctx.stats.unknown += 1;
            return;
        }
        if ctx.rooms > 0 && self.room != Some(sender % ctx.rooms as u32) {
            ctx.stats.wrong_room += 1;
            return;
        }
        ctx.stats
            .latency
            .saturating_record(now.saturating_sub(sent_ns).max(1));
        ctx.stats.delivered += 1;
        ctx.stats.last_delivery_ns = ctx.stats.last_delivery_ns.max(now);
        match self.order.record(ctx.senders, sender, seq) {
            Order::Next => {}
            Order::Duplicate => ctx.stats.duplicates += 1,
            Order::Late => ctx.stats.out_of_order += 1,
        }
    }

    /// Queue one masked frame and try to write it.
    pub fn queue_frame(&mut self, opcode: OpCode, payload: &[u8], keys: &mut MaskSource) {
        self.compact();
        encode_frame(&mut self.out, true, opcode, payload, Some(keys.key()));
    }

    /// Queue one masked data message, through permessage-deflate when the
    /// server accepted it.
    fn queue_message(&mut self, opcode: OpCode, payload: &[u8], keys: &mut MaskSource) {
        self.compact();
        encode_message(
            self.encoder.as_deref(),
            &mut self.out,
            opcode,
            payload,
            Some(keys.key()),
        );
    }

    /// Send the next data message: `L<id>:<seq>:<now_ns>:` padded with 'x'
    /// to `size` bytes. Returns its sequence number.
    pub fn send_message(
        &mut self,
        size: usize,
        payload: &mut Vec<u8>,
        ctx: &mut Ctx,
    ) -> io::Result<u64> {
        let me = self.sender.as_mut().expect("only senders send");
        let seq = me.next_seq;
        me.next_seq += 1;
        let now = ctx.now_ns();
        payload.clear();
        write!(payload, "L{}:{}:{}:", me.id, seq, now)?;
        match ctx.text {
            Text::Padding => payload.resize(payload.len().max(size), b'x'),
            Text::Chat => chat_text(payload, size, seq ^ u64::from(me.id) << 40),
        }
        me.in_flight = Some((seq, now));
        ctx.stats.expected += me.audience;
        self.queue_message(OpCode::Text, payload, ctx.keys);
        ctx.stats.sent += 1;
        self.flush()?;
        Ok(seq)
    }

    /// Start the closing handshake (§7.1.2): send Close, wait for the
    /// server's Close and its EOF.
    pub fn close(&mut self, keys: &mut MaskSource) {
        if self.state == State::Open {
            self.queue_frame(OpCode::Close, &close_payload(1000, ""), keys);
            self.state = State::Closing;
            self.flush().ok();
        }
    }

    fn compact(&mut self) {
        if self.out_pos > 0 && self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > 64 * 1024 {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        if self.state == State::Connecting {
            return Ok(());
        }
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        Ok(())
    }
}

/// What fills a message after its marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Text {
    /// `x` repeated: compresses to almost nothing.
    Padding,
    /// Words of a chat in JSON-like lines (`{"user":"…","text":"…"}`),
    /// different in every message: compresses about as real chat text does.
    Chat,
}

const WORDS: &[&str] = &[
    "the",
    "a",
    "build",
    "is",
    "green",
    "again",
    "after",
    "merge",
    "review",
    "please",
    "looks",
    "good",
    "to",
    "me",
    "ship",
    "it",
    "deploy",
    "rollback",
    "latency",
    "p99",
    "went",
    "up",
    "down",
    "on",
    "node",
    "two",
    "three",
    "redis",
    "nginx",
    "cert",
    "expired",
    "yesterday",
    "today",
    "we",
    "should",
    "fix",
    "that",
    "before",
    "release",
    "thanks",
    "lunch",
    "coffee",
    "meeting",
    "moved",
    "tomorrow",
    "ok",
    "sure",
    "why",
    "not",
    "because",
    "cache",
    "miss",
    "hit",
    "ratio",
    "graph",
    "dashboard",
    "alert",
    "fired",
    "silenced",
    "ticket",
    "closed",
    "opened",
    "bug",
    "feature",
];
const USERS: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];

/// Append chat-like text to `out` until it is `size` bytes long, the words
/// drawn from `seed` (xorshift): no two messages are alike.
pub fn chat_text(out: &mut Vec<u8>, size: usize, seed: u64) {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    while out.len() < size {
        let user = USERS[(next() % USERS.len() as u64) as usize];
        out.extend_from_slice(b"{\"user\":\"");
        out.extend_from_slice(user.as_bytes());
        out.extend_from_slice(b"\",\"text\":\"");
        for i in 0..(4 + next() % 12) {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(WORDS[(next() % WORDS.len() as u64) as usize].as_bytes());
        }
        out.extend_from_slice(b"\"}\n");
    }
    out.truncate(size);
}

/// Find `L<digits>:<digits>:<digits>:` anywhere in `payload`: wschat wraps
/// the text in JSON, the peers send it back as it was.
pub fn find_marker(payload: &[u8]) -> Option<(u32, u64, u64)> {
    let mut from = 0;
    while let Some(i) = find_l(&payload[from..]) {
        let at = from + i + 1;
        if let Some(found) = parse_marker(&payload[at..]) {
            return Some(found);
        }
        from = at;
    }
    None
}

/// Index of the first `L` in `bytes`, eight bytes at a time. In wschat's JSON
/// the marker sits about 80 bytes in, and at 2 M deliveries/s a byte-by-byte
/// scan for it was a tenth of the load generator's CPU.
fn find_l(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const PATTERN: u64 = ONES * b'L' as u64;
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk")) ^ PATTERN;
        // A zero byte in `word` is an `L` in the chunk. The lowest flagged
        // byte is always a true zero (borrows only flag bytes above one).
        let zeros = word.wrapping_sub(ONES) & !word & HIGHS;
        if zeros != 0 {
            return Some(base + (zeros.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'L')
        .map(|i| base + i)
}

fn parse_marker(mut rest: &[u8]) -> Option<(u32, u64, u64)> {
    let mut fields = [0u64; 3];
    for field in &mut fields {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 19 || rest.get(digits) != Some(&b':') {
            return None;
        }
        for &d in &rest[..digits] {
            *field = field.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        rest = &rest[digits + 1..];
    }
    Some((u32::try_from(fields[0]).ok()?, fields[1], fields[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_text_is_the_size_asked_different_per_seed_and_compressible() {
        let (mut a, mut b) = (b"L1:2:3:".to_vec(), b"L1:2:3:".to_vec());
        chat_text(&mut a, 16384, 7);
        chat_text(&mut b, 16384, 8);
        assert_eq!((a.len(), b.len()), (16384, 16384));
        assert!(a.starts_with(b"L1:2:3:{\"user\":\""));
        assert_ne!(a, b);
        assert!(std::str::from_utf8(&a).is_ok());
        let mut again = b"L1:2:3:".to_vec();
        chat_text(&mut again, 16384, 7);
        assert_eq!(a, again, "the same seed gives the same text");
        // Like chat, not like padding: DEFLATE saves a lot, but far from all.
        let mut c = flate2::Compress::new(flate2::Compression::default(), false);
        let mut out = Vec::with_capacity(32 * 1024);
        c.compress_vec(&a, &mut out, flate2::FlushCompress::Finish)
            .unwrap();
        assert!(
            out.len() > a.len() / 12 && out.len() < a.len() / 2,
            "{} bytes",
            out.len()
        );
    }

    #[test]
    fn sequence_in_order_with_a_gap_is_next_every_time() {
        let mut t = SeqTracker::default();
        for seq in [0, 1, 2, 5, 6] {
            assert_eq!(t.record(2, 0, seq), Order::Next, "seq {seq}");
        }
    }

    #[test]
    fn sequence_repeat_and_overtaken_messages_are_told_apart() {
        let mut t = SeqTracker::default();
        assert_eq!(t.record(1, 0, 0), Order::Next);
        assert_eq!(t.record(1, 0, 1), Order::Next);
        assert_eq!(t.record(1, 0, 1), Order::Duplicate);
        assert_eq!(t.record(1, 0, 3), Order::Next);
        assert_eq!(t.record(1, 0, 2), Order::Late);
        assert_eq!(t.record(1, 0, 0), Order::Late);
        assert_eq!(t.record(1, 0, 4), Order::Next);
    }

    #[test]
    fn sequence_senders_are_independent() {
        let mut t = SeqTracker::default();
        assert_eq!(t.record(3, 2, 7), Order::Next);
        assert_eq!(t.record(3, 0, 0), Order::Next);
        assert_eq!(t.record(3, 1, 0), Order::Next);
        assert_eq!(t.record(3, 0, 0), Order::Duplicate);
        assert_eq!(t.record(3, 2, 3), Order::Late);
        assert_eq!(t.record(3, 1, 1), Order::Next);
    }

    #[test]
    fn find_l_agrees_with_a_byte_scan_at_every_position_and_length() {
        for len in 0..40 {
            for at in 0..=len {
                let mut bytes: Vec<u8> = (0..len).map(|i| b"abcK\x00\xccM{"[i % 8]).collect();
                if at < len {
                    bytes[at] = b'L';
                    if at + 3 < len {
                        bytes[at + 3] = b'L';
                    }
                }
                let want = bytes.iter().position(|&b| b == b'L');
                assert_eq!(find_l(&bytes), want, "len {len}, L at {at}");
            }
        }
    }

    #[test]
    fn finds_the_marker_raw_and_in_json() {
        assert_eq!(find_marker(b"L3:17:1234:xxxx"), Some((3, 17, 1234)));
        let json = br#"{"type":"message","id":42,"from":{"name":"Lu"},"text":"L3:17:1234:xxxx","nonce":"L"}"#;
        assert_eq!(find_marker(json), Some((3, 17, 1234)));
        assert_eq!(find_marker(b"L3:17:1234"), None);
        assert_eq!(find_marker(br#"{"type":"welcome","you":"L9"}"#), None);
        assert_eq!(find_marker(b"LL1:2:3:"), Some((1, 2, 3)));
        assert_eq!(find_marker(b"L4294967296:1:2:"), None, "sender id over u32");
        assert_eq!(
            find_marker(b"L1:18446744073709551615:0:"),
            None,
            "20 digits"
        );
        assert_eq!(
            find_marker(b"L1:9999999999999999999:0:"),
            Some((1, 9_999_999_999_999_999_999, 0))
        );
    }
}
