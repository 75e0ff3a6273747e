//! The writer: the one thread that sends what the hub asks of Redis.
//!
//! The hub hands it one [`Batch`] per hub batch and goes on; the writer
//! sends the whole batch as one pipeline — one round trip, however many
//! rooms and messages — and waits for the answers, so the hub never waits
//! on Redis. Each room's run of messages is one call of the numbering
//! script, by its SHA (loaded once per connection). When Redis cannot be
//! reached, every message of the batch is answered `unavailable` to its
//! sender: nothing is reported as sent that was not stored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use redis::{Client, Connection, Value};

use super::BusEvent;
use super::batch::{Batch, HEARTBEAT, NodeId, RoomRun};
use super::health::{Health, Link, Role};
use super::link::{self, Backoff};
use super::note::Note;
use super::wire::{self, CHANNEL, SAY_SCRIPT};
use crate::chat::hub::HubEvent;

/// Most hub batches sent as one pipeline.
const MAX_GATHER: usize = 64;

pub struct Writer {
    client: Client,
    health: Arc<Health>,
    hub: crossbeam_channel::Sender<HubEvent>,
    /// Stream entries kept per room.
    history: usize,
    node: NodeId,
    con: Option<(Connection, String)>,
    backoff: Backoff,
    last_beat: Instant,
}

impl Writer {
    pub fn new(
        client: Client,
        health: Arc<Health>,
        hub: crossbeam_channel::Sender<HubEvent>,
        history: usize,
        node: NodeId,
    ) -> Writer {
        Writer {
            client,
            health,
            hub,
            history,
            node,
            con: None,
            backoff: Backoff::default(),
            last_beat: Instant::now(),
        }
    }

    /// Until the hub is gone.
    pub fn run(mut self, batches: Receiver<Batch>) {
        loop {
            let wait = HEARTBEAT.saturating_sub(self.last_beat.elapsed());
            let mut gathered = match batches.recv_timeout(wait) {
                Ok(batch) => vec![batch],
                Err(RecvTimeoutError::Timeout) => Vec::new(),
                Err(RecvTimeoutError::Disconnected) => return,
            };
            while gathered.len() < MAX_GATHER {
                match batches.try_recv() {
                    Ok(batch) => gathered.push(batch),
                    Err(_) => break,
                }
            }
            let mut batch = Batch::default();
            for b in gathered {
                batch.notes.extend(b.notes);
                batch.add_runs(b.runs);
            }
            if self.last_beat.elapsed() >= HEARTBEAT {
                self.last_beat = Instant::now();
                batch.notes.push(Note::Alive);
            }
            self.send(batch);
        }
    }

    /// Send the notes and the runs, and tell the senders of what could not
    /// be stored. Notes that cannot be sent are not kept: when the link is
    /// back, the hub sends a [`Note::Resync`] of everything instead.
    fn send(&mut self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        if self.con.is_none() {
            self.connect();
        }
        let runs = batch.runs;
        let Some((con, sha)) = self.con.as_mut() else {
            self.unavailable(runs, "the message store (redis) is not connected");
            return;
        };
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let key = wire::node_key(&self.node.name);
        for note in &batch.notes {
            keep(&mut pipe, &key, note, self.node.timeout);
            pipe.cmd("PUBLISH")
                .arg(CHANNEL)
                .arg(note.payload(&self.node.name))
                .ignore();
        }
        let history = self.history.to_string();
        for run in &runs {
            let command = pipe
                .cmd("EVALSHA")
                .arg(&*sha)
                .arg(2)
                .arg(wire::room_key(&run.room))
                .arg(wire::history_key(&run.room))
                .arg(CHANNEL)
                .arg(run.room.as_str())
                .arg(&history);
            for m in &run.messages {
                command.arg(&m.before).arg(&m.after);
            }
        }
        match pipe.query::<Vec<Value>>(con) {
            Ok(answers) => {
                let sent: usize = runs.iter().map(|r| r.messages.len()).sum();
                let mut failed = Vec::new();
                for (run, answer) in runs.into_iter().zip(answers) {
                    if let Value::ServerError(e) = answer {
                        log::error!(
                            "redis: storing {} message(s) in {} failed: {e:?}",
                            run.messages.len(),
                            run.room
                        );
                        if e.code() == "NOSCRIPT" {
                            self.con = None;
                        }
                        failed.push(run);
                    }
                }
                let refused: usize = failed.iter().map(|r| r.messages.len()).sum();
                crate::metrics::get().bus.round_trip(sent - refused);
                self.unavailable(failed, "the message store (redis) refused it");
            }
            Err(e) => {
                self.lost(e.to_string());
                self.unavailable(
                    runs,
                    "the message store (redis) connection broke before it answered",
                );
            }
        }
    }

