//! `Settings::realtime`: applied in the Block's own process (SCHED_FIFO, memory locked),
//! refused before anything is forked where the process may not use it.

mod common;

use common::case;
use crabby::testing::capture;
use crabby::{Block, Context, ErrorKind, Flow, Result, Sample, Settings, Test};

type R = std::result::Result<(), String>;

fn quiet(name: &str) -> Test {
    let mut t = Test::new(name);
    t.log_file(None)
        .log_levels(crabby::LevelFilter::Warn, crabby::LevelFilter::Off);
    t
}

/// (scheduling policy, real-time priority) of the calling thread, from /proc.
fn policy_of_this_thread() -> (i64, i64) {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command name; field 40 is rt_priority, 41 policy (1-based, proc(5)).
    let f: Vec<i64> = stat
        .rsplit_once(')')
        .map(|(_, r)| {
            r.split_whitespace()
                .map(|v| v.parse().unwrap_or(-1))
                .collect()
        })
        .unwrap_or_default();
    // `f[0]` is field 3 (state).
    (
        f.get(41 - 3).copied().unwrap_or(-1),
        f.get(40 - 3).copied().unwrap_or(-1),
    )
}

/// Locked memory of this process in KiB (VmLck).
fn locked_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmLck:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(-1)
}

/// Sends how its own thread is scheduled, from `step` and from a thread it starts, then ends.
struct Reports;
impl Block for Reports {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let (policy, prio) = policy_of_this_thread();
        let (t_policy, _) = std::thread::spawn(policy_of_this_thread)
            .join()
            .unwrap_or((-1, -1));
        ctx.send(
            &Sample::new()
                .with("policy", policy)
                .with("prio", prio)
                .with("thread_policy", t_policy)
                .with("locked_kib", locked_kib()),
        )?;
        Ok(Flow::Stop)
    }
}

const SCHED_OTHER: f64 = 0.0;
const SCHED_FIFO: f64 = 1.0;

/// Where the process may (root here, or CAP_SYS_NICE / RLIMIT_RTPRIO with an unlimited
/// memlock), the Block's loop runs under SCHED_FIFO at its priority with its memory locked,
/// a thread it starts does not, and the coordinator itself stays as it was. Where it may
/// not, the run is refused before fork with an error naming the Block.
fn a_realtime_block_runs_under_sched_fifo_with_its_memory_locked() -> R {
    let (cap, got) = capture();
    let mut t = quiet("realtime-applied");
    let b = t.add_with(Reports, Settings::new().name("rt").freq(100.0).realtime(42));
    let c = t.add(cap);
    t.link(b, c);
    match t.run() {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::Configuration => {
            let m = e.to_string();
            ensure!(
                m.contains("rt") && m.contains("realtime"),
                "unclear refusal: {m}"
            );
            eprintln!("not permitted here, refused as it should be: {m}");
            return Ok(());
        }
        Err(e) => return Err(format!("run failed: {e}")),
    }
    let s = got.take().map_err(|e| e.to_string())?;
    let s = s.first().ok_or("the Block sent nothing")?;
    let v = |l: &str| s.get_f64(l).unwrap_or(-1.0);
    ensure!(
        v("policy") == SCHED_FIFO,
        "the loop's policy is {}",
        v("policy")
    );
    ensure!(v("prio") == 42.0, "the loop's priority is {}", v("prio"));
    ensure!(
        v("thread_policy") == SCHED_OTHER,
        "a thread the Block started is real-time too ({})",
        v("thread_policy")
    );
    ensure!(
        v("locked_kib") > 0.0,
        "no memory locked: {}",
        v("locked_kib")
    );
    let (mine, _) = policy_of_this_thread();
    ensure!(mine == 0, "the coordinator's policy changed to {mine}");
    Ok(())
}

/// A priority outside 1..=99 is refused before fork, naming the Block and the setting.
fn a_priority_outside_1_to_99_is_refused() -> R {
    for p in [0u8, 100] {
        let mut t = quiet("realtime-range");
        t.add_with(Reports, Settings::new().name("motor").realtime(p));
        let e = t.run().err().ok_or(format!("priority {p} was accepted"))?;
        let m = e.to_string();
        ensure!(e.kind() == ErrorKind::Configuration, "{p}: {e:?}");
        ensure!(
            m.contains("motor") && m.contains("'realtime' is") && m.contains("1 (lowest) to 99"),
            "{p}: {m}"
        );
    }
    Ok(())
}

/// An unprivileged user (root becomes `nobody` in this case's own process; a non-root runner
/// already is one, unless it holds CAP_SYS_NICE or an RLIMIT_RTPRIO) is refused before fork,
/// told which limit to raise.
fn an_unprivileged_process_is_refused_before_fork() -> R {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if nix::unistd::geteuid().is_root() {
        // Nothing may raise it back: RLIMIT_RTPRIO 0 for good, then drop root.
        setrlimit(Resource::RLIMIT_RTPRIO, 0, 0).map_err(|e| e.to_string())?;
        nix::unistd::setuid(nix::unistd::Uid::from_raw(65534)).map_err(|e| e.to_string())?;
    }
    let (rtprio, _) = getrlimit(Resource::RLIMIT_RTPRIO).map_err(|e| e.to_string())?;
    if rtprio >= 10 {
        eprintln!("RLIMIT_RTPRIO is {rtprio}: this runner may use real-time, nothing to test");
        return Ok(());
    }
    let mut t = quiet("realtime-refused");
    t.add_with(Reports, Settings::new().name("motor").realtime(10));
    let e = t.run().err().ok_or("an unprivileged run was accepted")?;
    let m = e.to_string();
    ensure!(e.kind() == ErrorKind::Configuration, "{e:?}");
    ensure!(
        m.contains("motor") && m.contains("CAP_SYS_NICE") && m.contains("ulimit -r 10"),
        "{m}"
    );
    Ok(())
}

fn main() {
    common::main(&[
        case(
            "a_realtime_block_runs_under_sched_fifo_with_its_memory_locked",
            30,
            a_realtime_block_runs_under_sched_fifo_with_its_memory_locked,
        ),
        case(
            "a_priority_outside_1_to_99_is_refused",
            30,
            a_priority_outside_1_to_99_is_refused,
        ),
        case(
            "an_unprivileged_process_is_refused_before_fork",
            30,
            an_unprivileged_process_is_refused_before_fork,
        ),
    ])
}
