//! Command-line interface: `wschat` runs the chat server; `wschat echo` and
//! `wschat autobahn-client` are the conformance modes.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "wschat",
    version,
    about = "A real-time chat server with a hand-written RFC 6455 WebSocket layer",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Option<Mode>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Mode {
    /// Echo every message back (for Autobahn's fuzzingclient).
    Echo(EchoArgs),
    /// Run every case of an Autobahn fuzzingserver, then ask for its report.
    AutobahnClient(AutobahnArgs),
}

#[derive(Args, Debug)]
pub struct EchoArgs {
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub addr: SocketAddr,
}

#[derive(Args, Debug)]
pub struct AutobahnArgs {
    /// The fuzzingserver's URL.
    #[arg(long, default_value = "ws://127.0.0.1:9001")]
    pub url: String,
    /// The name the report lists this client under.
    #[arg(long, default_value = "wschat")]
    pub agent: String,
}

/// The chat server's settings. Every limit can be raised, and 0 turns a
/// cap off (as load tests from one address need).
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Directory of the web page [default: www/ beside the crate, else beside the binary].
    #[arg(long)]
    pub www: Option<PathBuf>,
    /// Messages kept in memory and sent to a joining client.
    #[arg(long, default_value_t = 100)]
    pub history: usize,
    /// Append every message to this file (JSON lines) and reload it at start.
    #[arg(long)]
    pub history_file: Option<PathBuf>,
    /// Sync the history file to the device before a message is broadcast.
    #[arg(long)]
    pub fsync: bool,
    /// Open connections before new ones get HTTP 503 (0: no cap).
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// Open connections per IP address (IPv6: per /64) before new ones get HTTP 503 (0: no cap).
    #[arg(long, default_value_t = 64)]
    pub max_per_ip: usize,
    /// Largest WebSocket message in bytes (close 1009 beyond).
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_message: usize,
    /// Largest WebSocket frame in bytes [default: --max-message].
    #[arg(long)]
    pub max_frame: Option<usize>,
    /// Most fragments per WebSocket message.
    #[arg(long, default_value_t = 1024)]
    pub max_fragments: usize,
    /// Longest chat message in characters, after trimming.
    #[arg(long, default_value_t = 4000)]
    pub max_text: usize,
    /// Chat messages per second per connection (0: no limit).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Burst allowance of the rate limit.
    #[arg(long, default_value_t = 40)]
    pub burst: u32,
    /// Frames queued per client before it counts as too slow (close 1008).
    #[arg(long, default_value_t = 1024)]
    pub queue: usize,
    /// Seconds of silence before the server pings a client (0: never).
    #[arg(long, default_value_t = 30)]
    pub ping_interval: u64,
    /// Seconds a pinged client has to answer before it is dropped.
    #[arg(long, default_value_t = 10)]
    pub pong_timeout: u64,
    /// Seconds to wait for the peer's half of the closing handshake.
    #[arg(long, default_value_t = 5)]
    pub close_timeout: u64,
    /// Seconds a blocked write may take before the client is dropped.
    #[arg(long, default_value_t = 30)]
    pub write_timeout: u64,
    /// Seconds for the whole HTTP request head to arrive.
    #[arg(long, default_value_t = 10)]
    pub head_timeout: u64,
    /// Largest HTTP request head in bytes.
    #[arg(long, default_value_t = 8 * 1024)]
    pub max_head: usize,
    /// Most HTTP request headers.
    #[arg(long, default_value_t = 64)]
    pub max_headers: usize,
    /// Also accept WebSocket connections from pages of this origin ('*': any). Repeatable.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
}
