//! The web view's cost (prints its figures): `cargo bench -p crabby-web`.
//!
//! - A source at 1 kHz and at 10 kHz (4 labels) with and without the web view and two
//!   WebSocket clients reading everything: the source's achieved rate and missed deadlines
//!   (the web view must not slow acquisition), the web Block's CPU, what the clients
//!   receive (messages, rows, bytes per second) and the latency from `send()` in the source
//!   to the row in the client, p50/p99.
//! - The history of a simulated 1-hour test at 1 kHz: rows kept, memory, cost per sample.

#[path = "../tests/support/mod.rs"]
mod support;

use crabby::{Block, Context, Flow, GraphView, Result as CResult, Settings, Test};
use crabby_web::history::History;
use crabby_web::WebView;
use serde_json::{json, Value as J};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

fn cpu_seconds() -> f64 {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let tv = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 * 1e-6;
    tv(u.user_time()) + tv(u.system_time())
}

/// The WebView, measuring its process's CPU (all its threads) from `begin` to `finish`.
struct Cpu {
    inner: WebView,
    out: PathBuf,
    start: Option<(f64, Instant)>,
}

impl Block for Cpu {
    fn kind(&self) -> &str {
        "WebView"
    }
    fn default_settings(&self) -> Settings {
        self.inner.default_settings()
    }
    fn check(&self, g: &GraphView<'_>) -> CResult<()> {
        self.inner.check(g)
    }
    fn prepare(&mut self, ctx: &mut Context) -> CResult<()> {
        self.inner.prepare(ctx)
    }
    fn begin(&mut self, ctx: &mut Context) -> CResult<()> {
        self.start = Some((cpu_seconds(), Instant::now()));
        self.inner.begin(ctx)
    }
    fn step(&mut self, ctx: &mut Context) -> CResult<Flow> {
        self.inner.step(ctx)
    }
    fn finish(&mut self, ctx: &mut Context) -> CResult<()> {
        if let Some((c, t)) = self.start {
            let share = (cpu_seconds() - c) / t.elapsed().as_secs_f64();
            let _ = std::fs::write(&self.out, share.to_string());
        }
        self.inner.finish(ctx)
    }
}

/// Two clients read everything until the end; figures as JSON.
fn two_clients(url: &str, dir: &Path) -> R<String> {
    let host = host_of(url);
    let t0: u64 = wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(dir.join("t0")).ok()?.parse().ok()
    })
    .ok_or("no t0")?;
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let host = host.clone();
            std::thread::spawn(move || -> R<J> {
                let mut ws = Ws::connect(&host, "/ws", None)?;
                let (mut msgs, mut rows, mut bytes) = (0u64, 0u64, 0u64);
                let mut lat = Vec::new();
                // Throughput over the pushes while the test runs (from the first push on).
                let (mut start, mut last) = (None, Instant::now());
                while let Some(text) = ws.recv()? {
                    let now = (crabby::time::monotonic_ns() as f64 - t0 as f64) * 1e-9;
                    let m: J = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                    if m["type"] == "data" {
                        start.get_or_insert_with(Instant::now);
                        last = Instant::now();
                        bytes += text.len() as u64;
                        msgs += 1;
                        rows += m["rows"].as_array().map(|r| r.len()).unwrap_or(0) as u64;
                        // Every row's age when the page gets it (send() → client).
                        for row in m["rows"].as_array().into_iter().flatten() {
                            if let Some(t) = row[0].as_f64() {
                                lat.push(now - t);
                            }
                        }
                    }
                    if m["type"] == "end" {
                        break;
                    }
                }
                let secs = start.map(|s| (last - s).as_secs_f64()).unwrap_or(f64::NAN);
                lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
                let q = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(f64::NAN) * 1e3;
                Ok(json!({"msgs_per_s": msgs as f64 / secs, "rows_per_s": rows as f64 / secs,
                          "kb_per_s": bytes as f64 / secs / 1e3, "p50_ms": q(0.5), "p99_ms": q(0.99)}))
            })
        })
        .collect();
    let mut out = Vec::new();
    for c in clients {
        out.push(c.join().map_err(|_| "client panicked")??);
    }
    Ok(J::Array(out).to_string())
}

fn idle(_url: &str, _dir: &Path) -> R<String> {
    Ok("[]".into())
}

