//! [`Console`]: a live status of the test in the terminal, for any program.
//!
//! One line, redrawn in place on a terminal (fitted to the window's width), or a plain line
//! every few seconds when stdout is a pipe or a file (a CI log, `| tee`). It shows the test
//! time, the latest value of the labels you choose, each Block's achieved rate against the
//! one it asked for (from [`Context::health`]), and the most recent watchdog warning for a
//! few seconds. At the end it prints a final line.
//!
//! ```no_run
//! use crabby::Test;
//! use crabby_blocks::{Console, FakeMachine};
//!
//! let mut test = Test::new("demo");
//! let machine = test.add(FakeMachine::new());
//! let console = test.add(Console::new().values(["F(N)", "Exx(%)"]));
//! // Display only: its links drop the oldest samples rather than slow the machine.
//! test.link_with(machine, console, Console::link());
//! ```
//!
//! # It never slows the test
//!
//! - Its input links must drop the oldest samples ([`Console::link`], that is
//!   `LinkOptions::new().overflow(Overflow::DropOldest)`): the graph check refuses a lossless
//!   one, which would let a stalled console hold its sender up. It drains its inputs at every
//!   loop, so nothing is dropped in practice.
//! - It loops at 5 Hz by default and refuses to free-run.
//! - It writes stdout through a private non-blocking file description: a terminal paused
//!   with Ctrl+S or a pipe nobody reads makes it skip lines (counted, and said in the log at
//!   the end), never wait; a closed stdout (`prog | head -1`) silences it, never kills it.
//!
//! On a terminal the cursor is left at the start of the status line, so a log line printed
//! meanwhile (on stderr) takes the line over and the status is drawn again below it.

use crabby::health::{BlockHealth, BlockState, HealthSnapshot};
use crabby::{
    Block, Context, Error, Flow, GraphView, LinkOptions, Overflow, Rate, Result, Sample, Settings,
    Value,
};
use nix::errno::Errno;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

/// A live status line of the test on stdout; see the [module docs](self).
#[derive(Debug)]
pub struct Console {
    values: Vec<String>,
    every: Duration,
    warning_for: Duration,
    quiet: bool,
    rates: bool,
    // Run-time state, in the Block's process.
    out: Option<Out>,
    latest: Sample,
    last_plain: Option<f64>,
    last_frame: String,
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Console {
    /// The default rate of the status, 5 Hz: smooth enough to read, cheap.
    pub const DEFAULT_HZ: f64 = 5.0;

    /// A console showing the test time and the Blocks' rates, a line every 2 s when stdout is
    /// not a terminal.
    pub fn new() -> Self {
        Console {
            values: Vec::new(),
            every: Duration::from_secs(2),
            warning_for: Duration::from_secs(5),
            quiet: false,
            rates: true,
            out: None,
            latest: Sample::new(),
            last_plain: None,
            last_frame: String::new(),
        }
    }

    /// The labels whose latest value is shown, in this order (they must arrive on an input
    /// link).
    pub fn values<S: Into<String>>(mut self, labels: impl IntoIterator<Item = S>) -> Self {
        self.values = labels.into_iter().map(Into::into).collect();
        self
    }

    /// How often a plain line is printed when stdout is not a terminal (default 2 s; zero:
    /// at every loop).
    pub fn every(mut self, period: Duration) -> Self {
        self.every = period;
        self
    }

    /// How long a watchdog warning stays on the status after it fired (default 5 s).
    pub fn warning_for(mut self, d: Duration) -> Self {
        self.warning_for = d;
        self
    }

    /// Whether each Block's achieved rate is shown (default yes).
    pub fn rates(mut self, yes: bool) -> Self {
        self.rates = yes;
        self
    }

    /// Quiet: prints nothing at all (a program's `--quiet` flag), but still reads its inputs.
    pub fn quiet(mut self, yes: bool) -> Self {
        self.quiet = yes;
        self
    }

    /// The options of a link into a console: drop the oldest samples when it falls behind,
    /// never hold the sender up. `test.link_with(machine, console, Console::link())`.
    pub fn link() -> LinkOptions {
        LinkOptions::new().overflow(Overflow::DropOldest)
    }

    /// The status now, from the inputs' latest values and the health snapshot.
    fn parts(&self, h: &HealthSnapshot, me: &str) -> Parts {
        let values = self
            .values
            .iter()
            .map(|l| (l.clone(), self.latest.get(l).map(fmt_value)))
            .collect();
        let rates = if self.rates {
            h.blocks
                .iter()
                .filter(|b| b.name != me)
                .map(|b| fmt_rate(&RateItem::from(b)))
                .collect()
        } else {
            Vec::new()
        };
        let now = h.t.unwrap_or(f64::NEG_INFINITY);
        let warning = active_warning(
            h.warnings
                .iter()
                .map(|w| (w.t, w.block.as_str(), w.message.as_str())),
            now,
            self.warning_for.as_secs_f64(),
        );
        Parts {
            t: h.t,
            values,
            warning,
            rates,
        }
    }
}

impl Block for Console {
    fn default_settings(&self) -> Settings {
        Settings::new().freq(Self::DEFAULT_HZ)
    }

    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        if graph.rate() == Rate::Free {
            return Err(Error::config(format!(
                "a Console must not free-run (it would spin a core to redraw a line); give it a rate, such as its default {} Hz",
                Self::DEFAULT_HZ
            ))
            .with_origin(graph.name()));
        }
        for i in graph.inputs() {
            if i.overflow != Overflow::DropOldest {
                return Err(Error::config(format!(
                    "input link '{}' from {} is lossless: a stalled console could then slow {} down; make it drop-oldest with `test.link_with(from, console, Console::link())` (that is LinkOptions::new().overflow(Overflow::DropOldest))",
                    i.link, i.from, i.from
                ))
                .with_origin(graph.name()));
            }
        }
        for (k, l) in self.values.iter().enumerate() {
            if l.is_empty() {
                return Err(Error::config(format!(
                    "parameter 'values': label {} is empty; give the labels to show, such as [\"F(N)\", \"Exx(%)\"]",
                    k + 1
                ))
                .with_origin(graph.name()));
            }
            graph.require_label(l, &format!("Console value '{l}'"))?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let mut d = format!(
            "values {:?}, plain lines every {} s, warnings shown {} s",
            self.values,
            self.every.as_secs_f64(),
            self.warning_for.as_secs_f64()
        );
        if !self.rates {
            d.push_str(", no rates");
        }
        if self.quiet {
            d.push_str(", quiet");
        }
        d
    }

