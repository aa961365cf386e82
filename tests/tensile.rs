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

/// Helper mode: runs the default tensile test with its results under `dir`.
fn tensile_forever(dir: &str) {
    let files = RunFiles::new_in(std::path::Path::new(dir)).unwrap();
    let test = build(&Procedure::default(), &files, false).unwrap();
    let _ = test.run();
}

fn kill9_leaves_a_valid_csv() -> R {
    let tmp = TempDir::new("tensile-kill9");
    let exe = std::env::current_exe().unwrap();
    let mut coord = std::process::Command::new(exe)
        .args(["--tensile-forever", tmp.path().to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    // Wait for the first rows on disk (the Recorder's first flush, ~0.5 s after t0).
    let csv = loop {
        let found = std::fs::read_dir(tmp.path())
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path().join("machine.csv"));
        if let Some(p) = found.filter(|p| lines(p) >= 2) {
            break p;
        }
        ensure!(started.elapsed().as_secs() < 20, "no data written");
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let first_rows = std::time::Instant::now();
    // Let the test run about two more seconds (several flushes), then kill everything at once:
    // the coordinator with SIGKILL, its Blocks through their parent-death signal.
    while first_rows.elapsed() < std::time::Duration::from_millis(2000) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    coord.kill().map_err(|e| e.to_string())?;
    let ran = first_rows.elapsed().as_secs_f64();
    coord.wait().map_err(|e| e.to_string())?;
    let gone = common::wait_no_children_of(coord.id() as i32, std::time::Duration::from_secs(2));
    ensure!(gone.is_empty(), "Blocks outlived the kill: {gone:?}");

    // Every line is a whole row; the last row is at most ~0.5 s older than the kill.
    let text = std::fs::read_to_string(&csv).map_err(|e| e.to_string())?;
    ensure!(text.ends_with('\n'), "the file ends in the middle of a row");
    let mut last_t = 0.0;
    for (i, l) in text.lines().enumerate().skip(1) {
        let cells: Vec<&str> = l.split(',').collect();
        ensure!(cells.len() == 5, "row {i} is not whole: {l:?}");
        for c in &cells {
            c.parse::<f64>()
                .map_err(|_| format!("row {i}: bad cell {c:?}"))?;
        }
        last_t = cells[0].parse::<f64>().unwrap();
    }
    // The first rows appeared at t ≈ 0.5 s; the kill came `ran` s later.
    ensure!(
        last_t >= ran - 0.1,
        "last row at t = {last_t} s, killed at t ≈ {:.2} s",
        ran + 0.5
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(p) = args.iter().position(|a| a == "--tensile-forever") {
        tensile_forever(&args[p + 1]);
        return;
    }
    common::main(&[
        case("kill9_leaves_a_valid_csv", 30, kill9_leaves_a_valid_csv),
        case("shortened_tensile_test", 60, shortened_tensile_test),
        case("ctrl_c_in_the_middle", 30, ctrl_c_in_the_middle),
    ]);
}
