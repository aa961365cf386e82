//! A single-producer single-consumer ring of variable-length records in an anonymous shared
//! mapping: the transport of one link.
//!
//! Why a ring and not a pipe (measured in `../shared/reference/linux-limits.md` and by
//! `benches/links.rs`): a send is a memcpy and an atomic store, no system call, so a
//! free-running sender reaches millions of samples per second; the receiver is woken through
//! its Block's doorbell futex only when it is actually waiting, which keeps latency at the
//! futex wake-up floor (~5 µs here) with an idle receiver using no CPU.
//!
//! Layout: a header (indices, counters, flags), then `cap` bytes of records. A record is an
//! 8-byte header (`u32` length, `u32` kind) and its payload padded to 8 bytes. A record never
//! wraps: when it does not fit before the end, a padding record fills the end.
//!
//! `write` and `read` count bytes since creation (never wrap). Only the sender stores
//! `write`. `read` is advanced by the receiver, and also by the sender when it drops the
//! oldest record (drop-oldest links), so the two must never touch the same bytes at once:
//!
//! - **On a drop-oldest link, the receiver claims before it reads.** It sets the `CLAIMED` bit of `read` with a
//!   compare-and-swap (`r` → `r | CLAIMED`) *before* it reads the record's header or payload,
//!   copies the record, then releases it by storing `r + size` (clearing the bit). If the
//!   sender dropped the record first, the CAS fails (`read` moved on) and the receiver starts
//!   again from the new `read`, having read nothing.
//! - **The sender never drops a claimed record.** Its drop is a CAS from an unclaimed `read`,
//!   so it fails while the bit is set. Then it spins for at most `CLAIM_SPIN` (a record copy
//!   takes well under a microsecond; the bound only matters if the receiver is descheduled
//!   mid-copy); if the claim is still held and the ring still full, it drops the *newest*
//!   sample (the one being pushed) instead, counted in `dropped` like any other drop.
//! - **The sender writes only free bytes**: `[write, read + cap)` with `read` taken without
//!   the bit. A claimed record lies at or after `read`, so it is never overwritten; every
//!   byte the receiver reads was written before the sender's release store of `write` that
//!   the receiver observed with acquire.
//!
//! So no byte is ever read while it is written: the receiver reads only records it has
//! claimed (or, on a lossless link, that only it can release), and the sender reuses only
//! bytes that `read` has moved past. Counters add up: every push is counted in `pushed`, and
//! ends in `consumed`, `dropped` (oldest or newest) or pending. On a lossless link (the
//! default; `allow_drops` was not called) the sender never touches `read`, so the receiver
//! does not claim: a pop is a copy and one release store, no compare-and-swap.

use crate::control::Control;
use crate::sys::{self, SharedRegion};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

const REC_HDR: usize = 8;
/// Set in `read` while the receiver is reading the record at `read` (see the module docs).
const CLAIMED: u64 = 1 << 63;
/// How long a drop-oldest sender waits for a claimed oldest record before it drops the sample
/// it is pushing instead.
const CLAIM_SPIN_NS: u64 = 5_000;
const KIND_DATA: u32 = 1;
const KIND_PAD: u32 = 2;

#[repr(C, align(64))]
struct Padded<T>(T);

#[repr(C)]
struct RingHeader {
    write: Padded<AtomicU64>,
    read: Padded<AtomicU64>,
    /// Futex the sender sleeps on when the ring is full.
    space: AtomicU32,
    sender_waiting: AtomicU32,
    writer_closed: AtomicU32,
    reader_closed: AtomicU32,
    /// Records pushed, records consumed by the receiver, records dropped by the sender.
    pushed: AtomicU64,
    consumed: AtomicU64,
    dropped: AtomicU64,
    /// Samples the sender could not deliver because the receiver was gone.
    undeliverable: AtomicU64,
    /// Time the sender spent blocked on this full link (ns), and when its current wait began
    /// (0 when not blocked): written by the sender on the slow path only.
    blocked_ns: AtomicU64,
    blocked_since: AtomicU64,
    /// Non-zero when the sender may drop the oldest record (a drop-oldest link): only then
    /// must the receiver claim a record before reading it. Set before fork, never changed.
    may_drop: AtomicU32,
}

