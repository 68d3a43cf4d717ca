//! `conn --steps`: a walk up toward many connections (scripts/bench-million.sh).
//!
//! The connections are held across steps: each step asks the workers to
//! open the difference to its target (`add`; new worker processes of at
//! most `--per-worker` connections are started as the total needs them),
//! and with `--gateway-cmd` starts new gateway processes of at most
//! `--per-gateway` connections each. After each step: a settle, the
//! figures (gateway RSS, kernel slab, Redis `used_memory`, load-generator
//! RSS, each per held connection), then one broadcast to everyone, timed
//! until the last connection has it.
//!
//! The walk stops by itself: when `MemAvailable` is below `--mem-floor-mib`
//! before a step or while connecting (the workers are halted), when the
//! next step or its broadcast would take it below the floor (projected
//! from the memory per connection measured so far), or at `--timeout`.
//! The report (a table, and JSON with `--out`, rewritten after every step)
//! says which.

use std::io;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use futures_util::future::join_all;
use herald_harness::clock::unix_micros;
use herald_harness::latency::{fmt_us, LatencyHist, Summary};
use herald_harness::process::{cpu_micros, rss_kib};
use herald_harness::redis_info::field;
use herald_testing::{Resp, RespConn};
use serde::Serialize;
use tokio::process::Child;
use tokio::time::Instant;

use crate::cli::{ConnArgs, PostTo};
use crate::client::post_message;
use crate::coordinator::{add_connections, worker_source_ip, WorkerHandle, WorkerSpec};
use crate::worker::{AddTarget, WorkerEvent, ROUND_FIELD, RUN_FIELD, SENT_FIELD};

/// The stepwise mode's flags (part of `conn`).
#[derive(Args, Debug, Clone, Default)]
pub struct StepArgs {
    /// Walk in steps: the total connections after each step, comma-separated
    /// (e.g. 100000,200000,400000). Connections are held across steps (each
    /// step opens the difference), one broadcast per step; -n and --rounds
    /// do not apply. Stops by itself at --mem-floor-mib or --timeout.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub steps: Vec<usize>,
    /// With --steps: a shell command (`sh -c`) that runs one gateway in the
    /// foreground (`exec`, so its PID is the gateway's) on
    /// 127.0.0.1:$HERALD_LT_GATEWAY_PORT; the walk starts as many as its
    /// steps need, numbered by $HERALD_LT_GATEWAY_INDEX from 0, and stops
    /// them at the end (and they get SIGTERM if the walk dies).
    #[arg(long)]
    pub gateway_cmd: Option<String>,
    /// With --gateway-cmd: the most connections one gateway gets.
    #[arg(long, default_value_t = 19_000)]
    pub per_gateway: usize,
    /// With --steps: stop when MemAvailable (/proc/meminfo) is below this
    /// many MiB, or would be after the next step or during its broadcast
    /// (projected from the memory per connection so far). Checked before
    /// each step, every 250 ms while connecting, and before each broadcast.
    #[arg(long, default_value_t = 2560)]
    pub mem_floor_mib: u64,
    /// With --steps: the gateways' Redis (redis://[[user]:password@]host:port),
    /// whose `INFO memory` is read at each step.
    #[arg(long)]
    pub redis_url: Option<String>,
}

/// One step's figures.
#[derive(Debug, Serialize)]
pub struct StepReport {
    pub step: usize,
    pub target: usize,
    /// Connections held after the step (welcomed and not closed since).
    pub held: usize,
    /// Opened, failed and never attempted (halted) in this step.
    pub opened: usize,
    pub failed: usize,
    pub skipped: usize,
    pub retries: u64,
    pub connect_errors: Vec<String>,
    pub gateways: usize,
    pub workers: usize,
    /// From the `add` to the last welcome of the step.
    pub connect_secs: f64,
    pub connects_per_sec: f64,
    pub connect_latency: Summary,
    /// Gateway processes whose PID is known: RSS now, RSS when each was
    /// started (before any connection), and (now − start) / held.
    pub gateway_rss_kib: u64,
    pub gateway_rss_base_kib: u64,
    pub gateway_rss_per_conn_kib: f64,
    /// /proc/meminfo Slab and SUnreclaim now, and their growth since
    /// before the walk per held connection (both socket ends on one host).
    pub slab_kib: u64,
    pub sunreclaim_kib: u64,
    pub slab_per_conn_kib: f64,
    pub sunreclaim_per_conn_kib: f64,
    /// Redis `used_memory` / `used_memory_rss` now, and `used_memory`'s
    /// growth since before the walk per held connection.
    pub redis_used_memory_kib: Option<u64>,
    pub redis_used_memory_rss_kib: Option<u64>,
    pub redis_used_per_conn_kib: Option<f64>,
    /// The worker processes' RSS now, and (now − at start) / held.
    pub loadgen_rss_kib: u64,
    pub loadgen_rss_per_conn_kib: f64,
    /// MemAvailable before the step, idle after it (before the broadcast),
    /// and the lowest seen during the step (broadcast included).
    pub mem_available_before_kib: u64,
    pub mem_available_idle_kib: u64,
    pub mem_available_min_kib: u64,
    /// (MemAvailable before the walk − idle now) / held: what a connection
    /// costs the machine, everything included.
    pub mem_used_per_conn_kib: f64,
    pub broadcast: Option<BroadcastReport>,
    pub step_secs: f64,
    /// Since the walk started.
    pub elapsed_secs: f64,
    /// Why the connect phase was cut short, if it was.
    pub halted: Option<String>,
}

