//! Video extensometry: marker spots detected on the first frame, tracked frame to frame, and
//! the engineering strain between the extreme spots.
//!
//! [`VideoExtensoTool`] is the pure algorithm (usable on any [`ImageView`]);
//! [`VideoExtenso`] wraps it as the [`FrameProcessor`] of a camera Block, sending
//! `t(s)`, `Exx(%)`, `Eyy(%)`, `Coord(px)` and `frame`.
//!
//! **Detection** (first frame, in the region of interest): Otsu threshold, binarisation
//! (dark spots: `value <= threshold`, or the opposite with `white_spots`), 8-connected
//! components, kept if their area is in `min_area..=max_area`, they do not touch the region's
//! edge, and their roundness is at least `min_roundness`. Roundness is computed from the
//! component's second moments: `(minor/major axis) × min(f, 1/f)` where `f` is the area over
//! the area of the ellipse with the same moments (1 for a disc, lower for elongated or ragged
//! shapes). The largest `num_spots` are kept (2 to 4).
//!
//! **Centres** are sub-pixel: the intensity-weighted centroid over the component's box grown
//! by 4 px, weighting each pixel by its contrast to the local background (the median of the
//! ring of pixels around that box), so anti-aliased edges count for what they cover.
//! Measured on images of crabby-hardware's `StrainedSampleCamera` (spot radius 9 px,
//! 640×480, Exx 0 to 5 %): the strain is within 0.002 % of the imposed one.
//!
//! **Tracking**: each spot is searched in its previous box grown by `border` px; the spot is
//! the component nearest its previous centre whose area is within a quarter and four times
//! its area at detection (so a grip edge or a shadow entering the window is never taken
//! for it). If that component touches the window's edge the window is doubled (up to 8
//! times the border). A spot not found, out of that area range (shrunk, or merged with a
//! larger dark region), or merged with another spot is a [`LostSpot`] error: never a
//! silent wrong value.
//!
//! **Strain**: `Exx = ((max x − min x) / L0x − 1)·100`, `Eyy` likewise, with `L0` from the
//! first frame. A direction the spots do not span (`L0 < 2 px`) gives `NaN`.

use super::{FrameProcessor, ImageView, Processed};
use crabby::camera::FrameInfo;
use crabby::{Error, ErrorKind, Label, Result, Sample};

/// Margin (px) around a spot's thresholded box over which its centre is weighted.
const CENTRE_MARGIN: usize = 4;

/// A spot: sub-pixel centre, area and bounding box (inclusive pixel bounds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spot {
    /// Centre, x (column).
    pub x: f64,
    /// Centre, y (row).
    pub y: f64,
    /// Area in pixels (of the thresholded component).
    pub area: usize,
    /// Bounding box `(x0, y0, x1, y1)`, inclusive.
    pub bbox: (usize, usize, usize, usize),
}

/// What to do when a spot is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LostSpot {
    /// The processing fails: the camera Block's step returns the error and the test stops
    /// as failed (default).
    #[default]
    Fail,
    /// The error is logged and the test is stopped normally.
    StopTest,
}

/// Parameters of video extensometry.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoExtensoConfig {
    /// Spots to keep (2..=4); `None`: as many as found, 2 to 4.
    pub num_spots: Option<usize>,
    /// Light spots on a dark background.
    pub white_spots: bool,
    /// Smallest spot area (px).
    pub min_area: usize,
    /// Largest spot area (px); `None`: a tenth of the region.
    pub max_area: Option<usize>,
    /// Lowest roundness (0..1) of a spot.
    pub min_roundness: f64,
    /// Search margin around a spot's previous box when tracking (px).
    pub border: usize,
    /// Region of interest `(x, y, width, height)` for detection; `None`: the whole image.
    pub roi: Option<(usize, usize, usize, usize)>,
    /// Recompute the threshold (Otsu) in each tracking window instead of keeping the one
    /// found at detection (for changing lighting).
    pub update_threshold: bool,
    /// What a lost spot does.
    pub on_lost: LostSpot,
}

impl Default for VideoExtensoConfig {
    fn default() -> Self {
        VideoExtensoConfig {
            num_spots: None,
            white_spots: false,
            min_area: 30,
            max_area: None,
            min_roundness: 0.6,
            border: 8,
            roi: None,
            update_threshold: false,
            on_lost: LostSpot::Fail,
        }
    }
}

