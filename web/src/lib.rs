//! # crabby-web: the live web view of a running test
//!
//! [`WebView`] is a Block that serves a page: live plots (label vs time, rolling window or
//! whole test, and label vs label such as force–strain), the latest values in large digits,
//! the camera preview, every Block's and link's health, and STOP / Pause / Resume buttons.
//! Link Blocks to it like to any receiver (drop-oldest links: see [`link_options`]) and open
//! the URL it prints at the start.
//!
//! ```no_run
//! use crabby::Test;
//! use crabby_web::WebView;
//! # struct Machine;
//! # impl crabby::Block for Machine {
//! #     fn step(&mut self, _: &mut crabby::Context) -> crabby::Result<crabby::Flow> {
//! #         Ok(crabby::Flow::Continue)
//! #     }
//! # }
//! let mut test = Test::new("tensile");
//! let machine = test.add(Machine);
//! let web = test.add(
//!     WebView::new()
//!         .port(8080)
//!         .plot("t(s)", ["F(N)"])
//!         .plot_xy("Exx(%)", "F(N)")
//!         .values(["F(N)", "x(mm)"]),
//! );
//! test.link_with(machine, web, crabby_web::link_options());
//! test.run()?; // prints "web view: http://127.0.0.1:8080/"
//! # Ok::<(), crabby::Error>(())
//! ```
//!
//! ## Where the server runs
//!
//! Nothing runs before the test forks: in `prepare`, in the web Block's own process, the
//! Block binds its socket (a port in use fails `prepare`, before the test starts) and starts
//! one thread running an HTTP/WebSocket server (axum on hyper) on a current-thread tokio
//! runtime. The coordinator never holds a thread or a socket of it, and a user who does not
//! want a web server does not depend on this crate.
//!
//! ## Never slowing the test
//!
//! The Block loops at 30 Hz (at most; the push rate), drains its inputs, keeps a bounded,
//! evenly decimated history of the whole test (see [`WebView::history_rows`]) and pushes
//! the new rows (at most [`history::MAX_ROWS_PER_PUSH`] per push) to every page. Its input
//! links should drop their oldest samples when it falls behind ([`link_options`]); a slow
//! page misses pushes and gets the whole history again instead of holding anything up.
//!
//! ## The page
//!
//! `GET /` (the page), `/app.js`, `/uPlot.iife.min.js` and `/uPlot.min.css` (uPlot, MIT,
//! vendored: the page works with no internet), `/ws` (the WebSocket: a `hello` message with
//! the configuration, the labels and the history, then one `data` message per push and an
//! `end` message), `/api/history` (the `hello` message over plain HTTP), `/camera.bmp` (the
//! latest camera preview, see [`WebView::camera_preview`]). A page that connects late or
//! reloads gets the whole test so far. With [`WebView::log_file`] the page also shows the
//! last lines of the test's log.
//!
//! ## Security
//!
//! It binds 127.0.0.1 by default. [`WebView::bind`] on another address generates an access
//! token, printed in the URL (`?token=…`): without it every request is refused (403),
//! the STOP / Pause buttons included. A WebSocket whose `Origin` is not this server is
//! refused. The page never reads a file: the only file served is the camera preview given
//! in the program.

#![deny(unsafe_code)]

pub mod history;
mod image;
pub mod report_html;
mod server;

use crabby::{
    Block, Context, Error, Flow, GraphView, LinkOptions, Overflow, Rate, Result, Settings,
};
use history::{thin, History, Row, MAX_ROWS_PER_PUSH};
use serde_json::json;
use server::{Hub, Msg, Shared};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The fastest push rate (and loop rate) of the web Block.
pub const MAX_PUSH_HZ: f64 = 30.0;

/// Link options for a link into a [`WebView`]: drop the oldest samples when the web Block
/// falls behind, so a display never slows acquisition.
pub fn link_options() -> LinkOptions {
    LinkOptions::new().overflow(Overflow::DropOldest)
}

#[derive(Debug, Clone)]
struct Plot {
    x: String,
    ys: Vec<String>,
}

/// The live web view Block (see the [crate docs](crate)).
pub struct WebView {
    bind: IpAddr,
    port: u16,
    token: Option<String>,
    plots: Vec<Plot>,
    values: Vec<String>,
    history_rows: usize,
    window_s: f64,
    url_file: Option<PathBuf>,
    camera: Option<PathBuf>,
    log_file: Option<PathBuf>,
    log_tail: Vec<String>,
    last_log: Option<Instant>,
    // Set in prepare.
    shared: Option<Arc<Shared>>,
    quit: Option<tokio::sync::watch::Sender<bool>>,
    done: Option<mpsc::Receiver<()>>,
    pending: Vec<Row>,
    last_health: Option<Instant>,
    stopped_here: bool,
    paused_here: bool,
}

