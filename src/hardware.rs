//! Hardware traits: [`InOut`] and its capabilities [`Input`], [`Output`], [`Stream`]
//! (sensors, DAQ boards, instruments), and [`Actuator`] with its capabilities
//! [`Positioner`], [`PositionFeedback`], [`SpeedFeedback`] (motors).
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
//! ## A trait per capability
//!
//! What a device can do is what traits its type implements, nothing else: there is no
//! capability flag that could disagree with the code. Each capability trait has only
//! **required** methods for what it promises (a type cannot claim to read without a
//! `read`), and the Blocks ask for the traits they need, so a graph that asks a device for
//! more than it can do is refused (by the compiler, or by the Block's `check` before
//! anything is forked).
//!
//! - [`InOut`]: the base of every sensor or DAQ device: [`name`](InOut::name),
//!   [`channels`](InOut::channels), [`check`](InOut::check), [`open`](InOut::open),
//!   [`close`](InOut::close), [`status`](InOut::status). Lifecycle and metadata only, all
//!   with defaults.
//!   - [`Input`]: [`read`](Input::read) one [`Reading`] (required).
//!   - [`Output`]: [`write`](Output::write) a command (required), and how many values it
//!     takes ([`n_commands`](Output::n_commands)).
//!   - [`Stream`]: [`start_stream`](Stream::start_stream), [`read_stream`](Stream::read_stream)
//!     (a [`Chunk`] of samples), [`stop_stream`](Stream::stop_stream), all required.
//!   - [`InputOutput`]: `Input + Output`, implemented for every type that has both, so a
//!     device chosen at run time can be a `Box<dyn InputOutput>`.
//! - [`Actuator`]: the base of every motor: lifecycle, [`set_speed`](Actuator::set_speed)
//!   (required), [`stop`](Actuator::stop) (default `set_speed(0)`), [`poll`](Actuator::poll).
//!   - [`Positioner`]: [`set_position`](Positioner::set_position) (required).
//!   - [`PositionFeedback`]: [`position`](PositionFeedback::position) read back (required),
//!     and [`position_and_speed`](PositionFeedback::position_and_speed) for a device whose
//!     one exchange answers both.
//!   - [`SpeedFeedback`]: [`speed`](SpeedFeedback::speed) read back (required).
//! - [`Status`] with its [`DeviceState`]: what the device is doing, for people.
//!
//! ## `Box` forwarding
//!
//! Every trait is implemented for `Box<T>` (`T: ?Sized`), so a device chosen at run time
//! works everywhere: `Box<dyn Input>`, `Box<dyn InputOutput>`, `Box<dyn Actuator>`,
//! `Box<dyn Positioner>`. A forwarding impl that forgot a method would silently use the
//! default instead of the driver's method. That cannot go unnoticed here: every capability
//! method without a default is required, so the compiler rejects a forwarding impl that
//! leaves it out; and the methods with a default (the base traits' lifecycle and metadata,
//! [`Output::n_commands`], [`PositionFeedback::position_and_speed`], [`Actuator::stop`],
//! [`Actuator::poll`]) are each called through a `Box` by this module's unit test
//! `box_forwards_every_defaulted_method`, on a probe that records the calls: the test lists
//! them once and fails for any that reaches the default instead of the probe. Add a method
//! with a default to a trait here, and add it to the forwarding impl and to that test.
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
//! [`Communication`](crate::ErrorKind::Communication) (port gone, garbage: the kind a Block
//! may answer by reconnecting, see `IOBlock::reconnect`),
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
//! use crabby::hardware::{InOut, Input, Reading};
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
//! }
//!
//! impl Input for Bridge {
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
//! A type that only implements [`InOut`] cannot be read: the `IOBlock` constructor that
//! reads asks for [`Input`].
//!
//! ```compile_fail,E0277
//! use crabby::hardware::{InOut, Input};
//! struct Nothing;
//! impl InOut for Nothing {}
//! fn reads(_: impl Input) {}
//! reads(Nothing); // error: `Nothing` does not implement `Input`
//! ```
//!
//! ## For driver authors: a device that reads and writes, with a checked configuration
//!
//! ```
//! use crabby::hardware::{device_error, InOut, Input, Output, Reading, Status};
//! use crabby::{Error, ErrorKind, Result};
//!
//! /// A heater with a power command (0–100 %) and a temperature reading.
//! struct Heater {
//!     max_power: f64,
//!     power: f64,
//! }
//!
//! impl InOut for Heater {
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
//!     fn status(&self) -> Status {
//!         Status::on(format!("heating at {} %", self.power))
//!     }
//! }
//!
//! impl Input for Heater {
//!     fn read(&mut self) -> Result<Reading> {
//!         Ok(Reading::now(vec![20.0 + self.power]))
//!     }
//! }
//!
//! impl Output for Heater {
//!     fn n_commands(&self) -> Option<usize> {
//!         Some(1)
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
//! }
//!
//! let mut h = Heater { max_power: 50.0, power: 0.0 };
//! h.check()?;
//! h.write(&[10.0])?;
//! assert_eq!(h.read()?.values, [30.0]);
//! assert_eq!(h.write(&[80.0]).unwrap_err().kind(), ErrorKind::OutOfRange);
//! // Chosen at run time: a boxed device keeps both capabilities.
//! let mut boxed: Box<dyn crabby::hardware::InputOutput> = Box::new(h);
//! boxed.write(&[20.0])?;
//! assert_eq!(boxed.read()?.values, [40.0]);
//! # Ok::<(), crabby::Error>(())
//! ```
//!
//! ## For driver authors: a motor driven in position
//!
//! ```
//! use crabby::hardware::{Actuator, PositionFeedback, Positioner, SpeedFeedback};
//! use crabby::Result;
//!
//! /// A motor that goes exactly where it is told, instantly.
//! struct Ideal {
//!     speed: f64,
//!     position: f64,
//! }
//!
//! impl Actuator for Ideal {
//!     fn set_speed(&mut self, speed: f64) -> Result<()> {
//!         self.speed = speed;
//!         Ok(())
//!     }
//! }
//!
//! impl Positioner for Ideal {
//!     fn set_position(&mut self, position: f64, _speed: Option<f64>) -> Result<()> {
//!         self.position = position;
//!         Ok(())
//!     }
//! }
//!
//! impl PositionFeedback for Ideal {
//!     fn position(&mut self) -> Result<f64> {
//!         Ok(self.position)
//!     }
//! }
//!
//! impl SpeedFeedback for Ideal {
//!     fn speed(&mut self) -> Result<f64> {
//!         Ok(self.speed)
//!     }
//! }
//!
//! let mut m = Ideal { speed: 0.0, position: 0.0 };
//! m.set_speed(3.0)?;
//! m.stop()?; // the default `stop` sets the speed to 0
//! assert_eq!(m.speed()?, 0.0);
//! m.set_position(12.0, None)?;
//! assert_eq!(m.position()?, 12.0);
//! # Ok::<(), crabby::Error>(())
//! ```
//!
//! Then hand the driver to a Block: `IOBlock::input_output(Heater { .. })` or
//! `Machine::new().actuator(ActuatorConfig::position(Ideal { .. }, "x").position_label("x(mm)"))`
//! (crate `crabby-blocks`; see `examples/custom_inout.rs`, `examples/custom_actuator.rs`
//! and, for a camera, `examples/custom_camera.rs`).

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

