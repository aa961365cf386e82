//! [`Multiplexer`] and [`Synchronizer`]: merge labels sent by several Blocks at different
//! rates into one stream on a common time base.
//!
//! **Multiplexer** (Crappy's algorithm, exactly): every numeric label is buffered as
//! `(t, value)` pairs, a label arriving from several links merged in time order. Each loop,
//! once every label has at least two points spanning at least one period, the labels are
//! resampled by linear interpolation onto the grid of multiples of `1/interp_freq` lying in
//! the **intersection** of the labels' time ranges, after the last grid time already sent.
//! One sample is sent per grid time. Text, booleans and arrays are carried (the last value
//! at or before the grid time), never interpolated. The output lags the slowest input; no
//! grid time is sent twice or skipped across loops, and a linear signal comes out exact.
//!
//! **Synchronizer**: the output times are the timestamps of a reference label (for example
//! an image index from a camera), inside the intersection of the other labels' ranges; the
//! reference values are passed through unchanged, the other labels interpolated.
//!
//! ```
//! use crabby_blocks::{Multiplexer, Synchronizer};
//! // force at 1 kHz and strain at 30 Hz, resampled at 100 Hz
//! let mux = Multiplexer::new(100.0).labels(["F(N)", "Exx(%)"]);
//! // the strain and force at each image's time
//! let sync = Synchronizer::new("img_index").labels(["F(N)", "Exx(%)"]);
//! ```

use crabby::{Block, Context, Error, Flow, GraphView, Label, Result, Sample, Settings, Value};
use std::collections::HashMap;
use std::time::Duration;

/// How long `finish` waits for the senders' last samples.
const DRAIN: Duration = Duration::from_secs(1);

/// One label's buffered points, sorted by time.
#[derive(Debug, Default, Clone)]
struct Series {
    t: Vec<f64>,
    v: Vec<f64>,
}

impl Series {
    /// Adds points; keeps the buffer sorted (stable: equal times keep arrival order).
    fn extend(&mut self, pts: &[(f64, f64)]) {
        let sorted = self.t.last().is_none_or(|&last| {
            pts.first().is_none_or(|p| p.0 >= last) && pts.windows(2).all(|w| w[0].0 <= w[1].0)
        });
        if sorted {
            for &(t, v) in pts {
                self.t.push(t);
                self.v.push(v);
            }
        } else {
            let mut all: Vec<(f64, f64)> =
                self.t.iter().copied().zip(self.v.iter().copied()).collect();
            all.extend_from_slice(pts);
            all.sort_by(|a, b| a.0.total_cmp(&b.0));
            self.t = all.iter().map(|p| p.0).collect();
            self.v = all.iter().map(|p| p.1).collect();
        }
    }

    /// Linear interpolation at increasing times `ts` (clamped at the ends, as `np.interp`).
    fn interp_into(&self, ts: &[f64], out: &mut Vec<f64>) {
        out.clear();
        let n = self.t.len();
        let mut j = 0;
        for &x in ts {
            if x <= self.t[0] {
                out.push(self.v[0]);
                continue;
            }
            if x >= self.t[n - 1] {
                out.push(self.v[n - 1]);
                continue;
            }
            while self.t[j + 1] < x {
                j += 1;
            }
            let (t0, t1) = (self.t[j], self.t[j + 1]);
            if t1 == x {
                out.push(self.v[j + 1]);
            } else {
                out.push(self.v[j] + (self.v[j + 1] - self.v[j]) * (x - t0) / (t1 - t0));
            }
        }
    }

    /// Keeps the last point at or before `t` and every point after.
    fn trim(&mut self, t: f64) {
        let k = self.t.partition_point(|&x| x <= t);
        if k > 1 {
            self.t.drain(..k - 1);
            self.v.drain(..k - 1);
        }
    }
}

/// A carried (never interpolated) label: `(t, value)` in time order.
#[derive(Debug, Default, Clone)]
struct Carried {
    pts: Vec<(f64, Value)>,
}

