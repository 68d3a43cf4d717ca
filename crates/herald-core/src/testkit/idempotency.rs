//! Suite cases for idempotency keys: the first outcome returned again, a
//! conflict on another body, claims shared between nodes and expiring
//! with their window.

use std::time::Duration;

use uuid::Uuid;

use super::Backend;

/// Window of the idempotency cases that do not wait for expiry.
const IDEM_WINDOW: Duration = Duration::from_secs(60);

/// A fresh idempotency scope, so cases never see each other's keys.
fn idem_scope() -> String {
    format!("scope-{}", Uuid::new_v4().simple())
}

pub async fn idempotency_returns_the_first_outcome(b: &dyn Backend) {
    use crate::Claim;
    let idem = b.idempotency().await;
    let scope = idem_scope();
    let fp = crate::fingerprint(&("alice", "hello"));
    let claim = |key: &'static str| idem.claim(&scope, key, &fp, IDEM_WINDOW);
    assert_eq!(claim("k1").await.unwrap(), Claim::Fresh);
    // Opaque bytes, not only UTF-8.
    let outcome = bytes::Bytes::from_static(b"{\"seq\":1}\xff\x00");
    idem.complete(&scope, "k1", &outcome, IDEM_WINDOW)
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(claim("k1").await.unwrap(), Claim::Done(outcome.clone()));
    }
    // The first outcome stays: a second complete and a release change nothing.
    idem.complete(&scope, "k1", b"other", IDEM_WINDOW)
        .await
        .unwrap();
    idem.release(&scope, "k1").await.unwrap();
    assert_eq!(claim("k1").await.unwrap(), Claim::Done(outcome.clone()));
    // An empty outcome is an outcome.
    assert_eq!(claim("k2").await.unwrap(), Claim::Fresh);
    idem.complete(&scope, "k2", b"", IDEM_WINDOW).await.unwrap();
    assert_eq!(claim("k2").await.unwrap(), Claim::Done(bytes::Bytes::new()));
    // Completing a key nobody claimed records nothing.
    idem.complete(&scope, "k3", b"x", IDEM_WINDOW)
        .await
        .unwrap();
    assert_eq!(claim("k3").await.unwrap(), Claim::Fresh);
}

pub async fn idempotency_conflicts_on_another_body(b: &dyn Backend) {
    use crate::Claim;
    let idem = b.idempotency().await;
    let scope = idem_scope();
    let (fa, fb) = (crate::fingerprint(&"a"), crate::fingerprint(&"b"));
    assert_eq!(
        idem.claim(&scope, "k", &fa, IDEM_WINDOW).await.unwrap(),
        Claim::Fresh
    );
    // Still running, or done: another body is a conflict.
    assert_eq!(
        idem.claim(&scope, "k", &fb, IDEM_WINDOW).await.unwrap(),
        Claim::Conflict
    );
    idem.complete(&scope, "k", b"A", IDEM_WINDOW).await.unwrap();
    assert_eq!(
        idem.claim(&scope, "k", &fb, IDEM_WINDOW).await.unwrap(),
        Claim::Conflict
    );
    assert_eq!(
        idem.claim(&scope, "k", &fa, IDEM_WINDOW).await.unwrap(),
        Claim::Done(bytes::Bytes::from_static(b"A"))
    );
    // The same key in another scope is another key, whatever scopes and
    // keys contain: none of these pairs may meet.
    let pairs = [
        (idem_scope(), "k".to_owned()),
        (format!("{scope}}}:x"), "y".to_owned()),
        (scope.clone(), "x}:y".to_owned()),
        (format!("{scope}:x"), "y".to_owned()),
        (scope.clone(), "x:y".to_owned()),
        (format!("{scope}{{"), "{k}".to_owned()),
        (String::new(), "k".to_owned()),
    ];
    for (i, (scope, key)) in pairs.iter().enumerate() {
        let fp = crate::fingerprint(&i);
        assert_eq!(
            idem.claim(scope, key, &fp, IDEM_WINDOW).await.unwrap(),
            Claim::Fresh,
            "{scope:?} {key:?}"
        );
    }
}

pub async fn idempotency_in_progress_until_released(b: &dyn Backend) {
    use crate::Claim;
    let idem = b.idempotency().await;
    let scope = idem_scope();
    let fp = crate::fingerprint(&"body");
    let claim = || idem.claim(&scope, "k", &fp, IDEM_WINDOW);
    assert_eq!(claim().await.unwrap(), Claim::Fresh);
    assert_eq!(claim().await.unwrap(), Claim::InProgress);
    assert_eq!(claim().await.unwrap(), Claim::InProgress);
    idem.release(&scope, "k").await.unwrap();
    assert_eq!(claim().await.unwrap(), Claim::Fresh);
    idem.complete(&scope, "k", b"ok", IDEM_WINDOW)
        .await
        .unwrap();
    assert_eq!(
        claim().await.unwrap(),
        Claim::Done(bytes::Bytes::from_static(b"ok"))
    );
    // Releasing a key nobody claimed is harmless.
    idem.release(&scope, "never").await.unwrap();
}

