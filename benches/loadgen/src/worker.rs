//! A worker thread: one mio `Poll` driving its share of the connections.
//!
//! The main thread moves every worker through the phases by setting
//! [`Shared::phase`]; workers look at it after every poll (at most 10 ms).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use wschat::ws::mask::MaskSource;

use crate::conn::{Conn, Ctx, Outcome, Ready, SenderState, State, Stats, Text};

pub const CONNECT: u8 = 0;
/// All connected; wait for the server to go quiet (welcome/join frames).
pub const SETTLE: u8 = 1;
pub const SEND: u8 = 2;
/// No new messages; collect what is still on its way.
pub const DRAIN: u8 = 3;
pub const STOP: u8 = 4;
/// Set by the main thread once every worker has closed its connections and
/// returned (workers never see it); only the `--samples` file shows it.
pub const AFTER: u8 = 5;

/// A phase's name, as the `--samples` file writes it.
pub fn phase_name(phase: u8) -> &'static str {
    match phase {
        CONNECT => "connect",
        SETTLE => "settle",
        SEND => "send",
        DRAIN => "drain",
        STOP => "close",
        _ => "after",
    }
}

/// What the workers and the main thread share. Counters are totals over all
/// workers, published after each poll.
pub struct Shared {
    pub base: Instant,
    pub phase: AtomicU8,
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    pub frames: AtomicU64,
    pub sent: AtomicU64,
    pub delivered: AtomicU64,
    /// With rooms: deliveries the messages sent so far should make.
    pub expected: AtomicU64,
    /// With rooms: connected clients per room.
    pub room_members: Vec<AtomicU64>,
    pub churn_cycles: AtomicU64,
    /// Churn: connections under way now (0 once every cycle is over).
    pub churn_active: AtomicU64,
}

impl Shared {
    pub fn new() -> Shared {
        Shared::with_rooms(0)
    }

    /// Shared state for clients spread over `rooms` rooms (0: none).
    pub fn with_rooms(rooms: usize) -> Shared {
        Shared {
            base: Instant::now(),
            phase: AtomicU8::new(CONNECT),
            connected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            room_members: (0..rooms).map(|_| AtomicU64::new(0)).collect(),
            churn_cycles: AtomicU64::new(0),
            churn_active: AtomicU64::new(0),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    pub fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }

    pub fn set_phase(&self, phase: u8) {
        self.phase.store(phase, Ordering::Release);
    }
}

impl Default for Shared {
    fn default() -> Self {
        Shared::new()
    }
}

/// A server to connect to: its address, the `Host` it is named by, and
/// the upgrade path.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
    pub path: String,
}

#[derive(Clone, Debug)]
pub struct Plan {
    /// The servers (several: the nodes of a cluster); see [`target_of`] for
    /// which connection goes to which.
    pub targets: Vec<Target>,
    /// Global indices of this worker's connections. Index `i < senders` sends
    /// with sender id `i`.
    pub indices: Vec<usize>,
    pub senders: usize,
    /// Spread the clients over this many rooms (0: none): index `i` joins
    /// room `room-<i % rooms>` by naming it in its upgrade URL (`?room=`),
    /// so sender `i` is in room `i % rooms`.
    pub rooms: usize,
    /// Added to a connection's index to make its sender id. Churn loops that
    /// run beside steady senders start at the number of senders, so that the
    /// steady receivers do not take their messages for a sender's.
    pub id_base: usize,
    /// Messages per second per sender; 0 = one in flight, as fast as possible.
    pub rate: f64,
    pub size: usize,
    /// What a message's text is made of.
    pub text: Text,
    /// Offer permessage-deflate.
    pub deflate: bool,
    /// Handshakes in progress at once (per worker).
    pub concurrency: usize,
    pub stall_timeout: Duration,
    /// A connection not open this long after its connect started fails.
    pub handshake_timeout: Duration,
    pub churn: bool,
    /// Churn: a loop starts its next cycle this long after its last one
    /// started (zero: at once).
    pub churn_period: Duration,
    /// Churn: a cycle not done (echo received) this long after its connect
    /// started fails.
    pub churn_timeout: Duration,
}

