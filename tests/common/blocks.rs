//! Helper Blocks of the test binaries that run a `Test`: [`Source`] (a signal of time),
//! [`StrainRamp`] (a strain ramp for the camera Blocks) and
//! [`Collector`] (every sample received, written to a file read back with [`rows`] and
//! [`get`]); [`read_csv`] / [`read_csv_text`] and [`col`] read back what a Recorder wrote.

use crabby::{Block, Context, Flow, Label, Result, Sample};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Sends `label = value(t)` at its rate until `stop_at` (then ends the test), or forever.
pub struct Source {
    pub label: Label,
    pub value: fn(f64) -> f64,
    pub stop_at: Option<f64>,
}

impl Block for Source {
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec![Label::new("t(s)"), self.label.clone()])
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let t = ctx.t();
        ctx.send(
            &Sample::new()
                .with("t(s)", t)
                .with(self.label.clone(), (self.value)(t)),
        )?;
        Ok(match self.stop_at {
            Some(s) if t >= s => Flow::Stop,
            _ => Flow::Continue,
        })
    }
}

/// Sends `Exx(%)` = a ramp to `top` over `ramp` s, then holds it; stops the test at `end` s.
pub struct StrainRamp {
    pub top: f64,
    pub ramp: f64,
    pub end: f64,
}

impl Block for StrainRamp {
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec![Label::new("t(s)"), Label::new("Exx(%)")])
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let t = ctx.t();
        let exx = self.top * (t / self.ramp).min(1.0);
        ctx.send(&Sample::new().with("t(s)", t).with("Exx(%)", exx))?;
        Ok(if t >= self.end {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// Writes every sample received, one line of `label=value` pairs, to a file in `finish`.
pub struct Collector {
    pub path: PathBuf,
    pub rows: Vec<Sample>,
}

impl Collector {
    pub fn new(path: &Path) -> Self {
        Collector {
            path: path.to_owned(),
            rows: Vec::new(),
        }
    }
}

impl Block for Collector {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        ctx.wait(Duration::from_millis(50));
        for v in ctx.recv_all_per_link() {
            self.rows.extend(v);
        }
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        for v in ctx.drain_until_ended(Duration::from_secs(2)) {
            self.rows.extend(v);
        }
        let mut out = String::new();
        for s in &self.rows {
            let cells: Vec<String> = s.iter().map(|(l, v)| format!("{l}={v}")).collect();
            out.push_str(&cells.join("\t"));
            out.push('\n');
        }
        std::fs::write(&self.path, out).map_err(|e| crabby::Error::io("collector file", e))
    }
}

/// The rows a [`Collector`] wrote: label → text value.
pub fn rows(path: &Path) -> std::result::Result<Vec<Vec<(String, String)>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(|l| {
            l.split('\t')
                .filter_map(|c| c.split_once('='))
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect()
        })
        .collect())
}

/// The value of `label` in a row of [`rows`], if it is there and a number.
pub fn get(row: &[(String, String)], label: &str) -> Option<f64> {
    row.iter()
        .find(|(l, _)| l == label)
        .and_then(|(_, v)| v.parse().ok())
}

/// A CSV written by the Recorder: its header and rows, cells as text.
pub fn read_csv_text(path: &Path) -> std::result::Result<(Vec<String>, Vec<Vec<String>>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header = lines
        .next()
        .ok_or("empty CSV")?
        .split(',')
        .map(String::from)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    Ok((header, rows))
}

/// A CSV written by the Recorder: header and rows (empty or unreadable cells as NaN).
pub fn read_csv(path: &Path) -> std::result::Result<(Vec<String>, Vec<Vec<f64>>), String> {
    let (header, rows) = read_csv_text(path)?;
    let rows = rows
        .iter()
        .map(|r| r.iter().map(|c| c.parse().unwrap_or(f64::NAN)).collect())
        .collect();
    Ok((header, rows))
}

/// The index of the column `name` in a CSV's header.
pub fn col(header: &[String], name: &str) -> std::result::Result<usize, String> {
    header
        .iter()
        .position(|h| h == name)
        .ok_or(format!("no column {name} in {header:?}"))
}
