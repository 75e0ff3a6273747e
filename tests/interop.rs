//! Interoperability over real loopback sockets, against an independent
//! implementation of RFC 6455 (`tungstenite`, blocking) and against raw
//! bytes written by hand.
//!
//! - A: our server (`Server` + `Echo`, or a test `App`) with a tungstenite
//!   client, and with a raw client for what tungstenite refuses to send.
//! - B: our client (`ws::client::connect`) with a tungstenite server, and
//!   with a raw server for what tungstenite would not do.
//! - C: the opening handshake's refusals, read raw off the socket.
//! - D: liveness: pings to a silent peer, and a peer that answers them.
//!
//! Every socket has a read and write timeout, every accept has a deadline,
//! and every thread a test starts is joined, so a failing test fails instead
//! of hanging. Only 127.0.0.1 is used.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tungstenite::protocol::WebSocketConfig;
use tungstenite::protocol::frame::coding::{CloseCode as TsCloseCode, Data, OpCode as TsOpCode};
use tungstenite::protocol::frame::{CloseFrame as TsCloseFrame, Frame};
use tungstenite::{Message as TsMessage, WebSocket};

use wschat::server::{App, ConnectionCount, Server, ServerConfig, Stopper};
use wschat::ws::client::{self, ConnectError};
use wschat::ws::handshake::{ClientHandshakeError, HttpError, Request, Upgrade};
use wschat::ws::{CloseCode, Closed, Config, Limits, Message, Reader, Role, Sender};

/// Bound on every blocking socket operation in these tests.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest message `Limits::LARGE` admits.
const BIG: usize = 16 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Our server on a thread.

struct TestServer {
    addr: SocketAddr,
    stopper: Stopper,
    connections: Arc<ConnectionCount>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    fn start(ws: Config, app: Arc<dyn App>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = Server::new(listener, ServerConfig::new(ws), app);
        let addr = server.local_addr().unwrap();
        let stopper = server.stopper();
        let connections = server.connections();
        let thread = thread::spawn(move || server.run());
        TestServer {
            addr,
            stopper,
            connections,
            thread: Some(thread),
        }
    }

    /// The echo server as `wschat echo` runs it: large limits.
    fn echo() -> TestServer {
        TestServer::start(large_config(Role::Server), Arc::new(wschat::echo::Echo))
    }

    /// Wait until every connection thread of the server has finished: each
    /// one holds a slot of the connection count until it returns. A
    /// connection that is never closed fails the test here.
    fn wait_idle(&self) {
        let deadline = Instant::now() + IO_TIMEOUT;
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

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stopper.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn large_config(role: Role) -> Config {
    let mut config = Config::new(role);
    config.limits = Limits::LARGE;
    config
}

/// A server `App` that runs `f` on each WebSocket and reports how the
/// connection ended, as our reader saw it.
struct FnApp<F> {
    f: F,
    ended: mpsc::Sender<Closed>,
}

impl<F> App for FnApp<F>
where
    F: Fn(&mut Reader, &Sender) -> Closed + Send + Sync + 'static,
{
    fn http(&self, _request: &Request) -> Result<Vec<u8>, HttpError> {
        Err(HttpError::NotFound)
    }

    fn check_upgrade(&self, _upgrade: &Upgrade) -> Result<(), HttpError> {
        Ok(())
    }

    fn websocket(&self, mut reader: Reader, sender: Sender, _peer: SocketAddr) {
        let closed = (self.f)(&mut reader, &sender);
        let _ = self.ended.send(closed);
    }
}

fn fn_app<F>(f: F) -> (Arc<dyn App>, mpsc::Receiver<Closed>)
where
    F: Fn(&mut Reader, &Sender) -> Closed + Send + Sync + 'static,
{
    let (ended, rx) = mpsc::channel();
    (Arc::new(FnApp { f, ended }), rx)
}

// ---------------------------------------------------------------------------
// tungstenite peers.

fn ts_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(32 << 20))
        .max_frame_size(Some(32 << 20))
}

