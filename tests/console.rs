//! The Console Block in real graphs, its stdout a pipe nobody reads, a closed pipe, a
//! terminal (a pseudo-terminal) and a paused terminal: the test ends on time with all its
//! data, and the console's process ends cleanly (never killed at the grace).

#[macro_use]
mod common;

use common::{case, TempDir};
use crabby::{Block, Context, Flow, Label, Outcome, Result as CResult, Sample, Settings, Test};
use crabby_blocks::{Console, Recorder};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

type R = std::result::Result<(), String>;

const N: u64 = 1500;

/// Sends `i` and `t(s)` at 1 kHz, `N` samples, then ends the test.
struct Source {
    i: u64,
}
impl Block for Source {
    fn default_settings(&self) -> Settings {
        Settings::new().freq(1000.0)
    }
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec![Label::new("t(s)"), Label::new("i")])
    }
    fn step(&mut self, ctx: &mut Context) -> CResult<Flow> {
        let s = Sample::new().with("t(s)", ctx.t()).with("i", self.i as i64);
        ctx.send(&s)?;
        self.i += 1;
        Ok(if self.i == N {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// Makes `fd` this process's stdout for the life of the guard.
struct StdoutTo {
    saved: OwnedFd,
}
impl StdoutTo {
    fn new(fd: impl AsFd) -> StdoutTo {
        let saved = nix::unistd::dup(std::io::stdout().as_fd()).expect("dup stdout");
        nix::unistd::dup2_stdout(fd).expect("dup2 stdout");
        StdoutTo { saved }
    }
}
impl Drop for StdoutTo {
    fn drop(&mut self) {
        let _ = nix::unistd::dup2_stdout(&self.saved);
    }
}

/// Fills `fd` until it takes no more (through a non-blocking description of its own, so
/// `fd` itself stays blocking, as a program's stdout is).
fn fill(fd: impl AsFd) -> usize {
    use nix::fcntl::OFlag;
    use std::os::fd::AsRawFd;
    let own = nix::fcntl::open(
        format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()).as_str(),
        OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .expect("reopen");
    let chunk = [b'#'; 4096];
    let mut total = 0;
    loop {
        match nix::unistd::write(&own, &chunk) {
            Ok(n) => total += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return total,
        }
    }
}

/// The graph: Source → Recorder (lossless) and Source → Console (drop-oldest); runs it and
/// checks that every sample was recorded and that the console ended by itself.
fn run_graph(tmp: &TempDir, console: Console, rate: f64) -> std::result::Result<String, String> {
    let csv = tmp.path().join("data.csv");
    let log = tmp.path().join("test.log");
    let mut test = Test::new("console");
    test.log_file(Some(log.clone()));
    let src = test.add_with(Source { i: 0 }, Settings::new().name("source"));
    let rec = test.add_with(Recorder::new(&csv), Settings::new().name("recorder"));
    let con = test.add_with(console, Settings::new().name("console").freq(rate));
    test.link(src, rec);
    test.link_with(src, con, Console::link());
    let report = test.run().map_err(|e| format!("run failed: {e}"))?;
    let c = report.block("console").ok_or("no console in the report")?;
    ensure!(
        c.outcome == Outcome::Stopped && c.finish_ok,
        "the console did not end by itself: {:?}\n{report}",
        c.outcome
    );
    ensure!(
        report.block("source").map(|b| b.loops) == Some(N),
        "{report}"
    );
    ensure!(report.samples_lost() == 0, "samples lost:\n{report}");
    let rows = std::fs::read_to_string(&csv)
        .map_err(|e| e.to_string())?
        .lines()
        .count();
    ensure!(
        rows == N as usize + 1,
        "{rows} lines in the CSV for {N} samples"
    );
    std::fs::read_to_string(&log).map_err(|e| e.to_string())
}

/// stdout is a pipe that is full from the start and never read: every write of the console
/// would wait forever if it were a plain blocking `write` (the old Progress Block's). The
/// test ends with all its data, the console in time, and it says what it skipped.
fn pipe_never_read() -> R {
    let tmp = TempDir::new("console-pipe");
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    let filled = fill(&w);
    ensure!(filled >= 4096, "the pipe took only {filled} bytes");
    let log = {
        let _out = StdoutTo::new(&w);
        run_graph(
            &tmp,
            Console::new().values(["i"]).every(Duration::ZERO),
            50.0,
        )?
    };
    ensure!(
        log.contains("status lines not shown: stdout did not take them"),
        "the console did not note its skipped lines:\n{log}"
    );
    // Nothing of the console got in: the pipe is as full as it was.
    let mut buf = vec![0u8; filled + 4096];
    let mut got = 0;
    nix::fcntl::fcntl(
        &r,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(|e| e.to_string())?;
    while let Ok(n) = nix::unistd::read(&r, &mut buf[got..]) {
        if n == 0 {
            break;
        }
        got += n;
    }
    ensure!(got == filled, "{got} bytes in the pipe, {filled} put there");
    Ok(())
}

/// stdout is a pipe whose reader is gone (`prog | head -1` after head left): the console
/// is silenced, never killed (SIGPIPE is ignored, EPIPE noted).
fn closed_stdout() -> R {
    let tmp = TempDir::new("console-closed");
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    drop(r);
    let log = {
        let _out = StdoutTo::new(&w);
        run_graph(&tmp, Console::new().values(["i"]), 20.0)?
    };
    ensure!(
        log.contains("stdout was closed"),
        "the console did not note the closed stdout:\n{log}"
    );
    Ok(())
}

/// stdout is a terminal 60 columns wide: the status is redrawn in place (carriage return,
/// erase to the end of the line, no newline), every frame fits the width, it shows the
/// values and the source's rate, and the final line ends with a newline.
fn terminal_redraws_in_place() -> R {
    let tmp = TempDir::new("console-tty");
    let ws = nix::pty::Winsize {
        ws_row: 24,
        ws_col: 60,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&ws), None).map_err(|e| e.to_string())?;
    {
        let _out = StdoutTo::new(&pty.slave);
        run_graph(&tmp, Console::new().values(["i"]), 10.0)?;
    }
    drop(pty.slave);
    let mut text = Vec::new();
    let mut buf = [0u8; 65536];
    // The slave is closed: the master reads what is left, then EIO.
    while let Ok(n) = nix::unistd::read(&pty.master, &mut buf) {
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    ensure!(text.contains("\x1b[K\r"), "no in-place redraw: {text:?}");
    let (live, end) = text
        .rsplit_once("\rend: ")
        .ok_or_else(|| format!("no final line: {text:?}"))?;
    ensure!(end.ends_with("\x1b[K\r\n"), "final line: {end:?}");
    ensure!(!live.contains('\n'), "a newline while live: {live:?}");
    let frames: Vec<&str> = live
        .split('\r')
        .map(|f| f.trim_end_matches("\x1b[K"))
        .filter(|f| !f.is_empty())
        .collect();
    ensure!(frames.len() >= 3, "{} frames: {text:?}", frames.len());
    for f in &frames {
        ensure!(
            f.chars().count() < 60,
            "a frame wider than the terminal: {f:?}"
        );
        ensure!(f.starts_with("t "), "frame {f:?}");
    }
    ensure!(
        frames
            .iter()
            .any(|f| f.contains("| i ") && f.contains("source ") && f.contains("/1000 Hz")),
        "no frame shows the value and the rate: {frames:?}"
    );
    Ok(())
}

/// stdout is a terminal paused with Ctrl+S (its output queue full, nobody reading): the
/// test ends on time with all its data, the console skips.
fn paused_terminal() -> R {
    let tmp = TempDir::new("console-paused");
    let pty = nix::pty::openpty(None, None).map_err(|e| e.to_string())?;
    let filled = fill(&pty.slave);
    ensure!(filled > 0, "the terminal took nothing");
    let log = {
        let _out = StdoutTo::new(&pty.slave);
        run_graph(&tmp, Console::new().values(["i"]), 50.0)?
    };
    ensure!(
        log.contains("status lines not shown"),
        "the console did not note its skipped lines:\n{log}"
    );
    Ok(())
}

/// The graph check refuses a lossless link into a console, saying how to fix it.
fn lossless_input_refused() -> R {
    let mut test = Test::new("console-check");
    let src = test.add_with(Source { i: 0 }, Settings::new().name("source"));
    let con = test.add_with(Console::new(), Settings::new().name("console"));
    test.link(src, con);
    let err = test.run().err().ok_or("a lossless input was accepted")?;
    let msg = err.to_string();
    ensure!(
        msg.contains("console") && msg.contains("lossless") && msg.contains("Overflow::DropOldest"),
        "{msg}"
    );
    let mut test = Test::new("console-check");
    let src = test.add_with(Source { i: 0 }, Settings::new().name("source"));
    let con = test.add_with(Console::new().values(["F(N)"]), Settings::new().name("c"));
    test.link_with(src, con, Console::link());
    let msg = test
        .run()
        .err()
        .ok_or("a missing label was accepted")?
        .to_string();
    ensure!(
        msg.contains("F(N)") && msg.contains("no upstream Block sends it"),
        "{msg}"
    );
    let mut test = Test::new("console-check");
    test.add_with(Console::new(), Settings::new().name("c").free_run());
    let msg = test
        .run()
        .err()
        .ok_or("a free-running console was accepted")?
        .to_string();
    ensure!(msg.contains("must not free-run"), "{msg}");
    Ok(())
}

fn main() {
    common::main(&[
        case("pipe_never_read", 30, pipe_never_read),
        case("closed_stdout", 30, closed_stdout),
        case("terminal_redraws_in_place", 30, terminal_redraws_in_place),
        case("paused_terminal", 30, paused_terminal),
        case("lossless_input_refused", 30, lossless_input_refused),
    ]);
}
