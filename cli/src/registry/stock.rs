//! crabby's own Blocks as file types: each declares its parameters once and builds the
//! Block through the public API of `crabby-blocks` (and `crabby-web` with the `web`
//! feature).
//!
//! Covered: `Generator` (every path kind), `FakeMachine`, `Recorder`, `StopBlock`,
//! `Console`, `Pid`, `Mean`, `Multiplexer`, `Synchronizer`, `Pause`, `Limits`, `Button`,
//! `LinkReader`, `Sink`, and `WebView` (feature `web`). `IOBlock` and `Machine` are in
//! [`hardware`](super::hardware) (with their drivers), `CameraBlock` in
//! [`camera`](super::camera) (with its cameras). Not declared: `Hdf5Recorder` (feature
//! `hdf5` of crabby-blocks).

use super::{error_at, quantity_in, BlockType, BuildContext};
use crate::diag::Diagnostic;
use crabby::schema::{Checked, ParamSpec, ParamType as T, Params, Range, Span, Value, Variant};
use crabby::units::Unit;
use crabby_blocks as b;

/// Every stock Block type.
pub fn all() -> Vec<BlockType> {
    let mut v = vec![
        generator(),
        fake_machine(),
        recorder(),
        stop_block(),
        console(),
        pid(),
        mean(),
        multiplexer(),
        synchronizer(),
        pause(),
        limits(),
        button(),
        link_reader(),
        sink(),
    ];
    #[cfg(feature = "web")]
    v.push(web_view());
    v
}

fn list(t: T) -> T {
    T::List(Box::new(t))
}

fn labels_at(p: &Params, name: &str) -> Vec<(String, Span)> {
    p.list(name)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.as_str().map(|s| (s.to_owned(), c.span.clone())))
        .collect()
}

fn label_at(p: &Params, name: &str) -> Vec<(String, Span)> {
    p.get(name)
        .and_then(|c| c.as_str().map(|s| (s.to_owned(), c.span.clone())))
        .into_iter()
        .collect()
}

fn until() -> ParamSpec {
    ParamSpec::new(
        "until",
        T::Condition,
        "ends the path when it holds (\"F(N) > 50\", \"delay=10\")",
    )
    .optional()
}

