//! The `schedule` scenario: scheduled sends and snoozes in bulk, on the
//! Redis backend.
//!
//! 1. `deliver`: `--messages` sends with one `deliver_at`, `--lead-secs`
//!    ahead, to `--receivers` users (message i to receiver i mod it), by
//!    `POST /v1/messages/batch` (1,000 a request, spread over the
//!    gateways). From the due time, the schedule's index in Redis
//!    (`<prefix>:{sched}:due`) is read every `--poll-ms` until empty: every
//!    send delivered and recorded so. Then each receiver's inbox must hold
//!    each of its messages exactly once.
//! 2. `wake`: `--snoozes` users get one message each, then snooze it
//!    (`POST /v1/users/{id}/mark`, `all`) with one `until`; from then, the
//!    wake-up index (`<prefix>:{snooze}:due`) is read until empty. Then
//!    each user's snoozed history must be empty (read first: a counts read
//!    would end a due snooze itself) and their counts one unread.
//!
//! Reported per phase: setup time, time from the due second to done,
//! deliveries per second, wrong users, and the CPU of the `--cpu-pid`
//! processes (and of the load generator) per item over that span.

mod args;
mod report;

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

pub use args::ScheduleArgs;

use self::report::{PhaseReport, ScheduleReport};
use crate::cli::base_url;
use crate::client::{api_call, http_client};
use crate::harness::cpu::{CpuMeter, ProcessCpu, Share};
use crate::harness::report::write_json;
use crate::loopback::check_all_loopback;
use crate::scenario::conn::walk::redis;

/// Now, unix ms.
fn now_ms() -> i64 {
    (herald_harness::clock::unix_micros() / 1000) as i64
}

/// What a setup stage saw go wrong.
#[derive(Default)]
struct Errors {
    count: u64,
    first: Option<String>,
}

impl Errors {
    fn add(&mut self, e: anyhow::Error) {
        self.count += 1;
        self.first.get_or_insert_with(|| format!("{e:#}"));
    }

    /// Counts `answer` if it is an error.
    fn check<T>(&mut self, answer: anyhow::Result<T>) {
        if let Err(e) = answer {
            self.add(e);
        }
    }
}

/// A server-API request: method, path, JSON body.
type Call = (Method, String, Option<Value>);

/// `n` messages, message i from `message(i)`, as `POST
/// /v1/messages/batch` requests of 1,000 each.
fn batches(n: usize, message: impl Fn(usize) -> Value) -> Vec<Call> {
    let batch = |from: usize| {
        let messages: Vec<Value> = (from..n.min(from + 1_000)).map(&message).collect();
        let body = json!({ "messages": messages });
        (Method::POST, "/v1/messages/batch".to_owned(), Some(body))
    };
    (0..n).step_by(1_000).map(batch).collect()
}

struct Ctx<'a> {
    args: &'a ScheduleArgs,
    http: reqwest::Client,
    bases: Vec<String>,
    run: u32,
}

