//! Drivers as file types, and the Blocks that drive them: [`DriverType`] (an `InOut` or an
//! `Actuator` built from its checked parameters), `IOBlock` (a `device = { type = ... }`
//! table) and `Machine` (an `actuators` array, each with its `device`).
//!
//! Covered drivers: the simulated `FakeFurnace` (InOut), `FakeDCMotor` and
//! `FakeStepperMotor` (Actuators) of `crabby-hardware`. Each is built through its public
//! builder, opened only in the Block's own process (`prepare`), never by `validate`.

use super::{error_at, BlockType};
use crabby::hardware::{
    Actuator, Input, InputOutput, Output, PositionFeedback, Positioner, SpeedFeedback, Stream,
};
use crabby::schema::{ParamSpec, ParamType as T, Params, Range, Value, Variant};
use crabby_blocks as b;
use crabby_hardware as hw;
use std::rc::Rc;

/// What a driver becomes: a device that knows its capabilities (the traits its type
/// implements), so the Block is built with exactly those, and a file that asks for more is
/// refused with the parameter named.
pub enum Device {
    /// A sensor or DAQ, for an IOBlock.
    InOut(IoDevice),
    /// A motor, for a Machine.
    Actuator(ActuatorDevice),
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Device::InOut(_) => "Device::InOut",
            Device::Actuator(_) => "Device::Actuator",
        })
    }
}

/// What an IOBlock's table asks of its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoWants {
    /// `streamer = true`.
    pub stream: bool,
    /// Command labels, `initial_cmd` or `exit_cmd` are given.
    pub write: bool,
}

/// An error about one key of a table.
pub type KeyError = (&'static str, String);

type IoBuild = Box<dyn FnOnce(IoWants) -> Result<b::IOBlock, KeyError>>;

/// A sensor or DAQ, erased with its capabilities: makes the IOBlock the file asks for.
pub struct IoDevice(IoBuild);

impl std::fmt::Debug for IoDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IoDevice")
    }
}

fn cannot(name: &str, what: &str) -> String {
    format!("device '{name}' cannot {what}")
}

impl IoDevice {
    /// A device that reads on demand only.
    pub fn input<D: Input>(d: D) -> IoDevice {
        IoDevice(Box::new(move |w: IoWants| {
            if w.stream {
                return Err(("streamer", cannot(d.name(), "stream; set streamer = false")));
            }
            if w.write {
                return Err(("cmd_labels", cannot(d.name(), "take commands; remove them")));
            }
            Ok(b::IOBlock::input(d))
        }))
    }
    /// A device that reads and takes commands.
    pub fn input_output<D: InputOutput>(d: D) -> IoDevice {
        IoDevice(Box::new(move |w: IoWants| {
            if w.stream {
                return Err(("streamer", cannot(d.name(), "stream; set streamer = false")));
            }
            Ok(if w.write {
                b::IOBlock::input_output(d)
            } else {
                b::IOBlock::input(d)
            })
        }))
    }
    /// A device that reads, streams and takes commands.
    pub fn full<D: Input + Output + Stream>(d: D) -> IoDevice {
        IoDevice(Box::new(move |w: IoWants| {
            Ok(match (w.stream, w.write) {
                (true, true) => b::IOBlock::stream_output(d),
                (true, false) => b::IOBlock::stream(d),
                (false, true) => b::IOBlock::input_output(d),
                (false, false) => b::IOBlock::input(d),
            })
        }))
    }
    /// Builds the IOBlock.
    pub fn build(self, w: IoWants) -> Result<b::IOBlock, KeyError> {
        (self.0)(w)
    }
}

type ActBuild = Box<dyn FnOnce(b::Machine, &Params) -> Result<b::Machine, KeyError>>;

/// A motor, erased with its capabilities: adds itself to a Machine with the options of its
/// `actuators` table (mode, labels), refusing those its type cannot honour.
pub struct ActuatorDevice(ActBuild);

impl std::fmt::Debug for ActuatorDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActuatorDevice")
    }
}

fn common<A: Actuator>(mut c: b::ActuatorConfig<A>, q: &Params) -> b::ActuatorConfig<A> {
    if let Some(l) = q.str("status_label") {
        c = c.status_label(l);
    }
    c
}

