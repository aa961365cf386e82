//! Link tests: ordering, the receive modes, wait, end of stream, zero loss under a slow
//! receiver, drain at stop, receiver crash, drop-oldest accounting, modifiers, bad input.

#[macro_use]
mod common;

use common::{case, TempDir};
use crabby::modifier::{from_fn, Modifier};
use crabby::{
    Block, Context, Error, ErrorKind, Flow, Label, LinkOptions, Outcome, Overflow, Result, Sample,
    Settings, Test, Value,
};
use std::time::{Duration, Instant};

type R = std::result::Result<(), String>;

fn test(dir: &TempDir) -> Test {
    let mut t = Test::new("links");
    t.log_file(Some(dir.path().join("test.log")));
    t
}

fn fail(msg: String) -> Error {
    Error::new(ErrorKind::Internal, msg)
}

/// Sends `n` samples `{seq, x}` as fast as the link allows (in `begin` when `burst`, else
/// `per_step` per loop), then ends the test.
struct Counter {
    n: u64,
    sent: u64,
    per_step: u64,
    burst: bool,
    end: bool,
}

impl Counter {
    fn new(n: u64) -> Self {
        Counter {
            n,
            sent: 0,
            per_step: 1000,
            burst: false,
            end: true,
        }
    }
    fn send_some(&mut self, ctx: &mut Context, k: u64) -> Result<()> {
        let seq = Label::new("seq");
        let x = Label::new("x");
        for _ in 0..k.min(self.n - self.sent) {
            ctx.send(
                &Sample::new()
                    .with(seq.clone(), self.sent as i64)
                    .with(x.clone(), self.sent as f64 * 0.5),
            )?;
            self.sent += 1;
        }
        Ok(())
    }
}

