//! Messages from a Block's process to the coordinator, over one pipe per Block.
//! Frames are a `u32` length then a postcard-encoded [`ChildMsg`].

use crate::error::WireError;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ChildMsg {
    /// A log record (time since t0 in seconds, if started).
    Log {
        level: u8,
        t: Option<f64>,
        msg: String,
    },
    /// `prepare` succeeded; waiting at the barrier.
    Ready,
    /// `prepare` failed.
    PrepareFailed(WireError),
    /// This Block wants the test to stop (it ended, failed, or asked for it).
    StopRequest {
        /// The Block failed (error, panic): the test stops because of it.
        failed: bool,
    },
    /// Append the run report to this file at the end (a recorder's metadata file).
    AppendReport(std::path::PathBuf),
    /// The Block's outcome and statistics, sent just before the process exits.
    Final(BlockFinal),
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
    pub finish_error: Option<String>,
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

/// How a Block talks to the coordinator: the write end of its pipe (process runtime) or an
/// in-process queue (threads runtime).
#[derive(Debug)]
pub(crate) struct Channel {
    inner: ChannelInner,
}

#[derive(Debug)]
enum ChannelInner {
    Pipe(Mutex<std::fs::File>),
    Queue {
        index: usize,
        tx: Mutex<std::sync::mpsc::Sender<(usize, ChildMsg)>>,
    },
}

impl Channel {
    pub fn pipe(fd: OwnedFd) -> Self {
        Channel {
            inner: ChannelInner::Pipe(Mutex::new(std::fs::File::from(fd))),
        }
    }

    pub fn queue(index: usize, tx: std::sync::mpsc::Sender<(usize, ChildMsg)>) -> Self {
        Channel {
            inner: ChannelInner::Queue {
                index,
                tx: Mutex::new(tx),
            },
        }
    }

    /// Sends one message. Errors (coordinator gone) are ignored: a Block process is about to
    /// be killed by its parent-death signal anyway.
    pub fn send(&self, msg: &ChildMsg) {
        match &self.inner {
            ChannelInner::Pipe(file) => {
                let Ok(body) = postcard::to_stdvec(msg) else {
                    return;
                };
                let mut frame = Vec::with_capacity(body.len() + 4);
                frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
                frame.extend_from_slice(&body);
                let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
                let _ = f.write_all(&frame);
            }
            ChannelInner::Queue { index, tx } => {
                let _ = tx
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .send((*index, msg.clone()));
            }
        }
    }
}

/// Splits complete frames out of bytes read from a pipe.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn next_msg(&mut self) -> Option<ChildMsg> {
        loop {
            if self.buf.len() < 4 {
                return None;
            }
            let len = u32::from_le_bytes(self.buf[..4].try_into().expect("4 bytes")) as usize;
            if self.buf.len() < 4 + len {
                return None;
            }
            let msg = postcard::from_bytes(&self.buf[4..4 + len]).ok();
            self.buf.drain(..4 + len);
            if msg.is_some() {
                return msg;
            }
        }
    }
}
