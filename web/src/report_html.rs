//! A self-contained `report.html` for the results folder: plots of the recorded data, the run
//! report and the metadata, readable offline with no server (uPlot is inlined).
//!
//! ```no_run
//! use crabby_web::report_html::{write_report_html, ReportPlot};
//! # fn demo(report: &crabby::Report) -> crabby::Result<()> {
//! let plots = [
//!     ReportPlot::time("Force", "results/machine.csv", ["F(N)"]),
//!     ReportPlot::xy("Force vs strain", "results/machine.csv", "Exx(%)", ["F(N)"]),
//! ];
//! let text = [("Run report", report.to_string())];
//! write_report_html("results/report.html".as_ref(), "tensile test", &plots, &text)?;
//! # Ok(()) }
//! ```
//!
//! Plots of a label against time keep, for each of at most [`COLUMNS`] slices of the time
//! range, the smallest and the largest value (in their order), so a peak is never lost
//! however long the test; plots of a label against another keep every n-th point, at most
//! [`XY_POINTS`].

use crabby::{Error, ErrorKind, Result};
use std::path::{Path, PathBuf};

/// Time slices of a label-vs-time plot (two points each at most).
pub const COLUMNS: usize = 1500;
/// Points of a label-vs-label plot.
pub const XY_POINTS: usize = 5000;

/// One plot of the report, from a CSV file written by a Recorder.
#[derive(Debug, Clone)]
pub struct ReportPlot {
    title: String,
    csv: PathBuf,
    x: String,
    ys: Vec<String>,
    time: bool,
}

impl ReportPlot {
    /// Labels `ys` against `t(s)`.
    pub fn time<S: Into<String>>(
        title: impl Into<String>,
        csv: impl Into<PathBuf>,
        ys: impl IntoIterator<Item = S>,
    ) -> Self {
        ReportPlot {
            title: title.into(),
            csv: csv.into(),
            x: "t(s)".into(),
            ys: ys.into_iter().map(Into::into).collect(),
            time: true,
        }
    }

    /// Labels `ys` against label `x` (force against strain).
    pub fn xy<S: Into<String>>(
        title: impl Into<String>,
        csv: impl Into<PathBuf>,
        x: impl Into<String>,
        ys: impl IntoIterator<Item = S>,
    ) -> Self {
        ReportPlot {
            title: title.into(),
            csv: csv.into(),
            x: x.into(),
            ys: ys.into_iter().map(Into::into).collect(),
            time: false,
        }
    }
}

/// Reads the columns `x` and `ys` of a CSV file (rows missing a value are skipped).
fn read_columns(csv: &Path, x: &str, ys: &[String]) -> Result<(Vec<f64>, Vec<Vec<f64>>)> {
    let text = std::fs::read_to_string(csv)
        .map_err(|e| Error::io(format!("cannot read {}", csv.display()), e))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let find = |name: &str| {
        header.iter().position(|h| *h == name).ok_or_else(|| {
            Error::new(
                ErrorKind::Configuration,
                format!(
                    "{} has no column '{name}' (columns: {})",
                    csv.display(),
                    header.join(", ")
                ),
            )
        })
    };
    let xi = find(x)?;
    let yi: Vec<usize> = ys.iter().map(|y| find(y)).collect::<Result<_>>()?;
    let (mut xs, mut cols) = (Vec::new(), vec![Vec::new(); ys.len()]);
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let get = |i: usize| cells.get(i).and_then(|c| c.trim().parse::<f64>().ok());
        let Some(xv) = get(xi) else { continue };
        let vals: Option<Vec<f64>> = yi.iter().map(|&i| get(i)).collect();
        let Some(vals) = vals else { continue };
        xs.push(xv);
        for (c, v) in cols.iter_mut().zip(vals) {
            c.push(v);
        }
    }
    Ok((xs, cols))
}

/// Min/max per slice of the x range, for each series at once: the rows kept are, in each
/// slice, those holding a minimum or a maximum of some series (in their original order).
pub fn decimate_minmax(xs: &[f64], cols: &[Vec<f64>], columns: usize) -> Vec<usize> {
    let n = xs.len();
    if n <= 2 * columns {
        return (0..n).collect();
    }
    let (lo, hi) = (xs[0], xs[n - 1]);
    let width = (hi - lo).max(f64::MIN_POSITIVE) / columns as f64;
    let mut keep = Vec::new();
    let mut start = 0;
    while start < n {
        let slice = (((xs[start] - lo) / width) as usize).min(columns - 1);
        let mut end = start + 1;
        while end < n && (((xs[end] - lo) / width) as usize).min(columns - 1) == slice {
            end += 1;
        }
        let mut rows: Vec<usize> = vec![start];
        for c in cols {
            let range = start..end;
            let min = range.clone().min_by(|&a, &b| c[a].total_cmp(&c[b]));
            let max = range.max_by(|&a, &b| c[a].total_cmp(&c[b]));
            rows.extend(min);
            rows.extend(max);
        }
        rows.push(end - 1);
        rows.sort_unstable();
        rows.dedup();
        keep.extend(rows);
        start = end;
    }
    keep
}

