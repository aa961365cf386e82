//! The [`Block`] trait and its [`Settings`].

use crate::{Context, Label, Result};
use std::time::Duration;

/// What a Block's [`step`](Block::step) asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Call `step` again (at the next paced deadline).
    Continue,
    /// This Block is done: it runs `finish`, and the whole test stops (as when a
    /// signal generator reaches the end of its path).
    Stop,
}

/// A unit of a test, run in its own process.
///
/// Only [`step`](Block::step) is required. The lifecycle, all in the Block's process:
///
/// | phase | when | typical work |
/// |---|---|---|
/// | [`prepare`](Block::prepare) | after fork, before the barrier | open hardware and files |
/// | [`begin`](Block::begin) | once, right after the common start | send an initial value |
/// | [`step`](Block::step) | repeatedly, paced at the Block's frequency | read, compute, send |
/// | [`finish`](Block::finish) | always, after the stop (also after a failure) | stop motors, drain, close |
///
/// The checks ([`check`](Block::check), [`output_labels`](Block::output_labels)) run in the
/// coordinator before anything is forked, so a mistake is reported without starting the test.
pub trait Block: Send + 'static {
    /// The kind of Block, used to generate names (`Generator-1`) and in the metadata.
    fn kind(&self) -> &str {
        let full = std::any::type_name::<Self>();
        let base = full.split('<').next().unwrap_or(full);
        base.rsplit("::").next().unwrap_or(base)
    }

    /// The Block's own default settings (for example its default frequency). Settings given
    /// to [`Test::add_with`](crate::Test::add_with) override them field by field.
    fn default_settings(&self) -> Settings {
        Settings::new()
    }

    /// The labels this Block sends, if it knows them. Receivers and the graph check use them
    /// (for example a Generator condition on a label nobody sends is an error).
    fn output_labels(&self) -> Option<Vec<Label>> {
        None
    }

    /// Checks the Block's parameters against the graph, before anything is forked.
    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        let _ = graph;
        Ok(())
    }

    /// The Block's parameters, as text for the test's metadata file.
    fn describe(&self) -> String {
        String::new()
    }

    /// The device this Block talks to, if any (a model and where it is connected, e.g.
    /// `"Instron 5967 on /dev/ttyUSB0"`). The run documents name it as the origin of the
    /// labels this Block sends (see [`documents`](crate::documents)). Called in the test's
    /// own process before anything is forked, like `describe`: build it from the
    /// configuration, never by talking to the device. Default: none.
    fn device(&self) -> Option<String> {
        None
    }

    /// Opens hardware and files. An error here stops the test before anything starts.
    fn prepare(&mut self, ctx: &mut Context) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Runs once, right after the common start (`t0`), before the first `step`.
    fn begin(&mut self, ctx: &mut Context) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// One iteration of the Block's loop.
    fn step(&mut self, ctx: &mut Context) -> Result<Flow>;

    /// Runs after the stop, whatever ended the test (unless the process had to be killed).
    /// Receivers can still drain what is pending on their inputs here.
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        let _ = ctx;
        Ok(())
    }
}

/// How fast a Block loops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// As fast as possible.
    Free,
    /// This many loops per second, on absolute deadlines (no drift).
    Hz(f64),
}

impl Rate {
    /// The slowest accepted frequency, 1e-5 Hz: a period of 100 000 s (about 28 h). A slower
    /// rate is almost surely a typo, and its period in nanoseconds would overflow the pacing
    /// arithmetic (1e-300 Hz is 1e309 ns); a Block that acts that rarely should loop faster
    /// and check the time itself.
    pub const MIN_HZ: f64 = 1e-5;
    /// The fastest accepted frequency, 1 MHz (one loop per microsecond); use
    /// [`Settings::free_run`] for no pacing at all.
    pub const MAX_HZ: f64 = 1e6;
}

/// A Block's log verbosity.
pub use log::LevelFilter;

