//! Field formats of the rdata presentation forms: base64 (RFC 4648 4), base32hex without
//! padding (RFC 4648 7, as NSEC3 writes it), hex, the UTC timestamps of RRSIG and TKEY,
//! and the numbers of LOC (RFC 1876).

use std::fmt::Write;

use super::DnsError;

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/// RFC 4648 7's alphabet in lower case, as RFC 5155's examples write the hashes.
const BASE32HEX: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// Standard base64 with padding.
pub fn base64(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len().div_ceil(3) * 4);
    for chunk in raw.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[(n >> (18 - 6 * i) & 0x3F) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Base32hex in lower case, without the padding.
pub fn base32hex(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len() * 8 / 5 + 1);
    let (mut bits, mut held) = (0u32, 0u32);
    for &b in raw {
        bits = (bits << 8 | u32::from(b)) & 0xFFFF;
        held += 8;
        while held >= 5 {
            held -= 5;
            out.push(char::from(BASE32HEX[(bits >> held & 0x1F) as usize]));
        }
    }
    if held > 0 {
        out.push(char::from(BASE32HEX[(bits << (5 - held) & 0x1F) as usize]));
    }
    out
}

/// Lower-case hex.
pub fn hex(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len() * 2);
    for b in raw {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A field's base64, or "-" when it is empty.
pub fn base64_or_dash(raw: &[u8]) -> String {
    if raw.is_empty() {
        "-".to_string()
    } else {
        base64(raw)
    }
}

/// A field's hex, or "-" when it is empty (RFC 5155 3.3 for an empty salt).
pub fn hex_or_dash(raw: &[u8]) -> String {
    if raw.is_empty() {
        "-".to_string()
    } else {
        hex(raw)
    }
}

/// RFC 4034 3.2: YYYYMMDDHHmmSS in UTC (serial arithmetic is the validator's job).
pub fn utc(t: u32) -> String {
    let days = i64::from(t / 86_400);
    let secs = t % 86_400;
    // Days since 1970-01-01 -> civil date (H. Hinnant's days_from_civil inverse).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// RFC 1876: a size or precision is mantissa (high nibble) x 10^exponent (low) cm.
pub fn centimetres(byte: u8) -> Result<u64, DnsError> {
    let (mantissa, exponent) = (byte >> 4, byte & 0xF);
    if mantissa > 9 || exponent > 9 {
        return Err(DnsError::malformed(format!(
            "LOC size or precision 0x{byte:02x} is not decimal"
        )));
    }
    Ok(u64::from(mantissa) * 10u64.pow(u32::from(exponent)))
}

/// RFC 1876: thousandths of an arc second, offset by 2^31 (the equator / meridian).
pub fn angle(value: u32, hemispheres: [char; 2]) -> String {
    let ms = i64::from(value) - (1i64 << 31);
    let hemi = if ms >= 0 {
        hemispheres[0]
    } else {
        hemispheres[1]
    };
    let ms = ms.abs();
    // An integer below 2^53 over 1000: one correctly rounded division, as Python's `/`.
    let seconds = (ms % 60_000) as f64 / 1000.0;
    format!(
        "{} {} {seconds:.3} {hemi}",
        ms / 3_600_000,
        ms % 3_600_000 / 60_000
    )
}

/// Metres with two decimals of a centimetre count (exact in an f64, divided once).
pub fn metres(cm: i64) -> String {
    format!("{:.2}m", cm as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_base32hex_as_rfc_4648_10() {
        let cases = ["", "f", "fo", "foo", "foob", "fooba", "foobar"];
        let b64 = [
            "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy",
        ];
        let b32 = [
            "",
            "co",
            "cpng",
            "cpnmu",
            "cpnmuog",
            "cpnmuoj1",
            "cpnmuoj1e8",
        ];
        for ((c, want64), want32) in cases.iter().zip(b64).zip(b32) {
            assert_eq!(base64(c.as_bytes()), want64);
            assert_eq!(base32hex(c.as_bytes()), want32);
        }
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "19700101000000");
        assert_eq!(utc(951_782_400), "20000229000000");
        assert_eq!(utc(4_107_542_400), "21000301000000");
        assert_eq!(utc(u32::MAX), "21060207062815");
    }

    #[test]
    fn loc_numbers() {
        assert_eq!(centimetres(0x13).unwrap(), 1000);
        assert_eq!(
            centimetres(0xA0).unwrap_err().text(),
            "LOC size or precision 0xa0 is not decimal"
        );
        assert_eq!(angle(2_282_029_648, ['N', 'S']), "37 22 26.000 N");
        assert_eq!(angle((1 << 31) - 1, ['E', 'W']), "0 0 0.001 W");
        assert_eq!(metres(-10_000_000), "-100000.00m");
        assert_eq!(metres(1), "0.01m");
    }
}
