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
//! Figures are noisy on a shared 2-core machine: best of 3 rounds.

use crabby::hardware::{InOut, Input, Output};
use crabby_hardware::modbus::sim::{Device, SimThread};
use crabby_hardware::modbus::{ModbusInOut, Point};
use crabby_hardware::serial::SerialConfig;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

fn points(d: ModbusInOut) -> ModbusInOut {
    d.read_point(Point::holding("a", 0).u16())
        .read_point(Point::holding("b", 1).i16())
        .read_point(Point::holding("c", 2).f32())
        .write_point(Point::holding("sp", 10).u16())
}

/// Requests per second of `op` over about 1 s, best of 3.
fn rate(d: &mut ModbusInOut, write: bool) -> f64 {
    let mut best: f64 = 0.0;
    for _ in 0..3 {
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed() < Duration::from_secs(1) {
            if write {
                d.write(&[(n % 1000) as f64]).expect("write");
            } else {
                d.read().expect("read");
            }
            n += 1;
        }
        best = best.max(n as f64 / t.elapsed().as_secs_f64());
    }
    best
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
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let mut t = nix::sys::termios::tcgetattr(pty.slave.as_fd()).expect("tcgetattr");
        nix::sys::termios::cfmakeraw(&mut t);
        nix::sys::termios::tcsetattr(pty.slave.as_fd(), nix::sys::termios::SetArg::TCSANOW, &t)
            .expect("tcsetattr");
        let path = nix::unistd::ttyname(pty.slave.as_fd())
            .expect("ttyname")
            .to_string_lossy()
            .into_owned();
        let sim = SimThread::rtu(pty.master, Device::new(1, 100));
        let mut d = points(ModbusInOut::rtu("rtu", SerialConfig::new(&path, baud)));
        report(&format!("Modbus RTU (pty, {baud} baud)"), &mut d);
        drop(sim);
        drop(pty.slave);
    }
}
