//! [`PololuTic`]: a Pololu Tic stepper motor controller (T500, T825, T834, T249, 36v4) on
//! its TTL serial interface, as an [`Actuator`].
//!
//! Why this controller: the Tic is a widespread, inexpensive lab stepper controller (Crappy
//! ships a driver for it), its serial protocol is fully documented in Pololu's *Tic Stepper
//! Motor Controller User's Guide* (document 0J71, © 2001–2018; <https://www.pololu.com/docs/0J71>),
//! and it is binary and compact, so a test can play the device byte for byte on a
//! pseudo-terminal.
//!
//! Every byte below was checked against that guide (issue 15; the round-1 version was
//! written from memory and turned out to match, except that an acceleration below the
//! Tic's minimum of 100 was silently raised by the Tic: it is now refused by `check`), and
//! against Pololu's reference implementation named by the guide (§9), the `TicSerial` class
//! of `pololu/tic-arduino` (`Tic.h`: `TicCommand`, `VarOffset`; `Tic.cpp`: `commandW32`).
//! The unit test `bytes_match_the_guides_own_examples` pins the guide's worked examples.
//! One discrepancy inside the guide: its §9 worked example of a 32-bit write (target
//! position 1,234,567,890) prints the MSbs byte as `0x0A`, while its own rule ("bit 0 is
//! the MSb for the first data byte") and the reference implementation give `0x05`; this
//! driver follows the rule and the reference implementation.
//!
//! The protocol used is the *compact protocol* (no device number), or the *Pololu
//! protocol* (`0xAA`, device number, command & 0x7F) when
//! [`device_number`](PololuTic::device_number) is set (guide §9, "Serial protocols"):
//! - quick commands are one byte (§9 "Quick"; bytes from §8 "Command reference"):
//!   halt and hold `0x89`, energize `0x85`, de-energize `0x86`, exit safe start `0x83`,
//!   enter safe start `0x8F`, reset command timeout `0x8C`;
//! - 32-bit writes are the command byte, one byte holding the most significant bit of each
//!   of the four little-endian data bytes (bit 0 for the first), then the four bytes with
//!   that bit cleared (§9 "32-bit write"): set target position `0xE0` (microsteps), set
//!   target velocity `0xE3` (±500 000 000 microsteps per 10 000 s), set max speed `0xE6`
//!   (0–500 000 000 microsteps per 10 000 s), set max acceleration `0xEA` and set max
//!   deceleration `0xE9` (100–2 147 483 647 microsteps per 100 s²) (§8);
//! - get variable `0xA1, offset, length` (§8 "Get variable", §9 "Block read": length
//!   1–15) answers `length` raw bytes, little-endian; the offsets are those of §7
//!   "Variable reference": operation state (u8) at `0x00` (0 reset, 2 de-energized, 4 soft
//!   error, 6 waiting for ERR line, 8 starting up, 10 normal), error status (u16) at `0x02`
//!   (bits 0–8, [`TicError::BITS`]), current position (i32, microsteps) at `0x22`, current
//!   velocity (i32, microsteps per 10 000 s) at `0x26`.
//!
//! Units seen by crabby: **mm** and **mm/s** through
//! [`microsteps_per_mm`](PololuTic::microsteps_per_mm) (full steps per mm × the step mode
//! set in the Tic). Speeds go to the Tic in microsteps per 10 000 s, accelerations in
//! microsteps per 100 s².
//!
//! Safety: [`stop`](Actuator::stop) sends *halt and hold* (immediate stop, motor kept
//! energized so a load stays put), [`close`](Actuator::close) halts again and *enters safe
//! start*, so the motor cannot move again until a new [`open`](Actuator::open). The Tic's own
//! command timeout (default 1 s) also stops the motor if this process dies: every read
//! sends *reset command timeout*, and so does
//! [`poll`](Actuator::poll), which the Machine calls every loop (rate-limited to 10 Hz).
//!
//! Safe start and the command timeout (serial mode): the Tic raises *command timeout* after
//! 1 s without a command (also right after power-up), and whenever any error occurs it
//! also raises *safe start violation*, which only an *exit safe start* command clears; until
//! then it ignores every motion command. So:
//! - [`open`](Actuator::open) first sends *reset command timeout*, then reads the flags
//!   (a stale timeout is not a fault), energizes and exits safe start;
//! - the test may then wait at the start barrier for more than 1 s: the first
//!   [`poll`](Actuator::poll) (the Machine calls it in `begin`), or the first motion command
//!   if nothing polled, energizes and exits safe start again before anything moves;
//! - from then on a *safe start violation* is a fault like the others (the Tic would
//!   silently ignore the commands otherwise).
//! - If `open` fails after energizing, it sends *halt and hold* and *enter safe start*
//!   (best effort) before dropping the port.

use super::{record_fault, SerialConfig, SerialLink};
use crabby::hardware::{
    Actuator, DeviceState, PositionFeedback, Positioner, SpeedFeedback, Status,
};
use crabby::{Error, ErrorKind, Result};

const CMD_SET_TARGET_POSITION: u8 = 0xE0;
const CMD_SET_TARGET_VELOCITY: u8 = 0xE3;
const CMD_SET_MAX_SPEED: u8 = 0xE6;
const CMD_SET_MAX_ACCEL: u8 = 0xEA;
const CMD_SET_MAX_DECEL: u8 = 0xE9;
const CMD_HALT_AND_HOLD: u8 = 0x89;
const CMD_ENERGIZE: u8 = 0x85;
const CMD_DEENERGIZE: u8 = 0x86;
const CMD_EXIT_SAFE_START: u8 = 0x83;
const CMD_ENTER_SAFE_START: u8 = 0x8F;
const CMD_RESET_COMMAND_TIMEOUT: u8 = 0x8C;
const CMD_GET_VARIABLE: u8 = 0xA1;

