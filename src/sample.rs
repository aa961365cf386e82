//! Labelled samples: what links carry.

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A label such as `"t(s)"` or `"F(N)"`.
///
/// Cloning a `Label` costs a reference-count increment, never an allocation: Blocks build
/// their labels once (in their constructor) and clone them on every sample.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(Arc<str>);

impl Label {
    /// A new label.
    pub fn new(s: &str) -> Self {
        Label(Arc::from(s))
    }

    /// The label as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Label {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Label {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Label {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Label {
    fn from(s: &str) -> Self {
        Label::new(s)
    }
}

impl From<String> for Label {
    fn from(s: String) -> Self {
        Label(Arc::from(s))
    }
}

impl From<&Label> for Label {
    fn from(l: &Label) -> Self {
        l.clone()
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Label {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Label::from)
    }
}

/// One value of a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// A float: most measurements and commands.
    Float(f64),
    /// An integer: counters, indices.
    Int(i64),
    /// A flag.
    Bool(bool),
    /// Text.
    Text(String),
    /// An array of floats: a stream chunk from a DAQ, spot coordinates.
    Array(Vec<f64>),
}

impl Value {
    /// The value as a float: floats as they are, integers and booleans converted; `None`
    /// for text and arrays.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(v) => Some(*v),
            Value::Int(v) => Some(*v as f64),
            Value::Bool(v) => Some(if *v { 1.0 } else { 0.0 }),
            Value::Text(_) | Value::Array(_) => None,
        }
    }

    /// The array, if this is one.
    pub fn as_array(&self) -> Option<&[f64]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The text, if this is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    /// Floats are written in their shortest exact form, arrays as `[a;b;c]` (no comma, so
    /// the value fits a CSV cell).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Float(v) => write!(f, "{v}"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Text(t) => f.write_str(t),
            Value::Array(a) => {
                f.write_str("[")?;
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        f.write_str(";")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident as $conv:ty),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant(v as $conv)
            }
        })*
    };
}
value_from!(f64 => Float as f64, f32 => Float as f64, i64 => Int as i64, i32 => Int as i64,
    u32 => Int as i64, usize => Int as i64, u64 => Int as i64);

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<Vec<f64>> for Value {
    fn from(v: Vec<f64>) -> Self {
        Value::Array(v)
    }
}
impl From<&[f64]> for Value {
    fn from(v: &[f64]) -> Self {
        Value::Array(v.to_vec())
    }
}

/// One sample: labels with their values, in insertion order.
///
/// ```
/// use crabby::Sample;
/// let s = Sample::new().with("t(s)", 1.5).with("F(N)", 120.0);
/// assert_eq!(s.get_f64("F(N)"), Some(120.0));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    entries: Vec<(Label, Value)>,
}

impl Sample {
    /// An empty sample.
    pub fn new() -> Self {
        Sample {
            entries: Vec::new(),
        }
    }

    /// An empty sample with room for `n` labels.
    pub fn with_capacity(n: usize) -> Self {
        Sample {
            entries: Vec::with_capacity(n),
        }
    }

    /// Adds (or replaces) a label, builder style.
    pub fn with(mut self, label: impl Into<Label>, value: impl Into<Value>) -> Self {
        self.insert(label, value);
        self
    }

