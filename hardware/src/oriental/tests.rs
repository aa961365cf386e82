//! The AZ driver against the simulated driver and motor on a pseudo-terminal.

use super::sim::{device, AzSim};
use super::*;
use crate::modbus::sim::{Fault, SimThread};
use crate::serial::testing::FakePort;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_millis(150);

struct Rig {
    sim: SimThread,
    port: FakePort,
}

fn rig(motor: AzSim) -> Rig {
    let mut port = FakePort::new();
    let sim = SimThread::rtu(port.master.take().unwrap(), device(1, motor));
    Rig { sim, port }
}

/// 100 steps/mm, 200 mm/s², up to 20 mm/s, travel ±50 mm.
fn driver(r: &Rig) -> AzMotor {
    AzMotor::new(
        "axis",
        SerialConfig::new(&r.port.path, 115_200).timeout(TIMEOUT),
    )
    .steps_per_mm(100.0)
    .accel(200.0)
    .travel(-50.0, 50.0)
    .max_speed(20.0)
}

/// Samples (t, position, speed, status) until `done` or `within`.
fn follow(
    m: &mut AzMotor,
    within: Duration,
    done: impl Fn(f64, f64, &Status) -> bool,
) -> Vec<(f64, f64, f64, DeviceState)> {
    let t0 = Instant::now();
    let mut out = Vec::new();
    while t0.elapsed() < within {
        m.poll().unwrap();
        let (p, v) = m.position_and_speed().unwrap();
        let v = v.unwrap();
        let s = m.status();
        out.push((t0.elapsed().as_secs_f64(), p, v, s.state));
        if done(p, v, &s) {
            break;
        }
    }
    out
}

#[test]
fn a_position_move_follows_a_trapezoid_and_ends_in_position() {
    let r = rig(AzSim::default());
    let mut m = driver(&r);
    m.open().unwrap();
    assert_eq!(m.status().state, DeviceState::On);
    m.set_position(10.0, Some(20.0)).unwrap();
    let trace = follow(&mut m, Duration::from_secs(5), |p, _, s| {
        s.state == DeviceState::On && (p - 10.0).abs() < 1e-9
    });
    let last = trace.last().unwrap();
    assert_eq!(last.1, 10.0, "ends on the target");
    assert_eq!(m.status().text, "in position");
    let vmax = trace.iter().map(|t| t.2).fold(0.0, f64::max);
    assert!((vmax - 20.0).abs() < 0.05, "cruise at 20 mm/s: {vmax}");
    assert!(trace.iter().any(|t| t.3 == DeviceState::Moving));
    // Accelerates at 200 mm/s²: 0.1 s to cruise; the first samples are below cruise, and the
    // speed never jumps faster than the acceleration allows (with a sampling margin).
    // (Sample times are taken after each answer: a margin of 20 ms of acceleration covers a
    // descheduled test thread.)
    let moving: Vec<_> = trace.iter().filter(|t| t.2 > 0.0).collect();
    let first = moving.first().unwrap();
    assert!(
        first.2 <= 200.0 * (first.0 + 0.02),
        "starts slow: {first:?}"
    );
    for w in moving.windows(2) {
        let dv = (w[1].2 - w[0].2).abs();
        let dt = w[1].0 - w[0].0;
        assert!(
            dv <= 200.0 * (dt + 0.02),
            "speed jumped {dv} mm/s in {dt} s"
        );
    }
    // 10 mm at 20 mm/s with 0.1 s ramps: 0.6 s.
    assert!(last.0 > 0.55 && last.0 < 3.0, "took {} s", last.0);
}