fn path_variants() -> Vec<Variant> {
    let q = |name, doc| ParamSpec::new(name, T::Quantity, doc);
    let cond = |name, doc| ParamSpec::new(name, T::Condition, doc);
    let cycles = ParamSpec::new(
        "cycles",
        T::Float,
        "cycles (half cycles allowed; 0 = endless)",
    )
    .range(Range::at_least(0.0));
    vec![
        Variant {
            name: "constant",
            doc: "a constant command",
            params: vec![q("value", "the command (in cmd_unit)"), until()],
        },
        Variant {
            name: "hold",
            doc: "holds the previous path's last command",
            params: vec![until()],
        },
        Variant {
            name: "ramp",
            doc: "from + speed·(t − t_start)",
            params: vec![
                q("speed", "slope (in cmd_unit per second)"),
                q("from", "start value (default: the previous command)").optional(),
                until(),
            ],
        },
        Variant {
            name: "sine",
            doc: "sin(2π·freq·(t − t_start) − phase)·amplitude/2 + offset",
            params: vec![
                ParamSpec::new("freq", T::Float, "frequency").unit("Hz"),
                q("amplitude", "peak to peak (in cmd_unit)"),
                q("offset", "centre (in cmd_unit)").default("0"),
                ParamSpec::new("phase", T::Float, "phase, radians").default("0"),
                until(),
            ],
        },
        Variant {
            name: "cyclic",
            doc: "value1 until condition1, then value2 until condition2, for cycles",
            params: vec![
                q("value1", "first value (in cmd_unit)"),
                cond("condition1", "ends the first phase"),
                q("value2", "second value (in cmd_unit)"),
                cond("condition2", "ends the second phase"),
                cycles.clone(),
            ],
        },
        Variant {
            name: "cyclic_ramp",
            doc: "a continuous ramp, slope speed1 until condition1, then speed2 until condition2",
            params: vec![
                q("speed1", "first slope (cmd_unit per second)"),
                cond("condition1", "ends the first phase"),
                q("speed2", "second slope (cmd_unit per second)"),
                cond("condition2", "ends the second phase"),
                cycles,
                q("from", "start value (default: the previous command)").optional(),
            ],
        },
        Variant {
            name: "conditional",
            doc: "value1 while condition1, else value2 while condition2, else otherwise",
            params: vec![
                cond("condition1", "first condition"),
                q("value1", "value while condition1 holds"),
                cond("condition2", "second condition"),
                q("value2", "value while condition2 holds"),
                q("otherwise", "value when neither holds").default("0"),
                until(),
            ],
        },
        Variant {
            name: "integrator",
            doc: "v −= ∫label·dt / inertia over what was received",
            params: vec![
                ParamSpec::new("label", T::Label, "the label integrated"),
                ParamSpec::new("inertia", T::Float, "divides the integral (not 0)"),
                q("from", "start value (default: the previous command)").optional(),
                ParamSpec::new("time_label", T::Label, "the time label").default("t(s)"),
                until(),
            ],
        },
        Variant {
            name: "custom_file",
            doc: "a t,value file, interpolated, ends after its last time",
            params: vec![
                ParamSpec::new("file", T::File, "the table (relative to the test file)"),
                ParamSpec::new(
                    "delimiter",
                    T::Choice(vec![",", ";", "\t", " "]),
                    "column separator",
                )
                .default(","),
                until(),
            ],
        },
        Variant {
            name: "points",
            doc: "[time, value] points, interpolated, ends after the last time",
            params: vec![
                ParamSpec::new(
                    "points",
                    list(list(T::Float)),
                    "[[t, value], ...], times in s, values in cmd_unit",
                ),
                until(),
            ],
        },
    ]
}

/// The command's unit (`cmd_unit`): for levels, for differences (amplitudes) and per second
/// (slopes).
struct CmdUnits {
    value: Option<Unit>,
    difference: Option<Unit>,
    rate: Option<Unit>,
}

/// How a path's number relates to the command.
#[derive(Clone, Copy)]
enum Kind {
    Level,
    Difference,
    Rate,
}

fn cmd_units(p: &Params) -> Result<CmdUnits, Vec<Diagnostic>> {
    let Some(u) = p.str("cmd_unit") else {
        return Ok(CmdUnits {
            value: None,
            difference: None,
            rate: None,
        });
    };
    let value = Unit::parse(u).map_err(|e| error_at(p, "cmd_unit", e))?;
    Ok(CmdUnits {
        difference: Some(value.difference()),
        rate: Some(value.per_second()),
        value: Some(value),
    })
}