fn timed_stream(stream: TcpStream) -> TcpStream {
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// A tungstenite client over a socket with timeouts.
fn ts_connect(addr: SocketAddr) -> WebSocket<TcpStream> {
    let stream = timed_stream(TcpStream::connect(addr).unwrap());
    let url = format!("ws://{addr}/");
    let (ws, response) =
        tungstenite::client::client_with_config(url.as_str(), stream, Some(ts_config()))
            .unwrap_or_else(|e| panic!("tungstenite handshake with our server: {e}"));
    assert_eq!(response.status(), 101);
    ws
}

/// The next data message or Close, skipping Pings and Pongs.
fn ts_next(ws: &mut WebSocket<TcpStream>) -> TsMessage {
    loop {
        match ws.read() {
            Ok(TsMessage::Ping(_) | TsMessage::Pong(_)) => continue,
            Ok(message) => return message,
            Err(e) => panic!("tungstenite read: {e}"),
        }
    }
}

fn ts_text(ws: &mut WebSocket<TcpStream>) -> String {
    match ts_next(ws) {
        TsMessage::Text(text) => text.as_str().to_owned(),
        other => panic!("expected text, got {}", describe(&other)),
    }
}

fn ts_binary(ws: &mut WebSocket<TcpStream>) -> Vec<u8> {
    match ts_next(ws) {
        TsMessage::Binary(bytes) => bytes.to_vec(),
        other => panic!("expected binary, got {}", describe(&other)),
    }
}

/// The Close frame the peer sent, as (code, reason).
fn ts_close(ws: &mut WebSocket<TcpStream>) -> (u16, String) {
    match ts_next(ws) {
        TsMessage::Close(Some(frame)) => (u16::from(frame.code), frame.reason.as_str().to_owned()),
        other => panic!("expected a close frame, got {}", describe(&other)),
    }
}

/// After the closing handshake the peer closes TCP and tungstenite reports
/// a normal end (not a reset, not a protocol error).
fn ts_expect_closed(ws: &mut WebSocket<TcpStream>) {
    loop {
        match ws.read() {
            Ok(TsMessage::Ping(_) | TsMessage::Pong(_)) => continue,
            Ok(other) => panic!("expected the end, got {}", describe(&other)),
            Err(tungstenite::Error::ConnectionClosed) => return,
            Err(e) => panic!("expected a clean end, got {e}"),
        }
    }
}

/// Close with an empty Close frame: ours echoes it empty (§5.5.1), then
/// closes TCP.
fn ts_close_cleanly(ws: &mut WebSocket<TcpStream>) {
    ws.close(None).unwrap();
    match ts_next(ws) {
        TsMessage::Close(None) => {}
        other => panic!("expected an empty close, got {}", describe(&other)),
    }
    ts_expect_closed(ws);
}

fn describe(message: &TsMessage) -> String {
    match message {
        TsMessage::Text(t) => format!("text of {} bytes", t.len()),
        TsMessage::Binary(b) => format!("binary of {} bytes", b.len()),
        other => format!("{other:?}"),
    }
}

fn ts_close_frame(code: u16, reason: &'static str) -> TsCloseFrame {
    TsCloseFrame {
        code: TsCloseCode::from(code),
        reason: reason.into(),
    }
}

/// What a tungstenite echo server saw of one connection.
#[derive(Debug)]
struct TsServerLog {
    /// Data messages, in order, as (is_text, bytes).
    messages: Vec<(bool, Vec<u8>)>,
    pings: Vec<Vec<u8>>,
    pongs: Vec<Vec<u8>>,
    /// The Close frames received, as (code, reason); `None` for an empty one.
    closes: Vec<Option<(u16, String)>>,
    /// `Ok` when tungstenite ended the connection normally.
    end: Result<(), String>,
}

/// A tungstenite echo server for one connection, on its own thread. A text
/// message `close:CODE:REASON` makes it start the closing handshake; `frag`
/// makes it send "fragmented" in three frames with a Ping among them.
fn ts_echo_server() -> (SocketAddr, JoinHandle<TsServerLog>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = thread::spawn(move || {
        let stream = accept_one(&listener);
        let mut ws = tungstenite::accept_with_config(stream, Some(ts_config()))
            .unwrap_or_else(|e| panic!("tungstenite accept: {e}"));
        let mut log = TsServerLog {
            messages: Vec::new(),
            pings: Vec::new(),
            pongs: Vec::new(),
            closes: Vec::new(),
            end: Ok(()),
        };
        log.end = loop {
            match ws.read() {
                Ok(TsMessage::Text(text)) => {
                    log.messages.push((true, text.as_bytes().to_vec()));
                    if let Some(rest) = text.as_str().strip_prefix("close:") {
                        let (code, reason) = rest.split_once(':').unwrap();
                        let frame = TsCloseFrame {
                            code: TsCloseCode::from(code.parse::<u16>().unwrap()),
                            reason: reason.to_owned().into(),
                        };
                        if let Err(e) = ws.close(Some(frame)) {
                            break Err(format!("close: {e}"));
                        }
                    } else if text.as_str() == "frag" {
                        let frames = [
                            Frame::message(b"frag".to_vec(), TsOpCode::Data(Data::Text), false),
                            Frame::ping(b"in between".to_vec()),
                            Frame::message(b"men".to_vec(), TsOpCode::Data(Data::Continue), false),
                            Frame::message(b"ted".to_vec(), TsOpCode::Data(Data::Continue), true),
                        ];
                        for frame in frames {
                            ws.write(TsMessage::Frame(frame)).unwrap();
                        }
                        ws.flush().unwrap();
                    } else if let Err(e) = ws.send(TsMessage::Text(text)) {
                        break Err(format!("send: {e}"));
                    }
                }
                Ok(TsMessage::Binary(bytes)) => {
                    log.messages.push((false, bytes.to_vec()));
                    if let Err(e) = ws.send(TsMessage::Binary(bytes)) {
                        break Err(format!("send: {e}"));
                    }
                }
                Ok(TsMessage::Ping(payload)) => log.pings.push(payload.to_vec()),
                Ok(TsMessage::Pong(payload)) => log.pongs.push(payload.to_vec()),
                Ok(TsMessage::Close(frame)) => log
                    .closes
                    .push(frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned()))),
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => break Ok(()),
                Err(e) => break Err(e.to_string()),
            }
        };
        log
    });
    (addr, thread)
}

/// Accept one connection, or panic after `IO_TIMEOUT`: a test whose client
/// never arrives must not leave this thread blocked in `accept`.
fn accept_one(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return timed_stream(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no connection arrived");
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Raw peers: frames written and read by hand, independently of our codec.

/// The example key of RFC 6455 §1.3 and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;

/// One frame's bytes. `first` is the whole first byte (FIN, RSV, opcode).
fn raw_frame(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A frame as a client sends it: masked.
fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame((u8::from(fin) << 7) | opcode, payload, Some(MASK))
}

#[derive(Debug)]
struct RawFrame {
    fin: bool,
    opcode: u8,
    masked: bool,
    payload: Vec<u8>,
}

impl RawFrame {
    fn close_code(&self) -> u16 {
        assert_eq!(self.opcode, OP_CLOSE, "not a close frame: {self:?}");
        assert!(self.payload.len() >= 2, "close frame without a code");
        u16::from_be_bytes([self.payload[0], self.payload[1]])
    }
}

/// Read one frame, unmasking it if needed. RSV bits must be 0.
fn read_frame(stream: &mut TcpStream) -> RawFrame {
    let mut head = [0u8; 2];
    stream
        .read_exact(&mut head)
        .expect("reading a frame header");
    assert_eq!(head[0] & 0x70, 0, "reserved bits set");
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).unwrap();
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let masked = head[1] & 0x80 != 0;
    let mut key = [0u8; 4];
    if masked {
        stream.read_exact(&mut key).unwrap();
    }
    let mut payload = vec![0u8; usize::try_from(len).unwrap()];
    stream.read_exact(&mut payload).expect("reading a payload");
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    RawFrame {
        fin: head[0] & 0x80 != 0,
        opcode: head[0] & 0x0f,
        masked,
        payload,
    }
}

/// A frame from our server: never masked (§5.1).
fn read_server_frame(stream: &mut TcpStream) -> RawFrame {
    let frame = read_frame(stream);
    assert!(!frame.masked, "server frame is masked");
    frame
}

/// The peer has closed TCP: a read returns 0 (a FIN, not a reset and not
/// more data), within `IO_TIMEOUT`.
fn expect_eof(stream: &mut TcpStream) {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => {}
        Ok(_) => panic!("expected EOF, got data: {byte:?}"),
        Err(e) => panic!("expected EOF, got {e}"),
    }
}

