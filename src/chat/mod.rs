//! The chat server: an [`App`] that serves `www/` and joins every WebSocket
//! to one [`hub`].
//!
//! Each connection's reader thread parses and validates what its client
//! sends ([`protocol`]) and applies flood control ([`ratelimit`]), then
//! hands the hub only well-formed commands. The hub owns all chat state:
//! the [`session`]s that own names, the [`rooms`] (each a [`room`] with its
//! [`history`]), DMs and [`typing`] notices.

pub mod bus;
pub mod history;
pub mod history_file;
pub mod hub;
pub mod messages;
pub mod names;
pub mod nodes;
pub mod protocol;
pub mod ratelimit;
pub mod room;
pub mod rooms;
pub mod session;
pub mod typing;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::http::{HttpError, Request, StaticFiles};
use crate::server::{App, Peer};
use crate::ws::deflate::Deflate;
use crate::ws::handshake::Upgrade;
use crate::ws::{CloseCode, Message, Reader, Sender};
use hub::HubEvent;
use names::RoomName;
use protocol::{ChatError, Command, ErrorCode, TextLimits};
use ratelimit::{TokenBucket, Verdict};

/// Which pages may open a WebSocket to us (§10.2: the server decides by
/// `Origin`, which browsers always send). Without a check, any site a user
/// visits could chat in their name (cross-site WebSocket hijacking).
#[derive(Clone, Debug, Default)]
pub struct OriginPolicy {
    /// Extra origins allowed, e.g. `https://chat.example.org`.
    pub allowed: Vec<String>,
    /// Allow every origin (`--allow-origin '*'`).
    pub any: bool,
}

impl OriginPolicy {
    /// Allowed: no `Origin` (not a browser), `null` (a page opened from
    /// disk), the server's own origin (the page it served), the `public`
    /// origin a trusted proxy serves that page under (`X-Forwarded-Proto`
    /// and `X-Forwarded-Host`, or `Forwarded`, RFC 7239 §5.3–5.4), or one
    /// listed.
    pub fn allows(&self, origin: Option<&str>, host: &str, public: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        let origin = origin.trim_end_matches('/');
        self.any
            || origin == "null"
            || origin.eq_ignore_ascii_case(&format!("http://{host}"))
            || origin.eq_ignore_ascii_case(&format!("https://{host}"))
            || public.is_some_and(|public| origin.eq_ignore_ascii_case(public))
            || self
                .allowed
                .iter()
                .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }
}

/// Chat settings that the connection threads need.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    pub text: TextLimits,
    /// Messages per second per connection; 0 turns flood control off.
    pub rate: f64,
    pub burst: u32,
    pub origins: OriginPolicy,
    /// How long to wait for an optional `hello` before joining as a guest.
    pub hello_wait: Duration,
    /// permessage-deflate for clients that offer it (RFC 7692): messages at
    /// least this long are compressed; `None` accepts no extension.
    pub deflate: Option<usize>,
    /// Test hook: a reader thread panics when it receives this text, to
    /// show that one connection's panic does not take the server down.
    #[doc(hidden)]
    pub panic_on: Option<String>,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            text: TextLimits::default(),
            rate: 20.0,
            burst: 40,
            origins: OriginPolicy::default(),
            hello_wait: Duration::from_millis(500),
            deflate: Some(crate::ws::deflate::DEFAULT_THRESHOLD),
            panic_on: None,
        }
    }
}

pub struct Chat {
    config: ChatConfig,
    files: StaticFiles,
    events: crossbeam_channel::Sender<HubEvent>,
    next_id: AtomicU64,
    deflate: Option<Deflate>,
    /// In a cluster, whether Redis can be reached, for `/healthz`.
    health: Option<std::sync::Arc<bus::health::Health>>,
}

