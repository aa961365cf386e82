//! The HDF5 recorder (feature `hdf5`) in real graphs, its files read back by the
//! distribution's `h5dump`: a recorded graph with a scalar sender and a streaming sender,
//! an IOBlock's streamed chunks, and a file that stays readable after a `kill -9` of the
//! whole test.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::TempDir;
use crabby::{Block, Context, Flow, Label, Result, Sample, Settings, Test};
use crabby_blocks::Hdf5Recorder;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Sends `F(N) = 2t` at its rate; ends the test at `stop_at`.
struct Force {
    stop_at: Option<f64>,
}
impl Block for Force {
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec![Label::new("t(s)"), Label::new("F(N)")])
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let t = ctx.t();
        ctx.send(&Sample::new().with("t(s)", t).with("F(N)", 2.0 * t))?;
        Ok(match self.stop_at {
            Some(s) if t >= s => Flow::Stop,
            _ => Flow::Continue,
        })
    }
}

/// Sends chunks of 10 samples like a streaming DAQ: `t(s)` and `T(C)` arrays.
struct Stream;
impl Block for Stream {
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec![Label::new("t(s)"), Label::new("T(C)")])
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let t = ctx.t();
        let ts: Vec<f64> = (0..10).map(|i| t + i as f64 * 1e-3).collect();
        let temps: Vec<f64> = ts.iter().map(|t| 20.0 + t).collect();
        ctx.send(&Sample::new().with("t(s)", ts).with("T(C)", temps))?;
        Ok(Flow::Continue)
    }
}

