//! The body of a Block's process, from just after fork to `_exit`.

use crate::block::{Flow, Rate, Sched};
use crate::control::{state, Control, START_ABORT, START_GO, START_WAIT};
use crate::pacing::Pacer;
use crate::proto::{BlockFinal, EndKind, Lifecycle};
use crate::{logging, sys, Block, Context, Error, Result};
use nix::sys::signal::{self, SigSet, SigmaskHow, Signal};
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

static CONTROL: OnceLock<Arc<Control>> = OnceLock::new();
/// The test this Block's process belongs to (see `crate::process::test_name`).
pub(crate) static TEST_NAME: OnceLock<String> = OnceLock::new();

thread_local! {
    /// The last panic message on this thread (set by the panic hook, read by `guarded`).
    static PANIC_MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Whether a Block runs on this thread: only then does crabby's panic hook act.
    static IN_BLOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
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
fn panic_hook(info: &std::panic::PanicHookInfo<'_>) {
    let msg = panic_text(info);
    log::error!("panicked: {msg}");
    PANIC_MESSAGE.with(|m| *m.borrow_mut() = Some(msg));
}

/// Installs crabby's panic hook once per process, chained to the one the program had: it
/// acts only on threads that run a Block and hands every other panic to the previous hook.
/// Never swapped back and forth, so overlapping runs (parallel tests) cannot mix them up.
pub(crate) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_BLOCK.with(|b| b.get()) {
                panic_hook(info);
            } else {
                previous(info);
            }
        }));
    });
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
    IN_BLOCK.with(|b| b.set(true));
    logging::thread_mode(Some(channel.clone()));
    if let Some(p) = niceness.realtime {
        log::debug!("real-time priority {p} is not applied under run_in_threads");
    }
    // A thread of the test process is not made real-time (see Settings::realtime).
    let niceness = Sched {
        realtime: None,
        ..niceness
    };
    run_and_report(block, ctx, rate, niceness, display_freq);
    logging::thread_mode(None);
    IN_BLOCK.with(|b| b.set(false));
    THREAD_CONTROL.with(|c| *c.borrow_mut() = None);
}

pub(crate) struct ChildSpec {
    pub block: Box<dyn Block>,
    pub ctx: Context,
    pub rate: Rate,
    /// Niceness and real-time priority.
    pub niceness: Sched,
    pub display_freq: bool,
    pub log_level: log::LevelFilter,
    pub coordinator: nix::unistd::Pid,
}

/// Environment variable carried by every Block process and everything it starts: the
/// coordinator's sentinel finds them by it if the coordinator is killed.
pub(crate) const RUN_MARKER_VAR: &str = "CRABBY_RUN";

/// The body of a Block's process, run by `sys::fork_child` (which has already set the
/// parent-death signal, checked the parent, and will `_exit` with the returned code).
pub(crate) fn child_main(spec: ChildSpec, marker: &str) -> i32 {
    // A terminal's Ctrl+C, Ctrl+\, Ctrl+Z or hang-up reaches the whole process group: only
    // the coordinator handles them (Blocks are never frozen by job control, so no motor is
    // left running on its last command while its Block sleeps). SIGTERM ends a Block only
    // when the coordinator sends it (the cleanup ladder); a group-wide SIGTERM is the
    // coordinator's to turn into a graceful stop. The mask inherited from the coordinator
    // (which blocks these signals to read them from a signalfd) is cleared after the
    // dispositions are set, so a pending SIGINT is discarded.
    for s in [
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGTSTP,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
    ] {
        sys::set_signal(s, sys::Disposition::Ignore);
    }
    sys::set_signal(Signal::SIGCHLD, sys::Disposition::Default);
    sys::terminate_only_from(spec.coordinator);
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // Processes this Block starts inherit the marker (see RUN_MARKER_VAR). This process is
    // single-threaded here, so changing the environment races with nothing.
    std::env::set_var(RUN_MARKER_VAR, marker);

    let ChildSpec {
        block,
        mut ctx,
        rate,
        niceness,
        display_freq,
        log_level,
        ..
    } = spec;
    ctx.owner = std::process::id();
    let _ = TEST_NAME.set(ctx.test_name().to_owned());
    let _ = CONTROL.set(ctx.control.clone());
    let channel = ctx
        .channel
        .clone()
        .expect("a forked Block always has a channel");
    logging::child_mode(channel, log_level);
    install_panic_hook();
    IN_BLOCK.with(|b| b.set(true));
    run_and_report(block, ctx, rate, niceness, display_freq);
    0
}