/// Read an HTTP head byte by byte, so that no frame byte after it is taken.
fn read_http_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 16 * 1024, "head too long");
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => panic!(
                "EOF inside an HTTP head: {:?}",
                String::from_utf8_lossy(&head)
            ),
            Err(e) => panic!("reading an HTTP head: {e}"),
        }
    }
    String::from_utf8(head).unwrap()
}

/// The value of a header in a head, case-insensitively.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn upgrade_request(addr: SocketAddr) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Connect and complete the opening handshake by hand.
fn raw_handshake(addr: SocketAddr) -> TcpStream {
    let mut stream = timed_stream(TcpStream::connect(addr).unwrap());
    stream.write_all(upgrade_request(addr).as_bytes()).unwrap();
    let head = read_http_head(&mut stream);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_eq!(
        header(&head, "sec-websocket-accept"),
        Some(ACCEPT),
        "{head}"
    );
    stream
}

/// Send `bytes` on a fresh raw WebSocket and expect the server to fail the
/// connection (§7.1.7): a Close with `code`, then the end of TCP.
fn expect_failure(server: &TestServer, bytes: &[u8], code: u16) {
    let mut stream = raw_handshake(server.addr);
    stream.write_all(bytes).unwrap();
    let close = read_server_frame(&mut stream);
    assert_eq!(
        close.close_code(),
        code,
        "answer to {bytes:02x?}: {close:?}"
    );
    assert!(close.fin);
    // The reason is UTF-8 and fits a control frame.
    assert!(std::str::from_utf8(&close.payload[2..]).is_ok());
    assert!(close.payload.len() <= 125);
    expect_eof(&mut stream);
}

// ---------------------------------------------------------------------------
// A: our server, a tungstenite client.

#[test]
fn a_text_and_binary_echo() {
    let server = TestServer::echo();
    let mut ws = ts_connect(server.addr);

    ws.send(TsMessage::text("hello, wörld ✓ 𝄞")).unwrap();
    assert_eq!(ts_text(&mut ws), "hello, wörld ✓ 𝄞");
    ws.send(TsMessage::binary(vec![0u8, 1, 2, 0x80, 0xff]))
        .unwrap();
    assert_eq!(ts_binary(&mut ws), [0u8, 1, 2, 0x80, 0xff]);

    // Empty messages are messages too.
    ws.send(TsMessage::text("")).unwrap();
    assert_eq!(ts_text(&mut ws), "");
    ws.send(TsMessage::binary(Vec::new())).unwrap();
    assert_eq!(ts_binary(&mut ws), Vec::<u8>::new());

    // Pipelined messages of assorted sizes (each length encoding of §5.2)
    // come back complete and in order.
    let sizes = [1usize, 125, 126, 127, 65_535, 65_536, 100_000];
    for (i, &n) in sizes.iter().enumerate() {
        ws.write(TsMessage::binary(vec![i as u8; n])).unwrap();
        ws.write(TsMessage::text("é".repeat(n / 2))).unwrap();
    }
    ws.flush().unwrap();
    for (i, &n) in sizes.iter().enumerate() {
        assert_eq!(ts_binary(&mut ws), vec![i as u8; n]);
        assert_eq!(ts_text(&mut ws), "é".repeat(n / 2));
    }

    ts_close_cleanly(&mut ws);
    drop(ws);
    server.wait_idle();
}

/// An 8 MiB echo to a client that is not reading stalls half-way in the
/// socket (started by the reader's thread, finished by the writer); the
/// Pongs for Pings sent meanwhile come after it, whole, in order.
#[test]
fn pongs_wait_for_a_stalled_big_frame() {
    let server = TestServer::echo();
    let mut stream = raw_handshake(server.addr);
    let payload: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    stream
        .write_all(&client_frame(true, 0x2, &payload))
        .unwrap();
    // Not reading yet: the echo fills both socket buffers and stalls half-way.
    thread::sleep(Duration::from_millis(200));
    for i in 0..3u8 {
        stream
            .write_all(&client_frame(true, OP_PING, &[b'p', i]))
            .unwrap();
    }
    thread::sleep(Duration::from_millis(200));
    let echo = read_server_frame(&mut stream);
    assert_eq!((echo.fin, echo.opcode), (true, 0x2));
    assert!(echo.payload == payload, "the echo came back altered");
    for i in 0..3u8 {
        let pong = read_server_frame(&mut stream);
        assert_eq!((pong.opcode, pong.payload), (0xA, vec![b'p', i]));
    }
    stream
        .write_all(&client_frame(true, OP_CLOSE, &1000u16.to_be_bytes()))
        .unwrap();
    assert_eq!(read_server_frame(&mut stream).close_code(), 1000);
    expect_eof(&mut stream);
    drop(stream);
    server.wait_idle();
}

