//! [`CameraBlock`]: acquisition into the frame ring, and the child processes that read it.
//!
//! This module forks the camera Block's children through the core's `crabby::process`.

use super::display::PreviewSink;
use super::record::{unique_folder, ImageFormat, ImageSaver};
use super::{FrameProcessor, ImageView, Processed};
use crabby::camera::{
    apply_setting, Camera, FrameRing, Next, ReadMode, Reader, RingConfig, SettingValue, Writer,
};
use crabby::process::{ChildSet, Exit};
use crabby::{
    Block, Context, Error, ErrorKind, Flow, GraphView, Label, Rate, Result, Sample, Settings,
};
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A child's error message, cut to fit a pipe's buffer (64 KiB on Linux): the parent reads
/// the pipe only after the child ended, so a longer write would block the child forever.
fn clip(msg: &str) -> &str {
    const MAX: usize = 16 * 1024;
    if msg.len() <= MAX {
        return msg;
    }
    let mut end = MAX;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    &msg[..end]
}

/// Which child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Recorder,
    Display,
    Processing,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Recorder => "recorder",
            Kind::Display => "display",
            Kind::Processing => "processing",
        }
    }
}

#[derive(Debug)]
/// What the Block knows of one child beside its process (same index in `procs`).
struct Child {
    kind: Kind,
    reader: usize,
    /// Read end of the pipe on which the child writes why it failed.
    errors: std::fs::File,
    /// Whether its end was already checked (and reported if it failed).
    checked: bool,
}

struct Recording {
    folder: PathBuf,
    format: ImageFormat,
    period: u64,
    mode: ReadMode,
}

struct Display {
    sink: Box<dyn PreviewSink>,
    period: Duration,
}

/// A camera as a Block: opens the camera in `prepare`, makes the frame ring and forks its
/// children (recorder, display, processing), grabs frames into the ring in `step`, and stops
/// and reaps its children in `finish`.
///
/// - **Acquisition** runs in the Block's own process at the Block's rate (default: free
///   run, the camera paces itself). With a [software trigger](CameraBlock::software_trigger),
///   one frame is grabbed per received sample carrying the trigger label. Every label received
///   is latched and given to the camera ([`Camera::update_inputs`]).
/// - **Recorder** ([`record`](CameraBlock::record)): every `save_period`-th frame as a file
///   `<index:06>_<t(s):.3>.<ext>` plus one `metadata.csv` row; reads every frame by default
///   (the camera waits for the disk rather than losing frames). The folder is never reused:
///   if it exists, `<folder>_00001`, ... is used.
/// - **Display** ([`display`](CameraBlock::display)): the latest frame every `period`.
/// - **Processing** ([`process`](CameraBlock::process)): a [`FrameProcessor`] whose
///   results are sent on this Block's output links **by the processing child only** (a link
///   has one sender). Without processing, this Block sends `t(s)` and `frame` per frame.
///
/// A child that dies makes the next `step` fail (the test stops). Children are stopped and
/// reaped in `finish` (killed if they do not end within the grace period), before the
/// runtime closes the output links. Skipped and overrun frames are logged per child.
pub struct CameraBlock {
    camera: Box<dyn Camera>,
    settings: Vec<(String, SettingValue)>,
    trigger: Option<Label>,
    recording: Option<Recording>,
    display: Option<Display>,
    processor: Option<(Box<dyn FrameProcessor>, ReadMode)>,
    slots: Option<usize>,
    grace: Duration,
    // Set in prepare.
    ring: Option<FrameRing>,
    writer: Option<Writer>,
    children: Vec<Child>,
    /// The children's processes: reaping and the stop ladder are the core's `ChildSet`.
    procs: ChildSet,
    /// Options given before the child they apply to (the builder is order-independent).
    options: Options,
    latched: Sample,
    triggers: Triggers,
    labels: [Label; 2],
    record_folder: Option<PathBuf>,
}

/// Children's options, kept so that they apply whichever of `record`/`save_period`, ...
/// is called first.
#[derive(Debug, Clone, Copy)]
struct Options {
    save_period: u64,
    record_mode: ReadMode,
    process_mode: ReadMode,
}