fn json_array(v: impl Iterator<Item = f64>) -> String {
    let items: Vec<String> = v
        .map(|x| {
            if x.is_finite() {
                format!("{x}")
            } else {
                "null".into()
            }
        })
        .collect();
    format!("[{}]", items.join(","))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes `out`: a page with the plots and the texts (the run report, the metadata).
pub fn write_report_html(
    out: &Path,
    title: &str,
    plots: &[ReportPlot],
    texts: &[(&str, String)],
) -> Result<()> {
    let mut specs = Vec::new();
    for p in plots {
        let (xs, cols) = read_columns(&p.csv, &p.x, &p.ys)?;
        let keep: Vec<usize> = if p.time {
            decimate_minmax(&xs, &cols, COLUMNS)
        } else {
            let step = xs.len().div_ceil(XY_POINTS).max(1);
            (0..xs.len()).step_by(step).collect()
        };
        let x = json_array(keep.iter().map(|&i| xs[i]));
        let ys: Vec<String> = cols
            .iter()
            .map(|c| json_array(keep.iter().map(|&i| c[i])))
            .collect();
        specs.push(format!(
            "{{\"title\":{},\"x\":{},\"ys\":{},\"time\":{},\"data\":[{x},{}],\"rows\":{}}}",
            serde_json::to_string(&p.title).unwrap_or_default(),
            serde_json::to_string(&p.x).unwrap_or_default(),
            serde_json::to_string(&p.ys).unwrap_or_default(),
            p.time,
            ys.join(","),
            xs.len()
        ));
    }
    let mut sections = String::new();
    for (head, body) in texts {
        sections.push_str(&format!(
            "<h2>{}</h2>\n<pre>{}</pre>\n",
            escape(head),
            escape(body)
        ));
    }
    let html = format!(
        r##"<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>{css}
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
pre {{ background: #f4f4f4; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }}
.plot {{ margin-bottom: 1.5em; }} .note {{ color: #666; font-size: 0.85em; }}
</style>
<script>{js}</script></head>
<body><h1>{title}</h1>
<p class="note">Written by crabby at the end of the test; self-contained, readable with no server.
Plots against time keep each slice's minimum and maximum; plots of a label against another
keep every n-th point.</p>
<div id="plots"></div>
{sections}
<script>
const PLOTS = [{specs}];
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
for (const p of PLOTS) {{
  const box = document.createElement("div"); box.className = "plot";
  box.innerHTML = "<h2></h2><p class=note></p>";
  box.querySelector("h2").textContent = p.title;
  box.querySelector("p").textContent = p.data[0].length + " points shown of " + p.rows + " rows";
  document.getElementById("plots").appendChild(box);
  let series, data;
  if (p.time) {{
    series = [{{ label: p.x }}, ...p.ys.map((y, i) => ({{ label: y, stroke: COLORS[i % 5], width: 1.2, points: {{ show: false }} }}))];
    data = p.data;
  }} else {{
    series = [{{}}, ...p.ys.map((y, i) => ({{ label: y + " vs " + p.x, stroke: COLORS[i % 5], width: 1.2, facets: [{{ scale: "x", auto: true }}, {{ scale: "y", auto: true }}], paths: uPlot.paths.linear(), points: {{ show: false }} }}))];
    data = [null, ...p.data.slice(1).map((c) => [p.data[0], c])];
  }}
  new uPlot({{ width: 900, height: 320, mode: p.time ? 1 : 2, series,
    scales: {{ x: {{ time: false, auto: true }}, y: {{ auto: true }} }},
    axes: [{{ label: p.x }}, {{ label: p.ys.join(", "), size: 70 }}] }}, data, box);
}}
</script></body></html>
"##,
        title = escape(title),
        css = include_str!("../assets/uPlot.min.css"),
        js = include_str!("../assets/uPlot.iife.min.js"),
        specs = specs.join(",\n"),
    );
    std::fs::write(out, html).map_err(|e| Error::io(format!("cannot write {}", out.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minmax_keeps_every_peak_and_bounds_the_points() {
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|i| i as f64 * 1e-3).collect();
        let mut y: Vec<f64> = xs.iter().map(|t| (t * 3.0).sin()).collect();
        y[54_321] = 42.0; // one spike
        y[77_777] = -42.0;
        let keep = decimate_minmax(&xs, std::slice::from_ref(&y), 1000);
        assert!(keep.len() <= 4 * 1000, "{} rows kept", keep.len());
        assert!(keep.contains(&54_321) && keep.contains(&77_777));
        assert!(keep.windows(2).all(|w| w[0] < w[1]), "order kept");
        assert_eq!(keep[0], 0);
        assert_eq!(*keep.last().unwrap(), n - 1);
    }

    #[test]
    fn writes_a_page_with_the_data_and_the_texts() {
        let dir = std::env::temp_dir().join(format!("crabby-report-html-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("d.csv");
        std::fs::write(
            &csv,
            "t(s),F(N),Exx(%)\n0,1,0.1\n1,2,0.2\n2,,0.3\n3,4,0.4\n",
        )
        .unwrap();
        let out = dir.join("report.html");
        write_report_html(
            &out,
            "demo <test>",
            &[
                ReportPlot::time("Force", &csv, ["F(N)"]),
                ReportPlot::xy("F vs E", &csv, "Exx(%)", ["F(N)"]),
            ],
            &[("Run report", "test 'demo': ended <ok>".into())],
        )
        .unwrap();
        let html = std::fs::read_to_string(&out).unwrap();
        assert!(
            html.contains("[0,1,3],[1,2,4]"),
            "time data (the row missing F skipped)"
        );
        assert!(html.contains("demo &lt;test&gt;") && html.contains("ended &lt;ok&gt;"));
        assert!(html.contains("uPlot"), "uPlot inlined");
        let e = write_report_html(&out, "x", &[ReportPlot::time("?", &csv, ["nope"])], &[])
            .unwrap_err();
        assert!(e.to_string().contains("no column 'nope'"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
