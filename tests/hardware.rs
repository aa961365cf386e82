//! The hardware layer in real tests: IOBlock and Machine against the simulated devices,
//! every actuator stopped on every kind of stop, a device fault mid-test, and bad
//! configurations rejected before anything is forked.

mod common;

use common::blocks::{get, rows, Collector, Source};
#[path = "common/devices.rs"]
mod devices;
use common::TempDir;
use crabby::hardware::{
    Actuator, InOut, Input, Output, PositionFeedback, Positioner, Reading, SpeedFeedback, Status,
    Stream,
};
use crabby::{Block, Context, ErrorKind, Flow, Label, Outcome, Result, Sample, Settings, Test};
use crabby_blocks::{ActuatorConfig, IOBlock, Machine};
use crabby_hardware::motor::{FakeDCMotor, FakeStepperMotor};
use crabby_hardware::sensor::FakeFurnace;
use crabby_hardware::serial::{ScpiInOut, SerialConfig};
use devices::{play_modbus_rtu, play_modbus_tcp, raw_pty};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Plays a serial device on a pty master in its own process: answers each `R?` with
/// `12.5,3`, then closes the port after `for_s` seconds of answering (the port vanishes).
fn play_device(master: std::os::fd::OwnedFd, for_s: f64) -> nix::unistd::Pid {
    use std::os::fd::AsFd;
    // This case's process is single-threaded here (before the Test runs).
    let pid = crabby::process::fork_child(move || {
        let mut first: Option<std::time::Instant> = None;
        let mut pending = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            if first.is_some_and(|t| t.elapsed().as_secs_f64() > for_s) {
                drop(master); // the device vanishes
                return 0;
            }
            let mut fds = [nix::poll::PollFd::new(
                master.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(20u16)).unwrap_or(0) == 0 {
                continue;
            }
            let Ok(n) = nix::unistd::read(master.as_fd(), &mut buf) else {
                continue;
            };
            pending.extend_from_slice(&buf[..n]);
            while let Some(i) = pending.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = pending.drain(..i + 2).take(i).collect();
                if line == b"R?" {
                    first.get_or_insert_with(std::time::Instant::now);
                    let _ = nix::unistd::write(master.as_fd(), b"12.5,3\r\n");
                }
            }
        }
    })
    .expect("fork");
    nix::unistd::Pid::from_raw(pid)
}

fn serial_port_vanishing_mid_test_faults_the_device() -> std::result::Result<(), String> {
    use crabby_hardware::serial::LineInOut;
    let dir = TempDir::new("hw-vanish");
    let data = dir.path().join("data");
    let (master, slave, path) = raw_pty()?;
    // The player gets the master; this process (and so every Block) keeps no copy of it.
    let player = play_device(master, 0.5);
    let cell = LineInOut::new(
        "load cell",
        SerialConfig::new(&path, 115_200).timeout(Duration::from_millis(200)),
        ["F(N)", "T(C)"],
    )
    .query("R?");
    let mut test = Test::new("vanish");
    quiet(&mut test);
    let io = test.add_with(
        IOBlock::input(cell),
        Settings::new().name("cell").freq(50.0),
    );
    let col = test.add(Collector::new(&data));
    test.link(io, col);
    let e = test
        .run()
        .err()
        .ok_or("the run should fail when the port vanishes")?;
    drop(slave);
    let _ = nix::sys::wait::waitpid(player, None);
    ensure!(
        e.kind() != ErrorKind::BlockFailed && e.block() == Some("cell"),
        "{e}"
    );
    let text = e.report().ok_or("no report")?.to_string();
    ensure!(
        text.contains("load cell"),
        "report lacks the device's error:\n{text}"
    );
    let r = rows(&data)?;
    ensure!(
        r.len() >= 10,
        "readings before the fault lost: {} rows",
        r.len()
    );
    ensure!(
        r.iter()
            .all(|row| get(row, "F(N)") == Some(12.5) && get(row, "T(C)") == Some(3.0)),
        "wrong values recorded"
    );
    Ok(())
}

// ---------------------------------------------------------------- lost devices, reconnection

/// Plays a serial device that is unplugged and plugged back: answers each `R?` on a first
/// pty with `12.5,3` for `first_s` seconds, then closes it (the port vanishes), stays away
/// `away_s` seconds, then comes back on a new pty, pointed to by the same symlink `link`
/// (as udev's `/dev/serial/by-id/` links do), answering `13.5,4` until the port is closed
/// (or 5 s).
fn play_replugged_device(
    master: std::os::fd::OwnedFd,
    link: PathBuf,
    first_s: f64,
    away_s: f64,
) -> nix::unistd::Pid {
    use std::os::fd::AsFd;
    /// Answers `R?` lines with `answer` until `until` says stop; returns when it does.
    fn serve(
        master: &std::os::fd::OwnedFd,
        answer: &[u8],
        until: &dyn Fn(Option<std::time::Instant>, bool) -> bool,
    ) {
        let mut first: Option<std::time::Instant> = None;
        let mut pending = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            let mut fds = [nix::poll::PollFd::new(
                master.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let n = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(20u16)).unwrap_or(0);
            let hup = n > 0
                && fds[0]
                    .revents()
                    .is_some_and(|r| r.contains(nix::poll::PollFlags::POLLHUP));
            if until(first, hup) {
                return;
            }
            if n == 0 || hup {
                // No data (a hang-up before the first query: the slave is not open yet).
                if hup {
                    std::thread::sleep(Duration::from_millis(5));
                }
                continue;
            }
            let Ok(n) = nix::unistd::read(master.as_fd(), &mut buf) else {
                continue;
            };
            pending.extend_from_slice(&buf[..n]);
            while let Some(i) = pending.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = pending.drain(..i + 2).take(i).collect();
                if line == b"R?" {
                    first.get_or_insert_with(std::time::Instant::now);
                    let _ = nix::unistd::write(master.as_fd(), answer);
                }
            }
        }
    }
    // This case's process is single-threaded here (before the Test runs).
    let pid = crabby::process::fork_child(move || {
        serve(&master, b"12.5,3\r\n", &|first, _| {
            first.is_some_and(|t| t.elapsed().as_secs_f64() > first_s)
        });
        drop(master); // unplugged
        std::thread::sleep(Duration::from_secs_f64(away_s));
        let Ok((master, slave, path)) = raw_pty() else {
            return 1;
        };
        drop(slave);
        let tmp = link.with_extension("new");
        if std::os::unix::fs::symlink(&path, &tmp).is_err() || std::fs::rename(&tmp, &link).is_err()
        {
            return 1;
        }
        let born = std::time::Instant::now();
        serve(&master, b"13.5,4\r\n", &|first, hup| {
            (first.is_some() && hup) || born.elapsed() > Duration::from_secs(5)
        });
        0
    })
    .expect("fork");
    nix::unistd::Pid::from_raw(pid)
}

/// The longest interval between consecutive `t(s)` of the rows, and where it starts.
fn longest_gap(r: &[Vec<(String, String)>]) -> (f64, f64) {
    let t: Vec<f64> = r.iter().filter_map(|row| get(row, "t(s)")).collect();
    t.windows(2)
        .map(|w| (w[1] - w[0], w[0]))
        .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
}

fn serial_port_replugged_mid_test_reconnects() -> std::result::Result<(), String> {
    use crabby_hardware::serial::LineInOut;
    let dir = TempDir::new("hw-replug");
    let data = dir.path().join("data");
    let (master, slave, path) = raw_pty()?;
    let link = dir.path().join("ttyUSB-by-id");
    std::os::unix::fs::symlink(&path, &link).map_err(|e| e.to_string())?;
    drop(slave);
    // The player gets the master; this process (and so every Block) keeps no copy of it.
    let player = play_replugged_device(master, link.clone(), 0.4, 0.3);
    let cell = LineInOut::new(
        "load cell",
        SerialConfig::new(link.to_string_lossy(), 115_200).timeout(Duration::from_millis(200)),
        ["F(N)", "T(C)"],
    )
    .query("R?");
    let mut test = Test::new("replug");
    quiet(&mut test);
    let io = test.add_with(
        IOBlock::input(cell).reconnect(10, Duration::from_millis(50)),
        Settings::new().name("cell").freq(50.0),
    );
    let col = test.add(Collector::new(&data));
    // Ends the test at 1.6 s.
    test.add(Source {
        label: Label::new("x"),
        value: |_| 0.0,
        stop_at: Some(1.6),
    });
    test.link(io, col);
    let run = test.run();
    let _ = nix::sys::wait::waitpid(player, None);
    let report = run.map_err(|e| format!("the run should survive the replug: {e}"))?;
    let text = report.to_string();
    ensure!(
        text.contains("device 'load cell': connection lost 1 time(s), reconnected 1 time(s)"),
        "the report does not count the reconnection:\n{text}"
    );
    let r = rows(&data)?;
    let before: Vec<_> = r
        .iter()
        .filter(|row| get(row, "F(N)") == Some(12.5))
        .collect();
    let after: Vec<_> = r
        .iter()
        .filter(|row| get(row, "F(N)") == Some(13.5))
        .collect();
    ensure!(
        before.len() >= 10 && after.len() >= 10 && before.len() + after.len() == r.len(),
        "{} rows from the first port, {} from the second, {} in all: every row must come from one of them",
        before.len(),
        after.len(),
        r.len()
    );
    ensure!(
        r.iter().all(|row| get(row, "T(C)")
            == Some(if get(row, "F(N)") == Some(12.5) {
                3.0
            } else {
                4.0
            })),
        "mixed-up values"
    );
    // The port was away 0.3 s: a gap in the data, no invented samples.
    let (gap, at) = longest_gap(&r);
    ensure!(
        gap >= 0.25,
        "no gap while the port was away (longest interval {gap:.3} s at {at:.3} s)"
    );
    Ok(())
}

