//! From a test file to a [`crabby::Test`]: [`load`] checks everything (parameters, units,
//! conditions, links, the labels each Block reads), builds every Block through the
//! registry, then runs the Rust API's own graph check ([`crabby::Test::describe`]), and
//! returns a [`Plan`] or every mistake with its position.

use crate::diag::{CliError, Diagnostic, Sources};
use crate::file::{self, BlockDecl, TestFile};
use crate::registry::{settings_of, settings_params, walk, BuildContext, Built, Registry};
use crabby::schema::{check_table, suggest, Node, ParamSpec, ParamType, Params, Span};
use crabby::{Block, LinkOptions, Overflow, Test};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// What `[summary]` asks for: which Recorder's file to summarise, and its force and strain
/// labels (for the maximum force and the strain at rupture).
#[derive(Debug, Clone, Default)]
pub struct SummarySpec {
    /// The CSV file of that Recorder.
    pub data: Option<PathBuf>,
    /// The force label.
    pub force: Option<String>,
    /// The strain label.
    pub strain: Option<String>,
}

/// A checked test, ready to run.
#[derive(Debug)]
pub struct Plan {
    /// The graph.
    pub test: Test,
    /// The test's name.
    pub name: String,
    /// The files every Recorder writes (in the results folder).
    pub recorders: Vec<(String, PathBuf)>,
    /// `[summary]`.
    pub summary: SummarySpec,
    /// The files read, to render messages.
    pub sources: Sources,
    /// The graph as text (Blocks, settings, links), from the Rust API.
    pub description: String,
    /// Every Block's parameters as checked (in their declared units, defaults marked),
    /// from the registry's declarations.
    pub parameters: String,
    /// `description` and `[metadata]`, for the run documents.
    pub metadata: Vec<(String, String)>,
}

fn show_value(c: &crabby::schema::Checked) -> String {
    use crabby::schema::Value as V;
    match &c.value {
        V::Bool(b) => b.to_string(),
        V::Int(i) => i.to_string(),
        V::Float(f) => f.to_string(),
        V::Quantity(v, u) if u.is_empty() => v.to_string(),
        V::Quantity(v, u) => format!("\"{v} {u}\""),
        V::Str(s) => format!("{s:?}"),
        V::List(l) => format!(
            "[{}]",
            l.iter().map(show_value).collect::<Vec<_>>().join(", ")
        ),
        V::Table(p) => show_table(None, p),
        V::Variant(t, p) => show_table(Some(t), p),
    }
}

fn show_table(tag: Option<&str>, p: &Params) -> String {
    let mut parts: Vec<String> = tag.map(|t| format!("type = {t:?}")).into_iter().collect();
    parts.extend(
        p.entries
            .iter()
            .map(|(k, c)| format!("{k} = {}", show_value(c))),
    );
    format!("{{ {} }}", parts.join(", "))
}

/// Each parameter of a Block as it was checked: its value in its unit, or its default
/// (marked), in declaration order.
fn parameter_values(t: &crate::registry::BlockType, p: &Params) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for spec in block_params(t).iter().filter(|s| s.name != "type") {
        let unit = spec.unit.map(|u| format!(" {u}")).unwrap_or_default();
        match (p.get(spec.name), &spec.default) {
            (Some(c), _) => {
                let v = show_value(c);
                if matches!(c.value, crabby::schema::Value::Float(_)) {
                    out.push((spec.name, format!("{v}{unit}")));
                } else {
                    out.push((spec.name, v));
                }
            }
            (None, crabby::schema::Default::Value(d)) => {
                out.push((spec.name, format!("{d}{unit} (default)")))
            }
            _ => {}
        }
    }
    out
}

/// `name: type` then each parameter, its value in its unit, or its default.
fn describe_parameters(name: &str, values: &[(&str, String)], type_name: &str) -> String {
    let mut out = format!("[{name}] {type_name}\n");
    for (k, v) in values {
        out.push_str(&format!("  {k} = {v}\n"));
    }
    out
}

fn summary_params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::new(
            "data",
            ParamType::Str,
            "the Recorder whose file is summarised",
        ),
        ParamSpec::new("force", ParamType::Label, "the force label (maximum force)").optional(),
        ParamSpec::new(
            "strain",
            ParamType::Label,
            "the strain label (strain at rupture: where the force collapses)",
        )
        .optional(),
    ]
}