impl Block for Counter {
    fn begin(&mut self, ctx: &mut Context) -> Result<()> {
        if self.burst {
            self.send_some(ctx, self.n)?;
        }
        Ok(())
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        self.send_some(ctx, self.per_step)?;
        Ok(if self.sent >= self.n && self.end {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// Receives with `recv_each`, checks `seq` is contiguous; optionally sleeps first.
struct Checker {
    expect: u64,
    next: i64,
    sleep_first: Duration,
    slept: bool,
}

impl Checker {
    fn new(expect: u64) -> Self {
        Checker {
            expect,
            next: 0,
            sleep_first: Duration::ZERO,
            slept: false,
        }
    }
    fn take(&mut self, s: &Sample) -> Result<()> {
        let seq = match s.get("seq") {
            Some(Value::Int(v)) => *v,
            other => return Err(fail(format!("bad seq {other:?}"))),
        };
        if seq != self.next {
            return Err(fail(format!(
                "out of order or lost: got seq {seq}, expected {}",
                self.next
            )));
        }
        if s.get_f64("x") != Some(seq as f64 * 0.5) {
            return Err(fail(format!("wrong x for seq {seq}")));
        }
        self.next += 1;
        Ok(())
    }
}

impl Block for Checker {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if !self.slept && !self.sleep_first.is_zero() {
            self.slept = true;
            std::thread::sleep(self.sleep_first); // a deliberately slow receiver
        }
        let mut err = None;
        ctx.recv_each(|_, s| {
            if err.is_none() {
                err = self.take(&s).err();
            }
        });
        err.map_or(Ok(Flow::Continue), Err)
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        for s in ctx
            .drain_until_ended(Duration::from_secs(10))
            .into_iter()
            .flatten()
        {
            self.take(&s)?;
        }
        if self.next as u64 != self.expect {
            return Err(fail(format!(
                "received {} samples, expected {}",
                self.next, self.expect
            )));
        }
        Ok(())
    }
}

fn ok_report(
    r: std::result::Result<crabby::Report, Error>,
) -> std::result::Result<crabby::Report, String> {
    let r = r.map_err(|e| {
        format!(
            "{e}\n{}",
            e.report().map(|r| r.to_string()).unwrap_or_default()
        )
    })?;
    for b in &r.blocks {
        ensure!(
            b.finish_error.is_none(),
            "{}: finish error {:?}",
            b.name,
            b.finish_error
        );
    }
    Ok(r)
}

fn ordering_and_count() -> R {
    let dir = TempDir::new("order");
    let mut t = test(&dir);
    let a = t.add_with(
        Counter::new(200_000),
        Settings::new().name("counter").free_run(),
    );
    let b = t.add_with(
        Checker::new(200_000),
        Settings::new().name("checker").free_run(),
    );
    t.link(a, b);
    let r = ok_report(t.run())?;
    let l = &r.links[0];
    ensure!(
        l.sent == 200_000 && l.received == 200_000 && l.lossless(),
        "{l:?}"
    );
    Ok(())
}

fn zero_loss_burst_slow_receiver() -> R {
    // One million samples in a burst while the receiver sleeps 1 s, then reads at 200 Hz.
    let dir = TempDir::new("burst");
    let mut t = test(&dir);
    t.grace(Duration::from_secs(30), Duration::from_millis(500));
    let mut c = Counter::new(1_000_000);
    c.burst = true;
    let a = t.add_with(c, Settings::new().name("burst").freq(200.0));
    let mut ch = Checker::new(1_000_000);
    ch.sleep_first = Duration::from_secs(1);
    let b = t.add_with(ch, Settings::new().name("slow").freq(200.0));
    t.link(a, b);
    let r = ok_report(t.run())?;
    let l = &r.links[0];
    ensure!(
        l.sent == 1_000_000 && l.received == 1_000_000 && l.lossless(),
        "{l:?}"
    );
    Ok(())
}

/// Sends one sample per loop forever, and writes how many it sent in `finish`.
struct Ticker {
    sent: i64,
}
impl Block for Ticker {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        ctx.send(
            &Sample::new()
                .with("seq", self.sent)
                .with("x", self.sent as f64 * 0.5),
        )?;
        self.sent += 1;
        Ok(Flow::Continue)
    }
}

struct EndAt(f64);
impl Block for EndAt {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        Ok(if ctx.t() > self.0 {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

fn drain_at_stop() -> R {
    // The receiver loops at 2 Hz: most samples are still in the link at the stop.
    let dir = TempDir::new("drain");
    let mut t = test(&dir);
    let a = t.add_with(
        Ticker { sent: 0 },
        Settings::new().name("ticker").freq(2000.0),
    );
    let b = t.add_with(Checker::new(0), Settings::new().name("lazy").freq(2.0));
    t.add_with(EndAt(0.4), Settings::new().name("ender"));
    t.link(a, b);
    // The checker's expected count is unknown in advance: accept the mismatch message only
    // if the link report says every sample sent was received.
    let r = t.run();
    let report = match &r {
        Ok(r) => r.clone(),
        Err(e) => e.report().cloned().ok_or(e.to_string())?,
    };
    let l = &report.links[0];
    ensure!(l.sent > 100, "ticker sent only {}", l.sent);
    ensure!(
        l.received == l.sent && l.lossless(),
        "lost at the stop: {l:?}"
    );
    let fin = report
        .block("lazy")
        .unwrap()
        .finish_error
        .clone()
        .unwrap_or_default();
    ensure!(
        fin.contains(&format!("received {} samples", l.sent)),
        "checker: {fin}"
    );
    Ok(())
}

/// Records what each receive mode returns on a known pending state, in `finish`.
struct Modes;
impl Block for Modes {
    fn step(&mut self, _ctx: &mut Context) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        if !ctx.wait_senders_finished(Duration::from_secs(5)) {
            return Err(fail("senders did not finish".into()));
        }
        let check = |cond: bool, what: &str| {
            if cond {
                Ok(())
            } else {
                Err(fail(what.to_owned()))
            }
        };
        match ctx.name() {
            "oldest" => {
                let s = ctx.recv_oldest();
                // Link 1 (A: x = i, a = i) then link 2 (B: x = 100 + i, b = i): B wins on x.
                check(
                    s.get_f64("x") == Some(100.0)
                        && s.get_f64("a") == Some(0.0)
                        && s.get_f64("b") == Some(0.0),
                    &format!("oldest 1: {s:?}"),
                )?;
                let s = ctx.recv_oldest();
                check(
                    s.get_f64("x") == Some(101.0) && s.get_f64("a") == Some(1.0),
                    &format!("oldest 2: {s:?}"),
                )?;
                for _ in 0..3 {
                    ctx.recv_oldest();
                }
                // B (3 samples) is empty now; A has nothing left either (5 samples).
                check(ctx.recv_oldest().is_empty(), "oldest: not empty at the end")?;
            }
            "latest" => {
                let s = ctx.recv_latest(false);
                check(
                    s.get_f64("x") == Some(102.0)
                        && s.get_f64("a") == Some(4.0)
                        && s.get_f64("b") == Some(2.0)
                        && !s.contains("first"),
                    &format!("latest: {s:?}"),
                )?;
                check(ctx.recv_latest(false).is_empty(), "latest: data left")?;
                let s = ctx.recv_latest(true);
                check(
                    s.get_f64("first") == Some(1.0) && s.get_f64("a") == Some(4.0),
                    &format!("latched: {s:?}"),
                )?;
            }
            "all" => {
                let c = ctx.recv_all();
                check(c.f64s("a") == [0.0, 1.0, 2.0, 3.0, 4.0], "all: a")?;
                check(
                    c.f64s("x") == [0.0, 1.0, 2.0, 3.0, 4.0, 100.0, 101.0, 102.0],
                    &format!("all: x {:?}", c.f64s("x")),
                )?;
                check(c.f64s("first") == [1.0], "all: first")?;
                check(ctx.inputs_ended(), "all: inputs not ended after draining")?;
            }
            "per_link" => {
                let v = ctx.recv_all_per_link();
                check(
                    v.len() == 2 && v[0].len() == 5 && v[1].len() == 3,
                    "per link: counts",
                )?;
                check(v[1][2].get_f64("x") == Some(102.0), "per link: order")?;
            }
            other => return Err(fail(format!("unknown {other}"))),
        }
        Ok(())
    }
}

struct Fixed {
    samples: Vec<Sample>,
}
impl Block for Fixed {
    fn begin(&mut self, ctx: &mut Context) -> Result<()> {
        for s in &self.samples {
            ctx.send(s)?;
        }
        Ok(())
    }
    fn step(&mut self, _ctx: &mut Context) -> Result<Flow> {
        Ok(Flow::Stop)
    }
}

fn four_receive_modes() -> R {
    let dir = TempDir::new("modes");
    let mut t = test(&dir);
    let a_samples = (0..5)
        .map(|i| {
            let s = Sample::new().with("x", i as f64).with("a", i as f64);
            if i == 0 {
                s.with("first", 1.0)
            } else {
                s
            }
        })
        .collect();
    let b_samples = (0..3)
        .map(|i| {
            Sample::new()
                .with("x", 100.0 + i as f64)
                .with("b", i as f64)
        })
        .collect();
    let a = t.add_with(Fixed { samples: a_samples }, Settings::new().name("A"));
    let b = t.add_with(Fixed { samples: b_samples }, Settings::new().name("B"));
    for name in ["oldest", "latest", "all", "per_link"] {
        let m = t.add_with(Modes, Settings::new().name(name));
        t.link(a, m);
        t.link(b, m);
    }
    ok_report(t.run())?;
    Ok(())
}

/// Waits for data and logs how each wait ended: 50 ms waits while no data is due (t < 0.3 s),
/// then 5 s waits, which can only end early because data arrived or the input ended.
struct Waiter {
    log: std::path::PathBuf,
}
impl Block for Waiter {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let timeout = if ctx.t() < 0.3 {
            Duration::from_millis(50)
        } else {
            Duration::from_secs(5)
        };
        let t = Instant::now();
        let got = ctx.wait(timeout);
        let e = t.elapsed();
        let n = ctx.recv_all_per_link().iter().map(Vec::len).sum::<usize>();
        let line = format!(
            "{got} {} {n} {} {} {}\n",
            e.as_micros(),
            ctx.stopping(),
            ctx.inputs_ended(),
            timeout.as_millis()
        );
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.log)
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
        Ok(Flow::Continue)
    }
}

struct SendAt(Vec<f64>, usize);
impl Block for SendAt {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if self.1 < self.0.len() && ctx.t() > self.0[self.1] {
            ctx.send(&Sample::new().with("v", self.1 as i64))?;
            self.1 += 1;
        }
        let done = self.1 == self.0.len() && ctx.t() > self.0[self.0.len() - 1] + 0.2;
        Ok(if done { Flow::Stop } else { Flow::Continue })
    }
}

fn wait_times_out_and_wakes_on_data_and_end_of_stream() -> R {
    let dir = TempDir::new("wait");
    let log = dir.path().join("wait.log");
    let mut t = test(&dir);
    let s = t.add_with(
        SendAt(vec![0.4, 0.6], 0),
        Settings::new().name("sender").freq(1000.0),
    );
    let w = t.add_with(
        Waiter { log: log.clone() },
        Settings::new().name("waiter").free_run(),
    );
    t.link(s, w);
    ok_report(t.run())?;
    let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
    // (got data, µs waited, samples, stopping, inputs ended, timeout ms)
    let rows: Vec<(bool, u128, usize, bool, bool, u128)> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[0] == "true",
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3] == "true",
                f[4] == "true",
                f[5].parse().unwrap(),
            )
        })
        .collect();
    let short: Vec<_> = rows.iter().filter(|r| r.5 == 50).collect();
    ensure!(short.len() >= 5, "expected several 50 ms waits: {text}");
    ensure!(
        short.iter().all(|r| !r.0 && r.1 >= 50_000),
        "a 50 ms wait returned early or with data: {text}"
    );
    let data: Vec<_> = rows.iter().filter(|r| r.0).collect();
    ensure!(
        data.len() == 2 && data.iter().all(|r| r.2 == 1 && r.5 == 5000),
        "expected 2 wake-ups with 1 sample each: {text}"
    );
    // A 5 s wait that returned with data was woken by it (behaviour, with a wide margin).
    ensure!(
        data.iter().all(|r| r.1 < 1_000_000),
        "a wait did not wake on data: {text}"
    );
    // After the sender finished, a 5 s wait returned at once: end of stream.
    ensure!(
        rows.iter()
            .any(|r| !r.0 && r.4 && r.5 == 5000 && r.1 < 1_000_000),
        "no end-of-stream wake-up: {text}"
    );
    Ok(())
}

