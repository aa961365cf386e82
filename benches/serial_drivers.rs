//! Request rates of the serial instrument drivers against their simulators (prints figures;
//! run with `cargo bench --bench serial_drivers`).
//!
//! Each driver talks to its simulator (`crabby_hardware::serial::sim`) on a pseudo-terminal,
//! the simulator on a thread of this process. A pty moves bytes at memory speed whatever the
//! baud rate, so these figures are the driver's and the simulator's turnaround; on a real
//! line add the bytes' transmission time (about 1 ms per 10 bytes at 9600 baud, 0.2 ms at
//! 57 600) and the instrument's own processing time. The 34420A simulator integrates for
//! its NPLC (0.02 PLC = 0.4 ms at 50 Hz), as the meter does.
//!
//! Figures are noisy on a shared machine: best of 3 rounds of about 1 s.

mod common;

use common::{calls, pty};
use crabby::hardware::{Actuator, InOut, Input, Output, PositionFeedback};
use crabby_hardware::serial::sim::{
    AlicatMfc as SimMfc, LineDevice, MDriveSim, Nanovoltmeter34420A, SimThread, Smc100,
};
use crabby_hardware::serial::{AlicatMfc, Keysight34420A, MDrive, NewportSmc100, SerialConfig};
use std::time::Duration;

fn line(what: &str, r: f64) {
    println!("{what:<58} {r:>8.0} requests/s ({:>7.1} µs each)", 1e6 / r);
}

fn serial(path: &str, baud: u32) -> SerialConfig {
    SerialConfig::new(path, baud).timeout(Duration::from_millis(500))
}

fn with_sim<D: LineDevice>(dev: D, body: impl FnOnce(&str)) {
    let (master, _slave, path) = pty();
    let sim = SimThread::spawn(master, dev);
    body(&path);
    drop(sim);
}

fn main() {
    with_sim(Nanovoltmeter34420A::new(1e-3, 1), |path| {
        let mut d = Keysight34420A::new("34420A", serial(path, 9600), "U(V)")
            .range(Some(0.01))
            .nplc(0.02);
        d.open().expect("open");
        line(
            "Keysight 34420A: read (READ?, 0.02 PLC)",
            calls(|_| {
                d.read().expect("read");
            }),
        );
        d.command("SENS1:VOLT:DC:NPLC 1").expect("nplc");
        line(
            "Keysight 34420A: read (READ?, 1 PLC = 20 ms)",
            calls(|_| {
                d.read().expect("read");
            }),
        );
        d.close().expect("close");
    });
    with_sim(SimMfc::new(10.0, 2), |path| {
        let mut d = AlicatMfc::new("mfc", serial(path, 19_200), 10.0);
        d.open().expect("open");
        line(
            "Alicat MFC: read (poll A<CR> → data frame)",
            calls(|_| {
                d.read().expect("read");
            }),
        );
        line(
            "Alicat MFC: write (setpoint AS…, frame checked)",
            calls(|n| {
                d.write(&[(n % 10) as f64 * 0.5]).expect("write");
            }),
        );
        d.close().expect("close");
    });
    with_sim(Smc100::new(0.0), |path| {
        let mut d = NewportSmc100::new("smc100", serial(path, 57_600)).home_at_open(true);
        d.open().expect("open");
        line(
            "Newport SMC100: position (1TP)",
            calls(|_| {
                d.position().expect("position");
            }),
        );
        line(
            "Newport SMC100: poll (1TS state and errors)",
            calls(|_| {
                d.poll().expect("poll");
            }),
        );
        d.close().expect("close");
    });
    with_sim(MDriveSim::new(), |path| {
        let mut d = MDrive::new("mdrive", serial(path, 9600), 1000.0);
        d.open().expect("open");
        line(
            "MDrive: position (PR P)",
            calls(|_| {
                d.position().expect("position");
            }),
        );
        line(
            "MDrive: set_speed (SL, then PR ER)",
            calls(|n| {
                d.set_speed(if n % 2 == 0 { 1.0 } else { 0.0 })
                    .expect("speed");
            }),
        );
        d.stop().expect("stop");
        d.close().expect("close");
    });
}
