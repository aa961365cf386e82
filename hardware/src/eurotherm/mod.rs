//! Eurotherm 3200-series temperature controllers (3216, 3208, 32h8, 3204) over Modbus RTU:
//! [`Eurotherm3200`] reads the process value, the working setpoint, the working output and
//! the instrument status, writes the target setpoint, and switches auto/manual; [`sim`]
//! plays a controller with its furnace (a first-order thermal plant under the controller's
//! own PID) on a pseudo-terminal.
//!
//! ## The document
//!
//! *3200 Series Process Controllers User Manual*, Eurotherm, part no. HA028651, issue 7.0
//! (Apr 2009), chapter 15 "Digital Communications", §15.5 "Parameter Modbus Addresses"
//! (pages 81–82 for the addresses used here):
//!
//! | Mnemonic | Parameter | Address | Used as |
//! |---|---|---|---|
//! | `PV.IN` | PV (temperature) input value | 1 | read, scaled integer |
//! | `TG.SP` | Target setpoint | 2 | written by [`Eurotherm3200::set_target_setpoint`] |
//! | `MAN.OP` | Manual output value | 3 | written by [`Eurotherm3200::set_manual_output`] |
//! | `WRK.OP` | Working output, % | 4 | read |
//! | `WKG.SP` | Working setpoint (read only) | 5 | read |
//! | `StAt` | Instrument status bitmap: B0–B3 alarms 1–4, B4 auto/manual, B5 sensor break, B6 loop break, B10 PV over-range (> 5 % of span) | 75 | read |
//! | `A-M` | Loop mode: 0 auto, 1 manual (see below) | 273 | read and written |
//!
//! §15.5 warns that `TG.SP` is kept in non-volatile memory (about 100 000 writes): a
//! setpoint written every loop wears it out; [`Output::write`] is only called when the
//! command changes (IOBlock sends changes only), and ramps belong in the controller's own
//! rate limit (address 35) or the remote setpoint (address 26), not here.
//!
//! Values travel as 16-bit signed *scaled integers* with the decimal point implied by the
//! parameter's display resolution (the controller's `dEC.P` for temperatures, one decimal
//! for output power): 25.6 °C at one decimal is 256. This is the 2000/3000 series' integer
//! encoding (the chapter's data-encoding section, which could not be opened from here; the
//! rule was cross-checked against an open-source `minimalmodbus`-based `Eurotherm3200`
//! driver, which reads the same addresses, and an EPICS Eurotherm register template, whose
//! notes say "the decimal point is inferred, hence 25.01 is
//! transmitted as 2501"); the resolution is not read from the controller, so
//! [`Eurotherm3200::decimals`] must match the front panel's. The full-resolution float
//! region (0x8000 + 2 × address) is not used. The `A-M` address 273 was not on the pages
//! read; it is the one open-source drivers of the 3200/2400 use (HACS `EurothermFurnace`:
//! `AutoManual = 273`; the same value in several `minimalmodbus` drivers).
//!
//! ## Errors, alarms, faults
//!
//! The link is [`ModbusInOut`]'s RTU (CRC errors, silence and stray answers retried, then
//! [`ErrorKind::Communication`] / [`ErrorKind::Timeout`]; exceptions mapped as
//! [`crate::modbus`] says: 02 → [`ErrorKind::Configuration`], 03 (a value the controller
//! refuses, e.g. a setpoint beyond its limits) → [`ErrorKind::OutOfRange`]). From the status
//! word: sensor break (B5) is a FAULT and a read error ([`ErrorKind::Hardware`]: the PV means
//! nothing); an active alarm (B0–B3), loop break (B6) or PV over-range (B10) is an ALARM
//! state, readings go on.

pub mod sim;
#[cfg(test)]
mod tests;

use crate::modbus::{ModbusInOut, Table};
use crate::serial::SerialConfig;
use crabby::hardware::{device_error, now_ns, DeviceState, InOut, Input, Output, Reading, Status};
use crabby::{Error, ErrorKind, Result};

