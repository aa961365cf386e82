//! [`LineInOut`]: a generic text-line protocol over a serial port.

use super::{fill_template, template_arity, LineEnding, SerialConfig, SerialLink};
use crabby::hardware::{now_ns, InOut, Input, Output, Reading, Status};
use crabby::{Error, ErrorKind, Result};
use regex::Regex;

/// How [`LineInOut`] turns an answer line into values.
#[derive(Debug, Clone, PartialEq)]
pub enum Parse {
    /// Numbers separated by `separator` (spaces around them are ignored).
    Csv {
        /// The separator, e.g. `','` or `';'`.
        separator: char,
    },
    /// A regular expression; each capture group is one value (for example
    /// `r"T=([-+\d.eE]+)C P=([-+\d.eE]+)"`).
    Regex(String),
}

/// A device that speaks text lines: optionally sends a query, reads an answer line and
/// parses numbers out of it; formats commands from a template.
///
/// ```no_run
/// use crabby_hardware::serial::{LineInOut, Parse, SerialConfig};
/// // A load cell amplifier answering "R?" with "F=12.34 N".
/// let cell = LineInOut::new("load cell", SerialConfig::new("/dev/ttyUSB0", 115200), ["F(N)"])
///     .query("R?")
///     .parse(Parse::Regex(r"F=([-+\d.eE]+) N".into()));
/// ```
#[derive(Debug)]
pub struct LineInOut {
    /// The device's name (origin of its errors).
    pub name: String,
    /// The port.
    pub serial: SerialConfig,
    /// Sent before each read, after discarding any stale input (so an answer never lags
    /// behind by one); `None` for a device that sends lines by itself (the latest line is
    /// used).
    pub query: Option<String>,
    /// Line ending, both ways (default `\r\n`).
    pub line_ending: LineEnding,
    /// How to parse an answer (default CSV with `,`).
    pub parse: Parse,
    /// One label per value read.
    pub channels: Vec<String>,
    /// Command template: `{}` (or `{0}`, `{1}`…) replaced by the command values.
    pub command: Option<String>,
    /// The line the device answers to a command, if it answers (e.g. `OK`; compared with
    /// surrounding spaces ignored on both sides).
    pub ack: Option<String>,
    /// Lines sent right after opening (setup).
    pub init: Vec<String>,
    link: Option<SerialLink>,
    regex: Option<Regex>,
    status: Status,
}

impl LineInOut {
    /// A device on `serial` whose answers hold one value per label of `channels`.
    pub fn new<S: Into<String>>(
        name: impl Into<String>,
        serial: SerialConfig,
        channels: impl IntoIterator<Item = S>,
    ) -> Self {
        LineInOut {
            name: name.into(),
            serial,
            query: None,
            line_ending: LineEnding::CrLf,
            parse: Parse::Csv { separator: ',' },
            channels: channels.into_iter().map(Into::into).collect(),
            command: None,
            ack: None,
            init: Vec::new(),
            link: None,
            regex: None,
            status: Status::off(),
        }
    }
    /// Sends `q` before each read.
    pub fn query(mut self, q: impl Into<String>) -> Self {
        self.query = Some(q.into());
        self
    }
    /// Sets the line ending.
    pub fn line_ending(mut self, e: LineEnding) -> Self {
        self.line_ending = e;
        self
    }
    /// Sets how answers are parsed.
    pub fn parse(mut self, p: Parse) -> Self {
        self.parse = p;
        self
    }
    /// Sets the command template (makes the device writable).
    pub fn command(mut self, template: impl Into<String>) -> Self {
        self.command = Some(template.into());
        self
    }
    /// Expects this line after each command.
    pub fn ack(mut self, line: impl Into<String>) -> Self {
        self.ack = Some(line.into());
        self
    }
    /// Lines sent after opening.
    pub fn init<S: Into<String>>(mut self, lines: impl IntoIterator<Item = S>) -> Self {
        self.init = lines.into_iter().map(Into::into).collect();
        self
    }

    fn compile(&self) -> Result<Option<Regex>> {
        match &self.parse {
            Parse::Csv { .. } => Ok(None),
            Parse::Regex(r) => {
                let re = Regex::new(r).map_err(|e| {
                    Error::config(format!(
                        "parameter 'parse' holds an invalid regular expression: {e}"
                    ))
                    .with_origin(&self.name)
                })?;
                if re.captures_len() - 1 != self.channels.len() {
                    return Err(Error::config(format!(
                        "the regular expression has {} capture groups but {} channels are declared ({:?}); give one group per channel",
                        re.captures_len() - 1,
                        self.channels.len(),
                        self.channels
                    ))
                    .with_origin(&self.name));
                }
                Ok(Some(re))
            }
        }
    }

