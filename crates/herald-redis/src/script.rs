//! The calls of the library's functions (`FCALL`), and what they report to
//! the [`Observer`].

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fred::interfaces::FunctionInterface;
use fred::prelude::Value;
use fred::types::{FromValue, MultipleKeys};
use herald_core::{CoreError, Result};

use crate::library;

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

/// One function of the library (`library.rs`), called with FCALL. When the
/// server answers that it does not hold the function (restarted without
/// persistence, a new Cluster node, `FUNCTION FLUSH`), the library is
/// loaded and the call made once more: a missing function ran nothing, so
/// the retry cannot apply anything twice.
pub(crate) struct Script {
    /// For metrics, and the function's name in the library.
    name: &'static str,
    /// The versioned name FCALL takes.
    function: String,
}

impl Script {
    pub(crate) fn new(name: &'static str) -> Self {
        Script {
            name,
            function: library::function_name(name),
        }
    }

    pub(crate) async fn run<R: FromValue>(
        &self,
        client: &impl FunctionInterface,
        keys: impl Into<MultipleKeys> + Send,
        args: Vec<Value>,
    ) -> Result<R> {
        let started = Instant::now();
        // Converted once: a retry clones reference-counted bytes only.
        let keys: MultipleKeys = keys.into();
        let result = match client
            .fcall::<R, _, _, _>(self.function.as_str(), keys.clone(), args.clone())
            .await
        {
            Err(err) if library::is_missing(&err) => {
                library::load(client).await?;
                client
                    .fcall(self.function.as_str(), keys, args)
                    .await
                    .map_err(unavailable)
            }
            other => other.map_err(unavailable),
        };
        if let Some(o) = observer() {
            o.command(self.name, started.elapsed());
        }
        result
    }
}