/// `PV.IN` (§15.5).
pub const PV_IN: u16 = 1;
/// `TG.SP` (§15.5).
pub const TG_SP: u16 = 2;
/// `MAN.OP` (§15.5).
pub const MAN_OP: u16 = 3;
/// `WRK.OP` (§15.5).
pub const WRK_OP: u16 = 4;
/// `WKG.SP` (§15.5).
pub const WKG_SP: u16 = 5;
/// `StAt`, the instrument status bitmap (§15.5).
pub const STATUS: u16 = 75;
/// `A-M`, the loop mode (§15.5).
pub const AUTO_MANUAL: u16 = 273;

/// Bits of `StAt` (address 75, §15.5).
pub mod status_bits {
    /// Alarms 1 to 4 (B0–B3).
    pub const ALARMS: u16 = 0x000F;
    /// Manual mode (B4).
    pub const MANUAL: u16 = 1 << 4;
    /// Sensor break (B5).
    pub const SENSOR_BREAK: u16 = 1 << 5;
    /// Loop break (B6).
    pub const LOOP_BREAK: u16 = 1 << 6;
    /// PV over-range by more than 5 % of span (B10).
    pub const PV_OVER_RANGE: u16 = 1 << 10;
}

/// Addresses 1 to 5, read in one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Process {
    /// `PV.IN`, °C (or the input's units).
    pub pv: f64,
    /// `TG.SP`.
    pub target_setpoint: f64,
    /// `MAN.OP`, %.
    pub manual_output: f64,
    /// `WRK.OP`, %.
    pub working_output: f64,
    /// `WKG.SP`.
    pub working_setpoint: f64,
}

/// A Eurotherm 3200 on Modbus RTU, as an [`Input`] and an [`Output`].
///
/// Channels (labels settable with [`labels`](Self::labels)): `T(C)` the process value,
/// `SP(C)` the working setpoint, `OP(%)` the working output, `status` the instrument status
/// word (a number; bits in [`status_bits`]). One command: the target setpoint, °C (or the
/// input's units), within [`setpoint_limits`](Self::setpoint_limits).
///
/// ```no_run
/// use crabby_hardware::eurotherm::Eurotherm3200;
/// use crabby_hardware::serial::SerialConfig;
/// let oven = Eurotherm3200::new("oven", SerialConfig::new("/dev/ttyUSB0", 9600))
///     .unit(1)
///     .decimals(1)
///     .setpoint_limits(0.0, 1000.0);
/// ```
#[derive(Debug)]
pub struct Eurotherm3200 {
    link: ModbusInOut,
    /// Decimals of temperatures on the wire: the controller's display resolution (`dEC.P`),
    /// 0 to 2 (default 1).
    pub decimals: u8,
    /// Decimals of output power on the wire (default 1, 0.1 %).
    pub output_decimals: u8,
    /// The setpoints this driver writes, (low, high) (default 0 to 1200).
    pub setpoint_limits: (f64, f64),
    /// Labels of PV, working setpoint, working output, status word.
    pub labels: [String; 4],
    status: Status,
}

