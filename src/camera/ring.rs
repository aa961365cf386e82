//! The frame ring: frames from one writer process to several reader processes, read in place.
//!
//! The principal types: [`FrameRing`] (made from a [`RingConfig`] before the readers are
//! forked), its [`Writer`] (the camera Block: [`Writer::acquire`] a [`SlotMut`], let the
//! camera grab into it, [`SlotMut::publish`]) and its [`Reader`]s (one per child process:
//! [`Reader::next`] gives a [`FrameRef`] that derefs to the frame's bytes in the shared
//! slot). Each reader has a [`ReadMode`] and counters ([`ReaderStats`]).
//!
//! ## Memory
//! One anonymous `MAP_SHARED` mapping (`SharedRegion`, `MAP_POPULATE`d so the first frame
//! pays no page fault), made before fork: a header, one record per reader, one record per
//! slot, then the slots' pixels, each slot page-aligned. Nothing has a name, so nothing can
//! be left in `/dev/shm`; the kernel frees it when the last process holding it exits.
//! (Not the `shared_memory` crate: unmaintained since 2022, pinned to nix 0.23, and a
//! segment dropped in a child is unlinked for every process.)
//!
//! ## Protocol
//! - Frames get sequence numbers `0, 1, 2...` from the writer. Each slot has a `state`:
//!   0 empty, `BUSY` while the writer fills it, else `seq + 1` of the frame it holds.
//! - A reader reading a slot **pins** it: stores `slot + 1` in its record, then re-checks the
//!   slot's `state`. The writer, to reuse a slot, swaps `BUSY` into its `state` with a
//!   compare-exchange from the state it judged free (never from `BUSY`), then checks
//!   every reader's pin, and backs off (restoring the state) if the slot is pinned. All four
//!   accesses are `SeqCst`, so either the writer sees the pin or the reader sees `BUSY`:
//!   **the writer never writes a slot being read**, and the reader reads it in place, with
//!   no copy and no torn frame.
//! - The writer picks the slot holding the oldest frame that is neither pinned nor still
//!   wanted by a [`ReadMode::Every`] reader (whose `cursor`, the next frame it wants, is in
//!   shared memory). With `slots >= readers + 2`, pins alone never stop the writer: it waits
//!   only for `Every` readers, which is the back-pressure they asked for.
//! - [`ReadMode::Latest`] readers take the newest frame; the frames they never saw are
//!   counted in `skipped`. [`ReadMode::EveryOrOverrun`] readers take the next frame in order
//!   but never hold the writer back: frames overwritten before they read them are counted
//!   in `overruns`. Nothing is lost silently.
//! - Waiting costs no CPU: readers sleep on the `new_frame` futex, the writer on `space`;
//!   each side rings the other only when it is waiting.
//! - Ends: the writer and each reader index can be taken once per ring ([`FrameRing::writer`],
//!   [`FrameRing::reader`] return `NotAllowed` the second time, across processes and
//!   clones): one writer and one process per reader is what makes the pins sound.
//! - Crashes: every wait is sliced (≤ 50 ms). A writer waiting for an `Every` reader, and
//!   any writer once a second, checks that the readers' processes are alive (`kill(pid, 0)`,
//!   not a zombie); a dead reader is detached (counted in [`WriterStats::dead_readers`]) and
//!   its pin released. A reader
//!   whose writer died gets [`Next::WriterGone`].

use super::{FrameFormat, FrameInfo, PixelFormat};
use crate::sys::{self, SharedRegion};
use crate::{Error, ErrorKind, Result};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Most readers a ring can have.
pub const MAX_READERS: usize = 8;

const BUSY: u64 = u64::MAX;
const PAGE: usize = 4096;
const SLICE_NS: u64 = 50_000_000;

const MODE_DETACHED: u32 = 0;
const MODE_LATEST: u32 = 1;
const MODE_EVERY: u32 = 2;
const MODE_EVERY_OVERRUN: u32 = 3;

/// How a reader reads the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadMode {
    /// The newest frame each time (a display): older frames are skipped, and counted.
    Latest,
    /// Every frame, in order (recording): the writer waits for this reader when the ring
    /// is full, so no frame is lost; a slow reader slows acquisition.
    Every,
    /// Every frame in order while it keeps up, but the writer never waits: frames
    /// overwritten before being read are counted as overruns.
    EveryOrOverrun,
}

impl ReadMode {
    fn code(self) -> u32 {
        match self {
            ReadMode::Latest => MODE_LATEST,
            ReadMode::Every => MODE_EVERY,
            ReadMode::EveryOrOverrun => MODE_EVERY_OVERRUN,
        }
    }
}

/// Shape of a ring.
#[derive(Debug, Clone, PartialEq)]
pub struct RingConfig {
    /// Largest frame (slots are sized from it).
    pub format: FrameFormat,
    /// Number of slots (at least `readers.len() + 2`).
    pub slots: usize,
    /// One entry per reader, in reader order.
    pub readers: Vec<ReadMode>,
}

impl RingConfig {
    /// A ring for frames of `format` with the given readers and `readers + 4` slots.
    pub fn new(format: FrameFormat, readers: &[ReadMode]) -> Self {
        RingConfig {
            format,
            slots: readers.len() + 4,
            readers: readers.to_vec(),
        }
    }

    /// Sets the number of slots.
    pub fn slots(mut self, n: usize) -> Self {
        self.slots = n;
        self
    }
}

#[repr(C, align(64))]
struct Padded<T>(T);

#[repr(C)]
struct Header {
    published: Padded<AtomicU64>,
    /// Futex rung on every publish (when a reader waits) and on close.
    new_frame: AtomicU32,
    readers_waiting: AtomicU32,
    /// Futex rung when an `Every` reader releases a frame or a reader detaches.
    space: AtomicU32,
    writer_waiting: AtomicU32,
    writer_closed: AtomicU32,
    writer_pid: AtomicU32,
    writer_waits: AtomicU64,
    writer_wait_ns: AtomicU64,
    aborted: AtomicU64,
    dead_readers: AtomicU64,
    /// Ends taken: bit `i` for reader `i`, [`WRITER_CLAIM`] for the writer. Each end can be
    /// taken once per ring, by one process (see [`FrameRing::writer`]).
    claims: AtomicU32,
}

