//! The MQTT bridge against a real mosquitto broker. Each case starts its own broker on a free
//! loopback port and runs crabby tests as separate programs (this binary re-executed with
//! `--role`), as on two machines. Cases run in their own process under a timeout
//! (tests/common, shared with the core's tests).

#[path = "../../tests/common/mod.rs"]
#[macro_use]
mod common;
mod broker;

use broker::{wait_child, wait_until, Auth, Mosquitto, PASSWORD, USER};
use common::{case, TempDir};
use crabby::{Block, Context, ErrorKind, Flow, Result, Sample, Settings, Test};
use crabby_mqtt::{MqttPublish, MqttSubscribe};
use nix::sys::signal::Signal;
use serde_json::{json, Value as J};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--role") {
        let spec: J = serde_json::from_str(&args[i + 1]).expect("role spec");
        std::process::exit(match run_role(&spec) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("role failed: {e}");
                1
            }
        });
    }
    common::main(&[
        case(
            "zero_loss_between_two_programs_with_credentials",
            60,
            zero_loss,
        ),
        case(
            "mosquitto_sub_reads_descriptor_and_json",
            60,
            mosquitto_sub_reads,
        ),
        case(
            "mosquitto_pub_command_and_malformed_payload",
            60,
            mosquitto_pub_command,
        ),
        case("broker_restart_replays_without_loss", 90, broker_restart),
        case(
            "small_buffer_outage_drops_counted_as_gaps",
            90,
            small_buffer_outage,
        ),
        case("broker_killed_losses_counted", 90, broker_killed),
        case("remote_stop_stops_the_other_test", 60, remote_stop),
        case("remote_pause_pauses_the_other_test", 60, remote_pause),
        case("source_killed_subscriber_says_silent", 60, source_killed),
        case("wrong_credentials_unreachable_broker", 60, bad_connections),
        #[cfg(feature = "tls")]
        case("tls_with_credentials_and_a_wrong_ca", 60, tls),
    ]);
}

// ---------------------------------------------------------------------------------------
// The programs: a publisher test and a subscriber test.

/// Sends `n` samples (`t(s)`, `F(N)` = i / 2, `i`) at `hz`, then ends (or never ends).
struct Source {
    n: u64,
    sent: u64,
    forever: bool,
    ready: PathBuf,
}

impl Block for Source {
    fn begin(&mut self, _: &mut Context) -> Result<()> {
        std::fs::write(&self.ready, "").map_err(|e| crabby::Error::io("ready", e))
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if self.sent >= self.n && !self.forever {
            return Ok(Flow::Stop);
        }
        let i = self.sent;
        ctx.send(
            &Sample::new()
                .with("t(s)", ctx.t())
                .with("F(N)", i as f64 * 0.5)
                .with("i", i as i64),
        )?;
        self.sent += 1;
        Ok(Flow::Continue)
    }
}

/// Pauses its test at `at` s and resumes it at `until` s (a technician's hold).
struct Pauser {
    at: f64,
    until: f64,
}

impl Block for Pauser {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let t = ctx.t();
        if t > self.at && t < self.until {
            ctx.pause("hold for inspection");
        } else if t >= self.until {
            ctx.resume();
        }
        Ok(Flow::Continue)
    }
}

/// Writes every sample received as a line `i t(s) t_arrival F(N) cmd` (flushed every loop);
/// stops the test after `stop_after` samples if set.
struct Collector {
    dir: PathBuf,
    out: Option<std::fs::File>,
    n: u64,
    stop_after: Option<u64>,
}

impl Collector {
    fn write(&mut self, ctx: &Context, samples: Vec<Sample>) {
        let now = ctx.t();
        let Some(out) = self.out.as_mut() else { return };
        for s in samples {
            let i = s.get("i").map(|v| v.to_string()).unwrap_or("-".into());
            let _ = writeln!(
                out,
                "{i} {} {now} {} {}",
                s.get_f64("t(s)").unwrap_or(f64::NAN),
                s.get_f64("F(N)").unwrap_or(f64::NAN),
                s.get_f64("cmd").unwrap_or(f64::NAN),
            );
            self.n += 1;
        }
        let _ = out.flush();
    }
}

