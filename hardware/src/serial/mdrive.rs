//! [`MDrive`]: a Schneider Electric / Novanta IMS MDrive (MDrivePlus, MDrive Motion Control)
//! integrated stepper programmed in MCode over RS-422/485, as an `Actuator` (with
//! `Positioner`, `PositionFeedback`, `SpeedFeedback`) in mm and mm/s;
//! the simulator its tests play is [`sim::MDriveSim`].
//!
//! Source: IMS *MCode Programming and Software Reference Manual* (the manual could not be
//! opened from here). The commands, replies and error codes were taken from two
//! open-source drivers written from it, which agree: MX `d_mdrive.c` (Illinois Institute of
//! Technology; its `error_code_table` transcribes the manual's error code list) and the
//! EPICS `motorIms` driver (`ImsMDrivePlusMotorAxis.cpp`, as ported in epics-rs). What this
//! driver uses:
//! - framing: commands end with CR LF; in *party mode* a device name character is sent
//!   before each command ([`MDrive::device_name`]); `EM=1` (sent at open) turns the echo
//!   of commands off, after which the drive sends CR LF after each command line and a
//!   `PR` query's value on a line of its own (MX discards the CR LF, then reads the line);
//!   the echo and prompt the drive sends before `EM=1` takes effect are skipped;
//! - immediate commands: `MA <steps>` move absolute, `MR <steps>` move relative, `SL <v>`
//!   slew at `v` steps/s (signed; `SL 0` decelerates to a stop: MX's soft abort);
//! - variables: `VM=` max velocity and `VI=` initial velocity (steps/s), `A=` / `D=`
//!   acceleration / deceleration (steps/s²), `P=` set the position counter, `ER=0` clear
//!   the error, `ST=0` clear the stall flag, `DE=1` enable the drive;
//! - queries `PR <var>`: `P` position (steps), `V` velocity (steps/s), `MV` moving flag
//!   (1/0), `ST` stall flag, `ER` error code, `VR` firmware version;
//! - error codes of `PR ER` ([`error_text`]): 1–10 I/O faults and misuse, 20–32 variable
//!   and label errors (21 incorrect value, 22/23 `VI`/`VM` order), 40–44 program state,
//!   60 unknown command, 61 illegal baud rate, 80–82 home, 83/84 positive/negative LIMIT
//!   switch reached, 85 `MA`/`MR` not allowed while in motion, 86 stall detected.
//!
//! Units: `steps_per_mm` (microsteps per revolution, the drive's `MS` setting × full
//! steps, over the lead in mm). `MA`/`MR` are refused by the drive while it moves (85), so
//! a new position while moving sends `SL 0` and the move is sent by
//! [`poll`](Actuator::poll) once `PR MV` reads 0. After every motion command `PR ER` is read
//! and a non-zero code is reported (and cleared with `ER=0`). Status: MOVING while `MV` is
//! 1; ALARM after a LIMIT switch (83/84); FAULT on a stall (86) or another hardware error,
//! silence or a vanished port. A query's value must come within the serial timeout: a
//! drive that sends only empty lines (or echoes) is a Timeout error naming it, not an
//! endless wait.

use super::{LineEnding, SerialConfig, SerialLink};
use crabby::hardware::{
    Actuator, DeviceState, PositionFeedback, Positioner, SpeedFeedback, Status,
};
use crabby::{Error, ErrorKind, Result};
use std::time::{Duration, Instant};

