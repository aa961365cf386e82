//! Pure helpers of camera drivers, compiled and tested without a device: pixel format
//! conversion ([`convert_frame`], [`SourceFormat`]) and the mapping of V4L2 controls to
//! camera settings ([`ControlDesc`], [`control_setting`], [`control_value`]).

use crabby::camera::{PixelFormat, SettingInfo, SettingKind, SettingValue};
use crabby::{Error, ErrorKind, Result};

/// Pixel layouts a driver may deliver (V4L2 four-character codes in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// 8-bit grey (`GREY`).
    Grey,
    /// 16-bit grey, little-endian (`Y16 `).
    Y16,
    /// Packed 4:2:2 Y0 U Y1 V (`YUYV`), BT.601 limited range (as UVC cameras send it).
    Yuyv,
    /// 8-bit R, G, B (`RGB3`).
    Rgb24,
    /// 8-bit B, G, R (`BGR3`).
    Bgr24,
}

impl SourceFormat {
    /// From a V4L2 four-character code.
    pub fn from_fourcc(code: &[u8; 4]) -> Option<Self> {
        match code {
            b"GREY" => Some(SourceFormat::Grey),
            b"Y16 " => Some(SourceFormat::Y16),
            b"YUYV" => Some(SourceFormat::Yuyv),
            b"RGB3" => Some(SourceFormat::Rgb24),
            b"BGR3" => Some(SourceFormat::Bgr24),
            _ => None,
        }
    }

    /// Bytes per pixel of the source.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            SourceFormat::Grey => 1,
            SourceFormat::Y16 | SourceFormat::Yuyv => 2,
            SourceFormat::Rgb24 | SourceFormat::Bgr24 => 3,
        }
    }

    /// The frame format delivered without losing information (grey stays grey, colour
    /// becomes RGB8).
    pub fn natural_output(self) -> PixelFormat {
        match self {
            SourceFormat::Grey => PixelFormat::Mono8,
            SourceFormat::Y16 => PixelFormat::Mono16,
            SourceFormat::Yuyv | SourceFormat::Rgb24 | SourceFormat::Bgr24 => PixelFormat::Rgb8,
        }
    }
}

fn clamp_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// BT.601 (full range, as webcams send) YUV to RGB.
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    // BT.601 limited range (Y 16..=235, U and V 16..=240): what UVC cameras send as YUYV.
    let y = 1.164_383 * (f32::from(y) - 16.0);
    let (u, v) = (f32::from(u) - 128.0, f32::from(v) - 128.0);
    [
        clamp_u8(y + 1.596_027 * v),
        clamp_u8(y - 0.391_762 * u - 0.812_968 * v),
        clamp_u8(y + 2.017_232 * u),
    ]
}

/// A limited-range luma (16..=235) stretched to 0..=255.
fn full_range_luma(y: u8) -> u8 {
    clamp_u8(1.164_383 * (f32::from(y) - 16.0))
}

fn luma(r: u8, g: u8, b: u8) -> u8 {
    clamp_u8(0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b))
}

/// Whether [`convert_frame`] converts `from` to `out`.
pub fn can_convert(from: SourceFormat, out: PixelFormat) -> bool {
    out == from.natural_output()
        || out == PixelFormat::Mono8
        || (from == SourceFormat::Grey && out == PixelFormat::Rgb8)
}

/// Bytes a source buffer must hold for a `width × height` frame with rows `stride` bytes
/// apart (the last row needs only its pixels); `None` on overflow or an empty frame.
pub fn bytes_needed(
    from: SourceFormat,
    stride: usize,
    width: usize,
    height: usize,
) -> Option<usize> {
    let row_in = width.checked_mul(from.bytes_per_pixel())?;
    let stride = if stride == 0 { row_in } else { stride };
    stride
        .checked_mul(height.checked_sub(1)?)?
        .checked_add(row_in)
}

