//! Shared helpers for the integration tests (`tests/attacks/`,
//! `tests/interop/`, `tests/codec_rules.rs`, `tests/faults.rs`,
//! `tests/chat.rs`, `tests/startup.rs`, `tests/handshake.rs`):
//!
//! - [`wire`]: the wire format by hand — frames (masked or not, any first
//!   byte), server frames parsed back, the RFC's sample key and accept
//!   value, and the handshake's request and response lines;
//! - [`http`]: sockets with deadlines, raw HTTP requests and answers;
//! - [`ws`]: [`Ws`], a raw WebSocket peer that can send any bytes at all,
//!   and [`expect_failure`], a protocol violation and how it must end;
//! - [`chat`]: [`ChatClient`], the chat protocol on top of [`Ws`];
//! - [`process`]: [`Server`], the real `wschat` binary on port 0, with its
//!   thread count, RSS and CPU time read from `/proc/PID/`, its log
//!   captured, and a kill by PID when dropped;
//! - [`in_process`]: [`InProcessServer`], the library's server on a thread,
//!   with any `Config` and `App`.
//!
//! Every socket has read and write timeouts, and every wait has a deadline,
//! so no test can hang.
// Each test target uses a part of these, and of the re-exports below.
#![allow(dead_code, unused_imports)]

pub mod chat;
pub mod http;
pub mod in_process;
pub mod metrics;
pub mod process;
pub mod redis;
pub mod room_client;
pub mod wire;
pub mod ws;

pub use chat::*;
pub use http::*;
pub use in_process::*;
pub use process::*;
pub use wire::*;
pub use ws::*;