/// The error a driver returns when its configuration leaves out a capability its type has
/// (a serial device with no command template, asked to write).
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

/// The base of every sensor, DAQ board or instrument: its name, channels, configuration
/// check and lifecycle. What it can do comes from the capability traits it implements:
/// [`Input`], [`Output`], [`Stream`].
///
/// Every method has a default. Zero offsetting at the start is done by the Block (for
/// every device), not by drivers.
pub trait InOut: Send + 'static {
    /// The device's name, used as the origin of its errors (default: the type's name).
    fn name(&self) -> &str {
        short_type_name::<Self>()
    }

    /// The default labels of the values [`Input::read`] or [`Stream::read_stream`] return,
    /// one per channel (default empty: the Block must be given labels).
    fn channels(&self) -> Vec<String> {
        Vec::new()
    }

    /// Validates the configuration, without touching the device. Runs before the test is
    /// forked; return [`ErrorKind::Configuration`] errors that name the parameter and the fix.
    fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Opens the device (runs in the Block's process, in `prepare`; again after a lost
    /// connection if the Block is told to reconnect).
    fn open(&mut self) -> Result<()> {
        Ok(())
    }

    /// Closes the device (runs in `finish`, whatever ended the test, and before a
    /// reconnection).
    fn close(&mut self) -> Result<()> {
        Ok(())
    }

    /// What the device is doing, as far as the driver knows (no I/O: return what the last
    /// call learned). The default, [`DeviceState::Unknown`], lets the Block track it.
    fn status(&self) -> Status {
        Status::unknown()
    }
}

