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
/// It carries a [`kind`](Error::kind), a human description and, when known, the Block or
/// device it came from. A failed [`Test::run`](crate::Test::run) also carries the run
/// [`Report`](crate::Report), so a program can still print a summary.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    description: String,
    origin: Option<String>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    report: Option<Box<crate::Report>>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(origin) => write!(f, "{origin}: {}: {}", self.kind, self.description)?,
            None => write!(f, "{}: {}", self.kind, self.description)?,
        }
        if let Some(source) = &self.source {
            write!(f, " ({source})")?;
        }
        Ok(())
    }
}

impl Error {
    /// A new error of `kind` with a description a person can act on.
    pub fn new(kind: ErrorKind, description: impl Into<String>) -> Self {
        Error {
            kind,
            description: description.into(),
            origin: None,
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

    /// The Block or device the error came from.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The run report, when this error ends a [`Test::run`](crate::Test::run).
    pub fn report(&self) -> Option<&crate::Report> {
        self.report.as_deref()
    }

    /// A serialisable copy (the source is folded into the description), used to carry an
    /// error from a Block's process to the coordinator.
    pub(crate) fn to_wire(&self) -> WireError {
        let mut description = self.description.clone();
        if let Some(source) = &self.source {
            description.push_str(&format!(" ({source})"));
        }
        WireError {
            kind: self.kind,
            description,
            origin: self.origin.clone(),
        }
    }
}

/// An [`Error`] as it crosses a process boundary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    /// See [`Error::kind`].
    pub kind: ErrorKind,
    /// See [`Error::description`].
    pub description: String,
    /// See [`Error::origin`].
    pub origin: Option<String>,
}

impl From<WireError> for Error {
    fn from(w: WireError) -> Self {
        Error {
            kind: w.kind,
            description: w.description,
            origin: w.origin,
            source: None,
            report: None,
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(o) => write!(f, "{o}: {}: {}", self.kind, self.description),
            None => write!(f, "{}: {}", self.kind, self.description),
        }
    }
}

/// The `Result` of every crabby crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
