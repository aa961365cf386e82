//! Cameras: simulated ([`FakeCamera`], [`StrainedSampleCamera`], always compiled), the replay
//! of a recorded folder ([`FileReader`]) and, behind
//! the `v4l` feature, Video4Linux2 devices (`V4l2Camera`). The pure parts of the V4L2 driver
//! (pixel format conversion, control mapping) are in [`convert`] and compiled always, so they
//! are tested without a device.

pub mod convert;
mod fake;
mod file_reader;
mod strained;

pub use fake::FakeCamera;
pub use file_reader::{FileReader, Pacing};
pub use strained::StrainedSampleCamera;
#[cfg(feature = "v4l")]
mod v4l2;
#[cfg(feature = "v4l")]
pub use v4l2::V4l2Camera;

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
