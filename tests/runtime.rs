//! Runtime tests: lifecycle, barrier, cleanup ladder, signals, orphans, graph checks, logs.
//! Each case runs in its own process (see tests/common), so `Test::run` may fork.

#[macro_use]
mod common;

use common::{case, children_of, TempDir};
use crabby::{Block, Context, ErrorKind, Flow, Outcome, Result, Settings, Test};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::time::Duration;

/// What a test Block does.
#[derive(Clone)]
enum Act {
    /// Loops until stopped.
    Idle,
    /// Ends (Flow::Stop) once t > s.
    EndAfter(f64),
    /// Fails in prepare.
    FailPrepare,
    /// Returns an error once t > s.
    FailAfter(f64),
    /// Panics once t > s.
    PanicAfter(f64),
    /// Hangs in step once t > s (never returns).
    HangAfter(f64),
    /// Like HangAfter, but ignores SIGTERM too.
    HangIgnoringTerm(f64),
    /// Sends SIGKILL to the Block whose pid is in `dir/victim.pid` once t > s.
    KillVictimAfter(f64),
    /// Sends SIGINT to its whole process group once t > s.
    InterruptGroupAfter(f64),
    /// Sends SIGTERM to its whole process group once t > s.
    TermGroupAfter(f64),
    /// Sends SIGINT to the coordinator at t > s and again after `finish` starts; hangs in finish.
    DoubleInterrupt(f64),
    /// Hangs in finish.
    HangInFinish,
    /// Asks the test to stop once t > s.
    RequestStopAfter(f64),
}

struct TB {
    dir: PathBuf,
    act: Act,
    looped: bool,
}

fn tb(dir: &TempDir, act: Act) -> TB {
    TB {
        dir: dir.path().to_path_buf(),
        act,
        looped: false,
    }
}

fn hang() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

