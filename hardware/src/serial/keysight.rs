//! [`Keysight34420A`]: the Keysight (formerly Agilent/HP) 34420A nanovolt/micro-ohm meter on
//! its RS-232 port, an `Input` of one channel, built on [`ScpiInOut`] (identity check,
//! error queue, overload handling); the simulator its tests play is
//! [`sim::Nanovoltmeter34420A`].
//!
//! Source: *Keysight 34420A 7½ Digit Nano Volt/Micro Ohm Meter User's Guide* (formerly
//! *Agilent 34420A User's Guide*), chapter 4 "Remote Interface Reference" and chapter 3
//! "Features and Functions". Commands used, with where the guide describes them:
//! - `*IDN?`, `*CLS`: chapter 4, "IEEE-488.2 Common Commands" (via [`ScpiInOut`]).
//! - `SYSTem:REMote`: puts the meter in the remote state for RS-232 operation (sent at
//!   open). Cited from the sibling *Agilent 34401A User's Guide*, chapter 4 "RS-232
//!   Interface Commands"; the 34420A guide's page for it was not opened here.
//! - `CONFigure:VOLTage:DC {<range>|DEF},DEF,(@FRONt1|@FRONt2)` and `CONFigure:FRESistance`:
//!   chapter 4, "Using the MEASure? and CONFigure Commands"; the channel list form is
//!   chapter 3, "Two Channel Measurements" (`CONF:VOLT:DC DEF,DEF,(@FRONt2)`).
//! - `SENSe1:VOLTage:DC:NPLC` / `SENSe2:…` / `FRESistance:NPLC` with 0.02, 0.2, 1, 2, 10,
//!   20, 100, 200 power-line cycles: chapter 4, the integration-time table under "Using the
//!   MEASure? and CONFigure Commands" (resolution < 0.0001 × range at 0.02 PLC … < 0.00000022
//!   × range at 200 PLC), which the simulator uses for its noise.
//! - `READ?` (= `INITiate` + `FETCh?` without storing the readings), `MEASure:…?`, `INITiate`,
//!   `FETCh?`: chapter 4, "Using the READ? Command" and "Triggering".
//! - `SYSTem:ERRor?`: chapter 4, "Error Messages" / chapter 5 "Error Messages" (via
//!   [`ScpiInOut`]).
//! - Readings on RS-232 are `SD.DDDDDDDDESDD<cr><nl>`: chapter 4, "Output Data Formats";
//!   the `<cr>` is trimmed.
//! - Ranges: channel 1 (and 2) voltage 1 mV, 10 mV, 100 mV, 1 V, 10 V, 100 V (channel 2 at
//!   most 10 V: chapter 2 "To Make Voltage Ratio and Difference Measurements", maximum
//!   input 12 V on channel 2; *34420A Service Guide* "Theory of Operation": "The maximum
//!   range on Channel 2 input is 10 V"); 4-wire resistance 1 Ω to 1 MΩ in decades (the
//!   resistance ranges and the `FRESistance` mnemonics were not checked against the guide's
//!   pages: the voltage path is the one cited line by line). An input beyond
//!   120 % of the range reads `+9.90000000E+37` (overload), which [`ScpiInOut`] turns into
//!   NaN and an ALARM status.
//!
//! The meter's RS-232 framing is 8 data bits without parity or 7 with even parity, two stop
//! bits, DTR/DSR handshake (chapter 4, "RS-232 Interface Configuration"): set the
//! [`SerialConfig`] framing to match (`StopBits::Two`).

use super::scpi::ScpiInOut;
use super::SerialConfig;
use crabby::hardware::{InOut, Input, Reading, Status};
use crabby::{Error, Result};

/// The integration times the 34420A accepts, in power-line cycles.
pub const NPLC_VALUES: [f64; 8] = [0.02, 0.2, 1.0, 2.0, 10.0, 20.0, 100.0, 200.0];

/// The DC voltage ranges of channel 1, in volts (channel 2: up to 10 V).
pub const VOLTAGE_RANGES: [f64; 6] = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0];

/// The 4-wire resistance ranges, in ohms.
pub const RESISTANCE_RANGES: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];

