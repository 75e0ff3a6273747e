//! [`Ws`]: a raw WebSocket peer over a `TcpStream`, which can send any
//! bytes at all (that is the point) and reads frames by hand; and
//! [`expect_failure`], which commits a protocol violation on a fresh
//! connection and checks how the server fails it.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{End, Response, WAIT, read_head, read_response_rest, read_some, status_of, tcp};
use super::wire::{
    ACCEPT, BINARY, CLOSE, Frame, PING, PONG, TEXT, close_payload, frame, header, hex, parse_frame,
    upgrade_request,
};

/// A raw WebSocket connection: a client after [`Ws::connect`], or the
/// server side of an accepted socket after [`Ws::accepted`].
pub struct Ws {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// Where unread bytes start in `buf`.
    pos: usize,
}

impl Ws {
    /// Connect and complete a valid handshake; panics otherwise.
    pub fn connect(addr: SocketAddr) -> Ws {
        match Ws::handshake(addr, &upgrade_request(addr)) {
            Ok(ws) => ws,
            Err(r) => panic!("handshake refused: {}", r.summary()),
        }
    }

    /// Send `request` (and anything appended to it); a 101 gives a [`Ws`].
    pub fn handshake(addr: SocketAddr, request: &[u8]) -> Result<Ws, Response> {
        let mut stream = tcp(addr);
        stream.write_all(request).expect("write request");
        Ws::after_request(stream)
    }

    /// Read the answer to a request already sent: a 101 (with the accept
    /// value of [`super::KEY`], as every request here sends that key) gives
    /// a [`Ws`] that keeps whatever came after the head.
    pub fn after_request(mut stream: TcpStream) -> Result<Ws, Response> {
        let (head_text, rest) = match read_head(&mut stream, Instant::now() + WAIT) {
            Ok(ok) => ok,
            Err(e) => panic!("no handshake response: {e:?}"),
        };
        if status_of(&head_text) != 101 {
            return Err(read_response_rest(&mut stream, head_text, rest));
        }
        assert!(head_text.starts_with("HTTP/1.1 101 "), "{head_text}");
        assert_eq!(
            header(&head_text, "Sec-WebSocket-Accept"),
            Some(ACCEPT),
            "unexpected accept: {head_text}"
        );
        Ok(Ws::with_buffered(stream, rest))
    }

    /// The server side of an accepted connection, before its request head.
    pub fn accepted(stream: TcpStream) -> Ws {
        Ws::with_buffered(stream, Vec::new())
    }

    fn with_buffered(stream: TcpStream, buf: Vec<u8>) -> Ws {
        Ws {
            stream,
            buf,
            pos: 0,
        }
    }

    /// On the server side: the client's request head. Bytes after it stay
    /// buffered for [`Ws::read_frame`].
    pub fn read_request_head(&mut self) -> String {
        assert!(self.buf.is_empty(), "bytes before the request head");
        let (head, rest) = read_head(&mut self.stream, Instant::now() + WAIT)
            .unwrap_or_else(|e| panic!("no request head: {e:?}"));
        self.buf = rest;
        head
    }

    /// A second handle on the socket (for a writer thread).
    pub fn writer(&self) -> TcpStream {
        self.stream.try_clone().expect("clone socket")
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.stream.write_all(&frame(fin, opcode, payload))
    }

