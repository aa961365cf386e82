//! io_block