/// A furnace amplifier whose link breaks for good after `after` seconds: reads then fail
/// with a Communication error, and so does every later opening.
struct Unplugged {
    inner: FakeFurnace,
    first_open: Option<u64>,
    after: f64,
}

impl Unplugged {
    fn gone(&self) -> bool {
        self.first_open
            .is_some_and(|t| (crabby::time::monotonic_ns() - t) as f64 * 1e-9 > self.after)
    }
    fn link_error(&self) -> crabby::Error {
        crabby::hardware::device_error(
            ErrorKind::Communication,
            "amp",
            "serial port '/dev/ttyUSB7' vanished (EIO); check the USB cable",
        )
    }
}

impl InOut for Unplugged {
    fn name(&self) -> &str {
        "amp"
    }
    fn channels(&self) -> Vec<String> {
        self.inner.channels()
    }
    fn open(&mut self) -> Result<()> {
        if self.gone() {
            return Err(self.link_error());
        }
        self.first_open
            .get_or_insert_with(crabby::time::monotonic_ns);
        self.inner.open()
    }
    fn close(&mut self) -> Result<()> {
        self.inner.close()
    }
}

impl Input for Unplugged {
    fn read(&mut self) -> Result<Reading> {
        if self.gone() {
            return Err(self.link_error());
        }
        self.inner.read()
    }
}

fn lost_device_fails_by_default_and_after_its_reconnect_attempts() -> std::result::Result<(), String>
{
    let dir = TempDir::new("hw-giveup");
    for attempts in [None, Some(3)] {
        let data = dir.path().join("data");
        let mut test = Test::new("give-up");
        quiet(&mut test);
        let dev = Unplugged {
            inner: FakeFurnace::new(),
            first_open: None,
            after: 0.3,
        };
        let io = match attempts {
            None => IOBlock::input(dev),
            Some(n) => IOBlock::input(dev).reconnect(n, Duration::from_millis(20)),
        };
        let io = test.add_with(io, Settings::new().name("furnace").freq(100.0));
        let col = test.add(Collector::new(&data));
        test.link(io, col);
        let t0 = std::time::Instant::now();
        let e = test.run().err().ok_or("the run should fail")?;
        let took = t0.elapsed().as_secs_f64();
        ensure!(
            e.kind() == ErrorKind::Communication && e.block() == Some("furnace"),
            "{e}"
        );
        let text = format!(
            "{e}\n{}",
            e.report().map(|r| r.to_string()).unwrap_or_default()
        );
        ensure!(
            text.contains("vanished (EIO)"),
            "the cause is lost:\n{text}"
        );
        match attempts {
            None => ensure!(
                !text.contains("connection lost"),
                "reconnection counted without a policy:\n{text}"
            ),
            Some(_) => {
                ensure!(
                    text.contains("all 3 attempts used")
                        && text.contains(
                            "connection lost 1 time(s), reconnected 0 time(s), 3 failed attempt(s) (3 of 3 attempts used)"
                        ),
                    "{text}"
                );
                // Back-offs of 20, 40 and 80 ms after the loss at 0.3 s.
                ensure!(took > 0.4, "gave up too early: {took:.3} s");
            }
        }
        let r = rows(&data)?;
        ensure!(r.len() >= 10, "readings before the loss lost: {}", r.len());
        let last = r
            .iter()
            .filter_map(|row| get(row, "t(s)"))
            .fold(0.0, f64::max);
        ensure!(
            last < 0.35,
            "a sample after the device was lost (t = {last:.3} s)"
        );
    }
    Ok(())
}

/// A motor whose link is down from `from` to `to` seconds after its first opening: every
/// call then fails with a Communication error, and so does opening it.
struct Dropout<A> {
    inner: A,
    first_open: Option<u64>,
    from: f64,
    to: f64,
}

impl<A> Dropout<A> {
    fn check_link(&self) -> Result<()> {
        let t = self
            .first_open
            .map_or(0.0, |t| (crabby::time::monotonic_ns() - t) as f64 * 1e-9);
        if (self.from..self.to).contains(&t) {
            return Err(crabby::hardware::device_error(
                ErrorKind::Communication,
                "axis",
                "serial port '/dev/ttyACM0' vanished (EIO); check the USB cable",
            ));
        }
        Ok(())
    }
}

impl<A: Actuator> Actuator for Dropout<A> {
    fn name(&self) -> &str {
        "axis"
    }
    fn open(&mut self) -> Result<()> {
        self.check_link()?;
        self.first_open
            .get_or_insert_with(crabby::time::monotonic_ns);
        self.inner.open()
    }
    fn close(&mut self) -> Result<()> {
        self.inner.close()
    }
    fn set_speed(&mut self, v: f64) -> Result<()> {
        self.check_link()?;
        self.inner.set_speed(v)
    }
    fn stop(&mut self) -> Result<()> {
        self.check_link()?;
        self.inner.stop()
    }
    fn poll(&mut self) -> Result<()> {
        self.check_link()?;
        self.inner.poll()
    }
}

impl<A: PositionFeedback> PositionFeedback for Dropout<A> {
    fn position(&mut self) -> Result<f64> {
        self.check_link()?;
        self.inner.position()
    }
}

/// A motor behind a link that goes away from `from` to `to` s after its first opening, and
/// that keeps moving meanwhile: a vanished port cannot carry a halt (`close` does not reach
/// the motor while the link is down).
struct RunawayAxis {
    inner: FakeStepperMotor,
    link: Dropout<()>,
}

impl Actuator for RunawayAxis {
    fn name(&self) -> &str {
        "axis"
    }
    fn open(&mut self) -> Result<()> {
        self.link.check_link()?;
        self.link
            .first_open
            .get_or_insert_with(crabby::time::monotonic_ns);
        self.inner.open()
    }
    fn close(&mut self) -> Result<()> {
        self.link.check_link()?;
        self.inner.close()
    }
    fn set_speed(&mut self, v: f64) -> Result<()> {
        self.link.check_link()?;
        self.inner.set_speed(v)
    }
    fn stop(&mut self) -> Result<()> {
        self.link.check_link()?;
        self.inner.stop()
    }
    fn poll(&mut self) -> Result<()> {
        self.link.check_link()?;
        self.inner.poll()
    }
}

impl PositionFeedback for RunawayAxis {
    fn position(&mut self) -> Result<f64> {
        self.link.check_link()?;
        self.inner.position()
    }
}

/// Pauses the test from `from` to `to` s.
struct Pauser {
    from: f64,
    to: f64,
}

impl Block for Pauser {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let t = ctx.t();
        if (self.from..self.to).contains(&t) {
            ctx.pause("review: paused while the axis is unplugged");
        } else if t >= self.to {
            ctx.resume();
        }
        Ok(Flow::Continue)
    }
}

/// The axis is lost before a pause (so the pause cannot stop it) and comes back during it:
/// the Machine must stop it then, not leave it running on its last command until the resume.
fn actuator_back_during_a_pause_is_stopped() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-machine-replug-paused");
    let data = dir.path().join("data");
    let mut test = Test::new("machine-replug-paused");
    quiet(&mut test);
    let src = test.add_with(
        Source {
            label: Label::new("v"),
            value: |_| 2.0,
            stop_at: Some(1.6),
        },
        Settings::new().freq(100.0),
    );
    let axis = RunawayAxis {
        inner: FakeStepperMotor::new().acceleration(1000.0),
        link: Dropout {
            inner: (),
            first_open: None,
            from: 0.2,
            to: 0.45,
        },
    };
    let m = test.add_with(
        Machine::new()
            .actuator(ActuatorConfig::speed(axis, "v").position_label("x(mm)"))
            .reconnect(20, Duration::from_millis(30)),
        Settings::new().name("machine").freq(100.0),
    );
    test.add_with(
        Pauser { from: 0.3, to: 1.3 },
        Settings::new().name("pauser").freq(100.0).pausable(false),
    );
    let col = test.add(Collector::new(&data));
    test.link(src, m);
    test.link(m, col);
    let report = test
        .run()
        .map_err(|e| format!("the run should survive the dropout: {e}"))?;
    let text = report.to_string();
    ensure!(
        text.contains("reconnected 1 time(s)"),
        "no reconnection:\n{text}"
    );
    let r = rows(&data)?;
    let (gap, at) = longest_gap(&r);
    let back = at + gap;
    ensure!(
        gap >= 0.15 && back < 1.2,
        "expected the axis back during the pause (gap {gap:.3} s at {at:.3} s)"
    );
    // From its return to the resume (1.3 s), the test is paused: the axis must hold still.
    let held: Vec<(f64, f64)> = r
        .iter()
        .filter_map(|row| Some((get(row, "t(s)")?, get(row, "x(mm)")?)))
        .filter(|(t, _)| *t > back + 0.05 && *t < 1.25)
        .collect();
    ensure!(held.len() >= 5, "too few samples while paused: {held:?}");
    let moved = held.last().unwrap().1 - held.first().unwrap().1;
    ensure!(
        moved.abs() < 1e-6,
        "the axis moved {moved:.3} mm while the test was paused, after it came back: {held:?}"
    );
    // And it is driven again after the resume.
    let after: Vec<f64> = r
        .iter()
        .filter_map(|row| Some((get(row, "t(s)")?, get(row, "x(mm)")?)))
        .filter(|(t, _)| *t > 1.4)
        .map(|p| p.1)
        .collect();
    ensure!(
        after.len() >= 5 && after.last() > after.first(),
        "the axis did not move after the resume: {after:?}"
    );
    Ok(())
}

