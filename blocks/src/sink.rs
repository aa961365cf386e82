//! [`LinkReader`] (logs what it receives, rate-limited) and [`Sink`] (drops everything).
//!
//! Both drain their inputs completely every loop, so they never hold a sender up.
//!
//! ```
//! use crabby_blocks::{LinkReader, Sink};
//! let reader = LinkReader::new().max_lines_per_s(2.0); // at most 2 log lines per second
//! let sink = Sink::new();
//! ```

use crabby::{Block, Context, Error, Flow, GraphView, Result, Settings};
use std::time::Duration;

/// Logs the samples it receives at `Info`, at most `max_lines_per_s` lines a second; the
/// samples in between are counted, and each line says how many were not shown.
#[derive(Debug)]
pub struct LinkReader {
    max_rate: f64,
    next_t: f64,
    skipped: u64,
    received: u64,
}

impl Default for LinkReader {
    fn default() -> Self {
        Self::new()
    }
}

impl LinkReader {
    /// A reader logging at most 10 lines a second.
    pub fn new() -> Self {
        LinkReader {
            max_rate: 10.0,
            next_t: 0.0,
            skipped: 0,
            received: 0,
        }
    }
    /// Most log lines per second (default 10).
    pub fn max_lines_per_s(mut self, rate: f64) -> Self {
        self.max_rate = rate;
        self
    }
    /// Samples received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Whether a line may be logged at `now`; counts the sample otherwise.
    fn allow(&mut self, now: f64) -> bool {
        self.received += 1;
        if now >= self.next_t {
            self.next_t = now + 1.0 / self.max_rate;
            true
        } else {
            self.skipped += 1;
            false
        }
    }
}

impl Block for LinkReader {
    fn default_settings(&self) -> Settings {
        Settings::new().freq(50.0)
    }
    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        if !(self.max_rate.is_finite() && self.max_rate > 0.0) {
            return Err(Error::config(format!(
                "parameter 'max_lines_per_s' is {}; give a rate above 0",
                self.max_rate
            ))
            .with_origin(graph.name()));
        }
        if graph.inputs().is_empty() {
            return Err(
                Error::config("a LinkReader needs an input link; link the Block to watch")
                    .with_origin(graph.name()),
            );
        }
        Ok(())
    }
    fn describe(&self) -> String {
        format!("at most {} lines/s", self.max_rate)
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let now = ctx.t();
        let senders: Vec<String> = ctx.input_senders().iter().map(|s| s.to_string()).collect();
        let mut lines = Vec::new();
        ctx.recv_each(|i, s| {
            if self.allow(now) {
                let body: Vec<String> = s.iter().map(|(l, v)| format!("{l}={v}")).collect();
                let skipped = std::mem::take(&mut self.skipped);
                let note = if skipped > 0 {
                    format!(" ({skipped} not shown)")
                } else {
                    String::new()
                };
                lines.push(format!("from {}: {}{note}", senders[i], body.join(", ")));
            }
        });
        for l in lines {
            log::info!("{l}");
        }
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        // What the senders sent until they finished is counted, not left in the links.
        for link in ctx.drain_until_ended(Duration::from_millis(500)) {
            self.received += link.len() as u64;
        }
        log::info!("{} samples received", self.received);
        Ok(())
    }
}

/// Receives and drops everything: the end of a link nobody needs (a Block that must have an
/// output, a benchmark).
#[derive(Debug, Default)]
pub struct Sink {
    received: u64,
}

impl Sink {
    /// A sink.
    pub fn new() -> Self {
        Sink { received: 0 }
    }
}

impl Block for Sink {
    fn default_settings(&self) -> Settings {
        Settings::new().free_run()
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if ctx.wait(Duration::from_millis(100)) {
            self.received += ctx.recv_each(|_, _| {}) as u64;
        }
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        for link in ctx.drain_until_ended(Duration::from_millis(500)) {
            self.received += link.len() as u64;
        }
        log::debug!("{} samples dropped", self.received);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_counts_the_rest() {
        let mut r = LinkReader::new().max_lines_per_s(2.0);
        let shown: Vec<bool> = (0..10).map(|i| r.allow(i as f64 * 0.1)).collect();
        assert_eq!(shown.iter().filter(|&&b| b).count(), 2, "{shown:?}");
        assert!(shown[0] && shown[5]);
        assert_eq!(r.received(), 10);
        assert_eq!(r.skipped, 8, "not shown, counted for the next line");
    }
}
