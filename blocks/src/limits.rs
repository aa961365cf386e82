//! [`Limits`]: safety limits on any label (Tango's attribute alarms).
//!
//! Each [`Limit`] watches one label with warning and alarm thresholds (min and/or max):
//! - a value must stay beyond a threshold for the limit's **persistence** time (0 by
//!   default: at once) before the level rises; it goes back down as soon as the value is
//!   back inside the threshold by the **hysteresis** (so a noisy value at the threshold
//!   does not flicker);
//! - entering **warning** logs a warning;
//! - entering **alarm** logs an error, records the alarm for the report (limit, value and
//!   time), and triggers the limit's action: [`LimitAction::Stop`] (default) stops the test
//!   gracefully (every Block's `finish` runs, motors are stopped), [`LimitAction::Pause`]
//!   pauses the test until the value is back inside (see [`Pause`](crate::Pause)).
//!
//! Times are the samples' `t(s)` when they carry it, else the arrival time. The Block is
//! not pausable (it keeps watching during a pause), and its labels and thresholds are
//! checked before anything is forked. Linked to a display or recorder, it sends each level
//! change as it happens: `t(s)`, `limit` (the name), `level` (`normal`, `warning`, `alarm`)
//! and `value`.
//!
//! ```
//! use crabby_blocks::{Limit, LimitAction, Limits};
//! let limits = Limits::new([
//!     Limit::new("T(C)").warn_max(480.0).alarm_max(500.0).hysteresis(2.0),
//!     Limit::new("F(N)").alarm_max(45_000.0).alarm_min(-1_000.0).persistence(0.05),
//!     Limit::new("door").alarm_max(0.5).action(LimitAction::Pause).name("door open"),
//! ]);
//! ```

use crabby::{Block, Context, Error, Flow, GraphView, Label, Result, Settings};

/// What an alarm does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LimitAction {
    /// Stop the test gracefully (the default).
    #[default]
    Stop,
    /// Pause the test until the value is back inside the alarm thresholds.
    Pause,
}

/// A limit's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Inside every threshold.
    Normal,
    /// Beyond a warning threshold.
    Warning,
    /// Beyond an alarm threshold.
    Alarm,
}

/// One limit on one label. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Limit {
    name: Option<String>,
    label: Label,
    warn: (Option<f64>, Option<f64>),
    alarm: (Option<f64>, Option<f64>),
    hysteresis: f64,
    persistence: f64,
    action: LimitAction,
    // State.
    level: Level,
    pending: Option<(Level, f64)>,
}

/// A level change reported by [`Limit::update`].
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The new level.
    pub level: Level,
    /// The value that caused it.
    pub value: f64,
    /// When (s).
    pub t: f64,
    /// What it means, e.g. `T(C) = 512.3 above alarm max 500`.
    pub text: String,
}