/// Result of one tracked frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Strains {
    /// Engineering strain along x, in %.
    pub exx_pct: f64,
    /// Engineering strain along y, in %.
    pub eyy_pct: f64,
    /// The spots, in detection order.
    pub spots: Vec<Spot>,
}

/// The video extensometry algorithm (detection, tracking, strain).
#[derive(Debug, Clone)]
pub struct VideoExtensoTool {
    config: VideoExtensoConfig,
    spots: Vec<Spot>,
    /// Each spot's area at detection: a tracked spot keeps within 1/4..4 times it.
    areas0: Vec<usize>,
    threshold: f32,
    l0: (f64, f64),
}

/// One connected component's statistics.
#[derive(Debug, Clone, Copy)]
struct Comp {
    area: usize,
    sx: f64,
    sy: f64,
    sxx: f64,
    syy: f64,
    sxy: f64,
    bbox: (usize, usize, usize, usize),
    touches_edge: bool,
}

impl Comp {
    fn roundness(&self) -> f64 {
        let n = self.area as f64;
        let (mx, my) = (self.sx / n, self.sy / n);
        // Second central moments (+1/12 for the extent of a pixel).
        let cxx = self.sxx / n - mx * mx + 1.0 / 12.0;
        let cyy = self.syy / n - my * my + 1.0 / 12.0;
        let cxy = self.sxy / n - mx * my;
        let tr = cxx + cyy;
        let det = (cxx * cyy - cxy * cxy).max(1e-12);
        let disc = ((tr * tr / 4.0) - det).max(0.0).sqrt();
        let (l1, l2) = (tr / 2.0 + disc, (tr / 2.0 - disc).max(1e-12));
        // An ellipse with semi-axes a, b has variances a²/4 and b²/4, so its area
        // π·a·b = 4π·sqrt(l1·l2).
        let f = n / (4.0 * std::f64::consts::PI * (l1 * l2).sqrt());
        (l2 / l1).sqrt() * f.min(1.0 / f)
    }
}

impl VideoExtensoTool {
    /// A tool with `config`; nothing detected yet.
    pub fn new(config: VideoExtensoConfig) -> Result<Self> {
        if let Some(n) = config.num_spots {
            if !(2..=4).contains(&n) {
                return Err(Error::config(format!(
                    "VideoExtenso: num_spots = {n}; it must be 2, 3 or 4"
                )));
            }
        }
        if !(0.0..=1.0).contains(&config.min_roundness) {
            return Err(Error::config(
                "VideoExtenso: min_roundness must be in 0..=1",
            ));
        }
        Ok(VideoExtensoTool {
            config,
            spots: Vec::new(),
            areas0: Vec::new(),
            threshold: 0.0,
            l0: (0.0, 0.0),
        })
    }

    /// The spots (after detection).
    pub fn spots(&self) -> &[Spot] {
        &self.spots
    }

    /// `L0` along x and y (px), from detection.
    pub fn l0(&self) -> (f64, f64) {
        self.l0
    }

    /// Whether spots were detected.
    pub fn detected(&self) -> bool {
        !self.spots.is_empty()
    }

    fn dark(&self, v: f32, thr: f32) -> bool {
        if self.config.white_spots {
            v > thr
        } else {
            v <= thr
        }
    }

