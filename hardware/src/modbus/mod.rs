//! Modbus RTU (serial) and Modbus TCP, synchronous, in the Block's own process: the generic
//! [`ModbusInOut`] maps coils and registers to labels, and [`sim`] plays a device for tests.
//!
//! ## The documents
//!
//! Written from, and tested against the examples of:
//! - *MODBUS Application Protocol Specification V1.1b3* (Modbus Organization, 2012): the PDU
//!   (§4.1, at most 253 bytes; exception function code = function + 0x80), big-endian
//!   registers (§4.2), the four tables (§4.3), 0-based addresses on the wire (§4.4: item X of
//!   a manual is address X − 1), function codes 01 Read Coils (§6.1), 02 Read Discrete
//!   Inputs (§6.2), 03 Read Holding Registers (§6.3), 04 Read Input Registers (§6.4), 05
//!   Write Single Coil (§6.5), 06 Write Single Register (§6.6), 0F Write Multiple Coils
//!   (§6.11, 1 to 1968), 10 Write Multiple Registers (§6.12, 1 to 123), with their quantity
//!   limits, and the exception responses and codes (§7).
//! - *MODBUS over Serial Line Specification and Implementation Guide V1.02* (2006): unicast
//!   addresses 1–247 (§2.2), the RTU frame, address + PDU + CRC, and its 3.5-character
//!   inter-frame silence, fixed at 1.75 ms above 19200 baud (§2.5.1.1), the CRC field, low
//!   byte first (§2.5.1.2), computed as in Appendix B §6.2.2.
//! - *MODBUS Messaging on TCP/IP Implementation Guide V1.0b* (2006): the MBAP header
//!   (§3.1.3: transaction identifier, protocol identifier 0, length = unit byte + PDU, unit
//!   identifier).
//!
//! Section numbers checked against the Application Protocol's and the TCP guide's tables of
//! contents and the text of §4.1–4.4 and §6.11–6.12; the Serial Line guide's against
//! implementations that quote its text (§2.2, §2.5.1.1, §2.5.1.2, §6.2.2).
//!
//! The frames are this crate's own small implementation ([`frame`]), tested against the
//! Application Protocol's own examples and the CRC's published check value. `rmodbus`
//! (maintained, `no_std`) is a frame codec plus a server context; its client side would
//! still need the transports, deadlines, retries and fault handling written here, so it
//! would save only the ~300 lines of codec; `tokio-modbus` needs an async runtime.
//!
//! ## Errors, retries, fault
//!
//! Every transaction has a deadline (the serial timeout, or [`Transport::Tcp`]'s timeout).
//! A timeout, a CRC error, a malformed or stray answer, a broken TCP connection, and the
//! exceptions ACKNOWLEDGE (05) and SERVER DEVICE BUSY (06) are counted ([`ModbusStats`]) and
//! the request is sent again, up to [`ModbusInOut::retries`] times (TCP reconnects first).
//! Then the device is in FAULT (its [`Status`] says why and the counts) and the error is
//! returned: [`ErrorKind::Timeout`] (no answer), [`ErrorKind::Communication`] (bad frames,
//! connection lost). Exception responses map to kinds: 01 ILLEGAL FUNCTION →
//! [`ErrorKind::NotAllowed`], 02 ILLEGAL DATA ADDRESS → [`ErrorKind::Configuration`] (the
//! register map is wrong), 03 ILLEGAL DATA VALUE → [`ErrorKind::OutOfRange`], 04 SERVER
//! DEVICE FAILURE and 08 MEMORY PARITY ERROR → [`ErrorKind::Hardware`], 05/06 (after the
//! retries) and 0B GATEWAY TARGET FAILED TO RESPOND → [`ErrorKind::Timeout`], 0A GATEWAY
//! PATH UNAVAILABLE → [`ErrorKind::Communication`].
//!
//! ## Exclusive access
//!
//! An RTU bus is its serial port, held as every serial port is ([`crate::lock`]); a TCP unit
//! (address and unit identifier) is held by a lock of its own: a second test that opens
//! the same unit is refused, naming the holder, already in `check` (before the fork).

pub mod frame;
pub mod sim;

use crate::lock::DeviceLock;
use crate::serial::{SerialConfig, SerialLink};
use crabby::hardware::{device_error, now_ns, InOut, Input, Output, Reading, Status};
use crabby::{Error, ErrorKind, Result};
use frame::{FrameError, Request, Response};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The four Modbus data tables (Application Protocol §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Read-write bits (01, 05, 0F).
    Coil,
    /// Read-only bits (02).
    DiscreteInput,
    /// Read-write registers (03, 06, 10).
    Holding,
    /// Read-only registers (04).
    Input,
}

impl Table {
    fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::DiscreteInput)
    }
    fn writable(self) -> bool {
        matches!(self, Table::Coil | Table::Holding)
    }
    fn read_request(self, address: u16, count: u16) -> Request {
        match self {
            Table::Coil => Request::ReadCoils { address, count },
            Table::DiscreteInput => Request::ReadDiscreteInputs { address, count },
            Table::Holding => Request::ReadHoldingRegisters { address, count },
            Table::Input => Request::ReadInputRegisters { address, count },
        }
    }
    fn max_read(self) -> u16 {
        if self.is_bits() {
            frame::MAX_READ_BITS
        } else {
            frame::MAX_READ_REGISTERS
        }
    }
}

