//! Two crabby tests bridged through an MQTT broker, as on two machines: a furnace rig
//! publishes its temperature and obeys the setpoint that a lab PC publishes back; when the lab
//! test ends, its remote stop ends the furnace test.
//!
//! Both sides on this machine, against a mosquitto it starts on a free port (a few seconds):
//!
//! ```sh
//! cargo run -p crabby-mqtt --example two_machines
//! ```
//!
//! Each side on its own machine, against your broker:
//!
//! ```sh
//! # on the furnace's machine
//! cargo run -p crabby-mqtt --example two_machines -- --side furnace --broker mqtt://broker.lab:1883 --user lab --password secret
//! # on the lab PC
//! cargo run -p crabby-mqtt --example two_machines -- --side lab --broker mqtt://broker.lab:1883 --user lab --password secret
//! ```
//!
//! Options: `--seconds S` (how long the lab side runs, default 5), `--anonymous` instead of
//! `--user`/`--password` for a broker that accepts anyone.

use crabby::{Block, Context, Flow, Result, Sample, Settings, Test};
use crabby_mqtt::{MqttPublish, MqttSubscribe};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A furnace: the temperature follows the setpoint with a 2 s time constant.
struct Furnace {
    t_last: f64,
    temp: f64,
    setpoint: f64,
}

impl Block for Furnace {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        if let Some(sp) = ctx.recv_latest(true).get_f64("T_cmd(°C)") {
            self.setpoint = sp;
        }
        let t = ctx.t();
        self.temp += (self.setpoint - self.temp) * (t - self.t_last) / 2.0;
        self.t_last = t;
        ctx.send(&Sample::new().with("t(s)", t).with("T(°C)", self.temp))?;
        Ok(Flow::Continue)
    }
}

/// The lab's controller: ramps the setpoint to 200 °C, prints the remote temperature every
/// second, ends after `seconds`.
struct Controller {
    seconds: f64,
    next_print: f64,
    last_temp: Option<(f64, f64)>,
}

