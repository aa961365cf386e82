//! [`JvlMac`]: JVL MAC integrated servo motors (MAC050 to MAC141 on their RS232/RS485
//! interface, MAC400 and up through a MAC00-B1/B2/B4 module) driven by reading and writing
//! their registers with JVL's *MacTalk* serial protocol, as an [`Actuator`] that is also a
//! [`Positioner`], a [`PositionFeedback`] and a [`SpeedFeedback`]; the simulated motor its
//! tests play is in [`sim`], the protocol client in [`MacTalk`].
//!
//! ## Sources
//!
//! - Framing: JVL A/S, *User Manual — Integrated Servo Motors MAC050 – 4500*, §6.11
//!   "MacTalk communication": §6.11.1 *Serial Quick Guide* (19200 baud, 8 data bits, no
//!   parity; registers 1–255, 16 or 32 bits wide; every protected byte followed by its
//!   inverse 255 − x), §6.11.2 *Writing to a register* and §6.11.3 *Reading from a
//!   register* (block tables and examples). The examples of §6.11.2 are checked byte for
//!   byte in the tests. The examples of §6.11.3 have misprints (register 5 is written
//!   `05h, F6h`, and 258h is called 500); the block table (`05h, FAh`) is followed.
//! - Register numbers, units and error bits: the register table of the same manual was not
//!   found in a searchable form; they are taken from JVL's own Python package *JVLMotor*
//!   (PyPI, `JVLMotor/Motors/MACMotor.py`: `mode_reg` 2, `p_soll` 3, `v_soll` 5, `a_soll`
//!   6, `p_ist` 10, `v_ist` 12, `error_bits` (ERR_STAT) 35 with its bit names; control
//!   modes passive 0, velocity 1, position 2; `MacTalkProtocol.py` for the same framing),
//!   and agree with Crappy's `crappy/actuator/jvl_mac_140.py` (same registers, V_SOLL and
//!   A_SOLL in 1/16 count per sample and per sample², error clearing by writing 0 to
//!   register 35).
//!
//! ## Telegrams
//!
//! | Telegram | Bytes (protected = byte, 255 − byte) |
//! |---|---|
//! | Write (§6.11.2) | `52 52 52`, address, register, length (2 or 4), data little-endian (each protected), `AA AA` |
//! | Accept | `11 11 11` |
//! | Read (§6.11.3) | `50 50 50`, address, register, `AA AA` |
//! | Read reply | `52 52 52`, address 0 (the master), register, length 4, 4 data bytes, `AA AA` |
//!
//! ## Units
//!
//! Positions in the user's unit through [`JvlMac::counts_per_unit`] (encoder counts per
//! mm, per turn, …); speeds in units/s and accelerations in units/s², converted with the
//! motor's sample period [`JvlMac::sample_period_s`] (1.92 ms for the MAC050–141, as in
//! Crappy; 1.3 ms for the MAC400–4500, as in JVLMotor). V_SOLL and A_SOLL are in 1/16
//! count per sample (per sample²), V_IST in counts per sample.
//!
//! ## Behaviour
//!
//! [`open`](Actuator::open) clears ERR_STAT (write 0), writes A_SOLL and enters velocity
//! mode at speed 0. [`set_speed`](Actuator::set_speed) writes V_SOLL then MODE_REG = 1;
//! [`set_position`](Positioner::set_position) writes P_SOLL, V_SOLL (the speed given, else
//! [`JvlMac::default_speed`]) then MODE_REG = 2; the command in progress sent again (the
//! Machine sends its latest command every loop) is not written again until an error or a
//! new open. [`stop`](Actuator::stop) writes V_SOLL = 0
//! in velocity mode: the motor decelerates under control and holds.
//! [`close`](Actuator::close) puts it in passive mode (MODE_REG = 0, no torque, as Crappy's
//! `stop`). [`poll`](Actuator::poll) reads ERR_STAT (at most every 50 ms): an error bit is a
//! [`Hardware`](crabby::ErrorKind::Hardware) error naming it (the motor has gone passive by
//! then); after a position move, its in-position bit (4) turns the status from MOVING to
//! ON. Once an error bit has been read, the motor is passive until the next `open` clears
//! ERR_STAT: `set_speed` and `set_position` return that error without writing anything
//! (they would not move the motor) and the status stays FAULT; `poll` within its 50 ms
//! returns it too; `stop` is still written but leaves the status FAULT (the motor is
//! passive, not holding). No accept, or no reply, within the timeout is a
//! [`Timeout`](crabby::ErrorKind::Timeout); a reply whose inverted bytes do not match is
//! asked again once, then a [`Communication`](crabby::ErrorKind::Communication) error.
//!
//! ## To check on first use with a real motor
//!
//! [`set_position`](Positioner::set_position) from velocity mode writes V_SOLL before
//! MODE_REG = 2, as Crappy does. In velocity mode V_SOLL is the velocity command, so for
//! the one telegram between the two writes (about 12 ms at 19 200 baud) the motor may be
//! commanded at the move's speed in V_SOLL's sign, possibly away from the target, before
//! position mode starts. Neither the sources above nor Crappy say whether the motor applies
//! V_SOLL at once in that window; the order is left as Crappy's until it is checked on a
//! motor: watch the first position move made right after a speed command. A short move
//! the wrong way means the order must change, for instance P_SOLL, then MODE_REG = 2,
//! then V_SOLL (the motor then heads for the new target from the first write, at most at
//! the previous speed's magnitude until V_SOLL is written).

