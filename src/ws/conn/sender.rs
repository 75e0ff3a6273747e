//! The sending half of a connection: a frame goes to the socket from the
//! sending thread itself when the wire is free and nothing waits ahead of it
//! (the wire-order rule, `wire.rs`), else into the writer thread's queues.
//!
//! Waking a sleeping thread costs more than the send itself, and most
//! sockets have room most of the time: so the hub's broadcast to a client
//! that keeps up costs one non-blocking `send` and no wake-up.

use std::cell::RefCell;
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel as channel;

use super::closing::{CloseKind, CloseRequest, end_tcp_after_close};
use super::queue::QueueSender;
pub use super::queue::TrySend;
use super::wire::{Link, Outgoing, Wire, no_room, send_without_blocking};
use super::writer::{ToWriter, WriterSlot};
use crate::ws::broadcast::{Batch, Mark};
use crate::ws::close::CloseCode;
use crate::ws::extension::{Encoder, encode_message};
use crate::ws::frame::{OpCode, Role, close_payload, encode_frame};
use crate::ws::mask::MaskSource;
use crate::ws::message::Message;
use crate::ws::trace;

/// Encode one frame the way `role` must send it: masked with a fresh
/// unpredictable key by a client (§5.3), unmasked by a server.
pub fn encode(role: Role, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, true, opcode, payload, mask_key(role));
    out
}

/// The masking key of a frame `role` sends: a fresh unpredictable one from
/// a client (§5.3, §10.3), none from a server.
fn mask_key(role: Role) -> Option<[u8; 4]> {
    thread_local! {
        static KEYS: RefCell<Option<MaskSource>> = const { RefCell::new(None) };
    }
    match role {
        Role::Server => None,
        Role::Client => {
            Some(KEYS.with(|k| k.borrow_mut().get_or_insert_with(MaskSource::new).key()))
        }
    }
}

/// The connection is gone, or closing: nothing more can be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disconnected;

/// The sending half: cheap to clone, usable from any thread.
#[derive(Clone, Debug)]
pub struct Sender {
    pub(super) role: Role,
    pub(super) stream: Arc<TcpStream>,
    pub(super) link: Arc<Link>,
    pub(super) data: QueueSender<Outgoing>,
    /// Pings and pongs, which go out ahead of data, and wake-ups.
    pub(super) control: channel::Sender<ToWriter>,
    pub(super) writer: Arc<WriterSlot>,
    /// The negotiated extension's sending half, if any: data messages go
    /// through it, and broadcasts use its shared encoding.
    pub(super) encoder: Option<Arc<dyn Encoder>>,
}

