//! A user's own motor driver in a few lines, driven by a Machine from a Generator, its
//! position and speed recorded to CSV.
//!
//! `Axis` is a linear axis whose speed follows the command with a 0.1 s lag (replace the
//! body of each method with the real controller's commands). The Generator asks 2 mm/s for
//! 1 s, then −1 mm/s for 1 s, and ends the test; the Machine stops the axis in `finish`.
//!
//! Run: `cargo run --example custom_actuator`

use crabby::hardware::{Actuator, PositionFeedback, SpeedFeedback};
use crabby::{Result, Settings, Test};
use crabby_blocks::{ActuatorConfig, Generator, Machine, Path, Recorder};
use std::time::Instant;

/// The driver: an `Actuator` (`set_speed` is its one required method; `stop` is overridden
/// here) that reads its position and speed back (`PositionFeedback`, `SpeedFeedback`), so
/// its `ActuatorConfig` accepts `position_label` and `speed_label`.
struct Axis {
    target: f64,
    speed: f64,
    position: f64,
    last: Instant,
}

impl Axis {
    /// Integrates the axis up to now (a real driver asks the controller instead).
    fn update(&mut self) {
        let dt = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        self.speed += (self.target - self.speed) * (1.0 - (-dt / 0.1).exp());
        self.position += self.speed * dt;
    }
}

impl Actuator for Axis {
    fn set_speed(&mut self, speed: f64) -> Result<()> {
        self.update();
        self.target = speed;
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        self.target = 0.0;
        self.speed = 0.0;
        println!("axis stopped at {:.3} mm", self.position);
        Ok(())
    }
}

impl PositionFeedback for Axis {
    fn position(&mut self) -> Result<f64> {
        self.update();
        Ok(self.position)
    }
}

impl SpeedFeedback for Axis {
    fn speed(&mut self) -> Result<f64> {
        self.update();
        Ok(self.speed)
    }
}

fn main() -> Result<()> {
    let csv = std::env::temp_dir()
        .join("crabby-examples")
        .join("custom_actuator.csv");
    let mut test = Test::new("custom-actuator");
    test.log_file(None);
    let gen = Generator::new([
        Path::constant(2.0).until("delay=1"),
        Path::constant(-1.0).until("delay=1"),
    ])?
    .cmd_label("v_cmd")
    .end_delay(Some(0.2));
    let gen = test.add_with(gen, Settings::new().freq(50.0));
    let axis = Axis {
        target: 0.0,
        speed: 0.0,
        position: 0.0,
        last: Instant::now(),
    };
    let machine = test.add_with(
        Machine::new().actuator(
            ActuatorConfig::speed(axis, "v_cmd")
                .position_label("x(mm)")
                .speed_label("v(mm/s)"),
        ),
        Settings::new().name("axis").freq(100.0),
    );
    let rec = test.add(Recorder::new(&csv));
    test.link(gen, machine);
    test.link(machine, rec);
    // The coordinator logs the run report; a failed run returns an error naming the Block.
    let report = test.run()?;
    println!("{} samples lost", report.samples_lost());
    println!(
        "data written under {}",
        csv.parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    Ok(())
}