#[test]
fn a_fragmented_messages_echo() {
    let server = TestServer::echo();
    let mut ws = ts_connect(server.addr);

    // A text message in three fragments with a Ping between them (§5.4:
    // control frames may be injected in the middle of a message), split
    // inside a multi-byte character: "€" is e2 82 ac.
    let frames = [
        Frame::message(b"frag \xe2".to_vec(), TsOpCode::Data(Data::Text), false),
        Frame::ping(b"mid".to_vec()),
        Frame::message(b"\x82".to_vec(), TsOpCode::Data(Data::Continue), false),
        Frame::message(b"\xac ok".to_vec(), TsOpCode::Data(Data::Continue), true),
    ];
    for frame in frames {
        ws.write(TsMessage::Frame(frame)).unwrap();
    }
    ws.flush().unwrap();
    // The Pong is sent as soon as the Ping is read, before the message ends.
    match ws.read().unwrap() {
        TsMessage::Pong(payload) => assert_eq!(&payload[..], b"mid"),
        other => panic!("expected the pong first, got {}", describe(&other)),
    }
    assert_eq!(ts_text(&mut ws), "frag € ok");

    // A binary message whose first and last fragments are empty.
    let frames = [
        Frame::message(Vec::new(), TsOpCode::Data(Data::Binary), false),
        Frame::message(vec![1u8; 3000], TsOpCode::Data(Data::Continue), false),
        Frame::message(vec![2u8; 70_000], TsOpCode::Data(Data::Continue), false),
        Frame::message(Vec::new(), TsOpCode::Data(Data::Continue), true),
    ];
    for frame in frames {
        ws.write(TsMessage::Frame(frame)).unwrap();
    }
    ws.flush().unwrap();
    let mut expected = vec![1u8; 3000];
    expected.extend(vec![2u8; 70_000]);
    assert_eq!(ts_binary(&mut ws), expected);

    ts_close_cleanly(&mut ws);
    drop(ws);
    server.wait_idle();
}

/// A 16 MiB string of mixed 1-, 2-, 3- and 4-byte characters, so that
/// characters straddle every read-buffer boundary.
fn big_text() -> String {
    let mut text = String::with_capacity(BIG);
    let pattern = "a é ✓ 𝄞 ";
    while text.len() + pattern.len() <= BIG {
        text.push_str(pattern);
    }
    while text.len() < BIG {
        text.push('x');
    }
    text
}

fn big_binary() -> Vec<u8> {
    (0..BIG).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn a_16_mib_messages_echo_intact() {
    let server = TestServer::echo();
    let mut ws = ts_connect(server.addr);

    let binary = big_binary();
    ws.send(TsMessage::binary(binary.clone())).unwrap();
    let echoed = ts_binary(&mut ws);
    assert!(echoed == binary, "16 MiB binary came back altered");

    let text = big_text();
    ws.send(TsMessage::text(text.clone())).unwrap();
    let echoed = ts_text(&mut ws);
    assert!(echoed == text, "16 MiB text came back altered");

    // The same 16 MiB, fragmented in 1 MiB pieces.
    let pieces: Vec<&[u8]> = binary.chunks(1 << 20).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let op = if i == 0 { Data::Binary } else { Data::Continue };
        let fin = i + 1 == pieces.len();
        ws.write(TsMessage::Frame(Frame::message(
            piece.to_vec(),
            TsOpCode::Data(op),
            fin,
        )))
        .unwrap();
    }
    ws.flush().unwrap();
    assert!(ts_binary(&mut ws) == binary, "fragmented 16 MiB altered");

    ts_close_cleanly(&mut ws);
    drop(ws);
    server.wait_idle();
}

#[test]
fn a_message_one_byte_over_the_large_limit_is_1009() {
    let server = TestServer::echo();
    let mut ws = ts_connect(server.addr);
    ws.send(TsMessage::binary(vec![7u8; BIG + 1])).unwrap();
    assert_eq!(ts_close(&mut ws).0, 1009);
    ts_expect_closed(&mut ws);
    drop(ws);
    server.wait_idle();
}

#[test]
fn a_ping_gets_a_pong_with_the_same_payload() {
    let server = TestServer::echo();
    let mut ws = ts_connect(server.addr);
    let longest: Vec<u8> = (0..125).collect();
    for payload in [b"abc".to_vec(), Vec::new(), longest] {
        ws.send(TsMessage::Ping(payload.clone().into())).unwrap();
        match ws.read().unwrap() {
            TsMessage::Pong(pong) => assert_eq!(pong.to_vec(), payload),
            other => panic!("expected a pong, got {}", describe(&other)),
        }
    }
    // And the connection still carries data.
    ws.send(TsMessage::text("after pings")).unwrap();
    assert_eq!(ts_text(&mut ws), "after pings");
    ts_close_cleanly(&mut ws);
    drop(ws);
    server.wait_idle();
}

#[test]
fn a_close_initiated_by_the_client() {
    let server = TestServer::echo();
    let mut ws = ts_connect(server.addr);
    ws.send(TsMessage::text("before close")).unwrap();
    assert_eq!(ts_text(&mut ws), "before close");

    ws.close(Some(ts_close_frame(1000, "done"))).unwrap();
    // Our echo carries the same code (§5.5.1).
    assert_eq!(ts_close(&mut ws).0, 1000);
    // Then the server closes TCP first (§7.1.1): tungstenite, as a client,
    // only reports the end when it reads EOF, and so does the raw socket.
    ts_expect_closed(&mut ws);
    expect_eof(ws.get_mut());
    drop(ws);

    // The same with a raw client, with a code from the private range and
    // with an empty Close (echoed empty).
    let mut stream = raw_handshake(server.addr);
    stream
        .write_all(&client_frame(true, OP_CLOSE, b"\x0f\xa0private"))
        .unwrap();
    assert_eq!(read_server_frame(&mut stream).close_code(), 4000);
    expect_eof(&mut stream);
    // Closing our side lets the server's reader, which reads until our FIN
    // (so that unread input cannot turn its close into a reset), finish.
    drop(stream);

    let mut stream = raw_handshake(server.addr);
    stream
        .write_all(&client_frame(true, OP_CLOSE, b""))
        .unwrap();
    let echo = read_server_frame(&mut stream);
    assert_eq!((echo.opcode, echo.payload.len()), (OP_CLOSE, 0));
    expect_eof(&mut stream);
    drop(stream);
    server.wait_idle();
}

