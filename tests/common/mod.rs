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
// `devices.rs` (simulated devices, needs crabby-hardware) is included by the core's driver
// test binaries themselves: `#[path = "common/devices.rs"] mod devices;` (the other crates'
// tests include this module and do not depend on crabby-hardware).
