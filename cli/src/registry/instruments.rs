//! The real drivers of `crabby-hardware` as file types. Generic: the serial
//! [`line_in_out`] (`LineInOut`), [`scpi_in_out`] (`ScpiInOut`), [`modbus_in_out`]
//! (`ModbusInOut`, Modbus TCP or RTU, its points as a list of tables). Instruments: the
//! Keysight 34420A ([`keysight_34420a`]), Alicat flow controllers ([`alicat_mfc`]),
//! UController boards ([`ucontroller`]), the LabJack T7 ([`labjack_t7`]) and the Eurotherm
//! 3200 ([`eurotherm_3200`]) as IOBlock devices; the Pololu Tic ([`pololu_tic`]), Newport
//! SMC100 ([`newport_smc100`], position read back but not speed), MDrive ([`mdrive`]), JVL
//! MAC ([`jvl_mac`]) and Oriental AZ ([`oriental_az`]) as Machine actuators.
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
    vec![
        line_in_out(),
        scpi_in_out(),
        pololu_tic(),
        modbus_in_out(),
        keysight_34420a(),
        alicat_mfc(),
        newport_smc100(),
        mdrive(),
        jvl_mac(),
        ucontroller(),
        labjack_t7(),
        eurotherm_3200(),
        oriental_az(),
    ]
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

// ---- The instrument drivers (LabJack T7, Eurotherm 3200, Oriental AZ, Keysight 34420A,
// ---- Alicat, Newport SMC100, MDrive, JVL MAC, UController).

fn serial_driver(
    name: &'static str,
    doc: &'static str,
    kind: DriverKind,
    port_doc: &'static str,
    d: SerialDefaults,
    build: fn(&Params, bool) -> Result<Device, String>,
) -> DriverType {
    let mut t = DriverType::new(name, doc, kind, move |p| build(p, false))
        .offline(move |p| build(p, true))
        .param(name_param(name));
    for s in serial_params(port_doc, d) {
        t = t.param(s);
    }
    t
}

fn retries_param() -> ParamSpec {
    ParamSpec::new(
        "retries",
        T::Int,
        "times a failed request is sent again before the device is in FAULT",
    )
    .range(Range::between(0.0, 10.0))
    .default("2")
}

fn rtu_unit_param() -> ParamSpec {
    ParamSpec::new("unit", T::Int, "the device's Modbus address, 1-247")
        .range(Range::between(1.0, 247.0))
        .default("1")
}

/// The 34420A's RS-232: 8 data bits, no parity, two stop bits (its guide, chapter 4,
/// "RS-232 Interface Configuration"); 9600 baud as the driver's example.
const KEYSIGHT: SerialDefaults = SerialDefaults {
    baud: Some(9600),
    parity: Parity::None,
    stop_bits: 2,
};

fn build_keysight(p: &Params, offline: bool) -> Result<Device, String> {
    use crabby_hardware::serial::keysight::{NPLC_VALUES, RESISTANCE_RANGES, VOLTAGE_RANGES};
    use crabby_hardware::serial::{Function34420A, Keysight34420A};
    let serial = serial_config(p, offline, KEYSIGHT)?;
    let resistance = p.str("function") == Some("resistance");
    let channel = p.i64("channel").unwrap_or(1) as u8; // 1..=2 by the declared range
    if resistance && p.get("channel").is_some() {
        return Err(param_error(
            "channel",
            "4-wire resistance uses both inputs (1 sources, 2 senses); remove channel",
        ));
    }
    let (function, ranges): (_, &[f64]) = if resistance {
        (Function34420A::FourWireResistance, &RESISTANCE_RANGES)
    } else if channel == 2 {
        (Function34420A::VoltageDc { channel }, &VOLTAGE_RANGES[..5])
    } else {
        (Function34420A::VoltageDc { channel }, &VOLTAGE_RANGES)
    };
    let range = p.f64("range");
    if let Some(r) = range {
        if !ranges.iter().any(|x| (x - r).abs() <= 1e-12 * x) {
            return Err(param_error(
                "range",
                format!("{r} is not a range of the 34420A here; use one of {ranges:?}, or leave it out (autorange)"),
            ));
        }
    }
    let nplc = p.f64("nplc").unwrap_or(1.0);
    if !NPLC_VALUES.contains(&nplc) {
        return Err(param_error(
            "nplc",
            format!("{nplc} power-line cycles is not an integration time of the 34420A; use one of {NPLC_VALUES:?}"),
        ));
    }
    let d = Keysight34420A::new(
        p.str("name").unwrap_or("Keysight34420A"),
        serial,
        p.str("label").unwrap_or("U(V)"),
    )
    .function(function)
    .range(range)
    .nplc(nplc);
    Ok(Device::InOut(IoDevice::input(d)))
}

