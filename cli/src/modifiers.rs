//! Link modifiers in test files: a link's `modifiers` list, each a table chosen by its
//! `type` ([`variants`]), built through the core's constructors ([`build`]) into
//! [`crabby::modifier`] values that run in the sender's process before each send.
//!
//! ```toml
//! [[links]]
//! from = "daq"
//! to = "rec"
//! modifiers = [{ type = "Demux", labels = ["F(N)", "x(mm)"] }, { type = "Mean", n_points = 10 }]
//! ```
//!
//! Every modifier of the core is declared: `Mean`, `Median`, `MovingAvg`, `MovingMed`,
//! `DownSampler` (a number of points), `Diff` and `Integrate` (a label against time),
//! `Offset` (labels and their targets), `Demux` (a stream's channels), `TrigOnChange` and
//! `TrigOnValue` (a label, numeric values). The labels after the modifiers are what the
//! receiver can read (`crabby validate` checks them).

use crabby::modifier::{
    Demux, Diff, DownSampler, Integrate, Mean, Median, Modifier, MovingAvg, MovingMed, Offset,
    TrigOnChange, TrigOnValue,
};
use crabby::schema::{Checked, ParamSpec, ParamType as T, Params, Range, Value, Variant};
use crabby::{Label, Sample};

/// A modifier of any type (forwards every method, its name included).
pub struct BoxedModifier(pub Box<dyn Modifier>);

impl std::fmt::Debug for BoxedModifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BoxedModifier")
            .field(&self.0.name())
            .finish()
    }
}

impl Modifier for BoxedModifier {
    fn apply(&mut self, sample: Sample) -> Option<Sample> {
        self.0.apply(sample)
    }
    fn name(&self) -> String {
        self.0.name()
    }
    fn output_labels(&self, input: &[Label]) -> Result<Vec<Label>, String> {
        self.0.output_labels(input)
    }
}

fn n_points(what: &'static str) -> Vec<ParamSpec> {
    vec![ParamSpec::new("n_points", T::Int, what).range(Range::between(1.0, 1e9))]
}

fn calculus(out: &'static str) -> Vec<ParamSpec> {
    vec![
        ParamSpec::new("label", T::Label, "the label it works on"),
        ParamSpec::new("time_label", T::Label, "against this label").default("t(s)"),
        ParamSpec::new("out_label", T::Label, out).optional(),
    ]
}

/// The modifier types a link's `modifiers` list can hold.
pub fn variants() -> Vec<Variant> {
    vec![
        Variant {
            name: "Mean",
            doc: "sends the mean of every n values, per label (the samples in between are dropped)",
            params: n_points("values per mean"),
        },
        Variant {
            name: "Median",
            doc: "sends the median of every n values, per label",
            params: n_points("values per median"),
        },
        Variant {
            name: "MovingAvg",
            doc: "smooths every value over the last n, per label",
            params: n_points("values in the moving window"),
        },
        Variant {
            name: "MovingMed",
            doc: "moving median of the last n values, per label",
            params: n_points("values in the moving window"),
        },
        Variant {
            name: "DownSampler",
            doc: "passes one sample in every n",
            params: n_points("one sample passes in this many"),
        },
        Variant {
            name: "Diff",
            doc: "adds the backward difference of a label against time",
            params: calculus("the result's label (default d_<label>)"),
        },
        Variant {
            name: "Integrate",
            doc: "adds the trapezoidal integral of a label over time",
            params: calculus("the result's label (default i_<label>)"),
        },
        Variant {
            name: "Offset",
            doc: "shifts labels so that their first value becomes a target (zeroing a sensor)",
            params: vec![
                ParamSpec::new("labels", T::List(Box::new(T::Label)), "the labels to shift"),
                ParamSpec::new(
                    "targets",
                    T::List(Box::new(T::Float)),
                    "one target per label (default: all 0)",
                )
                .optional(),
            ],
        },
        Variant {
            name: "Demux",
            doc: "turns a stream chunk (arrays from a DAQ) into one value per channel",
            params: vec![
                ParamSpec::new(
                    "labels",
                    T::List(Box::new(T::Label)),
                    "one label per channel of the stream",
                ),
                ParamSpec::new("stream_label", T::Label, "the stream's label").default("stream"),
                ParamSpec::new("time_label", T::Label, "the time label").default("t(s)"),
                ParamSpec::new(
                    "mean",
                    T::Bool,
                    "send each channel's mean over the chunk (default: its first value)",
                )
                .default("false"),
                ParamSpec::new(
                    "transpose",
                    T::Bool,
                    "the chunk is channel-major: all of the first channel, then the second (default: row-major)",
                )
                .default("false"),
            ],
        },
        Variant {
            name: "TrigOnChange",
            doc: "sends a sample only when a label's value changes",
            params: vec![ParamSpec::new("label", T::Label, "the label watched")],
        },
        Variant {
            name: "TrigOnValue",
            doc: "sends only the samples whose label has one of the given values",
            params: vec![
                ParamSpec::new("label", T::Label, "the label watched"),
                ParamSpec::new(
                    "values",
                    T::List(Box::new(T::Float)),
                    "the values that pass",
                ),
            ],
        },
    ]
}