    /// Detects the spots and sets `L0`.
    pub fn detect(&mut self, img: &ImageView<'_>) -> Result<&[Spot]> {
        let (rx, ry, rw, rh) = self.config.roi.unwrap_or((0, 0, img.width, img.height));
        let fits = |x: usize, w: usize, max: usize| x.checked_add(w).is_some_and(|e| e <= max);
        if rw < 3 || rh < 3 || !fits(rx, rw, img.width) || !fits(ry, rh, img.height) {
            return Err(Error::config(format!(
                "VideoExtenso: region of interest {:?} does not fit the {}x{} image",
                (rx, ry, rw, rh),
                img.width,
                img.height
            )));
        }
        let thr = spot_threshold(
            img,
            (rx, ry, rx + rw - 1, ry + rh - 1),
            self.config.white_spots,
        );
        self.threshold = thr;
        let max_area = self.config.max_area.unwrap_or(rw * rh / 10);
        let comps = components(img, (rx, ry, rx + rw - 1, ry + rh - 1), |v| {
            self.dark(v, thr)
        });
        let mut kept: Vec<Comp> = comps
            .into_iter()
            .filter(|c| {
                c.area >= self.config.min_area
                    && c.area <= max_area
                    && !c.touches_edge
                    && c.roundness() >= self.config.min_roundness
            })
            .collect();
        kept.sort_by_key(|c| std::cmp::Reverse(c.area));
        let want = self.config.num_spots.unwrap_or(kept.len().min(4));
        if kept.len() < want.max(2) {
            return Err(Error::new(
                ErrorKind::Hardware,
                format!(
                    "VideoExtenso: found {} spot(s) (area {}..={max_area} px, roundness >= {}, threshold {thr:.1}); need {}. Check the lighting, the region of interest, white_spots and min_area",
                    kept.len(),
                    self.config.min_area,
                    self.config.min_roundness,
                    want.max(2)
                ),
            ));
        }
        kept.truncate(want);
        let mut spots = Vec::with_capacity(kept.len());
        for c in &kept {
            let (x, y) = self.weighted_centre(img, c.bbox);
            spots.push(Spot {
                x,
                y,
                area: c.area,
                bbox: c.bbox,
            });
        }
        self.l0 = spread(&spots);
        self.areas0 = spots.iter().map(|s| s.area).collect();
        self.spots = spots;
        Ok(&self.spots)
    }

    /// Sub-pixel centre: contrast-weighted centroid over `bbox` grown by `CENTRE_MARGIN` px.
    fn weighted_centre(
        &self,
        img: &ImageView<'_>,
        bbox: (usize, usize, usize, usize),
    ) -> (f64, f64) {
        let (x0, y0, x1, y1) = grow(bbox, CENTRE_MARGIN, img);
        let ring = grow(bbox, CENTRE_MARGIN + 1, img);
        let mut border = Vec::new();
        for y in ring.1..=ring.3 {
            for x in ring.0..=ring.2 {
                if x == ring.0 || x == ring.2 || y == ring.1 || y == ring.3 {
                    border.push(img.get(x, y));
                }
            }
        }
        border.sort_by(|a, b| a.total_cmp(b));
        let bg = f64::from(border[border.len() / 2]);
        let (mut s, mut sx, mut sy) = (0.0, 0.0, 0.0);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let v = f64::from(img.get(x, y));
                let w = if self.config.white_spots {
                    v - bg
                } else {
                    bg - v
                };
                if w > 0.0 {
                    s += w;
                    sx += w * x as f64;
                    sy += w * y as f64;
                }
            }
        }
        if s > 0.0 {
            (sx / s, sy / s)
        } else {
            ((x0 + x1) as f64 / 2.0, (y0 + y1) as f64 / 2.0)
        }
    }

    fn lost(&self, k: usize, why: String) -> Error {
        Error::new(
            ErrorKind::Hardware,
            format!("VideoExtenso: spot {k} lost: {why}"),
        )
    }

    /// Tracks the spots on a new frame and returns the strains.
    pub fn track(&mut self, img: &ImageView<'_>) -> Result<Strains> {
        if self.spots.is_empty() {
            self.detect(img)?;
            return Ok(self.strains());
        }
        let mut new = Vec::with_capacity(self.spots.len());
        for (k, s) in self.spots.iter().enumerate() {
            let a0 = self.areas0[k];
            let (lo, hi) = (a0.div_ceil(4), a0.saturating_mul(4));
            let mut margin = self.config.border.max(2);
            let found = loop {
                let win = grow(s.bbox, margin, img);
                let thr = if self.config.update_threshold {
                    spot_threshold(img, win, self.config.white_spots)
                } else {
                    self.threshold
                };
                let comps = components(img, win, |v| self.dark(v, thr));
                // The spot is the component of a plausible area nearest its last centre: a
                // larger dark region (a grip, a shadow) entering the window is never taken
                // for it, and a spot merged with one is lost, not silently displaced.
                let dist = |c: &Comp| {
                    let n = c.area as f64;
                    let (cx, cy) = (win.0 as f64 + c.sx / n, win.1 as f64 + c.sy / n);
                    (cx - s.x).hypot(cy - s.y)
                };
                let best = comps
                    .iter()
                    .filter(|c| (lo..=hi).contains(&c.area))
                    .min_by(|a, b| dist(a).total_cmp(&dist(b)))
                    .copied();
                match best {
                    Some(c) if c.touches_edge && margin < 8 * self.config.border.max(2) => {
                        let on_image_edge = c.bbox.0 == 0
                            || c.bbox.1 == 0
                            || c.bbox.2 + 1 == img.width
                            || c.bbox.3 + 1 == img.height;
                        if on_image_edge {
                            return Err(self.lost(k, "it reached the edge of the image".into()));
                        }
                        margin *= 2;
                    }
                    Some(c) if c.touches_edge => {
                        return Err(self.lost(k, "it moved too far between two frames".into()))
                    }
                    Some(c) => break c,
                    None => {
                        let largest = comps.iter().map(|c| c.area).max();
                        let why = match largest {
                            Some(a) if a > hi => format!(
                                "a dark region of {a} px (more than 4 times its area at detection, {a0} px) covers its place"
                            ),
                            Some(a) => format!(
                                "its area fell from {a0} px at detection to {a} px"
                            ),
                            None => "nothing darker than the threshold near its last place".into(),
                        };
                        return Err(self.lost(k, why));
                    }
                }
            };
            let (x, y) = self.weighted_centre(img, found.bbox);
            new.push(Spot {
                x,
                y,
                area: found.area,
                bbox: found.bbox,
            });
        }
        for a in 0..new.len() {
            for b in a + 1..new.len() {
                let d = (new[a].x - new[b].x).hypot(new[a].y - new[b].y);
                let r = ((new[a].area + new[b].area) as f64 / std::f64::consts::PI).sqrt() / 2.0;
                if d < r {
                    return Err(self.lost(a, format!("it merged with spot {b}")));
                }
            }
        }
        self.spots = new;
        Ok(self.strains())
    }

    fn strains(&self) -> Strains {
        let (lx, ly) = spread(&self.spots);
        let strain = |l: f64, l0: f64| {
            if l0 < 2.0 {
                f64::NAN
            } else {
                (l / l0 - 1.0) * 100.0
            }
        };
        Strains {
            exx_pct: strain(lx, self.l0.0),
            eyy_pct: strain(ly, self.l0.1),
            spots: self.spots.clone(),
        }
    }
}