fn build_path(
    kind: &str,
    q: &Params,
    u: &CmdUnits,
    cx: &BuildContext,
    errors: &mut Vec<Diagnostic>,
) -> Option<b::Path> {
    let mut num = |name: &str, kind: Kind| -> Option<f64> {
        let c = q.get(name)?;
        let unit = match kind {
            Kind::Level => u.value.as_ref(),
            Kind::Difference => u.difference.as_ref(),
            Kind::Rate => u.rate.as_ref(),
        };
        match quantity_in(c, unit, &format!("'{name}'")) {
            Ok(v) => Some(v),
            Err(d) => {
                errors.push(d);
                None
            }
        }
    };
    let s = |name: &str| q.str(name).unwrap_or_default().to_owned();
    let f = |name: &str| q.f64(name).unwrap_or_default();
    let path = match kind {
        "constant" => b::Path::constant(num("value", Kind::Level)?),
        "hold" => b::Path::hold(),
        "ramp" => {
            let mut p = b::Path::ramp(num("speed", Kind::Rate)?);
            if q.get("from").is_some() {
                p = p.from(num("from", Kind::Level)?);
            }
            p
        }
        "sine" => {
            let amplitude = num("amplitude", Kind::Difference)?;
            // The offset is a level: convert it like a value, but a plain number stays.
            let offset = if q.get("offset").is_some() {
                num("offset", Kind::Level)?
            } else {
                0.0
            };
            b::Path::sine(f("freq"), amplitude)
                .offset(offset)
                .phase(f("phase"))
        }
        "cyclic" => b::Path::cyclic(
            num("value1", Kind::Level)?,
            s("condition1"),
            num("value2", Kind::Level)?,
            s("condition2"),
            f("cycles"),
        ),
        "cyclic_ramp" => {
            let mut p = b::Path::cyclic_ramp(
                num("speed1", Kind::Rate)?,
                s("condition1"),
                num("speed2", Kind::Rate)?,
                s("condition2"),
                f("cycles"),
            );
            if q.get("from").is_some() {
                p = p.from(num("from", Kind::Level)?);
            }
            p
        }
        "conditional" => {
            let mut p = b::Path::conditional(
                s("condition1"),
                num("value1", Kind::Level)?,
                s("condition2"),
                num("value2", Kind::Level)?,
            );
            if q.get("otherwise").is_some() {
                p = p.otherwise(num("otherwise", Kind::Level)?);
            }
            p
        }
        "integrator" => {
            let mut p = b::Path::integrator(s("label"), f("inertia"));
            if q.get("from").is_some() {
                p = p.from(num("from", Kind::Level)?);
            }
            if let Some(t) = q.str("time_label") {
                p = p.time_label(t);
            }
            p
        }
        "custom_file" => {
            let file = cx.input(&s("file"));
            let d = q
                .str("delimiter")
                .and_then(|d| d.chars().next())
                .unwrap_or(',');
            b::Path::custom_file_with_delimiter(file, d)
        }
        "points" => {
            let mut pts = Vec::new();
            for c in q.list("points").unwrap_or_default() {
                match &c.value {
                    Value::List(pair) if pair.len() == 2 => {
                        match (pair[0].as_f64(), pair[1].as_f64()) {
                            (Some(t), Some(v)) => pts.push((t, v)),
                            _ => errors.push(Diagnostic::at(
                                c.span.clone(),
                                "'points': expected [time, value]",
                            )),
                        }
                    }
                    _ => errors.push(Diagnostic::at(
                        c.span.clone(),
                        "'points': expected [time, value]",
                    )),
                }
            }
            b::Path::points(pts)
        }
        _ => return None,
    };
    Some(match q.str("until") {
        Some(c) => path.until(c),
        None => path,
    })
}

/// The Generator: a command signal from a list of paths.
pub fn generator() -> BlockType {
    BlockType::new(
        "Generator",
        "a command signal built from paths, each ending on a condition",
        |p, cx| {
            let units = cmd_units(p)?;
            let mut errors = Vec::new();
            let mut paths = Vec::new();
            let items: &[Checked] = p.list("paths").unwrap_or_default();
            for item in items {
                if let Value::Variant(kind, q) = &item.value {
                    if let Some(path) = build_path(kind, q, &units, cx, &mut errors) {
                        paths.push((path, item.span.clone()));
                    }
                }
            }
            if !errors.is_empty() {
                return Err(errors);
            }
            let spans: Vec<Span> = paths.iter().map(|(_, s)| s.clone()).collect();
            let mut g = b::Generator::new(paths.into_iter().map(|(p, _)| p)).map_err(|e| {
                // "path 2 ...": point at that path.
                let at = e
                    .description()
                    .strip_prefix("path ")
                    .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|i| spans.get(i).cloned())
                    .unwrap_or_else(|| p.span_of("paths"));
                vec![Diagnostic::at(at, format!("'paths': {}", e.description()))]
            })?;
            if let Some(l) = p.str("cmd_label") {
                g = g.cmd_label(l);
            }
            if let Some(l) = p.str("path_index_label") {
                g = g.path_index_label(l);
            }
            g = g
                .repeat(p.bool("repeat").unwrap_or(false))
                .spam(p.bool("spam").unwrap_or(false))
                .safe_start(p.bool("safe_start").unwrap_or(false));
            if let Some(d) = p.f64("end_delay") {
                g = g.end_delay(Some(d));
            }
            Ok(Box::new(g))
        },
    )
    .param(ParamSpec::new("paths", list(T::Tagged(path_variants())), "the paths, run in order"))
    .param(
        ParamSpec::new("cmd_unit", T::Str, "unit of the command: path values may be written in any compatible unit (\"30 mm/min\")")
            .optional(),
    )
    .param(ParamSpec::new("cmd_label", T::Label, "label of the command").default("cmd"))
    .param(ParamSpec::new("path_index_label", T::Label, "label of the path index").default("index"))
    .param(ParamSpec::new("repeat", T::Bool, "start over after the last path").default("false"))
    .param(ParamSpec::new("spam", T::Bool, "send the command every loop").default("false"))
    .param(ParamSpec::new("safe_start", T::Bool, "wait for the first input before starting").default("false"))
    .param(
        ParamSpec::new("end_delay", T::Float, "end the test this long after the last path")
            .unit("s")
            .range(super::seconds_range(true))
            .default("2"),
    )
}