    fn prepare(&mut self, _ctx: &mut Context) -> Result<()> {
        if !self.quiet {
            self.out = Out::stdout();
        }
        Ok(())
    }

    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        // Drain every input at every loop (nothing is dropped), keep the newest values.
        let s = ctx.recv_latest(false);
        self.latest.merge(&s);
        let Some(out) = self.out.as_ref() else {
            return Ok(Flow::Continue);
        };
        if out.closed {
            return Ok(Flow::Continue);
        }
        let h = ctx.health();
        let tty = out.tty;
        let width = if tty { out.columns() } else { None };
        let t = h.t.unwrap_or(0.0);
        if !tty && !due(self.last_plain, t, self.every.as_secs_f64()) {
            return Ok(Flow::Continue);
        }
        let line = compose(&self.parts(&h, ctx.name()), width);
        if tty && line == self.last_frame {
            return Ok(Flow::Continue);
        }
        let frame = if tty {
            tty_frame(&line)
        } else {
            format!("{line}\n")
        };
        let out = self.out.as_mut().expect("checked above");
        if out.write(frame.as_bytes()) {
            self.last_frame = line;
            self.last_plain = Some(t);
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        let s = ctx.recv_latest(false);
        self.latest.merge(&s);
        let Some(mut out) = self.out.take() else {
            return Ok(());
        };
        let h = ctx.health();
        let line = format!("end: {}", compose(&self.parts(&h, ctx.name()), None));
        let frame = if out.tty {
            format!("\r{line}\x1b[K\n")
        } else {
            format!("{line}\n")
        };
        out.write(frame.as_bytes());
        if out.skipped > 0 {
            log::info!(
                "{} status lines not shown: stdout did not take them (a paused terminal or a pipe nobody reads)",
                out.skipped
            );
        }
        if out.closed_now {
            log::info!("stdout was closed: the status stopped there");
        }
        Ok(())
    }
}

/// The pieces of a status line.
#[derive(Debug, Clone, PartialEq)]
struct Parts {
    t: Option<f64>,
    /// (label, formatted latest value if any).
    values: Vec<(String, Option<String>)>,
    /// "block: message" of the active warning.
    warning: Option<String>,
    rates: Vec<String>,
}

/// What a rate item needs of a Block's health (a plain struct, so tests can build one).
#[derive(Debug, Clone, PartialEq)]
struct RateItem {
    name: String,
    state: BlockState,
    requested: Option<f64>,
    achieved: Option<f64>,
}

impl From<&BlockHealth> for RateItem {
    fn from(b: &BlockHealth) -> Self {
        RateItem {
            name: b.name.clone(),
            state: b.state,
            requested: b.requested_hz,
            achieved: b.achieved_hz,
        }
    }
}

/// A value in at most ~10 characters: about 6 significant digits, no exponent for usual
/// magnitudes.
fn fmt_value(v: &Value) -> String {
    match v {
        Value::Float(x) => fmt_f64(*x),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Text(t) => {
            if t.chars().count() > 16 {
                let mut s: String = t.chars().take(15).collect();
                s.push('…');
                s
            } else {
                t.clone()
            }
        }
        Value::Array(a) => format!("[{} values]", a.len()),
    }
}

fn fmt_f64(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-4..1e7).contains(&a) {
        format!("{x:.3e}")
    } else if a >= 1e4 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.4}")
    }
}

