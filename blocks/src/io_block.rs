//! [`IOBlock`]: drives one [`InOut`] device (sensor, DAQ board, instrument).
//!
//! The constructor says what the Block may ask of the device, and takes only a device
//! whose type implements the matching capability traits: [`IOBlock::input`] ([`Input`]),
//! [`IOBlock::output`] ([`Output`]), [`IOBlock::input_output`] (both),
//! [`IOBlock::stream`] ([`Stream`]) and [`IOBlock::stream_output`] (`Stream + Output`).
//! The device is then held as an object that knows exactly those capabilities, and the
//! Block's `check` refuses, before anything is forked, a graph that asks for more (output
//! links to a device given with [`IOBlock::output`], command labels for one given with
//! [`IOBlock::input`]).
//!
//! It reads when it has output links (every loop, or only when a trigger label arrives),
//! writes commands when it has command labels (only when they change unless `spam`),
//! applies initial and exit commands, offsets the readings to zero at the start
//! (`make_zero`) for every device, and streams chunks as arrays in streamer mode. The
//! device's [`Status`] is logged when its state changes (and when a fault or alarm text
//! changes; not for every new text of a running device) and can be sent as a label; a
//! device error puts it in fault and ends the test through the normal cleanup.

use crate::reconnect::{Attempt, Reconnect, Reconnector};
use crabby::hardware::{Chunk, DeviceState, InOut, Input, Output, Reading, Status, Stream};
use crabby::{Block, Context, Error, ErrorKind, Flow, GraphView, Label, Result, Sample, Value};
use std::fmt;
use std::time::{Duration, Instant};

/// Turns a driver's error into the Block's: same kind, the device named in the description
/// (the run report shows descriptions under the Block's name).
pub(crate) fn device_failure(e: &Error, device: &str) -> Error {
    let dev = e.origin().unwrap_or(device);
    let mut text = e.to_string();
    // `to_string` starts with "origin: kind: "; keep the kind, name the device once.
    if let Some(rest) = text.strip_prefix(&format!("{dev}: ")) {
        text = rest.to_owned();
    }
    Error::new(e.kind(), format!("device '{dev}': {text}"))
}

/// Tracks a device's status as the Block reports it: the driver's own status when it knows
/// one, else what the Block saw (off, on, fault). Logs every change of state, and a new text
/// only for a fault or an alarm (a running device's text may hold live values: logging
/// them would flood the log at the Block's frequency).
#[derive(Debug)]
pub(crate) struct StatusTracker {
    device: String,
    tracked: Status,
    last_logged: Option<Status>,
    /// How many times the status was logged.
    logged: u64,
}

impl StatusTracker {
    pub(crate) fn new(device: &str) -> Self {
        StatusTracker {
            device: device.to_owned(),
            tracked: Status::off(),
            last_logged: None,
            logged: 0,
        }
    }

    /// Sets what the Block saw.
    pub(crate) fn set(&mut self, s: Status) {
        self.tracked = s;
    }

    /// The device's status: a fault seen by the Block wins, then the driver's, then the
    /// Block's own.
    pub(crate) fn current(&self, driver: Status) -> Status {
        if self.tracked.state == DeviceState::Fault {
            self.tracked.clone()
        } else if driver.state != DeviceState::Unknown {
            driver
        } else {
            self.tracked.clone()
        }
    }

    /// Logs the status if it changed; returns it.
    pub(crate) fn report(&mut self, driver: Status) -> Status {
        let s = self.current(driver);
        let changed = |l: &Status| {
            l.state != s.state
                || (matches!(s.state, DeviceState::Fault | DeviceState::Alarm) && l.text != s.text)
        };
        if self.last_logged.as_ref().is_none_or(changed) {
            self.logged += 1;
            match s.state {
                // The logger already names the Block.
                DeviceState::Fault => {
                    log::error!("device '{}' is in fault: {}", self.device, s.text)
                }
                DeviceState::Alarm => log::warn!("device '{}': {s}", self.device),
                _ => log::info!("device '{}': {s}", self.device),
            }
            self.last_logged = Some(s.clone());
        }
        s
    }

    /// Marks a fault from an error and returns the error to give back to the framework.
    pub(crate) fn fault(&mut self, e: Error, driver: Status) -> Error {
        let text = match driver.state {
            DeviceState::Fault if !driver.text.is_empty() => driver.text,
            _ => e.to_string(),
        };
        self.tracked = Status::fault(text);
        self.report(Status::unknown());
        device_failure(&e, &self.device)
    }
}

/// A device with the capabilities its [`IOBlock`] constructor proved: the function
/// pointers are taken from the device type's trait impls, so a capability is here exactly
/// when the type implements it and the constructor asked for it.
struct Typed<D> {
    dev: D,
    constructor: &'static str,
    read: Option<fn(&mut D) -> Result<Reading>>,
    write: Option<WriteFns<D>>,
    stream: Option<StreamFns<D>>,
}

struct WriteFns<D> {
    write: fn(&mut D, &[f64]) -> Result<()>,
    n_commands: fn(&D) -> Option<usize>,
}

struct StreamFns<D> {
    start: fn(&mut D) -> Result<()>,
    read: fn(&mut D) -> Result<Chunk>,
    stop: fn(&mut D) -> Result<()>,
}

