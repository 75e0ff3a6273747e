//! A connection's arrival and departure, and the end of a session's grace:
//! which session it is, which rooms it is in, and what the others see.

use std::collections::HashSet;
use std::time::Instant;

use super::{Conn, Hub};
use crate::chat::messages::{RoomView, WelcomeLimits, welcome_json};
use crate::chat::names::RoomName;
use crate::chat::protocol::{ChatError, ErrorCode, Hello};
use crate::chat::session::Resumed;
use crate::ws::{CloseCode, Sender};

impl Hub {
    /// A connection is ready: find or make its session, put it in its
    /// rooms, send its `welcome` and one `joined` per room, then the DMs
    /// held for it.
    pub(super) fn connect(
        &mut self,
        conn: u64,
        sender: Sender,
        hello: Hello,
        home: RoomName,
        bad_home: Option<ChatError>,
    ) {
        let mut errors: Vec<ChatError> = bad_home.into_iter().collect();
        let resumed = hello.session.as_deref().and_then(|token| {
            self.sessions
                .resume(token, conn)
                .or_else(|| self.adopt(token, conn))
        });
        let was_resumed = resumed.is_some();
        let (user, from_grace) = match resumed {
            Some((user, Resumed::FromGrace { rooms, held })) => (user, Some((rooms, held))),
            Some((user, Resumed::Joined)) => (user, None),
            None => {
                let name = match hello.name.clone() {
                    Some(name) if !self.name_free(&name, None) => {
                        errors.push(name_taken(&name));
                        None
                    }
                    name => name,
                };
                let name = name.or_else(|| self.cluster.is_some().then(|| self.guest_name()));
                match self.sessions.create(conn, name) {
                    Ok(session) => (session.user.id, None),
                    Err(e) => {
                        log::error!("#{conn}: no session token from the OS: {e}");
                        sender.close(CloseCode::INTERNAL_ERROR, "no session", true);
                        return;
                    }
                }
            }
        };
        self.conns.insert(
            conn,
            Conn {
                session: user,
                sender,
                home: home.clone(),
                rooms: HashSet::new(),
            },
        );
        if let Some(name) = &hello.name
            && was_resumed
            && let Err(e) = self.rename_session(user, name.clone())
        {
            errors.push(e);
        }

        let old_form = hello.rooms.is_none();
        let mut wanted = match (hello.rooms, &from_grace) {
            (Some(rooms), _) => rooms,
            (None, Some((rooms, _))) if hello.resume.is_none() => {
                let mut rooms: Vec<_> = rooms
                    .iter()
                    .map(|(room, last)| (room.clone(), Some(*last)))
                    .collect();
                rooms.sort();
                rooms
            }
            // Another connection of a live session: where that session is.
            (None, None) if was_resumed && hello.resume.is_none() => {
                let mut rooms: Vec<_> = self
                    .sessions
                    .get(user)
                    .map(|s| s.rooms.iter().map(|room| (room.clone(), None)).collect())
                    .unwrap_or_default();
                if rooms.is_empty() {
                    rooms.push((home.clone(), None));
                }
                rooms.sort();
                rooms
            }
            (None, _) => vec![(home.clone(), hello.resume)],
        };
        let cap = self.config.rooms_per_connection.max(1);
        if wanted.len() > cap {
            errors.push(too_many_rooms(cap));
            wanted.truncate(cap);
        }
        let mut joined = Vec::with_capacity(wanted.len());
        for (room, resume) in &wanted {
            match self.join_room(conn, room, *resume) {
                Ok(json) => joined.push((room.clone(), json)),
                Err(e) => errors.push(e),
            }
        }
        // Where its session was and is no longer: now the others see it go.
        if let Some((rooms, _)) = &from_grace {
            for (room, _) in rooms {
                if !joined.iter().any(|(r, _)| r == room) {
                    self.leave_session(user, room);
                }
            }
        }

        let home_view = joined
            .iter()
            .any(|(room, _)| *room == home && old_form)
            .then(|| {
                let resume = wanted.iter().find(|(r, _)| *r == home).and_then(|w| w.1);
                self.rooms.get_mut(&home).map(|room| room.view(resume))
            })
            .flatten();
        // The others hear of the session after its presence (see Hub::note).
        self.note_session(user, !was_resumed || hello.name.is_some());
        let Some(session) = self.sessions.get(user) else {
            return;
        };
        let limits = WelcomeLimits {
            max_text: self.config.limits.max_text,
            max_name: self.config.limits.max_name,
            rooms_per_connection: cap,
        };
        let names: Vec<&RoomName> = joined.iter().map(|(room, _)| room).collect();
        let view = home_view.as_ref().map(|(users, history, reset)| RoomView {
            users_array: users,
            history: history.iter().map(String::as_str).collect(),
            reset: *reset,
        });
        let welcome = welcome_json(
            &session.user,
            session.token.as_str(),
            &names,
            &limits,
            view.as_ref(),
        );
        log::debug!(
            "#{conn} joined as {:?} (user {user}) in {} room(s)",
            session.user.name,
            names.len()
        );
        self.send_to(conn, &welcome);
        for (_, json) in &joined {
            self.send_to(conn, json);
        }
        if let Some((_, held)) = from_grace {
            for dm in held {
                self.send_to(conn, &dm);
            }
        }
        for error in errors {
            self.reply_error(conn, &error);
        }
    }