/// A power supply that echoes its set point, behind a link down from `from` to `to` s; like
/// a supply that was power-cycled, it comes back at its default (-1 V), not its last set
/// point.
struct ResetOnReplug {
    volts: f64,
    /// The first set point written since the last opening (what it was driven to first).
    first: Option<f64>,
    link: Dropout<()>,
}

impl ResetOnReplug {
    /// A supply at 0 V whose link is down from `from` to `to` s after its first opening.
    fn down(from: f64, to: f64) -> Self {
        ResetOnReplug {
            volts: 0.0,
            first: None,
            link: Dropout {
                inner: (),
                first_open: None,
                from,
                to,
            },
        }
    }
}

impl InOut for ResetOnReplug {
    fn name(&self) -> &str {
        "supply"
    }
    fn channels(&self) -> Vec<String> {
        vec!["U(V)".into(), "first(V)".into()]
    }
    fn open(&mut self) -> Result<()> {
        self.link.check_link()?;
        self.link
            .first_open
            .get_or_insert_with(crabby::time::monotonic_ns);
        self.volts = -1.0;
        self.first = None;
        Ok(())
    }
}

impl Input for ResetOnReplug {
    fn read(&mut self) -> Result<Reading> {
        self.link.check_link()?;
        Ok(Reading::now(vec![
            self.volts,
            self.first.unwrap_or(f64::NAN),
        ]))
    }
}

impl Output for ResetOnReplug {
    fn write(&mut self, cmd: &[f64]) -> Result<()> {
        self.link.check_link()?;
        self.volts = cmd[0];
        self.first.get_or_insert(cmd[0]);
        Ok(())
    }
}

/// The set point changes while the supply is away: once back, it is driven to the newest
/// set point at once, never first to the one from before the loss.
fn newest_command_is_written_after_a_reconnection() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-replug-newest");
    let data = dir.path().join("data");
    let mut test = Test::new("replug-newest");
    quiet(&mut test);
    let dev = ResetOnReplug::down(0.3, 0.5);
    let src = test.add_with(
        Source {
            label: Label::new("set(V)"),
            value: |t| if t < 0.4 { 1.0 } else { 2.0 },
            stop_at: Some(1.0),
        },
        Settings::new().freq(100.0),
    );
    let io = test.add_with(
        IOBlock::input_output(dev)
            .cmd_labels(["set(V)"])
            .reconnect(20, Duration::from_millis(30)),
        Settings::new().name("supply").freq(100.0),
    );
    let col = test.add(Collector::new(&data));
    test.link(src, io);
    test.link(io, col);
    let report = test
        .run()
        .map_err(|e| format!("the run should survive the dropout: {e}"))?;
    let text = report.to_string();
    ensure!(text.contains("reconnected 1 time(s)"), "{text}");
    let r = rows(&data)?;
    let (gap, at) = longest_gap(&r);
    let after: Vec<(f64, f64)> = r
        .iter()
        .filter_map(|row| Some((get(row, "t(s)")?, get(row, "U(V)")?, get(row, "first(V)")?)))
        .filter(|(t, _, _)| *t > at + gap - 1e-9)
        .map(|(_, u, f)| (u, f))
        .collect();
    ensure!(
        gap >= 0.15 && after.len() >= 10,
        "gap {gap:.3} s at {at:.3} s"
    );
    ensure!(
        after.iter().all(|&(u, f)| u == 2.0 && f == 2.0),
        "after the reconnection (set point, first set point written): {after:?}"
    );
    Ok(())
}

/// An IOBlock whose only command is its initial_cmd: once the device is back, that command
/// (its latest) is written again.
fn initial_cmd_is_written_again_after_a_reconnection() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-replug-initial");
    let data = dir.path().join("data");
    let mut test = Test::new("replug-initial");
    quiet(&mut test);
    let dev = ResetOnReplug::down(0.3, 0.5);
    let io = test.add_with(
        IOBlock::input_output(dev)
            .initial_cmd(vec![5.0])
            .reconnect(20, Duration::from_millis(30)),
        Settings::new().name("supply").freq(100.0),
    );
    let col = test.add(Collector::new(&data));
    test.link(io, col);
    // Ends the test at 1 s.
    test.add_with(
        Source {
            label: Label::new("unused"),
            value: |_| 0.0,
            stop_at: Some(1.0),
        },
        Settings::new().freq(50.0),
    );
    let report = test
        .run()
        .map_err(|e| format!("the run should survive the dropout: {e}"))?;
    let text = report.to_string();
    ensure!(text.contains("reconnected 1 time(s)"), "{text}");
    let r = rows(&data)?;
    let (gap, at) = longest_gap(&r);
    let after: Vec<f64> = r
        .iter()
        .filter_map(|row| Some((get(row, "t(s)")?, get(row, "U(V)")?)))
        .filter(|(t, _)| *t > at + gap - 1e-9)
        .map(|p| p.1)
        .collect();
    ensure!(
        gap >= 0.15 && after.len() >= 10,
        "gap {gap:.3} s at {at:.3} s"
    );
    ensure!(
        after.iter().all(|&v| v == 5.0),
        "the supply was left at its default after the reconnection: {after:?}"
    );
    Ok(())
}

fn machine_reconnects_a_lost_actuator() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-machine-replug");
    let data = dir.path().join("data");
    let mut test = Test::new("machine-replug");
    quiet(&mut test);
    let src = test.add_with(
        Source {
            label: Label::new("v"),
            value: |_| 2.0,
            stop_at: Some(1.2),
        },
        Settings::new().freq(100.0),
    );
    let axis = Dropout {
        inner: FakeStepperMotor::new(),
        first_open: None,
        from: 0.4,
        to: 0.7,
    };
    let m = test.add_with(
        Machine::new()
            .actuator(ActuatorConfig::speed(axis, "v").position_label("x(mm)"))
            .reconnect(20, Duration::from_millis(30)),
        Settings::new().name("machine").freq(100.0),
    );
    let col = test.add(Collector::new(&data));
    test.link(src, m);
    test.link(m, col);
    let report = test
        .run()
        .map_err(|e| format!("the run should survive the dropout: {e}"))?;
    let text = report.to_string();
    ensure!(
        text.contains("device 'axis': connection lost 1 time(s), reconnected 1 time(s)"),
        "the report does not count the reconnection:\n{text}"
    );
    let r = rows(&data)?;
    let (gap, at) = longest_gap(&r);
    ensure!(
        gap >= 0.2 && at > 0.2,
        "no gap while the link was down (longest interval {gap:.3} s at {at:.3} s)"
    );
    // Driven again after the reconnection: the position grows after the gap.
    let x: Vec<(f64, f64)> = r
        .iter()
        .filter_map(|row| Some((get(row, "t(s)")?, get(row, "x(mm)")?)))
        .collect();
    let after: Vec<f64> = x
        .iter()
        .filter(|(t, _)| *t > at + gap)
        .map(|p| p.1)
        .collect();
    ensure!(
        after.len() >= 10 && after.last() > after.first(),
        "the axis did not move after the reconnection: {after:?}"
    );
    Ok(())
}

fn main() {
    common::main(&[
        common::case(
            "serial_port_replugged_mid_test_reconnects",
            30,
            serial_port_replugged_mid_test_reconnects,
        ),
        common::case(
            "lost_device_fails_by_default_and_after_its_reconnect_attempts",
            30,
            lost_device_fails_by_default_and_after_its_reconnect_attempts,
        ),
        common::case(
            "machine_reconnects_a_lost_actuator",
            30,
            machine_reconnects_a_lost_actuator,
        ),
        common::case(
            "actuator_back_during_a_pause_is_stopped",
            30,
            actuator_back_during_a_pause_is_stopped,
        ),
        common::case(
            "initial_cmd_is_written_again_after_a_reconnection",
            30,
            initial_cmd_is_written_again_after_a_reconnection,
        ),
        common::case(
            "newest_command_is_written_after_a_reconnection",
            30,
            newest_command_is_written_after_a_reconnection,
        ),
        common::case(
            "modbus_tcp_ioblock_to_recorder",
            30,
            modbus_tcp_ioblock_to_recorder,
        ),
        common::case(
            "two_tests_on_one_port_the_second_is_refused",
            30,
            two_tests_on_one_port_the_second_is_refused,
        ),
        common::case(
            "a_killed_holder_leaves_no_lock",
            30,
            a_killed_holder_leaves_no_lock,
        ),
        common::case(
            "serial_port_vanishing_mid_test_faults_the_device",
            30,
            serial_port_vanishing_mid_test_faults_the_device,
        ),
        common::case(
            "ioblock_furnace_zero_commands_and_exit_cmd",
            30,
            ioblock_furnace_zero_commands_and_exit_cmd,
        ),
        common::case(
            "ioblock_trigger_reads_once_per_trigger",
            30,
            ioblock_trigger_reads_once_per_trigger,
        ),
        common::case(
            "ioblock_streamer_sends_evenly_spaced_chunks",
            30,
            ioblock_streamer_sends_evenly_spaced_chunks,
        ),
        common::case(
            "machine_stepper_position_and_dc_motor_speed",
            30,
            machine_stepper_position_and_dc_motor_speed,
        ),
        common::case(
            "motor_stopped_on_normal_end",
            30,
            motor_stopped_on_normal_end,
        ),
        common::case(
            "motor_stopped_when_another_block_fails",
            30,
            motor_stopped_when_another_block_fails,
        ),
        common::case("motor_stopped_on_ctrl_c", 30, motor_stopped_on_ctrl_c),
        common::case(
            "every_actuator_stopped_when_one_stop_hangs",
            30,
            every_actuator_stopped_when_one_stop_hangs,
        ),
        common::case(
            "motor_stopped_when_its_own_device_faults",
            30,
            motor_stopped_when_its_own_device_faults,
        ),
        common::case(
            "motor_stopped_when_another_block_fails_prepare",
            30,
            motor_stopped_when_another_block_fails_prepare,
        ),
        common::case(
            "other_actuators_stopped_when_one_stop_panics",
            30,
            other_actuators_stopped_when_one_stop_panics,
        ),
        common::case(
            "make_zero_interrupted_when_another_block_fails_prepare",
            30,
            make_zero_interrupted_when_another_block_fails_prepare,
        ),
        common::case(
            "make_zero_on_a_silent_stream_is_a_timeout",
            30,
            make_zero_on_a_silent_stream_is_a_timeout,
        ),
        common::case(
            "device_fault_mid_test_is_reported_and_data_kept",
            30,
            device_fault_mid_test_is_reported_and_data_kept,
        ),
        common::case(
            "bad_configurations_rejected_before_fork",
            30,
            bad_configurations_rejected_before_fork,
        ),
    ]);
}

