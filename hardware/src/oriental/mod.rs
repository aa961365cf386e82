//! Oriental Motor AZ series drivers (AZD-AD/KD/CD… with built-in controller) over Modbus
//! RTU: [`AzMotor`] is an [`Actuator`] driven by *direct data operation* (position, speed,
//! rates, current and a trigger in one request), with feedback position and speed, the
//! present alarm and its reset, and a deceleration stop; [`sim`] plays the driver and a
//! motor with a trapezoidal profile on a pseudo-terminal.
//!
//! ## The document
//!
//! *AZ Series / Motorized actuators equipped with AZ Series — Function Edition*, Oriental
//! Motor, HM-60262E (the English edition of HM-60252J), chapter "Modbus RTU control"
//! (the register lists of "Direct data operation", "Monitor commands", "Maintenance
//! commands", "Driver input command" and "Driver output status"). Register addresses are
//! 0-based hexadecimal as on the wire; every 32-bit value is two registers, upper word at
//! the lower address:
//!
//! | Register | Address | Content |
//! |---|---|---|
//! | Direct data operation: operation data No. | 0058h | 0 |
//! | operation type | 005Ah | 1: absolute positioning |
//! | position | 005Ch | step, signed |
//! | operating speed | 005Eh | Hz (steps/s) |
//! | starting/changing rate | 0060h | 1 = 0.001 kHz/s |
//! | stopping deceleration | 0062h | 1 = 0.001 kHz/s |
//! | operating current | 0064h | 1 = 0.1 % |
//! | trigger | 0066h | 1: all data updated, operation starts |
//! | Driver input command (reference) | 007Ch–007Dh | NET-IN bits; bit 5 = STOP (default assignment) |
//! | Driver output status | 007Eh–007Fh | NET-OUT bits: 5 READY, 6 INFO, 7 ALM-A, 13 MOVE, 14 IN-POS (defaults) |
//! | Present alarm | 0080h–0081h | alarm code, 0 = none |
//! | Feedback position | 00CCh–00CDh | step |
//! | Feedback speed | 00CEh / 00D0h | r/min / Hz |
//! | Alarm reset (maintenance) | 0180h–0181h | write 1 |
//!
//! The manual PDF could not be read from this machine; the addresses and units were taken
//! from open-source drivers written from it and cross-checked between them: OpenKAI
//! `_OrientalMotor` (writes 18 registers at 88 = 0058h: data No., type 1, position, speed,
//! rates, current, trigger 1; reads 6 registers at 204 = 00CCh: position, speed r/min,
//! speed Hz), `VJ_OrientalMaster` (direct data 0058h–0067h, input command 007Ch/007Dh with
//! STOP = bit 5 and ALM-RST = bit 7, output status 007Fh with READY 5, ALM-A 7, SYS-BSY 8,
//! MOVE 13, IN-POS 14, present alarm 0080h) and an AZD-KD diagnostic tool (present alarm
//! 128 = 0080h, alarm reset 384 = 0180h "write 1", the alarm codes of [`alarm_name`]).
//!
//! ## Speed control
//!
//! The AZ has no "run at this speed" register in direct data operation that the sources
//! above agree on, so [`Actuator::set_speed`] is what OpenKAI does: an absolute positioning
//! towards the end of [`AzMotor::travel`] in the speed's direction, at the speed's
//! magnitude; a new speed re-triggers the operation (the AZ accepts a new direct data
//! operation while moving); speed 0 is a deceleration stop (the STOP input turned on then
//! off). The motion ends at the travel's end if nothing changes it.
//!
//! The Machine sends its latest command every loop. A direct data operation is 16
//! registers (about 6 ms at 115 200 baud) and speed 0 two writes, so the command last sent
//! (the same operation, or speed 0 after speed 0) is not sent again while it stands; it is
//! forgotten on any error (a refused value included), on an alarm, its reset, and at open
//! and close, so the next command is then sent whatever it is. [`Actuator::stop`] is always
//! sent.
//!
//! ## Errors, alarms, faults
//!
//! The link is [`ModbusInOut`]'s RTU (CRC errors, silence retried, then
//! [`ErrorKind::Communication`] / [`ErrorKind::Timeout`]; exception 02 → address not in
//! the driver's map, [`ErrorKind::Configuration`]; 03 → a value out of the register's
//! range, [`ErrorKind::OutOfRange`]). ALM-A on (an alarm stopped the motor: overload,
//! overtravel, operation data error…) makes [`Actuator::poll`] fail with
//! [`ErrorKind::Hardware`] naming the alarm code, and the state FAULT until
//! [`AzMotor::reset_alarm`]; INFO on (a warning) is the ALARM state; MOVE is MOVING.