impl Block for Controller {
    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        let t = ctx.t();
        let got = ctx.recv_all();
        if let (Some(tr), Some(temp)) = (got.f64s("t(s)").last(), got.f64s("T(°C)").last()) {
            self.last_temp = Some((*tr, *temp));
        }
        let setpoint = (25.0 + 50.0 * t).min(200.0);
        ctx.send(&Sample::new().with("t(s)", t).with("T_cmd(°C)", setpoint))?;
        if t >= self.next_print {
            self.next_print += 1.0;
            match self.last_temp {
                Some((tr, temp)) => log::info!(
                    "t = {t:.1} s: setpoint {setpoint:.0} °C, furnace {temp:.1} °C (measured at t = {tr:.3} s on this clock)"
                ),
                None => log::info!("t = {t:.1} s: setpoint {setpoint:.0} °C, no furnace data yet"),
            }
        }
        Ok(if t >= self.seconds {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

struct Args {
    side: Option<String>,
    broker: Option<String>,
    creds: Option<(String, String)>,
    anonymous: bool,
    seconds: f64,
}

fn args() -> std::result::Result<Args, String> {
    let mut a = Args {
        side: None,
        broker: None,
        creds: None,
        anonymous: false,
        seconds: 5.0,
    };
    let mut it = std::env::args().skip(1);
    let (mut user, mut password) = (None, None);
    while let Some(x) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match x.as_str() {
            "--side" => a.side = Some(val("--side")?),
            "--broker" => a.broker = Some(val("--broker")?),
            "--user" => user = Some(val("--user")?),
            "--password" => password = Some(val("--password")?),
            "--anonymous" => a.anonymous = true,
            "--seconds" => {
                a.seconds = val("--seconds")?
                    .parse()
                    .map_err(|_| "--seconds needs a number")?
            }
            other => return Err(format!("unknown argument {other}; see the example's docs")),
        }
    }
    if let (Some(u), Some(p)) = (user, password) {
        a.creds = Some((u, p));
    }
    Ok(a)
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    match (a.side.as_deref(), &a.broker) {
        (Some(side), Some(url)) => Ok(run_side(side, url, &a)?),
        (Some(_), None) => Err("--side needs --broker URL".into()),
        (None, Some(url)) => both(url, &a),
        (None, None) => {
            // A local broker on a free port, anonymous, removed at the end.
            let dir =
                std::env::temp_dir().join(format!("crabby-two-machines-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let mut conf = format!("listener {port} 127.0.0.1\nallow_anonymous true\n");
            if nix_root() {
                conf.push_str("user root\n");
            }
            std::fs::write(dir.join("mosquitto.conf"), conf)?;
            let bin = if std::path::Path::new("/usr/sbin/mosquitto").exists() {
                "/usr/sbin/mosquitto"
            } else {
                "mosquitto"
            };
            let mut broker = Command::new(bin)
                .arg("-c")
                .arg(dir.join("mosquitto.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start mosquitto (apt-get install mosquitto): {e}"))?;
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if Instant::now() > deadline {
                    let _ = broker.kill();
                    let _ = broker.wait();
                    return Err("mosquitto did not start".into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let a = Args {
                anonymous: true,
                ..a
            };
            let r = both(&format!("mqtt://127.0.0.1:{port}"), &a);
            let _ = broker.kill();
            let _ = broker.wait();
            let _ = std::fs::remove_dir_all(&dir);
            r
        }
    }
}

/// As root, mosquitto would switch to its own user, which cannot read a root temp folder.
fn nix_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Runs both sides as two programs (this example started twice), the lab side first.
fn both(url: &str, a: &Args) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let side = |name: &str| {
        let mut c = Command::new(&exe);
        c.args([
            "--side",
            name,
            "--broker",
            url,
            "--seconds",
            &a.seconds.to_string(),
        ]);
        match &a.creds {
            Some((u, p)) => c.args(["--user", u, "--password", p]),
            None => c.arg("--anonymous"),
        };
        c.spawn()
    };
    println!("broker {url}: the lab side, then the furnace side, as two programs");
    let mut lab = side("lab")?;
    std::thread::sleep(Duration::from_millis(300));
    let mut furnace = side("furnace")?;
    let l = lab.wait()?;
    let f = furnace.wait()?;
    if !l.success() || !f.success() {
        return Err(format!("lab side: {l}, furnace side: {f}").into());
    }
    Ok(())
}

fn run_side(side: &str, url: &str, a: &Args) -> crabby::Result<()> {
    let auth_p = |p: MqttPublish| match &a.creds {
        Some((u, pw)) => p.credentials(u, pw),
        None if a.anonymous => p.anonymous(),
        None => p,
    };
    let auth_s = |s: MqttSubscribe| match &a.creds {
        Some((u, pw)) => s.credentials(u, pw),
        None if a.anonymous => s.anonymous(),
        None => s,
    };
    let report = match side {
        "furnace" => {
            let mut test = Test::new("furnace-rig");
            let commands = test.add(auth_s(
                MqttSubscribe::new(url)
                    .test("lab")
                    .stream("command")
                    .labels(["T_cmd(°C)"])
                    .remote_stop(true),
            ));
            let furnace = test.add_with(
                Furnace {
                    t_last: 0.0,
                    temp: 25.0,
                    setpoint: 25.0,
                },
                Settings::new().name("furnace").freq(50.0),
            );
            let publish = test.add(auth_p(
                MqttPublish::new(url)
                    .stream("furnace", ["t(s)", "T(°C)"])
                    .remote_stop(true),
            ));
            test.link(commands, furnace);
            test.link(furnace, publish);
            test.run()?
        }
        "lab" => {
            let mut test = Test::new("lab");
            let remote = test.add(auth_s(
                MqttSubscribe::new(url)
                    .test("furnace-rig")
                    .stream("furnace")
                    .labels(["T(°C)"]),
            ));
            let ctl = test.add_with(
                Controller {
                    seconds: a.seconds,
                    next_print: 1.0,
                    last_temp: None,
                },
                Settings::new().name("controller").freq(20.0),
            );
            let publish = test.add(auth_p(
                MqttPublish::new(url)
                    .stream("command", ["t(s)", "T_cmd(°C)"])
                    .remote_stop(true),
            ));
            test.link(remote, ctl);
            test.link(ctl, publish);
            test.run()?
        }
        other => {
            return Err(crabby::Error::config(format!(
                "unknown side \"{other}\": use --side furnace or --side lab"
            )))
        }
    };
    let _ = report;
    Ok(())
}
