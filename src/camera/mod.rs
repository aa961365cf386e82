//! Cameras: the [`Camera`] trait and the shared-memory [`FrameRing`].
//!
//! The principal types:
//! - [`Camera`]: what a camera driver implements. One required method,
//!   [`grab`](Camera::grab), which writes the next frame *into a buffer the framework gives*
//!   (a slot of the frame ring, so a frame is never copied between the driver and the
//!   readers) and returns its [`FrameInfo`] (index, timestamp, size, [`PixelFormat`]).
//!   Everything else has a default: [`open`](Camera::open), [`close`](Camera::close), the
//!   [`settings`](Camera::settings) a camera exposes ([`SettingInfo`], [`SettingKind`],
//!   [`SettingValue`]: booleans, numeric ranges with a step, choices) and
//!   [`update_inputs`](Camera::update_inputs) for simulated cameras driven by the test's
//!   labels.
//! - [`FrameRing`]: frames from one writer (the camera Block's process) to several reader
//!   processes (recorder, display, image processing), in pre-faulted slots of an anonymous
//!   shared mapping. Each reader reads either the latest frame ([`ReadMode::Latest`]) or
//!   every frame ([`ReadMode::Every`]); skipped and overrun frames are counted per reader
//!   ([`ReaderStats`]). See the [`ring`] module docs for the protocol.
//!
//! ## For driver authors
//!
//! ```
//! use crabby::camera::{Camera, FrameFormat, FrameInfo, PixelFormat};
//! use crabby::Result;
//!
//! /// A 4×2 camera whose pixels all hold the frame number.
//! struct Counter { n: u64 }
//! impl Camera for Counter {
//!     fn format(&self) -> FrameFormat {
//!         FrameFormat::new(4, 2, PixelFormat::Mono8)
//!     }
//!     fn grab(&mut self, buf: &mut [u8]) -> Result<Option<FrameInfo>> {
//!         let f = self.format();
//!         buf[..f.bytes()].fill(self.n as u8);
//!         self.n += 1;
//!         Ok(Some(FrameInfo::now(self.n - 1, f)))
//!     }
//! }
//! let mut cam = Counter { n: 0 };
//! let mut buf = vec![0u8; cam.format().bytes()];
//! let info = cam.grab(&mut buf).unwrap().unwrap();
//! assert_eq!((info.index, info.format.width), (0, 4));
//! ```

pub mod ring;

pub use ring::{
    FrameRef, FrameRing, Next, ReadMode, Reader, ReaderStats, RingConfig, SlotMut, Writer,
    WriterStats, MAX_READERS,
};

use crate::{Error, ErrorKind, Result, Sample};

/// How the pixels of a frame are laid out (rows top to bottom, no padding between rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 8-bit grey, one byte per pixel.
    Mono8,
    /// 16-bit grey, two bytes per pixel, little-endian (native on every supported target).
    Mono16,
    /// 8-bit colour, three bytes per pixel in R, G, B order.
    Rgb8,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Mono8 => 1,
            PixelFormat::Mono16 => 2,
            PixelFormat::Rgb8 => 3,
        }
    }

    /// A short name (`mono8`, `mono16`, `rgb8`), used in metadata files.
    pub fn as_str(self) -> &'static str {
        match self {
            PixelFormat::Mono8 => "mono8",
            PixelFormat::Mono16 => "mono16",
            PixelFormat::Rgb8 => "rgb8",
        }
    }

    fn code(self) -> u32 {
        match self {
            PixelFormat::Mono8 => 1,
            PixelFormat::Mono16 => 2,
            PixelFormat::Rgb8 => 3,
        }
    }

    fn from_code(c: u32) -> Option<Self> {
        match c {
            1 => Some(PixelFormat::Mono8),
            2 => Some(PixelFormat::Mono16),
            3 => Some(PixelFormat::Rgb8),
            _ => None,
        }
    }
}

impl std::fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The size and pixel format of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameFormat {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Pixel layout.
    pub pixel: PixelFormat,
}