fn refuse_unless(q: &Params, name: &str, ok: [bool; 3]) -> Result<(), KeyError> {
    let [pos, pfb, sfb] = ok;
    if !pos && q.str("mode") == Some("position") {
        return Err((
            "mode",
            cannot(name, "be driven in position; use mode = \"speed\""),
        ));
    }
    for (k, have, what) in [
        (
            "speed_cmd_label",
            pos,
            "be driven in position (speed_cmd_label)",
        ),
        ("move_speed", pos, "be driven in position (move_speed)"),
        ("position_label", pfb, "read its position back"),
        ("speed_label", sfb, "read its speed back"),
    ] {
        if !have && q.get(k).is_some() {
            return Err((k, cannot(name, what)));
        }
    }
    Ok(())
}

fn positioned<A: Positioner>(mut c: b::ActuatorConfig<A>, q: &Params) -> b::ActuatorConfig<A> {
    if let Some(l) = q.str("speed_cmd_label") {
        c = c.speed_cmd_label(l);
    }
    if let Some(v) = q.f64("move_speed") {
        c = c.move_speed(v);
    }
    c
}

fn feedback<A: PositionFeedback + SpeedFeedback>(
    mut c: b::ActuatorConfig<A>,
    q: &Params,
) -> b::ActuatorConfig<A> {
    if let Some(l) = q.str("position_label") {
        c = c.position_label(l);
    }
    if let Some(l) = q.str("speed_label") {
        c = c.speed_label(l);
    }
    c
}

impl ActuatorDevice {
    /// A motor driven in speed, nothing read back.
    pub fn speed_only<A: Actuator>(a: A) -> ActuatorDevice {
        ActuatorDevice(Box::new(move |m: b::Machine, q: &Params| {
            refuse_unless(q, a.name(), [false, false, false])?;
            let label = q.str("cmd_label").unwrap_or_default().to_owned();
            Ok(m.actuator(common(b::ActuatorConfig::speed(a, label), q)))
        }))
    }
    /// A motor driven in speed that reads its position and speed back.
    pub fn with_feedback<A: PositionFeedback + SpeedFeedback>(a: A) -> ActuatorDevice {
        ActuatorDevice(Box::new(move |m: b::Machine, q: &Params| {
            refuse_unless(q, a.name(), [false, true, true])?;
            let label = q.str("cmd_label").unwrap_or_default().to_owned();
            let c = feedback(common(b::ActuatorConfig::speed(a, label), q), q);
            Ok(m.actuator(c))
        }))
    }
    /// A motor driven in speed or in position that reads its position and speed back.
    pub fn full<A: Positioner + PositionFeedback + SpeedFeedback>(a: A) -> ActuatorDevice {
        ActuatorDevice(Box::new(move |m: b::Machine, q: &Params| {
            let label = q.str("cmd_label").unwrap_or_default().to_owned();
            let c = if q.str("mode") == Some("position") {
                positioned(b::ActuatorConfig::position(a, label), q)
            } else {
                refuse_unless(q, a.name(), [false, true, true])?;
                b::ActuatorConfig::speed(a, label)
            };
            Ok(m.actuator(feedback(common(c, q), q)))
        }))
    }
    /// Adds the motor to `m` with the options of its table `q`.
    pub fn add_to(self, m: b::Machine, q: &Params) -> Result<b::Machine, KeyError> {
        (self.0)(m, q)
    }
}

/// Which Block drives a driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    /// `crabby::hardware::InOut`: in an IOBlock's `device`.
    InOut,
    /// `crabby::hardware::Actuator`: in a Machine's `actuators[].device`.
    Actuator,
}

type DeviceFn = Box<dyn Fn(&Params) -> Result<Device, String>>;

/// One driver: its name in files, doc, kind, parameters and constructor (which must not
/// touch the device: that is `open`'s job, in the Block's process).
pub struct DriverType {
    /// The `type` in a `device` table.
    pub name: &'static str,
    /// One line.
    pub doc: &'static str,
    /// InOut or Actuator.
    pub kind: DriverKind,
    /// Its parameters.
    pub params: Vec<ParamSpec>,
    build: DeviceFn,
}

impl std::fmt::Debug for DriverType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverType")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish()
    }
}

impl DriverType {
    /// A driver built by `build` from its checked parameters.
    pub fn new(
        name: &'static str,
        doc: &'static str,
        kind: DriverKind,
        build: impl Fn(&Params) -> Result<Device, String> + 'static,
    ) -> DriverType {
        DriverType {
            name,
            doc,
            kind,
            params: Vec::new(),
            build: Box::new(build),
        }
    }
    /// Declares a parameter.
    pub fn param(mut self, spec: ParamSpec) -> DriverType {
        self.params.push(spec);
        self
    }
    /// Builds the driver (not opened).
    pub fn build(&self, p: &Params) -> Result<Device, String> {
        (self.build)(p)
    }
}

