//! Any bytes as the JSON body of the server API's sends and marks, through
//! the same checks the routes run: never a panic, and every refusal is a
//! 4xx with a message.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use herald_core::memory::{
    MemoryBlocklist, MemoryBus, MemoryIdempotency, MemoryStore, MemoryTimers,
};
use herald_core::{Categories, MessageLimits, Retention, Sender};
use herald_gateway::api::inbox::MarkRequest;
use herald_gateway::api::SendRequest;
use libfuzzer_sys::fuzz_target;

fn sender() -> &'static Sender {
    static SENDER: OnceLock<Sender> = OnceLock::new();
    SENDER.get_or_init(|| {
        Sender::new(
            Arc::new(MemoryStore::new(MemoryBus::new(), Retention::default())),
            Arc::new(MemoryIdempotency::default()),
            Arc::new(MemoryBlocklist::default()),
            Arc::new(MemoryTimers::default()),
            MessageLimits::default(),
            Categories::default(),
            Duration::from_secs(60),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<SendRequest>(data) {
        if let Err(e) = request.prepare(sender()) {
            assert!(e.status.is_client_error() && !e.message.is_empty());
        }
    }
    if let Ok(request) = serde_json::from_slice::<MarkRequest>(data) {
        if let Err(e) = request.check(&Categories::default()) {
            assert!(e.status.is_client_error() && !e.message.is_empty());
        }
    }
});
