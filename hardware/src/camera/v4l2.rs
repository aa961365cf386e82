//! [`V4l2Camera`]: a Video4Linux2 device (webcams, many industrial USB cameras), through the
//! `v4l` crate (feature `v4l`). Format conversion and control mapping are the pure functions
//! of [`convert`](super::convert).

use super::convert::{
    buffer_timestamp_ns, can_convert, check_buffer, control_setting, control_value, convert_frame,
    setting_value, ControlDesc, ControlKind, Sequence, SourceFormat,
};
use crabby::camera::{Camera, FrameFormat, FrameInfo, PixelFormat, SettingInfo, SettingValue};
use crabby::{Error, ErrorKind, Result};
use std::path::PathBuf;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;

/// A V4L2 capture device. Configured here, opened in the camera Block's process.
///
/// ```no_run
/// use crabby_hardware::camera::V4l2Camera;
/// use crabby::camera::PixelFormat;
/// let cam = V4l2Camera::new("/dev/video0").size(1280, 720).output(PixelFormat::Mono8);
/// ```
pub struct V4l2Camera {
    path: PathBuf,
    size: Option<(u32, u32)>,
    fourcc: Option<[u8; 4]>,
    output: Option<PixelFormat>,
    device: Option<v4l::Device>,
    stream: Option<v4l::io::mmap::Stream<'static>>,
    source: Option<(SourceFormat, usize, u32, u32)>,
    controls: Vec<ControlDesc>,
    sequence: Sequence,
    torn: u64,
    // Dropped in `close`, after the stream and the device.
    lock: Option<crate::lock::DeviceLock>,
}

impl std::fmt::Debug for V4l2Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4l2Camera")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("open", &self.device.is_some())
            .finish()
    }
}

impl V4l2Camera {
    /// The device at `path` (e.g. `/dev/video0`), in its current format.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        V4l2Camera {
            path: path.into(),
            size: None,
            fourcc: None,
            output: None,
            device: None,
            stream: None,
            source: None,
            controls: Vec::new(),
            sequence: Sequence::default(),
            torn: 0,
            lock: None,
        }
    }

    /// Asks the device for this frame size.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = Some((width, height));
        self
    }

    /// Asks the device for this pixel format (`GREY`, `Y16 `, `YUYV`, `RGB3`, `BGR3`).
    pub fn fourcc(mut self, code: &[u8; 4]) -> Self {
        self.fourcc = Some(*code);
        self
    }

    /// The frames' format after conversion (default: grey stays grey, colour is RGB8).
    pub fn output(mut self, pixel: PixelFormat) -> Self {
        self.output = Some(pixel);
        self
    }

    fn io(&self, what: &str, e: std::io::Error) -> Error {
        Error::io(format!("{}: {what}", self.path.display()), e)
    }

    fn control(&self, name: &str) -> Result<&ControlDesc> {
        self.controls
            .iter()
            .find(|c| control_setting(c).is_some_and(|s| s.name == name))
            .ok_or_else(|| {
                Error::config(format!(
                    "{}: no setting '{name}' (settings: {:?})",
                    self.path.display(),
                    self.settings()
                        .iter()
                        .map(|s| s.name.clone())
                        .collect::<Vec<_>>()
                ))
            })
    }
}

fn kind_of(t: v4l::control::Type) -> ControlKind {
    use v4l::control::Type;
    match t {
        Type::Integer | Type::Integer64 => ControlKind::Integer,
        Type::Boolean => ControlKind::Boolean,
        Type::Menu => ControlKind::Menu,
        Type::IntegerMenu => ControlKind::IntegerMenu,
        _ => ControlKind::Other,
    }
}

