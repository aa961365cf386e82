//! Wrong inputs are refused by `Test::run` before anything is forked, with an error that
//! names the Block (or link), the parameter and the fix (issue 9, item 12).
//!
//! These run in the fork-safe harness (`harness = false`): in a multi-threaded libtest
//! process `run()` would refuse for another reason (threads) and the cases could not fail.
//! Each case also adds a `Marker` Block that writes a file in `prepare`, so a fork shows.

mod common;

use common::{case, TempDir};
use crabby::{Block, Context, Error, ErrorKind, Flow, Label, LinkOptions, Result, Settings, Test};
use crabby_blocks::{ActuatorConfig, IOBlock, Machine, Recorder};
use crabby_hardware::motor::FakeDCMotor;
use crabby_hardware::sensor::FakeFurnace;
use std::path::PathBuf;
use std::time::Duration;

type Outcome = std::result::Result<(), String>;

/// Writes `<dir>/forked` in `prepare`: it exists only if a Block process ran.
struct Marker {
    dir: PathBuf,
    labels: Option<Vec<Label>>,
}

impl Block for Marker {
    fn output_labels(&self) -> Option<Vec<Label>> {
        self.labels.clone()
    }
    fn prepare(&mut self, _ctx: &mut Context) -> Result<()> {
        std::fs::write(self.dir.join("forked"), b"").map_err(|e| Error::io("marker file", e))
    }
    fn step(&mut self, _ctx: &mut Context) -> Result<Flow> {
        Ok(Flow::Stop)
    }
}

fn new_test(dir: &TempDir) -> Test {
    let mut t = Test::new("config");
    t.log_file(Some(dir.path().join("test.log")));
    t
}

fn marker(t: &mut Test, dir: &TempDir, name: &str) -> crabby::BlockId {
    t.add_with(
        Marker {
            dir: dir.path().to_path_buf(),
            labels: Some(vec!["x".into()]),
        },
        Settings::new().name(name),
    )
}

/// `run()` must fail with a configuration error whose text holds every `needle`, and fork
/// nothing.
fn refused(t: Test, dir: &TempDir, needles: &[&str]) -> Outcome {
    let e = match t.run() {
        Ok(r) => return Err(format!("accepted; it ran:\n{r}")),
        Err(e) => e,
    };
    let text = e.to_string();
    ensure!(
        e.kind() == ErrorKind::Configuration,
        "not a configuration error: {text}"
    );
    for n in needles {
        ensure!(text.contains(n), "the error does not say '{n}': {text}");
    }
    ensure!(
        !dir.path().join("forked").exists(),
        "a Block was forked before the error: {text}"
    );
    ensure!(
        !dir.path().join("test.log").exists(),
        "the run started (a log file was opened): {text}"
    );
    eprintln!("refused as expected: {text}");
    Ok(())
}

fn zero_grace_is_refused() -> Outcome {
    let dir = TempDir::new("grace");
    let mut t = new_test(&dir);
    marker(&mut t, &dir, "m");
    t.grace(Duration::ZERO, Duration::ZERO);
    refused(
        t,
        &dir,
        &["Test::grace", "finish", "50ms", "before SIGTERM"],
    )?;
    let mut t = new_test(&dir);
    marker(&mut t, &dir, "m");
    t.grace(Duration::from_millis(49), Duration::from_secs(1));
    refused(t, &dir, &["Test::grace", "finish", "49ms"])?;
    let mut t = new_test(&dir);
    marker(&mut t, &dir, "m");
    t.grace(Duration::from_secs(1), Duration::ZERO);
    refused(t, &dir, &["Test::grace", "terminate", "10ms", "SIGKILL"])
}

fn self_link_is_refused() -> Outcome {
    let dir = TempDir::new("self-link");
    let mut t = new_test(&dir);
    let a = marker(&mut t, &dir, "loopy");
    t.link_with(a, a, LinkOptions::new().name("back"));
    refused(t, &dir, &["loopy", "'back'", "itself"])
}

fn absurd_freq_is_refused() -> Outcome {
    for hz in [1e-300, 1e-6, f64::MIN_POSITIVE] {
        let dir = TempDir::new("freq");
        let mut t = new_test(&dir);
        t.add_with(
            Marker {
                dir: dir.path().to_path_buf(),
                labels: None,
            },
            Settings::new().name("slow").freq(hz),
        );
        refused(t, &dir, &["slow", "'freq'", "0.00001", "28 h"])?;
    }
    Ok(())
}

