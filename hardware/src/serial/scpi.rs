//! [`ScpiInOut`]: a SCPI instrument (multimeter, power supply, source-measure unit) on a
//! serial port.
//!
//! The commands it sends itself, and where they are defined:
//! - `*IDN?` (identification: manufacturer, model, serial number, firmware, comma
//!   separated) and `*CLS` (clear status, which empties the error queue): IEEE 488.2
//!   common commands, mandatory for every SCPI instrument (SCPI-1999 Vol. 1 §4.1.1
//!   "IEEE Mandated Commands"); the instrument's manual repeats them (e.g. Keysight 34420A
//!   User's Guide, chapter 4 "Remote Interface Reference", "IEEE-488.2 Common Commands").
//! - `SYSTem:ERRor[:NEXT]?`: SCPI-1999 Vol. 2, SYSTem subsystem (required by Vol. 1
//!   §4.2.1 "Required Commands"): answers `<code>,"<description>"`, oldest first, then
//!   `0,"No error"` once the queue is empty. The code classes are SCPI's standard
//!   error/event list: −100…−199 command errors (−113 "Undefined header"), −200…−299
//!   execution errors (−222 "Data out of range"), −300…−399 device-specific errors
//!   (−350 "Queue overflow"), −400…−499 query errors.
//! - An overload reads `9.9E+37` (SCPI-1999 Vol. 1 §7.2.1.4 `INFinity`), which the
//!   Keysight/Agilent meters return for an input beyond the range.
//!
//! (Section numbers of SCPI-1999 are those of its table of contents; the section of
//! `SYSTem:ERRor` in Vol. 2 was not checked page by page.)

use super::{
    closed_status, fill_template, record_fault, template_arity, LineEnding, SerialConfig,
    SerialLink,
};
use crabby::hardware::{now_ns, DeviceState, InOut, Input, Output, Reading, Status};
use crabby::{Error, ErrorKind, Result};

/// SCPI's "overload" value (9.9E+37): the input is beyond the range.
const OVERLOAD: f64 = 9.9e37;

/// At most this many entries are read from the error queue after a command (a real queue
/// holds 10–20; the bound keeps a device that never answers `0` from looping forever).
const MAX_QUEUED_ERRORS: usize = 32;

/// A SCPI instrument: `*IDN?` checked at open, one query per channel, one command
/// template per command value, and the error queue (`SYST:ERR?`) read after each command.
///
/// ```no_run
/// use crabby_hardware::serial::{ScpiInOut, SerialConfig};
/// // A bench multimeter reading a DC voltage.
/// let dmm = ScpiInOut::new("dmm", SerialConfig::new("/dev/ttyUSB0", 9600))
///     .identity("34401A")
///     .measure("U(V)", "MEAS:VOLT:DC?");
/// ```
///
/// An overload answer (`9.9E+37`, or a non-finite number such as `NAN` or `INF`) reads as
/// NaN and puts the device in [`DeviceState::Alarm`] until a reading is back in range.
/// After a command the whole error queue is read (until `0,"No error"`), and every error
/// in it is reported.
#[derive(Debug)]
pub struct ScpiInOut {
    /// The device's name (origin of its errors).
    pub name: String,
    /// The port.
    pub serial: SerialConfig,
    /// Line ending, both ways (default `\n`, SCPI's usual terminator).
    pub line_ending: LineEnding,
    /// Text the `*IDN?` answer must contain (the model number), if any.
    pub identity: Option<String>,
    /// (label, query) per channel, e.g. `("U(V)", "MEAS:VOLT:DC?")`.
    pub measures: Vec<(String, String)>,
    /// Command templates, one per command value, e.g. `"SOUR:VOLT {}"`.
    pub commands: Vec<String>,
    /// Read `SYST:ERR?` after each command (default true).
    pub check_errors: bool,
    /// Lines sent after the identity check (default `*CLS`).
    pub init: Vec<String>,
    link: Option<SerialLink>,
    idn: String,
    status: Status,
}

