//! The coordinator: forks every Block, runs the barrier, waits, and runs the cleanup ladder.
//!
//! It stays single-threaded from start to end. Signals (SIGINT, SIGTERM, SIGHUP, SIGCHLD)
//! are blocked and read from a `signalfd`; Blocks' pipes are read in the same `poll` loop.
//! No `ctrlc` handler thread, no log-forwarding thread: nothing can hold a lock at fork.

use crate::child::{child_main, ChildSpec};
use crate::control::{Control, START_ABORT, START_GO, START_WAIT};
use crate::link::{codec::LabelCache, ring::Ring, InputLink, OutputLink};
use crate::proto::{level_from_u8, BlockFinal, Channel, ChildMsg, EndKind, FrameReader};
use crate::report::{BlockReport, LinkReport, Outcome, Report, StopCause};
use crate::test::{describe_graph, link_name, Resolved};
use crate::{logging, sys, Context, Error, ErrorKind, Result, Sample, Test};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

struct Child {
    name: String,
    kind: String,
    /// The Block's process (process runtime).
    pid: Option<Pid>,
    /// The Block's thread (threads runtime).
    thread: Option<std::thread::JoinHandle<()>>,
    pipe: Option<std::fs::File>,
    frames: FrameReader,
    ready: bool,
    fin: Option<BlockFinal>,
    prepare_error: Option<crate::error::WireError>,
    status: Option<WaitStatus>,
    signalled_by_us: bool,
    report_files: Vec<std::path::PathBuf>,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    Preparing,
    Running,
    Stopping,
    Terminating,
    Killing,
}

/// How Blocks are run.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// Each Block in its own forked process (the real thing).
    Processes,
    /// Each Block on a thread of this process (for unit tests of Blocks; no isolation).
    Threads,
}

pub(crate) fn run(test: Test, mode: Mode) -> Result<Report> {
    let resolved = test.check()?;
    let threads = sys::thread_count().ok_or_else(|| {
        Error::config("cannot read /proc/self/task to check that this process is single-threaded before forking; crabby needs /proc (Linux)")
    })?;
    if mode == Mode::Processes && threads > 1 {
        return Err(Error::config(format!(
            "Test::run was called while this process runs {threads} threads; forking Blocks now could leave one deadlocked on a lock held by another thread. Call run() from main() before starting any thread (GUI, async runtime, logging or signal-handler threads); tests that run a Test use a test binary with `harness = false` (see CONTRIBUTING.md), or Test::run_in_threads"
        )));
    }
    let graph = describe_graph(&test, &resolved);
    let Test {
        name: test_name,
        blocks,
        links,
        grace,
        log_file,
        console_level,
        file_level,
        ..
    } = test;

    logging::install();
    let log_path = match &log_file {
        Some(p) => match logging::coordinator_mode(console_level, Some((p, file_level))) {
            Ok(()) => Some(p.clone()),
            Err(e) => {
                let _ = logging::coordinator_mode(console_level, None);
                log::warn!(
                    "cannot write the log file {}: {e}; logging to the console only",
                    p.display()
                );
                None
            }
        },
        None => {
            let _ = logging::coordinator_mode(console_level, None);
            None
        }
    };
    let result = match build(&test_name, &graph, blocks, links, &resolved) {
        Ok(built) => match mode {
            Mode::Processes => run_processes(&test_name, built, &resolved, grace, log_path),
            Mode::Threads => run_threads(&test_name, built, &resolved, grace, log_path),
        },
        Err(e) => Err(e),
    };
    logging::coordinator_done();
    result
}

/// The shared state of a run, made before any Block starts.
struct Built {
    control: Arc<Control>,
    rings: Vec<(Ring, usize, usize)>,
    link_meta: Vec<(String, String, String)>,
    specs: Vec<Option<ChildSpec>>,
}

fn internal(what: &str, e: std::io::Error) -> Error {
    Error::io(format!("cannot {what}"), e)
}

