//! Suite cases for topic subscriptions ([`Topics`]).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::future::join_all;
use uuid::Uuid;

use super::{user, Backend};
use crate::{CoreError, Topics, MAX_TOPICS_PER_USER, MAX_TOPIC_LEN};

/// A fresh topic, so cases never see each other's subscribers.
pub fn topic() -> String {
    format!("article:{}", Uuid::new_v4().simple())
}

/// Subscribes every user to `topic`, many at once; each must be new.
async fn subscribe_all<'a>(
    topics: &dyn Topics,
    users: impl IntoIterator<Item = &'a String>,
    topic: &str,
) {
    let users: Vec<&String> = users.into_iter().collect();
    for chunk in users.chunks(200) {
        for r in join_all(chunk.iter().map(|u| topics.subscribe(u, topic))).await {
            assert_eq!(r, Ok(true));
        }
    }
}

/// Every subscriber of `topic`, walking pages of `limit`.
async fn walk(topics: &dyn Topics, topic: &str, limit: usize) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    loop {
        let page = topics
            .subscribers(topic, all.last().map(String::as_str), limit)
            .await
            .unwrap();
        assert!(page.len() <= limit);
        let last = page.len() < limit;
        all.extend(page);
        if last {
            return all;
        }
    }
}

fn assert_invalid<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(CoreError::Invalid(_)) => {}
        other => panic!("{what}: expected Invalid, got {other:?}"),
    }
}

/// Return values, idempotence, both directions, and a second node seeing
/// the same subscriptions.
pub async fn topics_subscribe_and_unsubscribe(b: &dyn Backend) {
    let (a, c) = (b.topics().await, b.topics().await);
    let (alice, bob) = (user(), user());
    let (t1, t2, t3) = (topic(), topic(), format!("user:{}", user()));

    assert_eq!(a.subscriber_count(&t1).await, Ok(0));
    assert_eq!(a.subscribers(&t1, None, 10).await, Ok(vec![]));
    assert_eq!(a.topics_of(&alice).await, Ok(vec![]));

    assert_eq!(a.subscribe(&alice, &t1).await, Ok(true));
    assert_eq!(a.subscribe(&alice, &t1).await, Ok(false));
    assert_eq!(c.subscribe(&alice, &t1).await, Ok(false));
    assert_eq!(a.subscribe(&alice, &t3).await, Ok(true));
    assert_eq!(a.subscribe(&alice, &t2).await, Ok(true));
    assert_eq!(c.subscribe(&bob, &t1).await, Ok(true));

    let mut sorted = vec![t1.clone(), t2.clone(), t3.clone()];
    sorted.sort();
    assert_eq!(c.topics_of(&alice).await, Ok(sorted));
    assert_eq!(a.topics_of(&bob).await, Ok(vec![t1.clone()]));
    assert_eq!(c.subscriber_count(&t1).await, Ok(2));
    assert_eq!(a.subscriber_count(&t2).await, Ok(1));
    let mut both = vec![alice.clone(), bob.clone()];
    both.sort();
    assert_eq!(a.subscribers(&t1, None, 10).await, Ok(both.clone()));
    assert_eq!(a.subscribers(&t1, None, 0).await, Ok(vec![]));
    assert_eq!(a.subscribers(&t1, None, 1).await, Ok(vec![both[0].clone()]));
    assert_eq!(
        a.subscribers(&t1, Some(&both[0]), 10).await,
        Ok(vec![both[1].clone()])
    );
    assert_eq!(a.subscribers(&t1, Some(&both[1]), 10).await, Ok(vec![]));

    assert_eq!(c.unsubscribe(&alice, &t1).await, Ok(true));
    assert_eq!(a.unsubscribe(&alice, &t1).await, Ok(false));
    assert_eq!(a.unsubscribe(&bob, &t2).await, Ok(false));
    assert_eq!(a.subscriber_count(&t1).await, Ok(1));
    assert_eq!(a.subscribers(&t1, None, 10).await, Ok(vec![bob.clone()]));
    let mut left = vec![t2.clone(), t3.clone()];
    left.sort();
    assert_eq!(a.topics_of(&alice).await, Ok(left));

    // Subscribing again after unsubscribing is new again.
    assert_eq!(a.subscribe(&alice, &t1).await, Ok(true));
    for t in [&t1, &t2, &t3] {
        assert_eq!(a.unsubscribe(&alice, t).await, Ok(true));
    }
    assert_eq!(a.unsubscribe(&bob, &t1).await, Ok(true));
    assert_eq!(a.topics_of(&alice).await, Ok(vec![]));
    assert_eq!(a.topics_of(&bob).await, Ok(vec![]));
    assert_eq!(a.subscriber_count(&t1).await, Ok(0));
    assert_eq!(a.subscribers(&t1, None, 10).await, Ok(vec![]));
}

