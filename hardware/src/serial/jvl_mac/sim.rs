//! A simulated JVL MAC motor on the master side of a pseudo-terminal: the MacTalk
//! telegrams of §6.11 byte for byte (a telegram whose inverted bytes do not match, or for
//! another address, is ignored, as the motor does), its registers, and a motor model.
//!
//! - [`Motor`]: the registers (MODE_REG, P_SOLL, V_SOLL, A_SOLL, P_IST, V_IST, ERR_STAT,
//!   MIN_P_IST / MAX_P_IST) and the physics, integrated per sample period: in velocity mode
//!   the speed ramps to V_SOLL at A_SOLL; in position mode a trapezoidal move to P_SOLL
//!   limited by |V_SOLL| and A_SOLL (in-position bit set on arrival); in passive mode the
//!   shaft coasts to rest. Leaving the position limits (when set) raises the position-limit
//!   error and the motor goes passive, as does any error bit.
//! - [`Fault`]: the next replies missing, replies with a wrong inverse byte, an error bit
//!   raised (e.g. a follow error), the motor vanishing.
//! - [`serve`] plays a motor on a pty master (in a forked child for tests that run a
//!   `Test`), [`SimThread`] on a thread.

use super::{decode_reply, reply_telegram};
use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

// The registers, modes and accept of the sources the driver cites, written here again
// rather than imported from the driver: a wrong number in the driver must make the tests
// fail, not move the simulated motor with it.
const MODE_REG: u8 = 2;
const P_SOLL: u8 = 3;
const V_SOLL: u8 = 5;
const A_SOLL: u8 = 6;
const P_IST: u8 = 10;
const V_IST: u8 = 12;
const ERR_STAT: u8 = 35;
const IN_POSITION_BIT: u32 = 4;
const ACCEPT: [u8; 3] = [0x11; 3];
mod mode {
    pub const PASSIVE: i32 = 0;
    pub const VELOCITY: i32 = 1;
    pub const POSITION: i32 = 2;
}

/// MIN_P_IST: lower position limit, counts (0 with MAX_P_IST 0: no limits).
pub const MIN_P_IST: u8 = 28;
/// MAX_P_IST: upper position limit, counts.
pub const MAX_P_IST: u8 = 30;

/// A fault the motor shows at the next telegrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No accept and no reply to the next telegram.
    Silence,
    /// The next read reply has a data byte whose inverse is wrong.
    CorruptReply,
    /// This ERR_STAT bit is raised now (the motor goes passive).
    Error(u32),
    /// The motor vanishes: the pty's master is closed.
    Vanish,
}

/// The simulated motor.
#[derive(Debug)]
pub struct Motor {
    /// Its address (MYADDR).
    pub address: u8,
    /// Sample period, s (the unit of V_SOLL, A_SOLL and V_IST).
    pub sample_period_s: f64,
    /// Registers as last written (and P_IST, V_IST, ERR_STAT as the motor updates them).
    pub regs: BTreeMap<u8, i32>,
    /// Faults for the next telegrams, first first.
    pub faults: VecDeque<Fault>,
    /// Telegrams handled (for this address, intact).
    pub telegrams: u64,
    /// Telegrams ignored (inverted bytes wrong, garbage, another address).
    pub ignored: u64,
    /// [`serve`] returns once the host, having put the motor in passive mode after using it
    /// (the driver's `close`), closes the port: for a motor played in a process of its own.
    pub end_on_close: bool,
    closed: bool,
    pos: f64,
    vel: f64,
    last: Option<Instant>,
    inbuf: Vec<u8>,
    vanished: bool,
}

impl Motor {
    /// A motor at rest at position 0, passive, at `address`.
    pub fn new(address: u8, sample_period_s: f64) -> Self {
        let mut regs = BTreeMap::new();
        for r in [
            MODE_REG, P_SOLL, V_SOLL, P_IST, V_IST, ERR_STAT, MIN_P_IST, MAX_P_IST,
        ] {
            regs.insert(r, 0);
        }
        regs.insert(A_SOLL, 100);
        Motor {
            address,
            sample_period_s,
            regs,
            faults: VecDeque::new(),
            telegrams: 0,
            ignored: 0,
            end_on_close: false,
            closed: false,
            pos: 0.0,
            vel: 0.0,
            last: None,
            inbuf: Vec::new(),
            vanished: false,
        }
    }