/// Maps the control region and one ring per link, and gives each Block its own link ends.
fn build(
    test_name: &str,
    graph: &str,
    blocks: Vec<crate::test::Entry>,
    links: Vec<crate::test::LinkEntry>,
    resolved: &[Resolved],
) -> Result<Built> {
    let n = blocks.len();
    let control = Arc::new(Control::new(n).map_err(|e| internal("map the control region", e))?);

    // Rings, then each Block's link ends (made here, before fork, moved into its Context).
    let mut inputs: Vec<Vec<InputLink>> = (0..n).map(|_| Vec::new()).collect();
    let mut outputs: Vec<Vec<OutputLink>> = (0..n).map(|_| Vec::new()).collect();
    let mut rings = Vec::with_capacity(links.len());
    let mut link_meta = Vec::with_capacity(links.len());
    for (i, l) in links.into_iter().enumerate() {
        let name = link_name(&l.opts, i);
        let ring = Ring::new(
            l.opts.capacity_bytes,
            l.opts.capacity_samples,
            control.clone(),
            l.to.index,
        )
        .map_err(|e| internal("map a link buffer", e))?;
        let from = resolved[l.from.index].name.clone();
        let to = resolved[l.to.index].name.clone();
        outputs[l.from.index].push(OutputLink {
            name: name.clone(),
            to: to.clone(),
            ring: ring.clone(),
            overflow: l.opts.overflow,
            modifiers: l.opts.modifiers,
            gone_warned: false,
            drops_unlogged: 0,
            last_drop_log: None,
            buf: Vec::new(),
            ready: false,
            gave_up: false,
        });
        inputs[l.to.index].push(InputLink {
            name: name.clone(),
            from: from.clone(),
            ring: ring.clone(),
            cache: LabelCache::default(),
            latched: Sample::new(),
        });
        rings.push((ring, l.from.index, l.to.index));
        link_meta.push((name, from, to));
    }

    let me = nix::unistd::getpid();
    let mut specs = Vec::with_capacity(n);
    for (i, (e, r)) in blocks.into_iter().zip(resolved).enumerate() {
        let mut ctx = Context::new(
            r.name.clone(),
            i,
            control.clone(),
            std::mem::take(&mut inputs[i]),
            std::mem::take(&mut outputs[i]),
            None,
        )
        .with_meta(test_name, graph);
        ctx.pausable = r.pausable; // issue 12: pause
        specs.push(Some(ChildSpec {
            block: e.block,
            ctx,
            rate: r.rate,
            niceness: r.niceness,
            display_freq: r.display_freq,
            log_level: r.log_level,
            coordinator: me,
        }));
    }
    Ok(Built {
        control,
        rings,
        link_meta,
        specs,
    })
}

fn new_child(r: &Resolved, pid: Option<Pid>, pipe: Option<std::fs::File>) -> Child {
    Child {
        name: r.name.clone(),
        kind: r.kind.clone(),
        pid,
        thread: None,
        pipe,
        frames: FrameReader::default(),
        ready: false,
        fin: None,
        prepare_error: None,
        status: None,
        signalled_by_us: false,
        report_files: Vec::new(),
    }
}

