//! DEFLATE contexts shared by the threads that need one for a moment,
//! instead of kept by every connection.
//!
//! A compressor with a 15-bit window holds about 256 KiB, a decompressor
//! about 40 KiB; a server with ten thousand mostly idle connections that
//! kept one of each per connection would spend gigabytes on them. Since the
//! server agrees no context takeover in either direction (RFC 7692
//! §7.1.1), a context is needed only while one message is compressed or
//! inflated: a reader takes a decompressor when a compressed message
//! starts and gives it back when the message ends; the hub takes a
//! compressor for one message. A few idle contexts are kept for the next
//! taker; beyond that they are freed.
//!
//! RFC 7692 §7.1.1 (context takeover), §7.2 (compression).

use std::sync::Mutex;

use flate2::{Compress, Compression, Decompress};

use super::params::SMALLEST_COMPRESSOR_WINDOW;
use crate::ws::extension::MAX_OUTPUT_PIECE;

/// Idle contexts kept per kind (and per window size, for compressors).
const IDLE_KEPT: usize = 8;

/// A decompressor and the buffer it inflates into, taken together: the
/// buffer is [`MAX_OUTPUT_PIECE`] long, so that inflated bytes reach the
/// message's size limit a bounded piece at a time.
#[derive(Debug)]
pub struct Inflater {
    pub zlib: Decompress,
    pub out: Box<[u8]>,
}

impl Inflater {
    /// A raw-DEFLATE decompressor with the largest window, which reads
    /// anything compressed with a window of any size (§7.1.2).
    pub fn new() -> Inflater {
        Inflater {
            zlib: Decompress::new_with_window_bits(false, 15),
            out: vec![0; MAX_OUTPUT_PIECE].into_boxed_slice(),
        }
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater::new()
    }
}

/// The contexts of one server (or one client connection).
#[derive(Debug)]
pub struct Pools {
    inflaters: Mutex<Vec<Inflater>>,
    /// Compressors by window size, 9 to 15 bits.
    compressors: [Mutex<Vec<Compress>>; 7],
    level: Compression,
}

/// The compression level messages are deflated with: a fast one, since a
/// broadcast server pays the CPU on its one hub thread, and level 2 still
/// finds most of what the default level 6 finds in chat text. README
/// "Compression" has the figures.
pub const LEVEL: u32 = 2;

impl Default for Pools {
    fn default() -> Self {
        Pools::new(Compression::new(LEVEL))
    }
}

impl Pools {
    pub fn new(level: Compression) -> Pools {
        Pools {
            inflaters: Mutex::default(),
            compressors: Default::default(),
            level,
        }
    }

    /// A decompressor ready for a new message.
    pub fn take_inflater(&self) -> Inflater {
        lock(&self.inflaters).pop().unwrap_or_default()
    }

    /// Give a decompressor back after a message, whatever state it is in.
    pub fn give_inflater(&self, mut inflater: Inflater) {
        let mut idle = lock(&self.inflaters);
        if idle.len() < IDLE_KEPT {
            inflater.zlib.reset(false);
            idle.push(inflater);
        }
    }

    /// Run `f` with a fresh raw-DEFLATE compressor of `window` bits (9–15).
    pub fn with_compressor<R>(&self, window: u8, f: impl FnOnce(&mut Compress) -> R) -> R {
        let slot = &self.compressors[usize::from(window - SMALLEST_COMPRESSOR_WINDOW)];
        let mut compressor = lock(slot)
            .pop()
            .unwrap_or_else(|| Compress::new_with_window_bits(self.level, false, window));
        let result = f(&mut compressor);
        let mut idle = lock(slot);
        if idle.len() < IDLE_KEPT {
            compressor.reset();
            idle.push(compressor);
        }
        result
    }

    /// Idle contexts held: (decompressors, compressors of every size).
    pub fn idle(&self) -> (usize, usize) {
        let compressors = self.compressors.iter().map(|c| lock(c).len()).sum();
        (lock(&self.inflaters).len(), compressors)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
