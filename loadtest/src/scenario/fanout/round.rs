//! One publish of a `fanout` run: the POST, the job polled until it ends,
//! and every worker's report of the round.

use std::time::Duration;

use anyhow::Context;
use herald_harness::clock::unix_micros;
use reqwest::Method;
use tokio::time::Instant;

use super::report::RoundReport;
use super::FanoutArgs;
use crate::client::api_call;
use crate::harness::cpu::{CpuMeter, Share};
use crate::scenario::conn::fleet::{self, Fleet};
use crate::scenario::conn::pipe::{ROUND_FIELD, RUN_FIELD, SENT_FIELD};

/// Most job-progress samples kept per round (one per poll that saw a change).
const MAX_PROGRESS_SAMPLES: usize = 2_000;

/// What every publish of a run shares.
pub struct Publisher<'a> {
    pub args: &'a FanoutArgs,
    pub http: &'a reqwest::Client,
    /// The gateway the publish and the job polls go to.
    pub base: &'a str,
    pub topic: &'a str,
    pub run: u32,
    pub cpu_pids: &'a [(String, u32)],
    pub receivers_ok: usize,
}

/// The job's state at its last poll.
#[derive(Default)]
struct Job {
    state: String,
    total: u64,
    done: u64,
    /// From sending the POST to the first poll that saw it end.
    done_us: Option<u64>,
    polls: u64,
    poll_errors: u64,
    first_error: Option<String>,
    progress: Vec<(u64, u64)>,
}

impl Publisher<'_> {
    /// One publish, until the job is done and every worker reported the round.
    pub async fn round(
        &self,
        fleet: &mut Fleet,
        round: u32,
        duplicates_before: u64,
    ) -> anyhow::Result<RoundReport> {
        let args = self.args;
        let loadgen = std::iter::once(std::process::id()).chain(fleet.pids().into_iter().flatten());
        let cpu = CpuMeter::start(self.cpu_pids, Some(loadgen.collect()));
        let sent_us = unix_micros();
        let t0 = Instant::now();
        let round_deadline = t0 + Duration::from_secs(args.round_timeout);
        let body = serde_json::json!({
            "body": format!("loadtest fan-out {} {round}", self.run),
            "data": {RUN_FIELD: self.run, ROUND_FIELD: round, SENT_FIELD: sent_us},
        });
        let path = format!("/v1/topics/{}/messages", self.topic);
        let api_key = &args.common.api_key;
        let published = api_call(
            self.http,
            Method::POST,
            self.base,
            &path,
            api_key,
            Some(&body),
        )
        .await
        .context("publishing")?;
        let accepted_us = t0.elapsed().as_micros() as u64;
        let job_id = published["job"]
            .as_str()
            .with_context(|| format!("no job id in {published}"))?
            .to_owned();
        let subscribers_accepted = published["subscribers"].as_u64().unwrap_or(0);
        let job = self.poll(&job_id, t0, round_deadline).await;

        // Every worker's report of the round: at once if every live receiver
        // has it, else after the grace (or the round's end).
        let wait_until = (Instant::now() + Duration::from_secs(args.grace)).min(round_deadline);
        let all: Vec<usize> = (0..fleet.len()).collect();
        let t = fleet::round(fleet, &all, round, wait_until).await?;
        let per_message = |us: u64| us as f64 / job.total.max(1) as f64;
        let cpu = cpu.rows(|us| Share::PerMessage {
            us_per_message: per_message(us),
        });
        let servers: u64 = cpu[..self.cpu_pids.len()].iter().map(|c| c.cpu_us).sum();

        let duplicates = t.duplicates.saturating_sub(duplicates_before);
        // Connections that dropped did not get it either.
        let missing = (t.expected + t.dropped)
            .max(self.receivers_ok)
            .saturating_sub(t.received);
        let last_receiver_us = t.last_recv_us.saturating_sub(sent_us);
        let complete_us = job.done_us.map(|d| d.max(last_receiver_us));
        let correct = job.state == "done"
            && job.total == subscribers_accepted
            && missing == 0
            && duplicates == 0
            && t.dropped == 0;
        let target_met = correct && complete_us.is_some_and(|c| c as f64 <= args.target_secs * 1e6);
        Ok(RoundReport {
            round,
            job: job_id,
            subscribers_accepted,
            job_total: job.total,
            job_done: job.done,
            job_state: job.state,
            accepted_us,
            job_done_us: job.done_us,
            last_receiver_us,
            complete_us,
            messages_per_sec: (job.done_us).map(|d| job.total as f64 / (d as f64 / 1e6).max(1e-9)),
            receivers_live: t.expected,
            received: t.received,
            missing,
            duplicates,
            dropped_connections: t.dropped,
            delivery_latency: t.latency.summary(),
            polls: job.polls,
            poll_errors: job.poll_errors,
            progress: job.progress,
            servers_cpu_us_per_message: (!self.cpu_pids.is_empty()).then(|| per_message(servers)),
            cpu,
            correct,
            target_met,
            first_error: job.first_error,
        })
    }

    /// Polls job `id` every `--poll-ms` until it is done or failed (or
    /// `until`); times from `t0`, the POST.
    async fn poll(&self, id: &str, t0: Instant, until: Instant) -> Job {
        let mut ticker = tokio::time::interval(Duration::from_millis(self.args.poll_ms));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut job = Job {
            state: "queued".into(),
            ..Job::default()
        };
        let path = format!("/v1/jobs/{id}");
        let api_key = &self.args.common.api_key;
        while Instant::now() < until {
            ticker.tick().await;
            job.polls += 1;
            match api_call(self.http, Method::GET, self.base, &path, api_key, None).await {
                Ok(status) => {
                    let at_ms = t0.elapsed().as_millis() as u64;
                    job.state = status["state"].as_str().unwrap_or("?").to_owned();
                    job.total = status["total"].as_u64().unwrap_or(0);
                    let done = status["done"].as_u64().unwrap_or(0);
                    if (job.progress.is_empty() || done != job.done)
                        && job.progress.len() < MAX_PROGRESS_SAMPLES
                    {
                        job.progress.push((at_ms, done));
                    }
                    job.done = done;
                    if job.state == "done" || job.state == "failed" {
                        job.done_us = Some(t0.elapsed().as_micros() as u64);
                        break;
                    }
                }
                Err(e) => {
                    job.poll_errors += 1;
                    job.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        job
    }
}
