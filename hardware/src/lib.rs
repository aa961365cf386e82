//! # crabby-hardware
//!
//! Drivers and simulated devices for crabby.

pub mod camera;
pub mod motor;
pub mod sensor;
pub mod serial;