impl<D: Output> WriteFns<D> {
    fn of() -> Self {
        WriteFns {
            write: D::write,
            n_commands: D::n_commands,
        }
    }
}

impl<D: Stream> StreamFns<D> {
    fn of() -> Self {
        StreamFns {
            start: D::start_stream,
            read: D::read_stream,
            stop: D::stop_stream,
        }
    }
}

/// The erased device an [`IOBlock`] holds.
trait Device: Send {
    fn base(&self) -> &dyn InOut;
    fn base_mut(&mut self) -> &mut dyn InOut;
    /// The constructor that built the Block (`IOBlock::input`...), for messages.
    fn constructor(&self) -> &'static str;
    fn can_read(&self) -> bool;
    fn can_write(&self) -> bool;
    fn can_stream(&self) -> bool;
    fn n_commands(&self) -> Option<usize>;
    fn read(&mut self) -> Result<Reading>;
    fn write(&mut self, cmd: &[f64]) -> Result<()>;
    fn start_stream(&mut self) -> Result<()>;
    fn read_stream(&mut self) -> Result<Chunk>;
    fn stop_stream(&mut self) -> Result<()>;
}

impl<D: InOut> Typed<D> {
    /// The error for a call the Block's `check` should have refused.
    fn missing(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::Internal,
            format!(
                "device '{}' was given with {}, which cannot {what}; the Block's check should have refused this graph",
                self.dev.name(),
                self.constructor
            ),
        )
    }
}

impl<D: InOut> Device for Typed<D> {
    fn base(&self) -> &dyn InOut {
        &self.dev
    }
    fn base_mut(&mut self) -> &mut dyn InOut {
        &mut self.dev
    }
    fn constructor(&self) -> &'static str {
        self.constructor
    }
    fn can_read(&self) -> bool {
        self.read.is_some()
    }
    fn can_write(&self) -> bool {
        self.write.is_some()
    }
    fn can_stream(&self) -> bool {
        self.stream.is_some()
    }
    fn n_commands(&self) -> Option<usize> {
        self.write.as_ref().and_then(|w| (w.n_commands)(&self.dev))
    }
    fn read(&mut self) -> Result<Reading> {
        match self.read {
            Some(f) => f(&mut self.dev),
            None => Err(self.missing("read")),
        }
    }
    fn write(&mut self, cmd: &[f64]) -> Result<()> {
        match &self.write {
            Some(w) => (w.write)(&mut self.dev, cmd),
            None => Err(self.missing("take commands")),
        }
    }
    fn start_stream(&mut self) -> Result<()> {
        match &self.stream {
            Some(s) => (s.start)(&mut self.dev),
            None => Err(self.missing("stream")),
        }
    }
    fn read_stream(&mut self) -> Result<Chunk> {
        match &self.stream {
            Some(s) => (s.read)(&mut self.dev),
            None => Err(self.missing("stream")),
        }
    }
    fn stop_stream(&mut self) -> Result<()> {
        match &self.stream {
            Some(s) => (s.stop)(&mut self.dev),
            None => Err(self.missing("stream")),
        }
    }
}

/// The device of an [`IOBlock`], erased.
struct Erased(Box<dyn Device>);

impl Erased {
    fn new<D: InOut>(
        dev: D,
        constructor: &'static str,
        read: Option<fn(&mut D) -> Result<Reading>>,
        write: Option<WriteFns<D>>,
        stream: Option<StreamFns<D>>,
    ) -> Self {
        Erased(Box::new(Typed {
            dev,
            constructor,
            read,
            write,
            stream,
        }))
    }
    fn name(&self) -> &str {
        self.0.base().name()
    }
    fn channels(&self) -> Vec<String> {
        self.0.base().channels()
    }
    fn check(&self) -> Result<()> {
        self.0.base().check()
    }
    fn open(&mut self) -> Result<()> {
        self.0.base_mut().open()
    }
    fn close(&mut self) -> Result<()> {
        self.0.base_mut().close()
    }
    fn status(&self) -> Status {
        self.0.base().status()
    }
}

impl std::ops::Deref for Erased {
    type Target = dyn Device;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::ops::DerefMut for Erased {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.0
    }
}

impl fmt::Debug for Erased {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.name())
            .field("constructor", &self.0.constructor())
            .finish()
    }
}

/// How long after the `make_zero` delay a device that gave no reading at all is declared
/// silent, s.
pub const MAKE_ZERO_MARGIN_S: f64 = 5.0;

/// Per-channel sums of the finite values read during `make_zero`.
#[derive(Debug)]
struct ZeroAccumulator {
    sum: Vec<f64>,
    count: Vec<usize>,
    /// Readings seen (finite or not).
    readings: usize,
}

impl ZeroAccumulator {
    fn new(n: usize) -> Self {
        ZeroAccumulator {
            sum: vec![0.0; n],
            count: vec![0; n],
            readings: 0,
        }
    }

    /// Adds one reading (one value per channel; extra values are ignored).
    fn add(&mut self, values: impl Iterator<Item = f64>) {
        self.readings += 1;
        for ((s, c), v) in self.sum.iter_mut().zip(&mut self.count).zip(values) {
            if v.is_finite() {
                *s += v;
                *c += 1;
            }
        }
    }