#[test]
fn a_close_initiated_by_the_server() {
    // Echo the first message, then close with flush: the echo goes out
    // before the Close, and the reader waits for the client's answer.
    let (app, ended) = fn_app(|reader, sender| {
        let first = match reader.next_message() {
            Ok(message) => message,
            Err(closed) => return closed,
        };
        sender.send_message(&first).unwrap();
        sender.close(CloseCode::NORMAL, "bye", true);
        loop {
            if let Err(closed) = reader.next_message() {
                return closed;
            }
        }
    });
    let server = TestServer::start(large_config(Role::Server), app);
    let mut ws = ts_connect(server.addr);
    ws.send(TsMessage::text("hello")).unwrap();
    assert_eq!(ts_text(&mut ws), "hello");
    assert_eq!(ts_close(&mut ws), (1000, "bye".to_owned()));
    // tungstenite answers the Close on its next read; the server then
    // closes TCP and tungstenite reports a clean end.
    ts_expect_closed(&mut ws);
    expect_eof(ws.get_mut());
    drop(ws);

    let closed = ended.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(closed.code, CloseCode::NORMAL);
    assert!(!closed.by_peer, "{closed:?}");
    server.wait_idle();
}

#[test]
fn a_server_close_that_is_never_answered_ends_after_the_close_timeout() {
    let (app, ended) = fn_app(|reader, sender| {
        sender.close(CloseCode::GOING_AWAY, "shutting down", true);
        loop {
            if let Err(closed) = reader.next_message() {
                return closed;
            }
        }
    });
    let mut config = large_config(Role::Server);
    config.close_timeout = Duration::from_millis(500);
    let server = TestServer::start(config, app);
    let mut stream = raw_handshake(server.addr);
    let close = read_server_frame(&mut stream);
    assert_eq!(close.close_code(), 1001);
    assert_eq!(&close.payload[2..], b"shutting down");
    // We never answer: the server stops waiting and closes TCP.
    let start = Instant::now();
    expect_eof(&mut stream);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "EOF after {took:?}");
    drop(stream);
    ended.recv_timeout(IO_TIMEOUT).unwrap();
    server.wait_idle();
}

#[test]
fn a_simultaneous_close_during_a_large_send() {
    // On "go" the server queues two 16 MiB messages and then its Close. The
    // client sends its own Close without waiting for the server's, so the
    // two Closes cross (§7.1.3) while the server is still writing:
    // - "early": the client's Close comes right behind "go", before the
    //   server's writer has taken its Close from the queue;
    // - "late": the client reads the first message and only then sends its
    //   Close, while the server is writing the second message and its Close
    //   in one batch.
    // Neither side answers the other's Close with a second one, as both
    // have sent one. The client must get all the data, the server's Close,
    // and then the end of TCP, promptly.
    let (app, ended) = fn_app(|reader, sender| {
        match reader.next_message() {
            Ok(Message::Text(go)) if go == "go" => {}
            Ok(other) => panic!("unexpected {other:?}"),
            Err(closed) => return closed,
        }
        let big = Message::Binary(big_binary());
        sender.send_message(&big).unwrap();
        sender.send_message(&big).unwrap();
        sender.close(CloseCode::NORMAL, "bye", true);
        loop {
            if let Err(closed) = reader.next_message() {
                return closed;
            }
        }
    });
    let server = TestServer::start(large_config(Role::Server), app);
    let big = big_binary();
    for (round, early) in [(0, true), (1, false), (2, true), (3, false)] {
        let mut stream = raw_handshake(server.addr);
        let close = client_frame(true, OP_CLOSE, b"\x03\xe9going");
        stream
            .write_all(&client_frame(true, OP_TEXT, b"go"))
            .unwrap();
        if early {
            stream.write_all(&close).unwrap();
        }
        // Let the server's writer block on a full socket buffer.
        thread::sleep(Duration::from_millis(200));
        for message in 0..2 {
            let data = read_server_frame(&mut stream);
            assert_eq!(data.opcode, OP_BINARY, "round {round}, message {message}");
            assert!(
                data.fin && data.payload == big,
                "round {round}: data altered"
            );
            if !early && message == 0 {
                stream.write_all(&close).unwrap();
                thread::sleep(Duration::from_millis(200));
            }
        }
        let start = Instant::now();
        let close = read_server_frame(&mut stream);
        assert_eq!(close.close_code(), 1000, "round {round}");
        expect_eof(&mut stream);
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "round {round}: EOF after {took:?}"
        );
        drop(stream);
        let closed = ended.recv_timeout(IO_TIMEOUT).unwrap();
        assert_eq!(closed.code, CloseCode(1001), "round {round}");
        server.wait_idle();
    }
}

#[test]
fn a_protocol_violations_get_1002_then_eof() {
    let server = TestServer::echo();
    let violations: Vec<(&str, Vec<u8>)> = vec![
        // §5.1: a client frame must be masked.
        ("unmasked frame", raw_frame(0x81, b"hi", None)),
        // §5.2: no extension was negotiated.
        ("RSV1 set", raw_frame(0xc1, b"hi", Some(MASK))),
        ("reserved data opcode", client_frame(true, 0x3, b"")),
        ("reserved control opcode", client_frame(true, 0xb, b"")),
        // §5.4, §5.5.
        ("fragmented ping", client_frame(false, OP_PING, b"")),
        (
            "ping over 125 bytes",
            client_frame(true, OP_PING, &[0; 126]),
        ),
        ("continuation first", client_frame(true, OP_CONT, b"x")),
        (
            "new message inside a fragmented one",
            [
                client_frame(false, OP_TEXT, b"a"),
                client_frame(true, OP_TEXT, b"b"),
            ]
            .concat(),
        ),
        // §5.2: lengths must be minimally encoded.
        ("non-minimal length", {
            let mut frame = vec![0x82, 0x80 | 126, 0, 5];
            frame.extend_from_slice(&MASK);
            frame.extend_from_slice(&[0; 5]);
            frame
        }),
        // §7.4: codes that may not be sent, and a one-byte close payload.
        (
            "close code 1005",
            client_frame(true, OP_CLOSE, &[0x03, 0xed]),
        ),
        (
            "close code 999",
            client_frame(true, OP_CLOSE, &[0x03, 0xe7]),
        ),
        ("one-byte close", client_frame(true, OP_CLOSE, &[0x03])),
    ];
    for (what, bytes) in violations {
        eprintln!("violation: {what}");
        expect_failure(&server, &bytes, 1002);
    }
    server.wait_idle();

    // The same seen by tungstenite: an unmasked frame from the client gets
    // 1002 and a clean end of TCP.
    let mut ws = ts_connect(server.addr);
    ws.get_mut()
        .write_all(&raw_frame(0x81, b"unmasked", None))
        .unwrap();
    assert_eq!(ts_close(&mut ws).0, 1002);
    ts_expect_closed(&mut ws);
    drop(ws);
    server.wait_idle();
}

