//! Parameter schemas: [`ParamSpec`], [`ParamType`], [`Node`] in, [`Params`] out,
//! [`SchemaError`] with its [`Span`].
//!
//! A Block type declares its parameters once, each with a type, a unit, a range, a default,
//! choices and a one-line doc. From that declaration a front end (the `crabby` command of
//! the `crabby-cli` crate) checks a test file, lists the parameters and writes a JSON Schema
//! for editors, so none of them can drift from the others.
//!
//! [`check`] takes a parsed value tree ([`Node`], with the byte span of every value and key
//! in its file) and returns the values converted to the declared units ([`Params`]), or
//! **every** mistake at once, each with its span, the parameter's path (`paths[2].until`)
//! and what was expected. A misspelt key or choice comes with a suggestion ([`suggest`]).
//!
//! ```
//! use crabby::schema::{check, Node, ParamSpec, ParamType, Range};
//! let specs = [ParamSpec::new("max_speed", ParamType::Float, "largest crosshead speed")
//!     .unit("mm/s").range(Range::above(0.0)).default("5")];
//! let file = Node::table([("max_speed", Node::str("30 mm/min"))]);
//! let params = check(&specs, &file).unwrap();
//! assert_eq!(params.f64("max_speed"), Some(0.5));
//! let bad = Node::table([("max_sped", Node::float(1.0))]);
//! let errs = check(&specs, &bad).unwrap_err();
//! assert!(errs[0].to_string().contains("did you mean 'max_speed'"));
//! ```

use crate::units::{Quantity, Unit, UnitError};
use std::fmt;

/// A byte range in the file a value came from, and which file (an index the front end
/// keeps; 0 for the main file).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Span {
    /// Index of the file.
    pub file: usize,
    /// Byte range in it.
    pub bytes: std::ops::Range<usize>,
}

impl Span {
    /// A span of `bytes` in file `file`.
    pub fn new(file: usize, bytes: std::ops::Range<usize>) -> Span {
        Span { file, bytes }
    }
}

/// A value as read from a file, with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub kind: NodeKind,
    /// Where it is.
    pub span: Span,
}

