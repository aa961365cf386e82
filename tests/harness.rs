//! The test harness itself (`tests/common/mod.rs`): a case that leaves a process behind must
//! fail, and the process must be killed (issue 9, item 15).
//!
//! The self-test runs this binary again as a harness, in a subprocess, with the deliberately
//! bad cases enabled (`CRABBY_HARNESS_SELFTEST=1`), and checks that it fails them.

mod common;

use common::{case, Case};
use std::process::{Command, Stdio};

const SELFTEST: &str = "CRABBY_HARNESS_SELFTEST";

type R = std::result::Result<(), String>;

/// Bad on purpose: starts a process and returns without waiting for it.
fn leaves_a_child_behind() -> R {
    let child = Command::new("sleep")
        .arg("300")
        .spawn()
        .map_err(|e| e.to_string())?;
    std::mem::forget(child);
    Ok(())
}

/// Bad on purpose: a daemonised grandchild (its parent, the shell, exits at once).
fn leaves_a_grandchild_behind() -> R {
    let st = Command::new("sh")
        .args(["-c", "sleep 300 >/dev/null 2>&1 &"])
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("sh: {st}"));
    }
    Ok(())
}

/// Bad on purpose: makes a temp folder and a capture file, says where, then hangs until the
/// harness kills it (its timeout), so neither is removed by a destructor.
fn hangs_with_temp_files() -> R {
    let dir = common::TempDir::new("selftest");
    let (_cap, handle) = crabby::testing::capture();
    println!("TEMP {}", dir.path().display());
    println!("TEMP {}", handle.path().display());
    loop {
        std::thread::park();
    }
}

/// Good: starts a process and waits for it.
fn cleans_up() -> R {
    let st = Command::new("true").status().map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("true: {st}"));
    }
    Ok(())
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
                .unwrap_or(true)
        })
        .unwrap_or(false)
}

/// The pids the inner harness reported as strays.
fn stray_pids(out: &str, case: &str) -> Vec<i32> {
    let Some(section) = out.split(&format!("---- {case} ----")).nth(1) else {
        return Vec::new();
    };
    let section = section.split("\n---- ").next().unwrap_or(section);
    section
        .lines()
        .filter(|l| l.contains("stray processes"))
        .flat_map(|l| {
            l.split(|c: char| !c.is_ascii_digit())
                .filter_map(|t| t.parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn the_harness_fails_cases_that_leave_processes() -> R {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .env(SELFTEST, "1")
        .arg("--test-threads=2")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        !out.status.success(),
        "the inner harness passed cases that leave processes behind:\n{text}"
    );
    for bad in ["leaves_a_child_behind", "leaves_a_grandchild_behind"] {
        ensure!(
            text.contains(&format!("test {bad} ... FAILED")),
            "{bad} was not failed:\n{text}"
        );
        let pids = stray_pids(&text, bad);
        ensure!(!pids.is_empty(), "no stray reported for {bad}:\n{text}");
        let sleeps: Vec<i32> = pids.into_iter().filter(|&p| p > 1).collect();
        ensure!(
            sleeps.iter().all(|&p| !alive(p)),
            "{bad}: strays still alive {sleeps:?}"
        );
    }
    ensure!(
        text.contains("test cleans_up ... ok"),
        "the clean case failed:\n{text}"
    );
    ensure!(
        text.contains("sleep 300"),
        "the stray is not described:\n{text}"
    );
    // The temp folder and capture file of the killed case are gone.
    ensure!(
        text.contains("test hangs_with_temp_files ... FAILED"),
        "the hung case was not failed:\n{text}"
    );
    let temps: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("TEMP "))
        .collect();
    ensure!(
        temps.len() == 2,
        "the hung case did not say its files:\n{text}"
    );
    for t in temps {
        ensure!(
            !std::path::Path::new(t).exists(),
            "{t} was left behind by a killed case"
        );
    }
    Ok(())
}

fn main() {
    let cases: Vec<Case> = if std::env::var_os(SELFTEST).is_some() {
        vec![
            case("leaves_a_child_behind", 10, leaves_a_child_behind),
            case("leaves_a_grandchild_behind", 10, leaves_a_grandchild_behind),
            case("cleans_up", 10, cleans_up),
            case("hangs_with_temp_files", 1, hangs_with_temp_files),
        ]
    } else {
        vec![case(
            "the_harness_fails_cases_that_leave_processes",
            30,
            the_harness_fails_cases_that_leave_processes,
        )]
    };
    common::main(&cases)
}