fn run_processes(
    test_name: &str,
    built: Built,
    resolved: &[Resolved],
    grace: crate::block::Grace,
    log_path: Option<std::path::PathBuf>,
) -> Result<Report> {
    let Built {
        control,
        rings,
        link_meta,
        mut specs,
    } = built;
    let n = specs.len();

    // One pipe per Block for its log records and lifecycle messages.
    let mut pipes: Vec<Option<(OwnedFd, OwnedFd)>> = Vec::with_capacity(n);
    for _ in 0..n {
        let p = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| internal("create a pipe", e.into()))?;
        pipes.push(Some(p));
    }

    // Signals: blocked here and read from a signalfd (made before the forks; each child
    // closes its copy and resets its signals). The guard puts the mask, SIGCHLD's
    // disposition and the subreaper flag back however this function returns.
    let sigs = coordinator_signals();
    let guard = SignalGuard::install(&sigs);
    let mut sfd = Some(
        SignalFd::with_flags(&sigs, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| internal("create a signalfd", e.into()))?,
    );
    // The user's own children (not ours to reap), to tell them from orphaned grandchildren.
    let theirs = children_of_me();

    let _ = std::io::Write::flush(&mut std::io::stdout());
    let _ = std::io::Write::flush(&mut std::io::stderr());
    log::info!("starting test '{test_name}' with {n} Blocks");

    // FORK RULE: every Block is forked here, from the coordinator's main thread, before any
    // thread exists in this process (checked in `run`). Nothing below starts a thread.
    let mut children: Vec<Child> = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: this process is single-threaded (checked in `run`; nothing since has
        // started a thread), so the child inherits no lock held by another thread.
        match unsafe { sys::fork() } {
            Ok(None) => {
                // In the child: keep only our pipe's write end; close every other fd we own.
                let (_, w) = pipes[i].take().expect("pipe not yet used");
                pipes.clear();
                drop(sfd.take());
                std::mem::forget(guard);
                for c in children.iter_mut() {
                    c.pipe = None;
                }
                let mut spec = specs[i].take().expect("spec not yet used");
                spec.ctx.channel = Some(Arc::new(Channel::pipe(w)));
                child_main(spec);
            }
            Ok(Some(pid)) => {
                let (rd, _w) = pipes[i].take().expect("pipe not yet used");
                // `_w` (our copy of the write end) is closed here, so EOF means the child is gone.
                let _ = nix::fcntl::fcntl(
                    &rd,
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                );
                children.push(new_child(
                    &resolved[i],
                    Some(pid),
                    Some(std::fs::File::from(rd)),
                ));
            }
            Err(e) => {
                // Could not fork: stop what was started.
                log::error!("fork failed: {e}");
                control.header().start.store(START_ABORT, Ordering::SeqCst);
                sys::futex_wake(&control.header().start);
                control.set_stop();
                for pid in children.iter().filter_map(|c| c.pid) {
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                }
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("cannot fork Block {}: {e}", resolved[i].name),
                ));
            }
        }
    }
    // The Blocks now live in their own processes: their destructors run there, never here
    // (a Block's Drop may talk to hardware). Only the parent's copies of the contexts go.
    for spec in specs.into_iter().flatten() {
        std::mem::forget(spec.block);
    }

    let sfd = sfd.take().expect("made above");
    let mut ev = EventLoop::new(children, rings, control.clone(), grace);
    ev.run(&sfd);
    // Drain the signalfd so no blocked signal is delivered when the mask is restored.
    while let Ok(Some(_)) = sfd.read_signal() {}
    drop(sfd);
    reap_orphans(&theirs);
    drop(guard);

    ev.finish(test_name, &link_meta, log_path)
}

/// The threads runtime: each Block on a thread of this process, talking to this loop over
/// an in-process queue. Same lifecycle, barrier and stop protocol; no process isolation, no
/// signal handling, and a Block that hangs past the grace periods is abandoned (its thread
/// keeps running until the process exits) and reported as killed.
fn run_threads(
    test_name: &str,
    built: Built,
    resolved: &[Resolved],
    grace: crate::block::Grace,
    log_path: Option<std::path::PathBuf>,
) -> Result<Report> {
    let Built {
        control,
        rings,
        link_meta,
        specs,
    } = built;
    let (tx, rx) = std::sync::mpsc::channel();
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(crate::child::panic_hook));
    log::info!(
        "starting test '{test_name}' with {} Blocks on threads",
        specs.len()
    );
    let mut children = Vec::with_capacity(specs.len());
    for (i, spec) in specs.into_iter().enumerate() {
        let mut spec = spec.expect("spec not yet used");
        spec.ctx.channel = Some(Arc::new(Channel::queue(i, tx.clone())));
        let mut c = new_child(&resolved[i], None, None);
        let handle = std::thread::Builder::new()
            .name(resolved[i].name.clone())
            .spawn(move || crate::child::thread_main(spec))
            .map_err(|e| internal("start a Block thread", e))?;
        c.thread = Some(handle);
        children.push(c);
    }
    drop(tx);
    let mut ev = EventLoop::new(children, rings, control, grace);
    ev.run_threads(&rx);
    std::panic::set_hook(previous_hook);
    ev.finish(test_name, &link_meta, log_path)
}