impl Carried {
    /// The last value at or before `t`.
    fn at(&self, t: f64) -> Option<&Value> {
        let k = self.pts.partition_point(|p| p.0 <= t);
        (k > 0).then(|| &self.pts[k - 1].1)
    }
    fn trim(&mut self, t: f64) {
        let k = self.pts.partition_point(|p| p.0 <= t);
        if k > 1 {
            self.pts.drain(..k - 1);
        }
    }
}

/// Buffers of every label, shared by both Blocks.
#[derive(Debug, Default, Clone)]
struct Buffers {
    order: Vec<Label>,
    numeric: HashMap<Label, Series>,
    carried: HashMap<Label, Carried>,
}

impl Buffers {
    /// Buffers one link's samples (only those carrying `time`, as Crappy).
    fn add(&mut self, time: &str, wanted: Option<&[Label]>, samples: &[Sample]) {
        let mut pts: HashMap<Label, Vec<(f64, f64)>> = HashMap::new();
        for s in samples {
            let Some(t) = s.get_f64(time) else { continue };
            for (l, v) in s.iter() {
                if l.as_str() == time || wanted.is_some_and(|w| !w.contains(l)) {
                    continue;
                }
                if !self.numeric.contains_key(l) && !self.carried.contains_key(l) {
                    self.order.push(l.clone());
                }
                match v {
                    Value::Float(_) | Value::Int(_) => {
                        pts.entry(l.clone())
                            .or_default()
                            .push((t, v.as_f64().unwrap_or(0.0)));
                        self.numeric.entry(l.clone()).or_default();
                    }
                    other => {
                        let c = self.carried.entry(l.clone()).or_default();
                        let k = c.pts.partition_point(|p| p.0 <= t);
                        c.pts.insert(k, (t, other.clone()));
                    }
                }
            }
        }
        for (l, p) in pts {
            self.numeric.get_mut(&l).expect("created above").extend(&p);
        }
    }
}

/// The Multiplexer's algorithm, without a `Context`. See the [module docs](self).
///
/// ```
/// use crabby::Sample;
/// use crabby_blocks::MultiplexerCore;
/// let mut m = MultiplexerCore::new(10.0, "t(s)", None);
/// m.push(&[Sample::new().with("t(s)", 0.0).with("a", 0.0), Sample::new().with("t(s)", 1.0).with("a", 10.0)]);
/// m.push(&[Sample::new().with("t(s)", 0.05).with("b", 1.0), Sample::new().with("t(s)", 0.55).with("b", 2.0)]);
/// let out = m.resample();
/// assert_eq!(out.len(), 5); // t = 0.1, 0.2, 0.3, 0.4, 0.5
/// assert!((out[0].get_f64("a").unwrap() - 1.0).abs() < 1e-9);
/// ```
#[derive(Debug, Clone)]
pub struct MultiplexerCore {
    period: f64,
    time: Label,
    wanted: Option<Vec<Label>>,
    buf: Buffers,
    last_max_t: f64,
    scratch: Vec<f64>,
}

impl MultiplexerCore {
    /// Resamples at `interp_freq` (Hz); `labels`: the labels to output (default: all seen).
    pub fn new(interp_freq: f64, time: impl Into<Label>, labels: Option<Vec<Label>>) -> Self {
        MultiplexerCore {
            period: 1.0 / interp_freq,
            time: time.into(),
            wanted: labels,
            buf: Buffers::default(),
            last_max_t: f64::NEG_INFINITY,
            scratch: Vec::new(),
        }
    }

    /// Buffers the samples received on one link.
    pub fn push(&mut self, samples: &[Sample]) {
        self.buf.add(&self.time, self.wanted.as_deref(), samples);
    }

