//! `crabby run`: a results folder, the test, a summary and a report page.
//!
//! [`run`] makes `<out>/<date>-<time>/` (numbered if it exists), copies the test file there,
//! writes every relative output file (Recorders) and the log there, runs the test through
//! [`crabby::Test::run`] (in this process, so Ctrl+C is the core's), then writes
//! `summary.txt` ([`Summary`]) and, with the `web` feature, `report.html`.

use crate::diag::CliError;
use crate::graph;
use crate::registry::Registry;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What the data of one Recorder says.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The CSV file.
    pub file: PathBuf,
    /// Data rows (with the force and strain parsed, when those are given).
    pub rows: usize,
    /// The largest force, if a force label is given.
    pub max_force: Option<f64>,
    /// The strain at rupture (the force collapses from above half its maximum to below 5 %
    /// of it in one step), if force and strain labels are given and it broke.
    pub rupture_strain: Option<f64>,
}

/// Reads a Recorder's CSV: rows, and with `force`/`strain` the maximum force and the strain
/// at rupture (the algorithm of `examples/tensile_test.rs`).
pub fn summarize(
    csv: &Path,
    force: Option<&str>,
    strain: Option<&str>,
) -> Result<Summary, CliError> {
    let text = std::fs::read_to_string(csv).map_err(|e| CliError::Io {
        path: csv.to_owned(),
        source: e,
    })?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: Option<&str>| name.and_then(|n| header.iter().position(|h| *h == n));
    let (cf, ce) = (col(force), col(strain));
    let missing = |what: &str, name: Option<&str>, c: Option<usize>| match (name, c) {
        (Some(n), None) => Err(CliError::Usage(format!(
            "summary: {} has no column '{n}' ({what})",
            csv.display()
        ))),
        _ => Ok(()),
    };
    missing("force", force, cf)?;
    missing("strain", strain, ce)?;
    let mut points = Vec::new();
    let mut rows = 0;
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let get = |i: Option<usize>| i.and_then(|i| f.get(i)).and_then(|v| v.parse::<f64>().ok());
        match (cf, ce) {
            (None, None) => rows += usize::from(!l.trim().is_empty()),
            _ => {
                let (fo, e) = (get(cf), get(ce));
                if (cf.is_none() || fo.is_some()) && (ce.is_none() || e.is_some()) {
                    rows += 1;
                    points.push((e.unwrap_or(0.0), fo.unwrap_or(0.0)));
                }
            }
        }
    }
    let max_force = cf.map(|_| points.iter().map(|p| p.1).fold(f64::MIN, f64::max));
    let rupture_strain = match (max_force, ce) {
        (Some(m), Some(_)) => points
            .windows(2)
            .find(|w| w[0].1 > 0.5 * m && w[1].1 < 0.05 * m)
            .map(|w| w[0].0),
        _ => None,
    };
    Ok(Summary {
        file: csv.to_owned(),
        rows,
        max_force,
        rupture_strain,
    })
}

/// What [`run`] leaves behind.
#[derive(Debug)]
pub struct RunResult {
    /// The results folder.
    pub dir: PathBuf,
    /// The summary of `[summary]`'s Recorder (or of the first Recorder).
    pub summary: Option<Summary>,
    /// The run report as text.
    pub report: String,
    /// The test file that ran (as given) and the SHA-256 of its text (hex), as in the run
    /// documents.
    pub source: (PathBuf, String),
    /// The run documents (`run.jsonl`: start, one descriptor per recorded stream, stop).
    pub documents: PathBuf,
}

macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Runs the test file `path` with results under `out` (a new dated folder). Call it from the
/// main thread before any other thread exists: the test forks.
pub fn run(
    path: &Path,
    registry: &Registry,
    out: &Path,
    quiet: bool,
    meta: &[(String, String)],
) -> Result<RunResult, CliError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |e| CliError::Io { path: p, source: e }
    };
    // Check before making anything: a wrong file leaves no empty folder.
    graph::load(path, registry, Path::new("."), true, quiet)?;
    let stamp = crabby::time::file_stamp(crabby::time::realtime_ns());
    let dir = crabby_blocks::free_name(&out.join(stamp));
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let plan = graph::load(path, registry, &dir, false, quiet)?;
    // The file that ran, with the results.
    let copy = dir.join(path.file_name().unwrap_or("test.toml".as_ref()));
    std::fs::write(&copy, plan.sources.text(0)).map_err(io(&copy))?;
    let hash = crabby::documents::sha256_hex(plan.sources.text(0).as_bytes());
    // Every parameter as the Blocks get it (units converted, defaults shown).
    let params_txt = dir.join("parameters.txt");
    std::fs::write(&params_txt, &plan.parameters).map_err(io(&params_txt))?;
    let log = dir.join(format!("{}.log", sanitize(&plan.name)));
    let documents = dir.join("run.jsonl");
    let mut test = plan.test;
    test.log_file(Some(log.clone()));
    // The run documents: the file that ran (its SHA-256), every Block's parameters as
    // checked (given by graph::load), the file's description and [metadata], then --meta.
    test.documents(Some(documents.clone()));
    test.provenance(path, plan.sources.text(0));
    for (k, v) in plan.metadata.iter().chain(meta) {
        test.metadata(k.clone(), v.clone());
    }
    say!("{}: results in {}", plan.name, dir.display());
    let result = test.run();
    let report = match &result {
        Ok(r) => r.to_string(),
        Err(e) => e
            .report()
            .map(|r| format!("{e}\n\n{r}"))
            .unwrap_or_else(|| e.to_string()),
    };
    let data = plan
        .summary
        .data
        .clone()
        .or_else(|| plan.recorders.first().map(|r| r.1.clone()));
    let summary = data.map(|d| {
        summarize(
            &d,
            plan.summary.force.as_deref(),
            plan.summary.strain.as_deref(),
        )
    });
    let mut text = String::new();
    if let Some(Ok(s)) = &summary {
        text.push_str(&format!("rows {}\n", s.rows));
        if let Some(f) = s.max_force {
            text.push_str(&format!("max_force {f}\n"));
        }
        match s.rupture_strain {
            Some(e) => text.push_str(&format!("rupture_strain {e}\n")),
            None if s.max_force.is_some() => text.push_str("rupture_strain none\n"),
            None => {}
        }
        text.push_str(&format!("data {}\n", s.file.display()));
    }
    text.push_str(&format!(
        "outcome {}\n",
        if result.is_ok() { "ok" } else { "failed" }
    ));
    text.push_str(&format!(
        "test_file {}\ntest_file_sha256 {hash}\nrun_documents {}\n",
        path.display(),
        documents.display()
    ));
    let summary_txt = dir.join("summary.txt");
    std::fs::write(&summary_txt, &text).map_err(io(&summary_txt))?;
    #[cfg(feature = "web")]
    report_page(
        &dir,
        &plan.name,
        &plan.recorders,
        &plan.summary,
        &report,
        plan.sources.text(0),
        &plan.parameters,
    );
    say!("\nsummary");
    match &summary {
        Some(Ok(s)) => {
            if let Some(f) = s.max_force {
                say!("  max force          {f:.0}");
            }
            if plan.summary.strain.is_some() {
                match s.rupture_strain {
                    Some(e) => say!("  strain at rupture  {e:.3}"),
                    None => say!("  strain at rupture  (no rupture in the data)"),
                }
            }
            say!("  samples recorded   {}", s.rows);
        }
        Some(Err(e)) => say!("  no summary: {e}"),
        None => say!("  no Recorder, no data"),
    }
    for (n, f) in &plan.recorders {
        say!("  {n:<18} {}", f.display());
    }
    say!("  log                {}", log.display());
    say!("  summary            {}", summary_txt.display());
    say!("  run documents      {}", documents.display());
    result?;
    Ok(RunResult {
        dir,
        summary: summary.and_then(Result::ok),
        report,
        source: (path.to_owned(), hash),
        documents,
    })
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The results page: plots of the summarised data (or of every Recorder), the run report,
/// the metadata files.
#[cfg(feature = "web")]
fn report_page(
    dir: &Path,
    title: &str,
    recorders: &[(String, PathBuf)],
    spec: &graph::SummarySpec,
    report: &str,
    source: &str,
    parameters: &str,
) {
    use crabby_web::report_html::{write_report_html, ReportPlot};
    let mut plots = Vec::new();
    if let (Some(d), Some(f)) = (&spec.data, &spec.force) {
        if let Some(s) = &spec.strain {
            plots.push(ReportPlot::xy("Force vs strain", d, s.clone(), [f.clone()]));
        }
        plots.push(ReportPlot::time("Force", d, [f.clone()]));
    } else {
        for (n, f) in recorders {
            let header = std::fs::read_to_string(f)
                .ok()
                .and_then(|t| t.lines().next().map(str::to_owned))
                .unwrap_or_default();
            let ys: Vec<String> = header
                .split(',')
                .filter(|h| *h != "t(s)" && !h.is_empty())
                .take(4)
                .map(str::to_owned)
                .collect();
            if header.split(',').any(|h| h == "t(s)") && !ys.is_empty() {
                plots.push(ReportPlot::time(n.clone(), f, ys));
            }
        }
    }
    let mut texts = vec![
        ("Run report", report.to_owned()),
        ("Test file", source.to_owned()),
        (
            "Parameters (units converted, defaults shown)",
            parameters.to_owned(),
        ),
    ];
    for (n, f) in recorders {
        let meta = crabby_blocks::meta_path_of(f);
        if let Ok(m) = std::fs::read_to_string(&meta) {
            texts.push((n.as_str(), m));
        }
    }
    let page = dir.join("report.html");
    match write_report_html(&page, title, &plots, &texts) {
        Ok(()) => say!("  report page        {}", page.display()),
        Err(e) => say!("  could not write {}: {e}", page.display()),
    }
}
