//! The serial instrument drivers in a real Test, each against its simulator played on a
//! pseudo-terminal by a child process (the Test forks its Blocks, so the simulator cannot be
//! a thread of this process): an Alicat flow controller driven by an IOBlock (setpoint in,
//! data frame out), and a Newport SMC100 axis driven in position by a Machine.

mod common;

use common::blocks::{get, rows, Collector, Source};
#[path = "common/devices.rs"]
mod devices;
use common::TempDir;
use crabby::{Label, Settings, Test};
use crabby_blocks::{ActuatorConfig, IOBlock, Machine};
use crabby_hardware::serial::sim::{serve, AlicatMfc as SimMfc, LineDevice, Smc100};
use crabby_hardware::serial::{AlicatMfc, NewportSmc100, SerialConfig};
use devices::raw_pty;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Duration;

/// A pty whose master is played by `device` in a child process: (slave kept open, slave
/// path, child pid). Call [`end_player`] after the Test.
fn player<D: LineDevice>(
    device: D,
) -> std::result::Result<(std::os::fd::OwnedFd, String, nix::unistd::Pid), String> {
    let (master, slave, path) = raw_pty()?;
    // The simulator in a child (this case's process has no thread yet), ended by
    // `end_player` once the Test is over (it inherited a slave descriptor, so it would not
    // see the port close).
    let pid = crabby::process::fork_child(move || {
        let dev = Mutex::new(device);
        let never = AtomicBool::new(false);
        serve(master, &dev, &never, &never, &never);
        0
    })
    .map_err(|e| e.to_string())?;
    Ok((slave, path, nix::unistd::Pid::from_raw(pid)))
}

/// Ends a simulator child started by [`player`].
fn end_player(slave: std::os::fd::OwnedFd, pid: nix::unistd::Pid) {
    drop(slave);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
}

fn alicat_ioblock_follows_a_setpoint_step() -> std::result::Result<(), String> {
    let dir = TempDir::new("drv-alicat");
    let data = dir.path().join("data");
    let (slave, path, pid) = player(SimMfc::new(10.0, 1))?;
    let mfc = AlicatMfc::new(
        "mfc",
        SerialConfig::new(&path, 19_200).timeout(Duration::from_millis(300)),
        10.0,
    )
    .gas(8);
    let mut test = Test::new("alicat");
    test.log_file(None);
    let sp = test.add_with(
        Source {
            label: Label::new("sp"),
            value: |t| if t < 0.2 { 0.0 } else { 5.0 },
            stop_at: Some(1.2),
        },
        Settings::new().freq(50.0),
    );
    let io = test.add_with(
        IOBlock::input_output(mfc).cmd_labels(["sp"]),
        Settings::new().name("mfc").freq(50.0),
    );
    let col = test.add(Collector {
        path: data.clone(),
        rows: Vec::new(),
    });
    test.link(sp, io);
    test.link(io, col);
    let run = test.run();
    end_player(slave, pid);
    let report = run.map_err(|e| format!("run: {e}"))?;
    let r = rows(&data)?;
    ensure!(r.len() > 20, "too few readings: {} ({report})", r.len());
    // Before the step: no flow; at the end (τ = 50 ms, 1 s after the step): 5 SLPM.
    let first = get(&r[0], "Qm").ok_or("no Qm")?;
    ensure!(first.abs() < 0.1, "flow before the step: {first}");
    let last = r.last().ok_or("no rows")?;
    let (q, s) = (
        get(last, "Qm").ok_or("no Qm")?,
        get(last, "setpoint").ok_or("no setpoint")?,
    );
    ensure!(
        (q - 5.0).abs() < 0.1 && s == 5.0,
        "end: Qm {q}, setpoint {s}"
    );
    // The response is gradual: some reading sits between 10 % and 90 % of the step.
    ensure!(
        r.iter()
            .filter_map(|x| get(x, "Qm"))
            .any(|q| q > 0.5 && q < 4.5),
        "no reading on the first-order rise"
    );
    Ok(())
}

fn smc100_machine_moves_in_position() -> std::result::Result<(), String> {
    let dir = TempDir::new("drv-smc100");
    let data = dir.path().join("data");
    // NOT REFERENCED at 0.5 mm; 2 mm/s, 20 mm/s²: a 1.5 mm move takes about 0.85 s.
    let mut dev = Smc100::new(0.5);
    dev.va = 2.0;
    dev.va_max = 4.0;
    dev.ac = 20.0;
    let (slave, path, pid) = player(dev)?;
    let axis = NewportSmc100::new(
        "TRA6PPD",
        SerialConfig::new(&path, 57_600).timeout(Duration::from_millis(300)),
    )
    .home_at_open(true);
    let mut test = Test::new("smc100");
    test.log_file(None);
    let src = test.add_with(
        Source {
            label: Label::new("target"),
            value: |t| if t < 0.2 { 0.0 } else { 1.5 },
            stop_at: Some(1.6),
        },
        Settings::new().freq(50.0),
    );
    let m = test.add_with(
        Machine::new().actuator(ActuatorConfig::position(axis, "target").position_label("x")),
        Settings::new().name("axis").freq(50.0),
    );
    let col = test.add(Collector {
        path: data.clone(),
        rows: Vec::new(),
    });
    test.link(src, m);
    test.link(m, col);
    let run = test.run();
    end_player(slave, pid);
    let report = run.map_err(|e| format!("run: {e}"))?;
    let x: Vec<f64> = rows(&data)?.iter().filter_map(|r| get(r, "x")).collect();
    ensure!(x.len() > 20, "too few positions: {} ({report})", x.len());
    // Homed at open: 0 at the start; at the target at the end; a ramp in between.
    ensure!(x[0].abs() < 1e-6, "first position {} (not homed?)", x[0]);
    let last = *x.last().ok_or("no rows")?;
    ensure!((last - 1.5).abs() < 1e-4, "end position {last}");
    ensure!(
        x.iter().filter(|v| **v > 0.1 && **v < 1.4).count() >= 5,
        "no trapezoid: {x:?}"
    );
    ensure!(
        x.windows(2).all(|w| w[1] >= w[0] - 1e-9),
        "position went backwards: {x:?}"
    );
    Ok(())
}

fn main() {
    common::main(&[
        common::case(
            "alicat_ioblock_follows_a_setpoint_step",
            30,
            alicat_ioblock_follows_a_setpoint_step,
        ),
        common::case(
            "smc100_machine_moves_in_position",
            30,
            smc100_machine_moves_in_position,
        ),
    ]);
}
