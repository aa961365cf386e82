//! Path sequencing on a replayed clock.

use super::*;
use crate::Condition;
use crabby::{ErrorKind, Sample, Test};

fn none() -> Columns {
    Columns::new()
}

fn data(pairs: &[(&str, f64)]) -> Columns {
    let mut c = Columns::new();
    let mut s = Sample::new();
    for (l, v) in pairs {
        s.insert(*l, *v);
    }
    c.push(&s);
    c
}

fn send(cmd: f64, index: u64) -> GeneratorUpdate {
    GeneratorUpdate::Send { cmd, index }
}

fn core(paths: Vec<Path>) -> GeneratorCore {
    let mut c = GeneratorCore::new(paths).unwrap();
    c.set_spam(true);
    c
}

fn cmd_of(u: GeneratorUpdate) -> f64 {
    match u {
        GeneratorUpdate::Send { cmd, .. } => cmd,
        other => panic!("expected a command, got {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn constant_until_a_label_then_the_next_path_starts_in_the_same_loop() {
    let mut g = GeneratorCore::new(vec![
        Path::constant(2.0).until("F(N) > 50"),
        Path::constant(-1.0).until("delay=1"),
    ])
    .unwrap();
    assert_eq!(g.update(0.0, &none()), send(2.0, 0));
    assert_eq!(
        g.update(0.1, &data(&[("F(N)", 10.0)])),
        GeneratorUpdate::Quiet,
        "unchanged: not sent"
    );
    // Several values since the last loop: any one passing ends the path.
    let mut c = data(&[("F(N)", 10.0)]);
    c.push(&Sample::new().with("F(N)", 60.0));
    c.push(&Sample::new().with("F(N)", 20.0));
    assert_eq!(g.update(0.2, &c), send(-1.0, 1));
    // The second path started at 0.2: its delay counts from there.
    assert_eq!(g.update(1.2, &none()), GeneratorUpdate::Quiet);
    assert_eq!(
        g.update(1.21, &none()),
        GeneratorUpdate::Finished { since: 1.21 }
    );
}

#[test]
fn ramp_from_a_value_then_from_the_previous_command() {
    let mut g = core(vec![
        Path::ramp(2.0).from(1.0).until("delay=1"),
        Path::ramp(-1.0).until("x > 0"),
    ]);
    assert_eq!(g.update(0.0, &none()), send(1.0, 0));
    assert!(close(cmd_of(g.update(0.5, &none())), 2.0));
    assert!(close(cmd_of(g.update(1.0, &none())), 3.0));
    // At 1.25 the first ramp ends (1.25 s > 1 s); the second starts from the last command
    // (3.0, computed at t=1.0) with t_start = 1.25.
    assert_eq!(g.update(1.25, &none()), send(3.0, 1));
    assert!(close(cmd_of(g.update(2.25, &none())), 2.0));
    assert_eq!(
        g.update(2.5, &data(&[("x", 1.0)])),
        GeneratorUpdate::Finished { since: 2.5 }
    );
}

#[test]
fn sine_amplitude_is_peak_to_peak_with_offset_and_phase() {
    let mut g = core(vec![Path::sine(0.5, 4.0)
        .offset(1.0)
        .phase(0.0)
        .until("delay=10")]);
    // period 2 s, amplitude 4 peak to peak: from -1 to 3 around offset 1.
    assert!(close(cmd_of(g.update(0.0, &none())), 1.0));
    assert!(close(cmd_of(g.update(0.5, &none())), 3.0));
    assert!(close(cmd_of(g.update(1.5, &none())), -1.0));
    let mut g = core(vec![Path::sine(1.0, 2.0).phase(std::f64::consts::FRAC_PI_2)]);
    // sin(2π·t − π/2): −1 at t = 0.
    assert!(close(cmd_of(g.update(0.0, &none())), -1.0));
    assert!(close(cmd_of(g.update(0.25, &none())), 0.0));
}

#[test]
fn cyclic_alternates_with_per_phase_delays_and_half_cycles() {
    let mut g = core(vec![
        Path::cyclic(1.0, "F(N) > 50", 0.0, "delay=3", 1.5),
        Path::constant(9.0),
    ]);
    assert_eq!(g.update(0.0, &none()), send(1.0, 0));
    assert_eq!(
        g.update(1.0, &data(&[("F(N)", 60.0)])),
        send(0.0, 0),
        "phase 2 at t=1"
    );
    assert_eq!(
        g.update(3.9, &none()),
        send(0.0, 0),
        "3 s not yet passed since t=1"
    );
    assert_eq!(
        g.update(4.1, &none()),
        send(1.0, 0),
        "phase 3 after the delay"
    );
    assert_eq!(g.update(5.0, &data(&[("F(N)", 40.0)])), send(1.0, 0));
    // 1.5 cycles = 3 phases: the third phase's end ends the path.
    assert_eq!(g.update(6.0, &data(&[("F(N)", 51.0)])), send(9.0, 1));
}

#[test]
fn cyclic_with_zero_cycles_never_ends_and_bad_cycles_are_refused() {
    let mut g = core(vec![Path::cyclic(1.0, "delay=0.5", 2.0, "delay=0.5", 0.0)]);
    let mut t = 0.0;
    let mut switches = 0;
    let mut last = cmd_of(g.update(t, &none()));
    for _ in 0..1000 {
        t += 0.1;
        let c = cmd_of(g.update(t, &none()));
        if c != last {
            switches += 1;
        }
        last = c;
    }
    assert!(switches > 150, "{switches}");
    for bad in [0.3, -1.0, f64::INFINITY] {
        let e = GeneratorCore::new(vec![Path::cyclic(1.0, "delay=1", 2.0, "delay=1", bad)])
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(
            e.description().contains("path 0 (cyclic)") && e.description().contains("cycles"),
            "{e}"
        );
    }
}

#[test]
fn cyclic_ramp_is_continuous() {
    let mut g = core(vec![
        Path::cyclic_ramp(1.0, "y > 2", -2.0, "y < 0", 1.0).from(0.0)
    ]);
    assert!(close(cmd_of(g.update(0.0, &none())), 0.0));
    assert!(close(cmd_of(g.update(2.5, &none())), 2.5));
    // Switch at t=3: value 3 at the switch, then slope −2.
    assert!(close(cmd_of(g.update(3.0, &data(&[("y", 3.0)]))), 3.0));
    assert!(close(cmd_of(g.update(4.0, &none())), 1.0));
    assert!(close(cmd_of(g.update(4.5, &none())), 0.0));
    // One cycle done: the path (and here the Generator) ends.
    assert_eq!(
        g.update(4.6, &data(&[("y", -0.2)])),
        GeneratorUpdate::Finished { since: 4.6 }
    );
}

#[test]
fn cyclic_ramp_without_from_continues_the_previous_command() {
    let mut g = core(vec![
        Path::constant(5.0).until("delay=1"),
        Path::cyclic_ramp(1.0, "delay=1", -1.0, "delay=1", 0.5),
    ]);
    g.update(0.0, &none());
    assert!(close(cmd_of(g.update(1.5, &none())), 5.0));
    assert!(close(cmd_of(g.update(2.0, &none())), 5.5));
}

#[test]
fn conditional_picks_a_value_and_repeats_without_data() {
    let mut g = core(vec![Path::conditional(
        "F(N) > 10",
        1.0,
        "F(N) < -10",
        -1.0,
    )
    .otherwise(0.5)]);
    assert_eq!(
        g.update(0.0, &none()),
        send(0.5, 0),
        "no data yet: the otherwise value"
    );
    assert_eq!(g.update(0.1, &data(&[("F(N)", 20.0)])), send(1.0, 0));
    assert_eq!(g.update(0.2, &none()), send(1.0, 0), "no data: repeats");
    assert_eq!(g.update(0.3, &data(&[("F(N)", -20.0)])), send(-1.0, 0));
    assert_eq!(g.update(0.4, &data(&[("F(N)", 0.0)])), send(0.5, 0));
    assert_eq!(g.update(0.5, &data(&[("x", 0.0)])), send(0.5, 0));
    let mut g = core(vec![
        Path::conditional("a > 0", 1.0, "b > 0", 2.0).until("stop > 0")
    ]);
    assert_eq!(g.update(0.0, &data(&[("b", 1.0)])), send(2.0, 0));
    assert_eq!(
        g.update(0.1, &data(&[("stop", 1.0)])),
        GeneratorUpdate::Finished { since: 0.1 }
    );
}

#[test]
fn integrator_integrates_with_the_trapezoid_rule_across_loops() {
    let mut g = core(vec![Path::integrator("T", 2.0)
        .from(10.0)
        .until("delay=100")]);
    assert_eq!(g.update(0.0, &none()), send(10.0, 0));
    // Loop 1: T = 1 then 3 over t = 0..1: ∫ = 2, /2 → −1.
    let mut c = Columns::new();
    c.push(&Sample::new().with("t(s)", 0.0).with("T", 1.0));
    c.push(&Sample::new().with("t(s)", 1.0).with("T", 3.0));
    assert!(close(cmd_of(g.update(0.1, &c)), 9.0));
    // Loop 2: one sample at t = 2, T = 5: prefixed with (1, 3): ∫ = 4, /2 → −2.
    assert!(close(
        cmd_of(g.update(0.2, &data(&[("t(s)", 2.0), ("T", 5.0)]))),
        7.0
    ));
    // A loop without the labels keeps the value.
    assert!(close(cmd_of(g.update(0.3, &none())), 7.0));
    // Another time label.
    let mut g = core(vec![Path::integrator("T", -1.0)
        .time_label("time")
        .from(0.0)]);
    g.update(0.0, &none());
    g.update(0.1, &data(&[("time", 0.0), ("T", 2.0)]));
    assert!(close(
        cmd_of(g.update(0.2, &data(&[("time", 0.5), ("T", 2.0)]))),
        1.0
    ));
    let e = GeneratorCore::new(vec![Path::integrator("T", 0.0).from(0.0)]).unwrap_err();
    assert!(e.description().contains("inertia"), "{e}");
}

#[test]
fn custom_file_is_read_at_construction_and_interpolated() {
    let dir = std::env::temp_dir().join(format!("crabby-gen-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("path.csv");
    let bad = dir.join("bad.csv");
    std::fs::write(&good, "# t, value\n0,0\n1,10\n3,0\n").unwrap();
    std::fs::write(&bad, "0,0\n1;10\n").unwrap();
    let p = Path::custom_file(&good);
    let e = GeneratorCore::new(vec![Path::custom_file(&bad)]).unwrap_err();
    let missing = GeneratorCore::new(vec![Path::custom_file(dir.join("missing.csv"))]).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();

    let mut g = core(vec![
        Path::constant(7.0).until("delay=1"),
        p,
        Path::constant(-1.0),
    ]);
    assert_eq!(g.update(0.0, &none()), send(7.0, 0));
    assert_eq!(
        g.update(1.5, &none()),
        send(0.0, 1),
        "the file starts at t_start = 1.5"
    );
    assert!(close(cmd_of(g.update(2.0, &none())), 5.0));
    assert!(close(cmd_of(g.update(3.5, &none())), 5.0));
    assert!(
        close(cmd_of(g.update(4.5, &none())), 0.0),
        "last time exactly: still in"
    );
    assert_eq!(g.update(4.51, &none()), send(-1.0, 2));

    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert!(
        e.description().contains("bad.csv") && e.description().contains("line 2"),
        "{e}"
    );
    assert!(e.description().contains("path 0 (custom)"), "{e}");
    assert_eq!(missing.kind(), ErrorKind::Io);
    assert!(missing.description().contains("missing.csv"), "{missing}");
}

#[test]
fn custom_points_in_the_program() {
    let mut g = core(vec![Path::points([(0.0, 1.0), (2.0, 3.0)])]);
    assert!(close(cmd_of(g.update(1.0, &none())), 2.0));
    assert_eq!(
        g.update(2.5, &none()),
        GeneratorUpdate::Finished { since: 2.5 }
    );
    assert!(GeneratorCore::new(vec![Path::points([(1.0, 0.0), (0.5, 1.0)])]).is_err());
}

#[test]
fn repeat_starts_over_and_the_index_keeps_counting() {
    let mut g = GeneratorCore::new(vec![
        Path::constant(1.0).until("delay=1"),
        Path::constant(2.0).until("delay=1"),
    ])
    .unwrap();
    g.set_repeat(true);
    let mut sent = Vec::new();
    for i in 0..=60 {
        if let GeneratorUpdate::Send { cmd, index } = g.update(i as f64 * 0.1, &none()) {
            sent.push((cmd, index));
        }
    }
    // Changes at about 1.1, 2.2, 3.3, 4.4, 5.5 s (a delay is strictly "more than").
    assert_eq!(
        sent,
        [(1.0, 0), (2.0, 1), (1.0, 2), (2.0, 3), (1.0, 4), (2.0, 5)]
    );
}

#[test]
fn repeat_with_paths_that_end_at_once_does_not_spin() {
    let mut g =
        GeneratorCore::new(vec![Path::constant(1.0).until(Condition::custom(|_| true))]).unwrap();
    g.set_repeat(true);
    assert_eq!(g.update(0.0, &none()), GeneratorUpdate::Quiet);
    assert_eq!(g.update(0.1, &none()), GeneratorUpdate::Quiet);
}

#[test]
fn spam_sends_every_loop_on_change_only_otherwise() {
    let paths = || vec![Path::constant(1.0).until("delay=0.25"), Path::constant(1.0)];
    let mut quiet = GeneratorCore::new(paths()).unwrap();
    let mut spam = GeneratorCore::new(paths()).unwrap();
    spam.set_spam(true);
    let (mut nq, mut ns) = (Vec::new(), 0);
    for i in 0..10 {
        let t = i as f64 * 0.1;
        if let GeneratorUpdate::Send { cmd, index } = quiet.update(t, &none()) {
            nq.push((t, cmd, index));
        }
        if let GeneratorUpdate::Send { .. } = spam.update(t, &none()) {
            ns += 1;
        }
    }
    assert_eq!(ns, 10);
    // Same value, but the path changed at t=0.3: sent again.
    assert_eq!(nq.len(), 2);
    assert_eq!(nq[1].2, 1);
    assert!(close(nq[1].0, 0.3));
}

#[test]
fn end_delay_ends_after_the_delay_or_never() {
    let mut g = GeneratorCore::new(vec![Path::constant(1.0).until("delay=1")]).unwrap();
    g.set_end_delay(Some(0.5));
    g.update(0.0, &none());
    assert_eq!(
        g.update(1.2, &none()),
        GeneratorUpdate::Finished { since: 1.2 }
    );
    assert_eq!(
        g.update(1.6, &none()),
        GeneratorUpdate::Finished { since: 1.2 }
    );
    assert_eq!(g.update(1.7, &none()), GeneratorUpdate::End);
    let mut g = GeneratorCore::new(vec![Path::constant(1.0).until("delay=1")]).unwrap();
    g.set_end_delay(None);
    g.update(0.0, &none());
    assert_eq!(
        g.update(1.2, &none()),
        GeneratorUpdate::Finished { since: 1.2 }
    );
    assert_eq!(
        g.update(1e6, &none()),
        GeneratorUpdate::Finished { since: 1.2 }
    );
    let mut g = GeneratorCore::new(vec![Path::constant(1.0).until("delay=1")]).unwrap();
    g.set_end_delay(Some(0.0));
    g.update(0.0, &none());
    assert_eq!(g.update(1.2, &none()), GeneratorUpdate::End);
}

#[test]
fn safe_start_waits_for_data_and_starts_the_first_path_then() {
    let mut g = core(vec![Path::ramp(1.0).from(0.0).until("delay=1")]);
    g.set_safe_start(true);
    assert_eq!(g.update(0.0, &none()), GeneratorUpdate::Quiet);
    assert_eq!(g.update(5.0, &none()), GeneratorUpdate::Quiet);
    assert_eq!(
        g.update(10.0, &data(&[("F(N)", 0.0)])),
        send(0.0, 0),
        "no jump"
    );
    assert!(close(cmd_of(g.update(10.5, &none())), 0.5));
    assert_eq!(
        g.update(11.1, &none()),
        GeneratorUpdate::Finished { since: 11.1 }
    );
}

#[test]
fn the_first_path_must_know_its_start_value() {
    for p in [
        Path::hold(),
        Path::ramp(1.0),
        Path::cyclic_ramp(1.0, "delay=1", -1.0, "delay=1", 1.0),
        Path::integrator("T", 1.0),
    ] {
        let name = p.kind_name();
        let e = GeneratorCore::new(vec![p]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.description().contains(&format!("path 0 ({name})")), "{e}");
    }
    // Later paths take the previous command.
    let mut g = core(vec![Path::sine(1.0, 2.0).until("delay=0.25"), Path::hold()]);
    g.update(0.0, &none());
    let before = cmd_of(g.update(0.25, &none()));
    assert_eq!(g.update(0.3, &none()), send(before, 1));
    assert!(GeneratorCore::new(vec![]).is_err());
}

#[test]
fn path_mistakes_are_reported_with_the_path_index() {
    let e = Generator::new([
        Path::constant(0.0).until("delay=1"),
        Path::ramp(1.0).until("F(N) => 3"),
    ])
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert!(
        e.description().contains("path 1 (ramp)") && e.description().contains("F(N) => 3"),
        "{e}"
    );
    assert_eq!(e.origin(), Some("Generator"));
    let e = Generator::new([Path::constant(f64::NAN)]).unwrap_err();
    assert!(
        e.description().contains("path 0 (constant)") && e.description().contains("finite"),
        "{e}"
    );
    let e = Generator::new([Path::constant(1.0).offset(2.0)]).unwrap_err();
    assert!(e.description().contains("offset() applies to sine"), "{e}");
    let e = Generator::new([Path::cyclic(0.0, "x >", 1.0, "delay=1", 1.0)]).unwrap_err();
    assert!(e.description().contains("\"x >\""), "{e}");
}

/// Sends labels, declared, so the graph check can prove a label missing.
struct Source(Vec<Label>);
impl Block for Source {
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(self.0.clone())
    }
    fn step(&mut self, _: &mut Context) -> Result<Flow> {
        Ok(Flow::Stop)
    }
}

#[test]
fn graph_check_names_the_generator_the_path_and_the_label() {
    // `Test::describe` runs every Block's check without forking anything.
    let mut t = Test::new("check");
    let src = t.add(Source(vec![Label::new("t(s)"), Label::new("F(N)")]));
    let gen = Generator::new([
        Path::constant(1.0).until("F(N) > 5"),
        Path::cyclic(1.0, "delay=1", 0.0, "Exx(%) > 0.3", 1.0),
    ])
    .unwrap();
    let g = t.add_with(gen, Settings::new().name("gen"));
    t.link(src, g);
    let e = t.describe().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert_eq!(e.origin(), Some("gen"));
    assert!(
        e.description().contains("path 1 (cyclic)") && e.description().contains("'Exx(%)'"),
        "{e}"
    );

    let mut t = Test::new("ok");
    let src = t.add(Source(vec![
        Label::new("t(s)"),
        Label::new("F(N)"),
        Label::new("T"),
    ]));
    let gen = Generator::new([Path::integrator("T", 1.0).from(0.0).until("F(N) > 5")]).unwrap();
    let g = t.add(gen);
    t.link(src, g);
    let text = t.describe().unwrap();
    assert!(text.contains("integrator of T over t(s)"), "{text}");
    assert!(
        text.contains("end the test 2 s after the last path"),
        "{text}"
    );

    // A Generator without inputs whose condition needs a label.
    let mut t = Test::new("no input");
    t.add(Generator::new([Path::constant(1.0).until("F(N) > 5")]).unwrap());
    assert!(t
        .describe()
        .unwrap_err()
        .description()
        .contains("no input link"));

    // safe_start without an input, a bad end delay, clashing labels.
    for gen in [
        Generator::new([Path::constant(1.0)])
            .unwrap()
            .safe_start(true),
        Generator::new([Path::constant(1.0)])
            .unwrap()
            .end_delay(Some(-1.0)),
        Generator::new([Path::constant(1.0)])
            .unwrap()
            .cmd_label("x")
            .path_index_label("x"),
        Generator::new([Path::constant(1.0)])
            .unwrap()
            .cmd_label("t(s)"),
    ] {
        let mut t = Test::new("bad");
        t.add(gen);
        assert_eq!(t.describe().unwrap_err().kind(), ErrorKind::Configuration);
    }
}

#[test]
fn block_declares_its_labels_rate_and_description() {
    let gen = Generator::new([Path::ramp(1.0).from(0.0).until("delay=3"), Path::hold()])
        .unwrap()
        .cmd_label("pos")
        .path_index_label("step")
        .repeat(true)
        .end_delay(None);
    let labels: Vec<String> = gen
        .output_labels()
        .unwrap()
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(labels, ["t(s)", "pos", "step"]);
    assert_eq!(gen.default_settings().rate, Some(crabby::Rate::Hz(200.0)));
    let d = gen.describe();
    assert!(d.contains("path 0: ramp 1/s from 0 until delay=3"), "{d}");
    assert!(d.contains("path 1: hold the previous command"), "{d}");
    assert!(d.contains("repeat=true") && d.contains("stay idle"), "{d}");
}
