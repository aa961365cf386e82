//! A simulated Modbus device, for tests and benchmarks: a register map (the four tables,
//! `size` addresses each; beyond, exception 02 as a real device answers) and faults to
//! inject, served over TCP ([`serve_tcp`], [`SimThread::tcp`]) or on the master side of a
//! pseudo-terminal as an RTU device ([`serve_rtu`], [`SimThread::rtu`]).
//!
//! A device that computes its registers (a furnace, a motor, a circuit) plugs a [`Model`]
//! into the [`Device`]: it runs before each request (advance the physics to now, refresh
//! the measured registers, or refuse the request with an exception code as the device's
//! firmware would) and after each request served (react to what was written).
//!
//! The servers run on a thread ([`SimThread`], for tests that do not fork) or in a process
//! of their own (call [`serve_tcp`] / [`serve_rtu`] in a child made with
//! `crabby::process::ChildSet`, for tests that run a `Test`).

use super::frame::{self, Request};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A fault the device shows at the next request (one per request, in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// RTU: the answer's CRC is wrong. TCP: the MBAP protocol identifier is wrong.
    BadFrame,
    /// An exception response with this code.
    Exception(u8),
    /// No answer at all.
    Silence,
    /// The answer comes after this delay.
    Slow(Duration),
    /// TCP: the connection is closed instead of answering. RTU: the device vanishes (the
    /// pseudo-terminal's master is closed and the server ends).
    Disconnect,
    /// The answer comes from another unit.
    WrongUnit,
}

/// A device's behaviour beyond storing registers: its physics and its firmware's rules.
pub trait Model: Send + std::fmt::Debug + 'static {
    /// Called before `request` is served: advance to now, put the measurements in the
    /// tables; `Err(code)` answers the exception `code` instead (nothing is applied).
    fn before(&mut self, device: &mut Device, request: &Request) -> Result<(), u8>;
    /// Called after `request` was applied without exception: react to what was written.
    fn after(&mut self, device: &mut Device, request: &Request);
    /// The model itself, for a test that changes its state ([`Device::model_mut`]).
    fn as_any(&mut self) -> &mut dyn std::any::Any;
}

/// The table, first address and count a request touches, and whether it writes: what a
/// [`Model`] checks against its register map.
pub fn span(request: &Request) -> (super::Table, u16, u16, bool) {
    use super::Table;
    match request {
        Request::ReadCoils { address, count } => (Table::Coil, *address, *count, false),
        Request::ReadDiscreteInputs { address, count } => {
            (Table::DiscreteInput, *address, *count, false)
        }
        Request::ReadHoldingRegisters { address, count } => {
            (Table::Holding, *address, *count, false)
        }
        Request::ReadInputRegisters { address, count } => (Table::Input, *address, *count, false),
        Request::WriteSingleCoil { address, .. } => (Table::Coil, *address, 1, true),
        Request::WriteSingleRegister { address, .. } => (Table::Holding, *address, 1, true),
        Request::WriteMultipleCoils { address, values } => {
            (Table::Coil, *address, values.len() as u16, true)
        }
        Request::WriteMultipleRegisters { address, values } => {
            (Table::Holding, *address, values.len() as u16, true)
        }
    }
}

/// The device: its unit, its four tables, the faults to come, what it has seen, and its
/// [`Model`] if it has one.
#[derive(Debug)]
pub struct Device {
    /// The unit it answers as (others are ignored).
    pub unit: u8,
    /// Coils.
    pub coils: Vec<bool>,
    /// Discrete inputs.
    pub discrete_inputs: Vec<bool>,
    /// Holding registers.
    pub holding: Vec<u16>,
    /// Input registers.
    pub input: Vec<u16>,
    /// Faults for the next requests, first first.
    pub faults: VecDeque<Fault>,
    /// Requests received (for this unit, with a good frame).
    pub requests: u64,
    /// What computes the registers, if anything does.
    pub model: Option<Box<dyn Model>>,
}

impl Device {
    /// A device with `size` addresses in each table, all zero.
    pub fn new(unit: u8, size: usize) -> Self {
        Device {
            unit,
            coils: vec![false; size],
            discrete_inputs: vec![false; size],
            holding: vec![0; size],
            input: vec![0; size],
            faults: VecDeque::new(),
            requests: 0,
            model: None,
        }
    }

    /// Plugs a model into the device.
    pub fn with_model(mut self, model: impl Model) -> Self {
        self.model = Some(Box::new(model));
        self
    }

