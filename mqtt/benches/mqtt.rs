//! Throughput and latency through a real mosquitto broker on loopback, printed (no assertion
//! on time). Two crabby programs, as on two machines:
//!
//! - latency from `send()` in the source Block of program A to the sample's arrival in a
//!   Block of program B (p50, p99), next to the floor measured in the same run:
//!   `mosquitto_pub` → broker → `mosquitto_sub`, one message per line;
//! - throughput: samples per second through one stream with zero loss, JSON and binary;
//! - payload size per sample, JSON and binary.
//!
//! `cargo bench -p crabby-mqtt` (needs mosquitto and mosquitto-clients).

#[path = "../tests/broker/mod.rs"]
mod broker;
#[path = "../../tests/common/mod.rs"]
#[allow(unused_macros)]
mod common;

use broker::{wait_child, wait_until, Auth, Mosquitto};
use common::TempDir;
use crabby::{Block, Context, Flow, Result, Sample, Settings, Test};
use crabby_mqtt::{Encoding, MqttPublish, MqttSubscribe};
use serde_json::{json, Value as J};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--role") {
        let spec: J = serde_json::from_str(&args[i + 1]).expect("role spec");
        if let Err(e) = role(&spec) {
            eprintln!("role failed: {e}");
            std::process::exit(1);
        }
        std::process::exit(0);
    }
    if let Err(e) = bench() {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

/// Sends `n` samples (`t(s)` stamped right before `send`, and four more floats).
struct Source {
    n: u64,
    i: u64,
}

impl Block for Source {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if self.i >= self.n {
            return Ok(Flow::Stop);
        }
        let s = Sample::new()
            .with("t(s)", ctx.t())
            .with("F(N)", self.i as f64 * 0.25)
            .with("x(mm)", 1.0 + self.i as f64 * 1e-4)
            .with("T(°C)", 23.5)
            .with("i", self.i as i64);
        ctx.send(&s)?;
        self.i += 1;
        Ok(Flow::Continue)
    }
}

/// Measures each sample's latency (arrival on this test's clock minus its aligned time).
struct Sink {
    out: PathBuf,
    lat: Vec<f64>,
    first: Option<f64>,
    last: f64,
}

impl Sink {
    fn take(&mut self, ctx: &Context, samples: Vec<Sample>) {
        let now = ctx.t();
        for s in samples {
            if let Some(t) = s.get_f64("t(s)") {
                self.lat.push(now - t);
            }
            self.first.get_or_insert(now);
            self.last = now;
        }
    }
}

impl Block for Sink {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if ctx.wait(Duration::from_millis(50)) {
            let s = ctx.recv_all_per_link().into_iter().flatten().collect();
            self.take(ctx, s);
        }
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        let s = ctx
            .drain_until_ended(Duration::from_secs(1))
            .into_iter()
            .flatten()
            .collect();
        self.take(ctx, s);
        let text =
            json!({"n": self.lat.len(), "lat": self.lat, "first": self.first, "last": self.last});
        std::fs::write(&self.out, text.to_string()).map_err(|e| crabby::Error::io("out", e))
    }
}

