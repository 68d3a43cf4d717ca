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

/// What the parts of the mix share: the run, its clients, and when the
/// paced parts end.
#[derive(Clone)]
struct Mix {
    run: u32,
    devices: Arc<Vec<Arc<Device>>>,
    observer: Arc<SoakObserver>,
    codec: herald_protocol::Codec,
    longest: Duration,
    stopped: watch::Receiver<bool>,
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
        let mix = Mix {
            run,
            devices,
            observer,
            codec: args.common.client.codec.codec(),
            longest: Duration::from_secs(args.duration + 60),
            stopped,
        };
        let broadcasts = Arc::new(AtomicU64::new(0));
        let mut tasks = vec![
            unicast(&mix, sender.clone(), args.unicast_rate),
            marks(&mix, args.mark_rate),
            churn(&mix, args.churn_rate),
        ];
        if args.broadcast_every > 0 {
            let rate = 1.0 / args.broadcast_every as f64;
            let (key, sent) = (args.common.api_key.clone(), broadcasts.clone());
            tasks.push(broadcast(&mix, rate, bases.to_vec(), key, sent)?);
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

fn unicast(mix: &Mix, sender: Arc<ApiSender<usize>>, rate: f64) -> JoinHandle<Driven> {
    let (m, mut rng) = (mix.clone(), rand::make_rng::<SmallRng>());
    paced(rate, mix.longest, mix.stopped.clone(), move |ks| {
        let jobs: Vec<(usize, Stamp)> = ks
            .map(|k| {
                let u = rng.random_range(0..m.devices.len());
                (u, stamp(m.run, UNICAST, k))
            })
            .collect();
        let (sender, run) = (sender.clone(), m.run);
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

/// Broadcasts to the nodes at `bases` in turn, counted in `sent`.
fn broadcast(
    mix: &Mix,
    rate: f64,
    bases: Vec<String>,
    api_key: String,
    sent: Arc<AtomicU64>,
) -> anyhow::Result<JoinHandle<Driven>> {
    let http = http_client(Duration::from_secs(10), None)?;
    let (run, post) = (mix.run, Arc::new((http, bases, api_key, sent)));
    Ok(paced(rate, mix.longest, mix.stopped.clone(), move |ks| {
        let post = post.clone();
        async move {
            let (http, bases, api_key, sent) = &*post;
            for k in ks {
                let st = stamp(run, BROADCAST, k);
                let body = serde_json::json!({
                    "to": {"all": true},
                    "category": "announcement",
                    "body": st.body(),
                    "data": st.data(),
                });
                let base = &bases[k as usize % bases.len()];
                match post_json(http, base, "/v1/messages", api_key, &body).await {
                    Ok(()) => {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => tracing::warn!("broadcast failed: {e:#}"),
                }
            }
        }
    }))
}

/// A random client with a connection up (a few tries), if any.
pub fn pick_online(devices: &[Arc<Device>], rng: &mut SmallRng) -> Option<Arc<Device>> {
    (0..16)
        .map(|_| &devices[rng.random_range(0..devices.len())])
        .find(|d| d.online())
        .cloned()
}

fn marks(mix: &Mix, rate: f64) -> JoinHandle<Driven> {
    let (m, mut rng) = (mix.clone(), rand::make_rng::<SmallRng>());
    paced(rate, mix.longest, mix.stopped.clone(), move |ks| {
        for k in ks {
            let Some(dev) = pick_online(&m.devices, &mut rng) else {
                continue;
            };
            let rid = k as i64 + 1;
            let frame =
                serde_json::json!({"type": "mark", "rid": rid, "state": "read", "all": true});
            m.observer.mark_sent(rid);
            if !dev.send(encode(m.codec, frame)) {
                m.observer.mark_unsent(rid);
            }
        }
        std::future::ready(())
    })
}

fn churn(mix: &Mix, rate: f64) -> JoinHandle<Driven> {
    let (m, mut rng) = (mix.clone(), rand::make_rng::<SmallRng>());
    paced(rate, mix.longest, mix.stopped.clone(), move |ks| {
        for _ in ks {
            if let Some(dev) = pick_online(&m.devices, &mut rng) {
                m.observer.churning(dev.index);
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
