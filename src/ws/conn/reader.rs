//! The receiving half of a connection, driven by the connection's own
//! thread: it reads into one small reusable buffer, feeds the [`Decoder`],
//! answers pings (§5.5.2) and the peer's Close (§5.5.1), pings a silent peer
//! and gives up on one that stays silent.

use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel as channel;

use super::Config;
use super::closing::{CloseKind, CloseRequest, CloseState, Closed, payload_code};
use super::sender::{Sender, encode};
use super::wire::Link;
use crate::ws::close::{CloseCode, CloseFrame};
use crate::ws::counters::WIRE;
use crate::ws::frame::{OpCode, Role, close_payload};
use crate::ws::message::{Decoder, Event, Message};

/// The receiving half, driven by the connection's own thread.
///
/// Its state is on the heap: whatever page of a thread's stack is touched
/// once stays resident for the thread's life, and the state moved by value
/// through the handshake and the application's frames would push a
/// connection's reader onto a third stack page.
pub struct Reader(pub(super) Box<ReadLoop>);

impl Reader {
    /// Block until the next data message. `Err` means the connection is over
    /// (and has been shut down properly); every later call returns the same.
    pub fn next_message(&mut self) -> Result<Message, Closed> {
        self.0.next_message(None).map(|m| m.expect("no deadline"))
    }

    /// Like [`Reader::next_message`], but gives up after `timeout` with
    /// `Ok(None)`; the partial frame, if any, stays buffered.
    pub fn next_message_timeout(&mut self, timeout: Duration) -> Result<Option<Message>, Closed> {
        self.0.next_message(Some(Instant::now() + timeout))
    }
}

pub(super) struct ReadLoop {
    pub stream: Arc<TcpStream>,
    pub config: Config,
    pub decoder: Decoder,
    pub buf: Vec<u8>,
    pub start: usize,
    pub end: usize,
    /// For pongs, pings and our Close.
    pub out: Sender,
    pub link: Arc<Link>,
    /// Dropped when the reader is done (it has returned `Err`, or the
    /// `Reader` itself is dropped); the writer waits on it after starting a
    /// close.
    pub alive: Option<channel::Sender<()>>,
    pub last_heard: Instant,
    pub ping_sent: Option<Instant>,
    pub timeout_set: Option<Duration>,
    /// The code of a Close this reader handed to the writer, not yet sent.
    pub close_queued: Option<CloseCode>,
    pub closed: Option<Closed>,
}

impl ReadLoop {
    /// The next message, or `Ok(None)` once `deadline` passes.
    fn next_message(&mut self, deadline: Option<Instant>) -> Result<Option<Message>, Closed> {
        if let Some(closed) = &self.closed {
            return Err(closed.clone());
        }
        loop {
            match self.run(deadline) {
                Ok(None) if deadline.is_none() => continue,
                Ok(message) => return Ok(message),
                Err(closed) => return Err(self.finish(closed)),
            }
        }
    }

    /// The connection is over: remember how, and release a writer waiting
    /// for the closing handshake (§7.1.1) now rather than when the `Reader`
    /// is dropped, so that it ends and later sends fail with `Disconnected`.
    fn finish(&mut self, mut closed: Closed) -> Closed {
        closed.sent = self.link.handshake.state().sent().or(self.close_queued);
        WIRE.closed(&closed);
        self.closed = Some(closed.clone());
        self.alive = None;
        closed
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
                        if self.link.handshake.is_sent() {
                            continue; // §5.5.1: we are closing; data is discarded.
                        }
                        return Ok(Some(message));
                    }
                    Some(Event::Ping(payload)) => {
                        if !self.link.handshake.is_sent() {
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

    /// The peer's Close arrived: echo it unless it answers ours (§5.5.1),
    /// then let the socket go.
    fn peer_closed(&mut self, frame: Option<CloseFrame>) -> Closed {
        let (code, reason) = match &frame {
            Some(f) => (f.code, f.reason.clone()),
            None => (CloseCode::NO_STATUS, String::new()),
        };
        let before = self.link.handshake.receive(code);
        let we_closed_first = matches!(before, CloseState::CloseSent { .. });
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

    /// Send our Close from this thread if nothing is queued, else hand it to
    /// the writer, behind what is.
    fn queue_close(&mut self, payload: Vec<u8>, kind: CloseKind) {
        self.close_queued = Some(payload_code(&payload));
        if self.out.close_now(&payload, kind) {
            return;
        }
        if self
            .out
            .request_close(CloseRequest { payload, kind })
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
                    if self.link.handshake.is_sent() {
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
                    WIRE.read(n);
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

/// The peer's address, for a log line.
fn peer_of(stream: &TcpStream) -> String {
    stream
        .peer_addr()
        .map_or_else(|_| "-".to_owned(), |p| p.to_string())
}

/// A read timeout (`SO_RCVTIMEO`) expired: Unix reports `WouldBlock`,
/// Windows `TimedOut`.
pub(crate) fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