impl FrameFormat {
    /// A format of `width × height` pixels.
    pub fn new(width: u32, height: u32, pixel: PixelFormat) -> Self {
        FrameFormat {
            width,
            height,
            pixel,
        }
    }

    /// Bytes of one frame.
    ///
    /// Saturates at `usize::MAX` for an absurd format (larger than the address space), so a
    /// ring or buffer sized from it fails to allocate instead of wrapping; see
    /// [`checked_bytes`](FrameFormat::checked_bytes).
    pub fn bytes(&self) -> usize {
        self.checked_bytes().unwrap_or(usize::MAX)
    }

    /// Bytes of one frame, `None` if that overflows `usize`.
    pub fn checked_bytes(&self) -> Option<usize> {
        (self.width as usize)
            .checked_mul(self.height as usize)?
            .checked_mul(self.pixel.bytes_per_pixel())
    }
}

/// What the camera tells about one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// The camera's frame number (0 for the first frame it delivered).
    pub index: u64,
    /// When the frame was taken, in nanoseconds of `CLOCK_MONOTONIC` (the clock of the
    /// test's `t0`, so `t(s) = (timestamp_ns - t0_ns) / 1e9`).
    pub timestamp_ns: u64,
    /// Size and pixel format.
    pub format: FrameFormat,
}

impl FrameInfo {
    /// Frame `index` of format `format`, stamped now.
    pub fn now(index: u64, format: FrameFormat) -> Self {
        FrameInfo {
            index,
            timestamp_ns: crate::sys::monotonic_ns(),
            format,
        }
    }

    /// Seconds since `t0_ns` (the test's start), negative if taken before. Exact over the
    /// whole `u64` range (the difference is taken unsigned, larger minus smaller), so a
    /// timestamp at or beyond 2^63 ns cannot overflow.
    pub fn t_since(&self, t0_ns: u64) -> f64 {
        let ts = self.timestamp_ns;
        if ts >= t0_ns {
            (ts - t0_ns) as f64 * 1e-9
        } else {
            -((t0_ns - ts) as f64) * 1e-9
        }
    }
}

/// The kind and limits of a camera setting, so a user or a UI can list and validate it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SettingKind {
    /// On or off.
    Bool,
    /// A number in `min..=max`. With a `step`, valid values are `min + k·step`.
    Range {
        /// Lowest value.
        min: f64,
        /// Highest value.
        max: f64,
        /// Granularity (`None`: any value in the range).
        step: Option<f64>,
    },
    /// One of a list of names (e.g. trigger mode `free run` / `hardware`).
    Choice(Vec<String>),
}

/// A value of a camera setting.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SettingValue {
    /// For [`SettingKind::Bool`].
    Bool(bool),
    /// For [`SettingKind::Range`].
    Number(f64),
    /// For [`SettingKind::Choice`].
    Choice(String),
}

impl std::fmt::Display for SettingValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingValue::Bool(b) => write!(f, "{b}"),
            SettingValue::Number(v) => write!(f, "{v}"),
            SettingValue::Choice(c) => f.write_str(c),
        }
    }
}

impl From<bool> for SettingValue {
    fn from(v: bool) -> Self {
        SettingValue::Bool(v)
    }
}
impl From<f64> for SettingValue {
    fn from(v: f64) -> Self {
        SettingValue::Number(v)
    }
}
impl From<i32> for SettingValue {
    fn from(v: i32) -> Self {
        SettingValue::Number(f64::from(v))
    }
}
impl From<&str> for SettingValue {
    fn from(v: &str) -> Self {
        SettingValue::Choice(v.to_owned())
    }
}

/// One setting a camera exposes (exposure, gain, frame rate, trigger mode, software ROI...).
#[derive(Debug, Clone, PartialEq)]
pub struct SettingInfo {
    /// The name used to read and write it (e.g. `exposure`).
    pub name: String,
    /// Kind and limits.
    pub kind: SettingKind,
    /// Value after `open`.
    pub default: SettingValue,
    /// One line for a UI (unit included, e.g. "exposure time (µs)").
    pub description: String,
}