impl Eurotherm3200 {
    /// A controller on `serial` (the 3200 talks 8 data bits, 1 stop bit, no parity by
    /// default, 1200–19200 baud), unit 1.
    pub fn new(name: impl Into<String>, serial: SerialConfig) -> Self {
        Eurotherm3200 {
            link: ModbusInOut::rtu(name, serial),
            decimals: 1,
            output_decimals: 1,
            setpoint_limits: (0.0, 1200.0),
            labels: ["T(C)", "SP(C)", "OP(%)", "status"].map(String::from),
            status: Status::off(),
        }
    }
    /// Sets the controller's address (1–247).
    pub fn unit(mut self, unit: u8) -> Self {
        self.link = self.link.unit(unit);
        self
    }
    /// Sets the decimals of temperatures (the controller's display resolution).
    pub fn decimals(mut self, d: u8) -> Self {
        self.decimals = d;
        self
    }
    /// Sets the setpoints this driver accepts.
    pub fn setpoint_limits(mut self, low: f64, high: f64) -> Self {
        self.setpoint_limits = (low, high);
        self
    }
    /// Sets the four labels (PV, working setpoint, working output, status).
    pub fn labels(mut self, pv: &str, sp: &str, op: &str, status: &str) -> Self {
        self.labels = [pv, sp, op, status].map(String::from);
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
    fn scale(decimals: u8) -> f64 {
        10f64.powi(decimals as i32)
    }
    fn to_raw(&self, v: f64, decimals: u8, what: &str) -> Result<u16> {
        let r = (v * Self::scale(decimals)).round();
        if !r.is_finite() || !(-32768.0..=32767.0).contains(&r) {
            return Err(device_error(
                ErrorKind::OutOfRange,
                self.name_(),
                format!("{what} {v} does not fit a 16-bit scaled integer at {decimals} decimals"),
            ));
        }
        Ok(r as i16 as u16)
    }

    /// Reads `PV.IN`, `TG.SP`, `MAN.OP`, `WRK.OP`, `WKG.SP` in one request.
    pub fn read_process(&mut self) -> Result<Process> {
        let r = self.link.read_table(Table::Holding, PV_IN, 5)?;
        let t = Self::scale(self.decimals);
        let o = Self::scale(self.output_decimals);
        let v = |i: usize, s: f64| r[i] as i16 as f64 / s;
        Ok(Process {
            pv: v(0, t),
            target_setpoint: v(1, t),
            manual_output: v(2, o),
            working_output: v(3, o),
            working_setpoint: v(4, t),
        })
    }

    /// Reads the instrument status word (`StAt`, bits in [`status_bits`]).
    pub fn read_status_word(&mut self) -> Result<u16> {
        Ok(self.link.read_table(Table::Holding, STATUS, 1)?[0])
    }

    /// Writes the target setpoint (checked against [`setpoint_limits`](Self::setpoint_limits)
    /// first).
    pub fn set_target_setpoint(&mut self, sp: f64) -> Result<()> {
        let (lo, hi) = self.setpoint_limits;
        if !(lo..=hi).contains(&sp) {
            return Err(device_error(
                ErrorKind::OutOfRange,
                self.name_(),
                format!("setpoint {sp} is outside the limits {lo} to {hi} set for this controller"),
            ));
        }
        let raw = self.to_raw(sp, self.decimals, "setpoint")?;
        self.link.write_registers(TG_SP, &[raw])
    }

    /// Switches the loop to manual (`true`) or auto (`A-M`, address 273).
    pub fn set_manual(&mut self, manual: bool) -> Result<()> {
        self.link.write_registers(AUTO_MANUAL, &[manual as u16])
    }

    /// Whether the loop is in manual (`A-M`).
    pub fn is_manual(&mut self) -> Result<bool> {
        Ok(self.link.read_table(Table::Holding, AUTO_MANUAL, 1)?[0] == 1)
    }

    /// Writes the manual output, % (0–100; it drives the heater in manual mode).
    pub fn set_manual_output(&mut self, percent: f64) -> Result<()> {
        if !(0.0..=100.0).contains(&percent) {
            return Err(device_error(
                ErrorKind::OutOfRange,
                self.name_(),
                format!("manual output {percent} % is outside 0 to 100 %"),
            ));
        }
        let raw = self.to_raw(percent, self.output_decimals, "manual output")?;
        self.link.write_registers(MAN_OP, &[raw])
    }

    /// The state the status word says, and the error it is if the PV cannot be trusted.
    fn judge(&mut self, word: u16, p: &Process) -> Option<Error> {
        use status_bits::*;
        let mode = if word & MANUAL != 0 { "manual" } else { "auto" };
        if word & SENSOR_BREAK != 0 {
            let e = device_error(
                ErrorKind::Hardware,
                self.name_(),
                "the controller reports a sensor break (status bit B5): check the thermocouple or RTD and its wiring",
            );
            self.status = Status::fault(e.to_string());
            return Some(e);
        }
        let mut alarms = Vec::new();
        for i in 0..4 {
            if word & (1 << i) != 0 {
                alarms.push(format!("alarm {} active", i + 1));
            }
        }
        if word & LOOP_BREAK != 0 {
            alarms.push("loop break".into());
        }
        if word & PV_OVER_RANGE != 0 {
            alarms.push("PV over range".into());
        }
        let text = format!(
            "{mode}, PV {:.*}, working SP {:.*}, output {:.1} %",
            self.decimals as usize,
            p.pv,
            self.decimals as usize,
            p.working_setpoint,
            p.working_output
        );
        self.status = if alarms.is_empty() {
            Status::on(text)
        } else {
            Status::new(DeviceState::Alarm, format!("{}; {text}", alarms.join(", ")))
        };
        None
    }

    fn fail(&mut self, e: Error) -> Error {
        self.status = Status::fault(e.to_string());
        e
    }
}

impl InOut for Eurotherm3200 {
    fn name(&self) -> &str {
        self.name_()
    }

