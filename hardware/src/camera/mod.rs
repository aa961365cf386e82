//! cameras
