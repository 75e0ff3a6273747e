//! A histogram of plain atomics: fixed bucket bounds, one relaxed add per
//! observation into its bucket, the count and the sum; no lock. (The
//! `prometheus-client` histogram takes a lock per observation.) Read on
//! scrape into the per-bucket counts the exposition format's encoder takes.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Observations of whole numbers (a count, or nanoseconds), in `N` buckets
/// with the upper bounds `bounds` and one more above the last.
#[derive(Debug)]
pub struct AtomicHistogram<const N: usize> {
    bounds: [u64; N],
    buckets: [AtomicU64; N],
    above: AtomicU64,
    count: AtomicU64,
    sum: AtomicU64,
}

/// A histogram as read: per-bucket counts (not cumulative) by upper bound,
/// in the unit `scale` converts to, the sum so converted, and the count.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

impl<const N: usize> AtomicHistogram<N> {
    /// `bounds` must be increasing.
    pub const fn new(bounds: [u64; N]) -> Self {
        AtomicHistogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; N],
            above: AtomicU64::new(0),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: u64) {
        match self.bounds.iter().position(|&b| value <= b) {
            Some(i) => self.buckets[i].fetch_add(1, Relaxed),
            None => self.above.fetch_add(1, Relaxed),
        };
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
    }

    /// Read it, each bound and the sum multiplied by `scale` (1e-9 turns
    /// nanoseconds into the seconds Prometheus expects). Read without a
    /// lock while others observe, so the count may be a few ahead of or
    /// behind the buckets; the count is taken as the buckets' total, so
    /// that the `+Inf` bucket and `_count` agree.
    pub fn snapshot(&self, scale: f64) -> HistogramSnapshot {
        let mut buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .zip(&self.buckets)
            .map(|(&bound, n)| (bound as f64 * scale, n.load(Relaxed)))
            .collect();
        buckets.push((f64::INFINITY, self.above.load(Relaxed)));
        HistogramSnapshot {
            count: buckets.iter().map(|(_, n)| n).sum(),
            sum: self.sum.load(Relaxed) as f64 * scale,
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_lands_in_the_first_bucket_that_holds_it() {
        let h = AtomicHistogram::new([1, 4, 16]);
        for v in [0, 1, 2, 4, 5, 16, 17, 1000] {
            h.observe(v);
        }
        let s = h.snapshot(1.0);
        assert_eq!(
            s.buckets,
            vec![(1.0, 2), (4.0, 2), (16.0, 2), (f64::INFINITY, 2)]
        );
        assert_eq!(s.count, 8);
        assert_eq!(s.sum, 1045.0);
        let seconds = h.snapshot(1e-9);
        assert_eq!(seconds.buckets[1].0, 4e-9);
    }
}