pub mod sim;
#[cfg(test)]
mod tests;

use super::{SerialConfig, SerialLink};
use crabby::hardware::{
    device_error, Actuator, PositionFeedback, Positioner, SpeedFeedback, Status,
};
use crabby::{Error, ErrorKind, Result};
use std::time::{Duration, Instant};

/// MODE_REG (control mode: 0 passive, 1 velocity, 2 position).
pub const MODE_REG: u8 = 2;
/// P_SOLL: target position, counts (32 bits).
pub const P_SOLL: u8 = 3;
/// V_SOLL: maximum / target velocity, 1/16 count per sample (16 bits, signed).
pub const V_SOLL: u8 = 5;
/// A_SOLL: acceleration, 1/16 count per sample² (16 bits).
pub const A_SOLL: u8 = 6;
/// P_IST: actual position, counts (32 bits).
pub const P_IST: u8 = 10;
/// V_IST: actual velocity, counts per sample.
pub const V_IST: u8 = 12;
/// ERR_STAT: error and status bits (32 bits; write 0 to clear the errors).
pub const ERR_STAT: u8 = 35;

/// Control modes written to [`MODE_REG`].
pub mod mode {
    /// No torque: the shaft turns freely.
    pub const PASSIVE: i32 = 0;
    /// Runs at V_SOLL (signed) with A_SOLL.
    pub const VELOCITY: i32 = 1;
    /// Goes to P_SOLL at up to V_SOLL with A_SOLL.
    pub const POSITION: i32 = 2;
}

/// The bits of [`ERR_STAT`] that are errors (the motor goes passive), with their names
/// (JVLMotor `MACMotor.error_bits`).
pub const ERROR_BITS: &[(u32, &str)] = &[
    (0, "overload (I2T)"),
    (1, "follow error"),
    (2, "function error"),
    (3, "regenerative overload (UIT)"),
    (7, "position limit exceeded"),
    (8, "temperature too high"),
    (9, "under-voltage"),
    (11, "over-voltage"),
    (12, "peak current"),
    (13, "speed too high"),
    (15, "index error"),
    (17, "24 V supply"),
    (21, "communication error"),
    (22, "current loop error"),
    (23, "slave error"),
    (25, "initialisation error"),
    (26, "flash error"),
    (27, "STO alarm"),
    (28, "FPGA error"),
];
/// ERR_STAT bit 4: in position.
pub const IN_POSITION_BIT: u32 = 4;

const WRITE: [u8; 3] = [0x52; 3];
const READ: [u8; 3] = [0x50; 3];
const END: [u8; 2] = [0xAA; 2];
/// The motor's accept of a write telegram.
pub const ACCEPT: [u8; 3] = [0x11; 3];
/// Length of a read reply telegram.
pub const REPLY_LEN: usize = 19;