/// The stock drivers.
pub fn stock_drivers() -> Vec<DriverType> {
    vec![fake_furnace(), fake_dc_motor(), fake_stepper_motor()]
}

fn sim_speed() -> ParamSpec {
    ParamSpec::new(
        "simulation_speed",
        T::Float,
        "how much faster than real time the simulation runs",
    )
    .range(Range::above(0.0))
    .default("1")
}

/// The simulated furnace.
pub fn fake_furnace() -> DriverType {
    DriverType::new(
        "FakeFurnace",
        "a simulated furnace: heater command power(%) in, thermocouple T(C) out",
        DriverKind::InOut,
        |p| {
            let mut f = hw::FakeFurnace::new()
                .ambient(p.f64("ambient").unwrap_or(20.0))
                .noise(
                    p.f64("noise").unwrap_or(0.1),
                    p.i64("seed").unwrap_or(0) as u64,
                )
                .thermal(
                    p.f64("max_power").unwrap_or(500.0),
                    p.f64("thermal_resistance").unwrap_or(1.0),
                    p.f64("heat_capacity").unwrap_or(5.0),
                )
                .simulation_speed(p.f64("simulation_speed").unwrap_or(1.0));
            if let Some(r) = p.f64("sample_rate") {
                f = f.sample_rate(r);
            }
            Ok(Device::InOut(IoDevice::full(f)))
        },
    )
    .param(
        ParamSpec::new("ambient", T::Float, "room and initial temperature")
            .unit("°C")
            .default("20"),
    )
    .param(
        ParamSpec::new("max_power", T::Float, "heater power at 100 %")
            .unit("W")
            .range(Range::above(0.0))
            .default("500"),
    )
    .param(
        ParamSpec::new(
            "thermal_resistance",
            T::Float,
            "thermal resistance to the room",
        )
        .unit("K/W")
        .range(Range::above(0.0))
        .default("1"),
    )
    .param(
        ParamSpec::new("heat_capacity", T::Float, "heat capacity")
            .unit("J/K")
            .range(Range::above(0.0))
            .default("5"),
    )
    .param(
        ParamSpec::new("noise", T::Float, "thermocouple noise, standard deviation")
            .unit("K")
            .range(Range::at_least(0.0))
            .default("0.1"),
    )
    .param(
        ParamSpec::new("seed", T::Int, "seed of the noise")
            .range(Range::at_least(0.0))
            .default("0"),
    )
    .param(
        ParamSpec::new("sample_rate", T::Float, "stream sampling rate")
            .unit("Hz")
            .range(Range::between(1e-3, hw::FakeFurnace::MAX_SAMPLE_RATE))
            .default("1000"),
    )
    .param(sim_speed())
}

/// The simulated DC motor.
pub fn fake_dc_motor() -> DriverType {
    DriverType::new(
        "FakeDCMotor",
        "a simulated DC motor: speed command in volts, reads rpm and turns",
        DriverKind::Actuator,
        |p| {
            let mut m =
                hw::FakeDCMotor::new().simulation_speed(p.f64("simulation_speed").unwrap_or(1.0));
            for (k, f) in [
                (
                    "inertia",
                    hw::FakeDCMotor::inertia as fn(hw::FakeDCMotor, f64) -> hw::FakeDCMotor,
                ),
                ("torque", hw::FakeDCMotor::torque),
                ("kv", hw::FakeDCMotor::kv),
                ("rv", hw::FakeDCMotor::rv),
                ("fv", hw::FakeDCMotor::fv),
            ] {
                if let Some(v) = p.f64(k) {
                    m = f(m, v);
                }
            }
            Ok(Device::Actuator(ActuatorDevice::with_feedback(m)))
        },
    )
    .param(
        ParamSpec::new("inertia", T::Float, "inertia (rpm-force per rpm/s)")
            .range(Range::above(0.0))
            .default("0.5"),
    )
    .param(ParamSpec::new("torque", T::Float, "constant load torque (rpm-force)").default("0"))
    .param(
        ParamSpec::new("kv", T::Float, "speed constant, rpm-force per volt")
            .range(Range::above(0.0))
            .default("1000"),
    )
    .param(
        ParamSpec::new("rv", T::Float, "viscous friction")
            .range(Range::at_least(0.0))
            .default("0.4"),
    )
    .param(
        ParamSpec::new("fv", T::Float, "fluid friction")
            .range(Range::at_least(0.0))
            .default("2e-5"),
    )
    .param(sim_speed())
}

