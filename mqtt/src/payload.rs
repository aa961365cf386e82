//! The wire format: topics, the batch payload (JSON, or compact binary) and the descriptor.
//!
//! # Topics
//!
//! | topic | what | QoS | retained |
//! |---|---|---|---|
//! | `crabby/<test>/<stream>` | batches of samples | configurable (1 by default) | no |
//! | `crabby/<test>/<stream>/desc` | the stream's [`Descriptor`] | 1 | yes |
//! | `crabby/<test>/<stream>/status` | `online`, `ended`, or `offline` (the last will) | 1 | yes |
//! | `crabby/<test>/stop` | a remote stop (opt-in): `{"from":…, "cause":…}` | 1 | no |
//!
//! # Batch (JSON, the default)
//!
//! One JSON object per batch, every sample label a column of the same length:
//!
//! ```json
//! {"seq":12,"i0":1200,"t0":1796300000.123456,"t":[12.0,12.01],"F(N)":[10.5,10.7]}
//! ```
//!
//! - `seq`: the batch's number in the stream (0, 1, 2, …), required.
//! - `i0`: the number of the batch's first sample in the stream (samples counted from 0);
//!   optional (then losses are counted in batches only).
//! - `t0`: the source test's start on its wall clock, seconds since the Unix epoch; optional
//!   (then times are not aligned).
//! - `t`: each sample's time, seconds since the source's `t0`: the value of its time label
//!   (`t(s)` by default) or, for a sample without one, when the publisher received it.
//!   Required; its length is the number of samples.
//! - every other key: a label, with one value per sample: a number (integers stay integers),
//!   a boolean, a string, or an array of numbers; `null` for a sample that lacked the label
//!   or a non-finite float (decoded as `NaN`).
//!
//! # Batch (binary, optional)
//!
//! The same content as a [`postcard`](https://docs.rs/postcard) record (see [`BinBatch`]),
//! announced by the descriptor's `"encoding":"binary"`; a subscriber decodes both (a
//! binary payload starts with a byte that no JSON text starts with).

use crabby::{Label, Sample, Value};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Keys of a JSON batch that are not labels.
pub const RESERVED: [&str; 4] = ["seq", "i0", "t0", "t"];

/// The first byte of a binary batch (no JSON text starts with it).
pub const BINARY_MAGIC: u8 = 0xCB;

/// Why a payload was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload is not valid JSON (or not a binary batch).
    #[error("not a batch: {0}")]
    Syntax(String),
    /// A required key is missing.
    #[error("missing key \"{0}\"")]
    Missing(&'static str),
    /// A key holds the wrong kind of value.
    #[error("key \"{key}\": {what}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong with it.
        what: String,
    },
}

/// Encoding of the batches of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// JSON: readable by any tool (`mosquitto_sub` prints it).
    #[default]
    Json,
    /// Compact binary ([`BinBatch`] in postcard).
    Binary,
}

impl Encoding {
    /// `"json"` or `"binary"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::Binary => "binary",
        }
    }
}

/// A batch of samples of one stream, as the publisher builds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Batch number in the stream.
    pub seq: u64,
    /// Number of the first sample in the stream, if known.
    pub i0: Option<u64>,
    /// The source's `t0`, seconds since the Unix epoch, if known.
    pub t0: Option<f64>,
    /// Each sample's time, seconds since `t0`.
    pub t: Vec<f64>,
    /// One column per label, one value per sample (`None`: the sample lacked the label).
    pub columns: Vec<(Label, Vec<Option<Value>>)>,
}

