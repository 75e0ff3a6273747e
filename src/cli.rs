//! Command-line interface: `wschat` runs the chat server; `wschat echo` and
//! `wschat autobahn-client` are the conformance modes.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand};

use crate::chat::ChatConfig;
use crate::chat::hub::HubConfig;
use crate::chat::protocol::TextLimits;
use crate::http::HeadLimits;
use crate::server::ServerConfig;
use crate::ws::{Config, Role};

/// Every default below is the library's own, so that a server built from
/// the library (as the tests build one) is the server the binary runs.
const WS: Config = Config::new(Role::Server);

fn secs(d: Option<std::time::Duration>) -> u64 {
    d.map_or(0, |d| d.as_secs())
}

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
    /// Address to listen on: HOST:PORT, the host a name or an IP address.
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub addr: ListenAddr,
    #[command(flatten)]
    pub deflate: DeflateArgs,
}

/// permessage-deflate (RFC 7692), on unless turned off.
#[derive(Args, Debug, Clone)]
pub struct DeflateArgs {
    /// Accept permessage-deflate when a client offers it (the default).
    #[arg(long, overrides_with = "no_deflate")]
    pub deflate: bool,
    /// Accept no extension: every message goes uncompressed.
    #[arg(long, overrides_with = "deflate")]
    pub no_deflate: bool,
    /// With permessage-deflate, messages shorter than this (bytes) go uncompressed.
    #[arg(long, value_name = "BYTES", default_value_t = crate::ws::deflate::DEFAULT_THRESHOLD)]
    pub deflate_threshold: usize,
}

impl DeflateArgs {
    /// The threshold, or `None` when deflate is off.
    pub fn threshold(&self) -> Option<usize> {
        (!self.no_deflate).then_some(self.deflate_threshold)
    }
}

#[derive(Args, Debug)]
pub struct AutobahnArgs {
    /// The fuzzingserver's URL.
    #[arg(long, default_value = "ws://127.0.0.1:9001")]
    pub url: String,
    /// The name the report lists this client under.
    #[arg(long, default_value = "wschat")]
    pub agent: String,
    #[command(flatten)]
    pub deflate: DeflateArgs,
}

/// The chat server's settings. Every limit can be raised, and 0 turns a
/// cap off (as load tests from one address need).
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on: HOST:PORT, the host a name (localhost) or an IP
    /// address ([::1] for IPv6); port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: ListenAddr,
    /// Directory of the web page [default: www/ beside the crate, else beside the binary].
    #[arg(long)]
    pub www: Option<PathBuf>,
    /// Messages kept in memory per room and sent to a joining client.
    #[arg(long, default_value_t = HubConfig::default().history)]
    pub history: usize,
    /// Append every message to this file (JSON lines) and reload it at start.
    #[arg(long)]
    pub history_file: Option<PathBuf>,
    /// Share rooms and history with other nodes through this Redis server
    /// (redis://HOST:PORT[/DB]); it then holds the history, not --history-file.
    #[arg(long, value_name = "URL", conflicts_with = "history_file")]
    pub redis: Option<String>,
    /// This node's name in the cluster (with --redis) [default: the host name and 4 random hex digits].
    #[arg(long, value_name = "NAME", requires = "redis", value_parser = node_name)]
    pub node: Option<String>,
    /// Seconds without a heartbeat after which another node is taken for dead and its users leave.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..))]
    pub node_timeout: u64,
    /// Sync the history file to the device before a message is broadcast.
    #[arg(long)]
    pub fsync: bool,
    /// Rooms kept in memory; past it a room nobody is in is dropped from memory (0: no cap).
    #[arg(long, default_value_t = HubConfig::default().max_rooms)]
    pub max_rooms: usize,
    /// Rooms one connection may be in at once, the lobby included.
    #[arg(long, default_value_t = HubConfig::default().rooms_per_connection)]
    pub rooms_per_connection: usize,
    /// Seconds a session keeps its name and rooms after its last connection closed.
    #[arg(long, value_name = "SECS", default_value_t = HubConfig::default().session_grace.as_secs())]
    pub session_grace: u64,
    /// Open connections before new ones get HTTP 503 (0: no cap).
    #[arg(long, default_value_t = ServerConfig::new(WS).max_connections)]
    pub max_connections: usize,
    /// Open connections per IP address (IPv6: per /64) before new ones get HTTP 503 (0: no cap).
    #[arg(long, default_value_t = ServerConfig::new(WS).max_per_ip)]
    pub max_per_ip: usize,
    /// Largest WebSocket message in bytes (close 1009 beyond).
    #[arg(long, default_value_t = WS.limits.max_message)]
    pub max_message: usize,
    /// Largest WebSocket frame in bytes [default: --max-message].
    #[arg(long)]
    pub max_frame: Option<usize>,
    /// Most fragments per WebSocket message.
    #[arg(long, default_value_t = WS.limits.max_fragments)]
    pub max_fragments: usize,
    /// Longest chat message in characters, after trimming.
    #[arg(long, default_value_t = TextLimits::default().max_text)]
    pub max_text: usize,
    /// Chat messages per second per connection (0: no limit).
    #[arg(long, default_value_t = ChatConfig::default().rate)]
    pub rate: f64,
    /// Burst allowance of the rate limit.
    #[arg(long, default_value_t = ChatConfig::default().burst)]
    pub burst: u32,
    /// Items queued per client before it counts as too slow (close 1008); an item is a frame or a whole hub batch.
    #[arg(long, default_value_t = WS.queue_len)]
    pub queue: usize,
    #[command(flatten)]
    pub deflate: DeflateArgs,
    /// Seconds of silence before the server pings a client (0: never).
    #[arg(long, default_value_t = secs(WS.ping_interval))]
    pub ping_interval: u64,
    /// Seconds a pinged client has to answer before it is dropped.
    #[arg(long, default_value_t = WS.pong_timeout.as_secs())]
    pub pong_timeout: u64,
    /// Seconds to wait for the peer's half of the closing handshake.
    #[arg(long, default_value_t = WS.close_timeout.as_secs())]
    pub close_timeout: u64,
    /// Seconds a blocked write may take before the client is dropped.
    #[arg(long, default_value_t = secs(WS.write_timeout))]
    pub write_timeout: u64,
    /// Seconds for the whole HTTP request head to arrive.
    #[arg(long, default_value_t = ServerConfig::new(WS).head_timeout.as_secs())]
    pub head_timeout: u64,
    /// Largest HTTP request head in bytes.
    #[arg(long, default_value_t = HeadLimits::default().max_head)]
    pub max_head: usize,
    /// Most HTTP request headers.
    #[arg(long, default_value_t = HeadLimits::default().max_headers)]
    pub max_headers: usize,
    /// Also accept WebSocket connections from pages of this origin ('*': any). Repeatable.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
    /// Believe the forwarding headers of peers in this range, your reverse proxy: the client's
    /// address (Forwarded, else X-Forwarded-For) and the page's public origin (Forwarded, else
    /// X-Forwarded-Proto and -Host). An address (127.0.0.1, ::1) or a range (10.0.0.0/8). Repeatable.
    #[arg(long = "trust-proxy", value_name = "CIDR")]
    pub trust_proxy: Vec<crate::server::Cidr>,
    /// Serve GET /metrics (Prometheus text format) on this address, e.g. 127.0.0.1:9091; off by
    /// default. Port 0 picks a free port (printed at start). Keep it off the public internet.
    #[arg(long = "metrics-addr", value_name = "HOST:PORT")]
    pub metrics_addr: Option<ListenAddr>,
}

