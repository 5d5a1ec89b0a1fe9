//! One record's rdata -> its presentation form (RFC 1035 section 5.1 and each type's RFC).
//!
//! Every read goes through `RdataReader`, which checks each length against the record's
//! rdlength, so hostile bytes give a truncated or malformed error instead of reading into
//! the next record. Names may be compressed (RFC 3597 section 4 tells receivers to expect
//! it in the older types; some servers do it in newer ones too); the name reader bounds
//! the pointer jumps. Types without a decoder here use the RFC 3597 generic form,
//! `\# <length> <hex>`.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::names::{qtype_name, CLASS_ANY, CLASS_NONE, IN};
use super::svcb::svcb;
use super::text::{angle, base32hex, base64_or_dash, centimetres, hex, hex_or_dash, metres, utc};
use super::wire::{quote, RdataReader};
use super::DnsError;
use crate::types::addr_text;

type Result<T> = std::result::Result<T, DnsError>;

/// A decoder reads the whole rdata; `None` means "show it in generic form".
type Decoder = fn(&mut RdataReader<'_>) -> Result<Option<String>>;

/// RFC 3597 section 5: `\# <length> <hex>` (`\# 0` for empty rdata).
pub fn generic(raw: &[u8]) -> String {
    if raw.is_empty() {
        "\\# 0".to_string()
    } else {
        format!("\\# {} {}", raw.len(), hex(raw))
    }
}

/// The presentation form of the rdata at `msg[pos..end]`.
///
/// Errors: truncated when a field runs past the rdata; malformed when the fields do not
/// fill the rdata exactly, or a value is invalid.
pub fn present(msg: &[u8], pos: usize, end: usize, rtype: u16, rclass: u16) -> Result<String> {
    let stop = end.min(msg.len());
    let raw = msg.get(pos.min(stop)..stop).unwrap_or_default();
    if raw.is_empty() && (rclass == CLASS_ANY || rclass == CLASS_NONE) {
        return Ok(generic(raw)); // RFC 2136 2.4/2.5: an UPDATE prerequisite or deletion
    }
    // A, WKS and AAAA are defined for class IN only (RFC 1035 3.4, RFC 3596). The top bit
    // of an mDNS class is the cache-flush flag (RFC 6762 10.2); class NONE marks an UPDATE
    // deletion, whose rdata is that of the zone's class (RFC 2136 2.5.4).
    let in_only = matches!(rtype, 1 | 11 | 28);
    let decode = match decoder(rtype) {
        Some(d) if !in_only || matches!(rclass & 0x7FFF, IN | CLASS_NONE) => d,
        _ => return Ok(generic(raw)),
    };
    let mut r = RdataReader::new(msg, pos, end);
    let Some(text) = decode(&mut r)? else {
        return Ok(generic(raw));
    };
    if r.left() > 0 {
        return Err(DnsError::malformed(format!(
            "{} bytes left after the {} rdata",
            r.left(),
            qtype_name(rtype)
        )));
    }
    Ok(text)
}

fn decoder(rtype: u16) -> Option<Decoder> {
    Some(match rtype {
        1 => a,
        2..=5 | 7..=9 | 12 | 39 => name,
        6 => soa,
        11 => wks,
        13 => hinfo,
        14 | 17 => two_names,
        15 | 18 | 21 | 36 => pref_name,
        16 | 19 | 20 | 99 => strings,
        24 | 46 => sig,
        25 | 48 | 60 => key,
        26 => px,
        28 => aaaa,
        29 => loc,
        33 => srv,
        35 => naptr,
        43 | 59 | 32768 | 32769 => ds,
        44 => sshfp,
        47 => nsec,
        49 | 61 => base64,
        50 => nsec3,
        51 => nsec3param,
        52 | 53 => tlsa,
        62 => csync,
        63 => zonemd,
        64 | 65 => svcb_text,
        108 => eui48,
        109 => eui64,
        249 => tkey,
        256 => uri,
        257 => caa,
        _ => return None,
    })
}

// -- the decoders: each reads the whole rdata, or returns None for "show it as generic" ---

/// Four bytes of an IPv4 address as inet_ntop writes them.
pub(crate) fn ipv4(raw: &[u8]) -> Option<String> {
    let b: [u8; 4] = raw.try_into().ok()?;
    Some(addr_text(&IpAddr::V4(Ipv4Addr::from(b))))
}

/// Sixteen bytes of an IPv6 address as inet_ntop writes them.
pub(crate) fn ipv6(raw: &[u8]) -> Option<String> {
    let b: [u8; 16] = raw.try_into().ok()?;
    Some(addr_text(&IpAddr::V6(Ipv6Addr::from(b))))
}

fn v4(r: &mut RdataReader<'_>) -> Result<String> {
    let what = "IPv4 address";
    ipv4(r.take(4, what)?).ok_or_else(|| DnsError::truncated(format!("{what} runs past the rdata")))
}

fn a(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    v4(r).map(Some)
}

fn aaaa(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let what = "IPv6 address";
    ipv6(r.take(16, what)?)
        .map(Some)
        .ok_or_else(|| DnsError::truncated(format!("{what} runs past the rdata")))
}

fn name(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    r.name("name").map(Some)
}

fn two_names(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let first = r.name("name")?;
    Ok(Some(format!("{first} {}", r.name("name")?)))
}

fn soa(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let mut out = r.name("MNAME")?;
    out.push(' ');
    out.push_str(&r.name("RNAME")?);
    for _ in 0..5 {
        let _ = write!(out, " {}", r.u32("SOA counter")?);
    }
    Ok(Some(out))
}

fn wks(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let mut out = v4(r)?;
    let _ = write!(out, " {}", r.u8("protocol")?);
    for bit in bits(r.rest()?) {
        let _ = write!(out, " {bit}");
    }
    Ok(Some(out))
}

fn pref_name(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let preference = r.u16("preference")?;
    Ok(Some(format!("{preference} {}", r.name("name")?)))
}

fn px(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let preference = r.u16("preference")?;
    let map822 = r.name("MAP822")?;
    Ok(Some(format!(
        "{preference} {map822} {}",
        r.name("MAPX400")?
    )))
}

fn strings(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    r.strings().map(Some)
}

fn hinfo(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let cpu = r.string("CPU")?;
    Ok(Some(format!("{cpu} {}", r.string("OS")?)))
}

fn srv(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let (priority, weight, port) = (r.u16("priority")?, r.u16("weight")?, r.u16("port")?);
    Ok(Some(format!(
        "{priority} {weight} {port} {}",
        r.name("target")?
    )))
}

fn naptr(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let (order, preference) = (r.u16("order")?, r.u16("preference")?);
    let flags = r.string("flags")?;
    let services = r.string("services")?;
    let regexp = r.string("regexp")?;
    Ok(Some(format!(
        "{order} {preference} {flags} {services} {regexp} {}",
        r.name("replacement")?
    )))
}

/// RRSIG (RFC 4034 3.2), SIG (RFC 2535 4.1).
fn sig(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let covered = qtype_name(r.u16("type covered")?);
    let (alg, labels, ttl) = (r.u8("algorithm")?, r.u8("labels")?, r.u32("original TTL")?);
    let expiration = utc(r.u32("expiration")?);
    let inception = utc(r.u32("inception")?);
    let tag = r.u16("key tag")?;
    let signer = r.name("signer")?;
    let signature = base64_or_dash(r.rest()?);
    Ok(Some(format!(
        "{covered} {alg} {labels} {ttl} {expiration} {inception} {tag} {signer} {signature}"
    )))
}

/// DNSKEY, CDNSKEY, KEY (RFC 4034 2.2).
fn key(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let (flags, protocol, alg) = (r.u16("flags")?, r.u8("protocol")?, r.u8("algorithm")?);
    Ok(Some(format!(
        "{flags} {protocol} {alg} {}",
        base64_or_dash(r.rest()?)
    )))
}

/// DS, CDS, DLV, TA (RFC 4034 5.3).
fn ds(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let (tag, alg, digest_type) = (r.u16("key tag")?, r.u8("algorithm")?, r.u8("digest type")?);
    Ok(Some(format!(
        "{tag} {alg} {digest_type} {}",
        hex_or_dash(r.rest()?)
    )))
}

fn sshfp(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let (alg, fp_type) = (r.u8("algorithm")?, r.u8("fingerprint type")?);
    Ok(Some(format!("{alg} {fp_type} {}", hex_or_dash(r.rest()?))))
}

/// TLSA, SMIMEA (RFC 6698 2.2).
fn tlsa(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let (usage, selector, mtype) = (r.u8("usage")?, r.u8("selector")?, r.u8("matching type")?);
    Ok(Some(format!(
        "{usage} {selector} {mtype} {}",
        hex_or_dash(r.rest()?)
    )))
}

fn nsec(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let mut out = r.name("next name")?;
    types(r.rest()?, &mut out)?;
    Ok(Some(out))
}

/// RFC 5155 3.3.
fn nsec3(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let (alg, flags, iterations) = (
        r.u8("hash algorithm")?,
        r.u8("flags")?,
        r.u16("iterations")?,
    );
    let salt_length = r.u8("salt length")?;
    let salt = hex_or_dash(r.take(usize::from(salt_length), "salt")?);
    let hash_length = r.u8("hash length")?;
    // RFC 5155 3.3: base32hex without padding, lower case as in the RFC's examples.
    let next = base32hex(r.take(usize::from(hash_length), "next hashed owner")?);
    let mut out = format!("{alg} {flags} {iterations} {salt} {next}");
    types(r.rest()?, &mut out)?;
    Ok(Some(out))
}

fn nsec3param(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let (alg, flags, iterations) = (
        r.u8("hash algorithm")?,
        r.u8("flags")?,
        r.u16("iterations")?,
    );
    let salt_length = r.u8("salt length")?;
    let salt = hex_or_dash(r.take(usize::from(salt_length), "salt")?);
    Ok(Some(format!("{alg} {flags} {iterations} {salt}")))
}

/// RFC 7477 2.1.
fn csync(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let (serial, flags) = (r.u32("SOA serial")?, r.u16("flags")?);
    let mut out = format!("{serial} {flags}");
    types(r.rest()?, &mut out)?;
    Ok(Some(out))
}

/// RFC 8976 2.2.
fn zonemd(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let (serial, scheme, alg) = (r.u32("serial")?, r.u8("scheme")?, r.u8("hash algorithm")?);
    Ok(Some(format!(
        "{serial} {scheme} {alg} {}",
        hex_or_dash(r.rest()?)
    )))
}

/// DHCID, OPENPGPKEY.
fn base64(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    Ok(Some(base64_or_dash(r.rest()?)))
}

/// RFC 1876 section 3; a version other than 0 has no presentation (shown as generic).
fn loc(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    if r.u8("version")? != 0 {
        r.pos = r.end;
        return Ok(None);
    }
    let size = centimetres(r.u8("precision")?)?;
    let horiz = centimetres(r.u8("precision")?)?;
    let vert = centimetres(r.u8("precision")?)?;
    let (lat, lon, alt) = (r.u32("latitude")?, r.u32("longitude")?, r.u32("altitude")?);
    // Sizes are at most 9e9 cm, exact in an i64 and an f64.
    let cm = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Ok(Some(format!(
        "{} {} {} {} {} {}",
        angle(lat, ['N', 'S']),
        angle(lon, ['E', 'W']),
        metres(i64::from(alt) - 10_000_000),
        metres(cm(size)),
        metres(cm(horiz)),
        metres(cm(vert)),
    )))
}

/// RFC 8659 4.1.
fn caa(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let flags = r.u8("flags")?;
    let tag_length = r.u8("tag length")?;
    let tag = r.take(usize::from(tag_length), "tag")?;
    if tag.is_empty() || !tag.iter().all(u8::is_ascii_alphanumeric) {
        return Err(DnsError::malformed("CAA tag is not letters and digits"));
    }
    let tag = String::from_utf8_lossy(tag);
    Ok(Some(format!("{flags} {tag} {}", quote(r.rest()?))))
}

/// RFC 7553 4.5.
fn uri(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let (priority, weight) = (r.u16("priority")?, r.u16("weight")?);
    Ok(Some(format!("{priority} {weight} {}", quote(r.rest()?))))
}

/// RFC 2930 2.
fn tkey(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    let alg = r.name("algorithm")?;
    let inception = utc(r.u32("inception")?);
    let expiration = utc(r.u32("expiration")?);
    let (mode, error) = (r.u16("mode")?, r.u16("error")?);
    let key_size = r.u16("key size")?;
    let key = base64_or_dash(r.take(usize::from(key_size), "key")?);
    let other_size = r.u16("other size")?;
    let other = base64_or_dash(r.take(usize::from(other_size), "other data")?);
    Ok(Some(format!(
        "{alg} {inception} {expiration} {mode} {error} {key} {other}"
    )))
}

/// EUI48, EUI64 (RFC 7043).
fn eui(r: &mut RdataReader<'_>, size: usize, what: &str) -> Result<Option<String>> {
    let mut out = String::with_capacity(size * 3);
    for (i, b) in r.take(size, what)?.iter().enumerate() {
        if i > 0 {
            out.push('-');
        }
        let _ = write!(out, "{b:02x}");
    }
    Ok(Some(out))
}

fn eui48(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    eui(r, 6, "EUI-48")
}

fn eui64(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    eui(r, 8, "EUI-64")
}

fn svcb_text(r: &mut RdataReader<'_>) -> Result<Option<String>> {
    svcb(r).map(Some)
}

// -- field formats -------------------------------------------------------------------------

/// Positions of the set bits, most significant bit of the first byte as 0.
fn bits(bitmap: &[u8]) -> impl Iterator<Item = usize> + '_ {
    bitmap.iter().enumerate().flat_map(|(i, &b)| {
        (0..8)
            .filter(move |j| b & (0x80 >> j) != 0)
            .map(move |j| i * 8 + j)
    })
}

