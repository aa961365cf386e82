//! The real drivers of `crabby-hardware` as file types: the serial [`line_in_out`]
//! (`LineInOut`), [`scpi_in_out`] (`ScpiInOut`) and [`pololu_tic`] (`PololuTic`), and
//! [`modbus_in_out`] (`ModbusInOut`, Modbus TCP or RTU, its points as a list of tables).
//!
//! Each parameter's unit, range, default and doc come from the driver's own documentation
//! and checks (`SerialConfig::check`, `ModbusInOut`'s `check`...). The driver is built
//! through its public builder and never opened here: it opens in the Block's process.
//!
//! Modbus RTU defaults to 19200 baud, 8 data bits, even parity: the *MODBUS over Serial
//! Line Specification and Implementation Guide V1.02* (2006), §2.5.1 ("even parity is
//! required"; 19200 bps the default rate), where `SerialConfig` alone defaults to no parity.
//!
//! `crabby validate` builds each of them with [`DriverType::offline`]: the serial port is
//! replaced by [`OFFLINE_PORT`], so the driver's own check (baud rate, templates, limits,
//! points) runs in full, but a port that is not plugged into this machine, or that a
//! running test holds, does not fail the file. `crabby run` checks the real port before
//! anything is forked.

use super::hardware::{param_error, ActuatorDevice, Device, DriverKind, DriverType, IoDevice};
use crabby::schema::{ParamSpec, ParamType as T, Params, Range, Value};
use crabby_hardware::modbus::{DataType, ModbusInOut, Order, Point};
use crabby_hardware::serial::{
    DataBits, LineEnding, LineInOut, Parity, Parse, PololuTic, ScpiInOut, SerialConfig, StopBits,
    STANDARD_BAUD_RATES,
};

/// The port `crabby validate` checks a serial driver with: a path that exists on every Linux
/// machine and that no test locks (it is never opened: checks only look at the path).
pub const OFFLINE_PORT: &str = "/dev/null";

/// The real drivers.
pub fn drivers() -> Vec<DriverType> {
    vec![line_in_out(), scpi_in_out(), pololu_tic(), modbus_in_out()]
}

fn name_param(default: &'static str) -> ParamSpec {
    ParamSpec::new(
        "name",
        T::Str,
        "the device's name, the origin of its errors",
    )
    .default(default)
}

/// The defaults of a device's serial port: its manual's (or its driver's) settings.
#[derive(Debug, Clone, Copy)]
pub struct SerialDefaults {
    /// Baud rate (`None`: required, the device has no usual rate).
    pub baud: Option<u32>,
    /// Parity.
    pub parity: Parity,
    /// Stop bits, 1 or 2.
    pub stop_bits: u8,
}

impl SerialDefaults {
    /// 8N1 at `baud`.
    pub const fn n81(baud: Option<u32>) -> SerialDefaults {
        SerialDefaults {
            baud,
            parity: Parity::None,
            stop_bits: 1,
        }
    }
}

fn parity_name(p: Parity) -> &'static str {
    match p {
        Parity::None => "none",
        Parity::Odd => "odd",
        Parity::Even => "even",
    }
}

/// The parameters of a serial port (`SerialConfig`): `port`, `baud`, `timeout`,
/// `data_bits`, `parity` and `stop_bits`, with the device's defaults `d`.
pub fn serial_params(port_doc: &'static str, d: SerialDefaults) -> Vec<ParamSpec> {
    let baud = ParamSpec::new(
        "baud",
        T::Int,
        "baud rate, the device's setting (a standard rate: 9600, 19200, 115200...)",
    )
    .range(Range::between(50.0, 4_000_000.0));
    let baud = match d.baud {
        Some(b) => baud.default(b.to_string()),
        None => baud,
    };
    vec![
        ParamSpec::new("port", T::Str, port_doc),
        baud,
        ParamSpec::new("timeout", T::Float, "how long to wait for an answer")
            .unit("s")
            .range(Range {
                min: Some((0.0, false)),
                max: Some((60.0, true)),
            })
            .default("1"),
        ParamSpec::new("data_bits", T::Int, "data bits per character")
            .range(Range::between(5.0, 8.0))
            .default("8"),
        ParamSpec::new("parity", T::Choice(vec!["none", "odd", "even"]), "parity")
            .default(parity_name(d.parity)),
        ParamSpec::new("stop_bits", T::Int, "stop bits")
            .range(Range::between(1.0, 2.0))
            .default(d.stop_bits.to_string()),
    ]
}

