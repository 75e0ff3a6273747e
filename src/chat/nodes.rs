//! The other nodes of a cluster as this node's hub knows them: the
//! sessions and names each holds and who it has in which room, kept from
//! their notes (see [`bus::note`](super::bus::note)), and when each was last
//! heard from.
//!
//! A node not heard from for `--node-timeout` is taken for dead: its users
//! leave every presence list, and its sessions are kept here for
//! `--session-grace` as if in their grace — a client back on this node with
//! its token takes its session up — after which their names are free. Between nodes a name belongs to the first session
//! claimed with it in the bus's order, which every node sees the same.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::bus::NodeState;
use super::bus::note::SessionInfo;
use super::messages::User;
use super::names::{RoomName, name_key};

/// One other node.
#[derive(Debug)]
pub struct Node {
    pub heard: Instant,
    pub sessions: HashMap<u64, SessionInfo>,
    /// `(room, user id)` → the user as the node sent it.
    pub presence: HashMap<(RoomName, u64), User>,
}

impl Node {
    fn new(now: Instant) -> Node {
        Node {
            heard: now,
            sessions: HashMap::new(),
            presence: HashMap::new(),
        }
    }
}

pub struct Nodes {
    /// This node's name: notes from it are not about another node.
    pub me: String,
    timeout: Duration,
    nodes: HashMap<String, Node>,
    /// Names held on other nodes (by [`name_key`]) → the user id holding it.
    names: HashMap<String, u64>,
    /// Sessions of dead nodes, in the grace they get here, until when.
    orphans: HashMap<u64, (SessionInfo, Instant)>,
    grace: Duration,
}

impl Nodes {
    pub fn new(me: String, timeout: Duration, grace: Duration) -> Nodes {
        Nodes {
            me,
            timeout,
            nodes: HashMap::new(),
            names: HashMap::new(),
            orphans: HashMap::new(),
            grace,
        }
    }

    /// `node` said something: it is alive.
    pub fn heard(&mut self, node: &str, now: Instant) -> &mut Node {
        let entry = self
            .nodes
            .entry(node.to_owned())
            .or_insert_with(|| Node::new(now));
        entry.heard = now;
        entry
    }

    /// `node` holds `session` (new, renamed, or in its grace). Returns
    /// whether its name is the session's on the cluster: false when another
    /// session claimed that name first.
    pub fn session(&mut self, node: &str, session: SessionInfo, now: Instant) -> bool {
        let id = session.user.id;
        let key = name_key(&session.user.name);
        self.orphans.remove(&id);
        self.heard(node, now).sessions.insert(id, session);
        self.names.retain(|k, owner| *owner != id || *k == key);
        match self.names.get(&key) {
            Some(owner) if *owner != id && self.holds(*owner) => false,
            _ => {
                self.names.insert(key, id);
                true
            }
        }
    }

    /// `node` no longer holds session `id`.
    pub fn ended(&mut self, node: &str, id: u64, now: Instant) {
        self.heard(node, now).sessions.remove(&id);
        if !self.holds(id) {
            self.names.retain(|_, owner| *owner != id);
        }
    }

    /// Does any other node hold session `id` (or did a dead one, still in
    /// its grace)?
    pub fn holds(&self, id: u64) -> bool {
        self.orphans.contains_key(&id) || self.nodes.values().any(|n| n.sessions.contains_key(&id))
    }

    /// Session `id` of a dead node is taken up here.
    pub fn adopted(&mut self, id: u64) {
        self.orphans.remove(&id);
    }

    /// End the graces of dead nodes' sessions that are over: their names
    /// are free.
    pub fn end_orphans(&mut self, now: Instant) {
        let over: Vec<u64> = self
            .orphans
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in over {
            self.orphans.remove(&id);
            if !self.holds(id) {
                self.names.retain(|_, owner| *owner != id);
            }
        }
    }

    /// The user id holding `name` on another node.
    pub fn owner(&self, name: &str) -> Option<u64> {
        self.names.get(&name_key(name)).copied()
    }

    /// The user called `name` on another node.
    pub fn user_by_name(&self, name: &str) -> Option<User> {
        let id = self.owner(name)?;
        self.nodes
            .values()
            .find_map(|n| n.sessions.get(&id))
            .or_else(|| self.orphans.get(&id).map(|(s, _)| s))
            .map(|s| s.user.clone())
    }

    /// The session whose token hashes to `hash`, on whichever node holds it
    /// (one in its grace first: that is where the client was).
    pub fn by_token(&self, hash: &str) -> Option<&SessionInfo> {
        let mut found = self
            .nodes
            .values()
            .flat_map(|n| n.sessions.values())
            .chain(self.orphans.values().map(|(s, _)| s))
            .filter(|s| s.token_hash == hash);
        let first = found.next()?;
        if first.grace.is_some() {
            return Some(first);
        }
        Some(found.find(|s| s.grace.is_some()).unwrap_or(first))
    }

