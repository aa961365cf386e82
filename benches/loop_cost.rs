//! The loop's own cost (prints its figures): CPU of paced Blocks that do nothing, with the
//! health plane on (it always is), against the floor of a bare process waking on the same
//! absolute deadlines.
//!
//! Run: `cargo bench --bench loop_cost` (`-- SECONDS` to measure longer than 5 s; `-- --one`
//! runs one Block only, to profile it).
//!
//! Each Block reads its own CPU time (`/proc/self/schedstat`: nanoseconds on a CPU, exact,
//! unlike the 10 ms ticks of `/proc/<pid>/stat`) at `begin` and at `finish` and writes it to
//! a file; the figure is that time over the wall time between the two, as % of one core.
//! The coordinator's share (its 100 ms watchdog tick reading every Block's figures) is
//! measured the same way from the first Block. The floor is a forked process sleeping with
//! `clock_nanosleep(TIMER_ABSTIME)` at the same rate and doing nothing else: one timer
//! wake-up per period, the least any paced loop can cost.

use crabby::{Block, Context, Flow, Result, Settings, Test};
use std::path::{Path, PathBuf};

/// User and system CPU seconds of this process (the kernel splits its exact total by tick
/// samples: a rough split).
fn user_sys() -> (f64, f64) {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let tv = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 * 1e-6;
    (tv(u.user_time()), tv(u.system_time()))
}

