//! The web view in real tests: a ramp source, the WebView, and a "driver" Block whose thread
//! plays the browser — raw HTTP and WebSocket from Rust, or a real headless Chromium through
//! chromedriver. Each case runs in its own process under a timeout (tests/common).

#[path = "../../tests/common/mod.rs"]
#[macro_use]
mod common;
mod support;

use common::{case, case_alone, TempDir};
use crabby::{Report, Settings, StopCause, Test};
use crabby_web::WebView;
use serde_json::{json, Value as J};
use std::path::Path;
use std::time::Duration;
use support::*;

fn main() {
    common::main(&[
        case(
            "server_streams_every_sample_and_the_end",
            60,
            server_streams,
        ),
        case("stop_over_websocket_ends_the_test_gracefully", 60, ws_stop),
        case("pause_and_resume_over_websocket", 60, ws_pause),
        case("token_and_origin_are_enforced", 60, token),
        case("late_client_gets_the_whole_history", 60, late_join),
        case("configuration_errors_before_the_fork", 30, config_errors),
        case("busy_port_fails_prepare", 30, busy_port),
        case_alone("browser_plots_reload_two_browsers_and_stop", 180, browser),
        case_alone("report_page_renders_offline_in_a_browser", 120, report_page),
        case("real_camera_block_feeds_the_preview", 60, real_camera),
    ]);
}

/// A real Camera Block (FakeCamera, scrolling) with its preview child writing the preview
/// file, and the web view serving it: the page's image is a decodable BMP that changes as
/// the camera's frames do, while the camera runs at its own rate.
fn real_camera() -> R {
    use crabby_blocks::camera::{CameraBlock, PreviewFile};
    use crabby_hardware::camera::FakeCamera;
    let tmp = TempDir::new("web-camera");
    let preview = tmp.path().join("preview.pgm");
    let mut test = Test::new("webcam");
    test.log_file(Some(tmp.path().join("log")));
    let cam = FakeCamera::new(64, 48, 30.0, 40.0).map_err(|e| e.to_string())?;
    test.add_with(
        CameraBlock::new(cam).display(PreviewFile::new(&preview), Duration::from_millis(40)),
        Settings::new().name("camera"),
    );
    let src = test.add_with(Ramp { seconds: 3.0, n: 0 }, Settings::new().name("ramp"));
    let web = test.add(
        WebView::new()
            .values(["F(N)"])
            .camera_preview(&preview)
            .url_file(tmp.path().join("url")),
    );
    test.link_with(src, web, crabby_web::link_options());
    test.add_with(
        Driver::new(tmp.path(), |url, _dir| {
            let host = host_of(url);
            let mut seen: Vec<String> = Vec::new();
            wait_for(Duration::from_secs(15), || {
                if let Ok((200, bmp)) = http(&host, "GET", "/camera.bmp", None) {
                    if bmp.starts_with("BM") && !seen.contains(&bmp) {
                        seen.push(bmp);
                    }
                }
                (seen.len() >= 3).then_some(())
            })
            .ok_or_else(|| format!("{} distinct preview images in 15 s", seen.len()))?;
            Ok(format!("{} distinct images", seen.len()))
        }),
        Driver::settings(),
    );
    let report = test.run().map_err(|e| e.to_string())?;
    let out = outcome(tmp.path())?;
    let cam = report.block("camera").ok_or("no camera")?;
    ensure!(
        cam.mean_freq.is_some_and(|f| f > 25.0),
        "the camera slowed down: {report}"
    );
    let _ = out;
    Ok(())
}

