//! Connection I/O: the thin blocking layer between a `TcpStream` and the
//! sans-IO codec.
//!
//! Each connection has a *reader* thread, and a *writer* thread once it
//! needs one (below). The reader (the caller's thread) owns one small
//! reusable buffer and the [`Decoder`]; it blocks in `read`, and answers
//! pings and closes. The writer drains two queues: a bounded data
//! queue ([`Sender::try_send`] fails when it is full, which is how a chat
//! hub notices a client that stopped reading) and a small control queue for
//! pings, pongs and Close frames, so those are never stuck behind data.
//! Whatever is queued when the writer wakes goes out in one `write_vectored`
//! call.
//!
//! A frame for a connection whose writer is idle skips the queues: the
//! sending thread offers it to the kernel itself with a send that cannot
//! block (`MSG_DONTWAIT`), and the writer gets only what the socket did not
//! take. Waking a sleeping thread costs more than the send, and most sockets
//! have room most of the time. Whoever writes holds the connection's *wire*
//! lock (the sender only ever tries it), so frames never interleave on the
//! wire.
//!
//! So the writer thread is started only when something is first queued for
//! it — a peer that reads more slowly than we send, or a Close of ours that
//! cannot go out at once — and from then on lives as long as the
//! connection. Every thread keeps at least two pages of stack resident, so a
//! writer for each idle connection would be half of what an idle connection
//! costs; a connection that never falls behind never has one.
//!
//! The closing handshake (§5.5.1, §7.1) is shared between the two: the
//! reader receives the peer's Close; ours, and nothing after it, is sent by
//! the writer — or, when the reader answers a Close or a protocol error and
//! nothing is queued, by the reader itself, so that a peer going away does
//! not start a thread for one frame. When both have happened the server
//! closes TCP first (§7.1.1); a client waits for the server to do so. Every
//! wait is bounded by a timeout.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{self as channel, Receiver};

use super::close::{CloseCode, CloseFrame};
use super::frame::{OpCode, Role, close_payload, encode_frame};
use super::mask::MaskSource;
use super::message::{Decoder, Event, Limits, Message};
use super::queue::{QueueReceiver, QueueSender, queue};
use super::trace;

/// Per-connection settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub role: Role,
    pub limits: Limits,
    /// Frames the data queue holds before [`Sender::try_send`] reports it full.
    pub queue_len: usize,
    /// Largest size of the reader's buffer. It starts small (an idle chat
    /// connection needs little) and doubles while reads fill it, up to this.
    /// Large payloads stream through it into the message buffer, so it never
    /// has to hold a whole frame.
    pub read_buffer: usize,
    /// Most frames written in one system call.
    pub max_batch: usize,
    /// A write blocked this long means the peer stopped reading: give up.
    pub write_timeout: Option<Duration>,
    /// How long to wait for the peer's half of the closing handshake.
    pub close_timeout: Duration,
    /// After this long without a byte from the peer, send a Ping.
    pub ping_interval: Option<Duration>,
    /// After a Ping, how long the peer has to send anything back.
    pub pong_timeout: Duration,
    /// Stack size of the writer thread (it only moves bytes).
    pub writer_stack: usize,
}

impl Config {
    pub fn new(role: Role) -> Config {
        Config {
            role,
            limits: Limits::default(),
            queue_len: 256,
            read_buffer: 16 * 1024,
            max_batch: 64,
            write_timeout: Some(Duration::from_secs(30)),
            close_timeout: Duration::from_secs(5),
            ping_interval: None,
            pong_timeout: Duration::from_secs(10),
            writer_stack: 64 * 1024,
        }
    }
}

/// The reader's first buffer: room for a typical chat message.
const INITIAL_READ_BUFFER: usize = 512;

/// Encoded frame bytes on their way to the socket. A server encodes a
/// broadcast once and hands the same `Arc` to every client's queue.
#[derive(Clone, Debug)]
pub enum Outgoing {
    Shared(Arc<[u8]>),
    /// A shared buffer from an offset on: what a client that joined in the
    /// middle of a hub batch is still to receive of it.
    Tail(Arc<[u8]>, usize),
    Owned(Vec<u8>),
}

impl Outgoing {
    /// What is left after the first `n` bytes went out.
    fn advance(self, n: usize) -> Outgoing {
        match self {
            Outgoing::Shared(bytes) => Outgoing::Tail(bytes, n),
            Outgoing::Tail(bytes, start) => Outgoing::Tail(bytes, start + n),
            Outgoing::Owned(mut bytes) => {
                bytes.drain(..n.min(bytes.len()));
                Outgoing::Owned(bytes)
            }
        }
    }
}

impl AsRef<[u8]> for Outgoing {
    fn as_ref(&self) -> &[u8] {
        match self {
            Outgoing::Shared(bytes) => bytes,
            Outgoing::Tail(bytes, start) => bytes.get(*start..).unwrap_or_default(),
            Outgoing::Owned(bytes) => bytes,
        }
    }
}

/// How our Close frame relates to the peer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CloseKind {
    /// The peer closed first; this is our echo (§5.5.1).
    Reply,
    /// We close first and wait for the peer's echo. With `flush`, data
    /// already queued goes out before the Close; without, it is dropped.
    Initiate { flush: bool },
    /// The peer broke the protocol (§7.1.7): send the Close, then end TCP.
    Fail,
}

#[derive(Debug)]
enum Control {
    /// An encoded Ping or Pong.
    Frame(Outgoing),
    Close(Vec<u8>, CloseKind),
    /// A sender left part of a frame in [`Wire::partial`]: write it.
    Resume,
    /// The reader put our Close on the wire itself and the socket took only
    /// part of it (see [`Sender::close_now`]): write the rest, nothing after
    /// it, then end TCP as this kind of close requires.
    Finish(CloseKind),
}

/// Encode one frame the way `role` must send it: masked with a fresh
/// unpredictable key by a client (§5.3), unmasked by a server.
pub fn encode(role: Role, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    thread_local! {
        static KEYS: std::cell::RefCell<Option<MaskSource>> = const { std::cell::RefCell::new(None) };
    }
    let mask = match role {
        Role::Server => None,
        Role::Client => {
            Some(KEYS.with(|k| k.borrow_mut().get_or_insert_with(MaskSource::new).key()))
        }
    };
    let mut out = Vec::new();
    encode_frame(&mut out, true, opcode, payload, mask);
    out
}

/// Whether our Close frame is written, or being written, and the code it
/// carries. Once it is, nothing more may be sent (§5.5.1), and a Close from
/// the peer is the answer to ours.
#[derive(Debug, Default)]
struct CloseSent(AtomicU32);

