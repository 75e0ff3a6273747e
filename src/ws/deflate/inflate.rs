//! Receiving compressed: the [`Extension`] that inflates a message whose
//! first frame has RSV1 set (RFC 7692 §6.1, §7.2.2).
//!
//! The payload is inflated as it arrives, into pieces of at most
//! [`MAX_OUTPUT_PIECE`] bytes that go straight to the message assembler:
//! the message's size limit is on the inflated bytes, checked before each
//! piece is kept, so a small frame that would inflate to gigabytes costs no
//! more than the limit. At the message's end the four bytes the sender
//! removed (`00 00 ff ff`) are put back (§7.2.2). Bytes that are not a
//! DEFLATE stream fail the connection with 1007 (§7.2.2 does not name a
//! code; the payload is not what the negotiated extension says it is).
//!
//! A server inflates every message with a fresh decompressor taken from
//! the shared pools and given back at the message's end (it agreed
//! `client_no_context_takeover`); a client whose server keeps its context
//! keeps one decompressor for the connection instead.
//!
//! RFC 7692 §6 (RSV1), §7.2.2 (decompression).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use flate2::{FlushDecompress, Status};

use super::compress::SYNC_TAIL;
use super::pool::{Inflater, Pools};
use crate::ws::close::{CloseCode, ProtocolError};
use crate::ws::counters::WIRE;
use crate::ws::extension::{Extension, MAX_OUTPUT_PIECE, Sink};
use crate::ws::frame::{OpCode, RSV1};

/// Where a connection's decompressor comes from.
#[derive(Debug)]
enum Context {
    /// Taken from the pools for each message, given back at its end.
    PerMessage(Arc<Pools>),
    /// The connection's own, kept across messages (the peer compresses
    /// with context takeover, §7.1.1).
    Kept,
}

/// permessage-deflate's receiving side, one per connection.
#[derive(Debug)]
pub struct Inflate {
    context: Context,
    /// The decompressor of the message in progress (and, when `Kept`, of
    /// the connection).
    current: Option<Inflater>,
    /// The message in progress has reached the end of a final DEFLATE
    /// block (BFINAL): nothing more may follow it.
    ended: bool,
}

/// A stream that cannot be inflated: 1007.
const CORRUPT: ProtocolError = ProtocolError::Extension(CloseCode::INVALID_PAYLOAD);

impl Inflate {
    /// A server's: a fresh decompressor from `pools` for every message.
    pub fn per_message(pools: Arc<Pools>) -> Inflate {
        Inflate {
            context: Context::PerMessage(pools),
            current: None,
            ended: false,
        }
    }

    /// A client's whose server keeps its compression context between
    /// messages (no `server_no_context_takeover`): one decompressor, kept.
    pub fn keeping_context() -> Inflate {
        Inflate {
            context: Context::Kept,
            current: None,
            ended: false,
        }
    }

    /// Inflate `input` into `sink`, a bounded piece at a time.
    fn inflate(
        &mut self,
        mut input: &[u8],
        flush: FlushDecompress,
        sink: &mut Sink<'_>,
    ) -> Result<(), ProtocolError> {
        let inflater = self
            .current
            .as_mut()
            .expect("a compressed message has started");
        loop {
            if self.ended {
                return if input.is_empty() {
                    Ok(())
                } else {
                    Err(CORRUPT)
                };
            }
            let (in_before, out_before) = (inflater.zlib.total_in(), inflater.zlib.total_out());
            let status = inflater
                .zlib
                .decompress(input, &mut inflater.out, flush)
                .map_err(|_| CORRUPT)?;
            let consumed =
                usize::try_from(inflater.zlib.total_in() - in_before).unwrap_or(usize::MAX);
            let produced =
                usize::try_from(inflater.zlib.total_out() - out_before).unwrap_or(usize::MAX);
            input = &input[consumed.min(input.len())..];
            if produced > 0 {
                WIRE.inflated_after.fetch_add(produced as u64, Relaxed);
                sink(&inflater.out[..produced])?;
            }
            if status == Status::StreamEnd {
                self.ended = true;
                continue;
            }
            // More output may be pending only when the buffer was filled.
            if produced < MAX_OUTPUT_PIECE && (input.is_empty() || consumed == 0) {
                return if input.is_empty() {
                    Ok(())
                } else {
                    Err(CORRUPT)
                };
            }
        }
    }
}

impl Extension for Inflate {
    fn rsv_bits(&self) -> u8 {
        RSV1
    }

    fn start_message(&mut self, _opcode: OpCode, rsv: u8) -> Result<bool, ProtocolError> {
        if rsv & RSV1 == 0 {
            return Ok(false);
        }
        if self.current.is_none() {
            self.current = Some(match &self.context {
                Context::PerMessage(pools) => pools.take_inflater(),
                Context::Kept => Inflater::new(),
            });
        }
        self.ended = false;
        WIRE.inflated.fetch_add(1, Relaxed);
        Ok(true)
    }

    fn decode(&mut self, input: &[u8], sink: &mut Sink<'_>) -> Result<(), ProtocolError> {
        WIRE.inflated_before.fetch_add(input.len() as u64, Relaxed);
        self.inflate(input, FlushDecompress::None, sink)
    }

    fn finish(&mut self, sink: &mut Sink<'_>) -> Result<(), ProtocolError> {
        if !self.ended {
            self.inflate(&SYNC_TAIL, FlushDecompress::Sync, sink)?;
        }
        match &self.context {
            Context::PerMessage(pools) => {
                if let Some(inflater) = self.current.take() {
                    pools.give_inflater(inflater);
                }
            }
            // A stream that ended with a final block cannot go on: the next
            // message starts a new one.
            Context::Kept if self.ended => self.current = None,
            Context::Kept => {}
        }
        self.ended = false;
        Ok(())
    }
}
