//! After the storm: the survivors' presence against the clients' own
//! count. Every client is online again, so presence must count each user
//! once (`GET /v1/presence`) and list one connection per user (`GET
//! /v1/users/{id}/presence`, for a sample): an entry a dead node left
//! behind is a second connection until a survivor reaps that node (its
//! heartbeat lapsed), and an entry lost in the storm is none. Read until
//! both hold, or `timeout`; the report says how long it took and what the
//! first read found.

use std::time::Duration;

use futures_util::{stream, StreamExt};
use serde::Serialize;
use tokio::time::Instant;

use super::args::storm_user;
use crate::client::{api_call, http_client};

/// Users whose connections are read each round, at most.
const SAMPLE: usize = 500;
/// Presence reads in flight at once.
const IN_FLIGHT: usize = 32;

#[derive(Debug, Clone, Default, Serialize)]
pub struct PresenceCheck {
    /// The clients online by their own count.
    pub clients_online: usize,
    /// `online_users` at the first read and at the last.
    pub online_users_first: u64,
    pub online_users: u64,
    /// Sampled users, and those without exactly one connection listed at
    /// the first read and at the last.
    pub sampled: usize,
    pub wrong_first: usize,
    pub wrong: usize,
    /// Seconds from the first read until both matched; `None`: never
    /// within the timeout.
    pub correct_after_secs: Option<f64>,
}

impl PresenceCheck {
    pub fn correct(&self) -> bool {
        self.correct_after_secs.is_some()
    }
}

/// Reads `node`'s presence until it matches `clients_online` of the run's
/// `clients` users (see the module doc).
pub async fn check(
    node: &str,
    api_key: &str,
    run: u32,
    clients: usize,
    clients_online: usize,
    timeout: Duration,
) -> anyhow::Result<PresenceCheck> {
    let http = http_client(Duration::from_secs(10), Some(IN_FLIGHT))?;
    let step = clients.div_ceil(SAMPLE).max(1);
    let users: Vec<String> = (0..clients)
        .step_by(step)
        .map(|i| storm_user(run, i))
        .collect();
    let mut report = PresenceCheck {
        clients_online,
        sampled: users.len(),
        ..Default::default()
    };
    let started = Instant::now();
    let deadline = started + timeout;
    for round in 0.. {
        let online = api_call(
            &http,
            reqwest::Method::GET,
            node,
            "/v1/presence",
            api_key,
            None,
        )
        .await?["online_users"]
            .as_u64()
            .unwrap_or_default();
        let wrong = wrong_users(&http, node, api_key, &users).await?;
        if round == 0 {
            (report.online_users_first, report.wrong_first) = (online, wrong);
        }
        (report.online_users, report.wrong) = (online, wrong);
        if online == clients_online as u64 && wrong == 0 {
            report.correct_after_secs = Some(started.elapsed().as_secs_f64());
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(report)
}

/// How many of `users` do not have exactly one connection listed.
async fn wrong_users(
    http: &reqwest::Client,
    node: &str,
    api_key: &str,
    users: &[String],
) -> anyhow::Result<usize> {
    let reads = stream::iter(users)
        .map(|user| async move {
            let path = format!("/v1/users/{user}/presence");
            let view = api_call(http, reqwest::Method::GET, node, &path, api_key, None).await?;
            let listed = view["connections"].as_array().map_or(0, Vec::len);
            anyhow::Ok(listed != 1)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let mut wrong = 0;
    for read in reads {
        wrong += usize::from(read?);
    }
    Ok(wrong)
}
