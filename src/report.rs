//! What [`Test::run`](crate::Test::run) returns: how every Block and link ended.

use serde::Serialize;
use std::fmt;

/// How one Block ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub enum Outcome {
    /// The Block ended by itself (`step` returned `Flow::Stop`) and finished.
    Ended,
    /// The Block asked the test to stop and finished.
    StopRequested,
    /// The Block was stopped by the stop event and finished.
    Stopped,
    /// The test never started (another Block failed in `prepare`); `finish` ran.
    NotStarted,
    /// The Block returned an error (its kind, description, device and sources kept).
    Failed(crate::WireError),
    /// The Block panicked.
    Panicked(String),
    /// The Block did not finish within the grace period and was killed.
    Killed,
    /// The Block's process died of a signal from outside (or crashed).
    Signaled(i32),
    /// The process exited without reporting (crashed).
    Crashed(String),
}

impl Outcome {
    /// Whether this outcome makes the run fail.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Outcome::Failed(_)
                | Outcome::Panicked(_)
                | Outcome::Killed
                | Outcome::Signaled(_)
                | Outcome::Crashed(_)
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ended => f.write_str("ended"),
            Outcome::StopRequested => f.write_str("stopped the test"),
            Outcome::Stopped => f.write_str("stopped"),
            Outcome::NotStarted => f.write_str("not started"),
            Outcome::Failed(e) => {
                // The Block is named beside the outcome already.
                let e = crate::WireError {
                    block: None,
                    ..e.clone()
                };
                write!(f, "failed: {e}")
            }
            Outcome::Panicked(m) => write!(f, "panicked: {m}"),
            Outcome::Killed => f.write_str("killed after the grace period"),
            Outcome::Signaled(s) => write!(f, "died of signal {s} ({})", signal_name(*s)),
            Outcome::Crashed(m) => write!(f, "crashed: {m}"),
        }
    }
}

fn signal_name(s: i32) -> &'static str {
    nix::sys::signal::Signal::try_from(s)
        .map(|s| s.as_str())
        .unwrap_or("?")
}

/// One Block in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockReport {
    /// The Block's name.
    pub name: String,
    /// The Block's kind.
    pub kind: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Whether `finish` ran to completion without error.
    pub finish_ok: bool,
    /// The error `finish` returned, if any.
    pub finish_error: Option<String>,
    /// Loops (calls of `step`) done.
    pub loops: u64,
    /// Achieved mean loop frequency (Hz).
    pub mean_freq: Option<f64>,
    /// 99th percentile of |period − target period| (µs) for paced Blocks, of the period for
    /// free-running ones.
    pub jitter_p99_us: Option<f64>,
    /// Largest lateness of a wake-up (µs), paced Blocks.
    pub max_late_us: Option<f64>,
    /// Deadlines skipped because a loop took longer than a whole period.
    pub missed_deadlines: u64,
    /// Log records the Block dropped because its log channel was full (a log flood).
    pub log_dropped: u64,
    /// Its longest `step` (s).
    pub step_max_s: Option<f64>,
    /// Rows (or samples) it reported as durable, for Blocks that keep data (the Recorder).
    pub rows_durable: Option<u64>,
    /// Samples it received but never made durable because it was killed or crashed: lost.
    pub not_durable: u64,
    /// What the Block itself added to the report ([`Context::report_note`](crate::Context::report_note)).
    pub notes: Vec<String>,
}

/// One link in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkReport {
    /// The link's name.
    pub name: String,
    /// Sender's name.
    pub from: String,
    /// Receiver's name.
    pub to: String,
    /// Samples the sender sent into the link.
    pub sent: u64,
    /// Samples the receiver read.
    pub received: u64,
    /// Samples dropped by the drop-oldest policy.
    pub dropped: u64,
    /// Samples sent after the receiver had gone.
    pub undelivered: u64,
    /// Samples left in the link at the end.
    pub unread: u64,
    /// Samples lost: dropped by policy, undelivered (receiver gone or given up on), and
    /// those left in the link when the receiver died instead of finishing. Samples a
    /// receiver that finished cleanly chose not to read after the stop (a display, a
    /// StopBlock) are `unread`, not lost.
    pub lost: u64,
    /// Time the sender spent blocked on this full link (ms).
    pub blocked_ms: u64,
    /// Whether the link was lossless (`Overflow::Block`).
    pub lossless_policy: bool,
}