/// Where to listen, as given: `127.0.0.1:8080`, `localhost:0`, `[::1]:8080`.
/// A host name is resolved when the server starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenAddr {
    pub host: String,
    pub port: u16,
}

impl ListenAddr {
    /// The addresses `host` stands for, IPv4 first (a browser that is given
    /// `localhost` tries both families; most tools try the first).
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        let mut addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot resolve {}: {e}", self.host))
            })?
            .collect();
        addrs.sort_by_key(SocketAddr::is_ipv6);
        addrs.dedup();
        if addrs.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} has no address", self.host),
            ));
        }
        Ok(addrs)
    }

    /// Is the host an IP address rather than a name?
    pub fn is_ip(&self) -> bool {
        self.host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok()
    }
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<ListenAddr, String> {
        const EXPECTED: &str =
            "expected HOST:PORT, such as 127.0.0.1:8080, localhost:0 or [::1]:8080";
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(ListenAddr {
                host: addr.ip().to_string(),
                port: addr.port(),
            });
        }
        let (host, port) = s.rsplit_once(':').ok_or(EXPECTED)?;
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("bad port {port:?}: {EXPECTED}"))?;
        let host = host.trim_matches(['[', ']']);
        if host.is_empty() || host.contains([':', '/', ' ']) {
            return Err(format!("bad host {host:?}: {EXPECTED}"));
        }
        Ok(ListenAddr {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

fn node_name(name: &str) -> Result<String, String> {
    if crate::chat::bus::wire::valid_node(name) {
        Ok(name.to_owned())
    } else {
        Err("a node name has 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_take_names_and_ip_addresses() {
        let parse = |s: &str| s.parse::<ListenAddr>();
        assert_eq!(
            parse("localhost:0"),
            Ok(ListenAddr {
                host: "localhost".into(),
                port: 0
            })
        );
        assert_eq!(
            parse("127.0.0.1:8080").unwrap().to_string(),
            "127.0.0.1:8080"
        );
        assert_eq!(parse("[::1]:8080").unwrap().host, "::1");
        assert_eq!(parse("[::1]:8080").unwrap().to_string(), "[::1]:8080");
        assert!(parse("[::1]:8080").unwrap().is_ip());
        assert!(!parse("localhost:1").unwrap().is_ip());
        for bad in [
            "localhost",
            "localhost:http",
            ":8080",
            "a b:80",
            "host:70000",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let addrs = parse("localhost:0").unwrap().resolve().unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
