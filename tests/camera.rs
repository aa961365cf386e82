//! Cameras across processes: the frame ring with reader processes (latest / every frame,
//! skip and overrun counts, crashed reader or writer), and the camera Block with its
//! recorder and processing children.
//!
//! Run with `cargo test --test camera` (own harness: every case in its own process).

// The shared `ensure!` macro negates its condition, which clippy flags on float comparisons.

mod common;

use common::case;
use crabby::camera::{
    FrameFormat, FrameInfo, FrameRing, Next, PixelFormat, ReadMode, RingConfig, Writer,
};
use std::time::{Duration, Instant};

fn main() {
    let cases = vec![
        case(
            "ring_three_reader_processes",
            60,
            ring_three_reader_processes,
        ),
        case(
            "ring_slow_every_reader_throttles_writer",
            60,
            ring_slow_every_reader_throttles_writer,
        ),
        case(
            "ring_crashed_reader_does_not_wedge_writer",
            60,
            ring_crashed_reader_does_not_wedge_writer,
        ),
        case(
            "ring_crashed_writer_is_reported_to_reader",
            60,
            ring_crashed_writer_is_reported_to_reader,
        ),
        case(
            "camera_block_records_frames_and_metadata",
            60,
            camera_block_records_frames_and_metadata,
        ),
        case(
            "camera_block_processing_results_reach_receiver",
            60,
            camera_block_processing_results_reach_receiver,
        ),
        case(
            "camera_block_child_failure_stops_test",
            60,
            camera_block_child_failure_stops_test,
        ),
        case(
            "camera_block_software_trigger",
            60,
            camera_block_software_trigger,
        ),
        case(
            "camera_block_camera_failure_reaps_children",
            60,
            camera_block_camera_failure_reaps_children,
        ),
        case(
            "camera_block_trigger_burst_gives_one_frame_each",
            60,
            camera_block_trigger_burst_gives_one_frame_each,
        ),
        case(
            "camera_block_sigterm_ends_a_stuck_child",
            60,
            camera_block_sigterm_ends_a_stuck_child,
        ),
    ];
    common::main(&cases);
}

const W: u32 = 256;
const H: u32 = 128;

fn fmt() -> FrameFormat {
    FrameFormat::new(W, H, PixelFormat::Mono8)
}

fn shm_entries() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Writes frame `seq`: every byte is `seq as u8`, the first 8 bytes are `seq`.
fn write_frame(w: &mut Writer, seq: u64) -> Result<(), String> {
    let mut slot = w
        .acquire(Duration::from_secs(5))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("writer could not get a slot for frame {seq} within 5 s"))?;
    let buf = slot.buf();
    buf.fill(seq as u8);
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    slot.publish(FrameInfo::now(seq, fmt()))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Checks a frame written by `write_frame`.
fn check_frame(data: &[u8], seq: u64) -> bool {
    data.len() == fmt().bytes()
        && data[..8] == seq.to_le_bytes()
        && data[8..].iter().all(|&b| b == seq as u8)
}

/// Forks a child running `f`; the child leaves with `f`'s exit code.
fn fork_child(f: impl FnOnce() -> i32) -> nix::unistd::Pid {
    nix::unistd::Pid::from_raw(crabby::process::fork_child(f).expect("fork"))
}

fn wait_exit(pid: nix::unistd::Pid) -> Result<i32, String> {
    use nix::sys::wait::{waitpid, WaitStatus};
    match waitpid(pid, None).map_err(|e| e.to_string())? {
        WaitStatus::Exited(_, c) => Ok(c),
        WaitStatus::Signaled(_, s, _) => Ok(-(s as i32)),
        other => Err(format!("unexpected wait status {other:?}")),
    }
}

