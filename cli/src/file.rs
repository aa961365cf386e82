//! Reading a test file: TOML to a [`Node`] tree with spans ([`parse_toml`]), then the test's
//! shape ([`TestFile`]: its [`BlockDecl`]s and [`LinkDecl`]s, includes merged).
//!
//! The format:
//!
//! ```toml
//! crabby = 1                      # the format's version
//! name = "tensile_test"
//! include = ["common.toml"]       # optional: more [blocks.*] and [[links]], relative paths
//!
//! [blocks.generator]              # a Block, named by its key
//! type = "Generator"              # its type (see `crabby list`)
//! freq = "200 Hz"                 # settings every Block has: freq, free_run, niceness, ...
//! cmd_unit = "mm/s"
//! paths = [ { type = "constant", value = "0.5 mm/s", until = "Exx(%) > 0.4" } ]
//!
//! [[links]]
//! from = "generator"
//! to = ["machine", "command_recorder"]   # one Block or several
//! ```

use crate::diag::{Diagnostic, Sources};
use crabby::schema::{suggest, Node, NodeKind, Span};
use std::path::{Path, PathBuf};

/// Files larger than this are refused (a test file is a few kB).
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// Includes nest at most this deep.
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// Parses TOML text into a [`Node`] tree whose spans point into file `file`.
pub fn parse_toml(text: &str, file: usize) -> Result<Node, Diagnostic> {
    let doc = toml_edit::Document::parse(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        Diagnostic::at(
            Span::new(file, span),
            format!("TOML syntax: {}", e.message().trim_end()),
        )
    })?;
    Ok(table_node(doc.as_table(), file, 0..0))
}

fn sp(file: usize, s: Option<std::ops::Range<usize>>, or: &std::ops::Range<usize>) -> Span {
    Span::new(file, s.unwrap_or_else(|| or.clone()))
}

fn table_node(t: &toml_edit::Table, file: usize, fallback: std::ops::Range<usize>) -> Node {
    let own = t.span().unwrap_or(fallback);
    let mut entries = Vec::new();
    for (k, _) in t.iter() {
        let Some((key, item)) = t.get_key_value(k) else {
            continue;
        };
        let kspan = key.span().unwrap_or_else(|| own.clone());
        if let Some(n) = item_node(item, file, &kspan) {
            entries.push((k.to_owned(), Span::new(file, kspan), n));
        }
    }
    Node {
        kind: NodeKind::Table(entries),
        span: Span::new(file, own),
    }
}

fn item_node(item: &toml_edit::Item, file: usize, key: &std::ops::Range<usize>) -> Option<Node> {
    Some(match item {
        toml_edit::Item::None => return None,
        toml_edit::Item::Value(v) => value_node(v, file, key),
        toml_edit::Item::Table(t) => table_node(t, file, key.clone()),
        toml_edit::Item::ArrayOfTables(a) => Node {
            kind: NodeKind::List(a.iter().map(|t| table_node(t, file, key.clone())).collect()),
            span: sp(file, a.span(), key),
        },
    })
}

fn value_node(v: &toml_edit::Value, file: usize, key: &std::ops::Range<usize>) -> Node {
    use toml_edit::Value as V;
    let span = sp(file, v.span(), key);
    let kind = match v {
        V::String(s) => NodeKind::Str(s.value().clone()),
        V::Integer(i) => NodeKind::Int(*i.value()),
        V::Float(f) => NodeKind::Float(*f.value()),
        V::Boolean(b) => NodeKind::Bool(*b.value()),
        V::Datetime(_) => NodeKind::Other("a date"),
        V::Array(a) => NodeKind::List(a.iter().map(|v| value_node(v, file, key)).collect()),
        V::InlineTable(t) => {
            let own = span.bytes.clone();
            let mut entries = Vec::new();
            for (k, _) in t.iter() {
                let Some((kk, item)) = t.get_key_value(k) else {
                    continue;
                };
                let ks = kk.span().unwrap_or_else(|| own.clone());
                if let Some(n) = item_node(item, file, &ks) {
                    entries.push((k.to_owned(), Span::new(file, ks), n));
                }
            }
            NodeKind::Table(entries)
        }
    };
    Node { kind, span }
}

/// One Block of a test file: `[blocks.<name>]`.
#[derive(Debug, Clone)]
pub struct BlockDecl {
    /// Its name (the table's key).
    pub name: String,
    /// Where the name is written.
    pub name_span: Span,
    /// Its `type`, if given as a string.
    pub type_name: Option<(String, Span)>,
    /// The whole table.
    pub node: Node,
}