/// The writer's bit in [`Header::claims`] (readers use bits `0..MAX_READERS`).
const WRITER_CLAIM: u32 = 1 << 31;

#[repr(C, align(64))]
struct ReaderRec {
    mode: AtomicU32,
    pid: AtomicU32,
    /// Slot being read, plus one; 0 when none.
    pin: AtomicU32,
    cursor: AtomicU64,
    read: AtomicU64,
    skipped: AtomicU64,
    overruns: AtomicU64,
}

#[repr(C, align(64))]
struct SlotRec {
    state: AtomicU64,
    index: AtomicU64,
    timestamp_ns: AtomicU64,
    width: AtomicU32,
    height: AtomicU32,
    pixel: AtomicU32,
}

#[derive(Debug)]
struct Layout {
    n_readers: usize,
    n_slots: usize,
    readers_off: usize,
    slots_off: usize,
    data_off: usize,
    stride: usize,
    slot_bytes: usize,
}

fn align_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

/// A shared-memory ring of frames; see the [module docs](self).
///
/// Make it before forking the readers; each process then takes its own end
/// ([`writer`](FrameRing::writer) in the camera process, [`reader`](FrameRing::reader) in
/// each child).
#[derive(Debug, Clone)]
pub struct FrameRing {
    region: Arc<SharedRegion>,
    layout: Arc<Layout>,
}

/// Counters of one reader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Frames read.
    pub read: u64,
    /// Frames a `Latest` reader never saw because a newer one was there.
    pub skipped: u64,
    /// Frames an `EveryOrOverrun` reader lost because the writer overwrote them first.
    pub overruns: u64,
    /// Whether the reader is still attached (false once it closed or was found dead).
    pub attached: bool,
}

/// Counters of the writer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Frames published.
    pub published: u64,
    /// Acquisitions that had to wait for an `Every` reader.
    pub waits: u64,
    /// Total time spent waiting, in nanoseconds.
    pub wait_ns: u64,
    /// Slots acquired but not published (the camera had no frame).
    pub aborted: u64,
    /// Readers detached because their process died.
    pub dead_readers: u64,
}

impl FrameRing {
    /// Maps and pre-faults a ring.
    pub fn new(config: &RingConfig) -> Result<Self> {
        let n_readers = config.readers.len();
        if n_readers > MAX_READERS {
            return Err(Error::config(format!(
                "a frame ring has at most {MAX_READERS} readers, {n_readers} asked"
            )));
        }
        if config.slots < n_readers + 2 {
            return Err(Error::config(format!(
                "a frame ring with {n_readers} readers needs at least {} slots ({} asked)",
                n_readers + 2,
                config.slots
            )));
        }
        let slot_bytes = config.format.checked_bytes().ok_or_else(|| {
            Error::config(format!(
                "frame format {}x{} {} is too large for the address space",
                config.format.width, config.format.height, config.format.pixel
            ))
        })?;
        if slot_bytes == 0 {
            return Err(Error::config(format!(
                "frame format {}x{} has no pixel",
                config.format.width, config.format.height
            )));
        }
        let readers_off = align_up(std::mem::size_of::<Header>(), 64);
        let slots_off = readers_off + n_readers * std::mem::size_of::<ReaderRec>();
        let data_off = align_up(
            slots_off + config.slots * std::mem::size_of::<SlotRec>(),
            PAGE,
        );
        let len = slot_bytes
            .checked_next_multiple_of(PAGE)
            .and_then(|stride| stride.checked_mul(config.slots))
            .and_then(|d| d.checked_add(data_off))
            .ok_or_else(|| Error::config("frame ring too large for the address space"))?;
        let stride = align_up(slot_bytes, PAGE);
        let region = SharedRegion::new(len, true).map_err(|e| {
            Error::io(
                format!(
                    "cannot map a frame ring of {} MiB ({} slots of {} bytes)",
                    len >> 20,
                    config.slots,
                    slot_bytes
                ),
                e,
            )
        })?;
        let ring = FrameRing {
            region: Arc::new(region),
            layout: Arc::new(Layout {
                n_readers,
                n_slots: config.slots,
                readers_off,
                slots_off,
                data_off,
                stride,
                slot_bytes,
            }),
        };
        for (i, m) in config.readers.iter().enumerate() {
            ring.reader_rec(i).mode.store(m.code(), Ordering::SeqCst);
        }
        Ok(ring)
    }

    fn hdr(&self) -> &Header {
        // SAFETY: the mapping starts with a Header (page-aligned, zero-initialised; all zeros
        // is a valid Header of atomics) and lives as long as `self.region`.
        unsafe { &*(self.region.as_ptr() as *const Header) }
    }

    fn reader_rec(&self, i: usize) -> &ReaderRec {
        assert!(i < self.layout.n_readers, "reader index out of range");
        // SAFETY: reader records follow the header at a 64-byte aligned offset, inside the
        // mapping (checked by the layout computation), and are made of atomics.
        unsafe { &*(self.region.as_ptr().add(self.layout.readers_off) as *const ReaderRec).add(i) }
    }

    fn slot_rec(&self, i: usize) -> &SlotRec {
        debug_assert!(i < self.layout.n_slots);
        // SAFETY: slot records follow the reader records at a 64-byte aligned offset, inside
        // the mapping, and are made of atomics.
        unsafe { &*(self.region.as_ptr().add(self.layout.slots_off) as *const SlotRec).add(i) }
    }

    fn slot_ptr(&self, i: usize) -> *mut u8 {
        debug_assert!(i < self.layout.n_slots);
        // SAFETY: slot `i`'s pixels lie at `data_off + i * stride`, inside the mapping.
        unsafe {
            self.region
                .as_ptr()
                .add(self.layout.data_off + i * self.layout.stride)
        }
    }