impl Ctx<'_> {
    /// `calls` server-API requests, `--concurrency` at once, request i on
    /// gateway i mod the gateways; their answers in order.
    async fn calls(&self, calls: Vec<Call>) -> Vec<anyhow::Result<Value>> {
        let key = &self.args.common.api_key;
        futures_util::stream::iter(calls.into_iter().enumerate())
            .map(|(i, (method, path, body))| {
                let base = &self.bases[i % self.bases.len()];
                async move { api_call(&self.http, method, base, &path, key, body.as_ref()).await }
            })
            .buffered(self.args.requests_in_flight.max(1))
            .collect()
            .await
    }

    /// Reads ZCARD of `key` every `--poll-ms` from `due` until it is 0;
    /// the ms from `due` to then, `None` after `limit`.
    async fn until_empty(
        &self,
        key: String,
        due: i64,
        limit: Duration,
    ) -> anyhow::Result<Option<u64>> {
        let (url, poll) = (self.args.redis_url.clone(), self.args.poll_ms.max(1));
        tokio::task::spawn_blocking(move || -> anyhow::Result<Option<u64>> {
            let mut conn = redis::connect(&url)?;
            let end = Instant::now() + limit;
            while Instant::now() < end {
                let left = conn.call(&["ZCARD", &key])?;
                if let herald_testing::Resp::Int(0) = left {
                    return Ok(Some((now_ms() - due).max(0) as u64));
                }
                std::thread::sleep(Duration::from_millis(poll));
            }
            Ok(None)
        })
        .await?
    }

    /// Sleeps until the due time `at` (unix ms; an error if `what` took
    /// past it), then watches the index `{index}` until it is empty: the
    /// ms from `at` to then, and the CPU per item over that span.
    async fn watch_due(
        &self,
        at: i64,
        what: &str,
        index: &str,
        items: usize,
    ) -> anyhow::Result<(Option<u64>, Vec<ProcessCpu>)> {
        let left = at - now_ms();
        if left <= 0 {
            bail!("{what} took past the due time: raise --lead-secs");
        }
        tokio::time::sleep(Duration::from_millis(left as u64)).await;
        let meter = CpuMeter::start(&self.args.cpu.cpu_pids, Some(vec![std::process::id()]));
        let key = format!("{}:{{{index}}}:due", self.args.key_prefix);
        let done = (self.until_empty(key, at, Duration::from_secs(120)).await)
            .with_context(|| format!("watching the {index} index"))?;
        let cpu = meter.rows(|us| Share::PerMessage {
            us_per_message: us as f64 / items.max(1) as f64,
        });
        Ok((done, cpu))
    }
}

/// The run, bounded by `--timeout` (see `main.rs`).
pub async fn run(args: ScheduleArgs) -> anyhow::Result<()> {
    let bases: Vec<String> = args.gateways.iter().map(|g| base_url(g)).collect();
    check_all_loopback(&bases).await?;
    if args.receivers == 0 || args.messages == 0 {
        bail!("--messages and --receivers must be at least 1");
    }
    let pool = Some(args.requests_in_flight);
    let http = http_client(Duration::from_secs(60), pool)?;
    let ctx = Ctx {
        args: &args,
        http,
        bases: bases.clone(),
        run: crate::stamp::run_nonce(),
    };
    let mut phases = vec![deliver(&ctx).await?];
    if args.snoozes > 0 {
        phases.push(wake(&ctx).await?);
    }
    let report = ScheduleReport {
        gateways: bases,
        all_met: phases.iter().all(|p| p.target_met),
        phases,
    };
    report::print(&report);
    write_json(args.common.out.as_deref(), &report)
}

