//! [`AlicatMfc`]: an Alicat mass flow controller (MC, MCS, MCR, BC… series) on its serial
//! port (RS-232 or RS-485, ASCII), an `Input` + `Output` that reads the data frame and writes the
//! setpoint; the simulator its tests play is [`sim::AlicatMfc`].
//!
//! Sources: Alicat *MC-Series Mass Flow Controller Operating Manual*, "Serial
//! Communications", "Quick Serial Command Guide" (poll `a<CR>`, setpoint `as[value]<CR>`,
//! gas `ag[number]<CR>`, hold `ahp<CR>`, cancel hold `ac<CR>`; commands are not
//! case-sensitive) and "Polling Mode" (unit IDs A–Z, one data frame per poll); Alicat
//! *Serial Communications Primer* (Rev. 2, February 2023), "The Alicat Data Frame" and
//! "Status/Error Codes" (p. 8), "Query/Change Setpoint" (p. 12), "Active Gas" (p. 11);
//! Alicat *BC-Series Manual*, "Alicat ASCII Serial Communication" (every command starts
//! with the unit ID and ends with a carriage return, every response is one line ending
//! with a carriage return; an unknown command is answered with `?`). The gas numbers of
//! [`GASES`] are those of the `numat/alicat` driver (`FlowMeter.gases`), which follows the
//! primer's gas table; the field order of a controller's frame was checked against that
//! driver's parser too.
//!
//! The data frame of a flow controller: `A +014.70 +025.00 +004.98 +004.95 +005.00 N2`
//! (unit ID, pressure, temperature °C, volumetric flow, mass flow, setpoint, gas), with
//! a totalizer value after the setpoint on units that have one, then status codes:
//! `MOV`/`VOV`/`POV`/`TOV` (mass flow, volumetric flow, pressure, temperature over range),
//! `HLD` (valve held), `LCK` (front display locked), `OVR` (totalizer rolled over), others
//! reported as they come. Over-range and hold are an ALARM status; an over-range reading
//! still reads (the device sends a number).
//!
//! Default line settings: 19 200 baud (MC series; 38 400 on BC), 8N1.

use super::{closed_status, record_fault, LineEnding, SerialConfig, SerialLink};
use crabby::hardware::{now_ns, DeviceState, InOut, Input, Output, Reading, Status};
use crabby::{Error, ErrorKind, Result};

/// Gas numbers (index) and names, as `numat/alicat` lists them from Alicat's gas table.
pub const GASES: [&str; 30] = [
    "Air", "Ar", "CH4", "CO", "CO2", "C2H6", "H2", "He", "N2", "N2O", "Ne", "O2", "C3H8",
    "n-C4H10", "C2H2", "C2H4", "i-C2H10", "Kr", "Xe", "SF6", "C-25", "C-10", "C-8", "C-2", "C-75",
    "A-75", "A-25", "A1025", "Star29", "P-5",
];

/// One data frame of a flow controller.
#[derive(Debug, Clone, PartialEq)]
pub struct AlicatFrame {
    /// Unit ID.
    pub unit: char,
    /// Pressure (the unit's pressure unit, psia by default).
    pub pressure: f64,
    /// Temperature, °C.
    pub temperature: f64,
    /// Volumetric flow (the unit's flow unit).
    pub volumetric_flow: f64,
    /// Mass flow (the unit's flow unit, e.g. SLPM).
    pub mass_flow: f64,
    /// Setpoint.
    pub setpoint: f64,
    /// Totalized flow, on units with a totalizer.
    pub total: Option<f64>,
    /// The active gas.
    pub gas: String,
    /// Status codes after the gas (`MOV`, `HLD`…).
    pub codes: Vec<String>,
}

