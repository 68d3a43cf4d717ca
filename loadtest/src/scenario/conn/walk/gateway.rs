//! The walk's gateways: given with `--gateway`, or started as its steps
//! need them with `--gateway-cmd` (and stopped at its end).

use std::io;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::Child;
use tokio::time::Instant;

use herald_harness::process::rss_kib;

/// A gateway of the walk: given with `--gateway` or started with
/// `--gateway-cmd`.
pub struct Gateway {
    pub url: String,
    pub pid: Option<u32>,
    pub child: Option<Child>,
    pub rss_base_kib: u64,
    pub assigned: usize,
    pub capacity: usize,
}

impl Gateway {
    pub fn free(&self) -> usize {
        self.capacity.saturating_sub(self.assigned)
    }
}

fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts gateway `index` with `cmd` and waits until it answers /healthz.
pub async fn start(
    cmd: &str,
    index: usize,
    capacity: usize,
    http: &reqwest::Client,
) -> anyhow::Result<Gateway> {
    let port = free_port()?;
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .env("HERALD_LT_GATEWAY_INDEX", index.to_string())
        .env("HERALD_LT_GATEWAY_PORT", port.to_string())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            // If the walk dies (kill -9 included), its gateways get SIGTERM.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .context("starting a gateway (--gateway-cmd)")?;
    let pid = child.id();
    let url = format!("http://127.0.0.1:{port}");
    let ready = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("gateway {index} (--gateway-cmd) exited with {status} before it was ready");
        }
        let ok = http
            .get(format!("{url}/healthz"))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        if Instant::now() >= ready {
            let _ = child.kill().await;
            bail!("gateway {index} on {url} did not answer /healthz within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(p) = pid {
        let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        if matches!(comm.trim(), "sh" | "bash" | "dash") {
            tracing::warn!("--gateway-cmd does not exec its gateway: RSS is the shell's");
        }
    }
    let rss_base_kib = pid.and_then(|p| rss_kib(p).ok()).unwrap_or(0);
    tracing::info!(index, pid, url, rss_base_kib, "gateway started");
    Ok(Gateway {
        url,
        pid,
        child: Some(child),
        rss_base_kib,
        assigned: 0,
        capacity,
    })
}

/// SIGTERM, up to 20 s to exit, then SIGKILL. (With many connections
/// just closed, a gateway may still be removing their presence.)
pub async fn stop(g: Gateway) {
    let (Some(mut child), Some(pid)) = (g.child, g.pid) else {
        return;
    };
    // SAFETY: kill(2) on the PID of a child we have not reaped yet.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    if tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .is_err()
    {
        tracing::info!(pid, "gateway still busy 20 s after SIGTERM; SIGKILL");
        let _ = child.kill().await;
    }
}