// ---------------------------------------------------------------- helper Blocks

/// Appends a line to a file (what the wrappers below leave behind for the test to check).
fn log_line(path: &Path, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log file");
    writeln!(f, "{line}").expect("write log");
}

/// An InOut wrapper that records every command written, and its close; it has the
/// capabilities of the device it wraps (one impl per capability, each bounded on it).
struct Recorded<D: InOut> {
    inner: D,
    log: PathBuf,
}

impl<D: InOut> InOut for Recorded<D> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn channels(&self) -> Vec<String> {
        self.inner.channels()
    }

    fn check(&self) -> Result<()> {
        self.inner.check()
    }

    fn open(&mut self) -> Result<()> {
        self.inner.open()
    }

    fn close(&mut self) -> Result<()> {
        log_line(&self.log, "close");
        self.inner.close()
    }

    fn status(&self) -> Status {
        self.inner.status()
    }
}

impl<D: Input> Input for Recorded<D> {
    fn read(&mut self) -> Result<Reading> {
        self.inner.read()
    }
}

impl<D: Output> Output for Recorded<D> {
    fn n_commands(&self) -> Option<usize> {
        self.inner.n_commands()
    }

    fn write(&mut self, cmd: &[f64]) -> Result<()> {
        log_line(&self.log, &format!("write {cmd:?}"));
        self.inner.write(cmd)
    }
}

impl<D: Stream> Stream for Recorded<D> {
    fn start_stream(&mut self) -> Result<()> {
        self.inner.start_stream()
    }

    fn read_stream(&mut self) -> Result<crabby::hardware::Chunk> {
        self.inner.read_stream()
    }

    fn stop_stream(&mut self) -> Result<()> {
        Ok(())
    }
}

/// An Actuator wrapper that leaves in a file the speed before `stop()`, and the speed and
/// the distance moved once some time has passed after it (a stopped motor stays put), and
/// its close; optionally its device stops answering after `fail_after` seconds.
struct Watched<A: Actuator> {
    inner: A,
    log: PathBuf,
    opened_at: u64,
    fail_after: Option<f64>,
}

impl<A: Actuator> Watched<A> {
    fn new(inner: A, log: &Path) -> Self {
        Watched {
            inner,
            log: log.to_owned(),
            opened_at: 0,
            fail_after: None,
        }
    }
    fn fail_check(&self) -> Result<()> {
        if let Some(f) = self.fail_after {
            if (crabby::time::monotonic_ns() - self.opened_at) as f64 * 1e-9 > f {
                return Err(crabby::hardware::device_error(
                    ErrorKind::Timeout,
                    "watched-motor",
                    "no answer within 100 ms; check that the controller is powered and the cable",
                ));
            }
        }
        Ok(())
    }
}

impl<A: PositionFeedback + SpeedFeedback> Actuator for Watched<A> {
    fn name(&self) -> &str {
        "watched-motor"
    }

    fn check(&self) -> Result<()> {
        self.inner.check()
    }

    fn open(&mut self) -> Result<()> {
        self.opened_at = crabby::time::monotonic_ns();
        self.inner.open()
    }

    fn set_speed(&mut self, v: f64) -> Result<()> {
        self.fail_check()?;
        self.inner.set_speed(v)
    }

    fn stop(&mut self) -> Result<()> {
        // The simulated motor is still reachable for the stop (a real one that vanished is
        // not: then Machine logs the failure loudly).
        let before = self.inner.speed()?;
        self.inner.stop()?;
        let p0 = self.inner.position()?;
        // Simulated time passes: a motor that was not really stopped (or only told to
        // decelerate) moves on (at 5 mm/s: 0.25 mm in 50 ms).
        std::thread::sleep(Duration::from_millis(50));
        let after = self.inner.speed()?;
        let moved = self.inner.position()? - p0;
        log_line(
            &self.log,
            &format!("stop before={before} after={after} moved={moved}"),
        );
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        log_line(&self.log, "close");
        self.inner.close()
    }
}

impl<A: Positioner + PositionFeedback + SpeedFeedback> Positioner for Watched<A> {
    fn set_position(&mut self, p: f64, s: Option<f64>) -> Result<()> {
        self.fail_check()?;
        self.inner.set_position(p, s)
    }
}

impl<A: PositionFeedback + SpeedFeedback> PositionFeedback for Watched<A> {
    fn position(&mut self) -> Result<f64> {
        self.fail_check()?;
        self.inner.position()
    }
}

impl<A: PositionFeedback + SpeedFeedback> SpeedFeedback for Watched<A> {
    fn speed(&mut self) -> Result<f64> {
        self.fail_check()?;
        self.inner.speed()
    }
}

/// Checks a Watched motor's log: it was moving, then stopped, then closed.
fn check_stopped(log: &Path) -> std::result::Result<(), String> {
    check_stop_log(log, true)
}

/// Checks a Watched motor's log: stopped (and moving before, if `was_moving`), then closed.
fn check_stop_log(log: &Path, was_moving: bool) -> std::result::Result<(), String> {
    let text = std::fs::read_to_string(log)
        .map_err(|e| format!("motor log {}: {e} (stop never called?)", log.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    ensure!(
        lines.len() == 2,
        "expected a stop then a close, got {lines:?}"
    );
    ensure!(lines[1] == "close", "close must come after stop: {lines:?}");
    let before: f64 = lines[0]
        .split("before=")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .ok_or("parse")?;
    let field = |name: &str| -> std::result::Result<f64, String> {
        lines[0]
            .split(&format!("{name}="))
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok())
            .ok_or(format!("no {name} in {:?}", lines[0]))
    };
    let (after, moved) = (field("after")?, field("moved")?);
    ensure!(
        !was_moving || before.abs() > 0.5,
        "the motor should have been moving before the stop: {before}"
    );
    ensure!(
        after == 0.0 && moved == 0.0,
        "the motor still moves after stop: {after} mm/s, {moved} mm in 50 ms"
    );
    Ok(())
}

fn quiet(test: &mut Test) {
    test.log_file(None);
}

// ---------------------------------------------------------------- IOBlock

fn ioblock_furnace_zero_commands_and_exit_cmd() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-furnace");
    let data = dir.path().join("data");
    let cmds = dir.path().join("cmds");
    let mut test = Test::new("furnace");
    quiet(&mut test);
    // Heater off for 0.2 s, then full power; the source ends the test at 1.0 s.
    let src = test.add_with(
        Source {
            label: Label::new("power"),
            value: |t| if t < 0.2 { 0.0 } else { 100.0 },
            stop_at: Some(1.0),
        },
        Settings::new().freq(100.0),
    );
    let furnace = FakeFurnace::new().noise(0.05, 3);
    let io = test.add_with(
        IOBlock::input_output(Recorded {
            inner: furnace,
            log: cmds.clone(),
        })
        .cmd_labels(["power"])
        .initial_cmd(vec![0.0])
        .exit_cmd(vec![0.0])
        .make_zero(0.2),
        Settings::new().name("furnace").freq(100.0),
    );
    let col = test.add(Collector::new(&data));
    test.link(src, io);
    test.link(io, col);
    let report = test.run().map_err(|e| format!("run: {e}"))?;
    let r = rows(&data)?;
    ensure!(r.len() > 50, "too few readings: {} ({report})", r.len());
    // Zeroed: the room temperature (20 °C) reads about 0 at the start.
    let first = get(&r[0], "T(C)").ok_or("no T(C)")?;
    ensure!(
        first.abs() < 0.5,
        "make_zero did not remove the 20 °C offset: {first}"
    );
    // Time relative to t0, increasing.
    let ts: Vec<f64> = r.iter().filter_map(|x| get(x, "t(s)")).collect();
    ensure!(ts[0] >= 0.0 && ts[0] < 0.1, "first t(s) {}", ts[0]);
    ensure!(ts.windows(2).all(|w| w[1] > w[0]), "t(s) not increasing");
    // Heated at 100 % from ~0.2 s: ΔT = 500·(1 − exp(−(t − 0.2)/5)) (±5 °C for scheduling).
    let last = r.last().ok_or("no rows")?;
    let (t, temp) = (get(last, "t(s)").ok_or("t")?, get(last, "T(C)").ok_or("T")?);
    let expect = 500.0 * (1.0 - (-(t - 0.2) / 5.0f64).exp());
    ensure!(
        (temp - expect).abs() < 5.0,
        "T = {temp} at t = {t}, model says {expect}"
    );
    // Commands: initial 0, then 0 (first complete command), 100 once (only on change), exit 0.
    let c = std::fs::read_to_string(&cmds).map_err(|e| e.to_string())?;
    let lines: Vec<&str> = c.lines().collect();
    ensure!(
        lines
            == [
                "write [0.0]",
                "write [0.0]",
                "write [100.0]",
                "write [0.0]",
                "close"
            ],
        "commands: {lines:?}"
    );
    Ok(())
}