impl Batch {
    /// An empty batch with these labels.
    pub fn new(seq: u64, i0: u64, t0: Option<f64>, labels: &[Label]) -> Batch {
        Batch {
            seq,
            i0: Some(i0),
            t0,
            t: Vec::new(),
            columns: labels.iter().map(|l| (l.clone(), Vec::new())).collect(),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.t.len()
    }

    /// Whether the batch holds no sample.
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    /// Appends a sample taken at `t` (its declared labels only).
    pub fn push(&mut self, t: f64, sample: &Sample) {
        self.t.push(t);
        for (label, col) in &mut self.columns {
            col.push(sample.get(label).cloned());
        }
    }

    /// The samples, each with `time_label` set to its time plus `shift` seconds.
    pub fn samples(&self, time_label: &Label, shift: f64) -> Vec<Sample> {
        (0..self.t.len())
            .map(|i| {
                let mut s = Sample::with_capacity(self.columns.len() + 1);
                s.insert(time_label.clone(), self.t[i] + shift);
                for (label, col) in &self.columns {
                    match &col[i] {
                        Some(v) => s.insert(label.clone(), v.clone()),
                        None => s.insert(label.clone(), f64::NAN),
                    }
                }
                s
            })
            .collect()
    }

    /// Encodes the batch.
    pub fn encode(&self, encoding: Encoding, out: &mut Vec<u8>) {
        out.clear();
        match encoding {
            Encoding::Json => self.encode_json(out),
            Encoding::Binary => {
                out.push(BINARY_MAGIC);
                let bin = BinBatch::from(self);
                // Serialising plain data into a Vec cannot fail.
                if let Ok(v) = postcard::to_extend(&bin, std::mem::take(out)) {
                    *out = v;
                }
            }
        }
    }

    fn encode_json(&self, out: &mut Vec<u8>) {
        let mut s = String::with_capacity(64 + 16 * self.t.len() * (1 + self.columns.len()));
        let _ = write!(s, "{{\"seq\":{}", self.seq);
        if let Some(i0) = self.i0 {
            let _ = write!(s, ",\"i0\":{i0}");
        }
        if let Some(t0) = self.t0 {
            s.push_str(",\"t0\":");
            push_f64(&mut s, t0);
        }
        s.push_str(",\"t\":[");
        for (i, t) in self.t.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            push_f64(&mut s, *t);
        }
        s.push(']');
        for (label, col) in &self.columns {
            s.push(',');
            push_str(&mut s, label);
            s.push_str(":[");
            for (i, v) in col.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                push_value(&mut s, v.as_ref());
            }
            s.push(']');
        }
        s.push('}');
        out.extend_from_slice(s.as_bytes());
    }

    /// Decodes a JSON or binary batch.
    pub fn decode(payload: &[u8]) -> Result<Batch, DecodeError> {
        if payload.first() == Some(&BINARY_MAGIC) {
            let bin: BinBatch = postcard::from_bytes(&payload[1..])
                .map_err(|e| DecodeError::Syntax(format!("binary batch: {e}")))?;
            return bin.try_into();
        }
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(payload).map_err(|e| DecodeError::Syntax(e.to_string()))?;
        let seq = map
            .get("seq")
            .ok_or(DecodeError::Missing("seq"))?
            .as_u64()
            .ok_or_else(|| invalid("seq", "not a non-negative integer"))?;
        let i0 = match map.get("i0") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| invalid("i0", "not a non-negative integer"))?,
            ),
        };
        let t0 = match map.get("t0") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_f64().ok_or_else(|| invalid("t0", "not a number"))?),
        };
        let t: Vec<f64> = map
            .get("t")
            .ok_or(DecodeError::Missing("t"))?
            .as_array()
            .ok_or_else(|| invalid("t", "not an array"))?
            .iter()
            .map(|v| v.as_f64().ok_or_else(|| invalid("t", "holds a non-number")))
            .collect::<Result<_, _>>()?;
        let mut columns = Vec::new();
        for (key, v) in &map {
            if RESERVED.contains(&key.as_str()) {
                continue;
            }
            let arr = v
                .as_array()
                .ok_or_else(|| invalid(key, "not an array (one value per sample)"))?;
            if arr.len() != t.len() {
                return Err(invalid(
                    key,
                    &format!("{} values for {} times", arr.len(), t.len()),
                ));
            }
            let col = arr
                .iter()
                .map(|v| json_to_value(v).map_err(|what| invalid(key, &what)))
                .collect::<Result<Vec<_>, _>>()?;
            columns.push((Label::from(key.as_str()), col));
        }
        Ok(Batch {
            seq,
            i0,
            t0,
            t,
            columns,
        })
    }
}

