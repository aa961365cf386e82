//! [`Context`]: what a Block sees of the test from inside its own process.

use crate::control::Control;
use crate::link::{codec, InputLink, OutputLink};
use crate::proto::{Channel, Lifecycle};
use crate::{sys, Columns, Error, ErrorKind, Result, Sample};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// A Block's handle on the running test: the clock, its links, logging and the stop.
///
/// Passed to every lifecycle method of a [`Block`](crate::Block).
pub struct Context {
    pub(crate) name: String,
    pub(crate) index: usize,
    pub(crate) control: Arc<Control>,
    pub(crate) inputs: Vec<InputLink>,
    pub(crate) outputs: Vec<OutputLink>,
    pub(crate) channel: Option<Arc<Channel>>,
    pub(crate) stop_requested: bool,
    /// Every Block's and link's live figures (the health plane).
    pub(crate) health: Option<Arc<crate::health::HealthView>>,
    /// The process allowed to post lifecycle messages (the Block's own; 0 = not checked,
    /// threads runtime).
    pub(crate) owner: u32,
    /// Whether a pause of the test pauses this Block (its `pausable` setting).
    pub(crate) pausable: bool,
    /// Whether the test keeps run documents (else streams and files are not declared).
    pub(crate) documents: bool,
    test_name: String,
    graph: String,
    enc: Vec<u8>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("name", &self.name)
            .field("inputs", &self.inputs.len())
            .field("outputs", &self.outputs.len())
            .finish()
    }
}

impl Context {
    pub(crate) fn new(
        name: String,
        index: usize,
        control: Arc<Control>,
        inputs: Vec<InputLink>,
        outputs: Vec<OutputLink>,
        channel: Option<Arc<Channel>>,
    ) -> Self {
        Context {
            name,
            index,
            control,
            inputs,
            outputs,
            channel,
            stop_requested: false,
            owner: 0,
            health: None,
            pausable: true,
            documents: false,
            test_name: String::new(),
            graph: String::new(),
            enc: Vec::with_capacity(256),
            scratch: Vec::with_capacity(256),
        }
    }

    pub(crate) fn with_meta(mut self, test_name: &str, graph: &str) -> Self {
        self.test_name = test_name.to_owned();
        self.graph = graph.to_owned();
        self
    }

    /// This Block's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The test's name.
    pub fn test_name(&self) -> &str {
        &self.test_name
    }

    /// The whole graph as text (Blocks, settings, parameters, links), for metadata files.
    pub fn graph_description(&self) -> &str {
        &self.graph
    }

    /// Asks the coordinator to append the run report to `path` once every Block is done
    /// (a recorder's metadata file uses it).
    pub fn append_report_to(&self, path: impl Into<std::path::PathBuf>) {
        let path = path.into();
        use std::os::unix::ffi::OsStrExt;
        let bytes = path.as_os_str().as_bytes().to_vec();
        if !self.post(Lifecycle::AppendReport(bytes)) {
            log::warn!(
                "the report will not be appended to {}: too many report files",
                path.display()
            );
        }
    }

    /// Adds a line to this Block's entry in the run report (what it did that the runtime
    /// cannot know: a bridge's outages, a device's reconnections). At most 1000 bytes a note;
    /// a few notes per Block.
    pub fn report_note(&self, note: impl Into<String>) {
        let mut note = note.into();
        crate::error::clip(&mut note, 1000);
        if !self.post(Lifecycle::Note(note)) {
            log::warn!("too many report notes: this one is only in the log");
        }
    }