/// V4L2 buffer flags (`V4L2_BUF_FLAG_*`, from the kernel's ABI) read by [`check_buffer`] and
/// [`buffer_timestamp_ns`].
pub mod buf_flags {
    /// The driver says the buffer's data may be corrupt (e.g. a USB packet lost).
    pub const ERROR: u32 = 0x0000_0040;
    /// Mask of the timestamp's clock.
    pub const TIMESTAMP_MASK: u32 = 0x0000_e000;
    /// The timestamp is `CLOCK_MONOTONIC`.
    pub const TIMESTAMP_MONOTONIC: u32 = 0x0000_2000;
}

/// Checks a dequeued V4L2 buffer: the number of its bytes holding the frame, or why it must
/// be dropped (the driver flagged an error, or it holds fewer bytes than the frame needs: a
/// torn frame).
pub fn check_buffer(
    flags: u32,
    bytesused: u32,
    mapped: usize,
    from: SourceFormat,
    stride: usize,
    width: usize,
    height: usize,
) -> std::result::Result<usize, String> {
    if flags & buf_flags::ERROR != 0 {
        return Err("the driver flagged the buffer as corrupt (V4L2_BUF_FLAG_ERROR)".into());
    }
    // Some drivers leave bytesused at 0 for fixed-size formats: the whole buffer is used.
    let used = if bytesused == 0 {
        mapped
    } else {
        (bytesused as usize).min(mapped)
    };
    let needed = bytes_needed(from, stride, width, height)
        .ok_or_else(|| format!("frame {width}x{height} (stride {stride}) is too large"))?;
    if used < needed {
        return Err(format!(
            "{used} bytes in the buffer, the frame needs {needed} (torn frame)"
        ));
    }
    Ok(used)
}

/// A buffer's timestamp on `CLOCK_MONOTONIC` (the clock of [`crabby::time::monotonic_ns`]):
/// the driver's when its flags say it is monotonic and it is set, else `now_ns` (the time
/// of dequeue).
pub fn buffer_timestamp_ns(flags: u32, sec: i64, usec: i64, now_ns: u64) -> u64 {
    if flags & buf_flags::TIMESTAMP_MASK != buf_flags::TIMESTAMP_MONOTONIC {
        return now_ns;
    }
    match (u64::try_from(sec), u64::try_from(usec)) {
        (Ok(s), Ok(u)) if s > 0 || u > 0 => s
            .checked_mul(1_000_000_000)
            .and_then(|ns| ns.checked_add(u.checked_mul(1000)?))
            .unwrap_or(now_ns),
        _ => now_ns,
    }
}

/// Frame numbers from the driver's 32-bit `sequence` counter, widened to 64 bits, with the
/// frames the driver dropped (gaps in the sequence) counted.
#[derive(Debug, Clone, Default)]
pub struct Sequence {
    last: Option<u64>,
    /// Frames the driver dropped so far (gaps in the sequence).
    pub dropped: u64,
}

impl Sequence {
    /// The frame index of a buffer with driver sequence `seq`, and how many frames were
    /// dropped just before it.
    pub fn next(&mut self, seq: u32) -> (u64, u64) {
        let index = match self.last {
            None => u64::from(seq),
            Some(last) => {
                let high = last & !0xffff_ffff;
                let mut i = high | u64::from(seq);
                if i <= last {
                    i += 1 << 32; // the 32-bit counter wrapped
                }
                i
            }
        };
        let gap = self.last.map_or(0, |l| index - l - 1);
        self.dropped += gap;
        self.last = Some(index);
        (index, gap)
    }
}

