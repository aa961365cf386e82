//! [`Condition`]: when a Generator path ends, when a [`StopBlock`](crate::StopBlock) stops
//! the test.
//!
//! A condition is written as text, as in Crappy, or given as a closure:
//!
//! | text | true when |
//! |---|---|
//! | `"delay=10"` | more than 10 s have passed since the path started (wall time) |
//! | `"F(N) > 50"` | **any** value of `F(N)` received since the last loop is above 50 |
//! | `"F(N) < 50"`, `"F(N) >= 50"`, `"F(N) <= 50"` | likewise with `<`, `>=`, `<=` |
//! | [`Condition::custom`] | the closure returns `true` for the [`Columns`] received since the last loop |
//!
//! Spaces around the operator are optional. The label is everything before the operator, so
//! labels such as `F(N)` or `Exx(%)` work as they are. A label that was not received this
//! loop makes the comparison false.
//!
//! Evaluation takes the time explicitly ([`Condition::eval`]), so the logic runs the same on
//! the wall clock of a test and on a replayed clock in unit tests.
//!
//! [`IntoCondition`] lets APIs take either text or a ready [`Condition`]; text that does not
//! parse gives an [`ErrorKind::Configuration`] error that names the text and the accepted
//! forms.

use crabby::{Columns, Error, ErrorKind, Label, Result};
use std::fmt;
use std::sync::Arc;

/// The accepted forms, quoted in every parse error.
const ACCEPTED: &str = "accepted forms: \"delay=<seconds>\", \"<label> > <value>\", \
\"<label> < <value>\", \"<label> >= <value>\", \"<label> <= <value>\" \
(for example \"delay=10\", \"F(N) > 50\", \"Exx(%) <= 0.3\")";

/// A comparison operator of a label condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
}

impl CompareOp {
    /// Whether `value <op> threshold`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            CompareOp::Greater => value > threshold,
            CompareOp::GreaterOrEqual => value >= threshold,
            CompareOp::Less => value < threshold,
            CompareOp::LessOrEqual => value <= threshold,
        }
    }

    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Greater => ">",
            CompareOp::GreaterOrEqual => ">=",
            CompareOp::Less => "<",
            CompareOp::LessOrEqual => "<=",
        }
    }
}

type CustomFn = Arc<dyn Fn(&Columns) -> bool + Send + Sync>;

#[derive(Clone)]
enum Kind {
    /// Wall time since the path started is more than this many seconds.
    Delay(f64),
    /// Any received value of the label compares true.
    Compare {
        label: Label,
        op: CompareOp,
        threshold: f64,
    },
    /// Time since the test's start compares true (a StopBlock's `t(s) > 60`).
    Elapsed { op: CompareOp, threshold: f64 },
    /// A user closure on what was received.
    Custom { f: CustomFn, labels: Vec<Label> },
}

