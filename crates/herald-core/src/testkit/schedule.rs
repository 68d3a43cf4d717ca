//! Suite cases for scheduled sends ([`Timers`](crate::Timers) under the
//! [`Sender`] and the [`Scheduler`]).

use std::sync::Arc;
use std::time::Duration;

use super::{user, Backend};
use crate::backend::{Cancelled, ScheduleState};
use crate::{
    unix_ms, Categories, CoreError, MessageLimits, NewMessage, Retention, ScheduleSettings,
    Scheduler, Sender, Store, StreamKey,
};

/// A node: its sender on `store` and its scheduler, sharing `b`'s
/// schedule, with a short lease.
async fn node(b: &dyn Backend, store: Arc<dyn Store>, lease: Duration) -> (Sender, Scheduler) {
    let timers = b.timers().await;
    let sender = Sender::new(
        store,
        b.idempotency().await,
        b.blocklist().await,
        timers.clone(),
        MessageLimits::default(),
        Categories::default(),
        Duration::from_secs(60),
    );
    let scheduler = Scheduler::new(
        timers,
        ScheduleSettings {
            lease,
            ..ScheduleSettings::default()
        },
    );
    (sender, scheduler)
}

fn note(body: &str) -> NewMessage {
    NewMessage {
        category: "system".into(),
        body: body.into(),
        ..NewMessage::default()
    }
}

/// Runs rounds until `want` sends were delivered in all (or panics after
/// 10 s); returns the rounds' total.
async fn deliver(scheduler: &Scheduler, sender: &Sender, want: usize) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut delivered = 0;
    while delivered < want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{delivered} of {want} delivered in 10 s"
        );
        delivered += scheduler
            .run_due(sender, unix_ms())
            .await
            .unwrap()
            .delivered;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    delivered
}

/// A send with `deliver_at` stores nothing at once; its status is
/// pending; once due, one round appends it to every receiver with its
/// id and the due time as its `ts`, the status reads delivered, and no
/// later round finds it again.
pub async fn schedule_delivers_once_when_due(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let (sender, scheduler) = node(b, store.clone(), Duration::from_secs(5)).await;
    let (alice, bob) = (user(), user());
    let at = unix_ms() + 400;
    let out = sender
        .prepare_at(
            Some(vec![alice.clone(), bob.clone()]),
            note("later"),
            None,
            Some(at),
        )
        .unwrap();
    let sent = sender.send("api", vec![out]).await.unwrap().remove(0);
    assert_eq!(sent.deliver_at, Some(at));
    assert!(sent.stored.is_empty(), "nothing stored yet");
    let status = scheduler.status(sent.id).await.unwrap().unwrap();
    assert_eq!(
        (status.state, status.deliver_at),
        (ScheduleState::Pending, at)
    );
    assert_eq!(store.last_seq(&StreamKey::inbox(&alice)).await.unwrap(), 0);
    let early = scheduler.run_due(&sender, unix_ms()).await.unwrap();
    assert_eq!(early.claimed, 0, "not due yet");

    assert_eq!(deliver(&scheduler, &sender, 1).await, 1);
    assert!(unix_ms() >= at);
    for u in [&alice, &bob] {
        let got = store.read_after(&StreamKey::inbox(u), 0, 10).await.unwrap();
        assert_eq!(got.len(), 1, "{u}");
        assert_eq!(got[0].id, sent.id);
        assert_eq!(got[0].body, "later");
        assert_eq!(
            (got[0].ts.unix_timestamp_nanos() / 1_000_000) as i64,
            at,
            "stamped with its due time"
        );
    }
    let status = scheduler.status(sent.id).await.unwrap().unwrap();
    assert_eq!(status.state, ScheduleState::Delivered);
    let again = scheduler
        .run_due(&sender, unix_ms() + 60_000)
        .await
        .unwrap();
    assert_eq!(again.claimed, 0, "a later round finds nothing");
    assert_eq!(store.last_seq(&StreamKey::inbox(&alice)).await.unwrap(), 1);
}

