//! [`StrainedSampleCamera`]: a simulated camera looking at a sample with marker spots,
//! deformed by the strain the test imposes.

use crabby::camera::{Camera, FrameFormat, FrameInfo, PixelFormat, SettingInfo, SettingValue};
use crabby::{Error, Label, Result, Sample};

/// Softness of a spot's edge (px): the grey level follows a logistic profile
/// `1 / (1 + exp((d − r) / EDGE))` of the distance `d` to the centre, as through slightly
/// defocused optics. A smooth edge keeps the pixel sampling from biasing sub-pixel centres.
const EDGE: f64 = 0.6;

/// A simulated camera filming a sample with marker spots (and optionally a speckle), whose
/// image is deformed by the engineering strains it receives as the labels `Exx(%)` and
/// `Eyy(%)` (e.g. from a `FakeMachine`), through [`Camera::update_inputs`].
///
/// The image is rendered analytically, so video extensometry can be checked against a known
/// answer: the sample is stretched about the image centre by `(1 + exx)` along x and
/// `(1 + eyy)` along y. A spot whose centre is at `(sx, sy)` from the image centre at zero
/// strain is drawn as an ellipse centred at `(sx·(1+exx), sy·(1+eyy))` with semi-axes
/// `r·(1+exx)`, `r·(1+eyy)`, with a smooth (logistic, 0.6 px) edge so that sub-pixel centres
/// are not biased by the pixel grid. Pixel `(i, j)` (column, row) is centred at
/// `x = i, y = j`.
#[derive(Debug, Clone)]
pub struct StrainedSampleCamera {
    width: u32,
    height: u32,
    spots: Vec<(f64, f64)>,
    radius: f64,
    background: u8,
    spot_level: u8,
    speckle: Vec<(f64, f64)>,
    exx_pct: f64,
    eyy_pct: f64,
    exx_label: Label,
    eyy_label: Label,
    fps: f64,
    next_due_ns: u64,
    index: u64,
}

impl StrainedSampleCamera {
    /// A `width × height` camera with four dark spots of radius `radius` in a cross, at
    /// ±35 % of the width and ±35 % of the height from the centre, 100 frames/s.
    pub fn new(width: u32, height: u32, radius: f64) -> Result<Self> {
        if !(16..=8192).contains(&width) || !(16..=8192).contains(&height) {
            return Err(Error::config(format!(
                "StrainedSampleCamera: size {width}x{height} must be 16..=8192 on each side"
            )));
        }
        if !(radius >= 1.0 && radius.is_finite()) {
            return Err(Error::config(format!(
                "StrainedSampleCamera: spot radius {radius} must be at least 1 px"
            )));
        }
        let (ax, ay) = (0.35 * f64::from(width), 0.35 * f64::from(height));
        Ok(StrainedSampleCamera {
            width,
            height,
            spots: vec![(-ax, 0.0), (ax, 0.0), (0.0, -ay), (0.0, ay)],
            radius,
            background: 210,
            spot_level: 30,
            speckle: Vec::new(),
            exx_pct: 0.0,
            eyy_pct: 0.0,
            exx_label: Label::new("Exx(%)"),
            eyy_label: Label::new("Eyy(%)"),
            fps: 100.0,
            next_due_ns: 0,
            index: 0,
        })
    }

    /// Replaces the spots: centres relative to the image centre, at zero strain (px).
    pub fn spots(mut self, spots: &[(f64, f64)]) -> Self {
        self.spots = spots.to_vec();
        self
    }

    /// Frames per second (`grab` sleeps until the next one is due, at most 0.2 s per call;
    /// 0 = free run). Clamped to 0.01..=100000; 0, negative or NaN means free run.
    pub fn fps(mut self, fps: f64) -> Self {
        self.fps = if fps > 0.0 {
            fps.clamp(super::MIN_FPS, 100_000.0)
        } else {
            0.0
        };
        self
    }