/// What the meter measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function34420A {
    /// DC voltage on input channel 1 or 2.
    VoltageDc {
        /// 1 or 2.
        channel: u8,
    },
    /// 4-wire resistance (channel 1 sources, channel 2 senses).
    FourWireResistance,
}

/// A Keysight/Agilent 34420A on RS-232, reading one value per [`Input::read`].
///
/// ```no_run
/// use crabby_hardware::serial::{Keysight34420A, SerialConfig, StopBits, DataBits, Parity};
/// let nvm = Keysight34420A::new(
///     "nvm",
///     SerialConfig::new("/dev/ttyUSB0", 9600)
///         .framing(DataBits::Eight, Parity::None, StopBits::Two),
///     "U(V)",
/// )
/// .range(Some(0.01))
/// .nplc(10.0);
/// ```
#[derive(Debug)]
pub struct Keysight34420A {
    scpi: ScpiInOut,
    /// What is measured (default DC voltage on channel 1).
    pub function: Function34420A,
    /// Range (V or Ω), `None` for autorange.
    pub range: Option<f64>,
    /// Integration time in power-line cycles (one of [`NPLC_VALUES`]; default 1).
    pub nplc: f64,
}

impl Keysight34420A {
    /// A meter on `serial`, its reading labelled `label`.
    pub fn new(name: impl Into<String>, serial: SerialConfig, label: impl Into<String>) -> Self {
        let scpi = ScpiInOut::new(name, serial)
            .identity("34420A")
            .measure(label, "READ?")
            .init(["*CLS", "SYST:REM"]);
        Keysight34420A {
            scpi,
            function: Function34420A::VoltageDc { channel: 1 },
            range: None,
            nplc: 1.0,
        }
    }
    /// Sets the function.
    pub fn function(mut self, f: Function34420A) -> Self {
        self.function = f;
        self
    }
    /// Sets the range (`None`: autorange).
    pub fn range(mut self, r: Option<f64>) -> Self {
        self.range = r;
        self
    }
    /// Sets the integration time (power-line cycles).
    pub fn nplc(mut self, n: f64) -> Self {
        self.nplc = n;
        self
    }

    /// The `*IDN?` answer, once open.
    pub fn idn(&self) -> &str {
        self.scpi.idn()
    }

    /// The configuration lines sent at open, in order.
    pub fn config_lines(&self) -> Vec<String> {
        let range = self
            .range
            .map(|r| format!("{r:E}"))
            .unwrap_or_else(|| "DEF".into());
        match self.function {
            Function34420A::VoltageDc { channel } => vec![
                format!("CONF:VOLT:DC {range},DEF,(@FRONt{channel})"),
                format!("SENS{channel}:VOLT:DC:NPLC {}", self.nplc),
            ],
            Function34420A::FourWireResistance => vec![
                format!("CONF:FRES {range},DEF"),
                format!("FRES:NPLC {}", self.nplc),
            ],
        }
    }

    /// Sends one command and reads the error queue: the meter's refusal is the error
    /// (−113 undefined header: Configuration; −222 data out of range: OutOfRange).
    pub fn command(&mut self, line: &str) -> Result<()> {
        self.scpi.command_checked(line)
    }

    /// One reading with `READ?` (the configured function, range and integration time).
    pub fn read_value(&mut self) -> Result<f64> {
        Ok(self.scpi.read()?.values[0])
    }

    /// One reading with `MEASure:VOLTage:DC?` (autorange, default resolution: changes the
    /// configuration, as the guide says of `MEASure?`).
    pub fn measure_voltage(&mut self) -> Result<f64> {
        let r = self.scpi.query("MEAS:VOLT:DC?");
        let a = self.scpi.fault(r)?;
        self.parse(&a, "MEAS:VOLT:DC?")
    }

    /// `INITiate` then `FETCh?`: the reading taken at `INIT`, sent when asked.
    pub fn initiate_and_fetch(&mut self) -> Result<f64> {
        self.command("INIT")?;
        let r = self.scpi.query("FETC?");
        let a = self.scpi.fault(r)?;
        let v = self.parse(&a, "FETC?")?;
        Ok(v)
    }

