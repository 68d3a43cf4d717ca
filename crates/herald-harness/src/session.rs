//! One device's life as a well-behaved client lives it: connect, read,
//! acknowledge, and after every close reconnect — to another node (or any,
//! through a Service), after a jittered backoff or the delay a `reconnect`
//! frame gave — and resume with `sync` from the highest seq it has
//! (docs/protocol.md).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use crate::connection::{serve, Ended};
use crate::device::{Ctx, Device};

pub use crate::failover::next_node;

/// Connect attempts over a device's life at most: far above any run's
/// needs, it only makes the loop finite.
const MAX_ATTEMPTS: u32 = 100_000;

/// Runs `dev` until the run stops: first to node `home` (holding
/// `permit`, if any — a limit on first connects in flight — during that
/// attempt only: reconnects are spread by the backoff, as real clients'
/// are), then wherever the dial's [`next_node`](crate::Dial::next_node) sends it (by
/// default [`next_node`]); after a `reconnect` frame, once its delay
/// passed rather than the backoff's.
pub async fn run(
    dev: Arc<Device>,
    home: usize,
    ctx: Arc<Ctx>,
    permit: Option<OwnedSemaphorePermit>,
) {
    let Some(mut outbox) = dev.take_outbox() else {
        return; // already running
    };
    let mut permit = permit;
    let mut stop = ctx.stop.clone();
    let nodes = ctx.urls.len();
    let (mut node, mut refused, mut failures) = (home % nodes, 0u64, 0u32);
    for _ in 0..MAX_ATTEMPTS {
        if *stop.borrow() {
            return;
        }
        ctx.observer.connecting(&dev, node);
        let attempt = tokio::select! {
            r = ctx.dial.dial(&ctx.urls[node], &dev) => r,
            _ = stop.changed() => return,
        };
        drop(permit.take());
        let wait = match attempt {
            Ok((mut ws, welcome)) => {
                (refused, failures) = (0, 0);
                dev.online.store(true, Ordering::Relaxed);
                ctx.observer.welcomed(&dev, node, &welcome);
                let ended = serve(&dev, &ctx, &mut ws, &mut outbox, &mut stop).await;
                dev.online.store(false, Ordering::Relaxed);
                dev.silent.store(false, Ordering::Relaxed);
                let after = match ended {
                    Ended::Stopped => return,
                    Ended::Churned => None,
                    Ended::Closed(code, after) => {
                        ctx.observer.ended(&dev, code);
                        after
                    }
                };
                node = ctx.dial.next_node(node, nodes, &mut refused);
                // A `reconnect` frame said when, as the SDK follows it.
                after.unwrap_or_else(|| ctx.backoff.delay(1, &mut rand::rng()))
            }
            Err(e) => {
                ctx.observer.refused(&dev, node, &e);
                refused |= 1 << node;
                node = ctx.dial.next_node(node, nodes, &mut refused);
                failures += 1;
                ctx.backoff.delay(failures, &mut rand::rng())
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}
