//! The Modbus device drivers in real forked tests, each against its simulator in a process
//! of its own: a LabJack T7 in an IOBlock (DAC0 commands, AIN0 through the simulated RC
//! filter, recorded) and an Oriental Motor AZ in a Machine (a position command, the
//! trapezoidal move recorded with the driver's status).

mod common;

use common::blocks::{col, read_csv_text, Source};
#[path = "common/devices.rs"]
mod devices;
use common::TempDir;
use crabby::{Label, Settings, Test};
use crabby_blocks::{ActuatorConfig, IOBlock, Machine, Recorder};
use crabby_hardware::serial::SerialConfig;
use devices::{play_modbus_rtu, play_modbus_tcp, raw_pty};
use std::time::Duration;

fn main() {
    common::main(&[
        common::case(
            "t7_ioblock_dac_to_ain_recorded",
            30,
            t7_ioblock_dac_to_ain_recorded,
        ),
        common::case(
            "az_machine_position_move_recorded",
            30,
            az_machine_position_move_recorded,
        ),
    ]);
}

/// The numbers in the column `label` (cells that are not numbers left out).
fn column(
    header: &[String],
    rows: &[Vec<String>],
    label: &str,
) -> std::result::Result<Vec<f64>, String> {
    let i = col(header, label)?;
    Ok(rows
        .iter()
        .filter_map(|r| r.get(i).and_then(|c| c.parse().ok()))
        .collect())
}

fn t7_ioblock_dac_to_ain_recorded() -> std::result::Result<(), String> {
    use crabby_hardware::labjack::{sim, T7};
    let dir = TempDir::new("drv-t7");
    let path = dir.path().join("t7.csv");
    let mut children = crabby::process::ChildSet::new();
    let addr = play_modbus_tcp(&mut children, "t7-sim", || {
        sim::device(sim::T7Circuit::default())
    })?;
    let daq = T7::tcp("t7", &addr)
        .timeout(Duration::from_millis(500))
        .ain("AIN0(V)", 0)
        .dac(0);
    let mut test = Test::new("t7");
    test.log_file(None);
    let src = test.add_with(
        Source {
            label: Label::new("dac"),
            value: |t| if t < 0.6 { 1.0 } else { 3.0 },
            stop_at: Some(1.4),
        },
        Settings::new().freq(50.0),
    );
    let io = test.add_with(
        IOBlock::input_output(daq).cmd_labels(["dac"]),
        Settings::new().name("t7").freq(100.0),
    );
    let rec = test.add(Recorder::new(&path));
    test.link(src, io);
    test.link(io, rec);
    let run = test.run();
    children.shutdown(Duration::ZERO, Duration::from_secs(2));
    let report = run.map_err(|e| format!("run: {e}"))?;
    let (header, rows) = read_csv_text(&path)?;
    let t = column(&header, &rows, "t(s)")?;
    let v = column(&header, &rows, "AIN0(V)")?;
    ensure!(v.len() > 60, "{} rows ({report})", v.len());
    // Settled on 1 V before the step (τ = 50 ms), then on 3 V, with the rise in between.
    let at = |lo: f64, hi: f64| -> Vec<f64> {
        t.iter()
            .zip(&v)
            .filter(|(t, _)| **t > lo && **t < hi)
            .map(|(_, v)| *v)
            .collect()
    };
    let before = at(0.4, 0.55);
    let after = at(1.1, 1.4);
    ensure!(
        !before.is_empty() && before.iter().all(|v| (v - 1.0).abs() < 0.01),
        "AIN0 before the step: {before:?}"
    );
    ensure!(
        !after.is_empty() && after.iter().all(|v| (v - 3.0).abs() < 0.01),
        "AIN0 after the step: {after:?}"
    );
    ensure!(
        v.iter().any(|v| *v > 1.1 && *v < 2.9),
        "no reading on the RC rise"
    );
    Ok(())
}

fn az_machine_position_move_recorded() -> std::result::Result<(), String> {
    use crabby_hardware::oriental::{sim, AzMotor};
    let dir = TempDir::new("drv-az");
    let path = dir.path().join("az.csv");
    let (master, slave, port) = raw_pty()?;
    let mut children = crabby::process::ChildSet::new();
    play_modbus_rtu(&mut children, "az-sim", master, || {
        sim::device(1, sim::AzSim::default())
    })?;
    let axis = AzMotor::new(
        "az",
        SerialConfig::new(&port, 115_200).timeout(Duration::from_millis(200)),
    )
    .steps_per_mm(100.0)
    .accel(100.0)
    .travel(0.0, 20.0)
    .max_speed(20.0);
    let mut test = Test::new("az");
    test.log_file(None);
    let src = test.add_with(
        Source {
            label: Label::new("x"),
            value: |_| 5.0,
            stop_at: Some(1.2),
        },
        Settings::new().freq(50.0),
    );
    let m = test.add_with(
        Machine::new().actuator(
            ActuatorConfig::position(axis, "x")
                .move_speed(10.0)
                .position_label("x(mm)")
                .speed_label("v(mm/s)")
                .status_label("az"),
        ),
        Settings::new().name("machine").freq(100.0),
    );
    let rec = test.add(Recorder::new(&path));
    test.link(src, m);
    test.link(m, rec);
    let run = test.run();
    children.shutdown(Duration::ZERO, Duration::from_secs(2));
    drop(slave);
    let report = run.map_err(|e| format!("run: {e}"))?;
    let (header, rows) = read_csv_text(&path)?;
    let x = column(&header, &rows, "x(mm)")?;
    let v = column(&header, &rows, "v(mm/s)")?;
    ensure!(x.len() > 50, "{} rows ({report})", x.len());
    ensure!(x.windows(2).all(|w| w[1] >= w[0]), "went backwards: {x:?}");
    ensure!(v.iter().all(|v| *v <= 10.0 + 1e-9), "faster than 10 mm/s");
    // 5 mm at 10 mm/s and 100 mm/s²: 0.6 s; the test ran about 1.2 s.
    ensure!(*x.last().unwrap() == 5.0, "did not arrive: {:?}", x.last());
    ensure!(*v.last().unwrap() == 0.0, "still moving at the end");
    let s = header
        .iter()
        .position(|h| h == "az")
        .ok_or(format!("no status column in {header:?}"))?;
    ensure!(
        rows.iter()
            .any(|r| r.get(s).is_some_and(|c| c.starts_with("moving"))),
        "never reported moving"
    );
    Ok(())
}
