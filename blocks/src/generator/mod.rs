//! [`Generator`]: sends a command signal made of successive [`Path`]s.
//!
//! The principal types:
//! - [`Path`]: one segment of the signal (constant, ramp, sine, cyclic, cyclic ramp,
//!   conditional, integrator, custom table), ending on a [`Condition`](crate::Condition).
//! - [`GeneratorCore`]: the sequencing logic, pure and clock-injected
//!   ([`GeneratorCore::update`] takes the time and the received data), so it is tested on
//!   a replayed clock.
//! - [`Generator`]: the Block around the core: it reads the clock and its inputs, sends
//!   `t(s)`, the command and the path index, and ends the test after the last path.
//!
//! Behaviour (as Crappy's `Generator`, with the differences listed):
//! - Each loop, everything received since the last loop ([`Columns`]) is given to the
//!   current path. A path's conditions are true when **any** value received satisfies
//!   them.
//! - When a path ends, the next one starts in the same loop, at that loop's time
//!   (its `t_start`), from the last command, and is evaluated once with no data (Crappy
//!   receives again, which finds nothing new).
//! - The command is sent when it changed, when the path changed, or every loop with
//!   [`spam`](Generator::spam).
//! - The index counts paths started: 0, 1, 2, … and keeps counting when
//!   [`repeat`](Generator::repeat) starts the list over (as Crappy).
//! - After the last path, the Generator sends nothing more and ends the test
//!   [`end_delay`](Generator::end_delay) seconds later (2 s by default) by returning
//!   [`Flow::Stop`], a clean end. Unlike Crappy it does not sleep: it keeps draining its
//!   inputs so upstream Blocks are never held up. With `end_delay(None)` it stays idle.
//! - While the test is paused ([`Context::paused`](crabby::Context::paused)) the Generator
//!   sends nothing and its path clock stops: conditions such as `delay=60` and ramps count
//!   unpaused time only (`t(s)` sent stays the test's time). Data received during a pause is
//!   drained and not evaluated.
//! - With [`safe_start`](Generator::safe_start), nothing happens until the first data
//!   arrives, and the first path starts then (Crappy keeps the test's start as the first
//!   path's start, so a ramp would jump).
//!
//! ```
//! use crabby_blocks::{Generator, Path};
//! let gen = Generator::new([
//!     Path::ramp(5.0 / 60.0).from(0.0).until("x(mm) >= 2"),
//!     Path::ramp(-5.0 / 60.0).until("F(N) < 0"),
//!     Path::ramp(5.0 / 60.0),
//! ])
//! .unwrap()
//! .spam(true)
//! .end_delay(None);
//! ```

mod custom;
mod path;

pub use path::Path;

use crabby::{Block, Columns, Context, Error, Flow, GraphView, Label, Result, Sample, Settings};
use path::Running;
use std::fmt::Write as _;

/// What [`GeneratorCore::update`] asks the Block to do this loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GeneratorUpdate {
    /// Send this command with this path index.
    Send {
        /// The command.
        cmd: f64,
        /// Paths started before the current one (0 for the first).
        index: u64,
    },
    /// Nothing to send: the command did not change (and `spam` is off), the Generator waits
    /// for its first data (`safe_start`), or too many paths ended in one loop.
    Quiet,
    /// The last path has ended, at `since`: nothing more to send (returned in that loop and
    /// every loop after, until the end delay has passed).
    Finished {
        /// The time the last path ended.
        since: f64,
    },
    /// The end delay after the last path has passed: end the test.
    End,
}

/// The Generator's sequencing logic, with the clock injected. See the [module docs](self).
///
/// ```
/// use crabby::Columns;
/// use crabby_blocks::{GeneratorCore, Path, GeneratorUpdate};
/// let mut core = GeneratorCore::new(vec![Path::constant(1.0).until("delay=1")]).unwrap();
/// let none = Columns::new();
/// assert_eq!(core.update(0.0, &none), GeneratorUpdate::Send { cmd: 1.0, index: 0 });
/// assert_eq!(core.update(0.5, &none), GeneratorUpdate::Quiet);
/// assert_eq!(core.update(1.5, &none), GeneratorUpdate::Finished { since: 1.5 });
/// assert_eq!(core.update(3.5, &none), GeneratorUpdate::End); // end delay: 2 s by default
/// ```
#[derive(Debug, Clone)]
pub struct GeneratorCore {
    paths: Vec<Path>,
    repeat: bool,
    spam: bool,
    safe_start: bool,
    end_delay: Option<f64>,
    current: usize,
    index: u64,
    state: Running,
    last_cmd: f64,
    last_sent: Option<(f64, u64)>,
    started: bool,
    finished_at: Option<f64>,
}

