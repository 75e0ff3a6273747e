//! Message history: the store behind a room's messages.
//!
//! A [`HistoryStore`] assigns each message its id, keeps the last N for the
//! `welcome` of a joining (or resuming) client, and — for the file store —
//! writes every message down *before* the hub broadcasts it, so one that any
//! client has received is stored even if the process is killed right after.
//! The hub broadcasts exactly what the store says it stored. Stores:
//! [`MemoryStore`] (the default) and [`FileStore`](super::history_file::FileStore)
//! (`--history-file`).

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use super::protocol::{ChatMessage, ServerMessage, User};

/// A message on its way into the store, before it has an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// Unix time in milliseconds.
    pub ts: u64,
    pub from: User,
    pub text: String,
    pub nonce: Option<String>,
}

/// Where a room's messages are kept.
pub trait HistoryStore: Send {
    /// Store a run of messages, in order, with consecutive ids: one write
    /// (and one sync) for the whole run. Returns each stored message's JSON,
    /// as it is to be broadcast. On error nothing is stored and no id is
    /// used up.
    fn append(&mut self, messages: Vec<NewMessage>) -> io::Result<Vec<Arc<str>>>;

    /// The JSON of the kept messages after `after` (all kept, without it),
    /// oldest first.
    fn since(&self, after: Option<u64>) -> Vec<&str>;

    /// The id the next message will get.
    fn next_id(&self) -> u64;

    /// What the log calls this store ("history file").
    fn name(&self) -> &'static str;

    /// Make what is stored durable (at shutdown).
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The last `max` messages and the next id: what every store keeps in
/// memory.
#[derive(Debug)]
pub struct Recent {
    kept: VecDeque<(u64, Arc<str>)>,
    max: usize,
    next_id: u64,
}

impl Recent {
    pub fn new(max: usize) -> Recent {
        Recent {
            kept: VecDeque::new(),
            max,
            next_id: 1,
        }
    }

    /// Give each message the next id and serialize it; nothing is kept yet
    /// (see [`Recent::keep`]).
    pub fn number(&self, messages: Vec<NewMessage>) -> Vec<(u64, Arc<str>)> {
        let mut id = self.next_id;
        messages
            .into_iter()
            .map(|m| {
                let message = ChatMessage {
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

    pub fn since(&self, after: Option<u64>) -> Vec<&str> {
        let after = after.unwrap_or(0);
        let start = self.kept.partition_point(|(id, _)| *id <= after);
        self.kept.range(start..).map(|(_, json)| &**json).collect()
    }

    pub fn next_id(&self) -> u64 {
        self.next_id
    }
}

/// History in memory only: the last N messages, gone at exit.
#[derive(Debug)]
pub struct MemoryStore(Recent);

impl MemoryStore {
    pub fn new(max: usize) -> MemoryStore {
        MemoryStore(Recent::new(max))
    }
}

impl HistoryStore for MemoryStore {
    fn append(&mut self, messages: Vec<NewMessage>) -> io::Result<Vec<Arc<str>>> {
        let stored = self.0.number(messages);
        self.0.keep(&stored);
        Ok(stored.into_iter().map(|(_, json)| json).collect())
    }

    fn since(&self, after: Option<u64>) -> Vec<&str> {
        self.0.since(after)
    }

    fn next_id(&self) -> u64 {
        self.0.next_id()
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
        let mut h = MemoryStore::new(3);
        for id in 1..=5 {
            let stored = h.append(vec![message(&format!("m{id}"))]).unwrap();
            assert!(
                stored[0].contains(&format!(r#""id":{id},"#)),
                "{}",
                stored[0]
            );
        }
        let ids = |v: Vec<&str>| v.join("|");
        assert!(ids(h.since(None)).contains("m3"));
        assert!(!ids(h.since(None)).contains("m2"));
        assert_eq!(h.since(Some(4)).len(), 1);
        assert_eq!(h.since(Some(5)).len(), 0);
        assert_eq!(h.next_id(), 6);
    }

    #[test]
    fn with_nothing_kept_the_store_still_numbers_and_returns_messages() {
        let mut h = MemoryStore::new(0);
        let stored = h.append(vec![message("a"), message("b")]).unwrap();
        assert_eq!(stored.len(), 2);
        assert!(stored[1].contains(r#""id":2,"#));
        assert!(h.since(None).is_empty());
        assert_eq!(h.next_id(), 3);
    }
}