impl SettingInfo {
    /// A boolean setting.
    pub fn bool(name: &str, default: bool, description: &str) -> Self {
        SettingInfo {
            name: name.to_owned(),
            kind: SettingKind::Bool,
            default: SettingValue::Bool(default),
            description: description.to_owned(),
        }
    }

    /// A numeric setting in `min..=max`, with an optional step.
    pub fn range(
        name: &str,
        min: f64,
        max: f64,
        step: Option<f64>,
        default: f64,
        description: &str,
    ) -> Self {
        SettingInfo {
            name: name.to_owned(),
            kind: SettingKind::Range { min, max, step },
            default: SettingValue::Number(default),
            description: description.to_owned(),
        }
    }

    /// A choice among `choices`.
    pub fn choice(name: &str, choices: &[&str], default: &str, description: &str) -> Self {
        SettingInfo {
            name: name.to_owned(),
            kind: SettingKind::Choice(choices.iter().map(|c| (*c).to_owned()).collect()),
            default: SettingValue::Choice(default.to_owned()),
            description: description.to_owned(),
        }
    }

    /// Checks `value` against this setting's kind and limits. A number within a step's
    /// rounding (1e-9 of the step) is snapped to the step; anything else is an
    /// [`ErrorKind::OutOfRange`] or [`ErrorKind::Configuration`] error naming the setting
    /// and what it accepts.
    pub fn validate(&self, value: &SettingValue) -> Result<SettingValue> {
        match (&self.kind, value) {
            (SettingKind::Bool, SettingValue::Bool(_)) => Ok(value.clone()),
            (SettingKind::Range { min, max, step }, SettingValue::Number(v)) => {
                if !v.is_finite() || *v < *min || *v > *max {
                    return Err(Error::new(
                        ErrorKind::OutOfRange,
                        format!(
                            "camera setting '{}' = {v} is outside {min}..={max}",
                            self.name
                        ),
                    ));
                }
                if let Some(step) = step.filter(|s| *s > 0.0) {
                    let k = ((v - min) / step).round();
                    let snapped = min + k * step;
                    // Tolerance relative to the magnitudes involved: a value of 1e7 on a
                    // 0.1 step is on it even though it is not exact in binary.
                    let tol = (1e-12 * v.abs().max(min.abs()).max(1.0)).max(1e-9 * step);
                    if (snapped - v).abs() > tol {
                        return Err(Error::new(
                            ErrorKind::OutOfRange,
                            format!(
                                "camera setting '{}' = {v} is not on its step: valid values are {min} + k·{step} (nearest {snapped})",
                                self.name
                            ),
                        ));
                    }
                    return Ok(SettingValue::Number(snapped.min(*max)));
                }
                Ok(value.clone())
            }
            (SettingKind::Choice(choices), SettingValue::Choice(c)) => {
                if choices.iter().any(|x| x == c) {
                    Ok(value.clone())
                } else {
                    Err(Error::new(
                        ErrorKind::OutOfRange,
                        format!(
                            "camera setting '{}' = '{c}' is not one of {choices:?}",
                            self.name
                        ),
                    ))
                }
            }
            (kind, v) => Err(Error::config(format!(
                "camera setting '{}' takes {}, not {v:?}",
                self.name,
                match kind {
                    SettingKind::Bool => "a boolean",
                    SettingKind::Range { .. } => "a number",
                    SettingKind::Choice(_) => "one of its choices (text)",
                }
            ))),
        }
    }
}

