//! [`Path`]: one segment of a Generator's signal, and how it runs.

use crate::condition::{Condition, IntoCondition};
use crabby::{Columns, ErrorKind, Label};
use std::fmt;

/// One segment of a [`Generator`](crate::Generator)'s signal, built in Rust with builder
/// methods. Every path also ends early when its [`until`](Path::until) condition holds.
///
/// | constructor | command | ends |
/// |---|---|---|
/// | [`constant(v)`](Path::constant), [`hold()`](Path::hold) | `v` (or the previous command) | `until` |
/// | [`ramp(speed)`](Path::ramp) + [`from`](Path::from) | `from + speed·(t − t_start)` | `until` |
/// | [`sine(freq, amplitude)`](Path::sine) + [`offset`](Path::offset), [`phase`](Path::phase) | `sin(2π·freq·(t − t_start) − phase)·amplitude/2 + offset` (amplitude peak to peak) | `until` |
/// | [`cyclic(v1, c1, v2, c2, cycles)`](Path::cyclic) | `v1` until `c1`, then `v2` until `c2`, … | after `2·cycles` phases (0 = never) |
/// | [`cyclic_ramp(s1, c1, s2, c2, cycles)`](Path::cyclic_ramp) + [`from`](Path::from) | continuous ramp, slope `s1` until `c1`, then `s2` until `c2`, … | same |
/// | [`conditional(c1, v1, c2, v2)`](Path::conditional) + [`otherwise`](Path::otherwise) | `v1` if `c1`, else `v2` if `c2`, else `v0` (default 0) | `until` |
/// | [`integrator(label, inertia)`](Path::integrator) + [`from`](Path::from), [`time_label`](Path::time_label) | `v −= ∫label·dt / inertia` over what was received | `until` |
/// | [`custom_file(file)`](Path::custom_file), [`points`](Path::points) | `t,value` table, linearly interpolated at `t − t_start` | after its last time |
///
/// `t_start` is the time of the Generator loop in which the previous path ended (the
/// test's start for the first path). In `cyclic` and `cyclic_ramp`, a `delay=` condition
/// counts from the start of the current phase.
///
/// Mistakes (a condition that does not parse, a non-finite number, an unreadable file) are
/// kept and reported by [`Generator::new`](crate::Generator::new) with the path's index.
///
/// ```
/// use crabby_blocks::Path;
/// let paths = [
///     Path::ramp(5.0 / 60.0).from(0.0).until("x(mm) >= 2"),
///     Path::ramp(-5.0 / 60.0).until("F(N) < 0"),
///     Path::cyclic(1.0, "F(N) > 50", 0.0, "delay=3", 2.5),
///     Path::sine(0.5, 2.0).offset(1.0).until("delay=10"),
/// ];
/// ```
#[derive(Debug, Clone)]
pub struct Path {
    pub(crate) kind: PathKind,
    pub(crate) until: Option<Condition>,
    pub(crate) error: Option<(ErrorKind, String)>,
}

#[derive(Debug, Clone)]
pub(crate) enum PathKind {
    Constant {
        value: Option<f64>,
    },
    Ramp {
        speed: f64,
        from: Option<f64>,
    },
    Sine {
        freq: f64,
        amplitude: f64,
        offset: f64,
        phase: f64,
    },
    Cyclic {
        values: [f64; 2],
        conditions: [Condition; 2],
        phases: Option<u64>,
    },
    CyclicRamp {
        speeds: [f64; 2],
        conditions: [Condition; 2],
        phases: Option<u64>,
        from: Option<f64>,
    },
    Conditional {
        conditions: [Condition; 2],
        values: [f64; 2],
        otherwise: f64,
    },
    Integrator {
        func_label: Label,
        time_label: Label,
        inertia: f64,
        from: Option<f64>,
    },
    Custom {
        source: String,
        points: Vec<(f64, f64)>,
    },
}

/// A placeholder for a condition that did not parse (the path carries the error, and the
/// Generator refuses it before it can run).
fn never() -> Condition {
    Condition::custom(|_| false)
}

impl Path {
    fn new(kind: PathKind) -> Path {
        Path {
            kind,
            until: None,
            error: None,
        }
    }

    fn fail(&mut self, kind: ErrorKind, msg: String) {
        if self.error.is_none() {
            self.error = Some((kind, msg));
        }
    }

    fn finite(mut self, what: &str, v: f64) -> Path {
        if !v.is_finite() {
            self.fail(
                ErrorKind::Configuration,
                format!("{what} must be a finite number (got {v})"),
            );
        }
        self
    }