/// Set in [`CloseSent`] once our Close is out; the low 16 bits hold its code.
const CLOSE_SENT: u32 = 1 << 16;

impl CloseSent {
    fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire) != 0
    }

    /// Our Close with this payload is going out.
    fn set(&self, payload: &[u8]) {
        let code = u32::from(payload_code(payload).0);
        self.0.store(CLOSE_SENT | code, Ordering::Release);
    }

    /// The code of our Close (1005 for one without a code), once sent.
    fn code(&self) -> Option<CloseCode> {
        let v = self.0.load(Ordering::Acquire);
        (v != 0).then_some(CloseCode((v & 0xFFFF) as u16))
    }
}

/// The code a Close payload carries; 1005 when it has none (§7.1.5).
fn payload_code(payload: &[u8]) -> CloseCode {
    match payload {
        [hi, lo, ..] => CloseCode(u16::from_be_bytes([*hi, *lo])),
        _ => CloseCode::NO_STATUS,
    }
}

/// State the reader, the writer and the senders share.
#[derive(Debug, Default)]
struct Shared {
    close_sent: CloseSent,
    /// The peer's address, for the frame trace.
    peer: Option<std::net::SocketAddr>,
    /// Held while writing to the socket.
    wire: Mutex<Wire>,
    /// Control frames queued and not yet written. Data skips the queue only
    /// when there are none, so that a Pong is never overtaken by a message
    /// sent after it.
    controls_pending: AtomicUsize,
}

#[derive(Debug, Default)]
struct Wire {
    /// The rest of a frame a sender started on the wire and the socket did
    /// not take whole. It must go out next, before any other frame, or the
    /// peer would read the middle of one frame as the start of another.
    partial: Option<Outgoing>,
}

impl Shared {
    fn wire(&self) -> MutexGuard<'_, Wire> {
        self.wire.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection's writer before it is needed. Whoever queues something
/// calls [`WriterSlot::start`] right after, so anything in a queue — and a
/// full queue a sender waits on — has a writer thread on its way to drain
/// it.
#[derive(Debug)]
struct WriterSlot {
    writer: Mutex<Option<Writer>>,
    stack: usize,
}

impl WriterSlot {
    /// Start the writer thread unless it is running (or has run) already.
    fn start(&self) {
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            let stream = Arc::clone(&writer.stream);
            if spawn_writer(writer, self.stack).is_err() {
                // Without a thread, what is queued would never be sent: end
                // the connection instead (the reader sees it and reports
                // it), rather than leave the peer waiting in silence.
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    #[cfg(test)]
    fn is_started(&self) -> bool {
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }
}

/// The control queue's sending side, counting what it holds in
/// [`Shared::controls_pending`] and starting the writer for it.
#[derive(Clone, Debug)]
struct ControlSender {
    tx: channel::Sender<Control>,
    shared: Arc<Shared>,
    writer: Arc<WriterSlot>,
}

impl ControlSender {
    /// Queue `control`, waiting while the queue is full.
    fn send(&self, control: Control) -> Result<(), Disconnected> {
        self.shared.controls_pending.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(control).is_err() {
            self.shared.controls_pending.fetch_sub(1, Ordering::AcqRel);
            return Err(Disconnected);
        }
        self.writer.start();
        Ok(())
    }

    fn try_send(&self, control: Control) -> bool {
        self.shared.controls_pending.fetch_add(1, Ordering::AcqRel);
        let sent = self.tx.try_send(control).is_ok();
        if sent {
            self.writer.start();
        } else {
            self.shared.controls_pending.fetch_sub(1, Ordering::AcqRel);
        }
        sent
    }
}

/// The sending half: a frame goes to the socket at once when the writer is
/// idle, else into the writer's queue.
#[derive(Clone, Debug)]
pub struct Sender {
    role: Role,
    stream: Arc<TcpStream>,
    shared: Arc<Shared>,
    data: QueueSender<Outgoing>,
    control: ControlSender,
}

/// The connection is gone, or closing: nothing more can be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disconnected;

pub use super::queue::TrySend;

impl Sender {
    /// Send an encoded frame, blocking while the queue is full.
    pub fn send(&self, frame: Outgoing) -> Result<(), Disconnected> {
        match self.write_now(frame) {
            Ok(None) => Ok(()),
            Ok(Some(frame)) => {
                self.data.send(frame).map_err(|_| Disconnected)?;
                self.control.writer.start();
                Ok(())
            }
            Err(_) => Err(Disconnected),
        }
    }

    /// Send an encoded frame without blocking.
    pub fn try_send(&self, frame: Outgoing) -> Result<(), TrySend> {
        match self.write_now(frame) {
            Ok(None) => Ok(()),
            Ok(Some(frame)) => {
                let queued = self.data.try_send(frame);
                if queued.is_ok() {
                    self.control.writer.start();
                }
                queued
            }
            Err(why) => Err(why),
        }
    }

    /// Send an encoded Ping or Pong: now if the wire is free, else ahead of
    /// queued data. With `wait`, blocks while the control queue is full.
    fn send_control(&self, frame: Vec<u8>, wait: bool) -> Result<(), Disconnected> {
        let control = match self.write_now(Outgoing::Owned(frame)) {
            Ok(None) => return Ok(()),
            Ok(Some(frame)) => Control::Frame(frame),
            Err(_) => return Err(Disconnected),
        };
        if wait {
            self.control.send(control)
        } else if self.control.try_send(control) {
            Ok(())
        } else {
            Err(Disconnected)
        }
    }

    /// Write `frame` from this thread if the writer is idle and nothing is
    /// queued before it (see [`Sender::nothing_before`]); `Ok(Some(frame))`
    /// hands it back for the queue.
    fn write_now(&self, frame: Outgoing) -> Result<Option<Outgoing>, TrySend> {
        trace::frames_out(self.shared.peer, self.role, frame.as_ref());
        let Ok(mut wire) = self.shared.wire.try_lock() else {
            return Ok(Some(frame)); // The writer is busy: join its queue.
        };
        self.write_locked(&mut wire, frame)
    }

    fn write_locked(&self, wire: &mut Wire, frame: Outgoing) -> Result<Option<Outgoing>, TrySend> {
        if self.shared.close_sent.is_set() {
            return Err(TrySend::Disconnected);
        }
        if !self.nothing_before(wire) {
            return Ok(Some(frame));
        }
        let bytes = frame.as_ref();
        match send_without_blocking(&self.stream, bytes) {
            Ok(n) if n == bytes.len() => Ok(None),
            Ok(n) if n > 0 => {
                wire.partial = Some(frame.advance(n));
                // If the control queue is full, the writer has wake-ups
                // waiting already, and it writes the partial frame first.
                let _ = self.control.try_send(Control::Resume);
                Ok(None)
            }
            Ok(_) => Ok(Some(frame)),
            Err(e) if no_room(&e) => Ok(Some(frame)),
            // The connection is broken (reset, or shut down by the reader):
            // nothing more will reach the peer, and the reader, woken by
            // the shutdown, reports how it ended.
            Err(_) => {
                let _ = self.stream.shutdown(Shutdown::Both);
                Err(TrySend::Disconnected)
            }
        }
    }

    /// Nothing is waiting to go out ahead of a frame written now: no rest
    /// of a frame, no queued data, no queued control frame. The queue count
    /// includes frames the writer has taken but not yet written (it reports
    /// them only after the write), so under the wire lock this is exact.
    fn nothing_before(&self, wire: &Wire) -> bool {
        wire.partial.is_none()
            && self.data.queued() == 0
            && self.shared.controls_pending.load(Ordering::Acquire) == 0
    }

    /// Write our Close (a reply, or a failure) from this thread when the
    /// wire is idle and nothing is queued, then end TCP as `kind` requires;
    /// `false`, having written nothing, when it must go through the writer,
    /// behind what is queued.
    ///
    /// A peer that closes first — a browser tab going away — is answered
    /// without starting a writer thread for one frame.
    fn close_now(&self, payload: &[u8], kind: CloseKind) -> bool {
        let Ok(mut wire) = self.shared.wire.try_lock() else {
            return false;
        };
        if self.shared.close_sent.is_set() || !self.nothing_before(&wire) {
            return false;
        }
        let frame = encode(self.role, OpCode::Close, payload);
        trace::frames_out(self.shared.peer, self.role, &frame);
        match send_without_blocking(&self.stream, &frame) {
            Ok(n) if n == frame.len() => {
                self.shared.close_sent.set(payload);
                drop(wire);
                end_tcp_after_close(&self.stream, kind, self.role);
                true
            }
            Ok(n) if n > 0 => {
                // Part of our Close is out: from here on only its rest may
                // follow, and the writer is the one who can wait to send it.
                self.shared.close_sent.set(payload);
                wire.partial = Some(Outgoing::Owned(frame).advance(n));
                drop(wire);
                if self.control.send(Control::Finish(kind)).is_err() {
                    let _ = self.stream.shutdown(Shutdown::Both);
                }
                true
            }
            Ok(_) => false,
            Err(e) if no_room(&e) => false,
            Err(_) => {
                self.shared.close_sent.set(payload);
                let _ = self.stream.shutdown(Shutdown::Both);
                true
            }
        }
    }

    /// Encode and queue a data message as one frame.
    pub fn send_message(&self, message: &Message) -> Result<(), Disconnected> {
        let (opcode, payload) = match message {
            Message::Text(text) => (OpCode::Text, text.as_bytes()),
            Message::Binary(bytes) => (OpCode::Binary, bytes.as_slice()),
        };
        self.send(Outgoing::Owned(encode(self.role, opcode, payload)))
    }

    /// Send a Ping; the reader reports nothing for the Pong.
    pub fn ping(&self, payload: &[u8]) -> Result<(), Disconnected> {
        let payload = &payload[..payload.len().min(125)];
        self.send_control(encode(self.role, OpCode::Ping, payload), true)
    }

    /// Start the closing handshake. With `flush`, frames already queued are
    /// sent first; without, they are dropped (for a peer that is too slow
    /// to read them anyway). Does not block.
    pub fn close(&self, code: CloseCode, reason: &str, flush: bool) {
        if self.shared.close_sent.is_set() {
            return; // Ours is out already; nothing may follow it (§5.5.1).
        }
        let frame = close_payload(code.0, reason);
        let _ = self
            .control
            .try_send(Control::Close(frame, CloseKind::Initiate { flush }));
    }
}

/// How a connection ended, for the log and the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    /// The code of the closing handshake, or 1006 when there was none.
    pub code: CloseCode,
    pub reason: String,
    /// Who started the end: the peer (its Close, or TCP going away) or us.
    pub by_peer: bool,
    /// The code of the Close we sent (1005: one without a code), if we did.
    pub sent: Option<CloseCode>,
    /// The code of the peer's Close (1005: one without a code), if it came.
    pub received: Option<CloseCode>,
}

impl Closed {
    /// Ended by us or by the peer with `code`; no Close frame counted yet.
    fn new(code: CloseCode, reason: impl Into<String>, by_peer: bool) -> Closed {
        Closed {
            code,
            reason: reason.into(),
            by_peer,
            sent: None,
            received: None,
        }
    }

