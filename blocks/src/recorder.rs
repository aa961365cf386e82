//! [`Recorder`]: writes every sample of its input link to a CSV file.
//!
//! - Header row: the labels given, or the labels of the first sample received.
//! - **Several inputs** (one file from several senders, e.g. a load cell and an
//!   extensometer): one row per sample received, with empty cells for the labels that
//!   sample lacks. Without [`labels`](Recorder::labels), the columns are the union of the
//!   first sample of each link, in link order (`t(s)` first), fixed once every link has sent
//!   one (or after 1 s). Or, with [`merge_on_time`](Recorder::merge_on_time), rows merged
//!   on a common time column: the inputs resampled onto a grid by the
//!   [`Multiplexer`](crate::Multiplexer)'s algorithm, every cell filled.
//! - One row per sample; a label missing from a sample is an empty cell (never an error).
//! - An existing file is never overwritten: `data.csv` becomes `data_00001.csv`, ...
//! - The rows received in a loop are written in one call at the end of that loop (or, with
//!   `flush_period`, batched for at most that long), so whatever ends the processes — a
//!   second Ctrl+C, SIGTERM, `kill -9` — every row the Recorder received is in the file,
//!   as whole rows.
//! - At the stop, everything still arriving on the link is written before the file closes:
//!   the number of rows equals the number of samples the sender sent.
//! - A metadata file `<stem>.meta.txt` next to the data holds the test name, the start date
//!   and time (ISO 8601), the crabby version, the graph (Blocks, parameters, links), the row
//!   count and, appended by the coordinator at the very end, the run report.
//! - When the test keeps run documents ([`Test::documents`](crabby::Test::documents)), the
//!   file is declared as a stream once its columns and first row are known (or at the end
//!   if no row came): the descriptor lists each column with its value type and unit.

use crabby::{Block, Context, Error, Flow, GraphView, Label, Result, Sample, Settings, Value};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Writes its input link to a CSV file. See the [module docs](self).
///
/// ```
/// use crabby_blocks::Recorder;
/// let rec = Recorder::new("results/run1/machine.csv").labels(["t(s)", "F(N)", "x(mm)"]);
/// ```
#[derive(Debug)]
pub struct Recorder {
    requested: PathBuf,
    labels: Option<Vec<Label>>,
    flush_period: Duration,
    drain_timeout: Duration,
    merge: Option<f64>,
    mux: Option<crate::MultiplexerCore>,
    state: Option<Open>,
}

#[derive(Debug)]
struct Open {
    path: PathBuf,
    meta_path: PathBuf,
    file: File,
    columns: Option<Vec<Label>>,
    buf: String,
    rows: u64,
    extra_warned: bool,
    last_flush: std::time::Instant,
    /// The type of each column's value in the first row (for the run documents).
    types: Vec<Option<&'static str>>,
    /// Whether the stream was declared to the run documents.
    declared: bool,
    /// Several inputs, columns not fixed yet: links that sent, samples held, first arrival.
    seen: Vec<bool>,
    held: Vec<Sample>,
    union: Vec<Label>,
    first_at: Option<std::time::Instant>,
}

