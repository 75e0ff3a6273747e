//! Every room in memory, by name, at most `--max-rooms` of them.
//!
//! A room exists while someone is in it or it has history. When a new room
//! is needed and the cap is reached, a room nobody is in is dropped from
//! memory (its messages stay in the history file); with none to drop, the
//! new room is refused.
//!
//! A new room's ids start above every id the server has given out, so that
//! a room dropped and made again never gives an id twice: a client's resume
//! point stays meaningful, and the history file's lines stay in order.

use std::collections::HashMap;

use super::history::Recent;
use super::history_file::Reloaded;
use super::messages::RoomInfo;
use super::names::RoomName;
use super::protocol::{ChatError, ErrorCode};
use super::room::Room;

pub struct Rooms {
    rooms: HashMap<RoomName, Room>,
    max_rooms: usize,
    history: usize,
    /// The highest id given out, in any room.
    high: u64,
    /// In a cluster: rooms collect notes of this node's presence, and
    /// those of rooms dropped from memory wait here.
    clustered: bool,
    notes: Vec<crate::chat::bus::note::Note>,
}

impl Rooms {
    /// Rooms with `history` messages each, at most `max_rooms` (0: no cap),
    /// starting from what a history file held.
    pub fn new(history: usize, max_rooms: usize, reloaded: Reloaded) -> Rooms {
        let rooms = reloaded
            .rooms
            .into_iter()
            .map(|(name, recent)| (name.clone(), Room::new(name, recent)))
            .collect();
        Rooms {
            rooms,
            max_rooms,
            history,
            high: reloaded.high,
            clustered: false,
            notes: Vec::new(),
        }
    }

    /// Rooms of a node in a cluster (see [`Room::clustered`]).
    pub fn clustered(mut self) -> Rooms {
        self.clustered = true;
        self
    }

    /// Every room's notes, for the hub to publish.
    pub fn take_notes(&mut self) -> Vec<crate::chat::bus::note::Note> {
        let mut notes = std::mem::take(&mut self.notes);
        notes.extend(self.rooms.values_mut().flat_map(Room::take_notes));
        notes
    }

    pub fn get(&self, name: &RoomName) -> Option<&Room> {
        self.rooms.get(name)
    }

    pub fn get_mut(&mut self, name: &RoomName) -> Option<&mut Room> {
        self.rooms.get_mut(name)
    }

    /// The room, made if it does not exist.
    pub fn open(&mut self, name: &RoomName) -> Result<&mut Room, ChatError> {
        if !self.rooms.contains_key(name) {
            if self.max_rooms > 0 && self.rooms.len() >= self.max_rooms {
                let unused = self
                    .rooms
                    .iter()
                    .find(|(_, room)| room.is_empty())
                    .map(|(name, _)| name.clone());
                match unused {
                    Some(unused) => {
                        log::info!("{unused}: dropped from memory for a new room");
                        if let Some(mut room) = self.rooms.remove(&unused) {
                            self.notes.extend(room.take_notes());
                        }
                    }
                    None => {
                        return Err(ChatError::new(
                            ErrorCode::TooManyRooms,
                            format!("the server has {} rooms in use", self.rooms.len()),
                        ));
                    }
                }
            }
            let recent = Recent::new(self.history, self.high + 1);
            let mut room = Room::new(name.clone(), recent);
            if self.clustered {
                room = room.clustered();
            }
            self.rooms.insert(name.clone(), room);
        }
        Ok(self.rooms.get_mut(name).expect("inserted above"))
    }

    /// Note the ids a room has given out.
    pub fn saw_id(&mut self, id: u64) {
        self.high = self.high.max(id);
    }

    /// Drop the room if nobody is in it and it has no history (what its
    /// batch still holds has nobody to go to).
    pub fn tidy(&mut self, name: &RoomName) {
        if self.rooms.get(name).is_some_and(Room::is_idle)
            && let Some(mut room) = self.rooms.remove(name)
        {
            self.notes.extend(room.take_notes());
        }
    }

    /// Every room with its number of users, busiest first.
    pub fn list(&self) -> Vec<RoomInfo<'_>> {
        let mut list: Vec<RoomInfo<'_>> = self
            .rooms
            .values()
            .map(|room| RoomInfo {
                room: room.name(),
                users: room.users(),
            })
            .collect();
        list.sort_by(|a, b| b.users.cmp(&a.users).then_with(|| a.room.cmp(b.room)));
        list
    }

    pub fn iter(&self) -> impl Iterator<Item = &Room> {
        self.rooms.values()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Room> {
        self.rooms.values_mut()
    }
}