impl std::fmt::Debug for WebView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Default for WebView {
    fn default() -> Self {
        Self::new()
    }
}

impl WebView {
    /// A web view on `http://127.0.0.1:<free port>/`, no plot chosen (the page then shows
    /// every label against time; the user adds plots in the page).
    pub fn new() -> Self {
        WebView {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            token: None,
            plots: Vec::new(),
            values: Vec::new(),
            history_rows: 50_000,
            window_s: 30.0,
            url_file: None,
            camera: None,
            log_file: None,
            log_tail: Vec::new(),
            last_log: None,
            shared: None,
            quit: None,
            done: None,
            pending: Vec::new(),
            last_health: None,
            stopped_here: false,
            paused_here: false,
        }
    }

    /// The TCP port (0, the default: a free port, printed at the start).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Listens on `addr` instead of 127.0.0.1. Any other address than loopback makes the
    /// page reachable from other machines: an access token is generated (printed in the URL)
    /// unless [`token`](Self::token) gives one.
    pub fn bind(mut self, addr: IpAddr) -> Self {
        self.bind = addr;
        if !addr.is_loopback() && self.token.is_none() {
            self.token = Some(random_token());
        }
        self
    }

    /// Requires this access token in every request (`?token=…`, in the printed URL).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// A plot of `ys` against `x`. With `x` = `"t(s)"`, a plot against time (a rolling
    /// window of [`window`](Self::window) seconds, or the whole test, chosen in the page);
    /// otherwise a plot of label against label (force–strain).
    pub fn plot<S: Into<String>>(mut self, x: &str, ys: impl IntoIterator<Item = S>) -> Self {
        self.plots.push(Plot {
            x: x.to_owned(),
            ys: ys.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// A plot of `y` against `x` (force–strain).
    pub fn plot_xy(self, x: &str, y: &str) -> Self {
        self.plot(x, [y])
    }

    /// Labels whose latest value the page shows in large digits.
    pub fn values<S: Into<String>>(mut self, labels: impl IntoIterator<Item = S>) -> Self {
        self.values.extend(labels.into_iter().map(Into::into));
        self
    }

    /// The width of the rolling time window, in seconds (default 30).
    pub fn window(mut self, seconds: f64) -> Self {
        self.window_s = seconds;
        self
    }

    /// Most rows kept for the whole-test plots and for a page that connects late (default
    /// 50 000; beyond, the history is thinned evenly).
    pub fn history_rows(mut self, rows: usize) -> Self {
        self.history_rows = rows;
        self
    }

    /// Writes the page's URL (with its token) to this file once the server listens: for
    /// scripts and tests that need the port chosen.
    pub fn url_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.url_file = Some(path.into());
        self
    }

    /// Shows the camera preview that a Camera Block writes with
    /// `.display(PreviewFile::new(path), period)` (a PGM/PPM file replaced atomically).
    pub fn camera_preview(mut self, path: impl Into<PathBuf>) -> Self {
        self.camera = Some(path.into());
        self
    }

    /// Shows the last lines of the test's log: give the same file as `Test::log_file` (the
    /// page cannot choose a file: only this one is read).
    pub fn log_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.log_file = Some(path.into());
        self
    }

    /// Reads the log's last lines (once a second at most); whether they changed.
    fn read_log(&mut self, force: bool) -> bool {
        let Some(path) = &self.log_file else {
            return false;
        };
        if !force
            && self
                .last_log
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return false;
        }
        self.last_log = Some(Instant::now());
        let tail = tail_lines(path, LOG_LINES);
        if tail == self.log_tail {
            return false;
        }
        self.log_tail = tail;
        true
    }

    fn config_json(&self) -> serde_json::Value {
        json!({
            "plots": self.plots.iter().map(|p| json!({"x": p.x, "ys": p.ys})).collect::<Vec<_>>(),
            "values": self.values,
            "window_s": self.window_s,
            "camera": self.camera.is_some(),
            "push_hz": MAX_PUSH_HZ,
        })
    }

    fn status(&self, ctx: &Context, state: &str, how: Option<String>) -> serde_json::Value {
        json!({
            "state": state,
            "t": ctx.t(),
            "test_paused": ctx.test_paused(),
            "paused_here": self.paused_here,
            "how": how,
        })
    }

    fn receive(&mut self, ctx: &mut Context) {
        let now = ctx.t();
        let mut samples = Vec::new();
        ctx.recv_each(|_, s| samples.push(s));
        if samples.is_empty() {
            return;
        }
        let shared = self.shared.as_ref().expect("prepared");
        let mut hub = shared.hub.lock().unwrap();
        for s in &samples {
            if let Some(row) = hub.history.row_of(s, now) {
                hub.history.offer(&row);
                self.pending.push(row);
            }
        }
    }