/// A node that claims due sends and dies — before appending, or after
/// appending but before recording them — holds them only for its lease:
/// another node's claim then takes them, and each receiver holds each
/// message once.
pub async fn schedule_lease_of_a_dead_node_is_taken_over_once(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let lease = Duration::from_millis(300);
    let (dead_sender, dead) = node(b, store.clone(), lease).await;
    let (sender, alive) = node(b, store.clone(), lease).await;
    let alice = user();
    let at = unix_ms() + 150;
    let mut ids = Vec::new();
    for body in ["appended", "not appended"] {
        let out = sender
            .prepare_at(Some(vec![alice.clone()]), note(body), None, Some(at))
            .unwrap();
        ids.push(sender.send("api", vec![out]).await.unwrap()[0].id);
    }
    // The doomed node claims both once due, appends the first, and dies.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let claimed = loop {
        let mut claimed = b
            .timers()
            .await
            .claim_due(unix_ms(), 100, lease)
            .await
            .unwrap();
        claimed.retain(|s| ids.contains(&s.id));
        if claimed.len() == 2 {
            break claimed;
        }
        assert!(tokio::time::Instant::now() < deadline, "never due");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let first: Vec<_> = claimed.into_iter().filter(|s| s.id == ids[0]).collect();
    assert!(dead_sender.deliver_due(&first).await[0].is_ok());
    drop(dead);
    // Within the lease nobody else takes them.
    let held = b
        .timers()
        .await
        .claim_due(unix_ms(), 100, lease)
        .await
        .unwrap();
    assert!(held.iter().all(|s| !ids.contains(&s.id)), "leased");
    // After it, another node delivers both, the first one not twice.
    deliver(&alive, &sender, 2).await;
    let got = store
        .read_after(&StreamKey::inbox(&alice), 0, 10)
        .await
        .unwrap();
    let got_ids: Vec<_> = got.iter().map(|m| m.id).collect();
    assert_eq!(got_ids, ids, "each once, in due order");
    for id in &ids {
        let status = alive.status(*id).await.unwrap().unwrap();
        assert_eq!(status.state, ScheduleState::Delivered);
    }
}

/// Nodes claiming at once never get the same send.
pub async fn schedule_concurrent_claims_never_overlap(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let (sender, _) = node(b, store.clone(), Duration::from_secs(5)).await;
    let alice = user();
    let at = unix_ms() + 100;
    let mut outs = Vec::new();
    for i in 0..200 {
        outs.push(
            sender
                .prepare_at(
                    Some(vec![alice.clone()]),
                    note(&format!("m{i}")),
                    None,
                    Some(at),
                )
                .unwrap(),
        );
    }
    let sent = sender.send("api", outs).await.unwrap();
    let mut ids: Vec<_> = sent.iter().map(|s| s.id).collect();
    ids.sort();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(b.timers().await);
    }
    let mut all = Vec::new();
    loop {
        let claims = futures_util::future::join_all(
            nodes
                .iter()
                .map(|t| t.claim_due(unix_ms(), 25, Duration::from_secs(30))),
        )
        .await;
        let mut any = false;
        for claim in claims {
            let claim = claim.unwrap();
            any |= !claim.is_empty();
            all.extend(
                claim
                    .into_iter()
                    .map(|s| s.id)
                    .filter(|id| ids.contains(id)),
            );
        }
        if !any {
            break;
        }
    }
    all.sort();
    assert_eq!(all, ids, "each claimed exactly once");
    nodes[0].delivered(&ids).await.unwrap();
}

