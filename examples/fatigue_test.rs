//! A small fatigue test: the technician starts the cycles with Enter, a safety door opened
//! mid-test pauses everything, and two sensors at different rates are merged into one file.
//!
//! - A Button: press Enter to start the cycles. When the standard input is not a terminal
//!   (CI), a simulated technician presses it after 0.5 s.
//! - A Generator: waits for the button, then load/unload cycles of the simulated machine
//!   (±0.5 mm/s, 0.4 s each way, 5 cycles; the path clock excludes paused time).
//! - The FakeMachine (force at 200 Hz) and a simulated video extensometer (strain at 30 Hz,
//!   its own clock): a Multiplexer resamples both at 100 Hz into one Recorder.
//! - A door switch that opens from 1.5 s to 2.0 s after the cycles start, and a Pause Block
//!   on it: the machine holds still, the cycles resume where they were, and the report lists
//!   the pause.
//!
//! `cargo run --example fatigue_test -- [--out DIR]`

use anyhow::Context as _;
use crabby::{Block, Context, Flow, Label, Result as CResult, Sample, Settings, Test};
use crabby_blocks::{Button, FakeMachine, Generator, Multiplexer, Path, Pause, Recorder};
use std::io::IsTerminal;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// A video extensometer: measures the strain the machine sends, at its own (slow) rate.
struct Extensometer {
    last: Option<f64>,
}
impl Block for Extensometer {
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec![Label::new("t(s)"), Label::new("Exx_video(%)")])
    }
    fn step(&mut self, ctx: &mut Context) -> CResult<Flow> {
        if let Some(e) = ctx.recv_latest(false).get_f64("Exx(%)") {
            self.last = Some(e);
        }
        if let Some(e) = self.last {
            ctx.send(&Sample::new().with("t(s)", ctx.t()).with("Exx_video(%)", e))?;
        }
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> CResult<()> {
        ctx.drain_until_ended(std::time::Duration::from_millis(500));
        Ok(())
    }
}

/// A safety-door switch: open (1) from `open_at` to `close_at` seconds, else closed (0).
struct Door {
    open_at: f64,
    close_at: f64,
}
impl Block for Door {
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec![Label::new("t(s)"), Label::new("door")])
    }
    fn step(&mut self, ctx: &mut Context) -> CResult<Flow> {
        let t = ctx.t();
        let open = (self.open_at..self.close_at).contains(&t);
        ctx.send(
            &Sample::new()
                .with("t(s)", t)
                .with("door", if open { 1 } else { 0 }),
        )?;
        Ok(Flow::Continue)
    }
}

/// The technician when nobody is at the terminal: presses Enter once at `at` seconds.
struct Technician {
    pipe: Option<OwnedFd>,
    at: f64,
}
impl Block for Technician {
    fn step(&mut self, ctx: &mut Context) -> CResult<Flow> {
        if ctx.t() >= self.at {
            if let Some(fd) = self.pipe.take() {
                nix::unistd::write(&fd, b"\n")
                    .map_err(|e| crabby::Error::communication(e.to_string()))?;
            }
        }
        Ok(Flow::Continue)
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = match args.iter().position(|a| a == "--out") {
        Some(i) => PathBuf::from(args.get(i + 1).context("--out needs a folder")?),
        None => PathBuf::from("results/fatigue_test"),
    };
    std::fs::create_dir_all(&out)?;
    let csv = crabby_blocks::free_name(&out.join("fatigue.csv"));
    let mut test = Test::new("fatigue_test");
    test.log_file(Some(out.join("fatigue_test.log")));

    let interactive = std::io::stdin().is_terminal();
    let button = if interactive {
        println!("press Enter to start the cycles");
        test.add_with(Button::new(), Settings::new().name("button"))
    } else {
        let (rx, tx) = nix::unistd::pipe()?;
        test.add_with(
            Technician {
                pipe: Some(tx),
                at: 0.5,
            },
            Settings::new().name("technician").freq(50.0),
        );
        test.add_with(Button::from_fd(rx), Settings::new().name("button"))
    };
    let gen = test.add_with(
        Generator::new([
            Path::constant(0.0).until("button > 0"),
            Path::cyclic(0.5, "delay=0.4", -0.5, "delay=0.4", 5.0),
        ])?
        .end_delay(Some(0.2)),
        Settings::new().name("cycles").freq(200.0),
    );
    let machine = test.add_with(
        FakeMachine::new(),
        Settings::new().name("machine").freq(200.0),
    );
    let extenso = test.add_with(
        Extensometer { last: None },
        Settings::new().name("extensometer").freq(30.0),
    );
    let door = test.add_with(
        Door {
            open_at: 2.0,
            close_at: 2.5,
        },
        Settings::new().name("door").freq(50.0),
    );
    let pause = test.add_with(
        Pause::new(["door > 0.5"])?,
        Settings::new().name("door-pause"),
    );
    let mux = test.add_with(
        Multiplexer::new(100.0).labels(["F(N)", "Exx_video(%)"]),
        Settings::new().name("mux"),
    );
    let rec = test.add_with(Recorder::new(&csv), Settings::new().name("record"));
    test.link(button, gen);
    test.link(gen, machine);
    test.link(machine, extenso);
    test.link(door, pause);
    test.link(machine, mux);
    test.link(extenso, mux);
    test.link(mux, rec);
    let report = test.run()?;
    anyhow::ensure!(!report.failed(), "the run failed:\n{report}");
    let rows = std::fs::read_to_string(&csv)?.lines().count() - 1;
    println!(
        "{rows} merged rows (F at 200 Hz + strain at 30 Hz → 100 Hz) in {}",
        csv.display()
    );
    for p in report.pauses() {
        println!(
            "paused {:.2} s → {} by {}: {}",
            p.start_s,
            p.end_s
                .map_or("the stop".to_owned(), |e| format!("{e:.2} s")),
            p.block,
            p.cause
        );
    }
    println!("ran {:.2} s", report.duration_s);
    Ok(())
}