/// The text of an MCode error code and the error kind it maps to.
pub fn error_text(code: i32) -> (&'static str, ErrorKind) {
    use ErrorKind::*;
    match code {
        0 => ("no error", Internal),
        1..=5 => ("I/O fault", Hardware),
        6 => ("an I/O is already set to this type", Configuration),
        7 => ("tried to set an input or defined I/O", Configuration),
        8 => (
            "tried to set an I/O to an incorrect I/O type",
            Configuration,
        ),
        9 => (
            "tried to write to an I/O set as input or typed",
            Configuration,
        ),
        10 => ("illegal I/O number", Configuration),
        20 => ("tried to set an unknown variable or flag", Configuration),
        21 => ("tried to set an incorrect value", OutOfRange),
        22 => (
            "VI (initial velocity) set greater than or equal to VM",
            OutOfRange,
        ),
        23 => ("VM (max velocity) set less than or equal to VI", OutOfRange),
        24 => ("illegal data entered", Configuration),
        25 => ("variable or flag is read only", Configuration),
        26 => (
            "variable or flag cannot be incremented or decremented",
            Configuration,
        ),
        27 => ("trip not defined", Configuration),
        28 | 29 => (
            "trying to redefine a label, variable or embedded command",
            Configuration,
        ),
        30 => ("unknown label or user variable", Configuration),
        31 => (
            "program label or user variable table is full",
            Configuration,
        ),
        32 => ("trying to set a label", Configuration),
        40 => ("program not running", NotAllowed),
        41 => ("program running", NotAllowed),
        42 => ("illegal program address", Configuration),
        43 => ("tried to overflow the program stack", NotAllowed),
        44 => ("program locked", NotAllowed),
        60 => ("tried to enter an unknown command", Configuration),
        61 => ("trying to set an illegal baud rate", Configuration),
        80 => ("HOME switch not defined", Configuration),
        81 => ("HOME type not defined", Configuration),
        82 => ("went to both LIMITS and did not find home", Hardware),
        83 => ("reached the positive LIMIT switch", Hardware),
        84 => ("reached the negative LIMIT switch", Hardware),
        85 => ("MA or MR not allowed while in motion", NotAllowed),
        86 => ("stall detected", Hardware),
        _ => ("unknown error code", Communication),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Pending {
    Absolute(i64, Option<i64>),
}

/// An MDrive on a serial port, positions in mm, speeds in mm/s.
///
/// ```no_run
/// use crabby_hardware::serial::{MDrive, SerialConfig};
/// // 200 steps/rev × 256 microsteps, 2 mm lead: 25 600 steps per mm.
/// let axis = MDrive::new("z", SerialConfig::new("/dev/ttyUSB0", 9600), 25_600.0).limits(5.0, 20.0);
/// ```
#[derive(Debug)]
pub struct MDrive {
    /// The device's name (origin of its errors).
    pub name: String,
    /// The port (the drive's `BD` setting; 9600 8N1 by default).
    pub serial: SerialConfig,
    /// Steps (microsteps) per mm.
    pub steps_per_mm: f64,
    /// Speed limit, mm/s (sent as `VM`; default 5).
    pub max_speed: f64,
    /// Acceleration and deceleration, mm/s² (sent as `A` and `D`; default 20).
    pub acceleration: f64,
    /// Party-mode device name (`DN`), if the drive is on a multidrop line.
    pub device_name: Option<char>,
    link: Option<SerialLink>,
    status: Status,
    pending: Option<Pending>,
    /// The position command last sent (or waiting): the same one again is not re-sent.
    active: Option<Pending>,
    /// The slew speed last sent, steps/s.
    slew: Option<i64>,
    vm_sent: Option<i64>,
    last_poll: Option<Instant>,
    version: String,
}

/// How often [`Actuator::poll`] reads the drive's flags.
const POLL_PERIOD: Duration = Duration::from_millis(100);

impl MDrive {
    /// A drive on `serial` with `steps_per_mm`.
    pub fn new(name: impl Into<String>, serial: SerialConfig, steps_per_mm: f64) -> Self {
        MDrive {
            name: name.into(),
            serial,
            steps_per_mm,
            max_speed: 5.0,
            acceleration: 20.0,
            device_name: None,
            link: None,
            status: Status::off(),
            pending: None,
            active: None,
            slew: None,
            vm_sent: None,
            last_poll: None,
            version: String::new(),
        }
    }
    /// Sets the speed limit (mm/s) and acceleration (mm/s²).
    pub fn limits(mut self, max_speed: f64, acceleration: f64) -> Self {
        self.max_speed = max_speed;
        self.acceleration = acceleration;
        self
    }
    /// Uses party mode with this device name.
    pub fn device_name(mut self, c: char) -> Self {
        self.device_name = Some(c);
        self
    }
    /// The firmware version (`PR VR`), once open.
    pub fn version(&self) -> &str {
        &self.version
    }

    fn err(&self, kind: ErrorKind, d: impl Into<String>) -> Error {
        Error::new(kind, d).with_origin(&self.name)
    }

    fn link(&mut self) -> Result<&mut SerialLink> {
        let name = &self.name;
        self.link.as_mut().ok_or_else(|| {
            Error::new(ErrorKind::NotAllowed, "the MDrive is not open").with_origin(name)
        })
    }

    /// Sends one MCode line (with the party-mode name if set); no answer is awaited.
    pub fn send(&mut self, line: &str) -> Result<()> {
        let full = match self.device_name {
            Some(c) => format!("{c}{line}"),
            None => line.to_owned(),
        };
        self.link()?.write_line(&full, LineEnding::CrLf)
    }

    /// `PR <var>`: the value printed, skipping the empty lines the drive sends after each
    /// command line. The value must come within the serial timeout: a drive sending only
    /// empty lines is a [`Timeout`](ErrorKind::Timeout) error after at most twice the
    /// timeout (each line also waits at most the timeout).
    pub fn print(&mut self, var: &str) -> Result<String> {
        self.send(&format!("PR {var}"))?;
        self.read_value(&format!("PR {var}"), |l| !l.is_empty())
    }

    /// Reads lines (trimmed) until one is `wanted`, for at most the serial timeout (a line
    /// arriving after it ends the wait with a Timeout error naming `what`).
    fn read_value(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> Result<String> {
        let timeout = self.serial.timeout;
        let started = Instant::now();
        let mut skipped = 0usize;
        let link = self.link()?;
        loop {
            let l = link.read_line(LineEnding::CrLf)?;
            let l = l.trim().trim_start_matches('>').trim();
            if wanted(l) {
                return Ok(l.to_owned());
            }
            skipped += 1;
            if started.elapsed() >= timeout {
                return Err(self.err(
                    ErrorKind::Timeout,
                    format!(
                        "no answer to {what} within {timeout:?}: {skipped} empty or echoed lines instead (port {}); check the echo mode and the line",
                        self.serial.port
                    ),
                ));
            }
        }
    }

    fn print_num(&mut self, var: &str) -> Result<f64> {
        let v = self.print(var)?;
        v.parse().map_err(|_| {
            self.err(
                ErrorKind::Communication,
                format!("the drive printed {v:?} for PR {var}, not a number"),
            )
        })
    }

    /// `PR ER`: `Ok` if 0, else the error (cleared with `ER=0`; a stall flag with `ST=0`);
    /// updates the status.
    pub fn check_error(&mut self, after: &str) -> Result<()> {
        let code = self.print_num("ER")? as i32;
        if code == 0 {
            return Ok(());
        }
        self.send("ER=0")?;
        // The motion stopped or was refused: the next command is sent even if repeated.
        self.active = None;
        self.slew = None;
        let (what, kind) = error_text(code);
        let msg = format!("the drive reports error {code} after {after}: {what}");
        match code {
            83 | 84 => self.status = Status::new(DeviceState::Alarm, msg.clone()),
            86 => {
                self.send("ST=0")?;
                self.status = Status::fault(format!(
                    "{msg}; check the load and the current, then restart"
                ));
            }
            _ if kind == ErrorKind::Hardware => self.status = Status::fault(msg.clone()),
            _ => {}
        }
        Err(self.err(kind, msg))
    }

    fn steps(&self, mm: f64) -> i64 {
        (mm * self.steps_per_mm).round() as i64
    }

    fn check_speed(&self, v: f64) -> Result<()> {
        if !v.is_finite() || v.abs() > self.max_speed * (1.0 + 1e-9) {
            return Err(self.err(
                ErrorKind::OutOfRange,
                format!("speed {v} mm/s is outside ±{} mm/s", self.max_speed),
            ));
        }
        Ok(())
    }

    fn set_vm(&mut self, vm: i64) -> Result<()> {
        if self.vm_sent != Some(vm) {
            self.send(&format!("VM={vm}"))?;
            self.check_error("VM")?;
            self.vm_sent = Some(vm);
        }
        Ok(())
    }

    fn move_absolute(&mut self, p: Pending) -> Result<()> {
        let Pending::Absolute(target, vm) = p;
        let vm = vm.unwrap_or(self.steps(self.max_speed));
        self.set_vm(vm)?;
        self.send(&format!("MA {target}"))?;
        self.check_error(&format!("MA {target}"))?;
        self.status = Status::moving(format!("to {} mm", target as f64 / self.steps_per_mm));
        Ok(())
    }

    fn fault<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            if matches!(e.kind(), ErrorKind::Communication | ErrorKind::Timeout) {
                self.status = Status::fault(e.to_string());
            }
        }
        r
    }
}

impl Actuator for MDrive {
    fn name(&self) -> &str {
        &self.name
    }
    fn check(&self) -> Result<()> {
        self.serial.check(&self.name)?;
        for (n, v, u) in [
            ("steps_per_mm", self.steps_per_mm, ""),
            ("max_speed", self.max_speed, "mm/s"),
            ("acceleration", self.acceleration, "mm/s²"),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::config(format!(
                    "parameter '{n}' is {v}; it must be a finite number above 0 {u}"
                ))
                .with_origin(&self.name));
            }
        }
        if self.max_speed * self.steps_per_mm > 5_000_000.0 {
            return Err(Error::config(format!(
                "max_speed {} mm/s is {} steps/s, above the MDrive's 5 000 000 steps/s",
                self.max_speed,
                self.max_speed * self.steps_per_mm
            ))
            .with_origin(&self.name));
        }
        if self.device_name.is_some_and(|c| !c.is_ascii_alphanumeric()) {
            return Err(
                Error::config("device_name must be a letter or digit (the drive's DN)")
                    .with_origin(&self.name),
            );
        }
        Ok(())
    }
    /// Opens the port, turns the echo off (`EM=1`), reads the version, clears the error and
    /// stall flags, enables the drive and sends the velocity and accelerations.
    fn open(&mut self) -> Result<()> {
        let mut link = self.serial.open(&self.name)?;
        link.discard_input()?;
        self.link = Some(link);
        self.vm_sent = None;
        self.pending = None;
        self.active = None;
        self.slew = None;
        let r = (|| {
            self.send("EM=1")?;
            // What the drive echoed before EM=1 took effect is skipped by `print` (empty
            // lines) and here (the echo itself, the prompt).
            self.send("PR VR")?;
            self.version = self.read_value("PR VR", |l| {
                !l.is_empty() && !l.ends_with("EM=1") && !l.ends_with("PR VR")
            })?;
            self.send("ER=0")?;
            self.send("ST=0")?;
            self.send("DE=1")?;
            let a = self.steps(self.acceleration);
            self.send(&format!("A={a}"))?;
            self.send(&format!("D={a}"))?;
            self.set_vm(self.steps(self.max_speed))?;
            self.check_error("open")
        })();
        let r = self.fault(r);
        match &r {
            Ok(()) => self.status = Status::on(format!("MDrive {}", self.version)),
            Err(e) => {
                if self.status.state == DeviceState::Off {
                    self.status = Status::fault(e.to_string());
                }
                self.link = None;
            }
        }
        r
    }
    /// Slews at `speed` mm/s (`SL`); 0 decelerates to a stop.
    fn set_speed(&mut self, speed: f64) -> Result<()> {
        self.check_speed(speed)?;
        let s = self.steps(speed);
        if self.slew == Some(s) && self.active.is_none() {
            return Ok(()); // the Machine sends its latest command every loop
        }
        let r = (|| {
            self.pending = None;
            self.active = None;
            self.slew = Some(s);
            self.send(&format!("SL {s}"))?;
            self.check_error(&format!("SL {s}"))?;
            if s != 0 {
                self.status = Status::moving(format!("{speed} mm/s"));
            }
            Ok(())
        })();
        self.fault(r)
    }
    /// Every 100 ms (and at once if a move waits): the moving flag, a waiting move, and
    /// the error code (stall, limit).
    fn poll(&mut self) -> Result<()> {
        if self.pending.is_none() && self.last_poll.is_some_and(|t| t.elapsed() < POLL_PERIOD) {
            return Ok(());
        }
        self.last_poll = Some(Instant::now());
        let r = (|| {
            self.check_error("the last command")?;
            let moving = self.print_num("MV")? != 0.0;
            if !moving {
                if let Some(p) = self.pending.take() {
                    return self.move_absolute(p);
                }
            }
            if self.status.state != DeviceState::Alarm {
                self.status = if moving {
                    Status::moving("")
                } else {
                    Status::on("stopped")
                };
            }
            Ok(())
        })();
        self.fault(r)
    }
    /// `SL 0`: decelerates to a stop.
    fn stop(&mut self) -> Result<()> {
        self.pending = None;
        self.active = None;
        self.slew = Some(0);
        let r = self.send("SL 0");
        self.fault(r)
    }
    fn close(&mut self) -> Result<()> {
        self.link = None;
        super::closed_status(&mut self.status);
        Ok(())
    }
    fn status(&self) -> Status {
        self.status.clone()
    }
}

