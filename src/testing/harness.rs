//! Fork-based tests for your own crate: the harness crabby's own `tests/` use.
//!
//! libtest runs each `#[test]` on a thread, and a process with threads must not fork Blocks:
//! [`Test::run`](crate::Test::run) refuses it. So a test binary that runs a `Test` is declared
//! with `harness = false` and its `main` hands the cases to [`main`]: each case runs in a
//! fresh, single-threaded copy of the binary (re-executed with `--crabby-case NAME`), under a
//! timeout. A hung case is killed (its Blocks die with it through their parent-death signal)
//! and counted as failed. The last line is libtest's summary, so `cargo test` reads it as
//! usual, and `cargo test --test NAME -- FILTER`, `--exact`, `--list` and
//! `--test-threads=N` work.
//!
//! **Nothing may survive a case.** The harness process is a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`), so every process a case leaves behind (an orphaned Block, a
//! program a Block spawned, a daemonised grandchild) becomes the harness's child instead of
//! init's. Each case runs with `CRABBY_CASE_TOKEN=<unique>` in its environment, inherited by
//! everything it starts, so the harness knows whose orphan a process is. Once a case has
//! exited, its orphans have 2 s to die (Blocks die of their parent-death signal at once);
//! those still alive fail the case and are killed. A live orphan with no token (it cleared
//! its environment) fails the whole run. The [`TempDir`]s and
//! [`capture`](crate::testing::capture) files of a case that was killed are removed.
//!
//! **Cases run in parallel**, one per available core (`--test-threads=N` or
//! `RUST_TEST_THREADS` to change it), each in its own process group so that a case signalling
//! its group (`kill(0, SIGINT)`) reaches only itself. A case that measures timing and must not
//! share the machine is declared with [`case_alone`]: those run first, one at a time.
//!
//! The harness itself starts threads (one per parallel case); it never forks a Block, only
//! re-executes its binary, and every case runs single-threaded.
//!
//! ## A test binary in your crate
//!
//! In `Cargo.toml`:
//!
//! ```toml
//! [[test]]
//! name = "bench_graph"
//! harness = false
//! ```
//!
//! In `tests/bench_graph.rs`:
//!
//! ```no_run
//! use crabby::testing::harness::{self, case, ensure, TempDir};
//! use crabby::testing::capture;
//! use crabby::{Block, Context, Flow, Result, Sample, Settings, Test};
//!
//! /// The Block under test: counts up to 10, then ends the test.
//! struct Counter(i64);
//! impl Block for Counter {
//!     fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
//!         self.0 += 1;
//!         ctx.send(&Sample::new().with("n", self.0))?;
//!         Ok(if self.0 == 10 { Flow::Stop } else { Flow::Continue })
//!     }
//! }
//!
//! fn counts_to_ten() -> std::result::Result<(), String> {
//!     let dir = TempDir::new("counts"); // removed on drop, or by the harness if the case dies
//!     let (capture, samples) = capture();
//!     let mut test = Test::new("counts");
//!     test.log_file(Some(dir.path().join("test.log")));
//!     let counter = test.add_with(Counter(0), Settings::new().freq(1000.0));
//!     let cap = test.add(capture);
//!     test.link(counter, cap);
//!     test.run().map_err(|e| e.to_string())?; // forks: fine, this case has its own process
//!     let got = samples.take().map_err(|e| e.to_string())?;
//!     let n: Vec<f64> = got.iter().filter_map(|s| s.get_f64("n")).collect();
//!     ensure!(n == (1..=10).map(f64::from).collect::<Vec<_>>(), "received {n:?}");
//!     Ok(())
//! }
//!
//! fn main() {
//!     // Name, timeout in seconds, function.
//!     harness::main(&[case("counts_to_ten", 30, counts_to_ten)])
//! }
//! ```

use std::collections::HashSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One test case: see [`case`] and [`case_alone`].
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Its name, unique in the binary (the filter of `cargo test -- NAME` matches it).
    pub name: &'static str,
    /// Killed and failed after this long.
    pub timeout: Duration,
    /// The case: `Err(message)` fails it, and so do a panic and a non-zero exit.
    pub run: fn() -> Result<(), String>,
    /// Runs with no other case at the same time (it measures timing).
    pub alone: bool,
}

