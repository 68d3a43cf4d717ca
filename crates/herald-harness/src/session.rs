//! One device's life as a well-behaved client lives it: connect, read,
//! acknowledge, and after every close reconnect — to another node (or any,
//! through a Service), after a jittered backoff or the delay a `reconnect`
//! frame gave — and resume with `sync` from the highest seq it has
//! (docs/protocol.md).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rand::{Rng, RngExt};
use tokio::sync::OwnedSemaphorePermit;

use crate::connection::{serve, Ended};
use crate::device::{Ctx, Device};

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

/// The node to try after `current` closed or refused: at random among the
/// others that have not refused since the last connection (`refused`, a
/// bit per node); when all have, the slate is wiped.
pub fn next_node<R: Rng + ?Sized>(
    current: usize,
    nodes: usize,
    refused: &mut u64,
    rng: &mut R,
) -> usize {
    if nodes <= 1 {
        return 0;
    }
    let others = |refused: u64| -> Vec<usize> {
        (0..nodes)
            .filter(|&n| n != current && refused & (1 << n) == 0)
            .collect()
    };
    let mut candidates = others(*refused);
    if candidates.is_empty() {
        *refused = 0;
        candidates = others(0);
    }
    candidates[rng.random_range(0..candidates.len())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn next_node_is_another_one_that_did_not_refuse() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut refused = 0u64;
        for _ in 0..100 {
            let n = next_node(1, 4, &mut refused, &mut rng);
            assert_ne!(n, 1);
        }
        refused = 0b0101; // 0 and 2 refused
        for _ in 0..100 {
            assert_eq!(next_node(1, 4, &mut refused, &mut rng), 3);
        }
        refused = 0b1101; // every other node refused: start over
        let n = next_node(1, 4, &mut refused, &mut rng);
        assert!(n != 1 && refused == 0, "{n} {refused:b}");
        assert_eq!(next_node(0, 1, &mut refused, &mut rng), 0);
    }

    #[test]
    fn next_node_spreads_over_the_others() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut seen = [0u32; 4];
        for _ in 0..3_000 {
            let mut refused = 0;
            seen[next_node(0, 4, &mut refused, &mut rng)] += 1;
        }
        assert_eq!(seen[0], 0);
        assert!(
            seen[1..].iter().all(|&c| (850..1150).contains(&c)),
            "{seen:?}"
        );
    }
}