pub mod sim;
#[cfg(test)]
mod tests;

use crate::modbus::{words, ModbusInOut, Table};
use crate::serial::SerialConfig;
use crabby::hardware::{
    device_error, Actuator, DeviceState, PositionFeedback, Positioner, SpeedFeedback, Status,
};
use crabby::{Error, ErrorKind, Result};

/// Direct data operation, first register (operation data No.).
pub const DIRECT_DATA: u16 = 0x0058;
/// Direct data operation registers written at once (0058h–0067h, up to the trigger).
pub const DIRECT_DATA_LEN: u16 = 16;
/// Driver input command (reference), upper word.
pub const INPUT_COMMAND: u16 = 0x007C;
/// Driver output status, upper word.
pub const OUTPUT_STATUS: u16 = 0x007E;
/// Present alarm, upper word.
pub const PRESENT_ALARM: u16 = 0x0080;
/// Feedback position, upper word (then feedback speed r/min at 00CEh, Hz at 00D0h).
pub const FEEDBACK_POSITION: u16 = 0x00CC;
/// Alarm reset (maintenance command), upper word.
pub const ALARM_RESET: u16 = 0x0180;
/// Operation type: absolute positioning.
pub const ABSOLUTE: u16 = 1;
/// Operating speed limit of direct data operation, Hz.
pub const MAX_SPEED_HZ: f64 = 4_000_000.0;

/// Bits of the driver input command (default NET-IN assignment).
pub mod input_bits {
    /// STOP (NET-IN5).
    pub const STOP: u16 = 1 << 5;
}

/// Bits of the driver output status (default NET-OUT assignment).
pub mod output_bits {
    /// READY (NET-OUT5).
    pub const READY: u16 = 1 << 5;
    /// INFO, a warning (NET-OUT6).
    pub const INFO: u16 = 1 << 6;
    /// ALM-A, an alarm is present (NET-OUT7).
    pub const ALM_A: u16 = 1 << 7;
    /// MOVE (NET-OUT13).
    pub const MOVE: u16 = 1 << 13;
    /// IN-POS (NET-OUT14).
    pub const IN_POS: u16 = 1 << 14;
}

/// The name of an AZ alarm code (the manual's alarm list, as the sources above give it).
pub fn alarm_name(code: u16) -> &'static str {
    match code {
        0x10 => "excessive position deviation",
        0x20 => "overcurrent",
        0x21 => "main circuit overheat",
        0x22 => "overvoltage",
        0x25 => "undervoltage",
        0x26 => "motor overheat",
        0x30 => "overload",
        0x31 => "overspeed",
        0x41 => "EEPROM error",
        0x4A => "return-to-home incomplete",
        0x66 => "hardware overtravel",
        0x67 => "software overtravel",
        0x70 => "operation data error",
        0x84 => "RS-485 communication error",
        0x85 => "RS-485 communication timeout",
        0xF0 => "CPU error",
        _ => "see the alarm list of the manual",
    }
}

/// A command last sent by [`AzMotor`], not sent again while it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// A direct data operation: (type, position, speed, rate, current).
    Operation(u16, i32, i32, i32, i32),
    /// The STOP input on then off (speed 0).
    Stop,
}