impl AlicatFrame {
    /// Parses a controller's data frame (see the module docs).
    pub fn parse(line: &str) -> Option<AlicatFrame> {
        let mut it = line.split_whitespace();
        let unit = it.next()?;
        if unit.len() != 1 || !unit.chars().all(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        let tokens: Vec<&str> = it.collect();
        let n = tokens
            .iter()
            .take_while(|t| t.parse::<f64>().is_ok())
            .count();
        let v: Vec<f64> = tokens[..n].iter().filter_map(|t| t.parse().ok()).collect();
        let (setpoint, total) = match n {
            5 => (v[4], None),
            6 => (v[4], Some(v[5])),
            _ => return None,
        };
        let gas = tokens.get(n)?.to_string();
        Some(AlicatFrame {
            unit: unit.chars().next()?.to_ascii_uppercase(),
            pressure: v[0],
            temperature: v[1],
            volumetric_flow: v[2],
            mass_flow: v[3],
            setpoint,
            total,
            gas,
            codes: tokens[n + 1..].iter().map(|s| s.to_string()).collect(),
        })
    }
}

/// An Alicat flow controller: reads pressure, temperature, volumetric and mass flow and
/// setpoint (one poll), takes the setpoint as its one command.
///
/// ```no_run
/// use crabby_hardware::serial::{AlicatMfc, SerialConfig};
/// let mfc = AlicatMfc::new("mfc", SerialConfig::new("/dev/ttyUSB0", 19_200), 10.0).gas(8);
/// ```
#[derive(Debug)]
pub struct AlicatMfc {
    /// The device's name (origin of its errors).
    pub name: String,
    /// The port.
    pub serial: SerialConfig,
    /// Unit ID, `A`–`Z` (default `A`).
    pub unit: char,
    /// Full scale of the setpoint (the controller's range, in its flow unit).
    pub full_scale: f64,
    /// Gas number to select at open, if any ([`GASES`]).
    pub gas: Option<u8>,
    link: Option<SerialLink>,
    status: Status,
    last: Option<AlicatFrame>,
}

impl AlicatMfc {
    /// A controller with unit ID `A` on `serial`, its setpoint range `0..=full_scale`.
    pub fn new(name: impl Into<String>, serial: SerialConfig, full_scale: f64) -> Self {
        AlicatMfc {
            name: name.into(),
            serial,
            unit: 'A',
            full_scale,
            gas: None,
            link: None,
            status: Status::off(),
            last: None,
        }
    }
    /// Sets the unit ID.
    pub fn unit(mut self, u: char) -> Self {
        self.unit = u;
        self
    }
    /// Selects a gas at open.
    pub fn gas(mut self, number: u8) -> Self {
        self.gas = Some(number);
        self
    }

    /// The last frame read.
    pub fn last_frame(&self) -> Option<&AlicatFrame> {
        self.last.as_ref()
    }

    fn err(&self, kind: ErrorKind, d: impl Into<String>) -> Error {
        Error::new(kind, d).with_origin(&self.name)
    }

    /// Sends `unit` + `cmd` and returns the answer line (`?` is an error: the controller
    /// did not understand the command).
    pub fn request(&mut self, cmd: &str) -> Result<String> {
        let line = format!("{}{cmd}", self.unit);
        let name = self.name.clone();
        let link = self.link.as_mut().ok_or_else(|| {
            Error::new(ErrorKind::NotAllowed, "the controller is not open").with_origin(&name)
        })?;
        link.write_line(&line, LineEnding::Cr)?;
        let ans = link.read_line(LineEnding::Cr)?;
        if ans.trim() == "?" {
            return Err(self.err(
                ErrorKind::Configuration,
                format!("the controller answered '?' to {line:?}: a command it does not know or a value it refuses (check the firmware version)"),
            ));
        }
        Ok(ans)
    }