    /// Number of readers.
    pub fn n_readers(&self) -> usize {
        self.layout.n_readers
    }

    /// Number of slots.
    pub fn n_slots(&self) -> usize {
        self.layout.n_slots
    }

    /// Bytes of one slot (the largest frame).
    pub fn slot_bytes(&self) -> usize {
        self.layout.slot_bytes
    }

    /// Takes `bit` in the shared claim word; false if some process (this one included)
    /// already took it.
    fn claim(&self, bit: u32) -> bool {
        self.hdr().claims.fetch_or(bit, Ordering::SeqCst) & bit == 0
    }

    /// The writing end, for the calling process. The writer can be taken once per ring (the
    /// claim is in the shared memory, so it holds across processes and clones): a second
    /// call is a `NotAllowed` error, because two writers could fill the same slot.
    pub fn writer(&self) -> Result<Writer> {
        if !self.claim(WRITER_CLAIM) {
            return Err(Error::new(
                ErrorKind::NotAllowed,
                "frame ring: the writer was already taken (a ring has one writer)",
            ));
        }
        self.hdr()
            .writer_pid
            .store(std::process::id(), Ordering::SeqCst);
        Ok(Writer {
            ring: self.clone(),
            next_seq: self.hdr().published.0.load(Ordering::SeqCst),
            dead_check_ns: 0,
        })
    }

    /// Reader `i`'s end, for the process that reads. Each reader index can be taken once
    /// per ring (the claim is in the shared memory): a second call for the same `i` is a
    /// `NotAllowed` error, because two readers sharing one pin could read a slot the writer
    /// is filling. An index out of range is an `OutOfRange` error.
    pub fn reader(&self, i: usize) -> Result<Reader> {
        if i >= self.layout.n_readers {
            return Err(Error::new(
                ErrorKind::OutOfRange,
                format!(
                    "frame ring: reader {i} asked, the ring has {} readers",
                    self.layout.n_readers
                ),
            ));
        }
        if !self.claim(1 << i) {
            return Err(Error::new(
                ErrorKind::NotAllowed,
                format!("frame ring: reader {i} was already taken (one end per reader)"),
            ));
        }
        Ok(Reader {
            ring: self.clone(),
            i,
            attached: false,
            mode: MODE_DETACHED,
        })
    }

    /// Records the process id of reader `i` (the parent can do it right after fork, so a
    /// reader that dies before attaching is still detected).
    pub fn set_reader_pid(&self, i: usize, pid: u32) {
        self.reader_rec(i).pid.store(pid, Ordering::SeqCst);
    }

    /// Counters of reader `i`.
    pub fn reader_stats(&self, i: usize) -> ReaderStats {
        let r = self.reader_rec(i);
        ReaderStats {
            read: r.read.load(Ordering::Acquire),
            skipped: r.skipped.load(Ordering::Acquire),
            overruns: r.overruns.load(Ordering::Acquire),
            attached: r.mode.load(Ordering::Acquire) != MODE_DETACHED,
        }
    }

    /// Counters of the writer.
    pub fn writer_stats(&self) -> WriterStats {
        let h = self.hdr();
        WriterStats {
            published: h.published.0.load(Ordering::Acquire),
            waits: h.writer_waits.load(Ordering::Acquire),
            wait_ns: h.writer_wait_ns.load(Ordering::Acquire),
            aborted: h.aborted.load(Ordering::Acquire),
            dead_readers: h.dead_readers.load(Ordering::Acquire),
        }
    }

    fn pinned(&self, slot: usize) -> bool {
        let p = slot as u32 + 1;
        (0..self.layout.n_readers).any(|r| self.reader_rec(r).pin.load(Ordering::SeqCst) == p)
    }

    fn wake_writer(&self) {
        let h = self.hdr();
        fence(Ordering::SeqCst);
        if h.writer_waiting.load(Ordering::SeqCst) != 0 {
            h.space.fetch_add(1, Ordering::SeqCst);
            sys::futex_wake(&h.space);
        }
    }
}

/// Whether process `pid` may still be alive. Fails closed: only a proven death counts as dead.
///
/// A reader (or writer) declared dead loses its pins, and the writer may then overwrite a slot
/// it is reading, so "dead" must mean dead: `kill(pid, 0)` failing with `ESRCH`, or a zombie
/// (`Z`/`X` in `/proc/<pid>/stat`: it will never touch the ring again). `EPERM` (the process
/// exists but belongs to someone else, e.g. a child that changed its user) and an unreadable
/// `/proc` entry (`hidepid`, no `/proc` mounted, out of file descriptors) mean "alive".
fn process_alive(pid: u32) -> bool {
    if pid == 0 {
        return true; // not known yet: assume alive
    }
    let Ok(p) = i32::try_from(pid) else {
        // Written by the peer from its own getpid(), so it cannot happen; no process can have
        // this pid, so it cannot be holding a pin either.
        return false;
    };
    let probe = || nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None);
    liveness(
        probe(),
        || std::fs::read_to_string(format!("/proc/{pid}/stat")),
        probe,
    )
}

/// The decision of [`process_alive`], apart from the system calls so it can be tested:
/// `kill` is the result of `kill(pid, 0)`, `stat` reads `/proc/<pid>/stat`, `kill_again`
/// repeats the `kill` (to tell "it died meanwhile" from "not visible in this `/proc`").
fn liveness(
    kill: nix::Result<()>,
    stat: impl FnOnce() -> std::io::Result<String>,
    kill_again: impl FnOnce() -> nix::Result<()>,
) -> bool {
    if kill == Err(nix::errno::Errno::ESRCH) {
        return false;
    }
    // Ok, EPERM (exists, not ours) or anything else: not proven dead, look closer.
    match stat() {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next());
            // A line we cannot parse proves nothing: alive.
            !matches!(state, Some("Z") | Some("X") | Some("x"))
        }
        // Gone from /proc after kill found it: it died in between, unless this /proc belongs to
        // another pid namespace; ask the kernel again.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            kill_again() != Err(nix::errno::Errno::ESRCH)
        }
        // Permission denied (hidepid), too many open files, ...: unknown, so alive.
        Err(_) => true,
    }
}

