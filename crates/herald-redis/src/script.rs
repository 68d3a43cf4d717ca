//! Lua scripts run with EVALSHA, and what they report to the [`Observer`].

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fred::interfaces::LuaInterface;
use fred::prelude::Value;
use fred::types::{FromValue, MultipleKeys};
use herald_core::{CoreError, Result};

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

/// A Lua script run with EVALSHA, falling back to EVAL (which also caches
/// it on that server) when the server answers NOSCRIPT: after a restart or
/// failover, or on a cluster node that never saw it.
pub(crate) struct Script {
    name: &'static str,
    lua: String,
    sha: String,
}

impl Script {
    /// `prelude` (shared helper functions) then `body`, named for metrics.
    pub(crate) fn new(name: &'static str, prelude: &str, body: &str) -> Self {
        let lua = format!("{prelude}{body}");
        let sha = fred::util::sha1_hash(&lua);
        Script { name, lua, sha }
    }

    pub(crate) async fn run<R: FromValue>(
        &self,
        client: &impl LuaInterface,
        keys: impl Into<MultipleKeys> + Clone + Send,
        args: Vec<Value>,
    ) -> Result<R> {
        let started = Instant::now();
        let result = match client
            .evalsha::<R, _, _, _>(self.sha.as_str(), keys.clone(), args.clone())
            .await
        {
            Err(err) if err.details().starts_with("NOSCRIPT") => client
                .eval(self.lua.as_str(), keys, args)
                .await
                .map_err(unavailable),
            other => other.map_err(unavailable),
        };
        if let Some(o) = observer() {
            o.command(self.name, started.elapsed());
        }
        result
    }
}