fn link_params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::new(
            "name",
            ParamType::Str,
            "the link's name (one receiver only)",
        )
        .optional(),
        ParamSpec::new(
            "overflow",
            ParamType::Choice(vec!["block", "drop_oldest"]),
            "when the receiver lags: the sender waits (lossless) or the oldest samples go",
        )
        .optional(),
        ParamSpec::new("capacity", ParamType::Int, "buffer size, in samples")
            .range(crabby::schema::Range::between(1.0, 1e9))
            .optional(),
    ]
}

/// The parameters of a Block of type `t`: the settings every Block has, then its own.
pub fn block_params(t: &crate::registry::BlockType) -> Vec<ParamSpec> {
    let mut v = settings_params();
    v.extend(t.params.iter().cloned());
    v
}

fn schema_diags(errs: Vec<crabby::schema::SchemaError>, who: &str) -> Vec<Diagnostic> {
    errs.into_iter()
        .map(|e| {
            let help = e.suggestion().map(|s| format!("did you mean '{s}'?"));
            let mut d = Diagnostic::at(e.span.clone(), format!("{who}: {e}"));
            d.help = help;
            d
        })
        .collect()
}

/// Reads, checks and builds the test in `path`. `out_dir` is where relative output files
/// go. Nothing is opened or started.
pub fn load(
    path: &Path,
    registry: &Registry,
    out_dir: &Path,
    validate_only: bool,
    quiet: bool,
) -> Result<Plan, CliError> {
    let mut sources = Sources::default();
    let mut errors = Vec::new();
    let tf = file::read(path, &mut sources, &mut errors);
    let Some(tf) = tf else {
        return Err(CliError::Invalid(errors, Box::new(sources)));
    };
    let cx = BuildContext {
        base_dir: file::base_dir(path),
        out_dir: out_dir.to_owned(),
        validate_only,
        quiet,
    };
    let built = build_blocks(&tf, registry, &cx, &sources, &mut errors);
    let links = check_links(&tf, registry, &built, &mut errors);
    check_labels(&tf, registry, &built, &links, &mut errors);
    let summary = check_summary(&tf, &built, &mut errors);
    if !errors.is_empty() {
        return Err(CliError::Invalid(errors, Box::new(sources)));
    }
    // Everything checks: the graph through the Rust API.
    let mut test = Test::new(tf.name.clone());
    let mut ids = HashMap::new();
    let mut recorders = Vec::new();
    let mut decls = HashMap::new();
    let mut parameters = String::new();
    for (decl, b) in tf.blocks.iter().zip(built) {
        let Some(b) = b else { continue };
        let values = registry
            .get(b.type_name)
            .map(|t| parameter_values(t, &b.params))
            .unwrap_or_default();
        parameters.push_str(&describe_parameters(&decl.name, &values, b.type_name));
        if b.type_name == "Recorder" {
            if let Some(f) = b.params.str("file") {
                recorders.push((decl.name.clone(), cx.output(f)));
            }
        }
        let id = test.add_with(Built(b.block), settings_of(&decl.name, &b.params));
        let mut given = vec![("type", b.type_name.to_owned())];
        given.extend(values);
        test.block_parameters(id, given);
        ids.insert(decl.name.clone(), id);
        decls.insert(decl.name.clone(), decl);
    }
    for l in links {
        test.link_with(ids[&l.from], ids[&l.to], l.options);
    }
    let description = match test.describe() {
        Ok(d) => d,
        Err(e) => {
            let span = e
                .origin()
                .and_then(|o| decls.get(o))
                .map(|d| d.name_span.clone())
                .unwrap_or_else(|| tf.top.span.clone());
            let who = e
                .origin()
                .map(|o| format!("Block '{o}': "))
                .unwrap_or_default();
            return Err(CliError::Invalid(
                vec![Diagnostic::at(span, format!("{who}{}", e.description()))],
                Box::new(sources),
            ));
        }
    };
    let summary = SummarySpec {
        data: summary.as_ref().and_then(|(rec, _, _)| {
            recorders
                .iter()
                .find(|(n, _)| n == rec)
                .map(|(_, p)| p.clone())
        }),
        force: summary.as_ref().and_then(|s| s.1.clone()),
        strain: summary.as_ref().and_then(|s| s.2.clone()),
    };
    Ok(Plan {
        test,
        name: tf.name,
        recorders,
        summary,
        sources,
        description,
        parameters,
        metadata: tf.metadata,
    })
}

/// A Block built from the file.
struct BuiltBlock {
    type_name: &'static str,
    params: Params,
    block: Box<dyn Block>,
}

fn build_blocks(
    tf: &TestFile,
    registry: &Registry,
    cx: &BuildContext,
    sources: &Sources,
    errors: &mut Vec<Diagnostic>,
) -> Vec<Option<BuiltBlock>> {
    let names: Vec<&str> = registry.types().iter().map(|t| t.name).collect();
    let _ = sources;
    tf.blocks
        .iter()
        .map(|decl| build_one(decl, registry, &names, cx, errors))
        .collect()
}

