//! Echo mode: every message comes back unchanged. This is what the Autobahn
//! fuzzingclient tests, so it uses the large limits (16 MiB messages,
//! 65,536 fragments) and answers no HTTP but `/healthz`.

use crate::http::{self, HttpError, Request};
use crate::server::{App, Peer};
use crate::ws::deflate::Deflate;
use crate::ws::handshake::Upgrade;
use crate::ws::{Config, Limits, Reader, Role, Sender};

pub struct Echo {
    deflate: Option<Deflate>,
}

impl Echo {
    /// An echo server; with `deflate`, it accepts permessage-deflate and
    /// compresses echoes at least that long (RFC 7692).
    pub fn new(deflate: Option<usize>) -> Echo {
        Echo {
            deflate: deflate.map(Deflate::new),
        }
    }
}

/// The binary's echo server: permessage-deflate on, with the default
/// threshold.
impl Default for Echo {
    fn default() -> Echo {
        Echo::new(Some(crate::ws::deflate::DEFAULT_THRESHOLD))
    }
}

/// Echo mode's connection settings: the defaults, with the large limits the
/// Autobahn 9.x cases need (16 MiB messages, 65,536 fragments and more).
pub fn ws_config() -> Config {
    Config {
        limits: Limits::LARGE,
        ..Config::new(Role::Server)
    }
}

impl App for Echo {
    fn http(&self, request: &Request) -> Result<Vec<u8>, HttpError> {
        match request.path.as_str() {
            http::HEALTH_PATH => Ok(http::health(request.method == "HEAD")),
            _ => Err(HttpError::NotFound),
        }
    }

    fn check_upgrade(
        &self,
        upgrade: &Upgrade,
        _peer: &Peer,
    ) -> Result<Option<crate::ws::extension::Negotiated>, HttpError> {
        Ok(self
            .deflate
            .as_ref()
            .and_then(|deflate| deflate.negotiate(&upgrade.extensions)))
    }

    fn websocket(&self, mut reader: Reader, sender: Sender, peer: Peer, _path: String) {
        loop {
            match reader.next_message() {
                Ok(message) => {
                    if sender.send_message(&message).is_err() {
                        break;
                    }
                }
                Err(closed) => {
                    log::debug!("{peer}: closed {closed}");
                    break;
                }
            }
        }
    }
}