    /// Sends `cmd` and parses the data frame it answers, checking the unit ID; updates the
    /// status from the frame's codes.
    pub fn frame(&mut self, cmd: &str) -> Result<AlicatFrame> {
        let r = (|| {
            let ans = self.request(cmd)?;
            let f = AlicatFrame::parse(&ans).ok_or_else(|| {
                self.err(
                    ErrorKind::Communication,
                    format!("unexpected answer {ans:?} (not a flow controller's data frame); check the baud rate and that the unit is a controller"),
                )
            })?;
            if f.unit != self.unit.to_ascii_uppercase() {
                return Err(self.err(
                    ErrorKind::Communication,
                    format!(
                        "the answer came from unit {} instead of {}",
                        f.unit, self.unit
                    ),
                ));
            }
            Ok(f)
        })();
        let f = self.fault(r)?;
        let alarms: Vec<&str> = f
            .codes
            .iter()
            .map(|c| c.as_str())
            .filter(|c| *c != "LCK")
            .collect();
        self.status = if alarms.is_empty() {
            Status::on(format!("{} {} of {}", f.gas, f.mass_flow, f.setpoint))
        } else {
            let what: Vec<String> = alarms
                .iter()
                .map(|c| match *c {
                    "MOV" => "MOV (mass flow over range)".to_string(),
                    "VOV" => "VOV (volumetric flow over range)".to_string(),
                    "POV" => "POV (pressure over range)".to_string(),
                    "TOV" => "TOV (temperature over range)".to_string(),
                    "HLD" => "HLD (valve held)".to_string(),
                    "OVR" => "OVR (totalizer rolled over)".to_string(),
                    other => other.to_string(),
                })
                .collect();
            Status::new(DeviceState::Alarm, what.join(", "))
        };
        self.last = Some(f.clone());
        Ok(f)
    }

    /// Polls the data frame (`A<CR>`).
    pub fn poll_frame(&mut self) -> Result<AlicatFrame> {
        self.frame("")
    }

    /// Sets the setpoint (`AS<value><CR>`) and checks that the answered frame holds it.
    pub fn set_setpoint(&mut self, sp: f64) -> Result<AlicatFrame> {
        if !sp.is_finite() || sp < 0.0 || sp > self.full_scale {
            return Err(self.err(
                ErrorKind::OutOfRange,
                format!(
                    "setpoint {sp} is outside 0..={} (full scale)",
                    self.full_scale
                ),
            ));
        }
        let f = self.frame(&format!("S{sp:.3}"))?;
        // The frame prints 2 decimals.
        if (f.setpoint - sp).abs() > 0.006 + 1e-3 * self.full_scale {
            return Err(self.err(
                ErrorKind::Hardware,
                format!("the controller answered setpoint {} to a setpoint of {sp} (setpoint source not serial?)", f.setpoint),
            ));
        }
        Ok(f)
    }

    /// Selects gas `number` (`AG<number><CR>`) and checks the frame names it.
    pub fn select_gas(&mut self, number: u8) -> Result<AlicatFrame> {
        let f = self.frame(&format!("G{number}"))?;
        if let Some(name) = GASES.get(number as usize) {
            if !f.gas.eq_ignore_ascii_case(name) {
                return Err(self.err(
                    ErrorKind::Hardware,
                    format!(
                        "gas {number} ({name}) was asked but the controller reports {}",
                        f.gas
                    ),
                ));
            }
        }
        Ok(f)
    }

    /// Holds the valve at its current position (`AHP`); the frame then shows `HLD`.
    pub fn hold_valve(&mut self) -> Result<AlicatFrame> {
        self.frame("HP")
    }

    /// Cancels a valve hold (`AC`).
    pub fn cancel_hold(&mut self) -> Result<AlicatFrame> {
        self.frame("C")
    }