/// The writing end of a [`FrameRing`].
#[derive(Debug)]
pub struct Writer {
    ring: FrameRing,
    next_seq: u64,
    /// When dead readers were last looked for (every second, whatever their mode).
    dead_check_ns: u64,
}

/// A slot the writer holds: fill [`buf`](SlotMut::buf), then [`publish`](SlotMut::publish).
/// Dropped without publishing: if [`buf`](SlotMut::buf) was never called, the slot gets its
/// old frame back (nothing was written); otherwise it is marked empty (its old frame may be
/// partly overwritten). [`SlotMut::abort_unwritten`] restores the old frame after `buf` was
/// called, for a camera that wrote nothing.
#[derive(Debug)]
pub struct SlotMut<'a> {
    writer: &'a mut Writer,
    slot: usize,
    /// The slot's state before the claim (restored by an abort that wrote nothing).
    old_state: u64,
    touched: bool,
    published: bool,
}

impl Writer {
    /// The ring.
    pub fn ring(&self) -> &FrameRing {
        &self.ring
    }

    /// Chooses the free slot holding the oldest frame (empty slots first), skipping
    /// `excluded` (a bit set of slots found pinned during this acquisition).
    fn choose(&self, excluded: u64) -> Option<(usize, u64)> {
        let r = &self.ring;
        let mut need = u64::MAX;
        for i in 0..r.layout.n_readers {
            let rec = r.reader_rec(i);
            if rec.mode.load(Ordering::SeqCst) == MODE_EVERY {
                need = need.min(rec.cursor.load(Ordering::SeqCst));
            }
        }
        let mut best: Option<(usize, u64, u64)> = None;
        for i in 0..r.layout.n_slots {
            if i < 64 && excluded & (1 << i) != 0 {
                continue;
            }
            let st = r.slot_rec(i).state.load(Ordering::SeqCst);
            let rank = match st {
                0 => 0,
                BUSY => continue,
                s if s > need => continue, // holds frame s - 1 >= need: still wanted
                s => s,
            };
            if r.pinned(i) {
                continue;
            }
            if best.is_none_or(|(_, b, _)| rank < b) {
                best = Some((i, rank, st));
            }
        }
        best.map(|(i, _, st)| (i, st))
    }

    /// Detaches readers whose process died; returns how many.
    pub fn detach_dead_readers(&self) -> usize {
        let r = &self.ring;
        let mut n = 0;
        for i in 0..r.layout.n_readers {
            let rec = r.reader_rec(i);
            if rec.mode.load(Ordering::SeqCst) != MODE_DETACHED
                && !process_alive(rec.pid.load(Ordering::SeqCst))
            {
                rec.mode.store(MODE_DETACHED, Ordering::SeqCst);
                rec.pin.store(0, Ordering::SeqCst);
                r.hdr().dead_readers.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "frame ring: reader {i} (pid {}) died; detached",
                    rec.pid.load(Ordering::Relaxed)
                );
                n += 1;
            }
        }
        n
    }

    /// Takes a slot to fill. Waits (up to `timeout`) only while every free slot still holds
    /// a frame an [`ReadMode::Every`] reader has not read; returns `Ok(None)` on timeout.
    pub fn acquire(&mut self, timeout: Duration) -> Result<Option<SlotMut<'_>>> {
        if self.ring.hdr().writer_closed.load(Ordering::Relaxed) != 0 {
            return Err(Error::new(
                ErrorKind::NotAllowed,
                "frame ring: writer already closed",
            ));
        }
        let start = sys::monotonic_ns();
        if start.saturating_sub(self.dead_check_ns) >= 1_000_000_000 {
            // A dead reader that never holds the writer back (Latest, EveryOrOverrun) would
            // otherwise stay attached, and its last pin held, for ever.
            self.dead_check_ns = start;
            self.detach_dead_readers();
        }
        let deadline = start.saturating_add(sys::ns(timeout));
        let mut excluded = 0u64;
        let mut waited = false;
        let slot = loop {
            if let Some((i, seen)) = self.choose(excluded) {
                let rec = self.ring.slot_rec(i);
                // Claim only the state `choose` judged free: never a slot that became BUSY
                // or got another frame meanwhile.
                if rec
                    .state
                    .compare_exchange(seen, BUSY, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
                {
                    continue;
                }
                if self.ring.pinned(i) {
                    // A reader pinned it between `choose` and the claim: leave it alone.
                    rec.state.store(seen, Ordering::SeqCst);
                    if i < 64 {
                        excluded |= 1 << i;
                    }
                    continue;
                }
                break Some((i, seen));
            }
            if excluded != 0 {
                excluded = 0;
                continue;
            }
            let now = sys::monotonic_ns();
            if now >= deadline {
                break None;
            }
            waited = true;
            let h = self.ring.hdr();
            let seen = h.space.load(Ordering::SeqCst);
            h.writer_waiting.store(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if self.choose(0).is_none() {
                sys::futex_wait(&h.space, seen, Some(deadline.min(now + SLICE_NS)));
                if self.choose(0).is_none() {
                    self.detach_dead_readers();
                }
            }
            h.writer_waiting.store(0, Ordering::SeqCst);
        };
        if waited {
            let h = self.ring.hdr();
            h.writer_waits.fetch_add(1, Ordering::Relaxed);
            h.writer_wait_ns
                .fetch_add(sys::monotonic_ns() - start, Ordering::Relaxed);
        }
        Ok(slot.map(move |(slot, old_state)| SlotMut {
            writer: self,
            slot,
            old_state,
            touched: false,
            published: false,
        }))
    }

    /// Marks the stream finished: readers get [`Next::Closed`] once they have read what they
    /// want of the frames already published.
    pub fn close(&self) {
        let h = self.ring.hdr();
        h.writer_closed.store(1, Ordering::SeqCst);
        h.new_frame.fetch_add(1, Ordering::SeqCst);
        sys::futex_wake(&h.new_frame);
    }

    /// Frames published so far.
    pub fn published(&self) -> u64 {
        self.next_seq
    }
}

