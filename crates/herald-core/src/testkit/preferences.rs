//! Preferences: merged over the operator's defaults, shared by every node,
//! pushed to the user's listeners in order, refused whole when bad.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::{Category, Channels, ChannelsPatch, PreferencesPatch, QuietHours};
use tokio::sync::mpsc;

use super::{user, Backend};
use crate::{BrokerSink, Categories, CategorySpec, Delivery, StoredPreferences, UserPreferences};

/// A sink that records the preferences pushed to it.
struct PreferencesSink(mpsc::UnboundedSender<(String, StoredPreferences)>);

impl BrokerSink for PreferencesSink {
    fn deliver(&self, _delivery: Arc<Delivery>) {}
    fn resync(&self) {}
    fn counts_changed(&self, _user: &str) {}
    fn receipt(&self, _user: &str, _receipt: &herald_protocol::Receipt) {}
    fn preferences(&self, user: &str, stored: &StoredPreferences) {
        let _ = self.0.send((user.to_owned(), stored.clone()));
    }
}

/// The built-in categories plus `promo`, off in the app unless a user
/// turns it on.
fn categories() -> Categories {
    let mut promo = CategorySpec::new("promo".parse().unwrap());
    promo.defaults = Channels {
        in_app: false,
        fallback: true,
    };
    Categories::new(vec![promo])
}

fn channels(in_app: Option<bool>, fallback: Option<bool>) -> ChannelsPatch {
    ChannelsPatch { in_app, fallback }
}

fn night() -> QuietHours {
    QuietHours {
        tz: "Europe/Paris".into(),
        start: "22:00".into(),
        end: "07:00".into(),
    }
}