/// The simulated tensile machine.
pub fn fake_machine() -> BlockType {
    BlockType::new(
        "FakeMachine",
        "a simulated tensile machine (elastic–plastic sample that breaks)",
        |p, _| {
            let mut model = b::FakeMachineModel::new();
            if let Some(v) = p.f64("rigidity") {
                model = model.rigidity(v);
            }
            if let Some(v) = p.f64("l0") {
                model = model.l0(v);
            }
            if let Some(v) = p.f64("max_strain_pct") {
                model = model.max_strain_pct(v);
            }
            if let Some(v) = p.f64("nu") {
                model = model.nu(v);
            }
            if let Some(v) = p.f64("max_speed") {
                model = model.max_speed(v);
            }
            if p.str("mode") == Some("position") {
                model = model.mode(b::FakeMachineMode::Position);
            }
            model
                .validate()
                .map_err(|e| vec![Diagnostic::at(p.span.clone(), e.description().to_owned())])?;
            let mut m = b::FakeMachine::with_model(model);
            if let Some(l) = p.str("cmd_label") {
                m = m.cmd_label(l);
            }
            if p.bool("noise") == Some(true) {
                let seed = p.i64("seed").unwrap_or(0) as u64;
                m = m.noise(b::FakeMachine::CRAPPY_NOISE, seed);
            }
            Ok(Box::new(m))
        },
    )
    .param(
        ParamSpec::new("rigidity", T::Float, "force per unit strain")
            .unit("N")
            .range(Range::above(0.0))
            .default("8.4e6"),
    )
    .param(
        ParamSpec::new("l0", T::Float, "initial length of the sample")
            .unit("mm")
            .range(Range::above(0.0))
            .default("200"),
    )
    .param(
        ParamSpec::new(
            "max_strain_pct",
            T::Float,
            "strain at which the sample breaks",
        )
        .unit("%")
        .range(Range::above(0.0))
        .default("1.51"),
    )
    .param(
        ParamSpec::new("nu", T::Float, "Poisson's ratio")
            .range(Range::between(0.0, 0.5))
            .default("0.3"),
    )
    .param(
        ParamSpec::new("max_speed", T::Float, "largest crosshead speed")
            .unit("mm/s")
            .range(Range::above(0.0))
            .default("5"),
    )
    .param(
        ParamSpec::new(
            "mode",
            T::Choice(vec!["speed", "position"]),
            "the command is a speed (mm/s) or a position (mm)",
        )
        .default("speed"),
    )
    .param(ParamSpec::new("cmd_label", T::Label, "label of the command").default("cmd"))
    .param(
        ParamSpec::new(
            "noise",
            T::Bool,
            "Crappy's measurement noise on the outputs",
        )
        .default("false"),
    )
    .param(
        ParamSpec::new("seed", T::Int, "seed of the noise")
            .range(Range::at_least(0.0))
            .default("0"),
    )
    .reads(|p| {
        let l = p.str("cmd_label").unwrap_or("cmd");
        vec![(l.to_owned(), p.span_of("cmd_label"))]
    })
}

