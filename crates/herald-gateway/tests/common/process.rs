//! Gateway nodes as real `herald` processes, for cluster tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_gateway::auth::Authenticator;
use herald_protocol::Codec;

use super::{free_port, Api, Client, API_KEY, SECRET};

/// The scheduler lease of the kill-a-holder tests: short, so that a node
/// started after the holder's SIGKILL takes its timers over quickly, and a
/// batch large enough that the holder claims everything due at once.
pub const SHORT_LEASE: [(&str, &str); 2] = [
    ("HERALD__SCHEDULE__LEASE_MS", "1500"),
    ("HERALD__SCHEDULE__BATCH", "10000"),
];

/// The two nodes of a kill-a-holder test: `holder` runs the scheduler with
/// [`SHORT_LEASE`] (it claims the due timers, then gets killed); `edge`
/// runs none, so everything due goes through the holder (or its heir).
pub async fn holder_and_edge(redis_url: &str) -> (ProcessNode, ProcessNode) {
    let holder = ProcessNode::start("holder", redis_url, &SHORT_LEASE).await;
    let edge =
        ProcessNode::start("edge", redis_url, &[("HERALD__SCHEDULE__WORKER", "false")]).await;
    (holder, edge)
}

pub struct ProcessNode {
    pub id: String,
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl ProcessNode {
    /// Starts `herald` on the redis backend at `redis_url` and waits until it
    /// answers `/healthz`.
    pub async fn start(id: &str, redis_url: &str, extra_env: &[(&str, &str)]) -> ProcessNode {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("serve")
            .env("HERALD__BACKEND", "redis")
            .env("HERALD__REDIS__URL", redis_url)
            .env("HERALD__NODE__ID", id)
            .env("HERALD__SERVER__LISTEN", addr.to_string())
            .env("HERALD__AUTH__JWT_SECRET", SECRET)
            .env("HERALD__API__KEY", API_KEY)
            .env("HERALD__NODE__HEARTBEAT_MS", "300")
            .env("HERALD__NODE__SUBSCRIPTION_LINGER_MS", "200")
            // Tests share a loaded machine: a node must not shed because
            // another test hogs the CPU (`tests/admission.rs` turns it on).
            .env("HERALD__ADMISSION__ENABLED", "false")
            .env("RUST_LOG", "warn,fred=error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn herald");
        let node = ProcessNode {
            id: id.to_owned(),
            addr,
            child: Some(child),
        };
        let url = node.http("/healthz");
        super::eventually(&format!("node {id} healthy"), || {
            let url = url.clone();
            async move { reqwest::get(url).await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
        node
    }

    pub async fn connect(&self, user: &str) -> Client {
        self.connect_with(user, Codec::Json, None).await
    }

    pub async fn connect_with(&self, user: &str, codec: Codec, device: Option<&str>) -> Client {
        Client::connect_to(self.addr, &token(user), codec, device).await
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the process with kill(1).
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("node running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// The process id, for its RSS (`herald_harness::process::rss_kib`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("node running").id()
    }

    /// SIGKILL: no goodbye to Redis, presence must expire by itself.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Api for ProcessNode {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ProcessNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn token(user: &str) -> String {
    let settings = herald_gateway::settings::AuthSettings {
        jwt_secret: SECRET.into(),
        ..Default::default()
    };
    Authenticator::new(&settings, None)
        .unwrap()
        .mint(user, 3600)
        .unwrap()
}

pub const SHORT: Duration = Duration::from_millis(200);
