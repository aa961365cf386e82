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
    /// Packed 4:2:2 Y0 U Y1 V (`YUYV`).
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
    let (y, u, v) = (f32::from(y), f32::from(u) - 128.0, f32::from(v) - 128.0);
    [
        clamp_u8(y + 1.402 * v),
        clamp_u8(y - 0.344_136 * u - 0.714_136 * v),
        clamp_u8(y + 1.772 * u),
    ]
}

fn luma(r: u8, g: u8, b: u8) -> u8 {
    clamp_u8(0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b))
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
    let row_in = width * from.bytes_per_pixel();
    let stride = if stride == 0 { row_in } else { stride };
    let row_out = width * out.bytes_per_pixel();
    if from == SourceFormat::Yuyv && width % 2 != 0 {
        return Err(Error::new(
            ErrorKind::Hardware,
            format!("YUYV frame of odd width {width}"),
        ));
    }
    if stride < row_in || src.len() < stride * (height - 1) + row_in || dst.len() < row_out * height
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
                    *o = p[0];
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
        // Two pixels: Y0=16, Y1=235, neutral chroma (128) → greys.
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
        assert_eq!(mono, [16, 235]);
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
        assert_eq!(rgb, [16, 16, 16, 235, 235, 235]);
        // Pure red in BT.601 full range: Y=76, U=85, V=255.
        let red = [76u8, 85, 76, 255];
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
}