impl Block for TB {
    fn prepare(&mut self, ctx: &mut Context) -> Result<()> {
        std::fs::write(
            self.dir.join(format!("{}.pid", ctx.name())),
            std::process::id().to_string(),
        )
        .unwrap();
        match self.act {
            Act::FailPrepare => Err(crabby::Error::new(
                ErrorKind::Hardware,
                "the device is not plugged in",
            )),
            Act::HangIgnoringTerm(_) => {
                // SAFETY: SIG_IGN installs no handler code, so nothing runs in signal context.
                unsafe {
                    nix::sys::signal::signal(Signal::SIGTERM, nix::sys::signal::SigHandler::SigIgn)
                }
                .unwrap();
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn begin(&mut self, ctx: &mut Context) -> Result<()> {
        std::fs::write(self.dir.join(format!("{}.begin", ctx.name())), "").unwrap();
        Ok(())
    }

    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if !self.looped {
            self.looped = true;
            std::fs::write(self.dir.join(format!("{}.looped", ctx.name())), "").unwrap();
        }
        let t = ctx.t();
        match self.act.clone() {
            Act::EndAfter(s) if t > s => return Ok(Flow::Stop),
            Act::FailAfter(s) if t > s => {
                return Err(crabby::Error::new(ErrorKind::Hardware, "sensor overheated"))
            }
            Act::PanicAfter(s) if t > s => panic!("deliberate panic"),
            Act::HangAfter(s) | Act::HangIgnoringTerm(s) if t > s => hang(),
            Act::KillVictimAfter(s) if t > s => {
                if let Ok(pid) = std::fs::read_to_string(self.dir.join("victim.pid")) {
                    let _ = kill(Pid::from_raw(pid.trim().parse().unwrap()), Signal::SIGKILL);
                    self.act = Act::Idle;
                }
            }
            Act::InterruptGroupAfter(s) if t > s => {
                let _ = kill(Pid::from_raw(0), Signal::SIGINT);
                self.act = Act::Idle;
            }
            Act::TermGroupAfter(s) if t > s => {
                let _ = kill(Pid::from_raw(0), Signal::SIGTERM);
                self.act = Act::Idle;
            }
            Act::DoubleInterrupt(s) if t > s => {
                let _ = kill(nix::unistd::getppid(), Signal::SIGINT);
                self.act = Act::HangInFinish;
            }
            Act::RequestStopAfter(s) if t > s => ctx.stop_test(),
            _ => {}
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        std::fs::write(self.dir.join(format!("{}.finish", ctx.name())), "").unwrap();
        if matches!(self.act, Act::HangInFinish) {
            std::thread::sleep(Duration::from_millis(200));
            let _ = kill(nix::unistd::getppid(), Signal::SIGINT);
            hang();
        }
        Ok(())
    }
}

fn new_test(dir: &TempDir) -> Test {
    let mut t = Test::new("runtime-test");
    t.log_file(Some(dir.path().join("test.log")));
    t
}

fn add(t: &mut Test, dir: &TempDir, name: &str, act: Act) -> crabby::BlockId {
    t.add_with(tb(dir, act), Settings::new().name(name).freq(200.0))
}

fn exists(dir: &TempDir, file: &str) -> bool {
    dir.path().join(file).exists()
}

fn no_children() -> std::result::Result<(), String> {
    let c = children_of(std::process::id() as i32);
    ensure!(c.is_empty(), "processes left after run(): {c:?}");
    Ok(())
}

fn outcome(r: &crabby::Report, name: &str) -> Outcome {
    r.block(name)
        .unwrap_or_else(|| panic!("no block {name}"))
        .outcome
        .clone()
}

fn n_blocks_stop_when_one_ends() -> std::result::Result<(), String> {
    let dir = TempDir::new("n-blocks");
    let mut t = new_test(&dir);
    let names: Vec<String> = (0..6).map(|i| format!("b{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        add(
            &mut t,
            &dir,
            n,
            if i == 3 {
                Act::EndAfter(0.2)
            } else {
                Act::Idle
            },
        );
    }
    let r = t.run().map_err(|e| format!("run failed: {e}"))?;
    for (i, n) in names.iter().enumerate() {
        ensure!(
            exists(&dir, &format!("{n}.finish")),
            "{n} did not run finish"
        );
        ensure!(exists(&dir, &format!("{n}.looped")), "{n} never looped");
        let want = if i == 3 {
            Outcome::Ended
        } else {
            Outcome::Stopped
        };
        ensure!(
            outcome(&r, n) == want,
            "{n}: {:?} instead of {want:?}",
            outcome(&r, n)
        );
        ensure!(r.block(n).unwrap().loops > 0, "{n} reports no loop");
    }
    ensure!(
        r.cause == Some(crabby::StopCause::Block("b3".into())),
        "cause {:?}",
        r.cause
    );
    no_children()
}

fn prepare_failure_breaks_barrier() -> std::result::Result<(), String> {
    let dir = TempDir::new("prepare-fail");
    let mut t = new_test(&dir);
    add(&mut t, &dir, "ok1", Act::Idle);
    add(&mut t, &dir, "broken", Act::FailPrepare);
    add(&mut t, &dir, "ok2", Act::Idle);
    let err = t
        .run()
        .err()
        .ok_or("run() succeeded although a Block failed in prepare")?;
    ensure!(
        err.block() == Some("broken"),
        "error Block {:?}: {err}",
        err.block()
    );
    ensure!(err.kind() == ErrorKind::Hardware, "kind {:?}", err.kind());
    ensure!(err.to_string().contains("not plugged in"), "message: {err}");
    for n in ["ok1", "broken", "ok2"] {
        ensure!(!exists(&dir, &format!("{n}.begin")), "{n} ran begin");
        ensure!(!exists(&dir, &format!("{n}.looped")), "{n} looped");
        ensure!(
            exists(&dir, &format!("{n}.finish")),
            "{n} did not run finish"
        );
    }
    let r = err.report().ok_or("no report")?;
    ensure!(
        outcome(r, "ok1") == Outcome::NotStarted,
        "ok1: {:?}",
        outcome(r, "ok1")
    );
    no_children()
}

fn loop_error_stops_others() -> std::result::Result<(), String> {
    let dir = TempDir::new("loop-error");
    let mut t = new_test(&dir);
    add(&mut t, &dir, "a", Act::Idle);
    add(&mut t, &dir, "faulty", Act::FailAfter(0.1));
    add(&mut t, &dir, "c", Act::Idle);
    let err = t.run().err().ok_or("run() succeeded")?;
    // A Block's own error keeps its kind across the process boundary (issue 9, item 14).
    ensure!(
        err.kind() == ErrorKind::Hardware && err.block() == Some("faulty"),
        "{err}"
    );
    ensure!(err.to_string().contains("sensor overheated"), "{err}");
    let r = err.report().unwrap();
    for n in ["a", "c"] {
        ensure!(
            outcome(r, n) == Outcome::Stopped,
            "{n}: {:?}",
            outcome(r, n)
        );
        ensure!(exists(&dir, &format!("{n}.finish")), "{n} did not finish");
    }
    ensure!(
        r.cause == Some(crabby::StopCause::BlockFailed("faulty".into())),
        "cause {:?}",
        r.cause
    );
    ensure!(
        matches!(outcome(r, "faulty"), Outcome::Failed(_)),
        "{:?}",
        outcome(r, "faulty")
    );
    ensure!(
        exists(&dir, "faulty.finish"),
        "the failing Block did not run finish"
    );
    no_children()
}

fn loop_panic_stops_others() -> std::result::Result<(), String> {
    let dir = TempDir::new("loop-panic");
    let mut t = new_test(&dir);
    add(&mut t, &dir, "a", Act::Idle);
    add(&mut t, &dir, "crasher", Act::PanicAfter(0.1));
    let err = t.run().err().ok_or("run() succeeded")?;
    let r = err.report().unwrap();
    ensure!(
        matches!(outcome(r, "crasher"), Outcome::Panicked(ref m) if m.contains("deliberate panic")),
        "{:?}",
        outcome(r, "crasher")
    );
    ensure!(outcome(r, "a") == Outcome::Stopped, "{:?}", outcome(r, "a"));
    ensure!(
        exists(&dir, "a.finish") && exists(&dir, "crasher.finish"),
        "finish missing"
    );
    no_children()
}

fn hung_block_killed_after_grace() -> std::result::Result<(), String> {
    let dir = TempDir::new("hung");
    let mut t = new_test(&dir);
    t.grace(Duration::from_millis(300), Duration::from_millis(300));
    add(&mut t, &dir, "ender", Act::EndAfter(0.1));
    add(&mut t, &dir, "hung", Act::HangAfter(0.05));
    let err = t
        .run()
        .err()
        .ok_or("run() succeeded although a Block had to be killed")?;
    let r = err.report().unwrap();
    ensure!(
        outcome(r, "hung") == Outcome::Killed,
        "{:?}",
        outcome(r, "hung")
    );
    ensure!(
        outcome(r, "ender") == Outcome::Ended,
        "{:?}",
        outcome(r, "ender")
    );
    ensure!(
        !exists(&dir, "hung.finish"),
        "a hung Block cannot have finished"
    );
    no_children()
}

fn block_ignoring_sigterm_gets_sigkill() -> std::result::Result<(), String> {
    let dir = TempDir::new("ignore-term");
    let mut t = new_test(&dir);
    t.grace(Duration::from_millis(200), Duration::from_millis(200));
    add(&mut t, &dir, "ender", Act::EndAfter(0.1));
    add(&mut t, &dir, "stubborn", Act::HangIgnoringTerm(0.05));
    let err = t.run().err().ok_or("run() succeeded")?;
    let r = err.report().unwrap();
    ensure!(
        outcome(r, "stubborn") == Outcome::Killed,
        "{:?}",
        outcome(r, "stubborn")
    );
    no_children()
}

fn block_killed_from_outside() -> std::result::Result<(), String> {
    let dir = TempDir::new("outside-kill");
    let mut t = new_test(&dir);
    add(&mut t, &dir, "victim", Act::Idle);
    add(&mut t, &dir, "killer", Act::KillVictimAfter(0.1));
    add(&mut t, &dir, "bystander", Act::Idle);
    let err = t.run().err().ok_or("run() succeeded")?;
    ensure!(err.block() == Some("victim"), "{err}");
    let r = err.report().unwrap();
    ensure!(
        outcome(r, "victim") == Outcome::Signaled(9),
        "{:?}",
        outcome(r, "victim")
    );
    for n in ["killer", "bystander"] {
        ensure!(
            outcome(r, n) == Outcome::Stopped,
            "{n}: {:?}",
            outcome(r, n)
        );
        ensure!(exists(&dir, &format!("{n}.finish")), "{n} did not finish");
    }
    ensure!(
        r.cause == Some(crabby::StopCause::BlockFailed("victim".into())),
        "{:?}",
        r.cause
    );
    no_children()
}

fn sigint_to_group_stops_gracefully() -> std::result::Result<(), String> {
    // Our own process group, so the SIGINT reaches this case and its Blocks only.
    nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)).map_err(|e| e.to_string())?;
    let dir = TempDir::new("sigint");
    let mut t = new_test(&dir);
    add(&mut t, &dir, "a", Act::Idle);
    add(&mut t, &dir, "presser", Act::InterruptGroupAfter(0.1));
    let err = t.run().err().ok_or("run() succeeded after Ctrl+C")?;
    ensure!(err.kind() == ErrorKind::Interrupted, "{err}");
    let r = err.report().unwrap();
    for n in ["a", "presser"] {
        ensure!(
            outcome(r, n) == Outcome::Stopped,
            "{n}: {:?}",
            outcome(r, n)
        );
        ensure!(exists(&dir, &format!("{n}.finish")), "{n} did not finish");
    }
    ensure!(
        r.cause == Some(crabby::StopCause::Interrupted),
        "{:?}",
        r.cause
    );
    no_children()
}

fn second_ctrl_c_skips_the_grace() -> std::result::Result<(), String> {
    let dir = TempDir::new("double-int");
    let mut t = new_test(&dir);
    t.grace(Duration::from_secs(20), Duration::from_millis(200));
    add(&mut t, &dir, "a", Act::Idle);
    add(&mut t, &dir, "presser", Act::DoubleInterrupt(0.1));
    let start = std::time::Instant::now();
    let err = t.run().err().ok_or("run() succeeded")?;
    ensure!(err.kind() == ErrorKind::Interrupted, "{err}");
    let r = err.report().unwrap();
    ensure!(
        outcome(r, "presser") == Outcome::Killed,
        "{:?}",
        outcome(r, "presser")
    );
    // Behaviour, not performance: with a 20 s grace, only the second Ctrl+C can end it early.
    ensure!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    no_children()
}

fn stop_request_is_clean() -> std::result::Result<(), String> {
    let dir = TempDir::new("stop-req");
    let mut t = new_test(&dir);
    add(&mut t, &dir, "a", Act::Idle);
    add(&mut t, &dir, "stopper", Act::RequestStopAfter(0.1));
    let r = t.run().map_err(|e| e.to_string())?;
    ensure!(
        outcome(&r, "stopper") == Outcome::StopRequested,
        "{:?}",
        outcome(&r, "stopper")
    );
    ensure!(
        outcome(&r, "a") == Outcome::Stopped,
        "{:?}",
        outcome(&r, "a")
    );
    no_children()
}

fn bad_graphs_fork_nothing() -> std::result::Result<(), String> {
    let dir = TempDir::new("bad-graph");
    // Duplicate names.
    let mut t = new_test(&dir);
    add(&mut t, &dir, "same", Act::Idle);
    add(&mut t, &dir, "same", Act::Idle);
    let e = t.run().err().ok_or("duplicate names accepted")?;
    ensure!(
        e.kind() == ErrorKind::Configuration && e.to_string().contains("same"),
        "{e}"
    );
    // A zero frequency.
    let mut t = new_test(&dir);
    t.add_with(tb(&dir, Act::Idle), Settings::new().name("zero").freq(0.0));
    let e = t.run().err().ok_or("freq 0 accepted")?;
    ensure!(
        e.origin() == Some("zero") && e.to_string().contains("freq"),
        "{e}"
    );
    // A NaN frequency.
    let mut t = new_test(&dir);
    t.add_with(
        tb(&dir, Act::Idle),
        Settings::new().name("nan").freq(f64::NAN),
    );
    ensure!(t.run().is_err(), "NaN freq accepted");
    // A link to a Block of another test.
    let mut other = new_test(&dir);
    let foreign = add(&mut other, &dir, "foreign", Act::Idle);
    let mut t = new_test(&dir);
    let a = add(&mut t, &dir, "a", Act::Idle);
    t.link(a, foreign);
    let e = t.run().err().ok_or("foreign link accepted")?;
    ensure!(e.to_string().contains("does not belong"), "{e}");
    // A niceness out of range.
    let mut t = new_test(&dir);
    t.add_with(
        tb(&dir, Act::Idle),
        Settings::new().name("nice").niceness(40),
    );
    let e = t.run().err().ok_or("niceness 40 accepted")?;
    ensure!(e.to_string().contains("niceness"), "{e}");
    // Nothing was forked: no Block ever wrote its pid file.
    let pids: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pid"))
        .collect();
    ensure!(pids.is_empty(), "a Block was forked for a bad graph");
    no_children()
}

fn threads_are_detected() -> std::result::Result<(), String> {
    let dir = TempDir::new("threads");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let th = std::thread::spawn(move || {
        let _ = rx.recv();
    });
    let mut t = new_test(&dir);
    add(&mut t, &dir, "a", Act::EndAfter(0.0));
    let e = t
        .run()
        .err()
        .ok_or("run() forked from a multi-threaded process")?;
    ensure!(
        e.kind() == ErrorKind::Configuration && e.to_string().contains("threads"),
        "{e}"
    );
    drop(tx);
    th.join().unwrap();
    ensure!(!exists(&dir, "a.pid"), "forked anyway");
    Ok(())
}

struct Talker;
impl Block for Talker {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        log::info!("hello from the talker at {:.3}", ctx.t());
        log::debug!("a debug line");
        Ok(Flow::Stop)
    }
}

