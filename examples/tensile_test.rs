//! The main job: a complete simulated tensile test, no hardware needed.
//!
//! A Generator drives a simulated tensile machine (FakeMachine) through a few load/unload
//! cycles to increasing strain, then pulls the sample to rupture. The Generator's conditions
//! read the machine's outputs (the two Blocks are linked both ways); two Recorders write the
//! machine's outputs and the command to CSV; a StopBlock guards against overload and overtime;
//! a Console Block shows the test live in the terminal (`--quiet`: not). At the end: a summary, and a
//! force–strain plot as PNG, all in `results/<date>-<time>/` (or under `--out DIR`), with the
//! run documents (`run.jsonl`: what ran, each CSV's labels and units, how it ended).
//!
//! A web view (crate `crabby-web`) shows it live in a browser: open the URL printed at the
//! start (plots of force against time and strain, the latest values, every Block's health,
//! STOP and Pause buttons). `--no-web` leaves it out.
//!
//! `cargo run --example tensile_test -- [--out DIR] [--quiet] [--no-web] [--web-port N]`

use anyhow::{bail, Context as _};
use crabby::{Settings, Test};
use crabby_blocks::{Console, FakeMachine, Generator, Path, Recorder, StopBlock};
use std::io::Write;
use std::path::{Path as FsPath, PathBuf};

/// The test procedure.
#[derive(Debug, Clone)]
pub struct Procedure {
    /// Crosshead speed (mm/s).
    pub speed_mm_s: f64,
    /// Strain levels (%) of the load/unload cycles; each unload goes back to zero force.
    pub cycles_pct: Vec<f64>,
    /// Strain (%) at which the final ramp stops (past the sample's rupture at 1.51 %).
    pub end_pct: f64,
    /// Safety limits: the StopBlock ends the test beyond them.
    pub max_force_n: f64,
    pub max_time_s: f64,
    /// Crappy's measurement noise on the machine's outputs.
    pub noise: bool,
}

impl Default for Procedure {
    fn default() -> Self {
        Procedure {
            speed_mm_s: 0.5,
            cycles_pct: vec![0.4, 0.8, 1.2],
            end_pct: 1.6,
            max_force_n: 150_000.0,
            max_time_s: 120.0,
            noise: true,
        }
    }
}

/// Where a run writes.
#[derive(Debug, Clone)]
pub struct RunFiles {
    pub dir: PathBuf,
    pub machine_csv: PathBuf,
    pub command_csv: PathBuf,
    pub plot_png: PathBuf,
    pub log: PathBuf,
    /// The run documents (JSON lines: start, one descriptor per CSV, stop).
    pub documents: PathBuf,
}

impl RunFiles {
    /// A new folder named by date and time under `parent` (numbered if it exists).
    pub fn new_in(parent: &FsPath) -> anyhow::Result<Self> {
        let stamp = crabby::time::file_stamp(crabby::time::realtime_ns());
        let dir = crabby_blocks::free_name(&parent.join(stamp));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(RunFiles {
            machine_csv: dir.join("machine.csv"),
            command_csv: dir.join("command.csv"),
            plot_png: dir.join("force_strain.png"),
            log: dir.join("tensile_test.log"),
            documents: dir.join("run.jsonl"),
            dir,
        })
    }
}

/// Builds the test graph. `progress`: the console shows the test live (else it is quiet).
pub fn build(p: &Procedure, files: &RunFiles, progress: bool) -> anyhow::Result<Test> {
    build_with(p, files, progress, None)
}

/// The main job's web view: force against time and strain, the latest values.
pub fn web_view(port: u16) -> crabby_web::WebView {
    crabby_web::WebView::new()
        .port(port)
        .plot("t(s)", ["F(N)"])
        .plot_xy("Exx(%)", "F(N)")
        .plot("t(s)", ["x(mm)", "cmd"])
        .values(["F(N)", "Exx(%)", "x(mm)"])
}