/// Settings every Block has. Fields left `None` take the Block's default, then crabby's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// Unique name in the test (default: `<kind>-<n>`).
    pub name: Option<String>,
    /// Loop rate (default: 200 Hz).
    pub rate: Option<Rate>,
    /// Scheduling niceness, -20 (most favoured) to 19 (default: unchanged).
    pub niceness: Option<i32>,
    /// Log the achieved loop frequency every few seconds (default: no).
    pub display_freq: Option<bool>,
    /// Most verbose level logged by this Block (default: the test's level).
    pub log_level: Option<LevelFilter>,
    /// Whether a pause of the test pauses this Block (default: yes); see
    /// [`Context::paused`](crate::Context::paused).
    pub pausable: Option<bool>,
    /// Stop the test (as a failure of this Block) when its `step` has not returned for this
    /// long (default: never; a warning is logged after max(1 s, 10 periods) in any case).
    pub step_timeout: Option<std::time::Duration>,
    /// Real-time priority, 1 (lowest) to 99: the Block's loop runs under `SCHED_FIFO` with
    /// its memory locked (default: not real-time). See [`Settings::realtime`].
    pub realtime: Option<u8>,
}

impl Settings {
    /// No field set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets the loop frequency in Hz.
    pub fn freq(mut self, hz: f64) -> Self {
        self.rate = Some(Rate::Hz(hz));
        self
    }
    /// Loops as fast as possible.
    pub fn free_run(mut self) -> Self {
        self.rate = Some(Rate::Free);
        self
    }
    /// Sets the niceness.
    pub fn niceness(mut self, n: i32) -> Self {
        self.niceness = Some(n);
        self
    }
    /// Logs the achieved frequency.
    pub fn display_freq(mut self, yes: bool) -> Self {
        self.display_freq = Some(yes);
        self
    }
    /// Sets the log level.
    pub fn log_level(mut self, level: LevelFilter) -> Self {
        self.log_level = Some(level);
        self
    }
    /// Whether a pause of the test pauses this Block (StopBlock, limits and Pause Blocks say
    /// no: they keep watching during a pause).
    pub fn pausable(mut self, yes: bool) -> Self {
        self.pausable = Some(yes);
        self
    }
    /// Stops the test when this Block's `step` has not returned for `limit` (a hung driver
    /// call, a deadlock): the test then ends as a failure of this Block, naming it, instead
    /// of running on without it.
    pub fn step_timeout(mut self, limit: std::time::Duration) -> Self {
        self.step_timeout = Some(limit);
        self
    }
    /// Runs this Block's loop in real time: `SCHED_FIFO` at `priority` (1, lowest, to 99),
    /// with all its memory locked in RAM (`mlockall(MCL_CURRENT | MCL_FUTURE)`), for a
    /// tighter period than the normal scheduler gives on a loaded machine (see
    /// `benches/realtime.rs` for figures).
    ///
    /// Applied in the Block's own process after fork: memory is locked before
    /// [`Block::prepare`], the priority is set after it (a slow initialisation does not
    /// run ahead of everything else). Only the Block's loop thread is real-time: threads and
    /// processes the Block starts are scheduled normally (`SCHED_RESET_ON_FORK`). Under
    /// [`Test::run_in_threads`](crate::Test::run_in_threads) the setting is checked but not
    /// applied (it would make a thread of the test process real-time).
    ///
    /// Checked before anything is forked: a priority outside 1..=99 is a configuration
    /// error, and so is a process that may not use it. It needs `CAP_SYS_NICE` (root has it)
    /// or an `RLIMIT_RTPRIO` at least `priority` (`ulimit -r`; `@realtime - rtprio 99` in
    /// `/etc/security/limits.conf`), and `CAP_IPC_LOCK` or an unlimited `RLIMIT_MEMLOCK`
    /// (`ulimit -l unlimited`; `@realtime - memlock unlimited`). The error names the Block
    /// and the missing privilege.
    ///
    /// A real-time Block preempts every normal process on its core, the coordinator
    /// included, whenever it is runnable: give it a frequency (a paced Block sleeps between
    /// loops) or make it wait on its inputs, and keep its `step` short. The kernel's
    /// real-time throttling (`/proc/sys/kernel/sched_rt_runtime_us`, 95 % by default) keeps
    /// a runaway one from freezing the machine.
    pub fn realtime(mut self, priority: u8) -> Self {
        self.realtime = Some(priority);
        self
    }
    /// `self` where set, else `fallback`.
    pub(crate) fn or(self, fallback: Settings) -> Settings {
        Settings {
            name: self.name.or(fallback.name),
            rate: self.rate.or(fallback.rate),
            niceness: self.niceness.or(fallback.niceness),
            display_freq: self.display_freq.or(fallback.display_freq),
            log_level: self.log_level.or(fallback.log_level),
            pausable: self.pausable.or(fallback.pausable),
            step_timeout: self.step_timeout.or(fallback.step_timeout),
            realtime: self.realtime.or(fallback.realtime),
        }
    }
}

