//! The body of a Block's process, from just after fork to `_exit`.

use crate::block::{Flow, Rate};
use crate::control::{Control, START_ABORT, START_GO, START_WAIT};
use crate::pacing::Pacer;
use crate::proto::{BlockFinal, Channel, ChildMsg, EndKind};
use crate::{logging, sys, Block, Context, Error, Result};
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

static CONTROL: OnceLock<Arc<Control>> = OnceLock::new();

thread_local! {
    /// The last panic message on this thread (set by the panic hook, read by `guarded`).
    static PANIC_MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Threads runtime: the control region of the Block running on this thread.
    static THREAD_CONTROL: RefCell<Option<Arc<Control>>> = const { RefCell::new(None) };
}

/// Seconds since t0 in a Block's process or thread, `None` before the start.
pub(crate) fn current_t() -> Option<f64> {
    let t0 = THREAD_CONTROL
        .with(|c| c.borrow().as_ref().map(|c| c.t0_mono()))
        .or_else(|| CONTROL.get().map(|c| c.t0_mono()))?;
    (t0 != 0).then(|| (sys::monotonic_ns() as i64 - t0 as i64) as f64 * 1e-9)
}

/// The panic hook of Blocks: log the message and keep it for the report.
pub(crate) fn panic_hook(info: &std::panic::PanicHookInfo<'_>) {
    let msg = panic_text(info);
    log::error!("panicked: {msg}");
    PANIC_MESSAGE.with(|m| *m.borrow_mut() = Some(msg));
}

/// The body of a Block's thread in the threads runtime.
pub(crate) fn thread_main(spec: ChildSpec) {
    let ChildSpec {
        block,
        ctx,
        rate,
        niceness,
        display_freq,
        ..
    } = spec;
    let channel = ctx.channel.clone().expect("a Block always has a channel");
    THREAD_CONTROL.with(|c| *c.borrow_mut() = Some(ctx.control.clone()));
    logging::thread_mode(Some(channel.clone()));
    run_and_report(block, ctx, rate, niceness, display_freq, &channel);
    logging::thread_mode(None);
    THREAD_CONTROL.with(|c| *c.borrow_mut() = None);
}

pub(crate) struct ChildSpec {
    pub block: Box<dyn Block>,
    pub ctx: Context,
    pub rate: Rate,
    pub niceness: Option<i32>,
    pub display_freq: bool,
    pub log_level: log::LevelFilter,
    pub coordinator: nix::unistd::Pid,
}

/// Runs the Block's lifecycle and leaves the process. Never returns.
pub(crate) fn child_main(spec: ChildSpec) -> ! {
    // Die with the coordinator. The coordinator may already have died between fork and
    // prctl: then our parent is no longer the coordinator, and we leave at once.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid() != spec.coordinator {
        sys::exit_now(1);
    }
    // A terminal Ctrl+C or hang-up reaches the whole process group: only the coordinator
    // handles it. SIGTERM ends a Block only when the coordinator sends it (the cleanup
    // ladder); a group-wide SIGTERM is the coordinator's to turn into a graceful stop. The
    // mask inherited from the coordinator (which blocks these signals to read them from a
    // signalfd) is cleared after the dispositions are set, so a pending SIGINT is discarded.
    // SAFETY: installing SIG_IGN / SIG_DFL runs no Rust code in a signal handler.
    unsafe {
        let _ = signal::signal(Signal::SIGINT, SigHandler::SigIgn);
        let _ = signal::signal(Signal::SIGHUP, SigHandler::SigIgn);
        let _ = signal::signal(Signal::SIGCHLD, SigHandler::SigDfl);
    }
    sys::terminate_only_from(spec.coordinator);
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);

    let ChildSpec {
        block,
        ctx,
        rate,
        niceness,
        display_freq,
        log_level,
        ..
    } = spec;
    let _ = CONTROL.set(ctx.control.clone());
    let channel = ctx
        .channel
        .clone()
        .expect("a forked Block always has a channel");
    logging::child_mode(channel.clone(), &ctx.control, log_level);
    std::panic::set_hook(Box::new(panic_hook));
    run_and_report(block, ctx, rate, niceness, display_freq, &channel);
    sys::exit_now(0)
}

/// The part both runtimes share: the lifecycle, the final report, then the Block's drop
/// (which closes what it still holds: files, ports) in the Block's own process or thread.
fn run_and_report(
    mut block: Box<dyn Block>,
    mut ctx: Context,
    rate: Rate,
    niceness: Option<i32>,
    display_freq: bool,
    channel: &Channel,
) {
    sys::low_timer_slack();
    let fin = run_lifecycle(&mut *block, &mut ctx, rate, niceness, display_freq, channel);
    channel.send(&ChildMsg::Final(fin));
    let _ = catch_unwind(AssertUnwindSafe(move || drop(block)));
}