fn ioblock_trigger_reads_once_per_trigger() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-trigger");
    let data = dir.path().join("data");
    /// Sends `go` five times, 0.1 s apart, then waits 0.3 s and ends the test.
    struct Triggers {
        sent: u32,
    }
    impl Block for Triggers {
        fn output_labels(&self) -> Option<Vec<Label>> {
            Some(vec![Label::new("go")])
        }
        fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
            let t = ctx.t();
            if self.sent < 5 && t >= 0.1 * self.sent as f64 {
                ctx.send(&Sample::new().with("go", 1))?;
                self.sent += 1;
            }
            Ok(if t > 0.8 { Flow::Stop } else { Flow::Continue })
        }
    }
    let mut test = Test::new("trigger");
    quiet(&mut test);
    let trig = test.add_with(Triggers { sent: 0 }, Settings::new().freq(200.0));
    let io = test.add_with(
        IOBlock::input(FakeFurnace::new()).trigger_label("go"),
        Settings::new().freq(500.0),
    );
    let col = test.add(Collector::new(&data));
    test.link(trig, io);
    test.link(io, col);
    test.run().map_err(|e| format!("run: {e}"))?;
    let r = rows(&data)?;
    ensure!(
        r.len() == 5,
        "expected one reading per trigger (5), got {}",
        r.len()
    );
    Ok(())
}

fn ioblock_streamer_sends_evenly_spaced_chunks() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-stream");
    let data = dir.path().join("data");
    let mut test = Test::new("stream");
    quiet(&mut test);
    let io = test.add_with(
        IOBlock::stream(FakeFurnace::new().sample_rate(2000.0))
            .make_zero(0.1)
            .status_label("status"),
        Settings::new().name("daq").freq(20.0),
    );
    let col = test.add(Collector::new(&data));
    let stop = test.add_with(
        Source {
            label: Label::new("unused"),
            value: |_| 0.0,
            stop_at: Some(0.6),
        },
        Settings::new().freq(50.0),
    );
    let _ = stop;
    test.link(io, col);
    test.run().map_err(|e| format!("run: {e}"))?;
    let r = rows(&data)?;
    ensure!(r.len() >= 5, "too few chunks: {}", r.len());
    // Each row: t(s)=[a;b;...] and T(C)=[...] of the same length.
    let mut all_t = Vec::new();
    for row in &r {
        let arr = |l: &str| -> std::result::Result<Vec<f64>, String> {
            let v = &row.iter().find(|(x, _)| x == l).ok_or(format!("no {l}"))?.1;
            v.trim_matches(|c| c == '[' || c == ']')
                .split(';')
                .map(|s| s.parse::<f64>().map_err(|e| format!("{s}: {e}")))
                .collect()
        };
        let (t, temp) = (arr("t(s)")?, arr("T(C)")?);
        ensure!(
            t.len() == temp.len() && !t.is_empty(),
            "chunk lengths {} {}",
            t.len(),
            temp.len()
        );
        ensure!(temp.iter().all(|x| x.abs() < 1.0), "not zeroed: {temp:?}");
        let st = row
            .iter()
            .find(|(l, _)| l == "status")
            .ok_or("no status label")?;
        ensure!(st.1 == "on: heater off", "status {}", st.1);
        all_t.extend(t);
    }
    ensure!(
        all_t[0] >= 0.0,
        "samples from before t0 were sent: {}",
        all_t[0]
    );
    ensure!(
        all_t
            .windows(2)
            .all(|w| ((w[1] - w[0]) - 0.0005).abs() < 1e-6),
        "samples are not 0.5 ms apart"
    );
    let span = all_t.last().unwrap() - all_t[0];
    ensure!(span > 0.4, "stream covers only {span} s");
    Ok(())
}

// ---------------------------------------------------------------- Machine

fn machine_stepper_position_and_dc_motor_speed() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-machine");
    let data = dir.path().join("data");
    let mut test = Test::new("machine");
    quiet(&mut test);
    let x = test.add_with(
        Source {
            label: Label::new("x"),
            value: |_| 2.0,
            stop_at: Some(1.0),
        },
        Settings::new().freq(50.0),
    );
    let v = test.add_with(
        Source {
            label: Label::new("volt"),
            value: |_| 1.0,
            stop_at: None,
        },
        Settings::new().freq(50.0),
    );
    let m = test.add_with(
        Machine::new()
            .actuator(
                ActuatorConfig::position(FakeStepperMotor::new(), "x")
                    .move_speed(5.0)
                    .position_label("x(mm)")
                    .speed_label("v(mm/s)")
                    .status_label("stepper"),
            )
            .actuator(
                ActuatorConfig::speed(FakeDCMotor::new(), "volt")
                    .speed_label("rpm")
                    .position_label("turns"),
            ),
        Settings::new().name("machine").freq(100.0),
    );
    let col = test.add(Collector::new(&data));
    test.link(x, m);
    test.link(v, m);
    test.link(m, col);
    test.run().map_err(|e| format!("run: {e}"))?;
    let r = rows(&data)?;
    ensure!(r.len() > 50, "rows {}", r.len());
    let xs: Vec<f64> = r.iter().filter_map(|x| get(x, "x(mm)")).collect();
    let vs: Vec<f64> = r.iter().filter_map(|x| get(x, "v(mm/s)")).collect();
    ensure!(
        xs.windows(2).all(|w| w[1] >= w[0]),
        "position went backwards"
    );
    ensure!(
        vs.iter().all(|v| *v <= 5.0 + 1e-9),
        "move faster than its 5 mm/s move speed"
    );
    // Trapezoid to 2 mm at 20 mm/s², 5 mm/s: 0.65 s; the test ran ~1 s.
    ensure!(
        *xs.last().unwrap() == 2.0,
        "did not arrive at 2 mm: {}",
        xs.last().unwrap()
    );
    ensure!(*vs.last().unwrap() == 0.0, "still moving at the end");
    // The status follows the device: moving, then holding on the target.
    let status = |row: &[(String, String)]| {
        row.iter()
            .find(|(l, _)| l == "stepper")
            .map(|(_, v)| v.clone())
    };
    ensure!(
        r.iter()
            .any(|x| status(x).is_some_and(|s| s.starts_with("moving"))),
        "never reported moving"
    );
    let last_status = status(r.last().unwrap()).ok_or("no status")?;
    ensure!(
        last_status == "on: holding at 2.000 mm",
        "status at the end: {last_status}"
    );
    // DC motor at 1 V: about 667 rpm at 1 s (Crappy's figure), rising monotonically.
    let rpm: Vec<f64> = r.iter().filter_map(|x| get(x, "rpm")).collect();
    let last = *rpm.last().unwrap();
    ensure!(last > 600.0 && last < 707.2, "rpm at the end {last}");
    ensure!(
        rpm.windows(2).all(|w| w[1] >= w[0]),
        "rpm not increasing at constant voltage"
    );
    Ok(())
}

/// Adds Blocks to a graph.
type AddBlocks = Box<dyn FnOnce(&mut Test)>;

/// A graph that moves a watched stepper at 5 mm/s, plus `extra` Blocks; returns the result.
fn run_motor_graph(
    log: &Path,
    source_stops: Option<f64>,
    extra: Option<AddBlocks>,
    fail_after: Option<f64>,
) -> Result<crabby::Report> {
    let mut test = Test::new("motor-stop");
    quiet(&mut test);
    let src = test.add_with(
        Source {
            label: Label::new("v"),
            value: |_| 5.0,
            stop_at: source_stops,
        },
        Settings::new().freq(50.0),
    );
    let mut motor = Watched::new(FakeStepperMotor::new(), log);
    motor.fail_after = fail_after;
    let m = test.add_with(
        Machine::new().actuator(ActuatorConfig::speed(motor, "v").speed_label("v(mm/s)")),
        Settings::new().name("machine").freq(100.0),
    );
    test.link(src, m);
    if let Some(f) = extra {
        f(&mut test);
    }
    test.run()
}

fn motor_stopped_on_normal_end() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-stop-normal");
    let log = dir.path().join("motor");
    let report = run_motor_graph(&log, Some(0.5), None, None).map_err(|e| format!("run: {e}"))?;
    ensure!(
        report.blocks.iter().all(|b| !b.outcome.is_failure()),
        "{report}"
    );
    check_stopped(&log)
}