    /// Declares a stream this Block records (a data file with its labels): the coordinator
    /// writes it as a *descriptor* in the run documents, with each label's unit and source
    /// Block (see [`documents`](crate::documents)). Call it once the file and its columns
    /// are known (a later declaration of the same file is ignored). Does nothing
    /// when the test keeps no run documents.
    pub fn declare_stream(&self, info: crate::documents::StreamInfo) {
        if !self.documents {
            return;
        }
        let mut info = info;
        // The message carries paths as UTF-8 (and the documents are JSON): a name that is not
        // UTF-8 goes as its lossy form rather than not at all.
        info.file = utf8_path(&info.file);
        info.metadata_file = info.metadata_file.as_deref().map(utf8_path);
        // The mailbox holds 12 KiB of messages besides the final one, shared with notes and
        // report files: a descriptor keeps to 4 KiB (about 300 short labels).
        let mut size = info.file.as_os_str().len() + 64;
        let keep = info
            .columns
            .iter()
            .take_while(|c| {
                size += c.label.len() + c.dtype.as_ref().map_or(0, String::len) + 4;
                size <= 4096
            })
            .count();
        if keep < info.columns.len() {
            log::warn!(
                "the run documents describe only the first {keep} of the {} columns of {}",
                info.columns.len(),
                info.file.display()
            );
            info.columns.truncate(keep);
        }
        let file = info.file.clone();
        if !self.post(Lifecycle::Stream(info)) {
            log::warn!(
                "the run documents will not describe {}: too many messages to the coordinator",
                file.display()
            );
        }
    }

    /// Declares another file or folder this Block made (a video folder, images), with its
    /// role (`"video"`, `"images"`, ...): the run documents list it among the run's files.
    /// Does nothing when the test keeps no run documents.
    pub fn declare_file(&self, path: impl Into<std::path::PathBuf>, role: &str) {
        if !self.documents {
            return;
        }
        let path = utf8_path(&path.into());
        let mut role = role.to_owned();
        crate::error::clip(&mut role, 100);
        if !self.post(Lifecycle::File(path.clone(), role)) {
            log::warn!(
                "the run documents will not list {}: too many messages to the coordinator",
                path.display()
            );
        }
    }

    /// Posts a lifecycle message to this Block's mailbox and wakes the coordinator. Only the
    /// Block's own process may post (its children, which share the slot, may not).
    pub(crate) fn post(&self, msg: Lifecycle) -> bool {
        if self.owner != 0 && self.owner != std::process::id() {
            log::warn!("only the Block's own process can stop the test or add report files");
            return false;
        }
        let is_final = matches!(msg, Lifecycle::Final(_));
        let msg = match msg {
            Lifecycle::PrepareFailed(e) => Lifecycle::PrepareFailed(e.clipped(2000)),
            Lifecycle::Final(mut f) => {
                if let crate::proto::EndKind::Failed(e) = &mut f.end {
                    *e = e.clone().clipped(1000);
                }
                if let crate::proto::EndKind::Panicked(m) = &mut f.end {
                    crate::error::clip(m, 1000);
                }
                f.finish_error = f.finish_error.map(|e| e.clipped(1000));
                Lifecycle::Final(f)
            }
            m => m,
        };
        let Ok(bytes) = postcard::to_stdvec(&msg) else {
            return false;
        };
        let ok = self.control.post(self.index, &bytes, is_final);
        if let Some(ch) = &self.channel {
            ch.nudge();
        }
        ok
    }

    /// Every Block's and link's live figures now, and the recent warnings (see
    /// [`health`](crate::health)). Reading it costs a few hundred atomic loads: fine for a
    /// display at a few hertz, not for every loop of a 10 kHz Block.
    pub fn health(&self) -> crate::health::HealthSnapshot {
        match &self.health {
            Some(h) => h.snapshot(),
            None => crate::health::HealthSnapshot {
                t: None,
                blocks: Vec::new(),
                links: Vec::new(),
                warnings: Vec::new(),
            },
        }
    }

    /// Tells the runtime how many rows (or samples) this Block has made durable (written to
    /// the operating system, where a crash of this process cannot lose them). A Recorder
    /// calls it after each write; the report then says what was really kept, even when the
    /// Block is killed, and counts the rest as lost.
    pub fn report_durable(&self, rows: u64) {
        self.control
            .slot(self.index)
            .durable
            .store(rows.saturating_add(1), Ordering::Relaxed);
    }

