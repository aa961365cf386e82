//! Clocks and time stamps shared by every process of a test.

/// Nanoseconds of `CLOCK_MONOTONIC`: the same clock in every process of the machine, so the
/// coordinator's `t0` ([`Context::t0_ns`](crate::Context::t0_ns)) means the same instant in
/// every Block, and drivers stamp their readings with it.
pub fn monotonic_ns() -> u64 {
    crate::sys::monotonic_ns()
}

/// Nanoseconds since the Unix epoch (wall clock), for metadata only.
pub fn realtime_ns() -> u64 {
    crate::sys::realtime_ns()
}

/// ISO 8601 local date-time of an epoch time in nanoseconds, e.g.
/// `2026-11-21T21:04:05.123+01:00`.
pub fn iso8601(epoch_ns: u64) -> String {
    crate::sys::iso8601(epoch_ns)
}

/// A compact local stamp for file names, e.g. `20261121-210405`.
pub fn file_stamp(epoch_ns: u64) -> String {
    crate::sys::file_stamp(epoch_ns)
}
