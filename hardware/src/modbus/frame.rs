//! Modbus frames: the PDU of each function code, the RTU ADU (address + PDU + CRC-16) and
//! the TCP ADU (MBAP header + PDU). Pure functions over bytes; every decoding error is a
//! [`FrameError`], never a panic, whatever the bytes.

use std::fmt;

/// Read Coils (Application Protocol §6.1).
pub const READ_COILS: u8 = 0x01;
/// Read Discrete Inputs (§6.2).
pub const READ_DISCRETE_INPUTS: u8 = 0x02;
/// Read Holding Registers (§6.3).
pub const READ_HOLDING_REGISTERS: u8 = 0x03;
/// Read Input Registers (§6.4).
pub const READ_INPUT_REGISTERS: u8 = 0x04;
/// Write Single Coil (§6.5).
pub const WRITE_SINGLE_COIL: u8 = 0x05;
/// Write Single Register (§6.6).
pub const WRITE_SINGLE_REGISTER: u8 = 0x06;
/// Write Multiple Coils (§6.11).
pub const WRITE_MULTIPLE_COILS: u8 = 0x0F;
/// Write Multiple Registers (§6.12).
pub const WRITE_MULTIPLE_REGISTERS: u8 = 0x10;

/// Most coils or discrete inputs one read may ask for (§6.1, §6.2: 1 to 2000).
pub const MAX_READ_BITS: u16 = 2000;
/// Most registers one read may ask for (§6.3, §6.4: 1 to 125).
pub const MAX_READ_REGISTERS: u16 = 125;
/// Most coils one write may carry (§6.11: 1 to 1968).
pub const MAX_WRITE_BITS: u16 = 1968;
/// Most registers one write may carry (§6.12: 1 to 123).
pub const MAX_WRITE_REGISTERS: u16 = 123;

/// A request, as the client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// 01: `count` coils from `address`.
    ReadCoils { address: u16, count: u16 },
    /// 02: `count` discrete inputs from `address`.
    ReadDiscreteInputs { address: u16, count: u16 },
    /// 03: `count` holding registers from `address`.
    ReadHoldingRegisters { address: u16, count: u16 },
    /// 04: `count` input registers from `address`.
    ReadInputRegisters { address: u16, count: u16 },
    /// 05: one coil.
    WriteSingleCoil { address: u16, value: bool },
    /// 06: one holding register.
    WriteSingleRegister { address: u16, value: u16 },
    /// 0F: coils from `address`.
    WriteMultipleCoils { address: u16, values: Vec<bool> },
    /// 10: holding registers from `address`.
    WriteMultipleRegisters { address: u16, values: Vec<u16> },
}

/// A normal response's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// 01/02: the bits asked for (the padding of the last byte removed).
    Bits(Vec<bool>),
    /// 03/04: the registers asked for.
    Registers(Vec<u16>),
    /// 05/06/0F/10: the echo checked, nothing to return.
    Written,
}

/// Why bytes are not the frame expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the frame needs.
    Short { need: usize, got: usize },
    /// RTU: the CRC does not match (§2.5.1.2 of Modbus over Serial Line).
    Crc { expected: u16, received: u16 },
    /// The answer is for another unit (RTU address, MBAP unit identifier).
    WrongUnit { expected: u8, got: u8 },
    /// TCP: the protocol identifier is not 0 (Messaging on TCP/IP §3.1.3).
    WrongProtocol(u16),
    /// The answer's function code is not the request's.
    WrongFunction { expected: u8, got: u8 },
    /// An exception response (Application Protocol §7): the function and the code.
    Exception { function: u8, code: u8 },
    /// Anything else wrong in the content (byte count, echo, length).
    Malformed(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Short { need, got } => {
                write!(f, "frame too short ({got} bytes, need {need})")
            }
            FrameError::Crc { expected, received } => write!(
                f,
                "CRC error (computed {expected:#06x}, received {received:#06x})"
            ),
            FrameError::WrongUnit { expected, got } => {
                write!(f, "answer from unit {got} where unit {expected} was asked")
            }
            FrameError::WrongProtocol(p) => {
                write!(f, "MBAP protocol identifier {p} (not 0, not Modbus)")
            }
            FrameError::WrongFunction { expected, got } => write!(
                f,
                "answer with function code {got:#04x} to a request with {expected:#04x}"
            ),
            FrameError::Exception { function, code } => write!(
                f,
                "exception {code:#04x} ({}) to function {function:#04x}",
                exception_name(*code)
            ),
            FrameError::Malformed(s) => f.write_str(s),
        }
    }
}