/// Waits up to 60 s for data that never comes.
struct LongWait;
impl Block for LongWait {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        ctx.wait(Duration::from_secs(60));
        Ok(Flow::Continue)
    }
}

struct Silent;
impl Block for Silent {
    fn step(&mut self, _: &mut Context) -> Result<Flow> {
        Ok(Flow::Continue)
    }
}

fn stop_wakes_a_waiting_block() -> R {
    let dir = TempDir::new("stopwake");
    let mut t = test(&dir);
    t.grace(Duration::from_secs(20), Duration::from_millis(500));
    let s = t.add_with(Silent, Settings::new().name("silent").freq(10.0));
    let w = t.add_with(LongWait, Settings::new().name("waiter").free_run());
    t.add_with(EndAt(0.2), Settings::new().name("ender"));
    t.link(s, w);
    let r = ok_report(t.run())?;
    ensure!(
        r.block("waiter").unwrap().outcome == Outcome::Stopped,
        "{r}"
    );
    // With a 60 s wait and a 20 s grace, only the stop event can have ended it this soon.
    ensure!(
        r.cleanup_s < 5.0,
        "the waiting Block did not wake at the stop: {r}"
    );
    Ok(())
}

struct SelfKill(f64);
impl Block for SelfKill {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if ctx.t() > self.0 {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
        ctx.recv_all();
        Ok(Flow::Continue)
    }
}

