//! The coordinator: forks every Block, runs the barrier, waits, and runs the cleanup ladder.
//!
//! It stays single-threaded from start to end. Signals (SIGINT, SIGTERM, SIGHUP, SIGCHLD)
//! are blocked and read from a `signalfd`; Blocks' pipes are read in the same `poll` loop.
//! No `ctrlc` handler thread, no log-forwarding thread: nothing can hold a lock at fork.

use crate::child::{child_main, ChildSpec};
use crate::control::{Control, START_ABORT, START_GO, START_WAIT};
use crate::link::{codec::LabelCache, ring::Ring, InputLink, OutputLink};
use crate::process::{ChildSet, Exit};
use crate::proto::{
    level_from_u8, BlockFinal, Channel, EndKind, FrameReader, Lifecycle, QueueItem,
};
use crate::report::{BlockReport, LinkReport, Outcome, Report, StopCause};
use crate::test::{describe_graph, link_name, Resolved};
use crate::{logging, sys, Context, Error, ErrorKind, Result, Sample, Test};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

struct Child {
    name: String,
    kind: String,
    /// The Block's thread (threads runtime).
    thread: Option<std::thread::JoinHandle<()>>,
    /// The read end of the Block's log pipe (process runtime).
    pipe: Option<std::fs::File>,
    frames: FrameReader,
    /// Bytes of the Block's mailbox read so far.
    mail_from: usize,
    ready: bool,
    fin: Option<BlockFinal>,
    prepare_error: Option<crate::error::WireError>,
    status: Option<Exit>,
    report_files: Vec<std::path::PathBuf>,
    notes: Vec<String>,
}

impl Child {
    fn signalled_by_us(&self) -> bool {
        matches!(
            self.status,
            Some(Exit::Signal {
                sent_by_us: true,
                ..
            })
        )
    }
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
    if !logging::install() {
        return Err(Error::config(
            "a logger was installed before Test::run (env_logger::init() or similar): crabby routes every Block's log records from its own process to the console and the log file through its own logger, and cannot while another one is installed. Remove that logger's init; log with the `log` macros as before (crabby writes them, also outside a run) and choose levels with Test::log_levels",
        ));
    }
    let graph = describe_graph(&test, &resolved);
    // The run documents' view of the graph, taken before the Blocks move into their specs.
    let doc_graph = test
        .documents
        .is_some()
        .then(|| crate::documents::graph_info(&test, &resolved));
    let Test {
        name: test_name,
        blocks,
        links,
        grace,
        log_file,
        console_level,
        file_level,
        prepare_timeout,
        fail_on_loss,
        silent_link_after,
        documents,
        provenance,
        metadata,
        ..
    } = test;
    let limits = Limits {
        prepare_timeout,
        fail_on_loss,
        silent_after_ns: sys::ns(silent_link_after),
        step_timeouts: resolved.iter().map(|r| r.step_timeout).collect(),
    };

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
    // The stop keys are blocked from here on (read later from the signalfd like any Ctrl+C
    // during the run), so a Ctrl+C in the few milliseconds before the event loop takes over
    // cannot kill the program between its start and stop documents, nor half-way through
    // building the links.
    let early_mask = (mode == Mode::Processes).then(|| EarlyMask::block(&coordinator_signals()));
    // The start document, before anything is forked: without it the run does not start.
    let mut docs = match (documents, doc_graph) {
        (Some(path), Some((graph_info, links_json))) => {
            let info = crate::documents::StartInfo {
                test: &test_name,
                provenance: provenance.as_ref(),
                metadata: &metadata,
                graph: graph_info,
                links_json,
                log_file: log_path.as_deref(),
            };
            match crate::documents::Writer::start(path, info) {
                Ok(w) => Some(w),
                Err(e) => {
                    logging::coordinator_done();
                    return Err(e);
                }
            }
        }
        _ => None,
    };
    let result = match build(&test_name, &graph, blocks, links, &resolved, docs.is_some()) {
        Ok(built) => match mode {
            Mode::Processes => run_processes(
                &test_name, built, &resolved, grace, log_path, limits, &mut docs,
            ),
            Mode::Threads => run_threads(
                &test_name, built, &resolved, grace, log_path, limits, &mut docs,
            ),
        },
        Err(e) => Err(e),
    };
    // The run ended before its event loop (a failed fork, no memory for the links): the
    // stop document says so.
    if let Some(mut w) = docs.take() {
        w.stop(result.as_ref().ok(), result.as_ref().err());
    }
    drop(early_mask);
    logging::coordinator_done();
    result
}

/// The stop keys blocked from the start document to the end of `run` (see there); on drop,
/// the keys that came after the run's own signalfd was closed are discarded (they were
/// meant for the test, as in `run_processes`) and the program's mask is put back.
struct EarlyMask {
    sigs: SigSet,
    old: SigSet,
}

impl EarlyMask {
    fn block(sigs: &SigSet) -> Self {
        let mut old = SigSet::empty();
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(sigs), Some(&mut old));
        EarlyMask { sigs: *sigs, old }
    }
}