/// The name of an exception code (Application Protocol §7).
pub fn exception_name(code: u8) -> &'static str {
    match code {
        0x01 => "ILLEGAL FUNCTION",
        0x02 => "ILLEGAL DATA ADDRESS",
        0x03 => "ILLEGAL DATA VALUE",
        0x04 => "SERVER DEVICE FAILURE",
        0x05 => "ACKNOWLEDGE",
        0x06 => "SERVER DEVICE BUSY",
        0x08 => "MEMORY PARITY ERROR",
        0x0A => "GATEWAY PATH UNAVAILABLE",
        0x0B => "GATEWAY TARGET DEVICE FAILED TO RESPOND",
        _ => "unknown exception code",
    }
}

impl Request {
    /// The function code.
    pub fn function(&self) -> u8 {
        match self {
            Request::ReadCoils { .. } => READ_COILS,
            Request::ReadDiscreteInputs { .. } => READ_DISCRETE_INPUTS,
            Request::ReadHoldingRegisters { .. } => READ_HOLDING_REGISTERS,
            Request::ReadInputRegisters { .. } => READ_INPUT_REGISTERS,
            Request::WriteSingleCoil { .. } => WRITE_SINGLE_COIL,
            Request::WriteSingleRegister { .. } => WRITE_SINGLE_REGISTER,
            Request::WriteMultipleCoils { .. } => WRITE_MULTIPLE_COILS,
            Request::WriteMultipleRegisters { .. } => WRITE_MULTIPLE_REGISTERS,
        }
    }

    /// Checks the quantities against the limits of §6 (an error says which).
    pub fn validate(&self) -> Result<(), String> {
        let (n, max, what) = match self {
            Request::ReadCoils { count, .. } | Request::ReadDiscreteInputs { count, .. } => {
                (*count as usize, MAX_READ_BITS as usize, "bits read")
            }
            Request::ReadHoldingRegisters { count, .. }
            | Request::ReadInputRegisters { count, .. } => (
                *count as usize,
                MAX_READ_REGISTERS as usize,
                "registers read",
            ),
            Request::WriteSingleCoil { .. } | Request::WriteSingleRegister { .. } => return Ok(()),
            Request::WriteMultipleCoils { values, .. } => {
                (values.len(), MAX_WRITE_BITS as usize, "coils written")
            }
            Request::WriteMultipleRegisters { values, .. } => (
                values.len(),
                MAX_WRITE_REGISTERS as usize,
                "registers written",
            ),
        };
        if n == 0 || n > max {
            return Err(format!(
                "{n} {what} in one request; Modbus allows 1 to {max}"
            ));
        }
        Ok(())
    }