impl Positioner for MDrive {
    /// Moves to `position` mm at `speed` (sent as `VM`); while moving, decelerates first
    /// and [`poll`](Actuator::poll) sends the move once stopped.
    fn set_position(&mut self, position: f64, speed: Option<f64>) -> Result<()> {
        if !position.is_finite() {
            return Err(self.err(
                ErrorKind::OutOfRange,
                format!("position {position} mm is not finite"),
            ));
        }
        if let Some(s) = speed {
            if s <= 0.0 {
                return Err(self.err(
                    ErrorKind::OutOfRange,
                    format!("move speed {s} mm/s must be above 0"),
                ));
            }
            self.check_speed(s)?;
        }
        let p = Pending::Absolute(self.steps(position), speed.map(|s| self.steps(s)));
        if self.active == Some(p) {
            return Ok(()); // the Machine sends its latest command every loop
        }
        self.active = Some(p);
        self.slew = None;
        let r = (|| {
            if self.print_num("MV")? != 0.0 {
                self.send("SL 0")?;
                self.pending = Some(p);
                return Ok(());
            }
            self.pending = None;
            self.move_absolute(p)
        })();
        if r.is_err() {
            self.active = None;
        }
        self.fault(r)
    }
}

impl PositionFeedback for MDrive {
    fn position(&mut self) -> Result<f64> {
        let r = self.print_num("P");
        Ok(self.fault(r)? / self.steps_per_mm)
    }
}