    /// The mean of each channel; an error naming the channels that had no finite value.
    fn means(&self, labels: &[Label], device: &str) -> Result<Vec<f64>> {
        let bad: Vec<&str> = labels
            .iter()
            .zip(&self.count)
            .filter(|(_, &c)| c == 0)
            .map(|(l, _)| l.as_str())
            .collect();
        if !bad.is_empty() {
            return Err(Error::new(
                ErrorKind::Hardware,
                format!(
                    "make_zero: device '{device}' read no finite value on {bad:?} in {} readings (overload or disconnected input?); fix the input or remove make_zero",
                    self.readings
                ),
            ));
        }
        Ok(self
            .sum
            .iter()
            .zip(&self.count)
            .map(|(s, &c)| s / c as f64)
            .collect())
    }
}

/// Drives one [`InOut`] device.
///
/// - **Reading** (it has output links): every loop, or only when `trigger_label` arrives,
///   reads the device and sends `t(s)` (the device's timestamp relative to the common start)
///   and one label per channel (the device's [`InOut::channels`], or [`labels`](Self::labels)).
/// - **Writing** ([`cmd_labels`](Self::cmd_labels)): once every command label has been
///   received, calls [`Output::write`] with their latest values in order, only when they
///   change (or every loop with [`spam`](Self::spam)).
/// - **Streamer mode** ([`stream`](Self::stream), [`stream_output`](Self::stream_output)):
///   sends each chunk as arrays: `t(s)` and one array per channel.
/// - [`make_zero`](Self::make_zero): in `prepare`, averages the readings for the given time
///   and subtracts that from every later reading, for any device (non-finite values left
///   out; a test stopped meanwhile interrupts it; a device silent for the delay plus
///   [`MAKE_ZERO_MARGIN_S`] is a timeout). It needs output links (checked).
/// - While the test is paused ([`Context::paused`]) no command change is written: the
///   device keeps its last command; readings go on.
/// - [`initial_cmd`](Self::initial_cmd) is written in `prepare`, [`exit_cmd`](Self::exit_cmd)
///   in `finish` (whatever ended the test), before closing.
///
/// ```no_run
/// use crabby::{Settings, Test};
/// use crabby_blocks::IOBlock;
/// # use crabby::hardware::{InOut, Input, Reading};
/// # struct Thermo;
/// # impl InOut for Thermo {
/// #     fn channels(&self) -> Vec<String> { vec!["T(C)".into()] }
/// # }
/// # impl Input for Thermo {
/// #     fn read(&mut self) -> crabby::Result<Reading> { Ok(Reading::now(vec![20.0])) }
/// # }
/// let mut test = Test::new("thermo");
/// let io = test.add_with(IOBlock::input(Thermo).make_zero(0.5), Settings::new().freq(50.0));
/// ```
#[derive(Debug)]
pub struct IOBlock {
    device: Erased,
    labels: Option<Vec<Label>>,
    time_label: Label,
    cmd_labels: Vec<Label>,
    trigger_label: Option<Label>,
    streamer: bool,
    initial_cmd: Option<Vec<f64>>,
    exit_cmd: Option<Vec<f64>>,
    make_zero: Option<f64>,
    spam: bool,
    status_label: Option<Label>,
    reconnect: Option<Reconnect>,
    // Run time.
    link: Reconnector,
    out_labels: Vec<Label>,
    reading: bool,
    offsets: Vec<f64>,
    known: Vec<Option<f64>>,
    last_cmd: Option<Vec<f64>>,
    warned_missing: bool,
    opened: bool,
    streaming: bool,
    tracker: StatusTracker,
    t0_ns: u64,
}

impl IOBlock {
    /// An IOBlock that reads `device` (a sensor).
    pub fn input<D: Input>(device: D) -> Self {
        Self::with(
            Erased::new(device, "IOBlock::input", Some(D::read), None, None),
            false,
        )
    }

    /// An IOBlock that writes commands to `device` and never reads it (it has no output
    /// link).
    pub fn output<D: Output>(device: D) -> Self {
        Self::with(
            Erased::new(device, "IOBlock::output", None, Some(WriteFns::of()), None),
            false,
        )
    }

    /// An IOBlock that reads `device` and writes commands to it.
    pub fn input_output<D: Input + Output>(device: D) -> Self {
        Self::with(
            Erased::new(
                device,
                "IOBlock::input_output",
                Some(D::read),
                Some(WriteFns::of()),
                None,
            ),
            false,
        )
    }

    /// An IOBlock in streamer mode: starts the stream of `device` and sends each chunk as
    /// arrays, `t(s)` and one array per channel.
    pub fn stream<D: Stream>(device: D) -> Self {
        Self::with(
            Erased::new(device, "IOBlock::stream", None, None, Some(StreamFns::of())),
            true,
        )
    }

    /// An IOBlock in streamer mode that also writes commands to `device`.
    pub fn stream_output<D: Stream + Output>(device: D) -> Self {
        Self::with(
            Erased::new(
                device,
                "IOBlock::stream_output",
                None,
                Some(WriteFns::of()),
                Some(StreamFns::of()),
            ),
            true,
        )
    }

