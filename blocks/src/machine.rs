//! [`Machine`]: drives one or more [`Actuator`]s, each configured by an
//! [`ActuatorConfig`] (speed or position mode from a command label, optional speed-command
//! label, labels for the position and speed read back).
//!
//! [`ActuatorConfig<A>`](ActuatorConfig) is a typed builder: position mode exists only for
//! an `A` that implements [`Positioner`], [`position_label`](ActuatorConfig::position_label)
//! only for a [`PositionFeedback`], [`speed_label`](ActuatorConfig::speed_label) only for a
//! [`SpeedFeedback`]. Asking a motor for what it cannot do does not compile:
//!
//! ```compile_fail,E0277
//! use crabby::hardware::Actuator;
//! use crabby_blocks::ActuatorConfig;
//! struct SpeedOnly;
//! impl Actuator for SpeedOnly {
//!     fn set_speed(&mut self, _: f64) -> crabby::Result<()> { Ok(()) }
//! }
//! // error: `SpeedOnly` does not implement `Positioner`
//! let c = ActuatorConfig::position(SpeedOnly, "x");
//! ```
//!
//! [`Machine::actuator`] then erases the driver into an object holding the capabilities the
//! configuration uses, taken from the driver's trait impls.
//!
//! Safety first: in `finish`, which runs whatever ended the test (normal end, an error,
//! Ctrl+C, another Block failing), every opened actuator is stopped, then closed. A stop
//! that fails, panics or hangs is logged and the others are still stopped.
//!
//! Each actuator is stopped on a thread of its own (threads are fine here: the Block's
//! process was forked long before), all at once, and `finish` waits for them at most
//! [`Machine::stop_timeout`] (1 s by default). A driver whose `stop` has not returned by then
//! is reported as an error naming the actuator and abandoned (its thread is left to the
//! process's exit; it is not closed, its driver being still in use); the others are
//! stopped and closed whatever it does. `close` is bounded the same way.
//!
//! `finish` has the test's finish grace (3 s by default) before the Block is killed: keep
//! twice the stop timeout below it (stop, then close), and the drivers' I/O timeouts (e.g.
//! the timeout of `crabby_hardware::serial::SerialConfig`, 1 s by default) below the stop
//! timeout, or raise the grace with `Test::grace`.

use crate::io_block::StatusTracker;
use crate::reconnect::{Attempt, Reconnect, Reconnector};
use crabby::hardware::{
    Actuator, DeviceState, PositionFeedback, Positioner, SpeedFeedback, Status,
};
use crabby::{Block, Context, Error, ErrorKind, Flow, GraphView, Label, Result, Sample};
use std::time::{Duration, Instant};

/// How an actuator follows its command label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveMode {
    /// The command is a speed ([`Actuator::set_speed`]).
    Speed,
    /// The command is a position ([`Positioner::set_position`]).
    Position,
}

/// One actuator of a [`Machine`] and its labels: a typed builder whose methods exist only
/// for an `A` with the matching capability (see the module docs).
pub struct ActuatorConfig<A: Actuator> {
    actuator: A,
    mode: DriveMode,
    cmd_label: Label,
    speed_cmd_label: Option<Label>,
    speed: Option<f64>,
    position_label: Option<Label>,
    speed_label: Option<Label>,
    status_label: Option<Label>,
    ops: Ops<A>,
}

/// The capability methods an [`ActuatorConfig`] uses, taken from `A`'s trait impls by the
/// builder methods that need them.
struct Ops<A> {
    set_position: Option<SetPosition<A>>,
    position: Option<fn(&mut A) -> Result<f64>>,
    position_and_speed: Option<PositionAndSpeed<A>>,
    speed: Option<fn(&mut A) -> Result<f64>>,
}

/// [`Positioner::set_position`] of `A`.
type SetPosition<A> = fn(&mut A, f64, Option<f64>) -> Result<()>;
/// [`PositionFeedback::position_and_speed`] of `A`.
type PositionAndSpeed<A> = fn(&mut A) -> Result<(f64, Option<f64>)>;

impl<A> Default for Ops<A> {
    fn default() -> Self {
        Ops {
            set_position: None,
            position: None,
            position_and_speed: None,
            speed: None,
        }
    }
}

impl<A: Actuator> std::fmt::Debug for ActuatorConfig<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActuatorConfig")
            .field("actuator", &self.actuator.name())
            .field("mode", &self.mode)
            .field("cmd_label", &self.cmd_label)
            .field("speed_cmd_label", &self.speed_cmd_label)
            .field("speed", &self.speed)
            .field("position_label", &self.position_label)
            .field("speed_label", &self.speed_label)
            .finish()
    }
}

