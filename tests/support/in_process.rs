//! [`InProcessServer`]: the library's `Server` on a thread of the test,
//! with any `Config` and any `App`, for what the `wschat` binary's flags
//! cannot set up (a test `App`, a short close timeout, fast pings).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use wschat::server::{App, ConnectionCount, Server, ServerConfig, Stopper};
use wschat::ws::{Config, Limits, Role};

/// How long [`InProcessServer::wait_idle`] waits.
const IDLE_WAIT: Duration = Duration::from_secs(10);

/// Our server on 127.0.0.1, port 0, stopped and joined when dropped.
pub struct InProcessServer {
    pub addr: SocketAddr,
    stopper: Stopper,
    connections: Arc<ConnectionCount>,
    thread: Option<JoinHandle<()>>,
}

impl InProcessServer {
    pub fn start(ws: Config, app: Arc<dyn App>) -> InProcessServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = Server::new(listener, ServerConfig::new(ws), app);
        let addr = server.local_addr().unwrap();
        let stopper = server.stopper();
        let connections = server.connections();
        let thread = thread::spawn(move || server.run());
        InProcessServer {
            addr,
            stopper,
            connections,
            thread: Some(thread),
        }
    }

    /// The echo server as `wschat echo` runs it: large limits.
    pub fn echo() -> InProcessServer {
        InProcessServer::echo_with(wschat::echo::ws_config())
    }

    /// The echo `App` with `config`.
    pub fn echo_with(config: Config) -> InProcessServer {
        InProcessServer::start(config, Arc::new(wschat::echo::Echo::default()))
    }

    /// Wait until every connection thread of the server has finished: each
    /// one holds a slot of the connection count until it returns. A
    /// connection that is never closed fails the test here.
    pub fn wait_idle(&self) {
        let deadline = Instant::now() + IDLE_WAIT;
        while self.connections.open() > 0 {
            assert!(
                Instant::now() < deadline,
                "{} server connection(s) still open",
                self.connections.open()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        self.stopper.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A `Config` for `role` with `limits`.
pub fn config_with(role: Role, limits: Limits) -> Config {
    let mut config = Config::new(role);
    config.limits = limits;
    config
}

/// A `Config` with `Limits::LARGE`, as `wschat echo` has.
pub fn large_config(role: Role) -> Config {
    config_with(role, Limits::LARGE)
}