fn role(spec: &J) -> std::result::Result<(), String> {
    let dir = PathBuf::from(spec["dir"].as_str().unwrap());
    let url = spec["url"].as_str().unwrap();
    let enc = if spec["binary"].as_bool() == Some(true) {
        Encoding::Binary
    } else {
        Encoding::Json
    };
    let mut test = Test::new(if spec["role"] == "pub" {
        "benchA"
    } else {
        "benchB"
    });
    test.log_file(Some(
        dir.join(format!("{}.log", spec["role"].as_str().unwrap())),
    ));
    test.log_levels(log::LevelFilter::Warn, log::LevelFilter::Info);
    if spec["role"] == "pub" {
        let hz = spec["hz"].as_f64().unwrap_or(0.0);
        let settings = if hz > 0.0 {
            Settings::new().freq(hz)
        } else {
            Settings::new().free_run()
        };
        let src = test.add_with(
            Source {
                n: spec["n"].as_u64().unwrap(),
                i: 0,
            },
            settings,
        );
        let batch = spec["batch"].as_u64().unwrap() as usize;
        let p = test.add(
            MqttPublish::new(url)
                .anonymous()
                .stream("s", ["t(s)", "F(N)", "x(mm)", "T(°C)", "i"])
                .batch(
                    batch,
                    Duration::from_millis(spec["age_ms"].as_u64().unwrap_or(20)),
                )
                .encoding(enc)
                .window(256)
                .flush_timeout(Duration::from_secs(2))
                .stats_file(dir.join("pub.json")),
        );
        test.link(src, p);
    } else {
        let s = test.add(
            MqttSubscribe::new(url)
                .anonymous()
                .test("benchA")
                .stream("s")
                .end_with_source(true)
                .stats_file(dir.join("sub.json")),
        );
        // Event-driven (free-running on `wait`): a paced loop would add up to its period.
        let k = test.add_with(
            Sink {
                out: dir.join("sink.json"),
                lat: Vec::new(),
                first: None,
                last: 0.0,
            },
            Settings::new().free_run(),
        );
        test.link(s, k);
        // Marks the subscriber ready once everything is started.
        std::fs::write(dir.join("sub.starting"), "").map_err(|e| e.to_string())?;
    }
    test.run().map(|_| ()).map_err(|e| e.to_string())
}

fn spawn(spec: J) -> std::result::Result<std::process::Child, String> {
    Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .arg("--role")
        .arg(spec.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())
}

/// One run through the bridge: (sink results, publisher stats, subscriber stats).
fn run(broker: &Mosquitto, dir: &Path, pubspec: J) -> std::result::Result<(J, J, J), String> {
    for f in ["sink.json", "pub.json", "sub.json", "sub.log", "pub.log"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let base = json!({"url": broker.url(), "dir": dir});
    let mut sub = spawn(merge(&base, json!({"role": "sub"})))?;
    // The subscriber is subscribed once its log says it is connected and its test started.
    if !wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(dir.join("sub.log")).is_ok_and(|l| l.contains("started"))
    }) {
        let _ = sub.kill();
        let _ = sub.wait();
        return Err("the subscriber did not start".into());
    }
    let mut p = spawn(merge(&base, merge(&json!({"role": "pub"}), pubspec)))?;
    wait_child(&mut p, Duration::from_secs(60))?;
    wait_child(&mut sub, Duration::from_secs(30))?;
    let read = |f: &str| -> std::result::Result<J, String> {
        let t = std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{f}: {e}"))?;
        serde_json::from_str(&t).map_err(|e| format!("{f}: {e}"))
    };
    Ok((read("sink.json")?, read("pub.json")?, read("sub.json")?))
}

fn percentiles(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (p(0.5), p(0.99))
}

fn lat_of(sink: &J) -> Vec<f64> {
    sink["lat"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default()
}

/// mosquitto_pub -l → broker → mosquitto_sub: the floor of any MQTT bridge on this machine.
fn floor(broker: &Mosquitto, n: usize) -> std::result::Result<Vec<f64>, String> {
    let port = broker.port.to_string();
    Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-r",
            "-t",
            "floor/m",
            "-m",
            "ready",
        ])
        .status()
        .map_err(|e| e.to_string())?;
    let mut sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "floor/m",
            "-t",
            "floor/x",
            "-C",
        ])
        .arg((n + 1).to_string())
        .args(["-W", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(sub.stdout.take().ok_or("no stdout")?).lines();
    let first = lines
        .next()
        .ok_or("no marker")?
        .map_err(|e| e.to_string())?;
    if first != "ready" {
        return Err(format!("unexpected {first}"));
    }
    let mut publ = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port, "-t", "floor/x", "-l"])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdin = publ.stdin.take().ok_or("no stdin")?;
    let t0 = Instant::now();
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let sent = t0.elapsed().as_secs_f64();
        writeln!(stdin, "{sent}").map_err(|e| e.to_string())?;
        stdin.flush().map_err(|e| e.to_string())?;
        let line = lines
            .next()
            .ok_or("mosquitto_sub ended")?
            .map_err(|e| e.to_string())?;
        let back = t0.elapsed().as_secs_f64();
        let s: f64 = line
            .trim()
            .parse()
            .map_err(|_| format!("bad line {line}"))?;
        lat.push(back - s);
    }
    drop(stdin);
    wait_child(&mut publ, Duration::from_secs(5))?;
    wait_child(&mut sub, Duration::from_secs(5))?;
    Ok(lat)
}