    fn fault<T>(&mut self, r: Result<T>) -> Result<T> {
        record_fault(&mut self.status, r)
    }
}

impl InOut for AlicatMfc {
    fn name(&self) -> &str {
        &self.name
    }
    fn channels(&self) -> Vec<String> {
        ["P", "T(C)", "Qv", "Qm", "setpoint"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }
    fn check(&self) -> Result<()> {
        self.serial.check(&self.name)?;
        if !self.unit.is_ascii_uppercase() {
            return Err(Error::config(format!(
                "unit ID {:?} must be a letter A–Z (the controller's setting)",
                self.unit
            ))
            .with_origin(&self.name));
        }
        if !(self.full_scale.is_finite() && self.full_scale > 0.0) {
            return Err(Error::config(format!(
                "full_scale {} must be above 0 (the controller's range)",
                self.full_scale
            ))
            .with_origin(&self.name));
        }
        if let Some(g) = self.gas {
            if g as usize >= GASES.len() && !(236..=255).contains(&g) {
                return Err(Error::config(format!(
                    "gas number {g} is neither a standard gas (0–{}) nor a COMPOSER mix (236–255)",
                    GASES.len() - 1
                ))
                .with_origin(&self.name));
            }
        }
        Ok(())
    }
    /// Opens the port, polls a frame (the controller answers as unit `unit`), selects the
    /// gas if asked.
    fn open(&mut self) -> Result<()> {
        let mut link = self.serial.open(&self.name)?;
        link.discard_input()?;
        self.link = Some(link);
        let r: Result<()> = (|| {
            self.poll_frame().map_err(|e| {
                if e.kind() == ErrorKind::Timeout {
                    self.err(ErrorKind::Timeout, format!(
                        "no answer to a poll of unit {} on {}; check the unit ID, the baud rate ({}) and that the unit is not streaming",
                        self.unit, self.serial.port, self.serial.baud_rate
                    ))
                } else {
                    e
                }
            })?;
            if let Some(g) = self.gas {
                self.select_gas(g)?;
            }
            Ok(())
        })();
        if r.is_err() {
            self.link = None;
            if let Err(e) = &r {
                self.status = Status::fault(e.to_string());
            }
        }
        r
    }
    /// Sets the setpoint to 0 (best effort) and closes the port.
    fn close(&mut self) -> Result<()> {
        if self.link.is_some() && self.status.state != DeviceState::Fault {
            let _ = self.set_setpoint(0.0);
        }
        self.link = None;
        closed_status(&mut self.status);
        Ok(())
    }
    fn status(&self) -> Status {
        self.status.clone()
    }
}

impl Input for AlicatMfc {
    /// One poll: pressure, temperature, volumetric flow, mass flow, setpoint.
    fn read(&mut self) -> Result<Reading> {
        let t0 = now_ns();
        let f = self.poll_frame()?;
        Ok(Reading::new(
            t0 + (now_ns() - t0) / 2,
            vec![
                f.pressure,
                f.temperature,
                f.volumetric_flow,
                f.mass_flow,
                f.setpoint,
            ],
        ))
    }
}

impl Output for AlicatMfc {
    fn n_commands(&self) -> Option<usize> {
        Some(1)
    }
    /// The setpoint (`AS…`), checked in the answered frame.
    fn write(&mut self, cmd: &[f64]) -> Result<()> {
        let Some(&sp) = cmd.first() else {
            return Err(self.err(ErrorKind::Configuration, "no setpoint value"));
        };
        self.set_setpoint(sp).map(|_| ())
    }
}

pub mod sim {
    //! [`AlicatMfc`]: a simulated Alicat flow controller: first-order flow response toward
    //! the setpoint, gas-dependent volumetric flow, valve hold, status codes, `?` for what
    //! it does not know.
    use super::super::sim::{LineDevice, Noise};
    use super::GASES;
    use std::time::Instant;

    /// A simulated flow controller (unit `A`, SLPM, psia, °C).
    #[derive(Debug)]
    pub struct AlicatMfc {
        /// Unit ID.
        pub unit: char,
        /// Full scale, SLPM (above it the frame shows `MOV`).
        pub full_scale: f64,
        /// Setpoint, SLPM.
        pub setpoint: f64,
        /// Time constant of the flow response, s.
        pub tau: f64,
        /// Line pressure, psia.
        pub pressure: f64,
        /// Gas temperature, °C.
        pub temperature: f64,
        /// Active gas number.
        pub gas: usize,
        /// Valve held (`HP`): the flow stays where it is.
        pub held: bool,
        flow: f64,
        t: Instant,
        noise: Noise,
        /// Every request received.
        pub log: Vec<String>,
    }

    impl AlicatMfc {
        /// A controller of `full_scale` SLPM, setpoint 0, air, 14.70 psia, 25 °C, τ = 50 ms.
        pub fn new(full_scale: f64, seed: u64) -> Self {
            AlicatMfc {
                unit: 'A',
                full_scale,
                setpoint: 0.0,
                tau: 0.05,
                pressure: 14.70,
                temperature: 25.0,
                gas: 0,
                held: false,
                flow: 0.0,
                t: Instant::now(),
                noise: Noise::new(seed),
                log: Vec::new(),
            }
        }