    /// Parses an answer line into one value per channel.
    pub fn parse_line(&self, line: &str) -> Result<Vec<f64>> {
        let bad = |why: String| {
            Error::new(
                ErrorKind::Communication,
                format!("unexpected answer {line:?}: {why}; check the protocol settings (query, parse, line ending) and the baud rate"),
            )
            .with_origin(&self.name)
        };
        let values: Vec<f64> = match (&self.parse, &self.regex) {
            (Parse::Csv { separator }, _) => line
                .split(*separator)
                .map(|s| {
                    s.trim()
                        .parse::<f64>()
                        .map_err(|_| bad(format!("{:?} is not a number", s.trim())))
                })
                .collect::<Result<_>>()?,
            (Parse::Regex(_), Some(re)) => {
                let caps = re
                    .captures(line)
                    .ok_or_else(|| bad("it does not match the regular expression".into()))?;
                caps.iter()
                    .skip(1)
                    .map(|m| {
                        let s = m.map(|m| m.as_str()).unwrap_or("");
                        s.trim()
                            .parse::<f64>()
                            .map_err(|_| bad(format!("captured {s:?} is not a number")))
                    })
                    .collect::<Result<_>>()?
            }
            (Parse::Regex(_), None) => {
                return Err(
                    Error::new(ErrorKind::NotAllowed, "read before open").with_origin(&self.name)
                )
            }
        };
        if values.len() != self.channels.len() {
            return Err(bad(format!(
                "{} values where {} channels are declared",
                values.len(),
                self.channels.len()
            )));
        }
        Ok(values)
    }

    fn link(&mut self) -> Result<&mut SerialLink> {
        let name = &self.name;
        self.link.as_mut().ok_or_else(|| {
            Error::new(ErrorKind::NotAllowed, "the device is not open").with_origin(name)
        })
    }

    fn fault<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            self.status = Status::fault(e.to_string());
        }
        r
    }
}

impl InOut for LineInOut {
    fn name(&self) -> &str {
        &self.name
    }

    fn channels(&self) -> Vec<String> {
        self.channels.clone()
    }

    fn check(&self) -> Result<()> {
        self.serial.check(&self.name)?;
        if self.channels.is_empty() && self.command.is_none() {
            return Err(Error::config("neither channels (values to read) nor a command template are given; the device would do nothing")
                .with_origin(&self.name));
        }
        if let Some(c) = &self.command {
            if template_arity(c) == 0 {
                return Err(Error::config(format!(
                    "command template {c:?} has no '{{}}' placeholder for the command value"
                ))
                .with_origin(&self.name));
            }
        }
        self.compile().map(|_| ())
    }

    fn open(&mut self) -> Result<()> {
        self.regex = self.compile()?;
        let mut link = self.serial.open(&self.name)?;
        link.discard_input()?;
        for l in &self.init {
            link.write_line(l, self.line_ending)?;
        }
        self.link = Some(link);
        self.status = Status::on(format!("open on {}", self.serial.port));
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        self.link = None;
        if self.status.state != crabby::hardware::DeviceState::Fault {
            self.status = Status::off();
        }
        Ok(())
    }

    fn status(&self) -> Status {
        self.status.clone()
    }
}

impl Input for LineInOut {
    /// An error of kind `NotAllowed` if no channel is configured (a command-only device).
    fn read(&mut self) -> Result<Reading> {
        if self.channels.is_empty() {
            return Err(crabby::hardware::not_supported(
                &self.name,
                "be read (no channels configured)",
            ));
        }
        let ending = self.line_ending;
        let query = self.query.clone();
        let r = (|| {
            let link = self.link()?;
            let (t, line) = match &query {
                Some(q) => {
                    // Whatever arrived unasked (a late answer, an unexpected ack) would be
                    // taken for the answer to this query.
                    link.discard_input()?;
                    let t0 = now_ns();
                    link.write_line(q, ending)?;
                    let line = link.read_line(ending)?;
                    // The device measured somewhere between the query and the answer.
                    (t0 + (now_ns() - t0) / 2, line)
                }
                None => {
                    let line = link.read_latest_line(ending)?;
                    (now_ns(), line)
                }
            };
            Ok(Reading::new(t, self.parse_line(&line)?))
        })();
        self.fault(r)
    }
}

impl Output for LineInOut {
    fn n_commands(&self) -> Option<usize> {
        self.command.as_deref().map(template_arity)
    }

