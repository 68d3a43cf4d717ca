//! Admission control: a node under pressure stops taking new connections
//! before it starves the ones it has. Three signals, sampled on their own
//! task (`admission/sampler.rs`): the event loop's lag, the mean time of
//! the node's Redis calls, and its open connections. Past a threshold
//! (`[admission]`) the gate closes: new WebSocket and SSE upgrades get 503
//! with `Retry-After`, `/readyz` answers 503 so the Service routes new
//! clients elsewhere; it opens again with hysteresis (every signal at or
//! below its lower `reopen_*` level, and at least `hold_ms` closed), so a
//! node on the edge does not flap. One log line per change, and the
//! `herald_admission_*` metrics.

mod gate;
mod pressure;
mod sampler;

pub use gate::{Gate, Refusal};
pub use pressure::{Pressure, Reading};
pub use sampler::sample;