/// The simulated stepper motor.
pub fn fake_stepper_motor() -> DriverType {
    DriverType::new(
        "FakeStepperMotor",
        "a simulated stepper motor: trapezoidal profile, mm and mm/s",
        DriverKind::Actuator,
        |p| {
            let mut m = hw::FakeStepperMotor::new()
                .simulation_speed(p.f64("simulation_speed").unwrap_or(1.0));
            if let Some(a) = p.f64("acceleration") {
                m = m.acceleration(a);
            }
            if let Some(v) = p.f64("max_speed") {
                m = m.max_speed(v);
            }
            if let (Some(s), Some(u)) = (p.f64("steps_per_mm"), p.i64("microsteps")) {
                m = m.steps(s, u as u32);
            }
            Ok(Device::Actuator(ActuatorDevice::full(m)))
        },
    )
    .param(
        ParamSpec::new("acceleration", T::Float, "acceleration and deceleration")
            .unit("mm/s^2")
            .range(Range::above(0.0))
            .default("20"),
    )
    .param(
        ParamSpec::new("max_speed", T::Float, "speed limit")
            .unit("mm/s")
            .range(Range::above(0.0))
            .default("10"),
    )
    .param(
        ParamSpec::new(
            "steps_per_mm",
            T::Float,
            "full steps per mm (with microsteps)",
        )
        .range(Range::above(0.0))
        .default("100"),
    )
    .param(
        ParamSpec::new(
            "microsteps",
            T::Int,
            "microsteps per full step (with steps_per_mm)",
        )
        .range(Range::between(1.0, 256.0))
        .default("256"),
    )
    .param(sim_speed())
}

fn variants(drivers: &[Rc<DriverType>], kind: DriverKind) -> Vec<Variant> {
    drivers
        .iter()
        .filter(|d| d.kind == kind)
        .map(|d| Variant {
            name: d.name,
            doc: d.doc,
            params: d.params.clone(),
        })
        .collect()
}

fn device(drivers: &[Rc<DriverType>], c: &crabby::schema::Checked) -> Result<Device, String> {
    let Value::Variant(name, q) = &c.value else {
        return Err("not a device table".into());
    };
    let d = drivers
        .iter()
        .find(|d| d.name == *name)
        .ok_or_else(|| format!("no driver '{name}'"))?;
    d.build(q)
}

/// The IOBlock, with a device among `drivers`' InOuts.
pub fn io_block(drivers: &[Rc<DriverType>]) -> BlockType {
    let ds: Vec<Rc<DriverType>> = drivers.to_vec();
    BlockType::new(
        "IOBlock",
        "reads a sensor or DAQ and writes its commands (device = { type = ... })",
        move |p, _| {
            let dev = match device(
                &ds,
                p.get("device")
                    .ok_or("no device")
                    .map_err(|e| error_at(p, "device", e))?,
            ) {
                Ok(Device::InOut(d)) => d,
                Ok(Device::Actuator(_)) => {
                    return Err(error_at(
                        p,
                        "device",
                        "an actuator: drive it with a Machine",
                    ))
                }
                Err(e) => return Err(error_at(p, "device", e)),
            };
            let wants = IoWants {
                stream: p.bool("streamer").unwrap_or(false),
                write: p.get("cmd_labels").is_some()
                    || p.get("initial_cmd").is_some()
                    || p.get("exit_cmd").is_some(),
            };
            let mut io = dev.build(wants).map_err(|(k, e)| error_at(p, k, e))?;
            if let Some(l) = p.strs("labels") {
                io = io.labels(l);
            }
            if let Some(l) = p.str("time_label") {
                io = io.time_label(l);
            }
            if let Some(l) = p.strs("cmd_labels") {
                io = io.cmd_labels(l);
            }
            if let Some(l) = p.str("trigger_label") {
                io = io.trigger_label(l);
            }
            if let Some(l) = p.str("status_label") {
                io = io.status_label(l);
            }
            if let Some(v) = p.f64s("initial_cmd") {
                io = io.initial_cmd(v);
            }
            if let Some(v) = p.f64s("exit_cmd") {
                io = io.exit_cmd(v);
            }
            if let Some(s) = p.f64("make_zero") {
                io = io.make_zero(s);
            }
            io = io.spam(p.bool("spam").unwrap_or(false));
            Ok(Box::new(io))
        },
    )
    .param(ParamSpec::new(
        "device",
        T::Tagged(variants(drivers, DriverKind::InOut)),
        "the sensor or DAQ",
    ))
    .param(
        ParamSpec::new(
            "labels",
            T::List(Box::new(T::Label)),
            "labels of the readings (default: the device's)",
        )
        .optional(),
    )
    .param(ParamSpec::new("time_label", T::Label, "the time label").default("t(s)"))
    .param(
        ParamSpec::new(
            "cmd_labels",
            T::List(Box::new(T::Label)),
            "labels whose values are written to the device",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "trigger_label",
            T::Label,
            "read only when this label arrives",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "status_label",
            T::Label,
            "send the device's status under this label",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "initial_cmd",
            T::List(Box::new(T::Float)),
            "commands written before the start",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "exit_cmd",
            T::List(Box::new(T::Float)),
            "commands written at the end",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "make_zero",
            T::Float,
            "measure and remove the offsets for this long at the start",
        )
        .unit("s")
        .range(super::seconds_range(false))
        .optional(),
    )
    .param(ParamSpec::new("streamer", T::Bool, "stream (DAQ) rather than read").default("false"))
    .param(ParamSpec::new("spam", T::Bool, "write the command every loop").default("false"))
    .reads(|p| {
        let mut v: Vec<(String, crabby::schema::Span)> = p
            .list("cmd_labels")
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.as_str().map(|s| (s.to_owned(), c.span.clone())))
            .collect();
        if let Some(c) = p.get("trigger_label") {
            if let Some(s) = c.as_str() {
                v.push((s.to_owned(), c.span.clone()));
            }
        }
        v
    })
}