/// The part both runtimes share: the lifecycle, the final report, then the Block's drop
/// (which closes what it still holds: files, ports) in the Block's own process or thread.
fn run_and_report(
    mut block: Box<dyn Block>,
    mut ctx: Context,
    rate: Rate,
    niceness: Sched,
    display_freq: bool,
) {
    sys::low_timer_slack();
    let fin = run_lifecycle(&mut *block, &mut ctx, rate, niceness, display_freq);
    ctx.post(Lifecycle::Final(fin));
    // The Block and its Context (with the link modifiers) are dropped here, in the Block's
    // own process or thread, each under its own panic guard: a panicking destructor is
    // logged and goes no further.
    if catch_unwind(AssertUnwindSafe(move || drop(block))).is_err() {
        log::error!("panicked while being dropped: {}", take_panic());
    }
    if catch_unwind(AssertUnwindSafe(move || drop(ctx))).is_err() {
        log::error!(
            "a link modifier panicked while being dropped: {}",
            take_panic()
        );
    }
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
            let e = e.with_block(name.to_owned());
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
    niceness: Sched,
    display_freq: bool,
) -> BlockFinal {
    let name = ctx.name.clone();
    let mut pacer = Pacer::new(rate, display_freq);
    if let Rate::Hz(hz) = rate {
        ctx.control
            .slot(ctx.index)
            .period_ns
            .store((1e9 / hz).round() as u64, Ordering::Relaxed);
    }
    let mut end = match prepare(block, ctx, niceness, &name) {
        Err(end) => {
            let wire = match &end {
                EndKind::Failed(w) => w.clone(),
                EndKind::Panicked(m) => Error::new(
                    crate::ErrorKind::BlockFailed,
                    format!("panicked in prepare: {m}"),
                )
                .with_block(name.clone())
                .to_wire(),
                _ => unreachable!("prepare ends only by failure"),
            };
            ctx.post(Lifecycle::PrepareFailed(wire));
            Some(end)
        }
        Ok(()) => {
            ctx.control
                .slot(ctx.index)
                .state
                .store(state::READY, Ordering::Relaxed);
            ctx.post(Lifecycle::Ready);
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

    let control = ctx.control.clone();
    let slot = control.slot(ctx.index);
    slot.state.store(state::FINISHING, Ordering::Relaxed);
    let finish_error = match guarded(&name, || block.finish(ctx)) {
        Ok(()) => None,
        Err(EndKind::Failed(w)) => Some(w),
        Err(EndKind::Panicked(m)) => Some(
            Error::new(
                crate::ErrorKind::BlockFailed,
                format!("panicked in finish: {m}"),
            )
            .with_block(name.clone())
            .to_wire(),
        ),
        Err(_) => None,
    };
    for l in &ctx.outputs {
        l.ring.close_writer();
    }
    for l in &ctx.inputs {
        l.ring.close_reader();
    }
    let failed = finish_error.is_some() || matches!(end, EndKind::Failed(_) | EndKind::Panicked(_));
    slot.state.store(
        if failed { state::FAILED } else { state::DONE },
        Ordering::Relaxed,
    );
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
    sched: Sched,
    name: &str,
) -> Result<(), EndKind> {
    if let Some(n) = sched.niceness {
        if let Err(e) = sys::set_niceness(n) {
            // The coordinator checked the privilege before forking; warn if it still failed.
            log::warn!("could not set niceness {n}: {e}");
        }
    }
    // Settings::realtime: the memory is locked before `prepare` (what it allocates is locked
    // too), the priority is set after it. The coordinator checked the privileges; a kernel
    // that still refuses (a container without a real-time budget) fails the Block here,
    // before the start.
    let realtime_error = |what: &str, e: std::io::Error| {
        let msg = format!(
            "setting 'realtime': {what} failed although the privileges were checked before the start ({e}); a container or cgroup may forbid it (cpu.rt_runtime_us), or remove Settings::realtime"
        );
        EndKind::Failed(Error::config(msg).with_block(name.to_owned()).to_wire())
    };
    if sched.realtime.is_some() {
        crate::realtime::lock_memory().map_err(|e| realtime_error("mlockall", e))?;
    }
    guarded(name, || block.prepare(ctx))?;
    if let Some(p) = sched.realtime {
        crate::realtime::set_priority(p)
            .map_err(|e| realtime_error(&format!("SCHED_FIFO priority {p}"), e))?;
        log::debug!("real-time: SCHED_FIFO priority {p}, memory locked");
    }
    Ok(())
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
    let health = control.slot(slot);
    health.state.store(state::RUNNING, Ordering::Relaxed);
    let mut first = true;
    let mut woke_at = None;
    pacer.align_on(control.t0_mono());
    loop {
        if control.stopping() {
            return if ctx.stop_requested {
                EndKind::StopRequested
            } else {
                EndKind::Stopped
            };
        }
        // The health figures: a few relaxed stores into this Block's slot per loop, no
        // system call (the clock is read through the vDSO).
        let start = pacer.loop_started(woke_at.take());
        if first {
            first = false;
            health.first_loop.store(start, Ordering::Relaxed);
        }
        health.step_since.store(start, Ordering::Relaxed);
        let out = guarded(name, || block.step(ctx));
        let end = sys::monotonic_ns();
        pacer.loop_ended(end);
        health.step_since.store(0, Ordering::Relaxed);
        let took = end.saturating_sub(start);
        health.step_last.store(took, Ordering::Relaxed);
        if took > health.step_max.load(Ordering::Relaxed) {
            health.step_max.store(took, Ordering::Relaxed);
        }
        health.last_loop_end.store(end, Ordering::Relaxed);
        // This thread is the only writer: a plain store, not a locked read-modify-write.
        let loops = health.loops.load(Ordering::Relaxed);
        health.loops.store(loops + 1, Ordering::Relaxed);
        match out {
            Ok(Flow::Continue) => {}
            Ok(Flow::Stop) => {
                log::info!("ended; stopping the test");
                ctx.stop_test();
                return EndKind::Ended;
            }
            Err(end) => {
                ctx.request_stop(true);
                return end;
            }
        }
        woke_at = pacer.wait_next(&control, slot, end);
    }
}