    fn with(device: Erased, streamer: bool) -> Self {
        let tracker = StatusTracker::new(device.name());
        IOBlock {
            device,
            labels: None,
            time_label: Label::new("t(s)"),
            cmd_labels: Vec::new(),
            trigger_label: None,
            streamer,
            initial_cmd: None,
            exit_cmd: None,
            make_zero: None,
            spam: false,
            status_label: None,
            reconnect: None,
            link: Reconnector::new(None),
            out_labels: Vec::new(),
            reading: false,
            offsets: Vec::new(),
            known: Vec::new(),
            last_cmd: None,
            warned_missing: false,
            opened: false,
            streaming: false,
            tracker,
            t0_ns: 0,
        }
    }

    /// Labels of the values read, one per channel (default: the device's channels).
    pub fn labels<S: Into<Label>>(mut self, labels: impl IntoIterator<Item = S>) -> Self {
        self.labels = Some(labels.into_iter().map(Into::into).collect());
        self
    }
    /// The time label (default `t(s)`).
    pub fn time_label(mut self, l: impl Into<Label>) -> Self {
        self.time_label = l.into();
        self
    }
    /// Labels whose latest values form the command, in order.
    pub fn cmd_labels<S: Into<Label>>(mut self, labels: impl IntoIterator<Item = S>) -> Self {
        self.cmd_labels = labels.into_iter().map(Into::into).collect();
        self
    }
    /// Reads only when this label arrives.
    pub fn trigger_label(mut self, l: impl Into<Label>) -> Self {
        self.trigger_label = Some(l.into());
        self
    }
    /// Command written in `prepare`, right after opening.
    pub fn initial_cmd(mut self, cmd: impl Into<Vec<f64>>) -> Self {
        self.initial_cmd = Some(cmd.into());
        self
    }
    /// Command written in `finish`, before closing, whatever ended the test.
    pub fn exit_cmd(mut self, cmd: impl Into<Vec<f64>>) -> Self {
        self.exit_cmd = Some(cmd.into());
        self
    }
    /// Averages the readings for `seconds` in `prepare` and subtracts the mean afterwards.
    pub fn make_zero(mut self, seconds: f64) -> Self {
        self.make_zero = Some(seconds);
        self
    }
    /// Writes the command every loop, not only when it changes.
    pub fn spam(mut self, yes: bool) -> Self {
        self.spam = yes;
        self
    }
    /// Also sends the device's status as text under this label (with every reading, or
    /// every chunk in streamer mode).
    pub fn status_label(mut self, l: impl Into<Label>) -> Self {
        self.status_label = Some(l.into());
        self
    }

    /// When the device is lost mid-test (an error of kind
    /// [`Communication`](ErrorKind::Communication): the port vanished), closes it and opens
    /// it again after `backoff` (doubling after each failed opening, bounded), at most
    /// `attempts` openings over the test, instead of failing the Block (the default). No
    /// sample is sent while it is down (a gap in the data, logged); as it is opened again
    /// the latest command written (from the command labels, else
    /// [`initial_cmd`](Self::initial_cmd)) is written again, even while paused (a device
    /// reset meanwhile gets back what it had), and in streamer mode the stream restarted. The
    /// losses, reconnections and failed attempts are counted in the run report. See
    /// [`crate::reconnect`].
    pub fn reconnect(mut self, attempts: u32, backoff: Duration) -> Self {
        self.reconnect = Some(Reconnect::new(attempts, backoff));
        self
    }

    /// The device's name.
    pub fn device_name(&self) -> &str {
        self.device.name()
    }

    /// The offsets subtracted from each channel (empty until `make_zero` ran).
    pub fn offsets(&self) -> &[f64] {
        &self.offsets
    }

    fn value_labels(&self) -> Vec<Label> {
        match &self.labels {
            Some(l) => l.clone(),
            None => self
                .device
                .channels()
                .into_iter()
                .map(Label::from)
                .collect(),
        }
    }

    fn cfg_err(&self, msg: String) -> Error {
        Error::config(msg)
    }

    fn check_cmd_len(&self, what: &str, cmd: &Option<Vec<f64>>) -> Result<()> {
        if let Some(c) = cmd {
            let want = self.device.n_commands().or(if self.cmd_labels.is_empty() {
                None
            } else {
                Some(self.cmd_labels.len())
            });
            if let Some(n) = want {
                if c.len() != n {
                    return Err(self.cfg_err(format!(
                        "{what} has {} values but device '{}' takes {n} command values",
                        c.len(),
                        self.device.name()
                    )));
                }
            }
            if !self.device.can_write() {
                return Err(self.cfg_err(format!(
                    "{what} is set but device '{}' takes no command (it was given with {}; use IOBlock::input_output or IOBlock::stream_output, for a device that implements Output)",
                    self.device.name(),
                    self.device.constructor()
                )));
            }
        }
        Ok(())
    }