/// The one broadcast of a step.
#[derive(Debug, Serialize)]
pub struct BroadcastReport {
    pub received: usize,
    pub expected: usize,
    pub dropped: usize,
    pub duplicates: u64,
    /// Every held connection had it.
    pub complete: bool,
    /// From the POST to the last connection's delivery.
    pub all_received_us: u64,
    pub delivery_latency: Summary,
    pub gateway_cpu_us_per_delivery: f64,
    /// The lowest MemAvailable from the POST to the last report.
    pub mem_available_min_kib: u64,
}

/// The whole walk.
#[derive(Debug, Serialize)]
pub struct WalkReport {
    pub steps_requested: Vec<usize>,
    pub per_gateway: usize,
    pub per_worker: usize,
    pub mem_floor_mib: u64,
    pub timeout_secs: u64,
    pub client_mode: &'static str,
    /// Before anything was started.
    pub baseline: MemInfo,
    pub redis_baseline: Option<RedisMemory>,
    pub steps: Vec<StepReport>,
    /// Every step done; otherwise `stop_reason` says what stopped the walk.
    pub completed: bool,
    pub stop_reason: String,
    pub max_held: usize,
    pub elapsed_secs: f64,
}

/// The lines of /proc/meminfo the walk reads, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemInfo {
    pub mem_available_kib: u64,
    pub slab_kib: u64,
    pub sunreclaim_kib: u64,
}

pub fn parse_meminfo(text: &str) -> Option<MemInfo> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some(MemInfo {
        mem_available_kib: field("MemAvailable")?,
        slab_kib: field("Slab")?,
        sunreclaim_kib: field("SUnreclaim")?,
    })
}

pub fn meminfo() -> anyhow::Result<MemInfo> {
    let text = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    parse_meminfo(&text).context("/proc/meminfo lacks MemAvailable, Slab or SUnreclaim")
}

/// MemAvailable, sampled every 200 ms by a task: the latest value and the
/// lowest since the last [`MemWatch::reset_min`].
struct MemWatch {
    latest: AtomicU64,
    min: AtomicU64,
}

impl MemWatch {
    /// Starts the sampling task; it ends at `until` (or when aborted).
    fn start(until: Instant) -> anyhow::Result<(Arc<Self>, tokio::task::JoinHandle<()>)> {
        let now = meminfo()?.mem_available_kib;
        let watch = Arc::new(MemWatch {
            latest: AtomicU64::new(now),
            min: AtomicU64::new(now),
        });
        let w = watch.clone();
        let task = tokio::spawn(async move {
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(m) = meminfo() {
                    w.latest.store(m.mem_available_kib, Ordering::Relaxed);
                    w.min.fetch_min(m.mem_available_kib, Ordering::Relaxed);
                }
            }
        });
        Ok((watch, task))
    }

    fn latest(&self) -> u64 {
        self.latest.load(Ordering::Relaxed)
    }

    /// The lowest since the last reset, and a new start from the latest.
    fn reset_min(&self) -> u64 {
        self.min.swap(self.latest(), Ordering::Relaxed)
    }

    fn min(&self) -> u64 {
        self.min.load(Ordering::Relaxed).min(self.latest())
    }
}

/// Redis `INFO memory`, the two lines the walk reads, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RedisMemory {
    pub used_memory: u64,
    pub used_memory_rss: u64,
}

pub fn parse_info_memory(info: &str) -> Option<RedisMemory> {
    Some(RedisMemory {
        used_memory: field(info, "used_memory")?,
        used_memory_rss: field(info, "used_memory_rss")?,
    })
}

