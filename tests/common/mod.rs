//! The fork-safe harness of these test binaries: `crabby::testing::harness`, public so that
//! users can write the same tests in their own crates (see its docs and CONTRIBUTING.md).
#![allow(unused_imports, dead_code)]

pub use crabby::testing::harness::*;

/// `Err(msg)` unless `cond` (the harness's `ensure!`, at the root of every test binary).
#[macro_export]
macro_rules! ensure {
    ($($t:tt)+) => {
        crabby::testing::harness::ensure!($($t)+)
    };
}

pub mod blocks;
pub mod devices;
