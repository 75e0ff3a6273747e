//! A room: who is in it, what the current batch broadcasts to them, the
//! presence list as every joiner receives it, and the room's recent history.
//!
//! Presence is per user (a session), delivery per connection: a user with
//! two tabs in the room is one entry in the list and both tabs receive
//! everything; a user in its grace stays in the list with no connection.
//!
//! Everything a batch broadcasts in the room — messages, joins, leaves,
//! renames, typing — goes into one [`Broadcast`], encoded once; at the end
//! of the batch the hub hands each connection its share of every room it is
//! in at once (one non-blocking send when its socket has room, else one
//! queue item for its writer). A connection that joined during the batch gets only the part
//! after its own join: its `joined` covers the rest.

use std::collections::HashMap;
use std::sync::Arc;

use super::bus::Delivery;
use super::bus::note::Note;
use super::history::{NewMessage, Recent};
use super::messages::{RoomView, ServerMessage, User, joined_json};
use super::names::RoomName;
use crate::ws::Sender;
use crate::ws::broadcast::{Batch, Broadcast, Mark};

/// A user in the room: how many of its connections on this node are,
/// whether this node has it here (with connections, or in its grace), and
/// which other nodes have it here too.
struct Member {
    user: User,
    conns: usize,
    local: bool,
    remote: Vec<String>,
}

pub struct Room {
    name: RoomName,
    members: HashMap<u64, Member>,
    conns: HashMap<u64, Sender>,
    /// What this batch broadcasts.
    outbox: Broadcast,
    /// Connections that joined during this batch, and where their share
    /// starts.
    joined_at: HashMap<u64, Mark>,
    /// The `users` array, serialized without its closing `]`: rebuilt only
    /// after a leave or rename, extended on a join.
    presence: Option<String>,
    recent: Recent,
    /// The last message id delivered to the connections.
    delivered: u64,
    metrics: &'static crate::metrics::RoomCounters,
    /// In a cluster: what the other nodes must hear of this node's
    /// presence here, collected for the hub.
    notes: Option<Vec<Note>>,
}

impl Room {
    pub fn new(name: RoomName, recent: Recent) -> Room {
        Room {
            metrics: crate::metrics::room(name.as_str()),
            delivered: recent.last_id(),
            name,
            members: HashMap::new(),
            conns: HashMap::new(),
            outbox: Broadcast::default(),
            joined_at: HashMap::new(),
            presence: None,
            recent,
            notes: None,
        }
    }

    /// In a cluster: collect [`Note::Here`] and [`Note::Gone`] for the
    /// hub to publish.
    pub fn clustered(mut self) -> Room {
        self.notes = Some(Vec::new());
        self
    }

