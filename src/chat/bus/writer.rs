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
use super::health::{Health, Link, Role};
use super::link::{self, Backoff};
use super::wire::{self, CHANNEL, SAY_SCRIPT};
use crate::chat::hub::HubEvent;
use crate::chat::names::RoomName;

/// A message waiting for its id: its sender, and its JSON around the id.
#[derive(Debug)]
pub struct Unnumbered {
    pub conn: u64,
    pub nonce: Option<String>,
    pub before: String,
    pub after: String,
}

/// One room's messages of a hub batch, in order.
#[derive(Debug)]
pub struct RoomRun {
    pub room: RoomName,
    pub messages: Vec<Unnumbered>,
}

/// What the hub hands the writer at the end of a batch.
#[derive(Debug, Default)]
pub struct Batch {
    pub runs: Vec<RoomRun>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

/// How often an idle writer checks its connection.
const PROBE: Duration = Duration::from_secs(1);

/// Most hub batches sent as one pipeline.
const MAX_GATHER: usize = 64;

pub struct Writer {
    client: Client,
    health: Arc<Health>,
    hub: crossbeam_channel::Sender<HubEvent>,
    /// Stream entries kept per room.
    history: usize,
    con: Option<(Connection, String)>,
    backoff: Backoff,
}

impl Writer {
    pub fn new(
        client: Client,
        health: Arc<Health>,
        hub: crossbeam_channel::Sender<HubEvent>,
        history: usize,
    ) -> Writer {
        Writer {
            client,
            health,
            hub,
            history,
            con: None,
            backoff: Backoff::default(),
        }
    }

    /// Until the hub is gone.
    pub fn run(mut self, batches: Receiver<Batch>) {
        loop {
            let mut gathered = match batches.recv_timeout(PROBE) {
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
            let runs: Vec<RoomRun> = gathered.into_iter().flat_map(|b| b.runs).collect();
            self.send(runs);
        }
    }

    /// Send the runs (none: a probe of the link), and tell the senders of
    /// what could not be stored.
    fn send(&mut self, runs: Vec<RoomRun>) {
        if self.con.is_none() {
            self.connect();
        }
        let Some((con, sha)) = self.con.as_mut() else {
            self.unavailable(runs, "the message store (redis) is unreachable");
            return;
        };
        if runs.is_empty() {
            if let Err(e) = redis::cmd("PING").query::<String>(con) {
                self.lost(e.to_string());
            }
            return;
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
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
                self.unavailable(failed, "the message store (redis) refused it");
            }
            Err(e) => {
                self.lost(e.to_string());
                self.unavailable(runs, "the message store (redis) is unreachable");
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
