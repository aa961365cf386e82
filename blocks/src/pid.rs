//! [`Pid`]: a PID controller Block, around the clock-injected [`PidCore`].
//!
//! Behaviour (Crappy's `PID`, with real anti-windup and an optional derivative filter):
//! - `error = setpoint − input`; `p = kp·error`; `i += ki·error·dt` (the gain multiplies
//!   before accumulating, so retuning `ki` live does not bump the output); `d = −kd·d(input)/dt`:
//!   the derivative acts on the **measurement**, so a setpoint step gives no kick. With
//!   [`d_filter`](Pid::d_filter) the derivative goes through a first-order low-pass filter
//!   of that time constant.
//! - The integral term is clamped to [`i_limits`](Pid::i_limits), and **does not integrate**
//!   while the output is saturated in the direction the error would push it (conditional
//!   integration): after a long saturation the output leaves the limit as soon as the error
//!   changes sign, without the overshoot of a wound-up integral.
//! - The output is clamped to [`out_limits`](Pid::out_limits).
//! - Bumpless start: until a setpoint has been received (or with no constant setpoint), the
//!   setpoint is the first input, so the output starts at zero effort.
//! - Gains can be retuned live by sending them on labels ([`gain_labels`](Pid::gain_labels)).
//! - [`reverse`](Pid::reverse) flips the sign of every gain (a cooler, not a heater).
//! - It computes only when a **new** input arrives (the input label with the time label in
//!   one sample), and sends `t(s)`, the output and, with [`send_terms`](Pid::send_terms),
//!   the `p`, `i` and `d` terms under `<out>_p`, `<out>_i`, `<out>_d`.
//!
//! ```no_run
//! use crabby::Test;
//! use crabby_blocks::{Generator, Path, Pid, Setpoint};
//! # use crabby::hardware::{InOut, Input, Output, Reading};
//! # struct Furnace;
//! # impl InOut for Furnace {
//! #     fn channels(&self) -> Vec<String> { vec!["T(C)".into()] }
//! # }
//! # impl Input for Furnace {
//! #     fn read(&mut self) -> crabby::Result<Reading> { Ok(Reading::now(vec![20.0])) }
//! # }
//! # impl Output for Furnace {
//! #     fn write(&mut self, _: &[f64]) -> crabby::Result<()> { Ok(()) }
//! # }
//! let mut test = Test::new("furnace");
//! let target = test.add(Generator::new([Path::constant(300.0).until("delay=60")])?.cmd_label("T_target"));
//! let pid = test.add(
//!     Pid::new("T(C)", Setpoint::label("T_target"), "power(%)")
//!         .gains(0.4, 0.8, 0.0)
//!         .out_limits(0.0, 100.0),
//! );
//! let furnace = test.add(crabby_blocks::IOBlock::input_output(Furnace).cmd_labels(["power(%)"]));
//! test.link(target, pid);
//! test.link(furnace, pid);
//! test.link(pid, furnace);
//! test.run()?;
//! # Ok::<(), crabby::Error>(())
//! ```

use crabby::{Block, Context, Error, Flow, GraphView, Label, Result, Sample, Settings};
use std::time::Duration;

/// Where the PID's setpoint comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Setpoint {
    /// A fixed value.
    Constant(f64),
    /// The latest value received on this label (until the first one: the first input).
    Label(Label),
}

impl Setpoint {
    /// A setpoint read from `label`.
    pub fn label(label: impl Into<Label>) -> Self {
        Setpoint::Label(label.into())
    }
}

/// One PID output with its terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PidOutput {
    /// The clamped output.
    pub out: f64,
    /// Proportional term.
    pub p: f64,
    /// Integral term.
    pub i: f64,
    /// Derivative term (filtered if a filter is set).
    pub d: f64,
}