/// How a value is stored in its register(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// A coil or discrete input: 0 or 1.
    Bool,
    /// One register, unsigned.
    U16,
    /// One register, two's complement.
    I16,
    /// Two registers, unsigned.
    U32,
    /// Two registers, two's complement.
    I32,
    /// Two registers, IEEE 754 single precision.
    F32,
}

impl DataType {
    /// How many registers (or bits) the value takes.
    pub fn width(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 => 1,
            _ => 2,
        }
    }
}

/// Byte order within a register, or word order within a 32-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Most significant first (Modbus's own order for bytes, §4.2; "high word first").
    Big,
    /// Least significant first (byte-swapped registers; "low word first", common for 32-bit
    /// values in PLCs).
    Little,
}

/// One value on the device, with its label: table, address (0-based, as on the wire),
/// type, byte and word order, and `value = raw × scale + offset`.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The label of the value.
    pub label: String,
    /// Which table.
    pub table: Table,
    /// The address of the (first) register or bit, 0-based as sent on the wire (register
    /// "40001" of a manual is holding register 0).
    pub address: u16,
    /// How the value is stored.
    pub kind: DataType,
    /// Byte order within each register (default [`Order::Big`]).
    pub byte_order: Order,
    /// Word order of 32-bit values (default [`Order::Big`], high word first).
    pub word_order: Order,
    /// Multiplies the raw value (default 1).
    pub scale: f64,
    /// Added after scaling (default 0).
    pub offset: f64,
}

impl Point {
    fn new(label: impl Into<String>, table: Table, address: u16, kind: DataType) -> Self {
        Point {
            label: label.into(),
            table,
            address,
            kind,
            byte_order: Order::Big,
            word_order: Order::Big,
            scale: 1.0,
            offset: 0.0,
        }
    }
    /// A holding register (u16 until told otherwise).
    pub fn holding(label: impl Into<String>, address: u16) -> Self {
        Self::new(label, Table::Holding, address, DataType::U16)
    }
    /// An input register (u16 until told otherwise).
    pub fn input(label: impl Into<String>, address: u16) -> Self {
        Self::new(label, Table::Input, address, DataType::U16)
    }
    /// A coil.
    pub fn coil(label: impl Into<String>, address: u16) -> Self {
        Self::new(label, Table::Coil, address, DataType::Bool)
    }
    /// A discrete input.
    pub fn discrete_input(label: impl Into<String>, address: u16) -> Self {
        Self::new(label, Table::DiscreteInput, address, DataType::Bool)
    }
    /// Sets the type.
    pub fn kind(mut self, kind: DataType) -> Self {
        self.kind = kind;
        self
    }
    /// Unsigned 16-bit.
    pub fn u16(self) -> Self {
        self.kind(DataType::U16)
    }
    /// Signed 16-bit.
    pub fn i16(self) -> Self {
        self.kind(DataType::I16)
    }
    /// Unsigned 32-bit (two registers).
    pub fn u32(self) -> Self {
        self.kind(DataType::U32)
    }
    /// Signed 32-bit (two registers).
    pub fn i32(self) -> Self {
        self.kind(DataType::I32)
    }
    /// IEEE 754 float (two registers).
    pub fn f32(self) -> Self {
        self.kind(DataType::F32)
    }
    /// Sets the byte order within each register.
    pub fn byte_order(mut self, o: Order) -> Self {
        self.byte_order = o;
        self
    }
    /// Sets the word order of a 32-bit value.
    pub fn word_order(mut self, o: Order) -> Self {
        self.word_order = o;
        self
    }
    /// `value = raw × scale + offset`.
    pub fn scale(mut self, s: f64) -> Self {
        self.scale = s;
        self
    }
    /// `value = raw × scale + offset`.
    pub fn offset(mut self, o: f64) -> Self {
        self.offset = o;
        self
    }

    fn end(&self) -> u32 {
        self.address as u32 + self.kind.width() as u32
    }

    /// The value of the raw registers (as many as [`DataType::width`]).
    pub fn decode(&self, regs: &[u16]) -> f64 {
        let swap = |r: u16| match self.byte_order {
            Order::Big => r,
            Order::Little => r.swap_bytes(),
        };
        let raw = match self.kind {
            DataType::Bool => regs[0] as f64,
            DataType::U16 => swap(regs[0]) as f64,
            DataType::I16 => swap(regs[0]) as i16 as f64,
            DataType::U32 | DataType::I32 | DataType::F32 => {
                let (hi, lo) = match self.word_order {
                    Order::Big => (swap(regs[0]), swap(regs[1])),
                    Order::Little => (swap(regs[1]), swap(regs[0])),
                };
                let bits = (hi as u32) << 16 | lo as u32;
                match self.kind {
                    DataType::U32 => bits as f64,
                    DataType::I32 => bits as i32 as f64,
                    _ => f32::from_bits(bits) as f64,
                }
            }
        };
        raw * self.scale + self.offset
    }

