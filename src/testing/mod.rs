//! Tools to test your own Blocks: a [`capture`] Block that hands back what it received, in
//! both runtimes, and the fork-safe test [`harness`].
//!
//! ## Blocks share no memory
//!
//! [`Test::run`](crate::Test::run) forks every Block into its own process: each Block works
//! on its own copy of the program's memory. An `Arc<Mutex<_>>`, an atomic or a `static`
//! given to two Blocks (or kept by the test to look at afterwards) compiles, works under
//! [`Test::run_in_threads`](crate::Test::run_in_threads), and silently does nothing under
//! `run()`: each process changes its own copy, nobody sees it. Blocks exchange data only
//! through links, and a test reads what a Block received with [`capture`], which works
//! across the fork.
//!
//! Coupled simulated hardware (a motor that moves the specimen a load cell measures) is done
//! the same way: either **one Block owns the coupled model** (as `crabby-blocks`'
//! `FakeMachine` owns the motor, the specimen and the load cell, and sends their readings),
//! or each part is its own Block and **the coupling goes through links** (the motor Block
//! sends its position, the load-cell Block receives it and computes the force).
//!
//! ```no_run
//! use crabby::testing::capture;
//! use crabby::{Block, Context, Flow, Result, Sample, Settings, Test};
//!
//! /// Simulated motor: sends its position.
//! struct Motor { x: f64 }
//! impl Block for Motor {
//!     fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
//!         self.x += 0.01;
//!         ctx.send(&Sample::new().with("t(s)", ctx.t()).with("x(mm)", self.x))?;
//!         Ok(if self.x > 1.0 { Flow::Stop } else { Flow::Continue })
//!     }
//! }
//!
//! /// Simulated load cell: the force follows the motor's position, received on its link
//! /// (not read from memory shared with the motor, which `run()` would not share).
//! struct LoadCell { stiffness: f64 }
//! impl Block for LoadCell {
//!     fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
//!         let s = ctx.recv_latest(true);
//!         if let Some(x) = s.get_f64("x(mm)") {
//!             ctx.send(&Sample::new().with("t(s)", ctx.t()).with("F(N)", self.stiffness * x))?;
//!         }
//!         Ok(Flow::Continue)
//!     }
//! }
//!
//! fn main() -> Result<()> {
//!     let (capture, forces) = capture();
//!     let mut test = Test::new("coupled");
//!     let motor = test.add_with(Motor { x: 0.0 }, Settings::new().freq(100.0));
//!     let cell = test.add_with(LoadCell { stiffness: 2000.0 }, Settings::new().freq(100.0));
//!     let cap = test.add(capture);
//!     test.link(motor, cell);
//!     test.link(cell, cap);
//!     test.run()?;
//!     let forces = forces.take()?; // every sample the capture Block received, in order
//!     assert!(forces.iter().all(|s| s.get_f64("F(N)").is_some()));
//!     Ok(())
//! }
//! ```
//!
//! Tests that call `run()` fork, so they cannot be ordinary `#[test]`s (libtest's threads):
//! write them as cases of a [`harness`] binary, or use `run_in_threads` for a quick test of
//! a Block's logic that shares nothing.

pub mod harness;

use crate::{Block, Context, Error, ErrorKind, Flow, Result, Sample, Settings};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A capture Block and the handle that reads back what it received.
///
/// Link any Block to the [`Capture`] Block; after [`Test::run`](crate::Test::run) or
/// [`Test::run_in_threads`](crate::Test::run_in_threads) returns, [`Captured::take`] gives
/// every sample it received, in the order received (with several input links, each link's
/// samples keep their order).
///
/// It works across the fork: the Block appends what it receives to a private temporary file
/// (created here, in the system's temporary folder) and the handle reads it back. The file is
/// removed when the handle is dropped (and, in a [`harness`] case that is killed, by the
/// harness).
///
/// The Block waits for samples (no pacing, no CPU while idle) and, in `finish`, receives
/// everything its senders sent before the stop. Each batch is written at once, so what it
/// received before being killed is kept.
///
/// ```
/// use crabby::testing::capture;
/// use crabby::{Block, Context, Flow, Result, Sample, Test};
///
/// struct Three(i64);
/// impl Block for Three {
///     fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
///         self.0 += 1;
///         ctx.send(&Sample::new().with("n", self.0))?;
///         Ok(if self.0 == 3 { Flow::Stop } else { Flow::Continue })
///     }
/// }
///
/// # fn main() -> Result<()> {
/// let (capture, samples) = capture();
/// let mut test = Test::new("three");
/// test.log_file(None);
/// let src = test.add(Three(0));
/// let cap = test.add(capture);
/// test.link(src, cap);
/// test.run_in_threads()?; // or `run()` from a harness case: the same result
/// let n: Vec<f64> = samples.take()?.iter().filter_map(|s| s.get_f64("n")).collect();
/// assert_eq!(n, [1.0, 2.0, 3.0]);
/// # Ok(())
/// # }
/// ```
///
/// Panics if the temporary file cannot be created (the temporary folder is full or
/// read-only); [`try_capture`] returns the error instead.
pub fn capture() -> (Capture, Captured) {
    match try_capture() {
        Ok(pair) => pair,
        Err(e) => panic!("{e}"),
    }
}

/// [`capture`], returning an error if its temporary file cannot be created.
pub fn try_capture() -> Result<(Capture, Captured)> {
    let path = harness::temp_path("capture");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!(
                    "cannot create the capture file {} in the temporary folder",
                    path.display()
                ),
            )
            .with_source(e)
        })?;
    Ok((
        Capture {
            path: path.clone(),
            file: None,
            drain: Duration::from_secs(60),
        },
        Captured { path },
    ))
}

