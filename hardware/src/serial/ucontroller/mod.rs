//! [`UController`]: a microcontroller (MicroPython or Arduino) that streams labelled values
//! over a serial port and takes labelled commands, with Crappy's UController protocol (an
//! [`InOut`] that is an [`Input`], an [`Output`] and a [`Stream`]); the simulated board its
//! tests play is in [`sim`].
//!
//! A cheap DAQ: flash MicroPython on a board (Raspberry Pi Pico, ESP32, pyboard), copy
//! `hardware/boards/crabby_ucontroller.py` onto it as `main.py`, edit its acquisition
//! section (read your ADC pins), and read its labels with an `IOBlock`.
//!
//! ## The protocol
//!
//! There is no maker's manual: the protocol is defined by Crappy's own implementation,
//! which this driver follows byte for byte:
//! - host side: `crappy/blocks/ucontroller.py` (LaboratoireMecaniqueLille/crappy, class
//!   `UController`, methods `prepare`, `loop` and `finish`; Crappy 2.0);
//! - board side: `crappy/tool/microcontroller.py` (the MicroPython template; an Arduino
//!   template, `microcontroller.ino`, implements the same).
//!
//! | Step | Bytes | Crappy source |
//! |---|---|---|
//! | Handshake | `go<X><Y>\r\n`: X command labels, Y labels (one digit each, so at most 9; `t(s)` counts as a label) | `ucontroller.py`, `prepare` |
//! | Command table | `<i><name>\r\n` per command label, `i` = 1, 2, … in order | `prepare`; board: `commands[int(value[0])] = value[1:]` |
//! | Label table | `<i><name>\r\n` per label, `i` = 1, 2, …; then `0t(s)\r\n` when the board's clock is asked for | `prepare` (`_labels_table \|= {'t(s)': 0}`) |
//! | Command | `<i><value with 3 decimals>\r\n`, sent only when the value changed | `loop`; board: `globals()[commands[int(msg[0])]] = float(msg[1:])` |
//! | Data frame | little-endian `struct` `<bf` (i8 label index, f32 value, 5 bytes), or `<ibf` (i32 board `ticks_ms`, i8 index, f32, 9 bytes) when `t(s)` was asked | board: `send_to_pc`; host: `loop` (`unpack('<ibf' if t_device else '<bf')`) |
//! | Stop | `stop!\r\n`; the board calls `machine.reset()` and waits for `go` again | `finish` |
//!
//! The data frames carry no synchronisation byte and no checksum. This driver checks each
//! frame's label index (and, with the board's clock, that the timestamp moves by less than
//! a minute); a byte that cannot start a frame is dropped, so the stream realigns after
//! garbage and the dropped bytes are counted ([`UController::discarded_bytes`], shown in
//! the status). Garbage that happens to look like a frame cannot be told from one: keep
//! anything else (`print`) off the board's serial output.
//!
//! ## Differences from Crappy's Block
//!
//! Same bytes on the wire. In addition: the configuration is checked before the test
//! forks (at most 9 labels of each kind, names without line breaks, `t(s)` reserved); a
//! silence longer than the timeout is a [`Timeout`](crabby::ErrorKind::Timeout) error
//! instead of no output; and, opt-in ([`UController::recover_resets`]), a silent board is
//! sent the handshake again once before that error, which restarts a board that reset —
//! only for board scripts that accept a handshake while streaming, as ours does (Crappy's
//! template would stop on it).

pub mod sim;
#[cfg(test)]
mod tests;

use super::{SerialConfig, SerialLink};
use crabby::hardware::{
    device_error, now_ns, Chunk, DeviceState, InOut, Input, Output, Reading, Status, Stream,
};
use crabby::{Error, ErrorKind, Result};
use std::time::{Duration, Instant};

/// The most labels (or command labels) the handshake can announce: one decimal digit.
pub const MAX_LABELS: usize = 9;

/// Bytes discarded in a row, with no valid frame, after which the stream is declared garbage.
const MAX_GARBAGE_RUN: usize = 256;

