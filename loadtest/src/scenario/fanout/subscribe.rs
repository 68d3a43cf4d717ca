//! The subscribers of a `fanout` run: their names, and the subscribe phase
//! through the server API.

use std::time::Duration;

use futures_util::StreamExt;
use herald_harness::latency::LatencyHist;
use reqwest::Method;
use tokio::time::Instant;

use super::FanoutArgs;
use crate::client::api_call;
use crate::scenario::conn::pipe::worker_user;

/// Every subscriber's name: the workers' users (the receivers, in the
/// workers' order), each followed by its share of the users that stay
/// offline, named `<receiver>-s<k>`. A topic's snapshot is in user-id byte
/// order, and `lt-0-17-s3` sorts right after `lt-0-17` and before
/// `lt-0-170`, so the receivers are spread evenly over the snapshot (as
/// online users among random ids would be) rather than all appended first.
pub fn subscriber_names(slices: &[(usize, usize)], subscribers: usize) -> Vec<String> {
    let receivers: usize = slices.iter().map(|s| s.1).sum();
    let others = subscribers.saturating_sub(receivers);
    let (base, extra) = (others / receivers.max(1), others % receivers.max(1));
    let mut names = Vec::with_capacity(subscribers.max(receivers));
    let mut j = 0;
    for (w, &(_, count)) in slices.iter().enumerate() {
        for i in 0..count {
            let receiver = worker_user(w, i);
            let offline = base + usize::from(j < extra);
            names.extend((0..offline).map(|k| format!("{receiver}-s{k}")));
            names.push(receiver);
            j += 1;
        }
    }
    names
}

/// The subscribe phase added up.
#[derive(Default)]
pub struct Subscribed {
    pub ok: u64,
    pub failed: u64,
    pub retries: u64,
    pub errors: Vec<String>,
    pub secs: f64,
    pub latency: LatencyHist,
}

/// Subscribes every user to `topic`, `--subscribe-concurrency` requests in
/// flight, request i on gateway i mod the number of gateways; a failed
/// request is tried again up to `--retries` times.
pub async fn subscribe_all(
    args: &FanoutArgs,
    http: &reqwest::Client,
    bases: &[String],
    topic: &str,
    users: &[String],
    deadline: Instant,
) -> Subscribed {
    let started = Instant::now();
    let retries = args.common.client.retries;
    let mut results = futures_util::stream::iter(users.iter().enumerate())
        .map(|(i, user)| async move {
            let base = &bases[i % bases.len()];
            let path = format!("/v1/users/{user}/topics/{topic}");
            let mut attempt = 0u32;
            loop {
                let sent = Instant::now();
                match api_call(http, Method::PUT, base, &path, &args.common.api_key, None).await {
                    Ok(_) => return (Ok(sent.elapsed()), attempt),
                    Err(e) if attempt >= retries || Instant::now() >= deadline => {
                        return (Err(e), attempt)
                    }
                    Err(_) => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                    }
                }
            }
        })
        .buffer_unordered(args.subscribe_concurrency as usize);
    let mut out = Subscribed::default();
    let total = users.len() as u64;
    let mut next_log = Instant::now() + Duration::from_secs(2);
    while let Some((result, attempts)) = results.next().await {
        out.retries += u64::from(attempts);
        match result {
            Ok(took) => {
                out.ok += 1;
                out.latency.record(took.as_micros() as u64);
            }
            Err(e) => {
                out.failed += 1;
                let msg = format!("{e:#}");
                if out.errors.len() < 5 && !out.errors.contains(&msg) {
                    out.errors.push(msg);
                }
            }
        }
        let finished = out.ok + out.failed;
        if Instant::now() >= next_log || finished == total {
            next_log = Instant::now() + Duration::from_secs(2);
            tracing::info!(
                "subscribing: {finished} / {total} ({} failed), {:.0}/s",
                out.failed,
                finished as f64 / started.elapsed().as_secs_f64().max(1e-9)
            );
        }
    }
    out.secs = started.elapsed().as_secs_f64();
    out
}