/// Append " NAME" for each type of an NSEC/NSEC3/CSYNC type bitmap (RFC 4034 4.1.2): blocks
/// of window number, bitmap length 1-32, bitmap.
fn types(raw: &[u8], out: &mut String) -> Result<()> {
    let mut pos = 0;
    while pos < raw.len() {
        let (Some(&window), Some(&length)) = (raw.get(pos), raw.get(pos + 1)) else {
            return Err(DnsError::truncated("type bitmap window header cut off"));
        };
        if !(1..=32).contains(&length) {
            return Err(DnsError::malformed(format!(
                "type bitmap window length {length}, not 1 to 32"
            )));
        }
        let Some(bitmap) = raw.get(pos + 2..pos + 2 + usize::from(length)) else {
            return Err(DnsError::truncated("type bitmap runs past the rdata"));
        };
        for bit in bits(bitmap) {
            // A bitmap holds at most 256 bits: the type is window * 256 + bit, a u16.
            let rtype = usize::from(window) * 256 + bit;
            out.push(' ');
            out.push_str(&qtype_name(u16::try_from(rtype).unwrap_or(u16::MAX)));
        }
        pos += 2 + usize::from(length);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(rtype: u16, rdata: &[u8]) -> Result<String> {
        present(rdata, 0, rdata.len(), rtype, IN)
    }

    #[test]
    fn generic_form() {
        assert_eq!(generic(b""), "\\# 0");
        assert_eq!(generic(b"\x01\xab"), "\\# 2 01ab");
        assert_eq!(show(10, b"\x00\x01").unwrap(), "\\# 2 0001");
        assert_eq!(present(b"", 0, 0, 5, CLASS_ANY).unwrap(), "\\# 0");
    }

    #[test]
    fn address_types_by_class() {
        let a = [192, 0, 2, 1];
        for (rclass, want) in [
            (1, "192.0.2.1"),
            (0x8001, "192.0.2.1"),
            (254, "192.0.2.1"),
            (3, "\\# 4 c0000201"),
        ] {
            assert_eq!(present(&a, 0, 4, 1, rclass).unwrap(), want);
        }
    }

    #[test]
    fn leftover_and_short_fields() {
        assert_eq!(
            show(28, &[0; 17]).unwrap_err().text(),
            "1 bytes left after the AAAA rdata"
        );
        assert_eq!(
            show(1, b"\x01\x02").unwrap_err().text(),
            "IPv4 address runs past the rdata"
        );
        assert_eq!(
            show(47, b"\x00\x00\x00").unwrap_err().text(),
            "type bitmap window length 0, not 1 to 32"
        );
        assert_eq!(
            show(257, b"\x00\x02a-x").unwrap_err().text(),
            "CAA tag is not letters and digits"
        );
    }

    #[test]
    fn loc_and_nsec() {
        let mut loc = vec![0, 0x12, 0x15, 0x13];
        for v in [2_282_029_648u32, 1_708_315_648, 10_000_000] {
            loc.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(
            show(29, &loc).unwrap(),
            "37 22 26.000 N 121 59 28.000 W 0.00m 1.00m 1000.00m 10.00m"
        );
        assert_eq!(show(29, &[1, 0, 0]).unwrap(), "\\# 3 010000");
        // RFC 4034 4.3's bitmap after a root next name: window 0 (A MX RRSIG NSEC), then
        // window 4 with bit 210 (TYPE1234).
        let mut nsec = b"\x00\x00\x06\x40\x01\x00\x00\x00\x03\x04\x1b".to_vec();
        nsec.extend([0; 26]);
        nsec.push(0x20);
        assert_eq!(show(47, &nsec).unwrap(), ". A MX RRSIG NSEC TYPE1234");
    }
}
