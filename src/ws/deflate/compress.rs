//! Sending compressed: one message's payload deflated on its own (RFC 7692
//! §7.2.1), with the sync flush's empty block taken off its end.
//!
//! The compressor starts fresh for every message (no context takeover), so
//! the compressed bytes depend only on the payload and the window size:
//! every receiver that agreed the same window can be sent the same bytes,
//! and a broadcast is compressed once per window size however many receive
//! it ([`Encoder::shared_key`]).
//!
//! RFC 7692 §6.1 (RSV1 on the first frame), §7.2.1 (compression).

use std::sync::Arc;

use flate2::{Compress, FlushCompress, Status};

use super::pool::Pools;
use crate::ws::counters::WIRE;
use crate::ws::extension::Encoder;
use crate::ws::frame::{OpCode, RSV1};

/// The four bytes a sync flush ends with (an empty stored block), which
/// the sender removes and the receiver puts back (§7.2.1, §7.2.2).
pub const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Deflate `payload` with `compressor` (fresh, raw DEFLATE) and a sync
/// flush, appending the result without its [`SYNC_TAIL`] to `out`: `true`
/// if that is smaller than `payload`. When it is not, `out` is left as it
/// was, and the compressor has stopped early: it is never given room for
/// more than the payload's own size.
pub fn deflate_into(compressor: &mut Compress, payload: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    // Worth sending only if smaller than the payload once the tail is off.
    let budget = payload.len() + SYNC_TAIL.len() - 1;
    out.resize(start + budget, 0);
    let (mut input, mut written) = (payload, 0);
    let done = loop {
        let (in_before, out_before) = (compressor.total_in(), compressor.total_out());
        let room = &mut out[start + written..];
        if room.is_empty() {
            break false;
        }
        let result = compressor.compress(input, room, FlushCompress::Sync);
        let consumed = usize::try_from(compressor.total_in() - in_before).unwrap_or(usize::MAX);
        let produced = usize::try_from(compressor.total_out() - out_before).unwrap_or(usize::MAX);
        input = &input[consumed.min(input.len())..];
        written += produced;
        match result {
            // All input in and the flush complete: room was left over.
            Ok(_) if input.is_empty() && start + written < out.len() => break true,
            Ok(Status::Ok | Status::BufError) if consumed + produced > 0 => {}
            // No progress, the stream ended, or an error: not ours to send.
            _ => break false,
        }
    };
    let body = start + written;
    if !done || written < SYNC_TAIL.len() || out[body - SYNC_TAIL.len()..body] != SYNC_TAIL {
        out.truncate(start);
        return false;
    }
    out.truncate(body - SYNC_TAIL.len());
    true
}

/// Sending through permessage-deflate: a message at least `threshold`
/// bytes long is deflated with a window of `window` bits, and sent
/// compressed (RSV1 set, §6.1) if that is smaller; any other goes as it is.
#[derive(Debug)]
pub struct Deflater {
    pub pools: Arc<Pools>,
    pub window: u8,
    pub threshold: usize,
}

impl Encoder for Deflater {
    fn encode(&self, _opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) -> Option<u8> {
        if payload.len() < self.threshold.max(1) {
            return None;
        }
        let before = out.len();
        let smaller = self
            .pools
            .with_compressor(self.window, |c| deflate_into(c, payload, out));
        if smaller {
            WIRE.deflated(payload.len(), out.len() - before);
        }
        smaller.then_some(RSV1)
    }

    fn shared_key(&self) -> Option<usize> {
        Some(usize::from(self.window))
    }
}