impl ScpiInOut {
    /// An instrument on `serial`.
    pub fn new(name: impl Into<String>, serial: SerialConfig) -> Self {
        ScpiInOut {
            name: name.into(),
            serial,
            line_ending: LineEnding::Lf,
            identity: None,
            measures: Vec::new(),
            commands: Vec::new(),
            check_errors: true,
            init: vec!["*CLS".into()],
            link: None,
            idn: String::new(),
            status: Status::off(),
        }
    }
    /// Requires the `*IDN?` answer to contain `text`.
    pub fn identity(mut self, text: impl Into<String>) -> Self {
        self.identity = Some(text.into());
        self
    }
    /// Adds a channel read with `query`.
    pub fn measure(mut self, label: impl Into<String>, query: impl Into<String>) -> Self {
        self.measures.push((label.into(), query.into()));
        self
    }
    /// Adds a command value sent with `template` (`{}` is the value).
    pub fn command(mut self, template: impl Into<String>) -> Self {
        self.commands.push(template.into());
        self
    }
    /// Sets the line ending.
    pub fn line_ending(mut self, e: LineEnding) -> Self {
        self.line_ending = e;
        self
    }
    /// Reads the error queue after commands, or not.
    pub fn check_errors(mut self, yes: bool) -> Self {
        self.check_errors = yes;
        self
    }
    /// Replaces the setup lines sent at open.
    pub fn init<S: Into<String>>(mut self, lines: impl IntoIterator<Item = S>) -> Self {
        self.init = lines.into_iter().map(Into::into).collect();
        self
    }

    /// The `*IDN?` answer, once open.
    pub fn idn(&self) -> &str {
        &self.idn
    }

    fn link(&mut self) -> Result<&mut SerialLink> {
        let name = &self.name;
        self.link.as_mut().ok_or_else(|| {
            Error::new(ErrorKind::NotAllowed, "the instrument is not open").with_origin(name)
        })
    }

    /// Sends a query and returns its answer, trimmed (a thin layer for instrument drivers).
    pub(crate) fn query(&mut self, q: &str) -> Result<String> {
        let e = self.line_ending;
        let link = self.link()?;
        link.write_line(q, e)?;
        link.read_line(e).map(|s| s.trim().to_owned())
    }

    /// Reads the error queue until `0,"No error"`: `Ok` if it was empty, else every error
    /// in it, with the kind of the first (-1xx command errors: Configuration; -222 data out
    /// of range: OutOfRange; other -2xx execution errors: NotAllowed; the rest: Hardware).
    pub(crate) fn check_error_queue(&mut self, after: &str) -> Result<()> {
        let mut errors: Vec<(i32, String)> = Vec::new();
        for _ in 0..MAX_QUEUED_ERRORS {
            let ans = self.query("SYST:ERR?")?;
            let code: i32 = ans
                .split(',')
                .next()
                .and_then(|c| c.trim().parse().ok())
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Communication,
                        format!("unexpected answer {ans:?} to SYST:ERR?"),
                    )
                    .with_origin(&self.name)
                })?;
            if code == 0 {
                break;
            }
            errors.push((code, ans));
        }
        let Some(&(code, _)) = errors.first() else {
            return Ok(());
        };
        let kind = match code {
            -199..=-100 => ErrorKind::Configuration,
            -222 => ErrorKind::OutOfRange,
            -299..=-200 => ErrorKind::NotAllowed,
            _ => ErrorKind::Hardware,
        };
        let all: Vec<&str> = errors.iter().map(|(_, a)| a.as_str()).collect();
        Err(Error::new(
            kind,
            format!("the instrument refused {after:?}: {}", all.join("; ")),
        )
        .with_origin(&self.name))
    }

    /// Sends a command line, then reads the error queue ([`check_error_queue`]): the
    /// instrument's refusal, if any, is the error.
    ///
    /// [`check_error_queue`]: Self::check_error_queue
    pub(crate) fn command_checked(&mut self, line: &str) -> Result<()> {
        let e = self.line_ending;
        let r = (|| {
            self.link()?.write_line(line, e)?;
            self.check_error_queue(line)
        })();
        self.fault(r)
    }

    /// Records a communication or hardware error as a fault (for wrappers).
    pub(crate) fn fault<T>(&mut self, r: Result<T>) -> Result<T> {
        record_fault(&mut self.status, r)
    }
}

