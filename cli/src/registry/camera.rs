//! Cameras as file types and the `CameraBlock` that drives them: [`CameraType`] (a
//! `crabby::camera::Camera` built from its checked parameters) and [`camera_block`] (a
//! `camera = { type = ... }` table, an optional recorder, preview and video extensometry).
//!
//! Covered cameras: the simulated `FakeCamera` (a scrolling pattern) and
//! `StrainedSampleCamera` (a sample with spots that follows the strains it receives) of
//! `crabby-hardware`, and with the cargo feature `v4l` (which forwards
//! `crabby-hardware/v4l`) the real `V4l2Camera` (`v4l2_camera`).

use super::{error_at, BlockType, BuildContext};
use crabby::camera::{Camera, FrameFormat, FrameInfo, SettingInfo, SettingValue};
use crabby::schema::{ParamSpec, ParamType as T, Params, Range, Value, Variant};
use crabby::Sample;
use crabby_blocks::camera as bc;
use crabby_hardware::camera as hc;
use std::rc::Rc;

/// A camera of any type (forwards every method, its name included).
pub struct BoxedCamera(pub Box<dyn Camera>);

impl std::fmt::Debug for BoxedCamera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BoxedCamera").field(&self.0.name()).finish()
    }
}

impl Camera for BoxedCamera {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn check(&self) -> crabby::Result<()> {
        self.0.check()
    }
    fn open(&mut self) -> crabby::Result<()> {
        self.0.open()
    }
    fn settings(&self) -> Vec<SettingInfo> {
        self.0.settings()
    }
    fn get(&self, name: &str) -> crabby::Result<SettingValue> {
        self.0.get(name)
    }
    fn set(&mut self, name: &str, value: &SettingValue) -> crabby::Result<()> {
        self.0.set(name, value)
    }
    fn format(&self) -> FrameFormat {
        self.0.format()
    }
    fn grab(&mut self, buf: &mut [u8]) -> crabby::Result<Option<FrameInfo>> {
        self.0.grab(buf)
    }
    fn update_inputs(&mut self, inputs: &Sample) {
        self.0.update_inputs(inputs)
    }
    fn close(&mut self) -> crabby::Result<()> {
        self.0.close()
    }
}

type CameraFn = Box<dyn Fn(&Params, &BuildContext) -> Result<Box<dyn Camera>, String>>;
type LabelsFn = fn(&Params) -> Vec<String>;

/// One camera type: its name in files, doc, parameters and constructor (which must not open
/// the device: the CameraBlock opens it in its own process).
pub struct CameraType {
    /// The `type` in a `camera` table.
    pub name: &'static str,
    /// One line.
    pub doc: &'static str,
    /// Its parameters.
    pub params: Vec<ParamSpec>,
    build: CameraFn,
    /// The labels it reads from the CameraBlock's inputs.
    pub reads: LabelsFn,
}

impl std::fmt::Debug for CameraType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraType")
            .field("name", &self.name)
            .finish()
    }
}

impl CameraType {
    /// A camera built by `build` from its checked parameters.
    pub fn new(
        name: &'static str,
        doc: &'static str,
        build: impl Fn(&Params) -> Result<Box<dyn Camera>, String> + 'static,
    ) -> CameraType {
        CameraType::with_context(name, doc, move |p, _| build(p))
    }
    /// A camera built by `build` from its checked parameters and the test file's context
    /// (a relative input path is read from the file's folder: [`BuildContext::input`]).
    pub fn with_context(
        name: &'static str,
        doc: &'static str,
        build: impl Fn(&Params, &BuildContext) -> Result<Box<dyn Camera>, String> + 'static,
    ) -> CameraType {
        CameraType {
            name,
            doc,
            params: Vec::new(),
            build: Box::new(build),
            reads: |_| Vec::new(),
        }
    }
    /// Declares a parameter.
    pub fn param(mut self, spec: ParamSpec) -> CameraType {
        self.params.push(spec);
        self
    }
    /// Builds the camera (not opened).
    pub fn build(&self, p: &Params, cx: &BuildContext) -> Result<Box<dyn Camera>, String> {
        (self.build)(p, cx)
    }
}

