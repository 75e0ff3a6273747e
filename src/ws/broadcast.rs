//! A broadcast: messages for many receivers, encoded once.
//!
//! A server's frames are not masked (§5.1, §5.3), so every client receives
//! the very same bytes: a chat hub appends each message of a batch to one
//! [`Broadcast`], seals it into a [`Batch`], and hands every client the same
//! shared buffer — one allocation and one encoding however many receive it.
//! A client that arrived in the middle of the batch is handed only what came
//! after its [`Mark`].
//!
//! A batch is one encoding of its messages; a second one (the same messages
//! compressed, for clients that negotiated an extension) would be made from
//! the same messages, once, beside it.

use std::sync::Arc;

use super::conn::Outgoing;
use super::frame::{OpCode, encode_frame};

/// Messages being gathered for a batch.
#[derive(Debug, Default)]
pub struct Broadcast {
    frames: Vec<u8>,
}

/// A place in a [`Broadcast`]: what a receiver added at this point is sent
/// only what comes after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark(usize);

impl Broadcast {
    /// Add a text message (one unmasked frame).
    pub fn text(&mut self, text: &str) {
        encode_frame(&mut self.frames, true, OpCode::Text, text.as_bytes(), None);
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Where the broadcast stands now.
    pub fn mark(&self) -> Mark {
        Mark(self.frames.len())
    }

    /// Seal what was gathered into a batch, leaving this broadcast empty.
    pub fn seal(&mut self) -> Batch {
        Batch(std::mem::take(&mut self.frames).into())
    }
}

/// Sealed messages, shared by every receiver.
#[derive(Clone, Debug)]
pub struct Batch(Arc<[u8]>);

impl Batch {
    /// What a receiver is sent: everything, or what follows `from`;
    /// `None` when nothing follows it.
    pub fn for_receiver(&self, from: Option<Mark>) -> Option<Outgoing> {
        match from {
            None => Some(Outgoing::Shared(Arc::clone(&self.0))),
            Some(Mark(start)) if start < self.0.len() => {
                Some(Outgoing::Tail(Arc::clone(&self.0), start))
            }
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_share_one_encoding_and_late_ones_get_the_rest() {
        let mut b = Broadcast::default();
        b.text("one");
        let mark = b.mark();
        b.text("two");
        let after_all = b.mark();
        let batch = b.seal();
        assert!(b.is_empty());
        let everyone = batch.for_receiver(None).unwrap();
        assert_eq!(everyone.as_ref(), b"\x81\x03one\x81\x03two");
        let late = batch.for_receiver(Some(mark)).unwrap();
        assert_eq!(late.as_ref(), b"\x81\x03two");
        assert!(batch.for_receiver(Some(after_all)).is_none());
        match (everyone, late) {
            (Outgoing::Shared(a), Outgoing::Tail(b, _)) => assert!(Arc::ptr_eq(&a, &b)),
            other => panic!("not shared: {other:?}"),
        }
    }
}
