//! Bounded reads inside one record's rdata, and the character-string presentation.

use super::name::{walk, NameBuf};
use super::{DnsError, ErrorKind};

/// A cursor over one record's rdata, `msg[pos..end]`, that never reads past `end` (nor
/// past the message, whatever `end` says).
pub struct RdataReader<'a> {
    msg: &'a [u8],
    pub pos: usize,
    pub end: usize,
}

impl<'a> RdataReader<'a> {
    pub fn new(msg: &'a [u8], pos: usize, end: usize) -> Self {
        RdataReader { msg, pos, end }
    }

    fn past(what: &str) -> DnsError {
        DnsError::truncated(format!("{what} runs past the rdata"))
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DnsError> {
        let stop = self.pos.checked_add(n).filter(|&s| s <= self.end);
        let bytes = stop
            .and_then(|s| self.msg.get(self.pos..s))
            .ok_or_else(|| Self::past(what))?;
        self.pos += n;
        Ok(bytes)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, DnsError> {
        match self.take(1, what)? {
            &[b] => Ok(b),
            _ => Err(Self::past(what)),
        }
    }

    pub fn u16(&mut self, what: &str) -> Result<u16, DnsError> {
        match self.take(2, what)? {
            &[a, b] => Ok(u16::from_be_bytes([a, b])),
            _ => Err(Self::past(what)),
        }
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, DnsError> {
        match self.take(4, what)? {
            &[a, b, c, d] => Ok(u32::from_be_bytes([a, b, c, d])),
            _ => Err(Self::past(what)),
        }
    }

    pub fn rest(&mut self) -> Result<&'a [u8], DnsError> {
        self.take(self.left(), "rest")
    }

    pub fn left(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    /// A domain name with its final dot ("." for the root).
    pub fn name(&mut self, what: &str) -> Result<String, DnsError> {
        if self.pos >= self.end {
            return Err(Self::past(what));
        }
        let mut buf = NameBuf::new();
        let after = match walk(self.msg, self.pos, &mut buf) {
            Ok(after) => after,
            Err(e) if e.kind == ErrorKind::Truncated => {
                return Err(DnsError::truncated(format!("{what}: {e}")))
            }
            Err(e) => return Err(e),
        };
        if after > self.end {
            return Err(Self::past(what));
        }
        self.pos = after;
        let text = buf.to_boxed_str().into_string();
        Ok(if text == "." { text } else { text + "." })
    }

    /// A <character-string> (RFC 1035 3.3), quoted for presentation.
    pub fn string(&mut self, what: &str) -> Result<String, DnsError> {
        let n = self.u8(what)?;
        Ok(quote(self.take(usize::from(n), what)?))
    }

    /// One or more character-strings filling the rdata (TXT, SPF, HINFO's pair...).
    pub fn strings(&mut self) -> Result<String, DnsError> {
        let mut out = self.string("character-string")?;
        while self.left() > 0 {
            out.push(' ');
            out.push_str(&self.string("character-string")?);
        }
        Ok(out)
    }
}

/// Quoted presentation of a character-string: `"` and `\` escaped, bytes outside printable
/// ASCII as `\DDD` (RFC 1035 5.1), so the text survives JSON and terminals.
pub fn quote(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len() + 2);
    out.push('"');
    for &b in raw {
        if b == b'"' || b == b'\\' {
            out.push('\\');
            out.push(char::from(b));
        } else if (0x20..0x7F).contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\{b:03}"));
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stay_inside_the_rdata() {
        let msg = [0, 1, 2, 3, 4, 5, 6, 7];
        let mut r = RdataReader::new(&msg, 2, 6);
        assert_eq!(r.u16("a").unwrap(), 0x0203);
        assert_eq!(r.left(), 2);
        assert_eq!(r.u32("b").unwrap_err().text(), "b runs past the rdata");
        assert_eq!(r.u8("c").unwrap(), 4);
        assert_eq!(r.rest().unwrap(), &[5]);
        // An end past the message is not believed either.
        let mut r = RdataReader::new(&msg, 6, 100);
        assert_eq!(r.u32("d").unwrap_err().text(), "d runs past the rdata");
    }

    #[test]
    fn strings_and_names() {
        let msg = b"\x02hi\x03a\"\\\x01\xff";
        let mut r = RdataReader::new(msg, 0, msg.len());
        assert_eq!(r.strings().unwrap(), "\"hi\" \"a\\\"\\\\\" \"\\255\"");
        let msg = b"\x01a\x00\x00";
        assert_eq!(RdataReader::new(msg, 0, 4).name("n").unwrap(), "a.");
        assert_eq!(RdataReader::new(msg, 3, 4).name("n").unwrap(), ".");
        assert_eq!(
            RdataReader::new(msg, 0, 2).name("n").unwrap_err().text(),
            "n runs past the rdata"
        );
        assert_eq!(
            RdataReader::new(b"\x05ab", 0, 3)
                .name("mname")
                .unwrap_err()
                .text(),
            "mname: label runs past the end of the message"
        );
    }
}
