//! A simulated board running crabby's UController board script
//! (`hardware/boards/crabby_ucontroller.py`), played on the master side of a
//! pseudo-terminal: the same handshake, the same frames, the same signal generator.
//!
//! - [`Board`]: the script's state machine, fed the host's bytes ([`Board::input`]) and
//!   asked for what it sends at a given instant ([`Board::output`]). It waits for `go`,
//!   reads the command and label tables, then sends one frame per asked-for label at each
//!   sample (every `max(1, int(1000 / rate))` ms, as the script counts): `sine` = `amp`·sin(2π·`freq`·t) and `count` (the sample
//!   number), with the board's `ticks_ms` when the host asked for `t(s)`. Commands set the
//!   script's variables (`freq`, `amp`, `rate`, or any other name, kept but unused); `stop!`
//!   resets the board, which then waits for `go` again.
//! - [`Fault`]: garbage bytes, a silence, a board reset, a board that vanishes (the pty's
//!   master is closed), scheduled at a time after the streaming started
//!   ([`Board::schedule`]).
//! - [`serve`]: the loop that plays a [`Board`] on a pty master (call it in a forked child
//!   for tests that run a `Test`); [`SimThread`] runs it on a thread for tests that do not
//!   fork.
//!
//! The pty has no baud rate: the simulated board sends as fast as its `rate` asks, where a
//! real one is also bounded by its UART (at 115200 baud, about 2300 five-byte frames/s).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A fault the board shows, at a time after its streaming started.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// These bytes are written between two frames (noise on the line, a `print` left in
    /// the script): the frames that follow are misaligned for the host.
    Garbage(Vec<u8>),
    /// The board sends nothing for this long (then resumes, its samples skipped).
    Silence(Duration),
    /// The board resets (watchdog, brown-out): it stops sending and waits for `go`.
    Reset,
    /// The board vanishes: the pty's master is closed (the cable is pulled).
    Vanish,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Waiting for a `goXY` line.
    WaitGo,
    /// Reading the tables: `n_cmd` command lines then `n_lab` label lines.
    Tables {
        n_cmd: usize,
        n_lab: usize,
        lines: Vec<String>,
    },
    /// Streaming.
    Running,
}

/// The board running the script.
#[derive(Debug)]
pub struct Board {
    /// The script's variables, set by commands (`freq` Hz, `amp`, `rate` samples/s).
    pub vars: BTreeMap<String, f64>,
    state: State,
    inbuf: Vec<u8>,
    commands: BTreeMap<u8, String>,
    labels: BTreeMap<String, i8>,
    send_t: bool,
    boot: Instant,
    next_due: Option<Instant>,
    running_since: Option<Instant>,
    count: u64,
    silent_until: Option<Instant>,
    scheduled: Vec<(Duration, Fault)>,
    vanished: bool,
    /// Frames sent since the board booted.
    pub frames_sent: u64,
    /// Handshakes completed.
    pub handshakes: u32,
    /// Commands applied, in order (variable name, value).
    pub commands_applied: Vec<(String, f64)>,
    /// Lines the script could not use (a malformed `go`, a command with an unknown index).
    pub bad_lines: Vec<String>,
    /// Times `stop!` was received.
    pub stops: u32,
    /// [`serve`] returns after the first `stop!` (for a board played in a process of its
    /// own: it ends with the host's session).
    pub end_on_stop: bool,
}

impl Default for Board {
    fn default() -> Self {
        Self::new()
    }
}

impl Board {
    /// A board just booted: `freq` = 1 Hz, `amp` = 1, `rate` = 100 samples/s.
    pub fn new() -> Self {
        let mut vars = BTreeMap::new();
        vars.insert("freq".to_owned(), 1.0);
        vars.insert("amp".to_owned(), 1.0);
        vars.insert("rate".to_owned(), 100.0);
        Board {
            vars,
            state: State::WaitGo,
            inbuf: Vec::new(),
            commands: BTreeMap::new(),
            labels: BTreeMap::new(),
            send_t: false,
            boot: Instant::now(),
            next_due: None,
            running_since: None,
            count: 0,
            silent_until: None,
            scheduled: Vec::new(),
            vanished: false,
            frames_sent: 0,
            handshakes: 0,
            commands_applied: Vec::new(),
            bad_lines: Vec::new(),
            stops: 0,
            end_on_stop: false,
        }
    }

    /// Sets the sample rate (samples/s) the script starts with.
    pub fn rate(mut self, rate: f64) -> Self {
        self.vars.insert("rate".to_owned(), rate);
        self
    }

    /// Schedules `fault` at `after` the first streaming start (faults are applied once, in
    /// time order).
    pub fn schedule(&mut self, after: Duration, fault: Fault) {
        self.scheduled.push((after, fault));
        self.scheduled.sort_by_key(|(t, _)| *t);
    }

    /// Whether the board streams (handshake done, not stopped or reset since).
    pub fn running(&self) -> bool {
        self.state == State::Running
    }

    /// The label table the host sent (name → index).
    pub fn labels(&self) -> &BTreeMap<String, i8> {
        &self.labels
    }