    /// The PDU: function code and data (Application Protocol §4.1, §6).
    pub fn encode(&self) -> Vec<u8> {
        let mut p = vec![self.function()];
        let u16be = |p: &mut Vec<u8>, v: u16| p.extend_from_slice(&v.to_be_bytes());
        match self {
            Request::ReadCoils { address, count }
            | Request::ReadDiscreteInputs { address, count }
            | Request::ReadHoldingRegisters { address, count }
            | Request::ReadInputRegisters { address, count } => {
                u16be(&mut p, *address);
                u16be(&mut p, *count);
            }
            Request::WriteSingleCoil { address, value } => {
                u16be(&mut p, *address);
                u16be(&mut p, if *value { 0xFF00 } else { 0x0000 });
            }
            Request::WriteSingleRegister { address, value } => {
                u16be(&mut p, *address);
                u16be(&mut p, *value);
            }
            Request::WriteMultipleCoils { address, values } => {
                u16be(&mut p, *address);
                u16be(&mut p, values.len() as u16);
                let bytes = pack_bits(values);
                p.push(bytes.len() as u8);
                p.extend_from_slice(&bytes);
            }
            Request::WriteMultipleRegisters { address, values } => {
                u16be(&mut p, *address);
                u16be(&mut p, values.len() as u16);
                p.push((values.len() * 2) as u8);
                for v in values {
                    u16be(&mut p, *v);
                }
            }
        }
        p
    }