impl Limit {
    /// A limit on `label`, with no threshold yet.
    pub fn new(label: impl Into<Label>) -> Self {
        Limit {
            name: None,
            label: label.into(),
            warn: (None, None),
            alarm: (None, None),
            hysteresis: 0.0,
            persistence: 0.0,
            action: LimitAction::Stop,
            level: Level::Normal,
            pending: None,
        }
    }
    /// The limit's name in logs and the report (default `<label> limits`).
    pub fn name(mut self, n: impl Into<String>) -> Self {
        self.name = Some(n.into());
        self
    }
    /// Warning below this.
    pub fn warn_min(mut self, v: f64) -> Self {
        self.warn.0 = Some(v);
        self
    }
    /// Warning above this.
    pub fn warn_max(mut self, v: f64) -> Self {
        self.warn.1 = Some(v);
        self
    }
    /// Alarm below this.
    pub fn alarm_min(mut self, v: f64) -> Self {
        self.alarm.0 = Some(v);
        self
    }
    /// Alarm above this.
    pub fn alarm_max(mut self, v: f64) -> Self {
        self.alarm.1 = Some(v);
        self
    }
    /// How far back inside a threshold the value must come to clear it (default 0).
    pub fn hysteresis(mut self, h: f64) -> Self {
        self.hysteresis = h;
        self
    }
    /// How long (s) a value must stay beyond a threshold to raise the level (default 0).
    pub fn persistence(mut self, s: f64) -> Self {
        self.persistence = s;
        self
    }
    /// What an alarm does (default [`LimitAction::Stop`]).
    pub fn action(mut self, a: LimitAction) -> Self {
        self.action = a;
        self
    }
    /// The limit's name.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{} limits", self.label))
    }
    /// The current level.
    pub fn level(&self) -> Level {
        self.level
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let n = self.display_name();
        let all = [self.warn.0, self.warn.1, self.alarm.0, self.alarm.1];
        if all.iter().all(Option::is_none) {
            return Err(format!(
                "limit '{n}' has no threshold; give warn_min/warn_max/alarm_min/alarm_max"
            ));
        }
        if all.iter().flatten().any(|v| !v.is_finite()) {
            return Err(format!(
                "limit '{n}' has a threshold that is not a finite number"
            ));
        }
        for (what, (lo, hi)) in [("warn", self.warn), ("alarm", self.alarm)] {
            if let (Some(lo), Some(hi)) = (lo, hi) {
                if lo >= hi {
                    return Err(format!(
                        "limit '{n}': {what}_min {lo} is not below {what}_max {hi}"
                    ));
                }
            }
        }
        if let (Some(w), Some(a)) = (self.warn.1, self.alarm.1) {
            if w > a {
                return Err(format!("limit '{n}': warn_max {w} is above alarm_max {a}; a warning comes before the alarm"));
            }
        }
        if let (Some(w), Some(a)) = (self.warn.0, self.alarm.0) {
            if w < a {
                return Err(format!("limit '{n}': warn_min {w} is below alarm_min {a}; a warning comes before the alarm"));
            }
        }
        if !(self.hysteresis.is_finite() && self.hysteresis >= 0.0) {
            return Err(format!(
                "limit '{n}': hysteresis {} must be 0 or more",
                self.hysteresis
            ));
        }
        if !(self.persistence.is_finite() && self.persistence >= 0.0) {
            return Err(format!(
                "limit '{n}': persistence {} s must be 0 or more",
                self.persistence
            ));
        }
        Ok(())
    }

    /// Whether `v` is beyond the `(min, max)` thresholds, with the hysteresis applied when
    /// `clearing` (the level is already at or above this one).
    fn beyond(
        &self,
        (lo, hi): (Option<f64>, Option<f64>),
        v: f64,
        clearing: bool,
    ) -> Option<String> {
        let h = if clearing { self.hysteresis } else { 0.0 };
        if let Some(hi) = hi {
            if v > hi - h {
                return Some(format!("above {hi}"));
            }
        }
        if let Some(lo) = lo {
            if v < lo + h {
                return Some(format!("below {lo}"));
            }
        }
        None
    }

    /// Feeds one value at time `t`; returns the level change it causes, if any.
    pub fn update(&mut self, t: f64, v: f64) -> Option<Transition> {
        let alarm = self.beyond(self.alarm, v, self.level == Level::Alarm);
        let warn = self.beyond(self.warn, v, self.level >= Level::Warning);
        let (raw, why) = match (&alarm, &warn) {
            (Some(w), _) => (Level::Alarm, format!("alarm: {w}")),
            (None, Some(w)) => (Level::Warning, format!("warning: {w}")),
            _ => (Level::Normal, "back to normal".to_owned()),
        };
        let new = if raw > self.level {
            // Rising: only after the persistence time beyond the threshold.
            let since = match self.pending {
                Some((l, since)) if l <= raw => since,
                _ => t,
            };
            self.pending = Some((raw, since));
            if t - since >= self.persistence {
                self.pending = None;
                raw
            } else {
                return None;
            }
        } else {
            self.pending = None;
            raw
        };
        if new == self.level {
            return None;
        }
        self.level = new;
        Some(Transition {
            level: new,
            value: v,
            t,
            text: format!(
                "limit '{}' {why}: {} = {v} at t = {t:.3} s",
                self.display_name(),
                self.label
            ),
        })
    }
}

/// Watches [`Limit`]s; an alarm stops or pauses the test. See the [module docs](self).
#[derive(Debug)]
pub struct Limits {
    limits: Vec<Limit>,
    time: Label,
    pausing: bool,
}

impl Limits {
    /// Watches these limits.
    pub fn new(limits: impl IntoIterator<Item = Limit>) -> Self {
        Limits {
            limits: limits.into_iter().collect(),
            time: Label::new("t(s)"),
            pausing: false,
        }
    }
    /// The limits (with their current levels).
    pub fn limits(&self) -> &[Limit] {
        &self.limits
    }
}

