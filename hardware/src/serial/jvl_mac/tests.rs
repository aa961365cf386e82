//! The JVL MAC driver against the simulated motor on a pty: the manual's example
//! telegrams byte for byte, speed and position control with the motor model, error bits,
//! silence, corrupted replies, a vanished motor, and configurations refused before opening.

use super::sim::{Fault, Motor, SimThread, MAX_P_IST, MIN_P_IST};
use super::*;
use crate::serial::testing::FakePort;
use crabby::hardware::DeviceState;

/// 1000 counts per unit, MAC050–141 sample period.
const CPU: f64 = 1000.0;
const TS: f64 = 1.92e-3;

fn setup(timeout_ms: u64) -> (FakePort, SimThread, JvlMac) {
    let mut p = FakePort::new();
    let sim = SimThread::new(p.master.take().expect("master"), Motor::new(8, TS));
    let m = JvlMac::new(
        "mac",
        SerialConfig::new(&p.path, 19200).timeout(Duration::from_millis(timeout_ms)),
        CPU,
    )
    .address(8)
    .sample_period_s(TS)
    .acceleration(200.0)
    .default_speed(20.0);
    (p, sim, m)
}

/// Waits (at most 5 s) for `f` to hold on the driver, polling it.
fn wait_for(m: &mut JvlMac, what: &str, mut f: impl FnMut(&mut JvlMac) -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while !f(m) {
        assert!(Instant::now() < end, "never reached: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn telegrams_match_the_manuals_examples() {
    // §6.11.2 example 1: 600 (258h) to register 5 (16 bits), motor address 8.
    assert_eq!(
        write_telegram(8, 5, &600i16.to_le_bytes()),
        [
            0x52, 0x52, 0x52, 0x08, 0xF7, 0x05, 0xFA, 0x02, 0xFD, 0x58, 0xA7, 0x02, 0xFD, 0xAA,
            0xAA
        ]
    );
    // §6.11.2 example 2: 230 000 (38270h) to register 3 (32 bits), motor address 7.
    assert_eq!(
        write_telegram(7, 3, &230_000i32.to_le_bytes()),
        [
            0x52, 0x52, 0x52, 0x07, 0xF8, 0x03, 0xFC, 0x04, 0xFB, 0x70, 0x8F, 0x82, 0x7D, 0x03,
            0xFC, 0x00, 0xFF, 0xAA, 0xAA
        ]
    );
    // §6.11.3 (block table): read register 5 of motor 8, and the reply holding 600.
    assert_eq!(
        read_telegram(8, 5),
        [0x50, 0x50, 0x50, 0x08, 0xF7, 0x05, 0xFA, 0xAA, 0xAA]
    );
    let reply = [
        0x52, 0x52, 0x52, 0x00, 0xFF, 0x05, 0xFA, 0x04, 0xFB, 0x58, 0xA7, 0x02, 0xFD, 0x00, 0xFF,
        0x00, 0xFF, 0xAA, 0xAA,
    ];
    assert_eq!(reply_telegram(5, 600), reply);
    assert_eq!(decode_reply(&reply, 5), Ok(600));
    assert_eq!(decode_reply(&reply, 3), Err(ReplyError::Register(5)));
    let mut bad = reply;
    bad[12] ^= 0x10;
    assert_eq!(decode_reply(&bad, 5), Err(ReplyError::Inverse(11)));
    assert_eq!(
        reply_telegram(10, -5)[9..17],
        [0xFB, 0x04, 0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00]
    );
}

#[test]
fn speed_then_position_control_follow_the_motor_model() {
    let (_p, sim, mut m) = setup(300);
    m.check().unwrap();
    m.open().unwrap();
    assert_eq!(sim.with(|s| s.regs[&MODE_REG]), mode::VELOCITY);
    // A_SOLL = 200 units/s² · 1000 counts · Ts² · 16 = 11.8 → 12.
    assert_eq!(sim.with(|s| s.regs[&A_SOLL]), 12);
    m.set_speed(30.0).unwrap();
    // V_SOLL = 30 · 1000 · 1.92e-3 · 16 = 921.6 → 922 (1/16 count per sample).
    assert_eq!(sim.with(|s| s.regs[&V_SOLL]), 922);
    assert_eq!(m.status().state, DeviceState::Moving);
    // The speed ramps up at the acceleration to the command (±1 count per sample of
    // rounding in V_IST).
    wait_for(&mut m, "speed reached", |m| {
        (m.speed().unwrap() - 30.0).abs() < 0.6
    });
    let p1 = m.position().unwrap();
    wait_for(&mut m, "moving forward", |m| {
        m.position().unwrap() > p1 + 1.0
    });
    m.poll().unwrap();
    // Position mode: goes to -5 units and stops there, in position.
    m.set_position(-5.0, Some(40.0)).unwrap();
    assert_eq!(
        sim.with(|s| (s.regs[&P_SOLL], s.regs[&MODE_REG])),
        (-5000, mode::POSITION)
    );
    wait_for(&mut m, "in position", |m| {
        m.position().unwrap() == -5.0 && m.speed().unwrap() == 0.0
    });
    let bits = m.check_errors().unwrap();
    assert_ne!(
        bits & (1 << IN_POSITION_BIT),
        0,
        "in-position bit: {bits:#x}"
    );
    // The status the Machine records follows: in position, no longer MOVING.
    m.last_poll = None;
    m.poll().unwrap();
    assert_eq!(m.status().state, DeviceState::On, "{:?}", m.status());
    // The default speed when none is given.
    m.set_position(0.0, None).unwrap();
    assert_eq!(
        sim.with(|s| s.regs[&V_SOLL]),
        (20.0 * CPU * TS * 16.0_f64).round() as i32
    );
    m.stop().unwrap();
    assert_eq!(
        sim.with(|s| (s.regs[&V_SOLL], s.regs[&MODE_REG])),
        (0, mode::VELOCITY)
    );
    m.close().unwrap();
    assert_eq!(sim.with(|s| s.regs[&MODE_REG]), mode::PASSIVE);
    assert_eq!(m.status().state, DeviceState::Off);
}

#[test]
fn an_error_bit_is_a_hardware_fault_and_open_clears_it() {
    let (_p, sim, mut m) = setup(300);
    m.open().unwrap();
    m.set_speed(10.0).unwrap();
    sim.with(|s| s.faults.push_back(Fault::Error(1)));
    // The next telegram raises the follow error; poll reports it.
    let e = m.check_errors().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Hardware, "{e}");
    assert!(e.description().contains("follow error"), "{e}");
    assert_eq!(m.status().state, DeviceState::Fault);
    assert_eq!(sim.with(|s| s.regs[&MODE_REG]), mode::PASSIVE);
    // Commands are refused by the driver while the error stands, and by the motor (stop
    // is still written: MODE_REG = 1): it stays passive.
    assert_eq!(m.set_speed(10.0).unwrap_err().kind(), ErrorKind::Hardware);
    m.stop().unwrap();
    assert_eq!(sim.with(|s| s.regs[&MODE_REG]), mode::PASSIVE);
    m.close().unwrap();
    // A new open clears ERR_STAT.
    m.open().unwrap();
    assert_eq!(m.check_errors().unwrap() & (1 << 1), 0);
    assert_eq!(sim.with(|s| s.regs[&MODE_REG]), mode::VELOCITY);
}

#[test]
fn leaving_the_position_limits_stops_the_motor_with_an_error() {
    let (_p, sim, mut m) = setup(300);
    sim.with(|s| {
        s.regs.insert(MIN_P_IST, -1000);
        s.regs.insert(MAX_P_IST, 2000);
    });
    m.open().unwrap();
    m.set_speed(50.0).unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    let e = loop {
        match m.check_errors() {
            Ok(_) => {
                assert!(Instant::now() < end, "the limit was never reported");
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => break e,
        }
    };
    assert!(e.description().contains("position limit"), "{e}");
    let p = sim.with(|s| s.position_counts());
    assert!(p > 2000.0, "stopped past the limit: {p}");
}

#[test]
fn silence_corruption_and_a_vanished_motor() {
    let (_p, sim, mut m) = setup(150);
    m.open().unwrap();
    // No reply: Timeout.
    sim.with(|s| s.faults.push_back(Fault::Silence));
    let e = m.position().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(m.status().state, DeviceState::Fault);
    // No accept: Timeout too.
    sim.with(|s| s.faults.push_back(Fault::Silence));
    assert_eq!(m.set_speed(1.0).unwrap_err().kind(), ErrorKind::Timeout);
    // One corrupted reply is asked again; two are an error.
    sim.with(|s| s.faults.push_back(Fault::CorruptReply));
    assert_eq!(m.position().unwrap(), 0.0);
    sim.with(|s| s.faults.extend([Fault::CorruptReply, Fault::CorruptReply]));
    let e = m.position().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
    assert!(e.description().contains("corrupted"), "{e}");
    // The motor ignores telegrams for another address: no reply.
    let mut other = JvlMac::new("other", m.serial.clone(), CPU).address(9);
    m.close().unwrap();
    other.open().unwrap_err();
    // Vanished.
    m.open().unwrap();
    sim.with(|s| s.faults.push_back(Fault::Vanish));
    let e = m.position().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
    assert!(e.description().contains("disappeared"), "{e}");
}

#[test]
fn bad_configurations_are_refused_before_opening() {
    let p = FakePort::new();
    let base = || JvlMac::new("mac", SerialConfig::new(&p.path, 19200), CPU);
    base().check().unwrap();
    for (m, what) in [
        (base().address(0), "master"),
        (base().address(255), "broadcast"),
        (
            JvlMac::new("mac", SerialConfig::new(&p.path, 19200), 0.0),
            "counts_per_unit",
        ),
        (base().sample_period_s(0.5), "sample_period_s"),
        (base().acceleration(0.0), "A_SOLL"),
        (base().default_speed(1e6), "V_SOLL"),
    ] {
        let e = m.check().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
        assert!(e.description().contains(what), "{what}: {e}");
    }
    let mut m = base();
    assert_eq!(m.to_v_soll(1e6).unwrap_err().kind(), ErrorKind::OutOfRange);
    assert_eq!(m.set_speed(1.0).unwrap_err().kind(), ErrorKind::NotAllowed);
}

#[test]
fn a_command_sent_again_every_loop_is_not_written_again() {
    // The Machine sends its latest command every loop; at 19 200 baud each register write
    // takes ~12 ms, so writing the same two or three registers again every loop would slow
    // the loop to ~20 Hz for nothing.
    let (_p, sim, mut m) = setup(300);
    m.open().unwrap();
    m.set_speed(10.0).unwrap();
    let n = sim.with(|s| s.telegrams);
    for _ in 0..5 {
        m.set_speed(10.0).unwrap();
    }
    assert_eq!(sim.with(|s| s.telegrams), n, "the same speed written again");
    m.set_position(3.0, Some(20.0)).unwrap();
    let n = sim.with(|s| s.telegrams);
    for _ in 0..5 {
        m.set_position(3.0, Some(20.0)).unwrap();
    }
    assert_eq!(sim.with(|s| s.telegrams), n, "the same move written again");
    // A new command is written; stop is always written.
    m.set_position(2.0, Some(20.0)).unwrap();
    assert_eq!(sim.with(|s| s.regs[&P_SOLL]), 2000);
    m.stop().unwrap();
    let n = sim.with(|s| s.telegrams);
    m.stop().unwrap();
    assert!(sim.with(|s| s.telegrams) > n, "stop written every time");
    // After an error the command is written again (the motor went passive).
    m.set_speed(5.0).unwrap();
    sim.with(|s| s.faults.push_back(Fault::Error(1)));
    m.check_errors().unwrap_err();
    m.close().unwrap();
    m.open().unwrap();
    m.set_speed(5.0).unwrap();
    assert_eq!(
        sim.with(|s| (s.regs[&V_SOLL], s.regs[&MODE_REG])),
        (m.to_v_soll(5.0).unwrap(), mode::VELOCITY)
    );
}

#[test]
fn a_command_after_a_motor_error_is_refused_and_the_status_stays_fault() {
    // An error bit makes the motor passive until open clears ERR_STAT: a speed or a
    // position sent then would not move it, so it is refused (without writing anything),
    // and the status stays FAULT instead of showing MOVING until the next poll.
    let (_p, sim, mut m) = setup(300);
    m.open().unwrap();
    m.set_speed(10.0).unwrap();
    sim.with(|s| s.faults.push_back(Fault::Error(1)));
    let e = m.poll().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Hardware, "{e}");
    let n = sim.with(|s| s.telegrams);
    let e = m.set_speed(5.0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Hardware, "{e}");
    assert!(e.description().contains("follow error"), "{e}");
    assert_eq!(m.status().state, DeviceState::Fault);
    let e = m.set_position(1.0, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Hardware, "{e}");
    assert_eq!(m.status().state, DeviceState::Fault);
    // The poll within its 50 ms reports the error it knows too.
    assert_eq!(m.poll().unwrap_err().kind(), ErrorKind::Hardware);
    assert_eq!(sim.with(|s| s.telegrams), n, "nothing written or read");
    // stop is still written (the Machine's finish), and the status stays FAULT: the motor
    // is passive, not holding.
    m.stop().unwrap();
    assert!(sim.with(|s| s.telegrams) > n, "stop written");
    assert_eq!(m.status().state, DeviceState::Fault);
    assert_eq!(sim.with(|s| s.regs[&MODE_REG]), mode::PASSIVE);
    // A new open clears the error: commands move the motor again.
    m.close().unwrap();
    m.open().unwrap();
    m.set_speed(5.0).unwrap();
    assert_eq!(m.status().state, DeviceState::Moving);
    wait_for(&mut m, "the motor turns", |m| m.speed().unwrap() > 4.0);
}