fn protect(b: u8, out: &mut Vec<u8>) {
    out.push(b);
    out.push(!b);
}

/// A write telegram (§6.11.2): `data` little-endian, 2 or 4 bytes.
pub fn write_telegram(address: u8, reg: u8, data: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(11 + 2 * data.len());
    t.extend_from_slice(&WRITE);
    protect(address, &mut t);
    protect(reg, &mut t);
    protect(data.len() as u8, &mut t);
    for &b in data {
        protect(b, &mut t);
    }
    t.extend_from_slice(&END);
    t
}

/// A read telegram (§6.11.3).
pub fn read_telegram(address: u8, reg: u8) -> Vec<u8> {
    let mut t = Vec::with_capacity(9);
    t.extend_from_slice(&READ);
    protect(address, &mut t);
    protect(reg, &mut t);
    t.extend_from_slice(&END);
    t
}

/// A motor's reply to a read (§6.11.3): a write telegram to the master (address 0).
pub fn reply_telegram(reg: u8, value: i32) -> Vec<u8> {
    write_telegram(0, reg, &value.to_le_bytes())
}

/// What is wrong with a read reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// Not `52 52 52 … AA AA`, or not to address 0, or not length 4.
    Framing(String),
    /// A byte and its inverse do not match (corrupted on the line).
    Inverse(usize),
    /// The reply is for another register.
    Register(u8),
}

/// Decodes a read reply for register `reg` (exactly [`REPLY_LEN`] bytes).
pub fn decode_reply(b: &[u8], reg: u8) -> std::result::Result<i32, ReplyError> {
    if b.len() != REPLY_LEN || b[..3] != WRITE || b[17..] != END {
        return Err(ReplyError::Framing(format!("{b:02X?}")));
    }
    for i in (3..17).step_by(2) {
        if b[i] != !b[i + 1] {
            return Err(ReplyError::Inverse(i));
        }
    }
    if b[3] != 0 || b[7] != 4 {
        return Err(ReplyError::Framing(format!(
            "address {} and length {} (expected 0 and 4)",
            b[3], b[7]
        )));
    }
    if b[5] != reg {
        return Err(ReplyError::Register(b[5]));
    }
    Ok(i32::from_le_bytes([b[9], b[11], b[13], b[15]]))
}

/// The MacTalk client: register reads and writes on an open port.
#[derive(Debug)]
pub struct MacTalk {
    link: SerialLink,
    address: u8,
    device: String,
}

impl MacTalk {
    /// A client for the motor at `address` on `link`.
    pub fn new(link: SerialLink, address: u8, device: &str) -> Self {
        MacTalk {
            link,
            address,
            device: device.to_owned(),
        }
    }

    /// Writes `value` to `reg` as `len` bytes (2 or 4) and waits for the accept.
    pub fn write_reg(&mut self, reg: u8, value: i32, len: usize) -> Result<()> {
        let data = &value.to_le_bytes()[..len];
        self.link.discard_input()?;
        self.link
            .write_all(&write_telegram(self.address, reg, data))?;
        let a = self.link.read_exact(3)?;
        if a != ACCEPT {
            return Err(self.link.err(
                ErrorKind::Communication,
                format!("register {reg} write answered {a:02X?} instead of the accept 11 11 11"),
            ));
        }
        Ok(())
    }

    /// Reads `reg` (32 bits, signed). A corrupted reply is asked again once.
    pub fn read_reg(&mut self, reg: u8) -> Result<i32> {
        let mut last = None;
        for _ in 0..2 {
            self.link.discard_input()?;
            self.link.write_all(&read_telegram(self.address, reg))?;
            let r = self.link.read_exact(REPLY_LEN)?;
            match decode_reply(&r, reg) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    log::warn!("{}: register {reg} reply rejected: {e:?}", self.device);
                    last = Some(e);
                }
            }
        }
        Err(self.link.err(
            ErrorKind::Communication,
            format!(
                "register {reg}: two corrupted replies in a row ({:?}); check the cable, its length and the baud rate",
                last.expect("two failures")
            ),
        ))
    }
}

