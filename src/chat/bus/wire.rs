//! What the nodes write to Redis and read back: the keys, the Lua script
//! that numbers a room's messages, and the text of what is published on
//! the bus channel.
//!
//! A room has a hash (`wschat:room:NAME`, fields `epoch` and `last`) and a
//! stream (`wschat:history:NAME`, one entry per message, its entry id the
//! message id). The script runs atomically in Redis: it gives each message
//! of a run the room's next id, appends it to the stream (trimmed to about
//! `--history` entries) and publishes the run, so that every node hears a
//! room's messages in id order.
//!
//! The epoch is the first id of the room's counter. When Redis loses a room
//! (a restart without persistence) the script starts a new counter at the
//! Redis clock in microseconds, which is above every id the old one gave
//! out: ids only grow, and a resume point below the epoch means the room
//! was reset under the client.

use std::sync::Arc;

use super::note::Note;
use crate::chat::history::NewMessage;
use crate::chat::messages::{ChatMessage, ServerMessage};
use crate::chat::names::RoomName;

/// The channel every node publishes on and subscribes to.
pub const CHANNEL: &str = "wschat:bus";

/// The hash holding a room's `epoch` and `last` id.
pub fn room_key(room: &RoomName) -> String {
    format!("wschat:room:{room}")
}

/// What [`room_key`] looks like for every room, for `SCAN`.
pub const ROOM_PATTERN: &str = "wschat:room:*";

/// The room a [`room_key`] names.
pub fn room_of_key(key: &str) -> Option<RoomName> {
    RoomName::parse(key.strip_prefix("wschat:room:")?).ok()
}

/// The stream of a room's messages.
pub fn history_key(room: &RoomName) -> String {
    format!("wschat:history:{room}")
}

/// The hash where a node keeps what its notes say (see
/// [`note`](super::note)): `s:UID` a session, `p:ROOM:UID` a presence. It
/// expires when the node stops refreshing it.
pub fn node_key(node: &str) -> String {
    format!("wschat:node:{node}")
}

/// What [`node_key`] looks like for every node, for `SCAN`.
pub const NODE_PATTERN: &str = "wschat:node:*";

/// The node a [`node_key`] names.
pub fn node_of_key(key: &str) -> Option<&str> {
    key.strip_prefix("wschat:node:").filter(|n| valid_node(n))
}

/// A node name: 1 to 64 of `A-Z a-z 0-9 . _ -`, so that it is one word in a
/// payload and safe in a key and a log line.
pub fn valid_node(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Ids (and epochs) stay below this: the script counts in Lua's doubles,
/// exact below 2^53, and a browser reads them as JavaScript numbers, exact
/// as far.
pub const ID_LIMIT: u64 = 1 << 53;

/// The stream field that holds a message's JSON.
pub const FIELD: &str = "j";

/// Number, store and publish a run of one room's messages.
///
/// KEYS: the room hash, the room stream. ARGV: the channel, the room, the
/// stream's length to trim to, then for each message the JSON before its
/// id and the JSON after it. Returns the first id given. Numbers are
/// formatted with `%.0f`: Lua's numbers are doubles, exact below 2^53, and
/// `tostring` would print large ones with an exponent.
pub const SAY_SCRIPT: &str = r#"
local n = (#ARGV - 3) / 2
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  local t = redis.call('TIME')
  epoch = string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2]))
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'last', string.format('%.0f', tonumber(epoch) - 1))
end
local last = redis.call('HINCRBY', KEYS[1], 'last', n)
local first = last - n + 1
local lines = {'m ' .. ARGV[2] .. ' ' .. epoch .. ' ' .. string.format('%.0f', first)}
for i = 1, n do
  local id = string.format('%.0f', first + i - 1)
  local json = ARGV[2 + 2 * i] .. id .. ARGV[3 + 2 * i]
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], id .. '-0', 'j', json)
  lines[#lines + 1] = json
end
redis.call('PUBLISH', ARGV[1], table.concat(lines, '\n'))
return first
"#;

/// A run of one room's messages as the bus carries it: `m ROOM EPOCH
/// FIRST`, then one message's JSON per line (serde_json escapes every
/// newline inside a string, so a JSON text has none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub room: RoomName,
    pub epoch: u64,
    pub first: u64,
    pub messages: Vec<Arc<str>>,
}

impl Run {
    /// The ids and messages, oldest first.
    pub fn numbered(&self) -> impl Iterator<Item = (u64, &Arc<str>)> {
        (self.first..).zip(&self.messages)
    }

    /// The id of its last message.
    pub fn last(&self) -> u64 {
        self.first + self.messages.len() as u64 - 1
    }
}

/// What one payload on [`CHANNEL`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Published {
    Run(Run),
    /// `n NODE JSON`: a [`Note`] from a node.
    Note {
        node: String,
        note: Note,
    },
}

