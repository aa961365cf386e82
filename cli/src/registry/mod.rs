//! The registry of Block types a test file can use: [`Registry`], [`BlockType`],
//! [`BuildContext`], [`Built`].
//!
//! Each [`BlockType`] declares its parameters once ([`ParamSpec`]: type, unit, range,
//! default, one-line doc) and a constructor that builds the Block **through its public Rust
//! API** from the checked values, so a file runs exactly what the same Rust code would, and
//! the Rust API's own checks ([`crabby::Block::check`], the graph check of
//! [`crabby::Test::run`]) apply to files too. `crabby list`, `crabby schema`, `crabby
//! validate` and the metadata all read these declarations.
//!
//! [`Registry::stock`] holds crabby's Blocks ([`stock`]); a user's crate adds its own with
//! [`Registry::register`] and calls [`crate::main`] with it (see `examples/own_blocks.rs`).

pub mod camera;
pub mod hardware;
pub mod stock;

pub use camera::CameraType;
pub use hardware::{ActuatorDevice, Device, DriverKind, DriverType, IoDevice, IoWants, KeyError};

use crate::diag::Diagnostic;
use crabby::schema::{Checked, ParamSpec, ParamType, Params, Range, Span, Value};
use crabby::units::{Quantity, Unit};
use crabby::{Block, Context, Flow, GraphView, Label, LinkOptions, Settings};
use std::path::PathBuf;

/// Where a Block being built may read and write files.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The test file's folder: relative input files (a Generator's custom path) are read
    /// from there.
    pub base_dir: PathBuf,
    /// The results folder: relative output files (a Recorder's) are written there.
    pub out_dir: PathBuf,
    /// `crabby validate`: build, check, never open anything.
    pub validate_only: bool,
    /// `crabby run --quiet`: display Blocks show nothing.
    pub quiet: bool,
}

impl BuildContext {
    /// An input file's path.
    pub fn input(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            self.base_dir.join(p)
        }
    }
    /// An output file's path.
    pub fn output(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            self.out_dir.join(p)
        }
    }
}

/// A built Block, whatever its type (forwards every method, its kind included).
pub struct Built(pub Box<dyn Block>);

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Built").field(&self.0.kind()).finish()
    }
}

impl Block for Built {
    fn kind(&self) -> &str {
        self.0.kind()
    }
    fn default_settings(&self) -> Settings {
        self.0.default_settings()
    }
    fn output_labels(&self) -> Option<Vec<Label>> {
        self.0.output_labels()
    }
    fn check(&self, graph: &GraphView<'_>) -> crabby::Result<()> {
        self.0.check(graph)
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn prepare(&mut self, ctx: &mut Context) -> crabby::Result<()> {
        self.0.prepare(ctx)
    }
    fn begin(&mut self, ctx: &mut Context) -> crabby::Result<()> {
        self.0.begin(ctx)
    }
    fn step(&mut self, ctx: &mut Context) -> crabby::Result<Flow> {
        self.0.step(ctx)
    }
    fn finish(&mut self, ctx: &mut Context) -> crabby::Result<()> {
        self.0.finish(ctx)
    }
}

/// What a constructor returns: the Block, or its mistakes with their positions.
pub type BuildResult = Result<Box<dyn Block>, Vec<Diagnostic>>;

type BuildFn = Box<dyn Fn(&Params, &BuildContext) -> BuildResult>;
type ReadsFn = Box<dyn Fn(&Params) -> Vec<(String, Span)>>;

/// One Block type: its name in files, a one-line doc, its parameters, its constructor.
pub struct BlockType {
    /// The `type` in a file (the Rust type's name).
    pub name: &'static str,
    /// One line.
    pub doc: &'static str,
    /// Its own parameters (the settings every Block has are added by the registry).
    pub params: Vec<ParamSpec>,
    build: BuildFn,
    reads: ReadsFn,
    condition_reads: bool,
    /// Options of the links into it (a display Block's links drop the oldest samples).
    pub input_link: Option<fn() -> LinkOptions>,
}

impl std::fmt::Debug for BlockType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockType")
            .field("name", &self.name)
            .field("params", &self.params.len())
            .finish()
    }
}

