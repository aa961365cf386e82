//! The Block library in real graphs (forked): the PID holding the simulated furnace, its
//! anti-windup under saturation, the Multiplexer merging two rates into one file, Mean,
//! safety limits stopping the test, a pause that holds a motor and the Generator's clock,
//! and a button press driving the Generator.

mod common;

use common::TempDir;
use crabby::{
    Block, Context, Flow, IncidentKind, Label, Result, Sample, Settings, StopCause, Test,
};
use crabby_blocks::{
    ActuatorConfig, Button, Generator, IOBlock, Limit, LimitAction, Limits, LinkReader, Machine,
    Mean, Multiplexer, Path, Pause, Pid, Recorder, Setpoint, Sink, StepResponse, Synchronizer,
};
use crabby_hardware::motor::FakeStepperMotor;
use crabby_hardware::sensor::FakeFurnace;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::Path as FsPath;

fn quiet(test: &mut Test) {
    test.log_file(None);
}

/// The rows of a CSV file as label → value (empty cells left out).
fn rows(path: &FsPath) -> std::result::Result<Vec<HashMap<String, f64>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty file")?.split(',').collect();
    Ok(lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .filter_map(|(h, v)| Some((h.to_string(), v.parse::<f64>().ok()?)))
                .collect()
        })
        .collect())
}

fn col(rows: &[HashMap<String, f64>], x: &str, y: &str) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|r| Some((*r.get(x)?, *r.get(y)?)))
        .collect()
}

/// Sends `label = f(t)` with `t(s)` at its rate; ends the test at `stop_at`.
struct Source {
    label: &'static str,
    f: fn(f64) -> f64,
    stop_at: Option<f64>,
}
impl Block for Source {
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec![Label::new("t(s)"), Label::new(self.label)])
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let t = ctx.t();
        ctx.send(&Sample::new().with("t(s)", t).with(self.label, (self.f)(t)))?;
        Ok(match self.stop_at {
            Some(s) if t >= s => Flow::Stop,
            _ => Flow::Continue,
        })
    }
}

/// The furnace loop: a Generator's setpoint, the PID, the furnace (10× real time, τ = 0.5 s)
/// read and commanded at 100 Hz, everything in one file from two senders.
fn furnace_loop(
    dir: &TempDir,
    setpoint: f64,
    hold_s: f64,
) -> std::result::Result<(crabby::Report, Vec<HashMap<String, f64>>), String> {
    let csv = dir.path().join("furnace.csv");
    let mut test = Test::new("furnace-pid");
    quiet(&mut test);
    let gen = test.add_with(
        Generator::new([Path::constant(setpoint).until(format!("delay={hold_s}").as_str())])
            .map_err(|e| e.to_string())?
            .cmd_label("T_target")
            .end_delay(Some(0.0)),
        Settings::new().name("setpoint").freq(100.0),
    );
    let pid = test.add_with(
        Pid::new("T(C)", Setpoint::label("T_target"), "power(%)")
            .gains(0.4, 0.8, 0.0)
            .out_limits(0.0, 100.0)
            .send_terms(true),
        Settings::new().name("pid"),
    );
    let furnace = test.add_with(
        IOBlock::input_output(FakeFurnace::new().noise(0.1, 1).simulation_speed(10.0))
            .cmd_labels(["power(%)"])
            .exit_cmd(vec![0.0]),
        Settings::new().name("furnace").freq(100.0),
    );
    let rec = test.add_with(Recorder::new(&csv), Settings::new().name("rec"));
    test.link(gen, pid);
    test.link(furnace, pid);
    test.link(pid, furnace);
    test.link(furnace, rec);
    test.link(pid, rec);
    let report = test.run().map_err(|e| format!("run: {e}"))?;
    ensure!(!report.failed(), "{report}");
    // Every sample reached the file. (The PID's last output may reach the furnace after
    // the furnace finished: an undelivered command at the stop, not lost data.)
    ensure!(
        report
            .links
            .iter()
            .filter(|l| l.to == "rec")
            .all(|l| l.lossless()),
        "{report}"
    );
    Ok((report, rows(&csv)?))
}