#[test]
fn speed_control_moves_both_ways_and_zero_stops() {
    let r = rig(AzSim::default());
    let mut m = driver(&r);
    m.open().unwrap();
    m.set_speed(-15.0).unwrap();
    let t = follow(&mut m, Duration::from_secs(2), |_, v, _| {
        (v + 15.0).abs() < 0.02
    });
    assert!((t.last().unwrap().2 + 15.0).abs() < 0.02, "{:?}", t.last());
    assert!(t.last().unwrap().1 < 0.0, "moving backwards");
    m.set_speed(0.0).unwrap();
    let t = follow(&mut m, Duration::from_secs(2), |_, v, s| {
        v == 0.0 && s.state == DeviceState::On
    });
    assert_eq!(t.last().unwrap().2, 0.0, "stopped");
    let stopped_at = t.last().unwrap().1;
    // Stopped, not at the travel's end.
    assert!(stopped_at > -50.0, "{stopped_at}");
    m.set_speed(10.0).unwrap();
    let t = follow(&mut m, Duration::from_secs(2), |p, _, _| {
        p > stopped_at + 1.0
    });
    assert!(
        t.last().unwrap().1 > stopped_at + 1.0,
        "moves again after the stop"
    );
    assert_eq!(m.set_speed(25.0).unwrap_err().kind(), ErrorKind::OutOfRange);
    m.stop().unwrap();
}

#[test]
fn speed_control_ends_at_the_travels_end_whatever_is_resent() {
    // Speed mode is a move to the travel's end: sent again every loop (as the Machine
    // does), it must still end exactly there, never past it.
    let r = rig(AzSim::default());
    let mut m = driver(&r).travel(-2.0, 2.0);
    m.open().unwrap();
    let end = Instant::now() + Duration::from_secs(3);
    let mut max_p = f64::MIN;
    let p = loop {
        m.set_speed(20.0).unwrap();
        m.poll().unwrap();
        let (p, v) = m.position_and_speed().unwrap();
        max_p = max_p.max(p);
        if v == Some(0.0) && p > 1.0 {
            break p;
        }
        assert!(Instant::now() < end, "still moving at {p} mm");
    };
    assert_eq!(p, 2.0, "stopped at the travel's end");
    assert!(max_p <= 2.0, "went past the travel's end: {max_p} mm");
    // And back the other way to the other end.
    m.set_speed(-20.0).unwrap();
    let t = follow(&mut m, Duration::from_secs(3), |_, v, s| {
        v == 0.0 && s.state == DeviceState::On
    });
    assert_eq!(t.last().unwrap().1, -2.0);
    assert!(t.iter().all(|x| x.1 >= -2.0), "went past -2 mm");
}

#[test]
fn stop_decelerates_before_the_target() {
    let r = rig(AzSim::default());
    let mut m = driver(&r);
    m.open().unwrap();
    m.set_position(40.0, Some(20.0)).unwrap();
    follow(&mut m, Duration::from_secs(2), |p, _, _| p > 5.0);
    m.stop().unwrap();
    let t = follow(&mut m, Duration::from_secs(2), |_, v, _| v == 0.0);
    let (_, p, v, _) = *t.last().unwrap();
    assert_eq!(v, 0.0);
    // At 20 mm/s and 200 mm/s², the stop takes 1 mm: far from 40.
    assert!(p > 5.0 && p < 15.0, "stopped at {p}");
}

#[test]
fn an_overload_alarm_faults_and_resets_once_gone() {
    let r = rig(AzSim::default());
    let mut m = driver(&r);
    m.open().unwrap();
    m.set_speed(10.0).unwrap();
    r.sim
        .with(|d| d.model_mut::<AzSim>().unwrap().overload = true);
    let e = m.poll().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Hardware);
    assert!(e.to_string().contains("0x30 (overload)"), "{e}");
    assert_eq!(m.status().state, DeviceState::Fault);
    assert_eq!(m.speed().unwrap(), 0.0, "the alarm stopped the motor");
    // The cause is still there: the reset does not clear it.
    assert_eq!(m.reset_alarm().unwrap_err().kind(), ErrorKind::Hardware);
    // Operations are ignored in alarm.
    m.set_position(5.0, None).unwrap();
    assert_eq!(m.speed().unwrap(), 0.0);
    r.sim
        .with(|d| d.model_mut::<AzSim>().unwrap().overload = false);
    m.reset_alarm().unwrap();
    assert_eq!(m.status().state, DeviceState::On);
    m.set_position(1.0, Some(10.0)).unwrap();
    let t = follow(&mut m, Duration::from_secs(2), |p, _, s| {
        p == 1.0 && s.state == DeviceState::On
    });
    assert_eq!(t.last().unwrap().1, 1.0);
}