impl BlockType {
    /// A Block type built by `build` from its checked parameters.
    pub fn new(
        name: &'static str,
        doc: &'static str,
        build: impl Fn(&Params, &BuildContext) -> BuildResult + 'static,
    ) -> BlockType {
        BlockType {
            name,
            doc,
            params: Vec::new(),
            build: Box::new(build),
            reads: Box::new(|_| Vec::new()),
            condition_reads: true,
            input_link: None,
        }
    }
    /// Declares a parameter.
    pub fn param(mut self, spec: ParamSpec) -> BlockType {
        self.params.push(spec);
        self
    }
    /// The labels it reads (besides those of its conditions, found from the declaration),
    /// for the graph check of `crabby validate`.
    pub fn reads(mut self, f: impl Fn(&Params) -> Vec<(String, Span)> + 'static) -> BlockType {
        self.reads = Box::new(f);
        self
    }
    /// The labels it reads, all of them: its conditions' labels are not added (a StopBlock's
    /// `t(s) > 60` is the time since the start, read from no input).
    pub fn reads_only(mut self, f: impl Fn(&Params) -> Vec<(String, Span)> + 'static) -> BlockType {
        self.reads = Box::new(f);
        self.condition_reads = false;
        self
    }
    /// Options of the links into it.
    pub fn input_link(mut self, f: fn() -> LinkOptions) -> BlockType {
        self.input_link = Some(f);
        self
    }
    /// Builds the Block.
    pub fn build(&self, p: &Params, cx: &BuildContext) -> BuildResult {
        (self.build)(p, cx)
    }
    /// The labels it reads from its inputs, where each is written.
    pub fn labels_read(&self, p: &Params) -> Vec<(String, Span)> {
        let mut out = (self.reads)(p);
        if !self.condition_reads {
            return out;
        }
        walk(&self.params, p, &mut |spec, c| {
            if spec_is_condition(spec) {
                if let Some(text) = c.as_str() {
                    if let Ok(cond) = crabby_blocks::Condition::parse(text) {
                        for l in cond.labels() {
                            out.push((l.as_str().to_owned(), c.span.clone()));
                        }
                    }
                }
            }
        });
        out
    }
}

fn spec_is_condition(spec: &ParamSpec) -> bool {
    matches!(spec.ty, ParamType::Condition)
}

/// Calls `f` on every leaf value of `p` with the declaration it was checked against
/// (list items and nested tables included).
pub fn walk<'a>(specs: &[ParamSpec], p: &'a Params, f: &mut dyn FnMut(&ParamSpec, &'a Checked)) {
    for spec in specs {
        if let Some(c) = p.get(spec.name) {
            walk_value(spec, &spec.ty, c, f);
        }
    }
}

fn walk_value<'a>(
    spec: &ParamSpec,
    ty: &ParamType,
    c: &'a Checked,
    f: &mut dyn FnMut(&ParamSpec, &'a Checked),
) {
    match (&c.value, ty) {
        (Value::List(items), ParamType::List(inner)) => {
            for i in items {
                walk_value(spec, inner, i, f);
            }
        }
        (Value::Table(t), ParamType::Table(specs)) => walk(specs, t, f),
        (Value::Variant(name, t), ParamType::Tagged(vs)) => {
            if let Some(v) = vs.iter().find(|v| v.name == *name) {
                walk(&v.params, t, f)
            }
        }
        _ => {
            // Leaves: a Condition list item carries its own spec's type.
            let leaf = ParamSpec {
                ty: ty.clone(),
                ..spec.clone()
            };
            f(&leaf, c)
        }
    }
}

/// The settings every Block has (see [`crabby::Settings`]).
pub fn settings_params() -> Vec<ParamSpec> {
    use ParamType as T;
    vec![
        ParamSpec::new("type", T::Str, "the Block's type (see `crabby list`)"),
        ParamSpec::new(
            "freq",
            T::Float,
            "loop rate (default: the Block's own, else 200 Hz)",
        )
        .unit("Hz")
        .range(Range::between(1e-5, 1e6))
        .optional(),
        ParamSpec::new("free_run", T::Bool, "loop as fast as possible, no pacing").default("false"),
        ParamSpec::new(
            "niceness",
            T::Int,
            "scheduling niceness, -20 (favoured) to 19",
        )
        .range(Range::between(-20.0, 19.0))
        .optional(),
        ParamSpec::new(
            "realtime",
            T::Int,
            "real-time priority (SCHED_FIFO), 1 to 99",
        )
        .range(Range::between(1.0, 99.0))
        .optional(),
        ParamSpec::new(
            "pausable",
            T::Bool,
            "whether a pause of the test pauses this Block",
        )
        .default("true"),
        ParamSpec::new(
            "display_freq",
            T::Bool,
            "log the achieved loop rate every few seconds",
        )
        .default("false"),
        ParamSpec::new(
            "step_timeout",
            T::Float,
            "fail the Block when one step takes longer than this",
        )
        .unit("s")
        .range(seconds_range(false))
        .optional(),
        ParamSpec::new(
            "log_level",
            T::Choice(vec!["off", "error", "warn", "info", "debug", "trace"]),
            "most verbose level this Block logs",
        )
        .optional(),
    ]
}

/// The range of a duration: above 0 (or from 0 with `zero_ok`) up to 10⁹ s (about 32
/// years: longer is a typo, and would overflow a `Duration`).
pub fn seconds_range(zero_ok: bool) -> Range {
    Range {
        min: Some((0.0, zero_ok)),
        max: Some((1e9, true)),
    }
}

/// A checked number of seconds as a `Duration` (saturating: never a panic).
pub fn seconds(s: f64) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(s).unwrap_or(std::time::Duration::MAX)
}

