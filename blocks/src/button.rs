//! [`Button`]: each press of Enter in the terminal sends an incrementing count.
//!
//! The count (label `button` by default, an integer) goes up by one per line read from the
//! terminal (each Enter), optionally starting with 0 at the start of the test. With
//! [`any_key`](Button::any_key) and a terminal as input, every key counts (the terminal is
//! put in non-canonical mode without echo for the test, Ctrl+C still works, and its
//! settings are restored in `finish`). A Generator
//! can use it in a condition: `"button > 0"` ends a path when the technician presses Enter.
//! The input is the test's standard input by default, or any readable file descriptor
//! ([`Button::from_fd`]: a pipe, a FIFO); it is read without blocking, and its end (EOF) just
//! stops the counting.
//!
//! ```
//! use crabby_blocks::{Button, Generator, Path};
//! let button = Button::new().send_zero(true);
//! let gen = Generator::new([
//!     Path::constant(0.0).until("button > 0"), // wait for the technician
//!     Path::ramp(0.1).until("delay=10"),
//! ]);
//! ```

use crabby::{Block, Context, Error, Flow, GraphView, Label, Result, Sample, Settings};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::os::fd::{AsFd, OwnedFd};

/// Sends a count on each key press (Enter). See the [module docs](self).
#[derive(Debug)]
pub struct Button {
    label: Label,
    send_zero: bool,
    fd: Option<OwnedFd>,
    count: i64,
    eof: bool,
    any_key: bool,
    saved: Option<nix::sys::termios::Termios>,
}

impl Default for Button {
    fn default() -> Self {
        Self::new()
    }
}

impl Button {
    /// A button read from the test's standard input.
    pub fn new() -> Self {
        Button {
            label: Label::new("button"),
            send_zero: false,
            fd: None,
            count: 0,
            eof: false,
            any_key: false,
            saved: None,
        }
    }
    /// Every key counts, not only Enter, when the input is a terminal (default no).
    pub fn any_key(mut self, yes: bool) -> Self {
        self.any_key = yes;
        self
    }

    /// Single-key mode: the terminal without line buffering nor echo (settings saved).
    fn enter_key_mode(&mut self) -> Result<()> {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        let Some(fd) = self.fd.as_ref() else {
            return Ok(());
        };
        if !self.any_key || !nix::unistd::isatty(fd).unwrap_or(false) {
            return Ok(());
        }
        let saved = tcgetattr(fd).map_err(|e| {
            Error::communication(format!("cannot read the terminal's settings: {e}"))
        })?;
        let mut keys = saved.clone();
        keys.local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO);
        tcsetattr(fd, SetArg::TCSANOW, &keys)
            .map_err(|e| Error::communication(format!("cannot set the terminal's mode: {e}")))?;
        self.saved = Some(saved);
        Ok(())
    }

    /// Gives the terminal its settings back.
    fn restore_terminal(&mut self) {
        if let (Some(saved), Some(fd)) = (self.saved.take(), self.fd.as_ref()) {
            let _ = nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &saved);
        }
    }
    /// A button read from `fd` (a pipe, a FIFO, a terminal) instead of standard input.
    pub fn from_fd(fd: OwnedFd) -> Self {
        let mut b = Self::new();
        b.fd = Some(fd);
        b
    }
    /// The label of the count (default `button`).
    pub fn label(mut self, l: impl Into<Label>) -> Self {
        self.label = l.into();
        self
    }
    /// Sends 0 at the start of the test (default no).
    pub fn send_zero(mut self, yes: bool) -> Self {
        self.send_zero = yes;
        self
    }

    /// Reads what is available without blocking; returns the presses (newlines) read.
    fn read_presses(&mut self) -> Result<u64> {
        let mut presses = 0;
        let mut buf = [0u8; 256];
        while !self.eof {
            let Some(fd) = self.fd.as_ref().map(|f| f.as_fd()) else {
                break;
            };
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::ZERO) {
                Ok(0) => break,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    return Err(Error::communication(format!(
                        "cannot poll the button's input: {e}"
                    )))
                }
            }
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => {
                    log::info!("the button's input was closed; no more presses");
                    self.eof = true;
                }
                Ok(n) if self.saved.is_some() => presses += n as u64,
                Ok(n) => presses += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => break,
                Err(e) => {
                    return Err(Error::communication(format!(
                        "cannot read the button's input: {e}"
                    )))
                }
            }
        }
        Ok(presses)
    }
}