impl LinkReport {
    /// Samples left in the link by a receiver that finished cleanly: not lost.
    pub fn unread_not_lost(&self) -> u64 {
        let lost_unread = self.lost.saturating_sub(self.dropped + self.undelivered);
        self.unread.saturating_sub(lost_unread)
    }

    /// Whether nothing sent on this link was lost (see [`LinkReport::lost`]).
    pub fn lossless(&self) -> bool {
        self.lost == 0
    }
}

/// What an [`Incident`] was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum IncidentKind {
    /// The test was paused (see `Context::pause`).
    Pause,
    /// A Block recorded an alarm (a safety limit exceeded, ...).
    Alarm,
}

/// A pause or an alarm during the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// Pause or alarm.
    pub kind: IncidentKind,
    /// The Block that paused the test or recorded the alarm.
    pub block: String,
    /// Seconds since `t0` when it started.
    pub start_s: f64,
    /// Seconds since `t0` when the pause ended (`None`: still paused at the stop); the
    /// start for an alarm.
    pub end_s: Option<f64>,
    /// Why: the criterion met, or the limit with its value.
    pub cause: String,
}

/// Why the test stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum StopCause {
    /// A Block ended or asked for the stop (named).
    Block(String),
    /// A Block failed in `prepare` (named).
    PrepareFailed(String),
    /// A Block failed or died (named).
    BlockFailed(String),
    /// Ctrl+C (SIGINT), SIGTERM or SIGHUP reached the coordinator.
    Interrupted,
    /// Ctrl+\\ (SIGQUIT): stopped at once, with a short grace for `finish`.
    Quit,
}

/// The report of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The test's name.
    pub test: String,
    /// Why the test stopped.
    pub cause: Option<StopCause>,
    /// Start (`t0`) as ISO 8601 local time, if the test started.
    pub started_at: Option<String>,
    /// Seconds from `t0` to the stop event (0 if the test never started).
    pub duration_s: f64,
    /// Seconds from the stop event until every process was reaped.
    pub cleanup_s: f64,
    /// Every Block, in the order they were added.
    pub blocks: Vec<BlockReport>,
    /// Every link, in the order they were made.
    pub links: Vec<LinkReport>,
    /// Pauses and alarms, in the order they started.
    pub incidents: Vec<Incident>,
    /// The warnings of the watchdogs during the run (slow Blocks, blocked senders, hung
    /// steps, silent links), in order.
    pub warnings: Vec<crate::health::Warning>,
    /// The log file, if one was written.
    pub log_file: Option<std::path::PathBuf>,
    /// Log lines the console could not take in time (they are in the log file).
    pub console_lines_dropped: u64,
    /// Whether the console was closed (e.g. `prog 2>&1 | head -1`): lines went to the file.
    pub console_closed: bool,
}

impl Report {
    /// Whether anything failed or the user interrupted.
    pub fn failed(&self) -> bool {
        matches!(self.cause, Some(StopCause::Interrupted | StopCause::Quit))
            || self
                .blocks
                .iter()
                .any(|b| b.outcome.is_failure() || b.finish_error.is_some())
    }

    /// The report of a Block by name.
    pub fn block(&self, name: &str) -> Option<&BlockReport> {
        self.blocks.iter().find(|b| b.name == name)
    }

    /// The pauses, in the order they started.
    pub fn pauses(&self) -> impl Iterator<Item = &Incident> {
        self.incidents
            .iter()
            .filter(|i| i.kind == IncidentKind::Pause)
    }

    /// Total samples lost: on links (dropped by policy, undelivered, left in the link of a
    /// receiver that died) and in Blocks (received but never made durable by a Recorder that
    /// was killed). Samples a receiver chose not to read after the stop are not lost: see
    /// [`Report::samples_unread`].
    pub fn samples_lost(&self) -> u64 {
        self.links.iter().map(|l| l.lost).sum::<u64>()
            + self.blocks.iter().map(|b| b.not_durable).sum::<u64>()
    }