/// After the stop event, how long a sender blocked on a full link waits for its receiver
/// before it gives up on that sample (counted as undelivered). Receivers drain in `finish`
/// well within this; it only frees a sender whose receiver never reads (two Blocks blocked
/// on each other's full links, a receiver that ignores its input), so its own `finish` runs.
pub(crate) const GIVE_UP_AFTER_STOP: std::time::Duration = std::time::Duration::from_secs(1);

/// What happened to a pushed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// In the ring.
    Ok,
    /// In the ring, after dropping this many of the oldest records.
    DroppedOldest(u64),
    /// Not in the ring: the ring was full and its oldest record was being read, so this
    /// sample was dropped (counted), after this many of the oldest records.
    DroppedNewest(u64),
    /// Not delivered: larger than the ring can ever hold (`max_payload`).
    TooLarge,
    /// Not delivered: the receiver has finished or died.
    ReceiverGone,
    /// Not delivered: the ring stayed full for `GIVE_UP_AFTER_STOP` after the stop event.
    GaveUpAfterStop,
}

/// Counters of a ring, for the run report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RingStats {
    pub pushed: u64,
    pub consumed: u64,
    pub dropped: u64,
    pub undeliverable: u64,
    pub pending: u64,
}

/// One link's ring. Both ends hold a clone (by fork); each end uses only its own methods.
#[derive(Debug, Clone)]
pub(crate) struct Ring {
    region: Arc<SharedRegion>,
    cap: u64,
    max_records: u64,
    control: Arc<Control>,
    receiver: usize,
}