    /// The command table the host sent (index → variable name).
    pub fn commands(&self) -> &BTreeMap<u8, String> {
        &self.commands
    }

    /// Whether the board has vanished (the server closes the port).
    pub fn vanished(&self) -> bool {
        self.vanished
    }

    /// The board's `ticks_ms()` at `now`.
    pub fn ticks_ms(&self, now: Instant) -> i32 {
        now.saturating_duration_since(self.boot).as_millis() as i32
    }

    /// What the signal generator gives for `label` at board time `t_ms`, sample `count`.
    pub fn value(&self, label: &str, t_ms: i32, count: u64) -> Option<f32> {
        let v = |n: &str| self.vars.get(n).copied().unwrap_or(0.0);
        match label {
            "sine" => Some(
                (v("amp")
                    * (2.0 * std::f64::consts::PI * v("freq") * f64::from(t_ms) / 1000.0).sin())
                    as f32,
            ),
            "count" => Some(count as f32),
            _ => None,
        }
    }

    /// Takes the host's bytes (lines ending in `\n`, stripped like MicroPython's
    /// `str.strip()`).
    pub fn input(&mut self, bytes: &[u8], now: Instant) {
        self.inbuf.extend_from_slice(bytes);
        while let Some(i) = self.inbuf.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.inbuf.drain(..=i).collect();
            let line = String::from_utf8_lossy(&raw).trim().to_owned();
            self.line(line, now);
        }
    }

    fn line(&mut self, line: String, now: Instant) {
        match &mut self.state {
            State::WaitGo => {
                if line.starts_with("go") {
                    self.start_tables(&line);
                }
                // Anything else is read and dropped while waiting (as the script does).
            }
            State::Tables {
                n_cmd,
                n_lab,
                lines,
            } => {
                if line.is_empty() {
                    return;
                }
                lines.push(line);
                if lines.len() == *n_cmd + *n_lab {
                    let (n_cmd, lines) = (*n_cmd, std::mem::take(lines));
                    self.finish_tables(n_cmd, &lines, now);
                }
            }
            State::Running => {
                if line == "stop!" {
                    self.stops += 1;
                    self.reset();
                } else if line.starts_with("go") {
                    // Our script accepts a new handshake at any time (a host that
                    // restarted, or re-sent it after a silence).
                    self.start_tables(&line);
                } else if !line.is_empty() {
                    let idx = line.as_bytes()[0].wrapping_sub(b'0');
                    match (
                        self.commands.get(&idx),
                        line.get(1..).unwrap_or("").parse::<f64>(),
                    ) {
                        (Some(name), Ok(v)) => {
                            let name = name.clone();
                            if name == "rate" {
                                // The script re-bases its schedule on a rate change.
                                self.next_due = Some(now);
                            }
                            self.vars.insert(name.clone(), v);
                            self.commands_applied.push((name, v));
                        }
                        _ => self.bad_lines.push(line),
                    }
                }
            }
        }
    }

    fn start_tables(&mut self, line: &str) {
        let b = line.as_bytes();
        let digit = |i: usize| {
            b.get(i)
                .filter(|c| c.is_ascii_digit())
                .map(|c| usize::from(c - b'0'))
        };
        match (digit(2), digit(3)) {
            (Some(n_cmd), Some(n_lab)) => {
                self.state = State::Tables {
                    n_cmd,
                    n_lab,
                    lines: Vec::new(),
                };
                if n_cmd + n_lab == 0 {
                    self.finish_tables(0, &[], Instant::now());
                }
            }
            _ => {
                self.bad_lines.push(line.to_owned());
                self.state = State::WaitGo;
            }
        }
    }

    fn finish_tables(&mut self, n_cmd: usize, lines: &[String], now: Instant) {
        self.commands.clear();
        self.labels.clear();
        for (k, l) in lines.iter().enumerate() {
            let idx = l.as_bytes()[0].wrapping_sub(b'0');
            let name = l.get(1..).unwrap_or("").to_owned();
            if k < n_cmd {
                self.commands.insert(idx, name);
            } else {
                self.labels.insert(name, idx as i8);
            }
        }
        self.send_t = self.labels.contains_key("t(s)");
        self.state = State::Running;
        self.handshakes += 1;
        self.next_due = Some(now);
        self.running_since.get_or_insert(now);
    }

    fn reset(&mut self) {
        // machine.reset(): the script starts over, its variables back to their defaults,
        // its tick counter from zero.
        let scheduled = std::mem::take(&mut self.scheduled);
        let running_since = self.running_since;
        let (frames, hs, cmds, bad, stops, end) = (
            self.frames_sent,
            self.handshakes,
            std::mem::take(&mut self.commands_applied),
            std::mem::take(&mut self.bad_lines),
            self.stops,
            self.end_on_stop,
        );
        *self = Board::new();
        self.scheduled = scheduled;
        self.running_since = running_since;
        self.frames_sent = frames;
        self.handshakes = hs;
        self.commands_applied = cmds;
        self.bad_lines = bad;
        self.stops = stops;
        self.end_on_stop = end;
    }

    /// The bytes the board sends up to `now`, and when it next has something to send.
    pub fn output(&mut self, now: Instant) -> (Vec<u8>, Option<Instant>) {
        let mut out = Vec::new();
        // Scheduled faults whose time has come.
        if let Some(since) = self.running_since {
            while self
                .scheduled
                .first()
                .is_some_and(|(t, _)| since + *t <= now)
            {
                let (_, f) = self.scheduled.remove(0);
                match f {
                    Fault::Garbage(g) => out.extend_from_slice(&g),
                    Fault::Silence(d) => self.silent_until = Some(now + d),
                    Fault::Reset => self.reset(),
                    Fault::Vanish => {
                        self.vanished = true;
                        return (out, None);
                    }
                }
            }
        }
        if self.state != State::Running {
            return (out, self.scheduled_next());
        }
        if let Some(until) = self.silent_until {
            if now < until {
                return (out, Some(until));
            }
            self.silent_until = None;
            self.next_due = Some(now);
        }
        let rate = self.vars.get("rate").copied().unwrap_or(100.0);
        if !(rate > 0.0 && rate.is_finite()) {
            return (out, self.scheduled_next());
        }
        // The script counts in whole milliseconds: `max(1, int(1000 / rate))`.
        let period = Duration::from_millis(((1000.0 / rate).floor() as u64).max(1));
        let mut due = self.next_due.unwrap_or(now);
        // A board that fell behind by more than a second does not send a burst.
        if now.saturating_duration_since(due) > Duration::from_secs(1) {
            due = now;
        }
        while due <= now {
            let t_ms = self.ticks_ms(due);
            for name in ["sine", "count"] {
                let (Some(&idx), Some(v)) =
                    (self.labels.get(name), self.value(name, t_ms, self.count))
                else {
                    continue;
                };
                if self.send_t {
                    out.extend_from_slice(&t_ms.to_le_bytes());
                }
                out.push(idx as u8);
                out.extend_from_slice(&v.to_le_bytes());
                self.frames_sent += 1;
            }
            self.count += 1;
            due += period;
        }
        self.next_due = Some(due);
        let next = self.scheduled_next().map_or(due, |s| s.min(due));
        (out, Some(next))
    }

    fn scheduled_next(&self) -> Option<Instant> {
        let since = self.running_since?;
        self.scheduled.first().map(|(t, _)| since + *t)
    }
}

