//! A simulated LabJack T7: its register map (the addresses of the [parent module's
//! table](super), nothing else: any other address answers exception 02, as the T7 does for an
//! address it does not have) and a small circuit wired to it, [`T7Circuit`]:
//!
//! - `DAC0` drives `AIN0` through a first-order RC filter (time constant `tau_s`), plus
//!   Gaussian noise: a write→read loop with a visible step response;
//! - `DAC1` excites a quarter strain-gauge bridge read on `AIN1`:
//!   `V = Vex · (GF·ε/4) / (1 + GF·ε/2)` for the strain `ε` set in the model;
//! - the other inputs are grounded (noise only);
//! - every reading is clipped to its `AIN#_RANGE` (±10, ±1, ±0.1 or ±0.01 V), with a noise
//!   that shrinks with the range (the gain is larger);
//! - `FIO0` is jumpered to `FIO4`: FIO4, left an input, reads what FIO0 drives; other input
//!   lines read 1 (the T7's pull-ups).
//!
//! What the T7 does with values the driver never sends (a DAC beyond 0–5 V: clipped; a
//! range between two ranges: the next one up; a write to a read-only register: exception
//! 02) is this simulator's assumption, not the datasheet's word.
//!
//! Serve it with [`crate::modbus::sim::SimThread::tcp`]`(`[`device`]`(…))`.

use crate::modbus::frame::Request;
use crate::modbus::sim::{span, Device, Model};
use crate::modbus::{words, Table};
use crate::sensor::Prng;
use std::time::Instant;

// The manual's addresses, written here again rather than imported from the driver: a
// wrong address in the driver must make the tests fail, not move the simulator with it.
const AIN0: u16 = 0;
const DAC0: u16 = 1000;
const DIO0: u16 = 2000;
const FIO_STATE: u16 = 2500;
const AIN0_RANGE: u16 = 40000;
const PRODUCT_ID: u16 = 60000;
const FIRMWARE_VERSION: u16 = 60004;
const SERIAL_NUMBER: u16 = 60028;

/// The register blocks the T7 map has here: (first address, count, writable).
const MAP: [(u16, u16, bool); 8] = [
    (AIN0, 28, false),
    (DAC0, 4, true),
    (DIO0, 23, true),
    (FIO_STATE, 4, true),
    (AIN0_RANGE, 28, true),
    (PRODUCT_ID, 2, false),
    (FIRMWARE_VERSION, 2, false),
    (SERIAL_NUMBER, 2, false),
];

/// The circuit on the simulated T7, and its state.
#[derive(Debug)]
pub struct T7Circuit {
    /// The RC time constant between DAC0 and AIN0, s.
    pub tau_s: f64,
    /// The strain of the gauge on AIN1 (dimensionless: 1e-3 = 1000 µε).
    pub strain: f64,
    /// The gauge factor.
    pub gauge_factor: f64,
    /// The noise on the ±10 V range, V RMS (divided by 10 per range step below).
    pub noise_v: f64,
    /// `PRODUCT_ID` (7; set 4 to play a T4 at the address).
    pub product_id: f32,
    /// `SERIAL_NUMBER`.
    pub serial: u32,
    ain0: f64,
    outputs: u16,
    output_dirs: u16,
    last: Option<Instant>,
    rng: Prng,
}

impl Default for T7Circuit {
    fn default() -> Self {
        T7Circuit {
            tau_s: 0.05,
            strain: 0.0,
            gauge_factor: 2.0,
            noise_v: 0.5e-3,
            product_id: super::T7_PRODUCT_ID,
            serial: 470_012_345,
            ain0: 0.0,
            outputs: 0,
            output_dirs: 0,
            last: None,
            rng: Prng::new(7),
        }
    }
}

/// A T7 (unit 1) with `circuit` wired to it, AIN ranges ±10 V, DACs at 0 V.
pub fn device(circuit: T7Circuit) -> Device {
    let mut d = Device::new(1, 60_030);
    let set = |d: &mut Device, at: u16, r: [u16; 2]| {
        d.holding[at as usize] = r[0];
        d.holding[at as usize + 1] = r[1];
    };
    for ch in 0..super::N_AIN as u16 {
        set(&mut d, AIN0_RANGE + 2 * ch, words::from_f32(10.0));
    }
    set(&mut d, PRODUCT_ID, words::from_f32(circuit.product_id));
    set(&mut d, FIRMWARE_VERSION, words::from_f32(1.0299));
    set(&mut d, SERIAL_NUMBER, words::from_u32(circuit.serial));
    d.with_model(circuit)
}

impl T7Circuit {
    fn f32_at(d: &Device, at: u16) -> f64 {
        words::to_f32(&d.holding[at as usize..at as usize + 2]) as f64
    }

