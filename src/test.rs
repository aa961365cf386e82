//! [`Test`]: the graph a user builds, checked before anything is forked.

use crate::block::{Grace, GraphView, InputView, Rate, Sched, Settings, DEFAULT_RATE};
use crate::link::{labels_through, LinkOptions};
use crate::{Block, Error, Label, Report, Result};
use log::LevelFilter;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static NEXT_TEST_ID: AtomicU64 = AtomicU64::new(1);

/// A Block in a [`Test`], returned by [`Test::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockId {
    pub(crate) test: u64,
    pub(crate) index: usize,
}

/// A link in a [`Test`], returned by [`Test::link`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkId(pub(crate) usize);

pub(crate) struct Entry {
    pub block: Box<dyn Block>,
    pub settings: Settings,
}

pub(crate) struct LinkEntry {
    pub from: BlockId,
    pub to: BlockId,
    pub opts: LinkOptions,
}

/// A test: Blocks joined by links, run by [`Test::run`].
///
/// ```no_run
/// # use crabby::{Test, Block, Context, Flow, Result, Sample};
/// # struct Source; impl Block for Source { fn step(&mut self, c: &mut Context) -> Result<Flow> { Ok(Flow::Stop) } }
/// # struct Sink; impl Block for Sink { fn step(&mut self, c: &mut Context) -> Result<Flow> { Ok(Flow::Continue) } }
/// let mut test = Test::new("demo");
/// let a = test.add(Source);
/// let b = test.add(Sink);
/// test.link(a, b);
/// let report = test.run()?;
/// println!("{report}");
/// # Ok::<(), crabby::Error>(())
/// ```
pub struct Test {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) blocks: Vec<Entry>,
    pub(crate) links: Vec<LinkEntry>,
    pub(crate) grace: Grace,
    pub(crate) log_file: Option<PathBuf>,
    pub(crate) console_level: LevelFilter,
    pub(crate) file_level: LevelFilter,
    pub(crate) allow_nice_failure: bool,
    pub(crate) prepare_timeout: std::time::Duration,
    pub(crate) fail_on_loss: bool,
    pub(crate) silent_link_after: std::time::Duration,
    pub(crate) documents: Option<PathBuf>,
    pub(crate) provenance: Option<crate::documents::Provenance>,
    pub(crate) metadata: Vec<(String, String)>,
    /// Per Block (by index): the parameters the front end read for it.
    pub(crate) block_parameters: Vec<(usize, Vec<(String, String)>)>,
}

impl std::fmt::Debug for Test {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Test")
            .field("name", &self.name)
            .field("blocks", &self.blocks.len())
            .field("links", &self.links.len())
            .finish()
    }
}

/// A Block with its resolved settings, after the check.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub name: String,
    pub kind: String,
    pub rate: Rate,
    /// Niceness and real-time priority (named for what the coordinator passes on).
    pub niceness: Sched,
    pub display_freq: bool,
    pub log_level: LevelFilter,
    pub pausable: bool,
    pub step_timeout: Option<std::time::Duration>,
}