    /// Adds `n` speckle dots (radius 1.5 px) at pseudo-random places (from `seed`), away
    /// from the markers; they move with the sample. A `Config` error if `n` places away from
    /// the markers are not found in `1000 + 100·n` draws (markers too large for the image).
    pub fn speckle(mut self, n: usize, seed: u64) -> Result<Self> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let (hw, hh) = (f64::from(self.width) / 2.0, f64::from(self.height) / 2.0);
        let keep_out = 3.0 * self.radius + 12.0;
        let (start, mut tries) = (self.speckle.len(), 0usize);
        let max_tries = n.saturating_mul(100).saturating_add(1000);
        while self.speckle.len() - start < n {
            if tries == max_tries {
                return Err(Error::config(format!(
                    "StrainedSampleCamera: only {} of {n} speckle dots fit at more than {keep_out:.1} px from the markers in a {}x{} image; use fewer dots, smaller spots or a larger image",
                    self.speckle.len() - start,
                    self.width,
                    self.height
                )));
            }
            tries += 1;
            let p = (
                (next() * 2.0 - 1.0) * hw * 0.9,
                (next() * 2.0 - 1.0) * hh * 0.9,
            );
            if self
                .spots
                .iter()
                .all(|m| (m.0 - p.0).hypot(m.1 - p.1) > keep_out)
            {
                self.speckle.push(p);
            }
        }
        Ok(self)
    }

    /// Light spots on a dark sample instead of dark spots on a light one.
    pub fn white_spots(mut self) -> Self {
        std::mem::swap(&mut self.background, &mut self.spot_level);
        self
    }

    /// Reads the strains from other labels than `Exx(%)` / `Eyy(%)`.
    pub fn strain_labels(mut self, exx: &str, eyy: &str) -> Self {
        self.exx_label = Label::new(exx);
        self.eyy_label = Label::new(eyy);
        self
    }

    /// Imposes the strains (in %) directly.
    pub fn set_strain(&mut self, exx_pct: f64, eyy_pct: f64) {
        self.exx_pct = exx_pct;
        self.eyy_pct = eyy_pct;
    }

    /// Where spot `k`'s centre is drawn at the current strain (x = column, y = row).
    pub fn spot_centre(&self, k: usize) -> (f64, f64) {
        let (ex, ey) = (self.exx_pct / 100.0, self.eyy_pct / 100.0);
        let (cx, cy) = self.centre();
        (
            cx + self.spots[k].0 * (1.0 + ex),
            cy + self.spots[k].1 * (1.0 + ey),
        )
    }

    fn centre(&self) -> (f64, f64) {
        (
            (f64::from(self.width) - 1.0) / 2.0,
            (f64::from(self.height) - 1.0) / 2.0,
        )
    }

    /// Renders the image at the current strain into `buf` (mono8, `width × height`).
    pub fn render(&self, buf: &mut [u8]) {
        let (w, h) = (self.width as usize, self.height as usize);
        let buf = &mut buf[..w * h];
        buf.fill(self.background);
        let (ex, ey) = (self.exx_pct / 100.0, self.eyy_pct / 100.0);
        let (cx, cy) = self.centre();
        let (bg, fg) = (f64::from(self.background), f64::from(self.spot_level));
        let draw = |buf: &mut [u8], sx: f64, sy: f64, r: f64| {
            let (x0, y0) = (cx + sx * (1.0 + ex), cy + sy * (1.0 + ey));
            let (a, b) = (r * (1.0 + ex), r * (1.0 + ey));
            let reach = a.max(b) + 12.0 * EDGE;
            let i0 = (x0 - reach).floor().max(0.0) as usize;
            let i1 = ((x0 + reach).ceil() as usize).min(w - 1);
            let j0 = (y0 - reach).floor().max(0.0) as usize;
            let j1 = ((y0 + reach).ceil() as usize).min(h - 1);
            for j in j0..=j1 {
                for i in i0..=i1 {
                    let (dx, dy) = (i as f64 - x0, j as f64 - y0);
                    let d = dx.hypot(dy);
                    // Radius of the ellipse in the direction of the pixel.
                    let re = if d > 0.0 {
                        a * b / ((b * dx / d).powi(2) + (a * dy / d).powi(2)).sqrt()
                    } else {
                        a.min(b)
                    };
                    let cover = 1.0 / (1.0 + ((d - re) / EDGE).exp());
                    if cover > 1e-4 {
                        let px = &mut buf[j * w + i];
                        let v = f64::from(*px) + cover * (fg - bg);
                        *px = v.round().clamp(0.0, 255.0) as u8;
                    }
                }
            }
        };
        for &(sx, sy) in &self.spots {
            draw(buf, sx, sy, self.radius);
        }
        for &(sx, sy) in &self.speckle {
            draw(buf, sx, sy, 1.5);
        }
    }
}

