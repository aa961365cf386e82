//! A simulated AZ driver and motor, [`AzSim`], served as an RTU device
//! ([`crate::modbus::sim::SimThread::rtu`]`(master, `[`device`]`(…))`).
//!
//! The motor follows a trapezoidal profile: it accelerates at the direct data's starting
//! rate up to the operating speed, and decelerates at the stopping rate so as to stop on
//! the target (a triangle when the move is short); a new operation while moving starts from
//! the present speed. The STOP input decelerates to a standstill and blocks operations while
//! on. Time is the wall clock, integrated in steps of at most 1 ms at each request.
//!
//! Alarms (the motor stops at once, ALM-A on, READY off; operations are ignored until the
//! reset, which clears the alarm if its cause is gone): operation data error (70h) for a
//! speed or rate of 0 or an unknown operation type; software overtravel (67h) when the
//! motor reaches [`AzSim::soft_limits`]; overload (30h) while [`AzSim::overload`] is set by a
//! test. [`AzSim::info`] sets INFO (a warning). Values outside a register's range in the
//! direct data answer exception 03; addresses outside the [parent module's
//! table](super) answer 02. These rules, beyond what the
//! sources of the parent module say, are this simulator's.

use crate::modbus::frame::Request;
use crate::modbus::sim::{span, Device, Model};
use crate::modbus::{words, Table};
use std::time::Instant;

// The manual's addresses, written here again rather than imported from the driver: a
// wrong address in the driver must make the tests fail, not move the simulator with it.
const DIRECT_DATA: u16 = 0x0058;
const INPUT_COMMAND: u16 = 0x007C;
const OUTPUT_STATUS: u16 = 0x007E;
const PRESENT_ALARM: u16 = 0x0080;
const FEEDBACK_POSITION: u16 = 0x00CC;
const ALARM_RESET: u16 = 0x0180;
/// NET-IN bits (default assignment).
mod input_bits {
    pub const STOP: u16 = 1 << 5;
}
/// NET-OUT bits (default assignment).
mod output_bits {
    pub const READY: u16 = 1 << 5;
    pub const INFO: u16 = 1 << 6;
    pub const ALM_A: u16 = 1 << 7;
    pub const MOVE: u16 = 1 << 13;
    pub const IN_POS: u16 = 1 << 14;
}

/// Register blocks of the map: (first, count, writable).
const MAP: [(u16, u16, bool); 7] = [
    (DIRECT_DATA, 18, true),
    (0x0078, 6, true), // input commands (auto-off 0078h–0079h, reference 007Ch–007Dh)
    (OUTPUT_STATUS, 2, false),
    (PRESENT_ALARM, 2, false),
    (0x00C6, 6, false), // command position, command speed r/min, Hz
    (FEEDBACK_POSITION, 6, false),
    (ALARM_RESET, 2, true),
];

/// The driver and its motor.
#[derive(Debug)]
pub struct AzSim {
    /// Software limits, steps (reaching one: alarm 67h).
    pub soft_limits: (f64, f64),
    /// An overload is present (alarm 30h while set).
    pub overload: bool,
    /// A warning is present (INFO).
    pub info: bool,
    /// Steps per revolution (for the r/min monitor).
    pub steps_per_rev: f64,
    /// Position, steps.
    pub position: f64,
    /// Speed, steps/s, signed.
    pub speed: f64,
    target: f64,
    vmax: f64,
    accel: f64,
    decel: f64,
    moving: bool,
    stopping: bool,
    alarm: u16,
    last: Option<Instant>,
}

impl Default for AzSim {
    fn default() -> Self {
        AzSim {
            soft_limits: (-1e9, 1e9),
            overload: false,
            info: false,
            steps_per_rev: 1000.0,
            position: 0.0,
            speed: 0.0,
            target: 0.0,
            vmax: 0.0,
            accel: 1.0,
            decel: 1.0,
            moving: false,
            stopping: false,
            alarm: 0,
            last: None,
        }
    }
}

/// An AZ at address `unit` with `motor`.
pub fn device(unit: u8, motor: AzSim) -> Device {
    Device::new(unit, 0x0200).with_model(motor)
}

fn reg32(d: &Device, at: u16) -> i32 {
    words::to_i32(&d.holding[at as usize..at as usize + 2])
}

fn put32(d: &mut Device, at: u16, v: i32) {
    let w = words::from_i32(v);
    d.holding[at as usize] = w[0];
    d.holding[at as usize + 1] = w[1];
}

impl AzSim {
    fn raise(&mut self, code: u16) {
        if self.alarm == 0 {
            self.alarm = code;
        }
        self.moving = false;
        self.stopping = false;
        self.speed = 0.0;
    }

    fn step(&mut self, dt: f64) {
        if self.overload {
            self.raise(0x30);
        }
        if !self.moving {
            self.speed = 0.0;
            return;
        }
        if self.stopping {
            let dv = self.decel * dt;
            if self.speed.abs() <= dv {
                self.speed = 0.0;
                self.moving = false;
                self.stopping = false;
                self.target = self.position;
            } else {
                self.speed -= dv * self.speed.signum();
            }
        } else {
            let to_go = self.target - self.position;
            let dir = to_go.signum();
            let v_stop = (2.0 * self.decel * to_go.abs()).sqrt();
            let want = dir * self.vmax.min(v_stop);
            let speeding_up = want.abs() > self.speed.abs() && want * self.speed >= 0.0;
            let dv = if speeding_up { self.accel } else { self.decel } * dt;
            self.speed = if (want - self.speed).abs() <= dv {
                want
            } else {
                self.speed + dv * (want - self.speed).signum()
            };
        }
        let before = self.target - self.position;
        self.position += self.speed * dt;
        let after = self.target - self.position;
        if !self.stopping && self.moving && (after.abs() < 0.5 || before * after < 0.0) {
            self.position = self.target;
            self.speed = 0.0;
            self.moving = false;
        }
        let (lo, hi) = self.soft_limits;
        if self.position < lo || self.position > hi {
            self.position = self.position.clamp(lo, hi);
            self.raise(0x67);
        }
    }

