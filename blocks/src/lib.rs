//! # crabby-blocks
//!
//! The Blocks of crabby, each a [`crabby::Block`] to add to a [`crabby::Test`]:
//!
//! - [`Generator`]: a command signal built from [`Path`]s (constant, ramp, sine, cycles,
//!   conditional, integrator, custom file), each ending on a [`Condition`] such as
//!   `"F(N) > 50"` or `"delay=10"`.
//! - [`FakeMachine`]: a simulated tensile machine (elastic–plastic sample that breaks), around
//!   the deterministic [`FakeMachineModel`].
//! - [`Recorder`]: every sample of its input link to CSV, flushed at least every 0.5 s, with a
//!   metadata file and the run report.
//! - [`StopBlock`]: stops the test when a criterion holds.
//! - [`IOBlock`] and [`Machine`]: drive sensors/DAQs ([`crabby::hardware::InOut`]) and motors
//!   ([`crabby::hardware::Actuator`]); `Machine` stops every motor in `finish`.
//! - [`camera`]: the camera Block with its recorder, preview and processing children, and
//!   video extensometry.
//! - [`Pid`]: a PID controller (anti-windup, derivative on the measurement, bumpless start,
//!   live retuning), with [`StepResponse`] to measure it.
//! - [`Multiplexer`], [`Synchronizer`], [`Mean`]: merge labels sent at different rates onto
//!   one time base; average over windows.
//! - [`Pause`] and [`Limits`]: pause the test on a criterion; warning and alarm thresholds
//!   that stop or pause the test. Pausing is a runtime feature
//!   ([`crabby::Context::paused`]): the Machine holds its actuators stopped, the IOBlock
//!   writes no command change, the Generator's path clock skips paused time.
//! - [`Button`] (a key press sends a count), [`LinkReader`] (logs, rate-limited), [`Sink`].
//! - [`Console`]: a live status of any test in the terminal (test time, chosen values, each
//!   Block's achieved rate, the latest warning), redrawn in place, never slowing the test.
//! - `Hdf5Recorder` (cargo feature `hdf5`): an HDF5 file that survives a `kill -9`.
//!
//! The examples `furnace_pid` (a furnace under a PID with a safety limit) and
//! `fatigue_test` (button-started cycles, a door pause, two sensors multiplexed) show them
//! together.
//!
//! A tensile test in a few lines (see `examples/tensile_test.rs` for the full one):
//!
//! ```no_run
//! use crabby::Test;
//! use crabby_blocks::{FakeMachine, Generator, Path, Recorder, StopBlock};
//!
//! let mut test = Test::new("tensile");
//! let gen = test.add(
//!     Generator::new([
//!         Path::constant(0.5).until("Exx(%) > 0.4"),  // load at 0.5 mm/s...
//!         Path::constant(-0.5).until("F(N) <= 0"),    // ...unload...
//!         Path::constant(0.5).until("Exx(%) > 1.6"), // ...then pull to rupture
//!     ])?
//!     .end_delay(Some(0.0)),
//! );
//! let machine = test.add(FakeMachine::new());
//! let record = test.add(Recorder::new("results/machine.csv"));
//! let safety = test.add(StopBlock::new(["t(s) > 120"])?);
//! test.link(gen, machine);
//! test.link(machine, gen); // the conditions read the machine's outputs
//! test.link(machine, record);
//! test.link(machine, safety);
//! test.run()?;
//! # Ok::<(), crabby::Error>(())
//! ```

pub mod button;
pub mod camera;
pub mod condition;
pub mod console;
pub mod fake_machine;
pub mod generator;
#[cfg(feature = "hdf5")]
pub mod hdf5_recorder;
pub mod io_block;
pub mod limits;
pub mod machine;
pub mod mean;
pub mod multiplexer;
pub mod pause;
pub mod pid;
pub mod reconnect;
pub mod recorder;
pub mod sink;
pub mod stop_block;

pub use button::*;
pub use condition::*;
pub use console::Console;
pub use fake_machine::*;
pub use generator::*;
#[cfg(feature = "hdf5")]
pub use hdf5_recorder::Hdf5Recorder;
pub use io_block::*;
pub use limits::*;
pub use machine::*;
pub use mean::*;
pub use multiplexer::*;
pub use pause::*;
pub use pid::*;
pub use reconnect::Reconnect;
pub use recorder::*;
pub use sink::*;
pub use stop_block::*;
