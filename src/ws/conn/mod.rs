//! Connection I/O: the thin blocking layer between a `TcpStream` and the
//! sans-IO codec.
//!
//! Each connection has a *reader* thread ([`reader`]: the caller's thread,
//! which owns the [`Decoder`](crate::ws::Decoder), answers pings and the
//! peer's Close, and notices a silent peer), and a *writer* thread
//! ([`writer`]) only once it needs one. A frame for a connection with
//! nothing queued is sent by the sending thread itself ([`sender`]), with a
//! send that cannot block; only what the socket does not take is queued,
//! and the first time that happens — a client reading more slowly than we
//! send — the writer thread starts and stays. Whoever writes holds the
//! connection's wire lock; the rule that keeps frames whole and in order is
//! in [`wire`]. The data queue ([`queue`]) is bounded by a count (a full one
//! is how a chat hub notices a client that stopped reading); pings and
//! pongs take a small control queue, so they are never stuck behind data.
//!
//! The closing handshake (§5.5.1, §7.1) is in [`closing`]: its state, the
//! one Close a connection may be asked to send, and how it ended. Our Close
//! is sent by the writer — or, when the reader answers the peer's Close or
//! a protocol error and nothing is queued, by the reader itself, so that a
//! peer going away does not start a thread for one frame. When both sides
//! have closed, the server closes TCP first (§7.1.1); a client waits for the
//! server to. Every wait is bounded by a timeout.

pub mod closing;
pub mod queue;
mod reader;
mod sender;
pub mod wire;
mod writer;

#[cfg(test)]
mod tests;

use std::io;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{self as channel, Receiver};

pub use closing::{CloseState, Closed};
pub use queue::TrySend;
use queue::{QueueReceiver, QueueSender, queue};
use reader::ReadLoop;
pub use reader::Reader;
pub(crate) use reader::timed_out;
pub use sender::{Disconnected, Sender, encode};
use wire::Link;
pub use wire::Outgoing;
use writer::{ToWriter, Writer, WriterSlot};

use super::extension::InUse;
use super::frame::Role;
use super::message::{Decoder, Limits};
use super::trace;

/// Per-connection settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub role: Role,
    pub limits: Limits,
    /// Items the data queue holds before [`Sender::try_send`] reports it
    /// full. An item is a frame, or a hub's whole batch of frames.
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
    /// The defaults, which are also the `wschat` binary's.
    pub const fn new(role: Role) -> Config {
        Config {
            role,
            limits: Limits::CHAT,
            queue_len: 1024,
            read_buffer: 16 * 1024,
            max_batch: 64,
            write_timeout: Some(Duration::from_secs(30)),
            close_timeout: Duration::from_secs(5),
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(10),
            writer_stack: 64 * 1024,
        }
    }
}

/// The reader's first buffer: room for a typical chat message.
const INITIAL_READ_BUFFER: usize = 512;

/// Start a connection over an upgraded stream. `leftover` holds bytes read
/// past the handshake, which already belong to the first frames;
/// `extension` is the one negotiated in the handshake, if any: the reader's
/// decoder runs its receiving half, the senders its sending half
/// ([`crate::ws::extension`]).
///
/// Returns the two halves; the writer thread starts when it is first needed.
pub fn start(
    stream: TcpStream,
    leftover: &[u8],
    config: Config,
    extension: Option<InUse>,
) -> io::Result<(Reader, Sender)> {
    let channels = Channels::new(config.queue_len);
    halves(stream, leftover, config, channels, extension)
}

/// The channels between a connection's reader, senders and writer. Built
/// in a frame of their own: every page a reader thread's stack touches once
/// stays resident for the connection's life, and inlined into one frame
/// their constructors' frames add up.
struct Channels {
    data: (QueueSender<Outgoing>, QueueReceiver<Outgoing>),
    control: (channel::Sender<ToWriter>, Receiver<ToWriter>),
    alive: (channel::Sender<()>, Receiver<()>),
}

impl Channels {
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

/// The reader and sender of a new connection, and its writer, not yet
/// started.
#[inline(never)]
fn halves(
    stream: TcpStream,
    leftover: &[u8],
    config: Config,
    channels: Channels,
    extension: Option<InUse>,
) -> io::Result<(Reader, Sender)> {
    let _ = stream.set_nodelay(true);
    stream.set_write_timeout(config.write_timeout)?;
    let peer = if trace::enabled() {
        stream.peer_addr().ok()
    } else {
        None
    };
    // Reader and writer share one socket: `&TcpStream` reads and writes,
    // so no second file descriptor is needed per connection.
    let stream = Arc::new(stream);
    let Channels {
        data: (data_tx, data_rx),
        control: (control_tx, control_rx),
        alive: (alive_tx, alive_rx),
    } = channels;
    let link = Arc::new(Link::new(peer));
    let (receive, encoder) = match extension {
        Some(InUse { receive, send }) => (Some(receive), send),
        None => (None, None),
    };
    let writer = Writer {
        stream: Arc::clone(&stream),
        link: Arc::clone(&link),
        data: data_rx,
        control: control_rx,
        reader_alive: alive_rx,
        role: config.role,
        max_batch: config.max_batch.max(1),
        close_timeout: config.close_timeout,
    };
    let sender = Sender {
        role: config.role,
        stream: Arc::clone(&stream),
        link: Arc::clone(&link),
        data: data_tx,
        control: control_tx,
        writer: Arc::new(WriterSlot::new(writer, config.writer_stack)),
        encoder,
    };
    let mut buf = vec![
        0;
        INITIAL_READ_BUFFER
            .min(config.read_buffer)
            .max(leftover.len())
            .max(64)
    ];
    buf[..leftover.len()].copy_from_slice(leftover);
    let mut decoder = Decoder::with_extension(config.role, config.limits, receive);
    decoder.trace_as(peer);
    let reader = ReadLoop {
        stream,
        decoder,
        buf,
        start: 0,
        end: leftover.len(),
        out: sender.clone(),
        link,
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
