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

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Largest message (and frame) accepted from a client.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// How many messages a client's writer may fall behind the channel before it
/// lags. A lagging client skips the messages it missed and carries on from
/// the oldest one still in the channel (the usual choice with `broadcast`):
/// a slow reader loses messages but never slows the others down or grows
/// memory without bound.
const CHANNEL_CAPACITY: usize = 1024;

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

    let (tx, _) = broadcast::channel::<Message>(CHANNEL_CAPACITY);
    tokio::select! {
        _ = accept_loop(listener, tx) => {}
        _ = shutdown_signal() => {}
    }
    // Returning drops the runtime, which cancels every connection task.
    ExitCode::SUCCESS
}

async fn accept_loop(listener: TcpListener, tx: broadcast::Sender<Message>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(handle(stream, peer, tx.clone()));
            }
            // e.g. out of file descriptors: back off briefly, keep serving.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

async fn handle(stream: TcpStream, _peer: SocketAddr, tx: broadcast::Sender<Message>) {
    // Small chat messages: don't let Nagle hold them back (`ws` does the same).
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();

    // Subscribe before reading anything, so the sender gets its own messages.
    let mut rx = tx.subscribe();
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