fn pid_settles_the_furnace_on_a_step() -> std::result::Result<(), String> {
    let dir = TempDir::new("blocks-pid");
    let (report, r) = furnace_loop(&dir, 200.0, 4.0)?;
    let temps = col(&r, "t(s)", "T(C)");
    ensure!(temps.len() > 300, "{} readings ({report})", temps.len());
    // The setpoint arrives with the Generator's first loop: the step is at t ≈ 0.
    let step = StepResponse::measure(&temps, 0.0, 20.0, 200.0, 0.5)
        .ok_or_else(|| format!("never settled within ±0.5 °C: last {:?}", temps.last()))?;
    println!(
        "furnace step 20 → 200 °C (τ = 0.5 s): overshoot {:.2} °C, settling (±0.5 °C) {:.2} s, steady error {:.3} °C (max {:.2})",
        step.overshoot, step.settling_time, step.steady_error, step.steady_max_error
    );
    ensure!(step.settling_time < 3.0, "{step:?}");
    ensure!(step.steady_max_error < 0.5, "{step:?}");
    ensure!(step.steady_error.abs() < 0.1, "{step:?}");
    // One file from two senders: PID rows carry the terms, furnace rows the temperature.
    ensure!(
        r.iter()
            .any(|x| x.contains_key("power(%)_i") && !x.contains_key("T(C)")),
        "no PID row"
    );
    Ok(())
}

fn pid_anti_windup_under_saturation() -> std::result::Result<(), String> {
    let dir = TempDir::new("blocks-windup");
    // 480 °C needs 92 % of the heater: the start of the rise saturates the output.
    let (_, r) = furnace_loop(&dir, 480.0, 6.0)?;
    let pid = col(&r, "power(%)", "power(%)_i");
    let saturated = pid.iter().filter(|p| p.0 >= 100.0).count();
    ensure!(
        saturated > 20,
        "the output never saturated ({saturated} rows)"
    );
    // While saturated, the integral never grows (conditional integration).
    for w in pid.windows(2) {
        if w[0].0 >= 100.0 && w[1].0 >= 100.0 {
            ensure!(
                w[1].1 <= w[0].1 + 1e-9,
                "integral wound up while saturated: {w:?}"
            );
        }
    }
    let temps = col(&r, "t(s)", "T(C)");
    let step = StepResponse::measure(&temps, 0.0, 20.0, 480.0, 0.5).ok_or_else(|| {
        let n = temps.len();
        format!("never settled: {:?}", &temps[n.saturating_sub(40)..])
    })?;
    println!(
        "furnace step 20 → 480 °C, saturated for {saturated} PID outputs: overshoot {:.2} °C, settling {:.2} s",
        step.overshoot, step.settling_time
    );
    ensure!(step.overshoot < 1.0, "{step:?}");
    Ok(())
}

