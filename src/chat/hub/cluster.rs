//! The hub as a node of a cluster: what it tells the other nodes (notes,
//! published by the bus's writer at the end of each batch) and what it does
//! with theirs — presence from other nodes in its rooms, names and sessions
//! held elsewhere, DMs and typing for its users, nodes that went silent.
//!
//! Nothing here waits on Redis: notes go out with the batch, and what the
//! other nodes say comes in as events like any other.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Hub;
use crate::chat::bus::NodeState;
use crate::chat::bus::batch::{Batch, HEARTBEAT};
use crate::chat::bus::note::{Note, SessionInfo};
use crate::chat::messages::User;
use crate::chat::names::{RoomName, name_key};
use crate::chat::nodes::Nodes;
use crate::chat::protocol::{ChatError, ErrorCode};
use crate::chat::session::{Life, Resumed, Token};

/// The hub's cluster state.
pub(super) struct Cluster {
    pub nodes: Nodes,
    /// What this batch sends to the writer.
    pub outgoing: Batch,
    /// Names this node claimed and has not yet heard back on the bus: a
    /// claim of the same name by another node heard first wins over them.
    pending_claims: HashMap<u64, String>,
    next_check: Instant,
}

impl Cluster {
    pub fn new(node: String, timeout: Duration, grace: Duration) -> Cluster {
        Cluster {
            nodes: Nodes::new(node, timeout, grace),
            outgoing: Batch::default(),
            pending_claims: HashMap::new(),
            next_check: Instant::now() + HEARTBEAT,
        }
    }

    pub fn next_check(&self) -> Instant {
        self.next_check
    }
}

impl Hub {
    /// Tell the other nodes `note`, after the presence notes the rooms
    /// collected so far (so that a node taking a session over is seen in
    /// its rooms before it says it holds the session).
    pub(super) fn note(&mut self, note: Note) {
        let room_notes = self.rooms.take_notes();
        if let Some(cluster) = &mut self.cluster {
            cluster.outgoing.notes.extend(room_notes);
            cluster.outgoing.notes.push(note);
        }
    }

    /// What the others know of local session `user`.
    fn session_info(&self, user: u64) -> Option<SessionInfo> {
        let session = self.sessions.get(user)?;
        Some(SessionInfo {
            user: session.user.clone(),
            token_hash: Token::hash(session.token.as_str()),
            grace: match &session.life {
                Life::Live { .. } => None,
                Life::Grace { rooms, .. } => Some(rooms.clone()),
            },
        })
    }

    /// Tell the others where session `user` stands; `claim`: with a name it
    /// has not held before.
    pub(super) fn note_session(&mut self, user: u64, claim: bool) {
        if self.cluster.is_none() {
            return;
        }
        let Some(session) = self.session_info(user) else {
            return;
        };
        if let Some(cluster) = &mut self.cluster
            && claim
        {
            cluster
                .pending_claims
                .insert(user, name_key(&session.user.name));
        }
        self.note(Note::Session { session });
    }

    /// Is `name` free for session `id` (`None`: a new one), on every node?
    pub(super) fn name_free(&self, name: &str, id: Option<u64>) -> bool {
        self.sessions.name_free(name, id)
            && self
                .cluster
                .as_ref()
                .is_none_or(|c| c.nodes.owner(name).is_none_or(|owner| Some(owner) == id))
    }

    /// The user called `name` on another node.
    pub(super) fn remote_user(&self, name: &str) -> Option<User> {
        self.cluster.as_ref()?.nodes.user_by_name(name)
    }

    /// A connection with the token of a session another node holds takes it
    /// up here: same user, same name, the rooms it was in.
    pub(super) fn adopt(&mut self, token: &str, conn: u64) -> Option<(u64, Resumed)> {
        let cluster = self.cluster.as_ref()?;
        let info = cluster.nodes.by_token(&Token::hash(token))?.clone();
        let rooms = match &info.grace {
            Some(rooms) => rooms.clone(),
            None => cluster
                .nodes
                .rooms_of(info.user.id)
                .into_iter()
                .map(|room| {
                    let last = self.rooms.get(&room).map_or(0, |r| r.delivered());
                    (room, last)
                })
                .collect(),
        };
        log::debug!(
            "#{conn}: takes up session of user {} ({:?}) from another node",
            info.user.id,
            info.user.name
        );
        if let Some(cluster) = &mut self.cluster {
            cluster.nodes.adopted(info.user.id);
        }
        let id = self.sessions.adopt(conn, info.user, token).user.id;
        Some((
            id,
            Resumed::FromGrace {
                rooms,
                held: Default::default(),
            },
        ))
    }

