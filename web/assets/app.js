// crabby live web view. Data: T (times) and V[i] (values of label i), null where missing.
"use strict";
const MAX_ROWS = 200000;
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04"];
const $ = (id) => document.getElementById(id);
let config = { plots: [], values: [], window_s: 30, camera: false };
let labels = [], T = [], V = [], stride = 1;
let status = { state: "connecting" }, health = null;
let logLines = [];
let ended = false, hellos = 0, pushes = 0, socket = null, dirty = false;
const plots = [];
const search = location.search || "";
const tokenQ = search ? search + "&" : "?";

function unitOf(label) { const m = /^(.*)\(([^()]*)\)\s*$/.exec(label); return m ? { name: m[1].trim(), unit: m[2] } : { name: label, unit: "" }; }
function col(label) { if (label === "t(s)" && labels.indexOf(label) < 0) return T; const i = labels.indexOf(label); return i < 0 ? T.map(() => null) : V[i]; }
function fmt(v) {
  if (v == null || !isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
  return v.toFixed(a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 2 : 3);
}

function addRows(rows, newLabels) {
  while (V.length < newLabels.length) V.push(T.map(() => null));
  labels = newLabels.slice();
  for (const r of rows) {
    T.push(r[0]);
    for (let i = 0; i < labels.length; i++) { const v = r[i + 1]; V[i].push(v == null ? null : v); }
  }
  if (T.length > MAX_ROWS) { // keep every other row: bounded, evenly thinned
    const keep = (a) => a.filter((_, k) => k % 2 === 0);
    T = keep(T); V = V.map(keep); stride *= 2;
  }
}

function reset() { labels = []; T = []; V = []; }

function onMessage(ev) {
  const m = JSON.parse(ev.data);
  if (m.type === "hello") {
    hellos++; reset(); config = m.config; stride = m.stride || 1;
    addRows(m.rows, m.labels); buildPlots(); buildValues(); startCamera();
  } else {
    pushes++; addRows(m.rows, m.labels);
  }
  if (m.status) status = m.status;
  if (m.health && Object.keys(m.health).length) health = m.health;
  if (m.log) logLines = m.log;
  if (m.type === "end") ended = true;
  refreshChoices(); dirty = true;
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${proto}://${location.host}/ws${search}`);
  $("conn").textContent = "connecting…";
  socket.onopen = () => { $("conn").textContent = "live"; };
  socket.onmessage = onMessage;
  socket.onclose = () => {
    if (ended) { $("conn").textContent = "test over: the data stays on this page"; return; }
    $("conn").textContent = "disconnected, retrying…";
    setTimeout(connect, 1000);
  };
}

function send(cmd) { if (socket && socket.readyState === 1) socket.send(JSON.stringify({ cmd, who: "a browser" })); }

// ---- plots
function plotSpecs() { if (config.plots.length) return config.plots; return labels.filter((l) => l !== "t(s)").slice(0, 4).map((l) => ({ x: "t(s)", ys: [l] })); }

function buildPlots() {
  const specs = plotSpecs();
  if (plots.length && plots.length >= specs.length) return; // keep user-added plots and zoom on reload of data
  for (const p of plots.splice(0)) { p.u && p.u.destroy(); p.el.remove(); }
  for (const s of specs) addPlot(s.x, s.ys);
}

function axisLabel(ls) { const u = [...new Set(ls.map((l) => unitOf(l).unit).filter((x) => x))]; const n = ls.map((l) => unitOf(l).name).join(", "); return u.length ? `${n} (${u.join(", ")})` : n; }

function addPlot(x, ys) {
  const time = x === "t(s)";
  const el = document.createElement("div"); el.className = "card plot";
  const head = document.createElement("div"); head.className = "plot-head";
  head.innerHTML = `<b>${ys.map(esc).join(", ")} vs ${esc(x)}</b>` +
    (time ? `<label><select class="range"><option value="window">last ${config.window_s} s</option><option value="all">whole test</option></select></label>` : "") +
    `<label><input type="checkbox" class="hold"> pause scrolling</label><button class="reset">reset zoom</button><button class="close">×</button>`;
  const box = document.createElement("div");
  el.append(head, box); $("plots").append(el);
  const p = { x, ys, time, el, box, u: null, hold: false, range: "window" };
  const holdBox = head.querySelector(".hold");
  holdBox.onchange = () => { p.hold = holdBox.checked; dirty = true; };
  p.setHold = (h) => { p.hold = h; holdBox.checked = h; };
  const rs = head.querySelector(".range"); if (rs) rs.onchange = () => { p.range = rs.value; p.setHold(false); dirty = true; };
  head.querySelector(".reset").onclick = () => { p.setHold(false); dirty = true; };
  head.querySelector(".close").onclick = () => { p.u && p.u.destroy(); el.remove(); plots.splice(plots.indexOf(p), 1); };
  plots.push(p); makeChart(p); dirty = true;
  return p;
}

function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]); }