/// A reader process: reads until the ring closes, checks every frame's content and, for
/// every-frame readers, the order. Exit code 0 if all was right.
fn reader_body(ring: &FrameRing, i: usize, mode: ReadMode, work: Duration) -> i32 {
    let mut r = match ring.reader(i) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("reader {i}: {e}");
            return 9;
        }
    };
    let mut last: Option<u64> = None;
    loop {
        match r.next(Duration::from_secs(10)) {
            Ok(Next::Frame(f)) => {
                if !check_frame(&f, f.seq()) {
                    eprintln!("reader {i}: frame {} torn or wrong", f.seq());
                    return 10;
                }
                if mode == ReadMode::Every && last.is_some_and(|l| f.seq() != l + 1) {
                    eprintln!("reader {i}: frame {} after {last:?}", f.seq());
                    return 11;
                }
                if last.is_some_and(|l| f.seq() <= l) {
                    return 12;
                }
                last = Some(f.seq());
                if !work.is_zero() {
                    // Simulated processing time while the frame is pinned.
                    let end = Instant::now() + work;
                    while Instant::now() < end {
                        std::hint::spin_loop();
                    }
                    if !check_frame(&f, f.seq()) {
                        eprintln!("reader {i}: frame {} changed while pinned", f.seq());
                        return 13;
                    }
                }
            }
            Ok(Next::Closed) => return 0,
            other => {
                eprintln!("reader {i}: unexpected {other:?}");
                return 14;
            }
        }
    }
}

fn ring_three_reader_processes() -> Result<(), String> {
    let shm_before = shm_entries();
    let modes = [ReadMode::Latest, ReadMode::Every, ReadMode::EveryOrOverrun];
    let ring =
        FrameRing::new(&RingConfig::new(fmt(), &modes).slots(6)).map_err(|e| e.to_string())?;
    let mut pids = Vec::new();
    for (i, m) in modes.iter().enumerate() {
        let r = ring.clone();
        // The latest and overrun readers work 200 µs per frame, slower than the writer.
        let work = if *m == ReadMode::Every {
            Duration::ZERO
        } else {
            Duration::from_micros(200)
        };
        let pid = fork_child(move || reader_body(&r, i, *m, work));
        ring.set_reader_pid(i, pid.as_raw() as u32);
        pids.push(pid);
    }
    let mut w = ring.writer().map_err(|e| e.to_string())?;
    const N: u64 = 3000;
    for seq in 0..N {
        write_frame(&mut w, seq)?;
    }
    w.close();
    for (i, pid) in pids.iter().enumerate() {
        let code = wait_exit(*pid)?;
        ensure!(code == 0, "reader {i} exited with {code}");
    }
    let ws = ring.writer_stats();
    ensure!(ws.published == N, "published {}", ws.published);
    let latest = ring.reader_stats(0);
    let every = ring.reader_stats(1);
    let overrun = ring.reader_stats(2);
    println!("writer {ws:?}\nlatest {latest:?}\nevery {every:?}\noverrun {overrun:?}");
    ensure!(
        every.read == N && every.skipped == 0 && every.overruns == 0,
        "every: {every:?}"
    );
    ensure!(
        latest.read + latest.skipped == N,
        "latest: {latest:?} (every frame read or counted)"
    );
    ensure!(
        latest.overruns == 0 && latest.read > 0,
        "latest: {latest:?}"
    );
    ensure!(
        overrun.read + overrun.overruns == N,
        "overrun reader: {overrun:?}"
    );
    ensure!(overrun.skipped == 0, "overrun reader: {overrun:?}");
    drop(ring);
    ensure!(
        shm_entries() == shm_before,
        "something was left in /dev/shm"
    );
    Ok(())
}

fn ring_slow_every_reader_throttles_writer() -> Result<(), String> {
    let modes = [ReadMode::Every, ReadMode::Latest];
    let ring =
        FrameRing::new(&RingConfig::new(fmt(), &modes).slots(4)).map_err(|e| e.to_string())?;
    let r = ring.clone();
    let slow = fork_child(move || reader_body(&r, 0, ReadMode::Every, Duration::from_millis(1)));
    ring.set_reader_pid(0, slow.as_raw() as u32);
    let r = ring.clone();
    let fast = fork_child(move || reader_body(&r, 1, ReadMode::Latest, Duration::ZERO));
    ring.set_reader_pid(1, fast.as_raw() as u32);
    let mut w = ring.writer().map_err(|e| e.to_string())?;
    const N: u64 = 300;
    for seq in 0..N {
        write_frame(&mut w, seq)?;
    }
    w.close();
    ensure!(wait_exit(slow)? == 0, "slow reader failed");
    ensure!(wait_exit(fast)? == 0, "fast reader failed");
    let ws = ring.writer_stats();
    let slow_s = ring.reader_stats(0);
    ensure!(slow_s.read == N && slow_s.overruns == 0, "{slow_s:?}");
    ensure!(
        ws.waits > 0,
        "the writer never waited for the slow every-frame reader: {ws:?}"
    );
    Ok(())
}