impl SlotMut<'_> {
    /// The slot's bytes (the size of the ring's largest frame).
    pub fn buf(&mut self) -> &mut [u8] {
        self.touched = true;
        let ring = &self.writer.ring;
        // SAFETY: the slot's state is BUSY and no reader pinned it after we claimed it (a
        // reader re-checks the state after pinning and backs off on BUSY), so this process
        // has the only access to these `slot_bytes` bytes, inside the mapping, until
        // publish or drop, and `&mut self` prevents a second slice from this side.
        unsafe { std::slice::from_raw_parts_mut(ring.slot_ptr(self.slot), ring.layout.slot_bytes) }
    }

    /// Publishes the frame now in the slot; returns its ring sequence number.
    pub fn publish(mut self, info: FrameInfo) -> Result<u64> {
        let ring = self.writer.ring.clone();
        if info.format.bytes() > ring.layout.slot_bytes {
            return Err(Error::new(
                ErrorKind::OutOfRange,
                format!(
                    "frame of {} bytes ({}x{} {}) does not fit the ring's {}-byte slots; the camera changed format after the ring was made",
                    info.format.bytes(),
                    info.format.width,
                    info.format.height,
                    info.format.pixel,
                    ring.layout.slot_bytes
                ),
            ));
        }
        let seq = self.writer.next_seq;
        let rec = ring.slot_rec(self.slot);
        rec.index.store(info.index, Ordering::Relaxed);
        rec.timestamp_ns.store(info.timestamp_ns, Ordering::Relaxed);
        rec.width.store(info.format.width, Ordering::Relaxed);
        rec.height.store(info.format.height, Ordering::Relaxed);
        rec.pixel.store(info.format.pixel.code(), Ordering::Relaxed);
        rec.state.store(seq + 1, Ordering::SeqCst);
        let h = ring.hdr();
        h.published.0.store(seq + 1, Ordering::SeqCst);
        self.writer.next_seq = seq + 1;
        self.published = true;
        h.new_frame.fetch_add(1, Ordering::SeqCst);
        if h.readers_waiting.load(Ordering::SeqCst) != 0 {
            sys::futex_wake(&h.new_frame);
        }
        Ok(seq)
    }
}

impl SlotMut<'_> {
    /// Gives the slot back untouched: its previous frame stays readable. Call it only when
    /// nothing was written into [`buf`](SlotMut::buf) (e.g. a camera's `grab` returned
    /// `Ok(None)`, which the [`Camera`](super::Camera) contract says leaves the buffer as it
    /// was); otherwise drop the slot, which marks it empty.
    pub fn abort_unwritten(mut self) {
        self.touched = false;
    }
}

impl Drop for SlotMut<'_> {
    fn drop(&mut self) {
        if !self.published {
            let ring = &self.writer.ring;
            let back = if self.touched { 0 } else { self.old_state };
            ring.slot_rec(self.slot).state.store(back, Ordering::SeqCst);
            ring.hdr().aborted.fetch_add(1, Ordering::Relaxed);
            // A reader may have found its frame's slot BUSY and be waiting for it.
            if back != 0 && ring.hdr().readers_waiting.load(Ordering::SeqCst) != 0 {
                ring.hdr().new_frame.fetch_add(1, Ordering::SeqCst);
                sys::futex_wake(&ring.hdr().new_frame);
            }
        }
    }
}

/// One reader's end of a [`FrameRing`].
#[derive(Debug)]
pub struct Reader {
    ring: FrameRing,
    i: usize,
    attached: bool,
    mode: u32,
}

/// What [`Reader::next`] found.
#[derive(Debug)]
pub enum Next<'a> {
    /// A frame, pinned until the `FrameRef` is dropped.
    Frame(FrameRef<'a>),
    /// Nothing new before the timeout.
    Timeout,
    /// The writer closed the ring and nothing more is to be read.
    Closed,
    /// The writer's process died without closing the ring.
    WriterGone,
    /// This reader was detached (it closed, or the writer found it dead).
    Detached,
}

/// A frame being read, in place in its slot: the writer does not touch the slot until this
/// is dropped. Derefs to the frame's bytes.
#[derive(Debug)]
pub struct FrameRef<'a> {
    reader: &'a mut Reader,
    slot: usize,
    seq: u64,
    info: FrameInfo,
}

impl Reader {
    fn rec(&self) -> &ReaderRec {
        self.ring.reader_rec(self.i)
    }

    /// Registers the calling process as this reader and touches every slot once, so the
    /// first frames pay no page fault in this process. Called by the first `next`.
    ///
    /// Each slot is touched under a pin, as a frame is read: a slot the writer is filling
    /// (BUSY) is skipped (it will fault at its first read instead), so no byte is ever read
    /// while the writer may write it.
    pub fn attach(&mut self) {
        if self.attached {
            return;
        }
        self.attached = true;
        self.rec().pid.store(std::process::id(), Ordering::SeqCst);
        self.mode = self.rec().mode.load(Ordering::SeqCst);
        let l = &self.ring.layout;
        let mut sum = 0u8;
        for s in 0..l.n_slots {
            let rec = self.ring.reader_rec(self.i);
            rec.pin.store(s as u32 + 1, Ordering::SeqCst);
            if self.ring.slot_rec(s).state.load(Ordering::SeqCst) != BUSY {
                let p = self.ring.slot_ptr(s);
                for off in (0..l.stride).step_by(PAGE) {
                    // SAFETY: `off < stride`, so the byte is inside slot `s` of the mapping.
                    // The slot is pinned and was not BUSY after the pin, so the writer (which
                    // claims a slot before checking pins) does not write it until the pin is
                    // released below: the read races with nothing.
                    sum = sum.wrapping_add(unsafe { std::ptr::read_volatile(p.add(off)) });
                }
            }
            rec.pin.store(0, Ordering::SeqCst);
        }
        self.ring.wake_writer();
        std::hint::black_box(sum);
    }

