//! [`Hdf5Recorder`] (cargo feature `hdf5`): records its inputs to an HDF5 file, through the
//! system's libhdf5 (`libhdf5-dev` on Debian and Ubuntu).
//!
//! - One extendible (chunked, unlimited) `f64` dataset per label under `/data`, all of the
//!   same length: row *i* of every dataset is one received sample; a label a sample lacks
//!   is `NaN`. Integers and booleans are stored as numbers; text is not stored (a warning
//!   names it).
//! - The IOBlock's streamed chunks (arrays: `t(s)` and one array per channel) are appended
//!   element by element, so a stream becomes plain columns.
//! - Each dataset has attributes `label` (the full label) and `unit` (what is between the
//!   parentheses: `F(N)` → `N`); the root group has the test's name, start time, crabby's
//!   version, the senders, the graph and any [`metadata`](Hdf5Recorder::metadata) given.
//! - Rows are buffered in memory and written every `flush_period` (0.5 s by default) in one
//!   batch followed by `H5Fflush`. Between two batches the library holds no unwritten
//!   metadata, so a `kill -9` of the whole test leaves a file that `h5dump` reads, holding
//!   everything up to the last batch (only a kill during the few milliseconds of a batch
//!   can catch the file mid-update).
//! - With run documents ([`Test::documents`](crabby::Test::documents)) the file is declared
//!   as a stream: at the start when [`labels`](Hdf5Recorder::labels) are given, else at the
//!   end with every label seen.
//! - An existing file is never overwritten (`run.h5` becomes `run_00001.h5`); at the stop
//!   everything still arriving is written before the file closes.
//!
//! ```no_run
//! use crabby_blocks::Hdf5Recorder;
//! let rec = Hdf5Recorder::new("results/run1.h5")
//!     .labels(["t(s)", "F(N)", "Exx(%)"])
//!     .metadata("operator", "A. Technician");
//! ```

use crabby::{Block, Context, Error, ErrorKind, Flow, GraphView, Label, Result, Settings, Value};
use hdf5::types::VarLenUnicode;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Records its inputs to an HDF5 file. See the [module docs](self).
#[derive(Debug)]
pub struct Hdf5Recorder {
    requested: PathBuf,
    labels: Option<Vec<Label>>,
    flush_period: Duration,
    drain_timeout: Duration,
    chunk: usize,
    metadata: Vec<(String, String)>,
    state: Option<Open>,
}

struct Column {
    label: Label,
    ds: hdf5::Dataset,
    written: usize,
    buf: Vec<f64>,
}

struct Open {
    path: PathBuf,
    file: hdf5::File,
    group: hdf5::Group,
    cols: Vec<Column>,
    fixed: bool,
    /// Whether the file was declared to the run documents.
    declared: bool,
    rows: u64,
    text_warned: bool,
    last_flush: Instant,
}

impl std::fmt::Debug for Open {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Open")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish()
    }
}

fn h5err(what: &str, e: hdf5::Error) -> Error {
    Error::new(ErrorKind::Io, format!("{what}: {e}"))
}

/// What is between the last parentheses of a label: `F(N)` → `N`, `t(s)` → `s`.
pub fn unit_of(label: &str) -> &str {
    crabby::documents::unit_of(label).unwrap_or("")
}

fn write_str_attr(loc: &hdf5::Location, name: &str, value: &str) -> Result<()> {
    let clean: String = value.chars().filter(|&c| c != '\0').collect();
    let v = VarLenUnicode::from_str(&clean)
        .map_err(|e| Error::new(ErrorKind::Io, format!("attribute {name}: {e}")))?;
    loc.new_attr::<VarLenUnicode>()
        .shape(())
        .create(name)
        .and_then(|a| a.write_scalar(&v))
        .map_err(|e| h5err(&format!("cannot write attribute {name}"), e))
}

impl Hdf5Recorder {
    /// Records to `path` (parent folders created; an existing file is kept and a numbered
    /// name used instead).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Hdf5Recorder {
            requested: path.into(),
            labels: None,
            flush_period: Duration::from_millis(500),
            drain_timeout: Duration::from_secs(2),
            chunk: 4096,
            metadata: Vec::new(),
            state: None,
        }
    }
    /// Records only these labels, in this order (default: every label received).
    pub fn labels<L: Into<Label>>(mut self, labels: impl IntoIterator<Item = L>) -> Self {
        self.labels = Some(labels.into_iter().map(Into::into).collect());
        self
    }
    /// How often rows reach the file at the latest (default 0.5 s).
    pub fn flush_period(mut self, period: Duration) -> Self {
        self.flush_period = period;
        self
    }
    /// Rows per HDF5 chunk (default 4096).
    pub fn chunk_rows(mut self, rows: usize) -> Self {
        self.chunk = rows;
        self
    }
    /// A text attribute of the root group (operator, sample reference, ...).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    fn open(&self) -> Result<Open> {
        let (path, file) = crate::recorder::create_unique(
            &self.requested,
            |p: &std::path::Path| hdf5::File::create_excl(p),
            |_, p: &std::path::Path| p.exists(),
            |p, e| h5err(&format!("cannot create {}", p.display()), e),
        )?;
        let group = file
            .create_group("data")
            .map_err(|e| h5err("cannot create group /data", e))?;
        let mut open = Open {
            path,
            file,
            group,
            cols: Vec::new(),
            fixed: false,
            declared: false,
            rows: 0,
            text_warned: false,
            last_flush: Instant::now(),
        };
        if let Some(ls) = &self.labels {
            for l in ls {
                open.add_column(l, self.chunk)?;
            }
            open.fixed = true;
        }
        Ok(open)
    }
}

