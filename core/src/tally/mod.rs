//! The tallies of closed lookups: per server and per client (breakdown), latency percentiles
//! (latency) and queries and failures over time (timeline).
//!
//! Every tally is fed once per closed lookup, in the order the matcher closes them, with
//! the few facts it reads from the lookup ([`LookupFacts`]). Each keeps bounded memory, and
//! each exposes what the renderers read, computed with the same float operations in the
//! same order as pcapdns/breakdown.py, latency.py and timeline.py did, so the documents
//! built from them do not change by a bit.

pub mod breakdown;
pub mod latency;
pub mod timeline;

use std::net::IpAddr;

use crate::types::Time;

pub use breakdown::{Breakdown, ClientTally, RowKey, ServerTally};
pub use latency::{LatencyHistogram, SummaryMs};
pub use timeline::Timeline;

/// What the tallies read from one closed lookup (pcapdns.match.records.Lookup).
///
/// Borrowed, so that the matcher can hand it over without building anything per lookup.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LookupFacts<'a> {
    /// The first attempt's query source (`Lookup.first.src`).
    pub client: IpAddr,
    /// The first attempt's query destination (`Lookup.first.dst`).
    pub server: IpAddr,
    /// Each attempt's query time, in the order the attempts were sent (the first attempt
    /// first). Never empty.
    pub attempt_times: &'a [Time],
    /// Attempts that are retransmissions (`Lookup.retransmissions`).
    pub retransmissions: u32,
    /// Attempts whose `pair_race_lost` is set.
    pub race_lost: u32,
    /// `Lookup.failed`: the capture saw the lookup fail (not open at the capture's end).
    pub failed: bool,
    /// `Lookup.latency`: seconds from the first attempt to the answer's response; None
    /// when no attempt was answered.
    pub latency: Option<Time>,
    /// The rcode (flags & 0xF) of the answer's response; None when not answered.
    pub rcode: Option<u16>,
}

/// The three tallies analysis.py kept beside the detectors.
#[derive(Clone, Debug)]
pub struct Tallies {
    pub breakdown: Breakdown,
    /// Latencies of every answered lookup (`Analysis.latency`; its `summary_ms()` is
    /// `Analysis.latency_ms`).
    pub latency: LatencyHistogram,
    pub timeline: Timeline,
}

impl Default for Tallies {
    fn default() -> Self {
        Tallies {
            breakdown: Breakdown::new(),
            latency: LatencyHistogram::paged(),
            timeline: Timeline::default(),
        }
    }
}

impl Tallies {
    pub fn new() -> Self {
        Self::default()
    }

    /// One closed lookup, as analysis.py's `on_lookup` fed the three tallies.
    pub fn lookup(&mut self, f: &LookupFacts) {
        let bucket = f.latency.map(latency::bucket_of);
        self.breakdown.lookup_in(f, bucket);
        self.timeline.lookup(f);
        // Unlike a server's histogram, this one also takes the latency of a lookup that
        // failed because its answer bounced off the client's closed port.
        if let (Some(latency), Some(b)) = (f.latency, bucket) {
            self.latency.add_in(b, latency);
        }
    }
}

/// Python's `round(x, 3)`: the float nearest to `x`'s exact binary value rounded to three
/// decimals (ties to even, on the exact value), as the documents write milliseconds.
///
/// A naive `(x * 1000.0).round() / 1000.0` differs: the product rounds, and `round` breaks
/// ties away from zero. Here the product only picks the digits when it is far from a tie
/// (its error is then too small to move it across); otherwise the exact decimal expansion
/// decides, as Python's dtoa does.
pub fn round3(x: f64) -> f64 {
    let y = x * 1000.0;
    if y.abs() < (1u64 << 40) as f64 {
        // |y| < 2^40: the product is off by at most 2^-13, far less than the 1e-3 margin.
        let fl = y.floor();
        let frac = y - fl;
        if (frac - 0.5).abs() > 1e-3 {
            let k = if frac < 0.5 { fl } else { fl + 1.0 };
            // k / 1000 is correctly rounded: the nearest float to the decimal k/1000.
            // Keep the sign of a result that rounds to zero, as Python does (-0.0).
            let r = k / 1000.0;
            return if r == 0.0 { 0.0f64.copysign(x) } else { r };
        }
    }
    if !x.is_finite() {
        return x;
    }
    // Rust's exact formatting rounds the exact value, ties to even; parsing is correctly
    // rounded: together they are Python's dtoa mode 3 and strtod.
    format!("{:.3}", x).parse().unwrap_or(x)
}

/// Python's `format(x, ".{precision}g")`, with `,` grouping of the integer digits when
/// `grouping` (the `,.4g` of the warnings' durations).
pub fn format_g(x: f64, precision: usize, grouping: bool) -> String {
    if x.is_nan() {
        return "nan".to_string();
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x.is_infinite() {
        return format!("{sign}inf");
    }
    let p = precision.max(1);
    // Correctly rounded to p significant digits, ties to even on the exact value.
    let e = format!("{:.*e}", p - 1, x.abs());
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    if x == 0.0 {
        return format!("{sign}0");
    }
    if exp < -4 || exp >= p as i32 {
        let (head, tail) = digits.split_at(1);
        let tail = tail.trim_end_matches('0');
        let dot = if tail.is_empty() { "" } else { "." };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{head}{dot}{tail}e{esign}{:02}", exp.unsigned_abs());
    }
    let (int_part, frac_part) = if exp >= 0 {
        let (i, f) = digits.split_at(exp as usize + 1);
        (i.to_string(), f.to_string())
    } else {
        let zeros = "0".repeat((-exp - 1) as usize);
        ("0".to_string(), format!("{zeros}{digits}"))
    };
    let frac_part = frac_part.trim_end_matches('0');
    let int_part = if grouping {
        group_thousands(&int_part)
    } else {
        int_part
    };
    if frac_part.is_empty() {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac_part}")
    }
}

fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round3_ties_go_to_even_on_the_exact_value() {
        assert_eq!(round3(0.0625), 0.062);
        assert_eq!(round3(0.0005), 0.001); // 0.0005 is a little above the tie
        assert_eq!(round3(1.0005), 1.0); // ... and 1.0005 a little below
        assert_eq!(round3(2.0), 2.0);
        assert!(round3(-0.0001).is_sign_negative());
        assert_eq!(round3(1e300), 1e300);
        assert!(round3(f64::NAN).is_nan());
    }

    #[test]
    fn format_g_is_pythons() {
        assert_eq!(format_g(1234.0, 4, true), "1,234");
        assert_eq!(format_g(12345.0, 4, true), "1.234e+04");
        assert_eq!(format_g(0.0001234, 4, false), "0.0001234");
        assert_eq!(format_g(0.00001234, 4, false), "1.234e-05");
        assert_eq!(format_g(-0.0, 4, false), "-0");
        assert_eq!(format_g(1e18, 6, false), "1e+18");
        assert_eq!(format_g(0.125, 2, false), "0.12");
        assert_eq!(format_g(31.0, 4, true), "31");
        assert_eq!(format_g(136.1, 4, true), "136.1");
        assert_eq!(format_g(1e300, 4, true), "1e+300");
    }
}