    /// The notes collected since the last call.
    pub fn take_notes(&mut self) -> Vec<Note> {
        self.notes.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn note(&mut self, note: impl FnOnce(&RoomName) -> Note) {
        if let Some(notes) = &mut self.notes {
            notes.push(note(&self.name));
        }
    }

    /// The users this node has here.
    pub fn local_users(&self) -> impl Iterator<Item = &User> {
        self.members.values().filter(|m| m.local).map(|m| &m.user)
    }

    pub fn name(&self) -> &RoomName {
        &self.name
    }

    /// Users present (one per session).
    pub fn users(&self) -> usize {
        self.members.len()
    }

    pub fn has_user(&self, user: u64) -> bool {
        self.members.contains_key(&user)
    }

    /// Nobody in it and no history: it may go.
    pub fn is_idle(&self) -> bool {
        self.members.is_empty() && self.recent.is_empty()
    }

    /// Nobody in it.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The last id delivered to the room's connections.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Let connection `conn` of `user` in: returns its `joined` (with the
    /// history after `resume`), for the caller to send now; unless the user
    /// was already present, its join goes to everyone else with the batch.
    pub fn join(&mut self, conn: u64, user: &User, sender: &Sender, resume: Option<u64>) -> String {
        let new_user = !self.members.contains_key(&user.id);
        let mut users = std::mem::take(self.presence());
        if new_user {
            if users.len() > 1 {
                users.push(',');
            }
            users.push_str(&serde_json::to_string(user).unwrap_or_default());
        }
        users.push(']');
        let reset = self.recent.before_epoch(resume);
        let joined = joined_json(
            &self.name,
            &RoomView {
                users_array: &users,
                history: self.recent.since(if reset { None } else { resume }),
                reset,
            },
        );
        users.pop();
        self.presence = Some(users);
        let member = self.members.entry(user.id).or_insert_with(|| Member {
            user: user.clone(),
            conns: 0,
            local: false,
            remote: Vec::new(),
        });
        if self.conns.insert(conn, sender.clone()).is_none() {
            member.conns += 1;
        }
        if !member.local {
            member.local = true;
            self.note(|room| Note::Here {
                room: room.clone(),
                user: user.clone(),
            });
        }
        if new_user {
            self.metrics.joined();
            self.outbox.text(
                &ServerMessage::Join {
                    room: &self.name,
                    user,
                }
                .to_json(),
            );
        }
        self.joined_at.insert(conn, self.outbox.mark());
        joined
    }

    /// The `users` and `history` a joiner of this room sees, for a welcome
    /// in the old form.
    pub fn view(&mut self, resume: Option<u64>) -> (String, Vec<String>, bool) {
        let mut users = self.presence().clone();
        users.push(']');
        let reset = self.recent.before_epoch(resume);
        let history = self
            .recent
            .since(if reset { None } else { resume })
            .into_iter()
            .map(str::to_owned)
            .collect();
        (users, history, reset)
    }

    /// Connection `conn` of `user` leaves. The user leaves with its last
    /// connection unless `stay` (its session is in its grace). Returns
    /// whether this node still has the user here.
    pub fn leave_conn(&mut self, conn: u64, user: u64, stay: bool) -> bool {
        self.joined_at.remove(&conn);
        if self.conns.remove(&conn).is_some()
            && let Some(member) = self.members.get_mut(&user)
        {
            member.conns -= 1;
        }
        match self.members.get(&user) {
            Some(member) if member.conns == 0 && !stay => {
                self.remove_user(user);
                false
            }
            Some(member) => member.local,
            None => false,
        }
    }

    /// This node no longer has `user` here; unless another node does, it is
    /// gone from the room and everyone is told with the batch.
    pub fn remove_user(&mut self, user: u64) {
        let Some(member) = self.members.get_mut(&user) else {
            return;
        };
        if member.local {
            member.local = false;
            self.note(|room| Note::Gone {
                room: room.clone(),
                user,
            });
        }
        self.drop_if_absent(user);
    }

    /// Another node has `user` here.
    pub fn remote_here(&mut self, node: &str, user: &User) {
        let new_user = !self.members.contains_key(&user.id);
        let member = self.members.entry(user.id).or_insert_with(|| Member {
            user: user.clone(),
            conns: 0,
            local: false,
            remote: Vec::new(),
        });
        if !member.remote.iter().any(|n| n == node) {
            member.remote.push(node.to_owned());
        }
        if new_user {
            self.metrics.joined();
            self.presence = None;
            self.outbox.text(
                &ServerMessage::Join {
                    room: &self.name,
                    user,
                }
                .to_json(),
            );
        }
    }

    /// Node `node` no longer has `user` here.
    pub fn remote_gone(&mut self, node: &str, user: u64) {
        if let Some(member) = self.members.get_mut(&user) {
            member.remote.retain(|n| n != node);
            self.drop_if_absent(user);
        }
    }

    /// A user that no node has here any more leaves the room.
    fn drop_if_absent(&mut self, user: u64) {
        if !self
            .members
            .get(&user)
            .is_some_and(|m| !m.local && m.remote.is_empty())
        {
            return;
        }
        if let Some(member) = self.members.remove(&user) {
            self.metrics.left(1);
            self.presence = None;
            self.outbox.text(
                &ServerMessage::Leave {
                    room: &self.name,
                    user: &member.user,
                }
                .to_json(),
            );
        }
    }

    /// `user` is now called as in `renamed`; everyone is told with the batch.
    pub fn rename(&mut self, renamed: &User, old: &str) {
        if let Some(member) = self.members.get_mut(&renamed.id) {
            if member.user.name == renamed.name {
                return;
            }
            member.user.name.clone_from(&renamed.name);
            if member.local {
                self.note(|room| Note::Here {
                    room: room.clone(),
                    user: renamed.clone(),
                });
            }
            self.presence = None;
            self.outbox.text(
                &ServerMessage::Rename {
                    room: &self.name,
                    user: renamed,
                    old,
                }
                .to_json(),
            );
        }
    }

    /// Add something already serialized to the batch.
    pub fn broadcast(&mut self, json: &str) {
        self.outbox.text(json);
    }

    /// Number messages for this room; nothing is kept or broadcast until
    /// [`Room::stored`].
    pub fn number(&self, messages: Vec<NewMessage>) -> Vec<(u64, Arc<str>)> {
        self.recent.number(&self.name, messages)
    }

    /// Messages were stored: keep them, and broadcast them with the batch.
    pub fn stored(&mut self, stored: &[(u64, Arc<str>)]) {
        self.recent.keep(stored);
        self.metrics.messages(stored.len());
        for (_, json) in stored {
            self.outbox.text(json);
        }
    }

    /// Messages numbered and stored in Redis, heard back from the bus in id
    /// order: keep them, and broadcast them with the batch. When the room
    /// started over, its clients are told first.
    pub fn mirrored(&mut self, epoch: u64, delivery: Delivery, messages: &[(u64, Arc<str>)]) {
        match delivery {
            Delivery::Next => {}
            Delivery::Fresh => self.recent.reset(epoch),
            Delivery::Reset => {
                log::warn!(
                    "{}: the room's history starts over (epoch {epoch})",
                    self.name
                );
                self.recent.reset(epoch);
                self.outbox
                    .text(&ServerMessage::Reset { room: &self.name }.to_json());
            }
        }
        self.stored(messages);
    }

    /// Seal what this batch broadcasts, with where the connections that
    /// joined during it start; `None` when it broadcasts nothing. The hub
    /// hands it to [`Room::connections`].
    pub fn seal(&mut self) -> Option<(Batch, HashMap<u64, Mark>)> {
        self.delivered = self.recent.last_id();
        if self.outbox.is_empty() {
            self.joined_at.clear();
            return None;
        }
        Some((self.outbox.seal(), std::mem::take(&mut self.joined_at)))
    }

    /// The connections in the room.
    pub fn connections(&self) -> impl Iterator<Item = (u64, &Sender)> {
        self.conns.iter().map(|(conn, sender)| (*conn, sender))
    }

    /// `[` and every user, comma-separated, without the closing `]`.
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
