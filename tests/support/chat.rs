//! [`ChatClient`]: the chat protocol on top of [`Ws`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::http::{End, WAIT};
use super::wire::{TEXT, frame};
use super::ws::Ws;

/// A chat participant.
pub struct ChatClient {
    pub ws: Ws,
    pub id: u64,
    pub name: String,
    pub welcome: Value,
    nonce: u64,
}

impl ChatClient {
    /// Connect, say hello with `name`, and wait for the welcome.
    pub fn join(addr: SocketAddr, name: &str) -> ChatClient {
        ChatClient::join_with(addr, json!({"type": "hello", "name": name}))
    }

    pub fn join_with(addr: SocketAddr, hello: Value) -> ChatClient {
        let mut ws = Ws::connect(addr);
        ws.send_text(&hello.to_string()).expect("send hello");
        let deadline = Instant::now() + WAIT;
        let welcome = loop {
            match ws.recv_json(deadline.saturating_duration_since(Instant::now())) {
                Ok(v) if v["type"] == "welcome" => break v,
                Ok(_) => {}
                Err(e) => panic!("no welcome: {e:?}"),
            }
        };
        // Then one `joined` per room the welcome names.
        let rooms = welcome["rooms"].as_array().map_or(0, Vec::len);
        for _ in 0..rooms {
            match ws.recv_json(deadline.saturating_duration_since(Instant::now())) {
                Ok(v) if v["type"] == "joined" => {}
                Ok(v) => panic!("expected a joined after the welcome, got {v}"),
                Err(e) => panic!("no joined after the welcome: {e:?}"),
            }
        }
        ChatClient {
            id: welcome["you"]["id"].as_u64().expect("welcome.you.id"),
            name: welcome["you"]["name"].as_str().unwrap_or("").to_owned(),
            ws,
            welcome,
            nonce: 0,
        }
    }

    pub fn say(&mut self, text: &str, nonce: &str) {
        let msg = json!({"type": "say", "text": text, "nonce": nonce}).to_string();
        self.ws.send_text(&msg).expect("send say");
    }

    pub fn recv(&mut self, timeout: Duration) -> Result<Value, End> {
        self.ws.recv_json(timeout)
    }

    /// Skip messages until one matches; panics on timeout or close.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => {}
                Err(e) => panic!("{}: waiting for {what}: {e:?}", self.name),
            }
        }
    }

    /// Say something and wait for it to come back.
    pub fn round_trip(&mut self, text: &str) -> Duration {
        self.nonce += 1;
        let nonce = format!("{}-{}", self.name, self.nonce);
        let start = Instant::now();
        self.say(text, &nonce);
        self.wait_for(WAIT, "own message back", |v| {
            v["type"] == "message" && v["nonce"] == nonce.as_str()
        });
        start.elapsed()
    }

    pub fn close(self) {
        self.ws.close();
    }
}

/// A `say` frame, ready to write.
pub fn say_frame(text: &str, nonce: &str) -> Vec<u8> {
    frame(
        true,
        TEXT,
        json!({"type": "say", "text": text, "nonce": nonce})
            .to_string()
            .as_bytes(),
    )
}