    /// Reads the whole error queue: `Ok` if empty, else the errors (see [`command`]).
    ///
    /// [`command`]: Self::command
    pub fn errors(&mut self) -> Result<()> {
        self.scpi.check_error_queue("the previous commands")
    }

    fn parse(&self, a: &str, q: &str) -> Result<f64> {
        let v: f64 = a.parse().map_err(|_| {
            Error::new(
                crabby::ErrorKind::Communication,
                format!("the meter answered {a:?} to {q}, not a number"),
            )
            .with_origin(&self.scpi.name)
        })?;
        Ok(if v.abs() >= 9.8e37 { f64::NAN } else { v })
    }
}

impl InOut for Keysight34420A {
    fn name(&self) -> &str {
        &self.scpi.name
    }
    fn channels(&self) -> Vec<String> {
        self.scpi.channels()
    }
    fn check(&self) -> Result<()> {
        self.scpi.check()?;
        let name = &self.scpi.name;
        if !NPLC_VALUES.contains(&self.nplc) {
            return Err(Error::config(format!(
                "nplc {} is not one the 34420A accepts; use one of {NPLC_VALUES:?} power-line cycles",
                self.nplc
            ))
            .with_origin(name));
        }
        let ranges: &[f64] = match self.function {
            Function34420A::VoltageDc { channel: 1 } => &VOLTAGE_RANGES,
            Function34420A::VoltageDc { channel: 2 } => &VOLTAGE_RANGES[..5],
            Function34420A::VoltageDc { channel } => {
                return Err(Error::config(format!(
                    "input channel {channel} does not exist; the 34420A has channels 1 and 2"
                ))
                .with_origin(name))
            }
            Function34420A::FourWireResistance => &RESISTANCE_RANGES,
        };
        if let Some(r) = self.range {
            if !ranges.iter().any(|x| (x - r).abs() <= 1e-12 * x) {
                return Err(Error::config(format!(
                    "range {r} is not a range of {:?} on the 34420A; use one of {ranges:?} or None (autorange)",
                    self.function
                ))
                .with_origin(name));
            }
        }
        Ok(())
    }
    /// Opens the port, checks `*IDN?` names a 34420A, clears the status, enters remote,
    /// configures the function, range and integration time, and checks the error queue.
    fn open(&mut self) -> Result<()> {
        self.scpi.open()?;
        for l in self.config_lines() {
            if let Err(e) = self.command(&l) {
                let _ = self.scpi.close();
                return Err(e);
            }
        }
        Ok(())
    }
    fn close(&mut self) -> Result<()> {
        self.scpi.close()
    }
    fn status(&self) -> Status {
        self.scpi.status()
    }
}

impl Input for Keysight34420A {
    /// One `READ?` (the configured function, range and integration time).
    fn read(&mut self) -> Result<Reading> {
        self.scpi.read()
    }
}

pub mod sim {
    //! [`Nanovoltmeter34420A`]: a simulated 34420A answering the SCPI subset the driver
    //! uses, with a measured signal whose noise follows the integration time.
    use super::super::sim::{LineDevice, Noise};
    use super::{NPLC_VALUES, RESISTANCE_RANGES, VOLTAGE_RANGES};
    use std::collections::VecDeque;
    use std::time::{Duration, Instant};

    /// The resolution the guide gives for each integration time, as a fraction of the range
    /// (chapter 4, table under "Using the MEASure? and CONFigure Commands").
    const RESOLUTION: [(f64, f64); 8] = [
        (0.02, 1e-4),
        (0.2, 1e-5),
        (1.0, 3e-6),
        (2.0, 2.2e-6),
        (10.0, 1e-6),
        (20.0, 8e-7),
        (100.0, 3e-7),
        (200.0, 2.2e-7),
    ];

    /// The error queue's depth (past it, the last entry becomes −350 "Queue overflow").
    const QUEUE: usize = 20;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Func {
        Volt(u8),
        Fres,
    }

