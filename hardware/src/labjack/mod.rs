//! LabJack T7 over Modbus TCP: [`T7`] reads analog inputs (`AIN#`, volts), writes the two
//! DACs (`DAC0`, `DAC1`, volts) and digital outputs (`FIO`/`EIO` lines), and reads the
//! digital lines' state; [`sim`] plays a T7 wired to a small circuit for the tests.
//!
//! ## The document
//!
//! *LabJack T-Series Datasheet* (LabJack Corporation, online edition,
//! support.labjack.com/docs/t-series-datasheet), with its Modbus map (§3.1 "Modbus Map",
//! §3.1.2 "Printable Modbus Map"). Every register this driver touches, with its address
//! (0-based, as on the wire), type and access:
//!
//! | Register | Address | Type | Access | Section |
//! |---|---|---|---|---|
//! | `AIN#(0:13)`: the input's voltage | 0 + 2·# | FLOAT32 | R | §14.0 Analog Inputs |
//! | `AIN#(0:13)_RANGE`: ±10, ±1, ±0.1, ±0.01 V | 40000 + 2·# | FLOAT32 | R/W | §14.0 |
//! | `DAC#(0:1)`: output voltage, 0 to 5 V | 1000 + 2·# | FLOAT32 | R/W | §15.0 DAC |
//! | `DIO#(0:15)` (FIO0–7, EIO0–7): writing sets the line to output at that state | 2000 + # | UINT16 | R/W | §13.0 Digital I/O |
//! | `FIO_STATE`, `EIO_STATE`: the lines' states, bit n = line n of the port | 2500, 2501 | UINT16 | R/W | §13.0 |
//! | `PRODUCT_ID` (7 for a T7) | 60000 | FLOAT32 | R | §4.0 Hardware Overview, device information |
//! | `FIRMWARE_VERSION` | 60004 | FLOAT32 | R | §4.0 |
//! | `SERIAL_NUMBER` | 60028 | UINT32 | R | §4.0 |
//!
//! 32-bit values are two registers, high word first (§3.1: "Modbus is big-endian"); the
//! T7 serves the map with function 03 and 04 alike and writes with 06 and 16 (§3.1). The
//! page itself could not be opened from this machine: the addresses above were checked
//! against two faithful open-source users of the same map: EPICS `epics-modules/LabJack`
//! (`iocBoot/iocLabJack/LabJack_T7.cmd`: AIN at 0 as FLOAT32_BE, ranges at 40000, DACs at
//! 1000, DIO at 2000, FIO/EIO/CIO/MIO_STATE at 2500) and LabJack's own LJM example
//! `eReadAddresses.c` (SERIAL_NUMBER 60028 UINT32, PRODUCT_ID 60000 FLOAT32,
//! FIRMWARE_VERSION 60004 FLOAT32).
//!
//! ## Errors and faults
//!
//! The link is [`ModbusInOut`]'s: timeouts, broken connections and bad frames are retried,
//! then [`ErrorKind::Timeout`] / [`ErrorKind::Communication`]; the Modbus exceptions map as
//! [`crate::modbus`] says (02, an address the device does not have →
//! [`ErrorKind::Configuration`]; 04 → [`ErrorKind::Hardware`]). A device at the address that
//! is not a T7 (its `PRODUCT_ID`) is refused at `open` ([`ErrorKind::Configuration`]). A
//! DAC command outside 0–5 V is refused before anything is sent
//! ([`ErrorKind::OutOfRange`]).
//!
//! ## Not supported: stream mode
//!
//! Stream mode (§3.2 "Stream Mode") sends its samples as LabJack's own spontaneous packets
//! (on TCP port 702, after `STREAM_*` configuration registers), not as Modbus answers; its
//! framing is in the datasheet's stream section, which could not be read from here, so it
//! is neither driven nor simulated rather than guessed. Command-response reads give about
//! the request rate of the bench (`cargo bench --bench modbus`), one request for all the
//! analog inputs.

pub mod sim;
#[cfg(test)]
mod tests;

use crate::modbus::{words, ModbusInOut, Table};
use crabby::hardware::{device_error, now_ns, InOut, Input, Output, Reading, Status};
use crabby::{Error, ErrorKind, Result};
use std::time::Duration;

