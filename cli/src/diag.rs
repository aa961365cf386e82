//! Diagnostics: [`Diagnostic`] (one mistake, its [`Span`] and a hint), [`Sources`] (the
//! files read, to turn spans into `file:line:column`) and [`CliError`], the typed error of
//! every command.
//!
//! A diagnostic renders as cargo does:
//!
//! ```text
//! error: Block 'machine': unknown parameter 'max_sped'; did you mean 'max_speed'?
//!  --> tensile.toml:9:1
//!   |
//! 9 | max_sped = "5 mm/s"
//!   | ^^^^^^^^
//!   = help: did you mean 'max_speed'?
//! ```

use crabby::schema::Span;
use std::path::{Path, PathBuf};

/// One mistake in a test file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Diagnostic {
    /// What is wrong (names the Block and the parameter).
    pub message: String,
    /// Where, if it is in a file.
    pub span: Option<Span>,
    /// A hint (`did you mean 'max_speed'?`).
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at `span`.
    pub fn at(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            span: Some(span),
            help: None,
        }
    }

    /// A diagnostic with no position.
    pub fn global(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            span: None,
            help: None,
        }
    }

    /// Adds a hint.
    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Adds `did you mean '<s>'?` if there is a suggestion.
    pub fn suggest(self, s: Option<&str>) -> Diagnostic {
        match s {
            Some(s) => self.help(format!("did you mean '{s}'?")),
            None => self,
        }
    }
}

/// The files a test was read from (the main file is index 0, then its includes).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: Vec<(PathBuf, String)>,
}

/// A position in a file, 1-based, the column counted in characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The file as given.
    pub file: PathBuf,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl Sources {
    /// Adds a file's text; returns its index.
    pub fn add(&mut self, path: PathBuf, text: String) -> usize {
        self.files.push((path, text));
        self.files.len() - 1
    }

    /// The path of file `i`.
    pub fn path(&self, i: usize) -> &Path {
        &self.files[i].0
    }

    /// The text of file `i`.
    pub fn text(&self, i: usize) -> &str {
        &self.files[i].1
    }

    /// How many files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file was read.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The line and column of `span`'s start.
    pub fn position(&self, span: &Span) -> Option<Position> {
        let (path, text) = self.files.get(span.file)?;
        let at = floor_char(text, span.bytes.start.min(text.len()));
        let before = &text[..at];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = text[line_start..at].chars().count() + 1;
        Some(Position {
            file: path.clone(),
            line,
            column,
        })
    }

    /// The diagnostic as text, cargo style (no colours).
    pub fn render(&self, d: &Diagnostic) -> String {
        let mut out = format!("error: {}\n", d.message);
        if let Some((span, pos)) = d
            .span
            .as_ref()
            .and_then(|s| self.position(s).map(|p| (s, p)))
        {
            let text = &self.files[span.file].1;
            let start = floor_char(text, span.bytes.start.min(text.len()));
            let line_start = text[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
            let line_end = text[start..]
                .find('\n')
                .map(|i| start + i)
                .unwrap_or(text.len());
            let line_text = text[line_start..line_end].trim_end_matches('\r');
            let end = floor_char(text, span.bytes.end.clamp(start, line_end));
            let width = text[start..end].chars().count().max(1);
            let n = pos.line.to_string();
            let pad = " ".repeat(n.len());
            out.push_str(&format!(
                "{pad}--> {}:{}:{}\n",
                pos.file.display(),
                pos.line,
                pos.column
            ));
            out.push_str(&format!("{pad} |\n{n} | {line_text}\n"));
            let lead: String = line_text
                .chars()
                .take(pos.column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("{pad} | {lead}{}\n", "^".repeat(width)));
            if let Some(h) = &d.help {
                out.push_str(&format!("{pad} = help: {h}\n"));
            }
        } else if let Some(h) = &d.help {
            out.push_str(&format!("  = help: {h}\n"));
        }
        out
    }
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// What a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A file that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The test file has mistakes (every one, with the files to show them in).
    #[error("{} error(s) in the test file", .0.len())]
    Invalid(Vec<Diagnostic>, Box<Sources>),
    /// The test ran and failed (the error carries the run report).
    #[error("the test failed: {0}")]
    Run(#[from] crabby::Error),
    /// Wrong command-line arguments.
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    /// The exit code: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }

    /// Every message, rendered.
    pub fn render(&self) -> String {
        match self {
            CliError::Invalid(ds, sources) => {
                let mut out = String::new();
                for d in ds {
                    out.push_str(&sources.render(d));
                    out.push('\n');
                }
                out.push_str(&format!(
                    "error: {} error(s); nothing was started\n",
                    ds.len()
                ));
                out
            }
            other => format!("error: {other}\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_position_caret_and_help() {
        let mut s = Sources::default();
        s.add("t.toml".into(), "a = 1\nmax_sped = \"5 mm/s\"\n".into());
        let d = Diagnostic::at(Span::new(0, 6..14), "unknown parameter 'max_sped'")
            .suggest(Some("max_speed"));
        let r = s.render(&d);
        assert!(r.contains(" --> t.toml:2:1\n"), "{r}");
        assert!(
            r.contains("2 | max_sped = \"5 mm/s\"\n  | ^^^^^^^^\n"),
            "{r}"
        );
        assert!(r.contains("= help: did you mean 'max_speed'?"), "{r}");
    }

    #[test]
    fn columns_count_characters() {
        let mut s = Sources::default();
        s.add("t.toml".into(), "t = \"150 °C\" # é\nx".into());
        let p = s.position(&Span::new(0, 18..19)).unwrap();
        assert_eq!((p.line, p.column), (1, 17));
        let p = s.position(&Span::new(0, 100..101)).unwrap();
        assert_eq!(p.line, 2);
    }
}