    fn push(&mut self, kind: &str, status: serde_json::Value, health: bool) -> usize {
        let log_changed = self.read_log(kind == "end");
        let shared = self.shared.clone().expect("prepared");
        let rows = thin(std::mem::take(&mut self.pending), MAX_ROWS_PER_PUSH);
        let mut hub = shared.hub.lock().unwrap();
        hub.status = status;
        if log_changed {
            hub.log = self.log_tail.clone();
        }
        let n = shared.tx.receiver_count();
        if n > 0 {
            let mut m = json!({
                "type": kind,
                "labels": hub.history.labels(),
                "rows": rows,
                "status": hub.status,
            });
            if health {
                m["health"] = hub.health.clone();
            }
            if log_changed || kind == "end" {
                m["log"] = json!(self.log_tail);
            }
            let _ = shared.tx.send(Arc::new(Msg {
                end: kind == "end",
                text: m.to_string(),
            }));
        }
        n
    }
}

/// Lines of the log the page shows.
const LOG_LINES: usize = 40;

/// The last `n` lines of a file (reading its last 16 KiB at most).
fn tail_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(16 * 1024);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<&str> = text.lines().collect();
    if from > 0 && !lines.is_empty() {
        lines.remove(0); // cut in the middle
    }
    let start = lines.len().saturating_sub(n);
    lines[start..].iter().map(|l| l.to_string()).collect()
}

