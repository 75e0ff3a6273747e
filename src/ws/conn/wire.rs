//! The wire: the socket's sending side, shared by every thread that sends on
//! one connection, and the one rule that keeps frames whole and in order.
//!
//! **The wire-order rule.** A frame goes onto the wire only when nothing is
//! waiting to go out ahead of it: no rest of a frame the socket took in part
//! ([`Wire::partial`]), no queued data, no queued control frame. Whoever
//! writes holds the connection's wire lock: a sending thread (the hub, a
//! reader answering a ping) only ever *tries* it and, when it is busy or
//! something waits ahead, queues its frame for the writer thread instead.
//! The queue counts include frames the writer has taken but not yet written
//! — the writer reports them written ([`QueueReceiver::taken`],
//! [`Link::controls_pending`]) only after its write, while it still holds the
//! lock — so under the lock [`Link::nothing_before`] is exact: a frame can
//! never overtake one queued before it, and frames never interleave.
//!
//! [`QueueReceiver::taken`]: super::queue::QueueReceiver::taken

use std::io::{self, IoSlice, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::closing::{CloseKind, Handshake, PendingClose};
use super::queue::QueueSender;
use crate::ws::counters::WIRE;

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
    pub fn advance(self, n: usize) -> Outgoing {
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

/// What the wire lock guards.
#[derive(Debug, Default)]
pub struct Wire {
    /// The rest of a frame a sender started on the wire and the socket did
    /// not take whole. It must go out next, before any other frame, or the
    /// peer would read the middle of one frame as the start of another.
    pub partial: Option<Outgoing>,
    /// Set when `partial` is the rest of a Close the reader wrote itself:
    /// once it is out, nothing follows, and TCP ends as this kind requires.
    pub then_end: Option<CloseKind>,
}

/// What one connection's reader, writer and senders share.
#[derive(Debug, Default)]
pub struct Link {
    /// Held while writing to the socket.
    wire: Mutex<Wire>,
    /// The closing handshake's state.
    pub handshake: Handshake,
    /// The Close the writer is asked to send.
    pub pending_close: PendingClose,
    /// Control frames queued and not yet written. Data skips the queue only
    /// when there are none, so that a Pong is never overtaken by a message
    /// sent after it.
    pub controls_pending: AtomicUsize,
    /// The peer's address, when frames are traced.
    pub peer: Option<SocketAddr>,
}

impl Link {
    pub fn new(peer: Option<SocketAddr>) -> Link {
        Link {
            peer,
            ..Link::default()
        }
    }

    /// Take the wire lock, waiting for it (the writer thread does).
    pub fn wire(&self) -> MutexGuard<'_, Wire> {
        self.wire.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take the wire lock if it is free (sending threads do).
    pub fn try_wire(&self) -> Option<MutexGuard<'_, Wire>> {
        self.wire.try_lock().ok()
    }

    /// The wire-order rule (see the module doc): nothing is waiting to go
    /// out ahead of a frame written now. Exact only under the wire lock,
    /// which `wire` proves is held.
    pub fn nothing_before<T>(&self, wire: &Wire, data: &QueueSender<T>) -> bool {
        wire.partial.is_none()
            && data.queued() == 0
            && self.controls_pending.load(Ordering::Acquire) == 0
    }
}

/// The socket had no room just now (or the call was interrupted): the
/// frame goes to the writer's queue instead.
pub fn no_room(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Offer `bytes` to the kernel without waiting for room: how many it took.
#[cfg(target_os = "linux")]
pub fn send_without_blocking(stream: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    // MSG_NOSIGNAL: a peer that is gone is an error here, not a SIGPIPE.
    let sent = socket2::SockRef::from(stream)
        .send_with_flags(bytes, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)?;
    WIRE.wrote(sent);
    Ok(sent)
}

/// Elsewhere every frame goes through the writer thread.
#[cfg(not(target_os = "linux"))]
pub fn send_without_blocking(_: &TcpStream, _: &[u8]) -> io::Result<usize> {
    Err(io::ErrorKind::WouldBlock.into())
}

/// Write every frame, in as few system calls as the kernel allows.
pub fn write_all_vectored(mut stream: &TcpStream, frames: &[Outgoing]) -> io::Result<()> {
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
                Ok(n) => {
                    WIRE.wrote(n);
                    IoSlice::advance_slices(&mut slices, n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}