fn child_logs_reach_the_log_file() -> std::result::Result<(), String> {
    let dir = TempDir::new("logs");
    let mut t = new_test(&dir);
    t.log_levels(crabby::LevelFilter::Warn, crabby::LevelFilter::Debug);
    t.add_with(Talker, Settings::new().name("talker"));
    let r = t.run().map_err(|e| e.to_string())?;
    let log = std::fs::read_to_string(dir.path().join("test.log")).map_err(|e| e.to_string())?;
    let line = log
        .lines()
        .find(|l| l.contains("hello from the talker"))
        .ok_or(format!("no talker line in:\n{log}"))?;
    ensure!(
        line.contains("talker") && line.contains("INFO"),
        "line: {line}"
    );
    ensure!(line.trim_start().starts_with('['), "no time stamp: {line}");
    ensure!(log.contains("a debug line"), "debug level not in the file");
    ensure!(
        r.log_file.as_deref() == Some(dir.path().join("test.log").as_path()),
        "log path"
    );
    Ok(())
}

struct NiceCheck(i32);
impl Block for NiceCheck {
    fn prepare(&mut self, _ctx: &mut Context) -> Result<()> {
        let now = crabby::process::niceness();
        if now != self.0 {
            return Err(crabby::Error::config(format!(
                "niceness is {now}, wanted {}",
                self.0
            )));
        }
        Ok(())
    }
    fn step(&mut self, _ctx: &mut Context) -> Result<Flow> {
        Ok(Flow::Stop)
    }
}