/// Converts one frame of `width × height` pixels from `src` (rows `stride` bytes apart) to
/// `out` in `dst` (rows packed). Supported: any source to its
/// [`natural_output`](SourceFormat::natural_output), any source to `Mono8` (luma; `Y16`
/// keeps its high byte), and `Grey` to `Rgb8`.
pub fn convert_frame(
    src: &[u8],
    from: SourceFormat,
    stride: usize,
    width: usize,
    height: usize,
    out: PixelFormat,
    dst: &mut [u8],
) -> Result<()> {
    if !can_convert(from, out) {
        return Err(Error::config(format!(
            "no conversion from {from:?} to {out}"
        )));
    }
    let row_in = width * from.bytes_per_pixel();
    let stride = if stride == 0 { row_in } else { stride };
    let row_out = width * out.bytes_per_pixel();
    if width == 0 || height == 0 {
        return Err(Error::new(
            ErrorKind::Hardware,
            format!("empty frame {width}x{height}"),
        ));
    }
    if from == SourceFormat::Yuyv && width % 2 != 0 {
        return Err(Error::new(
            ErrorKind::Hardware,
            format!("YUYV frame of odd width {width}"),
        ));
    }
    let needed = bytes_needed(from, stride, width, height);
    if stride < row_in
        || needed.is_none_or(|n| src.len() < n)
        || row_out.checked_mul(height).is_none_or(|n| dst.len() < n)
    {
        return Err(Error::new(
            ErrorKind::Hardware,
            format!(
                "frame buffer too small: {} bytes for {width}x{height} {from:?} (stride {stride}), or output {} bytes",
                src.len(),
                dst.len()
            ),
        ));
    }
    for y in 0..height {
        let s = &src[y * stride..y * stride + row_in];
        let d = &mut dst[y * row_out..(y + 1) * row_out];
        match (from, out) {
            (SourceFormat::Grey, PixelFormat::Mono8)
            | (SourceFormat::Y16, PixelFormat::Mono16)
            | (SourceFormat::Rgb24, PixelFormat::Rgb8) => d.copy_from_slice(s),
            (SourceFormat::Y16, PixelFormat::Mono8) => {
                for (o, p) in d.iter_mut().zip(s.chunks_exact(2)) {
                    *o = p[1];
                }
            }
            (SourceFormat::Grey, PixelFormat::Rgb8) => {
                for (o, &p) in d.chunks_exact_mut(3).zip(s) {
                    o.fill(p);
                }
            }
            (SourceFormat::Bgr24, PixelFormat::Rgb8) => {
                for (o, p) in d.chunks_exact_mut(3).zip(s.chunks_exact(3)) {
                    o.copy_from_slice(&[p[2], p[1], p[0]]);
                }
            }
            (SourceFormat::Rgb24, PixelFormat::Mono8) => {
                for (o, p) in d.iter_mut().zip(s.chunks_exact(3)) {
                    *o = luma(p[0], p[1], p[2]);
                }
            }
            (SourceFormat::Bgr24, PixelFormat::Mono8) => {
                for (o, p) in d.iter_mut().zip(s.chunks_exact(3)) {
                    *o = luma(p[2], p[1], p[0]);
                }
            }
            (SourceFormat::Yuyv, PixelFormat::Mono8) => {
                for (o, p) in d.iter_mut().zip(s.chunks_exact(2)) {
                    *o = full_range_luma(p[0]);
                }
            }
            (SourceFormat::Yuyv, PixelFormat::Rgb8) => {
                for (o, q) in d.chunks_exact_mut(6).zip(s.chunks_exact(4)) {
                    let (y0, u, y1, v) = (q[0], q[1], q[2], q[3]);
                    o[..3].copy_from_slice(&yuv_to_rgb(y0, u, v));
                    o[3..].copy_from_slice(&yuv_to_rgb(y1, u, v));
                }
            }
            (from, out) => {
                return Err(Error::config(format!(
                    "no conversion from {from:?} to {out}"
                )))
            }
        }
    }
    Ok(())
}

/// The kind of a V4L2 control (the ones a camera setting can represent, and the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    /// A 32- or 64-bit integer with min, max and step.
    Integer,
    /// On or off.
    Boolean,
    /// A menu of named items.
    Menu,
    /// A menu of integer items.
    IntegerMenu,
    /// Anything else (buttons, strings, compound controls, class headers): not mapped.
    Other,
}

/// A V4L2 control as the driver describes it (a copy of `v4l::control::Description`, so the
/// mapping compiles and is tested without the `v4l` feature).
#[derive(Debug, Clone, PartialEq)]
pub struct ControlDesc {
    /// V4L2 control id.
    pub id: u32,
    /// Kind.
    pub kind: ControlKind,
    /// Name given by the driver (e.g. `Exposure Time, Absolute`).
    pub name: String,
    /// Lowest value.
    pub min: i64,
    /// Highest value.
    pub max: i64,
    /// Step (at least 1).
    pub step: u64,
    /// Default value.
    pub default: i64,
    /// Menu items (index, label) for menus.
    pub menu: Vec<(u32, String)>,
    /// Disabled, read-only or inactive: listed as nothing.
    pub read_only: bool,
}

