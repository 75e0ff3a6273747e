//! The scrape: every counter read once and encoded by `prometheus-client`
//! in the Prometheus text format (version 0.0.4), each with its help text.
//!
//! The counters live in plain atomics ([`METRICS`], [`WIRE`], the rooms);
//! a [`Collector`] reads them on each scrape and hands the values to the
//! crate's encoder as constant metrics, so the hot paths never touch the
//! crate's types.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::histogram::HistogramSnapshot;
use super::{METRICS, Refusal, rooms};
use crate::server::ConnectionCount;
use crate::ws::counters::{CLOSE_CODES, WIRE};

/// The `Content-Type` of what [`render`] returns.
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What the scrape reads besides the statics: the server's open
/// connections.
#[derive(Debug)]
struct Scrape {
    open: Arc<ConnectionCount>,
}

/// Everything, in the Prometheus text format. `open` is the server's
/// connection count (the open-connections gauge).
pub fn render(open: &Arc<ConnectionCount>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        open: Arc::clone(open),
    }));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
    text
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// The bus's counters, for a node of a cluster.
fn bus(e: &mut DescriptorEncoder, b: &crate::metrics::BusCounters) -> fmt::Result {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    counter(
        e,
        "wschat_bus_round_trips",
        "Pipelines the node sent to Redis and had answered, one round trip each",
        load(&b.round_trips),
    )?;
    counter(
        e,
        "wschat_bus_messages_stored",
        "Messages Redis numbered and stored for this node",
        load(&b.stored),
    )?;
    counter(
        e,
        "wschat_bus_messages_refused",
        "Messages answered unavailable: Redis not connected, refusing them, or behind the node's full queue to it",
        load(&b.refused),
    )?;
    counter(
        e,
        "wschat_bus_messages_read_back",
        "Messages read back from the rooms' streams: gaps filled, catch-ups, rooms started over",
        load(&b.read_back),
    )?;
    counter(
        e,
        "wschat_bus_room_resets",
        "Rooms that started over on a new epoch because Redis had lost them",
        load(&b.resets),
    )?;
    let mut up = e.encode_descriptor(
        "wschat_bus_link_up",
        "Whether the node's link to Redis is up (1) or not (0), by link",
        None,
        MetricType::Gauge,
    )?;
    for (i, link) in ["writer", "subscriber"].iter().enumerate() {
        let value = i64::from(b.links_up[i].load(std::sync::atomic::Ordering::Relaxed));
        ConstGauge::new(value).encode(up.encode_family(&[("link", *link)])?)?;
    }
    Ok(())
}

