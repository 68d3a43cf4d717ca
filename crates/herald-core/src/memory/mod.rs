//! The in-memory backend: one process, no Redis. The embedded default, and
//! the reference the Redis backend is tested against.
//!
//! Several brokers may share one [`MemoryBus`], which lets tests run more than
//! one hub in a process.

mod blocklist;
mod broker;
mod conversations;
mod idempotency;
mod jobs;
mod preferences;
mod presence;
mod store;
mod timers;
mod topics;
mod webhooks;

pub use blocklist::MemoryBlocklist;
pub use broker::{MemoryBroker, MemoryBus};
pub use idempotency::MemoryIdempotency;
pub use jobs::MemoryJobs;
pub use preferences::MemoryPreferences;
pub use presence::MemoryPresence;
pub use store::MemoryStore;
pub use timers::MemoryTimers;
pub use topics::MemoryTopics;
pub use webhooks::MemoryWebhooks;
