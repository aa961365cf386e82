//! Built-in modifiers: averaging, differentiating, offsetting, demultiplexing and triggering.
//!
//! The principal types:
//! - Averaging over windows: [`Mean`] and [`Median`] send one sample every `n` (per label);
//!   [`MovingAvg`] and [`MovingMed`] smooth every sample over the last `n` values.
//! - Calculus: [`Diff`] adds a backward difference, [`Integrate`] a trapezoidal integral.
//! - [`Offset`]: shifts labels so their first value becomes a target (zeroing a sensor).
//! - [`Demux`]: turns a stream chunk (arrays from a DAQ) into one scalar per channel.
//! - Thinning and triggering: [`DownSampler`], [`TrigOnChange`], [`TrigOnValue`].
//!
//! Conventions shared by all of them:
//! - A *numeric* value is a [`Value::Float`] or a [`Value::Int`]. Results of arithmetic are
//!   always [`Value::Float`]; booleans, text and arrays are never averaged.
//! - Parameters that are wrong on their own (a window of 0 points, no label) are refused by
//!   the constructor with an [`ErrorKind::Configuration`] error. Labels that the upstream
//!   Block does not send are refused by [`Modifier::output_labels`], before anything is forked.
//! - At run time nothing panics: a sample a modifier cannot use (missing label, value that is
//!   not a finite number, stream chunk of the wrong shape) is passed through or dropped as each
//!   type documents, and a warning is logged once per modifier and kind of problem.
//!
//! Unlike Crappy, the averaging modifiers do not count the first sample twice.

use super::Modifier;
use crate::{Error, ErrorKind, Label, Result, Sample, Value};
use std::collections::VecDeque;

/// The default time label.
const TIME: &str = "t(s)";

/// The value as a float if it is numeric (a float or an integer, not a boolean).
fn numeric(v: &Value) -> Option<f64> {
    match v {
        Value::Float(x) => Some(*x),
        Value::Int(i) => Some(*i as f64),
        _ => None,
    }
}

/// The label's value as a finite float, if it is present, numeric and finite.
fn finite(s: &Sample, label: &str) -> Option<f64> {
    s.get(label).and_then(numeric).filter(|x| x.is_finite())
}

/// Whether two values are the same for triggering: numbers compare by value (so `Int(1)`
/// equals `Float(1.0)`, and NaN equals NaN), anything else with `==`.
fn same_value(a: &Value, b: &Value) -> bool {
    match (numeric(a), numeric(b)) {
        (Some(x), Some(y)) => x == y || (x.is_nan() && y.is_nan()),
        _ => a == b,
    }
}

/// The message for a label the upstream Block does not send.
fn missing(label: &str, input: &[Label]) -> String {
    let sent: Vec<&str> = input.iter().map(Label::as_str).collect();
    format!(
        "label '{label}' is not sent by the upstream Block (it sends {}); check the spelling, \
         or add a Block or modifier upstream that produces it",
        if sent.is_empty() {
            "no label".to_owned()
        } else {
            sent.join(", ")
        }
    )
}

/// `Ok` if every label is in `input`.
fn require(input: &[Label], labels: &[&Label]) -> Result<(), String> {
    for l in labels {
        if !input.contains(l) {
            return Err(missing(l, input));
        }
    }
    Ok(())
}

/// `input` with `extra` appended (labels already present keep their place).
fn with_label(input: &[Label], extra: &Label) -> Vec<Label> {
    let mut out = input.to_vec();
    if !out.contains(extra) {
        out.push(extra.clone());
    }
    out
}

/// A configuration error for a modifier parameter (the description names the modifier; the
/// origin is left for the Block the link belongs to).
fn bad_param(modifier: &str, description: String) -> Error {
    Error::new(
        ErrorKind::Configuration,
        format!("modifier {modifier}: {description}"),
    )
}

