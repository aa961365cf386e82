//! Cameras: simulated ([`FakeCamera`], [`StrainedSampleCamera`], always compiled), the replay
//! of a recorded folder ([`FileReader`]) and, behind
//! the `v4l` feature, Video4Linux2 devices (`V4l2Camera`). The pure parts of the V4L2 driver
//! (pixel format conversion, control mapping) are in [`convert`] and compiled always, so they
//! are tested without a device.

pub mod convert;
mod fake;
pub mod file_reader;
mod strained;

pub use fake::FakeCamera;
pub use file_reader::{FileReader, Pacing};
pub use strained::StrainedSampleCamera;
#[cfg(feature = "v4l")]
mod v4l2;
#[cfg(feature = "v4l")]
pub use v4l2::V4l2Camera;

/// Takes exclusive use of the camera at `path` for `camera` (a second opener, in this test
/// or another, is refused with [`crabby::ErrorKind::NotAllowed`] naming the holder). Held
/// until the returned lock is dropped; the camera Block's children inherit it with the
/// process, and the kernel releases it when they all end. See [`crate::lock`].
pub fn lock_device(
    path: &std::path::Path,
    camera: &str,
) -> crabby::Result<crate::lock::DeviceLock> {
    crate::lock::DeviceLock::acquire(&crate::lock::camera_key(path), camera)
}

/// Reports, without taking it, a camera path held by another test (for `Camera::check`,
/// before anything is forked).
pub fn probe_device(path: &std::path::Path, camera: &str) -> crabby::Result<()> {
    crate::lock::DeviceLock::probe(&crate::lock::camera_key(path), camera)
}

/// Longest a simulated camera's `grab` sleeps before returning `Ok(None)` (the camera Block
/// calls again): a step in progress never delays the end of a test by more than this.
const MAX_GRAB_WAIT_NS: u64 = 200_000_000;

/// Lowest non-zero frame rate of the simulated cameras (one frame per 100 s).
const MIN_FPS: f64 = 0.01;

/// Checks a simulated camera's frame rate: 0 (free run) or `MIN_FPS..=100000`.
fn check_fps(camera: &str, fps: f64) -> crabby::Result<()> {
    if fps == 0.0 || (MIN_FPS..=100_000.0).contains(&fps) {
        Ok(())
    } else {
        Err(crabby::Error::config(format!(
            "{camera}: fps {fps} must be 0 (free run) or {MIN_FPS}..=100000"
        )))
    }
}

/// Frame pacing of the simulated cameras: `Some(now)` when a frame is due (after sleeping
/// until it is), `None` after sleeping [`MAX_GRAB_WAIT_NS`] if it is due later than that.
fn pace(fps: f64, next_due_ns: &mut u64) -> Option<u64> {
    let now = crabby::time::monotonic_ns();
    if fps <= 0.0 {
        return Some(now);
    }
    let period = (1e9 / fps.max(MIN_FPS)) as u64;
    if *next_due_ns == 0 {
        *next_due_ns = now;
    }
    let mut now = now;
    if now < *next_due_ns {
        let wait = *next_due_ns - now;
        if wait > MAX_GRAB_WAIT_NS {
            std::thread::sleep(std::time::Duration::from_nanos(MAX_GRAB_WAIT_NS));
            return None;
        }
        std::thread::sleep(std::time::Duration::from_nanos(wait));
        now = crabby::time::monotonic_ns();
    }
    // Next frame one period later; after a long pause, restart from now (no burst).
    *next_due_ns = next_due_ns
        .saturating_add(period)
        .max(now.saturating_sub(period));
    Some(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_camera_path_is_held_by_one_opener_whatever_link_names_it() {
        let dir = std::env::temp_dir().join(format!("crabby-camlock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let node = dir.join("video7");
        std::fs::write(&node, b"").unwrap();
        let link = dir.join("by-id-cam");
        std::os::unix::fs::symlink(&node, &link).unwrap();
        probe_device(&node, "first").unwrap();
        let held = lock_device(&node, "first").unwrap();
        // Through the link: the same device, refused before and at open.
        let e = probe_device(&link, "second").unwrap_err();
        assert_eq!(e.kind(), crabby::ErrorKind::NotAllowed, "{e}");
        assert!(e.description().contains("device 'first'"), "{e}");
        assert!(e.description().contains(&*node.to_string_lossy()), "{e}");
        let e = lock_device(&link, "second").unwrap_err();
        assert_eq!(e.kind(), crabby::ErrorKind::NotAllowed, "{e}");
        // Another path is another camera.
        drop(lock_device(&dir.join("video8"), "third").unwrap());
        drop(held);
        probe_device(&link, "second").unwrap();
        drop(lock_device(&link, "second").unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn slow_rates_wait_in_bounded_slices() {
        assert!(check_fps("C", 0.0).is_ok());
        assert!(check_fps("C", 0.01).is_ok());
        assert!(check_fps("C", 1e-300).is_err());
        assert!(check_fps("C", f64::NAN).is_err());
        // 0.1 frame/s: the first frame at once, then `None` after one bounded wait, not
        // after 10 s.
        let mut due = 0;
        assert!(pace(0.1, &mut due).is_some());
        let t = std::time::Instant::now();
        assert!(pace(0.1, &mut due).is_none());
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }
}
