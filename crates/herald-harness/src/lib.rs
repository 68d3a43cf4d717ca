//! The exactly-once harness of Herald's fault tests
//! (`crates/herald-gateway/tests/faults/`) and of the load generator's
//! `storm` and `soak` (`loadtest/`): one copy of everything both need to
//! say whether every message the server accepted reached every device of
//! its recipient exactly once, whatever failed meanwhile.
//!
//! - [`device`] and [`session`]: the resuming client — connect,
//!   acknowledge, reconnect with [`backoff`] to another node, `sync` from
//!   the last seq, dedup by seq;
//! - [`ledger`]: what each device received, and the faults it saw;
//! - [`sender`]: `POST /v1/messages`, booking each 202's id and seqs (and
//!   each refusal or unknown outcome);
//! - [`check`](mod@check): the one exactly-once verdict, ledgers against the 202s;
//! - [`process`], [`machine`], [`redis_info`], [`sampler`]: what a fault
//!   or a load costs — a process's RSS and CPU, the machine's busy cores
//!   and available memory, Redis's ops/s;
//! - [`latency`]: the histograms the reports print;
//! - [`frames`]: frames in a codec, and the `welcome` that opens a
//!   connection; [`clock`]: the one clock of a run's processes.
//!
//! Dev-only (`publish = false`): the gateway's tests and herald-loadtest
//! use it; the `herald` binary never links it. It speaks the wire protocol
//! (herald-protocol) and knows nothing of the gateway's insides.

pub mod backoff;
pub mod check;
pub mod clock;
mod connection;
pub mod device;
mod failover;
pub mod frames;
pub mod latency;
pub mod ledger;
pub mod machine;
pub mod process;
pub mod redis_info;
pub mod sampler;
pub mod sender;
pub mod session;

pub use backoff::Backoff;
pub use check::{check, Accepted, Received, Tally};
pub use device::{Ctx, Device, Dial, Observer, Setup, Ws, SDK_ACK_DELAY};
pub use ledger::{Arrival, Faults, StreamLog};
pub use sender::{Answer, ApiSender, Request, SendStats};
