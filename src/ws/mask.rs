//! Payload masking (RFC 6455 §5.3).
//!
//! A client XORs every payload byte `i` with `key[i % 4]`; the server undoes
//! it the same way. Masking exists so that a hostile page cannot make its
//! bytes appear verbatim on the wire and poison an intermediary's cache
//! (§10.3), which is why the key must be unpredictable (see [`MaskSource`]).
//!
//! The XOR runs a 64-bit word at a time: eight bytes cover the 4-byte key
//! exactly twice, so the key's phase never changes inside the fast loop, and
//! the compiler is free to widen it further into vector registers.

use std::fs::File;
use std::io::Read;

/// XOR `buf` with `key`, where `buf[0]` is payload byte number `offset`.
///
/// `offset` lets a payload be unmasked piece by piece as it arrives from the
/// socket, which is how the decoder can check UTF-8 before a frame is whole.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate(key, offset);
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// The key as seen from payload byte `offset`.
fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let s = offset % 4;
    [key[s], key[(s + 1) % 4], key[(s + 2) % 4], key[(s + 3) % 4]]
}

/// The byte-at-a-time definition from §5.3, kept as the reference the fast
/// version is tested against.
pub fn apply_mask_reference(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) % 4];
    }
}

/// Unpredictable bytes for masking keys and handshake nonces.
///
/// §10.3 requires masking keys that a page script cannot predict, and
/// §4.1 a randomly chosen `Sec-WebSocket-Key`. We read the kernel's CSPRNG
/// (`/dev/urandom`, which never blocks once the system has booted) in 4 KiB
/// batches, so a key costs a copy rather than a system call. Should the
/// device be missing (a chroot, a sandbox), we fall back to std's
/// per-process randomly seeded SipHash keys mixed with a counter and the
/// clock: weaker, but still not guessable by a script on a web page.
pub struct MaskSource {
    buf: Box<[u8; 4096]>,
    pos: usize,
    urandom: Option<File>,
    counter: u64,
}

impl MaskSource {
    pub fn new() -> MaskSource {
        MaskSource {
            buf: Box::new([0; 4096]),
            pos: 4096,
            urandom: File::open("/dev/urandom").ok(),
            counter: 0,
        }
    }

    /// Fill `out` with unpredictable bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for byte in out {
            if self.pos == self.buf.len() {
                self.refill();
            }
            *byte = self.buf[self.pos];
            self.pos += 1;
        }
    }

    pub fn key(&mut self) -> [u8; 4] {
        let mut key = [0; 4];
        self.fill(&mut key);
        key
    }

    fn refill(&mut self) {
        self.pos = 0;
        if let Some(file) = &mut self.urandom {
            if file.read_exact(&mut self.buf[..]).is_ok() {
                return;
            }
            self.urandom = None;
        }
        use std::hash::{BuildHasher, Hasher};
        let state = std::collections::hash_map::RandomState::new();
        for chunk in self.buf.chunks_mut(8) {
            let mut hasher = state.build_hasher();
            self.counter += 1;
            hasher.write_u64(self.counter);
            if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
                hasher.write_u128(t.as_nanos());
            }
            chunk.copy_from_slice(&hasher.finish().to_ne_bytes()[..chunk.len()]);
        }
    }
}

impl Default for MaskSource {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_at_every_alignment_length_and_offset() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..80u8)
            .map(|i| i.wrapping_mul(31).wrapping_add(7))
            .collect();
        for start in 0..8 {
            for len in 0..=64 {
                for offset in 0..4 {
                    let mut fast = data.clone();
                    let mut slow = data.clone();
                    apply_mask(&mut fast[start..start + len], key, offset);
                    apply_mask_reference(&mut slow[start..start + len], key, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn rfc_example_hello() {
        // §5.7: "Hello" masked with 37 fa 21 3d.
        let mut payload = *b"Hello";
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn masking_in_pieces_equals_masking_at_once() {
        let key = [1, 2, 3, 4];
        let mut whole: Vec<u8> = (0..100).collect();
        let mut pieces = whole.clone();
        apply_mask(&mut whole, key, 0);
        apply_mask(&mut pieces[..13], key, 0);
        apply_mask(&mut pieces[13..50], key, 13);
        apply_mask(&mut pieces[50..], key, 50);
        assert_eq!(whole, pieces);
    }

    #[test]
    fn mask_source_keys_differ() {
        let mut source = MaskSource::new();
        let keys: std::collections::HashSet<[u8; 4]> = (0..2000).map(|_| source.key()).collect();
        // 2000 draws from 2^32 values: a repeat is possible but very rare.
        assert!(keys.len() > 1990);
    }
}