fn run(hz: f64, seconds: f64, web: bool) -> R<()> {
    let dir = std::env::temp_dir().join(format!("crabby-web-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = (|| {
        let mut test = Test::new("web-bench");
        test.log_file(None);
        test.log_levels(crabby::LevelFilter::Warn, crabby::LevelFilter::Off);
        test.grace(Duration::from_secs(30), Duration::from_millis(500));
        let src = test.add_with(
            Ramp { seconds, n: 0 },
            Settings::new().name("ramp").freq(hz),
        );
        if web {
            let w = test.add(Cpu {
                inner: WebView::new()
                    .url_file(dir.join("url"))
                    .plot("t(s)", ["F(N)"]),
                out: dir.join("cpu"),
                start: None,
            });
            test.link_with(src, w, crabby_web::link_options());
            test.add_with(Driver::new(&dir, two_clients), Driver::settings());
        } else {
            std::fs::write(dir.join("url"), "http://127.0.0.1:1/\n").unwrap();
            test.add_with(Driver::new(&dir, idle), Driver::settings());
        }
        let report = test.run().map_err(|e| e.to_string())?;
        let ramp = report.block("ramp").unwrap();
        let clients: J = serde_json::from_str(&outcome(&dir)?).unwrap_or_default();
        print!(
            "{:>6} Hz, web view {:<3}: source {:>8.2} Hz, missed deadlines {:>3}, max late {:>7.0} µs",
            hz,
            if web { "on" } else { "off" },
            ramp.mean_freq.unwrap_or(0.0),
            ramp.missed_deadlines,
            ramp.max_late_us.unwrap_or(0.0),
        );
        if web {
            let cpu: f64 = std::fs::read_to_string(dir.join("cpu"))
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(f64::NAN);
            let l = report.links.iter().find(|l| l.to == "WebView-1").cloned();
            println!(
                " | web Block CPU {:.1} % of a core, link dropped {}",
                cpu * 100.0,
                l.map(|l| l.dropped).unwrap_or(0)
            );
            for (i, c) in clients.as_array().into_iter().flatten().enumerate() {
                println!(
                    "         client {}: {:.1} pushes/s, {:.0} rows/s, {:.0} kB/s; latency send→client p50 {:.1} ms, p99 {:.1} ms",
                    i + 1,
                    c["msgs_per_s"].as_f64().unwrap_or(0.0),
                    c["rows_per_s"].as_f64().unwrap_or(0.0),
                    c["kb_per_s"].as_f64().unwrap_or(0.0),
                    c["p50_ms"].as_f64().unwrap_or(f64::NAN),
                    c["p99_ms"].as_f64().unwrap_or(f64::NAN),
                );
            }
        } else {
            println!();
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn history_hour() {
    let mut h = History::new(50_000);
    let start = Instant::now();
    let n = 3_600_000u64;
    for i in 0..n {
        let t = i as f64 * 1e-3;
        let s = crabby::Sample::new()
            .with("t(s)", t)
            .with("F(N)", 10.0 * t)
            .with("Exx(%)", t / 10.0)
            .with("n", i as f64);
        if let Some(r) = h.row_of(&s, t) {
            h.offer(&r);
        }
    }
    let per = start.elapsed().as_secs_f64() / n as f64;
    let bytes: usize = h
        .rows()
        .iter()
        .map(|r| 24 + r.capacity() * 8)
        .sum::<usize>()
        + h.rows().len() * 24;
    println!(
        "history of a 1 h test at 1 kHz (3.6 M samples): {} rows kept (1 in {}), {:.1} MB, {:.2} µs per sample (row + offer)",
        h.rows().len(),
        h.stride(),
        bytes as f64 / 1e6,
        per * 1e6
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches: nothing to list
    }
    let secs = 6.0;
    println!("web view bench ({secs} s per run; two WebSocket clients read everything when the view is on)");
    // Off and on alternate, twice: the machine's own load shows as the spread between
    // runs with the same setting.
    for (hz, web) in [
        (1000.0, false),
        (1000.0, true),
        (1000.0, false),
        (1000.0, true),
        (10_000.0, false),
        (10_000.0, true),
        (10_000.0, false),
        (10_000.0, true),
    ] {
        if let Err(e) = run(hz, secs, web) {
            println!("run at {hz} Hz (web {web}) failed: {e}");
            std::process::exit(1);
        }
    }
    history_hour();
}
