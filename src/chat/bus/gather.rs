//! When the writer stops gathering hub batches and sends: at once when a
//! batch comes alone, a moment later when batches come in quick
//! succession.
//!
//! A burst of messages — several senders answering the same delivery, say —
//! reaches the hub a few at a time, and each hub batch would otherwise be
//! its own round trip and its own script call per room, each published and
//! handed out to every client separately on every node. So after a batch
//! with messages the writer waits for the next one for at most [`GAP`],
//! and keeps waiting while batches follow each other that closely, but
//! never holds the first for longer than [`MOST`]. A lone message pays
//! [`GAP`] once; a burst goes as one pipeline. This is the rule of Nagle's
//! algorithm with a timer, applied to the node's Redis link.

use std::time::{Duration, Instant};

/// How long the writer waits for the next hub batch after one with messages.
pub const GAP: Duration = Duration::from_micros(100);

/// The longest the first batch of a pipeline waits for the ones after it.
pub const MOST: Duration = Duration::from_millis(1);

/// Hub batches gathered for one pipeline.
pub const MAX_BATCHES: usize = 64;

/// One pipeline being gathered.
#[derive(Debug)]
pub struct Gathering {
    first: Instant,
    last: Instant,
    batches: usize,
    messages: bool,
}

impl Gathering {
    /// The first hub batch arrived at `now`.
    pub fn start(now: Instant, messages: bool) -> Gathering {
        Gathering {
            first: now,
            last: now,
            batches: 1,
            messages,
        }
    }

    /// Another hub batch arrived at `now`.
    pub fn add(&mut self, now: Instant, messages: bool) {
        self.last = now;
        self.batches += 1;
        self.messages |= messages;
    }

    /// No more batches fit in this pipeline.
    pub fn full(&self) -> bool {
        self.batches >= MAX_BATCHES
    }

    /// Until when to wait for another batch, or `None` to send now: a
    /// pipeline of notes alone does not wait.
    pub fn wait_until(&self) -> Option<Instant> {
        if !self.messages {
            return None;
        }
        let until = (self.last + GAP).min(self.first + MOST);
        (until > self.last).then_some(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_message_waits_one_gap() {
        let t = Instant::now();
        let g = Gathering::start(t, true);
        assert_eq!(g.wait_until(), Some(t + GAP));
    }

    #[test]
    fn notes_alone_go_at_once() {
        let t = Instant::now();
        assert_eq!(Gathering::start(t, false).wait_until(), None);
    }

    #[test]
    fn close_batches_extend_the_wait_up_to_most() {
        let t = Instant::now();
        let mut g = Gathering::start(t, true);
        let step = GAP / 2;
        let mut now = t;
        while now + step < t + MOST {
            now += step;
            g.add(now, true);
            let until = g.wait_until().expect("still gathering");
            assert!(until <= t + MOST);
            assert!(until > now);
        }
        g.add(t + MOST, true);
        assert_eq!(g.wait_until(), None, "the first batch waited MOST");
    }

    #[test]
    fn a_pipeline_is_full_at_max_batches() {
        let t = Instant::now();
        let mut g = Gathering::start(t, false);
        for _ in 1..MAX_BATCHES {
            assert!(!g.full());
            g.add(t, false);
        }
        assert!(g.full());
    }
}