/// The PID's computation, with the time given by the caller. See the [module docs](self).
///
/// ```
/// use crabby_blocks::PidCore;
/// let mut pid = PidCore::new(2.0, 1.0, 0.0);
/// pid.set_setpoint(10.0);
/// let o = pid.update(0.0, 4.0);
/// assert_eq!(o.p, 12.0); // 2 · (10 − 4)
/// let o = pid.update(0.5, 4.0);
/// assert_eq!(o.i, 3.0);  // 1 · 6 · 0.5
/// ```
#[derive(Debug, Clone)]
pub struct PidCore {
    kp: f64,
    ki: f64,
    kd: f64,
    sign: f64,
    out_min: f64,
    out_max: f64,
    i_min: f64,
    i_max: f64,
    d_filter: f64,
    setpoint: Option<f64>,
    i_term: f64,
    d_term: f64,
    prev: Option<(f64, f64)>,
}

impl PidCore {
    /// A PID with these gains, no limits, no filter.
    pub fn new(kp: f64, ki: f64, kd: f64) -> Self {
        PidCore {
            kp: kp.abs(),
            ki: ki.abs(),
            kd: kd.abs(),
            sign: 1.0,
            out_min: f64::NEG_INFINITY,
            out_max: f64::INFINITY,
            i_min: f64::NEG_INFINITY,
            i_max: f64::INFINITY,
            d_filter: 0.0,
            setpoint: None,
            i_term: 0.0,
            d_term: 0.0,
            prev: None,
        }
    }
    /// Replaces the gains (their absolute values; the sign comes from `reverse`).
    pub fn set_gains(&mut self, kp: f64, ki: f64, kd: f64) {
        self.kp = kp.abs();
        self.ki = ki.abs();
        self.kd = kd.abs();
    }
    /// The gains, signed.
    pub fn gains(&self) -> (f64, f64, f64) {
        (
            self.sign * self.kp,
            self.sign * self.ki,
            self.sign * self.kd,
        )
    }
    /// Reverse acting: every gain negative.
    pub fn set_reverse(&mut self, reverse: bool) {
        self.sign = if reverse { -1.0 } else { 1.0 };
    }
    /// Output limits.
    pub fn set_out_limits(&mut self, min: f64, max: f64) {
        self.out_min = min;
        self.out_max = max;
    }
    /// Limits of the integral term.
    pub fn set_i_limits(&mut self, min: f64, max: f64) {
        self.i_min = min;
        self.i_max = max;
    }
    /// Time constant (s) of the derivative's low-pass filter; 0: none.
    pub fn set_d_filter(&mut self, tau: f64) {
        self.d_filter = tau;
    }
    /// Sets the setpoint.
    pub fn set_setpoint(&mut self, sp: f64) {
        self.setpoint = Some(sp);
    }
    /// The setpoint, if known.
    pub fn setpoint(&self) -> Option<f64> {
        self.setpoint
    }

    /// One computation at time `t` (s) for the measurement `input`.
    pub fn update(&mut self, t: f64, input: f64) -> PidOutput {
        // Bumpless start: no setpoint yet → hold the first input.
        let sp = *self.setpoint.get_or_insert(input);
        let (kp, ki, kd) = self.gains();
        let error = sp - input;
        let p = kp * error;
        let mut d = 0.0;
        if let Some((pt, pin)) = self.prev {
            let dt = t - pt;
            if dt > 0.0 {
                let raw = -kd * (input - pin) / dt;
                d = if self.d_filter > 0.0 {
                    let a = dt / (self.d_filter + dt);
                    self.d_term + a * (raw - self.d_term)
                } else {
                    raw
                };
                self.d_term = d;
                let di = ki * error * dt;
                let candidate = (self.i_term + di).clamp(self.i_min, self.i_max);
                let unclamped = p + candidate + d;
                // Anti-windup: no integration that pushes further into a saturated output.
                let winding = (unclamped > self.out_max && di > 0.0)
                    || (unclamped < self.out_min && di < 0.0);
                if !winding {
                    self.i_term = candidate;
                }
            } else {
                d = self.d_term;
            }
        }
        self.i_term = self.i_term.clamp(self.i_min, self.i_max);
        self.prev = Some((t, input));
        let out = (p + self.i_term + d).clamp(self.out_min, self.out_max);
        PidOutput {
            out,
            p,
            i: self.i_term,
            d,
        }
    }
}

