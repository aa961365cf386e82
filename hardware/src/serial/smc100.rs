//! [`NewportSmc100`]: a Newport SMC100CC/SMC100PP single-axis motion controller (for example
//! with a TRA6PPD actuator) on its RS-232 port, as an `Actuator` (with `Positioner` and
//! `PositionFeedback`; the SMC100 has no velocity read-back) in mm and mm/s; the
//! simulator its tests play is [`sim::Smc100`].
//!
//! Source: Newport *SMC100CC & SMC100PP Single-Axis DC or Stepper Motion Controller User's
//! Manual*, section 2 "Command set" (the manual itself could not be opened from here; the
//! command syntax, replies, state codes and error letters below were taken from open-source
//! drivers that follow it and agree with each other: MagAO-X `smc100ccCtrl` (C++, with
//! its unit tests of the `TE` letters), the `smc100` Python module (state map and
//! positioner error names), and lantz `motionsmc100`). What the driver uses:
//! - framing: 57 600 baud, 8N1, commands and replies end with CR LF; a command is the
//!   controller address (1–31), two letters and an optional value (`1PA5.0`); a query
//!   reply repeats address and letters before the value (`1TP` → `1TP4.99996`);
//! - `OR` home search (NOT REFERENCED → HOMING → READY), `PA` move absolute, `PR` move
//!   relative, `VA` set velocity (`VA?` reads it), `ST` stop (decelerates), `TP` tell
//!   position, `SL?` / `SR?` negative / positive software limits, `MM0` / `MM1` enter /
//!   leave the DISABLE state (motor off; MagAO-X sends `MM1` to re-enable a disabled stage);
//! - `TS` tell status: `1TSeeeess`, four hex digits of positioner error bits then two of
//!   controller state. Error bits, from bit 0: negative end of run, positive end of run,
//!   peak current limit, RMS current limit, short circuit detection, following error,
//!   homing time out, wrong ESP stage, DC voltage too low, 80 W output power exceeded.
//!   States: 0A–11 NOT REFERENCED (from reset, homing, configuration, disable, ready,
//!   moving, ESP stage error, jogging), 14 CONFIGURATION, 1E/1F HOMING, 28 MOVING, 32–35
//!   READY (from homing, moving, disable, jogging), 3C–3E DISABLE, 46/47 JOGGING;
//! - `TE` tell last command error (and clear it): `@` none, `A` unknown command, `B` wrong
//!   address, `C` parameter missing or out of range, `D` not allowed, `E` home already
//!   started, `G` displacement out of limits, `H`…`M` not allowed in NOT REFERENCED /
//!   CONFIGURATION / DISABLE / READY / HOMING / MOVING state, `N` position out of software
//!   limit, `S` communication time-out, `U` EEPROM, `V` error during execution, `W`/`X`
//!   not for the PP / CC version.
//!
//! Speed control: the SMC100 has no velocity mode on its serial interface, so
//! [`set_speed`](Actuator::set_speed) moves toward the software limit in the direction of
//! the speed (`VA |v|` then `PA limit`), and 0 stops (`ST`). The driver sends a motion
//! command only to a READY controller: a new command while MOVING first sends `ST`, and the
//! command is sent by [`poll`](Actuator::poll) (called every loop by the Machine) once `TS`
//! reads READY again. Every motion command is followed by `TE`, so a refusal is an error
//! at once (`C`/`G`/`N`: OutOfRange; `H`: NotAllowed, the axis must be homed).
//!
//! Status: MOVING while `TS` says MOVING or HOMING; ALARM for NOT REFERENCED, DISABLE or an
//! end-of-run bit (limit switch); FAULT for the other positioner error bits (Hardware
//! errors), silence or a vanished port.

use super::{closed_status, record_fault, LineEnding, SerialConfig, SerialLink};
use crabby::hardware::{Actuator, DeviceState, PositionFeedback, Positioner, Status};
use crabby::{Error, ErrorKind, Result};
use std::time::{Duration, Instant};

/// Names of the positioner error bits of `TS`, from bit 0.
pub const POSITIONER_ERRORS: [&str; 10] = [
    "negative end of run",
    "positive end of run",
    "peak current limit",
    "RMS current limit",
    "short circuit detection",
    "following error",
    "homing time out",
    "wrong ESP stage",
    "DC voltage too low",
    "80 W output power exceeded",
];

