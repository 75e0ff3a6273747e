//! A broadcast: messages for many receivers, encoded once.
//!
//! A server's frames are not masked (§5.1, §5.3), so every client receives
//! the very same bytes: a chat hub appends each message of a batch to one
//! [`Broadcast`], seals it into a [`Batch`], and hands every client the same
//! shared buffer — one allocation and one encoding however many receive it.
//! A client that arrived in the middle of the batch is handed only what came
//! after its [`Mark`].
//!
//! Clients that negotiated an extension (permessage-deflate) get a second
//! encoding of the same messages, made from them the first time such a
//! client is handed the batch, once per [`Encoder::shared_key`] (a window
//! size), and shared by every client with that key: no work for an
//! encoding nobody asked for, and none per receiver. When the extension
//! leaves every message as it is (all below its threshold), that encoding
//! is the plain one, and no second buffer is made.
//!
//! RFC 6455 §5.1, §5.3 (server frames are unmasked); RFC 7692 §7.2.1.

use std::sync::{Arc, OnceLock};

use super::conn::Outgoing;
use super::extension::{Encoder, SHARED_KEYS};
use super::frame::{OpCode, encode_frame, encode_frame_rsv};

/// Messages being gathered for a batch.
#[derive(Debug, Default)]
pub struct Broadcast {
    frames: Vec<u8>,
    /// Where each message's frame starts in `frames`, and its payload.
    messages: Vec<Entry>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    frame: usize,
    payload: usize,
    end: usize,
}

/// A place in a [`Broadcast`]: what a receiver added at this point is sent
/// only what comes after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark(usize);

