//! Run-time health (issue 10): each watchdog fires on a graph that provokes it and stays
//! quiet on a healthy one; the report's counts tell lost from unread, and say what a killed
//! Recorder really kept. Each case runs in its own process (see tests/common).

#[macro_use]
mod common;

use common::{case, TempDir};
use crabby::health::WarningKind;
use crabby::{
    Block, Context, ErrorKind, Flow, LinkOptions, Outcome, Overflow, Report, Result, Sample,
    Settings, Test,
};
use std::time::Duration;

fn test(name: &str) -> Test {
    let mut t = Test::new(name);
    t.log_file(None);
    t.log_levels(crabby::LevelFilter::Warn, crabby::LevelFilter::Off);
    t
}

fn kinds(r: &Report) -> Vec<WarningKind> {
    r.warnings.iter().map(|w| w.kind).collect()
}

/// The warnings that are not about the machine itself being overloaded (CI runs other
/// cases beside this one: a Block that really did not get the processor is a true warning,
/// not a misfire of the watchdogs on a healthy graph).
fn misfires(r: &Report) -> Vec<String> {
    r.warnings
        .iter()
        .filter(|w| {
            !(w.kind == WarningKind::SlowRate && w.message.contains("did not give it the time"))
        })
        .map(|w| w.to_string())
        .collect()
}

/// Sends `t(s)` every loop; ends after `secs`.
struct Source {
    secs: f64,
}