impl SpeedFeedback for MDrive {
    /// `PR V`, in mm/s.
    fn speed(&mut self) -> Result<f64> {
        let r = self.print_num("V");
        Ok(self.fault(r)? / self.steps_per_mm)
    }
}

pub mod sim {
    //! [`MDriveSim`]: a simulated MDrive: echo until `EM=1`, trapezoidal moves (`MA`,
    //! `MR`) and slews (`SL`) with `VM`/`A`/`D`, limit switches, stall injection, the `ER`
    //! error codes, and a drive that babbles (sends empty lines unasked and answers
    //! nothing: [`MDriveSim::babble`]).
    use super::super::sim::LineDevice;
    use std::time::Instant;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Motion {
        Idle,
        Move(f64),
        Slew(f64),
    }

    /// A simulated MDrive (positions in steps).
    #[derive(Debug)]
    pub struct MDriveSim {
        /// Party-mode name, if any (commands must start with it).
        pub device_name: Option<char>,
        /// Echo mode (0 at power-up: full echo and prompt).
        pub em: u8,
        /// Position counter, steps.
        pub pos: f64,
        /// Velocity, steps/s.
        pub vel: f64,
        /// `VI`, `VM` (steps/s), `A`, `D` (steps/s²).
        pub vi: f64,
        /// Max velocity, steps/s.
        pub vm: f64,
        /// Acceleration, steps/s².
        pub a: f64,
        /// Deceleration, steps/s².
        pub d: f64,
        /// Negative and positive limit switch positions, steps.
        pub limits: (f64, f64),
        /// Error code (`ER`).
        pub er: i32,
        /// Stall flag (`ST`).
        pub stall: bool,
        /// Make the next motion stall (the motor loses steps).
        pub stall_next_motion: bool,
        /// A fault: the drive answers nothing and sends CR LF unasked, continuously (the
        /// empty lines a driver skips while waiting for a value).
        pub babble: bool,
        motion: Motion,
        t: Instant,
        /// Every request received.
        pub log: Vec<String>,
    }