fn invalid(key: &str, what: &str) -> DecodeError {
    DecodeError::Invalid {
        key: key.to_owned(),
        what: what.to_owned(),
    }
}

fn json_to_value(v: &serde_json::Value) -> Result<Option<Value>, String> {
    use serde_json::Value as J;
    Ok(Some(match v {
        J::Null => Value::Float(f64::NAN),
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().ok_or("a number out of range")?),
        },
        J::String(s) => Value::Text(s.clone()),
        J::Array(a) => Value::Array(
            a.iter()
                .map(|x| match x {
                    J::Null => Ok(f64::NAN),
                    _ => x
                        .as_f64()
                        .ok_or_else(|| "an array holds a non-number".to_owned()),
                })
                .collect::<Result<_, _>>()?,
        ),
        J::Object(_) => return Err("holds an object".into()),
    }))
}

fn push_f64(s: &mut String, v: f64) {
    if v.is_finite() {
        // `{:?}` writes the shortest text that reads back exactly, with a decimal point.
        let _ = write!(s, "{v:?}");
    } else {
        s.push_str("null");
    }
}

fn push_str(s: &mut String, text: &str) {
    // serde_json escapes exactly as JSON requires.
    if let Ok(j) = serde_json::to_string(text) {
        s.push_str(&j);
    }
}

fn push_value(s: &mut String, v: Option<&Value>) {
    match v {
        None => s.push_str("null"),
        Some(Value::Float(f)) => push_f64(s, *f),
        Some(Value::Int(i)) => {
            let _ = write!(s, "{i}");
        }
        Some(Value::Bool(b)) => {
            let _ = write!(s, "{b}");
        }
        Some(Value::Text(t)) => push_str(s, t),
        Some(Value::Array(a)) => {
            s.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                push_f64(s, *x);
            }
            s.push(']');
        }
    }
}

/// The binary form of a [`Batch`] (postcard after the byte [`BINARY_MAGIC`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinBatch {
    /// See [`Batch::seq`].
    pub seq: u64,
    /// See [`Batch::i0`].
    pub i0: Option<u64>,
    /// See [`Batch::t0`].
    pub t0: Option<f64>,
    /// See [`Batch::t`].
    pub t: Vec<f64>,
    /// Label and values.
    pub columns: Vec<(String, BinColumn)>,
}

/// A column of a [`BinBatch`]: typed when every value has the same type (the usual case,
/// 8 bytes per float, a varint per integer), else value by value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BinColumn {
    /// Every value a float.
    F64(Vec<f64>),
    /// Every value an integer.
    I64(Vec<i64>),
    /// Anything else (`None`: the sample lacked the label).
    Any(Vec<Option<Value>>),
}

impl BinColumn {
    fn from_values(c: &[Option<Value>]) -> BinColumn {
        if c.iter().all(|v| matches!(v, Some(Value::Float(_)))) {
            BinColumn::F64(c.iter().filter_map(|v| v.as_ref()?.as_f64()).collect())
        } else if c.iter().all(|v| matches!(v, Some(Value::Int(_)))) {
            BinColumn::I64(
                c.iter()
                    .filter_map(|v| match v {
                        Some(Value::Int(i)) => Some(*i),
                        _ => None,
                    })
                    .collect(),
            )
        } else {
            BinColumn::Any(c.to_vec())
        }
    }

    fn len(&self) -> usize {
        match self {
            BinColumn::F64(v) => v.len(),
            BinColumn::I64(v) => v.len(),
            BinColumn::Any(v) => v.len(),
        }
    }

    fn into_values(self) -> Vec<Option<Value>> {
        match self {
            BinColumn::F64(v) => v.into_iter().map(|x| Some(Value::Float(x))).collect(),
            BinColumn::I64(v) => v.into_iter().map(|x| Some(Value::Int(x))).collect(),
            BinColumn::Any(v) => v,
        }
    }
}