    /// Everything this node holds, for the others to replace what they
    /// knew of it: after the writer (re)connected.
    pub(super) fn resync(&mut self) {
        if self.cluster.is_none() {
            return;
        }
        let _ = self.rooms.take_notes();
        let users: Vec<u64> = self.sessions.iter().map(|s| s.user.id).collect();
        let sessions = users
            .into_iter()
            .filter_map(|u| self.session_info(u))
            .collect();
        let presence = self
            .rooms
            .iter()
            .flat_map(|room| room.local_users().map(|u| (room.name().clone(), u.clone())))
            .collect();
        log::info!("redis: telling the other nodes where this node's users are");
        self.note(Note::Resync { sessions, presence });
    }

    /// A note from a node (this one's own, heard back, settles its claims).
    pub(super) fn heard_note(&mut self, node: &str, note: Note) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let now = Instant::now();
        if node == cluster.nodes.me {
            if let Note::Session { session } = &note
                && cluster.pending_claims.get(&session.user.id)
                    == Some(&name_key(&session.user.name))
            {
                cluster.pending_claims.remove(&session.user.id);
            }
            return;
        }
        cluster.nodes.heard(node, now);
        match note {
            Note::Alive => {}
            Note::Resync { sessions, presence } => self.heard_nodes_one(NodeState {
                node: node.to_owned(),
                sessions,
                presence,
            }),
            Note::Here { room, user } => {
                cluster
                    .nodes
                    .heard(node, now)
                    .presence
                    .insert((room.clone(), user.id), user.clone());
                match self.rooms.open(&room) {
                    Ok(r) => r.remote_here(node, &user),
                    Err(e) => log::warn!("{room}: presence from {node} not kept: {e}"),
                }
            }
            Note::Gone { room, user } => {
                cluster
                    .nodes
                    .heard(node, now)
                    .presence
                    .remove(&(room.clone(), user));
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.remote_gone(node, user);
                }
                self.rooms.tidy(&room);
            }
            Note::Session { session } => self.heard_session(node, session, now),
            Note::Ended { user } => cluster.nodes.ended(node, user, now),
            Note::Moved { user, by, held } => {
                cluster.nodes.ended(node, user, now);
                if by == cluster.nodes.me {
                    for dm in &held {
                        self.send_to_session(user, dm);
                    }
                }
            }
            Note::Renamed { user, old } => {
                let rooms: Vec<RoomName> = self.rooms.iter().map(|r| r.name().clone()).collect();
                for room in rooms {
                    if let Some(r) = self.rooms.get_mut(&room) {
                        r.rename(&user, &old);
                    }
                }
                if self.sessions.get(user.id).is_some() {
                    self.sessions.rename(user.id, user.name);
                }
            }
            Note::Dm { to, from, json } => {
                let json: std::sync::Arc<str> = json.into();
                if let Some(s) = self.sessions.get(to)
                    && matches!(s.life, Life::Grace { .. })
                {
                    self.sessions.hold(to, &json);
                }
                let mut targets: Vec<u64> = Vec::new();
                for user in [to, from] {
                    if let Some(s) = self.sessions.get(user) {
                        targets.extend(s.conns());
                    }
                    if to == from {
                        break;
                    }
                }
                for conn in targets {
                    self.send_to(conn, &json);
                }
            }
            Note::Typing { room, to, json } => {
                if let Some(room) = room
                    && let Some(r) = self.rooms.get_mut(&room)
                {
                    r.broadcast(&json);
                }
                if let Some(to) = to {
                    self.send_to_session(to, &json);
                }
            }
        }
    }

    /// Node `node` holds `session`. If a session here was claimed with the
    /// same name later in the bus's order, this node's loses it; if the
    /// session is one of ours in its grace, the client came back on `node`,
    /// and it ends here without a word to anyone.
    fn heard_session(&mut self, node: &str, session: SessionInfo, now: Instant) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let id = session.user.id;
        let key = name_key(&session.user.name);
        let live_there = session.grace.is_none();
        cluster.nodes.session(node, session, now);
        // A name claimed here, not yet confirmed, and claimed there first.
        let loser = self
            .sessions
            .by_name(&key)
            .map(|s| s.user.id)
            .filter(|local| *local != id && cluster.pending_claims.get(local) == Some(&key));
        if let Some(local) = loser {
            cluster.pending_claims.remove(&local);
            self.lose_name(local);
        }
        let moved = live_there
            && self
                .sessions
                .get(id)
                .is_some_and(|s| matches!(s.life, Life::Grace { .. }));
        if moved && let Some(session) = self.sessions.remove(id) {
            log::debug!("user {id} ({:?}): taken up on {node}", session.user.name);
            for room in &session.rooms {
                if let Some(r) = self.rooms.get_mut(room) {
                    r.remove_user(id);
                }
                self.rooms.tidy(room);
            }
            let held = match session.life {
                Life::Grace { held, .. } => held.iter().map(|dm| dm.to_string()).collect(),
                Life::Live { .. } => Vec::new(),
            };
            self.note(Note::Moved {
                user: id,
                by: node.to_owned(),
                held,
            });
        }
    }

    /// Local session `user` claimed a name another node's session claimed
    /// first: it becomes a guest, and its connections are told.
    fn lose_name(&mut self, user: u64) {
        let guest = crate::chat::names::first_free(&format!("guest-{user}"), |n| {
            self.name_free(n, Some(user))
        });
        let Some(old) = self.sessions.get(user).map(|s| s.user.name.clone()) else {
            return;
        };
        log::info!("user {user}: {old:?} was claimed first on another node; now {guest:?}");
        if self.rename_session(user, guest).is_err() {
            return;
        }
        let error = ChatError::new(
            ErrorCode::NameTaken,
            format!(
                "the name {old:?} was taken on another node at the same moment; choose another"
            ),
        );
        self.send_to_session(user, &error.to_json());
    }

    /// Send `json` to every connection this node has of session `user`.
    fn send_to_session(&mut self, user: u64, json: &str) {
        let conns: Vec<u64> = self
            .sessions
            .get(user)
            .map(|s| s.conns().collect())
            .unwrap_or_default();
        for conn in conns {
            self.send_to(conn, json);
        }
    }

    /// The nodes as the subscriber read them when it (re)connected.
    pub(super) fn heard_nodes(&mut self, states: Vec<NodeState>) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let me = cluster.nodes.me.clone();
        let listed: Vec<String> = states.iter().map(|s| s.node.clone()).collect();
        for node in cluster.nodes.names_of_nodes() {
            if !listed.contains(&node) {
                self.forget_node(&node, "gone from redis");
            }
        }
        for state in states {
            if state.node != me {
                self.heard_nodes_one(state);
            }
        }
    }

    /// Replace what is known of one node, announcing only what changed.
    fn heard_nodes_one(&mut self, state: NodeState) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let node = state.node.clone();
        let fresh: Vec<(RoomName, User)> = state.presence.clone();
        let old = cluster.nodes.replace(state, Instant::now());
        let old_presence = old.map(|o| o.presence).unwrap_or_default();
        for (room, user) in old_presence.keys() {
            if !fresh.iter().any(|(r, u)| r == room && u.id == *user) {
                if let Some(r) = self.rooms.get_mut(room) {
                    r.remote_gone(&node, *user);
                }
                self.rooms.tidy(room);
            }
        }
        for (room, user) in &fresh {
            if let Ok(r) = self.rooms.open(room) {
                r.remote_here(&node, user);
            }
        }
    }

    /// Once a second: a node silent for the timeout is dead, and its users
    /// leave.
    pub(super) fn check_nodes(&mut self) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let now = Instant::now();
        if now < cluster.next_check {
            return;
        }
        cluster.next_check = now + HEARTBEAT;
        cluster.nodes.end_orphans(now);
        for node in cluster.nodes.silent(now) {
            self.forget_node(&node, "silent for --node-timeout");
        }
    }

    fn forget_node(&mut self, node: &str, why: &str) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let Some(old) = cluster.nodes.forget(node, Instant::now()) else {
            return;
        };
        log::info!(
            "node {node} {why}: its {} user(s) leave",
            old.sessions.len()
        );
        for (room, user) in old.presence.keys() {
            if let Some(r) = self.rooms.get_mut(room) {
                r.remote_gone(node, *user);
            }
            self.rooms.tidy(room);
        }
    }
}
