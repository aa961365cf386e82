//! Tools to test your own Blocks.

pub mod harness;