impl<A: Actuator> ActuatorConfig<A> {
    /// Drives `actuator` in speed from `cmd_label`.
    pub fn speed(actuator: A, cmd_label: impl Into<Label>) -> Self {
        ActuatorConfig {
            actuator,
            mode: DriveMode::Speed,
            cmd_label: cmd_label.into(),
            speed_cmd_label: None,
            speed: None,
            position_label: None,
            speed_label: None,
            status_label: None,
            ops: Ops::default(),
        }
    }
    /// Sends the actuator's status (state and text) under this label.
    pub fn status_label(mut self, l: impl Into<Label>) -> Self {
        self.status_label = Some(l.into());
        self
    }
}

impl<A: Positioner> ActuatorConfig<A> {
    /// Drives `actuator` in position from `cmd_label`.
    pub fn position(actuator: A, cmd_label: impl Into<Label>) -> Self {
        let mut c = Self::speed(actuator, cmd_label);
        c.mode = DriveMode::Position;
        c.ops.set_position = Some(A::set_position);
        c
    }
    /// In position mode: the label that sets the speed of the moves.
    pub fn speed_cmd_label(mut self, l: impl Into<Label>) -> Self {
        self.speed_cmd_label = Some(l.into());
        self
    }
    /// In position mode: the speed of the moves until a speed command arrives (above 0,
    /// checked before the test starts).
    pub fn move_speed(mut self, v: f64) -> Self {
        self.speed = Some(v);
        self
    }
}

impl<A: PositionFeedback> ActuatorConfig<A> {
    /// Sends the position read back under this label.
    pub fn position_label(mut self, l: impl Into<Label>) -> Self {
        self.position_label = Some(l.into());
        self.ops.position = Some(A::position);
        self.ops.position_and_speed = Some(A::position_and_speed);
        self
    }
}

impl<A: SpeedFeedback> ActuatorConfig<A> {
    /// Sends the speed read back under this label.
    pub fn speed_label(mut self, l: impl Into<Label>) -> Self {
        self.speed_label = Some(l.into());
        self.ops.speed = Some(A::speed);
        self
    }
}

/// An actuator and the capabilities its configuration uses, erased.
trait Driven: Send {
    fn base(&self) -> &dyn Actuator;
    fn base_mut(&mut self) -> &mut dyn Actuator;
    fn set_position(&mut self, position: f64, speed: Option<f64>) -> Result<()>;
    /// The position and/or the speed, as asked, in one exchange where the driver can.
    fn read_back(&mut self, position: bool, speed: bool) -> Result<(Option<f64>, Option<f64>)>;
}

struct Typed<A> {
    actuator: A,
    ops: Ops<A>,
}

impl<A: Actuator> Typed<A> {
    fn missing(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::Internal,
            format!(
                "actuator '{}' was not configured to {what}; the Machine should not have asked",
                self.actuator.name()
            ),
        )
    }
}

impl<A: Actuator> Driven for Typed<A> {
    fn base(&self) -> &dyn Actuator {
        &self.actuator
    }
    fn base_mut(&mut self) -> &mut dyn Actuator {
        &mut self.actuator
    }
    fn set_position(&mut self, position: f64, speed: Option<f64>) -> Result<()> {
        match self.ops.set_position {
            Some(f) => f(&mut self.actuator, position, speed),
            None => Err(self.missing("be driven in position")),
        }
    }
    fn read_back(&mut self, position: bool, speed: bool) -> Result<(Option<f64>, Option<f64>)> {
        let (p, v) = match (position, speed) {
            (true, true) => {
                let (Some(both), Some(sp)) = (self.ops.position_and_speed, self.ops.speed) else {
                    return Err(self.missing("read its position and speed back"));
                };
                let (p, v) = both(&mut self.actuator)?;
                let v = match v {
                    Some(v) => v,
                    None => sp(&mut self.actuator)?,
                };
                (Some(p), Some(v))
            }
            (true, false) => {
                let Some(f) = self.ops.position else {
                    return Err(self.missing("read its position back"));
                };
                (Some(f(&mut self.actuator)?), None)
            }
            (false, true) => {
                let Some(f) = self.ops.speed else {
                    return Err(self.missing("read its speed back"));
                };
                (None, Some(f(&mut self.actuator)?))
            }
            (false, false) => (None, None),
        };
        Ok((p, v))
    }
}

/// One actuator as the [`Machine`] holds it.
struct Axis {
    actuator: Box<dyn Driven>,
    mode: DriveMode,
    cmd_label: Label,
    speed_cmd_label: Option<Label>,
    speed: Option<f64>,
    position_label: Option<Label>,
    speed_label: Option<Label>,
    status_label: Option<Label>,
}