/// The meaning of a `TE` letter, and the error kind it maps to.
pub fn command_error(letter: char) -> (&'static str, ErrorKind) {
    use ErrorKind::*;
    match letter {
        'A' => (
            "unknown message code or floating point controller address",
            Communication,
        ),
        'B' => ("controller address not correct", Configuration),
        'C' => ("parameter missing or out of range", OutOfRange),
        'D' => ("execution not allowed", NotAllowed),
        'E' => ("home sequence already started", NotAllowed),
        'G' => ("displacement out of limits", OutOfRange),
        'H' => (
            "not allowed in NOT REFERENCED state (home the axis first)",
            NotAllowed,
        ),
        'I' => ("not allowed in CONFIGURATION state", NotAllowed),
        'J' => ("not allowed in DISABLE state", NotAllowed),
        'K' => ("not allowed in READY state", NotAllowed),
        'L' => ("not allowed in HOMING state", NotAllowed),
        'M' => ("not allowed in MOVING state", NotAllowed),
        'N' => ("current position out of software limit", OutOfRange),
        'S' => ("communication time out", Communication),
        'U' => ("error during EEPROM access", Hardware),
        'V' => ("error during command execution", Hardware),
        'W' => ("command not allowed for the PP version", Configuration),
        'X' => ("command not allowed for the CC version", Configuration),
        _ => ("unknown error letter", Communication),
    }
}

/// The controller state of a `TS` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Smc100State {
    /// 0A–11: not referenced (needs `OR`).
    NotReferenced,
    /// 14.
    Configuration,
    /// 1E, 1F.
    Homing,
    /// 28.
    Moving,
    /// 32–35.
    Ready,
    /// 3C–3E.
    Disable,
    /// 46, 47.
    Jogging,
}

impl Smc100State {
    /// The state of a two-digit hex code, if known.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x0A..=0x11 => Smc100State::NotReferenced,
            0x14 => Smc100State::Configuration,
            0x1E | 0x1F => Smc100State::Homing,
            0x28 => Smc100State::Moving,
            0x32..=0x35 => Smc100State::Ready,
            0x3C..=0x3E => Smc100State::Disable,
            0x46 | 0x47 => Smc100State::Jogging,
            _ => return None,
        })
    }
}

/// A motion command waiting for the controller to be READY.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pending {
    Position(f64, Option<f64>),
    Speed(f64),
}

/// A Newport SMC100 controller (address 1 by default) and its actuator, positions in mm.
///
/// ```no_run
/// use crabby_hardware::serial::{NewportSmc100, SerialConfig};
/// let axis = NewportSmc100::new("TRA6PPD", SerialConfig::new("/dev/ttyUSB0", 57_600))
///     .home_at_open(true);
/// ```
#[derive(Debug)]
pub struct NewportSmc100 {
    /// The device's name (origin of its errors).
    pub name: String,
    /// The port (57 600 baud, 8N1).
    pub serial: SerialConfig,
    /// Controller address, 1–31 (default 1).
    pub address: u8,
    /// Send `OR` at open if the axis is NOT REFERENCED, and wait for READY (default false:
    /// a homing moves the actuator; without it, open refuses a non-referenced axis).
    pub home_at_open: bool,
    /// How long a homing may take (default 60 s).
    pub homing_timeout: Duration,
    /// Speed limit, mm/s (default: the controller's `VA` at open).
    pub max_speed: Option<f64>,
    link: Option<SerialLink>,
    status: Status,
    limits: (f64, f64),
    va: f64,
    pending: Option<Pending>,
    /// The motion command last sent (or waiting): the same command again is not re-sent.
    active: Option<Pending>,
    last_state: Option<Smc100State>,
}

impl NewportSmc100 {
    /// A controller at address 1 on `serial`.
    pub fn new(name: impl Into<String>, serial: SerialConfig) -> Self {
        NewportSmc100 {
            name: name.into(),
            serial,
            address: 1,
            home_at_open: false,
            homing_timeout: Duration::from_secs(60),
            max_speed: None,
            link: None,
            status: Status::off(),
            limits: (0.0, 0.0),
            va: 0.0,
            pending: None,
            active: None,
            last_state: None,
        }
    }
    /// Sets the controller address.
    pub fn address(mut self, a: u8) -> Self {
        self.address = a;
        self
    }
    /// Homes at open if needed.
    pub fn home_at_open(mut self, yes: bool) -> Self {
        self.home_at_open = yes;
        self
    }
    /// Sets the speed limit (mm/s).
    pub fn max_speed(mut self, v: f64) -> Self {
        self.max_speed = Some(v);
        self
    }

    fn err(&self, kind: ErrorKind, d: impl Into<String>) -> Error {
        Error::new(kind, d).with_origin(&self.name)
    }

    fn link(&mut self) -> Result<&mut SerialLink> {
        let name = &self.name;
        self.link.as_mut().ok_or_else(|| {
            Error::new(ErrorKind::NotAllowed, "the SMC100 is not open").with_origin(name)
        })
    }

    /// Sends `cmd` (two letters) with `value` to the controller, no reply expected.
    pub fn send(&mut self, cmd: &str, value: &str) -> Result<()> {
        let line = format!("{}{cmd}{value}", self.address);
        self.link()?.write_line(&line, LineEnding::CrLf)
    }