    /// The raw registers of a value, or why it does not fit.
    pub fn encode(&self, value: f64) -> std::result::Result<Vec<u16>, String> {
        if !value.is_finite() {
            return Err(format!("'{}' = {value} is not a number", self.label));
        }
        let raw = (value - self.offset) / self.scale;
        let int = |lo: f64, hi: f64| {
            let r = raw.round();
            if r < lo || r > hi {
                Err(format!(
                    "'{}' = {value} is {r} on the device, outside its range {lo}..={hi} ({:?})",
                    self.label, self.kind
                ))
            } else {
                Ok(r)
            }
        };
        let swap = |r: u16| match self.byte_order {
            Order::Big => r,
            Order::Little => r.swap_bytes(),
        };
        let bits32 = match self.kind {
            DataType::Bool => return Ok(vec![(raw != 0.0) as u16]),
            DataType::U16 => return Ok(vec![swap(int(0.0, 65535.0)? as u16)]),
            DataType::I16 => return Ok(vec![swap(int(-32768.0, 32767.0)? as i16 as u16)]),
            DataType::U32 => int(0.0, u32::MAX as f64)? as u32,
            DataType::I32 => int(i32::MIN as f64, i32::MAX as f64)? as i32 as u32,
            DataType::F32 => {
                if raw.abs() > f32::MAX as f64 {
                    return Err(format!("'{}' = {value} overflows a float32", self.label));
                }
                (raw as f32).to_bits()
            }
        };
        let (hi, lo) = (swap((bits32 >> 16) as u16), swap(bits32 as u16));
        Ok(match self.word_order {
            Order::Big => vec![hi, lo],
            Order::Little => vec![lo, hi],
        })
    }
}

/// How to reach the device.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// Modbus TCP: `host:port` (502 is the standard port), and the answer timeout (also the
    /// connection timeout).
    Tcp {
        /// `host:port`.
        address: String,
        /// How long to wait for a connection or an answer.
        timeout: Duration,
    },
    /// Modbus RTU on a serial port (the answer timeout is the port's).
    Rtu(SerialConfig),
}

/// What happened on the line since the device was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModbusStats {
    /// Transactions attempted (retries included).
    pub requests: u64,
    /// Requests sent again after a failure.
    pub retries: u64,
    /// Transactions without an answer in time.
    pub timeouts: u64,
    /// RTU answers with a wrong CRC.
    pub crc_errors: u64,
    /// Malformed, stray or foreign answers, and broken connections.
    pub bad_frames: u64,
    /// Exception responses.
    pub exceptions: u64,
    /// TCP connections made after the first.
    pub reconnects: u64,
}

/// A failed transaction, before retries decide.
enum TxError {
    Timeout(Error),
    Crc(String),
    Bad(String),
    Exception { function: u8, code: u8 },
    Link(Error),
}

enum Conn {
    Tcp {
        addr: SocketAddr,
        timeout: Duration,
        stream: Option<TcpStream>,
        transaction: u16,
        connections: u64,
    },
    Rtu {
        link: SerialLink,
        silence: Duration,
        quiet_since: Instant,
    },
}

/// A Modbus device as an [`InOut`]: each read label is a [`Point`] read every loop (points
/// adjacent in one table are read in one request), each command label a [`Point`] written.
///
/// ```no_run
/// use crabby_hardware::modbus::{ModbusInOut, Order, Point};
/// // A temperature controller on RS-485: process value (0.1 °C) in holding register 1,
/// // setpoint written to register 2; a power meter's float in input registers 100-101.
/// let ctl = ModbusInOut::rtu("oven", crabby_hardware::serial::SerialConfig::new("/dev/ttyUSB0", 19200))
///     .unit(1)
///     .read_point(Point::holding("T(C)", 1).i16().scale(0.1))
///     .read_point(Point::input("P(W)", 100).f32().word_order(Order::Little))
///     .write_point(Point::holding("SP(C)", 2).i16().scale(0.1));
/// ```
#[derive(Debug)]
pub struct ModbusInOut {
    /// The device's name (origin of its errors).
    pub name: String,
    /// How to reach it.
    pub transport: Transport,
    /// The unit (RTU: slave address 1–247; TCP: unit identifier, 255 or 1 for most devices).
    pub unit: u8,
    /// The values read, in the order of the labels.
    pub reads: Vec<Point>,
    /// The values written, in the order of the command labels.
    pub writes: Vec<Point>,
    /// How many times a failed request is sent again before the device is in FAULT
    /// (default 2).
    pub retries: u32,
    conn: Option<Conn>,
    lock: Option<DeviceLock>,
    plan: Vec<(Table, u16, u16, Vec<usize>)>,
    stats: ModbusStats,
    status: Status,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Conn::Tcp { addr, .. } => write!(f, "Tcp({addr})"),
            Conn::Rtu { link, .. } => write!(f, "Rtu({})", link.path()),
        }
    }
}