fn motor_stopped_when_another_block_fails() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-stop-fail");
    let log = dir.path().join("motor");
    struct Fails;
    impl Block for Fails {
        fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
            if ctx.t() > 0.4 {
                return Err(crabby::Error::new(
                    ErrorKind::Hardware,
                    "load cell overload",
                ));
            }
            Ok(Flow::Continue)
        }
    }
    let extra: AddBlocks = Box::new(|t: &mut Test| {
        t.add_with(Fails, Settings::new().name("cell").freq(50.0));
    });
    let e = run_motor_graph(&log, None, Some(extra), None)
        .err()
        .ok_or("the run should fail")?;
    ensure!(
        e.kind() != ErrorKind::BlockFailed && e.block() == Some("cell"),
        "{e}"
    );
    check_stopped(&log)
}

fn motor_stopped_on_ctrl_c() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-stop-int");
    let log = dir.path().join("motor");
    /// Presses Ctrl+C at 0.4 s: SIGINT to the coordinator (its parent), as a terminal would.
    struct CtrlC {
        sent: bool,
    }
    impl Block for CtrlC {
        fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
            if ctx.t() > 0.4 && !self.sent {
                nix::sys::signal::kill(nix::unistd::getppid(), nix::sys::signal::Signal::SIGINT)
                    .map_err(|e| crabby::Error::io("kill", e.into()))?;
                self.sent = true;
            }
            Ok(Flow::Continue)
        }
    }
    let extra: AddBlocks = Box::new(|t: &mut Test| {
        t.add_with(
            CtrlC { sent: false },
            Settings::new().name("user").freq(50.0),
        );
    });
    let e = run_motor_graph(&log, None, Some(extra), None)
        .err()
        .ok_or("the run should be interrupted")?;
    ensure!(e.kind() == ErrorKind::Interrupted, "{e}");
    check_stopped(&log)
}

fn motor_stopped_when_its_own_device_faults() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-stop-fault");
    let log = dir.path().join("motor");
    let e = run_motor_graph(&log, None, None, Some(0.4))
        .err()
        .ok_or("the run should fail")?;
    ensure!(
        e.kind() != ErrorKind::BlockFailed && e.block() == Some("machine"),
        "{e}"
    );
    ensure!(
        e.description()
            .contains("device 'watched-motor': timeout: no answer"),
        "{e}"
    );
    let report = e.report().ok_or("no report")?;
    let b = report
        .blocks
        .iter()
        .find(|b| b.name == "machine")
        .ok_or("no machine")?;
    ensure!(
        matches!(&b.outcome, Outcome::Failed(d) if d.to_string().contains("watched-motor")),
        "{:?}",
        b.outcome
    );
    check_stopped(&log)
}

/// A Block whose `prepare` fails after `after` seconds (a camera that is not there).
struct FailsPrepare {
    after: f64,
}

impl Block for FailsPrepare {
    fn prepare(&mut self, _: &mut Context) -> Result<()> {
        std::thread::sleep(Duration::from_secs_f64(self.after));
        Err(crabby::Error::new(ErrorKind::Hardware, "camera not found"))
    }
    fn step(&mut self, _: &mut Context) -> Result<Flow> {
        Ok(Flow::Continue)
    }
}

fn motor_stopped_when_another_block_fails_prepare() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-stop-prep");
    let log = dir.path().join("motor");
    let extra: AddBlocks = Box::new(|t: &mut Test| {
        t.add_with(FailsPrepare { after: 0.2 }, Settings::new().name("camera"));
    });
    let e = run_motor_graph(&log, None, Some(extra), None)
        .err()
        .ok_or("the run should fail")?;
    ensure!(e.to_string().contains("camera not found"), "{e}");
    // Opened in prepare, never started: still stopped and closed.
    check_stop_log(&log, false)
}

/// An actuator whose `stop` panics (a driver bug).
struct PanicsOnStop;

impl Actuator for PanicsOnStop {
    fn name(&self) -> &str {
        "buggy-motor"
    }

    fn set_speed(&mut self, _: f64) -> Result<()> {
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        panic!("driver bug in stop")
    }
}

fn other_actuators_stopped_when_one_stop_panics() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-stop-panic");
    let log = dir.path().join("motor");
    let mut test = Test::new("motor-panic");
    quiet(&mut test);
    let src = test.add_with(
        Source {
            label: Label::new("v"),
            value: |_| 5.0,
            stop_at: Some(0.5),
        },
        Settings::new().freq(50.0),
    );
    let m = test.add_with(
        Machine::new()
            .actuator(ActuatorConfig::speed(PanicsOnStop, "v"))
            .actuator(ActuatorConfig::speed(
                Watched::new(FakeStepperMotor::new(), &log),
                "v",
            )),
        Settings::new().name("machine").freq(100.0),
    );
    test.link(src, m);
    let text = match test.run() {
        Ok(r) => r.to_string(),
        Err(e) => format!(
            "{e}\n{}",
            e.report().map(|r| r.to_string()).unwrap_or_default()
        ),
    };
    ensure!(
        text.contains("panicked in stop: driver bug in stop"),
        "the panic is not reported:\n{text}"
    );
    check_stopped(&log)
}

/// An actuator whose `stop` never returns (a driver stuck on a lock or a silent device
/// without timeout).
struct HangsOnStop;

impl Actuator for HangsOnStop {
    fn name(&self) -> &str {
        "stuck-motor"
    }

    fn set_speed(&mut self, _: f64) -> Result<()> {
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        loop {
            std::thread::park();
        }
    }
}

/// An actuator whose `stop` fails.
struct FailsOnStop;

impl Actuator for FailsOnStop {
    fn name(&self) -> &str {
        "faulty-motor"
    }

    fn set_speed(&mut self, _: f64) -> Result<()> {
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        Err(crabby::hardware::device_error(
            ErrorKind::Communication,
            "faulty-motor",
            "no answer to the stop command",
        ))
    }
}

/// Item 7 of issue 9: a hung, a panicking and a failing `stop` before two good actuators;
/// both good ones are still stopped and closed, within the stop timeout, and every bad one
/// is reported by name.
fn every_actuator_stopped_when_one_stop_hangs() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-stop-hang");
    let (log1, log2) = (dir.path().join("motor1"), dir.path().join("motor2"));
    let mut test = Test::new("motor-hang");
    quiet(&mut test);
    let src = test.add_with(
        Source {
            label: Label::new("v"),
            value: |_| 5.0,
            stop_at: Some(0.3),
        },
        Settings::new().freq(50.0),
    );
    let m = test.add_with(
        Machine::new()
            .actuator(ActuatorConfig::speed(HangsOnStop, "v"))
            .actuator(ActuatorConfig::speed(PanicsOnStop, "v"))
            .actuator(ActuatorConfig::speed(
                Watched::new(FakeStepperMotor::new(), &log1),
                "v",
            ))
            .actuator(ActuatorConfig::speed(FailsOnStop, "v"))
            .actuator(ActuatorConfig::speed(
                Watched::new(FakeStepperMotor::new(), &log2),
                "v",
            )),
        Settings::new().name("machine").freq(100.0),
    );
    test.link(src, m);
    // The Machine's finish must end on its own (stop timeout 1 s), well before the finish
    // grace (5 s here) after which it would be terminated.
    test.grace(Duration::from_secs(5), Duration::from_millis(500));
    let e = test
        .run()
        .err()
        .ok_or("the run should fail: three actuators could not be stopped")?;
    let report = e.report().ok_or("no report")?;
    let text = format!("{e}\n{report}");
    let machine = report
        .blocks
        .iter()
        .find(|b| b.name == "machine")
        .ok_or("no machine in the report")?;
    ensure!(
        !matches!(
            machine.outcome,
            Outcome::Killed | Outcome::Signaled(_) | Outcome::Crashed(_)
        ) && machine.finish_error.is_some(),
        "the Machine's finish should have ended on its own with an error, not {:?} / {:?}:\n{text}",
        machine.outcome,
        machine.finish_error
    );
    ensure!(
        text.contains("stuck-motor") && text.contains("did not return within 1s"),
        "the hung actuator is not reported:\n{text}"
    );
    check_stop_log(&log1, true)?;
    check_stop_log(&log2, true)
}

fn make_zero_interrupted_when_another_block_fails_prepare() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-zero-stop");
    let data = dir.path().join("data");
    let cmds = dir.path().join("cmds");
    let mut test = Test::new("zero-stop");
    quiet(&mut test);
    // A long make_zero: still running when the camera fails.
    let io = test.add_with(
        IOBlock::input_output(Recorded {
            inner: FakeFurnace::new(),
            log: cmds.clone(),
        })
        .exit_cmd(vec![0.0])
        .make_zero(60.0),
        Settings::new().name("furnace"),
    );
    let col = test.add(Collector::new(&data));
    test.link(io, col);
    test.add_with(FailsPrepare { after: 0.3 }, Settings::new().name("camera"));
    let e = test.run().err().ok_or("the run should fail")?;
    let report = e.report().ok_or("no report")?;
    let b = report
        .blocks
        .iter()
        .find(|b| b.name == "furnace")
        .ok_or("no furnace")?;
    ensure!(
        !matches!(b.outcome, Outcome::Killed),
        "the IOBlock was killed in make_zero:\n{report}"
    );
    // The exit command was written and the device closed.
    let c = std::fs::read_to_string(&cmds).map_err(|e| format!("{e} (nothing written)"))?;
    let lines: Vec<&str> = c.lines().collect();
    ensure!(lines == ["write [0.0]", "close"], "commands: {lines:?}");
    Ok(())
}