/// A board speaking Crappy's UController protocol (see the [module docs](self)).
///
/// ```no_run
/// use crabby_hardware::serial::{SerialConfig, UController};
/// // A Pico running hardware/boards/crabby_ucontroller.py: reads 'sine' and 'count',
/// // stamped by the board's clock, and takes the 'freq' command.
/// let board = UController::new("pico", SerialConfig::new("/dev/ttyACM0", 115200))
///     .labels(["sine", "count"])
///     .cmd_labels(["freq"])
///     .t_device(true);
/// ```
#[derive(Debug)]
pub struct UController {
    /// The device's name (origin of its errors).
    pub name: String,
    /// The port. Its timeout is the longest silence accepted from a streaming board.
    pub serial: SerialConfig,
    /// The labels the board sends (indexes 1, 2, … in this order).
    pub labels: Vec<String>,
    /// The command labels: names of the board script's variables (indexes 1, 2, …).
    pub cmd_labels: Vec<String>,
    /// The value of each label until the board sends one (Crappy's `init_output`;
    /// default 0).
    pub init_output: Vec<f64>,
    /// Ask the board for its clock (`t(s)`, 9-byte frames): samples are stamped when the
    /// board measured them, not when they arrived (Crappy's `t_device`).
    pub t_device: bool,
    /// After a silence of one timeout, send the handshake again once before failing.
    pub recover_resets: bool,
    link: Option<SerialLink>,
    rx: Vec<u8>,
    latest: Vec<f64>,
    prev_cmd: Vec<Option<f64>>,
    last_frame: Instant,
    last_t_ns: u64,
    /// Host time of board tick 0, set at the first frame after a handshake.
    board_origin: Option<(i32, u64)>,
    last_ticks: Option<i32>,
    garbage_run: usize,
    discarded: u64,
    frames: u64,
    rehandshakes: u64,
    resent: bool,
    status: Status,
}

/// One decoded data frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    /// The board's `ticks_ms` (frames with `t(s)` only).
    pub ticks_ms: Option<i32>,
    /// The label index (1-based, in the order of the labels).
    pub index: i8,
    /// The value.
    pub value: f32,
}

/// Decodes one frame of `n` bytes (5: `<bf`, 9: `<ibf`), as Crappy's `unpack` does.
pub fn decode_frame(b: &[u8], t_device: bool) -> Option<Frame> {
    let (ticks_ms, rest) = if t_device {
        let t: [u8; 4] = b.get(..4)?.try_into().ok()?;
        (Some(i32::from_le_bytes(t)), &b[4..])
    } else {
        (None, b)
    };
    let index = *rest.first()? as i8;
    let v: [u8; 4] = rest.get(1..5)?.try_into().ok()?;
    Some(Frame {
        ticks_ms,
        index,
        value: f32::from_le_bytes(v),
    })
}

/// Encodes one frame as the board's `send_to_pc` does (`struct.pack('<ibf' | '<bf')`).
pub fn encode_frame(f: &Frame, out: &mut Vec<u8>) {
    if let Some(t) = f.ticks_ms {
        out.extend_from_slice(&t.to_le_bytes());
    }
    out.push(f.index as u8);
    out.extend_from_slice(&f.value.to_le_bytes());
}

impl UController {
    /// A board on `serial`, with no labels yet.
    pub fn new(name: impl Into<String>, serial: SerialConfig) -> Self {
        UController {
            name: name.into(),
            serial,
            labels: Vec::new(),
            cmd_labels: Vec::new(),
            init_output: Vec::new(),
            t_device: false,
            recover_resets: false,
            link: None,
            rx: Vec::new(),
            latest: Vec::new(),
            prev_cmd: Vec::new(),
            last_frame: Instant::now(),
            last_t_ns: 0,
            board_origin: None,
            last_ticks: None,
            garbage_run: 0,
            discarded: 0,
            frames: 0,
            rehandshakes: 0,
            resent: false,
            status: Status::off(),
        }
    }