    /// The names of the Blocks sending to each input link, in link order.
    pub fn input_senders(&self) -> Vec<&str> {
        self.inputs.iter().map(|l| l.from.as_str()).collect()
    }

    /// Seconds since the common start `t0` (0 before the start, e.g. in `prepare`).
    pub fn t(&self) -> f64 {
        let t0 = self.control.t0_mono();
        if t0 == 0 {
            return 0.0;
        }
        (sys::monotonic_ns() as i64 - t0 as i64) as f64 * 1e-9
    }

    /// `t0` in nanoseconds of `CLOCK_MONOTONIC`, or `None` before the start.
    pub fn t0_ns(&self) -> Option<u64> {
        match self.control.t0_mono() {
            0 => None,
            t => Some(t),
        }
    }

    /// `t0` on the wall clock (nanoseconds since the Unix epoch), or `None` before the start.
    pub fn t0_epoch_ns(&self) -> Option<u64> {
        match self.control.header().t0_real.load(Ordering::Acquire) {
            0 => None,
            t => Some(t),
        }
    }

    /// How many input links this Block has.
    pub fn n_inputs(&self) -> usize {
        self.inputs.len()
    }

    /// How many output links this Block has.
    pub fn n_outputs(&self) -> usize {
        self.outputs.len()
    }