const VAR_OPERATION_STATE: u8 = 0x00;
const VAR_CURRENT_POSITION: u8 = 0x22;

/// Bits of the Tic's "error status" variable, with what a person should check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicError;

impl TicError {
    /// Names and hints of the error bits 0–8, in bit order.
    pub const BITS: [(&'static str, &'static str); 9] = [
        (
            "intentionally de-energized",
            "the motor was de-energized by a command",
        ),
        (
            "motor driver error",
            "check the motor wiring and the current limit",
        ),
        ("low VIN", "check the motor power supply"),
        ("kill switch active", "release the kill switch input"),
        (
            "required input invalid",
            "check the control inputs (RC/analog) configuration",
        ),
        ("serial error", "check the baud rate and the wiring noise"),
        (
            "command timeout",
            "no command for longer than the Tic's command timeout (1 s by default); raise the Machine's frequency, or check that its loop is not blocked",
        ),
        (
            "safe start violation",
            "the Tic left normal operation (another error, e.g. a command timeout) and ignores motion commands until 'exit safe start'; fix the other error, then restart the test",
        ),
        ("ERR line high", "another device pulls the ERR line high"),
    ];

    /// The names of the bits set in `status`.
    pub fn describe(status: u16) -> Vec<&'static str> {
        Self::BITS
            .iter()
            .enumerate()
            .filter(|(i, _)| status & (1 << i) != 0)
            .map(|(_, b)| b.0)
            .collect()
    }
}

/// A Pololu Tic stepper controller on a serial port, positions in mm, speeds in mm/s.
///
/// ```no_run
/// use crabby_hardware::serial::{PololuTic, SerialConfig};
/// // 200 full steps per rev, 5 mm per rev, 1/8 step mode: 320 microsteps per mm.
/// let tic = PololuTic::new(SerialConfig::new("/dev/ttyACM0", 9600), 320.0)
///     .limits(10.0, 50.0);
/// ```
#[derive(Debug)]
pub struct PololuTic {
    /// The device's name (origin of its errors; default `PololuTic`).
    pub name: String,
    /// The port (the Tic's "serial" baud rate setting, 9600 by default).
    pub serial: SerialConfig,
    /// Microsteps per mm (full steps per mm × step mode).
    pub microsteps_per_mm: f64,
    /// Speed limit, mm/s (sent at open as the Tic's max speed; default 10).
    pub max_speed: f64,
    /// Acceleration and deceleration, mm/s² (default 20).
    pub acceleration: f64,
    /// Device number for the Pololu protocol, or `None` for the compact protocol.
    pub device_number: Option<u8>,
    /// De-energize the motor at close (default false: a de-energized axis may drop its load).
    pub deenergize_on_close: bool,
    link: Option<SerialLink>,
    status: Status,
    last_poll: Option<std::time::Instant>,
    /// Opened but not started: the next poll or motion command energizes and exits safe
    /// start again (the Tic may have timed out while the test waited at the start barrier).
    must_start: bool,
    /// The max speed last sent (µsteps/10 000 s): a move at another speed changes it.
    max_speed_sent: Option<i64>,
}

/// How often [`Actuator::poll`] talks to the Tic.
const POLL_PERIOD: std::time::Duration = std::time::Duration::from_millis(100);

/// Bytes of a 32-bit write: command, MSB byte, four 7-bit data bytes.
pub(crate) fn encode_32(cmd: u8, value: u32) -> [u8; 6] {
    let b = value.to_le_bytes();
    let msbs = (b[0] >> 7) | ((b[1] >> 7) << 1) | ((b[2] >> 7) << 2) | ((b[3] >> 7) << 3);
    [
        cmd,
        msbs,
        b[0] & 0x7F,
        b[1] & 0x7F,
        b[2] & 0x7F,
        b[3] & 0x7F,
    ]
}

/// The value of a 32-bit write (inverse of [`encode_32`]), for tests and fakes.
#[cfg(test)]
pub(crate) fn decode_32(bytes: &[u8]) -> u32 {
    let msbs = bytes[0];
    let mut b = [0u8; 4];
    for i in 0..4 {
        b[i] = bytes[1 + i] | (((msbs >> i) & 1) << 7);
    }
    u32::from_le_bytes(b)
}

impl PololuTic {
    /// A Tic on `serial`, with `microsteps_per_mm`.
    pub fn new(serial: SerialConfig, microsteps_per_mm: f64) -> Self {
        PololuTic {
            name: "PololuTic".into(),
            serial,
            microsteps_per_mm,
            max_speed: 10.0,
            acceleration: 20.0,
            device_number: None,
            deenergize_on_close: false,
            link: None,
            status: Status::off(),
            last_poll: None,
            must_start: false,
            max_speed_sent: None,
        }
    }
    /// Sets the name.
    pub fn name(mut self, n: impl Into<String>) -> Self {
        self.name = n.into();
        self
    }
    /// Sets the speed limit (mm/s) and the acceleration (mm/s²).
    pub fn limits(mut self, max_speed: f64, acceleration: f64) -> Self {
        self.max_speed = max_speed;
        self.acceleration = acceleration;
        self
    }
    /// Uses the Pololu protocol with this device number (0–127).
    pub fn device_number(mut self, n: u8) -> Self {
        self.device_number = Some(n);
        self
    }
    /// De-energizes the motor at close.
    pub fn deenergize_on_close(mut self, yes: bool) -> Self {
        self.deenergize_on_close = yes;
        self
    }

    fn frame(&self, bytes: &[u8]) -> Vec<u8> {
        match self.device_number {
            None => bytes.to_vec(),
            Some(d) => {
                let mut v = Vec::with_capacity(bytes.len() + 1);
                v.push(0xAA);
                v.push(d);
                v.push(bytes[0] & 0x7F);
                v.extend_from_slice(&bytes[1..]);
                v
            }
        }
    }