    fn send_reading(&mut self, ctx: &mut Context, r: Reading) -> Result<()> {
        if r.values.len() != self.out_labels.len() {
            return Err(Error::new(
                ErrorKind::Configuration,
                format!(
                    "device '{}' returned {} values but {} labels are set ({:?}); give one label per channel",
                    self.device.name(),
                    r.values.len(),
                    self.out_labels.len(),
                    self.out_labels
                ),
            ));
        }
        let mut s = Sample::with_capacity(self.out_labels.len() + 2);
        s.insert(self.time_label.clone(), self.rel_t(r.t_ns));
        for (i, (l, v)) in self.out_labels.iter().zip(r.values).enumerate() {
            s.insert(l.clone(), v - self.offsets.get(i).copied().unwrap_or(0.0));
        }
        if let Some(sl) = &self.status_label {
            let st = self.tracker.current(self.device.status());
            s.insert(sl.clone(), st.to_string());
        }
        ctx.send(&s)
    }

    /// Sends the samples of a chunk measured at or after `from_ns`, as arrays.
    fn send_chunk(&mut self, ctx: &mut Context, mut c: Chunk, from_ns: u64) -> Result<()> {
        c.validate(self.device.name())?;
        if c.channels.len() != self.out_labels.len() {
            return Err(Error::config(format!(
                "device '{}' streams {} channels but {} labels are set",
                self.device.name(),
                c.channels.len(),
                self.out_labels.len()
            )));
        }
        let skip = c.t_ns.iter().take_while(|&&t| t < from_ns).count();
        if skip > 0 {
            c.t_ns.drain(..skip);
            for ch in &mut c.channels {
                ch.drain(..skip);
            }
        }
        if c.is_empty() {
            return Ok(());
        }
        let mut s = Sample::with_capacity(self.out_labels.len() + 2);
        let ts: Vec<f64> = c.t_ns.iter().map(|&t| self.rel_t(t)).collect();
        s.insert(self.time_label.clone(), Value::Array(ts));
        for (i, (l, ch)) in self.out_labels.iter().zip(c.channels).enumerate() {
            let off = self.offsets.get(i).copied().unwrap_or(0.0);
            let vals = if off == 0.0 {
                ch
            } else {
                ch.into_iter().map(|v| v - off).collect()
            };
            s.insert(l.clone(), Value::Array(vals));
        }
        if let Some(sl) = &self.status_label {
            let st = self.tracker.current(self.device.status());
            s.insert(sl.clone(), st.to_string());
        }
        ctx.send(&s)
    }

    /// `finish` with the device lost and not back: one more opening to write the exit
    /// command, if there is one (a heater left on would be worse than a failed opening).
    fn finish_down(&mut self) -> Result<()> {
        let Some(c) = self.exit_cmd.clone() else {
            log::warn!(
                "device '{}' was still disconnected at the end",
                self.device.name()
            );
            return Ok(());
        };
        let r = self
            .device
            .open()
            .and_then(|()| self.device.write(&c))
            .and_then(|()| self.device.close());
        match r {
            Ok(()) => {
                log::info!("device '{}' reopened to write exit_cmd", self.device.name());
                Ok(())
            }
            Err(e) => {
                let _ = self.device.close();
                log::error!("device '{}' was disconnected at the end and exit_cmd could not be written: {e}", self.device.name());
                Err(device_failure(&e, self.device.name()))
            }
        }
    }

    fn rel_t(&self, t_ns: u64) -> f64 {
        (t_ns as i64 - self.t0_ns as i64) as f64 * 1e-9
    }

