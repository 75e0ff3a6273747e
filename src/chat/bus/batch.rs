//! What the hub hands the bus's writer at the end of a batch: the notes for
//! the other nodes and each room's messages, still without their ids.

use std::time::Duration;

use super::note::Note;
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

/// What the hub hands the writer at the end of a batch: notes first, then
/// the rooms' messages.
#[derive(Debug, Default)]
pub struct Batch {
    pub notes: Vec<Note>,
    pub runs: Vec<RoomRun>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.notes.is_empty()
    }

    /// Add the runs of a later hub batch: a room's messages join that
    /// room's run, in order, so the room still takes one call of the
    /// script however many hub batches the writer gathered.
    pub fn add_runs(&mut self, runs: Vec<RoomRun>) {
        for run in runs {
            match self.runs.iter_mut().find(|r| r.room == run.room) {
                Some(same) => same.messages.extend(run.messages),
                None => self.runs.push(run),
            }
        }
    }
}

/// Who this node is on the bus.
#[derive(Clone, Debug)]
pub struct NodeId {
    pub name: String,
    /// How long its hash outlives its last heartbeat.
    pub timeout: Duration,
}

/// How often the node says it is alive (which also checks the link).
pub const HEARTBEAT: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn run(room: &str, texts: &[&str]) -> RoomRun {
        RoomRun {
            room: RoomName::parse(room).unwrap(),
            messages: texts
                .iter()
                .map(|t| Unnumbered {
                    conn: 1,
                    nonce: None,
                    before: (*t).into(),
                    after: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn gathered_batches_make_one_run_per_room_in_order() {
        let mut batch = Batch::default();
        batch.add_runs(vec![run("a", &["a1"]), run("b", &["b1"])]);
        batch.add_runs(vec![run("b", &["b2", "b3"]), run("c", &["c1"])]);
        batch.add_runs(vec![run("a", &["a2"])]);
        let shape: Vec<(String, Vec<String>)> = batch
            .runs
            .iter()
            .map(|r| {
                let texts = r.messages.iter().map(|m| m.before.clone()).collect();
                (r.room.as_str().to_owned(), texts)
            })
            .collect();
        let want =
            |room: &str, t: &[&str]| (room.to_owned(), t.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            shape,
            [
                want("a", &["a1", "a2"]),
                want("b", &["b1", "b2", "b3"]),
                want("c", &["c1"])
            ]
        );
    }
}
