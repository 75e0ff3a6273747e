//! wschat: a real-time chat server with a hand-written RFC 6455 WebSocket
//! layer on plain std threads.
#![forbid(unsafe_code)]

pub mod autobahn;
pub mod echo;
pub mod server;
pub mod ws;
