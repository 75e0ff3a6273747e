//! Per-connection flood control: a token bucket.
//!
//! Each message costs one token; tokens refill at `rate` per second up to
//! `burst`. A message with no token left is refused with a `rate_limited`
//! error; a client that keeps sending while refused (more than `burst`
//! refusals in a row) is closed with 1008. It lives on the connection's own
//! reader thread, so a flood never reaches the hub.

use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refuse this message, keep the connection.
    Refuse,
    /// Refused too often: close the connection.
    Close,
}

#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    refused: u32,
}

impl TokenBucket {
    /// `rate` messages per second with bursts of `burst`; `rate == 0` allows
    /// everything.
    pub fn new(rate: f64, burst: u32) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: Instant::now(),
            refused: 0,
        }
    }

    pub fn check(&mut self) -> Verdict {
        self.check_at(Instant::now())
    }

    pub fn check_at(&mut self, now: Instant) -> Verdict {
        if self.rate <= 0.0 {
            return Verdict::Allow;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            return Verdict::Allow;
        }
        self.refused += 1;
        if f64::from(self.refused) > self.burst {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_a_burst_then_refuses_then_closes() {
        let t = Instant::now();
        let mut bucket = TokenBucket::new(20.0, 5);
        for _ in 0..5 {
            assert_eq!(bucket.check_at(t), Verdict::Allow);
        }
        for _ in 0..5 {
            assert_eq!(bucket.check_at(t), Verdict::Refuse);
        }
        assert_eq!(bucket.check_at(t), Verdict::Close);
    }

    #[test]
    fn refills_at_the_rate() {
        let t = Instant::now();
        let mut bucket = TokenBucket::new(20.0, 1);
        assert_eq!(bucket.check_at(t), Verdict::Allow);
        assert_eq!(bucket.check_at(t), Verdict::Refuse);
        assert_eq!(
            bucket.check_at(t + Duration::from_millis(50)),
            Verdict::Allow
        );
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let mut bucket = TokenBucket::new(0.0, 1);
        assert!((0..10_000).all(|_| bucket.check() == Verdict::Allow));
    }
}