    fn abnormal(reason: impl Into<String>) -> Closed {
        Closed::new(CloseCode::ABNORMAL, reason, true)
    }
}

impl std::fmt::Display for Closed {
    /// `1001 "going away", by the peer (received 1001, sent 1001)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        if !self.reason.is_empty() {
            write!(f, " {:?}", self.reason)?;
        }
        f.write_str(if self.by_peer {
            ", by the peer"
        } else {
            ", by us"
        })?;
        let code = |c: Option<CloseCode>| c.map_or_else(|| "none".to_owned(), |c| c.to_string());
        write!(
            f,
            " (received {}, sent {})",
            code(self.received),
            code(self.sent)
        )
    }
}

/// The receiving half, driven by the connection's own thread.
///
/// Its state is on the heap. Whatever page of a thread's stack is touched
/// once stays resident for the thread's life, and a state of ~430 bytes
/// moved by value through the handshake and the application's frames is
/// what pushed a connection's reader onto a third stack page.
pub struct Reader(Box<ReaderState>);

impl Reader {
    /// Block until the next data message. `Err` means the connection is over
    /// (and has been shut down properly); every later call returns the same.
    pub fn next_message(&mut self) -> Result<Message, Closed> {
        self.0.next_message()
    }

    /// Like [`Reader::next_message`], but gives up after `timeout` with
    /// `Ok(None)`; the partial frame, if any, stays buffered.
    pub fn next_message_timeout(&mut self, timeout: Duration) -> Result<Option<Message>, Closed> {
        self.0.next_message_timeout(timeout)
    }
}

struct ReaderState {
    stream: Arc<TcpStream>,
    config: Config,
    decoder: Decoder,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// For pongs, pings and our Close.
    out: Sender,
    shared: Arc<Shared>,
    /// Dropped when the reader is done (it has returned `Err`, or the
    /// `Reader` itself is dropped); the writer waits on it after starting a
    /// close.
    alive: Option<channel::Sender<()>>,
    last_heard: Instant,
    ping_sent: Option<Instant>,
    timeout_set: Option<Duration>,
    /// The code of a Close this reader handed to the writer, not yet sent.
    close_queued: Option<CloseCode>,
    closed: Option<Closed>,
}

