//! How the `message_assembler` fuzz target reads its input: the first three
//! bytes choose the role, the limits and the chunking, the rest is the
//! stream. Included with `#[path]` by the target and by
//! `tests/regressions.rs`, which replays the target's crash inputs, so the
//! two cannot drift apart.

use wschat::ws::{Limits, Role};

const FRAMES: [usize; 5] = [0, 1, 7, 125, 300];
const MESSAGES: [usize; 5] = [0, 3, 64, 200, 1000];
const FRAGMENTS: [usize; 4] = [1, 2, 5, 64];
const CHUNKS: [usize; 8] = [1, 2, 3, 5, 8, 16, 64, 4096];

/// What the three control bytes select.
pub struct Setup {
    pub role: Role,
    pub limits: Limits,
    /// Seed and largest piece for the chunking of the stream.
    pub chunk_seed: u32,
    pub max_chunk: usize,
}

/// Split a fuzz input into its setup and its stream; `None` when it is
/// shorter than the three control bytes.
pub fn split(data: &[u8]) -> Option<(Setup, &[u8])> {
    if data.len() < 3 {
        return None;
    }
    let (ctl, stream) = data.split_at(3);
    let role = if ctl[0] & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let limits = Limits {
        max_frame: FRAMES[usize::from(ctl[0] >> 1) % FRAMES.len()],
        max_message: MESSAGES[usize::from(ctl[0] >> 4) % MESSAGES.len()],
        max_fragments: FRAGMENTS[usize::from(ctl[1] & 3)],
    };
    let setup = Setup {
        role,
        limits,
        chunk_seed: u32::from(ctl[2]) << 8 | u32::from(ctl[1]) | 1,
        max_chunk: CHUNKS[usize::from(ctl[1] >> 2) % CHUNKS.len()],
    };
    Some((setup, stream))
}
