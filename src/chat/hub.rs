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
//! batch — and, while the room is busy, what arrives within [`GATHER_GAP`]
//! of the last one. What the batch broadcasts is gathered by the [`Room`]
//! and handed to each member once, at the end of the batch. Messages go to
//! the room's history store first, one write (and one sync, with `--fsync`)
//! for a run of messages, and what the store stored is what is broadcast.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Receiver;

use super::history::{HistoryStore, NewMessage};
use super::protocol::{ChatError, Command, ErrorCode, TextLimits, User, WelcomeLimits};
use super::room::Room;
use crate::ws::{CloseCode, Sender};

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
/// rest of a burst carries more messages per send. A room is busy when the
/// previous batch held more than one event: a lone message in a quiet room
/// is delivered at once.
const GATHER_GAP: Duration = Duration::from_micros(50);
const GATHER_WINDOW: Duration = Duration::from_millis(1);

/// A `say` waiting, with the rest of its batch, for one history write.
struct Staged {
    from: u64,
    text: String,
    nonce: Option<String>,
}

pub struct Hub {
    room: Room,
    limits: TextLimits,
    staged: Vec<Staged>,
}

impl Hub {
    pub fn new(history: Box<dyn HistoryStore>, limits: TextLimits) -> Hub {
        Hub {
            room: Room::new(history),
            limits,
            staged: Vec::new(),
        }
    }

    /// Run until a [`HubEvent::Shutdown`] or until every event sender is gone.
    pub fn run(mut self, events: Receiver<HubEvent>) {
        let mut busy = false;
        while let Ok(event) = events.recv() {
            let started = Instant::now();
            let end = started + GATHER_WINDOW;
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
            crate::metrics::get().batch(handled, started.elapsed());
            self.store_staged();
            self.room.deliver();
            if stop {
                break;
            }
        }
        self.store_staged();
        self.room
            .close_all(CloseCode::GOING_AWAY, "server shutting down");
    }

    /// Handle one event; `true` means stop. Messages are staged until the
    /// next event that is not one, so that a run of them is stored at once
    /// and stays in order with joins, leaves and renames around it.
    fn handle(&mut self, event: HubEvent) -> bool {
        match event {
            HubEvent::Command {
                id,
                command: Command::Say { text, nonce },
            } => {
                if self.room.member(id).is_some() {
                    crate::metrics::get().received();
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
                if let Some(old) = self.room.rename(id, name)
                    && let Some(member) = self.room.member(id)
                {
                    log::debug!("#{id} renamed {old:?} -> {:?}", member.user.name);
                }
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
                let user = User {
                    id,
                    name: name.unwrap_or_else(|| format!("guest-{id}")),
                };
                let limits = WelcomeLimits {
                    max_text: self.limits.max_text,
                    max_name: self.limits.max_name,
                };
                let name = user.name.clone();
                if self.room.join(user, sender, resume, &limits) {
                    log::debug!(
                        "#{id} joined as {name:?} ({} online; history after {resume:?})",
                        self.room.len()
                    );
                }
            }
            HubEvent::Leave { id } => {
                self.store_staged();
                if let Some(member) = self.room.leave(id) {
                    log::debug!(
                        "#{id} ({:?}) left ({} online)",
                        member.user.name,
                        self.room.len()
                    );
                }
            }
            HubEvent::Shutdown => return true,
        }
        false
    }

    /// Store the staged messages, then add them to the batch. If the history
    /// cannot be written, nothing is broadcast and each sender is told.
    fn store_staged(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        let ts = now_ms();
        let mut messages = Vec::with_capacity(self.staged.len());
        let mut senders = Vec::with_capacity(self.staged.len());
        for s in std::mem::take(&mut self.staged) {
            let Some(member) = self.room.member(s.from) else {
                continue;
            };
            senders.push((member.sender.clone(), s.nonce.clone()));
            messages.push(NewMessage {
                ts,
                from: member.user.clone(),
                text: s.text,
                nonce: s.nonce,
            });
        }
        if let Err(e) = self.room.store(messages) {
            log::error!(
                "{}: cannot store {} message(s): {e}",
                self.room.history_name(),
                senders.len()
            );
            for (sender, nonce) in senders {
                let mut error = ChatError::new(
                    ErrorCode::StorageFailed,
                    "the server could not store your message",
                );
                error.nonce = nonce;
                let _ = sender.try_send_text(&error.to_json());
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