/// Start a connection over an upgraded stream. `leftover` holds bytes read
/// past the handshake, which already belong to the first frames.
///
/// Returns the two halves; the writer thread starts when it is first needed.
pub fn start(stream: TcpStream, leftover: &[u8], config: Config) -> io::Result<(Reader, Sender)> {
    let channels = Channels::new(config.queue_len);
    halves(stream, leftover, config, channels)
}

/// The queues between a connection's reader, senders and writer. Built in
/// a frame of its own for the same reason as [`spawn_writer`].
struct Channels {
    data: (QueueSender<Outgoing>, QueueReceiver<Outgoing>),
    control: (channel::Sender<Control>, Receiver<Control>),
    alive: (channel::Sender<()>, Receiver<()>),
}

impl Channels {
    /// Each channel in a call of its own: inlined into one frame, their
    /// constructors' frames add up.
    #[inline(never)]
    fn new(queue_len: usize) -> Channels {
        #[inline(never)]
        fn bounded<T>(capacity: usize) -> (channel::Sender<T>, Receiver<T>) {
            channel::bounded(capacity)
        }
        Channels {
            data: queue(queue_len),
            control: bounded(8),
            alive: bounded(0),
        }
    }
}

/// Every page a thread's stack touches once stays resident for the
/// thread's life, and spawning a thread (glibc maps the stack, clones) is
/// one of the deepest calls a reader can make (for a Close, or a Pong the
/// socket had no room for): so the writer is spawned from this small frame
/// of its own. `scripts/stack-depth` measures what a reader keeps.
#[inline(never)]
fn spawn_writer(writer: Writer, stack: usize) -> io::Result<()> {
    std::thread::Builder::new()
        .name("ws-writer".into())
        .stack_size(stack)
        .spawn(move || writer.run())
        .map(drop)
}

/// The reader and sender of a new connection, and its writer, not yet
/// started.
#[inline(never)]
fn halves(
    stream: TcpStream,
    leftover: &[u8],
    config: Config,
    channels: Channels,
) -> io::Result<(Reader, Sender)> {
    let _ = stream.set_nodelay(true);
    stream.set_write_timeout(config.write_timeout)?;
    // Reader and writer share one socket: `&TcpStream` reads and writes,
    // so no second file descriptor is needed per connection.
    let stream = Arc::new(stream);
    let write_half = Arc::clone(&stream);
    let Channels {
        data: (data_tx, data_rx),
        control: (control_tx, control_rx),
        alive: (alive_tx, alive_rx),
    } = channels;
    let tracing = trace::enabled();
    let shared = Arc::new(Shared {
        peer: if tracing {
            stream.peer_addr().ok()
        } else {
            None
        },
        ..Shared::default()
    });
    let writer = Writer {
        stream: write_half,
        data: data_rx,
        control: control_rx,
        reader_alive: alive_rx,
        shared: Arc::clone(&shared),
        role: config.role,
        max_batch: config.max_batch.max(1),
        close_timeout: config.close_timeout,
    };
    let control_tx = ControlSender {
        tx: control_tx,
        shared: Arc::clone(&shared),
        writer: Arc::new(WriterSlot {
            writer: Mutex::new(Some(writer)),
            stack: config.writer_stack,
        }),
    };
    let sender = Sender {
        role: config.role,
        stream: Arc::clone(&stream),
        shared: Arc::clone(&shared),
        data: data_tx,
        control: control_tx,
    };
    let mut buf = vec![
        0;
        INITIAL_READ_BUFFER
            .min(config.read_buffer)
            .max(leftover.len())
            .max(64)
    ];
    buf[..leftover.len()].copy_from_slice(leftover);
    let reader = ReaderState {
        stream,
        decoder: {
            let mut decoder = Decoder::new(config.role, config.limits);
            decoder.trace_as(shared.peer);
            decoder
        },
        buf,
        start: 0,
        end: leftover.len(),
        out: sender.clone(),
        shared,
        alive: Some(alive_tx),
        last_heard: Instant::now(),
        ping_sent: None,
        timeout_set: None,
        close_queued: None,
        closed: None,
        config,
    };
    Ok((Reader(Box::new(reader)), sender))
}

impl ReaderState {
    fn next_message(&mut self) -> Result<Message, Closed> {
        if let Some(closed) = &self.closed {
            return Err(closed.clone());
        }
        match self.next_inner() {
            Ok(message) => Ok(message),
            Err(closed) => Err(self.finish(closed)),
        }
    }

    /// The connection is over: remember how, and release a writer waiting
    /// for the closing handshake (§7.1.1) now rather than when the `Reader`
    /// is dropped, so that it ends and later sends fail with `Disconnected`.
    fn finish(&mut self, mut closed: Closed) -> Closed {
        closed.sent = self.shared.close_sent.code().or(self.close_queued);
        self.closed = Some(closed.clone());
        self.alive = None;
        closed
    }

    fn next_message_timeout(&mut self, timeout: Duration) -> Result<Option<Message>, Closed> {
        let deadline = Instant::now() + timeout;
        if let Some(closed) = &self.closed {
            return Err(closed.clone());
        }
        match self.run(Some(deadline)) {
            Ok(message) => Ok(message),
            Err(closed) => Err(self.finish(closed)),
        }
    }

    fn next_inner(&mut self) -> Result<Message, Closed> {
        loop {
            if let Some(message) = self.run(None)? {
                return Ok(message);
            }
        }
    }

