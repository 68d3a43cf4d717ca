//! The monitoring files in `deploy/` against a real Prometheus: two real
//! `herald` nodes on real Redis with clients on them, scraped every second
//! by a `prometheus` process (Debian package `prometheus`,
//! `scripts/check-prometheus.sh` installs it) that also loads
//! `deploy/prometheus/alerts.yml`. Through its HTTP API:
//!
//! - every query of every panel of `deploy/grafana/herald.json` (template
//!   variables given concrete values) and every alert expression parses,
//!   and returns data — except the ones named in [`MAY_BE_EMPTY`], which must
//!   return an empty vector here since nothing failed;
//! - no alert expression holds and no alert is pending or firing in this
//!   healthy cluster, and every rule Prometheus loaded evaluates cleanly;
//! - every metric any of them names has series, except [`MAY_BE_EMPTY`]
//!   (and [`HOST_DEPENDENT`] where the host lacks them);
//! - the dashboard's variable queries find both nodes;
//! - the connection count Prometheus sees equals the clients this test holds.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::process::ProcessNode;
use common::{free_port, Api, Client};
use herald_protocol::Codec;
use herald_testing::RedisServer;
use serde_json::{json, Value};

/// Every wait on Prometheus gives up after this long.
const DEADLINE: Duration = Duration::from_secs(45);

/// The job name the alert rules select (`job="herald"`) and the dashboard's
/// `$job` default.
const JOB: &str = "herald";

/// Metrics that have no series in a healthy cluster: a Redis error counter
/// (labelled by kind) appears only after the first error. A query naming one
/// must still parse, and must return an empty vector here.
const MAY_BE_EMPTY: &[&str] = &["herald_redis_errors_total"];

/// Metrics a node serves only where the host has them: netfilter's
/// conntrack table (`/proc/sys/net/netfilter`, read by the nodes this test
/// starts on this host). Where it is loaded they must have series, where
/// not none, like [`MAY_BE_EMPTY`].
const HOST_DEPENDENT: &[&str] = &["herald_conntrack_entries", "herald_conntrack_limit"];

/// Whether the [`HOST_DEPENDENT`] metrics have series on this host.
fn conntrack_loaded() -> bool {
    Path::new("/proc/sys/net/netfilter/nf_conntrack_max").exists()
        && Path::new("/proc/sys/net/netfilter/nf_conntrack_count").exists()
}

/// Whether `name` has no series in this healthy cluster on this host.
fn absent_here(name: &str) -> bool {
    MAY_BE_EMPTY.contains(&name) || (HOST_DEPENDENT.contains(&name) && !conntrack_loaded())
}

/// The values given to the dashboard's template variables, as Grafana would
/// with "All" selected. `$__rate_interval` is 4 scrape intervals or more.
const VARIABLES: &[(&str, &str)] = &[
    ("__rate_interval", "10s"),
    ("__interval", "5s"),
    ("__range", "5m"),
    ("job", JOB),
    ("node", ".*"),
    ("instance", ".*"),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// `name` in `PATH`; panics saying how to install it.
fn binary(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "{name} not found in PATH: this test starts a real Prometheus; \
                 run ./scripts/check-prometheus.sh (installs the Debian package prometheus)"
            )
        })
}

/// A `prometheus` process with its own config and storage in a temporary
/// directory; killed, and the directory removed, on drop.
struct Prometheus {
    child: Option<Child>,
    dir: PathBuf,
    base: String,
    http: reqwest::Client,
}

/// The namespace label the scrape config gives every target.
const NAMESPACE: &str = "herald";