    /// The model, if it is a `M`.
    pub fn model_mut<M: Model>(&mut self) -> Option<&mut M> {
        self.model.as_mut()?.as_any().downcast_mut::<M>()
    }

    /// Injects `fault` into the next `n` requests (after those already queued).
    pub fn inject(&mut self, fault: Fault, n: usize) {
        self.faults.extend(std::iter::repeat_n(fault, n));
    }

    /// The answer PDU to a request PDU (normal or exception), and the fault to apply.
    pub fn handle(&mut self, pdu: &[u8]) -> (Vec<u8>, Option<Fault>) {
        self.requests += 1;
        let fault = self.faults.pop_front();
        let fc = pdu.first().copied().unwrap_or(0);
        let answer = match fault {
            Some(Fault::Exception(code)) => vec![fc | 0x80, code],
            _ => match Request::decode(pdu) {
                Ok(req) => {
                    let mut model = self.model.take();
                    let r = match model.as_mut() {
                        Some(m) => m.before(self, &req).and_then(|()| self.apply(&req)),
                        None => self.apply(&req),
                    };
                    if let (Ok(_), Some(m)) = (&r, model.as_mut()) {
                        m.after(self, &req);
                    }
                    self.model = model;
                    r.unwrap_or_else(|code| vec![fc | 0x80, code])
                }
                Err(code) => vec![fc | 0x80, code],
            },
        };
        (answer, fault)
    }

    fn apply(&mut self, req: &Request) -> Result<Vec<u8>, u8> {
        fn range<T>(v: &[T], address: u16, count: usize) -> Result<std::ops::Range<usize>, u8> {
            let a = address as usize;
            if a + count > v.len() {
                Err(0x02)
            } else {
                Ok(a..a + count)
            }
        }
        let fc = req.function();
        Ok(match req {
            Request::ReadCoils { address, count }
            | Request::ReadDiscreteInputs { address, count } => {
                let table = if fc == frame::READ_COILS {
                    &self.coils
                } else {
                    &self.discrete_inputs
                };
                let bytes = frame::pack_bits(&table[range(table, *address, *count as usize)?]);
                let mut out = vec![fc, bytes.len() as u8];
                out.extend(bytes);
                out
            }
            Request::ReadHoldingRegisters { address, count }
            | Request::ReadInputRegisters { address, count } => {
                let table = if fc == frame::READ_HOLDING_REGISTERS {
                    &self.holding
                } else {
                    &self.input
                };
                let mut out = vec![fc, (*count * 2) as u8];
                for r in &table[range(table, *address, *count as usize)?] {
                    out.extend_from_slice(&r.to_be_bytes());
                }
                out
            }
            Request::WriteSingleCoil { address, value } => {
                let r = range(&self.coils, *address, 1)?;
                self.coils[r.start] = *value;
                req.encode()
            }
            Request::WriteSingleRegister { address, value } => {
                let r = range(&self.holding, *address, 1)?;
                self.holding[r.start] = *value;
                req.encode()
            }
            Request::WriteMultipleCoils { address, values } => {
                let r = range(&self.coils, *address, values.len())?;
                self.coils[r].copy_from_slice(values);
                req.encode()[..5].to_vec()
            }
            Request::WriteMultipleRegisters { address, values } => {
                let r = range(&self.holding, *address, values.len())?;
                self.holding[r].copy_from_slice(values);
                req.encode()[..5].to_vec()
            }
        })
    }
}

fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, ms: u16) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::from(ms)).unwrap_or(0) > 0
}

/// Serves Modbus TCP on `listener`, one connection at a time, until `stop` is set (checked
/// every 50 ms).
pub fn serve_tcp(listener: &TcpListener, device: &Mutex<Device>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        if !wait_readable(listener.as_fd(), 50) {
            continue;
        }
        let Ok((conn, _)) = listener.accept() else {
            continue;
        };
        serve_connection(conn, device, stop);
    }
}

