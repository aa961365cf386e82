//! The UController driver against the simulated board on a pty: handshake bytes, frames
//! with and without the board's clock, commands, garbage, silence, a board reset, a board
//! that vanishes, and configurations rejected before anything is opened.

use super::sim::{Board, Fault, SimThread};
use super::*;
use crate::serial::testing::FakePort;
use crabby::hardware::InOut;

fn board_on(p: &mut FakePort, board: Board) -> SimThread {
    SimThread::new(p.master.take().expect("master"), board)
}

fn cfg(p: &FakePort, timeout_ms: u64) -> SerialConfig {
    SerialConfig::new(&p.path, 115_200).timeout(Duration::from_millis(timeout_ms))
}

/// Waits (at most 5 s) until `f` holds on the board.
fn wait_board(sim: &SimThread, what: &str, f: impl Fn(&Board) -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while !sim.with(|b| f(b)) {
        assert!(Instant::now() < end, "board never reached: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn handshake_bytes_follow_crappy() {
    let u = UController::new("u", SerialConfig::new("/dev/null", 115_200))
        .labels(["a", "b"])
        .cmd_labels(["freq"])
        .t_device(true);
    assert_eq!(
        u.handshake(),
        b"go13\r\n1freq\r\n1a\r\n2b\r\n0t(s)\r\n".to_vec()
    );
    let u = u.t_device(false);
    assert_eq!(u.handshake(), b"go12\r\n1freq\r\n1a\r\n2b\r\n".to_vec());
    assert_eq!(UController::command_line(0, 2.5), "12.500\r\n");
    assert_eq!(UController::command_line(1, -0.0004), "2-0.000\r\n");
    let mut b = Vec::new();
    encode_frame(
        &Frame {
            ticks_ms: Some(1234),
            index: 2,
            value: 1.5,
        },
        &mut b,
    );
    // struct.pack('<ibf', 1234, 2, 1.5)
    assert_eq!(b, [0xD2, 0x04, 0, 0, 2, 0, 0, 0xC0, 0x3F]);
    assert_eq!(
        decode_frame(&b, true),
        Some(Frame {
            ticks_ms: Some(1234),
            index: 2,
            value: 1.5
        })
    );
}

#[test]
fn reads_sine_stamped_by_the_board_and_sends_commands() {
    let mut p = FakePort::new();
    let sim = board_on(&mut p, Board::new().rate(500.0));
    let mut u = UController::new("pico", cfg(&p, 500))
        .labels(["sine", "count"])
        .cmd_labels(["freq", "amp"])
        .t_device(true);
    u.check().unwrap();
    u.open().unwrap();
    assert_eq!(u.status().state, DeviceState::On);
    wait_board(&sim, "handshake", |b| b.running());
    assert_eq!(sim.with(|b| b.labels().get("t(s)").copied()), Some(0));
    u.write(&[2.0, 3.0]).unwrap();
    wait_board(&sim, "commands applied", |b| b.commands_applied.len() == 2);
    // Same values again: nothing sent (Crappy sends a command only when it changes).
    u.write(&[2.0, 3.0]).unwrap();
    u.write(&[2.0, 0.5]).unwrap();
    wait_board(&sim, "amp changed", |b| b.vars["amp"] == 0.5);
    assert_eq!(
        sim.with(|b| b.commands_applied.clone()),
        vec![
            ("freq".to_owned(), 2.0),
            ("amp".to_owned(), 3.0),
            ("amp".to_owned(), 0.5)
        ]
    );
    // Stream for a while: one row per frame; the board's clock gives the timestamps, the
    // counts increase by one per sample, the sine follows amp·sin(2π·freq·t).
    u.start_stream().unwrap();
    let mut rows = 0;
    let mut counts = Vec::new();
    let mut prev_t = 0;
    let end = Instant::now() + Duration::from_secs(5);
    while rows < 400 {
        assert!(Instant::now() < end, "only {rows} rows in 5 s");
        let c = u.read_stream().unwrap();
        c.validate("pico").unwrap();
        for i in 0..c.len() {
            assert!(c.t_ns[i] >= prev_t, "timestamps go backwards");
            prev_t = c.t_ns[i];
            counts.push(c.channels[1][i]);
        }
        rows += c.len();
    }
    assert_eq!(u.discarded_bytes(), 0);
    // Two frames per sample (sine then count): the count row repeats the sample number.
    let distinct: Vec<f64> = counts
        .windows(2)
        .filter(|w| w[0] != w[1])
        .map(|w| w[1])
        .collect();
    assert!(
        distinct.windows(2).all(|w| w[1] == w[0] + 1.0),
        "{distinct:?}"
    );
    // One reading: the latest value of each label, with the board's time.
    let r = u.read().unwrap();
    assert!(r.values[1] > 100.0);
    assert!(
        r.values[0].abs() <= 0.5 + 1e-6,
        "amp is 0.5: {}",
        r.values[0]
    );
    u.close().unwrap();
    wait_board(&sim, "stop! resets the board", |b| {
        b.stops == 1 && !b.running()
    });
    assert_eq!(u.status().state, DeviceState::Off);
}

#[test]
fn garbage_is_dropped_and_the_stream_realigns() {
    let mut p = FakePort::new();
    let mut board = Board::new().rate(200.0);
    // Bytes that cannot start a frame (index 0xEE = -18): the host drops them one by one.
    board.schedule(Duration::from_millis(100), Fault::Garbage(vec![0xEE; 3]));
    let sim = board_on(&mut p, board);
    let mut u = UController::new("pico", cfg(&p, 500)).labels(["count"]);
    u.open().unwrap();
    let mut counts = Vec::new();
    let end = Instant::now() + Duration::from_secs(5);
    while counts.len() < 80 {
        assert!(Instant::now() < end);
        let c = u.read_frames().unwrap();
        counts.extend(c.channels[0].iter().copied());
    }
    assert_eq!(u.discarded_bytes(), 3, "the 3 garbage bytes, nothing else");
    assert_eq!(u.status().state, DeviceState::Alarm, "{}", u.status());
    // Every sample arrived, in order, garbage or not.
    assert!(counts.windows(2).all(|w| w[1] == w[0] + 1.0), "{counts:?}");
    drop(sim);
}

#[test]
fn a_stream_of_garbage_is_a_communication_error() {
    let mut p = FakePort::new();
    let mut board = Board::new().rate(10.0);
    board.schedule(Duration::from_millis(50), Fault::Garbage(vec![0x80; 600]));
    let _sim = board_on(&mut p, board);
    let mut u = UController::new("pico", cfg(&p, 2000)).labels(["count"]);
    u.open().unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    let e = loop {
        assert!(Instant::now() < end, "garbage never reported");
        if let Err(e) = u.read_frames() {
            break e;
        }
    };
    assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
    assert!(e.description().contains("baud rate"), "{e}");
    assert_eq!(u.status().state, DeviceState::Fault);
}

#[test]
fn silence_is_a_timeout_and_the_board_resumes_after_a_short_one() {
    let mut p = FakePort::new();
    let mut board = Board::new().rate(100.0);
    board.schedule(
        Duration::from_millis(100),
        Fault::Silence(Duration::from_millis(100)),
    );
    board.schedule(
        Duration::from_millis(400),
        Fault::Silence(Duration::from_secs(30)),
    );
    let _sim = board_on(&mut p, board);
    let mut u = UController::new("pico", cfg(&p, 250)).labels(["count"]);
    u.open().unwrap();
    // The short silence (100 ms < 250 ms timeout) passes; the long one is an error.
    let start = Instant::now();
    let e = loop {
        assert!(start.elapsed() < Duration::from_secs(5));
        if let Err(e) = u.read() {
            break e;
        }
    };
    assert!(
        start.elapsed() > Duration::from_millis(600),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.description().contains("no frame"), "{e}");
    assert_eq!(u.status().state, DeviceState::Fault);
}

#[test]
fn a_board_reset_is_recovered_by_a_new_handshake_when_asked() {
    for recover in [false, true] {
        let mut p = FakePort::new();
        let mut board = Board::new().rate(100.0);
        board.schedule(Duration::from_millis(100), Fault::Reset);
        let sim = board_on(&mut p, board);
        let mut u = UController::new("pico", cfg(&p, 200))
            .labels(["count"])
            .recover_resets(recover);
        u.open().unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        let mut after_reset = 0;
        let outcome = loop {
            assert!(Instant::now() < end);
            match u.read() {
                Ok(_) if u.rehandshakes() > 0 => {
                    after_reset += 1;
                    if after_reset > 10 {
                        break Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        if recover {
            outcome.unwrap();
            assert_eq!(sim.with(|b| b.handshakes), 2);
            assert_eq!(u.rehandshakes(), 1);
        } else {
            let e = outcome.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
            assert!(e.description().contains("reset"), "{e}");
            assert_eq!(sim.with(|b| b.handshakes), 1);
        }
    }
}

#[test]
fn a_vanished_board_is_a_communication_error() {
    let mut p = FakePort::new();
    let mut board = Board::new().rate(100.0);
    board.schedule(Duration::from_millis(100), Fault::Vanish);
    let _sim = board_on(&mut p, board);
    let mut u = UController::new("pico", cfg(&p, 1000)).labels(["sine"]);
    u.open().unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    let e = loop {
        assert!(Instant::now() < end);
        if let Err(e) = u.read() {
            break e;
        }
    };
    assert_eq!(e.kind(), ErrorKind::Communication, "{e}");
    assert!(e.description().contains("disappeared"), "{e}");
    assert_eq!(u.status().state, DeviceState::Fault);
    u.close().unwrap();
}

#[test]
fn bad_configurations_are_rejected_before_opening() {
    let p = FakePort::new();
    let base = || UController::new("u", cfg(&p, 100));
    let e = base().check().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    let ten: Vec<String> = (0..10).map(|i| format!("l{i}")).collect();
    let e = base().labels(ten).check().unwrap_err();
    assert!(e.description().contains("at most 9"), "{e}");
    let e = base().labels(["a", "a"]).check().unwrap_err();
    assert!(e.description().contains("twice"), "{e}");
    let e = base().labels(["t(s)"]).check().unwrap_err();
    assert!(e.description().contains("reserved"), "{e}");
    let e = base().labels(["a\nb"]).check().unwrap_err();
    assert!(e.description().contains("line breaks"), "{e}");
    let e = base()
        .labels(["a"])
        .init_output([1.0, 2.0])
        .check()
        .unwrap_err();
    assert!(e.description().contains("init_output"), "{e}");
    let e = base().cmd_labels(["f"]).t_device(true).check().unwrap_err();
    assert!(e.description().contains("t_device"), "{e}");
    let e = UController::new("u", SerialConfig::new("/dev/ttyNOPE", 115_200))
        .labels(["a"])
        .check()
        .unwrap_err();
    assert!(e.description().contains("does not exist"), "{e}");
    base().labels(["a"]).cmd_labels(["f"]).check().unwrap();
    // Commands: wrong count, non-finite, before open.
    let mut u = base().cmd_labels(["f"]);
    assert_eq!(
        u.write(&[1.0, 2.0]).unwrap_err().kind(),
        ErrorKind::Configuration
    );
    assert_eq!(
        u.write(&[f64::NAN]).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    assert_eq!(u.write(&[1.0]).unwrap_err().kind(), ErrorKind::NotAllowed);
}

#[test]
fn init_output_is_read_until_the_board_sends() {
    let mut p = FakePort::new();
    let sim = board_on(&mut p, Board::new().rate(50.0));
    // 'extra' is never sent by the board: it keeps its initial value.
    let mut u = UController::new("pico", cfg(&p, 500))
        .labels(["extra", "count"])
        .init_output([-1.0, -2.0]);
    u.open().unwrap();
    wait_board(&sim, "streaming", |b| b.frames_sent > 2);
    let r = u.read().unwrap();
    assert_eq!(r.values[0], -1.0);
    assert!(r.values[1] >= 0.0);
}