/// Plays `board` on a pty master until `stop` is set or the board vanishes (the master is
/// then closed). Bytes the host does not read are dropped when the pty's buffer is full,
/// as a USB serial board's would be.
pub fn serve(master: OwnedFd, board: &Mutex<Board>, stop: &AtomicBool) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let lock = || board.lock().unwrap_or_else(|e| e.into_inner());
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let (out, next) = lock().output(now);
        if !out.is_empty() {
            let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLOUT)];
            if poll(&mut fds, PollTimeout::ZERO).unwrap_or(0) > 0 {
                let _ = nix::unistd::write(&master, &out);
            }
        }
        {
            let b = lock();
            if b.vanished() || (b.end_on_stop && b.stops > 0) {
                return; // drops the master: the port vanishes
            }
        }
        let wait = next
            .map(|n| n.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(20))
            .min(Duration::from_millis(20));
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        let ms = wait.as_millis() as u16;
        if poll(&mut fds, PollTimeout::from(ms)).unwrap_or(0) > 0 {
            match nix::unistd::read(&master, &mut buf) {
                Ok(n) if n > 0 => lock().input(&buf[..n], Instant::now()),
                // EIO: no process has the slave open; wait for one.
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

/// A simulated board on a thread of this process; stopped and joined on drop (see
/// [`crate::sim_thread`]): [`SimThread::new`], then
/// [`with`](crate::sim_thread::SimThread::with) to inspect the board or schedule faults
/// while it runs, and [`stop`](crate::sim_thread::SimThread::stop) (the port vanishes).
pub type SimThread = crate::sim_thread::SimThread<Board>;

impl crate::sim_thread::SimThread<Board> {
    /// Plays `board` on `master`.
    pub fn new(master: OwnedFd, board: Board) -> SimThread {
        Self::start(board, None, (), move |b, s| serve(master, b, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_then_frames_then_stop_resets() {
        let mut b = Board::new().rate(1000.0);
        let t0 = Instant::now();
        b.input(b"hello\r\ngo12\r\n1freq\r\n1sine\r\n0t(s)\r\n", t0);
        assert!(b.running());
        assert_eq!(b.commands().get(&1).map(String::as_str), Some("freq"));
        assert_eq!(b.labels().get("t(s)"), Some(&0));
        let (out, next) = b.output(t0);
        assert_eq!(
            out.len(),
            9,
            "one <ibf frame for 'sine' ('count' not asked)"
        );
        assert_eq!(out[4], 1);
        assert!(next.is_some());
        b.input(b"12.500\r\n", t0);
        assert_eq!(b.vars["freq"], 2.5);
        b.input(b"stop!\r\n", t0);
        assert!(!b.running());
        assert_eq!(
            b.vars["freq"], 1.0,
            "a reset restores the script's defaults"
        );
    }
}
