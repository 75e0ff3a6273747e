//! The accept loop: one blocking `TcpListener`, one thread per connection.
//!
//! The connection caps are enforced as a connection is accepted: one beyond
//! them is answered `503` by a single refuser thread shared by all such
//! connections, so that connections over the caps cost no thread each (else
//! the caps would not bound the thread count). An accepted connection's
//! thread reads the request head (bounded in size and time), then either
//! answers a plain HTTP request through the [`App`] or completes the
//! WebSocket handshake and becomes the connection's reader. What the
//! connection means — echo, chat — is the [`App`]'s business.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::{self, HeadError, HeadLimits, HttpError, Request};
use crate::ws::conn;
use crate::ws::extension::{Extension, Negotiated};
use crate::ws::handshake::{self, Upgrade};
use crate::ws::{Config, Reader, Sender};

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

    /// Accept or refuse an upgrade (path, origin) before the 101 is sent,
    /// and choose at most one of the extensions offered
    /// ([`Upgrade::extensions`], §9.1): `Ok(Some(_))` names it in the 101
    /// and runs it in the connection's decoder; `Ok(None)` accepts none.
    fn check_upgrade(&self, upgrade: &Upgrade) -> Result<Option<Negotiated>, HttpError>;

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
    /// An IPv6 client is counted by its /64 (see [`cap_key`]).
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
            max_per_ip: 64,
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
        let ip = cap_key(ip);
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

