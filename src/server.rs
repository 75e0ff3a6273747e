//! The accept loop: one blocking `TcpListener`, one thread per connection.
//!
//! The connection thread reads the request head (bounded in size and time),
//! enforces the connection caps, then either answers a plain HTTP request
//! through the [`App`] or completes the WebSocket handshake and becomes the
//! connection's reader. What the connection means — echo, chat — is the
//! [`App`]'s business.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ws::conn::{self, HeadError};
use crate::ws::handshake::{self, HeadLimits, HttpError, Request, Upgrade};
use crate::ws::{Config, Reader, Sender};

/// What a server does with its connections.
pub trait App: Send + Sync + 'static {
    /// Answer a request that is not a WebSocket upgrade.
    fn http(&self, request: &Request) -> Result<Vec<u8>, HttpError>;

    /// Accept or refuse an upgrade (path, origin) before the 101 is sent.
    fn check_upgrade(&self, upgrade: &Upgrade) -> Result<(), HttpError>;

    /// Run an accepted WebSocket on its own thread, until it ends.
    fn websocket(&self, reader: Reader, sender: Sender, peer: SocketAddr);
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
    pub max_per_ip: usize,
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
            max_per_ip: 0,
            reader_stack: 128 * 1024,
            ws,
        }
    }
}

/// Counts open connections, in total and per address, and releases a slot
/// when its [`Slot`] is dropped, however the connection ends.
#[derive(Debug, Default)]
pub struct ConnectionCount {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

pub struct Slot {
    count: Arc<ConnectionCount>,
    ip: IpAddr,
}

impl ConnectionCount {
    /// Take a slot, or say which cap is full.
    fn acquire(self: &Arc<Self>, ip: IpAddr, config: &ServerConfig) -> Result<Slot, HttpError> {
        let total = self.total.fetch_add(1, Ordering::AcqRel) + 1;
        let slot = Slot {
            count: Arc::clone(self),
            ip,
        };
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let mine = per_ip.entry(ip).or_insert(0);
        *mine += 1;
        let mine = *mine;
        drop(per_ip);
        if config.max_connections > 0 && total > config.max_connections {
            return Err(HttpError::ServiceUnavailable("too many connections"));
        }
        if config.max_per_ip > 0 && mine > config.max_per_ip {
            return Err(HttpError::ServiceUnavailable(
                "too many connections from your address",
            ));
        }
        Ok(slot)
    }

    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.count.total.fetch_sub(1, Ordering::AcqRel);
        let mut per_ip = self.count.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// A running accept loop.
pub struct Server {
    listener: TcpListener,
    config: Arc<ServerConfig>,
    app: Arc<dyn App>,
    count: Arc<ConnectionCount>,
    stopping: Arc<AtomicBool>,
}

impl Server {
    pub fn new(listener: TcpListener, config: ServerConfig, app: Arc<dyn App>) -> Server {
        Server {
            listener,
            config: Arc::new(config),
            app,
            count: Arc::default(),
            stopping: Arc::default(),
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
            let peer = match stream.peer_addr() {
                Ok(peer) => peer,
                Err(_) => continue,
            };
            let config = Arc::clone(&self.config);
            let app = Arc::clone(&self.app);
            let count = Arc::clone(&self.count);
            let spawned = std::thread::Builder::new()
                .name("ws-reader".into())
                .stack_size(config.reader_stack)
                .spawn(move || handle(stream, peer, &config, app.as_ref(), &count));
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

fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    config: &ServerConfig,
    app: &dyn App,
    count: &Arc<ConnectionCount>,
) {
    let slot = match count.acquire(peer.ip(), config) {
        Ok(slot) => slot,
        Err(refusal) => {
            // Answer without waiting for the request: it costs us nothing.
            refuse(&mut stream, &refusal);
            return;
        }
    };
    let deadline = Instant::now() + config.head_timeout;
    let (head, leftover) = match conn::read_head(&mut stream, &config.head, deadline) {
        Ok(head) => head,
        Err(HeadError::Http(e)) => return refuse(&mut stream, &e),
        Err(HeadError::Timeout) => return refuse(&mut stream, &HttpError::RequestTimeout),
        Err(HeadError::Eof | HeadError::Io(_)) => return,
    };
    let request = match Request::parse(&head, &config.head) {
        Ok(request) => request,
        Err(e) => return refuse(&mut stream, &e),
    };
    drop(head);
    if !request.wants_websocket() {
        let response = app.http(&request).unwrap_or_else(|e| e.response());
        let _ = stream.set_write_timeout(Some(config.head_timeout));
        let _ = stream.write_all(&response);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        drain_briefly(&mut stream);
        return;
    }
    let upgrade =
        match handshake::check_upgrade(&request).and_then(|u| app.check_upgrade(&u).map(|()| u)) {
            Ok(upgrade) => upgrade,
            Err(e) => return refuse(&mut stream, &e),
        };
    let _ = stream.set_write_timeout(Some(config.head_timeout));
    if stream
        .write_all(&handshake::accept_response(&upgrade))
        .is_err()
    {
        return;
    }
    // Only what the connection needs stays alive for its lifetime.
    drop(request);
    let _ = stream.set_read_timeout(None);
    match conn::start(stream, &leftover, config.ws.clone()) {
        Ok((reader, sender)) => app.websocket(reader, sender, peer),
        Err(e) => log::warn!("{peer}: cannot start connection: {e}"),
    }
    drop(slot);
}

/// Answer with an error status and close.
fn refuse(stream: &mut TcpStream, error: &HttpError) {
    log::debug!("refused: {error}");
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = stream.write_all(&error.response());
    let _ = stream.shutdown(std::net::Shutdown::Write);
    drain_briefly(stream);
}

/// Read what the client still sends for a moment before closing, so that
/// unread input does not turn our close into a reset that destroys the
/// response before the client reads it.
fn drain_briefly(stream: &mut TcpStream) {
    use std::io::Read;
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut scratch = [0u8; 1024];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}