impl From<&Batch> for BinBatch {
    fn from(b: &Batch) -> Self {
        BinBatch {
            seq: b.seq,
            i0: b.i0,
            t0: b.t0,
            t: b.t.clone(),
            columns: b
                .columns
                .iter()
                .map(|(l, c)| (l.to_string(), BinColumn::from_values(c)))
                .collect(),
        }
    }
}

impl TryFrom<BinBatch> for Batch {
    type Error = DecodeError;
    fn try_from(b: BinBatch) -> Result<Batch, DecodeError> {
        for (l, c) in &b.columns {
            if c.len() != b.t.len() {
                return Err(invalid(
                    l,
                    &format!("{} values for {} times", c.len(), b.t.len()),
                ));
            }
        }
        Ok(Batch {
            seq: b.seq,
            i0: b.i0,
            t0: b.t0,
            t: b.t,
            columns: b
                .columns
                .into_iter()
                .map(|(l, c)| (Label::from(l), c.into_values()))
                .collect(),
        })
    }
}

/// What a subscriber needs to know about a stream before its data: published retained on
/// `crabby/<test>/<stream>/desc`, so a subscriber that connects later still gets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    /// Format version (1).
    pub crabby_mqtt: u32,
    /// The topic namespace (the source test's name by default).
    pub test: String,
    /// The stream's name.
    pub stream: String,
    /// The publishing Block.
    pub publisher: String,
    /// The Blocks linked to the publisher (the sources of the samples).
    pub sources: Vec<String>,
    /// The label carried as `t` in batches.
    pub time_label: String,
    /// The other labels, in column order.
    pub labels: Vec<String>,
    /// The unit of each label, from its parentheses (`F(N)` → `N`), empty if none.
    pub units: Vec<String>,
    /// The type of each label (`float`, `int`, `bool`, `text`, `array`), once known from
    /// the first sample (`null` until then).
    pub types: Option<Vec<String>>,
    /// The stream's sample rate in Hz, measured over its first samples (at least 100 or
    /// 1 s; `null` until then).
    pub rate_hz: Option<f64>,
    /// `json` or `binary`.
    pub encoding: String,
    /// The QoS of the data.
    pub qos: u8,
    /// At most this many samples per batch.
    pub batch_max: usize,
    /// The source test's `t0`, seconds since the Unix epoch (`null` before the start).
    pub t0: Option<f64>,
}

/// The unit in a label's parentheses: `F(N)` → `N`, `T(°C)` → `°C`, `x` → ``.
pub fn unit_of(label: &str) -> String {
    match (label.rfind('('), label.ends_with(')')) {
        (Some(i), true) => label[i + 1..label.len() - 1].to_owned(),
        _ => String::new(),
    }
}

/// The type name of a value, as in the descriptor.
pub fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "unknown",
        Some(Value::Float(_)) => "float",
        Some(Value::Int(_)) => "int",
        Some(Value::Bool(_)) => "bool",
        Some(Value::Text(_)) => "text",
        Some(Value::Array(_)) => "array",
    }
}

/// A remote stop, as published on `crabby/<test>/stop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopMessage {
    /// Who sent it: `<test>/<block>@<host>:<pid>`.
    pub from: String,
    /// Why the sender's test stopped.
    pub cause: String,
}

/// Topic names of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Batches.
    pub data: String,
    /// The retained descriptor.
    pub desc: String,
    /// The retained status (last will).
    pub status: String,
    /// Remote stops of the test namespace.
    pub stop: String,
}

impl Topics {
    /// The topics of `stream` in namespace `test`.
    pub fn new(test: &str, stream: &str) -> Topics {
        let data = format!("crabby/{test}/{stream}");
        Topics {
            desc: format!("{data}/desc"),
            status: format!("{data}/status"),
            stop: format!("crabby/{test}/stop"),
            data,
        }
    }
}