    fn condition(&mut self, c: impl IntoCondition) -> Condition {
        match c.into_condition() {
            Ok(c) => c,
            Err(e) => {
                self.fail(e.kind(), e.description().to_owned());
                never()
            }
        }
    }

    fn phases(mut self, cycles: f64) -> Path {
        let phases = if cycles == 0.0 {
            None
        } else if !(cycles.is_finite() && cycles > 0.0 && (2.0 * cycles).fract() == 0.0) {
            self.fail(
                ErrorKind::Configuration,
                format!("cycles must be a whole or half number of cycles, or 0 for endless (got {cycles})"),
            );
            None
        } else {
            Some((2.0 * cycles) as u64)
        };
        match &mut self.kind {
            PathKind::Cyclic { phases: p, .. } | PathKind::CyclicRamp { phases: p, .. } => {
                *p = phases
            }
            _ => {}
        }
        self
    }

    /// A constant command `value`.
    pub fn constant(value: f64) -> Path {
        Path::new(PathKind::Constant { value: Some(value) }).finite("the constant value", value)
    }

    /// Holds the previous path's last command (not allowed as the first path).
    pub fn hold() -> Path {
        Path::new(PathKind::Constant { value: None })
    }

    /// A ramp of `speed` units per second, from the previous command unless
    /// [`from`](Path::from) is given (required for the first path).
    pub fn ramp(speed: f64) -> Path {
        Path::new(PathKind::Ramp { speed, from: None }).finite("the ramp speed", speed)
    }

    /// A sine of frequency `freq` (Hz) and peak-to-peak `amplitude`, centred on 0 unless
    /// [`offset`](Path::offset) is given. It never ends unless [`until`](Path::until) is set.
    pub fn sine(freq: f64, amplitude: f64) -> Path {
        Path::new(PathKind::Sine {
            freq,
            amplitude,
            offset: 0.0,
            phase: 0.0,
        })
        .finite("the sine frequency", freq)
        .finite("the sine amplitude", amplitude)
    }

    /// `value1` until `condition1`, then `value2` until `condition2`, for `cycles` cycles
    /// (half cycles allowed: 2.5 ends after `value1`; 0 repeats forever).
    pub fn cyclic(
        value1: f64,
        condition1: impl IntoCondition,
        value2: f64,
        condition2: impl IntoCondition,
        cycles: f64,
    ) -> Path {
        let mut p = Path::new(PathKind::Constant { value: None });
        let conditions = [p.condition(condition1), p.condition(condition2)];
        p.kind = PathKind::Cyclic {
            values: [value1, value2],
            conditions,
            phases: None,
        };
        p.finite("value1", value1)
            .finite("value2", value2)
            .phases(cycles)
    }

    /// A continuous ramp of slope `speed1` until `condition1`, then `speed2` until
    /// `condition2`, for `cycles` cycles (as [`cyclic`](Path::cyclic)). Starts from the
    /// previous command unless [`from`](Path::from) is given.
    pub fn cyclic_ramp(
        speed1: f64,
        condition1: impl IntoCondition,
        speed2: f64,
        condition2: impl IntoCondition,
        cycles: f64,
    ) -> Path {
        let mut p = Path::new(PathKind::Constant { value: None });
        let conditions = [p.condition(condition1), p.condition(condition2)];
        p.kind = PathKind::CyclicRamp {
            speeds: [speed1, speed2],
            conditions,
            phases: None,
            from: None,
        };
        p.finite("speed1", speed1)
            .finite("speed2", speed2)
            .phases(cycles)
    }

    /// `value1` while `condition1` holds, else `value2` while `condition2` holds, else the
    /// [`otherwise`](Path::otherwise) value (0 by default). In a loop where nothing was
    /// received, the previous command is repeated. It never ends unless
    /// [`until`](Path::until) is set.
    pub fn conditional(
        condition1: impl IntoCondition,
        value1: f64,
        condition2: impl IntoCondition,
        value2: f64,
    ) -> Path {
        let mut p = Path::new(PathKind::Constant { value: None });
        let conditions = [p.condition(condition1), p.condition(condition2)];
        p.kind = PathKind::Conditional {
            conditions,
            values: [value1, value2],
            otherwise: 0.0,
        };
        p.finite("value1", value1).finite("value2", value2)
    }