/// [`build`], with a web view if `web` is given (linked drop-oldest to the machine and the
/// generator: it never slows them).
pub fn build_with(
    p: &Procedure,
    files: &RunFiles,
    progress: bool,
    web: Option<crabby_web::WebView>,
) -> anyhow::Result<Test> {
    let mut test = Test::new("tensile_test");
    test.log_file(Some(files.log.clone()));
    test.documents(Some(files.documents.clone()));

    let mut paths = Vec::new();
    for level in &p.cycles_pct {
        paths.push(Path::constant(p.speed_mm_s).until(format!("Exx(%) > {level}").as_str()));
        paths.push(Path::constant(-p.speed_mm_s).until("F(N) <= 0"));
    }
    paths.push(Path::constant(p.speed_mm_s).until(format!("Exx(%) > {}", p.end_pct).as_str()));
    let generator = Generator::new(paths)?.end_delay(Some(0.0));
    let mut machine = FakeMachine::new();
    if p.noise {
        machine = machine.noise(FakeMachine::CRAPPY_NOISE, 2026);
    }
    let safety = StopBlock::new([
        format!("F(N) > {}", p.max_force_n),
        format!("t(s) > {}", p.max_time_s),
    ])?;

    let gen = test.add_with(generator, Settings::new().name("generator").freq(200.0));
    let mach = test.add_with(machine, Settings::new().name("machine").freq(100.0));
    let rec_m = test.add_with(
        Recorder::new(&files.machine_csv),
        Settings::new().name("machine_recorder"),
    );
    let rec_c = test.add_with(
        Recorder::new(&files.command_csv),
        Settings::new().name("command_recorder"),
    );
    let stop = test.add_with(safety, Settings::new().name("safety"));
    test.link(gen, mach);
    test.link(mach, gen);
    test.link(mach, rec_m);
    test.link(gen, rec_c);
    test.link(mach, stop);
    // The live status in the terminal (crabby-blocks' Console): test time, command, force and
    // strain, each Block's rate, the latest warning. Display only: its links drop the oldest
    // samples rather than ever slow the test. Quiet, it shows nothing but still runs, so the
    // graph is the same with and without `--quiet`.
    let shown = test.add_with(
        Console::new()
            .values(["cmd", "F(N)", "Exx(%)"])
            .quiet(!progress),
        Settings::new().name("console"),
    );
    test.link_with(mach, shown, Console::link());
    test.link_with(gen, shown, Console::link());
    if let Some(web) = web {
        let web = test.add(web.log_file(files.log.clone()));
        test.link_with(mach, web, crabby_web::link_options());
        test.link_with(gen, web, crabby_web::link_options());
    }
    Ok(test)
}

/// What the data says.
#[derive(Debug, Clone)]
pub struct Summary {
    pub rows: usize,
    pub max_force_n: f64,
    pub rupture_strain_pct: Option<f64>,
    pub points: Vec<(f64, f64, f64)>, // (x mm, Exx %, F N)
}

/// Reads the machine's CSV.
pub fn summarize(machine_csv: &FsPath) -> anyhow::Result<Summary> {
    let text = std::fs::read_to_string(machine_csv)
        .with_context(|| format!("cannot read {}", machine_csv.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("empty CSV")?.split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("no column {name}"))
    };
    let (cx, ce, cf) = (col("x(mm)")?, col("Exx(%)")?, col("F(N)")?);
    let mut points = Vec::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
        if let (Some(x), Some(e), Some(fo)) = (get(cx), get(ce), get(cf)) {
            points.push((x, e, fo));
        }
    }
    if points.is_empty() {
        bail!("no data in {}", machine_csv.display());
    }
    let max_force_n = points.iter().map(|p| p.2).fold(f64::MIN, f64::max);
    // Rupture: the force collapses from above half its maximum to almost nothing in one step.
    let rupture_strain_pct = points
        .windows(2)
        .find(|w| w[0].2 > 0.5 * max_force_n && w[1].2 < 0.05 * max_force_n)
        .map(|w| w[0].1);
    Ok(Summary {
        rows: points.len(),
        max_force_n,
        rupture_strain_pct,
        points,
    })
}