impl Block for Collector {
    fn prepare(&mut self, _: &mut Context) -> Result<()> {
        self.out = Some(
            std::fs::File::create(self.dir.join("sub.csv"))
                .map_err(|e| crabby::Error::io("sub.csv", e))?,
        );
        Ok(())
    }
    fn begin(&mut self, _: &mut Context) -> Result<()> {
        std::fs::write(self.dir.join("sub.ready"), "").map_err(|e| crabby::Error::io("ready", e))
    }
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if ctx.wait(Duration::from_millis(50)) {
            let got: Vec<Sample> = ctx.recv_all_per_link().into_iter().flatten().collect();
            self.write(ctx, got);
        }
        if self.stop_after.is_some_and(|n| self.n >= n) {
            ctx.stop_test();
        }
        Ok(Flow::Continue)
    }
    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        let got: Vec<Sample> = ctx
            .drain_until_ended(Duration::from_secs(1))
            .into_iter()
            .flatten()
            .collect();
        self.write(ctx, got);
        Ok(())
    }
}

fn run_role(spec: &J) -> std::result::Result<(), String> {
    let dir = PathBuf::from(spec["dir"].as_str().unwrap());
    let url = spec["url"].as_str().unwrap();
    let role = spec["role"].as_str().unwrap();
    let creds = spec["user"]
        .as_str()
        .map(|u| (u, spec["password"].as_str().unwrap_or("")));
    let remote_stop = spec["remote_stop"].as_bool().unwrap_or(false);
    let remote_pause = spec["remote_pause"].as_bool().unwrap_or(false);
    let mut test = Test::new(if role == "pub" { "rigA" } else { "rigB" });
    test.log_file(Some(dir.join(format!("{role}.log"))));
    match role {
        "pub" => {
            let src = test.add_with(
                Source {
                    n: spec["n"].as_u64().unwrap_or(1000),
                    sent: 0,
                    forever: spec["forever"].as_bool().unwrap_or(false),
                    ready: dir.join("pub.ready"),
                },
                Settings::new()
                    .name("source")
                    .freq(spec["hz"].as_f64().unwrap_or(500.0)),
            );
            let mut p = MqttPublish::new(url)
                .stream("s", ["t(s)", "F(N)", "i"])
                .buffer_samples(spec["buffer"].as_u64().unwrap_or(1_000_000))
                .batch(50, Duration::from_millis(20))
                .backoff(Duration::from_millis(50), Duration::from_millis(200))
                .flush_timeout(Duration::from_secs(2))
                .remote_stop(remote_stop)
                .remote_pause(remote_pause)
                .stats_file(dir.join("pub.json"));
            p = match creds {
                Some((u, pw)) => p.credentials(u, pw),
                None => p.anonymous(),
            };
            if let Some(ca) = spec["ca"].as_str() {
                p = p.tls_ca_file(ca);
            }
            let publ = test.add_with(p, Settings::new().name("mqtt-pub"));
            test.link(src, publ);
            if let Some(w) = spec["pause"].as_array() {
                test.add_with(
                    Pauser {
                        at: w[0].as_f64().unwrap_or(0.5),
                        until: w[1].as_f64().unwrap_or(1.0),
                    },
                    Settings::new().name("pauser").pausable(false),
                );
            }
        }
        "sub" => {
            let mut s = MqttSubscribe::new(url)
                .test("rigA")
                .stream(spec["stream"].as_str().unwrap_or("s"))
                .labels(["F(N)", "i"])
                .backoff(Duration::from_millis(50), Duration::from_millis(200))
                .remote_stop(remote_stop)
                .remote_pause(remote_pause)
                .end_with_source(spec["end_with_source"].as_bool().unwrap_or(true))
                .stats_file(dir.join("sub.json"));
            s = match creds {
                Some((u, pw)) => s.credentials(u, pw),
                None => s.anonymous(),
            };
            if let Some(ca) = spec["ca"].as_str() {
                s = s.tls_ca_file(ca);
            }
            let sub = test.add_with(s, Settings::new().name("mqtt-sub"));
            let col = test.add_with(
                Collector {
                    dir: dir.clone(),
                    out: None,
                    n: 0,
                    stop_after: spec["stop_after"].as_u64(),
                },
                Settings::new().name("collector"),
            );
            test.link(sub, col);
        }
        _ => return Err(format!("unknown role {role}")),
    }
    let report = test.run();
    let text = match &report {
        Ok(r) => format!("{r}"),
        Err(e) => format!(
            "error: {e}\n{}",
            e.report().map(|r| r.to_string()).unwrap_or_default()
        ),
    };
    let _ = std::fs::write(dir.join(format!("{role}.report")), text);
    report.map(|_| ()).map_err(|e| e.to_string())
}