    /// The samples on the grid that every label now covers (empty if none).
    pub fn resample(&mut self) -> Vec<Sample> {
        let period = self.period;
        let delta = period / 20.0;
        let eps = period * 1e-12;
        if self.buf.numeric.is_empty() && self.buf.carried.is_empty() {
            return Vec::new();
        }
        if let Some(w) = &self.wanted {
            if w.iter()
                .any(|l| !self.buf.numeric.contains_key(l) && !self.buf.carried.contains_key(l))
            {
                return Vec::new();
            }
        }
        let mut min_t = f64::NEG_INFINITY;
        let mut max_t = f64::INFINITY;
        for s in self.buf.numeric.values() {
            if s.t.len() < 2 || s.t[s.t.len() - 1] - s.t[0] < period {
                return Vec::new();
            }
            min_t = min_t.max(s.t[0]);
            max_t = max_t.min(s.t[s.t.len() - 1]);
        }
        if self.buf.numeric.is_empty() {
            // Only carried labels: their own times bound the grid.
            for c in self.buf.carried.values() {
                let (Some(a), Some(b)) = (c.pts.first(), c.pts.last()) else {
                    return Vec::new();
                };
                min_t = min_t.max(a.0);
                max_t = max_t.min(b.0);
            }
        }
        min_t = min_t.max(self.last_max_t + delta);
        let k0 = ((min_t - eps) / period).ceil();
        let k1 = ((max_t + eps) / period).floor();
        if k1 < k0 {
            return Vec::new();
        }
        let max_t = k1 * period;
        let times: Vec<f64> = (0..=(k1 - k0) as i64)
            .map(|i| (k0 + i as f64) * period)
            .collect();
        let mut out: Vec<Sample> = times
            .iter()
            .map(|&t| {
                let mut s = Sample::with_capacity(self.buf.order.len() + 1);
                s.insert(self.time.clone(), t);
                s
            })
            .collect();
        let labels: Vec<Label> = match &self.wanted {
            Some(w) => w.clone(),
            None => self.buf.order.clone(),
        };
        for l in &labels {
            if let Some(s) = self.buf.numeric.get(l) {
                s.interp_into(&times, &mut self.scratch);
                for (o, &v) in out.iter_mut().zip(&self.scratch) {
                    o.insert(l.clone(), v);
                }
            } else if let Some(c) = self.buf.carried.get(l) {
                for (o, &t) in out.iter_mut().zip(&times) {
                    if let Some(v) = c.at(t) {
                        o.insert(l.clone(), v.clone());
                    }
                }
            }
        }
        for s in self.buf.numeric.values_mut() {
            s.trim(max_t);
        }
        for c in self.buf.carried.values_mut() {
            c.trim(max_t);
        }
        self.last_max_t = max_t;
        out
    }
}

/// Resamples labels from several links onto a common time grid. See the [module docs](self).
#[derive(Debug)]
pub struct Multiplexer {
    freq: f64,
    time: Label,
    labels: Option<Vec<Label>>,
    core: Option<MultiplexerCore>,
}

impl Multiplexer {
    /// Resamples at `interp_freq` Hz (the grid: multiples of its period).
    pub fn new(interp_freq: f64) -> Self {
        Multiplexer {
            freq: interp_freq,
            time: Label::new("t(s)"),
            labels: None,
            core: None,
        }
    }
    /// Outputs only these labels, and waits for each of them (default: every label seen).
    pub fn labels<L: Into<Label>>(mut self, labels: impl IntoIterator<Item = L>) -> Self {
        self.labels = Some(labels.into_iter().map(Into::into).collect());
        self
    }
    /// The time label of the inputs and the output (default `t(s)`).
    pub fn time_label(mut self, l: impl Into<Label>) -> Self {
        self.time = l.into();
        self
    }
}

fn check_merge(graph: &GraphView<'_>, time: &Label, labels: &Option<Vec<Label>>) -> Result<()> {
    if graph.inputs().is_empty() {
        return Err(
            Error::config("it has no input link; link the Blocks whose labels it merges")
                .with_origin(graph.name()),
        );
    }
    graph.require_label(time, "the time label")?;
    if let Some(ls) = labels {
        if ls.is_empty() {
            return Err(Error::config(
                "parameter 'labels' is empty; give at least one label or leave it unset",
            )
            .with_origin(graph.name()));
        }
        for l in ls {
            if l == time {
                return Err(Error::config(format!(
                    "parameter 'labels' contains the time label '{time}'; it is always sent"
                ))
                .with_origin(graph.name()));
            }
            graph.require_label(l, "parameter 'labels'")?;
        }
    }
    Ok(())
}

