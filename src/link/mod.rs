//! Links: lossless, labelled samples from one Block to another.
//!
//! A link is a shared-memory ring (see `ring.rs` for why) made before fork. Each link has
//! one sender and one receiver. The sender applies the link's modifiers, encodes the sample
//! and appends it; when the ring is full the sender waits ([`Overflow::Block`], the default:
//! nothing is ever lost) or drops the oldest sample ([`Overflow::DropOldest`], for
//! display-only consumers; every drop is counted in the report and logged). A drop-oldest
//! sender never drops the record the receiver is reading: if the receiver holds it for more
//! than a few microseconds, the new sample is dropped instead (counted the same way).

pub(crate) mod codec;
pub(crate) mod ring;

use crate::modifier::Modifier;
use crate::{Label, Sample};
use codec::LabelCache;
use ring::{Pushed, Ring};
use std::time::Instant;

/// What a link does when its receiver falls behind and the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// The sender waits for room: no sample is ever lost (default).
    #[default]
    Block,
    /// The oldest pending samples are dropped to make room; every drop is counted.
    DropOldest,
}

/// Default buffer of a link, in bytes (about 25 000 small samples).
pub const DEFAULT_CAPACITY_BYTES: usize = 1 << 20;
/// Default buffer of a link, in samples.
pub const DEFAULT_CAPACITY_SAMPLES: u64 = 65_536;

/// Options of one link; see [`Test::link_with`](crate::Test::link_with).
pub struct LinkOptions {
    pub(crate) name: Option<String>,
    pub(crate) overflow: Overflow,
    pub(crate) capacity_bytes: usize,
    pub(crate) capacity_samples: u64,
    pub(crate) modifiers: Vec<Box<dyn Modifier>>,
}

impl std::fmt::Debug for LinkOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkOptions")
            .field("name", &self.name)
            .field("overflow", &self.overflow)
            .field("capacity_bytes", &self.capacity_bytes)
            .field("capacity_samples", &self.capacity_samples)
            .field(
                "modifiers",
                &self.modifiers.iter().map(|m| m.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for LinkOptions {
    fn default() -> Self {
        LinkOptions {
            name: None,
            overflow: Overflow::Block,
            capacity_bytes: DEFAULT_CAPACITY_BYTES,
            capacity_samples: DEFAULT_CAPACITY_SAMPLES,
            modifiers: Vec::new(),
        }
    }
}

impl LinkOptions {
    /// The largest accepted buffer, 1 GiB: the ring is one mapping made before fork for each
    /// link; far beyond what any link needs (the default 1 MiB holds ~25 000 samples), and a
    /// larger request is almost surely a unit mistake.
    pub const MAX_CAPACITY_BYTES: usize = 1 << 30;

    /// Defaults: blocking, 1 MiB, 65 536 samples, no modifier.
    pub fn new() -> Self {
        Self::default()
    }
    /// Names the link (default `link<n>`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets the overflow policy.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }
    /// Sets the buffer size in bytes (rounded up to a power of two, at least 4 KiB, at most
    /// [`MAX_CAPACITY_BYTES`](Self::MAX_CAPACITY_BYTES)).
    pub fn capacity_bytes(mut self, bytes: usize) -> Self {
        self.capacity_bytes = bytes;
        self
    }
    /// Sets the buffer size in samples.
    pub fn capacity_samples(mut self, samples: u64) -> Self {
        self.capacity_samples = samples;
        self
    }
    /// Appends a modifier (they run in the order given).
    pub fn modifier(mut self, m: impl Modifier) -> Self {
        self.modifiers.push(Box::new(m));
        self
    }
}

/// The sending end of a link, in the sender's process.
pub(crate) struct OutputLink {
    pub name: String,
    pub to: String,
    pub ring: Ring,
    pub overflow: Overflow,
    pub modifiers: Vec<Box<dyn Modifier>>,
    pub gone_warned: bool,
    pub drops_unlogged: u64,
    pub last_drop_log: Option<Instant>,
    /// This link's encoded sample (links with modifiers; the others share one encoding).
    pub buf: Vec<u8>,
    /// Whether the current sample is to be pushed on this link (set by `Context::send`).
    pub ready: bool,
    /// Set once the receiver left this link full for `GIVE_UP_AFTER_STOP` after the stop:
    /// later samples are counted as undelivered at once instead of waiting again.
    pub gave_up: bool,
}

/// The receiving end of a link, in the receiver's process.
pub(crate) struct InputLink {
    pub name: String,
    pub from: String,
    pub ring: Ring,
    pub cache: LabelCache,
    /// Every label ever received on this link with its last value (for `fill_missing`).
    pub latched: Sample,
}

impl InputLink {
    pub fn pop(&mut self, scratch: &mut Vec<u8>) -> Option<Sample> {
        while self.ring.pop(scratch) {
            match codec::decode(scratch, &mut self.cache) {
                Some(s) => return Some(s),
                None => log::error!("link {}: dropped a malformed record (bug)", self.name),
            }
        }
        None
    }
}

impl OutputLink {
    /// Sends one encoded sample; logs drops and a gone receiver.
    pub fn push(&mut self, payload: &[u8], sender: &str, control: &crate::control::Control) {
        if self.gave_up {
            self.ring.count_undelivered();
            return;
        }
        let pushed = self
            .ring
            .push(payload, self.overflow == Overflow::DropOldest, control);
        match pushed {
            Pushed::Ok => {}
            Pushed::DroppedOldest(n) | Pushed::DroppedNewest(n) => {
                // The newest is dropped (rarely) when the oldest was being read.
                self.drops_unlogged += n + u64::from(matches!(pushed, Pushed::DroppedNewest(_)));
                let now = Instant::now();
                let due = self
                    .last_drop_log
                    .is_none_or(|t| now.duration_since(t).as_secs() >= 1);
                if due {
                    log::warn!(
                        "link {} to {}: receiver too slow, dropped {} sample(s) (policy DropOldest)",
                        self.name,
                        self.to,
                        self.drops_unlogged
                    );
                    self.drops_unlogged = 0;
                    self.last_drop_log = Some(now);
                }
            }
            Pushed::GaveUpAfterStop => {
                self.gave_up = true;
                log::warn!(
                    "{sender}: link {} to {}: the receiver has not read for {} s since the stop; this and later samples on this link are counted as undelivered",
                    self.name,
                    self.to,
                    ring::GIVE_UP_AFTER_STOP.as_secs_f64()
                );
            }
            Pushed::TooLarge => {
                // `Context::send` checks the size first: this is a bug, not a slow receiver.
                log::error!(
                    "{sender}: link {} to {}: a sample of {} bytes is larger than the link can hold ({} bytes); not sent, counted as undelivered (bug: it should have been refused by send)",
                    self.name,
                    self.to,
                    payload.len(),
                    self.ring.max_payload()
                );
            }
            Pushed::ReceiverGone => {
                if !self.gone_warned {
                    self.gone_warned = true;
                    log::warn!(
                        "{sender}: link {} to {}: the receiver has finished; further samples on this link are counted as undelivered",
                        self.name,
                        self.to
                    );
                }
            }
        }
    }
}

/// Labels after a chain of modifiers, or the first modifier's complaint.
pub(crate) fn labels_through(
    modifiers: &[Box<dyn Modifier>],
    labels: Option<Vec<Label>>,
) -> Result<Option<Vec<Label>>, (String, String)> {
    let Some(mut labels) = labels else {
        return Ok(None);
    };
    for m in modifiers {
        labels = m.output_labels(&labels).map_err(|e| (m.name(), e))?;
    }
    Ok(Some(labels))
}
