//! Image files of the camera Block's recorder: uncompressed TIFF (written here, fast), PNG
//! (fast compression) and raw bytes, plus the never-overwrite folder rule.

use crabby::camera::{FrameInfo, PixelFormat};
use crabby::{Error, ErrorKind, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How the recorder saves frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormat {
    /// Uncompressed baseline TIFF (little-endian, one strip): the fastest readable format.
    #[default]
    Tiff,
    /// PNG with fast compression (about 30 times slower than TIFF at 2048×2048).
    Png,
    /// The frame's bytes as they are (`.raw`); size and format are in `metadata.csv`.
    Raw,
}

impl ImageFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Tiff => "tiff",
            ImageFormat::Png => "png",
            ImageFormat::Raw => "raw",
        }
    }
}

/// `path` if it does not exist yet, else the first of `path_00001`, `path_00002`, ... that
/// does not: a recording never overwrites another. The folder is created.
pub fn unique_folder(path: &Path) -> Result<PathBuf> {
    let mut candidate = path.to_path_buf();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut n = 0u32;
    loop {
        if let Some(parent) = candidate.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::io(
                    format!("cannot create image folder {}", parent.display()),
                    e,
                )
            })?;
        }
        match std::fs::create_dir(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 99_999 => {
                n += 1;
                candidate = path.with_file_name(format!("{name}_{n:05}"));
            }
            Err(e) => {
                return Err(Error::io(
                    format!("cannot create image folder {}", candidate.display()),
                    e,
                ))
            }
        }
    }
}

/// The header of an uncompressed TIFF for a frame (the pixels follow it as they are).
/// A frame of 4 GiB or more does not fit a classic TIFF: `OutOfRange` error.
pub fn encode_tiff(width: u32, height: u32, pixel: PixelFormat, out: &mut Vec<u8>) -> Result<()> {
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    let (bits, spp, photometric) = match pixel {
        PixelFormat::Mono8 => (8u16, 1u16, 1u16),
        PixelFormat::Mono16 => (16, 1, 1),
        PixelFormat::Rgb8 => (8, 3, 2),
    };
    let n_entries = 10u16;
    let ifd_len = 2 + 12 * n_entries as usize + 4;
    let extra_off = 8 + ifd_len; // BitsPerSample array for RGB (3 shorts, padded to 8)
    let data_off = (extra_off + 8) as u32;
    let bytes = u32::try_from(
        u64::from(width) * u64::from(height) * pixel.bytes_per_pixel() as u64 + u64::from(data_off),
    )
    .map(|_| width * height * pixel.bytes_per_pixel() as u32)
    .map_err(|_| {
        Error::new(
            ErrorKind::OutOfRange,
            format!("a {width}x{height} {pixel} frame is too large for a TIFF file (4 GiB); record as raw"),
        )
    })?;
    out.clear();
    out.extend_from_slice(b"II*\0");
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&n_entries.to_le_bytes());
    let mut entry = |tag: u16, typ: u16, count: u32, value: u32| {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&typ.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        if typ == SHORT && count == 1 {
            out.extend_from_slice(&(value as u16).to_le_bytes());
            out.extend_from_slice(&[0, 0]);
        } else {
            out.extend_from_slice(&value.to_le_bytes());
        }
    };
    entry(256, LONG, 1, width); // ImageWidth
    entry(257, LONG, 1, height); // ImageLength
    if spp == 1 {
        entry(258, SHORT, 1, u32::from(bits)); // BitsPerSample
    } else {
        entry(258, SHORT, 3, extra_off as u32);
    }
    entry(259, SHORT, 1, 1); // Compression: none
    entry(262, SHORT, 1, u32::from(photometric)); // BlackIsZero or RGB
    entry(273, LONG, 1, data_off); // StripOffsets
    entry(277, SHORT, 1, u32::from(spp)); // SamplesPerPixel
    entry(278, LONG, 1, height); // RowsPerStrip
    entry(279, LONG, 1, bytes); // StripByteCounts
    entry(284, SHORT, 1, 1); // PlanarConfiguration: chunky
    out.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    for _ in 0..3 {
        out.extend_from_slice(&bits.to_le_bytes());
    }
    out.extend_from_slice(&[0, 0]);
    debug_assert_eq!(out.len(), data_off as usize);
    Ok(())
}

