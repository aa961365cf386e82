//! Hardware traits: [`InOut`] (sensors, DAQ boards, instruments) and [`Actuator`] (motors).
//!
//! A driver is two things:
//! - a **configuration**: a plain struct built in `main`, checked by [`InOut::check`] /
//!   [`Actuator::check`] before the test is forked (the Blocks call it from
//!   [`Block::check`](crate::Block::check)), so a wrong port or baud rate is reported
//!   before anything starts;
//! - an **open device**: [`InOut::open`] / [`Actuator::open`] touch the hardware. They run in
//!   the Block's own process, in [`Block::prepare`](crate::Block::prepare), never in `main`.
//!
//! The Blocks that drive them live in `crabby-blocks`: `IOBlock` (one [`InOut`]) and
//! `Machine` (one or more [`Actuator`]s). The framework, not the driver, does what every
//! device needs: offsetting readings to zero at the start (`make_zero`), converting the
//! device's timestamps to the test's `t(s)`, sending commands only when they change,
//! tracking the device [`Status`], and stopping every actuator in `finish` whatever ended
//! the test.
//!
//! The principal types:
//! - [`InOut`]: open, [`read`](InOut::read) a [`Reading`], [`write`](InOut::write) a
//!   command, optional streaming ([`Chunk`]), close. Every method has a default: a read-only
//!   sensor implements [`read`](InOut::read) alone.
//! - [`Actuator`]: open, [`set_speed`](Actuator::set_speed) (the one required method),
//!   optional position control and read-back, [`stop`](Actuator::stop), close.
//! - [`InOutCaps`] / [`ActuatorCaps`]: what a driver can do, declared so a Block can reject a
//!   graph that asks for more before anything is forked.
//! - [`Status`] with its [`DeviceState`]: what the device is doing, for people.
//!
//! ## Time base
//!
//! Drivers timestamp readings in **nanoseconds of `CLOCK_MONOTONIC`** ([`now_ns`], the
//! same clock as [`Context::t0_ns`](crate::Context::t0_ns)). The Blocks subtract `t0`, so a
//! sample's `t(s)` is the instant the device measured, relative to the common start. A
//! driver whose hardware has its own clock maps it onto this one (for example by noting
//! [`now_ns`] when a stream starts).
//!
//! ## Errors
//!
//! Drivers return [`crate::Error`] with a kind a program can match:
//! [`Communication`](crate::ErrorKind::Communication) (port gone, garbage),
//! [`Timeout`](crate::ErrorKind::Timeout) (no answer),
//! [`Hardware`](crate::ErrorKind::Hardware) (the device reports a fault),
//! [`OutOfRange`](crate::ErrorKind::OutOfRange),
//! [`Configuration`](crate::ErrorKind::Configuration) and
//! [`NotAllowed`](crate::ErrorKind::NotAllowed); a description a person can act on; and
//! the device name as origin ([`device_error`] builds one).
//!
//! ## For driver authors: a read-only sensor
//!
//! ```
//! use crabby::hardware::{InOut, Reading};
//! use crabby::Result;
//!
//! /// A strain gauge bridge read through some library; here a constant.
//! struct Bridge {
//!     gain: f64,
//! }
//!
//! impl InOut for Bridge {
//!     fn channels(&self) -> Vec<String> {
//!         vec!["F(N)".into()]
//!     }
//!     fn read(&mut self) -> Result<Reading> {
//!         let raw = 0.25; // read the ADC here
//!         Ok(Reading::now(vec![raw * self.gain]))
//!     }
//! }
//!
//! let mut b = Bridge { gain: 400.0 };
//! assert_eq!(b.read()?.values, [100.0]);
//! # Ok::<(), crabby::Error>(())
//! ```
//!
//! ## For driver authors: a device that reads and writes, with a checked configuration
//!
//! ```
//! use crabby::hardware::{device_error, InOut, InOutCaps, Reading, Status};
//! use crabby::{Error, ErrorKind, Result};
//!
//! /// A heater with a power command (0–100 %) and a temperature reading.
//! struct Heater {
//!     max_power: f64,
//!     power: f64,
//! }
//!
//! impl InOut for Heater {
//!     fn capabilities(&self) -> InOutCaps {
//!         InOutCaps::READ_WRITE
//!     }
//!     fn channels(&self) -> Vec<String> {
//!         vec!["T(C)".into()]
//!     }
//!     fn check(&self) -> Result<()> {
//!         if !(self.max_power > 0.0 && self.max_power <= 100.0) {
//!             return Err(Error::config(format!(
//!                 "max_power is {}; it must be in ]0, 100] %",
//!                 self.max_power
//!             )));
//!         }
//!         Ok(())
//!     }
//!     fn read(&mut self) -> Result<Reading> {
//!         Ok(Reading::now(vec![20.0 + self.power]))
//!     }
//!     fn write(&mut self, cmd: &[f64]) -> Result<()> {
//!         let p = cmd[0];
//!         if !(0.0..=self.max_power).contains(&p) {
//!             return Err(device_error(ErrorKind::OutOfRange, "heater", format!(
//!                 "power command {p} % is outside 0..={} %", self.max_power
//!             )));
//!         }
//!         self.power = p;
//!         Ok(())
//!     }
//!     fn status(&self) -> Status {
//!         Status::on(format!("heating at {} %", self.power))
//!     }
//! }
//!
//! let mut h = Heater { max_power: 50.0, power: 0.0 };
//! h.check()?;
//! h.write(&[10.0])?;
//! assert_eq!(h.read()?.values, [30.0]);
//! assert_eq!(h.write(&[80.0]).unwrap_err().kind(), ErrorKind::OutOfRange);
//! # Ok::<(), crabby::Error>(())
//! ```
//!
//! ## For driver authors: a motor
//!
//! ```
//! use crabby::hardware::{Actuator, ActuatorCaps};
//! use crabby::Result;
//!
//! /// A motor that goes exactly where it is told, instantly.
//! struct Ideal {
//!     speed: f64,
//!     position: f64,
//! }
//!
//! impl Actuator for Ideal {
//!     fn capabilities(&self) -> ActuatorCaps {
//!         ActuatorCaps::ALL
//!     }
//!     fn set_speed(&mut self, speed: f64) -> Result<()> {
//!         self.speed = speed;
//!         Ok(())
//!     }
//!     fn set_position(&mut self, position: f64, _speed: Option<f64>) -> Result<()> {
//!         self.position = position;
//!         Ok(())
//!     }
//!     fn speed(&mut self) -> Result<f64> {
//!         Ok(self.speed)
//!     }
//!     fn position(&mut self) -> Result<f64> {
//!         Ok(self.position)
//!     }
//! }
//!
//! let mut m = Ideal { speed: 0.0, position: 0.0 };
//! m.set_speed(3.0)?;
//! m.stop()?; // the default `stop` sets the speed to 0
//! assert_eq!(m.speed()?, 0.0);
//! # Ok::<(), crabby::Error>(())
//! ```
//!
//! Then hand the driver to a Block: `IOBlock::new(Heater { .. })` or
//! `Machine::new().actuator(ActuatorConfig::speed(Ideal { .. }, "cmd"))` (crate
//! `crabby-blocks`; see `examples/custom_inout.rs` and `examples/custom_actuator.rs`).