/// The [`Settings`] from the checked settings keys.
pub fn settings_of(name: &str, p: &Params) -> Settings {
    let mut s = Settings::new().name(name);
    if let Some(f) = p.f64("freq") {
        s = s.freq(f);
    }
    if p.bool("free_run") == Some(true) {
        s = s.free_run();
    }
    if let Some(n) = p.i64("niceness") {
        s = s.niceness(n as i32);
    }
    if let Some(r) = p.i64("realtime") {
        s = s.realtime(r as u8);
    }
    if let Some(b) = p.bool("pausable") {
        s = s.pausable(b);
    }
    if let Some(b) = p.bool("display_freq") {
        s = s.display_freq(b);
    }
    if let Some(t) = p.f64("step_timeout") {
        s = s.step_timeout(seconds(t));
    }
    if let Some(l) = p.str("log_level").and_then(|l| l.parse().ok()) {
        s = s.log_level(l);
    }
    s
}

/// The Block types a test file can use.
#[derive(Debug, Default)]
pub struct Registry {
    types: Vec<BlockType>,
    drivers: Vec<std::rc::Rc<DriverType>>,
    cameras: Vec<std::rc::Rc<CameraType>>,
}

impl Registry {
    /// No Block type.
    pub fn empty() -> Registry {
        Registry::default()
    }

    /// crabby's own Blocks ([`stock`]) and drivers ([`hardware`]).
    pub fn stock() -> Registry {
        let mut r = Registry::empty();
        for t in stock::all() {
            r.register(t);
        }
        for d in hardware::stock_drivers() {
            r.register_driver(d);
        }
        for c in camera::stock_cameras() {
            r.register_camera(c);
        }
        r
    }

    /// Adds a camera type (a later one of the same name replaces the earlier): the
    /// `CameraBlock` type is declared again with it among its `camera` types.
    pub fn register_camera(&mut self, c: CameraType) -> &mut Registry {
        self.cameras.retain(|o| o.name != c.name);
        self.cameras.push(std::rc::Rc::new(c));
        let b = camera::camera_block(&self.cameras);
        self.register(b);
        self
    }

    /// Every camera type, in registration order.
    pub fn cameras(&self) -> impl Iterator<Item = &CameraType> {
        self.cameras.iter().map(|c| c.as_ref())
    }

    /// Adds a driver (a later one of the same name replaces the earlier): the `IOBlock`
    /// (InOut drivers) and `Machine` (Actuators) types are declared again with it among
    /// their `device` types.
    pub fn register_driver(&mut self, d: DriverType) -> &mut Registry {
        self.drivers.retain(|o| o.name != d.name);
        self.drivers.push(std::rc::Rc::new(d));
        let io = hardware::io_block(&self.drivers);
        let machine = hardware::machine(&self.drivers);
        self.register(io);
        self.register(machine);
        self
    }

    /// Every driver, in registration order.
    pub fn drivers(&self) -> impl Iterator<Item = &DriverType> {
        self.drivers.iter().map(|d| d.as_ref())
    }

    /// Adds a Block type (a later one of the same name replaces the earlier).
    pub fn register(&mut self, t: BlockType) -> &mut Registry {
        self.types.retain(|o| o.name != t.name);
        self.types.push(t);
        self
    }

    /// The type named `name`.
    pub fn get(&self, name: &str) -> Option<&BlockType> {
        self.types.iter().find(|t| t.name == name)
    }

    /// Every type, in registration order.
    pub fn types(&self) -> &[BlockType] {
        &self.types
    }
}

/// A diagnostic for a constructor's error on parameter `name`.
pub fn error_at(p: &Params, name: &str, e: impl std::fmt::Display) -> Vec<Diagnostic> {
    vec![Diagnostic::at(p.span_of(name), format!("'{name}': {e}"))]
}

/// A [`Value::Quantity`] converted to `unit` (`None`: a plain number or dimensionless).
pub fn quantity_in(c: &Checked, unit: Option<&Unit>, what: &str) -> Result<f64, Diagnostic> {
    let (v, u) = match &c.value {
        Value::Quantity(v, u) => (*v, u.as_str()),
        Value::Float(v) => (*v, ""),
        Value::Int(v) => (*v as f64, ""),
        _ => {
            return Err(Diagnostic::at(
                c.span.clone(),
                format!("{what}: not a number"),
            ))
        }
    };
    let from = if u.is_empty() {
        return Ok(v); // a plain number is in the expected unit
    } else {
        Unit::parse(u).map_err(|e| Diagnostic::at(c.span.clone(), format!("{what}: {e}")))?
    };
    let to = unit.cloned().unwrap_or_else(Unit::none);
    Quantity {
        value: v,
        unit: from,
    }
    .to(&to)
    .map_err(|e| {
        Diagnostic::at(c.span.clone(), format!("{what}: {e}")).help(if unit.is_none() {
            "set the Block's cmd_unit to give its values units".to_owned()
        } else {
            format!("write the value in {to} or a compatible unit")
        })
    })
}
