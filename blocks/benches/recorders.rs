//! HDF5 recorder against CSV recorder, in the same run: a free-running source sends
//! 300 000 samples of 4 labels through a lossless link to each recorder in turn (the source
//! waits whenever the recorder falls behind), so rows/s is the recorder's own rate.
//! `cargo bench -p crabby-blocks --features hdf5 --bench recorders`

use crabby::{Block, Context, Flow, Label, Result, Sample, Settings, Test};
use crabby_blocks::{Hdf5Recorder, Recorder};
use std::path::Path;

const N: u64 = 300_000;

struct Burst {
    n: u64,
}
impl Block for Burst {
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(["t(s)", "F(N)", "x(mm)", "Exx(%)"].map(Label::new).to_vec())
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        for _ in 0..1000 {
            let t = self.n as f64 * 1e-4;
            ctx.send(
                &Sample::new()
                    .with("t(s)", t)
                    .with("F(N)", 1234.5678 * t)
                    .with("x(mm)", 0.001 * t)
                    .with("Exx(%)", 0.5 * t),
            )?;
            self.n += 1;
            if self.n >= N {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }
}

fn run(rec: impl Block, name: &str) -> f64 {
    let mut test = Test::new(name);
    test.log_file(None)
        .log_levels(crabby::LevelFilter::Warn, crabby::LevelFilter::Off);
    let src = test.add_with(Burst { n: 0 }, Settings::new().name("source").free_run());
    // Free-running: each loop drains everything pending.
    let r = test.add_with(rec, Settings::new().name("rec").free_run());
    test.link(src, r);
    let report = test.run().expect("run");
    assert_eq!(report.samples_lost(), 0, "{report}");
    N as f64 / (report.duration_s + report.cleanup_s)
}

fn main() {
    let dir = std::env::temp_dir().join(format!("crabby-bench-rec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let csv = run(Recorder::new(dir.join("a.csv")), "csv");
    let h5 = run(Hdf5Recorder::new(dir.join("a.h5")), "hdf5");
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len()) as f64 / 1e6;
    println!("recorders, {N} rows of 4 f64 labels, same run:");
    println!(
        "  CSV  recorder: {csv:>10.0} rows/s  ({:.1} MB)",
        size(&dir.join("a.csv"))
    );
    println!(
        "  HDF5 recorder: {h5:>10.0} rows/s  ({:.1} MB)",
        size(&dir.join("a.h5"))
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}