#[test]
fn a_invalid_utf8_gets_1007() {
    let server = TestServer::echo();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text", client_frame(true, OP_TEXT, b"ok \xce\xba\xff")),
        // The first fragment is valid so far; the second breaks it.
        (
            "across fragments",
            [
                client_frame(false, OP_TEXT, b"\xce"),
                client_frame(true, OP_CONT, b"\x41"),
            ]
            .concat(),
        ),
        // A message that ends in the middle of a character (§8.1).
        ("truncated", client_frame(true, OP_TEXT, b"\xe2\x82")),
        // An encoded surrogate is not UTF-8.
        ("surrogate", client_frame(true, OP_TEXT, b"\xed\xa0\x80")),
        // The reason of a Close must be UTF-8 too (§5.5.1).
        (
            "close reason",
            client_frame(true, OP_CLOSE, b"\x03\xe8\xff"),
        ),
    ];
    for (what, bytes) in cases {
        eprintln!("invalid UTF-8: {what}");
        expect_failure(&server, &bytes, 1007);
    }
    // Binary messages are not checked.
    let mut stream = raw_handshake(server.addr);
    stream
        .write_all(&client_frame(true, OP_BINARY, b"\xff\xfe"))
        .unwrap();
    let echo = read_server_frame(&mut stream);
    assert_eq!(
        (echo.opcode, &echo.payload[..]),
        (OP_BINARY, &b"\xff\xfe"[..])
    );
    drop(stream);
    server.wait_idle();
}

#[test]
fn a_too_big_gets_1009() {
    let mut config = Config::new(Role::Server);
    config.limits = Limits {
        max_frame: 1000,
        max_message: 2500,
        max_fragments: 4,
    };
    let server = TestServer::start(config, Arc::new(wschat::echo::Echo));

    // At the limits: accepted.
    let mut stream = raw_handshake(server.addr);
    stream
        .write_all(&client_frame(true, OP_BINARY, &[9; 1000]))
        .unwrap();
    assert_eq!(read_server_frame(&mut stream).payload, [9; 1000]);
    let mut bytes = Vec::new();
    for (i, n) in [1000, 1000, 400, 100].into_iter().enumerate() {
        let op = if i == 0 { OP_BINARY } else { OP_CONT };
        bytes.extend(client_frame(i == 3, op, &vec![i as u8; n]));
    }
    stream.write_all(&bytes).unwrap();
    assert_eq!(read_server_frame(&mut stream).payload.len(), 2500);
    drop(stream);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("frame", client_frame(true, OP_BINARY, &[0; 1001])),
        ("text frame", client_frame(true, OP_TEXT, &[b'a'; 1001])),
        ("message", {
            let mut bytes = client_frame(false, OP_TEXT, &[b'a'; 1000]);
            bytes.extend(client_frame(false, OP_CONT, &[b'a'; 1000]));
            bytes.extend(client_frame(true, OP_CONT, &[b'a'; 501]));
            bytes
        }),
        ("fragments", {
            let mut bytes = client_frame(false, OP_BINARY, b"1");
            for _ in 0..3 {
                bytes.extend(client_frame(false, OP_CONT, b"2"));
            }
            bytes.extend(client_frame(true, OP_CONT, b"3"));
            bytes
        }),
        // A declared length far beyond the limit is refused from the header,
        // before any payload arrives.
        ("declared length", {
            let mut bytes = vec![0x82, 0x80 | 127];
            bytes.extend_from_slice(&(1u64 << 40).to_be_bytes());
            bytes.extend_from_slice(&MASK);
            bytes
        }),
    ];
    for (what, bytes) in cases {
        eprintln!("too big: {what}");
        expect_failure(&server, &bytes, 1009);
    }

    // tungstenite sees the same.
    let mut ws = ts_connect(server.addr);
    ws.send(TsMessage::binary(vec![0u8; 5000])).unwrap();
    assert_eq!(ts_close(&mut ws).0, 1009);
    ts_expect_closed(&mut ws);
    drop(ws);
    server.wait_idle();
}

// ---------------------------------------------------------------------------
// B: our client, a tungstenite server.