impl Drop for EarlyMask {
    fn drop(&mut self) {
        // Only the signals this guard blocked (not those the program blocked itself).
        let mut ours = SigSet::empty();
        for s in self.sigs.iter() {
            if !self.old.contains(s) {
                ours.add(s);
            }
        }
        if let Ok(fd) = SignalFd::with_flags(&ours, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        {
            while let Ok(Some(_)) = fd.read_signal() {}
        }
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

/// The watchdogs' limits.
struct Limits {
    prepare_timeout: std::time::Duration,
    fail_on_loss: bool,
    silent_after_ns: u64,
    step_timeouts: Vec<Option<std::time::Duration>>,
}

/// The shared state of a run, made before any Block starts.
struct Built {
    health: Arc<crate::health::HealthView>,
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
    documents: bool,
) -> Result<Built> {
    let n = blocks.len();
    let control = Arc::new(Control::new(n).map_err(|e| internal("map the control region", e))?);

    // Rings, then each Block's link ends (made here, before fork, moved into its Context).
    let mut inputs: Vec<Vec<InputLink>> = (0..n).map(|_| Vec::new()).collect();
    let mut outputs: Vec<Vec<OutputLink>> = (0..n).map(|_| Vec::new()).collect();
    let mut rings = Vec::with_capacity(links.len());
    let mut link_meta = Vec::with_capacity(links.len());
    let mut link_infos = Vec::with_capacity(links.len());
    for (i, l) in links.into_iter().enumerate() {
        let name = link_name(&l.opts, i);
        let ring = Ring::new(
            l.opts.capacity_bytes,
            l.opts.capacity_samples,
            control.clone(),
            l.to.index,
        )
        .map_err(|e| internal("map a link buffer", e))?;
        if l.opts.overflow == crate::Overflow::DropOldest {
            ring.allow_drops();
        }
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
        link_infos.push(crate::health::LinkInfo {
            name: name.clone(),
            from: l.from.index,
            to: l.to.index,
            ring: ring.clone(),
            lossless: l.opts.overflow == crate::Overflow::Block,
        });
        rings.push((ring, l.from.index, l.to.index));
        link_meta.push((name, from, to));
    }
    let health = Arc::new(crate::health::HealthView {
        control: control.clone(),
        blocks: resolved.iter().map(|r| r.name.clone()).collect(),
        links: link_infos,
    });

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
        ctx.documents = documents;
        ctx.health = Some(health.clone());
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
        health,
    })
}

fn new_child(r: &Resolved, pipe: Option<std::fs::File>) -> Child {
    Child {
        name: r.name.clone(),
        kind: r.kind.clone(),
        thread: None,
        pipe,
        frames: FrameReader::default(),
        mail_from: 0,
        ready: false,
        fin: None,
        prepare_error: None,
        status: None,
        report_files: Vec::new(),
        notes: Vec::new(),
    }
}

/// Forgets the parts of a Block's spec that hold the user's code (the Block, its links'
/// modifiers): their destructors run only in the Block's own process. Crabby's own parts
/// (link ends, labels) are freed here.
fn forget_foreign(spec: ChildSpec) {
    let ChildSpec { block, mut ctx, .. } = spec;
    std::mem::forget(block);
    for o in &mut ctx.outputs {
        std::mem::forget(std::mem::take(&mut o.modifiers));
    }
    drop(ctx);
}

fn run_processes(
    test_name: &str,
    built: Built,
    resolved: &[Resolved],
    grace: crate::block::Grace,
    log_path: Option<std::path::PathBuf>,
    limits: Limits,
    docs: &mut Option<crate::documents::Writer>,
) -> Result<Report> {
    let Built {
        control,
        rings,
        link_meta,
        mut specs,
        health,
    } = built;
    let n = specs.len();
    let me = nix::unistd::getpid();
    let marker = format!("{}-{}", me.as_raw(), sys::monotonic_ns());

    // FORK RULE: the sentinel and every Block are forked below, from the coordinator's main
    // thread, before any thread exists in this process (checked in `run`, and again by
    // `sys::fork_child` before each fork). Nothing in the coordinator starts a thread.
    //
    // The sentinel first, so it holds none of the Blocks' pipes: it outlives a `kill -9` of
    // this process just long enough to kill whatever the Blocks started.
    let sentinel = match sys::fork_child(|| sentinel_main(me, &marker)) {
        Ok(pid) => Some(pid),
        Err(e) => {
            log::warn!("cannot start the sentinel ({e}): processes started by Blocks could survive a kill -9 of this program");
            None
        }
    };

    // One pipe per Block for its log records (lifecycle messages go through its mailbox).
    let mut pipes: Vec<Option<(OwnedFd, OwnedFd)>> = Vec::with_capacity(n);
    for _ in 0..n {
        match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok(p) => pipes.push(Some(p)),
            Err(e) => {
                stop_sentinel(sentinel);
                return Err(internal("create a pipe", e.into()));
            }
        }
    }

    // Signals: blocked here and read from a signalfd (made before the forks; each child
    // closes its copy and resets its signals). The guard puts the mask, the dispositions of
    // SIGCHLD and SIGPIPE and the subreaper flag back however this function returns; it is
    // dropped only after the report is written, so no Ctrl+C kills the program inside `run`.
    let sigs = coordinator_signals();
    let guard = SignalGuard::install(&sigs);
    let mut sfd = match SignalFd::with_flags(&sigs, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
    {
        Ok(fd) => Some(fd),
        Err(e) => {
            stop_sentinel(sentinel);
            return Err(internal("create a signalfd", e.into()));
        }
    };
    // The user's own children (not ours to reap), to tell them from orphaned grandchildren.
    let theirs = children_of_me();

    log::info!("starting test '{test_name}' with {n} Blocks");
    let mut blocks = ChildSet::new();
    let mut children: Vec<Child> = Vec::with_capacity(n);
    for i in 0..n {
        // The body runs only in the child. It takes what the child owns (its spec, its
        // pipe's write end) and closes its copies of the coordinator's descriptors; in this
        // process the closure only borrowed them.
        let forked = sys::fork_child(|| {
            let (_, wr) = pipes[i].take().expect("pipe not yet used");
            pipes.clear();
            drop(sfd.take());
            for c in children.iter_mut() {
                c.pipe = None;
            }
            let mut spec = specs[i].take().expect("spec not yet used");
            spec.ctx.channel = Some(Arc::new(Channel::pipe(wr, control.clone(), i)));
            child_main(spec, &marker)
        });
        match forked {
            Ok(pid) => {
                let (rd, _w) = pipes[i].take().expect("pipe not yet used");
                // `_w` (our copy of the write end) is closed here, so EOF means the Block
                // and every child of it are gone.
                let _ = nix::fcntl::fcntl(
                    &rd,
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                );
                blocks.adopt(resolved[i].name.clone(), pid);
                children.push(new_child(&resolved[i], Some(std::fs::File::from(rd))));
                // The Block now lives in its own process: its destructors run there, never
                // here (a Block's Drop may talk to hardware).
                forget_foreign(specs[i].take().expect("spec not yet used"));
            }
            Err(e) => {
                // Could not fork: stop what was started.
                log::error!("fork failed: {e}");
                control.header().start.store(START_ABORT, Ordering::SeqCst);
                sys::futex_wake(&control.header().start);
                control.set_stop();
                blocks.kill_all();
                stop_sentinel(sentinel);
                for spec in specs.into_iter().flatten() {
                    forget_foreign(spec);
                }
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("cannot fork Block {}: {e}", resolved[i].name),
                ));
            }
        }
    }

    let sfd = sfd.take().expect("made above");
    let mut ev = EventLoop::new(children, rings, control.clone(), grace, health, limits);
    ev.procs = Some(blocks);
    ev.docs = docs.take();
    ev.run(&sfd);
    stop_sentinel(sentinel);
    reap_orphans(&theirs);
    let result = ev.finish(test_name, &link_meta, log_path);
    // Only now, with the report logged and appended: discard the signals that came during
    // the end of the run (a late Ctrl+C was meant for the test), then give the program its
    // signal state back.
    while let Ok(Some(_)) = sfd.read_signal() {}
    drop(sfd);
    drop(guard);
    result
}