/// When a path ends or a test stops. See the [module docs](self).
///
/// ```
/// use crabby::{Columns, Sample};
/// use crabby_blocks::Condition;
///
/// let c = Condition::parse("F(N) >= 50").unwrap();
/// let mut cols = Columns::new();
/// cols.push(&Sample::new().with("F(N)", 10.0));
/// cols.push(&Sample::new().with("F(N)", 50.0));
/// assert!(c.eval(1.0, 0.0, &cols)); // any value since the last loop
///
/// let d = Condition::parse("delay=10").unwrap();
/// assert!(!d.eval(12.0, 5.0, &Columns::new())); // 7 s since the path started
/// assert!(d.eval(15.5, 5.0, &Columns::new()));
/// ```
#[derive(Clone)]
pub struct Condition {
    kind: Kind,
    text: String,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.text).finish()
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Condition {
    /// Parses `"delay=<s>"` or `"<label> <op> <value>"` with `op` one of `>`, `<`, `>=`, `<=`.
    pub fn parse(text: &str) -> Result<Condition> {
        let err = |why: &str| {
            Error::new(
                ErrorKind::Configuration,
                format!("cannot parse condition \"{text}\": {why}; {ACCEPTED}"),
            )
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(err("it is empty"));
        }
        let ops: Vec<usize> = trimmed.match_indices(['<', '>']).map(|(i, _)| i).collect();
        if ops.is_empty() {
            let lower = trimmed.to_ascii_lowercase();
            if let Some(rest) = lower.strip_prefix("delay") {
                let rest = rest.trim_start();
                let Some(value) = rest.strip_prefix('=') else {
                    return Err(err("a delay is written \"delay=<seconds>\""));
                };
                let value = value.trim();
                let seconds: f64 = value
                    .parse()
                    .map_err(|_| err(&format!("'{value}' is not a number")))?;
                if !seconds.is_finite() || seconds < 0.0 {
                    return Err(err(
                        "the delay must be a finite number of seconds, 0 or more",
                    ));
                }
                return Ok(Condition::delay_unchecked(seconds, trimmed));
            }
            if trimmed.contains("==") || trimmed.contains('=') {
                return Err(err("'=' and '==' are not supported (only delay=...)"));
            }
            return Err(err("no comparison operator found"));
        }
        if ops.len() > 1 {
            return Err(err(
                "more than one comparison operator (and/or are not supported)",
            ));
        }
        let at = ops[0];
        let greater = trimmed.as_bytes()[at] == b'>';
        let after = &trimmed[at + 1..];
        let (op, after) = match (greater, after.strip_prefix('=')) {
            (true, Some(a)) => (CompareOp::GreaterOrEqual, a),
            (true, None) => (CompareOp::Greater, after),
            (false, Some(a)) => (CompareOp::LessOrEqual, a),
            (false, None) => (CompareOp::Less, after),
        };
        let label = trimmed[..at].trim();
        if label.is_empty() {
            return Err(err("the label before the operator is missing"));
        }
        if label.ends_with('=') || label.ends_with('!') {
            return Err(err(
                "the operator must be one of >, <, >=, <= ('=' goes after '<' or '>')",
            ));
        }
        let value = after.trim();
        if value.is_empty() {
            return Err(err("the value after the operator is missing"));
        }
        let threshold: f64 = value
            .parse()
            .map_err(|_| err(&format!("'{value}' is not a number")))?;
        if threshold.is_nan() {
            return Err(err("the threshold is NaN"));
        }
        Ok(Condition {
            kind: Kind::Compare {
                label: Label::new(label),
                op,
                threshold,
            },
            text: format!("{label} {} {value}", op.as_str()),
        })
    }

    fn delay_unchecked(seconds: f64, text: &str) -> Condition {
        Condition {
            kind: Kind::Delay(seconds),
            text: text.to_owned(),
        }
    }

    /// True once more than `seconds` have passed since the path started. Errors if
    /// `seconds` is negative or not finite.
    pub fn delay(seconds: f64) -> Result<Condition> {
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(Error::config(format!(
                "a delay condition needs a finite number of seconds, 0 or more (got {seconds})"
            )));
        }
        Ok(Condition::delay_unchecked(
            seconds,
            &format!("delay={seconds}"),
        ))
    }

    /// True when any value of `label` received since the last loop compares true with
    /// `threshold`.
    pub fn compare(label: impl Into<Label>, op: CompareOp, threshold: f64) -> Condition {
        let label = label.into();
        let text = format!("{label} {} {threshold}", op.as_str());
        Condition {
            kind: Kind::Compare {
                label,
                op,
                threshold,
            },
            text,
        }
    }

    /// A closure on the data received since the last loop (label → values). Its labels are
    /// unknown to the graph check; use [`Condition::custom_on`] to declare them.
    pub fn custom(f: impl Fn(&Columns) -> bool + Send + Sync + 'static) -> Condition {
        Condition::custom_on(Vec::<Label>::new(), f)
    }

    /// A closure that reads `labels`: the graph check verifies that some upstream Block
    /// sends each of them.
    pub fn custom_on<L: Into<Label>>(
        labels: impl IntoIterator<Item = L>,
        f: impl Fn(&Columns) -> bool + Send + Sync + 'static,
    ) -> Condition {
        let labels: Vec<Label> = labels.into_iter().map(Into::into).collect();
        let text = if labels.is_empty() {
            "<custom closure>".to_owned()
        } else {
            let names: Vec<&str> = labels.iter().map(|l| l.as_str()).collect();
            format!("<custom closure on {}>", names.join(", "))
        };
        Condition {
            kind: Kind::Custom {
                f: Arc::new(f),
                labels,
            },
            text,
        }
    }

    /// The labels this condition reads (for the graph check). Empty for a delay and for
    /// elapsed-time conditions.
    pub fn labels(&self) -> Vec<Label> {
        match &self.kind {
            Kind::Compare { label, .. } => vec![label.clone()],
            Kind::Custom { labels, .. } => labels.clone(),
            Kind::Delay(_) | Kind::Elapsed { .. } => Vec::new(),
        }
    }

    /// Whether this condition reads only the clock.
    pub fn is_time_only(&self) -> bool {
        matches!(self.kind, Kind::Delay(_) | Kind::Elapsed { .. })
    }

    /// A comparison on `time_label` (e.g. `t(s) > 60`) becomes a comparison of the time
    /// since the test's start, which works without any input: the convention of Crappy's
    /// StopBlock. Other conditions are returned as they are.
    pub fn time_label_as_elapsed(self, time_label: &str) -> Condition {
        match self.kind {
            Kind::Compare {
                label,
                op,
                threshold,
            } if label.as_str() == time_label => Condition {
                kind: Kind::Elapsed { op, threshold },
                text: self.text,
            },
            kind => Condition {
                kind,
                text: self.text,
            },
        }
    }

    /// Evaluates the condition.
    ///
    /// - `now_s`: the current time, seconds since the test's start;
    /// - `start_s`: when the path (or the phase of a cyclic path) started, same clock; a
    ///   delay counts from there;
    /// - `data`: everything received since the last loop.
    pub fn eval(&self, now_s: f64, start_s: f64, data: &Columns) -> bool {
        match &self.kind {
            Kind::Delay(d) => now_s - start_s > *d,
            Kind::Elapsed { op, threshold } => op.holds(now_s, *threshold),
            Kind::Compare {
                label,
                op,
                threshold,
            } => data.get(label.as_str()).is_some_and(|vals| {
                vals.iter()
                    .filter_map(|v| v.as_f64())
                    .any(|v| op.holds(v, *threshold))
            }),
            Kind::Custom { f, .. } => f(data),
        }
    }
}

