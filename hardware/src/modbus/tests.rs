//! ModbusInOut against the simulator, over TCP (a thread serving a loopback port) and RTU
//! (a thread playing the device on a pseudo-terminal's master).

use super::sim::{Device, Fault, SimThread};
use super::*;
use crate::serial::testing::FakePort;
use crabby::hardware::DeviceState;

const TIMEOUT: Duration = Duration::from_millis(150);

/// A simulator and a driver bound to it (`_port` keeps the pty's slave open for RTU).
struct Bench {
    sim: SimThread,
    _port: Option<FakePort>,
    kind: &'static str,
}

impl Bench {
    fn tcp() -> Bench {
        Bench {
            sim: SimThread::tcp(Device::new(1, 200)).unwrap(),
            _port: None,
            kind: "tcp",
        }
    }
    fn rtu() -> Bench {
        let mut p = FakePort::new();
        let master = p.master.take().unwrap();
        Bench {
            sim: SimThread::rtu(master, Device::new(1, 200)),
            _port: Some(p),
            kind: "rtu",
        }
    }
    fn driver(&self, name: &str) -> ModbusInOut {
        match (&self.sim.addr, &self._port) {
            (Some(a), _) => ModbusInOut::tcp(name, a.to_string()).timeout(TIMEOUT),
            (None, Some(p)) => {
                ModbusInOut::rtu(name, SerialConfig::new(&p.path, 115_200).timeout(TIMEOUT))
            }
            _ => unreachable!(),
        }
    }
    fn both() -> [Bench; 2] {
        [Bench::tcp(), Bench::rtu()]
    }
}

/// Every type, byte and word order, scale and offset: written by the driver, checked raw
/// in the device, read back.
#[test]
fn every_type_and_order_written_and_read_back() {
    for b in Bench::both() {
        let points = [
            (Point::holding("u16", 0).u16(), 65535.0, vec![0xFFFF]),
            (Point::holding("i16", 1).i16(), -2.0, vec![0xFFFE]),
            (
                Point::holding("i16 swapped", 2)
                    .i16()
                    .byte_order(Order::Little),
                -2.0,
                vec![0xFEFF],
            ),
            (
                Point::holding("ABCD", 10).u32(),
                305419896.0,
                vec![0x1234, 0x5678],
            ),
            (
                Point::holding("CDAB", 12).u32().word_order(Order::Little),
                305419896.0,
                vec![0x5678, 0x1234],
            ),
            (
                Point::holding("BADC", 14).u32().byte_order(Order::Little),
                305419896.0,
                vec![0x3412, 0x7856],
            ),
            (
                Point::holding("DCBA", 16)
                    .u32()
                    .byte_order(Order::Little)
                    .word_order(Order::Little),
                305419896.0,
                vec![0x7856, 0x3412],
            ),
            (
                Point::holding("i32", 18).i32(),
                -100000.0,
                vec![0xFFFE, 0x7960],
            ),
            (Point::holding("f32", 20).f32(), 1.5, vec![0x3FC0, 0x0000]),
            (
                Point::holding("f32 CDAB", 22)
                    .f32()
                    .word_order(Order::Little),
                -1.5,
                vec![0x0000, 0xBFC0],
            ),
            (
                Point::holding("T(C)", 30).i16().scale(0.1).offset(-10.0),
                12.3,
                vec![223],
            ),
        ];
        let mut d = b.driver("dev");
        for (p, _, _) in &points {
            d = d.read_point(p.clone()).write_point(p.clone());
        }
        d = d
            .write_point(Point::coil("c5", 5))
            .write_point(Point::coil("c6", 6))
            .write_point(Point::coil("c20", 20))
            .read_point(Point::coil("c5", 5))
            .read_point(Point::coil("c6", 6))
            .read_point(Point::coil("c20", 20))
            .read_point(Point::discrete_input("di3", 3))
            .read_point(Point::input("in7", 7).i16());
        d.check().unwrap();
        assert_eq!(d.n_commands(), Some(points.len() + 3));
        d.open().unwrap();
        b.sim.with(|dev| {
            dev.discrete_inputs[3] = true;
            dev.input[7] = (-7i16) as u16;
        });
        let mut cmd: Vec<f64> = points.iter().map(|(_, v, _)| *v).collect();
        cmd.extend([1.0, 0.0, 1.0]);
        d.write(&cmd).unwrap();
        b.sim.with(|dev| {
            for (p, _, raw) in &points {
                let a = p.address as usize;
                assert_eq!(
                    &dev.holding[a..a + raw.len()],
                    &raw[..],
                    "{}: {} raw registers",
                    b.kind,
                    p.label
                );
            }
            assert_eq!(
                (dev.coils[5], dev.coils[6], dev.coils[20]),
                (true, false, true)
            );
        });
        let r = d.read().unwrap();
        let mut expected: Vec<f64> = points.iter().map(|(_, v, _)| *v).collect();
        expected.extend([1.0, 0.0, 1.0, 1.0, -7.0]);
        for ((got, want), label) in r.values.iter().zip(&expected).zip(d.channels()) {
            assert!(
                (got - want).abs() < 1e-9,
                "{}: {label} read {got}, wrote {want}",
                b.kind
            );
        }
        // Adjacent registers share requests: 1 write of 0..3 (10), 10..24 (10), 30 (06),
        // coils 5-6 (0F) and 20 (05); reads: holding 0..3, 10..24, 30, coils 5..7 and 20,
        // a discrete input, an input register.
        assert_eq!(d.stats().requests, 5 + 7, "{}: {:?}", b.kind, d.stats());
        assert_eq!(d.status().state, DeviceState::On);
        d.close().unwrap();
        assert_eq!(d.status().state, DeviceState::Off);
    }
}