    fn channels(&self) -> Vec<String> {
        self.labels.to_vec()
    }

    fn check(&self) -> Result<()> {
        if self.decimals > 2 || self.output_decimals > 2 {
            return Err(self.cfg(format!(
                "decimals {} / output decimals {}: the 3200 shows 0 to 2 decimals",
                self.decimals, self.output_decimals
            )));
        }
        let (lo, hi) = self.setpoint_limits;
        let max = 32767.0 / Self::scale(self.decimals);
        if !(lo.is_finite() && hi.is_finite() && lo < hi && lo >= -max - 1e-9 && hi <= max + 1e-9) {
            return Err(self.cfg(format!(
                "setpoint limits {lo} to {hi}: low must be below high, both within ±{max} (16-bit at {} decimals)",
                self.decimals
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for l in &self.labels {
            if l.trim().is_empty() || !seen.insert(l) {
                return Err(self.cfg(format!("label '{l}' is empty or used twice")));
            }
        }
        if let crate::modbus::Transport::Tcp { .. } = self.link.transport {
            return Err(self.cfg("the 3200 speaks Modbus RTU only".into()));
        }
        self.link.check_link()
    }

    fn open(&mut self) -> Result<()> {
        self.check()?;
        self.status = Status::on("opening");
        if let Err(e) = self.link.open_link() {
            return Err(self.fail(e));
        }
        // One exchange at open: a controller that is not there fails `prepare`.
        let p = self.read_process().map_err(|e| self.fail(e))?;
        let w = self.read_status_word().map_err(|e| self.fail(e))?;
        match self.judge(w, &p) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn close(&mut self) -> Result<()> {
        self.link.close_link();
        if self.status.state != DeviceState::Fault {
            self.status = Status::off();
        }
        Ok(())
    }

    fn status(&self) -> Status {
        self.status.clone()
    }
}

impl Input for Eurotherm3200 {
    fn read(&mut self) -> Result<Reading> {
        let t0 = now_ns();
        let p = self.read_process().map_err(|e| self.fail(e))?;
        let w = self.read_status_word().map_err(|e| self.fail(e))?;
        if let Some(e) = self.judge(w, &p) {
            return Err(e);
        }
        Ok(Reading::new(
            t0 + (now_ns() - t0) / 2,
            vec![p.pv, p.working_setpoint, p.working_output, w as f64],
        ))
    }
}

impl Output for Eurotherm3200 {
    fn n_commands(&self) -> Option<usize> {
        Some(1)
    }

    fn write(&mut self, cmd: &[f64]) -> Result<()> {
        let [sp] = cmd else {
            return Err(device_error(
                ErrorKind::Internal,
                self.name_(),
                format!("{} command values for one setpoint", cmd.len()),
            ));
        };
        match self.set_target_setpoint(*sp) {
            Err(e) if e.kind() == ErrorKind::OutOfRange => Err(e),
            Err(e) => Err(self.fail(e)),
            Ok(()) => Ok(()),
        }
    }
}
