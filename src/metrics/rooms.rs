//! Per-room counters with a bounded number of series: the first
//! [`MAX_ROOMS`] rooms by name get a `room` label each, and every later
//! one is counted together under `room="_other"`. A server with many rooms
//! (or rooms named by users) cannot so grow the scrape without bound.
//!
//! A room registers once ([`room`]) and keeps the `&'static RoomCounters`
//! it is given; joins, leaves and messages are relaxed atomic adds. Only
//! registration takes a lock.

use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Rooms that get a label of their own.
pub const MAX_ROOMS: usize = 16;

/// The label of the rooms past [`MAX_ROOMS`].
pub const OTHER: &str = "_other";

/// One room's counters (or the shared ones of the rooms past the cap).
#[derive(Debug)]
pub struct RoomCounters {
    name: OnceLock<Box<str>>,
    /// Members now.
    members: AtomicU64,
    /// Chat messages stored and broadcast.
    messages: AtomicU64,
}

impl RoomCounters {
    const fn new() -> RoomCounters {
        RoomCounters {
            name: OnceLock::new(),
            members: AtomicU64::new(0),
            messages: AtomicU64::new(0),
        }
    }

    pub fn joined(&self) {
        self.members.fetch_add(1, Relaxed);
    }

    pub fn left(&self, n: usize) {
        self.members.fetch_sub(n as u64, Relaxed);
    }

    pub fn messages(&self, n: usize) {
        self.messages.fetch_add(n as u64, Relaxed);
    }
}

struct Rooms {
    named: [RoomCounters; MAX_ROOMS],
    other: RoomCounters,
    registering: Mutex<()>,
}

static ROOMS: Rooms = Rooms {
    named: [const { RoomCounters::new() }; MAX_ROOMS],
    other: RoomCounters::new(),
    registering: Mutex::new(()),
};

/// The counters of the room called `name`: its own while there is room
/// for a label, else the shared `_other` ones. The same name always gets
/// the same counters.
pub fn room(name: &str) -> &'static RoomCounters {
    let _registering = ROOMS.registering.lock().unwrap_or_else(|e| e.into_inner());
    for slot in &ROOMS.named {
        match slot.name.get() {
            Some(taken) if **taken == *name => return slot,
            Some(_) => {}
            None => {
                let _ = slot.name.set(name.into());
                return slot;
            }
        }
    }
    &ROOMS.other
}

/// Every labelled room, then `_other` (when any room was counted there):
/// its label, members now, and messages.
pub fn snapshot() -> Vec<(String, u64, u64)> {
    let mut rooms: Vec<(String, u64, u64)> = ROOMS
        .named
        .iter()
        .filter_map(|slot| {
            let name = slot.name.get()?;
            Some((
                name.to_string(),
                slot.members.load(Relaxed),
                slot.messages.load(Relaxed),
            ))
        })
        .collect();
    if rooms.len() == MAX_ROOMS {
        rooms.push((
            OTHER.to_owned(),
            ROOMS.other.members.load(Relaxed),
            ROOMS.other.messages.load(Relaxed),
        ));
    }
    rooms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_past_the_cap_share_the_other_counters() {
        let first = room("metrics-test-first");
        assert!(std::ptr::eq(first, room("metrics-test-first")));
        first.joined();
        let names: Vec<String> = (0..MAX_ROOMS)
            .map(|i| format!("metrics-test-{i}"))
            .collect();
        let mut last = None;
        for name in &names {
            last = Some(room(name));
        }
        let last = last.unwrap();
        assert!(std::ptr::eq(last, &ROOMS.other), "past the cap");
        let rooms = snapshot();
        assert_eq!(rooms.len(), MAX_ROOMS + 1);
        assert_eq!(rooms.last().unwrap().0, OTHER);
        assert!(
            rooms
                .iter()
                .any(|(name, members, _)| name == "metrics-test-first" && *members == 1)
        );
    }
}