impl Block for Multiplexer {
    fn default_settings(&self) -> Settings {
        Settings::new().freq(50.0)
    }
    fn output_labels(&self) -> Option<Vec<Label>> {
        let mut v = vec![self.time.clone()];
        v.extend(self.labels.clone()?);
        Some(v)
    }
    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        if !(self.freq.is_finite() && self.freq > 0.0) {
            return Err(Error::config(format!(
                "parameter 'interp_freq' is {}; give a frequency above 0 Hz",
                self.freq
            ))
            .with_origin(graph.name()));
        }
        check_merge(graph, &self.time, &self.labels)
    }
    fn describe(&self) -> String {
        format!("interp_freq {} Hz, labels {:?}", self.freq, self.labels)
    }
    fn prepare(&mut self, _ctx: &mut Context) -> Result<()> {
        self.core = Some(MultiplexerCore::new(
            self.freq,
            self.time.clone(),
            self.labels.clone(),
        ));
        Ok(())
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let core = self.core.as_mut().expect("prepared");
        for link in ctx.recv_all_per_link() {
            core.push(&link);
        }
        for s in core.resample() {
            ctx.send(&s)?;
        }
        Ok(Flow::Continue)
    }
    /// What the senders sent until they finished is merged and sent too.
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        let Some(core) = self.core.as_mut() else {
            return Ok(());
        };
        for link in ctx.drain_until_ended(DRAIN) {
            core.push(&link);
        }
        for s in core.resample() {
            ctx.send(&s)?;
        }
        Ok(())
    }
}

/// The Synchronizer's algorithm, without a `Context`. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct SynchronizerCore {
    reference: Label,
    time: Label,
    wanted: Option<Vec<Label>>,
    refs: Vec<(f64, Value)>,
    buf: Buffers,
    dropped: u64,
}

impl SynchronizerCore {
    /// Outputs at the times of `reference`.
    pub fn new(
        reference: impl Into<Label>,
        time: impl Into<Label>,
        labels: Option<Vec<Label>>,
    ) -> Self {
        SynchronizerCore {
            reference: reference.into(),
            time: time.into(),
            wanted: labels,
            refs: Vec::new(),
            buf: Buffers::default(),
            dropped: 0,
        }
    }

    /// Buffers the samples received on one link.
    pub fn push(&mut self, samples: &[Sample]) {
        let mut others = Vec::with_capacity(samples.len());
        for s in samples {
            let Some(t) = s.get_f64(&self.time) else {
                continue;
            };
            if let Some(v) = s.get(&self.reference) {
                let k = self.refs.partition_point(|p| p.0 <= t);
                self.refs.insert(k, (t, v.clone()));
            }
            let mut rest = s.clone();
            rest.remove(&self.reference);
            if rest.len() > 1 {
                others.push(rest);
            }
        }
        self.buf.add(&self.time, self.wanted.as_deref(), &others);
    }

    /// Reference points that came before every other label started (never sendable).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// One sample per reference point now inside every label's range.
    pub fn resample(&mut self) -> Vec<Sample> {
        if self.refs.is_empty() || self.buf.numeric.is_empty() {
            return Vec::new();
        }
        if let Some(w) = &self.wanted {
            if w.iter()
                .any(|l| !self.buf.numeric.contains_key(l) && !self.buf.carried.contains_key(l))
            {
                return Vec::new();
            }
        }
        let mut min_t = f64::NEG_INFINITY;
        let mut max_t = f64::INFINITY;
        for s in self.buf.numeric.values() {
            min_t = min_t.max(s.t[0]);
            max_t = max_t.min(s.t[s.t.len() - 1]);
        }
        let before = self.refs.partition_point(|p| p.0 < min_t);
        if before > 0 {
            self.dropped += before as u64;
            self.refs.drain(..before);
        }
        let n = self.refs.partition_point(|p| p.0 <= max_t);
        if n == 0 {
            return Vec::new();
        }
        let used: Vec<(f64, Value)> = self.refs.drain(..n).collect();
        let times: Vec<f64> = used.iter().map(|p| p.0).collect();
        let mut out: Vec<Sample> = used
            .into_iter()
            .map(|(t, v)| {
                let mut s = Sample::new();
                s.insert(self.time.clone(), t);
                s.insert(self.reference.clone(), v);
                s
            })
            .collect();
        let labels: Vec<Label> = match &self.wanted {
            Some(w) => w.clone(),
            None => self.buf.order.clone(),
        };
        let mut vals = Vec::new();
        for l in &labels {
            if let Some(s) = self.buf.numeric.get(l) {
                s.interp_into(&times, &mut vals);
                for (o, &v) in out.iter_mut().zip(&vals) {
                    o.insert(l.clone(), v);
                }
            } else if let Some(c) = self.buf.carried.get(l) {
                for (o, &t) in out.iter_mut().zip(&times) {
                    if let Some(v) = c.at(t) {
                        o.insert(l.clone(), v.clone());
                    }
                }
            }
        }
        let last = *times.last().expect("n > 0");
        for s in self.buf.numeric.values_mut() {
            s.trim(last);
        }
        for c in self.buf.carried.values_mut() {
            c.trim(last);
        }
        out
    }
}

