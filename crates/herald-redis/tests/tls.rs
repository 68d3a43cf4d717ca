//! A managed Redis: TLS with a private CA and a client certificate, and an
//! ACL user instead of `default`, on a standalone server and behind a
//! Sentinel that has a password of its own (herald-testing's `Secure`).
//! The backend must work there (commands, scripts, pub/sub) and must be
//! refused, with an error, when a piece is missing.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use herald_core::testkit::{draft, user, RecordingSink};
use herald_core::{CoreError, Retention, StreamKey};
use herald_redis::{RedisBackend, RedisSettings, RedisTls};
use herald_testing::{RedisSentinel, RedisServer, Secure};

const SENTINEL_PASSWORD: &str = "sentinel-test-password";

fn secure() -> &'static Secure {
    static SECURE: OnceLock<Secure> = OnceLock::new();
    SECURE.get_or_init(Secure::generate)
}

fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| RedisServer::start_secure(secure()))
}

fn sentinel() -> &'static RedisSentinel {
    static SENTINEL: OnceLock<RedisSentinel> = OnceLock::new();
    SENTINEL.get_or_init(|| RedisSentinel::start_secure(secure(), SENTINEL_PASSWORD))
}

/// Everything a managed Redis asks for: the CA, the client certificate
/// and the ACL user.
fn managed(url: String) -> RedisSettings {
    let certs = &secure().certs;
    RedisSettings {
        username: Some(secure().user.clone()),
        password: Some(secure().password.clone()),
        tls: RedisTls {
            ca_file: Some(certs.ca_file()),
            cert_file: Some(certs.client_cert_file()),
            key_file: Some(certs.client_key_file()),
        },
        connect_timeout: Duration::from_secs(2),
        ..common::fast_failing(url)
    }
}

async fn connect(settings: RedisSettings) -> herald_core::Result<RedisBackend> {
    RedisBackend::connect(settings, "n1", Retention::default(), common::HEARTBEAT).await
}

/// An append runs its script over TLS, lands on `primary`, and is
/// published to a broker subscribed over TLS.
async fn assert_works(backend: &RedisBackend, prefix: &str, primary: &RedisServer) {
    let (sink, mut got) = RecordingSink::new();
    let broker = backend.broker(sink).await.expect("broker over tls");
    let alice = user();
    broker
        .subscribe(std::slice::from_ref(&alice))
        .await
        .unwrap();
    let key = StreamKey::inbox(&alice);
    let stored = backend.store().append(&key, draft("hello")).await.unwrap();
    assert_eq!(got.next().await.message, stored);
    let seq = primary.command(&format!("GET {prefix}:{{u:{alice}}}:seq"));
    assert_eq!(seq.as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_over_tls_as_an_acl_user() {
    let settings = managed(server().tls_url().unwrap());
    let prefix = settings.key_prefix.clone();
    let backend = connect(settings).await.expect("connect over tls");
    assert_works(&backend, &prefix, server()).await;
    backend.shutdown().await;
}

/// The user and password may come in the URL instead (fred's syntax).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_url() {
    let s = secure();
    let port = server().tls_port().unwrap();
    let settings = RedisSettings {
        username: None,
        password: None,
        ..managed(format!(
            "rediss://{}:{}@127.0.0.1:{port}",
            s.user, s.password
        ))
    };
    let backend = connect(settings)
        .await
        .expect("connect with url credentials");
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_over_tls_with_its_own_password() {
    let sentinel = sentinel();
    let settings = RedisSettings {
        sentinel_password: Some(SENTINEL_PASSWORD.into()),
        ..managed(sentinel.tls_url().unwrap())
    };
    let prefix = settings.key_prefix.clone();
    let backend = connect(settings).await.expect("connect through sentinel");
    assert_works(&backend, &prefix, sentinel.primary()).await;
    backend.shutdown().await;
}

/// Each missing or wrong piece is a failed start, not a hang: the
/// Sentinel's password, the data nodes' password, the CA (the system's
/// roots do not know the test CA), the client certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_without_each_piece() {
    let url = server().tls_url().unwrap();
    let wrong_password = RedisSettings {
        password: Some("wrong".into()),
        ..managed(url.clone())
    };
    let no_ca = RedisSettings {
        tls: RedisTls {
            ca_file: None,
            ..managed(url.clone()).tls
        },
        ..managed(url.clone())
    };
    let no_client_cert = RedisSettings {
        tls: RedisTls {
            ca_file: Some(secure().certs.ca_file()),
            cert_file: None,
            key_file: None,
        },
        ..managed(url.clone())
    };
    let plain = managed(format!("redis://127.0.0.1:{}", server().port()));
    let no_sentinel_password = managed(sentinel().tls_url().unwrap());
    // What refused each: Redis, rustls, Redis over TLS, the Sentinel.
    for (settings, because) in [
        (wrong_password, "WRONGPASS"),
        (no_ca, "UnknownIssuer"),
        (no_client_cert, "CertificateRequired"),
        (no_sentinel_password, "NOAUTH"),
    ] {
        match connect(settings).await {
            Err(e) => assert!(e.to_string().contains(because), "{because}: {e}"),
            Ok(_) => panic!("{because}: connected"),
        }
    }
    // TLS files with a plain URL are a mistake, said before connecting.
    match connect(plain).await {
        Err(CoreError::Invalid(msg)) => assert!(msg.contains("rediss"), "{msg}"),
        Err(e) => panic!("tls with redis://: {e}"),
        Ok(_) => panic!("tls with redis://: connected"),
    }
}

/// Settings that cannot apply are refused by name.
#[tokio::test]
async fn settings_that_cannot_apply_are_refused() {
    let cases = [
        (
            RedisSettings {
                sentinel_password: Some("x".into()),
                ..RedisSettings::new("redis://127.0.0.1:1")
            },
            "sentinel_password",
        ),
        (
            RedisSettings {
                tls: RedisTls {
                    cert_file: Some(secure().certs.client_cert_file()),
                    ..RedisTls::default()
                },
                ..RedisSettings::new("rediss://127.0.0.1:1")
            },
            "key_file",
        ),
        (
            RedisSettings {
                tls: RedisTls {
                    ca_file: Some(secure().certs.dir().join("missing.pem")),
                    ..RedisTls::default()
                },
                ..RedisSettings::new("rediss://127.0.0.1:1")
            },
            "missing.pem",
        ),
    ];
    for (settings, named) in cases {
        match connect(settings).await {
            Err(CoreError::Invalid(msg)) => assert!(msg.contains(named), "{msg}"),
            Err(e) => panic!("{named}: {e}"),
            Ok(_) => panic!("{named}: connected"),
        }
    }
}