impl Open {
    /// Declares the file to the run documents (every column is stored as `float64`, one
    /// dataset per label under `/data`).
    fn declare(&mut self, ctx: &Context) {
        if self.declared {
            return;
        }
        let mut info = crabby::documents::StreamInfo::new(&self.path, "hdf5");
        for c in &self.cols {
            info = info.column(c.label.as_str(), Some("float64"));
        }
        ctx.declare_stream(info);
        self.declared = true;
    }

    fn add_column(&mut self, label: &Label, chunk: usize) -> Result<usize> {
        let name = label.replace('/', "_");
        let ds = self
            .group
            .new_dataset::<f64>()
            .chunk(chunk)
            .shape(0..)
            .create(name.as_str())
            .map_err(|e| h5err(&format!("cannot create dataset for '{label}'"), e))?;
        write_str_attr(&ds, "label", label)?;
        write_str_attr(&ds, "unit", unit_of(label))?;
        let total = self.cols.first().map_or(0, |c| c.written + c.buf.len());
        // A label first seen now: NaN for the rows before it.
        if total > 0 {
            ds.resize(total)
                .map_err(|e| h5err("cannot extend a dataset", e))?;
            ds.write_slice(&vec![f64::NAN; total][..], 0..total)
                .map_err(|e| h5err("cannot write a dataset", e))?;
        }
        let written = total;
        self.cols.push(Column {
            label: label.clone(),
            ds,
            written,
            buf: Vec::new(),
        });
        Ok(self.cols.len() - 1)
    }

    fn push(&mut self, s: &crabby::Sample, chunk: usize, name: &str) -> Result<()> {
        if !self.fixed {
            for l in s.labels() {
                if !self.cols.iter().any(|c| &c.label == l) {
                    self.add_column(l, chunk)?;
                }
            }
        }
        // Rows this sample makes: 1, or the length of its arrays (a streamed chunk).
        let n = s
            .iter()
            .filter_map(|(_, v)| v.as_array().map(<[f64]>::len))
            .max()
            .unwrap_or(1);
        for c in &mut self.cols {
            match s.get(&c.label) {
                Some(Value::Array(a)) => {
                    c.buf.extend_from_slice(a);
                    c.buf.extend(std::iter::repeat_n(f64::NAN, n - a.len()));
                }
                Some(v @ (Value::Float(_) | Value::Int(_) | Value::Bool(_))) => {
                    let x = v.as_f64().unwrap_or(f64::NAN);
                    c.buf.extend(std::iter::repeat_n(x, n));
                }
                Some(Value::Text(_)) => {
                    if !self.text_warned {
                        self.text_warned = true;
                        log::warn!("{name}: label '{}' carries text, which the HDF5 recorder does not store", c.label);
                    }
                    c.buf.extend(std::iter::repeat_n(f64::NAN, n));
                }
                None => c.buf.extend(std::iter::repeat_n(f64::NAN, n)),
            }
        }
        self.rows += n as u64;
        Ok(())
    }

    /// Writes the buffered rows of every dataset, then flushes the file.
    fn flush(&mut self) -> Result<()> {
        for c in &mut self.cols {
            if c.buf.is_empty() {
                continue;
            }
            let end = c.written + c.buf.len();
            c.ds.resize(end)
                .map_err(|e| h5err(&format!("cannot extend dataset '{}'", c.label), e))?;
            c.ds.write_slice(&c.buf[..], c.written..end)
                .map_err(|e| h5err(&format!("cannot write dataset '{}'", c.label), e))?;
            c.written = end;
            c.buf.clear();
        }
        self.file
            .flush()
            .map_err(|e| h5err(&format!("cannot flush {}", self.path.display()), e))?;
        self.last_flush = Instant::now();
        Ok(())
    }
}