fn size() -> [ParamSpec; 2] {
    [
        ParamSpec::new("width", T::Int, "image width, px").range(Range::between(1.0, 8192.0)),
        ParamSpec::new("height", T::Int, "image height, px").range(Range::between(1.0, 8192.0)),
    ]
}

/// The stock cameras.
pub fn stock_cameras() -> Vec<CameraType> {
    let [w, h] = size();
    let fake = CameraType::new(
        "FakeCamera",
        "a simulated camera: a scrolling pattern",
        |p| {
            let c = hc::FakeCamera::new(
                p.i64("width").unwrap_or(640) as u32,
                p.i64("height").unwrap_or(480) as u32,
                p.f64("fps").unwrap_or(30.0),
                p.f64("speed").unwrap_or(0.0),
            )
            .map_err(|e| e.description().to_owned())?;
            Ok(Box::new(c))
        },
    )
    .param(w.clone())
    .param(h.clone())
    .param(
        ParamSpec::new("fps", T::Float, "frames per second (0: as fast as asked)")
            .unit("Hz")
            .range(Range::between(0.0, 100_000.0))
            .default("30"),
    )
    .param(ParamSpec::new("speed", T::Float, "how fast the pattern scrolls, px/s").default("0"));
    let mut strained = CameraType::new(
        "StrainedSampleCamera",
        "a simulated sample with spots, strained by the Exx(%) and Eyy(%) it receives",
        |p| {
            let mut c = hc::StrainedSampleCamera::new(
                p.i64("width").unwrap_or(640) as u32,
                p.i64("height").unwrap_or(480) as u32,
                p.f64("radius").unwrap_or(9.0),
            )
            .map_err(|e| e.description().to_owned())?;
            if let Some(f) = p.f64("fps") {
                c = c.fps(f);
            }
            if let Some(n) = p.i64("speckle") {
                c = c
                    .speckle(n as usize, p.i64("seed").unwrap_or(0) as u64)
                    .map_err(|e| e.description().to_owned())?;
            }
            if p.bool("white_spots") == Some(true) {
                c = c.white_spots();
            }
            if let (Some(x), Some(y)) = (p.str("exx_label"), p.str("eyy_label")) {
                c = c.strain_labels(x, y);
            }
            Ok(Box::new(c))
        },
    )
    .param(w)
    .param(h)
    .param(ParamSpec::new("radius", T::Float, "spot radius, px").range(Range::above(0.0)))
    .param(
        ParamSpec::new("fps", T::Float, "frames per second (0: free run)")
            .unit("Hz")
            .range(Range::at_least(0.0))
            .default("100"),
    )
    .param(
        ParamSpec::new("speckle", T::Int, "speckle dots added")
            .range(Range::at_least(0.0))
            .optional(),
    )
    .param(
        ParamSpec::new("seed", T::Int, "seed of the speckle")
            .range(Range::at_least(0.0))
            .default("0"),
    )
    .param(
        ParamSpec::new("white_spots", T::Bool, "light spots on a dark background").default("false"),
    )
    .param(ParamSpec::new("exx_label", T::Label, "the strain along x it follows").default("Exx(%)"))
    .param(
        ParamSpec::new("eyy_label", T::Label, "the strain along y it follows").default("Eyy(%)"),
    );
    strained.reads = |p| {
        vec![
            p.str("exx_label").unwrap_or("Exx(%)").to_owned(),
            p.str("eyy_label").unwrap_or("Eyy(%)").to_owned(),
        ]
    };
    #[allow(unused_mut)]
    let mut all = vec![fake, strained, file_reader()];
    #[cfg(feature = "v4l")]
    all.push(v4l2_camera());
    all
}

/// `FileReader`: replays a folder recorded by a CameraBlock.
pub fn file_reader() -> CameraType {
    CameraType::with_context(
        "FileReader",
        "replays a folder of images recorded by a CameraBlock (record), to run the processing again offline",
        |p, cx| {
            let pacing = match p.str("pacing") {
                Some("as_fast_as_possible") => hc::Pacing::AsFastAsPossible,
                _ => hc::Pacing::RealTime {
                    speed: p.f64("speed").unwrap_or(1.0),
                },
            };
            let c = hc::FileReader::new(cx.input(p.str("folder").unwrap_or_default()), pacing)
                .map_err(|e| e.description().to_owned())?
                .looping(p.bool("looping").unwrap_or(false));
            Ok(Box::new(c))
        },
    )
    .param(ParamSpec::new(
        "folder",
        T::File,
        "the folder a CameraBlock recorded (relative to the test file's folder)",
    ))
    .param(
        ParamSpec::new(
            "pacing",
            T::Choice(vec!["real_time", "as_fast_as_possible"]),
            "deliver each frame at its recorded time, or as fast as the Block asks",
        )
        .default("real_time"),
    )
    .param(
        ParamSpec::new("speed", T::Float, "real_time: replay speed factor (1: as recorded)")
            .range(Range::above(0.0))
            .default("1"),
    )
    .param(ParamSpec::new("looping", T::Bool, "start over after the last frame").default("false"))
}