/// Two nodes (for Redis: two connection pools) see each other's claims,
/// outcomes and releases.
pub async fn idempotency_is_shared_between_nodes(b: &dyn Backend) {
    use crate::Claim;
    let (a, c) = (b.idempotency().await, b.idempotency().await);
    let scope = idem_scope();
    let (fp, other) = (crate::fingerprint(&1), crate::fingerprint(&2));
    assert_eq!(
        a.claim(&scope, "k", &fp, IDEM_WINDOW).await.unwrap(),
        Claim::Fresh
    );
    assert_eq!(
        c.claim(&scope, "k", &fp, IDEM_WINDOW).await.unwrap(),
        Claim::InProgress
    );
    assert_eq!(
        c.claim(&scope, "k", &other, IDEM_WINDOW).await.unwrap(),
        Claim::Conflict
    );
    a.complete(&scope, "k", b"first", IDEM_WINDOW)
        .await
        .unwrap();
    assert_eq!(
        c.claim(&scope, "k", &fp, IDEM_WINDOW).await.unwrap(),
        Claim::Done(bytes::Bytes::from_static(b"first"))
    );
    // A release on one node lets a retry run on the other.
    assert_eq!(
        c.claim(&scope, "r", &fp, IDEM_WINDOW).await.unwrap(),
        Claim::Fresh
    );
    c.release(&scope, "r").await.unwrap();
    assert_eq!(
        a.claim(&scope, "r", &fp, IDEM_WINDOW).await.unwrap(),
        Claim::Fresh
    );
}

/// Entries live one window from their claim, done or not (a claim whose
/// node died does not block the key for good); then the key is fresh.
pub async fn idempotency_expires_after_its_window(b: &dyn Backend) {
    use crate::Claim;
    let idem = b.idempotency().await;
    let scope = idem_scope();
    let fp = crate::fingerprint(&"body");
    let window = Duration::from_millis(300);
    let started = tokio::time::Instant::now();
    assert_eq!(
        idem.claim(&scope, "done", &fp, window).await.unwrap(),
        Claim::Fresh
    );
    idem.complete(&scope, "done", b"x", window).await.unwrap();
    assert_eq!(
        idem.claim(&scope, "pending", &fp, window).await.unwrap(),
        Claim::Fresh
    );
    let first = idem.claim(&scope, "done", &fp, window).await.unwrap();
    assert!(
        first == Claim::Done(bytes::Bytes::from_static(b"x")) || started.elapsed() >= window,
        "{first:?} after {:?}",
        started.elapsed()
    );
    for (key, live) in [
        ("done", Claim::Done(bytes::Bytes::from_static(b"x"))),
        ("pending", Claim::InProgress),
    ] {
        loop {
            let claim = idem.claim(&scope, key, &fp, window).await.unwrap();
            if claim == Claim::Fresh {
                break;
            }
            assert_eq!(claim, live, "{key}");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{key}: never expired"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            started.elapsed() >= window - Duration::from_millis(50),
            "{key}: expired after {:?}",
            started.elapsed()
        );
    }
}

/// Concurrent claims of one key, spread over two nodes: exactly one wins.
pub async fn idempotency_one_of_concurrent_claims_wins(b: &dyn Backend) {
    use crate::Claim;
    let nodes = [b.idempotency().await, b.idempotency().await];
    let scope = idem_scope();
    // Same body (retries racing), then different bodies (a key reused).
    for (key, same_body) in [("same", true), ("different", false)] {
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let idem = nodes[i % 2].clone();
                let scope = scope.clone();
                let fp = crate::fingerprint(&if same_body { 0 } else { i });
                tokio::spawn(async move { idem.claim(&scope, key, &fp, IDEM_WINDOW).await })
            })
            .collect();
        let mut claims = Vec::new();
        for task in tasks {
            claims.push(task.await.unwrap().unwrap());
        }
        let fresh = claims.iter().filter(|c| **c == Claim::Fresh).count();
        assert_eq!(fresh, 1, "{key}: {claims:?}");
        let lost = if same_body {
            Claim::InProgress
        } else {
            Claim::Conflict
        };
        assert_eq!(
            claims.iter().filter(|c| **c == lost).count(),
            19,
            "{key}: {claims:?}"
        );
    }
}

pub async fn idempotency_rejects_invalid_keys(b: &dyn Backend) {
    let idem = b.idempotency().await;
    let scope = idem_scope();
    let fp = crate::fingerprint(&"body");
    let long = "x".repeat(129);
    for key in ["", long.as_str(), "a\nb", "tab\tkey", "\u{7f}"] {
        let invalid = |r: crate::Result<()>| matches!(r, Err(crate::CoreError::Invalid(_)));
        let claim = idem.claim(&scope, key, &fp, IDEM_WINDOW).await;
        assert!(
            matches!(claim, Err(crate::CoreError::Invalid(_))),
            "{key:?}: {claim:?}"
        );
        assert!(invalid(idem.complete(&scope, key, b"x", IDEM_WINDOW).await));
        assert!(invalid(idem.release(&scope, key).await));
    }
    for key in ["x".repeat(128), "ключ {1} é:ü".to_owned()] {
        assert_eq!(
            idem.claim(&scope, &key, &fp, IDEM_WINDOW).await.unwrap(),
            crate::Claim::Fresh,
            "{key:?}"
        );
    }
}