fn build_one(
    decl: &BlockDecl,
    registry: &Registry,
    names: &[&str],
    cx: &BuildContext,
    errors: &mut Vec<Diagnostic>,
) -> Option<BuiltBlock> {
    let (tname, tspan) = decl.type_name.as_ref()?;
    let who = format!("Block '{}'", decl.name);
    let Some(t) = registry.get(tname) else {
        errors.push(
            Diagnostic::at(
                tspan.clone(),
                format!("{who}: unknown Block type '{tname}'"),
            )
            .suggest(suggest(tname, names.iter().copied()))
            .help_if_none("`crabby list` shows every Block type"),
        );
        return None;
    };
    let specs = block_params(t);
    let mut errs = Vec::new();
    let params = check_table(&specs, &decl.node, "", &[], &mut errs);
    let before = errors.len();
    errors.extend(schema_diags(errs, &who));
    // Conditions: a threshold with a unit is converted to the label's unit, then each is
    // parsed as the Block will parse it.
    let mut rewrites: Vec<(Span, String)> = Vec::new();
    walk(&specs, &params, &mut |spec, c| {
        if matches!(spec.ty, ParamType::Condition) {
            if let Some(text) = c.as_str() {
                let text = match condition_units(text) {
                    Ok(Some(t)) => {
                        rewrites.push((c.span.clone(), t.clone()));
                        t
                    }
                    Ok(None) => text.to_owned(),
                    Err(e) => {
                        errors.push(Diagnostic::at(
                            c.span.clone(),
                            format!("{who}: '{}': {e}", spec.name),
                        ));
                        return;
                    }
                };
                if let Err(e) = crabby_blocks::Condition::parse(&text) {
                    errors.push(Diagnostic::at(
                        c.span.clone(),
                        format!("{who}: '{}': {}", spec.name, e.description()),
                    ));
                }
            }
        }
    });
    let mut params = params;
    if !rewrites.is_empty() {
        rewrite_strings(&mut params, &rewrites);
    }
    if params.f64("freq").is_some() && params.bool("free_run") == Some(true) {
        errors.push(Diagnostic::at(
            params.span_of("free_run"),
            format!("{who}: 'freq' and 'free_run = true' contradict each other; keep one"),
        ));
    }
    if errors.len() > before {
        return None;
    }
    match t.build(&params, cx) {
        Ok(block) => Some(BuiltBlock {
            type_name: t.name,
            params,
            block,
        }),
        Err(ds) => {
            errors.extend(ds.into_iter().map(|mut d| {
                d.message = format!("{who}: {}", d.message);
                d
            }));
            None
        }
    }
}

/// `"F(N) > 150 kN"` → `"F(N) > 150000"`: a threshold with a unit is converted to the unit
/// the label names in its parentheses. `None` when the text has no unit to convert.
pub fn condition_units(text: &str) -> Result<Option<String>, String> {
    use crabby::units::{Quantity, Unit};
    let t = text.trim();
    if let Some(rest) = t.strip_prefix("delay") {
        // "delay=2 min" → "delay=120".
        let Some(v) = rest.trim_start().strip_prefix('=').map(str::trim) else {
            return Ok(None);
        };
        return match Quantity::parse(v) {
            Ok(q) if !q.unit.as_str().is_empty() => {
                let s = Unit::parse("s").map_err(|e| e.to_string())?;
                let secs = q.to(&s).map_err(|e| format!("\"{t}\": {e}"))?;
                Ok(Some(format!("delay={secs}")))
            }
            _ => Ok(None),
        };
    }
    let Some(i) = t.rfind(['>', '<']) else {
        return Ok(None);
    };
    let mut op_end = i + 1;
    if t[op_end..].starts_with('=') {
        op_end += 1;
    }
    let (label, op) = (t[..i].trim(), &t[i..op_end]);
    let rhs = t[op_end..].trim();
    if rhs.parse::<f64>().is_ok() {
        return Ok(None);
    }
    let Ok(q) = Quantity::parse(rhs) else {
        return Ok(None); // not a quantity either: the parser says why
    };
    if q.unit.as_str().is_empty() {
        return Ok(None);
    }
    let unit = label
        .rfind('(')
        .filter(|_| label.ends_with(')'))
        .map(|o| &label[o + 1..label.len() - 1]);
    let Some(unit) = unit else {
        return Err(format!(
            "the threshold \"{rhs}\" has a unit but label '{label}' names none (write it as \"name(unit)\", or give a plain number)"
        ));
    };
    let to = Unit::parse(unit).map_err(|e| format!("label '{label}': {e}"))?;
    let v = q.to(&to).map_err(|e| format!("\"{t}\": {e}"))?;
    Ok(Some(format!("{label} {op} {v}")))
}