#[test]
fn out_of_range_commands_are_refused_before_anything_is_sent() {
    let b = Bench::tcp();
    let mut d = b
        .driver("dev")
        .write_point(Point::holding("a", 0).u16())
        .write_point(Point::holding("b", 1).i16().scale(0.5));
    d.open().unwrap();
    for cmd in [[1.0, 20000.0], [-1.0, 0.0], [70000.0, 0.0], [f64::NAN, 0.0]] {
        let e = d.write(&cmd).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfRange, "{cmd:?}: {e}");
    }
    assert_eq!(b.sim.with(|dev| dev.requests), 0);
    d.write(&[7.0, -3.0]).unwrap();
    assert_eq!(
        b.sim.with(|dev| dev.holding[..2].to_vec()),
        [7, (-6i16) as u16]
    );
}

fn reader(b: &Bench) -> ModbusInOut {
    let mut d = b.driver("dev").read_point(Point::holding("x", 4));
    d.open().unwrap();
    b.sim.with(|dev| dev.holding[4] = 42);
    d
}

#[test]
fn bad_frames_silence_slow_answers_and_busy_are_retried() {
    for b in Bench::both() {
        let mut d = reader(&b);
        for (fault, n) in [
            (Fault::BadFrame, 1),
            (Fault::Silence, 2),
            (Fault::Slow(TIMEOUT * 3 / 2), 1),
            (Fault::Exception(0x06), 1),
            (Fault::WrongUnit, 1),
        ] {
            b.sim.with(|dev| dev.inject(fault, n));
            let before = d.stats();
            let r = d
                .read()
                .unwrap_or_else(|e| panic!("{}: {fault:?}: {e}", b.kind));
            assert_eq!(r.values, [42.0], "{}: {fault:?}", b.kind);
            let s = d.stats();
            // A slow answer may cost one retry more on a loaded machine (the retry's own
            // deadline runs while the device still finishes the late answer).
            let retried = s.retries - before.retries;
            assert!(
                retried == n as u64 || (matches!(fault, Fault::Slow(_)) && retried == 2),
                "{}: {fault:?}: {s:?}",
                b.kind
            );
            match fault {
                Fault::BadFrame if b.kind == "rtu" => assert_eq!(s.crc_errors, 1),
                Fault::Silence => assert_eq!(s.timeouts - before.timeouts, 2),
                _ => {}
            }
            assert_eq!(d.status().state, DeviceState::On, "{}: {fault:?}", b.kind);
        }
    }
}

#[test]
fn persistent_failures_fault_the_device_after_the_retries() {
    for b in Bench::both() {
        let mut d = reader(&b).retries(1);
        b.sim.with(|dev| dev.inject(Fault::Silence, 2));
        let e = d.read().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{}: {e}", b.kind);
        assert_eq!(e.origin(), Some("dev"));
        assert!(e.description().contains("after 1 retries"), "{e}");
        assert_eq!(d.status().state, DeviceState::Fault);
        assert!(d.status().text.contains("2 timeouts"), "{}", d.status());
        b.sim.with(|dev| dev.inject(Fault::BadFrame, 2));
        let e = d.read().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Communication, "{}: {e}", b.kind);
    }
}

