//! The camera Block and its children: acquisition, recording, preview and image processing.
//!
//! The principal types:
//! - [`CameraBlock`]: opens a [`Camera`](crabby::camera::Camera) in its `prepare`, makes a
//!   [`FrameRing`](crabby::camera::FrameRing) and forks its child processes, each reading
//!   the ring in place: a recorder ([`CameraBlock::record`], images as [`ImageFormat`]
//!   TIFF / PNG / raw plus a `metadata.csv`), a preview ([`CameraBlock::display`], any
//!   [`PreviewSink`], e.g. [`PreviewFile`]) and an image processing
//!   ([`CameraBlock::process`], any [`FrameProcessor`], e.g. [`VideoExtenso`]) which sends its
//!   results on the camera Block's output links.
//! - [`VideoExtenso`] / [`VideoExtensoTool`]: video extensometry (marker spots → strain).
//! - [`ImageView`]: a frame's pixels as a processor sees them.
//!
//! ```no_run
//! use crabby::camera::Camera;
//! use crabby::Test;
//! use crabby_blocks::camera::{CameraBlock, ImageFormat, VideoExtenso};
//!
//! /// Any camera (for example `crabby_hardware::camera::StrainedSampleCamera`): record one
//! /// frame in ten as TIFF, and measure the strain from marker spots on every frame.
//! fn add_camera(test: &mut Test, cam: impl Camera) {
//!     test.add(
//!         CameraBlock::new(cam)
//!             .record("images", ImageFormat::Tiff)
//!             .save_period(10)
//!             .process(VideoExtenso::new()),
//!     );
//! }
//! ```

mod block;
mod display;
mod record;
mod video_extenso;

pub use block::CameraBlock;
pub use display::{downscale_mono8, PreviewFile, PreviewSink};
pub use record::{encode_png, encode_tiff, unique_folder, ImageFormat};
pub use video_extenso::{
    LostSpot, Spot, Strains, VideoExtenso, VideoExtensoConfig, VideoExtensoTool,
};

use crabby::camera::{FrameInfo, PixelFormat};
use crabby::{Error, Label, Result, Sample};

/// A frame's pixels, borrowed (in place in the frame ring, for the camera Block's children).
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    /// The bytes, rows top to bottom.
    pub data: &'a [u8],
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Pixel layout.
    pub pixel: PixelFormat,
}

impl<'a> ImageView<'a> {
    /// A view of `data`; an error if it is shorter than the size says.
    pub fn new(data: &'a [u8], width: usize, height: usize, pixel: PixelFormat) -> Result<Self> {
        let need = width
            .checked_mul(height)
            .and_then(|n| n.checked_mul(pixel.bytes_per_pixel()))
            .filter(|&n| n <= data.len() && width > 0 && height > 0)
            .ok_or_else(|| {
                Error::config(format!(
                    "image of {width}x{height} {pixel} does not fit its {} bytes",
                    data.len()
                ))
            })?;
        Ok(ImageView {
            data: &data[..need],
            width,
            height,
            pixel,
        })
    }

    /// The view of a frame described by `info`.
    pub fn of_frame(info: &FrameInfo, data: &'a [u8]) -> Result<Self> {
        let f = info.format;
        Self::new(data, f.width as usize, f.height as usize, f.pixel)
    }

    /// The grey level of pixel `(x, y)` (luma for colour: 0.299 R + 0.587 G + 0.114 B).
    #[inline]
    pub fn get(&self, x: usize, y: usize) -> f32 {
        let i = y * self.width + x;
        match self.pixel {
            PixelFormat::Mono8 => f32::from(self.data[i]),
            PixelFormat::Mono16 => {
                f32::from(u16::from_le_bytes([self.data[2 * i], self.data[2 * i + 1]]))
            }
            PixelFormat::Rgb8 => {
                let p = &self.data[3 * i..3 * i + 3];
                0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
            }
        }
    }
}

/// What a [`FrameProcessor`] asks for after a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Processed {
    /// Send this sample on the camera Block's output links.
    Send(Sample),
    /// Nothing to send for this frame.
    Nothing,
    /// Stop the test (normally); the processing ends.
    Stop,
}

/// Image processing run in the camera Block's processing child, on every frame (or the
/// latest, see [`CameraBlock::process_mode`]). Its results are sent on the camera Block's
/// output links, by the processing child only.
pub trait FrameProcessor: Send + 'static {
    /// The labels of the samples it sends.
    fn output_labels(&self) -> Vec<Label>;

    /// Checks its parameters (before anything is forked).
    fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Processes one frame; `t` is the frame's time in seconds since the test's start.
    fn process(&mut self, info: &FrameInfo, img: &ImageView<'_>, t: f64) -> Result<Processed>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_sizes_are_checked_without_overflow() {
        let data = [0u8; 12];
        assert!(ImageView::new(&data, 2, 2, PixelFormat::Rgb8).is_ok());
        assert!(ImageView::new(&data, 4, 4, PixelFormat::Mono8).is_err());
        assert!(ImageView::new(&data, 0, 4, PixelFormat::Mono8).is_err());
        // width·height overflows usize: an error, not a panic or a wrapped small size.
        let e = ImageView::new(&data, usize::MAX, 2, PixelFormat::Mono8).unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
        assert!(ImageView::new(&data, 1 << 62, 4, PixelFormat::Mono8).is_err());
    }
}
