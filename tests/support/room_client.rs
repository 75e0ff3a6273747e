//! [`Client`]: a chat client over an independent WebSocket implementation
//! (`tungstenite`), for the rooms, sessions and cluster tests: connect
//! with a `hello`, read the welcome and each room's `joined`, say, and read
//! up to what is expected. Every read is bounded by [`TIMEOUT`].

use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

use super::process::Server;

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Client {
    pub ws: WebSocket<TcpStream>,
    pub welcome: Value,
    /// The `joined` of each room, in the order they came.
    pub joined: Vec<Value>,
    nonce: u64,
}

impl Client {
    /// Connect to `path` (`/`, `/?room=go`), send `hello` if any, and read
    /// the welcome and one `joined` per room it lists.
    pub fn connect(server: &Server, path: &str, hello: Option<Value>) -> Client {
        let url = format!("ws://{}{path}", server.addr);
        let stream = TcpStream::connect(server.addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        let ws = tungstenite::client(url, stream).expect("handshake").0;
        let mut client = Client {
            ws,
            welcome: Value::Null,
            joined: Vec::new(),
            nonce: 0,
        };
        if let Some(hello) = hello {
            client.send(&hello);
        }
        client.welcome = client.next_of("welcome");
        let rooms = client.welcome["rooms"]
            .as_array()
            .expect("welcome.rooms")
            .len();
        while client.joined.len() < rooms {
            let joined = client.next_of("joined");
            client.joined.push(joined);
        }
        client
    }

    pub fn hello(server: &Server, hello: Value) -> Client {
        Client::connect(server, "/", Some(hello))
    }

    pub fn named(server: &Server, name: &str) -> Client {
        Client::hello(server, json!({"type": "hello", "name": name}))
    }

    pub fn id(&self) -> u64 {
        self.welcome["you"]["id"].as_u64().unwrap()
    }

    pub fn token(&self) -> String {
        self.welcome["session"].as_str().unwrap().to_owned()
    }

    pub fn joined(&self, room: &str) -> &Value {
        self.joined
            .iter()
            .find(|j| j["room"] == room)
            .unwrap_or_else(|| panic!("no joined for {room}: {:?}", self.joined))
    }

    pub fn send(&mut self, value: &Value) {
        self.ws.send(Message::text(value.to_string())).unwrap();
    }

    pub fn next(&mut self) -> Value {
        loop {
            match self.ws.read().expect("read") {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => {}
            }
        }
    }

    pub fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let v = self.next();
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// Say `text` in `room`, and wait for it to come back.
    pub fn say(&mut self, room: &str, text: &str) -> Value {
        self.say_all(room, text).pop().unwrap()
    }

    /// Say `text` in `room`: everything received up to it coming back.
    pub fn say_all(&mut self, room: &str, text: &str) -> Vec<Value> {
        self.nonce += 1;
        let nonce = format!(
            "{}-n{}",
            self.welcome["you"]["name"].as_str().unwrap_or(""),
            self.nonce
        );
        self.send(&json!({"type": "say", "room": room, "text": text, "nonce": nonce}));
        self.until(|v| v["type"] == "message" && v["nonce"] == nonce.as_str())
    }

    /// Everything up to and including the first message matching `pred`.
    pub fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let v = self.next();
            let done = pred(&v);
            seen.push(v);
            if done {
                return seen;
            }
        }
    }

    /// Everything up to the message `text` in `room`.
    pub fn until_text(&mut self, room: &str, text: &str) -> Vec<Value> {
        self.until(|v| v["type"] == "message" && v["room"] == room && v["text"] == text)
    }

    /// The next error; it must have `code`. Then a round trip in `room`
    /// shows the connection lives on.
    pub fn expect_error(&mut self, code: &str, room: &str) -> Value {
        let error = self.next_of("error");
        assert_eq!(error["code"], code, "{error}");
        self.say(room, "still here");
        error
    }

    pub fn close(mut self) {
        let _ = self.ws.close(None);
        // Read until the server's close (or the end): bounded by TIMEOUT.
        while self.ws.read().is_ok() {}
    }
}

pub fn presence_ids(users: &Value) -> Vec<u64> {
    users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_u64().unwrap())
        .collect()
}

pub fn of_type<'a>(seen: &'a [Value], kind: &str) -> Vec<&'a Value> {
    seen.iter().filter(|v| v["type"] == kind).collect()
}

pub fn hello_rooms(name: &str, rooms: Value) -> Value {
    json!({"type": "hello", "name": name, "rooms": rooms})
}