fn ring_crashed_reader_does_not_wedge_writer() -> Result<(), String> {
    let shm_before = shm_entries();
    let modes = [ReadMode::Every, ReadMode::Every];
    let ring =
        FrameRing::new(&RingConfig::new(fmt(), &modes).slots(4)).map_err(|e| e.to_string())?;
    // Reader 0 dies (SIGKILL) while holding frame 10 pinned, without closing.
    let r = ring.clone();
    let crasher = fork_child(move || {
        let Ok(mut rd) = r.reader(0) else { return 9 };
        loop {
            if let Ok(Next::Frame(f)) = rd.next(Duration::from_secs(10)) {
                if f.seq() == 10 {
                    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
                }
            }
        }
    });
    ring.set_reader_pid(0, crasher.as_raw() as u32);
    let r = ring.clone();
    let good = fork_child(move || reader_body(&r, 1, ReadMode::Every, Duration::ZERO));
    ring.set_reader_pid(1, good.as_raw() as u32);
    let mut w = ring.writer().map_err(|e| e.to_string())?;
    const N: u64 = 500;
    let t = Instant::now();
    for seq in 0..N {
        write_frame(&mut w, seq)?;
    }
    w.close();
    // Not reaped yet: the writer must have seen a zombie as dead.
    ensure!(
        ring.writer_stats().dead_readers == 1,
        "{:?}",
        ring.writer_stats()
    );
    ensure!(wait_exit(crasher)? == -9, "crasher did not die by SIGKILL");
    ensure!(wait_exit(good)? == 0, "surviving reader failed");
    let good_s = ring.reader_stats(1);
    ensure!(
        good_s.read == N,
        "surviving reader read {} of {N}",
        good_s.read
    );
    ensure!(!ring.reader_stats(0).attached, "dead reader still attached");
    println!("500 frames with a dead reader in {:?}", t.elapsed());
    drop(ring);
    ensure!(
        shm_entries() == shm_before,
        "something was left in /dev/shm"
    );
    Ok(())
}