    /// Sends one sample on every output link (through each link's modifiers).
    ///
    /// With the default [`Overflow::Block`](crate::Overflow::Block) policy this waits while a
    /// receiver's buffer is full, so nothing is lost. A receiver that has finished does not
    /// make this fail: its link counts the sample as undelivered and logs it once.
    ///
    /// A sample that cannot be sent as is (a label longer than 255 bytes, too large for a
    /// link without modifiers) is refused with an error before any link's modifiers run, so
    /// stateful modifiers (averages, counters) do not advance for a sample no link got. A
    /// link whose modifiers turn the sample into one it cannot take refuses it alone: the
    /// other links still get theirs, and the error is returned after.
    pub fn send(&mut self, sample: &Sample) -> Result<()> {
        // 1. The sample as is: encoded once, checked against every link that sends it
        //    unmodified. Nothing has changed yet if this fails.
        let plain_links = self.outputs.iter().any(|l| l.modifiers.is_empty());
        if plain_links {
            let first_plain = self
                .outputs
                .iter()
                .position(|l| l.modifiers.is_empty())
                .unwrap_or(0);
            encode(
                sample,
                &mut self.enc,
                &self.name,
                &self.outputs[first_plain],
            )?;
        }
        for link in &mut self.outputs {
            link.ready = false;
            if link.modifiers.is_empty() {
                check_size(self.enc.len(), &self.name, link)?;
                link.ready = true;
            }
        }
        // 2. Links with modifiers: run them (they advance), encode, check. A refusal here
        //    concerns this link only.
        let mut refused: Option<Error> = None;
        for link in &mut self.outputs {
            if link.modifiers.is_empty() {
                continue;
            }
            let mut s = Some(sample.clone());
            for m in link.modifiers.iter_mut() {
                s = s.and_then(|s| m.apply(s));
            }
            let Some(s) = s else { continue };
            let mut buf = std::mem::take(&mut link.buf);
            let checked = encode(&s, &mut buf, &self.name, link)
                .and_then(|()| check_size(buf.len(), &self.name, link));
            link.buf = buf;
            match checked {
                Ok(()) => link.ready = true,
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        // 3. Push.
        for link in &mut self.outputs {
            if link.ready {
                if link.modifiers.is_empty() {
                    link.push(&self.enc, &self.name, &self.control);
                } else {
                    let buf = std::mem::take(&mut link.buf);
                    link.push(&buf, &self.name, &self.control);
                    link.buf = buf;
                }
            }
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Receives the oldest pending sample of each input link, merged into one (a later link
    /// wins on a shared label). Empty if nothing is pending.
    pub fn recv_oldest(&mut self) -> Sample {
        let mut out = Sample::new();
        for link in &mut self.inputs {
            if let Some(s) = link.pop(&mut self.scratch) {
                link.latched.merge(&s);
                out.merge(&s);
            }
        }
        out
    }

    /// Drains every input link and keeps the newest sample of each, merged. With
    /// `fill_missing`, every label ever received keeps its last known value (latched).
    pub fn recv_latest(&mut self, fill_missing: bool) -> Sample {
        let mut out = Sample::new();
        for link in &mut self.inputs {
            let mut last = None;
            while let Some(s) = link.pop(&mut self.scratch) {
                link.latched.merge(&s);
                last = Some(s);
            }
            if fill_missing {
                out.merge(&link.latched);
            } else if let Some(s) = last {
                out.merge(&s);
            }
        }
        out
    }

    /// Drains every input link: label → every value received, in arrival order, links
    /// appended one after the other.
    pub fn recv_all(&mut self) -> Columns {
        let mut cols = Columns::new();
        for link in &mut self.inputs {
            while let Some(s) = link.pop(&mut self.scratch) {
                cols.push(&s);
                link.latched.merge(&s);
            }
        }
        cols
    }

    /// Drains every input link, nothing merged: one list of samples per input link, in the
    /// order the links were made.
    pub fn recv_all_per_link(&mut self) -> Vec<Vec<Sample>> {
        let mut out = Vec::with_capacity(self.inputs.len());
        for link in &mut self.inputs {
            let mut v = Vec::new();
            while let Some(s) = link.pop(&mut self.scratch) {
                v.push(s);
            }
            if let Some(last) = v.last() {
                link.latched.merge(last);
            }
            out.push(v);
        }
        out
    }

    /// Calls `f(link_index, sample)` for every pending sample, without collecting them.
    pub fn recv_each(&mut self, mut f: impl FnMut(usize, Sample)) -> usize {
        let mut n = 0;
        for (i, link) in self.inputs.iter_mut().enumerate() {
            while let Some(s) = link.pop(&mut self.scratch) {
                n += 1;
                f(i, s);
            }
        }
        n
    }

    /// Whether any input link has a pending sample.
    pub fn data_available(&self) -> bool {
        self.inputs.iter().any(|l| l.ring.has_data())
    }

    /// End of stream: every input link's sender has finished and nothing is pending.
    /// (`false` for a Block with no input.)
    pub fn inputs_ended(&self) -> bool {
        !self.inputs.is_empty() && self.inputs.iter().all(|l| l.ring.ended())
    }

    /// Blocks until a sample is pending on any input, the stop event is set, every input has
    /// ended, or `timeout` passes. Returns whether data is available. Costs no CPU while
    /// waiting: the Block sleeps on its doorbell futex, rung by senders.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = sys::monotonic_ns().saturating_add(sys::ns(timeout));
        self.wait_until(deadline)
    }

    pub(crate) fn wait_until(&mut self, deadline_ns: u64) -> bool {
        let slot = self.control.slot(self.index);
        loop {
            let seen = slot.doorbell.load(Ordering::SeqCst);
            slot.waiting.store(1, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            if self.data_available() {
                slot.waiting.store(0, Ordering::Relaxed);
                return true;
            }
            if self.control.stopping() || self.inputs_ended() || sys::monotonic_ns() >= deadline_ns
            {
                slot.waiting.store(0, Ordering::Relaxed);
                return false;
            }
            sys::futex_wait(&slot.doorbell, seen, Some(deadline_ns));
        }
    }

    /// In `finish`: receives everything still arriving until every sender has finished (or
    /// `timeout` passes), one list per input link. Use it so nothing sent before the stop is
    /// lost (the recorder does).
    pub fn drain_until_ended(&mut self, timeout: Duration) -> Vec<Vec<Sample>> {
        let deadline = sys::monotonic_ns().saturating_add(sys::ns(timeout));
        let mut out: Vec<Vec<Sample>> = vec![Vec::new(); self.inputs.len()];
        loop {
            for (i, link) in self.inputs.iter_mut().enumerate() {
                while let Some(s) = link.pop(&mut self.scratch) {
                    out[i].push(s);
                }
            }
            if self.inputs.iter().all(|l| l.ring.ended()) || sys::monotonic_ns() >= deadline {
                return out;
            }
            // Not `wait_until`: the stop event is already set, so wait on the doorbell alone.
            let slot = self.control.slot(self.index);
            let seen = slot.doorbell.load(Ordering::SeqCst);
            slot.waiting.store(1, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            if !self.data_available() && !self.inputs.iter().all(|l| l.ring.writer_closed()) {
                sys::futex_wait(
                    &slot.doorbell,
                    seen,
                    Some(deadline.min(sys::monotonic_ns() + 20_000_000)),
                );
            }
            slot.waiting.store(0, Ordering::Relaxed);
        }
    }

    /// Waits (up to `timeout`) until every input link's sender has finished, without
    /// receiving anything. Returns whether they all finished. Use it in `finish` before
    /// reading what is left with any `recv_*` method.
    pub fn wait_senders_finished(&mut self, timeout: Duration) -> bool {
        let deadline = sys::monotonic_ns().saturating_add(sys::ns(timeout));
        let slot = self.control.slot(self.index);
        loop {
            let seen = slot.doorbell.load(Ordering::SeqCst);
            if self.inputs.iter().all(|l| l.ring.writer_closed()) {
                return true;
            }
            let now = sys::monotonic_ns();
            if now >= deadline {
                return false;
            }
            // `close_writer` rings this doorbell; re-check at least every 20 ms anyway.
            sys::futex_wait(&slot.doorbell, seen, Some(deadline.min(now + 20_000_000)));
        }
    }

    /// Asks the whole test to stop (this Block then finishes like the others).
    pub fn stop_test(&mut self) {
        self.request_stop(false);
    }

    /// Asks the coordinator to stop the test, saying whether this Block failed.
    pub(crate) fn request_stop(&mut self, failed: bool) {
        if !self.stop_requested {
            self.stop_requested = true;
            if self.channel.is_none() || !self.post(Lifecycle::StopRequest { failed }) {
                self.control.set_stop();
            }
        }
    }

    /// Whether the stop event is set.
    pub fn stopping(&self) -> bool {
        self.control.stopping()
    }
}

fn encode(sample: &Sample, buf: &mut Vec<u8>, sender: &str, link: &OutputLink) -> Result<()> {
    codec::encode(sample, buf).map_err(|e| {
        let what = match e {
            codec::EncodeError::LabelTooLong(l) => {
                let start: String = l.chars().take(40).collect();
                format!("label '{start}…' is longer than 255 bytes; use a shorter label")
            }
            codec::EncodeError::TooManyLabels(n) => {
                format!("a sample has {n} labels (at most 65535)")
            }
        };
        Error::new(
            ErrorKind::Configuration,
            format!("cannot send on link {} to {}: {what}", link.name, link.to),
        )
        .with_origin(sender)
    })
}

fn check_size(len: usize, sender: &str, link: &OutputLink) -> Result<()> {
    if len > link.ring.max_payload() {
        return Err(Error::new(
            ErrorKind::Configuration,
            format!(
                "a sample of {len} bytes does not fit link {} to {} (at most {} bytes); raise its capacity with LinkOptions::capacity_bytes",
                link.name,
                link.to,
                link.ring.max_payload()
            ),
        )
        .with_origin(sender));
    }
    Ok(())
}

/// `p` as UTF-8 (lossy: `U+FFFD` for the bytes that are not), for messages and documents
/// that carry paths as text.
fn utf8_path(p: &std::path::Path) -> std::path::PathBuf {
    match p.to_str() {
        Some(_) => p.to_path_buf(),
        None => p.to_string_lossy().into_owned().into(),
    }
}