fn our_connect(addr: SocketAddr) -> (Reader, Sender) {
    client::connect(
        &format!("ws://{addr}/"),
        large_config(Role::Client),
        IO_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// The next message, within `IO_TIMEOUT`.
fn next(reader: &mut Reader) -> Result<Message, Closed> {
    match reader.next_message_timeout(IO_TIMEOUT) {
        Ok(Some(message)) => Ok(message),
        Ok(None) => panic!("no message within {IO_TIMEOUT:?}"),
        Err(closed) => Err(closed),
    }
}

fn join<T>(thread: JoinHandle<T>) -> T {
    thread.join().expect("peer thread panicked")
}

#[test]
fn b_client_messages_roundtrip() {
    let (addr, server) = ts_echo_server();
    let (mut reader, sender) = our_connect(addr);

    let messages = [
        Message::Text("hello, wörld ✓ 𝄞".into()),
        Message::Binary(vec![0, 1, 2, 0x80, 0xff]),
        Message::Text(String::new()),
        Message::Binary(Vec::new()),
        Message::Binary(vec![3; 65_536]),
    ];
    for message in &messages {
        sender.send_message(message).unwrap();
        assert_eq!(next(&mut reader).as_ref(), Ok(message));
    }

    // A Ping is answered by tungstenite; our reader reports nothing for the
    // Pong, and the connection goes on.
    sender.ping(b"x").unwrap();
    sender
        .send_message(&Message::Text("after ping".into()))
        .unwrap();
    assert_eq!(next(&mut reader), Ok(Message::Text("after ping".into())));

    // A fragmented message with a Ping among its frames: reassembled, and
    // the Ping answered with its payload.
    sender.send_message(&Message::Text("frag".into())).unwrap();
    assert_eq!(next(&mut reader), Ok(Message::Text("fragmented".into())));

    // Pipelined, in order.
    for i in 0..100u32 {
        sender
            .send_message(&Message::Binary(i.to_be_bytes().to_vec()))
            .unwrap();
    }
    for i in 0..100u32 {
        assert_eq!(
            next(&mut reader),
            Ok(Message::Binary(i.to_be_bytes().to_vec()))
        );
    }

    // 16 MiB each way, binary and text.
    let binary = Message::Binary(big_binary());
    sender.send_message(&binary).unwrap();
    assert!(
        next(&mut reader).as_ref() == Ok(&binary),
        "16 MiB binary altered"
    );
    let text = Message::Text(big_text());
    sender.send_message(&text).unwrap();
    assert!(
        next(&mut reader).as_ref() == Ok(&text),
        "16 MiB text altered"
    );

    sender.close(CloseCode::NORMAL, "done", true);
    let closed = next(&mut reader).unwrap_err();
    assert_eq!(closed.code, CloseCode::NORMAL);

    let log = join(server);
    assert_eq!(log.end, Ok(()));
    assert_eq!(log.pings, [b"x".to_vec()]);
    assert_eq!(log.pongs, [b"in between".to_vec()]);
    assert_eq!(log.messages.len(), messages.len() + 2 + 100 + 2);
}

#[test]
fn b_close_initiated_by_our_client() {
    let (addr, server) = ts_echo_server();
    let (mut reader, sender) = our_connect(addr);

    // With flush, data queued before the Close is sent before it.
    sender.send_message(&Message::Text("last".into())).unwrap();
    sender.close(CloseCode::NORMAL, "done", true);
    // Messages that arrive after our Close are discarded (§5.5.1): the echo
    // of "last" may or may not be reported before the end.
    let closed = loop {
        match next(&mut reader) {
            Ok(Message::Text(text)) => assert_eq!(text, "last"),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(closed) => break closed,
        }
    };
    assert_eq!(closed.code, CloseCode::NORMAL);
    assert!(!closed.by_peer, "{closed:?}");
    // Every later call says the same.
    assert_eq!(reader.next_message(), Err(closed));
    // The connection is over even though `reader` is still alive: sending
    // fails, well before the close timeout (5 s) would free the writer.
    let deadline = Instant::now() + Duration::from_secs(2);
    while sender.send_message(&Message::Text("late".into())).is_ok() {
        assert!(
            Instant::now() < deadline,
            "sending still accepted after the close"
        );
        thread::sleep(Duration::from_millis(5));
    }

    let log = join(server);
    assert_eq!(log.messages, [(true, b"last".to_vec())]);
    assert_eq!(log.closes, [Some((1000, "done".to_owned()))]);
    assert_eq!(log.end, Ok(()));
}

#[test]
fn b_close_initiated_by_the_tungstenite_server() {
    let (addr, server) = ts_echo_server();
    let (mut reader, sender) = our_connect(addr);
    sender
        .send_message(&Message::Text("close:4001:server bye".into()))
        .unwrap();
    let closed = next(&mut reader).unwrap_err();
    assert_eq!(
        closed,
        Closed {
            code: CloseCode(4001),
            reason: "server bye".into(),
            by_peer: true,
            sent: Some(CloseCode(4001)),
            received: Some(CloseCode(4001)),
        }
    );
    let log = join(server);
    // tungstenite got our echo with the same code (§5.5.1) and ended
    // normally: it saw the closing handshake complete.
    assert_eq!(log.closes.len(), 1);
    assert_eq!(log.closes[0].as_ref().map(|c| c.0), Some(4001));
    assert_eq!(log.end, Ok(()));
}

/// A raw server for one connection: completes the handshake, then runs `f`.
fn raw_server<T: Send + 'static>(
    f: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (SocketAddr, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = thread::spawn(move || f(accept_one(&listener)));
    (addr, thread)
}

fn accept_response(request_head: &str) -> String {
    let key = header(request_head, "sec-websocket-key").expect("no key");
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
}

#[test]
fn b_client_reads_frames_that_arrive_with_the_101() {
    // The 101 and the first frames in one write: the client must keep the
    // bytes it read past the head.
    let (addr, server) = raw_server(|mut stream| {
        let head = read_http_head(&mut stream);
        let mut out = accept_response(&head).into_bytes();
        out.extend(raw_frame(0x81, b"welcome", None));
        out.extend(raw_frame(0x82, &[5; 300], None));
        out.extend(raw_frame(0x88, b"\x03\xe8later", None));
        stream.write_all(&out).unwrap();
        // Our client echoes the Close, masked, then waits for us to close.
        let echo = read_frame(&mut stream);
        assert!(echo.masked, "client frame not masked");
        assert_eq!(echo.close_code(), 1000);
    });
    let (mut reader, _sender) = our_connect(addr);
    assert_eq!(next(&mut reader), Ok(Message::Text("welcome".into())));
    assert_eq!(next(&mut reader), Ok(Message::Binary(vec![5; 300])));
    let closed = next(&mut reader).unwrap_err();
    assert_eq!((closed.code, closed.by_peer), (CloseCode::NORMAL, true));
    assert_eq!(closed.reason, "later");
    join(server);
}

#[test]
fn b_client_fails_on_a_masked_server_frame() {
    let (addr, server) = raw_server(|mut stream| {
        let head = read_http_head(&mut stream);
        stream.write_all(accept_response(&head).as_bytes()).unwrap();
        // §5.1: a server must not mask.
        stream
            .write_all(&raw_frame(0x81, b"masked", Some(MASK)))
            .unwrap();
        let close = read_frame(&mut stream);
        assert!(close.masked);
        let code = close.close_code();
        // The client has failed the connection: it sends nothing more.
        expect_eof(&mut stream);
        code
    });
    let (mut reader, _sender) = our_connect(addr);
    let closed = next(&mut reader).unwrap_err();
    assert_eq!(
        (closed.code, closed.by_peer),
        (CloseCode::PROTOCOL_ERROR, false)
    );
    assert_eq!(join(server), 1002);
}

#[test]
fn b_client_rejects_bad_handshake_answers() {
    // An answer that is not 101.
    let (addr, server) = raw_server(|mut stream| {
        read_http_head(&mut stream);
        stream
            .write_all(b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    });
    let err = client::connect(
        &format!("ws://{addr}/"),
        Config::new(Role::Client),
        IO_TIMEOUT,
    )
    .err()
    .expect("connected despite a 426");
    assert!(
        matches!(
            err,
            ConnectError::Handshake(ClientHandshakeError::Status(426))
        ),
        "{err:?}"
    );
    join(server);

    // A 101 with the wrong accept value (§4.1).
    let (addr, server) = raw_server(|mut stream| {
        read_http_head(&mut stream);
        stream
            .write_all(
                format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
    });
    let err = client::connect(
        &format!("ws://{addr}/"),
        Config::new(Role::Client),
        IO_TIMEOUT,
    )
    .err()
    .expect("connected despite a bad accept");
    assert!(
        matches!(
            err,
            ConnectError::Handshake(ClientHandshakeError::BadAccept)
        ),
        "{err:?}"
    );
    join(server);
}

// ---------------------------------------------------------------------------
// C: the opening handshake, raw.

/// Send `request` and read the whole answer, up to the server's EOF.
fn http_exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = timed_stream(TcpStream::connect(addr).unwrap());
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the server did not close the connection after its answer");
    String::from_utf8(answer).unwrap()
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

#[test]
fn c_handshake_refusals() {
    let server = TestServer::echo();
    let addr = server.addr;
    let good = upgrade_request(addr);

    // §4.2.2: another version gets 426 and the version we speak.
    let answer = http_exchange(addr, &good.replace("Version: 13", "Version: 8"));
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 426 "),
        "{answer}"
    );
    assert_eq!(header(&answer, "sec-websocket-version"), Some("13"));

    let answer = http_exchange(
        addr,
        &good.replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), ""),
    );
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 400 "),
        "{answer}"
    );

    let answer = http_exchange(addr, &good.replace(KEY, "c2hvcnQ="));
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 400 "),
        "{answer}"
    );

    let answer = http_exchange(addr, &good.replace("GET ", "POST "));
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 405 "),
        "{answer}"
    );

    let answer = http_exchange(
        addr,
        &good.replace("Connection: Upgrade", "Connection: close"),
    );
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 400 "),
        "{answer}"
    );

    let answer = http_exchange(addr, &good.replace("HTTP/1.1", "HTTP/1.0"));
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 400 "),
        "{answer}"
    );

    let huge = good.replace(
        "\r\n\r\n",
        &format!("\r\nX-Filler: {}\r\n\r\n", "y".repeat(9000)),
    );
    let answer = http_exchange(addr, &huge);
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 431 "),
        "{answer}"
    );

    // Plain HTTP goes to the App.
    let answer = http_exchange(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 200 "),
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\nok\n"), "{answer}");
    let answer = http_exchange(addr, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 404 "),
        "{answer}"
    );

    // None of them became a WebSocket, and each connection was closed.
    server.wait_idle();
}

