//! Logging: every process logs through the `log` facade. In a Block's process the records go
//! over the Block's pipe to the coordinator; the coordinator writes them with its own (through
//! a `fern` dispatch, no thread) to the console and to the log file. Each line shows the time
//! since `t0`, the level, the Block's name and the message.

use crate::proto::{level_to_u8, Channel, ChildMsg};
use log::{LevelFilter, Log, Metadata, Record};
use std::cell::Cell;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

struct CrabbyLogger;

/// Longest log message a Block sends, in bytes (see `CrabbyLogger::log`).
const MAX_RECORD: usize = 3800;

static LOGGER: CrabbyLogger = CrabbyLogger;
static INSTALLED: OnceLock<bool> = OnceLock::new();
static CHILD: OnceLock<(Arc<Channel>, u64)> = OnceLock::new();
static COORDINATOR: Mutex<Option<Box<dyn Log>>> = Mutex::new(None);
static T0: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

thread_local! {
    /// Time and origin of the record being written by the coordinator.
    static CURRENT: Cell<Option<f64>> = const { Cell::new(None) };
    /// In the threads runtime, the channel of the Block running on this thread.
    static THREAD_CHANNEL: std::cell::RefCell<Option<Arc<Channel>>> = const { std::cell::RefCell::new(None) };
}

/// Threads runtime: records logged on this thread go to this Block's channel.
pub(crate) fn thread_mode(channel: Option<Arc<Channel>>) {
    THREAD_CHANNEL.with(|c| *c.borrow_mut() = channel);
}

/// Installs crabby's logger as the `log` logger (once per process). Returns false if the
/// program installed another logger first: then the Blocks' records go to that logger.
pub(crate) fn install() -> bool {
    *INSTALLED.get_or_init(|| log::set_logger(&LOGGER).is_ok())
}

/// Sets the monotonic `t0` used to stamp the coordinator's own records (0 = not started).
pub(crate) fn set_t0(t0: u64) {
    T0.store(t0, std::sync::atomic::Ordering::Relaxed);
}

fn since_t0() -> Option<f64> {
    match T0.load(std::sync::atomic::Ordering::Relaxed) {
        0 => None,
        t0 => Some((crate::sys::monotonic_ns() as i64 - t0 as i64) as f64 * 1e-9),
    }
}

/// In a Block's process: send records to the coordinator.
pub(crate) fn child_mode(
    channel: Arc<Channel>,
    t0_source: &crate::control::Control,
    level: LevelFilter,
) {
    let _ = t0_source;
    let _ = CHILD.set((channel, 0));
    log::set_max_level(level);
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
            "[{t}] {:<5} {:<16} {message}",
            record.level(),
            record.target()
        ))
    };
    let mut d = fern::Dispatch::new().format(fmt).chain(
        fern::Dispatch::new()
            .level(console)
            .chain(std::io::stderr()),
    );
    let mut max = console;
    if let Some((path, level)) = file {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        d = d.chain(
            fern::Dispatch::new()
                .level(level)
                .chain(fern::log_file(path)?),
        );
        max = max.max(level);
    }
    let (_, logger) = d.level(max).into_log();
    *COORDINATOR.lock().unwrap_or_else(|p| p.into_inner()) = Some(logger);
    log::set_max_level(max);
    Ok(())
}

/// In the coordinator, after the run: flush and stop writing the log file.
pub(crate) fn coordinator_done() {
    if let Some(l) = COORDINATOR.lock().unwrap_or_else(|p| p.into_inner()).take() {
        l.flush();
    }
    set_t0(0);
}

/// Writes a record received from a Block.
pub(crate) fn forward(block: &str, level: log::Level, t: Option<f64>, msg: &str) {
    let guard = COORDINATOR.lock().unwrap_or_else(|p| p.into_inner());
    match guard.as_ref() {
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
        }
        None => eprintln!("{level} {block} {msg}"),
    }
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
        if let Some(ch) = thread_channel.as_ref().or(CHILD.get().map(|(ch, _)| ch)) {
            let t = crate::child::current_t();
            let mut msg = record.args().to_string();
            if msg.len() > MAX_RECORD {
                // A Block's own child processes share its pipe: frames stay under PIPE_BUF
                // (4 KiB) so their writes are atomic and never interleave.
                let mut cut = MAX_RECORD;
                while !msg.is_char_boundary(cut) {
                    cut -= 1;
                }
                msg.truncate(cut);
                msg.push_str(" […]");
            }
            ch.send(&ChildMsg::Log {
                level: level_to_u8(record.level()),
                t,
                msg,
            });
            return;
        }
        let guard = COORDINATOR.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = guard.as_ref() {
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
        } else {
            // Outside a run (before or after `Test::run`): plain lines on stderr.
            eprintln!(
                "{:<5} {} {}",
                record.level(),
                record.target(),
                record.args()
            );
        }
    }

    fn flush(&self) {
        if let Some(l) = COORDINATOR
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            l.flush();
        }
    }
}