/// Well-known V4L2 control ids and the short setting names crabby gives them.
pub const KNOWN_CONTROLS: [(u32, &str); 9] = [
    (0x0098_0900, "brightness"),
    (0x0098_0901, "contrast"),
    (0x0098_0902, "saturation"),
    (0x0098_0910, "gamma"),
    (0x0098_0911, "exposure"),
    (0x0098_0913, "gain"),
    (0x009a_0901, "auto_exposure"),
    (0x009a_0902, "exposure"),
    (0x0098_091b, "sharpness"),
];

/// The setting name of a control: its well-known name, else the driver's name in lower
/// case with every run of other characters replaced by `_` (`Exposure Time, Absolute` →
/// `exposure_time_absolute`).
pub fn setting_name(desc: &ControlDesc) -> String {
    if let Some((_, n)) = KNOWN_CONTROLS.iter().find(|(id, _)| *id == desc.id) {
        return (*n).to_owned();
    }
    let mut s = String::new();
    for c in desc.name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('_') {
            s.push('_');
        }
    }
    s.trim_matches('_').to_owned()
}

/// The camera setting describing a control, or `None` for controls a setting cannot
/// represent (buttons, strings, read-only ones...).
pub fn control_setting(desc: &ControlDesc) -> Option<SettingInfo> {
    if desc.read_only {
        return None;
    }
    let name = setting_name(desc);
    let description = format!("V4L2 control '{}' (id {:#x})", desc.name, desc.id);
    match desc.kind {
        ControlKind::Integer => Some(SettingInfo {
            name,
            kind: SettingKind::Range {
                min: desc.min as f64,
                max: desc.max as f64,
                step: Some(desc.step.max(1) as f64),
            },
            default: SettingValue::Number(desc.default as f64),
            description,
        }),
        ControlKind::Boolean => Some(SettingInfo {
            name,
            kind: SettingKind::Bool,
            default: SettingValue::Bool(desc.default != 0),
            description,
        }),
        ControlKind::Menu | ControlKind::IntegerMenu => {
            let items: Vec<String> = desc.menu.iter().map(|(_, l)| l.clone()).collect();
            let default = desc
                .menu
                .iter()
                .find(|(i, _)| i64::from(*i) == desc.default)
                .map(|(_, l)| l.clone())
                .or_else(|| items.first().cloned())?;
            Some(SettingInfo {
                name,
                kind: SettingKind::Choice(items),
                default: SettingValue::Choice(default),
                description,
            })
        }
        ControlKind::Other => None,
    }
}

/// The raw V4L2 value of a (validated) setting value for `desc`: integers as they are,
/// booleans as 0/1, menu items as their index.
pub fn control_value(desc: &ControlDesc, value: &SettingValue) -> Result<i64> {
    match (desc.kind, value) {
        (ControlKind::Integer, SettingValue::Number(v)) => {
            let r = v.round();
            if (r - v).abs() > 1e-9 || r < desc.min as f64 || r > desc.max as f64 {
                return Err(Error::new(
                    ErrorKind::OutOfRange,
                    format!(
                        "{} = {v}: needs an integer in {}..={}",
                        desc.name, desc.min, desc.max
                    ),
                ));
            }
            Ok(r as i64)
        }
        (ControlKind::Boolean, SettingValue::Bool(b)) => Ok(i64::from(*b)),
        (ControlKind::Menu | ControlKind::IntegerMenu, SettingValue::Choice(c)) => desc
            .menu
            .iter()
            .find(|(_, l)| l == c)
            .map(|(i, _)| i64::from(*i))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::OutOfRange,
                    format!("{}: no menu item '{c}'", desc.name),
                )
            }),
        _ => Err(Error::config(format!(
            "{}: value {value} of the wrong kind",
            desc.name
        ))),
    }
}

