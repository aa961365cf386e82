//! Devices over a serial port: a generic line-protocol [`LineInOut`], a SCPI instrument
//! [`ScpiInOut`], and instrument drivers, each citing its maker's manual in its module docs:
//! - [`Keysight34420A`] ([`keysight`]): the Keysight/Agilent 34420A nanovolt meter, an
//!   `Input` built on [`ScpiInOut`];
//! - [`AlicatMfc`] ([`alicat`]): Alicat mass flow controllers, an `Input` + `Output` (data
//!   frame in, setpoint out);
//! - [`PololuTic`] ([`tic`]), [`NewportSmc100`] ([`smc100`]) and [`MDrive`] ([`mdrive`]):
//!   stepper controllers, `Actuator`s in mm and mm/s;
//! - [`JvlMac`] ([`jvl_mac`]): JVL MAC integrated servo motors, an `Actuator` (MacTalk
//!   registers);
//! - [`UController`] ([`ucontroller`]): a microcontroller board speaking Crappy's UController
//!   protocol (`Input`, `Output`, `Stream`), with its MicroPython board script in
//!   `hardware/boards/`.
//!
//! Each driver is a protocol client with plain methods (usable without crabby's Blocks)
//! and a short trait implementation. Their simulators, which play the documented protocols
//! byte for byte on a pseudo-terminal, are public in [`sim`].
//!
//! They share [`SerialConfig`] (port, baud rate, timeout, framing), checked before the test
//! is forked ([`SerialConfig::check`]: the port exists, the baud rate is a standard one),
//! and [`SerialLink`], the open port with the reads every protocol needs (a line, a fixed
//! number of bytes, each under a deadline). Every OS error is mapped to a
//! [`crabby::Error`] in one place ([`SerialLink`]'s methods): no answer in time is
//! [`ErrorKind::Timeout`], a port that disappears (cable pulled) is
//! [`ErrorKind::Communication`], with the port named and what to check.
//!
//! The drivers are tested without hardware against pseudo-terminal pairs: the test (or a
//! simulator of [`sim`]) plays the device on the master side, including wrong answers,
//! every fault the protocol expresses, silence and a device that vanishes.

pub mod alicat;
pub mod jvl_mac;
pub mod keysight;
mod line;
pub mod mdrive;
pub mod scpi;
pub mod sim;
pub mod smc100;
pub mod tic;
pub mod ucontroller;

pub use alicat::{AlicatFrame, AlicatMfc, GASES as ALICAT_GASES};
pub use jvl_mac::JvlMac;
pub use keysight::{Function34420A, Keysight34420A};
pub use line::{LineInOut, Parse};
pub use mdrive::MDrive;
pub use scpi::ScpiInOut;
pub use smc100::{NewportSmc100, Smc100State};
pub use tic::{PololuTic, TicError};
pub use ucontroller::UController;

use crabby::hardware::{device_error, DeviceState, Status};
use crabby::{Error, ErrorKind, Result};
pub use serialport::{DataBits, Parity, StopBits};
use serialport::{SerialPort, TTYPort};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// The baud rates a serial port accepts here (the standard POSIX/Linux ones).
pub const STANDARD_BAUD_RATES: &[u32] = &[
    50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400, 57600,
    115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000, 1500000, 2000000, 2500000,
    3000000, 3500000, 4000000,
];

/// The end of a line in a text protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnding {
    /// `\n`
    Lf,
    /// `\r\n`
    CrLf,
    /// `\r`
    Cr,
}

impl LineEnding {
    /// The bytes.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            LineEnding::Lf => b"\n",
            LineEnding::CrLf => b"\r\n",
            LineEnding::Cr => b"\r",
        }
    }
}

/// How to open a serial port. Built and checked in `main`; [`open`](SerialConfig::open)
/// does the I/O, in the Block's process.
#[derive(Debug, Clone, PartialEq)]
pub struct SerialConfig {
    /// The device path, e.g. `/dev/ttyUSB0` or `/dev/serial/by-id/...`.
    pub port: String,
    /// Baud rate (one of [`STANDARD_BAUD_RATES`]).
    pub baud_rate: u32,
    /// How long to wait for an answer (default 1 s).
    pub timeout: Duration,
    /// Data bits (default 8).
    pub data_bits: DataBits,
    /// Parity (default none).
    pub parity: Parity,
    /// Stop bits (default 1).
    pub stop_bits: StopBits,
}

impl SerialConfig {
    /// A port at a baud rate, 8N1, 1 s timeout.
    pub fn new(port: impl Into<String>, baud_rate: u32) -> Self {
        SerialConfig {
            port: port.into(),
            baud_rate,
            timeout: Duration::from_secs(1),
            data_bits: DataBits::Eight,
            parity: Parity::None,
            stop_bits: StopBits::One,
        }
    }