fn serve_connection(mut conn: TcpStream, device: &Mutex<Device>, stop: &AtomicBool) {
    let _ = conn.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(260);
    let mut tmp = [0u8; 260];
    while !stop.load(Ordering::Relaxed) {
        if !wait_readable(conn.as_fd(), 50) {
            continue;
        }
        match conn.read(&mut tmp) {
            Ok(0) | Err(_) => return, // the client closed the connection
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
        while buf.len() >= frame::MBAP_LEN {
            let Ok(m) = frame::mbap(&buf) else {
                return; // not Modbus: drop the client
            };
            if buf.len() < frame::MBAP_LEN + m.pdu_len {
                break;
            }
            let pdu: Vec<u8> = buf
                .drain(..frame::MBAP_LEN + m.pdu_len)
                .skip(frame::MBAP_LEN)
                .collect();
            let (answer, fault, unit) = {
                let mut d = device.lock().unwrap_or_else(|e| e.into_inner());
                if m.unit != d.unit {
                    continue; // not ours
                }
                let (a, f) = d.handle(&pdu);
                (a, f, d.unit)
            };
            let mut out = frame::tcp_frame(m.transaction, unit, &answer);
            match fault {
                Some(Fault::Silence) => continue,
                Some(Fault::Disconnect) => return,
                Some(Fault::Slow(d)) => std::thread::sleep(d),
                Some(Fault::BadFrame) => out[3] = 1,
                Some(Fault::WrongUnit) => out[6] = unit.wrapping_add(1),
                _ => {}
            }
            if conn.write_all(&out).is_err() {
                return;
            }
        }
    }
}

/// How long an RTU request is, from its first bytes (`None`: not known yet; `Some(0)`: an
/// unknown function, whose end is the line's silence).
fn rtu_request_len(b: &[u8]) -> Option<usize> {
    match *b.get(1)? {
        1..=6 => Some(8),
        0x0F | 0x10 => Some(9 + *b.get(6)? as usize),
        _ => Some(0),
    }
}

/// Serves Modbus RTU on the master side `fd` of a pseudo-terminal until `stop` is set, the
/// other side is closed, or a [`Fault::Disconnect`] (which closes `fd`: the device
/// vanishes). Frames with a wrong CRC or for another unit are ignored, as on a real bus.
pub fn serve_rtu(fd: OwnedFd, device: &Mutex<Device>, stop: &AtomicBool) {
    let mut buf: Vec<u8> = Vec::with_capacity(260);
    let mut tmp = [0u8; 260];
    while !stop.load(Ordering::Relaxed) {
        let readable = wait_readable(fd.as_fd(), 20);
        if readable {
            match nix::unistd::read(&fd, &mut tmp) {
                Ok(0) | Err(nix::errno::Errno::EIO) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
                Err(_) => continue,
            }
        }
        while let Some(len) = rtu_request_len(&buf) {
            let len = match len {
                0 if !readable => buf.len(), // unknown function: the frame ends at the silence
                0 => break,
                n if n > buf.len() => break,
                n => n,
            };
            let frame_bytes: Vec<u8> = buf.drain(..len).collect();
            let Ok((unit, pdu)) = frame::rtu_split(&frame_bytes) else {
                buf.clear(); // noise: resynchronise at the next frame
                break;
            };
            let (answer, fault, me) = {
                let mut d = device.lock().unwrap_or_else(|e| e.into_inner());
                if unit != d.unit {
                    continue;
                }
                let (a, f) = d.handle(pdu);
                (a, f, d.unit)
            };
            let mut out = frame::rtu_frame(me, &answer);
            match fault {
                Some(Fault::Silence) => continue,
                Some(Fault::Disconnect) => return, // fd dropped: the port vanishes
                Some(Fault::Slow(d)) => std::thread::sleep(d),
                Some(Fault::BadFrame) => {
                    let n = out.len();
                    out[n - 1] ^= 0xFF;
                }
                Some(Fault::WrongUnit) => out = frame::rtu_frame(me.wrapping_add(1), &answer),
                _ => {}
            }
            let _ = nix::unistd::write(&fd, &out);
        }
    }
}

/// A simulator on a thread of this process; stopped and joined on drop (see
/// [`crate::sim_thread`]): [`SimThread::tcp`] or [`SimThread::rtu`], then
/// [`with`](crate::sim_thread::SimThread::with) to set registers, inject faults or read what
/// was written, and [`stop`](crate::sim_thread::SimThread::stop): a TCP device no longer
/// accepts connections, an RTU device's port vanishes. `addr` is the TCP address (TCP only).
pub type SimThread = crate::sim_thread::SimThread<Device>;

impl crate::sim_thread::SimThread<Device> {
    /// A Modbus TCP server on a free loopback port.
    pub fn tcp(device: Device) -> std::io::Result<SimThread> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        Ok(Self::start(device, Some(addr), (), move |d, s| {
            serve_tcp(&listener, d, s)
        }))
    }

    /// An RTU device on the master side of a pseudo-terminal.
    pub fn rtu(master: OwnedFd, device: Device) -> SimThread {
        Self::start(device, None, (), move |d, s| serve_rtu(master, d, s))
    }
}
