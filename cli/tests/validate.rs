//! `crabby validate` on wrong and good test files, `crabby list` and `crabby schema`.
//!
//! Each file in `tests/bad/` starts with `# expect: LINE:COL message`: validating it must
//! fail with an error containing `message` shown at that line and column, and the `crabby`
//! binary must exit with code 1 and print it (no panic). Nothing here runs a test.

use crabby_cli::{CliError, Registry};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(sub)
}

fn toml_files(d: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

/// (line, column, message) from the file's first line.
fn expectation(path: &Path) -> (usize, usize, String) {
    let bytes = std::fs::read(path).unwrap();
    let first = String::from_utf8_lossy(bytes.split(|b| *b == b'\n').next().unwrap()).into_owned();
    let rest = first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{}: no '# expect: L:C message' line", path.display()));
    let (pos, msg) = rest.split_once(' ').unwrap();
    let (l, c) = pos.split_once(':').unwrap();
    (l.parse().unwrap(), c.parse().unwrap(), msg.to_owned())
}

/// Every file of `files` fails to validate with its expected message at its position.
fn check_bad_files(files: &[PathBuf]) {
    let registry = Registry::stock();
    let mut failures = Vec::new();
    for f in files {
        let (line, col, msg) = expectation(f);
        match crabby_cli::validate(f, &registry) {
            Ok(()) => failures.push(format!("{}: validated", f.display())),
            Err(CliError::Invalid(diags, sources)) => {
                let found = diags.iter().any(|d| {
                    let pos = d.span.as_ref().and_then(|s| sources.position(s));
                    sources.render(d).contains(&msg)
                        && pos.is_some_and(|p| p.line == line && p.column == col)
                });
                if !found {
                    let all: Vec<String> = diags.iter().map(|d| sources.render(d)).collect();
                    failures.push(format!(
                        "{}: expected {line}:{col} '{msg}', got:\n{}",
                        f.display(),
                        all.join("\n")
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: unexpected error kind {e}", f.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_bad_file_is_an_error_at_its_position() {
    let files = toml_files(&dir("bad"));
    assert!(files.len() >= 40, "only {} bad files", files.len());
    check_bad_files(&files);
}

/// The good and bad files of a cargo feature's types (`tests/feature-<name>/{good,bad}`).
#[cfg(any(feature = "v4l", feature = "hdf5"))]
fn check_feature_files(name: &str) {
    let bad = toml_files(&dir(&format!("feature-{name}/bad")));
    let good = toml_files(&dir(&format!("feature-{name}/good")));
    assert!(!bad.is_empty() && !good.is_empty(), "no files for {name}");
    check_bad_files(&bad);
    let registry = Registry::stock();
    for f in good {
        if let Err(e) = crabby_cli::validate(&f, &registry) {
            panic!("{}:\n{}", f.display(), e.render());
        }
    }
}

#[cfg(feature = "v4l")]
#[test]
fn v4l2_camera_files() {
    check_feature_files("v4l");
}

#[cfg(feature = "hdf5")]
#[test]
fn hdf5_recorder_files() {
    check_feature_files("hdf5");
}

#[test]
fn the_binary_exits_1_with_the_rendered_errors() {
    let files = toml_files(&dir("bad"));
    for f in &files {
        let (line, col, msg) = expectation(f);
        let out = Command::new(env!("CARGO_BIN_EXE_crabby"))
            .arg("validate")
            .arg(f)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", f.display());
        assert!(!err.contains("panicked"), "{}: {err}", f.display());
        let at = format!("{}:{line}:{col}\n", f.display());
        assert!(
            err.contains(&at) && err.contains(&msg),
            "{}:\n{err}",
            f.display()
        );
    }
}

#[test]
fn every_error_is_reported_at_once() {
    // Three independent mistakes in one file: all three are reported.
    let d = tempdir("all-at-once");
    let f = d.join("t.toml");
    std::fs::write(
        &f,
        "crabby = 1\nname = \"t\"\n[blocks.m]\ntype = \"FakeMachine\"\nmax_sped = 1\nnu = 2\n[blocks.r]\ntype = \"Recordr\"\n[[links]]\nfrom = \"m\"\nto = \"rr\"\n",
    )
    .unwrap();
    let Err(CliError::Invalid(diags, sources)) = crabby_cli::validate(&f, &Registry::stock())
    else {
        panic!("validated")
    };
    let text: Vec<String> = diags.iter().map(|d| sources.render(d)).collect();
    std::fs::remove_dir_all(&d).unwrap();
    assert_eq!(diags.len(), 4, "{text:#?}");
    assert!(text[0].contains("'max_sped'") && text[0].contains("did you mean 'max_speed'"));
    assert!(text[1].contains("'nu': 2 is out of range"));
    assert!(text[2].contains("'Recordr'") && text[2].contains("did you mean 'Recorder'"));
    assert!(text[3].contains("unknown Block 'rr'") && text[3].contains("did you mean 'r'"));
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("crabby-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn good_files() -> Vec<PathBuf> {
    let mut v = toml_files(&dir("good"));
    v.extend(toml_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples"),
    ));
    v
}

#[test]
fn good_files_and_examples_validate() {
    let registry = Registry::stock();
    let files = good_files();
    assert!(files.iter().any(|f| f.ends_with("tensile_test.toml")));
    for f in files {
        if let Err(e) = crabby_cli::validate(&f, &registry) {
            panic!("{}:\n{}", f.display(), e.render());
        }
    }
}

#[test]
fn list_shows_every_type_with_units_and_defaults() {
    let registry = Registry::stock();
    let all = crabby_cli::describe::list(&registry, None).unwrap();
    for t in registry.types() {
        assert!(
            all.contains(&format!("{}: {}", t.name, t.doc)),
            "{} missing",
            t.name
        );
    }
    let one = crabby_cli::describe::list(&registry, Some("FakeMachine")).unwrap();
    assert!(
        one.contains("max_speed") && one.contains("[mm/s], > 0; default 5."),
        "{one}"
    );
    assert!(one.contains("freq"), "settings listed for one type: {one}");
    assert!(crabby_cli::describe::list(&registry, Some("Nope")).is_none());
}

/// The JSON Schema, checked on the good files by a small validator of the keywords it uses.
fn conforms(schema: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    let obj = schema.as_object().expect("a schema is an object");
    if let Some(c) = obj.get("const") {
        if c != v {
            errs.push(format!("{path}: {v} is not {c}"));
        }
    }
    if let Some(Value::Array(e)) = obj.get("enum") {
        if !e.contains(v) {
            errs.push(format!("{path}: {v} not in enum"));
        }
    }
    if let Some(Value::String(t)) = obj.get("type") {
        let ok = match t.as_str() {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "number" => v.is_number(),
            "integer" => v.is_i64() || v.is_u64(),
            "boolean" => v.is_boolean(),
            _ => panic!("type {t} not handled"),
        };
        if !ok {
            errs.push(format!("{path}: {v} is not {t}"));
            return;
        }
    }
    for (k, cmp) in [
        ("minimum", 0),
        ("maximum", 1),
        ("exclusiveMinimum", 2),
        ("exclusiveMaximum", 3),
    ] {
        if let (Some(b), Some(x)) = (obj.get(k).and_then(Value::as_f64), v.as_f64()) {
            let bad = match cmp {
                0 => x < b,
                1 => x > b,
                2 => x <= b,
                _ => x >= b,
            };
            if bad {
                errs.push(format!("{path}: {x} breaks {k} {b}"));
            }
        }
    }
    if let Some(Value::Array(any)) = obj.get("anyOf") {
        let ok = any.iter().any(|s| {
            let mut e = Vec::new();
            conforms(s, v, path, &mut e);
            e.is_empty()
        });
        if !ok {
            errs.push(format!("{path}: matches no anyOf"));
        }
    }
    if let Some(Value::Array(one)) = obj.get("oneOf") {
        let n = one
            .iter()
            .filter(|s| {
                let mut e = Vec::new();
                conforms(s, v, path, &mut e);
                e.is_empty()
            })
            .count();
        if n != 1 {
            errs.push(format!("{path}: matches {n} of oneOf"));
        }
    }
    if let (Some(items), Some(arr)) = (obj.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            conforms(items, x, &format!("{path}[{i}]"), errs);
        }
    }
    if let Some(map) = v.as_object() {
        if let Some(Value::Array(req)) = obj.get("required") {
            for r in req {
                if !map.contains_key(r.as_str().unwrap()) {
                    errs.push(format!("{path}: missing {r}"));
                }
            }
        }
        let props = obj.get("properties").and_then(Value::as_object);
        for (k, x) in map {
            match props.and_then(|p| p.get(k)) {
                Some(s) => conforms(s, x, &format!("{path}.{k}"), errs),
                None => match obj.get("additionalProperties") {
                    Some(Value::Bool(false)) => errs.push(format!("{path}: unexpected {k}")),
                    Some(s @ Value::Object(_)) => conforms(s, x, &format!("{path}.{k}"), errs),
                    _ => {}
                },
            }
        }
    }
}

fn to_json(n: &crabby::schema::Node) -> Value {
    use crabby::schema::NodeKind as K;
    match &n.kind {
        K::Bool(b) => Value::Bool(*b),
        K::Int(i) => Value::from(*i),
        K::Float(f) => Value::from(*f),
        K::Str(s) => Value::from(s.clone()),
        K::List(l) => Value::Array(l.iter().map(to_json).collect()),
        K::Table(t) => Value::Object(t.iter().map(|(k, _, v)| (k.clone(), to_json(v))).collect()),
        K::Other(_) => Value::Null,
    }
}

#[test]
fn the_json_schema_names_every_type_and_accepts_the_good_files() {
    let registry = Registry::stock();
    let out = Command::new(env!("CARGO_BIN_EXE_crabby"))
        .arg("schema")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let schema: Value = serde_json::from_slice(&out.stdout).expect("the schema is JSON");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let blocks = schema["properties"]["blocks"]["additionalProperties"]["oneOf"]
        .as_array()
        .unwrap();
    let titles: Vec<&str> = blocks
        .iter()
        .map(|b| b["title"].as_str().unwrap())
        .collect();
    for t in registry.types() {
        assert!(titles.contains(&t.name), "{} not in the schema", t.name);
    }
    for f in good_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        let node = crabby_cli::file::parse_toml(&text, 0).unwrap();
        let mut errs = Vec::new();
        conforms(&schema, &to_json(&node), "", &mut errs);
        assert!(errs.is_empty(), "{}: {errs:#?}", f.display());
    }
    // And it refuses what validate refuses, where it can tell.
    let bad = serde_json::json!({"crabby": 1, "name": "t", "blocks": {"m": {"type": "FakeMachine", "max_sped": 1}}});
    let mut errs = Vec::new();
    conforms(&schema, &bad, "", &mut errs);
    assert!(!errs.is_empty());
    // The copy next to the crate (for editors: `#:schema ../cli/crabby.schema.json`) is the
    // same as what the command prints with the default features (the optional types of
    // `v4l` and `hdf5` are not in it).
    if cfg!(any(feature = "v4l", feature = "hdf5", not(feature = "web"))) {
        return;
    }
    let saved =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("crabby.schema.json"))
            .expect(
                "cli/crabby.schema.json: write it with `crabby schema > cli/crabby.schema.json`",
            );
    let saved: Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(saved, schema, "cli/crabby.schema.json is stale: regenerate it with `cargo run -p crabby-cli --bin crabby -- schema > cli/crabby.schema.json`");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["frobnicate"][..],
        &["run"][..],
        &["list", "Generater"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_crabby"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_crabby"))
        .args(["list", "Generater"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean 'Generator'"));
}

#[test]
fn oversized_and_special_files_are_refused() {
    let d = tempdir("oversized");
    let big = d.join("big.toml");
    let mut text = String::from("crabby = 1\nname = \"t\"\n");
    while text.len() <= crabby_cli::file::MAX_FILE_BYTES {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&big, &text).unwrap();
    let dev = d.join("dev.toml");
    std::fs::write(&dev, "crabby = 1\nname = \"t\"\ninclude = \"/dev/zero\"\n").unwrap();
    let registry = Registry::stock();
    let big_err = crabby_cli::validate(&big, &registry).unwrap_err().render();
    let dev_err = crabby_cli::validate(&dev, &registry).unwrap_err().render();
    std::fs::remove_dir_all(&d).unwrap();
    assert!(big_err.contains("larger than 1048576 bytes"), "{big_err}");
    assert!(
        dev_err.contains("/dev/zero: not a regular file"),
        "{dev_err}"
    );
    assert!(dev_err.contains("dev.toml:3:11"), "{dev_err}");
}

#[test]
fn parameters_are_described_in_their_units_with_defaults() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tensile_test.toml");
    let plan = crabby_cli::graph::load(&f, &Registry::stock(), Path::new("results"), true, true)
        .unwrap_or_else(|e| panic!("{}", e.render()));
    let p = &plan.parameters;
    assert!(p.contains("[machine] FakeMachine\n"), "{p}");
    assert!(p.contains("  max_speed = 5 mm/s\n"), "{p}");
    assert!(p.contains("  freq = 100 Hz\n"), "{p}");
    assert!(p.contains("  rigidity = 8.4e6 N (default)\n"), "{p}");
    assert!(p.contains("  end_delay = 0 s\n"), "{p}");
    assert!(
        p.contains("{ type = \"constant\", value = \"30 mm/min\", until = \"Exx(%) > 0.8\" }"),
        "{p}"
    );
    assert!(
        p.contains("criteria = [\"F(N) > 150000\", \"t(s) > 120\"]"),
        "{p}"
    );
    assert!(plan.description.contains("machine"), "{}", plan.description);
}

/// The ```toml blocks of a Markdown or `//!` text.
fn toml_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        let l = line
            .strip_prefix("//! ")
            .or_else(|| line.strip_prefix("//!"))
            .unwrap_or(line);
        match (&mut cur, l.trim_start()) {
            (None, "```toml") => cur = Some(String::new()),
            (Some(_), "```") => out.extend(cur.take()),
            (Some(c), _) => {
                c.push_str(l);
                c.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[test]
fn the_documentation_examples_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = tempdir("doc-examples");
    let mut n = 0;
    for doc in [root.join("../README.md"), root.join("src/lib.rs")] {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (i, block) in toml_blocks(&text).into_iter().enumerate() {
            let f = d.join(format!(
                "{}-{i}.toml",
                doc.file_name().unwrap().to_string_lossy()
            ));
            std::fs::write(&f, &block).unwrap();
            if let Err(e) = crabby_cli::validate(&f, &Registry::stock()) {
                let _ = std::fs::remove_dir_all(&d);
                panic!("{} example {i}:\n{}", doc.display(), e.render());
            }
            n += 1;
        }
    }
    std::fs::remove_dir_all(&d).unwrap();
    assert!(n >= 2, "found {n} examples");
}

#[test]
fn real_drivers_validate_without_their_ports_but_run_refuses_a_missing_port() {
    let registry = Registry::stock();
    let f = dir("good").join("instruments.toml");
    // None of its ports exists here: validate checks everything else (see the bad files
    // line_regex_groups, tic_above_its_speed_limit, modbus_rtu_broadcast_unit: the drivers'
    // own checks) and passes.
    for port in [
        "/dev/serial/by-id/crabby-test-no-such-cell",
        "/dev/ttyACM-crabby-none",
    ] {
        assert!(!Path::new(port).exists());
    }
    if let Err(e) = crabby_cli::validate(&f, &registry) {
        panic!("{}", e.render());
    }
    // Loaded for a run, the drivers' checks look at this machine: the first missing port
    // is refused before anything is forked.
    let d = tempdir("real-drivers");
    let e = match crabby_cli::graph::load(&f, &registry, &d, false, true) {
        Ok(_) => panic!("loaded for a run with missing ports"),
        Err(e) => e.render(),
    };
    assert!(
        e.contains("serial port '/dev/serial/by-id/crabby-test-no-such-cell' does not exist"),
        "{e}"
    );
    // `crabby run` refuses it before making its results folder.
    let out = d.join("results");
    let r = crabby_cli::run::run(&f, &registry, &out, true, &[]);
    assert!(r.is_err());
    assert!(
        !out.exists(),
        "a results folder was made for a file that cannot run"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn list_shows_the_real_drivers_with_units_ranges_and_defaults() {
    let registry = Registry::stock();
    for (name, want) in [
        ("LineInOut", "timeout"),
        ("ScpiInOut", "identity"),
        ("PololuTic", "max_speed"),
        ("ModbusInOut", "word_order"),
    ] {
        let one = crabby_cli::describe::list(&registry, Some(name))
            .unwrap_or_else(|| panic!("{name} not listed"));
        assert!(one.contains(want), "{name}: {one}");
    }
    let tic = crabby_cli::describe::list(&registry, Some("PololuTic")).unwrap();
    assert!(tic.contains("[mm/s], > 0; default 10."), "{tic}");
    let modbus = crabby_cli::describe::list(&registry, Some("ModbusInOut")).unwrap();
    assert!(
        modbus.contains("\"even\"") && modbus.contains("65535"),
        "{modbus}"
    );
    let io = crabby_cli::describe::list(&registry, Some("IOBlock")).unwrap();
    for d in ["LineInOut", "ScpiInOut", "ModbusInOut"] {
        assert!(io.contains(d), "IOBlock's device types lack {d}: {io}");
    }
}

/// Drivers with fewer capabilities than the stock ones, registered as a user would: a
/// positioner that reads its position back but not its speed, and a command-only output.
mod capabilities {
    use super::*;
    use crabby::hardware::{Actuator, InOut, Output, PositionFeedback, Positioner};
    use crabby_cli::registry::{ActuatorDevice, Device, DriverKind, DriverType, IoDevice};

    struct Axis;
    impl Actuator for Axis {
        fn set_speed(&mut self, _: f64) -> crabby::Result<()> {
            Ok(())
        }
    }
    impl Positioner for Axis {
        fn set_position(&mut self, _: f64, _: Option<f64>) -> crabby::Result<()> {
            Ok(())
        }
    }
    impl PositionFeedback for Axis {
        fn position(&mut self) -> crabby::Result<f64> {
            Ok(0.0)
        }
    }
    struct Valve;
    impl InOut for Valve {}
    impl Output for Valve {
        fn write(&mut self, _: &[f64]) -> crabby::Result<()> {
            Ok(())
        }
    }

    fn registry() -> Registry {
        let mut r = Registry::stock();
        r.register_driver(DriverType::new(
            "Axis",
            "positions, reads its position back",
            DriverKind::Actuator,
            |_| Ok(Device::Actuator(ActuatorDevice::positioner(Axis))),
        ));
        r.register_driver(DriverType::new(
            "Valve",
            "takes commands only",
            DriverKind::InOut,
            |_| Ok(Device::InOut(IoDevice::output(Valve))),
        ));
        r
    }

    /// Validates `body` (after a generator of `cmd`): `Ok` or the rendered errors.
    fn check(tag: &str, body: &str) -> Result<(), String> {
        let d = tempdir(tag);
        let f = d.join("t.toml");
        let text = format!(
            "crabby = 1\nname = \"t\"\n[blocks.g]\ntype = \"Generator\"\ncmd_label = \"cmd\"\npaths = [{{ type = \"constant\", value = 1, until = \"delay=1\" }}]\n{body}\n[[links]]\nfrom = \"g\"\nto = \"x\"\n"
        );
        std::fs::write(&f, text).unwrap();
        let r = crabby_cli::validate(&f, &registry()).map_err(|e| e.render());
        std::fs::remove_dir_all(&d).unwrap();
        r
    }

    #[test]
    fn a_positioner_without_speed_feedback_is_refused_a_speed_label() {
        let axis = "[blocks.x]\ntype = \"Machine\"\n[[blocks.x.actuators]]\ndevice = { type = \"Axis\" }\ncmd_label = \"cmd\"\n";
        check(
            "axis-ok",
            &format!("{axis}mode = \"position\"\nmove_speed = 2\nposition_label = \"x(mm)\""),
        )
        .unwrap();
        check(
            "axis-speed",
            &format!("{axis}mode = \"speed\"\nposition_label = \"x(mm)\""),
        )
        .unwrap();
        let e = check(
            "axis-no-sfb",
            &format!("{axis}mode = \"position\"\nspeed_label = \"v\""),
        )
        .unwrap_err();
        assert!(
            e.contains("'speed_label': device 'Axis' cannot read its speed back")
                && e.contains(":13:15"),
            "{e}"
        );
    }

    #[test]
    fn a_command_only_output_is_refused_reading_and_streaming() {
        let valve = "[blocks.x]\ntype = \"IOBlock\"\ndevice = { type = \"Valve\" }\n";
        check("valve-ok", &format!("{valve}cmd_labels = [\"cmd\"]")).unwrap();
        let e = check("valve-read", valve).unwrap_err();
        assert!(
            e.contains("cannot be read, only take commands; give cmd_labels"),
            "{e}"
        );
        let e = check(
            "valve-stream",
            &format!("{valve}cmd_labels = [\"cmd\"]\nstreamer = true"),
        )
        .unwrap_err();
        assert!(
            e.contains("'streamer': device 'Valve' cannot stream"),
            "{e}"
        );
    }
}

#[test]
fn every_driver_and_camera_is_in_a_good_file() {
    let registry = Registry::stock();
    let mut dirs = vec![dir("good")];
    if cfg!(feature = "v4l") {
        dirs.push(dir("feature-v4l/good"));
    }
    let text: String = dirs
        .iter()
        .flat_map(|d| toml_files(d))
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let names: Vec<&str> = registry
        .drivers()
        .map(|d| d.name)
        .chain(registry.cameras().map(|c| c.name))
        .collect();
    assert!(
        names.len() >= 19,
        "only {} drivers and cameras",
        names.len()
    );
    let missing: Vec<&&str> = names
        .iter()
        .filter(|n| !text.contains(&format!("type = \"{n}\"")))
        .collect();
    assert!(missing.is_empty(), "no good file uses {missing:?}");
}
