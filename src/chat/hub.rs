//! The hub: one thread that owns every piece of chat state — who is
//! connected, their names, the history — and nothing else touches it, so
//! nothing needs a lock.
//!
//! It is a loop over one event channel (like gorilla/websocket's chat
//! example). Readers send events in; the hub answers through each client's
//! bounded outgoing queue and never blocks on one: a client whose queue is
//! full is too slow to keep up, and is closed with 1008 so that everyone
//! else keeps receiving at full speed.
//!
//! The hub takes whatever events are waiting (up to [`MAX_BATCH`]) as one
//! batch — and, while the room is busy, what arrives within
//! [`GATHER_GAP`] of the last one. Everything the batch broadcasts — messages, joins, leaves,
//! renames — is encoded once into one outbox, and each client is handed the
//! whole outbox at once: one non-blocking send from this thread when the
//! client's socket has room and its writer is idle (see `ws::conn`), else
//! one queue item — one wake-up and one write for its writer — however busy
//! the room. A client that joined during the batch
//! gets only the part after its own join (its `welcome` covers the rest).
//! Messages are written to the history file before they enter the outbox,
//! one write (and one sync, with `--fsync`) for a run of messages.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Receiver;

use super::history::History;
use super::protocol::{
    ChatError, ChatMessage, Command, ErrorCode, ServerMessage, TextLimits, User, WelcomeLimits,
    welcome_json,
};
use crate::ws::conn::TrySend;
use crate::ws::frame::{OpCode, encode_frame};
use crate::ws::{CloseCode, Outgoing, Sender};

/// What readers tell the hub.
#[derive(Debug)]
pub enum HubEvent {
    /// A connection is ready to chat; `name` and `resume` come from its
    /// `hello`, if it sent one.
    Join {
        id: u64,
        sender: Sender,
        name: Option<String>,
        resume: Option<u64>,
    },
    /// A validated request from a joined client.
    Command { id: u64, command: Command },
    /// The connection is over.
    Leave { id: u64 },
    /// Close every client with 1001 and stop.
    Shutdown,
}

/// Most events handled as one batch.
pub const MAX_BATCH: usize = 512;

/// While the room is busy, how long the hub waits for one more event before
/// it delivers a batch, and how long it gathers one batch at most.
///
/// A batch costs one send per client however many messages it carries, and
/// on loopback that send (with the receiver's side of TCP, which the kernel
/// runs on the sender's time) is most of what a delivery costs. Events under
/// load come in bursts a few microseconds apart, so waiting a little for the
/// rest of a burst carries nearly twice the messages per send in the fanout
/// benchmark. A room is busy when the previous batch held more than one
/// event: a lone message in a quiet room is delivered at once.
const GATHER_GAP: Duration = Duration::from_micros(50);
const GATHER_WINDOW: Duration = Duration::from_millis(1);

struct Client {
    user: User,
    sender: Sender,
}

struct Staged {
    from: u64,
    text: String,
    nonce: Option<String>,
}

pub struct Hub {
    clients: HashMap<u64, Client>,
    history: History,
    limits: TextLimits,
    /// Messages waiting for one history write.
    staged: Vec<Staged>,
    /// Encoded frames for everyone, delivered at the end of the batch.
    outbox: Vec<u8>,
    /// Clients that joined during this batch, and where in the outbox their
    /// share starts.
    joined_at: HashMap<u64, usize>,
    /// The `users` array of the welcome, serialized: rebuilt only after a
    /// leave or rename, extended on a join.
    users_json: Option<String>,
}

impl Hub {
    pub fn new(history: History, limits: TextLimits) -> Hub {
        Hub {
            clients: HashMap::new(),
            history,
            limits,
            staged: Vec::new(),
            outbox: Vec::new(),
            joined_at: HashMap::new(),
            users_json: None,
        }
    }