impl Broadcast {
    /// Add a text message (one unmasked frame).
    pub fn text(&mut self, text: &str) {
        let frame = self.frames.len();
        encode_frame(&mut self.frames, true, OpCode::Text, text.as_bytes(), None);
        let end = self.frames.len();
        self.messages.push(Entry {
            frame,
            payload: end - text.len(),
            end,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Where the broadcast stands now.
    pub fn mark(&self) -> Mark {
        Mark(self.messages.len())
    }

    /// Seal what was gathered into a batch, leaving this broadcast empty.
    pub fn seal(&mut self) -> Batch {
        Batch(Arc::new(Sealed {
            plain: Encoded {
                bytes: std::mem::take(&mut self.frames).into(),
                starts: self.messages.iter().map(|m| m.frame).collect(),
            },
            messages: std::mem::take(&mut self.messages).into(),
            by_key: Default::default(),
        }))
    }
}

/// Sealed messages, shared by every receiver.
#[derive(Clone, Debug)]
pub struct Batch(Arc<Sealed>);

#[derive(Debug)]
struct Sealed {
    plain: Encoded,
    messages: Box<[Entry]>,
    /// The encodings made for extensions, by shared key; `None` inside:
    /// the same as `plain`.
    by_key: [OnceLock<Option<Encoded>>; SHARED_KEYS],
}

/// One encoding of a batch's messages, and where each message starts in it.
#[derive(Debug)]
struct Encoded {
    bytes: Arc<[u8]>,
    starts: Box<[usize]>,
}

impl Encoded {
    fn from(&self, from: Option<Mark>) -> Option<Outgoing> {
        let start = match from {
            None => 0,
            Some(Mark(message)) => *self.starts.get(message)?,
        };
        match start {
            0 if !self.bytes.is_empty() => Some(Outgoing::Shared(Arc::clone(&self.bytes))),
            start if start < self.bytes.len() => {
                Some(Outgoing::Tail(Arc::clone(&self.bytes), start))
            }
            _ => None,
        }
    }
}

impl Batch {
    /// How many messages a receiver is sent: all, or those after `from`.
    pub fn messages_from(&self, from: Option<Mark>) -> usize {
        let all = self.0.messages.len();
        from.map_or(all, |Mark(m)| all.saturating_sub(m))
    }

    /// What a receiver is sent: everything, or what follows `from`, encoded
    /// for its `encoder` (the plain frames without one); `None` when
    /// nothing follows `from`.
    pub fn for_receiver(
        &self,
        from: Option<Mark>,
        encoder: Option<&dyn Encoder>,
    ) -> Option<Outgoing> {
        let sealed = &*self.0;
        let Some(encoder) = encoder else {
            return sealed.plain.from(from);
        };
        match encoder.shared_key() {
            Some(key) if key < SHARED_KEYS => {
                let encoded = sealed.by_key[key].get_or_init(|| sealed.encode(encoder, 0));
                encoded.as_ref().unwrap_or(&sealed.plain).from(from)
            }
            // An encoding of this receiver's own: its share only.
            _ => {
                let first = from.map_or(0, |Mark(m)| m);
                match sealed.encode(encoder, first) {
                    Some(own) => own.from(None),
                    None => sealed.plain.from(from),
                }
            }
        }
    }
}

impl Sealed {
    /// The messages from `first` on, through `encoder`; `None` if it left
    /// every one of them as it was (then the plain frames are the same).
    fn encode(&self, encoder: &dyn Encoder, first: usize) -> Option<Encoded> {
        let plain = &self.plain.bytes;
        let base = self.messages.get(first)?.frame;
        let mut out: Option<Vec<u8>> = None;
        let mut starts = Vec::with_capacity(self.messages.len());
        let mut scratch = Vec::new();
        for m in &self.messages[first..] {
            scratch.clear();
            let rsv = encoder.encode(OpCode::Text, &plain[m.payload..m.end], &mut scratch);
            let out = match (&mut out, rsv) {
                (None, None) => {
                    starts.push(m.frame - base);
                    continue;
                }
                // The first message it transforms: the plain ones before it
                // are copied once.
                (None, Some(_)) => out.insert(plain[base..m.frame].to_vec()),
                (Some(out), _) => out,
            };
            starts.push(out.len());
            match rsv {
                Some(rsv) => encode_frame_rsv(out, true, rsv, OpCode::Text, &scratch, None),
                None => out.extend_from_slice(&plain[m.frame..m.end]),
            }
        }
        Some(Encoded {
            bytes: out?.into(),
            starts: starts.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::RSV1;

    /// Encodes every message of at least 4 bytes as its reverse, RSV1 set,
    /// counting its calls.
    #[derive(Debug, Default)]
    struct Reverse {
        calls: std::sync::atomic::AtomicUsize,
        key: Option<usize>,
    }

    impl Encoder for Reverse {
        fn encode(&self, _opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) -> Option<u8> {
            self.calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (payload.len() >= 4).then(|| {
                out.extend(payload.iter().rev());
                RSV1
            })
        }

        fn shared_key(&self) -> Option<usize> {
            self.key
        }
    }

    fn calls(e: &Reverse) -> usize {
        e.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[test]
    fn receivers_share_one_encoding_and_late_ones_get_the_rest() {
        let mut b = Broadcast::default();
        b.text("one");
        let mark = b.mark();
        b.text("two");
        let after_all = b.mark();
        let batch = b.seal();
        assert!(b.is_empty());
        let everyone = batch.for_receiver(None, None).unwrap();
        assert_eq!(everyone.as_ref(), b"\x81\x03one\x81\x03two");
        let late = batch.for_receiver(Some(mark), None).unwrap();
        assert_eq!(late.as_ref(), b"\x81\x03two");
        assert!(batch.for_receiver(Some(after_all), None).is_none());
        match (everyone, late) {
            (Outgoing::Shared(a), Outgoing::Tail(b, _)) => assert!(Arc::ptr_eq(&a, &b)),
            other => panic!("not shared: {other:?}"),
        }
    }

    #[test]
    fn an_extension_encodes_a_batch_once_per_key_and_late_receivers_share_it() {
        let mut b = Broadcast::default();
        b.text("hi");
        b.text("long one");
        let mark = b.mark();
        b.text("abcd");
        let batch = b.seal();
        let (nine, fifteen) = (
            Reverse {
                key: Some(9),
                ..Reverse::default()
            },
            Reverse {
                key: Some(15),
                ..Reverse::default()
            },
        );
        let first = batch.for_receiver(None, Some(&nine)).unwrap();
        assert_eq!(first.as_ref(), b"\x81\x02hi\xc1\x08eno gnol\xc1\x04dcba");
        assert_eq!(calls(&nine), 3);
        // Another receiver with the same key, and a late one: no new work,
        // the same buffer.
        let again = batch.for_receiver(None, Some(&nine)).unwrap();
        let late = batch.for_receiver(Some(mark), Some(&nine)).unwrap();
        assert_eq!(late.as_ref(), b"\xc1\x04dcba");
        assert_eq!(calls(&nine), 3);
        match (&first, &again, &late) {
            (Outgoing::Shared(a), Outgoing::Shared(b), Outgoing::Tail(c, _)) => {
                assert!(Arc::ptr_eq(a, b) && Arc::ptr_eq(a, c));
            }
            other => panic!("not shared: {other:?}"),
        }
        // Nobody asked for key 15 until now; then it is made once.
        assert_eq!(calls(&fifteen), 0);
        assert_eq!(
            batch
                .for_receiver(Some(mark), Some(&fifteen))
                .unwrap()
                .as_ref(),
            b"\xc1\x04dcba"
        );
        assert_eq!(calls(&fifteen), 3);
        // The plain frames are untouched.
        assert_eq!(
            batch.for_receiver(None, None).unwrap().as_ref(),
            b"\x81\x02hi\x81\x08long one\x81\x04abcd"
        );
    }

    #[test]
    fn an_encoding_that_changes_nothing_is_the_plain_buffer() {
        let mut b = Broadcast::default();
        b.text("a");
        b.text("b");
        let batch = b.seal();
        let small = Reverse {
            key: Some(9),
            ..Reverse::default()
        };
        match (
            batch.for_receiver(None, None),
            batch.for_receiver(None, Some(&small)),
        ) {
            (Some(Outgoing::Shared(a)), Some(Outgoing::Shared(b))) => assert!(Arc::ptr_eq(&a, &b)),
            other => panic!("not the plain buffer: {other:?}"),
        }
    }

    #[test]
    fn an_unshared_encoder_encodes_only_the_receivers_share() {
        let mut b = Broadcast::default();
        b.text("first message");
        let mark = b.mark();
        b.text("x");
        b.text("second");
        let batch = b.seal();
        let own = Reverse::default();
        let share = batch.for_receiver(Some(mark), Some(&own)).unwrap();
        assert_eq!(share.as_ref(), b"\x81\x01x\xc1\x06dnoces");
        assert_eq!(calls(&own), 2);
        let end = Broadcast::default().mark();
        assert!(
            Broadcast::default()
                .seal()
                .for_receiver(Some(end), Some(&own))
                .is_none()
        );
    }
}