/// `serial::Keysight34420A`: the nanovolt/micro-ohm meter.
pub fn keysight_34420a() -> DriverType {
    serial_driver(
        "Keysight34420A",
        "a Keysight (Agilent) 34420A nanovolt/micro-ohm meter on RS-232: one reading per loop",
        DriverKind::InOut,
        "the serial device path, e.g. /dev/ttyUSB0",
        KEYSIGHT,
        build_keysight,
    )
    .param(ParamSpec::new("label", T::Label, "the reading's label").default("U(V)"))
    .param(
        ParamSpec::new(
            "function",
            T::Choice(vec!["voltage", "resistance"]),
            "DC voltage on one input, or 4-wire resistance",
        )
        .default("voltage"),
    )
    .param(
        ParamSpec::new("channel", T::Int, "voltage: input channel 1 or 2")
            .range(Range::between(1.0, 2.0))
            .optional(),
    )
    .param(
        ParamSpec::new(
            "range",
            T::Float,
            "range, V (1 mV to 100 V; channel 2 up to 10 V) or Ω (1 Ω to 1 MΩ); default autorange",
        )
        .range(Range::above(0.0))
        .optional(),
    )
    .param(
        ParamSpec::new(
            "nplc",
            T::Float,
            "integration time, power-line cycles: 0.02, 0.2, 1, 2, 10, 20, 100 or 200",
        )
        .default("1"),
    )
}

/// Alicat MC series: 19 200 baud, 8N1 (the driver's module docs).
const ALICAT: SerialDefaults = SerialDefaults::n81(Some(19200));

const ALICAT_UNITS: [&str; 26] = [
    "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q", "R", "S",
    "T", "U", "V", "W", "X", "Y", "Z",
];

fn build_alicat(p: &Params, offline: bool) -> Result<Device, String> {
    use crabby_hardware::serial::{AlicatMfc, ALICAT_GASES};
    let serial = serial_config(p, offline, ALICAT)?;
    let mut d = AlicatMfc::new(
        p.str("name").unwrap_or("AlicatMfc"),
        serial,
        p.f64("full_scale").unwrap_or(1.0),
    );
    if let Some(u) = p.str("unit").and_then(|u| u.chars().next()) {
        d = d.unit(u);
    }
    match (p.str("gas"), p.i64("gas_number")) {
        (Some(_), Some(_)) => {
            return Err(param_error(
                "gas_number",
                "give gas (a name) or gas_number (a COMPOSER mix), not both",
            ))
        }
        (Some(g), None) => {
            // One of the declared choices: its index is the gas number.
            let n = ALICAT_GASES.iter().position(|x| *x == g).unwrap_or(0);
            d = d.gas(n as u8);
        }
        (None, Some(n)) => d = d.gas(n as u8), // 0..=255 by the declared range
        (None, None) => {}
    }
    Ok(Device::InOut(IoDevice::input_output(d)))
}