/// The CSV recorder.
pub fn recorder() -> BlockType {
    BlockType::new(
        "Recorder",
        "every sample of its inputs to a CSV file, with a metadata file",
        |p, cx| {
            let mut r = b::Recorder::new(cx.output(p.str("file").unwrap_or_default()));
            if let Some(l) = p.strs("labels") {
                r = r.labels(l);
            }
            if let Some(f) = p.f64("merge_on_time") {
                r = r.merge_on_time(f);
            }
            if let Some(f) = p.f64("flush_period") {
                r = r.flush_period(super::seconds(f));
            }
            if let Some(f) = p.f64("drain_timeout") {
                r = r.drain_timeout(super::seconds(f));
            }
            Ok(Box::new(r))
        },
    )
    .param(ParamSpec::new(
        "file",
        T::File,
        "the CSV file (relative to the results folder)",
    ))
    .param(
        ParamSpec::new(
            "labels",
            list(T::Label),
            "record only these labels, in this order",
        )
        .optional(),
    )
    .param(
        ParamSpec::new(
            "merge_on_time",
            T::Float,
            "resample every label onto one time grid at this rate",
        )
        .unit("Hz")
        .range(Range::above(0.0))
        .optional(),
    )
    .param(
        ParamSpec::new("flush_period", T::Float, "batch rows for at most this long")
            .unit("s")
            .range(super::seconds_range(true))
            .default("0"),
    )
    .param(
        ParamSpec::new(
            "drain_timeout",
            T::Float,
            "how long finish waits for the last samples",
        )
        .unit("s")
        .range(super::seconds_range(true))
        .default("2"),
    )
    .reads(|p| labels_at(p, "labels"))
}

fn criteria_reads(p: &Params) -> Vec<(String, Span)> {
    // `t(s) > 60` is the time since the start (Crappy's convention): no input needed.
    let mut out = Vec::new();
    for c in p.list("criteria").unwrap_or_default() {
        if let Some(Ok(cond)) = c.as_str().map(b::Condition::parse) {
            for l in cond.time_label_as_elapsed("t(s)").labels() {
                out.push((l.as_str().to_owned(), c.span.clone()));
            }
        }
    }
    out
}

/// The StopBlock.
pub fn stop_block() -> BlockType {
    BlockType::new(
        "StopBlock",
        "stops the test when a criterion holds",
        |p, _| {
            let s = b::StopBlock::new(p.strs("criteria").unwrap_or_default())
                .map_err(|e| error_at(p, "criteria", e.description()))?;
            Ok(Box::new(s))
        },
    )
    .param(ParamSpec::new(
        "criteria",
        list(T::Condition),
        "conditions, any of which stops the test (\"F(N) > 1e5\", \"t(s) > 120\")",
    ))
    .reads_only(criteria_reads)
}

/// The Pause Block.
pub fn pause() -> BlockType {
    BlockType::new(
        "Pause",
        "pauses the test while a criterion holds",
        |p, _| {
            let s = b::Pause::new(p.strs("criteria").unwrap_or_default())
                .map_err(|e| error_at(p, "criteria", e.description()))?;
            Ok(Box::new(s))
        },
    )
    .param(ParamSpec::new(
        "criteria",
        list(T::Condition),
        "conditions, any of which pauses the test",
    ))
    .reads_only(criteria_reads)
}