fn multiplexer_and_mean_in_a_graph() -> std::result::Result<(), String> {
    let dir = TempDir::new("blocks-mux");
    let mux_csv = dir.path().join("mux.csv");
    let mean_csv = dir.path().join("mean.csv");
    let mut test = Test::new("mux");
    quiet(&mut test);
    let fast = test.add_with(
        Source {
            label: "F(N)",
            f: |t| 3.0 * t + 1.0,
            stop_at: Some(1.5),
        },
        Settings::new().name("fast").freq(500.0),
    );
    let slow = test.add_with(
        Source {
            label: "Exx(%)",
            f: |t| 1.0 - 2.0 * t,
            stop_at: None,
        },
        Settings::new().name("slow").freq(37.0),
    );
    let mux = test.add_with(
        Multiplexer::new(100.0).labels(["F(N)", "Exx(%)"]),
        Settings::new().name("mux"),
    );
    let mean = test.add_with(Mean::new(0.25), Settings::new().name("mean"));
    let merged_csv = dir.path().join("merged.csv");
    let merged = test.add_with(
        Recorder::new(&merged_csv).merge_on_time(100.0),
        Settings::new().name("rec-merged"),
    );
    let rec = test.add_with(Recorder::new(&mux_csv), Settings::new().name("rec"));
    let rec_mean = test.add_with(Recorder::new(&mean_csv), Settings::new().name("rec-mean"));
    let reader = test.add_with(
        LinkReader::new().max_lines_per_s(1.0),
        Settings::new().name("reader"),
    );
    let sink = test.add_with(Sink::new(), Settings::new().name("sink"));
    test.link(fast, mux);
    test.link(slow, mux);
    test.link(fast, mean);
    test.link(mux, rec);
    test.link(mean, rec_mean);
    test.link(slow, reader);
    test.link(fast, sink);
    test.link(fast, merged);
    test.link(slow, merged);
    let report = test.run().map_err(|e| format!("run: {e}"))?;
    ensure!(!report.failed() && report.samples_lost() == 0, "{report}");
    // The Recorder merging on time wrote the same rows as Multiplexer → Recorder.
    let a = std::fs::read_to_string(&mux_csv).map_err(|e| e.to_string())?;
    let b = std::fs::read_to_string(&merged_csv).map_err(|e| e.to_string())?;
    let sorted = |t: &str| {
        let mut l: Vec<String> = t
            .lines()
            .skip(1)
            .map(|l| {
                let mut c: Vec<&str> = l.split(',').collect();
                c[1..].sort();
                c.join(",")
            })
            .collect();
        l.sort();
        l
    };
    ensure!(
        sorted(&a) == sorted(&b) && !b.is_empty(),
        "merged file differs:\n{a}\n---\n{b}"
    );
    let r = rows(&mux_csv)?;
    ensure!(r.len() > 100, "{} rows", r.len());
    let mut prev: Option<f64> = None;
    for row in &r {
        let t = row["t(s)"];
        ensure!(
            ((t * 100.0).round() - t * 100.0).abs() < 1e-6,
            "off-grid time {t}"
        );
        if let Some(p) = prev {
            ensure!(
                (t - p - 0.01).abs() < 1e-6,
                "gap or duplicate between {p} and {t}"
            );
        }
        prev = Some(t);
        ensure!(
            (row["F(N)"] - (3.0 * t + 1.0)).abs() < 1e-6,
            "F at {t}: {}",
            row["F(N)"]
        );
        ensure!(
            (row["Exx(%)"] - (1.0 - 2.0 * t)).abs() < 1e-6,
            "Exx at {t}: {}",
            row["Exx(%)"]
        );
    }
    // Mean: 0.25 s windows, centre times, the mean of a linear signal is its centre value.
    let m = rows(&mean_csv)?;
    ensure!(m.len() >= 4, "{} mean rows", m.len());
    for row in &m {
        let t = row["t(s)"];
        ensure!(
            ((t - 0.125) / 0.25 - ((t - 0.125) / 0.25).round()).abs() < 1e-9,
            "not a window centre: {t}"
        );
        // Samples at 2 ms steps cover the window evenly, so the mean is 3t+1 within a step;
        // on a loaded machine (CI runs cases side by side) a late loop leaves a gap, which
        // shifts the mean by at most half of it: 0.3 N allows a 100 ms gap, while a wrong
        // window or a wrong centre time is off by 0.75 N or more.
        ensure!(
            (row["F(N)"] - (3.0 * t + 1.0)).abs() < 0.3,
            "mean F at {t}: {}",
            row["F(N)"]
        );
    }
    Ok(())
}

fn limit_alarm_stops_the_test_and_is_reported() -> std::result::Result<(), String> {
    let mut test = Test::new("limits");
    quiet(&mut test);
    // Full power on the furnace (10× real time): 20 → 150 °C takes about 0.15 s.
    let heat = test.add_with(
        Generator::new([Path::constant(100.0).until("delay=10")])
            .map_err(|e| e.to_string())?
            .cmd_label("power"),
        Settings::new().name("heat"),
    );
    let furnace = test.add_with(
        IOBlock::input_output(FakeFurnace::new().simulation_speed(10.0))
            .cmd_labels(["power"])
            .exit_cmd(vec![0.0]),
        Settings::new().name("furnace").freq(100.0),
    );
    let limits = test.add_with(
        Limits::new([Limit::new("T(C)")
            .warn_max(100.0)
            .alarm_max(150.0)
            .name("furnace overheat")]),
        Settings::new().name("limits"),
    );
    let dir = TempDir::new("blocks-limits");
    let levels = dir.path().join("levels.csv");
    let rec = test.add_with(Recorder::new(&levels), Settings::new().name("rec"));
    test.link(heat, furnace);
    test.link(furnace, limits);
    test.link(limits, rec);
    let report = test.run().map_err(|e| format!("run: {e}"))?;
    // The level changes as they happened, for a display: warning, then alarm.
    let text = std::fs::read_to_string(&levels).map_err(|e| e.to_string())?;
    let kinds: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(2))
        .collect();
    ensure!(kinds == ["warning", "alarm"], "level rows: {text}");
    ensure!(
        report.cause == Some(StopCause::Block("limits".into())),
        "{report}"
    );
    let alarm = report
        .incidents
        .iter()
        .find(|i| i.kind == IncidentKind::Alarm)
        .ok_or_else(|| format!("no alarm in the report: {report}"))?;
    ensure!(
        alarm.cause.contains("furnace overheat") && alarm.cause.contains("T(C) = 15"),
        "{alarm:?}"
    );
    ensure!(
        alarm.start_s > 0.05 && alarm.start_s < report.duration_s + 1e-3,
        "{alarm:?} {report}"
    );
    ensure!(report.duration_s < 2.0, "stopped late: {report}");
    ensure!(format!("{report}").contains("alarm at"), "{report}");
    Ok(())
}