/// A counter with one label, one series per `(value, count)`.
fn counters<'a>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    series: impl IntoIterator<Item = (&'a str, u64)>,
) -> fmt::Result {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in series {
        let labels = [(label, value)];
        ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &HistogramSnapshot,
) -> fmt::Result {
    e.encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let m = &METRICS;
        let e = &mut e;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        gauge(
            e,
            "wschat_connections_open",
            "TCP connections open now, WebSocket or not yet",
            i64::try_from(self.open.open()).unwrap_or(i64::MAX),
        )?;
        counter(
            e,
            "wschat_connections_accepted",
            "TCP connections accepted, refused ones included",
            load(&m.accepted),
        )?;
        counter(
            e,
            "wschat_websockets_opened",
            "Connections upgraded to a WebSocket (101 sent)",
            load(&m.upgraded),
        )?;
        counters(
            e,
            "wschat_connections_refused",
            "Connections refused before the upgrade, by reason",
            "reason",
            Refusal::ALL.iter().map(|&r| (r.label(), m.refusals(r))),
        )?;
        let codes: Vec<String> = CLOSE_CODES.iter().map(u16::to_string).collect();
        let mut closes = e.encode_descriptor(
            "wschat_websocket_closes",
            "WebSocket connections ended, by close code (1006: without a closing handshake) and by the side that started the end",
            None,
            MetricType::Counter,
        )?;
        for (side, by_peer) in [("peer", true), ("server", false)] {
            let all = CLOSE_CODES.iter().map(|&c| Some(c)).chain([None]);
            for (code, label) in all.zip(codes.iter().map(String::as_str).chain(["other"])) {
                let labels = [("code", label), ("side", side)];
                ConstCounter::new(WIRE.closes(code, by_peer))
                    .encode(closes.encode_family(&labels)?)?;
            }
        }
        counter(
            e,
            "wschat_messages_received",
            "Chat messages taken from clients",
            load(&m.received),
        )?;
        counter(
            e,
            "wschat_messages_delivered",
            "Broadcast messages handed to clients, one per message per receiver",
            load(&m.delivered),
        )?;
        counter(
            e,
            "wschat_batch_sends",
            "Hub batches handed to clients, one per client per batch however many of its rooms it carries",
            load(&m.batch_sends),
        )?;
        counter(
            e,
            "wschat_bytes_in",
            "Bytes read from WebSocket connections",
            load(&WIRE.bytes_in),
        )?;
        counter(
            e,
            "wschat_bytes_out",
            "Bytes written to WebSocket connections",
            load(&WIRE.bytes_out),
        )?;
        counter(
            e,
            "wschat_slow_clients_closed",
            "Clients closed with 1008 for not reading fast enough",
            load(&m.slow_closed),
        )?;
        counter(
            e,
            "wschat_rate_limited",
            "Requests refused by the rate limit (answered rate_limited)",
            load(&m.rate_limited),
        )?;
        counter(
            e,
            "wschat_rate_limit_closes",
            "Clients closed with 1008 for flooding on after rate_limited",
            load(&m.rate_closed),
        )?;
        counter(
            e,
            "wschat_history_writes",
            "History appends that succeeded",
            load(&m.history_writes),
        )?;
        counter(
            e,
            "wschat_history_failures",
            "History appends that failed (nothing broadcast)",
            load(&m.history_failures),
        )?;
        if m.bus.on.load(std::sync::atomic::Ordering::Relaxed) {
            bus(e, &m.bus)?;
        }
        histogram(
            e,
            "wschat_hub_batch_events",
            "Events the hub handled per batch",
            &m.batch_sizes.snapshot(1.0),
        )?;
        histogram(
            e,
            "wschat_hub_batch_wait_seconds",
            "Time from a hub batch's first event to its delivery",
            &m.batch_waits.snapshot(1e-9),
        )?;
        let rooms = rooms::snapshot();
        let mut members = e.encode_descriptor(
            "wschat_room_members",
            "Members of each room now (the first 16 rooms by name, the rest as _other)",
            None,
            MetricType::Gauge,
        )?;
        for (room, n, _) in &rooms {
            let labels = [("room", room.as_str())];
            ConstGauge::new(i64::try_from(*n).unwrap_or(i64::MAX))
                .encode(members.encode_family(&labels)?)?;
        }
        counters(
            e,
            "wschat_room_messages",
            "Chat messages stored and broadcast in each room (the first 16 rooms by name, the rest as _other)",
            "room",
            rooms.iter().map(|(room, _, n)| (room.as_str(), *n)),
        )?;
        counter(
            e,
            "wschat_deflate_messages_out",
            "Messages sent compressed (permessage-deflate)",
            load(&WIRE.deflated),
        )?;
        counter(
            e,
            "wschat_deflate_bytes_out_before",
            "Payload bytes of the messages sent compressed, before compression",
            load(&WIRE.deflated_before),
        )?;
        counter(
            e,
            "wschat_deflate_bytes_out_after",
            "Payload bytes of the messages sent compressed, after compression",
            load(&WIRE.deflated_after),
        )?;
        counter(
            e,
            "wschat_deflate_messages_in",
            "Compressed messages received",
            load(&WIRE.inflated),
        )?;
        counter(
            e,
            "wschat_deflate_bytes_in_before",
            "Payload bytes of the compressed messages received, as received",
            load(&WIRE.inflated_before),
        )?;
        counter(
            e,
            "wschat_deflate_bytes_in_after",
            "Payload bytes of the compressed messages received, once inflated",
            load(&WIRE.inflated_after),
        )?;
        Ok(())
    }
}
