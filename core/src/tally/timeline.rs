//! Queries and failed lookups over time, in bounded memory (pcapdns/timeline.py).
//!
//! Counts go into buckets aligned on the epoch; when the capture's span would need more
//! than `max_buckets` buckets, the bucket width grows to the next width in [`STEPS_MS`],
//! each a multiple of the one before, so buckets merge exactly. Past the last width the
//! next one is ten times the one before: a week-long ring, a five-second capture and two
//! packets 136 years apart all end with at most `max_buckets` counts, and a lookup costs
//! O(1) amortized (the buckets are merged at most once per width).
//!
//! Bucket numbers are Python ints there and `i128` here. They agree for every time within
//! [`MAX_MS`] milliseconds of 1970 (about 1.3e30 s, 4e22 years; the reader yields
//! 1970..2200 only); a time beyond counts as if it were at that bound.

use super::{format_g, LookupFacts};
use crate::types::Time;

/// Bucket widths in milliseconds; each divides the next. After the last one, each width
/// is ten times the one before (3,640 days, 36,400 days, ...).
pub const STEPS_MS: [i128; 14] = [
    100,
    500,
    1_000,
    2_000,
    10_000,
    60_000,
    300_000,
    600_000,
    3_600_000,
    21_600_000,
    86_400_000,
    604_800_000,
    2_419_200_000,
    31_449_600_000,
];

/// The largest |milliseconds| a time is counted at: products of a bucket number and a
/// width stay far inside `i128`.
pub const MAX_MS: i128 = 1 << 110;

pub const DEFAULT_MAX_BUCKETS: usize = 600;

/// The bucket width of `level`, in milliseconds.
pub fn step_ms(level: u32) -> i128 {
    let last = STEPS_MS.len() as u32;
    if level < last {
        STEPS_MS[level as usize]
    } else {
        STEPS_MS[STEPS_MS.len() - 1].saturating_mul(10i128.saturating_pow(level - last + 1))
    }
}

/// `int(t * 1000.0)`: milliseconds, truncated toward zero.
fn millis(t: Time) -> i128 {
    ((t * 1000.0) as i128).clamp(-MAX_MS, MAX_MS)
}

/// `int(t * 1000.0) // step`. Any time of this millennium and any width up to 290
/// million years fit in `i64`, whose division is several times cheaper than `i128`'s.
fn bucket_number(t: Time, step: i128) -> i128 {
    const FITS: f64 = 9.0e18; // below i64::MAX
    let ms = t * 1000.0;
    if ms.abs() < FITS && step <= i64::MAX as i128 {
        return i128::from((ms as i64).div_euclid(step as i64));
    }
    millis(t).div_euclid(step)
}

#[derive(Clone, Debug)]
pub struct Timeline {
    pub max_buckets: usize,
    level: u32,
    /// Bucket width in milliseconds.
    step: i128,
    /// The buckets `lo..=hi` spanned so far; None before the first time.
    span: Option<(i128, i128)>,
    /// Query messages sent (first attempts and retransmissions), by bucket - lo.
    queries: Vec<u64>,
    /// Failed lookups (not those still open at the capture's end), by the bucket of their
    /// first attempt, - lo.
    failed: Vec<u64>,
    /// Earliest and latest query time seen, for the capture's span.
    pub first: Option<Time>,
    pub last: Option<Time>,
    /// The bucket last computed: (number, first millisecond, width it was computed for).
    hint: (i128, i64, i128),
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline::with_max_buckets(DEFAULT_MAX_BUCKETS)
    }
}

impl Timeline {
    /// A timeline of at most `max_buckets` buckets; at least 2, as times on both sides of
    /// the epoch always take two buckets.
    pub fn new(max_buckets: usize) -> Result<Self, String> {
        if max_buckets < 2 {
            return Err(format!(
                "a timeline needs at least 2 buckets, not {max_buckets}"
            ));
        }
        Ok(Timeline::with_max_buckets(max_buckets))
    }