impl InOut for ScpiInOut {
    fn name(&self) -> &str {
        &self.name
    }

    fn channels(&self) -> Vec<String> {
        self.measures.iter().map(|(l, _)| l.clone()).collect()
    }

    fn check(&self) -> Result<()> {
        self.serial.check(&self.name)?;
        if self.measures.is_empty() && self.commands.is_empty() {
            return Err(Error::config("no measure and no command: add one with .measure(label, query) or .command(template)")
                .with_origin(&self.name));
        }
        if let Some((_, q)) = self
            .measures
            .iter()
            .find(|(_, q)| !q.trim_end().ends_with('?'))
        {
            return Err(Error::config(format!(
                "measure query {q:?} does not end with '?'; SCPI queries do (e.g. MEAS:VOLT:DC?)"
            ))
            .with_origin(&self.name));
        }
        if let Some(c) = self.commands.iter().find(|c| template_arity(c) != 1) {
            return Err(Error::config(format!(
                "command template {c:?} must hold exactly one '{{}}' for its value"
            ))
            .with_origin(&self.name));
        }
        Ok(())
    }

    fn open(&mut self) -> Result<()> {
        let mut link = self.serial.open(&self.name)?;
        link.discard_input()?;
        self.link = Some(link);
        let r = (|| {
            let idn = self.query("*IDN?").map_err(|e| {
                if e.kind() == ErrorKind::Timeout {
                    Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "no answer to *IDN? on {}; check that the instrument is on, set to RS-232 at {} baud, and the line ending ({:?})",
                            self.serial.port, self.serial.baud_rate, self.line_ending
                        ),
                    )
                    .with_origin(&self.name)
                } else {
                    e
                }
            })?;
            if let Some(want) = &self.identity {
                if !idn.contains(want.as_str()) {
                    return Err(Error::config(format!(
                        "the instrument on {} answered *IDN? with {idn:?}, which does not contain {want:?}: wrong port or wrong instrument",
                        self.serial.port
                    ))
                    .with_origin(&self.name));
                }
            }
            self.idn = idn;
            let e = self.line_ending;
            for l in self.init.clone() {
                self.link()?.write_line(&l, e)?;
            }
            Ok(())
        })();
        let r = self.fault(r);
        match &r {
            Ok(()) => self.status = Status::on(self.idn.clone()),
            Err(_) => self.link = None,
        }
        r
    }

    fn close(&mut self) -> Result<()> {
        self.link = None;
        closed_status(&mut self.status);
        Ok(())
    }

    fn status(&self) -> Status {
        self.status.clone()
    }
}

impl Input for ScpiInOut {
    /// An error of kind `NotAllowed` if no measure is configured (a command-only instrument).
    fn read(&mut self) -> Result<Reading> {
        if self.measures.is_empty() {
            return Err(crabby::hardware::not_supported(
                &self.name,
                "be read (no measure configured)",
            ));
        }
        let t0 = now_ns();
        let queries: Vec<String> = self.measures.iter().map(|(_, q)| q.clone()).collect();
        let r = (|| {
            let mut values = Vec::with_capacity(queries.len());
            let mut overload = false;
            for q in &queries {
                let ans = self.query(q)?;
                let v: f64 = ans.parse().map_err(|_| {
                    Error::new(
                        ErrorKind::Communication,
                        format!("the instrument answered {ans:?} to {q:?}, not a number"),
                    )
                    .with_origin(&self.name)
                })?;
                // "NAN"/"INF" parse as numbers: an input the instrument cannot measure too.
                if !v.is_finite() || v.abs() >= OVERLOAD * 0.999 {
                    overload = true;
                    values.push(f64::NAN);
                } else {
                    values.push(v);
                }
            }
            Ok((values, overload))
        })();
        let (values, overload) = self.fault(r)?;
        if overload {
            self.status = Status::new(
                DeviceState::Alarm,
                "overload: an input is beyond its range (reads NaN)",
            );
        } else if self.status.state == DeviceState::Alarm {
            self.status = Status::on(self.idn.clone());
        }
        Ok(Reading::new(t0 + (now_ns() - t0) / 2, values))
    }
}

