//! [`FakeMachine`]: a simulated tensile test machine, with its sample.
//!
//! The principal types:
//! - [`FakeMachineModel`]: the physics, deterministic and clock-free
//!   ([`FakeMachineModel::step`] takes `dt` and the command), for unit tests and for use
//!   outside a test graph.
//! - [`FakeMachine`]: the Block around the model: it reads the command (label `cmd`),
//!   integrates over the wall time between its loops, and sends `t(s)`, `F(N)`, `x(mm)`,
//!   `Exx(%)` and `Eyy(%)`, optionally with seeded Gaussian noise. Default rate 100 Hz.
//!   While the test is paused the crosshead holds still (speed 0, or its current position).
//!
//! The model is Crappy's `FakeMachine` (same parameters, defaults and equations):
//! - the crosshead moves at the commanded speed (`speed` mode) or towards the commanded
//!   position (`position` mode), at most `max_speed` mm/s, never below 0;
//! - the force is linear in the elastic strain: `F = (x − x_plastic)/l0 · k`, with
//!   `k = 8.4e6` N per unit strain and `l0 = 200` mm; it goes negative on unloading (no
//!   compression guard, as in Crappy);
//! - the plastic elongation follows the largest strain reached, by
//!   [`crappy_plastic_law`] (yield 0.005, rate 0.02) or a law given by the user;
//! - above `max_strain` (1.51 %) the sample breaks: the force is 0 from then on.
//!
//! Two quirks of Crappy are fixed:
//! - The first `dt` is measured from the first command, not from the test's start: a
//!   machine whose command arrives late does not jump.
//! - The rupture test tolerates float accumulation: the sample breaks when the strain
//!   exceeds `max_strain` by more than 1e-9 (relative). Crappy compares strictly, so a
//!   position summed to 3.02 mm in 1/600 mm steps (a float just above 3.02) breaks the
//!   sample at exactly 1.51 %; here it breaks one step later, at 3.021667 mm.

use crabby::{Block, Context, Error, ErrorKind, Flow, GraphView, Label, Result, Sample, Settings};
use std::fmt;
use std::sync::Arc;

/// Relative margin above `max_strain` before the sample breaks (see the module docs).
pub const FAKE_MACHINE_BREAK_TOLERANCE: f64 = 1e-9;

/// Crappy's default plastic law: the plastic strain left after reaching the strain
/// `max_strain` (both as fractions, not %).
///
/// `rate·(√(((v − yield)/rate)² + 1) − 1)` above `yield = 0.005`, with `rate = 0.02`;
/// 0 below.
pub fn crappy_plastic_law(max_strain: f64) -> f64 {
    const YIELD: f64 = 0.005;
    const RATE: f64 = 0.02;
    if max_strain > YIELD {
        RATE * ((((max_strain - YIELD) / RATE).powi(2) + 1.0).sqrt() - 1.0)
    } else {
        0.0
    }
}

/// How the command drives the crosshead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeMachineMode {
    /// The command is a speed in mm/s.
    Speed,
    /// The command is a position in mm.
    Position,
}

/// What the model outputs after a step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FakeMachineOutput {
    /// Crosshead position (mm), i.e. the elongation of the sample.
    pub x_mm: f64,
    /// Force (N).
    pub f_n: f64,
    /// Total axial strain (%), plastic part included.
    pub exx_pct: f64,
    /// Transverse strain (%): `−nu · Exx`.
    pub eyy_pct: f64,
}

type PlasticLaw = Arc<dyn Fn(f64) -> f64 + Send + Sync>;

/// The physics of the simulated machine and sample. See the [module docs](self).
///
/// ```
/// use crabby_blocks::FakeMachineModel;
/// let mut m = FakeMachineModel::new();
/// let out = m.step(1.0, 0.5); // 1 s at 0.5 mm/s
/// assert_eq!(out.x_mm, 0.5);
/// assert!((out.f_n - 0.5 / 200.0 * 8.4e6).abs() < 1e-6); // elastic
/// ```
#[derive(Clone)]
pub struct FakeMachineModel {
    rigidity: f64,
    l0: f64,
    max_strain: f64,
    nu: f64,
    max_speed: f64,
    mode: FakeMachineMode,
    plastic_law: Option<PlasticLaw>,
    // State.
    pos: f64,
    plastic_elong: f64,
    max_rec_strain: f64,
    k: f64,
    broken: bool,
}