/// `V4l2Camera` (feature `v4l`): a Video4Linux2 device. Built here, opened by the
/// CameraBlock in its own process; nothing here touches the device.
#[cfg(feature = "v4l")]
pub fn v4l2_camera() -> CameraType {
    use crabby::camera::PixelFormat;
    let [w, h] = size();
    CameraType::new(
        "V4l2Camera",
        "a Video4Linux2 camera (webcams, many industrial USB cameras)",
        |p| {
            let mut c = hc::V4l2Camera::new(p.str("path").unwrap_or("/dev/video0"));
            match (p.i64("width"), p.i64("height")) {
                // 1..=8192 by the declared ranges.
                (Some(w), Some(h)) => c = c.size(w as u32, h as u32),
                (None, None) => {}
                _ => {
                    return Err(
                        "give both width and height, or neither (the device's current size)".into(),
                    )
                }
            }
            if let Some(f) = p.str("fourcc") {
                // The declared choices are four ASCII bytes ("Y16 " ends with a space).
                let mut code = [b' '; 4];
                for (d, s) in code.iter_mut().zip(f.bytes()) {
                    *d = s;
                }
                c = c.fourcc(&code);
            }
            match p.str("output") {
                Some("mono8") => c = c.output(PixelFormat::Mono8),
                Some("mono16") => c = c.output(PixelFormat::Mono16),
                Some("rgb8") => c = c.output(PixelFormat::Rgb8),
                _ => {}
            }
            Ok(Box::new(c))
        },
    )
    .param(
        ParamSpec::new(
            "path",
            T::Str,
            "the device, e.g. /dev/video0 or /dev/v4l/by-id/...",
        )
        .default("/dev/video0"),
    )
    .param(w.optional())
    .param(h.optional())
    .param(
        ParamSpec::new(
            "fourcc",
            T::Choice(vec!["GREY", "Y16", "YUYV", "RGB3", "BGR3"]),
            "pixel format asked of the device (default: its current one)",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "output",
            T::Choice(vec!["mono8", "mono16", "rgb8"]),
            "frames after conversion (default: grey stays grey, colour is rgb8)",
        )
        .optional(),
    )
}