/// A camera driver (real or simulated).
///
/// The driver is configured in its constructor (nothing touches the device), then, in the
/// camera Block's process: [`open`](Camera::open), the user's settings through
/// [`set`](Camera::set) (validated against [`settings`](Camera::settings) first),
/// [`format`](Camera::format) to size the frame ring, then [`grab`](Camera::grab) in a loop,
/// and [`close`](Camera::close).
pub trait Camera: Send + 'static {
    /// A name for messages and metadata.
    fn name(&self) -> &str {
        let full = std::any::type_name::<Self>();
        let base = full.split('<').next().unwrap_or(full);
        base.rsplit("::").next().unwrap_or(base)
    }

    /// Validates the configuration without opening the device: runs in `main`, from the
    /// camera Block's `check`, before anything is forked (e.g. a device held by another
    /// test). Default: nothing to check.
    fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Opens the device. Called once, in the camera Block's process, before anything else.
    ///
    /// `open` and `set` must not start threads: the camera Block forks its children
    /// (recorder, display, processing) after opening and setting the camera (the frame ring
    /// is sized from its format), and forking a multi-threaded process is unsafe. The Block
    /// checks the thread count before each fork and fails with an error naming the camera.
    fn open(&mut self) -> Result<()> {
        Ok(())
    }

    /// The settings this camera exposes (after `open`).
    fn settings(&self) -> Vec<SettingInfo> {
        Vec::new()
    }

    /// Reads a setting.
    fn get(&self, name: &str) -> Result<SettingValue> {
        Err(unknown_setting(self.name(), name, &self.settings()))
    }

    /// Writes a setting. The framework has validated `value` with [`SettingInfo::validate`].
    fn set(&mut self, name: &str, value: &SettingValue) -> Result<()> {
        let _ = value;
        Err(unknown_setting(self.name(), name, &self.settings()))
    }

    /// Size and pixel format of the frames [`grab`](Camera::grab) will deliver, once open
    /// and set. The frame ring's slots are sized from it; it must not change afterwards.
    fn format(&self) -> FrameFormat;

    /// Writes the next frame into `buf` (at least `format().bytes()` long) and returns its
    /// description, or `Ok(None)` if no frame is ready (the Block calls again).
    ///
    /// - `Ok(None)` must leave `buf` unwritten: `buf` is a slot of the frame ring, and the
    ///   Block gives it back with its previous frame, which a lagging reader may still want.
    /// - A driver should return within about 200 ms (return `Ok(None)` if the frame is not
    ///   there by then): a step in progress delays the end of the test, whose finish grace is
    ///   3 s for the whole camera Block (see `CameraBlock::child_grace` in crabby-blocks).
    fn grab(&mut self, buf: &mut [u8]) -> Result<Option<FrameInfo>>;

    /// The labels received by the camera Block, latched (every label keeps its last value),
    /// before each grab. Simulated cameras use it (e.g. the strain to apply); the default
    /// ignores them.
    fn update_inputs(&mut self, inputs: &Sample) {
        let _ = inputs;
    }

    /// Closes the device. Called once, in the camera Block's `finish`.
    fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Forwards every method, so a camera chosen at run time (`Box<dyn Camera>`) works wherever
/// a camera does. [`format`](Camera::format) and [`grab`](Camera::grab) are required, so
/// the compiler rejects a forward that leaves them out; the defaulted ones are checked by
/// the unit test `box_forwards_every_camera_method`, which lists them once.
impl<T: Camera + ?Sized> Camera for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn open(&mut self) -> Result<()> {
        (**self).open()
    }
    fn settings(&self) -> Vec<SettingInfo> {
        (**self).settings()
    }
    fn get(&self, name: &str) -> Result<SettingValue> {
        (**self).get(name)
    }
    fn set(&mut self, name: &str, value: &SettingValue) -> Result<()> {
        (**self).set(name, value)
    }
    fn format(&self) -> FrameFormat {
        (**self).format()
    }
    fn grab(&mut self, buf: &mut [u8]) -> Result<Option<FrameInfo>> {
        (**self).grab(buf)
    }
    fn update_inputs(&mut self, inputs: &Sample) {
        (**self).update_inputs(inputs)
    }
    fn close(&mut self) -> Result<()> {
        (**self).close()
    }
}