/// Shorthand for a case with a timeout in seconds.
pub const fn case(name: &'static str, timeout_s: u64, run: fn() -> Result<(), String>) -> Case {
    Case {
        name,
        timeout: Duration::from_secs(timeout_s),
        run,
        alone: false,
    }
}

/// A case that runs alone (no other case at the same time), for cases that measure timing.
pub const fn case_alone(
    name: &'static str,
    timeout_s: u64,
    run: fn() -> Result<(), String>,
) -> Case {
    Case {
        name,
        timeout: Duration::from_secs(timeout_s),
        run,
        alone: true,
    }
}

/// The environment variable that marks every process of a case.
const TOKEN_VAR: &str = "CRABBY_CASE_TOKEN";

/// Runs the cases (or the one named by `--crabby-case`) and exits: call it from the test
/// binary's `main`, before starting any thread.
pub fn main(cases: &[Case]) -> ! {
    let args: Vec<String> = std::env::args().collect();
    if let Some(p) = args.iter().position(|a| a == "--crabby-case") {
        // A case dies with the harness (Ctrl+C on `cargo test`): it runs in a process group
        // of its own, so the terminal's SIGINT does not reach it.
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
        if std::os::unix::process::parent_id() == 1 {
            std::process::exit(1);
        }
        let Some(name) = args.get(p + 1) else {
            eprintln!("--crabby-case needs the name of a case");
            std::process::exit(101);
        };
        let Some(case) = cases.iter().find(|c| c.name == name) else {
            eprintln!("no case is named '{name}' in this binary");
            std::process::exit(101);
        };
        match (case.run)() {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("FAILED: {e}");
                std::process::exit(1)
            }
        }
    }
    if args.iter().any(|a| a == "--list") {
        for c in cases {
            println!("{}: test", c.name);
        }
        std::process::exit(0);
    }
    let filter: Option<&String> = args.iter().skip(1).find(|a| !a.starts_with('-'));
    let exact = args.iter().any(|a| a == "--exact");
    let selected: Vec<&Case> = cases
        .iter()
        .filter(|c| match filter {
            Some(f) if exact => c.name == f.as_str(),
            Some(f) => c.name.contains(f.as_str()),
            None => true,
        })
        .collect();
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!("cannot become a child subreaper ({e}): orphans of the cases cannot be checked");
        std::process::exit(101);
    }
    let workers = test_threads(&args);
    let start = Instant::now();
    println!("\nrunning {} tests ({} at a time)", selected.len(), workers);
    let harness = Harness {
        active: Mutex::new(HashSet::new()),
        token_base: format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ),
        results: Mutex::new((0, Vec::new())),
    };
    // Cases that must run alone first, one by one; then the others, `workers` at a time.
    for c in selected.iter().filter(|c| c.alone) {
        harness.run_and_record(c);
    }
    let queue: Mutex<Vec<&Case>> = Mutex::new(
        selected
            .iter()
            .rev()
            .filter(|c| !c.alone)
            .copied()
            .collect(),
    );
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let Some(c) = queue.lock().unwrap().pop() else {
                    break;
                };
                harness.run_and_record(c);
            });
        }
    });
    // Anything still attached to the harness belongs to no running case: a process that
    // escaped the token (cleared its environment). Fail the run rather than leave it.
    let unknown = harness.strays(None, Duration::from_secs(2));
    let (passed, mut failed) = harness.results.into_inner().unwrap();
    if !unknown.is_empty() {
        kill_and_reap(&unknown);
        failed.push((
            "(harness)",
            format!("stray processes of an unknown case (no {TOKEN_VAR}): {unknown:?}"),
        ));
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for (name, out) in &failed {
            println!("\n---- {name} ----\n{out}");
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; 0 ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        passed,
        failed.len(),
        cases.len() - selected.len(),
        start.elapsed().as_secs_f64()
    );
    std::process::exit(if failed.is_empty() { 0 } else { 101 })
}