use crate::{Error, ErrorKind, Result};
use std::fmt;

/// Nanoseconds of `CLOCK_MONOTONIC`: the time base of [`Reading::t_ns`] and [`Chunk::t_ns`].
pub fn now_ns() -> u64 {
    crate::sys::monotonic_ns()
}

/// An error of `kind` coming from `device`, with a description a person can act on.
pub fn device_error(kind: ErrorKind, device: &str, description: impl Into<String>) -> Error {
    Error::new(kind, description).with_origin(device)
}

/// The error a default method returns when a driver lacks a capability.
pub fn not_supported(device: &str, what: &str) -> Error {
    device_error(
        ErrorKind::NotAllowed,
        device,
        format!("this device cannot {what} (its driver does not implement it)"),
    )
}

/// One reading of an [`InOut`]: when it was measured and the values, one per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// When the values were measured, in nanoseconds of `CLOCK_MONOTONIC` ([`now_ns`]).
    pub t_ns: u64,
    /// One value per channel, in the order of [`InOut::channels`].
    pub values: Vec<f64>,
}

impl Reading {
    /// A reading measured at `t_ns`.
    pub fn new(t_ns: u64, values: Vec<f64>) -> Self {
        Reading { t_ns, values }
    }

    /// A reading measured now.
    pub fn now(values: Vec<f64>) -> Self {
        Reading {
            t_ns: now_ns(),
            values,
        }
    }
}