/// `redis://[[user]:password@]host:port[/db]` → (host:port, user, password).
fn parse_redis_url(url: &str) -> anyhow::Result<(String, Option<String>, Option<String>)> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| anyhow!("--redis-url must be redis://…: {url}"))?;
    let rest = rest.split('/').next().unwrap_or(rest);
    let (creds, host) = match rest.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, rest),
    };
    let (user, pass) = match creds {
        None => (None, None),
        Some(c) => match c.split_once(':') {
            Some((u, p)) => ((!u.is_empty()).then(|| u.to_owned()), Some(p.to_owned())),
            None => (None, Some(c.to_owned())),
        },
    };
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:6379")
    };
    Ok((host, user, pass))
}

/// One `INFO memory` over a fresh connection (each step given up after 5 s).
async fn redis_memory(url: &str) -> anyhow::Result<RedisMemory> {
    let (host, user, pass) = parse_redis_url(url)?;
    let info = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let mut conn = RespConn::connect(host.as_str())
            .with_context(|| format!("connecting to Redis at {host}"))?;
        if let Some(pass) = &pass {
            let mut auth = vec!["AUTH"];
            auth.extend(user.as_deref());
            auth.push(pass);
            match conn.call(&auth)? {
                Resp::Simple(_) => {}
                other => bail!("Redis AUTH: {}", other.first_line()),
            }
        }
        Ok(conn.info("memory")?)
    })
    .await??;
    parse_info_memory(&info).ok_or_else(|| anyhow!("Redis INFO memory lacks used_memory"))
}

/// A gateway of the walk: given with `--gateway` or started with
/// `--gateway-cmd`.
struct Gateway {
    url: String,
    pid: Option<u32>,
    child: Option<Child>,
    rss_base_kib: u64,
    assigned: usize,
    capacity: usize,
}

impl Gateway {
    fn free(&self) -> usize {
        self.capacity.saturating_sub(self.assigned)
    }
}

fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts gateway `index` with `cmd` and waits until it answers /healthz.
async fn start_gateway(
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
async fn stop_gateway(g: Gateway) {
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

/// Spreads `need` over the free capacities in order, filling each before
/// the next: `(index, count)` pieces. Whatever does not fit is left out.
pub fn fill(free: &[usize], need: usize) -> Vec<(usize, usize)> {
    let mut left = need;
    let mut out = Vec::new();
    for (i, &f) in free.iter().enumerate() {
        if left == 0 {
            break;
        }
        let n = f.min(left);
        if n > 0 {
            out.push((i, n));
            left -= n;
        }
    }
    out
}

/// Pairs the gateways' pieces with the workers' (both from [`fill`], of the
/// same total): per worker, the `(gateway, count)` it opens.
pub fn pair(
    gateways: &[(usize, usize)],
    workers: &[(usize, usize)],
) -> Vec<(usize, Vec<(usize, usize)>)> {
    let mut out: Vec<(usize, Vec<(usize, usize)>)> = Vec::new();
    let mut gws = gateways.iter().copied();
    let mut cur = gws.next();
    for &(w, mut n) in workers {
        let mut targets = Vec::new();
        while n > 0 {
            let Some((g, left)) = cur else { break };
            let take = left.min(n);
            targets.push((g, take));
            n -= take;
            cur = if left > take {
                Some((g, left - take))
            } else {
                gws.next()
            };
        }
        if !targets.is_empty() {
            out.push((w, targets));
        }
    }
    out
}

/// A worker of the walk: what it was asked for and holds (its handle is
/// at the same index of [`Walk::handles`]).
struct Worker {
    rss_base_kib: u64,
    assigned: usize,
    held: usize,
}

struct Walk<'a> {
    args: &'a ConnArgs,
    step_args: &'a StepArgs,
    run: u32,
    http: reqwest::Client,
    gateways: Vec<Gateway>,
    workers: Vec<Worker>,
    handles: Vec<WorkerHandle>,
    watch: Arc<MemWatch>,
    baseline: MemInfo,
    redis_baseline: Option<RedisMemory>,
    started: Instant,
    deadline: Instant,
    floor_kib: u64,
    /// MemAvailable a broadcast took per held connection, last time.
    bcast_per_conn_kib: f64,
}

pub async fn run(args: ConnArgs) -> anyhow::Result<()> {
    let sa = args.steps.clone();
    if sa.steps.windows(2).any(|w| w[1] <= w[0]) || sa.steps[0] == 0 {
        bail!("--steps must be increasing and above 0: {:?}", sa.steps);
    }
    if sa.gateway_cmd.is_none() && args.gateways.is_empty() {
        bail!("--steps needs --gateway or --gateway-cmd");
    }
    if args.per_worker == 0 || sa.per_gateway == 0 {
        bail!("--per-worker and --per-gateway must be at least 1");
    }
    let client_mode = args.client.client_mode.resolve(args.client.codec)?.as_str();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout);
    let baseline = meminfo()?;
    let redis_baseline = match &sa.redis_url {
        Some(u) => Some(
            redis_memory(u)
                .await
                .context("Redis INFO before the walk")?,
        ),
        None => None,
    };
    let (watch, sampler) = MemWatch::start(deadline + Duration::from_secs(600))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;

    // Gateways given on the command line: with --gateway-cmd they count as
    // the first ones (--per-gateway each); without it they share the
    // largest step evenly.
    let max_step = *sa.steps.last().expect("steps not empty");
    let fixed_capacity = match sa.gateway_cmd {
        Some(_) => sa.per_gateway,
        None => max_step.div_ceil(args.gateways.len()),
    };
    let gateways = args
        .gateways
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let pid = args.gateway_pids.get(i).copied();
            Gateway {
                url: url.clone(),
                pid,
                child: None,
                rss_base_kib: pid.and_then(|p| rss_kib(p).ok()).unwrap_or(0),
                assigned: 0,
                capacity: fixed_capacity,
            }
        })
        .collect();

    let mut walk = Walk {
        args: &args,
        step_args: &sa,
        run: crate::stamp::run_nonce(),
        http,
        gateways,
        workers: Vec::new(),
        handles: Vec::new(),
        watch,
        baseline,
        redis_baseline,
        started,
        deadline,
        floor_kib: sa.mem_floor_mib * 1024,
        bcast_per_conn_kib: 0.0,
    };
    let mut report = WalkReport {
        steps_requested: sa.steps.clone(),
        per_gateway: sa.per_gateway,
        per_worker: args.per_worker,
        mem_floor_mib: sa.mem_floor_mib,
        timeout_secs: args.timeout,
        client_mode,
        baseline,
        redis_baseline,
        steps: Vec::new(),
        completed: false,
        stop_reason: String::new(),
        max_held: 0,
        elapsed_secs: 0.0,
    };
    println!(
        "== herald-loadtest conn --steps {:?}: floor {} MiB MemAvailable ({} MiB now), bound {} s ==",
        sa.steps,
        sa.mem_floor_mib,
        baseline.mem_available_kib / 1024,
        args.timeout
    );
    print_header();
    let result = walk_steps(&mut walk, &mut report).await;
    report.elapsed_secs = started.elapsed().as_secs_f64();
    report.max_held = report.steps.iter().map(|s| s.held).max().unwrap_or(0);
    match &result {
        Ok(reason) => report.stop_reason = reason.clone(),
        Err(e) => report.stop_reason = format!("error: {e:#}"),
    }
    report.completed = result.as_ref().is_ok_and(|r| r == DONE);

    // Workers first (their sockets close), then the gateways.
    let Walk {
        handles, gateways, ..
    } = walk;
    join_all(handles.into_iter().map(WorkerHandle::close)).await;
    join_all(gateways.into_iter().map(stop_gateway)).await;
    sampler.abort();

    println!();
    print_header();
    for s in &report.steps {
        print_row(s);
    }
    println!(
        "stopped: {} (max held {}, {:.1} s)",
        report.stop_reason, report.max_held, report.elapsed_secs
    );
    write_report(&args, &report)?;
    result.map(|_| ())
}

const DONE: &str = "done: every step";

