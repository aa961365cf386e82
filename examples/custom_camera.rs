//! A user's own camera driver, filmed by a camera Block whose processing child tracks what it
//! sees; the track is recorded to CSV and some frames saved as PNG.
//!
//! `OrbitCamera` simulates a camera looking at a bright disc that orbits the centre of a
//! dark, softly lit scene (replace `render` with the real acquisition). Its one setting,
//! `radius`, is applied by the Block before the first frame. A `Centroid` processor, run on
//! every frame in the camera Block's processing child, thresholds the image and sends the
//! disc's centre `x(px)`, `y(px)`; a Recorder writes them, the camera Block's recorder
//! child saves one frame in 10, and a StopBlock ends the test after 2 s. At the end the
//! track is compared with the orbit the camera drew.
//!
//! Run: `cargo run --example custom_camera`

use crabby::camera::{Camera, FrameFormat, FrameInfo, PixelFormat, SettingInfo, SettingValue};
use crabby::{Error, Label, Result, Sample, Settings, Test};
use crabby_blocks::camera::{CameraBlock, FrameProcessor, ImageFormat, ImageView, Processed};
use crabby_blocks::{Recorder, StopBlock};
use std::f64::consts::TAU;

const WIDTH: u32 = 160;
const HEIGHT: u32 = 120;
/// Radius of the orbit, px.
const ORBIT: f64 = 35.0;
/// Turns per second.
const TURNS_PER_S: f64 = 0.5;

/// The driver: `format` and `grab` are the two required methods; `settings`, `get` and
/// `set` expose the disc's radius; `open`, `close`, `name` keep their defaults.
struct OrbitCamera {
    fps: f64,
    radius: f64,
    started_ns: Option<u64>,
    next_due_ns: u64,
    index: u64,
}

impl OrbitCamera {
    /// Where the disc is `t` seconds after the first frame.
    fn centre(t: f64) -> (f64, f64) {
        let a = TAU * TURNS_PER_S * t;
        (
            WIDTH as f64 / 2.0 + ORBIT * a.cos(),
            HEIGHT as f64 / 2.0 + ORBIT * a.sin(),
        )
    }

    /// Draws the scene at `t` s: a dark background lit from the left, the disc at 230.
    fn render(&self, t: f64, buf: &mut [u8]) {
        let (cx, cy) = Self::centre(t);
        let r2 = self.radius * self.radius;
        for (y, row) in buf.chunks_exact_mut(WIDTH as usize).enumerate() {
            for (x, p) in row.iter_mut().enumerate() {
                let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                *p = if dx * dx + dy * dy <= r2 {
                    230
                } else {
                    (60.0 - 40.0 * x as f64 / WIDTH as f64) as u8
                };
            }
        }
    }
}

impl Camera for OrbitCamera {
    fn settings(&self) -> Vec<SettingInfo> {
        vec![SettingInfo::range(
            "radius",
            2.0,
            30.0,
            None,
            self.radius,
            "radius of the disc (px)",
        )]
    }

    fn get(&self, name: &str) -> Result<SettingValue> {
        match name {
            "radius" => Ok(self.radius.into()),
            _ => Err(Error::config(format!(
                "OrbitCamera has no setting '{name}'"
            ))),
        }
    }

    /// The Block has validated the value against `settings` (a number in 2..=30).
    fn set(&mut self, name: &str, value: &SettingValue) -> Result<()> {
        match (name, value) {
            ("radius", SettingValue::Number(r)) => {
                self.radius = *r;
                Ok(())
            }
            _ => Err(Error::config(format!(
                "OrbitCamera cannot set '{name}' to {value}"
            ))),
        }
    }

    fn format(&self) -> FrameFormat {
        FrameFormat::new(WIDTH, HEIGHT, PixelFormat::Mono8)
    }

    /// Waits for the next frame like a real camera waits for its exposure (never more than
    /// 0.2 s per call), then draws it.
    fn grab(&mut self, buf: &mut [u8]) -> Result<Option<FrameInfo>> {
        let now = crabby::time::monotonic_ns();
        if self.next_due_ns == 0 {
            self.next_due_ns = now;
        }
        if now < self.next_due_ns {
            let wait = (self.next_due_ns - now).min(200_000_000);
            std::thread::sleep(std::time::Duration::from_nanos(wait));
            if crabby::time::monotonic_ns() < self.next_due_ns {
                return Ok(None);
            }
        }
        let now = crabby::time::monotonic_ns();
        self.next_due_ns += (1e9 / self.fps) as u64;
        let t0 = *self.started_ns.get_or_insert(now);
        self.render((now - t0) as f64 * 1e-9, buf);
        let info = FrameInfo {
            index: self.index,
            timestamp_ns: now,
            format: self.format(),
        };
        self.index += 1;
        Ok(Some(info))
    }
}

/// Image processing: the centroid of the pixels brighter than 128.
struct Centroid;

impl FrameProcessor for Centroid {
    fn output_labels(&self) -> Vec<Label> {
        ["t(s)", "x(px)", "y(px)"].map(Label::new).to_vec()
    }

    fn process(&mut self, _info: &FrameInfo, img: &ImageView<'_>, t: f64) -> Result<Processed> {
        let (mut n, mut sx, mut sy) = (0.0, 0.0, 0.0);
        for y in 0..img.height {
            for x in 0..img.width {
                if img.get(x, y) > 128.0 {
                    n += 1.0;
                    sx += x as f64 + 0.5;
                    sy += y as f64 + 0.5;
                }
            }
        }
        if n == 0.0 {
            return Ok(Processed::Nothing);
        }
        Ok(Processed::Send(
            Sample::new()
                .with("t(s)", t)
                .with("x(px)", sx / n)
                .with("y(px)", sy / n),
        ))
    }
}

fn main() -> Result<()> {
    let out = std::env::temp_dir()
        .join("crabby-examples")
        .join("custom_camera");
    let csv = out.join("track.csv");
    let mut test = Test::new("custom-camera");
    test.log_file(None);
    let cam = OrbitCamera {
        fps: 30.0,
        radius: 8.0,
        started_ns: None,
        next_due_ns: 0,
        index: 0,
    };
    let camera = test.add_with(
        CameraBlock::new(cam)
            .setting("radius", 10.0)
            .record(out.join("frames"), ImageFormat::Png)
            .save_period(10)
            .process(Centroid),
        Settings::new().name("camera"),
    );
    let rec = test.add(Recorder::new(&csv));
    let stop = test.add(StopBlock::new(["t(s) > 2"])?);
    test.link(camera, rec);
    test.link(camera, stop);
    let report = test.run()?;
    println!("{} samples lost", report.samples_lost());

    // The measured track against the orbit: every point at ORBIT px from the centre.
    let text =
        std::fs::read_to_string(&csv).map_err(|e| Error::io(csv.display().to_string(), e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(ix), Some(iy)) = (col("x(px)"), col("y(px)")) else {
        return Err(Error::config(format!("no x(px), y(px) in {header:?}")));
    };
    let dist: Vec<f64> = lines
        .filter_map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            let x: f64 = c.get(ix)?.parse().ok()?;
            let y: f64 = c.get(iy)?.parse().ok()?;
            Some((x - WIDTH as f64 / 2.0).hypot(y - HEIGHT as f64 / 2.0))
        })
        .collect();
    let worst = dist.iter().map(|d| (d - ORBIT).abs()).fold(0.0, f64::max);
    println!(
        "{} positions tracked; farthest from the {ORBIT} px orbit: {worst:.2} px",
        dist.len()
    );
    println!("data written under {}", out.display());
    Ok(())
}