    /// Integrates the received `func_label` over time (`time_label`, default `t(s)`):
    /// `v(t) = v(t_start) − ∫ func dt / inertia`, as Crappy's `Integrator`. Starts from the
    /// previous command unless [`from`](Path::from) is given.
    pub fn integrator(func_label: impl Into<Label>, inertia: f64) -> Path {
        let mut p = Path::new(PathKind::Integrator {
            func_label: func_label.into(),
            time_label: Label::new("t(s)"),
            inertia,
            from: None,
        });
        if !(inertia.is_finite() && inertia != 0.0) {
            p.fail(
                ErrorKind::Configuration,
                format!("the inertia must be finite and not 0 (got {inertia})"),
            );
        }
        p
    }

    /// A `t,value` text file (comma separated), read now: blank lines and lines starting
    /// with `#` are skipped, times must increase strictly. The command is interpolated
    /// linearly at the time since the path started and held at the first value before the
    /// first time; the path ends after the last time.
    pub fn custom_file(file: impl AsRef<std::path::Path>) -> Path {
        Path::custom_file_with_delimiter(file, ',')
    }

    /// [`custom_file`](Path::custom_file) with another delimiter (`';'`, `'\t'`, …; `' '`
    /// accepts any run of whitespace).
    pub fn custom_file_with_delimiter(file: impl AsRef<std::path::Path>, delimiter: char) -> Path {
        let file = file.as_ref();
        let source = file.display().to_string();
        let mut p = Path::new(PathKind::Custom {
            source: source.clone(),
            points: Vec::new(),
        });
        match std::fs::read_to_string(file) {
            Err(e) => p.fail(
                ErrorKind::Io,
                format!("cannot read the custom path file '{source}': {e}"),
            ),
            Ok(text) => match super::custom::parse_table(&text, delimiter) {
                Ok(points) => p.kind = PathKind::Custom { source, points },
                Err(why) => p.fail(
                    ErrorKind::Configuration,
                    format!("custom path file '{source}' {why}"),
                ),
            },
        }
        p
    }

    /// A custom path from `(time, value)` points given in the program (same rules as a
    /// file).
    pub fn points(points: impl IntoIterator<Item = (f64, f64)>) -> Path {
        let points: Vec<(f64, f64)> = points.into_iter().collect();
        let mut p = Path::new(PathKind::Custom {
            source: format!("{} points", points.len()),
            points: Vec::new(),
        });
        match super::custom::validate(&points) {
            Ok(()) => {
                if let PathKind::Custom {
                    points: p_points, ..
                } = &mut p.kind
                {
                    *p_points = points;
                }
            }
            Err(why) => p.fail(ErrorKind::Configuration, format!("custom points: {why}")),
        }
        p
    }

    /// Ends the path when `condition` holds (text such as `"F(N) > 50"`, or a
    /// [`Condition`]).
    pub fn until(mut self, condition: impl IntoCondition) -> Path {
        let c = self.condition(condition);
        self.until = Some(c);
        self
    }

    /// The start value of a `ramp`, `cyclic_ramp` or `integrator`, instead of the previous
    /// command.
    pub fn from(mut self, value: f64) -> Path {
        match &mut self.kind {
            PathKind::Ramp { from, .. }
            | PathKind::CyclicRamp { from, .. }
            | PathKind::Integrator { from, .. } => *from = Some(value),
            _ => self.fail(
                ErrorKind::Configuration,
                format!(
                    "from() applies to ramp, cyclic_ramp and integrator paths, not {}",
                    self.kind.name()
                ),
            ),
        }
        self.finite("the start value (from)", value)
    }

    /// The offset of a `sine`.
    pub fn offset(mut self, value: f64) -> Path {
        match &mut self.kind {
            PathKind::Sine { offset, .. } => *offset = value,
            _ => self.fail(
                ErrorKind::Configuration,
                format!("offset() applies to sine paths, not {}", self.kind.name()),
            ),
        }
        self.finite("the sine offset", value)
    }

    /// The phase of a `sine`, in radians (subtracted, as in Crappy).
    pub fn phase(mut self, radians: f64) -> Path {
        match &mut self.kind {
            PathKind::Sine { phase, .. } => *phase = radians,
            _ => self.fail(
                ErrorKind::Configuration,
                format!("phase() applies to sine paths, not {}", self.kind.name()),
            ),
        }
        self.finite("the sine phase", radians)
    }