/// Software triggers received and served (one frame each).
#[derive(Debug, Clone, Copy, Default)]
struct Triggers {
    received: u64,
    served: u64,
}

impl std::fmt::Debug for CameraBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl CameraBlock {
    /// A camera Block around `camera`.
    pub fn new(camera: impl Camera) -> Self {
        CameraBlock {
            camera: Box::new(camera),
            settings: Vec::new(),
            trigger: None,
            recording: None,
            display: None,
            processor: None,
            slots: None,
            grace: Duration::from_millis(1500),
            ring: None,
            writer: None,
            children: Vec::new(),
            procs: ChildSet::new(),
            options: Options {
                save_period: 1,
                record_mode: ReadMode::Every,
                process_mode: ReadMode::Every,
            },
            latched: Sample::new(),
            triggers: Triggers::default(),
            labels: [Label::new("t(s)"), Label::new("frame")],
            record_folder: None,
        }
    }

    /// Sets a camera setting after `open` (validated against the camera's description).
    pub fn setting(mut self, name: &str, value: impl Into<SettingValue>) -> Self {
        self.settings.push((name.to_owned(), value.into()));
        self
    }

    /// Grabs one frame per received sample carrying `label` (several triggers arrived
    /// between two loops give as many frames, one per loop; none is merged). Triggers not
    /// served when the test ends are logged.
    pub fn software_trigger(mut self, label: &str) -> Self {
        self.trigger = Some(Label::new(label));
        self
    }

    /// Records frames into `folder` (never reused: a numbered suffix is added if it exists).
    pub fn record(mut self, folder: impl Into<PathBuf>, format: ImageFormat) -> Self {
        self.recording = Some(Recording {
            folder: folder.into(),
            format,
            period: self.options.save_period,
            mode: self.options.record_mode,
        });
        self
    }

    /// Saves one frame out of `n` (default 1: every frame). Before or after `record`.
    pub fn save_period(mut self, n: u64) -> Self {
        self.options.save_period = n;
        if let Some(r) = &mut self.recording {
            r.period = n;
        }
        self
    }

    /// How the recorder reads the ring (default [`ReadMode::Every`]: no frame lost, the
    /// camera waits for the disk; [`ReadMode::EveryOrOverrun`]: the camera never waits and
    /// lost frames are counted). Before or after `record`.
    pub fn record_mode(mut self, mode: ReadMode) -> Self {
        self.options.record_mode = mode;
        if let Some(r) = &mut self.recording {
            r.mode = mode;
        }
        self
    }

    /// Shows the latest frame on `sink` every `period`.
    pub fn display(mut self, sink: impl PreviewSink, period: Duration) -> Self {
        self.display = Some(Display {
            sink: Box::new(sink),
            period,
        });
        self
    }

    /// Runs `processor` on the frames in a child process (every frame by default).
    pub fn process(mut self, processor: impl FrameProcessor) -> Self {
        self.processor = Some((Box::new(processor), self.options.process_mode));
        self
    }

    /// How the processing child reads the ring (default [`ReadMode::Every`]). Before or
    /// after `process`.
    pub fn process_mode(mut self, mode: ReadMode) -> Self {
        self.options.process_mode = mode;
        if let Some(p) = &mut self.processor {
            p.1 = mode;
        }
        self
    }

    /// Slots of the frame ring (default: children + 4).
    pub fn ring_slots(mut self, n: usize) -> Self {
        self.slots = Some(n);
        self
    }

    /// How long `finish` waits for the children to end before signalling them (default
    /// 1.5 s). The budget of the default: a step in progress when the test stops ends within
    /// ~0.3 s (ring wait ≤ 0.1 s, drivers' grab ≤ ~0.2 s), then 1.5 s of grace, 0.4 s after
    /// SIGTERM, 0.3 s after SIGKILL: 2.5 s, within the test's default 3 s finish grace with
    /// room for the camera's `close`. A longer grace needs a longer test finish grace.
    pub fn child_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The folder the recorder writes to (known after `prepare`).
    pub fn record_folder(&self) -> Option<&std::path::Path> {
        self.record_folder.as_deref()
    }