fn receiver_crash_does_not_stall_sender() -> R {
    let dir = TempDir::new("crash");
    let mut t = test(&dir);
    t.grace(Duration::from_secs(5), Duration::from_millis(500));
    let mut c = Counter::new(u64::MAX / 2);
    c.end = false;
    let a = t.add_with(c, Settings::new().name("flood").free_run());
    let b = t.add_with(SelfKill(0.1), Settings::new().name("dies").freq(5.0));
    t.link_with(a, b, LinkOptions::new().capacity_bytes(4096));
    let e = t
        .run()
        .err()
        .ok_or("run() succeeded although a Block died")?;
    let r = e.report().unwrap();
    ensure!(
        r.block("dies").unwrap().outcome == Outcome::Signaled(9),
        "{r}"
    );
    // The sender was blocked on a full link when its receiver died: it must have been
    // released and stopped normally, not killed at the end of the grace period.
    ensure!(r.block("flood").unwrap().outcome == Outcome::Stopped, "{r}");
    ensure!(
        r.cleanup_s < 4.0,
        "cleanup waited for the grace period: {r}"
    );
    Ok(())
}

fn drop_oldest_counts_every_drop() -> R {
    let dir = TempDir::new("dropold");
    let mut t = test(&dir);
    let mut c = Counter::new(50_000);
    c.burst = true;
    let a = t.add_with(c, Settings::new().name("burst").freq(100.0));
    let b = t.add_with(EndAt(0.5), Settings::new().name("display").freq(1.0));
    t.link_with(
        a,
        b,
        LinkOptions::new()
            .overflow(Overflow::DropOldest)
            .capacity_samples(100),
    );
    let r = ok_report(t.run())?;
    let l = &r.links[0];
    ensure!(l.sent == 50_000, "{l:?}");
    ensure!(l.dropped >= 49_900, "drops not counted: {l:?}");
    ensure!(
        l.received + l.dropped + l.unread == l.sent,
        "accounting: {l:?}"
    );
    let log = std::fs::read_to_string(dir.path().join("test.log")).unwrap_or_default();
    ensure!(log.contains("dropped"), "drops not logged");
    Ok(())
}