impl Recorder {
    /// Records to `path` (parent folders are created; an existing file is kept and a
    /// numbered name is used instead).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Recorder {
            requested: path.into(),
            labels: None,
            flush_period: Duration::ZERO,
            drain_timeout: Duration::from_secs(2),
            merge: None,
            mux: None,
            state: None,
        }
    }

    /// Merges the inputs on a common time column: every label resampled at `interp_freq` Hz
    /// onto the multiples of its period, one row per grid time with every cell filled (the
    /// [`Multiplexer`](crate::Multiplexer)'s algorithm, run inside the Recorder). Default:
    /// one row per sample received.
    pub fn merge_on_time(mut self, interp_freq: f64) -> Self {
        self.merge = Some(interp_freq);
        self
    }

    /// Records only these labels, in this order (default: the labels of the first sample).
    pub fn labels<I, L>(mut self, labels: I) -> Self
    where
        I: IntoIterator<Item = L>,
        L: Into<Label>,
    {
        self.labels = Some(labels.into_iter().map(Into::into).collect());
        self
    }

    /// Batches rows for at most this long before writing them (default 0: the rows received
    /// in a loop are written at the end of that loop). A longer period saves system calls at
    /// high rates, at the price of that many seconds of rows if the Recorder is killed.
    pub fn flush_period(mut self, period: Duration) -> Self {
        self.flush_period = period;
        self
    }

    /// How long `finish` waits for the sender to finish so its last samples are recorded
    /// (default 2 s; keep it below the test's finish grace period).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Refuses, before anything is forked, a path `prepare` could not create: empty, a
    /// folder, or under a file or a folder this process may not write in. Creates nothing.
    fn check_path(&self) -> Result<()> {
        let p = &self.requested;
        let shown = p.display();
        if p.as_os_str().is_empty() {
            return Err(Error::config(
                "parameter 'path' is empty; give the CSV file to write, e.g. Recorder::new(\"results/data.csv\")",
            ));
        }
        let trailing_slash = p.as_os_str().as_encoded_bytes().ends_with(b"/");
        if trailing_slash || p.is_dir() || p.file_name().is_none() {
            return Err(Error::config(format!(
                "parameter 'path' is '{shown}', a folder; give a file name in it, e.g. '{}'",
                p.join("data.csv").display()
            )));
        }
        // The nearest existing ancestor: `prepare` creates the folders below it.
        let mut dir = p.parent().unwrap_or(Path::new(""));
        loop {
            let shown_dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            match std::fs::metadata(shown_dir) {
                Ok(m) if m.is_dir() => {
                    use nix::unistd::{access, AccessFlags};
                    return access(shown_dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
                        Error::config(format!(
                            "parameter 'path' is '{shown}', but this process may not create files in folder '{}' ({e}); choose a folder you can write to",
                            shown_dir.display()
                        ))
                    });
                }
                Ok(_) => {
                    return Err(Error::config(format!(
                        "parameter 'path' is '{shown}', but '{}' is a file, not a folder, so the file cannot be created under it; choose another path",
                        shown_dir.display()
                    )));
                }
                // Missing, or under a file (ENOTDIR): look one level up.
                Err(e)
                    if (e.kind() == std::io::ErrorKind::NotFound
                        || e.raw_os_error() == Some(nix::errno::Errno::ENOTDIR as i32))
                        && !dir.as_os_str().is_empty() =>
                {
                    dir = dir.parent().unwrap_or(Path::new(""));
                }
                Err(e) => {
                    return Err(Error::config(format!(
                        "parameter 'path' is '{shown}', but folder '{}' cannot be inspected ({e}); choose another path",
                        shown_dir.display()
                    )));
                }
            }
        }
    }

    fn open(&self) -> Result<Open> {
        let (path, file) = create_unique(
            &self.requested,
            |p| File::options().write(true).create_new(true).open(p),
            |e, _| e.kind() == std::io::ErrorKind::AlreadyExists,
            |p, e| Error::io(format!("cannot create {}", p.display()), e),
        )?;
        let meta_path = meta_path_of(&path);
        Ok(Open {
            meta_path,
            path,
            file,
            columns: self.labels.clone(),
            buf: String::with_capacity(64 * 1024),
            rows: 0,
            extra_warned: false,
            last_flush: std::time::Instant::now(),
            types: Vec::new(),
            declared: false,
            seen: Vec::new(),
            held: Vec::new(),
            union: Vec::new(),
            first_at: None,
        })
    }
}