    /// Put `conn` in `room`: its `joined`, to be sent by the caller.
    pub(super) fn join_room(
        &mut self,
        conn: u64,
        room: &RoomName,
        resume: Option<u64>,
    ) -> Result<String, ChatError> {
        let cap = self.config.rooms_per_connection.max(1);
        let c = self.conns.get(&conn).ok_or_else(gone)?;
        if !c.rooms.contains(room) && c.rooms.len() >= cap {
            return Err(too_many_rooms(cap));
        }
        let session = self.sessions.get_mut(c.session).ok_or_else(gone)?;
        let sender = c.sender.clone();
        let joined = self
            .rooms
            .open(room)?
            .join(conn, &session.user, &sender, resume);
        session.rooms.insert(room.clone());
        if let Some(c) = self.conns.get_mut(&conn) {
            c.rooms.insert(room.clone());
        }
        Ok(joined)
    }

    /// `conn` leaves `room`; its user leaves with its last connection there.
    pub(super) fn leave_room(&mut self, conn: u64, room: &RoomName) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        if !c.rooms.remove(room) {
            return false;
        }
        let user = c.session;
        let present = self
            .rooms
            .get_mut(room)
            .is_some_and(|r| r.leave_conn(conn, user, false));
        if !present {
            if let Some(session) = self.sessions.get_mut(user) {
                session.rooms.remove(room);
            }
            self.rooms.tidy(room);
        }
        true
    }

    /// Session `user` is no longer in `room`, whatever its connections.
    fn leave_session(&mut self, user: u64, room: &RoomName) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.remove_user(user);
        }
        if let Some(session) = self.sessions.get_mut(user) {
            session.rooms.remove(room);
        }
        self.rooms.tidy(room);
    }

    /// The connection is over. When it was its session's last, the session
    /// stays in its rooms for its grace; otherwise its user leaves the rooms
    /// where none of its other connections is.
    pub(super) fn disconnect(&mut self, conn: u64) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let user = c.session;
        let last = self
            .sessions
            .get(user)
            .is_none_or(|s| s.conns().all(|other| other == conn));
        let mut rooms = Vec::with_capacity(c.rooms.len());
        for room in &c.rooms {
            let Some(r) = self.rooms.get_mut(room) else {
                continue;
            };
            let present = r.leave_conn(conn, user, last);
            if last {
                rooms.push((room.clone(), r.delivered()));
            }
            if !present {
                if let Some(session) = self.sessions.get_mut(user) {
                    session.rooms.remove(room);
                }
                self.rooms.tidy(room);
            }
        }
        if self.sessions.disconnect(user, conn, rooms) {
            let name = self.sessions.get(user).map_or("", |s| s.user.name.as_str());
            log::debug!("user {user} ({name:?}): last connection #{conn} closed; in its grace");
            self.note_session(user, false);
        } else {
            log::debug!("#{conn} closed");
        }
    }

    /// End the sessions whose grace is over: the others see them leave, and
    /// their names are free.
    pub(super) fn end_graces(&mut self) {
        for session in self.sessions.end_graces(Instant::now()) {
            log::debug!(
                "user {} ({:?}): grace over",
                session.user.id,
                session.user.name
            );
            for room in &session.rooms {
                if let Some(r) = self.rooms.get_mut(room) {
                    r.remove_user(session.user.id);
                }
                self.rooms.tidy(room);
            }
            if self.cluster.is_some() {
                self.note(crate::chat::bus::note::Note::Ended {
                    user: session.user.id,
                });
            }
        }
    }

    /// A guest name free on every node: `guest-`, this node's part of the
    /// user id in hex, and its own number, so that nodes giving out guest
    /// names at the same moment do not give out the same ones.
    fn guest_name(&self) -> String {
        let id = self.sessions.next_id();
        let base = format!("guest-{:x}-{}", id >> 32, id & 0xffff_ffff);
        crate::chat::names::first_free(&base, |n| self.name_free(n, None))
    }
}

pub(super) fn name_taken(name: &str) -> ChatError {
    ChatError::new(
        ErrorCode::NameTaken,
        format!("the name {name:?} is taken; choose another"),
    )
}

fn too_many_rooms(cap: usize) -> ChatError {
    ChatError::new(
        ErrorCode::TooManyRooms,
        format!("a connection can be in {cap} rooms at most; leave one first"),
    )
}

fn gone() -> ChatError {
    ChatError::new(ErrorCode::BadRequest, "connection closed")
}
