//! The wire format of a sample on a link.
//!
//! `u16` count, then per entry: `u8` label length, label bytes, `u8` tag, value. Floats and
//! integers are 8 bytes little-endian, booleans 1 byte, text and arrays a `u32` length then
//! their bytes. Labels travel inline (a few bytes each) and the receiver maps them back to
//! the `Label`s it already holds, so decoding allocates no string per label.

use crate::{Label, Sample, Value};

const T_FLOAT: u8 = 0;
const T_INT: u8 = 1;
const T_BOOL: u8 = 2;
const T_TEXT: u8 = 3;
const T_ARRAY: u8 = 4;

/// Why a sample cannot be carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EncodeError {
    LabelTooLong(String),
    TooManyLabels(usize),
}

pub(crate) fn encode(sample: &Sample, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.clear();
    if sample.len() > u16::MAX as usize {
        return Err(EncodeError::TooManyLabels(sample.len()));
    }
    out.extend_from_slice(&(sample.len() as u16).to_le_bytes());
    for (label, value) in sample.iter() {
        let lb = label.as_bytes();
        if lb.len() > u8::MAX as usize {
            return Err(EncodeError::LabelTooLong(label.to_string()));
        }
        out.push(lb.len() as u8);
        out.extend_from_slice(lb);
        match value {
            Value::Float(v) => {
                out.push(T_FLOAT);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::Int(v) => {
                out.push(T_INT);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::Bool(v) => {
                out.push(T_BOOL);
                out.push(u8::from(*v));
            }
            Value::Text(t) => {
                out.push(T_TEXT);
                out.extend_from_slice(&(t.len() as u32).to_le_bytes());
                out.extend_from_slice(t.as_bytes());
            }
            Value::Array(a) => {
                out.push(T_ARRAY);
                out.extend_from_slice(&(a.len() as u32).to_le_bytes());
                for v in a {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
    Ok(())
}

/// The labels a receiver has seen on one link, so each arriving label maps to an existing
/// `Label` (a reference-count increment) instead of a new allocation.
#[derive(Debug, Default)]
pub(crate) struct LabelCache {
    labels: Vec<Label>,
}

impl LabelCache {
    fn get(&mut self, bytes: &[u8], hint: usize) -> Option<Label> {
        if let Some(l) = self.labels.get(hint) {
            if l.as_bytes() == bytes {
                return Some(l.clone());
            }
        }
        if let Some(l) = self.labels.iter().find(|l| l.as_bytes() == bytes) {
            return Some(l.clone());
        }
        let l = Label::from(std::str::from_utf8(bytes).ok()?);
        if self.labels.len() < 4096 {
            self.labels.push(l.clone());
        }
        Some(l)
    }
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Option<[u8; 8]> {
        self.take(8).map(|b| b.try_into().expect("8 bytes"))
    }
}

/// Decodes a sample; `None` if the bytes are malformed.
pub(crate) fn decode(bytes: &[u8], cache: &mut LabelCache) -> Option<Sample> {
    let mut r = Reader { b: bytes };
    let n = u16::from_le_bytes(r.take(2)?.try_into().ok()?) as usize;
    let mut s = Sample::with_capacity(n);
    for i in 0..n {
        let ll = r.u8()? as usize;
        let label = cache.get(r.take(ll)?, i)?;
        let value = match r.u8()? {
            T_FLOAT => Value::Float(f64::from_le_bytes(r.u64()?)),
            T_INT => Value::Int(i64::from_le_bytes(r.u64()?)),
            T_BOOL => Value::Bool(r.u8()? != 0),
            T_TEXT => {
                let len = r.u32()? as usize;
                Value::Text(std::str::from_utf8(r.take(len)?).ok()?.to_owned())
            }
            T_ARRAY => {
                let len = r.u32()? as usize;
                let raw = r.take(len.checked_mul(8)?)?;
                Value::Array(
                    raw.chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                        .collect(),
                )
            }
            _ => return None,
        };
        s.push_unchecked(label, value);
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_kind_of_value() {
        let s = Sample::new()
            .with("t(s)", 1.25)
            .with("n", -7i64)
            .with("ok", true)
            .with("msg", "hello")
            .with("stream", vec![1.0, f64::NAN, -3.5]);
        let mut buf = Vec::new();
        encode(&s, &mut buf).unwrap();
        let mut cache = LabelCache::default();
        let d = decode(&buf, &mut cache).unwrap();
        assert_eq!(d.get_f64("t(s)"), Some(1.25));
        assert_eq!(d.get("n"), Some(&Value::Int(-7)));
        assert_eq!(d.get("ok"), Some(&Value::Bool(true)));
        assert_eq!(d.get("msg").and_then(Value::as_text), Some("hello"));
        let a = d.get("stream").and_then(Value::as_array).unwrap();
        assert_eq!(a[0], 1.0);
        assert!(a[1].is_nan());
        // The second decode reuses the cached labels.
        let d2 = decode(&buf, &mut cache).unwrap();
        assert_eq!(cache.labels.len(), 5);
        assert_eq!(d2.len(), 5);
    }

    #[test]
    fn malformed_bytes_are_rejected_not_panicking() {
        let s = Sample::new().with("a", vec![1.0; 10]);
        let mut buf = Vec::new();
        encode(&s, &mut buf).unwrap();
        let mut cache = LabelCache::default();
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut], &mut cache).is_none());
        }
    }

    #[test]
    fn label_longer_than_255_bytes_is_an_error() {
        let s = Sample::new().with("x".repeat(300), 1.0);
        assert!(matches!(
            encode(&s, &mut Vec::new()),
            Err(EncodeError::LabelTooLong(_))
        ));
    }
}
