//! The closing handshake (RFC 6455 §5.5.1, §7.1): its state, the close a
//! connection is asked to make, and how a connection ended.
//!
//! ```text
//!            our Close sent                    peer's Close received
//!   Open ─────────────────────► CloseSent          Open ──────────► CloseReceived
//!                                   │ peer's Close                       │ our Close sent
//!                                   ▼ received                           ▼ (the echo)
//!                                 Closed                               Closed
//! ```
//!
//! After our Close nothing more may be sent (§5.5.1); a Close that arrives
//! after ours is its answer, one that arrives before it is the peer's own and
//! is echoed. When both are done the server closes TCP first (§7.1.1).
//!
//! The state is read by the reader without waiting (it must discard data
//! once we have closed, even while the writer is blocked in a long write), so
//! it lives in one atomic word rather than behind the wire lock: every
//! transition is a single compare-and-swap, and each side's Close is recorded
//! once, with its code.

use std::fmt;
use std::net::{Shutdown, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ws::close::CloseCode;
use crate::ws::frame::Role;

/// Where the closing handshake stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseState {
    Open,
    /// Ours is written (or being written); the peer's answer is awaited.
    CloseSent {
        sent: CloseCode,
    },
    /// The peer's arrived first; ours, the echo, is still to go out.
    CloseReceived {
        received: CloseCode,
    },
    /// Both Close frames have crossed the wire.
    Closed {
        sent: CloseCode,
        received: CloseCode,
    },
}

impl CloseState {
    pub fn sent(self) -> Option<CloseCode> {
        match self {
            CloseState::CloseSent { sent } | CloseState::Closed { sent, .. } => Some(sent),
            _ => None,
        }
    }

    pub fn received(self) -> Option<CloseCode> {
        match self {
            CloseState::CloseReceived { received } | CloseState::Closed { received, .. } => {
                Some(received)
            }
            _ => None,
        }
    }
}

/// [`CloseState`] in one atomic word, shared by a connection's reader,
/// writer and senders: bit 32 "ours sent", bit 33 "theirs received", the
/// codes in the low 32 bits (ours low, theirs high).
#[derive(Debug, Default)]
pub struct Handshake(AtomicU64);

const SENT: u64 = 1 << 32;
const RECEIVED: u64 = 1 << 33;

impl Handshake {
    pub fn state(&self) -> CloseState {
        decode(self.0.load(Ordering::Acquire))
    }

    /// Our Close has been written, or is being written: nothing may follow.
    pub fn is_sent(&self) -> bool {
        self.0.load(Ordering::Acquire) & SENT != 0
    }

    /// Record our Close with this payload; `false` if one was recorded
    /// already (there is only ever one).
    pub fn send(&self, payload: &[u8]) -> bool {
        let code = u64::from(payload_code(payload).0);
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                (v & SENT == 0).then_some(v | SENT | code)
            })
            .is_ok()
    }

    /// Record the peer's Close; returns the state just before it, which
    /// says whether it answers ours.
    pub fn receive(&self, code: CloseCode) -> CloseState {
        let bits = RECEIVED | (u64::from(code.0) << 16);
        let before = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                (v & RECEIVED == 0).then_some(v | bits)
            })
            .unwrap_or_else(|v| v);
        decode(before)
    }
}

fn decode(v: u64) -> CloseState {
    let sent = CloseCode((v & 0xFFFF) as u16);
    let received = CloseCode(((v >> 16) & 0xFFFF) as u16);
    match (v & SENT != 0, v & RECEIVED != 0) {
        (false, false) => CloseState::Open,
        (true, false) => CloseState::CloseSent { sent },
        (false, true) => CloseState::CloseReceived { received },
        (true, true) => CloseState::Closed { sent, received },
    }
}

/// The code a Close payload carries; 1005 when it has none (§7.1.5).
pub fn payload_code(payload: &[u8]) -> CloseCode {
    match payload {
        [hi, lo, ..] => CloseCode(u16::from_be_bytes([*hi, *lo])),
        _ => CloseCode::NO_STATUS,
    }
}