    /// Run until a [`HubEvent::Shutdown`] or until every event sender is gone.
    pub fn run(mut self, events: Receiver<HubEvent>) {
        let mut busy = false;
        while let Ok(event) = events.recv() {
            let end = Instant::now() + GATHER_WINDOW;
            let mut stop = self.handle(event);
            let mut handled = 1;
            while !stop && handled < MAX_BATCH {
                let next = match events.try_recv() {
                    Ok(event) => Some(event),
                    Err(_) if busy => {
                        let deadline = (Instant::now() + GATHER_GAP).min(end);
                        events.recv_deadline(deadline).ok()
                    }
                    Err(_) => None,
                };
                let Some(event) = next else { break };
                stop = self.handle(event);
                handled += 1;
            }
            busy = handled > 1;
            self.deliver();
            if stop {
                break;
            }
        }
        self.shutdown();
    }

    /// Handle one event; `true` means stop.
    fn handle(&mut self, event: HubEvent) -> bool {
        match event {
            HubEvent::Command {
                id,
                command: Command::Say { text, nonce },
            } => {
                if self.clients.contains_key(&id) {
                    self.staged.push(Staged {
                        from: id,
                        text,
                        nonce,
                    });
                }
            }
            HubEvent::Command {
                id,
                command:
                    Command::Rename { name }
                    | Command::Hello {
                        name: Some(name), ..
                    },
            } => {
                self.store_staged();
                self.rename(id, name);
            }
            HubEvent::Command {
                command: Command::Hello { name: None, .. },
                ..
            } => {}
            HubEvent::Join {
                id,
                sender,
                name,
                resume,
            } => {
                self.store_staged();
                self.join(id, sender, name, resume);
            }
            HubEvent::Leave { id } => {
                self.store_staged();
                self.leave(id);
            }
            HubEvent::Shutdown => return true,
        }
        false
    }

    fn join(&mut self, id: u64, sender: Sender, name: Option<String>, resume: Option<u64>) {
        let user = User {
            id,
            name: name.unwrap_or_else(|| format!("guest-{id}")),
        };
        let user_json = serde_json::to_string(&user).unwrap_or_default();
        let users = self.users_json();
        if users.len() > 1 {
            users.push(',');
        }
        users.push_str(&user_json);
        let welcome = self.welcome(&user, resume);
        if sender
            .try_send(Outgoing::Owned(text_frame(&welcome)))
            .is_err()
        {
            sender.close(CloseCode::POLICY, "too slow", false);
            self.users_json = None;
            return;
        }
        self.broadcast(&ServerMessage::Join { user: &user }.to_json());
        log::debug!(
            "#{id} joined as {:?} ({} online; history after {resume:?})",
            user.name,
            self.clients.len() + 1
        );
        self.joined_at.insert(id, self.outbox.len());
        self.clients.insert(id, Client { user, sender });
    }

    /// The joiner's welcome; `users` (with the joiner) is already up to date.
    fn welcome(&mut self, you: &User, resume: Option<u64>) -> String {
        let limits = WelcomeLimits {
            max_text: self.limits.max_text,
            max_name: self.limits.max_name,
        };
        let mut users = std::mem::take(self.users_json());
        users.push(']');
        let json = welcome_json(you, &users, &self.history.since(resume), &limits);
        users.pop();
        self.users_json = Some(users);
        json
    }

    /// `[` and every joined user, comma-separated, without the closing `]`.
    fn users_json(&mut self) -> &mut String {
        let clients = &self.clients;
        self.users_json.get_or_insert_with(|| {
            let mut users: Vec<&User> = clients.values().map(|c| &c.user).collect();
            users.sort_by_key(|u| u.id);
            let mut json = serde_json::to_string(&users).unwrap_or_else(|_| "[]".into());
            json.pop();
            json
        })
    }

    fn leave(&mut self, id: u64) {
        if let Some(client) = self.clients.remove(&id) {
            self.users_json = None;
            self.joined_at.remove(&id);
            self.broadcast(&ServerMessage::Leave { user: &client.user }.to_json());
            log::debug!(
                "#{id} ({:?}) left ({} online)",
                client.user.name,
                self.clients.len()
            );
        }
    }

