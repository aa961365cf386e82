//! # crabby-cli: tests as files
//!
//! A test can be a TOML file, checked before anything starts, and run by the `crabby`
//! command without writing code:
//!
//! ```toml
//! crabby = 1
//! name = "tensile"
//!
//! [blocks.generator]
//! type = "Generator"
//! freq = "200 Hz"
//! cmd_unit = "mm/s"
//! paths = [
//!   { type = "constant", value = "30 mm/min", until = "Exx(%) > 0.4" },
//!   { type = "constant", value = "-0.5 mm/s", until = "F(N) <= 0" },
//! ]
//!
//! [blocks.machine]
//! type = "FakeMachine"
//! max_speed = "5 mm/s"
//!
//! [[links]]
//! from = "generator"
//! to = "machine"
//!
//! [[links]]
//! from = "machine"
//! to = "generator"
//! ```
//!
//! - `crabby run FILE [--out DIR] [--quiet]`: a results folder (`results/<date>-<time>/`),
//!   the test, `summary.txt` and `report.html`. Exit code 1 if the test fails.
//! - `crabby validate FILE...`: every mistake at once, each with `file:line:column`, the
//!   Block and parameter, what was expected, and a "did you mean" for misspelt keys, types,
//!   Block names and labels; nothing is opened; exit code 1.
//! - `crabby list [TYPE]`: every Block type with its parameters (type, unit, range,
//!   default, doc).
//! - `crabby schema`: a JSON Schema of test files for editors (Taplo, VS Code "Even Better
//!   TOML": `#:schema ./crabby.schema.json` on the file's first line).
//!
//! The principal types: [`Registry`] of [`BlockType`]s, each declaring its parameters once
//! ([`crabby::schema::ParamSpec`]) and a constructor that builds the Block through its
//! public Rust API, so the file and the Rust API are two front ends of one graph builder
//! ([`graph::load`] checks the file, builds the [`crabby::Test`] and runs the Rust API's own
//! graph check); [`Diagnostic`] and [`CliError`] for errors; [`run::run`] and
//! [`run::Summary`].
//!
//! Units: a parameter with a unit takes a plain number (in its unit) or a quantity with a
//! compatible unit (`"5 mm/s"`, `"0.3 mm/min"`, `"2 kN"`, `"150 °C"`), converted exactly
//! ([`crabby::units`]); an incompatible unit is an error naming both.
//!
//! ## Your own Blocks
//!
//! A crate with its own Blocks registers them and gets the same command:
//!
//! ```no_run
//! use crabby::schema::{ParamSpec, ParamType, Range};
//! use crabby_cli::{BlockType, Registry};
//! # struct Heater { watts: f64 }
//! # impl crabby::Block for Heater {
//! #     fn step(&mut self, _: &mut crabby::Context) -> crabby::Result<crabby::Flow> { Ok(crabby::Flow::Continue) }
//! # }
//!
//! fn main() {
//!     let mut registry = Registry::stock();
//!     registry.register(
//!         BlockType::new("Heater", "my lab's heater", |p, _| {
//!             Ok(Box::new(Heater { watts: p.f64("power").unwrap_or(100.0) }))
//!         })
//!         .param(ParamSpec::new("power", ParamType::Float, "heating power")
//!             .unit("W").range(Range::above(0.0)).default("100")),
//!     );
//!     std::process::exit(crabby_cli::main(registry));
//! }
//! ```
//!
//! `examples/own_blocks.rs` is a complete one. No thread is started before the test runs
//! (the run forks in this process).

pub mod describe;
pub mod diag;
pub mod file;
pub mod graph;
pub mod registry;
pub mod run;

pub use diag::{CliError, Diagnostic, Sources};
pub use registry::{BlockType, BuildContext, Registry};

use std::io::Write;
use std::path::{Path, PathBuf};

const USAGE: &str = "usage:
  crabby run FILE [--out DIR] [--quiet] [--meta KEY=VALUE]...   run a test file (results in DIR/<date>-<time>, default DIR: results)
  crabby validate FILE...                 check test files; every error, nothing started
  crabby list [TYPE]                      Block types and their parameters
  crabby schema                           JSON Schema of test files, for editors
  crabby help                             this text";

