//! The process and memory layer of the core: fork, futexes, shared mappings, the control
//! region and a few libc calls. Private to the crate: users get the safe
//! [`crate::process`] and [`crate::time`] APIs built on it.
//!
//! `unsafe` lives in three modules of the core only: here, the link ring
//! (`link/ring.rs`) and the frame ring (`camera/ring.rs`). Each unsafe block says why it
//! holds.

pub(crate) mod control;

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Nanoseconds of `CLOCK_MONOTONIC`: the same clock in every process of the machine, so the
/// coordinator's `t0` means the same instant in every Block.
pub fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available on Linux");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// Nanoseconds since the Unix epoch (wall clock), for metadata only.
pub fn realtime_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)
        .expect("CLOCK_REALTIME is always available on Linux");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// A zeroed anonymous `MAP_SHARED` mapping.
///
/// Made before fork, it is shared by the coordinator and every Block at the same address,
/// has no name (nothing can be left in `/dev/shm`, whatever kills the processes) and is freed
/// by the kernel when the last process holding it exits.
#[derive(Debug)]
pub struct SharedRegion {
    ptr: std::ptr::NonNull<libc::c_void>,
    len: usize,
}

// SAFETY: the region is plain memory; every access to it goes through atomics or through
// the single-writer protocols of the modules that use it (link ring, frame ring).
unsafe impl Send for SharedRegion {}
// SAFETY: as above.
unsafe impl Sync for SharedRegion {}

impl SharedRegion {
    /// Maps `len` zeroed bytes. `populate` pre-faults every page (frame rings), so the first
    /// write does not pay page faults.
    pub fn new(len: usize, populate: bool) -> std::io::Result<Self> {
        use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
        let len = len.max(1);
        let mut flags = MapFlags::MAP_SHARED;
        if populate {
            flags |= MapFlags::MAP_POPULATE;
        }
        let size = std::num::NonZeroUsize::new(len).expect("len is at least 1");
        // SAFETY: an anonymous mapping at an address the kernel picks aliases no Rust object;
        // it is unmapped only in Drop, after which the pointer is never used again.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                flags,
            )
        }
        .map_err(std::io::Error::from)?;
        Ok(SharedRegion { ptr, len })
    }

    /// The start of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr().cast()
    }
}

impl Drop for SharedRegion {
    fn drop(&mut self) {
        // SAFETY: ptr/len come from a successful mmap and the mapping is not used after drop
        // (the owner of the region outlives every reference into it).
        let _ = unsafe { nix::sys::mman::munmap(self.ptr, self.len) };
    }
}

/// Waits while `*word == expected`, until woken or until the absolute `CLOCK_MONOTONIC`
/// deadline (nanoseconds). Returns early on a spurious wake-up; callers re-check.
pub fn futex_wait(word: &AtomicU32, expected: u32, deadline_ns: Option<u64>) {
    let ts;
    let ts_ptr = match deadline_ns {
        Some(d) => {
            ts = libc::timespec {
                tv_sec: (d / 1_000_000_000) as libc::time_t,
                tv_nsec: (d % 1_000_000_000) as libc::c_long,
            };
            &ts as *const libc::timespec
        }
        None => std::ptr::null(),
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call (shared mappings
    // work because FUTEX_PRIVATE_FLAG is not set); FUTEX_WAIT_BITSET takes an absolute
    // CLOCK_MONOTONIC timeout, and `ts` lives until the call returns.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT_BITSET,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            libc::FUTEX_BITSET_MATCH_ANY,
        );
    }
}

/// Wakes every process waiting on `word`.
pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE only reads its address.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

/// Threads of this process, read from `/proc/self/task` (`None` if it cannot be read).
pub fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

static TERM_FROM: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_sigterm(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let from = unsafe { (*info).si_pid() };
    if from == TERM_FROM.load(std::sync::atomic::Ordering::Relaxed) {
        // SAFETY: signal() and raise() are async-signal-safe; with the default action back,
        // the process ends exactly as an unhandled SIGTERM would.
        unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            libc::raise(libc::SIGTERM);
        }
    }
}

/// In a Block's process: SIGTERM ends the process only when `pid` (the coordinator) sent it.
/// A SIGTERM sent to the whole process group (a service manager, `timeout`, `kill -- -pgid`)
/// also reaches the coordinator, which stops the test gracefully, so every Block still runs
/// `finish` (motors stopped, data written).
pub fn terminate_only_from(pid: nix::unistd::Pid) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    TERM_FROM.store(pid.as_raw(), std::sync::atomic::Ordering::Relaxed);
    let action = SigAction::new(
        SigHandler::SigAction(on_sigterm),
        SaFlags::SA_SIGINFO,
        SigSet::empty(),
    );
    // SAFETY: the handler only reads an atomic and calls async-signal-safe functions.
    let _ = unsafe { sigaction(Signal::SIGTERM, &action) };
}

/// What a signal should do.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Disposition {
    Ignore,
    Default,
}

/// Sets a signal's disposition to ignore or default; returns the previous one.
pub(crate) fn set_signal(
    sig: nix::sys::signal::Signal,
    to: Disposition,
) -> Option<nix::sys::signal::SigAction> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let handler = match to {
        Disposition::Ignore => SigHandler::SigIgn,
        Disposition::Default => SigHandler::SigDfl,
    };
    let action = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_IGN and SIG_DFL install no handler code.
    unsafe { sigaction(sig, &action) }.ok()
}

/// Puts back a disposition saved by `set_signal`.
pub(crate) fn restore_signal(sig: nix::sys::signal::Signal, old: &nix::sys::signal::SigAction) {
    // SAFETY: `old` was the program's own disposition for `sig` (from sigaction), so
    // reinstalling it is exactly as safe as it was before the run.
    let _ = unsafe { nix::sys::signal::sigaction(sig, old) };
}