/// Sends `door = 1` between 0.3 s and 0.8 s, else 0.
struct Door;
impl Block for Door {
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec![Label::new("t(s)"), Label::new("door")])
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let t = ctx.t();
        let open = (0.3..0.8).contains(&t);
        ctx.send(
            &Sample::new()
                .with("t(s)", t)
                .with("door", if open { 1.0 } else { 0.0 }),
        )?;
        Ok(Flow::Continue)
    }
}

fn pause_holds_the_motor_and_the_generator_clock() -> std::result::Result<(), String> {
    let dir = TempDir::new("blocks-pause");
    let csv = dir.path().join("motor.csv");
    let mut test = Test::new("pause");
    quiet(&mut test);
    // 2 mm/s for 1.0 s of *unpaused* time, then the test ends.
    let gen = test.add_with(
        Generator::new([Path::constant(2.0).until("delay=1.0")])
            .map_err(|e| e.to_string())?
            .end_delay(Some(0.0)),
        Settings::new().name("gen").freq(100.0),
    );
    let motor = test.add_with(
        Machine::new().actuator(
            ActuatorConfig::speed(FakeStepperMotor::new().acceleration(1000.0), "cmd")
                .position_label("x(mm)"),
        ),
        Settings::new().name("motor").freq(100.0),
    );
    let door = test.add_with(Door, Settings::new().name("door").freq(100.0));
    let pause = test.add_with(
        Pause::new(["door > 0.5"]).map_err(|e| e.to_string())?,
        Settings::new().name("pause"),
    );
    let rec = test.add_with(Recorder::new(&csv), Settings::new().name("rec"));
    test.link(gen, motor);
    test.link(door, pause);
    test.link(motor, rec);
    let report = test.run().map_err(|e| format!("run: {e}"))?;
    ensure!(!report.failed(), "{report}");
    let pauses: Vec<_> = report.pauses().collect();
    ensure!(pauses.len() == 1, "{report}");
    let p = pauses[0];
    let end = p.end_s.ok_or("pause never ended")?;
    ensure!(
        (p.start_s - 0.3).abs() < 0.1 && (end - 0.8).abs() < 0.1,
        "{p:?}"
    );
    ensure!(
        p.cause.contains("door > 0.5") && p.block == "pause",
        "{p:?}"
    );
    ensure!(format!("{report}").contains("paused"), "{report}");
    // The Generator's clock excluded the pause: 1.0 s of motion plus the pause.
    let paused = end - p.start_s;
    ensure!(
        (report.duration_s - (1.0 + paused)).abs() < 0.1,
        "ran {:.3} s with a {paused:.3} s pause",
        report.duration_s
    );
    // The motor was held: no motion between the pause's start (+ braking) and its end.
    let x = col(&rows(&csv)?, "t(s)", "x(mm)");
    let during: Vec<f64> = x
        .iter()
        .filter(|p0| p0.0 > p.start_s + 0.05 && p0.0 < end - 0.01)
        .map(|p0| p0.1)
        .collect();
    ensure!(during.len() > 10, "{} rows in the pause", during.len());
    let spread = during.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        - during.iter().cloned().fold(f64::INFINITY, f64::min);
    ensure!(
        spread < 1e-6,
        "the motor moved {spread} mm during the pause"
    );
    // 2 mm/s for the unpaused 1.0 s (less the pause's braking distance, which is tiny).
    let last = x.last().ok_or("no rows")?.1;
    ensure!((last - 2.0).abs() < 0.1, "moved {last} mm in total");
    Ok(())
}

/// Presses the button (writes a newline to the pipe) at 0.3 s.
struct Technician {
    pipe: Option<OwnedFd>,
}
impl Block for Technician {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if ctx.t() >= 0.3 {
            if let Some(fd) = self.pipe.take() {
                nix::unistd::write(&fd, b"\n")
                    .map_err(|e| crabby::Error::communication(e.to_string()))?;
            }
        }
        Ok(Flow::Continue)
    }
}