/// A paced sender skips a send while this much is still unwritten.
const MAX_UNSENT: usize = 4 * 1024 * 1024;
const TICK: Duration = Duration::from_millis(10);

struct Loop {
    plan: Plan,
    shared: Arc<Shared>,
    poll: Poll,
    conns: Vec<Option<Conn>>,
    stats: Stats,
    keys: MaskSource,
    scratch: Vec<u8>,
    payload: Vec<u8>,
    frames: u64,
    published: Published,
    /// Churn: the next sequence number of each slot, kept across its
    /// connections, so a message in a welcome's history is never taken for
    /// the echo of the current one.
    churn_seq: Vec<u64>,
    /// Connections with bytes left unread after their turn, to visit again
    /// (see [`Conn::unread`]); `queued` marks the slots in it.
    ready: VecDeque<usize>,
    queued: Vec<bool>,
    /// This turn's work: which connection, and what is ready on it.
    todo: Vec<(usize, Ready)>,
    /// Churn: connections under way after the last turn.
    churn_active: u64,
}

#[derive(Default)]
struct Published {
    connected: u64,
    failed: u64,
    frames: u64,
    sent: u64,
    expected: u64,
    delivered: u64,
    churn_cycles: u64,
    churn_active: u64,
}

pub fn run(plan: Plan, shared: Arc<Shared>) -> Stats {
    let n = plan.indices.len();
    let mut lp = Loop {
        poll: Poll::new().expect("epoll"),
        conns: (0..n).map(|_| None).collect(),
        stats: Stats::new(),
        keys: MaskSource::new(),
        scratch: vec![0; 64 * 1024],
        payload: Vec::new(),
        frames: 0,
        published: Published::default(),
        churn_seq: vec![0; n],
        ready: VecDeque::new(),
        queued: vec![false; n],
        todo: Vec::new(),
        churn_active: 0,
        plan,
        shared,
    };
    if lp.plan.churn {
        lp.churn();
    } else {
        lp.load();
    }
    lp.publish();
    lp.close_all();
    lp.stats
}

