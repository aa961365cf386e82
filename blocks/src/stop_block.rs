//! stop_block
