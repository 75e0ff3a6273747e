//! Echo mode: every message comes back unchanged. This is what the Autobahn
//! fuzzingclient tests, so it uses the large limits (16 MiB messages,
//! 65,536 fragments) and answers no HTTP but `/healthz`.

use std::net::SocketAddr;

use crate::http::{self, HttpError, Request};
use crate::server::App;
use crate::ws::handshake::Upgrade;
use crate::ws::{Config, Limits, Reader, Role, Sender};

pub struct Echo;

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
        _upgrade: &Upgrade,
    ) -> Result<Option<crate::ws::extension::Negotiated>, HttpError> {
        Ok(None)
    }

    fn websocket(&self, mut reader: Reader, sender: Sender, peer: SocketAddr) {
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
