//! The subscriber: the thread that hears the bus and hands the hub every
//! room's messages in id order, with no gap and no repeat.
//!
//! It holds two connections: one subscribed to the bus channel, and one to
//! read the rooms' streams. On every (re)connection it subscribes first and
//! then catches up from the streams — every room's messages after the last
//! id it handed on, or a room's recent history when the room is new to it
//! or has a new epoch — so that nothing published while it was away is
//! lost; what it then hears twice is skipped ([`Sequencer`]). An idle
//! subscription is probed with a PING after each quiet second, so a
//! half-open connection is noticed within the I/O timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{Client, Connection, RedisResult};

use super::health::{Health, Link, Role};
use super::link::{self, Backoff};
use super::sequence::{Plan, Sequencer};
use super::wire::{self, CHANNEL, FIELD, Published, Run};
use super::{BusEvent, Delivery, NodeState};
use crate::chat::hub::HubEvent;
use crate::chat::names::RoomName;

/// How long the subscription may be quiet before it is probed.
const QUIET: Duration = Duration::from_secs(1);

pub struct Subscriber {
    client: Client,
    health: Arc<Health>,
    hub: crossbeam_channel::Sender<HubEvent>,
    history: usize,
    sequence: Sequencer,
}

impl Subscriber {
    pub fn new(
        client: Client,
        health: Arc<Health>,
        hub: crossbeam_channel::Sender<HubEvent>,
        history: usize,
    ) -> Subscriber {
        Subscriber {
            client,
            health,
            hub,
            history,
            sequence: Sequencer::default(),
        }
    }

    /// Until the hub is gone.
    pub fn run(mut self) {
        let mut backoff = Backoff::default();
        loop {
            let now = Instant::now();
            std::thread::sleep(backoff.remaining(now));
            let why = match self.session(&mut backoff) {
                Ok(Stop) => return,
                Err(e) => e.to_string(),
            };
            backoff.failed(Instant::now());
            self.health.set(
                Role::Subscriber,
                Link::Down {
                    why,
                    since: Instant::now(),
                },
            );
        }
    }