/// `(max x − min x, max y − min y)` of the spots' centres.
fn spread(spots: &[Spot]) -> (f64, f64) {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for s in spots {
        x0 = x0.min(s.x);
        x1 = x1.max(s.x);
        y0 = y0.min(s.y);
        y1 = y1.max(s.y);
    }
    (x1 - x0, y1 - y0)
}

fn grow(
    b: (usize, usize, usize, usize),
    m: usize,
    img: &ImageView<'_>,
) -> (usize, usize, usize, usize) {
    (
        b.0.saturating_sub(m),
        b.1.saturating_sub(m),
        (b.2 + m).min(img.width - 1),
        (b.3 + m).min(img.height - 1),
    )
}

/// The threshold for spots: only the tail away from the spots is clipped (the bright one
/// for dark spots), so small spots, which may be under 0.1 % of the pixels, keep their bins.
fn spot_threshold(img: &ImageView<'_>, r: (usize, usize, usize, usize), white: bool) -> f32 {
    otsu_clipped(img, r, white, !white)
}

/// Otsu's threshold over the inclusive box `r`: 256 bins between the box's 0.1 percentile
/// (with `clip_low`, else its minimum) and its 99.9 percentile (with `clip_high`, else its
/// maximum); values beyond go to the end bins, so a few hot or dead pixels of a 16-bit
/// image do not squeeze the data into a few bins.
fn otsu_clipped(
    img: &ImageView<'_>,
    r: (usize, usize, usize, usize),
    clip_low: bool,
    clip_high: bool,
) -> f32 {
    let (mut lo, mut hi) = (f32::MAX, f32::MIN);
    for y in r.1..=r.3 {
        for x in r.0..=r.2 {
            let v = img.get(x, y);
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if hi <= lo {
        return lo;
    }
    // Percentiles from a fine histogram (4096 bins between min and max).
    const FINE: usize = 4096;
    let fine_scale = (FINE - 1) as f32 / (hi - lo);
    let mut fine = vec![0u64; FINE];
    for y in r.1..=r.3 {
        for x in r.0..=r.2 {
            fine[(((img.get(x, y) - lo) * fine_scale) as usize).min(FINE - 1)] += 1;
        }
    }
    let n: u64 = fine.iter().sum();
    let cut = n / 1000;
    let mut acc = 0;
    let first = fine
        .iter()
        .position(|&c| {
            acc += c;
            acc > cut
        })
        .unwrap_or(0);
    acc = 0;
    let last = FINE
        - 1
        - fine
            .iter()
            .rev()
            .position(|&c| {
                acc += c;
                acc > cut
            })
            .unwrap_or(0);
    let first = if clip_low { first } else { 0 };
    let last = if clip_high { last } else { FINE - 1 };
    let (plo, phi) = (
        lo + first as f32 / fine_scale,
        lo + (last + 1) as f32 / fine_scale,
    );
    let (lo, hi) = if phi > plo {
        (plo, phi.min(hi))
    } else {
        (lo, hi)
    };
    if hi <= lo {
        return lo;
    }
    let scale = 255.0 / (hi - lo);
    let mut hist = [0u64; 256];
    for y in r.1..=r.3 {
        for x in r.0..=r.2 {
            let b = ((img.get(x, y) - lo) * scale).clamp(0.0, 255.0) as usize;
            hist[b] += 1;
        }
    }
    let total: u64 = hist.iter().sum();
    let sum_all: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &h)| i as f64 * h as f64)
        .sum();
    let (mut w0, mut sum0, mut best, mut best_t) = (0u64, 0.0, -1.0, 0usize);
    for (t, &h) in hist.iter().enumerate() {
        w0 += h;
        if w0 == 0 {
            continue;
        }
        let w1 = total - w0;
        if w1 == 0 {
            break;
        }
        sum0 += t as f64 * h as f64;
        let m0 = sum0 / w0 as f64;
        let m1 = (sum_all - sum0) / w1 as f64;
        let between = w0 as f64 * w1 as f64 * (m0 - m1).powi(2);
        if between > best {
            best = between;
            best_t = t;
        }
    }
    // Upper edge of bin `best_t`, back in image units.
    lo + (best_t as f32 + 1.0) / scale - f32::EPSILON * hi.abs()
}