/// Encodes a frame as PNG (fast compression) into `out`.
pub fn encode_png(info: &FrameInfo, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    let f = info.format;
    let mut enc = png::Encoder::new(&mut *out, f.width, f.height);
    let (color, depth) = match f.pixel {
        PixelFormat::Mono8 => (png::ColorType::Grayscale, png::BitDepth::Eight),
        PixelFormat::Mono16 => (png::ColorType::Grayscale, png::BitDepth::Sixteen),
        PixelFormat::Rgb8 => (png::ColorType::Rgb, png::BitDepth::Eight),
    };
    enc.set_color(color);
    enc.set_depth(depth);
    enc.set_compression(png::Compression::Fast);
    let err = |e: png::EncodingError| {
        Error::new(crabby::ErrorKind::Io, format!("PNG encoding failed: {e}"))
    };
    let mut w = enc.write_header().map_err(err)?;
    let n = f.bytes();
    if f.pixel == PixelFormat::Mono16 {
        // PNG stores 16-bit samples big-endian.
        let be: Vec<u8> = data[..n]
            .chunks_exact(2)
            .flat_map(|p| [p[1], p[0]])
            .collect();
        w.write_image_data(&be).map_err(err)?;
    } else {
        w.write_image_data(&data[..n]).map_err(err)?;
    }
    w.finish().map_err(err)?;
    Ok(())
}

/// Saves frames to a folder, one file per frame plus one `metadata.csv` row.
#[derive(Debug)]
pub(crate) struct ImageSaver {
    folder: PathBuf,
    format: ImageFormat,
    csv: std::io::BufWriter<std::fs::File>,
    scratch: Vec<u8>,
    pub saved: u64,
    last_flush: std::time::Instant,
}

impl ImageSaver {
    /// A saver into `folder` (already created and empty).
    pub fn new(folder: PathBuf, format: ImageFormat) -> Result<Self> {
        let path = folder.join("metadata.csv");
        let file = std::fs::File::create(&path)
            .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
        let mut csv = std::io::BufWriter::new(file);
        writeln!(csv, "index,t(s),timestamp_ns,width,height,format,file")
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        Ok(ImageSaver {
            folder,
            format,
            csv,
            scratch: Vec::new(),
            saved: 0,
            last_flush: std::time::Instant::now(),
        })
    }

