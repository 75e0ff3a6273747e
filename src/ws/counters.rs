//! What the WebSocket layer counts as it works: bytes on the wire, how
//! connections ended, and what permessage-deflate did. Plain atomics,
//! added to with `Relaxed` and read by whoever wants them (the chat server's
//! `/metrics`, see `crate::metrics`); nothing here knows about the chat.
//!
//! One process-wide [`WIRE`] rather than a counter set handed down through
//! [`Config`](super::Config): a process has one wire, the counting is one
//! relaxed add per system call or per message whether anyone reads it or
//! not, and a global needs no field in every connection, reader, writer and
//! sender (whose sizes the idle-memory budget watches) nor any plumbing
//! through code that has no other reason to know. The price: two
//! connection layers in one process (a test's client and server) count
//! into the same numbers.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::close::CloseCode;
use super::conn::Closed;

/// The close codes counted each on their own (RFC 6455 §7.4.1); any other
/// (a peer may send any code 3000-4999) is counted as "other", so that a
/// peer cannot grow the number of series.
pub const CLOSE_CODES: [u16; 11] = [
    1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011,
];

/// Slots per side: each of [`CLOSE_CODES`], then "other".
const CODE_SLOTS: usize = CLOSE_CODES.len() + 1;

/// Counters of the WebSocket layer; see [`WIRE`].
#[derive(Debug)]
pub struct WireCounters {
    /// Bytes read from sockets of upgraded connections.
    pub bytes_in: AtomicU64,
    /// Bytes written to them: frames, whole or in part.
    pub bytes_out: AtomicU64,
    /// Ended connections by who started the end (0: the peer, 1: us) and
    /// code (the index in [`CLOSE_CODES`], then "other").
    closes: [[AtomicU64; CODE_SLOTS]; 2],
    /// Messages sent compressed, their payload bytes before and after.
    pub deflated: AtomicU64,
    pub deflated_before: AtomicU64,
    pub deflated_after: AtomicU64,
    /// Compressed messages received, their payload bytes as received
    /// (compressed) and once inflated.
    pub inflated: AtomicU64,
    pub inflated_before: AtomicU64,
    pub inflated_after: AtomicU64,
}

/// The process's WebSocket counters.
pub static WIRE: WireCounters = WireCounters::new();

impl WireCounters {
    const fn new() -> WireCounters {
        WireCounters {
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            closes: [const { [const { AtomicU64::new(0) }; CODE_SLOTS] }; 2],
            deflated: AtomicU64::new(0),
            deflated_before: AtomicU64::new(0),
            deflated_after: AtomicU64::new(0),
            inflated: AtomicU64::new(0),
            inflated_before: AtomicU64::new(0),
            inflated_after: AtomicU64::new(0),
        }
    }

    pub fn read(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Relaxed);
    }

    pub fn wrote(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Relaxed);
    }

    /// A connection ended as `closed` says: counted under the code of the
    /// side that started the end (ours when we did, so a client closed with
    /// 1008 counts as 1008 whether it echoes it, answers 1000 or never
    /// answers; 1006 when there was no Close at all).
    pub fn closed(&self, closed: &Closed) {
        let code = match closed.sent {
            Some(sent) if !closed.by_peer => sent,
            _ => closed.code,
        };
        self.closes[usize::from(!closed.by_peer)][code_slot(code)].fetch_add(1, Relaxed);
    }

    /// Connections ended with `code` (`None`: an uncounted code), started
    /// by the peer or by us.
    pub fn closes(&self, code: Option<u16>, by_peer: bool) -> u64 {
        let slot = code.map_or(CLOSE_CODES.len(), |c| code_slot(CloseCode(c)));
        self.closes[usize::from(!by_peer)][slot].load(Relaxed)
    }

    /// A message of `before` payload bytes went out compressed to `after`.
    pub fn deflated(&self, before: usize, after: usize) {
        self.deflated.fetch_add(1, Relaxed);
        self.deflated_before.fetch_add(before as u64, Relaxed);
        self.deflated_after.fetch_add(after as u64, Relaxed);
    }
}

fn code_slot(code: CloseCode) -> usize {
    CLOSE_CODES
        .iter()
        .position(|&c| c == code.0)
        .unwrap_or(CLOSE_CODES.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_are_counted_by_side_and_code_and_odd_codes_share_one_slot() {
        let counters = WireCounters::new();
        let mut ours = Closed::new(CloseCode::NORMAL, "", false);
        ours.sent = Some(CloseCode::POLICY);
        counters.closed(&ours);
        counters.closed(&Closed::new(CloseCode(4321), "", true));
        counters.closed(&Closed::new(CloseCode(3999), "", true));
        assert_eq!(counters.closes(Some(1008), false), 1);
        assert_eq!(counters.closes(Some(1008), true), 0);
        assert_eq!(counters.closes(None, true), 2);
        assert_eq!(counters.closes(Some(4321), true), 2, "an odd code is other");
    }
}