impl Test {
    /// A new, empty test. The name appears in logs, reports and file names.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        Test {
            id: NEXT_TEST_ID.fetch_add(1, Ordering::Relaxed),
            log_file: Some(default_log_file(&name)),
            name,
            blocks: Vec::new(),
            links: Vec::new(),
            grace: Grace::default(),
            console_level: LevelFilter::Info,
            file_level: LevelFilter::Debug,
            allow_nice_failure: false,
            prepare_timeout: std::time::Duration::from_secs(60),
            fail_on_loss: false,
            silent_link_after: std::time::Duration::from_secs(10),
            documents: None,
            provenance: None,
            metadata: Vec::new(),
            block_parameters: Vec::new(),
        }
    }

    /// Keeps the run documents in this file (JSON lines, appended: several runs may share
    /// it): a *start* document before the Blocks are forked, one *descriptor* per recorded
    /// stream, a *stop* document at the end however the run ended. `None` (the default)
    /// writes none. See [`documents`](crate::documents) for what each holds. If the start
    /// document cannot be written, `run` returns an error before anything starts. A test
    /// refused before it starts (its graph fails the checks made before the fork, or `run`
    /// is called while threads run) writes no document at all: nothing ran, `run` returns
    /// the error.
    /// A later write that fails (a full disk) is logged and the run goes on; keep the file on
    /// a local disk: the coordinator writes descriptors during the run, and a write that
    /// hangs (an unreachable network file system) holds its loop, Ctrl+C and the watchdogs
    /// included, until the write returns.
    ///
    /// ```no_run
    /// # let mut test = crabby::Test::new("tensile");
    /// test.documents(Some("results/run1/run.jsonl".into()))
    ///     .metadata("operator", "A. Technician")
    ///     .metadata("specimen", "S-042");
    /// ```
    pub fn documents(&mut self, path: Option<PathBuf>) -> &mut Self {
        self.documents = path;
        self
    }

    /// Records where the test came from, for the run documents: the test file's path and
    /// its text, whose SHA-256 is kept (so a run can be matched with the exact file that
    /// described it). Front ends that read a test file call it.
    pub fn provenance(&mut self, source: impl Into<PathBuf>, text: &str) -> &mut Self {
        self.provenance = Some(crate::documents::Provenance {
            source: source.into(),
            sha256: crate::documents::sha256_hex(text.as_bytes()),
            bytes: text.len(),
        });
        self
    }

    /// Adds user metadata to the run documents' start document (operator, specimen,
    /// batch...). A key given twice keeps its last value.
    pub fn metadata(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let (key, value) = (key.into(), value.into());
        match self.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some(kv) => kv.1 = value,
            None => self.metadata.push((key, value)),
        }
        self
    }

    /// Records the parameters a front end read for a Block (name and value as written in
    /// the test file), for the run documents: they appear under the Block in the start
    /// document, beside its own [`describe`](crate::Block::describe). Given twice for the
    /// same Block, the parameters are added to the earlier ones.
    pub fn block_parameters<K, V>(
        &mut self,
        block: BlockId,
        params: impl IntoIterator<Item = (K, V)>,
    ) -> &mut Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let params: Vec<(String, String)> = params
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        if block.test != self.id {
            log::warn!("Test::block_parameters: the BlockId belongs to another Test; ignored");
            return self;
        }
        match self
            .block_parameters
            .iter_mut()
            .find(|(i, _)| *i == block.index)
        {
            Some((_, p)) => p.extend(params),
            None => self.block_parameters.push((block.index, params)),
        }
        self
    }

    /// After how long a link that carried nothing while its sender loops is reported (once
    /// per link; default 10 s). A Block waiting for a label no Block sends shows up here.
    pub fn silent_link_after(&mut self, after: std::time::Duration) -> &mut Self {
        self.silent_link_after = after;
        self
    }

    /// How long the Blocks may take to prepare (open devices, home motors) before the test
    /// stops with an error naming the Blocks not ready (default 60 s), instead of waiting at
    /// the barrier forever.
    pub fn prepare_timeout(&mut self, limit: std::time::Duration) -> &mut Self {
        self.prepare_timeout = limit;
        self
    }

    /// Makes `run()` fail (with [`ErrorKind::DataLost`](crate::ErrorKind::DataLost)) when
    /// anything sent on a lossless link was lost: dropped, undelivered because its receiver
    /// died or gave up, or received but never made durable (default: off; the report counts
    /// it either way).
    pub fn fail_on_loss(&mut self, yes: bool) -> &mut Self {
        self.fail_on_loss = yes;
        self
    }

    /// The test's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds a Block with its default settings.
    pub fn add(&mut self, block: impl Block) -> BlockId {
        self.add_with(block, Settings::new())
    }

    /// Adds a Block; fields set in `settings` override the Block's defaults.
    pub fn add_with(&mut self, block: impl Block, settings: Settings) -> BlockId {
        self.blocks.push(Entry {
            block: Box::new(block),
            settings,
        });
        BlockId {
            test: self.id,
            index: self.blocks.len() - 1,
        }
    }

    /// Links `from` to `to` with the default options (blocking, lossless).
    pub fn link(&mut self, from: BlockId, to: BlockId) -> LinkId {
        self.link_with(from, to, LinkOptions::new())
    }

    /// Links `from` to `to` with options (name, overflow policy, capacity, modifiers).
    pub fn link_with(&mut self, from: BlockId, to: BlockId, opts: LinkOptions) -> LinkId {
        self.links.push(LinkEntry { from, to, opts });
        LinkId(self.links.len() - 1)
    }

    /// Sets the grace periods of the cleanup ladder (default: 3 s to finish after the stop,
    /// then 0.5 s after SIGTERM before SIGKILL). `finish` must be at least
    /// [`Grace::MIN_FINISH`] and `terminate` at least [`Grace::MIN_TERMINATE`] (checked by
    /// `run`).
    pub fn grace(&mut self, finish: Duration, terminate: Duration) -> &mut Self {
        self.grace = Grace { finish, terminate };
        self
    }

    /// Writes the log to this file (default `crabby_logs/<test>-<date>.log` under the
    /// current directory); `None` writes no log file.
    pub fn log_file(&mut self, path: Option<PathBuf>) -> &mut Self {
        self.log_file = path;
        self
    }

    /// The most verbose level shown on the console (default `Info`) and written to the log
    /// file (default `Debug`).
    pub fn log_levels(&mut self, console: LevelFilter, file: LevelFilter) -> &mut Self {
        self.console_level = console;
        self.file_level = file;
        self
    }

    /// With `true`, a niceness this process may not set is a warning instead of an error.
    pub fn allow_nice_failure(&mut self, allow: bool) -> &mut Self {
        self.allow_nice_failure = allow;
        self
    }

    /// Runs the test: checks the graph, forks every Block, prepare → barrier → start →
    /// wait → cleanup. Returns the report, or an error naming what failed (the error also
    /// carries the report, see [`Error::report`]).
    ///
    /// Call it from the program's main thread before any other thread exists (see
    /// ARCHITECTURE.md, "fork before threads"); otherwise it returns a configuration error.
    pub fn run(self) -> Result<Report> {
        crate::coordinator::run(self, crate::coordinator::Mode::Processes)
    }

    /// Runs the test with each Block on a thread of this process instead of its own process:
    /// the same lifecycle, links, barrier and stop, so Block logic can be tested from an
    /// ordinary `#[test]`. No process isolation: a crash takes the whole process, signals are
    /// not handled, and a Block that hangs past the grace periods is abandoned (reported as
    /// killed, its thread left running). Use [`run`](Test::run) for real tests.
    ///
    /// **Here Blocks share memory; under `run()` they do not.** An `Arc`, atomic, `Mutex` or
    /// `static` shared by two Blocks (or with the test) works in threads and silently does
    /// nothing under `run()`, where each Block has its own copy. Pass data through links;
    /// read what a Block sent with [`testing::capture`](crate::testing::capture), which works
    /// in both runtimes; couple simulated devices in one Block or through links (see
    /// [`testing`](crate::testing)). [`Settings::realtime`] is checked but not applied here.
    pub fn run_in_threads(self) -> Result<Report> {
        crate::coordinator::run(self, crate::coordinator::Mode::Threads)
    }

    /// Checks the graph (names, settings, links, every Block's own check) and resolves the
    /// settings. Nothing is forked.
    pub(crate) fn check(&self) -> Result<Vec<Resolved>> {
        let mut resolved = Vec::with_capacity(self.blocks.len());
        let mut counters: std::collections::HashMap<String, usize> = Default::default();
        for e in &self.blocks {
            let kind = e.block.kind().to_owned();
            let s = e.settings.clone().or(e.block.default_settings());
            let name = match s.name {
                Some(n) => n,
                None => {
                    let c = counters.entry(kind.clone()).or_insert(0);
                    *c += 1;
                    format!("{kind}-{c}")
                }
            };
            resolved.push(Resolved {
                name,
                kind,
                rate: s.rate.unwrap_or(DEFAULT_RATE),
                niceness: Sched {
                    niceness: s.niceness,
                    realtime: s.realtime,
                },
                display_freq: s.display_freq.unwrap_or(false),
                // By default a Block sends only the records someone will write (not every
                // trace record through its log channel).
                log_level: s
                    .log_level
                    .unwrap_or(self.console_level.max(self.file_level)),
                pausable: s.pausable.unwrap_or(true),
                step_timeout: s.step_timeout,
            });
        }
        if resolved.is_empty() {
            return Err(Error::config(format!(
                "test '{}' has no Block; add one with Test::add",
                self.name
            )));
        }
        for (i, r) in resolved.iter().enumerate() {
            if r.name.trim().is_empty() {
                return Err(Error::config(format!(
                    "Block #{i} ({}) has an empty name",
                    r.kind
                )));
            }
            if let Some(j) = resolved[..i].iter().position(|o| o.name == r.name) {
                return Err(Error::config(format!(
                    "two Blocks are named '{}' (#{j} and #{i}); give each a unique name with Settings::name",
                    r.name
                ))
                .with_origin(r.name.clone()));
            }
            if let Rate::Hz(hz) = r.rate {
                if !(hz.is_finite() && (Rate::MIN_HZ..=Rate::MAX_HZ).contains(&hz)) {
                    return Err(Error::config(format!(
                        "setting 'freq' is {hz}; it must be a finite frequency in Hz from {} (a period of about 28 h; slower cannot be paced and is surely a typo) to 1 MHz (use Settings::free_run for no pacing)",
                        Rate::MIN_HZ
                    ))
                    .with_origin(r.name.clone()));
                }
            }
            if let Some(n) = r.niceness.niceness {
                if !(-20..=19).contains(&n) {
                    return Err(Error::config(format!(
                        "setting 'niceness' is {n}; it must be between -20 and 19"
                    ))
                    .with_origin(r.name.clone()));
                }
                if !crate::sys::may_set_niceness(n) {
                    let msg = format!(
                        "setting 'niceness' is {n}, which needs privileges this process lacks (root, CAP_SYS_NICE or a higher RLIMIT_NICE); use a niceness >= {} or call Test::allow_nice_failure(true) to run anyway",
                        crate::sys::niceness()
                    );
                    if self.allow_nice_failure {
                        log::warn!("{}: {msg}", r.name);
                    } else {
                        return Err(Error::config(msg).with_origin(r.name.clone()));
                    }
                }
            }
            if let Some(p) = r.niceness.realtime {
                if let Some(msg) =
                    crate::realtime::refusal(p, &crate::realtime::Privileges::current())
                {
                    return Err(Error::config(msg).with_origin(r.name.clone()));
                }
            }
        }
        if self.grace.finish < Grace::MIN_FINISH {
            return Err(Error::config(format!(
                "test '{}': Test::grace finish is {:?}; it must be at least {:?} so every Block can run `finish` (stop its motors, drain its links, flush its files) before SIGTERM",
                self.name,
                self.grace.finish,
                Grace::MIN_FINISH
            )));
        }
        if self.grace.terminate < Grace::MIN_TERMINATE {
            return Err(Error::config(format!(
                "test '{}': Test::grace terminate is {:?}; it must be at least {:?} so a Block can flush its data after SIGTERM before SIGKILL",
                self.name,
                self.grace.terminate,
                Grace::MIN_TERMINATE
            )));
        }
        for (e, r) in self.blocks.iter().zip(&resolved) {
            check_labels(e.block.output_labels().as_deref(), || {
                format!("{}'s output_labels", r.name)
            })
            .map_err(|err| err.with_origin(r.name.clone()))?;
        }
        let mut link_names: Vec<String> = Vec::new();
        for (i, l) in self.links.iter().enumerate() {
            let name = l
                .opts
                .name
                .clone()
                .unwrap_or_else(|| format!("link{}", i + 1));
            for (end, id) in [("from", l.from), ("to", l.to)] {
                if id.test != self.id || id.index >= self.blocks.len() {
                    return Err(Error::config(format!(
                        "link '{name}': its '{end}' Block does not belong to test '{}' (a BlockId from another Test?)",
                        self.name
                    )));
                }
            }
            if link_names.contains(&name) {
                return Err(Error::config(format!(
                    "two links are named '{name}'; link names must be unique"
                )));
            }
            if l.from.index == l.to.index {
                return Err(Error::config(format!(
                    "link '{name}' goes from Block '{0}' to itself; a Block cannot read what it sends (it would wait on itself when the link is full); keep the state inside the Block instead",
                    resolved[l.from.index].name
                ))
                .with_origin(resolved[l.from.index].name.clone()));
            }
            if l.opts.capacity_bytes > LinkOptions::MAX_CAPACITY_BYTES {
                return Err(Error::config(format!(
                    "link '{name}' from {} to {}: capacity_bytes is {} bytes; at most {} (1 GiB) is accepted: each link's buffer is mapped in full before the test starts. Use LinkOptions::capacity_bytes with a smaller size (the default 1 MiB holds ~25 000 samples)",
                    resolved[l.from.index].name,
                    resolved[l.to.index].name,
                    l.opts.capacity_bytes,
                    LinkOptions::MAX_CAPACITY_BYTES
                ))
                .with_origin(resolved[l.from.index].name.clone()));
            }
            if l.opts.capacity_samples == 0 {
                return Err(Error::config(format!(
                    "link '{name}': capacity_samples must be at least 1"
                ))
                .with_origin(resolved[l.from.index].name.clone()));
            }
            link_names.push(name);
        }
        // Labels per link (after modifiers), then every Block's own check.
        let mut link_labels: Vec<Option<Vec<Label>>> = Vec::with_capacity(self.links.len());
        for (i, l) in self.links.iter().enumerate() {
            let from = &self.blocks[l.from.index];
            let labels = labels_through(&l.opts.modifiers, from.block.output_labels()).map_err(
                |(m, e)| {
                    Error::config(format!(
                        "link '{}' from {} to {}: modifier {m}: {e}",
                        link_names[i], resolved[l.from.index].name, resolved[l.to.index].name
                    ))
                    .with_origin(resolved[l.from.index].name.clone())
                },
            )?;
            check_labels(labels.as_deref(), || {
                format!(
                    "link '{}' from {} (after its modifiers)",
                    link_names[i], resolved[l.from.index].name
                )
            })
            .map_err(|err| err.with_origin(resolved[l.from.index].name.clone()))?;
            link_labels.push(labels);
        }
        for (bi, e) in self.blocks.iter().enumerate() {
            let inputs = self
                .links
                .iter()
                .enumerate()
                .filter(|(_, l)| l.to.index == bi)
                .map(|(li, l)| InputView {
                    from: &resolved[l.from.index].name,
                    link: &link_names[li],
                    labels: link_labels[li].clone(),
                    overflow: l.opts.overflow,
                })
                .collect();
            let view = GraphView {
                name: &resolved[bi].name,
                inputs,
                n_outputs: self.links.iter().filter(|l| l.from.index == bi).count(),
                rate: resolved[bi].rate,
            };
            e.block
                .check(&view)
                .map_err(|err| err.with_origin(resolved[bi].name.clone()))?;
        }
        Ok(resolved)
    }

    /// The graph as text: Blocks with their settings and parameters, then links.
    pub fn describe(&self) -> Result<String> {
        let resolved = self.check()?;
        Ok(describe_graph(self, &resolved))
    }
}