    /// Decodes a request PDU (the simulator's side). `Err` holds the exception code to
    /// answer: 01 for an unknown function, 03 for a malformed request (§7).
    pub fn decode(pdu: &[u8]) -> Result<Request, u8> {
        let fc = *pdu.first().ok_or(0x01)?;
        let word = |i: usize| -> Result<u16, u8> {
            pdu.get(i..i + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or(0x03)
        };
        let r = match fc {
            READ_COILS | READ_DISCRETE_INPUTS | READ_HOLDING_REGISTERS | READ_INPUT_REGISTERS => {
                let (address, count) = (word(1)?, word(3)?);
                match fc {
                    READ_COILS => Request::ReadCoils { address, count },
                    READ_DISCRETE_INPUTS => Request::ReadDiscreteInputs { address, count },
                    READ_HOLDING_REGISTERS => Request::ReadHoldingRegisters { address, count },
                    _ => Request::ReadInputRegisters { address, count },
                }
            }
            WRITE_SINGLE_COIL => {
                let value = match word(3)? {
                    0xFF00 => true,
                    0x0000 => false,
                    _ => return Err(0x03),
                };
                Request::WriteSingleCoil {
                    address: word(1)?,
                    value,
                }
            }
            WRITE_SINGLE_REGISTER => Request::WriteSingleRegister {
                address: word(1)?,
                value: word(3)?,
            },
            WRITE_MULTIPLE_COILS => {
                let (address, count) = (word(1)?, word(3)? as usize);
                let n = *pdu.get(5).ok_or(0x03)? as usize;
                let data = pdu.get(6..6 + n).ok_or(0x03)?;
                if n != count.div_ceil(8) {
                    return Err(0x03);
                }
                Request::WriteMultipleCoils {
                    address,
                    values: unpack_bits(data, count),
                }
            }
            WRITE_MULTIPLE_REGISTERS => {
                let (address, count) = (word(1)?, word(3)? as usize);
                let n = *pdu.get(5).ok_or(0x03)? as usize;
                let data = pdu.get(6..6 + n).ok_or(0x03)?;
                if n != count * 2 {
                    return Err(0x03);
                }
                Request::WriteMultipleRegisters {
                    address,
                    values: data
                        .chunks_exact(2)
                        .map(|b| u16::from_be_bytes([b[0], b[1]]))
                        .collect(),
                }
            }
            _ => return Err(0x01),
        };
        r.validate().map_err(|_| 0x03)?;
        Ok(r)
    }

    /// How long the normal response PDU is (so an RTU reader knows where a frame ends);
    /// `None` where the PDU says it (byte count of reads).
    pub fn response_len(&self) -> usize {
        match self {
            Request::ReadCoils { count, .. } | Request::ReadDiscreteInputs { count, .. } => {
                2 + (*count as usize).div_ceil(8)
            }
            Request::ReadHoldingRegisters { count, .. }
            | Request::ReadInputRegisters { count, .. } => 2 + 2 * *count as usize,
            _ => 5,
        }
    }

    /// Decodes the response PDU to this request, checking everything the specification
    /// lets a client check: function code, byte count, the echo of writes.
    pub fn decode_response(&self, pdu: &[u8]) -> Result<Response, FrameError> {
        let fc = self.function();
        let got = *pdu.first().ok_or(FrameError::Short { need: 2, got: 0 })?;
        if got == fc | 0x80 {
            let code = *pdu.get(1).ok_or(FrameError::Short { need: 2, got: 1 })?;
            return Err(FrameError::Exception { function: fc, code });
        }
        if got != fc {
            return Err(FrameError::WrongFunction { expected: fc, got });
        }
        let need = self.response_len();
        if pdu.len() < need {
            return Err(FrameError::Short {
                need,
                got: pdu.len(),
            });
        }
        if pdu.len() > need {
            return Err(FrameError::Malformed(format!(
                "response of {} bytes where {need} were expected",
                pdu.len()
            )));
        }
        match self {
            Request::ReadCoils { count, .. } | Request::ReadDiscreteInputs { count, .. } => {
                check_count(pdu[1], need - 2)?;
                Ok(Response::Bits(unpack_bits(&pdu[2..], *count as usize)))
            }
            Request::ReadHoldingRegisters { .. } | Request::ReadInputRegisters { .. } => {
                check_count(pdu[1], need - 2)?;
                Ok(Response::Registers(
                    pdu[2..]
                        .chunks_exact(2)
                        .map(|b| u16::from_be_bytes([b[0], b[1]]))
                        .collect(),
                ))
            }
            _ => {
                // 05 and 06 echo the request; 0F and 10 echo address and quantity.
                let sent = self.encode();
                if pdu[..5] != sent[..5] {
                    return Err(FrameError::Malformed(format!(
                        "the write was answered with {:02x?} instead of the echo {:02x?}",
                        &pdu[..5],
                        &sent[..5]
                    )));
                }
                Ok(Response::Written)
            }
        }
    }
}

fn check_count(byte_count: u8, expected: usize) -> Result<(), FrameError> {
    if byte_count as usize != expected {
        return Err(FrameError::Malformed(format!(
            "byte count {byte_count} where {expected} were expected"
        )));
    }
    Ok(())
}

/// Bits packed LSB first, the first bit in the lowest bit of the first byte (§6.1).
pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, b) in bits.iter().enumerate() {
        if *b {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

/// The first `n` bits of `bytes` (§6.1).
pub fn unpack_bits(bytes: &[u8], n: usize) -> Vec<bool> {
    (0..n)
        .map(|i| bytes.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
        .collect()
}

/// CRC-16/MODBUS (Modbus over Serial Line §6.2.2: polynomial 0xA001 reflected, initial
/// 0xFFFF); appended low byte first.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= b as u16;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// An RTU frame: address, PDU, CRC (Modbus over Serial Line §2.5.1.1).
pub fn rtu_frame(unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(pdu.len() + 3);
    f.push(unit);
    f.extend_from_slice(pdu);
    let crc = crc16(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

/// Checks an RTU frame's CRC and returns its address and PDU.
pub fn rtu_split(frame: &[u8]) -> Result<(u8, &[u8]), FrameError> {
    if frame.len() < 4 {
        return Err(FrameError::Short {
            need: 4,
            got: frame.len(),
        });
    }
    let (body, crc) = frame.split_at(frame.len() - 2);
    let received = u16::from_le_bytes([crc[0], crc[1]]);
    let expected = crc16(body);
    if received != expected {
        return Err(FrameError::Crc { expected, received });
    }
    Ok((body[0], &body[1..]))
}

/// How many more bytes an RTU response needs once its first `head` bytes (address,
/// function, and for reads the byte count) are known: `None` until 3 bytes are there.
pub fn rtu_response_len(head: &[u8]) -> Option<usize> {
    let fc = *head.get(1)?;
    if fc & 0x80 != 0 {
        return Some(5); // address, function, code, CRC
    }
    match fc {
        READ_COILS | READ_DISCRETE_INPUTS | READ_HOLDING_REGISTERS | READ_INPUT_REGISTERS => {
            Some(3 + *head.get(2)? as usize + 2)
        }
        _ => Some(8), // address, function, 4 bytes of echo, CRC
    }
}

/// The MBAP header's length (Messaging on TCP/IP Implementation Guide §3.1.3).
pub const MBAP_LEN: usize = 7;

/// A TCP ADU: MBAP header (transaction id, protocol 0, length, unit) and the PDU.
pub fn tcp_frame(transaction: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(MBAP_LEN + pdu.len());
    f.extend_from_slice(&transaction.to_be_bytes());
    f.extend_from_slice(&0u16.to_be_bytes());
    f.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    f.push(unit);
    f.extend_from_slice(pdu);
    f
}

/// A decoded MBAP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mbap {
    /// Transaction identifier (echoed by the server).
    pub transaction: u16,
    /// Unit identifier.
    pub unit: u8,
    /// How many PDU bytes follow the header.
    pub pdu_len: usize,
}

/// Decodes an MBAP header (the first [`MBAP_LEN`] bytes).
pub fn mbap(header: &[u8]) -> Result<Mbap, FrameError> {
    if header.len() < MBAP_LEN {
        return Err(FrameError::Short {
            need: MBAP_LEN,
            got: header.len(),
        });
    }
    let protocol = u16::from_be_bytes([header[2], header[3]]);
    if protocol != 0 {
        return Err(FrameError::WrongProtocol(protocol));
    }
    let len = u16::from_be_bytes([header[4], header[5]]) as usize;
    // A PDU is at most 253 bytes (Application Protocol §4.1), plus the unit byte.
    if !(2..=254).contains(&len) {
        return Err(FrameError::Malformed(format!(
            "MBAP length {len} outside 2..=254"
        )));
    }
    Ok(Mbap {
        transaction: u16::from_be_bytes([header[0], header[1]]),
        unit: header[6],
        pdu_len: len - 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_published_frames() {
        // Read 10 holding registers from 0 at unit 1: "01 03 00 00 00 0A C5 CD".
        let f = rtu_frame(
            1,
            &Request::ReadHoldingRegisters {
                address: 0,
                count: 10,
            }
            .encode(),
        );
        assert_eq!(f, [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD]);
        // The check value of CRC-16/MODBUS over "123456789" is 0x4B37.
        assert_eq!(crc16(b"123456789"), 0x4B37);
        let (unit, pdu) = rtu_split(&f).unwrap();
        assert_eq!((unit, pdu), (1, &f[1..6]));
        let mut bad = f.clone();
        bad[3] ^= 1;
        assert!(matches!(rtu_split(&bad), Err(FrameError::Crc { .. })));
        assert!(matches!(rtu_split(&f[..3]), Err(FrameError::Short { .. })));
    }

    #[test]
    fn application_protocol_examples() {
        // §6.1: read coils 20-38 → 01 00 13 00 13; answer 01 03 CD 6B 05.
        let r = Request::ReadCoils {
            address: 19,
            count: 19,
        };
        assert_eq!(r.encode(), [0x01, 0x00, 0x13, 0x00, 0x13]);
        let Response::Bits(b) = r.decode_response(&[0x01, 0x03, 0xCD, 0x6B, 0x05]).unwrap() else {
            panic!()
        };
        assert_eq!(b.len(), 19);
        assert_eq!(pack_bits(&b), [0xCD, 0x6B, 0x05]);
        // §6.3: read holding registers 108-110 → answer 03 06 02 2B 00 00 00 64.
        let r = Request::ReadHoldingRegisters {
            address: 107,
            count: 3,
        };
        assert_eq!(r.encode(), [0x03, 0x00, 0x6B, 0x00, 0x03]);
        assert_eq!(
            r.decode_response(&[0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64])
                .unwrap(),
            Response::Registers(vec![0x022B, 0, 0x64])
        );
        // §6.5: write coil 173 ON → 05 00 AC FF 00, echoed.
        let r = Request::WriteSingleCoil {
            address: 172,
            value: true,
        };
        assert_eq!(r.encode(), [0x05, 0x00, 0xAC, 0xFF, 0x00]);
        assert_eq!(r.decode_response(&r.encode()).unwrap(), Response::Written);
        // §6.11: write 10 coils from 20 → 0F 00 13 00 0A 02 CD 01.
        let r = Request::WriteMultipleCoils {
            address: 19,
            values: unpack_bits(&[0xCD, 0x01], 10),
        };
        assert_eq!(r.encode(), [0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01]);
        assert_eq!(
            r.decode_response(&[0x0F, 0x00, 0x13, 0x00, 0x0A]).unwrap(),
            Response::Written
        );
        assert_eq!(Request::decode(&r.encode()), Ok(r));
        // §6.12: write 2 registers from 2 → 10 00 01 00 02 04 00 0A 01 02.
        let r = Request::WriteMultipleRegisters {
            address: 1,
            values: vec![0x000A, 0x0102],
        };
        assert_eq!(
            r.encode(),
            [0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02]
        );
        assert_eq!(Request::decode(&r.encode()), Ok(r));
        // §7: exception 02 to a read of input registers.
        let r = Request::ReadInputRegisters {
            address: 8,
            count: 1,
        };
        assert_eq!(
            r.decode_response(&[0x84, 0x02]),
            Err(FrameError::Exception {
                function: 4,
                code: 2
            })
        );
    }

    #[test]
    fn bad_responses_are_errors_not_panics() {
        let r = Request::ReadHoldingRegisters {
            address: 0,
            count: 2,
        };
        for bad in [
            &[][..],
            &[0x03],
            &[0x03, 0x04, 0x00],
            &[0x03, 0x05, 0, 0, 0, 0],
            &[0x03, 0x04, 0, 0, 0, 0, 0],
            &[0x04, 0x04, 0, 0, 0, 0],
            &[0x83],
        ] {
            assert!(r.decode_response(bad).is_err(), "{bad:02x?}");
        }
        let w = Request::WriteSingleRegister {
            address: 1,
            value: 7,
        };
        assert!(matches!(
            w.decode_response(&[0x06, 0x00, 0x01, 0x00, 0x08]),
            Err(FrameError::Malformed(_))
        ));
        assert_eq!(Request::decode(&[0x2B]), Err(0x01));
        assert_eq!(Request::decode(&[0x03, 0x00]), Err(0x03));
        assert_eq!(Request::decode(&[0x03, 0, 0, 0, 126]), Err(0x03));
        assert_eq!(Request::decode(&[0x05, 0, 0, 0x12, 0x34]), Err(0x03));
        for n in 0..16u8 {
            // Any short garbage decodes to an error or a request, never a panic.
            let _ = Request::decode(&[0x0F, 0, 0, 0, n, n, 1]);
            let _ = Request::decode(&[0x10, 0, 0, 0, n, n, 1, 2]);
        }
    }

    #[test]
    fn mbap_header() {
        let f = tcp_frame(0x1234, 9, &[0x03, 0, 0, 0, 1]);
        assert_eq!(f[..7], [0x12, 0x34, 0, 0, 0, 6, 9]);
        assert_eq!(
            mbap(&f).unwrap(),
            Mbap {
                transaction: 0x1234,
                unit: 9,
                pdu_len: 5
            }
        );
        let mut bad = f.clone();
        bad[3] = 1;
        assert_eq!(mbap(&bad), Err(FrameError::WrongProtocol(1)));
        bad = f.clone();
        bad[5] = 0;
        assert!(matches!(mbap(&bad), Err(FrameError::Malformed(_))));
        assert!(rtu_response_len(&[1]).is_none());
        assert_eq!(rtu_response_len(&[1, 0x83]), Some(5));
        assert_eq!(rtu_response_len(&[1, 3, 4]), Some(9));
        assert_eq!(rtu_response_len(&[1, 6]), Some(8));
    }
}
