//! Camera benchmarks (prints figures; run with `cargo bench --bench camera`).
//!
//! 1. Ring transport: 2048×2048 8-bit frames from a synthetic source (a memcpy of a
//!    pre-rendered frame into the slot, as a camera DMA or driver copy would) to 3 reader
//!    processes (one `Latest`, two `Every`): frames/s per reader, frames skipped, and the
//!    writer's cost per frame compared with a plain memcpy of the frame.
//! 2. Recorder: a camera Block with a free-running 2048×2048 FakeCamera and a recorder child
//!    saving raw or TIFF files (to a temp folder): frames/s acquired and saved. With
//!    `EveryOrOverrun` the camera never waits (lost frames counted); with `Every` it waits
//!    for the disk (nothing lost). After one warm-up run (the first run of a process pays
//!    for fresh page-cache pages), raw and TIFF alternate, with `dd`'s buffered bandwidth on
//!    the same disk between rounds; every measurement starts after a `sync`, so none is
//!    throttled by the writeback of the one before (that is what made raw, measured right
//!    after other writes, look 3× slower than TIFF). PNG is not measured: the FakeCamera's gradient
//!    compresses trivially, so the figure would mean nothing (see linux-limits.md: ~9 ms per
//!    real 2048×2048 frame with fast compression).
//!
//! Figures are noisy on a shared 2-core machine: each measurement is repeated.

use crabby::camera::{FrameFormat, FrameInfo, FrameRing, Next, PixelFormat, ReadMode, RingConfig};
use crabby::{Block, Context, Flow, Test};
use crabby_blocks::camera::{CameraBlock, ImageFormat};
use crabby_hardware::camera::FakeCamera;
use std::time::{Duration, Instant};

const W: u32 = 2048;
const H: u32 = 2048;

fn fork_child(f: impl FnOnce() -> i32) -> nix::unistd::Pid {
    nix::unistd::Pid::from_raw(crabby::process::fork_child(f).expect("fork"))
}

/// Plain memcpy of one frame into `bufs` pre-faulted buffers in turn (1: always the same
/// buffer; 8: the ring's memory footprint): ns per frame (best of a few runs).
fn memcpy_ns(src: &[u8], n: u32, bufs: usize) -> f64 {
    let mut dst: Vec<Vec<u8>> = (0..bufs).map(|_| vec![1u8; src.len()]).collect();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for i in 0..n {
            let d = &mut dst[i as usize % bufs];
            d.copy_from_slice(src);
            d[0] = i as u8;
            std::hint::black_box(&mut *d);
        }
        best = best.min(t.elapsed().as_nanos() as f64 / f64::from(n));
    }
    best
}

struct RingRun {
    fps_writer: f64,
    ns_per_frame: f64,
    reads: Vec<(ReadMode, u64, u64, u64)>,
    waits: u64,
}

/// `src` is a frame of `src.len() / H` × `H` pixels.
fn ring_run(src: &[u8], n: u64, slots: usize) -> RingRun {
    let format = FrameFormat::new(src.len() as u32 / H, H, PixelFormat::Mono8);
    let modes = [ReadMode::Latest, ReadMode::Every, ReadMode::Every];
    let ring = FrameRing::new(&RingConfig::new(format, &modes).slots(slots)).expect("ring");
    let mut pids = Vec::new();
    for (i, _) in modes.iter().enumerate() {
        let r = ring.clone();
        let pid = fork_child(move || {
            let mut rd = r.reader(i).expect("reader taken once");
            let mut sum = 0u64;
            loop {
                match rd.next(Duration::from_secs(10)) {
                    // A reader looks at one byte per 64 KiB: the ring's cost, not the reader's.
                    Ok(Next::Frame(f)) => {
                        sum += f.iter().step_by(65536).map(|&b| u64::from(b)).sum::<u64>()
                    }
                    Ok(Next::Closed) => break,
                    _ => return 1,
                }
            }
            std::hint::black_box(sum);
            0
        });
        ring.set_reader_pid(i, pid.as_raw() as u32);
        pids.push(pid);
    }
    // Let the readers attach (touch their pages) before timing.
    std::thread::sleep(Duration::from_millis(200));
    let mut w = ring.writer().expect("writer taken once");
    let t = Instant::now();
    for i in 0..n {
        let mut slot = w
            .acquire(Duration::from_secs(5))
            .expect("acquire")
            .expect("slot in time");
        let buf = slot.buf();
        buf.copy_from_slice(src);
        buf[0] = i as u8;
        slot.publish(FrameInfo::now(i, format)).expect("publish");
    }
    let el = t.elapsed();
    w.close();
    for pid in pids {
        let _ = nix::sys::wait::waitpid(pid, None);
    }
    let reads = modes
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let s = ring.reader_stats(i);
            (*m, s.read, s.skipped, s.overruns)
        })
        .collect();
    RingRun {
        fps_writer: n as f64 / el.as_secs_f64(),
        ns_per_frame: el.as_nanos() as f64 / n as f64,
        reads,
        waits: ring.writer_stats().waits,
    }
}

