//! Child processes, safely: the one way crabby forks ([`fork_child`]) and the one owner of
//! reaping and of the SIGTERM/SIGKILL ladder ([`ChildSet`]).
//!
//! The coordinator forks every Block with these, the camera Block forks its recorder,
//! display and processing children with them, and tests and benchmarks that need a process
//! of their own (a device played on a pseudo-terminal, a second party in a benchmark) use
//! them too. Nobody else calls `fork` or `kill`.
//!
//! ```
//! use crabby::process::{ChildSet, Exit};
//! use std::time::Duration;
//!
//! # fn main() -> crabby::Result<()> {
//! # if std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0) != 1 { return Ok(()); }
//! let mut children = ChildSet::new();
//! let i = children.spawn("adder", || if 2 + 2 == 4 { 0 } else { 1 })?;
//! children.shutdown(Duration::from_secs(1), Duration::from_millis(100));
//! assert_eq!(children.exit(i), Some(Exit::Code(0)));
//! # Ok(())
//! # }
//! ```

use crate::{sys, Error, ErrorKind, Result};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// Forks a child process that runs `body` and leaves with its return value as exit code.
///
/// A *panic firewall*: the child dies with its parent (`PR_SET_PDEATHSIG`, checked against
/// a parent that died during the fork), `body` runs under `catch_unwind` (a panic ends the
/// child with code 101 and never unwinds into the parent's frames, which the child holds a
/// copy of), and the child leaves with `_exit`, so no destructor of state copied from the
/// parent runs in it. Only what `body` owns is dropped, in the child.
///
/// Refused (an error saying why) when the calling process has more than one thread: a lock
/// held by another thread at fork time would stay locked forever in the child. Fork before
/// starting any thread.
///
/// Returns the child's pid. Prefer [`ChildSet::spawn`], which also reaps it and stops it.
pub fn fork_child(body: impl FnOnce() -> i32) -> Result<i32> {
    sys::fork_child(body)
        .map(|p| p.as_raw())
        .map_err(|e| Error::new(ErrorKind::Io, "cannot fork a child process").with_source(e))
}

/// The name of the test this process runs a Block of (`None` outside a Block's process, and
/// on the threads of `Test::run_in_threads`). Drivers use it to say who holds a device.
pub fn test_name() -> Option<String> {
    crate::child::TEST_NAME.get().cloned()
}

/// In a child: SIGTERM ends this process only when `pid` (its parent) sent it. A Block's
/// process obeys only the coordinator; a child of a Block obeys the Block.
pub fn terminate_only_from_parent() {
    sys::terminate_only_from(nix::unistd::getppid());
}

/// The niceness of the calling process (see `Settings::niceness`).
pub fn niceness() -> i32 {
    sys::niceness()
}

/// The width in columns of the terminal open on `fd` (for example
/// `std::io::stdout().as_fd()`), or `None` when it is not a terminal or reports no size. A
/// status line uses it to fit the window, read again at each redraw (the window may be
/// resized).
pub fn terminal_columns(fd: std::os::fd::BorrowedFd<'_>) -> Option<u16> {
    sys::terminal_columns(fd)
}

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// It exited with this code (101: it panicked, see [`fork_child`]).
    Code(i32),
    /// It died of this signal.
    Signal {
        /// The signal number.
        signal: i32,
        /// Whether this [`ChildSet`] sent it (the ladder), or it came from elsewhere.
        sent_by_us: bool,
    },
    /// It was reaped by someone else: how it ended is unknown.
    Unknown,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(0) => f.write_str("exited normally"),
            Exit::Code(101) => f.write_str("panicked (exit code 101)"),
            Exit::Code(c) => write!(f, "exited with code {c}"),
            Exit::Signal { signal, sent_by_us } => {
                let name = Signal::try_from(*signal).map_or("?", |s| s.as_str());
                if *sent_by_us {
                    write!(f, "stopped by {name}")
                } else {
                    write!(f, "died of signal {signal} ({name})")
                }
            }
            Exit::Unknown => f.write_str("reaped elsewhere (how it ended is unknown)"),
        }
    }
}

#[derive(Debug)]
struct Member {
    name: String,
    pid: Pid,
    exit: Option<Exit>,
    signalled: bool,
}

