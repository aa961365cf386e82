//! [`FileReader`]: a camera that replays a folder of images recorded by the camera Block
//! (`CameraBlock::record` in crabby-blocks), so image processing (VideoExtenso) can be run
//! again offline on a recorded test.
//!
//! ## What it reads
//!
//! The recorder's folder: one file per frame (`<index>_<t(s) to 1 ms>.<ext>`, with a
//! `_<n>` suffix on a rare clash) and a `metadata.csv` whose header is
//! `index,t(s),timestamp_ns,width,height,format,file`. The frames are replayed in the
//! order of `metadata.csv`, each at its recorded `timestamp_ns` spacing. Formats:
//! - `.tiff` / `.tif`: uncompressed TIFF, 8- or 16-bit grey or 8-bit RGB, any strip layout,
//!   either byte order (what the recorder writes, and what most tools write uncompressed);
//!   strips holding more bytes in all than twice the frame (width × height × bytes per
//!   pixel) plus 64 KiB are refused, so a crafted file cannot take much more memory than
//!   its frame (a padded last strip is read and cut to the frame);
//! - `.png`: 8- or 16-bit grey, 8-bit RGB;
//! - `.raw`: the frame's bytes, sized from `metadata.csv` (raw needs it).
//!
//! Without `metadata.csv` (a folder copied without it, or images named the same way by
//! another program), the TIFF and PNG files named `<index>_<t>…` are replayed in time
//! order (then index), their time taken from the name (millisecond resolution).
//!
//! ## Timing
//!
//! [`Pacing::RealTime`] delivers each frame when its recorded time comes (scaled by a
//! speed factor), as the camera did; [`Pacing::AsFastAsPossible`] delivers them as fast as
//! they are asked for. Either way a frame's timestamp is the replay's start plus its
//! recorded offset from the first frame (divided by the speed), so the `t(s)` of the
//! results is the recording's. With [`FileReader::looping`], the recording starts over
//! after its last frame (timestamps keep increasing); otherwise `grab` returns `Ok(None)`
//! after the last frame ([`FileReader::finished`]) and the test ends by its other stop
//! conditions.

use crabby::camera::{Camera, FrameFormat, FrameInfo, PixelFormat};
use crabby::{Error, ErrorKind, Result};
use std::path::{Path, PathBuf};

/// How fast [`FileReader`] delivers the frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// At their recorded times, sped up by `speed` (1 = as recorded).
    RealTime {
        /// Replay speed factor (> 0).
        speed: f64,
    },
    /// As fast as the camera Block asks (timestamps keep the recorded spacing).
    AsFastAsPossible,
}

/// An image file's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tiff,
    Png,
    Raw,
}

impl Kind {
    fn of(path: &Path) -> Option<Kind> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "tiff" | "tif" => Some(Kind::Tiff),
            "png" => Some(Kind::Png),
            "raw" => Some(Kind::Raw),
            _ => None,
        }
    }
}

/// One recorded frame.
#[derive(Debug, Clone)]
struct Entry {
    /// Recorded time, ns (from `metadata.csv`, or the name's `t` in ns).
    t_ns: u64,
    path: PathBuf,
    kind: Kind,
}

/// Replays a folder recorded by the camera Block (see the [module docs](self)).
///
/// ```no_run
/// use crabby_hardware::camera::{FileReader, Pacing};
/// // Replay yesterday's images at their recorded pace, once.
/// let cam = FileReader::new("results/images", Pacing::RealTime { speed: 1.0 })?;
/// # Ok::<(), crabby::Error>(())
/// ```
#[derive(Debug)]
pub struct FileReader {
    folder: PathBuf,
    pacing: Pacing,
    looping: bool,
    entries: Vec<Entry>,
    format: FrameFormat,
    pos: usize,
    delivered: u64,
    /// Replay time of recorded time `entries[0].t_ns`, set at the first grab.
    origin_ns: Option<u64>,
    /// Added to every recorded offset: the length of the laps already played.
    lap_offset_ns: u64,
    scratch: Vec<u8>,
    finished: bool,
}

fn cfg_err(folder: &Path, what: impl std::fmt::Display) -> Error {
    Error::config(format!("FileReader {}: {what}", folder.display())).with_origin("FileReader")
}

