//! Drivers in real tests: the UController board (simulated, in a process of its own, on a
//! pty) streaming into a Recorder while it takes commands, and vanishing mid-test; the
//! FileReader camera replaying what the camera Block recorded, through the camera Block
//! again (pixels and timestamps compared) and through VideoExtenso (offline results equal
//! to the live ones).
//!
//! Run with `cargo test --test drivers_misc` (own harness: every case in its own process).

mod common;

use common::blocks::{col, read_csv, Source, StrainRamp};
#[path = "common/devices.rs"]
mod devices;
use common::{case, TempDir};
use crabby::camera::ReadMode;
use crabby::{Block, Context, Flow, Label, Result, Settings, Test};
use crabby_blocks::camera::{CameraBlock, ImageFormat, VideoExtenso};
use crabby_blocks::{IOBlock, Recorder};
use crabby_hardware::camera::{FakeCamera, FileReader, Pacing, StrainedSampleCamera};
use crabby_hardware::serial::ucontroller::sim::{self, Board, Fault};
use crabby_hardware::serial::{SerialConfig, UController};
use devices::raw_pty;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn main() {
    common::main(&[
        case(
            "ucontroller_streams_into_a_recorder_and_takes_commands",
            60,
            ucontroller_streams_into_a_recorder_and_takes_commands,
        ),
        case(
            "ucontroller_board_vanishing_mid_test_faults_the_test",
            60,
            ucontroller_board_vanishing_mid_test_faults_the_test,
        ),
        case(
            "jvl_mac_machine_moves_to_position_and_leaves_the_motor_passive",
            60,
            jvl_mac_machine_moves_to_position_and_leaves_the_motor_passive,
        ),
        case(
            "file_reader_replays_a_recording_through_the_camera_block",
            90,
            file_reader_replays_a_recording_through_the_camera_block,
        ),
        case(
            "file_reader_reruns_video_extenso_offline",
            90,
            file_reader_reruns_video_extenso_offline,
        ),
    ]);
}

// ------------------------------------------------------------------------- helpers

