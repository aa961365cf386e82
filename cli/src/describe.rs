//! Text and JSON generated from the registry's declarations: [`list`] (`crabby list`) and
//! [`json_schema`] (`crabby schema`, JSON Schema draft 2020-12 for editors).

use crate::graph::block_params;
use crate::registry::{BlockType, Registry};
use crabby::schema::{Default, ParamSpec, ParamType, Range};
use serde_json::{json, Map, Value};

/// `crabby list [TYPE]`: every Block type (or one) with its parameters. `None` if `only`
/// names no type.
pub fn list(registry: &Registry, only: Option<&str>) -> Option<String> {
    let mut out = String::new();
    let types: Vec<&BlockType> = registry
        .types()
        .iter()
        .filter(|t| only.is_none_or(|o| o == t.name))
        .collect();
    if only.is_none() {
        out.push_str("Block types (`crabby list TYPE` for one; every Block also takes the settings freq, free_run, niceness, realtime, pausable, display_freq, step_timeout, log_level):\n\n");
    }
    let drivers: Vec<_> = registry
        .drivers()
        .filter(|d| only.is_none_or(|o| o == d.name))
        .collect();
    let cameras: Vec<_> = registry
        .cameras()
        .filter(|c| only.is_none_or(|o| o == c.name))
        .collect();
    if types.is_empty() && drivers.is_empty() && cameras.is_empty() {
        return None;
    }
    for t in types {
        out.push_str(&format!("{}: {}\n", t.name, t.doc));
        for p in &t.params {
            param_lines(&mut out, p, 1);
        }
        if only.is_some() {
            out.push_str("  settings every Block has:\n");
            for p in block_params(t)
                .iter()
                .filter(|p| p.name != "type" && !t.params.iter().any(|q| q.name == p.name))
            {
                param_lines(&mut out, p, 2);
            }
        }
        out.push('\n');
    }
    if !drivers.is_empty() && only.is_none() {
        out.push_str("Drivers (the `device = { type = ... }` of an IOBlock or of a Machine's actuators):\n\n");
    }
    for d in drivers {
        let of = match d.kind {
            crate::registry::DriverKind::InOut => "IOBlock",
            crate::registry::DriverKind::Actuator => "Machine",
        };
        out.push_str(&format!("{} ({of} device): {}\n", d.name, d.doc));
        for p in &d.params {
            param_lines(&mut out, p, 1);
        }
        out.push('\n');
    }
    if !cameras.is_empty() && only.is_none() {
        out.push_str("Cameras (the `camera = { type = ... }` of a CameraBlock):\n\n");
    }
    for c in cameras {
        out.push_str(&format!("{} (CameraBlock camera): {}\n", c.name, c.doc));
        for p in &c.params {
            param_lines(&mut out, p, 1);
        }
        out.push('\n');
    }
    Some(out)
}

fn param_lines(out: &mut String, p: &ParamSpec, depth: usize) {
    let pad = "  ".repeat(depth);
    let mut what = p.ty.describe();
    if let ParamType::List(inner) = &p.ty {
        if matches!(**inner, ParamType::Tagged(_) | ParamType::Table(_)) {
            what = "array of tables".into();
        }
    }
    if let Some(u) = p.unit {
        what.push_str(&format!(" [{u}]"));
    }
    if let Some(r) = p.range {
        what.push_str(&format!(", {r}"));
    }
    let default = match &p.default {
        Default::Required => "required".to_owned(),
        Default::Value(v) => format!("default {v}"),
        Default::Optional => "optional".to_owned(),
    };
    out.push_str(&format!(
        "{pad}{:<18} {what}; {default}. {}\n",
        p.name, p.doc
    ));
    let inner = match &p.ty {
        ParamType::List(t) => t.as_ref(),
        t => t,
    };
    match inner {
        ParamType::Table(specs) => {
            for s in specs {
                param_lines(out, s, depth + 1);
            }
        }
        ParamType::Tagged(vs) => {
            for v in vs {
                out.push_str(&format!("{pad}  type = \"{}\": {}\n", v.name, v.doc));
                for s in &v.params {
                    param_lines(out, s, depth + 2);
                }
            }
        }
        _ => {}
    }
}

fn range_json(m: &mut Map<String, Value>, r: Option<Range>) {
    let Some(r) = r else { return };
    if let Some((v, inc)) = r.min {
        m.insert(
            if inc { "minimum" } else { "exclusiveMinimum" }.into(),
            json!(v),
        );
    }
    if let Some((v, inc)) = r.max {
        m.insert(
            if inc { "maximum" } else { "exclusiveMaximum" }.into(),
            json!(v),
        );
    }
}

