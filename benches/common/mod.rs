//! What the driver benches share: [`pty`], a raw pseudo-terminal for a simulator on a
//! thread, and [`calls`] / [`per_second`], the loops that measure a rate.
#![allow(dead_code)]

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

/// A raw pty pair: (master, slave kept open, slave path).
pub fn pty() -> (OwnedFd, OwnedFd, String) {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let mut t = nix::sys::termios::tcgetattr(pty.slave.as_fd()).expect("tcgetattr");
    nix::sys::termios::cfmakeraw(&mut t);
    nix::sys::termios::tcsetattr(pty.slave.as_fd(), nix::sys::termios::SetArg::TCSANOW, &t)
        .expect("tcsetattr");
    let path = nix::unistd::ttyname(pty.slave.as_fd())
        .expect("ttyname")
        .to_string_lossy()
        .into_owned();
    (pty.master, pty.slave, path)
}

/// Calls per second of `op` (given the call's number) over about `round`.
pub fn per_second(round: Duration, mut op: impl FnMut(u64)) -> f64 {
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < round {
        op(n);
        n += 1;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Calls per second of `op` over about 1 s, best of 3.
pub fn calls(mut op: impl FnMut(u64)) -> f64 {
    (0..3)
        .map(|_| per_second(Duration::from_secs(1), &mut op))
        .fold(0.0, f64::max)
}