impl Chat {
    pub fn new(
        config: ChatConfig,
        files: StaticFiles,
        events: crossbeam_channel::Sender<HubEvent>,
    ) -> Chat {
        Chat {
            deflate: config.deflate.map(Deflate::new),
            config,
            files,
            events,
            next_id: AtomicU64::new(1),
            health: None,
        }
    }

    /// `/healthz` answers 503 while `health` has a link to Redis that is not up.
    pub fn with_health(mut self, health: std::sync::Arc<bus::health::Health>) -> Chat {
        self.health = Some(health);
        self
    }
}

/// Tells the hub a connection left, however its thread ends — even by a
/// panic, since `drop` runs while unwinding.
struct LeaveGuard<'a> {
    id: u64,
    events: &'a crossbeam_channel::Sender<HubEvent>,
}

impl Drop for LeaveGuard<'_> {
    fn drop(&mut self) {
        let _ = self.events.send(HubEvent::Leave { id: self.id });
    }
}

impl App for Chat {
    fn http(&self, request: &Request) -> Result<Vec<u8>, HttpError> {
        let path = request.path.split(['?', '#']).next().unwrap_or("");
        if path == crate::http::HEALTH_PATH
            && let Some(why) = self.health.as_ref().and_then(|h| h.unready())
        {
            return Ok(crate::http::unready(&why, request.method == "HEAD"));
        }
        self.files.respond(request)
    }

    fn check_upgrade(
        &self,
        upgrade: &Upgrade,
        peer: &Peer,
    ) -> Result<Option<crate::ws::extension::Negotiated>, HttpError> {
        let path = upgrade.path.split('?').next().unwrap_or("");
        if path != "/" && path != "/ws" {
            return Err(HttpError::NotFound);
        }
        if !self.config.origins.allows(
            upgrade.origin.as_deref(),
            &upgrade.host,
            peer.public_origin(),
        ) {
            let origin = upgrade.origin.as_deref().unwrap_or_default();
            let own = peer
                .public_origin()
                .map_or_else(|| format!("http://{}", upgrade.host), str::to_owned);
            return Err(HttpError::Forbidden(format!(
                "a page from {origin} may not open a WebSocket to {own}/ \
                 (a different origin, refused against cross-site WebSocket hijacking); \
                 open the page from {own}/ itself, \
                 or start wschat with --allow-origin {origin}"
            )));
        }
        Ok(self
            .deflate
            .as_ref()
            .and_then(|deflate| deflate.negotiate(&upgrade.extensions)))
    }

    fn websocket(&self, mut reader: Reader, sender: Sender, peer: Peer, path: String) {
        let started = Instant::now();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let limits = &self.config.text;
        let (home, bad_home) = match names::room_in_query(&path) {
            Ok(room) => (room.unwrap_or_else(RoomName::lobby), None),
            Err(e) => (RoomName::lobby(), Some(e)),
        };

        // The optional hello comes first; wait briefly for it.
        let first = match reader.next_message_timeout(self.config.hello_wait) {
            Ok(first) => first,
            Err(closed) => {
                log::info!(
                    "{peer} #{id}: left before joining after {:.1?}: {closed}",
                    started.elapsed()
                );
                return;
            }
        };
        let first = first.map(|m| match m {
            Message::Text(text) => protocol::parse(&text, limits),
            Message::Binary(_) => Err(binary_error()),
        });
        let (hello, pending) = match first {
            Some(Ok(Command::Hello(hello))) => (Some(hello), None),
            other => (None, other),
        };
        let _guard = LeaveGuard {
            id,
            events: &self.events,
        };
        if self
            .events
            .send(HubEvent::Join {
                id,
                sender: sender.clone(),
                hello,
                home,
                bad_home,
            })
            .is_err()
        {
            sender.close(CloseCode::GOING_AWAY, "server shutting down", true);
            return;
        }
        let mut bucket = TokenBucket::new(self.config.rate, self.config.burst);
        if let Some(parsed) = pending {
            self.command(&peer, id, parsed, &mut bucket, &sender);
        }
        let closed = loop {
            let parsed = match reader.next_message() {
                Ok(Message::Text(text)) => {
                    if self.config.panic_on.as_deref() == Some(text.as_str()) {
                        panic!("test hook: connection #{id} told to panic");
                    }
                    protocol::parse(&text, limits)
                }
                Ok(Message::Binary(_)) => Err(binary_error()),
                Err(closed) => break closed,
            };
            if !self.command(&peer, id, parsed, &mut bucket, &sender) {
                // Our Close is queued: whatever else the client sends is
                // discarded until it answers it (§5.5.1) or the close
                // timeout ends the connection.
                break loop {
                    if let Err(closed) = reader.next_message() {
                        break closed;
                    }
                };
            }
        };
        log::info!(
            "{peer} #{id}: closed after {:.1?}: {closed}",
            started.elapsed()
        );
    }
}

