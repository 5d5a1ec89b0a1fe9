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

#[derive(Clone, Debug, Default)]
pub struct LatencyHistogram {
    buckets: Store,
    /// Latencies added.
    pub n: u64,
    /// The largest latency added; 0.0 while empty.
    pub max: f64,
}

/// Buckets of a page of `Store::Paged`: 1 KB.
const PAGE: usize = 64;

/// Buckets held in pages (`Store::Paged`): every latency up to e^65 seconds.
const PAGED: usize = 1024 * PAGE;

/// Where a histogram keeps its buckets.
#[derive(Clone, Debug)]
enum Store {
    /// By bucket index, only the non-empty buckets, so that a hostile latency costs one
    /// entry, not a run of them: the histograms of the servers, one per server.
    Sparse(FastMap<i64, Bucket>),
    /// The one histogram of every lookup: its buckets by index, in pages of `PAGE` made
    /// when first needed (at most 1 MB), without hashing; the buckets beyond `PAGED`
    /// (never a real latency) as in `Sparse`.
    Paged {
        pages: Vec<Option<Box<[Bucket; PAGE]>>>,
        far: FastMap<i64, Bucket>,
    },
}

impl Default for Store {
    fn default() -> Self {
        Store::Sparse(FastMap::default())
    }
}

impl Store {
    #[inline]
    fn bucket(&mut self, bucket: i64) -> &mut Bucket {
        match self {
            Store::Sparse(map) => map.entry(bucket).or_default(),
            Store::Paged { pages, far } => match usize::try_from(bucket) {
                Ok(i) if i < PAGED => {
                    let p = i / PAGE;
                    if pages.len() <= p {
                        pages.resize(p + 1, None);
                    }
                    let page = pages[p].get_or_insert_with(|| Box::new([Bucket::default(); PAGE]));
                    &mut page[i % PAGE]
                }
                _ => far.entry(bucket).or_default(),
            },
        }
    }

    /// The non-empty buckets, lowest first.
    fn sorted(&self) -> Vec<(i64, Bucket)> {
        let mut v: Vec<(i64, Bucket)> = match self {
            Store::Sparse(map) => map.iter().map(|(&b, &v)| (b, v)).collect(),
            Store::Paged { pages, far } => {
                let paged = pages.iter().enumerate().flat_map(|(p, page)| {
                    page.iter().flat_map(move |page| {
                        page.iter()
                            .enumerate()
                            .filter(|(_, v)| v.count > 0)
                            .map(move |(i, &v)| ((p * PAGE + i) as i64, v))
                    })
                });
                paged.chain(far.iter().map(|(&b, &v)| (b, v))).collect()
            }
        };
        v.sort_unstable_by_key(|&(b, _)| b);
        v
    }
}

impl PartialEq for LatencyHistogram {
    /// The same latencies added in the same order, however the buckets are kept.
    fn eq(&self, other: &Self) -> bool {
        self.n == other.n && self.max == other.max && self.sorted() == other.sorted()
    }
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

    /// A histogram for many latencies (the one of every lookup): its buckets in pages,
    /// found without hashing. Only one such: a page costs 1 KB however few of its
    /// buckets are used.
    pub fn paged() -> Self {
        LatencyHistogram {
            buckets: Store::Paged {
                pages: Vec::new(),
                far: FastMap::default(),
            },
            n: 0,
            max: 0.0,
        }
    }

    pub fn add(&mut self, seconds: f64) {
        self.add_in(bucket_of(seconds), seconds);
    }

    /// `add`, the bucket of `seconds` known (`bucket_of(seconds)`): a lookup's latency goes
    /// into two histograms for one logarithm.
    pub fn add_in(&mut self, bucket: i64, seconds: f64) {
        let b = self.buckets.bucket(bucket);
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
        self.buckets.sorted()
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
    fn paged_and_sparse_hold_the_same() {
        let mut sparse = LatencyHistogram::new();
        let mut paged = LatencyHistogram::paged();
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut values = vec![0.0, -1.0, 1e-7, 1e-6, 0.5, 1e300, f64::INFINITY, f64::NAN];
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push((x % 100_000) as f64 * 1e-5 * [1.0, 0.01, 10.0][(x % 3) as usize]);
        }
        for v in values {
            sparse.add(v);
            paged.add(v);
        }
        let bits = |h: &LatencyHistogram| {
            let raw: Vec<(i64, u64, u64)> = h
                .raw()
                .iter()
                .map(|&(b, n, s)| (b, n, s.to_bits()))
                .collect();
            (raw, h.n, h.max.to_bits())
        };
        assert_eq!(bits(&sparse), bits(&paged));
        assert_eq!(sparse.summary_ms(), paged.summary_ms());
        assert!(paged.raw().iter().any(|&(b, _, _)| b >= PAGED as i64));
    }

    #[test]
    fn step_is_the_log_of_1_001() {
        assert_eq!(STEP, 1.001f64.ln());
    }
}