struct NeedsLabel(&'static str);
impl Modifier for NeedsLabel {
    fn apply(&mut self, s: Sample) -> Option<Sample> {
        Some(s)
    }
    fn output_labels(&self, input: &[Label]) -> std::result::Result<Vec<Label>, String> {
        if input.iter().any(|l| l.as_str() == self.0) {
            Ok(input.to_vec())
        } else {
            Err(format!("label '{}' never comes", self.0))
        }
    }
}

struct Declared;
impl Block for Declared {
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec!["t(s)".into(), "x".into()])
    }
    fn step(&mut self, _: &mut Context) -> Result<Flow> {
        Ok(Flow::Stop)
    }
}

struct Sender(Sample);
impl Block for Sender {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        ctx.send(&self.0)?;
        Ok(Flow::Stop)
    }
}

fn bad_input_is_a_clear_error() -> R {
    let dir = TempDir::new("bad");
    // A modifier on a label that never comes: rejected before fork.
    let mut t = test(&dir);
    let a = t.add_with(Declared, Settings::new().name("src"));
    let b = t.add_with(EndAt(0.0), Settings::new().name("dst"));
    t.link_with(
        a,
        b,
        LinkOptions::new()
            .name("force")
            .modifier(NeedsLabel("F(N)")),
    );
    let e = t.run().err().ok_or("accepted")?;
    ensure!(
        e.kind() == ErrorKind::Configuration
            && e.to_string().contains("F(N)")
            && e.to_string().contains("force")
            && e.origin() == Some("src"),
        "{e}"
    );
    // A label too long for the wire.
    let mut t = test(&dir);
    let a = t.add_with(
        Sender(Sample::new().with("l".repeat(300), 1.0)),
        Settings::new().name("longlabel"),
    );
    let b = t.add_with(EndAt(1.0), Settings::new().name("dst"));
    t.link(a, b);
    let e = t.run().err().ok_or("accepted")?;
    ensure!(
        e.origin() == Some("longlabel") && e.to_string().contains("255 bytes"),
        "{e}"
    );
    // A sample larger than the link.
    let mut t = test(&dir);
    let a = t.add_with(
        Sender(Sample::new().with("stream", vec![0.0; 200_000])),
        Settings::new().name("big"),
    );
    let b = t.add_with(EndAt(1.0), Settings::new().name("dst"));
    t.link(a, b);
    let e = t.run().err().ok_or("accepted")?;
    ensure!(
        e.origin() == Some("big") && e.to_string().contains("capacity_bytes"),
        "{e}"
    );
    Ok(())
}

/// Floods its outputs and never reads its inputs.
struct Deaf;
impl Block for Deaf {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        for i in 0..100 {
            ctx.send(&Sample::new().with("i", i as i64))?;
        }
        Ok(Flow::Continue)
    }
}

fn blocked_senders_are_freed_after_the_stop() -> R {
    // Regression: two Blocks blocked on each other's full links used to stay blocked past the
    // stop and be killed without running `finish`.
    let dir = TempDir::new("deadlock");
    let mut t = test(&dir);
    t.grace(Duration::from_secs(10), Duration::from_millis(500));
    let a = t.add_with(Deaf, Settings::new().name("a").free_run());
    let b = t.add_with(Deaf, Settings::new().name("b").free_run());
    t.add_with(EndAt(0.2), Settings::new().name("ender"));
    t.link_with(a, b, LinkOptions::new().capacity_samples(10));
    t.link_with(b, a, LinkOptions::new().capacity_samples(10));
    let r = t.run().map_err(|e| format!("{e}"))?;
    for n in ["a", "b"] {
        ensure!(r.block(n).unwrap().outcome == Outcome::Stopped, "{n}: {r}");
    }
    ensure!(r.links.iter().all(|l| l.undelivered > 0), "{r}");
    ensure!(r.cleanup_s < 5.0, "waited for the grace: {r}");
    Ok(())
}