    fn reg(&self, r: u8) -> i32 {
        self.regs.get(&r).copied().unwrap_or(0)
    }

    /// The actual position, counts (not rounded).
    pub fn position_counts(&self) -> f64 {
        self.pos
    }

    /// Whether the motor has vanished.
    pub fn vanished(&self) -> bool {
        self.vanished
    }

    /// Whether the host put the motor in passive mode after using it.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Advances the physics to `now`, one sample period at a time.
    pub fn advance(&mut self, now: Instant) {
        let last = *self.last.get_or_insert(now);
        let n = (now.saturating_duration_since(last).as_secs_f64() / self.sample_period_s) as u64;
        if n == 0 {
            return;
        }
        self.last = Some(last + Duration::from_secs_f64(n as f64 * self.sample_period_s));
        for _ in 0..n.min(1_000_000) {
            self.sample();
        }
        self.regs.insert(P_IST, self.pos.round() as i32);
        self.regs.insert(V_IST, self.vel.round() as i32);
    }

    /// One sample period of the control loop (counts, counts per sample).
    fn sample(&mut self) {
        let acc = f64::from(self.reg(A_SOLL).max(1)) / 16.0;
        let vmax = f64::from(self.reg(V_SOLL)) / 16.0;
        let mut err = self.reg(ERR_STAT) as u32;
        let target_v = match self.reg(MODE_REG) {
            mode::VELOCITY => vmax,
            mode::POSITION => {
                let d = f64::from(self.reg(P_SOLL)) - self.pos;
                // Stop in time: v² ≤ 2·a·|d|.
                d.signum() * vmax.abs().min((2.0 * acc * d.abs()).sqrt())
            }
            _ => 0.0,
        };
        let dv = (target_v - self.vel).clamp(-acc, acc);
        self.vel += dv;
        if self.reg(MODE_REG) == mode::POSITION {
            let d = f64::from(self.reg(P_SOLL)) - self.pos;
            // Arrives within this sample (never overshoots: the profile brakes in time, and
            // the last step lands on the target).
            if d.abs() <= self.vel.abs().max(0.5)
                && (d == 0.0 || d.signum() == self.vel.signum() || d.abs() < 0.5)
            {
                self.pos = f64::from(self.reg(P_SOLL));
                self.vel = 0.0;
            } else {
                self.pos += self.vel;
            }
            let d = f64::from(self.reg(P_SOLL)) - self.pos;
            if d.abs() < 1.0 {
                err |= 1 << IN_POSITION_BIT;
            } else {
                err &= !(1 << IN_POSITION_BIT);
            }
        }
        if self.reg(MODE_REG) != mode::POSITION {
            self.pos += self.vel;
        }
        let (lo, hi) = (self.reg(MIN_P_IST), self.reg(MAX_P_IST));
        if (lo, hi) != (0, 0) && (self.pos < f64::from(lo) || self.pos > f64::from(hi)) {
            err |= 1 << 7; // position limit exceeded
        }
        if err & ERROR_MASK != 0 {
            self.regs.insert(MODE_REG, mode::PASSIVE);
        }
        self.regs.insert(ERR_STAT, err as i32);
    }

