//! A simulator served on a thread of this process, for unit tests and benchmarks that do
//! not fork: [`SimThread`].
//!
//! Every simulator of this crate is a state (a register map, a motor, a board, a line
//! device) and a server loop that plays it on a pty master or a listener until a stop flag
//! is set. [`SimThread`] holds the state in an `Arc<Mutex<_>>` shared with the loop's
//! thread, so a test can change it or inject faults while it runs ([`SimThread::with`]),
//! and stops and joins the thread on [`SimThread::stop`] or on drop. Each simulator module
//! gives it its constructors under its own name: [`crate::modbus::sim::SimThread`]
//! (`tcp`, `rtu`), [`crate::serial::sim::SimThread`] (`spawn`, with `mute` and `vanish`),
//! [`crate::serial::jvl_mac::sim::SimThread`] and [`crate::serial::ucontroller::sim::SimThread`]
//! (`new`). For a test that runs a `Test` (which forks), call the module's `serve` function
//! in a child process instead (`crabby::process::ChildSet`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A simulated device served on a thread of this process; stopped and joined on drop.
///
/// `X` is what a kind of simulator keeps besides its state (the serial line devices' mute
/// flag); `()` for the others.
#[derive(Debug)]
pub struct SimThread<T, X = ()> {
    /// The device (change its state, inject faults, read what was written, while it runs).
    pub device: Arc<Mutex<T>>,
    /// The TCP address it listens on (simulators served on a listener; `None` on a pty).
    pub addr: Option<SocketAddr>,
    pub(crate) extra: X,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl<T: Send + 'static, X> SimThread<T, X> {
    /// Runs `serve(device, stop)` on a new thread, `addr` being where it listens (if it
    /// does); `serve` must return soon after `stop` is set.
    pub(crate) fn start(
        device: T,
        addr: Option<SocketAddr>,
        extra: X,
        serve: impl FnOnce(&Mutex<T>, &AtomicBool) + Send + 'static,
    ) -> Self {
        let device = Arc::new(Mutex::new(device));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, s) = (device.clone(), stop.clone());
        let handle = std::thread::spawn(move || serve(&d, &s));
        SimThread {
            device,
            addr,
            extra,
            stop,
            handle: Some(handle),
        }
    }
}

impl<T, X> SimThread<T, X> {
    /// Runs `f` on the device.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.device.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Stops the server and waits for its thread: its pty master is closed (the port
    /// vanishes for the driver), or its listener no longer accepts connections.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl<T, X> Drop for SimThread<T, X> {
    fn drop(&mut self) {
        self.stop();
    }
}