    /// Adds a label, or replaces its value if it is already there.
    pub fn insert(&mut self, label: impl Into<Label>, value: impl Into<Value>) {
        let label = label.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(l, _)| *l == label) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((label, value)),
        }
    }

    /// Appends without checking for an existing label (the caller knows it is new).
    pub(crate) fn push_unchecked(&mut self, label: Label, value: Value) {
        self.entries.push((label, value));
    }

    /// The value of a label.
    pub fn get(&self, label: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(l, _)| l.as_str() == label)
            .map(|(_, v)| v)
    }

    /// The value of a label as a float (see [`Value::as_f64`]).
    pub fn get_f64(&self, label: &str) -> Option<f64> {
        self.get(label).and_then(Value::as_f64)
    }

    /// Whether the label is present.
    pub fn contains(&self, label: &str) -> bool {
        self.get(label).is_some()
    }

    /// Removes a label and returns its value.
    pub fn remove(&mut self, label: &str) -> Option<Value> {
        let i = self.entries.iter().position(|(l, _)| l.as_str() == label)?;
        Some(self.entries.remove(i).1)
    }

    /// Labels and values, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&Label, &Value)> {
        self.entries.iter().map(|(l, v)| (l, v))
    }

    /// The labels, in order.
    pub fn labels(&self) -> impl Iterator<Item = &Label> {
        self.entries.iter().map(|(l, _)| l)
    }

    /// Mutable access to the values, in order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = (&Label, &mut Value)> {
        self.entries.iter_mut().map(|(l, v)| (&*l, v))
    }

    /// How many labels.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the sample has no label.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Copies every label of `other` into `self`; `other` wins on a shared label.
    pub fn merge(&mut self, other: &Sample) {
        for (l, v) in &other.entries {
            self.insert(l.clone(), v.clone());
        }
    }

    /// Removes every label.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

impl<L: Into<Label>, V: Into<Value>> FromIterator<(L, V)> for Sample {
    fn from_iter<I: IntoIterator<Item = (L, V)>>(iter: I) -> Self {
        let mut s = Sample::new();
        for (l, v) in iter {
            s.insert(l, v);
        }
        s
    }
}

/// Everything received, merged as label → values in arrival order (see
/// [`Context::recv_all`](crate::Context::recv_all)).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns {
    map: HashMap<Label, Vec<Value>>,
    order: Vec<Label>,
}

impl Columns {
    /// No data.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends every value of a sample to its label's column.
    pub fn push(&mut self, sample: &Sample) {
        for (l, v) in sample.iter() {
            match self.map.get_mut(l.as_str()) {
                Some(col) => col.push(v.clone()),
                None => {
                    self.order.push(l.clone());
                    self.map.insert(l.clone(), vec![v.clone()]);
                }
            }
        }
    }

    /// The values of a label, in arrival order.
    pub fn get(&self, label: &str) -> Option<&[Value]> {
        self.map.get(label).map(Vec::as_slice)
    }

    /// The values of a label as floats (values that are not numbers are skipped).
    pub fn f64s(&self, label: &str) -> Vec<f64> {
        self.get(label)
            .map(|c| c.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    }

    /// The last value of a label.
    pub fn last(&self, label: &str) -> Option<&Value> {
        self.map.get(label).and_then(|c| c.last())
    }

    /// Labels in the order they were first seen.
    pub fn labels(&self) -> &[Label] {
        &self.order
    }

    /// Whether nothing was received.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_replaces_and_keeps_order() {
        let mut s = Sample::new().with("a", 1.0).with("b", 2);
        s.insert("a", 3.0);
        let labels: Vec<&str> = s.labels().map(|l| l.as_str()).collect();
        assert_eq!(labels, ["a", "b"]);
        assert_eq!(s.get_f64("a"), Some(3.0));
        assert_eq!(s.get_f64("b"), Some(2.0));
        assert_eq!(s.remove("a"), Some(Value::Float(3.0)));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn columns_keep_arrival_order() {
        let mut c = Columns::new();
        c.push(&Sample::new().with("t", 0.0).with("x", 1.0));
        c.push(&Sample::new().with("t", 1.0));
        assert_eq!(c.f64s("t"), [0.0, 1.0]);
        assert_eq!(c.f64s("x"), [1.0]);
        assert_eq!(c.labels().len(), 2);
        assert!(c.get("y").is_none());
    }

    #[test]
    fn array_display_fits_a_csv_cell() {
        assert_eq!(Value::Array(vec![1.0, 2.5]).to_string(), "[1;2.5]");
    }
}