    impl MDriveSim {
        /// A drive at position 0, echo on, VI 1000, VM 768 000, A = D = 1 000 000 (the
        /// MCode defaults as MX reads them: `PR VI`/`PR VM`/`PR A`), limits ±1e9 steps.
        pub fn new() -> Self {
            MDriveSim {
                device_name: None,
                em: 0,
                pos: 0.0,
                vel: 0.0,
                vi: 1000.0,
                vm: 768_000.0,
                a: 1_000_000.0,
                d: 1_000_000.0,
                limits: (-1e9, 1e9),
                er: 0,
                stall: false,
                stall_next_motion: false,
                babble: false,
                motion: Motion::Idle,
                t: Instant::now(),
                log: Vec::new(),
            }
        }

        /// Whether the motor moves (`MV`).
        pub fn moving(&self) -> bool {
            self.motion != Motion::Idle
        }

        /// Integrates the motion up to now.
        pub fn advance(&mut self) {
            let now = Instant::now();
            let mut left = now.duration_since(self.t).as_secs_f64();
            self.t = now;
            while left > 0.0 && self.motion != Motion::Idle {
                let dt = left.min(2e-4);
                left -= dt;
                let (want, target) = match self.motion {
                    Motion::Idle => (0.0, None),
                    Motion::Slew(v) => (v, None),
                    Motion::Move(t) => {
                        let dist = t - self.pos;
                        let stop = self.vel * self.vel / (2.0 * self.d);
                        let w = if self.vel * dist >= 0.0 && dist.abs() <= stop {
                            0.0
                        } else {
                            dist.signum() * self.vm
                        };
                        (w, Some(t))
                    }
                };
                let rate = if want.abs() < self.vel.abs() || want * self.vel < 0.0 {
                    self.d
                } else {
                    self.a
                };
                let before = target.map(|t| t - self.pos);
                self.vel += (want - self.vel).clamp(-rate * dt, rate * dt);
                self.pos += self.vel * dt;
                if let (Some(t), Some(b)) = (target, before) {
                    let after = t - self.pos;
                    if after == 0.0 || after.signum() != b.signum() {
                        self.pos = t;
                        self.vel = 0.0;
                        self.motion = Motion::Idle;
                    }
                } else if want == 0.0 && self.vel == 0.0 {
                    self.motion = Motion::Idle;
                }
                if self.pos >= self.limits.1 || self.pos <= self.limits.0 {
                    self.er = if self.pos >= self.limits.1 { 83 } else { 84 };
                    self.pos = self.pos.clamp(self.limits.0, self.limits.1);
                    self.vel = 0.0;
                    self.motion = Motion::Idle;
                }
            }
        }

