//! The hub: one thread that owns every piece of chat state — connections,
//! sessions and their names, rooms, history — and nothing else touches it,
//! so nothing needs a lock.
//!
//! It is a loop over one event channel (like gorilla/websocket's chat
//! example). Readers send events in; the hub answers through each client's
//! bounded outgoing queue and never blocks on one: a client whose queue is
//! full is too slow to keep up, and is closed with 1008 so that everyone
//! else keeps receiving at full speed. The only other thing that wakes it
//! is the end of a session's grace.
//!
//! The hub takes whatever events are waiting (up to [`MAX_BATCH`]) as one
//! batch — and, while it is busy, what arrives within [`GATHER_GAP`] of the
//! last one. What the batch broadcasts in a room is gathered by that
//! [`Room`](super::room::Room) and handed to each of its connections once,
//! at the end of the batch: a connection gets one send per room with
//! something new. Messages go to the history store first, one write (and
//! one sync, with `--fsync`) for a run of messages in any rooms, and what
//! the store stored is what is broadcast.

mod cluster;
mod commands;
mod connect;

use std::collections::{HashMap, HashSet};
use std::io;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::bus::batch::{RoomRun, Unnumbered};
use super::bus::{Bus, BusEvent};
use super::history::{HistoryStore, NewMessage};
use super::history_file::Reloaded;
use super::names::RoomName;
use super::protocol::{ChatError, Command, ErrorCode, Hello, TextLimits};
use super::rooms::Rooms;
use super::session::{Sessions, TokenSource};
use super::typing::TypingThrottle;
use crate::ws::broadcast::{Batch, Mark};
use crate::ws::conn::TrySend;
use crate::ws::{CloseCode, Sender};

/// What readers tell the hub.
#[derive(Debug)]
pub enum HubEvent {
    /// A connection is ready to chat: its `hello`, if it sent one, and its
    /// home room (the upgrade URL's, else the lobby).
    Join {
        id: u64,
        sender: Sender,
        hello: Option<Hello>,
        home: RoomName,
        /// Why the URL's room was not taken as the home room.
        bad_home: Option<ChatError>,
    },
    /// A validated request from a joined client.
    Command { id: u64, command: Command },
    /// The connection is over.
    Leave { id: u64 },
    /// From the Redis bus (`--redis`).
    Bus(BusEvent),
    /// Close every client with 1001 and stop.
    Shutdown,
}

/// Most events handled as one batch.
pub const MAX_BATCH: usize = 512;

/// While the hub is busy, how long it waits for one more event before it
/// delivers a batch, and how long it gathers one batch at most.
///
/// A batch costs one send per client and room however many messages it
/// carries, and on loopback that send (with the receiver's side of TCP,
/// which the kernel runs on the sender's time) is most of what a delivery
/// costs. Events under load come in bursts a few microseconds apart, so
/// waiting a little for the rest of a burst carries more messages per send.
/// The hub is busy when the previous batch held more than one event: a lone
/// message in a quiet server is delivered at once.
const GATHER_GAP: Duration = Duration::from_micros(50);
const GATHER_WINDOW: Duration = Duration::from_millis(1);

/// The hub's settings.
#[derive(Clone, Debug)]
pub struct HubConfig {
    pub limits: TextLimits,
    /// Messages kept per room.
    pub history: usize,
    /// Rooms in memory (0: no cap).
    pub max_rooms: usize,
    /// Rooms one connection may be in.
    pub rooms_per_connection: usize,
    /// How long a session outlives its last connection.
    pub session_grace: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            limits: TextLimits::default(),
            history: 100,
            max_rooms: 1000,
            rooms_per_connection: 32,
            session_grace: Duration::from_secs(120),
        }
    }
}

/// A connection the hub knows.
struct Conn {
    session: u64,
    sender: Sender,
    home: RoomName,
    rooms: HashSet<RoomName>,
}

/// A `say` waiting, with the rest of its batch, for one history write.
struct Staged {
    conn: u64,
    room: RoomName,
    text: String,
    nonce: Option<String>,
}

