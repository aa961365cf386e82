//! A simulated Eurotherm 3200 with its furnace, [`Furnace3200`], served as an RTU device
//! ([`crate::modbus::sim::SimThread::rtu`]`(master, `[`device`]`(…))`).
//!
//! The furnace is a first-order thermal plant, `τ·dT/dt = K·OP/100 − (T − T_amb)`
//! (`τ` its time constant, `K` the temperature rise at full power). The controller runs the
//! 3200's loop on it: in auto, a PID in the manual's form (proportional band `PB` in °C,
//! integral time `Ti` and derivative time `Td` in s, output 0–100 %, integral held while the
//! output saturates) drives `OP` towards the working setpoint; in manual, `OP` is `MAN.OP`.
//! Time is the wall clock: the model advances at each request, in steps of at most 10 ms.
//!
//! Registers: the parameters of the [parent module's table](super) plus `PB` (6), `Ti`
//! (8), `Td` (9), `RNG.LO` (11), `RNG.HI` (12) and the alarm 1 threshold `A1` (13, a full
//! scale high alarm: B0 of the status while PV > A1), all scaled integers at the
//! controller's decimals. Any other address answers exception 02. Beyond the manual: a
//! write to a read-only parameter (`PV.IN`, `WRK.OP`, `WKG.SP`, `StAt`) answers 02 and a
//! setpoint outside `RNG.LO`–`RNG.HI` answers 03 (ILLEGAL DATA VALUE); on a sensor break
//! ([`Furnace3200::sensor_break`]) the PV freezes, B5 is set and the output drops to 0 %.

use crate::modbus::frame::Request;
use crate::modbus::sim::{span, Device, Model};
use crate::modbus::Table;
use std::time::Instant;

// The manual's addresses, written here again rather than imported from the driver: a
// wrong address in the driver must make the tests fail, not move the simulator with it.
const PV_IN: u16 = 1;
const TG_SP: u16 = 2;
const MAN_OP: u16 = 3;
const WRK_OP: u16 = 4;
const WKG_SP: u16 = 5;
const STATUS: u16 = 75;
const AUTO_MANUAL: u16 = 273;
/// Status word bits (§15.5, `StAt`).
mod status_bits {
    pub const MANUAL: u16 = 1 << 4;
    pub const SENSOR_BREAK: u16 = 1 << 5;
    pub const PV_OVER_RANGE: u16 = 1 << 10;
}
const PB: u16 = 6;
const TI: u16 = 8;
const TD: u16 = 9;
const RNG_LO: u16 = 11;
const RNG_HI: u16 = 12;
const CTRL_A: u16 = 7;
const A1: u16 = 13;

const READABLE: [u16; 14] = [
    PV_IN,
    TG_SP,
    MAN_OP,
    WRK_OP,
    WKG_SP,
    PB,
    CTRL_A,
    TI,
    TD,
    RNG_LO,
    RNG_HI,
    A1,
    STATUS,
    AUTO_MANUAL,
];
const WRITABLE: [u16; 9] = [TG_SP, MAN_OP, PB, TI, TD, RNG_LO, RNG_HI, A1, AUTO_MANUAL];

/// The furnace and the controller's loop state.
#[derive(Debug)]
pub struct Furnace3200 {
    /// Decimals of temperatures on the wire (the controller's `dEC.P`).
    pub decimals: u8,
    /// The plant's time constant, s.
    pub tau_s: f64,
    /// The temperature rise at 100 % output, °C.
    pub gain_c: f64,
    /// The room, °C.
    pub ambient_c: f64,
    /// The sensor is broken (set by a test).
    pub sensor_break: bool,
    /// The furnace temperature, °C.
    pub temperature: f64,
    output: f64,
    integral: f64,
    last_error: Option<f64>,
    last: Option<Instant>,
}

impl Default for Furnace3200 {
    fn default() -> Self {
        Furnace3200 {
            decimals: 1,
            tau_s: 2.0,
            gain_c: 400.0,
            ambient_c: 20.0,
            sensor_break: false,
            temperature: 20.0,
            output: 0.0,
            integral: 0.0,
            last_error: None,
            last: None,
        }
    }
}

/// A 3200 at address `unit` with `furnace`: setpoint 20 °C, auto, PB 20 °C, Ti 4 s, Td 0,
/// range 0–1000 °C, alarm 1 at 900 °C.
pub fn device(unit: u8, furnace: Furnace3200) -> Device {
    let mut d = Device::new(unit, 300);
    let s = 10f64.powi(furnace.decimals as i32);
    let t = |v: f64| (v * s).round() as i16 as u16;
    d.holding[TG_SP as usize] = t(20.0);
    d.holding[PB as usize] = t(20.0);
    d.holding[TI as usize] = 4;
    d.holding[TD as usize] = 0;
    d.holding[RNG_LO as usize] = t(0.0);
    d.holding[RNG_HI as usize] = t(1000.0);
    d.holding[A1 as usize] = t(900.0);
    d.with_model(furnace)
}