/// The setting value of a raw V4L2 value.
pub fn setting_value(desc: &ControlDesc, raw: i64) -> SettingValue {
    match desc.kind {
        ControlKind::Boolean => SettingValue::Bool(raw != 0),
        ControlKind::Menu | ControlKind::IntegerMenu => SettingValue::Choice(
            desc.menu
                .iter()
                .find(|(i, _)| i64::from(*i) == raw)
                .map(|(_, l)| l.clone())
                .unwrap_or_else(|| raw.to_string()),
        ),
        _ => SettingValue::Number(raw as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_to_mono_and_rgb() {
        // Two pixels: Y0=16, Y1=235 (black and white in limited range), neutral chroma.
        let src = [16u8, 128, 235, 128];
        let mut mono = [0u8; 2];
        convert_frame(
            &src,
            SourceFormat::Yuyv,
            0,
            2,
            1,
            PixelFormat::Mono8,
            &mut mono,
        )
        .unwrap();
        assert_eq!(mono, [0, 255]);
        let mut rgb = [0u8; 6];
        convert_frame(
            &src,
            SourceFormat::Yuyv,
            0,
            2,
            1,
            PixelFormat::Rgb8,
            &mut rgb,
        )
        .unwrap();
        assert_eq!(rgb, [0, 0, 0, 255, 255, 255]);
        // Pure red in BT.601 limited range: Y=81, U=90, V=240.
        let red = [81u8, 90, 81, 240];
        convert_frame(
            &red,
            SourceFormat::Yuyv,
            0,
            2,
            1,
            PixelFormat::Rgb8,
            &mut rgb,
        )
        .unwrap();
        assert!(rgb[0] >= 250 && rgb[1] <= 3 && rgb[2] <= 3, "{rgb:?}");
    }

    #[test]
    fn stride_padding_is_skipped_and_sizes_checked() {
        // 2x2 grey with 4-byte stride (2 bytes of padding per row).
        let src = [1u8, 2, 99, 99, 3, 4, 99, 99];
        let mut out = [0u8; 4];
        convert_frame(
            &src,
            SourceFormat::Grey,
            4,
            2,
            2,
            PixelFormat::Mono8,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [1, 2, 3, 4]);
        assert!(convert_frame(
            &src[..5],
            SourceFormat::Grey,
            4,
            2,
            2,
            PixelFormat::Mono8,
            &mut out
        )
        .is_err());
        assert!(convert_frame(
            &src,
            SourceFormat::Yuyv,
            0,
            3,
            1,
            PixelFormat::Mono8,
            &mut out
        )
        .is_err());
        let bgr = [10u8, 20, 30];
        let mut rgb = [0u8; 3];
        convert_frame(
            &bgr,
            SourceFormat::Bgr24,
            0,
            1,
            1,
            PixelFormat::Rgb8,
            &mut rgb,
        )
        .unwrap();
        assert_eq!(rgb, [30, 20, 10]);
        let y16 = [0x34u8, 0x12];
        let mut m = [0u8; 1];
        convert_frame(&y16, SourceFormat::Y16, 0, 1, 1, PixelFormat::Mono8, &mut m).unwrap();
        assert_eq!(m, [0x12]);
        assert_eq!(SourceFormat::from_fourcc(b"YUYV"), Some(SourceFormat::Yuyv));
        assert_eq!(SourceFormat::from_fourcc(b"MJPG"), None);
    }

    fn exposure() -> ControlDesc {
        ControlDesc {
            id: 0x009a_0902,
            kind: ControlKind::Integer,
            name: "Exposure Time, Absolute".into(),
            min: 3,
            max: 2047,
            step: 1,
            default: 250,
            menu: vec![],
            read_only: false,
        }
    }

    #[test]
    fn controls_map_to_settings() {
        let e = control_setting(&exposure()).unwrap();
        assert_eq!(e.name, "exposure");
        assert_eq!(
            e.kind,
            SettingKind::Range {
                min: 3.0,
                max: 2047.0,
                step: Some(1.0)
            }
        );
        assert_eq!(e.default, SettingValue::Number(250.0));
        assert!(e.validate(&2048.0.into()).is_err());
        assert_eq!(control_value(&exposure(), &100.0.into()).unwrap(), 100);
        assert!(control_value(&exposure(), &100.5.into()).is_err());

        let menu = ControlDesc {
            id: 0x0098_0918,
            kind: ControlKind::Menu,
            name: "Power Line Frequency".into(),
            min: 0,
            max: 2,
            step: 1,
            default: 1,
            menu: vec![
                (0, "Disabled".into()),
                (1, "50 Hz".into()),
                (2, "60 Hz".into()),
            ],
            read_only: false,
        };
        let m = control_setting(&menu).unwrap();
        assert_eq!(m.name, "power_line_frequency");
        assert_eq!(m.default, SettingValue::Choice("50 Hz".into()));
        assert_eq!(control_value(&menu, &"60 Hz".into()).unwrap(), 2);
        assert_eq!(
            setting_value(&menu, 0),
            SettingValue::Choice("Disabled".into())
        );

        let b = ControlDesc {
            kind: ControlKind::Boolean,
            name: "White Balance, Auto".into(),
            id: 1,
            default: 1,
            ..exposure()
        };
        assert_eq!(control_setting(&b).unwrap().kind, SettingKind::Bool);
        assert_eq!(control_value(&b, &false.into()).unwrap(), 0);
        let button = ControlDesc {
            kind: ControlKind::Other,
            ..exposure()
        };
        assert!(control_setting(&button).is_none());
        let ro = ControlDesc {
            read_only: true,
            ..exposure()
        };
        assert!(control_setting(&ro).is_none());
    }

    #[test]
    fn torn_and_flagged_buffers_are_refused() {
        let g = SourceFormat::Grey;
        // 4x3 grey, stride 8: the last row needs 4 bytes, so 8·2 + 4 = 20.
        assert_eq!(check_buffer(0, 20, 24, g, 8, 4, 3), Ok(20));
        assert!(check_buffer(0, 19, 24, g, 8, 4, 3).is_err());
        assert!(check_buffer(buf_flags::ERROR, 24, 24, g, 8, 4, 3).is_err());
        // bytesused 0: the whole mapping; larger than the mapping: clipped to it.
        assert_eq!(check_buffer(0, 0, 24, g, 8, 4, 3), Ok(24));
        assert_eq!(check_buffer(0, 99, 24, g, 8, 4, 3), Ok(24));
        assert!(check_buffer(0, 0, 24, g, 8, 4, 0).is_err());
    }

    #[test]
    fn timestamps_only_from_the_monotonic_clock() {
        let mono = buf_flags::TIMESTAMP_MONOTONIC;
        assert_eq!(buffer_timestamp_ns(mono, 3, 5, 77), 3_000_005_000);
        assert_eq!(buffer_timestamp_ns(0x4000, 3, 5, 77), 77); // COPY
        assert_eq!(buffer_timestamp_ns(0, 3, 5, 77), 77); // UNKNOWN
        assert_eq!(buffer_timestamp_ns(mono, 0, 0, 77), 77);
        assert_eq!(buffer_timestamp_ns(mono, -1, 0, 77), 77);
    }

    #[test]
    fn sequence_gaps_and_wraps() {
        let mut s = Sequence::default();
        assert_eq!(s.next(10), (10, 0));
        assert_eq!(s.next(11), (11, 0));
        assert_eq!(s.next(14), (14, 2));
        assert_eq!(s.dropped, 2);
        let mut s = Sequence::default();
        assert_eq!(s.next(u32::MAX), (u64::from(u32::MAX), 0));
        assert_eq!(s.next(0), (1 << 32, 0));
        assert_eq!(s.next(2), ((1 << 32) + 2, 1));
    }

    #[test]
    fn impossible_conversions_are_known_before_grabbing() {
        assert!(can_convert(SourceFormat::Yuyv, PixelFormat::Rgb8));
        assert!(can_convert(SourceFormat::Y16, PixelFormat::Mono8));
        assert!(!can_convert(SourceFormat::Yuyv, PixelFormat::Mono16));
        assert!(!can_convert(SourceFormat::Rgb24, PixelFormat::Mono16));
        let mut dst = [0u8; 8];
        assert!(convert_frame(
            &[0; 8],
            SourceFormat::Grey,
            0,
            4,
            0,
            PixelFormat::Mono8,
            &mut dst
        )
        .is_err());
    }
}