/// The `modifiers` parameter of a link.
pub fn param() -> ParamSpec {
    ParamSpec::new(
        "modifiers",
        T::List(Box::new(T::Tagged(variants()))),
        "transformations run in the sender before each send, in order",
    )
    .optional()
}

/// Builds one checked modifier table, or the constructor's error.
pub fn build(c: &Checked) -> Result<Box<dyn Modifier>, String> {
    let Value::Variant(name, q) = &c.value else {
        return Err("not a modifier table".into());
    };
    let n = || q.i64("n_points").unwrap_or(1) as usize; // ≥ 1 by the declared range
    let label = || q.str("label").unwrap_or_default().to_owned();
    let e = |e: crabby::Error| e.description().to_owned();
    Ok(match *name {
        "Mean" => Box::new(Mean::new(n()).map_err(e)?),
        "Median" => Box::new(Median::new(n()).map_err(e)?),
        "MovingAvg" => Box::new(MovingAvg::new(n()).map_err(e)?),
        "MovingMed" => Box::new(MovingMed::new(n()).map_err(e)?),
        "DownSampler" => Box::new(DownSampler::new(n()).map_err(e)?),
        "Diff" => {
            let mut d = Diff::new(label()).time_label(q.str("time_label").unwrap_or("t(s)"));
            if let Some(o) = q.str("out_label") {
                d = d.out_label(o);
            }
            Box::new(d)
        }
        "Integrate" => {
            let mut d = Integrate::new(label()).time_label(q.str("time_label").unwrap_or("t(s)"));
            if let Some(o) = q.str("out_label") {
                d = d.out_label(o);
            }
            Box::new(d)
        }
        "Offset" => {
            let labels = q.strs("labels").unwrap_or_default();
            Box::new(match q.f64s("targets") {
                Some(t) => Offset::new(labels, t).map_err(e)?,
                None => Offset::zero(labels).map_err(e)?,
            })
        }
        "Demux" => Box::new(
            Demux::new(q.strs("labels").unwrap_or_default())
                .map_err(e)?
                .stream_label(q.str("stream_label").unwrap_or("stream"))
                .time_label(q.str("time_label").unwrap_or("t(s)"))
                .mean(q.bool("mean").unwrap_or(false))
                .transpose(q.bool("transpose").unwrap_or(false)),
        ),
        "TrigOnChange" => Box::new(TrigOnChange::new(label())),
        "TrigOnValue" => {
            Box::new(TrigOnValue::new(label(), q.f64s("values").unwrap_or_default()).map_err(e)?)
        }
        other => return Err(format!("no modifier '{other}'")),
    })
}

/// The modifiers of a link's checked options, each with its table (for positions).
pub fn of_link(opts: &Params) -> Vec<&Checked> {
    opts.list("modifiers").unwrap_or_default().iter().collect()
}