fn rewrite_strings(p: &mut Params, map: &[(Span, String)]) {
    use crabby::schema::Value;
    fn one(c: &mut crabby::schema::Checked, map: &[(Span, String)]) {
        match &mut c.value {
            Value::Str(s) => {
                if let Some((_, t)) = map.iter().find(|(sp, _)| *sp == c.span) {
                    *s = t.clone();
                }
            }
            Value::List(items) => items.iter_mut().for_each(|i| one(i, map)),
            Value::Table(t) | Value::Variant(_, t) => rewrite_strings(t, map),
            _ => {}
        }
    }
    for (_, c) in &mut p.entries {
        one(c, map);
    }
}

trait HelpIfNone {
    fn help_if_none(self, h: &str) -> Self;
}

impl HelpIfNone for Diagnostic {
    fn help_if_none(self, h: &str) -> Self {
        if self.help.is_some() {
            self
        } else {
            self.help(h)
        }
    }
}

/// A checked link to one receiver.
struct Link {
    from: String,
    to: String,
    to_index: usize,
    from_index: usize,
    options: LinkOptions,
}

fn check_links(
    tf: &TestFile,
    registry: &Registry,
    built: &[Option<BuiltBlock>],
    errors: &mut Vec<Diagnostic>,
) -> Vec<Link> {
    let names: Vec<&str> = tf.blocks.iter().map(|b| b.name.as_str()).collect();
    let mut out = Vec::new();
    let mut link_names: Vec<String> = Vec::new();
    let mut pairs: BTreeSet<(usize, usize)> = BTreeSet::new();
    for l in &tf.links {
        let mut errs = Vec::new();
        // from/to are checked by hand (a name or an array of names); options here.
        let opts = check_table(&link_params(), &l.node, "", &["from", "to"], &mut errs);
        errors.extend(schema_diags(errs, "link"));
        let find = |(n, s): &(String, Span), errors: &mut Vec<Diagnostic>| match names
            .iter()
            .position(|b| b == n)
        {
            Some(i) => Some(i),
            None => {
                errors.push(
                    Diagnostic::at(s.clone(), format!("link: unknown Block '{n}'"))
                        .suggest(suggest(n, names.iter().copied())),
                );
                None
            }
        };
        let from = find(&l.from, errors);
        let name = opts.str("name").map(str::to_owned);
        if name.is_some() && l.to.len() > 1 {
            errors.push(Diagnostic::at(
                opts.span_of("name"),
                "link: 'name' names one link; give one receiver in 'to', or no name",
            ));
        }
        if let Some(n) = &name {
            if link_names.contains(n) {
                errors.push(Diagnostic::at(
                    opts.span_of("name"),
                    format!("two links are named '{n}'; link names must be unique"),
                ));
            }
            link_names.push(n.clone());
        }
        for to in &l.to {
            let Some(ti) = find(to, errors) else { continue };
            let Some(fi) = from else { continue };
            if fi == ti {
                errors.push(Diagnostic::at(
                    to.1.clone(),
                    format!(
                        "link from '{}' to itself: a Block cannot read what it sends",
                        to.0
                    ),
                ));
                continue;
            }
            if !pairs.insert((fi, ti)) {
                errors.push(Diagnostic::at(
                    to.1.clone(),
                    format!("a second link from '{}' to '{}'", l.from.0, to.0),
                ));
                continue;
            }
            // The receiver's own link options (a display Block drops the oldest), then the
            // file's.
            let mut options = built[ti]
                .as_ref()
                .and_then(|b| registry.get(b.type_name))
                .and_then(|t| t.input_link)
                .map(|f| f())
                .unwrap_or_default();
            if let Some(n) = &name {
                options = options.name(n.clone());
            }
            match opts.str("overflow") {
                Some("drop_oldest") => options = options.overflow(Overflow::DropOldest),
                Some("block") => options = options.overflow(Overflow::Block),
                _ => {}
            }
            if let Some(c) = opts.i64("capacity") {
                options = options.capacity_samples(c as u64);
            }
            out.push(Link {
                from: l.from.0.clone(),
                to: to.0.clone(),
                from_index: fi,
                to_index: ti,
                options,
            });
        }
    }
    out
}

