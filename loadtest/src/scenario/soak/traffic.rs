//! The soak's steady mix, each part paced open loop on its own schedule
//! until the mix stops: unicast through the API, broadcasts, `mark`s from
//! random online clients, and churn (a client closes and reconnects).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_harness::clock::unix_micros;
use herald_harness::ApiSender;
use herald_harness::Device;
use rand::rngs::SmallRng;
use rand::RngExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::args::{soak_user, SoakArgs};
use super::observer::{SoakObserver, BROADCAST, UNICAST};
use crate::client::{http_client, post_json};
use crate::pacing::{paced, Driven};
use crate::stamp::Stamp;

/// The running mix.
pub struct Traffic {
    pub sender: Arc<ApiSender<usize>>,
    pub broadcasts: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Driven>>,
}

/// What the parts of the mix share.
#[derive(Clone)]
struct Mix {
    run: u32,
    devices: Arc<Vec<Arc<Device>>>,
    observer: Arc<SoakObserver>,
    codec: herald_protocol::Codec,
}

impl Traffic {
    pub fn start(
        args: &SoakArgs,
        run: u32,
        devices: Arc<Vec<Arc<Device>>>,
        observer: Arc<SoakObserver>,
        bases: &[String],
    ) -> anyhow::Result<Traffic> {
        let sender = Arc::new(ApiSender::new(
            bases.to_vec(),
            args.common.api_key.clone(),
            args.http_concurrency,
            Duration::from_secs(10),
            move |&u| soak_user(run, u),
        )?);
        let (stop, stopped) = watch::channel(false);
        let longest = Duration::from_secs(args.duration + 60);
        let mix = Mix {
            run,
            devices,
            observer,
            codec: args.common.client.codec.codec(),
        };
        let broadcasts = Arc::new(AtomicU64::new(0));
        let mut tasks = vec![
            unicast(
                &mix,
                sender.clone(),
                args.unicast_rate,
                longest,
                stopped.clone(),
            ),
            marks(&mix, args.mark_rate, longest, stopped.clone()),
            churn(&mix, args.churn_rate, longest, stopped.clone()),
        ];
        if args.broadcast_every > 0 {
            let rate = 1.0 / args.broadcast_every as f64;
            let post = Broadcaster::new(args, bases, broadcasts.clone())?;
            tasks.push(broadcast(&mix, post, rate, longest, stopped));
        }
        Ok(Traffic {
            sender,
            broadcasts,
            stop,
            tasks,
        })
    }

    /// Stops every part and waits (bounded) for the API requests in flight.
    pub async fn stop(self) -> Arc<ApiSender<usize>> {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        self.sender.drain(Duration::from_secs(30)).await;
        self.sender
    }
}

/// A stamp of `kind` for message `k`, scheduled now.
fn stamp(run: u32, kind: u32, k: u64) -> Stamp {
    Stamp {
        run,
        trial: kind,
        k,
        sched_us: unix_micros(),
    }
}

fn unicast(
    mix: &Mix,
    sender: Arc<ApiSender<usize>>,
    rate: f64,
    longest: Duration,
    stopped: watch::Receiver<bool>,
) -> JoinHandle<Driven> {
    let (mix, mut rng) = (mix.clone(), rand::make_rng::<SmallRng>());
    paced(rate, longest, stopped, move |ks| {
        let jobs: Vec<(usize, Stamp)> = ks
            .map(|k| {
                (
                    rng.random_range(0..mix.devices.len()),
                    stamp(mix.run, UNICAST, k),
                )
            })
            .collect();
        let (sender, run) = (sender.clone(), mix.run);
        async move {
            for (u, st) in jobs {
                let body = serde_json::json!({
                    "to": {"users": [soak_user(run, u)]},
                    "category": "system",
                    "body": st.body(),
                    "data": st.data(),
                });
                sender.post(vec![u], body).await;
            }
        }
    })
}

/// Posts broadcasts to the nodes in turn.
struct Broadcaster {
    http: reqwest::Client,
    bases: Vec<String>,
    api_key: String,
    sent: Arc<AtomicU64>,
}

impl Broadcaster {
    fn new(args: &SoakArgs, bases: &[String], sent: Arc<AtomicU64>) -> anyhow::Result<Self> {
        Ok(Broadcaster {
            http: http_client(Duration::from_secs(10), None)?,
            bases: bases.to_vec(),
            api_key: args.common.api_key.clone(),
            sent,
        })
    }
}

fn broadcast(
    mix: &Mix,
    post: Broadcaster,
    rate: f64,
    longest: Duration,
    stopped: watch::Receiver<bool>,
) -> JoinHandle<Driven> {
    let (run, post) = (mix.run, Arc::new(post));
    paced(rate, longest, stopped, move |ks| {
        let post = post.clone();
        async move {
            for k in ks {
                let st = stamp(run, BROADCAST, k);
                let body = serde_json::json!({
                    "to": {"all": true},
                    "category": "announcement",
                    "body": st.body(),
                    "data": st.data(),
                });
                let base = &post.bases[k as usize % post.bases.len()];
                match post_json(&post.http, base, "/v1/messages", &post.api_key, &body).await {
                    Ok(()) => {
                        post.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => tracing::warn!("broadcast failed: {e:#}"),
                }
            }
        }
    })
}

/// A random client with a connection up (a few tries), if any.
pub fn pick_online(devices: &[Arc<Device>], rng: &mut SmallRng) -> Option<Arc<Device>> {
    (0..16)
        .map(|_| &devices[rng.random_range(0..devices.len())])
        .find(|d| d.online())
        .cloned()
}

fn marks(
    mix: &Mix,
    rate: f64,
    longest: Duration,
    stopped: watch::Receiver<bool>,
) -> JoinHandle<Driven> {
    let (mix, mut rng) = (mix.clone(), rand::make_rng::<SmallRng>());
    paced(rate, longest, stopped, move |ks| {
        for k in ks {
            let Some(dev) = pick_online(&mix.devices, &mut rng) else {
                continue;
            };
            let rid = k as i64 + 1;
            let frame =
                serde_json::json!({"type": "mark", "rid": rid, "state": "read", "all": true});
            mix.observer.mark_sent(rid);
            if !dev.send(encode(mix.codec, frame)) {
                mix.observer.mark_unsent(rid);
            }
        }
        std::future::ready(())
    })
}

fn churn(
    mix: &Mix,
    rate: f64,
    longest: Duration,
    stopped: watch::Receiver<bool>,
) -> JoinHandle<Driven> {
    let (mix, mut rng) = (mix.clone(), rand::make_rng::<SmallRng>());
    paced(rate, longest, stopped, move |ks| {
        for _ in ks {
            if let Some(dev) = pick_online(&mix.devices, &mut rng) {
                mix.observer.churning(dev.index);
                dev.churn();
            }
        }
        std::future::ready(())
    })
}

/// A client frame from its JSON form, in `codec`.
pub fn encode(codec: herald_protocol::Codec, frame: serde_json::Value) -> WsMessage {
    herald_harness::frames::encode(
        codec,
        &serde_json::from_value(frame).expect("a valid client frame"),
    )
}
