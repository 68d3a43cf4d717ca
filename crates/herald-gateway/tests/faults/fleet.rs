//! The devices of a fault test: herald-harness's resuming devices on the
//! test's nodes, each its user's named device (`?device=`), and what the
//! test reads of their lives: where each is, when it tried, was welcomed
//! and was closed.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use herald_harness::{
    check, session, Accepted, Backoff, Ctx, Device, Dial, Observer, Received, Setup, Tally, Ws,
};
use herald_protocol::{Codec, Welcome};
use tokio::sync::watch;

use crate::common::process::token;
use crate::verdict::Verdict;
use crate::waits::wait_for;

/// One device to run: (user, device name, home node index).
pub type Spec = (String, String, usize);

/// `prefix0`, `prefix1`, …
pub fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Every other user has two devices (`phone`, `laptop`), the rest one;
/// their home nodes go round the `nodes`.
pub fn device_specs(users: &[String], nodes: usize) -> Vec<Spec> {
    let mut specs = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let devices: &[&str] = if i % 2 == 0 {
            &["phone", "laptop"]
        } else {
            &["phone"]
        };
        for device in devices {
            let home = specs.len() % nodes;
            specs.push((user.clone(), (*device).to_owned(), home));
        }
    }
    specs
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects devices as their user (a token of the test secret) and named
/// device, in JSON; a device that starts held gets a small socket receive
/// buffer (4 KiB), so that the node's writes to it block soon.
struct Dialer;

impl Dialer {
    async fn open(url: &str, dev: &Device) -> anyhow::Result<(Ws, Welcome)> {
        let addr: SocketAddr = url
            .trim_start_matches("ws://")
            .trim_end_matches("/ws")
            .parse()?;
        let socket = tokio::net::TcpSocket::new_v4()?;
        if dev.setup.held {
            socket.set_recv_buffer_size(4096)?;
        }
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(addr)).await??;
        let device = dev.setup.name.as_deref().unwrap_or("default");
        let url = format!("{url}?token={}&device={device}", token(&dev.user));
        let handshake = tokio_tungstenite::client_async(url, stream);
        let (mut ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, handshake).await??;
        let welcome = herald_harness::frames::welcome(&mut ws, Codec::Json);
        let welcome = tokio::time::timeout(CONNECT_TIMEOUT, welcome).await??;
        Ok((ws, welcome))
    }
}

impl Dial for Dialer {
    fn dial<'a>(
        &'a self,
        url: &'a str,
        dev: &'a Device,
    ) -> BoxFuture<'a, anyhow::Result<(Ws, Welcome)>> {
        Box::pin(Self::open(url, dev))
    }

    fn codec(&self) -> Codec {
        Codec::Json
    }
}

/// One device's life.
#[derive(Default)]
pub struct Life {
    /// Connect attempts (start times), successful or not.
    pub attempts: Vec<Instant>,
    /// One per connection: when the welcome came, from which node.
    pub welcomes: Vec<(Instant, String)>,
    /// One per ended connection: when, and the close code (None: the
    /// connection just ended).
    pub closes: Vec<(Instant, Option<u16>)>,
}

/// Every device's life, by device index.
struct Lives(Vec<Mutex<Life>>);

impl Lives {
    fn of(&self, dev: &Device) -> MutexGuard<'_, Life> {
        self.0[dev.index].lock().unwrap()
    }
}

impl Observer for Lives {
    fn connecting(&self, dev: &Device, _node: usize) {
        self.of(dev).attempts.push(Instant::now());
    }

    fn welcomed(&self, dev: &Device, _node: usize, welcome: &Welcome) {
        let node = welcome.node_id.clone();
        self.of(dev).welcomes.push((Instant::now(), node));
    }

    fn ended(&self, dev: &Device, code: Option<u16>) {
        self.of(dev).closes.push((Instant::now(), code));
    }

    /// The node broke the protocol: the test fails.
    fn protocol_error(&self, dev: &Device, what: &str) {
        panic!("{}/{:?}: {what}", dev.user, dev.setup.name);
    }
}