impl<A: Actuator> From<ActuatorConfig<A>> for Axis {
    fn from(c: ActuatorConfig<A>) -> Self {
        Axis {
            actuator: Box::new(Typed {
                actuator: c.actuator,
                ops: c.ops,
            }),
            mode: c.mode,
            cmd_label: c.cmd_label,
            speed_cmd_label: c.speed_cmd_label,
            speed: c.speed,
            position_label: c.position_label,
            speed_label: c.speed_label,
            status_label: c.status_label,
        }
    }
}

impl std::fmt::Debug for Axis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActuatorConfig")
            .field("actuator", &self.actuator.base().name())
            .field("mode", &self.mode)
            .field("cmd_label", &self.cmd_label)
            .field("speed_cmd_label", &self.speed_cmd_label)
            .field("speed", &self.speed)
            .field("position_label", &self.position_label)
            .field("speed_label", &self.speed_label)
            .finish()
    }
}

/// Per-actuator state at run time.
#[derive(Debug)]
struct Running {
    opened: bool,
    tracker: StatusTracker,
    link: Reconnector,
}

/// Drives one or more actuators from command labels and sends what they read back.
///
/// In `begin` (right after the common start), calls [`Actuator::poll`] on every actuator,
/// so a controller that needs to be (re)started after the wait at the start barrier is
/// (e.g. the Pololu Tic leaves safe start). Each loop: receives the latest samples; for each
/// actuator, calls [`Actuator::poll`] (keep-alive, fault check), updates its move speed
/// from `speed_cmd_label`, and if `cmd_label` arrived calls `set_speed(cmd)` or
/// `set_position(cmd, speed)`; then reads the configured position and speed labels and
/// sends them with `t(s)`, the middle of the reads (serial reads take milliseconds).
/// While the test is paused ([`Context::paused`]), every actuator is stopped once and held
/// stopped (commands arriving meanwhile are not applied, positions keep being sent); at the
/// resume, the latest command of each actuator is applied again (an actuator lost when the
/// pause began and back during it is stopped as it comes back). In `finish`, every opened
/// actuator is stopped then closed, all at once on threads of their own, each bounded by
/// [`stop_timeout`](Machine::stop_timeout); a stop or close that fails, panics or hangs is
/// reported naming the actuator and does not keep the others from being stopped.
///
/// ```no_run
/// use crabby::Test;
/// use crabby_blocks::{ActuatorConfig, Machine};
/// # use crabby::hardware::Actuator;
/// # struct Motor;
/// # impl Actuator for Motor { fn set_speed(&mut self, _: f64) -> crabby::Result<()> { Ok(()) } }
/// let mut test = Test::new("motor");
/// let m = test.add(Machine::new().actuator(ActuatorConfig::speed(Motor, "cmd")));
/// ```
#[derive(Debug, Default)]
pub struct Machine {
    actuators: Vec<Axis>,
    time_label: Option<Label>,
    spam: bool,
    stop_timeout: Option<Duration>,
    reconnect: Option<Reconnect>,
    run: Vec<Running>,
    holding: bool,
}

impl Machine {
    /// A Machine with no actuator yet.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds an actuator.
    pub fn actuator<A: Actuator>(mut self, a: ActuatorConfig<A>) -> Self {
        self.actuators.push(a.into());
        self
    }
    /// The time label (default `t(s)`).
    pub fn time_label(mut self, l: impl Into<Label>) -> Self {
        self.time_label = Some(l.into());
        self
    }
    /// The default of [`stop_timeout`](Machine::stop_timeout): 1 s.
    pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(1);