    /// Checks the children: an error if one ended with a failure (its message included).
    fn poll_children(&mut self, stopping: bool) -> Result<()> {
        self.procs.reap();
        let mut first = None;
        for (i, c) in self.children.iter_mut().enumerate() {
            let Some(exit) = self.procs.exit(i) else {
                continue;
            };
            if c.checked {
                continue;
            }
            c.checked = true;
            if exit != Exit::Code(0) {
                let mut msg = String::new();
                let _ = c.errors.read_to_string(&mut msg);
                let why = if msg.is_empty() {
                    exit.to_string()
                } else {
                    msg
                };
                let e = Error::new(
                    ErrorKind::BlockFailed,
                    format!(
                        "camera {} child (pid {}) failed: {why}",
                        c.kind.name(),
                        self.procs.pid(i)
                    ),
                );
                if first.is_none() {
                    first = Some(e);
                } else {
                    log::error!("{e}");
                }
            } else if !stopping && c.kind != Kind::Processing {
                log::warn!("camera {} child ended early", c.kind.name());
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The core's stop ladder for the children: up to the grace period for them to end,
    /// then SIGTERM, 0.4 s later SIGKILL until reaped. The first failure found is returned.
    fn reap_children(&mut self) -> Result<()> {
        self.procs.shutdown(self.grace, Duration::from_millis(400));
        self.poll_children(true)
    }

    fn log_stats(&self) {
        let Some(ring) = &self.ring else { return };
        let w = ring.writer_stats();
        log::info!(
            "camera: {} frames acquired; writer waited {} times ({:.1} ms) for every-frame readers",
            w.published,
            w.waits,
            w.wait_ns as f64 / 1e6
        );
        for c in &self.children {
            let s = ring.reader_stats(c.reader);
            let msg = format!(
                "camera {} child: {} frames read, {} skipped, {} overrun",
                c.kind.name(),
                s.read,
                s.skipped,
                s.overruns
            );
            if s.overruns > 0 {
                log::warn!("{msg}");
            } else {
                log::info!("{msg}");
            }
        }
    }

    /// Forks one child reading `reader`; the child runs `body` and leaves.
    fn fork_child(
        &mut self,
        kind: Kind,
        reader: usize,
        ctx: &mut Context,
        body: fn(&mut CameraBlock, Reader, &mut Context) -> Result<()>,
    ) -> Result<()> {
        let (rd, wr) = nix::unistd::pipe().map_err(|e| {
            Error::io(
                "cannot make a pipe for a camera child",
                std::io::Error::from(e),
            )
        })?;
        let ring = self.ring.clone().expect("ring made before forking");
        // The children are forked after the camera is opened and set (the ring is sized from
        // its format): a driver that started a thread in `open` or `set` makes the fork
        // unsafe, and the core's fork refuses it (checked before each fork).
        // The closure runs only in the child, which takes the write end and closes its copy
        // of the read end; here it only borrowed them.
        let (mut rd, mut wr) = (Some(rd), Some(wr));
        let mut procs = std::mem::take(&mut self.procs);
        let spawned = procs.spawn(format!("camera {} child", kind.name()), || {
            // The Block's SIGTERM handler (inherited) obeys only the coordinator; this child
            // obeys the camera Block, whose stop ladder sends SIGTERM.
            crabby::process::terminate_only_from_parent();
            drop(rd.take());
            let mut wr = std::fs::File::from(wr.take().expect("not yet taken"));
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                body(self, ring.reader(reader)?, ctx)
            }));
            match out {
                Ok(Ok(())) => 0,
                Ok(Err(e)) => {
                    let _ = std::io::Write::write_all(&mut wr, clip(&e.to_string()).as_bytes());
                    1
                }
                Err(p) => {
                    let m = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    std::mem::forget(p);
                    let _ = std::io::Write::write_all(
                        &mut wr,
                        clip(&format!("panicked: {m}")).as_bytes(),
                    );
                    2
                }
            }
        });
        self.procs = procs;
        drop(wr);
        let i = spawned.map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!(
                    "cannot fork the camera {} child: {} (camera {} may have started a thread in open() or set(): drivers must not start threads, see crabby::camera::Camera)",
                    kind.name(),
                    std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string()),
                    self.camera.name()
                ),
            )
        })?;
        ring.set_reader_pid(reader, self.procs.pid(i) as u32);
        self.children.push(Child {
            kind,
            reader,
            errors: std::fs::File::from(rd.take().expect("kept by the parent")),
            checked: false,
        });
        Ok(())
    }

    fn recorder_body(&mut self, mut reader: Reader, ctx: &mut Context) -> Result<()> {
        let rec = self.recording.as_ref().expect("recorder configured");
        let folder = self.record_folder.clone().expect("folder made in prepare");
        let mut saver = ImageSaver::new(folder, rec.format)?;
        let period = rec.period.max(1);
        let result = (|| loop {
            match reader.next(Duration::from_millis(200))? {
                Next::Frame(f) => {
                    if f.info().index % period == 0 {
                        let t = f.info().t_since(ctx.t0_ns().unwrap_or(0));
                        saver.save(f.info(), &f, t)?;
                    }
                }
                Next::Timeout => {}
                Next::Closed | Next::WriterGone | Next::Detached => return Ok(()),
            }
        })();
        reader.close();
        // The first error wins: a failed flush must not hide why saving stopped.
        let flushed = saver.flush();
        result.and(flushed)
    }

    fn display_body(&mut self, mut reader: Reader, ctx: &mut Context) -> Result<()> {
        let _ = ctx;
        let d = self.display.as_mut().expect("display configured");
        let mut last: Option<Instant> = None;
        let result = loop {
            // Read only when a frame is to be shown, so the reader's counts tell the truth:
            // `read` = shown, `skipped` = not shown. Slept in slices of 200 ms at most.
            if let Some(l) = last {
                let left = d.period.saturating_sub(l.elapsed());
                if !left.is_zero() {
                    std::thread::sleep(left.min(Duration::from_millis(200)));
                    continue;
                }
            }
            match reader.next(Duration::from_millis(200))? {
                Next::Frame(f) => {
                    last = Some(Instant::now());
                    let img = ImageView::of_frame(f.info(), &f)?;
                    if let Err(e) = d.sink.show(f.info(), &img) {
                        break Err(e);
                    }
                }
                Next::Timeout => {}
                Next::Closed | Next::WriterGone | Next::Detached => break Ok(()),
            }
        };
        reader.close();
        result
    }

    fn processing_body(&mut self, mut reader: Reader, ctx: &mut Context) -> Result<()> {
        let (p, _) = self.processor.as_mut().expect("processor configured");
        let result = loop {
            match reader.next(Duration::from_millis(200))? {
                Next::Frame(f) => {
                    let t = f.info().t_since(ctx.t0_ns().unwrap_or(0));
                    let img = ImageView::of_frame(f.info(), &f)?;
                    match p.process(f.info(), &img, t)? {
                        Processed::Send(s) => ctx.send(&s)?,
                        Processed::Nothing => {}
                        Processed::Stop => {
                            ctx.stop_test();
                            break Ok(());
                        }
                    }
                }
                Next::Timeout => {}
                Next::Closed | Next::WriterGone | Next::Detached => break Ok(()),
            }
        };
        reader.close();
        result
    }
}