    /// Takes the host's bytes; returns what the motor answers.
    pub fn input(&mut self, bytes: &[u8], now: Instant) -> Vec<u8> {
        self.inbuf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            // Resynchronise on a command header.
            let start = self
                .inbuf
                .windows(3)
                .position(|w| w == [0x52; 3] || w == [0x50; 3]);
            match start {
                None => {
                    let keep = self.inbuf.len().min(2);
                    let drop = self.inbuf.len() - keep;
                    if drop > 0 {
                        self.ignored += 1;
                    }
                    self.inbuf.drain(..drop);
                    return out;
                }
                Some(s) if s > 0 => {
                    self.inbuf.drain(..s);
                    self.ignored += 1;
                }
                Some(_) => {}
            }
            let read = self.inbuf[0] == 0x50;
            let need = if read {
                9
            } else {
                match self.inbuf.get(7) {
                    Some(&len) => 11 + 2 * usize::from(len),
                    None => return out,
                }
            };
            if self.inbuf.len() < need {
                return out;
            }
            let t: Vec<u8> = self.inbuf.drain(..need).collect();
            let intact =
                t[3..need - 2].chunks(2).all(|p| p[0] == !p[1]) && t[need - 2..] == [0xAA, 0xAA];
            if !intact || t[3] != self.address || (!read && !matches!(t[7], 2 | 4)) {
                self.ignored += 1;
                continue;
            }
            self.telegrams += 1;
            self.advance(now);
            match self.faults.pop_front() {
                Some(Fault::Silence) => continue,
                Some(Fault::Vanish) => {
                    self.vanished = true;
                    return out;
                }
                Some(Fault::Error(bit)) => {
                    let e = self.reg(ERR_STAT) as u32 | 1 << bit | 1 << 24;
                    self.regs.insert(ERR_STAT, e as i32);
                    self.regs.insert(MODE_REG, mode::PASSIVE);
                }
                Some(Fault::CorruptReply) if read => {
                    let mut r = reply_telegram(t[5], self.reg(t[5]));
                    r[10] ^= 0x01; // the inverse of the first data byte
                    debug_assert!(decode_reply(&r, t[5]).is_err());
                    out.extend_from_slice(&r);
                    continue;
                }
                _ => {}
            }
            let reg = t[5];
            if read {
                out.extend_from_slice(&reply_telegram(reg, self.reg(reg)));
            } else {
                let len = usize::from(t[7]);
                let mut b = [0u8; 4];
                for (k, slot) in b.iter_mut().enumerate().take(len) {
                    *slot = t[9 + 2 * k];
                }
                let v = if len == 2 {
                    i32::from(i16::from_le_bytes([b[0], b[1]]))
                } else {
                    i32::from_le_bytes(b)
                };
                self.write(reg, v);
                out.extend_from_slice(&ACCEPT);
            }
        }
    }

    fn write(&mut self, reg: u8, v: i32) {
        match reg {
            // Writing ERR_STAT clears the errors (any value: Crappy and JVL write 0).
            ERR_STAT => {
                self.regs.insert(ERR_STAT, 0);
            }
            P_IST => {
                self.pos = f64::from(v);
                self.regs.insert(P_IST, v);
            }
            MODE_REG if self.reg(ERR_STAT) as u32 & ERROR_MASK != 0 => {
                // An error keeps the motor passive until ERR_STAT is cleared.
            }
            _ => {
                if reg == MODE_REG && v == mode::PASSIVE && self.reg(MODE_REG) != mode::PASSIVE {
                    self.closed = true;
                }
                self.regs.insert(reg, v);
            }
        }
    }
}

/// The ERR_STAT bits that are errors (see [`super::ERROR_BITS`]), and "any error" (24).
const ERROR_MASK: u32 = {
    let mut m = 1u32 << 24;
    let mut i = 0;
    while i < super::ERROR_BITS.len() {
        m |= 1 << super::ERROR_BITS[i].0;
        i += 1;
    }
    m
};

/// Plays `motor` on a pty master until `stop` is set or the motor vanishes.
pub fn serve(master: OwnedFd, motor: &Mutex<Motor>, stop: &AtomicBool) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let lock = || motor.lock().unwrap_or_else(|e| e.into_inner());
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(20u16)).unwrap_or(0) == 0 {
            lock().advance(Instant::now());
            continue;
        }
        match nix::unistd::read(&master, &mut buf) {
            Ok(n) if n > 0 => {
                let (out, gone) = {
                    let mut m = lock();
                    let out = m.input(&buf[..n], Instant::now());
                    (out, m.vanished())
                };
                if !out.is_empty() {
                    let _ = nix::unistd::write(&master, &out);
                }
                if gone {
                    return;
                }
            }
            _ => {
                // EIO: no process has the port open (the host closed it).
                let m = lock();
                if m.end_on_close && m.closed() {
                    return;
                }
                drop(m);
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// A simulated motor on a thread of this process; stopped and joined on drop (see
/// [`crate::sim_thread`]): [`SimThread::new`], then
/// [`with`](crate::sim_thread::SimThread::with) to inspect the motor or inject faults while
/// it runs, and [`stop`](crate::sim_thread::SimThread::stop).
pub type SimThread = crate::sim_thread::SimThread<Motor>;

impl crate::sim_thread::SimThread<Motor> {
    /// Plays `motor` on `master`.
    pub fn new(master: OwnedFd, motor: Motor) -> SimThread {
        Self::start(motor, None, (), move |m, s| serve(master, m, s))
    }
}