function makeChart(p) {
  const width = Math.max(300, p.box.clientWidth || 560);
  const series = p.time
    ? [{ label: "t (s)" }, ...p.ys.map((y, i) => ({ label: y, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true, points: { show: false } }))]
    : [{}, ...p.ys.map((y, i) => ({ label: `${y} vs ${p.x}`, stroke: COLORS[i % COLORS.length], width: 1.5, facets: [{ scale: "x", auto: true }, { scale: "y", auto: true }], paths: uPlot.paths.linear(), points: { show: false } }))];
  const opts = {
    width, height: 300, mode: p.time ? 1 : 2, series,
    scales: { x: { time: false, auto: true }, y: { auto: true } },
    axes: [{ label: p.time ? "t (s)" : axisLabel([p.x]) }, { label: axisLabel(p.ys), size: 70 }],
    cursor: { drag: { x: true, y: !p.time, setScale: true } },
    legend: { live: p.time },
    hooks: { setSelect: [(u) => { if (u.select.width > 2) p.setHold(true); }] },
  };
  p.u = new uPlot(opts, chartData(p), p.box);
  // The grid places the plots after they are made: follow the card's width.
  new ResizeObserver(() => {
    const w = Math.max(300, p.box.clientWidth);
    if (Math.abs(w - p.u.width) > 2) p.u.setSize({ width: w, height: 300 });
  }).observe(p.box);
  p.u.over.addEventListener("wheel", (e) => {
    e.preventDefault(); p.setHold(true);
    const sc = p.u.scales.x, r = sc.max - sc.min;
    if (e.shiftKey) { const d = (e.deltaY > 0 ? 0.1 : -0.1) * r; p.u.setScale("x", { min: sc.min + d, max: sc.max + d }); return; }
    const at = p.u.posToVal(e.offsetX, "x"), k = e.deltaY > 0 ? 1.25 : 0.8;
    p.u.setScale("x", { min: at - (at - sc.min) * k, max: at + (sc.max - at) * k });
  }, { passive: false });
  p.u.over.addEventListener("dblclick", () => { p.setHold(false); dirty = true; });
}

function chartData(p) {
  if (p.time) return [T, ...p.ys.map(col)];
  const xs = col(p.x);
  return [null, ...p.ys.map((y) => [xs, col(y)])];
}

function drawPlots() {
  for (const p of plots) {
    if (!p.u || p.hold) continue;
    const data = chartData(p);
    if (p.time) {
      if (p.range === "window" && T.length) {
        const tmax = T[T.length - 1];
        p.u.setData(data, false);
        p.u.setScale("x", { min: Math.max(T[0], tmax - config.window_s), max: Math.max(tmax, T[0] + 1e-9) });
      } else p.u.setData(data, true);
    } else p.u.setData(data, true);
  }
}

// ---- values, choices, health, status
function buildValues() {
  const box = $("values"); box.innerHTML = "";
  for (const l of config.values) {
    const { name, unit } = unitOf(l);
    const d = document.createElement("div"); d.className = "value"; d.dataset.label = l;
    d.innerHTML = `<div class="name">${esc(name)}</div><span class="num">–</span><span class="unit">${esc(unit)}</span>`;
    box.append(d);
  }
}

function latest(label) { const c = col(label); for (let i = c.length - 1; i >= 0; i--) if (c[i] != null) return c[i]; return null; }

function drawValues() { for (const d of document.querySelectorAll(".value")) d.querySelector(".num").textContent = fmt(latest(d.dataset.label)); }

let known = "";
function refreshChoices() {
  const k = labels.join("\u0001"); if (k === known) return; known = k;
  const xs = ["t(s)", ...labels.filter((l) => l !== "t(s)")];
  $("add-x").innerHTML = xs.map((l) => `<option>${esc(l)}</option>`).join("");
  $("add-y").innerHTML = labels.filter((l) => l !== "t(s)").map((l) => `<option>${esc(l)}</option>`).join("");
}