fn bench_ring() {
    println!(
        "== Frame ring: {W}x{H} mono8 ({} MiB) frames, 3 reader processes ==",
        (W * H) >> 20
    );
    let src: Vec<u8> = (0..(W * H) as usize).map(|i| (i % 251) as u8).collect();
    let n = 2000;
    let mut costs = Vec::new();
    let mut costs8 = Vec::new();
    for run in 0..5 {
        // memcpy measured just before and after the ring run, to share its conditions.
        let (b1, b8) = (memcpy_ns(&src, 200, 1), memcpy_ns(&src, 200, 8));
        let r = ring_run(&src, n, 8);
        let mc = (b1 + memcpy_ns(&src, 200, 1)) / 2.0;
        let mc8 = (b8 + memcpy_ns(&src, 200, 8)) / 2.0;
        let overhead = (r.ns_per_frame - mc) / mc * 100.0;
        let overhead8 = (r.ns_per_frame - mc8) / mc8 * 100.0;
        costs.push(overhead);
        costs8.push(overhead8);
        println!(
            "run {run}: writer {:.0} frames/s ({:.3} ms/frame); memcpy into one buffer {:.3} ms (ring cost {:+.1} %), into 8 buffers in turn {:.3} ms (ring cost {:+.1} %); writer waited {} times",
            r.fps_writer,
            r.ns_per_frame / 1e6,
            mc / 1e6,
            overhead,
            mc8 / 1e6,
            overhead8,
            r.waits
        );
        for (m, read, skipped, overruns) in &r.reads {
            let fps = *read as f64 * r.fps_writer / n as f64;
            println!(
                "  reader {m:?}: read {read} ({fps:.0} frames/s), skipped {skipped} ({:.1} %), overruns {overruns}",
                *skipped as f64 * 100.0 / n as f64
            );
        }
    }
    // The protocol alone: 1×2048 frames (2 KiB), so the memcpy is negligible.
    let tiny = vec![7u8; H as usize];
    let mut per_frame = Vec::new();
    for _ in 0..3 {
        let r = ring_run(&tiny, 20_000, 8);
        per_frame.push(r.ns_per_frame);
    }
    per_frame.sort_by(f64::total_cmp);
    println!(
        "protocol cost (2 KiB frames, 3 readers woken per frame): {:.1} µs per frame (median of 3), i.e. {:.1} % of one 4 MiB memcpy",
        per_frame[1] / 1e3,
        per_frame[1] / memcpy_ns(&src, 200, 1) * 100.0
    );
    costs8.sort_by(f64::total_cmp);
    println!(
        "median ring cost over a memcpy into 8 buffers in turn (same footprint as the ring): {:+.1} %",
        costs8[costs8.len() / 2]
    );
    costs.sort_by(f64::total_cmp);
    println!(
        "median ring cost over a plain memcpy of the frame: {:+.1} %",
        costs[costs.len() / 2]
    );
}

