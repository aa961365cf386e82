//! A furnace held by a PID: a temperature ramp, a hold, then a step, with a safety limit,
//! everything recorded in one file. No hardware: the simulated furnace (first order,
//! τ = 5 s, 520 °C at full power) runs 10× faster than real time, so the run takes 8 s.
//!
//! Graph: Generator (setpoint `T_target`) → PID ← furnace (`T(C)`), PID → furnace
//! (`power(%)`); Limits on `T(C)` (warning above 330 °C, alarm, which stops the test, above
//! 400 °C); one Recorder fed by the furnace and the PID. At the end it prints the PID's
//! figures on the final step: overshoot, settling time (±0.5 °C), steady error.
//!
//! `cargo run --example furnace_pid -- [--out DIR]`

use anyhow::Context as _;
use crabby::{Settings, Test};
use crabby_blocks::{
    Generator, IOBlock, Limit, Limits, Path, Pid, Recorder, Setpoint, StepResponse,
};
use crabby_hardware::sensor::FakeFurnace;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = match args.iter().position(|a| a == "--out") {
        Some(i) => PathBuf::from(args.get(i + 1).context("--out needs a folder")?),
        None => PathBuf::from("results/furnace_pid"),
    };
    std::fs::create_dir_all(&out)?;
    let csv = crabby_blocks::free_name(&out.join("furnace.csv"));

    let mut test = Test::new("furnace_pid");
    test.log_file(Some(out.join("furnace_pid.log")));
    // Ramp 20 → 300 °C at 100 °C/s, hold 2 s, then a step to 320 °C held 3 s.
    let setpoint = test.add_with(
        Generator::new([
            Path::ramp(100.0).from(20.0).until("delay=2.8"),
            Path::constant(300.0).until("delay=2"),
            Path::constant(320.0).until("delay=3"),
        ])?
        .cmd_label("T_target")
        .path_index_label("phase")
        .spam(true)
        .end_delay(Some(0.0)),
        Settings::new().name("setpoint").freq(100.0),
    );
    let pid = test.add_with(
        Pid::new("T(C)", Setpoint::label("T_target"), "power(%)")
            .gains(0.4, 0.8, 0.0)
            .out_limits(0.0, 100.0),
        Settings::new().name("pid"),
    );
    let furnace = test.add_with(
        IOBlock::input_output(FakeFurnace::new().noise(0.1, 7).simulation_speed(10.0))
            .cmd_labels(["power(%)"])
            .exit_cmd(vec![0.0]),
        Settings::new().name("furnace").freq(100.0),
    );
    let limits = test.add_with(
        Limits::new([Limit::new("T(C)")
            .warn_max(330.0)
            .alarm_max(400.0)
            .hysteresis(2.0)
            .name("furnace overheat")]),
        Settings::new().name("limits"),
    );
    let rec = test.add_with(Recorder::new(&csv), Settings::new().name("record"));
    test.link(setpoint, pid);
    test.link(setpoint, rec);
    test.link(furnace, pid);
    test.link(pid, furnace);
    test.link(furnace, limits);
    test.link(furnace, rec);
    test.link(pid, rec);
    let report = test.run()?;
    anyhow::ensure!(!report.failed(), "the run failed:\n{report}");

    // Figures of the final step (300 → 320 °C, at the start of phase 2).
    let text = std::fs::read_to_string(&csv)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("empty file")?.split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name);
    let (it, itemp, iphase) = (
        at("t(s)").context("t(s)")?,
        at("T(C)").context("T(C)")?,
        at("phase").context("phase")?,
    );
    let mut temps = Vec::new();
    let mut step_t = None;
    for l in lines {
        let c: Vec<&str> = l.split(',').collect();
        let t: f64 = c[it].parse()?;
        if let Ok(p) = c[iphase].parse::<f64>() {
            if p == 2.0 && step_t.is_none() {
                step_t = Some(t);
            }
        }
        if let Ok(v) = c[itemp].parse::<f64>() {
            temps.push((t, v));
        }
    }
    let t_step = step_t.context("the step never started")?;
    let ramp_err = temps
        .iter()
        .filter(|(t, _)| (0.5..2.8).contains(t))
        .map(|(t, v)| (20.0 + 100.0 * t - v).abs())
        .fold(0.0, f64::max);
    let step = StepResponse::measure(&temps, t_step, 300.0, 320.0, 0.5)
        .context("the step never settled within ±0.5 °C")?;
    println!(
        "recorded {} rows to {}",
        text.lines().count() - 1,
        csv.display()
    );
    println!("ramp tracking (100 °C/s): largest error {ramp_err:.2} °C");
    println!(
        "step 300 → 320 °C: overshoot {:.2} °C, settling time (±0.5 °C) {:.2} s, steady error {:+.3} °C (max {:.2} °C)",
        step.overshoot, step.settling_time, step.steady_error, step.steady_max_error
    );
    println!("(simulated furnace at 10× real time: τ = 0.5 s of wall time)");
    Ok(())
}