    /// The rooms where `id` is present from any other node.
    pub fn rooms_of(&self, id: u64) -> Vec<RoomName> {
        let mut rooms: Vec<RoomName> = self
            .nodes
            .values()
            .flat_map(|n| n.presence.keys())
            .filter(|(_, user)| *user == id)
            .map(|(room, _)| room.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        rooms.sort();
        rooms
    }

    /// Replace what is known of `node` by `state`; returns what it was.
    pub fn replace(&mut self, state: NodeState, now: Instant) -> Option<Node> {
        let old = self.forget(&state.node, now);
        let node = self.heard(&state.node, now);
        node.presence = state
            .presence
            .into_iter()
            .map(|(room, user)| ((room, user.id), user))
            .collect();
        let name = state.node;
        for session in state.sessions {
            self.session(&name, session, now);
        }
        old
    }

    /// Forget `node` (it died, or restarted); returns what it had. Its
    /// sessions that no other node holds enter their grace here, in the
    /// rooms the node had them in.
    pub fn forget(&mut self, node: &str, now: Instant) -> Option<Node> {
        let old = self.nodes.remove(node)?;
        for (id, session) in &old.sessions {
            if self.holds(*id) {
                continue;
            }
            if self.grace.is_zero() {
                self.names.retain(|_, owner| owner != id);
                continue;
            }
            let mut orphan = session.clone();
            if orphan.grace.is_none() {
                let rooms = old
                    .presence
                    .keys()
                    .filter(|(_, user)| user == id)
                    .map(|(room, _)| (room.clone(), 0))
                    .collect();
                orphan.grace = Some(rooms);
            }
            self.orphans.insert(*id, (orphan, now + self.grace));
        }
        Some(old)
    }

    /// The nodes not heard from for the timeout.
    pub fn silent(&self, now: Instant) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| now.saturating_duration_since(n.heard) >= self.timeout)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Every node's name.
    pub fn names_of_nodes(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: u64, name: &str, token: &str) -> SessionInfo {
        SessionInfo {
            user: User {
                id,
                name: name.into(),
            },
            token_hash: token.into(),
            grace: None,
        }
    }

    #[test]
    fn the_first_claim_of_a_name_wins_and_a_rename_frees_the_old_one() {
        let now = Instant::now();
        let mut n = Nodes::new("me".into(), Duration::from_secs(10), Duration::ZERO);
        assert!(n.session("a", info(1, "Alice", "t1"), now));
        assert!(
            !n.session("b", info(2, "alice", "t2"), now),
            "claimed second"
        );
        assert_eq!(n.owner("ALICE"), Some(1));
        assert!(n.session("b", info(2, "guest-2", "t2"), now));
        assert!(n.session("a", info(1, "alicia", "t1"), now));
        assert_eq!(n.owner("alice"), None);
        assert_eq!(n.user_by_name("Alicia").unwrap().id, 1);
    }

    #[test]
    fn a_silent_node_is_dead_and_its_names_free() {
        let now = Instant::now();
        let mut n = Nodes::new("me".into(), Duration::from_secs(10), Duration::from_secs(5));
        n.session("a", info(1, "alice", "t1"), now);
        n.heard("b", now + Duration::from_secs(8));
        let later = now + Duration::from_secs(11);
        assert_eq!(n.silent(later), ["a"]);
        let gone = n.forget("a", later).unwrap();
        assert_eq!(gone.sessions.len(), 1);
        // In its grace here: the name is still taken, the token still good.
        assert_eq!(n.owner("alice"), Some(1));
        assert!(n.by_token("t1").unwrap().grace.is_some());
        n.end_orphans(later + Duration::from_secs(4));
        assert_eq!(n.owner("alice"), Some(1));
        n.end_orphans(later + Duration::from_secs(5));
        assert_eq!(n.owner("alice"), None);
        assert!(n.by_token("t1").is_none());
    }

    #[test]
    fn a_session_held_on_two_nodes_keeps_its_name_until_both_end_it() {
        let now = Instant::now();
        let mut n = Nodes::new("me".into(), Duration::from_secs(10), Duration::ZERO);
        n.session("a", info(1, "alice", "t1"), now);
        let mut grace = info(1, "alice", "t1");
        grace.grace = Some(vec![]);
        n.session("b", grace, now);
        assert!(
            n.by_token("t1").unwrap().grace.is_some(),
            "the one in its grace"
        );
        n.ended("a", 1, now);
        assert_eq!(n.owner("alice"), Some(1));
        n.ended("b", 1, now);
        assert_eq!(n.owner("alice"), None);
    }
}
