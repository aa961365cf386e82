//! Oriental.