/// Figures of a step response, measured on recorded `(t, y)` points (for reports and tests).
///
/// ```
/// use crabby_blocks::StepResponse;
/// let pts: Vec<(f64, f64)> = (0..400).map(|i| {
///     let t = i as f64 * 0.01;
///     (t, 100.0 * (1.0 - (-t / 0.5).exp()))
/// }).collect();
/// let r = StepResponse::measure(&pts, 0.0, 0.0, 100.0, 0.5).unwrap();
/// assert!(r.overshoot.abs() < 1e-9);
/// assert!((r.settling_time - 0.5 * (200.0f64).ln()).abs() < 0.02); // within 0.5 of 100
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepResponse {
    /// Largest excursion past the setpoint, in the direction of the step (units of y).
    pub overshoot: f64,
    /// Time from the step until y stays within the band for good (s).
    pub settling_time: f64,
    /// Mean of `setpoint − y` over the last quarter of the points after the step.
    pub steady_error: f64,
    /// Largest `|setpoint − y|` over that last quarter.
    pub steady_max_error: f64,
}

impl StepResponse {
    /// Measures the response to a step from `from` to `setpoint` at `t_step`, with a
    /// settling band of ±`band`. `None` if no point follows the step or y never settles.
    pub fn measure(
        pts: &[(f64, f64)],
        t_step: f64,
        from: f64,
        setpoint: f64,
        band: f64,
    ) -> Option<StepResponse> {
        let after: Vec<(f64, f64)> = pts.iter().copied().filter(|p| p.0 >= t_step).collect();
        if after.len() < 4 {
            return None;
        }
        let dir = if setpoint >= from { 1.0 } else { -1.0 };
        let overshoot = after
            .iter()
            .map(|p| dir * (p.1 - setpoint))
            .fold(f64::NEG_INFINITY, f64::max)
            .max(0.0);
        let last_out = after.iter().rposition(|p| (p.1 - setpoint).abs() > band);
        let settling_time = match last_out {
            None => 0.0,
            Some(i) if i + 1 < after.len() => after[i + 1].0 - t_step,
            Some(_) => return None,
        };
        let tail = &after[after.len() * 3 / 4..];
        let errs: Vec<f64> = tail.iter().map(|p| setpoint - p.1).collect();
        Some(StepResponse {
            overshoot,
            settling_time,
            steady_error: errs.iter().sum::<f64>() / errs.len() as f64,
            steady_max_error: errs.iter().fold(0.0, |m, e| m.max(e.abs())),
        })
    }
}

/// The PID Block. See the [module docs](self).
#[derive(Debug)]
pub struct Pid {
    core: PidCore,
    input: Label,
    setpoint: Setpoint,
    out: Label,
    time: Label,
    gain_labels: Option<[Label; 3]>,
    send_terms: bool,
    limits: (f64, f64),
    i_limits: (f64, f64),
    d_filter: f64,
    gains: (f64, f64, f64),
    terms: [Label; 3],
}