impl GeneratorCore {
    /// Checks the paths: none may carry an error, and the first one must know its first
    /// value (a `hold`, or a `ramp`, `cyclic_ramp` or `integrator` without `from`, cannot
    /// come first).
    pub fn new(paths: Vec<Path>) -> Result<GeneratorCore> {
        if paths.is_empty() {
            return Err(Error::config("a Generator needs at least one path"));
        }
        for (i, p) in paths.iter().enumerate() {
            if let Some((kind, msg)) = &p.error {
                return Err(Error::new(
                    *kind,
                    format!("path {i} ({}): {msg}", p.kind_name()),
                ));
            }
        }
        let Some(first) = paths[0].start_value(None) else {
            let fix = match paths[0].kind_name() {
                "hold" => "use Path::constant(value)",
                _ => "give its start value with .from(value)",
            };
            return Err(Error::config(format!(
                "path 0 ({}) starts from the previous command, but it is the first path: {fix}",
                paths[0].kind_name()
            )));
        };
        let state = paths[0].start(0.0, first);
        Ok(GeneratorCore {
            paths,
            repeat: false,
            spam: false,
            safe_start: false,
            end_delay: Some(2.0),
            current: 0,
            index: 0,
            state,
            last_cmd: first,
            last_sent: None,
            started: false,
            finished_at: None,
        })
    }

    /// Starts the list over after the last path.
    pub fn set_repeat(&mut self, yes: bool) {
        self.repeat = yes;
    }

    /// Sends the command every loop, not only when it changes.
    pub fn set_spam(&mut self, yes: bool) {
        self.spam = yes;
    }

    /// Waits for the first data before starting the first path.
    pub fn set_safe_start(&mut self, yes: bool) {
        self.safe_start = yes;
    }

    /// How long after the last path [`GeneratorUpdate::End`] comes (default `Some(2.0)` s); `None`:
    /// never.
    pub fn set_end_delay(&mut self, seconds: Option<f64>) {
        self.end_delay = seconds;
    }

    /// The paths.
    pub fn paths(&self) -> &[Path] {
        &self.paths
    }

    /// The last command computed (the first path's start value before the first loop).
    pub fn last_cmd(&self) -> f64 {
        self.last_cmd
    }

    /// One Generator loop at time `now` (seconds since the test's start), with everything
    /// received since the last loop.
    pub fn update(&mut self, now: f64, data: &Columns) -> GeneratorUpdate {
        if let Some(since) = self.finished_at {
            return match self.end_delay {
                Some(d) if now - since >= d => GeneratorUpdate::End,
                _ => GeneratorUpdate::Finished { since },
            };
        }
        if !self.started {
            if self.safe_start {
                if data.is_empty() {
                    return GeneratorUpdate::Quiet;
                }
                self.state = self.paths[0].start(now, self.last_cmd);
            }
            self.started = true;
        }
        let empty = Columns::new();
        let mut data = data;
        let mut transitions = 0;
        let cmd = loop {
            if let Some(cmd) = self.paths[self.current].step(&mut self.state, now, data) {
                break cmd;
            }
            log::debug!(
                "path {} ({}) ended at t={now:.6}",
                self.index,
                self.paths[self.current].kind_name()
            );
            if self.current + 1 < self.paths.len() {
                self.current += 1;
            } else if self.repeat {
                self.current = 0;
            } else {
                self.finished_at = Some(now);
                return match self.end_delay {
                    Some(d) if d <= 0.0 => GeneratorUpdate::End,
                    _ => GeneratorUpdate::Finished { since: now },
                };
            }
            self.index += 1;
            self.state = self.paths[self.current].start(now, self.last_cmd);
            log::info!("path {}: {}", self.index, self.paths[self.current]);
            data = &empty;
            transitions += 1;
            if transitions > self.paths.len() {
                // Every path ended at once (possible with `repeat`): try again next loop
                // rather than spinning here.
                return GeneratorUpdate::Quiet;
            }
        };
        self.last_cmd = cmd;
        if self.spam || self.last_sent != Some((cmd, self.index)) {
            self.last_sent = Some((cmd, self.index));
            GeneratorUpdate::Send {
                cmd,
                index: self.index,
            }
        } else {
            GeneratorUpdate::Quiet
        }
    }
}