/// How many cases run at once: `--test-threads=N`, `RUST_TEST_THREADS`, or the cores.
fn test_threads(args: &[String]) -> usize {
    let from_arg = args
        .iter()
        .position(|a| a == "--test-threads")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--test-threads=").map(str::to_owned))
        });
    from_arg
        .or_else(|| std::env::var("RUST_TEST_THREADS").ok())
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

struct Harness {
    /// Pids of the case processes running now (not orphans: std's `Child` reaps them).
    active: Mutex<HashSet<i32>>,
    token_base: String,
    /// Passed count, and (name, output) of each failed case.
    results: Mutex<(usize, Vec<(&'static str, String)>)>,
}

impl Harness {
    fn run_and_record(&self, c: &Case) {
        let t = Instant::now();
        let (ok, output) = self.run_isolated(c);
        let mut r = self.results.lock().unwrap();
        let verdict = if ok { "ok" } else { "FAILED" };
        println!(
            "test {} ... {verdict} ({:.2} s)",
            c.name,
            t.elapsed().as_secs_f64()
        );
        if ok {
            r.0 += 1;
        } else {
            r.1.push((c.name, output));
        }
    }

    fn run_isolated(&self, c: &Case) -> (bool, String) {
        let exe = std::env::current_exe().expect("current exe");
        let dir = TempDir::new("case-out");
        let out_path = dir.path().join("output");
        let out = std::fs::File::create(&out_path).expect("output file");
        let token = format!("{}-{}", self.token_base, c.name);
        let mut child = {
            // Registered before anyone can see it as an orphan (see `strays`).
            let mut active = self.active.lock().unwrap();
            let child = Command::new(exe)
                .args(["--crabby-case", c.name])
                .env(TOKEN_VAR, &token)
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup"))
                .stderr(out)
                .spawn()
                .expect("spawn case");
            active.insert(child.id() as i32);
            child
        };
        let deadline = Instant::now() + c.timeout;
        let status = loop {
            match child.try_wait().expect("wait") {
                Some(s) => break Some(s),
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        self.active.lock().unwrap().remove(&(child.id() as i32));
        let mut output = std::fs::read_to_string(&out_path).unwrap_or_default();
        let ok = match status {
            Some(s) => s.success(),
            None => {
                output.push_str(&format!("\ntimed out after {:?}", c.timeout));
                false
            }
        };
        // Whatever happened, nothing of the case may survive it: its processes (now the
        // harness's children, see the module docs), and the temp folders a killed case could
        // not remove (`TempDir` names carry the case's pid).
        let strays = self.strays(Some(&token), Duration::from_secs(2));
        remove_temp_dirs_of(child.id());
        if !strays.is_empty() {
            output.push_str(&format!(
                "\nstray processes left by the case (killed): {}",
                describe(&strays)
            ));
            // Killing them may orphan their own children (to us, with the same token).
            let mut left = strays;
            for _ in 0..10 {
                kill_and_reap(&left);
                left = self.strays(Some(&token), Duration::from_millis(200));
                if left.is_empty() {
                    break;
                }
                output.push_str(&format!(", then {}", describe(&left)));
            }
            return (false, output);
        }
        (ok, output)
    }

    /// Waits (up to `limit`) until no live orphan carries `token` (any orphan if `None`),
    /// reaping the orphans that die meanwhile; returns those still alive.
    fn strays(&self, token: Option<&str>, limit: Duration) -> Vec<i32> {
        let end = Instant::now() + limit;
        loop {
            let live: Vec<i32> = {
                // Under the lock: no case process is being spawned or reaped meanwhile, so
                // every child of ours outside `active` is an orphan.
                let active = self.active.lock().unwrap();
                let me = std::process::id() as i32;
                children_of(me)
                    .into_iter()
                    .filter(|p| !active.contains(p))
                    .filter(|&p| {
                        if is_zombie(p) {
                            // Died after its case: reap it (never a case process, see above).
                            let _ = nix::sys::wait::waitpid(
                                nix::unistd::Pid::from_raw(p),
                                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                            );
                            return false;
                        }
                        match token {
                            Some(t) => has_token(p, t),
                            None => true,
                        }
                    })
                    .collect()
            };
            if live.is_empty() || Instant::now() >= end {
                return live;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// SIGKILLs these orphans (children of the harness) and reaps them.
fn kill_and_reap(pids: &[i32]) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    for &p in pids {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
    for &p in pids {
        let _ = nix::sys::wait::waitpid(Pid::from_raw(p), None);
    }
}

/// `pid (command line)` of each process, for the failure message.
fn describe(pids: &[i32]) -> String {
    pids.iter()
        .map(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .trim()
                        .to_owned()
                })
                .unwrap_or_default();
            format!("{p} ({cmd})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next().map(|st| st == "Z"))
        })
        .unwrap_or(false)
}

/// Whether process `pid` has `CRABBY_CASE_TOKEN=token` in its environment.
fn has_token(pid: i32, token: &str) -> bool {
    let want = format!("{TOKEN_VAR}={token}");
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|&b| b == 0).any(|kv| kv == want.as_bytes()))
        .unwrap_or(false)
}

/// Removes the `TempDir`s and capture files made by process `pid`.
fn remove_temp_dirs_of(pid: u32) {
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) && name.contains(&format!("-{pid}-")) {
            match e.file_type() {
                Ok(t) if t.is_dir() => {
                    let _ = std::fs::remove_dir_all(e.path());
                }
                _ => {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// Pids of the live processes whose parent is `ppid` (zombies included).
pub fn children_of(ppid: i32) -> Vec<i32> {
    let mut v = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return v;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.get(1).and_then(|p| p.parse::<i32>().ok()) == Some(ppid) {
            v.push(pid);
        }
    }
    v
}

/// Pids of live processes whose command line contains `marker` (an argument a test passed).
pub fn processes_with_arg(marker: &str) -> Vec<i32> {
    let mut v = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return v;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(marker) {
                v.push(pid);
            }
        }
    }
    v
}

/// Waits (up to `limit`) until no process has `ppid` as parent; returns those left.
pub fn wait_no_children_of(ppid: i32, limit: Duration) -> Vec<i32> {
    let end = Instant::now() + limit;
    loop {
        let v = children_of(ppid);
        if v.is_empty() || Instant::now() >= end {
            return v;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How the names of temporary files and folders of tests start (see [`temp_path`]).
const TEMP_PREFIX: &str = "crabby-test-";

/// A fresh path in the system's temporary folder, `crabby-test-<tag>-<pid>-<n>`: unique in
/// the machine, and removed by the harness if the case that made it is killed. Nothing is
/// created.
pub fn temp_path(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "{TEMP_PREFIX}{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A temporary directory, removed with everything in it when dropped (and by the harness if
/// the case that made it is killed).
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `crabby-test-<tag>-<pid>-<n>` in the system's temporary folder.
    ///
    /// Panics if it cannot be created (the temporary folder is full or read-only): a test
    /// cannot go on without it.
    pub fn new(tag: &str) -> Self {
        let p = temp_path(tag);
        if let Err(e) = std::fs::create_dir_all(&p) {
            panic!("cannot create the temporary folder {}: {e}", p.display());
        }
        TempDir(p)
    }
    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `return Err(message)` (with the line) unless the condition holds: the `assert!` of a case.
///
/// ```
/// use crabby::testing::harness::ensure;
/// fn check(n: usize) -> Result<(), String> {
///     ensure!(n == 3, "expected 3 samples, got {n}");
///     Ok(())
/// }
/// assert!(check(3).is_ok());
/// assert!(check(2).unwrap_err().starts_with("expected 3 samples, got 2"));
/// ```
#[doc(inline)]
pub use crate::__crabby_testing_ensure as ensure;

#[doc(hidden)]
#[macro_export]
macro_rules! __crabby_testing_ensure {
    ($cond:expr, $($fmt:tt)+) => {
        // `if cond {} else` rather than `if !cond`: the condition may compare floats.
        if $cond {
        } else {
            return Err(format!("{} (at line {})", format!($($fmt)+), line!()));
        }
    };
}
