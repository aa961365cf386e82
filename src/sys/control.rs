//! The control region: one anonymous shared mapping, made before fork, holding the start and
//! stop events, `t0`, and one slot per Block: its doorbell futex, loop counter, dropped log
//! records, and its *mailbox*.
//!
//! The mailbox is the reliable path of a Block's lifecycle messages (ready, prepare failed,
//! stop request, report files, final statistics) to the coordinator: an append-only byte
//! area written by the Block's own thread only and read by the coordinator. A message is
//! written past the published length, then the length is published with a release store;
//! the coordinator reads up to the length it loaded with acquire. No log flood can delay a
//! message, no torn frame can lose one, and a Block that dies mid-write has simply not
//! posted it. Log records go elsewhere (a bounded, non-blocking pipe: see `proto`).

use crate::sys::{self, SharedRegion};
use std::cell::UnsafeCell;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Bytes of a Block's mailbox.
pub(crate) const MAILBOX: usize = 16 * 1024;
/// Bytes of the mailbox kept for the final message, which must always fit.
pub(crate) const MAILBOX_FINAL_RESERVE: usize = 4 * 1024;

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
    /// When the stop event was set (CLOCK_MONOTONIC ns; 0 before).
    pub stop_ns: AtomicU64,
    /// Warnings published by the coordinator, for every process to read (`health`).
    pub board: WarningBoard,
}

/// Slots of the warning board.
pub(crate) const BOARD_SLOTS: usize = 16;
/// Words (8 bytes) of text per warning.
pub(crate) const BOARD_WORDS: usize = 40;

/// A small ring of recent warnings, written by the coordinator only and read by any
/// process (the health snapshot). Each entry is guarded by a sequence number (odd while it
/// is written); everything is atomic, so readers race with nothing and retry on a torn read.
#[repr(C)]
pub(crate) struct WarningBoard {
    /// Warnings written so far; entry `k` lives in slot `k % BOARD_SLOTS`.
    pub count: AtomicU64,
    pub entries: [BoardEntry; BOARD_SLOTS],
}

#[repr(C)]
pub(crate) struct BoardEntry {
    pub seq: AtomicU64,
    /// Time since t0 (f64 bits), kind, text length.
    pub t_bits: AtomicU64,
    pub kind: AtomicU32,
    pub len: AtomicU32,
    pub text: [AtomicU64; BOARD_WORDS],
}

impl WarningBoard {
    /// Writes a warning (coordinator only: a single writer).
    pub fn post(&self, t: f64, kind: u32, text: &str) {
        let k = self.count.load(Ordering::Relaxed);
        let e = &self.entries[(k as usize) % BOARD_SLOTS];
        let seq = e.seq.load(Ordering::Relaxed);
        e.seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        let bytes = text.as_bytes();
        let n = bytes.len().min(BOARD_WORDS * 8);
        for (w, word) in e.text.iter().enumerate() {
            let mut b = [0u8; 8];
            for (j, x) in b.iter_mut().enumerate() {
                if let Some(&c) = bytes.get(w * 8 + j).filter(|_| w * 8 + j < n) {
                    *x = c;
                }
            }
            word.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        e.t_bits.store(t.to_bits(), Ordering::Relaxed);
        e.kind.store(kind, Ordering::Relaxed);
        e.len.store(n as u32, Ordering::Relaxed);
        e.seq.store(seq + 2, Ordering::Release);
        self.count.store(k + 1, Ordering::Release);
    }

    /// The last `BOARD_SLOTS` warnings, oldest first: (time, kind, text).
    pub fn read(&self) -> Vec<(f64, u32, String)> {
        let count = self.count.load(Ordering::Acquire);
        let first = count.saturating_sub(BOARD_SLOTS as u64);
        let mut out = Vec::new();
        for k in first..count {
            let e = &self.entries[(k as usize) % BOARD_SLOTS];
            for _ in 0..4 {
                let s1 = e.seq.load(Ordering::Acquire);
                if s1 % 2 == 1 {
                    std::hint::spin_loop();
                    continue;
                }
                let t = f64::from_bits(e.t_bits.load(Ordering::Relaxed));
                let kind = e.kind.load(Ordering::Relaxed);
                let n = (e.len.load(Ordering::Relaxed) as usize).min(BOARD_WORDS * 8);
                let mut bytes = Vec::with_capacity(BOARD_WORDS * 8);
                for w in &e.text {
                    bytes.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
                }
                fence(Ordering::Acquire);
                if e.seq.load(Ordering::Relaxed) == s1 {
                    bytes.truncate(n);
                    out.push((t, kind, String::from_utf8_lossy(&bytes).into_owned()));
                    break;
                }
            }
        }
        out
    }
}

/// A Block's lifecycle state, as published in its slot.
pub(crate) mod state {
    /// The zero of a fresh slot: in `prepare` (or not started).
    #[allow(dead_code)]
    pub const PREPARING: u32 = 0;
    pub const READY: u32 = 1;
    pub const RUNNING: u32 = 2;
    pub const FINISHING: u32 = 3;
    pub const DONE: u32 = 4;
    pub const FAILED: u32 = 5;
}

#[repr(C, align(64))]
pub(crate) struct Slot {
    /// Bumped by senders (when `waiting`) and by the coordinator at stop; the Block sleeps on it.
    pub doorbell: AtomicU32,
    /// Non-zero while the Block waits for input data.
    pub waiting: AtomicU32,
    /// Loops done so far (read by the coordinator for Blocks that had to be killed).
    pub loops: AtomicU64,
    /// Log records the Block (or its children) dropped because its log pipe was full.
    pub log_dropped: AtomicU64,
    /// The health figures the Block publishes as it runs (plain atomic stores on the loop
    /// path, no system call), read by the coordinator's watchdogs and by `health` snapshots.
    /// Lifecycle state (`state::*`).
    pub state: AtomicU32,
    /// Requested period in ns (0: free-running).
    pub period_ns: AtomicU64,
    /// Start of the `step` in progress (CLOCK_MONOTONIC ns), 0 when not in `step`.
    pub step_since: AtomicU64,
    /// Duration of the last and of the longest `step` (ns).
    pub step_last: AtomicU64,
    pub step_max: AtomicU64,
    /// Start of the first loop and end of the last one (ns), for the achieved rate.
    pub first_loop: AtomicU64,
    pub last_loop_end: AtomicU64,
    /// Achieved rate over the last second in mHz, published by the coordinator (u64::MAX:
    /// not known yet).
    pub achieved_mhz: AtomicU64,
    /// Rows (or samples) the Block reports as durable, plus one (0: it reports none).
    pub durable: AtomicU64,
    /// Bytes of `mail` published (see the module docs).
    mail_len: AtomicU32,
    /// Length-prefixed messages, append-only.
    mail: UnsafeCell<[u8; MAILBOX]>,
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
        // Header's size is a multiple of 64 so each Slot is aligned, and zero is a valid Slot
        // (atomics at zero, an empty mailbox).
        unsafe { &*(self.region.as_ptr().add(std::mem::size_of::<Header>()) as *const Slot).add(i) }
    }