impl FileReader {
    /// Scans `folder` (its `metadata.csv`, else its image names) and reads the first
    /// frame's format. Every problem is reported here, in `main`, before anything forks:
    /// a missing folder, no frames, a malformed `metadata.csv` row, a listed file missing,
    /// an unsupported image, frames of different sizes.
    pub fn new(folder: impl Into<PathBuf>, pacing: Pacing) -> Result<Self> {
        let folder = folder.into();
        if let Pacing::RealTime { speed } = pacing {
            if !(speed > 0.0 && speed.is_finite()) {
                return Err(cfg_err(
                    &folder,
                    format!("replay speed {speed} must be above 0"),
                ));
            }
        }
        if !folder.is_dir() {
            return Err(cfg_err(
                &folder,
                "is not a folder; give the folder the camera Block recorded into",
            ));
        }
        let meta = folder.join("metadata.csv");
        let (entries, formats) = if meta.exists() {
            read_metadata(&folder, &meta)?
        } else {
            (scan_names(&folder)?, Vec::new())
        };
        if entries.is_empty() {
            return Err(cfg_err(
                &folder,
                "holds no frames (no metadata.csv rows, no <index>_<t>.tiff/.png files)",
            ));
        }
        // Every listed format the same, and the first image agrees with it.
        let format = match formats.first() {
            Some(f) => {
                if let Some((i, g)) = formats.iter().enumerate().find(|(_, g)| *g != f) {
                    return Err(cfg_err(
                        &folder,
                        format!(
                            "frames change format ({}x{} {} at row 1, {}x{} {} at row {}); a replay needs one format",
                            f.width, f.height, f.pixel, g.width, g.height, g.pixel, i + 1
                        ),
                    ));
                }
                *f
            }
            None => {
                let mut buf = Vec::new();
                decode(&entries[0], None, &mut buf)?
            }
        };
        if format.checked_bytes().is_none_or(|b| b == 0) {
            return Err(cfg_err(&folder, "the frames have no pixels"));
        }
        let first = &entries[0];
        let mut buf = Vec::new();
        let got = decode(first, Some(format), &mut buf)?;
        if got != format {
            return Err(cfg_err(
                &folder,
                format!(
                    "{} is {}x{} {}, metadata.csv says {}x{} {}",
                    first.path.display(),
                    got.width,
                    got.height,
                    got.pixel,
                    format.width,
                    format.height,
                    format.pixel
                ),
            ));
        }
        Ok(FileReader {
            folder,
            pacing,
            looping: false,
            entries,
            format,
            pos: 0,
            delivered: 0,
            origin_ns: None,
            lap_offset_ns: 0,
            scratch: buf,
            finished: false,
        })
    }

    /// Starts the recording over after its last frame.
    pub fn looping(mut self, on: bool) -> Self {
        self.looping = on;
        self
    }

    /// How many frames the folder holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the folder holds no frame (never: [`new`](FileReader::new) refuses it).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The recorded times of the frames, relative to the first, in seconds.
    pub fn recorded_offsets(&self) -> Vec<f64> {
        let t0 = self.entries[0].t_ns;
        self.entries
            .iter()
            .map(|e| e.t_ns.saturating_sub(t0) as f64 * 1e-9)
            .collect()
    }

    /// Whether the last frame was delivered (never when looping).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The replay time of entry `i` in the current lap (saturating: a metadata.csv with
    /// absurd timestamps must not overflow in the camera Block).
    fn due_ns(&self, origin: u64, i: usize) -> u64 {
        let off = self.entries[i]
            .t_ns
            .saturating_sub(self.entries[0].t_ns)
            .saturating_add(self.lap_offset_ns);
        let off = match self.pacing {
            Pacing::RealTime { speed } => (off as f64 / speed) as u64,
            Pacing::AsFastAsPossible => off,
        };
        origin.saturating_add(off)
    }

    /// Decodes entry `pos` into `buf` (exactly the format's bytes).
    fn load(&mut self, buf: &mut [u8]) -> Result<()> {
        let e = &self.entries[self.pos];
        let f = decode(e, Some(self.format), &mut self.scratch)?;
        if f != self.format {
            return Err(cfg_err(
                &self.folder,
                format!(
                    "{} is {}x{} {}, the replay's format is {}x{} {}",
                    e.path.display(),
                    f.width,
                    f.height,
                    f.pixel,
                    self.format.width,
                    self.format.height,
                    self.format.pixel
                ),
            ));
        }
        let n = self.format.bytes();
        buf[..n].copy_from_slice(&self.scratch[..n]);
        Ok(())
    }
}

impl Camera for FileReader {
    fn name(&self) -> &str {
        "FileReader"
    }