impl Block for Source {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let t = ctx.t();
        ctx.send(&Sample::new().with("t(s)", t))?;
        Ok(if t > self.secs {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// Reads everything it receives.
struct Reader;

impl Block for Reader {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let _ = ctx.recv_all();
        Ok(Flow::Continue)
    }
}

/// Never reads its input (and never drains it).
struct Deaf;

impl Block for Deaf {
    fn step(&mut self, _: &mut Context) -> Result<Flow> {
        Ok(Flow::Continue)
    }
}

fn healthy_graph_has_no_warning() -> std::result::Result<(), String> {
    use crabby_blocks::{Recorder, StopBlock};
    let dir = TempDir::new("h-healthy");
    let mut t = test("healthy");
    let src = t.add_with(Source { secs: 1.5 }, Settings::new().freq(500.0));
    let rec = t.add(Recorder::new(dir.path().join("d.csv")));
    let stop = t.add(StopBlock::new(["t(s) > 100"]).map_err(|e| e.to_string())?);
    t.link(src, rec);
    t.link(src, stop);
    let r = t.run().map_err(|e| e.to_string())?;
    ensure!(misfires(&r).is_empty(), "warnings on a healthy graph:\n{r}");
    // The README's assertion: nothing lost on a natural end, although the StopBlock does
    // not read after the stop.
    ensure!(r.samples_lost() == 0, "lost on a natural end:\n{r}");
    let rec = r
        .blocks
        .iter()
        .find(|b| b.kind == "Recorder")
        .ok_or("no recorder")?;
    ensure!(
        rec.rows_durable == Some(r.links[0].sent),
        "durable {:?}, sent {}",
        rec.rows_durable,
        r.links[0].sent
    );
    Ok(())
}

/// Takes `ms` in each step (its work: a slow device call).
struct Slow {
    ms: u64,
    secs: f64,
}

impl Block for Slow {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        std::thread::sleep(Duration::from_millis(self.ms));
        Ok(if ctx.t() > self.secs {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

fn slow_step_warns_with_its_reason() -> std::result::Result<(), String> {
    let mut t = test("slow");
    t.add_with(
        Slow { ms: 8, secs: 2.5 },
        Settings::new().freq(200.0).name("slowpoke"),
    );
    let r = t.run().map_err(|e| e.to_string())?;
    let w = r
        .warnings
        .iter()
        .find(|w| w.kind == WarningKind::SlowRate)
        .ok_or_else(|| format!("no slow-rate warning:\n{r}"))?;
    ensure!(
        w.block == "slowpoke" && w.message.contains("its step takes"),
        "{w}"
    );
    // The report's rate is the real one: about 1 / 8 ms, not 200 Hz.
    let hz = r.blocks[0].mean_freq.unwrap_or(0.0);
    ensure!(hz < 150.0, "reported {hz} Hz");
    Ok(())
}

fn blocked_sender_is_named_with_its_link() -> std::result::Result<(), String> {
    let mut t = test("blocked");
    let src = t.add_with(
        Source { secs: 2.5 },
        Settings::new().freq(1000.0).name("daq"),
    );
    let deaf = t.add_with(Deaf, Settings::new().name("display"));
    t.link_with(
        src,
        deaf,
        LinkOptions::new().name("to-display").capacity_samples(100),
    );
    // The blocked sender never gets to end the test: a timer does.
    let timer = t.add(Source { secs: 2.5 });
    let sink = t.add(Reader);
    t.link(timer, sink);
    let r = t.run().map_err(|e| e.to_string())?;
    let blocked = r
        .warnings
        .iter()
        .find(|w| w.kind == WarningKind::SenderBlocked)
        .ok_or_else(|| format!("no blocked-sender warning:\n{r}"))?;
    ensure!(
        blocked.block == "daq"
            && blocked.message.contains("to-display")
            && blocked.message.contains("display does not read"),
        "{blocked}"
    );
    let slow = r
        .warnings
        .iter()
        .find(|w| w.kind == WarningKind::SlowRate)
        .ok_or_else(|| format!("no slow-rate warning:\n{r}"))?;
    ensure!(slow.message.contains("blocked"), "{slow}");
    // The stalled sender's rate is honest: ~100 loops in ~3 s, not ~1000 Hz.
    let daq = r.block("daq").ok_or("no daq")?;
    ensure!(
        daq.mean_freq.unwrap_or(1e9) < 200.0,
        "reported {:?} Hz for a stalled sender",
        daq.mean_freq
    );
    ensure!(
        r.links[0].blocked_ms > 1000,
        "blocked {} ms",
        r.links[0].blocked_ms
    );
    Ok(())
}

/// Hangs in `step` once t > 0.2 s.
struct Hangs;

impl Block for Hangs {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if ctx.t() > 0.2 {
            std::thread::sleep(Duration::from_secs(30));
        }
        Ok(Flow::Continue)
    }
}

fn hung_step_is_reported_and_step_timeout_stops_the_test() -> std::result::Result<(), String> {
    let mut t = test("hung");
    t.grace(Duration::from_millis(300), Duration::from_millis(100));
    t.add_with(
        Hangs,
        Settings::new()
            .name("driver")
            .step_timeout(Duration::from_millis(1800)),
    );
    t.add(Reader);
    let e = t.run().err().ok_or("run() succeeded")?;
    ensure!(
        e.kind() == ErrorKind::Timeout && e.block() == Some("driver"),
        "{e}"
    );
    let r = e.report().ok_or("no report")?;
    ensure!(
        kinds(r).contains(&WarningKind::StepHung),
        "no hung-step warning:\n{r}"
    );
    Ok(())
}

/// Takes `secs` to prepare.
struct SlowPrepare(f64);

impl Block for SlowPrepare {
    fn prepare(&mut self, _: &mut Context) -> Result<()> {
        std::thread::sleep(Duration::from_secs_f64(self.0));
        Ok(())
    }
    fn step(&mut self, _: &mut Context) -> Result<Flow> {
        Ok(Flow::Continue)
    }
}

fn prepare_limit_stops_the_test_naming_the_block() -> std::result::Result<(), String> {
    let mut t = test("prepare");
    t.prepare_timeout(Duration::from_millis(500));
    t.grace(Duration::from_millis(200), Duration::from_millis(100));
    t.add_with(SlowPrepare(20.0), Settings::new().name("homing"));
    t.add(Reader);
    let e = t.run().err().ok_or("run() succeeded")?;
    ensure!(
        e.kind() == ErrorKind::Timeout && e.block() == Some("homing"),
        "{e}"
    );
    ensure!(
        kinds(e.report().unwrap()).contains(&WarningKind::PrepareTooLong),
        "no warning"
    );
    Ok(())
}

/// Sends samples, but never the label its receiver waits for.
struct WrongLabels;

impl Block for WrongLabels {
    fn step(&mut self, _: &mut Context) -> Result<Flow> {
        Ok(Flow::Continue)
    }
}

fn silent_link_is_reported() -> std::result::Result<(), String> {
    use crabby_blocks::StopBlock;
    let mut t = test("silent");
    t.silent_link_after(Duration::from_millis(700));
    let a = t.add_with(WrongLabels, Settings::new().name("custom"));
    let b = t.add_with(
        StopBlock::new(["F(N) > 10"]).map_err(|e| e.to_string())?,
        Settings::new().name("waiter"),
    );
    t.link(a, b);
    let ender = t.add(Source { secs: 1.5 });
    let reader = t.add(Reader);
    t.link(ender, reader);
    let r = t.run().map_err(|e| e.to_string())?;
    let w = r
        .warnings
        .iter()
        .find(|w| w.kind == WarningKind::SilentLink)
        .ok_or_else(|| format!("no silent-link warning:\n{r}"))?;
    ensure!(w.block == "waiter" && w.message.contains("custom"), "{w}");
    ensure!(
        r.warnings
            .iter()
            .filter(|w| w.kind == WarningKind::SilentLink)
            .count()
            == 1,
        "the busy link was reported too:\n{r}"
    );
    Ok(())
}

fn killed_recorder_reports_what_is_on_disk() -> std::result::Result<(), String> {
    use crabby_blocks::Recorder;
    let dir = TempDir::new("h-killed");
    let csv = dir.path().join("d.csv");
    let mut t = test("killed");
    let src = t.add_with(Source { secs: 60.0 }, Settings::new().freq(1000.0));
    let rec = t.add_with(
        Recorder::new(&csv).flush_period(Duration::from_millis(400)),
        Settings::new().name("rec"),
    );
    t.link(src, rec);
    t.add(Killer {
        victim: "rec".into(),
        at: 0.7,
    });
    let e = t.run().err().ok_or("run() succeeded")?;
    let r = e.report().ok_or("no report")?;
    let rows = std::fs::read_to_string(&csv)
        .map_err(|e| e.to_string())?
        .lines()
        .count() as u64
        - 1;
    let b = r.block("rec").ok_or("no rec")?;
    ensure!(b.outcome == Outcome::Signaled(9), "{:?}", b.outcome);
    ensure!(
        b.rows_durable == Some(rows),
        "report says {:?} rows on disk, the file has {rows}",
        b.rows_durable
    );
    ensure!(
        b.not_durable == r.links[0].received - rows && b.not_durable > 0,
        "not durable {}, received {}, rows {rows}",
        b.not_durable,
        r.links[0].received
    );
    ensure!(
        r.samples_lost() >= b.not_durable,
        "lost {} < not durable {}",
        r.samples_lost(),
        b.not_durable
    );
    Ok(())
}

/// SIGKILLs, at t > `at`, the sibling Block process that holds a CSV file open (the
/// Recorder named `victim`), as an out-of-memory killer or a crash would.
struct Killer {
    victim: String,
    at: f64,
}

impl Block for Killer {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if ctx.t() > self.at {
            let me = std::process::id();
            let parent = nix::unistd::getppid().as_raw();
            for pid in common::children_of(parent) {
                if pid as u32 == me {
                    continue;
                }
                let fds = std::fs::read_dir(format!("/proc/{pid}/fd"));
                let holds_csv = fds.is_ok_and(|d| {
                    d.flatten().any(|f| {
                        std::fs::read_link(f.path())
                            .is_ok_and(|p| p.extension().is_some_and(|e| e == "csv"))
                    })
                });
                if holds_csv {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    let _ = &self.victim;
                    return Ok(Flow::Continue);
                }
            }
        }
        Ok(Flow::Continue)
    }
}

/// Stops reading at once and spends `secs` in `finish`.
struct Lingering(f64);

impl Block for Lingering {
    fn step(&mut self, _: &mut Context) -> Result<Flow> {
        Ok(Flow::Continue)
    }
    fn finish(&mut self, _: &mut Context) -> Result<()> {
        std::thread::sleep(Duration::from_secs_f64(self.0));
        Ok(())
    }
}

/// A producer blocked on two peers that stopped reading still gets every sample it sent to
/// the Recorder that drains: before, it gave up on each peer in turn (1 s each) and the
/// Recorder's drain had ended before the last sample came (1 sample lost in 4 of 9 runs).
fn every_sample_reaches_a_draining_recorder() -> std::result::Result<(), String> {
    use crabby_blocks::Recorder;
    let dir = TempDir::new("h-drain");
    let csv = dir.path().join("d.csv");
    let mut t = test("drain");
    t.grace(Duration::from_secs(5), Duration::from_millis(200));
    let src = t.add_with(
        Source { secs: 60.0 },
        Settings::new().freq(1000.0).name("src"),
    );
    // The source is soon blocked on its peers: a timer ends the test.
    let timer = t.add(Source { secs: 0.5 });
    let sink = t.add(Reader);
    t.link(timer, sink);
    let rec = t.add(Recorder::new(&csv).drain_timeout(Duration::from_secs(4)));
    let p1 = t.add_with(Lingering(2.5), Settings::new().name("peer1"));
    let p2 = t.add_with(Lingering(2.5), Settings::new().name("peer2"));
    t.link(src, rec);
    t.link_with(src, p1, LinkOptions::new().capacity_samples(50));
    t.link_with(src, p2, LinkOptions::new().capacity_samples(50));
    let r = t.run().err().map(|e| e.to_string());
    let _ = r;
    let text = std::fs::read_to_string(&csv).map_err(|e| e.to_string())?;
    let rows = text.lines().count() as u64 - 1;
    // What the source sent to the Recorder's link, from the metadata's report.
    let meta = std::fs::read_to_string(dir.path().join("d.meta.txt")).map_err(|e| e.to_string())?;
    let sent: u64 = meta
        .lines()
        .find(|l| l.contains("src -> Recorder") && l.contains(": sent"))
        .and_then(|l| {
            l.split("sent ")
                .nth(1)?
                .split(',')
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("no link line in:\n{meta}"))?;
    ensure!(
        rows == sent,
        "sent {sent} to the Recorder, {rows} rows written"
    );
    Ok(())
}

/// Drop-oldest drops are lost; a display's unread samples at the stop are not.
fn lost_and_unread_are_told_apart() -> std::result::Result<(), String> {
    let mut t = test("counts");
    let src = t.add_with(Source { secs: 0.6 }, Settings::new().free_run().name("src"));
    let deaf = t.add_with(Deaf, Settings::new().name("display"));
    let reader = t.add_with(Reader, Settings::new().name("reader"));
    t.link_with(
        src,
        deaf,
        LinkOptions::new()
            .overflow(Overflow::DropOldest)
            .capacity_samples(64),
    );
    t.link(src, reader);
    let r = t.run().map_err(|e| e.to_string())?;
    let display = &r.links[0];
    ensure!(display.dropped > 0, "nothing dropped:\n{r}");
    ensure!(
        display.lost == display.dropped && display.unread_not_lost() == display.unread,
        "{display:?}"
    );
    ensure!(
        r.samples_lost() == display.dropped,
        "lost {} != dropped {}",
        r.samples_lost(),
        display.dropped
    );
    // fail_on_loss counts only lossless links: the drop-oldest display is not one.
    let mut t = test("counts2");
    t.fail_on_loss(true);
    let src = t.add_with(Source { secs: 0.3 }, Settings::new().free_run().name("src"));
    let deaf = t.add_with(Deaf, Settings::new().name("display"));
    t.link_with(
        src,
        deaf,
        LinkOptions::new()
            .overflow(Overflow::DropOldest)
            .capacity_samples(64),
    );
    t.run()
        .map_err(|e| format!("fail_on_loss counted a drop-oldest link: {e}"))?;
    Ok(())
}

/// The README's first program (at a higher speed so it ends in a second): its
/// `assert_eq!(report.samples_lost(), 0)` holds on a natural end, although the Generator does
/// not read the machine's last samples after the stop (unread, not lost).
fn readme_program_loses_nothing() -> std::result::Result<(), String> {
    use crabby_blocks::{FakeMachine, Generator, Path, Recorder};
    let dir = TempDir::new("h-readme");
    let mut test = test("tensile");
    let gen = test.add(
        Generator::new([Path::constant(2.0).until("F(N) > 20000")]).map_err(|e| e.to_string())?,
    );
    let machine = test.add(FakeMachine::new());
    let rec = test.add(Recorder::new(dir.path().join("machine.csv")));
    test.link(gen, machine);
    test.link(machine, gen);
    test.link(machine, rec);
    let report = test.run().map_err(|e| e.to_string())?;
    ensure!(
        report.samples_lost() == 0,
        "lost on a natural end:\n{report}"
    );
    ensure!(misfires(&report).is_empty(), "warnings:\n{report}");
    Ok(())
}

/// Sends `F(kN)` every loop, never `F(N)` (and declares nothing, so the graph check cannot
/// tell).
struct WrongUnit;

impl Block for WrongUnit {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        ctx.send(&Sample::new().with("F(kN)", 1.0))?;
        Ok(Flow::Continue)
    }
}

/// A Generator whose condition waits for a label nobody sends says so (the link is not
/// silent: it carries other labels).
fn generator_names_the_label_it_waits_for_in_vain() -> std::result::Result<(), String> {
    use crabby_blocks::{Generator, Path};
    let dir = TempDir::new("h-label");
    let log = dir.path().join("g.log");
    let mut t = Test::new("label");
    t.log_file(Some(log.clone()));
    t.log_levels(crabby::LevelFilter::Off, crabby::LevelFilter::Warn);
    let gen = t.add_with(
        Generator::new([Path::constant(1.0).until("F(N) > 10")])
            .map_err(|e| e.to_string())?
            .warn_missing_labels_after(0.5),
        Settings::new().name("gen"),
    );
    let cell = t.add_with(WrongUnit, Settings::new().name("cell"));
    t.link(cell, gen);
    let sink = t.add(Reader);
    t.link(gen, sink);
    let timer = t.add(Source { secs: 1.2 });
    let r2 = t.add(Reader);
    t.link(timer, r2);
    t.run().map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
    ensure!(
        text.contains("waited") && text.contains("'F(N)'") && text.contains("cell"),
        "no warning naming the label and the sender:\n{text}"
    );
    Ok(())
}

fn main() {
    common::main(&[
        case(
            "generator_names_the_label_it_waits_for_in_vain",
            30,
            generator_names_the_label_it_waits_for_in_vain,
        ),
        case(
            "readme_program_loses_nothing",
            30,
            readme_program_loses_nothing,
        ),
        case(
            "healthy_graph_has_no_warning",
            30,
            healthy_graph_has_no_warning,
        ),
        case(
            "slow_step_warns_with_its_reason",
            30,
            slow_step_warns_with_its_reason,
        ),
        case(
            "blocked_sender_is_named_with_its_link",
            30,
            blocked_sender_is_named_with_its_link,
        ),
        case(
            "hung_step_is_reported_and_step_timeout_stops_the_test",
            30,
            hung_step_is_reported_and_step_timeout_stops_the_test,
        ),
        case(
            "prepare_limit_stops_the_test_naming_the_block",
            30,
            prepare_limit_stops_the_test_naming_the_block,
        ),
        case("silent_link_is_reported", 30, silent_link_is_reported),
        case(
            "killed_recorder_reports_what_is_on_disk",
            30,
            killed_recorder_reports_what_is_on_disk,
        ),
        case(
            "every_sample_reaches_a_draining_recorder",
            30,
            every_sample_reaches_a_draining_recorder,
        ),
        case(
            "lost_and_unread_are_told_apart",
            30,
            lost_and_unread_are_told_apart,
        ),
    ]);
}
