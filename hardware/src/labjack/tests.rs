//! The T7 driver against the simulated T7 on a loopback port (a thread of the test).

use super::sim::{device, T7Circuit};
use super::*;
use crate::modbus::sim::{Fault, SimThread};
use crabby::hardware::DeviceState;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_millis(150);

fn sim() -> SimThread {
    SimThread::tcp(device(T7Circuit::default())).unwrap()
}

fn driver(sim: &SimThread) -> T7 {
    T7::tcp("t7", sim.addr.unwrap().to_string()).timeout(TIMEOUT)
}

/// Reads until `ok(values)` or `within`; the last values on failure.
fn read_until(d: &mut T7, within: Duration, ok: impl Fn(&[f64]) -> bool) -> Result<Vec<f64>> {
    let end = Instant::now() + within;
    loop {
        let v = d.read()?.values;
        if ok(&v) || Instant::now() > end {
            return Ok(v);
        }
    }
}

#[test]
fn dac0_step_reaches_ain0_through_the_rc_filter() {
    let mut c = T7Circuit::default();
    c.tau_s = 0.2;
    let sim = SimThread::tcp(device(c)).unwrap();
    let mut d = driver(&sim).ain("AIN0", 0).dac(0);
    d.open().unwrap();
    assert_eq!(d.identity().unwrap().0, 470_012_345);
    assert_eq!(d.status().state, DeviceState::On);
    let before = d.read().unwrap().values[0];
    assert!(before.abs() < 0.01, "AIN0 at rest: {before}");
    d.write(&[2.5]).unwrap();
    // The RC filter: values between the two levels on the way, then 2.5 V.
    let mut seen_between = false;
    let end = Instant::now() + Duration::from_secs(3);
    let mut last = 0.0;
    while Instant::now() < end {
        last = d.read().unwrap().values[0];
        if last > 0.2 && last < 2.2 {
            seen_between = true;
        }
        if (last - 2.5).abs() < 0.005 {
            break;
        }
    }
    assert!(seen_between, "no reading on the RC rise");
    assert!(
        (last - 2.5).abs() < 0.005,
        "AIN0 settled at {last}, not 2.5 V"
    );
    d.close().unwrap();
    assert_eq!(d.status().state, DeviceState::Off);
}

#[test]
fn strain_bridge_on_ain1_read_on_the_10mv_range() {
    let sim = sim();
    sim.with(|dev| dev.model_mut::<T7Circuit>().unwrap().strain = 1e-3);
    let mut d = driver(&sim).ain_range("bridge", 1, 0.01).dac(1);
    d.open().unwrap();
    // The range was written to AIN1_RANGE at open.
    let range = sim.with(|dev| words::to_f32(&dev.holding[40002..40004]));
    assert_eq!(range, 0.01);
    d.write(&[5.0]).unwrap();
    let expect = 5.0 * (2e-3 / 4.0) / (1.0 + 1e-3);
    let v = read_until(&mut d, Duration::from_secs(1), |v| {
        (v[0] - expect).abs() < 2e-5
    })
    .unwrap();
    assert!(
        (v[0] - expect).abs() < 2e-5,
        "bridge {} V, expected {expect}",
        v[0]
    );
    // Twice the strain, twice the signal (within the bridge's non-linearity).
    sim.with(|dev| dev.model_mut::<T7Circuit>().unwrap().strain = 2e-3);
    let expect2 = 5.0 * (4e-3 / 4.0) / (1.0 + 2e-3);
    let v = read_until(&mut d, Duration::from_secs(1), |v| {
        (v[0] - expect2).abs() < 2e-5
    })
    .unwrap();
    assert!(
        (v[0] - expect2).abs() < 2e-5,
        "bridge {} V, expected {expect2}",
        v[0]
    );
}

#[test]
fn fio0_drives_fio4_through_the_jumper() {
    let sim = sim();
    let mut d = driver(&sim).dio_state("DIO").dio_output(0);
    d.open().unwrap();
    d.write(&[1.0]).unwrap();
    let s = d.read().unwrap().values[0] as u16;
    assert_eq!(s & 0b1_0001, 0b1_0001, "state {s:#06x}");
    d.write(&[0.0]).unwrap();
    let s = d.read().unwrap().values[0] as u16;
    assert_eq!(s & 0b1_0001, 0, "FIO0 low and FIO4 follows: {s:#06x}");
    assert_eq!(s & 0b10, 0b10, "FIO1 (input, pulled up) reads 1");
}

#[test]
fn both_dacs_written_in_one_request() {
    let sim = sim();
    let mut d = driver(&sim).dac(1).dac(0);
    d.open().unwrap();
    let n0 = sim.with(|dev| dev.requests);
    d.write(&[1.25, 3.5]).unwrap();
    assert_eq!(sim.with(|dev| dev.requests) - n0, 1);
    let (d0, d1) = sim.with(|dev| {
        (
            words::to_f32(&dev.holding[1000..1002]),
            words::to_f32(&dev.holding[1002..1004]),
        )
    });
    assert_eq!((d0, d1), (3.5, 1.25));
}

#[test]
fn a_dac_command_beyond_5v_is_refused_before_sending() {
    let sim = sim();
    let mut d = driver(&sim).dac(0);
    d.open().unwrap();
    let n0 = sim.with(|dev| dev.requests);
    let e = d.write(&[5.5]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutOfRange);
    assert_eq!(sim.with(|dev| dev.requests), n0, "nothing sent");
    assert_eq!(d.write(&[-0.1]).unwrap_err().kind(), ErrorKind::OutOfRange);
}