/// The end-of-test `report.html`: opened from the disk (no server) in a real Chromium, it
/// draws its plots with the data decimated as documented, with no console error.
fn report_page() -> R {
    use crabby_web::report_html::{write_report_html, ReportPlot};
    let tmp = TempDir::new("web-report");
    let csv = tmp.path().join("machine.csv");
    let mut text = String::from("t(s),F(N),Exx(%)\n");
    for i in 0..20_000 {
        let t = i as f64 * 1e-3;
        let f = if i == 12_345 { 99_999.0 } else { 1000.0 * t };
        text.push_str(&format!("{t},{f},{}\n", t * 0.1));
    }
    std::fs::write(&csv, text).map_err(|e| e.to_string())?;
    let page = tmp.path().join("report.html");
    write_report_html(
        &page,
        "offline report",
        &[
            ReportPlot::time("Force", &csv, ["F(N)"]),
            ReportPlot::xy("Force vs strain", &csv, "Exx(%)", ["F(N)"]),
        ],
        &[("Run report", "test 'offline': ended".into())],
    )
    .map_err(|e| e.to_string())?;
    let chrome = Browser::start(tmp.path())?;
    let s = chrome.session(tmp.path())?;
    s.goto(&format!("file://{}", page.display()))?;
    let canvases = s.wait_js(
        "const n = document.querySelectorAll('canvas').length; return n >= 2 ? n : null;",
        Duration::from_secs(20),
    )?;
    ensure!(canvases.as_u64() >= Some(2), "canvases: {canvases}");
    let notes = s.js("return [...document.querySelectorAll('.note')].map(e => e.textContent)")?;
    ensure!(
        notes.to_string().contains("of 20000 rows"),
        "the page does not say how many rows it shows: {notes}"
    );
    // The spike survives the decimation (min/max per slice).
    let has_spike = s.js("return PLOTS[0].data[1].includes(99999)")?;
    ensure!(has_spike == json!(true), "the spike was decimated away");
    let text = s.js("return document.body.innerText")?;
    ensure!(
        text.to_string().contains("ended"),
        "no run report on the page"
    );
    let errors = s.console_errors()?;
    ensure!(errors.is_empty(), "console errors: {errors:?}");
    Ok(())
}

/// Ramp (`seconds`, 0 = until stopped) at `hz` → WebView; the driver runs `scenario`.
fn run(dir: &Path, seconds: f64, hz: f64, web: WebView, scenario: Scenario) -> R<(Report, String)> {
    let mut test = Test::new("web");
    test.log_file(Some(dir.join("log")));
    test.grace(Duration::from_secs(30), Duration::from_millis(500));
    let src = test.add_with(
        Ramp { seconds, n: 0 },
        Settings::new().name("ramp").freq(hz),
    );
    let web = test.add(web.url_file(dir.join("url")));
    test.add_with(Driver::new(dir, scenario), Driver::settings());
    test.link_with(src, web, crabby_web::link_options());
    let report = test.run().map_err(|e| e.to_string())?;
    let out = outcome(dir)?;
    Ok((report, out))
}

fn sent_to_web(report: &Report) -> (u64, u64) {
    let l = report.links.iter().find(|l| l.to == "web_view").unwrap();
    (l.sent, l.dropped)
}

/// Reads messages until the end one (or the close); returns them.
fn read_to_end(ws: &mut Ws) -> R<Vec<J>> {
    let mut all = Vec::new();
    while let Some(m) = ws.recv_json()? {
        let end = m["type"] == "end";
        all.push(m);
        if end {
            break;
        }
    }
    Ok(all)
}

// ---- without a browser

fn server_streams_scenario(url: &str, dir: &Path) -> R<String> {
    let host = host_of(url);
    let (s, body) = http(&host, "GET", "/", None)?;
    ensure!(s == 200 && body.contains("<title>crabby"), "GET / → {s}");
    let (s, js) = http(&host, "GET", "/uPlot.iife.min.js", None)?;
    ensure!(
        s == 200 && js.len() > 40_000,
        "uPlot: {s}, {} bytes",
        js.len()
    );
    ensure!(http(&host, "GET", "/app.js", None)?.0 == 200, "app.js");
    ensure!(
        http(&host, "GET", "/etc/passwd", None)?.0 == 404,
        "no file system"
    );
    ensure!(
        http(&host, "GET", "/camera.bmp", None)?.0 == 503,
        "no preview yet"
    );
    std::fs::write(
        dir.join("preview.pgm"),
        b"P5\n4 2\n255\n\x00\x40\x80\xc0\x00\x40\x80\xc0",
    )
    .unwrap();
    let (s, bmp) = http(&host, "GET", "/camera.bmp", None)?;
    ensure!(s == 200 && bmp.starts_with("BM"), "camera.bmp → {s}");
    let mut ws = Ws::connect(&host, "/ws", Some(&format!("http://{host}")))?;
    let msgs = read_to_end(&mut ws)?;
    ensure!(
        msgs[0]["type"] == "hello",
        "first message {}",
        msgs[0]["type"]
    );
    ensure!(
        msgs[0]["config"]["values"] == json!(["F(N)"]),
        "config {}",
        msgs[0]["config"]
    );
    let last = msgs.last().unwrap();
    ensure!(last["type"] == "end", "last message {}", last["type"]);
    let mut f = Vec::new();
    for m in &msgs {
        f.extend(points(m, "F(N)"));
    }
    let bad = f
        .iter()
        .filter(|(t, v)| (v - 10.0 * t).abs() > 1e-9)
        .count();
    let ns: Vec<f64> = msgs
        .iter()
        .flat_map(|m| points(m, "n"))
        .map(|p| p.1)
        .collect();
    let in_order = ns.windows(2).all(|w| w[1] > w[0]);
    let log = last["log"].as_array().map(|l| l.len()).unwrap_or(0);
    let log_has_url = last["log"].to_string().contains("web view: http://");
    Ok(json!({
        "rows": f.len(), "bad": bad, "in_order": in_order, "how": last["status"]["how"],
        "health_blocks": last["health"]["blocks"].as_array().map(|b| b.len()),
        "log_lines": log, "log_has_url": log_has_url,
    })
    .to_string())
}

