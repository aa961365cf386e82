//! Loop pacing on absolute deadlines, and the loop statistics of the report.

use crate::block::Rate;
use crate::control::Control;
use crate::sys;

/// Histogram of deviations in microseconds (1 µs bins up to 20 ms, then one overflow bin).
struct Histogram {
    bins: Vec<u32>,
    overflow: u64,
    count: u64,
}

const BINS: usize = 20_000;

/// How far behind schedule a paced loop still catches up (see `Pacer::wait_next`).
const CATCH_UP_NS: u64 = 20_000_000;

impl Histogram {
    fn new() -> Self {
        Histogram {
            bins: vec![0; BINS],
            overflow: 0,
            count: 0,
        }
    }
    fn add(&mut self, us: f64) {
        self.count += 1;
        let i = us.max(0.0) as usize;
        match self.bins.get_mut(i) {
            Some(b) => *b += 1,
            None => self.overflow += 1,
        }
    }
    fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let target = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut acc = 0u64;
        for (i, b) in self.bins.iter().enumerate() {
            acc += u64::from(*b);
            if acc >= target {
                return Some(i as f64 + 0.5);
            }
        }
        Some(BINS as f64)
    }
}

/// Paces a Block's loop and measures it.
pub(crate) struct Pacer {
    period_ns: Option<u64>,
    next: u64,
    first: u64,
    /// The common start `t0` every paced Block's deadlines are aligned on (0: unknown).
    origin: u64,
    last_start: u64,
    last_end: u64,
    loops: u64,
    missed: u64,
    max_late_ns: u64,
    hist: Histogram,
    display: bool,
    last_display: u64,
    loops_at_display: u64,
}

/// Loop statistics for the report.
pub(crate) struct LoopStats {
    pub loops: u64,
    pub mean_freq: Option<f64>,
    pub jitter_p99_us: Option<f64>,
    pub max_late_us: Option<f64>,
    pub missed: u64,
}

impl Pacer {
    pub fn new(rate: Rate, display: bool) -> Self {
        let period_ns = match rate {
            Rate::Free => None,
            Rate::Hz(hz) => Some((1e9 / hz).round().max(1.0) as u64),
        };
        Pacer {
            period_ns,
            next: 0,
            first: 0,
            origin: 0,
            last_start: 0,
            last_end: 0,
            loops: 0,
            missed: 0,
            max_late_ns: 0,
            hist: Histogram::new(),
            display,
            last_display: 0,
            loops_at_display: 0,
        }
    }

    /// Aligns the deadlines on `t0` (the common start), before the first loop.
    pub fn align_on(&mut self, t0: u64) {
        self.origin = t0;
    }

    /// Call right before each `step`, with the time `wait_next` read at the deadline if it
    /// did (no second clock read); returns the loop's start time.
    pub fn loop_started(&mut self, woke_at: Option<u64>) -> u64 {
        let now = woke_at.unwrap_or_else(sys::monotonic_ns);
        if self.loops == 0 {
            // The first loop runs at once; the next ones on the grid t0 + k·period shared by
            // every Block, so Blocks at the same (or a multiple) rate wake on one timer
            // expiry instead of one each a few microseconds apart: on a virtual machine
            // every separate expiry costs an exit to the hypervisor.
            self.next = match self.period_ns {
                Some(p) if self.origin != 0 && self.origin <= now => now - (now - self.origin) % p,
                _ => now,
            };
            // The loops are counted from that grid point (their mean rate is exact), and the
            // first, shortened, period is phase, not jitter: it is not in the histogram.
            self.first = self.next;
            self.last_display = now;
        } else if self.loops >= 2 || self.first == self.last_start {
            let period = now - self.last_start;
            let dev = match self.period_ns {
                Some(p) => (period as f64 - p as f64).abs(),
                None => period as f64,
            };
            self.hist.add(dev / 1e3);
        }
        self.last_start = now;
        self.loops += 1;
        if self.display && now - self.last_display >= 2_000_000_000 {
            let hz = (self.loops - self.loops_at_display) as f64 * 1e9
                / (now - self.last_display) as f64;
            log::info!("loops/s: {hz:.2}");
            self.last_display = now;
            self.loops_at_display = self.loops;
        }
        now
    }