/// `path`, or `stem_00001.ext`, `stem_00002.ext`, ... whichever does not exist yet.
pub fn free_name(path: &Path) -> PathBuf {
    if !path.exists() {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (1..)
        .map(|i| path.with_file_name(format!("{stem}_{i:05}{ext}")))
        .find(|p| !p.exists())
        .expect("an unused name exists")
}

impl Open {
    fn header(&mut self) {
        let cols = self.columns.as_ref().expect("columns known");
        let line: Vec<String> = cols.iter().map(|l| csv_cell(l.as_str())).collect();
        self.buf.push_str(&line.join(","));
        self.buf.push('\n');
    }

    /// A sample from input link `link` of `n_links`.
    fn push_from(&mut self, link: usize, n_links: usize, s: Sample, name: &str) {
        if self.columns.is_some() || n_links < 2 {
            self.push(&s, name);
            return;
        }
        if self.seen.len() != n_links {
            self.seen = vec![false; n_links];
        }
        self.first_at.get_or_insert_with(std::time::Instant::now);
        if !self.seen[link] {
            self.seen[link] = true;
            for l in s.labels() {
                if !self.union.contains(l) {
                    self.union.push(l.clone());
                }
            }
        }
        self.held.push(s);
        if self.seen.iter().all(|&b| b) {
            self.fix_columns(name);
        }
    }

    /// Several inputs: fixes the columns (the union so far, `t(s)` first) and writes the
    /// held samples. Called once every link has sent, after 1 s, or at the end.
    fn fix_columns(&mut self, name: &str) {
        if self.columns.is_some() || self.held.is_empty() {
            return;
        }
        let mut cols = std::mem::take(&mut self.union);
        if let Some(i) = cols.iter().position(|l| l.as_str() == "t(s)") {
            let t = cols.remove(i);
            cols.insert(0, t);
        }
        self.columns = Some(cols);
        self.header();
        for s in std::mem::take(&mut self.held) {
            self.push(&s, name);
        }
    }

    fn push(&mut self, s: &Sample, name: &str) {
        if self.columns.is_none() {
            self.columns = Some(s.labels().cloned().collect());
            self.header();
        }
        let cols = self.columns.as_ref().expect("columns known");
        if self.rows == 0 {
            self.types = cols
                .iter()
                .map(|l| s.get(l).map(crabby::documents::value_type))
                .collect();
        }
        for (i, l) in cols.iter().enumerate() {
            if i > 0 {
                self.buf.push(',');
            }
            if let Some(v) = s.get(l) {
                match v {
                    Value::Text(t) => self.buf.push_str(&csv_cell(t)),
                    v => {
                        use std::fmt::Write as _;
                        let _ = write!(self.buf, "{v}");
                    }
                }
            }
        }
        self.buf.push('\n');
        self.rows += 1;
        if !self.extra_warned && s.labels().any(|l| !cols.contains(l)) {
            self.extra_warned = true;
            let extra: Vec<&str> = s
                .labels()
                .filter(|l| !cols.contains(l))
                .map(|l| l.as_str())
                .collect();
            log::warn!(
                "{name}: labels {extra:?} are not among the recorded columns and are not written"
            );
        }
    }

    /// Declares the file to the run documents once its columns are known and (unless `now`)
    /// its first row gave the type of each value.
    fn declare(&mut self, ctx: &Context, now: bool) {
        let Some(cols) = self.columns.as_ref().filter(|_| !self.declared) else {
            return;
        };
        if self.rows == 0 && !now {
            return;
        }
        let mut info =
            crabby::documents::StreamInfo::new(&self.path, "csv").metadata_file(&self.meta_path);
        for (i, l) in cols.iter().enumerate() {
            info = info.column(l.as_str(), self.types.get(i).copied().flatten());
        }
        ctx.declare_stream(info);
        self.declared = true;
    }

    /// Writes the buffered whole rows in one call.
    fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.file
                .write_all(self.buf.as_bytes())
                .map_err(|e| Error::io(format!("cannot write {}", self.path.display()), e))?;
            self.buf.clear();
        }
        self.last_flush = std::time::Instant::now();
        Ok(())
    }
}

/// Creates the file `requested` (its folder first) or, if that name is taken, the next free
/// numbered one (`free_name`): a data file is never overwritten. `create` makes the file
/// only if it does not exist yet; when it fails because another process took the name
/// meanwhile (`taken`), the next free name is tried; any other failure is `error`.
pub(crate) fn create_unique<T, E>(
    requested: &Path,
    mut create: impl FnMut(&Path) -> std::result::Result<T, E>,
    taken: impl Fn(&E, &Path) -> bool,
    error: impl Fn(&Path, E) -> Error,
) -> Result<(PathBuf, T)> {
    if let Some(dir) = requested.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("cannot create folder {}", dir.display()), e))?;
    }
    loop {
        let path = free_name(requested);
        match create(&path) {
            Ok(f) => return Ok((path, f)),
            Err(e) if taken(&e, &path) => continue,
            Err(e) => return Err(error(&path, e)),
        }
    }
}