/// The terminal status.
pub fn console() -> BlockType {
    BlockType::new(
        "Console",
        "a live status in the terminal: test time, chosen values, each Block's rate",
        |p, cx| {
            let mut c = b::Console::new();
            if let Some(v) = p.strs("values") {
                c = c.values(v);
            }
            if let Some(e) = p.f64("every") {
                c = c.every(super::seconds(e));
            }
            if let Some(e) = p.f64("warning_for") {
                c = c.warning_for(super::seconds(e));
            }
            if let Some(r) = p.bool("rates") {
                c = c.rates(r);
            }
            c = c.quiet(cx.quiet || p.bool("quiet").unwrap_or(false));
            Ok(Box::new(c))
        },
    )
    .param(ParamSpec::new("values", list(T::Label), "labels shown").optional())
    .param(
        ParamSpec::new("every", T::Float, "redraw period")
            .unit("s")
            .range(super::seconds_range(false))
            .optional(),
    )
    .param(
        ParamSpec::new("warning_for", T::Float, "how long the latest warning stays")
            .unit("s")
            .range(super::seconds_range(false))
            .optional(),
    )
    .param(ParamSpec::new("rates", T::Bool, "show each Block's achieved rate").optional())
    .param(
        ParamSpec::new("quiet", T::Bool, "show nothing (the graph stays the same)")
            .default("false"),
    )
    .input_link(b::Console::link)
}

/// The PID controller.
pub fn pid() -> BlockType {
    BlockType::new("Pid", "a PID controller (anti-windup, derivative on the measurement)", |p, _| {
        let setpoint = match (p.f64("setpoint"), p.str("setpoint_label")) {
            (Some(v), None) => b::Setpoint::Constant(v),
            (None, Some(l)) => b::Setpoint::label(l),
            _ => {
                return Err(vec![Diagnostic::at(
                    p.span.clone(),
                    "give exactly one of 'setpoint' (a value) and 'setpoint_label' (a label to follow)",
                )])
            }
        };
        let mut pid = b::Pid::new(
            p.str("input").unwrap_or_default(),
            setpoint,
            p.str("output").unwrap_or_default(),
        )
        .gains(
            p.f64("kp").unwrap_or(1.0),
            p.f64("ki").unwrap_or(0.0),
            p.f64("kd").unwrap_or(0.0),
        );
        if let Some(l) = p.f64s("out_limits") {
            if l.len() != 2 {
                return Err(error_at(p, "out_limits", "expected [min, max]"));
            }
            pid = pid.out_limits(l[0], l[1]);
        }
        if let Some(l) = p.f64s("i_limits") {
            if l.len() != 2 {
                return Err(error_at(p, "i_limits", "expected [min, max]"));
            }
            pid = pid.i_limits(l[0], l[1]);
        }
        if let Some(t) = p.f64("d_filter") {
            pid = pid.d_filter(t);
        }
        pid = pid.reverse(p.bool("reverse").unwrap_or(false));
        pid = pid.send_terms(p.bool("send_terms").unwrap_or(false));
        Ok(Box::new(pid))
    })
    .param(ParamSpec::new("input", T::Label, "the measured label"))
    .param(ParamSpec::new("output", T::Label, "the label of the command sent"))
    .param(ParamSpec::new("setpoint", T::Float, "a fixed setpoint").optional())
    .param(ParamSpec::new("setpoint_label", T::Label, "follow the latest value of this label").optional())
    .param(ParamSpec::new("kp", T::Float, "proportional gain").default("1"))
    .param(ParamSpec::new("ki", T::Float, "integral gain, per second").default("0"))
    .param(ParamSpec::new("kd", T::Float, "derivative gain, seconds").default("0"))
    .param(ParamSpec::new("out_limits", list(T::Float), "[min, max] of the output").optional())
    .param(ParamSpec::new("i_limits", list(T::Float), "[min, max] of the integral term").optional())
    .param(ParamSpec::new("d_filter", T::Float, "time constant of the derivative filter").unit("s").range(super::seconds_range(true)).optional())
    .param(ParamSpec::new("reverse", T::Bool, "reverse acting").default("false"))
    .param(ParamSpec::new("send_terms", T::Bool, "also send the P, I and D terms").default("false"))
    .reads(|p| {
        let mut v = label_at(p, "input");
        v.extend(label_at(p, "setpoint_label"));
        v
    })
}

