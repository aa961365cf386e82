//! The health plane: live figures of every Block and link, published where they are produced
//! (shared memory, no system call on the loop path) and readable by any Block.
//!
//! Each Block's process writes its own figures into its slot of the control region as it
//! runs: its state, loop count, how long its last and longest `step` took, whether it is in
//! `step` now and since when, and (for Blocks that keep data, such as the Recorder) how many
//! rows are durable. Each link's sender records how long it was blocked on the full link.
//! The coordinator reads them every 100 ms: it computes each Block's achieved rate over the
//! last second (published back into the slot) and runs the watchdogs, whose warnings go to
//! the log, to the report, and to a small board in shared memory.
//!
//! Any Block can read all of it with [`Context::health`](crate::Context::health): a console
//! or a web page draws it, a safety Block can act on it.
//!
//! ```
//! use crabby::{Block, Context, Flow, Result};
//!
//! /// Logs every Block's achieved rate once a second.
//! struct RateLogger;
//! impl Block for RateLogger {
//!     fn default_settings(&self) -> crabby::Settings {
//!         crabby::Settings::new().freq(1.0)
//!     }
//!     fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
//!         for b in ctx.health().blocks {
//!             log::info!("{}: {:?} Hz ({:?})", b.name, b.achieved_hz, b.state);
//!         }
//!         Ok(Flow::Continue)
//!     }
//! }
//! ```

use crate::control::{state, Control};
use crate::link::ring::Ring;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Where a Block is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum BlockState {
    /// In `prepare` (or not started yet).
    Preparing,
    /// Prepared, waiting at the barrier.
    Ready,
    /// Looping.
    Running,
    /// In `finish`.
    Finishing,
    /// Done, cleanly.
    Done,
    /// Ended by an error or a panic (or `finish` failed).
    Failed,
}

impl BlockState {
    fn from_word(w: u32) -> BlockState {
        match w {
            state::READY => BlockState::Ready,
            state::RUNNING => BlockState::Running,
            state::FINISHING => BlockState::Finishing,
            state::DONE => BlockState::Done,
            state::FAILED => BlockState::Failed,
            _ => BlockState::Preparing,
        }
    }
}

/// One Block's live figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct BlockHealth {
    /// The Block's name.
    pub name: String,
    /// Where it is in its life.
    pub state: BlockState,
    /// Loops done.
    pub loops: u64,
    /// The rate it asked for (`None`: free-running).
    pub requested_hz: Option<f64>,
    /// The rate it achieved over the last second (`None` until a second has passed).
    pub achieved_hz: Option<f64>,
    /// How long its last `step` took (s).
    pub step_last_s: f64,
    /// How long its longest `step` took (s).
    pub step_max_s: f64,
    /// How long it has been in the `step` in progress (s), if it is in one.
    pub in_step_s: Option<f64>,
    /// Rows (or samples) it reports as safely written, for Blocks that keep data.
    pub rows_durable: Option<u64>,
}

/// One link's live figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct LinkHealth {
    /// The link's name.
    pub name: String,
    /// Sender's name.
    pub from: String,
    /// Receiver's name.
    pub to: String,
    /// Whether the link never drops (`Overflow::Block`).
    pub lossless: bool,
    /// Samples sent so far.
    pub sent: u64,
    /// Samples the receiver read so far.
    pub received: u64,
    /// Samples dropped by the drop-oldest policy so far.
    pub dropped: u64,
    /// Samples waiting in the link now, and its capacity in samples.
    pub fill_samples: u64,
    /// Capacity in samples.
    pub capacity_samples: u64,
    /// Bytes waiting in the link now.
    pub fill_bytes: u64,
    /// Capacity in bytes.
    pub capacity_bytes: u64,
    /// Total time the sender spent blocked on this full link (s).
    pub blocked_s: f64,
    /// How long the sender has been blocked on it now (s), if it is.
    pub blocked_now_s: Option<f64>,
}

impl LinkHealth {
    /// The fuller of the two fill ratios (samples, bytes), from 0 to 1.
    pub fn fill_ratio(&self) -> f64 {
        let s = self.fill_samples as f64 / self.capacity_samples.max(1) as f64;
        let b = self.fill_bytes as f64 / self.capacity_bytes.max(1) as f64;
        s.max(b)
    }
}

/// What a watchdog saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum WarningKind {
    /// A paced Block ran more than 1 % below its requested rate over a second.
    SlowRate,
    /// A sender was blocked more than 100 ms on a lossless link.
    SenderBlocked,
    /// A Block has not returned from `step` for max(1 s, 10 periods).
    StepHung,
    /// `prepare` took longer than the test's limit.
    PrepareTooLong,
    /// A link has carried nothing for long while its sender runs.
    SilentLink,
    /// A Block logs faster than its records can be written.
    LogFlood,
}