    /// How long `finish` waits for the actuators' `stop` (all stopped at once), and then
    /// for their `close`, before it reports the ones that have not returned and abandons them
    /// (default [`DEFAULT_STOP_TIMEOUT`](Machine::DEFAULT_STOP_TIMEOUT)). Above 0; keep twice
    /// it below the test's finish grace.
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = Some(timeout);
        self
    }
    /// When an actuator is lost mid-test (an error of kind
    /// [`Communication`](ErrorKind::Communication) from any call: the port vanished),
    /// closes it and opens it again after `backoff` (doubling after each failed opening,
    /// bounded), at most `attempts` openings per actuator over the test, instead of failing
    /// the Block (the default). Meanwhile the other actuators go on, the lost one's labels
    /// are not sent (a gap, logged) and its commands are not applied; once back it is polled
    /// (as in `begin`) and the latest commands are applied again (while the test is paused,
    /// it is stopped instead, and driven again at the resume). An actuator still lost at
    /// the end is opened once more to be stopped (bounded by
    /// [`stop_timeout`](Machine::stop_timeout)); if that fails, `finish` reports it. The
    /// losses, reconnections and failed attempts are counted in the run report. See
    /// [`crate::reconnect`].
    pub fn reconnect(mut self, attempts: u32, backoff: Duration) -> Self {
        self.reconnect = Some(Reconnect::new(attempts, backoff));
        self
    }
    /// Re-applies the latest command every loop, not only when a new one arrives.
    pub fn spam(mut self, yes: bool) -> Self {
        self.spam = yes;
        self
    }

    fn time(&self) -> Label {
        self.time_label
            .clone()
            .unwrap_or_else(|| Label::new("t(s)"))
    }

    fn read_labels(&self) -> Vec<Label> {
        let mut v = Vec::new();
        for a in &self.actuators {
            v.extend(a.position_label.iter().cloned());
            v.extend(a.speed_label.iter().cloned());
            v.extend(a.status_label.iter().cloned());
        }
        v
    }

    fn apply(&mut self, i: usize, received: &Sample) -> Result<()> {
        let a = &mut self.actuators[i];
        if let Some(l) = &a.speed_cmd_label {
            if let Some(v) = received.get(l.as_str()) {
                a.speed = Some(v.as_f64().ok_or_else(|| {
                    Error::config(format!(
                        "speed command label '{l}' carries {v:?}, not a number"
                    ))
                })?);
            }
        }
        if let Some(v) = received.get(a.cmd_label.as_str()) {
            let c = v.as_f64().ok_or_else(|| {
                Error::config(format!(
                    "command label '{}' carries {v:?}, not a number",
                    a.cmd_label
                ))
            })?;
            match a.mode {
                DriveMode::Speed => a.actuator.base_mut().set_speed(c)?,
                DriveMode::Position => a.actuator.set_position(c, a.speed)?,
            }
        }
        Ok(())
    }

    fn read_back(&mut self, i: usize, s: &mut Sample) -> Result<()> {
        let a = &mut self.actuators[i];
        if a.position_label.is_some() || a.speed_label.is_some() {
            // One exchange for both where the driver can (PositionFeedback::position_and_speed).
            let (p, v) = a
                .actuator
                .read_back(a.position_label.is_some(), a.speed_label.is_some())?;
            if let (Some(l), Some(p)) = (&a.position_label, p) {
                s.insert(l.clone(), p);
            }
            if let (Some(l), Some(v)) = (&a.speed_label, v) {
                s.insert(l.clone(), v);
            }
        }
        if let Some(l) = &a.status_label {
            s.insert(
                l.clone(),
                self.run[i]
                    .tracker
                    .current(a.actuator.base().status())
                    .to_string(),
            );
        }
        Ok(())
    }

    /// Whether `e` loses actuator `i` (see [`Machine::reconnect`]): then it is closed and
    /// the Block goes on without it.
    fn lose(&mut self, i: usize, e: &Error) -> bool {
        let dev = self.actuators[i].actuator.base().name().to_owned();
        if !self.run[i].link.lost(e, &dev, Instant::now()) {
            return false;
        }
        if let Err(c) = self.actuators[i].actuator.base_mut().close() {
            log::debug!("closing the lost actuator: {c}");
        }
        self.run[i].opened = false;
        self.run[i].tracker.set(Status::new(
            DeviceState::Alarm,
            format!("connection lost ({e}); reconnecting"),
        ));
        self.run[i].tracker.report(Status::unknown());
        true
    }

    /// Opens the lost actuators whose back-off has passed; whether one came back.
    fn reconnect_due(&mut self) -> Result<bool> {
        let mut back = false;
        for i in 0..self.actuators.len() {
            let now = Instant::now();
            if !self.run[i].link.due(now) {
                continue;
            }
            let a = self.actuators[i].actuator.base_mut();
            let r = a.open().and_then(|()| a.poll());
            if r.is_err() {
                let _ = a.close();
            }
            let dev = a.name().to_owned();
            match self.run[i].link.attempted(r, &dev, now) {
                Ok(Attempt::Reconnected) => {
                    back = true;
                    self.run[i].opened = true;
                    self.run[i].tracker.set(Status::on(""));
                    // Back during a pause: the pause's stop could not reach it (it was lost),
                    // and the motor may still run on its last command: stop it now.
                    if self.holding {
                        if let Err(e) = self.actuators[i].actuator.base_mut().stop() {
                            if !self.lose(i, &e) {
                                return Err(self.fail(i, e));
                            }
                            continue;
                        }
                        log::info!("actuator '{dev}' back during the pause: stopped and held");
                    }
                    let st = self.actuators[i].actuator.base().status();
                    self.run[i].tracker.report(st);
                }
                Ok(Attempt::Waiting) => {}
                Err(e) => {
                    let t = &mut self.run[i].tracker;
                    return Err(t.fault(e, Status::unknown()));
                }
            }
        }
        Ok(back)
    }

    fn fail(&mut self, i: usize, e: Error) -> Error {
        if e.kind() == ErrorKind::Configuration && e.origin().is_none() {
            return e;
        }
        let st = self.actuators[i].actuator.base().status();
        self.run[i].tracker.fault(e, st)
    }
}