/// Many samples at once from a streaming [`InOut`] (a DAQ board's buffer).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chunk {
    /// When each sample was measured (nanoseconds of `CLOCK_MONOTONIC`).
    pub t_ns: Vec<u64>,
    /// One vector per channel, each as long as `t_ns`.
    pub channels: Vec<Vec<f64>>,
}

impl Chunk {
    /// How many samples (per channel).
    pub fn len(&self) -> usize {
        self.t_ns.len()
    }

    /// Whether the chunk holds no sample.
    pub fn is_empty(&self) -> bool {
        self.t_ns.is_empty()
    }

    /// An error unless every channel is as long as `t_ns`.
    pub fn validate(&self, device: &str) -> Result<()> {
        if let Some((i, c)) = self
            .channels
            .iter()
            .enumerate()
            .find(|(_, c)| c.len() != self.t_ns.len())
        {
            return Err(device_error(
                ErrorKind::Internal,
                device,
                format!(
                    "stream chunk has {} timestamps but channel {i} has {} values; the driver must return channels as long as t_ns",
                    self.t_ns.len(),
                    c.len()
                ),
            ));
        }
        Ok(())
    }
}

/// What a device is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeviceState {
    /// Not opened, or closed.
    Off,
    /// Open and idle or measuring normally.
    On,
    /// An actuator is moving.
    Moving,
    /// The device signals a condition that needs attention but still works (limit switch,
    /// over-temperature warning).
    Alarm,
    /// The device failed or stopped answering; the status text says why and what to do.
    Fault,
    /// The driver cannot tell.
    Unknown,
}

impl DeviceState {
    /// A short lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Off => "off",
            DeviceState::On => "on",
            DeviceState::Moving => "moving",
            DeviceState::Alarm => "alarm",
            DeviceState::Fault => "fault",
            DeviceState::Unknown => "unknown",
        }
    }
}

impl fmt::Display for DeviceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A device's state and a text for people (empty when there is nothing to add).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The state.
    pub state: DeviceState,
    /// What a person should know (for a fault: what happened and what to do).
    pub text: String,
}

impl Status {
    /// A status.
    pub fn new(state: DeviceState, text: impl Into<String>) -> Self {
        Status {
            state,
            text: text.into(),
        }
    }
    /// [`DeviceState::Off`].
    pub fn off() -> Self {
        Self::new(DeviceState::Off, "")
    }
    /// [`DeviceState::On`] with a text.
    pub fn on(text: impl Into<String>) -> Self {
        Self::new(DeviceState::On, text)
    }
    /// [`DeviceState::Moving`] with a text.
    pub fn moving(text: impl Into<String>) -> Self {
        Self::new(DeviceState::Moving, text)
    }
    /// [`DeviceState::Fault`] with an explanation a person can act on.
    pub fn fault(text: impl Into<String>) -> Self {
        Self::new(DeviceState::Fault, text)
    }
    /// [`DeviceState::Unknown`]: what the default [`InOut::status`] returns.
    pub fn unknown() -> Self {
        Self::new(DeviceState::Unknown, "")
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.text.is_empty() {
            write!(f, "{}", self.state)
        } else {
            write!(f, "{}: {}", self.state, self.text)
        }
    }
}

/// What an [`InOut`] can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InOutCaps {
    /// [`InOut::read`] works.
    pub read: bool,
    /// [`InOut::write`] works.
    pub write: bool,
    /// [`InOut::start_stream`], [`InOut::read_stream`] and [`InOut::stop_stream`] work.
    pub stream: bool,
}

impl InOutCaps {
    /// Reads only (the default).
    pub const READ: InOutCaps = InOutCaps {
        read: true,
        write: false,
        stream: false,
    };
    /// Writes only.
    pub const WRITE: InOutCaps = InOutCaps {
        read: false,
        write: true,
        stream: false,
    };
    /// Reads and writes.
    pub const READ_WRITE: InOutCaps = InOutCaps {
        read: true,
        write: true,
        stream: false,
    };
    /// Everything.
    pub const ALL: InOutCaps = InOutCaps {
        read: true,
        write: true,
        stream: true,
    };
}