fn unknown_setting(camera: &str, name: &str, known: &[SettingInfo]) -> Error {
    let names: Vec<&str> = known.iter().map(|s| s.name.as_str()).collect();
    Error::config(format!(
        "camera {camera} has no setting '{name}' (its settings: {names:?})"
    ))
}

/// Validates `value` against the camera's description of setting `name`, then sets it.
pub fn apply_setting(cam: &mut dyn Camera, name: &str, value: &SettingValue) -> Result<()> {
    let settings = cam.settings();
    let Some(info) = settings.iter().find(|s| s.name == name) else {
        return Err(unknown_setting(cam.name(), name, &settings));
    };
    let v = info.validate(value)?;
    cam.set(name, &v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every defaulted method of `Camera`, called through a `Box`: each must reach the
    /// probe (a forgotten forward would run the default, which the probe never sees).
    #[test]
    fn box_forwards_every_camera_method() {
        const DEFAULTED: [&str; 7] = [
            "name",
            "open",
            "settings",
            "get",
            "set",
            "update_inputs",
            "close",
        ];
        use std::sync::{Arc, Mutex};
        struct Probe(Arc<Mutex<Vec<&'static str>>>);
        impl Probe {
            fn hit(&self, m: &'static str) {
                self.0.lock().unwrap().push(m);
            }
        }
        impl Camera for Probe {
            fn name(&self) -> &str {
                self.hit("name");
                "probe"
            }
            fn open(&mut self) -> Result<()> {
                self.hit("open");
                Ok(())
            }
            fn settings(&self) -> Vec<SettingInfo> {
                self.hit("settings");
                vec![SettingInfo::bool("on", true, "probe")]
            }
            fn get(&self, _: &str) -> Result<SettingValue> {
                self.hit("get");
                Ok(SettingValue::Bool(true))
            }
            fn set(&mut self, _: &str, _: &SettingValue) -> Result<()> {
                self.hit("set");
                Ok(())
            }
            fn format(&self) -> FrameFormat {
                FrameFormat::new(1, 1, PixelFormat::Mono8)
            }
            fn grab(&mut self, _: &mut [u8]) -> Result<Option<FrameInfo>> {
                Ok(None)
            }
            fn update_inputs(&mut self, _: &Sample) {
                self.hit("update_inputs");
            }
            fn close(&mut self) -> Result<()> {
                self.hit("close");
                Ok(())
            }
        }
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut c: Box<dyn Camera> = Box::new(Probe(calls.clone()));
        assert_eq!(Camera::name(&c), "probe");
        Camera::open(&mut c).unwrap();
        assert_eq!(Camera::settings(&c).len(), 1);
        assert_eq!(Camera::get(&c, "on").unwrap(), SettingValue::Bool(true));
        Camera::set(&mut c, "on", &SettingValue::Bool(false)).unwrap();
        Camera::update_inputs(&mut c, &Sample::new());
        Camera::close(&mut c).unwrap();
        assert_eq!(*calls.lock().unwrap(), DEFAULTED);
    }

    #[test]
    fn range_validation_snaps_to_step_and_rejects_outside() {
        let s = SettingInfo::range("gain", 0.0, 10.0, Some(0.5), 1.0, "gain (dB)");
        assert_eq!(s.validate(&2.5.into()).unwrap(), SettingValue::Number(2.5));
        assert_eq!(
            s.validate(&SettingValue::Number(2.5 + 1e-12)).unwrap(),
            SettingValue::Number(2.5)
        );
        let e = s.validate(&2.3.into()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfRange);
        assert!(e.description().contains("nearest 2.5"), "{e}");
        assert_eq!(
            s.validate(&11.0.into()).unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        assert_eq!(
            s.validate(&f64::NAN.into()).unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        assert_eq!(
            s.validate(&true.into()).unwrap_err().kind(),
            ErrorKind::Configuration
        );
    }

    #[test]
    fn large_on_step_values_are_accepted() {
        let s = SettingInfo::range("t", 0.0, 2e7, Some(0.1), 0.0, "");
        // 12345678.9 is not exact in binary, nor is 123456789 · 0.1: still on the step.
        assert!(s.validate(&12_345_678.9.into()).is_ok());
        assert!(s.validate(&12_345_678.95.into()).is_err());
    }

    #[test]
    fn absurd_formats_do_not_overflow() {
        let f = FrameFormat::new(u32::MAX, u32::MAX, PixelFormat::Rgb8);
        assert_eq!(f.checked_bytes(), None);
        assert_eq!(f.bytes(), usize::MAX);
        let cfg = RingConfig::new(f, &[ReadMode::Latest]);
        assert_eq!(
            FrameRing::new(&cfg).unwrap_err().kind(),
            ErrorKind::Configuration
        );
    }

    #[test]
    fn choice_and_bool_validation() {
        let c = SettingInfo::choice("trigger", &["free run", "hardware"], "free run", "");
        assert!(c.validate(&"hardware".into()).is_ok());
        assert_eq!(
            c.validate(&"soft".into()).unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        let b = SettingInfo::bool("auto", false, "");
        assert!(b.validate(&false.into()).is_ok());
        assert!(b.validate(&1.0.into()).is_err());
    }

    struct Dummy {
        gain: f64,
    }
    impl Camera for Dummy {
        fn settings(&self) -> Vec<SettingInfo> {
            vec![SettingInfo::range("gain", 0.0, 4.0, Some(1.0), 0.0, "")]
        }
        fn get(&self, name: &str) -> Result<SettingValue> {
            match name {
                "gain" => Ok(self.gain.into()),
                _ => Err(Error::config("no")),
            }
        }
        fn set(&mut self, name: &str, value: &SettingValue) -> Result<()> {
            match (name, value) {
                ("gain", SettingValue::Number(v)) => {
                    self.gain = *v;
                    Ok(())
                }
                _ => Err(Error::config("no")),
            }
        }
        fn format(&self) -> FrameFormat {
            FrameFormat::new(2, 2, PixelFormat::Mono16)
        }
        fn grab(&mut self, _buf: &mut [u8]) -> Result<Option<FrameInfo>> {
            Ok(None)
        }
    }

    #[test]
    fn apply_setting_validates_then_sets() {
        let mut d = Dummy { gain: 0.0 };
        apply_setting(&mut d, "gain", &3.0.into()).unwrap();
        assert_eq!(d.get("gain").unwrap(), SettingValue::Number(3.0));
        assert!(apply_setting(&mut d, "gain", &5.0.into()).is_err());
        let e = apply_setting(&mut d, "exposure", &5.0.into()).unwrap_err();
        assert!(e.description().contains("[\"gain\"]"), "{e}");
        assert_eq!(d.name(), "Dummy");
        assert_eq!(d.format().bytes(), 8);
    }

    #[test]
    fn t_since_is_exact_over_the_whole_u64_range() {
        let at = |ts: u64| FrameInfo {
            index: 0,
            timestamp_ns: ts,
            format: FrameFormat::new(1, 1, PixelFormat::Mono8),
        };
        assert_eq!(at(3_500_000_000).t_since(2_000_000_000), 1.5);
        assert_eq!(at(2_000_000_000).t_since(3_500_000_000), -1.5);
        assert_eq!(at(7).t_since(7), 0.0);
        // Timestamps at or beyond 2^63 ns (a corrupt recording replayed, saturated times):
        // no overflow, and the sign and size are right.
        let big = 1u64 << 63;
        assert_eq!(at(big).t_since(1), (big - 1) as f64 * 1e-9);
        assert_eq!(at(u64::MAX).t_since(0), u64::MAX as f64 * 1e-9);
        assert_eq!(at(0).t_since(u64::MAX), -(u64::MAX as f64) * 1e-9);
        assert_eq!(at(1).t_since(big), -((big - 1) as f64) * 1e-9);
    }
}