fn niceness_is_applied_per_block() -> std::result::Result<(), String> {
    let dir = TempDir::new("nice");
    let mut t = new_test(&dir);
    let base = crabby::process::niceness();
    t.add_with(NiceCheck(base + 5), Settings::new().niceness(base + 5));
    t.add_with(NiceCheck(base), Settings::new());
    t.run().map_err(|e| e.to_string())?;
    Ok(())
}

fn sigterm_to_group_stops_gracefully() -> std::result::Result<(), String> {
    // A service manager or `timeout` signals the whole group: Blocks must still finish.
    nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)).map_err(|e| e.to_string())?;
    let dir = TempDir::new("sigterm");
    let mut t = new_test(&dir);
    add(&mut t, &dir, "a", Act::Idle);
    add(&mut t, &dir, "b", Act::TermGroupAfter(0.1));
    let err = t.run().err().ok_or("run() succeeded after SIGTERM")?;
    ensure!(err.kind() == ErrorKind::Interrupted, "{err}");
    let r = err.report().unwrap();
    for n in ["a", "b"] {
        ensure!(
            outcome(r, n) == Outcome::Stopped,
            "{n}: {:?}",
            outcome(r, n)
        );
        ensure!(
            exists(&dir, &format!("{n}.finish")),
            "{n} did not run finish"
        );
    }
    no_children()
}