/// 8-connected components of the pixels of the inclusive box `r` for which `fg` holds.
fn components(
    img: &ImageView<'_>,
    r: (usize, usize, usize, usize),
    fg: impl Fn(f32) -> bool,
) -> Vec<Comp> {
    let (w, h) = (r.2 - r.0 + 1, r.3 - r.1 + 1);
    let mut mark = vec![0u8; w * h]; // 0 unknown, 1 background, 2 visited foreground
    for y in 0..h {
        for x in 0..w {
            if !fg(img.get(r.0 + x, r.1 + y)) {
                mark[y * w + x] = 1;
            }
        }
    }
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if mark[start] != 0 {
            continue;
        }
        mark[start] = 2;
        stack.push(start);
        let mut c = Comp {
            area: 0,
            sx: 0.0,
            sy: 0.0,
            sxx: 0.0,
            syy: 0.0,
            sxy: 0.0,
            bbox: (usize::MAX, usize::MAX, 0, 0),
            touches_edge: false,
        };
        while let Some(p) = stack.pop() {
            let (x, y) = (p % w, p / w);
            let (fx, fy) = (x as f64, y as f64);
            c.area += 1;
            c.sx += fx;
            c.sy += fy;
            c.sxx += fx * fx;
            c.syy += fy * fy;
            c.sxy += fx * fy;
            c.bbox = (
                c.bbox.0.min(x),
                c.bbox.1.min(y),
                c.bbox.2.max(x),
                c.bbox.3.max(y),
            );
            if x == 0 || y == 0 || x + 1 == w || y + 1 == h {
                c.touches_edge = true;
            }
            for dy in [-1i64, 0, 1] {
                for dx in [-1i64, 0, 1] {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                        continue;
                    }
                    let q = ny as usize * w + nx as usize;
                    if mark[q] == 0 {
                        mark[q] = 2;
                        stack.push(q);
                    }
                }
            }
        }
        c.bbox = (
            c.bbox.0 + r.0,
            c.bbox.1 + r.1,
            c.bbox.2 + r.0,
            c.bbox.3 + r.1,
        );
        out.push(c);
    }
    out
}

