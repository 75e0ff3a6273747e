//! What the server sends: users, chat messages, presence, DMs, and the
//! `welcome` and `joined` a client gets. Each is serialized once, however
//! many clients receive it.

use serde::{Deserialize, Serialize};

use super::names::RoomName;

/// A user as every client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
}

/// A chat message, as broadcast and as stored in the history file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// The room it was said in; a history file written before rooms has
    /// none, and its messages were said in the lobby.
    #[serde(default = "RoomName::lobby")]
    pub room: RoomName,
    /// Increasing by one per message in its room.
    pub id: u64,
    /// Unix time in milliseconds.
    pub ts: u64,
    pub from: User,
    pub text: String,
    /// Chosen by the sender so it can recognise its own message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// One room of a `rooms` answer.
#[derive(Serialize)]
pub struct RoomInfo<'a> {
    pub room: &'a RoomName,
    pub users: usize,
}

/// Server → client messages.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage<'a> {
    Message(&'a ChatMessage),
    Join {
        room: &'a RoomName,
        user: &'a User,
    },
    Leave {
        room: &'a RoomName,
        user: &'a User,
    },
    Left {
        room: &'a RoomName,
    },
    /// The room's history started over (Redis lost it): ids go on from a
    /// new, higher start, and nothing said before is coming.
    Reset {
        room: &'a RoomName,
    },
    Rename {
        room: &'a RoomName,
        user: &'a User,
        old: &'a str,
    },
    Rooms {
        rooms: &'a [RoomInfo<'a>],
    },
    Dm {
        id: u64,
        ts: u64,
        from: &'a User,
        to: &'a User,
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<&'a str>,
    },
    Typing {
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a RoomName>,
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<&'a User>,
        user: &'a User,
    },
    Error {
        code: &'static str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<&'a str>,
    },
}

impl ServerMessage<'_> {
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: no maps with non-string keys,
        // no floats.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The limits a `welcome` tells the client.
#[derive(Serialize)]
pub struct WelcomeLimits {
    pub max_text: usize,
    pub max_name: usize,
    pub rooms_per_connection: usize,
}

/// A room as a joiner receives it: the presence list (already JSON) and the
/// history after its resume point (each already JSON).
pub struct RoomView<'a> {
    pub users_array: &'a str,
    pub history: Vec<&'a str>,
    /// The room started over since the client's resume point (Redis lost
    /// it): `history` is its recent history, not what follows that point.
    pub reset: bool,
}

impl RoomView<'_> {
    fn len(&self) -> usize {
        self.users_array.len() + self.history.iter().map(|m| m.len() + 1).sum::<usize>()
    }

    /// `"users":[..],"history":[..]`
    fn push_fields(&self, out: &mut String) {
        if self.reset {
            out.push_str(r#""reset":true,"#);
        }
        out.push_str(r#""users":"#);
        out.push_str(self.users_array);
        out.push_str(r#","history":["#);
        for (i, message) in self.history.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(message);
        }
        out.push(']');
    }
}

/// The `welcome`:
/// `{"type":"welcome","you":{..},"session":"..","rooms":[..],"limits":{..}}`.
/// `home`, for a client whose `hello` named no rooms (one that knows only
/// one room), adds its home room's `users` and `history` as before rooms.
pub fn welcome_json(
    you: &User,
    session: &str,
    rooms: &[&RoomName],
    limits: &WelcomeLimits,
    home: Option<&RoomView<'_>>,
) -> String {
    let you = serde_json::to_string(you).unwrap_or_default();
    let rooms = serde_json::to_string(rooms).unwrap_or_default();
    let limits = serde_json::to_string(limits).unwrap_or_default();
    let mut out = String::with_capacity(
        96 + you.len() + session.len() + rooms.len() + limits.len() + home.map_or(0, |h| h.len()),
    );
    out.push_str(r#"{"type":"welcome","you":"#);
    out.push_str(&you);
    out.push_str(r#","session":"#);
    out.push_str(&serde_json::to_string(session).unwrap_or_default());
    out.push_str(r#","rooms":"#);
    out.push_str(&rooms);
    if let Some(home) = home {
        out.push(',');
        home.push_fields(&mut out);
    }
    out.push_str(r#","limits":"#);
    out.push_str(&limits);
    out.push('}');
    out
}

/// `{"type":"joined","room":"rust","users":[..],"history":[..]}`, assembled
/// from parts that are already JSON, so that a join costs a copy of the
/// room, not a serialization of it.
pub fn joined_json(room: &RoomName, view: &RoomView<'_>) -> String {
    let mut out = String::with_capacity(48 + room.as_str().len() + view.len());
    out.push_str(r#"{"type":"joined","room":""#);
    out.push_str(room.as_str());
    out.push_str(r#"","#);
    view.push_fields(&mut out);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn bob() -> User {
        User {
            id: 2,
            name: "bob \"b\"".into(),
        }
    }

    #[test]
    fn welcome_and_joined_are_valid_and_complete() {
        let stored = r#"{"type":"message","room":"rust","id":1}"#;
        let limits = WelcomeLimits {
            max_text: 4000,
            max_name: 32,
            rooms_per_connection: 32,
        };
        let rust = RoomName::parse("rust").unwrap();
        let view = RoomView {
            users_array: r#"[{"id":1,"name":"a"},{"id":2,"name":"bob \"b\""}]"#,
            history: vec![stored, stored],
            reset: false,
        };
        let v: Value = serde_json::from_str(&joined_json(&rust, &view)).unwrap();
        assert_eq!(v["type"], "joined");
        assert_eq!(v["room"], "rust");
        assert_eq!(v["users"].as_array().unwrap().len(), 2);
        assert_eq!(v["history"].as_array().unwrap().len(), 2);

        let welcome = welcome_json(&bob(), "t0k", &[&rust], &limits, None);
        let v: Value = serde_json::from_str(&welcome).unwrap();
        assert_eq!(v["you"]["name"], "bob \"b\"");
        assert_eq!(v["session"], "t0k");
        assert_eq!(v["rooms"], serde_json::json!(["rust"]));
        assert_eq!(v["limits"]["max_text"], 4000);
        assert!(v.get("history").is_none());

        let welcome = welcome_json(&bob(), "t0k", &[&rust], &limits, Some(&view));
        let v: Value = serde_json::from_str(&welcome).unwrap();
        assert_eq!(v["history"].as_array().unwrap().len(), 2);
        assert_eq!(v["users"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn message_json_shape_and_old_records() {
        let msg = ChatMessage {
            room: RoomName::parse("rust").unwrap(),
            id: 42,
            ts: 1764133200123,
            from: User {
                id: 7,
                name: "alice".into(),
            },
            text: "hi".into(),
            nonce: Some("c1-17".into()),
        };
        assert_eq!(
            ServerMessage::Message(&msg).to_json(),
            r#"{"type":"message","room":"rust","id":42,"ts":1764133200123,"from":{"id":7,"name":"alice"},"text":"hi","nonce":"c1-17"}"#
        );
        let old: ChatMessage = serde_json::from_str(
            r#"{"type":"message","id":3,"ts":1,"from":{"id":7,"name":"alice"},"text":"hi"}"#,
        )
        .unwrap();
        assert_eq!(old.room.as_str(), "lobby");
        let bad = r#"{"type":"message","room":"No Good","id":3,"ts":1,"from":{"id":7,"name":"a"},"text":"hi"}"#;
        assert!(serde_json::from_str::<ChatMessage>(bad).is_err());
    }
}