/// An AZ driver on Modbus RTU, as an [`Actuator`] in mm and mm/s, with [`Positioner`],
/// [`PositionFeedback`] and [`SpeedFeedback`].
///
/// ```no_run
/// use crabby_hardware::oriental::AzMotor;
/// use crabby_hardware::serial::SerialConfig;
/// // A 5 mm lead screw at the AZ's default 1000 steps/rev: 200 steps/mm.
/// let axis = AzMotor::new("axis", SerialConfig::new("/dev/ttyUSB0", 115_200))
///     .unit(1)
///     .steps_per_mm(200.0)
///     .travel(0.0, 150.0)
///     .max_speed(50.0);
/// ```
#[derive(Debug)]
pub struct AzMotor {
    link: ModbusInOut,
    /// Steps per mm (the driver's resolution over the mechanism's lead).
    pub steps_per_mm: f64,
    /// Acceleration and deceleration, mm/s².
    pub accel: f64,
    /// Operating current, % of the rated current (0–100).
    pub current: f64,
    /// The travel, (min, max) mm: positions outside are refused, speed moves end there.
    pub travel: (f64, f64),
    /// The highest speed accepted, mm/s.
    pub max_speed: f64,
    /// The speed of [`Positioner::set_position`] without one, mm/s.
    pub default_speed: f64,
    /// The command last sent, not sent again while it stands (the Machine sends its latest
    /// command every loop). Forgotten on any error, alarm reset, open and close.
    sent: Option<Sent>,
    status: Status,
}

impl AzMotor {
    /// An AZ on `serial` (set the port's baud rate and framing to the driver's
    /// communication parameters; the open-source drivers cited above use 8 data bits, even
    /// parity, 1 stop bit), unit 1, 1000 steps/mm, 100 mm/s², 100 % current, travel ±100 mm,
    /// 10 mm/s at most.
    pub fn new(name: impl Into<String>, serial: SerialConfig) -> Self {
        AzMotor {
            link: ModbusInOut::rtu(name, serial),
            steps_per_mm: 1000.0,
            accel: 100.0,
            current: 100.0,
            travel: (-100.0, 100.0),
            max_speed: 10.0,
            default_speed: 5.0,
            sent: None,
            status: Status::off(),
        }
    }
    /// Sets the driver's address (1–247).
    pub fn unit(mut self, unit: u8) -> Self {
        self.link = self.link.unit(unit);
        self
    }
    /// Sets the steps per mm.
    pub fn steps_per_mm(mut self, s: f64) -> Self {
        self.steps_per_mm = s;
        self
    }
    /// Sets the acceleration and deceleration, mm/s².
    pub fn accel(mut self, a: f64) -> Self {
        self.accel = a;
        self
    }
    /// Sets the operating current, %.
    pub fn current(mut self, c: f64) -> Self {
        self.current = c;
        self
    }
    /// Sets the travel, mm.
    pub fn travel(mut self, min: f64, max: f64) -> Self {
        self.travel = (min, max);
        self
    }
    /// Sets the highest speed, mm/s (also the default speed if that is higher).
    pub fn max_speed(mut self, v: f64) -> Self {
        self.max_speed = v;
        self.default_speed = self.default_speed.min(v);
        self
    }
    /// Sets how many times a failed request is sent again (default 2).
    pub fn retries(mut self, n: u32) -> Self {
        self.link = self.link.retries(n);
        self
    }
    /// What happened on the line so far.
    pub fn stats(&self) -> crate::modbus::ModbusStats {
        self.link.stats()
    }

    fn name_(&self) -> &str {
        &self.link.name
    }
    fn cfg(&self, what: String) -> Error {
        Error::config(what).with_origin(&self.link.name)
    }
    fn out_of_range(&mut self, what: String) -> Error {
        self.sent = None;
        device_error(ErrorKind::OutOfRange, self.name_(), what)
    }

    /// One direct data operation: `op_type` to `position` steps at `speed_hz`, with
    /// `rate` (acceleration and deceleration, 0.001 kHz/s) and `current` (0.1 %), started
    /// at once (trigger 1). Registers 0058h–0067h in one request.
    pub fn direct_operation(
        &mut self,
        op_type: u16,
        position: i32,
        speed_hz: i32,
        rate: i32,
        current: i32,
    ) -> Result<()> {
        let mut regs = Vec::with_capacity(DIRECT_DATA_LEN as usize);
        for v in [
            0,
            op_type as i32,
            position,
            speed_hz,
            rate,
            rate,
            current,
            1,
        ] {
            regs.extend(words::from_i32(v));
        }
        self.sent = None;
        self.link.write_registers(DIRECT_DATA, &regs)
    }