/// `serial::AlicatMfc`: an Alicat mass flow controller.
pub fn alicat_mfc() -> DriverType {
    serial_driver(
        "AlicatMfc",
        "an Alicat mass flow controller: reads P, T(C), Qv, Qm, setpoint; the command is the setpoint",
        DriverKind::InOut,
        "the serial device path, e.g. /dev/ttyUSB0",
        ALICAT,
        build_alicat,
    )
    .param(
        ParamSpec::new(
            "full_scale",
            T::Float,
            "full scale of the setpoint: the controller's range, in its flow unit",
        )
        .range(Range::above(0.0)),
    )
    .param(
        ParamSpec::new("unit", T::Choice(ALICAT_UNITS.to_vec()), "unit ID, A-Z (the controller's setting)")
            .default("A"),
    )
    .param(
        ParamSpec::new(
            "gas",
            T::Choice(crabby_hardware::serial::ALICAT_GASES.to_vec()),
            "gas selected at open, by name (Alicat's gas table)",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "gas_number",
            T::Int,
            "gas selected at open, by number: 0-29 standard, 236-255 COMPOSER mixes",
        )
        .range(Range::between(0.0, 255.0))
        .optional(),
    )
}

/// SMC100: 57 600 baud, 8N1 (the driver's module docs).
const SMC100: SerialDefaults = SerialDefaults::n81(Some(57600));

fn build_smc100(p: &Params, offline: bool) -> Result<Device, String> {
    use crabby_hardware::serial::NewportSmc100;
    let serial = serial_config(p, offline, SMC100)?;
    let mut d = NewportSmc100::new(p.str("name").unwrap_or("NewportSmc100"), serial)
        .address(p.i64("address").unwrap_or(1) as u8) // 1..=31 by the declared range
        .home_at_open(p.bool("home_at_open").unwrap_or(false));
    d.homing_timeout = super::seconds(p.f64("homing_timeout").unwrap_or(60.0));
    if let Some(v) = p.f64("max_speed") {
        d = d.max_speed(v);
    }
    Ok(Device::Actuator(ActuatorDevice::positioner(d)))
}

/// `serial::NewportSmc100`: a Newport SMC100 controller and its actuator, mm and mm/s.
pub fn newport_smc100() -> DriverType {
    serial_driver(
        "NewportSmc100",
        "a Newport SMC100CC/PP single-axis controller, mm and mm/s (position read back, not speed)",
        DriverKind::Actuator,
        "the serial device path, e.g. /dev/ttyUSB0",
        SMC100,
        build_smc100,
    )
    .param(
        ParamSpec::new("address", T::Int, "controller address, 1-31")
            .range(Range::between(1.0, 31.0))
            .default("1"),
    )
    .param(
        ParamSpec::new(
            "home_at_open",
            T::Bool,
            "home a non-referenced axis at open (it moves); otherwise open refuses it",
        )
        .default("false"),
    )
    .param(
        ParamSpec::new("homing_timeout", T::Float, "how long a homing may take")
            .unit("s")
            .range(super::seconds_range(false))
            .default("60"),
    )
    .param(
        ParamSpec::new(
            "max_speed",
            T::Float,
            "speed limit (default: the controller's VA at open)",
        )
        .unit("mm/s")
        .range(Range::above(0.0))
        .optional(),
    )
}

/// MDrive: the drive's BD setting, 9600 8N1 by default (the driver's docs).
const MDRIVE: SerialDefaults = SerialDefaults::n81(Some(9600));

fn build_mdrive(p: &Params, offline: bool) -> Result<Device, String> {
    use crabby_hardware::serial::MDrive;
    let serial = serial_config(p, offline, MDRIVE)?;
    let mut d = MDrive::new(
        p.str("name").unwrap_or("MDrive"),
        serial,
        p.f64("steps_per_mm").unwrap_or(1.0),
    )
    .limits(
        p.f64("max_speed").unwrap_or(5.0),
        p.f64("acceleration").unwrap_or(20.0),
    );
    if let Some(n) = p.str("device_name") {
        let mut cs = n.chars();
        let (Some(c), None) = (cs.next(), cs.next()) else {
            return Err(param_error(
                "device_name",
                format!("{n:?} is not one character (the drive's DN)"),
            ));
        };
        d = d.device_name(c);
    }
    Ok(Device::Actuator(ActuatorDevice::full(d)))
}