    /// The value of a `conditional` path when neither condition holds (default 0).
    pub fn otherwise(mut self, value: f64) -> Path {
        match &mut self.kind {
            PathKind::Conditional { otherwise, .. } => *otherwise = value,
            _ => self.fail(
                ErrorKind::Configuration,
                format!(
                    "otherwise() applies to conditional paths, not {}",
                    self.kind.name()
                ),
            ),
        }
        self.finite("the otherwise value", value)
    }

    /// The time label an `integrator` integrates over (default `t(s)`).
    pub fn time_label(mut self, label: impl Into<Label>) -> Path {
        match &mut self.kind {
            PathKind::Integrator { time_label, .. } => *time_label = label.into(),
            _ => self.fail(
                ErrorKind::Configuration,
                format!(
                    "time_label() applies to integrator paths, not {}",
                    self.kind.name()
                ),
            ),
        }
        self
    }

    /// The kind of path: `constant`, `ramp`, `sine`, ...
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }

    /// Every condition of the path with the labels it reads, plus the labels an
    /// integrator reads (for the graph check).
    pub(crate) fn needs(&self) -> Vec<(String, Label)> {
        let mut out = Vec::new();
        let mut conds: Vec<&Condition> = self.until.iter().collect();
        match &self.kind {
            PathKind::Cyclic { conditions, .. }
            | PathKind::CyclicRamp { conditions, .. }
            | PathKind::Conditional { conditions, .. } => conds.extend(conditions.iter()),
            PathKind::Integrator {
                func_label,
                time_label,
                ..
            } => {
                out.push(("integrator input".to_owned(), func_label.clone()));
                out.push(("integrator time".to_owned(), time_label.clone()));
            }
            _ => {}
        }
        for c in conds {
            for l in c.labels() {
                out.push((format!("condition \"{c}\""), l));
            }
        }
        out
    }

    /// The first command this path produces when started after `previous`, if it can be
    /// known (`None`: the path needs a previous command and there is none).
    pub(crate) fn start_value(&self, previous: Option<f64>) -> Option<f64> {
        match &self.kind {
            PathKind::Constant { value } => value.or(previous),
            PathKind::Ramp { from, .. }
            | PathKind::CyclicRamp { from, .. }
            | PathKind::Integrator { from, .. } => from.or(previous),
            PathKind::Sine {
                amplitude,
                offset,
                phase,
                ..
            } => Some((-phase).sin() * amplitude / 2.0 + offset),
            PathKind::Cyclic { values, .. } => Some(values[0]),
            PathKind::Conditional { otherwise, .. } => Some(*otherwise),
            PathKind::Custom { points, .. } => points.first().map(|p| p.1),
        }
    }

    /// Starts running this path at `t0`, `previous` being the last command.
    pub(crate) fn start(&self, t0: f64, previous: f64) -> Running {
        Running {
            t0,
            phase: 0,
            phase_t0: t0,
            value: self.start_value(Some(previous)).unwrap_or(previous),
            last_point: None,
        }
    }

    /// One loop of this path: the command, or `None` when the path has ended.
    pub(crate) fn step(&self, st: &mut Running, now: f64, data: &Columns) -> Option<f64> {
        if let Some(c) = &self.until {
            if c.eval(now, st.t0, data) {
                return None;
            }
        }
        match &self.kind {
            PathKind::Constant { .. } => Some(st.value),
            PathKind::Ramp { speed, .. } => Some(st.value + (now - st.t0) * speed),
            PathKind::Sine {
                freq,
                amplitude,
                offset,
                phase,
            } => Some(
                (2.0 * std::f64::consts::PI * freq * (now - st.t0) - phase).sin() * amplitude / 2.0
                    + offset,
            ),
            PathKind::Cyclic {
                values,
                conditions,
                phases,
            } => {
                if conditions[(st.phase % 2) as usize].eval(now, st.phase_t0, data) {
                    st.phase += 1;
                    st.phase_t0 = now;
                    if phases.is_some_and(|n| st.phase >= n) {
                        return None;
                    }
                }
                Some(values[(st.phase % 2) as usize])
            }
            PathKind::CyclicRamp {
                speeds,
                conditions,
                phases,
                ..
            } => {
                if conditions[(st.phase % 2) as usize].eval(now, st.phase_t0, data) {
                    st.value += speeds[(st.phase % 2) as usize] * (now - st.phase_t0);
                    st.phase += 1;
                    st.phase_t0 = now;
                    if phases.is_some_and(|n| st.phase >= n) {
                        return None;
                    }
                }
                Some(st.value + speeds[(st.phase % 2) as usize] * (now - st.phase_t0))
            }
            PathKind::Conditional {
                conditions,
                values,
                otherwise,
            } => {
                if !data.is_empty() {
                    st.value = if conditions[0].eval(now, st.t0, data) {
                        values[0]
                    } else if conditions[1].eval(now, st.t0, data) {
                        values[1]
                    } else {
                        *otherwise
                    };
                }
                Some(st.value)
            }
            PathKind::Integrator {
                func_label,
                time_label,
                inertia,
                ..
            } => {
                if let (Some(ts), Some(fs)) = (data.get(time_label), data.get(func_label)) {
                    let mut prev = st.last_point;
                    let mut integral = 0.0;
                    for (t, f) in ts.iter().zip(fs) {
                        let (Some(t), Some(f)) = (t.as_f64(), f.as_f64()) else {
                            continue;
                        };
                        if let Some((t_prev, f_prev)) = prev {
                            integral += (t - t_prev) * (f + f_prev) / 2.0;
                        }
                        prev = Some((t, f));
                    }
                    st.last_point = prev;
                    st.value -= integral / inertia;
                }
                Some(st.value)
            }
            PathKind::Custom { points, .. } => {
                let e = now - st.t0;
                let last = points.last().map_or(0.0, |p| p.0);
                if e > last {
                    return None;
                }
                Some(super::custom::interpolate(points, e))
            }
        }
    }
}