    fn with_max_buckets(max_buckets: usize) -> Self {
        Timeline {
            max_buckets,
            level: 0,
            step: STEPS_MS[0],
            span: None,
            queries: Vec::new(),
            failed: Vec::new(),
            first: None,
            last: None,
            hint: (0, 0, 0),
        }
    }

    /// Bucket width in seconds.
    pub fn step(&self) -> f64 {
        self.step as f64 / 1000.0
    }

    /// Bucket width in milliseconds.
    pub fn step_ms(&self) -> i128 {
        self.step
    }

    /// The width's level: its index in [`STEPS_MS`], continued tenfold past it.
    pub fn level(&self) -> u32 {
        self.level
    }

    /// The first and last bucket numbers (the bucket of time t is int(t * 1000) // step).
    pub fn span(&self) -> Option<(i128, i128)> {
        self.span
    }

    pub fn lookup(&mut self, f: &LookupFacts) {
        for &qt in f.attempt_times {
            let b = self.bucket_number(qt);
            match self.span {
                Some((lo, hi)) if lo <= b && b <= hi => {
                    // Inside the buckets: only a time in the first or last one can be new.
                    if self.first.is_some_and(|first| qt < first) {
                        self.first = Some(qt);
                    } else if self.last.is_some_and(|last| qt > last) {
                        self.last = Some(qt);
                    }
                    self.queries[(b - lo) as usize] += 1;
                }
                _ => {
                    let i = self.bucket(qt);
                    self.queries[i] += 1;
                }
            }
        }
        if f.failed {
            if let Some(&t) = f.attempt_times.first() {
                self.add_failure(t);
            }
        }
    }

    /// `bucket_number(t, step)`, without a division when `t` falls in the bucket of the
    /// time asked before (consecutive lookups are milliseconds apart).
    fn bucket_number(&mut self, t: Time) -> i128 {
        const FITS: f64 = 9.0e18; // below i64::MAX, as in bucket_number
        let ms = t * 1000.0;
        if ms.abs() < FITS {
            let ms = ms as i64;
            let (b, lo, step) = self.hint;
            // lo <= ms, both i64: the difference fits a u64.
            if step == self.step && lo <= ms && (ms.wrapping_sub(lo) as u64) < step as u64 {
                return b;
            }
            let b = bucket_number(t, self.step);
            // The bucket's first millisecond, when it is an i64 (step can be huge).
            if let Ok(lo) = i64::try_from(b.saturating_mul(self.step)) {
                if self.step <= i64::MAX as i128 {
                    self.hint = (b, lo, self.step);
                }
            }
            return b;
        }
        bucket_number(t, self.step)
    }

    pub fn add_query(&mut self, t: Time) {
        let i = self.bucket(t);
        self.queries[i] += 1;
    }

    pub fn add_failure(&mut self, t: Time) {
        let i = self.bucket(t);
        self.failed[i] += 1;
    }

    /// (start, step, queries, failed): start is the UNIX time of the first bucket, step
    /// its width in seconds, and the lists hold one count per bucket, gaps included.
    pub fn series(&self) -> (f64, f64, Vec<u64>, Vec<u64>) {
        match self.span {
            None => (0.0, self.step(), Vec::new(), Vec::new()),
            Some((lo, _)) => (
                lo.saturating_mul(self.step) as f64 / 1000.0,
                self.step(),
                self.queries.clone(),
                self.failed.clone(),
            ),
        }
    }