    fn connect(&mut self) {
        let now = Instant::now();
        if !self.backoff.due(now) {
            return;
        }
        let opened = link::open(&self.client).and_then(|mut con| {
            let sha: String = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(SAY_SCRIPT)
                .query(&mut con)?;
            Ok((con, sha))
        });
        match opened {
            Ok(con) => {
                self.con = Some(con);
                self.backoff.succeeded();
                self.health.set(Role::Writer, Link::Up);
                let _ = self.hub.send(HubEvent::Bus(BusEvent::WriterUp));
            }
            Err(e) => {
                self.backoff.failed(now);
                self.health.set(
                    Role::Writer,
                    Link::Down {
                        why: e.to_string(),
                        since: now,
                    },
                );
            }
        }
    }

    fn lost(&mut self, why: String) {
        self.con = None;
        self.backoff.failed(Instant::now());
        self.health.set(
            Role::Writer,
            Link::Down {
                why,
                since: Instant::now(),
            },
        );
    }

    fn unavailable(&self, runs: Vec<RoomRun>, why: &'static str) {
        let senders: Vec<(u64, Option<String>)> = runs
            .into_iter()
            .flat_map(|run| run.messages)
            .map(|m| (m.conn, m.nonce))
            .collect();
        if !senders.is_empty() {
            let _ = self
                .hub
                .send(HubEvent::Bus(BusEvent::Unavailable { senders, why }));
        }
    }
}

/// Keep what `note` says in the node's hash, before it is published.
fn keep(pipe: &mut redis::Pipeline, key: &str, note: &Note, timeout: Duration) {
    match note {
        Note::Alive => {}
        Note::Resync { sessions, presence } => {
            pipe.cmd("DEL").arg(key).ignore();
            let mut fields: Vec<(String, String)> = sessions
                .iter()
                .map(|s| (format!("s:{}", s.user.id), json(s)))
                .collect();
            fields.extend(
                presence
                    .iter()
                    .map(|(room, user)| (format!("p:{room}:{}", user.id), json(user))),
            );
            if !fields.is_empty() {
                pipe.cmd("HSET").arg(key).arg(fields).ignore();
            }
        }
        Note::Here { room, user } => {
            pipe.cmd("HSET")
                .arg(key)
                .arg(format!("p:{room}:{}", user.id))
                .arg(json(user))
                .ignore();
        }
        Note::Gone { room, user } => {
            pipe.cmd("HDEL")
                .arg(key)
                .arg(format!("p:{room}:{user}"))
                .ignore();
        }
        Note::Session { session } => {
            pipe.cmd("HSET")
                .arg(key)
                .arg(format!("s:{}", session.user.id))
                .arg(json(session))
                .ignore();
        }
        Note::Ended { user } | Note::Moved { user, .. } => {
            pipe.cmd("HDEL").arg(key).arg(format!("s:{user}")).ignore();
        }
        Note::Renamed { .. } | Note::Dm { .. } | Note::Typing { .. } => return,
    }
    expire(pipe, key, timeout);
}

/// The node's hash goes with the node: it lives `timeout` past the last
/// heartbeat, and never without an expiry, even between a write and the
/// next heartbeat.
fn expire(pipe: &mut redis::Pipeline, key: &str, timeout: Duration) {
    pipe.cmd("PEXPIRE")
        .arg(key)
        .arg(timeout.as_millis() as u64)
        .ignore();
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