/// A JVL MAC motor (see the [module docs](self)).
///
/// ```no_run
/// use crabby_hardware::serial::{JvlMac, SerialConfig};
/// // A MAC140 on a 5 mm/turn screw: 4096 counts per turn, 1.92 ms sample period.
/// let axis = JvlMac::new("crosshead", SerialConfig::new("/dev/ttyUSB0", 19200), 4096.0 / 5.0)
///     .sample_period_s(1.92e-3)
///     .acceleration(100.0);
/// ```
#[derive(Debug)]
pub struct JvlMac {
    /// The device's name (origin of its errors).
    pub name: String,
    /// The port (19200 baud 8N1 by default on the motor).
    pub serial: SerialConfig,
    /// The motor's address (MYADDR; 1–254; not 0, the master, nor 255, broadcast, to which
    /// the motor does not reply). Default 254, as JVLMotor.
    pub address: u8,
    /// Encoder counts per user unit (e.g. 4096 / 5 for 4096 counts per turn on a 5 mm
    /// screw: mm).
    pub counts_per_unit: f64,
    /// The motor's sample period, s (1.92e-3 for MAC050–141, 1.3e-3 for MAC400–4500).
    pub sample_period_s: f64,
    /// Acceleration, units/s² (written to A_SOLL at open).
    pub acceleration: f64,
    /// Speed of position moves when none is given, units/s.
    pub default_speed: f64,
    client: Option<MacTalk>,
    last_poll: Option<Instant>,
    /// The mode last written to MODE_REG (position moves end in position).
    mode: i32,
    /// The last command written (mode, V_SOLL, P_SOLL), not written again while it stands:
    /// the Machine sends its latest command every loop. Forgotten on any error and at open.
    sent: Option<(i32, i32, i32)>,
    /// The motor's error last read from ERR_STAT (the motor is passive until `open` clears
    /// it): speeds and positions are refused with it, without I/O.
    error: Option<String>,
    status: Status,
}

impl JvlMac {
    /// A motor on `serial` with `counts_per_unit` encoder counts per user unit; address 254,
    /// MAC050–141 sample period, acceleration 1000 counts/s² expressed in units.
    pub fn new(name: impl Into<String>, serial: SerialConfig, counts_per_unit: f64) -> Self {
        JvlMac {
            name: name.into(),
            serial,
            address: 254,
            counts_per_unit,
            sample_period_s: 1.92e-3,
            acceleration: 100_000.0 / counts_per_unit.abs().max(1e-9),
            default_speed: 10_000.0 / counts_per_unit.abs().max(1e-9),
            client: None,
            last_poll: None,
            mode: mode::PASSIVE,
            sent: None,
            error: None,
            status: Status::off(),
        }
    }

    /// Sets the motor's address.
    pub fn address(mut self, a: u8) -> Self {
        self.address = a;
        self
    }

    /// Sets the motor's sample period, s.
    pub fn sample_period_s(mut self, t: f64) -> Self {
        self.sample_period_s = t;
        self
    }

    /// Sets the acceleration, units/s².
    pub fn acceleration(mut self, a: f64) -> Self {
        self.acceleration = a;
        self
    }

    /// Sets the speed of position moves when none is given, units/s.
    pub fn default_speed(mut self, v: f64) -> Self {
        self.default_speed = v;
        self
    }

    /// Units/s → V_SOLL (1/16 count per sample), checked against the 16-bit register.
    pub fn to_v_soll(&self, speed: f64) -> Result<i32> {
        let raw = (speed * self.counts_per_unit * self.sample_period_s * 16.0).round();
        if !(f64::from(i16::MIN)..=f64::from(i16::MAX)).contains(&raw) {
            return Err(device_error(
                ErrorKind::OutOfRange,
                &self.name,
                format!(
                    "speed {speed} units/s is {raw} in V_SOLL, beyond its 16 bits (±32767 = ±{:.4} units/s)",
                    32767.0 / (self.counts_per_unit * self.sample_period_s * 16.0)
                ),
            ));
        }
        Ok(raw as i32)
    }

