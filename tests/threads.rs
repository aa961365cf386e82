//! The threads runtime (`Test::run_in_threads`): the same graphs, run from ordinary
//! `#[test]`s (libtest's threads are fine here: nothing is forked).

mod common;

use common::TempDir;
use crabby::{Block, Context, ErrorKind, Flow, Outcome, Result, Sample, Settings, Test};
use crabby_blocks::{FakeMachine, Generator, Path, Recorder, StopBlock};
use std::time::Duration;

fn quiet(name: &str) -> Test {
    let mut t = Test::new(name);
    // Runs may overlap in this process: keep their logs on the console only.
    t.log_file(None)
        .log_levels(crabby::LevelFilter::Warn, crabby::LevelFilter::Off);
    t
}

#[test]
fn generator_drives_fake_machine_and_everything_is_recorded() {
    let dir = TempDir::new("threads-gen");
    let csv = dir.path().join("machine.csv");
    let mut t = quiet("threads-gen");
    let gen = Generator::new([
        Path::constant(2.0).until("Exx(%) > 0.3"),
        Path::constant(-2.0).until("F(N) <= 0"),
    ])
    .unwrap()
    .end_delay(Some(0.0));
    let g = t.add_with(gen, Settings::new().name("gen"));
    let m = t.add_with(FakeMachine::new(), Settings::new().name("machine"));
    let r = t.add_with(Recorder::new(&csv), Settings::new().name("rec"));
    t.link(g, m);
    t.link(m, g);
    t.link(m, r);
    let report = t.run_in_threads().expect("run");
    assert_eq!(report.block("gen").unwrap().outcome, Outcome::Ended);
    let sent = report.links.iter().find(|l| l.to == "rec").unwrap().sent as usize;
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), sent + 1, "every sample is a row");
    // The machine went up to 0.3 % strain (0.6 mm) and came back to zero force.
    let max_x = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(2)?.parse::<f64>().ok())
        .fold(0.0, f64::max);
    assert!((0.6..0.7).contains(&max_x), "max x {max_x}");
}

struct Failing;
impl Block for Failing {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if ctx.t() > 0.05 {
            return Err(crabby::Error::new(ErrorKind::Hardware, "probe lost"));
        }
        Ok(Flow::Continue)
    }
}

struct Idle;
impl Block for Idle {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        ctx.send(&Sample::new().with("t(s)", ctx.t()))?;
        Ok(Flow::Continue)
    }
}

#[test]
fn an_error_stops_the_others_and_names_the_block() {
    let mut t = quiet("threads-err");
    t.add_with(Failing, Settings::new().name("probe"));
    let i = t.add_with(Idle, Settings::new().name("idle"));
    let s = t.add_with(
        StopBlock::new(["t(s) > 30"]).unwrap(),
        Settings::new().name("stop"),
    );
    t.link(i, s);
    let e = t.run_in_threads().unwrap_err();
    // The Block's own kind, and the Block, reach run()'s error.
    assert_eq!(e.kind(), ErrorKind::Hardware);
    assert_eq!(e.block(), Some("probe"));
    let r = e.report().unwrap();
    assert_eq!(r.block("idle").unwrap().outcome, Outcome::Stopped);
    assert!(r.links[0].lossless() || r.links[0].unread > 0);
}

struct Panicky;
impl Block for Panicky {
    fn step(&mut self, _: &mut Context) -> Result<Flow> {
        panic!("boom in a thread");
    }
}

#[test]
fn a_panic_is_reported() {
    let mut t = quiet("threads-panic");
    t.add_with(Panicky, Settings::new().name("p"));
    t.add_with(Idle, Settings::new().name("idle"));
    let e = t.run_in_threads().unwrap_err();
    let r = e.report().unwrap();
    assert!(
        matches!(&r.block("p").unwrap().outcome, Outcome::Panicked(m) if m.contains("boom in a thread")),
        "{r}"
    );
}

struct Hangs;
impl Block for Hangs {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if ctx.t() > 0.05 {
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        Ok(Flow::Continue)
    }
}