    /// One life of the connections: subscribe, catch up, then hand on what
    /// is heard until something fails (an error) or the hub is gone.
    fn session(&mut self, backoff: &mut Backoff) -> RedisResult<Stop> {
        let mut sub = link::open(&self.client)?;
        let mut reader = link::open(&self.client)?;
        let mut pubsub = sub.as_pubsub();
        pubsub.subscribe(CHANNEL)?;
        pubsub.set_read_timeout(Some(QUIET))?;
        if self.catch_up(&mut reader)?.is_err() {
            return Ok(Stop);
        }
        backoff.succeeded();
        self.health.set(Role::Subscriber, Link::Up);
        loop {
            let message = match pubsub.get_message() {
                Ok(message) => message,
                Err(e) if e.is_timeout() => {
                    pubsub.set_read_timeout(Some(link::IO_TIMEOUT))?;
                    pubsub.ping::<redis::Value>()?;
                    pubsub.set_read_timeout(Some(QUIET))?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match Published::parse(message.get_payload_bytes()) {
                Ok(Published::Run(run)) => {
                    if self.heard(&mut reader, run)?.is_err() {
                        return Ok(Stop);
                    }
                }
                Ok(Published::Note { node, note }) => {
                    if self
                        .hub
                        .send(HubEvent::Bus(BusEvent::Note { node, note }))
                        .is_err()
                    {
                        return Ok(Stop);
                    }
                }
                Err(e) => log::warn!("redis: a payload on {CHANNEL} not understood: {}", e.0),
            }
        }
    }

    /// A run heard on the bus: fill what is missing before it, then hand
    /// on what is new.
    fn heard(&mut self, reader: &mut Connection, run: Run) -> RedisResult<Result<(), Stop>> {
        let plan = self
            .sequence
            .plan(&run.room, run.epoch, run.first, run.last());
        // How the run follows what the hub has of the room.
        let start = match self.sequence.position(&run.room) {
            None => Delivery::Fresh,
            Some(p) if p.epoch != run.epoch => Delivery::Reset,
            Some(_) => Delivery::Next,
        };
        let live = |skip| run.numbered().skip(skip).map(|(id, j)| (id, Arc::clone(j)));
        let (delivery, messages) = match plan {
            Plan::Repeat => return Ok(Ok(())),
            Plan::Deliver { skip } => (start, live(skip).collect()),
            Plan::Fill { after } => {
                let mut messages = read_range(reader, &run.room, after + 1, run.first - 1)?;
                log::info!(
                    "redis: {}: {} missed message(s) read from its stream",
                    run.room,
                    messages.len()
                );
                let delivery = continues(after, &messages);
                messages.extend(live(0));
                (delivery, messages)
            }
            Plan::Reset => {
                let mut messages = read_recent(reader, &run.room, run.first - 1, self.history)?;
                messages.retain(|(id, _)| *id >= run.epoch);
                messages.extend(live(0));
                (start, messages)
            }
        };
        let last = run.last();
        Ok(self.hand_on(run.room, run.epoch, last, delivery, messages))
    }

    /// Every room in Redis: what this node has not handed on yet.
    fn catch_up(&mut self, reader: &mut Connection) -> RedisResult<Result<(), Stop>> {
        for key in scan(reader, wire::ROOM_PATTERN)? {
            let Some(room) = wire::room_of_key(&key) else {
                continue;
            };
            let (epoch, last): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
                .arg(&key)
                .arg("epoch")
                .arg("last")
                .query(reader)?;
            let (Some(epoch), Some(last)) = (epoch, last) else {
                continue;
            };
            let (delivery, messages) = match self.sequence.position(&room) {
                Some(p) if p.epoch == epoch && p.last >= last => continue,
                Some(p) if p.epoch == epoch => {
                    let messages = read_range(reader, &room, p.last + 1, last)?;
                    log::info!(
                        "redis: {room}: {} missed message(s) read from its stream",
                        messages.len()
                    );
                    (continues(p.last, &messages), messages)
                }
                known => {
                    let mut messages = read_recent(reader, &room, last, self.history)?;
                    messages.retain(|(id, _)| *id >= epoch);
                    (
                        if known.is_some() {
                            Delivery::Reset
                        } else {
                            Delivery::Fresh
                        },
                        messages,
                    )
                }
            };
            if self.hand_on(room, epoch, last, delivery, messages).is_err() {
                return Ok(Err(Stop));
            }
        }
        let nodes = read_nodes(reader)?;
        Ok(self
            .hub
            .send(HubEvent::Bus(BusEvent::Nodes(nodes)))
            .map_err(|_| Stop))
    }

    fn hand_on(
        &mut self,
        room: RoomName,
        epoch: u64,
        last: u64,
        delivery: Delivery,
        messages: Vec<(u64, Arc<str>)>,
    ) -> Result<(), Stop> {
        self.sequence.advance(&room, epoch, last);
        if delivery == Delivery::Reset {
            crate::metrics::get().bus.reset();
            log::warn!(
                "redis: {room} starts over (epoch {epoch}), from {} message(s) of its stream",
                messages.len()
            );
        }
        let event = HubEvent::Bus(BusEvent::Room {
            room,
            epoch,
            delivery,
            messages,
        });
        self.hub.send(event).map_err(|_| Stop)
    }
}

/// The hub is gone: stop.
struct Stop;

/// Every key matching `pattern` (`SCAN`, so Redis is never blocked).
fn scan(con: &mut Connection, pattern: &str) -> RedisResult<Vec<String>> {
    redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000)
        .clone()
        .iter(con)?
        .collect()
}

/// Every node's hash: its sessions and presence.
fn read_nodes(con: &mut Connection) -> RedisResult<Vec<NodeState>> {
    let keys = scan(con, wire::NODE_PATTERN)?;
    let mut nodes = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(node) = wire::node_of_key(&key) else {
            continue;
        };
        let fields: Vec<(String, String)> = redis::cmd("HGETALL").arg(&key).query(con)?;
        let mut state = NodeState {
            node: node.to_owned(),
            ..NodeState::default()
        };
        for (field, value) in fields {
            if field.starts_with("s:") {
                if let Ok(session) = serde_json::from_str(&value) {
                    state.sessions.push(session);
                }
            } else if let Some(rest) = field.strip_prefix("p:")
                && let Some((room, _)) = rest.rsplit_once(':')
                && let Ok(room) = RoomName::parse(room)
                && let Ok(user) = serde_json::from_str(&value)
            {
                state.presence.push((room, user));
            }
        }
        nodes.push(state);
    }
    Ok(nodes)
}

/// Messages `from..=to` of a room's stream.
fn read_range(
    con: &mut Connection,
    room: &RoomName,
    from: u64,
    to: u64,
) -> RedisResult<Vec<(u64, Arc<str>)>> {
    if from > to {
        return Ok(Vec::new());
    }
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(wire::history_key(room))
        .arg(format!("{from}-0"))
        .arg(format!("{to}-0"))
        .query(con)?;
    let messages: Vec<_> = entries.into_iter().filter_map(entry).collect();
    crate::metrics::get().bus.read_back(messages.len());
    Ok(messages)
}

/// The last `count` messages of a room's stream up to id `to`, oldest first.
fn read_recent(
    con: &mut Connection,
    room: &RoomName,
    to: u64,
    count: usize,
) -> RedisResult<Vec<(u64, Arc<str>)>> {
    if count == 0 || to == 0 {
        return Ok(Vec::new());
    }
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
        .arg(wire::history_key(room))
        .arg(format!("{to}-0"))
        .arg("-")
        .arg("COUNT")
        .arg(count)
        .query(con)?;
    let mut messages: Vec<_> = entries.into_iter().filter_map(entry).collect();
    messages.reverse();
    crate::metrics::get().bus.read_back(messages.len());
    Ok(messages)
}

/// Whether messages read after id `after` follow on from it; when the
/// stream was trimmed past them, some are lost to this node and the room
/// starts over from what there is.
fn continues(after: u64, messages: &[(u64, Arc<str>)]) -> Delivery {
    match messages.first() {
        Some((id, _)) if *id != after + 1 => Delivery::Reset,
        _ => Delivery::Next,
    }
}

/// A stream entry as `(id, json)`.
fn entry((id, fields): (String, Vec<String>)) -> Option<(u64, Arc<str>)> {
    let id = id.split('-').next()?.parse().ok()?;
    let at = fields.iter().position(|f| f == FIELD)?;
    Some((id, Arc::from(fields.get(at + 1)?.as_str())))
}