    fn write(&mut self, cmd: &[f64]) -> Result<()> {
        let ending = self.line_ending;
        let Some(tpl) = self.command.clone() else {
            return Err(crabby::hardware::not_supported(
                &self.name,
                "take commands (no command template)",
            ));
        };
        let ack = self.ack.clone();
        let r = (|| {
            let link = self.link()?;
            link.write_line(&fill_template(&tpl, cmd), ending)?;
            if let Some(ack) = &ack {
                let got = link.read_line(ending)?;
                if got.trim() != ack.trim() {
                    return Err(link.err(
                        ErrorKind::Communication,
                        format!("the device answered {got:?} to a command instead of {ack:?}"),
                    ));
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

    fn device(p: &FakePort) -> LineInOut {
        LineInOut::new(
            "cell",
            SerialConfig::new(&p.path, 115200).timeout(Duration::from_millis(200)),
            ["F(N)", "x(mm)"],
        )
    }

    #[test]
    fn csv_query_and_answer() {
        let mut p = FakePort::new();
        let mut d = device(&p).query("R?").init(["UNITS N"]);
        d.check().unwrap();
        d.open().unwrap();
        assert_eq!(
            p.recv_line(b"\r\n", Duration::from_secs(1)).as_deref(),
            Some("UNITS N")
        );
        let h = std::thread::spawn(move || {
            let q = p.recv_line(b"\r\n", Duration::from_secs(2));
            p.send(b" 12.5 , -3e-1\r\n");
            (q, p)
        });
        let r = d.read().unwrap();
        let (q, _p) = h.join().unwrap();
        assert_eq!(q.as_deref(), Some("R?"));
        assert_eq!(r.values, [12.5, -0.3]);
        assert!(r.t_ns <= now_ns());
    }

    #[test]
    fn stale_input_is_discarded_before_a_query() {
        let mut p = FakePort::new();
        let mut d = device(&p).query("R?");
        d.open().unwrap();
        // An answer nobody asked for (a late one, or an unconfigured ack) is waiting.
        p.send(b"1,2\r\n");
        // It must be on the driver's side before the query: that is what the test is about.
        p.wait_delivered();
        let h = std::thread::spawn(move || {
            let q = p.recv_line(b"\r\n", Duration::from_secs(2));
            p.send(b"3,4\r\n");
            (q, p)
        });
        let r = d.read().unwrap();
        let (q, _p) = h.join().unwrap();
        assert_eq!(q.as_deref(), Some("R?"));
        assert_eq!(r.values, [3.0, 4.0], "the answer lags behind the query");
    }

    #[test]
    fn regex_parsing_and_wrong_answers() {
        let p = FakePort::new();
        let mut d = device(&p).parse(Parse::Regex(r"F=(\S+) N x=(\S+)".into()));
        d.open().unwrap();
        p.send(b"F=1 N x=2\r\nF=3 N x=4\r\n");
        p.wait_delivered();
        // No query: the latest line wins.
        assert_eq!(d.read().unwrap().values, [3.0, 4.0]);
        p.send(b"HELLO\r\n");
        let e = d.read().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Communication);
        assert!(e.description().contains("HELLO"), "{e}");
        assert_eq!(d.status().state, crabby::hardware::DeviceState::Fault);
        p.send(b"F=abc N x=2\r\n");
        assert!(d.read().unwrap_err().description().contains("not a number"));
        // Silence.
        let e = d.read().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert_eq!(e.origin(), Some("cell"));
    }

    #[test]
    fn csv_with_wrong_count_is_an_error() {
        let p = FakePort::new();
        let mut d = device(&p);
        d.open().unwrap();
        p.send(b"1,2,3\r\n");
        let e = d.read().unwrap_err();
        assert!(e.description().contains("3 values where 2 channels"), "{e}");
    }

    #[test]
    fn commands_with_ack() {
        let mut p = FakePort::new();
        let mut d = LineInOut::new(
            "psu",
            SerialConfig::new(&p.path, 9600).timeout(Duration::from_millis(200)),
            Vec::<String>::new(),
        )
        .command("V{} I{}")
        .ack("OK ") // compared trimmed on both sides
        .line_ending(LineEnding::Lf);
        d.check().unwrap();
        assert_eq!(d.n_commands(), Some(2));
        // No channel: nothing to read, said before anything touches the port.
        assert!(d.channels().is_empty());
        assert_eq!(d.read().unwrap_err().kind(), crabby::ErrorKind::NotAllowed);
        d.open().unwrap();
        p.send(b"OK\n");
        d.write(&[1.5, 0.25]).unwrap();
        assert_eq!(
            p.recv_line(b"\n", Duration::from_secs(1)).as_deref(),
            Some("V1.5 I0.25")
        );
        p.send(b"ERR 3\n");
        let e = d.write(&[2.0, 0.0]).unwrap_err();
        assert!(e.description().contains("ERR 3"), "{e}");
        let e = d.write(&[2.0, 0.0]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
    }

    #[test]
    fn check_rejects_bad_settings() {
        let p = FakePort::new();
        let e = device(&p)
            .parse(Parse::Regex("(".into()))
            .check()
            .unwrap_err();
        assert!(
            e.description().contains("invalid regular expression"),
            "{e}"
        );
        let e = device(&p)
            .parse(Parse::Regex(r"(\d+)".into()))
            .check()
            .unwrap_err();
        assert!(
            e.description().contains("1 capture groups but 2 channels"),
            "{e}"
        );
        let e = device(&p).command("SET").check().unwrap_err();
        assert!(e.description().contains("placeholder"), "{e}");
    }
}