impl std::str::FromStr for Condition {
    type Err = Error;
    fn from_str(s: &str) -> Result<Condition> {
        Condition::parse(s)
    }
}

/// Text or a ready [`Condition`], for APIs that take either.
pub trait IntoCondition {
    /// Parses or passes through.
    fn into_condition(self) -> Result<Condition>;
}

impl IntoCondition for Condition {
    fn into_condition(self) -> Result<Condition> {
        Ok(self)
    }
}

impl IntoCondition for &str {
    fn into_condition(self) -> Result<Condition> {
        Condition::parse(self)
    }
}

impl IntoCondition for String {
    fn into_condition(self) -> Result<Condition> {
        Condition::parse(&self)
    }
}

impl IntoCondition for &String {
    fn into_condition(self) -> Result<Condition> {
        Condition::parse(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crabby::Sample;

    fn cols(label: &str, values: &[f64]) -> Columns {
        let mut c = Columns::new();
        for v in values {
            c.push(&Sample::new().with(label, *v));
        }
        c
    }

    #[test]
    fn every_operator_parses_and_evaluates() {
        let data = cols("F(N)", &[10.0, 50.0]);
        let cases = [
            ("F(N)>50", false),
            ("F(N) > 49.9", true),
            ("F(N)>=50", true),
            ("F(N) >= 50.1", false),
            ("F(N)<10", false),
            ("F(N) < 10.5", true),
            ("F(N)<=10", true),
            ("  F(N)   <=   9.99 ", false),
        ];
        for (text, expected) in cases {
            let c = Condition::parse(text).unwrap();
            assert_eq!(c.eval(0.0, 0.0, &data), expected, "{text}");
            assert_eq!(c.labels(), vec![Label::new("F(N)")], "{text}");
        }
    }

    #[test]
    fn labels_with_parentheses_percent_and_spaces() {
        let c = Condition::parse("Exx(%) < 0.3").unwrap();
        assert_eq!(c.labels()[0].as_str(), "Exx(%)");
        assert!(c.eval(0.0, 0.0, &cols("Exx(%)", &[0.29])));
        let c = Condition::parse("my force (N)>1e3").unwrap();
        assert_eq!(c.labels()[0].as_str(), "my force (N)");
        assert!(c.eval(0.0, 0.0, &cols("my force (N)", &[1001.0])));
        assert_eq!(c.to_string(), "my force (N) > 1e3");
    }

    #[test]
    fn absent_label_and_non_numeric_values_are_false() {
        let c = Condition::parse("F(N) > 1").unwrap();
        assert!(!c.eval(0.0, 0.0, &Columns::new()));
        assert!(!c.eval(0.0, 0.0, &cols("x(mm)", &[5.0])));
        let mut text = Columns::new();
        text.push(&Sample::new().with("F(N)", "high"));
        assert!(!c.eval(0.0, 0.0, &text));
        // Integers and booleans count as numbers.
        let mut ints = Columns::new();
        ints.push(&Sample::new().with("F(N)", 2_i64));
        assert!(c.eval(0.0, 0.0, &ints));
    }

    #[test]
    fn delay_counts_from_the_path_start_strictly() {
        for text in ["delay=10", "delay = 10", "DELAY=10", "Delay=10.0"] {
            let c = Condition::parse(text).unwrap();
            assert!(c.labels().is_empty());
            assert!(c.is_time_only());
            assert!(
                !c.eval(12.0, 2.0, &Columns::new()),
                "{text}: exactly 10 s is not more"
            );
            assert!(c.eval(12.001, 2.0, &Columns::new()), "{text}");
            assert!(!c.eval(11.0, 2.0, &cols("F(N)", &[1e9])));
        }
        assert!(Condition::delay(-1.0).is_err());
        assert!(Condition::delay(f64::NAN).is_err());
        assert!(Condition::delay(0.0)
            .unwrap()
            .eval(0.1, 0.0, &Columns::new()));
    }

    #[test]
    fn malformed_conditions_are_configuration_errors_naming_the_text() {
        let bad = [
            "",
            "F(N)",
            "F(N) > ",
            "> 5",
            "F(N) > abc",
            "F(N) == 5",
            "F(N) = 5",
            "F(N) => 5",
            "F(N) =< 5",
            "F(N) != 5",
            "F(N) > 5 and x < 2",
            "1 < x < 2",
            "delay",
            "delay 10",
            "delay=abc",
            "delay=-3",
            "delay=inf",
            "F(N) > NaN",
        ];
        for text in bad {
            let e = Condition::parse(text).expect_err(text);
            assert_eq!(e.kind(), ErrorKind::Configuration, "{text}");
            assert!(
                e.description().contains(&format!("\"{text}\"")),
                "{}",
                e.description()
            );
            assert!(
                e.description().contains("accepted forms"),
                "{}",
                e.description()
            );
        }
    }

    #[test]
    fn custom_closures_see_the_columns() {
        let c = Condition::custom_on(["F(N)", "x(mm)"], |d: &Columns| {
            d.f64s("F(N)").iter().sum::<f64>() > 10.0
        });
        assert_eq!(c.labels().len(), 2);
        assert!(!c.eval(0.0, 0.0, &cols("F(N)", &[4.0, 5.0])));
        assert!(c.eval(0.0, 0.0, &cols("F(N)", &[4.0, 7.0])));
        let anon = Condition::custom(|d: &Columns| d.is_empty());
        assert!(anon.labels().is_empty());
        assert!(anon.eval(0.0, 0.0, &Columns::new()));
        assert_eq!(anon.to_string(), "<custom closure>");
    }

    #[test]
    fn time_label_becomes_elapsed_time() {
        let c = Condition::parse("t(s) > 60")
            .unwrap()
            .time_label_as_elapsed("t(s)");
        assert!(c.labels().is_empty());
        assert!(
            !c.eval(59.0, 0.0, &cols("t(s)", &[100.0])),
            "the label value is ignored"
        );
        assert!(c.eval(60.5, 0.0, &Columns::new()), "works without inputs");
        let f = Condition::parse("F(N) > 60")
            .unwrap()
            .time_label_as_elapsed("t(s)");
        assert_eq!(f.labels().len(), 1);
    }

    #[test]
    fn into_condition_accepts_text_and_conditions() {
        assert!("F(N)>1".into_condition().is_ok());
        assert!(String::from("x < 1").into_condition().is_ok());
        assert!(Condition::compare("x", CompareOp::Less, 1.0)
            .into_condition()
            .is_ok());
        assert!("nonsense".into_condition().is_err());
        let parsed: Condition = "x <= 2".parse().unwrap();
        assert_eq!(parsed.to_string(), "x <= 2");
    }
}