        /// The mass flow now (first-order response toward the setpoint since the last
        /// request).
        pub fn mass_flow(&mut self) -> f64 {
            let now = Instant::now();
            let dt = now.duration_since(self.t).as_secs_f64();
            self.t = now;
            if !self.held {
                self.flow = self.setpoint + (self.flow - self.setpoint) * (-dt / self.tau).exp();
            }
            self.flow
        }

        fn frame(&mut self) -> Vec<u8> {
            let qm = self.mass_flow() + self.noise.gauss() * 1e-3 * self.full_scale;
            // Standard conditions 25 °C, 14.696 psia: volumetric = mass × (Pstd/P)(T/Tstd).
            let qv = qm * (14.696 / self.pressure) * ((self.temperature + 273.15) / 298.15);
            let mut s = format!(
                "{} {:+07.2} {:+07.2} {:+07.2} {:+07.2} {:+07.2} {}",
                self.unit, self.pressure, self.temperature, qv, qm, self.setpoint, GASES[self.gas]
            );
            if qm.abs() > self.full_scale * 1.0 + 1e-9 {
                s.push_str(" MOV");
            }
            if self.held {
                s.push_str(" HLD");
            }
            s.push('\r');
            s.into_bytes()
        }
    }

    impl LineDevice for AlicatMfc {
        fn request_ending(&self) -> &'static [u8] {
            b"\r"
        }