impl ModbusInOut {
    fn new(name: impl Into<String>, transport: Transport) -> Self {
        ModbusInOut {
            name: name.into(),
            transport,
            unit: 1,
            reads: Vec::new(),
            writes: Vec::new(),
            retries: 2,
            conn: None,
            lock: None,
            plan: Vec::new(),
            stats: ModbusStats::default(),
            status: Status::off(),
        }
    }
    /// A Modbus TCP device at `host:port`, 1 s timeout, unit 1.
    pub fn tcp(name: impl Into<String>, address: impl Into<String>) -> Self {
        Self::new(
            name,
            Transport::Tcp {
                address: address.into(),
                timeout: Duration::from_secs(1),
            },
        )
    }
    /// A Modbus RTU device on a serial port, unit 1.
    pub fn rtu(name: impl Into<String>, serial: SerialConfig) -> Self {
        Self::new(name, Transport::Rtu(serial))
    }
    /// Sets the unit (slave address or unit identifier).
    pub fn unit(mut self, unit: u8) -> Self {
        self.unit = unit;
        self
    }
    /// Sets the TCP timeout (for RTU, set the [`SerialConfig`]'s).
    pub fn timeout(mut self, t: Duration) -> Self {
        match &mut self.transport {
            Transport::Tcp { timeout, .. } => *timeout = t,
            Transport::Rtu(s) => s.timeout = t,
        }
        self
    }
    /// Reads `p` every loop (its label is the next channel).
    pub fn read_point(mut self, p: Point) -> Self {
        self.reads.push(p);
        self
    }
    /// Writes `p` with the next command value.
    pub fn write_point(mut self, p: Point) -> Self {
        self.writes.push(p);
        self
    }
    /// Sets how many times a failed request is sent again.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }
    /// What happened on the line so far.
    pub fn stats(&self) -> ModbusStats {
        self.stats
    }

    fn cfg_err(&self, what: String) -> Error {
        Error::config(what).with_origin(&self.name)
    }