/// The signal generator Block. See the [module docs](self).
///
/// Sends `t(s)`, the command (label `cmd` unless [`cmd_label`](Generator::cmd_label)) and
/// the path index (label `index` unless [`path_index_label`](Generator::path_index_label)).
/// Default rate 200 Hz.
#[derive(Debug)]
pub struct Generator {
    core: GeneratorCore,
    t_label: Label,
    cmd_label: Label,
    index_label: Label,
    ended_logged: bool,
    paused_since: Option<f64>,
    paused_total: f64,
    /// Watchdog: the path index being watched, since when, and whether it was reported.
    waiting: (usize, f64, bool),
    /// Labels received at least once.
    seen: std::collections::HashSet<Label>,
    never_seen_after: f64,
}

/// After how long a condition waiting for a label no input has ever carried is reported
/// (default of [`Generator::warn_missing_labels_after`]).
const NEVER_SEEN_AFTER_S: f64 = 10.0;

impl Generator {
    /// After how many seconds on a path the Generator warns that the path's conditions wait
    /// for a label no input has ever carried (default 10 s).
    pub fn warn_missing_labels_after(mut self, seconds: f64) -> Self {
        self.never_seen_after = seconds;
        self
    }

    /// A Generator running `paths` in order. Errors if a path is invalid (naming its
    /// index) or if the first path does not know its start value.
    pub fn new(paths: impl IntoIterator<Item = Path>) -> Result<Generator> {
        Ok(Generator {
            core: GeneratorCore::new(paths.into_iter().collect())
                .map_err(|e| e.with_origin("Generator"))?,
            t_label: Label::new("t(s)"),
            cmd_label: Label::new("cmd"),
            index_label: Label::new("index"),
            ended_logged: false,
            paused_since: None,
            paused_total: 0.0,
            waiting: (usize::MAX, 0.0, false),
            seen: Default::default(),
            never_seen_after: NEVER_SEEN_AFTER_S,
        })
    }

    /// The label of the command (default `cmd`).
    pub fn cmd_label(mut self, label: impl Into<Label>) -> Self {
        self.cmd_label = label.into();
        self
    }

    /// The label of the path index (default `index`).
    pub fn path_index_label(mut self, label: impl Into<Label>) -> Self {
        self.index_label = label.into();
        self
    }

    /// Starts the list over after the last path (default no).
    pub fn repeat(mut self, yes: bool) -> Self {
        self.core.set_repeat(yes);
        self
    }

    /// Sends the command every loop rather than only when it or the path changes
    /// (default no).
    pub fn spam(mut self, yes: bool) -> Self {
        self.core.set_spam(yes);
        self
    }

    /// How long after the last path the Generator ends the test (default `Some(2.0)` s);
    /// `None`: it stays idle until something else stops the test.
    pub fn end_delay(mut self, seconds: Option<f64>) -> Self {
        self.core.set_end_delay(seconds);
        self
    }

    /// Waits for the first data on an input before starting (default no).
    pub fn safe_start(mut self, yes: bool) -> Self {
        self.core.set_safe_start(yes);
        self
    }

    /// The sequencing core (for inspection).
    pub fn core(&self) -> &GeneratorCore {
        &self.core
    }
}