/// The sentinel: a small process that outlives a `kill -9` of the coordinator just long
/// enough to kill every process the Blocks started (the Blocks themselves die with the
/// coordinator by their parent-death signal, but what they start with `Command::spawn`
/// does not). They are found by the run marker every Block puts in its environment
/// (`child::RUN_MARKER_VAR`), which their children inherit.
fn sentinel_main(coordinator: Pid, marker: &str) -> i32 {
    let mut wait_for = SigSet::empty();
    wait_for.add(Signal::SIGUSR1); // the coordinator died (parent-death signal)
    wait_for.add(Signal::SIGUSR2); // the run ended normally
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&wait_for), None);
    for s in [
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGTSTP,
        Signal::SIGTERM,
    ] {
        sys::set_signal(s, sys::Disposition::Ignore);
    }
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGUSR1);
    let died = if nix::unistd::getppid() != coordinator {
        true
    } else {
        matches!(wait_for.wait(), Ok(Signal::SIGUSR1))
    };
    if died {
        let needle = format!("{}={marker}", crate::child::RUN_MARKER_VAR);
        // A few sweeps: a process may be between fork and exec when first seen.
        for _ in 0..5 {
            let found = marked_processes(&needle);
            if found.is_empty() {
                break;
            }
            for pid in found {
                let _ = kill(pid, Signal::SIGKILL);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    0
}

/// Processes whose environment holds `needle` (`NAME=value`).
fn marked_processes(needle: &str) -> Vec<Pid> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == needle.as_bytes()))
        })
        .map(Pid::from_raw)
        .collect()
}

/// Tells the sentinel the run ended normally, and reaps it.
fn stop_sentinel(sentinel: Option<Pid>) {
    if let Some(pid) = sentinel {
        let _ = kill(pid, Signal::SIGUSR2);
        let _ = waitpid(pid, None);
    }
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
    limits: Limits,
    docs: &mut Option<crate::documents::Writer>,
) -> Result<Report> {
    let Built {
        control,
        rings,
        link_meta,
        specs,
        health,
    } = built;
    let (tx, rx) = std::sync::mpsc::channel();
    crate::child::install_panic_hook();
    log::info!(
        "starting test '{test_name}' with {} Blocks on threads",
        specs.len()
    );
    let mut children = Vec::with_capacity(specs.len());
    for (i, spec) in specs.into_iter().enumerate() {
        let mut spec = spec.expect("spec not yet used");
        spec.ctx.channel = Some(Arc::new(Channel::queue(i, tx.clone(), control.clone())));
        let mut c = new_child(&resolved[i], None);
        let handle = std::thread::Builder::new()
            .name(resolved[i].name.clone())
            .spawn(move || crate::child::thread_main(spec))
            .map_err(|e| internal("start a Block thread", e))?;
        c.thread = Some(handle);
        children.push(c);
    }
    drop(tx);
    let mut ev = EventLoop::new(children, rings, control, grace, health, limits);
    ev.docs = docs.take();
    ev.run_threads(&rx);
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
        Signal::SIGQUIT,
        Signal::SIGTSTP,
        Signal::SIGCHLD,
    ] {
        sigs.add(s);
    }
    sigs
}

/// The coordinator's signal state for a run, restored on drop: the mask, SIGCHLD's
/// disposition (set to default, so an ignored SIGCHLD cannot make children vanish unreaped),
/// SIGPIPE's (ignored, so a console closed under us is an error to note, never a death) and
/// the child-subreaper flag.
struct SignalGuard {
    old_mask: SigSet,
    old_chld: Option<nix::sys::signal::SigAction>,
    old_pipe: Option<nix::sys::signal::SigAction>,
    old_subreaper: bool,
}

impl SignalGuard {
    fn install(sigs: &SigSet) -> Self {
        let mut old_mask = SigSet::empty();
        let _ =
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(sigs), Some(&mut old_mask));
        let old_chld = sys::set_signal(Signal::SIGCHLD, sys::Disposition::Default);
        let old_pipe = sys::set_signal(Signal::SIGPIPE, sys::Disposition::Ignore);
        let old_subreaper = nix::sys::prctl::get_child_subreaper().unwrap_or(false);
        let _ = nix::sys::prctl::set_child_subreaper(true);
        SignalGuard {
            old_mask,
            old_chld,
            old_pipe,
            old_subreaper,
        }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        let _ = nix::sys::prctl::set_child_subreaper(self.old_subreaper);
        if let Some(old) = &self.old_chld {
            sys::restore_signal(Signal::SIGCHLD, old);
        }
        if let Some(old) = &self.old_pipe {
            sys::restore_signal(Signal::SIGPIPE, old);
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
    /// The Blocks' processes (process runtime).
    procs: Option<ChildSet>,
    rings: Vec<(Ring, usize, usize)>,
    control: Arc<Control>,
    phase: Phase,
    cause: Option<StopCause>,
    interrupted: bool,
    stop_at: Option<u64>,
    deadline: Option<u64>,
    grace: crate::block::Grace,
    t0: Option<u64>,
    /// Log records dropped by each Block, as last reported.
    log_dropped_seen: Vec<u64>,
    /// When dropped log records were last reported.
    last_drop_note: u64,
    health: Arc<crate::health::HealthView>,
    limits: Limits,
    watch: Watch,
    /// Every warning of the run, for the report.
    warnings: Vec<crate::health::Warning>,
    /// Blocks stopped because their `step` hung past their `step_timeout` (and for how long).
    hung: Vec<Option<f64>>,
    /// The run documents' writer, if the test keeps them.
    docs: Option<crate::documents::Writer>,
}

/// The watchdogs' memory between two rounds.
#[derive(Default)]
struct Watch {
    /// When the run began (for the prepare limit).
    began: u64,
    last_round: u64,
    /// Per Block: (time, loops) samples over the last second or so.
    windows: Vec<std::collections::VecDeque<(u64, u64)>>,
    /// Per Block: when its last rate warning was given.
    rate_warned: Vec<u64>,
    /// Per Block: the `step_since` value already warned about.
    hang_warned: Vec<u64>,
    /// Per link: the `blocked_since` value already warned about.
    blocked_warned: Vec<u64>,
    /// Per link: (sent count, since when it has not changed, sender loops then, warned).
    silence: Vec<(u64, u64, u64, bool)>,
    /// Per link: blocked time at the start of each Block's window (for the slow-rate reason).
    blocked_at: Vec<std::collections::VecDeque<(u64, u64)>>,
}

/// Finish grace after Ctrl+\ (SIGQUIT): enough for `finish` to stop motors and close files.
const QUIT_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

impl EventLoop {
    fn new(
        children: Vec<Child>,
        rings: Vec<(Ring, usize, usize)>,
        control: Arc<Control>,
        grace: crate::block::Grace,
        health: Arc<crate::health::HealthView>,
        limits: Limits,
    ) -> Self {
        let n = children.len();
        let nl = rings.len();
        let now = sys::monotonic_ns();
        EventLoop {
            health,
            limits,
            watch: Watch {
                began: now,
                last_round: now,
                windows: vec![Default::default(); n],
                rate_warned: vec![0; n],
                hang_warned: vec![0; n],
                blocked_warned: vec![0; nl],
                silence: vec![(0, now, 0, false); nl],
                blocked_at: vec![Default::default(); nl],
            },
            warnings: Vec::new(),
            hung: vec![None; n],
            children,
            procs: None,
            rings,
            control,
            phase: Phase::Preparing,
            cause: None,
            interrupted: false,
            stop_at: None,
            deadline: None,
            grace,
            t0: None,
            log_dropped_seen: vec![0; n],
            last_drop_note: 0,
            docs: None,
        }
    }

