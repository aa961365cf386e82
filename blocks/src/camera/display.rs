//! The camera Block's preview: a [`PreviewSink`] gets the latest frame a few times per
//! second. [`PreviewFile`] writes it as a small PGM/PPM file (a web view can plug in later
//! as another sink).

use super::ImageView;
use crabby::camera::{FrameInfo, PixelFormat};
use crabby::{Error, Result};
use std::io::Write;
use std::path::PathBuf;

/// Where the preview goes. Runs in the camera Block's display child.
pub trait PreviewSink: Send + 'static {
    /// Shows one frame.
    fn show(&mut self, info: &FrameInfo, img: &ImageView<'_>) -> Result<()>;
}

/// Writes the preview to a file, replaced atomically (write to `<path>.tmp`, rename): an
/// 8-bit PGM (colour frames as their luma), downscaled by an integer factor to fit
/// `max_width × max_height` (640×480 by default), 16-bit frames scaled to their maximum.
#[derive(Debug, Clone)]
pub struct PreviewFile {
    path: PathBuf,
    max: (usize, usize),
    buf: Vec<u8>,
}

impl PreviewFile {
    /// A preview written to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PreviewFile {
            path: path.into(),
            max: (640, 480),
            buf: Vec::new(),
        }
    }

    /// Largest preview size.
    pub fn max_size(mut self, width: usize, height: usize) -> Self {
        self.max = (width.max(1), height.max(1));
        self
    }
}

/// Downscales `img` by the smallest integer factor that fits `max_w × max_h` (mean of each
/// block), to 8-bit grey (16-bit scaled to its maximum). Returns (width, height), never 0
/// for a non-empty image (a side shorter than the factor gives one clipped block); a
/// `max_w` or `max_h` of 0 counts as 1.
pub fn downscale_mono8(
    img: &ImageView<'_>,
    max_w: usize,
    max_h: usize,
    out: &mut Vec<u8>,
) -> (usize, usize) {
    let k = img
        .width
        .div_ceil(max_w.max(1))
        .max(img.height.div_ceil(max_h.max(1)))
        .max(1);
    if img.width == 0 || img.height == 0 {
        out.clear();
        return (0, 0);
    }
    let (w, h) = ((img.width / k).max(1), (img.height / k).max(1));
    out.clear();
    out.reserve(w * h);
    let scale = if img.pixel == PixelFormat::Mono16 {
        // Use the full 16-bit range present: shift so that the maximum fits 8 bits.
        let mut max = 0.0f32;
        for y in (0..img.height).step_by(k) {
            for x in (0..img.width).step_by(k) {
                max = max.max(img.get(x, y));
            }
        }
        if max > 255.0 {
            255.0 / max
        } else {
            1.0
        }
    } else {
        1.0
    };
    for by in 0..h {
        for bx in 0..w {
            let (mut s, mut n) = (0.0, 0usize);
            for y in by * k..((by + 1) * k).min(img.height) {
                for x in bx * k..((bx + 1) * k).min(img.width) {
                    s += img.get(x, y);
                    n += 1;
                }
            }
            out.push((s / n as f32 * scale).round().clamp(0.0, 255.0) as u8);
        }
    }
    (w, h)
}

impl PreviewSink for PreviewFile {
    fn show(&mut self, info: &FrameInfo, img: &ImageView<'_>) -> Result<()> {
        let (w, h) = downscale_mono8(img, self.max.0, self.max.1, &mut self.buf);
        // `<full name>.tmp`: never a user's `<stem>.tmp`, and distinct for a.pgm and a.ppm.
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let io = |e| Error::io(format!("cannot write preview {}", self.path.display()), e);
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        // The frame's index and time as a PGM comment: a web view shows them.
        write!(
            f,
            "P5\n# frame {} timestamp_ns {}\n{w} {h}\n255\n",
            info.index, info.timestamp_ns
        )
        .map_err(io)?;
        f.write_all(&self.buf).map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downscale_fits_and_averages() {
        let data: Vec<u8> = (0..(1300 * 10))
            .map(|i| if i % 2 == 0 { 0 } else { 200 })
            .collect();
        let img = ImageView::new(&data, 1300, 10, PixelFormat::Mono8).unwrap();
        let mut out = Vec::new();
        let (w, h) = downscale_mono8(&img, 640, 480, &mut out);
        assert_eq!((w, h), (433, 3));
        assert_eq!(out.len(), w * h);
        // Columns alternate 0/200; a 3x3 block holds 2 or 1 bright columns out of 3.
        assert_eq!(out[0], 67);
        assert_eq!(out[1], 133);
        assert!(out.iter().all(|&v| v == 67 || v == 133));
        // A thin image: the short side gives one clipped block, not an empty preview.
        let thin = vec![100u8; 2 * 2000];
        let img = ImageView::new(&thin, 2, 2000, PixelFormat::Mono8).unwrap();
        let (w, h) = downscale_mono8(&img, 640, 480, &mut out);
        assert_eq!((w, h), (1, 400));
        assert!(out.iter().all(|&v| v == 100));
        // max 0 counts as 1 (no division by zero).
        assert_eq!(downscale_mono8(&img, 0, 0, &mut out), (1, 1));
    }

    #[test]
    fn preview_file_is_a_pgm() {
        let dir = std::env::temp_dir().join(format!("crabby-preview-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut p = PreviewFile::new(dir.join("preview.pgm"));
        let data = vec![9u8; 8 * 4];
        let img = ImageView::new(&data, 8, 4, PixelFormat::Mono8).unwrap();
        let info = FrameInfo::now(
            0,
            crabby::camera::FrameFormat::new(8, 4, PixelFormat::Mono8),
        );
        // A user's file named like the old temporary (`<stem>.tmp`) is left alone.
        std::fs::write(dir.join("preview.tmp"), b"mine").unwrap();
        p.show(&info, &img).unwrap();
        assert_eq!(std::fs::read(dir.join("preview.tmp")).unwrap(), b"mine");
        assert!(!dir.join("preview.pgm.tmp").exists());
        let f = std::fs::read(dir.join("preview.pgm")).unwrap();
        let head = format!(
            "P5\n# frame 0 timestamp_ns {}\n8 4\n255\n",
            info.timestamp_ns
        );
        assert!(f.starts_with(head.as_bytes()));
        assert_eq!(f.len(), head.len() + 32);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
