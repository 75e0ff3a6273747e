//! Room names and the key a user's name is compared by.
//!
//! A room name is trimmed and lower-cased, 1 to 32 characters of
//! `a-z 0-9 - _`, starting with a letter or a digit, so that it is safe in
//! a URL (`?room=`, `#room`) and in a log line as it is. User names are
//! unique on the server compared case-insensitively: [`name_key`] is what
//! they are compared by.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::protocol::{ChatError, ErrorCode};

/// The room a connection is in when its URL names none.
pub const LOBBY: &str = "lobby";

/// Longest room name, in characters.
pub const MAX_ROOM_NAME: usize = 32;

/// A valid room name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomName(String);

impl RoomName {
    /// Trim, lower-case and check a room name; `bad_room` when it is not one.
    pub fn parse(name: &str) -> Result<RoomName, ChatError> {
        let name = name.trim().to_ascii_lowercase();
        let valid = !name.is_empty()
            && name.len() <= MAX_ROOM_NAME
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if valid {
            Ok(RoomName(name))
        } else {
            Err(ChatError::new(
                ErrorCode::BadRoom,
                format!(
                    "a room name has 1 to {MAX_ROOM_NAME} characters of a-z, 0-9, - and _, \
                     starting with a letter or a digit"
                ),
            ))
        }
    }

    pub fn lobby() -> RoomName {
        RoomName(LOBBY.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `base`, or `base-2`, `base-3`, ... : the first that `free` accepts (a
/// guest's name when someone chose `guest-7` for themselves).
pub fn first_free(base: &str, free: impl Fn(&str) -> bool) -> String {
    (1..)
        .map(|n| {
            if n == 1 {
                base.to_owned()
            } else {
                format!("{base}-{n}")
            }
        })
        .take(1000)
        .find(|name| free(name))
        .unwrap_or_else(|| base.to_owned())
}

impl TryFrom<String> for RoomName {
    type Error = String;

    fn try_from(name: String) -> Result<RoomName, String> {
        RoomName::parse(&name).map_err(|e| e.message)
    }
}

impl From<RoomName> for String {
    fn from(name: RoomName) -> String {
        name.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The room named by an upgrade URL's query (`/?room=rust`, `/ws?a=1&room=rust`):
/// `Ok(None)` when it names none, `bad_room` when the name is not valid.
/// Room names need no percent-decoding: every valid one is plain ASCII.
pub fn room_in_query(path: &str) -> Result<Option<RoomName>, ChatError> {
    let Some((_, query)) = path.split_once('?') else {
        return Ok(None);
    };
    let query = query.split('#').next().unwrap_or("");
    match query.split('&').find_map(|pair| pair.strip_prefix("room=")) {
        None | Some("") => Ok(None),
        Some(name) => RoomName::parse(name).map(Some),
    }
}

/// What user names are compared by: two names with the same key are the
/// same name.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_trimmed_lower_cased_and_checked() {
        assert_eq!(RoomName::parse(" Rust ").unwrap().as_str(), "rust");
        assert_eq!(RoomName::parse("a-b_9").unwrap().as_str(), "a-b_9");
        assert_eq!(RoomName::parse("9lives").unwrap().as_str(), "9lives");
        assert!(RoomName::parse(&"r".repeat(32)).is_ok());
        for bad in [
            "",
            "  ",
            "-rust",
            "_x",
            "ru st",
            "café",
            "a/b",
            &"r".repeat(33),
        ] {
            assert_eq!(
                RoomName::parse(bad).unwrap_err().code,
                ErrorCode::BadRoom,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_upgrade_url_may_name_a_room() {
        assert_eq!(room_in_query("/").unwrap(), None);
        assert_eq!(room_in_query("/ws?x=1").unwrap(), None);
        assert_eq!(
            room_in_query("/?room=Rust").unwrap(),
            Some(RoomName::parse("rust").unwrap())
        );
        assert_eq!(
            room_in_query("/ws?a=1&room=go").unwrap(),
            Some(RoomName::parse("go").unwrap())
        );
        assert!(room_in_query("/?room=a%20b").is_err());
    }

    #[test]
    fn names_compare_case_insensitively() {
        assert_eq!(name_key("Alice"), name_key("aLICE"));
        assert_ne!(name_key("alice"), name_key("alice2"));
    }
}