    /// Averages the readings for `seconds` into the offsets. Returns `Ok(false)` if the
    /// test was stopped meanwhile (Ctrl+C, another Block failed): the Block then goes
    /// straight to `finish` (exit command, close). Non-finite values (an overloaded input
    /// reading NaN) are left out of the mean, channel by channel; a channel with no finite
    /// value is an error, and so is a device that gives no reading at all within
    /// `seconds` + [`MAKE_ZERO_MARGIN_S`] ([`ErrorKind::Timeout`]).
    fn do_make_zero(&mut self, ctx: &Context, seconds: f64) -> Result<bool> {
        let n = self.out_labels.len();
        let mut acc = ZeroAccumulator::new(n);
        let start = crabby::time::monotonic_ns();
        let end = start + (seconds * 1e9) as u64;
        let deadline = end + (MAKE_ZERO_MARGIN_S * 1e9) as u64;
        let use_stream = !self.device.can_read();
        if use_stream {
            self.device.start_stream()?;
            self.streaming = true;
        }
        loop {
            if ctx.stopping() {
                log::info!("the test is stopping: make_zero interrupted");
                return Ok(false);
            }
            if use_stream {
                let c = self.device.read_stream()?;
                c.validate(self.device.name())?;
                for i in 0..c.len() {
                    acc.add(c.channels.iter().map(|ch| ch[i]));
                }
                std::thread::sleep(Duration::from_millis(5));
            } else {
                let r = self.device.read()?;
                acc.add(r.values.iter().copied());
                // At most 1 kHz: enough readings for a mean without spinning on a fast device.
                std::thread::sleep(Duration::from_millis(1));
            }
            let now = crabby::time::monotonic_ns();
            if now >= end && acc.readings > 0 {
                break;
            }
            if now >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no samples during make_zero: device '{}' gave no reading in {:.1} s; check that it is acquiring (for a stream: its sample rate and trigger)",
                        self.device.name(),
                        (now - start) as f64 * 1e-9
                    ),
                ));
            }
        }
        self.offsets = acc.means(&self.out_labels, self.device.name())?;
        log::info!(
            "device '{}': zero offsets {:?} from {} readings",
            self.device.name(),
            self.offsets,
            acc.readings
        );
        Ok(true)
    }

    /// Receives the latest samples and keeps the latest value of each command label.
    fn receive(&mut self, ctx: &mut Context) -> Result<Sample> {
        let received = if ctx.n_inputs() > 0 {
            ctx.recv_latest(false)
        } else {
            Sample::new()
        };
        for (i, l) in self.cmd_labels.iter().enumerate() {
            if let Some(v) = received.get(l.as_str()) {
                let f = v.as_f64().ok_or_else(|| {
                    Error::config(format!("command label '{l}' carries {v:?}, not a number"))
                })?;
                self.known[i] = Some(f);
            }
        }
        Ok(received)
    }

    fn step_inner(&mut self, ctx: &mut Context) -> Result<()> {
        let received = self.receive(ctx)?;
        if !self.cmd_labels.is_empty() {
            if self.known.iter().all(Option::is_some) {
                let cmd: Vec<f64> = self.known.iter().map(|v| v.unwrap_or(0.0)).collect();
                // Paused: the device keeps its last command (written again after the resume
                // if it changed meanwhile).
                if !ctx.paused() && (self.spam || self.last_cmd.as_ref() != Some(&cmd)) {
                    self.device.write(&cmd)?;
                    self.last_cmd = Some(cmd);
                }
            } else if !self.warned_missing && !received.is_empty() {
                let missing: Vec<&str> = self
                    .cmd_labels
                    .iter()
                    .zip(&self.known)
                    .filter(|(_, k)| k.is_none())
                    .map(|(l, _)| l.as_str())
                    .collect();
                log::warn!("no command written yet: waiting for labels {missing:?}");
                self.warned_missing = true;
            }
        }
        if self.reading {
            if let Some(t) = &self.trigger_label {
                if !received.contains(t.as_str()) {
                    return Ok(());
                }
            }
            if self.streamer {
                let c = self.device.read_stream()?;
                self.send_chunk(ctx, c, 0)?;
            } else {
                let r = self.device.read()?;
                self.send_reading(ctx, r)?;
            }
        }
        Ok(())
    }
}

impl IOBlock {
    /// A loop while the device is down: keeps the latest commands, and opens the device
    /// again when the back-off has passed (writing the latest command again, restarting the
    /// stream; a command that changed meanwhile is written at the next loop).
    fn step_down(&mut self, ctx: &mut Context) -> Result<Flow> {
        self.receive(ctx)?;
        let now = Instant::now();
        if !self.link.due(now) {
            return Ok(Flow::Continue);
        }
        let restream = self.streaming;
        // The latest command, written as part of the reopening: the command labels' newest
        // values (while paused: the last command written, as a pause changes no command),
        // else initial_cmd. Also while paused: a device reset by the loss gets back what it
        // had, not its default.
        let newest =
            (!self.cmd_labels.is_empty() && self.known.iter().all(Option::is_some)).then(|| {
                self.known
                    .iter()
                    .map(|v| v.unwrap_or(0.0))
                    .collect::<Vec<f64>>()
            });
        let from_labels = if ctx.paused() {
            self.last_cmd.clone()
        } else {
            newest.or_else(|| self.last_cmd.clone())
        };
        let latest = from_labels.clone().or_else(|| self.initial_cmd.clone());
        let r = self.device.open().and_then(|()| {
            if let Some(c) = &latest {
                self.device.write(c)?;
            }
            if restream {
                self.device.start_stream()
            } else {
                Ok(())
            }
        });
        if r.is_err() {
            // Whatever the opening left half open.
            let _ = self.device.close();
        }
        match self.link.attempted(r, self.device.name(), now) {
            Ok(Attempt::Reconnected) => {
                self.opened = true;
                self.last_cmd = from_labels;
                self.tracker.set(Status::on(""));
                self.tracker.report(self.device.status());
            }
            Ok(Attempt::Waiting) => {}
            Err(e) => return Err(self.tracker.fault(e, Status::unknown())),
        }
        Ok(Flow::Continue)
    }
}

impl Block for IOBlock {
    fn kind(&self) -> &str {
        "IOBlock"
    }

    fn device(&self) -> Option<String> {
        Some(self.device_name().to_owned())
    }