    /// A simulated 34420A: a DC signal (`signal_v` on channel 1, `signal2_v` on channel 2,
    /// `resistance_ohm` for 4-wire resistance) plus Gaussian noise of one resolution step
    /// for the integration time (so 0.02 PLC is ~450× noisier than 200 PLC); each reading
    /// takes its integration time (`nplc / line_hz`). Answers `*IDN?`, `*CLS`, `*RST`,
    /// `SYST:REM`, `SYST:LOC`, `SYST:ERR?`, `CONF:VOLT:DC`, `CONF:FRES`,
    /// `SENS[1|2]:VOLT:DC:NPLC`, `SENS[1|2]:VOLT:DC:RANG`, `FRES:NPLC`, `READ?`,
    /// `MEAS:VOLT:DC?`, `INIT`, `FETC?`, in short or long form, any case; anything else
    /// queues −113 "Undefined header", a bad value −222 "Data out of range", a missing one
    /// −109 "Missing parameter", `FETC?` without `INIT` −230 "Data stale".
    #[derive(Debug)]
    pub struct Nanovoltmeter34420A {
        /// The `*IDN?` answer.
        pub idn: String,
        /// The true voltage on channel 1, V.
        pub signal_v: f64,
        /// The true voltage on channel 2, V.
        pub signal2_v: f64,
        /// The true resistance, Ω.
        pub resistance_ohm: f64,
        /// Mains frequency, Hz (integration time per PLC).
        pub line_hz: f64,
        /// In the remote state (after `SYST:REM`).
        pub remote: bool,
        func: Func,
        range: Option<f64>,
        nplc: [f64; 3],
        fetched: Option<f64>,
        errors: VecDeque<(i32, &'static str)>,
        noise: Noise,
        /// Every request received, for tests.
        pub log: Vec<String>,
    }

    impl Nanovoltmeter34420A {
        /// A meter measuring `signal_v` volts on channel 1, noise seeded with `seed`.
        pub fn new(signal_v: f64, seed: u64) -> Self {
            Nanovoltmeter34420A {
                idn: "HEWLETT-PACKARD,34420A,0,SIM-1".into(),
                signal_v,
                signal2_v: 0.0,
                resistance_ohm: 100.0,
                line_hz: 50.0,
                remote: false,
                func: Func::Volt(1),
                range: None,
                nplc: [1.0; 3],
                fetched: None,
                errors: VecDeque::new(),
                noise: Noise::new(seed),
                log: Vec::new(),
            }
        }

        fn push_error(&mut self, code: i32, text: &'static str) {
            if self.errors.len() >= QUEUE {
                if let Some(last) = self.errors.back_mut() {
                    *last = (-350, "Queue overflow");
                }
                return;
            }
            self.errors.push_back((code, text));
        }

        fn true_value(&self) -> f64 {
            match self.func {
                Func::Volt(1) => self.signal_v,
                Func::Volt(_) => self.signal2_v,
                Func::Fres => self.resistance_ohm,
            }
        }

        fn ranges(&self) -> &'static [f64] {
            match self.func {
                Func::Volt(1) => &VOLTAGE_RANGES,
                Func::Volt(_) => &VOLTAGE_RANGES[..5],
                Func::Fres => &RESISTANCE_RANGES,
            }
        }

        fn nplc_now(&self) -> f64 {
            match self.func {
                Func::Volt(c) => self.nplc[c as usize],
                Func::Fres => self.nplc[0],
            }
        }

        /// One measurement: integrates for `nplc / line_hz`, then the value with noise, or
        /// the overload value beyond 120 % of the range.
        fn measure(&mut self) -> f64 {
            let nplc = self.nplc_now();
            let t = Instant::now() + Duration::from_secs_f64(nplc / self.line_hz);
            while Instant::now() < t {
                std::thread::sleep(t.saturating_duration_since(Instant::now()));
            }
            let v = self.true_value();
            let ranges = self.ranges();
            let range = self.range.unwrap_or_else(|| {
                *ranges
                    .iter()
                    .find(|r| v.abs() <= 1.2 * **r)
                    .unwrap_or(ranges.last().unwrap_or(&1.0))
            });
            if v.abs() > 1.2 * range {
                return 9.9e37;
            }
            let res = RESOLUTION
                .iter()
                .find(|(n, _)| *n == nplc)
                .map(|(_, r)| *r)
                .unwrap_or(3e-6);
            v + self.noise.gauss() * res * range
        }