    /// Sets the answer timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Sets the framing.
    pub fn framing(mut self, data_bits: DataBits, parity: Parity, stop_bits: StopBits) -> Self {
        self.data_bits = data_bits;
        self.parity = parity;
        self.stop_bits = stop_bits;
        self
    }

    /// Checks the configuration without opening the port: the port exists, the baud rate is
    /// standard, the timeout is sensible. `device` names the driver in the error.
    pub fn check(&self, device: &str) -> Result<()> {
        if self.port.trim().is_empty() {
            return Err(Error::config(
                "parameter 'port' is empty; give the serial device path, e.g. /dev/ttyUSB0",
            )
            .with_origin(device));
        }
        if !std::path::Path::new(&self.port).exists() {
            return Err(Error::config(format!(
                "serial port '{}' does not exist; check the cable and the path (ls /dev/ttyUSB* /dev/ttyACM* /dev/serial/by-id/)",
                self.port
            ))
            .with_origin(device));
        }
        if !STANDARD_BAUD_RATES.contains(&self.baud_rate) {
            return Err(Error::config(format!(
                "baud rate {} is not a standard rate; use the device's setting, one of {:?}",
                self.baud_rate, STANDARD_BAUD_RATES
            ))
            .with_origin(device));
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(60) {
            return Err(Error::config(format!(
                "serial timeout {:?} must be above 0 and at most 60 s",
                self.timeout
            ))
            .with_origin(device));
        }
        // Held by another running test: say so now, before anything is forked.
        crate::lock::DeviceLock::probe(&crate::lock::serial_key(&self.port), device)
    }

    /// Opens the port exclusively: a second opener (another test, or another Block of this
    /// one) is refused with an error naming the holder ([`crate::lock`]), and the port is
    /// opened with `TIOCEXCL` so that programs which ignore crabby's lock files are refused
    /// by the kernel too.
    pub fn open(&self, device: &str) -> Result<SerialLink> {
        let lock = crate::lock::DeviceLock::acquire(&crate::lock::serial_key(&self.port), device)?;
        let port = serialport::new(&self.port, self.baud_rate)
            .timeout(self.timeout)
            .data_bits(self.data_bits)
            .parity(self.parity)
            .stop_bits(self.stop_bits)
            .flow_control(serialport::FlowControl::None)
            .open_native()
            .map_err(|e| {
                let hint = match e.kind() {
                    serialport::ErrorKind::NoDevice => "the device is absent or busy; check the cable",
                    serialport::ErrorKind::Io(std::io::ErrorKind::PermissionDenied) => {
                        "permission denied; add your user to the 'dialout' group (then log in again)"
                    }
                    serialport::ErrorKind::Io(std::io::ErrorKind::NotFound) => {
                        "no such device; check the cable and the path"
                    }
                    _ => "check the path and that no other program uses the port",
                };
                device_error(
                    ErrorKind::Communication,
                    device,
                    format!("cannot open serial port '{}': {} ({hint})", self.port, e.description),
                )
            })?;
        Ok(SerialLink {
            port,
            device: device.to_owned(),
            path: self.port.clone(),
            timeout: self.timeout,
            pending: Vec::with_capacity(256),
            _lock: lock,
        })
    }
}

/// An open serial port with deadline-bound reads. Every error names the device and the port.
#[derive(Debug)]
pub struct SerialLink {
    port: TTYPort,
    device: String,
    path: String,
    timeout: Duration,
    pending: Vec<u8>,
    // Dropped after the port (fields drop in order): the port is closed before it is freed.
    _lock: crate::lock::DeviceLock,
}

/// Longest line accepted before giving up (the line ending is probably wrong).
const MAX_LINE: usize = 4096;

impl SerialLink {
    /// The port's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The default answer timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends bytes, waiting at most the timeout for the port to take them.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        // A read leaves the port's timeout at what remained of its deadline.
        self.port
            .set_timeout(self.timeout)
            .map_err(|e| self.map_io(std::io::Error::other(e.description), "sending"))?;
        self.port
            .write_all(bytes)
            .map_err(|e| self.map_io(e, "sending"))?;
        Ok(())
    }

    /// Sends `text` followed by `ending`.
    pub fn write_line(&mut self, text: &str, ending: LineEnding) -> Result<()> {
        let mut b = Vec::with_capacity(text.len() + 2);
        b.extend_from_slice(text.as_bytes());
        b.extend_from_slice(ending.as_bytes());
        self.write_all(&b)
    }