impl V4l2Camera {
    fn open_device(&mut self) -> Result<()> {
        // One opener per device: a second test (or Block) is refused before the device is
        // touched, with the holder named.
        if self.lock.is_none() {
            self.lock = Some(super::lock_device(&self.path, "V4l2Camera")?);
        }
        let dev = v4l::Device::with_path(&self.path).map_err(|e| self.io("cannot open", e))?;
        let mut fmt = dev
            .format()
            .map_err(|e| self.io("cannot read the format", e))?;
        if self.size.is_some() || self.fourcc.is_some() {
            if let Some((w, h)) = self.size {
                fmt.width = w;
                fmt.height = h;
            }
            if let Some(c) = self.fourcc {
                fmt.fourcc = v4l::FourCC::new(&c);
            }
            fmt = dev
                .set_format(&fmt)
                .map_err(|e| self.io("cannot set the format", e))?;
            if let Some((w, h)) = self.size {
                if (fmt.width, fmt.height) != (w, h) {
                    log::warn!(
                        "{}: asked {w}x{h}, the device gives {}x{}",
                        self.path.display(),
                        fmt.width,
                        fmt.height
                    );
                }
            }
        }
        let source = SourceFormat::from_fourcc(&fmt.fourcc.repr).ok_or_else(|| {
            Error::new(
                ErrorKind::Hardware,
                format!(
                    "{}: pixel format {} is not supported (GREY, Y16, YUYV, RGB3, BGR3); ask one with .fourcc()",
                    self.path.display(),
                    fmt.fourcc
                ),
            )
        })?;
        if let Some(out) = self.output {
            if !can_convert(source, out) {
                return Err(Error::config(format!(
                    "{}: the device gives {source:?} frames, which cannot be converted to {out}; choose another output() or fourcc()",
                    self.path.display()
                )));
            }
        }
        self.source = Some((source, fmt.stride as usize, fmt.width, fmt.height));
        self.controls = query_controls(&dev);
        let mut stream =
            v4l::io::mmap::Stream::with_buffers(&dev, v4l::buffer::Type::VideoCapture, 4)
                .map_err(|e| self.io("cannot start streaming", e))?;
        // Short waits: `grab` returns Ok(None) after 200 ms without a frame and the camera
        // Block calls again, so a test's end is never delayed by a long V4L2 wait.
        stream.set_timeout(std::time::Duration::from_millis(200));
        self.stream = Some(stream);
        self.device = Some(dev);
        self.sequence = Sequence::default();
        self.torn = 0;
        Ok(())
    }
}

/// The device's controls. Only read-only and disabled controls are left out: an INACTIVE
/// control (e.g. `exposure` while `auto_exposure` is on) becomes settable once another
/// setting changes, so it is listed (and the list is re-read after each `set`).
fn query_controls(dev: &v4l::Device) -> Vec<ControlDesc> {
    dev.query_controls()
        .unwrap_or_default()
        .into_iter()
        .map(|d| ControlDesc {
            id: d.id,
            kind: kind_of(d.typ),
            name: d.name.clone(),
            min: d.minimum,
            max: d.maximum,
            step: d.step,
            default: d.default,
            menu: d
                .items
                .unwrap_or_default()
                .into_iter()
                .map(|(i, item)| (i, item.to_string()))
                .collect(),
            read_only: d
                .flags
                .intersects(v4l::control::Flags::READ_ONLY | v4l::control::Flags::DISABLED),
        })
        .collect()
}

impl Camera for V4l2Camera {
    fn name(&self) -> &str {
        "V4l2Camera"
    }

    fn check(&self) -> Result<()> {
        super::probe_device(&self.path, "V4l2Camera")
    }

    fn open(&mut self) -> Result<()> {
        let r = self.open_device();
        if r.is_err() {
            self.lock = None;
        }
        r
    }

    fn settings(&self) -> Vec<SettingInfo> {
        self.controls.iter().filter_map(control_setting).collect()
    }

    fn get(&self, name: &str) -> Result<SettingValue> {
        let desc = self.control(name)?;
        let dev = self
            .device
            .as_ref()
            .ok_or_else(|| Error::config("camera not open"))?;
        let c = dev
            .control(desc.id)
            .map_err(|e| self.io("cannot read a control", e))?;
        let raw = match c.value {
            v4l::control::Value::Integer(v) => v,
            v4l::control::Value::Boolean(b) => i64::from(b),
            _ => {
                return Err(Error::new(
                    ErrorKind::Hardware,
                    format!("{name}: unexpected control value"),
                ))
            }
        };
        Ok(setting_value(desc, raw))
    }

    fn set(&mut self, name: &str, value: &SettingValue) -> Result<()> {
        let desc = self.control(name)?.clone();
        let raw = control_value(&desc, value)?;
        let dev = self
            .device
            .as_ref()
            .ok_or_else(|| Error::config("camera not open"))?;
        let v = if desc.kind == ControlKind::Boolean {
            v4l::control::Value::Boolean(raw != 0)
        } else {
            v4l::control::Value::Integer(raw)
        };
        dev.set_control(v4l::control::Control {
            id: desc.id,
            value: v,
        })
        .map_err(|e| self.io(&format!("cannot set {name} = {value}"), e))?;
        // A control may change others' flags and ranges (auto_exposure → exposure).
        self.controls = query_controls(dev);
        Ok(())
    }