fn ignored_sigchld_and_own_children_are_handled() -> std::result::Result<(), String> {
    use nix::sys::signal::{signal, SigHandler};
    // The program ignores SIGCHLD (inherited from a supervisor) and has a child of its own.
    // SAFETY: SIG_IGN installs no handler code.
    unsafe { signal(Signal::SIGCHLD, SigHandler::SigIgn) }.map_err(|e| e.to_string())?;
    let mut own = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .map_err(|e| e.to_string())?;
    let dir = TempDir::new("sigchld");
    let mut t = new_test(&dir);
    add(&mut t, &dir, "a", Act::EndAfter(0.1));
    add(&mut t, &dir, "b", Act::Idle);
    let r = t.run().map_err(|e| e.to_string())?;
    ensure!(outcome(&r, "a") == Outcome::Ended, "{r}");
    // SIGCHLD's disposition is the program's again.
    // SAFETY: SIG_IGN installs no handler code; we only read the previous disposition.
    let prev = unsafe { signal(Signal::SIGCHLD, SigHandler::SigIgn) }.map_err(|e| e.to_string())?;
    ensure!(
        matches!(prev, SigHandler::SigIgn),
        "SIGCHLD disposition not restored"
    );
    // The program's own child was neither reaped nor killed by the run.
    ensure!(
        own.try_wait().map_err(|e| e.to_string())?.is_none(),
        "the program's child was touched"
    );
    own.kill().map_err(|e| e.to_string())?;
    let _ = own.wait();
    Ok(())
}