impl Block for Hdf5Recorder {
    fn default_settings(&self) -> Settings {
        Settings::new().freq(50.0)
    }
    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        let fail = |m: String| Error::config(m).with_origin(graph.name());
        if graph.inputs().is_empty() {
            return Err(fail(
                "an Hdf5Recorder needs an input link; link the Block(s) whose data it records"
                    .into(),
            ));
        }
        if let Some(ls) = &self.labels {
            if ls.is_empty() {
                return Err(fail("parameter 'labels' is empty; give at least one label or leave it unset to record all".into()));
            }
            for l in ls {
                graph.require_label(l, "parameter 'labels'")?;
            }
        }
        if self.flush_period.is_zero() {
            return Err(fail(
                "parameter 'flush_period' is 0; use a period such as 500 ms".into(),
            ));
        }
        if self.chunk == 0 {
            return Err(fail(
                "parameter 'chunk_rows' is 0; use a chunk such as 4096 rows".into(),
            ));
        }
        Ok(())
    }
    fn describe(&self) -> String {
        format!(
            "HDF5 file {}, labels {}, flush every {:?}",
            self.requested.display(),
            self.labels
                .as_ref()
                .map_or("all".to_owned(), |l| format!("{l:?}")),
            self.flush_period
        )
    }
    fn prepare(&mut self, _ctx: &mut Context) -> Result<()> {
        let open = self.open()?;
        log::info!("recording to {}", open.path.display());
        self.state = Some(open);
        Ok(())
    }
    fn begin(&mut self, ctx: &mut Context) -> Result<()> {
        let Some(open) = self.state.as_mut() else {
            return Ok(());
        };
        let started = ctx
            .t0_epoch_ns()
            .map(crabby::time::iso8601)
            .unwrap_or_default();
        let root: &hdf5::Location = &open.file;
        write_str_attr(root, "test", ctx.test_name())?;
        write_str_attr(root, "started", &started)?;
        write_str_attr(root, "crabby", env!("CARGO_PKG_VERSION"))?;
        write_str_attr(root, "senders", &ctx.input_senders().join(", "))?;
        write_str_attr(root, "graph", ctx.graph_description())?;
        for (k, v) in &self.metadata {
            write_str_attr(root, k, v)?;
        }
        // Fixed labels: the columns are known now (otherwise declared at the end).
        if open.fixed {
            open.declare(ctx);
        }
        open.file
            .flush()
            .map_err(|e| h5err("cannot flush the file", e))
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let name = ctx.name().to_owned();
        let chunk = self.chunk;
        let Some(open) = self.state.as_mut() else {
            return Ok(Flow::Continue);
        };
        let mut err = None;
        ctx.recv_each(|_, s| {
            if err.is_none() {
                err = open.push(&s, chunk, &name).err();
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        if open.last_flush.elapsed() >= self.flush_period {
            open.flush()?;
        }
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        let name = ctx.name().to_owned();
        let Some(mut open) = self.state.take() else {
            return Ok(());
        };
        for s in ctx
            .drain_until_ended(self.drain_timeout)
            .into_iter()
            .flatten()
        {
            open.push(&s, self.chunk, &name)?;
        }
        open.flush()?;
        open.declare(ctx);
        log::info!("{} rows written to {}", open.rows, open.path.display());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_come_from_the_label() {
        assert_eq!(unit_of("F(N)"), "N");
        assert_eq!(unit_of("Exx(%)"), "%");
        assert_eq!(unit_of("index"), "");
        assert_eq!(unit_of("T(C)x"), "");
    }

    #[test]
    fn rows_stay_aligned_with_nan_and_streams() {
        let dir = std::env::temp_dir().join(format!("crabby-h5-{}", std::process::id()));
        let rec = Hdf5Recorder::new(dir.join("a.h5"));
        let mut open = rec.open().unwrap();
        use crabby::Sample;
        open.push(&Sample::new().with("t(s)", 0.1).with("F(N)", 1.0), 8, "r")
            .unwrap();
        open.flush().unwrap();
        open.push(&Sample::new().with("t(s)", 0.2).with("x(mm)", 5.0), 8, "r")
            .unwrap();
        open.push(
            &Sample::new()
                .with("t(s)", vec![0.3, 0.4])
                .with("F(N)", vec![3.0, 4.0]),
            8,
            "r",
        )
        .unwrap();
        open.flush().unwrap();
        let read =
            |l: &str| -> Vec<f64> { open.group.dataset(l).unwrap().read_raw::<f64>().unwrap() };
        assert_eq!(read("t(s)"), vec![0.1, 0.2, 0.3, 0.4]);
        let f = read("F(N)");
        assert_eq!((f[0], f[2], f[3]), (1.0, 3.0, 4.0));
        assert!(f[1].is_nan());
        let x = read("x(mm)");
        assert!(x[0].is_nan() && x[1] == 5.0 && x[2].is_nan());
        assert_eq!(open.rows, 4);
        drop(open);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