fn write_report(args: &ConnArgs, report: &WalkReport) -> anyhow::Result<()> {
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_string_pretty(report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Runs the steps; `Ok(why it stopped)`.
async fn walk_steps(walk: &mut Walk<'_>, report: &mut WalkReport) -> anyhow::Result<String> {
    let steps = walk.step_args.steps.clone();
    for (k, &target) in steps.iter().enumerate() {
        let step_started = Instant::now();
        if Instant::now() >= walk.deadline {
            return Ok(format!(
                "time bound ({} s) before step {}",
                walk.args.timeout,
                k + 1
            ));
        }
        let now = meminfo()?;
        let held: usize = walk.workers.iter().map(|w| w.held).sum();
        let need = target.saturating_sub(held);
        if now.mem_available_kib < walk.floor_kib {
            return Ok(format!(
                "memory floor before step {}: MemAvailable {} MiB < {} MiB",
                k + 1,
                now.mem_available_kib / 1024,
                walk.step_args.mem_floor_mib
            ));
        }
        if let Some(prev) = report.steps.last() {
            if let Some(why) = projection(walk, prev, now, need, target) {
                return Ok(format!("before step {} ({target}): {why}", k + 1));
            }
        }
        walk.watch.reset_min();
        let step = one_step(walk, k, target, need, step_started).await?;
        let halted = step.halted.clone();
        let no_broadcast = step.broadcast.is_none();
        print_row(&step);
        report.steps.push(step);
        write_report(walk.args, report)?;
        if let Some(why) = halted {
            return Ok(format!("step {} cut short: {why}", k + 1));
        }
        if no_broadcast {
            return Ok(format!(
                "step {}: its broadcast would take MemAvailable below {} MiB: skipped",
                k + 1,
                walk.step_args.mem_floor_mib
            ));
        }
    }
    Ok(DONE.into())
}

/// Why the next step should not be tried: its memory (connections and
/// broadcast, at the rates measured so far) or its time would cross the
/// bounds.
fn projection(
    walk: &Walk<'_>,
    prev: &StepReport,
    now: MemInfo,
    need: usize,
    target: usize,
) -> Option<String> {
    if prev.held == 0 {
        return None;
    }
    let per_conn = walk
        .baseline
        .mem_available_kib
        .saturating_sub(prev.mem_available_idle_kib) as f64
        / prev.held as f64;
    let projected = now.mem_available_kib as f64
        - need as f64 * per_conn
        - target as f64 * walk.bcast_per_conn_kib;
    if projected < walk.floor_kib as f64 {
        return Some(format!(
            "MemAvailable would fall to about {:.0} MiB < {} MiB ({} MiB now; {:.2} KiB per connection held, {:.2} KiB more per connection during a broadcast)",
            projected / 1024.0,
            walk.step_args.mem_floor_mib,
            now.mem_available_kib / 1024,
            per_conn,
            walk.bcast_per_conn_kib
        ));
    }
    if prev.opened > 0 {
        let est = prev.step_secs * need as f64 / prev.opened as f64;
        let left = walk
            .deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64();
        if est > left {
            return Some(format!(
                "it would take about {est:.0} s, {left:.0} s are left of the time bound"
            ));
        }
    }
    None
}

/// Starts gateways and workers until there is room for `need` more.
async fn make_room(walk: &mut Walk<'_>, need: usize) -> anyhow::Result<()> {
    let args = walk.args;
    while walk.gateways.iter().map(Gateway::free).sum::<usize>() < need {
        let Some(cmd) = &walk.step_args.gateway_cmd else {
            bail!("the gateways have no room for {need} more connections");
        };
        let g = start_gateway(
            cmd,
            walk.gateways.len(),
            walk.step_args.per_gateway,
            &walk.http,
        )
        .await?;
        walk.gateways.push(g);
    }
    let free = |w: &Worker| args.per_worker.saturating_sub(w.assigned);
    let first_new = walk.workers.len();
    while walk.workers.iter().map(free).sum::<usize>() < need {
        let id = walk.workers.len();
        let urls: Vec<String> = walk.gateways.iter().map(|g| g.url.clone()).collect();
        let handle = WorkerHandle::spawn(&WorkerSpec {
            worker_id: args.worker_id_base + id,
            gateways: &urls,
            first: 0,
            count: 0,
            source_ip: worker_source_ip(args.source_ip_base, id),
            run: walk.run,
            timeout: Duration::from_secs(args.timeout + 300),
            client: &args.client,
        })?;
        walk.handles.push(handle);
        walk.workers.push(Worker {
            rss_base_kib: 0,
            assigned: 0,
            held: 0,
        });
    }
    let hello = Instant::now() + Duration::from_secs(30);
    for id in first_new..walk.workers.len() {
        let h = &mut walk.handles[id];
        h.expect_hello(hello).await?;
        // Before it connects anything (its reactor threads already run).
        walk.workers[id].rss_base_kib = h.pid().and_then(|p| rss_kib(p).ok()).unwrap_or(0);
    }
    Ok(())
}

async fn one_step(
    walk: &mut Walk<'_>,
    k: usize,
    target: usize,
    need: usize,
    step_started: Instant,
) -> anyhow::Result<StepReport> {
    let args = walk.args;
    let mem_before = walk.watch.latest();
    make_room(walk, need).await?;

    // Who opens what: the gateways and workers with room, filled in order.
    let gw_free: Vec<usize> = walk.gateways.iter().map(Gateway::free).collect();
    let wk_free: Vec<usize> = (walk.workers.iter())
        .map(|w| args.per_worker.saturating_sub(w.assigned))
        .collect();
    let plan = pair(&fill(&gw_free, need), &fill(&wk_free, need));
    let mut adds = Vec::new();
    for (w, targets) in &plan {
        let mut list = Vec::new();
        for &(g, n) in targets {
            walk.gateways[g].assigned += n;
            walk.workers[*w].assigned += n;
            list.push(AddTarget {
                gateway: walk.gateways[g].url.clone(),
                count: n,
            });
        }
        adds.push((*w, list));
    }
    tracing::info!(
        step = k + 1,
        target,
        need,
        gateways = walk.gateways.len(),
        workers = walk.workers.len(),
        "connecting"
    );

    // Connect, halting at the floor or the time bound.
    let go_us = unix_micros();
    let grace = Duration::from_secs(
        args.client.connect_timeout * (u64::from(args.client.retries) + 1) + 60,
    );
    let (floor, deadline, watch) = (walk.floor_kib, walk.deadline, walk.watch.clone());
    let (connected, halted) = add_connections(
        &mut walk.handles,
        adds,
        deadline + grace,
        Duration::from_millis(250),
        || {
            let avail = watch.latest();
            if avail < floor {
                Some(format!(
                    "MemAvailable {} MiB < floor {} MiB",
                    avail / 1024,
                    floor / 1024
                ))
            } else if Instant::now() >= deadline {
                Some("time bound".into())
            } else {
                None
            }
        },
    )
    .await?;
    // The events came in the order the adds were sent.
    for ((w, _), &h) in plan.iter().zip(&connected.held_per_worker) {
        walk.workers[*w].held = h;
    }
    let connect_secs = connected.last_connect_us.saturating_sub(go_us) as f64 / 1e6;
    tracing::info!(
        step = k + 1,
        ok = connected.ok,
        failed = connected.failed,
        skipped = connected.skipped,
        connect_secs,
        "step connected"
    );

    // Settle, then the idle figures.
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let mut held: usize = walk.workers.iter().map(|w| w.held).sum();
    let idle = meminfo()?;
    let redis = match &walk.step_args.redis_url {
        Some(u) => match redis_memory(u).await {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!("Redis INFO: {e:#}");
                None
            }
        },
        None => None,
    };
    let gw_pids: Vec<u32> = walk.gateways.iter().filter_map(|g| g.pid).collect();
    let gateway_rss: u64 = gw_pids.iter().filter_map(|&p| rss_kib(p).ok()).sum();
    let gateway_base: u64 = (walk.gateways.iter())
        .filter(|g| g.pid.is_some())
        .map(|g| g.rss_base_kib)
        .sum();
    let loadgen_rss: u64 = (walk.handles.iter())
        .filter_map(|h| h.pid().and_then(|p| rss_kib(p).ok()))
        .sum();
    let loadgen_base: u64 = walk.workers.iter().map(|w| w.rss_base_kib).sum();

    // The broadcast, unless it would take the machine below the floor.
    let projected = idle.mem_available_kib as f64 - held as f64 * walk.bcast_per_conn_kib;
    let broadcast = if held == 0 || projected < walk.floor_kib as f64 {
        tracing::warn!(held, projected_mib = projected / 1024.0, "no broadcast");
        None
    } else {
        let b = broadcast(walk, k as u32, &gw_pids).await?;
        held = b.expected;
        walk.bcast_per_conn_kib = idle
            .mem_available_kib
            .saturating_sub(b.mem_available_min_kib) as f64
            / held.max(1) as f64;
        Some(b)
    };

    let per = |v: f64| if held > 0 { v / held as f64 } else { 0.0 };
    let growth = |now: u64, base: u64| per(now as f64 - base as f64);
    Ok(StepReport {
        step: k + 1,
        target,
        held,
        opened: connected.ok,
        failed: connected.failed,
        skipped: connected.skipped,
        retries: connected.retries,
        connect_errors: connected.errors,
        gateways: walk.gateways.len(),
        workers: walk.workers.len(),
        connect_secs,
        connects_per_sec: if connect_secs > 0.0 {
            connected.ok as f64 / connect_secs
        } else {
            0.0
        },
        connect_latency: connected.latency.summary(),
        gateway_rss_kib: gateway_rss,
        gateway_rss_base_kib: gateway_base,
        gateway_rss_per_conn_kib: growth(gateway_rss, gateway_base),
        slab_kib: idle.slab_kib,
        sunreclaim_kib: idle.sunreclaim_kib,
        slab_per_conn_kib: growth(idle.slab_kib, walk.baseline.slab_kib),
        sunreclaim_per_conn_kib: growth(idle.sunreclaim_kib, walk.baseline.sunreclaim_kib),
        redis_used_memory_kib: redis.map(|r| r.used_memory / 1024),
        redis_used_memory_rss_kib: redis.map(|r| r.used_memory_rss / 1024),
        redis_used_per_conn_kib: match (redis, walk.redis_baseline) {
            (Some(now), Some(base)) => Some(growth(now.used_memory, base.used_memory) / 1024.0),
            _ => None,
        },
        loadgen_rss_kib: loadgen_rss,
        loadgen_rss_per_conn_kib: growth(loadgen_rss, loadgen_base),
        mem_available_before_kib: mem_before,
        mem_available_idle_kib: idle.mem_available_kib,
        mem_available_min_kib: walk.watch.min(),
        mem_used_per_conn_kib: growth(walk.baseline.mem_available_kib, idle.mem_available_kib),
        broadcast,
        step_secs: step_started.elapsed().as_secs_f64(),
        elapsed_secs: walk.started.elapsed().as_secs_f64(),
        halted,
    })
}

/// One broadcast to everyone (round `round`), until every held connection
/// has it or `--round-timeout`.
async fn broadcast(
    walk: &mut Walk<'_>,
    round: u32,
    gw_pids: &[u32],
) -> anyhow::Result<BroadcastReport> {
    let args = walk.args;
    let targets: Vec<String> = match args.post_to {
        PostTo::First => walk
            .gateways
            .iter()
            .take(1)
            .map(|g| g.url.clone())
            .collect(),
        PostTo::All => walk.gateways.iter().map(|g| g.url.clone()).collect(),
    };
    let cpu = |pids: &[u32]| -> u64 { pids.iter().filter_map(|&p| cpu_micros(p).ok()).sum() };
    let cpu_before = cpu(gw_pids);
    walk.watch.reset_min();
    let sent_us = unix_micros();
    let body = serde_json::json!({
        "to": {"all": true},
        "category": "announcement",
        "body": format!("loadtest step {}", round + 1),
        "data": {RUN_FIELD: walk.run, ROUND_FIELD: round, SENT_FIELD: sent_us},
    });
    for r in join_all(
        targets
            .iter()
            .map(|t| post_message(&walk.http, t, &args.api_key, &body)),
    )
    .await
    {
        r?;
    }
    let round_deadline = Instant::now() + Duration::from_secs(args.round_timeout);
    // Workers that hold nothing would only answer at the deadline.
    let holding: Vec<bool> = walk.workers.iter().map(|w| w.held > 0).collect();
    let reports = join_all(
        (walk.handles.iter_mut())
            .zip(holding)
            .filter(|(_, h)| *h)
            .map(|(w, _)| w.round_report(round, round_deadline)),
    )
    .await;
    let (mut got, mut want, mut dropped, mut dups, mut last) = (0usize, 0usize, 0usize, 0u64, 0u64);
    let mut latency = LatencyHist::new();
    for r in reports {
        if let WorkerEvent::Round {
            received,
            expected,
            last_recv_us,
            latencies,
            dropped: d,
            duplicates,
            ..
        } = r?
        {
            got += received;
            want += expected;
            dropped += d;
            dups += duplicates;
            last = last.max(last_recv_us);
            latency.merge_buckets(&latencies);
        }
    }
    let cpu_used = cpu(gw_pids).saturating_sub(cpu_before);
    let all_us = last.saturating_sub(sent_us);
    tracing::info!(round, received = got, expected = want, all_received = %fmt_us(all_us), "broadcast done");
    Ok(BroadcastReport {
        received: got,
        expected: want,
        dropped,
        duplicates: dups,
        complete: got == want,
        all_received_us: all_us,
        delivery_latency: latency.summary(),
        gateway_cpu_us_per_delivery: cpu_used as f64 / got.max(1) as f64,
        mem_available_min_kib: walk.watch.min(),
    })
}

fn print_header() {
    println!(
        "{:>4} {:>9} {:>7} {:>12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>20} {:>12} {:>8}",
        "step",
        "held",
        "gw/wk",
        "connect",
        "gw KiB",
        "slab",
        "unrecl",
        "redis",
        "loadgen",
        "all",
        "broadcast all rcvd",
        "avail idle/",
        "elapsed"
    );
    println!(
        "{:>4} {:>9} {:>7} {:>12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>20} {:>12} {:>8}",
        "",
        "",
        "",
        "s (conn/s)",
        "/conn",
        "KiB/conn",
        "KiB/conn",
        "KiB/conn",
        "KiB/conn",
        "KiB/conn",
        "(got/want)",
        "min MiB",
        "s"
    );
}

fn print_row(s: &StepReport) {
    let bcast = match &s.broadcast {
        Some(b) => format!(
            "{} ({}/{})",
            fmt_us(b.all_received_us),
            b.received,
            b.expected
        ),
        None => "skipped".into(),
    };
    let redis = s
        .redis_used_per_conn_kib
        .map_or("-".into(), |v| format!("{v:.2}"));
    println!(
        "{:>4} {:>9} {:>7} {:>12} {:>8.2} {:>8.2} {:>8.2} {:>8} {:>8.2} {:>7.1} {:>20} {:>12} {:>8.1}",
        s.step,
        s.held,
        format!("{}/{}", s.gateways, s.workers),
        format!("{:.1} ({:.0})", s.connect_secs, s.connects_per_sec),
        s.gateway_rss_per_conn_kib,
        s.slab_per_conn_kib,
        s.sunreclaim_per_conn_kib,
        redis,
        s.loadgen_rss_per_conn_kib,
        s.mem_used_per_conn_kib,
        bcast,
        format!(
            "{}/{}",
            s.mem_available_idle_kib / 1024,
            s.mem_available_min_kib / 1024
        ),
        s.elapsed_secs
    );
    if s.failed > 0 || s.skipped > 0 {
        println!(
            "     step {}: {} failed, {} not attempted; errors: {:?}",
            s.step, s.failed, s.skipped, s.connect_errors
        );
    }
    if let Some(h) = &s.halted {
        println!("     step {} cut short: {h}", s.step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminfo() {
        let text = "MemTotal:       24684544 kB\nMemAvailable:   23491232 kB\nSlab:             512000 kB\nSReclaimable:     300000 kB\nSUnreclaim:       212000 kB\n";
        assert_eq!(
            parse_meminfo(text),
            Some(MemInfo {
                mem_available_kib: 23_491_232,
                slab_kib: 512_000,
                sunreclaim_kib: 212_000,
            })
        );
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        assert!(meminfo().unwrap().mem_available_kib > 0);
    }

    #[test]
    fn reads_redis_info_memory() {
        let info = "# Memory\r\nused_memory:1000448\r\nused_memory_human:977.00K\r\nused_memory_rss:7000064\r\nused_memory_rss_human:6.68M\r\nused_memory_peak:1000448\r\n";
        assert_eq!(
            parse_info_memory(info),
            Some(RedisMemory {
                used_memory: 1_000_448,
                used_memory_rss: 7_000_064,
            })
        );
    }

    #[test]
    fn redis_urls() {
        let p = |u| parse_redis_url(u).unwrap();
        assert_eq!(
            p("redis://127.0.0.1:7000"),
            ("127.0.0.1:7000".into(), None, None)
        );
        assert_eq!(p("redis://h"), ("h:6379".into(), None, None));
        assert_eq!(
            p("redis://:pw@h:1/0"),
            ("h:1".into(), None, Some("pw".into()))
        );
        assert_eq!(
            p("redis://u:pw@h:1"),
            ("h:1".into(), Some("u".into()), Some("pw".into()))
        );
        assert!(parse_redis_url("rediss://h:1").is_err());
    }

    #[tokio::test]
    async fn reads_redis_memory_over_resp() {
        let redis = tokio::task::spawn_blocking(herald_testing::RedisServer::start)
            .await
            .unwrap();
        let memory = redis_memory(&redis.url()).await.unwrap();
        assert!(
            memory.used_memory > 0 && memory.used_memory_rss > 0,
            "{memory:?}"
        );
        assert!(redis_memory("redis://127.0.0.1:1").await.is_err());
    }

    #[test]
    fn steps_fill_gateways_and_workers_in_order() {
        // Step 1: 20,000 on empty gateways and workers of 19,000.
        let g = fill(&[19_000, 19_000], 20_000);
        assert_eq!(g, vec![(0, 19_000), (1, 1_000)]);
        let w = fill(&[19_000, 19_000], 20_000);
        assert_eq!(
            pair(&g, &w),
            vec![(0, vec![(0, 19_000)]), (1, vec![(1, 1_000)])]
        );
        // Step 2: 20,000 more; gateway 1 and worker 1 have 18,000 left.
        let g = fill(&[0, 18_000, 19_000], 20_000);
        let w = fill(&[0, 18_000, 19_000], 20_000);
        assert_eq!(g, vec![(1, 18_000), (2, 2_000)]);
        assert_eq!(
            pair(&g, &w),
            vec![(1, vec![(1, 18_000)]), (2, vec![(2, 2_000)])]
        );
        // Pieces that do not line up are split.
        let p = pair(&[(0, 5), (1, 10)], &[(3, 8), (4, 7)]);
        assert_eq!(p, vec![(3, vec![(0, 5), (1, 3)]), (4, vec![(1, 7)])]);
        for (need, free) in [(0, vec![5]), (7, vec![3, 0, 9]), (30, vec![10, 10])] {
            let f = fill(&free, need);
            assert_eq!(
                f.iter().map(|x| x.1).sum::<usize>(),
                need.min(free.iter().sum())
            );
            assert!(f.iter().all(|&(i, n)| n > 0 && n <= free[i]));
        }
    }
}
