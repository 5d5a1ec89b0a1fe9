//! SVCB and HTTPS rdata (RFC 9460 section 2.2) in presentation form.
//!
//! `priority target key=value ...`. Each SvcParam's length is checked against its key's
//! format, and keys must be strictly increasing (RFC 9460 2.2); anything else is malformed,
//! so the record is shown in generic form with the reason.

use std::borrow::Cow;

use super::rdata::{ipv4, ipv6};
use super::text::base64;
use super::wire::{quote, RdataReader};
use super::DnsError;

type Result<T> = std::result::Result<T, DnsError>;

/// SvcParamKeys registry (RFC 9460 14.3.2, RFC 9461 for dohpath, RFC 9540 for ohttp).
pub fn key_name(key: u16) -> Cow<'static, str> {
    Cow::Borrowed(match key {
        0 => "mandatory",
        1 => "alpn",
        2 => "no-default-alpn",
        3 => "port",
        4 => "ipv4hint",
        5 => "ech",
        6 => "ipv6hint",
        7 => "dohpath",
        8 => "ohttp",
        _ => return Cow::Owned(format!("key{key}")),
    })
}

/// Read the whole SVCB/HTTPS rdata from `r`.
///
/// Errors: truncated when a field or a SvcParam value runs past the rdata; malformed for
/// keys out of order, or a value of the wrong length for its key.
pub fn svcb(r: &mut RdataReader<'_>) -> Result<String> {
    let mut out = r.u16("SvcPriority")?.to_string();
    out.push(' ');
    out.push_str(&r.name("TargetName")?);
    let mut last: i32 = -1;
    while r.left() > 0 {
        let key = r.u16("SvcParamKey")?;
        if i32::from(key) <= last {
            return Err(DnsError::malformed(format!(
                "SvcParamKey {key} after {last}: keys must increase"
            )));
        }
        last = i32::from(key);
        let length = r.u16("SvcParam length")?;
        let value = r.take(usize::from(length), &format!("SvcParam {}", key_name(key)))?;
        out.push(' ');
        param(key, value, &mut out)?;
    }
    Ok(out)
}

/// Append `key=value`, or the key alone when the value's text is empty.
fn param(key: u16, value: &[u8], out: &mut String) -> Result<()> {
    let text = match key {
        0 => keys(value)?,
        1 => alpn(value)?,
        2 => empty("no-default-alpn", value)?,
        3 => port(value)?,
        4 => hints(value, 4, ipv4)?,
        5 => base64(value),
        6 => hints(value, 16, ipv6)?,
        7 => quote(value),
        8 => empty("ohttp", value)?,
        _ if value.is_empty() => String::new(),
        _ => quote(value),
    };
    out.push_str(&key_name(key));
    if !text.is_empty() {
        out.push('=');
        out.push_str(&text);
    }
    Ok(())
}

fn keys(value: &[u8]) -> Result<String> {
    if value.is_empty() || !value.len().is_multiple_of(2) {
        return Err(DnsError::malformed(format!(
            "mandatory value of {} bytes, not a list of keys",
            value.len()
        )));
    }
    let names: Vec<Cow<'static, str>> = value
        .chunks_exact(2)
        .map(|k| key_name(u16::from_be_bytes([k[0], k[1]])))
        .collect();
    Ok(names.join(","))
}

/// Characters that need no escaping inside a value list item (RFC 9460 appendix A.1).
fn plain(b: u8) -> bool {
    (0x21..0x7F).contains(&b) && !matches!(b, b',' | b'\\' | b'"')
}

fn alpn(value: &[u8]) -> Result<String> {
    let mut out = String::new();
    let mut pos = 0;
    let mut ids = 0;
    while let Some(&n) = value.get(pos) {
        let n = usize::from(n);
        let item = match value.get(pos + 1..pos + 1 + n) {
            Some(item) if n > 0 => item,
            _ => {
                return Err(DnsError::malformed(
                    "alpn id empty or longer than its value",
                ))
            }
        };
        if ids > 0 {
            out.push(',');
        }
        ids += 1;
        for &b in item {
            if plain(b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("\\{b:03}"));
            }
        }
        pos += 1 + n;
    }
    if ids == 0 {
        return Err(DnsError::malformed("alpn without an id"));
    }
    Ok(out)
}

fn empty(key: &str, value: &[u8]) -> Result<String> {
    if !value.is_empty() {
        return Err(DnsError::malformed(format!(
            "{key} has a {}-byte value, must be empty",
            value.len()
        )));
    }
    Ok(String::new())
}

fn port(value: &[u8]) -> Result<String> {
    match value {
        &[a, b] => Ok(u16::from_be_bytes([a, b]).to_string()),
        _ => Err(DnsError::malformed(format!(
            "port value is {} bytes, not 2",
            value.len()
        ))),
    }
}

fn hints(value: &[u8], size: usize, text: fn(&[u8]) -> Option<String>) -> Result<String> {
    let bad = || {
        DnsError::malformed(format!(
            "address hint of {} bytes, not a multiple of {size}",
            value.len()
        ))
    };
    if value.is_empty() || !value.len().is_multiple_of(size) {
        return Err(bad());
    }
    let addrs: Option<Vec<String>> = value.chunks_exact(size).map(text).collect();
    Ok(addrs.ok_or_else(bad)?.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(rdata: &[u8]) -> Result<String> {
        svcb(&mut RdataReader::new(rdata, 0, rdata.len()))
    }

    #[test]
    fn params() {
        let mut d = vec![0, 1, 0];
        d.extend_from_slice(b"\x00\x01\x00\x06\x02h2\x02h3\x00\x03\x00\x02\x20\xfb");
        d.extend_from_slice(b"\x00\x05\x00\x00\x02\x9b\x00\x05hello");
        assert_eq!(
            show(&d).unwrap(),
            "1 . alpn=h2,h3 port=8443 ech key667=\"hello\""
        );
    }

    #[test]
    fn malformed_params() {
        let cases: [(&[u8], &str); 4] = [
            (
                b"\x00\x01\x00\x00\x03\x00\x02\x00\x35\x00\x01\x00\x03\x02h2",
                "SvcParamKey 1 after 3: keys must increase",
            ),
            (
                b"\x00\x01\x00\x00\x01\x00\x01\x00",
                "alpn id empty or longer than its value",
            ),
            (
                b"\x00\x01\x00\x00\x04\x00\x05\x00\x00\x00\x00\x00",
                "address hint of 5 bytes, not a multiple of 4",
            ),
            (
                b"\x00\x01\x00\x00\x01\x00\x28\x02h2",
                "SvcParam alpn runs past the rdata",
            ),
        ];
        for (rdata, want) in cases {
            assert_eq!(show(rdata).unwrap_err().text(), want);
        }
    }
}
