//! What every scenario stands on: worker processes and their pipe
//! ([`worker`]), the CPU and memory probes ([`cpu`], [`memory`]), and the
//! report a run hands over ([`report`]).

pub mod cpu;
pub mod memory;
pub mod report;
pub mod worker;
