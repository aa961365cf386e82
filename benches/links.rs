//! Link benchmarks (prints its figures): latency of a small sample to a waiting receiver,
//! and throughput with a free-running and a 200 Hz receiver. Run: `cargo bench --bench links`.

use crabby::{Block, Context, Flow, LinkOptions, Result, Sample, Settings, Test};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn cpu_seconds() -> f64 {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let tv = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 * 1e-6;
    tv(u.user_time()) + tv(u.system_time())
}

/// Sends `{t_ns}` (send time on CLOCK_MONOTONIC) at its paced rate for `secs`.
struct Stamper {
    secs: f64,
    label: crabby::Label,
}
impl Block for Stamper {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let label = self.label.clone(); // built once, cloned per sample: no allocation
        ctx.send(&Sample::new().with(label, crabby::sys::monotonic_ns() as i64))?;
        Ok(if ctx.t() > self.secs {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// Waits on its input; records the one-way latency of each sample and its own CPU use.
struct LatencyProbe {
    out: PathBuf,
    lat_ns: Vec<u64>,
    cpu0: f64,
    t0: f64,
}
impl Block for LatencyProbe {
    fn begin(&mut self, ctx: &mut Context) -> Result<()> {
        self.cpu0 = cpu_seconds();
        self.t0 = ctx.t();
        Ok(())
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if ctx.wait(Duration::from_secs(1)) {
            let now = crabby::sys::monotonic_ns();
            let lat = &mut self.lat_ns;
            ctx.recv_each(|_, s| {
                if let Some(crabby::Value::Int(t)) = s.get("t_ns") {
                    lat.push(now.saturating_sub(*t as u64));
                }
            });
        }
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        let cpu = (cpu_seconds() - self.cpu0) / (ctx.t() - self.t0);
        let mut v = self.lat_ns.clone();
        v.sort_unstable();
        let q = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)] as f64 / 1e3;
        let text = format!(
            "{} {:.1} {:.1} {:.1} {:.2}",
            v.len(),
            q(0.5),
            q(0.99),
            *v.last().unwrap() as f64 / 1e3,
            cpu * 100.0
        );
        std::fs::write(&self.out, text).unwrap();
        Ok(())
    }
}

/// Sends 2-label samples as fast as the link allows for `secs`.
struct Flood {
    secs: f64,
    seq: i64,
}
impl Block for Flood {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let seq = crabby::Label::new("seq");
        let x = crabby::Label::new("x");
        for _ in 0..1000 {
            ctx.send(
                &Sample::new()
                    .with(seq.clone(), self.seq)
                    .with(x.clone(), self.seq as f64),
            )?;
            self.seq += 1;
        }
        Ok(if ctx.t() > self.secs {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// Counts and checks sequence numbers.
struct Count {
    out: PathBuf,
    next: i64,
    gaps: u64,
}
impl Count {
    fn take(&mut self, s: &Sample) {
        if let Some(crabby::Value::Int(v)) = s.get("seq") {
            if *v != self.next {
                self.gaps += 1;
            }
            self.next = v + 1;
        }
    }
}
impl Block for Count {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let mut batch = Vec::new();
        ctx.recv_each(|_, s| batch.push(s));
        for s in &batch {
            self.take(s);
        }
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        for s in ctx
            .drain_until_ended(Duration::from_secs(5))
            .into_iter()
            .flatten()
        {
            self.take(&s);
        }
        std::fs::write(&self.out, format!("{} {}", self.next, self.gaps)).unwrap();
        Ok(())
    }
}

fn tmp() -> PathBuf {
    let d = std::env::temp_dir().join(format!("crabby-bench-links-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn latency(dir: &Path) {
    let out = dir.join("lat");
    let mut t = Test::new("bench-latency");
    t.log_file(None)
        .log_levels(log::LevelFilter::Warn, log::LevelFilter::Off);
    let a = t.add_with(
        Stamper {
            secs: 5.0,
            label: crabby::Label::new("t_ns"),
        },
        Settings::new().freq(1000.0),
    );
    let b = t.add_with(
        LatencyProbe {
            out: out.clone(),
            lat_ns: Vec::with_capacity(10_000),
            cpu0: 0.0,
            t0: 0.0,
        },
        Settings::new().free_run(),
    );
    t.link(a, b);
    t.run().expect("latency run");
    let r = std::fs::read_to_string(&out).unwrap();
    let f: Vec<&str> = r.split(' ').collect();
    println!("latency, sender 1 kHz, receiver waiting: {} samples, p50 {} µs, p99 {} µs, max {} µs, receiver CPU {} %", f[0], f[1], f[2], f[3], f[4]);
    println!("  (Crappy: p50 37 µs, p99 110 µs with a receiver burning a core; 2.7 ms with a 200 Hz receiver)");
}

fn throughput(dir: &Path, receiver: Settings, what: &str) {
    let out = dir.join("thr");
    let mut t = Test::new("bench-throughput");
    t.log_file(None)
        .log_levels(log::LevelFilter::Warn, log::LevelFilter::Off);
    let secs = 3.0;
    let a = t.add_with(Flood { secs, seq: 0 }, Settings::new().free_run());
    let b = t.add_with(
        Count {
            out: out.clone(),
            next: 0,
            gaps: 0,
        },
        receiver,
    );
    t.link_with(a, b, LinkOptions::new());
    let r = t.run().expect("throughput run");
    let got = std::fs::read_to_string(&out).unwrap();
    let f: Vec<u64> = got.split(' ').map(|x| x.parse().unwrap()).collect();
    let l = &r.links[0];
    println!(
        "throughput, free-running sender → {what}: {:.2} M samples/s delivered over {:.1} s; sent {}, received {}, lost {} (gaps seen {})",
        f[0] as f64 / r.duration_s / 1e6,
        r.duration_s,
        l.sent,
        l.received,
        l.sent - l.received,
        f[1]
    );
}

/// The floor under the same conditions: one process stamps a shared word and wakes a futex
/// at 1 kHz (absolute deadlines), another waits on it, no crabby in between.
fn futex_floor() {
    use crabby::sys::{futex_wait, futex_wake, monotonic_ns, SharedRegion};
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    let region = SharedRegion::new(4096, true).unwrap();
    // The region is zeroed, page-aligned and shared: a u32 futex word and a u64 stamp.
    let word = shared_atomic::<AtomicU32>(&region, 0);
    let stamp = shared_atomic::<AtomicU64>(&region, 8);
    let n = 5000;
    // SAFETY: this bench's main thread is the only thread; the child only touches the region
    // and leaves with exit_now.
    match unsafe { crabby::sys::fork() }.unwrap() {
        None => {
            let _ = nix::sys::prctl::set_timerslack(1);
            let start = monotonic_ns() + 10_000_000;
            for k in 0..n as u64 {
                let deadline = start + k * 1_000_000;
                while monotonic_ns() < deadline {
                    futex_wait(&AtomicU32::new(0), 0, Some(deadline));
                }
                stamp.store(monotonic_ns(), Ordering::SeqCst);
                word.fetch_add(1, Ordering::SeqCst);
                futex_wake(word);
            }
            crabby::sys::exit_now(0);
        }
        Some(pid) => {
            let mut lat = Vec::with_capacity(n);
            let mut seen = 0;
            // Until the last wake-up (a wake-up missed while this process was descheduled
            // is simply not measured).
            while seen < n as u32 {
                let v = word.load(Ordering::SeqCst);
                if v == seen {
                    futex_wait(word, v, Some(monotonic_ns() + 1_000_000_000));
                    continue;
                }
                seen = v;
                lat.push(monotonic_ns().saturating_sub(stamp.load(Ordering::SeqCst)));
            }
            let _ = nix::sys::wait::waitpid(pid, None);
            lat.sort_unstable();
            let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1e3;
            println!(
                "floor, bare futex wake-up paced at 1 kHz (no crabby): p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
                q(0.5),
                q(0.99),
                *lat.last().unwrap() as f64 / 1e3
            );
        }
    }
}

/// An atomic integer at `offset` in a zeroed shared mapping, borrowed from the mapping (so
/// it cannot outlive it). Only atomic integers: for them all-zero bytes are a valid value and
/// shared access from several processes is what they are for.
fn shared_atomic<T: SharedAtomic>(region: &crabby::sys::SharedRegion, offset: usize) -> &T {
    let size = std::mem::size_of::<T>();
    assert!(
        offset
            .checked_add(size)
            .is_some_and(|end| end <= region.len()),
        "offset {offset} + {size} outside the {}-byte region",
        region.len()
    );
    assert!(
        offset % std::mem::align_of::<T>() == 0,
        "misaligned offset {offset}"
    );
    // SAFETY: checked above: `offset..offset + size` lies inside the mapping, and the mapping
    // is page-aligned so `base + offset` is aligned for T. T is an atomic integer (the sealed
    // trait below), for which all-zero bytes (a fresh mapping) are valid and concurrent
    // access through shared references is sound. The reference borrows `region`, so it
    // cannot outlive the mapping.
    unsafe { &*(region.as_ptr().add(offset) as *const T) }
}

/// The types `shared_atomic` may hand out.
trait SharedAtomic: Sync {}
impl SharedAtomic for std::sync::atomic::AtomicU32 {}
impl SharedAtomic for std::sync::atomic::AtomicU64 {}

fn main() {
    let dir = tmp();
    futex_floor();
    latency(&dir);
    throughput(&dir, Settings::new().free_run(), "free-running receiver");
    throughput(
        &dir,
        Settings::new().freq(200.0),
        "receiver paced at 200 Hz",
    );
    println!("  (Crappy: ~90 k/s with 4.4 % lost free-running; 53 % lost with a 200 Hz receiver)");
    let _ = std::fs::remove_dir_all(&dir);
}