/// A sensor, DAQ board or instrument: reads values and/or takes commands.
///
/// Every method has a default. Declare in [`capabilities`](InOut::capabilities) what you
/// implement beyond [`read`](InOut::read), so a Block can reject a graph that asks for more
/// before anything is forked. Zero offsetting at the start is done by the Block (for every
/// device), not by drivers.
pub trait InOut: Send + 'static {
    /// The device's name, used as the origin of its errors (default: the type's name).
    fn name(&self) -> &str {
        short_type_name::<Self>()
    }

    /// What the driver implements (default [`InOutCaps::READ`]).
    fn capabilities(&self) -> InOutCaps {
        InOutCaps::READ
    }

    /// The default labels of the values [`read`](InOut::read) returns, one per channel
    /// (empty: the Block must be given labels).
    fn channels(&self) -> Vec<String> {
        Vec::new()
    }

    /// How many values [`write`](InOut::write) takes, if fixed.
    fn n_commands(&self) -> Option<usize> {
        None
    }

    /// Validates the configuration, without touching the device. Runs before the test is
    /// forked; return [`ErrorKind::Configuration`] errors that name the parameter and the fix.
    fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Opens the device (runs in the Block's process, in `prepare`).
    fn open(&mut self) -> Result<()> {
        Ok(())
    }

    /// Reads one value per channel, timestamped with [`now_ns`]'s clock.
    fn read(&mut self) -> Result<Reading> {
        Err(not_supported(self.name(), "read"))
    }

    /// Applies a command (one value per command label).
    fn write(&mut self, cmd: &[f64]) -> Result<()> {
        let _ = cmd;
        Err(not_supported(self.name(), "take commands"))
    }

    /// Starts streaming.
    fn start_stream(&mut self) -> Result<()> {
        Err(not_supported(self.name(), "stream"))
    }

    /// Returns the samples acquired since the last call.
    fn read_stream(&mut self) -> Result<Chunk> {
        Err(not_supported(self.name(), "stream"))
    }

    /// Stops streaming (called in `finish` if streaming was started).
    fn stop_stream(&mut self) -> Result<()> {
        Ok(())
    }

    /// Closes the device (runs in `finish`, whatever ended the test).
    fn close(&mut self) -> Result<()> {
        Ok(())
    }

    /// What the device is doing, as far as the driver knows (no I/O: return what the last
    /// call learned). The default, [`DeviceState::Unknown`], lets the Block track it.
    fn status(&self) -> Status {
        Status::unknown()
    }
}

impl<T: InOut + ?Sized> InOut for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn capabilities(&self) -> InOutCaps {
        (**self).capabilities()
    }
    fn channels(&self) -> Vec<String> {
        (**self).channels()
    }
    fn n_commands(&self) -> Option<usize> {
        (**self).n_commands()
    }
    fn check(&self) -> Result<()> {
        (**self).check()
    }
    fn open(&mut self) -> Result<()> {
        (**self).open()
    }
    fn read(&mut self) -> Result<Reading> {
        (**self).read()
    }
    fn write(&mut self, cmd: &[f64]) -> Result<()> {
        (**self).write(cmd)
    }
    fn start_stream(&mut self) -> Result<()> {
        (**self).start_stream()
    }
    fn read_stream(&mut self) -> Result<Chunk> {
        (**self).read_stream()
    }
    fn stop_stream(&mut self) -> Result<()> {
        (**self).stop_stream()
    }
    fn close(&mut self) -> Result<()> {
        (**self).close()
    }
    fn status(&self) -> Status {
        (**self).status()
    }
}

/// What an [`Actuator`] can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActuatorCaps {
    /// [`Actuator::set_position`] works.
    pub position: bool,
    /// [`Actuator::speed`] reads the speed back.
    pub read_speed: bool,
    /// [`Actuator::position`] reads the position back.
    pub read_position: bool,
}

impl ActuatorCaps {
    /// Speed control only, nothing read back (the default).
    pub const SPEED: ActuatorCaps = ActuatorCaps {
        position: false,
        read_speed: false,
        read_position: false,
    };
    /// Speed control, speed and position read back.
    pub const SPEED_READ: ActuatorCaps = ActuatorCaps {
        position: false,
        read_speed: true,
        read_position: true,
    };
    /// Speed and position control, both read back.
    pub const ALL: ActuatorCaps = ActuatorCaps {
        position: true,
        read_speed: true,
        read_position: true,
    };
}