#[test]
fn exceptions_map_to_error_kinds_without_retry() {
    for b in Bench::both() {
        let mut d = reader(&b);
        for (code, kind) in [
            (0x01, ErrorKind::NotAllowed),
            (0x02, ErrorKind::Configuration),
            (0x03, ErrorKind::OutOfRange),
            (0x04, ErrorKind::Hardware),
            (0x0B, ErrorKind::Timeout),
        ] {
            b.sim.with(|dev| dev.inject(Fault::Exception(code), 1));
            let before = d.stats();
            let e = d.read().unwrap_err();
            assert_eq!(e.kind(), kind, "{}: {e}", b.kind);
            assert!(e.description().contains("exception"), "{e}");
            assert_eq!(
                d.stats().retries,
                before.retries,
                "exception {code} retried"
            );
            assert_eq!(d.status().state, DeviceState::Fault);
        }
        d.close().unwrap();
        // An address past the device's map: its own exception 02.
        let mut d = b.driver("dev").read_point(Point::input("far", 199).u32());
        d.open().unwrap();
        let e = d.read().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
        assert!(e.description().contains("ILLEGAL DATA ADDRESS"), "{e}");
    }
}

#[test]
fn tcp_reconnects_after_a_disconnect_and_faults_when_the_device_is_gone() {
    let mut b = Bench::tcp();
    let mut d = reader(&b);
    b.sim.with(|dev| dev.inject(Fault::Disconnect, 1));
    assert_eq!(d.read().unwrap().values, [42.0]);
    assert_eq!(d.stats().reconnects, 1, "{:?}", d.stats());
    b.sim.stop(); // the device vanishes: connections are refused
    let e = d.read().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
    assert!(e.description().contains("cannot connect"), "{e}");
    assert_eq!(d.status().state, DeviceState::Fault);
}

#[test]
fn tcp_open_fails_when_nothing_listens() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // closed again: nothing listens there
    let mut d = ModbusInOut::tcp("absent", addr.to_string())
        .timeout(TIMEOUT)
        .read_point(Point::holding("x", 0));
    d.check().unwrap();
    let e = d.open().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
    assert!(e.description().contains(&addr.to_string()), "{e}");
    assert_eq!(d.status().state, DeviceState::Fault);
    d.close().unwrap();
}

#[test]
fn rtu_port_vanishing_faults_the_device() {
    let b = Bench::rtu();
    let mut d = reader(&b);
    assert_eq!(d.read().unwrap().values, [42.0]);
    b.sim.with(|dev| dev.inject(Fault::Disconnect, 1));
    let e = d.read().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
    assert!(e.description().contains("disappeared"), "{e}");
    assert_eq!(d.status().state, DeviceState::Fault);
}

#[test]
fn check_rejects_wrong_maps() {
    let b = Bench::tcp();
    let cases: [(ModbusInOut, &str); 7] = [
        (b.driver("d"), "no point"),
        (
            b.driver("d")
                .read_point(Point::holding("x", 0).kind(DataType::Bool)),
            "does not fit",
        ),
        (
            b.driver("d").read_point(Point::coil("x", 0).u16()),
            "does not fit",
        ),
        (b.driver("d").write_point(Point::input("x", 0)), "read-only"),
        (
            b.driver("d").read_point(Point::holding("x", 65535).f32()),
            "past the last address",
        ),
        (
            b.driver("d")
                .read_point(Point::holding("x", 0))
                .read_point(Point::holding("x", 1)),
            "used twice",
        ),
        (
            b.driver("d").read_point(Point::holding("x", 0).scale(0.0)),
            "scale",
        ),
    ];
    for (d, what) in cases {
        let e = d.check().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.description().contains(what), "{what}: {e}");
    }
    let e = ModbusInOut::tcp("d", "nowhere")
        .read_point(Point::holding("x", 0))
        .check()
        .unwrap_err();
    assert!(e.description().contains("host:port"), "{e}");
    let p = FakePort::new();
    let e = ModbusInOut::rtu("d", SerialConfig::new(&p.path, 9600))
        .unit(0)
        .read_point(Point::holding("x", 0))
        .check()
        .unwrap_err();
    assert!(e.description().contains("1 to 247"), "{e}");
}

#[test]
fn a_held_unit_or_port_is_refused_naming_the_holder() {
    for b in Bench::both() {
        let mut first = b.driver("first").read_point(Point::holding("x", 0));
        first.open().unwrap();
        let second = b.driver("second").read_point(Point::holding("x", 0));
        let e = second.check().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAllowed, "{}: {e}", b.kind);
        let me = format!("pid {}", std::process::id());
        assert!(e.description().contains(&me), "{e}");
        assert!(e.description().contains("device 'first'"), "{e}");
        let mut second = second;
        assert_eq!(second.open().unwrap_err().kind(), ErrorKind::NotAllowed);
        first.close().unwrap();
        second.open().unwrap();
        second.read().unwrap();
    }
}