fn ring_crashed_writer_is_reported_to_reader() -> Result<(), String> {
    let ring =
        FrameRing::new(&RingConfig::new(fmt(), &[ReadMode::Every])).map_err(|e| e.to_string())?;
    let r = ring.clone();
    let writer = fork_child(move || {
        let Ok(mut w) = r.writer() else { return 9 };
        for seq in 0..5 {
            if write_frame(&mut w, seq).is_err() {
                return 1;
            }
        }
        // Dies without closing the ring.
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        2
    });
    let mut rd = ring.reader(0).map_err(|e| e.to_string())?;
    let mut n = 0;
    let t = Instant::now();
    let end = loop {
        match rd.next(Duration::from_secs(5)).map_err(|e| e.to_string())? {
            Next::Frame(f) => {
                ensure!(check_frame(&f, f.seq()), "bad frame");
                n += 1;
            }
            other => break format!("{other:?}"),
        }
    };
    ensure!(wait_exit(writer)? == -9, "writer did not die by SIGKILL");
    ensure!(n == 5, "read {n} frames");
    ensure!(end == "WriterGone", "reader ended with {end}");
    ensure!(
        t.elapsed() < Duration::from_secs(4),
        "reader took {:?} to notice",
        t.elapsed()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The camera Block and its children.

use crate::common::blocks::StrainRamp;
use crabby::camera::{Camera, FrameFormat as Ff};
use crabby::{Block, Context, Flow, Label, Sample, Settings, Test};
use crabby_blocks::camera::{
    CameraBlock, FrameProcessor, ImageFormat, ImageView, PreviewFile, Processed, VideoExtenso,
};
use crabby_hardware::camera::{FakeCamera, StrainedSampleCamera};
use std::path::PathBuf;

/// Stops the test after `secs`.
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

/// Writes `label` values it receives, one per line, to `path` in `finish`.
struct Collect {
    label: &'static str,
    path: PathBuf,
    values: Vec<f64>,
}
impl Block for Collect {
    fn step(&mut self, ctx: &mut Context) -> crabby::Result<Flow> {
        ctx.wait(Duration::from_millis(50));
        for s in ctx.recv_all_per_link().into_iter().flatten() {
            if let Some(v) = s.get_f64(self.label) {
                self.values.push(v);
            }
        }
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> crabby::Result<()> {
        for s in ctx
            .drain_until_ended(Duration::from_secs(5))
            .into_iter()
            .flatten()
        {
            if let Some(v) = s.get_f64(self.label) {
                self.values.push(v);
            }
        }
        let text: Vec<String> = self.values.iter().map(|v| v.to_string()).collect();
        std::fs::write(&self.path, text.join("\n")).map_err(|e| crabby::Error::io("write", e))
    }
}

fn read_values(path: &std::path::Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

/// Whether process `pid` still exists.
fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// A processor that records its process id, sends the frame index, and fails at frame
/// `fail_at` if set.
struct PidProbe {
    pid_file: PathBuf,
    fail_at: Option<u64>,
}
impl FrameProcessor for PidProbe {
    fn output_labels(&self) -> Vec<Label> {
        vec![Label::new("t(s)"), Label::new("n")]
    }
    fn process(
        &mut self,
        info: &FrameInfo,
        _img: &ImageView<'_>,
        t: f64,
    ) -> crabby::Result<Processed> {
        if info.index == 0 {
            std::fs::write(&self.pid_file, std::process::id().to_string())
                .map_err(|e| crabby::Error::io("pid file", e))?;
        }
        if self.fail_at == Some(info.index) {
            return Err(crabby::Error::config(format!(
                "probe failure at frame {}",
                info.index
            )));
        }
        Ok(Processed::Send(
            Sample::new().with("t(s)", t).with("n", info.index),
        ))
    }
}

fn read_pid(path: &std::path::Path) -> Result<i32, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("no pid file {}: {e}", path.display()))?
        .trim()
        .parse()
        .map_err(|e| format!("bad pid: {e}"))
}

fn camera_block_records_frames_and_metadata() -> Result<(), String> {
    let dir = common::TempDir::new("cam-rec");
    let wanted = dir.path().join("imgs");
    std::fs::create_dir_all(&wanted).map_err(|e| e.to_string())?; // taken: must not be reused
    let cam = FakeCamera::new(64, 48, 200.0, 100.0).map_err(|e| e.to_string())?;
    let preview = dir.path().join("preview.pgm");
    let mut test = Test::new("camera-record");
    test.log_file(None);
    let docs = dir.path().join("run.jsonl");
    test.documents(Some(docs.clone()));
    let camera = test.add_with(
        CameraBlock::new(cam)
            .setting("speed", 50.0)
            .record(&wanted, ImageFormat::Tiff)
            .save_period(2)
            .display(PreviewFile::new(&preview), Duration::from_millis(50)),
        Settings::new().name("cam"),
    );
    let frames = dir.path().join("frames.txt");
    let sink = test.add(Collect {
        label: "frame",
        path: frames.clone(),
        values: Vec::new(),
    });
    test.link(camera, sink);
    test.add(StopAfter(0.6));
    let report = test.run().map_err(|e| e.to_string())?;
    ensure!(!report.failed(), "{report}");
    let acquired = read_values(&frames);
    ensure!(
        acquired.len() >= 60,
        "only {} frames acquired in 0.6 s at 200 fps",
        acquired.len()
    );
    ensure!(
        std::fs::read_dir(&wanted)
            .map_err(|e| e.to_string())?
            .count()
            == 0,
        "existing folder written to"
    );
    let folder = dir.path().join("imgs_00001");
    // The run documents list the folder the images went to.
    let text = std::fs::read_to_string(&docs).map_err(|e| e.to_string())?;
    let stop: serde_json::Value =
        serde_json::from_str(text.lines().last().unwrap_or_default()).map_err(|e| e.to_string())?;
    let want =
        serde_json::json!({"block": "cam", "path": folder.display().to_string(), "role": "images"});
    ensure!(
        stop["document"] == "stop" && stop["files"].as_array().is_some_and(|f| f.contains(&want)),
        "{want} not in the stop document {stop}"
    );
    let csv = std::fs::read_to_string(folder.join("metadata.csv")).map_err(|e| e.to_string())?;
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    let saved: Vec<f64> = acquired
        .iter()
        .copied()
        .filter(|i| *i as u64 % 2 == 0)
        .collect();
    ensure!(
        rows.len() == saved.len(),
        "{} rows for {} even frames",
        rows.len(),
        saved.len()
    );
    let n_files = std::fs::read_dir(&folder)
        .map_err(|e| e.to_string())?
        .count();
    ensure!(
        n_files == rows.len() + 1,
        "{n_files} files for {} rows",
        rows.len()
    );
    for (row, idx) in rows.iter().zip(&saved) {
        let cols: Vec<&str> = row.split(',').collect();
        ensure!(cols.len() == 7, "row {row}");
        ensure!(
            cols[0] == (*idx as u64).to_string(),
            "row {row} for frame {idx}"
        );
        let t: f64 = cols[1].parse().map_err(|_| format!("t in {row}"))?;
        ensure!(
            cols[6] == format!("{:06}_{t:.3}.tiff", *idx as u64),
            "file name in {row}"
        );
        ensure!(
            cols[3] == "64" && cols[4] == "48" && cols[5] == "mono8",
            "{row}"
        );
        let len = std::fs::metadata(folder.join(cols[6]))
            .map_err(|e| e.to_string())?
            .len();
        ensure!(len > 64 * 48 && len < 64 * 48 + 300, "tiff of {len} bytes");
    }
    let pgm = std::fs::read(&preview).map_err(|e| format!("no preview: {e}"))?;
    let head = String::from_utf8_lossy(&pgm[..pgm.len().min(80)]).into_owned();
    ensure!(
        head.starts_with("P5\n# frame ")
            && head.contains(" timestamp_ns ")
            && head.contains("\n64 48\n255\n"),
        "preview header {head:?}"
    );
    Ok(())
}

fn camera_block_processing_results_reach_receiver() -> Result<(), String> {
    let dir = common::TempDir::new("cam-ve");
    let cam = StrainedSampleCamera::new(320, 240, 7.0)
        .map_err(|e| e.to_string())?
        .fps(100.0);
    let mut test = Test::new("camera-ve");
    test.log_file(None);
    let ramp = test.add_with(
        StrainRamp {
            top: 2.0,
            ramp: 0.6,
            end: 1.2,
        },
        Settings::new().freq(200.0),
    );
    let camera = test.add(CameraBlock::new(cam).process(VideoExtenso::new()));
    let out = dir.path().join("exx.txt");
    let sink = test.add(Collect {
        label: "Exx(%)",
        path: out.clone(),
        values: Vec::new(),
    });
    test.link(ramp, camera);
    test.link(camera, sink);
    let report = test.run().map_err(|e| e.to_string())?;
    ensure!(!report.failed(), "{report}");
    let exx = read_values(&out);
    ensure!(exx.len() >= 50, "only {} results", exx.len());
    ensure!(exx[0].abs() < 1e-9, "first frame strain {}", exx[0]);
    let last = *exx.last().expect("values");
    ensure!(
        (last - 2.0).abs() < 0.01,
        "final measured strain {last} % for 2 % imposed"
    );
    ensure!(
        exx.windows(2).all(|w| w[1] >= w[0] - 0.01),
        "measured strain not following the ramp"
    );
    Ok(())
}

fn camera_block_child_failure_stops_test() -> Result<(), String> {
    let dir = common::TempDir::new("cam-fail");
    let pid_file = dir.path().join("pid");
    let cam = FakeCamera::new(32, 32, 100.0, 0.0).map_err(|e| e.to_string())?;
    let mut test = Test::new("camera-fail");
    test.log_file(None);
    let camera = test.add(
        CameraBlock::new(cam)
            .record(dir.path().join("imgs"), ImageFormat::Raw)
            .process(PidProbe {
                pid_file: pid_file.clone(),
                fail_at: Some(10),
            }),
    );
    let sink = test.add(Collect {
        label: "n",
        path: dir.path().join("n"),
        values: Vec::new(),
    });
    test.link(camera, sink);
    test.add(StopAfter(20.0));
    let t = Instant::now();
    let err = match test.run() {
        Ok(r) => return Err(format!("the test did not fail: {r}")),
        Err(e) => e.to_string(),
    };
    ensure!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?} to stop",
        t.elapsed()
    );
    ensure!(
        err.contains("probe failure at frame 10"),
        "error does not carry the child's: {err}"
    );
    let pid = read_pid(&pid_file)?;
    ensure!(!alive(pid), "processing child {pid} still alive");
    let n = read_values(&dir.path().join("n"));
    ensure!(
        n.len() == 10,
        "frames 0..9 processed and sent: got {}",
        n.len()
    );
    Ok(())
}