/// How a Block's process is scheduled, resolved from its [`Settings`] and carried to it
/// (as the `niceness` field of the resolved settings and of the child's spec).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sched {
    /// `Settings::niceness`.
    pub niceness: Option<i32>,
    /// `Settings::realtime`: the `SCHED_FIFO` priority.
    pub realtime: Option<u8>,
}

/// Default loop rate of a Block that sets none.
pub const DEFAULT_RATE: Rate = Rate::Hz(200.0);

/// What [`Block::check`] sees of the graph around a Block.
#[derive(Debug)]
pub struct GraphView<'a> {
    pub(crate) name: &'a str,
    pub(crate) inputs: Vec<InputView<'a>>,
    pub(crate) n_outputs: usize,
    pub(crate) rate: Rate,
}

/// One input link, as seen by [`Block::check`].
#[derive(Debug, Clone)]
pub struct InputView<'a> {
    /// The sending Block's name.
    pub from: &'a str,
    /// The link's name.
    pub link: &'a str,
    /// The labels arriving on this link (after its modifiers), if the sender declared them.
    pub labels: Option<Vec<Label>>,
    /// The link's overflow policy: a display-only Block can refuse a lossless input, which
    /// would let it slow its sender down.
    pub overflow: crate::Overflow,
}

impl GraphView<'_> {
    /// This Block's name.
    pub fn name(&self) -> &str {
        self.name
    }
    /// This Block's input links.
    pub fn inputs(&self) -> &[InputView<'_>] {
        &self.inputs
    }
    /// How many output links this Block has.
    pub fn n_outputs(&self) -> usize {
        self.n_outputs
    }
    /// This Block's loop rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }
    /// Every label arriving on any input, or `None` if some sender did not declare its
    /// labels (then a label cannot be proven missing).
    pub fn upstream_labels(&self) -> Option<Vec<Label>> {
        let mut all: Vec<Label> = Vec::new();
        for i in &self.inputs {
            for l in i.labels.as_ref()? {
                if !all.contains(l) {
                    all.push(l.clone());
                }
            }
        }
        Some(all)
    }
    /// An error if `label` is known not to arrive on any input; `what` says who needs it.
    pub fn require_label(&self, label: &str, what: &str) -> Result<()> {
        if let Some(labels) = self.upstream_labels() {
            if !labels.iter().any(|l| l.as_str() == label) {
                let known: Vec<&str> = labels.iter().map(|l| l.as_str()).collect();
                let msg = if self.inputs.is_empty() {
                    format!("{what} needs label '{label}' but the Block has no input link; link a Block that sends it")
                } else {
                    format!("{what} needs label '{label}' but no upstream Block sends it (upstream labels: {known:?}); check the spelling or link the Block that sends it")
                };
                return Err(crate::Error::config(msg).with_origin(self.name));
            }
        }
        Ok(())
    }
}

/// Grace periods of the cleanup ladder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grace {
    /// After the stop event, how long Blocks have to finish before SIGTERM (default 3 s).
    pub finish: Duration,
    /// After SIGTERM, how long before SIGKILL (default 0.5 s).
    pub terminate: Duration,
}

impl Grace {
    /// The shortest accepted finish grace, 50 ms: the time every Block has after the stop to
    /// run `finish` (stop the motors, drain links, flush files) before SIGTERM. Shorter, and
    /// Blocks are terminated while stopping their hardware.
    pub const MIN_FINISH: Duration = Duration::from_millis(50);
    /// The shortest accepted terminate grace, 10 ms: between SIGTERM and SIGKILL a Block may
    /// still flush its data; zero would make the SIGTERM pointless (a SIGKILL at once).
    pub const MIN_TERMINATE: Duration = Duration::from_millis(10);
}

impl Default for Grace {
    fn default() -> Self {
        Grace {
            finish: Duration::from_secs(3),
            terminate: Duration::from_millis(500),
        }
    }
}