    /// Call right after each `step`, with the time it ended.
    pub fn loop_ended(&mut self, now: u64) {
        self.last_end = now;
    }

    /// Call after each `step`, with the time it ended (`now`, just read): sleeps until the
    /// next deadline, or returns at once when the stop event is set. Sleeping is a futex
    /// wait on the Block's doorbell, which the coordinator rings at the stop. Returns the
    /// time read when the deadline came (`None`: free-running, or stopping), for
    /// `loop_started`: the clock is read twice per loop (end of `step`, wake-up), not five
    /// times.
    pub fn wait_next(&mut self, control: &Control, slot: usize, mut now: u64) -> Option<u64> {
        let p = self.period_ns?;
        self.next += p;
        // A short hiccup (a few ms of scheduling delay) is caught up by running the late
        // loops back to back, so the mean rate stays exact. Further behind than that, the
        // missed deadlines are skipped (and counted) rather than run in a long burst.
        let max_behind = CATCH_UP_NS.max(2 * p);
        if now > self.next + max_behind {
            let behind = (now - self.next) / p;
            self.missed += behind;
            self.next += behind * p;
        }
        let doorbell = &control.slot(slot).doorbell;
        loop {
            if control.stopping() {
                return None;
            }
            if now >= self.next {
                self.max_late_ns = self.max_late_ns.max(now - self.next);
                return Some(now);
            }
            let seen = doorbell.load(std::sync::atomic::Ordering::SeqCst);
            if control.stopping() {
                return None;
            }
            // A deadline passed meanwhile makes the wait return at once (ETIMEDOUT).
            sys::futex_wait(doorbell, seen, Some(self.next));
            now = sys::monotonic_ns();
        }
    }

    pub fn stats(&self) -> LoopStats {
        // Loops over the time the Block ran, from the start of its first loop to the end of
        // its last: a Block that stalled (blocked on a full link, stuck in `step`) shows its
        // real rate, not the rate of the loops it managed before the stall.
        let span = self.last_end.saturating_sub(self.first);
        let mean_freq = (self.loops >= 2 && span > 0).then(|| {
            let period = self.period_ns.unwrap_or(0) as f64;
            // A paced loop's last period ends at its next deadline, not when its step ends.
            self.loops as f64 * 1e9
                / (span as f64 + period.min(span as f64 / (self.loops - 1) as f64))
        });
        LoopStats {
            loops: self.loops,
            mean_freq,
            jitter_p99_us: self.hist.quantile(0.99),
            max_late_us: self.period_ns.map(|_| self.max_late_ns as f64 / 1e3),
            missed: self.missed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_on_the_common_grid() {
        let mut p = Pacer::new(Rate::Hz(1000.0), false);
        p.align_on(5_000_000_000);
        // The first loop starts 2.345 ms after t0: it runs at once, the next deadline is the
        // next multiple of 1 ms after t0.
        let first = 5_002_345_000;
        assert_eq!(p.loop_started(Some(first)), first);
        p.next += 1_000_000;
        assert_eq!(p.next, 5_003_000_000);
        // Unknown t0 (0): the first loop is the origin, as before.
        let mut p = Pacer::new(Rate::Hz(1000.0), false);
        p.loop_started(Some(first));
        assert_eq!(p.next, first);
    }

    #[test]
    fn quantile_of_known_distribution() {
        let mut h = Histogram::new();
        for i in 0..100 {
            h.add(i as f64);
        }
        assert_eq!(h.quantile(0.99), Some(98.5));
        assert_eq!(h.quantile(0.5), Some(49.5));
        h.add(1e9);
        assert_eq!(h.quantile(1.0), Some(BINS as f64));
    }
}
