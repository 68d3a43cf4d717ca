//! The processes of a fault test: `herald` nodes, redis-servers, and
//! signals to them.

use herald_harness::redis_info::field;
use herald_testing::{RedisServer, RespConn};

use crate::common::process::ProcessNode;

/// Starts `herald` processes (logging errors only: the outages here make
/// every node warn many times a second).
pub async fn start_nodes(ids: &[&str], redis_url: &str, env: &[(&str, &str)]) -> Vec<ProcessNode> {
    let mut env = env.to_vec();
    env.push(("RUST_LOG", "error,fred=off"));
    let mut nodes = Vec::new();
    for id in ids {
        nodes.push(ProcessNode::start(id, redis_url, &env).await);
    }
    nodes
}

/// The pid of the `herald` child of this process whose node id is `id`
/// (from /proc: its parent and its environment).
pub fn node_pid(id: &str) -> u32 {
    let me = std::process::id();
    let wanted = format!("HERALD__NODE__ID={id}\0");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces, so after the ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(me) {
            continue;
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if environ
            .windows(wanted.len())
            .any(|w| w == wanted.as_bytes())
        {
            return pid;
        }
    }
    panic!("no herald child with node id {id}");
}

/// kill -<signal> <pid>, for processes this test started.
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

pub async fn start_redis(args: &'static [&'static str]) -> RedisServer {
    tokio::task::spawn_blocking(move || RedisServer::start_with(args))
        .await
        .unwrap()
}

/// The pid of the redis-server on `port` (its `INFO server`).
pub fn redis_pid(port: u16) -> u32 {
    let info = RespConn::connect(("127.0.0.1", port))
        .and_then(|mut c| c.info("server"))
        .expect("INFO server");
    field(&info, "process_id").expect("process_id in INFO server") as u32
}