fn make_zero_on_a_silent_stream_is_a_timeout() -> std::result::Result<(), String> {
    /// A DAQ board that streams but never delivers a sample (no trigger).
    struct SilentDaq;
    impl InOut for SilentDaq {
        fn name(&self) -> &str {
            "daq"
        }

        fn channels(&self) -> Vec<String> {
            vec!["U(V)".into()]
        }
    }

    impl Stream for SilentDaq {
        fn start_stream(&mut self) -> Result<()> {
            Ok(())
        }

        fn read_stream(&mut self) -> Result<crabby::hardware::Chunk> {
            Ok(crabby::hardware::Chunk {
                t_ns: vec![],
                channels: vec![vec![]],
            })
        }

        fn stop_stream(&mut self) -> Result<()> {
            Ok(())
        }
    }
    let dir = TempDir::new("hw-zero-silent");
    let data = dir.path().join("data");
    let mut test = Test::new("zero-silent");
    quiet(&mut test);
    let io = test.add_with(
        IOBlock::stream(SilentDaq).make_zero(0.1),
        Settings::new().name("daq"),
    );
    let col = test.add(Collector::new(&data));
    test.link(io, col);
    let e = test.run().err().ok_or("the run should fail")?;
    let text = format!(
        "{e}\n{}",
        e.report().map(|r| r.to_string()).unwrap_or_default()
    );
    ensure!(
        text.contains("no samples during make_zero") && text.contains("timeout"),
        "{text}"
    );
    Ok(())
}

// ---------------------------------------------------------------- faults and checks

/// A furnace whose thermocouple amplifier stops answering after `after` seconds.
struct Dying {
    inner: FakeFurnace,
    opened_at: u64,
    after: f64,
}

impl InOut for Dying {
    fn name(&self) -> &str {
        "thermocouple-amp"
    }

    fn channels(&self) -> Vec<String> {
        self.inner.channels()
    }

    fn open(&mut self) -> Result<()> {
        self.opened_at = crabby::time::monotonic_ns();
        self.inner.open()
    }
}

impl Input for Dying {
    fn read(&mut self) -> Result<Reading> {
        if (crabby::time::monotonic_ns() - self.opened_at) as f64 * 1e-9 > self.after {
            return Err(crabby::hardware::device_error(
                ErrorKind::Timeout,
                "thermocouple-amp",
                "no answer within 100 ms; check that the amplifier is powered and the cable",
            ));
        }
        self.inner.read()
    }
}

fn device_fault_mid_test_is_reported_and_data_kept() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-fault");
    let data = dir.path().join("data");
    let mut test = Test::new("fault");
    quiet(&mut test);
    let io = test.add_with(
        IOBlock::input(Dying {
            inner: FakeFurnace::new(),
            opened_at: 0,
            after: 0.5,
        })
        .status_label("status"),
        Settings::new().name("furnace").freq(100.0),
    );
    let col = test.add(Collector::new(&data));
    test.link(io, col);
    let e = test.run().err().ok_or("the run should fail")?;
    ensure!(
        e.kind() != ErrorKind::BlockFailed && e.block() == Some("furnace"),
        "{e}"
    );
    let report = e.report().ok_or("no report")?;
    let text = report.to_string();
    ensure!(
        text.contains("device 'thermocouple-amp': timeout: no answer within 100 ms"),
        "report lacks the device error:\n{text}"
    );
    // What was read before the fault was recorded, and the status said "on" meanwhile.
    let r = rows(&data)?;
    ensure!(r.len() > 10, "data before the fault lost: {} rows", r.len());
    let last_t = get(r.last().unwrap(), "t(s)").ok_or("t")?;
    ensure!(last_t < 0.5 && last_t > 0.2, "last reading at {last_t}");
    let st = &r[0]
        .iter()
        .find(|(l, _)| l == "status")
        .ok_or("no status")?
        .1;
    ensure!(st.starts_with("on"), "status {st}");
    Ok(())
}

fn bad_configurations_rejected_before_fork() -> std::result::Result<(), String> {
    let dir = TempDir::new("hw-badcfg");
    let marker = dir.path().join("prepared");
    /// Leaves a file when prepared: proves whether anything was forked.
    struct Marker(PathBuf);
    impl Block for Marker {
        fn prepare(&mut self, _: &mut Context) -> Result<()> {
            std::fs::write(&self.0, b"x").map_err(|e| crabby::Error::io("marker", e))
        }
        fn step(&mut self, _: &mut Context) -> Result<Flow> {
            Ok(Flow::Stop)
        }
    }
    let run =
        |f: &dyn Fn(&mut Test) -> crabby::BlockId| -> std::result::Result<crabby::Error, String> {
            let mut test = Test::new("bad");
            quiet(&mut test);
            let io = f(&mut test);
            let m = test.add(Marker(marker.clone()));
            test.link(io, m);
            let e = test.run().err().ok_or("a bad configuration was accepted")?;
            ensure!(
                !marker.exists(),
                "a Block was prepared (forked) despite the bad configuration"
            );
            ensure!(
                common::children_of(std::process::id() as i32).is_empty(),
                "child processes exist"
            );
            Ok(e)
        };
    // Missing serial port.
    let e = run(&|t| {
        t.add_with(
            IOBlock::input(
                ScpiInOut::new("dmm", SerialConfig::new("/dev/ttyUSB_NOT_THERE", 9600))
                    .measure("U(V)", "MEAS:VOLT:DC?"),
            ),
            Settings::new().name("voltmeter"),
        )
    })?;
    ensure!(
        e.kind() == ErrorKind::Configuration && e.origin() == Some("voltmeter"),
        "{e}"
    );
    ensure!(
        e.description().contains("device 'dmm'")
            && e.description().contains("/dev/ttyUSB_NOT_THERE")
            && e.description().contains("does not exist"),
        "{e}"
    );
    // Bad baud rate (on a path that exists).
    let e = run(&|t| {
        t.add_with(
            IOBlock::input(
                ScpiInOut::new("dmm", SerialConfig::new("/dev/null", 9601))
                    .measure("U(V)", "MEAS:VOLT:DC?"),
            ),
            Settings::new().name("voltmeter"),
        )
    })?;
    ensure!(
        e.kind() == ErrorKind::Configuration && e.origin() == Some("voltmeter"),
        "{e}"
    );
    ensure!(e.description().contains("baud rate 9601"), "{e}");
    // A command label nobody sends.
    let e = run(&|t| {
        let src = t.add(Source {
            label: Label::new("pwr"),
            value: |_| 0.0,
            stop_at: Some(0.1),
        });
        let io = t.add_with(
            IOBlock::input_output(FakeFurnace::new()).cmd_labels(["power"]),
            Settings::new().name("oven"),
        );
        t.link(src, io);
        io
    })?;
    ensure!(
        e.kind() == ErrorKind::Configuration && e.origin() == Some("oven"),
        "{e}"
    );
    ensure!(
        e.description().contains("'power'") && e.description().contains("pwr"),
        "{e}"
    );
    // A status label that collides with a channel label.
    let e = run(&|t| {
        t.add_with(
            IOBlock::input(FakeFurnace::new()).status_label("T(C)"),
            Settings::new().name("oven"),
        )
    })?;
    ensure!(
        e.kind() == ErrorKind::Configuration && e.description().contains("status_label 'T(C)'"),
        "{e}"
    );
    // make_zero on a Block that is never read (no output link).
    let e = run(&|t| {
        let src = t.add(Source {
            label: Label::new("power"),
            value: |_| 0.0,
            stop_at: Some(0.1),
        });
        let io = t.add_with(
            IOBlock::input_output(FakeFurnace::new())
                .cmd_labels(["power"])
                .make_zero(1.0),
            Settings::new().name("oven"),
        );
        t.link(src, io);
        src
    })?;
    ensure!(
        e.kind() == ErrorKind::Configuration && e.description().contains("make_zero"),
        "{e}"
    );
    // A move speed of 0: the motor would never move.
    let e = run(&|t| {
        let src = t.add(Source {
            label: Label::new("x"),
            value: |_| 0.0,
            stop_at: Some(0.1),
        });
        let m = t.add_with(
            Machine::new()
                .actuator(ActuatorConfig::position(FakeStepperMotor::new(), "x").move_speed(0.0)),
            Settings::new().name("press"),
        );
        t.link(src, m);
        m
    })?;
    ensure!(
        e.kind() == ErrorKind::Configuration && e.description().contains("move speed"),
        "{e}"
    );
    // Output links to a device given as output only (position mode on a motor that has none
    // does not compile: see the compile_fail example in crabby_blocks::machine).
    let e = run(&|t| {
        t.add_with(
            IOBlock::output(FakeFurnace::new()),
            Settings::new().name("heater"),
        )
    })?;
    ensure!(
        e.kind() == ErrorKind::Configuration && e.origin() == Some("heater"),
        "{e}"
    );
    ensure!(
        e.description()
            .contains("cannot read (it was given with IOBlock::output"),
        "{e}"
    );
    // A bad motor parameter.
    let e = run(&|t| {
        let src = t.add(Source {
            label: Label::new("v"),
            value: |_| 0.0,
            stop_at: Some(0.1),
        });
        let m = t.add_with(
            Machine::new().actuator(ActuatorConfig::speed(
                FakeStepperMotor::new().acceleration(-1.0),
                "v",
            )),
            Settings::new().name("press"),
        );
        t.link(src, m);
        m
    })?;
    ensure!(
        e.kind() == ErrorKind::Configuration && e.description().contains("acceleration"),
        "{e}"
    );
    Ok(())
}

// ---------------------------------------------------------------- Modbus and device locks

