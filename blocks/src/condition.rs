//! Conditions
