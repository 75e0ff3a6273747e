//! Message history: each room's recent messages, and the store that writes
//! every message down.
//!
//! Every room keeps its last N messages in a [`Recent`], which also numbers
//! them: ids grow by one per message in that room. A [`HistoryStore`] is
//! where messages of every room are written *before* the hub broadcasts
//! them, so one that any client has received is stored even if the process
//! is killed right after; the hub broadcasts exactly what was written.
//! Stores: [`MemoryStore`] (the default: nothing is written) and
//! [`FileStore`](super::history_file::FileStore) (`--history-file`).

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use super::messages::{ChatMessage, ServerMessage, User};
use super::names::RoomName;

/// A message on its way into a room's history, before it has an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// Unix time in milliseconds.
    pub ts: u64,
    pub from: User,
    pub text: String,
    pub nonce: Option<String>,
}

/// Where messages are written down before they are broadcast.
pub trait HistoryStore: Send {
    /// Write a run of messages (each one's JSON, as broadcast), in order:
    /// one write (and one sync) for the whole run. On error nothing counts
    /// as stored.
    fn append(&mut self, messages: &[Arc<str>]) -> io::Result<()>;

    /// What the log calls this store ("history file").
    fn name(&self) -> &'static str;

    /// Make what is stored durable (at shutdown).
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A room's last `max` messages and its next id.
#[derive(Debug)]
pub struct Recent {
    kept: VecDeque<(u64, Arc<str>)>,
    max: usize,
    next_id: u64,
    /// In a cluster, the first id of the room's counter in Redis (see
    /// [`bus::wire`](super::bus::wire)); 0 on a single node.
    epoch: u64,
}

impl Recent {
    /// An empty history whose first message gets `first_id`.
    pub fn new(max: usize, first_id: u64) -> Recent {
        Recent {
            kept: VecDeque::new(),
            max,
            next_id: first_id.max(1),
            epoch: 0,
        }
    }

    /// Start over in a new epoch: nothing kept, ids from `epoch` on.
    pub fn reset(&mut self, epoch: u64) {
        self.kept.clear();
        self.epoch = epoch;
        self.next_id = epoch.max(1);
    }

    /// Whether a client that saw up to `resume` missed a reset: its point
    /// is from an earlier epoch.
    pub fn before_epoch(&self, resume: Option<u64>) -> bool {
        resume.is_some_and(|r| r > 0 && r < self.epoch)
    }

    /// Give each message of `room` the next id and serialize it; nothing
    /// is kept yet (see [`Recent::keep`]).
    pub fn number(&self, room: &RoomName, messages: Vec<NewMessage>) -> Vec<(u64, Arc<str>)> {
        let mut id = self.next_id;
        messages
            .into_iter()
            .map(|m| {
                let message = ChatMessage {
                    room: room.clone(),
                    id,
                    ts: m.ts,
                    from: m.from,
                    text: m.text,
                    nonce: m.nonce,
                };
                id += 1;
                (
                    message.id,
                    ServerMessage::Message(&message).to_json().into(),
                )
            })
            .collect()
    }

    /// Keep stored messages (oldest dropped past `max`); they are now what
    /// [`Recent::since`] returns.
    pub fn keep(&mut self, stored: &[(u64, Arc<str>)]) {
        for (id, json) in stored {
            self.next_id = id + 1;
            if self.max == 0 {
                continue;
            }
            if self.kept.len() == self.max {
                self.kept.pop_front();
            }
            self.kept.push_back((*id, Arc::clone(json)));
        }
    }

    /// The JSON of the kept messages after `after` (all kept, without it),
    /// oldest first.
    pub fn since(&self, after: Option<u64>) -> Vec<&str> {
        let after = after.unwrap_or(0);
        let start = self.kept.partition_point(|(id, _)| *id <= after);
        self.kept.range(start..).map(|(_, json)| &**json).collect()
    }

    /// The id the next message will get.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// The id of the last message, 0 before the first.
    pub fn last_id(&self) -> u64 {
        self.next_id - 1
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

/// History in memory only: nothing is written, and it is gone at exit.
#[derive(Debug, Default)]
pub struct MemoryStore;

impl HistoryStore for MemoryStore {
    fn append(&mut self, _messages: &[Arc<str>]) -> io::Result<()> {
        Ok(())
    }

    fn name(&self) -> &'static str {
        "history"
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn message(text: &str) -> NewMessage {
        NewMessage {
            ts: 1,
            from: User {
                id: 1,
                name: "a".into(),
            },
            text: text.into(),
            nonce: None,
        }
    }

    #[test]
    fn keeps_the_last_n_and_resumes_after_an_id() {
        let mut h = Recent::new(3, 1);
        let room = RoomName::lobby();
        for id in 1..=5 {
            let stored = h.number(&room, vec![message(&format!("m{id}"))]);
            assert!(
                stored[0].1.contains(&format!(r#""id":{id},"#)),
                "{}",
                stored[0].1
            );
            h.keep(&stored);
        }
        let ids = |v: Vec<&str>| v.join("|");
        assert!(ids(h.since(None)).contains("m3"));
        assert!(!ids(h.since(None)).contains("m2"));
        assert_eq!(h.since(Some(4)).len(), 1);
        assert_eq!(h.since(Some(5)).len(), 0);
        assert_eq!(h.next_id(), 6);
    }

    #[test]
    fn with_nothing_kept_the_room_still_numbers_its_messages() {
        let mut h = Recent::new(0, 10);
        let room = RoomName::parse("rust").unwrap();
        let stored = h.number(&room, vec![message("a"), message("b")]);
        assert!(stored[1].1.contains(r#""room":"rust","id":11,"#));
        h.keep(&stored);
        assert!(h.since(None).is_empty());
        assert_eq!(h.next_id(), 12);
    }
}
