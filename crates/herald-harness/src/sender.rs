//! Messages through the server API (`POST /v1/messages`), with the book
//! every exactly-once check needs: the id and seq of each 202.
//!
//! A request either was accepted (202: stored, with its seqs), refused (a
//! 4xx: nothing stored) or has an unknown outcome (no answer, or a 5xx:
//! docs/protocol.md says a 503 may come after the store took it). Every
//! request is also logged (when, to which node, the status), for tests that
//! look at what the API answered during a fault. At most `concurrency`
//! requests are in flight; a sender that hits the bound falls behind its
//! schedule rather than queueing without end, and the achieved rate shows it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::check::Accepted;
use crate::latency::{LatencyHist, Summary};

/// What the sender did, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SendStats {
    pub dispatched: u64,
    /// Requests answered 202 with an id and seqs.
    pub accepted: u64,
    /// A 4xx: not stored.
    pub refused: u64,
    /// No answer (timeout, connection lost) or a 5xx: may have been stored.
    pub unknown: u64,
    /// From the request to its 202.
    pub accept_latency: Summary,
    pub first_error: Option<String>,
}

/// One request as the sender saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub started: Instant,
    pub took: Duration,
    /// The index of the node it went to.
    pub node: usize,
    /// The HTTP status; 0 without an answer.
    pub status: u16,
}

/// What one request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status; 0 without an answer.
    pub status: u16,
    /// The node could not be connected to (refused: it is gone).
    pub unreachable: bool,
}

/// Everything the sender records, shared with its request tasks.
struct Book<U> {
    accepted: Mutex<Vec<Accepted<U>>>,
    requests: Mutex<Vec<Request>>,
    dispatched: AtomicU64,
    accepted_requests: AtomicU64,
    refused: AtomicU64,
    unknown: AtomicU64,
    latency: Mutex<LatencyHist>,
    first_error: Mutex<Option<String>>,
}

impl<U> Book<U> {
    fn error(&self, e: String) {
        self.first_error
            .lock()
            .expect("error lock")
            .get_or_insert(e);
    }

    /// A request whose outcome is not known: counted, its error kept.
    fn unknown(&self, e: String) {
        self.unknown.fetch_add(1, Ordering::Relaxed);
        self.error(e);
    }
}

/// The user name the API knows a receiver `U` by.
type NameOf<U> = dyn Fn(&U) -> String + Send + Sync;

/// What the sender and its request tasks share.
struct Shared<U> {
    http: reqwest::Client,
    bases: Vec<String>,
    api_key: String,
    name_of: Box<NameOf<U>>,
    book: Book<U>,
}

/// Posts messages to the server API and books their outcome.
pub struct ApiSender<U> {
    shared: Arc<Shared<U>>,
    permits: Arc<Semaphore>,
    concurrency: u32,
    next: AtomicU64,
}

impl<U: Clone + Send + Sync + 'static> ApiSender<U> {
    /// A sender to the nodes at `bases` (`http://host:port`), at most
    /// `concurrency` requests in flight, each given up after `timeout`.
    /// The API names receivers `name_of(u)`.
    pub fn new(
        bases: Vec<String>,
        api_key: String,
        concurrency: usize,
        timeout: Duration,
        name_of: impl Fn(&U) -> String + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!bases.is_empty(), "the sender needs a node to post to");
        let concurrency = concurrency.clamp(1, 4096);
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .tcp_nodelay(true)
            .timeout(timeout)
            .build()?;
        let book = Book {
            accepted: Mutex::default(),
            requests: Mutex::default(),
            dispatched: AtomicU64::new(0),
            accepted_requests: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            latency: Mutex::default(),
            first_error: Mutex::default(),
        };
        Ok(ApiSender {
            shared: Arc::new(Shared {
                http,
                bases,
                api_key,
                name_of: Box::new(name_of),
                book,
            }),
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency: concurrency as u32,
            next: AtomicU64::new(0),
        })
    }

    /// Posts `body` (a message addressed to `to`) to the next node in
    /// turn; returns once the request is under way (waits for a free slot).
    pub async fn post(&self, to: Vec<U>, body: serde_json::Value) {
        let n = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        self.post_to(n % self.shared.bases.len(), to, body).await;
    }

    /// Posts `body` (a message addressed to `to`) to node `node`; returns
    /// once the request is under way (waits for a free slot).
    pub async fn post_to(&self, node: usize, to: Vec<U>, body: serde_json::Value) {
        let permit = self.permits.clone().acquire_owned().await.expect("open");
        let shared = self.shared.clone();
        tokio::spawn(async move {
            shared.exchange(node, &to, &body).await;
            drop(permit);
        });
    }

    /// Posts `body` (a message addressed to `to`) to node `node` and waits
    /// for the answer.
    pub async fn send(&self, node: usize, to: Vec<U>, body: serde_json::Value) -> Answer {
        let _permit = self.permits.acquire().await.expect("open");
        self.shared.exchange(node, &to, &body).await
    }

    /// Waits (at most `limit`) until no request is in flight.
    pub async fn drain(&self, limit: Duration) {
        let all = self.permits.acquire_many(self.concurrency);
        if let Ok(Ok(p)) = tokio::time::timeout(limit, all).await {
            drop(p);
        }
    }

    /// Every accepted message so far, one per receiver.
    pub fn accepted(&self) -> Vec<Accepted<U>> {
        let book = &self.shared.book;
        book.accepted.lock().expect("accepted lock").clone()
    }

    /// Requests accepted so far.
    pub fn accepted_count(&self) -> u64 {
        self.shared.book.accepted_requests.load(Ordering::Relaxed)
    }

    /// Every request answered so far, in the order the answers came.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.book.requests.lock().expect("log lock").clone()
    }

    pub fn stats(&self) -> SendStats {
        let b = &self.shared.book;
        SendStats {
            dispatched: b.dispatched.load(Ordering::Relaxed),
            accepted: self.accepted_count(),
            refused: b.refused.load(Ordering::Relaxed),
            unknown: b.unknown.load(Ordering::Relaxed),
            accept_latency: b.latency.lock().expect("latency lock").summary(),
            first_error: b.first_error.lock().expect("error lock").clone(),
        }
    }
}