/// The Block half of [`capture`]: add it to the test and link to it.
#[derive(Debug)]
pub struct Capture {
    path: PathBuf,
    file: Option<std::fs::File>,
    drain: Duration,
}

impl Capture {
    /// How long `finish` waits for its senders to finish (default 60 s; the test's finish
    /// grace ends it sooner). Samples that arrive later are not captured.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain = timeout;
        self
    }

    fn write(&mut self, samples: &[Sample]) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for s in samples {
            let bytes = postcard::to_stdvec(s)
                .map_err(|e| Error::new(ErrorKind::Io, format!("cannot encode a sample: {e}")))?;
            let len = u32::try_from(bytes.len()).map_err(|_| {
                Error::new(
                    ErrorKind::Io,
                    "a sample larger than 4 GiB cannot be captured",
                )
            })?;
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&bytes);
        }
        let file = self.file.as_mut().ok_or_else(|| {
            Error::new(
                ErrorKind::Io,
                "the capture file is not open (prepare did not run)",
            )
        })?;
        // One write per batch, in append mode: a kill loses at most the batch being written,
        // and `take` ignores a torn last record.
        file.write_all(&buf).map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot write the capture file {}", self.path.display()),
            )
            .with_source(e)
        })
    }
}

impl Block for Capture {
    fn default_settings(&self) -> Settings {
        // Event-driven: it sleeps in `Context::wait` until a sample arrives.
        Settings::new().free_run()
    }

    fn output_labels(&self) -> Option<Vec<crate::Label>> {
        Some(Vec::new())
    }

    fn check(&self, graph: &crate::GraphView<'_>) -> Result<()> {
        if graph.inputs().is_empty() {
            return Err(Error::config(
                "a capture Block has no input link, so it would capture nothing; link the Block under test to it with Test::link",
            ));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("capture to {}", self.path.display())
    }

    fn prepare(&mut self, _ctx: &mut Context) -> Result<()> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!(
                        "cannot open the capture file {} (was its Captured handle dropped before the run?)",
                        self.path.display()
                    ),
                )
                .with_source(e)
            })?;
        self.file = Some(file);
        Ok(())
    }

    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if ctx.wait(Duration::from_millis(100)) {
            let mut got = Vec::new();
            ctx.recv_each(|_, s| got.push(s));
            self.write(&got)?;
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        let mut got = Vec::new();
        ctx.recv_each(|_, s| got.push(s));
        self.write(&got)?;
        let rest: Vec<Sample> = ctx
            .drain_until_ended(self.drain)
            .into_iter()
            .flatten()
            .collect();
        self.write(&rest)
    }
}

/// The handle half of [`capture`]: reads back what the [`Capture`] Block received.
/// Dropping it removes the capture file.
#[derive(Debug)]
pub struct Captured {
    path: PathBuf,
}

impl Captured {
    /// Every sample captured since the last `take`, in the order received, and empties the
    /// capture. Call it after the run: during a run it returns what was written so far.
    ///
    /// A record torn by a capture Block killed while writing is left out. An error if the
    /// file cannot be read or holds something that is not a sample.
    pub fn take(&self) -> Result<Vec<Sample>> {
        let io_err = |e: std::io::Error| {
            Error::new(
                ErrorKind::Io,
                format!("cannot read the capture file {}", self.path.display()),
            )
            .with_source(e)
        };
        let mut bytes = Vec::new();
        std::fs::File::open(&self.path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io_err)?;
        let out = decode(&bytes).map_err(|at| {
            Error::new(
                ErrorKind::Io,
                format!(
                    "the capture file {} is corrupt at byte {at}",
                    self.path.display()
                ),
            )
        })?;
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.path)
            .map_err(io_err)?;
        Ok(out)
    }

    /// The capture file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Length-prefixed postcard records; a torn last record is ignored. `Err(offset)` if a
/// complete record does not decode.
fn decode(bytes: &[u8]) -> std::result::Result<Vec<Sample>, usize> {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 4 {
        let len =
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let Some(record) = bytes.get(at + 4..at + 4 + len) else {
            break; // torn by a kill
        };
        out.push(postcard::from_bytes::<Sample>(record).map_err(|_| at)?);
        at += 4 + len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_torn_tail_is_ignored() {
        let (mut cap, handle) = capture();
        cap.file = Some(
            std::fs::OpenOptions::new()
                .append(true)
                .open(handle.path())
                .unwrap(),
        );
        let a = Sample::new().with("t(s)", 0.5).with("n", 3i64);
        let b = Sample::new()
            .with("note", "hello")
            .with("v", vec![1.0, 2.0]);
        cap.write(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(handle.take().unwrap(), vec![a.clone(), b]);
        assert!(handle.take().unwrap().is_empty(), "take empties it");
        cap.write(std::slice::from_ref(&a)).unwrap();
        // A record cut short, as by a kill in the middle of a write.
        cap.file
            .as_mut()
            .unwrap()
            .write_all(&[9, 0, 0, 0, 1])
            .unwrap();
        assert_eq!(handle.take().unwrap(), vec![a]);
        let path = handle.path().to_path_buf();
        drop(handle);
        assert!(!path.exists(), "the file is removed with the handle");
    }

    #[test]
    fn garbage_is_an_error_naming_the_offset() {
        assert_eq!(decode(&[2, 0, 0, 0, 0xff, 0xff]), Err(0));
    }

    #[test]
    fn a_capture_without_input_is_refused_before_the_run() {
        let (cap, _handle) = capture();
        let mut t = crate::Test::new("capture-no-input");
        t.log_file(None);
        t.add_with(cap, Settings::new().name("cap"));
        let e = t.run_in_threads().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.to_string().contains("no input link"), "{e}");
        assert!(e.to_string().contains("cap"), "{e}");
    }
}