    /// A warning when the capture (`files`, each its (first_time, last_time), and the
    /// queries seen) spans more than `limit` seconds, or has times before 1970: its time
    /// stamps are not to be trusted, and neither are the durations and rates computed
    /// from them.
    pub fn span_warnings(
        &self,
        files: &[(Option<Time>, Option<Time>)],
        limit: Time,
    ) -> Vec<String> {
        let times = files
            .iter()
            .flat_map(|&(a, b)| [a, b])
            .chain([self.first, self.last])
            .flatten();
        // min() and max() as Python's: the first of equal values stays.
        let mut bounds: Option<(f64, f64)> = None;
        for t in times {
            bounds = Some(match bounds {
                None => (t, t),
                Some((lo, hi)) => (if t < lo { t } else { lo }, if t > hi { t } else { hi }),
            });
        }
        let Some((first, last)) = bounds else {
            return Vec::new();
        };
        if last - first <= limit && first >= 0.0 {
            return Vec::new();
        }
        let why = if last - first > limit {
            format!(
                "longer than any capture runs (more than {})",
                duration(limit)
            )
        } else {
            "before 1970".to_string()
        };
        vec![format!(
            "implausible span: the capture's time stamps run from {} to {} UTC, {}, {why}; \
             some records carry a wrong time (a clock that was not set, damaged or crafted \
             records), so times, durations and rates in this analysis may be wrong; the \
             timeline's buckets are {} wide",
            when(first),
            when(last),
            duration(last - first),
            duration(self.step()),
        )]
    }

    /// The index in the count vectors of time `t`'s bucket, widening the buckets first if
    /// the span would exceed `max_buckets`.
    fn bucket(&mut self, t: Time) -> usize {
        if self.first.is_none_or(|first| t < first) {
            self.first = Some(t);
        }
        if self.last.is_none_or(|last| t > last) {
            self.last = Some(t);
        }
        loop {
            let b = bucket_number(t, self.step);
            let (lo, hi) = match self.span {
                None => (b, b),
                Some((lo, hi)) => (lo.min(b), hi.max(b)),
            };
            if hi - lo >= self.max_buckets as i128 {
                self.coarsen(lo, hi);
                continue;
            }
            self.extend(lo, hi);
            return (b - lo) as usize;
        }
    }

    /// Make the count vectors cover `lo..=hi`, which holds the current span.
    fn extend(&mut self, lo: i128, hi: i128) {
        let (front, back) = match self.span {
            None => (0, (hi - lo + 1) as usize),
            Some((old_lo, old_hi)) => ((old_lo - lo) as usize, (hi - old_hi) as usize),
        };
        for counts in [&mut self.queries, &mut self.failed] {
            if front > 0 {
                counts.splice(0..0, std::iter::repeat_n(0, front));
            }
            counts.resize(counts.len() + back, 0);
        }
        self.span = Some((lo, hi));
    }

    /// Grow the bucket width until `lo..=hi` fits, merging the counts.
    fn coarsen(&mut self, lo: i128, hi: i128) {
        let old = self.step;
        let max = self.max_buckets as i128;
        // The merged span can come out one bucket wider than this estimate; bucket() then
        // comes back for the next width.
        while (hi - lo).saturating_mul(old) / step_ms(self.level) >= max {
            self.level += 1;
        }
        let new = step_ms(self.level);
        self.step = new;
        let Some((old_lo, old_hi)) = self.span else {
            return;
        };
        let (new_lo, new_hi) = (
            (old_lo * old).div_euclid(new),
            (old_hi * old).div_euclid(new),
        );
        let len = (new_hi - new_lo + 1) as usize;
        for counts in [&mut self.queries, &mut self.failed] {
            let mut merged = vec![0u64; len];
            for (i, &n) in counts.iter().enumerate() {
                let k = ((old_lo + i as i128) * old).div_euclid(new);
                merged[(k - new_lo) as usize] += n;
            }
            *counts = merged;
        }
        self.span = Some((new_lo, new_hi));
    }
}

