//! Attacks on a real `wschat` process over loopback: malformed and abusive
//! HTTP ([`handshake`]), every protocol violation of
//! `tests/common/violations.rs` and abusive frames ([`frames`]), peers that
//! half-close, reset or stop mid-header ([`odd_peers`]), slowloris and slow
//! readers ([`slow_peers`]), floods and churn ([`floods`]), the
//! connection caps ([`caps`]), and permessage-deflate's decompression
//! bombs ([`deflate`]).
//!
//! Every test ends by checking that the server is still alive, that its
//! thread count came back and its RSS stayed bounded (read from
//! `/proc/PID/status`), and that a normal client can still join and chat.
//! Every test prints what it sent and what it got (`--nocapture`).

#[path = "../support/mod.rs"]
mod support;
#[path = "../common/violations.rs"]
mod violations;

mod caps;
mod deflate;
mod floods;
mod frames;
mod handshake;
mod odd_peers;
mod slow_peers;
