//! What the web view's tests and bench share: a ramp source, a "driver" Block that plays the
//! browser from its own thread, and small blocking clients (HTTP, WebSocket, WebDriver)
//! written on std's TcpStream (loopback only).
#![allow(dead_code)]

use crabby::{Block, Context, Flow, Result as CResult, Sample, Settings};
use serde_json::Value as J;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub type R<T = ()> = std::result::Result<T, String>;

/// Sends `t(s)`, `F(N)` = 10·t and `Exx(%)` = t/10 (and `n`, the sample's number) at its
/// rate; ends the test after `seconds` (never if 0).
pub struct Ramp {
    pub seconds: f64,
    pub n: u64,
}

impl Block for Ramp {
    fn output_labels(&self) -> Option<Vec<crabby::Label>> {
        Some(
            ["t(s)", "F(N)", "Exx(%)", "n"]
                .map(crabby::Label::new)
                .into(),
        )
    }
    fn step(&mut self, ctx: &mut Context) -> CResult<Flow> {
        let t = ctx.t();
        ctx.send(
            &Sample::new()
                .with("t(s)", t)
                .with("F(N)", 10.0 * t)
                .with("Exx(%)", t / 10.0)
                .with("n", self.n as f64),
        )?;
        self.n += 1;
        Ok(if self.seconds > 0.0 && t >= self.seconds {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// What a driver thread does with the page's URL; its `Ok` text is kept for the case.
pub type Scenario = fn(url: &str, dir: &Path) -> R<String>;

/// Runs `scenario` on a thread of its own process (started in `prepare`, after the fork),
/// once the web view has written its URL; writes `ok\n<text>` or `error: …` to `out`.
pub struct Driver {
    pub url_file: PathBuf,
    pub out: PathBuf,
    pub scenario: Scenario,
    pub done: Option<mpsc::Receiver<R<String>>>,
    pub result: Option<R<String>>,
}

impl Driver {
    pub fn new(dir: &Path, scenario: Scenario) -> Self {
        Driver {
            url_file: dir.join("url"),
            out: dir.join("outcome"),
            scenario,
            done: None,
            result: None,
        }
    }
    pub fn settings() -> Settings {
        Settings::new().name("driver").freq(20.0).pausable(false)
    }
}

impl Block for Driver {
    fn prepare(&mut self, _ctx: &mut Context) -> CResult<()> {
        let (tx, rx) = mpsc::channel();
        let (url_file, scenario) = (self.url_file.clone(), self.scenario);
        let dir = self.out.parent().unwrap().to_owned();
        std::thread::spawn(move || {
            let r = wait_for(Duration::from_secs(20), || {
                std::fs::read_to_string(&url_file)
                    .ok()
                    .filter(|u| u.ends_with('\n'))
            })
            .ok_or_else(|| "the web view wrote no URL".to_string())
            .and_then(|u| scenario(u.trim(), &dir));
            let _ = tx.send(r);
        });
        self.done = Some(rx);
        Ok(())
    }
    fn begin(&mut self, ctx: &mut Context) -> CResult<()> {
        // t0 for scenarios that measure latency (monotonic ns).
        let t0 = ctx.t0_ns().unwrap_or(0);
        let dir = self.out.parent().unwrap();
        std::fs::write(dir.join("t0.tmp"), t0.to_string())
            .and_then(|()| std::fs::rename(dir.join("t0.tmp"), dir.join("t0")))
            .map_err(|e| crabby::Error::io("t0", e))
    }
    fn step(&mut self, _ctx: &mut Context) -> CResult<Flow> {
        // A scenario that fails ends the test (the case then reads why).
        if let Some(Ok(r)) = self.done.as_ref().map(|d| d.try_recv()) {
            let failed = r.is_err();
            self.result = Some(r);
            if failed {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }
    fn finish(&mut self, _ctx: &mut Context) -> CResult<()> {
        let r = match self.result.take() {
            Some(r) => r,
            None => match self
                .done
                .take()
                .map(|d| d.recv_timeout(Duration::from_secs(25)))
            {
                Some(Ok(r)) => r,
                _ => Err("the scenario did not end within 25 s of the stop".into()),
            },
        };
        let text = match r {
            Ok(t) => format!("ok\n{t}"),
            Err(e) => format!("error: {e}"),
        };
        std::fs::write(&self.out, text).map_err(|e| crabby::Error::io("outcome", e))
    }
}

/// The driver's outcome: its `Ok` text.
pub fn outcome(dir: &Path) -> R<String> {
    let text =
        std::fs::read_to_string(dir.join("outcome")).map_err(|e| format!("no outcome: {e}"))?;
    match text.strip_prefix("ok\n") {
        Some(t) => Ok(t.to_owned()),
        None => Err(text),
    }
}

/// Polls `f` every 10 ms until it gives something or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `http://127.0.0.1:PORT/…` → "127.0.0.1:PORT".
pub fn host_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned()
}

/// One HTTP/1.1 request (Connection: close); returns (status, body).
pub fn http(host: &str, method: &str, path: &str, body: Option<&str>) -> R<(u16, String)> {
    let mut s = TcpStream::connect(host).map_err(|e| format!("connect {host}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    // Read the head, then exactly Content-Length bytes (chromedriver keeps the connection
    // open whatever the request says), or to the end.
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut l = String::new();
        let n = r
            .read_line(&mut l)
            .map_err(|e| format!("{method} {path}: {e}"))?;
        if n == 0 || l == "\r\n" {
            break;
        }
        head.push_str(&l);
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad response to {path}: {head:.200}"))?;
    let lower = head.to_ascii_lowercase();
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let mut raw = Vec::new();
    match length {
        Some(n) => {
            raw.resize(n, 0);
            r.read_exact(&mut raw)
                .map_err(|e| format!("{method} {path}: {e}"))?;
        }
        None => {
            r.read_to_end(&mut raw)
                .map_err(|e| format!("{method} {path}: {e}"))?;
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let body = if lower.contains("transfer-encoding: chunked") {
        dechunk(&text)
    } else {
        text
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A minimal WebSocket client (text messages).
pub struct Ws {
    s: BufReader<TcpStream>,
}

impl Ws {
    /// Connects to `path` on `host`; `Err` carries the HTTP status line if refused.
    pub fn connect(host: &str, path: &str, origin: Option<&str>) -> R<Ws> {
        let mut s = TcpStream::connect(host).map_err(|e| format!("connect {host}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let origin = origin
            .map(|o| format!("Origin: {o}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{origin}\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut s = BufReader::new(s);
        let mut status = String::new();
        s.read_line(&mut status).map_err(|e| e.to_string())?;
        loop {
            let mut l = String::new();
            s.read_line(&mut l).map_err(|e| e.to_string())?;
            if l == "\r\n" || l.is_empty() {
                break;
            }
        }
        if !status.contains(" 101 ") {
            return Err(status.trim().to_owned());
        }
        Ok(Ws { s })
    }

    /// The next text message (`None`: the server closed).
    pub fn recv(&mut self) -> R<Option<String>> {
        let mut msg = Vec::new();
        loop {
            let mut h = [0u8; 2];
            if self.s.read_exact(&mut h).is_err() {
                return Ok(None);
            }
            let (fin, op) = (h[0] & 0x80 != 0, h[0] & 0x0f);
            let mut len = (h[1] & 0x7f) as u64;
            if len == 126 {
                let mut b = [0u8; 2];
                self.s.read_exact(&mut b).map_err(|e| e.to_string())?;
                len = u16::from_be_bytes(b) as u64;
            } else if len == 127 {
                let mut b = [0u8; 8];
                self.s.read_exact(&mut b).map_err(|e| e.to_string())?;
                len = u64::from_be_bytes(b);
            }
            let mut payload = vec![0u8; len as usize];
            self.s.read_exact(&mut payload).map_err(|e| e.to_string())?;
            match op {
                8 => return Ok(None),
                9 | 10 => continue,
                _ => msg.extend_from_slice(&payload),
            }
            if fin {
                return Ok(Some(String::from_utf8_lossy(&msg).into_owned()));
            }
        }
    }

    /// The next message as JSON.
    pub fn recv_json(&mut self) -> R<Option<J>> {
        Ok(match self.recv()? {
            Some(t) => Some(serde_json::from_str(&t).map_err(|e| format!("{e}: {t:.200}"))?),
            None => None,
        })
    }

    /// Sends a text message (masked, as a client must).
    pub fn send(&mut self, text: &str) -> R {
        let p = text.as_bytes();
        let mut f = vec![0x81u8];
        if p.len() < 126 {
            f.push(0x80 | p.len() as u8);
        } else {
            f.push(0x80 | 126);
            f.extend_from_slice(&(p.len() as u16).to_be_bytes());
        }
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        f.extend_from_slice(&mask);
        f.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.s.get_mut().write_all(&f).map_err(|e| e.to_string())
    }
}

/// Rows of a hello/data/end message: (t, value of `label`) where present.
pub fn points(msg: &J, label: &str) -> Vec<(f64, f64)> {
    let labels = msg["labels"].as_array().cloned().unwrap_or_default();
    let Some(i) = labels.iter().position(|l| l == label) else {
        return Vec::new();
    };
    msg["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| Some((r[0].as_f64()?, r[i + 1].as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// A headless Chromium driven by chromedriver (both killed on drop).
pub struct Browser {
    driver: Child,
    host: String,
    profiles: std::cell::Cell<usize>,
}

pub const CHROME_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1300",
];

impl Browser {
    pub fn start(dir: &Path) -> R<Browser> {
        for bin in ["chromium", "chromedriver"] {
            let found = std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
                .unwrap_or(false);
            if !found {
                return Err(format!(
                    "{bin} is not installed: apt-get install chromium chromium-driver (CI does)"
                ));
            }
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            l.local_addr().unwrap().port()
        };
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("chromedriver: {e}"))?;
        let b = Browser {
            driver,
            host: format!("127.0.0.1:{port}"),
            profiles: Default::default(),
        };
        let _ = dir;
        wait_for(Duration::from_secs(20), || {
            let (_, body) = http(&b.host, "GET", "/status", None).ok()?;
            body.contains("\"ready\":true").then_some(())
        })
        .ok_or("chromedriver did not become ready in 20 s")?;
        Ok(b)
    }

    fn call(&self, method: &str, path: &str, body: Option<J>) -> R<J> {
        let body = body.map(|b| b.to_string());
        let (status, text) = http(&self.host, method, path, body.as_deref())?;
        let v: J = serde_json::from_str(&text).map_err(|e| format!("{e}: {text:.300}"))?;
        if status != 200 {
            return Err(format!(
                "webdriver {method} {path}: {status} {}",
                v["value"]["message"]
            ));
        }
        Ok(v["value"].clone())
    }

    /// A new browser window (its own profile directory under `dir`).
    pub fn session(&self, dir: &Path) -> R<Session<'_>> {
        let profile = dir.join(format!("profile-{}", self.profiles.get()));
        std::fs::create_dir_all(&profile).map_err(|e| e.to_string())?;
        self.profiles.set(self.profiles.get() + 1);
        let mut args: Vec<String> = CHROME_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let v = self.call(
            "POST",
            "/session",
            Some(serde_json::json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
                "goog:loggingPrefs": {"browser": "ALL"}
            }}})),
        )?;
        let id = v["sessionId"].as_str().ok_or("no session id")?.to_owned();
        Ok(Session { b: self, id })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One browser window.
pub struct Session<'a> {
    b: &'a Browser,
    id: String,
}

impl Session<'_> {
    pub fn goto(&self, url: &str) -> R {
        self.b
            .call(
                "POST",
                &format!("/session/{}/url", self.id),
                Some(serde_json::json!({ "url": url })),
            )
            .map(|_| ())
    }
    pub fn refresh(&self) -> R {
        self.b
            .call(
                "POST",
                &format!("/session/{}/refresh", self.id),
                Some(serde_json::json!({})),
            )
            .map(|_| ())
    }
    /// Runs `script` (a function body: `return …`) in the page.
    pub fn js(&self, script: &str) -> R<J> {
        self.b.call(
            "POST",
            &format!("/session/{}/execute/sync", self.id),
            Some(serde_json::json!({"script": script, "args": []})),
        )
    }
    /// Polls `script` until it returns something truthy (not null/false/0).
    pub fn wait_js(&self, script: &str, limit: Duration) -> R<J> {
        let mut last = J::Null;
        wait_for(limit, || {
            last = self.js(script).unwrap_or(J::Null);
            let truthy =
                !(last.is_null() || last == J::Bool(false) || last == serde_json::json!(0));
            truthy.then(|| last.clone())
        })
        .ok_or_else(|| format!("the page never satisfied `{script}` (last: {last})"))
    }
    pub fn click(&self, css: &str) -> R {
        let el = self.b.call(
            "POST",
            &format!("/session/{}/element", self.id),
            Some(serde_json::json!({"using": "css selector", "value": css})),
        )?;
        let id = el
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.as_str())
            .ok_or("no element id")?
            .to_owned();
        self.b
            .call(
                "POST",
                &format!("/session/{}/element/{id}/click", self.id),
                Some(serde_json::json!({})),
            )
            .map(|_| ())
    }
    /// The browser's console messages of level SEVERE.
    pub fn console_errors(&self) -> R<Vec<String>> {
        let v = self.b.call(
            "POST",
            &format!("/session/{}/se/log", self.id),
            Some(serde_json::json!({"type": "browser"})),
        )?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].to_string())
                    .collect()
            })
            .unwrap_or_default())
    }
    /// A PNG of the window.
    pub fn screenshot(&self) -> R<Vec<u8>> {
        let v = self
            .b
            .call("GET", &format!("/session/{}/screenshot", self.id), None)?;
        base64(v.as_str().ok_or("no screenshot")?)
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self
            .b
            .call("DELETE", &format!("/session/{}", self.id), None);
    }
}

fn base64(s: &str) -> R<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()) {
        acc = (acc << 6) | val(c).ok_or("bad base64")?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}