/// A device that reads one value per channel on demand.
pub trait Input: InOut {
    /// Reads one value per channel, timestamped with [`now_ns`]'s clock.
    fn read(&mut self) -> Result<Reading>;
}

/// A device that takes commands.
pub trait Output: InOut {
    /// How many values [`write`](Output::write) takes, if fixed (the Block checks its
    /// command labels against it before the test starts).
    fn n_commands(&self) -> Option<usize> {
        None
    }

    /// Applies a command (one value per command label).
    fn write(&mut self, cmd: &[f64]) -> Result<()>;
}

/// A device that acquires on its own clock and hands over samples in chunks (a DAQ
/// board's buffer).
pub trait Stream: InOut {
    /// Starts acquiring.
    fn start_stream(&mut self) -> Result<()>;

    /// Returns the samples acquired since the last call (possibly none).
    fn read_stream(&mut self) -> Result<Chunk>;

    /// Stops acquiring (called in `finish` if the stream was started).
    fn stop_stream(&mut self) -> Result<()>;
}

/// A device that reads and takes commands: implemented for every type that is both
/// [`Input`] and [`Output`], so that `Box<dyn InputOutput>` holds a device chosen at run
/// time with both capabilities.
pub trait InputOutput: Input + Output {}

impl<T: Input + Output + ?Sized> InputOutput for T {}

impl<T: InOut + ?Sized> InOut for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn channels(&self) -> Vec<String> {
        (**self).channels()
    }
    fn check(&self) -> Result<()> {
        (**self).check()
    }
    fn open(&mut self) -> Result<()> {
        (**self).open()
    }
    fn close(&mut self) -> Result<()> {
        (**self).close()
    }
    fn status(&self) -> Status {
        (**self).status()
    }
}

impl<T: Input + ?Sized> Input for Box<T> {
    fn read(&mut self) -> Result<Reading> {
        (**self).read()
    }
}

impl<T: Output + ?Sized> Output for Box<T> {
    fn n_commands(&self) -> Option<usize> {
        (**self).n_commands()
    }
    fn write(&mut self, cmd: &[f64]) -> Result<()> {
        (**self).write(cmd)
    }
}

impl<T: Stream + ?Sized> Stream for Box<T> {
    fn start_stream(&mut self) -> Result<()> {
        (**self).start_stream()
    }
    fn read_stream(&mut self) -> Result<Chunk> {
        (**self).read_stream()
    }
    fn stop_stream(&mut self) -> Result<()> {
        (**self).stop_stream()
    }
}