/// How our Close frame relates to the peer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseKind {
    /// The peer closed first; this is our echo (§5.5.1).
    Reply,
    /// We close first and wait for the peer's echo. With `flush`, data
    /// already queued goes out before the Close; without, it is dropped.
    Initiate { flush: bool },
    /// The peer broke the protocol (§7.1.7): send the Close, then end TCP.
    Fail,
}

/// A Close the writer is asked to send: its payload and kind.
#[derive(Debug)]
pub struct CloseRequest {
    pub payload: Vec<u8>,
    pub kind: CloseKind,
}

/// The one Close a connection is asked to send, waiting for the writer.
/// Never full and never dropped: the first request stays, and a later one
/// changes nothing, since one Close is all a connection may send (§5.5.1) —
/// a peer's Close that arrives while ours is pending is answered by ours.
#[derive(Debug, Default)]
pub struct PendingClose(Mutex<Option<CloseRequest>>);

impl PendingClose {
    /// Ask for this Close, unless one is asked for already.
    pub fn request(&self, request: CloseRequest) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(request);
        }
    }

    pub fn take(&self) -> Option<CloseRequest> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Our Close, a reply or a failure, is on the wire: finish the TCP side
/// (§7.1.1). After a complete handshake the server closes TCP first, and
/// after a failure (§7.1.7) either side may; a client that replied waits for
/// the server to close, while its reader lingers. After an initiated close
/// the writer waits for the peer's echo instead.
pub fn end_tcp_after_close(stream: &TcpStream, kind: CloseKind, role: Role) {
    match (kind, role) {
        (CloseKind::Reply, Role::Server) | (CloseKind::Fail, _) => {
            let _ = stream.shutdown(Shutdown::Write);
        }
        (CloseKind::Reply, Role::Client) | (CloseKind::Initiate { .. }, _) => {}
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
    pub fn new(code: CloseCode, reason: impl Into<String>, by_peer: bool) -> Closed {
        Closed {
            code,
            reason: reason.into(),
            by_peer,
            sent: None,
            received: None,
        }
    }

    /// TCP ended without a closing handshake (1006, §7.1.5).
    pub fn abnormal(reason: impl Into<String>) -> Closed {
        Closed::new(CloseCode::ABNORMAL, reason, true)
    }
}

impl fmt::Display for Closed {
    /// `1001 "going away", by the peer (received 1001, sent 1001)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::close_payload;

    #[test]
    fn each_side_is_recorded_once_with_its_code() {
        let h = Handshake::default();
        assert_eq!(h.state(), CloseState::Open);
        assert!(h.send(&close_payload(1008, "too slow")));
        assert!(!h.send(&close_payload(1000, "")), "only one Close");
        assert_eq!(
            h.state(),
            CloseState::CloseSent {
                sent: CloseCode::POLICY
            }
        );
        let before = h.receive(CloseCode::POLICY);
        assert_eq!(before.sent(), Some(CloseCode::POLICY));
        assert_eq!(
            h.state(),
            CloseState::Closed {
                sent: CloseCode::POLICY,
                received: CloseCode::POLICY
            }
        );
    }

    #[test]
    fn the_peer_may_close_first_and_an_empty_close_is_1005() {
        let h = Handshake::default();
        assert_eq!(h.receive(CloseCode::GOING_AWAY), CloseState::Open);
        assert_eq!(
            h.state(),
            CloseState::CloseReceived {
                received: CloseCode::GOING_AWAY
            }
        );
        assert!(h.send(&[]));
        assert_eq!(h.state().sent(), Some(CloseCode::NO_STATUS));
        assert_eq!(h.state().received(), Some(CloseCode::GOING_AWAY));
    }

    #[test]
    fn the_first_close_request_stays() {
        let pending = PendingClose::default();
        pending.request(CloseRequest {
            payload: close_payload(1008, "too slow"),
            kind: CloseKind::Initiate { flush: false },
        });
        pending.request(CloseRequest {
            payload: close_payload(1000, ""),
            kind: CloseKind::Reply,
        });
        let first = pending.take().unwrap();
        assert_eq!(first.kind, CloseKind::Initiate { flush: false });
        assert!(pending.take().is_none());
    }
}
