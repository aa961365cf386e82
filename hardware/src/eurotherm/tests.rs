//! The 3200 driver against the simulated controller and furnace on a pseudo-terminal.

use super::sim::{device, Furnace3200};
use super::*;
use crate::modbus::sim::{Fault, SimThread};
use crate::serial::testing::FakePort;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_millis(150);

/// The simulator on a pty's master (`_port` keeps the slave open).
struct Rig {
    sim: SimThread,
    port: FakePort,
}

fn rig(furnace: Furnace3200) -> Rig {
    let mut port = FakePort::new();
    let sim = SimThread::rtu(port.master.take().unwrap(), device(1, furnace));
    Rig { sim, port }
}

fn fast() -> Furnace3200 {
    let mut f = Furnace3200::default();
    f.tau_s = 1.0;
    f
}

fn driver(r: &Rig) -> Eurotherm3200 {
    Eurotherm3200::new(
        "oven",
        SerialConfig::new(&r.port.path, 19_200).timeout(TIMEOUT),
    )
}

/// Reads until `ok` or `within`; the last reading.
fn read_until(d: &mut Eurotherm3200, within: Duration, ok: impl Fn(&[f64]) -> bool) -> Vec<f64> {
    let end = Instant::now() + within;
    loop {
        let v = d.read().unwrap().values;
        if ok(&v) || Instant::now() > end {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20)); // a polling period, not a wait for an event
    }
}

#[test]
fn a_setpoint_step_heats_the_furnace_under_the_controllers_pid() {
    let r = rig(fast());
    let mut d = driver(&r);
    d.open().unwrap();
    assert_eq!(d.status().state, DeviceState::On);
    let v = d.read().unwrap().values;
    assert!((v[0] - 20.0).abs() < 0.5, "PV at rest {}", v[0]);
    d.write(&[100.0]).unwrap();
    let v = d.read().unwrap().values;
    assert_eq!(v[1], 100.0, "working setpoint");
    assert!(v[2] > 0.0, "the controller heats: OP {}", v[2]);
    let v = read_until(&mut d, Duration::from_secs(20), |v| {
        (v[0] - 100.0).abs() < 1.0
    });
    assert!(
        (v[0] - 100.0).abs() < 1.0,
        "PV settled at {} (SP 100)",
        v[0]
    );
    // Held there by a steady output: K·OP/100 = 100 − 20 → OP ≈ 20 %.
    assert!((v[2] - 20.0).abs() < 5.0, "steady output {} %", v[2]);
    assert!(d.status().text.starts_with("auto"), "{}", d.status().text);
    d.close().unwrap();
}

#[test]
fn manual_mode_drives_the_output_and_the_status_says_so() {
    let r = rig(fast());
    let mut d = driver(&r);
    d.open().unwrap();
    d.set_manual(true).unwrap();
    assert!(d.is_manual().unwrap());
    d.set_manual_output(50.0).unwrap();
    let v = read_until(&mut d, Duration::from_secs(10), |v| v[0] > 150.0);
    assert!(v[0] > 150.0, "50 % heats towards 220 °C: PV {}", v[0]);
    assert_eq!(v[2], 50.0, "working output is the manual one");
    assert_eq!(v[3] as u16 & status_bits::MANUAL, status_bits::MANUAL);
    assert!(d.status().text.starts_with("manual"), "{}", d.status().text);
    d.set_manual(false).unwrap();
    assert!(!d.is_manual().unwrap());
    assert_eq!(
        d.set_manual_output(101.0).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
}

#[test]
fn scaled_integers_follow_the_decimals() {
    let mut f = fast();
    f.decimals = 2;
    let r = rig(f);
    let mut d = driver(&r).decimals(2).setpoint_limits(0.0, 300.0);
    d.open().unwrap();
    d.write(&[50.25]).unwrap();
    assert_eq!(r.sim.with(|dev| dev.holding[TG_SP as usize]), 5025);
    assert_eq!(d.read().unwrap().values[1], 50.25);
}

#[test]
fn setpoints_beyond_the_limits_are_refused() {
    let r = rig(fast());
    // The driver's own limits: nothing sent.
    let mut d = driver(&r).setpoint_limits(0.0, 500.0);
    d.open().unwrap();
    let n0 = r.sim.with(|dev| dev.requests);
    assert_eq!(d.write(&[600.0]).unwrap_err().kind(), ErrorKind::OutOfRange);
    assert_eq!(r.sim.with(|dev| dev.requests), n0);
    d.close().unwrap();
    // The controller's range (RNG.HI 1000): exception 03.
    let mut d = driver(&r).setpoint_limits(0.0, 2000.0);
    d.open().unwrap();
    let e = d.write(&[1500.0]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutOfRange, "{e}");
    assert!(e.to_string().contains("0x03"), "{e}");
    assert_ne!(
        d.status().state,
        DeviceState::Fault,
        "a refused value is not a fault"
    );
}

#[test]
fn a_sensor_break_is_a_fault_and_clears() {
    let r = rig(fast());
    let mut d = driver(&r);
    d.open().unwrap();
    r.sim
        .with(|dev| dev.model_mut::<Furnace3200>().unwrap().sensor_break = true);
    let e = d.read().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Hardware);
    assert!(e.to_string().contains("sensor break"), "{e}");
    assert_eq!(d.status().state, DeviceState::Fault);
    r.sim
        .with(|dev| dev.model_mut::<Furnace3200>().unwrap().sensor_break = false);
    d.read().unwrap();
    assert_eq!(d.status().state, DeviceState::On);
}

