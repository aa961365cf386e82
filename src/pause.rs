//! Pausing a test, and the incidents (pauses, alarms) listed in the report.
//!
//! The state lives in the control region, after the Blocks' slots ([`PauseArea`]): a count
//! of active pauses and a table of incident records, each claimed once with a `fetch_add`
//! and published with a `ready` flag. Any Block can start a pause ([`Context::pause`]) and
//! end its own ([`Context::resume`]); the test is paused while at least one pause is
//! active. Pausing is cooperative: nothing is skipped by the runtime (a Recorder keeps
//! recording, links keep flowing), and pause-aware Blocks look at [`Context::paused`]: the
//! Generator freezes its path clock, the Machine holds its actuators stopped, the IOBlock
//! writes no new command. A Block whose `pausable` setting is off never sees a pause.

use crate::report::{Incident, IncidentKind};
use crate::{sys, Context};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Most incidents recorded in one run (later ones are counted, not kept).
pub(crate) const MAX_INCIDENTS: usize = 128;
const TEXT_LEN: usize = 160;

#[repr(C)]
pub(crate) struct Record {
    ready: AtomicU32,
    kind: AtomicU32,
    holder: AtomicU32,
    len: AtomicU32,
    start_ns: AtomicU64,
    end_ns: AtomicU64,
    text: [AtomicU8; TEXT_LEN],
}

/// The pause word and the incident table (all atomics; zero is the initial state).
#[repr(C, align(64))]
pub(crate) struct PauseArea {
    /// Pauses started and not yet ended.
    active: AtomicU32,
    /// Records claimed (may exceed `MAX_INCIDENTS`: the rest were not kept).
    claimed: AtomicU32,
    records: [Record; MAX_INCIDENTS],
}

impl Record {
    /// The cause or alarm text.
    fn text(&self) -> String {
        let len = (self.len.load(Ordering::Relaxed) as usize).min(TEXT_LEN);
        let bytes: Vec<u8> = self.text[..len]
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

const KIND_PAUSE: u32 = 1;
const KIND_ALARM: u32 = 2;

impl PauseArea {
    fn add(&self, kind: u32, holder: usize, text: &str, ended: bool) -> Option<usize> {
        let i = self.claimed.fetch_add(1, Ordering::AcqRel) as usize;
        let Some(r) = self.records.get(i) else {
            log::warn!(
                "more than {MAX_INCIDENTS} pauses and alarms: '{text}' is not kept for the report"
            );
            return None;
        };
        let now = sys::monotonic_ns();
        let mut n = 0;
        for (slot, b) in r.text.iter().zip(text.bytes()) {
            slot.store(b, Ordering::Relaxed);
            n += 1;
        }
        r.len.store(n as u32, Ordering::Relaxed);
        r.kind.store(kind, Ordering::Relaxed);
        r.holder.store(holder as u32, Ordering::Relaxed);
        r.start_ns.store(now, Ordering::Relaxed);
        r.end_ns
            .store(if ended { now } else { 0 }, Ordering::Relaxed);
        r.ready.store(1, Ordering::Release);
        Some(i)
    }

    fn records(&self) -> impl Iterator<Item = &Record> {
        let n = (self.claimed.load(Ordering::Acquire) as usize).min(MAX_INCIDENTS);
        self.records[..n]
            .iter()
            .filter(|r| r.ready.load(Ordering::Acquire) == 1)
    }

    /// The pause `holder` started and has not ended.
    fn open_pause_of(&self, holder: usize) -> Option<&Record> {
        self.records().find(|r| {
            r.kind.load(Ordering::Relaxed) == KIND_PAUSE
                && r.holder.load(Ordering::Relaxed) as usize == holder
                && r.end_ns.load(Ordering::Acquire) == 0
        })
    }
}

impl Context {
    /// Whether this Block should act paused now: the test is paused and this Block's
    /// `pausable` setting is on (the default). Pause-aware Blocks check it every loop.
    pub fn paused(&self) -> bool {
        self.pausable && self.test_paused()
    }

    /// Whether the test is paused, whatever this Block's `pausable` setting.
    pub fn test_paused(&self) -> bool {
        self.control.pause_area().active.load(Ordering::Acquire) > 0
    }

    /// The causes of the pauses active now, as given to [`pause`](Self::pause) (a display
    /// shows them; a bridge relaying pauses between machines tells a local pause from one it
    /// relayed by its cause).
    pub fn active_pause_causes(&self) -> Vec<String> {
        self.control
            .pause_area()
            .records()
            .filter(|r| {
                r.kind.load(Ordering::Relaxed) == KIND_PAUSE
                    && r.end_ns.load(Ordering::Acquire) == 0
            })
            .map(Record::text)
            .collect()
    }

    /// Whether a pause of the test pauses this Block (its `pausable` setting).
    pub fn pausable(&self) -> bool {
        self.pausable
    }

    /// Pauses the test (every pausable Block) until this Block calls [`resume`](Self::resume);
    /// `cause` is logged and listed in the report with the pause's start and end. Nothing
    /// happens if this Block's own pause is already active.
    pub fn pause(&mut self, cause: &str) {
        let area = self.control.pause_area();
        if area.open_pause_of(self.index).is_some() {
            return;
        }
        area.add(KIND_PAUSE, self.index, cause, false);
        area.active.fetch_add(1, Ordering::AcqRel);
        log::warn!("test paused: {cause}");
    }

    /// Ends this Block's pause, if it has one (the test stays paused while another Block's
    /// pause is active).
    pub fn resume(&mut self) {
        let area = self.control.pause_area();
        if let Some(r) = area.open_pause_of(self.index) {
            r.end_ns.store(sys::monotonic_ns(), Ordering::Release);
            area.active.fetch_sub(1, Ordering::AcqRel);
            log::warn!("test resumed");
        }
    }

    /// Records an alarm (a limit exceeded, ...) for the report's incident list.
    pub fn record_alarm(&mut self, text: &str) {
        self.control
            .pause_area()
            .add(KIND_ALARM, self.index, text, true);
    }
}

/// The incidents of a run, for the report (times relative to `t0`).
pub(crate) fn incidents(control: &crate::control::Control, names: &[&str]) -> Vec<Incident> {
    let t0 = control.t0_mono();
    let rel = |ns: u64| (ns as i64 - t0 as i64) as f64 * 1e-9;
    control
        .pause_area()
        .records()
        .map(|r| {
            let end = r.end_ns.load(Ordering::Acquire);
            Incident {
                kind: if r.kind.load(Ordering::Relaxed) == KIND_ALARM {
                    IncidentKind::Alarm
                } else {
                    IncidentKind::Pause
                },
                block: names
                    .get(r.holder.load(Ordering::Relaxed) as usize)
                    .map_or_else(String::new, |n| n.to_string()),
                start_s: rel(r.start_ns.load(Ordering::Relaxed)),
                end_s: (end != 0).then(|| rel(end)),
                cause: r.text(),
            }
        })
        .collect()
}