    fn format(&self) -> FrameFormat {
        let (source, _, w, h) = self.source.unwrap_or((SourceFormat::Grey, 0, 0, 0));
        FrameFormat::new(w, h, self.output.unwrap_or(source.natural_output()))
    }

    fn grab(&mut self, buf: &mut [u8]) -> Result<Option<FrameInfo>> {
        let format = self.format();
        let (source, stride, w, h) = self
            .source
            .ok_or_else(|| Error::config("V4l2Camera: grab before open"))?;
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| Error::config("V4l2Camera: grab before open"))?;
        let (mapped, meta) = match stream.next() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Ok(None),
            Err(e) => {
                return Err(Error::io(
                    format!("{}: capture failed", self.path.display()),
                    e,
                ))
            }
        };
        let now = crabby::time::monotonic_ns();
        let flags = u32::from(meta.flags);
        // The driver's sequence numbers the frames, so frames it dropped leave a gap in the
        // indices (and are counted), even if this buffer is itself refused below.
        let (index, gap) = self.sequence.next(meta.sequence);
        if gap > 0 {
            log::warn!(
                "{}: the driver dropped {gap} frame(s) before frame {index} ({} so far)",
                self.path.display(),
                self.sequence.dropped
            );
        }
        // v4l's `next` gives the whole mapped buffer: only `bytesused` of it is the frame.
        let used = match check_buffer(
            flags,
            meta.bytesused,
            mapped.len(),
            source,
            stride,
            w as usize,
            h as usize,
        ) {
            Ok(n) => n,
            Err(why) => {
                self.torn += 1;
                log::warn!(
                    "{}: frame {index} dropped: {why} ({} so far)",
                    self.path.display(),
                    self.torn
                );
                return Ok(None);
            }
        };
        convert_frame(
            &mapped[..used],
            source,
            stride,
            w as usize,
            h as usize,
            format.pixel,
            buf,
        )?;
        let timestamp_ns = buffer_timestamp_ns(flags, meta.timestamp.sec, meta.timestamp.usec, now);
        Ok(Some(FrameInfo {
            index,
            timestamp_ns,
            format,
        }))
    }

    fn close(&mut self) -> Result<()> {
        self.stream = None;
        self.device = None;
        self.lock = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "needs a V4L2 device at /dev/video0; run with --ignored on a machine with a camera"]
    fn grabs_from_dev_video0() {
        assert!(
            std::path::Path::new("/dev/video0").exists(),
            "no /dev/video0 on this machine: the V4L2 device test cannot run"
        );
        let mut cam = V4l2Camera::new("/dev/video0").output(PixelFormat::Mono8);
        cam.open().unwrap();
        println!(
            "settings: {:?}",
            cam.settings().iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        let mut buf = vec![0u8; cam.format().bytes()];
        let mut got = 0;
        for _ in 0..10 {
            if cam.grab(&mut buf).unwrap().is_some() {
                got += 1;
            }
        }
        assert!(got > 0, "no frame in 10 grabs");
        cam.close().unwrap();
    }

    #[test]
    fn a_held_device_is_refused_at_check_and_open_before_it_is_touched() {
        let path = std::env::temp_dir().join(format!("crabby-v4l2-held-{}", std::process::id()));
        let held = super::super::lock_device(&path, "other test").unwrap();
        let mut cam = V4l2Camera::new(&path);
        let e = cam.check().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAllowed, "{e}");
        let e = cam.open().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAllowed, "{e}");
        assert!(e.description().contains("device 'other test'"), "{e}");
        drop(held);
        cam.check().unwrap();
        // Free now: the lock is taken, then the (absent) device fails, and the lock is
        // given back.
        assert_eq!(cam.open().unwrap_err().kind(), ErrorKind::Io);
        assert!(cam.lock.is_none());
        drop(super::super::lock_device(&path, "third").unwrap());
    }

    #[test]
    fn open_without_device_is_a_clear_error() {
        let mut cam = V4l2Camera::new("/dev/video-crabby-none");
        let e = cam.open().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(e.to_string().contains("/dev/video-crabby-none"), "{e}");
    }
}
