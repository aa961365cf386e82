//! The control region: one anonymous shared mapping, made before fork, holding the start and
//! stop events, `t0`, and one slot per Block (its doorbell futex and loop counter).

use crate::sys::{self, SharedRegion};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Start word values.
pub(crate) const START_WAIT: u32 = 0;
pub(crate) const START_GO: u32 = 1;
pub(crate) const START_ABORT: u32 = 2;

#[repr(C, align(64))]
pub(crate) struct Header {
    /// START_WAIT, then START_GO or START_ABORT (the barrier broke).
    pub start: AtomicU32,
    /// 0 while running, 1 once the stop event is set.
    pub stop: AtomicU32,
    /// `t0` on CLOCK_MONOTONIC, in ns.
    pub t0_mono: AtomicU64,
    /// `t0` on the wall clock, in ns since the epoch.
    pub t0_real: AtomicU64,
}

#[repr(C, align(64))]
pub(crate) struct Slot {
    /// Bumped by senders (when `waiting`) and by the coordinator at stop; the Block sleeps on it.
    pub doorbell: AtomicU32,
    /// Non-zero while the Block waits for input data.
    pub waiting: AtomicU32,
    /// Loops done so far (read by the coordinator for Blocks that had to be killed).
    pub loops: AtomicU64,
}

/// Handle to the control region. Cloned into every process by fork.
#[derive(Debug)]
pub(crate) struct Control {
    region: SharedRegion,
    n: usize,
}

impl Control {
    pub fn new(n_blocks: usize) -> std::io::Result<Self> {
        let len = std::mem::size_of::<Header>()
            + n_blocks * std::mem::size_of::<Slot>()
            + std::mem::size_of::<crate::pause::PauseArea>();
        Ok(Control {
            region: SharedRegion::new(len, false)?,
            n: n_blocks,
        })
    }

    pub fn header(&self) -> &Header {
        // SAFETY: the region is at least size_of::<Header>() bytes, page-aligned (so aligned
        // for Header), zero-initialised (a valid Header: all atomics zero) and lives as long
        // as `self`.
        unsafe { &*(self.region.as_ptr() as *const Header) }
    }

    pub fn slot(&self, i: usize) -> &Slot {
        assert!(i < self.n, "slot index out of range");
        // SAFETY: slots follow the header; `i < n` keeps the reference inside the region,
        // Header's size is a multiple of 64 so each Slot is aligned, and zero is a valid Slot.
        unsafe { &*(self.region.as_ptr().add(std::mem::size_of::<Header>()) as *const Slot).add(i) }
    }

    /// The pause state and the incident records, after the slots (issue 12).
    pub fn pause_area(&self) -> &crate::pause::PauseArea {
        // SAFETY: the region was sized for the header, `n` slots and one PauseArea; the
        // area starts at a multiple of 64 (Header and Slot sizes are), PauseArea needs 64-byte
        // alignment at most, and all-zero is a valid PauseArea (atomics only).
        unsafe {
            &*(self
                .region
                .as_ptr()
                .add(std::mem::size_of::<Header>() + self.n * std::mem::size_of::<Slot>())
                as *const crate::pause::PauseArea)
        }
    }

    pub fn stopping(&self) -> bool {
        self.header().stop.load(Ordering::Acquire) != 0
    }

    /// Rings a Block's doorbell (data arrived, or the stop event).
    pub fn ring(&self, i: usize) {
        let slot = self.slot(i);
        slot.doorbell.fetch_add(1, Ordering::SeqCst);
        sys::futex_wake(&slot.doorbell);
    }

    /// Rings only if the Block is waiting for data (cheap check on the send path).
    pub fn ring_if_waiting(&self, i: usize) {
        fence(Ordering::SeqCst);
        if self.slot(i).waiting.load(Ordering::SeqCst) != 0 {
            self.ring(i);
        }
    }

    /// Sets the stop event and wakes every Block.
    pub fn set_stop(&self) {
        self.header().stop.store(1, Ordering::SeqCst);
        for i in 0..self.n {
            self.ring(i);
        }
    }

    pub fn t0_mono(&self) -> u64 {
        self.header().t0_mono.load(Ordering::Acquire)
    }
}