/// A frequency as short as it is exact enough: 200, 99.8, 0.5.
fn fmt_hz(x: f64) -> String {
    if x >= 1000.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        let s = format!("{x:.1}");
        s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
    } else {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// `machine 99.8/100 Hz`; a `!` when more than 1 % below the requested rate; the state
/// instead of the rate once the Block is no longer running.
fn fmt_rate(b: &RateItem) -> String {
    let word = match b.state {
        BlockState::Running => None,
        BlockState::Preparing => Some("preparing"),
        BlockState::Ready => Some("ready"),
        BlockState::Finishing => Some("finishing"),
        BlockState::Done => Some("done"),
        BlockState::Failed => Some("FAILED"),
        _ => Some("?"),
    };
    if let Some(w) = word {
        return format!("{} {w}", b.name);
    }
    let achieved = b.achieved.map(fmt_hz).unwrap_or_else(|| "-".into());
    match b.requested {
        Some(r) => {
            // Below by more than 1 %, and by more than one loop over the ~1 s the rate is
            // measured on (a 5 Hz Block shows 4.6 Hz when 5 loops fall in 1.08 s).
            let slow = b.achieved.is_some_and(|a| a < 0.99 * r && a < r - 1.0);
            format!(
                "{} {achieved}/{} Hz{}",
                b.name,
                fmt_hz(r),
                if slow { "!" } else { "" }
            )
        }
        None => format!("{} {achieved} Hz", b.name),
    }
}

/// The most recent warning that fired at most `keep` seconds before `now`, as
/// "block: message".
fn active_warning<'a>(
    warnings: impl Iterator<Item = (f64, &'a str, &'a str)>,
    now: f64,
    keep: f64,
) -> Option<String> {
    warnings
        .filter(|(t, _, _)| *t <= now && now - *t <= keep)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, block, msg)| {
            if block.is_empty() || msg.starts_with(&format!("{block} ")) {
                msg.to_owned()
            } else {
                format!("{block}: {msg}")
            }
        })
}

/// Whether a plain line is due at `t` (every `every` s; the first at once).
fn due(last: Option<f64>, t: f64, every: f64) -> bool {
    match last {
        None => true,
        Some(l) => t - l >= every,
    }
}

fn width_of(s: &str) -> usize {
    s.chars().count()
}

/// `s` cut to `w` characters, the last one an ellipsis when cut.
fn clip(s: &str, w: usize) -> String {
    if width_of(s) <= w {
        return s.to_owned();
    }
    if w == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(w - 1).collect();
    out.push('…');
    out
}

const SEP: &str = " | ";