/// Forks a child process that runs `body` and leaves with `_exit(body's return value)`.
///
/// This is the only place the crate forks. It is safe because it checks first that the
/// calling process has a single thread (a lock held by another thread at fork time would
/// stay locked forever in the child) and because the child never returns into the caller:
/// - it dies with its parent (`PR_SET_PDEATHSIG`), and leaves at once if the parent died
///   between fork and that call;
/// - `body` runs under `catch_unwind`: a panic (even one raised by a destructor while
///   unwinding the body's own state) ends the child with code 101 and never unwinds into
///   the caller's frames, which belong to the parent;
/// - the child leaves with `_exit`: no destructor, `atexit` handler or stdio flush of state
///   copied from the parent runs twice. Only what `body` owns is dropped, in the child.
pub(crate) fn fork_child(body: impl FnOnce() -> i32) -> std::io::Result<nix::unistd::Pid> {
    match thread_count() {
        Some(1) => {}
        Some(n) => {
            return Err(std::io::Error::other(format!(
                "this process runs {n} threads: forking now could leave the child deadlocked on a lock held by another thread; fork before starting any thread"
            )))
        }
        None => {
            return Err(std::io::Error::other(
                "cannot read /proc/self/task to check that this process is single-threaded before forking",
            ))
        }
    }
    let parent = nix::unistd::getpid();
    // SAFETY: the process has a single thread (checked just above, and this function starts
    // none), so the child inherits no lock held by a thread that does not exist in it.
    match unsafe { nix::unistd::fork() }.map_err(std::io::Error::from)? {
        nix::unistd::ForkResult::Parent { child } => Ok(child),
        nix::unistd::ForkResult::Child => {
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            if nix::unistd::getppid() != parent {
                exit_now(1);
            }
            let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
                Ok(code) => code,
                Err(payload) => {
                    // Dropping the payload could run foreign code that panics again.
                    std::mem::forget(payload);
                    101
                }
            };
            exit_now(code)
        }
    }
}

/// Leaves the process at once, without running destructors or `atexit` handlers of state
/// copied from the parent.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and has no memory-safety preconditions.
    unsafe { libc::_exit(code) }
}

/// Sets the niceness of the calling process.
pub fn set_niceness(n: i32) -> std::io::Result<()> {
    // SAFETY: setpriority has no memory-safety preconditions.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Current niceness of the calling process.
pub fn niceness() -> i32 {
    nix::errno::Errno::clear();
    // SAFETY: getpriority has no memory-safety preconditions.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
}

/// Whether this process may lower its niceness to `n` (root, or `RLIMIT_NICE` allows it).
pub fn may_set_niceness(n: i32) -> bool {
    if n >= niceness() || nix::unistd::geteuid().is_root() {
        return true;
    }
    match nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NICE) {
        Ok((soft, _)) if soft == nix::sys::resource::RLIM_INFINITY => true,
        Ok((soft, _)) => 20 - i64::from(n) <= i64::try_from(soft).unwrap_or(i64::MAX),
        Err(_) => false,
    }
}

/// Makes the calling thread real-time: `SCHED_FIFO` at `priority` (1..=99), with
/// `SCHED_RESET_ON_FORK` so that threads and processes it starts are scheduled normally.
pub fn set_realtime(priority: u8) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: libc::c_int::from(priority),
    };
    // SAFETY: `param` is a valid sched_param that lives until the call returns; pid 0 is
    // the calling thread; the call has no other memory-safety precondition.
    let r = unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param)
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The width in columns of the terminal open on `fd`, or `None` if it is not a terminal (or
/// reports no size).
pub fn terminal_columns(fd: std::os::fd::BorrowedFd<'_>) -> Option<u16> {
    use std::os::fd::AsRawFd;
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct it points to, which is ours and
    // lives for the call; `fd` is a valid descriptor borrowed for the call (a descriptor that
    // is not a terminal makes it fail with ENOTTY, touching nothing).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some(ws.ws_col)
}

/// Lowers the timer slack of the calling thread to 1 ns, so paced sleeps end on time.
pub fn low_timer_slack() {
    let _ = nix::sys::prctl::set_timerslack(1);
}

/// Local date and time as (year, month, day, hour, minute, second, UTC offset in seconds).
pub fn local_time(epoch_secs: i64) -> (i32, u32, u32, u32, u32, u32, i64) {
    let t: libc::time_t = epoch_secs as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value of this plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the re-entrant variant.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return (1970, 1, 1, 0, 0, 0, 0);
    }
    (
        tm.tm_year + 1900,
        (tm.tm_mon + 1) as u32,
        tm.tm_mday as u32,
        tm.tm_hour as u32,
        tm.tm_min as u32,
        tm.tm_sec as u32,
        tm.tm_gmtoff,
    )
}

/// ISO 8601 local date-time of an epoch time in nanoseconds, e.g.
/// `2026-11-21T21:04:05.123+01:00`.
pub fn iso8601(epoch_ns: u64) -> String {
    let secs = (epoch_ns / 1_000_000_000) as i64;
    let ms = (epoch_ns / 1_000_000) % 1000;
    let (y, mo, d, h, mi, s, off) = local_time(secs);
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.abs();
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}{sign}{:02}:{:02}",
        off / 3600,
        (off % 3600) / 60
    )
}

/// A compact local stamp for file names, e.g. `20261121-210405`.
pub fn file_stamp(epoch_ns: u64) -> String {
    let (y, mo, d, h, mi, s, _) = local_time((epoch_ns / 1_000_000_000) as i64);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// Converts a duration to nanoseconds, saturating.
pub fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
