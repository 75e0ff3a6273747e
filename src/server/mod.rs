//! The accept loop: one blocking `TcpListener`, one thread per connection.
//!
//! The connection caps are enforced as a connection is accepted: one beyond
//! them is answered `503` by a single refuser thread shared by all such
//! connections, so that connections over the caps cost no thread each (else
//! the caps would not bound the thread count). A connection from a trusted
//! proxy (`--trust-proxy`) is counted in the total then, and under its
//! client's address once its request head names the client. An accepted
//! connection's thread reads the request head (bounded in size and time), then either
//! answers a plain HTTP request through the [`App`] or completes the
//! WebSocket handshake and becomes the connection's reader. What the
//! connection means — echo, chat — is the [`App`]'s business.
//!
//! The parts: the caps and their log ([`caps`]), the request's answer up to
//! the 101 ([`answer`]), the thread that answers connections refused
//! at the caps ([`refuser`]), who the peer is ([`peer`]) and which proxies
//! are trusted to say so ([`cidr`]).

mod answer;
mod caps;
mod cidr;
mod peer;
mod refuser;

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::http::{HeadLimits, HttpError, Request};
use crate::ws::conn;
use crate::ws::extension::Negotiated;
use crate::ws::handshake::Upgrade;
use crate::ws::{Config, Reader, Sender};

use answer::answer_request;
use caps::RefusalLog;
pub use caps::{ConnectionCount, Slot, TOO_MANY_FROM_IP, cap_key};
pub use cidr::Cidr;
pub use peer::Peer;
use refuser::Refuser;

/// Pending connections the kernel holds for `accept`. std listens with 128,
/// which a burst of connects (a page reload on a busy room, a load test)
/// overflows: the kernel then drops SYNs and the clients retry after a
/// second or more. The kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Listen on `addr` with a backlog of [`LISTEN_BACKLOG`].
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // As std does: a restarted server can take its port back at once,
    // without waiting for the old connections' TIME_WAIT to pass.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// What a server does with its connections.
pub trait App: Send + Sync + 'static {
    /// Answer a request that is not a WebSocket upgrade.
    fn http(&self, request: &Request) -> Result<Vec<u8>, HttpError>;

    /// Accept or refuse an upgrade from `peer` (path, origin) before the
    /// 101 is sent, and choose at most one of the extensions offered
    /// ([`Upgrade::extensions`], §9.1): `Ok(Some(_))` names it in the 101
    /// and runs it in the connection's decoder; `Ok(None)` accepts none.
    fn check_upgrade(
        &self,
        upgrade: &Upgrade,
        peer: &Peer,
    ) -> Result<Option<Negotiated>, HttpError>;

    /// Run an accepted WebSocket on its own thread, until it ends. `path`
    /// is its upgrade's request target (path and query, §4.1: the resource
    /// asked for), as [`App::check_upgrade`] saw it.
    fn websocket(&self, reader: Reader, sender: Sender, peer: Peer, path: String);
}

/// Limits applied before a connection is handed to the [`App`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub head: HeadLimits,
    /// The whole request head must arrive within this time (slowloris).
    pub head_timeout: Duration,
    /// Open connections beyond this get `503`; 0 means no limit.
    pub max_connections: usize,
    /// Open connections from one IP address beyond this get `503`; 0: none.
    /// An IPv6 client is counted by its /64 (see [`cap_key`]).
    pub max_per_ip: usize,
    /// Peers whose forwarding headers name the client (`--trust-proxy`);
    /// anyone else's are ignored.
    pub trusted_proxies: Vec<Cidr>,
    /// Stack size of each connection's reader thread.
    pub reader_stack: usize,
    /// Settings of each WebSocket connection.
    pub ws: Config,
}

impl ServerConfig {
    pub fn new(ws: Config) -> ServerConfig {
        ServerConfig {
            head: HeadLimits::default(),
            head_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_per_ip: 64,
            trusted_proxies: Vec::new(),
            reader_stack: 128 * 1024,
            ws,
        }
    }

    /// Is `ip` a proxy whose forwarding headers we believe?
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|range| range.contains(ip))
    }
}

/// A running accept loop.
pub struct Server {
    listener: TcpListener,
    config: Arc<ServerConfig>,
    app: Arc<dyn App>,
    count: Arc<ConnectionCount>,
    stopping: Arc<AtomicBool>,
    refuser: Refuser,
}

impl Server {
    pub fn new(listener: TcpListener, config: ServerConfig, app: Arc<dyn App>) -> Server {
        Server {
            listener,
            config: Arc::new(config),
            app,
            count: Arc::default(),
            stopping: Arc::default(),
            refuser: Refuser::start(),
        }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle that makes [`Server::run`] return.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            stopping: Arc::clone(&self.stopping),
            addr: self.listener.local_addr().ok(),
        }
    }

    pub fn connections(&self) -> Arc<ConnectionCount> {
        Arc::clone(&self.count)
    }

    /// Accept until stopped. Each connection runs on its own thread.
    pub fn run(&self) {
        let mut refusals = RefusalLog::default();
        for stream in self.listener.incoming() {
            if self.stopping.load(Ordering::Acquire) {
                break;
            }
            let stream = match stream {
                Ok(stream) => stream,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    log::warn!("accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            crate::metrics::get().accepted();
            let peer = match stream.peer_addr() {
                Ok(peer) => peer,
                Err(_) => continue,
            };
            // A trusted proxy's connections are counted under their
            // client's address once the request head names it.
            let per_ip = (!self.config.trusts(peer.ip())).then_some(peer.ip());
            let slot = match self.count.acquire(per_ip, &self.config) {
                Ok(slot) => slot,
                Err(refusal) => {
                    crate::metrics::get().refused(&refusal);
                    refusals.log(peer, &refusal);
                    self.refuser.refuse(stream, refusal);
                    continue;
                }
            };
            let config = Arc::clone(&self.config);
            let app = Arc::clone(&self.app);
            let spawned = std::thread::Builder::new()
                .name("ws-reader".into())
                .stack_size(config.reader_stack)
                .spawn(move || handle(stream, peer, &config, app.as_ref(), slot));
            if let Err(e) = spawned {
                log::warn!("cannot start a thread for {peer}: {e}");
            }
        }
    }
}

/// Stops a [`Server`] from another thread.
#[derive(Clone)]
pub struct Stopper {
    stopping: Arc<AtomicBool>,
    addr: Option<SocketAddr>,
}

impl Stopper {
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        // Wake the blocking accept with a connection of our own.
        if let Some(addr) = self.addr {
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
    }
}

/// One accepted connection, on its own thread; `slot` is released when it
/// ends, however it ends.
fn handle(
    stream: TcpStream,
    socket: SocketAddr,
    config: &ServerConfig,
    app: &dyn App,
    mut slot: Slot,
) {
    let Some(upgraded) = answer_request(stream, socket, config, app, &mut slot) else {
        return;
    };
    let peer = upgraded.peer;
    match conn::start(
        upgraded.stream,
        &upgraded.leftover,
        config.ws.clone(),
        upgraded.extension,
    ) {
        Ok((reader, sender)) => app.websocket(reader, sender, peer, upgraded.path),
        Err(e) => log::warn!("{peer}: cannot start connection: {e}"),
    }
    drop(slot);
}
