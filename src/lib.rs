//! wschat: a real-time chat server with a hand-written RFC 6455 WebSocket
//! layer on plain std threads.
//!
//! - [`ws`]: the WebSocket protocol — a sans-IO codec and a thin blocking
//!   connection layer.
//! - [`server`]: the accept loop, one thread per connection.
//! - [`chat`]: the hub, the chat protocol, history.
//! - [`http`]: request heads, refusals, static files and the health check.
//! - [`metrics`]: the counters, and `--metrics-addr`'s Prometheus scrape.
//! - [`echo`], [`autobahn`], [`cli`], [`run`].
#![forbid(unsafe_code)]

pub mod autobahn;
pub mod chat;
pub mod cli;
pub mod echo;
pub mod http;
pub mod metrics;
pub mod run;
pub mod server;
pub mod ws;