        fn start(&mut self, m: Motion) {
            if self.stall_next_motion {
                self.stall_next_motion = false;
                self.stall = true;
                self.er = 86;
                self.vel = 0.0;
                self.motion = Motion::Idle;
                return;
            }
            self.motion = m;
        }
    }

    impl Default for MDriveSim {
        fn default() -> Self {
            Self::new()
        }
    }

    impl LineDevice for MDriveSim {
        fn request_ending(&self) -> &'static [u8] {
            b"\r\n"
        }

        fn handle(&mut self, request: &str) -> Option<Vec<u8>> {
            self.log.push(request.to_owned());
            self.advance();
            if self.babble {
                return None;
            }
            let mut line = request.trim();
            if let Some(n) = self.device_name {
                match line.strip_prefix(n) {
                    Some(rest) => line = rest,
                    None => return None, // for another drive
                }
            }
            let mut out = String::new();
            if self.em == 0 {
                out.push_str(line);
                out.push_str("\r\n");
            }
            let up = line.to_ascii_uppercase();
            let (cmd, arg) = match up.split_once(['=', ' ']) {
                Some((c, a)) => (c.trim().to_owned(), a.trim().to_owned()),
                None => (up.clone(), String::new()),
            };
            let num = arg.parse::<f64>();
            let mut printed: Option<String> = None;
            match (cmd.as_str(), num) {
                ("EM", Ok(v)) if (0.0..=3.0).contains(&v) => self.em = v as u8,
                ("PR", _) => {
                    printed = Some(match arg.as_str() {
                        "P" => format!("{}", self.pos.round() as i64),
                        "V" => format!("{}", self.vel.round() as i64),
                        "MV" => (self.moving() as u8).to_string(),
                        "ST" => (self.stall as u8).to_string(),
                        "ER" => self.er.to_string(),
                        "VR" => "1.000".to_string(),
                        "VM" => format!("{}", self.vm),
                        _ => {
                            self.er = 20;
                            String::new()
                        }
                    })
                }
                ("ER", Ok(0.0)) => self.er = 0,
                ("ST", Ok(0.0)) => self.stall = false,
                ("DE", Ok(_)) => {}
                ("VM", Ok(v)) => {
                    if v <= self.vi {
                        self.er = 23;
                    } else {
                        self.vm = v;
                    }
                }
                ("VI", Ok(v)) => {
                    if v >= self.vm {
                        self.er = 22;
                    } else {
                        self.vi = v;
                    }
                }
                ("A", Ok(v)) if v > 0.0 => self.a = v,
                ("D", Ok(v)) if v > 0.0 => self.d = v,
                ("P", Ok(v)) => self.pos = v,
                ("MA", Ok(v)) | ("MR", Ok(v)) => {
                    if self.moving() {
                        self.er = 85;
                    } else {
                        let t = if cmd == "MA" { v } else { self.pos + v };
                        self.start(Motion::Move(t));
                    }
                }
                ("SL", Ok(v)) => {
                    if v == 0.0 {
                        if self.moving() {
                            self.motion = Motion::Slew(0.0);
                        }
                    } else {
                        self.start(Motion::Slew(v));
                    }
                }
                (
                    "A" | "D" | "VM" | "VI" | "P" | "MA" | "MR" | "SL" | "ER" | "ST" | "EM" | "DE",
                    _,
                ) => self.er = 21,
                _ => self.er = 60,
            }
            if self.em != 0 || printed.is_none() {
                // Half duplex: CR LF after each command line (MX discards it).
                if self.em != 0 {
                    out.push_str("\r\n");
                }
            }
            if let Some(p) = printed {
                if !p.is_empty() {
                    out.push_str(&p);
                    out.push_str("\r\n");
                }
            }
            if self.em == 0 {
                out.push('>');
            }
            (!out.is_empty()).then(|| out.into_bytes())
        }