/// A motor or any axis driven in speed and optionally in position.
///
/// Only [`set_speed`](Actuator::set_speed) is required. Units are the driver's (document
/// them: mm and mm/s, turns and rpm, volts for a DC motor driven in voltage). The `Machine`
/// Block calls [`stop`](Actuator::stop) then [`close`](Actuator::close) in `finish`, on
/// every kind of stop.
pub trait Actuator: Send + 'static {
    /// The device's name, used as the origin of its errors (default: the type's name).
    fn name(&self) -> &str {
        short_type_name::<Self>()
    }

    /// What the driver implements beyond speed control (default [`ActuatorCaps::SPEED`]).
    fn capabilities(&self) -> ActuatorCaps {
        ActuatorCaps::SPEED
    }

    /// Validates the configuration without touching the device (before the fork).
    fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Opens the device (in the Block's process, in `prepare`).
    fn open(&mut self) -> Result<()> {
        Ok(())
    }

    /// Drives at `speed` (signed) until told otherwise.
    fn set_speed(&mut self, speed: f64) -> Result<()>;

    /// Goes to `position`, at `speed` if given (else the driver's default speed).
    fn set_position(&mut self, position: f64, speed: Option<f64>) -> Result<()> {
        let _ = (position, speed);
        Err(not_supported(self.name(), "be driven in position"))
    }

    /// The current speed.
    fn speed(&mut self) -> Result<f64> {
        Err(not_supported(self.name(), "read its speed back"))
    }

    /// The current position.
    fn position(&mut self) -> Result<f64> {
        Err(not_supported(self.name(), "read its position back"))
    }

    /// Reads the position and/or the speed back, as asked, in one exchange where the device
    /// allows it (the `Machine` calls this once per loop for the labels it sends). Default:
    /// [`position`](Actuator::position) then [`speed`](Actuator::speed); override it when one
    /// request answers both (a serial controller: half the time on the line).
    fn read_back(&mut self, position: bool, speed: bool) -> Result<(Option<f64>, Option<f64>)> {
        let p = if position {
            Some(self.position()?)
        } else {
            None
        };
        let v = if speed { Some(self.speed()?) } else { None };
        Ok((p, v))
    }

    /// Called by the `Machine` once in `begin` (right after the common start: re-arm a
    /// controller that timed out while the test waited at the start barrier) and then every
    /// loop, whatever the commands: send a keep-alive to a controller with a command
    /// watchdog, check its fault flags (return the fault as an error). Keep it cheap or
    /// rate-limit it. Default: nothing.
    fn poll(&mut self) -> Result<()> {
        Ok(())
    }

    /// Stops the motion (default: `set_speed(0)`). Called in `finish` on every kind of stop;
    /// override it if the device has a better way (an immediate halt).
    fn stop(&mut self) -> Result<()> {
        self.set_speed(0.0)
    }

    /// Closes the device (after [`stop`](Actuator::stop), in `finish`).
    fn close(&mut self) -> Result<()> {
        Ok(())
    }

    /// What the device is doing, as far as the driver knows (no I/O).
    fn status(&self) -> Status {
        Status::unknown()
    }
}

impl<T: Actuator + ?Sized> Actuator for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn capabilities(&self) -> ActuatorCaps {
        (**self).capabilities()
    }
    fn check(&self) -> Result<()> {
        (**self).check()
    }
    fn open(&mut self) -> Result<()> {
        (**self).open()
    }
    fn set_speed(&mut self, speed: f64) -> Result<()> {
        (**self).set_speed(speed)
    }
    fn set_position(&mut self, position: f64, speed: Option<f64>) -> Result<()> {
        (**self).set_position(position, speed)
    }
    fn speed(&mut self) -> Result<f64> {
        (**self).speed()
    }
    fn position(&mut self) -> Result<f64> {
        (**self).position()
    }
    fn read_back(&mut self, position: bool, speed: bool) -> Result<(Option<f64>, Option<f64>)> {
        (**self).read_back(position, speed)
    }
    fn poll(&mut self) -> Result<()> {
        (**self).poll()
    }
    fn stop(&mut self) -> Result<()> {
        (**self).stop()
    }
    fn close(&mut self) -> Result<()> {
        (**self).close()
    }
    fn status(&self) -> Status {
        (**self).status()
    }
}

fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}
