//! Your own Blocks and drivers in test files: register them, get the same `crabby` command.
//!
//! A lab has a heater the stock Blocks do not know. Its crate declares the Block's
//! parameters once (type, unit, range, default, doc) and a constructor, registers it next
//! to crabby's own Blocks, and hands the registry to [`crabby_cli::main`]: `run`,
//! `validate`, `list` and `schema` then know `Heater` too. It also registers a driver,
//! `LabFurnace` (its big furnace: here the simulated one with its own power and defaults),
//! which an `IOBlock`'s `device` then accepts.
//!
//! ```sh
//! cargo run -p crabby-cli --example own_blocks -- list Heater
//! cargo run -p crabby-cli --example own_blocks -- validate cli/examples/own_blocks.toml
//! cargo run -p crabby-cli --example own_blocks -- run cli/examples/own_blocks.toml --out /tmp/results
//! ```

use crabby::schema::{ParamSpec, ParamType, Range};
use crabby::{Block, Context, Flow, Label, Sample, Settings};
use crabby_cli::registry::{Device, DriverKind, DriverType, IoDevice};
use crabby_cli::{BlockType, Registry};

/// A simulated heater: a first-order lag from the ambient temperature towards
/// `ambient + gain · power`, sending `t(s)` and `T(°C)`.
#[derive(Debug)]
struct Heater {
    power_w: f64,
    gain_k_per_w: f64,
    tau_s: f64,
    temperature: f64,
    last_t: Option<f64>,
    ambient: f64,
}

impl Block for Heater {
    fn default_settings(&self) -> Settings {
        Settings::new().freq(50.0)
    }

    // Declared, so `crabby validate` can check the labels other Blocks read from it.
    fn output_labels(&self) -> Option<Vec<Label>> {
        Some(vec![Label::new("t(s)"), Label::new("T(°C)")])
    }

    fn describe(&self) -> String {
        format!(
            "power={} W, gain={} K/W, tau={} s, ambient={} °C",
            self.power_w, self.gain_k_per_w, self.tau_s, self.ambient
        )
    }

    fn step(&mut self, ctx: &mut Context) -> crabby::Result<Flow> {
        let t = ctx.t();
        let dt = t - self.last_t.unwrap_or(t);
        self.last_t = Some(t);
        let target = self.ambient + self.gain_k_per_w * self.power_w;
        self.temperature += (target - self.temperature) * (dt / self.tau_s).min(1.0);
        ctx.send(
            &Sample::new()
                .with("t(s)", t)
                .with("T(°C)", self.temperature),
        )?;
        Ok(Flow::Continue)
    }
}

/// The Heater's declaration: its parameters once, and how to build it from them.
fn heater() -> BlockType {
    BlockType::new("Heater", "a simulated heater (first-order lag)", |p, _| {
        let ambient = p.f64("ambient").unwrap_or(20.0);
        Ok(Box::new(Heater {
            power_w: p.f64("power").unwrap_or(100.0),
            gain_k_per_w: p.f64("gain").unwrap_or(1.0),
            tau_s: p.f64("tau").unwrap_or(10.0),
            temperature: ambient,
            last_t: None,
            ambient,
        }))
    })
    .param(
        ParamSpec::new("power", ParamType::Float, "heating power")
            .unit("W")
            .range(Range::between(0.0, 2000.0))
            .default("100"),
    )
    .param(
        ParamSpec::new("gain", ParamType::Float, "steady temperature rise per watt")
            .unit("K/W")
            .range(Range::above(0.0))
            .default("1"),
    )
    .param(
        ParamSpec::new("tau", ParamType::Float, "time constant")
            .unit("s")
            .range(Range::above(0.0))
            .default("10"),
    )
    .param(
        ParamSpec::new(
            "ambient",
            ParamType::Float,
            "starting and ambient temperature",
        )
        .unit("°C")
        .default("20"),
    )
}

/// A driver: the lab's furnace, an `InOut` built (not opened) from its parameters.
fn lab_furnace() -> DriverType {
    DriverType::new(
        "LabFurnace",
        "the lab's 2 kW furnace (simulated here)",
        DriverKind::InOut,
        |p| {
            let f = crabby_hardware::FakeFurnace::new()
                .thermal(2000.0, 0.5, 20.0)
                .simulation_speed(p.f64("simulation_speed").unwrap_or(1.0));
            Ok(Device::InOut(IoDevice::full(f)))
        },
    )
    .param(
        ParamSpec::new(
            "simulation_speed",
            ParamType::Float,
            "faster than real time",
        )
        .range(Range::above(0.0))
        .default("1"),
    )
}

fn main() {
    let mut registry = Registry::stock();
    registry.register(heater());
    registry.register_driver(lab_furnace());
    // No thread before this: `run` forks the test's Blocks.
    std::process::exit(crabby_cli::main(registry));
}