fn panic_text(info: &std::panic::PanicHookInfo<'_>) -> String {
    let payload = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    match info.location() {
        Some(l) => format!("{payload} at {}:{}", l.file(), l.line()),
        None => payload,
    }
}

fn take_panic() -> String {
    PANIC_MESSAGE
        .with(|m| m.borrow_mut().take())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs a phase, turning errors and panics into an end kind.
fn guarded<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T, EndKind> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            let e = e.with_origin(name.to_owned());
            log::error!("{e}");
            Err(EndKind::Failed(e.to_wire()))
        }
        Err(_) => Err(EndKind::Panicked(take_panic())),
    }
}

fn run_lifecycle(
    block: &mut dyn Block,
    ctx: &mut Context,
    rate: Rate,
    niceness: Option<i32>,
    display_freq: bool,
    channel: &Channel,
) -> BlockFinal {
    let name = ctx.name.clone();
    let mut pacer = Pacer::new(rate, display_freq);
    let mut end = match prepare(block, ctx, niceness, &name) {
        Err(end) => {
            let wire = match &end {
                EndKind::Failed(w) => w.clone(),
                EndKind::Panicked(m) => Error::new(
                    crate::ErrorKind::BlockFailed,
                    format!("panicked in prepare: {m}"),
                )
                .with_origin(name.clone())
                .to_wire(),
                _ => unreachable!("prepare ends only by failure"),
            };
            channel.send(&ChildMsg::PrepareFailed(wire));
            Some(end)
        }
        Ok(()) => {
            channel.send(&ChildMsg::Ready);
            if wait_start(&ctx.control) {
                None
            } else {
                Some(EndKind::NotStarted)
            }
        }
    };

    if end.is_none() {
        end = Some(run_loop(block, ctx, &mut pacer, &name));
    }
    let end = end.expect("set above");

    let finish_error = match guarded(&name, || block.finish(ctx)) {
        Ok(()) => None,
        Err(EndKind::Failed(w)) => Some(w.description),
        Err(EndKind::Panicked(m)) => Some(format!("panicked: {m}")),
        Err(_) => None,
    };
    for l in &ctx.outputs {
        l.ring.close_writer();
    }
    for l in &ctx.inputs {
        l.ring.close_reader();
    }
    let s = pacer.stats();
    BlockFinal {
        end,
        finish_error,
        loops: s.loops,
        mean_freq: s.mean_freq,
        jitter_p99_us: s.jitter_p99_us,
        max_late_us: s.max_late_us,
        missed_deadlines: s.missed,
    }
}

fn prepare(
    block: &mut dyn Block,
    ctx: &mut Context,
    niceness: Option<i32>,
    name: &str,
) -> Result<(), EndKind> {
    if let Some(n) = niceness {
        if let Err(e) = sys::set_niceness(n) {
            // The coordinator checked the privilege before forking; warn if it still failed.
            log::warn!("could not set niceness {n}: {e}");
        }
    }
    guarded(name, || block.prepare(ctx))
}

/// Waits at the barrier. Returns true on start, false if the barrier broke.
fn wait_start(control: &Control) -> bool {
    let start = &control.header().start;
    loop {
        match start.load(Ordering::Acquire) {
            START_WAIT => sys::futex_wait(start, START_WAIT, None),
            START_GO => return true,
            START_ABORT => return false,
            _ => return false,
        }
    }
}

fn run_loop(block: &mut dyn Block, ctx: &mut Context, pacer: &mut Pacer, name: &str) -> EndKind {
    if let Err(end) = guarded(name, || block.begin(ctx)) {
        ctx.request_stop(true);
        return end;
    }
    let slot = ctx.index;
    let control = ctx.control.clone();
    let loops = &control.slot(slot).loops;
    loop {
        if control.stopping() {
            return if ctx.stop_requested {
                EndKind::StopRequested
            } else {
                EndKind::Stopped
            };
        }
        pacer.loop_started();
        match guarded(name, || block.step(ctx)) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Stop) => {
                log::info!("ended; stopping the test");
                ctx.stop_test();
                loops.fetch_add(1, Ordering::Relaxed);
                return EndKind::Ended;
            }
            Err(end) => {
                ctx.request_stop(true);
                loops.fetch_add(1, Ordering::Relaxed);
                return end;
            }
        }
        loops.fetch_add(1, Ordering::Relaxed);
        pacer.wait_next(&control, slot);
    }
}
