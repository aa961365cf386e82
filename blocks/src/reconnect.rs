//! What [`IOBlock`](crate::IOBlock) and [`Machine`](crate::Machine) do when a device is
//! lost mid-test: fail (the default) or, opted in with `reconnect(attempts, backoff)`,
//! close it and open it again after a back-off.
//!
//! The principal type is [`Reconnect`], the policy: at most `attempts` openings per test
//! (for the whole test, not per loss), the first one `backoff` after the loss, each next one
//! after twice the previous wait, at most [`Reconnect::MAX_BACKOFF_FACTOR`] × `backoff`.
//!
//! A device is lost when a call returns an error of kind
//! [`Communication`](crabby::ErrorKind::Communication) (the port vanished, the link broke):
//! other kinds (a timeout, a fault the device reports, a value out of range) end the test as
//! before. While the device is down the Block keeps looping without touching it, sends no
//! sample for it (a gap in the data, logged, never invented values) and tries to open it when
//! the back-off has passed. The back-off is waited across loops, but an opening runs inside
//! `step`: it holds the loop as long as the driver's `open` (and, for an IOBlock, writing the
//! latest command again) takes, which the driver's I/O timeout bounds; a long one shows as a
//! loop-rate warning. Once back, an IOBlock writes its latest command again and a Machine
//! applies the latest commands again (while the test is paused it stops the actuator
//! instead): a motor may start again, on the newest command only. Each loss, reconnection and failed attempt is logged, and the
//! Block adds their count to the run report ([`Context::report_note`]). Once the attempts
//! are used up, the next loss (or a failed last attempt) fails the Block with the error that
//! lost the device.

use crabby::{Context, Error, ErrorKind, Result};
use std::time::{Duration, Instant};

/// The reconnection policy of a Block (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    /// Openings allowed over the whole test.
    pub attempts: u32,
    /// Wait before the first opening after a loss.
    pub backoff: Duration,
}

impl Reconnect {
    /// The back-off doubles after each failed opening, up to this many times `backoff`.
    pub const MAX_BACKOFF_FACTOR: u32 = 16;
    /// The most openings a policy may allow.
    pub const MAX_ATTEMPTS: u32 = 1000;

    /// A policy; checked by [`check`](Reconnect::check) before the test starts.
    pub fn new(attempts: u32, backoff: Duration) -> Self {
        Reconnect { attempts, backoff }
    }

    /// A configuration error unless `attempts` is 1..=[`MAX_ATTEMPTS`](Self::MAX_ATTEMPTS)
    /// and `backoff` is above 0 and at most 60 s.
    pub fn check(&self) -> Result<()> {
        if !(1..=Self::MAX_ATTEMPTS).contains(&self.attempts) {
            return Err(Error::config(format!(
                "reconnect: {} attempts; give 1 to {} (or no reconnect at all: a lost device then fails the Block)",
                self.attempts,
                Self::MAX_ATTEMPTS
            )));
        }
        if self.backoff.is_zero() || self.backoff > Duration::from_secs(60) {
            return Err(Error::config(format!(
                "reconnect: back-off {:?} must be above 0 and at most 60 s",
                self.backoff
            )));
        }
        Ok(())
    }

    /// The wait before opening attempt `k` (1 for the first after a loss).
    pub fn delay(&self, k: u32) -> Duration {
        let factor = 1u32 << k.saturating_sub(1).min(4);
        self.backoff * factor.min(Self::MAX_BACKOFF_FACTOR)
    }
}

/// Where a device stands.
#[derive(Debug, Clone)]
enum Link {
    Up,
    Down {
        since: Instant,
        next_try: Instant,
        /// Openings tried since this loss.
        tries: u32,
        /// What lost the device.
        cause: Cause,
    },
}

/// The error that lost a device (kept to fail the Block with it if it never comes back).
#[derive(Debug, Clone)]
struct Cause {
    kind: ErrorKind,
    description: String,
    origin: Option<String>,
}