/// `data.csv` → `data.meta.txt`; a name without the `.csv` extension keeps its whole name
/// (`speed_0.5` → `speed_0.5.meta.txt`), so two data files never share a metadata file.
pub fn meta_path_of(data: &Path) -> PathBuf {
    match data.extension() {
        Some(e) if e == "csv" => data.with_extension("meta.txt"),
        _ => {
            let mut name = data.file_name().unwrap_or_default().to_os_string();
            name.push(".meta.txt");
            data.with_file_name(name)
        }
    }
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

impl Block for Recorder {
    fn default_settings(&self) -> Settings {
        // Each loop drains everything pending; 50 Hz keeps the CPU low and the link short.
        Settings::new().freq(50.0)
    }

    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        if graph.inputs().is_empty() {
            return Err(Error::config(
                "a Recorder needs an input link; link the Block(s) whose data it records",
            ));
        }
        if let Some(labels) = &self.labels {
            if labels.is_empty() {
                return Err(Error::config("parameter 'labels' is empty; give at least one label or leave it unset to record all"));
            }
            for l in labels {
                graph.require_label(l, "parameter 'labels'")?;
            }
        }
        if let Some(f) = self.merge {
            if !(f.is_finite() && f > 0.0) {
                return Err(Error::config(format!(
                    "parameter 'merge_on_time' is {f} Hz; give a grid frequency above 0"
                )));
            }
            graph.require_label("t(s)", "merge_on_time")?;
        }
        self.check_path()
    }

    fn describe(&self) -> String {
        format!(
            "file {}, labels {}, flush every {:?}{}",
            self.requested.display(),
            self.labels
                .as_ref()
                .map_or("all".to_owned(), |l| format!("{l:?}")),
            self.flush_period,
            self.merge
                .map_or(String::new(), |f| format!(", merged on time at {f} Hz"))
        )
    }

    fn prepare(&mut self, ctx: &mut Context) -> Result<()> {
        let mut open = self.open()?;
        if open.columns.is_some() {
            open.header();
            open.flush()?;
        }
        log::info!("recording to {}", open.path.display());
        let _ = ctx;
        self.state = Some(open);
        if let Some(f) = self.merge {
            let wanted = self.labels.as_ref().map(|ls| {
                ls.iter()
                    .filter(|l| l.as_str() != "t(s)")
                    .cloned()
                    .collect()
            });
            self.mux = Some(crate::MultiplexerCore::new(f, "t(s)", wanted));
        }
        Ok(())
    }

    fn begin(&mut self, ctx: &mut Context) -> Result<()> {
        let Some(open) = &self.state else {
            return Ok(());
        };
        let started = ctx
            .t0_epoch_ns()
            .map(crabby::time::iso8601)
            .unwrap_or_default();
        let meta = format!(
            "test: {}\nstarted: {started}\ncrabby: {}\nrecorder: {}\ndata: {}\nsender: {}\n\n[graph]\n{}",
            ctx.test_name(),
            env!("CARGO_PKG_VERSION"),
            ctx.name(),
            open.path.display(),
            ctx.input_senders().join(", "),
            ctx.graph_description()
        );
        std::fs::write(&open.meta_path, meta)
            .map_err(|e| Error::io(format!("cannot write {}", open.meta_path.display()), e))?;
        ctx.append_report_to(open.meta_path.clone());
        Ok(())
    }

    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let name = ctx.name().to_owned();
        let Some(open) = self.state.as_mut() else {
            return Ok(Flow::Continue);
        };
        if let Some(mux) = self.mux.as_mut() {
            for link in ctx.recv_all_per_link() {
                mux.push(&link);
            }
            for s in mux.resample() {
                open.push_from(0, 1, s, &name);
            }
        } else {
            let n = ctx.n_inputs();
            ctx.recv_each(|i, s| open.push_from(i, n, s, &name));
        }
        if open
            .first_at
            .is_some_and(|t| t.elapsed() >= Duration::from_secs(1))
        {
            open.fix_columns(&name);
        }
        open.declare(ctx, false);
        if open.last_flush.elapsed() >= self.flush_period {
            open.flush()?;
            if self.mux.is_none() {
                // One row per sample: the report can say what is on disk if this process dies.
                ctx.report_durable(open.rows);
            }
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        let name = ctx.name().to_owned();
        let Some(mut open) = self.state.take() else {
            return Ok(());
        };
        let n = ctx.n_inputs();
        if let Some(mux) = self.mux.as_mut() {
            let drained = ctx.drain_until_ended(self.drain_timeout);
            for link in drained {
                mux.push(&link);
            }
            for s in mux.resample() {
                open.push_from(0, 1, s, &name);
            }
        } else {
            // Written as it drains, a slice at a time: a terminate (a second Ctrl+C) during
            // the drain loses at most the slice in hand, never what was drained before.
            open.fix_columns(&name);
            let deadline = std::time::Instant::now() + self.drain_timeout;
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let slice = ctx.drain_until_ended(left.min(Duration::from_millis(50)));
                for (i, samples) in slice.into_iter().enumerate() {
                    for s in samples {
                        open.push_from(i, n, s, &name);
                    }
                }
                open.flush()?;
                ctx.report_durable(open.rows);
                if ctx.inputs_ended() || left.is_zero() {
                    break;
                }
            }
        }
        open.fix_columns(&name);
        open.flush()?;
        if self.mux.is_none() {
            ctx.report_durable(open.rows);
        }
        open.declare(ctx, true);
        open.file
            .sync_all()
            .map_err(|e| Error::io(format!("cannot sync {}", open.path.display()), e))?;
        if open.meta_path.exists() {
            let mut f = File::options()
                .append(true)
                .open(&open.meta_path)
                .map_err(|e| Error::io(format!("cannot open {}", open.meta_path.display()), e))?;
            let _ = writeln!(f, "\nrows: {}", open.rows);
        }
        log::info!("{} rows written to {}", open.rows, open.path.display());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_name_adds_a_numbered_suffix() {
        let dir = std::env::temp_dir().join(format!("crabby-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("data.csv");
        assert_eq!(free_name(&p), p);
        std::fs::write(&p, "x").unwrap();
        assert_eq!(free_name(&p), dir.join("data_00001.csv"));
        std::fs::write(dir.join("data_00001.csv"), "x").unwrap();
        assert_eq!(free_name(&p), dir.join("data_00002.csv"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rows_have_empty_cells_for_missing_labels_and_quoted_text() {
        let dir = std::env::temp_dir().join(format!("crabby-rec2-{}", std::process::id()));
        let rec = Recorder::new(dir.join("a.csv")).labels(["t(s)", "F(N)", "note"]);
        let mut open = rec.open().unwrap();
        open.header();
        open.push(&Sample::new().with("t(s)", 0.5).with("F(N)", 12.0), "rec");
        open.push(&Sample::new().with("t(s)", 1.0).with("note", "a,b"), "rec");
        open.flush().unwrap();
        let text = std::fs::read_to_string(&open.path).unwrap();
        assert_eq!(text, "t(s),F(N),note\n0.5,12,\n1,,\"a,b\"\n");
        assert_eq!(open.rows, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn several_inputs_share_one_file_with_the_union_of_columns() {
        let dir = std::env::temp_dir().join(format!("crabby-rec3-{}", std::process::id()));
        let rec = Recorder::new(dir.join("m.csv"));
        let mut open = rec.open().unwrap();
        open.push_from(
            0,
            2,
            Sample::new().with("F(N)", 1.0).with("t(s)", 0.1),
            "rec",
        );
        open.push_from(
            0,
            2,
            Sample::new().with("F(N)", 2.0).with("t(s)", 0.2),
            "rec",
        );
        assert!(open.columns.is_none(), "waits for the other link");
        open.push_from(
            1,
            2,
            Sample::new().with("t(s)", 0.15).with("Exx(%)", 0.5),
            "rec",
        );
        open.push_from(
            0,
            2,
            Sample::new().with("t(s)", 0.3).with("F(N)", 3.0),
            "rec",
        );
        open.flush().unwrap();
        let text = std::fs::read_to_string(&open.path).unwrap();
        assert_eq!(
            text,
            "t(s),F(N),Exx(%)\n0.1,1,\n0.2,2,\n0.15,,0.5\n0.3,3,\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