    /// Saves one frame; `t` is its time since the test's start.
    pub fn save(&mut self, info: &FrameInfo, data: &[u8], t: f64) -> Result<()> {
        let ext = self.format.extension();
        let mut name = format!("{:06}_{t:.3}.{ext}", info.index);
        // Never overwrite an image: a repeated index with the same rounded time (a camera
        // whose counter restarted) gets a suffix.
        let mut suffix = 0u32;
        let mut file = loop {
            let path = self.folder.join(&name);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => break f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && suffix < 9999 => {
                    suffix += 1;
                    name = format!("{:06}_{t:.3}_{suffix}.{ext}", info.index);
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("cannot write image {}", path.display()),
                        e,
                    ))
                }
            }
        };
        let path = self.folder.join(&name);
        let io = |e| Error::io(format!("cannot write image {}", path.display()), e);
        let n = info.format.bytes();
        match self.format {
            ImageFormat::Tiff => {
                let f = info.format;
                encode_tiff(f.width, f.height, f.pixel, &mut self.scratch)?;
                file.write_all(&self.scratch).map_err(io)?;
                file.write_all(&data[..n]).map_err(io)?;
            }
            ImageFormat::Raw => file.write_all(&data[..n]).map_err(io)?,
            ImageFormat::Png => {
                encode_png(info, data, &mut self.scratch)?;
                file.write_all(&self.scratch).map_err(io)?;
            }
        }
        let f = info.format;
        writeln!(
            self.csv,
            "{},{t},{},{},{},{},{name}",
            info.index, info.timestamp_ns, f.width, f.height, f.pixel
        )
        .map_err(|e| Error::io("cannot write metadata.csv", e))?;
        self.saved += 1;
        // Flushed per row: a recorder stopped by a signal leaves a metadata.csv that lists
        // every image written.
        self.flush()
    }

    pub fn flush(&mut self) -> Result<()> {
        self.last_flush = std::time::Instant::now();
        self.csv
            .flush()
            .map_err(|e| Error::io("cannot write metadata.csv", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crabby::camera::FrameFormat;

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("crabby-rec-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn folders_are_never_reused() {
        let base = tmp("folders");
        let a = unique_folder(&base.join("imgs")).unwrap();
        let b = unique_folder(&base.join("imgs")).unwrap();
        let c = unique_folder(&base.join("imgs")).unwrap();
        assert_eq!(a, base.join("imgs"));
        assert_eq!(b, base.join("imgs_00001"));
        assert_eq!(c, base.join("imgs_00002"));
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// Reads back the fields a TIFF reader needs, from our header.
    fn tiff_field(h: &[u8], tag: u16) -> u32 {
        let n = u16::from_le_bytes([h[8], h[9]]) as usize;
        for e in 0..n {
            let o = 10 + 12 * e;
            if u16::from_le_bytes([h[o], h[o + 1]]) == tag {
                let typ = u16::from_le_bytes([h[o + 2], h[o + 3]]);
                return if typ == 3 {
                    u32::from(u16::from_le_bytes([h[o + 8], h[o + 9]]))
                } else {
                    u32::from_le_bytes([h[o + 8], h[o + 9], h[o + 10], h[o + 11]])
                };
            }
        }
        panic!("tag {tag} missing")
    }

    #[test]
    fn tiff_header_describes_the_pixels() {
        let mut h = Vec::new();
        encode_tiff(640, 480, PixelFormat::Mono16, &mut h).unwrap();
        assert_eq!(&h[..4], b"II*\0");
        assert_eq!(tiff_field(&h, 256), 640);
        assert_eq!(tiff_field(&h, 257), 480);
        assert_eq!(tiff_field(&h, 258), 16);
        assert_eq!(tiff_field(&h, 259), 1);
        assert_eq!(tiff_field(&h, 273) as usize, h.len());
        assert_eq!(tiff_field(&h, 279), 640 * 480 * 2);
        encode_tiff(10, 10, PixelFormat::Rgb8, &mut h).unwrap();
        let e = encode_tiff(65536, 65536, PixelFormat::Mono8, &mut h).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfRange);
        assert_eq!(tiff_field(&h, 277), 3);
        assert_eq!(tiff_field(&h, 262), 2);
        let off = tiff_field(&h, 258) as usize;
        assert_eq!(&h[off..off + 6], &[8, 0, 8, 0, 8, 0]);
        // Tags in ascending order, as TIFF requires.
        let tags: Vec<u16> = (0..10)
            .map(|e| u16::from_le_bytes([h[10 + 12 * e], h[11 + 12 * e]]))
            .collect();
        assert!(tags.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn png_round_trip() {
        let info = FrameInfo {
            index: 3,
            timestamp_ns: 0,
            format: FrameFormat::new(5, 4, PixelFormat::Mono16),
        };
        let data: Vec<u8> = (0..40u8).collect();
        let mut out = Vec::new();
        encode_png(&info, &data, &mut out).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(out));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let i = r.next_frame(&mut buf).unwrap();
        assert_eq!(
            (i.width, i.height, i.bit_depth),
            (5, 4, png::BitDepth::Sixteen)
        );
        assert_eq!(&buf[..2], &[1, 0]); // big-endian of little-endian [0, 1]
    }

    #[test]
    fn saver_writes_files_and_metadata() {
        let dir = unique_folder(&tmp("saver")).unwrap();
        let mut s = ImageSaver::new(dir.clone(), ImageFormat::Tiff).unwrap();
        let info = FrameInfo {
            index: 12,
            timestamp_ns: 99,
            format: FrameFormat::new(4, 2, PixelFormat::Mono8),
        };
        s.save(&info, &[7u8; 8], 3.5174).unwrap();
        s.flush().unwrap();
        let f = std::fs::read(dir.join("000012_3.517.tiff")).unwrap();
        assert_eq!(&f[f.len() - 8..], &[7u8; 8]);
        let csv = std::fs::read_to_string(dir.join("metadata.csv")).unwrap();
        assert_eq!(
            csv.lines().nth(1),
            Some("12,3.5174,99,4,2,mono8,000012_3.517.tiff")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
