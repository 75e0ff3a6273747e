//! What a node tells the others besides room messages: who is present
//! where, which names and sessions it holds, DMs and typing for users on
//! other nodes, and that it is alive.
//!
//! A note is published on the bus channel as `n NODE JSON`. Redis hands
//! every subscriber the channel's payloads in one order, the same for all,
//! so every node applies the notes in the same order: that order settles
//! who claimed a name first. What a note says about presence, names and
//! sessions is also kept in the node's hash in Redis (see
//! [`wire::node_key`](super::wire::node_key)), so a node that starts, or
//! comes back after losing Redis, reads where everyone is.

use serde::{Deserialize, Serialize};

use crate::chat::messages::User;
use crate::chat::names::RoomName;

/// A session as the other nodes know it: its user, the hash of its token
/// (never the token), and, in its grace, the rooms it was in with the last
/// id delivered there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub user: User,
    pub token_hash: String,
    /// `None` while it has a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<Vec<(RoomName, u64)>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Note {
    /// The node is alive (every second).
    Alive,
    /// Everything the node holds, in place of what the others knew of it:
    /// sent whenever its writer (re)connects, so a node that restarted
    /// clears what its previous life left, and one that lost Redis for a
    /// while puts right what was missed.
    Resync {
        sessions: Vec<SessionInfo>,
        presence: Vec<(RoomName, User)>,
    },
    /// `user` is present in `room` from this node.
    Here { room: RoomName, user: User },
    /// `user` is no longer present in `room` from this node.
    Gone { room: RoomName, user: u64 },
    /// This node holds this session and its name (new, renamed, or now in
    /// its grace).
    Session { session: SessionInfo },
    /// The session ended here: its name is free (unless another node took
    /// the session over).
    Ended { user: u64 },
    /// A session of this node was taken up by a connection on `by`; the
    /// DMs held for it go with this note.
    Moved {
        user: u64,
        by: String,
        held: Vec<String>,
    },
    /// `user` was renamed from `old`.
    Renamed { user: User, old: String },
    /// A DM, for the connections of `to` and `from` on other nodes.
    Dm { to: u64, from: u64, json: String },
    /// Typing, in a room or to a user.
    Typing {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<RoomName>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<u64>,
        json: String,
    },
}

impl Note {
    /// The payload for the bus channel.
    pub fn payload(&self, node: &str) -> String {
        format!(
            "n {node} {}",
            serde_json::to_string(self).unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::bus::wire::Published;

    #[test]
    fn notes_read_back_with_their_node() {
        let note = Note::Here {
            room: RoomName::parse("rust").unwrap(),
            user: User {
                id: 7,
                name: "alice \"a\"\nb".into(),
            },
        };
        let payload = note.payload("n1-ab12");
        assert!(!payload.contains('\n'), "{payload}");
        match Published::parse(payload.as_bytes()).unwrap() {
            Published::Note { node, note: back } => {
                assert_eq!(node, "n1-ab12");
                assert_eq!(back, note);
            }
            other => panic!("{other:?}"),
        }
    }
}
