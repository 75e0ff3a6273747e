//! The Redis bus: how several nodes share rooms and history (`--redis`).
//!
//! The hub never talks to Redis. At the end of a batch it hands the room
//! messages it was asked to send to the [`writer`] thread, which numbers,
//! stores and publishes them in one pipelined round trip; the
//! [`subscriber`] thread hears every node's messages — this node's too —
//! and hands them back to the hub in each room's id order, which is then
//! the order every client on every node sees. The rooms' recent history is
//! mirrored in each node's hub from what the subscriber hands on, so a join
//! or a resume is answered at once, on any node.
//!
//! When Redis cannot be reached, local clients stay connected, a `say` is
//! answered `unavailable`, and `/healthz` says the node is not ready
//! ([`health`]); when it is back, the subscriber catches up from the
//! streams and the node carries on.

pub mod batch;
pub mod health;
#[cfg(feature = "redis")]
pub mod link;
pub mod note;
pub mod sequence;
#[cfg(feature = "redis")]
pub mod subscriber;
pub mod wire;
#[cfg(feature = "redis")]
pub mod writer;

use std::sync::Arc;

use crossbeam_channel::TrySendError;

use crate::chat::hub::HubEvent;
use crate::chat::messages::User;
use crate::chat::names::RoomName;
use batch::{Batch, NodeId};
use health::Health;
use note::{Note, SessionInfo};

/// What the bus tells the hub.
#[derive(Debug)]
pub enum BusEvent {
    /// A room's next messages, in id order.
    Room {
        room: RoomName,
        epoch: u64,
        delivery: Delivery,
        messages: Vec<(u64, Arc<str>)>,
    },
    /// These senders' messages were not stored: `(connection, nonce)`.
    Unavailable {
        senders: Vec<(u64, Option<String>)>,
        why: &'static str,
    },
    /// A note from a node (this one's too, heard back).
    Note { node: String, note: Note },
    /// Every node's hash, read when the subscriber (re)connected: the nodes
    /// as they are now (a node missing here is gone).
    Nodes(Vec<NodeState>),
    /// The writer (re)connected: the hub sends a [`Note::Resync`].
    WriterUp,
}

/// A node's hash, as read back.
#[derive(Debug, Default)]
pub struct NodeState {
    pub node: String,
    pub sessions: Vec<SessionInfo>,
    pub presence: Vec<(RoomName, User)>,
}

/// How a room's messages follow what the hub has of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Straight after the last ones.
    Next,
    /// The room's recent history, for a room the hub did not know.
    Fresh,
    /// The room starts over: Redis lost it (a new epoch), or this node
    /// fell too far behind. Its clients are told.
    Reset,
}

/// A name for this node when `--node` gives none: the host's name and
/// four random hex digits, so that two processes on one host differ.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(48)
        .collect();
    let host = if host.is_empty() {
        "wschat".to_owned()
    } else {
        host
    };
    format!("{host}-{:04x}", random_bits() & 0xffff)
}

/// The first user id of this node's sessions: 20 random bits above the
/// low 32, so that the nodes of a cluster give out ids of their own (ids
/// stay below 2^53, exact in JavaScript).
pub fn first_user_id() -> u64 {
    let tag = (random_bits() & 0xf_ffff).max(1);
    (tag << 32) | 1
}

fn random_bits() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        return u64::from(nanos) ^ u64::from(std::process::id());
    }
    u64::from_le_bytes(bytes)
}

/// The hub's end of the bus.
pub struct Bus {
    batches: crossbeam_channel::Sender<Batch>,
    health: Arc<Health>,
}

/// Hub batches waiting for the writer at most; past that the writer is
/// stuck and further messages are refused as `unavailable`.
#[cfg(feature = "redis")]
const PENDING_BATCHES: usize = 1024;

impl Bus {
    /// Start the writer and the subscriber for Redis at `url`.
    #[cfg(feature = "redis")]
    pub fn start(
        url: &str,
        history: usize,
        node: NodeId,
        hub: crossbeam_channel::Sender<HubEvent>,
    ) -> std::io::Result<Bus> {
        use redis::IntoConnectionInfo;
        // TCP_NODELAY (the crate's default is off): a pipeline or a probe
        // goes out at once, not held back by Nagle's algorithm.
        let client = url
            .into_connection_info()
            .map(|info| {
                let tcp = redis::io::tcp::TcpSettings::default().set_nodelay(true);
                info.set_tcp_settings(tcp)
            })
            .and_then(redis::Client::open)
            .map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("--redis {}: {e}", health::redacted(url)),
                )
            })?;
        let health = Arc::new(Health::new(health::redacted(url)));
        let (batches, pending) = crossbeam_channel::bounded(PENDING_BATCHES);
        let writer = writer::Writer::new(
            client.clone(),
            Arc::clone(&health),
            hub.clone(),
            history,
            node,
        );
        std::thread::Builder::new()
            .name("redis-writer".into())
            .spawn(move || writer.run(pending))?;
        let subscriber = subscriber::Subscriber::new(client, Arc::clone(&health), hub, history);
        std::thread::Builder::new()
            .name("redis-subscriber".into())
            .spawn(move || subscriber.run())?;
        Ok(Bus { batches, health })
    }

    /// Without the `redis` feature there is no bus: `--redis` is refused.
    #[cfg(not(feature = "redis"))]
    pub fn start(
        url: &str,
        _history: usize,
        _node: NodeId,
        _hub: crossbeam_channel::Sender<HubEvent>,
    ) -> std::io::Result<Bus> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!(
                "--redis {}: this wschat was built without the redis feature",
                health::redacted(url)
            ),
        ))
    }

    /// Hand a batch to the writer; it comes back when the writer cannot
    /// take it.
    pub fn send(&self, batch: Batch) -> Result<(), Batch> {
        self.batches.try_send(batch).map_err(|e| match e {
            TrySendError::Full(b) | TrySendError::Disconnected(b) => b,
        })
    }

    /// What `/healthz` reads.
    pub fn health(&self) -> Arc<Health> {
        Arc::clone(&self.health)
    }
}