/// One `[[links]]` entry: from one Block to each of `to`.
#[derive(Debug, Clone)]
pub struct LinkDecl {
    /// The sender and its span.
    pub from: (String, Span),
    /// The receivers and their spans.
    pub to: Vec<(String, Span)>,
    /// The whole table (for its options).
    pub node: Node,
}

/// A test file with its includes merged.
#[derive(Debug, Clone)]
pub struct TestFile {
    /// `name`.
    pub name: String,
    /// The top table of the main file.
    pub top: Node,
    /// Every Block, in file order (includes first).
    pub blocks: Vec<BlockDecl>,
    /// Every link.
    pub links: Vec<LinkDecl>,
    /// `description` and the `[metadata]` table (operator, specimen, ...), as text, for the
    /// run documents.
    pub metadata: Vec<(String, String)>,
}

const TOP_KEYS: &[&str] = &[
    "crabby",
    "name",
    "description",
    "include",
    "blocks",
    "links",
    "summary",
    "metadata",
];
const INCLUDED_KEYS: &[&str] = &["include", "blocks", "links"];

/// Reads `path` and its includes. Mistakes of shape (not of Block parameters) are added to
/// `errors`; `None` when the file cannot be read or parsed at all.
pub fn read(path: &Path, sources: &mut Sources, errors: &mut Vec<Diagnostic>) -> Option<TestFile> {
    let top = load(path, sources, errors, None)?;
    let mut tf = TestFile {
        name: String::new(),
        top: top.clone(),
        blocks: Vec::new(),
        links: Vec::new(),
        metadata: Vec::new(),
    };
    for (k, ks, _) in table_entries(&top) {
        if !TOP_KEYS.contains(&k.as_str()) {
            errors.push(
                Diagnostic::at(ks.clone(), format!("unknown top-level key '{k}'"))
                    .suggest(suggest(k, TOP_KEYS.iter().copied())),
            );
        }
    }
    match top.get("crabby") {
        None => errors.push(
            Diagnostic::at(
                Span::new(0, 0..0),
                "missing 'crabby = 1' (the version of the test-file format) at the top",
            )
            .help("add `crabby = 1` as the first line"),
        ),
        Some((_, n)) if n.kind != NodeKind::Int(1) => errors.push(Diagnostic::at(
            n.span.clone(),
            format!(
                "'crabby': this crabby reads format version 1, found {}",
                show(n)
            ),
        )),
        _ => {}
    }
    match top.get("name") {
        Some((_, n)) => match n.as_str() {
            Some(s) if !s.trim().is_empty() => tf.name = s.to_owned(),
            _ => errors.push(Diagnostic::at(
                n.span.clone(),
                format!("'name': expected a non-empty string, found {}", show(n)),
            )),
        },
        None => errors.push(Diagnostic::at(
            Span::new(0, 0..0),
            "missing 'name' (the test's name, for its log and results)",
        )),
    }
    if let Some((_, n)) = top.get("description") {
        match n.as_str() {
            Some(d) => tf.metadata.push(("description".into(), d.to_owned())),
            None => errors.push(Diagnostic::at(
                n.span.clone(),
                format!("'description': expected a string, found {}", show(n)),
            )),
        }
    }
    if let Some((_, n)) = top.get("metadata") {
        if !matches!(n.kind, NodeKind::Table(_)) {
            errors.push(
                Diagnostic::at(
                    n.span.clone(),
                    format!("'metadata': expected a table, found {}", show(n)),
                )
                .help("write [metadata] then lines such as operator = \"A. Dupont\""),
            );
        }
        for (k, _, v) in table_entries(n) {
            let text = match &v.kind {
                NodeKind::Str(s) => s.clone(),
                NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Bool(_) => show(v),
                _ => {
                    errors.push(Diagnostic::at(
                        v.span.clone(),
                        format!(
                            "'metadata.{k}': expected a string, a number or a boolean, found {}",
                            show(v)
                        ),
                    ));
                    continue;
                }
            };
            tf.metadata.push((k.clone(), text));
        }
    }
    collect(&top, path, sources, errors, &mut tf, 0);
    // Two Blocks of one name can only come from two files (TOML refuses it in one).
    let mut unique: Vec<BlockDecl> = Vec::new();
    for b in std::mem::take(&mut tf.blocks) {
        if let Some(first) = unique.iter().find(|u| u.name == b.name) {
            let at = sources
                .position(&first.name_span)
                .map(|p| format!("{}:{}:{}", p.file.display(), p.line, p.column))
                .unwrap_or_default();
            errors.push(
                Diagnostic::at(
                    b.name_span.clone(),
                    format!(
                        "two Blocks are named '{}'; Block names must be unique",
                        b.name
                    ),
                )
                .help(format!("the first one is at {at}; rename one")),
            );
        } else {
            unique.push(b);
        }
    }
    tf.blocks = unique;
    if tf.blocks.is_empty() && errors.is_empty() {
        errors.push(
            Diagnostic::at(top.span.clone(), "the test has no Block")
                .help("declare one with [blocks.<name>] and type = \"...\" (see `crabby list`)"),
        );
    }
    Some(tf)
}