fn type_json(p: &ParamSpec, ty: &ParamType) -> Value {
    let mut m = Map::new();
    match ty {
        ParamType::Bool => {
            m.insert("type".into(), json!("boolean"));
        }
        ParamType::Int => {
            m.insert("type".into(), json!("integer"));
            range_json(&mut m, p.range);
        }
        ParamType::Float => {
            let mut num = Map::new();
            num.insert("type".into(), json!("number"));
            range_json(&mut num, p.range);
            let q = match p.unit {
                Some(u) => {
                    json!({"type": "string", "description": format!("a quantity in {u} or a compatible unit, such as \"1 {u}\"")})
                }
                None => json!({"type": "string", "description": "a number as text (\"40 %\")"}),
            };
            m.insert("anyOf".into(), json!([Value::Object(num), q]));
        }
        ParamType::Quantity => {
            m.insert(
                "anyOf".into(),
                json!([{"type": "number"}, {"type": "string", "description": "a quantity such as \"5 mm/s\""}]),
            );
        }
        ParamType::Str | ParamType::Label | ParamType::Condition | ParamType::File => {
            m.insert("type".into(), json!("string"));
        }
        ParamType::Choice(c) => {
            m.insert("enum".into(), json!(c));
        }
        ParamType::List(inner) => {
            m.insert("type".into(), json!("array"));
            m.insert("items".into(), type_json(p, inner));
        }
        ParamType::Table(specs) => return object_json(specs, None),
        ParamType::Tagged(vs) => {
            let one: Vec<Value> = vs
                .iter()
                .map(|v| {
                    let mut o = object_json(&v.params, Some(("type", v.name)));
                    if let Some(obj) = o.as_object_mut() {
                        obj.insert("description".into(), json!(v.doc));
                    }
                    o
                })
                .collect();
            m.insert("oneOf".into(), Value::Array(one));
        }
    }
    m.insert("description".into(), json!(describe_param(p)));
    Value::Object(m)
}

fn describe_param(p: &ParamSpec) -> String {
    let mut d = p.doc.to_owned();
    if let Some(u) = p.unit {
        d.push_str(&format!(" [{u}]"));
    }
    if let Default::Value(v) = &p.default {
        d.push_str(&format!(" (default {v})"));
    }
    d
}

fn object_json(specs: &[ParamSpec], tag: Option<(&str, &str)>) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    if let Some((k, v)) = tag {
        props.insert(k.into(), json!({"const": v}));
        required.push(json!(k));
    }
    for s in specs {
        if tag.is_some_and(|(k, _)| k == s.name) {
            continue;
        }
        props.insert(s.name.into(), type_json(s, &s.ty));
        if s.default == Default::Required {
            required.push(json!(s.name));
        }
    }
    json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

/// `crabby schema`: a JSON Schema (draft 2020-12) of test files.
pub fn json_schema(registry: &Registry) -> Value {
    let blocks: Vec<Value> = registry
        .types()
        .iter()
        .map(|t| {
            let specs: Vec<ParamSpec> = block_params(t)
                .into_iter()
                .filter(|p| p.name != "type")
                .collect();
            let mut o = object_json(&specs, Some(("type", t.name)));
            if let Some(obj) = o.as_object_mut() {
                obj.insert("title".into(), json!(t.name));
                obj.insert("description".into(), json!(t.doc));
            }
            o
        })
        .collect();
    let names = json!({"type": "string", "description": "a Block's name"});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://crabby.invalid/test-file.schema.json",
        "title": "crabby test file",
        "type": "object",
        "required": ["crabby", "name"],
        "additionalProperties": false,
        "properties": {
            "crabby": {"const": 1, "description": "the test-file format's version"},
            "name": {"type": "string", "minLength": 1, "description": "the test's name"},
            "description": {"type": "string"},
            "include": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                "description": "files with more [blocks.*] and [[links]], relative to this one"},
            "blocks": {
                "type": "object",
                "description": "the Blocks, by name",
                "additionalProperties": {"oneOf": blocks},
            },
            "links": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["from", "to"],
                    "additionalProperties": false,
                    "properties": {
                        "from": names,
                        "to": {"anyOf": [names, {"type": "array", "items": names, "minItems": 1}]},
                        "name": {"type": "string"},
                        "overflow": {"enum": ["block", "drop_oldest"]},
                        "capacity": {"type": "integer", "minimum": 1},
                    },
                },
            },
            "summary": {
                "type": "object",
                "required": ["data"],
                "additionalProperties": false,
                "properties": {
                    "data": {"type": "string", "description": "the Recorder whose file is summarised"},
                    "force": {"type": "string"},
                    "strain": {"type": "string"},
                },
            },
        },
    })
}