fn append_report(path: &std::path::Path, report: &Report) {
    use std::io::Write;
    let text = format!("\n[report]\n{report}");
    match std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
    {
        Ok(mut f) => {
            let _ = f.write_all(text.as_bytes());
        }
        Err(e) => log::warn!("cannot append the report to {}: {e}", path.display()),
    }
}

fn coordinator_signals() -> SigSet {
    let mut sigs = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        sigs.add(s);
    }
    sigs
}

/// The coordinator's signal state for a run, restored on drop: the mask, SIGCHLD's
/// disposition (set to default, so an ignored SIGCHLD cannot make children vanish unreaped)
/// and the child-subreaper flag.
struct SignalGuard {
    old_mask: SigSet,
    old_chld: Option<nix::sys::signal::SigAction>,
    old_subreaper: bool,
}

impl SignalGuard {
    fn install(sigs: &SigSet) -> Self {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler};
        let mut old_mask = SigSet::empty();
        let _ =
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(sigs), Some(&mut old_mask));
        let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        // SAFETY: SIG_DFL installs no handler code.
        let old_chld = unsafe { sigaction(Signal::SIGCHLD, &dfl) }.ok();
        let old_subreaper = nix::sys::prctl::get_child_subreaper().unwrap_or(false);
        let _ = nix::sys::prctl::set_child_subreaper(true);
        SignalGuard {
            old_mask,
            old_chld,
            old_subreaper,
        }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        let _ = nix::sys::prctl::set_child_subreaper(self.old_subreaper);
        if let Some(old) = &self.old_chld {
            // SAFETY: restores the disposition the program had before the run.
            let _ = unsafe { nix::sys::signal::sigaction(Signal::SIGCHLD, old) };
        }
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old_mask), None);
    }
}

/// Pids of this process's children, from `/proc`.
fn children_of_me() -> Vec<i32> {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().nth(1))
                    .is_some_and(|p| p == me)
            })
        })
        .collect()
}

