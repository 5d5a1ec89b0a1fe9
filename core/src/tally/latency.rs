//! Latency percentiles in bounded memory (pcapdns/latency.py).
//!
//! Latencies go into logarithmic buckets 0.1% wide (about 14,000 buckets from 1
//! microsecond to 1,000 seconds), each keeping its count and sum, so memory does not grow
//! with the capture. A percentile is the mean of the values in the bucket holding that
//! rank (nearest rank method), which is exact when the bucket holds one distinct value and
//! within 0.1% otherwise. The maximum is exact.

use super::round3;
use crate::hash::FastMap;

/// Seconds: the bottom of the first bucket.
pub const BASE: f64 = 1e-6;

/// `math.log(1.001)`, the width of a bucket in log space, to the bit.
pub const STEP: f64 = f64::from_bits(0x3f5060354f8c3cc4);

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Bucket {
    count: u64,
    /// Sum of the latencies in the bucket, added in the order they came.
    sum: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyHistogram {
    /// By bucket index. Only non-empty buckets are held, so a hostile latency costs one
    /// entry, not a run of them; the readers, rare, sort them.
    buckets: FastMap<i64, Bucket>,
    /// Latencies added.
    pub n: u64,
    /// The largest latency added; 0.0 while empty.
    pub max: f64,
}

/// `summary_ms()`: p50, p90, p99 and max in milliseconds, rounded to microseconds; None
/// when the histogram is empty.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SummaryMs {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl SummaryMs {
    /// The dict's items, in its order.
    pub fn items(&self) -> [(&'static str, Option<f64>); 4] {
        [
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
            ("max", self.max),
        ]
    }
}

/// The bucket a latency goes into.
pub fn bucket_of(seconds: f64) -> i64 {
    // max(seconds, BASE) as Python's max: the first unless the second is greater.
    let s = if BASE > seconds { BASE } else { seconds };
    // int() truncates toward zero; the quotient is never negative.
    ((s / BASE).ln() / STEP) as i64
}

impl LatencyHistogram {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, seconds: f64) {
        self.add_in(bucket_of(seconds), seconds);
    }

    /// `add`, the bucket of `seconds` known (`bucket_of(seconds)`): a lookup's latency goes
    /// into two histograms for one logarithm.
    pub fn add_in(&mut self, bucket: i64, seconds: f64) {
        let b = self.buckets.entry(bucket).or_default();
        b.count += 1;
        b.sum += seconds;
        self.n += 1;
        if seconds > self.max {
            self.max = seconds;
        }
    }

    /// The `p`-th percentile (0-100) by nearest rank, in seconds; None when empty.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        self.percentile_of(&self.sorted(), p)
    }

    fn percentile_of(&self, sorted: &[(i64, Bucket)], p: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let rank = (p / 100.0 * self.n as f64).ceil().max(1.0);
        let mut seen = 0u64;
        for (_, b) in sorted {
            seen += b.count;
            if seen as f64 >= rank {
                return Some(b.sum / b.count as f64);
            }
        }
        Some(self.max)
    }

    /// The non-empty buckets as (lower_seconds, upper_seconds, count), lowest first. The
    /// first bucket also holds the latencies below its lower bound of 1 microsecond.
    pub fn buckets(&self) -> Vec<(f64, f64, u64)> {
        self.sorted()
            .into_iter()
            .map(|(b, v)| {
                (
                    BASE * (b as f64 * STEP).exp(),
                    BASE * ((b + 1) as f64 * STEP).exp(),
                    v.count,
                )
            })
            .collect()
    }

    /// The state itself: (bucket index, count, sum), lowest bucket first; with `n` and
    /// `max` it rebuilds the Python object exactly.
    pub fn raw(&self) -> Vec<(i64, u64, f64)> {
        self.sorted()
            .into_iter()
            .map(|(b, v)| (b, v.count, v.sum))
            .collect()
    }

    /// The non-empty buckets, lowest first.
    fn sorted(&self) -> Vec<(i64, Bucket)> {
        let mut v: Vec<(i64, Bucket)> = self.buckets.iter().map(|(&b, &v)| (b, v)).collect();
        v.sort_unstable_by_key(|&(b, _)| b);
        v
    }

    pub fn summary_ms(&self) -> SummaryMs {
        let r = |v: Option<f64>| v.map(|v| round3(v * 1000.0));
        let sorted = self.sorted();
        SummaryMs {
            p50: r(self.percentile_of(&sorted, 50.0)),
            p90: r(self.percentile_of(&sorted, 90.0)),
            p99: r(self.percentile_of(&sorted, 99.0)),
            max: r(if self.n > 0 { Some(self.max) } else { None }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty() {
        let h = LatencyHistogram::new();
        assert_eq!(h.percentile(50.0), None);
        assert_eq!(
            h.summary_ms(),
            SummaryMs {
                p50: None,
                p90: None,
                p99: None,
                max: None
            }
        );
        assert!(h.buckets().is_empty());
    }

    #[test]
    fn one_value_is_exact_and_tiny_ones_share_the_first_bucket() {
        let mut h = LatencyHistogram::new();
        h.add(0.0123);
        assert_eq!(h.percentile(0.0), Some(0.0123));
        assert_eq!(h.percentile(100.0), Some(0.0123));
        assert_eq!(h.summary_ms().max, Some(12.3));
        h.add(0.0);
        h.add(-1.0);
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(-1.0), 0);
        assert_eq!(h.buckets()[0].2, 2);
        assert_eq!(h.percentile(50.0), Some(-0.5));
        assert_eq!(h.n, 3);
        assert_eq!(h.max, 0.0123);
    }

    #[test]
    fn step_is_the_log_of_1_001() {
        assert_eq!(STEP, 1.001f64.ln());
    }
}