    /// Counters of this reader.
    pub fn stats(&self) -> ReaderStats {
        self.ring.reader_stats(self.i)
    }

    /// The mode this reader was configured with.
    pub fn mode(&self) -> ReadMode {
        match self.rec().mode.load(Ordering::SeqCst) {
            MODE_EVERY => ReadMode::Every,
            MODE_EVERY_OVERRUN => ReadMode::EveryOrOverrun,
            _ => ReadMode::Latest,
        }
    }

    fn find(&self, seq: u64) -> Option<usize> {
        (0..self.ring.layout.n_slots)
            .find(|&i| self.ring.slot_rec(i).state.load(Ordering::SeqCst) == seq + 1)
    }

    /// Whether the writer holds a slot (filling it, or about to back off).
    fn any_busy(&self) -> bool {
        (0..self.ring.layout.n_slots)
            .any(|i| self.ring.slot_rec(i).state.load(Ordering::SeqCst) == BUSY)
    }

    /// The oldest frame still in the ring with a sequence number `>= from`.
    fn oldest_from(&self, from: u64) -> Option<u64> {
        (0..self.ring.layout.n_slots)
            .filter_map(
                |i| match self.ring.slot_rec(i).state.load(Ordering::SeqCst) {
                    0 | BUSY => None,
                    s => Some(s - 1),
                },
            )
            .filter(|&s| s >= from)
            .min()
    }

    /// The next frame for this reader's mode, waiting up to `timeout` for one.
    pub fn next(&mut self, timeout: Duration) -> Result<Next<'_>> {
        self.attach();
        let deadline = sys::monotonic_ns().saturating_add(sys::ns(timeout));
        let h = self.ring.hdr();
        let mut busy_waited = false;
        loop {
            if self.rec().mode.load(Ordering::SeqCst) == MODE_DETACHED {
                return Ok(Next::Detached);
            }
            let seen = h.new_frame.load(Ordering::SeqCst);
            let published = h.published.0.load(Ordering::SeqCst);
            let cursor = self.rec().cursor.load(Ordering::SeqCst);
            if published > cursor {
                let target = if self.mode == MODE_LATEST {
                    published - 1
                } else {
                    cursor
                };
                if let Some(slot) = self.find(target) {
                    let rec = self.rec();
                    rec.pin.store(slot as u32 + 1, Ordering::SeqCst);
                    if self.ring.slot_rec(slot).state.load(Ordering::SeqCst) != target + 1 {
                        rec.pin.store(0, Ordering::SeqCst);
                        self.ring.wake_writer();
                        continue;
                    }
                    if target > cursor {
                        if self.mode == MODE_LATEST {
                            rec.skipped.fetch_add(target - cursor, Ordering::Relaxed);
                        } else {
                            rec.overruns.fetch_add(target - cursor, Ordering::Relaxed);
                        }
                    }
                    let s = self.ring.slot_rec(slot);
                    let pixel = PixelFormat::from_code(s.pixel.load(Ordering::Relaxed))
                        .unwrap_or(PixelFormat::Mono8);
                    let info = FrameInfo {
                        index: s.index.load(Ordering::Relaxed),
                        timestamp_ns: s.timestamp_ns.load(Ordering::Relaxed),
                        format: FrameFormat::new(
                            s.width.load(Ordering::Relaxed),
                            s.height.load(Ordering::Relaxed),
                            pixel,
                        ),
                    };
                    return Ok(Next::Frame(FrameRef {
                        reader: self,
                        slot,
                        seq: target,
                        info,
                    }));
                }
                if self.mode != MODE_LATEST {
                    // A BUSY slot may still hold our frame: the writer claims a slot, then
                    // backs off if a reader pinned it. Give it up to 1 ms to settle before
                    // counting the frame as overwritten.
                    if !busy_waited && self.any_busy() {
                        busy_waited = true;
                        let until = sys::monotonic_ns() + 1_000_000;
                        while self.any_busy() && sys::monotonic_ns() < until {
                            std::thread::sleep(Duration::from_micros(50));
                        }
                        continue;
                    }
                    // Overwritten before we read it (only possible without back-pressure,
                    // or if this reader was detached meanwhile): jump to the oldest kept.
                    if let Some(oldest) = self.oldest_from(cursor) {
                        if oldest > cursor {
                            self.rec()
                                .overruns
                                .fetch_add(oldest - cursor, Ordering::Relaxed);
                            self.rec().cursor.store(oldest, Ordering::SeqCst);
                            continue;
                        }
                    }
                }
                // The frame's slot is being reused (the writer claimed it because every other
                // slot is pinned or still wanted): sleep until the next publish.
                let now = sys::monotonic_ns();
                if now >= deadline {
                    return Ok(Next::Timeout);
                }
                h.readers_waiting.fetch_add(1, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                if h.published.0.load(Ordering::SeqCst) == published {
                    sys::futex_wait(&h.new_frame, seen, Some(deadline.min(now + 1_000_000)));
                }
                h.readers_waiting.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            if h.writer_closed.load(Ordering::SeqCst) != 0 {
                return Ok(Next::Closed);
            }
            let now = sys::monotonic_ns();
            if now >= deadline {
                return Ok(Next::Timeout);
            }
            h.readers_waiting.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if h.published.0.load(Ordering::SeqCst) == published
                && h.writer_closed.load(Ordering::SeqCst) == 0
            {
                sys::futex_wait(&h.new_frame, seen, Some(deadline.min(now + SLICE_NS)));
            }
            h.readers_waiting.fetch_sub(1, Ordering::SeqCst);
            if h.published.0.load(Ordering::SeqCst) == published
                && h.writer_closed.load(Ordering::SeqCst) == 0
                && !process_alive(h.writer_pid.load(Ordering::SeqCst))
            {
                return Ok(Next::WriterGone);
            }
        }
    }

    /// Detaches this reader: the writer no longer waits for it.
    pub fn close(&mut self) {
        let rec = self.rec();
        rec.pin.store(0, Ordering::SeqCst);
        rec.mode.store(MODE_DETACHED, Ordering::SeqCst);
        self.ring.wake_writer();
    }
}

impl FrameRef<'_> {
    /// The frame's description.
    pub fn info(&self) -> &FrameInfo {
        &self.info
    }

