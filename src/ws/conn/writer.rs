//! The writer thread: started the first time something is queued for a
//! connection (a peer that reads more slowly than we send, or a Close that
//! cannot go out at once), it then drains the queues for the connection's
//! life, blocking on the socket so that nobody else does.
//!
//! It wakes for queued data and for what the control queue brings: control
//! frames (pings and pongs, which go out ahead of data) and wake-ups, which
//! carry nothing and are never written: they say the wire or the pending
//! Close changed (a sender left the rest of a frame in [`Wire::partial`], or
//! a Close was asked for). Whatever is queued when it
//! wakes goes out in one `write_vectored` call.
//!
//! [`Wire::partial`]: super::wire::Wire::partial

use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{self as channel, Receiver};

use super::closing::{CloseKind, CloseRequest, end_tcp_after_close};
use super::queue::QueueReceiver;
use super::wire::{Link, Outgoing, write_all_vectored};
use crate::ws::frame::{OpCode, Role};
use crate::ws::trace;

/// A connection's writer before it is needed. Whoever queues something (or
/// sends a wake-up) calls [`WriterSlot::start`] right after, so anything in
/// a queue — and a full queue a sender waits on — has a writer thread on its
/// way to drain it.
#[derive(Debug)]
pub struct WriterSlot {
    writer: Mutex<Option<Writer>>,
    stack: usize,
}

impl WriterSlot {
    pub fn new(writer: Writer, stack: usize) -> WriterSlot {
        WriterSlot {
            writer: Mutex::new(Some(writer)),
            stack,
        }
    }

    /// Start the writer thread unless it is running (or has run) already.
    pub fn start(&self) {
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
    pub fn is_started(&self) -> bool {
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }
}

/// Every page a thread's stack touches once stays resident for the
/// thread's life, and spawning a thread (glibc maps the stack, clones) is
/// one of the deepest calls a reader can make (for a Close, or a Pong the
/// socket had no room for): so the writer is spawned from this small frame
/// of its own. `scripts/lab/stack-depth` measures what a reader keeps.
#[inline(never)]
fn spawn_writer(writer: Writer, stack: usize) -> io::Result<()> {
    std::thread::Builder::new()
        .name("ws-writer".into())
        .stack_size(stack)
        .spawn(move || writer.run())
        .map(drop)
}

/// What the control queue carries to the writer.
#[derive(Debug)]
pub enum ToWriter {
    /// An encoded Ping or Pong, counted in `Link::controls_pending`.
    Control(Outgoing),
    /// Nothing to send: look at the wire and the pending Close again.
    Wake,
}

#[derive(Debug)]
pub struct Writer {
    pub stream: Arc<TcpStream>,
    pub link: Arc<Link>,
    pub data: QueueReceiver<Outgoing>,
    pub control: Receiver<ToWriter>,
    /// Disconnected when the reader is done; the writer waits on it after
    /// starting a close.
    pub reader_alive: Receiver<()>,
    pub role: Role,
    pub max_batch: usize,
    pub close_timeout: Duration,
}

impl Writer {
    fn run(self) {
        let mut batch: Vec<Outgoing> = Vec::new();
        let mut controls: Vec<Outgoing> = Vec::new();
        // The channels close when every sender is gone: once the data queue
        // is drained, nothing more will come.
        let (mut data_open, mut control_open) = (true, true);
        while data_open || control_open {
            let (never_data, never_control) = (channel::never(), channel::never());
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
            channel::select_biased! {
                recv(control) -> c => match c {
                    Ok(ToWriter::Control(frame)) => controls.push(frame),
                    Ok(ToWriter::Wake) => {}
                    Err(_) => control_open = false,
                },
                recv(data) -> d => match d {
                    Ok(frame) => batch.push(frame),
                    Err(_) => data_open = false,
                },
            }
            let mut wire = self.link.wire();
            controls.extend(self.control.try_iter().filter_map(|item| match item {
                ToWriter::Control(frame) => Some(frame),
                ToWriter::Wake => None,
            }));
            let controls_taken = controls.len();
            if self.link.handshake.is_sent() {
                // The reader wrote our Close itself (`Sender::close_now`):
                // only the rest of it may still go out, nothing after it
                // (§5.5.1) — not what was queued, nor a Close of our own.
                let rest = wire.partial.take();
                let then_end = wire.then_end.take();
                let written = match &rest {
                    Some(rest) => write_all_vectored(&self.stream, std::slice::from_ref(rest)),
                    None => Ok(()),
                };
                self.data.taken(batch.len());
                self.link
                    .controls_pending
                    .fetch_sub(controls_taken, Ordering::AcqRel);
                drop(wire);
                batch.clear();
                controls.clear();
                if written.is_err() {
                    let _ = self.stream.shutdown(Shutdown::Both);
                    return;
                }
                if let Some(kind) = then_end {
                    end_tcp_after_close(&self.stream, kind, self.role);
                    return;
                }
                continue;
            }
            let close = self.link.pending_close.take();
            // Frames queued before a Close go out before it, unless the
            // close is for a peer too slow to read them.
            let flush_all = close
                .as_ref()
                .is_some_and(|c| c.kind != CloseKind::Initiate { flush: false });
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
            if let Some(CloseRequest { payload, .. }) = &close {
                let frame = super::encode(self.role, OpCode::Close, payload);
                trace::frames_out(self.link.peer, self.role, &frame);
                batch.push(Outgoing::Owned(frame));
                // Recorded before the write, not after: the peer's answer to
                // our Close can arrive and be read before `write` returns
                // here, and the reader must then take it as the echo of
                // ours, not as a Close of the peer's own (§5.5.1, §7.1.1).
                self.link.handshake.send(payload);
            }
            let written = write_all_vectored(&self.stream, &batch);
            // Only now, with the frames on the wire, may a sender skip the
            // queue (the wire-order rule in `wire.rs`).
            self.data.taken(taken);
            self.link
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
            if let Some(close) = close {
                self.after_close(close.kind);
                return;
            }
        }
    }

    /// Our Close is on the wire; finish the TCP side (§7.1.1).
    fn after_close(&self, kind: CloseKind) {
        if !matches!(kind, CloseKind::Initiate { .. }) {
            end_tcp_after_close(&self.stream, kind, self.role);
            return;
        }
        // Wait for the peer's echo; the reader ends when it arrives.
        let deadline = channel::at(Instant::now() + self.close_timeout);
        loop {
            // The peer's own Close crossed ours (§1.4): the reader took it
            // for one to answer, but ours already does (§5.5.1). The
            // handshake is complete, so finish as after a reply; waiting
            // here would stall both sides until the timeout.
            if self.link.handshake.state().received().is_some() {
                end_tcp_after_close(&self.stream, CloseKind::Reply, self.role);
                return;
            }
            channel::select! {
                recv(self.reader_alive) -> _ => break,
                // A wake-up (the reader may have taken the peer's Close),
                // or a control frame: nothing is sent after our Close, but a
                // reader blocked on a full control queue is let go.
                recv(self.control) -> control => if control.is_err() { break },
                recv(deadline) -> _ => break,
            }
        }
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
