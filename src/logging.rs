//! Logging: every process logs through the `log` facade. In a Block's process the records go
//! over the Block's non-blocking log channel to the coordinator (see `proto`); the
//! coordinator formats them (a `fern` dispatch, no thread) and writes them to the console
//! and to the log file. Each line shows the time since `t0`, the level, the Block's name and
//! the message.
//!
//! The coordinator must never block on, nor panic because of, its output: it is the process
//! that stops the motors and flushes the data. So:
//! - the console is written through a private non-blocking file description (a terminal
//!   paused with Ctrl+S, or a pipe nobody reads, never blocks it); lines that do not fit in
//!   a bounded queue are dropped and counted, and the count is written once the console
//!   drains ("312 log lines dropped");
//! - a closed console (`prog 2>&1 | head -1`) is noted once; lines then go to the file only;
//! - the log file gets every line it can; a write error is noted once on the console.

use crate::proto::{level_to_u8, Channel, LogRecord, MAX_FRAME};
use log::{LevelFilter, Log, Metadata, Record};
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, OnceLock};

struct CrabbyLogger;

/// Longest log message a Block sends, in bytes: a frame must stay under `PIPE_BUF`.
const MAX_RECORD: usize = MAX_FRAME - 200;
/// Bytes of console output queued while the console cannot take them.
const CONSOLE_QUEUE: usize = 256 * 1024;

static LOGGER: CrabbyLogger = CrabbyLogger;
static INSTALLED: OnceLock<bool> = OnceLock::new();
static CHILD: OnceLock<Arc<Channel>> = OnceLock::new();
thread_local! {
    /// The coordinator's formatter (fern) during a run, on the thread that called `run`:
    /// runs on different threads (parallel `run_in_threads` tests) keep their logs apart.
    static COORDINATOR: RefCell<Option<Box<dyn Log>>> = const { RefCell::new(None) };
    /// The coordinator's outputs (also used outside a run, for plain lines).
    static OUTPUTS: RefCell<Option<Outputs>> = const { RefCell::new(None) };
    /// `t0` of the run on this thread (0: not started).
    static T0: Cell<u64> = const { Cell::new(0) };
    /// Time of the record being written by the coordinator.
    static CURRENT: Cell<Option<f64>> = const { Cell::new(None) };
    /// In the threads runtime, the channel of the Block running on this thread.
    static THREAD_CHANNEL: std::cell::RefCell<Option<Arc<Channel>>> = const { std::cell::RefCell::new(None) };
}

/// Threads runtime: records logged on this thread go to this Block's channel.
pub(crate) fn thread_mode(channel: Option<Arc<Channel>>) {
    THREAD_CHANNEL.with(|c| *c.borrow_mut() = channel);
}

/// Installs crabby's logger as the `log` logger (once per process). Returns false if the
/// program installed another logger first.
pub(crate) fn install() -> bool {
    *INSTALLED.get_or_init(|| log::set_logger(&LOGGER).is_ok())
}

/// Sets the monotonic `t0` used to stamp the coordinator's own records (0 = not started).
pub(crate) fn set_t0(t0: u64) {
    T0.with(|t| t.set(t0));
}

fn since_t0() -> Option<f64> {
    match T0.with(|t| t.get()) {
        0 => None,
        t0 => Some((crate::sys::monotonic_ns() as i64 - t0 as i64) as f64 * 1e-9),
    }
}

/// In a Block's process: send records to the coordinator.
pub(crate) fn child_mode(channel: Arc<Channel>, level: LevelFilter) {
    let _ = CHILD.set(channel);
    log::set_max_level(level);
}

/// The console: fd 2 through a private non-blocking file description.
struct Console {
    fd: ConsoleFd,
    queue: Vec<u8>,
    /// Lines dropped since the last note.
    dropped: u64,
    /// Lines dropped during the whole run.
    dropped_total: u64,
    closed: bool,
}

enum ConsoleFd {
    /// A private description of the same pipe or terminal, opened non-blocking.
    Private(OwnedFd),
    /// A socket (a service manager's journal): sent with `MSG_DONTWAIT`.
    Socket(std::io::Stderr),
    /// A regular file or anything else: written as it is (a file never blocks for long).
    Plain(std::io::Stderr),
}