impl Chat {
    /// Pass a parsed request on, or answer it with an error. Returns
    /// `false` when the client is closed for flooding.
    fn command(
        &self,
        peer: &Peer,
        id: u64,
        parsed: Result<Command, ChatError>,
        bucket: &mut TokenBucket,
        sender: &Sender,
    ) -> bool {
        let command = match parsed {
            Ok(command) => command,
            Err(error) => {
                reply_error(sender, &error);
                return true;
            }
        };
        match bucket.check() {
            Verdict::Allow => {
                let _ = self.events.send(HubEvent::Command { id, command });
                true
            }
            Verdict::Refuse => {
                crate::metrics::get().rate_limited(false);
                log::debug!("{peer} #{id}: rate limited");
                let mut error = ChatError::new(
                    ErrorCode::RateLimited,
                    "you are sending too fast; slow down",
                );
                if let Command::Say { nonce, .. } | Command::Dm { nonce, .. } = command {
                    error.nonce = nonce;
                }
                reply_error(sender, &error);
                true
            }
            Verdict::Close => {
                crate::metrics::get().rate_limited(true);
                log::info!(
                    "{peer} #{id}: still flooding after rate_limited errors; closing with 1008"
                );
                sender.close(CloseCode::POLICY, "rate limit", true);
                false
            }
        }
    }
}

fn binary_error() -> ChatError {
    ChatError::new(
        ErrorCode::BadRequest,
        "binary messages are not supported; send text",
    )
}

/// An error goes straight to the client's own queue; if that is full the
/// hub is about to close it for being slow anyway.
fn reply_error(sender: &Sender, error: &ChatError) {
    let _ = sender.try_send_text(&error.to_json());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_policy() {
        let policy = OriginPolicy::default();
        assert!(policy.allows(None, "127.0.0.1:8080", None));
        assert!(policy.allows(Some("null"), "127.0.0.1:8080", None));
        assert!(policy.allows(Some("http://127.0.0.1:8080"), "127.0.0.1:8080", None));
        assert!(!policy.allows(Some("http://evil.example"), "127.0.0.1:8080", None));
        let listed = OriginPolicy {
            allowed: vec!["https://chat.example.org".into()],
            any: false,
        };
        assert!(listed.allows(Some("https://chat.example.org"), "127.0.0.1:8080", None));
        let any = OriginPolicy {
            allowed: vec![],
            any: true,
        };
        assert!(any.allows(Some("http://evil.example"), "127.0.0.1:8080", None));
        // Behind a trusted proxy: the public origin, scheme and all.
        let public = Some("https://chat.example.org");
        assert!(policy.allows(Some("https://chat.example.org"), "127.0.0.1:8080", public));
        assert!(!policy.allows(Some("http://chat.example.org"), "127.0.0.1:8080", public));
        assert!(!policy.allows(Some("https://evil.example"), "127.0.0.1:8080", public));
        assert!(policy.allows(Some("http://127.0.0.1:8080"), "127.0.0.1:8080", public));
    }
}