/// The status as one line. With a width (a terminal), the line fits in `width - 1` columns
/// (the last column would make some terminals wrap): the time and values first, then the
/// warning (cut if needed), then as many Blocks' rates as fit and a count of the others.
fn compose(p: &Parts, width: Option<usize>) -> String {
    let time = match p.t {
        Some(t) => format!("t {t:>7.1} s"),
        None => "t       - s".to_owned(),
    };
    let values: Vec<String> = p
        .values
        .iter()
        .map(|(l, v)| format!("{l} {:>8}", v.as_deref().unwrap_or("-")))
        .collect();
    let mut head = time;
    if !values.is_empty() {
        head.push_str(SEP);
        head.push_str(&values.join("  "));
    }
    let warning = p.warning.as_ref().map(|w| format!("WARNING {w}"));
    let Some(width) = width else {
        let mut line = head;
        if let Some(w) = warning {
            line.push_str(SEP);
            line.push_str(&w);
        }
        if !p.rates.is_empty() {
            line.push_str(SEP);
            line.push_str(&p.rates.join(", "));
        }
        return line;
    };
    let room = width.saturating_sub(1).max(10);
    let mut line = clip(&head, room);
    if let Some(w) = warning {
        let left = room.saturating_sub(width_of(&line) + SEP.len());
        if left >= 12 {
            line.push_str(SEP);
            line.push_str(&clip(&w, left));
        }
    }
    if !p.rates.is_empty() {
        let mut shown = 0;
        let mut rates = String::new();
        for (i, r) in p.rates.iter().enumerate() {
            let rest = p.rates.len() - i - 1;
            let more = if rest > 0 {
                format!(", +{rest}")
            } else {
                String::new()
            };
            let candidate = if rates.is_empty() {
                r.clone()
            } else {
                format!("{rates}, {r}")
            };
            let total = width_of(&line) + SEP.len() + width_of(&candidate) + width_of(&more);
            if total > room {
                break;
            }
            rates = candidate;
            shown += 1;
        }
        let rest = p.rates.len() - shown;
        if shown > 0 {
            if rest > 0 {
                rates.push_str(&format!(", +{rest}"));
            }
            line.push_str(SEP);
            line.push_str(&rates);
        } else if width_of(&line) + SEP.len() + 12 <= room {
            line.push_str(&format!("{SEP}{rest} Blocks"));
        }
    }
    line
}

/// A status frame for a terminal: drawn over the current line (no erase first, so no
/// flicker), the rest of the old line erased, the cursor back at the start of the line.
fn tty_frame(line: &str) -> String {
    format!("\r{line}\x1b[K\r")
}

/// stdout, written without ever waiting.
#[derive(Debug)]
struct Out {
    fd: OutFd,
    tty: bool,
    /// The unwritten end of the last frame (a partial write), written before the next one.
    pending: Vec<u8>,
    /// Frames not written because stdout did not take them.
    skipped: u64,
    /// Whether stdout is gone (a closed pipe).
    closed: bool,
    /// Whether it was found closed during the run (for the note at the end).
    closed_now: bool,
}

#[derive(Debug)]
enum OutFd {
    /// A private description of the same pipe or terminal, opened non-blocking (the
    /// program's own fd 1 keeps its flags).
    Private(OwnedFd),
    /// A socket: sent with `MSG_DONTWAIT`.
    Socket(OwnedFd),
    /// A regular file or `/dev/null`: written as is (they do not block).
    Plain(OwnedFd),
}

impl Out {
    /// This process's stdout, or `None` if it is closed (a pipe with no reader).
    fn stdout() -> Option<Out> {
        Out::open(std::io::stdout().as_fd())
    }

    fn open(fd: std::os::fd::BorrowedFd<'_>) -> Option<Out> {
        use nix::fcntl::OFlag;
        use nix::sys::stat::{fstat, SFlag};
        let st = fstat(fd).ok()?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let tty = nix::unistd::isatty(fd).unwrap_or(false);
        let fd = if kind == SFlag::S_IFIFO || kind == SFlag::S_IFCHR {
            // A new open of the same pipe or terminal has its own O_NONBLOCK flag. A pipe
            // with no reader left cannot be opened (ENXIO).
            match nix::fcntl::open(
                format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
                OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
                nix::sys::stat::Mode::empty(),
            ) {
                Ok(own) => OutFd::Private(own),
                Err(Errno::ENXIO) => return None,
                // No /proc: without a private non-blocking description a write could wait,
                // so there is no status.
                Err(_) => return None,
            }
        } else if kind == SFlag::S_IFSOCK {
            OutFd::Socket(fd.try_clone_to_owned().ok()?)
        } else {
            OutFd::Plain(fd.try_clone_to_owned().ok()?)
        };
        Some(Out {
            fd,
            tty,
            pending: Vec::new(),
            skipped: 0,
            closed: false,
            closed_now: false,
        })
    }

    fn columns(&self) -> Option<usize> {
        let fd = match &self.fd {
            OutFd::Private(f) | OutFd::Socket(f) | OutFd::Plain(f) => f.as_fd(),
        };
        crabby::process::terminal_columns(fd).map(usize::from)
    }

