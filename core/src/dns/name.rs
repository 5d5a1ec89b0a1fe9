//! Domain names on the wire (RFC 1035 3.1, 4.1.4) -> presentation form (RFC 4343 2.1).

use super::DnsError;

/// Longest name, counted in wire form with the final zero byte (RFC 1035 2.3.4).
pub const MAX_NAME: usize = 255;
/// Compression pointers followed in one name before it is taken for a loop.
pub const MAX_POINTERS: u32 = 32;

/// Bytes shown as themselves: printable ASCII except "." and "\", which need a backslash
/// inside a label.
const SAFE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0x21;
    while c < 0x7F {
        t[c] = c != 0x2E && c != 0x5C;
        c += 1;
    }
    t
};

/// Whether every byte of `label` is shown as itself.
fn all_safe(label: &[u8]) -> bool {
    label.iter().all(|&b| SAFE[b as usize])
}

/// Room for the longest presentation form: at most 250 label bytes fit in 255 wire bytes
/// with four labels (a label is at most 63 bytes), each shown as up to 4 characters, plus 3
/// dots: 1003 characters.
const BUF: usize = 1024;

/// A name's presentation form, built in place (on the stack, or in a reused buffer).
pub(crate) struct NameBuf {
    buf: [u8; BUF],
    len: usize,
    labels: usize,
}

impl NameBuf {
    pub(crate) fn new() -> Self {
        NameBuf {
            buf: [0; BUF],
            len: 0,
            labels: 0,
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        // Never short: BUF holds the longest name `walk` lets through.
        if let Some(dst) = self.buf.get_mut(self.len..self.len + bytes.len()) {
            dst.copy_from_slice(bytes);
            self.len += bytes.len();
        }
    }

    fn label(&mut self, label: &[u8]) {
        if self.labels > 0 {
            self.put(b".");
        }
        self.labels += 1;
        if all_safe(label) {
            self.put(label);
            return;
        }
        for &b in label {
            if b == b'.' || b == b'\\' {
                self.put(&[b'\\', b]);
            } else if SAFE[b as usize] {
                self.put(&[b]);
            } else {
                self.put(&[b'\\', b'0' + b / 100, b'0' + b / 10 % 10, b'0' + b % 10]);
            }
        }
    }

    /// The presentation form (ASCII: every byte outside printable ASCII is escaped).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        if self.labels == 0 {
            b"."
        } else {
            self.buf.get(..self.len).unwrap_or_default()
        }
    }

    /// Empty again, for the next name.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
        self.labels = 0;
    }

    /// The name in one allocation of its exact length.
    pub(crate) fn to_boxed_str(&self) -> Box<str> {
        match std::str::from_utf8(self.as_bytes()) {
            Ok(text) => Box::from(text),
            // Not reached: every byte written is printable ASCII.
            Err(_) => Box::from(&*String::from_utf8_lossy(self.as_bytes())),
        }
    }
}

/// Walk the possibly compressed name at `pos` into `out`; return the offset after it (after
/// its first pointer when it has one). Errors come in the order the bytes show them.
pub(crate) fn walk(data: &[u8], mut pos: usize, out: &mut NameBuf) -> Result<usize, DnsError> {
    // The 255-byte limit counts the wire form, final zero byte included (RFC 1035 2.3.4).
    let mut length = 1usize;
    let mut end: Option<usize> = None;
    let mut jumps = 0u32;
    loop {
        let Some(&c) = data.get(pos) else {
            return Err(DnsError::truncated("name runs past the end of the message"));
        };
        if c == 0 {
            pos += 1;
            break;
        }
        if c & 0xC0 == 0xC0 {
            let Some(&low) = data.get(pos + 1) else {
                return Err(DnsError::truncated("compression pointer cut off"));
            };
            let target = (usize::from(c & 0x3F) << 8) | usize::from(low);
            // RFC 1035 4.1.4 means pointers to point backwards, but real servers and
            // crafted captures also point forwards; the jump cap is what stops loops.
            jumps += 1;
            if jumps > MAX_POINTERS || target == pos {
                return Err(DnsError::malformed("compression pointer loop"));
            }
            end.get_or_insert(pos + 2);
            pos = target;
            continue;
        }
        if c & 0xC0 != 0 {
            return Err(DnsError::malformed(format!(
                "reserved label type 0x{:02x}",
                c & 0xC0
            )));
        }
        let n = usize::from(c);
        let Some(label) = data.get(pos + 1..pos + 1 + n) else {
            return Err(DnsError::truncated(
                "label runs past the end of the message",
            ));
        };
        length += n + 1;
        if length > MAX_NAME {
            return Err(DnsError::malformed("name longer than 255 bytes"));
        }
        out.label(label);
        pos += 1 + n;
    }
    Ok(end.unwrap_or(pos))
}

