//! Runtime benchmarks (prints its figures): start-up, stop, pacing accuracy and CPU, memory.
//! Run: `cargo bench --bench runtime`.

use crabby::{Block, Context, Flow, Result, Settings, Test};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn cpu_seconds() -> f64 {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let tv = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 * 1e-6;
    tv(u.user_time()) + tv(u.system_time())
}

/// Writes the time of its first loop; the `ender` variant ends the test once `n` Blocks
/// have written theirs; `stop_after` asks for the stop and writes when it did.
struct Probe {
    dir: PathBuf,
    first: bool,
    n: usize,
    ender: bool,
    stop_after: Option<f64>,
    hang: bool,
}

impl Probe {
    fn new(dir: &Path) -> Self {
        Probe {
            dir: dir.to_path_buf(),
            first: true,
            n: 0,
            ender: false,
            stop_after: None,
            hang: false,
        }
    }
}

impl Block for Probe {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if self.first {
            self.first = false;
            let now = crabby::time::monotonic_ns();
            std::fs::write(
                self.dir.join(format!("{}.first", ctx.name())),
                now.to_string(),
            )
            .unwrap();
        }
        if self.ender {
            let n = std::fs::read_dir(&self.dir)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".first")
                })
                .count();
            if n >= self.n {
                return Ok(Flow::Stop);
            }
        }
        if let Some(s) = self.stop_after {
            if ctx.t() > s {
                std::fs::write(
                    self.dir.join("stop_at"),
                    crabby::time::monotonic_ns().to_string(),
                )
                .unwrap();
                self.stop_after = None;
                ctx.stop_test();
            }
        }
        if self.hang && ctx.t() > 0.1 {
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        Ok(Flow::Continue)
    }
}

fn quiet(t: &mut Test) {
    t.log_file(None)
        .log_levels(log::LevelFilter::Warn, log::LevelFilter::Off);
}

fn fresh_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crabby-bench-rt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn read_ns(p: &Path) -> u64 {
    std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
}

fn startup(n: usize) -> f64 {
    let dir = fresh_dir("start");
    let mut t = Test::new("bench-startup");
    quiet(&mut t);
    for i in 0..n {
        let mut p = Probe::new(&dir);
        if i == 0 {
            p.ender = true;
            p.n = n;
        }
        t.add_with(p, Settings::new().freq(1000.0));
    }
    let t_run = crabby::time::monotonic_ns();
    t.run().expect("startup run");
    let last_first = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".first"))
        .map(|e| read_ns(&e.path()))
        .max()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (last_first - t_run) as f64 / 1e6
}

fn stop(n: usize, hang: bool) -> f64 {
    let dir = fresh_dir("stop");
    let mut t = Test::new("bench-stop");
    quiet(&mut t);
    t.grace(Duration::from_secs(1), Duration::from_millis(500));
    for i in 0..n {
        let mut p = Probe::new(&dir);
        if i == 0 {
            p.stop_after = Some(0.2);
        }
        if i == 1 {
            p.hang = hang;
        }
        t.add_with(p, Settings::new().freq(100.0));
    }
    let r = t.run();
    let end = crabby::time::monotonic_ns();
    if !hang {
        r.expect("stop run");
    }
    let at = read_ns(&dir.join("stop_at"));
    let _ = std::fs::remove_dir_all(&dir);
    (end - at) as f64 / 1e6
}

struct Paced {
    secs: f64,
    out: PathBuf,
    cpu0: f64,
    t_begin: f64,
}
impl Block for Paced {
    fn begin(&mut self, ctx: &mut Context) -> Result<()> {
        self.cpu0 = cpu_seconds();
        self.t_begin = ctx.t();
        Ok(())
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        Ok(if ctx.t() > self.secs {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        let cpu = (cpu_seconds() - self.cpu0) / (ctx.t() - self.t_begin);
        std::fs::write(&self.out, format!("{:.3}", cpu * 100.0)).unwrap();
        Ok(())
    }
}

fn pacing(hz: f64) {
    let dir = fresh_dir("pace");
    let out = dir.join("cpu");
    let mut t = Test::new("bench-pacing");
    quiet(&mut t);
    t.add_with(
        Paced {
            secs: 5.0,
            out: out.clone(),
            cpu0: 0.0,
            t_begin: 0.0,
        },
        Settings::new().name("paced").freq(hz),
    );
    let r = t.run().expect("pacing run");
    let b = r.block("paced").unwrap();
    let cpu = std::fs::read_to_string(&out).unwrap();
    let mean = b.mean_freq.unwrap();
    println!(
        "pacing {hz:>6} Hz: achieved {mean:.3} Hz ({:+.4} %), p99 |period − 1/f| {:.0} µs, max wake-up lateness {:.0} µs, missed deadlines {}, CPU {cpu} %",
        (mean - hz) / hz * 100.0,
        b.jitter_p99_us.unwrap(),
        b.max_late_us.unwrap(),
        b.missed_deadlines
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sums the PSS of its parent (the coordinator) and of every process it forked.
struct Pss {
    out: PathBuf,
    done: bool,
}
fn pss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
impl Block for Pss {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if !self.done && ctx.t() > 0.5 {
            self.done = true;
            let ppid = nix::unistd::getppid().as_raw();
            let mut total = pss_kib(ppid);
            for e in std::fs::read_dir("/proc").unwrap().flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let ppid_of = stat
                    .rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<i32>().ok());
                if ppid_of == Some(ppid) {
                    total += pss_kib(pid);
                }
            }
            std::fs::write(&self.out, total.to_string()).unwrap();
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }
}

fn memory() {
    let dir = fresh_dir("mem");
    let out = dir.join("pss");
    let mut t = Test::new("bench-memory");
    quiet(&mut t);
    t.add(Pss {
        out: out.clone(),
        done: false,
    });
    for _ in 0..9 {
        t.add(Probe::new(&dir));
    }
    t.run().expect("memory run");
    let kib: u64 = std::fs::read_to_string(&out).unwrap().parse().unwrap();
    println!(
        "memory: summed PSS of a 10-Block graph + coordinator: {:.1} MiB (Crappy: 65 MiB)",
        kib as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    for n in [2, 10, 50] {
        let v: Vec<f64> = (0..5).map(|_| startup(n)).collect();
        println!("start-up, run() to every Block in its first loop, {n:>2} Blocks: median {:.2} ms (min {:.2}, max {:.2}) (Crappy: 12 ms for 2, 41 ms for 10)", median(v.clone()), v.iter().cloned().fold(f64::MAX, f64::min), v.iter().cloned().fold(0.0, f64::max));
    }
    for n in [2, 10] {
        let v: Vec<f64> = (0..5).map(|_| stop(n, false)).collect();
        println!("stop, request to run() returning, {n:>2} Blocks at 100 Hz: median {:.2} ms (max {:.2}) (Crappy: ~510 ms)", median(v.clone()), v.iter().cloned().fold(0.0, f64::max));
    }
    let v: Vec<f64> = (0..3).map(|_| stop(2, true)).collect();
    println!("stop with a hung Block (grace 1 s): median {:.1} ms = grace + {:.1} ms (Crappy: 3.0 s with its 3 s grace)", median(v.clone()), median(v) - 1000.0);
    for hz in [100.0, 1000.0, 5000.0] {
        pacing(hz);
    }
    println!("  (Crappy: 99.5, 981, 4332 Hz achieved; 13 % of a core at 1 kHz)");
    memory();
}
