//! A user's own sensor driver in a few lines, driven by an IOBlock and recorded to CSV.
//!
//! `LoadCell` pretends to be a load cell with a 2.5 N zero offset under a slowly growing
//! load; the IOBlock removes the offset (`make_zero`) and timestamps the readings; a
//! Recorder writes them; a StopBlock ends the test after 2 s.
//!
//! Run: `cargo run --example custom_inout`

use crabby::hardware::{InOut, Input, Reading};
use crabby::{Result, Settings, Test};
use crabby_blocks::{IOBlock, Recorder, StopBlock};

/// The driver: a read-only sensor is an `Input` (its one method, `read`) on top of the
/// `InOut` base (here only its channel names; `open`, `close`, `check`, `status` have
/// defaults).
struct LoadCell {
    start: std::time::Instant,
}

impl InOut for LoadCell {
    fn channels(&self) -> Vec<String> {
        vec!["F(N)".into()]
    }
}

impl Input for LoadCell {
    fn read(&mut self) -> Result<Reading> {
        // Replace with the real acquisition; the load grows by 10 N/s after 0.5 s.
        let t = self.start.elapsed().as_secs_f64();
        Ok(Reading::now(vec![2.5 + 10.0 * (t - 0.5).max(0.0)]))
    }
}

fn main() -> Result<()> {
    let csv = std::env::temp_dir()
        .join("crabby-examples")
        .join("custom_inout.csv");
    let mut test = Test::new("custom-inout");
    test.log_file(None);
    let cell = LoadCell {
        start: std::time::Instant::now(),
    };
    let io = test.add_with(
        IOBlock::input(cell).make_zero(0.2),
        Settings::new().name("load cell").freq(50.0),
    );
    let rec = test.add(Recorder::new(&csv));
    let stop = test.add(StopBlock::new(["t(s) > 2"])?);
    test.link(io, rec);
    test.link(io, stop);
    // The coordinator logs the run report; a failed run returns an error naming the Block.
    let report = test.run()?;
    println!("{} samples lost", report.samples_lost());
    println!(
        "data written under {}",
        csv.parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    Ok(())
}