/// The base of every motor or axis: driven in speed, stopped, polled. Position control
/// and read-back are the capability traits [`Positioner`], [`PositionFeedback`] and
/// [`SpeedFeedback`].
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

    /// Validates the configuration without touching the device (before the fork).
    fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Opens the device (in the Block's process, in `prepare`).
    fn open(&mut self) -> Result<()> {
        Ok(())
    }

    /// Closes the device (after [`stop`](Actuator::stop), in `finish`).
    fn close(&mut self) -> Result<()> {
        Ok(())
    }

    /// What the device is doing, as far as the driver knows (no I/O).
    fn status(&self) -> Status {
        Status::unknown()
    }

    /// Drives at `speed` (signed) until told otherwise.
    fn set_speed(&mut self, speed: f64) -> Result<()>;

    /// Stops the motion (default: `set_speed(0)`). Called in `finish` on every kind of stop;
    /// override it if the device has a better way (an immediate halt).
    fn stop(&mut self) -> Result<()> {
        self.set_speed(0.0)
    }

    /// Called by the `Machine` once in `begin` (right after the common start: re-arm a
    /// controller that timed out while the test waited at the start barrier) and then every
    /// loop, whatever the commands: send a keep-alive to a controller with a command
    /// watchdog, check its fault flags (return the fault as an error). Keep it cheap or
    /// rate-limit it. Default: nothing.
    fn poll(&mut self) -> Result<()> {
        Ok(())
    }
}

/// An actuator that goes to a position.
pub trait Positioner: Actuator {
    /// Goes to `position`, at `speed` if given (else the driver's default speed).
    fn set_position(&mut self, position: f64, speed: Option<f64>) -> Result<()>;
}

/// An actuator that reads its position back.
pub trait PositionFeedback: Actuator {
    /// The current position.
    fn position(&mut self) -> Result<f64>;

    /// The position, and the speed too if the same exchange with the device gives it (the
    /// `Machine` calls this when it sends both, and asks
    /// [`SpeedFeedback::speed`] only if the speed is `None`). Default:
    /// `(self.position()?, None)`; override it when one request answers both (a serial
    /// controller: half the time on the line).
    fn position_and_speed(&mut self) -> Result<(f64, Option<f64>)> {
        Ok((self.position()?, None))
    }
}

/// An actuator that reads its speed back.
pub trait SpeedFeedback: Actuator {
    /// The current speed.
    fn speed(&mut self) -> Result<f64>;
}

impl<T: Actuator + ?Sized> Actuator for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn check(&self) -> Result<()> {
        (**self).check()
    }
    fn open(&mut self) -> Result<()> {
        (**self).open()
    }
    fn close(&mut self) -> Result<()> {
        (**self).close()
    }
    fn status(&self) -> Status {
        (**self).status()
    }
    fn set_speed(&mut self, speed: f64) -> Result<()> {
        (**self).set_speed(speed)
    }
    fn stop(&mut self) -> Result<()> {
        (**self).stop()
    }
    fn poll(&mut self) -> Result<()> {
        (**self).poll()
    }
}

impl<T: Positioner + ?Sized> Positioner for Box<T> {
    fn set_position(&mut self, position: f64, speed: Option<f64>) -> Result<()> {
        (**self).set_position(position, speed)
    }
}

impl<T: PositionFeedback + ?Sized> PositionFeedback for Box<T> {
    fn position(&mut self) -> Result<f64> {
        (**self).position()
    }
    fn position_and_speed(&mut self) -> Result<(f64, Option<f64>)> {
        (**self).position_and_speed()
    }
}

impl<T: SpeedFeedback + ?Sized> SpeedFeedback for Box<T> {
    fn speed(&mut self) -> Result<f64> {
        (**self).speed()
    }
}

fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records every call it gets, and answers differently from every default.
    struct Probe(Arc<Mutex<Vec<&'static str>>>);

    impl Probe {
        fn hit(&self, m: &'static str) {
            self.0.lock().unwrap().push(m);
        }
    }

    impl InOut for Probe {
        fn name(&self) -> &str {
            self.hit("name");
            "probe"
        }
        fn channels(&self) -> Vec<String> {
            self.hit("channels");
            vec!["p".into()]
        }
        fn check(&self) -> Result<()> {
            self.hit("check");
            Ok(())
        }
        fn open(&mut self) -> Result<()> {
            self.hit("open");
            Ok(())
        }
        fn close(&mut self) -> Result<()> {
            self.hit("close");
            Ok(())
        }
        fn status(&self) -> Status {
            self.hit("status");
            Status::on("probe")
        }
    }

    impl Output for Probe {
        fn n_commands(&self) -> Option<usize> {
            self.hit("n_commands");
            Some(7)
        }
        fn write(&mut self, _: &[f64]) -> Result<()> {
            self.hit("write");
            Ok(())
        }
    }

    impl Actuator for Probe {
        fn name(&self) -> &str {
            self.hit("name");
            "probe"
        }
        fn check(&self) -> Result<()> {
            self.hit("check");
            Ok(())
        }
        fn open(&mut self) -> Result<()> {
            self.hit("open");
            Ok(())
        }
        fn close(&mut self) -> Result<()> {
            self.hit("close");
            Ok(())
        }
        fn status(&self) -> Status {
            self.hit("status");
            Status::on("probe")
        }
        fn set_speed(&mut self, _: f64) -> Result<()> {
            self.hit("set_speed");
            Ok(())
        }
        fn stop(&mut self) -> Result<()> {
            self.hit("stop");
            Ok(())
        }
        fn poll(&mut self) -> Result<()> {
            self.hit("poll");
            Ok(())
        }
    }

    impl PositionFeedback for Probe {
        fn position(&mut self) -> Result<f64> {
            self.hit("position");
            Ok(1.0)
        }
        fn position_and_speed(&mut self) -> Result<(f64, Option<f64>)> {
            self.hit("position_and_speed");
            Ok((1.0, Some(2.0)))
        }
    }

    /// Every method with a default, listed once per trait; each is called through a `Box`
    /// and must reach the probe (a forgotten forward would run the default instead, which
    /// the probe never sees). Required methods need no listing: a forwarding impl without
    /// them does not compile.
    #[test]
    fn box_forwards_every_defaulted_method() {
        const INOUT: [&str; 6] = ["name", "channels", "check", "open", "close", "status"];
        const OUTPUT: [&str; 1] = ["n_commands"];
        const ACTUATOR: [&str; 7] = ["name", "check", "open", "close", "status", "stop", "poll"];
        const POSITION_FEEDBACK: [&str; 1] = ["position_and_speed"];

        let calls = Arc::new(Mutex::new(Vec::new()));
        let take = || std::mem::take(&mut *calls.lock().unwrap());

        let mut d: Box<dyn Output> = Box::new(Probe(calls.clone()));
        assert_eq!(InOut::name(&d), "probe");
        assert_eq!(d.channels(), ["p"]);
        InOut::check(&d).unwrap();
        InOut::open(&mut d).unwrap();
        InOut::close(&mut d).unwrap();
        assert_eq!(InOut::status(&d), Status::on("probe"));
        assert_eq!(take(), INOUT);
        assert_eq!(d.n_commands(), Some(7));
        assert_eq!(take(), OUTPUT);

        let mut a: Box<dyn PositionFeedback> = Box::new(Probe(calls.clone()));
        assert_eq!(Actuator::name(&a), "probe");
        Actuator::check(&a).unwrap();
        Actuator::open(&mut a).unwrap();
        Actuator::close(&mut a).unwrap();
        assert_eq!(Actuator::status(&a), Status::on("probe"));
        a.stop().unwrap();
        a.poll().unwrap();
        assert_eq!(take(), ACTUATOR);
        assert_eq!(a.position_and_speed().unwrap(), (1.0, Some(2.0)));
        assert_eq!(take(), POSITION_FEEDBACK);
    }

    #[test]
    fn a_boxed_device_keeps_its_capabilities() {
        struct Counter(f64);
        impl InOut for Counter {}
        impl Input for Counter {
            fn read(&mut self) -> Result<Reading> {
                Ok(Reading::new(0, vec![self.0]))
            }
        }
        impl Output for Counter {
            fn write(&mut self, cmd: &[f64]) -> Result<()> {
                self.0 = cmd[0];
                Ok(())
            }
        }
        fn use_both(mut d: impl Input + Output) -> f64 {
            d.write(&[4.0]).unwrap();
            d.read().unwrap().values[0]
        }
        let d: Box<dyn InputOutput> = Box::new(Counter(0.0));
        assert_eq!(d.name(), "Counter");
        assert_eq!(use_both(d), 4.0);
    }
}