    fn tcp_addr(&self, address: &str) -> Result<SocketAddr> {
        address
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                self.cfg_err(format!(
                    "Modbus TCP address '{address}' is not host:port (e.g. 192.168.1.10:502) or does not resolve"
                ))
            })
    }

    /// The lock key of the unit (TCP) or `None` (RTU: the serial port's lock).
    fn lock_key(&self) -> Result<Option<String>> {
        match &self.transport {
            Transport::Tcp { address, .. } => Ok(Some(format!(
                "modbus-tcp-{}-unit-{}",
                self.tcp_addr(address)?,
                self.unit
            ))),
            Transport::Rtu(_) => Ok(None),
        }
    }

    /// Groups the read points into requests: points of one table whose registers touch or
    /// overlap share a request, within the per-request limits.
    fn make_plan(&self) -> Vec<(Table, u16, u16, Vec<usize>)> {
        let mut idx: Vec<usize> = (0..self.reads.len()).collect();
        idx.sort_by_key(|&i| (self.reads[i].table, self.reads[i].address));
        let mut plan: Vec<(Table, u16, u16, Vec<usize>)> = Vec::new();
        for i in idx {
            let p = &self.reads[i];
            if let Some((t, start, count, members)) = plan.last_mut() {
                let end = *start as u32 + *count as u32;
                if *t == p.table
                    && p.address as u32 <= end
                    && p.end().max(end) - *start as u32 <= p.table.max_read() as u32
                {
                    *count = (p.end().max(end) - *start as u32) as u16;
                    members.push(i);
                    continue;
                }
            }
            plan.push((p.table, p.address, p.kind.width(), vec![i]));
        }
        plan
    }

    fn connect(&mut self) -> Result<()> {
        let conn = match &self.transport {
            Transport::Tcp { address, timeout } => {
                // Connected now, so that an absent device fails `open` (in `prepare`).
                let addr = self.tcp_addr(address)?;
                Conn::Tcp {
                    addr,
                    timeout: *timeout,
                    stream: Some(tcp_connect(&addr, *timeout, &self.name)?),
                    transaction: 0,
                    connections: 1,
                }
            }
            Transport::Rtu(serial) => {
                let mut link = serial.open(&self.name)?;
                link.discard_input()?;
                // 3.5 characters of 11 bits, or 1.75 ms above 19200 baud (§2.5.1.1).
                let silence = if serial.baud_rate > 19200 {
                    Duration::from_micros(1750)
                } else {
                    Duration::from_secs_f64(3.5 * 11.0 / serial.baud_rate as f64)
                };
                Conn::Rtu {
                    link,
                    silence,
                    quiet_since: Instant::now(),
                }
            }
        };
        self.conn = Some(conn);
        Ok(())
    }

    /// One request, sent again on a retryable failure, up to `retries` times.
    fn transact(&mut self, req: &Request) -> Result<Response> {
        let mut attempt = 0;
        loop {
            self.stats.requests += 1;
            let r = match self.conn.as_mut() {
                Some(c) => once(c, &self.name, self.unit, req, &mut self.stats),
                None => {
                    return Err(device_error(
                        ErrorKind::NotAllowed,
                        &self.name,
                        "the device is not open",
                    ))
                }
            };
            let err = match r {
                Ok(resp) => return Ok(resp),
                Err(e) => e,
            };
            let (retry, error) = self.classify(req, err);
            if retry && attempt < self.retries {
                attempt += 1;
                self.stats.retries += 1;
                log::debug!(
                    "{}: {} (retry {attempt}/{})",
                    self.name,
                    error.description(),
                    self.retries
                );
                continue;
            }
            let s = self.stats;
            let mut error = error;
            if retry {
                error = device_error(
                    error.kind(),
                    &self.name,
                    format!(
                        "{} (after {} retries; since opening: {} requests, {} timeouts, {} CRC errors, {} bad frames)",
                        error.description(),
                        self.retries,
                        s.requests,
                        s.timeouts,
                        s.crc_errors,
                        s.bad_frames
                    ),
                );
            }
            self.status = Status::fault(error.to_string());
            return Err(error);
        }
    }

    /// Whether a failure is worth a retry, and the error it becomes.
    fn classify(&mut self, req: &Request, e: TxError) -> (bool, Error) {
        let name = &self.name;
        let unit = self.unit;
        match e {
            TxError::Timeout(e) => {
                self.stats.timeouts += 1;
                (true, e)
            }
            TxError::Crc(s) => {
                self.stats.crc_errors += 1;
                (true, device_error(ErrorKind::Communication, name, s))
            }
            TxError::Bad(s) => {
                self.stats.bad_frames += 1;
                (true, device_error(ErrorKind::Communication, name, s))
            }
            TxError::Link(e) => {
                self.stats.bad_frames += 1;
                (true, e)
            }
            TxError::Exception { function, code } => {
                self.stats.exceptions += 1;
                let (retry, kind, hint) = match code {
                    0x01 => (false, ErrorKind::NotAllowed, "the device does not support this function"),
                    0x02 => (false, ErrorKind::Configuration, "the register map names an address this device does not have; check the addresses (0-based) and the table"),
                    0x03 => (false, ErrorKind::OutOfRange, "the device refused the value or quantity"),
                    0x04 | 0x08 => (false, ErrorKind::Hardware, "the device reports an internal failure; check it"),
                    0x05 | 0x06 => (true, ErrorKind::Timeout, "the device stayed busy"),
                    0x0B => (false, ErrorKind::Timeout, "the gateway's target device did not answer"),
                    _ => (false, ErrorKind::Communication, "check the gateway and the unit identifier"),
                };
                let at = match req {
                    Request::ReadCoils { address, .. }
                    | Request::ReadDiscreteInputs { address, .. }
                    | Request::ReadHoldingRegisters { address, .. }
                    | Request::ReadInputRegisters { address, .. }
                    | Request::WriteSingleCoil { address, .. }
                    | Request::WriteSingleRegister { address, .. }
                    | Request::WriteMultipleCoils { address, .. }
                    | Request::WriteMultipleRegisters { address, .. } => *address,
                };
                (
                    retry,
                    device_error(
                        kind,
                        name,
                        format!(
                            "unit {unit} answered exception {code:#04x} {} to function {function:#04x} at address {at}: {hint}",
                            frame::exception_name(code)
                        ),
                    ),
                )
            }
        }
    }

    fn status_on(&mut self) {
        if self.status.state != crabby::hardware::DeviceState::Fault {
            let s = self.stats;
            self.status = Status::on(format!(
                "{} requests, {} retries, {} timeouts, {} CRC errors",
                s.requests, s.retries, s.timeouts, s.crc_errors
            ));
        }
    }
}

/// A TCP connection to a Modbus server, or an error that says what to check.
fn tcp_connect(addr: &SocketAddr, timeout: Duration, name: &str) -> Result<TcpStream> {
    let s = TcpStream::connect_timeout(addr, timeout).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::TimedOut {
            ErrorKind::Timeout
        } else {
            ErrorKind::Communication
        };
        device_error(
            kind,
            name,
            format!("cannot connect to Modbus TCP {addr}: {e}; check that the device is on and the address"),
        )
    })?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Reads exactly `buf.len()` bytes from a TCP stream before `deadline`.