/// The `SerialConfig` of checked [`serial_params`] with defaults `d`; `offline`: on
/// [`OFFLINE_PORT`].
pub fn serial_config(p: &Params, offline: bool, d: SerialDefaults) -> Result<SerialConfig, String> {
    let baud = p.i64("baud").or(d.baud.map(i64::from)).unwrap_or_default();
    let baud = u32::try_from(baud)
        .ok()
        .filter(|b| STANDARD_BAUD_RATES.contains(b))
        .ok_or_else(|| {
            param_error(
                "baud",
                format!(
                    "{baud} is not a standard rate; use the device's setting, one of {STANDARD_BAUD_RATES:?}"
                ),
            )
        })?;
    if p.str("port").unwrap_or_default().trim().is_empty() {
        return Err(param_error(
            "port",
            "empty; give the serial device path, e.g. /dev/ttyUSB0",
        ));
    }
    let port = if offline {
        OFFLINE_PORT
    } else {
        p.str("port").unwrap_or_default()
    };
    let data_bits = match p.i64("data_bits").unwrap_or(8) {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let parity = match p.str("parity") {
        Some("odd") => Parity::Odd,
        Some("even") => Parity::Even,
        Some("none") => Parity::None,
        _ => d.parity,
    };
    let stop_bits = match p.i64("stop_bits").unwrap_or(i64::from(d.stop_bits)) {
        2 => StopBits::Two,
        _ => StopBits::One,
    };
    Ok(SerialConfig::new(port, baud)
        .timeout(super::seconds(p.f64("timeout").unwrap_or(1.0)))
        .framing(data_bits, parity, stop_bits))
}

fn line_ending(p: &Params, default: LineEnding) -> LineEnding {
    match p.str("line_ending") {
        Some("lf") => LineEnding::Lf,
        Some("crlf") => LineEnding::CrLf,
        Some("cr") => LineEnding::Cr,
        _ => default,
    }
}

fn line_ending_param(default: &'static str) -> ParamSpec {
    ParamSpec::new(
        "line_ending",
        T::Choice(vec!["crlf", "lf", "cr"]),
        "end of a line, both ways",
    )
    .default(default)
}

/// A generic line or SCPI device: no usual baud rate (required), 8N1.
const LINE: SerialDefaults = SerialDefaults::n81(None);

fn build_line(p: &Params, offline: bool) -> Result<Device, String> {
    let serial = serial_config(p, offline, LINE)?;
    let channels = p.strs("channels").unwrap_or_default();
    let mut d = LineInOut::new(p.str("name").unwrap_or("LineInOut"), serial, channels)
        .line_ending(line_ending(p, LineEnding::CrLf));
    if let Some(q) = p.str("query") {
        d = d.query(q);
    }
    match (p.str("regex"), p.str("separator")) {
        (Some(_), Some(_)) => {
            return Err(param_error(
                "separator",
                "give either separator (numbers separated by it) or regex (one capture group per channel), not both",
            ))
        }
        (Some(r), None) => d = d.parse(Parse::Regex(r.to_owned())),
        (None, Some(s)) => {
            let mut cs = s.chars();
            let (Some(c), None) = (cs.next(), cs.next()) else {
                return Err(param_error(
                    "separator",
                    format!("{s:?} is not one character, e.g. \",\" or \";\""),
                ));
            };
            d = d.parse(Parse::Csv { separator: c });
        }
        (None, None) => {}
    }
    if let Some(c) = p.str("command") {
        d = d.command(c);
    }
    if let Some(a) = p.str("ack") {
        d = d.ack(a);
    }
    if let Some(i) = p.strs("init") {
        d = d.init(i);
    }
    Ok(Device::InOut(IoDevice::input_output(d)))
}

/// `serial::LineInOut`: a device that speaks text lines.
pub fn line_in_out() -> DriverType {
    let mut t = DriverType::new(
        "LineInOut",
        "a serial device that speaks text lines: a query, an answer parsed into numbers, commands from a template",
        DriverKind::InOut,
        |p| build_line(p, false),
    )
    .offline(|p| build_line(p, true))
    .param(name_param("LineInOut"));
    for s in serial_params(
        "the serial device path, e.g. /dev/ttyUSB0 or /dev/serial/by-id/...",
        LINE,
    ) {
        t = t.param(s);
    }
    t.param(
        ParamSpec::new(
            "channels",
            T::List(Box::new(T::Label)),
            "one label per value read from an answer line",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "query",
            T::Str,
            "sent before each read (default: the device sends lines by itself, the latest is used)",
        )
        .optional(),
    )
    .param(line_ending_param("crlf"))
    .param(
        ParamSpec::new(
            "separator",
            T::Str,
            "answers are numbers separated by this character (default \",\")",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "regex",
            T::Str,
            "answers are parsed by this regular expression, one capture group per channel",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "command",
            T::Str,
            "command template: {} (or {0}, {1}...) replaced by the command values",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "ack",
            T::Str,
            "the line the device answers to a command, if it answers (e.g. OK)",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "init",
            T::List(Box::new(T::Str)),
            "lines sent right after opening (setup)",
        )
        .optional(),
    )
}

fn build_scpi(p: &Params, offline: bool) -> Result<Device, String> {
    let serial = serial_config(p, offline, LINE)?;
    let mut d = ScpiInOut::new(p.str("name").unwrap_or("ScpiInOut"), serial)
        .line_ending(line_ending(p, LineEnding::Lf))
        .check_errors(p.bool("check_errors").unwrap_or(true));
    if let Some(i) = p.str("identity") {
        d = d.identity(i);
    }
    for m in p.list("measure").unwrap_or_default() {
        if let Value::Table(q) = &m.value {
            d = d.measure(
                q.str("label").unwrap_or_default(),
                q.str("query").unwrap_or_default(),
            );
        }
    }
    for c in p.strs("commands").unwrap_or_default() {
        d = d.command(c);
    }
    if let Some(i) = p.strs("init") {
        d = d.init(i);
    }
    Ok(Device::InOut(IoDevice::input_output(d)))
}

/// `serial::ScpiInOut`: a SCPI instrument.
pub fn scpi_in_out() -> DriverType {
    let mut t = DriverType::new(
        "ScpiInOut",
        "a SCPI instrument on a serial port: *IDN? checked, one query per channel, the error queue read after each command",
        DriverKind::InOut,
        |p| build_scpi(p, false),
    )
    .offline(|p| build_scpi(p, true))
    .param(name_param("ScpiInOut"));
    for s in serial_params("the serial device path, e.g. /dev/ttyUSB0", LINE) {
        t = t.param(s);
    }
    t.param(line_ending_param("lf"))
        .param(
            ParamSpec::new(
                "identity",
                T::Str,
                "text the *IDN? answer must contain (the model number)",
            )
            .optional(),
        )
        .param(
            ParamSpec::new(
                "measure",
                T::List(Box::new(T::Table(vec![
                    ParamSpec::new("label", T::Label, "the label of the value"),
                    ParamSpec::new(
                        "query",
                        T::Str,
                        "the query that reads it, e.g. MEAS:VOLT:DC?",
                    ),
                ]))),
                "the channels, in order: a label and its query each",
            )
            .optional(),
        )
        .param(
            ParamSpec::new(
                "commands",
                T::List(Box::new(T::Str)),
                "one template per command value, {} is the value (e.g. SOUR:VOLT {})",
            )
            .optional(),
        )
        .param(
            ParamSpec::new(
                "check_errors",
                T::Bool,
                "read the error queue (SYST:ERR?) after each command",
            )
            .default("true"),
        )
        .param(
            ParamSpec::new(
                "init",
                T::List(Box::new(T::Str)),
                "lines sent after the identity check (default: *CLS)",
            )
            .optional(),
        )
}

/// The Tic's "serial" baud rate setting defaults to 9600, 8N1.
const TIC: SerialDefaults = SerialDefaults::n81(Some(9600));

fn build_tic(p: &Params, offline: bool) -> Result<Device, String> {
    let serial = serial_config(p, offline, TIC)?;
    let mut d = PololuTic::new(serial, p.f64("microsteps_per_mm").unwrap_or(1.0))
        .name(p.str("name").unwrap_or("PololuTic"))
        .limits(
            p.f64("max_speed").unwrap_or(10.0),
            p.f64("acceleration").unwrap_or(20.0),
        )
        .deenergize_on_close(p.bool("deenergize_on_close").unwrap_or(false));
    if let Some(n) = p.i64("device_number") {
        // 0..=127 by the declared range.
        d = d.device_number(n as u8);
    }
    Ok(Device::Actuator(ActuatorDevice::full(d)))
}

/// `serial::PololuTic`: a Pololu Tic stepper controller, mm and mm/s.
pub fn pololu_tic() -> DriverType {
    let mut t = DriverType::new(
        "PololuTic",
        "a Pololu Tic stepper controller (T500, T825, T834, T249, 36v4) on its TTL serial port, mm and mm/s",
        DriverKind::Actuator,
        |p| build_tic(p, false),
    )
    .offline(|p| build_tic(p, true))
    .param(name_param("PololuTic"));
    for s in serial_params("the serial device path, e.g. /dev/ttyACM0", TIC) {
        t = t.param(s);
    }
    t.param(
        ParamSpec::new(
            "microsteps_per_mm",
            T::Float,
            "full steps per mm times the step mode set in the Tic",
        )
        .range(Range::above(0.0)),
    )
    .param(
        ParamSpec::new(
            "max_speed",
            T::Float,
            "speed limit, sent at open as the Tic's max speed",
        )
        .unit("mm/s")
        .range(Range::above(0.0))
        .default("10"),
    )
    .param(
        ParamSpec::new("acceleration", T::Float, "acceleration and deceleration")
            .unit("mm/s^2")
            .range(Range::above(0.0))
            .default("20"),
    )
    .param(
        ParamSpec::new(
            "device_number",
            T::Int,
            "Pololu protocol with this device number (default: the compact protocol)",
        )
        .range(Range::between(0.0, 127.0))
        .optional(),
    )
    .param(
        ParamSpec::new(
            "deenergize_on_close",
            T::Bool,
            "de-energize the motor at the end (a de-energized axis may drop its load)",
        )
        .default("false"),
    )
}

/// Modbus RTU: 19200 baud, even parity, 1 stop bit (Serial Line guide §2.5.1).
const MODBUS_RTU: SerialDefaults = SerialDefaults {
    baud: Some(19200),
    parity: Parity::Even,
    stop_bits: 1,
};

fn point(q: &Params) -> Point {
    let label = q.str("label").unwrap_or_default();
    let address = q.i64("address").unwrap_or(0) as u16; // 0..=65535 by the declared range
    let p = match q.str("table") {
        Some("coil") => Point::coil(label, address),
        Some("discrete_input") => Point::discrete_input(label, address),
        Some("input") => Point::input(label, address),
        _ => Point::holding(label, address),
    };
    let p = match q.str("type") {
        Some("bool") => p.kind(DataType::Bool),
        Some("u16") => p.kind(DataType::U16),
        Some("i16") => p.kind(DataType::I16),
        Some("u32") => p.kind(DataType::U32),
        Some("i32") => p.kind(DataType::I32),
        Some("f32") => p.kind(DataType::F32),
        _ => p,
    };
    let order = |k| match q.str(k) {
        Some("little") => Order::Little,
        _ => Order::Big,
    };
    p.byte_order(order("byte_order"))
        .word_order(order("word_order"))
        .scale(q.f64("scale").unwrap_or(1.0))
        .offset(q.f64("offset").unwrap_or(0.0))
}

fn build_modbus(p: &Params, offline: bool) -> Result<Device, String> {
    let name = p.str("name").unwrap_or("ModbusInOut");
    let mut d = match (p.str("address"), p.get("port")) {
        (Some(a), None) => ModbusInOut::tcp(name, a)
            .timeout(super::seconds(p.f64("timeout").unwrap_or(1.0))),
        (None, Some(_)) => ModbusInOut::rtu(name, serial_config(p, offline, MODBUS_RTU)?),
        (Some(_), Some(_)) => {
            return Err(param_error(
                "port",
                "give either address (Modbus TCP, host:port) or port (Modbus RTU, a serial device), not both",
            ))
        }
        (None, None) => {
            return Err(
                "give address (Modbus TCP, e.g. \"192.168.1.10:502\") or port (Modbus RTU, e.g. \"/dev/ttyUSB0\")"
                    .into(),
            )
        }
    };
    d = d
        .unit(p.i64("unit").unwrap_or(1) as u8) // 0..=255 by the declared range
        .retries(p.i64("retries").unwrap_or(2) as u32);
    for (key, write) in [("reads", false), ("writes", true)] {
        for c in p.list(key).unwrap_or_default() {
            if let Value::Table(q) = &c.value {
                d = if write {
                    d.write_point(point(q))
                } else {
                    d.read_point(point(q))
                };
            }
        }
    }
    Ok(Device::InOut(IoDevice::input_output(d)))
}

fn point_params() -> Vec<ParamSpec> {
    let order =
        |name, doc| ParamSpec::new(name, T::Choice(vec!["big", "little"]), doc).default("big");
    vec![
        ParamSpec::new("label", T::Label, "the label of the value"),
        ParamSpec::new(
            "table",
            T::Choice(vec!["coil", "discrete_input", "holding", "input"]),
            "which of the four Modbus tables (Application Protocol §4.3)",
        ),
        ParamSpec::new(
            "address",
            T::Int,
            "address of the (first) register or bit, 0-based as on the wire (40001 is holding 0)",
        )
        .range(Range::between(0.0, 65535.0)),
        ParamSpec::new(
            "type",
            T::Choice(vec!["bool", "u16", "i16", "u32", "i32", "f32"]),
            "how the value is stored (default: bool for coils and discrete inputs, u16 for registers)",
        )
        .optional(),
        order("byte_order", "byte order within each register"),
        order(
            "word_order",
            "word order of 32-bit values (big: high word first)",
        ),
        ParamSpec::new("scale", T::Float, "value = raw × scale + offset").default("1"),
        ParamSpec::new("offset", T::Float, "value = raw × scale + offset").default("0"),
    ]
}

/// `modbus::ModbusInOut`: Modbus TCP or RTU, coils and registers mapped to labels.
pub fn modbus_in_out() -> DriverType {
    let mut t = DriverType::new(
        "ModbusInOut",
        "a Modbus TCP (address) or RTU (port) device: coils and registers mapped to labels",
        DriverKind::InOut,
        |p| build_modbus(p, false),
    )
    .offline(|p| build_modbus(p, true))
    .param(name_param("ModbusInOut"))
    .param(
        ParamSpec::new(
            "address",
            T::Str,
            "Modbus TCP: host:port (502 is the standard port), e.g. 192.168.1.10:502",
        )
        .optional(),
    );
    for s in serial_params(
        "Modbus RTU: the serial device path, e.g. /dev/ttyUSB0",
        MODBUS_RTU,
    ) {
        // RTU only: the port itself is optional (TCP has an address instead).
        t = t.param(if s.name == "port" { s.optional() } else { s });
    }
    t.param(
        ParamSpec::new(
            "unit",
            T::Int,
            "RTU: slave address 1-247; TCP: unit identifier (255 or 1 for most devices)",
        )
        .range(Range::between(0.0, 255.0))
        .default("1"),
    )
    .param(
        ParamSpec::new(
            "retries",
            T::Int,
            "times a failed request is sent again before the device is in FAULT",
        )
        .range(Range::between(0.0, 10.0))
        .default("2"),
    )
    .param(
        ParamSpec::new(
            "reads",
            T::List(Box::new(T::Table(point_params()))),
            "the values read every loop, in the order of the labels",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "writes",
            T::List(Box::new(T::Table(point_params()))),
            "the values written, in the order of the command labels",
        )
        .optional(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crabby::schema::{check, Node};

    #[test]
    fn a_port_gets_its_devices_defaults_and_validate_checks_it_offline() {
        let port = [("port", Node::str("/dev/ttyUSB-crabby-none"))];
        let p = check(&serial_params("p", MODBUS_RTU), &Node::table(port.clone())).unwrap();
        let c = serial_config(&p, false, MODBUS_RTU).unwrap();
        assert_eq!(
            (c.port.as_str(), c.baud_rate, c.parity, c.stop_bits),
            (
                "/dev/ttyUSB-crabby-none",
                19200,
                Parity::Even,
                StopBits::One
            )
        );
        let c = serial_config(&p, true, MODBUS_RTU).unwrap();
        assert_eq!(c.port, OFFLINE_PORT);
        let p = check(&serial_params("p", TIC), &Node::table(port.clone())).unwrap();
        let c = serial_config(&p, false, TIC).unwrap();
        assert_eq!((c.baud_rate, c.parity), (9600, Parity::None));
        // A generic line device has no usual rate: baud is required.
        assert!(check(&serial_params("p", LINE), &Node::table(port)).is_err());
    }
}
