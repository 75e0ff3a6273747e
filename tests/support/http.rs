//! Sockets with deadlines, and HTTP requests and answers read raw.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::wire::header;

/// Default bound on a single wait (a read, a handshake).
pub const WAIT: Duration = Duration::from_secs(5);

/// A TCP connection with read and write timeouts.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    let _ = stream.set_nodelay(true);
    timed(stream, WAIT)
}

/// `stream` with read and write timeouts of `timeout`.
pub fn timed(stream: TcpStream, timeout: Duration) -> TcpStream {
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    stream
}

/// Accept one connection (with [`WAIT`] timeouts), or panic after `timeout`:
/// a test whose client never arrives must not leave a thread blocked in
/// `accept`.
pub fn accept_one(listener: &TcpListener, timeout: Duration) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return timed(stream, timeout);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no connection arrived");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// The peer has closed TCP: the next read returns 0 (a FIN, not a reset
/// and not more data) within the socket's read timeout.
pub fn expect_fin(stream: &mut TcpStream) {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => {}
        Ok(_) => panic!("expected EOF, got data: {byte:?}"),
        Err(e) => panic!("expected EOF, got {e}"),
    }
}

/// What the server answered to a request.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
    /// The server closed the connection after answering (seen EOF/reset).
    pub closed: bool,
    /// It closed it with a FIN, not a reset.
    pub eof: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.head, name)
    }

    /// The status line.
    pub fn status_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }

    pub fn summary(&self) -> String {
        format!("{} | {}", self.status_line(), self.body.trim())
    }
}

/// Read an HTTP head (request or response) up to its blank line before
/// `deadline`; returns it and whatever came after it.
pub fn read_head(stream: &mut TcpStream, deadline: Instant) -> Result<(String, Vec<u8>), End> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        assert!(buf.len() < 16 * 1024, "head too long");
        let n = read_some(stream, &mut chunk, deadline)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

pub fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Send `request`, read the answer. For anything but 101 the body is read
/// and the server is expected to close the connection (bounded wait).
pub fn http(addr: SocketAddr, request: &[u8]) -> Response {
    let mut stream = tcp(addr);
    let _ = stream.write_all(request);
    read_response(&mut stream)
}

pub fn read_response(stream: &mut TcpStream) -> Response {
    let (head, rest) = match read_head(stream, Instant::now() + WAIT) {
        Ok(ok) => ok,
        Err(e) => panic!("no response head: {e:?}"),
    };
    if status_of(&head) == 101 {
        return Response {
            status: 101,
            head,
            body: String::new(),
            closed: false,
            eof: false,
        };
    }
    read_response_rest(stream, head, rest)
}

/// The rest of an answer after its head: everything up to the server's
/// end of TCP (bounded wait).
pub fn read_response_rest(stream: &mut TcpStream, head: String, mut rest: Vec<u8>) -> Response {
    let deadline = Instant::now() + WAIT;
    let mut chunk = [0u8; 4096];
    let end = loop {
        match read_some(stream, &mut chunk, deadline) {
            Ok(n) => rest.extend_from_slice(&chunk[..n]),
            Err(end) => break end,
        }
    };
    Response {
        status: status_of(&head),
        head,
        body: String::from_utf8_lossy(&rest).into_owned(),
        closed: matches!(end, End::Eof | End::Reset(_)),
        eof: matches!(end, End::Eof),
    }
}

/// How reading ended.
#[derive(Debug)]
pub enum End {
    Eof,
    Timeout,
    /// Any other I/O error (ECONNRESET, mostly).
    Reset(io::Error),
    /// A Close frame (code, reason); only from the chat-level readers.
    Closed(u16, String),
}

pub fn read_some(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Result<usize, End> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(End::Timeout);
        }
        stream.set_read_timeout(Some(left)).map_err(End::Reset)?;
        match stream.read(buf) {
            Ok(0) => return Err(End::Eof),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(End::Timeout);
            }
            Err(e) => return Err(End::Reset(e)),
        }
    }
}