/// Plays `board` in a child process; when it ends (the host's `stop!`, or a vanish) it
/// writes what it saw into `summary`.
fn spawn_board(
    children: &mut crabby::process::ChildSet,
    master: std::os::fd::OwnedFd,
    mut board: Board,
    summary: PathBuf,
) -> std::result::Result<(), String> {
    board.end_on_stop = true;
    children
        .spawn("board", move || {
            let b = std::sync::Mutex::new(board);
            sim::serve(master, &b, &std::sync::atomic::AtomicBool::new(false));
            let b = b.into_inner().unwrap_or_else(|e| e.into_inner());
            let cmds: Vec<String> = b
                .commands_applied
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            let text = format!(
                "handshakes {}\nstops {}\nframes {}\ncommands {}\n",
                b.handshakes,
                b.stops,
                b.frames_sent,
                cmds.join(" ")
            );
            i32::from(std::fs::write(&summary, text).is_err())
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Ends the test once `n` samples arrived on its input, or after `max_s` seconds.
struct StopAfterSamples {
    n: usize,
    max_s: f64,
    seen: usize,
}

impl Block for StopAfterSamples {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        self.seen += ctx.recv_all().get("t(s)").map_or(0, <[_]>::len);
        Ok(if self.seen >= self.n || ctx.t() >= self.max_s {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// The recorder's folder: `metadata.csv` rows as (t(s), file).
fn metadata(folder: &Path) -> std::result::Result<Vec<(f64, String)>, String> {
    let text = std::fs::read_to_string(folder.join("metadata.csv"))
        .map_err(|e| format!("{}: {e}", folder.display()))?;
    text.lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            let t = c
                .get(1)
                .and_then(|t| t.parse().ok())
                .ok_or(format!("row {l}"))?;
            Ok((t, c.get(6).ok_or(format!("row {l}"))?.to_string()))
        })
        .collect()
}

// ------------------------------------------------------------------------- UController

fn ucontroller_streams_into_a_recorder_and_takes_commands() -> std::result::Result<(), String> {
    let dir = TempDir::new("uc-rec");
    let csv = dir.path().join("board.csv");
    let summary = dir.path().join("board.txt");
    let (master, _, path) = raw_pty()?;
    let mut children = crabby::process::ChildSet::new();
    spawn_board(
        &mut children,
        master,
        Board::new().rate(200.0),
        summary.clone(),
    )?;
    let board = UController::new("pico", SerialConfig::new(&path, 115_200))
        .labels(["sine", "count"])
        .cmd_labels(["freq"])
        .t_device(true);
    let mut test = Test::new("ucontroller");
    test.log_file(None);
    // freq = 1, 2, 3 Hz, changing every half second.
    let src = test.add_with(
        Source {
            label: Label::new("freq"),
            value: |t| 1.0 + (t * 2.0).floor().min(2.0),
            stop_at: Some(1.5),
        },
        Settings::new().freq(50.0),
    );
    let io = test.add_with(
        IOBlock::input_output(board).cmd_labels(["freq"]),
        Settings::new().name("board").freq(100.0),
    );
    let rec = test.add(Recorder::new(&csv));
    test.link(src, io);
    test.link(io, rec);
    let run = test.run();
    // The board ends by itself on the driver's `stop!`.
    children.shutdown(Duration::from_secs(3), Duration::from_secs(2));
    let report = run.map_err(|e| format!("run: {e}"))?;
    ensure!(!report.failed(), "{report}");
    let (header, rows) = read_csv(&csv)?;
    let (t, sine, count) = (
        col(&header, "t(s)")?,
        col(&header, "sine")?,
        col(&header, "count")?,
    );
    // One row per loop (100 Hz for 1.5 s), each the latest sample of the board (200/s).
    ensure!(rows.len() > 100, "{} rows", rows.len());
    // The samples are stamped by the board's clock (t_device): sample k is k·5 ms after
    // sample 0 exactly, whenever it arrived.
    let k0 = rows[0][count];
    let t0 = rows[0][t];
    for r in &rows {
        let expect = t0 + 0.005 * (r[count] - k0);
        ensure!(
            (r[t] - expect).abs() < 1e-6,
            "sample {} at {} s, expected {expect} s",
            r[count],
            r[t]
        );
    }
    ensure!(
        rows.windows(2).all(|w| w[1][count] >= w[0][count]),
        "samples out of order"
    );
    let last = rows.last().map_or(0.0, |r| r[count]);
    ensure!(
        last - k0 > 250.0,
        "only {} samples in 1.5 s at 200/s",
        last - k0
    );
    ensure!(
        rows.iter().all(|r| r[sine].abs() <= 1.0 + 1e-6),
        "sine beyond its amplitude"
    );
    let s = std::fs::read_to_string(&summary).map_err(|e| format!("board summary: {e}"))?;
    ensure!(s.contains("handshakes 1\nstops 1\n"), "{s}");
    ensure!(s.contains("commands freq=1 freq=2 freq=3\n"), "{s}");
    Ok(())
}

fn ucontroller_board_vanishing_mid_test_faults_the_test() -> std::result::Result<(), String> {
    let dir = TempDir::new("uc-vanish");
    let summary = dir.path().join("board.txt");
    let (master, _, path) = raw_pty()?;
    let mut children = crabby::process::ChildSet::new();
    let mut b = Board::new().rate(100.0);
    b.schedule(Duration::from_millis(400), Fault::Vanish);
    spawn_board(&mut children, master, b, summary)?;
    let board = UController::new("pico", SerialConfig::new(&path, 115_200)).labels(["count"]);
    let mut test = Test::new("ucontroller-vanish");
    test.log_file(None);
    let io = test.add_with(
        IOBlock::input(board),
        Settings::new().name("board").freq(100.0),
    );
    let stop = test.add(StopAfterSamples {
        n: usize::MAX,
        max_s: 10.0,
        seen: 0,
    });
    test.link(io, stop);
    let run = test.run();
    children.shutdown(Duration::from_secs(2), Duration::from_secs(2));
    let text = match run {
        Ok(report) => {
            ensure!(report.failed(), "the test did not fail: {report}");
            report.to_string()
        }
        Err(e) => e.to_string(),
    };
    ensure!(text.contains("disappeared"), "{text}");
    ensure!(text.contains("pico"), "{text}");
    Ok(())
}

// ------------------------------------------------------------------------- JVL MAC

fn jvl_mac_machine_moves_to_position_and_leaves_the_motor_passive(
) -> std::result::Result<(), String> {
    use crabby_blocks::{ActuatorConfig, Machine};
    use crabby_hardware::serial::jvl_mac::{self, sim::Motor};
    use crabby_hardware::serial::JvlMac;
    let dir = TempDir::new("jvl");
    let csv = dir.path().join("axis.csv");
    let summary = dir.path().join("motor.txt");
    let (master, _, path) = raw_pty()?;
    let mut children = crabby::process::ChildSet::new();
    let mut motor = Motor::new(8, 1.92e-3);
    motor.end_on_close = true;
    let out = summary.clone();
    children
        .spawn("motor", move || {
            let m = std::sync::Mutex::new(motor);
            jvl_mac::sim::serve(master, &m, &std::sync::atomic::AtomicBool::new(false));
            let m = m.into_inner().unwrap_or_else(|e| e.into_inner());
            let text = format!(
                "mode {}\nposition {}\ntelegrams {}\nignored {}\n",
                m.regs[&jvl_mac::MODE_REG],
                m.position_counts(),
                m.telegrams,
                m.ignored
            );
            i32::from(std::fs::write(&out, text).is_err())
        })
        .map_err(|e| e.to_string())?;
    // 1000 counts per mm; 2 mm at up to 10 mm/s with 200 mm/s².
    let axis = JvlMac::new("axis", SerialConfig::new(&path, 19200), 1000.0)
        .address(8)
        .acceleration(200.0);
    let mut test = Test::new("jvl-mac");
    test.log_file(None);
    let src = test.add_with(
        Source {
            label: Label::new("x"),
            value: |_| 2.0,
            stop_at: Some(1.0),
        },
        Settings::new().freq(50.0),
    );
    let m = test.add_with(
        Machine::new().actuator(
            ActuatorConfig::position(axis, "x")
                .move_speed(10.0)
                .position_label("x(mm)")
                .speed_label("v(mm/s)"),
        ),
        Settings::new().name("machine").freq(50.0),
    );
    let rec = test.add(Recorder::new(&csv));
    test.link(src, m);
    test.link(m, rec);
    let run = test.run();
    children.shutdown(Duration::from_secs(3), Duration::from_secs(2));
    let report = run.map_err(|e| format!("run: {e}"))?;
    ensure!(!report.failed(), "{report}");
    let (header, rows) = read_csv(&csv)?;
    let (x, v) = (col(&header, "x(mm)")?, col(&header, "v(mm/s)")?);
    ensure!(rows.len() > 20, "{} rows", rows.len());
    ensure!(
        rows.windows(2).all(|w| w[1][x] >= w[0][x] - 1e-9),
        "position went backwards"
    );
    // V_IST is whole counts per sample: ±0.52 mm/s of quantisation at 1000 counts/mm.
    ensure!(
        rows.iter().all(|r| r[v] <= 10.0 + 0.53),
        "faster than the 10 mm/s move speed"
    );
    let last = rows.last().map_or(f64::NAN, |r| r[x]);
    ensure!(last == 2.0, "did not arrive at 2 mm: {last}");
    let s = std::fs::read_to_string(&summary).map_err(|e| format!("motor summary: {e}"))?;
    ensure!(
        s.contains("mode 0\n"),
        "the motor was not left passive: {s}"
    );
    ensure!(s.contains("ignored 0\n"), "telegrams ignored: {s}");
    Ok(())
}

// ------------------------------------------------------------------------- FileReader

/// Decodes the pixels of one of the recorder's images (TIFF: the bytes after the header;
/// PNG: decoded).
fn pixels(path: &Path, n: usize) -> std::result::Result<Vec<u8>, String> {
    let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if path.extension().is_some_and(|e| e == "png") {
        let dec = png::Decoder::new(std::io::Cursor::new(b));
        let mut r = dec.read_info().map_err(|e| e.to_string())?;
        let mut buf = vec![0; r.output_buffer_size()];
        r.next_frame(&mut buf).map_err(|e| e.to_string())?;
        buf.truncate(n);
        Ok(buf)
    } else {
        ensure!(b.len() > n, "{} too short", path.display());
        Ok(b[b.len() - n..].to_vec())
    }
}

fn file_reader_replays_a_recording_through_the_camera_block() -> std::result::Result<(), String> {
    let dir = TempDir::new("fr-replay");
    // Record: a scrolling gradient, every frame, as TIFF.
    let cam = FakeCamera::new(64, 48, 100.0, 300.0).map_err(|e| e.to_string())?;
    let mut test = Test::new("record");
    test.log_file(None);
    let c = test.add(
        CameraBlock::new(cam)
            .record(dir.path().join("orig"), ImageFormat::Tiff)
            .record_mode(ReadMode::Every),
    );
    let _ = c;
    test.add(StopAfterSamples {
        n: usize::MAX,
        max_s: 0.6,
        seen: 0,
    });
    let report = test.run().map_err(|e| e.to_string())?;
    ensure!(!report.failed(), "{report}");
    let orig = metadata(&dir.path().join("orig"))?;
    ensure!(orig.len() >= 30, "only {} frames recorded", orig.len());
    // Replay at the recorded pace and record again, as PNG this time.
    let reader = FileReader::new(dir.path().join("orig"), Pacing::RealTime { speed: 1.0 })
        .map_err(|e| e.to_string())?;
    ensure!(reader.len() == orig.len(), "{} frames found", reader.len());
    let span = orig.last().map_or(0.0, |l| l.0) - orig[0].0;
    let mut test = Test::new("replay");
    test.log_file(None);
    test.add(
        CameraBlock::new(reader)
            .record(dir.path().join("replayed"), ImageFormat::Png)
            .record_mode(ReadMode::Every),
    );
    test.add(StopAfterSamples {
        n: usize::MAX,
        max_s: span + 1.0,
        seen: 0,
    });
    let report = test.run().map_err(|e| e.to_string())?;
    ensure!(!report.failed(), "{report}");
    let again = metadata(&dir.path().join("replayed"))?;
    ensure!(
        again.len() == orig.len(),
        "{} frames replayed of {}",
        again.len(),
        orig.len()
    );
    for (i, (a, b)) in orig.iter().zip(&again).enumerate() {
        // Same spacing (the recorder writes t(s) in full; the offsets agree to 1 µs).
        let (da, db) = (a.0 - orig[0].0, b.0 - again[0].0);
        ensure!(
            (da - db).abs() < 1e-6,
            "frame {i}: recorded at +{da} s, replayed at +{db} s"
        );
        let pa = pixels(&dir.path().join("orig").join(&a.1), 64 * 48)?;
        let pb = pixels(&dir.path().join("replayed").join(&b.1), 64 * 48)?;
        ensure!(pa == pb, "frame {i}: pixels differ ({} vs {})", a.1, b.1);
    }
    Ok(())
}

fn file_reader_reruns_video_extenso_offline() -> std::result::Result<(), String> {
    let dir = TempDir::new("fr-ve");
    // Live: a strain ramp imposed on the simulated sample, every frame recorded and
    // processed.
    let cam = StrainedSampleCamera::new(320, 240, 7.0)
        .map_err(|e| e.to_string())?
        .fps(50.0);
    let mut test = Test::new("ve-live");
    test.log_file(None);
    let ramp = test.add_with(
        StrainRamp {
            top: 2.0,
            ramp: 0.8,
            end: 1.2,
        },
        Settings::new().freq(200.0),
    );
    let camera = test.add(
        CameraBlock::new(cam)
            .record(dir.path().join("imgs"), ImageFormat::Tiff)
            .record_mode(ReadMode::Every)
            .process(VideoExtenso::new())
            .process_mode(ReadMode::Every),
    );
    let live_csv = dir.path().join("live.csv");
    let rec = test.add(Recorder::new(&live_csv));
    test.link(ramp, camera);
    test.link(camera, rec);
    let report = test.run().map_err(|e| e.to_string())?;
    ensure!(!report.failed(), "{report}");
    let (lh, live) = read_csv(&live_csv)?;
    let frames = metadata(&dir.path().join("imgs"))?.len();
    ensure!(frames >= 30, "only {frames} frames recorded");
    // Offline: the recording replayed as fast as possible into the same processing.
    let reader = FileReader::new(dir.path().join("imgs"), Pacing::AsFastAsPossible)
        .map_err(|e| e.to_string())?;
    let mut test = Test::new("ve-offline");
    test.log_file(None);
    let camera = test.add(
        CameraBlock::new(reader)
            .process(VideoExtenso::new())
            .process_mode(ReadMode::Every),
    );
    let off_csv = dir.path().join("offline.csv");
    let rec = test.add(Recorder::new(&off_csv));
    let stop = test.add(StopAfterSamples {
        n: frames,
        max_s: 30.0,
        seen: 0,
    });
    test.link(camera, rec);
    test.link(camera, stop);
    let report = test.run().map_err(|e| e.to_string())?;
    ensure!(!report.failed(), "{report}");
    let (oh, off) = read_csv(&off_csv)?;
    // One result per frame offline; live, the processing may have missed the frame in
    // hand at the stop.
    ensure!(
        off.len() == frames,
        "{} offline results for {frames} frames",
        off.len()
    );
    ensure!(
        live.len() + 1 >= frames && live.len() <= frames,
        "{} live results for {frames} frames",
        live.len()
    );
    let (lt, lx) = (col(&lh, "t(s)")?, col(&lh, "Exx(%)")?);
    let (ot, ox) = (col(&oh, "t(s)")?, col(&oh, "Exx(%)")?);
    let last = live.last().map_or(f64::NAN, |r| r[lx]);
    ensure!((last - 2.0).abs() < 0.02, "live final strain {last} %");
    for (i, (l, o)) in live.iter().zip(&off).enumerate() {
        ensure!(
            (l[lx] - o[ox]).abs() < 1e-9,
            "frame {i}: live Exx {} %, offline {} %",
            l[lx],
            o[ox]
        );
        let (dl, dof) = (l[lt] - live[0][lt], o[ot] - off[0][ot]);
        ensure!(
            (dl - dof).abs() < 1e-6,
            "frame {i}: live at +{dl} s, offline at +{dof} s"
        );
    }
    Ok(())
}