/// Why a payload was not understood.
#[derive(Debug, PartialEq, Eq)]
pub struct BadPayload(pub &'static str);

impl Published {
    pub fn parse(payload: &[u8]) -> Result<Published, BadPayload> {
        let text = std::str::from_utf8(payload).map_err(|_| BadPayload("not UTF-8"))?;
        let mut lines = text.split('\n');
        let head = lines.next().unwrap_or_default();
        let mut words = head.split(' ');
        match words.next() {
            Some("m") => {
                let room = words
                    .next()
                    .and_then(|r| RoomName::parse(r).ok())
                    .ok_or(BadPayload("no room"))?;
                let mut number = || {
                    words
                        .next()
                        .and_then(|w| w.parse::<u64>().ok())
                        .ok_or(BadPayload("no number"))
                };
                let epoch = number()?;
                let first = number()?;
                let messages: Vec<Arc<str>> = lines.map(Arc::from).collect();
                if messages.is_empty() || first == 0 {
                    return Err(BadPayload("an empty run"));
                }
                // No script gives these out, and past them the ids' sums
                // (the run's last, the next after it) would overflow.
                if epoch >= ID_LIMIT || first.saturating_add(messages.len() as u64) > ID_LIMIT {
                    return Err(BadPayload("an id past 2^53"));
                }
                // The epoch is the counter's first id.
                if first < epoch {
                    return Err(BadPayload("an id before its epoch"));
                }
                Ok(Published::Run(Run {
                    room,
                    epoch,
                    first,
                    messages,
                }))
            }
            Some("n") => {
                let node = words
                    .next()
                    .filter(|n| valid_node(n))
                    .ok_or(BadPayload("no node"))?;
                let json = head
                    .get(2 + node.len() + 1..)
                    .ok_or(BadPayload("no note"))?;
                let note = serde_json::from_str(json).map_err(|_| BadPayload("a bad note"))?;
                Ok(Published::Note {
                    node: node.to_owned(),
                    note,
                })
            }
            _ => Err(BadPayload("unknown kind")),
        }
    }
}

/// A message's JSON split around its id, for [`SAY_SCRIPT`] to join. The
/// id is written as a placeholder and split at: the `room` before it has no
/// quotes, so the first `"id":` followed by the placeholder is the id.
pub fn unnumbered(room: &RoomName, message: NewMessage) -> Option<(String, String)> {
    let json = ServerMessage::Message(&ChatMessage {
        room: room.clone(),
        id: u64::MAX,
        ts: message.ts,
        from: message.from,
        text: message.text,
        nonce: message.nonce,
    })
    .to_json();
    split_at_id(&json, &format!("\"id\":{}", u64::MAX))
        .map(|(before, after)| (before + "\"id\":", after))
}

fn split_at_id(json: &str, placeholder: &str) -> Option<(String, String)> {
    let at = json.find(placeholder)?;
    Some((
        json[..at].to_owned(),
        json[at + placeholder.len()..].to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_reads_back() {
        let payload = "m rust 1700000000000000 1700000000000005\n{\"a\":1}\n{\"b\":2}";
        let Ok(Published::Run(run)) = Published::parse(payload.as_bytes()) else {
            panic!("not a run");
        };
        assert_eq!(run.room.as_str(), "rust");
        assert_eq!(run.epoch, 1_700_000_000_000_000);
        assert_eq!(run.last(), 1_700_000_000_000_006);
        let ids: Vec<u64> = run.numbered().map(|(id, _)| id).collect();
        assert_eq!(ids, [1_700_000_000_000_005, 1_700_000_000_000_006]);
    }

    #[test]
    fn bad_payloads_are_refused() {
        for bad in [
            &b"x rust 1 1\n{}"[..],
            b"m Bad/Room 1 1\n{}",
            b"m rust one 1\n{}",
            b"m rust 1 1",
            b"m rust 1 0\n{}",
            b"m rust 1 9007199254740992\n{}",
            b"m rust 1 9007199254740991\n{}\n{}",
            b"m rust 9007199254740992 1\n{}",
            b"m rust 1 18446744073709551615\n{}",
            b"m rust 5 4\n{}",
            b"\xff",
            b"n bad/node {\"op\":\"alive\"}",
            b"n n1 {\"op\":\"nonsense\"}",
            b"n n1",
        ] {
            assert!(Published::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_name_their_room() {
        let room = RoomName::parse("rust").unwrap();
        assert_eq!(room_of_key(&room_key(&room)), Some(room.clone()));
        assert_eq!(room_of_key("wschat:room:No Good"), None);
        assert_eq!(history_key(&room), "wschat:history:rust");
    }

    #[test]
    fn a_message_splits_around_its_id() {
        let room = RoomName::parse("r18446744073709551615").unwrap();
        let mut message = crate::chat::history::tests::message("\"id\":18446744073709551615");
        message.nonce = Some("18446744073709551615".into());
        let (before, after) = unnumbered(&room, message).unwrap();
        let json = format!("{before}42{after}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["id"], 42);
        assert_eq!(v["room"], "r18446744073709551615");
        assert_eq!(v["text"], "\"id\":18446744073709551615");
    }
}