/// What the Block should do after [`Reconnector::attempted`].
#[derive(Debug, PartialEq)]
pub(crate) enum Attempt {
    /// The device is back.
    Reconnected,
    /// Still down; the next opening is scheduled.
    Waiting,
}

/// The reconnection state and counts of one device.
#[derive(Debug)]
pub(crate) struct Reconnector {
    policy: Option<Reconnect>,
    link: Link,
    used: u32,
    losses: u32,
    reconnections: u32,
    failed: u32,
    downtime: Duration,
}

impl Reconnector {
    pub(crate) fn new(policy: Option<Reconnect>) -> Self {
        Reconnector {
            policy,
            link: Link::Up,
            used: 0,
            losses: 0,
            reconnections: 0,
            failed: 0,
            downtime: Duration::ZERO,
        }
    }

    /// Whether the device is down (closed, waiting to be opened again).
    pub(crate) fn is_down(&self) -> bool {
        matches!(self.link, Link::Down { .. })
    }

    /// Whether an error loses the device, i.e. the Block should close it and reconnect
    /// rather than fail: a Communication error, a policy, and attempts left. Counts the loss.
    pub(crate) fn lost(&mut self, e: &Error, device: &str, now: Instant) -> bool {
        let Some(p) = self.policy else {
            return false;
        };
        if e.kind() != ErrorKind::Communication || self.is_down() {
            return false;
        }
        self.losses += 1;
        if self.used >= p.attempts {
            log::error!(
                "device '{device}' lost ({e}); all {} reconnection attempts of this test are used",
                p.attempts
            );
            return false;
        }
        let wait = p.delay(1);
        log::warn!(
            "device '{device}' lost: {e}; no data from it until it is back; reconnecting in {wait:?} (attempt {} of {})",
            self.used + 1,
            p.attempts
        );
        self.link = Link::Down {
            since: now,
            next_try: now + wait,
            tries: 0,
            cause: Cause {
                kind: e.kind(),
                description: e.description().to_owned(),
                origin: e.origin().map(str::to_owned),
            },
        };
        true
    }

    /// Whether an opening is due.
    pub(crate) fn due(&self, now: Instant) -> bool {
        matches!(&self.link, Link::Down { next_try, .. } if now >= *next_try)
    }

    /// Records the outcome of an opening. `Err` (the error that lost the device, with the
    /// opening's) when the attempts are used up: the Block fails.
    pub(crate) fn attempted(
        &mut self,
        r: Result<()>,
        device: &str,
        now: Instant,
    ) -> Result<Attempt> {
        let (
            Some(p),
            Link::Down {
                since,
                tries,
                cause,
                ..
            },
        ) = (self.policy, &self.link)
        else {
            return Ok(Attempt::Reconnected);
        };
        let (since, tries, cause) = (*since, *tries + 1, cause.clone());
        self.used += 1;
        match r {
            Ok(()) => {
                let gap = now.saturating_duration_since(since);
                self.downtime += gap;
                self.reconnections += 1;
                self.link = Link::Up;
                log::warn!(
                    "device '{device}' reconnected after {:.3} s without data ({tries} attempt(s))",
                    gap.as_secs_f64()
                );
                Ok(Attempt::Reconnected)
            }
            Err(e) => {
                self.failed += 1;
                if self.used >= p.attempts {
                    self.downtime += now.saturating_duration_since(since);
                    return Err(Error::new(
                        cause.kind,
                        format!(
                            "{}; reconnection failed {} time(s), all {} attempts used (last: {e})",
                            cause.description, self.failed, p.attempts
                        ),
                    )
                    .with_origin(cause.origin.as_deref().unwrap_or(device)));
                }
                let wait = p.delay(tries + 1);
                log::warn!(
                    "device '{device}': reconnection attempt {} of {} failed: {e}; next in {wait:?}",
                    self.used,
                    p.attempts
                );
                self.link = Link::Down {
                    since,
                    next_try: now + wait,
                    tries,
                    cause,
                };
                Ok(Attempt::Waiting)
            }
        }
    }

