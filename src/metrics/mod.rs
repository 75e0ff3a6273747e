//! Numbers for operators: what the server counts as it runs, and
//! `--metrics-addr`, which serves them as `GET /metrics` in the Prometheus
//! text format ([`server`], encoded by `prometheus-client` in [`expose`]).
//!
//! Counting costs a relaxed atomic add where it happens and nothing else:
//! no lock, no allocation, nothing per delivery (the hub adds a batch's
//! deliveries once). The counters are process-wide statics, [`METRICS`]
//! here and [`WIRE`](crate::ws::counters::WIRE) in the WebSocket layer, so
//! that the code that counts needs nothing handed to it: a hook is one
//! line, `metrics::get().received()`. They count whether or not anyone
//! scrapes; `--metrics-addr` only decides whether they are served. Per-room
//! counts are in [`rooms`], bounded in cardinality.

pub mod expose;
pub mod histogram;
pub mod rooms;
pub mod server;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::http::HttpError;
use histogram::AtomicHistogram;
pub use rooms::{RoomCounters, room};

/// Why a connection was refused before it became a WebSocket, as the
/// `reason` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// At `--max-connections` (503).
    CapsTotal,
    /// At `--max-per-ip` (503).
    CapsPerIp,
    /// A page of a foreign origin (403).
    Origin,
    /// Not a valid request or upgrade (400, 405, 426).
    BadHandshake,
    /// A request head over `--max-head` or `--max-headers` (431).
    HeadTooLarge,
    /// The head did not arrive within `--head-timeout` (408).
    Slowloris,
    /// An upgrade to a path that is not the chat's (404).
    NotFound,
}

impl Refusal {
    pub const ALL: [Refusal; 7] = [
        Refusal::CapsTotal,
        Refusal::CapsPerIp,
        Refusal::Origin,
        Refusal::BadHandshake,
        Refusal::HeadTooLarge,
        Refusal::Slowloris,
        Refusal::NotFound,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::CapsTotal => "caps_total",
            Refusal::CapsPerIp => "caps_per_ip",
            Refusal::Origin => "origin",
            Refusal::BadHandshake => "bad_handshake",
            Refusal::HeadTooLarge => "head_too_large",
            Refusal::Slowloris => "slowloris",
            Refusal::NotFound => "not_found",
        }
    }

    /// The reason an [`HttpError`] refusal stands for.
    pub fn of(error: &HttpError) -> Refusal {
        match error {
            HttpError::ServiceUnavailable(why) if *why == crate::server::TOO_MANY_FROM_IP => {
                Refusal::CapsPerIp
            }
            HttpError::ServiceUnavailable(_) => Refusal::CapsTotal,
            HttpError::Forbidden(_) => Refusal::Origin,
            HttpError::RequestTimeout => Refusal::Slowloris,
            HttpError::NotFound => Refusal::NotFound,
            HttpError::HeadersTooLarge(_) => Refusal::HeadTooLarge,
            HttpError::BadRequest(_)
            | HttpError::MethodNotAllowed
            | HttpError::UpgradeRequired(_) => Refusal::BadHandshake,
        }
    }
}

/// Bounds of the hub's batch-size histogram (events per batch; the hub
/// takes at most [`crate::chat::hub::MAX_BATCH`]).
pub const BATCH_SIZES: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// Bounds of the batch-wait histogram, in nanoseconds: 10 µs to 50 ms.
pub const BATCH_WAITS_NS: [u64; 10] = [
    10_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
    50_000_000,
];

/// The server's and the chat's counters; see the module doc.
#[derive(Debug)]
pub struct Metrics {
    /// TCP connections the listener accepted, refused ones included.
    pub accepted: AtomicU64,
    /// Connections upgraded to a WebSocket (101 sent).
    pub upgraded: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
    /// Chat messages (`say`) the hub took from clients.
    pub received: AtomicU64,
    /// Broadcast messages handed to clients: one per message per receiver.
    pub delivered: AtomicU64,
    /// Hand-overs of a hub batch to a client: one per client per batch,
    /// however many rooms it has news in.
    pub batch_sends: AtomicU64,
    /// Clients closed with 1008 for not keeping up.
    pub slow_closed: AtomicU64,
    /// Requests answered `rate_limited`, and clients then closed for it.
    pub rate_limited: AtomicU64,
    pub rate_closed: AtomicU64,
    /// History appends that succeeded, and that failed.
    pub history_writes: AtomicU64,
    pub history_failures: AtomicU64,
    /// The bus (`--redis`), when there is one: see [`BusCounters`].
    pub bus: BusCounters,
    /// Events per hub batch.
    pub batch_sizes: AtomicHistogram<{ BATCH_SIZES.len() }>,
    /// From a batch's first event to its delivery, in nanoseconds.
    pub batch_waits: AtomicHistogram<{ BATCH_WAITS_NS.len() }>,
}