        /// `SD.DDDDDDDDESDD` (chapter 4, "Output Data Formats").
        pub fn format_reading(v: f64) -> String {
            if v == 0.0 {
                return "+0.00000000E+00".into();
            }
            let e = v.abs().log10().floor() as i32;
            let mut m = v / 10f64.powi(e);
            let mut e = e;
            if m.abs() >= 9.999_999_995 {
                m /= 10.0;
                e += 1;
            }
            format!(
                "{}{:.8}E{}{:02}",
                if m < 0.0 { '-' } else { '+' },
                m.abs(),
                if e < 0 { '-' } else { '+' },
                e.abs()
            )
        }

        fn answer(s: String) -> Option<Vec<u8>> {
            let mut b = s.into_bytes();
            b.extend_from_slice(b"\r\n");
            Some(b)
        }
    }

    /// Whether `word` is the short or long form of the mnemonic `long` (upper case part is
    /// the short form, SCPI-1999 Vol. 1 §6.2.1), with an optional numeric suffix in `suffix`.
    fn is(word: &str, short: &str, long: &str) -> bool {
        word == short || word == long
    }

    fn split_suffix(word: &str) -> (&str, Option<u8>) {
        let i = word
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(word.len());
        (&word[..i], word[i..].parse().ok())
    }

    impl LineDevice for Nanovoltmeter34420A {
        fn request_ending(&self) -> &'static [u8] {
            b"\n"
        }