/// Starts a long `sleep` (without any parent-death signal) and ends.
struct Spawner(PathBuf);
impl Block for Spawner {
    fn step(&mut self, _: &mut Context) -> Result<Flow> {
        let c = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        std::fs::write(self.0.join("orphan.pid"), c.id().to_string()).unwrap();
        std::mem::forget(c);
        Ok(Flow::Stop)
    }
}

fn orphaned_grandchild_is_reaped() -> std::result::Result<(), String> {
    let dir = TempDir::new("orphan");
    let mut t = new_test(&dir);
    t.add_with(
        Spawner(dir.path().to_path_buf()),
        Settings::new().name("spawner"),
    );
    t.run().map_err(|e| e.to_string())?;
    let pid: i32 = std::fs::read_to_string(dir.path().join("orphan.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    ensure!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the Block's child {pid} outlived the run"
    );
    no_children()
}

struct BadFinish;
impl Block for BadFinish {
    fn step(&mut self, _: &mut Context) -> Result<Flow> {
        Ok(Flow::Stop)
    }
    fn finish(&mut self, _: &mut Context) -> Result<()> {
        Err(crabby::Error::new(
            ErrorKind::Hardware,
            "the motor did not acknowledge stop",
        ))
    }
}

fn a_failed_finish_fails_the_run() -> std::result::Result<(), String> {
    let dir = TempDir::new("badfinish");
    let mut t = new_test(&dir);
    t.add_with(BadFinish, Settings::new().name("motor"));
    let e = t
        .run()
        .err()
        .ok_or("run() succeeded although finish failed")?;
    ensure!(
        e.block() == Some("motor") && e.to_string().contains("did not acknowledge"),
        "{e}"
    );
    ensure!(e.report().unwrap().failed(), "report does not say failed");
    Ok(())
}

/// Helper mode for the kill -9 case: a coordinator whose Blocks never end.
fn coordinator_forever(dir: &str) {
    let mut t = Test::new("orphans");
    t.log_file(None);
    for i in 0..4 {
        let b = TB {
            dir: PathBuf::from(dir),
            act: Act::Idle,
            looped: false,
        };
        t.add_with(b, Settings::new().name(format!("o{i}")));
    }
    let _ = t.run();
}

fn kill9_of_coordinator_leaves_no_orphan() -> std::result::Result<(), String> {
    let dir = TempDir::new("kill9");
    let exe = std::env::current_exe().unwrap();
    let mut coord = std::process::Command::new(exe)
        .args(["--coordinator-forever", dir.path().to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    // Wait until the four Blocks loop (each writes `<name>.looped`), then kill -9.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while (0..4).any(|i| !exists(&dir, &format!("o{i}.looped"))) {
        ensure!(std::time::Instant::now() < deadline, "Blocks never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let pids: Vec<i32> = (0..4)
        .map(|i| {
            std::fs::read_to_string(dir.path().join(format!("o{i}.pid")))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    coord.kill().map_err(|e| e.to_string())?;
    coord.wait().map_err(|e| e.to_string())?;
    let killed_at = std::time::Instant::now();
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit_once(')')
                    .map(|(_, r)| r.trim_start().starts_with('Z'))
                    .unwrap_or(false)
            })
            .unwrap_or(false)
    };
    while pids.iter().any(|&p| alive(p)) {
        ensure!(
            killed_at.elapsed() < Duration::from_secs(1),
            "orphans alive 1 s after kill -9: {:?}",
            pids.iter().filter(|&&p| alive(p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(p) = args.iter().position(|a| a == "--coordinator-forever") {
        coordinator_forever(&args[p + 1]);
        return;
    }
    common::main(&[
        case(
            "n_blocks_stop_when_one_ends",
            20,
            n_blocks_stop_when_one_ends,
        ),
        case(
            "prepare_failure_breaks_barrier",
            20,
            prepare_failure_breaks_barrier,
        ),
        case("loop_error_stops_others", 20, loop_error_stops_others),
        case("loop_panic_stops_others", 20, loop_panic_stops_others),
        case(
            "hung_block_killed_after_grace",
            20,
            hung_block_killed_after_grace,
        ),
        case(
            "block_ignoring_sigterm_gets_sigkill",
            20,
            block_ignoring_sigterm_gets_sigkill,
        ),
        case("block_killed_from_outside", 20, block_killed_from_outside),
        case(
            "sigint_to_group_stops_gracefully",
            20,
            sigint_to_group_stops_gracefully,
        ),
        case(
            "second_ctrl_c_skips_the_grace",
            30,
            second_ctrl_c_skips_the_grace,
        ),
        case("stop_request_is_clean", 20, stop_request_is_clean),
        case("bad_graphs_fork_nothing", 20, bad_graphs_fork_nothing),
        case("threads_are_detected", 20, threads_are_detected),
        case(
            "child_logs_reach_the_log_file",
            20,
            child_logs_reach_the_log_file,
        ),
        case(
            "niceness_is_applied_per_block",
            20,
            niceness_is_applied_per_block,
        ),
        case(
            "sigterm_to_group_stops_gracefully",
            20,
            sigterm_to_group_stops_gracefully,
        ),
        case(
            "ignored_sigchld_and_own_children_are_handled",
            20,
            ignored_sigchld_and_own_children_are_handled,
        ),
        case(
            "orphaned_grandchild_is_reaped",
            20,
            orphaned_grandchild_is_reaped,
        ),
        case(
            "a_failed_finish_fails_the_run",
            20,
            a_failed_finish_fails_the_run,
        ),
        // Measures how fast orphans die (1 s): not on a machine busy with other cases.
        common::case_alone(
            "kill9_of_coordinator_leaves_no_orphan",
            30,
            kill9_of_coordinator_leaves_no_orphan,
        ),
    ]);
}