struct TwoLinks;
impl Block for TwoLinks {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        ctx.send(&Sample::new().with("stream", vec![0.0; 400]))?;
        Ok(Flow::Stop)
    }
}

fn oversized_sample_reaches_no_link() -> R {
    // Regression: the size was checked against the first link only.
    let dir = TempDir::new("oversize");
    let mut t = test(&dir);
    let a = t.add_with(TwoLinks, Settings::new().name("src"));
    let big = t.add_with(EndAt(1.0), Settings::new().name("big"));
    let small = t.add_with(EndAt(1.0), Settings::new().name("small"));
    t.link(a, big);
    t.link_with(
        a,
        small,
        LinkOptions::new().name("tiny").capacity_bytes(4096),
    );
    let e = t
        .run()
        .err()
        .ok_or("a 3 kB sample was accepted on a 4 KiB link")?;
    ensure!(
        e.origin() == Some("src") && e.to_string().contains("tiny"),
        "{e}"
    );
    let r = e.report().unwrap();
    ensure!(
        r.links.iter().all(|l| l.sent == 0),
        "a link got the sample: {r}"
    );
    Ok(())
}

struct Expect2x;
impl Block for Expect2x {
    fn step(&mut self, _: &mut Context) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        let all: Vec<Sample> = ctx
            .drain_until_ended(Duration::from_secs(5))
            .into_iter()
            .flatten()
            .collect();
        let xs: Vec<f64> = all.iter().filter_map(|s| s.get_f64("x")).collect();
        // Counter sends x = 0.5·seq; the modifier doubles it and drops odd seq.
        let want: Vec<f64> = (0..100).filter(|i| i % 2 == 0).map(|i| i as f64).collect();
        if xs != want {
            return Err(fail(format!("got {xs:?}")));
        }
        Ok(())
    }
}

fn modifiers_run_in_the_sender() -> R {
    let dir = TempDir::new("modif");
    let mut t = test(&dir);
    let a = t.add_with(Counter::new(100), Settings::new().name("counter"));
    let b = t.add_with(Expect2x, Settings::new().name("rx"));
    let pid_of_coordinator = std::process::id();
    let m = from_fn(move |mut s: Sample| {
        // Runs in the sender's process, not in the coordinator.
        assert_ne!(std::process::id(), pid_of_coordinator);
        if s.get("seq") == Some(&Value::Int(0))
            || matches!(s.get("seq"), Some(Value::Int(i)) if i % 2 == 0)
        {
            let x = s.get_f64("x")?;
            s.insert("x", 2.0 * x);
            Some(s)
        } else {
            None
        }
    });
    t.link_with(a, b, LinkOptions::new().modifier(m));
    let r = ok_report(t.run())?;
    ensure!(r.links[0].sent == 50, "{:?}", r.links[0]);
    Ok(())
}

fn main() {
    common::main(&[
        case("ordering_and_count", 60, ordering_and_count),
        case("four_receive_modes", 20, four_receive_modes),
        case(
            "wait_times_out_and_wakes_on_data_and_end_of_stream",
            20,
            wait_times_out_and_wakes_on_data_and_end_of_stream,
        ),
        case(
            "zero_loss_burst_slow_receiver",
            120,
            zero_loss_burst_slow_receiver,
        ),
        case("drain_at_stop", 30, drain_at_stop),
        case(
            "receiver_crash_does_not_stall_sender",
            30,
            receiver_crash_does_not_stall_sender,
        ),
        case(
            "drop_oldest_counts_every_drop",
            30,
            drop_oldest_counts_every_drop,
        ),
        case("bad_input_is_a_clear_error", 30, bad_input_is_a_clear_error),
        case(
            "modifiers_run_in_the_sender",
            30,
            modifiers_run_in_the_sender,
        ),
        case(
            "blocked_senders_are_freed_after_the_stop",
            30,
            blocked_senders_are_freed_after_the_stop,
        ),
        case(
            "oversized_sample_reaches_no_link",
            30,
            oversized_sample_reaches_no_link,
        ),
        case("stop_wakes_a_waiting_block", 30, stop_wakes_a_waiting_block),
    ]);
}