    fn advance(&mut self, d: &mut Device) {
        let now = Instant::now();
        let mut left = self
            .last
            .map_or(0.0, |t| now.duration_since(t).as_secs_f64());
        self.last = Some(now);
        while left > 0.0 {
            let dt = left.min(0.001);
            left -= dt;
            self.step(dt);
        }
        if self.overload {
            self.raise(0x30);
        }
        self.publish(d);
    }

    fn publish(&self, d: &mut Device) {
        use output_bits::*;
        let stop_on = d.holding[INPUT_COMMAND as usize + 1] & input_bits::STOP != 0;
        let mut out = 0u16;
        if self.alarm != 0 {
            out |= ALM_A;
        } else if !self.moving && !stop_on {
            out |= READY;
        }
        if self.info {
            out |= INFO;
        }
        if self.moving {
            out |= MOVE;
        } else if self.alarm == 0 && (self.position - self.target).abs() < 0.5 {
            out |= IN_POS;
        }
        d.holding[OUTPUT_STATUS as usize] = 0;
        d.holding[OUTPUT_STATUS as usize + 1] = out;
        put32(d, PRESENT_ALARM, self.alarm as i32);
        put32(d, 0x00C6, self.target.round() as i32);
        let rpm = (self.speed / self.steps_per_rev * 60.0).round() as i32;
        put32(d, 0x00C8, rpm);
        put32(d, 0x00CA, self.speed.round() as i32);
        put32(d, FEEDBACK_POSITION, self.position.round() as i32);
        put32(d, FEEDBACK_POSITION + 2, rpm);
        put32(d, FEEDBACK_POSITION + 4, self.speed.round() as i32);
    }

    /// Starts the direct data operation in the registers (the trigger was written).
    fn start(&mut self, d: &Device) {
        let stop_on = d.holding[INPUT_COMMAND as usize + 1] & input_bits::STOP != 0;
        if self.alarm != 0 || stop_on {
            return; // not READY: the operation does not start
        }
        let op = reg32(d, DIRECT_DATA + 2);
        let pos = reg32(d, DIRECT_DATA + 4) as f64;
        let speed = reg32(d, DIRECT_DATA + 6) as f64;
        let (acc, dec) = (
            reg32(d, DIRECT_DATA + 8) as f64,
            reg32(d, DIRECT_DATA + 10) as f64,
        );
        if speed <= 0.0 || acc <= 0.0 || dec <= 0.0 || !(op == 1 || op == 2) {
            self.raise(0x70);
            return;
        }
        // Rates are in 0.001 kHz/s = 1 Hz/s = 1 step/s².
        self.target = if op == 1 { pos } else { self.target + pos };
        self.vmax = speed;
        self.accel = acc;
        self.decel = dec;
        self.moving = true;
        self.stopping = false;
    }
}

impl Model for AzSim {
    fn before(&mut self, d: &mut Device, req: &Request) -> Result<(), u8> {
        let (table, address, count, write) = span(req);
        if table != Table::Holding {
            return Err(0x01);
        }
        let end = address as u32 + count as u32;
        match MAP
            .iter()
            .find(|(a, n, _)| address >= *a && end <= *a as u32 + *n as u32)
        {
            None => return Err(0x02),
            Some((_, _, false)) if write => return Err(0x02),
            _ => {}
        }
        if let Request::WriteMultipleRegisters { address, values } = req {
            // Ranges of the direct data (speed 0–4 000 000 Hz, rates 1–1 000 000 000,
            // current 0–1000): each 32-bit value checked where both words are written.
            for (i, pair) in values.chunks(2).enumerate() {
                let at = *address + 2 * i as u16;
                if pair.len() < 2 {
                    break;
                }
                let v = words::to_i32(pair) as i64;
                let bad = match at {
                    a if a == DIRECT_DATA + 6 => !(0..=4_000_000).contains(&v),
                    a if a == DIRECT_DATA + 8 || a == DIRECT_DATA + 10 => {
                        !(0..=1_000_000_000).contains(&v)
                    }
                    a if a == DIRECT_DATA + 12 => !(0..=1000).contains(&v),
                    _ => false,
                };
                if bad {
                    return Err(0x03);
                }
            }
        }
        self.advance(d);
        Ok(())
    }

    fn after(&mut self, d: &mut Device, req: &Request) {
        let (_, address, count, write) = span(req);
        if !write {
            return;
        }
        let touched = |a: u16| address <= a && a < address + count;
        if touched(INPUT_COMMAND + 1) {
            let stop_on = d.holding[INPUT_COMMAND as usize + 1] & input_bits::STOP != 0;
            if stop_on && self.moving {
                self.stopping = true;
            }
        }
        if touched(ALARM_RESET + 1) && d.holding[ALARM_RESET as usize + 1] == 1 {
            let (lo, hi) = self.soft_limits;
            if !self.overload {
                self.alarm = 0;
                // Back inside the limits by a hair so the next move can leave.
                self.position = self.position.clamp(lo, hi);
                self.target = self.position;
            }
            d.holding[ALARM_RESET as usize + 1] = 0;
        }
        if touched(DIRECT_DATA + 15) && d.holding[(DIRECT_DATA + 15) as usize] == 1 {
            self.start(d);
        }
        self.publish(d);
    }

    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}