/// Video extensometry as a camera Block's processing (see [`VideoExtensoTool`]).
///
/// ```
/// use crabby_blocks::camera::{VideoExtenso, LostSpot};
/// let ve = VideoExtenso::new().num_spots(4).on_lost(LostSpot::StopTest);
/// ```
#[derive(Debug, Clone)]
pub struct VideoExtenso {
    config: VideoExtensoConfig,
    tool: Option<VideoExtensoTool>,
    labels: [Label; 5],
}

impl Default for VideoExtenso {
    fn default() -> Self {
        Self::new()
    }
}

impl VideoExtenso {
    /// Default parameters ([`VideoExtensoConfig::default`]).
    pub fn new() -> Self {
        VideoExtenso {
            config: VideoExtensoConfig::default(),
            tool: None,
            labels: ["t(s)", "Exx(%)", "Eyy(%)", "Coord(px)", "frame"].map(Label::new),
        }
    }
    /// All parameters at once.
    pub fn config(mut self, config: VideoExtensoConfig) -> Self {
        self.config = config;
        self
    }
    /// Spots to track (2..=4).
    pub fn num_spots(mut self, n: usize) -> Self {
        self.config.num_spots = Some(n);
        self
    }
    /// Light spots on a dark sample.
    pub fn white_spots(mut self, yes: bool) -> Self {
        self.config.white_spots = yes;
        self
    }
    /// Smallest spot area (px).
    pub fn min_area(mut self, px: usize) -> Self {
        self.config.min_area = px;
        self
    }
    /// Tracking margin (px).
    pub fn border(mut self, px: usize) -> Self {
        self.config.border = px;
        self
    }
    /// Detection region `(x, y, width, height)`.
    pub fn roi(mut self, x: usize, y: usize, w: usize, h: usize) -> Self {
        self.config.roi = Some((x, y, w, h));
        self
    }
    /// What a lost spot does.
    pub fn on_lost(mut self, on_lost: LostSpot) -> Self {
        self.config.on_lost = on_lost;
        self
    }
}

impl FrameProcessor for VideoExtenso {
    fn output_labels(&self) -> Vec<Label> {
        self.labels.to_vec()
    }

    fn check(&self) -> Result<()> {
        VideoExtensoTool::new(self.config.clone()).map(|_| ())
    }

