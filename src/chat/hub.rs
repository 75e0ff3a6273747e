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
//! Consecutive `say`s are handled as one batch: one history write (and one
//! sync, with `--fsync`) for the batch, then one encoded frame per message,
//! shared by every client's queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::Receiver;

use super::history::History;
use super::protocol::{
    ChatError, ChatMessage, Command, ErrorCode, ServerMessage, TextLimits, User, WelcomeLimits,
};
use crate::ws::conn::TrySend;
use crate::ws::frame::{OpCode, encode_frame};
use crate::ws::{CloseCode, Outgoing, Sender};

/// What readers tell the hub.
#[derive(Debug)]
pub enum Event {
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

/// Most events handled before staged messages are flushed.
const MAX_BATCH: usize = 512;

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
    staged: Vec<Staged>,
}

impl Hub {
    pub fn new(history: History, limits: TextLimits) -> Hub {
        Hub {
            clients: HashMap::new(),
            history,
            limits,
            staged: Vec::new(),
        }
    }

    /// Run until a [`Event::Shutdown`] or until every event sender is gone.
    pub fn run(mut self, events: Receiver<Event>) {
        while let Ok(event) = events.recv() {
            let mut stop = self.handle(event);
            let mut handled = 1;
            while !stop && handled < MAX_BATCH {
                match events.try_recv() {
                    Ok(event) => stop = self.handle(event),
                    Err(_) => break,
                }
                handled += 1;
            }
            self.flush();
            if stop {
                self.shutdown();
                return;
            }
        }
        self.shutdown();
    }

    /// Handle one event; `true` means stop.
    fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Command {
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
            Event::Command {
                id,
                command:
                    Command::Rename { name }
                    | Command::Hello {
                        name: Some(name), ..
                    },
            } => {
                self.flush();
                self.rename(id, name);
            }
            Event::Command {
                command: Command::Hello { name: None, .. },
                ..
            } => {}
            Event::Join {
                id,
                sender,
                name,
                resume,
            } => {
                self.flush();
                self.join(id, sender, name, resume);
            }
            Event::Leave { id } => {
                self.flush();
                self.leave(id);
            }
            Event::Shutdown => return true,
        }
        false
    }

    fn join(&mut self, id: u64, sender: Sender, name: Option<String>, resume: Option<u64>) {
        let user = User {
            id,
            name: name.unwrap_or_else(|| format!("guest-{id}")),
        };
        let welcome = {
            let mut users: Vec<&User> = self.clients.values().map(|c| &c.user).collect();
            users.push(&user);
            users.sort_by_key(|u| u.id);
            ServerMessage::Welcome {
                you: &user,
                users,
                history: self.history.since(resume),
                limits: WelcomeLimits {
                    max_text: self.limits.max_text,
                    max_name: self.limits.max_name,
                },
            }
            .to_json()
        };
        if sender
            .try_send(Outgoing::Owned(text_frame(&welcome)))
            .is_err()
        {
            sender.close(CloseCode::POLICY, "too slow", false);
            return;
        }
        let join = ServerMessage::Join { user: &user }.to_json();
        self.clients.insert(id, Client { user, sender });
        self.broadcast_except(&join, Some(id));
    }

    fn leave(&mut self, id: u64) {
        self.remove(vec![id]);
    }

    fn rename(&mut self, id: u64, name: String) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if client.user.name == name {
            return;
        }
        let old = std::mem::replace(&mut client.user.name, name);
        let json = ServerMessage::Rename {
            user: &client.user,
            old: &old,
        }
        .to_json();
        self.broadcast_except(&json, None);
    }

    /// Store and broadcast the staged messages.
    fn flush(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        let staged = std::mem::take(&mut self.staged);
        let ts = now_ms();
        let mut id = self.history.next_id();
        let mut batch = Vec::with_capacity(staged.len());
        for s in &staged {
            let Some(client) = self.clients.get(&s.from) else {
                continue;
            };
            let message = ChatMessage {
                id,
                ts,
                from: client.user.clone(),
                text: s.text.clone(),
                nonce: s.nonce.clone(),
            };
            batch.push((id, ServerMessage::Message(&message).to_json()));
            id += 1;
        }
        match self.history.append(batch) {
            Ok(stored) => {
                // Every client gets the whole batch as one queue item: one
                // wake-up and one write for its writer, however many messages.
                let mut frames =
                    Vec::with_capacity(stored.iter().map(|(_, j)| j.get().len() + 10).sum());
                for (_, json) in &stored {
                    encode_frame(&mut frames, true, OpCode::Text, json.get().as_bytes(), None);
                }
                self.broadcast_frames(frames.into(), None);
            }
            Err(e) => {
                log::error!(
                    "history file: cannot store {} message(s): {e}",
                    staged.len()
                );
                for s in staged {
                    let mut error = ChatError::new(
                        ErrorCode::StorageFailed,
                        "the server could not store your message",
                    );
                    error.nonce = s.nonce;
                    if let Some(client) = self.clients.get(&s.from) {
                        let _ = client
                            .sender
                            .try_send(Outgoing::Owned(text_frame(&error.to_json())));
                    }
                }
            }
        }
    }

    /// Send to every client but `except`; close and drop the ones that
    /// cannot keep up, telling the others they left.
    fn broadcast_except(&mut self, json: &str, except: Option<u64>) {
        self.broadcast_frames(text_frame(json).into(), except);
    }

    /// Send encoded frames to every client but `except`, as in
    /// [`Hub::broadcast_except`].
    fn broadcast_frames(&mut self, frames: Arc<[u8]>, except: Option<u64>) {
        let gone = self.send_all(frames, except);
        self.remove(gone);
    }

    /// Forget these clients and tell everyone else they left — which may
    /// find more clients too slow to take even that.
    fn remove(&mut self, mut gone: Vec<u64>) {
        while let Some(id) = gone.pop() {
            if let Some(client) = self.clients.remove(&id) {
                let leave = ServerMessage::Leave { user: &client.user }.to_json();
                gone.extend(self.send_all(text_frame(&leave).into(), None));
            }
        }
    }

    /// The same encoded bytes into every queue. Returns the clients whose
    /// queue was full (now asked to close) or already gone.
    fn send_all(&self, frame: Arc<[u8]>, except: Option<u64>) -> Vec<u64> {
        let mut gone = Vec::new();
        for (&id, client) in &self.clients {
            if Some(id) == except {
                continue;
            }
            match client.sender.try_send(Outgoing::Shared(Arc::clone(&frame))) {
                Ok(()) => {}
                Err(TrySend::Full) => {
                    log::info!("client {id} ({}) is too slow; closing it", client.user.name);
                    client.sender.close(CloseCode::POLICY, "too slow", false);
                    gone.push(id);
                }
                Err(TrySend::Disconnected) => gone.push(id),
            }
        }
        gone
    }

    fn shutdown(&mut self) {
        self.flush();
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