// ---------------------------------------------------------------------------
// D: liveness.

fn liveness_server() -> TestServer {
    let mut config = large_config(Role::Server);
    config.ping_interval = Some(Duration::from_millis(200));
    config.pong_timeout = Duration::from_millis(300);
    TestServer::start(config, Arc::new(wschat::echo::Echo))
}

#[test]
fn d_silent_client_is_pinged_then_dropped() {
    let server = liveness_server();
    let mut stream = raw_handshake(server.addr);
    let start = Instant::now();
    let mut ping = [0u8; 2];
    stream.read_exact(&mut ping).unwrap();
    assert_eq!(ping, [0x89, 0x00], "expected an empty Ping");
    let pinged = start.elapsed();
    assert!(
        pinged >= Duration::from_millis(150),
        "pinged after {pinged:?}"
    );
    // We never answer: the server gives up and closes TCP.
    expect_eof(&mut stream);
    let dropped = start.elapsed();
    assert!(
        dropped >= Duration::from_millis(400) && dropped < Duration::from_secs(5),
        "dropped after {dropped:?}"
    );
    drop(stream);
    server.wait_idle();
}

#[test]
fn d_responsive_client_stays_connected() {
    let server = liveness_server();
    let mut ws = ts_connect(server.addr);
    // Short reads so that tungstenite's automatic Pong (sent on the next
    // call to read) goes out promptly.
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        match ws.read() {
            Ok(TsMessage::Ping(payload)) => {
                assert!(payload.is_empty());
                pings += 1;
            }
            Ok(other) => panic!("unexpected {}", describe(&other)),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("connection lost after {:?}: {e}", start.elapsed()),
        }
    }
    assert!(pings >= 3, "only {pings} pings in 1.5 s");
    ws.get_mut().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    ws.send(TsMessage::text("still here")).unwrap();
    assert_eq!(ts_text(&mut ws), "still here");
    ts_close_cleanly(&mut ws);
    drop(ws);
    server.wait_idle();
}