impl Camera for StrainedSampleCamera {
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
                "Exx",
                -50.0,
                100.0,
                None,
                self.exx_pct,
                "imposed strain along x (%)",
            ),
            SettingInfo::range(
                "Eyy",
                -50.0,
                100.0,
                None,
                self.eyy_pct,
                "imposed strain along y (%)",
            ),
        ]
    }

    fn get(&self, name: &str) -> Result<SettingValue> {
        match name {
            "fps" => Ok(self.fps.into()),
            "Exx" => Ok(self.exx_pct.into()),
            "Eyy" => Ok(self.eyy_pct.into()),
            _ => Err(Error::config(format!(
                "StrainedSampleCamera has no setting '{name}' (fps, Exx, Eyy)"
            ))),
        }
    }

    fn set(&mut self, name: &str, value: &SettingValue) -> Result<()> {
        match (name, value) {
            ("fps", SettingValue::Number(v)) => {
                super::check_fps("StrainedSampleCamera", *v)?;
                self.fps = *v;
            }
            ("Exx", SettingValue::Number(v)) => self.exx_pct = *v,
            ("Eyy", SettingValue::Number(v)) => self.eyy_pct = *v,
            _ => {
                return Err(Error::config(format!(
                    "StrainedSampleCamera: cannot set '{name}' to {value}"
                )))
            }
        }
        Ok(())
    }

    fn format(&self) -> FrameFormat {
        FrameFormat::new(self.width, self.height, PixelFormat::Mono8)
    }

    fn update_inputs(&mut self, inputs: &Sample) {
        if let Some(v) = inputs.get_f64(&self.exx_label) {
            self.exx_pct = v;
        }
        if let Some(v) = inputs.get_f64(&self.eyy_label) {
            self.eyy_pct = v;
        }
    }

    fn grab(&mut self, buf: &mut [u8]) -> Result<Option<FrameInfo>> {
        let Some(now) = super::pace(self.fps, &mut self.next_due_ns) else {
            return Ok(None);
        };
        self.render(buf);
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

    /// Intensity-weighted centroid of the darkness in a box: should land on the drawn centre.
    fn centroid(img: &[u8], w: usize, x0: usize, y0: usize, size: usize) -> (f64, f64) {
        let (mut s, mut sx, mut sy) = (0.0, 0.0, 0.0);
        for j in y0..y0 + size {
            for i in x0..x0 + size {
                let wgt = 210.0 - f64::from(img[j * w + i]);
                s += wgt;
                sx += wgt * i as f64;
                sy += wgt * j as f64;
            }
        }
        (sx / s, sy / s)
    }

    #[test]
    fn spots_move_with_the_strain() {
        let mut cam = StrainedSampleCamera::new(400, 300, 8.0).unwrap();
        let mut img = vec![0u8; 400 * 300];
        cam.update_inputs(&Sample::new().with("Exx(%)", 4.0).with("Eyy(%)", -1.0));
        cam.render(&mut img);
        for k in 0..4 {
            let (x, y) = cam.spot_centre(k);
            let (mx, my) = centroid(&img, 400, x as usize - 14, y as usize - 14, 29);
            assert!(
                (mx - x).abs() < 0.01 && (my - y).abs() < 0.01,
                "spot {k}: {mx},{my} vs {x},{y}"
            );
        }
        // Right spot: centre 199.5 + 140·1.04.
        assert!((cam.spot_centre(1).0 - (199.5 + 140.0 * 1.04)).abs() < 1e-9);
        assert_eq!(img[0], 210);
        let (x, y) = cam.spot_centre(0);
        assert_eq!(img[y.round() as usize * 400 + x.round() as usize], 30);
    }

    #[test]
    fn speckle_and_white_spots() {
        let cam = StrainedSampleCamera::new(200, 200, 6.0)
            .unwrap()
            .speckle(50, 7)
            .unwrap()
            .white_spots();
        let mut img = vec![0u8; 200 * 200];
        cam.render(&mut img);
        assert_eq!(img[0], 30);
        assert!(img.iter().filter(|&&p| p > 100).count() > 4 * 100);
    }

    #[test]
    fn impossible_speckle_is_an_error_not_a_hang() {
        // Spots of radius 20 keep speckle 72 px away: nowhere in a 64x64 image.
        let e = StrainedSampleCamera::new(64, 64, 20.0)
            .unwrap()
            .speckle(1, 0)
            .unwrap_err();
        assert_eq!(e.kind(), crabby::ErrorKind::Configuration);
        assert!(e.to_string().contains("speckle"), "{e}");
    }
}