    fn link(&mut self) -> Result<&mut SerialLink> {
        let name = &self.name;
        self.link.as_mut().ok_or_else(|| {
            Error::new(ErrorKind::NotAllowed, "the Tic is not open").with_origin(name)
        })
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let f = self.frame(bytes);
        self.link()?.write_all(&f)
    }

    fn send_32(&mut self, cmd: u8, v: i64) -> Result<()> {
        let v = i32::try_from(v).map_err(|_| {
            Error::new(
                ErrorKind::OutOfRange,
                format!("value {v} does not fit the Tic's 32-bit range"),
            )
            .with_origin(&self.name)
        })?;
        self.send(&encode_32(cmd, v as u32))
    }

    fn get(&mut self, offset: u8, len: u8) -> Result<Vec<u8>> {
        self.send(&[CMD_GET_VARIABLE, offset, len])?;
        self.link()?.read_exact(len as usize)
    }

    /// Microsteps per 10 000 s for `v` mm/s.
    fn speed_units(&self, v: f64) -> i64 {
        (v * self.microsteps_per_mm * 10_000.0).round() as i64
    }

    fn check_speed(&self, v: f64) -> Result<()> {
        if !v.is_finite() || v.abs() > self.max_speed * (1.0 + 1e-12) {
            return Err(Error::new(
                ErrorKind::OutOfRange,
                format!(
                    "speed {v} mm/s is outside ±{} mm/s (max_speed)",
                    self.max_speed
                ),
            )
            .with_origin(&self.name));
        }
        Ok(())
    }

    /// Reads the operation state and error status; a fault if the Tic reports errors that
    /// keep the motor from moving. Before the start (`started` false), "safe start
    /// violation" is expected (exit safe start is sent again at the start) and ignored;
    /// once started it is a fault: the Tic would ignore every motion command.
    fn check_state(&mut self, started: bool) -> Result<()> {
        let b = self.get(VAR_OPERATION_STATE, 4)?;
        let state = b[0];
        let errors = u16::from_le_bytes([b[2], b[3]]);
        // Bits that stop the motor ("intentionally de-energized" never does here: open
        // energizes).
        let ignored: u16 = if started { 0b0000_0001 } else { 0b1000_0001 };
        let blocking = errors & !ignored;
        if blocking != 0 {
            let hints: Vec<String> = TicError::BITS
                .iter()
                .enumerate()
                .filter(|(i, _)| blocking & (1 << i) != 0)
                .map(|(_, (n, h))| format!("{n} ({h})"))
                .collect();
            let msg = format!("the Tic reports: {}", hints.join("; "));
            self.status = Status::fault(msg.clone());
            return Err(Error::new(ErrorKind::Hardware, msg).with_origin(&self.name));
        }
        if !matches!(state, 0 | 2 | 4 | 6 | 8 | 10) {
            return Err(Error::new(
                ErrorKind::Communication,
                format!("the Tic answered an unknown operation state {state}; is a Tic on this port, at this baud rate?"),
            )
            .with_origin(&self.name));
        }
        Ok(())
    }

    /// Current position (microsteps) and velocity (microsteps per 10 000 s).
    fn read_motion(&mut self) -> Result<(i32, i32)> {
        self.send(&[CMD_RESET_COMMAND_TIMEOUT])?;
        let b = self.get(VAR_CURRENT_POSITION, 8)?;
        Ok((
            i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        ))
    }

    /// Sends the max speed unless the Tic already has it.
    fn send_max_speed(&mut self, units: i64) -> Result<()> {
        if self.max_speed_sent != Some(units) {
            self.send_32(CMD_SET_MAX_SPEED, units)?;
            self.max_speed_sent = Some(units);
        }
        Ok(())
    }

    /// Energizes and exits safe start (again) if the Tic was not started since `open`,
    /// then checks that it runs normally (safe start violation included).
    fn ensure_started(&mut self) -> Result<()> {
        if !self.must_start {
            return Ok(());
        }
        self.send(&[CMD_RESET_COMMAND_TIMEOUT])?;
        self.send(&[CMD_ENERGIZE])?;
        self.send(&[CMD_EXIT_SAFE_START])?;
        self.check_state(true)?;
        self.must_start = false;
        self.last_poll = Some(std::time::Instant::now());
        Ok(())
    }

    /// Position (mm) and speed (mm/s), read in one exchange; updates the status.
    fn motion_mm(&mut self) -> Result<(f64, f64)> {
        let r = self.read_motion();
        let (p, v) = self.fault(r)?;
        let mm_s = v as f64 / 10_000.0 / self.microsteps_per_mm;
        if self.status.state != DeviceState::Fault {
            self.status = if v != 0 {
                Status::moving(format!("{mm_s:.3} mm/s"))
            } else {
                Status::on("holding")
            };
        }
        Ok((p as f64 / self.microsteps_per_mm, mm_s))
    }

    fn fault<T>(&mut self, r: Result<T>) -> Result<T> {
        record_fault(&mut self.status, r)
    }
}