/// Checks a window size.
fn check_points(modifier: &str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(bad_param(
            modifier,
            "n_points must be at least 1 (got 0); use 1 to pass every value unchanged, or the \
             number of values per window"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Logs a warning the first time only.
fn warn_once(flag: &mut bool, modifier: &str, message: impl FnOnce() -> String) {
    if !*flag {
        *flag = true;
        log::warn!("modifier {modifier}: {} (reported once)", message());
    }
}

/// The slot of `label` in a small per-label table, created with `new` on first sight. The
/// same label is usually at the same index in every sample, so `hint` is tried first.
fn slot<'a, T>(
    table: &'a mut Vec<(Label, T)>,
    hint: usize,
    label: &Label,
    new: impl FnOnce() -> T,
) -> &'a mut T {
    let i = if table.get(hint).is_some_and(|(l, _)| l == label) {
        hint
    } else if let Some(i) = table.iter().position(|(l, _)| l == label) {
        i
    } else {
        table.push((label.clone(), new()));
        table.len() - 1
    };
    &mut table[i].1
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The median of a non-empty slice (reorders it): the middle value, or the mean of the two
/// middle values for an even length, as NumPy. NaN if any value is NaN.
fn median(values: &mut [f64]) -> f64 {
    if values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let (len, k) = (values.len(), values.len() / 2);
    let (low, upper, _) = values.select_nth_unstable_by(k, f64::total_cmp);
    let upper = *upper;
    if len % 2 == 1 {
        upper
    } else {
        let lower = low.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stat {
    Mean,
    Median,
}

impl Stat {
    fn of(self, values: &mut [f64]) -> f64 {
        match self {
            Stat::Mean => mean(values),
            Stat::Median => median(values),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Mean, Median
// ---------------------------------------------------------------------------------------

/// The values of one label buffered by [`Mean`] or [`Median`].
#[derive(Debug, Default)]
struct Window {
    /// The numeric values received since the last emission.
    values: Vec<f64>,
    /// How many values were received since the last emission (numeric or not).
    count: usize,
    /// The last value received.
    last: Option<Value>,
}

/// Shared logic of [`Mean`] and [`Median`].
#[derive(Debug)]
struct Windows {
    n: usize,
    stat: Stat,
    table: Vec<(Label, Window)>,
}

impl Windows {
    fn new(n: usize, stat: Stat) -> Self {
        Windows {
            n,
            stat,
            table: Vec::new(),
        }
    }

    fn apply(&mut self, sample: Sample) -> Option<Sample> {
        let mut out = Sample::with_capacity(sample.len());
        for (i, (label, value)) in sample.iter().enumerate() {
            let n = self.n;
            let w = slot(&mut self.table, i, label, || Window {
                values: Vec::with_capacity(n),
                ..Window::default()
            });
            if let Some(x) = numeric(value) {
                w.values.push(x);
            }
            w.count += 1;
            w.last = Some(value.clone());
            if w.count >= self.n {
                // Averaged only if every value of the window was numeric.
                let v = if w.values.len() == w.count {
                    Value::Float(self.stat.of(&mut w.values))
                } else {
                    w.last.take().unwrap_or(Value::Float(f64::NAN))
                };
                w.values.clear();
                w.count = 0;
                out.push_unchecked(label.clone(), v);
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

/// Sends the mean of every `n` values, per label; the samples in between are dropped.
///
/// Each label has its own window: when a label has received `n` values since its last
/// emission, the next sent sample carries their mean (a [`Value::Float`]) and the window
/// restarts. Labels that arrive together are emitted together, so with the usual "every label
/// in every sample" one sample out of `n` is sent. A window holding any non-numeric value
/// (boolean, text, array) emits its last value instead of a mean.
///
/// The time label is averaged like any other: the sent `t(s)` is the mean time of the window,
/// the instant the averaged values best describe.
///
/// Unlike Crappy's `Mean`, the first sample is counted once.
///
/// ```
/// use crabby::modifier::{Mean, Modifier};
/// use crabby::Sample;
/// let mut mean = Mean::new(2)?;
/// assert!(mean.apply(Sample::new().with("t(s)", 0.0).with("F(N)", 10.0)).is_none());
/// let out = mean.apply(Sample::new().with("t(s)", 1.0).with("F(N)", 20.0)).unwrap();
/// assert_eq!(out.get_f64("t(s)"), Some(0.5));
/// assert_eq!(out.get_f64("F(N)"), Some(15.0));
/// # Ok::<(), crabby::Error>(())
/// ```
#[derive(Debug)]
pub struct Mean(Windows);

impl Mean {
    /// Averages every `n_points` values; `n_points` must be at least 1 (1 passes every
    /// sample, with integers turned into floats).
    pub fn new(n_points: usize) -> Result<Self> {
        check_points("Mean", n_points)?;
        Ok(Mean(Windows::new(n_points, Stat::Mean)))
    }
}

impl Modifier for Mean {
    fn apply(&mut self, sample: Sample) -> Option<Sample> {
        self.0.apply(sample)
    }
}

/// Sends the median of every `n` values, per label; the samples in between are dropped.
///
/// Same windows as [`Mean`], with the median instead of the mean (for an even `n`, the mean
/// of the two middle values; NaN if the window holds a NaN). The sent time label is the
/// median time of the window, its middle for evenly spaced samples.
///
/// ```
/// use crabby::modifier::{Median, Modifier};
/// use crabby::Sample;
/// let mut med = Median::new(3)?;
/// assert!(med.apply(Sample::new().with("x", 1.0)).is_none());
/// assert!(med.apply(Sample::new().with("x", 100.0)).is_none());
/// assert_eq!(med.apply(Sample::new().with("x", 2.0)).unwrap().get_f64("x"), Some(2.0));
/// # Ok::<(), crabby::Error>(())
/// ```
#[derive(Debug)]
pub struct Median(Windows);

impl Median {
    /// The median of every `n_points` values; `n_points` must be at least 1.
    pub fn new(n_points: usize) -> Result<Self> {
        check_points("Median", n_points)?;
        Ok(Median(Windows::new(n_points, Stat::Median)))
    }
}

impl Modifier for Median {
    fn apply(&mut self, sample: Sample) -> Option<Sample> {
        self.0.apply(sample)
    }
}

// ---------------------------------------------------------------------------------------
// MovingAvg, MovingMed
// ---------------------------------------------------------------------------------------

/// The last values of one label, for [`MovingAvg`] and [`MovingMed`].
#[derive(Debug)]
struct History {
    values: VecDeque<f64>,
    scratch: Vec<f64>,
}

/// Shared logic of [`MovingAvg`] and [`MovingMed`].
#[derive(Debug)]
struct Moving {
    n: usize,
    stat: Stat,
    table: Vec<(Label, History)>,
}

impl Moving {
    fn new(n: usize, stat: Stat) -> Self {
        Moving {
            n,
            stat,
            table: Vec::new(),
        }
    }

    fn apply(&mut self, mut sample: Sample) -> Option<Sample> {
        let (n, stat) = (self.n, self.stat);
        for (i, (label, value)) in sample.values_mut().enumerate() {
            let Some(x) = numeric(value) else { continue };
            let h = slot(&mut self.table, i, label, || History {
                values: VecDeque::with_capacity(n),
                scratch: Vec::with_capacity(n),
            });
            if h.values.len() == n {
                h.values.pop_front();
            }
            h.values.push_back(x);
            let v = match stat {
                Stat::Mean => h.values.iter().sum::<f64>() / h.values.len() as f64,
                Stat::Median => {
                    h.scratch.clear();
                    h.scratch.extend(h.values.iter().copied());
                    median(&mut h.scratch)
                }
            };
            *value = Value::Float(v);
        }
        Some(sample)
    }
}

/// Replaces every numeric value by the mean of its label's last `n` values (fewer at the
/// start), on every sample.
///
/// Non-numeric values pass unchanged and do not enter the history. The time label is
/// averaged too (as in Crappy); put a [`Diff`] or anything that needs the true time before
/// this modifier. The first sample passes unchanged (its mean is itself, counted once).
///
/// ```
/// use crabby::modifier::{Modifier, MovingAvg};
/// use crabby::Sample;
/// let mut avg = MovingAvg::new(2)?;
/// for (x, smoothed) in [(1.0, 1.0), (3.0, 2.0), (7.0, 5.0)] {
///     let out = avg.apply(Sample::new().with("x", x)).unwrap();
///     assert_eq!(out.get_f64("x"), Some(smoothed));
/// }
/// # Ok::<(), crabby::Error>(())
/// ```
#[derive(Debug)]
pub struct MovingAvg(Moving);

impl MovingAvg {
    /// A moving mean over `n_points` values; `n_points` must be at least 1.
    pub fn new(n_points: usize) -> Result<Self> {
        check_points("MovingAvg", n_points)?;
        Ok(MovingAvg(Moving::new(n_points, Stat::Mean)))
    }
}

impl Modifier for MovingAvg {
    fn apply(&mut self, sample: Sample) -> Option<Sample> {
        self.0.apply(sample)
    }
}

/// Replaces every numeric value by the median of its label's last `n` values (fewer at the
/// start), on every sample: removes isolated spikes that a mean would smear.
///
/// Same rules as [`MovingAvg`]; for an even count, the mean of the two middle values.
#[derive(Debug)]
pub struct MovingMed(Moving);

impl MovingMed {
    /// A moving median over `n_points` values; `n_points` must be at least 1.
    pub fn new(n_points: usize) -> Result<Self> {
        check_points("MovingMed", n_points)?;
        Ok(MovingMed(Moving::new(n_points, Stat::Median)))
    }
}

impl Modifier for MovingMed {
    fn apply(&mut self, sample: Sample) -> Option<Sample> {
        self.0.apply(sample)
    }
}

// ---------------------------------------------------------------------------------------
// Diff, Integrate
// ---------------------------------------------------------------------------------------

/// Checks the labels of [`Diff`] and [`Integrate`].
fn calculus_labels(
    input: &[Label],
    label: &Label,
    time: &Label,
    out: &Label,
) -> Result<Vec<Label>, String> {
    require(input, &[label, time])?;
    if out == time {
        return Err(format!(
            "the out label '{out}' is the time label: it would overwrite the time; choose \
             another with .out_label(..)"
        ));
    }
    Ok(with_label(input, out))
}

/// Adds the backward difference of a label with respect to time: `(v − v_prev)/(t − t_prev)`.
///
/// The result goes to `d_<label>` (see [`out_label`](Diff::out_label)); it is 0 on the first
/// sample. If the out label is already sent, its value is replaced.
///
/// Samples it cannot use pass unchanged, without the out label, and leave the state as it was
/// (a warning is logged once): the label or the time label is missing, or is not a finite
/// number. So the next difference spans the gap. Time steps that are not positive never
/// produce an infinite or NaN derivative:
/// - `dt == 0` (two samples at the same instant): the last derivative is repeated and the
///   reference point stays the earlier sample, so the next difference spans both steps;
/// - `dt < 0` (time went backwards, e.g. a restarted source): the difference restarts as on a
///   first sample (0), and a warning is logged once.
///
/// ```
/// use crabby::modifier::{Diff, Modifier};
/// use crabby::Sample;
/// let mut diff = Diff::new("x(mm)");
/// let s = |t: f64, x: f64| Sample::new().with("t(s)", t).with("x(mm)", x);
/// assert_eq!(diff.apply(s(0.0, 1.0)).unwrap().get_f64("d_x(mm)"), Some(0.0));
/// assert_eq!(diff.apply(s(0.5, 2.0)).unwrap().get_f64("d_x(mm)"), Some(2.0));
/// assert_eq!(diff.apply(s(1.5, 1.0)).unwrap().get_f64("d_x(mm)"), Some(-1.0));
/// ```
#[derive(Debug)]
pub struct Diff {
    label: Label,
    time: Label,
    out: Label,
    /// The reference point `(t, v)`.
    prev: Option<(f64, f64)>,
    last: f64,
    warned_missing: bool,
    warned_backwards: bool,
}

impl Diff {
    /// Differentiates `label` against `t(s)` into `d_<label>`.
    pub fn new(label: impl Into<Label>) -> Self {
        let label = label.into();
        let out = Label::from(format!("d_{label}"));
        Diff {
            label,
            time: Label::new(TIME),
            out,
            prev: None,
            last: 0.0,
            warned_missing: false,
            warned_backwards: false,
        }
    }

    /// Differentiates against this label instead of `t(s)`.
    pub fn time_label(mut self, label: impl Into<Label>) -> Self {
        self.time = label.into();
        self
    }

    /// Writes the result to this label instead of `d_<label>`.
    pub fn out_label(mut self, label: impl Into<Label>) -> Self {
        self.out = label.into();
        self
    }
}

impl Modifier for Diff {
    fn apply(&mut self, mut sample: Sample) -> Option<Sample> {
        let (Some(v), Some(t)) = (finite(&sample, &self.label), finite(&sample, &self.time)) else {
            let (label, time) = (&self.label, &self.time);
            warn_once(&mut self.warned_missing, "Diff", || {
                format!(
                    "a sample without a finite number in '{label}' or '{time}' was passed \
                     without '{}'",
                    self.out
                )
            });
            return Some(sample);
        };
        let d = match self.prev {
            None => {
                self.prev = Some((t, v));
                0.0
            }
            Some((tp, vp)) => {
                let dt = t - tp;
                if dt > 0.0 {
                    self.prev = Some((t, v));
                    (v - vp) / dt
                } else if dt == 0.0 {
                    self.last
                } else {
                    warn_once(&mut self.warned_backwards, "Diff", || {
                        format!(
                            "'{}' went backwards ({tp} then {t}); restarting at 0",
                            self.time
                        )
                    });
                    self.prev = Some((t, v));
                    0.0
                }
            }
        };
        self.last = d;
        sample.insert(self.out.clone(), d);
        Some(sample)
    }

    fn output_labels(&self, input: &[Label]) -> Result<Vec<Label>, String> {
        calculus_labels(input, &self.label, &self.time, &self.out)
    }
}

/// Adds the running integral of a label over time (trapezoidal rule).
///
/// The result goes to `i_<label>` (see [`out_label`](Integrate::out_label)); it is 0 on the
/// first sample, then grows by `(v + v_prev)/2 · (t − t_prev)` on each sample. If the out
/// label is already sent, its value is replaced.
///
/// Samples whose label or time label is missing or not a finite number pass unchanged,
/// without the out label, and do not touch the integral (a warning is logged once): a NaN
/// from a sensor does not poison the integral for the rest of the test. A sample at the same
/// instant as the previous one adds nothing (and becomes the reference); if time goes
/// backwards, nothing is added, the sample becomes the reference, and a warning is logged once.
///
/// ```
/// use crabby::modifier::{Integrate, Modifier};
/// use crabby::Sample;
/// let mut int = Integrate::new("F(N)").out_label("impulse(N.s)");
/// let s = |t: f64, f: f64| Sample::new().with("t(s)", t).with("F(N)", f);
/// assert_eq!(int.apply(s(0.0, 0.0)).unwrap().get_f64("impulse(N.s)"), Some(0.0));
/// assert_eq!(int.apply(s(1.0, 2.0)).unwrap().get_f64("impulse(N.s)"), Some(1.0));
/// assert_eq!(int.apply(s(2.0, 2.0)).unwrap().get_f64("impulse(N.s)"), Some(3.0));
/// ```
#[derive(Debug)]
pub struct Integrate {
    label: Label,
    time: Label,
    out: Label,
    prev: Option<(f64, f64)>,
    total: f64,
    warned_missing: bool,
    warned_backwards: bool,
}

impl Integrate {
    /// Integrates `label` over `t(s)` into `i_<label>`.
    pub fn new(label: impl Into<Label>) -> Self {
        let label = label.into();
        let out = Label::from(format!("i_{label}"));
        Integrate {
            label,
            time: Label::new(TIME),
            out,
            prev: None,
            total: 0.0,
            warned_missing: false,
            warned_backwards: false,
        }
    }

    /// Integrates over this label instead of `t(s)`.
    pub fn time_label(mut self, label: impl Into<Label>) -> Self {
        self.time = label.into();
        self
    }

    /// Writes the result to this label instead of `i_<label>`.
    pub fn out_label(mut self, label: impl Into<Label>) -> Self {
        self.out = label.into();
        self
    }
}

impl Modifier for Integrate {
    fn apply(&mut self, mut sample: Sample) -> Option<Sample> {
        let (Some(v), Some(t)) = (finite(&sample, &self.label), finite(&sample, &self.time)) else {
            let (label, time) = (&self.label, &self.time);
            warn_once(&mut self.warned_missing, "Integrate", || {
                format!(
                    "a sample without a finite number in '{label}' or '{time}' was passed \
                     without '{}'",
                    self.out
                )
            });
            return Some(sample);
        };
        if let Some((tp, vp)) = self.prev {
            let dt = t - tp;
            if dt > 0.0 {
                self.total += 0.5 * (v + vp) * dt;
            } else if dt < 0.0 {
                warn_once(&mut self.warned_backwards, "Integrate", || {
                    format!(
                        "'{}' went backwards ({tp} then {t}); nothing added",
                        self.time
                    )
                });
            }
        }
        self.prev = Some((t, v));
        sample.insert(self.out.clone(), self.total);
        Some(sample)
    }

    fn output_labels(&self, input: &[Label]) -> Result<Vec<Label>, String> {
        calculus_labels(input, &self.label, &self.time, &self.out)
    }
}

// ---------------------------------------------------------------------------------------
// Offset
// ---------------------------------------------------------------------------------------

/// Shifts labels so that their first value becomes a target: "zero the sensor at the start".
///
/// For each label, the first sample carrying a finite number for it sets
/// `offset = target − value`; that value and every later one are sent as `value + offset`
/// (a [`Value::Float`]). Values before that (absent, NaN) and non-numeric values pass
/// unchanged.
///
/// ```
/// use crabby::modifier::{Modifier, Offset};
/// use crabby::Sample;
/// let mut zero = Offset::new(["F(N)"], [0.0])?;
/// assert_eq!(zero.apply(Sample::new().with("F(N)", 3.5)).unwrap().get_f64("F(N)"), Some(0.0));
/// assert_eq!(zero.apply(Sample::new().with("F(N)", 5.0)).unwrap().get_f64("F(N)"), Some(1.5));
/// # Ok::<(), crabby::Error>(())
/// ```
#[derive(Debug)]
pub struct Offset {
    /// Label, target, offset once known.
    entries: Vec<(Label, f64, Option<f64>)>,
}

impl Offset {
    /// Offsets each label so its first value becomes the target at the same position. There
    /// must be as many targets as labels, at least one label, no label twice, and finite
    /// targets.
    pub fn new<L: Into<Label>>(
        labels: impl IntoIterator<Item = L>,
        targets: impl IntoIterator<Item = f64>,
    ) -> Result<Self> {
        let labels: Vec<Label> = labels.into_iter().map(Into::into).collect();
        let targets: Vec<f64> = targets.into_iter().collect();
        if labels.is_empty() {
            return Err(bad_param(
                "Offset",
                "no label given; pass the labels to offset".into(),
            ));
        }
        if labels.len() != targets.len() {
            return Err(bad_param(
                "Offset",
                format!(
                    "{} labels but {} targets; give one target per label (0.0 to zero it)",
                    labels.len(),
                    targets.len()
                ),
            ));
        }
        for (i, l) in labels.iter().enumerate() {
            if labels[..i].contains(l) {
                return Err(bad_param(
                    "Offset",
                    format!("label '{l}' is given twice; give each label once"),
                ));
            }
        }
        if let Some((l, t)) = labels.iter().zip(&targets).find(|(_, t)| !t.is_finite()) {
            return Err(bad_param(
                "Offset",
                format!("the target of '{l}' is {t}; targets must be finite numbers"),
            ));
        }
        Ok(Offset {
            entries: labels
                .into_iter()
                .zip(targets)
                .map(|(l, t)| (l, t, None))
                .collect(),
        })
    }

    /// Offsets each label so its first value becomes 0.
    pub fn zero<L: Into<Label>>(labels: impl IntoIterator<Item = L>) -> Result<Self> {
        let labels: Vec<Label> = labels.into_iter().map(Into::into).collect();
        let n = labels.len();
        Self::new(labels, std::iter::repeat_n(0.0, n))
    }
}

impl Modifier for Offset {
    fn apply(&mut self, mut sample: Sample) -> Option<Sample> {
        for (label, value) in sample.values_mut() {
            let Some(x) = numeric(value) else { continue };
            let Some((_, target, offset)) = self.entries.iter_mut().find(|(l, _, _)| l == label)
            else {
                continue;
            };
            let off = match offset {
                Some(off) => *off,
                None if x.is_finite() => *offset.insert(*target - x),
                None => continue,
            };
            *value = Value::Float(x + off);
        }
        Some(sample)
    }

    fn output_labels(&self, input: &[Label]) -> Result<Vec<Label>, String> {
        let labels: Vec<&Label> = self.entries.iter().map(|(l, _, _)| l).collect();
        require(input, &labels)?;
        Ok(input.to_vec())
    }
}

// ---------------------------------------------------------------------------------------
// Demux
// ---------------------------------------------------------------------------------------

/// Turns a stream chunk into one scalar per channel, for Blocks that expect scalars (a
/// Grapher, a PID, a condition).
///
/// ## Stream layout
/// A streaming Block sends chunks of `R` rows (instants) of `C` channels, `C` being the number
/// of labels given to [`Demux::new`]:
/// - the stream label (default `stream`) holds a [`Value::Array`] of `R·C` values, row-major:
///   the value of channel `c` at row `r` is at index `r·C + c` (all channels of the first
///   instant, then all of the second, ...). With [`transpose(true)`](Demux::transpose) it is
///   channel-major instead: index `c·R + r` (all of the first channel, then the second, ...);
/// - the time label (default `t(s)`) holds a [`Value::Array`] of the `R` timestamps, or a
///   single number (left as it is).
///
/// ## Output
/// Each channel label gets the channel's first row, or its mean over the chunk with
/// [`mean(true)`](Demux::mean); the time label gets the first timestamp, or their mean. The
/// stream label is removed; other labels pass unchanged.
///
/// A chunk that does not fit the layout (stream is not an array, length not a multiple of
/// `C`, empty, or a time array whose length is not `R`) is dropped and a warning is logged
/// once. Samples without the stream label pass unchanged (a warning is logged once).
///
/// ```
/// use crabby::modifier::{Demux, Modifier};
/// use crabby::Sample;
/// let mut demux = Demux::new(["a", "b"])?.mean(true);
/// let chunk = Sample::new()
///     .with("t(s)", vec![0.0, 0.1])
///     .with("stream", vec![1.0, 10.0, 3.0, 30.0]); // rows (a, b): (1, 10), (3, 30)
/// let out = demux.apply(chunk).unwrap();
/// assert_eq!(out.get_f64("a"), Some(2.0));
/// assert_eq!(out.get_f64("b"), Some(20.0));
/// assert_eq!(out.get_f64("t(s)"), Some(0.05));
/// assert!(!out.contains("stream"));
/// # Ok::<(), crabby::Error>(())
/// ```
#[derive(Debug)]
pub struct Demux {
    labels: Vec<Label>,
    stream: Label,
    time: Label,
    mean: bool,
    transpose: bool,
    warned_shape: bool,
    warned_missing: bool,
}

impl Demux {
    /// Demultiplexes a stream of `labels.len()` channels into these labels (at least one, no
    /// label twice).
    pub fn new<L: Into<Label>>(labels: impl IntoIterator<Item = L>) -> Result<Self> {
        let labels: Vec<Label> = labels.into_iter().map(Into::into).collect();
        if labels.is_empty() {
            return Err(bad_param(
                "Demux",
                "no label given; pass one label per channel of the stream".into(),
            ));
        }
        for (i, l) in labels.iter().enumerate() {
            if labels[..i].contains(l) {
                return Err(bad_param(
                    "Demux",
                    format!("label '{l}' is given twice; give each channel its own label"),
                ));
            }
        }
        Ok(Demux {
            labels,
            stream: Label::new("stream"),
            time: Label::new(TIME),
            mean: false,
            transpose: false,
            warned_shape: false,
            warned_missing: false,
        })
    }

    /// Reads the chunk from this label instead of `stream`.
    pub fn stream_label(mut self, label: impl Into<Label>) -> Self {
        self.stream = label.into();
        self
    }

    /// Reads the timestamps from this label instead of `t(s)`.
    pub fn time_label(mut self, label: impl Into<Label>) -> Self {
        self.time = label.into();
        self
    }

    /// Sends the mean of each channel (and of the timestamps) instead of the first row.
    pub fn mean(mut self, mean: bool) -> Self {
        self.mean = mean;
        self
    }

    /// Reads the stream channel-major (index `c·R + r`) instead of row-major.
    pub fn transpose(mut self, transpose: bool) -> Self {
        self.transpose = transpose;
        self
    }

    /// Drops a chunk that does not fit, with a warning the first time.
    fn reject(&mut self, why: impl FnOnce() -> String) -> Option<Sample> {
        warn_once(&mut self.warned_shape, "Demux", || {
            format!("chunk dropped: {}", why())
        });
        None
    }
}

impl Modifier for Demux {
    fn apply(&mut self, mut sample: Sample) -> Option<Sample> {
        let Some(stream) = sample.remove(&self.stream) else {
            let stream = &self.stream;
            warn_once(&mut self.warned_missing, "Demux", || {
                format!("a sample without '{stream}' was passed unchanged")
            });
            return Some(sample);
        };
        let Value::Array(data) = stream else {
            let stream = self.stream.clone();
            return self.reject(|| format!("'{stream}' is not an array"));
        };
        let c = self.labels.len();
        if data.is_empty() || data.len() % c != 0 {
            let len = data.len();
            return self.reject(|| {
                format!("{len} values in the stream is not a positive multiple of {c} channels")
            });
        }
        let rows = data.len() / c;
        let time = match sample.get(&self.time) {
            Some(Value::Array(ts)) if ts.len() != rows => {
                let n = ts.len();
                return self.reject(|| format!("{n} timestamps for {rows} rows"));
            }
            Some(Value::Array(ts)) => Some(if self.mean { mean(ts) } else { ts[0] }),
            _ => None,
        };
        if let Some(t) = time {
            sample.insert(self.time.clone(), t);
        }
        for (ch, label) in self.labels.iter().enumerate() {
            let at = |r: usize| {
                if self.transpose {
                    data[ch * rows + r]
                } else {
                    data[r * c + ch]
                }
            };
            let v = if self.mean {
                (0..rows).map(at).sum::<f64>() / rows as f64
            } else {
                at(0)
            };
            sample.insert(label.clone(), v);
        }
        Some(sample)
    }

    fn output_labels(&self, input: &[Label]) -> Result<Vec<Label>, String> {
        require(input, &[&self.stream])?;
        if self.labels.contains(&self.stream) || self.labels.contains(&self.time) {
            return Err(format!(
                "a channel label is also the stream label '{}' or the time label '{}'; rename \
                 the channel",
                self.stream, self.time
            ));
        }
        if self.stream == self.time {
            return Err(format!(
                "the stream label and the time label are both '{}'; set them apart with \
                 .stream_label(..) or .time_label(..)",
                self.stream
            ));
        }
        let mut out: Vec<Label> = input
            .iter()
            .filter(|l| **l != self.stream)
            .cloned()
            .collect();
        for l in &self.labels {
            if !out.contains(l) {
                out.push(l.clone());
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// DownSampler, TrigOnChange, TrigOnValue
// ---------------------------------------------------------------------------------------

/// Sends the first sample, then one in every `n` (samples `0, n, 2n, ...`), unchanged.
///
/// ```
/// use crabby::modifier::{DownSampler, Modifier};
/// use crabby::Sample;
/// let mut down = DownSampler::new(3)?;
/// let passed: Vec<bool> =
///     (0..7).map(|i| down.apply(Sample::new().with("i", i)).is_some()).collect();
/// assert_eq!(passed, [true, false, false, true, false, false, true]);
/// # Ok::<(), crabby::Error>(())
/// ```
#[derive(Debug)]
pub struct DownSampler {
    n: usize,
    /// Samples seen since the last one passed.
    since: usize,
}

impl DownSampler {
    /// Passes one sample in every `n_points`; `n_points` must be at least 1 (1 passes all).
    pub fn new(n_points: usize) -> Result<Self> {
        check_points("DownSampler", n_points)?;
        Ok(DownSampler {
            n: n_points,
            since: 0,
        })
    }
}

impl Modifier for DownSampler {
    fn apply(&mut self, sample: Sample) -> Option<Sample> {
        let pass = self.since == 0;
        self.since = (self.since + 1) % self.n;
        pass.then_some(sample)
    }
}

/// Sends a sample only when a label's value changes: the first sample carrying the label,
/// then each one whose value differs from the last one sent.
///
/// Numbers compare by value (`Int(1)` equals `Float(1.0)`), other values exactly. Samples
/// without the label are dropped: they cannot show a change.
///
/// ```
/// use crabby::modifier::{Modifier, TrigOnChange};
/// use crabby::Sample;
/// let mut trig = TrigOnChange::new("state");
/// let passed: Vec<bool> = ["idle", "idle", "run", "run", "idle"]
///     .iter()
///     .map(|s| trig.apply(Sample::new().with("state", *s)).is_some())
///     .collect();
/// assert_eq!(passed, [true, false, true, false, true]);
/// ```
#[derive(Debug)]
pub struct TrigOnChange {
    label: Label,
    last: Option<Value>,
}

impl TrigOnChange {
    /// Triggers on changes of `label`.
    pub fn new(label: impl Into<Label>) -> Self {
        TrigOnChange {
            label: label.into(),
            last: None,
        }
    }
}

impl Modifier for TrigOnChange {
    fn apply(&mut self, sample: Sample) -> Option<Sample> {
        let v = sample.get(&self.label)?;
        if self.last.as_ref().is_some_and(|last| same_value(last, v)) {
            return None;
        }
        self.last = Some(v.clone());
        Some(sample)
    }

    fn output_labels(&self, input: &[Label]) -> Result<Vec<Label>, String> {
        require(input, &[&self.label])?;
        Ok(input.to_vec())
    }
}

/// Sends only the samples whose label has one of the given values.
///
/// Numbers compare by value (`Int(1)` matches `1.0`), other values exactly. Samples without
/// the label are dropped.
///
/// ```
/// use crabby::modifier::{Modifier, TrigOnValue};
/// use crabby::Sample;
/// let mut trig = TrigOnValue::new("cycle", [2, 4])?;
/// let passed: Vec<i64> = (0..6)
///     .filter_map(|i| trig.apply(Sample::new().with("cycle", i)))
///     .map(|s| s.get_f64("cycle").unwrap() as i64)
///     .collect();
/// assert_eq!(passed, [2, 4]);
/// # Ok::<(), crabby::Error>(())
/// ```
#[derive(Debug)]
pub struct TrigOnValue {
    label: Label,
    values: Vec<Value>,
}

impl TrigOnValue {
    /// Passes samples whose `label` is one of `values` (at least one value).
    pub fn new<V: Into<Value>>(
        label: impl Into<Label>,
        values: impl IntoIterator<Item = V>,
    ) -> Result<Self> {
        let label = label.into();
        let values: Vec<Value> = values.into_iter().map(Into::into).collect();
        if values.is_empty() {
            return Err(bad_param(
                "TrigOnValue",
                format!("no value given for '{label}': nothing would ever pass; give the values to trigger on"),
            ));
        }
        Ok(TrigOnValue { label, values })
    }
}

impl Modifier for TrigOnValue {
    fn apply(&mut self, sample: Sample) -> Option<Sample> {
        let v = sample.get(&self.label)?;
        self.values
            .iter()
            .any(|w| same_value(v, w))
            .then_some(sample)
    }

    fn output_labels(&self, input: &[Label]) -> Result<Vec<Label>, String> {
        require(input, &[&self.label])?;
        Ok(input.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic pseudo-random generator (xorshift64*) for property tests.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Self {
            Rng(seed.max(1))
        }
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        /// Uniform in [lo, hi).
        fn f64(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }
        /// Uniform in [lo, hi).
        fn usize(&mut self, lo: usize, hi: usize) -> usize {
            lo + (self.next_u64() % (hi - lo) as u64) as usize
        }
    }

    fn labels(ls: &[&str]) -> Vec<Label> {
        ls.iter().map(|l| Label::new(l)).collect()
    }

    fn tx(t: f64, x: f64) -> Sample {
        Sample::new().with("t(s)", t).with("x", x)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    // ----- parameter validation -----

    #[test]
    fn window_sizes_of_zero_are_configuration_errors() {
        let errors = [
            ("Mean", Mean::new(0).err()),
            ("Median", Median::new(0).err()),
            ("MovingAvg", MovingAvg::new(0).err()),
            ("MovingMed", MovingMed::new(0).err()),
            ("DownSampler", DownSampler::new(0).err()),
        ];
        for (name, e) in errors {
            let e = e.unwrap_or_else(|| panic!("{name}::new(0) was accepted"));
            assert_eq!(e.kind(), ErrorKind::Configuration);
            assert!(e.description().contains(name), "{e}");
            assert!(
                e.description().contains("n_points must be at least 1"),
                "{e}"
            );
        }
        assert!(Mean::new(1).is_ok() && DownSampler::new(1).is_ok());
    }

    #[test]
    fn offset_demux_and_trigger_parameters_are_checked() {
        let e = Offset::new(["a", "b"], [0.0]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.description().contains("2 labels but 1 targets"), "{e}");
        assert!(Offset::new(Vec::<&str>::new(), []).is_err());
        assert!(Offset::new(["a", "a"], [0.0, 1.0])
            .unwrap_err()
            .description()
            .contains("twice"));
        assert!(Offset::new(["a"], [f64::NAN])
            .unwrap_err()
            .description()
            .contains("finite"));
        assert!(Offset::zero(["a", "b"]).is_ok());

        let e = Demux::new(Vec::<&str>::new()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.description().contains("Demux"), "{e}");
        assert!(Demux::new(["a", "b", "a"])
            .unwrap_err()
            .description()
            .contains("twice"));

        let e = TrigOnValue::new("state", Vec::<Value>::new()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.description().contains("TrigOnValue") && e.description().contains("state"));
    }

    // ----- Mean, Median -----

    #[test]
    fn mean_emits_one_sample_per_window_without_counting_the_first_twice() {
        let mut m = Mean::new(3).unwrap();
        assert!(m.apply(tx(0.0, 1.0)).is_none());
        assert!(m.apply(tx(1.0, 2.0)).is_none());
        let out = m.apply(tx(2.0, 6.0)).unwrap();
        assert_eq!(out.get_f64("t(s)"), Some(1.0));
        assert_eq!(out.get_f64("x"), Some(3.0)); // (1 + 2 + 6) / 3
        assert!(m.apply(tx(3.0, 4.0)).is_none());
        assert!(m.apply(tx(4.0, 4.0)).is_none());
        let out = m.apply(tx(5.0, 7.0)).unwrap();
        assert_eq!(out.get_f64("t(s)"), Some(4.0));
        assert_eq!(out.get_f64("x"), Some(5.0)); // (4 + 4 + 7) / 3

        // Crappy would emit 10 on the second sample (first one counted twice).
        let mut m = Mean::new(2).unwrap();
        assert!(m.apply(Sample::new().with("x", 10.0)).is_none());
        assert_eq!(
            m.apply(Sample::new().with("x", 20.0)).unwrap().get_f64("x"),
            Some(15.0)
        );
    }

    #[test]
    fn mean_keeps_one_window_per_label_and_last_value_for_non_numbers() {
        let mut m = Mean::new(2).unwrap();
        assert!(m
            .apply(
                Sample::new()
                    .with("a", 1.0)
                    .with("b", 10.0)
                    .with("mode", "x")
            )
            .is_none());
        let out = m
            .apply(Sample::new().with("a", 3.0).with("mode", "y"))
            .unwrap();
        assert_eq!(out.get_f64("a"), Some(2.0));
        assert_eq!(out.get("mode"), Some(&Value::Text("y".into())));
        assert!(!out.contains("b"));
        let out = m
            .apply(Sample::new().with("a", 5.0).with("b", 20.0))
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out.get_f64("b"), Some(15.0));
        // Integers are averaged into a float; a window mixing a number and a flag is not.
        let mut m = Mean::new(2).unwrap();
        m.apply(Sample::new().with("i", 1).with("f", 1.0));
        let out = m.apply(Sample::new().with("i", 2).with("f", true)).unwrap();
        assert_eq!(out.get("i"), Some(&Value::Float(1.5)));
        assert_eq!(out.get("f"), Some(&Value::Bool(true)));
    }

    #[test]
    fn median_of_odd_and_even_windows() {
        let mut m = Median::new(4).unwrap();
        for x in [5.0, 1.0, 9.0] {
            assert!(m.apply(Sample::new().with("x", x)).is_none());
        }
        // sorted 1 3 5 9 -> (3 + 5) / 2
        assert_eq!(
            m.apply(Sample::new().with("x", 3.0)).unwrap().get_f64("x"),
            Some(4.0)
        );
        let mut m = Median::new(3).unwrap();
        m.apply(Sample::new().with("x", 7.0));
        m.apply(Sample::new().with("x", -2.0));
        assert_eq!(
            m.apply(Sample::new().with("x", 1000.0))
                .unwrap()
                .get_f64("x"),
            Some(7.0)
        );
        m.apply(Sample::new().with("x", 1.0));
        m.apply(Sample::new().with("x", f64::NAN));
        assert!(m
            .apply(Sample::new().with("x", 2.0))
            .unwrap()
            .get_f64("x")
            .unwrap()
            .is_nan());
    }

    // ----- MovingAvg, MovingMed -----

    #[test]
    fn moving_average_over_the_last_n_values() {
        let mut m = MovingAvg::new(3).unwrap();
        let got: Vec<f64> = [3.0, 6.0, 9.0, 0.0, 30.0]
            .iter()
            .map(|x| {
                m.apply(Sample::new().with("x", *x).with("s", "on"))
                    .unwrap()
            })
            .inspect(|s| assert_eq!(s.get("s"), Some(&Value::Text("on".into()))))
            .map(|s| s.get_f64("x").unwrap())
            .collect();
        assert_eq!(got, [3.0, 4.5, 6.0, 5.0, 13.0]);
    }

    #[test]
    fn moving_median_removes_a_spike() {
        let mut m = MovingMed::new(3).unwrap();
        let got: Vec<f64> = [3.0, 6.0, 100.0, 0.0, 30.0]
            .iter()
            .map(|x| {
                m.apply(Sample::new().with("x", *x))
                    .unwrap()
                    .get_f64("x")
                    .unwrap()
            })
            .collect();
        assert_eq!(got, [3.0, 4.5, 6.0, 6.0, 30.0]);
    }

    // ----- Diff, Integrate -----

    #[test]
    fn diff_backward_difference_with_zero_and_negative_steps() {
        let mut d = Diff::new("x");
        let mut run = |t: f64, x: f64| d.apply(tx(t, x)).unwrap().get_f64("d_x").unwrap();
        assert_eq!(run(0.0, 0.0), 0.0); // first sample
        assert_eq!(run(1.0, 2.0), 2.0);
        assert_eq!(run(2.0, 8.0), 6.0);
        assert_eq!(run(2.0, 9.0), 6.0); // dt == 0: held, reference stays (2, 8)
        assert_eq!(run(4.0, 10.0), 1.0); // (10 - 8) / (4 - 2)
        assert_eq!(run(1.0, 5.0), 0.0); // time went backwards: restart
        assert_eq!(run(2.0, 7.0), 2.0);
    }

    #[test]
    fn diff_passes_unusable_samples_without_out_label_and_keeps_state() {
        let mut d = Diff::new("x").out_label("v").time_label("time");
        let s = |t: f64, x: f64| Sample::new().with("time", t).with("x", x);
        assert_eq!(d.apply(s(0.0, 1.0)).unwrap().get_f64("v"), Some(0.0));
        assert_eq!(d.apply(s(1.0, 3.0)).unwrap().get_f64("v"), Some(2.0));
        let no_x = Sample::new().with("time", 2.0);
        assert_eq!(d.apply(no_x.clone()), Some(no_x));
        let nan = s(3.0, f64::NAN);
        assert!(!d.apply(nan).unwrap().contains("v"));
        assert!(!d
            .apply(Sample::new().with("time", 3.0).with("x", "text"))
            .unwrap()
            .contains("v"));
        assert_eq!(d.apply(s(5.0, 11.0)).unwrap().get_f64("v"), Some(2.0)); // (11 - 3) / 4
                                                                            // Integers are numbers too.
        assert_eq!(
            d.apply(Sample::new().with("time", 6).with("x", 12))
                .unwrap()
                .get_f64("v"),
            Some(1.0)
        );
    }

    #[test]
    fn integrate_trapezoids_with_zero_and_negative_steps() {
        let mut i = Integrate::new("x");
        let mut run = |t: f64, x: f64| i.apply(tx(t, x)).unwrap().get_f64("i_x").unwrap();
        assert_eq!(run(0.0, 2.0), 0.0); // first sample
        assert_eq!(run(1.0, 4.0), 3.0); // + (2 + 4) / 2 * 1
        assert_eq!(run(3.0, 0.0), 7.0); // + (4 + 0) / 2 * 2
        assert_eq!(run(3.0, 10.0), 7.0); // dt == 0: nothing added, reference (3, 10)
        assert_eq!(run(4.0, 10.0), 17.0); // + (10 + 10) / 2 * 1
        assert_eq!(run(2.0, 0.0), 17.0); // backwards: nothing added, reference (2, 0)
        assert_eq!(run(3.0, 2.0), 18.0); // + (0 + 2) / 2 * 1
                                         // A NaN does not poison the integral.
        assert!(!i.apply(tx(4.0, f64::NAN)).unwrap().contains("i_x"));
        assert_eq!(i.apply(tx(5.0, 2.0)).unwrap().get_f64("i_x"), Some(22.0)); // + 2 * 2
    }

    // ----- Offset -----

    #[test]
    fn offset_sets_each_label_on_its_first_value() {
        let mut o = Offset::new(["a", "b"], [0.0, 10.0]).unwrap();
        let out = o
            .apply(Sample::new().with("a", 3.0).with("z", 1.0))
            .unwrap();
        assert_eq!((out.get_f64("a"), out.get_f64("z")), (Some(0.0), Some(1.0)));
        let out = o
            .apply(Sample::new().with("a", 5.0).with("b", 4.0))
            .unwrap();
        assert_eq!(
            (out.get_f64("a"), out.get_f64("b")),
            (Some(2.0), Some(10.0))
        );
        let out = o.apply(Sample::new().with("a", 1).with("b", 6.0)).unwrap();
        assert_eq!(out.get("a"), Some(&Value::Float(-2.0)));
        assert_eq!(out.get_f64("b"), Some(12.0));

        let mut o = Offset::zero(["c"]).unwrap();
        assert!(o
            .apply(Sample::new().with("c", f64::NAN))
            .unwrap()
            .get_f64("c")
            .unwrap()
            .is_nan());
        assert_eq!(
            o.apply(Sample::new().with("c", 2.0)).unwrap().get_f64("c"),
            Some(0.0)
        );
        assert_eq!(
            o.apply(Sample::new().with("c", 5.0)).unwrap().get_f64("c"),
            Some(3.0)
        );
    }

    // ----- Demux -----

    fn chunk(stream: Vec<f64>, t: Vec<f64>) -> Sample {
        Sample::new()
            .with("t(s)", t)
            .with("stream", stream)
            .with("gain", 2.0)
    }

    #[test]
    fn demux_first_row_and_mean_row_major() {
        // 2 rows of (a, b, c): (1, 2, 3) at t = 0, (4, 5, 6) at t = 0.5.
        let data = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut d = Demux::new(["a", "b", "c"]).unwrap();
        let out = d.apply(chunk(data.clone(), vec![0.0, 0.5])).unwrap();
        let got: Vec<(&str, f64)> = out
            .iter()
            .map(|(l, v)| (l.as_str(), v.as_f64().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("t(s)", 0.0),
                ("gain", 2.0),
                ("a", 1.0),
                ("b", 2.0),
                ("c", 3.0)
            ]
        );

        let mut d = Demux::new(["a", "b", "c"]).unwrap().mean(true);
        let out = d.apply(chunk(data, vec![0.0, 0.5])).unwrap();
        assert_eq!(out.get_f64("t(s)"), Some(0.25));
        assert_eq!(out.get_f64("a"), Some(2.5));
        assert_eq!(out.get_f64("b"), Some(3.5));
        assert_eq!(out.get_f64("c"), Some(4.5));
        assert!(!out.contains("stream"));
    }

    #[test]
    fn demux_transposed_and_custom_labels() {
        // Channel-major: a = (1, 2), b = (3, 4), c = (5, 6).
        let s = Sample::new()
            .with("time", vec![1.0, 2.0])
            .with("chunk", vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let mk = || {
            Demux::new(["a", "b", "c"])
                .unwrap()
                .transpose(true)
                .stream_label("chunk")
                .time_label("time")
        };
        let out = mk().apply(s.clone()).unwrap();
        assert_eq!(
            [
                out.get_f64("a"),
                out.get_f64("b"),
                out.get_f64("c"),
                out.get_f64("time")
            ],
            [Some(1.0), Some(3.0), Some(5.0), Some(1.0)]
        );
        let out = mk().mean(true).apply(s).unwrap();
        assert_eq!(
            [
                out.get_f64("a"),
                out.get_f64("b"),
                out.get_f64("c"),
                out.get_f64("time")
            ],
            [Some(1.5), Some(3.5), Some(5.5), Some(1.5)]
        );
        // A scalar time is left as it is.
        let mut d = Demux::new(["a"]).unwrap();
        let out = d
            .apply(
                Sample::new()
                    .with("t(s)", 7.0)
                    .with("stream", vec![4.0, 8.0]),
            )
            .unwrap();
        assert_eq!(
            (out.get_f64("t(s)"), out.get_f64("a")),
            (Some(7.0), Some(4.0))
        );
    }

    #[test]
    fn demux_drops_chunks_of_the_wrong_shape_without_panicking() {
        let mut d = Demux::new(["a", "b"]).unwrap();
        assert!(d
            .apply(chunk(vec![1.0, 2.0, 3.0], vec![0.0, 1.0]))
            .is_none()); // 3 % 2
        assert!(d.apply(chunk(vec![], vec![])).is_none()); // empty
        assert!(d
            .apply(chunk(vec![1.0, 2.0, 3.0, 4.0], vec![0.0]))
            .is_none()); // 1 t, 2 rows
        assert!(d.apply(Sample::new().with("stream", 1.0)).is_none()); // not an array
        let no_stream = Sample::new().with("t(s)", 1.0).with("x", 2.0);
        assert_eq!(d.apply(no_stream.clone()), Some(no_stream));
        // Still works afterwards.
        let out = d
            .apply(chunk(vec![1.0, 2.0, 3.0, 4.0], vec![0.0, 1.0]))
            .unwrap();
        assert_eq!((out.get_f64("a"), out.get_f64("b")), (Some(1.0), Some(2.0)));
    }

    // ----- DownSampler, TrigOnChange, TrigOnValue -----

    #[test]
    fn down_sampler_passes_first_then_every_nth() {
        let mut d = DownSampler::new(4).unwrap();
        let passed: Vec<i64> = (0..10)
            .filter_map(|i| d.apply(Sample::new().with("i", i)))
            .map(|s| s.get_f64("i").unwrap() as i64)
            .collect();
        assert_eq!(passed, [0, 4, 8]);
    }

    #[test]
    fn trig_on_change_compares_numbers_by_value_and_drops_samples_without_label() {
        let mut t = TrigOnChange::new("x");
        let samples = [
            Sample::new().with("x", 1.0),
            Sample::new().with("x", 1.0),
            Sample::new().with("x", 1),
            Sample::new().with("x", 2.0),
            Sample::new().with("y", 5.0),
            Sample::new().with("x", 2.0),
            Sample::new().with("x", 1.0),
        ];
        let passed: Vec<bool> = samples.into_iter().map(|s| t.apply(s).is_some()).collect();
        assert_eq!(passed, [true, false, false, true, false, false, true]);
        // The first sample carrying the label passes even if earlier ones lacked it.
        let mut t = TrigOnChange::new("x");
        assert!(t.apply(Sample::new().with("y", 1.0)).is_none());
        assert!(t.apply(Sample::new().with("x", f64::NAN)).is_some());
        assert!(t.apply(Sample::new().with("x", f64::NAN)).is_none());
    }

    #[test]
    fn trig_on_value_passes_listed_values_only() {
        let mut t = TrigOnValue::new("state", ["go", "stop"]).unwrap();
        let passed: Vec<bool> = ["wait", "go", "go", "pause", "stop"]
            .iter()
            .map(|s| t.apply(Sample::new().with("state", *s)).is_some())
            .collect();
        assert_eq!(passed, [false, true, true, false, true]);
        assert!(t.apply(Sample::new().with("other", "go")).is_none());
        let mut t = TrigOnValue::new("n", [1.0, 3.0]).unwrap();
        assert!(t.apply(Sample::new().with("n", 3)).is_some());
        assert!(t.apply(Sample::new().with("n", 2)).is_none());
    }

    // ----- output_labels -----

    #[test]
    fn output_labels_refuse_labels_that_never_come() {
        let up = labels(&["t(s)", "x(mm)"]);
        let e = Diff::new("F(N)").output_labels(&up).unwrap_err();
        assert!(
            e.starts_with("label 'F(N)' is not sent by the upstream Block (it sends t(s), x(mm))"),
            "{e}"
        );
        assert!(Diff::new("x(mm)")
            .time_label("time")
            .output_labels(&up)
            .unwrap_err()
            .contains("'time'"));
        assert!(Integrate::new("F(N)").output_labels(&up).is_err());
        assert!(Offset::zero(["x(mm)", "F(N)"])
            .unwrap()
            .output_labels(&up)
            .unwrap_err()
            .contains("'F(N)'"));
        assert!(TrigOnChange::new("F(N)").output_labels(&up).is_err());
        assert!(TrigOnValue::new("F(N)", [1.0])
            .unwrap()
            .output_labels(&up)
            .is_err());
        assert!(Demux::new(["a"])
            .unwrap()
            .output_labels(&up)
            .unwrap_err()
            .contains("'stream'"));
        assert!(Diff::new("x(mm)")
            .out_label("t(s)")
            .output_labels(&up)
            .is_err());
        assert!(Diff::new("x(mm)")
            .output_labels(&[])
            .unwrap_err()
            .contains("it sends no label"));
    }

    #[test]
    fn output_labels_add_and_remove_what_the_modifier_does() {
        let up = labels(&["t(s)", "x(mm)"]);
        assert_eq!(
            Diff::new("x(mm)").output_labels(&up).unwrap(),
            labels(&["t(s)", "x(mm)", "d_x(mm)"])
        );
        assert_eq!(
            Integrate::new("x(mm)")
                .out_label("x(mm)")
                .output_labels(&up)
                .unwrap(),
            up,
        );
        assert_eq!(
            Integrate::new("x(mm)").output_labels(&up).unwrap(),
            labels(&["t(s)", "x(mm)", "i_x(mm)"])
        );
        for m in [
            Box::new(Mean::new(3).unwrap()) as Box<dyn Modifier>,
            Box::new(Median::new(3).unwrap()),
            Box::new(MovingAvg::new(3).unwrap()),
            Box::new(MovingMed::new(3).unwrap()),
            Box::new(DownSampler::new(3).unwrap()),
            Box::new(Offset::zero(["x(mm)"]).unwrap()),
            Box::new(TrigOnChange::new("x(mm)")),
        ] {
            assert_eq!(m.output_labels(&up).unwrap(), up, "{}", m.name());
        }
        let stream_up = labels(&["t(s)", "stream", "gain"]);
        let d = Demux::new(["a", "b"]).unwrap();
        assert_eq!(
            d.output_labels(&stream_up).unwrap(),
            labels(&["t(s)", "gain", "a", "b"])
        );
        let e = Demux::new(["t(s)"])
            .unwrap()
            .output_labels(&stream_up)
            .unwrap_err();
        assert!(e.contains("rename"), "{e}");
        let e = Demux::new(["a"])
            .unwrap()
            .time_label("stream")
            .output_labels(&stream_up);
        assert!(e.is_err());
    }

    #[test]
    fn labels_flow_through_a_chain_of_modifiers() {
        let chain: Vec<Box<dyn Modifier>> = vec![
            Box::new(Demux::new(["F(N)", "x(mm)"]).unwrap()),
            Box::new(Diff::new("x(mm)").out_label("v(mm/s)")),
            Box::new(Integrate::new("F(N)")),
        ];
        let got = crate::link::labels_through(&chain, Some(labels(&["t(s)", "stream"]))).unwrap();
        assert_eq!(
            got,
            Some(labels(&["t(s)", "F(N)", "x(mm)", "v(mm/s)", "i_F(N)"]))
        );
        // Diff before Demux: x(mm) does not exist yet.
        let wrong: Vec<Box<dyn Modifier>> = vec![
            Box::new(Diff::new("x(mm)")),
            Box::new(Demux::new(["F(N)", "x(mm)"]).unwrap()),
        ];
        let (name, e) =
            crate::link::labels_through(&wrong, Some(labels(&["t(s)", "stream"]))).unwrap_err();
        assert_eq!(name, "Diff");
        assert!(e.contains("'x(mm)'"), "{e}");
    }

    // ----- properties -----

    #[test]
    fn property_moving_filters_with_one_point_are_the_identity() {
        let mut rng = Rng::new(1);
        let mut avg = MovingAvg::new(1).unwrap();
        let mut med = MovingMed::new(1).unwrap();
        for _ in 0..1000 {
            let s = Sample::new()
                .with("t(s)", rng.f64(0.0, 1e3))
                .with("x", rng.f64(-1e6, 1e6));
            assert_eq!(avg.apply(s.clone()).as_ref(), Some(&s));
            assert_eq!(med.apply(s.clone()).as_ref(), Some(&s));
        }
    }

    #[test]
    fn property_mean_over_k_windows_emits_k_samples_with_the_overall_mean() {
        let mut rng = Rng::new(2);
        for _ in 0..50 {
            let (n, k) = (rng.usize(1, 20), rng.usize(1, 20));
            let mut m = Mean::new(n).unwrap();
            let xs: Vec<f64> = (0..n * k).map(|_| rng.f64(-100.0, 100.0)).collect();
            let out: Vec<f64> = xs
                .iter()
                .filter_map(|x| m.apply(Sample::new().with("x", *x)))
                .map(|s| s.get_f64("x").unwrap())
                .collect();
            assert_eq!(out.len(), k, "n = {n}");
            assert!(
                close(mean(&out), mean(&xs)),
                "{} vs {}",
                mean(&out),
                mean(&xs)
            );
        }
    }

    #[test]
    fn property_median_matches_a_full_sort() {
        let mut rng = Rng::new(3);
        for _ in 0..200 {
            let n = rng.usize(1, 30);
            let xs: Vec<f64> = (0..n).map(|_| rng.f64(-10.0, 10.0).round()).collect();
            let mut sorted = xs.clone();
            sorted.sort_by(f64::total_cmp);
            let expected = if n % 2 == 1 {
                sorted[n / 2]
            } else {
                (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
            };
            let mut m = Median::new(n).unwrap();
            let out: Vec<Sample> = xs
                .iter()
                .filter_map(|x| m.apply(Sample::new().with("x", *x)))
                .collect();
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].get_f64("x"), Some(expected), "{xs:?}");
        }
    }

    #[test]
    fn property_integrate_of_diff_recovers_a_linear_signal() {
        let mut rng = Rng::new(4);
        for _ in 0..50 {
            let (a, b) = (rng.f64(-10.0, 10.0), rng.f64(-5.0, 5.0));
            let mut diff = Diff::new("x");
            let mut int = Integrate::new("d_x");
            let mut t = rng.f64(0.0, 10.0);
            let mut first: Option<(f64, f64)> = None; // (x, i) at the second sample
            for k in 0..100 {
                let x = a + b * t;
                let s = int.apply(diff.apply(tx(t, x)).unwrap()).unwrap();
                let i = s.get_f64("i_d_x").unwrap();
                // The derivative is exact from the second sample on, so from then the
                // integral follows the signal up to a constant.
                if k == 1 {
                    first = Some((x, i));
                }
                if let Some((x1, i1)) = first {
                    assert!((i - i1 - (x - x1)).abs() < 1e-6, "k = {k}: {i} vs {x}");
                }
                t += rng.f64(0.001, 1.0);
            }
        }
    }

    #[test]
    fn property_down_sampler_passes_ceil_m_over_n() {
        let mut rng = Rng::new(5);
        for _ in 0..200 {
            let (n, m) = (rng.usize(1, 20), rng.usize(0, 200));
            let mut d = DownSampler::new(n).unwrap();
            let passed = (0..m)
                .filter(|i| d.apply(Sample::new().with("i", *i)).is_some())
                .count();
            assert_eq!(passed, m.div_ceil(n), "n = {n}, m = {m}");
        }
    }

    #[test]
    fn property_offset_shifts_by_a_constant() {
        let mut rng = Rng::new(6);
        let target = rng.f64(-5.0, 5.0);
        let mut o = Offset::new(["x"], [target]).unwrap();
        let x0 = rng.f64(-100.0, 100.0);
        assert!(close(
            o.apply(Sample::new().with("x", x0))
                .unwrap()
                .get_f64("x")
                .unwrap(),
            target
        ));
        for _ in 0..500 {
            let x = rng.f64(-100.0, 100.0);
            let y = o
                .apply(Sample::new().with("x", x))
                .unwrap()
                .get_f64("x")
                .unwrap();
            assert!(close(y - x, target - x0));
        }
    }

    #[test]
    fn property_demux_mean_equals_mean_modifier_over_the_rows() {
        // Demux with mean over R rows equals Mean(R) over the same rows sent one by one.
        let mut rng = Rng::new(7);
        for _ in 0..50 {
            let (c, r) = (rng.usize(1, 5), rng.usize(1, 10));
            let names: Vec<String> = (0..c).map(|i| format!("ch{i}")).collect();
            let data: Vec<f64> = (0..r * c).map(|_| rng.f64(-1.0, 1.0)).collect();
            let ts: Vec<f64> = (0..r).map(|i| i as f64 * 0.1).collect();
            let mut demux = Demux::new(names.iter().map(String::as_str))
                .unwrap()
                .mean(true);
            let out = demux
                .apply(
                    Sample::new()
                        .with("t(s)", ts.clone())
                        .with("stream", data.clone()),
                )
                .unwrap();
            let mut m = Mean::new(r).unwrap();
            let mut reference = None;
            for (row, t) in ts.iter().enumerate() {
                let mut s = Sample::new().with("t(s)", *t);
                for (ch, name) in names.iter().enumerate() {
                    s.insert(name.as_str(), data[row * c + ch]);
                }
                reference = m.apply(s);
            }
            let reference = reference.unwrap();
            for name in names.iter().map(String::as_str).chain(["t(s)"]) {
                assert!(
                    close(out.get_f64(name).unwrap(), reference.get_f64(name).unwrap()),
                    "{name}"
                );
            }
        }
    }
}
