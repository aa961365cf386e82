//! Typed errors: a [`ErrorKind`] a program can match, a description a person can act on,
//! and the Block or device the error came from.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What went wrong, coarsely, so generic code can react to any Block's or driver's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The graph, a Block setting or a device configuration is wrong. Fix the program.
    Configuration,
    /// A link or a device connection is broken (peer gone, port vanished, bad answer).
    Communication,
    /// A device did not answer in time.
    Timeout,
    /// A value is outside what the device or the Block accepts.
    OutOfRange,
    /// The device refused: the operation is not allowed in its current state.
    NotAllowed,
    /// The hardware reported a failure.
    Hardware,
    /// A Block failed (error, panic, crash) while the test ran.
    BlockFailed,
    /// The user interrupted the test (Ctrl+C, SIGTERM).
    Interrupted,
    /// Samples sent on a lossless link were lost (see `Test::fail_on_loss`).
    DataLost,
    /// A file or OS operation failed.
    Io,
    /// A bug in crabby itself; please report it.
    Internal,
}

impl ErrorKind {
    /// A short lower-case name, used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Configuration => "configuration error",
            ErrorKind::Communication => "communication error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::OutOfRange => "value out of range",
            ErrorKind::NotAllowed => "operation not allowed",
            ErrorKind::Hardware => "hardware failure",
            ErrorKind::BlockFailed => "block failed",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::DataLost => "data lost",
            ErrorKind::Io => "I/O error",
            ErrorKind::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error type of every crabby crate.
///
/// It carries a [`kind`](Error::kind), a human description and, when known, the device (or
/// other part) it came from ([`origin`](Error::origin)) and the Block it surfaced in
/// ([`block`](Error::block)). A Block's error keeps all of these, and its chain of sources,
/// when it crosses from the Block's process to [`Test::run`](crate::Test::run). A failed run
/// also carries the run [`Report`](crate::Report), so a program can still print a summary.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    description: String,
    origin: Option<String>,
    block: Option<String>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    report: Option<Box<crate::Report>>,
}

/// Writes `block: origin: kind: description`, naming the origin only when it is not the
/// Block itself, and the kind only when the description does not already start with it.
fn write_error(
    f: &mut fmt::Formatter<'_>,
    block: Option<&str>,
    origin: Option<&str>,
    kind: ErrorKind,
    description: &str,
) -> fmt::Result {
    if let Some(b) = block {
        write!(f, "Block {b}: ")?;
    }
    if let Some(o) = origin.filter(|o| Some(*o) != block) {
        write!(f, "{o}: ")?;
    }
    if description.starts_with(kind.as_str()) {
        f.write_str(description)
    } else {
        write!(f, "{kind}: {description}")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_error(
            f,
            self.block.as_deref(),
            self.origin.as_deref(),
            self.kind,
            &self.description,
        )?;
        if let Some(source) = &self.source {
            write!(f, " ({source})")?;
        }
        Ok(())
    }
}

impl From<std::io::Error> for Error {
    /// An OS error as an [`ErrorKind::Io`] error (timeouts as [`ErrorKind::Timeout`]), so `?`
    /// works on file and device operations in `prepare`, `step` and `finish`.
    fn from(e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => ErrorKind::Timeout,
            _ => ErrorKind::Io,
        };
        Error::new(kind, e.to_string())
    }
}

/// A source error carried across a process boundary as text.
#[derive(Debug)]
struct SourceText {
    text: String,
    next: Option<Box<SourceText>>,
}

impl fmt::Display for SourceText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for SourceText {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.next
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl Error {
    /// A new error of `kind` with a description a person can act on.
    pub fn new(kind: ErrorKind, description: impl Into<String>) -> Self {
        Error {
            kind,
            description: description.into(),
            origin: None,
            block: None,
            source: None,
            report: None,
        }
    }

    /// Shorthand for [`ErrorKind::Configuration`].
    pub fn config(description: impl Into<String>) -> Self {
        Self::new(ErrorKind::Configuration, description)
    }

    /// Shorthand for [`ErrorKind::Communication`].
    pub fn communication(description: impl Into<String>) -> Self {
        Self::new(ErrorKind::Communication, description)
    }

    /// Shorthand for [`ErrorKind::Io`] with the OS error kept as the source.
    pub fn io(description: impl Into<String>, source: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, description).with_source(source)
    }