    fn advance(&mut self, d: &mut Device) {
        let now = Instant::now();
        let dt = self
            .last
            .map_or(0.0, |t| now.duration_since(t).as_secs_f64());
        self.last = Some(now);
        let dac0 = Self::f32_at(d, DAC0);
        let dac1 = Self::f32_at(d, DAC0 + 2);
        self.ain0 += (dac0 - self.ain0) * (1.0 - (-dt / self.tau_s.max(1e-6)).exp());
        let ge = self.gauge_factor * self.strain;
        let bridge = dac1 * (ge / 4.0) / (1.0 + ge / 2.0);
        for ch in 0..super::N_AIN as u16 {
            let range = Self::f32_at(d, AIN0_RANGE + 2 * ch);
            let clean = match ch {
                0 => self.ain0,
                1 => bridge,
                _ => 0.0,
            };
            let noisy = clean + self.noise_v * (range / 10.0) * self.rng.normal();
            let v = noisy.clamp(-range, range) as f32;
            let r = words::from_f32(v);
            d.holding[(AIN0 + 2 * ch) as usize] = r[0];
            d.holding[(AIN0 + 2 * ch) as usize + 1] = r[1];
        }
        // Lines: outputs read what they drive; FIO4 (an input) reads FIO0; others pull up.
        let mut state: u16 = 0xFFFF;
        for line in 0..16u16 {
            let bit = 1 << line;
            let level = if self.output_dirs & bit != 0 {
                self.outputs & bit != 0
            } else if line == 4 && self.output_dirs & 1 != 0 {
                self.outputs & 1 != 0
            } else {
                true
            };
            if !level {
                state &= !bit;
            }
        }
        d.holding[FIO_STATE as usize] = state & 0xFF;
        d.holding[FIO_STATE as usize + 1] = state >> 8;
        for line in 0..16u16 {
            d.holding[(DIO0 + line) as usize] = (state >> line) & 1;
        }
    }
}

impl Model for T7Circuit {
    fn before(&mut self, d: &mut Device, req: &Request) -> Result<(), u8> {
        let (table, address, count, write) = span(req);
        if matches!(table, Table::Coil | Table::DiscreteInput) {
            return Err(0x01); // the T7 map is registers only
        }
        let end = address as u32 + count as u32;
        let block = MAP
            .iter()
            .find(|(a, n, _)| address >= *a && end <= *a as u32 + *n as u32);
        match block {
            None => return Err(0x02),
            Some((_, _, false)) if write => return Err(0x02),
            _ => {}
        }
        self.advance(d);
        if table == Table::Input {
            // Functions 03 and 04 read the same map.
            let r = address as usize..end as usize;
            let copy = d.holding[r.clone()].to_vec();
            d.input[r].copy_from_slice(&copy);
        }
        Ok(())
    }

    fn after(&mut self, d: &mut Device, req: &Request) {
        let (_, address, count, write) = span(req);
        if !write {
            return;
        }
        for a in address..address + count {
            if (DIO0..DIO0 + 16).contains(&a) {
                let line = a - DIO0;
                self.output_dirs |= 1 << line;
                if d.holding[a as usize] != 0 {
                    self.outputs |= 1 << line;
                } else {
                    self.outputs &= !(1 << line);
                }
            }
            if a == FIO_STATE || a == FIO_STATE + 1 {
                // Writing a port's state drives its output lines (§13.0).
                let shift = 8 * (a - FIO_STATE);
                let v = (d.holding[a as usize] & 0xFF) << shift;
                let mask = 0xFF << shift;
                self.outputs = (self.outputs & !mask) | (v & self.output_dirs & mask);
            }
        }
        // DAC values beyond 0–5 V are clipped by the converter.
        for ch in 0..2u16 {
            let at = DAC0 + 2 * ch;
            let v = Self::f32_at(d, at);
            let c = if v.is_finite() {
                v.clamp(0.0, super::DAC_MAX_V)
            } else {
                0.0
            };
            let r = words::from_f32(c as f32);
            d.holding[at as usize] = r[0];
            d.holding[at as usize + 1] = r[1];
        }
        // A range written snaps to the next range up (the smallest that holds it).
        for ch in 0..super::N_AIN as u16 {
            let at = AIN0_RANGE + 2 * ch;
            let v = Self::f32_at(d, at);
            let r = super::RANGES
                .iter()
                .rev()
                .find(|r| **r >= v - 1e-9)
                .copied()
                .unwrap_or(10.0);
            let w = words::from_f32(r as f32);
            d.holding[at as usize] = w[0];
            d.holding[at as usize + 1] = w[1];
        }
        self.advance(d);
    }

    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}
