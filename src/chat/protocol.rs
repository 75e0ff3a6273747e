//! The chat protocol, client to server: JSON text frames, one object per
//! message, parsed and validated here.
//!
//! Parsing and validation are pure functions, run on each connection's own
//! reader thread, so the hub only ever sees well-formed commands. What the
//! server sends is in [`messages`](super::messages); both mirror the
//! README's protocol section.

use serde_json::{Map, Value};
use std::fmt;

use super::messages::ServerMessage;
use super::names::RoomName;

/// Most rooms a `hello` may name; the hub caps a connection's rooms lower
/// (`--rooms-per-connection`), and this only bounds the parse.
pub const MAX_HELLO_ROOMS: usize = 256;

/// Longest session token accepted; the server's own are 32 characters.
const MAX_TOKEN: usize = 64;

/// What a client may ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Optional first message: a name, a session to resume, and the rooms
    /// to be in with the last id seen in each.
    Hello(Hello),
    /// A message to `room`, or to the connection's home room.
    Say {
        room: Option<RoomName>,
        text: String,
        nonce: Option<String>,
    },
    Rename {
        name: String,
    },
    Join {
        room: RoomName,
        resume: Option<u64>,
    },
    Leave {
        room: RoomName,
    },
    /// List the rooms.
    Rooms,
    /// A direct message to the user named `to`.
    Dm {
        to: String,
        text: String,
        nonce: Option<String>,
    },
    Typing(TypingIn),
}

/// Where a `typing` notice is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TypingIn {
    Room(RoomName),
    /// A DM conversation, by the other user's name.
    Dm(String),
}

/// Rooms to be in, each with the last message id seen there.
pub type RoomsWanted = Vec<(RoomName, Option<u64>)>;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hello {
    pub name: Option<String>,
    /// The token of a session to resume.
    pub session: Option<String>,
    /// Each room to be in, with the last message id seen there; `None`:
    /// only the home room (and `resume` is for it).
    pub rooms: Option<RoomsWanted>,
    /// The old form's last id seen, in the home room.
    pub resume: Option<u64>,
}

/// Why a request was refused; sent back as an `error` message, and the
/// connection stays open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatError {
    pub code: ErrorCode,
    pub message: String,
    /// The `nonce` of the `say` or `dm` this answers, so the client can
    /// match it.
    pub nonce: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    UnknownType,
    BadRequest,
    EmptyText,
    TextTooLong,
    BadName,
    RateLimited,
    StorageFailed,
    BadRoom,
    NotInRoom,
    TooManyRooms,
    NameTaken,
    UserOffline,
    /// The message store (Redis, in a cluster) cannot be reached.
    Unavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::EmptyText => "empty_text",
            ErrorCode::TextTooLong => "text_too_long",
            ErrorCode::BadName => "bad_name",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::StorageFailed => "storage_failed",
            ErrorCode::BadRoom => "bad_room",
            ErrorCode::NotInRoom => "not_in_room",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::UserOffline => "user_offline",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for ChatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl ChatError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ChatError {
        ChatError {
            code,
            message: message.into(),
            nonce: None,
        }
    }

    pub fn with_nonce(mut self, nonce: Option<String>) -> ChatError {
        self.nonce = nonce;
        self
    }

    pub fn to_json(&self) -> String {
        ServerMessage::Error {
            code: self.code.as_str(),
            message: &self.message,
            nonce: self.nonce.as_deref(),
        }
        .to_json()
    }
}

/// Limits on what a client may say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextLimits {
    /// Characters in a message, after trimming.
    pub max_text: usize,
    /// Characters in a name, after trimming.
    pub max_name: usize,
    /// Characters in a nonce.
    pub max_nonce: usize,
}

impl Default for TextLimits {
    fn default() -> Self {
        TextLimits {
            max_text: 4000,
            max_name: 32,
            max_nonce: 64,
        }
    }
}

