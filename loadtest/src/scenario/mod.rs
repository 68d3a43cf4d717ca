//! The scenarios, one folder each: its command line (`args.rs`), its run
//! (`mod.rs` and the parts named after what they do) and its report
//! (`report.rs`).

pub mod conn;
pub mod fanout;
pub mod mark;
pub mod rolling;
pub mod scaleout;
pub mod schedule;
pub mod soak;
pub mod storm;
pub mod unicast;
