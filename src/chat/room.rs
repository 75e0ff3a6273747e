//! A room: who is in it, what the current batch broadcasts to them, the
//! presence list as every joiner receives it, and the room's history.
//!
//! Everything a batch broadcasts — messages, joins, leaves, renames — goes
//! into one [`Broadcast`], encoded once; at the end of the batch each member
//! is handed the whole batch at once (one non-blocking send when its socket
//! has room, else one queue item for its writer). A member that joined
//! during the batch gets only the part after its own join: its `welcome`
//! covers the rest.

use std::collections::HashMap;
use std::io;

use super::history::{HistoryStore, NewMessage};
use super::protocol::{ServerMessage, User, WelcomeLimits, welcome_json};
use crate::ws::broadcast::{Broadcast, Mark};
use crate::ws::conn::TrySend;
use crate::ws::{CloseCode, Sender};

/// A connection in the room.
pub struct Member {
    pub user: User,
    pub sender: Sender,
}

pub struct Room {
    members: HashMap<u64, Member>,
    /// What this batch broadcasts.
    outbox: Broadcast,
    /// Members that joined during this batch, and where their share starts.
    joined_at: HashMap<u64, Mark>,
    /// The `users` array of the welcome, serialized without its closing
    /// `]`: rebuilt only after a leave or rename, extended on a join.
    presence: Option<String>,
    history: Box<dyn HistoryStore>,
    metrics: &'static crate::metrics::RoomCounters,
}

impl Room {
    pub fn new(history: Box<dyn HistoryStore>) -> Room {
        Room {
            members: HashMap::new(),
            outbox: Broadcast::default(),
            joined_at: HashMap::new(),
            presence: None,
            history,
            metrics: crate::metrics::room("lobby"),
        }
    }

    pub fn member(&self, id: u64) -> Option<&Member> {
        self.members.get(&id)
    }

    /// What the log calls the room's history store.
    pub fn history_name(&self) -> &'static str {
        self.history.name()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Let `user` in: its welcome (with the history after `resume`) goes to
    /// it now, its join to everyone else with the batch. `false` when the
    /// welcome found the member's queue full: it is closed as too slow.
    pub fn join(
        &mut self,
        user: User,
        sender: Sender,
        resume: Option<u64>,
        limits: &WelcomeLimits,
    ) -> bool {
        let id = user.id;
        let user_json = serde_json::to_string(&user).unwrap_or_default();
        let mut users = std::mem::take(self.presence());
        if users.len() > 1 {
            users.push(',');
        }
        users.push_str(&user_json);
        users.push(']');
        let welcome = welcome_json(&user, &users, &self.history.since(resume), limits);
        users.pop();
        self.presence = Some(users);
        if sender.try_send_text(&welcome).is_err() {
            crate::metrics::get().slow_closed();
            sender.close(CloseCode::POLICY, "too slow", false);
            self.presence = None;
            return false;
        }
        self.outbox
            .text(&ServerMessage::Join { user: &user }.to_json());
        self.joined_at.insert(id, self.outbox.mark());
        self.members.insert(id, Member { user, sender });
        self.metrics.joined();
        true
    }

    /// `id` is gone: everyone else is told with the batch.
    pub fn leave(&mut self, id: u64) -> Option<Member> {
        let member = self.members.remove(&id)?;
        self.metrics.left(1);
        self.presence = None;
        self.joined_at.remove(&id);
        self.outbox
            .text(&ServerMessage::Leave { user: &member.user }.to_json());
        Some(member)
    }

    /// `id` is now called `name`; everyone is told with the batch. Returns
    /// the old name when it changed.
    pub fn rename(&mut self, id: u64, name: String) -> Option<String> {
        let member = self.members.get_mut(&id)?;
        if member.user.name == name {
            return None;
        }
        let old = std::mem::replace(&mut member.user.name, name);
        let json = ServerMessage::Rename {
            user: &member.user,
            old: &old,
        }
        .to_json();
        self.presence = None;
        self.outbox.text(&json);
        Some(old)
    }

    /// Store messages in the history, then add what was stored to the
    /// batch. If the history cannot be written, nothing is broadcast.
    pub fn store(&mut self, messages: Vec<NewMessage>) -> io::Result<()> {
        let stored = self.history.append(messages);
        crate::metrics::get().history_write(stored.is_ok());
        let stored = stored?;
        self.metrics.messages(stored.len());
        for json in stored {
            self.outbox.text(&json);
        }
        Ok(())
    }

    /// Hand the batch to every member. Members whose queue is full are
    /// closed (1008, too slow) and leave, and their leaving is delivered in
    /// turn.
    pub fn deliver(&mut self) {
        while !self.outbox.is_empty() {
            let batch = self.outbox.seal();
            let joined_at = std::mem::take(&mut self.joined_at);
            let mut gone = Vec::new();
            let mut delivered = 0;
            for (&id, member) in &self.members {
                let from = joined_at.get(&id).copied();
                match member.sender.try_send_batch(&batch, from) {
                    Ok(()) => delivered += batch.messages_from(from),
                    Err(TrySend::Full) => {
                        crate::metrics::get().slow_closed();
                        log::info!("client {id} ({}) is too slow; closing it", member.user.name);
                        member.sender.close(CloseCode::POLICY, "too slow", false);
                        gone.push(id);
                    }
                    Err(TrySend::Disconnected) => gone.push(id),
                }
            }
            crate::metrics::get().delivered(delivered);
            for id in gone {
                self.leave(id);
            }
        }
    }

    /// Deliver what is left, then close every member with `code`.
    pub fn close_all(&mut self, code: CloseCode, reason: &str) {
        self.deliver();
        for member in self.members.values() {
            member.sender.close(code, reason, true);
        }
        self.metrics.left(self.members.len());
        self.members.clear();
        if let Err(e) = self.history.sync() {
            log::error!("{}: sync at shutdown failed: {e}", self.history.name());
        }
    }

    /// `[` and every member, comma-separated, without the closing `]`.
    fn presence(&mut self) -> &mut String {
        let members = &self.members;
        self.presence.get_or_insert_with(|| {
            let mut users: Vec<&User> = members.values().map(|m| &m.user).collect();
            users.sort_by_key(|u| u.id);
            let mut json = serde_json::to_string(&users).unwrap_or_else(|_| "[]".into());
            json.pop();
            json
        })
    }
}
