//! The chat protocol: JSON text frames, one object per message.
//!
//! Parsing and validation are pure functions, run on each connection's own
//! reader thread, so the hub only ever sees well-formed commands. What the
//! server sends is built here too, so the wire format lives in one file
//! (and in the README's protocol section, which mirrors it).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// A user as every client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
}

/// A chat message, as broadcast and as stored in the history file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Server-wide, increasing by one per message.
    pub id: u64,
    /// Unix time in milliseconds.
    pub ts: u64,
    pub from: User,
    pub text: String,
    /// Chosen by the sender so it can recognise its own message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// What a client may ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Optional first message: a name, and the last message id seen.
    Hello {
        name: Option<String>,
        resume: Option<u64>,
    },
    Say {
        text: String,
        nonce: Option<String>,
    },
    Rename {
        name: String,
    },
}

/// Why a request was refused; sent back as an `error` message, and the
/// connection stays open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatError {
    pub code: ErrorCode,
    pub message: String,
    /// The `nonce` of the `say` this answers, so the client can match it.
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

    fn with_nonce(mut self, nonce: Option<String>) -> ChatError {
        self.nonce = nonce;
        self
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
/// string — is a `say` with that text, so plain-text clients (`websocat`,
/// `wscat`) can type whatever they like.
pub fn parse(frame: &str, limits: &TextLimits) -> Result<Command, ChatError> {
    // Fields are taken out of the parsed object, not copied.
    let Some(mut object) = json_object(frame) else {
        return Ok(Command::Say {
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
    match kind.as_str() {
        "hello" => {
            let name = optional_string(&mut object, "name")?
                .map(|n| check_name(&n, limits))
                .transpose()?;
            let resume = match object.get("resume") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| {
                    ChatError::new(ErrorCode::BadRequest, "\"resume\" must be a message id")
                })?),
            };
            Ok(Command::Hello { name, resume })
        }
        "say" => {
            let nonce = optional_string(&mut object, "nonce")?;
            if nonce
                .as_ref()
                .is_some_and(|n| n.chars().count() > limits.max_nonce)
            {
                return Err(ChatError::new(
                    ErrorCode::BadRequest,
                    format!("\"nonce\" is longer than {} characters", limits.max_nonce),
                ));
            }
            let text = optional_string(&mut object, "text")
                .map_err(|e| e.with_nonce(nonce.clone()))?
                .ok_or_else(|| {
                    ChatError::new(ErrorCode::BadRequest, "missing \"text\"")
                        .with_nonce(nonce.clone())
                })?;
            check_text(&text, limits).map_err(|e| e.with_nonce(nonce.clone()))?;
            Ok(Command::Say {
                text: trimmed(text),
                nonce,
            })
        }
        "rename" => {
            let name = optional_string(&mut object, "name")?
                .ok_or_else(|| ChatError::new(ErrorCode::BadRequest, "missing \"name\""))?;
            Ok(Command::Rename {
                name: check_name(&name, limits)?,
            })
        }
        other => Err(ChatError::new(
            ErrorCode::UnknownType,
            format!("unknown message type {:?}", truncate(other, 32)),
        )),
    }
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

/// Server → client messages. Each is serialized once, however many
/// clients receive it.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage<'a> {
    Message(&'a ChatMessage),
    Join {
        user: &'a User,
    },
    Leave {
        user: &'a User,
    },
    Rename {
        user: &'a User,
        old: &'a str,
    },
    Error {
        code: &'static str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<&'a str>,
    },
}

/// The `welcome` a joining client gets:
/// `{"type":"welcome","you":{..},"users":[..],"history":[..],"limits":{..}}`.
///
/// Assembled from parts that are already JSON — the users array, which the
/// hub keeps serialized, and the stored messages — so that a join costs a
/// copy of the room, not a serialization of it.
pub fn welcome_json(
    you: &User,
    users_array: &str,
    history: &[&str],
    limits: &WelcomeLimits,
) -> String {
    let you = serde_json::to_string(you).unwrap_or_default();
    let limits = serde_json::to_string(limits).unwrap_or_default();
    let history_len: usize = history.iter().map(|m| m.len() + 1).sum();
    let mut out =
        String::with_capacity(64 + you.len() + users_array.len() + history_len + limits.len());
    out.push_str(r#"{"type":"welcome","you":"#);
    out.push_str(&you);
    out.push_str(r#","users":"#);
    out.push_str(users_array);
    out.push_str(r#","history":["#);
    for (i, message) in history.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(message);
    }
    out.push_str(r#"],"limits":"#);
    out.push_str(&limits);
    out.push('}');
    out
}

#[derive(Serialize)]
pub struct WelcomeLimits {
    pub max_text: usize,
    pub max_name: usize,
}

impl ServerMessage<'_> {
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: no maps with non-string keys,
        // no floats.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl ChatError {
    pub fn to_json(&self) -> String {
        ServerMessage::Error {
            code: self.code.as_str(),
            message: &self.message,
            nonce: self.nonce.as_deref(),
        }
        .to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> TextLimits {
        TextLimits::default()
    }

    #[test]
    fn plain_text_is_a_say() {
        assert_eq!(
            parse("  hello there ", &limits()),
            Ok(Command::Say {
                text: "hello there".into(),
                nonce: None
            })
        );
        // Only what parses as a JSON object is a command.
        for text in [
            "{curly} braces at the start",
            r#"{"type":"say","text":"#,
            "{",
            "[1, 2]",
            r#""a JSON string""#,
            "42",
        ] {
            assert_eq!(
                parse(text, &limits()),
                Ok(Command::Say {
                    text: text.into(),
                    nonce: None
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn hello_say_rename() {
        assert_eq!(
            parse(
                r#"{"type":"hello","name":" alice ","resume":41}"#,
                &limits()
            ),
            Ok(Command::Hello {
                name: Some("alice".into()),
                resume: Some(41)
            })
        );
        assert_eq!(
            parse(r#"{"type":"say","text":"hi","nonce":"c1-17"}"#, &limits()),
            Ok(Command::Say {
                text: "hi".into(),
                nonce: Some("c1-17".into())
            })
        );
        assert_eq!(
            parse(r#"{"type":"rename","name":"bob"}"#, &limits()),
            Ok(Command::Rename { name: "bob".into() })
        );
    }

    #[test]
    fn bad_requests_have_codes() {
        let code = |s: &str| parse(s, &limits()).unwrap_err().code;
        assert_eq!(code(r#"{"type":"shout"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"text":"hi"}"#), ErrorCode::BadRequest);
        assert_eq!(code(r#"{"type":"say","text":"   "}"#), ErrorCode::EmptyText);
        assert_eq!(
            code(&format!(
                r#"{{"type":"say","text":"{}"}}"#,
                "x".repeat(4001)
            )),
            ErrorCode::TextTooLong
        );
        assert_eq!(
            code(r#"{"type":"rename","name":"a\u0007b"}"#),
            ErrorCode::BadName
        );
        assert_eq!(
            code(&format!(
                r#"{{"type":"rename","name":"{}"}}"#,
                "n".repeat(33)
            )),
            ErrorCode::BadName
        );
        assert_eq!(
            code(r#"{"type":"hello","resume":-1}"#),
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn errors_about_a_say_carry_its_nonce() {
        let err = parse(r#"{"type":"say","text":"","nonce":"n1"}"#, &limits()).unwrap_err();
        assert_eq!(err.nonce.as_deref(), Some("n1"));
        assert!(err.to_json().contains(r#""nonce":"n1""#));
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        assert!(check_text(&"é".repeat(4000), &limits()).is_ok());
        assert!(check_name(&"ü".repeat(32), &limits()).is_ok());
    }

    #[test]
    fn welcome_json_is_valid_and_complete() {
        let you = User {
            id: 2,
            name: "bob \"b\"".into(),
        };
        let stored = r#"{"type":"message","id":1}"#;
        let limits = WelcomeLimits {
            max_text: 4000,
            max_name: 32,
        };
        let json = welcome_json(
            &you,
            r#"[{"id":1,"name":"a"},{"id":2,"name":"bob \"b\""}]"#,
            &[stored, stored],
            &limits,
        );
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["type"], "welcome");
        assert_eq!(v["you"]["name"], "bob \"b\"");
        assert_eq!(v["users"].as_array().unwrap().len(), 2);
        assert_eq!(v["history"].as_array().unwrap().len(), 2);
        assert_eq!(v["limits"]["max_text"], 4000);
        let empty = welcome_json(&you, "[]", &[], &limits);
        assert_eq!(
            serde_json::from_str::<Value>(&empty).unwrap()["history"],
            serde_json::json!([])
        );
    }

    #[test]
    fn message_json_shape() {
        let msg = ChatMessage {
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
            r#"{"type":"message","id":42,"ts":1764133200123,"from":{"id":7,"name":"alice"},"text":"hi","nonce":"c1-17"}"#
        );
    }
}