fn bench() -> std::result::Result<(), String> {
    let dir = TempDir::new("mqtt-bench");
    let d = dir.path();
    let broker = Mosquitto::start(d, Auth::Anonymous)?;
    println!("crabby-mqtt through mosquitto on loopback (two programs, as on two machines)\n");

    let mut fl = floor(&broker, 1000)?;
    let (p50, p99) = percentiles(&mut fl);
    println!(
        "floor  mosquitto_pub -> mosquitto_sub, 1 message each       p50 {:7.3} ms  p99 {:7.3} ms",
        p50 * 1e3,
        p99 * 1e3
    );

    for (label, batch, age) in [
        ("1 sample per message", 1, 1),
        ("batches (<= 20 ms)", 100, 20),
    ] {
        let n = 2000;
        let (sink, ps, ss) = run(
            &broker,
            d,
            json!({"n": n, "hz": 1000.0, "batch": batch, "age_ms": age}),
        )?;
        let mut lat = lat_of(&sink);
        let (p50, p99) = percentiles(&mut lat);
        println!(
            "crabby send() on A -> Block on B, 1 kHz, {label:<21} p50 {:7.3} ms  p99 {:7.3} ms  ({} of {n} received, {} lost)",
            p50 * 1e3,
            p99 * 1e3,
            ss["samples"],
            ss["lost_samples"]
        );
        let _ = ps;
    }
    println!();
    for binary in [false, true] {
        let n = 200_000u64;
        let (sink, ps, ss) = run(
            &broker,
            d,
            json!({"n": n, "hz": 0.0, "batch": 1000, "age_ms": 20, "binary": binary}),
        )?;
        // From the first arrival to the last, on the subscriber's clock.
        let span = sink["last"].as_f64().unwrap_or(0.0) - sink["first"].as_f64().unwrap_or(0.0);
        let got = ss["samples"].as_u64().unwrap_or(0);
        println!(
            "throughput, {:6}, batches of 1000: {:9.0} samples/s ({got} of {n} received, {} lost, {} dropped)",
            if binary { "binary" } else { "JSON" },
            got as f64 / span,
            ss["lost_samples"],
            ps["dropped_samples"]
        );
    }
    // Payload size per sample (the same 5 labels as above).
    for binary in [false, true] {
        let labels: Vec<crabby::Label> = ["F(N)", "x(mm)", "T(°C)", "i"].map(Into::into).to_vec();
        let mut b = crabby_mqtt::payload::Batch::new(0, 0, Some(1.8e9), &labels);
        for i in 0..1000u64 {
            let s = Sample::new()
                .with("F(N)", i as f64 * 0.25 + 0.123456789)
                .with("x(mm)", 1.0 + i as f64 * 1e-4)
                .with("T(°C)", 23.5)
                .with("i", i as i64);
            b.push(i as f64 * 0.001 + 1.0e-7, &s);
        }
        let mut out = Vec::new();
        let enc = if binary {
            Encoding::Binary
        } else {
            Encoding::Json
        };
        let t = Instant::now();
        for _ in 0..20 {
            b.encode(enc, &mut out);
        }
        let enc_us = t.elapsed().as_secs_f64() / 20.0 * 1e6;
        let t = Instant::now();
        for _ in 0..20 {
            let _ = crabby_mqtt::payload::Batch::decode(&out).map_err(|e| e.to_string())?;
        }
        let dec_us = t.elapsed().as_secs_f64() / 20.0 * 1e6;
        println!(
            "payload {:6}: {:5.1} bytes/sample; encode {:6.0} µs, decode {:6.0} µs per 1000-sample batch",
            if binary { "binary" } else { "JSON" },
            out.len() as f64 / 1000.0,
            enc_us,
            dec_us
        );
    }
    println!("\nCrappy's ClientServer: one point per topic per loop, 200 points/s at its default 200 Hz.");
    Ok(())
}

fn merge(base: &J, more: J) -> J {
    let mut m = base.clone();
    if let (Some(a), J::Object(b)) = (m.as_object_mut(), more) {
        a.extend(b);
    }
    m
}
