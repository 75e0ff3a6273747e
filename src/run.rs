//! Putting the pieces together: turn command-line settings into a running
//! chat server, and stop it cleanly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::chat::history::{HistoryStore, MemoryStore};
use crate::chat::history_file::{FileStore, Reloaded};
use crate::chat::hub::{Hub, HubConfig, HubEvent};
use crate::chat::protocol::TextLimits;
use crate::chat::{Chat, ChatConfig, OriginPolicy};
use crate::cli::{ListenAddr, ServeArgs};
use crate::http::{HeadLimits, StaticFiles};
use crate::metrics::server::MetricsServer;
use crate::server::{ConnectionCount, Server, ServerConfig, Stopper};
use crate::ws::{Config, Limits, Role};

/// A chat server running on background threads.
pub struct Running {
    pub addr: SocketAddr,
    /// The page's address, with the host as given to `--addr`.
    pub url: String,
    pub www: Option<PathBuf>,
    events: crossbeam_channel::Sender<HubEvent>,
    stopper: Stopper,
    accept: Option<JoinHandle<()>>,
    hub: Option<JoinHandle<()>>,
    connections: Arc<ConnectionCount>,
    close_timeout: Duration,
    metrics: Option<MetricsServer>,
}

/// Where the page lives when `--www` is not given: `www/` beside the crate
/// (for `cargo run`), else beside the binary, else in the working directory.
pub fn default_www() -> PathBuf {
    let crate_www = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www");
    if crate_www.is_dir() {
        return crate_www;
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|p| p.join("www")))
        && dir.is_dir()
    {
        return dir;
    }
    PathBuf::from("www")
}

/// Listen on the first address `addr` resolves to (IPv4 first); the next
/// one is tried only when this machine lacks the first (no IPv6, say), not
/// when its port is taken. The error says which address failed, and what to
/// do about it.
pub fn listen(addr: &ListenAddr) -> std::io::Result<std::net::TcpListener> {
    let mut last = None;
    for resolved in addr.resolve()? {
        match crate::server::bind(resolved) {
            Ok(listener) => return Ok(listener),
            Err(e) => {
                let try_next = e.kind() == std::io::ErrorKind::AddrNotAvailable
                    || e.raw_os_error() == Some(libc::EAFNOSUPPORT);
                last = Some((resolved, e));
                if !try_next {
                    break;
                }
            }
        }
    }
    let (resolved, e) = last.expect("resolve returns at least one address");
    let shown = if addr.is_ip() {
        addr.to_string()
    } else {
        format!("{addr} ({resolved})")
    };
    let hint = match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "another program (perhaps another wschat) is using port {}; stop it, \
             or choose another port: --addr 127.0.0.1:0 picks a free one",
            addr.port
        ),
        std::io::ErrorKind::PermissionDenied => {
            "ports below 1024 need privileges; try --addr 127.0.0.1:8080".to_owned()
        }
        std::io::ErrorKind::AddrNotAvailable => format!(
            "{} is not an address of this machine; try --addr 127.0.0.1:8080 \
             (this machine only) or --addr 0.0.0.0:8080 (every interface)",
            resolved.ip()
        ),
        _ => "see --addr in wschat --help".to_owned(),
    };
    Err(std::io::Error::new(
        e.kind(),
        format!("cannot listen on {shown}: {e}; {hint}"),
    ))
}

/// `http://HOST:PORT/` with the host as the user wrote it (a name stays a
/// name) and the port actually bound (for port 0).
fn page_url(asked: &ListenAddr, bound: SocketAddr) -> String {
    if asked.is_ip() {
        format!("http://{bound}/")
    } else {
        format!("http://{}:{}/", asked.host, bound.port())
    }
}

/// The WebSocket and server settings the flags describe.
pub fn server_config(args: &ServeArgs) -> ServerConfig {
    let secs = |s: u64| Duration::from_secs(s);
    let mut ws = Config::new(Role::Server);
    ws.limits = Limits {
        max_frame: args.max_frame.unwrap_or(args.max_message),
        max_message: args.max_message,
        max_fragments: args.max_fragments,
    };
    ws.queue_len = args.queue;
    ws.ping_interval = (args.ping_interval > 0).then(|| secs(args.ping_interval));
    ws.pong_timeout = secs(args.pong_timeout);
    ws.close_timeout = secs(args.close_timeout);
    ws.write_timeout = (args.write_timeout > 0).then(|| secs(args.write_timeout));
    let mut config = ServerConfig::new(ws);
    config.head = HeadLimits {
        max_head: args.max_head,
        max_headers: args.max_headers,
    };
    config.head_timeout = secs(args.head_timeout);
    config.max_connections = args.max_connections;
    config.max_per_ip = args.max_per_ip;
    config.trusted_proxies = args.trust_proxy.clone();
    config
}