#[test]
fn software_overtravel_and_operation_data_errors_are_alarms() {
    let mut motor = AzSim::default();
    motor.soft_limits = (-500.0, 500.0); // ±5 mm
    let r = rig(motor);
    let mut m = driver(&r);
    m.open().unwrap();
    m.set_position(8.0, Some(20.0)).unwrap();
    let end = Instant::now() + Duration::from_secs(3);
    let e = loop {
        match m.poll() {
            Err(e) => break e,
            Ok(()) if Instant::now() > end => panic!("no overtravel alarm"),
            Ok(()) => {}
        }
    };
    assert!(e.to_string().contains("software overtravel"), "{e}");
    assert_eq!(m.position().unwrap(), 5.0, "stopped at the limit");
    m.reset_alarm().unwrap();
    // Speed 0 in a direct data operation: operation data error (70h).
    m.direct_operation(ABSOLUTE, 0, 0, 1000, 1000).unwrap();
    let e = m.poll().unwrap_err();
    assert!(e.to_string().contains("0x70 (operation data error)"), "{e}");
    m.reset_alarm().unwrap();
    // A value beyond a register's range: exception 03, nothing starts.
    let e = m
        .direct_operation(ABSOLUTE, 0, 100, 1000, 5000)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutOfRange);
    assert!(e.to_string().contains("0x03"), "{e}");
    m.poll().unwrap();
}

#[test]
fn a_warning_is_the_alarm_state() {
    let r = rig(AzSim::default());
    let mut m = driver(&r);
    m.open().unwrap();
    r.sim.with(|d| d.model_mut::<AzSim>().unwrap().info = true);
    m.poll().unwrap();
    assert_eq!(m.status().state, DeviceState::Alarm);
}

#[test]
fn commands_are_checked_before_sending() {
    let r = rig(AzSim::default());
    let mut m = driver(&r);
    m.open().unwrap();
    let n0 = r.sim.with(|d| d.requests);
    for e in [
        m.set_position(60.0, None).unwrap_err(),
        m.set_position(10.0, Some(30.0)).unwrap_err(),
        m.set_position(10.0, Some(0.0)).unwrap_err(),
        m.set_speed(f64::NAN).unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::OutOfRange, "{e}");
    }
    assert_eq!(r.sim.with(|d| d.requests), n0, "nothing sent");
    assert_ne!(m.status().state, DeviceState::Fault);
}

#[test]
fn line_faults_and_exceptions() {
    let r = rig(AzSim::default());
    let mut m = driver(&r).retries(2);
    m.open().unwrap();
    for f in [Fault::BadFrame, Fault::Silence, Fault::WrongUnit] {
        r.sim.with(|d| d.inject(f, 1));
        m.position()
            .unwrap_or_else(|e| panic!("{f:?} not absorbed: {e}"));
    }
    r.sim.with(|d| d.inject(Fault::BadFrame, 3));
    assert_eq!(m.position().unwrap_err().kind(), ErrorKind::Communication);
    assert_eq!(m.status().state, DeviceState::Fault);
    r.sim.with(|d| d.inject(Fault::Silence, 3));
    assert_eq!(m.poll().unwrap_err().kind(), ErrorKind::Timeout);
    for (code, kind) in [
        (0x01, ErrorKind::NotAllowed),
        (0x02, ErrorKind::Configuration),
        (0x03, ErrorKind::OutOfRange),
        (0x04, ErrorKind::Hardware),
    ] {
        r.sim.with(|d| d.inject(Fault::Exception(code), 1));
        assert_eq!(m.poll().unwrap_err().kind(), kind, "exception {code}");
    }
    m.poll().unwrap();
    assert_eq!(m.status().state, DeviceState::On, "recovered");
    // An address outside the map.
    let e = m.link.read_table(Table::Holding, 0x0100, 2).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
}