fn button_press_moves_the_generator_on() -> std::result::Result<(), String> {
    let dir = TempDir::new("blocks-button");
    let csv = dir.path().join("gen.csv");
    let (rx, tx) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    let mut test = Test::new("button");
    quiet(&mut test);
    let button = test.add_with(
        Button::from_fd(rx).send_zero(true),
        Settings::new().name("button"),
    );
    let tech = test.add_with(
        Technician { pipe: Some(tx) },
        Settings::new().name("tech").freq(100.0),
    );
    let gen = test.add_with(
        Generator::new([
            Path::constant(0.0).until("button > 0"),
            Path::constant(1.0).until("delay=0.2"),
        ])
        .map_err(|e| e.to_string())?
        .end_delay(Some(0.0)),
        Settings::new().name("gen").freq(100.0),
    );
    let rec = test.add_with(Recorder::new(&csv), Settings::new().name("rec"));
    let _ = tech;
    test.link(button, gen);
    test.link(gen, rec);
    let report = test.run().map_err(|e| format!("run: {e}"))?;
    ensure!(!report.failed(), "{report}");
    let r = rows(&csv)?;
    let step = r
        .iter()
        .find(|x| x.get("index") == Some(&1.0))
        .ok_or("the button never moved the Generator on")?;
    ensure!(
        step["t(s)"] >= 0.3 && step["t(s)"] < 0.45,
        "moved on at {}",
        step["t(s)"]
    );
    ensure!(
        report.duration_s > 0.5 && report.duration_s < 0.7,
        "{report}"
    );
    Ok(())
}

/// A camera-like source: an image index at 20 Hz.
struct Frames {
    n: i64,
}
impl Block for Frames {
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec![Label::new("t(s)"), Label::new("img")])
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        ctx.send(&Sample::new().with("t(s)", ctx.t()).with("img", self.n))?;
        self.n += 1;
        Ok(Flow::Continue)
    }
}

fn synchronizer_interpolates_at_each_image() -> std::result::Result<(), String> {
    let dir = TempDir::new("blocks-sync");
    let csv = dir.path().join("sync.csv");
    let mut test = Test::new("sync");
    quiet(&mut test);
    let force = test.add_with(
        Source {
            label: "F(N)",
            f: |t| 3.0 * t + 1.0,
            stop_at: Some(1.0),
        },
        Settings::new().name("force").freq(500.0),
    );
    let frames = test.add_with(Frames { n: 0 }, Settings::new().name("camera").freq(20.0));
    let sync = test.add_with(Synchronizer::new("img"), Settings::new().name("sync"));
    let rec = test.add_with(Recorder::new(&csv), Settings::new().name("rec"));
    test.link(frames, sync);
    test.link(force, sync);
    test.link(sync, rec);
    let report = test.run().map_err(|e| format!("run: {e}"))?;
    ensure!(!report.failed(), "{report}");
    let r = rows(&csv)?;
    ensure!(r.len() >= 15, "{} rows ({report})", r.len());
    let mut prev = -1.0;
    for row in &r {
        let (t, img, f) = (row["t(s)"], row["img"], row["F(N)"]);
        ensure!(
            img == img.round() && img > prev,
            "image index {img} after {prev}"
        );
        prev = img;
        ensure!(
            (f - (3.0 * t + 1.0)).abs() < 1e-6,
            "F at image {img} (t = {t}): {f}"
        );
    }
    Ok(())
}

fn limit_alarm_can_pause_instead() -> std::result::Result<(), String> {
    let mut test = Test::new("limits-pause");
    quiet(&mut test);
    let door = test.add_with(Door, Settings::new().name("door").freq(100.0));
    let limits = test.add_with(
        Limits::new([Limit::new("door")
            .alarm_max(0.5)
            .action(LimitAction::Pause)
            .name("door open")]),
        Settings::new().name("limits"),
    );
    let gen = test.add_with(
        Generator::new([Path::constant(1.0).until("delay=1.0")])
            .map_err(|e| e.to_string())?
            .end_delay(Some(0.0)),
        Settings::new().name("gen").freq(100.0),
    );
    let sink = test.add_with(Sink::new(), Settings::new().name("sink"));
    test.link(door, limits);
    test.link(gen, sink);
    let report = test.run().map_err(|e| format!("run: {e}"))?;
    ensure!(!report.failed(), "{report}");
    let pauses: Vec<_> = report.pauses().collect();
    ensure!(pauses.len() == 1, "{report}");
    let p = pauses[0];
    ensure!(
        p.cause.contains("door open") && p.block == "limits",
        "{p:?}"
    );
    let end = p.end_s.ok_or("the pause never ended")?;
    ensure!(
        (p.start_s - 0.3).abs() < 0.1 && (end - 0.8).abs() < 0.1,
        "{p:?}"
    );
    ensure!(
        report
            .incidents
            .iter()
            .any(|i| i.kind == IncidentKind::Alarm && i.cause.contains("door = 1")),
        "{report}"
    );
    // The Generator's 1 s path lasted 1 s of unpaused time.
    ensure!(
        (report.duration_s - (1.0 + end - p.start_s)).abs() < 0.1,
        "{report}"
    );
    Ok(())
}