fn h5dump(args: &[&str], file: &Path) -> std::result::Result<String, String> {
    let out = Command::new("h5dump")
        .args(args)
        .arg(file)
        .output()
        .map_err(|e| format!("cannot run h5dump (install hdf5-tools): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success() && !text.contains("h5dump error"),
        "h5dump {args:?} failed: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(text)
}

/// The length of a 1-D dataset, from h5dump's header (`DATASPACE SIMPLE { ( n ) / ...`).
fn rows(file: &Path, ds: &str) -> std::result::Result<usize, String> {
    let h = h5dump(&["-H", "-d", ds], file)?;
    let i = h
        .find("SIMPLE { (")
        .ok_or_else(|| format!("no dataspace in {h}"))?;
    let rest = &h[i + 10..];
    let n = rest[..rest.find(')').ok_or("bad dataspace")?].trim();
    n.parse().map_err(|_| format!("bad row count {n:?}"))
}

fn records_a_graph_read_back_by_h5dump() -> std::result::Result<(), String> {
    let dir = TempDir::new("h5-graph");
    let file = dir.path().join("run.h5");
    let mut test = Test::new("h5");
    test.log_file(None);
    let f = test.add_with(
        Force { stop_at: Some(1.0) },
        Settings::new().name("force").freq(200.0),
    );
    let s = test.add_with(Stream, Settings::new().name("daq").freq(50.0));
    let r = test.add_with(
        Hdf5Recorder::new(&file).metadata("operator", "CI"),
        Settings::new().name("h5"),
    );
    test.link(f, r);
    test.link(s, r);
    let report = test.run().map_err(|e| e.to_string())?;
    ensure!(!report.failed() && report.samples_lost() == 0, "{report}");
    let sent_force = report
        .links
        .iter()
        .find(|l| l.from == "force")
        .map_or(0, |l| l.sent) as usize;
    let sent_chunks = report
        .links
        .iter()
        .find(|l| l.from == "daq")
        .map_or(0, |l| l.sent) as usize;
    let n = rows(&file, "/data/t(s)")?;
    ensure!(
        n == sent_force + 10 * sent_chunks,
        "{n} rows for {sent_force} samples and {sent_chunks} chunks"
    );
    for ds in ["/data/F(N)", "/data/T(C)"] {
        ensure!(rows(&file, ds)? == n, "{ds} is not {n} rows long");
    }
    let attrs = h5dump(&["-A"], &file)?;
    for want in [
        "\"N\"",
        "\"C\"",
        "\"operator\"",
        "\"CI\"",
        "\"test\"",
        "\"h5\"",
    ] {
        ensure!(attrs.contains(want), "attribute {want} missing in {attrs}");
    }
    // Values: F(N) = 2·t(s) on the force rows.
    let dump = h5dump(&["-d", "/data/F(N)", "-y", "-w", "0", "-m", "%.17g"], &file)?;
    let body = &dump[dump.find("DATA {").ok_or("no data")? + 6..];
    let vals: Vec<&str> = body
        .split([',', '\n', ' ', '}'])
        .filter(|v| !v.is_empty())
        .collect();
    let finite = vals
        .iter()
        .filter(|v| v.parse::<f64>().is_ok_and(f64::is_finite))
        .count();
    ensure!(
        finite == sent_force,
        "{finite} F(N) values for {sent_force} samples"
    );
    Ok(())
}

/// A DAQ board streaming one channel at 2 kHz: sample k has the value k.
struct Daq {
    next_ns: u64,
    k: u64,
}
impl crabby::hardware::InOut for Daq {
    fn channels(&self) -> Vec<String> {
        vec!["V(V)".into()]
    }
}

impl crabby::hardware::Stream for Daq {
    fn start_stream(&mut self) -> Result<()> {
        self.next_ns = crabby::hardware::now_ns();
        Ok(())
    }

    fn read_stream(&mut self) -> Result<crabby::hardware::Chunk> {
        let now = crabby::hardware::now_ns();
        let mut c = crabby::hardware::Chunk::default();
        c.channels.push(Vec::new());
        while self.next_ns <= now {
            c.t_ns.push(self.next_ns);
            c.channels[0].push(self.k as f64);
            self.k += 1;
            self.next_ns += 500_000;
        }
        Ok(c)
    }

    fn stop_stream(&mut self) -> Result<()> {
        Ok(())
    }
}

fn ioblock_stream_becomes_columns() -> std::result::Result<(), String> {
    let dir = TempDir::new("h5-stream");
    let file = dir.path().join("daq.h5");
    let mut test = Test::new("h5-stream");
    test.log_file(None);
    let daq = test.add_with(
        crabby_blocks::IOBlock::stream(Daq { next_ns: 0, k: 0 }),
        Settings::new().name("daq").freq(20.0),
    );
    let r = test.add_with(Hdf5Recorder::new(&file), Settings::new().name("h5"));
    let stop = test.add(crabby_blocks::StopBlock::new(["t(s) > 0.6"]).map_err(|e| e.to_string())?);
    test.link(daq, r);
    let _ = stop;
    let report = test.run().map_err(|e| e.to_string())?;
    ensure!(!report.failed() && report.samples_lost() == 0, "{report}");
    let n = rows(&file, "/data/V(V)")?;
    ensure!(
        n > 1000 && rows(&file, "/data/t(s)")? == n,
        "{n} rows ({report})"
    );
    // Every streamed sample, in order, none lost or repeated: consecutive indices.
    let dump = h5dump(&["-d", "/data/V(V)", "-y", "-w", "0"], &file)?;
    let body = &dump[dump.find("DATA {").ok_or("no data")? + 6..];
    let vals: Vec<f64> = body
        .split([',', '\n', ' ', '}'])
        .filter_map(|v| v.parse().ok())
        .collect();
    ensure!(vals.len() == n, "{} values for {n} rows", vals.len());
    ensure!(
        vals.windows(2).all(|w| w[1] == w[0] + 1.0),
        "a gap or a repeat in the stream"
    );
    let units = h5dump(&["-A", "-d", "/data/V(V)"], &file)?;
    ensure!(units.contains("\"V\""), "unit attribute missing: {units}");
    Ok(())
}

/// Runs a test that records forever into `dir` (killed by the case below).
fn h5_forever(dir: &str) {
    let mut test = Test::new("h5-forever");
    test.log_file(None);
    let f = test.add_with(
        Force { stop_at: None },
        Settings::new().name("force").freq(500.0),
    );
    let r = test.add_with(
        Hdf5Recorder::new(Path::new(dir).join("run.h5")).flush_period(Duration::from_millis(200)),
        Settings::new().name("h5"),
    );
    test.link(f, r);
    let _ = test.run();
}

fn readable_after_kill9() -> std::result::Result<(), String> {
    let dir = TempDir::new("h5-kill9");
    let file = dir.path().join("run.h5");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut coord = Command::new(exe)
        .args(["--h5-forever", dir.path().to_str().ok_or("path")?])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    // Wait for several flushes (each one writes the file: its modification time changes),
    // then kill everything at once, wherever the recorder is.
    let started = Instant::now();
    let mut sizes = Vec::new();
    while sizes.len() < 6 {
        let stamp = std::fs::metadata(&file)
            .ok()
            .map(|m| (m.len(), m.modified().ok()));
        if let Some(st) = stamp.filter(|s| s.0 > 0) {
            if sizes.last() != Some(&st) {
                sizes.push(st);
            }
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = coord.kill();
            let _ = coord.wait();
            return Err(format!("the file did not grow: {sizes:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    coord.kill().map_err(|e| e.to_string())?;
    coord.wait().map_err(|e| e.to_string())?;
    let gone = common::wait_no_children_of(coord.id() as i32, Duration::from_secs(2));
    ensure!(gone.is_empty(), "Blocks outlived the kill: {gone:?}");
    let n = rows(&file, "/data/t(s)")?;
    ensure!(n > 100, "only {n} rows after {:?}", started.elapsed());
    ensure!(
        rows(&file, "/data/F(N)")? == n,
        "columns of different lengths"
    );
    h5dump(&["-d", "/data/F(N)"], &file)?;
    Ok(())
}

/// The run documents describe the HDF5 file: every label (known only at the end, as the
/// labels are not given) stored as float64, with its unit and the Block that sent it.
fn declared_in_the_run_documents() -> std::result::Result<(), String> {
    let dir = TempDir::new("h5-docs");
    let file = dir.path().join("run.h5");
    let docs = dir.path().join("run.jsonl");
    let mut test = Test::new("h5-docs");
    test.log_file(None);
    test.documents(Some(docs.clone()));
    let f = test.add_with(
        Force { stop_at: Some(0.3) },
        Settings::new().name("force").freq(200.0),
    );
    let s = test.add_with(Stream, Settings::new().name("daq").freq(50.0));
    let r = test.add_with(Hdf5Recorder::new(&file), Settings::new().name("h5"));
    test.link(f, r);
    test.link(s, r);
    test.run().map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(&docs).map_err(|e| e.to_string())?;
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{e}: {l}")))
        .collect::<std::result::Result<_, _>>()?;
    ensure!(lines.len() == 3, "{text}");
    let d = &lines[1];
    ensure!(
        d["document"] == "descriptor" && d["data_format"] == "hdf5",
        "{d}"
    );
    ensure!(d["file"] == file.display().to_string(), "{d}");
    let col = |label: &str| {
        d["columns"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["label"] == label).cloned())
            .ok_or(format!("no column {label} in {d}"))
    };
    let (force, temp, t) = (col("F(N)")?, col("T(C)")?, col("t(s)")?);
    ensure!(
        force["unit"] == "N" && force["dtype"] == "float64" && force["source"][0] == "force",
        "{force}"
    );
    ensure!(temp["unit"] == "C" && temp["source"][0] == "daq", "{temp}");
    ensure!(t["source"] == serde_json::json!(["force", "daq"]), "{t}");
    ensure!(lines[2]["exit_status"] == "success", "{}", lines[2]);
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(p) = args.iter().position(|a| a == "--h5-forever") {
        h5_forever(&args[p + 1]);
        return;
    }
    common::main(&[
        common::case(
            "records_a_graph_read_back_by_h5dump",
            30,
            records_a_graph_read_back_by_h5dump,
        ),
        common::case("readable_after_kill9", 40, readable_after_kill9),
        common::case(
            "declared_in_the_run_documents",
            30,
            declared_in_the_run_documents,
        ),
        common::case(
            "ioblock_stream_becomes_columns",
            30,
            ioblock_stream_becomes_columns,
        ),
    ]);
}
