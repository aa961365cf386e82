//! What a Block's process tells the coordinator, on two paths that cannot hurt each other:
//!
//! - **Lifecycle messages** ([`Lifecycle`]: ready, prepare failed, stop request, report
//!   files, final statistics) are posted to the Block's mailbox in the shared control region
//!   (`sys::control`): reliable, never delayed by logs, never blocking.
//! - **Log records** ([`LogRecord`]) go through one pipe per Block whose write end is
//!   non-blocking. Each record is one postcard frame, COBS-encoded and ended by a zero byte,
//!   at most `PIPE_BUF` bytes long, so a write is atomic (the Block's own children share the
//!   pipe without interleaving) and a damaged frame costs only itself: the reader
//!   resynchronises at the next zero. When the pipe is full the record is dropped and
//!   counted in the Block's slot; neither the Block nor the coordinator ever waits on logs.
//!
//! After posting a lifecycle message the Block writes an empty frame (a single zero byte) to
//! its pipe as a nudge, so the coordinator wakes at once; if the pipe is full the
//! coordinator is awake anyway, reading it.

use crate::control::Control;
use crate::error::WireError;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// A lifecycle message, posted to the Block's mailbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Lifecycle {
    /// `prepare` succeeded; waiting at the barrier.
    Ready,
    /// `prepare` failed.
    PrepareFailed(WireError),
    /// This Block wants the test to stop (it ended, failed, or asked for it).
    StopRequest {
        /// The Block failed (error, panic): the test stops because of it.
        failed: bool,
    },
    /// Append the run report to this file at the end (a recorder's metadata file): the
    /// path's bytes (a `PathBuf` would not encode a name that is not UTF-8).
    AppendReport(Vec<u8>),
    /// A line for the Block's entry in the run report.
    Note(String),
    /// A stream this Block records (a data file), for the run documents.
    Stream(crate::documents::StreamInfo),
    /// Another file or folder this Block made (path, role), for the run documents.
    File(std::path::PathBuf, String),
    /// The Block's outcome and statistics, posted just before the process exits.
    Final(BlockFinal),
}

/// One log record of a Block.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LogRecord {
    pub level: u8,
    /// Time since t0 in seconds, if started.
    pub t: Option<f64>,
    pub msg: String,
}