impl Console {
    fn open() -> Console {
        use nix::sys::stat::{fstat, SFlag};
        let stderr = std::io::stderr();
        let fd = match fstat(stderr.as_fd()) {
            Err(_) => None,
            Ok(st) => {
                let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
                if kind == SFlag::S_IFIFO || kind == SFlag::S_IFCHR {
                    // A new open of the same pipe or terminal has its own O_NONBLOCK flag, so
                    // the program's and the shell's fd 2 keep theirs. A pipe with no reader
                    // left cannot be opened (ENXIO): the console is closed.
                    use nix::fcntl::OFlag;
                    match nix::fcntl::open(
                        "/proc/self/fd/2",
                        OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
                        nix::sys::stat::Mode::empty(),
                    ) {
                        Ok(fd) => Some(ConsoleFd::Private(fd)),
                        Err(nix::errno::Errno::ENXIO) => None,
                        Err(_) => Some(ConsoleFd::Plain(std::io::stderr())),
                    }
                } else if kind == SFlag::S_IFSOCK {
                    Some(ConsoleFd::Socket(std::io::stderr()))
                } else {
                    Some(ConsoleFd::Plain(std::io::stderr()))
                }
            }
        };
        Console {
            closed: fd.is_none(),
            fd: fd.unwrap_or(ConsoleFd::Plain(stderr)),
            queue: Vec::new(),
            dropped: 0,
            dropped_total: 0,
        }
    }

    fn raw_write(&self, bytes: &[u8]) -> nix::Result<usize> {
        match &self.fd {
            ConsoleFd::Private(fd) => nix::unistd::write(fd.as_fd(), bytes),
            ConsoleFd::Socket(s) => nix::sys::socket::send(
                s.as_raw_fd(),
                bytes,
                nix::sys::socket::MsgFlags::MSG_DONTWAIT | nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
            ),
            ConsoleFd::Plain(s) => nix::unistd::write(s.as_fd(), bytes),
        }
    }

    /// Writes what the console takes now; false if it is closed.
    fn push_out(&mut self) -> bool {
        while !self.queue.is_empty() {
            match self.raw_write(&self.queue) {
                Ok(0) => return true,
                Ok(n) => {
                    self.queue.drain(..n);
                }
                Err(nix::errno::Errno::EAGAIN) => return true,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => {
                    self.closed = true;
                    self.queue.clear();
                    return false;
                }
            }
        }
        if self.dropped > 0 {
            let note = format!(
                "[crabby] {} log lines dropped: the console could not keep up (the log file has every line)\n",
                self.dropped
            );
            self.dropped = 0;
            self.queue.extend_from_slice(note.as_bytes());
            return self.push_out();
        }
        true
    }

    fn line(&mut self, line: &[u8]) {
        if self.closed {
            return;
        }
        if self.queue.len() + line.len() > CONSOLE_QUEUE {
            // Make room by writing what we can; drop the line if it still does not fit.
            if !self.push_out() {
                return;
            }
            if self.queue.len() + line.len() > CONSOLE_QUEUE {
                self.dropped += 1;
                self.dropped_total += 1;
                return;
            }
        }
        self.queue.extend_from_slice(line);
        self.push_out();
    }
}

/// The coordinator's outputs.
struct Outputs {
    console: Console,
    file: Option<(std::fs::File, std::path::PathBuf)>,
    file_failed: bool,
}

impl Outputs {
    fn new() -> Outputs {
        Outputs {
            console: Console::open(),
            file: None,
            file_failed: false,
        }
    }

    fn file_line(&mut self, line: &[u8]) {
        let Some((f, path)) = self.file.as_mut() else {
            return;
        };
        if let Err(e) = f.write_all(line) {
            if !self.file_failed {
                self.file_failed = true;
                let note = format!(
                    "[crabby] cannot write the log file {}: {e}; later lines go to the console only\n",
                    path.display()
                );
                self.console.line(note.as_bytes());
            }
        }
    }
}

fn with_outputs<R>(f: impl FnOnce(&mut Outputs) -> R) -> R {
    OUTPUTS.with(|o| {
        let mut g = o.borrow_mut();
        f(g.get_or_insert_with(Outputs::new))
    })
}

