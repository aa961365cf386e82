//! Simulated serial instruments, for tests and benchmarks: each plays its maker's documented
//! protocol byte for byte on the master side of a pseudo-terminal, with physics where the
//! device measures or moves.
//!
//! - [`LineDevice`]: a device that answers request lines (ASCII protocols), implemented by
//!   [`Nanovoltmeter34420A`], [`AlicatMfc`] and [`Smc100`].
//! - [`serve`]: the loop that plays a [`LineDevice`] on a pty master until stopped, until the
//!   driver's side closes, or until the device is made to vanish.
//! - [`SimThread`]: that loop on a thread of this process (unit tests, benchmarks), with
//!   two faults every device shares: silence ([`SimThread::mute`]: requests go unanswered)
//!   and a vanished device ([`SimThread::vanish`]: the master is closed, as when the cable
//!   is pulled). For a test that runs a `Test` (which forks), call [`serve`] in a child
//!   process instead (`crabby::process::fork_child`).
//!
//! The physics is integrated lazily, from the time elapsed since the previous request, so a
//! device needs no thread of its own.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub use super::alicat::sim::AlicatMfc;
pub use super::keysight::sim::Nanovoltmeter34420A;
pub use super::mdrive::sim::MDriveSim;
pub use super::smc100::sim::Smc100;

/// A device that answers request lines.
pub trait LineDevice: Send + 'static {
    /// The bytes that end a request.
    fn request_ending(&self) -> &'static [u8];
    /// The answer to one request (without its ending), bytes included; `None`: no answer.
    fn handle(&mut self, request: &str) -> Option<Vec<u8>>;
    /// Bytes the device sends unasked, asked for every millisecond or so while it returns
    /// some (every 20 ms otherwise); `None` (the default): nothing. For faults such as a
    /// device streaming empty lines.
    fn unasked(&mut self) -> Option<Vec<u8>> {
        None
    }
}

/// Plays `device` on the pty master `fd` until `stop` is set, the driver's side closes, or
/// `vanish` is set (then `fd` is closed: the port disappears for the driver). While `mute`
/// is set, requests are read and dropped unanswered (what the device sends unasked,
/// [`LineDevice::unasked`], is still sent, when the port can take it without waiting).
pub fn serve<D: LineDevice>(
    fd: OwnedFd,
    device: &Mutex<D>,
    stop: &AtomicBool,
    mute: &AtomicBool,
    vanish: &AtomicBool,
) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut pending: Vec<u8> = Vec::with_capacity(256);
    let mut tmp = [0u8; 512];
    let lock = || device.lock().unwrap_or_else(|e| e.into_inner());
    let mut streaming = false;
    loop {
        if stop.load(Ordering::Relaxed) || vanish.load(Ordering::Relaxed) {
            return; // fd dropped
        }
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let wait = PollTimeout::from(if streaming { 1u16 } else { 20u16 });
        if poll(&mut fds, wait).unwrap_or(0) > 0 {
            match nix::unistd::read(&fd, &mut tmp) {
                Ok(0) | Err(nix::errno::Errno::EIO) => return,
                Ok(n) => pending.extend_from_slice(&tmp[..n]),
                Err(_) => {}
            }
            let ending = lock().request_ending();
            while let Some(i) = pending.windows(ending.len()).position(|w| w == ending) {
                let line: Vec<u8> = pending.drain(..i + ending.len()).take(i).collect();
                let request = String::from_utf8_lossy(&line).into_owned();
                let answer = lock().handle(&request);
                if mute.load(Ordering::Relaxed) {
                    continue;
                }
                if let Some(a) = answer {
                    let _ = nix::unistd::write(&fd, &a);
                }
            }
        }
        let unasked = lock().unasked();
        streaming = unasked.is_some();
        if let Some(b) = unasked {
            // Only when the port takes it at once: a driver that stopped reading must not
            // block this loop (it would never see `stop`).
            let mut out = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
            if poll(&mut out, PollTimeout::from(0u16)).unwrap_or(0) > 0 {
                let _ = nix::unistd::write(&fd, &b);
            }
        }
    }
}

/// A simulated line device served on a thread of this process; stopped and joined on drop
/// (see [`crate::sim_thread`]): [`SimThread::spawn`], then
/// [`with`](crate::sim_thread::SimThread::with) to change its state while it runs, the two
/// shared faults ([`SimThread::mute`], [`SimThread::vanish`]), and
/// [`stop`](crate::sim_thread::SimThread::stop) (the master is closed too).
pub type SimThread<D> = crate::sim_thread::SimThread<D, Arc<AtomicBool>>;

impl<D: LineDevice> crate::sim_thread::SimThread<D, Arc<AtomicBool>> {
    /// Serves `device` on the pty master `master`.
    pub fn spawn(master: OwnedFd, device: D) -> Self {
        let mute = Arc::new(AtomicBool::new(false));
        let m = mute.clone();
        // Vanishing is stopping: `serve` returns and drops the master either way.
        Self::start(device, None, mute, move |d, s| serve(master, d, s, &m, s))
    }

    /// The device stops answering (or answers again).
    pub fn mute(&self, yes: bool) {
        self.extra.store(yes, Ordering::Relaxed);
    }

    /// The device vanishes: the master side is closed and the thread ends.
    pub fn vanish(&mut self) {
        self.stop();
    }
}

/// A small deterministic generator (xorshift64*) and Gaussian noise for the simulators.
#[derive(Debug, Clone)]
pub struct Noise(u64);

impl Noise {
    /// A generator seeded with `seed` (0 is replaced by a fixed odd constant).
    pub fn new(seed: u64) -> Self {
        Noise(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    pub fn gauss(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}