impl fmt::Debug for FakeMachineModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeMachineModel")
            .field("rigidity", &self.rigidity)
            .field("l0", &self.l0)
            .field("max_strain", &self.max_strain)
            .field("nu", &self.nu)
            .field("max_speed", &self.max_speed)
            .field("mode", &self.mode)
            .field("custom_plastic_law", &self.plastic_law.is_some())
            .field("pos", &self.pos)
            .field("plastic_elong", &self.plastic_elong)
            .field("broken", &self.broken)
            .finish()
    }
}

impl Default for FakeMachineModel {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeMachineModel {
    /// Crappy's defaults: rigidity 8.4e6 N, l0 200 mm, max strain 1.51 %, nu 0.3, max speed
    /// 5 mm/s, speed mode, [`crappy_plastic_law`]; at rest, unbroken.
    pub fn new() -> Self {
        FakeMachineModel {
            rigidity: 8.4e6,
            l0: 200.0,
            max_strain: 0.0151,
            nu: 0.3,
            max_speed: 5.0,
            mode: FakeMachineMode::Speed,
            plastic_law: None,
            pos: 0.0,
            plastic_elong: 0.0,
            max_rec_strain: 0.0,
            k: 8.4e6,
            broken: false,
        }
    }

    /// Force per unit strain, N (default 8.4e6).
    pub fn rigidity(mut self, newtons: f64) -> Self {
        self.rigidity = newtons;
        if !self.broken {
            self.k = newtons;
        }
        self
    }

    /// Initial length of the sample, mm (default 200).
    pub fn l0(mut self, mm: f64) -> Self {
        self.l0 = mm;
        self
    }

    /// Strain at which the sample breaks, in % (default 1.51).
    pub fn max_strain_pct(mut self, pct: f64) -> Self {
        self.max_strain = pct / 100.0;
        self
    }

    /// Poisson's ratio (default 0.3).
    pub fn nu(mut self, nu: f64) -> Self {
        self.nu = nu;
        self
    }

    /// Largest crosshead speed, mm/s (default 5).
    pub fn max_speed(mut self, mm_per_s: f64) -> Self {
        self.max_speed = mm_per_s;
        self
    }

    /// Speed or position control (default speed).
    pub fn mode(mut self, mode: FakeMachineMode) -> Self {
        self.mode = mode;
        self
    }

    /// A plastic law: the plastic strain (fraction) left after reaching a maximum strain
    /// (fraction). Default [`crappy_plastic_law`].
    pub fn plastic_law(mut self, law: impl Fn(f64) -> f64 + Send + Sync + 'static) -> Self {
        self.plastic_law = Some(Arc::new(law));
        self
    }

    /// Checks the parameters; the error names the parameter and the accepted range.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("rigidity", self.rigidity),
            ("l0", self.l0),
            ("max_strain", self.max_strain),
            ("max_speed", self.max_speed),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::config(format!(
                    "{name} must be a finite number above 0 (got {v})"
                )));
            }
        }
        if !self.nu.is_finite() {
            return Err(Error::config(format!(
                "nu must be a finite number (got {})",
                self.nu
            )));
        }
        Ok(())
    }

    /// Moves for `dt` seconds under `cmd` (mm/s in speed mode, mm in position mode) and
    /// returns the new output. A `dt` that is not above 0 changes nothing.
    pub fn step(&mut self, dt: f64, cmd: f64) -> FakeMachineOutput {
        if dt > 0.0 && dt.is_finite() && cmd.is_finite() {
            let v = match self.mode {
                FakeMachineMode::Speed => sign(cmd) * self.max_speed.min(cmd.abs()),
                FakeMachineMode::Position => {
                    let d = cmd - self.pos;
                    sign(d) * self.max_speed.min(d.abs() / dt)
                }
            };
            self.pos = (self.pos + v * dt).max(0.0);
            let strain = self.pos / self.l0;
            if !self.broken && strain > self.max_strain * (1.0 + FAKE_MACHINE_BREAK_TOLERANCE) {
                self.broken = true;
                self.k = 0.0;
            }
            if strain > self.max_rec_strain {
                self.max_rec_strain = strain;
                let plastic = match &self.plastic_law {
                    Some(law) => law(strain),
                    None => crappy_plastic_law(strain),
                };
                self.plastic_elong = plastic * self.l0;
            }
        }
        self.output()
    }

    /// The current output.
    pub fn output(&self) -> FakeMachineOutput {
        FakeMachineOutput {
            x_mm: self.pos,
            f_n: (self.pos - self.plastic_elong) / self.l0 * self.k,
            exx_pct: self.pos * 100.0 / self.l0,
            eyy_pct: -self.nu * self.pos * 100.0 / self.l0,
        }
    }

    /// Crosshead position, mm.
    pub fn position_mm(&self) -> f64 {
        self.pos
    }

    /// Plastic elongation of the sample, mm.
    pub fn plastic_elongation_mm(&self) -> f64 {
        self.plastic_elong
    }

    /// Largest strain reached (fraction).
    pub fn max_strain_reached(&self) -> f64 {
        self.max_rec_strain
    }

    /// Whether the sample broke.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The control mode.
    pub fn control_mode(&self) -> FakeMachineMode {
        self.mode
    }
}

fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// SplitMix64: a tiny, good-enough, seedable generator for simulation noise.
#[derive(Debug, Clone)]
struct Gaussian {
    state: u64,
    spare: Option<f64>,
}

impl Gaussian {
    fn new(seed: u64) -> Self {
        Gaussian {
            state: seed,
            spare: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal, by Box–Muller (the second value is kept for the next call).
    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let r = (-2.0 * self.uniform().ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * self.uniform();
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }
}

/// The labels the FakeMachine sends, in order.
const OUTPUTS: [&str; 5] = ["t(s)", "F(N)", "x(mm)", "Exx(%)", "Eyy(%)"];

/// The simulated tensile machine Block. See the [module docs](self).
///
/// ```
/// use crabby_blocks::{FakeMachineMode, FakeMachine};
/// let machine = FakeMachine::new()
///     .cmd_label("cmd")
///     .mode(FakeMachineMode::Speed)
///     .noise(FakeMachine::CRAPPY_NOISE, 42);
/// ```
#[derive(Debug)]
pub struct FakeMachine {
    model: FakeMachineModel,
    cmd_label: Label,
    labels: [Label; 5],
    /// (label, sigma) as given, checked in `check`.
    noise_spec: Vec<(String, f64)>,
    /// sigma per output (F, x, Exx, Eyy).
    sigmas: [f64; 4],
    rng: Gaussian,
    prev_t: Option<f64>,
    broke_logged: bool,
}

impl Default for FakeMachine {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeMachine {
    /// Crappy's default noise: σ = 50 N on `F(N)`, 2e-3 mm on `x(mm)`, 1e-3 % on `Exx(%)`
    /// and `Eyy(%)`. Not applied unless given to [`noise`](FakeMachine::noise): by default
    /// the FakeMachine is deterministic (Crappy's default is noisy).
    pub const CRAPPY_NOISE: [(&'static str, f64); 4] = [
        ("F(N)", 50.0),
        ("x(mm)", 2e-3),
        ("Exx(%)", 1e-3),
        ("Eyy(%)", 1e-3),
    ];

    /// A FakeMachine with the model's defaults ([`FakeMachineModel::new`]), command label
    /// `cmd`, no noise.
    pub fn new() -> Self {
        FakeMachine::with_model(FakeMachineModel::new())
    }

    /// A FakeMachine around a configured model.
    pub fn with_model(model: FakeMachineModel) -> Self {
        FakeMachine {
            model,
            cmd_label: Label::new("cmd"),
            labels: OUTPUTS.map(Label::new),
            noise_spec: Vec::new(),
            sigmas: [0.0; 4],
            rng: Gaussian::new(0),
            prev_t: None,
            broke_logged: false,
        }
    }

    /// The label of the command (default `cmd`).
    pub fn cmd_label(mut self, label: impl Into<Label>) -> Self {
        self.cmd_label = label.into();
        self
    }

    /// Speed or position control (default speed).
    pub fn mode(mut self, mode: FakeMachineMode) -> Self {
        self.model = self.model.mode(mode);
        self
    }

    /// Gaussian noise added to the outputs (not to the state), σ per label among `F(N)`,
    /// `x(mm)`, `Exx(%)`, `Eyy(%)`; `seed` makes it reproducible. Replaces any noise given
    /// before.
    pub fn noise<'a>(
        mut self,
        sigmas: impl IntoIterator<Item = (&'a str, f64)>,
        seed: u64,
    ) -> Self {
        self.noise_spec = sigmas.into_iter().map(|(l, s)| (l.to_owned(), s)).collect();
        self.sigmas = [0.0; 4];
        for (l, s) in &self.noise_spec {
            if let Some(i) = OUTPUTS[1..].iter().position(|o| o == l) {
                self.sigmas[i] = *s;
            }
        }
        self.rng = Gaussian::new(seed);
        self
    }

    /// The model (its parameters and state).
    pub fn model(&self) -> &FakeMachineModel {
        &self.model
    }

    fn sample(&mut self, t: f64, out: FakeMachineOutput) -> Sample {
        let mut values = [out.f_n, out.x_mm, out.exx_pct, out.eyy_pct];
        for (v, sigma) in values.iter_mut().zip(self.sigmas) {
            if sigma > 0.0 {
                *v += sigma * self.rng.normal();
            }
        }
        let mut s = Sample::with_capacity(5);
        s.insert(self.labels[0].clone(), t);
        for (l, v) in self.labels[1..].iter().zip(values) {
            s.insert(l.clone(), v);
        }
        s
    }
}

impl Block for FakeMachine {
    fn default_settings(&self) -> Settings {
        Settings::new().freq(100.0)
    }

    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(self.labels.to_vec())
    }

    fn device(&self) -> Option<String> {
        Some("simulated tensile machine (FakeMachine, no hardware)".to_owned())
    }

    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        self.model
            .validate()
            .map_err(|e| e.with_origin(graph.name()))?;
        for (l, s) in &self.noise_spec {
            if !OUTPUTS[1..].contains(&l.as_str()) {
                return Err(Error::config(format!(
                    "noise on '{l}': the FakeMachine sends no such label (noisy labels: F(N), x(mm), Exx(%), Eyy(%))"
                ))
                .with_origin(graph.name()));
            }
            if !(s.is_finite() && *s >= 0.0) {
                return Err(Error::config(format!(
                    "noise sigma of '{l}' must be finite and 0 or more (got {s})"
                ))
                .with_origin(graph.name()));
            }
        }
        graph.require_label(&self.cmd_label, "the FakeMachine's command")
    }

    fn describe(&self) -> String {
        let m = &self.model;
        let noise = if self.noise_spec.is_empty() {
            "none".to_owned()
        } else {
            let parts: Vec<String> = self
                .noise_spec
                .iter()
                .map(|(l, s)| format!("{l} σ={s}"))
                .collect();
            parts.join(", ")
        };
        format!(
            "cmd_label={}, mode={:?}, rigidity={} N, l0={} mm, max_strain={} %, nu={}, max_speed={} mm/s, plastic law={}, noise: {noise}",
            self.cmd_label,
            m.mode,
            m.rigidity,
            m.l0,
            m.max_strain * 100.0,
            m.nu,
            m.max_speed,
            if m.plastic_law.is_some() { "custom" } else { "Crappy's (yield 0.005, rate 0.02)" },
        )
    }

    fn begin(&mut self, ctx: &mut Context) -> Result<()> {
        let s = self.sample(ctx.t(), self.model.output());
        ctx.send(&s)
    }

    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let latest = ctx.recv_latest(true);
        let now = ctx.t();
        let Some(cmd) = latest.get_f64(&self.cmd_label) else {
            return Ok(Flow::Continue);
        };
        if !cmd.is_finite() {
            return Err(Error::new(
                ErrorKind::OutOfRange,
                format!(
                    "received {} = {cmd}; the command must be a finite number",
                    self.cmd_label
                ),
            ));
        }
        let Some(prev) = self.prev_t else {
            // The first command starts the clock of the simulation.
            self.prev_t = Some(now);
            return Ok(Flow::Continue);
        };
        let dt = now - prev;
        if dt <= 0.0 {
            return Ok(Flow::Continue);
        }
        self.prev_t = Some(now);
        // Paused: the crosshead holds still (pause-aware, like the Machine).
        let cmd = if ctx.paused() {
            match self.model.mode {
                FakeMachineMode::Speed => 0.0,
                FakeMachineMode::Position => self.model.position_mm(),
            }
        } else {
            cmd
        };
        let out = self.model.step(dt, cmd);
        if self.model.is_broken() && !self.broke_logged {
            self.broke_logged = true;
            log::warn!("sample broke at t={now:.3} s, x={:.6} mm", out.x_mm);
        }
        let s = self.sample(now, out);
        ctx.send(&s)?;
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: f64 = 5.0 / 60.0;

    /// Within 1e-6 relative of the reference table, or within half a unit of its 6th
    /// decimal (the table is printed with 6 decimals: 0.208333 for 0.2083333…).
    fn matches(actual: f64, table: f64) -> bool {
        (actual - table).abs() <= 1e-6 * table.abs() + 5e-7
    }

    /// Drives the model as crappy.md §5.1, on a replayed 50 Hz clock (step i at
    /// t = 0.02·i, dt = t_i − t_(i−1), as the reference was made with a mocked `time()`):
    /// +5/60 mm/s until the first sample with x ≥ 2.0, then −5/60 until F < 0, then +5/60.
    /// Returns the outputs at steps 1..=n.
    fn reference_run(n: usize) -> Vec<FakeMachineOutput> {
        let mut m = FakeMachineModel::new();
        let mut phase = 0;
        let mut cmd = V;
        let mut outs = Vec::with_capacity(n);
        let mut prev_t = 0.0;
        for i in 1..=n {
            let t = i as f64 * 0.02;
            let o = m.step(t - prev_t, cmd);
            prev_t = t;
            if phase == 0 && o.x_mm >= 2.0 {
                phase = 1;
                cmd = -V;
            } else if phase == 1 && o.f_n < 0.0 {
                phase = 2;
                cmd = V;
            }
            outs.push(o);
        }
        outs
    }

    #[test]
    fn matches_the_reference_trajectory() {
        // (step = t / 0.02, x, Exx, Eyy, F) from crappy.md §5.1.
        let table: [(usize, f64, f64, f64, f64); 9] = [
            (250, 0.416667, 0.208333, -0.0625, 17500.000),
            (500, 0.833333, 0.416667, -0.125, 35000.000),
            (750, 1.25, 0.625, -0.1875, 52172.195),
            (1000, 1.666667, 0.833333, -0.25, 67682.649),
            (1250, 1.916667, 0.958333, -0.2875, 75329.564),
            (2250, 0.25, 0.125, -0.0375, 5329.564),
            (3000, 1.243333, 0.621667, -0.1865, 47049.564),
            (4000, 2.91, 1.455, -0.4365, 104050.055),
            (4065, 3.018333, 1.509167, -0.45275, 106594.675),
        ];
        let outs = reference_run(4100);
        for (step, x, exx, eyy, f) in table {
            let o = outs[step - 1];
            let t = step as f64 * 0.02;
            assert!(matches(o.x_mm, x), "t={t}: x {} vs {x}", o.x_mm);
            assert!(matches(o.exx_pct, exx), "t={t}: Exx {} vs {exx}", o.exx_pct);
            assert!(matches(o.eyy_pct, eyy), "t={t}: Eyy {} vs {eyy}", o.eyy_pct);
            assert!(matches(o.f_n, f), "t={t}: F {} vs {f}", o.f_n);
        }
        // Last row of the table: Crappy reads 0.0 N at t = 81.32 s (x = 3.02 mm, exactly
        // 1.51 %) because its accumulated position is a float just above 3.02. With the
        // 1e-9 relative tolerance the sample holds there (elastic force still rising)...
        let o = outs[4066 - 1];
        assert!(matches(o.x_mm, 3.02) && matches(o.exx_pct, 1.51) && matches(o.eyy_pct, -0.453));
        assert!(
            o.x_mm / 200.0 > 0.0151,
            "the quirk's condition is reproduced: {}",
            o.x_mm
        );
        assert!(o.f_n > 106594.675, "t=81.32: F = {}", o.f_n);
        // ...and breaks one step later, at t = 81.34 s, x = 3.021667 mm (1.510833 %).
        let o = outs[4067 - 1];
        assert!(matches(o.x_mm, 3.021667), "x {}", o.x_mm);
        assert_eq!(o.f_n, 0.0);
        assert!(outs[4067..].iter().all(|o| o.f_n == 0.0), "broken for good");
        // The schedule switched where the reference says: peak at t = 24 s (x = 2.0), and
        // back to loading at t = 46.54 s, the first sample with F < 0.
        let peak = outs.iter().map(|o| o.x_mm).take(3000).fold(0.0, f64::max);
        assert!(matches(peak, 2.0), "{peak}");
        assert!(outs[2327 - 1].f_n < 0.0 && outs[2326 - 1].f_n > 0.0);
    }

    #[test]
    fn elastic_slope_is_rigidity_over_l0() {
        let mut m = FakeMachineModel::new();
        for _ in 0..500 {
            let o = m.step(0.01, 0.19); // up to 0.95 mm, below the 1.0 mm yield point
            assert!((o.f_n / o.x_mm - 8.4e6 / 200.0).abs() < 1e-6, "{o:?}");
        }
        assert_eq!(m.plastic_elongation_mm(), 0.0);
        // Past yield, the secant slope falls.
        let o = m.step(1.0, 0.5);
        assert!(o.f_n / o.x_mm < 8.4e6 / 200.0 - 1.0);
    }

    #[test]
    fn residual_plastic_elongation_after_a_2_mm_peak() {
        let mut m = FakeMachineModel::new();
        m.step(1.0, 2.0); // 2.0 mm in one step (max speed 5 mm/s)
        assert!(
            (m.plastic_elongation_mm() - 0.123106).abs() < 5e-7,
            "{}",
            m.plastic_elongation_mm()
        );
        // Unloading to zero force leaves exactly that elongation.
        let mut x = 2.0;
        while m.output().f_n > 0.0 {
            m.step(0.001, -1.0);
            x -= 0.001;
        }
        assert!(
            (m.position_mm() - 0.123106).abs() < 1.5e-3,
            "{} ({x})",
            m.position_mm()
        );
        assert!((crappy_plastic_law(0.01) * 200.0 - 0.123106).abs() < 5e-7);
        assert_eq!(crappy_plastic_law(0.005), 0.0);
    }

    #[test]
    fn position_mode_reaches_the_target_at_most_at_max_speed() {
        let mut m = FakeMachineModel::new().mode(FakeMachineMode::Position);
        assert_eq!(m.step(0.1, 1.0).x_mm, 0.5, "limited to 5 mm/s");
        assert_eq!(m.step(0.1, 0.7).x_mm, 0.7, "close enough: exactly reached");
        assert_eq!(m.step(0.1, 0.7).x_mm, 0.7, "stays");
        assert_eq!(m.step(1.0, -3.0).x_mm, 0.0, "never below 0");
    }

    #[test]
    fn speed_mode_clamps_and_never_goes_below_zero() {
        let mut m = FakeMachineModel::new();
        assert_eq!(m.step(1.0, 100.0).x_mm, 5.0 - 0.0, "clamped to max_speed");
        assert!(m.is_broken(), "5 mm is 2.5 %: broken");
        assert_eq!(m.output().f_n, 0.0);
        let mut m = FakeMachineModel::new();
        assert_eq!(m.step(1.0, -1.0).x_mm, 0.0);
        assert_eq!(m.step(0.0, 1.0).x_mm, 0.0, "dt 0: nothing moves");
        assert_eq!(m.step(-1.0, 1.0).x_mm, 0.0);
    }

    #[test]
    fn breaks_just_above_max_strain_not_at_it() {
        // Exactly 1.51 % reached in one step: holds.
        let mut m = FakeMachineModel::new();
        m.step(1.0, 3.02);
        assert!(!m.is_broken() && m.output().f_n > 0.0);
        // A float just above 1.51 % (accumulation error): holds too.
        let mut m = FakeMachineModel::new();
        m.step(1.0, 3.02 * (1.0 + 1e-12));
        assert!(m.position_mm() / 200.0 > 0.0151);
        assert!(!m.is_broken() && m.output().f_n > 0.0);
        // One part in 1e8 above: breaks.
        let mut m = FakeMachineModel::new();
        m.step(1.0, 3.02 * (1.0 + 1e-8));
        assert!(m.is_broken());
    }

    #[test]
    fn user_plastic_law_and_parameters() {
        let mut m = FakeMachineModel::new()
            .plastic_law(|v| v / 2.0)
            .rigidity(1000.0)
            .l0(100.0)
            .nu(0.5)
            .max_strain_pct(10.0);
        let o = m.step(1.0, 1.0);
        // strain 0.01 → plastic 0.005 → 0.5 mm; F = (1 − 0.5)/100·1000 = 5.
        assert!((o.f_n - 5.0).abs() < 1e-12, "{o:?}");
        assert!((o.exx_pct - 1.0).abs() < 1e-12 && (o.eyy_pct + 0.5).abs() < 1e-12);
        assert!(m.validate().is_ok());
        for bad in [
            FakeMachineModel::new().l0(0.0),
            FakeMachineModel::new().rigidity(-1.0),
            FakeMachineModel::new().max_speed(f64::NAN),
            FakeMachineModel::new().max_strain_pct(0.0),
            FakeMachineModel::new().nu(f64::INFINITY),
        ] {
            assert_eq!(bad.validate().unwrap_err().kind(), ErrorKind::Configuration);
        }
    }

    #[test]
    fn gaussian_noise_is_seeded_and_has_the_right_spread() {
        let mut a = Gaussian::new(7);
        let mut b = Gaussian::new(7);
        let xs: Vec<f64> = (0..20_000).map(|_| a.normal()).collect();
        let ys: Vec<f64> = (0..20_000).map(|_| b.normal()).collect();
        assert_eq!(xs, ys, "same seed, same noise");
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.03, "{mean}");
        assert!((var - 1.0).abs() < 0.05, "{var}");
        let mut c = Gaussian::new(8);
        assert_ne!(xs[0], c.normal());

        let mut noisy = FakeMachine::new().noise([("F(N)", 50.0)], 1);
        let s = noisy.sample(0.0, FakeMachineOutput::default());
        assert_ne!(s.get_f64("F(N)"), Some(0.0));
        assert_eq!(
            s.get_f64("x(mm)"),
            Some(0.0),
            "only the labels given are noisy"
        );
        let mut quiet = FakeMachine::new();
        let s = quiet.sample(
            1.5,
            FakeMachineOutput {
                x_mm: 1.0,
                f_n: 2.0,
                exx_pct: 3.0,
                eyy_pct: 4.0,
            },
        );
        let got: Vec<(String, f64)> = s
            .iter()
            .map(|(l, v)| (l.to_string(), v.as_f64().unwrap()))
            .collect();
        let want: Vec<(String, f64)> = [
            ("t(s)", 1.5),
            ("F(N)", 2.0),
            ("x(mm)", 1.0),
            ("Exx(%)", 3.0),
            ("Eyy(%)", 4.0),
        ]
        .iter()
        .map(|(l, v)| (l.to_string(), *v))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn block_checks_its_command_label_and_noise() {
        use crabby::Test;
        struct Cmd;
        impl Block for Cmd {
            fn output_labels(&self) -> Option<Vec<Label>> {
                Some(vec![Label::new("t(s)"), Label::new("cmd")])
            }
            fn step(&mut self, _: &mut Context) -> Result<Flow> {
                Ok(Flow::Stop)
            }
        }
        let graph = |m: FakeMachine| {
            let mut t = Test::new("fm");
            let c = t.add(Cmd);
            let m = t.add(m);
            t.link(c, m);
            t.describe()
        };
        let text = graph(FakeMachine::new()).unwrap();
        assert!(
            text.contains("noise: none") && text.contains("rigidity=8400000 N"),
            "{text}"
        );
        let e = graph(FakeMachine::new().cmd_label("speed")).unwrap_err();
        assert!(e.description().contains("'speed'"), "{e}");
        let e = graph(FakeMachine::new().noise([("F (N)", 1.0)], 0)).unwrap_err();
        assert!(e.description().contains("'F (N)'"), "{e}");
        let e = graph(FakeMachine::new().noise([("F(N)", -1.0)], 0)).unwrap_err();
        assert!(e.description().contains("sigma"), "{e}");
        let e = graph(FakeMachine::with_model(FakeMachineModel::new().l0(-2.0))).unwrap_err();
        assert!(e.description().contains("l0"), "{e}");
        assert_eq!(
            FakeMachine::new().default_settings().rate,
            Some(crabby::Rate::Hz(100.0))
        );
    }
}