fn huge_link_capacity_is_refused() -> Outcome {
    // Above 2^63 (used to wrap to a 4 KiB ring), and 1 TiB (used to fail at mmap, naming
    // nothing).
    for bytes in [(1usize << 63) + 1, usize::MAX, 1 << 40] {
        let dir = TempDir::new("capacity");
        let mut t = new_test(&dir);
        let a = marker(&mut t, &dir, "src");
        let b = marker(&mut t, &dir, "dst");
        t.link_with(a, b, LinkOptions::new().name("wide").capacity_bytes(bytes));
        refused(t, &dir, &["'wide'", "src", "capacity_bytes", "1 GiB"])?;
    }
    Ok(())
}

fn long_declared_label_is_refused() -> Outcome {
    let dir = TempDir::new("label");
    let mut t = new_test(&dir);
    let long = "L".repeat(256);
    let a = t.add_with(
        Marker {
            dir: dir.path().to_path_buf(),
            labels: Some(vec!["ok".into(), long.as_str().into()]),
        },
        Settings::new().name("verbose"),
    );
    let b = marker(&mut t, &dir, "sink");
    t.link(a, b);
    refused(t, &dir, &["verbose", "output_labels", "256 bytes", "255"])?;
    // 255 bytes is fine: the same graph with a label of exactly 255 bytes runs.
    let dir = TempDir::new("label-ok");
    let mut t = new_test(&dir);
    t.add_with(
        Marker {
            dir: dir.path().to_path_buf(),
            labels: Some(vec!["L".repeat(255).as_str().into()]),
        },
        Settings::new().name("fine"),
    );
    t.run()
        .map_err(|e| format!("a 255-byte label was refused: {e}"))?;
    Ok(())
}

fn recorder_bad_paths_are_refused() -> Outcome {
    let scratch = TempDir::new("rec-paths");
    let a_file = scratch.path().join("plain-file");
    std::fs::write(&a_file, b"x").map_err(|e| e.to_string())?;
    let cases: Vec<(PathBuf, &str)> = vec![
        (PathBuf::new(), "is empty"),
        (scratch.path().to_path_buf(), "a folder"),
        (scratch.path().join("sub/"), "a folder"),
        (a_file.join("data.csv"), "is a file, not a folder"),
        (a_file.join("deeper/data.csv"), "is a file, not a folder"),
    ];
    for (path, why) in cases {
        let dir = TempDir::new("rec");
        let mut t = new_test(&dir);
        let src = marker(&mut t, &dir, "src");
        let rec = t.add_with(Recorder::new(&path), Settings::new().name("rec"));
        t.link(src, rec);
        refused(t, &dir, &["rec", "'path'", why]).map_err(|e| format!("path {path:?}: {e}"))?;
    }
    ensure!(
        !scratch.path().join("sub").exists(),
        "the check created a folder"
    );
    Ok(())
}

fn ioblock_label_count_must_match_channels() -> Outcome {
    let dir = TempDir::new("io-labels");
    let mut t = new_test(&dir);
    let io = t.add_with(
        IOBlock::input(FakeFurnace::new()).labels(["T(C)", "extra"]),
        Settings::new().name("furnace"),
    );
    let sink = marker(&mut t, &dir, "sink");
    t.link(io, sink);
    refused(t, &dir, &["furnace", "'labels'", "2 labels", "1 channels"])
}

fn machine_zero_stop_timeout_is_refused() -> Outcome {
    let dir = TempDir::new("stop-timeout");
    let mut t = new_test(&dir);
    let src = marker(&mut t, &dir, "src");
    let m = t.add_with(
        Machine::new()
            .actuator(ActuatorConfig::speed(FakeDCMotor::new(), "x"))
            .stop_timeout(Duration::ZERO),
        Settings::new().name("press"),
    );
    t.link(src, m);
    refused(t, &dir, &["press", "'stop_timeout'", "1 s"])
}

fn main() {
    common::main(&[
        case("zero_grace_is_refused", 20, zero_grace_is_refused),
        case("self_link_is_refused", 20, self_link_is_refused),
        case("absurd_freq_is_refused", 20, absurd_freq_is_refused),
        case(
            "huge_link_capacity_is_refused",
            20,
            huge_link_capacity_is_refused,
        ),
        case(
            "long_declared_label_is_refused",
            20,
            long_declared_label_is_refused,
        ),
        case(
            "recorder_bad_paths_are_refused",
            20,
            recorder_bad_paths_are_refused,
        ),
        case(
            "machine_zero_stop_timeout_is_refused",
            20,
            machine_zero_stop_timeout_is_refused,
        ),
        case(
            "ioblock_label_count_must_match_channels",
            20,
            ioblock_label_count_must_match_channels,
        ),
    ]);
}