    /// The line for the run report, if the device was ever lost.
    pub(crate) fn note(&self, device: &str, now: Instant) -> Option<String> {
        if self.losses == 0 {
            return None;
        }
        let mut down = self.downtime;
        let still = if let Link::Down { since, .. } = &self.link {
            down += now.saturating_duration_since(*since);
            "; still down at the end"
        } else {
            ""
        };
        Some(format!(
            "device '{device}': connection lost {} time(s), reconnected {} time(s), {} failed attempt(s) ({} of {} attempts used), {:.3} s without data{still}",
            self.losses,
            self.reconnections,
            self.failed,
            self.used,
            self.policy.map_or(0, |p| p.attempts),
            down.as_secs_f64()
        ))
    }

    /// Adds [`note`](Self::note) to the run report and the log.
    pub(crate) fn report(&self, ctx: &Context, device: &str) {
        if let Some(n) = self.note(device, Instant::now()) {
            log::info!("{n}");
            ctx.report_note(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost_link() -> Error {
        crabby::hardware::device_error(ErrorKind::Communication, "cell", "port vanished")
    }

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let p = Reconnect::new(10, Duration::from_millis(100));
        let d: Vec<u64> = (1..=8).map(|k| p.delay(k).as_millis() as u64).collect();
        assert_eq!(d, [100, 200, 400, 800, 1600, 1600, 1600, 1600]);
        assert!(Reconnect::new(0, Duration::from_millis(1)).check().is_err());
        assert!(Reconnect::new(1, Duration::ZERO).check().is_err());
        Reconnect::new(3, Duration::from_millis(50))
            .check()
            .unwrap();
    }

    #[test]
    fn without_a_policy_or_for_other_kinds_the_device_is_not_lost() {
        let t = Instant::now();
        let mut r = Reconnector::new(None);
        assert!(!r.lost(&lost_link(), "cell", t));
        let mut r = Reconnector::new(Some(Reconnect::new(3, Duration::from_millis(10))));
        let timeout = Error::new(ErrorKind::Timeout, "no answer");
        assert!(!r.lost(&timeout, "cell", t));
        assert!(r.note("cell", t).is_none());
    }

    #[test]
    fn losses_attempts_and_reconnections_are_counted() {
        let ms = Duration::from_millis;
        let t = Instant::now();
        let mut r = Reconnector::new(Some(Reconnect::new(3, ms(100))));
        assert!(r.lost(&lost_link(), "cell", t));
        assert!(r.is_down() && !r.due(t + ms(99)) && r.due(t + ms(100)));
        // First opening fails: next one 200 ms later.
        let fail = || Err(Error::communication("no such device"));
        assert_eq!(
            r.attempted(fail(), "cell", t + ms(100)).unwrap(),
            Attempt::Waiting
        );
        assert!(!r.due(t + ms(299)) && r.due(t + ms(300)));
        assert_eq!(
            r.attempted(Ok(()), "cell", t + ms(300)).unwrap(),
            Attempt::Reconnected
        );
        assert!(!r.is_down());
        let n = r.note("cell", t + ms(300)).unwrap();
        assert!(
            n.contains("lost 1 time(s), reconnected 1 time(s), 1 failed attempt(s) (2 of 3 attempts used), 0.300 s without data"),
            "{n}"
        );
        // Lost again: the last attempt fails, and the Block fails with the cause.
        assert!(r.lost(&lost_link(), "cell", t + ms(1000)));
        let e = r.attempted(fail(), "cell", t + ms(1100)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Communication);
        assert!(
            e.description().contains("port vanished")
                && e.description().contains("all 3 attempts used"),
            "{e}"
        );
        // No attempt left: the next loss is not a reconnection.
        let mut r2 = Reconnector::new(Some(Reconnect::new(1, ms(10))));
        assert!(r2.lost(&lost_link(), "cell", t));
        r2.attempted(Ok(()), "cell", t + ms(10)).unwrap();
        assert!(!r2.lost(&lost_link(), "cell", t + ms(20)));
        assert!(r2
            .note("cell", t + ms(20))
            .unwrap()
            .contains("lost 2 time(s), reconnected 1"));
    }
}