/// How a Block ended, as the Block's own process saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum EndKind {
    /// `step` returned `Flow::Stop`.
    Ended,
    /// The Block called `Context::stop_test`.
    StopRequested,
    /// Stopped by the stop event (another Block ended, or Ctrl+C).
    Stopped,
    /// The barrier broke before the start (a Block failed in `prepare`).
    NotStarted,
    /// `prepare`, `begin` or `step` returned an error.
    Failed(WireError),
    /// `prepare`, `begin` or `step` panicked.
    Panicked(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BlockFinal {
    pub end: EndKind,
    pub finish_error: Option<WireError>,
    pub loops: u64,
    pub mean_freq: Option<f64>,
    pub jitter_p99_us: Option<f64>,
    pub max_late_us: Option<f64>,
    pub missed_deadlines: u64,
}

pub(crate) fn level_to_u8(l: log::Level) -> u8 {
    l as u8
}

pub(crate) fn level_from_u8(l: u8) -> log::Level {
    match l {
        1 => log::Level::Error,
        2 => log::Level::Warn,
        3 => log::Level::Info,
        4 => log::Level::Debug,
        _ => log::Level::Trace,
    }
}

/// Largest log frame: writes up to `PIPE_BUF` bytes to a pipe are atomic.
pub(crate) const MAX_FRAME: usize = 4096;

/// What the threads runtime's queue carries: a log record, or a nudge (mailbox updated).
pub(crate) type QueueItem = (usize, Option<LogRecord>);

/// A Block's log channel: the non-blocking write end of its pipe (process runtime) or an
/// in-process queue (threads runtime), plus its slot for the dropped-record count.
#[derive(Debug)]
pub(crate) struct Channel {
    inner: ChannelInner,
    control: Arc<Control>,
    index: usize,
}

#[derive(Debug)]
enum ChannelInner {
    Pipe(OwnedFd),
    Queue(Mutex<std::sync::mpsc::Sender<QueueItem>>),
}

impl Channel {
    /// The write end of a Block's pipe; made non-blocking here (the Block's own children,
    /// which share it, write the same way).
    pub fn pipe(fd: OwnedFd, control: Arc<Control>, index: usize) -> Self {
        let _ = nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        Channel {
            inner: ChannelInner::Pipe(fd),
            control,
            index,
        }
    }

    pub fn queue(
        index: usize,
        tx: std::sync::mpsc::Sender<QueueItem>,
        control: Arc<Control>,
    ) -> Self {
        Channel {
            inner: ChannelInner::Queue(Mutex::new(tx)),
            control,
            index,
        }
    }

    /// Sends one log record, or drops and counts it if the channel is full. Never blocks.
    pub fn log(&self, rec: LogRecord) {
        match &self.inner {
            ChannelInner::Pipe(fd) => {
                let frame = match postcard::to_stdvec_cobs(&rec) {
                    Ok(f) if f.len() <= MAX_FRAME => f,
                    _ => return,
                };
                match nix::unistd::write(fd.as_fd(), &frame) {
                    Ok(_) => {}
                    Err(nix::errno::Errno::EAGAIN) => {
                        self.control
                            .slot(self.index)
                            .log_dropped
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    // The coordinator is gone: this process is about to die with it.
                    Err(_) => {}
                }
            }
            ChannelInner::Queue(tx) => {
                let _ = tx
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .send((self.index, Some(rec)));
            }
        }
    }

    /// Wakes the coordinator after a mailbox post.
    pub fn nudge(&self) {
        match &self.inner {
            ChannelInner::Pipe(fd) => {
                let _ = nix::unistd::write(fd.as_fd(), &[0u8]);
            }
            ChannelInner::Queue(tx) => {
                let _ = tx
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .send((self.index, None));
            }
        }
    }
}

/// Splits zero-terminated COBS frames out of bytes read from a pipe. Damaged frames are
/// counted and skipped; the reader resynchronises at the next zero byte.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    /// Skipping the rest of an over-long frame, up to the next zero.
    skipping: bool,
    /// Frames that could not be decoded.
    pub malformed: u64,
}

impl FrameReader {
    /// Feeds bytes; calls `on_record` for each complete, valid record.
    pub fn feed(&mut self, mut bytes: &[u8], mut on_record: impl FnMut(LogRecord)) {
        while let Some(z) = bytes.iter().position(|&b| b == 0) {
            let (head, rest) = bytes.split_at(z);
            bytes = &rest[1..];
            if self.skipping {
                self.skipping = false;
                self.buf.clear();
                continue;
            }
            self.buf.extend_from_slice(head);
            if !self.buf.is_empty() {
                self.buf.push(0);
                match postcard::from_bytes_cobs::<LogRecord>(&mut self.buf) {
                    Ok(rec) => on_record(rec),
                    Err(_) => self.malformed += 1,
                }
            }
            self.buf.clear();
        }
        if !self.skipping {
            self.buf.extend_from_slice(bytes);
            if self.buf.len() > MAX_FRAME {
                self.malformed += 1;
                self.buf.clear();
                self.skipping = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(msg: &str) -> Vec<u8> {
        postcard::to_stdvec_cobs(&LogRecord {
            level: 3,
            t: Some(1.5),
            msg: msg.into(),
        })
        .unwrap()
    }

    fn read_all(r: &mut FrameReader, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        r.feed(bytes, |rec| out.push(rec.msg));
        out
    }

    #[test]
    fn frames_split_across_reads_and_nudges_are_skipped() {
        let mut bytes = frame("one");
        bytes.push(0); // a nudge
        bytes.extend(frame("two"));
        let mut r = FrameReader::default();
        let (a, b) = bytes.split_at(5);
        let mut got = read_all(&mut r, a);
        got.extend(read_all(&mut r, b));
        assert_eq!(got, ["one", "two"]);
        assert_eq!(r.malformed, 0);
    }

    #[test]
    fn garbage_costs_only_its_own_frame() {
        let mut bytes = vec![7, 200, 3, 9, 0]; // not a valid record
        bytes.extend(frame("after garbage"));
        let mut r = FrameReader::default();
        assert_eq!(read_all(&mut r, &bytes), ["after garbage"]);
        assert_eq!(r.malformed, 1);
        // A run of bytes with no zero, longer than any frame, is skipped up to the next zero.
        let mut long = vec![5u8; MAX_FRAME * 3];
        long.push(0);
        long.extend(frame("resynchronised"));
        assert_eq!(read_all(&mut r, &long), ["resynchronised"]);
        assert_eq!(r.malformed, 2);
    }

    #[test]
    fn a_full_pipe_drops_and_counts_never_blocks() {
        let control = Arc::new(Control::new(1).unwrap());
        let (rd, wr) = nix::unistd::pipe().unwrap();
        let ch = Channel::pipe(wr, control.clone(), 0);
        let rec = LogRecord {
            level: 3,
            t: None,
            msg: "x".repeat(1000),
        };
        // A pipe holds 64 KiB: 200 records of ~1 KB cannot all fit. This must return.
        for _ in 0..200 {
            ch.log(rec.clone());
        }
        let dropped = control.slot(0).log_dropped.load(Ordering::Relaxed);
        assert!(dropped > 100, "dropped {dropped}");
        // What did get in is whole records.
        let _ = nix::fcntl::fcntl(
            &rd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let mut r = FrameReader::default();
        let mut n = 0;
        let mut buf = vec![0u8; 1 << 16];
        let file = std::fs::File::from(rd);
        loop {
            match std::io::Read::read(&mut &file, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => r.feed(&buf[..k], |_| n += 1),
            }
        }
        assert_eq!(n + dropped, 200);
        assert_eq!(r.malformed, 0);
    }
}