    /// The pause state and the incident records, after the slots.
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
        let _ = self.header().stop_ns.compare_exchange(
            0,
            sys::monotonic_ns(),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.header().stop.store(1, Ordering::SeqCst);
        for i in 0..self.n {
            self.ring(i);
        }
    }

    /// Appends one message to Block `i`'s mailbox. Returns false (nothing written) if it
    /// does not fit: ordinary messages may not use the space kept for the final one.
    ///
    /// Only one thread may post to a slot: the Block's own (`Context` checks the process).
    pub fn post(&self, i: usize, msg: &[u8], is_final: bool) -> bool {
        let slot = self.slot(i);
        let len = slot.mail_len.load(Ordering::Relaxed) as usize;
        let limit = if is_final {
            MAILBOX
        } else {
            MAILBOX - MAILBOX_FINAL_RESERVE
        };
        let end = len + 4 + msg.len();
        if end > limit {
            return false;
        }
        let base = slot.mail.get().cast::<u8>();
        // SAFETY: `len..end` lies inside the mailbox (checked above) and past the published
        // length, which readers never read beyond (they load it with acquire and read below
        // it); the single writer of this slot is the calling thread, so nothing else writes
        // these bytes. The release store below publishes them.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (msg.len() as u32).to_le_bytes().as_ptr(),
                base.add(len),
                4,
            );
            std::ptr::copy_nonoverlapping(msg.as_ptr(), base.add(len + 4), msg.len());
        }
        slot.mail_len.store(end as u32, Ordering::Release);
        true
    }

    /// Messages of Block `i`'s mailbox published after byte `*from`; advances `*from`.
    pub fn read_mail(&self, i: usize, from: &mut usize) -> Vec<Vec<u8>> {
        let slot = self.slot(i);
        let len = (slot.mail_len.load(Ordering::Acquire) as usize).min(MAILBOX);
        let mut out = Vec::new();
        if *from >= len {
            return out;
        }
        let mut bytes = vec![0u8; len - *from];
        // SAFETY: bytes below the published length were written before its release store
        // (acquired above) and are never written again (append-only), so reading them races
        // with nothing; `from < len <= MAILBOX` keeps the copy inside the mailbox.
        unsafe {
            std::ptr::copy_nonoverlapping(
                slot.mail.get().cast::<u8>().add(*from),
                bytes.as_mut_ptr(),
                len - *from,
            );
        }
        let mut at = 0;
        while at + 4 <= bytes.len() {
            let n = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
            if at + 4 + n > bytes.len() {
                break;
            }
            out.push(bytes[at + 4..at + 4 + n].to_vec());
            at += 4 + n;
        }
        *from += at;
        out
    }

    pub fn t0_mono(&self) -> u64 {
        self.header().t0_mono.load(Ordering::Acquire)
    }
}