    /// Sends a query (`TP`, `TS`, `TE`, `VA?`…) and returns the value after the echoed
    /// address and letters.
    pub fn query(&mut self, cmd: &str) -> Result<String> {
        let line = format!("{}{cmd}", self.address);
        let prefix = format!("{}{}", self.address, &cmd[..2]);
        let link = self.link()?;
        link.write_line(&line, LineEnding::CrLf)?;
        let ans = link.read_line(LineEnding::CrLf)?;
        match ans.strip_prefix(&prefix) {
            Some(v) => Ok(v.trim().to_owned()),
            None => Err(self.err(
                ErrorKind::Communication,
                format!("the controller answered {ans:?} to {line:?} (expected {prefix}…); check the address and the baud rate"),
            )),
        }
    }

    fn query_f64(&mut self, cmd: &str) -> Result<f64> {
        let v = self.query(cmd)?;
        v.parse().map_err(|_| {
            self.err(
                ErrorKind::Communication,
                format!("the controller answered {v:?} to {cmd}, not a number"),
            )
        })
    }

    /// `TE`: `Ok` if the last command was accepted, else its error.
    pub fn last_error(&mut self, after: &str) -> Result<()> {
        let v = self.query("TE")?;
        match v.chars().next() {
            Some('@') => Ok(()),
            Some(c) => {
                let (what, kind) = command_error(c);
                Err(self.err(
                    kind,
                    format!("the controller refused {after}: error {c}, {what}"),
                ))
            }
            None => Err(self.err(ErrorKind::Communication, "empty answer to TE")),
        }
    }

    /// `TS`: positioner error bits and controller state; updates the status.
    pub fn state(&mut self) -> Result<(u16, Smc100State)> {
        let v = self.query("TS")?;
        // Six ASCII hex digits; line noise (read as U+FFFD) must not be sliced inside a
        // character.
        let parsed = (v.len() == 6 && v.is_ascii())
            .then(|| {
                let bits = u16::from_str_radix(&v[..4], 16).ok()?;
                let code = u8::from_str_radix(&v[4..], 16).ok()?;
                Some((bits, Smc100State::from_code(code)?))
            })
            .flatten();
        let Some((bits, state)) = parsed else {
            return Err(self.err(
                ErrorKind::Communication,
                format!("unexpected TS answer {v:?} (expected 4 + 2 hex digits)"),
            ));
        };
        self.last_state = Some(state);
        let names: Vec<&str> = POSITIONER_ERRORS
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect();
        if bits & !0b11 != 0 {
            let msg = format!(
                "the controller reports {} (state {state:?}); check the actuator, its cable and the supply, then re-home",
                names.join(", ")
            );
            self.status = Status::fault(msg.clone());
            return Err(self.err(ErrorKind::Hardware, msg));
        }
        self.status = match state {
            Smc100State::Moving | Smc100State::Homing | Smc100State::Jogging => {
                Status::moving(format!("{state:?}"))
            }
            Smc100State::Ready if bits == 0 => Status::on("ready"),
            Smc100State::Ready => Status::new(DeviceState::Alarm, names.join(", ")),
            Smc100State::NotReferenced => Status::new(
                DeviceState::Alarm,
                "NOT REFERENCED: the axis must be homed (OR) before it can move",
            ),
            Smc100State::Disable => Status::new(DeviceState::Alarm, "DISABLE: motor off"),
            Smc100State::Configuration => Status::fault("in CONFIGURATION state"),
        };
        Ok((bits, state))
    }

    /// Starts a home search (`OR`).
    pub fn home(&mut self) -> Result<()> {
        self.active = None;
        self.pending = None;
        self.send("OR", "")?;
        self.last_error("OR (home search)")
    }