impl Prometheus {
    /// Scrapes `targets`' `/metrics` every second as job [`JOB`] and
    /// evaluates `rules` every second.
    async fn start(targets: &[SocketAddr], rules: &Path) -> Prometheus {
        let bin = binary("prometheus");
        let dir = std::env::temp_dir().join(format!(
            "herald-prometheus-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        // Each target labelled as Kubernetes service discovery would
        // (namespace, pod), so the prometheus-adapter rule can be exercised.
        let static_configs: String = targets
            .iter()
            .enumerate()
            .map(|(i, a)| {
                format!(
                    "      - targets: [\"{a}\"]\n        labels: {{namespace: {NAMESPACE}, pod: pod-{i}}}\n"
                )
            })
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - \"{rules}\"\n\
             scrape_configs:\n  - job_name: {JOB}\n    metrics_path: /metrics\n    \
             static_configs:\n{static_configs}",
            rules = rules.display(),
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let prometheus = Prometheus {
            child: Some(child),
            dir,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
        };
        let ready = format!("{}/-/ready", prometheus.base);
        prometheus
            .until("Prometheus ready", || async {
                let r = prometheus.http.get(&ready).send().await;
                r.is_ok_and(|r| r.status() == 200).then_some(())
            })
            .await;
        prometheus
    }

    /// Polls `check` until it gives a value; panics after [`DEADLINE`] with
    /// Prometheus's log.
    async fn until<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("--- prometheus.log (last lines) ---\n{}", tail.join("\n"))
    }

    /// GET `path` with `params`; the JSON body (Prometheus answers JSON for
    /// errors too).
    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base)).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        let resp = self.http.get(url).send().await.expect("Prometheus answers");
        resp.json().await.expect("Prometheus answers JSON")
    }

    /// An instant query: `Ok(result vector)` or `Err(why)` when it does not
    /// parse or is not a vector.
    async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let body = self.get("/api/v1/query", &[("query", expr)]).await;
        if body["status"] != "success" {
            return Err(format!(
                "{}: {}",
                body["errorType"].as_str().unwrap_or("?"),
                body["error"].as_str().unwrap_or("?")
            ));
        }
        match body["data"]["resultType"].as_str() {
            Some("vector") => Ok(body["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default()),
            other => Err(format!("result type {other:?}, not a vector")),
        }
    }

    /// The single value of `expr`, when it has exactly one series.
    async fn value(&self, expr: &str) -> Option<f64> {
        match self.query(expr).await {
            Ok(v) if v.len() == 1 => v[0]["value"][1].as_str()?.parse().ok(),
            Ok(_) => None,
            Err(e) => panic!("{expr}: {e}"),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log());
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One PromQL query of the dashboard or the rules, and where it comes from.
struct Query {
    what: String,
    expr: String,
}

/// Gives the dashboard's template variables their [`VARIABLES`] values;
/// panics on any variable left (a new one must be given a value here).
fn substitute(expr: &str) -> String {
    let mut out = expr.to_owned();
    for (name, value) in VARIABLES {
        out = out.replace(&format!("${{{name}}}"), value);
        out = out.replace(&format!("${name}"), value);
    }
    assert!(
        !out.contains('$'),
        "a template variable without a test value in {expr:?}: add it to VARIABLES"
    );
    out
}

/// Every panel (rows' nested panels included) of the dashboard.
fn panels(items: &[Value], out: &mut Vec<Value>) {
    for p in items {
        out.push(p.clone());
        if let Some(nested) = p["panels"].as_array() {
            panels(nested, out);
        }
    }
}

/// Every query of every panel of `deploy/grafana/herald.json`, variables
/// substituted; and the dashboard itself.
fn dashboard_queries(root: &Path) -> (Value, Vec<Query>) {
    let path = root.join("deploy/grafana/herald.json");
    let text = std::fs::read_to_string(&path).expect("read deploy/grafana/herald.json");
    let dashboard: Value = serde_json::from_str(&text).expect("herald.json parses");
    let mut all = Vec::new();
    panels(dashboard["panels"].as_array().expect("panels"), &mut all);
    let mut queries = Vec::new();
    for p in all.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().unwrap_or("<untitled>");
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(
                !expr.trim().is_empty(),
                "panel {title:?}: a target without expr"
            );
            queries.push(Query {
                what: format!("panel {title:?} {}", t["refId"].as_str().unwrap_or("")),
                expr: substitute(expr),
            });
        }
    }
    (dashboard, queries)
}

