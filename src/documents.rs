//! Run documents: a machine-readable record of each run, written next to the data.
//!
//! When a test opts in with [`Test::documents`](crate::Test::documents), the coordinator
//! appends JSON lines to that file (one JSON object a line, several runs may share a file):
//!
//! 1. a **start** document, written before any Block is forked: the run's unique id, the
//!    time, crabby's version, the host, the whole graph (every Block's name, kind, settings,
//!    parameters, device and declared labels; every link with its labels and options), the
//!    test file and its SHA-256 hash when the front end gave one
//!    ([`Test::provenance`](crate::Test::provenance)), the per-Block parameters the front
//!    end read ([`Test::block_parameters`](crate::Test::block_parameters)) and the user's
//!    metadata ([`Test::metadata`](crate::Test::metadata));
//! 2. one **descriptor** per recorded stream, written when the recording Block declares it
//!    ([`Context::declare_stream`](crate::Context::declare_stream) with a [`StreamInfo`]; the
//!    CSV and HDF5 recorders do): its file, format, and for each label its value type, its
//!    unit (parsed from the label by [`unit_of`]: `F(N)` → `N`), the Block(s) it comes from
//!    (resolved by the coordinator from the links and the Blocks' declared labels) and their
//!    device;
//! 3. a **stop** document, written at the cleanup however the run ended (a Block crashed or
//!    was killed, Ctrl+C): the exit status (`success`, `abort`, `fail`), the reason, counts
//!    (samples sent and lost, rows written per stream), every file of the run (data files,
//!    their metadata files, the log file, folders Blocks declared with
//!    [`Context::declare_file`](crate::Context::declare_file), this file) and the whole
//!    report.
//!
//! The coordinator alone writes the file, one `write` per document (a whole line), at the
//! start, when a descriptor arrives and at the cleanup: Blocks only send messages through
//! their mailbox. If the coordinator itself is killed (`kill -9`), the file has a start
//! document without a stop: readers treat such a run as **interrupted**. The field list of
//! every document is in ARCHITECTURE.md ("Run documents").
//!
//! Also here: [`sha256_hex`] (the hash of the test file, tested against the FIPS 180-4
//! examples), [`unit_of`] and [`value_type`].

use crate::report::{Outcome, Report, StopCause};
use crate::sample::Value;
use crate::{Error, ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};
use std::path::{Path, PathBuf};

/// The time label, stamped by every Block itself (never followed upstream).
const TIME_LABEL: &str = "t(s)";

/// Version of the documents' format, in every document (`"format"`).
pub const FORMAT_VERSION: u32 = 1;

/// A stream a Block records (a data file), declared with
/// [`Context::declare_stream`](crate::Context::declare_stream); the coordinator writes it as
/// a *descriptor* document.
///
/// ```
/// use crabby::documents::StreamInfo;
/// let info = StreamInfo::new("results/run1/machine.csv", "csv")
///     .column("t(s)", Some("float"))
///     .column("F(N)", Some("float"))
///     .metadata_file("results/run1/machine.meta.txt");
/// assert_eq!(info.columns.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// The data file (as the Block opened it).
    pub file: PathBuf,
    /// Its format: `"csv"`, `"hdf5"`, ...
    pub format: String,
    /// The recorded labels, in the file's order.
    pub columns: Vec<ColumnInfo>,
    /// A file of metadata beside the data (the CSV recorder's `.meta.txt`), if any.
    pub metadata_file: Option<PathBuf>,
}

/// One recorded label of a [`StreamInfo`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnInfo {
    /// The label, e.g. `F(N)`.
    pub label: String,
    /// The type of its values as stored (`"float"`, `"int"`, `"bool"`, `"text"`, `"array"`
    /// or a format's own, e.g. `"float64"`); `None` if not known yet (no value seen).
    pub dtype: Option<String>,
}

impl StreamInfo {
    /// A stream written to `file` in `format`, with no columns yet.
    pub fn new(file: impl Into<PathBuf>, format: impl Into<String>) -> Self {
        StreamInfo {
            file: file.into(),
            format: format.into(),
            columns: Vec::new(),
            metadata_file: None,
        }
    }

    /// Adds a column (a label and the type of its values, if known).
    pub fn column(mut self, label: impl Into<String>, dtype: Option<&str>) -> Self {
        self.columns.push(ColumnInfo {
            label: label.into(),
            dtype: dtype.map(str::to_owned),
        });
        self
    }

