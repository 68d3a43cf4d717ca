//! How the `unicast` scenario's messages leave the load generator: server
//! API POSTs (one message, or batches) or `send` frames on sender
//! WebSockets, each accepted or refused message reported to its trial.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use herald_protocol::{ClientFrame, Rid, ServerFrame};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use super::trial::{Current, Trial};
use super::{UnicastArgs, Via};
use crate::cli::ws_url;
use crate::client::{http_client, post_json, Connector, Ws};
use crate::stamp::{from_rid, rid_for, Stamp};

/// One queued send: the message stamped `stamp` of `trial`, to user `to`.
pub struct Job {
    pub trial: Arc<Trial>,
    pub stamp: Stamp,
    pub to: String,
}

/// How jobs leave the load generator.
pub enum Sender {
    Http {
        client: reqwest::Client,
        base: String,
        api_key: String,
        permits: Arc<Semaphore>,
        size: usize,
        batch: usize,
    },
    Ws {
        queues: Vec<mpsc::Sender<Job>>,
    },
}

impl Sender {
    pub async fn start(
        args: &UnicastArgs,
        run_id: u32,
        connector: &Arc<Connector>,
        current: &Current,
    ) -> anyhow::Result<Self> {
        match args.via {
            Via::Http => {
                let size = args.http_concurrency.max(1);
                Ok(Sender::Http {
                    client: http_client(Duration::from_secs(30), Some(size))?,
                    base: args.from.clone(),
                    api_key: args.common.api_key.clone(),
                    permits: Arc::new(Semaphore::new(size)),
                    size,
                    batch: args.batch.into(),
                })
            }
            Via::Ws => {
                let url = ws_url(&args.from);
                let mut queues = Vec::new();
                for i in 0..args.senders.max(1) {
                    let (ws, _) = connector
                        .connect(&url, &format!("lt-s-{run_id}-{i}"))
                        .await
                        .context("sender connect")?;
                    let (tx, rx) = mpsc::channel(4096);
                    tokio::spawn(ws_sender(ws, rx, connector.clone(), current.clone()));
                    queues.push(tx);
                }
                Ok(Sender::Ws { queues })
            }
        }
    }

    /// Sends the jobs due now.
    pub async fn dispatch(&self, jobs: Vec<Job>) {
        match self {
            Sender::Http {
                client,
                base,
                api_key,
                permits,
                batch,
                ..
            } => {
                let mut jobs = jobs.into_iter().peekable();
                while jobs.peek().is_some() {
                    let chunk: Vec<Job> = jobs.by_ref().take(*batch).collect();
                    let permit = permits.clone().acquire_owned().await.expect("open");
                    let (client, base, api_key) = (client.clone(), base.clone(), api_key.clone());
                    let single = *batch == 1;
                    tokio::spawn(async move {
                        let sent = post_jobs(&client, &base, &api_key, &chunk, single).await;
                        for job in &chunk {
                            match &sent {
                                Ok(()) => job.trial.accept(job.stamp.k),
                                Err(e) => job.trial.reject(format!("{e:#}")),
                            }
                        }
                        drop(permit);
                    });
                }
            }
            Sender::Ws { queues } => {
                for job in jobs {
                    let q = &queues[(job.stamp.k as usize) % queues.len()];
                    if let Err(e) = q.send(job).await {
                        e.0.trial.reject("sender connection closed".into());
                    }
                }
            }
        }
    }

    /// Waits (bounded) until every dispatched send has its answer.
    pub async fn drain(&self, trial: &Trial, dispatched: u64, limit: Duration) {
        let until = Instant::now() + limit;
        match self {
            Sender::Http { permits, size, .. } => {
                let _ = tokio::time::timeout_at(until, permits.acquire_many(*size as u32)).await;
            }
            Sender::Ws { .. } => {
                while Instant::now() < until
                    && trial.accepted.load(Ordering::Relaxed)
                        + trial.rejected.load(Ordering::Relaxed)
                        < dispatched
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

/// One `POST /v1/messages` (`single`) or one `/v1/messages/batch` request.
async fn post_jobs(
    client: &reqwest::Client,
    base: &str,
    api_key: &str,
    jobs: &[Job],
    single: bool,
) -> anyhow::Result<()> {
    let message = |job: &Job| {
        serde_json::json!({
            "to": {"users": [job.to]},
            "category": "system",
            "body": job.stamp.body(),
            "data": job.stamp.data(),
        })
    };
    if single {
        return post_json(client, base, "/v1/messages", api_key, &message(&jobs[0])).await;
    }
    let body = serde_json::json!({"messages": jobs.iter().map(message).collect::<Vec<_>>()});
    post_json(client, base, "/v1/messages/batch", api_key, &body).await
}

/// One sender connection: writes `send` frames from its queue and matches
/// the replies to their messages.
async fn ws_sender(
    mut ws: Ws,
    mut rx: mpsc::Receiver<Job>,
    connector: Arc<Connector>,
    current: Current,
) {
    loop {
        tokio::select! {
            job = rx.recv() => {
                let Some(job) = job else { return }; // run over
                // Everything queued goes out in one write, as a client
                // library pipelining its sends would do.
                let mut jobs = vec![job];
                while jobs.len() < 256 {
                    match rx.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                if let Err(e) = write_sends(&mut ws, &connector, &jobs).await {
                    for job in &jobs {
                        job.trial.reject(format!("ws send: {e}"));
                    }
                    break;
                }
            }
            msg = ws.next() => {
                let Some(Ok(msg)) = msg else { break };
                let Some(Ok(ServerFrame::Reply(reply))) = connector.decode(&msg) else { continue };
                let Some(Rid::Int(rid)) = reply.rid else { continue };
                let (t, k) = from_rid(rid);
                let trial = current.read().expect("current lock").clone();
                let Some(trial) = trial.filter(|tr| tr.id == t) else { continue };
                if reply.ok {
                    trial.accept(k);
                } else {
                    trial.reject(format!("{:?}", reply.error));
                }
            }
        }
    }
    tracing::warn!("a sender connection ended");
}

/// Writes one `send` frame per job, then flushes once.
async fn write_sends(
    ws: &mut Ws,
    connector: &Connector,
    jobs: &[Job],
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    for job in jobs {
        let frame = ClientFrame::Send {
            rid: Rid::Int(rid_for(job.trial.id, job.stamp.k)),
            to: job.to.clone(),
            body: job.stamp.body(),
            title: None,
            data: Some(job.stamp.data()),
            key: None,
            expires_at: None,
            group_key: None,
            tags: None,
            severity: None,
        };
        ws.feed(connector.encode(&frame)).await?;
    }
    ws.flush().await
}