/// The `deliver` phase.
async fn deliver(ctx: &Ctx<'_>) -> anyhow::Result<PhaseReport> {
    let args = ctx.args;
    let receiver = |r: usize| format!("lt-sched-{}-{r}", ctx.run);
    let due = now_ms() + (args.lead_secs * 1000) as i64;
    let started = Instant::now();
    let batches = batches(args.messages, |i| {
        json!({"to": {"users": [receiver(i % args.receivers)]}, "category": "remind",
            "body": format!("s{i}"), "deliver_at": due})
    });
    let mut errors = Errors::default();
    for answer in ctx.calls(batches).await {
        errors.check(answer);
    }
    let setup_secs = started.elapsed().as_secs_f64();
    tracing::info!(setup_secs, errors = errors.count, "scheduled");
    let (done, cpu) = ctx
        .watch_due(due, "scheduling", "sched", args.messages)
        .await?;
    tracing::info!(?done, "delivered");

    // Exactly once: each receiver holds each of its messages once.
    let reads: Vec<_> = (0..args.receivers)
        .map(|r| {
            let path = format!("/v1/users/{}/inbox?limit=1000", receiver(r));
            (Method::GET, path, None)
        })
        .collect();
    let (mut wrong, mut missing, mut duplicates) = (0, 0, 0);
    for (r, answer) in ctx.calls(reads).await.into_iter().enumerate() {
        let Ok(inbox) = answer else {
            wrong += 1;
            continue;
        };
        let mut got: Vec<usize> = inbox["messages"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .filter_map(|m| m["body"].as_str()?.strip_prefix('s')?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        got.sort_unstable();
        let want: Vec<usize> = (r..args.messages).step_by(args.receivers).collect();
        let before = got.len();
        got.dedup();
        let dups = before - got.len();
        let absent = want
            .iter()
            .filter(|i| got.binary_search(i).is_err())
            .count();
        if dups > 0 || absent > 0 || got.len() != want.len() {
            wrong += 1;
        }
        (missing, duplicates) = (missing + absent, duplicates + dups);
    }
    Ok(PhaseReport {
        phase: "deliver",
        items: args.messages,
        users: args.receivers,
        setup_secs,
        setup_errors: errors.count,
        first_error: errors.first,
        done_after_due_ms: done,
        wrong_users: wrong,
        missing,
        duplicates,
        cpu,
        target_secs: args.deliver_target_secs,
        ..PhaseReport::default()
    }
    .judged())
}

/// The `wake` phase.
async fn wake(ctx: &Ctx<'_>) -> anyhow::Result<PhaseReport> {
    let args = ctx.args;
    let user = |i: usize| format!("lt-nap-{}-{i}", ctx.run);
    let started = Instant::now();
    let mut errors = Errors::default();
    let sends = batches(
        args.snoozes,
        |i| json!({"to": {"users": [user(i)]}, "category": "remind", "body": "nap"}),
    );
    for answer in ctx.calls(sends).await {
        errors.check(answer);
    }
    let until = now_ms() + (args.lead_secs * 1000) as i64;
    let marks: Vec<_> = (0..args.snoozes)
        .map(|i| {
            let body = json!({"state": "snoozed", "all": true, "until": until});
            (
                Method::POST,
                format!("/v1/users/{}/mark", user(i)),
                Some(body),
            )
        })
        .collect();
    for answer in ctx.calls(marks).await {
        match answer {
            Ok(reply) if reply["changed"] == 1 => {}
            Ok(reply) => errors.add(anyhow::anyhow!("snooze changed {reply}")),
            Err(e) => errors.add(e),
        }
    }
    let setup_secs = started.elapsed().as_secs_f64();
    tracing::info!(setup_secs, errors = errors.count, "snoozed");
    let (done, cpu) = ctx
        .watch_due(until, "snoozing", "snooze", args.snoozes)
        .await?;
    tracing::info!(?done, "woken");

    // Nothing left snoozed (read without waking anyone), then the counts.
    let mut wrong = vec![false; args.snoozes];
    let snoozed: Vec<_> = (0..args.snoozes)
        .map(|i| {
            let path = format!("/v1/users/{}/messages?snoozed=true", user(i));
            (Method::GET, path, None)
        })
        .collect();
    let mut missing = 0;
    for (i, answer) in ctx.calls(snoozed).await.into_iter().enumerate() {
        let still = answer.map_or(true, |page| page["messages"] != json!([]));
        if still {
            wrong[i] = true;
            missing += 1;
        }
    }
    let counts: Vec<_> = (0..args.snoozes)
        .map(|i| (Method::GET, format!("/v1/users/{}/counts", user(i)), None))
        .collect();
    for (i, answer) in ctx.calls(counts).await.into_iter().enumerate() {
        if answer.map_or(true, |c| c["unread_total"] != 1 || c["unseen_total"] != 1) {
            wrong[i] = true;
        }
    }
    let wrong = wrong.iter().filter(|w| **w).count();
    Ok(PhaseReport {
        phase: "wake",
        items: args.snoozes,
        users: args.snoozes,
        setup_secs,
        setup_errors: errors.count,
        first_error: errors.first,
        done_after_due_ms: done,
        wrong_users: wrong,
        missing,
        duplicates: 0,
        cpu,
        target_secs: args.wake_target_secs,
        ..PhaseReport::default()
    }
    .judged())
}