/// Kills and reaps the processes a Block started that outlived it (reparented to us as
/// the subreaper), leaving the program's own children alone.
fn reap_orphans(theirs: &[i32]) {
    for pid in children_of_me() {
        if !theirs.contains(&pid) {
            log::warn!("process {pid}, started by a Block, outlived it: killed");
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
    }
}

struct EventLoop {
    children: Vec<Child>,
    rings: Vec<(Ring, usize, usize)>,
    control: Arc<Control>,
    phase: Phase,
    cause: Option<StopCause>,
    interrupted: bool,
    stop_at: Option<u64>,
    deadline: Option<u64>,
    grace: crate::block::Grace,
    t0: Option<u64>,
}

impl EventLoop {
    fn new(
        children: Vec<Child>,
        rings: Vec<(Ring, usize, usize)>,
        control: Arc<Control>,
        grace: crate::block::Grace,
    ) -> Self {
        EventLoop {
            children,
            rings,
            control,
            phase: Phase::Preparing,
            cause: None,
            interrupted: false,
            stop_at: None,
            deadline: None,
            grace,
            t0: None,
        }
    }

    fn run(&mut self, sfd: &SignalFd) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if self.children.iter().all(|c| c.status.is_some()) {
                // Every child reaped: read what is left in the pipes, then leave.
                for i in 0..self.children.len() {
                    self.read_pipe(i, &mut buf);
                }
                return;
            }
            let now = sys::monotonic_ns();
            if let Some(d) = self.deadline {
                if now >= d {
                    self.escalate();
                    continue;
                }
            }
            let timeout_ms = match self.deadline {
                Some(d) => ((d.saturating_sub(now)) / 1_000_000 + 1).min(1000) as u16,
                None => 1000,
            };
            let mut idx = Vec::with_capacity(self.children.len());
            let (sig_ready, ready_pipes) = {
                let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
                for (i, c) in self.children.iter().enumerate() {
                    if let Some(p) = &c.pipe {
                        fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
                        idx.push(i);
                    }
                }
                let _ = poll(&mut fds, PollTimeout::from(timeout_ms));
                let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                let sig = ready(&fds[0]);
                let pipes: Vec<usize> = fds[1..]
                    .iter()
                    .zip(&idx)
                    .filter(|(f, _)| ready(f))
                    .map(|(_, i)| *i)
                    .collect();
                (sig, pipes)
            };
            for i in ready_pipes {
                self.read_pipe(i, &mut buf);
            }
            if sig_ready {
                while let Ok(Some(info)) = sfd.read_signal() {
                    match Signal::try_from(info.ssi_signo as i32) {
                        Ok(Signal::SIGCHLD) => self.reap(&mut buf),
                        Ok(s) => self.on_interrupt(s),
                        Err(_) => {}
                    }
                }
            }
            self.reap(&mut buf);
        }
    }

    fn run_threads(&mut self, rx: &std::sync::mpsc::Receiver<(usize, ChildMsg)>) {
        let zero = Pid::from_raw(0);
        loop {
            for i in 0..self.children.len() {
                let done = self.children[i]
                    .thread
                    .as_ref()
                    .is_some_and(|h| h.is_finished());
                if done && self.children[i].status.is_none() {
                    let h = self.children[i].thread.take().expect("checked");
                    while let Ok((j, msg)) = rx.try_recv() {
                        self.on_msg(j, msg);
                    }
                    let _ = h.join();
                    self.children[i].status = Some(WaitStatus::Exited(zero, 0));
                    self.on_exit(i);
                }
            }
            if self.children.iter().all(|c| c.status.is_some()) {
                while let Ok((j, msg)) = rx.try_recv() {
                    self.on_msg(j, msg);
                }
                return;
            }
            let now = sys::monotonic_ns();
            if let Some(d) = self.deadline {
                if now >= d {
                    // Threads cannot be killed: past the grace, the rest are abandoned.
                    for i in 0..self.children.len() {
                        if self.children[i].status.is_none() {
                            log::warn!(
                                "{} did not finish within the grace period: abandoned",
                                self.children[i].name
                            );
                            self.children[i].signalled_by_us = true;
                            self.children[i].status =
                                Some(WaitStatus::Signaled(zero, Signal::SIGKILL, false));
                            self.children[i].thread = None;
                            self.on_exit(i);
                        }
                    }
                    continue;
                }
            }
            let wait = self
                .deadline
                .map_or(5_000_000, |d| d.saturating_sub(now).min(5_000_000));
            if let Ok((j, msg)) = rx.recv_timeout(std::time::Duration::from_nanos(wait)) {
                self.on_msg(j, msg);
            }
        }
    }

    /// A Block's process or thread is gone: close its link ends so its peers never wait on it.
    fn on_exit(&mut self, i: usize) {
        for (ring, from, to) in &self.rings {
            if *from == i {
                ring.close_writer();
            }
            if *to == i {
                ring.close_reader();
            }
        }
        let name = self.children[i].name.clone();
        let clean = self.children[i]
            .fin
            .as_ref()
            .is_some_and(|f| !matches!(f.end, EndKind::Failed(_) | EndKind::Panicked(_)));
        if clean {
            self.begin_stop(StopCause::Block(name));
        } else {
            self.begin_stop(StopCause::BlockFailed(name));
        }
    }

    fn finish(
        &self,
        test_name: &str,
        link_meta: &[(String, String, String)],
        log_path: Option<std::path::PathBuf>,
    ) -> Result<Report> {
        let report = self.report(test_name, &self.rings, link_meta, log_path);
        log::info!("{}", report.to_string().trim_end());
        for c in &self.children {
            for f in &c.report_files {
                append_report(f, &report);
            }
        }
        self.result(report)
    }

    fn read_pipe(&mut self, i: usize, buf: &mut [u8]) {
        // At most 16 reads per call, so a Block flooding logs cannot starve signal handling.
        for _ in 0..16 {
            let Some(p) = self.children[i].pipe.as_mut() else {
                return;
            };
            match p.read(buf) {
                Ok(0) => {
                    self.children[i].pipe = None;
                    break;
                }
                Ok(k) => self.children[i].frames.feed(&buf[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.children[i].pipe = None;
                    break;
                }
            }
        }
        while let Some(msg) = self.children[i].frames.next_msg() {
            self.on_msg(i, msg);
        }
    }

    fn on_msg(&mut self, i: usize, msg: ChildMsg) {
        let name = self.children[i].name.clone();
        match msg {
            ChildMsg::Log { level, t, msg } => {
                logging::forward(&name, level_from_u8(level), t, &msg)
            }
            ChildMsg::Ready => {
                self.children[i].ready = true;
                if self.phase == Phase::Preparing && self.children.iter().all(|c| c.ready) {
                    self.start();
                }
            }
            ChildMsg::PrepareFailed(e) => {
                self.children[i].prepare_error = Some(e);
                self.begin_stop(StopCause::PrepareFailed(name));
            }
            ChildMsg::StopRequest { failed: true } => {
                self.begin_stop(StopCause::BlockFailed(name));
            }
            ChildMsg::StopRequest { failed: false } => {
                self.begin_stop(StopCause::Block(name));
            }
            ChildMsg::Final(f) => {
                if matches!(f.end, EndKind::Failed(_) | EndKind::Panicked(_)) {
                    // It asked for the stop before its final word: say it failed.
                    if self.cause == Some(StopCause::Block(name.clone())) {
                        self.cause = Some(StopCause::BlockFailed(name.clone()));
                    }
                    self.begin_stop(StopCause::BlockFailed(name));
                }
                self.children[i].fin = Some(f);
            }
            ChildMsg::AppendReport(path) => self.children[i].report_files.push(path),
        }
    }

    fn start(&mut self) {
        let h = self.control.header();
        let t0 = sys::monotonic_ns();
        h.t0_real.store(sys::realtime_ns(), Ordering::SeqCst);
        h.t0_mono.store(t0, Ordering::SeqCst);
        logging::set_t0(t0);
        self.t0 = Some(t0);
        h.start.store(START_GO, Ordering::SeqCst);
        sys::futex_wake(&h.start);
        self.phase = Phase::Running;
        log::info!("all Blocks ready: started");
    }

    fn begin_stop(&mut self, cause: StopCause) {
        if matches!(self.phase, Phase::Preparing | Phase::Running) {
            let h = self.control.header();
            if h.start.load(Ordering::SeqCst) == START_WAIT {
                h.start.store(START_ABORT, Ordering::SeqCst);
                sys::futex_wake(&h.start);
            }
            self.control.set_stop();
            let now = sys::monotonic_ns();
            self.stop_at = Some(now);
            self.deadline = Some(now.saturating_add(sys::ns(self.grace.finish)));
            self.phase = Phase::Stopping;
            let why = match &cause {
                StopCause::Block(b) => format!("{b} ended the test"),
                StopCause::PrepareFailed(b) => format!("{b} failed to prepare"),
                StopCause::BlockFailed(b) => format!("{b} failed"),
                StopCause::Interrupted => "interrupted".to_owned(),
            };
            log::info!("stopping: {why}");
            self.cause = Some(cause);
        } else if self.cause.is_none() {
            self.cause = Some(cause);
        }
    }

    fn on_interrupt(&mut self, s: Signal) {
        self.interrupted = true;
        match self.phase {
            Phase::Preparing | Phase::Running => {
                log::warn!(
                    "{s} received: stopping gracefully (press Ctrl+C again to kill the Blocks)"
                );
                self.begin_stop(StopCause::Interrupted);
                self.cause = Some(StopCause::Interrupted);
            }
            Phase::Stopping => {
                log::warn!("{s} received again: terminating the Blocks now");
                self.deadline = Some(0);
            }
            Phase::Terminating => self.deadline = Some(0),
            Phase::Killing => {}
        }
    }

    /// Next step of the cleanup ladder.
    fn escalate(&mut self) {
        let alive: Vec<usize> = (0..self.children.len())
            .filter(|&i| self.children[i].status.is_none())
            .collect();
        match self.phase {
            Phase::Stopping => {
                self.signal(
                    &alive,
                    Signal::SIGTERM,
                    "did not finish within the grace period",
                );
                self.phase = Phase::Terminating;
                self.deadline =
                    Some(sys::monotonic_ns().saturating_add(sys::ns(self.grace.terminate)));
            }
            Phase::Terminating | Phase::Killing => {
                self.signal(&alive, Signal::SIGKILL, "still alive after SIGTERM");
                self.phase = Phase::Killing;
                // SIGKILL cannot be ignored: the next SIGCHLD reaps them. Re-send every 100 ms.
                self.deadline = Some(sys::monotonic_ns() + 100_000_000);
            }
            Phase::Preparing | Phase::Running => self.deadline = None,
        }
    }

    /// One rung of the cleanup ladder: `sig` to each of these Blocks' processes.
    fn signal(&mut self, which: &[usize], sig: Signal, why: &str) {
        for &i in which {
            log::warn!("{} {why}: {sig}", self.children[i].name);
            self.children[i].signalled_by_us = true;
            if let Some(pid) = self.children[i].pid {
                let _ = kill(pid, sig);
            }
        }
    }

    fn reap(&mut self, buf: &mut [u8]) {
        // Each Block by its pid: the program's own children are not ours to reap, and a
        // Block's orphaned children are reaped at the end (`reap_orphans`).
        for i in 0..self.children.len() {
            if self.children[i].status.is_some() {
                continue;
            }
            let Some(pid) = self.children[i].pid else {
                continue;
            };
            {
                let status = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) => continue,
                    Ok(status) => status,
                    // Reaped by someone else: gone, with no status to tell how.
                    Err(nix::errno::Errno::ECHILD) => WaitStatus::Exited(pid, -1),
                    Err(_) => continue,
                };
                {
                    self.read_pipe(i, buf);
                    self.children[i].status = Some(status);
                    if !self.children[i].fin.as_ref().is_some_and(|f| {
                        !matches!(f.end, EndKind::Failed(_) | EndKind::Panicked(_))
                    }) {
                        let name = &self.children[i].name;
                        if let WaitStatus::Signaled(_, sig, _) = status {
                            if !self.children[i].signalled_by_us {
                                log::error!("{name} died of signal {sig}");
                            }
                        } else if self.children[i].fin.is_none() {
                            log::error!("{name} exited without reporting ({status:?})");
                        }
                    }
                    self.on_exit(i);
                }
            }
        }
    }

    fn report(
        &self,
        test: &str,
        rings: &[(Ring, usize, usize)],
        meta: &[(String, String, String)],
        log_file: Option<std::path::PathBuf>,
    ) -> Report {
        let blocks =
            self.children
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let outcome = match (&c.fin, c.status) {
                        (
                            _,
                            Some(WaitStatus::Signaled(_, Signal::SIGTERM | Signal::SIGKILL, _)),
                        ) if c.signalled_by_us => Outcome::Killed,
                        (_, Some(WaitStatus::Signaled(_, s, _))) => Outcome::Signaled(s as i32),
                        (Some(f), _) => match &f.end {
                            EndKind::Ended => Outcome::Ended,
                            EndKind::StopRequested => Outcome::StopRequested,
                            EndKind::Stopped => Outcome::Stopped,
                            EndKind::NotStarted => Outcome::NotStarted,
                            EndKind::Failed(e) => Outcome::Failed(e.description.clone()),
                            EndKind::Panicked(m) => Outcome::Panicked(m.clone()),
                        },
                        (None, s) => Outcome::Crashed(format!("{s:?}")),
                    };
                    // A killed Block sent no final message: its loop counter is in its slot.
                    let loops = self.control.slot(i).loops.load(Ordering::Relaxed);
                    BlockReport {
                        name: c.name.clone(),
                        kind: c.kind.clone(),
                        outcome,
                        finish_ok: c.fin.as_ref().is_some_and(|f| f.finish_error.is_none()),
                        finish_error: c.fin.as_ref().and_then(|f| f.finish_error.clone()),
                        loops: c.fin.as_ref().map_or(loops, |f| f.loops),
                        mean_freq: c.fin.as_ref().and_then(|f| f.mean_freq),
                        jitter_p99_us: c.fin.as_ref().and_then(|f| f.jitter_p99_us),
                        max_late_us: c.fin.as_ref().and_then(|f| f.max_late_us),
                        missed_deadlines: c.fin.as_ref().map_or(0, |f| f.missed_deadlines),
                    }
                })
                .collect();
        let links = rings
            .iter()
            .zip(meta)
            .map(|((ring, _, _), (name, from, to))| {
                let s = ring.stats();
                LinkReport {
                    name: name.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    sent: s.pushed,
                    received: s.consumed,
                    dropped: s.dropped,
                    undelivered: s.undeliverable,
                    unread: s.pending,
                }
            })
            .collect();
        let end = sys::monotonic_ns();
        Report {
            test: test.to_owned(),
            cause: self.cause.clone(),
            started_at: self
                .t0
                .map(|_| sys::iso8601(self.control.header().t0_real.load(Ordering::Relaxed))),
            duration_s: match (self.t0, self.stop_at) {
                (Some(t0), Some(s)) => s.saturating_sub(t0) as f64 * 1e-9,
                _ => 0.0,
            },
            cleanup_s: self
                .stop_at
                .map_or(0.0, |s| end.saturating_sub(s) as f64 * 1e-9),
            incidents: crate::pause::incidents(
                &self.control,
                &self
                    .children
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>(),
            ), // issue 12: pause
            blocks,
            links,
            log_file,
        }
    }

    fn result(&self, report: Report) -> Result<Report> {
        if let Some(c) = self.children.iter().find(|c| c.prepare_error.is_some()) {
            let e = c.prepare_error.clone().expect("checked");
            let kind = e.kind;
            let mut err = Error::new(kind, format!("prepare failed: {}", e.description))
                .with_origin(c.name.clone());
            if kind == ErrorKind::Internal {
                err = Error::new(ErrorKind::BlockFailed, err.description().to_owned())
                    .with_origin(c.name.clone());
            }
            return Err(err.with_report(report));
        }
        if self.interrupted {
            return Err(Error::new(
                ErrorKind::Interrupted,
                "the test was interrupted by the user (Ctrl+C or a termination signal)",
            )
            .with_report(report));
        }
        if let Some(b) = report.blocks.iter().find(|b| b.outcome.is_failure()) {
            let err = Error::new(ErrorKind::BlockFailed, b.outcome.to_string())
                .with_origin(b.name.clone());
            return Err(err.with_report(report));
        }
        // A finish that failed (a motor not stopped, a file not written) fails the run too.
        if let Some(b) = report.blocks.iter().find(|b| b.finish_error.is_some()) {
            let e = b.finish_error.clone().unwrap_or_default();
            let err = Error::new(ErrorKind::BlockFailed, format!("finish failed: {e}"))
                .with_origin(b.name.clone());
            return Err(err.with_report(report));
        }
        Ok(report)
    }
}