/// The usual question name, fast: uncompressed, printable, nothing to escape, not the
/// root. Its presentation form is its wire form without the first length byte and with
/// the other length bytes turned into dots, so it is one copy of the message bytes, into
/// `out`.
///
/// None for anything else (compression, bytes to escape, errors): the caller then walks the
/// name, which also finds the precise error.
fn plain(data: &[u8], start: usize, out: &mut NameBuf) -> Option<usize> {
    let mut pos = start;
    loop {
        let c = usize::from(*data.get(pos)?);
        if c == 0 {
            break;
        }
        if c > 63 || !all_safe(data.get(pos + 1..pos + 1 + c)?) {
            return None;
        }
        pos += 1 + c;
    }
    // Wire length with the final zero byte (RFC 1035 2.3.4); none for the root.
    if pos == start || pos + 1 - start > MAX_NAME {
        return None;
    }
    let text = out.buf.get_mut(..pos - start - 1)?;
    text.copy_from_slice(data.get(start + 1..pos)?);
    let mut at = usize::from(*data.get(start)?);
    while let Some(b) = text.get_mut(at) {
        at += 1 + usize::from(*b);
        *b = b'.';
    }
    out.len = pos - start - 1;
    out.labels = 1;
    Some(pos + 1)
}

/// The question name at `pos` in presentation form, into `out` (empty before), and the
/// offset after it; errors as `read_name`.
pub(crate) fn read_qname_into(
    data: &[u8],
    pos: usize,
    out: &mut NameBuf,
) -> Result<usize, DnsError> {
    if let Some(after) = plain(data, pos, out) {
        return Ok(after);
    }
    walk(data, pos, out)
}

/// Read a possibly compressed name at `pos`: its presentation form without the final dot
/// ("." for the root) and the offset after it.
///
/// Errors: truncated when the name runs past the end of `data`; malformed for a reserved
/// label type, a compression loop (more than `MAX_POINTERS` jumps) or more than 255 bytes.
pub fn read_name(data: &[u8], pos: usize) -> Result<(String, usize), DnsError> {
    let mut buf = NameBuf::new();
    let after = walk(data, pos, &mut buf)?;
    Ok((buf.to_boxed_str().into_string(), after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(labels: &[&[u8]]) -> Vec<u8> {
        let mut d = Vec::new();
        for l in labels {
            d.push(l.len() as u8);
            d.extend_from_slice(l);
        }
        d.push(0);
        d
    }

    #[test]
    fn escapes() {
        let d = wire(&[
            b"a.b",
            b"back\\slash",
            b"two words",
            b"caf\xc3\xa9",
            b"\x7f\x1b[31m",
        ]);
        assert_eq!(
            read_name(&d, 0).unwrap(),
            (
                "a\\.b.back\\\\slash.two\\032words.caf\\195\\169.\\127\\027[31m".to_string(),
                d.len()
            )
        );
    }

    #[test]
    fn longest_escaped_name_fits_the_buffer() {
        let labels: [&[u8]; 4] = [&[0xFF; 63], &[0x00; 63], &[b'.'; 63], &[0x80; 61]];
        let d = wire(&labels);
        assert_eq!(d.len(), MAX_NAME);
        let (text, after) = read_name(&d, 0).unwrap();
        assert_eq!(after, MAX_NAME);
        assert_eq!(text.len(), 63 * 4 + 63 * 4 + 63 * 2 + 61 * 4 + 3);
        let mut over = labels.to_vec();
        let longer = [0x80; 62];
        over[3] = &longer;
        assert_eq!(
            read_name(&wire(&over), 0).unwrap_err().text(),
            "name longer than 255 bytes"
        );
    }

    #[test]
    fn pointers() {
        // A name reached through a pointer: the offset after is after the pointer.
        let mut d = vec![0xC0, 0x04, 0xAA, 0xAA];
        d.extend(wire(&[b"x"]));
        assert_eq!(read_name(&d, 0).unwrap(), ("x".to_string(), 2));
        assert_eq!(
            read_name(&[0xC0, 0x00], 0).unwrap_err().text(),
            "compression pointer loop"
        );
        assert_eq!(
            read_name(&[0xC0], 0).unwrap_err().text(),
            "compression pointer cut off"
        );
        assert_eq!(
            read_name(&[0x40], 0).unwrap_err().text(),
            "reserved label type 0x40"
        );
        assert_eq!(
            read_name(&[0x9F], 0).unwrap_err().text(),
            "reserved label type 0x80"
        );
        assert_eq!(
            read_name(&[], 5).unwrap_err().text(),
            "name runs past the end of the message"
        );
    }
}