/// Draws the force–strain curve.
pub fn plot(summary: &Summary, png: &FsPath, title: &str) -> anyhow::Result<()> {
    use plotters::prelude::*;
    static FONT: &[u8] = include_bytes!("assets/DejaVuSans.ttf");
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let root = BitMapBackend::new(png, (1000, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_e = summary.points.iter().map(|p| p.1).fold(0.0, f64::max) * 1.05;
    let max_f = summary.max_force_n / 1000.0 * 1.1;
    let min_f = summary
        .points
        .iter()
        .map(|p| p.2 / 1000.0)
        .fold(0.0, f64::min);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 28))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_e.max(0.1), min_f..max_f.max(1.0))?;
    chart
        .configure_mesh()
        .x_desc("strain Exx (%)")
        .y_desc("force F (kN)")
        .label_style(("sans-serif", 18))
        .draw()?;
    chart.draw_series(LineSeries::new(
        summary.points.iter().map(|p| (p.1, p.2 / 1000.0)),
        BLUE.stroke_width(2),
    ))?;
    if let Some(r) = summary.rupture_strain_pct {
        chart.draw_series(std::iter::once(Circle::new(
            (r, summary.max_force_n / 1000.0),
            6,
            RED.filled(),
        )))?;
    }
    root.present()?;
    Ok(())
}

/// A line on stdout that never panics: with `tensile_test | head -1` stdout closes early,
/// and the test must still finish and write its results.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

fn main() -> anyhow::Result<()> {
    let mut out = PathBuf::from("results");
    let mut quiet = false;
    let mut web = true;
    let mut web_port = 0u16;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = PathBuf::from(args.next().context("--out needs a folder")?),
            "--quiet" => quiet = true,
            "--no-web" => web = false,
            "--web-port" => {
                web_port = args
                    .next()
                    .context("--web-port needs a port number")?
                    .parse()
                    .context("--web-port: not a port number (0 to 65535; 0 = any free port)")?
            }
            "-h" | "--help" => {
                say!("usage: tensile_test [--out DIR] [--quiet] [--no-web] [--web-port N]");
                return Ok(());
            }
            other => bail!("unknown argument '{other}' (try --help)"),
        }
    }
    let files = RunFiles::new_in(&out)?;
    let procedure = Procedure::default();
    say!("tensile test: results in {}", files.dir.display());
    let test = build_with(&procedure, &files, !quiet, web.then(|| web_view(web_port)))?;
    let result = test.run();
    let summary = summarize(&files.machine_csv);
    // A self-contained page of the results (plots, run report, metadata), readable offline.
    let report_text = match &result {
        Ok(r) => Some(r.to_string()),
        Err(e) => e.report().map(|r| format!("{e}\n\n{r}")),
    };
    let meta =
        std::fs::read_to_string(files.machine_csv.with_extension("meta.txt")).unwrap_or_default();
    let report_html = files.dir.join("report.html");
    let mut texts = vec![("Metadata", meta)];
    if let Some(t) = report_text {
        texts.insert(0, ("Run report", t));
    }
    let page = crabby_web::report_html::write_report_html(
        &report_html,
        "tensile test",
        &[
            crabby_web::report_html::ReportPlot::xy(
                "Force vs strain",
                &files.machine_csv,
                "Exx(%)",
                ["F(N)"],
            ),
            crabby_web::report_html::ReportPlot::time("Force", &files.machine_csv, ["F(N)"]),
            crabby_web::report_html::ReportPlot::time("Position", &files.machine_csv, ["x(mm)"]),
        ],
        &texts,
    );
    if let Err(e) = &page {
        say!("could not write {}: {e}", report_html.display());
    }
    if let Ok(s) = &summary {
        plot(s, &files.plot_png, "tensile_test: force vs strain")?;
        say!("\nsummary");
        say!("  max force          {:.0} N", s.max_force_n);
        match s.rupture_strain_pct {
            Some(e) => say!("  strain at rupture  {e:.3} %"),
            None => say!("  strain at rupture  (no rupture in the data)"),
        }
        say!("  samples recorded   {}", s.rows);
        say!("  data               {}", files.machine_csv.display());
        say!("  command            {}", files.command_csv.display());
        say!("  plot               {}", files.plot_png.display());
        say!("  report page        {}", report_html.display());
        say!(
            "  metadata + report  {}",
            files.machine_csv.with_extension("meta.txt").display()
        );
        say!("  log                {}", files.log.display());
        say!("  run documents      {}", files.documents.display());
    }
    // The run report is already in the log (console and file) and in the metadata file.
    result?;
    summary.map(|_| ())
}