/// The kinds of values in a file (TOML's).
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `true`, `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    List(Vec<Node>),
    /// A table: (key, the key's span, value), in file order.
    Table(Vec<(String, Span, Node)>),
    /// Anything else (a date): its type name.
    Other(&'static str),
}

impl NodeKind {
    /// The type's name in messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a float",
            NodeKind::Str(_) => "a string",
            NodeKind::List(_) => "an array",
            NodeKind::Table(_) => "a table",
            NodeKind::Other(t) => t,
        }
    }
}

impl Node {
    fn plain(kind: NodeKind) -> Node {
        Node {
            kind,
            span: Span::default(),
        }
    }
    /// A string (no span).
    pub fn str(s: impl Into<String>) -> Node {
        Node::plain(NodeKind::Str(s.into()))
    }
    /// A float (no span).
    pub fn float(v: f64) -> Node {
        Node::plain(NodeKind::Float(v))
    }
    /// An integer (no span).
    pub fn int(v: i64) -> Node {
        Node::plain(NodeKind::Int(v))
    }
    /// A boolean (no span).
    pub fn bool(v: bool) -> Node {
        Node::plain(NodeKind::Bool(v))
    }
    /// An array (no span).
    pub fn list(items: impl IntoIterator<Item = Node>) -> Node {
        Node::plain(NodeKind::List(items.into_iter().collect()))
    }
    /// A table (no spans).
    pub fn table<K: Into<String>>(entries: impl IntoIterator<Item = (K, Node)>) -> Node {
        Node::plain(NodeKind::Table(
            entries
                .into_iter()
                .map(|(k, v)| (k.into(), Span::default(), v))
                .collect(),
        ))
    }
    /// The entry `key` of a table, with its key's span.
    pub fn get(&self, key: &str) -> Option<(&Span, &Node)> {
        match &self.kind {
            NodeKind::Table(t) => t.iter().find(|e| e.0 == key).map(|e| (&e.1, &e.2)),
            _ => None,
        }
    }
    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A numeric range (bounds in the parameter's unit).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Range {
    /// Lower bound and whether it is allowed.
    pub min: Option<(f64, bool)>,
    /// Upper bound and whether it is allowed.
    pub max: Option<(f64, bool)>,
}

impl Range {
    /// `> min`.
    pub fn above(min: f64) -> Range {
        Range {
            min: Some((min, false)),
            max: None,
        }
    }
    /// `>= min`.
    pub fn at_least(min: f64) -> Range {
        Range {
            min: Some((min, true)),
            max: None,
        }
    }
    /// `min ..= max`.
    pub fn between(min: f64, max: f64) -> Range {
        Range {
            min: Some((min, true)),
            max: Some((max, true)),
        }
    }
    /// Whether `v` is in the range.
    pub fn contains(&self, v: f64) -> bool {
        let lo = match self.min {
            Some((m, true)) => v >= m,
            Some((m, false)) => v > m,
            None => true,
        };
        let hi = match self.max {
            Some((m, true)) => v <= m,
            Some((m, false)) => v < m,
            None => true,
        };
        lo && hi
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (Some((a, true)), Some((b, true))) => write!(f, "{} to {}", num(a), num(b)),
            (lo, hi) => {
                let mut parts = Vec::new();
                if let Some((a, inc)) = lo {
                    parts.push(format!("{} {}", if inc { ">=" } else { ">" }, num(a)));
                }
                if let Some((b, inc)) = hi {
                    parts.push(format!("{} {}", if inc { "<=" } else { "<" }, num(b)));
                }
                if parts.is_empty() {
                    f.write_str("any")
                } else {
                    f.write_str(&parts.join(" and "))
                }
            }
        }
    }
}

/// One table shape among several, chosen by the table's `type` key (a Generator path:
/// `{ type = "ramp", speed = ... }`).
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Its `type` value.
    pub name: &'static str,
    /// One line.
    pub doc: &'static str,
    /// Its keys (besides `type`).
    pub params: Vec<ParamSpec>,
}

/// The type of a parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamType {
    /// `true` or `false`.
    Bool,
    /// An integer.
    Int,
    /// A number, or a quantity with a unit compatible with the parameter's unit.
    Float,
    /// A number or a quantity in any unit, kept with its unit for the Block to convert (a
    /// Generator's values, in the unit of the command it drives).
    Quantity,
    /// Any text.
    Str,
    /// A label, such as `F(N)`.
    Label,
    /// A condition, such as `"F(N) > 50"` or `"delay=10"` (parsed by the Block's crate).
    Condition,
    /// A file path.
    File,
    /// One of these strings.
    Choice(Vec<&'static str>),
    /// An array of this type (the parameter's unit and range apply to each item).
    List(Box<ParamType>),
    /// A table with these keys.
    Table(Vec<ParamSpec>),
    /// A table whose `type` key picks its shape.
    Tagged(Vec<Variant>),
}

impl ParamType {
    /// A short name for messages and listings.
    pub fn describe(&self) -> String {
        match self {
            ParamType::Bool => "bool".into(),
            ParamType::Int => "integer".into(),
            ParamType::Float => "number".into(),
            ParamType::Quantity => "number or quantity".into(),
            ParamType::Str => "string".into(),
            ParamType::Label => "label".into(),
            ParamType::Condition => "condition".into(),
            ParamType::File => "file".into(),
            ParamType::Choice(c) => format!("one of {}", quoted(c)),
            ParamType::List(t) => format!("array of {}", t.describe()),
            ParamType::Table(_) => "table".into(),
            ParamType::Tagged(v) => format!(
                "table with type = {}",
                quoted(&v.iter().map(|v| v.name).collect::<Vec<_>>())
            ),
        }
    }
}

fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a parameter must be given.
#[derive(Debug, Clone, PartialEq)]
pub enum Default {
    /// It must be given.
    Required,
    /// Optional, with this default (as text, for listings and the JSON Schema).
    Value(String),
    /// Optional, no value when absent.
    Optional,
}

/// One parameter: name, type, unit, range, default, one-line doc.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Its key.
    pub name: &'static str,
    /// Its type.
    pub ty: ParamType,
    /// The unit of its numbers (`None`: plain numbers only).
    pub unit: Option<&'static str>,
    /// Accepted values (in `unit`).
    pub range: Option<Range>,
    /// Required, or its default.
    pub default: Default,
    /// One line.
    pub doc: &'static str,
}

impl ParamSpec {
    /// A required parameter.
    pub fn new(name: &'static str, ty: ParamType, doc: &'static str) -> ParamSpec {
        ParamSpec {
            name,
            ty,
            unit: None,
            range: None,
            default: Default::Required,
            doc,
        }
    }
    /// Its unit (`"mm/s"`).
    pub fn unit(mut self, unit: &'static str) -> ParamSpec {
        self.unit = Some(unit);
        self
    }
    /// Its range.
    pub fn range(mut self, r: Range) -> ParamSpec {
        self.range = Some(r);
        self
    }
    /// Optional with this default.
    pub fn default(mut self, text: impl Into<String>) -> ParamSpec {
        self.default = Default::Value(text.into());
        self
    }
    /// Optional, no default.
    pub fn optional(mut self) -> ParamSpec {
        self.default = Default::Optional;
        self
    }
    /// What a value must be, for messages: `a number in mm/s, > 0`.
    pub fn expected(&self) -> String {
        expected(&self.ty, self.unit, self.range)
    }
}

fn expected(ty: &ParamType, unit: Option<&str>, range: Option<Range>) -> String {
    let mut s = match ty {
        ParamType::Float => match unit {
            Some(u) => format!("a number in {u} or a quantity such as \"1 {u}\""),
            None => "a number".into(),
        },
        ParamType::Int => "an integer".into(),
        ParamType::Quantity => "a number or a quantity such as \"5 mm/s\"".into(),
        other => other.describe(),
    };
    if let Some(r) = range {
        if matches!(ty, ParamType::Float | ParamType::Int) {
            s.push_str(&format!(", {r}"));
        }
    }
    s
}

/// A checked value, converted to its parameter's unit.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number in the parameter's unit.
    Float(f64),
    /// A [`ParamType::Quantity`]: the number and its unit as written (`""` for none).
    Quantity(f64, String),
    /// A string, label, condition, file or choice.
    Str(String),
    /// An array.
    List(Vec<Checked>),
    /// A table.
    Table(Params),
    /// A tagged table: its `type` and keys.
    Variant(&'static str, Params),
}

/// A checked value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The value.
    pub value: Value,
    /// Where it was written (the table's span for a default).
    pub span: Span,
}

impl Checked {
    /// The number, if it is one (an integer counts).
    pub fn as_f64(&self) -> Option<f64> {
        match self.value {
            Value::Float(v) => Some(v),
            Value::Int(v) => Some(v as f64),
            _ => None,
        }
    }
    /// The text, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Checked parameters of one table, by name (only those given).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params {
    /// (name, value) in declaration order.
    pub entries: Vec<(&'static str, Checked)>,
    /// The table's own span.
    pub span: Span,
}

impl Params {
    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&Checked> {
        self.entries.iter().find(|e| e.0 == name).map(|e| &e.1)
    }
    /// A number.
    pub fn f64(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(Checked::as_f64)
    }
    /// An integer.
    pub fn i64(&self, name: &str) -> Option<i64> {
        match self.get(name)?.value {
            Value::Int(v) => Some(v),
            _ => None,
        }
    }
    /// A boolean.
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name)?.value {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }
    /// A string.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Checked::as_str)
    }
    /// An array.
    pub fn list(&self, name: &str) -> Option<&[Checked]> {
        match &self.get(name)?.value {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    /// An array of strings.
    pub fn strs(&self, name: &str) -> Option<Vec<String>> {
        self.list(name).map(|l| {
            l.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
    }
    /// An array of numbers.
    pub fn f64s(&self, name: &str) -> Option<Vec<f64>> {
        self.list(name)
            .map(|l| l.iter().filter_map(Checked::as_f64).collect())
    }
    /// A table.
    pub fn table(&self, name: &str) -> Option<&Params> {
        match &self.get(name)?.value {
            Value::Table(p) => Some(p),
            _ => None,
        }
    }
    /// The span of `name`'s value, or the table's.
    pub fn span_of(&self, name: &str) -> Span {
        self.get(name)
            .map(|c| c.span.clone())
            .unwrap_or_else(|| self.span.clone())
    }
}

/// What is wrong with one value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaErrorKind {
    /// A key no parameter has.
    #[error("unknown parameter '{key}'{}", hint(.suggestion))]
    UnknownKey {
        /// The key.
        key: String,
        /// The closest known key.
        suggestion: Option<String>,
    },
    /// A required parameter is absent.
    #[error("missing parameter '{name}' ({expected})")]
    Missing {
        /// Its name.
        name: String,
        /// What it must be.
        expected: String,
    },
    /// A value of the wrong type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What it must be.
        expected: String,
        /// What it is.
        found: String,
    },
    /// A unit problem.
    #[error("{0}")]
    Unit(UnitError),
    /// A number outside its range.
    #[error("{} is out of range: expected {range}{}", num(*.value), .unit.as_ref().map(|u| format!(" (in {u})")).unwrap_or_default())]
    OutOfRange {
        /// The value (in the parameter's unit).
        value: f64,
        /// The range.
        range: Range,
        /// The unit.
        unit: Option<String>,
    },
    /// A string not among the choices.
    #[error("\"{got}\" is not one of {choices}{}", hint(.suggestion))]
    NotOneOf {
        /// What was given.
        got: String,
        /// The choices, quoted.
        choices: String,
        /// The closest one.
        suggestion: Option<String>,
    },
    /// Anything else (a Block's own check, an empty label).
    #[error("{0}")]
    Other(String),
}

/// A number for messages: plain when readable, else in scientific notation.
pub fn num(v: f64) -> String {
    if v != 0.0 && !(1e-4..1e10).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

fn hint(s: &Option<String>) -> String {
    s.as_ref()
        .map(|s| format!("; did you mean '{s}'?"))
        .unwrap_or_default()
}

/// One mistake, where it is and in which parameter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{kind}", if path.is_empty() { String::new() } else { format!("'{path}': ") })]
pub struct SchemaError {
    /// Where.
    pub span: Span,
    /// The parameter's path (`paths[2].until`), empty at the top.
    pub path: String,
    /// What.
    pub kind: SchemaErrorKind,
}

impl SchemaError {
    /// The suggestion, if any.
    pub fn suggestion(&self) -> Option<&str> {
        match &self.kind {
            SchemaErrorKind::UnknownKey { suggestion, .. }
            | SchemaErrorKind::NotOneOf { suggestion, .. } => suggestion.as_deref(),
            _ => None,
        }
    }
}

/// Edit distance (Damerau–Levenshtein, optimal string alignment: a swap of two neighbours
/// counts one), on chars, case ignored, at most 256 chars compared.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a
        .chars()
        .take(256)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let b: Vec<char> = b
        .chars()
        .take(256)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The candidate closest to `word` (other than `word` itself), if close enough to be a typo:
/// an edit distance of at most a third of the word's length (at least 1), case ignored.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Checks the table `node` against `specs`: every mistake, or the converted values.
pub fn check(specs: &[ParamSpec], node: &Node) -> Result<Params, Vec<SchemaError>> {
    let mut errors = Vec::new();
    let p = check_table(specs, node, "", &[], &mut errors);
    if errors.is_empty() {
        Ok(p)
    } else {
        Err(errors)
    }
}

/// [`check`], adding mistakes to `errors`; keys in `skip` are left to the caller (`type`).
pub fn check_table(
    specs: &[ParamSpec],
    node: &Node,
    path: &str,
    skip: &[&str],
    errors: &mut Vec<SchemaError>,
) -> Params {
    let mut out = Params {
        entries: Vec::new(),
        span: node.span.clone(),
    };
    let NodeKind::Table(entries) = &node.kind else {
        errors.push(SchemaError {
            span: node.span.clone(),
            path: path.to_owned(),
            kind: SchemaErrorKind::WrongType {
                expected: "a table".into(),
                found: node.kind.type_name().into(),
            },
        });
        return out;
    };
    let join = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    for (key, kspan, _) in entries {
        if skip.contains(&key.as_str()) || specs.iter().any(|s| s.name == key) {
            continue;
        }
        errors.push(SchemaError {
            span: kspan.clone(),
            path: path.to_owned(),
            kind: SchemaErrorKind::UnknownKey {
                key: key.clone(),
                suggestion: suggest(
                    key,
                    specs.iter().map(|s| s.name).chain(skip.iter().copied()),
                )
                .map(str::to_owned),
            },
        });
    }
    for spec in specs {
        match entries.iter().find(|e| e.0 == spec.name) {
            Some((_, _, v)) => {
                if let Some(c) = check_value(spec, &spec.ty, v, &join(spec.name), errors) {
                    out.entries.push((spec.name, c));
                }
            }
            None if spec.default == Default::Required => errors.push(SchemaError {
                span: node.span.clone(),
                path: path.to_owned(),
                kind: SchemaErrorKind::Missing {
                    name: spec.name.to_owned(),
                    expected: spec.expected(),
                },
            }),
            None => {}
        }
    }
    out
}

fn check_value(
    spec: &ParamSpec,
    ty: &ParamType,
    node: &Node,
    path: &str,
    errors: &mut Vec<SchemaError>,
) -> Option<Checked> {
    let err = |kind: SchemaErrorKind| SchemaError {
        span: node.span.clone(),
        path: path.to_owned(),
        kind,
    };
    let wrong = || {
        err(SchemaErrorKind::WrongType {
            expected: expected(ty, spec.unit, spec.range),
            found: match &node.kind {
                NodeKind::Str(s) => format!("\"{}\"", s.chars().take(60).collect::<String>()),
                k => k.type_name().to_owned(),
            },
        })
    };
    let checked = |value| {
        Some(Checked {
            value,
            span: node.span.clone(),
        })
    };
    let in_range = |v: f64, errors: &mut Vec<SchemaError>| match spec.range {
        Some(r) if !r.contains(v) => {
            errors.push(err(SchemaErrorKind::OutOfRange {
                value: v,
                range: r,
                unit: spec.unit.map(str::to_owned),
            }));
            false
        }
        _ => true,
    };
    match (ty, &node.kind) {
        (ParamType::Bool, NodeKind::Bool(b)) => checked(Value::Bool(*b)),
        (ParamType::Int, NodeKind::Int(i)) => {
            in_range(*i as f64, errors).then_some(())?;
            checked(Value::Int(*i))
        }
        (ParamType::Float, NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Str(_)) => {
            let v = match &node.kind {
                NodeKind::Int(i) => *i as f64,
                NodeKind::Float(f) => *f,
                NodeKind::Str(s) => {
                    let q = Quantity::parse(s);
                    let target = match spec.unit {
                        Some(u) => Unit::parse(u),
                        None => Ok(Unit::none()),
                    };
                    match (q, target) {
                        (Ok(q), Ok(t)) => match q.to(&t) {
                            Ok(v) => v,
                            Err(e) => {
                                errors.push(err(SchemaErrorKind::Unit(e)));
                                return None;
                            }
                        },
                        (Err(e), _) | (_, Err(e)) => {
                            errors.push(err(SchemaErrorKind::Unit(e)));
                            return None;
                        }
                    }
                }
                _ => unreachable!("matched above"),
            };
            if !v.is_finite() {
                errors.push(err(SchemaErrorKind::Other(format!(
                    "{v} is not a finite number"
                ))));
                return None;
            }
            in_range(v, errors).then_some(())?;
            checked(Value::Float(v))
        }
        (ParamType::Quantity, NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Str(_)) => {
            let (v, unit) = match &node.kind {
                NodeKind::Int(i) => (*i as f64, String::new()),
                NodeKind::Float(f) => (*f, String::new()),
                NodeKind::Str(s) => match Quantity::parse(s) {
                    Ok(q) => (q.value, q.unit.as_str().to_owned()),
                    Err(e) => {
                        errors.push(err(SchemaErrorKind::Unit(e)));
                        return None;
                    }
                },
                _ => unreachable!("matched above"),
            };
            if !v.is_finite() {
                errors.push(err(SchemaErrorKind::Other(format!(
                    "{v} is not a finite number"
                ))));
                return None;
            }
            checked(Value::Quantity(v, unit))
        }
        (ParamType::Str | ParamType::Condition | ParamType::File, NodeKind::Str(s)) => {
            checked(Value::Str(s.clone()))
        }
        (ParamType::Label, NodeKind::Str(s)) => {
            if s.trim().is_empty() || s.len() > 255 {
                errors.push(err(SchemaErrorKind::Other(
                    "a label must be 1 to 255 bytes, not blank".into(),
                )));
                return None;
            }
            checked(Value::Str(s.clone()))
        }
        (ParamType::Choice(choices), NodeKind::Str(s)) => {
            if choices.contains(&s.as_str()) {
                checked(Value::Str(s.clone()))
            } else {
                errors.push(err(SchemaErrorKind::NotOneOf {
                    got: s.clone(),
                    choices: quoted(choices),
                    suggestion: suggest(s, choices.iter().copied()).map(str::to_owned),
                }));
                None
            }
        }
        (ParamType::List(item), NodeKind::List(items)) => {
            let before = errors.len();
            let out: Vec<Checked> = items
                .iter()
                .enumerate()
                .filter_map(|(i, n)| check_value(spec, item, n, &format!("{path}[{i}]"), errors))
                .collect();
            (errors.len() == before).then_some(())?;
            checked(Value::List(out))
        }
        (ParamType::Table(specs), NodeKind::Table(_)) => {
            let before = errors.len();
            let p = check_table(specs, node, path, &[], errors);
            (errors.len() == before).then_some(())?;
            checked(Value::Table(p))
        }
        (ParamType::Tagged(variants), NodeKind::Table(_)) => {
            let names: Vec<&str> = variants.iter().map(|v| v.name).collect();
            let Some((tspan, tnode)) = node.get("type") else {
                errors.push(err(SchemaErrorKind::Missing {
                    name: "type".into(),
                    expected: format!("one of {}", quoted(&names)),
                }));
                return None;
            };
            let Some(t) = tnode.as_str() else {
                errors.push(SchemaError {
                    span: tnode.span.clone(),
                    path: format!("{path}.type"),
                    kind: SchemaErrorKind::WrongType {
                        expected: format!("one of {}", quoted(&names)),
                        found: tnode.kind.type_name().into(),
                    },
                });
                return None;
            };
            let Some(v) = variants.iter().find(|v| v.name == t) else {
                let _ = tspan;
                errors.push(SchemaError {
                    span: tnode.span.clone(),
                    path: format!("{path}.type"),
                    kind: SchemaErrorKind::NotOneOf {
                        got: t.to_owned(),
                        choices: quoted(&names),
                        suggestion: suggest(t, names.iter().copied()).map(str::to_owned),
                    },
                });
                return None;
            };
            let before = errors.len();
            let p = check_table(&v.params, node, path, &["type"], errors);
            (errors.len() == before).then_some(())?;
            checked(Value::Variant(v.name, p))
        }
        _ => {
            errors.push(wrong());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<ParamSpec> {
        vec![
            ParamSpec::new("speed", ParamType::Float, "speed")
                .unit("mm/s")
                .range(Range::above(0.0)),
            ParamSpec::new("mode", ParamType::Choice(vec!["speed", "position"]), "mode")
                .default("speed"),
            ParamSpec::new(
                "levels",
                ParamType::List(Box::new(ParamType::Float)),
                "levels",
            )
            .unit("%")
            .optional(),
            ParamSpec::new("n", ParamType::Int, "count")
                .range(Range::between(1.0, 10.0))
                .default("1"),
        ]
    }

    #[test]
    fn converts_units_and_keeps_order() {
        let n = Node::table([
            ("speed", Node::str("0.3 mm/min")),
            ("levels", Node::list([Node::float(0.4), Node::str("0.8 %")])),
        ]);
        let p = check(&specs(), &n).unwrap();
        assert_eq!(p.f64("speed"), Some(0.005));
        assert_eq!(p.f64s("levels"), Some(vec![0.4, 0.8]));
        assert_eq!(p.str("mode"), None);
    }

    #[test]
    fn reports_every_error_at_once() {
        let n = Node::table([
            ("sped", Node::float(1.0)),
            ("mode", Node::str("postion")),
            ("levels", Node::list([Node::str("2 kN"), Node::bool(true)])),
            ("n", Node::int(11)),
        ]);
        let errs = check(&specs(), &n).unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 6, "{text:#?}");
        assert!(text[0].contains("unknown parameter 'sped'; did you mean 'speed'"));
        assert!(text.iter().any(|t| t.contains("missing parameter 'speed'")));
        assert!(text
            .iter()
            .any(|t| t.contains("\"postion\" is not one of") && t.contains("'position'")));
        assert!(text
            .iter()
            .any(|t| t.starts_with("'levels[0]'") && t.contains("'kN'")));
        assert!(text
            .iter()
            .any(|t| t.starts_with("'levels[1]'") && t.contains("found a boolean")));
        assert!(text
            .iter()
            .any(|t| t.contains("11 is out of range: expected 1 to 10")));
    }

    #[test]
    fn ranges_and_suggestions() {
        let n = Node::table([("speed", Node::str("-1 mm/s"))]);
        let e = check(&specs(), &n).unwrap_err();
        assert!(
            e[0].to_string().contains("expected > 0 (in mm/s)"),
            "{}",
            e[0]
        );
        assert_eq!(
            suggest("Generater", ["Generator", "Recorder"]),
            Some("Generator")
        );
        assert_eq!(suggest("xyz", ["Generator", "Recorder"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("form", "from"), 1);
        assert_eq!(suggest("form", ["from", "to"]), Some("from"));
    }

    #[test]
    fn tagged_tables() {
        let ty = ParamType::Tagged(vec![Variant {
            name: "ramp",
            doc: "a ramp",
            params: vec![ParamSpec::new("speed", ParamType::Float, "slope")],
        }]);
        let spec = vec![ParamSpec::new("p", ty, "path")];
        let ok = Node::table([(
            "p",
            Node::table([("type", Node::str("ramp")), ("speed", Node::float(1.0))]),
        )]);
        assert!(check(&spec, &ok).is_ok());
        let bad = Node::table([("p", Node::table([("type", Node::str("rmp"))]))]);
        let e = check(&spec, &bad).unwrap_err();
        assert_eq!(e[0].suggestion(), Some("ramp"));
        assert_eq!(e[0].path, "p.type");
    }
}
