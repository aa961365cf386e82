//! `crabby::testing`: the capture Block across fork, and what sharing memory between Blocks
//! does under `run()` (nothing). The capture Block under `run_in_threads` is tested in
//! `tests/threads.rs`; the harness itself in `tests/harness.rs`.

mod common;

use common::{case, TempDir};
use crabby::testing::capture;
use crabby::{Block, Context, Flow, Result, Sample, Settings, Test};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

type R = std::result::Result<(), String>;

fn quiet(name: &str, dir: &TempDir) -> Test {
    let mut t = Test::new(name);
    t.log_file(Some(dir.path().join("test.log")))
        .log_levels(crabby::LevelFilter::Warn, crabby::LevelFilter::Info);
    t
}

/// Sends `n` = 1..=last with its name, then ends the test (or keeps going if `!ends`).
struct Counter {
    tag: &'static str,
    n: i64,
    last: i64,
    ends: bool,
}
impl Block for Counter {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if self.n < self.last {
            self.n += 1;
            ctx.send(&Sample::new().with("src", self.tag).with("n", self.n))?;
        }
        Ok(if self.ends && self.n == self.last {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// Every sample of every sender reaches the capture Block in its own process, each link's in
/// order, and comes back to the test after `run()`; the file goes with the handle.
fn capture_returns_every_sample_after_run() -> R {
    let dir = TempDir::new("capture-fork");
    let (cap, samples) = capture();
    let mut t = quiet("capture-fork", &dir);
    let a = t.add_with(
        Counter {
            tag: "a",
            n: 0,
            last: 300,
            ends: true,
        },
        Settings::new().name("a").freq(1000.0),
    );
    // `b` does not end the test: what it sends is captured whether the stop finds it done or
    // not, in order.
    let b = t.add_with(
        Counter {
            tag: "b",
            n: 0,
            last: 100,
            ends: false,
        },
        Settings::new().name("b").freq(2000.0),
    );
    let c = t.add_with(cap, Settings::new().name("capture"));
    t.link(a, c);
    t.link(b, c);
    let report = t.run().map_err(|e| e.to_string())?;
    let got = samples.take().map_err(|e| e.to_string())?;
    for tag in ["a", "b"] {
        let n: Vec<f64> = got
            .iter()
            .filter(|s| s.get("src").and_then(|v| v.as_text()) == Some(tag))
            .filter_map(|s| s.get_f64("n"))
            .collect();
        let sent = report
            .links
            .iter()
            .find(|l| l.from == tag)
            .map(|l| l.sent)
            .ok_or("no link in the report")?;
        ensure!(
            n.len() as u64 == sent,
            "{tag}: {} captured, {sent} sent",
            n.len()
        );
        let want: Vec<f64> = (1..=sent as i64).map(|i| i as f64).collect();
        ensure!(n == want, "{tag}: out of order or missing: {n:?}");
    }
    let a_sent = report.links.iter().find(|l| l.from == "a").map(|l| l.sent);
    ensure!(
        a_sent == Some(300),
        "a ends the test after 300 samples: {a_sent:?}"
    );
    ensure!(
        samples.take().map_err(|e| e.to_string())?.is_empty(),
        "take empties the capture"
    );
    let path = samples.path().to_path_buf();
    ensure!(
        path.exists(),
        "the capture file exists while the handle lives"
    );
    drop(samples);
    ensure!(!path.exists(), "the capture file outlived its handle");
    Ok(())
}

/// Adds one to a counter it shares with the test, on every loop.
struct Bumps(Arc<AtomicUsize>);
impl Block for Bumps {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        self.0.fetch_add(1, Ordering::SeqCst);
        ctx.send(&Sample::new().with("seen", self.0.load(Ordering::SeqCst) as i64))?;
        Ok(if ctx.t() > 0.05 {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// What the crate docs warn about: an `Arc<AtomicUsize>` shared with a Block compiles and
/// runs, but under `run()` the Block bumps its own copy; the test's stays at 0. The capture
/// Block does see what the Block sent.
fn memory_shared_with_a_block_is_not_shared_under_run() -> R {
    let dir = TempDir::new("no-shared-memory");
    let counter = Arc::new(AtomicUsize::new(0));
    let (cap, samples) = capture();
    let mut t = quiet("no-shared-memory", &dir);
    let b = t.add_with(Bumps(counter.clone()), Settings::new().freq(500.0));
    let c = t.add(cap);
    t.link(b, c);
    t.run().map_err(|e| e.to_string())?;
    let seen = samples.take().map_err(|e| e.to_string())?;
    ensure!(!seen.is_empty(), "the Block sent nothing");
    let last = seen.last().and_then(|s| s.get_f64("seen")).unwrap_or(0.0);
    ensure!(last >= 1.0, "the Block's own copy counted {last}");
    ensure!(
        counter.load(Ordering::SeqCst) == 0,
        "the test's counter moved: memory is shared after all?"
    );
    Ok(())
}

fn main() {
    common::main(&[
        case(
            "capture_returns_every_sample_after_run",
            30,
            capture_returns_every_sample_after_run,
        ),
        case(
            "memory_shared_with_a_block_is_not_shared_under_run",
            30,
            memory_shared_with_a_block_is_not_shared_under_run,
        ),
    ])
}
