//! The serial instrument drivers in a real Test: an Alicat flow controller driven by an
//! IOBlock (setpoint in, data frame out) against its simulator, played on a pseudo-terminal
//! by a child process (the Test forks its Blocks, so the simulator cannot be a thread of
//! this process).

mod common;

use common::TempDir;
use crabby::{Block, Context, Flow, Label, Result, Sample, Settings, Test};
use crabby_blocks::IOBlock;
use crabby_hardware::serial::sim::{serve, AlicatMfc as SimMfc};
use crabby_hardware::serial::{AlicatMfc, SerialConfig};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Duration;

/// Sends `setpoint` = 0 until 0.2 s, then 5 SLPM; ends the test at 1.2 s.
struct Setpoint;

impl Block for Setpoint {
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec![Label::new("t(s)"), Label::new("sp")])
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let t = ctx.t();
        let sp = if t < 0.2 { 0.0 } else { 5.0 };
        ctx.send(&Sample::new().with("t(s)", t).with("sp", sp))?;
        Ok(if t >= 1.2 { Flow::Stop } else { Flow::Continue })
    }
}

/// Writes every sample received, `label=value` pairs, one line each, in `finish`.
struct Collector {
    path: PathBuf,
    rows: Vec<Sample>,
}

impl Block for Collector {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        ctx.wait(Duration::from_millis(50));
        for v in ctx.recv_all_per_link() {
            self.rows.extend(v);
        }
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        for v in ctx.drain_until_ended(Duration::from_secs(2)) {
            self.rows.extend(v);
        }
        let mut out = String::new();
        for s in &self.rows {
            let cells: Vec<String> = s.iter().map(|(l, v)| format!("{l}={v}")).collect();
            out.push_str(&cells.join("\t"));
            out.push('\n');
        }
        std::fs::write(&self.path, out).map_err(|e| crabby::Error::io("collector file", e))
    }
}

fn rows(path: &Path) -> std::result::Result<Vec<Vec<(String, f64)>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(|l| {
            l.split('\t')
                .filter_map(|c| c.split_once('='))
                .filter_map(|(a, b)| Some((a.to_owned(), b.parse().ok()?)))
                .collect()
        })
        .collect())
}

fn get(row: &[(String, f64)], label: &str) -> Option<f64> {
    row.iter().find(|(l, _)| l == label).map(|(_, v)| *v)
}

fn alicat_ioblock_follows_a_setpoint_step() -> std::result::Result<(), String> {
    use std::os::fd::AsFd;
    let dir = TempDir::new("drv-alicat");
    let data = dir.path().join("data");
    let pty = nix::pty::openpty(None, None).map_err(|e| e.to_string())?;
    let mut t = nix::sys::termios::tcgetattr(pty.slave.as_fd()).map_err(|e| e.to_string())?;
    nix::sys::termios::cfmakeraw(&mut t);
    nix::sys::termios::tcsetattr(pty.slave.as_fd(), nix::sys::termios::SetArg::TCSANOW, &t)
        .map_err(|e| e.to_string())?;
    let path = nix::unistd::ttyname(pty.slave.as_fd()).map_err(|e| e.to_string())?;
    // The simulator in a child (this case's process has no thread yet), ended by this
    // process once the Test is over (it inherited a slave descriptor, so it would not see
    // the port close).
    let master = pty.master;
    let player = crabby::process::fork_child(move || {
        let dev = Mutex::new(SimMfc::new(10.0, 1));
        let never = AtomicBool::new(false);
        serve(master, &dev, &never, &never, &never);
        0
    })
    .map_err(|e| e.to_string())?;
    let mfc = AlicatMfc::new(
        "mfc",
        SerialConfig::new(path.to_string_lossy(), 19_200).timeout(Duration::from_millis(300)),
        10.0,
    )
    .gas(8);
    let mut test = Test::new("alicat");
    test.log_file(None);
    let sp = test.add_with(Setpoint, Settings::new().freq(50.0));
    let io = test.add_with(
        IOBlock::new(mfc).cmd_labels(["sp"]),
        Settings::new().name("mfc").freq(50.0),
    );
    let col = test.add(Collector {
        path: data.clone(),
        rows: Vec::new(),
    });
    test.link(sp, io);
    test.link(io, col);
    let run = test.run();
    drop(pty.slave);
    let pid = nix::unistd::Pid::from_raw(player);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
    let report = run.map_err(|e| format!("run: {e}"))?;
    let r = rows(&data)?;
    ensure!(r.len() > 20, "too few readings: {} ({report})", r.len());
    // Before the step: no flow; at the end (τ = 50 ms, 1 s after the step): 5 SLPM.
    let first = get(&r[0], "Qm").ok_or("no Qm")?;
    ensure!(first.abs() < 0.1, "flow before the step: {first}");
    let last = r.last().ok_or("no rows")?;
    let (q, s) = (
        get(last, "Qm").ok_or("no Qm")?,
        get(last, "setpoint").ok_or("no setpoint")?,
    );
    ensure!(
        (q - 5.0).abs() < 0.1 && s == 5.0,
        "end: Qm {q}, setpoint {s}"
    );
    // The response is gradual: some reading sits between 10 % and 90 % of the step.
    ensure!(
        r.iter()
            .filter_map(|x| get(x, "Qm"))
            .any(|q| q > 0.5 && q < 4.5),
        "no reading on the first-order rise"
    );
    Ok(())
}

fn main() {
    common::main(&[common::case(
        "alicat_ioblock_follows_a_setpoint_step",
        30,
        alicat_ioblock_follows_a_setpoint_step,
    )]);
}