/// Parse one text frame. Only a frame that parses as a JSON object is a
/// command; anything else — `hi`, `{curly} braces`, `[1, 2]`, a JSON
/// string — is a `say` with that text to the home room, so plain-text
/// clients (`websocat`, `wscat`) can type whatever they like.
pub fn parse(frame: &str, limits: &TextLimits) -> Result<Command, ChatError> {
    // Fields are taken out of the parsed object, not copied.
    let Some(mut object) = json_object(frame) else {
        return Ok(Command::Say {
            room: None,
            text: check_text(frame, limits)?.to_owned(),
            nonce: None,
        });
    };
    let kind = match object.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(_) => {
            return Err(ChatError::new(
                ErrorCode::BadRequest,
                "\"type\" must be a string",
            ));
        }
        None => return Err(ChatError::new(ErrorCode::BadRequest, "missing \"type\"")),
    };
    let o = &mut object;
    match kind.as_str() {
        "hello" => {
            let name = optional_string(o, "name")?
                .map(|n| check_name(&n, limits))
                .transpose()?;
            let session = optional_string(o, "session")?;
            if session.as_ref().is_some_and(|s| s.len() > MAX_TOKEN) {
                return Err(ChatError::new(
                    ErrorCode::BadRequest,
                    "\"session\" is too long",
                ));
            }
            Ok(Command::Hello(Hello {
                name,
                session,
                rooms: hello_rooms(o)?,
                resume: optional_id(o, "resume")?,
            }))
        }
        "say" => {
            let (text, nonce) = text_and_nonce(o, limits)?;
            let room = optional_room(o).map_err(|e| e.with_nonce(nonce.clone()))?;
            Ok(Command::Say { room, text, nonce })
        }
        "dm" => {
            let (text, nonce) = text_and_nonce(o, limits)?;
            let to = required_name(o, "to", limits).map_err(|e| e.with_nonce(nonce.clone()))?;
            Ok(Command::Dm { to, text, nonce })
        }
        "rename" => Ok(Command::Rename {
            name: required_name(o, "name", limits)?,
        }),
        "join" => Ok(Command::Join {
            room: required_room(o)?,
            resume: optional_id(o, "resume")?,
        }),
        "leave" => Ok(Command::Leave {
            room: required_room(o)?,
        }),
        "rooms" => Ok(Command::Rooms),
        "typing" => match (optional_room(o)?, optional_string(o, "to")?) {
            (Some(room), None) => Ok(Command::Typing(TypingIn::Room(room))),
            (None, Some(to)) => Ok(Command::Typing(TypingIn::Dm(check_name(&to, limits)?))),
            _ => Err(ChatError::new(
                ErrorCode::BadRequest,
                "\"typing\" needs one of \"room\" and \"to\"",
            )),
        },
        other => Err(ChatError::new(
            ErrorCode::UnknownType,
            format!("unknown message type {:?}", truncate(other, 32)),
        )),
    }
}

/// A `say`'s or a `dm`'s text and nonce, checked; an error about the text
/// carries the nonce.
fn text_and_nonce(
    object: &mut Map<String, Value>,
    limits: &TextLimits,
) -> Result<(String, Option<String>), ChatError> {
    let nonce = optional_string(object, "nonce")?;
    if nonce
        .as_ref()
        .is_some_and(|n| n.chars().count() > limits.max_nonce)
    {
        return Err(ChatError::new(
            ErrorCode::BadRequest,
            format!("\"nonce\" is longer than {} characters", limits.max_nonce),
        ));
    }
    let text = optional_string(object, "text")
        .map_err(|e| e.with_nonce(nonce.clone()))?
        .ok_or_else(|| {
            ChatError::new(ErrorCode::BadRequest, "missing \"text\"").with_nonce(nonce.clone())
        })?;
    check_text(&text, limits).map_err(|e| e.with_nonce(nonce.clone()))?;
    Ok((trimmed(text), nonce))
}