    fn open(&mut self) -> Result<()> {
        // The folder may have changed since `new` (in main): check the files are there.
        if let Some(e) = self.entries.iter().find(|e| !e.path.is_file()) {
            return Err(cfg_err(
                &self.folder,
                format!(
                    "{} disappeared since the replay was set up",
                    e.path.display()
                ),
            ));
        }
        Ok(())
    }

    fn format(&self) -> FrameFormat {
        self.format
    }

    fn grab(&mut self, buf: &mut [u8]) -> Result<Option<FrameInfo>> {
        if self.pos >= self.entries.len() {
            if !self.looping {
                if !self.finished {
                    log::info!(
                        "FileReader {}: the {} frames were replayed",
                        self.folder.display(),
                        self.entries.len()
                    );
                }
                self.finished = true;
                std::thread::sleep(std::time::Duration::from_millis(50));
                return Ok(None);
            }
            // Next lap: one mean frame period after the last frame.
            let n = self.entries.len() as u64;
            let span = self.entries[self.entries.len() - 1]
                .t_ns
                .saturating_sub(self.entries[0].t_ns);
            let period = if n > 1 { span / (n - 1) } else { 1_000_000 };
            self.lap_offset_ns = self
                .lap_offset_ns
                .saturating_add(span.saturating_add(period.max(1)));
            self.pos = 0;
        }
        let now = crabby::time::monotonic_ns();
        let origin = *self.origin_ns.get_or_insert(now);
        let due = self.due_ns(origin, self.pos);
        if matches!(self.pacing, Pacing::RealTime { .. }) && due > now {
            let wait = due - now;
            if wait > super::MAX_GRAB_WAIT_NS {
                std::thread::sleep(std::time::Duration::from_nanos(super::MAX_GRAB_WAIT_NS));
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_nanos(wait));
        }
        self.load(buf)?;
        let info = FrameInfo {
            index: self.delivered,
            timestamp_ns: due,
            format: self.format,
        };
        self.pos += 1;
        self.delivered += 1;
        Ok(Some(info))
    }
}