/// A value for messages.
pub fn show(n: &Node) -> String {
    match &n.kind {
        NodeKind::Str(s) => format!("\"{}\"", s.chars().take(60).collect::<String>()),
        NodeKind::Int(i) => i.to_string(),
        NodeKind::Float(f) => f.to_string(),
        NodeKind::Bool(b) => b.to_string(),
        k => k.type_name().to_owned(),
    }
}

fn table_entries(n: &Node) -> &[(String, Span, Node)] {
    match &n.kind {
        NodeKind::Table(t) => t,
        _ => &[],
    }
}

fn load(
    path: &Path,
    sources: &mut Sources,
    errors: &mut Vec<Diagnostic>,
    from: Option<Span>,
) -> Option<Node> {
    let fail = |msg: String, errors: &mut Vec<Diagnostic>| {
        errors.push(match &from {
            Some(s) => Diagnostic::at(s.clone(), msg),
            None => Diagnostic::global(msg),
        });
    };
    // A regular file only (a FIFO or a device could block or never end), read at most one
    // byte past the limit.
    let read = || -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let meta = std::fs::metadata(path)?;
        if !meta.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let mut b = Vec::new();
        std::fs::File::open(path)?
            .take(MAX_FILE_BYTES as u64 + 1)
            .read_to_end(&mut b)?;
        Ok(b)
    };
    let bytes = match read() {
        Ok(b) => b,
        Err(e) => {
            fail(format!("cannot read {}: {e}", path.display()), errors);
            return None;
        }
    };
    if bytes.len() > MAX_FILE_BYTES {
        fail(
            format!(
                "{} is larger than {MAX_FILE_BYTES} bytes, the most a test file may be",
                path.display()
            ),
            errors,
        );
        return None;
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let i = sources.add(path.to_owned(), text);
            errors.push(Diagnostic::at(
                Span::new(i, at..at + 1),
                "the file is not valid UTF-8 (TOML files are UTF-8)",
            ));
            return None;
        }
    };
    let i = sources.add(path.to_owned(), text);
    match parse_toml(sources.text(i), i) {
        Ok(n) => Some(n),
        Err(d) => {
            errors.push(d);
            None
        }
    }
}

fn collect(
    top: &Node,
    path: &Path,
    sources: &mut Sources,
    errors: &mut Vec<Diagnostic>,
    tf: &mut TestFile,
    depth: usize,
) {
    // Includes first, so the including file's Blocks come after (and duplicates point at it).
    if let Some((_, inc)) = top.get("include") {
        let items: Vec<&Node> = match &inc.kind {
            NodeKind::List(l) => l.iter().collect(),
            NodeKind::Str(_) => vec![inc],
            _ => {
                errors.push(Diagnostic::at(
                    inc.span.clone(),
                    format!(
                        "'include': expected a file name or an array of them, found {}",
                        show(inc)
                    ),
                ));
                Vec::new()
            }
        };
        for item in items {
            let Some(name) = item.as_str() else {
                errors.push(Diagnostic::at(
                    item.span.clone(),
                    format!("'include': expected a file name, found {}", show(item)),
                ));
                continue;
            };
            if depth + 1 > MAX_INCLUDE_DEPTH {
                errors.push(Diagnostic::at(
                    item.span.clone(),
                    format!("includes nest deeper than {MAX_INCLUDE_DEPTH} (a loop?)"),
                ));
                continue;
            }
            let p = path.parent().unwrap_or(Path::new(".")).join(name);
            let Some(sub) = load(&p, sources, errors, Some(item.span.clone())) else {
                continue;
            };
            for (k, ks, _) in table_entries(&sub) {
                if !INCLUDED_KEYS.contains(&k.as_str()) {
                    errors.push(
                        Diagnostic::at(
                            ks.clone(),
                            format!("'{k}' is not allowed in an included file (only include, blocks and links)"),
                        )
                        .suggest(suggest(k, INCLUDED_KEYS.iter().copied())),
                    );
                }
            }
            collect(&sub, &p, sources, errors, tf, depth + 1);
        }
    }
    if let Some((_, blocks)) = top.get("blocks") {
        match &blocks.kind {
            NodeKind::Table(entries) => {
                for (name, nspan, node) in entries {
                    block_decl(name, nspan, node, errors, tf);
                }
            }
            _ => errors.push(Diagnostic::at(
                blocks.span.clone(),
                format!(
                    "'blocks': expected a table of Blocks ([blocks.<name>]), found {}",
                    show(blocks)
                ),
            )),
        }
    }
    if let Some((_, links)) = top.get("links") {
        match &links.kind {
            NodeKind::List(items) => {
                for l in items {
                    link_decl(l, errors, tf);
                }
            }
            _ => errors.push(Diagnostic::at(
                links.span.clone(),
                format!(
                    "'links': expected an array of tables ([[links]]), found {}",
                    show(links)
                ),
            )),
        }
    }
}