    /// Units/s² → A_SOLL (1/16 count per sample²), at least 1.
    pub fn to_a_soll(&self, acc: f64) -> Result<i32> {
        let raw = (acc * self.counts_per_unit * self.sample_period_s.powi(2) * 16.0).round();
        if !(1.0..=f64::from(i16::MAX)).contains(&raw) {
            return Err(Error::config(format!(
                "acceleration {acc} units/s² is {raw} in A_SOLL; it must be 1..=32767 (1/16 count per sample²)"
            ))
            .with_origin(&self.name));
        }
        Ok(raw as i32)
    }

    fn client(&mut self) -> Result<&mut MacTalk> {
        let name = &self.name;
        self.client.as_mut().ok_or_else(|| {
            device_error(
                ErrorKind::NotAllowed,
                name,
                "the motor is not open (open() was not called or failed)",
            )
        })
    }

    fn fault<T>(&mut self, e: Error) -> Result<T> {
        self.sent = None;
        self.status = Status::fault(e.description().to_owned());
        Err(e)
    }

    /// Runs `f` on the client; an error faults the status.
    fn io<T>(&mut self, f: impl FnOnce(&mut MacTalk) -> Result<T>) -> Result<T> {
        match f(self.client()?) {
            Ok(v) => Ok(v),
            Err(e) => self.fault(e),
        }
    }

    /// Reads ERR_STAT; an error bit is a Hardware error naming the bits.
    pub fn check_errors(&mut self) -> Result<u32> {
        let bits = self.io(|c| c.read_reg(ERR_STAT))? as u32;
        let names: Vec<&str> = ERROR_BITS
            .iter()
            .filter(|(b, _)| bits & (1 << b) != 0)
            .map(|(_, n)| *n)
            .collect();
        if !names.is_empty() {
            let msg = format!(
                "the motor reports {} (ERR_STAT = {bits:#010x}) and has gone passive; find the cause, then restart the test (open clears the errors)",
                names.join(", ")
            );
            self.error = Some(msg.clone());
            return self.fault(device_error(ErrorKind::Hardware, &self.name, msg));
        }
        Ok(bits)
    }

    /// The motor's known error (ERR_STAT read with an error bit since the last open), as a
    /// Hardware error: a command would not move the passive motor. No I/O; the status
    /// stays FAULT.
    fn known_error(&mut self) -> Result<()> {
        match &self.error {
            None => Ok(()),
            Some(msg) => {
                let e = device_error(ErrorKind::Hardware, &self.name, msg.clone());
                self.fault(e)
            }
        }
    }

    fn mode_and(&mut self, regs: &[(u8, i32, usize)]) -> Result<()> {
        let mode = regs.iter().find(|r| r.0 == MODE_REG).map(|r| r.1);
        let regs = regs.to_vec();
        self.io(|c| {
            for (r, v, l) in regs {
                c.write_reg(r, v, l)?;
            }
            Ok(())
        })?;
        if let Some(m) = mode {
            self.mode = m;
        }
        Ok(())
    }
}