impl Block for Limits {
    fn default_settings(&self) -> Settings {
        Settings::new().freq(100.0).pausable(false)
    }
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(["t(s)", "limit", "level", "value"].map(Label::new).to_vec())
    }
    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        if self.limits.is_empty() {
            return Err(
                Error::config("no limit given; pass at least one Limit").with_origin(graph.name())
            );
        }
        for l in &self.limits {
            l.validate()
                .map_err(|e| Error::config(e).with_origin(graph.name()))?;
            graph.require_label(&l.label, &format!("limit '{}'", l.display_name()))?;
        }
        if graph.inputs().is_empty() {
            return Err(Error::config(
                "Limits has no input link; link the Blocks that send the watched labels",
            )
            .with_origin(graph.name()));
        }
        Ok(())
    }
    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .limits
            .iter()
            .map(|l| {
                format!(
                    "{} on {}: warn {:?}, alarm {:?}, hysteresis {}, persistence {} s, {:?}",
                    l.display_name(),
                    l.label,
                    l.warn,
                    l.alarm,
                    l.hysteresis,
                    l.persistence,
                    l.action
                )
            })
            .collect();
        parts.join("; ")
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let now = ctx.t();
        let mut changes = Vec::new();
        let time = self.time.clone();
        let limits = &mut self.limits;
        ctx.recv_each(|_, s| {
            let t = s.get_f64(&time).unwrap_or(now);
            for (i, l) in limits.iter_mut().enumerate() {
                if let Some(v) = s.get_f64(&l.label) {
                    if let Some(tr) = l.update(t, v) {
                        changes.push((i, tr));
                    }
                }
            }
        });
        for (i, tr) in changes {
            if ctx.n_outputs() > 0 {
                let level = match tr.level {
                    Level::Normal => "normal",
                    Level::Warning => "warning",
                    Level::Alarm => "alarm",
                };
                ctx.send(
                    &crabby::Sample::new()
                        .with("t(s)", tr.t)
                        .with("limit", self.limits[i].display_name())
                        .with("level", level)
                        .with("value", tr.value),
                )?;
            }
            match tr.level {
                Level::Warning => log::warn!("{}", tr.text),
                Level::Normal => log::info!("{}", tr.text),
                Level::Alarm => {
                    log::error!("{}", tr.text);
                    ctx.record_alarm(&tr.text);
                    if self.limits[i].action == LimitAction::Stop {
                        ctx.stop_test();
                    }
                }
            }
        }
        let pause = self
            .limits
            .iter()
            .find(|l| l.action == LimitAction::Pause && l.level == Level::Alarm);
        match (pause, self.pausing) {
            (Some(l), false) => {
                ctx.pause(&format!("limit '{}' in alarm", l.display_name()));
                self.pausing = true;
            }
            (None, true) => {
                ctx.resume();
                self.pausing = false;
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        // Leave nothing unread in the links (the test is stopping: no decision is taken).
        ctx.drain_until_ended(std::time::Duration::from_millis(500));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_then_alarm_with_hysteresis() {
        let mut l = Limit::new("T")
            .warn_max(100.0)
            .alarm_max(110.0)
            .hysteresis(2.0);
        assert!(l.update(0.0, 99.0).is_none());
        assert_eq!(l.update(0.1, 101.0).unwrap().level, Level::Warning);
        assert!(
            l.update(0.2, 99.0).is_none(),
            "inside by less than the hysteresis"
        );
        let a = l.update(0.3, 111.0).unwrap();
        assert_eq!(a.level, Level::Alarm);
        assert!(
            a.text.contains("T = 111")
                && a.text.contains("above 110")
                && a.text.contains("t = 0.300"),
            "{}",
            a.text
        );
        assert!(
            l.update(0.4, 109.0).is_none(),
            "alarm held within the hysteresis"
        );
        assert_eq!(l.update(0.5, 107.9).unwrap().level, Level::Warning);
        assert_eq!(l.update(0.6, 97.9).unwrap().level, Level::Normal);
    }

    #[test]
    fn persistence_filters_spikes() {
        let mut l = Limit::new("F").alarm_min(-5.0).persistence(0.1);
        assert!(l.update(0.0, -6.0).is_none());
        assert!(
            l.update(0.05, 0.0).is_none(),
            "spike shorter than the persistence"
        );
        assert!(l.update(0.06, -6.0).is_none());
        assert!(l.update(0.15, -7.0).is_none());
        let a = l.update(0.17, -7.0).unwrap();
        assert_eq!((a.level, a.t), (Level::Alarm, 0.17));
    }

    #[test]
    fn bad_limits_are_rejected_with_the_fix() {
        assert!(Limit::new("x")
            .validate()
            .unwrap_err()
            .contains("no threshold"));
        assert!(Limit::new("x")
            .warn_max(5.0)
            .alarm_max(4.0)
            .validate()
            .unwrap_err()
            .contains("warn_max"));
        assert!(Limit::new("x")
            .alarm_min(5.0)
            .alarm_max(4.0)
            .validate()
            .is_err());
        assert!(Limit::new("x")
            .alarm_max(1.0)
            .hysteresis(-1.0)
            .validate()
            .is_err());
        assert!(Limit::new("x").alarm_max(f64::NAN).validate().is_err());
    }
}