impl Block for Button {
    fn default_settings(&self) -> Settings {
        Settings::new().freq(50.0)
    }
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec![Label::new("t(s)"), self.label.clone()])
    }
    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        if graph.n_outputs() == 0 {
            return Err(Error::config("a Button has no output link, so its presses go nowhere; link it to the Block that uses them")
                .with_origin(graph.name()));
        }
        if self.label.is_empty() || self.label.as_str() == "t(s)" {
            return Err(Error::config(format!(
                "label '{}' cannot be the count's label; give another name",
                self.label
            ))
            .with_origin(graph.name()));
        }
        Ok(())
    }
    fn describe(&self) -> String {
        format!(
            "label {}, send_zero {}, input {}",
            self.label,
            self.send_zero,
            if self.fd.is_some() {
                "a file descriptor"
            } else {
                "standard input"
            }
        )
    }
    fn prepare(&mut self, _ctx: &mut Context) -> Result<()> {
        if self.fd.is_none() {
            let fd = std::io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| Error::io("cannot open standard input for the button", e))?;
            self.fd = Some(fd);
            if self.any_key {
                log::info!("press any key to send '{}'", self.label);
            } else {
                log::info!("press Enter to send '{}'", self.label);
            }
        }
        self.enter_key_mode()?;
        // Presses typed before the start do not count.
        let _ = self.read_presses()?;
        Ok(())
    }
    fn begin(&mut self, ctx: &mut Context) -> Result<()> {
        if self.send_zero {
            ctx.send(
                &Sample::new()
                    .with("t(s)", ctx.t())
                    .with(self.label.clone(), 0i64),
            )?;
        }
        Ok(())
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        for _ in 0..self.read_presses()? {
            self.count += 1;
            log::info!("button pressed ({})", self.count);
            ctx.send(
                &Sample::new()
                    .with("t(s)", ctx.t())
                    .with(self.label.clone(), self.count),
            )?;
        }
        Ok(Flow::Continue)
    }
    fn finish(&mut self, _ctx: &mut Context) -> Result<()> {
        self.restore_terminal();
        Ok(())
    }
}

impl Drop for Button {
    fn drop(&mut self) {
        self.restore_terminal();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pseudo-terminal plays the technician's terminal.
    fn pty() -> (OwnedFd, OwnedFd) {
        let p = nix::pty::openpty(None, None).unwrap();
        (p.master, p.slave)
    }

    /// Reads until `want` presses came or 1 s passed (the pty delivers asynchronously).
    fn presses(b: &mut Button, want: u64) -> u64 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        let mut n = 0;
        while n < want && std::time::Instant::now() < deadline {
            n += b.read_presses().unwrap();
            std::thread::yield_now();
        }
        n + b.read_presses().unwrap()
    }

    #[test]
    fn enter_counts_lines_and_any_key_counts_keys() {
        let (master, slave) = pty();
        let mut b = Button::from_fd(slave);
        nix::unistd::write(&master, b"ab\n").unwrap();
        assert_eq!(presses(&mut b, 1), 1, "one Enter");

        let (master, slave) = pty();
        let mut b = Button::from_fd(slave).any_key(true);
        b.enter_key_mode().unwrap();
        assert!(b.saved.is_some(), "a terminal: single-key mode");
        nix::unistd::write(&master, b"xy").unwrap();
        assert_eq!(presses(&mut b, 2), 2, "two keys, no Enter");
        b.restore_terminal();
        let t = nix::sys::termios::tcgetattr(b.fd.as_ref().unwrap()).unwrap();
        assert!(t
            .local_flags
            .contains(nix::sys::termios::LocalFlags::ICANON));
    }
}
