//! The WebSocket layer (RFC 6455), written by hand.
//!
//! The codec — [`frame`], [`mask`], [`utf8`], [`message`], [`close`] and
//! [`handshake`] — is sans-IO: pure functions and state machines over byte
//! buffers, testable and fuzzable without a network. [`conn`] (with its
//! outgoing queue and closing handshake) and [`client`] are the thin
//! blocking layer that moves those bytes over `std::net`; [`broadcast`]
//! encodes a message once for many receivers, [`counters`] counts bytes,
//! closes and compression, and [`trace`] logs every frame.
//! `docs/reading-guide.md` gives the order to read them in.

pub mod broadcast;
pub mod client;
pub mod close;
pub mod conn;
pub mod counters;
pub mod deflate;
pub mod extension;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod trace;
pub mod utf8;

pub use close::{CloseCode, CloseFrame, ProtocolError};
pub use conn::{Closed, Config, Outgoing, Reader, Sender};
pub use frame::{OpCode, Role};
pub use message::{Decoder, Event, Limits, Message};