/// Cancel: a pending send is cancelled (again: still cancelled) and never
/// delivered; a delivered or claimed one is not; an unknown id is unknown.
pub async fn schedule_cancel_and_status(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let (sender, scheduler) = node(b, store.clone(), Duration::from_secs(5)).await;
    let alice = user();
    let at = unix_ms() + 200;
    let mut ids = Vec::new();
    for body in ["cancelled", "delivered", "claimed"] {
        let out = sender
            .prepare_at(Some(vec![alice.clone()]), note(body), None, Some(at))
            .unwrap();
        ids.push(sender.send("api", vec![out]).await.unwrap()[0].id);
    }
    assert_eq!(
        scheduler.cancel(ids[0]).await.unwrap(),
        Cancelled::Cancelled
    );
    assert_eq!(
        scheduler.cancel(ids[0]).await.unwrap(),
        Cancelled::Cancelled
    );
    assert_eq!(
        scheduler.status(ids[0]).await.unwrap().unwrap().state,
        ScheduleState::Cancelled
    );
    assert_eq!(
        scheduler.cancel(uuid::Uuid::now_v7()).await.unwrap(),
        Cancelled::Unknown
    );
    assert!(scheduler
        .status(uuid::Uuid::now_v7())
        .await
        .unwrap()
        .is_none());
    // The third is claimed by a node that has not delivered it yet.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let timers = b.timers().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut claimed = Vec::new();
    while claimed.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline);
        for send in timers
            .claim_due(unix_ms(), 100, Duration::from_secs(30))
            .await
            .unwrap()
        {
            if ids[1..].contains(&send.id) {
                claimed.push(send);
            }
        }
    }
    assert!(
        claimed.iter().all(|s| s.id != ids[0]),
        "cancelled: never due"
    );
    claimed.sort_by_key(|s| s.id);
    assert_eq!(
        scheduler.cancel(ids[2]).await.unwrap(),
        Cancelled::Delivered
    );
    assert_eq!(
        scheduler.status(ids[2]).await.unwrap().unwrap().state,
        ScheduleState::Pending,
        "claimed, not delivered yet"
    );
    let delivered = sender.deliver_due(&claimed).await;
    assert!(delivered.iter().all(Result::is_ok));
    timers.delivered(&[ids[1], ids[2]]).await.unwrap();
    assert_eq!(
        scheduler.cancel(ids[1]).await.unwrap(),
        Cancelled::Delivered
    );
    assert_eq!(
        scheduler.status(ids[1]).await.unwrap().unwrap().state,
        ScheduleState::Delivered
    );
    let bodies: Vec<_> = store
        .read_after(&StreamKey::inbox(&alice), 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, ["delivered", "claimed"]);
}

/// `deliver_at` in the past, now, or over a year ahead is refused, as is
/// an `expires_at` not after it; an idempotency key gives its first
/// outcome (the same schedule), and another `deliver_at` under it is a
/// conflict.
pub async fn schedule_validates_and_keys_give_the_first_outcome(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let (sender, scheduler) = node(b, store.clone(), Duration::from_secs(5)).await;
    let alice = user();
    let to = || Some(vec![alice.clone()]);
    let year = 366 * 24 * 3600 * 1000;
    for at in [unix_ms() - 1_000, unix_ms() - 1, unix_ms() + year + 60_000] {
        match sender.prepare_at(to(), note("x"), None, Some(at)) {
            Err(CoreError::Invalid(m)) => assert!(m.starts_with("deliver_at: "), "{m}"),
            other => panic!("{at}: {other:?}"),
        }
    }
    assert!(sender
        .prepare_at(to(), note("x"), None, Some(unix_ms() + year - 60_000))
        .is_ok());
    let expiring = NewMessage {
        expires_at: Some(time::OffsetDateTime::now_utc() + Duration::from_secs(60)),
        ..note("x")
    };
    match sender.prepare_at(to(), expiring.clone(), None, Some(unix_ms() + 120_000)) {
        Err(CoreError::Invalid(m)) => assert!(m.starts_with("expires_at: "), "{m}"),
        other => panic!("{other:?}"),
    }
    let ok = sender
        .prepare_at(to(), expiring, None, Some(unix_ms() + 30_000))
        .unwrap();
    assert_eq!(ok.deliver_at.map(|_| ()), Some(()));

    let key = Some(format!("sched-{}", user()));
    let at = unix_ms() + 60_000;
    let first = sender
        .prepare_at(to(), note("once"), key.clone(), Some(at))
        .unwrap();
    let first = sender.send("api", vec![first]).await.unwrap().remove(0);
    let retry = sender
        .prepare_at(to(), note("once"), key.clone(), Some(at))
        .unwrap();
    let retry = sender.send("api", vec![retry]).await.unwrap().remove(0);
    assert_eq!(retry, first, "the first outcome");
    let other = sender
        .prepare_at(to(), note("once"), key.clone(), Some(at + 1_000))
        .unwrap();
    assert!(matches!(
        sender.send("api", vec![other]).await,
        Err(CoreError::Conflict(_))
    ));
    assert_eq!(
        scheduler.status(first.id).await.unwrap().unwrap().state,
        ScheduleState::Pending
    );
    assert_eq!(
        scheduler.cancel(first.id).await.unwrap(),
        Cancelled::Cancelled
    );
    assert_eq!(store.last_seq(&StreamKey::inbox(&alice)).await.unwrap(), 0);
}