/// `_when`: a time as UTC text to the second, or in seconds when past the years 1..9999.
pub fn when(t: Time) -> String {
    const FIRST: f64 = -62_135_596_800.0; // 0001-01-01 00:00:00
    const LAST: f64 = 253_402_300_799.0; // 9999-12-31 23:59:59
    let s = t.floor();
    if (FIRST..=LAST).contains(&s) {
        let s = s as i64;
        let (days, secs) = (s.div_euclid(86400), s.rem_euclid(86400));
        let (y, m, d) = civil_from_days(days);
        // strftime's %Y as glibc writes it: no padding below the year 1000.
        return format!(
            "{y}-{m:02}-{d:02} {:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
    }
    format!("{} s since 1970", format_g(t, 6, false))
}

/// (year, month, day) of a day number counted from 1970-01-01 (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `_duration`: seconds in the largest unit they reach, to four significant digits.
pub fn duration(seconds: f64) -> String {
    for (unit, size) in [
        ("years", 365.25 * 86400.0),
        ("days", 86400.0),
        ("hours", 3600.0),
        ("minutes", 60.0),
    ] {
        if seconds >= size {
            return format!("{} {unit}", format_g(seconds / size, 4, true));
        }
    }
    format!("{} s", format_g(seconds, 4, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty() {
        assert_eq!(Timeline::default().series(), (0.0, 0.1, vec![], vec![]));
        assert!(Timeline::new(1).is_err());
    }

    #[test]
    fn widths_past_the_table_grow_tenfold_and_divide_each_other() {
        let widths: Vec<i128> = (0..STEPS_MS.len() as u32 + 5).map(step_ms).collect();
        assert_eq!(&widths[..STEPS_MS.len()], &STEPS_MS);
        assert_eq!(widths[STEPS_MS.len()], STEPS_MS[13] * 10);
        assert!(widths.windows(2).all(|w| w[1] % w[0] == 0));
    }

    #[test]
    fn any_span_fits() {
        for times in [
            &[0.0, 4294967295.0][..],
            &[0.0, 1.8e19],
            &[-9.2e18, 1.0, 9.2e18],
            &[1e300, -1e300, 0.0],
            &[1.7e9, 1.7e9],
        ] {
            let mut tl = Timeline::default();
            for &t in times {
                tl.add_query(t);
                tl.add_failure(t);
            }
            let (_, _, q, f) = tl.series();
            assert!(!q.is_empty() && q.len() <= 600, "{times:?}: {}", q.len());
            assert_eq!(q.iter().sum::<u64>(), times.len() as u64);
            assert_eq!(f.iter().sum::<u64>(), times.len() as u64);
        }
    }

    #[test]
    fn the_remembered_bucket_is_the_computed_one() {
        let mut tl = Timeline::default();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let times = [
            0.0,
            -0.0,
            0.0999,
            0.1,
            -0.1,
            -0.05,
            1.7e9,
            1.7e9 + 0.05,
            1.7e9 + 0.1,
            -9.2e15,
            9.2e15,
            8.9e15,
            -8.9e15,
            4.5e15,
        ];
        for level in [0, 3, 13, 20] {
            tl.level = level;
            tl.step = step_ms(level);
            for _ in 0..2000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let base = times[(x % times.len() as u64) as usize];
                let t = base + (x >> 40) as f64 * 1e-4 - 800.0;
                assert_eq!(
                    tl.bucket_number(t),
                    bucket_number(t, tl.step),
                    "{t} {level}"
                );
            }
        }
    }

    #[test]
    fn when_and_duration() {
        assert_eq!(when(0.0), "1970-01-01 00:00:00");
        assert_eq!(when(4294967295.0), "2106-02-07 06:28:15");
        assert_eq!(when(-5.0), "1969-12-31 23:59:55");
        assert_eq!(when(-62135596800.0), "1-01-01 00:00:00");
        assert_eq!(when(1e18), "1e+18 s since 1970");
        assert_eq!(duration(4294967295.0), "136.1 years");
        assert_eq!(duration(31.0 * 86400.0), "31 days");
        assert_eq!(duration(0.1), "0.1 s");
    }
}