/// Paging is in user-id byte order, with `after` exclusive whatever the id
/// holds (ids that look like range syntax, non-ASCII, prefixes of others).
pub async fn topics_subscribers_in_byte_order(b: &dyn Backend) {
    let topics = b.topics().await;
    let t = topic();
    let base = user();
    let ids: BTreeSet<String> = [
        format!("({base}"),
        format!("[{base}"),
        format!("-{base}"),
        format!("+{base}"),
        "+".to_owned(),
        "-".to_owned(),
        "(".to_owned(),
        "[".to_owned(),
        base.clone(),
        format!("{base}a"),
        format!("{base}:x"),
        format!("é{base}"),
        format!("Z{base}"),
        format!("z{base}"),
        format!("0{base}"),
    ]
    .into_iter()
    .collect();
    subscribe_all(&*topics, &ids, &t).await;
    let expected: Vec<String> = ids.iter().cloned().collect();
    assert_eq!(topics.subscribers(&t, None, 100).await.unwrap(), expected);
    for limit in [1, 2, 7] {
        assert_eq!(walk(&*topics, &t, limit).await, expected, "limit {limit}");
    }
    // Any string is a cursor: the subscribers strictly above it.
    for after in ["", "(", "+inf", "-inf", "[zz", "\u{10ffff}", "u-"] {
        let want: Vec<String> = expected
            .iter()
            .filter(|id| id.as_str() > after)
            .cloned()
            .collect();
        assert_eq!(
            topics.subscribers(&t, Some(after), 100).await.unwrap(),
            want,
            "after {after:?}"
        );
    }
    assert_eq!(topics.subscriber_count(&t).await, Ok(ids.len() as u64));
}

/// A fan-out walks 1,000 subscribers in pages of 97 while other users
/// subscribe and unsubscribe between pages (through another node): every
/// user subscribed throughout appears exactly once, the walk is strictly
/// ascending, and nothing but subscribers shows up.
pub async fn topics_subscribers_page_without_gap_or_repeat(b: &dyn Backend) {
    const LIMIT: usize = 97;
    let (topics, other) = (b.topics().await, b.topics().await);
    let t = topic();
    let stable: BTreeSet<String> = (0..1000).map(|_| user()).collect();
    let churn: Vec<String> = (0..200).map(|_| user()).collect();
    subscribe_all(&*topics, &stable, &t).await;
    subscribe_all(&*topics, churn.iter().step_by(2), &t).await;

    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicUsize::new(0));
    let churner = {
        let (stop, ops, churn, t) = (stop.clone(), ops.clone(), churn.clone(), t.clone());
        tokio::spawn(async move {
            let mut round = 0usize;
            while !stop.load(Ordering::SeqCst) {
                for (i, u) in churn.iter().enumerate() {
                    if (i + round).is_multiple_of(2) {
                        other.unsubscribe(u, &t).await.unwrap();
                    } else {
                        other.subscribe(u, &t).await.unwrap();
                    }
                    ops.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                }
                round += 1;
            }
            other
        })
    };

    let mut seen: Vec<String> = Vec::new();
    let mut pages = 0;
    loop {
        // Let the churn move between any two pages.
        let before = ops.load(Ordering::SeqCst);
        while ops.load(Ordering::SeqCst) < before + 5 {
            tokio::task::yield_now().await;
        }
        let page = topics
            .subscribers(&t, seen.last().map(String::as_str), LIMIT)
            .await
            .unwrap();
        pages += 1;
        assert!(page.len() <= LIMIT);
        let last = page.len() < LIMIT;
        seen.extend(page);
        if last {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let other = churner.await.unwrap();
    assert!(pages >= 1000 / LIMIT, "{pages} pages");

    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "the walk repeats or goes back"
    );
    let seen: BTreeSet<String> = seen.into_iter().collect();
    let missing: Vec<&String> = stable.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "missed {} stable subscribers",
        missing.len()
    );
    let churned: BTreeSet<String> = churn.iter().cloned().collect();
    assert!(
        seen.iter()
            .all(|u| stable.contains(u) || churned.contains(u)),
        "a user who never subscribed was listed"
    );

    // At rest: the walk is exactly the subscribers, the count agrees, and
    // each churned user's own list agrees with the topic's.
    let at_rest: BTreeSet<String> = walk(&*topics, &t, LIMIT).await.into_iter().collect();
    assert_eq!(topics.subscriber_count(&t).await, Ok(at_rest.len() as u64));
    assert!(stable.is_subset(&at_rest));
    for u in &churn {
        let theirs = other.topics_of(u).await.unwrap();
        assert_eq!(theirs.contains(&t), at_rest.contains(u), "{u}");
    }
}

