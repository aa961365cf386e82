//! The main job, shortened: the `tensile_test` example's graph with a faster command, run for
//! real. Also Ctrl+C in the middle of a test.

#[macro_use]
mod common;

#[allow(dead_code)]
#[path = "../examples/tensile_test.rs"]
mod tensile_example;

use common::{case, TempDir};
use crabby::{Block, Context, ErrorKind, Flow, Result as CResult, Settings};
use tensile_example::{build, plot, summarize, Procedure, RunFiles};

type R = std::result::Result<(), String>;

fn fast() -> Procedure {
    Procedure {
        speed_mm_s: 2.0,
        cycles_pct: vec![0.4, 0.9],
        end_pct: 1.6,
        noise: false,
        ..Procedure::default()
    }
}

fn lines(p: &std::path::Path) -> usize {
    std::fs::read_to_string(p)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn shortened_tensile_test() -> R {
    let tmp = TempDir::new("tensile");
    let files = RunFiles::new_in(tmp.path()).map_err(|e| e.to_string())?;
    let test = build(&fast(), &files, false).map_err(|e| e.to_string())?;
    let report = test.run().map_err(|e| e.to_string())?;
    ensure!(
        report.cause == Some(crabby::StopCause::Block("generator".into())),
        "{report}"
    );

    // Every sample the machine sent is a row (plus the header); same for the command.
    let sent_m = report
        .links
        .iter()
        .find(|l| l.to == "machine_recorder")
        .unwrap()
        .sent as usize;
    let sent_c = report
        .links
        .iter()
        .find(|l| l.to == "command_recorder")
        .unwrap()
        .sent as usize;
    ensure!(sent_m > 100, "machine sent only {sent_m}");
    ensure!(
        lines(&files.machine_csv) == sent_m + 1,
        "machine.csv has {} lines for {sent_m} samples",
        lines(&files.machine_csv)
    );
    ensure!(
        lines(&files.command_csv) == sent_c + 1,
        "command.csv has {} lines for {sent_c} samples",
        lines(&files.command_csv)
    );

    // The curve: elastic slope F/x = rigidity/l0 = 8.4e6/200 = 42 000 N/mm within 1 %
    // (least squares through the origin on the first loading, below the 0.5 % yield).
    let s = summarize(&files.machine_csv).map_err(|e| e.to_string())?;
    let elastic: Vec<_> = s
        .points
        .iter()
        .take_while(|p| p.1 < 0.39)
        .filter(|p| p.0 > 0.05)
        .collect();
    ensure!(
        elastic.len() > 10,
        "too few elastic points: {}",
        elastic.len()
    );
    let slope = elastic.iter().map(|p| p.0 * p.2).sum::<f64>()
        / elastic.iter().map(|p| p.0 * p.0).sum::<f64>();
    ensure!(
        (slope - 42_000.0).abs() / 42_000.0 < 0.01,
        "elastic slope {slope} N/mm"
    );
    // Rupture at the sample's maximum strain (1.51 %), within one machine step.
    let r = s.rupture_strain_pct.ok_or("no rupture in the data")?;
    ensure!((1.49..=1.511).contains(&r), "rupture at {r} %");
    // After rupture the force is zero.
    ensure!(
        s.points.last().unwrap().2.abs() < 1e-9,
        "force after rupture {}",
        s.points.last().unwrap().2
    );

    plot(&s, &files.plot_png, "test").map_err(|e| e.to_string())?;
    let png = std::fs::read(&files.plot_png).map_err(|e| e.to_string())?;
    ensure!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "bad PNG ({} bytes)",
        png.len()
    );

    let meta = std::fs::read_to_string(files.machine_csv.with_extension("meta.txt"))
        .map_err(|e| e.to_string())?;
    for want in [
        "test: tensile_test",
        "started: 20",
        "crabby: ",
        "block machine (FakeMachine)",
        "[report]",
        "generator ended the test",
        &format!("rows: {sent_m}"),
    ] {
        ensure!(meta.contains(want), "metadata lacks '{want}':\n{meta}");
    }
    Ok(())
}

/// Presses Ctrl+C (SIGINT to the coordinator) once t > 1 s.
struct CtrlC;
impl Block for CtrlC {
    fn step(&mut self, ctx: &mut Context) -> CResult<Flow> {
        if ctx.t() > 1.0 {
            let _ =
                nix::sys::signal::kill(nix::unistd::getppid(), nix::sys::signal::Signal::SIGINT);
            return Ok(Flow::Continue);
        }
        Ok(Flow::Continue)
    }
}

fn ctrl_c_in_the_middle() -> R {
    let tmp = TempDir::new("tensile-int");
    let files = RunFiles::new_in(tmp.path()).map_err(|e| e.to_string())?;
    let mut test = build(
        &Procedure {
            noise: false,
            ..Procedure::default()
        },
        &files,
        false,
    )
    .map_err(|e| e.to_string())?;
    test.add_with(CtrlC, Settings::new().name("user").freq(10.0));
    let err = test.run().err().ok_or("run() succeeded after Ctrl+C")?;
    ensure!(err.kind() == ErrorKind::Interrupted, "{err}");
    let report = err.report().unwrap();
    let sent = report
        .links
        .iter()
        .find(|l| l.to == "machine_recorder")
        .unwrap()
        .sent as usize;
    ensure!(sent > 50, "machine sent only {sent}");
    ensure!(
        lines(&files.machine_csv) == sent + 1,
        "CSV has {} lines for {sent} samples",
        lines(&files.machine_csv)
    );
    let meta = std::fs::read_to_string(files.machine_csv.with_extension("meta.txt"))
        .map_err(|e| e.to_string())?;
    ensure!(
        meta.contains("interrupted by the user"),
        "metadata does not say interrupted:\n{meta}"
    );
    Ok(())
}

fn main() {
    common::main(&[
        case("shortened_tensile_test", 60, shortened_tensile_test),
        case("ctrl_c_in_the_middle", 30, ctrl_c_in_the_middle),
    ]);
}