/// Refuses a declared label that cannot be sent (longer than 255 bytes, the wire format's limit).
fn check_labels(labels: Option<&[Label]>, what: impl Fn() -> String) -> Result<()> {
    for l in labels.unwrap_or_default() {
        if l.as_str().len() > 255 {
            let start: String = l.as_str().chars().take(40).collect();
            return Err(Error::config(format!(
                "{}: label '{start}…' is {} bytes long; a label is at most 255 bytes (the link's wire format stores its length in one byte); use a shorter label",
                what(),
                l.as_str().len()
            )));
        }
    }
    Ok(())
}

pub(crate) fn link_name(opts: &LinkOptions, i: usize) -> String {
    opts.name
        .clone()
        .unwrap_or_else(|| format!("link{}", i + 1))
}

pub(crate) fn describe_graph(test: &Test, resolved: &[Resolved]) -> String {
    let mut s = String::new();
    for (e, r) in test.blocks.iter().zip(resolved) {
        let rate = match r.rate {
            Rate::Free => "free".to_owned(),
            Rate::Hz(hz) => format!("{hz} Hz"),
        };
        s.push_str(&format!("block {} ({}), rate {rate}", r.name, r.kind));
        if let Some(n) = r.niceness.niceness {
            s.push_str(&format!(", niceness {n}"));
        }
        if let Some(p) = r.niceness.realtime {
            s.push_str(&format!(", real-time SCHED_FIFO priority {p}"));
        }
        let d = e.block.describe();
        if !d.is_empty() {
            s.push_str(&format!(": {d}"));
        }
        s.push('\n');
    }
    for (i, l) in test.links.iter().enumerate() {
        s.push_str(&format!(
            "link {}: {} -> {}, {:?}, {} bytes, {} samples",
            link_name(&l.opts, i),
            resolved[l.from.index].name,
            resolved[l.to.index].name,
            l.opts.overflow,
            l.opts.capacity_bytes,
            l.opts.capacity_samples
        ));
        if !l.opts.modifiers.is_empty() {
            let m: Vec<String> = l.opts.modifiers.iter().map(|m| m.name()).collect();
            s.push_str(&format!(", modifiers {}", m.join(", ")));
        }
        s.push('\n');
    }
    s
}

fn default_log_file(name: &str) -> PathBuf {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from("crabby_logs").join(format!(
        "{safe}-{}.log",
        crate::sys::file_stamp(crate::sys::realtime_ns())
    ))
}
