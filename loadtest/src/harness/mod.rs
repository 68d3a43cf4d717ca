//! What every scenario stands on: worker processes and their pipe
//! ([`worker`]), the CPU meter of the measured part ([`cpu`]; the probes
//! themselves are herald-harness's `process` and `machine`), and the report
//! a run hands over ([`report`]).

pub mod cpu;
pub mod report;
pub mod worker;