/// A FakeCamera that fails at frame `fail_at`.
struct FailingCamera {
    inner: FakeCamera,
    fail_at: u64,
}
impl Camera for FailingCamera {
    fn format(&self) -> Ff {
        self.inner.format()
    }
    fn grab(&mut self, buf: &mut [u8]) -> crabby::Result<Option<FrameInfo>> {
        let info = self.inner.grab(buf)?;
        if info.is_some_and(|i| i.index == self.fail_at) {
            return Err(crabby::Error::new(
                crabby::ErrorKind::Hardware,
                "camera unplugged",
            ));
        }
        Ok(info)
    }
}

fn camera_block_camera_failure_reaps_children() -> Result<(), String> {
    let dir = common::TempDir::new("cam-camfail");
    let pid_file = dir.path().join("pid");
    let inner = FakeCamera::new(32, 32, 100.0, 0.0).map_err(|e| e.to_string())?;
    let mut test = Test::new("camera-camfail");
    test.log_file(None);
    test.add(
        CameraBlock::new(FailingCamera { inner, fail_at: 20 })
            .record(dir.path().join("imgs"), ImageFormat::Png)
            .display(
                PreviewFile::new(dir.path().join("p.pgm")),
                Duration::from_millis(10),
            )
            .process(PidProbe {
                pid_file: pid_file.clone(),
                fail_at: None,
            }),
    );
    test.add(StopAfter(20.0));
    let err = match test.run() {
        Ok(r) => return Err(format!("the test did not fail: {r}")),
        Err(e) => e.to_string(),
    };
    ensure!(err.contains("camera unplugged"), "{err}");
    let pid = read_pid(&pid_file)?;
    ensure!(!alive(pid), "processing child {pid} still alive");
    // The recorder saved the 20 frames acquired before the failure (drained at finish).
    let csv =
        std::fs::read_to_string(dir.path().join("imgs/metadata.csv")).map_err(|e| e.to_string())?;
    ensure!(
        csv.lines().count() == 21,
        "{} metadata rows",
        csv.lines().count() - 1
    );
    Ok(())
}

