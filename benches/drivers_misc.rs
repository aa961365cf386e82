//! Rates of the UController and JVL MAC drivers and of the FileReader camera (prints
//! figures; run with `cargo bench --bench drivers_misc`).
//!
//! - JVL MAC against the simulated motor (a thread, on a pty): P_IST reads per second and
//!   `set_speed` calls per second (V_SOLL and MODE_REG writes, each waiting for the
//!   accept), and what the motor's 19200 baud line allows.
//! - UController against the simulated board (a thread of this process, on a pty): the
//!   board script at its highest rate (1000 samples/s: it counts in whole milliseconds),
//!   two labels and the board's clock (9-byte frames), read with `read_frames` for 2 s;
//!   samples received per second and samples lost (gaps in `count`). Then the driver's
//!   decoding ceiling: a writer floods the pty with valid frames, read as fast as possible.
//!   A pty moves bytes at memory speed: on a real UART the line is the bound (115200 baud
//!   8N1 = 11520 bytes/s: 2304 five-byte frames/s, 1280 nine-byte frames/s).
//! - FileReader: 200 frames of 640×480 mono8 written by the camera Block's own encoders
//!   (TIFF, PNG) and as raw, replayed as fast as possible: frames per second.
//!
//! Figures are noisy on a shared 2-core machine: best of 3 rounds.

mod common;

use common::{per_second, pty};
use crabby::camera::{Camera, FrameFormat, FrameInfo, PixelFormat};
use crabby::hardware::{InOut, Stream};
use crabby_hardware::camera::{FileReader, Pacing};
use crabby_hardware::serial::ucontroller::sim::{Board, SimThread};
use crabby_hardware::serial::ucontroller::{encode_frame, Frame};
use crabby_hardware::serial::{SerialConfig, UController};
use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

fn ucontroller_board() {
    let mut best = (0.0f64, 0u64);
    for _ in 0..3 {
        let (master, _slave, path) = pty();
        let _sim = SimThread::new(master, Board::new().rate(1000.0));
        let mut u = UController::new("bench", SerialConfig::new(&path, 115_200))
            .labels(["sine", "count"])
            .t_device(true);
        u.open().expect("open");
        u.start_stream().expect("stream");
        let mut counts: Vec<f64> = Vec::new();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(2) {
            let c = u.read_stream().expect("read_stream");
            counts.extend(&c.channels[1]);
        }
        let secs = t.elapsed().as_secs_f64();
        counts.dedup();
        let samples = counts.len() as f64;
        let lost = counts
            .windows(2)
            .map(|w| (w[1] - w[0] - 1.0).max(0.0) as u64)
            .sum::<u64>();
        u.close().expect("close");
        if samples / secs > best.0 {
            best = (samples / secs, lost);
        }
    }
    println!(
        "UController, simulated board at 1000 samples/s x 2 labels, board clock: {:.0} samples/s received, {} lost",
        best.0, best.1
    );
}

fn ucontroller_ceiling() {
    let mut best: f64 = 0.0;
    for _ in 0..3 {
        let (master, _slave, path) = pty();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        // A board that floods: 100 frames per write, label 1, count up.
        let writer = std::thread::spawn(move || {
            let mut k = 0i32;
            let mut buf = Vec::new();
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                buf.clear();
                for _ in 0..100 {
                    encode_frame(
                        &Frame {
                            ticks_ms: Some(k / 100),
                            index: 1,
                            value: k as f32,
                        },
                        &mut buf,
                    );
                    k += 1;
                }
                let mut fds = [nix::poll::PollFd::new(
                    master.as_fd(),
                    nix::poll::PollFlags::POLLOUT,
                )];
                if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)).unwrap_or(0) > 0
                {
                    let _ = nix::unistd::write(&master, &buf);
                }
            }
        });
        let mut u = UController::new("bench", SerialConfig::new(&path, 115_200))
            .labels(["v"])
            .t_device(true);
        u.open().expect("open");
        let t = Instant::now();
        let mut n = 0usize;
        while t.elapsed() < Duration::from_secs(1) {
            n += u.read_stream().expect("read_stream").len();
        }
        best = best.max(n as f64 / t.elapsed().as_secs_f64());
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        u.close().expect("close");
        writer.join().expect("writer");
    }
    println!("UController, decoding ceiling (pty flooded with 9-byte frames): {best:.0} frames/s");
}