/// Counts the frames announced by the camera Block; writes the count to `path` in finish.
struct CountFrames {
    n: u64,
    path: std::path::PathBuf,
}
impl Block for CountFrames {
    fn step(&mut self, ctx: &mut Context) -> crabby::Result<Flow> {
        ctx.wait(Duration::from_millis(50));
        self.n += ctx
            .recv_all_per_link()
            .iter()
            .map(|v| v.len() as u64)
            .sum::<u64>();
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> crabby::Result<()> {
        self.n += ctx
            .drain_until_ended(Duration::from_secs(5))
            .iter()
            .map(|v| v.len() as u64)
            .sum::<u64>();
        std::fs::write(&self.path, self.n.to_string()).map_err(|e| crabby::Error::io("count", e))
    }
}

struct StopAfter(f64);
impl Block for StopAfter {
    fn step(&mut self, ctx: &mut Context) -> crabby::Result<Flow> {
        Ok(if ctx.t() >= self.0 {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// One recorder run: frames acquired and saved per second.
/// Waits until the kernel has written every dirty page back, so each measurement starts
/// from the same state (otherwise the run after a big write is throttled by the writeback
/// of the previous one: that, not the format, made raw look 3× slower than TIFF).
fn settle_disk() {
    let _ = std::process::Command::new("sync").status();
}

fn recorder_run(
    base: &std::path::Path,
    tag: &str,
    format: ImageFormat,
    mode: ReadMode,
) -> Option<(f64, f64)> {
    let dir = base.join(tag);
    let count = base.join(format!("count-{tag}"));
    settle_disk();
    let cam = FakeCamera::new(W, H, 0.0, 500.0).expect("camera");
    let mut test = Test::new("bench-recorder");
    test.log_file(None);
    test.log_levels(crabby::LevelFilter::Error, crabby::LevelFilter::Off);
    let c = test.add(CameraBlock::new(cam).record(&dir, format).record_mode(mode));
    let s = test.add(CountFrames {
        n: 0,
        path: count.clone(),
    });
    test.link(c, s);
    test.add(StopAfter(0.5));
    if let Err(e) = test.run() {
        println!("  run failed: {e}");
        return None;
    }
    let acquired: u64 = std::fs::read_to_string(&count)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let saved = std::fs::read_to_string(dir.join("metadata.csv"))
        .map(|c| c.lines().count().saturating_sub(1) as u64)
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&count);
    Some((acquired as f64 / 0.5, saved as f64 / 0.5))
}

/// `dd`'s buffered write bandwidth on the same disk (the temp folder), in frames/s of
/// 2048×2048 mono8: 200 blocks of one frame each, without a final sync, as the recorder.
fn dd_frames_per_s(base: &std::path::Path) -> Option<f64> {
    let file = base.join("dd.bin");
    settle_disk();
    let out = std::process::Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", file.display()))
        .arg(format!("bs={}", W * H))
        .arg("count=200")
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&file);
    // "838860800 bytes (839 MB, 800 MiB) copied, 0.301 s, 2.8 GB/s"
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().find(|l| l.contains("copied"))?;
    let after = &line[line.find("copied, ")? + 8..];
    let secs: f64 = after.split(' ').next()?.parse().ok()?;
    Some(200.0 / secs)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
}

fn bench_recorder() {
    println!(
        "\n== Recorder: {W}x{H} mono8 frames from a free-running FakeCamera, 0.5 s per run =="
    );
    println!("   (EveryOrOverrun: the camera never waits, the recorder saves what it can; one");
    println!(
        "   warm-up run first, then raw and TIFF alternate, with dd on the same disk between)"
    );
    let base = std::env::temp_dir().join(format!("crabby-bench-rec-{}", std::process::id()));
    std::fs::create_dir_all(&base).expect("bench folder");
    // Warm-up: the first run of a process pays for fresh page-cache pages; not counted.
    let _ = recorder_run(&base, "warmup", ImageFormat::Tiff, ReadMode::EveryOrOverrun);
    let (mut raw, mut tiff, mut dd) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..4 {
        let order = if round % 2 == 0 {
            [ImageFormat::Raw, ImageFormat::Tiff]
        } else {
            [ImageFormat::Tiff, ImageFormat::Raw]
        };
        for format in order {
            if let Some((acq, saved)) = recorder_run(
                &base,
                &format!("{round}-{format:?}"),
                format,
                ReadMode::EveryOrOverrun,
            ) {
                println!("  {format:?}: acquired {acq:.0} frames/s, saved {saved:.0} frames/s");
                match format {
                    ImageFormat::Raw => raw.push(saved),
                    _ => tiff.push(saved),
                }
            }
        }
        if let Some(f) = dd_frames_per_s(&base) {
            println!(
                "  dd (buffered, same disk): {f:.0} frames/s ({:.2} GB/s)",
                f * (W * H) as f64 / 1e9
            );
            dd.push(f);
        }
    }
    println!(
        "  median saved: raw {:.0} frames/s, TIFF {:.0} frames/s; dd {:.0} frames/s",
        median(raw),
        median(tiff),
        median(dd)
    );
    if let Some((_, saved)) = recorder_run(&base, "every", ImageFormat::Tiff, ReadMode::Every) {
        println!(
            "  TIFF (Every, the camera waits for the disk, nothing lost): {saved:.0} frames/s"
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}

fn main() {
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if only.as_deref().is_none_or(|o| "ring".contains(o)) {
        bench_ring();
    }
    if only.as_deref().is_none_or(|o| "recorder".contains(o)) {
        bench_recorder();
    }
}