/// The CameraBlock, with a camera among `cameras`.
pub fn camera_block(cameras: &[Rc<CameraType>]) -> BlockType {
    let cs: Vec<Rc<CameraType>> = cameras.to_vec();
    let cs_reads: Vec<Rc<CameraType>> = cameras.to_vec();
    let variants: Vec<Variant> = cameras
        .iter()
        .map(|c| Variant {
            name: c.name,
            doc: c.doc,
            params: c.params.clone(),
        })
        .collect();
    let record = vec![
        ParamSpec::new(
            "folder",
            T::File,
            "the images' folder (relative to the results folder)",
        ),
        ParamSpec::new(
            "format",
            T::Choice(vec!["tiff", "png", "raw"]),
            "image format",
        )
        .default("tiff"),
        ParamSpec::new("save_period", T::Int, "save every n-th frame")
            .range(Range::at_least(1.0))
            .default("1"),
    ];
    let display = vec![
        ParamSpec::new(
            "file",
            T::File,
            "the preview image (PGM), relative to the results folder",
        ),
        ParamSpec::new("period", T::Float, "how often it is rewritten")
            .unit("s")
            .range(super::seconds_range(false))
            .default("0.2"),
    ];
    let process = vec![Variant {
        name: "VideoExtenso",
        doc: "video extensometry: tracks 2 to 4 spots, sends Exx(%) and Eyy(%)",
        params: vec![
            ParamSpec::new(
                "num_spots",
                T::Int,
                "spots to keep (default: as many as found)",
            )
            .range(Range::between(2.0, 4.0))
            .optional(),
            ParamSpec::new("white_spots", T::Bool, "light spots on a dark background")
                .default("false"),
            ParamSpec::new("min_area", T::Int, "smallest spot area, px")
                .range(Range::at_least(1.0))
                .optional(),
            ParamSpec::new(
                "border",
                T::Int,
                "search margin around a spot when tracking, px",
            )
            .range(Range::at_least(0.0))
            .optional(),
            ParamSpec::new(
                "on_lost",
                T::Choice(vec!["fail", "stop_test"]),
                "what a lost spot does",
            )
            .default("fail"),
        ],
    }];
    BlockType::new(
        "CameraBlock",
        "a camera: acquisition, recorder, preview and processing (video extensometry)",
        move |p, cx| {
            let Some(Value::Variant(name, q)) = p.get("camera").map(|c| &c.value) else {
                return Err(error_at(p, "camera", "no camera"));
            };
            let cam = cs
                .iter()
                .find(|c| c.name == *name)
                .ok_or_else(|| error_at(p, "camera", format!("no camera type '{name}'")))?
                .build(q, cx)
                .map_err(|e| error_at(p, "camera", e))?;
            let mut b = bc::CameraBlock::new(BoxedCamera(cam));
            if let Some(r) = p.table("record") {
                let format = match r.str("format") {
                    Some("png") => bc::ImageFormat::Png,
                    Some("raw") => bc::ImageFormat::Raw,
                    _ => bc::ImageFormat::Tiff,
                };
                b = b.record(cx.output(r.str("folder").unwrap_or("images")), format);
                if let Some(n) = r.i64("save_period") {
                    b = b.save_period(n as u64);
                }
            }
            if let Some(d) = p.table("display") {
                b = b.display(
                    bc::PreviewFile::new(cx.output(d.str("file").unwrap_or("preview.pgm"))),
                    super::seconds(d.f64("period").unwrap_or(0.2)),
                );
            }
            if let Some(Value::Variant(_, v)) = p.get("process").map(|c| &c.value) {
                let mut ve =
                    bc::VideoExtenso::new().white_spots(v.bool("white_spots").unwrap_or(false));
                if let Some(n) = v.i64("num_spots") {
                    ve = ve.num_spots(n as usize);
                }
                if let Some(n) = v.i64("min_area") {
                    ve = ve.min_area(n as usize);
                }
                if let Some(n) = v.i64("border") {
                    ve = ve.border(n as usize);
                }
                if v.str("on_lost") == Some("stop_test") {
                    ve = ve.on_lost(bc::LostSpot::StopTest);
                }
                b = b.process(ve);
            }
            if let Some(l) = p.str("software_trigger") {
                b = b.software_trigger(l);
            }
            if let Some(n) = p.i64("ring_slots") {
                b = b.ring_slots(n as usize);
            }
            Ok(Box::new(b))
        },
    )
    .param(ParamSpec::new("camera", T::Tagged(variants), "the camera"))
    .param(ParamSpec::new("record", T::Table(record), "save the frames as images").optional())
    .param(
        ParamSpec::new(
            "display",
            T::Table(display),
            "a preview image, rewritten periodically",
        )
        .optional(),
    )
    .param(ParamSpec::new("process", T::Tagged(process), "processing of each frame").optional())
    .param(
        ParamSpec::new(
            "software_trigger",
            T::Label,
            "grab a frame when this label arrives",
        )
        .optional(),
    )
    .param(
        ParamSpec::new("ring_slots", T::Int, "frames the ring holds")
            .range(Range::at_least(2.0))
            .optional(),
    )
    .reads(move |p| {
        let mut v = Vec::new();
        if let Some(c) = p.get("camera") {
            if let Value::Variant(name, q) = &c.value {
                if let Some(t) = cs_reads.iter().find(|t| t.name == *name) {
                    v.extend((t.reads)(q).into_iter().map(|l| (l, c.span.clone())));
                }
            }
        }
        if let Some(c) = p.get("software_trigger") {
            if let Some(s) = c.as_str() {
                v.push((s.to_owned(), c.span.clone()));
            }
        }
        v
    })
}