impl Ring {
    /// A ring of `cap_bytes` (rounded up to a power of two) holding at most `max_records`.
    pub fn new(
        cap_bytes: usize,
        max_records: u64,
        control: Arc<Control>,
        receiver: usize,
    ) -> std::io::Result<Self> {
        // `Test::check` caps `cap_bytes` at 1 GiB; refuse (not wrap) anything that slips past.
        let cap = cap_bytes
            .checked_next_power_of_two()
            .filter(|&c| c <= 1 << 40)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("link buffer of {cap_bytes} bytes is too large"),
                )
            })?
            .max(4096);
        let region = SharedRegion::new(std::mem::size_of::<RingHeader>() + cap, false)?;
        Ok(Ring {
            region: Arc::new(region),
            cap: cap as u64,
            max_records,
            control,
            receiver,
        })
    }

    fn hdr(&self) -> &RingHeader {
        // SAFETY: the region starts with a RingHeader (page-aligned, zero-initialised, and all
        // zeros is a valid RingHeader) and lives as long as `self.region`.
        unsafe { &*(self.region.as_ptr() as *const RingHeader) }
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: the data area starts right after the header, inside the mapping.
        unsafe { self.region.as_ptr().add(std::mem::size_of::<RingHeader>()) }
    }

    /// Largest payload a record can carry.
    pub fn max_payload(&self) -> usize {
        (self.cap / 2) as usize - REC_HDR
    }

    fn write_at(&self, pos: u64, bytes: &[u8]) {
        let off = (pos % self.cap) as usize;
        debug_assert!(off + bytes.len() <= self.cap as usize);
        // SAFETY: `off + len <= cap` (records never wrap), the destination lies in the data
        // area, and only the sender writes to the free part of the ring it has reserved.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data().add(off), bytes.len()) }
    }

    /// Reads a `u32` of a record header. Callers: the receiver for a record it has claimed,
    /// the sender for the oldest record (which it wrote itself) before it tries to drop it.
    fn read_u32(&self, pos: u64) -> u32 {
        let off = (pos % self.cap) as usize;
        let mut b = [0u8; 4];
        // SAFETY: `off` is 8-aligned and `off + 4 <= cap`, inside the data area. No one
        // writes these bytes meanwhile: they belong to a published record (the receiver saw
        // `write` past it with acquire; the sender wrote it itself), which the sender
        // overwrites only after `read` has moved past it, and `read` cannot move past it
        // while the receiver holds its claim (module docs).
        unsafe { std::ptr::copy_nonoverlapping(self.data().add(off), b.as_mut_ptr(), 4) };
        u32::from_le_bytes(b)
    }

    /// Size in the ring, kind and payload length of the record at `pos`.
    fn record_len(&self, pos: u64) -> (u64, u32, usize) {
        let len = self.read_u32(pos) as usize;
        let kind = self.read_u32(pos + 4);
        if kind == KIND_PAD {
            let to_end = self.cap - pos % self.cap;
            return (to_end, kind, 0);
        }
        // Clamped so the record ends inside the data area whatever the bytes say (they were
        // written by our own sender, so this only guards against a bug).
        let len = len.min(self.cap as usize - (pos % self.cap) as usize - REC_HDR);
        (REC_HDR as u64 + pad8(len) as u64, kind, len)
    }

    /// Sender: appends one record. Blocks while the ring is full unless `drop_oldest` (see
    /// `GIVE_UP_AFTER_STOP` for the one exception). `payload.len()` must be at most
    /// `max_payload()` (checked by the caller); a larger record is refused, never waited for.
    pub fn push(&self, payload: &[u8], drop_oldest: bool, control: &Control) -> Pushed {
        let h = self.hdr();
        debug_assert!(
            !drop_oldest || h.may_drop.load(Ordering::Relaxed) != 0,
            "a drop-oldest push on a ring made lossless (allow_drops not called)"
        );
        if h.reader_closed.load(Ordering::Acquire) != 0 {
            h.undeliverable.fetch_add(1, Ordering::Relaxed);
            return Pushed::ReceiverGone;
        }
        if payload.len() > self.max_payload() {
            h.undeliverable.fetch_add(1, Ordering::Relaxed);
            return Pushed::TooLarge;
        }
        let need = (REC_HDR + pad8(payload.len())) as u64;
        let w = h.write.0.load(Ordering::Relaxed);
        let to_end = self.cap - w % self.cap;
        let total = if to_end < need { to_end + need } else { need };
        // `r` is `read` as stored (with the CLAIMED bit when the receiver is reading).
        let fits = || {
            let r = h.read.0.load(Ordering::SeqCst);
            let records = h.pushed.load(Ordering::Relaxed)
                - h.consumed.load(Ordering::SeqCst)
                - h.dropped.load(Ordering::Relaxed);
            (
                self.cap - (w - (r & !CLAIMED)) >= total && records < self.max_records,
                r,
            )
        };
        let mut dropped = 0;
        let mut stop_seen: Option<u64> = None;
        let mut claim_seen: Option<u64> = None;
        loop {
            let (ok, r) = fits();
            if ok {
                break;
            }
            if h.reader_closed.load(Ordering::Acquire) != 0 {
                self.end_blocked(sys::monotonic_ns());
                h.undeliverable.fetch_add(1, Ordering::Relaxed);
                return Pushed::ReceiverGone;
            }
            if drop_oldest {
                if r & CLAIMED == 0 {
                    if self.drop_one(r) {
                        dropped += 1;
                    }
                    continue;
                }
                // The receiver is reading the oldest record: it cannot be dropped. Wait a few
                // microseconds for the copy to end, then drop this sample instead.
                let now = sys::monotonic_ns();
                if now - *claim_seen.get_or_insert(now) < CLAIM_SPIN_NS {
                    std::hint::spin_loop();
                    continue;
                }
                h.pushed.fetch_add(1, Ordering::Relaxed);
                h.dropped.fetch_add(1, Ordering::Relaxed);
                return Pushed::DroppedNewest(dropped);
            }
            if control.stopping() {
                // One deadline for all links, counted from the stop event (not from this
                // push): a sender blocked on several receivers that no longer read is
                // released once, so it still reaches the receivers that drain.
                let now = sys::monotonic_ns();
                let stop = control.header().stop_ns.load(Ordering::Acquire);
                let since = if stop == 0 {
                    *stop_seen.get_or_insert(now)
                } else {
                    stop
                };
                if now.saturating_sub(since) >= sys::ns(GIVE_UP_AFTER_STOP) {
                    self.end_blocked(now);
                    h.undeliverable.fetch_add(1, Ordering::Relaxed);
                    return Pushed::GaveUpAfterStop;
                }
            }
            if h.blocked_since.load(Ordering::Relaxed) == 0 {
                h.blocked_since
                    .store(sys::monotonic_ns().max(1), Ordering::Relaxed);
            }
            // Full: sleep until the receiver frees space (it rings `space` when it sees
            // `sender_waiting`), re-checking every 50 ms in case the receiver died. The whole
            // condition (bytes and sample count) is re-checked after raising the flag, so a
            // receiver that freed space just before it could not miss us.
            let seen = h.space.load(Ordering::SeqCst);
            h.sender_waiting.store(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if !fits().0 && h.reader_closed.load(Ordering::SeqCst) == 0 {
                sys::futex_wait(&h.space, seen, Some(sys::monotonic_ns() + 50_000_000));
            }
            h.sender_waiting.store(0, Ordering::Relaxed);
        }
        if h.blocked_since.load(Ordering::Relaxed) != 0 {
            self.end_blocked(sys::monotonic_ns());
        }
        let mut pos = w;
        if to_end < need {
            self.write_at(pos, &[0, 0, 0, 0]);
            self.write_at(pos + 4, &KIND_PAD.to_le_bytes());
            pos += to_end;
        }
        self.write_at(pos, &(payload.len() as u32).to_le_bytes());
        self.write_at(pos + 4, &KIND_DATA.to_le_bytes());
        self.write_at(pos + REC_HDR as u64, payload);
        h.pushed.fetch_add(1, Ordering::Relaxed);
        h.write.0.store(w + total, Ordering::Release);
        self.control.ring_if_waiting(self.receiver);
        if dropped > 0 {
            Pushed::DroppedOldest(dropped)
        } else {
            Pushed::Ok
        }
    }

    /// Makes this a drop-oldest link: the sender may drop the oldest record, so the receiver
    /// claims each record before reading it. Call before the ends are used (before fork).
    pub fn allow_drops(&self) {
        self.hdr().may_drop.store(1, Ordering::Release);
    }

    /// Sender: the current wait on a full link is over; adds it to the blocked time.
    fn end_blocked(&self, now: u64) {
        let h = self.hdr();
        let since = h.blocked_since.swap(0, Ordering::Relaxed);
        if since != 0 {
            h.blocked_ns
                .fetch_add(now.saturating_sub(since), Ordering::Relaxed);
        }
    }

    /// Time the sender has spent blocked on this link (ns), and since when it is blocked now.
    pub fn blocked(&self) -> (u64, Option<u64>) {
        let h = self.hdr();
        let since = h.blocked_since.load(Ordering::Relaxed);
        (
            h.blocked_ns.load(Ordering::Relaxed),
            (since != 0).then_some(since),
        )
    }

    /// Samples and bytes waiting in the link now, and its capacity in samples and bytes.
    pub fn fill(&self) -> (u64, u64, u64, u64) {
        let h = self.hdr();
        let w = h.write.0.load(Ordering::Relaxed);
        let r = h.read.0.load(Ordering::Relaxed) & !CLAIMED;
        let records = h
            .pushed
            .load(Ordering::Relaxed)
            .saturating_sub(h.consumed.load(Ordering::Relaxed) + h.dropped.load(Ordering::Relaxed));
        (records, w.saturating_sub(r), self.max_records, self.cap)
    }

    /// Sender, drop-oldest: advances `read` past the oldest record, `r` (unclaimed). Returns
    /// whether a data record was dropped (false if the receiver claimed or consumed it
    /// meanwhile: the compare-and-swap fails and nothing changes).
    fn drop_one(&self, r: u64) -> bool {
        let h = self.hdr();
        debug_assert!(r & CLAIMED == 0);
        if r >= h.write.0.load(Ordering::Relaxed) {
            return false;
        }
        // The sender wrote this record itself and is the only writer: reading its header
        // races with nothing (the receiver only reads).
        let (size, kind, _) = self.record_len(r);
        let ok = h
            .read
            .0
            .compare_exchange(r, r + size, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if ok && kind == KIND_DATA {
            h.dropped.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Receiver: copies the oldest record into `out` and consumes it. `false` if empty.
    pub fn pop(&self, out: &mut Vec<u8>) -> bool {
        self.pop_with(out, || {})
    }

    /// `pop`, calling `while_claimed` once a record is claimed, before its bytes are read
    /// (tests use it to push concurrently at the worst moment).
    fn pop_with(&self, out: &mut Vec<u8>, mut while_claimed: impl FnMut()) -> bool {
        let h = self.hdr();
        loop {
            // Only this process sets CLAIMED, and it clears it before returning: `r` has no
            // claim bit here.
            let r = h.read.0.load(Ordering::Acquire);
            let w = h.write.0.load(Ordering::Acquire);
            debug_assert!(r & CLAIMED == 0);
            if r >= w {
                return false;
            }
            // On a drop-oldest link, claim the record before reading any of its bytes. A
            // failure means the sender dropped it: nothing was read, start again from the new
            // `read`. On a lossless link only this process moves `read`: no claim needed
            // (and no compare-and-swap on the lossless path).
            let may_drop = h.may_drop.load(Ordering::Relaxed) != 0;
            if may_drop
                && h.read
                    .0
                    .compare_exchange(r, r | CLAIMED, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                continue;
            }
            while_claimed();
            let (size, kind, len) = self.record_len(r);
            if kind == KIND_DATA {
                out.clear();
                out.resize(len, 0);
                let off = ((r + REC_HDR as u64) % self.cap) as usize;
                // SAFETY: `off + len <= cap` (`record_len` clamps `len` to the space left
                // before the end of the data area), so the source lies in the mapping and the
                // destination holds `len` bytes. The record was published by the sender's
                // release store of `write`, observed above with acquire (`w > r`), and it
                // cannot be dropped or overwritten meanwhile: the sender writes only before
                // `read + cap`; on a drop-oldest link the record is claimed and the sender's
                // drop needs an unclaimed `read`; on a lossless link the sender never moves
                // `read` (module docs).
                unsafe {
                    std::ptr::copy_nonoverlapping(self.data().add(off), out.as_mut_ptr(), len)
                };
            }
            // Release the claim (if any) and the bytes: only this process changes a claimed
            // `read`, and on a lossless link only this process changes `read` at all.
            h.read.0.store(r + size, Ordering::Release);
            if kind != KIND_DATA {
                continue;
            }
            h.consumed.fetch_add(1, Ordering::Release);
            fence(Ordering::SeqCst);
            if h.sender_waiting.load(Ordering::SeqCst) != 0 {
                h.space.fetch_add(1, Ordering::SeqCst);
                sys::futex_wake(&h.space);
            }
            return true;
        }
    }

    /// Sender: counts a sample it did not even try to push (see `OutputLink::gave_up`).
    pub fn count_undelivered(&self) {
        self.hdr().undeliverable.fetch_add(1, Ordering::Relaxed);
    }

    /// Receiver: whether a record is pending.
    pub fn has_data(&self) -> bool {
        let h = self.hdr();
        (h.read.0.load(Ordering::Acquire) & !CLAIMED) < h.write.0.load(Ordering::Acquire)
    }

    /// Whether the sender has finished (or died) and nothing is pending any more.
    pub fn ended(&self) -> bool {
        self.hdr().writer_closed.load(Ordering::Acquire) != 0 && !self.has_data()
    }

    /// Whether the sender has finished or died.
    pub fn writer_closed(&self) -> bool {
        self.hdr().writer_closed.load(Ordering::Acquire) != 0
    }

    /// Marks the sender side finished and wakes the receiver.
    pub fn close_writer(&self) {
        self.hdr().writer_closed.store(1, Ordering::SeqCst);
        self.control.ring(self.receiver);
    }

    /// Marks the receiver side finished and wakes a blocked sender.
    pub fn close_reader(&self) {
        let h = self.hdr();
        h.reader_closed.store(1, Ordering::SeqCst);
        h.space.fetch_add(1, Ordering::SeqCst);
        sys::futex_wake(&h.space);
    }

    pub fn stats(&self) -> RingStats {
        let h = self.hdr();
        let pushed = h.pushed.load(Ordering::Acquire);
        let consumed = h.consumed.load(Ordering::Acquire);
        let dropped = h.dropped.load(Ordering::Acquire);
        RingStats {
            pushed,
            consumed,
            dropped,
            undeliverable: h.undeliverable.load(Ordering::Acquire),
            pending: pushed.saturating_sub(consumed + dropped),
        }
    }
}

fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

// Unit tests in their own file: they start threads (see the fork rule), which only
// tests may do in the core.
#[cfg(test)]
#[path = "ring_tests.rs"]
mod tests;