#[test]
fn another_product_at_the_address_is_refused() {
    let mut c = T7Circuit::default();
    c.product_id = 4.0;
    let sim = SimThread::tcp(device(c)).unwrap();
    let mut d = driver(&sim).ain("AIN0", 0);
    let e = d.open().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert!(e.to_string().contains("PRODUCT_ID 4"), "{e}");
    assert_eq!(d.status().state, DeviceState::Fault);
}

#[test]
fn bad_configurations_rejected_by_check() {
    let sim = sim();
    let cases: Vec<(T7, &str)> = vec![
        (driver(&sim), "nothing to read"),
        (driver(&sim).ain("a", 14), "AIN14"),
        (driver(&sim).ain("a", 0).ain("b", 0), "twice"),
        (driver(&sim).ain("a", 0).ain("a", 1), "twice"),
        (driver(&sim).ain_range("a", 0, 5.0), "ranges"),
        (driver(&sim).dac(2), "DAC2"),
        (driver(&sim).dac(0).dac(0), "twice"),
        (driver(&sim).dio_output(16), "line 16"),
        (T7::tcp("t7", "nowhere").ain("a", 0), "host:port"),
        (driver(&sim).ain("a", 0).retries(11), "retries"),
    ];
    for (d, what) in cases {
        let e = d.check().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
        assert!(e.to_string().contains(what), "{e} does not say {what}");
    }
}

#[test]
fn a_second_driver_on_the_same_t7_is_refused() {
    let sim = sim();
    let mut a = driver(&sim).ain("a", 0);
    a.open().unwrap();
    let e = driver(&sim).ain("a", 0).check().unwrap_err();
    assert!(e.to_string().contains("t7"), "{e}");
    a.close().unwrap();
    driver(&sim).ain("a", 0).check().unwrap();
}

/// Every exception code the protocol has, as the T7 would answer it, maps to its kind.
#[test]
fn exceptions_map_to_error_kinds() {
    let sim = sim();
    let mut d = driver(&sim).ain("a", 0).retries(1);
    d.open().unwrap();
    for (code, kind) in [
        (0x01, ErrorKind::NotAllowed),
        (0x02, ErrorKind::Configuration),
        (0x03, ErrorKind::OutOfRange),
        (0x04, ErrorKind::Hardware),
        (0x08, ErrorKind::Hardware),
        (0x0A, ErrorKind::Communication),
        (0x0B, ErrorKind::Timeout),
    ] {
        sim.with(|dev| dev.inject(Fault::Exception(code), 1));
        let e = d.read().unwrap_err();
        assert_eq!(e.kind(), kind, "exception {code:#04x}: {e}");
        assert_eq!(d.status().state, DeviceState::Fault);
        d.read().unwrap();
        assert_eq!(d.status().state, DeviceState::On, "recovered");
    }
    // Busy (06) and acknowledge (05) are retried: one busy answer is absorbed.
    sim.with(|dev| dev.inject(Fault::Exception(0x06), 1));
    d.read().unwrap();
    // Busy longer than the retries: a timeout.
    sim.with(|dev| dev.inject(Fault::Exception(0x06), 2));
    assert_eq!(d.read().unwrap_err().kind(), ErrorKind::Timeout);
}

/// A real exception from the map: the T7 has no register at AIN14's address.
#[test]
fn an_address_outside_the_map_is_exception_02() {
    let sim = sim();
    let mut d = driver(&sim).ain("a", 0);
    d.open().unwrap();
    // AIN14 would be at 28: not on this T7 (no Mux80).
    d.ains[0].channel = 14;
    let e = d.read().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert!(e.to_string().contains("0x02"), "{e}");
    // Writing a read-only register (PRODUCT_ID) is refused too.
    let e = d
        .link
        .write_registers(PRODUCT_ID, &words::from_f32(4.0))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
}

#[test]
fn silence_bad_frames_and_wrong_unit_are_retried_then_faults() {
    let sim = sim();
    let mut d = driver(&sim).ain("a", 0).retries(2);
    d.open().unwrap();
    // One of each is absorbed by the retries.
    for f in [
        Fault::Silence,
        Fault::BadFrame,
        Fault::WrongUnit,
        Fault::Disconnect,
    ] {
        sim.with(|dev| dev.inject(f, 1));
        d.read()
            .unwrap_or_else(|e| panic!("{f:?} not absorbed: {e}"));
    }
    assert!(d.stats().retries >= 4 && d.stats().timeouts >= 1);
    sim.with(|dev| dev.inject(Fault::Silence, 3));
    let e = d.read().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    sim.with(|dev| dev.inject(Fault::BadFrame, 3));
    let e = d.read().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
    assert_eq!(d.status().state, DeviceState::Fault);
}

#[test]
fn a_vanished_t7_is_a_clear_error() {
    let mut sim = sim();
    let mut d = driver(&sim).ain("a", 0).retries(1);
    d.open().unwrap();
    d.read().unwrap();
    sim.stop();
    let e = d.read().unwrap_err();
    assert!(e.kind() == ErrorKind::Communication, "{e}");
    assert!(e.to_string().contains("t7"), "origin named: {e}");
    assert_eq!(d.status().state, DeviceState::Fault);
    d.close().unwrap();
    assert_eq!(
        d.status().state,
        DeviceState::Fault,
        "the fault stays visible"
    );
    // And a T7 that is not there at all fails open.
    let e = T7::tcp("t7", sim.addr.unwrap().to_string())
        .timeout(TIMEOUT)
        .ain("a", 0)
        .open()
        .unwrap_err();
    assert!(e.to_string().contains("cannot connect"), "{e}");
}
