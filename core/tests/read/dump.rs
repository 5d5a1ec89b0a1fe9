//! What the reader makes of some paths, in the JSON form of the fixtures in
//! tests/fixtures/read/ (generated from the former Python reader): shared by the fixture
//! test and the read_dump example.

use flate2::Crc;
use pcapdns_core::read::{open_inputs, FileInfo, InputError, InputErrorKind};
use pcapdns_core::types::Record;
use serde_json::{json, Map, Value};

/// Cases with more records than this keep only the digest of their record stream.
pub const LIST_RECORDS: usize = 300;

fn crc32(data: &[u8]) -> u32 {
    let mut c = Crc::new();
    c.update(data);
    c.sum()
}

/// A time as text that parses back to the same float.
fn t(x: Option<f64>) -> Value {
    x.map_or(Value::Null, |x| Value::String(format!("{x:?}")))
}

fn error(e: &InputError, at: &str) -> Value {
    let kind = match e.kind {
        InputErrorKind::Input => "input",
        InputErrorKind::NotACapture => "not_a_capture",
        InputErrorKind::UnsupportedLinkType => "unsupported_link_type",
    };
    json!({"kind": kind, "message": e.message, "at": at})
}

fn file(f: &FileInfo) -> Value {
    let names: Map<String, Value> = f
        .interface_names
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "path": f.path,
        "size": f.size,
        "format": f.format,
        "gzip": f.gzip,
        "link_types": f.link_types,
        "interface_names": names,
        "packets": f.packets,
        "first_time": t(f.first_time),
        "last_time": t(f.last_time),
        "truncated": f.truncated,
        "warnings": f.warnings,
        "bytes_read": f.bytes_read,
        "bad_timestamps": f.bad_timestamps,
    })
}

pub fn dump(case: &str, paths: &[String], window: f64) -> Value {
    let mut out = Map::new();
    out.insert("case".into(), json!(case));
    out.insert("paths".into(), json!(paths));
    out.insert("window".into(), json!(window));
    let mut reader = match open_inputs(paths, window) {
        Ok(r) => r,
        Err(e) => {
            out.insert("error".into(), error(&e, "open"));
            return Value::Object(out);
        }
    };
    let mut records = Vec::new();
    let mut digest = Crc::new();
    let mut count = 0usize;
    let mut rec = Record {
        frame: 0,
        time: 0.0,
        link_type: 0,
        iface: 0,
        data: Vec::new(),
    };
    while reader.next_record_into(&mut rec) {
        count += 1;
        let mut head = Vec::with_capacity(28);
        head.extend_from_slice(&rec.frame.to_le_bytes());
        head.extend_from_slice(&rec.time.to_bits().to_le_bytes());
        head.extend_from_slice(&rec.link_type.to_le_bytes());
        head.extend_from_slice(&rec.iface.to_le_bytes());
        head.extend_from_slice(&(rec.data.len() as u32).to_le_bytes());
        digest.update(&head);
        digest.update(&rec.data);
        if records.len() <= LIST_RECORDS {
            records.push(json!([
                rec.frame,
                t(Some(rec.time)),
                rec.link_type,
                rec.iface,
                rec.data.len(),
                crc32(&rec.data)
            ]));
        }
    }
    if let Some(e) = reader.error() {
        out.insert("error".into(), error(e, "read"));
    }
    out.insert("count".into(), json!(count));
    out.insert("digest".into(), json!(digest.sum()));
    if count <= LIST_RECORDS {
        out.insert("records".into(), Value::Array(records));
    }
    if reader.error().is_some() {
        return Value::Object(out);
    }
    out.insert(
        "files".into(),
        Value::Array(reader.files().iter().map(file).collect()),
    );
    out.insert("open_warnings".into(), json!(reader.open_warnings()));
    out.insert("late_warning".into(), json!(reader.late_warning()));
    out.insert(
        "stats".into(),
        json!({
            "records": reader.records(),
            "late": reader.late(),
            "released_early": reader.released_early(),
            "most_behind": t(Some(reader.most_behind())),
            "newest": t(Some(reader.newest())),
        }),
    );
    out.insert("total_bytes".into(), json!(reader.total_bytes()));
    out.insert("bytes_read".into(), json!(reader.bytes_read()));
    Value::Object(out)
}

/// `case` with its times replaced by their float bits, so that two texts of one float
/// compare equal.
pub fn normalized(case: &Value) -> Value {
    fn bits(v: &mut Value) {
        if let Value::String(s) = v {
            let x: f64 = s.parse().unwrap_or(f64::NAN);
            *v = json!(format!("{:016x}", x.to_bits()));
        }
    }
    let mut c = case.clone();
    if let Some(Value::Array(records)) = c.get_mut("records") {
        for r in records {
            if let Some(x) = r.get_mut(1) {
                bits(x);
            }
        }
    }
    if let Some(Value::Array(files)) = c.get_mut("files") {
        for f in files {
            for k in ["first_time", "last_time"] {
                if let Some(x) = f.get_mut(k) {
                    bits(x);
                }
            }
        }
    }
    if let Some(stats) = c.get_mut("stats") {
        for k in ["most_behind", "newest"] {
            if let Some(x) = stats.get_mut(k) {
                bits(x);
            }
        }
    }
    if let Value::Object(m) = &mut c {
        m.remove("fuzz");
    }
    c
}
