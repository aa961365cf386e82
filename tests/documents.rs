//! Run documents (issue 13): what the coordinator writes with `Test::documents`, for a
//! normal run, a crash, Ctrl+C, a stop request, a `kill -9` of the coordinator, and the
//! tensile example's results folder.

#[macro_use]
mod common;

#[allow(dead_code)]
#[path = "../examples/tensile_test.rs"]
mod tensile_example;

use common::{case, TempDir};
use crabby::{Block, Context, Flow, Label, Result as CResult, Sample, Settings, Test};
use crabby_blocks::Recorder;
use serde_json::Value as Json;
use std::path::Path;
use std::time::Duration;

type R = std::result::Result<(), String>;

/// Sends `n` samples `t(s)`, `F(N)`, `idx` (declared), then ends the test; `device` named.
struct Source {
    n: u64,
    sent: u64,
}
impl Block for Source {
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec!["t(s)".into(), "F(N)".into(), "idx".into()])
    }
    fn device(&self) -> Option<String> {
        Some("load cell LC-1 on /dev/null".to_owned())
    }
    fn describe(&self) -> String {
        format!("n={}", self.n)
    }
    fn step(&mut self, ctx: &mut Context) -> CResult<Flow> {
        if self.sent == self.n {
            return Ok(Flow::Stop);
        }
        ctx.send(
            &Sample::new()
                .with("t(s)", ctx.t())
                .with("F(N)", 2.5 * self.sent as f64)
                .with("idx", self.sent as i64),
        )?;
        self.sent += 1;
        Ok(Flow::Continue)
    }
}

/// Sends `t(s)` forever (a Block that never ends by itself).
struct Forever;
impl Block for Forever {
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec!["t(s)".into(), "x(mm)".into()])
    }
    fn step(&mut self, ctx: &mut Context) -> CResult<Flow> {
        ctx.send(&Sample::new().with("t(s)", ctx.t()).with("x(mm)", 1.0))?;
        Ok(Flow::Continue)
    }
}

/// What a Block does at `t > at`.
#[derive(Clone, Copy)]
enum Then {
    /// Its process dies of SIGKILL from itself (a crash: no final message).
    Die,
    /// Ctrl+C: SIGINT to the coordinator.
    CtrlC,
    /// `Context::stop_test`, as a StopBlock does.
    StopTest,
}
struct Actor {
    at: f64,
    then: Then,
}
impl Block for Actor {
    fn step(&mut self, ctx: &mut Context) -> CResult<Flow> {
        if ctx.t() > self.at {
            match self.then {
                Then::Die => {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::getpid(),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                Then::CtrlC => {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::getppid(),
                        nix::sys::signal::Signal::SIGINT,
                    );
                }
                Then::StopTest => ctx.stop_test(),
            }
        }
        Ok(Flow::Continue)
    }
}

fn read_docs(path: &Path) -> std::result::Result<Vec<Json>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("not JSON ({e}): {l}")))
        .collect()
}