    /// Sets the labels the board sends.
    pub fn labels<S: Into<String>>(mut self, labels: impl IntoIterator<Item = S>) -> Self {
        self.labels = labels.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the command labels (the board script's variable names).
    pub fn cmd_labels<S: Into<String>>(mut self, labels: impl IntoIterator<Item = S>) -> Self {
        self.cmd_labels = labels.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the values output before the board sends any (one per label).
    pub fn init_output(mut self, values: impl IntoIterator<Item = f64>) -> Self {
        self.init_output = values.into_iter().collect();
        self
    }

    /// Asks the board for its clock (see [`t_device`](UController::t_device)).
    pub fn t_device(mut self, on: bool) -> Self {
        self.t_device = on;
        self
    }

    /// Re-sends the handshake once after a silence (see
    /// [`recover_resets`](UController::recover_resets)).
    pub fn recover_resets(mut self, on: bool) -> Self {
        self.recover_resets = on;
        self
    }

    /// Bytes dropped so far because they could not start a frame.
    pub fn discarded_bytes(&self) -> u64 {
        self.discarded
    }

    /// Frames decoded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Handshakes re-sent after a silence.
    pub fn rehandshakes(&self) -> u64 {
        self.rehandshakes
    }

    fn frame_len(&self) -> usize {
        if self.t_device {
            9
        } else {
            5
        }
    }

    /// The handshake bytes (`go`, then the command and label tables).
    pub fn handshake(&self) -> Vec<u8> {
        let n_lab = self.labels.len() + usize::from(self.t_device && !self.labels.is_empty());
        let mut b = format!("go{}{}\r\n", self.cmd_labels.len(), n_lab).into_bytes();
        for (i, c) in self.cmd_labels.iter().enumerate() {
            b.extend_from_slice(format!("{}{c}\r\n", i + 1).as_bytes());
        }
        for (i, l) in self.labels.iter().enumerate() {
            b.extend_from_slice(format!("{}{l}\r\n", i + 1).as_bytes());
        }
        if self.t_device && !self.labels.is_empty() {
            b.extend_from_slice(b"0t(s)\r\n");
        }
        b
    }

    /// The bytes of a command: label index and the value with 3 decimals.
    pub fn command_line(index: usize, value: f64) -> String {
        format!("{}{value:.3}\r\n", index + 1)
    }

    fn require_labels(&self) -> Result<()> {
        if self.labels.is_empty() {
            return Err(device_error(
                ErrorKind::NotAllowed,
                &self.name,
                "no labels are configured: the board sends nothing to read",
            ));
        }
        Ok(())
    }

    fn link(&mut self) -> Result<&mut SerialLink> {
        let name = &self.name;
        self.link.as_mut().ok_or_else(|| {
            device_error(
                ErrorKind::NotAllowed,
                name,
                "the board is not open (open() was not called or failed)",
            )
        })
    }

    fn fault<T>(&mut self, e: Error) -> Result<T> {
        self.status = Status::fault(e.description().to_owned());
        Err(e)
    }

    fn send_handshake(&mut self) -> Result<()> {
        let hs = self.handshake();
        let link = self.link()?;
        link.discard_input()?;
        link.write_all(&hs)?;
        self.rx.clear();
        self.board_origin = None;
        self.last_ticks = None;
        self.last_frame = Instant::now();
        Ok(())
    }

    /// Decodes the complete frames in the receive buffer; calls `each` with the host time
    /// and the label slot of each.
    fn decode(&mut self, mut each: impl FnMut(u64, usize, f64)) -> Result<usize> {
        let n = self.frame_len();
        let n_labels = self.labels.len() as i8;
        let mut i = 0;
        let mut got = 0;
        let arrival = now_ns();
        while self.rx.len() - i >= n {
            let f = decode_frame(&self.rx[i..i + n], self.t_device).expect("n bytes");
            let plausible_t = match (f.ticks_ms, self.last_ticks) {
                (Some(t), Some(prev)) => t.wrapping_sub(prev).unsigned_abs() < 60_000,
                _ => true,
            };
            if !(1..=n_labels).contains(&f.index) || !plausible_t {
                i += 1;
                self.discarded += 1;
                self.garbage_run += 1;
                if self.garbage_run > MAX_GARBAGE_RUN {
                    self.rx.drain(..i);
                    let e = device_error(
                        ErrorKind::Communication,
                        &self.name,
                        format!(
                            "{MAX_GARBAGE_RUN} bytes in a row from port {} are not UController frames; check the baud rate, that the board runs the UController script and that nothing else prints on its serial output",
                            self.serial.port
                        ),
                    );
                    self.garbage_run = 0;
                    return self.fault(e);
                }
                continue;
            }
            self.garbage_run = 0;
            let t_ns = match f.ticks_ms {
                Some(t) => {
                    self.last_ticks = Some(t);
                    let (t0, h0) = *self.board_origin.get_or_insert((t, arrival));
                    let dt = i64::from(t.wrapping_sub(t0)) * 1_000_000;
                    h0.saturating_add_signed(dt)
                }
                None => arrival,
            };
            let slot = (f.index - 1) as usize;
            self.latest[slot] = f64::from(f.value);
            self.last_t_ns = t_ns;
            each(t_ns, slot, f64::from(f.value));
            got += 1;
            i += n;
        }
        self.rx.drain(..i);
        self.frames += got as u64;
        if got > 0 {
            self.last_frame = Instant::now();
            self.resent = false;
            self.status = if self.discarded > 0 {
                Status::new(
                    DeviceState::Alarm,
                    format!(
                        "streaming; {} bytes of garbage dropped so far (misaligned frames): check the line and that nothing else prints on the board's serial output",
                        self.discarded
                    ),
                )
            } else {
                Status::on(format!("streaming from {}", self.serial.port))
            };
        }
        Ok(got)
    }

    /// Reads what the board sent (waiting at most `wait` for the first byte), decodes it,
    /// and applies the silence rules. Returns the number of frames decoded.
    fn pump(&mut self, wait: Duration, each: impl FnMut(u64, usize, f64)) -> Result<usize> {
        let bytes = match self.link()?.read_available(wait) {
            Ok(b) => b,
            Err(e) => return self.fault(e),
        };
        self.rx.extend_from_slice(&bytes);
        let got = self.decode(each)?;
        if got == 0 {
            let silent = self.last_frame.elapsed();
            if silent >= self.serial.timeout {
                if self.recover_resets && !self.resent {
                    log::warn!(
                        "{}: no frame for {silent:?}; sending the handshake again (the board may have reset)",
                        self.name
                    );
                    self.send_handshake()?;
                    self.resent = true;
                    self.rehandshakes += 1;
                    self.status = Status::new(
                        DeviceState::Alarm,
                        format!("silent for {silent:?}; handshake sent again (board reset?)"),
                    );
                } else {
                    let e = device_error(
                        ErrorKind::Timeout,
                        &self.name,
                        format!(
                            "no frame from the board on port {} for {silent:?}; check that it runs the UController script, that its labels match {:?}, and that it did not reset (recover_resets re-sends the handshake)",
                            self.serial.port, self.labels
                        ),
                    );
                    return self.fault(e);
                }
            }
        }
        Ok(got)
    }

    /// Sends the commands whose value changed (all of them the first time).
    pub fn send_commands(&mut self, cmd: &[f64]) -> Result<()> {
        if cmd.len() != self.cmd_labels.len() {
            return Err(device_error(
                ErrorKind::Configuration,
                &self.name,
                format!(
                    "{} command values given for the {} command labels {:?}",
                    cmd.len(),
                    self.cmd_labels.len(),
                    self.cmd_labels
                ),
            ));
        }
        let mut out = String::new();
        for (i, &v) in cmd.iter().enumerate() {
            if !v.is_finite() {
                return Err(device_error(
                    ErrorKind::OutOfRange,
                    &self.name,
                    format!(
                        "command '{}' is {v}; the board takes finite numbers",
                        self.cmd_labels[i]
                    ),
                ));
            }
            if self.prev_cmd.get(i).copied().flatten() != Some(v) {
                out.push_str(&Self::command_line(i, v));
            }
        }
        if !out.is_empty() {
            if let Err(e) = self.link()?.write_all(out.as_bytes()) {
                return self.fault(e);
            }
            for (p, &v) in self.prev_cmd.iter_mut().zip(cmd) {
                *p = Some(v);
            }
        }
        Ok(())
    }

    /// Waits (at most the timeout, plus one more after a re-sent handshake) for at least
    /// one frame, then returns the latest value of every label.
    pub fn read_latest(&mut self) -> Result<Reading> {
        loop {
            if self.pump(Duration::from_millis(50), |_, _, _| {})? > 0 {
                return Ok(Reading::new(self.last_t_ns, self.latest.clone()));
            }
        }
    }

    /// The frames received since the last call, one row each (the other labels keep
    /// their latest value, as Crappy's Block sends them); waits at most 50 ms for the
    /// first byte.
    pub fn read_frames(&mut self) -> Result<Chunk> {
        let n = self.labels.len();
        let mut latest = self.latest.clone();
        let mut c = Chunk {
            t_ns: Vec::new(),
            channels: vec![Vec::new(); n],
        };
        self.pump(Duration::from_millis(50), |t, slot, v| {
            latest[slot] = v;
            c.t_ns.push(t);
            for (ch, &x) in c.channels.iter_mut().zip(&latest) {
                ch.push(x);
            }
        })?;
        Ok(c)
    }
}

impl InOut for UController {
    fn name(&self) -> &str {
        &self.name
    }

    fn channels(&self) -> Vec<String> {
        self.labels.clone()
    }

    fn check(&self) -> Result<()> {
        let cfg = |m: String| Err(Error::config(m).with_origin(&self.name));
        if self.labels.is_empty() && self.cmd_labels.is_empty() {
            return cfg(
                "neither labels nor cmd_labels are given; the board would do nothing".into(),
            );
        }
        for (what, list) in [("labels", &self.labels), ("cmd_labels", &self.cmd_labels)] {
            if list.len() > MAX_LABELS {
                return cfg(format!(
                    "{} {what} given; the UController handshake announces at most {MAX_LABELS} (one digit)",
                    list.len()
                ));
            }
            for (i, l) in list.iter().enumerate() {
                if l.trim().is_empty() || l.trim() != l || l.contains(['\r', '\n']) {
                    return cfg(format!(
                        "{what} entry {l:?} must be a non-empty name without spaces around it or line breaks (the board strips its lines)"
                    ));
                }
                if list[..i].contains(l) {
                    return cfg(format!("{what} entry '{l}' is given twice"));
                }
            }
        }
        if self.labels.iter().any(|l| l == "t(s)") {
            return cfg("'t(s)' is reserved for the board's clock; use t_device(true) instead of listing it".into());
        }
        if !self.init_output.is_empty() && self.init_output.len() != self.labels.len() {
            return cfg(format!(
                "{} init_output values for {} labels; give one per label",
                self.init_output.len(),
                self.labels.len()
            ));
        }
        if self.t_device && self.labels.is_empty() {
            return cfg("t_device is set but no labels are read".into());
        }
        self.serial.check(&self.name)
    }

    fn open(&mut self) -> Result<()> {
        self.link = Some(self.serial.open(&self.name)?);
        self.latest = if self.init_output.is_empty() {
            vec![0.0; self.labels.len()]
        } else {
            self.init_output.clone()
        };
        self.prev_cmd = vec![None; self.cmd_labels.len()];
        self.send_handshake()?;
        self.status = Status::on(format!("handshake sent on {}", self.serial.port));
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if let Some(mut link) = self.link.take() {
            // The board resets and waits for the next handshake. A board already gone
            // cannot be told: not an error at close.
            if let Err(e) = link.write_all(b"stop!\r\n") {
                log::debug!("{}: stop! not sent: {e}", self.name);
            }
        }
        self.status = Status::off();
        Ok(())
    }

    fn status(&self) -> Status {
        self.status.clone()
    }
}

impl Input for UController {
    fn read(&mut self) -> Result<Reading> {
        self.require_labels()?;
        self.read_latest()
    }
}

impl Output for UController {
    fn n_commands(&self) -> Option<usize> {
        Some(self.cmd_labels.len())
    }

    fn write(&mut self, cmd: &[f64]) -> Result<()> {
        if self.cmd_labels.is_empty() {
            return Err(device_error(
                ErrorKind::NotAllowed,
                &self.name,
                "no cmd_labels are configured: the board takes no command",
            ));
        }
        self.send_commands(cmd)
    }
}

impl Stream for UController {
    fn start_stream(&mut self) -> Result<()> {
        self.require_labels()?;
        self.link()?;
        Ok(())
    }

    fn read_stream(&mut self) -> Result<Chunk> {
        self.require_labels()?;
        self.read_frames()
    }

    fn stop_stream(&mut self) -> Result<()> {
        Ok(())
    }
}