fn block_decl(
    name: &str,
    nspan: &Span,
    node: &Node,
    errors: &mut Vec<Diagnostic>,
    tf: &mut TestFile,
) {
    if !matches!(node.kind, NodeKind::Table(_)) {
        errors.push(Diagnostic::at(
            node.span.clone(),
            format!(
                "Block '{name}': expected a table with a type, found {}",
                show(node)
            ),
        ));
        return;
    }
    if name.trim().is_empty() {
        errors.push(Diagnostic::at(
            nspan.clone(),
            "a Block's name cannot be blank",
        ));
        return;
    }
    let type_name = match node.get("type") {
        Some((_, t)) => match t.as_str() {
            Some(s) => Some((s.to_owned(), t.span.clone())),
            None => {
                errors.push(Diagnostic::at(
                    t.span.clone(),
                    format!(
                        "Block '{name}': 'type' must be a Block type name, found {}",
                        show(t)
                    ),
                ));
                None
            }
        },
        None => {
            errors.push(
                Diagnostic::at(node.span.clone(), format!("Block '{name}': missing 'type'"))
                    .help("add type = \"...\"; `crabby list` shows every Block type"),
            );
            None
        }
    };
    tf.blocks.push(BlockDecl {
        name: name.to_owned(),
        name_span: nspan.clone(),
        type_name,
        node: node.clone(),
    });
}

fn link_decl(l: &Node, errors: &mut Vec<Diagnostic>, tf: &mut TestFile) {
    let NodeKind::Table(entries) = &l.kind else {
        errors.push(Diagnostic::at(
            l.span.clone(),
            format!("a link must be a table with from and to, found {}", show(l)),
        ));
        return;
    };
    let _ = entries;
    let one = |n: &Node, what: &str, errors: &mut Vec<Diagnostic>| match n.as_str() {
        Some(s) => Some((s.to_owned(), n.span.clone())),
        None => {
            errors.push(Diagnostic::at(
                n.span.clone(),
                format!("link '{what}': expected a Block name, found {}", show(n)),
            ));
            None
        }
    };
    let from = match l.get("from") {
        Some((_, n)) => one(n, "from", errors),
        None => {
            errors.push(Diagnostic::at(l.span.clone(), "link: missing 'from'"));
            None
        }
    };
    let to = match l.get("to") {
        Some((_, n)) => match &n.kind {
            NodeKind::List(items) if !items.is_empty() => {
                items.iter().filter_map(|i| one(i, "to", errors)).collect()
            }
            NodeKind::List(_) => {
                errors.push(Diagnostic::at(n.span.clone(), "link 'to': empty array"));
                Vec::new()
            }
            _ => one(n, "to", errors).into_iter().collect(),
        },
        None => {
            errors.push(Diagnostic::at(l.span.clone(), "link: missing 'to'"));
            Vec::new()
        }
    };
    if let Some(from) = from {
        if !to.is_empty() {
            tf.links.push(LinkDecl {
                from,
                to,
                node: l.clone(),
            });
        }
    }
}

/// The folder a test file's relative paths are read from.
pub fn base_dir(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_keys_and_values() {
        let text = "crabby = 1\n[blocks.gen]\ntype = \"Generator\"\nfreq = \"200 Hz\"\n";
        let n = parse_toml(text, 0).unwrap();
        let (_, blocks) = n.get("blocks").unwrap();
        let (kspan, gen) = blocks.get("gen").unwrap();
        assert_eq!(&text[kspan.bytes.clone()], "gen");
        let (fk, f) = gen.get("freq").unwrap();
        assert_eq!(&text[fk.bytes.clone()], "freq");
        assert_eq!(&text[f.span.bytes.clone()], "\"200 Hz\"");
    }

    #[test]
    fn syntax_errors_have_a_span() {
        let d = parse_toml("a = \n", 0).unwrap_err();
        assert!(d.message.starts_with("TOML syntax"), "{}", d.message);
        assert!(d.span.is_some());
    }
}
