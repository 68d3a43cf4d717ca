//! Where the backend reports its calls (the [`Observer`], for metrics), and
//! the error every failed call becomes, which reports too. Its own file,
//! below every caller, so that loading the library (`library.rs`) and
//! calling it (`script.rs`) do not import each other for it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use herald_core::CoreError;

/// Where the backend reports its calls, for metrics. One per process (a
/// gateway process is one node); set it with [`set_observer`] before
/// connecting.
pub trait Observer: Send + Sync + 'static {
    /// A script call (named) or command returned after `took`.
    fn command(&self, call: &'static str, took: Duration);
    /// A call failed; `kind` is fred's error kind (`Timeout`, `IO`, …).
    fn error(&self, kind: &'static str);
    /// The subscriber received one pub/sub message.
    fn pubsub_message(&self);
    /// The subscriber reconnected and subscribed again.
    fn resubscribed(&self);
}

static OBSERVER: OnceLock<Arc<dyn Observer>> = OnceLock::new();

/// Sets the process's observer; later calls are ignored (returns false).
pub fn set_observer(observer: Arc<dyn Observer>) -> bool {
    OBSERVER.set(observer).is_ok()
}

pub(crate) fn observer() -> Option<&'static dyn Observer> {
    OBSERVER.get().map(|o| &**o)
}

/// Every fred error is "Redis did not do it": connection lost, timeout,
/// cluster reconfiguring, or a reply we did not expect. Callers answer 503
/// and retry; nothing here is the client's fault.
pub(crate) fn unavailable(err: fred::error::Error) -> CoreError {
    if let Some(o) = observer() {
        o.error(err.kind().to_str());
    }
    CoreError::Unavailable(format!("redis: {err}"))
}