struct Ends;
impl Block for Ends {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        Ok(if ctx.t() > 0.1 {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

#[test]
fn a_hung_block_is_abandoned_after_the_grace() {
    let mut t = quiet("threads-hang");
    t.grace(Duration::from_millis(100), Duration::from_millis(100));
    t.add_with(Hangs, Settings::new().name("hangs"));
    t.add_with(Ends, Settings::new().name("ends"));
    let e = t.run_in_threads().unwrap_err();
    let r = e.report().unwrap();
    assert_eq!(r.block("hangs").unwrap().outcome, Outcome::Killed);
    assert_eq!(r.block("ends").unwrap().outcome, Outcome::Ended);
}

/// Panics once t > the given time.
struct PanicsAt(f64, &'static str);
impl Block for PanicsAt {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if ctx.t() > self.0 {
            panic!("{}", self.1);
        }
        Ok(Flow::Continue)
    }
}

/// Ends once t > the given time.
struct EndsAt(f64);
impl Block for EndsAt {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        Ok(if ctx.t() > self.0 {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// Issue 9, item 10: two overlapping runs (libtest runs tests in parallel). Before, each run
/// swapped the process-wide panic hook and put back the one it found: the short run ended
/// first and restored the default hook while the long one still ran, so the long run's
/// panic was reported as "unknown panic".
#[test]
fn overlapping_runs_keep_their_panic_messages() {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let b = barrier.clone();
    let short = std::thread::spawn(move || {
        let mut t = quiet("short");
        t.add(EndsAt(0.05));
        b.wait();
        t.run_in_threads()
    });
    let mut t = quiet("long");
    t.add_with(
        PanicsAt(0.4, "the long run's own panic"),
        Settings::new().name("panicker"),
    );
    barrier.wait();
    let e = t.run_in_threads().expect_err("the panic fails the run");
    short.join().unwrap().expect("the short run ends cleanly");
    let r = e.report().unwrap();
    match &r.block("panicker").unwrap().outcome {
        Outcome::Panicked(m) => assert!(m.contains("the long run's own panic"), "{m}"),
        o => panic!("outcome {o:?}"),
    }
}

/// Sends one sample too large for its plain link (refused), then one small sample.
struct BigThenSmall {
    refused: std::sync::Arc<std::sync::atomic::AtomicBool>,
}
impl Block for BigThenSmall {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let big = Sample::new().with("note", "x".repeat(3000));
        if ctx.send(&big).is_err() {
            self.refused
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        ctx.send(&Sample::new().with("note", "small"))?;
        Ok(Flow::Stop)
    }
}

/// Drains its inputs until its senders have finished.
struct Drains;
impl Block for Drains {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        ctx.recv_all();
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        ctx.drain_until_ended(Duration::from_secs(2));
        Ok(())
    }
}

/// A stateful modifier on one link must not advance for a sample another link refused
/// (issue 9, small finding): the modified link comes first, the refusing plain link second.
#[test]
fn a_refused_sample_does_not_advance_other_links_modifiers() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let applied = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicBool::new(false));
    let mut t = quiet("threads-modifier-refused");
    let src = t.add_with(
        BigThenSmall {
            refused: refused.clone(),
        },
        Settings::new().name("src"),
    );
    let a = t.add_with(Drains, Settings::new().name("modified"));
    let b = t.add_with(Drains, Settings::new().name("small"));
    let count = applied.clone();
    t.link_with(
        src,
        a,
        crabby::LinkOptions::new()
            .name("counted")
            .modifier(crabby::modifier::from_fn(move |s| {
                count.fetch_add(1, Ordering::SeqCst);
                Some(s)
            })),
    );
    t.link_with(src, b, crabby::LinkOptions::new().capacity_bytes(4096));
    let report = t.run_in_threads().expect("run");
    assert!(
        refused.load(Ordering::SeqCst),
        "the big sample was not refused"
    );
    let counted = report.links.iter().find(|l| l.name == "counted").unwrap();
    assert_eq!(counted.sent, 1, "{report}");
    assert_eq!(
        applied.load(Ordering::SeqCst),
        1,
        "the modifier ran for the refused sample"
    );
}

/// Logs its tag every loop; ends after 0.3 s.
struct Tagger(&'static str);
impl Block for Tagger {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        log::info!("tag {}", self.0);
        Ok(if ctx.t() > 0.3 {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// Issue 10: the logs of parallel `run_in_threads` tests stay with their own test (each
/// run's log file has its own Blocks' lines, none of the other's).
#[test]
fn parallel_runs_keep_their_logs_apart() {
    let dir = TempDir::new("threads-logs");
    let file_a = dir.path().join("a.log");
    let file_b = dir.path().join("b.log");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let (b2, fb) = (barrier.clone(), file_b.clone());
    let other = std::thread::spawn(move || {
        let mut t = Test::new("b");
        t.log_file(Some(fb))
            .log_levels(crabby::LevelFilter::Off, crabby::LevelFilter::Info);
        t.add(Tagger("bbb"));
        b2.wait();
        t.run_in_threads().map(|_| ())
    });
    let mut t = Test::new("a");
    t.log_file(Some(file_a.clone()))
        .log_levels(crabby::LevelFilter::Off, crabby::LevelFilter::Info);
    t.add(Tagger("aaa"));
    barrier.wait();
    t.run_in_threads().expect("run a");
    other.join().unwrap().expect("run b");
    let a = std::fs::read_to_string(&file_a).unwrap();
    let b = std::fs::read_to_string(&file_b).unwrap();
    assert!(a.contains("tag aaa") && !a.contains("tag bbb"), "a:\n{a}");
    assert!(b.contains("tag bbb") && !b.contains("tag aaa"), "b:\n{b}");
}
/// Sends `n` = 1..=200, then ends the test.
struct CountsTo200(i64);
impl Block for CountsTo200 {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        self.0 += 1;
        ctx.send(&Sample::new().with("n", self.0))?;
        Ok(if self.0 == 200 {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// The capture Block under `run_in_threads` (the forked run is in tests/testing.rs): every
/// sample, in order, from a test that runs alongside others in this process.
#[test]
fn capture_returns_every_sample_in_threads() {
    let (cap, samples) = crabby::testing::capture();
    let mut t = quiet("threads-capture");
    let src = t.add_with(CountsTo200(0), Settings::new().freq(2000.0));
    let c = t.add(cap);
    t.link(src, c);
    let report = t.run_in_threads().expect("run");
    assert_eq!(report.links[0].sent, 200, "{report}");
    let n: Vec<f64> = samples
        .take()
        .unwrap()
        .iter()
        .filter_map(|s| s.get_f64("n"))
        .collect();
    assert_eq!(n, (1..=200).map(f64::from).collect::<Vec<_>>());
    let path = samples.path().to_path_buf();
    drop(samples);
    assert!(!path.exists(), "the capture file outlived its handle");
}

/// Sends the scheduling policy of its own thread (proc(5) field 41), then ends the test.
struct SendsPolicy;
impl Block for SendsPolicy {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
        let policy: i64 = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(41 - 3)?.parse().ok())
            .unwrap_or(-1);
        ctx.send(&Sample::new().with("policy", policy))?;
        Ok(Flow::Stop)
    }
}

/// `Settings::realtime` is checked under `run_in_threads` but not applied: the Block's thread
/// (a thread of this test process) stays SCHED_OTHER.
#[test]
fn realtime_is_not_applied_in_threads() {
    let (cap, samples) = crabby::testing::capture();
    let mut t = quiet("threads-realtime");
    let b = t.add_with(SendsPolicy, Settings::new().name("rt").realtime(30));
    let c = t.add(cap);
    t.link(b, c);
    match t.run_in_threads() {
        Ok(_) => {
            let s = samples.take().unwrap();
            assert_eq!(s.len(), 1, "{s:?}");
            assert_eq!(
                s[0].get_f64("policy"),
                Some(0.0),
                "the thread went real-time"
            );
        }
        // Not permitted on this machine: refused before the start, naming the Block.
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
            assert!(e.to_string().contains("rt"), "{e}");
        }
    }
}

#[test]
fn run_documents_are_written_in_threads_too() {
    let dir = TempDir::new("threads-docs");
    let csv = dir.path().join("machine.csv");
    let docs = dir.path().join("run.jsonl");
    let mut t = quiet("threads-docs");
    t.documents(Some(docs.clone())).metadata("specimen", "S-1");
    let gen = Generator::new([Path::constant(2.0).until("Exx(%) > 0.2")])
        .unwrap()
        .end_delay(Some(0.0));
    let g = t.add_with(gen, Settings::new().name("gen"));
    let m = t.add_with(FakeMachine::new(), Settings::new().name("machine"));
    let r = t.add_with(Recorder::new(&csv), Settings::new().name("rec"));
    t.link(g, m);
    t.link(m, g);
    t.link(m, r);
    let report = t.run_in_threads().expect("run");
    let docs: Vec<serde_json::Value> = std::fs::read_to_string(&docs)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = docs
        .iter()
        .map(|d| d["document"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["start", "descriptor", "stop"]);
    assert_eq!(docs[0]["metadata"]["specimen"], "S-1");
    let f = docs[1]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["label"] == "F(N)")
        .unwrap();
    assert_eq!(f["unit"], "N");
    assert_eq!(f["source"][0], "machine");
    assert_eq!(docs[2]["exit_status"], "success");
    let rows = std::fs::read_to_string(&csv).unwrap().lines().count() as u64 - 1;
    assert_eq!(docs[2]["counts"]["streams"][0]["rows"], rows);
    assert_eq!(report.block("rec").unwrap().rows_durable, Some(rows));
}