/// The Mean Block.
pub fn mean() -> BlockType {
    BlockType::new(
        "Mean",
        "averages everything received in each time window",
        |p, _| {
            let mut m = b::Mean::new(p.f64("window").unwrap_or(1.0));
            if let Some(l) = p.str("time_label") {
                m = m.time_label(l);
            }
            Ok(Box::new(m))
        },
    )
    .param(
        ParamSpec::new("window", T::Float, "window length")
            .unit("s")
            .range(super::seconds_range(false)),
    )
    .param(ParamSpec::new("time_label", T::Label, "the time label").default("t(s)"))
}

/// The Multiplexer.
pub fn multiplexer() -> BlockType {
    BlockType::new(
        "Multiplexer",
        "resamples labels sent at different rates onto one time grid",
        |p, _| {
            let mut m = b::Multiplexer::new(p.f64("interp_freq").unwrap_or(1.0));
            if let Some(l) = p.strs("labels") {
                m = m.labels(l);
            }
            if let Some(l) = p.str("time_label") {
                m = m.time_label(l);
            }
            Ok(Box::new(m))
        },
    )
    .param(
        ParamSpec::new("interp_freq", T::Float, "rate of the output grid")
            .unit("Hz")
            .range(Range::above(0.0)),
    )
    .param(ParamSpec::new("labels", list(T::Label), "output only these labels").optional())
    .param(ParamSpec::new("time_label", T::Label, "the time label").default("t(s)"))
    .reads(|p| labels_at(p, "labels"))
}

/// The Synchronizer.
pub fn synchronizer() -> BlockType {
    BlockType::new(
        "Synchronizer",
        "interpolates labels onto the times of a reference label",
        |p, _| {
            let mut m = b::Synchronizer::new(p.str("reference").unwrap_or_default());
            if let Some(l) = p.strs("labels") {
                m = m.labels(l);
            }
            if let Some(l) = p.str("time_label") {
                m = m.time_label(l);
            }
            Ok(Box::new(m))
        },
    )
    .param(ParamSpec::new(
        "reference",
        T::Label,
        "the label whose times are the grid",
    ))
    .param(ParamSpec::new("labels", list(T::Label), "output only these labels").optional())
    .param(ParamSpec::new("time_label", T::Label, "the time label").default("t(s)"))
    .reads(|p| {
        let mut v = label_at(p, "reference");
        v.extend(labels_at(p, "labels"));
        v
    })
}

/// The Limits Block.
pub fn limits() -> BlockType {
    let limit = vec![
        ParamSpec::new("label", T::Label, "the label watched"),
        ParamSpec::new("name", T::Str, "name in messages").optional(),
        ParamSpec::new("warn_min", T::Float, "warn below").optional(),
        ParamSpec::new("warn_max", T::Float, "warn above").optional(),
        ParamSpec::new("alarm_min", T::Float, "alarm below").optional(),
        ParamSpec::new("alarm_max", T::Float, "alarm above").optional(),
        ParamSpec::new("hysteresis", T::Float, "back to normal this far inside")
            .range(Range::at_least(0.0))
            .optional(),
        ParamSpec::new(
            "persistence",
            T::Float,
            "a threshold must be crossed this long",
        )
        .unit("s")
        .range(super::seconds_range(true))
        .optional(),
        ParamSpec::new(
            "action",
            T::Choice(vec!["stop", "pause"]),
            "what an alarm does",
        )
        .default("stop"),
    ];
    BlockType::new(
        "Limits",
        "warning and alarm thresholds that stop or pause the test",
        |p, _| {
            let mut out = Vec::new();
            for c in p.list("limits").unwrap_or_default() {
                let Value::Table(q) = &c.value else { continue };
                let mut l = b::Limit::new(q.str("label").unwrap_or_default());
                if let Some(n) = q.str("name") {
                    l = l.name(n);
                }
                for (k, f) in [
                    (
                        "warn_min",
                        b::Limit::warn_min as fn(b::Limit, f64) -> b::Limit,
                    ),
                    ("warn_max", b::Limit::warn_max),
                    ("alarm_min", b::Limit::alarm_min),
                    ("alarm_max", b::Limit::alarm_max),
                    ("hysteresis", b::Limit::hysteresis),
                    ("persistence", b::Limit::persistence),
                ] {
                    if let Some(v) = q.f64(k) {
                        l = f(l, v);
                    }
                }
                if q.str("action") == Some("pause") {
                    l = l.action(b::LimitAction::Pause);
                }
                out.push(l);
            }
            Ok(Box::new(b::Limits::new(out)))
        },
    )
    .param(ParamSpec::new(
        "limits",
        list(T::Table(limit)),
        "the limits, one table each",
    ))
    .reads(|p| {
        p.list("limits")
            .unwrap_or_default()
            .iter()
            .filter_map(|c| match &c.value {
                Value::Table(q) => Some(label_at(q, "label")),
                _ => None,
            })
            .flatten()
            .collect()
    })
}