fn kinds(docs: &[Json]) -> Vec<&str> {
    docs.iter()
        .map(|d| d["document"].as_str().unwrap_or("?"))
        .collect()
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// The stop document's files, as paths.
fn listed_files(stop: &Json) -> Vec<String> {
    stop["files"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["path"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn new_test(dir: &TempDir, name: &str) -> Test {
    let mut t = Test::new(name);
    t.log_file(Some(dir.path().join("test.log")));
    t.documents(Some(dir.path().join("docs").join("run.jsonl")));
    t
}

fn normal_run() -> R {
    let dir = TempDir::new("docs-normal");
    let csv = dir.path().join("data.csv");
    let mut t = new_test(&dir, "normal");
    let text = "abc";
    t.provenance(dir.path().join("test.toml"), text)
        .metadata("operator", "A. \"Quote\" Technician")
        .metadata("specimen", "S-042\nline two");
    let src = t.add_with(
        Source { n: 500, sent: 0 },
        Settings::new().name("src").freq(2000.0),
    );
    let rec = t.add_with(Recorder::new(&csv), Settings::new().name("rec"));
    t.link(src, rec);
    t.block_parameters(src, [("n", "500"), ("freq", "2000")]);
    let report = t.run().map_err(|e| e.to_string())?;
    let path = dir.path().join("docs").join("run.jsonl");
    let docs = read_docs(&path)?;
    ensure!(
        kinds(&docs) == ["start", "descriptor", "stop"],
        "{:?}",
        kinds(&docs)
    );
    let (start, desc, stop) = (&docs[0], &docs[1], &docs[2]);

    // Start: id, time, version, host, provenance, metadata, the whole graph.
    let uid = start["uid"].as_str().ok_or("no uid")?;
    ensure!(uid.len() == 36, "uid {uid}");
    ensure!(
        start["crabby"] == env!("CARGO_PKG_VERSION"),
        "{}",
        start["crabby"]
    );
    ensure!(
        start["time"].as_str().is_some_and(|t| t.starts_with("20")),
        "failed at line 171"
    );
    ensure!(
        start["host"].as_str().is_some_and(|h| !h.is_empty()),
        "failed at line 172"
    );
    ensure!(start["test"] == "normal", "failed at line 173");
    ensure!(
        start["provenance"]["sha256"]
            == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "{}",
        start["provenance"]
    );
    ensure!(start["provenance"]["bytes"] == 3, "failed at line 180");
    ensure!(
        start["metadata"]["operator"] == "A. \"Quote\" Technician",
        "failed at line 181"
    );
    ensure!(
        start["metadata"]["specimen"] == "S-042\nline two",
        "failed at line 182"
    );
    let blocks = start["graph"]["blocks"].as_array().ok_or("no blocks")?;
    ensure!(blocks.len() == 2, "failed at line 184");
    let b0 = &blocks[0];
    ensure!(b0["name"] == "src" && b0["kind"] == "Source", "{b0}");
    ensure!(b0["settings"]["freq_hz"] == 2000.0, "{b0}");
    ensure!(b0["parameters"] == "n=500", "{b0}");
    ensure!(b0["front_end_parameters"]["n"] == "500", "{b0}");
    ensure!(b0["device"] == "load cell LC-1 on /dev/null", "{b0}");
    ensure!(blocks[1]["settings"]["freq_hz"] == 50.0, "{}", blocks[1]);
    let link = &start["graph"]["links"][0];
    ensure!(link["from"] == "src" && link["to"] == "rec", "{link}");
    ensure!(
        link["labels"] == serde_json::json!(["t(s)", "F(N)", "idx"]),
        "{link}"
    );
    ensure!(
        start["log_file"]
            .as_str()
            .is_some_and(|l| l.ends_with("test.log")),
        "failed at line 200"
    );

    // Descriptor: the CSV, its labels with types, units, source and device.
    ensure!(desc["run"] == uid, "{desc}");
    ensure!(
        desc["block"] == "rec" && desc["data_format"] == "csv",
        "{desc}"
    );
    ensure!(desc["file"] == csv.display().to_string(), "{desc}");
    ensure!(
        desc["metadata_file"] == dir.path().join("data.meta.txt").display().to_string(),
        "{desc}"
    );
    let cols = desc["columns"].as_array().ok_or("no columns")?;
    let want = [
        ("t(s)", Json::from("s"), "float"),
        ("F(N)", Json::from("N"), "float"),
        ("idx", Json::Null, "int"),
    ];
    ensure!(cols.len() == want.len(), "{desc}");
    for (c, (label, unit, dtype)) in cols.iter().zip(want) {
        ensure!(c["label"] == label, "{c}");
        ensure!(c["unit"] == unit, "{c}");
        ensure!(c["dtype"] == dtype, "{c}");
        ensure!(c["source"] == serde_json::json!(["src"]), "{c}");
        ensure!(c["source_known"] == true, "{c}");
        ensure!(c["origin"][0]["block"] == "src", "{c}");
        ensure!(
            c["origin"][0]["device"] == "load cell LC-1 on /dev/null",
            "{c}"
        );
    }

    // Stop: success, counts equal to the CSV's rows, every file, the report.
    ensure!(stop["run"] == uid, "failed at line 234");
    ensure!(stop["exit_status"] == "success", "{}", stop["exit_status"]);
    ensure!(
        stop["reason"]
            .as_str()
            .is_some_and(|r| r.contains("src (Source) ended the test")),
        "{}",
        stop["reason"]
    );
    let rows = lines(&csv) as u64 - 1;
    ensure!(rows == 500, "CSV has {rows} rows");
    let stream = &stop["counts"]["streams"][0];
    ensure!(stream["rows"] == rows, "{stream}");
    ensure!(stream["descriptor"] == desc["uid"], "{stream}");
    ensure!(stop["counts"]["samples_sent"] == 500, "{}", stop["counts"]);
    ensure!(stop["counts"]["samples_lost"] == 0, "{}", stop["counts"]);
    let fs = listed_files(stop);
    for f in [
        csv.clone(),
        dir.path().join("data.meta.txt"),
        dir.path().join("test.log"),
        path.clone(),
    ] {
        let f = f.display().to_string();
        ensure!(fs.contains(&f), "{f} not among the files {fs:?}");
        ensure!(Path::new(&f).exists(), "{f} listed but absent");
    }
    ensure!(
        stop["report"]["blocks"][1]["rows_durable"] == report.blocks[1].rows_durable.unwrap(),
        "{}",
        stop["report"]
    );

    // A second run appends its own documents, with another id.
    let mut t = new_test(&dir, "again");
    let src = t.add_with(
        Source { n: 10, sent: 0 },
        Settings::new().name("src").freq(2000.0),
    );
    let rec = t.add_with(Recorder::new(&csv), Settings::new().name("rec"));
    t.link(src, rec);
    t.run().map_err(|e| e.to_string())?;
    let docs = read_docs(&path)?;
    ensure!(docs.len() == 6, "{:?}", kinds(&docs));
    ensure!(
        docs[3]["document"] == "start" && docs[3]["uid"] != uid,
        "failed at line 278"
    );
    ensure!(
        docs[4]["file"] == dir.path().join("data_00001.csv").display().to_string(),
        "{}",
        docs[4]
    );
    Ok(())
}

fn crash_says_fail() -> R {
    let dir = TempDir::new("docs-crash");
    let csv = dir.path().join("d.csv");
    let mut t = new_test(&dir, "crash");
    let src = t.add_with(Forever, Settings::new().name("src").freq(200.0));
    let rec = t.add_with(Recorder::new(&csv), Settings::new().name("rec"));
    t.link(src, rec);
    t.add_with(
        Actor {
            at: 0.3,
            then: Then::Die,
        },
        Settings::new().name("crasher").freq(50.0),
    );
    let err = t.run().err().ok_or("run() succeeded despite a crash")?;
    let docs = read_docs(&dir.path().join("docs").join("run.jsonl"))?;
    ensure!(
        kinds(&docs) == ["start", "descriptor", "stop"],
        "{:?}",
        kinds(&docs)
    );
    let stop = &docs[2];
    ensure!(stop["exit_status"] == "fail", "{stop}");
    let reason = stop["reason"].as_str().unwrap_or("");
    ensure!(
        reason.contains("crasher") && reason.contains("signal"),
        "reason: {reason} (error: {err})"
    );
    ensure!(stop["error"]["block"] == "crasher", "{}", stop["error"]);
    // The Recorder finished cleanly: its rows are counted and match the file.
    let rows = lines(&csv) as u64 - 1;
    ensure!(
        rows > 10 && stop["counts"]["streams"][0]["rows"] == rows,
        "{rows} rows; {}",
        stop["counts"]
    );
    Ok(())
}

/// In `finish`, presses Ctrl+C twice (SIGINT to the coordinator), then takes its time: the
/// user hurrying a cleanup.
struct ImpatientUser;
impl Block for ImpatientUser {
    fn step(&mut self, _ctx: &mut Context) -> CResult<Flow> {
        Ok(Flow::Continue)
    }
    fn finish(&mut self, _ctx: &mut Context) -> CResult<()> {
        for _ in 0..2 {
            let _ =
                nix::sys::signal::kill(nix::unistd::getppid(), nix::sys::signal::Signal::SIGINT);
            std::thread::sleep(Duration::from_millis(100));
        }
        // Cut short by the second Ctrl+C (SIGTERM).
        std::thread::sleep(Duration::from_secs(5));
        Ok(())
    }
}

/// A Block crashes; while the others finish, the user presses Ctrl+C twice: `run` returns
/// Interrupted, but the run had failed, and the stop document is still written.
fn crash_then_ctrl_c_twice_says_fail() -> R {
    let dir = TempDir::new("docs-crash-int");
    let mut t = new_test(&dir, "crash then Ctrl+C");
    t.grace(Duration::from_secs(8), Duration::from_secs(1));
    t.add_with(ImpatientUser, Settings::new().name("user").freq(50.0));
    t.add_with(
        Actor {
            at: 0.3,
            then: Then::Die,
        },
        Settings::new().name("crasher").freq(50.0),
    );
    let err = t.run().err().ok_or("run() succeeded despite a crash")?;
    ensure!(err.kind() == crabby::ErrorKind::Interrupted, "{err}");
    let docs = read_docs(&dir.path().join("docs").join("run.jsonl"))?;
    ensure!(kinds(&docs) == ["start", "stop"], "{:?}", kinds(&docs));
    let stop = &docs[1];
    ensure!(stop["exit_status"] == "fail", "{stop}");
    let reason = stop["reason"].as_str().unwrap_or("");
    ensure!(
        reason.contains("crasher failed") && reason.contains("interrupted"),
        "reason: {reason}"
    );
    Ok(())
}

/// Its `prepare` fails (a device that cannot be opened).
struct NoDevice;
impl Block for NoDevice {
    fn prepare(&mut self, _ctx: &mut Context) -> CResult<()> {
        Err(crabby::Error::new(
            crabby::ErrorKind::Communication,
            "port /dev/ttyUSB9 not found",
        ))
    }
    fn step(&mut self, _ctx: &mut Context) -> CResult<Flow> {
        Ok(Flow::Continue)
    }
}

/// A Block that fails to prepare: the Blocks were forked, so the run has a stop, `fail`.
fn prepare_failure_says_fail() -> R {
    let dir = TempDir::new("docs-prep");
    let mut t = new_test(&dir, "prepare failure");
    t.add_with(Forever, Settings::new().name("src").freq(100.0));
    t.add_with(NoDevice, Settings::new().name("amp"));
    let err = t
        .run()
        .err()
        .ok_or("run() succeeded despite prepare failing")?;
    let docs = read_docs(&dir.path().join("docs").join("run.jsonl"))?;
    ensure!(kinds(&docs) == ["start", "stop"], "{:?}", kinds(&docs));
    let stop = &docs[1];
    ensure!(stop["exit_status"] == "fail", "{stop}");
    ensure!(
        stop["error"]["block"] == "amp"
            && stop["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("ttyUSB9")),
        "{} (run: {err})",
        stop["error"]
    );
    Ok(())
}

fn ctrl_c_says_abort() -> R {
    let dir = TempDir::new("docs-int");
    let mut t = new_test(&dir, "interrupted");
    let src = t.add_with(Forever, Settings::new().name("src").freq(200.0));
    let rec = t.add_with(
        Recorder::new(dir.path().join("d.csv")),
        Settings::new().name("rec"),
    );
    t.link(src, rec);
    t.add_with(
        Actor {
            at: 0.3,
            then: Then::CtrlC,
        },
        Settings::new().name("user").freq(20.0),
    );
    let err = t.run().err().ok_or("run() succeeded after Ctrl+C")?;
    ensure!(err.kind() == crabby::ErrorKind::Interrupted, "{err}");
    let docs = read_docs(&dir.path().join("docs").join("run.jsonl"))?;
    let stop = docs.last().ok_or("no documents")?;
    ensure!(stop["document"] == "stop", "{:?}", kinds(&docs));
    ensure!(stop["exit_status"] == "abort", "{stop}");
    ensure!(
        stop["reason"]
            .as_str()
            .is_some_and(|r| r.contains("interrupted by the user")),
        "{}",
        stop["reason"]
    );
    ensure!(
        stop["report"]["cause"] == "Interrupted",
        "{}",
        stop["report"]["cause"]
    );
    Ok(())
}

fn stop_request_says_abort() -> R {
    let dir = TempDir::new("docs-stopreq");
    let mut t = new_test(&dir, "stop_request");
    t.add_with(Forever, Settings::new().name("src").freq(100.0));
    t.add_with(
        Actor {
            at: 0.2,
            then: Then::StopTest,
        },
        Settings::new().name("limit").freq(50.0),
    );
    t.run().map_err(|e| e.to_string())?;
    let docs = read_docs(&dir.path().join("docs").join("run.jsonl"))?;
    // No Recorder: no descriptor.
    ensure!(kinds(&docs) == ["start", "stop"], "{:?}", kinds(&docs));
    ensure!(docs[1]["exit_status"] == "abort", "{}", docs[1]);
    ensure!(
        docs[1]["reason"] == "limit (Actor) stopped the test",
        "{}",
        docs[1]["reason"]
    );
    Ok(())
}

fn unwritable_documents_refuse_to_start() -> R {
    let dir = TempDir::new("docs-unwritable");
    std::fs::write(dir.path().join("file"), "x").map_err(|e| e.to_string())?;
    let mut t = Test::new("refused");
    t.log_file(None);
    // Under a file: the folder cannot be made.
    t.documents(Some(dir.path().join("file").join("run.jsonl")));
    let marker = dir.path().join("prepared");
    struct Marks(std::path::PathBuf);
    impl Block for Marks {
        fn prepare(&mut self, _: &mut Context) -> CResult<()> {
            std::fs::write(&self.0, "x").map_err(|e| crabby::Error::io("marker", e))
        }
        fn step(&mut self, _: &mut Context) -> CResult<Flow> {
            Ok(Flow::Stop)
        }
    }
    t.add(Marks(marker.clone()));
    let err = t.run().err().ok_or("run() started without its documents")?;
    ensure!(err.kind() == crabby::ErrorKind::Io, "{err}");
    ensure!(err.to_string().contains("run documents"), "{err}");
    ensure!(!marker.exists(), "a Block was forked and prepared");
    Ok(())
}

/// Helper mode for the kill -9 case: a coordinator recording until killed.
fn coordinator_forever(dir: &str) {
    let dir = Path::new(dir);
    let mut t = Test::new("killed");
    t.log_file(None);
    t.documents(Some(dir.join("run.jsonl")));
    let src = t.add_with(Forever, Settings::new().name("src").freq(100.0));
    let rec = t.add_with(
        Recorder::new(dir.join("d.csv")),
        Settings::new().name("rec"),
    );
    t.link(src, rec);
    let _ = t.run();
}

/// A short run with documents in `dir` (for `program_not_in_utf8_is_recorded`).
fn coordinator_short(dir: &str) {
    let dir = Path::new(dir);
    let mut t = Test::new("odd program name");
    t.log_file(None);
    t.documents(Some(dir.join("run.jsonl")));
    t.add_with(
        Source { n: 5, sent: 0 },
        Settings::new().name("src").freq(100.0),
    );
    if let Err(e) = t.run() {
        eprintln!("{e}");
        std::process::exit(1);
    }
}

/// A program whose path is not UTF-8 (a folder named in Latin-1): the start document is
/// written (its `program` lossy), the coordinator does not panic.
fn program_not_in_utf8_is_recorded() -> R {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let dir = TempDir::new("docs-arg0");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(exe)
        .arg0(std::ffi::OsStr::from_bytes(b"/tmp/essai-\xe9t\xe9/prog"))
        .args(["--coordinator-short", dir.path().to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the run did not end within 15 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    ensure!(status.success(), "the run failed ({status}): {err}");
    let docs = read_docs(&dir.path().join("run.jsonl"))?;
    ensure!(kinds(&docs) == ["start", "stop"], "{:?}", kinds(&docs));
    let program = docs[0]["program"].as_str().unwrap_or("");
    ensure!(
        program.starts_with("/tmp/essai-") && program.ends_with("/prog"),
        "program: {program:?}"
    );
    Ok(())
}

/// A data file whose name is not UTF-8 (a Latin-1 name): still described and listed (its
/// path written lossily: JSON strings are UTF-8).
fn data_file_not_in_utf8_is_described() -> R {
    use std::os::unix::ffi::OsStrExt;
    let dir = TempDir::new("docs-latin1");
    let csv = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"essai-\xe9t\xe9.csv"));
    let mut t = new_test(&dir, "latin1");
    let src = t.add_with(
        Source { n: 20, sent: 0 },
        Settings::new().name("src").freq(200.0),
    );
    let rec = t.add_with(Recorder::new(&csv), Settings::new().name("rec"));
    t.link(src, rec);
    t.run().map_err(|e| e.to_string())?;
    ensure!(lines(&csv) == 21, "{} lines in the CSV", lines(&csv));
    let docs = read_docs(&dir.path().join("docs").join("run.jsonl"))?;
    ensure!(
        kinds(&docs) == ["start", "descriptor", "stop"],
        "{:?}",
        kinds(&docs)
    );
    let file = docs[1]["file"].as_str().unwrap_or("");
    ensure!(file.contains("essai-") && file.ends_with(".csv"), "{file}");
    let listed = docs[2]["files"]
        .as_array()
        .is_some_and(|fs| fs.iter().any(|f| f["role"] == "data" && f["path"] == file));
    ensure!(listed, "{}", docs[2]["files"]);
    // The recorder's metadata file, beside it, gets the run report appended.
    let meta = std::fs::read_dir(dir.path())
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.as_os_str().as_bytes().ends_with(b".meta.txt"))
        .ok_or("no metadata file")?;
    let text = std::fs::read(&meta).map_err(|e| e.to_string())?;
    ensure!(
        String::from_utf8_lossy(&text).contains("[report]"),
        "the report was not appended to {}",
        meta.display()
    );
    Ok(())
}

fn kill9_leaves_a_start_without_stop() -> R {
    let dir = TempDir::new("docs-kill9");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut coord = std::process::Command::new(exe)
        .args(["--coordinator-forever", dir.path().to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let path = dir.path().join("run.jsonl");
    // Wait for the descriptor (the Recorder's first row), then kill -9 the coordinator.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lines(&path) < 2 {
        if std::time::Instant::now() > deadline {
            let _ = coord.kill();
            let _ = coord.wait();
            return Err("no descriptor within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    coord.kill().map_err(|e| e.to_string())?;
    coord.wait().map_err(|e| e.to_string())?;
    // Its Blocks die with it (parent-death signal); give them a moment to be gone, then
    // check nothing else was written: a start and a descriptor, no stop ("interrupted").
    let csv = dir.path().join("d.csv");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut last = lines(&csv);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = lines(&csv);
        if now == last {
            break;
        }
        last = now;
        ensure!(
            std::time::Instant::now() < deadline,
            "the CSV keeps growing"
        );
    }
    let docs = read_docs(&path)?;
    ensure!(
        kinds(&docs) == ["start", "descriptor"],
        "{:?}",
        kinds(&docs)
    );
    Ok(())
}

fn tensile_example_writes_documents() -> R {
    use tensile_example::{build, Procedure, RunFiles};
    let tmp = TempDir::new("docs-tensile");
    let files = RunFiles::new_in(tmp.path()).map_err(|e| e.to_string())?;
    let p = Procedure {
        speed_mm_s: 2.0,
        cycles_pct: vec![0.4],
        end_pct: 1.6,
        noise: false,
        ..Procedure::default()
    };
    let test = build(&p, &files, false).map_err(|e| e.to_string())?;
    test.run().map_err(|e| e.to_string())?;
    ensure!(
        files.documents.starts_with(&files.dir),
        "failed at line 488"
    );
    let docs = read_docs(&files.documents)?;
    ensure!(
        kinds(&docs) == ["start", "descriptor", "descriptor", "stop"],
        "{:?}",
        kinds(&docs)
    );
    let stop = &docs[3];
    ensure!(stop["exit_status"] == "success", "{stop}");
    let m = docs[1..3]
        .iter()
        .find(|d| d["block"] == "machine_recorder")
        .ok_or("no descriptor of machine_recorder")?;
    let f = m["columns"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["label"] == "F(N)"))
        .ok_or("no F(N) column")?;
    ensure!(f["unit"] == "N" && f["source"][0] == "machine", "{f}");
    ensure!(
        f["origin"][0]["device"]
            .as_str()
            .is_some_and(|d| d.contains("FakeMachine")),
        "{f}"
    );
    // Rows per stream equal the CSVs' rows; every file of the folder that the run made is
    // listed.
    for (block, csv) in [
        ("machine_recorder", &files.machine_csv),
        ("command_recorder", &files.command_csv),
    ] {
        let s = stop["counts"]["streams"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["block"] == block))
            .ok_or(format!("no stream of {block}"))?;
        ensure!(s["rows"] == lines(csv) as u64 - 1, "{s}");
    }
    let listed = listed_files(stop);
    for f in std::fs::read_dir(&files.dir).map_err(|e| e.to_string())? {
        let f = f.map_err(|e| e.to_string())?.path().display().to_string();
        ensure!(listed.contains(&f), "{f} not listed in {listed:?}");
    }
    Ok(())
}

fn main() {
    // args_os: program_not_in_utf8_is_recorded runs this binary under a non-UTF-8 name.
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Some(p) = args.iter().position(|a| a == "--coordinator-forever") {
        coordinator_forever(&args[p + 1]);
        return;
    }
    if let Some(p) = args.iter().position(|a| a == "--coordinator-short") {
        coordinator_short(&args[p + 1]);
        return;
    }
    common::main(&[
        case("normal_run", 30, normal_run),
        case("crash_says_fail", 30, crash_says_fail),
        case("ctrl_c_says_abort", 30, ctrl_c_says_abort),
        case("prepare_failure_says_fail", 30, prepare_failure_says_fail),
        case(
            "crash_then_ctrl_c_twice_says_fail",
            30,
            crash_then_ctrl_c_twice_says_fail,
        ),
        case("stop_request_says_abort", 30, stop_request_says_abort),
        case(
            "unwritable_documents_refuse_to_start",
            20,
            unwritable_documents_refuse_to_start,
        ),
        case(
            "kill9_leaves_a_start_without_stop",
            30,
            kill9_leaves_a_start_without_stop,
        ),
        case(
            "program_not_in_utf8_is_recorded",
            20,
            program_not_in_utf8_is_recorded,
        ),
        case(
            "data_file_not_in_utf8_is_described",
            20,
            data_file_not_in_utf8_is_described,
        ),
        case(
            "tensile_example_writes_documents",
            60,
            tensile_example_writes_documents,
        ),
    ])
}