    /// Names the Block or device the error came from (kept if one is already set).
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        if self.origin.is_none() {
            self.origin = Some(origin.into());
        }
        self
    }

    /// Names the Block the error surfaced in (kept if one is already set). The runtime sets
    /// it on every error a Block returns.
    pub fn with_block(mut self, block: impl Into<String>) -> Self {
        if self.block.is_none() {
            self.block = Some(block.into());
        }
        self
    }

    /// Keeps the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub(crate) fn with_report(mut self, report: crate::Report) -> Self {
        self.report = Some(Box::new(report));
        self
    }

    /// What went wrong, for programs.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What went wrong, for people.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The device (or other part) the error came from, as its maker named it.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The Block the error surfaced in.
    pub fn block(&self) -> Option<&str> {
        self.block.as_deref()
    }

    /// The run report, when this error ends a [`Test::run`](crate::Test::run).
    pub fn report(&self) -> Option<&crate::Report> {
        self.report.as_deref()
    }

    /// A serialisable copy (sources as text), used to carry an error from a Block's process
    /// to the coordinator.
    pub(crate) fn to_wire(&self) -> WireError {
        let mut chain = Vec::new();
        let mut next = std::error::Error::source(self);
        while let Some(s) = next {
            chain.push(s.to_string());
            next = s.source();
        }
        WireError {
            kind: self.kind,
            description: self.description.clone(),
            origin: self.origin.clone(),
            block: self.block.clone(),
            chain,
        }
    }
}

/// An [`Error`] as it crosses a process boundary: everything but the typed source, whose
/// chain is kept as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WireError {
    /// See [`Error::kind`].
    pub kind: ErrorKind,
    /// See [`Error::description`].
    pub description: String,
    /// See [`Error::origin`].
    pub origin: Option<String>,
    /// See [`Error::block`].
    pub block: Option<String>,
    /// The sources, outermost first.
    pub chain: Vec<String>,
}

impl WireError {
    /// Clips every text to `max` bytes (on a character boundary), to fit a mailbox.
    pub(crate) fn clipped(mut self, max: usize) -> Self {
        clip(&mut self.description, max);
        self.chain.truncate(4);
        for c in &mut self.chain {
            clip(c, max / 4);
        }
        self
    }
}

impl From<WireError> for Error {
    fn from(w: WireError) -> Self {
        let mut source: Option<SourceText> = None;
        for text in w.chain.into_iter().rev() {
            source = Some(SourceText {
                text,
                next: source.map(Box::new),
            });
        }
        Error {
            kind: w.kind,
            description: w.description,
            origin: w.origin,
            block: w.block,
            source: source.map(|s| Box::new(s) as Box<dyn std::error::Error + Send + Sync>),
            report: None,
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_error(
            f,
            self.block.as_deref(),
            self.origin.as_deref(),
            self.kind,
            &self.description,
        )?;
        if let Some(s) = self.chain.first() {
            write!(f, " ({s})")?;
        }
        Ok(())
    }
}

/// Clips `s` to at most `max` bytes on a character boundary, marking the cut.
pub(crate) fn clip(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(" […]");
    }
}

/// The `Result` of every crabby crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_block_device_and_sources_cross_the_wire() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 200 ms");
        let e = Error::new(ErrorKind::Timeout, "reading the force")
            .with_origin("load cell")
            .with_source(io)
            .with_block("machine");
        let back = Error::from(e.to_wire());
        assert_eq!(back.kind(), ErrorKind::Timeout);
        assert_eq!(back.block(), Some("machine"));
        assert_eq!(back.origin(), Some("load cell"));
        let src = std::error::Error::source(&back).expect("source kept");
        assert_eq!(src.to_string(), "no answer in 200 ms");
        assert_eq!(
            back.to_string(),
            "Block machine: load cell: timeout: reading the force (no answer in 200 ms)"
        );
    }

    #[test]
    fn no_repeated_prefixes() {
        let e = Error::config("configuration error: bad rate").with_block("gen");
        assert_eq!(e.to_string(), "Block gen: configuration error: bad rate");
        // A Block that names itself as origin is named once.
        let e = Error::config("bad rate")
            .with_origin("gen")
            .with_block("gen");
        assert_eq!(e.to_string(), "Block gen: configuration error: bad rate");
    }

    #[test]
    fn io_errors_convert_with_question_mark() {
        fn open() -> Result<std::fs::File> {
            Ok(std::fs::File::open("/nonexistent/crabby/file")?)
        }
        let e = open().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(e.description().contains("No such file"), "{e}");
    }
}
