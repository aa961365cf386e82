//! [`FakeCamera`]: synthetic frames of a chosen size and rate (a scrolling gradient).

use crabby::camera::{Camera, FrameFormat, FrameInfo, PixelFormat, SettingInfo, SettingValue};
use crabby::{Error, Result};

/// A simulated camera: a vertical grey gradient (`row r = r·255/height`) scrolling down at
/// `speed` pixels per second, delivered at `fps` frames per second (as Crappy's FakeCamera).
///
/// `grab` sleeps until the next frame is due (like a real camera waiting for its exposure),
/// so a camera Block does not spin, but at most 0.2 s per call (then it returns `Ok(None)`
/// and the Block calls again, so a slow rate never delays the end of a test); `fps = 0` delivers frames as fast as they are asked for
/// (benchmarks). 8-bit grey.
#[derive(Debug, Clone)]
pub struct FakeCamera {
    width: u32,
    height: u32,
    speed: f64,
    fps: f64,
    created_ns: u64,
    next_due_ns: u64,
    index: u64,
}

impl FakeCamera {
    /// A `width × height` camera (1..=8192 each) at `fps` frames/s (0 = as fast as asked,
    /// else 0.01..=100000),
    /// its pattern scrolling at `speed` px/s.
    pub fn new(width: u32, height: u32, fps: f64, speed: f64) -> Result<Self> {
        if !(1..=8192).contains(&width) || !(1..=8192).contains(&height) {
            return Err(Error::config(format!(
                "FakeCamera: size {width}x{height} must be 1..=8192 on each side"
            )));
        }
        super::check_fps("FakeCamera", fps)?;
        if !speed.is_finite() {
            return Err(Error::config(format!(
                "FakeCamera: speed {speed} must be finite"
            )));
        }
        let now = crabby::time::monotonic_ns();
        Ok(FakeCamera {
            width,
            height,
            speed,
            fps,
            created_ns: now,
            next_due_ns: 0,
            index: 0,
        })
    }

    /// Crappy's defaults: 1280×720 at 50 frames/s, scrolling at 100 px/s.
    pub fn default_size() -> Self {
        Self::new(1280, 720, 50.0, 100.0).expect("valid defaults")
    }

    /// Renders the frame at time `t_ns` into `buf` (pure; used by `grab`).
    pub fn render(&self, t_ns: u64, buf: &mut [u8]) {
        let (w, h) = (self.width as usize, self.height as usize);
        let dt = (t_ns.saturating_sub(self.created_ns)) as f64 * 1e-9;
        let shift = (self.speed * dt).floor().rem_euclid(h as f64) as usize;
        for (r, row) in buf[..w * h].chunks_exact_mut(w).enumerate() {
            // Output row r shows base row (r + shift) mod h (np.roll-like).
            let base = (r + shift) % h;
            row.fill((base * 255 / h.max(2).saturating_sub(1).max(1)).min(255) as u8);
        }
    }
}

impl Camera for FakeCamera {
    fn settings(&self) -> Vec<SettingInfo> {
        vec![
            SettingInfo::range(
                "fps",
                0.0,
                100_000.0,
                None,
                self.fps,
                "frames per second (0: free run)",
            ),
            SettingInfo::range(
                "speed",
                -10_000.0,
                10_000.0,
                None,
                self.speed,
                "pattern speed (px/s)",
            ),
        ]
    }

    fn get(&self, name: &str) -> Result<SettingValue> {
        match name {
            "fps" => Ok(self.fps.into()),
            "speed" => Ok(self.speed.into()),
            _ => Err(Error::config(format!(
                "FakeCamera has no setting '{name}' (fps, speed)"
            ))),
        }
    }

    fn set(&mut self, name: &str, value: &SettingValue) -> Result<()> {
        match (name, value) {
            ("fps", SettingValue::Number(v)) => {
                super::check_fps("FakeCamera", *v)?;
                self.fps = *v;
            }
            ("speed", SettingValue::Number(v)) => self.speed = *v,
            _ => {
                return Err(Error::config(format!(
                    "FakeCamera: cannot set '{name}' to {value}"
                )))
            }
        }
        Ok(())
    }

    fn format(&self) -> FrameFormat {
        FrameFormat::new(self.width, self.height, PixelFormat::Mono8)
    }

    fn grab(&mut self, buf: &mut [u8]) -> Result<Option<FrameInfo>> {
        let Some(now) = super::pace(self.fps, &mut self.next_due_ns) else {
            return Ok(None);
        };
        self.render(now, buf);
        let info = FrameInfo {
            index: self.index,
            timestamp_ns: now,
            format: self.format(),
        };
        self.index += 1;
        Ok(Some(info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_scrolls_at_speed() {
        let cam = FakeCamera::new(4, 256, 0.0, 100.0).unwrap();
        let mut a = vec![0u8; 4 * 256];
        cam.render(cam.created_ns, &mut a);
        assert_eq!(a[0], 0);
        assert_eq!(a[255 * 4], 255);
        // 0.5 s later the pattern moved by 50 rows.
        let mut b = vec![0u8; 4 * 256];
        cam.render(cam.created_ns + 500_000_000, &mut b);
        assert_eq!(b[0], a[50 * 4]);
        assert_eq!(&b[..4], &a[200..204]);
    }

    #[test]
    fn paced_grab_delivers_at_fps() {
        let mut cam = FakeCamera::new(8, 8, 200.0, 0.0).unwrap();
        let mut buf = vec![0u8; 64];
        let t = std::time::Instant::now();
        let mut last = 0;
        for i in 0..11 {
            let info = cam.grab(&mut buf).unwrap().unwrap();
            assert_eq!(info.index, i);
            assert!(info.timestamp_ns >= last);
            last = info.timestamp_ns;
        }
        // 10 periods of 5 ms: at least 50 ms (never early).
        assert!(t.elapsed() >= std::time::Duration::from_millis(49));
        assert!(FakeCamera::new(0, 8, 1.0, 0.0).is_err());
        assert!(crabby::camera::apply_setting(&mut cam, "fps", &(-1.0).into()).is_err());
        crabby::camera::apply_setting(&mut cam, "fps", &10.0.into()).unwrap();
        assert_eq!(cam.get("fps").unwrap(), SettingValue::Number(10.0));
    }
}