    /// Samples left unread at the stop by receivers that finished cleanly (displays, a
    /// StopBlock): not lost, shown apart.
    pub fn samples_unread(&self) -> u64 {
        self.links.iter().map(LinkReport::unread_not_lost).sum()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cause = match &self.cause {
            Some(StopCause::Block(b)) => format!("{b} ended the test"),
            Some(StopCause::PrepareFailed(b)) => format!("{b} failed to prepare"),
            Some(StopCause::BlockFailed(b)) => format!("{b} failed"),
            Some(StopCause::Interrupted) => "interrupted by the user".to_owned(),
            Some(StopCause::Quit) => "stopped at once by the user (Ctrl+\\)".to_owned(),
            None => "never started".to_owned(),
        };
        writeln!(
            f,
            "test '{}': {cause}; ran {:.3} s, cleanup {:.1} ms",
            self.test,
            self.duration_s,
            self.cleanup_s * 1e3
        )?;
        for b in &self.blocks {
            write!(
                f,
                "  {:<20} {:<28} loops {:>8}",
                b.name,
                b.outcome.to_string(),
                b.loops
            )?;
            if let Some(hz) = b.mean_freq {
                write!(f, "  {hz:>10.2} Hz")?;
            }
            if let Some(j) = b.jitter_p99_us {
                write!(f, "  p99 jitter {j:.0} µs")?;
            }
            if let Some(e) = &b.finish_error {
                write!(f, "  finish error: {e}")?;
            }
            if let Some(m) = b.step_max_s {
                write!(f, "  longest step {:.2} ms", m * 1e3)?;
            }
            if let Some(r) = b.rows_durable {
                write!(f, "  {r} rows on disk")?;
            }
            if b.not_durable > 0 {
                write!(
                    f,
                    "  {} received samples LOST (never written)",
                    b.not_durable
                )?;
            }
            if b.log_dropped > 0 {
                write!(f, "  {} log records dropped (log flood)", b.log_dropped)?;
            }
            writeln!(f)?;
            for n in &b.notes {
                writeln!(f, "      {n}")?;
            }
        }
        for l in &self.links {
            write!(
                f,
                "  {:<20} {} -> {}: sent {}, received {}",
                l.name, l.from, l.to, l.sent, l.received
            )?;
            if !l.lossless() {
                write!(
                    f,
                    ", LOST {} (dropped {}, undelivered {}, left by a dead receiver {})",
                    l.lost,
                    l.dropped,
                    l.undelivered,
                    l.lost.saturating_sub(l.dropped + l.undelivered)
                )?;
            }
            if l.unread_not_lost() > 0 {
                write!(f, ", unread at the stop {} (not lost)", l.unread_not_lost())?;
            }
            if l.blocked_ms > 0 {
                write!(f, ", sender blocked {} ms", l.blocked_ms)?;
            }
            writeln!(f)?;
        }
        if !self.warnings.is_empty() {
            writeln!(f, "  warnings during the run:")?;
            for w in &self.warnings {
                writeln!(f, "    {w}")?;
            }
        }
        for i in &self.incidents {
            match (i.kind, i.end_s) {
                (IncidentKind::Pause, Some(e)) => writeln!(
                    f,
                    "  paused {:.3} s → {e:.3} s by {}: {}",
                    i.start_s, i.block, i.cause
                )?,
                (IncidentKind::Pause, None) => writeln!(
                    f,
                    "  paused {:.3} s → the stop, by {}: {}",
                    i.start_s, i.block, i.cause
                )?,
                _ => writeln!(
                    f,
                    "  alarm at {:.3} s from {}: {}",
                    i.start_s, i.block, i.cause
                )?,
            }
        }
        if let Some(p) = &self.log_file {
            writeln!(f, "  log: {}", p.display())?;
        }
        if self.console_closed {
            writeln!(
                f,
                "  the console was closed: log lines went to the log file only"
            )?;
        } else if self.console_lines_dropped > 0 {
            writeln!(
                f,
                "  {} log lines dropped on the console (it could not keep up; the log file has them)",
                self.console_lines_dropped
            )?;
        }
        Ok(())
    }
}