pub struct Fleet {
    pub devices: Vec<Arc<Device>>,
    lives: Arc<Lives>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Fleet {
    pub fn start(specs: Vec<Spec>, addrs: &[SocketAddr], backoff: Backoff) -> Fleet {
        Self::start_with(specs, addrs, backoff, |_| Setup::default())
    }

    /// `setup(user)` says how each device behaves (its name comes from
    /// its spec). Each acknowledges every message as it arrives.
    pub fn start_with(
        specs: Vec<Spec>,
        addrs: &[SocketAddr],
        backoff: Backoff,
        setup: impl Fn(&str) -> Setup,
    ) -> Fleet {
        let (stop, stopped) = watch::channel(false);
        let lives = Arc::new(Lives((0..specs.len()).map(|_| Mutex::default()).collect()));
        let ctx = Arc::new(Ctx {
            dial: Arc::new(Dialer),
            urls: addrs.iter().map(|a| format!("ws://{a}/ws")).collect(),
            backoff,
            ack_delay: Duration::ZERO,
            stop: stopped,
            observer: lives.clone(),
        });
        let mut devices = Vec::new();
        let mut tasks = Vec::new();
        for (index, (user, device, home)) in specs.into_iter().enumerate() {
            let setup = Setup {
                name: Some(device),
                ..setup(&user)
            };
            let dev = Device::with(index, user, setup);
            tasks.push(tokio::spawn(session::run(
                dev.clone(),
                home,
                ctx.clone(),
                None,
            )));
            devices.push(dev);
        }
        Fleet {
            devices,
            lives,
            tasks,
            stop,
        }
    }

    pub fn life(&self, dev: &Device) -> MutexGuard<'_, Life> {
        self.lives.of(dev)
    }

    /// The node of `dev`'s current connection, if connected.
    pub fn node(&self, dev: &Device) -> Option<String> {
        let node = self.life(dev).welcomes.last().map(|(_, n)| n.clone());
        node.filter(|_| dev.online())
    }

    pub async fn wait_connected(&self, within: Duration) -> Duration {
        wait_for("every device connected", within, || {
            self.devices.iter().all(|d| self.node(d).is_some())
        })
        .await
    }

    pub fn devices_on(&self, node: &str) -> Vec<Arc<Device>> {
        self.devices
            .iter()
            .filter(|d| self.node(d).as_deref() == Some(node))
            .cloned()
            .collect()
    }

    /// Connection ends between `from` and `to`, over all devices.
    pub fn closes_between(&self, from: Instant, to: Instant) -> Vec<(String, Option<u16>)> {
        let mut closes = Vec::new();
        for d in &self.devices {
            for (at, code) in &self.life(d).closes {
                if *at >= from && *at <= to {
                    let name = d.setup.name.as_deref().unwrap_or_default();
                    closes.push((format!("{}/{name}", d.user), *code));
                }
            }
        }
        closes
    }

    /// The exactly-once check of what the devices received against those
    /// of `accepted` addressed to this fleet's users.
    pub fn check(&self, accepted: &[Accepted<String>]) -> Tally<String> {
        let users: HashSet<&str> = self.devices.iter().map(|d| d.user.as_str()).collect();
        let ours: Vec<Accepted<String>> = accepted
            .iter()
            .filter(|a| users.contains(a.user.as_str()))
            .cloned()
            .collect();
        let received: Vec<Received<String>> = self
            .devices
            .iter()
            .map(|d| d.received(d.user.clone()))
            .collect();
        check(&ours, &received)
    }

    /// Waits until every device has every message accepted for its user;
    /// how long that took, or None after `within`.
    pub async fn converge(
        &self,
        accepted: &[Accepted<String>],
        within: Duration,
    ) -> Option<Duration> {
        let started = Instant::now();
        for _ in 0..10_000 {
            if self.check(accepted).lost == 0 {
                return Some(started.elapsed());
            }
            if started.elapsed() > within {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// The checker's verdict over the fleet.
    pub fn tally(&self, accepted: &[Accepted<String>]) -> Verdict {
        let lives = self.devices.iter().map(|d| self.life(d));
        Verdict::new(self.check(accepted), &self.devices, lives)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}