impl Output for ScpiInOut {
    fn n_commands(&self) -> Option<usize> {
        Some(self.commands.len())
    }

    fn write(&mut self, cmd: &[f64]) -> Result<()> {
        if cmd.len() != self.commands.len() {
            return Err(Error::new(
                ErrorKind::Configuration,
                format!(
                    "{} command values for {} command templates",
                    cmd.len(),
                    self.commands.len()
                ),
            )
            .with_origin(&self.name));
        }
        let lines: Vec<String> = self
            .commands
            .iter()
            .zip(cmd)
            .map(|(t, v)| fill_template(t, &[*v]))
            .collect();
        let e = self.line_ending;
        let r = (|| {
            for l in &lines {
                self.link()?.write_line(l, e)?;
                if self.check_errors {
                    self.check_error_queue(l)?;
                }
            }
            Ok(())
        })();
        self.fault(r)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::FakePort;
    use super::*;
    use std::time::Duration;

    const T: Duration = Duration::from_secs(2);

    fn dmm(p: &FakePort) -> ScpiInOut {
        ScpiInOut::new(
            "dmm",
            SerialConfig::new(&p.path, 9600).timeout(Duration::from_millis(300)),
        )
        .identity("34401A")
        .measure("U(V)", "MEAS:VOLT:DC?")
        .command("SOUR:VOLT {}")
    }

    /// Plays a 34401A-like instrument for `n` exchanges.
    fn instrument(
        mut p: FakePort,
        idn: &'static str,
        script: Vec<(&'static str, &'static str)>,
    ) -> std::thread::JoinHandle<(FakePort, Vec<String>)> {
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            if let Some(q) = p.recv_line(b"\n", T) {
                seen.push(q.clone());
                if q == "*IDN?" {
                    p.send(format!("{idn}\n").as_bytes());
                }
            }
            for (expect, answer) in script {
                let Some(q) = p.recv_line(b"\n", T) else {
                    break;
                };
                seen.push(q.clone());
                if q == expect && !answer.is_empty() {
                    p.send(format!("{answer}\n").as_bytes());
                }
            }
            (p, seen)
        })
    }

    #[test]
    fn command_only_instruments_cannot_be_read() {
        let mut d = ScpiInOut::new("psu", SerialConfig::new("/dev/null", 9600)).command("VOLT {}");
        assert!(d.channels().is_empty());
        assert_eq!(d.read().unwrap_err().kind(), ErrorKind::NotAllowed);
        let mut m = crate::modbus::ModbusInOut::tcp("plc", "127.0.0.1:1")
            .write_point(crate::modbus::Point::holding("sp", 0));
        assert_eq!(m.read().unwrap_err().kind(), ErrorKind::NotAllowed);
    }

    #[test]
    fn identity_checked_then_measures_and_commands() {
        let p = FakePort::new();
        let mut d = dmm(&p);
        d.check().unwrap();
        let h = instrument(
            p,
            "HEWLETT-PACKARD,34401A,0,11-5-2",
            vec![
                ("*CLS", ""),
                ("MEAS:VOLT:DC?", "+1.23456789E+00"),
                ("MEAS:VOLT:DC?", "+9.90000000E+37"),
                ("SOUR:VOLT 2.5", ""),
                ("SYST:ERR?", "+0,\"No error\""),
                ("SOUR:VOLT 99", ""),
                ("SYST:ERR?", "-222,\"Data out of range\""),
                ("SYST:ERR?", "+0,\"No error\""),
            ],
        );
        d.open().unwrap();
        assert!(d.idn().contains("34401A"));
        assert_eq!(d.read().unwrap().values, [1.23456789]);
        assert!(d.read().unwrap().values[0].is_nan());
        assert_eq!(d.status().state, DeviceState::Alarm);
        d.write(&[2.5]).unwrap();
        let e = d.write(&[99.0]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfRange, "{e}");
        assert!(e.description().contains("Data out of range"));
        let (_p, seen) = h.join().unwrap();
        assert_eq!(seen[0], "*IDN?");
        assert_eq!(seen[1], "*CLS");
    }

    #[test]
    fn nan_answers_are_overloads_and_the_whole_error_queue_is_read() {
        let p = FakePort::new();
        let mut d = dmm(&p);
        let h = instrument(
            p,
            "X,34401A,0,1",
            vec![
                ("*CLS", ""),
                ("MEAS:VOLT:DC?", "NAN"),
                ("MEAS:VOLT:DC?", "+1.0E+00"),
                ("MEAS:VOLT:DC?", "-INF"),
                ("SOUR:VOLT 1", ""),
                ("SYST:ERR?", "-113,\"Undefined header\""),
                ("SYST:ERR?", "-222,\"Data out of range\""),
                ("SYST:ERR?", "+0,\"No error\""),
                ("SOUR:VOLT 2", ""),
                ("SYST:ERR?", "+0,\"No error\""),
            ],
        );
        d.open().unwrap();
        assert!(d.read().unwrap().values[0].is_nan());
        assert_eq!(d.status().state, DeviceState::Alarm);
        assert_eq!(d.read().unwrap().values, [1.0]);
        assert_eq!(d.status().state, DeviceState::On);
        assert!(d.read().unwrap().values[0].is_nan());
        assert_eq!(d.status().state, DeviceState::Alarm);
        let e = d.write(&[1.0]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
        assert!(
            e.description().contains("Undefined header")
                && e.description().contains("Data out of range"),
            "{e}"
        );
        // The queue was emptied: the next command is not blamed for the old errors.
        d.write(&[2.0]).unwrap();
        h.join().unwrap();
    }

    #[test]
    fn wrong_instrument_is_refused_at_open() {
        let p = FakePort::new();
        let mut d = dmm(&p);
        let h = instrument(p, "KEITHLEY INSTRUMENTS,MODEL 2000,1,A", vec![]);
        let e = d.open().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(
            e.description().contains("wrong port or wrong instrument"),
            "{e}"
        );
        h.join().unwrap();
    }

    #[test]
    fn silence_garbage_and_vanishing() {
        let p = FakePort::new();
        let mut d = dmm(&p);
        // Nobody answers *IDN?.
        let e = d.open().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.description().contains("*IDN?"), "{e}");
        assert_eq!(d.status().state, DeviceState::Fault);
        drop(p);
        // Garbage to a measure (a fresh port: the unanswered *IDN? is still in the old one).
        let p = FakePort::new();
        let mut d = dmm(&p);
        let h = instrument(
            p,
            "X,34401A,0,1",
            vec![("*CLS", ""), ("MEAS:VOLT:DC?", "\u{7f}#!")],
        );
        d.open().unwrap();
        let e = d.read().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Communication);
        assert!(e.description().contains("not a number"), "{e}");
        let (mut p, _) = h.join().unwrap();
        // The instrument vanishes.
        p.vanish();
        let e = d.read().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
        assert_eq!(d.status().state, DeviceState::Fault);
    }

    #[test]
    fn check_rejects_bad_queries_and_templates() {
        let p = FakePort::new();
        let e = ScpiInOut::new("d", SerialConfig::new(&p.path, 9600))
            .measure("U", "MEAS:VOLT:DC")
            .check()
            .unwrap_err();
        assert!(e.description().contains("does not end with '?'"), "{e}");
        let e = ScpiInOut::new("d", SerialConfig::new(&p.path, 9600))
            .command("OUTP ON")
            .check()
            .unwrap_err();
        assert!(e.description().contains("exactly one"), "{e}");
        let e = ScpiInOut::new("d", SerialConfig::new(&p.path, 9600))
            .check()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
    }
}