impl<U: Clone> Shared<U> {
    /// One request to node `node`, booked and logged.
    async fn exchange(&self, node: usize, to: &[U], body: &serde_json::Value) -> Answer {
        let url = format!("{}/v1/messages", self.bases[node]);
        self.book.dispatched.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let answer = self.http.post(&url).bearer_auth(&self.api_key).json(body);
        let answer = self.book_answer(answer.send().await, to, started).await;
        let request = Request {
            started,
            took: started.elapsed(),
            node,
            status: answer.status,
        };
        self.book.requests.lock().expect("log lock").push(request);
        answer
    }

    /// Books one answer: a 202 with its id and seqs, a refusal, or nothing.
    async fn book_answer(
        &self,
        answer: reqwest::Result<reqwest::Response>,
        to: &[U],
        started: Instant,
    ) -> Answer {
        let book = &self.book;
        let resp = match answer {
            Ok(r) => r,
            Err(e) => {
                let unreachable = e.is_connect();
                book.unknown(format!("no answer: {e}"));
                return Answer {
                    status: 0,
                    unreachable,
                };
            }
        };
        let status = resp.status();
        let answer = Answer {
            status: status.as_u16(),
            unreachable: false,
        };
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => {
                book.unknown(format!("{status}, body lost: {e}"));
                return answer;
            }
        };
        if !status.is_success() {
            let e = format!("{status}: {}", text.chars().take(200).collect::<String>());
            // A 5xx may come after the store took the message (a Redis
            // timeout after the script ran): its outcome is unknown.
            if status.is_server_error() {
                book.unknown(e);
            } else {
                book.refused.fetch_add(1, Ordering::Relaxed);
                book.error(e);
            }
            return answer;
        }
        let json = serde_json::from_str(&text).unwrap_or_default();
        match accepted_in(&json, to, &*self.name_of) {
            Some(accepted) => {
                let took = started.elapsed().as_micros() as u64;
                book.latency.lock().expect("latency lock").record(took);
                book.accepted
                    .lock()
                    .expect("accepted lock")
                    .extend(accepted);
                book.accepted_requests.fetch_add(1, Ordering::Relaxed);
            }
            None => book.unknown(format!("{status} without id and seq: {text}")),
        }
        answer
    }
}

/// The receivers of `to` an accepted message's answer
/// (`{"id":…,"stored":[{"user":…,"seq":…},…]}`, also one of a batch's
/// `results`) names, each with its seq; None without an id or any of them.
pub fn accepted_in<U: Clone>(
    answer: &serde_json::Value,
    to: &[U],
    name_of: &NameOf<U>,
) -> Option<Vec<Accepted<U>>> {
    let id: Uuid = answer["id"].as_str()?.parse().ok()?;
    let at = Instant::now();
    let stored = answer["stored"].as_array()?.iter().filter_map(|s| {
        let name = s["user"].as_str()?;
        let user = to.iter().find(|u| name_of(u) == name)?.clone();
        let seq = s["seq"].as_u64()?;
        Some(Accepted { user, seq, id, at })
    });
    let accepted: Vec<Accepted<U>> = stored.collect();
    (!accepted.is_empty()).then_some(accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_name(u: &usize) -> String {
        format!("u{u}")
    }

    #[test]
    fn reads_id_and_seqs_of_a_202() {
        let id = Uuid::from_u128(77);
        let answer = serde_json::json!({"id": id, "stored": [
            {"stream": "inbox", "user": "u3", "seq": 9},
            {"stream": "inbox", "user": "u4", "seq": 2},
        ]});
        let got: Vec<(usize, u64, Uuid)> = accepted_in(&answer, &[4, 3], &user_name)
            .unwrap()
            .into_iter()
            .map(|a| (a.user, a.seq, a.id))
            .collect();
        assert_eq!(got, [(3, 9, id), (4, 2, id)]);
        let nothing = serde_json::json!({"id": "x", "stored": []});
        assert!(accepted_in(&nothing, &[3], &user_name).is_none());
        let stranger = serde_json::json!({"id": id, "stored": [{"user": "u9", "seq": 1}]});
        assert!(accepted_in(&stranger, &[3], &user_name).is_none());
    }

    #[tokio::test]
    async fn an_unreachable_node_books_unknown_outcomes() {
        let s = ApiSender::new(
            vec!["http://127.0.0.1:1".into()],
            "k".into(),
            4,
            Duration::from_secs(2),
            user_name,
        )
        .unwrap();
        s.post(vec![0], serde_json::json!({})).await;
        s.drain(Duration::from_secs(5)).await;
        let st = s.stats();
        assert_eq!((st.dispatched, st.accepted, st.unknown), (1, 0, 1));
        assert!(st.first_error.is_some());
        let answer = s.send(0, vec![0], serde_json::json!({})).await;
        assert_eq!(
            answer,
            Answer {
                status: 0,
                unreachable: true
            }
        );
        let log = s.requests();
        assert_eq!((log.len(), log[1].node, log[1].status), (2, 0, 0));
    }
}
