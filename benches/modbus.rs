//! Modbus request rates against the simulator (prints figures; run with
//! `cargo bench --bench modbus`).
//!
//! `ModbusInOut::read` of one request (4 holding registers: a u16, an i16 and an f32) and
//! `write` of one register, in a loop for about 1 s each, best of 3 rounds:
//! - TCP against `modbus::sim` on a loopback port (a thread of this process);
//! - RTU against the simulator on a pseudo-terminal at 115200 and 19200 baud. A pty moves
//!   bytes at memory speed whatever the baud rate, so the RTU figure is bounded by the
//!   driver's own inter-frame silence (§2.5.1.1: 1.75 ms above 19200 baud, 3.5 characters
//!   below) and the simulator's turnaround, not by the line: on a real line add the
//!   frames' transmission time (8 + 13 bytes ≈ 1.8 ms at 115200 baud, 11 ms at 19200).
//!
//! Then the device drivers against their simulators (same method, loop calls per second
//! and the Modbus requests each takes): the LabJack T7 (TCP; `read` of AIN0–AIN3 in one
//! request, `write` of DAC0), the Eurotherm 3200 (RTU 19200 baud; `read` = process block +
//! status word, two requests; `write` = the setpoint) and the Oriental Motor AZ (RTU 115200
//! baud; `position_and_speed`, one request; `poll`, one request;
//! `set_position`, one request).
//!
//! Figures are noisy on a shared 2-core machine: best of 3 rounds.

mod common;

use common::{calls, pty};
use crabby::hardware::{Actuator, InOut, Input, Output, PositionFeedback, Positioner};
use crabby_hardware::modbus::sim::{Device, SimThread};
use crabby_hardware::modbus::{ModbusInOut, Point};
use crabby_hardware::serial::SerialConfig;

fn points(d: ModbusInOut) -> ModbusInOut {
    d.read_point(Point::holding("a", 0).u16())
        .read_point(Point::holding("b", 1).i16())
        .read_point(Point::holding("c", 2).f32())
        .write_point(Point::holding("sp", 10).u16())
}

/// Requests per second of reads (or writes) of `d` over about 1 s, best of 3.
fn rate(d: &mut ModbusInOut, write: bool) -> f64 {
    calls(|n| {
        if write {
            d.write(&[(n % 1000) as f64]).expect("write");
        } else {
            d.read().expect("read");
        }
    })
}

fn report(what: &str, d: &mut ModbusInOut) {
    d.open().expect("open");
    let r = rate(d, false);
    let w = rate(d, true);
    let s = d.stats();
    println!(
        "{what:<28} read {r:>8.0} requests/s ({:>7.1} µs each)   write {w:>8.0} requests/s   retries {}",
        1e6 / r,
        s.retries
    );
    d.close().expect("close");
}

fn main() {
    let sim = SimThread::tcp(Device::new(1, 100)).expect("simulator");
    let mut d = points(ModbusInOut::tcp(
        "tcp",
        sim.addr.expect("tcp address").to_string(),
    ));
    report("Modbus TCP (loopback)", &mut d);
    drop(sim);

    for baud in [115_200, 19_200] {
        let (master, slave, path) = pty();
        let sim = SimThread::rtu(master, Device::new(1, 100));
        let mut d = points(ModbusInOut::rtu("rtu", SerialConfig::new(&path, baud)));
        report(&format!("Modbus RTU (pty, {baud} baud)"), &mut d);
        drop(sim);
        drop(slave);
    }
    drivers();
}

fn line(what: &str, per_s: f64, requests: u32) {
    println!(
        "{what:<44} {per_s:>8.0} calls/s ({:>7.1} µs each, {requests} request{} each, {:>8.0} requests/s)",
        1e6 / per_s,
        if requests == 1 { "" } else { "s" },
        per_s * requests as f64
    );
}

fn drivers() {
    use crabby_hardware::{eurotherm, labjack, oriental};
    println!();
    {
        let sim = SimThread::tcp(labjack::sim::device(labjack::sim::T7Circuit::default()))
            .expect("simulator");
        let mut d = labjack::T7::tcp("t7", sim.addr.expect("tcp").to_string())
            .ain("a0", 0)
            .ain("a1", 1)
            .ain("a2", 2)
            .ain("a3", 3)
            .dac(0);
        d.open().expect("open");
        line(
            "LabJack T7 (TCP) read AIN0-3",
            calls(|_| drop(d.read().expect("read"))),
            1,
        );
        line(
            "LabJack T7 (TCP) write DAC0",
            calls(|n| d.write(&[(n % 50) as f64 / 10.0]).expect("write")),
            1,
        );
        d.close().expect("close");
    }
    {
        let (master, _slave, path) = pty();
        let sim = SimThread::rtu(master, eurotherm::sim::device(1, Default::default()));
        let mut d = eurotherm::Eurotherm3200::new("3200", SerialConfig::new(&path, 19_200));
        d.open().expect("open");
        line(
            "Eurotherm 3200 (RTU 19200) read",
            calls(|_| drop(d.read().expect("read"))),
            2,
        );
        line(
            "Eurotherm 3200 (RTU 19200) write setpoint",
            calls(|n| d.write(&[20.0 + (n % 100) as f64]).expect("write")),
            1,
        );
        d.close().expect("close");
        drop(sim);
    }
    {
        let (master, _slave, path) = pty();
        let sim = SimThread::rtu(master, oriental::sim::device(1, Default::default()));
        let mut m = oriental::AzMotor::new("az", SerialConfig::new(&path, 115_200))
            .travel(-1000.0, 1000.0)
            .max_speed(100.0);
        m.open().expect("open");
        line(
            "Oriental AZ (RTU 115200) position_and_speed",
            calls(|_| {
                m.position_and_speed().expect("position_and_speed");
            }),
            1,
        );
        line(
            "Oriental AZ (RTU 115200) poll",
            calls(|_| m.poll().expect("poll")),
            1,
        );
        line(
            "Oriental AZ (RTU 115200) set_position",
            calls(|n| m.set_position((n % 100) as f64, Some(50.0)).expect("move")),
            1,
        );
        m.stop().expect("stop");
        m.close().expect("close");
        drop(sim);
    }
}
