//! Deep decoding of a response's answer section, for evidence only.
//!
//! The hot path decodes just the header and question (`super::parse`). When a user asks for
//! transactions, the answer section is decoded here, record by record: the questions are
//! skipped, then each answer's owner, type, TTL and rdata are read with every length
//! checked. Only the answer section is read, so a record type nobody decodes in the
//! authority or additional section cannot spoil it, and an answer whose rdata does not
//! decode spoils only its own line.

use super::names::qtype_name;
use super::rdata::{generic, present};
use super::{read_name, DnsError};

/// At most this many answer records are decoded and shown per response.
pub const MAX_RECORDS: usize = 20;

const HEADER: usize = 12;
/// TYPE, CLASS, TTL, RDLENGTH (RFC 1035 4.1.3).
const RR_FIXED: usize = 10;

/// The decoded answer section of one response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnswerSection {
    /// Zone-file-like lines, `name TTL TYPE data`, in wire order, at most `MAX_RECORDS`. A
    /// record whose rdata does not decode is kept as `name TTL TYPE \# len hex ; malformed:
    /// reason`.
    pub records: Vec<String>,
    /// The first problem met in the section (a malformed record, or the damage that
    /// stopped the walk before the announced count), prefixed with the record's position;
    /// None when every record read decoded.
    pub error: Option<String>,
}

/// Decode the answer section of the DNS message `data`. Never fails: damage ends the list
/// early and is described in `error`.
pub fn answer_section(data: &[u8]) -> AnswerSection {
    let Some(h) = data.get(..HEADER) else {
        return AnswerSection {
            records: Vec::new(),
            error: Some("message shorter than the 12-byte header".to_string()),
        };
    };
    let qdcount = u16::from_be_bytes([h[4], h[5]]);
    let ancount = u16::from_be_bytes([h[6], h[7]]);
    let mut pos = match skip_questions(data, qdcount) {
        Ok(pos) => pos,
        Err(e) => {
            return AnswerSection {
                records: Vec::new(),
                error: Some(format!("question section: {e}")),
            }
        }
    };
    let mut section = AnswerSection::default();
    for _ in 0..usize::from(ancount).min(MAX_RECORDS) {
        match record(data, pos) {
            Ok((line, after, problem)) => {
                section.records.push(line);
                pos = after;
                if let (Some(problem), None) = (problem, &section.error) {
                    section.error = Some(format!("answer {}: {problem}", section.records.len()));
                }
            }
            Err(e) => {
                if section.error.is_none() {
                    section.error = Some(format!("answer {}: {e}", section.records.len() + 1));
                }
                return section;
            }
        }
    }
    section
}

fn skip_questions(data: &[u8], qdcount: u16) -> Result<usize, DnsError> {
    let mut pos = HEADER;
    for _ in 0..qdcount {
        let (_name, after) = read_name(data, pos)?;
        pos = after + 4; // QTYPE, QCLASS
        if pos > data.len() {
            return Err(DnsError::truncated(
                "question ends before its type and class",
            ));
        }
    }
    Ok(pos)
}

/// One resource record at `pos`: its line, the offset after it, and the reason its rdata
/// did not decode (None when it did).
///
/// Errors: the owner name or the fixed fields are damaged, or the rdata runs past the
/// message; the records after it cannot be found.
fn record(data: &[u8], pos: usize) -> Result<(String, usize, Option<String>), DnsError> {
    let (owner, pos) = read_name(data, pos)?;
    let Some(&[t0, t1, c0, c1, l0, l1, l2, l3, r0, r1]) = data.get(pos..pos + RR_FIXED) else {
        return Err(DnsError::truncated(
            "record ends before its type, class, TTL and length",
        ));
    };
    let rtype = u16::from_be_bytes([t0, t1]);
    let rclass = u16::from_be_bytes([c0, c1]);
    let ttl = u32::from_be_bytes([l0, l1, l2, l3]);
    let rdlength = u16::from_be_bytes([r0, r1]);
    let start = pos + RR_FIXED;
    let end = start + usize::from(rdlength);
    let Some(raw) = data.get(start..end) else {
        return Err(DnsError::truncated(format!(
            "{rdlength}-byte rdata runs past the end of the message"
        )));
    };
    let name = qtype_name(rtype);
    Ok(match present(data, start, end, rtype, rclass) {
        Ok(text) => (format!("{owner} {ttl} {name} {text}"), end, None),
        Err(e) => (
            format!("{owner} {ttl} {name} {} ; malformed: {e}", generic(raw)),
            end,
            Some(format!("{name} rdata: {e}")),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUESTION: &[u8] = b"\x07example\x03com\x00\x00\x01\x00\x01";

    fn response(ancount: u16, answers: &[u8]) -> Vec<u8> {
        let mut d = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        d[6..8].copy_from_slice(&ancount.to_be_bytes());
        d.extend_from_slice(QUESTION);
        d.extend_from_slice(answers);
        d
    }

    fn rr(rtype: u16, rdata: &[u8]) -> Vec<u8> {
        let mut d = vec![0xC0, 0x0C];
        d.extend_from_slice(&rtype.to_be_bytes());
        d.extend_from_slice(&[0, 1, 0, 0, 1, 0x2C]);
        d.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        d.extend_from_slice(rdata);
        d
    }

    #[test]
    fn records_and_the_first_problem() {
        let mut answers = rr(1, b"\xc0\x00\x02");
        answers.extend(rr(5, b"\x03www\xc0\x0c"));
        answers.extend(rr(28, b""));
        let s = answer_section(&response(3, &answers));
        assert_eq!(
            s.records,
            [
                "example.com 300 A \\# 3 c00002 ; malformed: IPv4 address runs past the rdata",
                "example.com 300 CNAME www.example.com.",
                "example.com 300 AAAA \\# 0 ; malformed: IPv6 address runs past the rdata",
            ]
        );
        assert_eq!(
            s.error.as_deref(),
            Some("answer 1: A rdata: IPv4 address runs past the rdata")
        );
    }

    #[test]
    fn damage_ends_the_walk() {
        let s = answer_section(&response(2, &rr(1, &[192, 0, 2, 1])));
        assert_eq!(s.records, ["example.com 300 A 192.0.2.1"]);
        assert_eq!(
            s.error.as_deref(),
            Some("answer 2: name runs past the end of the message")
        );
        let s = answer_section(b"\x12\x34\x81");
        assert_eq!(
            s.error.as_deref(),
            Some("message shorter than the 12-byte header")
        );
        let mut d = response(1, b"");
        d[5] = 2;
        assert_eq!(
            answer_section(&d).error.as_deref(),
            Some("question section: name runs past the end of the message")
        );
    }

    #[test]
    fn at_most_max_records() {
        let answers: Vec<u8> = (0..25).flat_map(|i| rr(1, &[10, 0, 0, i])).collect();
        let s = answer_section(&response(25, &answers));
        assert_eq!((s.records.len(), s.error), (MAX_RECORDS, None));
    }
}
