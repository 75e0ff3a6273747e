//! What a joined connection may ask of the hub, other than to `say`:
//! join, leave, list the rooms, rename, DM, typing.

use std::sync::Arc;
use std::time::Instant;

use super::connect::name_taken;
use super::{Hub, now_ms};
use crate::chat::bus::note::Note;
use crate::chat::messages::{ServerMessage, User};
use crate::chat::names::{RoomName, name_key};
use crate::chat::protocol::{ChatError, Command, ErrorCode, TypingIn};
use crate::chat::session::Life;

impl Hub {
    pub(super) fn command(&mut self, conn: u64, command: Command) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        let result = match command {
            Command::Say { room, text, nonce } => {
                self.stage(conn, room, text, nonce);
                Ok(())
            }
            // A later hello can only rename.
            Command::Hello(hello) => match hello.name {
                Some(name) => self.rename(conn, name),
                None => Ok(()),
            },
            Command::Rename { name } => self.rename(conn, name),
            Command::Join { room, resume } => self.join_room(conn, &room, resume).map(|joined| {
                self.send_to(conn, &joined);
            }),
            Command::Leave { room } => {
                if self.leave_room(conn, &room) {
                    self.send_to(conn, &ServerMessage::Left { room: &room }.to_json());
                    Ok(())
                } else {
                    Err(not_in_room(&room))
                }
            }
            Command::Rooms => {
                let json = ServerMessage::Rooms {
                    rooms: &self.rooms.list(),
                }
                .to_json();
                self.send_to(conn, &json);
                Ok(())
            }
            Command::Dm { to, text, nonce } => self
                .dm(conn, &to, &text, nonce.as_deref())
                .map_err(|e| e.with_nonce(nonce)),
            Command::Typing(place) => self.typing(conn, place),
        };
        if let Err(error) = result {
            self.reply_error(conn, &error);
        }
    }

    fn rename(&mut self, conn: u64, name: String) -> Result<(), ChatError> {
        let user = self.conns.get(&conn).map(|c| c.session);
        match user {
            Some(user) => self.rename_session(user, name),
            None => Ok(()),
        }
    }

    /// Session `user` is now called `name`, if nobody else is; every room it
    /// is in is told.
    pub(super) fn rename_session(&mut self, user: u64, name: String) -> Result<(), ChatError> {
        if !self.name_free(&name, Some(user)) {
            return Err(name_taken(&name));
        }
        let Some(session) = self.sessions.get(user) else {
            return Ok(());
        };
        if session.user.name == name {
            return Ok(());
        }
        let Some(old) = self.sessions.rename(user, name) else {
            return Ok(());
        };
        let Some(session) = self.sessions.get(user) else {
            return Ok(());
        };
        log::debug!("user {user} renamed {old:?} -> {:?}", session.user.name);
        for room in &session.rooms {
            if let Some(r) = self.rooms.get_mut(room) {
                r.rename(&session.user, &old);
            }
        }
        if self.cluster.is_some() {
            let renamed = session.user.clone();
            self.note_session(user, true);
            self.note(Note::Renamed { user: renamed, old });
        }
        Ok(())
    }

    /// A DM goes to every connection of both sessions, or is held for a
    /// recipient in its grace. It is never stored in the history.
    fn dm(
        &mut self,
        conn: u64,
        to: &str,
        text: &str,
        nonce: Option<&str>,
    ) -> Result<(), ChatError> {
        let from = self.user_of(conn).ok_or_else(|| offline(to))?;
        let recipient = match self.sessions.by_name(to) {
            Some(local) => local.user.clone(),
            None => self.remote_user(to).ok_or_else(|| offline(to))?,
        };
        let id = self.next_dm;
        self.next_dm += 1;
        let json: Arc<str> = ServerMessage::Dm {
            id,
            ts: now_ms(),
            from: &from,
            to: &recipient,
            text,
            nonce,
        }
        .to_json()
        .into();
        let recipient_id = recipient.id;
        if self.cluster.is_some() {
            self.note(Note::Dm {
                to: recipient_id,
                from: from.id,
                json: json.to_string(),
            });
        }
        let mut targets: Vec<u64> = Vec::new();
        if let Some(local) = self.sessions.get(recipient_id) {
            targets.extend(local.conns());
            if matches!(local.life, Life::Grace { .. }) {
                self.sessions.hold(recipient_id, &json);
            }
        }
        if recipient_id != from.id
            && let Some(sender) = self.sessions.get(from.id)
        {
            targets.extend(sender.conns());
        }
        for target in targets {
            self.send_to(target, &json);
        }
        Ok(())
    }

    /// Forward a typing notice, at most one per user and place every 2 s:
    /// to a room's batch (its connections ignore their own), or to the
    /// other user's connections.
    fn typing(&mut self, conn: u64, place: TypingIn) -> Result<(), ChatError> {
        let Some(user) = self.user_of(conn) else {
            return Ok(());
        };
        match place {
            TypingIn::Room(room) => {
                let inside = self
                    .conns
                    .get(&conn)
                    .is_some_and(|c| c.rooms.contains(&room));
                if !inside {
                    return Err(not_in_room(&room));
                }
                let place = TypingIn::Room(room);
                if self.typing.allow(user.id, &place, Instant::now()) {
                    let TypingIn::Room(room) = &place else {
                        return Ok(());
                    };
                    let json = ServerMessage::Typing {
                        room: Some(room),
                        to: None,
                        user: &user,
                    }
                    .to_json();
                    if let Some(r) = self.rooms.get_mut(room) {
                        r.broadcast(&json);
                    }
                    if self.cluster.is_some() {
                        self.note(Note::Typing {
                            room: Some(room.clone()),
                            to: None,
                            json,
                        });
                    }
                }
                Ok(())
            }
            TypingIn::Dm(name) => {
                let (to, targets): (User, Vec<u64>) = match self.sessions.by_name(&name) {
                    Some(local) => (local.user.clone(), local.conns().collect()),
                    None => match self.remote_user(&name) {
                        Some(remote) => (remote, Vec::new()),
                        None => return Ok(()),
                    },
                };
                let place = TypingIn::Dm(name_key(&name));
                if self.typing.allow(user.id, &place, Instant::now()) {
                    let json = ServerMessage::Typing {
                        room: None,
                        to: Some(&to),
                        user: &user,
                    }
                    .to_json();
                    for target in targets {
                        self.send_to(target, &json);
                    }
                    if self.cluster.is_some() {
                        self.note(Note::Typing {
                            room: None,
                            to: Some(to.id),
                            json,
                        });
                    }
                }
                Ok(())
            }
        }
    }

    fn user_of(&self, conn: u64) -> Option<User> {
        let c = self.conns.get(&conn)?;
        Some(self.sessions.get(c.session)?.user.clone())
    }
}

fn not_in_room(room: &RoomName) -> ChatError {
    ChatError::new(ErrorCode::NotInRoom, format!("you are not in {room}"))
}

fn offline(name: &str) -> ChatError {
    ChatError::new(
        ErrorCode::UserOffline,
        format!("nobody called {name:?} is online"),
    )
}