/// `serial::MDrive`: an IMS/Schneider MDrive integrated stepper (MCode), mm and mm/s.
pub fn mdrive() -> DriverType {
    serial_driver(
        "MDrive",
        "an IMS/Schneider MDrive integrated stepper programmed in MCode, mm and mm/s",
        DriverKind::Actuator,
        "the serial device path, e.g. /dev/ttyUSB0",
        MDRIVE,
        build_mdrive,
    )
    .param(
        ParamSpec::new(
            "steps_per_mm",
            T::Float,
            "microsteps per mm (MS x full steps / lead)",
        )
        .range(Range::above(0.0)),
    )
    .param(
        ParamSpec::new("max_speed", T::Float, "speed limit, sent as VM")
            .unit("mm/s")
            .range(Range::above(0.0))
            .default("5"),
    )
    .param(
        ParamSpec::new(
            "acceleration",
            T::Float,
            "acceleration and deceleration, sent as A and D",
        )
        .unit("mm/s^2")
        .range(Range::above(0.0))
        .default("20"),
    )
    .param(
        ParamSpec::new(
            "device_name",
            T::Str,
            "party mode: the drive's device name (DN), one letter or digit",
        )
        .optional(),
    )
}

/// JVL MAC: 19 200 baud, 8N1 (MacTalk Serial Quick Guide, as the driver's docs).
const JVL: SerialDefaults = SerialDefaults::n81(Some(19200));

fn build_jvl(p: &Params, offline: bool) -> Result<Device, String> {
    use crabby_hardware::serial::JvlMac;
    let serial = serial_config(p, offline, JVL)?;
    let mut d = JvlMac::new(
        p.str("name").unwrap_or("JvlMac"),
        serial,
        p.f64("counts_per_unit").unwrap_or(1.0),
    )
    .address(p.i64("address").unwrap_or(254) as u8) // 1..=254 by the declared range
    .sample_period_s(p.f64("sample_period").unwrap_or(1.92e-3));
    if let Some(a) = p.f64("acceleration") {
        d = d.acceleration(a);
    }
    if let Some(v) = p.f64("default_speed") {
        d = d.default_speed(v);
    }
    Ok(Device::Actuator(ActuatorDevice::full(d)))
}

/// `serial::JvlMac`: a JVL MAC integrated servo motor (MacTalk protocol).
pub fn jvl_mac() -> DriverType {
    serial_driver(
        "JvlMac",
        "a JVL MAC integrated servo motor over MacTalk, in the user's unit (counts_per_unit)",
        DriverKind::Actuator,
        "the serial device path, e.g. /dev/ttyUSB0",
        JVL,
        build_jvl,
    )
    .param(
        ParamSpec::new("address", T::Int, "the motor's address (MYADDR), 1-254")
            .range(Range::between(1.0, 254.0))
            .default("254"),
    )
    .param(ParamSpec::new(
        "counts_per_unit",
        T::Float,
        "encoder counts per user unit (e.g. 819.2 for 4096 counts per turn on a 5 mm screw: mm); not 0",
    ))
    .param(
        ParamSpec::new(
            "sample_period",
            T::Float,
            "the motor's sample period: 1.92 ms for MAC050-141, 1.3 ms for MAC400-4500",
        )
        .unit("s")
        .range(Range {
            min: Some((0.0, false)),
            max: Some((0.01, true)),
        })
        .default("1.92e-3"),
    )
    .param(
        ParamSpec::new(
            "acceleration",
            T::Float,
            "acceleration, units/s² (default: 100 000 counts/s² in units)",
        )
        .range(Range::above(0.0))
        .optional(),
    )
    .param(
        ParamSpec::new(
            "default_speed",
            T::Float,
            "speed of position moves without one, units/s (default: 10 000 counts/s in units)",
        )
        .range(Range::above(0.0))
        .optional(),
    )
}