/// The alert names of `deploy/prometheus/alerts.yml` (`- alert: Name`
/// lines); their expressions come from Prometheus, which loaded the file.
fn alert_names(rules: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(rules).expect("read alerts.yml");
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("- alert:"))
        .map(|name| name.trim().to_owned())
        .collect()
}

/// The metric names a query selects: identifiers followed by `{`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        let ident = b.is_ascii_alphanumeric() || b == b'_' || b == b':';
        match (ident, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if b == b'{' && !bytes[s].is_ascii_digit() {
                    names.insert(expr[s..i].to_owned());
                }
                start = None;
            }
            _ => {}
        }
    }
    names
}

fn may_be_empty(expr: &str) -> bool {
    metric_names(expr).iter().any(|m| absent_here(m))
}

async fn read_messages(client: &mut Client, n: usize) {
    for _ in 0..n {
        client.message().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_two_nodes_and_every_dashboard_query_and_alert_evaluates() {
    let root = repo_root();
    let rules = root.join("deploy/prometheus/alerts.yml");
    let (dashboard, panel_queries) = dashboard_queries(&root);
    let alerts = alert_names(&rules);
    assert_eq!(alerts.len(), 11, "alerts in alerts.yml: {alerts:?}");
    // Fail on a missing binary before starting anything.
    binary("prometheus");

    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let a = ProcessNode::start("node-a", &redis.url(), &[]).await;
    let b = ProcessNode::start("node-b", &redis.url(), &[]).await;
    let prom = Prometheus::start(&[a.addr, b.addr], &rules).await;
    let up = format!("sum(up{{job=\"{JOB}\"}})");
    prom.until("both targets up", || async {
        (prom.value(&up).await == Some(2.0)).then_some(())
    })
    .await;

    // Clients held: 4 on node-a, 3 on node-b (one of them MessagePack).
    let mut held = Vec::new();
    for u in ["u0", "u1", "u2", "u3"] {
        held.push(a.connect(u).await);
    }
    for u in ["u4", "u5"] {
        held.push(b.connect(u).await);
    }
    held.push(b.connect_with("u6", Codec::MsgPack, None).await);
    // One that leaves (a disconnect), one refused at the handshake.
    let mut gone = a.connect("u7").await;
    gone.ws.close(None).await.unwrap();
    gone.closed().await;
    drop(gone);
    let refused = reqwest::get(b.http("/ws?token=not-a-token")).await.unwrap();
    assert_eq!(refused.status(), 401);

    // Messages through every entry point, read by the clients (live
    // deliveries, so the latency histogram has observations).
    a.send_to(&["u0", "u4"], "api").await; // api, both nodes
    let (status, body) = b
        .post_to(
            "/v1/messages/batch",
            json!({"messages": [
                {"to": {"users": ["u1"]}, "category": "remind", "body": "batch one"},
                {"to": {"users": ["u5"]}, "category": "system", "body": "batch two"},
            ]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let reply = held[2].send_private("r1", "u5", "ws").await; // ws from u2, node-a -> node-b
    assert!(reply.ok, "{reply:?}");
    let (status, body) = a
        .post(json!({"to": {"all": true}, "category": "announcement", "body": "all"}))
        .await;
    assert_eq!(status, 202, "{body}");
    // A publish to a topic u6 follows: a fan-out job on some node.
    let subscribed = reqwest::Client::new()
        .put(b.http("/v1/users/u6/topics/user:u0"))
        .bearer_auth(common::API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), 200);
    let (status, body) = a
        .post_to("/v1/topics/user:u0/messages", json!({"body": "new post"}))
        .await;
    assert_eq!(status, 202, "{body}");
    // u0: api + all; u1: batch + all; u2, u3: all; u4: api + all;
    // u5: batch + ws + all; u6: all + the publish.
    for (client, n) in held.iter_mut().zip([2, 2, 1, 1, 2, 3, 2]) {
        read_messages(client, n).await;
    }
    let clients = held.len() as f64;

    // The connection count Prometheus sees is the clients held, in total,
    // per node, and through the dashboard's own "Connections" panel.
    let total = format!("sum(herald_connections{{job=\"{JOB}\"}})");
    prom.until("sum(herald_connections) == clients held", || async {
        (prom.value(&total).await == Some(clients)).then_some(())
    })
    .await;
    let per_node = format!("sum by (node) (herald_connections{{job=\"{JOB}\"}})");
    let by_node: BTreeMap<String, f64> = prom
        .query(&per_node)
        .await
        .unwrap()
        .iter()
        .map(|s| {
            let node = s["metric"]["node"].as_str().unwrap().to_owned();
            (node, s["value"][1].as_str().unwrap().parse().unwrap())
        })
        .collect();
    assert_eq!(
        by_node,
        BTreeMap::from([("node-a".to_owned(), 4.0), ("node-b".to_owned(), 3.0)])
    );
    let stat = panel_queries
        .iter()
        .find(|q| q.what.starts_with("panel \"Connections\" "))
        .expect("a \"Connections\" panel");
    assert_eq!(prom.value(&stat.expr).await, Some(clients), "{}", stat.expr);

    // The autoscaler's query: prometheus-adapter's rule (k8s/) with its
    // placeholders filled as the adapter fills them for two pods.
    let adapter = std::fs::read_to_string(repo_root().join("k8s/prometheus-adapter/config.yaml"))
        .expect("k8s/prometheus-adapter/config.yaml");
    let field = |name: &str| -> String {
        let line = adapter
            .lines()
            .find(|l| {
                l.trim_start()
                    .trim_start_matches("- ")
                    .starts_with(&format!("{name}:"))
            })
            .unwrap_or_else(|| panic!("no {name} in the adapter rule"));
        let value = line.split_once(&format!("{name}:")).unwrap().1.trim();
        value.trim_matches('\'').to_owned()
    };
    let series = prom.query(&field("seriesQuery")).await.unwrap();
    assert!(
        !series.is_empty(),
        "the adapter's seriesQuery finds no series"
    );
    let per_pod = field("metricsQuery")
        .replace("<<.Series>>", "herald_connections")
        .replace(
            "<<.LabelMatchers>>",
            &format!("namespace=\"{NAMESPACE}\",pod=~\"pod-0|pod-1\""),
        )
        .replace("<<.GroupBy>>", "pod");
    let pods: f64 = prom
        .query(&per_pod)
        .await
        .unwrap()
        .iter()
        .map(|s| s["value"][1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(pods, clients, "{per_pod}");

    // Prometheus loaded every alert of alerts.yml, and each evaluates cleanly.
    let rule_queries: Vec<Query> = prom
        .until("every rule evaluated", || async {
            let body = prom.get("/api/v1/rules", &[]).await;
            let rules: Vec<Value> = body["data"]["groups"]
                .as_array()?
                .iter()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            let names: BTreeSet<String> = rules
                .iter()
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect();
            assert_eq!(names, alerts, "rules Prometheus loaded");
            for r in &rules {
                assert_eq!(r["type"], "alerting", "{r}");
                assert_ne!(r["health"], "err", "rule failed to evaluate: {r}");
            }
            rules.iter().all(|r| r["health"] == "ok").then(|| {
                rules
                    .iter()
                    .map(|r| Query {
                        what: format!("alert {}", r["name"].as_str().unwrap()),
                        expr: r["query"].as_str().unwrap().to_owned(),
                    })
                    .collect()
            })
        })
        .await;

    // Every query parses; a dashboard query returns data unless it names a
    // metric of MAY_BE_EMPTY, in which case it returns an empty vector; an
    // alert expression returns nothing in this healthy cluster. Counters
    // first used above need two scrapes for rate(): poll until all hold.
    let rule_names: BTreeSet<String> = rule_queries
        .iter()
        .flat_map(|q| metric_names(&q.expr))
        .collect();
    let mut pending: Vec<(Query, bool)> = panel_queries
        .into_iter()
        .map(|q| {
            let data = !may_be_empty(&q.expr);
            (q, data)
        })
        .chain(rule_queries.into_iter().map(|q| (q, false)))
        .collect();
    let checked = pending.len();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut left = Vec::new();
        for (q, data) in pending {
            match prom.query(&q.expr).await {
                Err(e) => panic!("{}: does not evaluate: {e}\n  {}", q.what, q.expr),
                Ok(result) if result.is_empty() != data => {}
                Ok(result) => left.push((q, data, result)),
            }
        }
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let report: Vec<String> = left
                .iter()
                .map(|(q, data, result)| {
                    let want = if *data { "data" } else { "an empty vector" };
                    format!(
                        "{}: expected {want}, got {result:?}\n    {}",
                        q.what, q.expr
                    )
                })
                .collect();
            panic!("queries not as expected:\n  {}", report.join("\n  "));
        }
        pending = left.into_iter().map(|(q, data, _)| (q, data)).collect();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Every metric named by the dashboard or the rules has series here
    // (except MAY_BE_EMPTY, which must have none): an alert that cannot fire
    // because its metric does not exist would pass the check above.
    let mut names = BTreeSet::new();
    let (_, queries) = dashboard_queries(&root);
    for q in &queries {
        names.extend(metric_names(&q.expr));
    }
    names.extend(rule_names);
    for name in &names {
        let series = prom
            .query(&format!("{name}{{job=\"{JOB}\"}}"))
            .await
            .unwrap();
        if absent_here(name) {
            assert!(
                series.is_empty(),
                "{name}: expected no series, got {series:?}"
            );
        } else {
            assert!(!series.is_empty(), "{name}: no series scraped");
        }
    }
    for must in [
        "herald_connections",
        "herald_delivery_latency_seconds_bucket",
        "herald_process_resident_memory_bytes",
        "herald_process_open_fds",
        "herald_redis_command_duration_seconds_bucket",
        "up",
    ] {
        assert!(
            names.contains(must),
            "{must} not among the names found: {names:?}"
        );
    }

    // The dashboard's variable queries (label_values(selector, label)).
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        let Some(def) = var["definition"].as_str() else {
            continue;
        };
        let inner = def
            .strip_prefix("label_values(")
            .and_then(|d| d.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: not label_values(…): {def}", var["name"]));
        let (selector, label) = inner.rsplit_once(',').unwrap();
        let selector = substitute(selector.trim());
        let body = prom
            .get(
                &format!("/api/v1/label/{}/values", label.trim()),
                &[("match[]", &selector)],
            )
            .await;
        assert_eq!(
            body["status"], "success",
            "variable {}: {body}",
            var["name"]
        );
        let values = body["data"].as_array().cloned().unwrap_or_default();
        match label.trim() {
            "node" => assert_eq!(values, vec![json!("node-a"), json!("node-b")]),
            "job" => assert_eq!(values, vec![json!(JOB)]),
            "instance" => assert_eq!(values.len(), 2, "{values:?}"),
            other => assert!(!values.is_empty(), "variable {other}: no values"),
        }
    }

    // Nothing is pending or firing in a healthy cluster.
    prom.until("no alert pending or firing", || async {
        let body = prom.get("/api/v1/alerts", &[]).await;
        body["data"]["alerts"]
            .as_array()
            .is_some_and(|a| a.is_empty())
            .then_some(())
    })
    .await;

    // Still every client held.
    assert_eq!(prom.value(&total).await, Some(clients));
    eprintln!(
        "checked {checked} queries ({} metric names) against Prometheus with {clients} clients",
        names.len()
    );
    drop(held);
}
