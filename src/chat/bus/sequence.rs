//! Keeping each room's messages in id order, with no gap and no repeat, as
//! they arrive from the bus.
//!
//! Redis publishes a room's runs in the order its script numbered them, so
//! a node that stays subscribed hears every id once, in order. A node that
//! lost its subscription (Redis restarted, the link broke, it fell behind
//! and Redis dropped it) missed some: the next run it hears starts past the
//! last id it delivered, and the ids between are read from the room's
//! stream before that run goes on. Runs read from the stream may overlap
//! what is then heard live; what was delivered already is skipped.

use std::collections::HashMap;

use crate::chat::names::RoomName;

/// Where a room stands: its epoch and the last id handed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub epoch: u64,
    pub last: u64,
}

/// What to do with a run of a room's messages, ids `first..=last`.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Hand on the messages from this index of the run (0: all of it).
    Deliver { skip: usize },
    /// Everything in it was handed on already.
    Repeat,
    /// Ids `after + 1 .. first` were missed: read them from the stream,
    /// hand them on, then the run.
    Fill { after: u64 },
    /// The room has a new epoch (Redis lost it), or this node never knew
    /// it: start over from the stream's recent history up to the run.
    Reset,
}

/// Every room's position.
#[derive(Debug, Default)]
pub struct Sequencer {
    rooms: HashMap<RoomName, Position>,
}

impl Sequencer {
    pub fn position(&self, room: &RoomName) -> Option<Position> {
        self.rooms.get(room).copied()
    }

    /// What to do with a run of `room`, ids `first..=last`, in `epoch`.
    /// A room this node never knew starts cleanly when the run is its
    /// epoch's first.
    pub fn plan(&self, room: &RoomName, epoch: u64, first: u64, last: u64) -> Plan {
        match self.rooms.get(room) {
            None if first == epoch => Plan::Deliver { skip: 0 },
            None => Plan::Reset,
            Some(p) if epoch > p.epoch => {
                if first == epoch {
                    Plan::Deliver { skip: 0 }
                } else {
                    Plan::Reset
                }
            }
            Some(p) if epoch < p.epoch || last <= p.last => Plan::Repeat,
            Some(p) if first <= p.last + 1 => Plan::Deliver {
                skip: (p.last + 1 - first) as usize,
            },
            Some(p) => Plan::Fill { after: p.last },
        }
    }

    /// Messages up to `last` of `epoch` were handed on.
    pub fn advance(&mut self, room: &RoomName, epoch: u64, last: u64) {
        let position = self
            .rooms
            .entry(room.clone())
            .or_insert(Position { epoch, last });
        if epoch > position.epoch || (epoch == position.epoch && last > position.last) {
            *position = Position { epoch, last };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rust() -> RoomName {
        RoomName::parse("rust").unwrap()
    }

    #[test]
    fn in_order_runs_go_straight_on() {
        let mut s = Sequencer::default();
        assert_eq!(s.plan(&rust(), 100, 100, 101), Plan::Deliver { skip: 0 });
        s.advance(&rust(), 100, 101);
        assert_eq!(s.plan(&rust(), 100, 102, 102), Plan::Deliver { skip: 0 });
    }

    #[test]
    fn repeats_are_skipped_and_overlaps_trimmed() {
        let mut s = Sequencer::default();
        s.advance(&rust(), 100, 105);
        assert_eq!(s.plan(&rust(), 100, 101, 105), Plan::Repeat);
        assert_eq!(s.plan(&rust(), 100, 104, 107), Plan::Deliver { skip: 2 });
    }

    #[test]
    fn a_gap_is_filled_from_the_stream() {
        let mut s = Sequencer::default();
        s.advance(&rust(), 100, 105);
        assert_eq!(s.plan(&rust(), 100, 109, 110), Plan::Fill { after: 105 });
    }

    #[test]
    fn a_new_epoch_or_an_unknown_room_midway_starts_over() {
        let mut s = Sequencer::default();
        assert_eq!(s.plan(&rust(), 100, 150, 150), Plan::Reset);
        s.advance(&rust(), 100, 150);
        assert_eq!(s.plan(&rust(), 900, 900, 901), Plan::Deliver { skip: 0 });
        assert_eq!(s.plan(&rust(), 900, 905, 905), Plan::Reset);
        s.advance(&rust(), 900, 905);
        assert_eq!(
            s.plan(&rust(), 100, 151, 151),
            Plan::Repeat,
            "the old epoch is over"
        );
        s.advance(&rust(), 100, 151);
        assert_eq!(
            s.position(&rust()),
            Some(Position {
                epoch: 900,
                last: 905
            })
        );
    }
}