impl Block for Generator {
    fn default_settings(&self) -> Settings {
        Settings::new().freq(200.0)
    }

    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec![
            self.t_label.clone(),
            self.cmd_label.clone(),
            self.index_label.clone(),
        ])
    }

    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        let origin = graph.name();
        if let Some(d) = self.core.end_delay {
            if !(d.is_finite() && d >= 0.0) {
                return Err(Error::config(format!(
                    "end_delay must be a finite number of seconds, 0 or more, or None (got {d})"
                ))
                .with_origin(origin));
            }
        }
        for l in [&self.cmd_label, &self.index_label] {
            if l.is_empty() || *l == self.t_label {
                return Err(Error::config(format!(
                    "the command and index labels must be non-empty and differ from 't(s)' (got '{l}')"
                ))
                .with_origin(origin));
            }
        }
        if self.cmd_label == self.index_label {
            return Err(Error::config(format!(
                "cmd_label and path_index_label are both '{}'; give them different names",
                self.cmd_label
            ))
            .with_origin(origin));
        }
        if self.core.safe_start && graph.inputs().is_empty() {
            return Err(Error::config(
                "safe_start waits for the first input, but the Generator has no input link; link a Block to it or drop safe_start",
            )
            .with_origin(origin));
        }
        for (i, p) in self.core.paths.iter().enumerate() {
            for (what, label) in p.needs() {
                graph.require_label(&label, &format!("path {i} ({}) {what}", p.kind_name()))?;
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        for (i, p) in self.core.paths.iter().enumerate() {
            let _ = writeln!(s, "path {i}: {p}");
        }
        let end = match self.core.end_delay {
            Some(d) => format!("end the test {d} s after the last path"),
            None => "stay idle after the last path".to_owned(),
        };
        let _ = write!(
            s,
            "cmd_label={}, path_index_label={}, repeat={}, spam={}, safe_start={}, {end}",
            self.cmd_label,
            self.index_label,
            self.core.repeat,
            self.core.spam,
            self.core.safe_start
        );
        s
    }

    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        // Always drain the inputs (also when waiting or finished) so senders never wait.
        let data = ctx.recv_all();
        let real = ctx.t();
        // The path clock excludes paused time: a 60 s hold is 60 s of unpaused test.
        if ctx.paused() {
            self.paused_since.get_or_insert(real);
            return Ok(Flow::Continue);
        }
        if let Some(p) = self.paused_since.take() {
            self.paused_total += real - p;
            log::info!(
                "resumed; path clock {:.3} s behind the test's",
                self.paused_total
            );
        }
        let now = real - self.paused_total;
        self.watch_labels(real, &data, ctx);
        match self.core.update(now, &data) {
            GeneratorUpdate::Send { cmd, index } => {
                let mut s = Sample::with_capacity(3);
                s.insert(self.t_label.clone(), real);
                s.insert(self.cmd_label.clone(), cmd);
                s.insert(self.index_label.clone(), index);
                ctx.send(&s)?;
            }
            GeneratorUpdate::Quiet => {}
            GeneratorUpdate::Finished { since } => {
                if !self.ended_logged {
                    self.ended_logged = true;
                    match self.core.end_delay {
                        Some(d) => log::info!(
                            "last path ended at t={since:.3} s; ending the test in {d} s"
                        ),
                        None => log::info!("last path ended at t={since:.3} s; staying idle"),
                    }
                }
            }
            GeneratorUpdate::End => {
                log::info!("end delay passed; ending the test");
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }
}

impl Generator {
    /// Says once per path when the path waits for a label that no input has carried for
    /// [`NEVER_SEEN_AFTER_S`]: a condition on a label nobody sends would hang the test
    /// silently (a custom Block that does not send it, a typo the graph check could not see
    /// because the sender does not declare its labels).
    fn watch_labels(&mut self, t: f64, data: &crabby::Columns, ctx: &Context) {
        for l in data.labels() {
            if !self.seen.contains(l) {
                self.seen.insert(l.clone());
            }
        }
        let path = self.core.current;
        if self.waiting.0 != path {
            self.waiting = (path, t, false);
            return;
        }
        if self.waiting.2 || t - self.waiting.1 < self.never_seen_after {
            return;
        }
        let Some(p) = self.core.paths.get(path) else {
            return;
        };
        let missing: Vec<String> = p
            .needs()
            .into_iter()
            .filter(|(_, l)| !self.seen.contains(l))
            .map(|(what, l)| format!("'{l}' ({what})"))
            .collect();
        if !missing.is_empty() {
            self.waiting.2 = true;
            let senders = ctx.input_senders().join(", ");
            log::warn!(
                "path {} has waited {:.0} s for {} that no input has ever carried (inputs from: {}): check that a Block sends it, with exactly this label",
                path + 1,
                t - self.waiting.1,
                missing.join(", "),
                if senders.is_empty() { "none" } else { &senders }
            );
        }
    }
}

#[cfg(test)]
mod tests;