impl Loop {
    /// Open every connection (a bounded number at a time), then send as the
    /// phases say, until STOP.
    fn load(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut next_open = 0;
        let mut opening = 0;
        let senders: Vec<usize> = (0..self.conns.len())
            .filter(|&slot| self.plan.indices[slot] < self.plan.senders)
            .collect();
        let mut send_started = false;
        let mut next_sweep = 0;
        loop {
            let phase = self.shared.phase();
            if phase == STOP {
                return;
            }
            if opening > 0 && self.shared.now_ns() >= next_sweep {
                opening -= self.sweep_handshakes();
                next_sweep = self.shared.now_ns() + 100_000_000;
            }
            while next_open < self.conns.len() && opening < self.plan.concurrency {
                if self.open(next_open) {
                    opening += 1;
                }
                next_open += 1;
            }
            let mut timeout = TICK;
            if phase == SEND {
                let now = self.shared.now_ns();
                if !send_started {
                    send_started = true;
                    self.start_senders(&senders, now);
                }
                if let Some(next) = self.send_due(&senders, now) {
                    timeout = timeout.min(Duration::from_nanos(next.saturating_sub(now)));
                }
            }
            self.wait(&mut events, timeout);
            for i in 0..self.todo.len() {
                let (slot, ready) = self.todo[i];
                let was_opening = matches!(
                    self.conns[slot].as_ref().map(|c| c.state),
                    Some(State::Connecting | State::Handshaking)
                );
                match self.handle(slot, ready) {
                    Outcome::Nothing => {}
                    Outcome::Connected => {
                        opening -= 1;
                        if let Some(room) = self.conns[slot].as_ref().and_then(|c| c.room) {
                            self.shared.room_members[room as usize].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Outcome::Failed(why) => {
                        if was_opening {
                            opening -= 1;
                        }
                        self.stats.connect_failed += 1;
                        self.stats.error(why);
                        self.conns[slot] = None;
                    }
                    Outcome::Closed(why) => {
                        if !why.is_empty() {
                            self.stats.closed_by_peer += 1;
                            self.stats.error(why);
                        }
                        self.conns[slot] = None;
                    }
                }
            }
            self.publish();
        }
    }

    /// Fail the connections whose connect or handshake is taking too long;
    /// returns how many.
    fn sweep_handshakes(&mut self) -> usize {
        let now = self.shared.now_ns();
        let limit = self.plan.handshake_timeout.as_nanos() as u64;
        let mut failed = 0;
        for slot in 0..self.conns.len() {
            let Some(conn) = &self.conns[slot] else {
                continue;
            };
            if matches!(conn.state, State::Connecting | State::Handshaking)
                && now.saturating_sub(conn.started_ns) > limit
            {
                let what = if conn.state == State::Connecting {
                    "TCP connect"
                } else {
                    "handshake"
                };
                self.stats.connect_failed += 1;
                self.stats.error(format!(
                    "{what} not done after {:?}",
                    self.plan.handshake_timeout
                ));
                self.conns[slot] = None;
                failed += 1;
            }
        }
        failed
    }

    fn open(&mut self, slot: usize) -> bool {
        let now = self.shared.now_ns();
        let index = self.plan.indices[slot];
        let rooms = if self.plan.churn { 0 } else { self.plan.rooms };
        let room = (rooms > 0).then(|| index % rooms);
        let target = &self.plan.targets[target_of(index, rooms, self.plan.targets.len())];
        let path = match room {
            Some(room) => room_path(&target.path, room),
            None => target.path.clone(),
        };
        match Conn::connect(
            target.addr,
            &target.host,
            &path,
            &mut self.keys,
            now,
            self.plan.deflate,
        ) {
            Ok(mut conn) => {
                conn.room = room.map(|r| r as u32);
                if let Err(e) = self.poll.registry().register(
                    conn.stream(),
                    Token(slot),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    self.stats.connect_failed += 1;
                    self.stats.error(format!("register: {e}"));
                    return false;
                }
                if index < self.plan.senders || self.plan.churn {
                    conn.sender = Some(SenderState {
                        id: (self.plan.id_base + index) as u32,
                        next_seq: self.churn_seq[slot],
                        in_flight: None,
                        next_due_ns: 0,
                        echoed: 0,
                        audience: 0,
                    });
                }
                if self.plan.churn {
                    self.churn_seq[slot] += 1;
                }
                self.conns[slot] = Some(conn);
                true
            }
            Err(e) => {
                self.stats.connect_failed += 1;
                self.stats.error(format!("connect: {e}"));
                false
            }
        }
    }

    fn ctx(&mut self) -> (Ctx<'_>, &mut [u8], &mut Vec<Option<Conn>>, &mut Vec<u8>) {
        let phase = self.shared.phase();
        (
            Ctx {
                stats: &mut self.stats,
                text: self.plan.text,
                keys: &mut self.keys,
                base: self.shared.base,
                // Churn counts cycles, not deliveries.
                senders: if self.plan.churn {
                    0
                } else {
                    self.plan.senders
                },
                rooms: self.plan.rooms,
                counting: phase == SEND || phase == DRAIN,
                frames: 0,
            },
            &mut self.scratch,
            &mut self.conns,
            &mut self.payload,
        )
    }

    fn handle(&mut self, slot: usize, ready: Ready) -> Outcome {
        let (mut ctx, scratch, conns, _) = self.ctx();
        let Some(conn) = conns[slot].as_mut() else {
            return Outcome::Nothing;
        };
        let outcome = conn.on_event(ready, scratch, &mut ctx);
        let unread = conn.unread;
        let frames = ctx.frames;
        self.frames += frames;
        if unread && !self.queued[slot] {
            self.queued[slot] = true;
            self.ready.push_back(slot);
        }
        outcome
    }

    /// Wait for readiness (not at all when connections have bytes left from
    /// their last turn) and list this turn's work in `self.todo`.
    fn wait(&mut self, events: &mut Events, timeout: Duration) {
        let timeout = if self.ready.is_empty() {
            timeout
        } else {
            Duration::ZERO
        };
        if let Err(e) = self.poll.poll(events, Some(timeout))
            && e.kind() != std::io::ErrorKind::Interrupted
        {
            panic!("poll: {e}");
        }
        self.todo.clear();
        for event in events.iter() {
            let read_closed = event.is_read_closed() || event.is_error();
            let ready = Ready {
                readable: event.is_readable() || read_closed,
                writable: event.is_writable(),
                read_closed,
            };
            self.todo.push((event.token().0, ready));
        }
        for slot in self.ready.drain(..) {
            self.queued[slot] = false;
            let ready = Ready {
                readable: true,
                writable: false,
                read_closed: false,
            };
            self.todo.push((slot, ready));
        }
    }

    /// Stagger the first sends over one interval so that paced senders do
    /// not all fire at once. With rooms, also note how many clients each
    /// sender's messages should reach: every connection is open by now.
    fn start_senders(&mut self, senders: &[usize], now: u64) {
        let interval = self.interval_ns();
        for &slot in senders {
            if let Some(Some(conn)) = self.conns.get_mut(slot)
                && let Some(me) = conn.sender.as_mut()
            {
                me.next_due_ns = now + interval * me.id as u64 / self.plan.senders.max(1) as u64;
                if let Some(room) = conn.room {
                    me.audience = self.shared.room_members[room as usize].load(Ordering::Relaxed);
                }
            }
        }
    }

    fn interval_ns(&self) -> u64 {
        if self.plan.rate > 0.0 {
            (1e9 / self.plan.rate) as u64
        } else {
            0
        }
    }

    /// Send what is due; returns when the next paced send is due.
    fn send_due(&mut self, senders: &[usize], now: u64) -> Option<u64> {
        let interval = self.interval_ns();
        let size = self.plan.size;
        let stall = self.plan.stall_timeout.as_nanos() as u64;
        let mut next_due: Option<u64> = None;
        let (mut ctx, _, conns, payload) = self.ctx();
        for &slot in senders {
            let Some(conn) = conns[slot].as_mut() else {
                continue;
            };
            if conn.state != State::Open {
                continue;
            }
            let mut result = Ok(());
            if interval == 0 {
                let me = conn.sender.as_mut().expect("sender");
                if let Some((_, sent_at)) = me.in_flight
                    && now.saturating_sub(sent_at) > stall
                {
                    ctx.stats.stalls += 1;
                    me.in_flight = None;
                }
                if me.in_flight.is_none() {
                    result = conn.send_message(size, payload, &mut ctx).map(drop);
                }
            } else {
                loop {
                    let due = conn.sender.as_ref().expect("sender").next_due_ns;
                    if due > now {
                        next_due = Some(next_due.map_or(due, |d| d.min(due)));
                        break;
                    }
                    ctx.stats.send_lag.saturating_record(now - due + 1);
                    if conn.unsent() > MAX_UNSENT {
                        ctx.stats.send_skipped += 1;
                    } else {
                        result = conn.send_message(size, payload, &mut ctx).map(drop);
                    }
                    conn.sender.as_mut().expect("sender").next_due_ns += interval;
                    if result.is_err() {
                        break;
                    }
                }
            }
            if let Err(e) = result {
                ctx.stats.closed_by_peer += 1;
                ctx.stats.error(format!("send: {e}"));
                conns[slot] = None;
            }
        }
        next_due
    }

    /// Churn: each slot repeatedly connects, sends one message, waits for
    /// it to come back, closes, and starts over (at most once per
    /// `churn_period`), until the phase leaves SEND.
    fn churn(&mut self) {
        let mut events = Events::with_capacity(1024);
        let echo_timeout = self.plan.churn_timeout.as_nanos() as u64;
        const CLOSE_TIMEOUT: u64 = 1_000_000_000;
        let period = self.plan.churn_period.as_nanos() as u64;
        let n = self.conns.len() as u64;
        let mut deadline = vec![0u64; self.conns.len()];
        // When each slot may start its next cycle; set, staggered over one
        // period, when the send phase begins.
        let mut next_start = vec![0u64; self.conns.len()];
        let mut started = false;
        loop {
            let phase = self.shared.phase();
            if phase == STOP {
                // A cycle neither done (closing) nor failed yet was cut short.
                self.stats.churn_unfinished += self
                    .conns
                    .iter()
                    .flatten()
                    .filter(|c| c.state != State::Closing)
                    .count() as u64;
                return;
            }
            let now = self.shared.now_ns();
            let starting = phase == SEND;
            if starting && !started {
                started = true;
                for (slot, at) in next_start.iter_mut().enumerate() {
                    *at = now + period * slot as u64 / n.max(1);
                }
            }
            let mut active = 0;
            #[allow(clippy::needless_range_loop)] // `open` needs `self` inside the loop
            for slot in 0..self.conns.len() {
                match self.conns[slot].as_ref().map(|c| c.state) {
                    None if starting => {
                        if now < next_start[slot] {
                            continue;
                        }
                        next_start[slot] = now + period;
                        if self.open(slot) {
                            deadline[slot] = now + echo_timeout;
                        } else {
                            self.stats.churn_errors += 1;
                            continue;
                        }
                    }
                    None => continue,
                    Some(_) if now > deadline[slot] => {
                        let conn = self.conns[slot].take().expect("conn");
                        if conn.state != State::Closing {
                            self.stats.churn_errors += 1;
                            self.stats.error("churn: timed out".to_owned());
                        }
                        continue;
                    }
                    Some(_) => {}
                }
                active += 1;
            }
            self.churn_active = active;
            if !starting && active == 0 {
                // Drained: nothing left in flight.
                self.publish();
                std::thread::sleep(TICK);
                continue;
            }
            self.wait(&mut events, TICK);
            for i in 0..self.todo.len() {
                let (slot, ready) = self.todo[i];
                let outcome = self.handle(slot, ready);
                let now = self.shared.now_ns();
                match outcome {
                    Outcome::Nothing => {}
                    Outcome::Connected => {
                        let size = self.plan.size;
                        let (mut ctx, _, conns, payload) = self.ctx();
                        let conn = conns[slot].as_mut().expect("conn");
                        if let Err(e) = conn.send_message(size, payload, &mut ctx) {
                            ctx.stats.churn_errors += 1;
                            ctx.stats.error(format!("churn send: {e}"));
                            conns[slot] = None;
                        }
                    }
                    Outcome::Failed(why) | Outcome::Closed(why) => {
                        let conn = self.conns[slot].take();
                        if !why.is_empty() || conn.is_some_and(|c| c.state != State::Closing) {
                            self.stats.churn_errors += 1;
                            self.stats.error(why);
                        }
                        continue;
                    }
                }
                // The echo came back: one cycle done; close.
                if let Some(conn) = self.conns[slot].as_mut() {
                    let me = conn.sender.as_ref().expect("sender");
                    if conn.state == State::Open && me.echoed > 0 {
                        self.stats
                            .cycle
                            .saturating_record(now.saturating_sub(conn.started_ns).max(1));
                        self.stats.churn_cycles += 1;
                        conn.close(&mut self.keys);
                        deadline[slot] = now + CLOSE_TIMEOUT;
                    }
                }
            }
            self.publish();
        }
    }

    fn publish(&mut self) {
        let s = &self.stats;
        let p = &mut self.published;
        let sh = &self.shared;
        let connected = s.handshake.len();
        let bump = |counter: &AtomicU64, old: &mut u64, new: u64| {
            if new != *old {
                counter.fetch_add(new - *old, Ordering::Relaxed);
                *old = new;
            }
        };
        bump(&sh.connected, &mut p.connected, connected);
        bump(&sh.failed, &mut p.failed, s.connect_failed);
        bump(&sh.frames, &mut p.frames, self.frames);
        bump(&sh.sent, &mut p.sent, s.sent);
        bump(&sh.expected, &mut p.expected, s.expected);
        bump(&sh.delivered, &mut p.delivered, s.delivered);
        bump(&sh.churn_cycles, &mut p.churn_cycles, s.churn_cycles);
        if self.churn_active > p.churn_active {
            sh.churn_active
                .fetch_add(self.churn_active - p.churn_active, Ordering::Relaxed);
        } else {
            sh.churn_active
                .fetch_sub(p.churn_active - self.churn_active, Ordering::Relaxed);
        }
        p.churn_active = self.churn_active;
    }

    /// Send every open connection a Close, give the servers a moment to see
    /// them, and drop the sockets.
    fn close_all(&mut self) {
        for conn in self.conns.iter_mut().flatten() {
            conn.close(&mut self.keys);
        }
        std::thread::sleep(Duration::from_millis(50));
        self.conns.clear();
    }
}

/// Which of `targets` servers connection `index` goes to. Without rooms:
/// they alternate (`index % targets`), so senders and receivers are spread
/// evenly. With rooms, client `index` is member `k = index / rooms` of room
/// `r = index % rooms` and goes to server `(r + k) % targets`: every room
/// has members on every server, and the rooms' first members (the senders)
/// alternate between the servers too. (Plain alternation would put all of
/// a room on one server whenever `rooms` is a multiple of `targets`.)
pub fn target_of(index: usize, rooms: usize, targets: usize) -> usize {
    if targets <= 1 {
        return 0;
    }
    if rooms == 0 {
        index % targets
    } else {
        (index % rooms + index / rooms) % targets
    }
}

/// The upgrade path that names room `room-<room>` (`/` → `/?room=room-7`).
pub fn room_path(path: &str, room: usize) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}room=room-{room}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_room_goes_in_the_query() {
        assert_eq!(room_path("/", 7), "/?room=room-7");
        assert_eq!(room_path("/ws", 0), "/ws?room=room-0");
        assert_eq!(room_path("/ws?x=1", 42), "/ws?x=1&room=room-42");
    }

    #[test]
    fn targets_alternate_and_every_room_spans_them() {
        assert_eq!(target_of(5, 0, 1), 0);
        assert_eq!(target_of(5, 100, 1), 0);
        let plain: Vec<usize> = (0..6).map(|i| target_of(i, 0, 2)).collect();
        assert_eq!(plain, [0, 1, 0, 1, 0, 1]);
        // 1,000 clients in 100 rooms on 2 servers: 5 of each room's 10 on
        // each, and the senders (clients 0-99) half on each.
        for room in 0..100 {
            let on_first = (0..10)
                .filter(|k| target_of(room + 100 * k, 100, 2) == 0)
                .count();
            assert_eq!(on_first, 5, "room {room}");
        }
        let senders_on_first = (0..100).filter(|&i| target_of(i, 100, 2) == 0).count();
        assert_eq!(senders_on_first, 50);
        // Three servers, rooms of 3: one member on each.
        for room in 0..7 {
            let mut seen: Vec<usize> = (0..3).map(|k| target_of(room + 7 * k, 7, 3)).collect();
            seen.sort();
            assert_eq!(seen, [0, 1, 2]);
        }
    }
}