pub struct Hub {
    config: HubConfig,
    rooms: Rooms,
    sessions: Sessions,
    conns: HashMap<u64, Conn>,
    store: Box<dyn HistoryStore>,
    staged: Vec<Staged>,
    typing: TypingThrottle,
    /// Connections found closed or too slow while being sent to: taken out
    /// of everything at the end of the batch.
    gone: Vec<u64>,
    next_dm: u64,
    /// In a cluster: where room messages go to be numbered and stored, and
    /// from where they come back.
    bus: Option<Bus>,
    /// In a cluster: the other nodes, and what this batch tells them.
    cluster: Option<cluster::Cluster>,
}

impl Hub {
    /// A hub over `store`, with the rooms a history file held.
    pub fn new(
        store: Box<dyn HistoryStore>,
        reloaded: Reloaded,
        config: HubConfig,
    ) -> io::Result<Hub> {
        Ok(Hub {
            rooms: Rooms::new(config.history, config.max_rooms, reloaded),
            sessions: Sessions::new(config.session_grace, TokenSource::open()?, 1),
            config,
            conns: HashMap::new(),
            store,
            staged: Vec::new(),
            typing: TypingThrottle::default(),
            gone: Vec::new(),
            next_dm: 1,
            bus: None,
            cluster: None,
        })
    }

    /// A node of a cluster: room messages go through Redis (numbered,
    /// stored and published there, and broadcast here when the bus hands
    /// them back), and the other nodes hear of this one's sessions,
    /// presence, DMs and typing. User ids start at `first_user_id`.
    pub fn with_bus(
        mut self,
        bus: Bus,
        node: String,
        node_timeout: Duration,
        first_user_id: u64,
    ) -> io::Result<Hub> {
        self.sessions = Sessions::new(
            self.config.session_grace,
            TokenSource::open()?,
            first_user_id,
        );
        self.rooms =
            std::mem::replace(&mut self.rooms, Rooms::new(0, 0, Reloaded::default())).clustered();
        self.bus = Some(bus);
        self.cluster = Some(cluster::Cluster::new(
            node,
            node_timeout,
            self.config.session_grace,
        ));
        Ok(self)
    }

