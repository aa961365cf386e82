//! Eurotherm.
