//! Gateway nodes as real `herald` processes, for cluster tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_gateway::auth::Authenticator;
use herald_protocol::Codec;

use super::{Client, API_KEY, SECRET, WAIT};

pub struct ProcessNode {
    pub id: String,
    pub addr: SocketAddr,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn connect(&self, user: &str) -> Client {
        self.connect_with(user, Codec::Json, None).await
    }

    pub async fn connect_with(&self, user: &str, codec: Codec, device: Option<&str>) -> Client {
        Client::connect_to(self.addr, &token(user), codec, device).await
    }

    pub async fn post(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        let resp = reqwest::Client::new()
            .post(self.http("/v1/messages"))
            .bearer_auth(API_KEY)
            .timeout(WAIT)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn send_to(&self, users: &[&str], body: &str) -> serde_json::Value {
        let (status, json) = self
            .post(serde_json::json!({"to": {"users": users}, "category": "remind", "body": body}))
            .await;
        assert_eq!(status, 202, "{json}");
        json
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        reqwest::Client::new()
            .get(self.http(path))
            .bearer_auth(API_KEY)
            .timeout(WAIT)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// SIGKILL: no goodbye to Redis, presence must expire by itself.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
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