/// `AIN#` (§14.0).
pub const AIN0: u16 = 0;
/// `DAC#` (§15.0).
pub const DAC0: u16 = 1000;
/// `DIO#` (§13.0).
pub const DIO0: u16 = 2000;
/// `FIO_STATE`; `EIO_STATE` follows (§13.0).
pub const FIO_STATE: u16 = 2500;
/// `AIN#_RANGE` (§14.0).
pub const AIN0_RANGE: u16 = 40000;
/// `PRODUCT_ID` (§4.0).
pub const PRODUCT_ID: u16 = 60000;
/// `FIRMWARE_VERSION` (§4.0).
pub const FIRMWARE_VERSION: u16 = 60004;
/// `SERIAL_NUMBER` (§4.0).
pub const SERIAL_NUMBER: u16 = 60028;
/// The T7's `PRODUCT_ID`.
pub const T7_PRODUCT_ID: f32 = 7.0;
/// The analog inputs on the T7's terminals and DB37 (AIN0–AIN13; more need a Mux80).
pub const N_AIN: u8 = 14;
/// The ranges of `AIN#_RANGE`, in volts (±).
pub const RANGES: [f64; 4] = [10.0, 1.0, 0.1, 0.01];
/// The DACs' output range, volts (§15.0).
pub const DAC_MAX_V: f64 = 5.0;

/// One analog input read every loop.
#[derive(Debug, Clone, PartialEq)]
pub struct Ain {
    /// Its label.
    pub label: String,
    /// `AIN#`, 0 to 13.
    pub channel: u8,
    /// Its range, ± volts (one of [`RANGES`]), written to `AIN#_RANGE` at open.
    pub range: f64,
}

/// A LabJack T7 on Modbus TCP, as an [`Input`] and an [`Output`] (both always: a T7
/// configured without analog inputs reads nothing, one without outputs takes no command).
///
/// Channels: the analog inputs in the order added (volts), then `dio_state`'s label if set
/// (the 16 FIO/EIO lines as a number, bit n = line n). Commands: the DACs in the order
/// added (volts, 0–5), then the digital outputs (0 or 1).
///
/// ```no_run
/// use crabby_hardware::labjack::T7;
/// let daq = T7::tcp("daq", "192.168.1.207:502")
///     .ain("U(V)", 0)
///     .ain_range("bridge(V)", 1, 0.01)
///     .dac(0)
///     .dio_output(0);
/// ```
#[derive(Debug)]
pub struct T7 {
    link: ModbusInOut,
    /// The analog inputs read.
    pub ains: Vec<Ain>,
    /// The DACs written, in command order.
    pub dacs: Vec<u8>,
    /// The digital lines written (0–15: FIO0–7, EIO0–7), in command order after the DACs.
    pub dio_outputs: Vec<u8>,
    /// The label of the FIO/EIO state word, if read.
    pub dio_state: Option<String>,
    status: Status,
    identity: Option<(u32, f32)>,
}