fn random_token() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Block for WebView {
    fn default_settings(&self) -> Settings {
        // Keeps serving (and lets the user resume) while the test is paused.
        Settings::new()
            .name("web_view")
            .freq(MAX_PUSH_HZ)
            .pausable(false)
    }

    fn describe(&self) -> String {
        format!(
            "bind {}:{}, token {}, plots {:?}, values {:?}, window {} s, history {} rows, camera preview {:?}",
            self.bind,
            self.port,
            if self.token.is_some() { "set" } else { "none" },
            self.plots.iter().map(|p| format!("{} vs {}", p.ys.join(","), p.x)).collect::<Vec<_>>(),
            self.values,
            self.window_s,
            self.history_rows,
            self.camera
        )
    }

    fn check(&self, graph: &GraphView<'_>) -> Result<()> {
        let err = |m: String| Err(Error::config(m).with_origin(graph.name()));
        match graph.rate() {
            Rate::Hz(hz) if hz <= MAX_PUSH_HZ => {}
            _ => {
                return err(format!(
                    "the web view pushes to the page at most {MAX_PUSH_HZ} times per second; give it Settings::freq(f) with f <= {MAX_PUSH_HZ} (or leave its default)"
                ))
            }
        }
        if !(self.window_s.is_finite() && self.window_s > 0.0) {
            return err(format!(
                "window {} s: the rolling window must be a positive number of seconds",
                self.window_s
            ));
        }
        if self.history_rows < 100 {
            return err(format!(
                "history_rows {}: keep at least 100 rows of history",
                self.history_rows
            ));
        }
        if let Some(t) = &self.token {
            if t.is_empty()
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return err("token: use letters, digits, '-' and '_' only (it goes in the URL), and at least one".into());
            }
        }
        if !self.bind.is_loopback() && self.token.is_none() {
            return err(format!("bind {}: a page reachable from other machines needs an access token; give one with .token(...)", self.bind));
        }
        for p in &self.plots {
            if p.ys.is_empty() {
                return err(format!(
                    "plot against '{}' has no label to plot; give at least one",
                    p.x
                ));
            }
            if p.x != "t(s)" {
                graph.require_label(&p.x, "the web view's plot")?;
            }
            for y in &p.ys {
                graph.require_label(y, "the web view's plot")?;
            }
        }
        for v in &self.values {
            graph.require_label(v, "the web view's values")?;
        }
        Ok(())
    }

    fn prepare(&mut self, ctx: &mut Context) -> Result<()> {
        let addr = SocketAddr::new(self.bind, self.port);
        let listener = std::net::TcpListener::bind(addr).map_err(|e| {
            Error::io(
                format!("web view: cannot listen on {addr} (port in use? choose another with .port(n), or 0 for a free one)"),
                e,
            )
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("web view: cannot set up its socket", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("web view: no local address", e))?
            .port();
        let host = if self.bind.is_unspecified() {
            "<this machine's address>".to_owned()
        } else if self.bind.is_ipv6() {
            format!("[{}]", self.bind)
        } else {
            self.bind.to_string()
        };
        let url = match &self.token {
            Some(t) => format!("http://{host}:{port}/?token={t}"),
            None => format!("http://{host}:{port}/"),
        };
        let (tx, _) = tokio::sync::broadcast::channel(64);
        let shared = Arc::new(Shared {
            hub: Mutex::new(Hub {
                history: History::new(self.history_rows),
                config: self.config_json(),
                health: serde_json::to_value(ctx.health()).unwrap_or_default(),
                status: json!({"state": "preparing", "t": 0.0}),
                log: Vec::new(),
            }),
            tx,
            stop: Default::default(),
            stop_from: Default::default(),
            pause: Default::default(),
            token: self.token.clone(),
            clients: Default::default(),
            connects: Default::default(),
            ended_sent: Default::default(),
            camera: self.camera.clone(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::io("web view: cannot start its runtime", e))?;
        let (quit_tx, quit_rx) = tokio::sync::watch::channel(false);
        let (done_tx, done_rx) = mpsc::channel();
        let sh = shared.clone();
        std::thread::Builder::new()
            .name("web-view".into())
            .spawn(move || {
                if let Err(e) = runtime.block_on(server::serve(listener, sh, quit_rx)) {
                    log::error!("web view: the server stopped: {e}");
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| Error::io("web view: cannot start its server thread", e))?;
        if let Some(f) = &self.url_file {
            std::fs::write(f, format!("{url}\n"))
                .map_err(|e| Error::io(format!("web view: cannot write {}", f.display()), e))?;
        }
        log::info!("web view: {url}");
        self.shared = Some(shared);
        self.quit = Some(quit_tx);
        self.done = Some(done_rx);
        Ok(())
    }

    fn step(&mut self, ctx: &mut Context) -> Result<Flow> {
        self.receive(ctx);
        let shared = self.shared.clone().expect("prepared");
        if shared.stop.swap(false, Ordering::SeqCst) && !self.stopped_here {
            self.stopped_here = true;
            let who = shared.stop_from.lock().unwrap().clone();
            log::warn!("stopped from the web view ({who})");
            // In the report and the metadata: "alarm at … from web_view: stopped from the
            // web view", next to "web_view ended the test".
            ctx.record_alarm("stopped from the web view (STOP button)");
            ctx.stop_test();
        }
        match shared.pause.swap(0, Ordering::SeqCst) {
            server::PAUSE if !self.paused_here => {
                ctx.pause("paused from the web view");
                self.paused_here = true;
            }
            server::RESUME if self.paused_here => {
                ctx.resume();
                self.paused_here = false;
            }
            _ => {}
        }
        let health_due = self
            .last_health
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(500));
        if health_due {
            self.last_health = Some(Instant::now());
            let h = serde_json::to_value(ctx.health()).unwrap_or_default();
            shared.hub.lock().unwrap().health = h;
        }
        let state = if ctx.test_paused() {
            "paused"
        } else {
            "running"
        };
        let status = self.status(ctx, state, None);
        self.push("data", status, health_due);
        Ok(Flow::Continue)
    }

    fn finish(&mut self, ctx: &mut Context) -> Result<()> {
        let Some(shared) = self.shared.clone() else {
            return Ok(());
        };
        if self.paused_here {
            ctx.resume();
            self.paused_here = false;
        }
        self.receive(ctx);
        // Let the other Blocks end (up to 1 s) so the page shows their final states.
        let me = ctx.name().to_owned();
        let until = Instant::now() + Duration::from_secs(1);
        let mut health = ctx.health();
        while Instant::now() < until
            && health.blocks.iter().any(|b| {
                b.name != me
                    && !matches!(
                        b.state,
                        crabby::health::BlockState::Done | crabby::health::BlockState::Failed
                    )
            })
        {
            std::thread::sleep(Duration::from_millis(20));
            health = ctx.health();
        }
        let failed: Vec<&str> = health
            .blocks
            .iter()
            .filter(|b| b.state == crabby::health::BlockState::Failed)
            .map(|b| b.name.as_str())
            .collect();
        let t = health.t.unwrap_or(0.0);
        let how = if self.stopped_here {
            format!("stopped from the web view at t = {t:.1} s")
        } else if !failed.is_empty() {
            format!(
                "ended at t = {t:.1} s: {} failed (see the log)",
                failed.join(", ")
            )
        } else {
            format!("ended at t = {t:.1} s")
        };
        shared.hub.lock().unwrap().health = serde_json::to_value(&health).unwrap_or_default();
        let status = self.status(ctx, "ended", Some(how));
        let clients = self.push("end", status, true);
        // Give the pages a moment to receive the end (they keep the data on screen).
        let until = Instant::now() + Duration::from_secs(1);
        while shared.ended_sent.load(Ordering::SeqCst) < clients && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(q) = self.quit.take() {
            let _ = q.send(true);
        }
        if let Some(done) = self.done.take() {
            if done.recv_timeout(Duration::from_secs(2)).is_err() {
                log::warn!(
                    "web view: the server did not stop within 2 s (it ends with the process)"
                );
            }
        }
        Ok(())
    }
}