pub async fn preferences_merge_over_defaults_and_reach_every_node(b: &dyn Backend) {
    let one = UserPreferences::new(b.preferences().await, categories());
    let two = UserPreferences::new(b.preferences().await, categories());
    let alice = user();
    let (tx, mut pushed) = mpsc::unbounded_channel();
    let broker = b.broker("listener", Arc::new(PreferencesSink(tx))).await;
    broker
        .subscribe(std::slice::from_ref(&alice))
        .await
        .unwrap();

    let fresh = one.get(&alice).await.unwrap();
    assert_eq!(fresh.categories.len(), 7, "every category is present");
    assert_eq!(fresh.categories["remind"], Channels::default());
    assert!(!fresh.categories["promo"].in_app, "the operator's default");
    assert!(fresh.topics.is_empty() && fresh.quiet_hours.is_none());

    let mut patch = PreferencesPatch::default();
    patch
        .categories
        .insert("remind".into(), channels(Some(false), None));
    patch
        .topics
        .insert("article:1".into(), Some(channels(None, Some(false))));
    patch.quiet_hours = Some(Some(night()));
    let after = one.update(&alice, &patch).await.unwrap();
    assert_eq!(
        after.categories["remind"],
        Channels {
            in_app: false,
            fallback: true
        }
    );
    assert_eq!(
        after.topics["article:1"],
        Channels {
            in_app: true,
            fallback: false
        }
    );
    assert_eq!(after.quiet_hours, Some(night()));
    assert_eq!(
        two.get(&alice).await.unwrap(),
        after,
        "another node reads it"
    );

    // A second change merges: the flags and fields it leaves out stay.
    let mut patch = PreferencesPatch::default();
    patch
        .categories
        .insert("remind".into(), channels(None, Some(false)));
    patch
        .categories
        .insert("promo".into(), channels(Some(true), None));
    patch.topics.insert("article:1".into(), None);
    patch
        .topics
        .insert("user:bob".into(), Some(channels(None, None)));
    let merged = two.update(&alice, &patch).await.unwrap();
    assert_eq!(
        merged.categories["remind"],
        Channels {
            in_app: false,
            fallback: false
        }
    );
    assert!(merged.categories["promo"].in_app);
    assert!(!merged.topics.contains_key("article:1"), "forgotten");
    assert_eq!(
        merged.topics["user:bob"],
        Channels::default(),
        "set, both on"
    );
    assert_eq!(merged.quiet_hours, Some(night()), "absent: kept");
    // A connection's start reads them with the counts where the store can:
    // what the preference store holds, then.
    let store = b.store(crate::Retention::default()).await;
    let (_, _, with_counts) = store
        .user_counts_and_preferences(&alice, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    if let Some(stored) = with_counts {
        assert_eq!(stored, b.preferences().await.load(&alice).await.unwrap());
        assert_eq!(one.resolve(&stored), merged);
    }
    let (_, _, nobody) = store
        .user_counts_and_preferences(&user(), time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert!(nobody.is_none_or(|stored| stored.is_empty()), "none set");
    let cleared = one
        .update(
            &alice,
            &PreferencesPatch {
                quiet_hours: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.quiet_hours, None, "null: removed");

    // Each change reached the listening node, in order, as stored.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let (who, stored) = tokio::time::timeout(Duration::from_secs(5), pushed.recv())
            .await
            .expect("a preferences push within 5 s")
            .expect("sink open");
        assert_eq!(who, alice);
        seen.push(one.resolve(&stored));
    }
    assert_eq!(seen, vec![after, merged, cleared]);
    // Another user's preferences are their own.
    assert_eq!(one.get(&user()).await.unwrap(), fresh);
}

pub async fn preferences_refuse_bad_input_and_write_nothing(b: &dyn Backend) {
    let prefs = UserPreferences::new(b.preferences().await, categories());
    let alice = user();
    let bad = |f: &dyn Fn(&mut PreferencesPatch)| {
        let mut p = PreferencesPatch::default();
        f(&mut p);
        p
    };
    let cases = [
        (
            bad(&|p| {
                p.categories
                    .insert("gossip".into(), channels(Some(false), None));
            }),
            "categories.gossip",
        ),
        (
            bad(&|p| {
                p.topics
                    .insert("a b".into(), Some(channels(Some(false), None)));
            }),
            "topics.a b",
        ),
        (
            bad(&|p| {
                p.quiet_hours = Some(Some(QuietHours {
                    tz: "Nowhere/Atlantis".into(),
                    ..night()
                }))
            }),
            "quiet_hours.tz",
        ),
        (
            bad(&|p| {
                p.quiet_hours = Some(Some(QuietHours {
                    start: "25:00".into(),
                    ..night()
                }))
            }),
            "quiet_hours.start",
        ),
        (
            bad(&|p| {
                for i in 0..=crate::MAX_TOPIC_PREFERENCES {
                    p.topics
                        .insert(format!("t:{i}"), Some(channels(Some(false), None)));
                }
            }),
            "topics",
        ),
    ];
    for (patch, field) in cases {
        let err = prefs.update(&alice, &patch).await.unwrap_err().to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
    assert!(prefs
        .update("a b", &PreferencesPatch::default())
        .await
        .is_err());

    // Up to the limit in two patches; one more topic is refused whole.
    let half = crate::MAX_TOPIC_PREFERENCES / 2;
    for round in 0..2 {
        let patch = bad(&|p| {
            for i in 0..half {
                p.topics
                    .insert(format!("t:{round}:{i}"), Some(channels(Some(false), None)));
            }
        });
        prefs.update(&alice, &patch).await.unwrap();
    }
    let over = bad(&|p| {
        p.topics
            .insert("one:more".into(), Some(channels(None, None)));
        p.categories.insert(
            Category::REMIND.as_str().into(),
            channels(Some(false), None),
        );
    });
    let err = prefs.update(&alice, &over).await.unwrap_err().to_string();
    assert!(err.contains("topics"), "{err}");
    let now = prefs.get(&alice).await.unwrap();
    assert_eq!(now.topics.len(), crate::MAX_TOPIC_PREFERENCES);
    assert!(now.categories["remind"].in_app, "nothing of it written");
    // Forgetting one makes room.
    let swap = bad(&|p| {
        p.topics.insert("t:0:0".into(), None);
        p.topics
            .insert("one:more".into(), Some(channels(None, None)));
    });
    assert_eq!(
        prefs.update(&alice, &swap).await.unwrap().topics.len(),
        crate::MAX_TOPIC_PREFERENCES
    );
}

/// `in_app: false` for a message's category (the user's, else the
/// operator's default) or for the topic it was published to keeps it out
/// of that user's inbox: not stored, not counted; a critical message is
/// kept all the same. Checked by the append itself, also for a user who
/// had unread messages of the category when they muted it, and for one
/// who never received anything.
pub async fn preferences_keep_muted_messages_out(b: &dyn Backend) {
    let store = b.store(crate::Retention::default()).await;
    let prefs = UserPreferences::new(b.preferences().await, categories());
    let inbox = crate::Inbox::new(store.clone(), categories());
    let (alice, bob, carol) = (user(), user(), user());
    let remind = || crate::Draft::new(Category::REMIND, "r");
    let promo = || {
        let mut d = crate::Draft::new("promo".parse().unwrap(), "p");
        d.in_app_default = false;
        d
    };
    let published = |topic: &str| {
        let mut d = crate::Draft::new(Category::RESOURCE_SUBSCRIPTION, "t");
        d.topic = Some(topic.to_owned());
        d
    };
    let set = |category: Option<&str>, topic: Option<&str>, in_app: bool| {
        let mut p = PreferencesPatch::default();
        if let Some(c) = category {
            p.categories.insert(c.into(), channels(Some(in_app), None));
        }
        if let Some(t) = topic {
            p.topics
                .insert(t.into(), Some(channels(Some(in_app), None)));
        }
        p
    };
    let skipped =
        |r: crate::Result<herald_protocol::Message>| matches!(r, Err(crate::CoreError::Skipped(_)));
    let key = crate::StreamKey::inbox(&alice);

    assert_eq!(store.append(&key, remind()).await.unwrap().seq, 1);
    prefs
        .update(&alice, &set(Some("remind"), None, false))
        .await
        .unwrap();
    assert!(
        skipped(store.append(&key, remind()).await),
        "muted with one unread"
    );
    let mut urgent = remind();
    urgent.critical = true;
    let kept = store.append(&key, urgent).await.unwrap();
    assert_eq!((kept.seq, kept.critical), (2, true), "critical: kept");
    // The operator's default keeps promo out until the user turns it on.
    assert!(skipped(store.append(&key, promo()).await));
    prefs
        .update(&alice, &set(Some("promo"), None, true))
        .await
        .unwrap();
    assert_eq!(store.append(&key, promo()).await.unwrap().seq, 3);
    // A topic muted keeps its publishes out, other topics' come in.
    prefs
        .update(&alice, &set(None, Some("article:1"), false))
        .await
        .unwrap();
    assert!(skipped(store.append(&key, published("article:1")).await));
    assert_eq!(
        store
            .append(&key, published("article:2"))
            .await
            .unwrap()
            .seq,
        4
    );
    // Unmuted: in again.
    prefs
        .update(&alice, &set(Some("remind"), None, true))
        .await
        .unwrap();
    assert_eq!(store.append(&key, remind()).await.unwrap().seq, 5);
    assert_eq!(
        store.last_seq(&key).await.unwrap(),
        5,
        "nothing else stored"
    );
    let counts = inbox.counts(&alice).await.unwrap().counts();
    assert_eq!(
        (
            counts.unread["remind"],
            counts.unread["promo"],
            counts.unread_total
        ),
        (3, 1, 5)
    );
    assert_eq!(counts.unseen_total, 5);

    // Someone else's preferences are theirs.
    let bobs = crate::StreamKey::inbox(&bob);
    assert_eq!(store.append(&bobs, remind()).await.unwrap().seq, 1);
    // A user who never received anything and muted first.
    prefs
        .update(&carol, &set(Some("remind"), None, false))
        .await
        .unwrap();
    let carols = crate::StreamKey::inbox(&carol);
    assert!(skipped(store.append(&carols, remind()).await));
    assert!(skipped(store.append(&carols, remind()).await));
    assert_eq!(
        store
            .append(&carols, crate::Draft::new(Category::SYSTEM, "s"))
            .await
            .unwrap()
            .seq,
        1
    );
    let counts = inbox.counts(&carol).await.unwrap().counts();
    assert_eq!((counts.unread["remind"], counts.unread_total), (0, 1));
}