fn check_labels(
    tf: &TestFile,
    registry: &Registry,
    built: &[Option<BuiltBlock>],
    links: &[Link],
    errors: &mut Vec<Diagnostic>,
) {
    for (bi, b) in built.iter().enumerate() {
        let Some(b) = b else { continue };
        let Some(t) = registry.get(b.type_name) else {
            continue;
        };
        let reads = t.labels_read(&b.params);
        if reads.is_empty() {
            continue;
        }
        let name = &tf.blocks[bi].name;
        let inputs: Vec<&Link> = links.iter().filter(|l| l.to_index == bi).collect();
        if inputs.is_empty() {
            let (l, span) = &reads[0];
            errors.push(
                Diagnostic::at(
                    span.clone(),
                    format!("Block '{name}' reads '{l}' but nothing is linked into it"),
                )
                .help(format!("add a [[links]] entry with to = \"{name}\"")),
            );
            continue;
        }
        let mut available: BTreeSet<String> = BTreeSet::new();
        let mut known = true;
        for l in &inputs {
            match built[l.from_index]
                .as_ref()
                .and_then(|f| f.block.output_labels())
            {
                Some(ls) => available.extend(ls.iter().map(|l| l.as_str().to_owned())),
                None => known = false,
            }
        }
        if !known {
            continue; // a sender that does not declare its labels: checked at run time
        }
        for (l, span) in reads {
            if !available.contains(&l) {
                let senders: Vec<&str> = inputs.iter().map(|l| l.from.as_str()).collect();
                errors.push(
                    Diagnostic::at(
                        span,
                        format!(
                            "Block '{name}' reads label '{l}', which no Block linked into it sends ({} send{} {})",
                            senders.join(", "),
                            if senders.len() == 1 { "s" } else { "" },
                            available.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(", ")
                        ),
                    )
                    .suggest(suggest(&l, available.iter().map(String::as_str))),
                );
            }
        }
    }
}

/// `[summary]`: (Recorder name, force label, strain label).
fn check_summary(
    tf: &TestFile,
    built: &[Option<BuiltBlock>],
    errors: &mut Vec<Diagnostic>,
) -> Option<(String, Option<String>, Option<String>)> {
    let (_, node): (&Span, &Node) = tf.top.get("summary")?;
    let mut errs = Vec::new();
    let p = check_table(&summary_params(), node, "", &[], &mut errs);
    errors.extend(schema_diags(errs, "summary"));
    let data = p.str("data")?;
    let recorders: Vec<&str> = tf
        .blocks
        .iter()
        .zip(built)
        .filter(|(_, b)| b.as_ref().is_some_and(|b| b.type_name == "Recorder"))
        .map(|(d, _)| d.name.as_str())
        .collect();
    if !recorders.contains(&data) {
        let all: Vec<&str> = tf.blocks.iter().map(|b| b.name.as_str()).collect();
        errors.push(
            Diagnostic::at(
                p.span_of("data"),
                format!("summary: 'data' must name a Recorder Block, and '{data}' is not one"),
            )
            .suggest(suggest(data, recorders.iter().chain(all.iter()).copied())),
        );
        return None;
    }
    Some((
        data.to_owned(),
        p.str("force").map(str::to_owned),
        p.str("strain").map(str::to_owned),
    ))
}

#[cfg(test)]
mod tests {
    use super::condition_units;

    #[test]
    fn thresholds_are_converted_to_the_labels_unit() {
        let c = |t: &str| condition_units(t);
        assert_eq!(c("F(N) > 150 kN"), Ok(Some("F(N) > 150000".into())));
        assert_eq!(c("x(mm) <= 3 cm"), Ok(Some("x(mm) <= 30".into())));
        assert_eq!(c("t(s) > 2 min"), Ok(Some("t(s) > 120".into())));
        assert_eq!(c("delay=2 min"), Ok(Some("delay=120".into())));
        assert_eq!(c("delay = 500 ms"), Ok(Some("delay=0.5".into())));
        // Plain numbers and unparsable text are left to the condition parser.
        assert_eq!(c("Exx(%) > 0.4"), Ok(None));
        assert_eq!(c("delay=10"), Ok(None));
        assert_eq!(c("F(N) >> 5"), Ok(None));
        let Ok(Some(t)) = c("T(°C) >= 300 K") else {
            panic!()
        };
        let v: f64 = t.strip_prefix("T(°C) >= ").unwrap().parse().unwrap();
        assert!((v - 26.85).abs() < 1e-9, "{t}");
        assert!(c("x > 5 mm").unwrap_err().contains("names none"));
        assert!(c("F(N) > 5 mm").unwrap_err().contains("'mm'"));
    }
}