/// What a node's bus to Redis did: what an operator of a cluster watches
/// to see that messages go in pipelines, that nothing is refused, and how
/// often a node had to read back from the streams.
#[derive(Debug)]
pub struct BusCounters {
    /// Whether this process has a bus (`--redis`); without one these are
    /// not served.
    pub on: AtomicBool,
    /// Pipelines the writer sent and Redis answered: one round trip each.
    pub round_trips: AtomicU64,
    /// Messages Redis numbered and stored.
    pub stored: AtomicU64,
    /// Messages answered `unavailable`, whatever the cause: the writer's
    /// link down or refused, or its queue full.
    pub refused: AtomicU64,
    /// Messages the subscriber read back from the streams: a gap filled, a
    /// catch-up after a reconnect, a room started over.
    pub read_back: AtomicU64,
    /// Rooms that started over on a new epoch (Redis lost them).
    pub resets: AtomicU64,
    /// Whether each link (writer, subscriber) is up.
    pub links_up: [AtomicBool; 2],
}

impl BusCounters {
    pub fn round_trip(&self, stored: usize) {
        self.round_trips.fetch_add(1, Relaxed);
        self.stored.fetch_add(stored as u64, Relaxed);
    }

    pub fn refused(&self, messages: usize) {
        self.refused.fetch_add(messages as u64, Relaxed);
    }

    pub fn read_back(&self, messages: usize) {
        self.read_back.fetch_add(messages as u64, Relaxed);
    }

    pub fn reset(&self) {
        self.resets.fetch_add(1, Relaxed);
    }

    /// Link `index` (0 the writer, 1 the subscriber) is up or not.
    pub fn link(&self, index: usize, up: bool) {
        self.on.store(true, Relaxed);
        self.links_up[index].store(up, Relaxed);
    }
}

/// The process's counters.
pub static METRICS: Metrics = Metrics {
    accepted: AtomicU64::new(0),
    upgraded: AtomicU64::new(0),
    refused: [const { AtomicU64::new(0) }; Refusal::ALL.len()],
    received: AtomicU64::new(0),
    delivered: AtomicU64::new(0),
    batch_sends: AtomicU64::new(0),
    slow_closed: AtomicU64::new(0),
    rate_limited: AtomicU64::new(0),
    rate_closed: AtomicU64::new(0),
    history_writes: AtomicU64::new(0),
    history_failures: AtomicU64::new(0),
    bus: BusCounters {
        on: AtomicBool::new(false),
        round_trips: AtomicU64::new(0),
        stored: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        read_back: AtomicU64::new(0),
        resets: AtomicU64::new(0),
        links_up: [const { AtomicBool::new(false) }; 2],
    },
    batch_sizes: AtomicHistogram::new(BATCH_SIZES),
    batch_waits: AtomicHistogram::new(BATCH_WAITS_NS),
};

/// The process's counters, for the one-line hooks.
pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
    }

    pub fn upgraded(&self) {
        self.upgraded.fetch_add(1, Relaxed);
    }

    /// A connection refused with `error`.
    pub fn refused(&self, error: &HttpError) {
        self.refused[Refusal::of(error) as usize].fetch_add(1, Relaxed);
    }

    pub fn refusals(&self, reason: Refusal) -> u64 {
        self.refused[reason as usize].load(Relaxed)
    }

    pub fn received(&self) {
        self.received.fetch_add(1, Relaxed);
    }

    /// `sends` hand-overs of a batch carried `messages` deliveries.
    pub fn delivered(&self, messages: usize, sends: usize) {
        self.delivered.fetch_add(messages as u64, Relaxed);
        self.batch_sends.fetch_add(sends as u64, Relaxed);
    }

    pub fn slow_closed(&self) {
        self.slow_closed.fetch_add(1, Relaxed);
    }

    /// A request refused by the rate limit; `closed`: and its client closed.
    pub fn rate_limited(&self, closed: bool) {
        if closed {
            self.rate_closed.fetch_add(1, Relaxed);
        } else {
            self.rate_limited.fetch_add(1, Relaxed);
        }
    }

    pub fn history_write(&self, ok: bool) {
        if ok {
            self.history_writes.fetch_add(1, Relaxed);
        } else {
            self.history_failures.fetch_add(1, Relaxed);
        }
    }

    /// A hub batch of `events`, delivered `waited` after its first arrived.
    pub fn batch(&self, events: usize, waited: Duration) {
        self.batch_sizes.observe(events as u64);
        self.batch_waits
            .observe(u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_has_its_reason() {
        let cases = [
            (
                HttpError::ServiceUnavailable(crate::server::TOO_MANY_FROM_IP),
                "caps_per_ip",
            ),
            (
                HttpError::ServiceUnavailable("too many connections"),
                "caps_total",
            ),
            (HttpError::Forbidden("evil".into()), "origin"),
            (HttpError::RequestTimeout, "slowloris"),
            (HttpError::NotFound, "not_found"),
            (HttpError::HeadersTooLarge("big"), "head_too_large"),
            (HttpError::BadRequest("bad"), "bad_handshake"),
            (HttpError::UpgradeRequired("13"), "bad_handshake"),
        ];
        for (error, label) in cases {
            assert_eq!(Refusal::of(&error).label(), label, "{error:?}");
        }
        for (i, reason) in Refusal::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i, "ALL is in declaration order");
        }
    }
}