/// Checks the test file `path`: `Ok` or every mistake ([`CliError::Invalid`]). Nothing is
/// opened or started.
pub fn validate(path: &Path, registry: &Registry) -> Result<(), CliError> {
    graph::load(path, registry, Path::new("results"), true, true).map(|_| ())
}

/// The `crabby` command with this registry, on the process's arguments; returns the exit
/// code (0 success, 1 failure, 2 usage error).
pub fn main(registry: Registry) -> i32 {
    main_with_args(&registry, std::env::args().skip(1).collect())
}

fn out(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}

fn err(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// [`main`] with explicit arguments (without the program's name).
pub fn main_with_args(registry: &Registry, args: Vec<String>) -> i32 {
    match dispatch(registry, args) {
        Ok(code) => code,
        Err(e) => {
            err(&e.render());
            e.exit_code()
        }
    }
}

fn dispatch(registry: &Registry, args: Vec<String>) -> Result<i32, CliError> {
    let usage = |m: &str| CliError::Usage(format!("{m}\n{USAGE}"));
    let mut it = args.into_iter();
    let cmd = it.next().ok_or_else(|| usage("no command given"))?;
    let rest: Vec<String> = it.collect();
    match cmd.as_str() {
        "run" => {
            let mut file = None;
            let mut outdir = PathBuf::from("results");
            let mut quiet = false;
            let mut meta = Vec::new();
            let mut a = rest.into_iter();
            while let Some(x) = a.next() {
                match x.as_str() {
                    "--out" => {
                        outdir = a
                            .next()
                            .ok_or_else(|| usage("--out needs a folder"))?
                            .into()
                    }
                    "--quiet" => quiet = true,
                    "--meta" => {
                        let kv = a.next().ok_or_else(|| usage("--meta needs key=value"))?;
                        let (k, v) = kv.split_once('=').ok_or_else(|| {
                            usage(&format!(
                                "--meta {kv}: write key=value, e.g. operator=Dupont"
                            ))
                        })?;
                        meta.push((k.trim().to_owned(), v.to_owned()));
                    }
                    f if !f.starts_with("--") && file.is_none() => file = Some(PathBuf::from(f)),
                    other => return Err(usage(&format!("unexpected argument '{other}'"))),
                }
            }
            let file = file.ok_or_else(|| usage("run: which test file?"))?;
            run::run(&file, registry, &outdir, quiet, &meta).map(|_| 0)
        }
        "validate" => {
            if rest.is_empty() {
                return Err(usage("validate: which test file(s)?"));
            }
            let mut failed: Option<CliError> = None;
            for f in &rest {
                match validate(Path::new(f), registry) {
                    Ok(()) => out(&format!("{f}: ok\n")),
                    Err(e) => {
                        err(&e.render());
                        failed = Some(e);
                    }
                }
            }
            Ok(if failed.is_some() { 1 } else { 0 })
        }
        "list" => match describe::list(registry, rest.first().map(String::as_str)) {
            Some(t) => {
                out(&t);
                Ok(0)
            }
            None => {
                let t = rest.first().map(String::as_str).unwrap_or_default();
                let hint = crabby::schema::suggest(t, registry.types().iter().map(|t| t.name))
                    .map(|s| format!("; did you mean '{s}'?"))
                    .unwrap_or_default();
                Err(usage(&format!("no Block type '{t}'{hint}")))
            }
        },
        "schema" => {
            let s =
                serde_json::to_string_pretty(&describe::json_schema(registry)).unwrap_or_default();
            out(&s);
            out("\n");
            Ok(0)
        }
        "help" | "-h" | "--help" => {
            out(USAGE);
            out("\n");
            Ok(0)
        }
        other => {
            let hint = crabby::schema::suggest(other, ["run", "validate", "list", "schema"])
                .map(|s| format!(" (did you mean '{s}'?)"))
                .unwrap_or_default();
            Err(usage(&format!("unknown command '{other}'{hint}")))
        }
    }
}