fn server_streams() -> R {
    let tmp = TempDir::new("web-stream");
    let web = WebView::new()
        .plot("t(s)", ["F(N)"])
        .values(["F(N)"])
        .camera_preview(tmp.path().join("preview.pgm"))
        .log_file(tmp.path().join("log"));
    let (report, out) = run(tmp.path(), 3.0, 200.0, web, server_streams_scenario)?;
    let v: J = serde_json::from_str(&out).unwrap();
    let (sent, dropped) = sent_to_web(&report);
    ensure!(
        report.cause == Some(StopCause::Block("ramp".into())),
        "{report}"
    );
    ensure!(sent > 500, "ramp sent {sent}");
    // Every sample that reached the web Block reached the page, once, in order, exact.
    ensure!(
        v["rows"] == json!(sent - dropped),
        "page got {} rows, web Block got {}",
        v["rows"],
        sent - dropped
    );
    ensure!(v["bad"] == json!(0) && v["in_order"] == json!(true), "{v}");
    ensure!(
        v["how"].as_str().unwrap_or("").starts_with("ended at"),
        "{v}"
    );
    ensure!(v["health_blocks"] == json!(3), "{v}");
    // The log's tail (the test's log file) reaches the page.
    ensure!(
        v["log_has_url"] == json!(true) && v["log_lines"].as_u64() > Some(1),
        "{v}"
    );
    Ok(())
}

