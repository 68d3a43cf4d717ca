//! Cookie sessions as express-session + connect-redis store them.

use std::time::Duration;

use herald_core::Retention;
use herald_redis::fred::prelude::{Builder, ClientLike, Config, KeysInterface, Pool};
use herald_redis::{sign_session_cookie, RedisBackend, RedisSettings, SessionLookup};
use herald_testing::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_the_user_of_a_session() {
    let server = RedisServer::start();
    let client = Builder::from_config(Config::from_url(&server.url()).unwrap())
        .build()
        .unwrap();
    client.init().await.unwrap();
    let session = r#"{"cookie":{"originalMaxAge":null,"httpOnly":true,"path":"/"},"user":{"id":"alice","name":"Alice"},"passport":{"user":42}}"#;
    let () = client
        .set("sess:abc123", session, None, None, false)
        .await
        .unwrap();
    let () = client
        .set("sess:nouser", r#"{"cookie":{}}"#, None, None, false)
        .await
        .unwrap();

    let backend = RedisBackend::connect(
        RedisSettings::new(server.url()),
        "n1",
        Retention::default(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let lookup = backend.session_lookup("sess:{id}", "/user/id");
    assert_eq!(
        lookup.user_for("abc123").await.unwrap().as_deref(),
        Some("alice")
    );
    // The signed cookie value, raw and percent-encoded as browsers send it.
    let signed = sign_session_cookie("keyboard cat", "abc123");
    assert_eq!(
        lookup.user_for(&signed).await.unwrap().as_deref(),
        Some("alice")
    );
    let encoded = signed.replacen("s:", "s%3A", 1);
    assert_eq!(
        lookup.user_for(&encoded).await.unwrap().as_deref(),
        Some("alice")
    );
    assert_eq!(lookup.user_for("missing").await.unwrap(), None);
    assert_eq!(lookup.user_for("nouser").await.unwrap(), None);

    // A numeric id at a dotted path.
    let passport = backend.session_lookup("sess:{id}", "passport.user");
    assert_eq!(
        passport.user_for("abc123").await.unwrap().as_deref(),
        Some("42")
    );

    // With the app's secrets, only correctly signed cookies count.
    let strict = SessionLookup::new(
        Pool::from_clients(vec![client.clone()]).unwrap(),
        "sess:{id}",
        "user.id",
    )
    .with_secrets(vec!["keyboard cat".into()]);
    assert_eq!(
        strict.user_for(&signed).await.unwrap().as_deref(),
        Some("alice")
    );
    let forged = sign_session_cookie("wrong secret", "abc123");
    assert_eq!(strict.user_for(&forged).await.unwrap(), None);
    assert_eq!(strict.user_for("abc123").await.unwrap(), None);
    backend.shutdown().await;
}