    fn output_labels(&self) -> Option<Vec<Label>> {
        let mut v = vec![self.time_label.clone()];
        v.extend(self.value_labels());
        if let Some(s) = &self.status_label {
            v.push(s.clone());
        }
        Some(v)
    }

    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        self.device
            .check()
            .map_err(|e| device_failure(&e, self.device.name()))?;
        let dev = self.device.name();
        let ctor = self.device.constructor();
        let labels = self.value_labels();
        if graph.n_outputs() > 0 {
            if self.streamer && !self.device.can_stream()
                || !self.streamer && !self.device.can_read()
            {
                return Err(self.cfg_err(format!(
                    "the Block has output links but device '{dev}' cannot read (it was given with {ctor}, which only writes); remove the links, or give a device that implements Input with IOBlock::input_output"
                )));
            }
            if labels.is_empty() {
                return Err(self.cfg_err(format!(
                    "device '{dev}' declares no channel labels; give them with IOBlock::labels([...])"
                )));
            }
            let channels = self.device.channels();
            if let Some(given) = &self.labels {
                if !channels.is_empty() && given.len() != channels.len() {
                    return Err(self.cfg_err(format!(
                        "parameter 'labels' gives {} labels {given:?} but device '{dev}' has {} channels {channels:?}; give one label per channel",
                        given.len(),
                        channels.len()
                    )));
                }
            }
            if labels.contains(&self.time_label) {
                return Err(self.cfg_err(format!(
                    "label '{}' is both the time label and a channel label",
                    self.time_label
                )));
            }
            if let Some(sl) = &self.status_label {
                if *sl == self.time_label || labels.contains(sl) {
                    return Err(self.cfg_err(format!(
                        "status_label '{sl}' is also the time label or a channel label; give it another name"
                    )));
                }
            }
        } else if self.make_zero.is_some() {
            return Err(self.cfg_err(format!(
                "make_zero is set but the Block has no output links, so device '{dev}' is never read; link the Block to another or remove make_zero"
            )));
        }
        if let Some(z) = self.make_zero {
            if !(z.is_finite() && z > 0.0 && z <= 600.0) {
                return Err(self.cfg_err(format!(
                    "make_zero delay is {z} s; it must be above 0 and at most 600 s"
                )));
            }
        }
        if !self.cmd_labels.is_empty() {
            if !self.device.can_write() {
                return Err(self.cfg_err(format!(
                    "cmd_labels {:?} are set but device '{dev}' takes no command (it was given with {ctor}); use IOBlock::input_output or IOBlock::stream_output, for a device that implements Output",
                    self.cmd_labels
                )));
            }
            if let Some(n) = self.device.n_commands() {
                if n != self.cmd_labels.len() {
                    return Err(self.cfg_err(format!(
                        "{} cmd_labels {:?} but device '{dev}' takes {n} command values; give one label per value",
                        self.cmd_labels.len(),
                        self.cmd_labels
                    )));
                }
            }
            for l in &self.cmd_labels {
                graph.require_label(l, &format!("IOBlock command (device '{dev}')"))?;
            }
        }
        if let Some(t) = &self.trigger_label {
            graph.require_label(t, "IOBlock trigger_label")?;
        }
        self.check_cmd_len("initial_cmd", &self.initial_cmd)?;
        self.check_cmd_len("exit_cmd", &self.exit_cmd)?;
        if let Some(r) = &self.reconnect {
            r.check()?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "device={} ({}), labels={:?}, cmd_labels={:?}, trigger={:?}, streamer={}, make_zero={:?}, spam={}, reconnect={:?}",
            self.device.name(),
            self.device.constructor(),
            self.value_labels(),
            self.cmd_labels,
            self.trigger_label,
            self.streamer,
            self.make_zero,
            self.spam,
            self.reconnect
        )
    }

    fn prepare(&mut self, ctx: &mut Context) -> Result<()> {
        self.link = Reconnector::new(self.reconnect);
        self.out_labels = self.value_labels();
        self.reading = ctx.n_outputs() > 0;
        self.known = vec![None; self.cmd_labels.len()];
        let r = (|| {
            self.device.open()?;
            self.opened = true;
            self.tracker.set(Status::on(""));
            if let Some(c) = self.initial_cmd.clone() {
                self.device.write(&c)?;
            }
            if let (Some(z), true) = (self.make_zero, self.reading) {
                if !self.do_make_zero(ctx, z)? {
                    // Stopping: nothing more to prepare; finish writes exit_cmd and closes.
                    return Ok(());
                }
            }
            if self.streamer && self.reading && !self.streaming {
                self.device.start_stream()?;
                self.streaming = true;
            }
            Ok(())
        })();
        match r {
            Ok(()) => {
                self.tracker.report(self.device.status());
                Ok(())
            }
            Err(e) => Err(self.tracker.fault(e, self.device.status())),
        }
    }

    fn begin(&mut self, ctx: &mut Context) -> Result<()> {
        self.t0_ns = ctx.t0_ns().unwrap_or_else(crabby::time::monotonic_ns);
        if self.streaming {
            // Samples acquired before the start (during make_zero or the barrier) are not
            // part of the test: only those measured from t0 on are sent.
            let t0 = self.t0_ns;
            let r = self
                .device
                .read_stream()
                .and_then(|c| self.send_chunk(ctx, c, t0));
            if let Err(e) = r {
                return Err(self.tracker.fault(e, self.device.status()));
            }
        }
        Ok(())
    }

    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if self.link.is_down() {
            return self.step_down(ctx);
        }
        match self.step_inner(ctx) {
            Ok(()) => {
                self.tracker.report(self.device.status());
                Ok(Flow::Continue)
            }
            Err(e) if e.kind() == ErrorKind::Configuration && e.origin().is_none() => Err(e),
            Err(e) => {
                if self.link.lost(&e, self.device.name(), Instant::now()) {
                    // Closed now (best effort: the link is what failed); opened again by
                    // `step_down` after the back-off.
                    if let Err(c) = self.device.close() {
                        log::debug!("closing the lost device: {c}");
                    }
                    self.opened = false;
                    self.tracker.set(Status::new(
                        DeviceState::Alarm,
                        format!("connection lost ({e}); reconnecting"),
                    ));
                    self.tracker.report(Status::unknown());
                    return Ok(Flow::Continue);
                }
                Err(self.tracker.fault(e, self.device.status()))
            }
        }
    }

    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        self.link.report(ctx, self.device.name());
        if self.link.is_down() {
            return self.finish_down();
        }
        if !self.opened {
            return Ok(());
        }
        let mut errors: Vec<(Error, &str)> = Vec::new();
        if self.streaming {
            if let Err(e) = self.device.stop_stream() {
                errors.push((e, "stopping the stream"));
            }
            self.streaming = false;
        }
        if let Some(c) = self.exit_cmd.clone() {
            if let Err(e) = self.device.write(&c) {
                errors.push((e, "writing exit_cmd"));
            }
        }
        if let Err(e) = self.device.close() {
            errors.push((e, "closing"));
        }
        let mut first: Option<Error> = None;
        for (e, what) in errors {
            log::error!("{what}: {e}");
            if first.is_none() {
                first = Some(device_failure(&e, self.device.name()));
            }
        }
        self.opened = false;
        if self.tracker.tracked.state != DeviceState::Fault {
            self.tracker.set(Status::off());
        }
        self.tracker.report(Status::unknown());
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dev;
    impl InOut for Dev {
        fn name(&self) -> &str {
            "dev"
        }
    }
    impl Input for Dev {
        fn read(&mut self) -> Result<Reading> {
            Ok(Reading::new(1, vec![]))
        }
    }
    impl Output for Dev {
        fn n_commands(&self) -> Option<usize> {
            Some(1)
        }
        fn write(&mut self, _: &[f64]) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn device_failure_names_the_device_once() {
        let e = crabby::hardware::device_error(ErrorKind::Timeout, "dmm", "no answer");
        let f = device_failure(&e, "x");
        assert_eq!(f.kind(), ErrorKind::Timeout);
        assert_eq!(f.description(), "device 'dmm': timeout: no answer");
        assert!(f.origin().is_none());
    }

    #[test]
    fn status_tracker_prefers_fault_then_driver() {
        let mut t = StatusTracker::new("d");
        assert_eq!(t.current(Status::unknown()).state, DeviceState::Off);
        t.set(Status::on(""));
        assert_eq!(t.current(Status::moving("x")).state, DeviceState::Moving);
        let e = t.fault(Error::communication("gone"), Status::unknown());
        assert!(e.description().contains("gone"));
        assert_eq!(t.current(Status::on("")).state, DeviceState::Fault);
    }

    #[test]
    fn status_tracker_logs_state_changes_not_live_texts() {
        let mut t = StatusTracker::new("furnace");
        t.set(Status::on(""));
        // A running device whose text holds a live value: 100 reports, logged once.
        for i in 0..100 {
            t.report(Status::on(format!("{i} °C")));
        }
        assert_eq!(t.logged, 1);
        t.report(Status::moving("x"));
        t.report(Status::moving("y"));
        assert_eq!(t.logged, 2);
        // Alarm and fault texts are news: logged when they change.
        t.report(Status::new(DeviceState::Alarm, "overload on ch 1"));
        t.report(Status::new(DeviceState::Alarm, "overload on ch 1"));
        t.report(Status::new(DeviceState::Alarm, "overload on ch 2"));
        assert_eq!(t.logged, 4);
    }

    #[test]
    fn make_zero_mean_skips_non_finite_values_per_channel() {
        let labels = [Label::new("a"), Label::new("b")];
        let mut z = ZeroAccumulator::new(2);
        z.add([1.0, f64::NAN].into_iter());
        z.add([3.0, 10.0].into_iter());
        z.add([f64::INFINITY, 20.0].into_iter());
        assert_eq!(z.means(&labels, "d").unwrap(), [2.0, 15.0]);
        let mut z = ZeroAccumulator::new(2);
        z.add([1.0, f64::NAN].into_iter());
        let e = z.means(&labels, "d").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Hardware);
        assert!(e.description().contains("[\"b\"]"), "{e}");
    }

    #[test]
    fn command_lengths_are_checked() {
        let b = IOBlock::input_output(Dev).initial_cmd(vec![1.0, 2.0]);
        let e = b.check_cmd_len("initial_cmd", &b.initial_cmd).unwrap_err();
        assert!(e.description().contains("takes 1 command values"), "{e}");
        let b = IOBlock::input_output(Dev).exit_cmd(vec![0.0]);
        b.check_cmd_len("exit_cmd", &b.exit_cmd).unwrap();
        let b = IOBlock::input(Dev).exit_cmd(vec![0.0]);
        let e = b.check_cmd_len("exit_cmd", &b.exit_cmd).unwrap_err();
        assert!(
            e.description()
                .contains("takes no command (it was given with IOBlock::input"),
            "{e}"
        );
        assert_eq!(b.output_labels().unwrap(), [Label::new("t(s)")]);
    }
}