/// The running state of the current path.
#[derive(Debug, Clone)]
pub(crate) struct Running {
    /// When the path started.
    pub(crate) t0: f64,
    /// Current phase of a cyclic path.
    phase: u64,
    /// When the current phase started.
    phase_t0: f64,
    /// Constant value, ramp start (or last peak), integrator value, conditional output.
    value: f64,
    /// The integrator's last (time, value) of the previous loop.
    last_point: Option<(f64, f64)>,
}

impl PathKind {
    fn name(&self) -> &'static str {
        match self {
            PathKind::Constant { value: Some(_) } => "constant",
            PathKind::Constant { value: None } => "hold",
            PathKind::Ramp { .. } => "ramp",
            PathKind::Sine { .. } => "sine",
            PathKind::Cyclic { .. } => "cyclic",
            PathKind::CyclicRamp { .. } => "cyclic_ramp",
            PathKind::Conditional { .. } => "conditional",
            PathKind::Integrator { .. } => "integrator",
            PathKind::Custom { .. } => "custom",
        }
    }
}

fn cycles_text(phases: &Option<u64>) -> String {
    match phases {
        None => "endless".to_owned(),
        Some(n) => format!("{} cycles", *n as f64 / 2.0),
    }
}

fn from_text(from: &Option<f64>) -> String {
    match from {
        Some(v) => format!("from {v}"),
        None => "from the previous command".to_owned(),
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            PathKind::Constant { value: Some(v) } => write!(f, "constant {v}")?,
            PathKind::Constant { value: None } => write!(f, "hold the previous command")?,
            PathKind::Ramp { speed, from } => write!(f, "ramp {speed}/s {}", from_text(from))?,
            PathKind::Sine {
                freq,
                amplitude,
                offset,
                phase,
            } => write!(
                f,
                "sine {freq} Hz, {amplitude} peak to peak, offset {offset}, phase {phase} rad"
            )?,
            PathKind::Cyclic {
                values,
                conditions,
                phases,
            } => write!(
                f,
                "cyclic {} until {}, then {} until {}, {}",
                values[0],
                conditions[0],
                values[1],
                conditions[1],
                cycles_text(phases)
            )?,
            PathKind::CyclicRamp {
                speeds,
                conditions,
                phases,
                from,
            } => write!(
                f,
                "cyclic ramp {}/s until {}, then {}/s until {}, {}, {}",
                speeds[0],
                conditions[0],
                speeds[1],
                conditions[1],
                cycles_text(phases),
                from_text(from)
            )?,
            PathKind::Conditional {
                conditions,
                values,
                otherwise,
            } => write!(
                f,
                "conditional {} if {}, else {} if {}, else {otherwise}",
                values[0], conditions[0], values[1], conditions[1]
            )?,
            PathKind::Integrator {
                func_label,
                time_label,
                inertia,
                from,
            } => write!(
                f,
                "integrator of {func_label} over {time_label}, inertia {inertia}, {}",
                from_text(from)
            )?,
            PathKind::Custom { source, points } => {
                write!(f, "custom {source} ({} points)", points.len())?
            }
        }
        if let Some(c) = &self.until {
            write!(f, " until {c}")?;
        }
        Ok(())
    }
}
