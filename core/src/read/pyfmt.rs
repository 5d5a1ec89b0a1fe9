//! Number formats the warnings share with the rest of pcapdns: Python's `%g`, `round(x, n)`
//! and `{:,}`. Rust's exact float formatting rounds half to even on the exact binary value,
//! as Python's does, so both are built on it.

/// Python's `format(x, f".{precision}g")`.
pub fn g(x: f64, precision: usize) -> String {
    let p = precision.max(1);
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // The exponent of x once rounded to p significant digits decides the style.
    let sci = format!("{:.*e}", p - 1, x);
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    if exp < -4 || exp >= p as i32 {
        let digits = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{digits}e{sign}{:02}", exp.unsigned_abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{:.*}", decimals, x)).to_string()
    }
}

/// Python's `f"{x:g}"` (six significant digits).
pub fn g6(x: f64) -> String {
    g(x, 6)
}

/// Python's `round(x, ndigits)` for a float: the nearest float to x rounded to `ndigits`
/// decimals (half to even on the exact value).
pub fn round(x: f64, ndigits: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{:.*}", ndigits, x).parse().unwrap_or(x)
}

/// Python's `f"{n:,}"` for an integer.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_matches_python() {
        // Values checked against CPython's format(x, '.6g') / f'{x:g}'.
        let cases: [(f64, &str); 16] = [
            (281474976710656.0, "2.81475e+14"),
            (1.8446744073709552e19, "1.84467e+19"),
            (-9e9, "-9e+09"),
            (7258118400.0, "7.25812e+09"),
            (0.0, "0"),
            (-0.0, "-0"),
            (500.0, "500"),
            (0.001, "0.001"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123456.0, "123456"),
            (1234567.0, "1.23457e+06"),
            (999999.5, "1e+06"),
            (10.0, "10"),
            (2.5, "2.5"),
            (1e100, "1e+100"),
        ];
        for (x, want) in cases {
            assert_eq!(g6(x), want, "{x}");
        }
    }

    #[test]
    fn round_is_half_even_on_the_exact_value() {
        assert_eq!(round(2.675, 2), 2.67); // 2.67499999... in binary
        assert_eq!(round(0.0125, 3), 0.013);
        assert_eq!(round(0.0005, 3), 0.001);
        assert_eq!(thousands(20_000), "20,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