    pub fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.send(true, TEXT, text.as_bytes())
    }

    /// The next frame, whatever it is.
    pub fn read_frame(&mut self, timeout: Duration) -> Result<Frame, End> {
        let deadline = Instant::now() + timeout;
        let mut chunk = Vec::new();
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf[self.pos..]) {
                self.pos += used;
                if self.pos == self.buf.len() {
                    self.buf.clear();
                    self.pos = 0;
                }
                return Ok(frame);
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            if chunk.is_empty() {
                chunk = vec![0u8; 64 * 1024];
            }
            let n = read_some(&mut self.stream, &mut chunk, deadline)?;
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next frame, which must be a server's (unmasked, RSV bits 0);
    /// panics on EOF or timeout.
    pub fn read_server_frame(&mut self, timeout: Duration) -> Frame {
        self.read_checked(timeout, false)
    }

    /// The next frame, which must be a client's (masked, RSV bits 0);
    /// panics on EOF or timeout.
    pub fn read_client_frame(&mut self, timeout: Duration) -> Frame {
        self.read_checked(timeout, true)
    }

    fn read_checked(&mut self, timeout: Duration, masked: bool) -> Frame {
        let f = self
            .read_frame(timeout)
            .unwrap_or_else(|e| panic!("expected a frame, got {e:?}"));
        let whose = if masked { "client" } else { "server" };
        assert_eq!(f.masked, masked, "{whose} frame masked: {}", f.masked);
        assert_eq!(f.rsv, 0, "reserved bits set");
        f
    }

    /// Skip data and ping frames until a Close; returns its code and
    /// reason, and how many frames were skipped. Panics on EOF or timeout.
    pub fn expect_close(&mut self, timeout: Duration) -> (u16, String, usize) {
        let deadline = Instant::now() + timeout;
        let mut skipped = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame(left) {
                Ok(f) if f.opcode == CLOSE => {
                    assert!(!f.masked, "the server masked a frame");
                    let (code, reason) = f.close();
                    return (code, reason, skipped);
                }
                Ok(_) => skipped += 1,
                Err(e) => panic!("expected a Close frame, got {e:?} after {skipped} frames"),
            }
        }
    }

    /// The peer has closed TCP with a FIN, and sent nothing before it that
    /// was not read: no reset, no more data, within `timeout`. Returns how
    /// long it took.
    pub fn expect_fin(&mut self, timeout: Duration) -> Duration {
        let start = Instant::now();
        let unread = &self.buf[self.pos..];
        assert!(unread.is_empty(), "expected EOF, got data: {}", hex(unread));
        let mut byte = [0u8; 1];
        match read_some(&mut self.stream, &mut byte, start + timeout) {
            Err(End::Eof) => start.elapsed(),
            Ok(_) => panic!("expected EOF, got data: {byte:?}"),
            Err(e) => panic!("expected EOF, got {e:?}"),
        }
    }

    /// Read and discard until the server ends TCP (EOF or reset); returns
    /// how long it took. Panics if it does not happen within `timeout`.
    pub fn expect_eof(&mut self, timeout: Duration) -> Duration {
        match self.wait_eof(timeout) {
            Ok(t) => t,
            Err(frames) => panic!(
                "the server did not close TCP within {timeout:?} ({frames} frames read meanwhile)"
            ),
        }
    }

    /// Like [`Ws::expect_eof`], but `Err(frames read)` on timeout.
    pub fn wait_eof(&mut self, timeout: Duration) -> Result<Duration, usize> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut frames = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame(left) {
                Ok(_) => frames += 1,
                Err(End::Eof | End::Reset(_)) => return Ok(start.elapsed()),
                Err(End::Timeout) => return Err(frames),
                Err(End::Closed(..)) => unreachable!(),
            }
        }
    }

    /// The next text frame as JSON, answering pings on the way; a Close
    /// frame ends with `End::Closed`.
    pub fn recv_json(&mut self, timeout: Duration) -> Result<Value, End> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let f = self.read_frame(left)?;
            match f.opcode {
                TEXT => {
                    return Ok(serde_json::from_slice(&f.payload)
                        .unwrap_or_else(|e| panic!("server sent bad JSON ({e}): {}", f.text())));
                }
                PING => {
                    let _ = self.send(true, PONG, &f.payload);
                }
                CLOSE => {
                    let (code, reason) = f.close();
                    return Err(End::Closed(code, reason));
                }
                _ => {}
            }
        }
    }

    /// The closing handshake from our side, bounded; ignores failures.
    pub fn close(mut self) {
        let _ = self.send(true, CLOSE, &close_payload(1000, b"bye"));
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame(left) {
                Ok(f) if f.opcode == CLOSE => break,
                Ok(_) => {}
                Err(_) => return,
            }
        }
        let _ = self.wait_eof(WAIT);
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// On a fresh connection to `addr`, send `bytes` after the handshake and
/// expect the server to fail the connection (RFC 6455 §7.1.7): a
/// well-formed Close (FIN, unmasked, at most 125 bytes, a UTF-8 reason)
/// with `code` and a reason containing `reason_has`, then the end of TCP
/// (a FIN) within 3 s. Only answers to whole messages (data frames, Pongs)
/// may come before the Close; returns how many data frames did.
pub fn expect_failure(
    addr: SocketAddr,
    what: &str,
    bytes: &[u8],
    code: u16,
    reason_has: &str,
) -> usize {
    let mut ws = Ws::connect(addr);
    let sent = ws.send_raw(bytes);
    let mut data_frames = 0;
    let close = loop {
        let f = ws.read_server_frame(WAIT);
        match f.opcode {
            CLOSE => break f,
            TEXT | BINARY => data_frames += 1,
            PONG => {}
            other => panic!("{what}: opcode {other:#x} before the Close"),
        }
    };
    let eof = ws.expect_fin(Duration::from_secs(3));
    let (got, reason) = close.close();
    println!(
        "{what}: sent {} {}→ Close {got} {reason:?} ({data_frames} data frames before it), \
         TCP closed {eof:.1?} later",
        hex(bytes),
        if sent.is_err() { "(write failed) " } else { "" }
    );
    assert!(close.fin, "{what}: Close without FIN");
    assert!(
        close.payload.len() <= 125,
        "{what}: Close of {} bytes",
        close.payload.len()
    );
    assert_eq!(close.close_code(), code, "{what}: close reason {reason:?}");
    assert!(
        std::str::from_utf8(&close.payload[2..]).is_ok(),
        "{what}: reason not UTF-8"
    );
    assert!(reason.contains(reason_has), "{what}: reason {reason:?}");
    data_frames
}
