//! Exclusive access to a device: one running test holds a serial port, a Modbus unit or a
//! camera ([`camera_key`]), and a second opener is refused with an error that names the
//! holder (pid, test, device).
//!
//! A [`DeviceLock`] is an exclusive `flock(2)` on a small file named after the resource, in
//! the lock directory ([`lock_dir`]: `$CRABBY_LOCK_DIR`, else `/run/lock` if writable, else
//! the temporary directory). The holder writes its pid, test name and device name into the
//! file, which the refused opener reads back for its error.
//!
//! - **Never stale.** The kernel releases a `flock` when its holder dies, however it dies
//!   (`kill -9` included), so a crash never leaves the resource locked: the file of a dead
//!   holder is taken over by the next opener.
//! - **Nothing left behind.** The holder deletes the file when it releases the lock (on drop).
//!   An opener that locked a file just deleted by its holder sees that the path no longer
//!   names the file it locked (inode compared) and starts again, so two openers can never
//!   both believe they hold the resource.
//! - **Before the fork.** [`DeviceLock::probe`] (called from the drivers' `check`, in `main`)
//!   reports a resource held by another test before anything is forked; the lock itself is
//!   taken in `open`, in the Block's process, and held until the driver is closed or its
//!   process ends.
//!
//! Serial ports are, in addition, opened with `TIOCEXCL` (done by the `serialport` crate):
//! programs that do not use these lock files (a terminal emulator) are refused by the kernel.

use crabby::hardware::device_error;
use crabby::{ErrorKind, Result};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The directory holding the lock files: `$CRABBY_LOCK_DIR` if set, else `/run/lock` if this
/// user may write there (shared by every user of the machine, the right place for ports),
/// else the temporary directory.
pub fn lock_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CRABBY_LOCK_DIR") {
        return PathBuf::from(d);
    }
    let run = Path::new("/run/lock");
    if nix::unistd::access(run, nix::unistd::AccessFlags::W_OK).is_ok() {
        return run.to_owned();
    }
    std::env::temp_dir()
}

/// The lock file of a resource key (any text: it is reduced to a safe file name).
pub fn lock_path(key: &str) -> PathBuf {
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    lock_dir().join(format!("crabby-{safe}.lock"))
}

/// The key of a serial port: its canonical path (so `/dev/serial/by-id/…` and the
/// `/dev/ttyUSB0` it points to are one resource).
pub fn serial_key(port: &str) -> String {
    let canon = std::fs::canonicalize(port)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| port.to_owned());
    format!("serial{canon}")
}

/// The key of a camera (or any device node): `camera` and its canonical path, so a
/// `/dev/v4l/by-id/…` link and the `/dev/videoN` it points to are one resource.
pub fn camera_key(path: &Path) -> String {
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    format!("camera{}", canon.display())
}

/// An exclusive hold on a resource, released (and its file deleted) on drop.
#[derive(Debug)]
pub struct DeviceLock {
    path: PathBuf,
    file: Option<Flock<File>>,
}

/// Who holds a resource, as the holder wrote it in the lock file.
fn holder_text(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut s);
    let s = s.trim();
    if s.is_empty() {
        "another process (it has not written its name yet)".to_owned()
    } else {
        s.to_owned()
    }
}

/// The name of the running test (as crabby's Block processes declare it), or the program.
fn who_am_i() -> String {
    let test = crabby::process::test_name()
        .or_else(|| {
            std::env::args().next().map(|a| {
                Path::new(&a)
                    .file_name()
                    .map_or(a.clone(), |f| f.to_string_lossy().into_owned())
            })
        })
        .unwrap_or_else(|| "?".to_owned());
    format!("pid {} (test '{}')", std::process::id(), test)
}