/// In the coordinator: console (from `console` up) and file (from `file_level` up).
pub(crate) fn coordinator_mode(
    console: LevelFilter,
    file: Option<(&Path, LevelFilter)>,
) -> std::io::Result<()> {
    let fmt = |out: fern::FormatCallback, message: &std::fmt::Arguments, record: &Record| {
        let t = CURRENT.with(|c| c.get()).or_else(since_t0);
        let t = match t {
            Some(t) => format!("{t:>10.4}"),
            None => format!("{:>10}", "-"),
        };
        out.finish(format_args!(
            "[{t}] {:<5} {:<16} {message}\n",
            record.level(),
            record.target()
        ))
    };
    let mut opened = None;
    if let Some((path, _)) = file {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        opened = Some((f, path.to_path_buf()));
    }
    let mut d =
        fern::Dispatch::new()
            .format(fmt)
            .chain(
                fern::Dispatch::new()
                    .level(console)
                    .chain(fern::Output::call(|r| {
                        let line = r.args().to_string();
                        with_outputs(|o| o.console.line(line.as_bytes()));
                    })),
            );
    let mut max = console;
    if let Some((_, level)) = file {
        d = d.chain(
            fern::Dispatch::new()
                .level(level)
                .chain(fern::Output::call(|r| {
                    let line = r.args().to_string();
                    with_outputs(|o| o.file_line(line.as_bytes()));
                })),
        );
        max = max.max(level);
    }
    with_outputs(|o| {
        *o = Outputs::new();
        o.file = opened;
    });
    let (_, logger) = d.level(max).into_log();
    COORDINATOR.with(|c| *c.borrow_mut() = Some(logger));
    // The global maximum only rises: another run on another thread may want more.
    log::set_max_level(max.max(log::max_level()));
    Ok(())
}

/// In the coordinator: writes what the console takes now. Returns a duplicate of the
/// console's descriptor when lines are still queued (the event loop polls it for
/// writability).
pub(crate) fn pump_console() -> Option<OwnedFd> {
    with_outputs(|o| {
        if o.console.closed {
            return None;
        }
        o.console.push_out();
        if o.console.queue.is_empty() || o.console.closed {
            None
        } else {
            match &o.console.fd {
                ConsoleFd::Private(fd) => fd.try_clone().ok(),
                ConsoleFd::Socket(s) | ConsoleFd::Plain(s) => s.as_fd().try_clone_to_owned().ok(),
            }
        }
    })
}

/// Console lines dropped during this run, and whether the console was found closed.
pub(crate) fn console_state() -> (u64, bool) {
    with_outputs(|o| (o.console.dropped_total, o.console.closed))
}

/// In the coordinator, after the run: stop writing the log file. Lines still queued for
/// the console get one last chance, without waiting.
pub(crate) fn coordinator_done() {
    COORDINATOR.with(|c| *c.borrow_mut() = None);
    with_outputs(|o| {
        o.console.push_out();
        if let Some((f, _)) = o.file.as_mut() {
            let _ = f.flush();
        }
        o.file = None;
    });
    set_t0(0);
}

/// Writes a record received from a Block.
pub(crate) fn forward(block: &str, level: log::Level, t: Option<f64>, msg: &str) {
    let written = COORDINATOR.with(|c| match c.borrow().as_ref() {
        Some(l) => {
            CURRENT.with(|c| c.set(t));
            l.log(
                &Record::builder()
                    .level(level)
                    .target(block)
                    .args(format_args!("{msg}"))
                    .build(),
            );
            CURRENT.with(|c| c.set(None));
            true
        }
        None => false,
    });
    if !written {
        plain_line(&format!("{level:<5} {block} {msg}\n"));
    }
}

/// A line on the console outside a run: never blocks, never panics.
fn plain_line(line: &str) {
    with_outputs(|o| o.console.line(line.as_bytes()));
}

impl Log for CrabbyLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let thread_channel = THREAD_CHANNEL.with(|c| c.borrow().clone());
        if let Some(ch) = thread_channel.as_ref().or(CHILD.get()) {
            let t = crate::child::current_t();
            let mut msg = record.args().to_string();
            if msg.len() > MAX_RECORD {
                // Frames stay under PIPE_BUF so their writes are atomic and never interleave
                // with those of the Block's own children, which share its pipe.
                let mut cut = MAX_RECORD;
                while !msg.is_char_boundary(cut) {
                    cut -= 1;
                }
                msg.truncate(cut);
                msg.push_str(" […]");
            }
            ch.log(LogRecord {
                level: level_to_u8(record.level()),
                t,
                msg,
            });
            return;
        }
        let written = COORDINATOR.with(|c| match c.borrow().as_ref() {
            Some(l) => {
                let target = if record.target().starts_with("crabby") {
                    "crabby"
                } else {
                    record.target()
                };
                l.log(
                    &Record::builder()
                        .level(record.level())
                        .target(target)
                        .args(*record.args())
                        .build(),
                );
                true
            }
            None => false,
        });
        if !written {
            // Outside a run (before or after `Test::run`), or on another thread than the
            // run's: plain lines on the console.
            plain_line(&format!(
                "{:<5} {} {}\n",
                record.level(),
                record.target(),
                record.args()
            ));
        }
    }

    fn flush(&self) {}
}