fn spawn_role(spec: J) -> std::result::Result<Child, String> {
    Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .arg("--role")
        .arg(spec.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())
}

fn read_json(path: &Path) -> std::result::Result<J, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_default()
}

/// The `i` column of the collector's file.
fn received(dir: &Path) -> Vec<Vec<f64>> {
    read(dir, "sub.csv")
        .lines()
        .map(|l| {
            l.split(' ')
                .map(|x| x.parse::<f64>().unwrap_or(f64::NAN))
                .collect()
        })
        .collect()
}

/// Starts the subscriber program and waits until it is subscribed and started.
fn start_sub(dir: &Path, spec: J) -> std::result::Result<Child, String> {
    let mut c = spawn_role(spec)?;
    if !wait_until(Duration::from_secs(15), || dir.join("sub.ready").exists()) {
        let _ = c.kill();
        let _ = c.wait();
        return Err(format!(
            "the subscriber did not start: {}",
            read(dir, "sub.log")
        ));
    }
    Ok(c)
}

fn ended_ok(c: &mut Child, dir: &Path, role: &str) -> std::result::Result<(), String> {
    let st = wait_child(c, Duration::from_secs(30))?;
    if !st.success() {
        return Err(format!(
            "{role} program failed ({st}):\n{}\n{}",
            read(dir, &format!("{role}.report")),
            read(dir, &format!("{role}.log"))
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Cases.

fn zero_loss() -> std::result::Result<(), String> {
    let dir = TempDir::new("mqtt");
    let d = dir.path();
    let broker = Mosquitto::start(d, Auth::Password)?;
    let base = json!({"url": broker.url(), "dir": d, "user": USER, "password": PASSWORD});
    let mut sub = start_sub(d, merge(&base, json!({"role": "sub"})))?;
    let n = 1000;
    let mut publ = spawn_role(merge(&base, json!({"role": "pub", "n": n, "hz": 500.0})))?;
    ended_ok(&mut publ, d, "pub")?;
    ended_ok(&mut sub, d, "sub")?;
    let rows = received(d);
    ensure!(rows.len() == n, "received {} samples of {n}", rows.len());
    for (k, r) in rows.iter().enumerate() {
        ensure!(
            r[0] == k as f64,
            "sample {k} is i={} (out of order or lost)",
            r[0]
        );
        ensure!(r[3] == k as f64 * 0.5, "sample {k}: F(N)={}", r[3]);
        // Aligned on the subscriber's clock: taken before it arrived, and not long before.
        ensure!(
            r[1] <= r[2] + 0.005,
            "sample {k} stamped {} after it arrived at {}",
            r[1],
            r[2]
        );
        ensure!(
            r[2] - r[1] < 1.0,
            "sample {k}: {} s between source time and arrival",
            r[2] - r[1]
        );
    }
    let ps = read_json(&d.join("pub.json"))?;
    let ss = read_json(&d.join("sub.json"))?;
    ensure!(
        ps["batched"] == n && ps["net"]["delivered_samples"] == n,
        "publisher: {ps}"
    );
    ensure!(
        ps["dropped_samples"] == 0 && ps["net"]["outages"] == 0,
        "publisher: {ps}"
    );
    ensure!(
        ss["samples"] == n && ss["lost_samples"] == 0 && ss["rejected"] == 0,
        "subscriber: {ss}"
    );
    ensure!(
        ss["descriptor"]["labels"] == json!(["F(N)", "i"]),
        "descriptor: {ss}"
    );
    // The subscriber's persistent session was ended: nothing of this run stays queued on
    // the broker (a client resuming its session id is told there is none).
    let id = ss["client_id"].as_str().ok_or("no client id")?;
    ensure!(
        !session_present(broker.port, id)?,
        "the subscriber left its session {id} on the broker"
    );
    Ok(())
}

fn mosquitto_sub_reads() -> std::result::Result<(), String> {
    let dir = TempDir::new("mqtt");
    let d = dir.path();
    let broker = Mosquitto::start(d, Auth::Anonymous)?;
    let port = broker.port.to_string();
    // A retained marker tells when mosquitto_sub has subscribed (it prints it first).
    let st = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-r",
            "-q",
            "1",
            "-t",
            "marker",
            "-m",
            "ready",
        ])
        .status()
        .map_err(|e| e.to_string())?;
    ensure!(st.success(), "mosquitto_pub failed");
    let out = d.join("sub.out");
    let mut msub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "marker",
            "-t",
            "crabby/rigA/s",
            "-C",
            "4",
            "-W",
            "20",
        ])
        .stdout(std::fs::File::create(&out).map_err(|e| e.to_string())?)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    ensure!(
        wait_until(Duration::from_secs(10), || read(d, "sub.out")
            .contains("ready")),
        "mosquitto_sub did not subscribe"
    );
    let base = json!({"url": broker.url(), "dir": d});
    let mut publ = spawn_role(merge(&base, json!({"role": "pub", "n": 400, "hz": 1000.0})))?;
    ended_ok(&mut publ, d, "pub")?;
    let st = wait_child(&mut msub, Duration::from_secs(20))?;
    ensure!(st.success(), "mosquitto_sub: {st}");
    let text = read(d, "sub.out");
    let batches: Vec<J> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).map_err(|e| format!("not JSON: {l}: {e}")))
        .collect::<std::result::Result<_, _>>()?;
    ensure!(batches.len() == 3, "{text}");
    let mut next_i = 0;
    for (k, b) in batches.iter().enumerate() {
        ensure!(b["seq"] == k, "batch {k}: {b}");
        ensure!(b["i0"] == next_i, "batch {k}: {b}");
        let t = b["t"].as_array().ok_or("no t")?;
        ensure!(
            b["F(N)"].as_array().map(|a| a.len()) == Some(t.len()),
            "{b}"
        );
        ensure!(b["t0"].as_f64().is_some_and(|t0| t0 > 1.6e9), "t0: {b}");
        next_i += t.len() as u64;
    }
    // The retained descriptor, read afterwards by any client.
    let desc = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "crabby/rigA/s/desc",
            "-C",
            "1",
            "-W",
            "5",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    let desc: J = serde_json::from_slice(&desc.stdout).map_err(|e| format!("descriptor: {e}"))?;
    ensure!(desc["labels"] == json!(["F(N)", "i"]), "{desc}");
    ensure!(desc["units"] == json!(["N", ""]), "{desc}");
    ensure!(desc["types"] == json!(["float", "int"]), "{desc}");
    ensure!(
        desc["sources"] == json!(["source"]) && desc["publisher"] == "mqtt-pub",
        "{desc}"
    );
    ensure!(
        desc["time_label"] == "t(s)" && desc["encoding"] == "json",
        "{desc}"
    );
    let status = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "crabby/rigA/s/status",
            "-C",
            "1",
            "-W",
            "5",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    ensure!(
        String::from_utf8_lossy(&status.stdout).trim() == "ended",
        "status: {status:?}"
    );
    Ok(())
}

