//! A small harness for tests that run a `crabby::Test` (and so fork).
//!
//! The default libtest harness runs tests on threads, and a process with threads must not
//! fork Blocks. So these test binaries use `harness = false`: `main` lists the cases; each case
//! runs in a fresh process (this binary re-executed with `--crabby-case NAME`), single-threaded,
//! under a timeout. A hung case is killed (its Blocks die with it through their parent-death
//! signal) and counted as failed. The last line is libtest's summary, which CI reads.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One test case.
pub struct Case {
    pub name: &'static str,
    pub timeout: Duration,
    pub run: fn() -> Result<(), String>,
}

/// Shorthand for a case with a timeout in seconds.
pub const fn case(name: &'static str, timeout_s: u64, run: fn() -> Result<(), String>) -> Case {
    Case {
        name,
        timeout: Duration::from_secs(timeout_s),
        run,
    }
}

/// Runs the cases (or the one named by `--crabby-case`) and exits.
pub fn main(cases: &[Case]) -> ! {
    let args: Vec<String> = std::env::args().collect();
    if let Some(p) = args.iter().position(|a| a == "--crabby-case") {
        let name = args.get(p + 1).expect("--crabby-case NAME");
        let case = cases.iter().find(|c| c.name == name).expect("unknown case");
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
    let start = Instant::now();
    println!("\nrunning {} tests", selected.len());
    let (mut passed, mut failed) = (0, Vec::new());
    for c in &selected {
        let t = Instant::now();
        let (ok, output) = run_isolated(c);
        if ok {
            passed += 1;
            println!(
                "test {} ... ok ({:.2} s)",
                c.name,
                t.elapsed().as_secs_f64()
            );
        } else {
            println!(
                "test {} ... FAILED ({:.2} s)",
                c.name,
                t.elapsed().as_secs_f64()
            );
            failed.push((c.name, output));
        }
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

fn run_isolated(c: &Case) -> (bool, String) {
    let exe = std::env::current_exe().expect("current exe");
    let dir = TempDir::new("case-out");
    let out_path = dir.path().join("output");
    let out = std::fs::File::create(&out_path).expect("output file");
    let mut child = Command::new(exe)
        .args(["--crabby-case", c.name])
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("spawn case");
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
    let mut output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let ok = match status {
        Some(s) => s.success(),
        None => {
            output.push_str(&format!("\ntimed out after {:?}", c.timeout));
            false
        }
    };
    // Whatever happened, nothing of the case may survive it: its processes, and the temp
    // folders a killed case could not remove (`TempDir` names carry the case's pid).
    let strays = wait_no_children_of(child.id() as i32, Duration::from_secs(2));
    remove_temp_dirs_of(child.id());
    if !strays.is_empty() {
        output.push_str(&format!("\nstray processes left by the case: {strays:?}"));
        for p in &strays {
            let _ = Command::new("kill").args(["-9", &p.to_string()]).status();
        }
        return (false, output);
    }
    (ok, output)
}

/// Removes the `TempDir`s made by process `pid`.
fn remove_temp_dirs_of(pid: u32) {
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("crabby-test-") && name.contains(&format!("-{pid}-")) {
            let _ = std::fs::remove_dir_all(e.path());
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

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "crabby-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `Err(msg)` unless `cond`.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        // `if cond {} else` rather than `if !cond`: the condition may compare floats.
        if $cond {
        } else {
            return Err(format!("{} (at line {})", format!($($fmt)+), line!()));
        }
    };
}