    /// Feedback position (steps) and speed (Hz): 00CCh–00D1h in one request.
    pub fn read_feedback(&mut self) -> Result<(i32, i32)> {
        let r = self.link.read_table(Table::Holding, FEEDBACK_POSITION, 6)?;
        Ok((words::to_i32(&r[0..2]), words::to_i32(&r[4..6])))
    }

    /// The driver output status (lower word; bits in [`output_bits`]).
    pub fn read_output_status(&mut self) -> Result<u16> {
        Ok(self.link.read_table(Table::Holding, OUTPUT_STATUS, 2)?[1])
    }

    /// The present alarm code (0: none).
    pub fn read_alarm(&mut self) -> Result<u16> {
        Ok(words::to_u32(&self.link.read_table(Table::Holding, PRESENT_ALARM, 2)?) as u16)
    }

    /// Resets the alarm (maintenance command 0180h); it stays if its cause does. Reads the
    /// state back.
    pub fn reset_alarm(&mut self) -> Result<()> {
        // Operations were ignored in alarm: the next command is sent whatever it is.
        self.sent = None;
        self.link
            .write_registers(ALARM_RESET, &words::from_u32(1))?;
        self.poll()
    }

    /// A deceleration stop: the STOP input on, then off (so the next operation can start).
    pub fn stop_input(&mut self) -> Result<()> {
        self.sent = None;
        self.link
            .write_registers(INPUT_COMMAND, &words::from_u32(input_bits::STOP as u32))?;
        self.link
            .write_registers(INPUT_COMMAND, &words::from_u32(0))
    }

    fn move_to(&mut self, position_mm: f64, speed: f64) -> Result<()> {
        let (lo, hi) = self.travel;
        if !(lo..=hi).contains(&position_mm) {
            return Err(self.out_of_range(format!(
                "position {position_mm} mm is outside the travel {lo} to {hi} mm"
            )));
        }
        if !(speed > 0.0 && speed <= self.max_speed) {
            return Err(self.out_of_range(format!(
                "speed {speed} mm/s is outside ]0, {}] mm/s",
                self.max_speed
            )));
        }
        let steps = (position_mm * self.steps_per_mm).round() as i32;
        let hz = (speed * self.steps_per_mm).round().max(1.0) as i32;
        let rate = (self.accel * self.steps_per_mm).round().max(1.0) as i32;
        let current = (self.current * 10.0).round() as i32;
        let cmd = Sent::Operation(ABSOLUTE, steps, hz, rate, current);
        if self.sent == Some(cmd) {
            return Ok(()); // the operation in progress, sent again by the Machine
        }
        self.direct_operation(ABSOLUTE, steps, hz, rate, current)
            .map_err(|e| self.fail(e))?;
        self.sent = Some(cmd);
        Ok(())
    }

    /// A deceleration stop, not sent again while the last command was one.
    fn stop_once(&mut self) -> Result<()> {
        if self.sent == Some(Sent::Stop) {
            return Ok(());
        }
        self.stop_input().map_err(|e| self.fail(e))?;
        self.sent = Some(Sent::Stop);
        Ok(())
    }

    fn fail(&mut self, e: Error) -> Error {
        self.sent = None;
        if e.kind() != ErrorKind::OutOfRange {
            self.status = Status::fault(e.to_string());
        }
        e
    }
}

impl Actuator for AzMotor {
    fn name(&self) -> &str {
        self.name_()
    }