/// Sends the other labels interpolated at a reference label's timestamps. See the
/// [module docs](self).
#[derive(Debug)]
pub struct Synchronizer {
    reference: Label,
    time: Label,
    labels: Option<Vec<Label>>,
    core: Option<SynchronizerCore>,
}

impl Synchronizer {
    /// Outputs at the timestamps of `reference`, its values passed through.
    pub fn new(reference: impl Into<Label>) -> Self {
        Synchronizer {
            reference: reference.into(),
            time: Label::new("t(s)"),
            labels: None,
            core: None,
        }
    }
    /// The labels interpolated (default: every other label seen).
    pub fn labels<L: Into<Label>>(mut self, labels: impl IntoIterator<Item = L>) -> Self {
        self.labels = Some(labels.into_iter().map(Into::into).collect());
        self
    }
    /// The time label (default `t(s)`).
    pub fn time_label(mut self, l: impl Into<Label>) -> Self {
        self.time = l.into();
        self
    }
}

impl Block for Synchronizer {
    fn default_settings(&self) -> Settings {
        Settings::new().freq(50.0)
    }
    fn output_labels(&self) -> Option<Vec<Label>> {
        let mut v = vec![self.time.clone(), self.reference.clone()];
        v.extend(self.labels.clone()?);
        Some(v)
    }
    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        if self.reference == self.time {
            return Err(Error::config("the reference label is the time label; give the label whose timestamps set the output (e.g. an image index)")
                .with_origin(graph.name()));
        }
        graph.require_label(&self.reference, "the reference label")?;
        check_merge(graph, &self.time, &self.labels)
    }
    fn describe(&self) -> String {
        format!("reference {}, labels {:?}", self.reference, self.labels)
    }
    fn prepare(&mut self, _ctx: &mut Context) -> Result<()> {
        self.core = Some(SynchronizerCore::new(
            self.reference.clone(),
            self.time.clone(),
            self.labels.clone(),
        ));
        Ok(())
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let core = self.core.as_mut().expect("prepared");
        for link in ctx.recv_all_per_link() {
            core.push(&link);
        }
        for s in core.resample() {
            ctx.send(&s)?;
        }
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        if let Some(core) = self.core.as_mut() {
            for link in ctx.drain_until_ended(DRAIN) {
                core.push(&link);
            }
            for s in core.resample() {
                ctx.send(&s)?;
            }
        }
        if let Some(c) = &self.core {
            if c.dropped() > 0 {
                log::info!(
                    "{} reference points came before every other label had started and were not sent",
                    c.dropped()
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(label: &str, ts: impl IntoIterator<Item = f64>, f: impl Fn(f64) -> f64) -> Vec<Sample> {
        ts.into_iter()
            .map(|t| Sample::new().with("t(s)", t).with(label, f(t)))
            .collect()
    }

    #[test]
    fn exact_on_linear_signals_over_the_intersection() {
        let mut m = MultiplexerCore::new(100.0, "t(s)", None);
        // a at 1 kHz on [0, 1], b at 30 Hz on [0.013, 1.2]
        m.push(&pts("a", (0..=1000).map(|i| i as f64 * 1e-3), |t| {
            3.0 * t + 1.0
        }));
        m.push(&pts("b", (0..=36).map(|i| 0.013 + i as f64 / 30.0), |t| {
            -2.0 * t
        }));
        let out = m.resample();
        let ts: Vec<f64> = out.iter().map(|s| s.get_f64("t(s)").unwrap()).collect();
        assert!(
            (ts[0] - 0.02).abs() < 1e-12 && (ts.last().unwrap() - 1.0).abs() < 1e-12,
            "{ts:?}"
        );
        assert_eq!(out.len(), 99);
        for s in &out {
            let t = s.get_f64("t(s)").unwrap();
            assert!((s.get_f64("a").unwrap() - (3.0 * t + 1.0)).abs() < 1e-9);
            assert!((s.get_f64("b").unwrap() + 2.0 * t).abs() < 1e-9);
        }
    }

    #[test]
    fn no_grid_time_lost_or_duplicated_across_calls_and_links_merged_in_order() {
        let mut m = MultiplexerCore::new(50.0, "t(s)", Some(vec!["a".into(), "b".into()]));
        let mut all = Vec::new();
        // `a` from two links (even and odd ms), delivered in chunks out of step with `b`.
        for chunk in 0..20 {
            let base = chunk as f64 * 0.1;
            m.push(&pts(
                "a",
                (0..50).map(|i| base + 2.0 * i as f64 * 1e-3),
                |t| t,
            ));
            m.push(&pts(
                "a",
                (0..50).map(|i| base + (2 * i + 1) as f64 * 1e-3),
                |t| t,
            ));
            m.push(&pts("b", (0..3).map(|i| base + i as f64 * 0.033), |t| {
                5.0 * t
            }));
            all.extend(m.resample());
        }
        let ts: Vec<f64> = all.iter().map(|s| s.get_f64("t(s)").unwrap()).collect();
        for w in ts.windows(2) {
            assert!((w[1] - w[0] - 0.02).abs() < 1e-9, "gap or duplicate: {w:?}");
        }
        assert!(ts.len() > 90, "{}", ts.len());
        for s in &all {
            let t = s.get_f64("t(s)").unwrap();
            assert!((s.get_f64("a").unwrap() - t).abs() < 1e-9);
            assert!((s.get_f64("b").unwrap() - 5.0 * t).abs() < 1e-9);
        }
    }

    #[test]
    fn waits_for_every_wanted_label_and_carries_text() {
        let mut m = MultiplexerCore::new(10.0, "t(s)", Some(vec!["a".into(), "state".into()]));
        m.push(&pts("a", [0.0, 0.5, 1.0], |t| t));
        assert!(m.resample().is_empty(), "'state' never seen");
        m.push(&[
            Sample::new().with("t(s)", 0.0).with("state", "load"),
            Sample::new().with("t(s)", 0.45).with("state", "hold"),
        ]);
        let out = m.resample();
        assert_eq!(out.len(), 11);
        assert_eq!(out[4].get("state").unwrap().as_text(), Some("load"));
        assert_eq!(out[5].get("state").unwrap().as_text(), Some("hold"));
        assert_eq!(out[10].get("state").unwrap().as_text(), Some("hold"));
    }

    #[test]
    fn synchronizer_passes_the_reference_and_interpolates_the_rest() {
        let mut s = SynchronizerCore::new("img", "t(s)", None);
        s.push(&pts("F(N)", (0..=100).map(|i| i as f64 * 0.01), |t| {
            10.0 * t
        }));
        s.push(&[
            Sample::new().with("t(s)", -0.1).with("img", 0i64),
            Sample::new().with("t(s)", 0.333).with("img", 1i64),
            Sample::new().with("t(s)", 0.9).with("img", 2i64),
            Sample::new().with("t(s)", 1.5).with("img", 3i64),
        ]);
        let out = s.resample();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].get("img"), Some(&Value::Int(1)));
        assert!((out[0].get_f64("F(N)").unwrap() - 3.33).abs() < 1e-9);
        assert!((out[1].get_f64("F(N)").unwrap() - 9.0).abs() < 1e-9);
        assert_eq!(s.dropped(), 1);
        // the last image waits for force data up to its time
        s.push(&pts("F(N)", (101..=160).map(|i| i as f64 * 0.01), |t| {
            10.0 * t
        }));
        let out = s.resample();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].get("img"), Some(&Value::Int(3)));
        assert!((out[0].get_f64("F(N)").unwrap() - 15.0).abs() < 1e-9);
    }
}