/// UController boards: 115 200 baud (the driver's example and board script).
const UCONTROLLER: SerialDefaults = SerialDefaults::n81(Some(115200));

fn build_ucontroller(p: &Params, offline: bool) -> Result<Device, String> {
    use crabby_hardware::serial::UController;
    let serial = serial_config(p, offline, UCONTROLLER)?;
    let mut d = UController::new(p.str("name").unwrap_or("UController"), serial)
        .labels(p.strs("labels").unwrap_or_default())
        .cmd_labels(p.strs("cmd_labels").unwrap_or_default())
        .t_device(p.bool("t_device").unwrap_or(false))
        .recover_resets(p.bool("recover_resets").unwrap_or(false));
    if let Some(v) = p.f64s("init_output") {
        d = d.init_output(v);
    }
    Ok(Device::InOut(IoDevice::full(d)))
}

/// `serial::UController`: a board running Crappy's UController protocol.
pub fn ucontroller() -> DriverType {
    serial_driver(
        "UController",
        "a microcontroller board speaking Crappy's UController protocol (e.g. a Pico running hardware/boards/crabby_ucontroller.py)",
        DriverKind::InOut,
        "the serial device path, e.g. /dev/ttyACM0",
        UCONTROLLER,
        build_ucontroller,
    )
    .param(
        ParamSpec::new(
            "labels",
            T::List(Box::new(T::Label)),
            "the labels the board sends, in its order (at most 9)",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "cmd_labels",
            T::List(Box::new(T::Str)),
            "the board script's command variables, in the order of the commands (at most 9)",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "init_output",
            T::List(Box::new(T::Float)),
            "each label's value until the board sends one (default 0)",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "t_device",
            T::Bool,
            "stamp the samples with the board's clock (t(s) sent by the board)",
        )
        .default("false"),
    )
    .param(
        ParamSpec::new(
            "recover_resets",
            T::Bool,
            "after a silence of one timeout, send the handshake again once before failing",
        )
        .default("false"),
    )
}

fn build_t7(p: &Params) -> Result<Device, String> {
    use crabby_hardware::labjack::T7;
    let mut d = T7::tcp(
        p.str("name").unwrap_or("T7"),
        p.str("address").unwrap_or_default(),
    )
    .timeout(super::seconds(p.f64("timeout").unwrap_or(1.0)))
    .retries(p.i64("retries").unwrap_or(2) as u32);
    for c in p.list("ains").unwrap_or_default() {
        if let Value::Table(q) = &c.value {
            d = d.ain_range(
                q.str("label").unwrap_or_default(),
                q.i64("channel").unwrap_or(0) as u8, // 0..=13 by the declared range
                q.f64("range").unwrap_or(10.0),
            );
        }
    }
    for c in p.list("dacs").unwrap_or_default() {
        if let Some(n) = c.as_f64() {
            d = d.dac(n as u8); // 0..=1 by the declared range
        }
    }
    for c in p.list("dio_outputs").unwrap_or_default() {
        if let Some(n) = c.as_f64() {
            d = d.dio_output(n as u8); // 0..=15 by the declared range
        }
    }
    if let Some(l) = p.str("dio_state") {
        d = d.dio_state(l);
    }
    Ok(Device::InOut(IoDevice::input_output(d)))
}