impl DeviceLock {
    /// Takes the resource `key` for `device`, or fails with [`ErrorKind::NotAllowed`] naming
    /// the holder.
    pub fn acquire(key: &str, device: &str) -> Result<DeviceLock> {
        let path = lock_path(key);
        let io = |e: std::io::Error| {
            device_error(
                ErrorKind::Io,
                device,
                format!("cannot use the lock file {}: {e}", path.display()),
            )
        };
        // A few rounds at most: each retry means the holder deleted the file meanwhile.
        for _ in 0..16 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io)?;
            let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(l) => l,
                Err((mut f, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(held_error(device, key, &holder_text(&mut f)));
                }
                Err((_, e)) => return Err(io(std::io::Error::from(e))),
            };
            // Writable by every user (best effort: only the file's owner may change it), so a
            // file left by another user's crashed test is taken over, not a lock forever.
            let _ = std::fs::set_permissions(
                &path,
                std::os::unix::fs::PermissionsExt::from_mode(0o666),
            );
            // The holder may have deleted the file between our open and our lock: then we
            // locked an orphan, and must lock the file now at the path.
            let same = match std::fs::metadata(&path) {
                Ok(m) => {
                    let ours = locked.metadata().map_err(io)?;
                    m.ino() == ours.ino() && m.dev() == ours.dev()
                }
                Err(_) => false,
            };
            if !same {
                continue;
            }
            let text = format!("{}, device '{device}'\n", who_am_i());
            locked.set_len(0).map_err(io)?;
            locked.rewind().map_err(io)?;
            locked.write_all(text.as_bytes()).map_err(io)?;
            locked.flush().map_err(io)?;
            return Ok(DeviceLock {
                path,
                file: Some(locked),
            });
        }
        Err(device_error(
            ErrorKind::Io,
            device,
            format!(
                "could not take the lock file {} (it keeps changing)",
                path.display()
            ),
        ))
    }

    /// Checks, without taking it, that the resource `key` is free (before the fork); a
    /// lock file left by a dead holder is removed.
    pub fn probe(key: &str, device: &str) -> Result<()> {
        let path = lock_path(key);
        let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
            return Ok(()); // no file: nobody holds it
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => {
                // Ours for an instant: the file of a holder that died. Delete it while
                // holding it (an opener that locks it next will see the inode change).
                let _ = std::fs::remove_file(&path);
                drop(l);
                Ok(())
            }
            Err((mut f, nix::errno::Errno::EWOULDBLOCK)) => {
                Err(held_error(device, key, &holder_text(&mut f)))
            }
            Err(_) => Ok(()),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn held_error(device: &str, key: &str, holder: &str) -> crabby::Error {
    device_error(
        ErrorKind::NotAllowed,
        device,
        format!(
            "'{}' is in use by {holder}; stop that test first, or use another device",
            key.strip_prefix("serial")
                .or_else(|| key.strip_prefix("camera"))
                .unwrap_or(key)
        ),
    )
}

impl Drop for DeviceLock {
    fn drop(&mut self) {
        // Delete while holding the lock, then release: see the module's documentation.
        let _ = std::fs::remove_file(&self.path);
        self.file = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> String {
        format!("unit-test-{name}-{}", std::process::id())
    }

    #[test]
    fn second_holder_is_refused_with_the_holder_named_and_nothing_is_left() {
        let k = key("refused");
        let a = DeviceLock::acquire(&k, "first").unwrap();
        let path = a.path().to_owned();
        assert!(path.exists());
        // flock locks belong to open files: a second open in the same process conflicts
        // like another process would.
        let e = DeviceLock::acquire(&k, "second").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAllowed);
        assert_eq!(e.origin(), Some("second"));
        let pid = format!("pid {}", std::process::id());
        assert!(e.description().contains(&pid), "{e}");
        assert!(e.description().contains("device 'first'"), "{e}");
        let e = DeviceLock::probe(&k, "second").unwrap_err();
        assert!(e.description().contains(&pid), "{e}");
        drop(a);
        assert!(!path.exists(), "the lock file is left behind");
        DeviceLock::probe(&k, "second").unwrap();
        let b = DeviceLock::acquire(&k, "second").unwrap();
        drop(b);
        assert!(!path.exists());
    }

    #[test]
    fn a_dead_holders_file_is_not_a_lock() {
        let k = key("stale");
        let path = lock_path(&k);
        std::fs::write(&path, "pid 1 (test 'crashed'), device 'x'\n").unwrap();
        DeviceLock::probe(&k, "dev").unwrap();
        assert!(!path.exists(), "probe removes a dead holder's file");
        std::fs::write(&path, "pid 1 (test 'crashed'), device 'x'\n").unwrap();
        let l = DeviceLock::acquire(&k, "dev").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("device 'dev'") && !text.contains("crashed"),
            "{text}"
        );
        drop(l);
        assert!(!path.exists());
    }
}