impl Actuator for PololuTic {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self) -> Result<()> {
        self.serial.check(&self.name)?;
        for (n, v, u) in [
            ("microsteps_per_mm", self.microsteps_per_mm, ""),
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
        // Tic limits: max speed ≤ 500 000 000 (µsteps/10 000 s), accel ≤ 2 147 483 647.
        let speed = self.max_speed * self.microsteps_per_mm * 10_000.0;
        if speed > 500_000_000.0 {
            return Err(Error::config(format!(
                "max_speed {} mm/s is {speed:.0} microsteps per 10 000 s, above the Tic's limit of 500 000 000",
                self.max_speed
            ))
            .with_origin(&self.name));
        }
        // Guide §8, "Set max acceleration"/"Set max deceleration": 100 to 2 147 483 647
        // microsteps per 100 s²; the Tic raises 0–99 to 100 without a word.
        let accel = self.acceleration * self.microsteps_per_mm * 100.0;
        if accel > i32::MAX as f64 {
            return Err(Error::config(format!(
                "acceleration {} mm/s² is above the Tic's limit",
                self.acceleration
            ))
            .with_origin(&self.name));
        }
        if accel.round() < 100.0 {
            return Err(Error::config(format!(
                "acceleration {} mm/s² is {accel:.1} microsteps per 100 s², below the Tic's minimum of 100 (it would use 100); raise 'acceleration' to at least {} mm/s²",
                self.acceleration,
                100.0 / (self.microsteps_per_mm * 100.0)
            ))
            .with_origin(&self.name));
        }
        if matches!(self.device_number, Some(d) if d > 127) {
            return Err(Error::config("device_number must be 0–127").with_origin(&self.name));
        }
        Ok(())
    }

    /// Opens the port, clears a stale command timeout, checks the flags, sends the limits,
    /// halts, energizes and exits safe start. On failure after energizing, halts and enters
    /// safe start (best effort) before dropping the port.
    fn open(&mut self) -> Result<()> {
        let mut link = self.serial.open(&self.name)?;
        link.discard_input()?;
        self.link = Some(link);
        self.max_speed_sent = None;
        let mut energized = false;
        let r = (|| {
            // The Tic has been silent since power-up or the last test: its command timeout
            // is set. Any reset-command-timeout clears it before the flags are read.
            self.send(&[CMD_RESET_COMMAND_TIMEOUT])?;
            self.check_state(false)?;
            let speed = self.speed_units(self.max_speed);
            let accel = (self.acceleration * self.microsteps_per_mm * 100.0).round() as i64;
            self.send_max_speed(speed)?;
            self.send_32(CMD_SET_MAX_ACCEL, accel)?;
            self.send_32(CMD_SET_MAX_DECEL, accel)?;
            self.send(&[CMD_HALT_AND_HOLD])?;
            energized = true;
            self.send(&[CMD_ENERGIZE])?;
            self.send(&[CMD_EXIT_SAFE_START])?;
            self.check_state(false)
        })();
        let r = self.fault(r);
        match &r {
            Ok(()) => {
                self.status = Status::on(format!("energized on {}", self.serial.port));
                self.must_start = true;
                self.last_poll = None;
            }
            Err(_) => {
                if energized {
                    // Leave the motor held and unable to move on its own (best effort: the
                    // link may be what failed).
                    let _ = self.send(&[CMD_HALT_AND_HOLD]);
                    let _ = self.send(&[CMD_ENTER_SAFE_START]);
                }
                self.link = None;
            }
        }
        r
    }

    /// Speed in mm/s (the Tic's max speed is restored to `max_speed` if a move lowered it).
    fn set_speed(&mut self, speed: f64) -> Result<()> {
        self.check_speed(speed)?;
        let r = (|| {
            self.ensure_started()?;
            self.send_max_speed(self.speed_units(self.max_speed))?;
            let u = self.speed_units(speed);
            self.send_32(CMD_SET_TARGET_VELOCITY, u)
        })();
        self.fault(r)
    }

    /// The first call after `open` energizes and exits safe start again (see the module
    /// docs). Then every 100 ms: *reset command timeout* (the Tic's watchdog stops the
    /// motor if this process dies or hangs) and a check of the error flags, safe start
    /// violation included (a fault ends the test).
    fn poll(&mut self) -> Result<()> {
        if self.must_start {
            let r = self.ensure_started();
            return self.fault(r);
        }
        if self.last_poll.is_some_and(|t| t.elapsed() < POLL_PERIOD) {
            return Ok(());
        }
        self.last_poll = Some(std::time::Instant::now());
        let r = self
            .send(&[CMD_RESET_COMMAND_TIMEOUT])
            .and_then(|()| self.check_state(true));
        self.fault(r)
    }

    fn stop(&mut self) -> Result<()> {
        let r = self.send(&[CMD_HALT_AND_HOLD]);
        self.fault(r)
    }

    fn close(&mut self) -> Result<()> {
        if self.link.is_none() {
            return Ok(());
        }
        let r = (|| {
            self.send(&[CMD_HALT_AND_HOLD])?;
            self.send(&[CMD_ENTER_SAFE_START])?;
            if self.deenergize_on_close {
                self.send(&[CMD_DEENERGIZE])?;
            }
            Ok(())
        })();
        self.link = None;
        self.must_start = false;
        if r.is_ok() && self.status.state != DeviceState::Fault {
            self.status = Status::off();
        }
        r
    }

    fn status(&self) -> Status {
        self.status.clone()
    }
}

impl Positioner for PololuTic {
    /// Position in mm; `speed` (mm/s, above 0) becomes the Tic's max speed for this move
    /// (`None`: `max_speed`).
    fn set_position(&mut self, position: f64, speed: Option<f64>) -> Result<()> {
        let r = (|| {
            let s = speed.unwrap_or(self.max_speed);
            if s.is_nan() || s <= 0.0 {
                return Err(Error::new(
                    ErrorKind::OutOfRange,
                    format!("move speed {s} mm/s must be above 0 (the motor would never move)"),
                )
                .with_origin(&self.name));
            }
            self.check_speed(s)?;
            if !position.is_finite() {
                return Err(Error::new(
                    ErrorKind::OutOfRange,
                    format!("position {position} mm is not finite"),
                )
                .with_origin(&self.name));
            }
            self.ensure_started()?;
            let su = self.speed_units(s);
            self.send_max_speed(su)?;
            let p = (position * self.microsteps_per_mm).round() as i64;
            self.send_32(CMD_SET_TARGET_POSITION, p)
        })();
        self.fault(r)
    }
}