#[test]
fn an_active_alarm_is_an_alarm_state_and_readings_go_on() {
    let r = rig(fast());
    let mut d = driver(&r);
    d.open().unwrap();
    // Alarm 1 (full scale high) at 50 °C, then heat past it.
    r.sim.with(|dev| dev.holding[13] = 500);
    d.write(&[80.0]).unwrap();
    let v = read_until(&mut d, Duration::from_secs(10), |v| v[0] > 55.0);
    assert!(v[0] > 55.0);
    assert_eq!(v[3] as u16 & 1, 1, "status B0");
    assert_eq!(d.status().state, DeviceState::Alarm);
    assert!(d.status().text.contains("alarm 1"), "{}", d.status().text);
}

#[test]
fn crc_errors_silence_and_exceptions() {
    let r = rig(fast());
    let mut d = driver(&r).retries(2);
    d.open().unwrap();
    for f in [Fault::BadFrame, Fault::Silence, Fault::WrongUnit] {
        r.sim.with(|dev| dev.inject(f, 1));
        d.read()
            .unwrap_or_else(|e| panic!("{f:?} not absorbed: {e}"));
    }
    assert!(d.stats().crc_errors >= 1 && d.stats().timeouts >= 1);
    r.sim.with(|dev| dev.inject(Fault::BadFrame, 3));
    let e = d.read().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
    assert!(e.to_string().contains("CRC"), "{e}");
    assert_eq!(d.status().state, DeviceState::Fault);
    r.sim.with(|dev| dev.inject(Fault::Silence, 3));
    assert_eq!(d.read().unwrap_err().kind(), ErrorKind::Timeout);
    for (code, kind) in [
        (0x01, ErrorKind::NotAllowed),
        (0x02, ErrorKind::Configuration),
        (0x03, ErrorKind::OutOfRange),
        (0x04, ErrorKind::Hardware),
    ] {
        r.sim.with(|dev| dev.inject(Fault::Exception(code), 1));
        assert_eq!(d.read().unwrap_err().kind(), kind, "exception {code}");
    }
    d.read().unwrap();
    // A parameter the controller does not have: exception 02 from its map.
    let e = d.link.read_table(Table::Holding, 10, 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    // A read-only one written.
    let e = d.link.write_registers(WKG_SP, &[0]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
}

#[test]
fn a_vanished_controller_is_a_clear_error() {
    let mut r = rig(fast());
    let mut d = driver(&r).retries(1);
    d.open().unwrap();
    d.read().unwrap();
    r.sim.stop(); // the simulator closes the pty master: the port vanishes
    let e = d.read().unwrap_err();
    assert!(e.kind() == ErrorKind::Communication, "{e}");
    assert!(e.to_string().contains("oven"), "{e}");
    assert_eq!(d.status().state, DeviceState::Fault);
}

#[test]
fn a_silent_controller_fails_open() {
    let mut port = FakePort::new();
    let _master = port.master.take(); // nobody answers
    let mut d = Eurotherm3200::new(
        "oven",
        SerialConfig::new(&port.path, 19_200).timeout(TIMEOUT),
    )
    .retries(0);
    let e = d.open().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(d.status().state, DeviceState::Fault);
}

#[test]
fn bad_configurations_rejected_by_check() {
    let r = rig(fast());
    for (d, what) in [
        (driver(&r).decimals(3), "decimals"),
        (driver(&r).setpoint_limits(100.0, 50.0), "limits"),
        (driver(&r).setpoint_limits(0.0, 4000.0), "limits"),
        (driver(&r).unit(0), "unicast"),
        (driver(&r).unit(248), "unicast"),
        (driver(&r).labels("T", "T", "OP", "st"), "twice"),
    ] {
        let e = d.check().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
        assert!(e.to_string().contains(what), "{e} does not say {what}");
    }
    let mut a = driver(&r);
    a.open().unwrap();
    let e = driver(&r).check().unwrap_err();
    assert!(e.to_string().contains("in use"), "the port is held: {e}");
}