/// Bad topics and user ids are `Invalid` on every operation.
pub async fn topics_reject_invalid_topics_and_users(b: &dyn Backend) {
    let topics = b.topics().await;
    let (u, t) = (user(), topic());
    let long = "t".repeat(MAX_TOPIC_LEN + 1);
    for bad in ["", "a b", "a\nb", "{x}", "a}", "a\u{0}", long.as_str()] {
        match topics.subscribe(&u, bad).await {
            Err(CoreError::Invalid(m)) => assert!(m.starts_with("topic: "), "{bad:?}: {m}"),
            other => panic!("subscribe to {bad:?}: {other:?}"),
        }
        assert_invalid(topics.unsubscribe(&u, bad).await, "unsubscribe");
        assert_invalid(topics.subscribers(bad, None, 10).await, "subscribers");
        assert_invalid(topics.subscriber_count(bad).await, "subscriber_count");
    }
    let longest = "t".repeat(MAX_TOPIC_LEN);
    assert_eq!(topics.subscribe(&u, &longest).await, Ok(true));
    assert_eq!(topics.unsubscribe(&u, &longest).await, Ok(true));

    let long_user = "u".repeat(10_000);
    for bad in ["", "a b", "{u}", "x\t", long_user.as_str()] {
        assert_invalid(topics.subscribe(bad, &t).await, "subscribe");
        assert_invalid(topics.unsubscribe(bad, &t).await, "unsubscribe");
        assert_invalid(topics.topics_of(bad).await, "topics_of");
    }
    assert_eq!(topics.subscriber_count(&t).await, Ok(0));
    assert_eq!(topics.topics_of(&u).await, Ok(vec![]));
}

/// A user holds at most [`MAX_TOPICS_PER_USER`] topics: one more is
/// `Invalid` and leaves nothing behind; topics already held still answer
/// `false`; unsubscribing makes room.
pub async fn topics_cap_per_user(b: &dyn Backend) {
    let topics = b.topics().await;
    let u = user();
    let prefix = topic();
    let names: Vec<String> = (0..MAX_TOPICS_PER_USER)
        .map(|i| format!("{prefix}:{i:06}"))
        .collect();
    for chunk in names.chunks(500) {
        for r in join_all(chunk.iter().map(|t| topics.subscribe(&u, t))).await {
            assert_eq!(r, Ok(true));
        }
    }
    let extra = format!("{prefix}:extra");
    match topics.subscribe(&u, &extra).await {
        Err(CoreError::Invalid(m)) => assert!(m.starts_with("topic: "), "{m}"),
        other => panic!("subscribe beyond the cap: {other:?}"),
    }
    assert_eq!(topics.subscriber_count(&extra).await, Ok(0));
    assert_eq!(topics.subscribers(&extra, None, 10).await, Ok(vec![]));
    assert_eq!(topics.subscribe(&u, &names[0]).await, Ok(false));
    assert_eq!(topics.topics_of(&u).await.unwrap(), names);

    // Others are not limited by this user's topics.
    let bob = user();
    assert_eq!(topics.subscribe(&bob, &extra).await, Ok(true));
    assert_eq!(topics.subscribers(&extra, None, 10).await, Ok(vec![bob]));

    assert_eq!(topics.unsubscribe(&u, &names[0]).await, Ok(true));
    assert_eq!(topics.subscribe(&u, &extra).await, Ok(true));
    assert_eq!(topics.subscriber_count(&extra).await, Ok(2));
    assert_invalid(topics.subscribe(&u, &names[0]).await, "back to the cap");
    assert_eq!(topics.subscriber_count(&names[0]).await, Ok(0));
    assert_eq!(
        topics.topics_of(&u).await.unwrap().len(),
        MAX_TOPICS_PER_USER
    );
}