    fn raw_write(&self, bytes: &[u8]) -> nix::Result<usize> {
        match &self.fd {
            OutFd::Private(f) | OutFd::Plain(f) => nix::unistd::write(f, bytes),
            OutFd::Socket(f) => nix::sys::socket::send(
                f.as_raw_fd(),
                bytes,
                nix::sys::socket::MsgFlags::MSG_DONTWAIT | nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
            ),
        }
    }

    /// Writes as much of `bytes` as stdout takes now; false when nothing could be written.
    fn write_some(&mut self, mut bytes: &[u8]) -> std::result::Result<usize, ()> {
        let mut done = 0;
        while !bytes.is_empty() {
            match self.raw_write(bytes) {
                Ok(0) => break,
                Ok(n) => {
                    done += n;
                    bytes = &bytes[n..];
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(_) => {
                    self.closed = true;
                    self.closed_now = true;
                    self.pending.clear();
                    return Err(());
                }
            }
        }
        Ok(done)
    }

    /// Writes one frame, never waiting: first what is left of the previous one; if stdout
    /// takes nothing more, the frame is skipped (counted). Returns whether it was written (a
    /// part of it may still be pending).
    fn write(&mut self, frame: &[u8]) -> bool {
        if self.closed {
            return false;
        }
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            let Ok(n) = self.write_some(&pending) else {
                return false;
            };
            if n < pending.len() {
                self.pending = pending[n..].to_vec();
                self.skipped += 1;
                return false;
            }
        }
        match self.write_some(frame) {
            Err(()) => false,
            Ok(0) => {
                self.skipped += 1;
                false
            }
            Ok(n) => {
                self.pending = frame[n..].to_vec();
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, state: BlockState, req: Option<f64>, ach: Option<f64>) -> RateItem {
        RateItem {
            name: name.into(),
            state,
            requested: req,
            achieved: ach,
        }
    }

    #[test]
    fn values_are_short_and_readable() {
        assert_eq!(fmt_value(&Value::Float(0.0)), "0");
        assert_eq!(fmt_value(&Value::Float(12345.678)), "12346");
        assert_eq!(fmt_value(&Value::Float(-523.44)), "-523.4");
        assert_eq!(fmt_value(&Value::Float(1.23456)), "1.235");
        assert_eq!(fmt_value(&Value::Float(0.012345)), "0.0123");
        assert_eq!(fmt_value(&Value::Float(3.2e-7)), "3.200e-7");
        assert_eq!(fmt_value(&Value::Float(5e9)), "5.000e9");
        assert_eq!(fmt_value(&Value::Float(f64::NAN)), "NaN");
        assert_eq!(fmt_value(&Value::Int(-42)), "-42");
        assert_eq!(fmt_value(&Value::Bool(true)), "true");
        assert_eq!(fmt_value(&Value::Array(vec![1.0; 5])), "[5 values]");
        assert_eq!(
            fmt_value(&Value::Text("a rather long status text".into())),
            "a rather long s…"
        );
    }

    #[test]
    fn rates_say_achieved_over_requested() {
        let r = |s, req, ach| fmt_rate(&item("machine", s, req, ach));
        assert_eq!(
            r(BlockState::Running, Some(100.0), Some(99.95)),
            "machine 100/100 Hz"
        );
        assert_eq!(
            r(BlockState::Running, Some(200.0), Some(43.1)),
            "machine 43.1/200 Hz!"
        );
        assert_eq!(
            r(BlockState::Running, Some(0.5), Some(0.5)),
            "machine 0.5/0.5 Hz"
        );
        assert_eq!(
            r(BlockState::Running, Some(1000.0), None),
            "machine -/1000 Hz"
        );
        assert_eq!(
            r(BlockState::Running, None, Some(123456.0)),
            "machine 123456 Hz"
        );
        assert_eq!(
            r(BlockState::Running, Some(5.0), Some(4.6)),
            "machine 4.6/5 Hz",
            "one loop less in a 1 s window is not slow"
        );
        assert_eq!(
            r(BlockState::Running, Some(5.0), Some(3.8)),
            "machine 3.8/5 Hz!"
        );
        assert_eq!(r(BlockState::Done, Some(100.0), None), "machine done");
        assert_eq!(r(BlockState::Failed, Some(100.0), None), "machine FAILED");
    }

    #[test]
    fn the_latest_warning_shows_for_a_while() {
        let w = [(1.0, "a", "a ran slow"), (3.0, "b", "blocked on link x")];
        let at = |now| active_warning(w.iter().copied(), now, 5.0);
        assert_eq!(at(0.5), None, "not yet fired");
        assert_eq!(at(2.0).as_deref(), Some("a ran slow"));
        assert_eq!(at(4.0).as_deref(), Some("b: blocked on link x"));
        assert_eq!(at(7.5).as_deref(), Some("b: blocked on link x"));
        assert_eq!(at(8.5), None, "expired");
    }

    #[test]
    fn plain_lines_come_every_period() {
        assert!(due(None, 0.0, 2.0));
        assert!(!due(Some(0.0), 1.9, 2.0));
        assert!(due(Some(0.0), 2.0, 2.0));
        assert!(due(Some(1.0), 1.0, 0.0));
    }

    fn parts() -> Parts {
        Parts {
            t: Some(12.34),
            values: vec![
                ("F(N)".into(), Some("1234.5".into())),
                ("Exx(%)".into(), None),
            ],
            warning: None,
            rates: vec![
                "generator 200/200 Hz".into(),
                "machine 43.1/100 Hz!".into(),
                "recorder 200/200 Hz".into(),
            ],
        }
    }

    #[test]
    fn a_plain_line_has_everything() {
        let mut p = parts();
        p.warning = Some("machine ran at 43 Hz".into());
        assert_eq!(
            compose(&p, None),
            "t    12.3 s | F(N)   1234.5  Exx(%)        - | WARNING machine ran at 43 Hz | generator 200/200 Hz, machine 43.1/100 Hz!, recorder 200/200 Hz"
        );
        p.t = None;
        p.values.clear();
        p.rates.clear();
        p.warning = None;
        assert_eq!(compose(&p, None), "t       - s");
    }

    #[test]
    fn a_terminal_line_fits_its_width() {
        let mut p = parts();
        p.warning = Some("machine ran at 43.1 Hz, below its 100 Hz: its step takes 23 ms".into());
        for w in [5, 20, 40, 60, 80, 100, 200, 400] {
            let line = compose(&p, Some(w));
            assert!(
                width_of(&line) < w.max(11),
                "{w} columns: {} chars: {line}",
                width_of(&line)
            );
            assert!(line.starts_with('t'), "{line}");
        }
        // Wide: everything, in full.
        let wide = compose(&p, Some(400));
        assert!(wide.contains("WARNING machine ran at 43.1 Hz, below its 100 Hz: its step takes 23 ms | generator"), "{wide}");
        assert!(wide.ends_with("recorder 200/200 Hz"), "{wide}");
        // Narrower: the warning is kept (cut), the rates go first and are counted.
        let mid = compose(&p, Some(80));
        assert!(mid.contains("WARNING machine ran at"), "{mid}");
        let no_warning = Parts {
            warning: None,
            ..parts()
        };
        let mid = compose(&no_warning, Some(80));
        assert_eq!(
            mid,
            "t    12.3 s | F(N)   1234.5  Exx(%)        - | generator 200/200 Hz, +2"
        );
        let narrow = compose(&no_warning, Some(40));
        assert_eq!(narrow, "t    12.3 s | F(N)   1234.5  Exx(%)   …");
    }

    #[test]
    fn a_terminal_frame_redraws_in_place() {
        let f = tty_frame("t 1.0 s");
        assert_eq!(f, "\rt 1.0 s\x1b[K\r");
        assert!(!f.contains('\n'));
        // No full-line erase before drawing: that would flicker.
        assert!(!f.contains("\x1b[2K"));
    }

    #[test]
    fn a_full_pipe_skips_frames_and_a_closed_one_silences() {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let mut out = Out::open(w.as_fd()).expect("a pipe with a reader opens");
        assert!(!out.tty);
        // Fill the pipe: the writes never wait.
        let frame = vec![b'x'; 1000];
        let mut written = 0;
        while out.write(&frame) {
            written += 1;
            assert!(written < 10_000, "a pipe never fills?");
        }
        assert!(out.skipped >= 1);
        assert!(!out.write(&frame));
        assert!(!out.closed);
        // The reader goes: the next write finds it closed (no SIGPIPE death: libtest's
        // process, like every crabby process, ignores SIGPIPE... so does Rust's runtime).
        drop(r);
        let _ = out.write(&frame);
        let _ = out.write(&frame);
        assert!(out.closed, "{out:?}");
        // A pipe whose reader is gone before the start (a FIFO would refuse the open; an
        // anonymous pipe opens): the first write finds it closed.
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        drop(r);
        if let Some(mut out) = Out::open(w.as_fd()) {
            assert!(!out.write(b"x"));
            assert!(out.closed);
        }
    }
}