    /// Drops every byte received so far (stale answers), without waiting.
    pub fn discard_input(&mut self) -> Result<()> {
        self.pending.clear();
        self.port
            .clear(serialport::ClearBuffer::Input)
            .map_err(|e| self.map_io(std::io::Error::other(e.description), "clearing the input"))
    }

    /// Reads up to and excluding `ending`, waiting at most the timeout.
    pub fn read_line(&mut self, ending: LineEnding) -> Result<String> {
        let deadline = Instant::now() + self.timeout;
        let term = ending.as_bytes();
        loop {
            if let Some(i) = find(&self.pending, term) {
                let line: Vec<u8> = self.pending.drain(..i + term.len()).take(i).collect();
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.pending.len() > MAX_LINE {
                let head = String::from_utf8_lossy(&self.pending[..40]).into_owned();
                self.pending.clear();
                return Err(self.err(
                    ErrorKind::Communication,
                    format!("received {MAX_LINE} bytes without a line ending ({ending:?}); check the line ending and the baud rate (received {head:?}…)"),
                ));
            }
            self.fill(deadline, "waiting for a line")?;
        }
    }

    /// Returns the last complete line already received, reading everything pending without
    /// waiting; if none is there, waits for the next line. For devices that send lines
    /// continuously.
    pub fn read_latest_line(&mut self, ending: LineEnding) -> Result<String> {
        let avail = self.port.bytes_to_read().unwrap_or(0) as usize;
        if avail > 0 {
            let mut tmp = vec![0u8; avail];
            let n = self
                .port
                .read(&mut tmp)
                .map_err(|e| self.map_io(e, "reading"))?;
            self.pending.extend_from_slice(&tmp[..n]);
        }
        let term = ending.as_bytes();
        let mut last = None;
        while let Some(i) = find(&self.pending, term) {
            let line: Vec<u8> = self.pending.drain(..i + term.len()).take(i).collect();
            last = Some(line);
        }
        match last {
            Some(l) => Ok(String::from_utf8_lossy(&l).into_owned()),
            None => self.read_line(ending),
        }
    }

    /// Reads exactly `n` bytes, waiting at most the timeout.
    pub fn read_exact(&mut self, n: usize) -> Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        while self.pending.len() < n {
            let what = format!("waiting for {n} bytes (got {})", self.pending.len());
            self.fill(deadline, &what)?;
        }
        Ok(self.pending.drain(..n).collect())
    }