impl Pid {
    /// A PID holding `input` at `setpoint`, sending its output on `output`. Gains default to
    /// (1, 0, 0); no limits.
    pub fn new(input: impl Into<Label>, setpoint: Setpoint, output: impl Into<Label>) -> Self {
        let out: Label = output.into();
        let mut core = PidCore::new(1.0, 0.0, 0.0);
        if let Setpoint::Constant(v) = setpoint {
            core.set_setpoint(v);
        }
        Pid {
            core,
            input: input.into(),
            setpoint,
            time: Label::new("t(s)"),
            gain_labels: None,
            send_terms: false,
            limits: (f64::NEG_INFINITY, f64::INFINITY),
            i_limits: (f64::NEG_INFINITY, f64::INFINITY),
            d_filter: 0.0,
            gains: (1.0, 0.0, 0.0),
            terms: [
                Label::from(format!("{out}_p")),
                Label::from(format!("{out}_i")),
                Label::from(format!("{out}_d")),
            ],
            out,
        }
    }
    /// kp, ki (per second), kd (seconds).
    pub fn gains(mut self, kp: f64, ki: f64, kd: f64) -> Self {
        self.gains = (kp, ki, kd);
        self.core.set_gains(kp, ki, kd);
        self
    }
    /// Output limits (for example 0 and 100 % of a heater's power).
    pub fn out_limits(mut self, min: f64, max: f64) -> Self {
        self.limits = (min, max);
        self.core.set_out_limits(min, max);
        self
    }
    /// Limits of the integral term (default: none besides the anti-windup).
    pub fn i_limits(mut self, min: f64, max: f64) -> Self {
        self.i_limits = (min, max);
        self.core.set_i_limits(min, max);
        self
    }
    /// Time constant (s) of a first-order filter on the derivative (default 0: none).
    pub fn d_filter(mut self, tau: f64) -> Self {
        self.d_filter = tau;
        self.core.set_d_filter(tau);
        self
    }
    /// Reverse acting: every gain negative (default no).
    pub fn reverse(mut self, yes: bool) -> Self {
        self.core.set_reverse(yes);
        self
    }
    /// Labels whose values replace kp, ki and kd live.
    pub fn gain_labels(
        mut self,
        kp: impl Into<Label>,
        ki: impl Into<Label>,
        kd: impl Into<Label>,
    ) -> Self {
        self.gain_labels = Some([kp.into(), ki.into(), kd.into()]);
        self
    }
    /// Also sends the p, i and d terms (default no).
    pub fn send_terms(mut self, yes: bool) -> Self {
        self.send_terms = yes;
        self
    }
    /// The time label of the input (default `t(s)`).
    pub fn time_label(mut self, l: impl Into<Label>) -> Self {
        self.time = l.into();
        self
    }

    fn err(&self, graph: &GraphView<'_>, msg: String) -> Error {
        Error::config(msg).with_origin(graph.name())
    }
}

impl Block for Pid {
    fn default_settings(&self) -> Settings {
        // Event-driven: it waits for each new input (see `step`).
        Settings::new().free_run()
    }

    fn output_labels(&self) -> Option<Vec<Label>> {
        let mut v = vec![self.time.clone(), self.out.clone()];
        if self.send_terms {
            v.extend(self.terms.iter().cloned());
        }
        Some(v)
    }

    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        let (kp, ki, kd) = self.gains;
        for (name, g) in [("kp", kp), ("ki", ki), ("kd", kd)] {
            if !g.is_finite() {
                return Err(self.err(graph, format!("gain {name} is {g}; give a finite number")));
            }
        }
        for (name, (lo, hi)) in [("out_limits", self.limits), ("i_limits", self.i_limits)] {
            if lo.is_nan() || hi.is_nan() || lo >= hi {
                return Err(self.err(
                    graph,
                    format!(
                        "parameter '{name}' is ({lo}, {hi}); the minimum must be below the maximum"
                    ),
                ));
            }
        }
        if !(self.d_filter.is_finite() && self.d_filter >= 0.0) {
            return Err(self.err(
                graph,
                format!(
                    "parameter 'd_filter' is {}; give a time constant in seconds, 0 or more",
                    self.d_filter
                ),
            ));
        }
        if let Setpoint::Constant(v) = self.setpoint {
            if !v.is_finite() {
                return Err(self.err(
                    graph,
                    format!("constant setpoint is {v}; give a finite number"),
                ));
            }
        }
        if self.input == self.out || self.out == self.time {
            return Err(self.err(
                graph,
                format!(
                    "output label '{}' is also the input or time label; give it another name",
                    self.out
                ),
            ));
        }
        if graph.inputs().is_empty() {
            return Err(self.err(
                graph,
                format!(
                    "a PID needs an input link bringing '{}'; link the Block that measures it",
                    self.input
                ),
            ));
        }
        graph.require_label(&self.input, "the PID's input")?;
        graph.require_label(&self.time, "the PID's time label")?;
        if let Setpoint::Label(l) = &self.setpoint {
            graph.require_label(l, "the PID's setpoint")?;
        }
        if let Some(ls) = &self.gain_labels {
            for l in ls {
                graph.require_label(l, "the PID's gain labels")?;
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let (kp, ki, kd) = self.core.gains();
        format!(
            "input {}, setpoint {:?}, output {}, kp={kp} ki={ki} kd={kd}, out_limits {:?}, i_limits {:?}, d_filter {} s",
            self.input, self.setpoint, self.out, self.limits, self.i_limits, self.d_filter
        )
    }

    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if !ctx.wait(Duration::from_millis(100)) {
            return Ok(Flow::Continue);
        }
        for s in ctx.recv_all_per_link().into_iter().flatten() {
            self.apply(ctx, &s)?;
        }
        Ok(Flow::Continue)
    }
}