impl WarningKind {
    pub(crate) fn code(self) -> u32 {
        match self {
            WarningKind::SlowRate => 1,
            WarningKind::SenderBlocked => 2,
            WarningKind::StepHung => 3,
            WarningKind::PrepareTooLong => 4,
            WarningKind::SilentLink => 5,
            WarningKind::LogFlood => 6,
        }
    }

    pub(crate) fn from_code(c: u32) -> WarningKind {
        match c {
            1 => WarningKind::SlowRate,
            2 => WarningKind::SenderBlocked,
            3 => WarningKind::StepHung,
            4 => WarningKind::PrepareTooLong,
            5 => WarningKind::SilentLink,
            _ => WarningKind::LogFlood,
        }
    }
}

/// A warning of the watchdogs, in words a technician acts on.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Warning {
    /// Seconds since `t0` (negative: before the start).
    pub t: f64,
    /// What kind.
    pub kind: WarningKind,
    /// The Block it is about.
    pub block: String,
    /// What happened and what to do.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{:>8.3} s] {}", self.t, self.message)
    }
}

/// Every Block's and link's figures at one instant, and the recent warnings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct HealthSnapshot {
    /// Seconds since `t0` (`None` before the start).
    pub t: Option<f64>,
    /// Every Block, in the order they were added.
    pub blocks: Vec<BlockHealth>,
    /// Every link, in the order they were made.
    pub links: Vec<LinkHealth>,
    /// The most recent warnings (at most 16), oldest first.
    pub warnings: Vec<Warning>,
}

pub(crate) struct LinkInfo {
    pub name: String,
    pub from: usize,
    pub to: usize,
    pub ring: Ring,
    pub lossless: bool,
}

/// What every process needs to read the health plane: names, and every link's ring.
pub(crate) struct HealthView {
    pub control: Arc<Control>,
    pub blocks: Vec<String>,
    pub links: Vec<LinkInfo>,
}

impl std::fmt::Debug for HealthView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthView")
            .field("blocks", &self.blocks)
            .finish()
    }
}

impl HealthView {
    pub fn block(&self, i: usize, now: u64) -> BlockHealth {
        let s = self.control.slot(i);
        let period = s.period_ns.load(Ordering::Relaxed);
        let since = s.step_since.load(Ordering::Relaxed);
        let achieved = s.achieved_mhz.load(Ordering::Relaxed);
        let durable = s.durable.load(Ordering::Relaxed);
        BlockHealth {
            name: self.blocks[i].clone(),
            state: BlockState::from_word(s.state.load(Ordering::Relaxed)),
            loops: s.loops.load(Ordering::Relaxed),
            requested_hz: (period > 0).then(|| 1e9 / period as f64),
            achieved_hz: (achieved > 0).then(|| (achieved - 1) as f64 / 1e3),
            step_last_s: s.step_last.load(Ordering::Relaxed) as f64 * 1e-9,
            step_max_s: s.step_max.load(Ordering::Relaxed) as f64 * 1e-9,
            in_step_s: (since != 0).then(|| now.saturating_sub(since) as f64 * 1e-9),
            rows_durable: (durable > 0).then(|| durable - 1),
        }
    }

    pub fn link(&self, l: &LinkInfo, now: u64) -> LinkHealth {
        let st = l.ring.stats();
        let (fill_samples, fill_bytes, capacity_samples, capacity_bytes) = l.ring.fill();
        let (blocked, since) = l.ring.blocked();
        let now_s = since.map(|s| now.saturating_sub(s));
        LinkHealth {
            name: l.name.clone(),
            from: self.blocks[l.from].clone(),
            to: self.blocks[l.to].clone(),
            lossless: l.lossless,
            sent: st.pushed,
            received: st.consumed,
            dropped: st.dropped,
            fill_samples,
            capacity_samples,
            fill_bytes,
            capacity_bytes,
            blocked_s: (blocked + now_s.unwrap_or(0)) as f64 * 1e-9,
            blocked_now_s: now_s.map(|n| n as f64 * 1e-9),
        }
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        let now = crate::sys::monotonic_ns();
        let t0 = self.control.t0_mono();
        HealthSnapshot {
            t: (t0 != 0).then(|| (now as i64 - t0 as i64) as f64 * 1e-9),
            blocks: (0..self.blocks.len()).map(|i| self.block(i, now)).collect(),
            links: self.links.iter().map(|l| self.link(l, now)).collect(),
            warnings: self.warnings(),
        }
    }

    pub fn warnings(&self) -> Vec<Warning> {
        self.control
            .header()
            .board
            .read()
            .into_iter()
            .map(|(t, kind, text)| {
                let (block, message) = match text.split_once('\u{1f}') {
                    Some((b, m)) => (b.to_owned(), m.to_owned()),
                    None => (String::new(), text),
                };
                Warning {
                    t,
                    kind: WarningKind::from_code(kind),
                    block,
                    message,
                }
            })
            .collect()
    }
}