/// The Button.
pub fn button() -> BlockType {
    BlockType::new(
        "Button",
        "a key press in the terminal sends a count",
        |p, _| {
            let mut bt = b::Button::new().any_key(p.bool("any_key").unwrap_or(false));
            if let Some(l) = p.str("label") {
                bt = bt.label(l);
            }
            bt = bt.send_zero(p.bool("send_zero").unwrap_or(false));
            Ok(Box::new(bt))
        },
    )
    .param(ParamSpec::new("label", T::Label, "label of the count").default("step"))
    .param(ParamSpec::new("any_key", T::Bool, "any key, not only Enter").default("false"))
    .param(ParamSpec::new("send_zero", T::Bool, "send 0 at the start").default("false"))
}

/// The LinkReader.
pub fn link_reader() -> BlockType {
    BlockType::new(
        "LinkReader",
        "logs what it receives, rate-limited",
        |p, _| {
            let mut r = b::LinkReader::new();
            if let Some(v) = p.f64("max_lines_per_s") {
                r = r.max_lines_per_s(v);
            }
            Ok(Box::new(r))
        },
    )
    .param(
        ParamSpec::new(
            "max_lines_per_s",
            T::Float,
            "at most this many log lines per second",
        )
        .unit("Hz")
        .range(Range::above(0.0))
        .optional(),
    )
}

/// The Sink.
pub fn sink() -> BlockType {
    BlockType::new("Sink", "receives and drops everything", |_, _| {
        Ok(Box::new(b::Sink::new()))
    })
}

/// The web view.
#[cfg(feature = "web")]
pub fn web_view() -> BlockType {
    let plot = vec![
        ParamSpec::new("x", T::Label, "the x label").default("t(s)"),
        ParamSpec::new("y", list(T::Label), "the y labels"),
    ];
    BlockType::new(
        "WebView",
        "the test live in a browser: plots, values, health, STOP and Pause buttons",
        |p, _| {
            let mut w = crabby_web::WebView::new();
            if let Some(port) = p.i64("port") {
                w = w.port(port as u16);
            }
            for c in p.list("plots").unwrap_or_default() {
                if let Value::Table(q) = &c.value {
                    w = w.plot(
                        q.str("x").unwrap_or("t(s)"),
                        q.strs("y").unwrap_or_default(),
                    );
                }
            }
            if let Some(v) = p.strs("values") {
                w = w.values(v);
            }
            Ok(Box::new(w))
        },
    )
    .param(
        ParamSpec::new("port", T::Int, "TCP port (0: any free port)")
            .range(Range::between(0.0, 65535.0))
            .default("0"),
    )
    .param(ParamSpec::new("plots", list(T::Table(plot)), "plots, one table each").optional())
    .param(ParamSpec::new("values", list(T::Label), "latest values shown").optional())
    .input_link(crabby_web::link_options)
}