    /// Waits until the controller is READY (or `timeout`), polling `TS`.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let end = Instant::now() + timeout;
        loop {
            let (_, s) = self.state()?;
            match s {
                Smc100State::Ready => return Ok(()),
                Smc100State::NotReferenced | Smc100State::Disable | Smc100State::Configuration => {
                    return Err(self.err(
                        ErrorKind::Hardware,
                        format!("the controller went to {s:?} instead of READY"),
                    ))
                }
                _ => {}
            }
            if Instant::now() >= end {
                return Err(self.err(
                    ErrorKind::Timeout,
                    format!("the controller was not READY within {timeout:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn check_target(&self, p: f64) -> Result<()> {
        let (lo, hi) = self.limits;
        if !p.is_finite() || p < lo - 1e-9 || p > hi + 1e-9 {
            return Err(self.err(
                ErrorKind::OutOfRange,
                format!("position {p} mm is outside the software limits [{lo}, {hi}] mm"),
            ));
        }
        Ok(())
    }

    fn check_speed(&self, v: f64) -> Result<()> {
        let max = self.max_speed.unwrap_or(self.va);
        if !v.is_finite() || v.abs() > max * (1.0 + 1e-9) {
            return Err(self.err(
                ErrorKind::OutOfRange,
                format!("speed {v} mm/s is outside ±{max} mm/s"),
            ));
        }
        Ok(())
    }

    /// Sends a motion command to a READY controller.
    fn execute(&mut self, p: Pending) -> Result<()> {
        let (target, speed) = match p {
            Pending::Position(t, s) => (t, s),
            Pending::Speed(0.0) => return Ok(()),
            Pending::Speed(v) => (
                if v > 0.0 {
                    self.limits.1
                } else {
                    self.limits.0
                },
                Some(v.abs()),
            ),
        };
        let speed = speed.unwrap_or(self.max_speed.unwrap_or(self.va));
        self.send("VA", &format!("{speed}"))?;
        self.last_error("VA (set velocity)")?;
        self.send("PA", &format!("{target}"))?;
        self.last_error(&format!("PA{target} (move absolute)"))?;
        self.status = Status::moving(format!("to {target} mm at {speed} mm/s"));
        Ok(())
    }

    /// Runs `p` now if READY, else stops and keeps it for [`poll`](Actuator::poll). The
    /// command being executed (or waiting), sent again, changes nothing: the Machine sends
    /// its latest command every loop.
    fn command(&mut self, p: Pending) -> Result<()> {
        if self.active == Some(p) {
            return Ok(());
        }
        self.active = Some(p);
        let (_, s) = self.state()?;
        match s {
            Smc100State::Ready => {
                self.pending = None;
                let r = self.execute(p);
                if r.is_err() {
                    self.active = None;
                }
                r
            }
            Smc100State::Moving => {
                self.send("ST", "")?;
                self.pending = Some(p);
                Ok(())
            }
            other => {
                self.active = None;
                Err(self.err(
                    ErrorKind::NotAllowed,
                    format!("the controller is {other:?}, not READY: it cannot move (home it, or enable it)"),
                ))
            }
        }
    }

    fn fault<T>(&mut self, r: Result<T>) -> Result<T> {
        record_fault(&mut self.status, r)
    }
}

impl Actuator for NewportSmc100 {
    fn name(&self) -> &str {
        &self.name
    }
    fn check(&self) -> Result<()> {
        self.serial.check(&self.name)?;
        if !(1..=31).contains(&self.address) {
            return Err(Error::config(format!(
                "address {} is not an SMC100 address (1–31)",
                self.address
            ))
            .with_origin(&self.name));
        }
        if let Some(v) = self.max_speed {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::config(format!("max_speed {v} mm/s must be above 0"))
                    .with_origin(&self.name));
            }
        }
        Ok(())
    }
    /// Opens the port, reads `TS` (homes if asked and needed), the software limits and the
    /// velocity; refuses a non-referenced axis unless `home_at_open`.
    fn open(&mut self) -> Result<()> {
        let mut link = self.serial.open(&self.name)?;
        link.discard_input()?;
        self.link = Some(link);
        self.pending = None;
        self.active = None;
        let r = (|| {
            let (_, s) = self.state()?;
            if s == Smc100State::NotReferenced {
                if !self.home_at_open {
                    return Err(self.err(
                        ErrorKind::NotAllowed,
                        "the axis is NOT REFERENCED: home it (home_at_open(true) sends OR at open)",
                    ));
                }
                self.home()?;
                self.wait_ready(self.homing_timeout)?;
            }
            self.limits = (self.query_f64("SL?")?, self.query_f64("SR?")?);
            self.va = self.query_f64("VA?")?;
            Ok(())
        })();
        let r = self.fault(r);
        if r.is_err() {
            self.link = None;
        }
        r
    }
    /// Moves toward the software limit at `|speed|` (0: stop); see the module docs.
    fn set_speed(&mut self, speed: f64) -> Result<()> {
        self.check_speed(speed)?;
        let r = if speed == 0.0 {
            self.pending = None;
            self.active = None;
            self.send("ST", "")
        } else {
            self.command(Pending::Speed(speed))
        };
        self.fault(r)
    }
    /// Sends a waiting motion command once the controller is READY again, and reads the
    /// fault bits.
    fn poll(&mut self) -> Result<()> {
        let r = (|| {
            let (_, s) = self.state()?;
            if s == Smc100State::Ready {
                if let Some(p) = self.pending.take() {
                    if let Err(e) = self.execute(p) {
                        self.active = None;
                        return Err(e);
                    }
                }
            }
            Ok(())
        })();
        self.fault(r)
    }
    fn stop(&mut self) -> Result<()> {
        self.pending = None;
        self.active = None;
        let r = self.send("ST", "");
        self.fault(r)
    }
    fn close(&mut self) -> Result<()> {
        self.link = None;
        closed_status(&mut self.status);
        Ok(())
    }
    fn status(&self) -> Status {
        self.status.clone()
    }
}

impl Positioner for NewportSmc100 {
    /// `VA` then `PA` (a READY controller), or `ST` and the move kept for `poll`.
    fn set_position(&mut self, position: f64, speed: Option<f64>) -> Result<()> {
        self.check_target(position)?;
        if let Some(s) = speed {
            if s <= 0.0 {
                return Err(self.err(
                    ErrorKind::OutOfRange,
                    format!("move speed {s} mm/s must be above 0"),
                ));
            }
            self.check_speed(s)?;
        }
        let r = self.command(Pending::Position(position, speed));
        self.fault(r)
    }
}

impl PositionFeedback for NewportSmc100 {
    fn position(&mut self) -> Result<f64> {
        let r = self.query_f64("TP");
        self.fault(r)
    }
}

pub mod sim {
    //! [`Smc100`]: a simulated SMC100 controller with its actuator: the state machine
    //! (NOT REFERENCED → HOMING → READY ⇄ MOVING), trapezoidal motion (velocity `VA`,
    //! acceleration `ac`), software limits, `TE` error letters and injectable positioner
    //! errors.
    use super::super::sim::LineDevice;
    use std::time::Instant;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Mode {
        NotRef(u8),
        Homing,
        Moving,
        Ready(u8),
        Disable,
    }

    /// A simulated SMC100PP with a linear actuator (mm, mm/s).
    #[derive(Debug)]
    pub struct Smc100 {
        /// Address (1–31).
        pub address: u8,
        /// Software limits, mm (`SL`, `SR`).
        pub limits: (f64, f64),
        /// Velocity `VA`, mm/s.
        pub va: f64,
        /// Highest `VA` accepted, mm/s.
        pub va_max: f64,
        /// Acceleration, mm/s².
        pub ac: f64,
        /// Where the home switch is, mm (position after `OR`).
        pub home: f64,
        /// Positioner error bits (inject faults: bit 5 following error…).
        pub errors: u16,
        mode: Mode,
        pos: f64,
        vel: f64,
        target: f64,
        last_error: char,
        t: Instant,
        /// Every request received.
        pub log: Vec<String>,
    }

    impl Smc100 {
        /// A controller at address 1, NOT REFERENCED from reset, the actuator at `pos` mm,
        /// limits 0–6 mm (a TRA6PPD's travel), 0.2 mm/s, 0.8 mm/s².
        pub fn new(pos: f64) -> Self {
            Smc100 {
                address: 1,
                limits: (0.0, 6.0),
                va: 0.2,
                va_max: 0.4,
                ac: 0.8,
                home: 0.0,
                errors: 0,
                mode: Mode::NotRef(0x0A),
                pos,
                vel: 0.0,
                target: pos,
                last_error: '@',
                t: Instant::now(),
                log: Vec::new(),
            }
        }

        /// Position, mm (true, after integrating the motion up to now).
        pub fn position(&mut self) -> f64 {
            self.advance();
            self.pos
        }

        /// Integrates the motion to now: accelerate toward `va`, decelerate to stop on the
        /// target (trapezoid).
        fn advance(&mut self) {
            let now = Instant::now();
            let mut dt_total = now.duration_since(self.t).as_secs_f64();
            self.t = now;
            if !matches!(self.mode, Mode::Moving | Mode::Homing) {
                return;
            }
            let vmax = if self.mode == Mode::Homing {
                self.va_max
            } else {
                self.va
            };
            while dt_total > 0.0 {
                let dt = dt_total.min(2e-4);
                dt_total -= dt;
                let d = self.target - self.pos;
                if d == 0.0 && self.vel.abs() <= self.ac * dt {
                    return self.arrive();
                }
                let toward = self.vel * d >= 0.0;
                let stop_dist = self.vel * self.vel / (2.0 * self.ac);
                let want = if toward && d.abs() <= stop_dist {
                    0.0
                } else {
                    d.signum() * vmax
                };
                self.vel += (want - self.vel).clamp(-self.ac * dt, self.ac * dt);
                self.pos += self.vel * dt;
                let nd = self.target - self.pos;
                // Crossing the target (the deceleration ends there, to a step's precision).
                if nd == 0.0 || nd.signum() != d.signum() {
                    return self.arrive();
                }
            }
        }

        fn arrive(&mut self) {
            self.pos = self.target;
            self.vel = 0.0;
            self.mode = if self.mode == Mode::Homing {
                Mode::Ready(0x32)
            } else {
                Mode::Ready(0x33)
            };
        }

        fn state_code(&self) -> u8 {
            match self.mode {
                Mode::NotRef(c) => c,
                Mode::Homing => 0x1E,
                Mode::Moving => 0x28,
                Mode::Ready(c) => c,
                Mode::Disable => 0x3C,
            }
        }

        fn not_allowed_letter(&self) -> char {
            match self.mode {
                Mode::NotRef(_) => 'H',
                Mode::Homing => 'L',
                Mode::Moving => 'M',
                Mode::Ready(_) => 'K',
                Mode::Disable => 'J',
            }
        }

        fn reply(&self, cmd: &str, v: String) -> Option<Vec<u8>> {
            Some(format!("{}{cmd}{v}\r\n", self.address).into_bytes())
        }

        fn start_move(&mut self, target: f64) {
            if !matches!(self.mode, Mode::Ready(_)) {
                self.last_error = self.not_allowed_letter();
            } else if !(self.limits.0..=self.limits.1).contains(&target) {
                self.last_error = 'C';
            } else {
                self.target = target;
                self.mode = Mode::Moving;
            }
        }
    }

    impl LineDevice for Smc100 {
        fn request_ending(&self) -> &'static [u8] {
            b"\r\n"
        }

        fn handle(&mut self, request: &str) -> Option<Vec<u8>> {
            self.log.push(request.to_owned());
            self.advance();
            // A following error or other positioner fault stops the motion: NOT REFERENCED
            // from MOVING.
            if self.errors & !0b11 != 0 && matches!(self.mode, Mode::Moving | Mode::Homing) {
                self.vel = 0.0;
                self.mode = Mode::NotRef(0x0F);
            }
            let digits = request.chars().take_while(|c| c.is_ascii_digit()).count();
            let addr: Option<u8> = request[..digits].parse().ok();
            if addr != Some(self.address) {
                return None; // another controller's command (RS-485 chain), or noise
            }
            let rest = &request[digits..];
            if rest.len() < 2 || !rest.is_char_boundary(2) {
                self.last_error = 'A';
                return None;
            }
            let (cmd, arg) = rest.split_at(2);
            let cmd = cmd.to_ascii_uppercase();
            let num = |a: &str| a.trim().parse::<f64>().ok();
            match (cmd.as_str(), arg) {
                ("TS", "") => {
                    return self.reply(
                        "TS",
                        format!("{:04X}{:02X}", self.errors, self.state_code()),
                    )
                }
                ("TP", "") | ("TP", "?") => return self.reply("TP", format!("{}", self.pos)),
                ("TE", "") | ("TE", "?") => {
                    let e = std::mem::replace(&mut self.last_error, '@');
                    return self.reply("TE", e.to_string());
                }
                ("VA", "?") => return self.reply("VA", format!("{}", self.va)),
                ("SL", "?") => return self.reply("SL", format!("{}", self.limits.0)),
                ("SR", "?") => return self.reply("SR", format!("{}", self.limits.1)),
                ("VA", a) => match num(a) {
                    Some(v) if v > 0.0 && v <= self.va_max => {
                        if matches!(self.mode, Mode::Moving | Mode::Homing) {
                            self.last_error = self.not_allowed_letter();
                        } else {
                            self.va = v;
                        }
                    }
                    _ => self.last_error = 'C',
                },
                ("PA", a) => match num(a) {
                    Some(p) => self.start_move(p),
                    None => self.last_error = 'C',
                },
                ("PR", a) => match num(a) {
                    Some(d) => {
                        let t = self.pos + d;
                        if matches!(self.mode, Mode::Ready(_))
                            && !(self.limits.0..=self.limits.1).contains(&t)
                        {
                            self.last_error = 'G';
                        } else {
                            self.start_move(t);
                        }
                    }
                    None => self.last_error = 'C',
                },
                ("OR", "") => match self.mode {
                    Mode::NotRef(_) => {
                        self.errors &= 0b11;
                        self.target = self.home;
                        self.mode = Mode::Homing;
                    }
                    Mode::Homing => self.last_error = 'E',
                    _ => self.last_error = self.not_allowed_letter(),
                },
                ("MM", "0") => match self.mode {
                    Mode::Ready(_) => self.mode = Mode::Disable,
                    _ => self.last_error = self.not_allowed_letter(),
                },
                ("MM", "1") => match self.mode {
                    Mode::Disable => self.mode = Mode::Ready(0x34),
                    _ => self.last_error = self.not_allowed_letter(),
                },
                ("ST", "") => {
                    if matches!(self.mode, Mode::Moving) {
                        // Decelerate to a stop from the current speed.
                        let stop = self.vel * self.vel / (2.0 * self.ac) * self.vel.signum();
                        self.target = self.pos + stop;
                        if self.vel == 0.0 {
                            self.mode = Mode::Ready(0x33);
                        }
                    }
                }
                _ => self.last_error = 'A',
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::sim::SimThread;
    use super::super::testing::FakePort;
    use super::sim::Smc100;
    use super::*;

    fn axis(p: &FakePort) -> NewportSmc100 {
        NewportSmc100::new(
            "TRA6PPD",
            SerialConfig::new(&p.path, 57_600).timeout(Duration::from_millis(300)),
        )
    }

    /// Polls until the status is not MOVING, at most `s` seconds.
    fn settle(a: &mut NewportSmc100, s: f64) {
        let end = Instant::now() + Duration::from_secs_f64(s);
        loop {
            a.poll().unwrap();
            if a.status().state != DeviceState::Moving {
                return;
            }
            assert!(Instant::now() < end, "still moving after {s} s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn homes_moves_with_a_trapezoid_and_stops() {
        let p = FakePort::new();
        let mut a = axis(&p).home_at_open(true);
        a.check().unwrap();
        let mut dev = Smc100::new(0.3);
        dev.va = 2.0;
        dev.va_max = 4.0;
        dev.ac = 20.0;
        let (_p, sim) = p.play(dev);
        a.open().unwrap();
        assert_eq!(a.status().state, DeviceState::On);
        assert!(a.position().unwrap().abs() < 1e-9);
        // A move of 1 mm at 2 mm/s with 20 mm/s²: 0.1 s ramps, 0.6 s total.
        let t0 = Instant::now();
        a.set_position(1.0, None).unwrap();
        let t_sent = t0.elapsed().as_secs_f64(); // the move started in [0, t_sent]
        assert_eq!(a.status().state, DeviceState::Moving);
        std::thread::sleep(Duration::from_millis(50));
        let t_lo = t0.elapsed().as_secs_f64();
        let early = a.position().unwrap();
        let t_hi = t0.elapsed().as_secs_f64();
        // On the trapezoid (not a jump to the target), whatever the machine's load did to
        // the 50 ms: between where the profile is at the earliest and latest moments the
        // answer can describe.
        let x = |t: f64| match t {
            t if t <= 0.0 => 0.0,
            t if t < 0.1 => 10.0 * t * t,
            t if t < 0.5 => 0.1 + 2.0 * (t - 0.1),
            t if t < 0.6 => 1.0 - 10.0 * (0.6 - t) * (0.6 - t),
            _ => 1.0,
        };
        let (lo, hi) = (x(t_lo - t_sent), x(t_hi));
        assert!(
            early > 0.0 && early >= lo - 1e-6 && early <= hi + 1e-6,
            "{early} mm not in [{lo}, {hi}] (profile between {} and {t_hi} s)",
            t_lo - t_sent
        );
        settle(&mut a, 3.0);
        let took = t0.elapsed().as_secs_f64();
        assert!(took > 0.55, "{took}");
        assert!((a.position().unwrap() - 1.0).abs() < 1e-6);
        // Speed control: toward the positive limit, then stop (decelerates).
        a.set_speed(1.0).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        a.set_speed(0.0).unwrap();
        settle(&mut a, 3.0);
        let p1 = a.position().unwrap();
        assert!(p1 > 1.05 && p1 < 1.4, "{p1}");
        // The same target sent every loop (as the Machine does) while moving: not re-sent,
        // the move goes on.
        a.set_position(3.0, Some(2.0)).unwrap();
        let n_pa = |sim: &SimThread<Smc100>| {
            sim.with(|s| s.log.iter().filter(|l| l.starts_with("1PA")).count())
        };
        let before = n_pa(&sim);
        for _ in 0..5 {
            a.set_position(3.0, Some(2.0)).unwrap();
            a.poll().unwrap();
        }
        assert_eq!(n_pa(&sim), before);
        assert_eq!(a.status().state, DeviceState::Moving);
        // A new target while moving: ST, then sent by poll once READY.
        std::thread::sleep(Duration::from_millis(50));
        a.set_position(2.0, None).unwrap();
        settle(&mut a, 3.0);
        assert!((a.position().unwrap() - 2.0).abs() < 1e-6);
        let log = sim.with(|s| s.log.clone());
        assert!(log.contains(&"1OR".to_string()), "{log:?}");
        assert!(log.contains(&"1PA2".to_string()), "{log:?}");
        a.stop().unwrap();
        a.close().unwrap();
    }

    #[test]
    fn every_refusal_and_positioner_error_is_mapped() {
        let p = FakePort::new();
        let path = p.path.clone();
        let mut a = axis(&p);
        let mut dev = Smc100::new(0.5);
        dev.va_max = 4.0;
        dev.ac = 20.0;
        let (_p, mut sim) = p.play(dev);
        // NOT REFERENCED without home_at_open: refused, ALARM, port released.
        let e = a.open().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAllowed, "{e}");
        assert_eq!(a.status().state, DeviceState::Alarm);
        let mut a = NewportSmc100::new(
            "TRA6PPD",
            SerialConfig::new(&path, 57_600).timeout(Duration::from_millis(300)),
        )
        .home_at_open(true);
        a.open().unwrap();
        // Limits checked before sending.
        assert_eq!(
            a.set_position(9.0, None).unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        assert_eq!(a.set_speed(5.0).unwrap_err().kind(), ErrorKind::OutOfRange);
        // The controller's own refusals, TE letter by letter.
        let refused = |a: &mut NewportSmc100, cmd: &str, val: &str| {
            a.send(cmd, val).unwrap();
            a.last_error(cmd).unwrap_err()
        };
        let e = refused(&mut a, "PA", "9");
        assert_eq!(e.kind(), ErrorKind::OutOfRange, "{e}");
        assert!(e.description().contains("error C"), "{e}");
        let e = refused(&mut a, "PR", "-1");
        assert!(e.description().contains("error G"), "{e}");
        let e = refused(&mut a, "XX", "");
        assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
        assert!(e.description().contains("error A"), "{e}");
        let e = refused(&mut a, "VA", "99");
        assert!(e.description().contains("error C"), "{e}");
        let e = refused(&mut a, "OR", "");
        assert!(e.description().contains("error K"), "{e}");
        a.send("PA", "5").unwrap();
        let e = refused(&mut a, "VA", "0.1");
        assert_eq!(e.kind(), ErrorKind::NotAllowed, "{e}");
        assert!(e.description().contains("error M"), "{e}");
        // A following error while moving: FAULT, Hardware, named.
        sim.with(|s| s.errors = 1 << 5);
        let e = a.poll().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Hardware, "{e}");
        assert!(e.description().contains("following error"), "{e}");
        assert_eq!(a.status().state, DeviceState::Fault);
        // The controller dropped to NOT REFERENCED: motion refused until homed again.
        sim.with(|s| s.errors = 0);
        let e = a.set_position(1.0, None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAllowed, "{e}");
        // An end-of-run bit alone is an ALARM.
        a.home().unwrap();
        a.wait_ready(Duration::from_secs(3)).unwrap();
        sim.with(|s| s.errors = 0b10);
        a.poll().unwrap();
        assert_eq!(a.status().state, DeviceState::Alarm);
        assert!(a.status().text.contains("positive end of run"));
        sim.with(|s| s.errors = 0);
        // DISABLE (MM0): an ALARM, motion refused; MM1 enables again.
        a.send("MM", "0").unwrap();
        a.last_error("MM0").unwrap();
        a.poll().unwrap();
        assert_eq!(a.status().state, DeviceState::Alarm);
        assert_eq!(a.set_speed(0.1).unwrap_err().kind(), ErrorKind::NotAllowed);
        a.send("MM", "1").unwrap();
        a.poll().unwrap();
        assert_eq!(a.status().state, DeviceState::On);
        // Silence, then a vanished controller.
        sim.mute(true);
        assert_eq!(a.position().unwrap_err().kind(), ErrorKind::Timeout);
        assert_eq!(a.status().state, DeviceState::Fault);
        sim.mute(false);
        sim.vanish();
        let e = a.poll().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
    }

    #[test]
    fn speed_mode_ends_at_the_software_limit_whatever_is_resent() {
        // Speed mode is `PA` to the software limit: sent again every loop (as the Machine
        // does), it ends exactly at the limit the controller reports, never past it.
        let p = FakePort::new();
        let mut a = axis(&p).home_at_open(true);
        let mut dev = Smc100::new(0.0);
        dev.limits = (-0.5, 0.5);
        dev.va = 2.0;
        dev.va_max = 4.0;
        dev.ac = 20.0;
        let (_p, sim) = p.play(dev);
        a.open().unwrap();
        let end = Instant::now() + Duration::from_secs(3);
        let mut max_p = f64::MIN;
        loop {
            a.set_speed(2.0).unwrap();
            a.poll().unwrap();
            max_p = max_p.max(a.position().unwrap());
            if a.status().state != DeviceState::Moving && max_p > 0.25 {
                break;
            }
            assert!(Instant::now() < end, "still moving at {max_p} mm");
        }
        assert!((a.position().unwrap() - 0.5).abs() < 1e-9);
        assert!(max_p <= 0.5 + 1e-9, "went past the limit: {max_p} mm");
        let n_pa = sim.with(|s| s.log.iter().filter(|l| l.starts_with("1PA")).count());
        assert_eq!(n_pa, 1, "the move was sent once");
        a.stop().unwrap();
        a.close().unwrap();
    }

    /// The SMC100 simulator, with a line noise that garbles the `TS` answers when asked.
    struct Garbled(Smc100, bool);

    impl super::super::sim::LineDevice for Garbled {
        fn request_ending(&self) -> &'static [u8] {
            self.0.request_ending()
        }
        fn handle(&mut self, request: &str) -> Option<Vec<u8>> {
            if self.1 && request.ends_with("TS") {
                // Two bytes that are not UTF-8: read as two U+FFFD, 6 bytes after "1TS".
                return Some(b"1TS\xff\xfe\r\n".to_vec());
            }
            self.0.handle(request)
        }
    }

    #[test]
    fn a_garbled_status_is_a_communication_error_not_a_panic() {
        let mut p = FakePort::new();
        let mut a = axis(&p).home_at_open(true);
        let m = p.master.take().expect("master");
        let sim = SimThread::spawn(m, Garbled(Smc100::new(0.0), false));
        a.open().unwrap();
        sim.with(|g| g.1 = true);
        let e = a.poll().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
        assert_eq!(a.status().state, DeviceState::Fault);
        sim.with(|g| g.1 = false);
        a.poll().unwrap();
        a.close().unwrap();
    }

    #[test]
    fn check_rejects_a_bad_address() {
        let p = FakePort::new();
        assert_eq!(
            axis(&p).address(32).check().unwrap_err().kind(),
            ErrorKind::Configuration
        );
        axis(&p).check().unwrap();
    }
}