fn required_name(
    object: &mut Map<String, Value>,
    key: &str,
    limits: &TextLimits,
) -> Result<String, ChatError> {
    let name = optional_string(object, key)?
        .ok_or_else(|| ChatError::new(ErrorCode::BadRequest, format!("missing \"{key}\"")))?;
    check_name(&name, limits)
}

fn optional_room(object: &mut Map<String, Value>) -> Result<Option<RoomName>, ChatError> {
    match object.remove("room") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => RoomName::parse(&s).map(Some),
        Some(_) => Err(ChatError::new(
            ErrorCode::BadRoom,
            "\"room\" must be a string",
        )),
    }
}

fn required_room(object: &mut Map<String, Value>) -> Result<RoomName, ChatError> {
    optional_room(object)?.ok_or_else(|| ChatError::new(ErrorCode::BadRequest, "missing \"room\""))
}

fn optional_id(object: &mut Map<String, Value>, key: &str) -> Result<Option<u64>, ChatError> {
    id_value(object.get(key), key)
}

fn id_value(value: Option<&Value>, key: &str) -> Result<Option<u64>, ChatError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ChatError::new(
                ErrorCode::BadRequest,
                format!("\"{key}\" must be a message id"),
            )
        }),
    }
}

/// A `hello`'s `rooms`: an object of room name to the last id seen.
fn hello_rooms(object: &mut Map<String, Value>) -> Result<Option<RoomsWanted>, ChatError> {
    let rooms = match object.remove("rooms") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(rooms)) => rooms,
        Some(_) => {
            return Err(ChatError::new(
                ErrorCode::BadRequest,
                "\"rooms\" must be an object of room names to message ids",
            ));
        }
    };
    if rooms.len() > MAX_HELLO_ROOMS {
        return Err(ChatError::new(
            ErrorCode::TooManyRooms,
            format!("a hello names at most {MAX_HELLO_ROOMS} rooms"),
        ));
    }
    let mut out: RoomsWanted = Vec::with_capacity(rooms.len());
    for (name, last) in &rooms {
        let room = RoomName::parse(name)?;
        let last = id_value(Some(last), name)?;
        // " Rust" and "rust" are one room.
        match out.iter_mut().find(|(r, _)| *r == room) {
            Some(entry) => entry.1 = entry.1.min(last),
            None => out.push((room, last)),
        }
    }
    Ok(Some(out))
}

/// The frame as a JSON object, if it is one. Only text that starts with
/// `{` is given to the JSON parser at all.
fn json_object(frame: &str) -> Option<Map<String, Value>> {
    if !frame.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(frame).ok()
}

fn optional_string(
    object: &mut Map<String, Value>,
    key: &str,
) -> Result<Option<String>, ChatError> {
    match object.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ChatError::new(
            ErrorCode::BadRequest,
            format!("\"{key}\" must be a string"),
        )),
    }
}

/// A message's text: trimmed, 1 to `max_text` characters. Returns the
/// trimmed text.
pub fn check_text<'a>(text: &'a str, limits: &TextLimits) -> Result<&'a str, ChatError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ChatError::new(ErrorCode::EmptyText, "message is empty"));
    }
    if text.chars().count() > limits.max_text {
        return Err(ChatError::new(
            ErrorCode::TextTooLong,
            format!("message is longer than {} characters", limits.max_text),
        ));
    }
    Ok(text)
}

/// `text` without surrounding white space, reusing its buffer when there is
/// none (the usual case).
fn trimmed(text: String) -> String {
    if text.trim().len() == text.len() {
        text
    } else {
        text.trim().to_owned()
    }
}

/// A name: trimmed, 1 to `max_name` characters, no control characters.
pub fn check_name(name: &str, limits: &TextLimits) -> Result<String, ChatError> {
    let name = name.trim();
    let len = name.chars().count();
    if len == 0 || len > limits.max_name {
        return Err(ChatError::new(
            ErrorCode::BadName,
            format!("a name has 1 to {} characters", limits.max_name),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ChatError::new(
            ErrorCode::BadName,
            "a name cannot contain control characters",
        ));
    }
    Ok(name.to_owned())
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests;
