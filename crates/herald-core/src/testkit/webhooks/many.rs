//! Suite cases for webhooks of many receivers and many events: topic
//! publishes, announcements through their audience, the backlog's cap and
//! the circuit breaker.

use super::*;

/// A publish to a topic arms an event per subscriber when its category
/// has a fallback (here `resource_subscription`, after 60 s), with the
/// topic: a subscriber whose `fallback` is off for that topic gets none,
/// nor one who read it; the others one each, once (the job's chunk
/// appended again by a worker that took it over arms nothing new).
pub async fn webhooks_follow_topic_publishes(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let n = node(b, store.clone(), |_| {}).await;
    let mut subscription = CategorySpec::new(herald_protocol::Category::RESOURCE_SUBSCRIPTION);
    subscription.fallback_after = Some(Duration::from_secs(60));
    let fan_out = Arc::new(
        FanOut::new(
            b.jobs().await,
            store,
            b.idempotency().await,
            MessageLimits::default(),
            Categories::new(vec![subscription]),
            Duration::from_secs(60),
            FanOutSettings {
                poll: Duration::from_millis(50),
                ..FanOutSettings::default()
            },
        )
        .with_fallback(n.queue.clone()),
    );
    let worker = tokio::spawn(fan_out.clone().run_worker(format!("w-{}", user())));
    let topics = b.topics().await;
    let topic = crate::testkit::topics::topic();
    let (unread, muted, read) = (user(), user(), user());
    for u in [&unread, &muted, &read] {
        topics.subscribe(u, &topic).await.unwrap();
    }
    n.patch(
        &muted,
        serde_json::json!({"topics": {topic.clone(): {"fallback": false}}}),
    )
    .await;
    let sent_at = unix_ms();
    let published = fan_out
        .publish(
            "api",
            &topic,
            crate::testkit::fanout::news("chapter 3"),
            None,
        )
        .await
        .unwrap();
    crate::testkit::fanout::until_done(&fan_out, published.job).await;
    worker.abort();
    let id = |u: &str| crate::backend::message_id(published.job, u);
    n.inbox
        .mark(&read, MarkState::Read, &Selector::Ids(vec![id(&read)]))
        .await
        .unwrap();
    let armed = n
        .queue
        .get(crate::backend::event_id(id(&unread), &unread))
        .await
        .unwrap();
    assert_eq!(armed.unwrap().topic.as_deref(), Some(topic.as_str()));
    assert_eq!(
        n.webhooks.run_round(sent_at + 61_000, 100).await.unwrap(),
        3
    );
    let requests = n.poster.taken();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        requests[0].id,
        crate::backend::event_id(id(&unread), &unread).to_string()
    );
    assert!(requests[0].body.contains("chapter 3"));
}