impl Block for Machine {
    fn kind(&self) -> &str {
        "Machine"
    }

    fn device(&self) -> Option<String> {
        let names: Vec<&str> = self
            .actuators
            .iter()
            .map(|a| a.actuator.base().name())
            .collect();
        (!names.is_empty()).then(|| names.join(", "))
    }

    fn output_labels(&self) -> Option<Vec<Label>> {
        let mut v = vec![self.time()];
        v.extend(self.read_labels());
        Some(v)
    }

    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        if self.actuators.is_empty() {
            return Err(Error::config(
                "no actuator; add one with Machine::actuator(ActuatorConfig::speed(...))",
            ));
        }
        if let Some(t) = self.stop_timeout {
            if t.is_zero() {
                return Err(Error::config(
                    "parameter 'stop_timeout' is 0, so no actuator could be stopped; use a timeout such as 1 s (Machine::stop_timeout)",
                ));
            }
        }
        if let Some(r) = &self.reconnect {
            r.check()?;
        }
        let mut seen: Vec<&Label> = vec![];
        for a in &self.actuators {
            let dev = a.actuator.base().name();
            a.actuator
                .base()
                .check()
                .map_err(|e| crate::io_block::device_failure(&e, dev))?;
            if a.speed_cmd_label.is_some() && a.mode == DriveMode::Speed {
                return Err(Error::config(format!(
                    "speed_cmd_label is set for actuator '{dev}', which is not in position mode (ActuatorConfig::position)"
                )));
            }
            if let Some(v) = a.speed {
                if !(v.is_finite() && v > 0.0) {
                    return Err(Error::config(format!(
                        "move speed of actuator '{dev}' is {v}; it must be a finite number above 0 (the motor would never move)"
                    )));
                }
            }
            graph.require_label(&a.cmd_label, &format!("actuator '{dev}'"))?;
            if let Some(l) = &a.speed_cmd_label {
                graph.require_label(l, &format!("actuator '{dev}' (speed_cmd_label)"))?;
            }
            for l in a
                .position_label
                .iter()
                .chain(a.speed_label.iter())
                .chain(a.status_label.iter())
            {
                if seen.contains(&l) || *l == self.time() {
                    return Err(Error::config(format!(
                        "label '{l}' is sent twice; give each read-back label a unique name"
                    )));
                }
                seen.push(l);
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .actuators
            .iter()
            .map(|a| {
                format!(
                    "{} ({:?} from '{}', speed_cmd={:?}, speed={:?}, position_label={:?}, speed_label={:?})",
                    a.actuator.base().name(),
                    a.mode,
                    a.cmd_label,
                    a.speed_cmd_label,
                    a.speed,
                    a.position_label,
                    a.speed_label
                )
            })
            .collect();
        format!(
            "actuators=[{}], spam={}, reconnect={:?}",
            parts.join(", "),
            self.spam,
            self.reconnect
        )
    }

    /// Polls every actuator once, right after the start (see the type's docs).
    fn begin(&mut self, _ctx: &mut Context) -> Result<()> {
        for i in 0..self.actuators.len() {
            if let Err(e) = self.actuators[i].actuator.base_mut().poll() {
                return Err(self.fail(i, e));
            }
        }
        Ok(())
    }

    fn prepare(&mut self, _ctx: &mut Context) -> Result<()> {
        self.run = self
            .actuators
            .iter()
            .map(|a| Running {
                opened: false,
                tracker: StatusTracker::new(a.actuator.base().name()),
                link: Reconnector::new(self.reconnect),
            })
            .collect();
        for i in 0..self.actuators.len() {
            if let Err(e) = self.actuators[i].actuator.base_mut().open() {
                return Err(self.fail(i, e));
            }
            self.run[i].opened = true;
            self.run[i].tracker.set(Status::on(""));
            let st = self.actuators[i].actuator.base().status();
            self.run[i].tracker.report(st);
        }
        Ok(())
    }

    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let mut received = ctx.recv_latest(self.spam);
        let paused = ctx.paused();
        if paused && !self.holding {
            self.holding = true;
            for i in 0..self.actuators.len() {
                if self.run[i].link.is_down() {
                    continue;
                }
                if let Err(e) = self.actuators[i].actuator.base_mut().stop() {
                    if !self.lose(i, &e) {
                        return Err(self.fail(i, e));
                    }
                }
            }
            log::info!("test paused: every actuator stopped and held");
        } else if !paused && self.holding {
            self.holding = false;
            // The latest command of every actuator, applied again.
            received = ctx.recv_latest(true);
            log::info!("test resumed: latest commands applied again");
        }
        if self.reconnect_due()? && !self.holding {
            // An actuator is back: the latest commands, applied again.
            received = ctx.recv_latest(true);
        }
        for i in 0..self.actuators.len() {
            if self.run[i].link.is_down() {
                continue;
            }
            let r = self.actuators[i].actuator.base_mut().poll().and_then(|()| {
                if self.holding {
                    Ok(())
                } else {
                    self.apply(i, &received)
                }
            });
            if let Err(e) = r {
                if !self.lose(i, &e) {
                    return Err(self.fail(i, e));
                }
            }
        }
        let labels = self.read_labels();
        if ctx.n_outputs() > 0 && !labels.is_empty() {
            let mut s = Sample::with_capacity(labels.len() + 1);
            // Stamped at the middle of the reads (a serial read-back takes milliseconds).
            let t_before = ctx.t();
            for i in 0..self.actuators.len() {
                if self.run[i].link.is_down() {
                    continue;
                }
                if let Err(e) = self.read_back(i, &mut s) {
                    if !self.lose(i, &e) {
                        return Err(self.fail(i, e));
                    }
                }
            }
            // Only the time: every actuator that reads back is down (a gap in the data).
            if !s.is_empty() {
                let t = (t_before + ctx.t()) / 2.0;
                s.insert(self.time(), t);
                ctx.send(&s)?;
            }
        }
        for i in 0..self.actuators.len() {
            let st = if self.run[i].link.is_down() {
                Status::unknown()
            } else {
                self.actuators[i].actuator.base().status()
            };
            self.run[i].tracker.report(st);
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        let mut first: Option<Error> = None;
        let timeout = self.stop_timeout.unwrap_or(Self::DEFAULT_STOP_TIMEOUT);
        let notes: Vec<String> = (0..self.run.len())
            .filter_map(|i| {
                let dev = self.actuators[i].actuator.base().name();
                self.run[i].link.note(dev, Instant::now())
            })
            .collect();
        if !notes.is_empty() {
            let n = notes.join("; ");
            log::info!("{n}");
            ctx.report_note(n);
        }
        // Lost and not back: opened once more to be stopped, with the others.
        let stop: DriverCall = |a| a.stop();
        let reopen_and_stop: DriverCall = |a| {
            a.open()?;
            a.stop()
        };
        let opened: Vec<(usize, DriverCall)> = (0..self.actuators.len())
            .filter_map(|i| match self.run.get(i) {
                Some(r) if r.opened => Some((i, stop)),
                Some(r) if r.link.is_down() => {
                    log::warn!(
                        "actuator '{}' is still disconnected: opening it once more to stop it",
                        self.actuators[i].actuator.base().name()
                    );
                    Some((i, reopen_and_stop))
                }
                _ => None,
            })
            .collect();
        // Stop every opened actuator at once, each bounded (see the module docs), then close
        // those whose stop returned.
        let mut closable = Vec::with_capacity(opened.len());
        for (i, outcome) in self.call_each(&opened, "stop", timeout) {
            let dev = self.actuators[i].actuator.base().name().to_owned();
            if outcome.is_some() {
                closable.push(i);
            }
            match outcome {
                Some(Ok(())) => log::info!("actuator '{dev}' stopped"),
                Some(Err(e)) => {
                    log::error!("could not stop actuator '{dev}': {e}; CHECK THE MACHINE BY HAND");
                    first.get_or_insert_with(|| crate::io_block::device_failure(&e, &dev));
                }
                None => {
                    let e = hung(&dev, "stop", timeout);
                    log::error!("{e}; CHECK THE MACHINE BY HAND");
                    first.get_or_insert(e);
                }
            }
        }
        let close: DriverCall = |a| a.close();
        let closable: Vec<_> = closable.into_iter().map(|i| (i, close)).collect();
        for (i, outcome) in self.call_each(&closable, "close", timeout) {
            let dev = self.actuators[i].actuator.base().name().to_owned();
            match outcome {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    log::error!("closing actuator '{dev}': {e}");
                    first.get_or_insert_with(|| crate::io_block::device_failure(&e, &dev));
                }
                None => {
                    let e = hung(&dev, "close", timeout);
                    log::error!("{e}");
                    first.get_or_insert(e);
                }
            }
        }
        for &(i, _) in &opened {
            self.run[i].opened = false;
            let st = self.actuators[i].actuator.base().status();
            self.run[i].tracker.report(st);
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A driver call `finish` makes on its own thread (stop, close).
type DriverCall = fn(&mut dyn Actuator) -> Result<()>;

/// The error for a driver call that did not return in time.
fn hung(dev: &str, what: &str, timeout: Duration) -> Error {
    crabby::hardware::device_error(
        ErrorKind::Timeout,
        dev,
        format!(
            "actuator '{dev}': {what}() did not return within {timeout:?}; abandoned (its thread is left running)"
        ),
    )
}

impl Machine {
    /// Calls each function of `which` on its actuator, each on a thread of its own, all at once, and
    /// waits for them until `timeout` has passed. Returns, per actuator in the order given,
    /// `Some(result)` (a panic becomes an error) or `None` if it has not returned: that
    /// actuator is then replaced by an [`Abandoned`] placeholder, its thread keeps the
    /// driver. If a thread cannot be started, the call is made on this thread instead.
    fn call_each(
        &mut self,
        which: &[(usize, DriverCall)],
        what: &'static str,
        timeout: Duration,
    ) -> Vec<(usize, Option<Result<()>>)> {
        type Back = (usize, Result<()>, Box<dyn Driven>);
        let deadline = Instant::now() + timeout;
        let (tx, rx) = std::sync::mpsc::channel::<Back>();
        let mut results: Vec<(usize, Option<Result<()>>)> = Vec::with_capacity(which.len());
        let mut waiting = 0;
        for &(i, call) in which {
            let dev = self.actuators[i].actuator.base().name().to_owned();
            let placeholder = Box::new(Typed {
                actuator: Abandoned::new(&dev, what),
                ops: Ops::default(),
            });
            let mut a = std::mem::replace(&mut self.actuators[i].actuator, placeholder);
            let tx = tx.clone();
            let (slot_tx, slot_rx) = std::sync::mpsc::channel::<Box<dyn Driven>>();
            let thread_dev = dev.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{what} {dev}"))
                .spawn(move || {
                    let dev = thread_dev;
                    // The actuator comes through a channel so that, if spawning fails, it
                    // is still here (not consumed by the closure) to be called inline.
                    if let Ok(mut a) = slot_rx.recv() {
                        let r = guarded(&dev, what, || call(a.base_mut()));
                        let _ = tx.send((i, r, a));
                    }
                });
            match spawned {
                Ok(_) => {
                    // The receiver is alive (the thread holds it) until it gets the actuator.
                    if let Err(back) = slot_tx.send(a) {
                        a = back.0;
                        let dev = a.base().name().to_owned();
                        let r = guarded(&dev, what, || call(a.base_mut()));
                        self.actuators[i].actuator = a;
                        results.push((i, Some(r)));
                        continue;
                    }
                    results.push((i, None));
                    waiting += 1;
                }
                Err(e) => {
                    log::warn!("cannot start a thread to {what} actuator '{dev}' ({e}); calling it here, unbounded");
                    let r = guarded(&dev, what, || call(a.base_mut()));
                    self.actuators[i].actuator = a;
                    results.push((i, Some(r)));
                }
            }
        }
        drop(tx);
        while waiting > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((i, r, a)) => {
                    self.actuators[i].actuator = a;
                    if let Some(slot) = results.iter_mut().find(|(j, _)| *j == i) {
                        slot.1 = Some(r);
                    }
                    waiting -= 1;
                }
                Err(_) => break, // timed out: the rest are abandoned
            }
        }
        results
    }
}

/// Stands in for an actuator whose driver call hung (its thread still holds the driver).
struct Abandoned {
    name: String,
    what: &'static str,
}

impl Abandoned {
    fn new(name: &str, what: &'static str) -> Self {
        Abandoned {
            name: name.to_owned(),
            what,
        }
    }
}

impl Actuator for Abandoned {
    fn name(&self) -> &str {
        &self.name
    }