/// The Machine, with actuators among `drivers`' Actuators.
pub fn machine(drivers: &[Rc<DriverType>]) -> BlockType {
    let ds: Vec<Rc<DriverType>> = drivers.to_vec();
    let actuator = vec![
        ParamSpec::new(
            "device",
            T::Tagged(variants(drivers, DriverKind::Actuator)),
            "the motor",
        ),
        ParamSpec::new(
            "mode",
            T::Choice(vec!["speed", "position"]),
            "the command is a speed or a position",
        ),
        ParamSpec::new("cmd_label", T::Label, "the label of the command"),
        ParamSpec::new(
            "speed_cmd_label",
            T::Label,
            "position mode: the label of the moves' speed",
        )
        .optional(),
        ParamSpec::new(
            "move_speed",
            T::Float,
            "position mode: the moves' speed until a speed command arrives",
        )
        .range(Range::above(0.0))
        .optional(),
        ParamSpec::new(
            "position_label",
            T::Label,
            "send the position read back under this label",
        )
        .optional(),
        ParamSpec::new(
            "speed_label",
            T::Label,
            "send the speed read back under this label",
        )
        .optional(),
        ParamSpec::new("status_label", T::Label, "send the status under this label").optional(),
    ];
    BlockType::new(
        "Machine",
        "drives motors from command labels and stops them all at the end",
        move |p, _| {
            let mut m = b::Machine::new();
            for c in p.list("actuators").unwrap_or_default() {
                let Value::Table(q) = &c.value else { continue };
                let dev = match device(
                    &ds,
                    q.get("device")
                        .ok_or("no device")
                        .map_err(|e| error_at(q, "device", e))?,
                ) {
                    Ok(Device::Actuator(a)) => a,
                    Ok(Device::InOut(_)) => {
                        return Err(error_at(q, "device", "a sensor: read it with an IOBlock"))
                    }
                    Err(e) => return Err(error_at(q, "device", e)),
                };
                m = dev.add_to(m, q).map_err(|(k, e)| error_at(q, k, e))?;
            }
            if let Some(l) = p.str("time_label") {
                m = m.time_label(l);
            }
            if let Some(t) = p.f64("stop_timeout") {
                m = m.stop_timeout(super::seconds(t));
            }
            Ok(Box::new(m.spam(p.bool("spam").unwrap_or(false))))
        },
    )
    .param(ParamSpec::new(
        "actuators",
        T::List(Box::new(T::Table(actuator))),
        "the motors, one table each",
    ))
    .param(ParamSpec::new("time_label", T::Label, "the time label").default("t(s)"))
    .param(
        ParamSpec::new(
            "stop_timeout",
            T::Float,
            "how long finish waits for the motors to stop",
        )
        .unit("s")
        .range(super::seconds_range(false))
        .default("1"),
    )
    .param(
        ParamSpec::new("spam", T::Bool, "re-apply the latest command every loop").default("false"),
    )
    .reads(|p| {
        let mut v = Vec::new();
        for c in p.list("actuators").unwrap_or_default() {
            if let Value::Table(q) = &c.value {
                for k in ["cmd_label", "speed_cmd_label"] {
                    if let Some(c) = q.get(k) {
                        if let Some(s) = c.as_str() {
                            v.push((s.to_owned(), c.span.clone()));
                        }
                    }
                }
            }
        }
        v
    })
}
