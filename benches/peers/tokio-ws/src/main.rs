//! Peer broadcast server: the idiomatic tokio + tokio-tungstenite design.
//!
//! Every text or binary message any client sends is broadcast, unchanged, to
//! every connected client (the sender included).
//!
//! Design: one accept loop; per connection one task that does the handshake,
//! splits the stream, spawns a writer task and runs the reader itself. All
//! connections share one `tokio::sync::broadcast` channel of `Message`s: the
//! reader sends each data message once, every writer receives its own clone.
//! `Message::Text`/`Message::Binary` hold `Utf8Bytes`/`Bytes`, so a clone is a
//! reference-count bump, not a copy of the payload.
//!
//! Usage: `tokio-ws --port N [--host H]` (port 0 picks a free port). Once
//! listening it prints exactly one line, `listening on HOST:PORT`, to stdout.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Largest message (and frame) accepted from a client.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// How many messages a client's writer may fall behind the channel before it
/// lags. A lagging client skips the messages it missed and carries on from
/// the oldest one still in the channel (the usual choice with `broadcast`):
/// a slow reader loses messages but never slows the others down or grows
/// memory without bound.
const CHANNEL_CAPACITY: usize = 1024;

/// Room name (as the URL gives it; `""` for none) to the room's channel.
type Rooms = Arc<Mutex<HashMap<String, broadcast::Sender<Message>>>>;

fn usage() -> ExitCode {
    eprintln!("usage: tokio-ws --port N [--host H]");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut host = String::from("127.0.0.1");
    let mut port: Option<u16> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--host", Some(h)) => host = h,
            ("--port", Some(p)) => match p.parse() {
                Ok(p) => port = Some(p),
                Err(_) => return usage(),
            },
            _ => return usage(),
        }
    }
    let Some(port) = port else { return usage() };

    let listener = match TcpListener::bind((host.as_str(), port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tokio-ws: cannot listen on {host}:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().expect("local address");
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {local}");
        let _ = out.flush();
    }

    let rooms: Rooms = Arc::default();
    tokio::select! {
        _ = accept_loop(listener, rooms) => {}
        _ = shutdown_signal() => {}
    }
    // Returning drops the runtime, which cancels every connection task.
    ExitCode::SUCCESS
}

async fn accept_loop(listener: TcpListener, rooms: Rooms) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(handle(stream, peer, Arc::clone(&rooms)));
            }
            // e.g. out of file descriptors: back off briefly, keep serving.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

/// `room=` in a request target's query, as given (`""` when there is none).
fn room_in(target: &str) -> &str {
    let Some((_, query)) = target.split_once('?') else {
        return "";
    };
    let query = query.split('#').next().unwrap_or("");
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("room="))
        .unwrap_or("")
}

async fn handle(stream: TcpStream, _peer: SocketAddr, rooms: Rooms) {
    // Small chat messages: don't let Nagle hold them back (`ws` does the same).
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let mut room = String::new();
    // The signature is tungstenite's `Callback`: its error is an HTTP response.
    #[allow(clippy::result_large_err)]
    let read_room = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let target = request.uri().path_and_query().map_or("", |pq| pq.as_str());
        room = room_in(target).to_owned();
        Ok(response)
    };
    let Ok(ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, read_room, Some(config)).await
    else {
        return;
    };
    let (mut sink, mut source) = ws.split();

    // Subscribe before reading anything, so the sender gets its own messages.
    let (tx, mut rx) = {
        let mut rooms = rooms.lock().expect("rooms lock");
        let tx = rooms
            .entry(room.clone())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .clone();
        let rx = tx.subscribe();
        (tx, rx)
    };
    let writer = tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(msg) => {
                    if sink.send(msg).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(_skipped)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    });

    // Pings are answered and a close frame acknowledged by tungstenite itself:
    // after a Close the next read sends the reply and ends the stream, so keep
    // reading until `None` rather than breaking on `Message::Close`.
    while let Some(Ok(msg)) = source.next().await {
        if msg.is_text() || msg.is_binary() {
            // Err only when there are no receivers: impossible, our writer holds one.
            let _ = tx.send(msg);
        }
    }
    writer.abort();
    // The writer's receiver is gone once the task is: wait for that, then
    // drop the room with its last connection.
    let _ = writer.await;
    let mut rooms = rooms.lock().expect("rooms lock");
    if tx.receiver_count() == 0 && rooms.get(&room).is_some_and(|t| t.same_channel(&tx)) {
        rooms.remove(&room);
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