impl Sender {
    /// Send an encoded frame, blocking while the queue is full.
    pub fn send(&self, frame: Outgoing) -> Result<(), Disconnected> {
        match self.write_now(frame) {
            Ok(None) => Ok(()),
            Ok(Some(frame)) => {
                self.data.send(frame).map_err(|_| Disconnected)?;
                self.writer.start();
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
                    self.writer.start();
                }
                queued
            }
            Err(why) => Err(why),
        }
    }

    /// Send one text message from the server without blocking (a reply to
    /// this client alone: a welcome, an error).
    pub fn try_send_text(&self, text: &str) -> Result<(), TrySend> {
        self.try_send(Outgoing::Owned(
            self.encode_data(OpCode::Text, text.as_bytes()),
        ))
    }

    /// One data message as one frame: through the negotiated extension if
    /// there is one (which may transform it and set RSV bits, §5.8), masked
    /// with a fresh key by a client (§5.3).
    fn encode_data(&self, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let Some(encoder) = self.encoder.as_deref() else {
            return encode(self.role, opcode, payload);
        };
        let mut out = Vec::new();
        encode_message(
            Some(encoder),
            &mut out,
            opcode,
            payload,
            mask_key(self.role),
        );
        out
    }

    /// Send this receiver's share of a broadcast batch without blocking:
    /// everything, or what follows `from` (see [`Batch::for_receiver`]).
    pub fn try_send_batch(&self, batch: &Batch, from: Option<Mark>) -> Result<(), TrySend> {
        match batch.for_receiver(from, self.encoder.as_deref()) {
            Some(item) => self.try_send(item),
            None => Ok(()),
        }
    }

    /// Send this receiver's shares of several broadcast batches (one per
    /// room it is in) as one hand-over: one send, however many rooms. The
    /// shares are joined in a buffer of this receiver's own when there is
    /// more than one.
    pub fn try_send_batches(&self, shares: &[(&Batch, Option<Mark>)]) -> Result<(), TrySend> {
        let mut items: Vec<Outgoing> = shares
            .iter()
            .filter_map(|(batch, from)| batch.for_receiver(*from, self.encoder.as_deref()))
            .collect();
        if items.len() > 1 {
            let mut joined = Vec::with_capacity(items.iter().map(|i| i.as_ref().len()).sum());
            for item in &items {
                joined.extend_from_slice(item.as_ref());
            }
            items = vec![Outgoing::Owned(joined)];
        }
        match items.pop() {
            Some(item) => self.try_send(item),
            None => Ok(()),
        }
    }

    /// Encode and send a data message as one frame.
    pub fn send_message(&self, message: &Message) -> Result<(), Disconnected> {
        let (opcode, payload) = match message {
            Message::Text(text) => (OpCode::Text, text.as_bytes()),
            Message::Binary(bytes) => (OpCode::Binary, bytes.as_slice()),
        };
        self.send(Outgoing::Owned(self.encode_data(opcode, payload)))
    }

    /// Send a Ping; the reader reports nothing for the Pong.
    pub fn ping(&self, payload: &[u8]) -> Result<(), Disconnected> {
        let payload = &payload[..payload.len().min(125)];
        self.send_control(encode(self.role, OpCode::Ping, payload), true)
    }

    /// Start the closing handshake. With `flush`, frames already queued are
    /// sent first; without, they are dropped (for a peer that is too slow
    /// to read them anyway). Does not block, and is never lost: the Close
    /// waits in the connection's one pending-Close slot for the writer.
    pub fn close(&self, code: CloseCode, reason: &str, flush: bool) {
        if self.link.handshake.is_sent() {
            return; // Ours is out already; nothing may follow it (§5.5.1).
        }
        // Err: the writer is gone, and the connection with it.
        let _ = self.request_close(CloseRequest {
            payload: close_payload(code.0, reason),
            kind: CloseKind::Initiate { flush },
        });
    }

    /// Hand a Close to the writer; `Err` when the writer is gone.
    pub(super) fn request_close(&self, request: CloseRequest) -> Result<(), Disconnected> {
        self.link.pending_close.request(request);
        self.wake_writer()
    }

    /// Tell the writer the wire or the pending Close changed, and make sure
    /// it runs.
    pub(super) fn wake_writer(&self) -> Result<(), Disconnected> {
        // Full: the writer has items waiting already, and looks at the
        // wire and the pending Close when it takes each of them.
        if let Err(channel::TrySendError::Disconnected(_)) = self.control.try_send(ToWriter::Wake) {
            return Err(Disconnected);
        }
        self.writer.start();
        Ok(())
    }

    /// Send an encoded Ping or Pong: now if the wire is free, else ahead of
    /// queued data. With `wait`, blocks while the control queue is full.
    pub(super) fn send_control(&self, frame: Vec<u8>, wait: bool) -> Result<(), Disconnected> {
        match self.write_now(Outgoing::Owned(frame)) {
            Ok(None) => Ok(()),
            Ok(Some(frame)) => self.queue_control(frame, wait),
            Err(_) => Err(Disconnected),
        }
    }

    /// Queue a Ping or Pong for the writer, counted in
    /// [`Link::controls_pending`] until it is written.
    pub(super) fn queue_control(&self, frame: Outgoing, wait: bool) -> Result<(), Disconnected> {
        self.link.controls_pending.fetch_add(1, Ordering::AcqRel);
        let queued = if wait {
            self.control.send(ToWriter::Control(frame)).is_ok()
        } else {
            self.control.try_send(ToWriter::Control(frame)).is_ok()
        };
        if !queued {
            self.link.controls_pending.fetch_sub(1, Ordering::AcqRel);
            return Err(Disconnected);
        }
        self.writer.start();
        Ok(())
    }

    /// Write `frame` from this thread if the wire is free and nothing is
    /// queued before it; `Ok(Some(frame))` hands it back for the queue.
    pub(super) fn write_now(&self, frame: Outgoing) -> Result<Option<Outgoing>, TrySend> {
        trace::frames_out(self.link.peer, self.role, frame.as_ref());
        let Some(mut wire) = self.link.try_wire() else {
            return Ok(Some(frame)); // The writer is busy: join its queue.
        };
        self.write_locked(&mut wire, frame)
    }

    pub(super) fn write_locked(
        &self,
        wire: &mut Wire,
        frame: Outgoing,
    ) -> Result<Option<Outgoing>, TrySend> {
        if self.link.handshake.is_sent() {
            return Err(TrySend::Disconnected);
        }
        if !self.link.nothing_before(wire, &self.data) {
            return Ok(Some(frame));
        }
        let bytes = frame.as_ref();
        match send_without_blocking(&self.stream, bytes) {
            Ok(n) if n == bytes.len() => Ok(None),
            Ok(n) if n > 0 => {
                wire.partial = Some(frame.advance(n));
                // The writer finishes the frame before anything else.
                let _ = self.wake_writer();
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

    /// Write our Close (a reply, or a failure) from this thread when the
    /// wire is free and nothing is queued, then end TCP as `kind` requires;
    /// `false`, having written nothing, when it must go through the writer,
    /// behind what is queued.
    ///
    /// A peer that closes first — a browser tab going away — is answered
    /// without starting a writer thread for one frame.
    pub(super) fn close_now(&self, payload: &[u8], kind: CloseKind) -> bool {
        let Some(mut wire) = self.link.try_wire() else {
            return false;
        };
        if self.link.handshake.is_sent() || !self.link.nothing_before(&wire, &self.data) {
            return false;
        }
        let frame = encode(self.role, OpCode::Close, payload);
        trace::frames_out(self.link.peer, self.role, &frame);
        match send_without_blocking(&self.stream, &frame) {
            Ok(n) if n == frame.len() => {
                self.link.handshake.send(payload);
                drop(wire);
                end_tcp_after_close(&self.stream, kind, self.role);
                true
            }
            Ok(n) if n > 0 => {
                // Part of our Close is out: from here on only its rest may
                // follow, and the writer is the one who can wait to send it.
                self.link.handshake.send(payload);
                wire.partial = Some(Outgoing::Owned(frame).advance(n));
                wire.then_end = Some(kind);
                drop(wire);
                if self.wake_writer().is_err() {
                    let _ = self.stream.shutdown(Shutdown::Both);
                }
                true
            }
            Ok(_) => false,
            Err(e) if no_room(&e) => false,
            Err(_) => {
                self.link.handshake.send(payload);
                let _ = self.stream.shutdown(Shutdown::Both);
                true
            }
        }
    }
}