    fn run(&mut self, sfd: &SignalFd) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if self.children.iter().all(|c| c.status.is_some()) {
                // Every child reaped: read what is left in the pipes and mailboxes, then leave.
                for i in 0..self.children.len() {
                    self.read_pipe(i, &mut buf);
                    self.read_mail(i);
                }
                self.note_dropped_logs(true);
                return;
            }
            let now = sys::monotonic_ns();
            if let Some(d) = self.deadline {
                if now >= d {
                    self.escalate();
                    continue;
                }
            }
            // The coordinator never waits long: mailboxes are also checked at least every
            // 100 ms, whatever wakes it (a nudge normally wakes it at once).
            let timeout_ms = match self.deadline {
                Some(d) => ((d.saturating_sub(now)) / 1_000_000 + 1).min(100) as u16,
                None => 100,
            };
            // The console's descriptor (a duplicate) while lines wait for it.
            let console = logging::pump_console();
            let mut idx = Vec::with_capacity(self.children.len());
            let (sig_ready, ready_pipes) = {
                let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
                for (i, c) in self.children.iter().enumerate() {
                    if let Some(p) = &c.pipe {
                        fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
                        idx.push(i);
                    }
                }
                if let Some(fd) = &console {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLOUT));
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
            self.read_all_mail();
            if sig_ready {
                while let Ok(Some(info)) = sfd.read_signal() {
                    match Signal::try_from(info.ssi_signo as i32) {
                        Ok(Signal::SIGCHLD) => self.reap(&mut buf),
                        Ok(s) => self.on_signal(s),
                        Err(_) => {}
                    }
                }
            }
            self.reap(&mut buf);
            self.note_dropped_logs(false);
            self.watch();
        }
    }

    fn run_threads(&mut self, rx: &std::sync::mpsc::Receiver<QueueItem>) {
        loop {
            for i in 0..self.children.len() {
                let done = self.children[i]
                    .thread
                    .as_ref()
                    .is_some_and(|h| h.is_finished());
                if done && self.children[i].status.is_none() {
                    let h = self.children[i].thread.take().expect("checked");
                    while let Ok(item) = rx.try_recv() {
                        self.on_queue(item);
                    }
                    let _ = h.join();
                    self.read_mail(i);
                    self.children[i].status = Some(Exit::Code(0));
                    self.on_exit(i);
                }
            }
            if self.children.iter().all(|c| c.status.is_some()) {
                while let Ok(item) = rx.try_recv() {
                    self.on_queue(item);
                }
                self.read_all_mail();
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
                            self.children[i].status = Some(Exit::Signal {
                                signal: Signal::SIGKILL as i32,
                                sent_by_us: true,
                            });
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
            if let Ok(item) = rx.recv_timeout(std::time::Duration::from_nanos(wait)) {
                self.on_queue(item);
            }
            self.read_all_mail();
            self.watch();
        }
    }

    fn on_queue(&mut self, (i, item): QueueItem) {
        match item {
            Some(rec) => {
                let name = self.children[i].name.clone();
                logging::forward(&name, level_from_u8(rec.level), rec.t, &rec.msg);
            }
            None => self.read_mail(i),
        }
    }

    /// Says, at most once a second (and at the end), how many log records Blocks dropped.
    fn note_dropped_logs(&mut self, last: bool) {
        let now = sys::monotonic_ns();
        if !last && now.saturating_sub(self.last_drop_note) < 1_000_000_000 {
            return;
        }
        self.last_drop_note = now;
        for i in 0..self.children.len() {
            let total = self.control.slot(i).log_dropped.load(Ordering::Relaxed);
            let new = total - self.log_dropped_seen[i].min(total);
            if new > 0 {
                self.log_dropped_seen[i] = total;
                log::warn!(
                    "{}: {new} log records dropped (it logs faster than they can be written; {total} in all)",
                    self.children[i].name
                );
            }
        }
    }

    /// Logs a warning, keeps it for the report, and posts it on the shared board.
    fn warn(&mut self, kind: crate::health::WarningKind, block: usize, message: String) {
        let t = match self.t0 {
            Some(t0) => (sys::monotonic_ns() as i64 - t0 as i64) as f64 * 1e-9,
            None => -(sys::monotonic_ns().saturating_sub(self.watch.began) as f64 * 1e-9),
        };
        let name = self.children[block].name.clone();
        log::warn!("{message}");
        self.control
            .header()
            .board
            .post(t, kind.code(), &format!("{name}\u{1f}{message}"));
        self.warnings.push(crate::health::Warning {
            t,
            kind,
            block: name,
            message,
        });
    }

    /// The watchdogs, every 100 ms: achieved rates (published into the slots), slow Blocks
    /// with the reason, senders blocked on lossless links, hung steps, a prepare that takes
    /// too long, links silent while their sender runs. Only reads of shared memory: the
    /// Blocks pay nothing for them.
    fn watch(&mut self) {
        use crate::control::state;
        use crate::health::WarningKind;
        let now = sys::monotonic_ns();
        if now.saturating_sub(self.watch.last_round) < 100_000_000 {
            return;
        }
        self.watch.last_round = now;
        let n = self.children.len();
        if self.phase == Phase::Preparing {
            let limit = sys::ns(self.limits.prepare_timeout);
            if now.saturating_sub(self.watch.began) > limit {
                let late: Vec<usize> = (0..n).filter(|&i| !self.children[i].ready).collect();
                let names: Vec<String> = late
                    .iter()
                    .map(|&i| self.children[i].name.clone())
                    .collect();
                if let Some(&first) = late.first() {
                    let msg = format!(
                        "{} still preparing after {:.0} s (Test::prepare_timeout): stopping the test. A device that does not answer, a homing that never ends? Raise the limit if preparing really takes this long",
                        names.join(", "),
                        self.limits.prepare_timeout.as_secs_f64()
                    );
                    self.warn(WarningKind::PrepareTooLong, first, msg.clone());
                    let mut e = Error::new(ErrorKind::Timeout, msg).with_block(names[0].clone());
                    e = e.with_block(names[0].clone());
                    self.children[first].prepare_error = Some(e.to_wire());
                    self.begin_stop(StopCause::PrepareFailed(names[0].clone()));
                }
            }
            return;
        }
        if self.phase != Phase::Running {
            return;
        }
        let snap_blocks: Vec<crate::health::BlockHealth> =
            (0..n).map(|i| self.health.block(i, now)).collect();
        // Links: blocked senders and silent links.
        let nl = self.health.links.len();
        for l in 0..nl {
            let info = &self.health.links[l];
            let (from, to, lossless) = (info.from, info.to, info.lossless);
            let lh = self.health.link(info, now);
            let (blocked_total, since) = info.ring.blocked();
            let w = &mut self.watch.blocked_at[l];
            w.push_back((
                now,
                blocked_total + since.map_or(0, |s| now.saturating_sub(s)),
            ));
            while w.len() > 12 {
                w.pop_front();
            }
            if let Some(since) = since {
                if lossless
                    && now.saturating_sub(since) > 100_000_000
                    && self.watch.blocked_warned[l] != since
                {
                    self.watch.blocked_warned[l] = since;
                    let msg = format!(
                        "{} is blocked on link {} to {} for {:.0} ms: {} does not read fast enough (link {:.0} % full: {}/{} samples, {}/{} bytes). Read faster, or make the link drop-oldest if {} only displays",
                        self.children[from].name,
                        lh.name,
                        lh.to,
                        now.saturating_sub(since) as f64 / 1e6,
                        lh.to,
                        lh.fill_ratio() * 100.0,
                        lh.fill_samples,
                        lh.capacity_samples,
                        lh.fill_bytes,
                        lh.capacity_bytes,
                        lh.to
                    );
                    self.warn(WarningKind::SenderBlocked, from, msg);
                }
            }
            let sender_loops = snap_blocks[from].loops;
            let (count, since_ns, loops_then, warned) = self.watch.silence[l];
            if lh.sent != count {
                self.watch.silence[l] = (lh.sent, now, sender_loops, warned);
            } else if !warned
                && now.saturating_sub(since_ns) > self.limits.silent_after_ns
                && sender_loops > loops_then + 10
                && snap_blocks[from].state == crate::health::BlockState::Running
                && snap_blocks[to].state == crate::health::BlockState::Running
            {
                self.watch.silence[l].3 = true;
                let msg = format!(
                    "{} has received nothing on link {} for {:.0} s although {} runs ({} loops meanwhile): if {} waits for one of its labels (a condition, a trigger), check that {} really sends it",
                    lh.to,
                    lh.name,
                    now.saturating_sub(since_ns) as f64 * 1e-9,
                    lh.from,
                    sender_loops - loops_then,
                    lh.to,
                    lh.from
                );
                self.warn(WarningKind::SilentLink, to, msg);
            }
        }
        // Blocks: achieved rate, slow rate with its reason, hung steps.
        let control = self.control.clone();
        for (i, b) in snap_blocks.iter().enumerate() {
            let slot = control.slot(i);
            if b.state != crate::health::BlockState::Running
                && slot.state.load(Ordering::Relaxed) != state::RUNNING
            {
                continue;
            }
            let w = &mut self.watch.windows[i];
            w.push_back((now, b.loops));
            while w.len() > 2 && now.saturating_sub(w[1].0) >= 1_000_000_000 {
                w.pop_front();
            }
            let (t_old, loops_old) = w[0];
            let span = now.saturating_sub(t_old);
            if span >= 950_000_000 {
                let hz = (b.loops - loops_old) as f64 * 1e9 / span as f64;
                slot.achieved_mhz
                    .store((hz * 1e3).round() as u64 + 1, Ordering::Relaxed);
                if let Some(req) = b.requested_hz {
                    if too_slow(b.loops - loops_old, span, req)
                        && now.saturating_sub(self.watch.rate_warned[i]) > 5_000_000_000
                    {
                        self.watch.rate_warned[i] = now;
                        let period = 1.0 / req;
                        // Blocked on a link first: a sender blocked in `send` is also "in
                        // its step", but the link is what to fix.
                        let reason = if let Some((l, blocked)) = self.worst_blocked_output(i, t_old)
                        {
                            let lh = self.health.link(&self.health.links[l], now);
                            format!(
                                "it was blocked {:.0} % of the time on link {} to {} ({:.0} % full), which does not read fast enough",
                                (blocked * 100.0 / (span as f64 * 1e-9)).min(100.0),
                                lh.name,
                                lh.to,
                                lh.fill_ratio() * 100.0
                            )
                        } else if b.step_last_s > period {
                            format!(
                                "its step takes {:.2} ms (longest {:.2} ms), longer than its period of {:.2} ms",
                                b.step_last_s * 1e3,
                                b.step_max_s * 1e3,
                                period * 1e3
                            )
                        } else if b.step_max_s > 2.0 * period {
                            format!(
                                "some of its steps take longer than its period (longest {:.2} ms for a period of {:.2} ms)",
                                b.step_max_s * 1e3,
                                period * 1e3
                            )
                        } else if let Some(s) = b.in_step_s.filter(|&s| s > 10.0 * period) {
                            format!("it has been in its step for {s:.3} s")
                        } else {
                            "the machine did not give it the time (overloaded? try a lower niceness)".to_owned()
                        };
                        let msg = format!(
                            "{} runs at {hz:.1} Hz instead of {req:.1} Hz over the last second: {reason}",
                            b.name
                        );
                        self.warn(WarningKind::SlowRate, i, msg);
                    }
                }
            }
            let since = slot.step_since.load(Ordering::Relaxed);
            if since != 0 {
                let in_step = now.saturating_sub(since);
                let period = slot.period_ns.load(Ordering::Relaxed);
                let limit = 1_000_000_000u64.max(10 * period);
                if in_step > limit && self.watch.hang_warned[i] != since {
                    self.watch.hang_warned[i] = since;
                    let msg = format!(
                        "{} has not returned from its step for {:.1} s: it may be hung (a device that does not answer, a wait with no timeout){}",
                        b.name,
                        in_step as f64 * 1e-9,
                        match self.limits.step_timeouts[i] {
                            Some(t) => format!("; the test stops if it lasts {:.1} s", t.as_secs_f64()),
                            None => String::new(),
                        }
                    );
                    self.warn(WarningKind::StepHung, i, msg);
                }
                if let Some(t) = self.limits.step_timeouts[i] {
                    if in_step > sys::ns(t) && self.hung[i].is_none() {
                        self.hung[i] = Some(in_step as f64 * 1e-9);
                        log::error!(
                            "{} hung in its step for {:.1} s (step_timeout): stopping the test",
                            b.name,
                            in_step as f64 * 1e-9
                        );
                        self.begin_stop(StopCause::BlockFailed(b.name.clone()));
                    }
                }
            }
        }
    }

    /// The output link of Block `i` on which its sender was blocked longest since `since`,
    /// if for more than 10 % of that time: (link index, seconds blocked).
    fn worst_blocked_output(&self, i: usize, since: u64) -> Option<(usize, f64)> {
        let now = sys::monotonic_ns();
        let span = now.saturating_sub(since) as f64 * 1e-9;
        self.health
            .links
            .iter()
            .enumerate()
            .filter(|(_, l)| l.from == i)
            .filter_map(|(k, _)| {
                let w = &self.watch.blocked_at[k];
                let start = w.iter().find(|(t, _)| *t >= since).or(w.front())?;
                let end = w.back()?;
                let s = end.1.saturating_sub(start.1) as f64 * 1e-9;
                (s > 0.1 * span).then_some((k, s))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
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
        &mut self,
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
        let result = self.result(report);
        if let Some(mut w) = self.docs.take() {
            for (i, c) in self.children.iter().enumerate() {
                for f in &c.report_files {
                    w.file(Some(i), f.clone(), "metadata".to_owned());
                }
            }
            match &result {
                Ok(r) => w.stop(Some(r), None),
                Err(e) => w.stop(e.report(), Some(e)),
            }
        }
        result
    }

    fn read_pipe(&mut self, i: usize, buf: &mut [u8]) {
        let name = self.children[i].name.clone();
        // At most 16 reads per call, so a Block flooding logs cannot starve signal handling.
        for _ in 0..16 {
            let c = &mut self.children[i];
            let Some(p) = c.pipe.as_mut() else {
                return;
            };
            match p.read(buf) {
                Ok(0) => {
                    c.pipe = None;
                    break;
                }
                Ok(k) => c.frames.feed(&buf[..k], |rec| {
                    logging::forward(&name, level_from_u8(rec.level), rec.t, &rec.msg)
                }),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    c.pipe = None;
                    break;
                }
            }
        }
    }

    /// Reads every Block's new lifecycle messages.
    fn read_all_mail(&mut self) {
        for i in 0..self.children.len() {
            self.read_mail(i);
        }
    }

    /// Reads the lifecycle messages Block `i` posted since the last call.
    fn read_mail(&mut self, i: usize) {
        let mut from = self.children[i].mail_from;
        let msgs = self.control.read_mail(i, &mut from);
        self.children[i].mail_from = from;
        for bytes in msgs {
            match postcard::from_bytes::<Lifecycle>(&bytes) {
                Ok(msg) => self.on_lifecycle(i, msg),
                Err(e) => log::error!(
                    "{}: unreadable lifecycle message ({e}); its memory may be corrupted",
                    self.children[i].name
                ),
            }
        }
    }

    fn on_lifecycle(&mut self, i: usize, msg: Lifecycle) {
        let name = self.children[i].name.clone();
        match msg {
            Lifecycle::Ready => {
                self.children[i].ready = true;
                if self.phase == Phase::Preparing && self.children.iter().all(|c| c.ready) {
                    self.start();
                }
            }
            Lifecycle::PrepareFailed(e) => {
                self.children[i].prepare_error = Some(e);
                self.begin_stop(StopCause::PrepareFailed(name));
            }
            Lifecycle::StopRequest { failed: true } => {
                self.begin_stop(StopCause::BlockFailed(name));
            }
            Lifecycle::StopRequest { failed: false } => {
                self.begin_stop(StopCause::Block(name));
            }
            Lifecycle::Final(f) => {
                if matches!(f.end, EndKind::Failed(_) | EndKind::Panicked(_)) {
                    // It asked for the stop before its final word: say it failed.
                    if self.cause == Some(StopCause::Block(name.clone())) {
                        self.cause = Some(StopCause::BlockFailed(name.clone()));
                    }
                    self.begin_stop(StopCause::BlockFailed(name));
                }
                self.children[i].fin = Some(f);
            }
            Lifecycle::AppendReport(path) => {
                use std::os::unix::ffi::OsStringExt;
                let path = std::ffi::OsString::from_vec(path);
                self.children[i].report_files.push(path.into());
            }
            Lifecycle::Note(note) => self.children[i].notes.push(note),
            Lifecycle::Stream(info) => {
                if let Some(w) = self.docs.as_mut() {
                    w.descriptor(i, info);
                }
            }
            Lifecycle::File(path, role) => {
                if let Some(w) = self.docs.as_mut() {
                    w.file(Some(i), path, role);
                }
            }
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
            let finish = if cause == StopCause::Quit {
                self.grace.finish.min(QUIT_GRACE)
            } else {
                self.grace.finish
            };
            self.deadline = Some(now.saturating_add(sys::ns(finish)));
            self.phase = Phase::Stopping;
            let why = match &cause {
                StopCause::Block(b) => format!("{b} ended the test"),
                StopCause::PrepareFailed(b) => format!("{b} failed to prepare"),
                StopCause::BlockFailed(b) => format!("{b} failed"),
                StopCause::Interrupted => "interrupted".to_owned(),
                StopCause::Quit => "quit (Ctrl+\\)".to_owned(),
            };
            log::info!("stopping: {why}");
            self.cause = Some(cause);
        } else if self.cause.is_none() {
            self.cause = Some(cause);
        }
    }

    fn on_signal(&mut self, s: Signal) {
        // Ctrl+C, SIGTERM, SIGHUP: a graceful stop; Ctrl+\: the same with a short grace.
        // Pressed again (or in any later phase): terminate the Blocks now.
        let (cause, first, again) = match s {
            Signal::SIGTSTP => {
                log::warn!("Ctrl+Z is refused while a test runs: frozen Blocks would leave motors running on their last command. Press Ctrl+C to stop the test (Ctrl+\\ to stop it at once)");
                return;
            }
            Signal::SIGQUIT => (
                StopCause::Quit,
                format!(
                    "Ctrl+\\ received: stopping at once ({} ms for the Blocks to finish, then they are terminated)",
                    QUIT_GRACE.as_millis()
                ),
                "Ctrl+\\ received: terminating the Blocks now".to_owned(),
            ),
            _ => (
                StopCause::Interrupted,
                format!("{s} received: stopping gracefully (press Ctrl+C again to terminate the Blocks)"),
                format!("{s} received again: terminating the Blocks now"),
            ),
        };
        self.interrupted = true;
        match self.phase {
            Phase::Preparing | Phase::Running => {
                log::warn!("{first}");
                self.begin_stop(cause.clone());
                self.cause = Some(cause);
            }
            Phase::Stopping => {
                log::warn!("{again}");
                self.deadline = Some(0);
            }
            Phase::Terminating => self.deadline = Some(0),
            Phase::Killing => {}
        }
    }

    /// Next step of the cleanup ladder (the process runtime's, through its `ChildSet`).
    fn escalate(&mut self) {
        match self.phase {
            Phase::Stopping => {
                if let Some(p) = self.procs.as_mut() {
                    p.signal_alive(Signal::SIGTERM, "did not finish within the grace period");
                }
                self.phase = Phase::Terminating;
                self.deadline =
                    Some(sys::monotonic_ns().saturating_add(sys::ns(self.grace.terminate)));
            }
            Phase::Terminating | Phase::Killing => {
                if let Some(p) = self.procs.as_mut() {
                    p.signal_alive(Signal::SIGKILL, "still alive after SIGTERM");
                }
                self.phase = Phase::Killing;
                // SIGKILL cannot be ignored: the next SIGCHLD reaps them. Re-send every 100 ms.
                self.deadline = Some(sys::monotonic_ns() + 100_000_000);
            }
            Phase::Preparing | Phase::Running => self.deadline = None,
        }
    }

    fn reap(&mut self, buf: &mut [u8]) {
        // Each Block by its pid (the `ChildSet`): the program's own children are not ours to
        // reap, and a Block's orphaned children are reaped at the end (`reap_orphans`).
        let done: Vec<(usize, Exit)> = match self.procs.as_mut() {
            Some(p) => p
                .reap()
                .into_iter()
                .map(|i| (i, p.exit(i).expect("just reaped")))
                .collect(),
            None => return,
        };
        for (i, status) in done {
            self.read_pipe(i, buf);
            self.read_mail(i);
            let c = &mut self.children[i];
            c.status = Some(status);
            let finished_cleanly = c
                .fin
                .as_ref()
                .is_some_and(|f| !matches!(f.end, EndKind::Failed(_) | EndKind::Panicked(_)));
            if !finished_cleanly {
                match status {
                    Exit::Signal {
                        signal,
                        sent_by_us: false,
                    } => log::error!(
                        "{} died of signal {}",
                        c.name,
                        Signal::try_from(signal).map_or("?", |s| s.as_str())
                    ),
                    Exit::Signal { .. } => {}
                    _ if c.fin.is_none() => log::error!("{}: {}", c.name, crash_sentence(status)),
                    _ => {}
                }
            }
            self.on_exit(i);
        }
    }

    fn report(
        &self,
        test: &str,
        rings: &[(Ring, usize, usize)],
        meta: &[(String, String, String)],
        log_file: Option<std::path::PathBuf>,
    ) -> Report {
        let blocks: Vec<BlockReport> =
            self.children
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let outcome = match (&c.fin, c.status) {
                        (_, Some(Exit::Signal { signal, .. }))
                            if c.signalled_by_us()
                                && (signal == Signal::SIGTERM as i32
                                    || signal == Signal::SIGKILL as i32) =>
                        {
                            Outcome::Killed
                        }
                        (_, Some(Exit::Signal { signal, .. })) => Outcome::Signaled(signal),
                        (Some(f), _) => match &f.end {
                            EndKind::Ended => Outcome::Ended,
                            EndKind::StopRequested => Outcome::StopRequested,
                            EndKind::Stopped => Outcome::Stopped,
                            EndKind::NotStarted => Outcome::NotStarted,
                            EndKind::Failed(e) => Outcome::Failed(e.clone()),
                            EndKind::Panicked(m) => Outcome::Panicked(m.clone()),
                        },
                        (None, Some(s)) => Outcome::Crashed(crash_sentence(s)),
                        (None, None) => Outcome::Crashed("never reaped".to_owned()),
                    };
                    // A killed Block sent no final message: its loop counter is in its slot,
                    // and its achieved rate follows from the slot's first and last loop.
                    let slot = self.control.slot(i);
                    let loops = slot.loops.load(Ordering::Relaxed);
                    let slot_freq = {
                        let (a, b) = (
                            slot.first_loop.load(Ordering::Relaxed),
                            slot.last_loop_end.load(Ordering::Relaxed),
                        );
                        (loops >= 2 && b > a).then(|| loops as f64 * 1e9 / (b - a) as f64)
                    };
                    let durable = slot.durable.load(Ordering::Relaxed);
                    let rows_durable = (durable > 0).then(|| durable - 1);
                    let failed = outcome.is_failure();
                    let received: u64 = rings
                        .iter()
                        .filter(|(_, _, to)| *to == i)
                        .map(|(r, _, _)| r.stats().consumed)
                        .sum();
                    let not_durable = match rows_durable {
                        Some(d) if failed => received.saturating_sub(d),
                        _ => 0,
                    };
                    let step_max = slot.step_max.load(Ordering::Relaxed);
                    BlockReport {
                        name: c.name.clone(),
                        kind: c.kind.clone(),
                        outcome,
                        finish_ok: c.fin.as_ref().is_some_and(|f| f.finish_error.is_none()),
                        finish_error: c.fin.as_ref().and_then(|f| f.finish_error.as_ref()).map(
                            |e| {
                                crate::WireError {
                                    block: None,
                                    ..e.clone()
                                }
                                .to_string()
                            },
                        ),
                        loops: c.fin.as_ref().map_or(loops, |f| f.loops),
                        mean_freq: c.fin.as_ref().map_or(slot_freq, |f| f.mean_freq),
                        jitter_p99_us: c.fin.as_ref().and_then(|f| f.jitter_p99_us),
                        max_late_us: c.fin.as_ref().and_then(|f| f.max_late_us),
                        missed_deadlines: c.fin.as_ref().map_or(0, |f| f.missed_deadlines),
                        log_dropped: self.control.slot(i).log_dropped.load(Ordering::Relaxed)
                            + c.frames.malformed,
                        step_max_s: (loops > 0).then_some(step_max as f64 * 1e-9),
                        rows_durable,
                        not_durable,
                        notes: c.notes.clone(),
                    }
                })
                .collect();
        let links = rings
            .iter()
            .zip(meta)
            .map(|((ring, _, to_i), (name, from, to))| {
                let s = ring.stats();
                // What is left in the link of a receiver that died is lost; what a receiver
                // that finished cleanly chose not to read after the stop is only unread.
                let receiver_died =
                    blocks[*to_i].outcome.is_failure() || blocks[*to_i].finish_error.is_some();
                let (blocked, _) = ring.blocked();
                LinkReport {
                    name: name.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    sent: s.pushed,
                    received: s.consumed,
                    dropped: s.dropped,
                    undelivered: s.undeliverable,
                    unread: s.pending,
                    lost: s.dropped + s.undeliverable + if receiver_died { s.pending } else { 0 },
                    blocked_ms: blocked / 1_000_000,
                    lossless_policy: self
                        .health
                        .links
                        .iter()
                        .any(|l| l.name == *name && l.lossless),
                }
            })
            .collect();
        let end = sys::monotonic_ns();
        let (console_lines_dropped, console_closed) = logging::console_state();
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
            console_lines_dropped,
            console_closed,
            warnings: self.warnings.clone(),
        }
    }

    fn result(&self, report: Report) -> Result<Report> {
        if let Some(c) = self.children.iter().find(|c| c.prepare_error.is_some()) {
            let e = c.prepare_error.clone().expect("checked");
            let err = Error::from(e).with_block(c.name.clone());
            return Err(err.with_report(report));
        }
        if self.interrupted {
            let how = if self.cause == Some(StopCause::Quit) {
                "the test was stopped at once by the user (Ctrl+\\)"
            } else {
                "the test was interrupted by the user (Ctrl+C or a termination signal)"
            };
            return Err(Error::new(ErrorKind::Interrupted, how).with_report(report));
        }
        if let Some((i, secs)) = self
            .hung
            .iter()
            .enumerate()
            .find_map(|(i, h)| h.map(|s| (i, s)))
        {
            let name = self.children[i].name.clone();
            let limit = self.limits.step_timeouts[i].map_or(0.0, |d| d.as_secs_f64());
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("its step did not return for {secs:.1} s (step_timeout {limit:.1} s): the test was stopped"),
            )
            .with_block(name)
            .with_report(report));
        }
        if let Some((b, c)) = report
            .blocks
            .iter()
            .zip(&self.children)
            .find(|(b, _)| b.outcome.is_failure())
        {
            // A Block's own error keeps its kind (Timeout, Hardware, ...), device and sources.
            let err = match c.fin.as_ref().map(|f| &f.end) {
                Some(EndKind::Failed(e)) if !c.signalled_by_us() => Error::from(e.clone()),
                _ => Error::new(ErrorKind::BlockFailed, b.outcome.to_string()),
            };
            return Err(err.with_block(b.name.clone()).with_report(report));
        }
        if self.limits.fail_on_loss {
            let lost: Vec<String> =
                report
                    .links
                    .iter()
                    .filter(|l| l.lossless_policy && l.lost > 0)
                    .map(|l| format!("{} ({} -> {}: {} lost)", l.name, l.from, l.to, l.lost))
                    .chain(report.blocks.iter().filter(|b| b.not_durable > 0).map(|b| {
                        format!("{}: {} received but never written", b.name, b.not_durable)
                    }))
                    .collect();
            if !lost.is_empty() {
                return Err(Error::new(
                    ErrorKind::DataLost,
                    format!("samples were lost on lossless links: {}", lost.join("; ")),
                )
                .with_report(report));
            }
        }
        // A finish that failed (a motor not stopped, a file not written) fails the run too.
        if let Some(c) = self
            .children
            .iter()
            .find(|c| c.fin.as_ref().is_some_and(|f| f.finish_error.is_some()))
        {
            let e = c
                .fin
                .as_ref()
                .and_then(|f| f.finish_error.clone())
                .expect("checked");
            let kind = e.kind;
            let err = Error::from(e);
            let err = Error::new(kind, format!("finish failed: {}", err.description()))
                .with_block(c.name.clone());
            return Err(err.with_report(report));
        }
        Ok(report)
    }
}