/// What the per-IP cap counts a peer as: its IPv4 address (also when it
/// arrives IPv4-mapped on an IPv6 socket), or the /64 of its IPv6 address.
/// One IPv6 host is usually given a whole /64 and can connect from any
/// address in it, so counting single IPv6 addresses would not cap it at all.
pub fn cap_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::from(u64::MAX)))),
        },
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
            let peer = match stream.peer_addr() {
                Ok(peer) => peer,
                Err(_) => continue,
            };
            let slot = match self.count.acquire(peer.ip(), &self.config) {
                Ok(slot) => slot,
                Err(refusal) => {
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

/// Logs the connections refused at the caps at `info`, but at most one
/// line a second, counting the rest: a flood of connections over the caps
/// must not turn into a flood of log lines written by the accept loop.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    fn log(&mut self, peer: SocketAddr, refusal: &HttpError) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now < last + Duration::from_secs(1))
        {
            self.unlogged += 1;
            log::debug!("{peer}: refused: {refusal}");
            return;
        }
        match std::mem::take(&mut self.unlogged) {
            0 => log::info!("{peer}: refused: {refusal}"),
            more => log::info!(
                "{peer}: refused: {refusal} (and {more} more at the connection caps since the last such line)"
            ),
        }
        self.last = Some(now);
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
fn handle(stream: TcpStream, peer: SocketAddr, config: &ServerConfig, app: &dyn App, slot: Slot) {
    let Some((stream, leftover, extension)) = answer_request(stream, peer, config, app) else {
        return;
    };
    match conn::start(stream, &leftover, config.ws.clone(), extension) {
        Ok((reader, sender)) => app.websocket(reader, sender, peer),
        Err(e) => log::warn!("{peer}: cannot start connection: {e}"),
    }
    drop(slot);
}

/// An upgraded stream, the bytes read past its head, and the extension
/// negotiated for it.
type Upgraded = (TcpStream, Vec<u8>, Option<Box<dyn Extension>>);

/// Read the request and answer it: a plain HTTP response or a refusal (then
/// `None`), or `101 Switching Protocols`, returning the stream, the bytes
/// read past the head and the negotiated extension.
///
/// Not inlined: its frame (head, parsed request, SHA-1 of the key) is gone
/// before the connection starts, so it does not add to the deepest point of
/// the reader's stack, whose pages stay resident for the connection's life.
#[inline(never)]
fn answer_request(
    mut stream: TcpStream,
    peer: SocketAddr,
    config: &ServerConfig,
    app: &dyn App,
) -> Option<Upgraded> {
    let deadline = Instant::now() + config.head_timeout;
    let (head, leftover) = match http::read_head(&mut stream, &config.head, deadline) {
        Ok(head) => head,
        Err(HeadError::Http(e)) => return refuse(&mut stream, peer, None, &e),
        Err(HeadError::Timeout) => {
            return refuse(&mut stream, peer, None, &HttpError::RequestTimeout);
        }
        Err(HeadError::Eof | HeadError::Io(_)) => return None,
    };
    let request = match Request::parse(&head, &config.head) {
        Ok(request) => request,
        Err(e) => return refuse(&mut stream, peer, None, &e),
    };
    drop(head);
    if !request.wants_websocket() {
        let response = app.http(&request).unwrap_or_else(|e| e.response());
        if log::log_enabled!(log::Level::Debug) {
            let status = response.split(|&b| b == b'\r').next().unwrap_or_default();
            log::debug!(
                "{peer}: {} {} -> {}",
                request.method,
                request.path,
                String::from_utf8_lossy(status)
            );
        }
        let _ = stream.set_write_timeout(Some(config.head_timeout));
        let _ = stream.write_all(&response);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        drain_briefly(&mut stream);
        return None;
    }
    let (upgrade, negotiated) = match handshake::check_upgrade(&request)
        .and_then(|u| app.check_upgrade(&u).map(|n| (u, n)))
    {
        Ok(accepted) => accepted,
        Err(e) => return refuse(&mut stream, peer, Some(&request), &e),
    };
    debug_assert!(
        negotiated.as_ref().is_none_or(|n| upgrade
            .extensions
            .iter()
            .any(|offer| offer.is(&n.response.name))),
        "the App accepted an extension the client did not offer"
    );
    let (response, extension) = match negotiated {
        Some(Negotiated {
            response,
            extension,
        }) => (Some(response), Some(extension)),
        None => (None, None),
    };
    log::debug!(
        "{peer}: WebSocket upgrade {} {} (origin {}) -> 101 Switching Protocols",
        request.method,
        request.path,
        upgrade.origin.as_deref().unwrap_or("none")
    );
    let _ = stream.set_write_timeout(Some(config.head_timeout));
    if stream
        .write_all(&handshake::accept_response(&upgrade, response.as_ref()))
        .is_err()
    {
        return None;
    }
    let _ = stream.set_read_timeout(None);
    Some((stream, leftover, extension))
}

/// Answers connections refused at the caps, without waiting for their
/// request, on one thread for all of them. Each answered connection is
/// kept for a moment (draining what the client sends, so that closing does
/// not turn into a reset that destroys the answer), up to a bound; beyond
/// it the oldest are closed early, and when even the hand-over queue is
/// full a connection is closed unanswered. Either way a flood of refused
/// connections costs a bounded number of sockets and no threads.
struct Refuser {
    queue: Option<crossbeam_channel::Sender<(TcpStream, HttpError)>>,
}

/// Refused connections held at once, answered and draining.
const REFUSED_HELD: usize = 1024;
/// How long a refused connection is drained before it is closed.
const REFUSED_LINGER: Duration = Duration::from_millis(500);
/// How often held connections are drained.
const REFUSER_TICK: Duration = Duration::from_millis(20);

impl Refuser {
    fn start() -> Refuser {
        let (queue, incoming) = crossbeam_channel::bounded(REFUSED_HELD);
        let started = std::thread::Builder::new()
            .name("refuser".into())
            .stack_size(64 * 1024)
            .spawn(move || refuser_run(&incoming));
        match started {
            Ok(_) => Refuser { queue: Some(queue) },
            Err(e) => {
                log::warn!(
                    "cannot start the refuser thread ({e}); refused connections are closed unanswered"
                );
                Refuser { queue: None }
            }
        }
    }

    fn refuse(&self, stream: TcpStream, refusal: HttpError) {
        if let Some(queue) = &self.queue {
            // Full: dropped, closing it unanswered.
            let _ = queue.try_send((stream, refusal));
        }
    }
}

fn refuser_run(incoming: &crossbeam_channel::Receiver<(TcpStream, HttpError)>) {
    let mut held: VecDeque<(TcpStream, Instant)> = VecDeque::new();
    let mut scratch = [0u8; 1024];
    loop {
        let first = if held.is_empty() {
            match incoming.recv() {
                Ok(refused) => Some(refused),
                Err(_) => return, // the server is gone, and nothing is held
            }
        } else {
            match incoming.recv_timeout(REFUSER_TICK) {
                Ok(refused) => Some(refused),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(REFUSER_TICK);
                    None
                }
            }
        };
        for (mut stream, refusal) in first.into_iter().chain(incoming.try_iter()) {
            // A fresh socket's send buffer takes the short answer whole.
            if stream.set_nonblocking(true).is_ok() {
                let _ = stream.write(&refusal.response());
                let _ = stream.shutdown(std::net::Shutdown::Write);
            }
            if held.len() == REFUSED_HELD {
                held.pop_front();
            }
            held.push_back((stream, Instant::now() + REFUSED_LINGER));
        }
        let now = Instant::now();
        held.retain_mut(|(stream, until)| now < *until && drain_nonblocking(stream, &mut scratch));
    }
}

/// Read what a non-blocking socket has (a bounded amount); `false` once the
/// peer has closed it.
fn drain_nonblocking(stream: &mut TcpStream, scratch: &mut [u8]) -> bool {
    for _ in 0..16 {
        match stream.read(scratch) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Answer with `error`'s status, and log why at `info`; the connection ends
/// here. `request` is the parsed head, when it got that far.
fn refuse<T>(
    stream: &mut TcpStream,
    peer: SocketAddr,
    request: Option<&Request>,
    error: &HttpError,
) -> Option<T> {
    match request {
        Some(request) => log::info!(
            "{peer}: refused {} {} (origin {}): {error}",
            request.method,
            request.path,
            request.text("origin").unwrap_or("none")
        ),
        None => log::info!("{peer}: refused: {error}"),
    }
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = stream.write_all(&error.response());
    let _ = stream.shutdown(std::net::Shutdown::Write);
    drain_briefly(stream);
    None
}

/// Read what the client still sends for a moment before closing, so that
/// unread input does not turn our close into a reset that destroys the
/// response before the client reads it.
fn drain_briefly(stream: &mut TcpStream) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn cap_key_counts_ipv4_by_address_and_ipv6_by_slash_64() {
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        assert_eq!(cap_key(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(cap_key(mapped), v4);
        let a: IpAddr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(cap_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_eq!(cap_key(a), cap_key(b));
        assert_ne!(cap_key(a), cap_key(other));
    }

    #[test]
    fn one_ipv6_slash_64_shares_one_per_ip_cap() {
        let mut config = ServerConfig::new(Config::new(crate::ws::Role::Server));
        config.max_per_ip = 2;
        let count = Arc::new(ConnectionCount::default());
        let a = count
            .acquire("2001:db8::1".parse().unwrap(), &config)
            .unwrap();
        let b = count
            .acquire("2001:db8::2".parse().unwrap(), &config)
            .unwrap();
        assert!(
            count
                .acquire("2001:db8::3".parse().unwrap(), &config)
                .is_err()
        );
        assert!(
            count
                .acquire("2001:db8:0:1::3".parse().unwrap(), &config)
                .is_ok()
        );
        drop((a, b));
        assert!(
            count
                .acquire("2001:db8::3".parse().unwrap(), &config)
                .is_ok()
        );
        assert_eq!(count.open(), 0);
    }
}