    fn check(&self) -> Result<()> {
        let pos = |x: f64| x.is_finite() && x > 0.0;
        if !pos(self.steps_per_mm)
            || !pos(self.accel)
            || !pos(self.max_speed)
            || !pos(self.default_speed)
        {
            return Err(self.cfg(format!(
                "steps_per_mm {}, accel {} mm/s², max_speed {} mm/s and default speed {} mm/s must be above 0",
                self.steps_per_mm, self.accel, self.max_speed, self.default_speed
            )));
        }
        if self.default_speed > self.max_speed {
            return Err(self.cfg(format!(
                "default speed {} mm/s above max_speed {} mm/s",
                self.default_speed, self.max_speed
            )));
        }
        if self.max_speed * self.steps_per_mm > MAX_SPEED_HZ {
            return Err(self.cfg(format!(
                "max_speed {} mm/s is {} Hz; direct data operation goes up to {MAX_SPEED_HZ} Hz",
                self.max_speed,
                self.max_speed * self.steps_per_mm
            )));
        }
        if self.accel * self.steps_per_mm > 1e9 {
            return Err(self.cfg(format!(
                "accel {} mm/s² is beyond the rate register's 1 000 000 kHz/s",
                self.accel
            )));
        }
        if !(self.current > 0.0 && self.current <= 100.0) {
            return Err(self.cfg(format!(
                "current {} % must be in ]0, 100] % of the rated current",
                self.current
            )));
        }
        let (lo, hi) = self.travel;
        let lim = i32::MAX as f64 / self.steps_per_mm;
        if !(lo.is_finite() && hi.is_finite() && lo < hi && lo >= -lim && hi <= lim) {
            return Err(self.cfg(format!(
                "travel {lo} to {hi} mm: min below max, within ±{lim} mm (32-bit steps)"
            )));
        }
        if let crate::modbus::Transport::Tcp { .. } = self.link.transport {
            return Err(self.cfg("the AZ's RS-485 speaks Modbus RTU".into()));
        }
        self.link.check_link()
    }

    fn open(&mut self) -> Result<()> {
        self.check()?;
        self.status = Status::on("opening");
        self.sent = None;
        self.link.open_link().map_err(|e| self.fail(e))?;
        self.poll()
    }

    fn set_speed(&mut self, speed: f64) -> Result<()> {
        if !speed.is_finite() || speed.abs() > self.max_speed {
            return Err(self.out_of_range(format!(
                "speed {speed} mm/s is beyond ±{} mm/s",
                self.max_speed
            )));
        }
        if speed == 0.0 {
            return self.stop_once();
        }
        let end = if speed > 0.0 {
            self.travel.1
        } else {
            self.travel.0
        };
        self.move_to(end, speed.abs())
    }

    fn poll(&mut self) -> Result<()> {
        use output_bits::*;
        let out = self.read_output_status().map_err(|e| self.fail(e))?;
        if out & ALM_A != 0 {
            let code = self.read_alarm().map_err(|e| self.fail(e))?;
            let e = device_error(
                ErrorKind::Hardware,
                self.name_(),
                format!(
                    "the driver is in alarm {code:#04x} ({}); remove the cause, then reset the alarm",
                    alarm_name(code)
                ),
            );
            self.status = Status::fault(e.to_string());
            self.sent = None;
            return Err(e);
        }
        self.status = if out & INFO != 0 {
            Status::new(
                DeviceState::Alarm,
                "the driver signals information (INFO): a warning; see its information monitor",
            )
        } else if out & MOVE != 0 {
            Status::moving("")
        } else {
            Status::on(if out & IN_POS != 0 {
                "in position"
            } else {
                "ready"
            })
        };
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        // Always sent, whatever was sent before.
        self.stop_input().map_err(|e| self.fail(e))?;
        self.sent = Some(Sent::Stop);
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        self.link.close_link();
        self.sent = None;
        if self.status.state != DeviceState::Fault {
            self.status = Status::off();
        }
        Ok(())
    }

    fn status(&self) -> Status {
        self.status.clone()
    }
}

impl Positioner for AzMotor {
    fn set_position(&mut self, position: f64, speed: Option<f64>) -> Result<()> {
        let v = speed.unwrap_or(self.default_speed);
        self.move_to(position, v)
    }
}

impl PositionFeedback for AzMotor {
    fn position(&mut self) -> Result<f64> {
        Ok(self.position_and_speed()?.0)
    }

    /// Feedback position and speed in one request (00CCh–00D1h).
    fn position_and_speed(&mut self) -> Result<(f64, Option<f64>)> {
        let (p, v) = self.read_feedback().map_err(|e| self.fail(e))?;
        let s = self.steps_per_mm;
        Ok((p as f64 / s, Some(v as f64 / s)))
    }
}

impl SpeedFeedback for AzMotor {
    fn speed(&mut self) -> Result<f64> {
        Ok(self.position_and_speed()?.1.unwrap_or(0.0))
    }
}