    fn set_speed(&mut self, _: f64) -> Result<()> {
        Err(crabby::hardware::device_error(
            ErrorKind::NotAllowed,
            &self.name,
            format!("abandoned after its {}() hung", self.what),
        ))
    }

    fn stop(&mut self) -> Result<()> {
        self.set_speed(0.0)
    }

    fn status(&self) -> Status {
        Status::fault(format!(
            "{}() hung; abandoned, state unknown: check the machine by hand",
            self.what
        ))
    }
}

/// Runs a driver call in `finish`, turning a panic into an error so the other actuators are
/// still stopped (the panic message is printed by the panic hook too).
fn guarded(dev: &str, what: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            Err(crabby::hardware::device_error(
                ErrorKind::Internal,
                dev,
                format!("the driver panicked in {what}: {msg}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct SpeedOnly;
    impl Actuator for SpeedOnly {
        fn set_speed(&mut self, _: f64) -> Result<()> {
            Ok(())
        }
    }

    /// Counts the exchanges its read-backs make; `both` answers both in one if set.
    #[derive(Default)]
    struct Full {
        both: bool,
        exchanges: u32,
    }
    impl Actuator for Full {
        fn set_speed(&mut self, _: f64) -> Result<()> {
            Ok(())
        }
    }
    impl Positioner for Full {
        fn set_position(&mut self, _: f64, _: Option<f64>) -> Result<()> {
            Ok(())
        }
    }
    impl PositionFeedback for Full {
        fn position(&mut self) -> Result<f64> {
            self.exchanges += 1;
            Ok(1.5)
        }
        fn position_and_speed(&mut self) -> Result<(f64, Option<f64>)> {
            if self.both {
                self.exchanges += 1;
                Ok((1.5, Some(-2.0)))
            } else {
                Ok((self.position()?, None))
            }
        }
    }
    impl SpeedFeedback for Full {
        fn speed(&mut self) -> Result<f64> {
            self.exchanges += 1;
            Ok(-2.0)
        }
    }

    #[test]
    fn read_back_uses_one_exchange_where_the_driver_can() {
        for (both, exchanges) in [(true, 1), (false, 2)] {
            let mut t = Typed {
                actuator: Full { both, exchanges: 0 },
                ops: ActuatorConfig::speed(Full::default(), "v")
                    .position_label("x")
                    .speed_label("v")
                    .ops,
            };
            // Ops are fn pointers of the type, not of the value: taken from any Full.
            assert_eq!(t.read_back(true, true).unwrap(), (Some(1.5), Some(-2.0)));
            assert_eq!(t.actuator.exchanges, exchanges);
            assert_eq!(t.read_back(false, true).unwrap(), (None, Some(-2.0)));
            assert_eq!(t.read_back(true, false).unwrap(), (Some(1.5), None));
        }
        // Not configured to read back: the Machine never asks, and an internal error if it did.
        let mut t = Typed {
            actuator: SpeedOnly,
            ops: Ops::default(),
        };
        assert_eq!(
            t.read_back(true, false).unwrap_err().kind(),
            ErrorKind::Internal
        );
        assert_eq!(
            t.set_position(1.0, None).unwrap_err().kind(),
            ErrorKind::Internal
        );
    }

    #[test]
    fn output_labels_and_description() {
        let m = Machine::new()
            .actuator(ActuatorConfig::speed(SpeedOnly, "v"))
            .actuator(
                ActuatorConfig::position(Full::default(), "x")
                    .position_label("x(mm)")
                    .speed_label("v(mm/s)"),
            );
        let l: Vec<String> = m
            .output_labels()
            .unwrap()
            .iter()
            .map(|l| l.to_string())
            .collect();
        assert_eq!(l, ["t(s)", "x(mm)", "v(mm/s)"]);
        assert!(
            m.describe().contains("SpeedOnly (Speed from 'v'"),
            "{}",
            m.describe()
        );
    }

    #[test]
    fn apply_uses_the_move_speed_from_its_label() {
        struct Rec(Vec<(f64, Option<f64>)>);
        impl Actuator for Rec {
            fn set_speed(&mut self, _: f64) -> Result<()> {
                Ok(())
            }
        }

        impl Positioner for Rec {
            fn set_position(&mut self, p: f64, s: Option<f64>) -> Result<()> {
                self.0.push((p, s));
                if p > 100.0 {
                    return Err(crabby::hardware::device_error(
                        ErrorKind::OutOfRange,
                        "rec",
                        "too far",
                    ));
                }
                Ok(())
            }
        }
        let mut m = Machine::new().actuator(
            ActuatorConfig::position(Rec(vec![]), "x")
                .speed_cmd_label("v")
                .move_speed(1.0),
        );
        m.run = vec![Running {
            opened: true,
            tracker: StatusTracker::new("rec"),
            link: Reconnector::new(None),
        }];
        m.apply(0, &Sample::new().with("x", 5.0)).unwrap();
        m.apply(0, &Sample::new().with("x", 6.0).with("v", 2.0))
            .unwrap();
        m.apply(0, &Sample::new().with("v", 3.0)).unwrap();
        let e = m.apply(0, &Sample::new().with("x", 200.0)).unwrap_err();
        let e = m.fail(0, e);
        assert_eq!(e.kind(), ErrorKind::OutOfRange);
        assert!(e.description().contains("device 'rec'"), "{e}");
        let e = m.apply(0, &Sample::new().with("x", "far")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(format!("{:?}", m.actuators[0]).contains("speed: Some(3.0)"));
    }

    #[test]
    fn guarded_turns_a_panicking_stop_into_an_error() {
        let e = guarded("m", "stop", || panic!("driver bug")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(
            e.description().contains("panicked in stop: driver bug"),
            "{e}"
        );
        assert_eq!(e.origin(), Some("m"));
        guarded("m", "stop", || Ok(())).unwrap();
    }
}