#[test]
fn a_vanished_driver_is_a_clear_error() {
    let mut r = rig(AzSim::default());
    let mut m = driver(&r).retries(1);
    m.open().unwrap();
    r.sim.stop();
    let e = m.poll().unwrap_err();
    assert!(e.kind() == ErrorKind::Communication, "{e}");
    assert!(e.to_string().contains("axis"), "{e}");
    assert_eq!(m.status().state, DeviceState::Fault);
    // The Machine's stop in `finish` reports it too, without hanging.
    assert!(m.stop().is_err());
    m.close().unwrap();
}

#[test]
fn bad_configurations_rejected_by_check() {
    let r = rig(AzSim::default());
    for (m, what) in [
        (driver(&r).steps_per_mm(0.0), "above 0"),
        (driver(&r).accel(-1.0), "above 0"),
        (driver(&r).current(150.0), "current"),
        (driver(&r).travel(10.0, -10.0), "travel"),
        (driver(&r).steps_per_mm(1e6).max_speed(10.0), "Hz"),
        (driver(&r).unit(0), "unicast"),
    ] {
        let e = m.check().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
        assert!(e.to_string().contains(what), "{e} does not say {what}");
    }
}

#[test]
fn a_command_sent_again_every_loop_is_sent_once() {
    // The Machine sends its latest command every loop: a direct data operation is 16
    // registers (about 6 ms at 115 200 baud) and speed 0 is STOP on then off, so the same
    // command is sent once, until a new one, an error, a reset or a new open.
    let r = rig(AzSim::default());
    let mut m = driver(&r);
    m.open().unwrap();
    let requests = || r.sim.with(|d| d.requests);
    let sent_by = |m: &mut AzMotor, f: &dyn Fn(&mut AzMotor) -> Result<()>| {
        let n = requests();
        for _ in 0..10 {
            f(m).unwrap();
        }
        requests() - n
    };
    assert_eq!(sent_by(&mut m, &|m| m.set_speed(10.0)), 1, "one operation");
    assert_eq!(sent_by(&mut m, &|m| m.set_speed(-10.0)), 1, "a new speed");
    assert_eq!(sent_by(&mut m, &|m| m.set_speed(0.0)), 2, "STOP on, off");
    assert_eq!(
        sent_by(&mut m, &|m| m.set_position(3.0, Some(10.0))),
        1,
        "one move"
    );
    assert_eq!(
        sent_by(&mut m, &|m| m.set_position(3.0, Some(5.0))),
        1,
        "another speed is another move"
    );
    // stop is never skipped, and a speed after it is sent again.
    assert_eq!(sent_by(&mut m, &|m| m.stop()), 20, "stop every time");
    assert_eq!(sent_by(&mut m, &|m| m.set_speed(10.0)), 1);
    // After an error (here a refused value, and a lost answer) the command is sent again:
    // nothing says whether the driver took it.
    r.sim.with(|d| d.inject(Fault::Silence, 3));
    m.set_speed(10.0).unwrap();
    m.poll().unwrap_err();
    assert_eq!(sent_by(&mut m, &|m| m.set_speed(10.0)), 1, "after an error");
    m.set_speed(25.0).unwrap_err();
    assert_eq!(
        sent_by(&mut m, &|m| m.set_speed(10.0)),
        1,
        "after a refusal"
    );
    // An alarm ignores the operation: sent again after the reset.
    r.sim
        .with(|d| d.model_mut::<AzSim>().unwrap().overload = true);
    m.poll().unwrap_err();
    r.sim
        .with(|d| d.model_mut::<AzSim>().unwrap().overload = false);
    m.reset_alarm().unwrap();
    let n = requests();
    m.set_speed(10.0).unwrap();
    assert_eq!(requests() - n, 1, "after an alarm reset");
    let t = follow(&mut m, Duration::from_secs(2), |_, v, _| v > 5.0);
    assert!(t.last().unwrap().2 > 5.0, "moving again: {:?}", t.last());
    // And after a new open.
    m.close().unwrap();
    m.open().unwrap();
    assert_eq!(sent_by(&mut m, &|m| m.set_speed(10.0)), 1, "after a reopen");
    m.stop().unwrap();
}