impl Block for CameraBlock {
    fn kind(&self) -> &str {
        "Camera"
    }

    fn default_settings(&self) -> Settings {
        Settings::new().free_run()
    }

    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(match &self.processor {
            Some((p, _)) => p.output_labels(),
            None => self.labels.to_vec(),
        })
    }

    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        let origin = graph.name().to_owned();
        self.camera.check()?;
        if let Some(l) = &self.trigger {
            graph.require_label(l, "the software trigger")?;
        }
        if let Some(r) = &self.recording {
            if r.period == 0 {
                return Err(
                    Error::config("save_period must be at least 1 (1 = every frame)")
                        .with_origin(origin),
                );
            }
            if r.mode == ReadMode::Latest {
                log::warn!(
                    "{origin}: the recorder reads only the latest frame; frames will be skipped"
                );
            }
        }
        if let Some(d) = &self.display {
            if d.period.is_zero() {
                return Err(
                    Error::config("the display period must be above zero (e.g. 200 ms)")
                        .with_origin(origin),
                );
            }
        }
        if let Some((p, _)) = &self.processor {
            p.check().map_err(|e| e.with_origin(origin.clone()))?;
        }
        if let Some(n) = self.slots {
            let readers = self.recording.is_some() as usize
                + self.display.is_some() as usize
                + self.processor.is_some() as usize;
            if n < readers + 2 {
                return Err(Error::config(format!(
                    "ring_slots({n}) is too few for {readers} children: at least {}",
                    readers + 2
                ))
                .with_origin(origin));
            }
        }
        if let Rate::Hz(f) = graph.rate() {
            if f <= 0.0 {
                return Err(
                    Error::config("the camera frequency must be above zero").with_origin(origin)
                );
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let mut s = format!("camera {}", self.camera.name());
        for (n, v) in &self.settings {
            s.push_str(&format!(", {n}={v}"));
        }
        if let Some(t) = &self.trigger {
            s.push_str(&format!(", software trigger '{t}'"));
        }
        if let Some(r) = &self.recording {
            s.push_str(&format!(
                ", record {} as {:?} every {} frame(s) ({:?})",
                r.folder.display(),
                r.format,
                r.period,
                r.mode
            ));
        }
        if let Some(d) = &self.display {
            s.push_str(&format!(", display every {:?}", d.period));
        }
        if let Some((p, m)) = &self.processor {
            s.push_str(&format!(", processing {:?} ({m:?})", p.output_labels()));
        }
        s
    }

    fn prepare(&mut self, ctx: &mut Context) -> Result<()> {
        self.camera.open()?;
        for (name, value) in self.settings.clone() {
            apply_setting(&mut *self.camera, &name, &value)?;
        }
        let format = self.camera.format();
        let mut modes = Vec::new();
        let mut kinds = Vec::new();
        if let Some(r) = &self.recording {
            let folder = unique_folder(&r.folder)?;
            log::info!("camera: recording into {}", folder.display());
            // Listed among the run's files in the run documents.
            ctx.declare_file(folder.clone(), "images");
            self.record_folder = Some(folder);
            modes.push(r.mode);
            kinds.push(Kind::Recorder);
        }
        if self.display.is_some() {
            modes.push(ReadMode::Latest);
            kinds.push(Kind::Display);
        }
        if let Some((_, m)) = &self.processor {
            modes.push(*m);
            kinds.push(Kind::Processing);
        }
        let mut cfg = RingConfig::new(format, &modes);
        if let Some(n) = self.slots {
            cfg = cfg.slots(n);
        }
        let ring = FrameRing::new(&cfg)?;
        // The writer is taken before forking (a child exits without using its copy).
        self.writer = Some(ring.writer()?);
        self.ring = Some(ring);
        for (i, kind) in kinds.into_iter().enumerate() {
            let body: fn(&mut CameraBlock, Reader, &mut Context) -> Result<()> = match kind {
                Kind::Recorder => CameraBlock::recorder_body,
                Kind::Display => CameraBlock::display_body,
                Kind::Processing => CameraBlock::processing_body,
            };
            if let Err(e) = self.fork_child(kind, i, ctx, body) {
                // Kill what was already forked: nothing may outlive a failed prepare.
                self.procs.kill_all();
                self.procs = ChildSet::new();
                self.children.clear();
                return Err(e);
            }
        }
        Ok(())
    }

    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        self.poll_children(false)?;
        // Every sample, in order: each one carrying the trigger label asks for one frame
        // (N triggers between two loops give N frames, one per loop).
        let (trigger, latched, pending) = (&self.trigger, &mut self.latched, &mut self.triggers);
        let received = ctx.recv_each(|_, s| {
            latched.merge(&s);
            if trigger.as_ref().is_some_and(|l| s.contains(l)) {
                pending.received += 1;
            }
        });
        if received > 0 {
            self.camera.update_inputs(&self.latched);
        }
        if self.trigger.is_some() && self.triggers.received == self.triggers.served {
            // No trigger waiting: sleep until a sample arrives (no busy loop).
            ctx.wait(Duration::from_millis(20));
            return Ok(Flow::Continue);
        }
        let Some(writer) = self.writer.as_mut() else {
            return Err(Error::new(
                ErrorKind::Internal,
                "camera step before prepare",
            ));
        };
        // Waits here are short (≤ 100 ms, and drivers return within ~200 ms), so a step in
        // progress delays `finish` by at most ~0.3 s (see `child_grace` for the budget).
        let Some(mut slot) = writer.acquire(Duration::from_millis(100))? else {
            return Ok(Flow::Continue);
        };
        let start = Instant::now();
        let Some(info) = self.camera.grab(slot.buf())? else {
            // No frame: the slot keeps its old frame (grab wrote nothing, per the Camera
            // contract), and a driver that answers "nothing" at once does not make us spin.
            slot.abort_unwritten();
            if start.elapsed() < Duration::from_millis(1) {
                ctx.wait(Duration::from_millis(1));
            }
            return Ok(Flow::Continue);
        };
        slot.publish(info)?;
        if self.trigger.is_some() {
            self.triggers.served += 1;
        }
        if self.processor.is_none() && ctx.n_outputs() > 0 {
            let t = info.t_since(ctx.t0_ns().unwrap_or(info.timestamp_ns));
            ctx.send(
                &Sample::with_capacity(2)
                    .with(self.labels[0].clone(), t)
                    .with(self.labels[1].clone(), info.index),
            )?;
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        let _ = ctx;
        if let Some(w) = &self.writer {
            w.close();
        }
        if self.trigger.is_some() {
            let t = self.triggers;
            if t.served < t.received {
                log::warn!(
                    "camera: {} software triggers received, {} frames grabbed: {} not served before the end",
                    t.received,
                    t.served,
                    t.received - t.served
                );
            } else {
                log::info!("camera: {} software triggers, as many frames", t.received);
            }
        }
        let reaped = self.reap_children();
        self.log_stats();
        let closed = self.camera.close();
        reaped?;
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crabby::camera::{FrameFormat, FrameInfo, PixelFormat};

    struct Blank;
    impl Camera for Blank {
        fn format(&self) -> FrameFormat {
            FrameFormat::new(4, 4, PixelFormat::Mono8)
        }
        fn grab(&mut self, _buf: &mut [u8]) -> Result<Option<FrameInfo>> {
            Ok(None)
        }
    }

    struct Nothing;
    impl FrameProcessor for Nothing {
        fn output_labels(&self) -> Vec<Label> {
            vec![Label::new("t(s)")]
        }
        fn process(&mut self, _: &FrameInfo, _: &ImageView<'_>, _: f64) -> Result<Processed> {
            Ok(Processed::Nothing)
        }
    }

    #[test]
    fn options_apply_whatever_the_order() {
        let before = CameraBlock::new(Blank)
            .save_period(3)
            .record_mode(ReadMode::EveryOrOverrun)
            .process_mode(ReadMode::Latest)
            .record("imgs", ImageFormat::Raw)
            .process(Nothing);
        let after = CameraBlock::new(Blank)
            .record("imgs", ImageFormat::Raw)
            .process(Nothing)
            .save_period(3)
            .record_mode(ReadMode::EveryOrOverrun)
            .process_mode(ReadMode::Latest);
        let d = before.describe();
        assert!(d.contains("every 3 frame(s) (EveryOrOverrun)"), "{d}");
        assert!(d.contains("(Latest)"), "{d}");
        assert_eq!(d, after.describe());
    }

    #[test]
    fn long_child_errors_are_clipped_on_a_char_boundary() {
        let long = "é".repeat(20_000);
        let c = clip(&long);
        assert!(c.len() <= 16 * 1024 && !c.is_empty());
        assert_eq!(clip("short"), "short");
    }
}