fn file_reader() {
    let dir = std::env::temp_dir().join(format!("crabby-bench-fr-{}", std::process::id()));
    let (w, h, n) = (640u32, 480u32, 200u64);
    let format = FrameFormat::new(w, h, PixelFormat::Mono8);
    for (ext, name) in [("tiff", "TIFF"), ("png", "PNG"), ("raw", "raw")] {
        let folder = dir.join(ext);
        std::fs::create_dir_all(&folder).expect("mkdir");
        let mut csv = String::from("index,t(s),timestamp_ns,width,height,format,file\n");
        let mut head = Vec::new();
        for i in 0..n {
            let t_ns = i * 20_000_000;
            // A speckle-like pattern that changes per frame (PNG must really compress it).
            let px: Vec<u8> = (0..(w * h) as u64)
                .map(|p| ((p * 2654435761 + i * 97) >> 13) as u8)
                .collect();
            let file = format!("{i:06}_{:.3}.{ext}", t_ns as f64 * 1e-9);
            let mut f = std::fs::File::create(folder.join(&file)).expect("create");
            match ext {
                "tiff" => {
                    crabby_blocks::camera::encode_tiff(w, h, PixelFormat::Mono8, &mut head)
                        .expect("tiff");
                    f.write_all(&head).expect("write");
                    f.write_all(&px).expect("write");
                }
                "png" => {
                    let info = FrameInfo {
                        index: i,
                        timestamp_ns: t_ns,
                        format,
                    };
                    crabby_blocks::camera::encode_png(&info, &px, &mut head).expect("png");
                    f.write_all(&head).expect("write");
                }
                _ => f.write_all(&px).expect("write"),
            }
            csv.push_str(&format!(
                "{i},{},{t_ns},{w},{h},mono8,{file}\n",
                t_ns as f64 * 1e-9
            ));
        }
        std::fs::write(folder.join("metadata.csv"), csv).expect("metadata");
        let mut best: f64 = 0.0;
        for _ in 0..3 {
            let mut cam = FileReader::new(&folder, Pacing::AsFastAsPossible).expect("reader");
            cam.open().expect("open");
            let mut buf = vec![0u8; format.bytes()];
            let t = Instant::now();
            let mut k = 0;
            while cam.grab(&mut buf).expect("grab").is_some() {
                k += 1;
            }
            assert_eq!(k, n, "every frame replayed");
            best = best.max(k as f64 / t.elapsed().as_secs_f64());
        }
        println!("FileReader, {w}x{h} mono8 {name}, as fast as possible: {best:.0} frames/s");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn jvl_mac() {
    use crabby::hardware::{Actuator, PositionFeedback};
    use crabby_hardware::serial::jvl_mac::sim::{Motor, SimThread as MotorThread};
    use crabby_hardware::serial::JvlMac;
    let mut best = (0.0f64, 0.0f64);
    for _ in 0..3 {
        let (master, _slave, path) = pty();
        let _sim = MotorThread::new(master, Motor::new(8, 1.92e-3));
        let mut m = JvlMac::new("bench", SerialConfig::new(&path, 19200), 1000.0).address(8);
        m.open().expect("open");
        let reads = per_second(Duration::from_secs(1), |_| {
            m.position().expect("read");
        });
        let speeds = per_second(Duration::from_secs(1), |n| {
            m.set_speed((n % 10) as f64).expect("write");
        });
        m.close().expect("close");
        best = (best.0.max(reads), best.1.max(speeds));
    }
    println!(
        "JVL MAC, simulated motor on a pty: {:.0} register reads/s (P_IST), {:.0} set_speed/s (2 writes each)",
        best.0, best.1
    );
    // On the motor's 19200 baud line: a read is 9 + 19 bytes, a write 15 + 3 (10 bits each).
    println!(
        "JVL MAC, line bound at 19200 baud: {:.0} reads/s, {:.0} set_speed/s",
        1920.0 / 28.0,
        1920.0 / 36.0
    );
}

fn main() {
    jvl_mac();
    ucontroller_board();
    ucontroller_ceiling();
    file_reader();
}
