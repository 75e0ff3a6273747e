//! Opening a connection to Redis: a connect timeout, a read and a write
//! timeout on every connection (so no call waits on a dead peer for long),
//! and a backoff between attempts.

use std::time::{Duration, Instant};

use redis::{Client, Connection, RedisResult};

/// How long a connect, a read or a write may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Open a connection with [`IO_TIMEOUT`] on everything.
pub fn open(client: &Client) -> RedisResult<Connection> {
    let con = client.get_connection_with_timeout(IO_TIMEOUT)?;
    con.set_read_timeout(Some(IO_TIMEOUT))?;
    con.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(con)
}

/// The wait before the next attempt: 100 ms, doubling up to 2 s, back to
/// the start once connected.
#[derive(Debug)]
pub struct Backoff {
    wait: Duration,
    next: Option<Instant>,
}

const FIRST: Duration = Duration::from_millis(100);
const MOST: Duration = Duration::from_secs(2);

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            wait: FIRST,
            next: None,
        }
    }
}

impl Backoff {
    /// May we try now?
    pub fn due(&self, now: Instant) -> bool {
        self.next.is_none_or(|next| now >= next)
    }

    /// How long until we may.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.next
            .map_or(Duration::ZERO, |next| next.saturating_duration_since(now))
    }

    /// An attempt failed at `now`.
    pub fn failed(&mut self, now: Instant) {
        self.next = Some(now + self.wait);
        self.wait = (self.wait * 2).min(MOST);
    }

    pub fn succeeded(&mut self) {
        *self = Backoff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_ceiling_and_resets() {
        let mut b = Backoff::default();
        let t = Instant::now();
        assert!(b.due(t));
        let waits: Vec<Duration> = (0..7)
            .map(|_| {
                b.failed(t);
                b.remaining(t)
            })
            .collect();
        assert_eq!(waits[0], FIRST);
        assert_eq!(waits[1], FIRST * 2);
        assert_eq!(*waits.last().unwrap(), MOST);
        assert!(!b.due(t));
        b.succeeded();
        assert!(b.due(t));
    }
}