    /// Names the metadata file written beside the data.
    pub fn metadata_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.metadata_file = Some(path.into());
        self
    }
}

/// The unit in a label, between its final parentheses: `F(N)` → `N`, `Exx(%)` → `%`,
/// `v(mm/s)` → `mm/s`; `None` without parentheses at the end (`index`, `T(C)x`), with
/// nothing between them, or with nested ones (`k(1/(s))`).
pub fn unit_of(label: &str) -> Option<&str> {
    let inner = label.strip_suffix(')')?;
    let open = inner.rfind('(')?;
    let unit = &inner[open + 1..];
    (open > 0 && !unit.trim().is_empty() && !unit.contains(')')).then_some(unit)
}

/// The type name of a value in the documents: `float`, `int`, `bool`, `text` or `array`.
pub fn value_type(v: &Value) -> &'static str {
    match v {
        Value::Float(_) => "float",
        Value::Int(_) => "int",
        Value::Bool(_) => "bool",
        Value::Text(_) => "text",
        Value::Array(_) => "array",
    }
}

/// SHA-256 of `data` (FIPS 180-4), as 64 lowercase hexadecimal digits.
pub fn sha256_hex(data: &[u8]) -> String {
    sha256(data).iter().map(|b| format!("{b:02x}")).collect()
}

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256 (FIPS 180-4, section 6.2), on the whole message at once.
fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    // Padding (section 5.1.1): a 1 bit, zeros, then the length in bits on 64 bits.
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_be_bytes());
    let mut w = [0u32; 64];
    for block in msg.chunks_exact(64) {
        for (t, word) in block.chunks_exact(4).enumerate() {
            w[t] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for t in 16..64 {
            let s0 = w[t - 15].rotate_right(7) ^ w[t - 15].rotate_right(18) ^ (w[t - 15] >> 3);
            let s1 = w[t - 2].rotate_right(17) ^ w[t - 2].rotate_right(19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16]
                .wrapping_add(s0)
                .wrapping_add(w[t - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for t in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[t])
                .wrapping_add(w[t]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// A new run id: 128 bits from `/dev/urandom` (falling back to the time and pid mixed), in
/// the UUID layout (version 4, `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`).
pub(crate) fn new_uid() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok();
    if !random {
        let seed = format!(
            "{}-{}-{}",
            crate::sys::realtime_ns(),
            crate::sys::monotonic_ns(),
            std::process::id()
        );
        b.copy_from_slice(&sha256(seed.as_bytes())[..16]);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// What the front end says of where the test came from (a test file).
#[derive(Debug, Clone)]
pub(crate) struct Provenance {
    pub source: PathBuf,
    pub sha256: String,
    pub bytes: usize,
}

/// What the coordinator knows of the graph, kept for the descriptors (which Block sent a
/// label, and its device).
#[derive(Debug, Clone, Default)]
pub(crate) struct GraphInfo {
    pub blocks: Vec<BlockInfo>,
    pub links: Vec<LinkInfo>,
}

#[derive(Debug, Clone)]
pub(crate) struct BlockInfo {
    pub name: String,
    pub kind: String,
    pub device: Option<String>,
    pub json: Json,
}

#[derive(Debug, Clone)]
pub(crate) struct LinkInfo {
    pub from: usize,
    pub to: usize,
    /// Labels the link carries (after its modifiers), if the sender declares them.
    pub labels: Option<Vec<String>>,
}

impl GraphInfo {
    /// Where label `label` received by Block `block` comes from: the senders on its links
    /// that declare it (`known`), or, if none does, those that declare nothing (they might
    /// send it: `known` false); then the Blocks where it originates, following senders
    /// that also receive the label (they pass it on) back to the first one that does not,
    /// or that has a device (it measures the label itself). The time label `t(s)` is not
    /// followed: each Block stamps its samples with its own time.
    fn sources(&self, block: usize, label: &str) -> (Vec<usize>, bool, Vec<usize>) {
        let carries = |l: &LinkInfo| {
            l.labels
                .as_ref()
                .is_some_and(|ls| ls.iter().any(|x| x == label))
        };
        let into = |b: usize| self.links.iter().filter(move |l| l.to == b);
        let mut direct: Vec<usize> = into(block).filter(|l| carries(l)).map(|l| l.from).collect();
        let known = !direct.is_empty();
        if !known {
            direct = into(block)
                .filter(|l| l.labels.is_none())
                .map(|l| l.from)
                .collect();
        }
        direct.dedup();
        let mut origins = Vec::new();
        if known && label == TIME_LABEL {
            // Every Block stamps its samples with its own time: `t(s)` comes from the sender.
            origins = direct.clone();
            origins.sort_unstable();
        } else if known {
            let mut todo = direct.clone();
            let mut seen = Vec::new();
            while let Some(b) = todo.pop() {
                if seen.contains(&b) {
                    continue;
                }
                seen.push(b);
                // A Block with a device measures what it sends: it is an origin even if it
                // also receives the label (a machine's own `t(s)`).
                let up: Vec<usize> = into(b).filter(|l| carries(l)).map(|l| l.from).collect();
                if up.is_empty() || self.blocks[b].device.is_some() {
                    if !origins.contains(&b) {
                        origins.push(b);
                    }
                } else {
                    todo.extend(up);
                }
            }
            origins.sort_unstable();
        }
        (direct, known, origins)
    }
}

/// The graph as the start document records it, and what the descriptors need of it.
pub(crate) fn graph_info(
    test: &crate::Test,
    resolved: &[crate::test::Resolved],
) -> (GraphInfo, Vec<Json>) {
    let mut blocks = Vec::with_capacity(test.blocks.len());
    for (i, (e, r)) in test.blocks.iter().zip(resolved).enumerate() {
        let device = e.block.device();
        let labels = e
            .block
            .output_labels()
            .map(|ls| ls.iter().map(|l| l.as_str().to_owned()).collect::<Vec<_>>());
        let front: Option<Map<String, Json>> = test
            .block_parameters
            .iter()
            .find(|(b, _)| *b == i)
            .map(|(_, ps)| {
                ps.iter()
                    .map(|(k, v)| (k.clone(), Json::String(v.clone())))
                    .collect()
            });
        let json = json!({
            "name": r.name,
            "kind": r.kind,
            "settings": {
                "freq_hz": match r.rate { crate::Rate::Hz(hz) => Some(hz), crate::Rate::Free => None },
                "free_run": r.rate == crate::Rate::Free,
                "niceness": r.niceness.niceness,
                "realtime_priority": r.niceness.realtime,
                "pausable": r.pausable,
                "display_freq": r.display_freq,
                "step_timeout_s": r.step_timeout.map(|d| d.as_secs_f64()),
            },
            "parameters": e.block.describe(),
            "front_end_parameters": front,
            "device": device,
            "output_labels": labels,
        });
        blocks.push(BlockInfo {
            name: r.name.clone(),
            kind: r.kind.clone(),
            device,
            json,
        });
    }
    let mut links = Vec::with_capacity(test.links.len());
    let mut links_json = Vec::with_capacity(test.links.len());
    for (i, l) in test.links.iter().enumerate() {
        let from = &test.blocks[l.from.index];
        let labels = crate::link::labels_through(&l.opts.modifiers, from.block.output_labels())
            .ok()
            .flatten()
            .map(|ls| ls.iter().map(|l| l.as_str().to_owned()).collect::<Vec<_>>());
        links_json.push(json!({
            "name": crate::test::link_name(&l.opts, i),
            "from": resolved[l.from.index].name,
            "to": resolved[l.to.index].name,
            "labels": labels,
            "overflow": match l.opts.overflow { crate::Overflow::Block => "block", crate::Overflow::DropOldest => "drop_oldest" },
            "capacity_bytes": l.opts.capacity_bytes,
            "capacity_samples": l.opts.capacity_samples,
            "modifiers": l.opts.modifiers.iter().map(|m| m.name()).collect::<Vec<_>>(),
        }));
        links.push(LinkInfo {
            from: l.from.index,
            to: l.to.index,
            labels,
        });
    }
    (GraphInfo { blocks, links }, links_json)
}

/// The coordinator's writer of one run's documents.
#[derive(Debug)]
pub(crate) struct Writer {
    path: PathBuf,
    uid: String,
    graph: GraphInfo,
    /// (Block, file, descriptor id) of every stream described.
    streams: Vec<(usize, PathBuf, String)>,
    /// Other files of the run: (Block, path, role).
    files: Vec<(Option<usize>, PathBuf, String)>,
    log_file: Option<PathBuf>,
    /// Write errors after the start, said once.
    failed: bool,
}

/// What the front end and the test give the start document.
pub(crate) struct StartInfo<'a> {
    pub test: &'a str,
    pub provenance: Option<&'a Provenance>,
    pub metadata: &'a [(String, String)],
    pub graph: GraphInfo,
    pub links_json: Vec<Json>,
    pub log_file: Option<&'a Path>,
}

fn now_fields() -> (String, u64) {
    let ns = crate::sys::realtime_ns();
    (crate::sys::iso8601(ns), ns)
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

impl Writer {
    /// Writes the start document to `path` (appended; folders created). An error here is
    /// returned: the run does not start without the record it was asked to keep.
    pub fn start(path: PathBuf, info: StartInfo<'_>) -> crate::Result<Writer> {
        let uid = new_uid();
        let (time, time_ns) = now_fields();
        let mut meta = Map::new();
        for (k, v) in info.metadata {
            meta.insert(k.clone(), Json::String(v.clone()));
        }
        let doc = json!({
            "document": "start",
            "format": FORMAT_VERSION,
            "uid": uid,
            "time": time,
            "time_ns": time_ns,
            "test": info.test,
            "crabby": env!("CARGO_PKG_VERSION"),
            "host": hostname(),
            "user": std::env::var("USER").ok(),
            "pid": std::process::id(),
            "cwd": std::env::current_dir().ok().map(|p| path_str(&p)),
            // args_os: a program path that is not UTF-8 must not panic the coordinator.
            "program": std::env::args_os().next().map(|a| a.to_string_lossy().into_owned()),
            "provenance": info.provenance.map(|p| json!({
                "source": path_str(&p.source),
                "sha256": p.sha256,
                "bytes": p.bytes,
            })),
            "metadata": meta,
            "graph": {
                "blocks": info.graph.blocks.iter().map(|b| b.json.clone()).collect::<Vec<_>>(),
                "links": info.links_json,
            },
            "documents": path_str(&path),
            "log_file": info.log_file.map(path_str),
        });
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::io(
                    format!(
                        "cannot create the folder of the run documents {}",
                        dir.display()
                    ),
                    e,
                )
            })?;
        }
        append_line(&path, &doc).map_err(|e| {
            Error::io(
                format!(
                    "cannot write the run documents to {} (Test::documents)",
                    path.display()
                ),
                e,
            )
        })?;
        Ok(Writer {
            path,
            uid,
            graph: info.graph,
            streams: Vec::new(),
            files: Vec::new(),
            log_file: info.log_file.map(Path::to_path_buf),
            failed: false,
        })
    }

    /// The run's id (in every document).
    #[allow(dead_code)]
    pub fn uid(&self) -> &str {
        &self.uid
    }

    fn write(&mut self, doc: &Json) {
        if let Err(e) = append_line(&self.path, doc) {
            if !self.failed {
                log::error!(
                    "cannot write the run documents to {}: {e}",
                    self.path.display()
                );
            }
            self.failed = true;
        }
    }

    /// A stream declared by Block `block`: writes its descriptor (once per Block and file).
    pub fn descriptor(&mut self, block: usize, info: StreamInfo) {
        if self
            .streams
            .iter()
            .any(|(b, f, _)| *b == block && *f == info.file)
        {
            log::debug!(
                "{}: stream {} already described",
                self.graph.blocks[block].name,
                info.file.display()
            );
            return;
        }
        let uid = format!("{}-d{}", self.uid, self.streams.len() + 1);
        let name = |i: usize| self.graph.blocks[i].name.clone();
        let columns: Vec<Json> = info
            .columns
            .iter()
            .map(|c| {
                let (direct, known, origins) = self.graph.sources(block, &c.label);
                let devices: Vec<Json> = origins
                    .iter()
                    .map(|&o| json!({"block": name(o), "device": self.graph.blocks[o].device}))
                    .collect();
                json!({
                    "label": c.label,
                    "unit": unit_of(&c.label),
                    "dtype": c.dtype,
                    "source": direct.iter().map(|&i| name(i)).collect::<Vec<_>>(),
                    "source_known": known,
                    "origin": devices,
                })
            })
            .collect();
        let (time, time_ns) = now_fields();
        let doc = json!({
            "document": "descriptor",
            "format": FORMAT_VERSION,
            "run": self.uid,
            "uid": uid,
            "time": time,
            "time_ns": time_ns,
            "block": name(block),
            "kind": self.graph.blocks[block].kind,
            "file": path_str(&info.file),
            "data_format": info.format,
            "metadata_file": info.metadata_file.as_deref().map(path_str),
            "columns": columns,
        });
        self.write(&doc);
        if let Some(m) = info.metadata_file {
            self.files.push((Some(block), m, "metadata".to_owned()));
        }
        self.streams.push((block, info.file, uid));
    }

    /// A file or folder Block `block` made (a video folder, images).
    pub fn file(&mut self, block: Option<usize>, path: PathBuf, role: String) {
        if !self.files.iter().any(|(_, p, _)| *p == path) {
            self.files.push((block, path, role));
        }
    }

    /// Writes the stop document: how the run ended (`result`, or the error of a run that
    /// ended before its report), the counts, every file, the report.
    pub fn stop(&mut self, report: Option<&Report>, error: Option<&Error>) {
        let (status, reason) = exit_status(report, error);
        let (time, time_ns) = now_fields();
        let mut files: Vec<Json> = Vec::new();
        files.push(json!({"path": path_str(&self.path), "role": "documents", "block": null}));
        if let Some(l) = &self.log_file {
            files.push(json!({"path": path_str(l), "role": "log", "block": null}));
        }
        for (b, f, _) in &self.streams {
            files.push(
                json!({"path": path_str(f), "role": "data", "block": self.graph.blocks[*b].name}),
            );
        }
        for (b, f, role) in &self.files {
            let already = files
                .iter()
                .any(|j| j["path"].as_str() == Some(path_str(f).as_str()));
            if !already {
                files.push(json!({
                    "path": path_str(f),
                    "role": role,
                    "block": b.map(|b| self.graph.blocks[b].name.clone()),
                }));
            }
        }
        let streams: Vec<Json> = self
            .streams
            .iter()
            .map(|(b, f, uid)| {
                let one = self.streams.iter().filter(|(o, _, _)| o == b).count() == 1;
                let rows = report
                    .and_then(|r| r.blocks.get(*b))
                    .and_then(|br| br.rows_durable)
                    .filter(|_| one);
                json!({"descriptor": uid, "block": self.graph.blocks[*b].name, "file": path_str(f), "rows": rows})
            })
            .collect();
        let counts = report.map(|r| {
            json!({
                "blocks": r.blocks.len(),
                "links": r.links.len(),
                "samples_sent": r.links.iter().map(|l| l.sent).sum::<u64>(),
                "samples_lost": r.samples_lost(),
                "samples_unread": r.samples_unread(),
                "warnings": r.warnings.len(),
                "incidents": r.incidents.len(),
                "streams": streams,
            })
        });
        let doc = json!({
            "document": "stop",
            "format": FORMAT_VERSION,
            "run": self.uid,
            "time": time,
            "time_ns": time_ns,
            "exit_status": status,
            "reason": reason,
            "error": error.map(|e| json!({"kind": e.kind().as_str(), "block": e.block(), "message": e.to_string()})),
            "duration_s": report.map(|r| r.duration_s),
            "counts": counts,
            "files": files,
            "report": report.and_then(|r| serde_json::to_value(r).ok()),
        });
        self.write(&doc);
    }
}

/// `success`, `abort` or `fail`, and why.
///
/// - `abort`: the user stopped the test (Ctrl+C, SIGTERM, Ctrl+\\), or a Block asked for the
///   stop ([`Context::stop_test`](crate::Context::stop_test): a StopBlock's criterion, a
///   stop button) and everything else went well;
/// - `fail`: the run returned an error (a Block failed, crashed or was killed, data lost
///   under `fail_on_loss`, a `finish` failed), or it was interrupted while it was already
///   stopping because a Block failed (or failed to prepare), or a `finish` failed after the
///   interruption;
/// - `success`: a Block ended the test by itself (`Flow::Stop`, e.g. a Generator at the end
///   of its path) and nothing failed.
fn exit_status(report: Option<&Report>, error: Option<&Error>) -> (&'static str, String) {
    let interrupted = error.is_some_and(|e| e.kind() == ErrorKind::Interrupted);
    if let Some(e) = error.filter(|_| !interrupted) {
        return ("fail", e.to_string());
    }
    if interrupted {
        // A run already stopping because a Block failed stays a failure: the keys only
        // hurried its cleanup (`run` returns Interrupted all the same).
        match report.and_then(|r| r.cause.as_ref()) {
            Some(StopCause::BlockFailed(b)) => {
                return (
                    "fail",
                    format!("{b} failed; then the user interrupted the cleanup"),
                )
            }
            Some(StopCause::PrepareFailed(b)) => {
                return (
                    "fail",
                    format!("{b} failed to prepare; then the user interrupted the cleanup"),
                )
            }
            _ => {}
        }
        // A finish that failed after the keys (a motor not stopped, a file not written): the
        // user stopped the test, but its stop did not go well.
        if let Some(b) = report
            .into_iter()
            .flat_map(|r| &r.blocks)
            .find(|b| b.finish_error.is_some())
        {
            return (
                "fail",
                format!(
                    "interrupted by the user, then the finish of {} failed: {}",
                    b.name,
                    b.finish_error.as_deref().unwrap_or_default()
                ),
            );
        }
        // Also when the keys came during the cleanup of a run a Block had ended.
        let quit = report.is_some_and(|r| r.cause == Some(StopCause::Quit));
        return (
            "abort",
            if quit {
                "stopped at once by the user (Ctrl+\\)".to_owned()
            } else {
                "interrupted by the user (Ctrl+C or a termination signal)".to_owned()
            },
        );
    }
    let Some(r) = report else {
        return ("fail", "the run ended without a report".to_owned());
    };
    match &r.cause {
        Some(StopCause::Interrupted) => (
            "abort",
            "interrupted by the user (Ctrl+C or a termination signal)".to_owned(),
        ),
        Some(StopCause::Quit) => ("abort", "stopped at once by the user (Ctrl+\\)".to_owned()),
        Some(StopCause::Block(b)) => {
            let br = r.block(b);
            let kind = br.map_or("", |br| br.kind.as_str());
            if br.is_some_and(|br| br.outcome == Outcome::StopRequested) {
                ("abort", format!("{b} ({kind}) stopped the test"))
            } else {
                ("success", format!("{b} ({kind}) ended the test"))
            }
        }
        Some(StopCause::BlockFailed(b)) => ("fail", format!("{b} failed")),
        Some(StopCause::PrepareFailed(b)) => ("fail", format!("{b} failed to prepare")),
        None => ("success", "every Block ended".to_owned()),
    }
}

/// Appends `doc` as one line, in one `write` (a reader never sees half a document unless
/// the disk is full). If the file does not end with a newline (an earlier write was cut
/// short by a full disk), the document starts on a new line, so only the cut one is lost.
fn append_line(path: &Path, doc: &Json) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let json = serde_json::to_vec(doc).map_err(std::io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    let mut line = Vec::with_capacity(json.len() + 2);
    // Best effort, on a regular file only (a pipe or a terminal has no last byte).
    let cut = || -> std::io::Result<bool> {
        let mut r = std::fs::File::open(path)?;
        if !r.metadata()?.is_file() || r.metadata()?.len() == 0 {
            return Ok(false);
        }
        let mut last = [0u8; 1];
        r.seek(SeekFrom::End(-1))?;
        r.read_exact(&mut last)?;
        Ok(last[0] != b'\n')
    };
    if cut().unwrap_or(false) {
        line.push(b'\n');
    }
    line.extend_from_slice(&json);
    line.push(b'\n');
    f.write_all(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_fips_180_examples() {
        // FIPS 180-4 / NIST CSRC "SHA256.pdf" examples: one block, two blocks; and the
        // empty message (NIST's SHA-256 short-message test vector, Len = 0).
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // One million 'a' (FIPS 180-2, appendix B.3): many blocks.
        assert_eq!(
            sha256_hex(&vec![b'a'; 1_000_000]),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
        // 55 and 56 bytes: the padding fits in the block, or needs one more.
        assert_ne!(sha256_hex(&[0u8; 55]), sha256_hex(&[0u8; 56]));
    }

    #[test]
    fn units_are_parsed_from_labels() {
        assert_eq!(unit_of("F(N)"), Some("N"));
        assert_eq!(unit_of("Exx(%)"), Some("%"));
        assert_eq!(unit_of("t(s)"), Some("s"));
        assert_eq!(unit_of("v(mm/s)"), Some("mm/s"));
        assert_eq!(unit_of("a(b)(kN)"), Some("kN"));
        assert_eq!(unit_of("index"), None);
        assert_eq!(unit_of("T(C)x"), None);
        assert_eq!(unit_of("x()"), None);
        assert_eq!(unit_of("(N)"), None);
        assert_eq!(unit_of(""), None);
        assert_eq!(unit_of("F(kN)"), Some("kN"));
        assert_eq!(unit_of("T(°C)"), Some("°C"));
        assert_eq!(unit_of("Eyy(µm/m)"), Some("µm/m"));
        // Nested parentheses: no half unit with a stray parenthesis.
        assert_eq!(unit_of("k(1/(s))"), None);
    }

    #[test]
    fn uids_are_uuid_shaped_and_differ() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn json_lines_escape_what_json_requires() {
        // The encoder is serde_json; this checks a document with hostile text stays one line
        // and reads back the same.
        let dir = std::env::temp_dir().join(format!("crabby-docs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("run.jsonl");
        let nasty = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} é ✓";
        append_line(&p, &json!({"a": nasty})).unwrap();
        append_line(&p, &json!({"b": 1})).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        for escaped in [r#"\""#, r"\\", r"\n", r"\t", r"\u0000", r"\u0007"] {
            assert!(
                lines[0].contains(escaped),
                "{escaped} missing in {}",
                lines[0]
            );
        }
        let back: Json = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(back["a"], nasty);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_line_cut_by_a_full_disk_does_not_swallow_the_next_document() {
        // A write cut short (disk full, quota) leaves a line without its newline; the next
        // document (of this run or of the next one sharing the file) must still be a line
        // of its own.
        let dir = std::env::temp_dir().join(format!("crabby-docs-cut-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("run.jsonl");
        std::fs::write(&p, "{\"document\":\"descriptor\",\"fi").unwrap();
        append_line(&p, &json!({"document": "stop"})).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let last = text.lines().last().unwrap();
        let back: Result<Json, _> = serde_json::from_str(last);
        assert!(
            back.is_ok(),
            "the stop document is not a line of its own: {text:?}"
        );
        // A file that ends with a newline gets no empty line.
        append_line(&p, &json!({"b": 1})).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().filter(|l| l.is_empty()).count(), 0, "{text:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn graph() -> GraphInfo {
        // machine -> mux -> rec, extenso -> mux; gen -> machine; anon (no labels) -> rec
        let b = |n: &str, dev: Option<&str>| BlockInfo {
            name: n.into(),
            kind: n.into(),
            device: dev.map(Into::into),
            json: Json::Null,
        };
        let l = |from, to, labels: Option<&[&str]>| LinkInfo {
            from,
            to,
            labels: labels.map(|ls| ls.iter().map(|s| s.to_string()).collect()),
        };
        GraphInfo {
            blocks: vec![
                b("gen", None),
                b("machine", Some("Instron 5967")),
                b("extenso", Some("camera 0")),
                b("mux", None),
                b("rec", None),
                b("anon", None),
            ],
            links: vec![
                l(0, 1, Some(&["t(s)", "cmd(mm/s)"])),
                l(1, 3, Some(&["t(s)", "F(N)"])),
                l(2, 3, Some(&["t(s)", "Exx(%)"])),
                l(3, 4, Some(&["t(s)", "F(N)", "Exx(%)"])),
                l(5, 4, None),
            ],
        }
    }

    #[test]
    fn sources_follow_pass_through_blocks_to_the_origin() {
        let g = graph();
        assert_eq!(g.sources(4, "F(N)"), (vec![3], true, vec![1]));
        assert_eq!(g.sources(4, "Exx(%)"), (vec![3], true, vec![2]));
        // Each Block's time is its own: t(s) comes from the mux, not from its senders.
        assert_eq!(g.sources(4, "t(s)"), (vec![3], true, vec![3]));
        // The generator's command passes through the machine (it receives and sends it):
        // with a device, the machine is where the recorded value comes from...
        assert_eq!(g.sources(3, "cmd(mm/s)").2, Vec::<usize>::new()); // not sent to the mux
        let mut g2 = graph();
        g2.links.push(LinkInfo {
            from: 1,
            to: 4,
            labels: Some(vec!["cmd(mm/s)".into()]),
        });
        assert_eq!(g2.sources(4, "cmd(mm/s)"), (vec![1], true, vec![1]));
        // ...without one, the walk goes up to where the label first appears.
        g2.blocks[1].device = None;
        assert_eq!(g2.sources(4, "cmd(mm/s)"), (vec![1], true, vec![0]));
        // Nobody declares it: only the Block that declares nothing may send it.
        assert_eq!(g.sources(4, "x(mm)"), (vec![5], false, vec![]));
    }

    fn report_of(cause: StopCause, outcome: Outcome) -> Report {
        Report {
            test: "t".into(),
            cause: Some(cause),
            started_at: None,
            duration_s: 1.0,
            cleanup_s: 0.0,
            blocks: vec![crate::BlockReport {
                name: "b".into(),
                kind: "StopBlock".into(),
                outcome,
                finish_ok: true,
                finish_error: None,
                loops: 1,
                mean_freq: None,
                jitter_p99_us: None,
                max_late_us: None,
                missed_deadlines: 0,
                log_dropped: 0,
                step_max_s: None,
                rows_durable: None,
                not_durable: 0,
                notes: vec![],
            }],
            links: vec![],
            incidents: vec![],
            warnings: vec![],
            log_file: None,
            console_lines_dropped: 0,
            console_closed: false,
        }
    }

    #[test]
    fn exit_status_says_how_the_run_ended() {
        let report = report_of;
        let r = report(StopCause::Block("b".into()), Outcome::Ended);
        assert_eq!(exit_status(Some(&r), None).0, "success");
        let r = report(StopCause::Block("b".into()), Outcome::StopRequested);
        assert_eq!(
            exit_status(Some(&r), None),
            ("abort", "b (StopBlock) stopped the test".to_owned())
        );
        let r = report(StopCause::Interrupted, Outcome::Stopped);
        let e = Error::new(ErrorKind::Interrupted, "interrupted");
        assert_eq!(exit_status(Some(&r), Some(&e)).0, "abort");
        // Ctrl+C during the cleanup of a run a Block ended: `run` says interrupted, so do we.
        let r = report(StopCause::Block("b".into()), Outcome::Ended);
        assert_eq!(
            exit_status(Some(&r), Some(&e)),
            (
                "abort",
                "interrupted by the user (Ctrl+C or a termination signal)".to_owned()
            )
        );
        let r = report(
            StopCause::BlockFailed("b".into()),
            Outcome::Panicked("x".into()),
        );
        let e = Error::new(ErrorKind::BlockFailed, "panicked: x").with_block("b");
        let (s, why) = exit_status(Some(&r), Some(&e));
        assert_eq!(s, "fail");
        assert!(why.contains("panicked: x"), "{why}");
        assert_eq!(exit_status(None, Some(&e)).0, "fail");
    }

    #[test]
    fn a_failure_stays_a_failure_when_ctrl_c_comes_during_its_cleanup() {
        // A Block crashed (the run was stopping because of it), then the user pressed Ctrl+C
        // while the others finished: `run` returns Interrupted, but the run failed first.
        let mut r = report_of(StopCause::BlockFailed("b".into()), Outcome::Killed);
        let e = Error::new(ErrorKind::Interrupted, "interrupted");
        let (s, why) = exit_status(Some(&r), Some(&e));
        assert_eq!(s, "fail", "{why}");
        assert!(why.contains("b failed"), "{why}");
        assert!(why.contains("interrupted"), "{why}");
        r.cause = Some(StopCause::PrepareFailed("b".into()));
        assert_eq!(exit_status(Some(&r), Some(&e)).0, "fail");
    }

    #[test]
    fn a_failed_finish_after_ctrl_c_is_a_failure() {
        // Ctrl+C, then the Machine could not stop its motor: the user stopped the test, but
        // the stop did not go well, and the documents must not say it only was aborted.
        let mut r = report_of(StopCause::Interrupted, Outcome::Stopped);
        r.blocks[0].finish_ok = false;
        r.blocks[0].finish_error = Some("could not stop actuator 'axis'".into());
        let e = Error::new(ErrorKind::Interrupted, "interrupted");
        let (s, why) = exit_status(Some(&r), Some(&e));
        assert_eq!(s, "fail", "{why}");
        assert!(why.contains("could not stop actuator 'axis'"), "{why}");
        assert!(why.contains("interrupted"), "{why}");
    }
}