impl T7 {
    /// A T7 at `host:port` (502 is its Modbus port), 1 s timeout.
    pub fn tcp(name: impl Into<String>, address: impl Into<String>) -> Self {
        T7 {
            link: ModbusInOut::tcp(name, address).unit(1),
            ains: Vec::new(),
            dacs: Vec::new(),
            dio_outputs: Vec::new(),
            dio_state: None,
            status: Status::off(),
            identity: None,
        }
    }
    /// Sets the answer timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.link = self.link.timeout(t);
        self
    }
    /// Sets how many times a failed request is sent again (default 2).
    pub fn retries(mut self, n: u32) -> Self {
        self.link = self.link.retries(n);
        self
    }
    /// Reads `AIN<channel>` on the ±10 V range.
    pub fn ain(self, label: impl Into<String>, channel: u8) -> Self {
        self.ain_range(label, channel, 10.0)
    }
    /// Reads `AIN<channel>` on `range` (± volts: 10, 1, 0.1 or 0.01).
    pub fn ain_range(mut self, label: impl Into<String>, channel: u8, range: f64) -> Self {
        self.ains.push(Ain {
            label: label.into(),
            channel,
            range,
        });
        self
    }
    /// Writes `DAC<channel>` (0 or 1) with the next command value.
    pub fn dac(mut self, channel: u8) -> Self {
        self.dacs.push(channel);
        self
    }
    /// Drives digital line `line` (0–7: FIO0–7, 8–15: EIO0–7) with the next command value.
    pub fn dio_output(mut self, line: u8) -> Self {
        self.dio_outputs.push(line);
        self
    }
    /// Reads the 16 FIO/EIO lines' state as one channel.
    pub fn dio_state(mut self, label: impl Into<String>) -> Self {
        self.dio_state = Some(label.into());
        self
    }
    /// The serial number and firmware version read at open.
    pub fn identity(&self) -> Option<(u32, f32)> {
        self.identity
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

    /// Reads a FLOAT32 register pair.
    pub fn read_f32(&mut self, address: u16) -> Result<f32> {
        Ok(words::to_f32(&self.link.read_table(
            Table::Holding,
            address,
            2,
        )?))
    }

    /// Reads `PRODUCT_ID`, `SERIAL_NUMBER`, `FIRMWARE_VERSION`.
    pub fn read_identity(&mut self) -> Result<(f32, u32, f32)> {
        let product = self.read_f32(PRODUCT_ID)?;
        let serial = words::to_u32(&self.link.read_table(Table::Holding, SERIAL_NUMBER, 2)?);
        let firmware = self.read_f32(FIRMWARE_VERSION)?;
        Ok((product, serial, firmware))
    }

    /// Sets `AIN<channel>_RANGE`.
    pub fn set_range(&mut self, channel: u8, range: f64) -> Result<()> {
        let regs = words::from_f32(range as f32);
        self.link
            .write_registers(AIN0_RANGE + 2 * channel as u16, &regs)
    }

    /// Reads the configured analog inputs, volts, in one request (from the lowest channel
    /// to the highest).
    pub fn read_ains(&mut self) -> Result<Vec<f64>> {
        let (Some(lo), Some(hi)) = (
            self.ains.iter().map(|a| a.channel).min(),
            self.ains.iter().map(|a| a.channel).max(),
        ) else {
            return Ok(Vec::new());
        };
        let regs = self.link.read_table(
            Table::Holding,
            AIN0 + 2 * lo as u16,
            2 * (hi - lo + 1) as u16,
        )?;
        Ok(self
            .ains
            .iter()
            .map(|a| {
                let at = 2 * (a.channel - lo) as usize;
                words::to_f32(&regs[at..at + 2]) as f64
            })
            .collect())
    }

    /// Reads `FIO_STATE` and `EIO_STATE`: bit n = line n (FIO0 = bit 0, EIO0 = bit 8).
    pub fn read_dio_state(&mut self) -> Result<u16> {
        let r = self.link.read_table(Table::Holding, FIO_STATE, 2)?;
        Ok((r[0] & 0xFF) | (r[1] & 0xFF) << 8)
    }

    /// Sets `DAC<channel>` to `volts` (0–5 V, checked here).
    pub fn set_dac(&mut self, channel: u8, volts: f64) -> Result<()> {
        self.check_dac(volts)?;
        self.link
            .write_registers(DAC0 + 2 * channel as u16, &words::from_f32(volts as f32))
    }

    /// Drives digital line `line` (it becomes an output).
    pub fn set_dio(&mut self, line: u8, high: bool) -> Result<()> {
        self.link
            .write_registers(DIO0 + line as u16, &[high as u16])
    }

    fn check_dac(&self, volts: f64) -> Result<()> {
        if !(0.0..=DAC_MAX_V).contains(&volts) {
            return Err(device_error(
                ErrorKind::OutOfRange,
                self.name_(),
                format!("DAC command {volts} V is outside the T7's 0 to {DAC_MAX_V} V (datasheet §15.0)"),
            ));
        }
        Ok(())
    }

    fn fail(&mut self, e: Error) -> Error {
        self.status = Status::fault(e.to_string());
        e
    }

    fn on(&mut self) {
        if let Some((serial, fw)) = self.identity {
            self.status = Status::on(format!("T7 serial {serial}, firmware {fw:.4}"));
        }
    }
}

impl InOut for T7 {
    fn name(&self) -> &str {
        self.name_()
    }

    fn channels(&self) -> Vec<String> {
        self.ains
            .iter()
            .map(|a| a.label.clone())
            .chain(self.dio_state.clone())
            .collect()
    }