impl Actuator for JvlMac {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self) -> Result<()> {
        let cfg = |m: String| Err(Error::config(m).with_origin(&self.name));
        if self.address == 0 || self.address == 255 {
            return cfg(format!(
                "address {} is not a motor's: 0 is the master and 255 broadcast (no reply); use the motor's MYADDR, 1..=254",
                self.address
            ));
        }
        if !(self.counts_per_unit.is_finite() && self.counts_per_unit != 0.0) {
            return cfg(format!(
                "counts_per_unit {} must be finite and not 0",
                self.counts_per_unit
            ));
        }
        if !(self.sample_period_s > 0.0 && self.sample_period_s <= 0.01) {
            return cfg(format!(
                "sample_period_s {} must be in ]0, 0.01] s (1.92e-3 for MAC050–141, 1.3e-3 for MAC400–4500)",
                self.sample_period_s
            ));
        }
        self.to_a_soll(self.acceleration)?;
        if self.default_speed.is_nan() || self.default_speed <= 0.0 {
            return cfg(format!(
                "default_speed {} must be above 0",
                self.default_speed
            ));
        }
        self.to_v_soll(self.default_speed)
            .map_err(|e| Error::config(e.description().to_owned()).with_origin(&self.name))?;
        self.serial.check(&self.name)
    }

    fn open(&mut self) -> Result<()> {
        let a = self.to_a_soll(self.acceleration)?;
        let link = self.serial.open(&self.name)?;
        self.client = Some(MacTalk::new(link, self.address, &self.name));
        self.sent = None;
        self.error = None; // ERR_STAT is cleared below
        let r = self.mode_and(&[
            (ERR_STAT, 0, 4),
            (A_SOLL, a, 2),
            (V_SOLL, 0, 2),
            (MODE_REG, mode::VELOCITY, 2),
        ]);
        if let Err(e) = r {
            self.client = None;
            return Err(e);
        }
        self.status = Status::on(format!("velocity mode on {}", self.serial.port));
        Ok(())
    }

    fn set_speed(&mut self, speed: f64) -> Result<()> {
        let v = self.to_v_soll(speed)?;
        self.known_error()?;
        let cmd = (mode::VELOCITY, v, 0);
        if self.sent == Some(cmd) {
            return Ok(()); // the command in progress, sent again by the Machine
        }
        self.mode_and(&[(V_SOLL, v, 2), (MODE_REG, mode::VELOCITY, 2)])?;
        self.sent = Some(cmd);
        self.status = if v == 0 {
            Status::on("velocity mode, speed 0")
        } else {
            Status::moving(format!("velocity mode, {speed} units/s"))
        };
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        // Always written, whatever was sent before.
        self.mode_and(&[(V_SOLL, 0, 2), (MODE_REG, mode::VELOCITY, 2)])?;
        if self.error.is_some() {
            // Passive until open clears the error: not holding; the status stays FAULT.
            self.sent = None;
            return Ok(());
        }
        self.sent = Some((mode::VELOCITY, 0, 0));
        self.status = Status::on("stopped (velocity 0, holding)");
        Ok(())
    }

    fn poll(&mut self) -> Result<()> {
        if self
            .last_poll
            .is_some_and(|t| t.elapsed() < Duration::from_millis(50))
        {
            return self.known_error();
        }
        self.last_poll = Some(Instant::now());
        let bits = self.check_errors()?;
        // A position move ends in position (ERR_STAT bit 4): no longer MOVING.
        if self.mode == mode::POSITION && bits & (1 << IN_POSITION_BIT) != 0 {
            self.status = Status::on("position mode, in position (holding)");
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if self.client.is_some() {
            let r = self.mode_and(&[(MODE_REG, mode::PASSIVE, 2)]);
            self.client = None;
            self.sent = None;
            self.status = Status::off();
            r?;
        }
        Ok(())
    }

    fn status(&self) -> Status {
        self.status.clone()
    }
}

impl Positioner for JvlMac {
    fn set_position(&mut self, position: f64, speed: Option<f64>) -> Result<()> {
        let counts = (position * self.counts_per_unit).round();
        if !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&counts) {
            return Err(device_error(
                ErrorKind::OutOfRange,
                &self.name,
                format!("position {position} is {counts} counts, beyond P_SOLL's 32 bits"),
            ));
        }
        let speed = speed.unwrap_or(self.default_speed).abs();
        let v = self.to_v_soll(speed)?;
        self.known_error()?;
        let cmd = (mode::POSITION, v, counts as i32);
        if self.sent == Some(cmd) {
            return Ok(()); // the move in progress, sent again by the Machine
        }
        self.mode_and(&[
            (P_SOLL, counts as i32, 4),
            (V_SOLL, v, 2),
            (MODE_REG, mode::POSITION, 2),
        ])?;
        self.sent = Some(cmd);
        self.status = Status::moving(format!("position mode, to {position} at {speed} units/s"));
        Ok(())
    }
}

impl PositionFeedback for JvlMac {
    fn position(&mut self) -> Result<f64> {
        let p = self.io(|c| c.read_reg(P_IST))?;
        Ok(f64::from(p) / self.counts_per_unit)
    }
}

impl SpeedFeedback for JvlMac {
    fn speed(&mut self) -> Result<f64> {
        let v = self.io(|c| c.read_reg(V_IST))?;
        Ok(f64::from(v) / self.sample_period_s / self.counts_per_unit)
    }
}