pub fn chat_config(args: &ServeArgs) -> ChatConfig {
    ChatConfig {
        text: TextLimits {
            max_text: args.max_text,
            ..TextLimits::default()
        },
        rate: args.rate,
        burst: args.burst,
        deflate: args.deflate.threshold(),
        origins: OriginPolicy {
            any: args.allow_origin.iter().any(|o| o == "*"),
            allowed: args
                .allow_origin
                .iter()
                .filter(|o| *o != "*")
                .cloned()
                .collect(),
        },
        ..ChatConfig::default()
    }
}

/// The hub's settings the flags describe.
pub fn hub_config(args: &ServeArgs, limits: TextLimits) -> HubConfig {
    HubConfig {
        limits,
        history: args.history,
        max_rooms: args.max_rooms,
        rooms_per_connection: args.rooms_per_connection,
        session_grace: Duration::from_secs(args.session_grace),
    }
}

/// Start a chat server with these settings; `chat` may adjust the chat
/// configuration (tests use it for hooks).
pub fn start(args: &ServeArgs, chat: ChatConfig) -> std::io::Result<Running> {
    let (store, reloaded) = match &args.history_file {
        Some(path) => {
            let (store, reloaded) = FileStore::open(path, args.fsync, args.history, args.max_rooms)
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("history file {}: {e}", path.display()))
                })?;
            (Box::new(store) as Box<dyn HistoryStore>, reloaded)
        }
        None => (
            Box::new(MemoryStore) as Box<dyn HistoryStore>,
            Reloaded::default(),
        ),
    };
    let listener = listen(&args.addr)?;
    let addr = listener.local_addr()?;
    let url = page_url(&args.addr, addr);
    let www = args.www.clone().unwrap_or_else(default_www);
    let files = StaticFiles::new(&www);
    let www = files.root().map(PathBuf::from);
    let (events, receiver) = crossbeam_channel::bounded(16 * 1024);
    let mut hub = Hub::new(store, reloaded, hub_config(args, chat.text))?;
    let mut health = None;
    if let Some(url) = &args.redis {
        let node = args
            .node
            .clone()
            .unwrap_or_else(crate::chat::bus::default_node_name);
        let timeout = Duration::from_secs(args.node_timeout);
        let id = crate::chat::bus::batch::NodeId {
            name: node.clone(),
            timeout,
        };
        let bus = crate::chat::bus::Bus::start(url, args.history, id, events.clone())?;
        log::info!(
            "node {node} of the cluster at {}",
            crate::chat::bus::health::redacted(url)
        );
        health = Some(bus.health());
        hub = hub.with_bus(bus, node, timeout, crate::chat::bus::first_user_id())?;
    }
    let hub = std::thread::Builder::new()
        .name("hub".into())
        .spawn(move || hub.run(receiver))?;
    let config = server_config(args);
    let close_timeout = config.ws.close_timeout;
    let mut app = Chat::new(chat, files, events.clone());
    if let Some(health) = health {
        app = app.with_health(health);
    }
    let app = Arc::new(app);
    let server = Server::new(listener, config, app);
    let stopper = server.stopper();
    let connections = server.connections();
    let metrics = match &args.metrics_addr {
        Some(addr) => Some(MetricsServer::start(
            listen(addr)?,
            Arc::clone(&connections),
        )?),
        None => None,
    };
    let accept = std::thread::Builder::new()
        .name("accept".into())
        .spawn(move || server.run())?;
    Ok(Running {
        addr,
        url,
        www,
        events,
        stopper,
        accept: Some(accept),
        hub: Some(hub),
        connections,
        close_timeout,
        metrics,
    })
}

impl Running {
    /// Stop accepting, close every client with 1001, sync the history, and
    /// wait (bounded) for the closing handshakes to finish.
    pub fn shutdown(mut self) {
        if let Some(metrics) = self.metrics.take() {
            metrics.stop();
        }
        self.stopper.stop();
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let _ = self.events.send(HubEvent::Shutdown);
        if let Some(hub) = self.hub.take() {
            let _ = hub.join();
        }
        let deadline = Instant::now() + self.close_timeout + Duration::from_secs(1);
        while self.connections.open() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://ADDR/metrics`, when `--metrics-addr` is given.
    pub fn metrics_url(&self) -> Option<String> {
        self.metrics.as_ref().map(MetricsServer::url)
    }

    pub fn open_connections(&self) -> usize {
        self.connections.open()
    }
}