impl PositionFeedback for PololuTic {
    fn position(&mut self) -> Result<f64> {
        Ok(self.motion_mm()?.0)
    }

    /// Position and speed from one get-variable request.
    fn position_and_speed(&mut self) -> Result<(f64, Option<f64>)> {
        let (p, v) = self.motion_mm()?;
        Ok((p, Some(v)))
    }
}

impl SpeedFeedback for PololuTic {
    fn speed(&mut self) -> Result<f64> {
        Ok(self.motion_mm()?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::FakePort;
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn encoding_of_32_bit_writes() {
        // Set target velocity −1 (0xFFFFFFFF): every data byte has its MSB set.
        assert_eq!(
            encode_32(0xE3, u32::MAX),
            [0xE3, 0x0F, 0x7F, 0x7F, 0x7F, 0x7F]
        );
        assert_eq!(encode_32(0xE0, 200), [0xE0, 0x01, 0x48, 0x00, 0x00, 0x00]);
        for v in [
            0u32,
            1,
            127,
            128,
            255,
            0x8080_8080,
            0x1234_5678,
            (-3200i32) as u32,
        ] {
            assert_eq!(decode_32(&encode_32(0xE0, v)[1..]), v);
        }
    }

    /// What the fake Tic saw and does.
    #[derive(Default)]
    struct Seen {
        commands: Vec<u8>,
        target_velocity: Option<i32>,
        target_position: Option<i32>,
        max_speed: Option<u32>,
        halted: bool,
        safe_start: bool,
        /// Motion commands the Tic ignored (safe start or an error active).
        ignored_motion: usize,
    }

    /// How the fake Tic behaves.
    #[derive(Clone, Copy)]
    struct FakeCfg {
        /// Error bits always set (a hardware problem).
        errors: u16,
        /// Error bits that appear when the driver energizes the motor.
        errors_on_energize: u16,
        /// Answers this many get-variable requests, then stays silent.
        silent_after: usize,
    }

    impl Default for FakeCfg {
        fn default() -> Self {
            FakeCfg {
                errors: 0,
                errors_on_energize: 0,
                silent_after: usize::MAX,
            }
        }
    }

    /// The Tic's command timeout (its default).
    const TIC_TIMEOUT: Duration = Duration::from_secs(1);

    /// Plays a Tic in serial mode on the master side: parses the compact protocol,
    /// integrates the position at the target velocity, answers get-variable requests, and
    /// models the Tic's safety logic: "command timeout" (bit 6) while more than 1 s passed
    /// without a command that resets it (also since power-up, when the thread starts);
    /// any error makes it enter safe start ("safe start violation", bit 7, latched and the
    /// motor stopped) until an exit-safe-start command arrives with no other error active;
    /// while an error or safe start is active, motion commands are ignored. Stops when
    /// `stop` is set.
    fn fake_tic(mut p: FakePort, cfg: FakeCfg, stop: Arc<AtomicBool>) -> FakeTic {
        let commands = Arc::new(std::sync::Mutex::new(Vec::new()));
        let published = commands.clone();
        let handle = std::thread::spawn(move || {
            let mut s = Seen::default();
            let mut pos: f64 = 0.0;
            let mut vel: i32 = 0;
            let mut last = Instant::now();
            let mut last_cmd = Instant::now(); // power-up
            let mut answers = 0;
            let mut safe_start = true; // a Tic in serial mode powers up in safe start
            let mut energized = false;
            let mut extra = cfg.errors;
            while !stop.load(Ordering::Relaxed) {
                let b = p.recv_n(1, Duration::from_millis(20));
                let now = Instant::now();
                pos += vel as f64 / 10_000.0 * (now - last).as_secs_f64();
                last = now;
                // The safety logic runs continuously, whether or not a byte came.
                let errors_now = |last_cmd: Instant, extra: u16| {
                    extra
                        | if last_cmd.elapsed() > TIC_TIMEOUT {
                            1 << 6
                        } else {
                            0
                        }
                };
                if errors_now(last_cmd, extra) != 0 {
                    safe_start = true;
                    vel = 0;
                }
                let Some(&cmd) = b.first() else { continue };
                s.commands.push(cmd);
                published.lock().unwrap().push(cmd);
                // Commands that reset the command timeout.
                if matches!(cmd, 0xE0 | 0xE3 | 0x89 | 0x8C) {
                    last_cmd = Instant::now();
                }
                let blocked = safe_start || errors_now(last_cmd, extra) != 0;
                match cmd {
                    0xE0 | 0xE3 | 0xE6 | 0xEA | 0xE9 => {
                        let v = decode_32(&p.recv_n(5, Duration::from_secs(1)));
                        match cmd {
                            0xE0 | 0xE3 if blocked => s.ignored_motion += 1,
                            0xE0 => s.target_position = Some(v as i32),
                            0xE3 => {
                                s.target_velocity = Some(v as i32);
                                vel = v as i32;
                            }
                            0xE6 => s.max_speed = Some(v),
                            _ => {}
                        }
                    }
                    0x89 => {
                        s.halted = true;
                        vel = 0;
                    }
                    0x85 => {
                        energized = true;
                        extra |= cfg.errors_on_energize;
                    }
                    0x86 => energized = false,
                    // Refused while another error is active.
                    0x83 if errors_now(last_cmd, extra) == 0 => safe_start = false,
                    0x8F => {
                        s.safe_start = true;
                        safe_start = true;
                        vel = 0;
                    }
                    0xA1 => {
                        let a = p.recv_n(2, Duration::from_secs(1));
                        answers += 1;
                        if answers > cfg.silent_after {
                            continue;
                        }
                        let errors = errors_now(last_cmd, extra)
                            | if safe_start { 1 << 7 } else { 0 }
                            | if energized { 0 } else { 1 };
                        let mut mem = [0u8; 0x40];
                        // Normal operation, or "soft error" while an error stops the motor.
                        mem[0] = if errors & !1 == 0 { 10 } else { 4 };
                        mem[2..4].copy_from_slice(&errors.to_le_bytes());
                        mem[0x22..0x26].copy_from_slice(&(pos.round() as i32).to_le_bytes());
                        mem[0x26..0x2A].copy_from_slice(&vel.to_le_bytes());
                        let (o, n) = (a[0] as usize, a[1] as usize);
                        p.send(&mem[o..o + n]);
                    }
                    _ => {}
                }
            }
            (p, s)
        });
        FakeTic { handle, commands }
    }

    /// A running fake Tic: its thread, and the command bytes it has handled so far.
    struct FakeTic {
        handle: std::thread::JoinHandle<(FakePort, Seen)>,
        commands: Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl FakeTic {
        /// Waits (at most 5 s) until the last command the fake handled is `cmd`: what the
        /// driver sent last has then been played, and the fake can be stopped.
        fn wait_last_command(&self, cmd: u8) {
            let end = Instant::now() + Duration::from_secs(5);
            while self.commands.lock().unwrap().last() != Some(&cmd) {
                assert!(
                    Instant::now() < end,
                    "the fake Tic never handled command {cmd:#x}: {:x?}",
                    self.commands.lock().unwrap()
                );
                std::thread::yield_now();
            }
        }

        fn join(self) -> std::thread::Result<(FakePort, Seen)> {
            self.handle.join()
        }
    }

    fn tic(p: &FakePort) -> PololuTic {
        PololuTic::new(
            SerialConfig::new(&p.path, 9600).timeout(Duration::from_millis(200)),
            100.0,
        )
        .limits(10.0, 50.0)
    }

    #[test]
    fn open_move_read_back_stop_close() {
        let p = FakePort::new();
        let mut t = tic(&p);
        t.check().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let h = fake_tic(p, FakeCfg::default(), stop.clone());
        t.open().unwrap();
        assert_eq!(t.status().state, DeviceState::On);
        t.set_speed(-2.5).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let v = t.speed().unwrap();
        assert_eq!(v, -2.5);
        assert_eq!(t.status().state, DeviceState::Moving);
        let x = t.position().unwrap();
        // About −0.25 mm after 0.1 s at −2.5 mm/s (wide margin: a loaded machine).
        assert!(x < -0.1 && x > -2.0, "{x}");
        // Both read back with one request (what the Machine does every loop).
        let (xb, vb) = t.position_and_speed().unwrap();
        assert!(xb <= x && vb == Some(-2.5));
        // poll: keep-alive and state check, at most every 100 ms.
        t.poll().unwrap();
        t.poll().unwrap();
        t.set_position(3.0, Some(1.0)).unwrap();
        t.stop().unwrap();
        t.close().unwrap();
        // Close ends with "enter safe start": stop the fake once it has played it.
        h.wait_last_command(0x8F);
        stop.store(true, Ordering::Relaxed);
        let (_p, s) = h.join().unwrap();
        assert_eq!(s.target_velocity, Some(-2_500_000)); // −2.5 mm/s · 100 µsteps/mm · 10 000
        assert_eq!(s.target_position, Some(300));
        assert_eq!(s.max_speed, Some(1_000_000));
        assert!(s.halted && s.safe_start);
        // Energize and exit safe start were sent at open, before any motion command.
        let i_energize = s.commands.iter().position(|&c| c == 0x85).unwrap();
        let i_exit = s.commands.iter().position(|&c| c == 0x83).unwrap();
        let i_vel = s.commands.iter().position(|&c| c == 0xE3).unwrap();
        assert!(i_energize < i_vel && i_exit < i_vel);
        assert_eq!(*s.commands.last().unwrap(), 0x8F);
        assert_eq!(s.ignored_motion, 0);
        // Get-variable: two state reads at open, one at the start, one per read-back
        // (speed, position, both), one for the two polls (rate-limited).
        assert_eq!(s.commands.iter().filter(|&&c| c == 0xA1).count(), 7);
        // Keep-alives: one at open, one at the start (first motion command), one per read
        // (speed, position, both) and one for the two polls (rate-limited).
        assert_eq!(
            s.commands.iter().filter(|&&c| c == 0x8C).count(),
            6,
            "{:x?}",
            s.commands
        );
    }

    #[test]
    fn driver_errors_are_hardware_faults_with_hints() {
        let p = FakePort::new();
        let mut t = tic(&p);
        let stop = Arc::new(AtomicBool::new(false));
        let cfg = FakeCfg {
            errors: 1 << 2, // low VIN
            ..FakeCfg::default()
        };
        let h = fake_tic(p, cfg, stop.clone());
        let e = t.open().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Hardware);
        assert!(
            e.description()
                .contains("low VIN (check the motor power supply)"),
            "{e}"
        );
        assert_eq!(t.status().state, DeviceState::Fault);
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
    }

    #[test]
    fn open_succeeds_after_the_tic_was_silent_since_power_up() {
        let p = FakePort::new();
        let mut t = tic(&p);
        let stop = Arc::new(AtomicBool::new(false));
        let h = fake_tic(p, FakeCfg::default(), stop.clone());
        // Powered up more than the command timeout ago: bit 6 is set until a command.
        std::thread::sleep(TIC_TIMEOUT + Duration::from_millis(200));
        t.open().unwrap();
        t.poll().unwrap();
        t.close().unwrap();
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
    }

    #[test]
    fn start_after_a_long_barrier_wait_exits_safe_start_again() {
        let p = FakePort::new();
        let mut t = tic(&p);
        let stop = Arc::new(AtomicBool::new(false));
        let h = fake_tic(p, FakeCfg::default(), stop.clone());
        t.open().unwrap();
        // The test waits at the start barrier: the Tic times out and enters safe start.
        std::thread::sleep(TIC_TIMEOUT + Duration::from_millis(200));
        t.poll().unwrap(); // what Machine::begin does
        t.set_speed(2.0).unwrap();
        // The read-back follows the command on the same ordered byte stream: no wait needed.
        assert_eq!(
            t.speed().unwrap(),
            2.0,
            "the Tic ignored the motion command"
        );
        t.close().unwrap();
        stop.store(true, Ordering::Relaxed);
        let (_p, s) = h.join().unwrap();
        assert_eq!(s.ignored_motion, 0);
        // Exit safe start was sent again after the wait, before the motion command.
        let exits: Vec<usize> = (0..s.commands.len())
            .filter(|&i| s.commands[i] == 0x83)
            .collect();
        let i_vel = s.commands.iter().position(|&c| c == 0xE3).unwrap();
        assert!(exits.len() == 2 && exits[1] < i_vel, "{:x?}", s.commands);
    }

    #[test]
    fn first_motion_command_starts_the_tic_without_a_poll() {
        let p = FakePort::new();
        let mut t = tic(&p);
        let stop = Arc::new(AtomicBool::new(false));
        let h = fake_tic(p, FakeCfg::default(), stop.clone());
        t.open().unwrap();
        std::thread::sleep(TIC_TIMEOUT + Duration::from_millis(200));
        t.set_position(1.0, None).unwrap();
        t.close().unwrap();
        stop.store(true, Ordering::Relaxed);
        let (_p, s) = h.join().unwrap();
        assert_eq!(s.target_position, Some(100));
        assert_eq!(s.ignored_motion, 0);
    }

    #[test]
    fn safe_start_violation_while_running_is_a_fault() {
        let p = FakePort::new();
        let mut t = tic(&p);
        let stop = Arc::new(AtomicBool::new(false));
        let h = fake_tic(p, FakeCfg::default(), stop.clone());
        t.open().unwrap();
        t.poll().unwrap();
        t.set_speed(1.0).unwrap();
        // The Machine's loop blocks for longer than the command timeout.
        std::thread::sleep(TIC_TIMEOUT + Duration::from_millis(200));
        let e = t.poll().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Hardware, "{e}");
        assert!(
            e.description().contains("safe start violation")
                && e.description().contains("ignores motion commands"),
            "{e}"
        );
        assert_eq!(t.status().state, DeviceState::Fault);
        t.close().unwrap();
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
    }

    #[test]
    fn failed_open_after_energize_halts_and_enters_safe_start() {
        let p = FakePort::new();
        let mut t = tic(&p);
        let stop = Arc::new(AtomicBool::new(false));
        let cfg = FakeCfg {
            errors_on_energize: 1 << 1, // motor driver error (a shorted coil)
            ..FakeCfg::default()
        };
        let h = fake_tic(p, cfg, stop.clone());
        let e = t.open().unwrap_err();
        assert!(e.description().contains("motor driver error"), "{e}");
        // Close ends with "enter safe start": stop the fake once it has played it.
        h.wait_last_command(0x8F);
        stop.store(true, Ordering::Relaxed);
        let (_p, s) = h.join().unwrap();
        let i_energize = s.commands.iter().position(|&c| c == 0x85).unwrap();
        let tail = &s.commands[i_energize..];
        assert!(
            tail.ends_with(&[0x89, 0x8F]),
            "no halt + enter safe start after the failed open: {:x?}",
            s.commands
        );
        // The link is dropped: the device is not open.
        assert_eq!(t.set_speed(1.0).unwrap_err().kind(), ErrorKind::NotAllowed);
    }

    #[test]
    fn set_speed_after_a_move_restores_max_speed() {
        let p = FakePort::new();
        let mut t = tic(&p);
        let stop = Arc::new(AtomicBool::new(false));
        let h = fake_tic(p, FakeCfg::default(), stop.clone());
        t.open().unwrap();
        t.set_position(3.0, Some(1.0)).unwrap();
        t.set_speed(5.0).unwrap();
        let e = t.set_position(3.0, Some(0.0)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfRange, "{e}");
        t.close().unwrap();
        // Close ends with "enter safe start": stop the fake once it has played it.
        h.wait_last_command(0x8F);
        stop.store(true, Ordering::Relaxed);
        let (_p, s) = h.join().unwrap();
        // 10 mm/s · 100 µsteps/mm · 10 000: the speed command is not limited to 1 mm/s.
        assert_eq!(s.max_speed, Some(10_000_000));
        assert_eq!(s.target_velocity, Some(5_000_000));
    }

    #[test]
    fn silence_and_vanishing_are_timeout_and_communication_errors() {
        let p = FakePort::new();
        let mut t = tic(&p);
        let stop = Arc::new(AtomicBool::new(false));
        let cfg = FakeCfg {
            silent_after: 3, // the two state reads of open and the one at the start
            ..FakeCfg::default()
        };
        let h = fake_tic(p, cfg, stop.clone());
        t.open().unwrap();
        t.poll().unwrap();
        let e = t.position().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert_eq!(t.status().state, DeviceState::Fault);
        stop.store(true, Ordering::Relaxed);
        let (mut p, _) = h.join().unwrap();
        p.vanish();
        let e = t.set_speed(1.0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
        assert!(e.description().contains("disappeared"), "{e}");
    }

    #[test]
    fn garbage_state_is_a_communication_error() {
        let mut p = FakePort::new();
        let mut t = tic(&p);
        let h = std::thread::spawn(move || {
            // Not a Tic: answers any request with 0xFF bytes.
            // Reset command timeout, then the state read.
            if p.recv_n(4, Duration::from_secs(2)) == [0x8C, 0xA1, 0x00, 0x04] {
                p.send(&[0xFF; 4]);
            }
            p
        });
        let e = t.open().unwrap_err();
        // 0xFF error bits are all set: reported as a hardware fault naming them, or as an
        // unknown state; either way the device is in fault and not left open.
        assert!(
            matches!(e.kind(), ErrorKind::Hardware | ErrorKind::Communication),
            "{e}"
        );
        assert_eq!(t.status().state, DeviceState::Fault);
        h.join().unwrap();
        let mut p2 = FakePort::new();
        let mut t2 = tic(&p2);
        let h = std::thread::spawn(move || {
            // Error status clear but an operation state no Tic has.
            // Reset command timeout, then the state read.
            if p2.recv_n(4, Duration::from_secs(2)) == [0x8C, 0xA1, 0x00, 0x04] {
                p2.send(&[0x63, 0, 0, 0]);
            }
            p2
        });
        let e = t2.open().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
        assert!(
            e.description().contains("unknown operation state 99"),
            "{e}"
        );
        h.join().unwrap();
    }

    #[test]
    fn speed_limits_and_config_are_checked() {
        let p = FakePort::new();
        let t = tic(&p);
        assert_eq!(
            t.check_speed(11.0).unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        let e = tic(&p).limits(1e6, 1.0).check().unwrap_err();
        assert!(e.description().contains("limit"), "{e}");
        let mut t = tic(&p);
        assert_eq!(t.set_speed(1.0).unwrap_err().kind(), ErrorKind::NotAllowed);
        let t = tic(&p).device_number(14);
        assert_eq!(t.frame(&[0x89]), [0xAA, 14, 0x09]);
        assert_eq!(
            t.frame(&encode_32(0xE3, 5)),
            [0xAA, 14, 0x63, 0, 5, 0, 0, 0]
        );
    }

    /// The worked examples of the Tic user's guide (0J71), byte for byte, and every command
    /// byte and variable offset against §7 "Variable reference" / §8 "Command reference".
    #[test]
    fn bytes_match_the_guides_own_examples() {
        // §9 "Quick": halt and hold is the single byte 0x89.
        assert_eq!(CMD_HALT_AND_HOLD, 0x89);
        // §9 "32-bit write": set target position to 1,234,567,890 = 0x4996_02D2. The data
        // bytes are the guide's (52 02 16 49: D2 02 96 49 with their MSb cleared). The MSbs
        // byte follows the guide's own rule ("bit 0 is the MSb for the first data byte") and
        // Pololu's reference `TicSerial::commandW32` (tic-arduino, Tic.cpp): D2 and 96 have
        // their MSb set, so bits 0 and 2: 0x05. The guide's worked example prints 0x0A
        // (bits 1 and 3), which contradicts both; 0x05 is kept (see the module docs).
        assert_eq!(
            encode_32(CMD_SET_TARGET_POSITION, 1_234_567_890),
            [0xE0, 0x05, 0x52, 0x02, 0x16, 0x49]
        );
        assert_eq!(decode_32(&[0x05, 0x52, 0x02, 0x16, 0x49]), 1_234_567_890);
        // §9 "Block read": get variable "target position" (offset 0x0A, 4 bytes) is
        // A1 0A 04 and the answer D2 02 96 49 reads 1,234,567,890 (little-endian).
        let p = FakePort::new();
        let t = tic(&p);
        assert_eq!(t.frame(&[CMD_GET_VARIABLE, 0x0A, 4]), [0xA1, 0x0A, 0x04]);
        assert_eq!(i32::from_le_bytes([0xD2, 0x02, 0x96, 0x49]), 1_234_567_890);
        // §9 "Serial protocols": set step mode 1/8 (0x94 0x03) in the Pololu protocol to
        // device 14 is AA 0E 14 03 (command byte with its MSB cleared).
        assert_eq!(t.frame(&[0x94, 0x03]), [0x94, 0x03]);
        let t = tic(&p).device_number(14);
        assert_eq!(t.frame(&[0x94, 0x03]), [0xAA, 0x0E, 0x14, 0x03]);
        // §8 "Command reference": each command this driver sends.
        for (cmd, byte) in [
            (CMD_SET_TARGET_POSITION, 0xE0),
            (CMD_SET_TARGET_VELOCITY, 0xE3),
            (CMD_SET_MAX_SPEED, 0xE6),
            (CMD_SET_MAX_ACCEL, 0xEA),
            (CMD_SET_MAX_DECEL, 0xE9),
            (CMD_HALT_AND_HOLD, 0x89),
            (CMD_ENERGIZE, 0x85),
            (CMD_DEENERGIZE, 0x86),
            (CMD_EXIT_SAFE_START, 0x83),
            (CMD_ENTER_SAFE_START, 0x8F),
            (CMD_RESET_COMMAND_TIMEOUT, 0x8C),
            (CMD_GET_VARIABLE, 0xA1),
        ] {
            assert_eq!(cmd, byte);
        }
        // §7 "Variable reference": the offsets read.
        assert_eq!(VAR_OPERATION_STATE, 0x00);
        assert_eq!(VAR_CURRENT_POSITION, 0x22);
        // Error status bits 0–8 in the guide's order.
        assert_eq!(TicError::BITS[6].0, "command timeout");
        assert_eq!(TicError::BITS[7].0, "safe start violation");
        assert_eq!(TicError::BITS[8].0, "ERR line high");
        // §8: an acceleration below 100 microsteps per 100 s² is refused before the test.
        let e = tic(&p).limits(1.0, 0.001).check().unwrap_err();
        assert!(e.description().contains("minimum of 100"), "{e}");
    }
}