/// A set of child processes this process forked: it reaps each by its pid (never another
/// process's child) and owns the stop ladder (wait, SIGTERM, SIGKILL until reaped).
///
/// Dropping a set that still has live children kills and reaps them (only in the process
/// that forked them: a copy inherited by a child through fork does nothing).
#[derive(Debug)]
pub struct ChildSet {
    members: Vec<Member>,
    owner: u32,
}

impl Default for ChildSet {
    fn default() -> Self {
        Self::new()
    }
}

impl ChildSet {
    /// An empty set.
    pub fn new() -> Self {
        ChildSet {
            members: Vec::new(),
            owner: std::process::id(),
        }
    }

    /// Forks `body` (see [`fork_child`]) as member `name`; returns its index in the set.
    pub fn spawn(&mut self, name: impl Into<String>, body: impl FnOnce() -> i32) -> Result<usize> {
        let name = name.into();
        let pid = sys::fork_child(body)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot fork {name}")).with_source(e))?;
        Ok(self.adopt(name, pid))
    }

    /// Adds a child forked elsewhere (the coordinator forks Blocks with its own bookkeeping).
    pub(crate) fn adopt(&mut self, name: String, pid: Pid) -> usize {
        self.members.push(Member {
            name,
            pid,
            exit: None,
            signalled: false,
        });
        self.members.len() - 1
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Member `i`'s pid.
    pub fn pid(&self, i: usize) -> i32 {
        self.members[i].pid.as_raw()
    }

    /// Member `i`'s name.
    pub fn name(&self, i: usize) -> &str {
        &self.members[i].name
    }

    /// How member `i` ended, once reaped.
    pub fn exit(&self, i: usize) -> Option<Exit> {
        self.members[i].exit
    }

    /// Whether every member has been reaped.
    pub fn all_exited(&self) -> bool {
        self.members.iter().all(|m| m.exit.is_some())
    }

    /// Reaps the members that have ended, without waiting; returns their indices.
    pub fn reap(&mut self) -> Vec<usize> {
        let mut done = Vec::new();
        for (i, m) in self.members.iter_mut().enumerate() {
            if m.exit.is_some() {
                continue;
            }
            let exit = match waitpid(m.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => Exit::Code(code),
                Ok(WaitStatus::Signaled(_, s, _)) => Exit::Signal {
                    signal: s as i32,
                    sent_by_us: m.signalled && matches!(s, Signal::SIGTERM | Signal::SIGKILL),
                },
                Ok(_) => continue,
                Err(nix::errno::Errno::ECHILD) => Exit::Unknown,
                Err(_) => continue,
            };
            m.exit = Some(exit);
            done.push(i);
        }
        done
    }

    /// Sends `signal` to every member still alive, logging why; returns how many.
    pub(crate) fn signal_alive(&mut self, sig: Signal, why: &str) -> usize {
        let mut n = 0;
        for m in self.members.iter_mut().filter(|m| m.exit.is_none()) {
            log::warn!("{} {why}: {sig}", m.name);
            m.signalled = true;
            let _ = kill(m.pid, sig);
            n += 1;
        }
        n
    }

    /// The stop ladder, waiting: up to `grace` for every member to end by itself, then
    /// SIGTERM, up to `terminate` more, then SIGKILL every 100 ms until all are reaped.
    /// Returns when every member is reaped.
    pub fn shutdown(&mut self, grace: Duration, terminate: Duration) {
        self.wait_until(Instant::now() + grace);
        if self.all_exited() {
            return;
        }
        self.signal_alive(Signal::SIGTERM, "did not end within its grace period");
        self.wait_until(Instant::now() + terminate);
        while !self.all_exited() {
            self.signal_alive(Signal::SIGKILL, "still alive after SIGTERM");
            self.wait_until(Instant::now() + Duration::from_millis(100));
        }
    }

    /// SIGKILL every member still alive and reap them all.
    pub fn kill_all(&mut self) {
        while !self.all_exited() {
            for m in self.members.iter_mut().filter(|m| m.exit.is_none()) {
                m.signalled = true;
                let _ = kill(m.pid, Signal::SIGKILL);
            }
            self.wait_until(Instant::now() + Duration::from_millis(100));
        }
    }

    fn wait_until(&mut self, until: Instant) {
        loop {
            self.reap();
            if self.all_exited() || Instant::now() >= until {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for ChildSet {
    fn drop(&mut self) {
        if std::process::id() == self.owner {
            self.kill_all();
        }
    }
}

// Unit tests in their own file: they start threads (see the fork rule), which only
// tests may do in the core.
#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
