//! # crabby: laboratory test benches in Rust
//!
//! A test is a graph of [`Block`]s (signal generator, hardware I/O, motor control, camera,
//! recorder, ...) joined by links. [`Test::run`] forks every Block into its own process,
//! holds them at a barrier until all are prepared, starts them together at a common `t0`,
//! and stops them all cleanly when one ends, fails, or the user presses Ctrl+C.
//!
//! **Blocks share no memory.** Each Block runs in its own process, on its own copy of the
//! program's memory: an `Arc`, an atomic, a `static` or a `Mutex` given to two Blocks (or
//! kept by `main` to read afterwards) compiles, works under [`Test::run_in_threads`], and
//! silently does nothing under [`Test::run`]. Blocks exchange data only through links. For
//! coupled simulated hardware (a motor that moves the specimen a load cell measures), let one
//! Block own the coupled model, or send the coupling through a link (the motor Block sends
//! its position, the load-cell Block computes the force from it): see [`testing`], which
//! also gives a [`capture`](testing::capture) Block to read in a test what a Block sent.
//!
//! The principal types:
//! - [`Test`]: the graph; [`Test::add`], [`Test::link`], [`Test::run`].
//! - [`Block`]: what a Block does (`prepare`, `begin`, `step`, `finish`); [`Settings`]
//!   (name, frequency, niceness, real-time priority, log level).
//! - [`Context`]: a Block's handle on the running test: the clock, sending and receiving
//!   [`Sample`]s, waiting for data, stopping the test.
//! - [`LinkOptions`] and [`modifier`]: per-link buffer, overflow policy and transformations.
//! - [`Report`]: how every Block and link ended; [`Error`] with its [`ErrorKind`].
//! - [`documents`]: the run documents ([`Test::documents`]), a machine-readable record of
//!   each run (start, one descriptor per recorded stream, stop) in JSON lines.
//! - [`units`] and [`schema`]: quantities with units, and the parameter declarations from
//!   which test files are checked (the `crabby` command of `crabby-cli`).
//!
//! ## A two-Block graph
//!
//! ```no_run
//! use crabby::{Block, Context, Flow, Result, Sample, Settings, Test};
//! use std::time::Duration;
//!
//! /// Sends a ramp for one second, then ends the test.
//! struct Ramp;
//! impl Block for Ramp {
//!     fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
//!         let t = ctx.t();
//!         ctx.send(&Sample::new().with("t(s)", t).with("cmd", 2.0 * t))?;
//!         Ok(if t > 1.0 { Flow::Stop } else { Flow::Continue })
//!     }
//! }
//!
//! /// Wakes up as soon as a sample arrives and logs the command.
//! struct Printer;
//! impl Block for Printer {
//!     fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
//!         if ctx.wait(Duration::from_millis(100)) {
//!             for cmd in ctx.recv_all().f64s("cmd") {
//!                 log::info!("cmd = {cmd:.3}");
//!             }
//!         }
//!         Ok(Flow::Continue)
//!     }
//! }
//!
//! fn main() -> Result<()> {
//!     let mut test = Test::new("ramp");
//!     let ramp = test.add_with(Ramp, Settings::new().freq(100.0));
//!     let printer = test.add_with(Printer, Settings::new().free_run());
//!     test.link(ramp, printer);
//!     let report = test.run()?; // forks both, starts them together, stops them together
//!     println!("{report}");
//!     Ok(())
//! }
//! ```
//!
//! ## Links and modifiers
//!
//! [`Test::link_with`] takes [`LinkOptions`]: a name, the buffer size, the overflow policy
//! ([`Overflow::Block`], lossless, by default) and [`modifier`]s that run in the sender:
//!
//! ```
//! use crabby::modifier::{Diff, Mean};
//! use crabby::{LinkOptions, Overflow};
//! let smoothed = LinkOptions::new().name("force").modifier(Mean::new(10).unwrap());
//! let speed = LinkOptions::new().modifier(Diff::new("x(mm)"));
//! let display = LinkOptions::new().overflow(Overflow::DropOldest);
//! # let _ = (smoothed, speed, display);
//! ```
//!
//! ## Receiving
//!
//! [`Context`] offers Crappy's four ways and one more: the oldest pending sample of each link
//! ([`Context::recv_oldest`]), the latest one, optionally latched
//! ([`Context::recv_latest`]), everything as label → values ([`Context::recv_all`]),
//! everything per link ([`Context::recv_all_per_link`]), and [`Context::wait`], which sleeps
//! until data arrives (microseconds, no CPU) for event-driven Blocks.
//!
//! ## Hardware and cameras
//!
//! Drivers implement the small traits of [`hardware`] (`InOut` for sensors and DAQs,
//! `Actuator` for motors) and [`camera`]; the Blocks that drive them live in
//! `crabby-blocks`, the simulated and real devices in `crabby-hardware`. Each module's docs
//! show how to write a driver.
//!
//! ## Testing Blocks
//!
//! [`Test::run_in_threads`] runs the same graph with each Block on a thread, so a Block can be
//! tested from an ordinary `#[test]`: quick, but memory is shared there and not under
//! `run()` (see above), so a test that passes in threads can still be wrong for the real
//! run. [`testing::capture`] returns what a Block received in both runtimes, and
//! [`testing::harness`] runs tests that call `run()` (they fork, so not from libtest's
//! threads) in your own crate, each in its own process under a timeout.
//!
//! ## Rules that keep a test safe
//! - Call [`Test::run`] from `main` before starting any thread: Blocks are forked.
//! - Links never lose data by default: a sender waits when a receiver falls behind.
//! - `finish` always runs (unless a Block has to be killed): put motors in a safe state there.

#![deny(unsafe_op_in_unsafe_fn)]

mod block;
pub mod camera;
mod child;
mod context;
mod coordinator;
pub mod documents;
mod error;
pub mod hardware;
pub mod health;
mod link;
mod logging;
pub mod modifier;
mod pacing;
mod pause;
pub mod process;
mod proto;
mod realtime;
mod report;
mod sample;
pub mod schema;
mod sys;
mod test;
pub mod testing;
pub mod time;
pub mod units;

pub(crate) use sys::control;

pub use block::{
    Block, Flow, Grace, GraphView, InputView, LevelFilter, Rate, Settings, DEFAULT_RATE,
};
pub use context::Context;
pub use error::{Error, ErrorKind, Result, WireError};
pub use link::{LinkOptions, Overflow, DEFAULT_CAPACITY_BYTES, DEFAULT_CAPACITY_SAMPLES};
pub use report::{BlockReport, Incident, IncidentKind, LinkReport, Outcome, Report, StopCause};
pub use sample::{Columns, Label, Sample, Value};
pub use test::{BlockId, LinkId, Test};

/// The README's code, compiled as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