        fn handle(&mut self, request: &str) -> Option<Vec<u8>> {
            let req = request.trim().to_ascii_uppercase();
            self.log.push(req.clone());
            let (header, args) = match req.split_once(' ') {
                Some((h, a)) => (h.to_owned(), a.trim().to_owned()),
                None => (req.clone(), String::new()),
            };
            let words: Vec<&str> = header.trim_start_matches(':').split(':').collect();
            let arg0 = args.split(',').next().unwrap_or("").trim().to_owned();
            match words.as_slice() {
                ["*IDN?"] => return Self::answer(self.idn.clone()),
                ["*CLS"] => self.errors.clear(),
                ["*RST"] => {
                    self.func = Func::Volt(1);
                    self.range = None;
                    self.nplc = [1.0; 3];
                }
                [s, r] if is(s, "SYST", "SYSTEM") && is(r, "REM", "REMOTE") => self.remote = true,
                [s, r] if is(s, "SYST", "SYSTEM") && is(r, "LOC", "LOCAL") => self.remote = false,
                [s, e] if is(s, "SYST", "SYSTEM") && is(e, "ERR?", "ERROR?") => {
                    let (c, t) = self.errors.pop_front().unwrap_or((0, "No error"));
                    return Self::answer(format!("{c:+},\"{t}\""));
                }
                [c, v, d]
                    if is(c, "CONF", "CONFIGURE") && is(v, "VOLT", "VOLTAGE") && d == &"DC" =>
                {
                    let ch = if args.contains("FRONT2") { 2 } else { 1 };
                    self.func = Func::Volt(ch);
                    self.set_range(&arg0);
                }
                [c, f] if is(c, "CONF", "CONFIGURE") && is(f, "FRES", "FRESISTANCE") => {
                    self.func = Func::Fres;
                    self.set_range(&arg0);
                }
                [s, v, d, n]
                    if is(split_suffix(s).0, "SENS", "SENSE")
                        && is(v, "VOLT", "VOLTAGE")
                        && d == &"DC" =>
                {
                    let ch = split_suffix(s).1.unwrap_or(1);
                    if !(1..=2).contains(&ch) {
                        self.push_error(-114, "Header suffix out of range");
                    } else if *n == "NPLC" || is(n, "NPLC", "NPLCYCLES") {
                        self.set_nplc(ch as usize, &arg0);
                    } else if is(n, "RANG", "RANGE") {
                        self.func = Func::Volt(ch);
                        self.set_range(&arg0);
                    } else {
                        self.push_error(-113, "Undefined header");
                    }
                }
                [f, n] if is(f, "FRES", "FRESISTANCE") && is(n, "NPLC", "NPLCYCLES") => {
                    self.set_nplc(0, &arg0)
                }
                ["READ?"] => {
                    let v = self.measure();
                    return Self::answer(Self::format_reading(v));
                }
                [m, v, d]
                    if is(m, "MEAS", "MEASURE") && is(v, "VOLT", "VOLTAGE") && d == &"DC?" =>
                {
                    self.func = Func::Volt(if args.contains("FRONT2") { 2 } else { 1 });
                    self.range = None;
                    let v = self.measure();
                    return Self::answer(Self::format_reading(v));
                }
                [i] if is(i, "INIT", "INITIATE") => self.fetched = Some(self.measure()),
                [f] if is(f, "FETC?", "FETCH?") => match self.fetched {
                    Some(v) => return Self::answer(Self::format_reading(v)),
                    None => self.push_error(-230, "Data stale"),
                },
                _ => self.push_error(-113, "Undefined header"),
            }
            None
        }
    }

    impl Nanovoltmeter34420A {
        fn set_range(&mut self, arg: &str) {
            if arg.is_empty() || arg == "DEF" || arg == "AUTO" {
                self.range = None;
                return;
            }
            match arg.parse::<f64>() {
                Ok(r) => match self.ranges().iter().find(|x| r <= **x * 1.000_001) {
                    Some(x) => self.range = Some(*x),
                    None => self.push_error(-222, "Data out of range"),
                },
                Err(_) => self.push_error(-222, "Data out of range"),
            }
        }

        fn set_nplc(&mut self, i: usize, arg: &str) {
            if arg.is_empty() {
                return self.push_error(-109, "Missing parameter");
            }
            match arg.parse::<f64>() {
                Ok(n) if NPLC_VALUES.contains(&n) => self.nplc[i] = n,
                _ => self.push_error(-222, "Data out of range"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::sim::LineDevice;
    use super::super::testing::FakePort;
    use super::sim::Nanovoltmeter34420A;
    use super::*;
    use crabby::hardware::DeviceState;
    use crabby::ErrorKind;
    use std::time::Duration;

    fn meter(p: &FakePort) -> Keysight34420A {
        Keysight34420A::new(
            "nvm",
            SerialConfig::new(&p.path, 9600).timeout(Duration::from_millis(500)),
            "U(V)",
        )
    }

    fn std_dev(v: &[f64]) -> f64 {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    }

    #[test]
    fn configures_then_reads_with_noise_that_follows_nplc() {
        let p = FakePort::new();
        let mut d = meter(&p).range(Some(0.01)).nplc(0.02);
        d.check().unwrap();
        let (_p, sim) = p.play(Nanovoltmeter34420A::new(1.5e-3, 7));
        d.open().unwrap();
        assert!(d.idn().contains("34420A"));
        let log = sim.with(|s| s.log.clone());
        assert_eq!(
            log,
            [
                "*IDN?",
                "*CLS",
                "SYST:REM",
                "CONF:VOLT:DC 1E-2,DEF,(@FRONT1)",
                "SYST:ERR?",
                "SENS1:VOLT:DC:NPLC 0.02",
                "SYST:ERR?"
            ]
        );
        assert!(sim.with(|s| s.remote));
        let fast: Vec<f64> = (0..40).map(|_| d.read().unwrap().values[0]).collect();
        assert!(fast.iter().all(|v| (v - 1.5e-3).abs() < 1e-5), "{fast:?}");
        // A hundred times the integration time per reading: less noise (the guide's table).
        d.command("SENS1:VOLT:DC:NPLC 2").unwrap();
        let slow: Vec<f64> = (0..40).map(|_| d.read_value().unwrap()).collect();
        let (sf, ss) = (std_dev(&fast), std_dev(&slow));
        assert!(sf > 20.0 * ss, "σ at 0.02 PLC {sf:e} vs 2 PLC {ss:e}");
        assert_eq!(d.status().state, DeviceState::On);
        // INIT then FETC?, MEAS?.
        let f = d.initiate_and_fetch().unwrap();
        assert!((f - 1.5e-3).abs() < 1e-6, "{f}");
        let m = d.measure_voltage().unwrap();
        assert!((m - 1.5e-3).abs() < 1e-5, "{m}");
        d.errors().unwrap();
        d.close().unwrap();
        assert_eq!(d.status().state, DeviceState::Off);
    }

    #[test]
    fn every_error_the_meter_queues_is_reported_with_its_kind() {
        let p = FakePort::new();
        let mut d = meter(&p);
        let (_p, sim) = p.play(Nanovoltmeter34420A::new(0.5, 1));
        d.open().unwrap();
        // -113 undefined header: Configuration.
        let e = d.command("VOLT:FOO 1").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
        assert!(e.description().contains("-113"), "{e}");
        // -222 data out of range: OutOfRange.
        let e = d.command("SENS1:VOLT:DC:NPLC 7").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfRange, "{e}");
        // -109 missing parameter: Configuration.
        let e = d.command("SENS1:VOLT:DC:NPLC").unwrap_err();
        assert!(e.description().contains("-109"), "{e}");
        // -230 data stale (FETC? before any INIT): the meter does not answer; the driver
        // times out, then the queue names the cause.
        let e = d.scpi.query("FETC?").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        let e = d.errors().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAllowed, "{e}");
        assert!(e.description().contains("Data stale"), "{e}");
        // A full queue: 21 errors, the last one is -350.
        sim.with(|s| {
            for _ in 0..25 {
                s.handle("BOGUS");
            }
        });
        let e = d.errors().unwrap_err();
        assert!(e.description().contains("-350"), "{e}");
        // Overload: beyond 120 % of the range reads NaN, status ALARM, then back.
        d.command("SENS1:VOLT:DC:RANG 0.1").unwrap();
        assert!(d.read().unwrap().values[0].is_nan());
        assert_eq!(d.status().state, DeviceState::Alarm);
        sim.with(|s| s.signal_v = 0.05);
        assert!((d.read().unwrap().values[0] - 0.05).abs() < 1e-5);
        assert_eq!(d.status().state, DeviceState::On);
    }

    #[test]
    fn a_refused_configuration_fails_open_and_a_wrong_meter_is_refused() {
        let p = FakePort::new();
        // 1 V range on 4-wire resistance does not exist: check() refuses it...
        let d = meter(&p)
            .function(Function34420A::FourWireResistance)
            .range(Some(1.5));
        assert_eq!(d.check().unwrap_err().kind(), ErrorKind::Configuration);
        // ...and so does the meter if sent anyway (above the largest range: -222).
        let mut d = meter(&p)
            .function(Function34420A::FourWireResistance)
            .range(Some(1e7));
        let (p, sim) = p.play(Nanovoltmeter34420A::new(0.0, 2));
        let e = d.open().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfRange, "{e}");
        drop(sim);
        drop(p);
        let p = FakePort::new();
        let mut d = meter(&p);
        let mut dev = Nanovoltmeter34420A::new(0.0, 3);
        dev.idn = "HEWLETT-PACKARD,34401A,0,11-5-2".into();
        let (_p, _sim) = p.play(dev);
        let e = d.open().unwrap_err();
        assert!(
            e.description().contains("wrong port or wrong instrument"),
            "{e}"
        );
        // check(): NPLC and channel.
        let p = FakePort::new();
        assert!(meter(&p)
            .nplc(3.0)
            .check()
            .unwrap_err()
            .description()
            .contains("nplc"));
        let e = meter(&p)
            .function(Function34420A::VoltageDc { channel: 2 })
            .range(Some(100.0))
            .check()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
    }

    #[test]
    fn silence_and_a_vanished_meter_are_clear_errors() {
        let p = FakePort::new();
        let mut d = meter(&p);
        let (_p, mut sim) = p.play(Nanovoltmeter34420A::new(1e-3, 4));
        d.open().unwrap();
        sim.mute(true);
        let e = d.read().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert_eq!(d.status().state, DeviceState::Fault);
        sim.vanish();
        let e = d.read().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
        assert!(e.description().contains("disappeared"), "{e}");
    }

    #[test]
    fn readings_are_formatted_as_the_guide_shows() {
        assert_eq!(
            Nanovoltmeter34420A::format_reading(1.23456789e-3),
            "+1.23456789E-03"
        );
        assert_eq!(
            Nanovoltmeter34420A::format_reading(-12.5),
            "-1.25000000E+01"
        );
        assert_eq!(
            Nanovoltmeter34420A::format_reading(9.9e37),
            "+9.90000000E+37"
        );
    }
}