fn read_full(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> std::io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(std::io::ErrorKind::TimedOut.into())
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn from_frame(e: FrameError) -> TxError {
    match e {
        FrameError::Exception { function, code } => TxError::Exception { function, code },
        FrameError::Crc { .. } => TxError::Crc(format!("{e}")),
        e => TxError::Bad(format!("bad answer: {e}")),
    }
}

/// One attempt of one transaction.
fn once(
    conn: &mut Conn,
    name: &str,
    unit: u8,
    req: &Request,
    stats: &mut ModbusStats,
) -> std::result::Result<Response, TxError> {
    let pdu = req.encode();
    match conn {
        Conn::Tcp {
            addr,
            timeout,
            stream,
            transaction,
            connections,
        } => {
            let deadline = Instant::now() + *timeout;
            if stream.is_none() {
                let s = tcp_connect(addr, *timeout, name).map_err(TxError::Link)?;
                *connections += 1;
                if *connections > 1 {
                    stats.reconnects += 1;
                }
                *stream = Some(s);
            }
            let s = stream.as_mut().expect("connected above");
            *transaction = transaction.wrapping_add(1);
            let tid = *transaction;
            let lost = |e: std::io::Error, stream: &mut Option<TcpStream>| {
                // The connection is in an unknown state: the next attempt opens a new one.
                *stream = None;
                if e.kind() == std::io::ErrorKind::TimedOut {
                    TxError::Timeout(device_error(
                        ErrorKind::Timeout,
                        name,
                        format!("no answer from Modbus TCP {addr} unit {unit} within {timeout:?}"),
                    ))
                } else {
                    TxError::Link(device_error(
                        ErrorKind::Communication,
                        name,
                        format!("Modbus TCP connection to {addr} lost: {e}"),
                    ))
                }
            };
            let _ = s.set_write_timeout(Some(*timeout));
            if let Err(e) = s.write_all(&frame::tcp_frame(tid, unit, &pdu)) {
                return Err(lost(e, stream));
            }
            loop {
                let s = stream.as_mut().expect("connected above");
                let mut head = [0u8; frame::MBAP_LEN];
                if let Err(e) = read_full(s, &mut head, deadline) {
                    return Err(lost(e, stream));
                }
                let m = match frame::mbap(&head) {
                    Ok(m) => m,
                    Err(e) => {
                        *stream = None; // framing lost
                        return Err(from_frame(e));
                    }
                };
                let mut body = vec![0u8; m.pdu_len];
                if let Err(e) = read_full(s, &mut body, deadline) {
                    return Err(lost(e, stream));
                }
                if m.transaction != tid {
                    // A late answer to an earlier attempt: skip it.
                    stats.bad_frames += 1;
                    continue;
                }
                if m.unit != unit {
                    return Err(from_frame(FrameError::WrongUnit {
                        expected: unit,
                        got: m.unit,
                    }));
                }
                return req.decode_response(&body).map_err(from_frame);
            }
        }
        Conn::Rtu {
            link,
            silence,
            quiet_since,
        } => {
            // The inter-frame silence before a new request (§2.5.1.1).
            let since = quiet_since.elapsed();
            if since < *silence {
                std::thread::sleep(*silence - since);
            }
            // Whatever came after the last answer (a late answer, noise) is not ours.
            link.discard_input().map_err(TxError::Link)?;
            let bytes = frame::rtu_frame(unit, &pdu);
            link.write_all(&bytes).map_err(TxError::Link)?;
            let read = |link: &mut SerialLink, n: usize| {
                link.read_exact(n).map_err(|e| {
                    if e.kind() == ErrorKind::Timeout {
                        TxError::Timeout(e)
                    } else {
                        TxError::Link(e)
                    }
                })
            };
            let result = (|| {
                let mut f = read(link, 2)?;
                let total = match frame::rtu_response_len(&f) {
                    Some(n) => n,
                    None => {
                        f.extend(read(link, 1)?);
                        frame::rtu_response_len(&f).unwrap_or(5)
                    }
                };
                if total > f.len() {
                    f.extend(read(link, total - f.len())?);
                }
                let (from, body) = frame::rtu_split(&f).map_err(from_frame)?;
                if from != unit {
                    return Err(from_frame(FrameError::WrongUnit {
                        expected: unit,
                        got: from,
                    }));
                }
                req.decode_response(body).map_err(from_frame)
            })();
            *quiet_since = Instant::now();
            result
        }
    }
}

/// Register access for device drivers built on this client (a driver keeps a
/// `ModbusInOut` without points as its link: [`crate::labjack`], [`crate::eurotherm`],
/// [`crate::oriental`]). Retries, deadlines, statistics, exception mapping and the device
/// lock are the same as for the points.
impl ModbusInOut {
    /// Checks how the device is reached (transport, unit, retries) and that its lock is
    /// free, without touching it: what [`InOut::check`] checks, points aside.
    pub fn check_link(&self) -> Result<()> {
        self.check_transport()?;
        self.probe_lock()
    }

    /// Takes the device lock and connects (TCP) or opens the port (RTU): what
    /// [`InOut::open`] does, points aside. Counts start again from zero.
    pub fn open_link(&mut self) -> Result<()> {
        self.check_link()?;
        if let Some(key) = self.lock_key()? {
            self.lock = Some(DeviceLock::acquire(&key, &self.name)?);
        }
        self.stats = ModbusStats::default();
        self.status = Status::on("opening");
        if let Err(e) = self.connect() {
            self.status = Status::fault(e.to_string());
            return Err(e);
        }
        self.status_on();
        Ok(())
    }

    /// Reads `count` registers (holding: function 03, input: 04) or bits (coils: 01,
    /// discrete inputs: 02, as 0/1) from `address` (0-based) in one request.
    pub fn read_table(&mut self, table: Table, address: u16, count: u16) -> Result<Vec<u16>> {
        if count == 0 || count > table.max_read() || address as u32 + count as u32 > 0x1_0000 {
            return Err(device_error(
                ErrorKind::Internal,
                &self.name,
                format!(
                    "{count} {table:?} values from {address}: 1 to {} in one request, within 0..=65535",
                    table.max_read()
                ),
            ));
        }
        let regs = match self.transact(&table.read_request(address, count))? {
            Response::Bits(b) => b.into_iter().map(u16::from).collect(),
            Response::Registers(r) => r,
            Response::Written => Vec::new(),
        };
        if regs.len() != count as usize {
            return Err(device_error(
                ErrorKind::Communication,
                &self.name,
                format!("{} values where {count} were asked", regs.len()),
            ));
        }
        self.status_on();
        Ok(regs)
    }

    /// Writes holding registers from `address` (0-based): function 06 for one register,
    /// 10 (Write Multiple Registers) for more, in one request.
    pub fn write_registers(&mut self, address: u16, values: &[u16]) -> Result<()> {
        if values.is_empty()
            || values.len() > frame::MAX_WRITE_REGISTERS as usize
            || address as usize + values.len() > 0x1_0000
        {
            return Err(device_error(
                ErrorKind::Internal,
                &self.name,
                format!(
                    "{} registers at {address}: 1 to {} in one request, within 0..=65535",
                    values.len(),
                    frame::MAX_WRITE_REGISTERS
                ),
            ));
        }
        let req = if values.len() == 1 {
            Request::WriteSingleRegister {
                address,
                value: values[0],
            }
        } else {
            Request::WriteMultipleRegisters {
                address,
                values: values.to_vec(),
            }
        };
        self.transact(&req)?;
        self.status_on();
        Ok(())
    }

    /// Closes the connection or port and releases the lock.
    pub fn close_link(&mut self) {
        self.conn = None;
        self.lock = None;
        if self.status.state != crabby::hardware::DeviceState::Fault {
            self.status = Status::off();
        }
    }

    fn check_transport(&self) -> Result<()> {
        match &self.transport {
            Transport::Rtu(serial) => {
                if !(1..=247).contains(&self.unit) {
                    return Err(self.cfg_err(format!(
                        "RTU unit {} is not a unicast address (1 to 247, Modbus over Serial Line §2.2)",
                        self.unit
                    )));
                }
                serial.check(&self.name)?;
            }
            Transport::Tcp { address, timeout } => {
                self.tcp_addr(address)?;
                if timeout.is_zero() || *timeout > Duration::from_secs(60) {
                    return Err(self.cfg_err(format!(
                        "timeout {timeout:?} must be above 0 and at most 60 s"
                    )));
                }
            }
        }
        if self.retries > 10 {
            return Err(self.cfg_err(format!(
                "retries = {}; at most 10 (a device that fails 10 times in a row is gone)",
                self.retries
            )));
        }
        Ok(())
    }

    fn check_points(&self) -> Result<()> {
        let mut labels = std::collections::HashSet::new();
        for (p, writing) in self
            .reads
            .iter()
            .map(|p| (p, false))
            .chain(self.writes.iter().map(|p| (p, true)))
        {
            let what = |s: String| self.cfg_err(format!("point '{}': {s}", p.label));
            if p.label.trim().is_empty() {
                return Err(self.cfg_err(format!(
                    "a point at {:?} address {} has an empty label",
                    p.table, p.address
                )));
            }
            if !labels.insert((writing, p.label.as_str())) {
                return Err(what("this label is used twice".into()));
            }
            if p.table.is_bits() != (p.kind == DataType::Bool) {
                return Err(what(format!(
                    "type {:?} does not fit the {:?} table (bits are Bool, registers are not)",
                    p.kind, p.table
                )));
            }
            if p.end() > 0x1_0000 {
                return Err(what(format!(
                    "{:?} at address {} runs past the last address 65535",
                    p.kind, p.address
                )));
            }
            if !(p.scale.is_finite() && p.scale != 0.0 && p.offset.is_finite()) {
                return Err(what(format!(
                    "scale {} and offset {} must be finite, and scale not 0",
                    p.scale, p.offset
                )));
            }
            if writing && !p.table.writable() {
                return Err(what(format!(
                    "the {:?} table is read-only; write to holding registers or coils",
                    p.table
                )));
            }
        }
        Ok(())
    }

    fn probe_lock(&self) -> Result<()> {
        if let Some(key) = self.lock_key()? {
            DeviceLock::probe(&key, &self.name)?;
        }
        Ok(())
    }
}

impl InOut for ModbusInOut {
    fn name(&self) -> &str {
        &self.name
    }

    fn channels(&self) -> Vec<String> {
        self.reads.iter().map(|p| p.label.clone()).collect()
    }

    fn check(&self) -> Result<()> {
        if self.reads.is_empty() && self.writes.is_empty() {
            return Err(self.cfg_err(
                "no point to read or write; add .read_point(Point::…) or .write_point(Point::…)"
                    .into(),
            ));
        }
        self.check_transport()?;
        self.check_points()?;
        self.probe_lock()
    }

    fn open(&mut self) -> Result<()> {
        self.check()?;
        self.plan = self.make_plan();
        self.open_link()
    }

    fn close(&mut self) -> Result<()> {
        self.close_link();
        Ok(())
    }

    fn status(&self) -> Status {
        self.status.clone()
    }
}

impl Input for ModbusInOut {
    /// An error of kind `NotAllowed` if no read point is configured (a write-only device).
    fn read(&mut self) -> Result<Reading> {
        if self.reads.is_empty() {
            return Err(crabby::hardware::not_supported(
                &self.name,
                "be read (no read point configured)",
            ));
        }
        let mut values = vec![0.0; self.reads.len()];
        let t0 = now_ns();
        for k in 0..self.plan.len() {
            let (table, start, count, members) = self.plan[k].clone();
            let req = table.read_request(start, count);
            let regs: Vec<u16> = match self.transact(&req)? {
                Response::Bits(b) => b.into_iter().map(u16::from).collect(),
                Response::Registers(r) => r,
                Response::Written => Vec::new(),
            };
            if regs.len() != count as usize {
                // decode_response checked the length; kept as a guard for the indexing below.
                return Err(device_error(
                    ErrorKind::Communication,
                    &self.name,
                    format!("{} values where {count} were asked", regs.len()),
                ));
            }
            for i in members {
                let p = &self.reads[i];
                let at = (p.address - start) as usize;
                values[i] = p.decode(&regs[at..at + p.kind.width() as usize]);
            }
        }
        self.status_on();
        // The device measured somewhere between the first request and the last answer.
        Ok(Reading::new(t0 + (now_ns() - t0) / 2, values))
    }
}

impl Output for ModbusInOut {
    fn n_commands(&self) -> Option<usize> {
        Some(self.writes.len())
    }

    fn write(&mut self, cmd: &[f64]) -> Result<()> {
        if cmd.len() != self.writes.len() {
            return Err(device_error(
                ErrorKind::Internal,
                &self.name,
                format!(
                    "{} command values for {} points",
                    cmd.len(),
                    self.writes.len()
                ),
            ));
        }
        // Every value is checked before anything is sent: a command is applied whole or not.
        let mut items: Vec<(Table, u16, Vec<u16>)> = Vec::with_capacity(cmd.len());
        for (p, v) in self.writes.iter().zip(cmd) {
            let regs = p
                .encode(*v)
                .map_err(|s| device_error(ErrorKind::OutOfRange, &self.name, s))?;
            items.push((p.table, p.address, regs));
        }
        items.sort_by_key(|(t, a, _)| (*t, *a));
        // Adjacent points of one table go in one request.
        let mut reqs: Vec<(Table, u16, Vec<u16>)> = Vec::new();
        for (t, a, regs) in items {
            if let Some((lt, la, lregs)) = reqs.last_mut() {
                let max = if t.is_bits() {
                    frame::MAX_WRITE_BITS
                } else {
                    frame::MAX_WRITE_REGISTERS
                } as usize;
                if *lt == t
                    && *la as usize + lregs.len() == a as usize
                    && lregs.len() + regs.len() <= max
                {
                    lregs.extend(regs);
                    continue;
                }
            }
            reqs.push((t, a, regs));
        }
        for (t, address, regs) in reqs {
            let req = match (t, regs.len()) {
                (Table::Coil, 1) => Request::WriteSingleCoil {
                    address,
                    value: regs[0] != 0,
                },
                (Table::Coil, _) => Request::WriteMultipleCoils {
                    address,
                    values: regs.iter().map(|r| *r != 0).collect(),
                },
                (_, 1) => Request::WriteSingleRegister {
                    address,
                    value: regs[0],
                },
                _ => Request::WriteMultipleRegisters {
                    address,
                    values: regs,
                },
            };
            self.transact(&req)?;
        }
        self.status_on();
        Ok(())
    }
}

#[cfg(test)]
mod tests;

/// 32-bit values in two registers, high word first (Application Protocol §4.2 gives the
/// byte order within a register; the word order is the device's: high word first for the
/// drivers of this crate, as their manuals say).
pub mod words {
    /// An IEEE 754 float as two registers, high word first.
    pub fn from_f32(v: f32) -> [u16; 2] {
        from_u32(v.to_bits())
    }
    /// The float in two registers, high word first.
    pub fn to_f32(r: &[u16]) -> f32 {
        f32::from_bits(to_u32(r))
    }
    /// An unsigned 32-bit value as two registers, high word first.
    pub fn from_u32(v: u32) -> [u16; 2] {
        [(v >> 16) as u16, v as u16]
    }
    /// The unsigned 32-bit value in two registers, high word first.
    pub fn to_u32(r: &[u16]) -> u32 {
        (r[0] as u32) << 16 | r[1] as u32
    }
    /// A signed 32-bit value as two registers, high word first.
    pub fn from_i32(v: i32) -> [u16; 2] {
        from_u32(v as u32)
    }
    /// The signed 32-bit value in two registers, high word first.
    pub fn to_i32(r: &[u16]) -> i32 {
        to_u32(r) as i32
    }
}