impl Furnace3200 {
    fn get(&self, d: &Device, at: u16) -> f64 {
        d.holding[at as usize] as i16 as f64 / 10f64.powi(self.decimals as i32)
    }

    fn put(&self, d: &mut Device, at: u16, v: f64, decimals: u8) {
        let r = (v * 10f64.powi(decimals as i32))
            .round()
            .clamp(-32768.0, 32767.0);
        d.holding[at as usize] = r as i16 as u16;
    }

    fn advance(&mut self, d: &mut Device) {
        let now = Instant::now();
        let mut left = self
            .last
            .map_or(0.0, |t| now.duration_since(t).as_secs_f64());
        self.last = Some(now);
        let manual = d.holding[AUTO_MANUAL as usize] == 1;
        let sp = self.get(d, TG_SP);
        let pb = self.get(d, PB).max(0.1);
        let (ti, td) = (d.holding[TI as usize] as f64, d.holding[TD as usize] as f64);
        while left > 0.0 {
            let dt = left.min(0.01);
            left -= dt;
            let e = sp - self.temperature;
            self.output = if self.sensor_break {
                0.0
            } else if manual {
                (d.holding[MAN_OP as usize] as i16 as f64 / 10.0).clamp(0.0, 100.0)
            } else {
                let de = self.last_error.map_or(0.0, |l| (e - l) / dt);
                self.last_error = Some(e);
                let i = if ti > 0.0 { self.integral / ti } else { 0.0 };
                let u = 100.0 / pb * (e + i + td * de);
                // The integral runs only while the output is not saturated (anti-windup).
                if (0.0..=100.0).contains(&u) || (u > 100.0 && e < 0.0) || (u < 0.0 && e > 0.0) {
                    self.integral += e * dt;
                }
                u.clamp(0.0, 100.0)
            };
            self.temperature += (self.gain_c * self.output / 100.0
                - (self.temperature - self.ambient_c))
                / self.tau_s
                * dt;
        }
        if manual {
            self.last_error = None;
        }
        let dec = self.decimals;
        if !self.sensor_break {
            self.put(d, PV_IN, self.temperature, dec);
        }
        self.put(d, WKG_SP, sp, dec);
        self.put(d, WRK_OP, self.output, 1);
        if !manual {
            self.put(d, MAN_OP, self.output, 1); // bumpless: MAN.OP tracks in auto
        }
        let (lo, hi) = (self.get(d, RNG_LO), self.get(d, RNG_HI));
        let mut st = 0u16;
        if self.temperature > self.get(d, A1) {
            st |= 1;
        }
        if manual {
            st |= status_bits::MANUAL;
        }
        if self.sensor_break {
            st |= status_bits::SENSOR_BREAK;
        }
        if self.temperature > hi + 0.05 * (hi - lo) {
            st |= status_bits::PV_OVER_RANGE;
        }
        d.holding[STATUS as usize] = st;
    }
}

impl Model for Furnace3200 {
    fn before(&mut self, d: &mut Device, req: &Request) -> Result<(), u8> {
        let (table, address, count, write) = span(req);
        if table != Table::Holding && table != Table::Input {
            return Err(0x01);
        }
        let allowed = if write { &WRITABLE[..] } else { &READABLE[..] };
        if !(address..address.saturating_add(count)).all(|a| allowed.contains(&a)) {
            return Err(0x02);
        }
        self.advance(d);
        let written: Vec<(u16, u16)> = match req {
            Request::WriteSingleRegister { address, value } => vec![(*address, *value)],
            Request::WriteMultipleRegisters { address, values } => {
                (*address..).zip(values.iter().copied()).collect()
            }
            _ => Vec::new(),
        };
        let (lo, hi) = (self.get(d, RNG_LO), self.get(d, RNG_HI));
        for (a, value) in written {
            let v = value as i16 as f64 / 10f64.powi(self.decimals as i32);
            match a {
                TG_SP if !(lo..=hi).contains(&v) => return Err(0x03),
                AUTO_MANUAL if value > 1 => return Err(0x03),
                MAN_OP if !(0..=1000).contains(&(value as i16)) => return Err(0x03),
                _ => {}
            }
        }
        if table == Table::Input {
            let r = address as usize..address as usize + count as usize;
            let copy = d.holding[r.clone()].to_vec();
            d.input[r].copy_from_slice(&copy);
        }
        Ok(())
    }

    fn after(&mut self, d: &mut Device, req: &Request) {
        if span(req).3 {
            self.advance(d);
        }
    }

    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}
