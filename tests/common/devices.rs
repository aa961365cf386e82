//! Simulated devices for the driver test binaries: [`raw_pty`], a pseudo-terminal in raw
//! mode whose master a simulator plays, and [`play_modbus_tcp`] / [`play_modbus_rtu`], a
//! Modbus simulator in a child process (a `Test` forks its Blocks, so the simulator cannot
//! be a thread of the test's process).

#![allow(dead_code)]

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

/// Plays the Modbus device `make()` builds (in the child) over TCP, on a free loopback port,
/// in a child of `children` named `name`; returns its address (`127.0.0.1:port`). The
/// child serves until `children` ends it.
pub fn play_modbus_tcp(
    children: &mut crabby::process::ChildSet,
    name: &str,
    make: impl FnOnce() -> crabby_hardware::modbus::sim::Device,
) -> Result<String, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener
        .local_addr()
        .map_err(|e| e.to_string())?
        .to_string();
    children
        .spawn(name, move || {
            let dev = std::sync::Mutex::new(make());
            crabby_hardware::modbus::sim::serve_tcp(
                &listener,
                &dev,
                &std::sync::atomic::AtomicBool::new(false),
            );
            0
        })
        .map_err(|e| e.to_string())?;
    Ok(addr)
}

/// Plays the Modbus device `make()` builds (in the child) as an RTU unit on the pty
/// `master`, in a child of `children` named `name`, until `children` ends it or the port
/// is closed.
pub fn play_modbus_rtu(
    children: &mut crabby::process::ChildSet,
    name: &str,
    master: OwnedFd,
    make: impl FnOnce() -> crabby_hardware::modbus::sim::Device,
) -> Result<(), String> {
    children
        .spawn(name, move || {
            let dev = std::sync::Mutex::new(make());
            crabby_hardware::modbus::sim::serve_rtu(
                master,
                &dev,
                &std::sync::atomic::AtomicBool::new(false),
            );
            0
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}