    fn process(&mut self, info: &FrameInfo, img: &ImageView<'_>, t: f64) -> Result<Processed> {
        let tool = match &mut self.tool {
            Some(t) => t,
            None => self
                .tool
                .insert(VideoExtensoTool::new(self.config.clone())?),
        };
        match tool.track(img) {
            Ok(s) => {
                let coords: Vec<f64> = s.spots.iter().flat_map(|p| [p.x, p.y]).collect();
                let [l_t, l_exx, l_eyy, l_coord, l_frame] = &self.labels;
                Ok(Processed::Send(
                    Sample::with_capacity(5)
                        .with(l_t.clone(), t)
                        .with(l_exx.clone(), s.exx_pct)
                        .with(l_eyy.clone(), s.eyy_pct)
                        .with(l_coord.clone(), coords)
                        .with(l_frame.clone(), info.index),
                ))
            }
            Err(e) => {
                let e = Error::new(
                    e.kind(),
                    format!("{} (frame {}, t = {t:.3} s)", e.description(), info.index),
                );
                match self.config.on_lost {
                    LostSpot::Fail => Err(e),
                    LostSpot::StopTest => {
                        log::error!("{e}; stopping the test (on_lost = StopTest)");
                        Ok(Processed::Stop)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crabby::camera::PixelFormat;

    const W: usize = 200;

    /// A light 200×200 image with four dark discs of radius 6 in a cross around (100, 100).
    fn cross() -> Vec<u8> {
        let mut img = vec![200u8; W * W];
        for (cx, cy) in [(50, 100), (150, 100), (100, 50), (100, 150)] {
            for y in cy - 6..=cy + 6 {
                for x in cx - 6..=cx + 6 {
                    let (dx, dy) = (x as i64 - cx as i64, y as i64 - cy as i64);
                    if dx * dx + dy * dy <= 36 {
                        img[y * W + x] = 20;
                    }
                }
            }
        }
        img
    }

    fn dark_rect(
        img: &mut [u8],
        x: std::ops::RangeInclusive<usize>,
        y: std::ops::RangeInclusive<usize>,
    ) {
        for j in y {
            for i in x.clone() {
                img[j * W + i] = 20;
            }
        }
    }

    fn view(img: &[u8]) -> ImageView<'_> {
        ImageView::new(img, W, W, PixelFormat::Mono8).unwrap()
    }

    fn detected() -> VideoExtensoTool {
        let mut tool = VideoExtensoTool::new(VideoExtensoConfig::default()).unwrap();
        tool.detect(&view(&cross())).unwrap();
        assert_eq!(tool.spots().len(), 4);
        tool
    }

    fn left_spot(tool: &VideoExtensoTool) -> Spot {
        *tool
            .spots()
            .iter()
            .min_by(|a, b| a.x.total_cmp(&b.x))
            .unwrap()
    }

    #[test]
    fn a_dark_region_beside_a_spot_does_not_capture_it() {
        let mut tool = detected();
        let before = left_spot(&tool);
        // An L-shaped dark region (a grip's corner) entering the left spot's window, larger
        // than the spot there (165 px against 113) and, once the window grows, whole in it
        // (558 px): the spot is still tracked where it is.
        let mut img = cross();
        dark_rect(&mut img, 30..=38, 80..=115);
        dark_rect(&mut img, 30..=64, 80..=88);
        let s = tool.track(&view(&img)).unwrap();
        let after = left_spot(&tool);
        assert!(
            (after.x - before.x).abs() < 1e-9 && (after.y - before.y).abs() < 1e-9,
            "{before:?} -> {after:?}"
        );
        assert!(s.exx_pct.abs() < 1e-9 && s.eyy_pct.abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn a_spot_swallowed_by_a_dark_region_is_lost() {
        let mut tool = detected();
        let mut img = cross();
        dark_rect(&mut img, 30..=70, 85..=115);
        let e = tool.track(&view(&img)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Hardware);
        assert!(e.to_string().contains("lost"), "{e}");
        assert!(e.to_string().contains("dark region"), "{e}");
    }

    #[test]
    fn otsu_ignores_a_hot_pixel() {
        // 16-bit: half the pixels at 1000, half at 1100, and one hot pixel at 65535.
        let (w, h) = (50usize, 40usize);
        let mut data = Vec::with_capacity(w * h * 2);
        for i in 0..w * h {
            let v: u16 = if i == 7 {
                65535
            } else if i % 2 == 0 {
                1000
            } else {
                1100
            };
            data.extend_from_slice(&v.to_le_bytes());
        }
        let img = ImageView::new(&data, w, h, PixelFormat::Mono16).unwrap();
        let t = otsu_clipped(&img, (0, 0, w - 1, h - 1), true, true);
        assert!((1000.0..1100.0).contains(&t), "threshold {t}");
        let t = spot_threshold(&img, (0, 0, w - 1, h - 1), false);
        assert!((1000.0..1100.0).contains(&t), "dark spots: threshold {t}");
        // Mono8 with two levels: between them.
        let img8 = cross();
        let t = otsu_clipped(&view(&img8), (0, 0, W - 1, W - 1), true, true);
        assert!((20.0..200.0).contains(&t), "threshold {t}");
    }

    #[test]
    fn an_overflowing_roi_is_an_error() {
        let cfg = VideoExtensoConfig {
            roi: Some((usize::MAX, 0, 10, 10)),
            ..VideoExtensoConfig::default()
        };
        let mut tool = VideoExtensoTool::new(cfg).unwrap();
        let e = tool.detect(&view(&cross())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
    }
}
