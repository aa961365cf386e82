//! Cameras: simulated ([`FakeCamera`], [`StrainedSampleCamera`], always compiled) and, behind
//! the `v4l` feature, Video4Linux2 devices (`V4l2Camera`). The pure parts of the V4L2 driver
//! (pixel format conversion, control mapping) are in [`convert`] and compiled always, so they
//! are tested without a device.

pub mod convert;
mod fake;
mod strained;

pub use fake::FakeCamera;
pub use strained::StrainedSampleCamera;
#[cfg(feature = "v4l")]
mod v4l2;
#[cfg(feature = "v4l")]
pub use v4l2::V4l2Camera;