        fn unasked(&mut self) -> Option<Vec<u8>> {
            self.babble.then(|| b"\r\n".to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::FakePort;
    use super::sim::MDriveSim;
    use super::*;

    const SPM: f64 = 1000.0;

    fn drive(p: &FakePort) -> MDrive {
        MDrive::new(
            "mdrive",
            SerialConfig::new(&p.path, 9600).timeout(Duration::from_millis(300)),
            SPM,
        )
        .limits(10.0, 100.0)
    }

    fn settle(d: &mut MDrive, s: f64) {
        let end = Instant::now() + Duration::from_secs_f64(s);
        loop {
            d.poll().unwrap();
            if d.status().state != DeviceState::Moving && d.pending.is_none() {
                return;
            }
            assert!(Instant::now() < end, "still moving after {s} s");
            std::thread::sleep(Duration::from_millis(5));
            d.last_poll = None;
        }
    }

    #[test]
    fn open_moves_slews_and_stops() {
        let p = FakePort::new();
        let mut d = drive(&p).device_name('A');
        d.check().unwrap();
        let mut dev = MDriveSim::new();
        dev.device_name = Some('A');
        let (_p, sim) = p.play(dev);
        d.open().unwrap();
        assert_eq!(d.version(), "1.000");
        assert_eq!(sim.with(|s| (s.em, s.vm, s.a)), (1, 10_000.0, 100_000.0));
        let log = sim.with(|s| s.log.clone());
        assert_eq!(&log[..3], ["AEM=1", "APR VR", "AER=0"]);
        // A 2 mm move at 10 mm/s, 100 mm/s²: 0.1 s ramps, 0.3 s in all.
        let t0 = Instant::now();
        d.set_position(2.0, None).unwrap();
        let t_sent = t0.elapsed().as_secs_f64(); // the move started in [0, t_sent]
        assert_eq!(d.status().state, DeviceState::Moving);
        std::thread::sleep(Duration::from_millis(50));
        let t_lo = t0.elapsed().as_secs_f64();
        let v = d.speed().unwrap();
        let t_hi = t0.elapsed().as_secs_f64();
        // On the trapezoid's speed (ramps of 0.1 s), whatever the machine's load did to the
        // 50 ms: within the speeds of the moments the answer can describe.
        let profile = |t: f64| (100.0 * t).min(10.0).min(100.0 * (0.3 - t)).max(0.0);
        let (a, b) = (t_lo - t_sent, t_hi);
        let (lo, hi) = (0..=1000)
            .map(|i| profile(a + (b - a) * f64::from(i) / 1000.0))
            .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
        assert!(
            v > 0.0 && v >= lo - 1e-6 && v <= hi + 1e-6,
            "accelerating: {v} mm/s not in [{lo}, {hi}] (profile between {a} and {b} s)"
        );
        settle(&mut d, 3.0);
        assert!(t0.elapsed().as_secs_f64() > 0.28);
        assert!((d.position().unwrap() - 2.0).abs() < 1e-3);
        // The same target again (the Machine sends its latest command every loop): nothing
        // is sent.
        let n = sim.with(|s| s.log.len());
        d.set_position(2.0, None).unwrap();
        assert_eq!(sim.with(|s| s.log.len()), n);
        // Slew, then a new position while slewing: SL 0 first, MA once stopped.
        d.set_speed(-5.0).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(d.speed().unwrap() < -4.0);
        d.set_position(1.0, Some(4.0)).unwrap();
        assert!(d.pending.is_some());
        settle(&mut d, 3.0);
        assert!((d.position().unwrap() - 1.0).abs() < 1e-3);
        let log = sim.with(|s| s.log.clone());
        assert!(
            log.contains(&"ASL 0".to_string()) && log.contains(&"AMA 1000".to_string()),
            "{log:?}"
        );
        d.stop().unwrap();
        d.close().unwrap();
    }

    #[test]
    fn error_codes_stall_limits_silence_and_vanishing() {
        let p = FakePort::new();
        let mut d = drive(&p);
        let mut dev = MDriveSim::new();
        dev.limits = (-500.0, 3000.0);
        let (_p, mut sim) = p.play(dev);
        d.open().unwrap();
        // 60 unknown command, 21 bad value, 23 VM <= VI: each reported and cleared.
        d.send("XYZ").unwrap();
        let e = d.check_error("XYZ").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
        assert!(e.description().contains("error 60"), "{e}");
        d.send("A=fast").unwrap();
        assert_eq!(
            d.check_error("A").unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        d.send("VM=10").unwrap();
        let e = d.check_error("VM").unwrap_err();
        assert!(e.description().contains("error 23"), "{e}");
        d.check_error("nothing").unwrap();
        d.vm_sent = None;
        // 85: MA while moving, straight to the drive.
        d.set_speed(5.0).unwrap();
        d.send("MA 0").unwrap();
        let e = d.check_error("MA").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAllowed, "{e}");
        // 83: the positive limit switch is reached: ALARM.
        let end = Instant::now() + Duration::from_secs(3);
        let e = loop {
            d.last_poll = None;
            if let Err(e) = d.poll() {
                break e;
            }
            assert!(Instant::now() < end, "no limit reached");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(e.description().contains("positive LIMIT"), "{e}");
        assert_eq!(d.status().state, DeviceState::Alarm);
        // 86: a stall: FAULT, stall flag cleared.
        sim.with(|s| s.stall_next_motion = true);
        let e = d.set_position(0.0, None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Hardware, "{e}");
        assert!(e.description().contains("stall"), "{e}");
        assert_eq!(d.status().state, DeviceState::Fault);
        // A query after ST=0: the drive has processed it.
        d.position().unwrap();
        assert!(!sim.with(|s| s.stall));
        // Silence, then a vanished drive.
        sim.mute(true);
        assert_eq!(d.position().unwrap_err().kind(), ErrorKind::Timeout);
        sim.mute(false);
        sim.vanish();
        let e = d.position().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
        assert_eq!(d.status().state, DeviceState::Fault);
    }

    #[test]
    fn check_and_limits() {
        let p = FakePort::new();
        assert!(drive(&p).limits(1e4, 1.0).check().is_err());
        assert!(drive(&p).device_name('*').check().is_err());
        let mut d = drive(&p);
        assert_eq!(d.set_speed(11.0).unwrap_err().kind(), ErrorKind::OutOfRange);
        assert_eq!(d.set_speed(1.0).unwrap_err().kind(), ErrorKind::NotAllowed);
        assert_eq!(error_text(86).1, ErrorKind::Hardware);
        assert_eq!(error_text(85).1, ErrorKind::NotAllowed);
    }
    /// Runs `f` on the drive in a thread and waits at most `within` for its result (a
    /// driver stuck in a loop must fail the test, not hang it; dropping the simulator then
    /// closes the port, which ends the loop).
    fn within<T: Send + 'static>(
        d: MDrive,
        within: Duration,
        f: impl FnOnce(&mut MDrive) -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut d = d;
            let r = f(&mut d);
            let _ = tx.send(r);
        });
        rx.recv_timeout(within)
            .expect("the driver did not return: it loops on the empty lines")
    }

    #[test]
    fn a_drive_streaming_empty_lines_is_a_timeout_not_an_endless_wait() {
        // `print` and the version read at open skip empty lines; a drive that sends only
        // those must end them with a Timeout naming it, within about the serial timeout
        // (300 ms here; each line waits at most that too).
        let p = FakePort::new();
        let mut d = drive(&p);
        let (_p, sim) = p.play(MDriveSim::new());
        d.open().unwrap();
        sim.with(|s| s.babble = true);
        let r = within(d, Duration::from_secs(5), |d| d.position());
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(e.to_string().contains("mdrive"), "{e}");
        assert!(e.description().contains("PR P"), "{e}");
        // At open: the version loop.
        let p = FakePort::new();
        let d = drive(&p);
        let mut dev = MDriveSim::new();
        dev.babble = true;
        let (_p, _sim) = p.play(dev);
        let r = within(d, Duration::from_secs(5), |d| {
            let r = d.open();
            (r, d.status().state)
        });
        let (r, state) = r;
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(e.to_string().contains("mdrive"), "{e}");
        assert!(e.description().contains("PR VR"), "{e}");
        assert_eq!(state, DeviceState::Fault);
    }
}