        fn handle(&mut self, request: &str) -> Option<Vec<u8>> {
            self.log.push(request.to_owned());
            let mut chars = request.chars();
            let id = chars.next()?.to_ascii_uppercase();
            if id != self.unit {
                return None; // another unit on the line
            }
            let rest = chars.as_str().trim().to_ascii_uppercase();
            let question = Some(b"?\r".to_vec());
            if rest.is_empty() {
                return Some(self.frame());
            }
            if let Some(v) = rest.strip_prefix('S') {
                return match v.trim().parse::<f64>() {
                    Ok(sp) if sp >= 0.0 => {
                        self.mass_flow();
                        self.setpoint = sp;
                        Some(self.frame())
                    }
                    _ => question,
                };
            }
            if let Some(v) = rest.strip_prefix('G') {
                return match v.trim().parse::<usize>() {
                    Ok(g) if g < GASES.len() => {
                        self.gas = g;
                        Some(self.frame())
                    }
                    _ => question,
                };
            }
            match rest.as_str() {
                "HP" => {
                    self.mass_flow();
                    self.held = true;
                    Some(self.frame())
                }
                "C" => {
                    self.mass_flow();
                    self.held = false;
                    Some(self.frame())
                }
                _ => question,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::FakePort;
    use super::sim::AlicatMfc as Sim;
    use super::*;
    use std::time::{Duration, Instant};

    fn mfc(p: &FakePort) -> AlicatMfc {
        AlicatMfc::new(
            "mfc",
            SerialConfig::new(&p.path, 19_200).timeout(Duration::from_millis(300)),
            10.0,
        )
    }

    #[test]
    fn frames_parse_as_the_primer_shows() {
        let f = AlicatFrame::parse("A +014.70 +025.00 +004.98 +004.95 +005.00 N2").unwrap();
        assert_eq!(
            (f.unit, f.pressure, f.mass_flow, f.setpoint),
            ('A', 14.7, 4.95, 5.0)
        );
        assert_eq!(f.gas, "N2");
        assert!(f.codes.is_empty() && f.total.is_none());
        let f = AlicatFrame::parse("B +014.70 +025.00 +011.0 +010.9 +010.0 +0021513.0 Air MOV HLD")
            .unwrap();
        assert_eq!(f.total, Some(21513.0));
        assert_eq!(f.codes, ["MOV", "HLD"]);
        assert!(AlicatFrame::parse("?").is_none());
        assert!(AlicatFrame::parse("A +014.70 Air").is_none());
    }

    #[test]
    fn setpoint_then_the_flow_follows_and_gas_select() {
        let p = FakePort::new();
        let mut d = mfc(&p).gas(8);
        d.check().unwrap();
        let (_p, sim) = p.play(Sim::new(10.0, 3));
        d.open().unwrap();
        assert_eq!(d.last_frame().unwrap().gas, "N2");
        assert_eq!(sim.with(|s| s.log.clone()), ["A", "AG8"]);
        let t0 = Instant::now();
        d.write(&[5.0]).unwrap();
        // First order, τ = 50 ms: below the setpoint at once (not a jump), there after 0.5 s.
        // The bound is the response at the latest moment the reading can describe (the
        // loaded machine may take tens of ms), plus 6σ of the simulated noise and rounding.
        let early = d.read().unwrap().values[3];
        let t_hi = t0.elapsed().as_secs_f64();
        let bound = 5.0 * (1.0 - (-t_hi / 0.05).exp()) + 0.065;
        assert!(early <= bound, "{early} above {bound} after {t_hi} s");
        let end = Instant::now() + Duration::from_secs(2);
        let mut q = early;
        while Instant::now() < end {
            q = d.read().unwrap().values[3];
            if (q - 5.0).abs() < 0.05 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!((q - 5.0).abs() < 0.05, "{q}");
        let r = d.read().unwrap().values;
        assert_eq!(r[4], 5.0);
        assert_eq!(r[0], 14.7);
        assert_eq!(d.status().state, DeviceState::On);
        assert!(sim.with(|s| s.log.contains(&"AS5.000".to_string())));
        d.close().unwrap();
        assert_eq!(
            sim.with(|s| s.setpoint),
            0.0,
            "close sets the setpoint to 0"
        );
    }

    #[test]
    fn unknown_commands_over_range_hold_and_bad_values() {
        let p = FakePort::new();
        let mut d = mfc(&p);
        let (_p, sim) = p.play(Sim::new(10.0, 4));
        d.open().unwrap();
        // '?' for a command the controller does not know, and for an unknown gas.
        let e = d.request("ZZ").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
        assert!(e.description().contains("'?'"), "{e}");
        assert_eq!(
            d.select_gas(99).unwrap_err().kind(),
            ErrorKind::Configuration
        );
        // Out of the configured range: refused before sending.
        assert_eq!(d.write(&[12.0]).unwrap_err().kind(), ErrorKind::OutOfRange);
        // Flow pushed beyond full scale (upstream pressure): MOV, an ALARM.
        sim.with(|s| s.setpoint = 12.0);
        let end = Instant::now() + Duration::from_secs(2);
        while d.status().state != DeviceState::Alarm && Instant::now() < end {
            d.read().unwrap();
        }
        assert!(d.status().text.contains("MOV"), "{}", d.status());
        // Valve hold: HLD, the flow stays.
        d.write(&[2.0]).unwrap();
        let held = d.hold_valve().unwrap();
        assert!(held.codes.contains(&"HLD".to_string()));
        assert_eq!(d.status().state, DeviceState::Alarm);
        d.cancel_hold().unwrap();
        let end = Instant::now() + Duration::from_secs(2);
        while d.status().state != DeviceState::On && Instant::now() < end {
            d.read().unwrap();
        }
        assert_eq!(d.status().state, DeviceState::On, "{}", d.status());
    }

    #[test]
    fn wrong_unit_silence_and_vanishing() {
        let p = FakePort::new();
        let mut d = mfc(&p).unit('B');
        let (_p, mut sim) = p.play(Sim::new(10.0, 5));
        // Unit A answers only to A: a poll of B is silence.
        let e = d.open().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(e.description().contains("unit ID"), "{e}");
        sim.with(|s| s.unit = 'B');
        d.open().unwrap();
        sim.mute(true);
        assert_eq!(d.read().unwrap_err().kind(), ErrorKind::Timeout);
        assert_eq!(d.status().state, DeviceState::Fault);
        sim.mute(false);
        sim.vanish();
        let e = d.read().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
        let p = FakePort::new();
        assert_eq!(
            mfc(&p).unit('a').check().unwrap_err().kind(),
            ErrorKind::Configuration
        );
        assert_eq!(
            mfc(&p).gas(100).check().unwrap_err().kind(),
            ErrorKind::Configuration
        );
    }
}
