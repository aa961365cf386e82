//! # crabby-blocks
//!
//! The Blocks of crabby.

pub mod camera;
pub mod condition;
pub mod fake_machine;
pub mod generator;
pub mod io_block;
pub mod machine;
pub mod recorder;
pub mod stop_block;

pub use condition::*;
pub use fake_machine::*;
pub use generator::*;
pub use io_block::*;
pub use machine::*;
pub use recorder::*;
pub use stop_block::*;