    fn rename(&mut self, id: u64, name: String) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if client.user.name == name {
            return;
        }
        let old = std::mem::replace(&mut client.user.name, name);
        log::debug!("#{id} renamed {old:?} -> {:?}", client.user.name);
        let json = ServerMessage::Rename {
            user: &client.user,
            old: &old,
        }
        .to_json();
        self.users_json = None;
        self.broadcast(&json);
    }

    /// Store the staged messages in the history, then queue them for
    /// everyone. If the history cannot be written, nothing is broadcast and
    /// each sender is told.
    fn store_staged(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        let staged = std::mem::take(&mut self.staged);
        let ts = now_ms();
        let mut id = self.history.next_id();
        let mut batch = Vec::with_capacity(staged.len());
        let mut senders = Vec::with_capacity(staged.len());
        for s in staged {
            let Some(client) = self.clients.get(&s.from) else {
                continue;
            };
            let message = ChatMessage {
                id,
                ts,
                from: client.user.clone(),
                text: s.text,
                nonce: s.nonce,
            };
            batch.push((id, ServerMessage::Message(&message).to_json()));
            senders.push((s.from, message.nonce));
            id += 1;
        }
        let outbox = &mut self.outbox;
        let stored = self.history.append(batch, |json| {
            encode_frame(outbox, true, OpCode::Text, json.as_bytes(), None)
        });
        if let Err(e) = stored {
            log::error!(
                "history file: cannot store {} message(s): {e}",
                senders.len()
            );
            for (from, nonce) in senders {
                let mut error = ChatError::new(
                    ErrorCode::StorageFailed,
                    "the server could not store your message",
                );
                error.nonce = nonce;
                if let Some(client) = self.clients.get(&from) {
                    let _ = client
                        .sender
                        .try_send(Outgoing::Owned(text_frame(&error.to_json())));
                }
            }
        }
    }

    /// Queue a message for every client (delivered by [`Hub::deliver`]).
    fn broadcast(&mut self, json: &str) {
        encode_frame(&mut self.outbox, true, OpCode::Text, json.as_bytes(), None);
    }

    /// Hand the outbox to every client as one shared buffer (sent at once,
    /// or queued for its writer). Clients whose queue is full are closed and
    /// dropped, and their leaving is delivered in turn.
    fn deliver(&mut self) {
        self.store_staged();
        while !self.outbox.is_empty() {
            let frames: Arc<[u8]> = std::mem::take(&mut self.outbox).into();
            let joined_at = std::mem::take(&mut self.joined_at);
            let mut gone = Vec::new();
            for (&id, client) in &self.clients {
                let item = match joined_at.get(&id) {
                    None => Outgoing::Shared(Arc::clone(&frames)),
                    Some(&start) if start < frames.len() => {
                        Outgoing::Tail(Arc::clone(&frames), start)
                    }
                    Some(_) => continue,
                };
                match client.sender.try_send(item) {
                    Ok(()) => {}
                    Err(TrySend::Full) => {
                        log::info!("client {id} ({}) is too slow; closing it", client.user.name);
                        client.sender.close(CloseCode::POLICY, "too slow", false);
                        gone.push(id);
                    }
                    Err(TrySend::Disconnected) => gone.push(id),
                }
            }
            for id in gone {
                self.leave(id);
            }
        }
    }

    fn shutdown(&mut self) {
        self.deliver();
        for client in self.clients.values() {
            client
                .sender
                .close(CloseCode::GOING_AWAY, "server shutting down", true);
        }
        self.clients.clear();
        if let Err(e) = self.history.sync() {
            log::error!("history file: sync at shutdown failed: {e}");
        }
    }
}

/// A server's text frame: unmasked, one frame.
pub fn text_frame(json: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 10);
    encode_frame(&mut out, true, OpCode::Text, json.as_bytes(), None);
    out
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