    /// The ring's sequence number of this frame (0 for the first frame published).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The frame's bytes.
    pub fn data(&self) -> &[u8] {
        let ring = &self.reader.ring;
        let len = self.info.format.bytes().min(ring.layout.slot_bytes);
        // SAFETY: this reader pinned the slot and then saw its state unchanged, so the writer
        // (which claims a slot before checking pins) will not write it until the pin is
        // released in Drop; the frame's bytes were published by the writer's SeqCst store
        // of the state that we loaded. `len` is within the slot.
        unsafe { std::slice::from_raw_parts(ring.slot_ptr(self.slot), len) }
    }
}

impl std::ops::Deref for FrameRef<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data()
    }
}

impl Drop for FrameRef<'_> {
    fn drop(&mut self) {
        let rec = self.reader.rec();
        rec.cursor.store(self.seq + 1, Ordering::SeqCst);
        rec.pin.store(0, Ordering::SeqCst);
        rec.read.fetch_add(1, Ordering::Relaxed);
        self.reader.ring.wake_writer();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(w: u32) -> FrameFormat {
        FrameFormat::new(w, 4, PixelFormat::Mono8)
    }

    fn put(w: &mut Writer, value: u8, index: u64) -> u64 {
        let mut s = w
            .acquire(Duration::from_millis(10))
            .unwrap()
            .expect("a free slot");
        s.buf().fill(value);
        s.publish(FrameInfo::now(index, fmt(16))).unwrap()
    }

    fn io(kind: std::io::ErrorKind) -> std::io::Result<String> {
        Err(std::io::Error::from(kind))
    }

    const RUNNING: &str = "1234 (cam (child)) S 1 1234 1234 0 -1";
    const ZOMBIE: &str = "1234 (cam (child)) Z 1 1234 1234 0 -1";

    /// Item 8 of issue 9: a pin must never be released for a process that may be alive.
    #[test]
    fn only_a_proven_death_is_dead() {
        use nix::errno::Errno;
        use std::io::ErrorKind;
        let ok = || Ok(());
        // Proven deaths.
        assert!(!liveness(Err(Errno::ESRCH), || Ok(RUNNING.into()), ok));
        assert!(!liveness(Ok(()), || Ok(ZOMBIE.into()), ok));
        assert!(!liveness(Err(Errno::EPERM), || Ok(ZOMBIE.into()), ok));
        assert!(!liveness(
            Ok(()),
            || io(ErrorKind::NotFound),
            || Err(Errno::ESRCH)
        ));
        // Exists but not ours (EPERM): alive.
        assert!(liveness(Err(Errno::EPERM), || Ok(RUNNING.into()), ok));
        // /proc unreadable (hidepid, EMFILE, ...): alive, whatever kill said short of ESRCH.
        assert!(liveness(
            Err(Errno::EPERM),
            || io(ErrorKind::PermissionDenied),
            ok
        ));
        assert!(liveness(Ok(()), || io(ErrorKind::PermissionDenied), ok));
        assert!(liveness(Ok(()), || io(ErrorKind::Other), ok));
        // Not in this /proc (another pid namespace) but the kernel still knows it: alive.
        assert!(liveness(Ok(()), || io(ErrorKind::NotFound), ok));
        assert!(liveness(
            Err(Errno::EPERM),
            || io(ErrorKind::NotFound),
            || Err(Errno::EPERM)
        ));
        // A stat line we cannot parse proves nothing.
        assert!(liveness(Ok(()), || Ok(String::new()), ok));
    }

    #[test]
    fn real_processes_alive_zombie_and_reaped() {
        assert!(process_alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Wait (bounded) until it is a zombie: exited, not reaped yet.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            if stat.rsplit_once(')').unwrap().1.split_whitespace().next() == Some("Z") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "child never exited");
            std::thread::yield_now();
        }
        assert!(!process_alive(pid), "a zombie is dead");
        child.wait().unwrap();
        assert!(!process_alive(pid), "a reaped process is dead");
    }

    #[test]
    fn config_is_checked() {
        assert!(FrameRing::new(&RingConfig::new(fmt(16), &[ReadMode::Latest]).slots(2)).is_err());
        assert!(FrameRing::new(&RingConfig::new(fmt(0), &[])).is_err());
        let nine = [ReadMode::Latest; 9];
        assert!(FrameRing::new(&RingConfig::new(fmt(16), &nine)).is_err());
    }

    #[test]
    fn latest_reader_skips_and_counts() {
        let ring = FrameRing::new(&RingConfig::new(fmt(16), &[ReadMode::Latest])).unwrap();
        let mut w = ring.writer().unwrap();
        let mut r = ring.reader(0).unwrap();
        for v in 0..5 {
            put(&mut w, v, v as u64);
        }
        match r.next(Duration::ZERO).unwrap() {
            Next::Frame(f) => {
                assert_eq!(f.seq(), 4);
                assert_eq!(f.info().index, 4);
                assert!(f.iter().all(|&b| b == 4));
                assert_eq!(f.len(), 64);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.next(Duration::from_millis(1)).unwrap(),
            Next::Timeout
        ));
        let s = r.stats();
        assert_eq!((s.read, s.skipped, s.overruns), (1, 4, 0));
        w.close();
        assert!(matches!(r.next(Duration::ZERO).unwrap(), Next::Closed));
    }

    #[test]
    fn every_reader_holds_the_writer_back_and_loses_nothing() {
        let cfg = RingConfig::new(fmt(16), &[ReadMode::Every]).slots(3);
        let ring = FrameRing::new(&cfg).unwrap();
        let mut w = ring.writer().unwrap();
        let mut r = ring.reader(0).unwrap();
        r.attach();
        for v in 0..3 {
            put(&mut w, v, v as u64);
        }
        // Full: the writer times out instead of overwriting frame 0.
        assert!(w.acquire(Duration::from_millis(5)).unwrap().is_none());
        assert_eq!(ring.writer_stats().waits, 1);
        for expect in 0..3u8 {
            match r.next(Duration::ZERO).unwrap() {
                Next::Frame(f) => assert!(f.iter().all(|&b| b == expect)),
                other => panic!("{other:?}"),
            }
            put(&mut w, expect + 3, u64::from(expect) + 3);
        }
        assert_eq!(r.stats().skipped + r.stats().overruns, 0);
    }

    #[test]
    fn overrun_reader_counts_lost_frames_and_never_blocks_the_writer() {
        let cfg = RingConfig::new(fmt(16), &[ReadMode::EveryOrOverrun]).slots(3);
        let ring = FrameRing::new(&cfg).unwrap();
        let mut w = ring.writer().unwrap();
        let mut r = ring.reader(0).unwrap();
        r.attach();
        for v in 0..10 {
            put(&mut w, v, v as u64);
        }
        // Slots hold frames 7, 8, 9: frames 0..7 were overrun.
        let mut got = Vec::new();
        while let Next::Frame(f) = r.next(Duration::ZERO).unwrap() {
            got.push(f.seq());
        }
        assert_eq!(got, vec![7, 8, 9]);
        assert_eq!(r.stats().overruns, 7);
    }

    #[test]
    fn a_pinned_slot_is_never_overwritten() {
        let cfg = RingConfig::new(fmt(16), &[ReadMode::Latest]).slots(3);
        let ring = FrameRing::new(&cfg).unwrap();
        let mut w = ring.writer().unwrap();
        let mut r = ring.reader(0).unwrap();
        put(&mut w, 1, 0);
        let Next::Frame(f) = r.next(Duration::ZERO).unwrap() else {
            panic!()
        };
        for v in 2..20 {
            put(&mut w, v, u64::from(v));
        }
        assert!(
            f.iter().all(|&b| b == 1),
            "the pinned frame changed under the reader"
        );
        drop(f);
        assert_eq!(ring.writer_stats().waits, 0);
    }

    #[test]
    fn abort_marks_slot_empty() {
        let ring = FrameRing::new(&RingConfig::new(fmt(16), &[ReadMode::Every])).unwrap();
        let mut w = ring.writer().unwrap();
        {
            let mut s = w.acquire(Duration::ZERO).unwrap().unwrap();
            s.buf()[0] = 9;
        }
        assert_eq!(ring.writer_stats().aborted, 1);
        assert_eq!(w.published(), 0);
        let mut s = w.acquire(Duration::ZERO).unwrap().unwrap();
        let too_big = FrameInfo::now(0, FrameFormat::new(100, 100, PixelFormat::Mono8));
        s.buf();
        let e = s.publish(too_big).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfRange);
    }

    #[test]
    fn a_dead_latest_reader_is_detached() {
        let cfg = RingConfig::new(fmt(16), &[ReadMode::Latest]).slots(3);
        let ring = FrameRing::new(&cfg).unwrap();
        // A process that has exited and been reaped: its pid is dead.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        ring.set_reader_pid(0, pid);
        let mut w = ring.writer().unwrap();
        put(&mut w, 1, 0);
        assert!(!ring.reader_stats(0).attached);
        assert_eq!(ring.writer_stats().dead_readers, 1);
    }

    #[test]
    fn each_end_can_be_taken_once() {
        let cfg = RingConfig::new(fmt(16), &[ReadMode::Latest, ReadMode::Every]);
        let ring = FrameRing::new(&cfg).unwrap();
        let _w = ring.writer().unwrap();
        // A clone shares the claims: a second writer would alias the slot being filled.
        let e = ring.clone().writer().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAllowed);
        let _r0 = ring.reader(0).unwrap();
        assert_eq!(ring.reader(0).unwrap_err().kind(), ErrorKind::NotAllowed);
        let _r1 = ring.clone().reader(1).unwrap();
        assert_eq!(ring.reader(1).unwrap_err().kind(), ErrorKind::NotAllowed);
        assert_eq!(ring.reader(2).unwrap_err().kind(), ErrorKind::OutOfRange);
    }

    #[test]
    fn an_unwritten_abort_keeps_the_old_frame() {
        let cfg = RingConfig::new(fmt(16), &[ReadMode::EveryOrOverrun]).slots(3);
        let ring = FrameRing::new(&cfg).unwrap();
        let mut w = ring.writer().unwrap();
        let mut r = ring.reader(0).unwrap();
        r.attach();
        for v in 0..3 {
            put(&mut w, v, v as u64);
        }
        // The camera had no frame: the slot it took (frame 0's, the oldest) is given back.
        let mut s = w.acquire(Duration::ZERO).unwrap().unwrap();
        s.buf();
        s.abort_unwritten();
        // Dropped without touching the buffer: same.
        drop(w.acquire(Duration::ZERO).unwrap().unwrap());
        assert_eq!(ring.writer_stats().aborted, 2);
        let mut got = Vec::new();
        while let Next::Frame(f) = r.next(Duration::ZERO).unwrap() {
            assert!(f.iter().all(|&b| u64::from(b) == f.seq()));
            got.push(f.seq());
        }
        assert_eq!(got, vec![0, 1, 2]);
        assert_eq!(r.stats().overruns, 0);
        // A slot whose buffer was handed out and then dropped is emptied: frame 0 is gone.
        let mut s = w.acquire(Duration::ZERO).unwrap().unwrap();
        s.buf()[0] = 77;
        drop(s);
        assert!(r
            .next(Duration::ZERO)
            .map(|n| matches!(n, Next::Timeout))
            .unwrap());
    }
}