    /// Returns every byte received so far, waiting at most `wait` for the first one when
    /// none is there yet (an empty vector if none came: for devices that stream without
    /// being asked, where silence is judged by the caller).
    pub fn read_available(&mut self, wait: Duration) -> Result<Vec<u8>> {
        if self.pending.is_empty() {
            let deadline = Instant::now() + wait.max(Duration::from_millis(1));
            match self.fill(deadline, "waiting for data") {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Timeout => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        let avail = self.port.bytes_to_read().unwrap_or(0) as usize;
        if avail > 0 {
            let mut tmp = vec![0u8; avail];
            let n = self
                .port
                .read(&mut tmp)
                .map_err(|e| self.map_io(e, "reading"))?;
            self.pending.extend_from_slice(&tmp[..n]);
        }
        Ok(std::mem::take(&mut self.pending))
    }

    /// Reads what arrives before `deadline` into `pending`.
    fn fill(&mut self, deadline: Instant, what: &str) -> Result<()> {
        let now = Instant::now();
        if now >= deadline {
            return Err(self.timeout_error(what));
        }
        self.port
            .set_timeout(deadline - now)
            .map_err(|e| self.map_io(std::io::Error::other(e.description), what))?;
        let mut tmp = [0u8; 256];
        match self.port.read(&mut tmp) {
            Ok(0) => Err(self.vanished("end of file")),
            Ok(k) => {
                self.pending.extend_from_slice(&tmp[..k]);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(self.timeout_error(what)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(self.map_io(e, what)),
        }
    }

    /// An error of `kind` from this device.
    pub fn err(&self, kind: ErrorKind, description: impl Into<String>) -> Error {
        device_error(
            kind,
            &self.device,
            format!("{} (port {})", description.into(), self.path),
        )
    }

    fn timeout_error(&self, what: &str) -> Error {
        self.err(
            ErrorKind::Timeout,
            format!(
                "no answer within {:?} while {what}; check that the device is powered, its baud rate and the cable",
                self.timeout
            ),
        )
    }

    fn vanished(&self, why: &str) -> Error {
        self.err(
            ErrorKind::Communication,
            format!(
                "the serial port disappeared ({why}); the device was unplugged or switched off"
            ),
        )
    }

    /// Maps an OS error (the one place where it is done).
    fn map_io(&self, e: std::io::Error, what: &str) -> Error {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::TimedOut => self.timeout_error(what),
            K::BrokenPipe | K::UnexpectedEof | K::NotConnected | K::ConnectionReset => {
                self.vanished(&e.to_string())
            }
            _ if e.raw_os_error() == Some(5)
                || e.to_string().contains("I/O error")
                || e.to_string().contains("Input/output") =>
            {
                // EIO: the usual error of a USB adapter pulled out or a pty whose master closed.
                self.vanished(&e.to_string())
            }
            _ => self.err(ErrorKind::Communication, format!("{what}: {e}")),
        }
    }
}

/// Records the error of `r`, if it is the device's (communication, timeout, hardware), as
/// the driver's fault status; a refused call (a bad argument, a command the device's state
/// does not allow) leaves the status as it is. Returns `r`.
pub(crate) fn record_fault<T>(status: &mut Status, r: Result<T>) -> Result<T> {
    if let Err(e) = &r {
        if matches!(
            e.kind(),
            ErrorKind::Communication | ErrorKind::Timeout | ErrorKind::Hardware
        ) {
            *status = Status::fault(e.to_string());
        }
    }
    r
}

/// The status a driver's `close` leaves: off, unless a fault is kept for the report.
pub(crate) fn closed_status(status: &mut Status) {
    if status.state != DeviceState::Fault {
        *status = Status::off();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Fills `{}` placeholders in order (or `{0}`, `{1}`… by index) with `values`.
pub(crate) fn fill_template(template: &str, values: &[f64]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut next = 0;
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let inner = &after[..close];
                let idx = if inner.is_empty() {
                    next += 1;
                    Some(next - 1)
                } else {
                    inner.parse::<usize>().ok()
                };
                match idx.and_then(|i| values.get(i)) {
                    Some(v) => out.push_str(&v.to_string()),
                    None => out.push_str(&rest[open..open + close + 2]),
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// How many values a template takes (`{}` counted in order, `{n}` as index n).
pub(crate) fn template_arity(template: &str) -> usize {
    let mut next = 0;
    let mut max = 0;
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let inner = &after[..close];
        let idx = if inner.is_empty() {
            next += 1;
            next
        } else {
            inner.parse::<usize>().map(|i| i + 1).unwrap_or(0)
        };
        max = max.max(idx);
        rest = &after[close + 1..];
    }
    max
}

#[cfg(test)]
pub(crate) mod testing {
    //! A pseudo-terminal pair: the driver opens the slave path, the test plays the device
    //! on the master.
    use nix::pty::{openpty, OpenptyResult};
    use std::os::fd::{AsFd, OwnedFd};
    use std::time::{Duration, Instant};

    /// The master side of a pty pair and the slave path.
    pub struct FakePort {
        pub master: Option<OwnedFd>,
        _slave: OwnedFd,
        pub path: String,
        buf: Vec<u8>,
    }

    impl FakePort {
        pub fn new() -> Self {
            let OpenptyResult { master, slave } = openpty(None, None).expect("openpty");
            // Raw mode on the slave until the driver opens it (no echo, no CR/LF mapping).
            let mut t = nix::sys::termios::tcgetattr(slave.as_fd()).expect("tcgetattr");
            nix::sys::termios::cfmakeraw(&mut t);
            nix::sys::termios::tcsetattr(slave.as_fd(), nix::sys::termios::SetArg::TCSANOW, &t)
                .expect("tcsetattr");
            let path = nix::unistd::ttyname(slave.as_fd())
                .expect("ttyname")
                .to_string_lossy()
                .into_owned();
            FakePort {
                master: Some(master),
                _slave: slave,
                path,
                buf: Vec::new(),
            }
        }

        /// Plays `dev` on this port's master, on a thread; the port keeps its slave (and
        /// its path) alive.
        pub fn play<D: super::sim::LineDevice>(
            mut self,
            dev: D,
        ) -> (FakePort, super::sim::SimThread<D>) {
            let m = self.master.take().expect("master");
            (self, super::sim::SimThread::spawn(m, dev))
        }

        fn fd(&self) -> &OwnedFd {
            self.master.as_ref().expect("master closed")
        }

        /// Writes bytes to the driver.
        pub fn send(&self, b: &[u8]) {
            nix::unistd::write(self.fd(), b).expect("write to pty master");
        }

        /// Reads what the driver sent, until `n` bytes or `timeout`.
        pub fn recv_n(&mut self, n: usize, timeout: Duration) -> Vec<u8> {
            let end = Instant::now() + timeout;
            while self.buf.len() < n && Instant::now() < end {
                self.poll_read(end);
            }
            let k = n.min(self.buf.len());
            self.buf.drain(..k).collect()
        }

        /// Reads one line sent by the driver (without `ending`), or `None` on timeout.
        pub fn recv_line(&mut self, ending: &[u8], timeout: Duration) -> Option<String> {
            let end = Instant::now() + timeout;
            loop {
                if let Some(i) = self.buf.windows(ending.len()).position(|w| w == ending) {
                    let l: Vec<u8> = self.buf.drain(..i + ending.len()).take(i).collect();
                    return Some(String::from_utf8_lossy(&l).into_owned());
                }
                if Instant::now() >= end {
                    return None;
                }
                self.poll_read(end);
            }
        }

        fn poll_read(&mut self, end: Instant) {
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            let left = end
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(1000) as u16;
            let fd = self.fd();
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::from(left.max(1))).unwrap_or(0) > 0 {
                let mut tmp = [0u8; 512];
                if let Ok(k) = nix::unistd::read(fd, &mut tmp) {
                    self.buf.extend_from_slice(&tmp[..k]);
                }
            }
        }

        /// Waits (at most 5 s) until bytes sent with [`send`](Self::send) are readable on the
        /// driver's side of the pseudo-terminal (the kernel moves them from the master to the
        /// slave asynchronously). Polls our own slave descriptor, which shares the terminal's
        /// input queue with the driver's, without reading from it. One `send` is delivered as
        /// one chunk, so once it is readable it is all there.
        pub fn wait_delivered(&self) {
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            let mut fds = [PollFd::new(self._slave.as_fd(), PollFlags::POLLIN)];
            let n = poll(&mut fds, PollTimeout::from(5000u16)).expect("poll the pty slave");
            assert!(n > 0, "bytes sent to the pty were not delivered within 5 s");
        }

        /// The device vanishes: the master is closed.
        pub fn vanish(&mut self) {
            self.master = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::FakePort;
    use super::*;

    #[test]
    fn templates_fill_in_order_and_by_index() {
        assert_eq!(fill_template("SOUR:VOLT {}", &[1.5]), "SOUR:VOLT 1.5");
        assert_eq!(fill_template("P{1},{0}", &[1.0, 2.0]), "P2,1");
        assert_eq!(fill_template("A{}B{}", &[1.0]), "A1B{}");
        assert_eq!(template_arity("A{}B{}"), 2);
        assert_eq!(template_arity("P{1}"), 2);
        assert_eq!(template_arity("*RST"), 0);
    }

    #[test]
    fn check_rejects_missing_port_and_bad_baud() {
        let e = SerialConfig::new("/dev/ttyDOES_NOT_EXIST", 9600)
            .check("dev")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.description().contains("does not exist"), "{e}");
        assert_eq!(e.origin(), Some("dev"));
        let p = FakePort::new();
        let e = SerialConfig::new(&p.path, 9601).check("dev").unwrap_err();
        assert!(e.description().contains("baud rate 9601"), "{e}");
        SerialConfig::new(&p.path, 115200).check("dev").unwrap();
    }

    #[test]
    fn lines_timeouts_and_vanishing_port() {
        let mut p = FakePort::new();
        let cfg = SerialConfig::new(&p.path, 115200).timeout(Duration::from_millis(100));
        let mut link = cfg.open("dev").unwrap();
        p.send(b"12.5,3\r\nnext");
        assert_eq!(link.read_line(LineEnding::CrLf).unwrap(), "12.5,3");
        let e = link.read_line(LineEnding::CrLf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        p.send(b" line\r\n");
        assert_eq!(link.read_line(LineEnding::CrLf).unwrap(), "next line");
        link.write_line("MEAS?", LineEnding::Lf).unwrap();
        assert_eq!(
            p.recv_line(b"\n", Duration::from_secs(1)).as_deref(),
            Some("MEAS?")
        );
        p.send(b"a\nb\nc\npart");
        p.wait_delivered();
        assert_eq!(link.read_latest_line(LineEnding::Lf).unwrap(), "c");
        p.vanish();
        let e = link.read_exact(10).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
        assert!(e.description().contains("disappeared"), "{e}");
    }

    #[test]
    fn garbage_without_line_ending_is_reported() {
        let p = FakePort::new();
        let mut link = SerialConfig::new(&p.path, 9600).open("dev").unwrap();
        p.send(&[0xAB; 3000]);
        p.send(&[0xCD; 2000]);
        let e = link.read_line(LineEnding::Lf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Communication);
        assert!(e.description().contains("without a line ending"), "{e}");
    }
}