    fn check(&self) -> Result<()> {
        if self.channels().is_empty() && self.dacs.is_empty() && self.dio_outputs.is_empty() {
            return Err(self.cfg(
                "nothing to read or write: add .ain(…), .dio_state(…), .dac(…) or .dio_output(…)"
                    .into(),
            ));
        }
        let mut labels = std::collections::HashSet::new();
        for l in self.channels() {
            if l.trim().is_empty() || !labels.insert(l.clone()) {
                return Err(self.cfg(format!("channel label '{l}' is empty or used twice")));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for a in &self.ains {
            if a.channel >= N_AIN {
                return Err(self.cfg(format!(
                    "'{}': AIN{} does not exist; the T7 has AIN0 to AIN{} (datasheet §14.0; more need a Mux80)",
                    a.label,
                    a.channel,
                    N_AIN - 1
                )));
            }
            if !seen.insert(a.channel) {
                return Err(self.cfg(format!("AIN{} is read twice", a.channel)));
            }
            if !RANGES.contains(&a.range) {
                return Err(self.cfg(format!(
                    "'{}': range ±{} V; the T7's ranges are ±10, ±1, ±0.1 and ±0.01 V (datasheet §14.0)",
                    a.label, a.range
                )));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for d in &self.dacs {
            if *d > 1 || !seen.insert(*d) {
                return Err(self.cfg(format!(
                    "DAC{d} is not DAC0 or DAC1, or is written twice (datasheet §15.0)"
                )));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for l in &self.dio_outputs {
            if *l > 15 || !seen.insert(*l) {
                return Err(self.cfg(format!(
                    "digital line {l} is not 0–15 (FIO0–7, EIO0–7), or is driven twice (datasheet §13.0)"
                )));
            }
        }
        self.link.check_link()
    }

    fn open(&mut self) -> Result<()> {
        self.check()?;
        self.status = Status::on("opening");
        if let Err(e) = self.link.open_link() {
            return Err(self.fail(e));
        }
        let (product, serial, firmware) = match self.read_identity() {
            Ok(id) => id,
            Err(e) => return Err(self.fail(e)),
        };
        if product != T7_PRODUCT_ID {
            let e = device_error(
                ErrorKind::Configuration,
                self.name_(),
                format!(
                    "the device at this address has PRODUCT_ID {product} (serial {serial}), not a T7 (7); check the address"
                ),
            );
            self.link.close_link();
            return Err(self.fail(e));
        }
        self.identity = Some((serial, firmware));
        for i in 0..self.ains.len() {
            let (ch, range) = (self.ains[i].channel, self.ains[i].range);
            if let Err(e) = self.set_range(ch, range) {
                return Err(self.fail(e));
            }
        }
        self.on();
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        self.link.close_link();
        if self.status.state != crabby::hardware::DeviceState::Fault {
            self.status = Status::off();
        }
        Ok(())
    }

    fn status(&self) -> Status {
        self.status.clone()
    }
}

impl Input for T7 {
    fn read(&mut self) -> Result<Reading> {
        let t0 = now_ns();
        let mut values = self.read_ains().map_err(|e| self.fail(e))?;
        if self.dio_state.is_some() {
            values.push(self.read_dio_state().map_err(|e| self.fail(e))? as f64);
        }
        self.on();
        Ok(Reading::new(t0 + (now_ns() - t0) / 2, values))
    }
}

impl Output for T7 {
    fn n_commands(&self) -> Option<usize> {
        Some(self.dacs.len() + self.dio_outputs.len())
    }

    fn write(&mut self, cmd: &[f64]) -> Result<()> {
        let n = self.dacs.len();
        if cmd.len() != n + self.dio_outputs.len() {
            return Err(device_error(
                ErrorKind::Internal,
                self.name_(),
                format!(
                    "{} command values for {} outputs",
                    cmd.len(),
                    n + self.dio_outputs.len()
                ),
            ));
        }
        // Every value is checked before anything is sent.
        for v in &cmd[..n] {
            self.check_dac(*v)?;
        }
        // Adjacent DACs (DAC0, DAC1 = 1000..1003) go in one request.
        let mut dacs: Vec<(u8, f64)> = self
            .dacs
            .iter()
            .copied()
            .zip(cmd[..n].iter().copied())
            .collect();
        dacs.sort_by_key(|d| d.0);
        if dacs.len() == 2 {
            let mut regs = words::from_f32(dacs[0].1 as f32).to_vec();
            regs.extend(words::from_f32(dacs[1].1 as f32));
            self.link
                .write_registers(DAC0, &regs)
                .map_err(|e| self.fail(e))?;
        } else if let Some((ch, v)) = dacs.first() {
            self.set_dac(*ch, *v).map_err(|e| self.fail(e))?;
        }
        for i in 0..self.dio_outputs.len() {
            let line = self.dio_outputs[i];
            self.set_dio(line, cmd[n + i] != 0.0)
                .map_err(|e| self.fail(e))?;
        }
        self.on();
        Ok(())
    }
}