    /// When the hub must wake with no event: a grace ending, or the next
    /// look at the other nodes.
    fn next_wake(&self) -> Option<Instant> {
        let tick = self.cluster.as_ref().map(cluster::Cluster::next_check);
        match (self.sessions.next_end(), tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Run until a [`HubEvent::Shutdown`] or until every event sender is gone.
    pub fn run(mut self, events: Receiver<HubEvent>) {
        let mut busy = false;
        loop {
            let first = match self.next_wake() {
                Some(end) => events.recv_deadline(end),
                None => events.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let event = match first {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => {
                    self.end_graces();
                    self.check_nodes();
                    self.flush_bus();
                    self.deliver();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
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
            self.end_graces();
            self.check_nodes();
            self.flush_bus();
            self.deliver();
            if stop {
                break;
            }
        }
        self.store_staged();
        self.flush_bus();
        self.deliver();
        for conn in self.conns.values() {
            conn.sender
                .close(CloseCode::GOING_AWAY, "server shutting down", true);
        }
        if let Err(e) = self.store.sync() {
            log::error!("{}: sync at shutdown failed: {e}", self.store.name());
        }
    }

    /// Handle one event; `true` means stop. Messages are staged until the
    /// next event that is not one, so that a run of them is stored at once
    /// and stays in order with joins, leaves and renames around it.
    fn handle(&mut self, event: HubEvent) -> bool {
        match event {
            HubEvent::Command {
                id,
                command: Command::Say { room, text, nonce },
            } => self.stage(id, room, text, nonce),
            HubEvent::Command { id, command } => {
                self.store_staged();
                self.command(id, command);
            }
            HubEvent::Join {
                id,
                sender,
                hello,
                home,
                bad_home,
            } => {
                self.store_staged();
                self.connect(id, sender, hello.unwrap_or_default(), home, bad_home);
            }
            HubEvent::Leave { id } => {
                self.store_staged();
                self.disconnect(id);
            }
            HubEvent::Bus(event) => self.bus_event(event),
            HubEvent::Shutdown => return true,
        }
        false
    }

    /// Hand every room's batch out; connections found gone leave, and
    /// their leaving is delivered in turn.
    fn deliver(&mut self) {
        loop {
            self.hand_out();
            if self.gone.is_empty() {
                return;
            }
            for conn in std::mem::take(&mut self.gone) {
                self.disconnect(conn);
            }
        }
    }

    /// Seal every room's batch and hand each connection its share: one
    /// send per connection, however many of its rooms have news. A
    /// connection in one room is handed that room's batch as it is; one in
    /// several gets their shares joined.
    fn hand_out(&mut self) {
        let sealed: Vec<(RoomName, Batch, HashMap<u64, Mark>)> = self
            .rooms
            .iter_mut()
            .filter_map(|room| {
                let name = room.name().clone();
                room.seal()
                    .map(|(batch, joined_at)| (name, batch, joined_at))
            })
            .collect();
        if sealed.is_empty() {
            return;
        }
        let (mut messages, mut sends) = (0, 0);
        let mut several: HashMap<u64, Vec<(usize, Option<Mark>)>> = HashMap::new();
        for (i, (name, batch, joined_at)) in sealed.iter().enumerate() {
            let Some(room) = self.rooms.get(name) else {
                continue;
            };
            for (conn, sender) in room.connections() {
                let from = joined_at.get(&conn).copied();
                if self.conns.get(&conn).is_some_and(|c| c.rooms.len() > 1) {
                    several.entry(conn).or_default().push((i, from));
                    continue;
                }
                let share = batch.messages_from(from);
                if share == 0 {
                    continue;
                }
                sends += 1;
                match sender.try_send_batch(batch, from) {
                    Ok(()) => messages += share,
                    Err(e) => self.gone.push(too_slow_or_gone(conn, sender, e)),
                }
            }
        }
        for (conn, shares) in several {
            let Some(c) = self.conns.get(&conn) else {
                continue;
            };
            let shares: Vec<(&Batch, Option<Mark>)> = shares
                .iter()
                .map(|&(i, from)| (&sealed[i].1, from))
                .collect();
            let share: usize = shares
                .iter()
                .map(|(batch, from)| batch.messages_from(*from))
                .sum();
            if share == 0 {
                continue;
            }
            sends += 1;
            match c.sender.try_send_batches(&shares) {
                Ok(()) => messages += share,
                Err(e) => self.gone.push(too_slow_or_gone(conn, &c.sender, e)),
            }
        }
        crate::metrics::get().delivered(messages, sends);
    }

    /// Send `json` to one connection now; a full queue closes it as too
    /// slow.
    fn send_to(&mut self, conn: u64, json: &str) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.sender.try_send_text(json).is_err() {
            crate::metrics::get().slow_closed();
            c.sender.close(CloseCode::POLICY, "too slow", false);
            self.gone.push(conn);
        }
    }

    fn reply_error(&mut self, conn: u64, error: &ChatError) {
        self.send_to(conn, &error.to_json());
    }

    /// Stage a `say` for the next history write.
    fn stage(&mut self, conn: u64, room: Option<RoomName>, text: String, nonce: Option<String>) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let room = room.unwrap_or_else(|| c.home.clone());
        if !c.rooms.contains(&room) {
            let error = ChatError::new(
                ErrorCode::NotInRoom,
                format!("you are not in {room}; join it first"),
            )
            .with_nonce(nonce);
            self.reply_error(conn, &error);
            return;
        }
        crate::metrics::get().received();
        self.staged.push(Staged {
            conn,
            room,
            text,
            nonce,
        });
    }

    /// Store the staged messages — every room's in one write — then add
    /// them to their rooms' batches. If the history cannot be written,
    /// nothing is broadcast and each sender is told.
    fn store_staged(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        let ts = now_ms();
        // Each room's run, in the order the rooms first appear.
        let mut runs: Vec<(RoomName, Vec<NewMessage>)> = Vec::new();
        let mut senders = Vec::with_capacity(self.staged.len());
        for s in std::mem::take(&mut self.staged) {
            let Some(from) = self
                .conns
                .get(&s.conn)
                .and_then(|c| self.sessions.get(c.session))
                .map(|session| session.user.clone())
            else {
                continue;
            };
            senders.push((s.conn, s.nonce.clone()));
            let message = NewMessage {
                ts,
                from,
                text: s.text,
                nonce: s.nonce,
            };
            match runs.iter_mut().find(|(room, _)| *room == s.room) {
                Some((_, run)) => run.push(message),
                None => runs.push((s.room, vec![message])),
            }
        }
        if self.bus.is_some() {
            self.publish(runs, senders);
            return;
        }
        let numbered: Vec<_> = runs
            .into_iter()
            .filter_map(|(name, run)| Some((self.rooms.get(&name)?.number(run), name)))
            .collect();
        let json: Vec<_> = numbered
            .iter()
            .flat_map(|(stored, _)| stored.iter().map(|(_, j)| j.clone()))
            .collect();
        let written = self.store.append(&json);
        crate::metrics::get().history_write(written.is_ok());
        if let Err(e) = written {
            log::error!(
                "{}: cannot store {} message(s): {e}",
                self.store.name(),
                json.len()
            );
            for (conn, nonce) in senders {
                let error = ChatError::new(
                    ErrorCode::StorageFailed,
                    "the server could not store your message",
                )
                .with_nonce(nonce);
                self.reply_error(conn, &error);
            }
            return;
        }
        for (stored, name) in numbered {
            if let Some((last, _)) = stored.last() {
                self.rooms.saw_id(*last);
            }
            if let Some(room) = self.rooms.get_mut(&name) {
                room.stored(&stored);
            }
        }
    }
}

impl Hub {
    /// Add the batch's messages to what goes to the bus's writer, each run
    /// split around the id Redis will give it.
    fn publish(
        &mut self,
        runs: Vec<(RoomName, Vec<NewMessage>)>,
        senders: Vec<(u64, Option<String>)>,
    ) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let mut senders = senders.into_iter();
        for (room, run) in runs {
            let messages = run
                .into_iter()
                .filter_map(|m| {
                    let (conn, nonce) = senders.next()?;
                    let (before, after) = super::bus::wire::unnumbered(&room, m)?;
                    Some(Unnumbered {
                        conn,
                        nonce,
                        before,
                        after,
                    })
                })
                .collect();
            cluster.outgoing.runs.push(RoomRun { room, messages });
        }
    }

    /// Hand what this batch tells the cluster to the writer.
    fn flush_bus(&mut self) {
        let (Some(bus), Some(cluster)) = (&self.bus, &mut self.cluster) else {
            return;
        };
        let notes = self.rooms.take_notes();
        let mut batch = std::mem::take(&mut cluster.outgoing);
        batch.notes.extend(notes);
        if batch.is_empty() {
            return;
        }
        if let Err(batch) = bus.send(batch) {
            let senders = batch
                .runs
                .into_iter()
                .flat_map(|r| r.messages)
                .map(|m| (m.conn, m.nonce))
                .collect();
            self.bus_event(BusEvent::Unavailable {
                senders,
                why: "the message store (redis) is not keeping up",
            });
        }
    }

    fn bus_event(&mut self, event: BusEvent) {
        match event {
            BusEvent::Room {
                room,
                epoch,
                delivery,
                messages,
            } => {
                if let Some((last, _)) = messages.last() {
                    self.rooms.saw_id(*last);
                }
                match self.rooms.open(&room) {
                    Ok(r) => r.mirrored(epoch, delivery, &messages),
                    Err(e) => log::warn!("{room}: not kept in memory: {e}"),
                }
            }
            BusEvent::Unavailable { senders, why } => {
                crate::metrics::get().bus.refused(senders.len());
                for (conn, nonce) in senders {
                    let error = ChatError::new(ErrorCode::Unavailable, why).with_nonce(nonce);
                    self.reply_error(conn, &error);
                }
            }
            BusEvent::Note { node, note } => self.heard_note(&node, note),
            BusEvent::Nodes(states) => self.heard_nodes(states),
            BusEvent::WriterUp => self.resync(),
        }
    }
}

/// A connection whose queue was full is closed as too slow (1008); either
/// way it is gone from the hub.
fn too_slow_or_gone(conn: u64, sender: &Sender, why: TrySend) -> u64 {
    if matches!(why, TrySend::Full) {
        crate::metrics::get().slow_closed();
        log::info!("client #{conn} is too slow; closing it");
        sender.close(CloseCode::POLICY, "too slow", false);
    }
    conn
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
