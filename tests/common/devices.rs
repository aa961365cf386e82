//! Simulated devices for the driver test binaries: [`raw_pty`], a pseudo-terminal in raw
//! mode whose master a simulator plays (in a child process: a `Test` forks its Blocks).

use std::os::fd::{AsFd, OwnedFd};

/// A raw pseudo-terminal pair: (master, slave, slave path). Keep the slave open for as long
/// as the port must exist without the driver, or drop it: the driver opens it by its path,
/// and Linux keeps the pty while the master lives.
pub fn raw_pty() -> Result<(OwnedFd, OwnedFd, String), String> {
    let pty = nix::pty::openpty(None, None).map_err(|e| e.to_string())?;
    let mut t = nix::sys::termios::tcgetattr(pty.slave.as_fd()).map_err(|e| e.to_string())?;
    nix::sys::termios::cfmakeraw(&mut t);
    nix::sys::termios::tcsetattr(pty.slave.as_fd(), nix::sys::termios::SetArg::TCSANOW, &t)
        .map_err(|e| e.to_string())?;
    let path = nix::unistd::ttyname(pty.slave.as_fd()).map_err(|e| e.to_string())?;
    Ok((pty.master, pty.slave, path.to_string_lossy().into_owned()))
}