/// `metadata.csv`: the entries and each row's format.
fn read_metadata(folder: &Path, meta: &Path) -> Result<(Vec<Entry>, Vec<FrameFormat>)> {
    let text = std::fs::read_to_string(meta)
        .map_err(|e| Error::io(format!("cannot read {}", meta.display()), e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |name: &str| {
        header.iter().position(|h| h.trim() == name).ok_or_else(|| {
            cfg_err(
                folder,
                format!(
                    "metadata.csv has no '{name}' column (header {header:?}); expected index,t(s),timestamp_ns,width,height,format,file"
                ),
            )
        })
    };
    let (c_ts, c_w, c_h, c_fmt, c_file) = (
        col("timestamp_ns")?,
        col("width")?,
        col("height")?,
        col("format")?,
        col("file")?,
    );
    let mut entries = Vec::new();
    let mut formats = Vec::new();
    for (k, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row = k + 2;
        let f: Vec<&str> = line.split(',').collect();
        let bad = |what: &str| {
            cfg_err(
                folder,
                format!("metadata.csv line {row} ({line:?}): {what}"),
            )
        };
        let get = |c: usize| {
            f.get(c)
                .map(|s| s.trim())
                .ok_or_else(|| bad("too few fields"))
        };
        let t_ns: u64 = get(c_ts)?
            .parse()
            .map_err(|_| bad("timestamp_ns is not an integer"))?;
        let w: u32 = get(c_w)?
            .parse()
            .map_err(|_| bad("width is not an integer"))?;
        let h: u32 = get(c_h)?
            .parse()
            .map_err(|_| bad("height is not an integer"))?;
        let pixel = match get(c_fmt)? {
            "mono8" => PixelFormat::Mono8,
            "mono16" => PixelFormat::Mono16,
            "rgb8" => PixelFormat::Rgb8,
            other => {
                return Err(bad(&format!(
                    "unknown pixel format '{other}' (mono8, mono16, rgb8)"
                )))
            }
        };
        let name = get(c_file)?;
        let path = folder.join(name);
        let kind = Kind::of(&path).ok_or_else(|| bad("the file is not .tiff, .png or .raw"))?;
        if !path.is_file() {
            return Err(bad(&format!("{} does not exist", path.display())));
        }
        if let Some(prev) = entries.last().map(|e: &Entry| e.t_ns) {
            if t_ns < prev {
                return Err(bad("timestamp_ns goes backwards"));
            }
        }
        entries.push(Entry { t_ns, path, kind });
        formats.push(FrameFormat::new(w, h, pixel));
    }
    Ok((entries, formats))
}

/// No `metadata.csv`: the `<index>_<t>[_n].tiff|png` files, in time (then index) order.
fn scan_names(folder: &Path) -> Result<Vec<Entry>> {
    let rd = std::fs::read_dir(folder)
        .map_err(|e| Error::io(format!("cannot list {}", folder.display()), e))?;
    let mut found: Vec<(u64, u32, Entry)> = Vec::new();
    let mut raw = false;
    for d in rd {
        let path = d
            .map_err(|e| Error::io(format!("cannot list {}", folder.display()), e))?
            .path();
        let Some(kind) = Kind::of(&path) else {
            continue;
        };
        if kind == Kind::Raw {
            raw = true;
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let mut parts = stem.split('_');
        let (Some(i), Some(t)) = (parts.next(), parts.next()) else {
            continue;
        };
        let suffix: u32 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let (Ok(index), Ok(t)) = (i.parse::<u64>(), t.parse::<f64>()) else {
            continue;
        };
        if !(t.is_finite() && t >= 0.0) {
            continue;
        }
        let t_ns = (t * 1e9).round() as u64;
        found.push((index, suffix, Entry { t_ns, path, kind }));
    }
    if found.is_empty() && raw {
        return Err(cfg_err(
            folder,
            "holds .raw frames but no metadata.csv; raw frames need it for their size and format",
        ));
    }
    found.sort_by_key(|a| (a.2.t_ns, a.0, a.1));
    Ok(found.into_iter().map(|(_, _, e)| e).collect())
}

/// Decodes an image into `out` (the frame's bytes, rows top to bottom, 16-bit
/// little-endian). `expect` is required for raw files.
fn decode(e: &Entry, expect: Option<FrameFormat>, out: &mut Vec<u8>) -> Result<FrameFormat> {
    let bytes = std::fs::read(&e.path)
        .map_err(|err| Error::io(format!("cannot read image {}", e.path.display()), err))?;
    let bad = |what: String| {
        Error::new(
            ErrorKind::Configuration,
            format!("image {}: {what}", e.path.display()),
        )
        .with_origin("FileReader")
    };
    match e.kind {
        Kind::Raw => {
            let f = expect.ok_or_else(|| bad("a raw frame needs metadata.csv".into()))?;
            if bytes.len() != f.bytes() {
                return Err(bad(format!(
                    "{} bytes, a {}x{} {} frame has {}",
                    bytes.len(),
                    f.width,
                    f.height,
                    f.pixel,
                    f.bytes()
                )));
            }
            out.clear();
            out.extend_from_slice(&bytes);
            Ok(f)
        }
        Kind::Tiff => decode_tiff(&bytes, out).map_err(bad),
        Kind::Png => decode_png(&bytes, out).map_err(bad),
    }
}

/// An uncompressed TIFF (first image): 8/16-bit grey or 8-bit RGB, chunky, any strips.
pub(crate) fn decode_tiff(b: &[u8], out: &mut Vec<u8>) -> std::result::Result<FrameFormat, String> {
    let le = match b.get(..4) {
        Some(b"II*\0") => true,
        Some(b"MM\0*") => false,
        _ => return Err("not a TIFF file (bad signature)".into()),
    };
    let u16_at = |o: usize| -> std::result::Result<u32, String> {
        let s: [u8; 2] = b
            .get(o..o + 2)
            .and_then(|s| s.try_into().ok())
            .ok_or("truncated TIFF")?;
        Ok(u32::from(if le {
            u16::from_le_bytes(s)
        } else {
            u16::from_be_bytes(s)
        }))
    };
    let u32_at = |o: usize| -> std::result::Result<u32, String> {
        let s: [u8; 4] = b
            .get(o..o + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or("truncated TIFF")?;
        Ok(if le {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    };
    let ifd = u32_at(4)? as usize;
    let n = u16_at(ifd)? as usize;
    // Tag → (type, count, value-or-offset field position).
    let mut tags = std::collections::BTreeMap::new();
    for k in 0..n {
        let o = ifd + 2 + 12 * k;
        tags.insert(u16_at(o)?, (u16_at(o + 2)?, u32_at(o + 4)? as usize, o + 8));
    }
    // The values of a tag (SHORT or LONG, inline or at an offset).
    let values = |tag: u32| -> std::result::Result<Vec<u32>, String> {
        let Some(&(typ, count, field)) = tags.get(&tag) else {
            return Ok(Vec::new());
        };
        let size = match typ {
            3 => 2,
            4 => 4,
            _ => return Err(format!("TIFF tag {tag} has unsupported type {typ}")),
        };
        let at = if size * count <= 4 {
            field
        } else {
            u32_at(field)? as usize
        };
        (0..count)
            .map(|i| {
                if size == 2 {
                    u16_at(at + 2 * i)
                } else {
                    u32_at(at + 4 * i)
                }
            })
            .collect()
    };
    let one = |tag: u32, default: Option<u32>| -> std::result::Result<u32, String> {
        match values(tag)?.first() {
            Some(&v) => Ok(v),
            None => default.ok_or(format!("TIFF tag {tag} is missing")),
        }
    };
    let width = one(256, None)?;
    let height = one(257, None)?;
    let compression = one(259, Some(1))?;
    if compression != 1 {
        return Err(format!(
            "compressed TIFF (compression {compression}) is not supported; record as uncompressed TIFF (the camera Block's default), PNG or raw"
        ));
    }
    let spp = one(277, Some(1))?;
    let bits = values(258)?;
    let bits = bits.first().copied().unwrap_or(1);
    let planar = one(284, Some(1))?;
    let pixel = match (spp, bits) {
        (1, 8) => PixelFormat::Mono8,
        (1, 16) => PixelFormat::Mono16,
        (3, 8) if planar == 1 => PixelFormat::Rgb8,
        _ => {
            return Err(format!(
                "{spp} samples of {bits} bits per pixel (planar {planar}) is not supported (8/16-bit grey, 8-bit RGB)"
            ))
        }
    };
    let format = FrameFormat::new(width, height, pixel);
    let need = format
        .checked_bytes()
        .ok_or_else(|| format!("a {width}x{height} frame is too large"))?;
    let offsets = values(273)?;
    let counts = values(279)?;
    if offsets.is_empty() || offsets.len() != counts.len() {
        return Err("TIFF strips are missing or inconsistent".into());
    }
    // Bounded before anything is gathered: strips pointing at the same bytes again and
    // again would otherwise make a small crafted file take any amount of memory. Writers
    // may pad the last strip to whole RowsPerStrip (or a little more): up to twice the
    // frame plus 64 KiB is read, then cut to the frame.
    let total = counts
        .iter()
        .fold(0u64, |t, &c| t.saturating_add(u64::from(c)));
    if total > (need as u64).saturating_mul(2).saturating_add(65_536) {
        return Err(format!(
            "TIFF strips hold {total} bytes, far more than the {need} bytes of a {width}x{height} {pixel} frame (a corrupt or crafted file); refused"
        ));
    }
    out.clear();
    out.reserve(need);
    for (&o, &c) in offsets.iter().zip(&counts) {
        let s = b
            .get(o as usize..o as usize + c as usize)
            .ok_or("TIFF strip beyond the end of the file (truncated?)")?;
        out.extend_from_slice(s);
    }
    if out.len() < need {
        return Err(format!(
            "TIFF holds {} pixel bytes, a {width}x{height} {pixel} frame needs {need}",
            out.len()
        ));
    }
    out.truncate(need);
    if pixel == PixelFormat::Mono16 && !le {
        for p in out.chunks_exact_mut(2) {
            p.swap(0, 1);
        }
    }
    Ok(format)
}

/// A PNG: 8/16-bit grey or 8-bit RGB (16-bit samples turned little-endian).
pub(crate) fn decode_png(b: &[u8], out: &mut Vec<u8>) -> std::result::Result<FrameFormat, String> {
    let dec = png::Decoder::new(std::io::Cursor::new(b));
    let mut r = dec
        .read_info()
        .map_err(|e| format!("not a readable PNG: {e}"))?;
    out.clear();
    out.resize(r.output_buffer_size(), 0);
    let info = r
        .next_frame(out)
        .map_err(|e| format!("PNG decoding failed: {e}"))?;
    let pixel = match (info.color_type, info.bit_depth) {
        (png::ColorType::Grayscale, png::BitDepth::Eight) => PixelFormat::Mono8,
        (png::ColorType::Grayscale, png::BitDepth::Sixteen) => PixelFormat::Mono16,
        (png::ColorType::Rgb, png::BitDepth::Eight) => PixelFormat::Rgb8,
        (c, d) => {
            return Err(format!(
                "PNG of {c:?} {d:?} is not supported (8/16-bit grey, 8-bit RGB)"
            ))
        }
    };
    let format = FrameFormat::new(info.width, info.height, pixel);
    out.truncate(format.bytes());
    if pixel == PixelFormat::Mono16 {
        for p in out.chunks_exact_mut(2) {
            p.swap(0, 1);
        }
    }
    Ok(format)
}

#[cfg(test)]
mod tests;