/// `labjack::T7`: a LabJack T7 on Modbus TCP.
pub fn labjack_t7() -> DriverType {
    DriverType::new(
        "T7",
        "a LabJack T7 DAQ on Modbus TCP: analog inputs (V), DACs (0-5 V) and digital lines",
        DriverKind::InOut,
        build_t7,
    )
    .param(name_param("T7"))
    .param(ParamSpec::new(
        "address",
        T::Str,
        "host:port of the T7 (502 is its Modbus port), e.g. 192.168.1.207:502",
    ))
    .param(
        ParamSpec::new(
            "timeout",
            T::Float,
            "how long to wait for a connection or an answer",
        )
        .unit("s")
        .range(Range {
            min: Some((0.0, false)),
            max: Some((60.0, true)),
        })
        .default("1"),
    )
    .param(retries_param())
    .param(
        ParamSpec::new(
            "ains",
            T::List(Box::new(T::Table(vec![
                ParamSpec::new("label", T::Label, "the reading's label (volts)"),
                ParamSpec::new("channel", T::Int, "AIN0-AIN13").range(Range::between(0.0, 13.0)),
                ParamSpec::new(
                    "range",
                    T::Float,
                    "input range, ± volts: 10, 1, 0.1 or 0.01",
                )
                .unit("V")
                .default("10"),
            ]))),
            "the analog inputs read every loop, in this order",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "dacs",
            T::List(Box::new(T::Int)),
            "DAC0/DAC1 written, in command order (volts, 0-5)",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "dio_outputs",
            T::List(Box::new(T::Int)),
            "digital lines driven after the DACs (0-7 FIO0-7, 8-15 EIO0-7), 0 or 1",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "dio_state",
            T::Label,
            "read the 16 FIO/EIO lines as one number under this label",
        )
        .optional(),
    )
}

/// Eurotherm 3200: 8 data bits, 1 stop bit, no parity, 1200-19200 baud (the driver's
/// docs); 9600 as its example.
const EUROTHERM: SerialDefaults = SerialDefaults::n81(Some(9600));

fn build_eurotherm(p: &Params, offline: bool) -> Result<Device, String> {
    use crabby_hardware::eurotherm::Eurotherm3200;
    let serial = serial_config(p, offline, EUROTHERM)?;
    let mut d = Eurotherm3200::new(p.str("name").unwrap_or("Eurotherm3200"), serial)
        .unit(p.i64("unit").unwrap_or(1) as u8) // 1..=247 by the declared range
        .decimals(p.i64("decimals").unwrap_or(1) as u8) // 0..=2
        .setpoint_limits(
            p.f64("setpoint_min").unwrap_or(0.0),
            p.f64("setpoint_max").unwrap_or(1200.0),
        )
        .retries(p.i64("retries").unwrap_or(2) as u32);
    d.output_decimals = p.i64("output_decimals").unwrap_or(1) as u8; // 0..=2
    if let Some(l) = p.strs("labels") {
        let [pv, sp, op, st] = l.as_slice() else {
            return Err(param_error(
                "labels",
                format!(
                    "{} labels; give four: process value, working setpoint, working output, status",
                    l.len()
                ),
            ));
        };
        d = d.labels(pv, sp, op, st);
    }
    Ok(Device::InOut(IoDevice::input_output(d)))
}

/// `eurotherm::Eurotherm3200`: a Eurotherm 3200 temperature controller on Modbus RTU.
pub fn eurotherm_3200() -> DriverType {
    serial_driver(
        "Eurotherm3200",
        "a Eurotherm 3200 temperature controller on Modbus RTU: reads T(C), SP(C), OP(%), status; the command is the setpoint",
        DriverKind::InOut,
        "the serial device path, e.g. /dev/ttyUSB0",
        EUROTHERM,
        build_eurotherm,
    )
    .param(rtu_unit_param())
    .param(retries_param())
    .param(
        ParamSpec::new(
            "decimals",
            T::Int,
            "decimals of temperatures on the wire: the controller's display resolution (dEC.P)",
        )
        .range(Range::between(0.0, 2.0))
        .default("1"),
    )
    .param(
        ParamSpec::new("output_decimals", T::Int, "decimals of the output power on the wire")
            .range(Range::between(0.0, 2.0))
            .default("1"),
    )
    .param(
        ParamSpec::new("setpoint_min", T::Float, "lowest setpoint this driver writes")
            .unit("°C")
            .default("0"),
    )
    .param(
        ParamSpec::new("setpoint_max", T::Float, "highest setpoint this driver writes")
            .unit("°C")
            .default("1200"),
    )
    .param(
        ParamSpec::new(
            "labels",
            T::List(Box::new(T::Label)),
            "labels of process value, working setpoint, working output, status (default T(C), SP(C), OP(%), status)",
        )
        .optional(),
    )
}