/// Checks a topic level (a test or stream name): not empty, no `/`, `+`, `#` or NUL.
pub fn check_topic_level(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!(
            "the {what} name is empty; give a name such as \"furnace\""
        ));
    }
    if let Some(c) = s.chars().find(|c| matches!(c, '/' | '+' | '#' | '\0')) {
        return Err(format!(
            "the {what} name \"{s}\" holds '{c}', which MQTT topics reserve; use letters, digits, '-' or '_'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Batch {
        let labels = [Label::new("F(N)"), Label::new("n"), Label::new("msg")];
        let mut b = Batch::new(3, 300, Some(1_796_300_000.25), &labels);
        b.push(
            0.5,
            &Sample::new()
                .with("F(N)", 1.5)
                .with("n", 7i64)
                .with("msg", "a\"b"),
        );
        b.push(
            0.75,
            &Sample::new().with("F(N)", f64::INFINITY).with("n", 8i64),
        );
        b
    }

    #[test]
    fn json_is_flat_and_reads_back() {
        let b = batch();
        let mut out = Vec::new();
        b.encode(Encoding::Json, &mut out);
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            r#"{"seq":3,"i0":300,"t0":1796300000.25,"t":[0.5,0.75],"F(N)":[1.5,null],"n":[7,8],"msg":["a\"b",null]}"#
        );
        let d = Batch::decode(&out).unwrap();
        assert_eq!(
            (d.seq, d.i0, d.t0, d.t.clone()),
            (3, Some(300), b.t0, b.t.clone())
        );
        let s = d.samples(&Label::new("t(s)"), 10.0);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].get_f64("t(s)"), Some(10.5));
        assert_eq!(s[0].get("n"), Some(&Value::Int(7)));
        assert_eq!(s[0].get("msg"), Some(&Value::Text("a\"b".into())));
        assert!(s[1].get_f64("F(N)").unwrap().is_nan(), "null reads as NaN");
    }

    #[test]
    fn binary_reads_back_and_is_smaller() {
        let b = batch();
        let (mut j, mut bin) = (Vec::new(), Vec::new());
        b.encode(Encoding::Json, &mut j);
        b.encode(Encoding::Binary, &mut bin);
        assert_eq!(bin[0], BINARY_MAGIC);
        let d = Batch::decode(&bin).unwrap();
        assert_eq!(d.seq, 3);
        assert_eq!(d.columns[1].1[1], Some(Value::Int(8)));
        assert!(d.columns[0].1[1]
            .as_ref()
            .unwrap()
            .as_f64()
            .unwrap()
            .is_infinite());
        assert!(bin.len() < j.len(), "{} vs {}", bin.len(), j.len());
    }

    #[test]
    fn a_hand_written_command_decodes() {
        let d = Batch::decode(br#"{"seq":0,"t":[0],"cmd":[5.5]}"#).unwrap();
        assert_eq!((d.i0, d.t0), (None, None));
        assert_eq!(d.columns[0].1[0], Some(Value::Float(5.5)));
    }

    #[test]
    fn malformed_payloads_are_rejected_with_the_reason() {
        let cases: [(&[u8], &str); 6] = [
            (b"hello", "not a batch"),
            (br#"{"t":[1]}"#, "missing key \"seq\""),
            (br#"{"seq":-1,"t":[1]}"#, "\"seq\""),
            (br#"{"seq":1}"#, "missing key \"t\""),
            (br#"{"seq":1,"t":[1,2],"x":[1]}"#, "1 values for 2 times"),
            (br#"{"seq":1,"t":[1],"x":[{"a":1}]}"#, "object"),
        ];
        for (p, want) in cases {
            let e = Batch::decode(p).unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} lacks {want:?}");
        }
        assert!(Batch::decode(&[BINARY_MAGIC, 0xff]).is_err());
    }

    #[test]
    fn units_topics_and_names() {
        assert_eq!(unit_of("T(°C)"), "°C");
        assert_eq!(unit_of("cmd"), "");
        let t = Topics::new("rig", "furnace");
        assert_eq!(t.data, "crabby/rig/furnace");
        assert_eq!(t.status, "crabby/rig/furnace/status");
        assert_eq!(t.stop, "crabby/rig/stop");
        assert!(check_topic_level("stream", "a/b").is_err());
        assert!(check_topic_level("stream", "").is_err());
        assert!(check_topic_level("stream", "furnace-1").is_ok());
    }
}