/// What to say of a Block's process that ended without its final report.
fn crash_sentence(status: Exit) -> String {
    match status {
        Exit::Code(101) => "its process panicked outside the Block's code (exit code 101)".to_owned(),
        Exit::Code(code) => format!(
            "its process exited (code {code}) without finishing: something in the Block called std::process::exit or similar. End the test with Ok(Flow::Stop) or an error instead, so every Block finishes"
        ),
        Exit::Signal { signal, .. } => format!(
            "its process died of signal {signal} ({})",
            Signal::try_from(signal).map_or("?", |s| s.as_str())
        ),
        Exit::Unknown => "its process was reaped by someone else".to_owned(),
        #[allow(unreachable_patterns)]
        _ => "its process ended without reporting".to_owned(),
    }
}

/// Whether `loops` loops in `span_ns` are more than 1 % below `req_hz`, with one loop of
/// tolerance: a window of ~1 s holds 5 or 6 loops of a 5 Hz Block depending on where its
/// edges fall, which is not a slow Block (a console or a StopBlock would otherwise be
/// reported in every test).
fn too_slow(loops: u64, span_ns: u64, req_hz: f64) -> bool {
    let expected = req_hz * span_ns as f64 * 1e-9;
    let hz = loops as f64 * 1e9 / span_ns.max(1) as f64;
    hz < 0.99 * req_hz && (loops as f64) + 1.0 < 0.99 * expected
}

#[cfg(test)]
mod slow_rate_tests {
    #[test]
    fn slow_rate_allows_one_loop_in_the_window() {
        // 5 Hz: 5 loops in 1.08 s (4.6 Hz) is where the window's edges fell, not slowness.
        assert!(!super::too_slow(5, 1_080_000_000, 5.0));
        // Two loops missing is.
        assert!(super::too_slow(3, 1_000_000_000, 5.0));
        // 1 kHz: 1 % below is slow, 0.5 % below is not.
        assert!(super::too_slow(985, 1_000_000_000, 1000.0));
        assert!(!super::too_slow(995, 1_000_000_000, 1000.0));
    }
}
