//! tungstenite peers: a client for our server, an echo server for our
//! client, and the helpers that read what they get.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};

use tungstenite::protocol::WebSocketConfig;
use tungstenite::protocol::frame::coding::{CloseCode as TsCloseCode, Data, OpCode as TsOpCode};
use tungstenite::protocol::frame::{CloseFrame as TsCloseFrame, Frame};
use tungstenite::{Message as TsMessage, WebSocket};

use crate::IO_TIMEOUT;
use crate::support::{accept_one, timed};

pub fn ts_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(32 << 20))
        .max_frame_size(Some(32 << 20))
}

/// A tungstenite client over a socket with timeouts.
pub fn ts_connect(addr: SocketAddr) -> WebSocket<TcpStream> {
    let stream = timed(TcpStream::connect(addr).unwrap(), IO_TIMEOUT);
    let url = format!("ws://{addr}/");
    let (ws, response) =
        tungstenite::client::client_with_config(url.as_str(), stream, Some(ts_config()))
            .unwrap_or_else(|e| panic!("tungstenite handshake with our server: {e}"));
    assert_eq!(response.status(), 101);
    ws
}

/// The next data message or Close, skipping Pings and Pongs.
pub fn ts_next(ws: &mut WebSocket<TcpStream>) -> TsMessage {
    loop {
        match ws.read() {
            Ok(TsMessage::Ping(_) | TsMessage::Pong(_)) => continue,
            Ok(message) => return message,
            Err(e) => panic!("tungstenite read: {e}"),
        }
    }
}

pub fn ts_text(ws: &mut WebSocket<TcpStream>) -> String {
    match ts_next(ws) {
        TsMessage::Text(text) => text.as_str().to_owned(),
        other => panic!("expected text, got {}", describe(&other)),
    }
}

pub fn ts_binary(ws: &mut WebSocket<TcpStream>) -> Vec<u8> {
    match ts_next(ws) {
        TsMessage::Binary(bytes) => bytes.to_vec(),
        other => panic!("expected binary, got {}", describe(&other)),
    }
}

/// The Close frame the peer sent, as (code, reason).
pub fn ts_close(ws: &mut WebSocket<TcpStream>) -> (u16, String) {
    match ts_next(ws) {
        TsMessage::Close(Some(frame)) => (u16::from(frame.code), frame.reason.as_str().to_owned()),
        other => panic!("expected a close frame, got {}", describe(&other)),
    }
}

/// After the closing handshake the peer closes TCP and tungstenite reports
/// a normal end (not a reset, not a protocol error).
pub fn ts_expect_closed(ws: &mut WebSocket<TcpStream>) {
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
pub fn ts_close_cleanly(ws: &mut WebSocket<TcpStream>) {
    ws.close(None).unwrap();
    match ts_next(ws) {
        TsMessage::Close(None) => {}
        other => panic!("expected an empty close, got {}", describe(&other)),
    }
    ts_expect_closed(ws);
}

pub fn describe(message: &TsMessage) -> String {
    match message {
        TsMessage::Text(t) => format!("text of {} bytes", t.len()),
        TsMessage::Binary(b) => format!("binary of {} bytes", b.len()),
        other => format!("{other:?}"),
    }
}

pub fn ts_close_frame(code: u16, reason: &'static str) -> TsCloseFrame {
    TsCloseFrame {
        code: TsCloseCode::from(code),
        reason: reason.into(),
    }
}

/// What a tungstenite echo server saw of one connection.
#[derive(Debug)]
pub struct TsServerLog {
    /// Data messages, in order, as (is_text, bytes).
    pub messages: Vec<(bool, Vec<u8>)>,
    pub pings: Vec<Vec<u8>>,
    pub pongs: Vec<Vec<u8>>,
    /// The Close frames received, as (code, reason); `None` for an empty one.
    pub closes: Vec<Option<(u16, String)>>,
    /// `Ok` when tungstenite ended the connection normally.
    pub end: Result<(), String>,
}

/// A tungstenite echo server for one connection, on its own thread. A text
/// message `close:CODE:REASON` makes it start the closing handshake; `frag`
/// makes it send "fragmented" in three frames with a Ping among them.
pub fn ts_echo_server() -> (SocketAddr, JoinHandle<TsServerLog>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = thread::spawn(move || {
        let stream = accept_one(&listener, IO_TIMEOUT);
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