/// Waits up to `timeout` for one byte on `fd`; false on timeout or end of file.
fn wait_byte(fd: &std::os::fd::OwnedFd, timeout: Duration) -> bool {
    use std::os::fd::AsFd;
    let mut fds = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let ms = timeout.as_millis().min(u16::MAX as u128) as u16;
    if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)).unwrap_or(0) == 0 {
        return false;
    }
    let mut b = [0u8; 1];
    matches!(nix::unistd::read(fd, &mut b), Ok(1))
}

/// A real forked graph against a Modbus TCP simulator in a process of its own: a Source
/// sends set-points the IOBlock writes to a holding register, the IOBlock reads it back
/// with a float input register and a scaled signed register, the Recorder writes them.
fn modbus_tcp_ioblock_to_recorder() -> std::result::Result<(), String> {
    use crabby_hardware::modbus::{sim, ModbusInOut, Point};
    let dir = TempDir::new("hw-modbus");
    let csv = dir.path().join("modbus.csv");
    let mut dev = sim::Device::new(1, 100);
    let bits = 21.5f32.to_bits();
    dev.input[0] = (bits >> 16) as u16;
    dev.input[1] = bits as u16;
    dev.holding[5] = (-1234i16) as u16;
    let mut children = crabby::process::ChildSet::new();
    let addr = play_modbus_tcp(&mut children, "modbus-sim", move || dev)?;
    let daq = ModbusInOut::tcp("daq", &addr)
        .timeout(Duration::from_millis(500))
        .read_point(Point::input("T(C)", 0).f32())
        .read_point(Point::holding("F(N)", 5).i16().scale(0.01))
        .read_point(Point::holding("SP read", 10).i16().scale(0.1))
        .write_point(Point::holding("SP", 10).i16().scale(0.1));
    let mut test = Test::new("modbus-tcp");
    quiet(&mut test);
    let src = test.add_with(
        Source {
            label: Label::new("sp"),
            value: |t| (t * 10.0).floor(),
            stop_at: Some(1.0),
        },
        Settings::new().freq(50.0),
    );
    let io = test.add_with(
        IOBlock::input_output(daq).cmd_labels(["sp"]),
        Settings::new().name("daq").freq(100.0),
    );
    let rec = test.add(crabby_blocks::Recorder::new(&csv));
    test.link(src, io);
    test.link(io, rec);
    let run = test.run();
    children.shutdown(Duration::ZERO, Duration::from_secs(2));
    let report = run.map_err(|e| format!("run: {e}"))?;
    let text = std::fs::read_to_string(&csv).map_err(|e| format!("{}: {e}", csv.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty CSV")?.split(',').collect();
    let col = |l: &str| header.iter().position(|h| *h == l);
    let (t, f, sp) = (
        col("T(C)").ok_or(format!("no T(C) in {header:?}"))?,
        col("F(N)").ok_or("no F(N)")?,
        col("SP read").ok_or("no SP read")?,
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            l.split(',')
                .map(|c| c.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    ensure!(rows.len() > 50, "{} rows ({report})", rows.len());
    ensure!(
        rows.iter()
            .all(|r| r[t] == 21.5 && (r[f] + 12.34).abs() < 1e-9),
        "wrong values recorded"
    );
    let sps: Vec<f64> = rows.iter().map(|r| r[sp]).collect();
    ensure!(
        sps.windows(2).all(|w| w[1] >= w[0]) && sps.iter().all(|v| v.fract().abs() < 1e-9),
        "set-points read back are not the written steps: {sps:?}"
    );
    ensure!(
        *sps.last().ok_or("no rows")? >= 8.0,
        "the last set-points were not written: {sps:?}"
    );
    Ok(())
}

/// Sends a byte on `ready` in its first loop (every Block is prepared, so every device is
/// open), then ends the test when `go` is readable or closed (at most 10 s).
struct Holder {
    ready: Option<std::os::fd::OwnedFd>,
    go: std::os::fd::OwnedFd,
    since: Option<std::time::Instant>,
}

impl Block for Holder {
    fn step(&mut self, _: &mut Context) -> Result<Flow> {
        if let Some(r) = self.ready.take() {
            let _ = nix::unistd::write(&r, b"!");
        }
        let since = *self.since.get_or_insert_with(std::time::Instant::now);
        use std::os::fd::AsFd;
        let mut fds = [nix::poll::PollFd::new(
            self.go.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let go = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(20u16)).unwrap_or(0) > 0;
        Ok(if go || since.elapsed() > Duration::from_secs(10) {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// Two tests on one serial port, each in its own process tree: while the first runs (a
/// Modbus RTU IOBlock on a pty played by the simulator), the second is refused before
/// anything is forked, with an error naming the first's pid and test; once the first has
/// ended, the port is free and no lock file is left.
fn two_tests_on_one_port_the_second_is_refused() -> std::result::Result<(), String> {
    use crabby_hardware::modbus::{sim, ModbusInOut, Point};
    let (master, slave, path) = raw_pty()?;
    let mut children = crabby::process::ChildSet::new();
    // The simulator first, so that it holds no end of the pipes below: the end of the
    // holder's process tree closes `ready`'s last writer.
    play_modbus_rtu(&mut children, "rtu-sim", master, || sim::Device::new(7, 10))?;
    let device = |name: &str| {
        ModbusInOut::rtu(
            name,
            SerialConfig::new(&path, 115_200).timeout(Duration::from_millis(500)),
        )
        .unit(7)
        .read_point(Point::holding("x", 0))
    };
    let (ready_r, ready_w) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    let (go_r, go_w) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    let first = device("oven");
    let holder = children
        .spawn("holder", move || {
            let mut test = Test::new("holder-test");
            quiet(&mut test);
            let io = test.add_with(
                IOBlock::input(first),
                Settings::new().name("oven").freq(50.0),
            );
            let h = test.add(Holder {
                ready: Some(ready_w),
                go: go_r,
                since: None,
            });
            test.link(io, h);
            match test.run() {
                Ok(_) => 0,
                Err(e) => {
                    eprintln!("holder: {e}");
                    1
                }
            }
        })
        .map_err(|e| e.to_string())?;
    let outcome = (|| {
        ensure!(
            wait_byte(&ready_r, Duration::from_secs(10)),
            "the first test did not start within 10 s"
        );
        let mut test = Test::new("second-test");
        quiet(&mut test);
        let io = test.add_with(
            IOBlock::input(device("oven 2")),
            Settings::new().name("oven2"),
        );
        let dir = TempDir::new("hw-lock");
        let col = test.add(Collector::new(&dir.path().join("data")));
        test.link(io, col);
        let t0 = std::time::Instant::now();
        let e = test
            .run()
            .err()
            .ok_or("the second test ran on a port held by the first")?;
        let text = e.to_string();
        ensure!(
            text.contains("in use by pid")
                && text.contains("test 'holder-test'")
                && text.contains("device 'oven'"),
            "the error does not name the holder: {text}"
        );
        // Refused by `Test::check`, before any fork: a run that started has a report.
        ensure!(
            e.report().is_none(),
            "refused only after the fork (in prepare): {text}"
        );
        ensure!(
            t0.elapsed() < Duration::from_secs(2),
            "refused after {:?}: not before the fork",
            t0.elapsed()
        );
        Ok(())
    })();
    let _ = nix::unistd::write(&go_w, b"!");
    // The holder's test ends: every copy of `ready`'s write end closes (end of file).
    let ended = !wait_byte(&ready_r, Duration::from_secs(10));
    children.shutdown(Duration::ZERO, Duration::from_secs(2));
    drop(slave);
    outcome?;
    ensure!(ended, "the first test did not end when told to");
    ensure!(
        children.exit(holder) == Some(crabby::process::Exit::Code(0)),
        "the first test failed: {:?}",
        children.exit(holder)
    );
    let lock = crabby_hardware::lock::lock_path(&crabby_hardware::lock::serial_key(&path));
    ensure!(!lock.exists(), "lock file left behind: {}", lock.display());
    Ok(())
}

/// A holder killed with SIGKILL leaves no lock: the kernel releases the flock, and the next
/// test's check removes the file.
fn a_killed_holder_leaves_no_lock() -> std::result::Result<(), String> {
    let (_master, slave, path) = raw_pty()?;
    let (ready_r, ready_w) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    let cfg = SerialConfig::new(&path, 9600);
    let held = cfg.clone();
    let mut children = crabby::process::ChildSet::new();
    let i = children
        .spawn("holder", move || {
            let Ok(_link) = held.open("holder") else {
                return 1;
            };
            let _ = nix::unistd::write(&ready_w, b"!");
            loop {
                std::thread::park(); // held until killed
            }
        })
        .map_err(|e| e.to_string())?;
    let outcome = (|| {
        ensure!(
            wait_byte(&ready_r, Duration::from_secs(10)),
            "the holder did not open the port"
        );
        let e = cfg
            .check("second")
            .err()
            .ok_or("a held port passed check")?;
        ensure!(
            e.kind() == ErrorKind::NotAllowed
                && e.description()
                    .contains(&format!("pid {}", children.pid(i))),
            "{e}"
        );
        Ok(())
    })();
    children.kill_all();
    drop(slave);
    outcome?;
    cfg.check("second")
        .map_err(|e| format!("stale lock after a kill: {e}"))?;
    let lock = crabby_hardware::lock::lock_path(&crabby_hardware::lock::serial_key(&path));
    ensure!(!lock.exists(), "lock file left behind: {}", lock.display());
    let link = cfg.open("second").map_err(|e| e.to_string())?;
    drop(link);
    ensure!(!lock.exists(), "lock file left behind: {}", lock.display());
    Ok(())
}