fn ioblock_writes_no_command_change_while_paused() -> std::result::Result<(), String> {
    let dir = TempDir::new("blocks-io-pause");
    let csv = dir.path().join("furnace.csv");
    let mut test = Test::new("io-pause");
    quiet(&mut test);
    // Heater 0 % until 0.4 s, then 100 %, from a Block that ignores pauses; the door pauses
    // the test from 0.3 s to 0.8 s: the furnace must not heat before the resume.
    let power = test.add_with(
        Source {
            label: "power",
            f: |t| if t < 0.4 { 0.0 } else { 100.0 },
            stop_at: Some(1.2),
        },
        Settings::new().name("power").freq(100.0).pausable(false),
    );
    let furnace = test.add_with(
        IOBlock::input_output(FakeFurnace::new().noise(0.0, 0).simulation_speed(10.0))
            .cmd_labels(["power"])
            .exit_cmd(vec![0.0]),
        Settings::new().name("furnace").freq(100.0),
    );
    let door = test.add_with(Door, Settings::new().name("door").freq(100.0));
    let pause = test.add_with(
        Pause::new(["door > 0.5"]).map_err(|e| e.to_string())?,
        Settings::new().name("pause"),
    );
    let rec = test.add_with(Recorder::new(&csv), Settings::new().name("rec"));
    test.link(power, furnace);
    test.link(furnace, rec);
    test.link(door, pause);
    let report = test.run().map_err(|e| format!("run: {e}"))?;
    ensure!(!report.failed(), "{report}");
    let p = report.pauses().next().ok_or("no pause")?;
    let end = p.end_s.ok_or("the pause never ended")?;
    let temps = col(&rows(&csv)?, "t(s)", "T(C)");
    let before: Vec<f64> = temps
        .iter()
        .filter(|x| x.0 < end - 0.02)
        .map(|x| x.1)
        .collect();
    ensure!(
        before.len() > 30,
        "{} readings before the resume",
        before.len()
    );
    ensure!(
        before.iter().all(|&t| (t - 20.0).abs() < 1e-6),
        "the furnace heated during the pause: max {}",
        before.iter().cloned().fold(0.0, f64::max)
    );
    let last = temps.last().ok_or("no readings")?;
    ensure!(
        last.1 > 100.0,
        "the command was not written after the resume: {last:?}"
    );
    Ok(())
}

fn main() {
    common::main(&[
        common::case(
            "ioblock_writes_no_command_change_while_paused",
            30,
            ioblock_writes_no_command_change_while_paused,
        ),
        common::case(
            "synchronizer_interpolates_at_each_image",
            30,
            synchronizer_interpolates_at_each_image,
        ),
        common::case(
            "limit_alarm_can_pause_instead",
            30,
            limit_alarm_can_pause_instead,
        ),
        common::case(
            "pid_settles_the_furnace_on_a_step",
            30,
            pid_settles_the_furnace_on_a_step,
        ),
        common::case(
            "pid_anti_windup_under_saturation",
            30,
            pid_anti_windup_under_saturation,
        ),
        common::case(
            "multiplexer_and_mean_in_a_graph",
            30,
            multiplexer_and_mean_in_a_graph,
        ),
        common::case(
            "limit_alarm_stops_the_test_and_is_reported",
            30,
            limit_alarm_stops_the_test_and_is_reported,
        ),
        common::case(
            "pause_holds_the_motor_and_the_generator_clock",
            30,
            pause_holds_the_motor_and_the_generator_clock,
        ),
        common::case(
            "button_press_moves_the_generator_on",
            30,
            button_press_moves_the_generator_on,
        ),
    ]);
}