/// An announcement (stored once, to everyone) with a fallback: when due,
/// one event per user of the audience (users who connected), a page per
/// claim, each checked as any other: a POST for who left it unread, none
/// for who read it or turned the announcement's fallback off, none for a
/// user outside the audience, none twice.
pub async fn webhooks_follow_announcements_through_the_audience(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    // Pages of 2: three claims arm the five users.
    let n = node(b, store, |s| s.audience_page = 2).await;
    let (read, muted, stranger) = (user(), user(), user());
    let unread: Vec<String> = (0..3).map(|_| user()).collect();
    for u in unread.iter().chain([&read, &muted]) {
        n.queue.remember(u).await.unwrap();
        n.queue.remember(u).await.unwrap(); // known already: no change
    }
    let sent_at = unix_ms();
    let announcement = NewMessage {
        category: "announcement".into(),
        body: "maintenance tonight".into(),
        fallback_after_secs: Some(60),
        ..NewMessage::default()
    };
    let out = n.sender.prepare(None, announcement, None).unwrap();
    let id = n.sender.send("suite", vec![out]).await.unwrap()[0].id;
    n.inbox
        .mark(&read, MarkState::Read, &Selector::Ids(vec![id]))
        .await
        .unwrap();
    n.patch(
        &muted,
        serde_json::json!({"categories": {"announcement": {"fallback": false}}}),
    )
    .await;
    assert_eq!(
        n.webhooks.run_round(sent_at + 30_000, 100).await.unwrap(),
        0,
        "not due yet"
    );

    // Each round claims what is due: the audience's next page is armed
    // due at once, so rounds go on until every event ended.
    let due = sent_at + 61_000;
    let mut rounds = 0;
    while n.webhooks.run_round(due, 100).await.unwrap() > 0 {
        rounds += 1;
        assert!(rounds < 20, "the audience never ran out");
    }
    let mut posted: Vec<String> = n
        .poster
        .taken()
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(body["type"], "message.unread");
            assert_eq!(body["data"]["message"]["id"], id.to_string());
            assert_eq!(body["data"]["message"]["stream"], "all");
            let user = body["data"]["user"].as_str().unwrap().to_owned();
            assert_eq!(r.id, crate::backend::event_id(id, &user).to_string());
            user
        })
        .collect();
    posted.sort();
    let mut expected = unread.clone();
    expected.sort();
    assert_eq!(posted, expected, "the unread ones of the audience only");
    for (u, state) in [
        (&read, WebhookState::Dropped),
        (&muted, WebhookState::Dropped),
    ] {
        let event = n.queue.get(crate::backend::event_id(id, u)).await.unwrap();
        assert_eq!(event.map(|e| e.state), Some(state), "{u}");
    }
    let strangers = n
        .queue
        .get(crate::backend::event_id(id, &stranger))
        .await
        .unwrap();
    assert!(strangers.is_none(), "not in the audience: {strangers:?}");
    let everyone = n
        .queue
        .get(crate::backend::event_id(id, crate::backend::EVERYONE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(everyone.state, WebhookState::Dropped, "the audience ended");
    assert_eq!(n.webhooks.run_round(due + 3_600_000, 100).await.unwrap(), 0);
    assert!(n.poster.taken().is_empty(), "none twice");
    assert_eq!(n.webhooks.backlog().await.unwrap().armed, 0);

    // The audience pages in order and forgets.
    n.queue.forget(&stranger).await.unwrap(); // unknown: nothing to do
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = n.queue.audience(cursor.as_deref(), 2).await.unwrap();
        assert!(page.users.len() <= 2);
        all.extend(page.users);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut known: Vec<String> = unread.iter().chain([&read, &muted]).cloned().collect();
    known.sort();
    assert_eq!(all, known);
    n.queue.forget(&read).await.unwrap();
    let page = n.queue.audience(None, 10).await.unwrap();
    assert_eq!(page.users.len(), 4);
    assert!(!page.users.contains(&read) && page.next.is_none());
}

/// The ids of these requests, each once, sorted.
fn ids_of(requests: &[WebhookRequest]) -> Vec<String> {
    let mut ids: Vec<String> = requests.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    ids.dedup();
    ids
}

/// With `max_pending` events pending already (all nodes together), an
/// event coming due is created dead at once, never tried: listed with its
/// reason, counted in the backlog, sent again on request (then delivered,
/// same id); created once all the same (a later round creates nothing).
/// The dead are trimmed, oldest first, to the number kept, and those dead
/// for longer than kept.
pub async fn webhooks_past_max_pending_are_created_dead(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let n = node(b, store, |s| s.max_pending = 2).await;
    let users: Vec<String> = (0..5).map(|_| user()).collect();
    let sent_at = unix_ms();
    let id = n
        .send(&users.iter().collect::<Vec<_>>(), note("remind", None))
        .await;
    n.poster
        .answer([PostOutcome::Status(500), PostOutcome::Status(500)]);
    let due = sent_at + 61_000;
    assert_eq!(n.webhooks.run_round(due, 100).await.unwrap(), 5);
    let tried = ids_of(&n.poster.taken());
    assert_eq!(tried.len(), 2, "only max_pending tried: {tried:?}");
    let backlog = n.webhooks.backlog().await.unwrap();
    assert_eq!((backlog.armed, backlog.pending, backlog.dead), (0, 2, 3));
    let dead = n.webhooks.dead(None, 100).await.unwrap();
    assert_eq!(dead.len(), 3);
    for e in &dead {
        assert_eq!(e.state, WebhookState::Dead);
        assert_eq!(e.attempts, 0, "never tried: {e:?}");
        assert_eq!(
            e.last_error.as_deref(),
            Some("backlog full: webhooks.max_pending (2)")
        );
        assert_eq!(e.dead_at, Some(due));
        assert!(e
            .body
            .as_deref()
            .is_some_and(|b| b.contains("message.unread")));
        assert!(!tried.contains(&e.id.to_string()));
        assert_eq!(*e, n.queue.get(e.id).await.unwrap().unwrap());
    }
    let every: Vec<uuid::Uuid> = users
        .iter()
        .map(|u| crate::backend::event_id(id, u))
        .collect();
    assert!(dead.iter().all(|e| every.contains(&e.id)));

    // Sent again on request: pending (over the cap: an operator's choice),
    // delivered with the same id and body as the rest.
    let revived = dead[0].id;
    assert!(matches!(
        n.webhooks.retry_dead(revived).await.unwrap(),
        RetryDead::Retrying(_)
    ));
    assert_eq!(n.webhooks.backlog().await.unwrap().pending, 3);
    let later = due + 3_600_000;
    assert_eq!(n.webhooks.run_round(later, 100).await.unwrap(), 3);
    let sent = n.poster.taken();
    assert_eq!(sent.len(), 3);
    assert!(sent
        .iter()
        .any(|r| r.id == revived.to_string() && Some(r.body.as_str()) == dead[0].body.as_deref()));
    let backlog = n.webhooks.backlog().await.unwrap();
    assert_eq!((backlog.pending, backlog.dead), (0, 2));
    // Created once: nothing is armed again or created twice.
    assert_eq!(
        n.webhooks.run_round(later + 3_600_000, 100).await.unwrap(),
        0
    );
    assert!(n.poster.taken().is_empty());

    // Trimmed: the oldest beyond those kept, then the expired ones.
    assert_eq!(n.queue.trim_dead(0, 1, 100).await.unwrap(), 1);
    let left = n.webhooks.dead(None, 100).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(n.webhooks.backlog().await.unwrap().dead, 1);
    assert_eq!(
        n.queue.trim_dead(due, 100, 100).await.unwrap(),
        0,
        "not expired yet"
    );
    assert_eq!(n.queue.trim_dead(due + 1, 100, 100).await.unwrap(), 1);
    assert!(n.webhooks.dead(None, 100).await.unwrap().is_empty());
    assert_eq!(n.queue.get(left[0].id).await.unwrap(), None);
    assert_eq!(n.webhooks.backlog().await.unwrap().dead, 0);
    let delivered = n.queue.get(revived).await.unwrap().unwrap();
    assert_eq!(delivered.state, WebhookState::Delivered, "not trimmed");
}

/// After `breaker_failures` failed tries in a row the node's breaker
/// opens: due events are postponed (no request, no attempt counted, their
/// schedule moving on) but for one probe per `breaker_probe`; a failed
/// probe keeps it open, a delivered one closes it, and every postponed
/// event is then delivered once, with the id it always had.
pub async fn webhooks_breaker_opens_probes_and_closes(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let n = node(b, store, |s| {
        // As many as the events failing at once in the first round, which
        // are then all tried whatever their order.
        s.breaker_failures = 5;
        s.breaker_probe = Duration::from_secs(30);
    })
    .await;
    let users: Vec<String> = (0..5).map(|_| user()).collect();
    let sent_at = unix_ms();
    n.send(&users.iter().collect::<Vec<_>>(), note("remind", None))
        .await;
    n.poster
        .answer(std::iter::repeat_n(PostOutcome::Status(503), 6));
    let due = sent_at + 61_000;
    assert_eq!(n.webhooks.run_round(due, 100).await.unwrap(), 5);
    let first = n.poster.taken();
    assert_eq!(first.len(), 5, "closed: every event tried");
    assert!(n.webhooks.breaker_open());
    let ids = ids_of(&first);
    assert_eq!(ids.len(), 5);

    // Open: the retries come due and are postponed until the probe.
    let mut now = due + 10_000;
    assert_eq!(n.webhooks.run_round(now, 100).await.unwrap(), 5);
    assert!(n.poster.taken().is_empty(), "no try while open");
    let probe_at = due + 30_000;
    let events = n.queue.events_of(&users[0]).await.unwrap();
    let e = &events[0];
    assert_eq!((e.attempts, e.postponed), (1, 1), "{e:?}");
    assert!(e.next_at.unwrap() >= probe_at, "{e:?}");
    assert_eq!(e.last_error.as_deref(), Some("HTTP 503"));

    // Each probe is one request; a failed one keeps the breaker open.
    now = probe_at + 1_000;
    n.webhooks.run_round(now, 100).await.unwrap();
    let probe = n.poster.taken();
    assert_eq!(probe.len(), 1, "one probe: {probe:?}");
    assert!(n.webhooks.breaker_open());

    // The receiver mended: the next probe closes it; the rest go out.
    now += 3_600_000;
    for _ in 0..10 {
        n.webhooks.run_round(now, 100).await.unwrap();
        if n.webhooks.backlog().await.unwrap().pending == 0 {
            break;
        }
        now += 3_600_000;
    }
    assert!(!n.webhooks.breaker_open());
    let sent = n.poster.taken();
    let mut sent_ids: Vec<String> = sent.iter().map(|r| r.id.clone()).collect();
    sent_ids.sort();
    assert_eq!(sent_ids, ids, "each delivered once, same ids");
    for user in &users {
        let e = n.queue.events_of(user).await.unwrap().remove(0);
        assert_eq!(e.state, WebhookState::Delivered, "{e:?}");
    }
}