/// Oriental AZ: 8 data bits, even parity, 1 stop bit (the open-source drivers the driver
/// cites); 115 200 baud as its example.
const ORIENTAL_AZ: SerialDefaults = SerialDefaults {
    baud: Some(115200),
    parity: Parity::Even,
    stop_bits: 1,
};

fn build_az(p: &Params, offline: bool) -> Result<Device, String> {
    use crabby_hardware::oriental::AzMotor;
    let serial = serial_config(p, offline, ORIENTAL_AZ)?;
    let mut d = AzMotor::new(p.str("name").unwrap_or("AzMotor"), serial)
        .unit(p.i64("unit").unwrap_or(1) as u8) // 1..=247 by the declared range
        .steps_per_mm(p.f64("steps_per_mm").unwrap_or(1000.0))
        .accel(p.f64("acceleration").unwrap_or(100.0))
        .current(p.f64("current").unwrap_or(100.0))
        .travel(
            p.f64("travel_min").unwrap_or(-100.0),
            p.f64("travel_max").unwrap_or(100.0),
        )
        .max_speed(p.f64("max_speed").unwrap_or(10.0))
        .retries(p.i64("retries").unwrap_or(2) as u32);
    if let Some(v) = p.f64("default_speed") {
        d.default_speed = v;
    }
    Ok(Device::Actuator(ActuatorDevice::full(d)))
}

/// `oriental::AzMotor`: an Oriental Motor AZ driver on Modbus RTU, mm and mm/s.
pub fn oriental_az() -> DriverType {
    serial_driver(
        "AzMotor",
        "an Oriental Motor AZ series driver on Modbus RTU (direct data operation), mm and mm/s",
        DriverKind::Actuator,
        "the serial device path, e.g. /dev/ttyUSB0",
        ORIENTAL_AZ,
        build_az,
    )
    .param(rtu_unit_param())
    .param(retries_param())
    .param(
        ParamSpec::new(
            "steps_per_mm",
            T::Float,
            "steps per mm: the driver's resolution over the mechanism's lead",
        )
        .range(Range::above(0.0))
        .default("1000"),
    )
    .param(
        ParamSpec::new("acceleration", T::Float, "acceleration and deceleration")
            .unit("mm/s^2")
            .range(Range::above(0.0))
            .default("100"),
    )
    .param(
        ParamSpec::new(
            "current",
            T::Float,
            "operating current, % of the rated current",
        )
        .range(Range {
            min: Some((0.0, false)),
            max: Some((100.0, true)),
        })
        .default("100"),
    )
    .param(
        ParamSpec::new(
            "travel_min",
            T::Float,
            "travel, lower end: positions below are refused",
        )
        .unit("mm")
        .default("-100"),
    )
    .param(
        ParamSpec::new(
            "travel_max",
            T::Float,
            "travel, upper end: positions above are refused",
        )
        .unit("mm")
        .default("100"),
    )
    .param(
        ParamSpec::new("max_speed", T::Float, "the highest speed accepted")
            .unit("mm/s")
            .range(Range::above(0.0))
            .default("10"),
    )
    .param(
        ParamSpec::new(
            "default_speed",
            T::Float,
            "speed of position moves without one (default 5, at most max_speed)",
        )
        .unit("mm/s")
        .range(Range::above(0.0))
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