    /// Decode what is buffered, read more, repeat; `Ok(None)` only when
    /// `deadline` passes.
    fn run(&mut self, deadline: Option<Instant>) -> Result<Option<Message>, Closed> {
        loop {
            while self.start < self.end {
                let result = self.decoder.decode(&mut self.buf[self.start..self.end]);
                let (used, event) = match result {
                    Ok(ok) => ok,
                    Err(error) => {
                        let frame = error.close_frame();
                        self.queue_close(
                            close_payload(frame.code.0, &frame.reason),
                            CloseKind::Fail,
                        );
                        self.linger();
                        return Err(Closed::new(frame.code, frame.reason, false));
                    }
                };
                self.start += used;
                match event {
                    Some(Event::Message(message)) => {
                        if self.shared.close_sent.is_set() {
                            continue; // §5.5.1: we are closing; data is discarded.
                        }
                        return Ok(Some(message));
                    }
                    Some(Event::Ping(payload)) => {
                        if !self.shared.close_sent.is_set() {
                            // Blocks while 8 replies are pending: a peer that
                            // pings without reading is slowed to its own pace.
                            let pong = encode(self.config.role, OpCode::Pong, &payload);
                            let _ = self.out.send_control(pong, true);
                        }
                    }
                    Some(Event::Pong(_)) => {}
                    Some(Event::Close(frame)) => return Err(self.peer_closed(frame)),
                    None => break,
                }
            }
            self.fill(deadline)?;
            // A partial frame may be buffered; it waits for the next call.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }

    /// The peer's Close arrived: echo it unless we closed first (§5.5.1),
    /// then let the socket go.
    fn peer_closed(&mut self, frame: Option<CloseFrame>) -> Closed {
        let we_closed_first = self.shared.close_sent.is_set();
        let (code, reason) = match &frame {
            Some(f) => (f.code, f.reason.clone()),
            None => (CloseCode::NO_STATUS, String::new()),
        };
        let mut closed = Closed::new(code, reason, !we_closed_first);
        closed.received = Some(code);
        if we_closed_first {
            if self.config.role == Role::Server {
                // The server closes TCP first (§7.1.1). The writer does it
                // as soon as this reader is done (see `finish`), and not
                // before it has written all of our Close: when the peer's
                // Close crossed ours, that write may still be under way.
                return closed;
            }
        } else {
            // Echo the code we received; an empty Close is echoed empty.
            let echo = match &frame {
                Some(f) => close_payload(f.code.0, ""),
                None => Vec::new(),
            };
            self.queue_close(echo, CloseKind::Reply);
        }
        self.linger();
        closed
    }

    fn queue_close(&mut self, payload: Vec<u8>, kind: CloseKind) {
        self.close_queued = Some(payload_code(&payload));
        if self.out.close_now(&payload, kind) {
            return;
        }
        if self
            .out
            .control
            .send(Control::Close(payload, kind))
            .is_err()
        {
            // The writer is gone (a write failed); nothing more can be said.
            let _ = self.stream.shutdown(Shutdown::Both);
        }
    }

    /// After the closing handshake, read and discard until the peer closes
    /// TCP or the close timeout passes. Closing a socket with unread input
    /// makes the kernel send RST, which can destroy our Close frame before
    /// the peer reads it.
    fn linger(&mut self) {
        let deadline = Instant::now() + self.config.close_timeout;
        let mut scratch = [0u8; 512];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match (&*self.stream).read(&mut scratch) {
                // The peer is done sending. Our Close may still be queued for
                // the writer, which ends the socket once it has written it:
                // shutting down here could destroy it before it is sent.
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        // The peer neither closed nor went away in time: end the connection,
        // which also frees a writer blocked on a peer that does not read.
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Read more bytes into the buffer, handling liveness on the way.
    fn fill(&mut self, deadline: Option<Instant>) -> Result<(), Closed> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            let timeout = self.next_timeout(deadline);
            if timeout != self.timeout_set {
                let _ = self.stream.set_read_timeout(timeout);
                self.timeout_set = timeout;
            }
            match (&*self.stream).read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    let _ = self.stream.shutdown(Shutdown::Both);
                    if self.shared.close_sent.is_set() {
                        // We started the close; the peer never finished it.
                        return Err(Closed::new(
                            CloseCode::ABNORMAL,
                            "no answer to our close frame",
                            false,
                        ));
                    }
                    let why = if self.decoder.is_mid_message() {
                        "connection ended in the middle of a message"
                    } else {
                        "connection ended without a close frame"
                    };
                    return Err(Closed::abnormal(why));
                }
                Ok(n) => {
                    self.end += n;
                    if self.end == self.buf.len() && self.buf.len() < self.config.read_buffer {
                        let grown = (self.buf.len() * 2).min(self.config.read_buffer);
                        self.buf.resize(grown, 0);
                    }
                    self.last_heard = Instant::now();
                    self.ping_sent = None;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if timed_out(&e) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(());
                    }
                    self.check_liveness()?;
                }
                Err(e) => {
                    let _ = self.stream.shutdown(Shutdown::Both);
                    return Err(Closed::abnormal(e.to_string()));
                }
            }
        }
    }

    /// How long the next `read` may block.
    fn next_timeout(&self, deadline: Option<Instant>) -> Option<Duration> {
        let now = Instant::now();
        let ping = self
            .config
            .ping_interval
            .map(|interval| match self.ping_sent {
                Some(sent) => (sent + self.config.pong_timeout).saturating_duration_since(now),
                None => (self.last_heard + interval).saturating_duration_since(now),
            });
        let until_deadline = deadline.map(|d| d.saturating_duration_since(now));
        let timeout = match (ping, until_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // A zero timeout means "block forever" to the OS.
        timeout.map(|t| t.max(Duration::from_millis(1)))
    }

    /// Ping a silent peer; give up on one that stays silent (§5.5.2). This
    /// is how a peer that vanished without a FIN is noticed.
    fn check_liveness(&mut self) -> Result<(), Closed> {
        let Some(interval) = self.config.ping_interval else {
            return Ok(());
        };
        let now = Instant::now();
        match self.ping_sent {
            Some(sent) if now >= sent + self.config.pong_timeout => {
                log::debug!(
                    "{}: no answer to our ping within {:?}; dropping it",
                    peer_of(&self.stream),
                    self.config.pong_timeout
                );
                let _ = self.stream.shutdown(Shutdown::Both);
                Err(Closed::new(CloseCode::ABNORMAL, "no answer to ping", false))
            }
            None if now >= self.last_heard + interval => {
                log::debug!(
                    "{}: silent for {interval:?}; sending a ping",
                    peer_of(&self.stream)
                );
                self.ping_sent = Some(now);
                let ping = encode(self.config.role, OpCode::Ping, &[]);
                let _ = self.out.send_control(ping, false);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug)]
struct Writer {
    stream: Arc<TcpStream>,
    data: QueueReceiver<Outgoing>,
    control: Receiver<Control>,
    reader_alive: Receiver<()>,
    shared: Arc<Shared>,
    role: Role,
    max_batch: usize,
    close_timeout: Duration,
}

impl Writer {
    fn run(mut self) {
        let mut batch: Vec<Outgoing> = Vec::new();
        let mut controls: Vec<Outgoing> = Vec::new();
        let (mut data_open, mut control_open) = (true, true);
        while data_open || control_open {
            let never_data = channel::never();
            let never_control = channel::never();
            let data = if data_open {
                self.data.channel()
            } else {
                &never_data
            };
            let control = if control_open {
                &self.control
            } else {
                &never_control
            };
            let mut close = None;
            let mut finish = None;
            let mut controls_taken = 0;
            channel::select_biased! {
                recv(control) -> c => match c {
                    Ok(c) => {
                        controls_taken += 1;
                        self.take_control(c, &mut controls, &mut close, &mut finish);
                    }
                    Err(_) => control_open = false,
                },
                recv(data) -> d => match d {
                    Ok(frame) => batch.push(frame),
                    Err(_) => data_open = false,
                },
            }
            let mut wire = self.shared.wire();
            while close.is_none() {
                match self.control.try_recv() {
                    Ok(c) => {
                        controls_taken += 1;
                        self.take_control(c, &mut controls, &mut close, &mut finish);
                    }
                    Err(_) => break,
                }
            }
            if self.shared.close_sent.is_set() {
                // The reader wrote our Close itself (`Sender::close_now`):
                // only the rest of it may still go out, nothing after it
                // (§5.5.1) — not what was queued, nor a Close of our own.
                let rest = wire.partial.take();
                let written = match &rest {
                    Some(rest) => write_all_vectored(&self.stream, std::slice::from_ref(rest)),
                    None => Ok(()),
                };
                self.data.taken(batch.len());
                self.shared
                    .controls_pending
                    .fetch_sub(controls_taken, Ordering::AcqRel);
                drop(wire);
                batch.clear();
                controls.clear();
                if written.is_err() {
                    let _ = self.stream.shutdown(Shutdown::Both);
                    return;
                }
                if let Some(kind) = finish {
                    end_tcp_after_close(&self.stream, kind, self.role);
                    return;
                }
                continue;
            }
            // Frames queued before a Close go out before it, unless the
            // close is for a peer too slow to read them.
            let flush_all = close.is_some()
                && !matches!(close, Some((_, CloseKind::Initiate { flush: false })));
            if close.is_none() || flush_all {
                let limit = if flush_all {
                    usize::MAX
                } else {
                    self.max_batch
                };
                while batch.len() < limit {
                    match self.data.channel().try_recv() {
                        Ok(frame) => batch.push(frame),
                        Err(_) => break,
                    }
                }
            }
            let taken = batch.len();
            // A partial frame first, then control frames ahead of data.
            let head = wire.partial.take().into_iter().chain(controls.drain(..));
            batch.splice(0..0, head);
            if let Some((payload, _)) = &close {
                let frame = encode(self.role, OpCode::Close, payload);
                trace::frames_out(self.shared.peer, self.role, &frame);
                batch.push(Outgoing::Owned(frame));
                // Set before the write, not after: the peer's answer to our
                // Close can arrive and be read before `write` returns here,
                // and the reader must then take it as the echo of ours, not
                // as a Close of the peer's own to be echoed (§5.5.1, §7.1.1).
                self.shared.close_sent.set(payload);
            }
            let written = write_all_vectored(&self.stream, &batch);
            // Only now, with the frames on the wire, may a sender skip the
            // queue (see `Sender::write_now`).
            self.data.taken(taken);
            self.shared
                .controls_pending
                .fetch_sub(controls_taken, Ordering::AcqRel);
            drop(wire);
            if written.is_err() {
                let _ = self.stream.shutdown(Shutdown::Both);
                return;
            }
            batch.clear();
            if batch.capacity() > 16 {
                // A burst is over; an idle connection keeps no large buffer.
                batch = Vec::new();
            }
            if let Some((_, kind)) = close {
                self.after_close(kind);
                return;
            }
        }
    }

    /// A control request joins the batch (it goes out ahead of queued data,
    /// after a partial frame that must be finished first); a Close ends it.
    fn take_control(
        &self,
        control: Control,
        controls: &mut Vec<Outgoing>,
        close: &mut Option<(Vec<u8>, CloseKind)>,
        finish: &mut Option<CloseKind>,
    ) {
        match control {
            Control::Frame(frame) => controls.push(frame),
            Control::Close(payload, kind) => *close = Some((payload, kind)),
            Control::Resume => {}
            Control::Finish(kind) => *finish = Some(kind),
        }
    }

    /// Our Close is on the wire; finish the TCP side (§7.1.1).
    fn after_close(&mut self, kind: CloseKind) {
        match kind {
            CloseKind::Reply | CloseKind::Fail => {
                end_tcp_after_close(&self.stream, kind, self.role);
            }
            // Wait for the peer's echo; the reader ends when it arrives.
            CloseKind::Initiate { .. } => {
                let deadline = channel::at(Instant::now() + self.close_timeout);
                let mut crossed = false;
                loop {
                    channel::select! {
                        recv(self.reader_alive) -> _ => break,
                        recv(self.control) -> control => match control {
                            // The peer's own Close crossed ours (§1.4):
                            // the reader took it for one to answer, but ours
                            // already does (§5.5.1). The handshake is
                            // complete, so finish as after a reply; waiting
                            // here would stall both sides until the timeout.
                            Ok(Control::Close(_, CloseKind::Reply)) => {
                                crossed = true;
                                break;
                            }
                            // Nothing is sent after our Close.
                            Ok(_) => {}
                            Err(_) => break,
                        },
                        recv(deadline) -> _ => break,
                    }
                }
                if crossed {
                    self.after_close(CloseKind::Reply);
                } else {
                    let _ = self.stream.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

/// Our Close, a reply or a failure, is on the wire: finish the TCP side
/// (§7.1.1). After a complete handshake the server closes TCP first, and
/// after a failure (§7.1.7) either side may; a client that replied waits for
/// the server to close, while its reader lingers.
fn end_tcp_after_close(stream: &TcpStream, kind: CloseKind, role: Role) {
    match (kind, role) {
        (CloseKind::Reply, Role::Server) | (CloseKind::Fail, _) => {
            let _ = stream.shutdown(Shutdown::Write);
        }
        (CloseKind::Reply, Role::Client) => {}
        // The writer waits for the peer's echo (`Writer::after_close`).
        (CloseKind::Initiate { .. }, _) => {}
    }
}

/// The peer's address, for a log line.
fn peer_of(stream: &TcpStream) -> String {
    stream
        .peer_addr()
        .map_or_else(|_| "-".to_owned(), |p| p.to_string())
}

/// The socket had no room just now (or the call was interrupted): the
/// frame goes to the writer's queue instead.
fn no_room(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Offer `bytes` to the kernel without waiting for room: how many it took.
#[cfg(target_os = "linux")]
fn send_without_blocking(stream: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    // MSG_NOSIGNAL: a peer that is gone is an error here, not a SIGPIPE.
    socket2::SockRef::from(stream).send_with_flags(bytes, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
}

/// Elsewhere every frame goes through the writer thread.
#[cfg(not(target_os = "linux"))]
fn send_without_blocking(_: &TcpStream, _: &[u8]) -> io::Result<usize> {
    Err(io::ErrorKind::WouldBlock.into())
}

/// Write every frame, in as few system calls as the kernel allows.
fn write_all_vectored(mut stream: &TcpStream, frames: &[Outgoing]) -> io::Result<()> {
    // At most this many slices per call, kept on the stack: no allocation
    // per write.
    const SLICES: usize = 64;
    for group in frames.chunks(SLICES) {
        let mut storage = [IoSlice::new(&[]); SLICES];
        for (slot, frame) in storage.iter_mut().zip(group) {
            *slot = IoSlice::new(frame.as_ref());
        }
        let mut slices = &mut storage[..group.len()];
        IoSlice::advance_slices(&mut slices, 0);
        while !slices.is_empty() {
            match stream.write_vectored(slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Read a request or response head from a fresh connection: bytes up to the
/// blank line, within `limits`, before `deadline`. Returns the head and any
/// bytes that came after it.
pub fn read_head(
    stream: &mut TcpStream,
    limits: &super::handshake::HeadLimits,
    deadline: Instant,
) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
    let mut scanner = super::handshake::HeadScanner::default();
    let mut buf = Vec::with_capacity(1024);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Timeout);
        }
        stream.set_read_timeout(Some(left)).map_err(HeadError::Io)?;
        // Never more than one byte past the cap, so an oversized head is
        // refused without reading it all.
        let room = (limits.max_head + 1)
            .saturating_sub(buf.len())
            .clamp(1, 1024);
        let filled = buf.len();
        buf.resize(filled + room, 0);
        let read = stream.read(&mut buf[filled..]);
        buf.truncate(filled + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => return Err(HeadError::Eof),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if timed_out(&e) => {
                return Err(HeadError::Timeout);
            }
            Err(e) => return Err(HeadError::Io(e)),
        }
        if let Some(end) = scanner.find_end(&buf, limits).map_err(HeadError::Http)? {
            let rest = buf.split_off(end);
            return Ok((buf, rest));
        }
    }
}

/// A read timeout (`SO_RCVTIMEO`) expired: Unix reports `WouldBlock`,
/// Windows `TimedOut`.
fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Why no request head could be read.
#[derive(Debug)]
pub enum HeadError {
    /// The head breaks a limit; answer with this status.
    Http(super::handshake::HttpError),
    Timeout,
    Eof,
    Io(io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (server, client)
    }

    fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).unwrap();
        let len = match head[1] {
            126 => {
                let mut b = [0u8; 2];
                stream.read_exact(&mut b).unwrap();
                usize::from(u16::from_be_bytes(b))
            }
            n => usize::from(n),
        };
        let mut payload = vec![0; len];
        stream.read_exact(&mut payload).unwrap();
        (head[0], payload)
    }

    fn pong(payload: &[u8]) -> Control {
        Control::Frame(Outgoing::Owned(encode(Role::Server, OpCode::Pong, payload)))
    }

    /// The rest of a frame a sender started goes out before control frames
    /// that were queued while it waited; a Pong first would be read as part
    /// of the frame's payload.
    #[test]
    fn a_partly_sent_frame_is_finished_before_queued_control_frames() {
        let (server, mut client) = pair();
        let (_reader, sender) = start(server, &[], Config::new(Role::Server)).unwrap();
        let frame = encode(Role::Server, OpCode::Binary, &[7; 300]);
        {
            // Stand in for a sender whose send the socket took only in part,
            // while a Pong is queued behind it.
            let mut wire = sender.shared.wire();
            (&*sender.stream).write_all(&frame[..100]).unwrap();
            wire.partial = Some(Outgoing::Owned(frame.clone()).advance(100));
            sender.control.send(pong(b"p")).unwrap();
            sender.control.send(Control::Resume).unwrap();
        }
        assert_eq!(read_frame(&mut client), (0x82, vec![7; 300]));
        assert_eq!(read_frame(&mut client), (0x8A, b"p".to_vec()));
    }

    /// Data does not skip ahead of a queued control frame, nor of a
    /// partly sent frame.
    #[test]
    fn data_waits_behind_a_pending_pong() {
        let (server, mut client) = pair();
        let (_reader, sender) = start(server, &[], Config::new(Role::Server)).unwrap();
        let text = |t: &[u8]| Outgoing::Owned(encode(Role::Server, OpCode::Text, t));
        {
            // Holding the wire keeps the writer from sending the Pong yet;
            // the decision is the one a sender makes once it holds it.
            let mut wire = sender.shared.wire();
            sender.control.send(pong(b"p")).unwrap();
            let queued = sender.write_locked(&mut wire, text(b"after")).unwrap();
            sender
                .data
                .try_send(queued.expect("sent ahead of the Pong"))
                .unwrap();
        }
        assert_eq!(read_frame(&mut client), (0x8A, b"p".to_vec()));
        assert_eq!(read_frame(&mut client), (0x81, b"after".to_vec()));
        {
            let mut wire = sender.shared.wire();
            wire.partial = Some(text(b"partial"));
            let queued = sender.write_locked(&mut wire, text(b"later")).unwrap();
            assert!(queued.is_some(), "sent ahead of a partial frame");
            sender.data.try_send(queued.unwrap()).unwrap();
            sender.control.send(Control::Resume).unwrap();
        }
        assert_eq!(read_frame(&mut client), (0x81, b"partial".to_vec()));
        assert_eq!(read_frame(&mut client), (0x81, b"later".to_vec()));
        {
            let mut wire = sender.shared.wire();
            assert!(
                sender
                    .write_locked(&mut wire, text(b"idle"))
                    .unwrap()
                    .is_none()
            );
        }
        assert_eq!(read_frame(&mut client), (0x81, b"idle".to_vec()));
    }

    /// With the writer idle and nothing queued, the frame goes out from the
    /// sending thread itself.
    #[test]
    fn an_idle_connection_is_written_directly() {
        let (server, mut client) = pair();
        let (_reader, sender) = start(server, &[], Config::new(Role::Server)).unwrap();
        let frame = encode(Role::Server, OpCode::Text, b"now");
        assert!(matches!(sender.write_now(Outgoing::Owned(frame)), Ok(None)));
        assert_eq!(read_frame(&mut client), (0x81, b"now".to_vec()));
    }

    /// A connection whose peer keeps up never starts its writer thread:
    /// data and pings alike go out from the sending thread.
    #[test]
    fn a_connection_that_keeps_up_has_no_writer_thread() {
        let (server, mut client) = pair();
        let (_reader, sender) = start(server, &[], Config::new(Role::Server)).unwrap();
        for i in 0..100u8 {
            sender.send_message(&Message::Binary(vec![i; 100])).unwrap();
            assert_eq!(read_frame(&mut client), (0x82, vec![i; 100]));
        }
        sender.ping(b"still there?").unwrap();
        assert_eq!(read_frame(&mut client), (0x89, b"still there?".to_vec()));
        assert!(!sender.control.writer.is_started());
    }

    /// What the socket does not take starts the writer, which sends it all,
    /// in order, once the peer reads again.
    #[test]
    fn a_peer_that_falls_behind_gets_a_writer() {
        const FRAMES: usize = 128; // 8 MiB: more than loopback buffers hold
        let (server, mut client) = pair();
        let (_reader, sender) = start(server, &[], Config::new(Role::Server)).unwrap();
        let late_reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            (0..FRAMES)
                .map(|_| read_frame_64k(&mut client))
                .collect::<Vec<_>>()
        });
        for i in 0..FRAMES {
            let payload = [(i as u32).to_be_bytes().as_slice(), &[0; 65532]].concat();
            sender.send_message(&Message::Binary(payload)).unwrap();
        }
        assert!(sender.control.writer.is_started());
        let got = late_reader.join().unwrap();
        for (i, (head, payload)) in got.into_iter().enumerate() {
            assert_eq!(head, 0x82);
            assert_eq!(payload.len(), 65536);
            assert_eq!(
                payload[..4],
                (i as u32).to_be_bytes(),
                "frame {i} out of order"
            );
        }
    }

    /// Read until the server ends TCP; what came after the last frame.
    fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        rest
    }

    /// A peer that closes first is answered from the reader's own thread:
    /// the echo, then the server ends TCP (§7.1.1), and no writer thread
    /// is started for that one frame.
    #[test]
    fn a_close_from_the_peer_is_answered_without_a_writer_thread() {
        let (server, mut client) = pair();
        let (mut reader, sender) = start(server, &[], Config::new(Role::Server)).unwrap();
        let reading = std::thread::spawn(move || reader.next_message());
        client
            .write_all(&encode(
                Role::Client,
                OpCode::Close,
                &close_payload(1000, "bye"),
            ))
            .unwrap();
        assert_eq!(read_frame(&mut client), (0x88, close_payload(1000, "")));
        assert_eq!(read_to_eof(&mut client), b"");
        drop(client);
        let closed = reading.join().unwrap().unwrap_err();
        assert_eq!((closed.code, closed.by_peer), (CloseCode::NORMAL, true));
        assert!(!sender.control.writer.is_started());
        assert_eq!(
            sender.try_send(Outgoing::Owned(encode(Role::Server, OpCode::Text, b"late"))),
            Err(TrySend::Disconnected),
            "nothing may follow our Close"
        );
        sender.close(CloseCode::NORMAL, "", true);
        assert!(!sender.control.writer.is_started());
    }

    /// A protocol error is answered the same way: 1002, then TCP ends.
    #[test]
    fn a_protocol_error_is_answered_without_a_writer_thread() {
        let (server, mut client) = pair();
        let (mut reader, sender) = start(server, &[], Config::new(Role::Server)).unwrap();
        let reading = std::thread::spawn(move || reader.next_message());
        // An unmasked frame from a client (§5.1).
        client.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
        let (head, payload) = read_frame(&mut client);
        assert_eq!((head, &payload[..2]), (0x88, &1002u16.to_be_bytes()[..]));
        assert_eq!(read_to_eof(&mut client), b"");
        drop(client);
        let closed = reading.join().unwrap().unwrap_err();
        assert_eq!(
            (closed.code, closed.by_peer),
            (CloseCode::PROTOCOL_ERROR, false)
        );
        assert!(!sender.control.writer.is_started());
    }

    /// With data still queued for a peer that fell behind, the reply waits
    /// its turn behind it (the writer sends it): nothing queued is lost.
    #[test]
    fn a_close_from_a_peer_that_fell_behind_follows_what_was_queued() {
        const FRAMES: usize = 128; // 8 MiB: more than loopback buffers hold
        let (server, mut client) = pair();
        let (mut reader, sender) = start(server, &[], Config::new(Role::Server)).unwrap();
        for i in 0..FRAMES {
            let payload = [(i as u32).to_be_bytes().as_slice(), &[0; 65532]].concat();
            sender.send_message(&Message::Binary(payload)).unwrap();
        }
        assert!(sender.data.queued() > 0, "frames wait in the queue");
        let reading = std::thread::spawn(move || reader.next_message());
        client
            .write_all(&encode(
                Role::Client,
                OpCode::Close,
                &close_payload(1000, ""),
            ))
            .unwrap();
        for i in 0..FRAMES {
            let (head, payload) = read_frame_64k(&mut client);
            assert_eq!((head, &payload[..4]), (0x82, &(i as u32).to_be_bytes()[..]));
        }
        assert_eq!(read_frame(&mut client), (0x88, close_payload(1000, "")));
        assert_eq!(read_to_eof(&mut client), b"");
        drop(client);
        assert!(reading.join().unwrap().unwrap_err().by_peer);
    }

    /// When the socket took only part of a Close the reader wrote, the
    /// writer sends the rest and nothing after it — not data queued
    /// meanwhile — then ends TCP.
    #[test]
    fn the_rest_of_a_partly_written_close_is_the_last_thing_sent() {
        let (server, mut client) = pair();
        let (_reader, sender) = start(server, &[], Config::new(Role::Server)).unwrap();
        let close = encode(Role::Server, OpCode::Close, &close_payload(1000, "done"));
        {
            // Stand in for `close_now` after a partial send, with a frame a
            // sender queued while the reader held the wire.
            let mut wire = sender.shared.wire();
            (&*sender.stream).write_all(&close[..3]).unwrap();
            sender.shared.close_sent.set(&close_payload(1000, "done"));
            wire.partial = Some(Outgoing::Owned(close.clone()).advance(3));
            let late = Outgoing::Owned(encode(Role::Server, OpCode::Text, b"late"));
            sender.data.try_send(late).unwrap();
            sender.control.writer.start();
            sender
                .control
                .send(Control::Finish(CloseKind::Reply))
                .unwrap();
        }
        assert_eq!(read_frame(&mut client), (0x88, close_payload(1000, "done")));
        assert_eq!(read_to_eof(&mut client), b"", "nothing after our Close");
    }

    fn read_frame_64k(stream: &mut TcpStream) -> (u8, Vec<u8>) {
        let mut head = [0u8; 10];
        stream.read_exact(&mut head).unwrap();
        assert_eq!(head[1], 127, "a 64-bit length");
        let len = u64::from_be_bytes(head[2..].try_into().unwrap()) as usize;
        let mut payload = vec![0; len];
        stream.read_exact(&mut payload).unwrap();
        (head[0], payload)
    }
}