fn mosquitto_pub_command() -> std::result::Result<(), String> {
    let dir = TempDir::new("mqtt");
    let d = dir.path();
    let broker = Mosquitto::start(d, Auth::Anonymous)?;
    let port = broker.port.to_string();
    let base = json!({"url": broker.url(), "dir": d});
    let mut sub = start_sub(d, merge(&base, json!({"role": "sub", "stream": "cmd"})))?;
    let publish = |topic: &str, msg: &str| -> std::result::Result<(), String> {
        let st = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-q",
                "1",
                "-t",
                topic,
                "-m",
                msg,
            ])
            .status()
            .map_err(|e| e.to_string())?;
        ensure!(st.success(), "mosquitto_pub {msg}");
        Ok(())
    };
    publish("crabby/rigA/cmd", r#"{"seq":0,"t":[0.5],"cmd":[5.5]}"#)?;
    publish("crabby/rigA/cmd", "pickle me")?;
    publish("crabby/rigA/cmd", r#"{"seq":1,"t":[0.6,0.7],"cmd":[6.5]}"#)?;
    publish("crabby/rigA/cmd", r#"{"seq":1,"t":[0.6],"cmd":[6.5]}"#)?;
    publish("crabby/rigA/cmd", r#"{"seq":1,"t":[0.6],"cmd":[7.5]}"#)?; // a duplicate
    publish("crabby/rigA/cmd/status", "ended")?;
    ended_ok(&mut sub, d, "sub")?;
    let rows = received(d);
    let cmds: Vec<f64> = rows.iter().map(|r| r[4]).collect();
    ensure!(cmds == [5.5, 6.5], "commands received: {cmds:?}");
    let ss = read_json(&d.join("sub.json"))?;
    ensure!(
        ss["rejected"] == 2 && ss["duplicates"] == 1 && ss["lost_batches"] == 0,
        "{ss}"
    );
    let log = read(d, "sub.log");
    ensure!(
        log.contains("rejected a payload") && log.contains("pickle me"),
        "{log}"
    );
    Ok(())
}

/// The broker stops mid-test (by `signal`) and comes back on the same port.
fn outage(buffer: u64, n: u64, signal: Signal) -> std::result::Result<(TempDir, J, J), String> {
    let dir = TempDir::new("mqtt");
    let d = dir.path().to_path_buf();
    let mut broker = Mosquitto::start(&d, Auth::Anonymous)?;
    let base = json!({"url": broker.url(), "dir": d});
    let mut sub = start_sub(&d, merge(&base, json!({"role": "sub"})))?;
    let mut publ = spawn_role(merge(
        &base,
        json!({"role": "pub", "n": n, "hz": 500.0, "buffer": buffer}),
    ))?;
    ensure!(
        wait_until(Duration::from_secs(15), || received(&d).len() >= 200),
        "no data before the outage: {}",
        read(&d, "sub.log")
    );
    // SIGTERM: mosquitto saves the sessions (the subscriber's queue) before it exits;
    // SIGKILL: it loses them, and whatever it held.
    broker.stop(signal)?;
    // The outage lasts long enough for the publisher to buffer ~500 samples (the scenario,
    // not a wait for a condition).
    std::thread::sleep(Duration::from_secs(1));
    broker.restart()?;
    ended_ok(&mut publ, &d, "pub")?;
    ended_ok(&mut sub, &d, "sub")?;
    let ps = read_json(&d.join("pub.json"))?;
    let ss = read_json(&d.join("sub.json"))?;
    ensure!(ps["batched"] == n, "publisher: {ps}");
    ensure!(
        ps["net"]["outages"].as_u64() >= Some(1),
        "publisher saw no outage: {ps}"
    );
    ensure!(
        ps["net"]["outage_s"].as_f64() >= Some(0.9),
        "outage time: {ps}"
    );
    ensure!(ps["undelivered_samples"] == 0, "publisher: {ps}");
    ensure!(
        ss["net"]["outages"].as_u64() >= Some(1),
        "subscriber saw no outage: {ss}"
    );
    let plog = read(&d, "pub.log");
    ensure!(plog.contains("reconnected to the broker after"), "{plog}");
    // The outage time and counts are in each run report, beside the bridge Block.
    let preport = read(&d, "pub.report");
    ensure!(
        preport.contains("outages (") && preport.contains("s without broker"),
        "{preport}"
    );
    let sreport = read(&d, "sub.report");
    ensure!(sreport.contains("s without broker"), "{sreport}");
    Ok((dir, ps, ss))
}

fn broker_restart() -> std::result::Result<(), String> {
    let n = 2000;
    let (dir, ps, ss) = outage(1_000_000, n, Signal::SIGTERM)?;
    ensure!(ps["dropped_samples"] == 0, "publisher dropped: {ps}");
    ensure!(
        ps["max_buffered_samples"].as_u64() >= Some(300),
        "nothing buffered: {ps}"
    );
    ensure!(
        ss["samples"] == n && ss["lost_samples"] == 0,
        "subscriber: {ss}"
    );
    let rows = received(dir.path());
    for (k, r) in rows.iter().enumerate() {
        ensure!(
            r[0] == k as f64,
            "sample {k} is i={} (out of order or lost)",
            r[0]
        );
    }
    Ok(())
}

fn small_buffer_outage() -> std::result::Result<(), String> {
    let n = 2000;
    let (dir, ps, ss) = outage(200, n, Signal::SIGTERM)?;
    let dropped = ps["dropped_samples"].as_u64().unwrap_or(0);
    ensure!(
        dropped > 0,
        "nothing dropped with a 200-sample buffer: {ps}"
    );
    ensure!(
        ps["max_buffered_samples"].as_u64() <= Some(250),
        "buffer exceeded: {ps}"
    );
    // Every sample is either received or counted lost by the subscriber, exactly as dropped.
    ensure!(
        ss["lost_samples"] == dropped,
        "publisher dropped {dropped}, subscriber: {ss}"
    );
    ensure!(
        ss["samples"].as_u64() == Some(n - dropped),
        "subscriber: {ss}"
    );
    let rows = received(dir.path());
    ensure!(rows.windows(2).all(|w| w[1][0] > w[0][0]), "out of order");
    let slog = read(dir.path(), "sub.log");
    ensure!(slog.contains("gap in stream crabby/rigA/s"), "{slog}");
    let plog = read(dir.path(), "pub.log");
    ensure!(plog.contains("dropping the oldest batches"), "{plog}");
    Ok(())
}

/// A broker killed outright forgets the subscriber's session and what it had not forwarded:
/// the subscriber resubscribes, and what it misses is counted, not silent.
fn broker_killed() -> std::result::Result<(), String> {
    let n = 2000;
    let (dir, ps, ss) = outage(1_000_000, n, Signal::SIGKILL)?;
    ensure!(ps["dropped_samples"] == 0, "publisher dropped: {ps}");
    let got = ss["samples"].as_u64().unwrap_or(0);
    let lost = ss["lost_samples"].as_u64().unwrap_or(0);
    ensure!(
        got + lost == n,
        "received {got} + lost {lost} != sent {n}: {ss}"
    );
    let rows = received(dir.path());
    ensure!(
        rows.len() as u64 == got,
        "collector has {} rows",
        rows.len()
    );
    ensure!(
        rows.windows(2).all(|w| w[1][0] > w[0][0]),
        "out of order or duplicated"
    );
    ensure!(
        rows.last().map(|r| r[0]) == Some((n - 1) as f64),
        "the end is missing"
    );
    if lost > 0 {
        let slog = read(dir.path(), "sub.log");
        ensure!(slog.contains("gap in stream"), "{slog}");
    }
    Ok(())
}

fn remote_stop() -> std::result::Result<(), String> {
    let dir = TempDir::new("mqtt");
    let d = dir.path();
    let broker = Mosquitto::start(d, Auth::Anonymous)?;
    let base = json!({"url": broker.url(), "dir": d, "remote_stop": true});
    let mut sub = start_sub(
        d,
        merge(
            &base,
            json!({"role": "sub", "stop_after": 100, "end_with_source": false}),
        ),
    )?;
    // The publishing test would run forever: only the remote stop ends it.
    let mut publ = spawn_role(merge(
        &base,
        json!({"role": "pub", "forever": true, "hz": 200.0}),
    ))?;
    ended_ok(&mut sub, d, "sub")?;
    ended_ok(&mut publ, d, "pub")?;
    let plog = read(d, "pub.log");
    ensure!(
        plog.contains("remote stop from crabby-rigB-mqtt-sub-"),
        "{plog}"
    );
    let report = read(d, "pub.report");
    // The report names the bridge Block as the one that stopped the test.
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with("mqtt-pub"));
    ensure!(
        line.is_some_and(|l| l.contains("stopped the test")),
        "{report}"
    );
    let slog = read(d, "sub.log");
    ensure!(
        !slog.contains("remote stop from"),
        "the stopping test stopped itself remotely: {slog}"
    );
    Ok(())
}

/// A pause of one test pauses the other (QoS 1 on `crabby/<test>/pause`), its end resumes
/// it, and the relayed pause is not echoed back.
fn remote_pause() -> std::result::Result<(), String> {
    let dir = TempDir::new("mqtt");
    let d = dir.path();
    let broker = Mosquitto::start(d, Auth::Anonymous)?;
    let base = json!({"url": broker.url(), "dir": d, "remote_pause": true});
    let mut sub = start_sub(d, merge(&base, json!({"role": "sub"})))?;
    let mut publ = spawn_role(merge(
        &base,
        json!({"role": "pub", "n": 500, "hz": 200.0, "pause": [0.5, 1.2]}),
    ))?;
    ended_ok(&mut publ, d, "pub")?;
    ended_ok(&mut sub, d, "sub")?;
    let sreport = read(d, "sub.report");
    // The subscriber's test was paused by the relay, and resumed (the pause has an end).
    let line = sreport
        .lines()
        .find(|l| l.contains("remote pause from crabby-rigA-mqtt-pub-"))
        .ok_or_else(|| format!("no relayed pause in the subscriber's report:\n{sreport}"))?;
    ensure!(
        line.contains("paused") && line.contains(" → ") && !line.contains("the stop"),
        "{line}"
    );
    ensure!(line.contains("hold for inspection"), "{line}");
    let preport = read(d, "pub.report");
    ensure!(
        !preport.contains("remote pause from"),
        "the pause was echoed back:\n{preport}"
    );
    Ok(())
}

fn source_killed() -> std::result::Result<(), String> {
    let dir = TempDir::new("mqtt");
    let d = dir.path();
    let broker = Mosquitto::start(d, Auth::Anonymous)?;
    let base = json!({"url": broker.url(), "dir": d});
    let mut sub = start_sub(
        d,
        merge(&base, json!({"role": "sub", "end_with_source": false})),
    )?;
    let mut publ = spawn_role(merge(
        &base,
        json!({"role": "pub", "forever": true, "hz": 200.0}),
    ))?;
    ensure!(
        wait_until(Duration::from_secs(15), || received(d).len() >= 50),
        "no data: {}",
        read(d, "sub.log")
    );
    // The whole publishing program dies at once (its Blocks follow their coordinator).
    publ.kill().map_err(|e| e.to_string())?;
    let _ = publ.wait();
    ensure!(
        wait_until(Duration::from_secs(15), || read(d, "sub.log")
            .contains("went silent")),
        "the subscriber did not notice: {}",
        read(d, "sub.log")
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(sub.id() as i32), Signal::SIGINT)
        .map_err(|e| e.to_string())?;
    let _ = wait_child(&mut sub, Duration::from_secs(15))?;
    let ss = read_json(&d.join("sub.json"))?;
    ensure!(ss["source_offline"] == 1, "{ss}");
    drop(broker);
    Ok(())
}

fn bad_connections() -> std::result::Result<(), String> {
    let dir = TempDir::new("mqtt");
    let d = dir.path();
    let broker = Mosquitto::start(d, Auth::Password)?;
    let run = |p: MqttPublish| -> crabby::Error {
        let mut t = Test::new("bad");
        t.log_file(Some(d.join("bad.log")));
        let src = t.add(Source {
            n: 10,
            sent: 0,
            forever: false,
            ready: d.join("x.ready"),
        });
        let pb = t.add_with(p, Settings::new().name("mqtt-pub"));
        t.link(src, pb);
        match t.run() {
            Ok(r) => crabby::Error::config(format!("the test ran: {r}")),
            Err(e) => e,
        }
    };
    let stream = |p: MqttPublish| {
        p.stream("s", ["F(N)"])
            .connect_timeout(Duration::from_secs(2))
    };
    // Wrong password: refused, said so, before the start.
    let e = run(stream(MqttPublish::new(&broker.url())).credentials(USER, "wrong"));
    let text = format!("{e}");
    ensure!(
        text.contains("mqtt-pub") && text.contains("refused the connection"),
        "{text}"
    );
    ensure!(text.contains(".credentials()"), "{text}");
    // Anonymous on a broker that wants a password: refused too.
    let e = run(stream(MqttPublish::new(&broker.url())).anonymous());
    ensure!(format!("{e}").contains("refused the connection"), "{e}");
    // Nobody listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        l.local_addr().map_err(|e| e.to_string())?.port()
    };
    let e = run(stream(MqttPublish::new(&format!("mqtt://127.0.0.1:{port}"))).anonymous());
    let text = format!("{e}");
    ensure!(text.contains("cannot reach the broker"), "{text}");
    // Configuration mistakes: caught before anything is forked, naming the Block and the fix.
    let mut t = Test::new("cfg");
    let src = t.add(Source {
        n: 1,
        sent: 0,
        forever: false,
        ready: d.join("y.ready"),
    });
    let pb = t.add_with(
        MqttPublish::new("tcp://x")
            .stream("s", ["F(N)"])
            .anonymous(),
        Settings::new().name("bridge"),
    );
    t.link(src, pb);
    let e = t.describe().unwrap_err();
    ensure!(
        e.kind() == ErrorKind::Configuration && e.origin() == Some("bridge"),
        "{e}"
    );
    ensure!(e.description().contains("mqtt://"), "{e}");
    let mut t = Test::new("cfg");
    let src = t.add(Source {
        n: 1,
        sent: 0,
        forever: false,
        ready: d.join("y.ready"),
    });
    let pb = t.add(MqttPublish::new("mqtt://x").stream("s", ["F(N)"]));
    t.link(src, pb);
    let e = t.describe().unwrap_err();
    ensure!(e.description().contains(".anonymous()"), "{e}");
    let mut t = Test::new("cfg");
    let src = t.add(Source {
        n: 1,
        sent: 0,
        forever: false,
        ready: d.join("y.ready"),
    });
    let pb = t.add(
        MqttPublish::new("mqtt://x")
            .stream("s", ["F(N)", "Fz(N)"])
            .anonymous(),
    );
    t.link(src, pb);
    // Source declares no labels, so a missing one cannot be proven: the graph is accepted.
    ensure!(t.describe().is_ok(), "undeclared labels are not an error");
    Ok(())
}

/// Two programs over TLS with a password; a client that trusts another CA is refused.
#[cfg(feature = "tls")]
fn tls() -> std::result::Result<(), String> {
    let dir = TempDir::new("mqtt");
    let d = dir.path();
    let broker = Mosquitto::start(d, Auth::PasswordTls)?;
    let ca = d.join("ca.crt");
    let base =
        json!({"url": broker.tls_url(), "dir": d, "user": USER, "password": PASSWORD, "ca": ca});
    let mut sub = start_sub(d, merge(&base, json!({"role": "sub"})))?;
    let n = 300;
    let mut publ = spawn_role(merge(&base, json!({"role": "pub", "n": n, "hz": 500.0})))?;
    ended_ok(&mut publ, d, "pub")?;
    ended_ok(&mut sub, d, "sub")?;
    let rows = received(d);
    ensure!(rows.len() == n, "received {} of {n} over TLS", rows.len());
    let ss = read_json(&d.join("sub.json"))?;
    ensure!(ss["lost_samples"] == 0, "{ss}");
    // A CA that did not sign the broker's certificate: no connection, said before the start.
    broker::make_ca(d, "other")?;
    let mut t = Test::new("wrong-ca");
    t.log_file(Some(d.join("wrong.log")));
    let src = t.add(Source {
        n: 1,
        sent: 0,
        forever: false,
        ready: d.join("z.ready"),
    });
    let p = t.add(
        MqttPublish::new(&broker.tls_url())
            .stream("s", ["F(N)"])
            .credentials(USER, PASSWORD)
            .tls_ca_file(d.join("other.crt"))
            .connect_timeout(Duration::from_secs(2)),
    );
    t.link(src, p);
    let e = t
        .run()
        .err()
        .ok_or("connected with a CA that did not sign the broker")?;
    let text = e.to_string();
    ensure!(
        text.contains("cannot reach the broker") && text.contains("TLS"),
        "{text}"
    );
    Ok(())
}

/// Whether the broker still holds a session for `client_id` (connects with it, clean
/// session off, and reads CONNACK's flag).
fn session_present(port: u16, client_id: &str) -> std::result::Result<bool, String> {
    let mut o = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_credentials(USER, PASSWORD);
    o.set_clean_session(false);
    let (client, mut conn) = rumqttc::Client::new(o, 4);
    let r = match conn.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack)))) => Ok(ack.session_present),
        other => Err(format!("no CONNACK: {other:?}")),
    };
    let _ = client.disconnect();
    r
}

fn merge(base: &J, more: J) -> J {
    let mut m = base.clone();
    if let (Some(a), J::Object(b)) = (m.as_object_mut(), more) {
        a.extend(b);
    }
    m
}