function drawHealth() {
  if (!health || !health.blocks) return;
  $("health-t").textContent = health.t != null ? `t = ${health.t.toFixed(1)} s` : "";
  $("blocks").tBodies[0].innerHTML = health.blocks.map((b) => {
    const slow = b.requested_hz && b.achieved_hz != null && b.achieved_hz < 0.99 * b.requested_hz;
    const st = b.state === "Failed" ? "failed" : "";
    return `<tr><td>${esc(b.name)}</td><td class="${st}">${b.state}</td><td class="${slow ? "slow" : ""}">${b.achieved_hz == null ? "–" : b.achieved_hz.toFixed(1)} / ${b.requested_hz == null ? "free" : b.requested_hz.toFixed(1)}</td><td>${(b.step_last_s * 1e3).toFixed(2)} / ${(b.step_max_s * 1e3).toFixed(2)}</td><td>${b.loops}</td></tr>`;
  }).join("");
  $("links").tBodies[0].innerHTML = health.links.map((l) => {
    const f = Math.max(l.fill_samples / Math.max(1, l.capacity_samples), l.fill_bytes / Math.max(1, l.capacity_bytes));
    return `<tr><td>${esc(l.from)} → ${esc(l.to)}${l.lossless ? "" : " <small>(drop-oldest)</small>"}</td><td><span class="bar" style="width:${Math.round(60 * f)}px"></span> ${(100 * f).toFixed(0)} %</td><td>${l.sent}</td><td>${l.dropped}</td><td class="${l.blocked_now_s ? "slow" : ""}">${l.blocked_s.toFixed(2)}</td></tr>`;
  }).join("");
  $("warnings").innerHTML = (health.warnings || []).map((w) => `<li>[${w.t.toFixed(1)} s] ${esc(w.message)}</li>`).join("");
}

function drawLog() {
  if (!logLines.length) return;
  $("log-box").hidden = false;
  const box = $("log"), atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  box.textContent = logLines.join("\n");
  if (atEnd) box.scrollTop = box.scrollHeight;
}

function drawStatus() {
  const s = status.state || "connecting";
  $("state").textContent = s; $("state").className = s;
  $("how").textContent = status.how || (status.t != null ? `t = ${status.t.toFixed(1)} s` : "");
  $("pause").disabled = ended || s !== "running";
  $("resume").disabled = ended || !status.paused_here;
  $("stop").disabled = ended;
  if (ended) document.title = "crabby – test over";
}

// ---- camera preview: at most 10 frames per second, only while the test runs
let camStarted = false, camFrames = 0;
function startCamera() {
  if (!config.camera || camStarted) return;
  camStarted = true; $("camera").hidden = false;
  const img = $("cam-img"); let n = 0, shown = [], frames = [], lastUrl = null;
  const next = async () => {
    if (ended) return;
    const t0 = performance.now();
    try {
      const r = await fetch(`camera.bmp${tokenQ}n=${n}`, { cache: "no-store" });
      if (!r.ok) throw new Error(String(r.status));
      const idx = Number(r.headers.get("x-frame-index")), ts = Number(r.headers.get("x-frame-timestamp-ns"));
      const url = URL.createObjectURL(await r.blob());
      await new Promise((ok, bad) => { img.onload = ok; img.onerror = bad; img.src = url; });
      if (lastUrl) URL.revokeObjectURL(lastUrl);
      lastUrl = url; n++; camFrames = n;
      const now = performance.now();
      shown.push(now); shown = shown.filter((t) => t > now - 2000);
      frames.push([idx, ts]); frames = frames.slice(-20);
      const [i0, t0ns] = frames[0], cam = ts > t0ns ? ((idx - i0) * 1e9) / (ts - t0ns) : 0;
      $("cam-info").textContent = `frame ${idx}` + (cam > 0 ? `, camera ${cam.toFixed(1)} fps` : "") +
        `, preview ${(shown.length / 2).toFixed(1)} fps, ${img.naturalWidth}×${img.naturalHeight}`;
      setTimeout(next, Math.max(0, 100 - (now - t0))); // at most 10 previews per second
    } catch (e) {
      setTimeout(next, 500);
    }
  };
  next();
}

// ---- controls
let stopArmed = null;
$("stop").onclick = () => {
  if (!stopArmed) {
    $("stop").textContent = "Confirm STOP"; $("stop").classList.add("confirm");
    stopArmed = setTimeout(() => { stopArmed = null; $("stop").textContent = "STOP"; $("stop").classList.remove("confirm"); }, 3000);
    return;
  }
  clearTimeout(stopArmed); stopArmed = null;
  $("stop").textContent = "stopping…"; send("stop");
};
$("pause").onclick = () => send("pause");
$("resume").onclick = () => send("resume");
$("add-go").onclick = () => {
  const ys = [...$("add-y").selectedOptions].map((o) => o.value);
  if (ys.length) addPlot($("add-x").value, ys);
};

function frame() {
  if (dirty) { dirty = false; drawPlots(); drawValues(); drawHealth(); drawLog(); drawStatus(); }
  setTimeout(() => requestAnimationFrame(frame), 60);
}

// What the browser tests read.
window.crabby = {
  labels: () => labels, rows: () => T.length, col: (l) => col(l), status: () => status, ended: () => ended,
  hellos: () => hellos, pushes: () => pushes, plots: () => plots.map((p) => ({ x: p.x, ys: p.ys, points: p.u ? (p.time ? p.u.data[0].length : p.u.data[1][0].length) : 0 })),
  addPlot: (x, ys) => addPlot(x, ys), cameraFrames: () => camFrames, logLines: () => logLines, errors: [],
};
window.addEventListener("error", (e) => window.crabby.errors.push(String(e.message)));
connect(); frame();
