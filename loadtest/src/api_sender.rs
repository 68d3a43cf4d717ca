//! Steady traffic through the server API (`POST /v1/messages`), with the
//! book every exactly-once check needs: the id and seq of each 202.
//!
//! A request either was accepted (202: stored, with its seq), refused (a
//! 4xx: nothing stored) or has an unknown outcome (no answer, or a 5xx:
//! docs/protocol.md says a 503 may come after the store took it). Requests go
//! to the given nodes in turn, at most `concurrency` in flight; a sender
//! that hits the bound falls behind its schedule rather than queueing
//! without end, and the achieved rate shows it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use uuid::Uuid;

use crate::resume::check::Accepted;
use crate::stats::{LatencyHist, Summary};

/// What the sender did, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SendStats {
    pub dispatched: u64,
    pub accepted: u64,
    /// A 4xx: not stored.
    pub refused: u64,
    /// No answer (timeout, connection lost) or a 5xx: may have been stored.
    pub unknown: u64,
    /// From the request to its 202.
    pub accept_latency: Summary,
    pub first_error: Option<String>,
}

/// Everything the sender records, shared with its request tasks.
#[derive(Default)]
struct Book {
    accepted: Mutex<Vec<Accepted>>,
    dispatched: AtomicU64,
    refused: AtomicU64,
    unknown: AtomicU64,
    latency: Mutex<LatencyHist>,
    first_error: Mutex<Option<String>>,
}

impl Book {
    fn error(&self, e: String) {
        self.first_error
            .lock()
            .expect("error lock")
            .get_or_insert(e);
    }
}

/// Posts messages to the server API and books their outcome.
pub struct ApiSender {
    http: reqwest::Client,
    bases: Vec<String>,
    api_key: String,
    permits: Arc<Semaphore>,
    concurrency: u32,
    next: AtomicU64,
    book: Arc<Book>,
}

impl ApiSender {
    /// A sender to `bases` (in turn), at most `concurrency` requests in
    /// flight, each given up after `timeout`.
    pub fn new(
        bases: Vec<String>,
        api_key: String,
        concurrency: usize,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!bases.is_empty(), "the sender needs a node to post to");
        let concurrency = concurrency.clamp(1, 4096);
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .tcp_nodelay(true)
            .timeout(timeout)
            .build()?;
        Ok(ApiSender {
            http,
            bases,
            api_key,
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency: concurrency as u32,
            next: AtomicU64::new(0),
            book: Arc::new(Book::default()),
        })
    }

    /// Posts `body` (a one-user message to user number `user`) to the next
    /// node; returns once the request is under way (waits for a free slot).
    pub async fn post(&self, user: usize, body: serde_json::Value) {
        let permit = self.permits.clone().acquire_owned().await.expect("open");
        let n = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        let url = format!("{}/v1/messages", self.bases[n % self.bases.len()]);
        let (http, key, book) = (self.http.clone(), self.api_key.clone(), self.book.clone());
        book.dispatched.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let sent = Instant::now();
            let answer = http.post(&url).bearer_auth(key).json(&body).send().await;
            record(&book, user, answer, sent).await;
            drop(permit);
        });
    }

    /// Waits (at most `limit`) until no request is in flight.
    pub async fn drain(&self, limit: Duration) {
        let all = self.permits.acquire_many(self.concurrency);
        if let Ok(Ok(p)) = tokio::time::timeout(limit, all).await {
            drop(p);
        }
    }

    /// Every accepted message so far.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.book.accepted.lock().expect("accepted lock").clone()
    }

    pub fn accepted_count(&self) -> u64 {
        self.book.accepted.lock().expect("accepted lock").len() as u64
    }

    pub fn stats(&self) -> SendStats {
        let b = &self.book;
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

/// Books one answer: a 202 with its id and seq, a refusal, or nothing.
async fn record(
    book: &Book,
    user: usize,
    answer: reqwest::Result<reqwest::Response>,
    sent: Instant,
) {
    let resp = match answer {
        Ok(r) => r,
        Err(e) => {
            book.unknown.fetch_add(1, Ordering::Relaxed);
            return book.error(format!("no answer: {e}"));
        }
    };
    let status = resp.status();
    let text = match resp.text().await {
        Ok(t) => t,
        Err(e) => {
            book.unknown.fetch_add(1, Ordering::Relaxed);
            return book.error(format!("{status}, body lost: {e}"));
        }
    };
    if !status.is_success() {
        // A 5xx may come after the store took the message (a Redis
        // timeout after the script ran): its outcome is unknown.
        let counter = match status.is_server_error() {
            true => &book.unknown,
            false => &book.refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        return book.error(format!(
            "{status}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    match parse_accepted(&text, user) {
        Some(a) => {
            let took = sent.elapsed().as_micros() as u64;
            book.latency.lock().expect("latency lock").record(took);
            book.accepted.lock().expect("accepted lock").push(a);
        }
        None => {
            book.unknown.fetch_add(1, Ordering::Relaxed);
            book.error(format!("{status} without id and seq: {text}"));
        }
    }
}

/// The id and the (only) stored seq of a 202 answer.
fn parse_accepted(text: &str, user: usize) -> Option<Accepted> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let id: Uuid = v["id"].as_str()?.parse().ok()?;
    let seq = v["stored"].as_array()?.first()?["seq"].as_u64()?;
    Some(Accepted { user, seq, id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_id_and_seq_of_a_202() {
        let id = Uuid::from_u128(77);
        let text = format!(r#"{{"id":"{id}","stored":[{{"stream":"inbox","user":"u","seq":9}}]}}"#);
        assert_eq!(
            parse_accepted(&text, 3),
            Some(Accepted {
                user: 3,
                seq: 9,
                id
            })
        );
        assert_eq!(parse_accepted(r#"{"id":"x","stored":[]}"#, 3), None);
        assert_eq!(parse_accepted("not json", 3), None);
    }

    #[tokio::test]
    async fn an_unreachable_node_books_unknown_outcomes() {
        let s = ApiSender::new(
            vec!["http://127.0.0.1:1".into()],
            "k".into(),
            4,
            Duration::from_secs(2),
        )
        .unwrap();
        s.post(0, serde_json::json!({})).await;
        s.drain(Duration::from_secs(5)).await;
        let st = s.stats();
        assert_eq!((st.dispatched, st.accepted, st.unknown), (1, 0, 1));
        assert!(st.first_error.is_some());
    }
}