/// Nanoseconds this process (`pid`, or `self`) spent on a CPU.
fn cpu_ns(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn now_ns() -> u64 {
    crabby::time::monotonic_ns()
}

/// Does nothing at its rate; measures itself (and the coordinator, if `coordinator`).
struct Nothing {
    secs: f64,
    out: PathBuf,
    coordinator: bool,
    cpu0: u64,
    coord0: u64,
    t0: u64,
    ender: bool,
    us0: (f64, f64),
    n: u64,
}

impl Block for Nothing {
    fn begin(&mut self, _ctx: &mut Context) -> Result<()> {
        self.t0 = now_ns();
        self.cpu0 = cpu_ns("self");
        self.us0 = user_sys();
        if self.coordinator {
            self.coord0 = cpu_ns(&nix::unistd::getppid().to_string());
        }
        Ok(())
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        // Nothing, but the ender looks at the clock every 64 loops.
        self.n += 1;
        Ok(if self.ender && self.n % 64 == 0 && ctx.t() > self.secs {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
    fn finish(&mut self, _ctx: &mut Context) -> Result<()> {
        let wall = (now_ns() - self.t0) as f64;
        let me = (cpu_ns("self") - self.cpu0) as f64 / wall * 100.0;
        let coord = if self.coordinator {
            (cpu_ns(&nix::unistd::getppid().to_string()) - self.coord0) as f64 / wall * 100.0
        } else {
            f64::NAN
        };
        let (u, s) = user_sys();
        let user = (u - self.us0.0) * 1e9 / wall * 100.0;
        let sys = (s - self.us0.1) * 1e9 / wall * 100.0;
        let _ = std::fs::write(&self.out, format!("{me} {coord} {user} {sys}"));
        Ok(())
    }
}

fn fresh_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("crabby-bench-loop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn read_figures(p: &Path) -> Vec<f64> {
    let s = std::fs::read_to_string(p).unwrap();
    s.split_whitespace()
        .map(|v| v.parse::<f64>().unwrap())
        .collect()
}

/// One Block's figures: % of a core (exact), and the rough user / system split.
struct Figures {
    cpu: f64,
    user: f64,
    sys: f64,
}

/// `n` Blocks at `hz` (free-running if `None`) for `secs`: (each Block's figures, the
/// coordinator's %, the first Block's loops).
fn blocks(n: usize, hz: Option<f64>, secs: f64) -> (Vec<Figures>, f64, u64) {
    let dir = fresh_dir();
    let mut t = Test::new("bench-loop-cost");
    t.log_file(None)
        .log_levels(log::LevelFilter::Error, log::LevelFilter::Off);
    for i in 0..n {
        t.add_with(
            Nothing {
                secs,
                out: dir.join(format!("{i}")),
                coordinator: i == 0,
                cpu0: 0,
                coord0: 0,
                t0: 0,
                ender: i == 0,
                us0: (0.0, 0.0),
                n: 0,
            },
            match hz {
                Some(hz) => Settings::new().freq(hz),
                None => Settings::new().free_run(),
            }
            .name(format!("nothing-{i}")),
        );
    }
    let r = t.run().expect("loop-cost run");
    for b in &r.blocks {
        if b.missed_deadlines > 0 {
            println!("  ({}: {} missed deadlines)", b.name, b.missed_deadlines);
        }
    }
    let mut each = Vec::new();
    let mut coord = f64::NAN;
    for i in 0..n {
        let f = read_figures(&dir.join(format!("{i}")));
        each.push(Figures {
            cpu: f[0],
            user: f[2],
            sys: f[3],
        });
        if i == 0 {
            coord = f[1];
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    (each, coord, r.blocks[0].loops)
}

/// The floor: a forked process waking at `hz` on absolute deadlines for `secs`, nothing else.
fn floor(hz: f64, secs: f64) -> f64 {
    let dir = fresh_dir();
    let out = dir.join("floor");
    let mut children = crabby::process::ChildSet::new();
    let o = out.clone();
    children
        .spawn("floor", move || {
            let _ = nix::sys::prctl::set_timerslack(1);
            let period = (1e9 / hz) as u64;
            let t0 = now_ns();
            let cpu0 = cpu_ns("self");
            let mut next = t0;
            let end = t0 + (secs * 1e9) as u64;
            while next < end {
                next += period;
                let ts = nix::sys::time::TimeSpec::new(
                    (next / 1_000_000_000) as i64,
                    (next % 1_000_000_000) as i64,
                );
                let _ = nix::time::clock_nanosleep(
                    nix::time::ClockId::CLOCK_MONOTONIC,
                    nix::time::ClockNanosleepFlags::TIMER_ABSTIME,
                    &ts,
                );
            }
            let pct = (cpu_ns("self") - cpu0) as f64 / (now_ns() - t0) as f64 * 100.0;
            let _ = std::fs::write(&o, pct.to_string());
            0
        })
        .expect("fork the floor process");
    while !children.all_exited() {
        children.reap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pct = std::fs::read_to_string(&out).unwrap().parse().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    pct
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn main() {
    let secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5.0);
    let hz = 1000.0;
    if std::env::args().any(|a| a == "--one") {
        // One paced Block only, for a profiler (`perf record`, `strace -c`).
        let (one, _, _) = blocks(1, Some(hz), secs);
        println!("1 Block: {:.2} % of a core", one[0].cpu);
        return;
    }
    println!("loop cost: paced Blocks doing nothing at {hz} Hz for {secs} s, health plane on");
    let f = floor(hz, secs);
    println!("  floor (a bare clock_nanosleep loop, same rate):  {f:.2} % of a core");
    let (one, coord1, _) = blocks(1, Some(hz), secs);
    println!(
        "  1 Block:   {:.2} % of a core (user ~{:.2} %, system ~{:.2} %; coordinator {:.2} %)",
        one[0].cpu, one[0].user, one[0].sys, coord1
    );
    let (ten, coord10, _) = blocks(10, Some(hz), secs);
    let cpus: Vec<f64> = ten.iter().map(|f| f.cpu).collect();
    println!(
        "  10 Blocks: {:.2} % of a core each (min {:.2}, max {:.2}; user ~{:.2} %, system ~{:.2} %), {:.1} % together (coordinator {:.2} %)",
        mean(&cpus),
        cpus.iter().cloned().fold(f64::MAX, f64::min),
        cpus.iter().cloned().fold(0.0, f64::max),
        mean(&ten.iter().map(|f| f.user).collect::<Vec<_>>()),
        mean(&ten.iter().map(|f| f.sys).collect::<Vec<_>>()),
        cpus.iter().sum::<f64>(),
        coord10
    );
    let f = floor(hz, secs);
    println!("  floor again:                                     {f:.2} % of a core");
    // The loop's own work without any sleep: a free-running Block doing nothing.
    let free_secs = 1.0;
    let (_, _, loops) = blocks(1, None, free_secs);
    println!(
        "  free-running Block doing nothing: {:.2} M loops/s, {:.0} ns per loop (at 1 kHz: {:.3} % of a core)",
        loops as f64 / free_secs / 1e6,
        free_secs * 1e9 / loops as f64,
        free_secs * 1e9 / loops as f64 * 1e3 / 1e9 * 100.0
    );
    println!("  (issue 10 aim: <= 1 % of a core for one Block at 1 kHz; Crappy: 33 %)");
}