impl Pid {
    /// Handles one received sample: setpoint and gains first, then a computation if it
    /// carries a new input.
    fn apply(&mut self, ctx: &mut Context, s: &Sample) -> Result<()> {
        if let Setpoint::Label(l) = &self.setpoint {
            if let Some(v) = s.get_f64(l) {
                self.core.set_setpoint(v);
            }
        }
        if let Some([lp, li, ld]) = &self.gain_labels {
            let (mut kp, mut ki, mut kd) = self.gains;
            let mut changed = false;
            for (l, g) in [(lp, &mut kp), (li, &mut ki), (ld, &mut kd)] {
                if let Some(v) = s.get_f64(l).filter(|v| v.is_finite()) {
                    *g = v;
                    changed = true;
                }
            }
            if changed {
                self.gains = (kp, ki, kd);
                self.core.set_gains(kp, ki, kd);
                log::info!("gains retuned to kp={kp} ki={ki} kd={kd}");
            }
        }
        let (Some(t), Some(x)) = (s.get_f64(&self.time), s.get_f64(&self.input)) else {
            return Ok(());
        };
        if !x.is_finite() {
            return Ok(());
        }
        let o = self.core.update(t, x);
        let mut out = Sample::with_capacity(5);
        out.insert(self.time.clone(), ctx.t());
        out.insert(self.out.clone(), o.out);
        if self.send_terms {
            out.insert(self.terms[0].clone(), o.p);
            out.insert(self.terms[1].clone(), o.i);
            out.insert(self.terms[2].clone(), o.d);
        }
        ctx.send(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A first-order plant `τ·dy/dt = K·u − (y − y0)`, integrated exactly over each step.
    struct Plant {
        y: f64,
        y0: f64,
        k: f64,
        tau: f64,
    }
    impl Plant {
        fn step(&mut self, u: f64, dt: f64) {
            let ss = self.y0 + self.k * u;
            self.y = ss + (self.y - ss) * (-dt / self.tau).exp();
        }
    }

    fn run(
        pid: &mut PidCore,
        plant: &mut Plant,
        t0: f64,
        t1: f64,
        dt: f64,
    ) -> Vec<(f64, f64, f64)> {
        let mut v = Vec::new();
        let mut t = t0;
        while t < t1 {
            let o = pid.update(t, plant.y);
            plant.step(o.out, dt);
            v.push((t, plant.y, o.out));
            t += dt;
        }
        v
    }

    #[test]
    fn terms_match_hand_computation() {
        let mut p = PidCore::new(2.0, 0.5, 0.1);
        p.set_setpoint(10.0);
        let a = p.update(0.0, 4.0);
        assert_eq!((a.p, a.i, a.d, a.out), (12.0, 0.0, 0.0, 12.0));
        let b = p.update(0.5, 5.0);
        assert_eq!(b.p, 10.0);
        assert_eq!(b.i, 0.5 * 5.0 * 0.5);
        assert!((b.d - (-0.1 * 1.0 / 0.5)).abs() < 1e-12);
        // Same time again: no integration, no division by zero.
        let c = p.update(0.5, 5.0);
        assert_eq!(c.i, b.i);
    }

    #[test]
    fn bumpless_start_and_no_derivative_kick_on_a_setpoint_step() {
        let mut p = PidCore::new(1.0, 1.0, 5.0);
        let a = p.update(0.0, 42.0);
        assert_eq!(a.out, 0.0, "setpoint = first input");
        assert_eq!(p.setpoint(), Some(42.0));
        p.update(0.1, 42.0);
        p.set_setpoint(50.0);
        let b = p.update(0.2, 42.0);
        assert_eq!(b.d, 0.0, "the derivative is on the measurement");
        assert_eq!(b.p, 8.0);
    }

    #[test]
    fn reverse_flips_every_gain() {
        let mut p = PidCore::new(2.0, 1.0, 1.0);
        p.set_reverse(true);
        assert_eq!(p.gains(), (-2.0, -1.0, -1.0));
        p.set_setpoint(0.0);
        assert_eq!(
            p.update(0.0, 1.0).out,
            2.0,
            "above the setpoint: a cooler pushes up"
        );
    }

    #[test]
    fn settles_a_first_order_plant() {
        let mut plant = Plant {
            y: 20.0,
            y0: 20.0,
            k: 5.0,
            tau: 5.0,
        };
        let mut p = PidCore::new(0.4, 0.08, 0.0);
        p.set_out_limits(0.0, 100.0);
        p.set_setpoint(200.0);
        let v = run(&mut p, &mut plant, 0.0, 60.0, 0.01);
        let last = v.last().unwrap();
        assert!((last.1 - 200.0).abs() < 0.05, "{last:?}");
    }

    /// Anti-windup: a 20 → 480 °C step saturates the heater (92 % needed) for seconds. With
    /// conditional integration the integral does not grow meanwhile and the temperature
    /// barely overshoots; a naive integrator (the same PID without output limits, the plant
    /// clamping the power itself) winds up during the rise and overshoots by tens of degrees.
    #[test]
    fn anti_windup_prevents_overshoot_after_saturation() {
        let run = |limits: bool| {
            let mut plant = Plant {
                y: 20.0,
                y0: 20.0,
                k: 5.0,
                tau: 5.0,
            };
            let mut p = PidCore::new(0.4, 0.08, 0.0);
            if limits {
                p.set_out_limits(0.0, 100.0);
            }
            p.set_setpoint(480.0);
            let (mut t, mut max, mut saturated) = (0.0, 0.0f64, 0.0);
            while t < 120.0 {
                let o = p.update(t, plant.y);
                if o.out >= 100.0 {
                    saturated += 0.01;
                }
                plant.step(o.out.clamp(0.0, 100.0), 0.01);
                max = max.max(plant.y);
                t += 0.01;
            }
            (max - 480.0, plant.y, saturated)
        };
        let (with_aw, end_aw, sat) = run(true);
        let (without, _, _) = run(false);
        assert!(sat > 2.0, "the step saturates the output ({sat} s)");
        assert!(with_aw < 1.0, "overshoot with anti-windup {with_aw}");
        assert!((end_aw - 480.0).abs() < 0.1, "{end_aw}");
        assert!(without > 20.0, "the naive integrator winds up: {without}");
    }

    #[test]
    fn retuning_the_gains_live_does_not_bump_the_output() {
        let mut p = PidCore::new(1.0, 2.0, 0.0);
        p.set_setpoint(10.0);
        p.update(0.0, 8.0);
        let before = p.update(1.0, 8.0); // i = 2·2·1 = 4
        p.set_gains(1.0, 20.0, 0.0);
        let after = p.update(1.0, 8.0); // same time: nothing integrated
        assert_eq!(before.out, after.out, "ki multiplies before accumulating");
        let next = p.update(1.1, 8.0);
        assert!(
            (next.i - (4.0 + 20.0 * 2.0 * 0.1)).abs() < 1e-12,
            "{next:?}"
        );
    }

    #[test]
    fn integral_limits_and_filter() {
        let mut p = PidCore::new(0.0, 1.0, 0.0);
        p.set_i_limits(-1.0, 2.0);
        p.set_setpoint(10.0);
        p.update(0.0, 0.0);
        assert_eq!(p.update(1.0, 0.0).i, 2.0);
        let mut f = PidCore::new(0.0, 0.0, 1.0);
        f.set_d_filter(1.0);
        f.set_setpoint(0.0);
        f.update(0.0, 0.0);
        let d = f.update(1.0, 1.0).d; // raw −1, filtered by dt/(τ+dt) = 0.5
        assert!((d + 0.5).abs() < 1e-12, "{d}");
    }
}
