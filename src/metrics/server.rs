//! `--metrics-addr`: a small HTTP listener of its own that answers
//! `GET /metrics` (and `HEAD`) with the scrape, anything else with 404
//! (or 405). One thread, a blocking `TcpListener`, one request per
//! connection, answered in turn: a scraper is one client every few seconds.
//! The request head is bounded in size and time, so a client that sends
//! nothing holds the thread for at most [`HEAD_TIMEOUT`], and the scrape
//! only reads atomics: nothing here waits on the hub or a connection.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::expose::{CONTENT_TYPE, render};
use crate::http::{self, HeadError, HeadLimits, HttpError, Request};
use crate::server::ConnectionCount;

/// The whole request head must arrive within this time.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// The path served.
pub const PATH: &str = "/metrics";

/// Heads larger than this are refused: a scrape's is a few hundred bytes.
const LIMITS: HeadLimits = HeadLimits {
    max_head: 4096,
    max_headers: 32,
};

/// The running metrics listener.
pub struct MetricsServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Serve the scrape on `listener`; `open` is the chat server's
    /// connection count.
    pub fn start(
        listener: TcpListener,
        open: Arc<ConnectionCount>,
    ) -> std::io::Result<MetricsServer> {
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stopping);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .stack_size(128 * 1024)
            .spawn(move || run(&listener, &open, &stop))?;
        Ok(MetricsServer {
            addr,
            stopping,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }

    /// Stop listening, and wait (bounded by [`HEAD_TIMEOUT`]) for the thread.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::Release);
        // Wake the blocking accept with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(listener: &TcpListener, open: &Arc<ConnectionCount>, stopping: &AtomicBool) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::Acquire) {
            return;
        }
        match stream {
            Ok(stream) => answer(stream, open),
            Err(e) => {
                log::warn!("metrics: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Read one request and answer it; the connection ends after it.
fn answer(mut stream: TcpStream, open: &Arc<ConnectionCount>) {
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let response = match http::read_head(&mut stream, &LIMITS, deadline) {
        Ok((head, _)) => match Request::parse(&head, &LIMITS) {
            Ok(request) => respond(&request, open),
            Err(e) => e.response(),
        },
        Err(HeadError::Http(e)) => e.response(),
        Err(HeadError::Timeout) => HttpError::RequestTimeout.response(),
        Err(HeadError::Eof | HeadError::Io(_)) => return,
    };
    let _ = stream.set_write_timeout(Some(HEAD_TIMEOUT));
    let _ = stream.write_all(&response);
    let _ = stream.shutdown(Shutdown::Write);
}

/// The response to a parsed request.
pub fn respond(request: &Request, open: &Arc<ConnectionCount>) -> Vec<u8> {
    let path = request.path.split('?').next().unwrap_or_default();
    if path != PATH {
        return HttpError::NotFound.response();
    }
    let head_only = match request.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => return HttpError::MethodNotAllowed.response(),
    };
    http::response(200, "OK", CONTENT_TYPE, render(open).as_bytes(), head_only)
}
