//! The calls of the library's functions (`FCALL`), and what they report to
//! the [`Observer`](crate::Observer).

use std::time::Instant;

use fred::interfaces::FunctionInterface;
use fred::prelude::Value;
use fred::types::{FromValue, MultipleKeys};
use herald_core::Result;

use crate::library;
use crate::observer::{observer, unavailable};

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