/// Sends `trig` `n` times, 50 ms apart, then stops the test 0.3 s later.
struct Triggers {
    n: u32,
    sent: u32,
}
impl Block for Triggers {
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec![Label::new("trig")])
    }
    fn step(&mut self, ctx: &mut Context) -> crabby::Result<Flow> {
        let t = ctx.t();
        if self.sent < self.n && t >= 0.05 * f64::from(self.sent + 1) {
            self.sent += 1;
            ctx.send(&Sample::new().with("trig", 1.0))?;
        }
        Ok(if t > 0.05 * f64::from(self.n) + 0.3 {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

fn camera_block_software_trigger() -> Result<(), String> {
    let dir = common::TempDir::new("cam-trig");
    // A trigger label nobody sends is refused before anything is forked.
    let mut test = Test::new("camera-trig-bad");
    test.log_file(None);
    let t = test.add(Triggers { n: 1, sent: 0 });
    let c = test.add(
        CameraBlock::new(FakeCamera::new(16, 16, 0.0, 0.0).map_err(|e| e.to_string())?)
            .software_trigger("trigger"),
    );
    test.link(t, c);
    let e = match test.run() {
        Ok(_) => return Err("a missing trigger label was accepted".into()),
        Err(e) => e.to_string(),
    };
    ensure!(e.contains("trigger"), "{e}");

    let mut test = Test::new("camera-trig");
    test.log_file(None);
    let t = test.add(Triggers { n: 5, sent: 0 });
    let cam = FakeCamera::new(16, 16, 0.0, 0.0).map_err(|e| e.to_string())?;
    let c = test.add(CameraBlock::new(cam).software_trigger("trig"));
    let frames = dir.path().join("frames");
    let sink = test.add(Collect {
        label: "frame",
        path: frames.clone(),
        values: Vec::new(),
    });
    test.link(t, c);
    test.link(c, sink);
    let report = test.run().map_err(|e| e.to_string())?;
    ensure!(!report.failed(), "{report}");
    let got = read_values(&frames);
    ensure!(
        got == vec![0.0, 1.0, 2.0, 3.0, 4.0],
        "one frame per trigger: {got:?}"
    );
    Ok(())
}

/// Sends `n` trigger samples in one loop at 0.05 s, then a sample without the trigger
/// label, then stops the test 0.5 s later.
struct Burst {
    n: u32,
    sent: bool,
}
impl Block for Burst {
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec![Label::new("trig"), Label::new("x")])
    }
    fn step(&mut self, ctx: &mut Context) -> crabby::Result<Flow> {
        let t = ctx.t();
        if !self.sent && t >= 0.05 {
            self.sent = true;
            for _ in 0..self.n {
                ctx.send(&Sample::new().with("trig", 1.0))?;
            }
            // Newer than the triggers and without the label: must not hide them.
            ctx.send(&Sample::new().with("x", 2.0))?;
        }
        Ok(if t > 0.55 { Flow::Stop } else { Flow::Continue })
    }
}

fn camera_block_trigger_burst_gives_one_frame_each() -> Result<(), String> {
    let dir = common::TempDir::new("cam-burst");
    let mut test = Test::new("camera-burst");
    test.log_file(None);
    let b = test.add(Burst { n: 7, sent: false });
    let cam = FakeCamera::new(16, 16, 0.0, 0.0).map_err(|e| e.to_string())?;
    let c = test.add(CameraBlock::new(cam).software_trigger("trig"));
    let frames = dir.path().join("frames");
    let sink = test.add(Collect {
        label: "frame",
        path: frames.clone(),
        values: Vec::new(),
    });
    test.link(b, c);
    test.link(c, sink);
    let report = test.run().map_err(|e| e.to_string())?;
    ensure!(!report.failed(), "{report}");
    let got = read_values(&frames);
    let want: Vec<f64> = (0..7).map(f64::from).collect();
    ensure!(
        got == want,
        "7 triggers in one loop, one frame each: {got:?}"
    );
    Ok(())
}

/// A processor that records its pid, then hangs on the first frame (never reads again, so
/// it never sees the ring close).
struct Stuck {
    pid_file: PathBuf,
}
impl FrameProcessor for Stuck {
    fn output_labels(&self) -> Vec<Label> {
        vec![Label::new("t(s)")]
    }
    fn process(
        &mut self,
        _info: &FrameInfo,
        _img: &ImageView<'_>,
        _t: f64,
    ) -> crabby::Result<Processed> {
        std::fs::write(&self.pid_file, std::process::id().to_string())
            .map_err(|e| crabby::Error::io("pid file", e))?;
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    }
}

fn camera_block_sigterm_ends_a_stuck_child() -> Result<(), String> {
    let dir = common::TempDir::new("cam-stuck");
    let pid_file = dir.path().join("pid");
    let cam = FakeCamera::new(16, 16, 50.0, 0.0).map_err(|e| e.to_string())?;
    let mut test = Test::new("camera-stuck");
    test.log_file(None);
    test.add(
        CameraBlock::new(cam)
            .process(Stuck {
                pid_file: pid_file.clone(),
            })
            .child_grace(Duration::from_millis(200)),
    );
    test.add(StopAfter(0.5));
    let t = Instant::now();
    let msg = match test.run() {
        Ok(r) => r.to_string(),
        Err(e) => e.to_string(),
    };
    // The ladder: 0.2 s of grace, then SIGTERM, which the child must obey (it inherited the
    // Block's handler, which obeys only the coordinator, unless the child re-aims it).
    ensure!(
        msg.contains("stopped by SIGTERM"),
        "the stuck child was not ended by the SIGTERM step: {msg}"
    );
    ensure!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    let pid = read_pid(&pid_file)?;
    ensure!(!alive(pid), "stuck child {pid} still alive");
    Ok(())
}