fn ws_stop_scenario(url: &str, _dir: &Path) -> R<String> {
    let host = host_of(url);
    let mut ws = Ws::connect(&host, "/ws", None)?;
    // Wait for data, then stop.
    while let Some(m) = ws.recv_json()? {
        if !points(&m, "F(N)").is_empty() && m["status"]["state"] == "running" {
            break;
        }
    }
    ws.send(r#"{"cmd":"stop"}"#)?;
    let msgs = read_to_end(&mut ws)?;
    let last = msgs.last().ok_or("no end")?;
    Ok(last["status"]["how"].as_str().unwrap_or("").to_owned())
}

fn ws_stop() -> R {
    let tmp = TempDir::new("web-stop");
    let (report, how) = run(tmp.path(), 0.0, 100.0, WebView::new(), ws_stop_scenario)?;
    ensure!(
        report.cause == Some(StopCause::Block("web_view".into())),
        "{report}"
    );
    ensure!(!report.failed(), "a graceful stop: {report}");
    ensure!(
        how.starts_with("stopped from the web view"),
        "page says {how:?}"
    );
    ensure!(
        format!("{report}").contains("from web_view: stopped from the web view"),
        "the report does not say it:\n{report}"
    );
    let log = std::fs::read_to_string(tmp.path().join("log")).unwrap_or_default();
    ensure!(log.contains("stopped from the web view"), "log:\n{log}");
    Ok(())
}

fn ws_pause_scenario(url: &str, _dir: &Path) -> R<String> {
    let host = host_of(url);
    let mut ws = Ws::connect(&host, "/ws", None)?;
    let mut step = 0;
    while let Some(m) = ws.recv_json()? {
        let paused = m["status"]["test_paused"] == json!(true);
        match step {
            0 if m["status"]["state"] == "running" => {
                ws.send(r#"{"cmd":"pause"}"#)?;
                step = 1;
            }
            1 if paused && m["status"]["state"] == "paused" => {
                ws.send(r#"{"cmd":"resume"}"#)?;
                step = 2;
            }
            2 if !paused && m["status"]["state"] == "running" => {
                ws.send(r#"{"cmd":"stop"}"#)?;
                step = 3;
            }
            _ => {}
        }
        if m["type"] == "end" {
            break;
        }
    }
    ensure!(step == 3, "stuck at step {step}");
    Ok(String::new())
}

fn ws_pause() -> R {
    let tmp = TempDir::new("web-pause");
    let (report, _) = run(tmp.path(), 0.0, 100.0, WebView::new(), ws_pause_scenario)?;
    let pauses: Vec<_> = report.pauses().collect();
    ensure!(pauses.len() == 1, "pauses: {pauses:?}");
    ensure!(
        format!("{:?}", pauses[0]).contains("paused from the web view"),
        "{:?}",
        pauses[0]
    );
    ensure!(
        report.cause == Some(StopCause::Block("web_view".into())),
        "{report}"
    );
    Ok(())
}

fn token_scenario(url: &str, _dir: &Path) -> R<String> {
    let host = host_of(url);
    ensure!(url.ends_with("/?token=s3cret"), "printed URL {url}");
    for path in ["/", "/api/history", "/camera.bmp", "/?token=wrong"] {
        let (s, _) = http(&host, "GET", path, None)?;
        ensure!(s == 403, "GET {path} without the token → {s}");
    }
    ensure!(
        http(&host, "GET", "/?token=s3cret", None)?.0 == 200,
        "with the token"
    );
    let e = Ws::connect(&host, "/ws", None).err().unwrap_or_default();
    ensure!(e.contains("403"), "ws without token: {e:?}");
    let e = Ws::connect(&host, "/ws?token=s3cret", Some("http://evil.example"))
        .err()
        .unwrap_or_default();
    ensure!(e.contains("403"), "ws from another origin: {e:?}");
    let mut ws = Ws::connect(&host, "/ws?token=s3cret", Some(&format!("http://{host}")))?;
    ensure!(
        ws.recv_json()?.is_some_and(|m| m["type"] == "hello"),
        "hello"
    );
    Ok(String::new())
}

fn token() -> R {
    let tmp = TempDir::new("web-token");
    run(
        tmp.path(),
        1.0,
        100.0,
        WebView::new().token("s3cret"),
        token_scenario,
    )?;
    // A page reachable from other machines always gets a token.
    let w = format!("{:?}", WebView::new().bind("0.0.0.0".parse().unwrap()));
    ensure!(w.contains("token set"), "{w}");
    Ok(())
}

fn late_join_scenario(url: &str, _dir: &Path) -> R<String> {
    let host = host_of(url);
    // Join once the test has run 1.5 s.
    wait_for(Duration::from_secs(20), || {
        let (_, body) = http(&host, "GET", "/api/history", None).ok()?;
        let v: J = serde_json::from_str(&body).ok()?;
        (v["status"]["t"].as_f64()? > 1.5).then_some(())
    })
    .ok_or("the test never reached 1.5 s")?;
    let mut ws = Ws::connect(&host, "/ws", None)?;
    let hello = ws.recv_json()?.ok_or("no hello")?;
    let ns: Vec<f64> = points(&hello, "n").iter().map(|p| p.1).collect();
    ensure!(ns.len() >= 100, "history of {} rows", ns.len());
    // The whole test from its first sample, nothing missing (no decimation yet).
    ensure!(ns[0] == 0.0, "first sample {}", ns[0]);
    ensure!(
        ns.windows(2).all(|w| w[1] == w[0] + 1.0),
        "gaps in the history"
    );
    Ok(ns.len().to_string())
}

fn late_join() -> R {
    let tmp = TempDir::new("web-late");
    run(tmp.path(), 2.5, 100.0, WebView::new(), late_join_scenario)?;
    Ok(())
}

fn config_errors() -> R {
    let tmp = TempDir::new("web-config");
    let cases: [(WebView, Option<f64>, &str); 4] = [
        (WebView::new(), Some(100.0), "Settings::freq"),
        (WebView::new().plot("t(s)", ["F(kN)"]), None, "'F(kN)'"),
        (WebView::new().values(["x(mm)"]), None, "'x(mm)'"),
        (WebView::new().token("a b"), None, "token"),
    ];
    for (web, hz, expect) in cases {
        let mut test = Test::new("web-config");
        test.log_file(None);
        let src = test.add_with(Ramp { seconds: 1.0, n: 0 }, Settings::new().name("ramp"));
        let mut s = Settings::new();
        if let Some(hz) = hz {
            s = s.freq(hz);
        }
        let w = test.add_with(web.url_file(tmp.path().join("url")), s);
        test.link_with(src, w, crabby_web::link_options());
        let e = match test.run() {
            Err(e) => e.to_string(),
            Ok(r) => return Err(format!("ran anyway: {r}")),
        };
        ensure!(e.contains("web_view") && e.contains(expect), "{e}");
        ensure!(!tmp.path().join("url").exists(), "nothing may start: {e}");
    }
    Ok(())
}

fn busy_port() -> R {
    let tmp = TempDir::new("web-port");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = busy.local_addr().unwrap().port();
    let mut test = Test::new("web-port");
    test.log_file(None);
    let src = test.add_with(Ramp { seconds: 5.0, n: 0 }, Settings::new().name("ramp"));
    let w = test.add(WebView::new().port(port));
    test.link_with(src, w, crabby_web::link_options());
    let text = match test.run() {
        Err(e) => e.to_string(),
        Ok(r) => return Err(format!("ran anyway: {r}")),
    };
    ensure!(
        text.contains("web_view")
            && text.contains(&format!("127.0.0.1:{port}"))
            && text.contains(".port(n)"),
        "{text}"
    );
    drop(tmp);
    Ok(())
}

// ---- in a real browser

fn browser_scenario(url: &str, dir: &Path) -> R<String> {
    let pgm = |v: u8| {
        let mut f = format!(
            "P5\n# frame {v} timestamp_ns {}\n16 8\n255\n",
            1_000_000 * v as u64
        )
        .into_bytes();
        f.extend((0..128u8).map(|i| i.wrapping_mul(2).wrapping_add(v)));
        let tmp = dir.join("preview.tmp");
        std::fs::write(&tmp, &f).and_then(|()| std::fs::rename(&tmp, dir.join("preview.pgm")))
    };
    pgm(0).map_err(|e| e.to_string())?;
    let chrome = Browser::start(dir)?;
    let a = chrome.session(dir)?;
    a.goto(url)?;
    // The camera preview decodes as an image, and follows the file as it changes.
    a.wait_js(
        "return document.getElementById('cam-img').naturalWidth == 16",
        Duration::from_secs(20),
    )?;
    let pixel = "(() => { const i = document.getElementById('cam-img'), c = document.createElement('canvas'); \
                 c.width = 16; c.height = 8; const g = c.getContext('2d'); g.drawImage(i, 0, 0); \
                 return g.getImageData(0, 0, 1, 1).data[0]; })()";
    a.wait_js(&format!("return {pixel} == 0"), Duration::from_secs(20))?;
    pgm(100).map_err(|e| e.to_string())?;
    a.wait_js(&format!("return {pixel} == 100"), Duration::from_secs(20))?;
    ensure!(
        a.js("return crabby.cameraFrames()")?.as_u64() > Some(1),
        "preview frames"
    );
    let info = a.js("return document.getElementById('cam-info').textContent")?;
    ensure!(
        info.as_str().unwrap_or("").starts_with("frame 100"),
        "camera info {info}"
    );
    a.wait_js(
        "return window.crabby && crabby.rows() > 100",
        Duration::from_secs(30),
    )?;
    // Plots and values show what the test sends.
    let plots = a.js("return crabby.plots()")?;
    ensure!(
        plots.as_array().map(|p| p.len()) == Some(2),
        "plots {plots}"
    );
    ensure!(plots[0]["points"].as_u64() > Some(50), "time plot {plots}");
    ensure!(
        plots[1]["points"].as_u64() > Some(50),
        "force-strain plot {plots}"
    );
    let bad = a.js(
        "const t = crabby.col('t(s)'), f = crabby.col('F(N)'); let bad = 0, n = 0; \
         for (let i = 0; i < t.length; i++) if (f[i] != null) { n++; if (Math.abs(f[i] - 10 * t[i]) > 1e-9) bad++; } \
         return [n, bad];",
    )?;
    ensure!(
        bad[1] == json!(0) && bad[0].as_u64() > Some(100),
        "points vs sent: {bad}"
    );
    let v1 = a.js("return document.querySelector('.value .num').textContent")?;
    a.wait_js(
        &format!("return document.querySelector('.value .num').textContent !== {v1}"),
        Duration::from_secs(10),
    )?;
    let health = a.wait_js(
        "return document.querySelectorAll('#blocks tbody tr').length",
        Duration::from_secs(10),
    )?;
    ensure!(health == json!(3), "health rows {health}");
    // The user adds a plot of any label, without recompiling.
    a.js("crabby.addPlot('t(s)', ['Exx(%)']); return 1")?;
    a.wait_js(
        "return crabby.plots()[2].points > 0",
        Duration::from_secs(10),
    )?;
    let shot = a.screenshot()?;
    std::fs::write(dir.join("screenshot.png"), &shot).map_err(|e| e.to_string())?;
    // Reload mid-test: the history comes back.
    let before = a.js("return crabby.rows()")?.as_u64().unwrap_or(0);
    a.refresh()?;
    let after = a.wait_js(
        "return window.crabby && crabby.hellos() == 1 && crabby.rows()",
        Duration::from_secs(20),
    )?;
    ensure!(
        after.as_u64() >= Some(before),
        "rows after reload {after} < before {before}"
    );
    let first = a.js("return crabby.col('n')[0]")?;
    ensure!(
        first.as_f64() == Some(0.0),
        "history starts at sample {first}"
    );
    // A second browser at the same time, joining late.
    let how = chrome_second(&chrome, dir, url)?;
    let errors = a.console_errors()?;
    ensure!(errors.is_empty(), "console errors: {errors:?}");
    ensure!(a.js("return crabby.errors")? == json!([]), "page errors");
    Ok(json!({"rows_before_reload": before, "rows_after_reload": after, "how": how}).to_string())
}

/// Opens a second window on the page (history there at once), and stops the test from it
/// with the STOP button (two clicks: STOP, then Confirm STOP).
fn chrome_second(chrome: &Browser, dir: &Path, url: &str) -> R<String> {
    let b = chrome.session(dir)?;
    b.goto(url)?;
    let rows = b.wait_js(
        "return window.crabby && crabby.rows()",
        Duration::from_secs(20),
    )?;
    ensure!(
        rows.as_u64() > Some(100),
        "second browser's history: {rows}"
    );
    b.wait_js("return crabby.pushes() > 3", Duration::from_secs(10))?;
    b.click("#stop")?;
    b.click("#stop")?;
    let how = b.wait_js(
        "return document.getElementById('state').textContent == 'ended' && document.getElementById('how').textContent",
        Duration::from_secs(20),
    )?;
    ensure!(
        how.as_str()
            .unwrap_or("")
            .starts_with("stopped from the web view"),
        "page says {how}"
    );
    // The data stays on screen after the end.
    let rows_end = b.js("return crabby.rows()")?;
    ensure!(
        rows_end.as_u64() >= rows.as_u64(),
        "rows after the end {rows_end}"
    );
    let state = b.js("return document.getElementById('state').textContent")?;
    ensure!(state == json!("ended"), "state {state}");
    Ok(how.to_string())
}

fn browser() -> R {
    let tmp = TempDir::new("web-browser");
    let web = WebView::new()
        .plot("t(s)", ["F(N)"])
        .plot_xy("Exx(%)", "F(N)")
        .values(["F(N)", "Exx(%)"])
        .camera_preview(tmp.path().join("preview.pgm"));
    let (report, out) = run(tmp.path(), 0.0, 100.0, web, browser_scenario)?;
    // The screenshot mid-test, kept as an artefact: target/tmp/web-view.png.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-view.png");
    let _ = std::fs::copy(tmp.path().join("screenshot.png"), &shot);
    ensure!(
        report.cause == Some(StopCause::Block("web_view".into())),
        "{report}\n{out}"
    );
    ensure!(
        format!("{report}").contains("from web_view: stopped from the web view"),
        "the report does not say it:\n{report}"
    );
    let log = std::fs::read_to_string(tmp.path().join("log")).unwrap_or_default();
    ensure!(log.contains("stopped from the web view"), "log:\n{log}");
    Ok(())
}
